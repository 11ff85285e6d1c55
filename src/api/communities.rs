//! Communities (`/communities`) and their grids (`/communities/{id}/grids`, `/grids/{id}`,
//! `/grids/{id}/workers`).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::conditional::{check_version, etag, if_match};
use crate::api::input::{Body, Params};
use crate::api::pagination::{Page, PageQuery, decode_cursor, fetch_limit, page};
use crate::api::validate::{done, notes, optional_text, text};
use crate::auth::AuthUser;
use crate::auth::scope::{self, Reach};
use crate::domain::{GridCode, Role, is_division_code};
use crate::error::{ApiError, ApiResult, ErrorCode, FieldError, PROBLEM_JSON as PROBLEM, Problem};
use crate::store::audit::{self, Event};
use crate::store::communities::{self, CommunityChanges, CommunityRow, GridChanges, GridRow};
use crate::store::{new_id, now, users};

#[derive(Serialize, ToSchema)]
pub struct CommunityOut {
    pub id: String,
    #[schema(example = "建新社区")]
    pub name: String,
    #[schema(example = "市中区")]
    pub district: String,
    #[schema(example = "七里山街道")]
    pub street: String,
    /// GB/T 2260 division code.
    #[schema(example = "370103")]
    pub division_code: String,
    #[schema(example = "Asia/Shanghai")]
    pub timezone: String,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<CommunityRow> for CommunityOut {
    fn from(c: CommunityRow) -> Self {
        CommunityOut {
            id: c.id,
            name: c.name,
            district: c.district,
            street: c.street,
            division_code: c.division_code,
            timezone: c.timezone,
            version: c.version,
            created_at: c.created_at.and_utc(),
            updated_at: c.updated_at.and_utc(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCommunity {
    #[schema(example = "建新社区", min_length = 1, max_length = 64)]
    pub name: String,
    #[schema(example = "市中区", min_length = 1, max_length = 64)]
    pub district: String,
    #[schema(example = "七里山街道", min_length = 1, max_length = 64)]
    pub street: String,
    /// GB/T 2260 county-level division code: a real province (first 2 digits), not a whole
    /// province (`xx0000`).
    #[schema(example = "370103", pattern = "^[0-9]{6}$")]
    pub division_code: String,
    /// IANA timezone; `Asia/Shanghai` by default.
    #[schema(example = "Asia/Shanghai", min_length = 1)]
    pub timezone: Option<String>,
}

fn check_timezone(tz: &str, errors: &mut Vec<FieldError>) {
    if tz.parse::<chrono_tz::Tz>().is_err() {
        errors.push(FieldError::new("timezone", "unknown_timezone", "must be an IANA timezone such as Asia/Shanghai"));
    }
}

/// Creates a community (administrators only).
#[utoipa::path(post, path = "/api/v1/communities", tag = "communities", operation_id = "create_community",
    request_body = CreateCommunity, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = CommunityOut, headers(("ETag" = String, description = "Version"))),
        (status = 400, description = "Malformed request", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Only administrators create communities", body = Problem, content_type = PROBLEM),
        (status = 409, description = "A community of that name exists in that street", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid fields", body = Problem, content_type = PROBLEM),
    ))]
pub async fn create(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: Body<CreateCommunity>,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin])?;
    let input = body.into_inner();
    let mut errors = Vec::new();
    let name = text("name", &input.name, 64, &mut errors);
    let district = text("district", &input.district, 64, &mut errors);
    let street = text("street", &input.street, 64, &mut errors);
    if input.division_code.len() != 6 || !input.division_code.bytes().all(|b| b.is_ascii_digit()) {
        errors.push(FieldError::new("division_code", "invalid_format", "must be a 6-digit GB/T 2260 division code"));
    } else if !is_division_code(&input.division_code) {
        errors.push(FieldError::new("division_code", "unknown_division", "is not a county-level GB/T 2260 division"));
    }
    let timezone = input.timezone.unwrap_or_else(|| "Asia/Shanghai".to_owned());
    check_timezone(&timezone, &mut errors);
    done(errors)?;
    let at = now();
    let row = CommunityRow {
        id: new_id(),
        name,
        district,
        street,
        division_code: input.division_code,
        timezone,
        version: 1,
        created_at: at,
        updated_at: at,
    };
    let actor = caller.actor();
    let row = state
        .db
        .write(move |conn| {
            communities::insert(conn, &row)?;
            crate::store::plans::create_defaults(conn, &row.id)?;
            audit::record(
                conn,
                &actor,
                Event {
                    action: "community.created",
                    entity_type: "community",
                    entity_id: Some(&row.id),
                    community_id: Some(&row.id),
                    summary: serde_json::json!({"name": row.name, "division_code": row.division_code}),
                },
            )?;
            Ok(row)
        })
        .await?;
    Ok(HttpResponse::Created().insert_header(etag(row.version)).json(CommunityOut::from(row)))
}

/// Lists communities: all for administrators, their own for everyone else.
#[utoipa::path(get, path = "/api/v1/communities", tag = "communities", operation_id = "list_communities",
    params(PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of communities", body = Page<CommunityOut>),
        (status = 400, description = "Malformed query", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid limit or cursor", body = Problem, content_type = PROBLEM),
    ))]
