//! Sessions: login, refresh, logout, and the caller's own account (`/me`).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::input::Body;
use crate::api::users::UserOut;
use crate::auth::extractor::request_id;
use crate::auth::throttle::{self, Refusals, Throttle};
use crate::auth::token::issue_access;
use crate::auth::{AuthUser, password};
use crate::error::{ApiError, ApiResult, ErrorCode, FieldError, PROBLEM_JSON as PROBLEM, Problem};
use crate::store::audit::{self, Actor, Event};
use crate::store::now;
use crate::store::sessions::{self, Rotation};
use crate::store::users::{self, UserChanges, UserRow};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Case does not matter.
    #[schema(example = "wang.fang", min_length = 1, max_length = 64)]
    pub username: String,
    #[schema(example = "a long passphrase", min_length = 1, max_length = 1024)]
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

fn bad_credentials() -> ApiError {
    ApiError::Unauthorized("invalid username or password".into())
}

fn login_event<'a>(action: &'a str, user: Option<&'a UserRow>, username: &str) -> Event<'a> {
    Event {
        action,
        entity_type: "user",
        entity_id: user.map(|u| u.id.as_str()),
        community_id: user.and_then(|u| u.community_id.as_deref()),
        summary: serde_json::json!({"username": username}),
    }
}

/// Logs in. Unknown users and wrong passwords get the same answer in similar time; too many
/// failures on one account lock it for a while (429 with `Retry-After`).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", operation_id = "login",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 400, description = "Malformed request", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Wrong username or password", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Missing fields", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Too many failed attempts on this account", body = Problem, content_type = PROBLEM,
            headers(("Retry-After" = u64, description = "Seconds until the account may try again"))),
    ))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Body<LoginRequest>,
) -> ApiResult<web::Json<TokenResponse>> {
    let LoginRequest { username, password: pw } = body.into_inner();
    let bad_username = username.is_empty() || username.chars().count() > 64;
    let bad_password = pw.is_empty() || pw.chars().count() > 1024;
    if bad_username || bad_password {
        let mut errors = Vec::new();
        if bad_username {
            errors.push(FieldError::new("username", "invalid_length", "must be 1–64 characters"));
        }
        if bad_password {
            errors.push(FieldError::new("password", "invalid_length", "must be 1–1024 characters"));
        }
        return Err(ApiError::Validation(errors));
    }
    let username = username.trim().to_lowercase();
    let actor = Actor { user_id: None, request_id: request_id(&req) };
    let rule = Throttle::of(&state.config.server);
    let st = state.clone();
    web::block(move || -> ApiResult<TokenResponse> {
        let db = &st.db;
        let user = db.read_blocking(|c| Ok(users::find_by_username(c, &username)?))?;
        let refusals = Refusals {
            actor: &actor,
            throttled: login_event("auth.login_throttled", user.as_ref(), &username),
            failed: login_event("auth.login_failed", user.as_ref(), &username),
        };
        // Unknown users pay for a hash too, and are counted the same way.
        let matched = throttle::check_password(db, rule, &username, refusals, || match &user {
            Some(u) => password::verify(&pw, &u.password_hash) && u.active,
            None => {
                password::verify_dummy(&pw);
                false
            }
        })?;
        let Some(user) = user.filter(|_| matched) else {
            return Err(bad_credentials());
        };
        let refresh_token = db.write_blocking(|c| {
            throttle::succeeded(c, &username)?;
            let actor = Actor { user_id: Some(user.id.clone()), request_id: actor.request_id.clone() };
            audit::record(c, &actor, login_event("auth.login_succeeded", Some(&user), &username))?;
            Ok(sessions::start_family(c, &user.id, st.config.server.refresh_token_ttl)?)
        })?;
        Ok(tokens(&st, user, refresh_token))
    })
    .await?
    .map(web::Json)
}

/// Exchanges a refresh token for a new access token and a new refresh token.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", operation_id = "refresh",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 400, description = "Malformed request", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Missing fields", body = Problem, content_type = PROBLEM),
    ))]
pub async fn refresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Body<RefreshRequest>,
) -> ApiResult<web::Json<TokenResponse>> {
    let token = body.into_inner().refresh_token;
    let request_id = request_id(&req);
    let st = state.clone();
    let outcome = state
        .db
        .write(move |c| {
            let rotation = sessions::rotate(c, &token)?;
            let user = match &rotation {
                Rotation::Rotated { user_id, .. } => users::find(c, user_id)?,
                _ => None,
            };
            match (rotation, user) {
                (Rotation::Rotated { refresh_token, .. }, Some(user)) if user.active => {
                    Ok(Some(tokens(&st, user, refresh_token)))
                }
                (Rotation::Reused { user_id, family_id }, _) => {
                    let actor = Actor { user_id: Some(user_id.clone()), request_id };
                    audit::record(
                        c,
                        &actor,
                        Event {
                            action: "auth.refresh_reused",
                            entity_type: "user",
                            entity_id: Some(&user_id),
                            community_id: None,
                            summary: serde_json::json!({"family_revoked": family_id}),
                        },
                    )?;
                    tracing::warn!("a spent refresh token was presented again; its session family is revoked");
                    Ok(None)
                }
                _ => Ok(None),
            }
        })
        .await?;
    outcome.map(web::Json).ok_or_else(|| ApiError::Unauthorized("the refresh token is not valid".into()))
}

