//! The console's cookie session and its CSRF tokens.
//!
//! A console sign-in is an API sign-in ([`crate::api::auth::authenticate`]: the same accounts,
//! throttle and audit events) whose session family is held by a cookie instead of being
//! rotated by a client. The cookie carries the family's token, the account's credentials epoch
//! and an idle deadline, signed with the server's token secret:
//!
//! - **idle timeout**: the deadline is the access tokens' lifetime from the last request, and
//!   every answer moves it on (`GRIDLIGHT_ACCESS_TOKEN_TTL`);
//! - **absolute timeout**: the family's expiry (`GRIDLIGHT_REFRESH_TOKEN_TTL`), checked in the
//!   database on every request, as are sign-out and revocation (a password change ends every
//!   family of the account);
//! - **deactivation, password change**: the account is re-read on every request and its
//!   credentials epoch compared, as for bearer tokens ([`crate::auth::extractor::signed_in`]).
//!
//! The cookie is `HttpOnly`, `SameSite=Strict`, `Path=/console` and `Secure`, unless the server
//! was told it serves the console over plain HTTP on loopback (`GRIDLIGHT_CONSOLE_PLAIN_HTTP`).
//! Every form carries a CSRF token derived from the session (or, before sign-in, from a
//! random pre-session cookie); a post without the right one is refused.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::AppState;
use crate::auth::AuthUser;
use crate::auth::extractor::{request_id, signed_in};
use crate::console::Fail;
use crate::error::ApiError;
use crate::store::sessions;

pub const SESSION_COOKIE: &str = "gl_session";
pub const PRE_COOKIE: &str = "gl_pre";
const PATH: &str = "/console";

fn mac(secret: &[u8], purpose: &str, payload: &str) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(b"gridlight-console|");
    m.update(purpose.as_bytes());
    m.update(b"|");
    m.update(payload.as_bytes());
    URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
}

/// Constant-time comparison of two tokens.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A cookie of the console: HttpOnly, SameSite=Strict, on the console's path.
fn cookie(state: &AppState, name: &'static str, value: String, max_age_secs: Option<i64>) -> Cookie<'static> {
    let mut c = Cookie::build(name, value)
        .path(PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(!state.config.server.console_plain_http)
        .finish();
    if let Some(secs) = max_age_secs {
        c.set_max_age(actix_web::cookie::time::Duration::seconds(secs));
    }
    c
}

/// The cookie that ends the session in the browser.
pub fn cleared(state: &AppState) -> Cookie<'static> {
    cookie(state, SESSION_COOKIE, String::new(), Some(0))
}

/// What the session cookie holds, its signature checked.
struct Held {
    token: String,
    cv: i64,
}

fn idle_secs(state: &AppState) -> i64 {
    i64::try_from(state.config.server.access_token_ttl).unwrap_or(900).max(60)
}

/// The session cookie for a family token, its idle deadline from now.
pub fn session_cookie(state: &AppState, token: &str, cv: i64) -> Cookie<'static> {
    let until = chrono::Utc::now().timestamp() + idle_secs(state);
    let payload = format!("{token}.{cv}.{until}");
    let signature = mac(&state.jwt_secret, "session", &payload);
    cookie(state, SESSION_COOKIE, format!("{payload}.{signature}"), None)
}

fn read_cookie(state: &AppState, value: &str) -> Option<Held> {
    let (payload, signature) = value.rsplit_once('.')?;
    if !same(&mac(&state.jwt_secret, "session", payload), signature) {
        return None;
    }
    let mut parts = payload.split('.');
    let (token, cv, until) = (parts.next()?, parts.next()?.parse().ok()?, parts.next()?.parse::<i64>().ok()?);
    if parts.next().is_some() || until <= chrono::Utc::now().timestamp() {
        return None;
    }
    Some(Held { token: token.to_owned(), cv })
}

/// A signed-in console request: who, the application, and the session's CSRF token.
pub struct Console {
    pub caller: AuthUser,
    pub state: web::Data<AppState>,
    pub csrf: String,
    token: String,
    cv: i64,
}

impl Console {
    /// The session cookie with its idle deadline moved on: every answer carries it.
    pub fn renewed(&self) -> Cookie<'static> {
        session_cookie(&self.state, &self.token, self.cv)
    }

    /// The session's family token (for sign-out).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, sent: Option<&str>) -> Result<(), Fail> {
        match sent {
            Some(t) if same(t, &self.csrf) => Ok(()),
            _ => Err(Fail::Csrf),
        }
    }
}

fn state_of(req: &HttpRequest) -> Result<web::Data<AppState>, Fail> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| Fail::Api(ApiError::internal(anyhow::anyhow!("application state missing"))))
}

impl FromRequest for Console {
    type Error = Fail;
    type Future = Pin<Box<dyn Future<Output = Result<Console, Fail>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = state_of(req);
        let value = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
        let request_id = request_id(req);
        Box::pin(async move {
            let state = state?;
            let held = value.and_then(|v| read_cookie(&state, &v)).ok_or(Fail::SignIn)?;
            let (token, cv) = (held.token.clone(), held.cv);
            let caller = state
                .db
                .read(move |c| {
                    let user_id = sessions::live(c, &token)?.ok_or_else(|| ApiError::Unauthorized(String::new()))?;
                    signed_in(c, &user_id, cv, request_id)
                })
                .await
                .map_err(|e| match e {
                    ApiError::Unauthorized(_) => Fail::SignIn,
                    other => Fail::Api(other),
                })?;
            let csrf = mac(&state.jwt_secret, "csrf", &held.token);
            Ok(Console { caller, state, csrf, token: held.token, cv: held.cv })
        })
    }
}

/// Before sign-in: the random value of the pre-session cookie (a new one when the browser has
/// none) and the login form's CSRF token derived from it.
pub fn pre_session(req: &HttpRequest, state: &AppState) -> (Option<Cookie<'static>>, String) {
    match req.cookie(PRE_COOKIE).map(|c| c.value().to_owned()).filter(|v| v.len() == 43) {
        Some(v) => (None, mac(&state.jwt_secret, "login", &v)),
        None => {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let v = URL_SAFE_NO_PAD.encode(bytes);
            let csrf = mac(&state.jwt_secret, "login", &v);
            (Some(cookie(state, PRE_COOKIE, v, None)), csrf)
        }
    }
}

/// Whether the login form's CSRF token belongs to the browser's pre-session cookie.
pub fn pre_session_ok(req: &HttpRequest, state: &AppState, sent: Option<&str>) -> bool {
    let Some(pre) = req.cookie(PRE_COOKIE) else { return false };
    sent.is_some_and(|t| same(t, &mac(&state.jwt_secret, "login", pre.value())))
}