pub async fn list(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: Params<PageQuery>,
) -> ApiResult<web::Json<Page<CommunityOut>>> {
    let fetch = fetch_limit(query.limit)?;
    let after = decode_cursor(query.cursor.as_deref(), 1)?.map(|mut k| k.remove(0));
    let only = if caller.is_admin() { None } else { caller.community_id.clone() };
    let rows =
        state.db.read(move |conn| Ok(communities::list(conn, only.as_deref(), after.as_deref(), fetch)?)).await?;
    Ok(web::Json(page(rows, fetch, |c| vec![c.id.clone()], CommunityOut::from)))
}

/// One community.
#[utoipa::path(get, path = "/api/v1/communities/{id}", tag = "communities", operation_id = "get_community",
    params(("id" = String, Path, description = "Community id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The community", body = CommunityOut, headers(("ETag" = String, description = "Version"))),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such community in the caller's scope", body = Problem, content_type = PROBLEM),
    ))]
pub async fn get(state: web::Data<AppState>, caller: AuthUser, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let row = state.db.read(move |conn| scope::community(conn, &caller, &id)).await?;
    Ok(HttpResponse::Ok().insert_header(etag(row.version)).json(CommunityOut::from(row)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchCommunity {
    #[schema(example = "建新社区", min_length = 1, max_length = 64)]
    pub name: Option<String>,
    #[schema(example = "市中区", min_length = 1, max_length = 64)]
    pub district: Option<String>,
    #[schema(example = "七里山街道", min_length = 1, max_length = 64)]
    pub street: Option<String>,
    /// IANA timezone.
    #[schema(example = "Asia/Shanghai", min_length = 1)]
    pub timezone: Option<String>,
}

/// Changes a community (administrators). The division code is fixed: grid codes derive from it.
#[utoipa::path(patch, path = "/api/v1/communities/{id}", tag = "communities", operation_id = "update_community",
    params(("id" = String, Path, description = "Community id"),
           ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    request_body = PatchCommunity, security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed community", body = CommunityOut, headers(("ETag" = String, description = "Version"))),
        (status = 400, description = "Malformed request", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Only administrators change communities", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such community in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 412, description = "If-Match names an old version", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid fields", body = Problem, content_type = PROBLEM),
    ))]
pub async fn patch(
    state: web::Data<AppState>,
    caller: AuthUser,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body<PatchCommunity>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let expected = if_match(&req)?;
    let input = body.into_inner();
    let actor = caller.actor();
    let row = state
        .db
        .write(move |conn| {
            let current = scope::community_for_update(conn, &caller, &id)?;
            caller.require(&[Role::Admin])?;
            let mut errors = Vec::new();
            let changes = CommunityChanges {
                name: input.name.as_deref().map(|v| text("name", v, 64, &mut errors)),
                district: input.district.as_deref().map(|v| text("district", v, 64, &mut errors)),
                street: input.street.as_deref().map(|v| text("street", v, 64, &mut errors)),
                timezone: input.timezone.clone(),
                version: Some(current.version + 1),
                updated_at: Some(now()),
            };
            if let Some(tz) = &input.timezone {
                check_timezone(tz, &mut errors);
            }
            done(errors)?;
            // Preconditions count only for requests that are otherwise valid (RFC 9110 §13.2.1).
            check_version(expected, current.version)?;
            if !communities::update(conn, &id, current.version, &changes)? {
                return Err(ApiError::PreconditionFailed("the community changed meanwhile; fetch it again".into()));
            }
            audit::record(conn, &actor, Event {
                action: "community.updated",
                entity_type: "community",
                entity_id: Some(&id),
                community_id: Some(&id),
                summary: serde_json::json!({"name": input.name, "district": input.district, "street": input.street, "timezone": input.timezone}),
            })?;
            communities::find(conn, &id)?.ok_or_else(|| ApiError::not_found("community"))
        })
        .await?;
    Ok(HttpResponse::Ok().insert_header(etag(row.version)).json(CommunityOut::from(row)))
}

#[derive(Serialize, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct Station {
    /// 网格驿站 name.
    #[schema(example = "建新网格驿站", min_length = 1, max_length = 64)]
    pub name: String,
    #[schema(example = "建新社区 3 号楼一层", max_length = 128)]
    pub address: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct GridWorkerOut {
    pub user_id: String,
    pub username: String,
    pub display_name: String,
    pub primary: bool,
    pub active: bool,
}

#[derive(Serialize, ToSchema)]
pub struct GridOut {
    pub id: String,
    pub community_id: String,
    /// CJ/T 349-2010: division (6) + street (3) + community (3) + grid (2).
    #[schema(example = "37010300100101")]
    pub code: String,
    #[schema(example = "建新社区第一网格")]
    pub name: String,
    pub description: Option<String>,
    pub station: Option<Station>,
    pub workers: Vec<GridWorkerOut>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn grid_out(g: GridRow, workers: Vec<communities::AssignmentRow>) -> GridOut {
    GridOut {
        station: g.station_name.map(|name| Station { name, address: g.station_address }),
        workers: workers
            .into_iter()
            .map(|w| GridWorkerOut {
                user_id: w.user_id,
                username: w.username,
                display_name: w.display_name,
                primary: w.is_primary,
                active: w.active,
            })
            .collect(),
        id: g.id,
        community_id: g.community_id,
        code: g.code,
        name: g.name,
        description: g.description,
        version: g.version,
        created_at: g.created_at.and_utc(),
        updated_at: g.updated_at.and_utc(),
    }
}

fn load_grid_out(conn: &mut crate::db::DbConn, id: &str) -> ApiResult<GridOut> {
    let g = communities::find_grid(conn, id)?.ok_or_else(|| ApiError::not_found("grid"))?;
    let workers = communities::grid_workers(conn, id)?;
    Ok(grid_out(g, workers))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGrid {
    /// CJ/T 349-2010: the community's division code (6), street (3), community (3), grid
    /// sequence (2, not `00`).
    #[schema(example = "37010300100101", pattern = "^[0-9]{12}(0[1-9]|[1-9][0-9])$")]
    pub code: String,
    #[schema(example = "建新社区第一网格", min_length = 1, max_length = 64)]
    pub name: String,
    #[schema(example = "建新路以东、七里山路以北的 6 栋楼", max_length = 500)]
    pub description: Option<String>,
    pub station: Option<Station>,
}

fn check_code(code: &str, division: &str, errors: &mut Vec<FieldError>) -> String {
    match GridCode::parse(code, division) {
        Ok(c) => c.as_str().to_owned(),
        Err(e) => {
            errors.push(FieldError::new("code", e.code(), e.to_string()));
            code.to_owned()
        }
    }
}

fn station_fields(station: Option<&Station>, errors: &mut Vec<FieldError>) -> (Option<String>, Option<String>) {
    match station {
        Some(s) => (
            Some(text("station.name", &s.name, 64, errors)),
            optional_text("station.address", s.address.as_deref(), 128, errors),
        ),
        None => (None, None),
    }
}

/// Creates a grid in a community (its secretary, or an administrator).
#[utoipa::path(post, path = "/api/v1/communities/{id}/grids", tag = "grids", operation_id = "create_grid",
    params(("id" = String, Path, description = "Community id")),
    request_body = CreateGrid, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = GridOut, headers(("ETag" = String, description = "Version"))),
        (status = 400, description = "Malformed request", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Grid workers do not manage grids", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such community in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The grid code is taken", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid fields", body = Problem, content_type = PROBLEM),
    ))]
