//! Sessions: login, refresh, logout, and the caller's own account (`/me`). The writes are in
//! [`crate::ops::users`]; every password check goes through the throttle of
//! [`crate::auth::throttle`].

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::AppState;
use crate::api::input::Body;
use crate::api::users::UserOut;
use crate::api::validate::{declared, done};
use crate::auth::extractor::request_id;
use crate::auth::throttle::{self, Refusals, Throttle};
use crate::auth::token::issue_access;
use crate::auth::{AuthUser, password};
use crate::error::{ApiError, ApiResult, PROBLEM_JSON as PROBLEM, Problem};
use crate::ops;
use crate::ops::users::{account_event, sign_in_event, typed_username};
use crate::store::audit::Actor;
use crate::store::users::{self, UserRow};

#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Case does not matter.
    #[schema(example = "wang.fang", min_length = 1, max_length = 64)]
    #[validate(length(min = 1, max = 64, code = "invalid_length", message = "must be 1–64 characters"))]
    pub username: String,
    #[schema(example = "a long passphrase", min_length = 1, max_length = 1024)]
    #[validate(length(min = 1, max = 1024, code = "invalid_length", message = "must be 1–1024 characters"))]
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT to send as `Authorization: Bearer …`.
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: u64,
    /// Single-use: exchange it at `/auth/refresh` for a new pair. Reusing a spent one ends the
    /// whole session.
    pub refresh_token: String,
    pub user: UserOut,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The `refresh_token` of the last login or refresh.
    #[schema(example = "q9Jx3cS0lYw6ZkD1vR8pN2tH5mB7aE4fU0oI3gL6yT")]
    pub refresh_token: String,
}

fn tokens(state: &AppState, user: UserRow, refresh_token: String) -> TokenResponse {
    let ttl = state.config.server.access_token_ttl;
    TokenResponse {
        access_token: issue_access(&state.jwt_secret, &user.id, user.credentials_epoch(), ttl),
        token_type: "Bearer",
        expires_in: ttl,
        refresh_token,
        user: UserOut::from(user),
    }
}

pub(crate) fn bad_credentials() -> ApiError {
    ApiError::Unauthorized("invalid username or password".into())
}

/// Logs in. Unknown users and wrong passwords get the same answer in similar time; too many
/// failures on one account lock it for a while (429 with `Retry-After`).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", operation_id = "login",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 401, description = "Wrong username or password", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Too many failed attempts on this account", body = Problem, content_type = PROBLEM,
            headers(("Retry-After" = u64, description = "Seconds until the account may try again"))),
    ))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Body<LoginRequest>,
) -> ApiResult<web::Json<TokenResponse>> {
    let input = body.into_inner();
    done(declared(&input))?;
    let username = input.username.trim().to_lowercase();
    let request_id = request_id(&req);
    let st = state.clone();
    web::block(move || sign_in(&st, &username, &input.password, request_id)).await?.map(web::Json)
}

/// Checks the password under the account's throttle, then starts a session. Blocking.
fn sign_in(st: &AppState, username: &str, pw: &str, request_id: Option<String>) -> ApiResult<TokenResponse> {
    let (user, refresh_token) = authenticate(st, username, pw, request_id)?;
    Ok(tokens(st, user, refresh_token))
}

/// The one sign-in of every entry point (the API's login, the console's): the password checked
/// under the account's throttle, then a new session family; the account and the family's
/// refresh token. `username` is normalised (trimmed, lower case). Blocking.
pub(crate) fn authenticate(
    st: &AppState,
    username: &str,
    pw: &str,
    request_id: Option<String>,
) -> ApiResult<(UserRow, String)> {
    let db = &st.db;
    let user = db.read_blocking(|c| Ok(users::find_by_username(c, username)?))?;
    let actor = Actor { user_id: None, request_id: request_id.clone() };
    let unknown = user.is_none().then(|| typed_username(db.keys().ring().as_deref(), username)).flatten();
    let refusals = Refusals {
        actor: &actor,
        throttled: sign_in_event("auth.login_throttled", user.as_ref(), unknown.as_deref()),
        failed: sign_in_event("auth.login_failed", user.as_ref(), unknown.as_deref()),
    };
    // Unknown users pay for a hash too, and are counted the same way.
    let matched = throttle::check_password(db, Throttle::of(&st.config.server), username, refusals, || match &user {
        Some(u) => password::verify(pw, &u.password_hash) && u.active,
        None => {
            password::verify_dummy(pw);
            false
        }
    })?;
    let Some(user) = user.filter(|_| matched) else {
        return Err(bad_credentials());
    };
    let lifetime = st.config.server.refresh_token_ttl;
    let refresh_token = db.write_blocking(|c| ops::users::start_session(c, &user, username, request_id, lifetime))?;
    Ok((user, refresh_token))
}

