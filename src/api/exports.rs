//! Rosters out: `GET /exports/households.xlsx` and `.csv`, and the template an import reads
//! (`GET /imports/template.xlsx` and `.csv`) — the same columns both ways (see
//! [`crate::roster::write`]), so that an export imported again changes nothing.
//!
//! ID numbers, phones and birth dates are masked as in every answer; a secretary may ask for
//! them in clear with a `reason`, which is audited like a reveal ([`crate::ops::pii`]).

use std::collections::HashMap;

use actix_web::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION};
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::IntoParams;
use validator::Validate;

use crate::api::answer::Api;
use crate::api::imports::Spreadsheet;
use crate::api::input::Params;
use crate::api::validate::{clean_optional, declared, done};
use crate::auth::{AuthUser, scope};
use crate::db::DbConn;
use crate::domain::text::optional_line;
use crate::domain::{Gender, Role, mask};
use crate::error::{ApiError, ApiResult, PROBLEM_JSON as PROBLEM, Problem};
use crate::ops;
use crate::roster::cells::{grade_word, relation_word};
use crate::roster::columns::{COLUMNS, Column};
use crate::roster::write::{self, Line, position};
use crate::store::communities;
use crate::store::households::{self, HouseholdRow, MemberRow};

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const CSV: &str = "text/csv; charset=utf-8";

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Xlsx,
    Csv,
}

/// A roster's bytes (CPU work for a large one: off the async workers).
fn render(kind: Kind, lines: &[Line]) -> ApiResult<Vec<u8>> {
    match kind {
        Kind::Xlsx => write::xlsx(lines).map_err(ApiError::internal),
        Kind::Csv => Ok(write::csv(lines)),
    }
}

/// The file as a download; never cached when it holds clear values.
fn respond(kind: Kind, name: &str, body: Vec<u8>, clear: bool) -> HttpResponse {
    let (content_type, ext) = match kind {
        Kind::Xlsx => (XLSX, "xlsx"),
        Kind::Csv => (CSV, "csv"),
    };
    let mut res = HttpResponse::Ok();
    res.content_type(content_type)
        .insert_header((CONTENT_DISPOSITION, format!("attachment; filename=\"{name}.{ext}\"")));
    if clear {
        res.insert_header((CACHE_CONTROL, "no-store"));
    }
    res.body(body)
}

fn file(kind: Kind, name: &str, lines: &[Line], clear: bool) -> ApiResult<HttpResponse> {
    Ok(respond(kind, name, render(kind, lines)?, clear))
}

/// The empty roster with the columns' explanation and the allowed values as lists.
#[utoipa::path(get, path = "/api/v1/imports/template.xlsx", tag = "imports", operation_id = "import_template_xlsx",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The template workbook", body = Spreadsheet,
            content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ))]
pub async fn template_xlsx(_: AuthUser) -> ApiResult<HttpResponse> {
    file(Kind::Xlsx, "roster-template", &[], false)
}

/// The empty roster as CSV: the header row, with a UTF-8 byte order mark.
#[utoipa::path(get, path = "/api/v1/imports/template.csv", tag = "imports", operation_id = "import_template_csv",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The template CSV", body = String, content_type = "text/csv"),
    ))]
pub async fn template_csv(_: AuthUser) -> ApiResult<HttpResponse> {
    file(Kind::Csv, "roster-template", &[], false)
}

#[derive(Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// The community to export (secretaries and administrators), or…
    #[param(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab", max_length = 64)]
    pub community_id: Option<String>,
    /// …one grid in the caller's scope.
    #[param(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab", max_length = 64)]
    pub grid_id: Option<String>,
    /// Why the ID numbers, birth dates and phones are needed in clear (secretaries only);
    /// recorded in the audit log. Without it they are masked.
    #[param(example = "移交街道核对低保名单", max_length = 200)]
    #[validate(length(max = 200, code = "too_long"), custom(function = "optional_line"))]
    pub reason: Option<String>,
}