pub async fn create_grid(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
    body: Body<CreateGrid>,
) -> ApiResult<HttpResponse> {
    let community_id = path.into_inner();
    let input = body.into_inner();
    let actor = caller.actor();
    let out = state
        .db
        .write(move |conn| {
            let community = scope::community(conn, &caller, &community_id)?;
            caller.require(&[Role::Admin, Role::Secretary])?;
            let mut errors = Vec::new();
            let code = check_code(&input.code, &community.division_code, &mut errors);
            let name = text("name", &input.name, 64, &mut errors);
            let description = notes("description", input.description.as_deref(), 500, &mut errors);
            let (station_name, station_address) = station_fields(input.station.as_ref(), &mut errors);
            done(errors)?;
            let at = now();
            let row = GridRow {
                id: new_id(),
                community_id: community.id.clone(),
                code,
                name,
                description,
                station_name,
                station_address,
                version: 1,
                created_at: at,
                updated_at: at,
            };
            communities::insert_grid(conn, &row).map_err(|e| match ApiError::from(e) {
                ApiError::Conflict(..) => {
                    ApiError::conflict(ErrorCode::AlreadyExists, format!("the grid code {} is taken", row.code))
                }
                other => other,
            })?;
            audit::record(
                conn,
                &actor,
                Event {
                    action: "grid.created",
                    entity_type: "grid",
                    entity_id: Some(&row.id),
                    community_id: Some(&row.community_id),
                    summary: serde_json::json!({"code": row.code, "name": row.name}),
                },
            )?;
            Ok(grid_out(row, vec![]))
        })
        .await?;
    Ok(HttpResponse::Created().insert_header(etag(out.version)).json(out))
}

