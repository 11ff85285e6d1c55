//! The `AuthUser` extractor: a handler that takes one is authenticated, and the user behind it
//! was re-read from the database on this very request (deactivation and password changes take
//! effect at once, even for unexpired tokens).

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};

use crate::AppState;
use crate::auth::token::verify_access;
use crate::db::accounts::Accounts;
use crate::domain::Role;
use crate::error::{ApiError, ApiResult};
use crate::store::audit::Actor;
use crate::store::users::{self, UserRow};
use crate::telemetry::RequestId;

#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: String,
    pub role: Role,
    pub community_id: Option<String>,
    pub request_id: Option<String>,
    /// The account as read on this request.
    pub row: UserRow,
}

impl AuthUser {
    /// The caller an account is, on the request `request_id`.
    pub fn of(row: UserRow, request_id: Option<String>) -> AuthUser {
        AuthUser { id: row.id.clone(), role: row.role, community_id: row.community_id.clone(), request_id, row }
    }

    pub fn actor(&self) -> Actor {
        Actor { user_id: Some(self.id.clone()), request_id: self.request_id.clone() }
    }

    /// 403 unless the caller has one of `roles`: for actions a role may never take.
    pub fn require(&self, roles: &[Role]) -> ApiResult<()> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("a {} may not do this", self.role.as_str())))
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// A street or district officer: reads the communities of their unit, changes nothing there.
    pub fn is_officer(&self) -> bool {
        matches!(self.role, Role::StreetOfficer | Role::DistrictOfficer)
    }
}

/// The id the telemetry middleware made for this request (never one the client sent), for
/// audit events.
pub fn request_id(req: &HttpRequest) -> Option<String> {
    req.extensions().get::<RequestId>().map(|r| r.0.clone())
}

fn unauthorized() -> ApiError {
    ApiError::Unauthorized("a valid bearer access token is required".into())
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<AuthUser, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let bearer = Bearer::from_request(req, payload).into_inner();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("application state missing")))?;
            let bearer = bearer?;
            // An account that authenticated lately, unchanged since: no trip to the pool.
            let accounts = state.db.accounts().clone();
            if let Some(user) = bearer.cached(&accounts) {
                return Ok(user);
            }
            state.db.read(move |conn| bearer.user_remembered(conn, &accounts)).await
        })
    }
}

/// A request's bearer token, checked (signature, expiry) but not yet its account: a handler
/// that reaches the database anyway authenticates in the same trip with [`Bearer::user`]
/// (exactly what [`AuthUser`] does in a trip of its own).
pub struct Bearer {
    claims: crate::auth::token::Claims,
    request_id: Option<String>,
}

impl Bearer {
    /// The account behind the token, re-read now: 401 when it is gone, deactivated, or its
    /// credentials changed since the token was issued.
    pub fn user(self, conn: &mut crate::db::DbConn) -> ApiResult<AuthUser> {
        signed_in(conn, &self.claims.sub, self.claims.cv, self.request_id)
    }

    /// The account from the account cache, if it answers for this token (no database read).
    pub fn cached(&self, accounts: &Accounts) -> Option<AuthUser> {
        accounts.get(&self.claims.sub, self.claims.cv).map(|row| AuthUser::of(row, self.request_id.clone()))
    }

    /// [`Bearer::user`], keeping the account read in the account cache.
    pub fn user_remembered(self, conn: &mut crate::db::DbConn, accounts: &Accounts) -> ApiResult<AuthUser> {
        let seen = accounts.generation();
        let user = self.user(conn)?;
        accounts.remember(&user.row, seen);
        Ok(user)
    }

    /// The account: from the account cache, or read now (and kept there).
    pub fn authenticate(self, conn: &mut crate::db::DbConn, accounts: &Accounts) -> ApiResult<AuthUser> {
        match self.cached(accounts) {
            Some(user) => Ok(user),
            None => self.user_remembered(conn, accounts),
        }
    }
}

/// The account a credential names, re-read now: 401 when it is gone, deactivated, or its
/// credentials changed since the credential was issued (`cv`, the credentials epoch then). The
/// one check behind the API's bearer tokens and the console's session cookie.
pub fn signed_in(
    conn: &mut crate::db::DbConn,
    user_id: &str,
    cv: i64,
    request_id: Option<String>,
) -> ApiResult<AuthUser> {
    let row = users::find(conn, user_id)?.ok_or_else(unauthorized)?;
    if !row.active || row.credentials_epoch() != cv {
        return Err(unauthorized());
    }
    Ok(AuthUser::of(row, request_id))
}

impl FromRequest for Bearer {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Bearer, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready((|| {
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("application state missing")))?;
            let header = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(unauthorized)?;
            let (scheme, token) = header.split_once(' ').ok_or_else(unauthorized)?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(unauthorized());
            }
            let claims = verify_access(&state.jwt_secret, token.trim()).ok_or_else(unauthorized)?;
            Ok(Bearer { claims, request_id: request_id(req) })
        })())
    }
}
