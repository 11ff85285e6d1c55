//! Sign in and out: the API's sign-in ([`crate::api::auth::authenticate`]: same accounts,
//! same throttle, same audit) and its sign-out ([`crate::ops::users::end_session`]).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;
use serde::Deserialize;

use crate::AppState;
use crate::api::auth::authenticate;
use crate::api::input::parse_form;
use crate::auth::extractor::request_id;
use crate::console::forms::split_csrf;
use crate::console::session::{cleared, pre_session, pre_session_ok, session_cookie};
use crate::console::view::{anonymous, message};
use crate::console::{Fail, Page, Post};
use crate::error::ApiError;
use crate::ops;

fn login_page(req: &HttpRequest, state: &AppState, status: StatusCode, username: &str, error: Option<String>) -> Page {
    let (pre, csrf) = pre_session(req, state);
    let mut res = anonymous(status, "login.html", context! { csrf, username, error })?;
    if let Some(c) = pre {
        res.add_cookie(&c).map_err(|e| ApiError::internal(anyhow::anyhow!("cookie: {e}")))?;
    }
    Ok(res)
}

/// The sign-in form.
pub async fn form(req: HttpRequest, state: web::Data<AppState>) -> Page {
    login_page(&req, &state, StatusCode::OK, "", None)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// Signs in: a session cookie and on to the console, or the form again with the reason.
pub async fn sign_in(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> Page {
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest("the form is not UTF-8".into()))?;
    let (csrf, rest) = split_csrf(text);
    if !pre_session_ok(&req, &state, csrf.as_deref()) {
        return Err(Fail::Csrf);
    }
    let c: Credentials = parse_form(&rest)?;
    let username = c.username.trim().to_lowercase();
    if username.is_empty() || c.password.is_empty() || username.chars().count() > 64 || c.password.len() > 1024 {
        let error = Some("请输入用户名和密码。".to_owned());
        return login_page(&req, &state, StatusCode::UNPROCESSABLE_ENTITY, &username, error);
    }
    let st = state.clone();
    let (name, rid) = (username.clone(), request_id(&req));
    let signed = web::block(move || authenticate(&st, &name, &c.password, rid)).await.map_err(ApiError::from)?;
    match signed {
        Ok((user, token)) => {
            let mut res = HttpResponse::SeeOther().insert_header((header::LOCATION, "/console/")).finish();
            let cookie = session_cookie(&state, &token, user.credentials_epoch());
            res.add_cookie(&cookie).map_err(|e| ApiError::internal(anyhow::anyhow!("cookie: {e}")))?;
            Ok(res)
        }
        Err(ApiError::Unauthorized(_)) => {
            let error = Some("用户名或密码错误。".to_owned());
            login_page(&req, &state, StatusCode::UNAUTHORIZED, &username, error)
        }
        Err(e @ ApiError::TooManyRequests { retry_after_secs, .. }) => {
            let mut res = login_page(&req, &state, StatusCode::TOO_MANY_REQUESTS, &username, Some(message(&e)))?;
            res.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after_secs));
            Ok(res)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nothing {}

/// Signs out: the session's family is revoked (audited) and the cookie cleared.
pub async fn sign_out(post: Post<Nothing>) -> Page {
    let console = post.console;
    let (token, rid) = (console.token().to_owned(), console.caller.request_id.clone());
    console.state.db.write(move |c| ops::users::end_session(c, &token, rid)).await?;
    let mut res = HttpResponse::SeeOther().insert_header((header::LOCATION, "/console/login")).finish();
    res.add_cookie(&cleared(&console.state)).map_err(|e| ApiError::internal(anyhow::anyhow!("cookie: {e}")))?;
    Ok(res)
}