/// Lists a community's grids by code; grid workers see the grids they are assigned to.
#[utoipa::path(get, path = "/api/v1/communities/{id}/grids", tag = "grids", operation_id = "list_grids",
    params(("id" = String, Path, description = "Community id"), PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of grids", body = Page<GridOut>),
        (status = 400, description = "Malformed query", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such community in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid limit or cursor", body = Problem, content_type = PROBLEM),
    ))]
pub async fn list_grids(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
    query: Params<PageQuery>,
) -> ApiResult<web::Json<Page<GridOut>>> {
    let community_id = path.into_inner();
    let fetch = fetch_limit(query.limit)?;
    let after = decode_cursor(query.cursor.as_deref(), 1)?.map(|mut k| k.remove(0));
    let page = state
        .db
        .read(move |conn| {
            scope::community(conn, &caller, &community_id)?;
            let only = match scope::reach(conn, &caller)? {
                Reach::Grids { grid_ids, .. } => Some(grid_ids),
                _ => None,
            };
            let rows = communities::list_grids(conn, &community_id, only.as_deref(), after.as_deref(), fetch)?;
            let mut out = Vec::with_capacity(rows.len());
            for g in rows {
                let workers = communities::grid_workers(conn, &g.id)?;
                out.push((g.code.clone(), grid_out(g, workers)));
            }
            Ok(page(out, fetch, |(code, _)| vec![code.clone()], |(_, g)| g))
        })
        .await?;
    Ok(web::Json(page))
}

/// One grid, with its workers.
#[utoipa::path(get, path = "/api/v1/grids/{id}", tag = "grids", operation_id = "get_grid",
    params(("id" = String, Path, description = "Grid id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The grid", body = GridOut, headers(("ETag" = String, description = "Version"))),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such grid in the caller's scope", body = Problem, content_type = PROBLEM),
    ))]
