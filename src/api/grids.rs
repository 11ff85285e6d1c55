//! Grids: `/communities/{id}/grids`, `/grids/{id}`, `/grids/{id}/workers`. The rules are in
//! [`crate::ops::grids`].

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::api::answer::{Api, View};
use crate::api::conditional::IfMatch;
use crate::api::input::Body;
use crate::api::pagination::{Page, PageQuery};
use crate::api::validate::{clean, clean_optional, declared, done};
use crate::auth::scope::{self, Reach};
use crate::db::DbConn;
use crate::domain::GridCode;
use crate::domain::text::{optional_line, optional_lines, required_line};
use crate::error::{ApiResult, FieldError, PROBLEM_JSON as PROBLEM, Problem};
use crate::ops;
use crate::ops::grids::{Assignment, GridEdit, NewGrid};
use crate::store::communities::{self, GridRow};

#[derive(Serialize, Deserialize, ToSchema, Validate, Clone)]
#[serde(deny_unknown_fields)]
pub struct Station {
    /// 网格驿站 name.
    #[schema(example = "建新网格驿站", min_length = 1, max_length = 64)]
    #[validate(length(max = 64, code = "too_long"), custom(function = "required_line"))]
    pub name: String,
    #[schema(example = "建新社区 3 号楼一层", max_length = 128)]
    #[validate(length(max = 128, code = "too_long"), custom(function = "optional_line"))]
    pub address: Option<String>,
}

impl Station {
    /// As stored: its text trimmed; a blank address is none.
    fn cleaned(self) -> ops::grids::Station {
        ops::grids::Station { name: clean(&self.name), address: clean_optional(self.address.as_deref()) }
    }
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

/// A grid with its workers.
pub fn view(conn: &mut DbConn, g: GridRow) -> ApiResult<GridOut> {
    let workers = communities::grid_workers(conn, &g.id)?;
    Ok(GridOut {
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
    })
}

impl View for GridRow {
    type Out = GridOut;

    fn version(&self) -> Option<i32> {
        Some(self.version)
    }

    fn view(self, conn: &mut DbConn) -> ApiResult<GridOut> {
        view(conn, self)
    }
}

/// The form of a grid code (the division part is checked against the community by the
/// operation); the code without surrounding whitespace.
fn code(code: &str, errors: &mut Vec<FieldError>) -> String {
    GridCode::check_form(code).map(str::to_owned).unwrap_or_else(|e| {
        errors.push(FieldError::new("code", e.code(), e.to_string()));
        String::new()
    })
}

#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct CreateGrid {
    /// CJ/T 349-2010: the community's division code (6), street (3: the last digits of the
    /// community's street code, 422 `street_mismatch` otherwise), community (3), grid sequence (2,
    /// not `00`).
    #[schema(example = "37010300100101", pattern = "^[0-9]{12}(0[1-9]|[1-9][0-9])$")]
    pub code: String,
    #[schema(example = "建新社区第一网格", min_length = 1, max_length = 64)]
    #[validate(length(max = 64, code = "too_long"), custom(function = "required_line"))]
    pub name: String,
    #[schema(example = "建新路以东、七里山路以北的 6 栋楼", max_length = 500)]
    #[validate(length(max = 500, code = "too_long"), custom(function = "optional_lines"))]
    pub description: Option<String>,
    #[validate(nested)]
    pub station: Option<Station>,
}

impl CreateGrid {
    fn checked(self) -> ApiResult<NewGrid> {
        let mut errors = declared(&self);
        let code = code(&self.code, &mut errors);
        done(errors)?;
        Ok(NewGrid {
            code,
            name: clean(&self.name),
            description: clean_optional(self.description.as_deref()),
            station: self.station.map(Station::cleaned),
        })
    }
}

/// Creates a grid in a community (its secretary, or an administrator).
#[utoipa::path(post, path = "/api/v1/communities/{id}/grids", tag = "grids", operation_id = "create_grid",
    request_body = CreateGrid, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = GridOut),
        (status = 403, description = "Grid workers do not manage grids", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The grid code is taken (`already_exists`)", body = Problem, content_type = PROBLEM),
    ))]
pub async fn create(api: Api, community_id: web::Path<String>, body: Body<CreateGrid>) -> ApiResult<HttpResponse> {
    let input = body.into_inner().checked()?;
    api.created(move |c, caller| ops::grids::create(c, caller, &community_id, input)).await
}