/// What to export, checked.
struct Wanted {
    community_id: Option<String>,
    grid_id: Option<String>,
    reason: Option<String>,
}

impl ExportQuery {
    fn checked(self) -> ApiResult<Wanted> {
        done(declared(&self))?;
        let reason = clean_optional(self.reason.as_deref());
        match (&self.community_id, &self.grid_id) {
            (Some(_), None) | (None, Some(_)) => {
                Ok(Wanted { community_id: self.community_id, grid_id: self.grid_id, reason })
            }
            _ => Err(ApiError::invalid("community_id", "required", "give community_id or grid_id (one of them)")),
        }
    }
}

fn day(d: Option<chrono::NaiveDate>, clear: bool) -> String {
    match d {
        Some(d) if clear => d.format("%Y-%m-%d").to_string(),
        Some(d) => mask::birth_year(d).to_string(),
        None => String::new(),
    }
}

fn yes(b: bool) -> String {
    if b { "是" } else { "否" }.to_owned()
}

/// The roster lines of some households: a line a member (the household's columns on each),
/// or one line for a household without members.
fn lines(grid_codes: &HashMap<String, String>, rows: &[HouseholdRow], members: &[MemberRow], clear: bool) -> Vec<Line> {
    let mut of: HashMap<&str, Vec<&MemberRow>> = HashMap::new();
    for m in members {
        of.entry(m.household_id.as_str()).or_default().push(m);
    }
    let phone = |p: &Option<String>| match p {
        Some(p) if clear => p.clone(),
        Some(p) => mask::phone(p),
        None => String::new(),
    };
    let mut out = Vec::new();
    for h in rows {
        let mut base = vec![String::new(); COLUMNS.len()];
        base[position(Column::GridCode)] = grid_codes.get(&h.grid_id).cloned().unwrap_or_default();
        base[position(Column::Building)] = h.building.clone();
        base[position(Column::Unit)] = h.unit.clone();
        base[position(Column::Room)] = h.room.clone();
        base[position(Column::HeadName)] = h.head_name.clone();
        base[position(Column::HouseholdPhone)] = phone(&h.phone);
        base[position(Column::HouseholdNotes)] = h.notes.clone().unwrap_or_default();
        let members = of.get(h.id.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        if members.is_empty() {
            out.push(base);
            continue;
        }
        for m in members {
            let mut line = base.clone();
            let mut set = |c: Column, v: String| line[position(c)] = v;
            set(Column::Name, m.name.clone());
            set(Column::Gender, if m.gender == Gender::Male { "男" } else { "女" }.to_owned());
            set(Column::BirthDate, day(m.birth_date, clear));
            set(
                Column::IdNumber,
                match &m.id_number {
                    Some(n) if clear => n.clone(),
                    Some(n) => mask::id_number(n),
                    None => String::new(),
                },
            );
            set(Column::MemberPhone, phone(&m.phone));
            set(Column::Relation, relation_word(m.relation).to_owned());
            set(Column::LivingAlone, yes(m.living_alone));
            set(Column::DisabilityGrade, m.disability_grade.map(grade_word).unwrap_or_default());
            set(Column::ChronicIllness, yes(m.chronic_illness));
            set(Column::SeriousIllness, yes(m.serious_illness));
            set(Column::LowIncome, yes(m.low_income));
            set(Column::ExtremePoverty, yes(m.extreme_poverty));
            set(Column::Notes, m.notes.clone().unwrap_or_default());
            out.push(line);
        }
    }
    out
}

/// Reads what an export holds, in the caller's scope; with a reason, audits the reveal.
fn export(conn: &mut DbConn, caller: &AuthUser, w: &Wanted) -> ApiResult<Vec<Line>> {
    let (community_id, grid) = match (&w.community_id, &w.grid_id) {
        (_, Some(g)) => {
            let grid = scope::grid(conn, caller, g)?;
            (grid.community_id.clone(), Some(grid.id))
        }
        (Some(c), None) => {
            let community = scope::community(conn, caller, c)?;
            caller.require(&[Role::Admin, Role::Secretary])?;
            (community.id, None)
        }
        (None, None) => return Err(ApiError::invalid("community_id", "required", "give community_id or grid_id")),
    };
    let grid_codes: HashMap<String, String> = communities::list_grids(conn, &community_id, None, None, i64::MAX)?
        .into_iter()
        .map(|g| (g.id, g.code))
        .collect();
    let mut rows = households::current_in_community(conn, &community_id)?;
    if let Some(g) = &grid {
        rows.retain(|h| h.grid_id == *g);
    }
    rows.sort_by(|a, b| {
        let key = |h: &HouseholdRow| {
            (grid_codes.get(&h.grid_id).cloned(), h.building.clone(), h.unit.clone(), h.room.clone())
        };
        key(a).cmp(&key(b))
    });
    let ids: Vec<String> = rows.iter().map(|h| h.id.clone()).collect();
    let members = households::current_members_of(conn, &ids)?;
    if let Some(reason) = &w.reason {
        ops::pii::reveal_export(conn, caller, &community_id, grid.as_deref(), reason, rows.len())?;
    }
    Ok(lines(&grid_codes, &rows, &members, w.reason.is_some()))
}

/// A community's roster, masked, as xlsx or CSV bytes (the `gridlight export` command).
pub fn community_roster(conn: &mut DbConn, caller: &AuthUser, community_id: &str, xlsx: bool) -> ApiResult<Vec<u8>> {
    let wanted = Wanted { community_id: Some(community_id.to_owned()), grid_id: None, reason: None };
    let lines = export(conn, caller, &wanted)?;
    render(if xlsx { Kind::Xlsx } else { Kind::Csv }, &lines)
}

async fn exported(api: Api, query: Params<ExportQuery>, kind: Kind) -> ApiResult<HttpResponse> {
    let wanted = query.into_inner().checked()?;
    let clear = wanted.reason.is_some();
    let lines = if clear {
        api.write(move |c, caller| export(c, caller, &wanted)).await?
    } else {
        api.read(move |c, caller| export(c, caller, &wanted)).await?
    };
    let body = web::block(move || render(kind, &lines)).await.map_err(ApiError::internal)??;
    Ok(respond(kind, "households", body, clear))
}

/// The households of a community or grid as a roster workbook, in the columns an import reads:
/// importing it again changes nothing.
#[utoipa::path(get, path = "/api/v1/exports/households.xlsx", tag = "imports", operation_id = "export_households_xlsx",
    params(ExportQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The roster workbook", body = Spreadsheet,
            content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (status = 403, description = "A grid worker exporting a community, or anyone but a secretary asking for clear values", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such community or grid in the caller's scope", body = Problem, content_type = PROBLEM),
    ))]
pub async fn households_xlsx(api: Api, query: Params<ExportQuery>) -> ApiResult<HttpResponse> {
    exported(api, query, Kind::Xlsx).await
}

/// The households of a community or grid as roster CSV (UTF-8 with a byte order mark).
#[utoipa::path(get, path = "/api/v1/exports/households.csv", tag = "imports", operation_id = "export_households_csv",
    params(ExportQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The roster CSV", body = String, content_type = "text/csv"),
        (status = 403, description = "A grid worker exporting a community, or anyone but a secretary asking for clear values", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such community or grid in the caller's scope", body = Problem, content_type = PROBLEM),
    ))]
pub async fn households_csv(api: Api, query: Params<ExportQuery>) -> ApiResult<HttpResponse> {
    exported(api, query, Kind::Csv).await
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/imports/template.xlsx").route(web::get().to(template_xlsx)))
        .service(web::resource("/imports/template.csv").route(web::get().to(template_csv)))
        .service(web::resource("/exports/households.xlsx").route(web::get().to(households_xlsx)))
        .service(web::resource("/exports/households.csv").route(web::get().to(households_csv)));
}