pub async fn get_grid(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let out = state
        .db
        .read(move |conn| {
            scope::grid(conn, &caller, &id)?;
            load_grid_out(conn, &id)
        })
        .await?;
    Ok(HttpResponse::Ok().insert_header(etag(out.version)).json(out))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchGrid {
    /// CJ/T 349-2010, starting with the community's division code.
    #[schema(example = "37010300100101", pattern = "^[0-9]{12}(0[1-9]|[1-9][0-9])$")]
    pub code: Option<String>,
    #[schema(example = "建新社区第一网格", min_length = 1, max_length = 64)]
    pub name: Option<String>,
    /// A new description, or `null` to clear it.
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<String>, example = "建新路以东的 6 栋楼", max_length = 500)]
    pub description: Option<Option<String>>,
    /// A new station, or `null` to clear it.
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<Station>)]
    pub station: Option<Option<Station>>,
}

/// Changes a grid (its community's secretary, or an administrator).
#[utoipa::path(patch, path = "/api/v1/grids/{id}", tag = "grids", operation_id = "update_grid",
    params(("id" = String, Path, description = "Grid id"),
           ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    request_body = PatchGrid, security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed grid", body = GridOut, headers(("ETag" = String, description = "Version"))),
        (status = 400, description = "Malformed request", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Grid workers do not manage grids", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such grid in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The grid code is taken", body = Problem, content_type = PROBLEM),
        (status = 412, description = "If-Match names an old version", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid fields", body = Problem, content_type = PROBLEM),
    ))]
pub async fn patch_grid(
    state: web::Data<AppState>,
    caller: AuthUser,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body<PatchGrid>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let expected = if_match(&req)?;
    let input = body.into_inner();
    let actor = caller.actor();
    let out = state
        .db
        .write(move |conn| {
            scope::grid(conn, &caller, &id)?;
            caller.require(&[Role::Admin, Role::Secretary])?;
            let grid = scope::grid_for_update(conn, &caller, &id)?;
            let community =
                communities::find(conn, &grid.community_id)?.ok_or_else(|| ApiError::not_found("community"))?;
            let mut errors = Vec::new();
            let code = input.code.as_deref().map(|c| check_code(c, &community.division_code, &mut errors));
            let name = input.name.as_deref().map(|n| text("name", n, 64, &mut errors));
            let description = input.description.as_ref().map(|d| notes("description", d.as_deref(), 500, &mut errors));
            let station = input.station.as_ref().map(|s| station_fields(s.as_ref(), &mut errors));
            done(errors)?;
            // Preconditions count only for requests that are otherwise valid (RFC 9110 §13.2.1).
            check_version(expected, grid.version)?;
            let changes = GridChanges {
                code,
                name,
                description,
                station_name: station.as_ref().map(|s| s.0.clone()),
                station_address: station.as_ref().map(|s| s.1.clone()),
                version: Some(grid.version + 1),
                updated_at: Some(now()),
            };
            if !communities::update_grid(conn, &id, grid.version, &changes)? {
                return Err(ApiError::PreconditionFailed("the grid changed meanwhile; fetch it again".into()));
            }
            audit::record(
                conn,
                &actor,
                Event {
                    action: "grid.updated",
                    entity_type: "grid",
                    entity_id: Some(&id),
                    community_id: Some(&grid.community_id),
                    summary: serde_json::json!({"code": input.code, "name": input.name}),
                },
            )?;
            load_grid_out(conn, &id)
        })
        .await?;
    Ok(HttpResponse::Ok().insert_header(etag(out.version)).json(out))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerAssignment {
    /// A grid worker of the grid's community.
    #[schema(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub user_id: String,
    /// The grid's primary worker gets its new tasks; at most one per grid.
    #[serde(default)]
    pub primary: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutWorkers {
    pub workers: Vec<WorkerAssignment>,
}

/// Replaces a grid's worker assignments (its community's secretary, or an administrator).
/// When the primary worker changes, the grid's open tasks move to the new one.
#[utoipa::path(put, path = "/api/v1/grids/{id}/workers", tag = "grids", operation_id = "put_grid_workers",
    params(("id" = String, Path, description = "Grid id")),
    request_body = PutWorkers, security(("bearer" = [])),
    responses(
        (status = 200, description = "The grid with its new workers", body = GridOut, headers(("ETag" = String, description = "Version"))),
        (status = 400, description = "Malformed request", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Grid workers do not manage assignments", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such grid in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Unknown users, users of another community or role, two primaries", body = Problem, content_type = PROBLEM),
    ))]
