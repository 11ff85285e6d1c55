//! User accounts: `/users`, `/users/{id}`.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::conditional::{check_version, etag, if_match};
use crate::api::input::{Body, Params};
use crate::api::pagination::{Page, decode_cursor, fetch_limit, page};
use crate::api::validate::parse_phone;
use crate::auth::{AuthUser, password, scope};
use crate::db::DbConn;
use crate::domain::{Role, mask};
use crate::error::{ApiError, ApiResult, ErrorCode, FieldError, PROBLEM_JSON as PROBLEM, Problem};
use crate::store::audit::{self, Actor, Event};
use crate::store::communities::{self, exists as communities_exists};
use crate::store::tasks;
use crate::store::users::{self, ListFilter, NewUser, UserChanges, UserRow};
use crate::store::{new_id, now, sessions};

/// A user account as clients see it; the phone number is masked.
#[derive(Serialize, ToSchema)]
pub struct UserOut {
    #[schema(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub id: String,
    #[schema(example = "wang.fang")]
    pub username: String,
    #[schema(example = "王芳")]
    pub display_name: String,
    /// Masked, e.g. `138****8000`.
    #[schema(example = "138****8000")]
    pub phone: Option<String>,
    pub role: Role,
    pub community_id: Option<String>,
    pub active: bool,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<UserRow> for UserOut {
    fn from(u: UserRow) -> Self {
        UserOut {
            role: u.role,
            phone: u.phone.as_deref().map(mask::phone),
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            community_id: u.community_id,
            active: u.active,
            version: u.version,
            created_at: u.created_at.and_utc(),
            updated_at: u.updated_at.and_utc(),
        }
    }
}

#[derive(Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// 3–32 characters: letters, digits, `.`, `_`, `-`, starting with a letter or digit;
    /// stored in lower case.
    #[schema(example = "wang.fang", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{2,31}$")]
    pub username: String,
    /// 10–128 characters.
    #[schema(example = "a long passphrase", min_length = 10, max_length = 128)]
    pub password: String,
    #[schema(example = "王芳", min_length = 1, max_length = 64)]
    pub display_name: String,
    pub role: Role,
    /// Required for secretaries and grid workers (a secretary's own community by default);
    /// none for administrators.
    #[schema(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub community_id: Option<String>,
    /// A mainland mobile or a landline with area code; empty for none.
    #[schema(example = "13800138000", pattern = r"^(|1[3-9][0-9]{9}|(010|02[0-9]|0[3-9][0-9]{2})-?[0-9]{7,8})$")]
    pub phone: Option<String>,
}

fn check_username(name: &str) -> Option<FieldError> {
    let ok_chars = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    let ok_start = name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if !(3..=32).contains(&name.len()) || !ok_chars || !ok_start {
        return Some(FieldError::new(
            "username",
            "invalid_format",
            "must be 3–32 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
        ));
    }
    None
}

fn check_display_name(name: &str) -> Option<FieldError> {
    let mut errors = Vec::new();
    crate::api::validate::text("display_name", name, 64, &mut errors);
    errors.pop()
}

/// Checks a new account's fields; returns the normalised username and phone.
pub fn validate_new_user(input: &CreateUser) -> ApiResult<(String, Option<String>)> {
    let username = input.username.to_lowercase();
    let mut errors: Vec<FieldError> = Vec::new();
    errors.extend(check_username(&username));
    errors.extend(check_display_name(&input.display_name));
    errors.extend(password::check_policy("password", &input.password).err());
    let phone = match input.phone.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => match parse_phone("phone", p) {
            Ok(p) => Some(p),
            Err(e) => {
                errors.push(e);
                None
            }
        },
        None => None,
    };
    match (input.role, &input.community_id) {
        (Role::Admin, Some(_)) => {
            errors.push(FieldError::new("community_id", "not_allowed", "administrators belong to no community"))
        }
        (Role::Secretary | Role::GridWorker, None) => {
            errors.push(FieldError::new("community_id", "required", "secretaries and grid workers need a community"))
        }
        _ => {}
    }
    if errors.is_empty() { Ok((username, phone)) } else { Err(ApiError::Validation(errors)) }
}

