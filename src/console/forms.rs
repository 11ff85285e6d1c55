//! A console form post: the session, the CSRF check, then the fields, read by the same text
//! rule as every API body (no control characters; line breaks only in notes).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;

use crate::api::input::parse_form;
use crate::console::{Console, Fail};
use crate::error::ApiError;

/// The name of the CSRF field of every console form.
pub const CSRF_FIELD: &str = "csrf";

/// A form post from a signed-in session whose CSRF token was checked; the fields parsed into
/// `T` (a 422 with the field named when one is malformed, shown next to it).
pub struct Post<T> {
    pub console: Console,
    pub form: Result<T, ApiError>,
}

/// The CSRF token of a form body and the rest of its fields, re-encoded.
pub fn split_csrf(body: &str) -> (Option<String>, String) {
    let mut csrf = None;
    let mut rest = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(body.as_bytes()) {
        if k == CSRF_FIELD {
            csrf = Some(v.into_owned());
        } else {
            rest.append_pair(&k, &v);
        }
    }
    (csrf, rest.finish())
}

impl<T: DeserializeOwned + 'static> FromRequest for Post<T> {
    type Error = Fail;
    type Future = Pin<Box<dyn Future<Output = Result<Post<T>, Fail>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let console = Console::from_request(req, payload);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let console = console.await?;
            let body = body.await.map_err(|_| ApiError::PayloadTooLarge("the form is too large".into()))?;
            let text = std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest("the form is not UTF-8".into()))?;
            let (csrf, rest) = split_csrf(text);
            console.check_csrf(csrf.as_deref())?;
            Ok(Post { console, form: parse_form(&rest) })
        })
    }
}