pub async fn put_workers(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
    body: Body<PutWorkers>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let input = body.into_inner();
    let actor = caller.actor();
    let out = state
        .db
        .write(move |conn| {
            scope::grid(conn, &caller, &id)?;
            caller.require(&[Role::Admin, Role::Secretary])?;
            communities::lock_for_worker_change(conn, &id)?;
            let grid = scope::grid_for_update(conn, &caller, &id)?;
            let mut errors = Vec::new();
            if input.workers.iter().filter(|w| w.primary).count() > 1 {
                errors.push(FieldError::new("workers", "two_primaries", "a grid has at most one primary worker"));
            }
            let mut seen = std::collections::HashSet::new();
            for (i, w) in input.workers.iter().enumerate() {
                let field = format!("workers[{i}].user_id");
                if !seen.insert(w.user_id.clone()) {
                    errors.push(FieldError::new(field, "duplicate", "listed twice"));
                    continue;
                }
                match users::find(conn, &w.user_id)? {
                    Some(u) if u.role == Role::GridWorker && u.community_id.as_deref() == Some(&grid.community_id) => {
                        if !u.active {
                            errors.push(FieldError::new(field, "inactive", "the account is deactivated"));
                        }
                    }
                    Some(u) if u.community_id.as_deref() == Some(&grid.community_id) => {
                        errors.push(FieldError::new(field, "not_a_grid_worker", "only grid workers serve grids"))
                    }
                    _ => errors.push(FieldError::new(field, "unknown", "no such grid worker in this community")),
                }
            }
            done(errors)?;
            let before = communities::primary_worker(conn, &id)?;
            let workers: Vec<(String, bool)> = input.workers.iter().map(|w| (w.user_id.clone(), w.primary)).collect();
            let at = now();
            communities::replace_workers(conn, &id, &workers, at)?;
            let after = communities::primary_worker(conn, &id)?;
            // A new primary takes the grid's open tasks; otherwise those of workers who left
            // the grid go to the primary (or to nobody).
            let moved = if before != after {
                crate::store::tasks::move_open_tasks(conn, &id, after.as_deref(), at)?
            } else {
                crate::store::tasks::hand_on(conn, &id, at)?
            };
            communities::update_grid(conn, &id, grid.version, &GridChanges {
                version: Some(grid.version + 1),
                updated_at: Some(at),
                ..Default::default()
            })?;
            audit::record(conn, &actor, Event {
                action: "grid.workers_replaced",
                entity_type: "grid",
                entity_id: Some(&id),
                community_id: Some(&grid.community_id),
                summary: serde_json::json!({"workers": workers.iter().map(|(u, p)| serde_json::json!({"user_id": u, "primary": p})).collect::<Vec<_>>(),
                    "primary_before": before, "primary_after": after, "open_tasks_moved": moved}),
            })?;
            load_grid_out(conn, &id)
        })
        .await?;
    Ok(HttpResponse::Ok().insert_header(etag(out.version)).json(out))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/communities").route(web::get().to(list)).route(web::post().to(create)))
        .service(web::resource("/communities/{id}").route(web::get().to(get)).route(web::patch().to(patch)))
        .service(
            web::resource("/communities/{id}/grids")
                .route(web::get().to(list_grids))
                .route(web::post().to(create_grid)),
        )
        .service(web::resource("/grids/{id}").route(web::get().to(get_grid)).route(web::patch().to(patch_grid)))
        .service(web::resource("/grids/{id}/workers").route(web::put().to(put_workers)));
}