/// Creates an account (API and CLI). `password_hash` was computed by the caller off the
/// async workers.
pub fn create_user(
    conn: &mut DbConn,
    actor: &Actor,
    input: &CreateUser,
    username: &str,
    phone: Option<&str>,
    password_hash: &str,
) -> ApiResult<UserRow> {
    if let Some(c) = &input.community_id
        && !communities_exists(conn, c)?
    {
        return Err(ApiError::invalid("community_id", "unknown", "no such community"));
    }
    if users::find_by_username(conn, username)?.is_some() {
        return Err(ApiError::conflict(ErrorCode::AlreadyExists, format!("the username `{username}` is taken")));
    }
    let id = new_id();
    let at = now();
    users::insert(
        conn,
        &NewUser {
            id: &id,
            username,
            display_name: input.display_name.trim(),
            phone,
            role: input.role.as_str(),
            community_id: input.community_id.as_deref(),
            active: true,
            password_hash,
            credentials_changed_at: at,
            version: 1,
            created_at: at,
            updated_at: at,
        },
    )?;
    audit::record(
        conn,
        actor,
        Event {
            action: "user.created",
            entity_type: "user",
            entity_id: Some(&id),
            community_id: input.community_id.as_deref(),
            summary: serde_json::json!({"username": username, "role": input.role.as_str()}),
        },
    )?;
    users::find(conn, &id)?.ok_or_else(|| ApiError::internal(anyhow::anyhow!("user vanished after insert")))
}

/// Creates an account. Administrators create anyone; a secretary creates grid workers of their
/// own community.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", operation_id = "create_user",
    request_body = CreateUser, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = UserOut, headers(("ETag" = String, description = "Version"))),
        (status = 400, description = "Malformed request", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 403, description = "The caller's role may not create this account", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Username taken", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid fields", body = Problem, content_type = PROBLEM),
    ))]
pub async fn create(state: web::Data<AppState>, caller: AuthUser, body: Body<CreateUser>) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin, Role::Secretary])?;
    let mut input = body.into_inner();
    if caller.role == Role::Secretary {
        if input.role != Role::GridWorker {
            return Err(ApiError::Forbidden("a secretary may only create grid worker accounts".into()));
        }
        match &input.community_id {
            None => input.community_id = caller.community_id.clone(),
            Some(c) if Some(c) != caller.community_id.as_ref() => {
                return Err(ApiError::Forbidden("a secretary creates accounts in their own community only".into()));
            }
            Some(_) => {}
        }
    }
    let (username, phone) = validate_new_user(&input)?;
    let pw = input.password.clone();
    let hash = web::block(move || password::hash(&pw)).await??;
    let actor = caller.actor();
    let row = state.db.write(move |conn| create_user(conn, &actor, &input, &username, phone.as_deref(), &hash)).await?;
    Ok(HttpResponse::Created().insert_header(etag(row.version)).json(UserOut::from(row)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListUsers {
    /// Only accounts of this community.
    #[param(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub community_id: Option<String>,
    pub role: Option<Role>,
    pub active: Option<bool>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500, example = 50)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// Lists the accounts the caller may see: all (admin), their community's (secretary), their
/// own (grid worker).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", operation_id = "list_users",
    params(ListUsers), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of accounts", body = Page<UserOut>),
        (status = 400, description = "Malformed query", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid limit or cursor", body = Problem, content_type = PROBLEM),
    ))]
pub async fn list(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: Params<ListUsers>,
) -> ApiResult<web::Json<Page<UserOut>>> {
    let q = query.into_inner();
    let fetch = fetch_limit(q.limit)?;
    let after = decode_cursor(q.cursor.as_deref(), 1)?.map(|mut k| k.remove(0));
    let mut filter = ListFilter {
        community_id: q.community_id,
        role: q.role.map(|r| r.as_str().to_owned()),
        active: q.active,
        after,
        ..Default::default()
    };
    match caller.role {
        Role::Admin => {}
        Role::Secretary => {
            if filter.community_id.is_some() && filter.community_id != caller.community_id {
                return Ok(web::Json(Page { items: vec![], next_cursor: None }));
            }
            filter.community_id = caller.community_id.clone();
        }
        Role::GridWorker => filter.only_id = Some(caller.id.clone()),
    }
    let rows = state.db.read(move |conn| Ok(users::list(conn, &filter, fetch)?)).await?;
    Ok(web::Json(page(rows, fetch, |u| vec![u.id.clone()], UserOut::from)))
}

/// One account.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", operation_id = "get_user",
    params(("id" = String, Path, description = "User id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = UserOut, headers(("ETag" = String, description = "Version"))),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such account in the caller's scope", body = Problem, content_type = PROBLEM),
    ))]
pub async fn get(state: web::Data<AppState>, caller: AuthUser, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let row = state.db.read(move |conn| scope::user(conn, &caller, &id)).await?;
    Ok(HttpResponse::Ok().insert_header(etag(row.version)).json(UserOut::from(row)))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    #[schema(example = "王芳", min_length = 1, max_length = 64)]
    pub display_name: Option<String>,
    /// A new phone number, or `null` (or empty) to remove it.
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<String>, example = "13800138000", pattern = r"^(|1[3-9][0-9]{9}|(010|02[0-9]|0[3-9][0-9]{2})-?[0-9]{7,8})$")]
    pub phone: Option<Option<String>>,
    /// `false` deactivates the account: its tokens stop working at once.
    pub active: Option<bool>,
    /// A new password (10–128 characters): the account's sessions end.
    #[schema(example = "another long passphrase", min_length = 10, max_length = 128)]
    pub password: Option<String>,
}