/// Ends the session the refresh token belongs to (every token of its family).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", operation_id = "logout",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Logged out (also when the token was already invalid)"),
        (status = 400, description = "Malformed request", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Missing fields", body = Problem, content_type = PROBLEM),
    ))]
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Body<RefreshRequest>,
) -> ApiResult<HttpResponse> {
    let token = body.into_inner().refresh_token;
    let request_id = request_id(&req);
    state
        .db
        .write(move |c| {
            if let Some(user_id) = sessions::revoke_family_of(c, &token)? {
                let actor = Actor { user_id: Some(user_id.clone()), request_id };
                audit::record(
                    c,
                    &actor,
                    Event {
                        action: "auth.logout",
                        entity_type: "user",
                        entity_id: Some(&user_id),
                        community_id: None,
                        summary: serde_json::json!({}),
                    },
                )?;
            }
            Ok(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's own account.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", operation_id = "me", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = UserOut),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
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

/// Changes the caller's password. Every session of the account ends, this one included: log in
/// again with the new password.
///
/// A wrong current password counts against the account like a failed login (the same count and
/// limit), so that a stolen access token is no unthrottled way to guess it.
#[utoipa::path(put, path = "/api/v1/me/password", tag = "auth", operation_id = "change_password",
    request_body = ChangePassword, security(("bearer" = [])),
    responses(
        (status = 204, description = "Changed; all sessions ended"),
        (status = 400, description = "Malformed request", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Wrong current password or too weak a new one", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Too many failed password attempts on this account (logins included)", body = Problem, content_type = PROBLEM,
            headers(("Retry-After" = u64, description = "Seconds until the account may try again"))),
    ))]
pub async fn change_password(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: Body<ChangePassword>,
) -> ApiResult<HttpResponse> {
    let input = body.into_inner();
    password::check_policy("new_password", &input.new_password).map_err(|e| ApiError::Validation(vec![e]))?;
    let actor = caller.actor();
    let rule = Throttle::of(&state.config.server);
    let (st, who, checker) = (state.clone(), caller.clone(), actor.clone());
    let new_hash = web::block(move || {
        let event = |action| Event {
            action,
            entity_type: "user",
            entity_id: Some(&who.id),
            community_id: who.community_id.as_deref(),
            summary: serde_json::json!({}),
        };
        let refusals = Refusals {
            actor: &checker,
            throttled: event("auth.password_change_throttled"),
            failed: event("auth.password_change_failed"),
        };
        let matched = throttle::check_password(&st.db, rule, &who.row.username, refusals, || {
            password::verify(&input.current_password, &who.row.password_hash)
        })?;
        if matched { password::hash(&input.new_password).map(Some) } else { Ok(None) }
    })
    .await??
    .ok_or_else(|| ApiError::invalid("current_password", "incorrect", "is not the account's password"))?;
    state
        .db
        .write(move |c| {
            let at = now();
            let changes = UserChanges {
                password_hash: Some(new_hash),
                credentials_changed_at: Some(at),
                version: Some(caller.row.version + 1),
                updated_at: Some(at),
                ..Default::default()
            };
            if !users::update(c, &caller.id, caller.row.version, &changes)? {
                return Err(ApiError::conflict(
                    ErrorCode::ConcurrentChange,
                    "the account changed meanwhile; try again",
                ));
            }
            throttle::succeeded(c, &caller.row.username)?;
            sessions::revoke_all_for_user(c, &caller.id)?;
            audit::record(
                c,
                &actor,
                Event {
                    action: "user.password_changed",
                    entity_type: "user",
                    entity_id: Some(&caller.id),
                    community_id: caller.community_id.as_deref(),
                    summary: serde_json::json!({}),
                },
            )?;
            Ok(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/auth/login").route(web::post().to(login)))
        .service(web::resource("/auth/refresh").route(web::post().to(refresh)))
        .service(web::resource("/auth/logout").route(web::post().to(logout)))
        .service(web::resource("/me").route(web::get().to(me)))
        .service(web::resource("/me/password").route(web::put().to(change_password)));
}