/// Exchanges a refresh token for a new access token and a new refresh token.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", operation_id = "refresh",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token", body = Problem, content_type = PROBLEM),
    ))]
pub async fn refresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Body<RefreshRequest>,
) -> ApiResult<web::Json<TokenResponse>> {
    let token = body.into_inner().refresh_token;
    let request_id = request_id(&req);
    let rotated = state.db.write(move |c| ops::users::refresh_session(c, &token, request_id)).await?;
    let (user, refresh_token) =
        rotated.ok_or_else(|| ApiError::Unauthorized("the refresh token is not valid".into()))?;
    Ok(web::Json(tokens(&state, user, refresh_token)))
}

/// Ends the session the refresh token belongs to (every token of its family).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", operation_id = "logout",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Logged out (also when the token was already invalid)"),
    ))]
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Body<RefreshRequest>,
) -> ApiResult<HttpResponse> {
    let token = body.into_inner().refresh_token;
    let request_id = request_id(&req);
    state.db.write(move |c| ops::users::end_session(c, &token, request_id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's own account.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", operation_id = "me", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = UserOut),
    ))]
pub async fn me(caller: AuthUser) -> web::Json<UserOut> {
    web::Json(UserOut::from(caller.row))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    #[schema(example = "a long passphrase")]
    pub current_password: String,
    /// 10–128 characters.
    #[schema(example = "another long passphrase", min_length = 10, max_length = 128)]
    pub new_password: String,
}

impl ChangePassword {
    fn checked(self) -> ApiResult<Self> {
        password::check_policy("new_password", &self.new_password).map_err(|e| ApiError::Validation(vec![e]))?;
        Ok(self)
    }
}

/// Changes the caller's password. Every session of the account ends, this one included: log in
/// again with the new password.
///
/// A wrong current password counts against the account like a failed login (the same count and
/// limit), so that a stolen access token is no unthrottled way to guess it.
#[utoipa::path(put, path = "/api/v1/me/password", tag = "auth", operation_id = "change_password",
    request_body = ChangePassword, security(("bearer" = [])),
    responses(
        (status = 204, description = "Changed; all sessions ended"),
        (status = 422, description = "Wrong current password or too weak a new one", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Too many failed password attempts on this account (logins included)", body = Problem, content_type = PROBLEM,
            headers(("Retry-After" = u64, description = "Seconds until the account may try again"))),
    ))]
pub async fn change_password(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: Body<ChangePassword>,
) -> ApiResult<HttpResponse> {
    let input = body.into_inner().checked()?;
    let (st, who) = (state.clone(), caller.clone());
    let hash = web::block(move || new_password_hash(&st, &who, input))
        .await??
        .ok_or_else(|| ApiError::invalid("current_password", "incorrect", "is not the account's password"))?;
    state.db.write(move |c| ops::users::change_own_password(c, &caller, hash)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Checks the current password under the account's throttle; the new one's hash when it
/// matched. Blocking.
fn new_password_hash(st: &AppState, who: &AuthUser, input: ChangePassword) -> ApiResult<Option<String>> {
    let actor = who.actor();
    let event = |action| account_event(action, &who.id, who.community_id.as_deref(), serde_json::json!({}));
    let refusals = Refusals {
        actor: &actor,
        throttled: event("auth.password_change_throttled"),
        failed: event("auth.password_change_failed"),
    };
    let matched =
        throttle::check_password(&st.db, Throttle::of(&st.config.server), &who.row.username, refusals, || {
            password::verify(&input.current_password, &who.row.password_hash)
        })?;
    if matched { password::hash(&input.new_password).map(Some) } else { Ok(None) }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/auth/login").route(web::post().to(login)))
        .service(web::resource("/auth/refresh").route(web::post().to(refresh)))
        .service(web::resource("/auth/logout").route(web::post().to(logout)))
        .service(web::resource("/me").route(web::get().to(me)))
        .service(web::resource("/me/password").route(web::put().to(change_password)));
}