/// Changes an account. Anyone may change their own display name and phone; administrators
/// manage every account, secretaries the grid workers of their community.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", operation_id = "update_user",
    params(("id" = String, Path, description = "User id"),
           ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    request_body = PatchUser, security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed account", body = UserOut, headers(("ETag" = String, description = "Version"))),
        (status = 400, description = "Malformed request", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 403, description = "The caller may not manage this account", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such account in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 412, description = "If-Match names an old version", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid fields", body = Problem, content_type = PROBLEM),
    ))]
pub async fn patch(
    state: web::Data<AppState>,
    caller: AuthUser,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body<PatchUser>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let expected = if_match(&req)?;
    let input = body.into_inner();
    let mut errors = Vec::new();
    if let Some(name) = &input.display_name {
        errors.extend(check_display_name(name));
    }
    let phone = match &input.phone {
        Some(Some(p)) if p.is_empty() => Some(None),
        Some(Some(p)) => match parse_phone("phone", p) {
            Ok(p) => Some(Some(p)),
            Err(e) => {
                errors.push(e);
                None
            }
        },
        Some(None) => Some(None),
        None => None,
    };
    if let Some(pw) = &input.password {
        errors.extend(password::check_policy("password", pw).err());
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let manages = input.active.is_some() || input.password.is_some();
    if manages && caller.id == id {
        return Err(if input.active == Some(false) {
            ApiError::invalid("active", "not_allowed", "you cannot deactivate your own account")
        } else {
            ApiError::Forbidden("change your own password with PUT /api/v1/me/password".into())
        });
    }
    let hash = match input.password.clone() {
        Some(pw) => Some(web::block(move || password::hash(&pw)).await??),
        None => None,
    };
    let actor = caller.actor();
    let row = state
        .db
        .write(move |conn| {
            let target = scope::user_for_update(conn, &caller, &id)?;
            if manages || caller.id != target.id {
                scope::manage_user(&caller, &target)?;
            }
            check_version(expected, target.version)?;
            let at = now();
            let resets_password = hash.is_some();
            let ends_sessions = resets_password || input.active == Some(false);
            let changes = UserChanges {
                display_name: input.display_name.as_ref().map(|n| n.trim().to_owned()),
                phone,
                active: input.active,
                password_hash: hash,
                credentials_changed_at: ends_sessions.then_some(at),
                version: Some(target.version + 1),
                updated_at: Some(at),
            };
            if !users::update(conn, &target.id, target.version, &changes)? {
                return Err(ApiError::PreconditionFailed("the account changed meanwhile; fetch it again".into()));
            }
            if ends_sessions {
                sessions::revoke_all_for_user(conn, &target.id)?;
            }
            // A new password set by a manager ends the lock that guesses at the old one caused.
            if resets_password {
                crate::auth::throttle::succeeded(conn, &target.username)?;
            }
            // A deactivated account serves no grid: its assignments end and its open tasks go
            // to each grid's primary worker, or to the secretary's queue.
            let mut grids_left = Vec::new();
            if input.active == Some(false) && target.active {
                grids_left = communities::unassign_everywhere(conn, &target.id)?;
                for grid_id in &grids_left {
                    tasks::hand_on(conn, grid_id, at)?;
                    communities::touch_grid(conn, grid_id, at)?;
                }
            }
            let fields = audit::fields_set([
                ("display_name", input.display_name.is_some()),
                ("phone", input.phone.is_some()),
                ("active", input.active.is_some()),
                ("password", input.password.is_some()),
            ]);
            audit::record(
                conn,
                &actor,
                Event {
                    action: "user.updated",
                    entity_type: "user",
                    entity_id: Some(&target.id),
                    community_id: target.community_id.as_deref(),
                    summary: serde_json::json!({"fields": fields, "active": input.active, "grids_left": grids_left}),
                },
            )?;
            users::find(conn, &target.id)?.ok_or_else(|| ApiError::not_found("user"))
        })
        .await?;
    Ok(HttpResponse::Ok().insert_header(etag(row.version)).json(UserOut::from(row)))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/users").route(web::get().to(list)).route(web::post().to(create)))
        .service(web::resource("/users/{id}").route(web::get().to(get)).route(web::patch().to(patch)));
}