/// Lists a community's grids by code; grid workers see the grids they are assigned to.
#[utoipa::path(get, path = "/api/v1/communities/{id}/grids", tag = "grids", operation_id = "list_grids",
    params(PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of grids", body = Page<GridOut>),
    ))]
pub async fn list(api: Api, community_id: web::Path<String>, page: PageQuery) -> ApiResult<web::Json<Page<GridOut>>> {
    let (fetch, after) = (page.fetch()?, page.after_id()?);
    api.listed(move |c, caller| {
        scope::community(c, caller, &community_id)?;
        let only = match scope::reach(c, caller)? {
            Reach::Grids { grid_ids, .. } => Some(grid_ids),
            _ => None,
        };
        let rows = communities::list_grids(c, &community_id, only.as_deref(), after.as_deref(), fetch)?;
        Ok(Page::of(rows, fetch, |g| vec![g.code.clone()]))
    })
    .await
}

/// One grid, with its workers.
#[utoipa::path(get, path = "/api/v1/grids/{id}", tag = "grids", operation_id = "get_grid",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The grid", body = GridOut),
    ))]
pub async fn get(api: Api, id: web::Path<String>) -> ApiResult<HttpResponse> {
    api.current(move |c, caller| scope::grid(c, caller, &id)).await
}

#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct PatchGrid {
    /// CJ/T 349-2010, starting with the community's street code (division code + street digits);
    /// checked when it changes, so a grid keeps its code when its community moves street.
    #[schema(example = "37010300100101", pattern = "^[0-9]{12}(0[1-9]|[1-9][0-9])$")]
    pub code: Option<String>,
    #[schema(example = "建新社区第一网格", min_length = 1, max_length = 64)]
    #[validate(length(max = 64, code = "too_long"), custom(function = "required_line"))]
    pub name: Option<String>,
    /// A new description, or `null` to clear it.
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<String>, example = "建新路以东的 6 栋楼", max_length = 500)]
    #[validate(length(max = 500, code = "too_long"), custom(function = "optional_lines"))]
    pub description: Option<Option<String>>,
    /// A new station, or `null` to clear it.
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<Station>)]
    #[validate(nested)]
    pub station: Option<Option<Station>>,
}

impl PatchGrid {
    fn checked(self) -> ApiResult<GridEdit> {
        let mut errors = declared(&self);
        let code = self.code.map(|c| code(&c, &mut errors));
        done(errors)?;
        Ok(GridEdit {
            code,
            name: self.name.as_deref().map(clean),
            description: self.description.map(|d| clean_optional(d.as_deref())),
            station: self.station.map(|s| s.map(Station::cleaned)),
        })
    }
}

/// Changes a grid (its community's secretary, or an administrator).
#[utoipa::path(patch, path = "/api/v1/grids/{id}", tag = "grids", operation_id = "update_grid",
    params(IfMatch), request_body = PatchGrid, security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed grid", body = GridOut),
        (status = 403, description = "Grid workers do not manage grids", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The grid code is taken (`already_exists`)", body = Problem, content_type = PROBLEM),
    ))]
pub async fn patch(
    api: Api,
    if_match: IfMatch,
    id: web::Path<String>,
    body: Body<PatchGrid>,
) -> ApiResult<HttpResponse> {
    let edit = body.into_inner().checked()?;
    api.updated(move |c, caller| ops::grids::edit(c, caller, &id, if_match.version(), edit)).await
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
    request_body = PutWorkers, security(("bearer" = [])),
    responses(
        (status = 200, description = "The grid with its new workers", body = GridOut),
        (status = 403, description = "Grid workers do not manage assignments", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Unknown users, users of another community or role, two primaries", body = Problem, content_type = PROBLEM),
    ))]
pub async fn put_workers(api: Api, id: web::Path<String>, body: Body<PutWorkers>) -> ApiResult<HttpResponse> {
    let workers: Vec<Assignment> =
        body.into_inner().workers.into_iter().map(|w| Assignment { user_id: w.user_id, primary: w.primary }).collect();
    api.updated(move |c, caller| ops::grids::set_workers(c, caller, &id, workers)).await
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/communities/{id}/grids").route(web::get().to(list)).route(web::post().to(create)))
        .service(web::resource("/grids/{id}").route(web::get().to(get)).route(web::patch().to(patch)))
        .service(web::resource("/grids/{id}/workers").route(web::put().to(put_workers)));
}
