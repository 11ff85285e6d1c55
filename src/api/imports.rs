//! Roster imports: `POST /imports` (the dry run), `GET /imports/{id}`, `GET
//! /imports/{id}/errors`, `POST /imports/{id}/commit`.
//!
//! An upload is read ([`crate::roster::read`]), its rows grouped into households
//! ([`crate::roster::parse`]), and each household and member checked by the very request types
//! of `POST /households` and `POST /households/{id}/members` ([`check`]): an imported member
//! meets the same rules as a typed one, and its errors carry the same codes, named by row and
//! column. The plan against the stored data and the commit are [`crate::ops::imports`].

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::api::answer::Api;
use crate::api::households::{Address, CreateHousehold};
use crate::api::input::{Day, Params};
use crate::api::members::CreateMember;
use crate::api::pagination::{Page, PageQuery};
use crate::auth::AuthUser;
use crate::db::DbConn;
use crate::domain::{Gender, IdNumber, Relation};
use crate::error::{ApiError, ApiResult, FieldError, PROBLEM_JSON as PROBLEM, Problem};
use crate::ops::imports::{self as ops, Given, Outcome, Summary};
use crate::roster::cells::{Day as CellDay, Secret};
use crate::roster::columns::Column;
use crate::roster::read::{FileError, Format, Limits};
use crate::roster::{self, RowError};
use crate::store::imports::{self as store, ImportRow, NewImport};
use crate::store::{new_id, now};

/// A spreadsheet file (`.xlsx` or CSV), as its bytes.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Spreadsheet(#[expect(dead_code, reason = "a schema only")] Vec<u8>);

/// The largest upload (the body limit of this endpoint alone).
pub const MAX_UPLOAD: usize = 100 * 1024 * 1024;
/// How many errors an import's answer shows; the rest are paged at `/imports/{id}/errors`.
const ERRORS_SHOWN: usize = 100;

/// Where a field error of a household's request type is in the roster.
fn household_column(field: &str) -> Option<Column> {
    Some(match field {
        "address.building" => Column::Building,
        "address.unit" => Column::Unit,
        "address.room" => Column::Room,
        "head_name" => Column::HeadName,
        "phone" => Column::HouseholdPhone,
        "notes" => Column::HouseholdNotes,
        _ => return None,
    })
}

/// Where a field error of a member's request type is in the roster.
fn member_column(field: &str) -> Option<Column> {
    Some(match field {
        "name" => Column::Name,
        "gender" => Column::Gender,
        "birth_date" => Column::BirthDate,
        "id_number" => Column::IdNumber,
        "phone" => Column::MemberPhone,
        "relation" => Column::Relation,
        "disability_grade" => Column::DisabilityGrade,
        "notes" => Column::Notes,
        _ => return None,
    })
}

fn row_errors(row: u32, e: ApiError, column: fn(&str) -> Option<Column>, out: &mut Vec<RowError>) {
    let fields = match e {
        ApiError::Validation(fields) => fields,
        other => vec![FieldError::new("", "invalid", other.to_string())],
    };
    out.extend(fields.into_iter().map(|f| RowError::new(row, column(&f.field), f.code, f.message)));
}

fn clear(s: &Option<Secret>) -> Option<String> {
    match s {
        Some(Secret::Clear(v)) => Some(v.clone()),
        _ => None,
    }
}

fn given<T>(s: &Option<Secret>, clear: impl FnOnce(&str) -> Option<T>) -> Given<T> {
    match s {
        None => Given::Blank,
        Some(Secret::Masked(m)) => Given::Masked(m.clone()),
        Some(Secret::Clear(v)) => clear(v).map_or(Given::Blank, Given::Clear),
    }
}

/// Checks every household and member of a roster with the API's own request types; what
/// passes is the plan's input, what fails an error of its row and column.
pub fn check(roster: roster::Roster) -> (Vec<ops::Household>, Vec<RowError>, u32) {
    let roster::Roster { households, mut errors, rows } = roster;
    let mut out = Vec::with_capacity(households.len());
    for h in households {
        let request = CreateHousehold {
            id: None,
            grid_id: String::new(),
            address: Address { building: h.building.clone(), unit: h.unit.clone(), room: h.room.clone() },
            head_name: h.head_name.clone().unwrap_or_default(),
            phone: clear(&h.phone),
            notes: h.notes.clone(),
        };
        let checked = match request.checked() {
            Ok(c) => c,
            Err(e) => {
                row_errors(h.rows[0], e, household_column, &mut errors);
                continue;
            }
        };
        let mut members = Vec::with_capacity(h.members.len());
        for m in h.members {
            if let Some(member) = check_member(m, &mut errors) {
                members.push(member);
            }
        }
        out.push(ops::Household {
            rows: h.rows,
            grid_code: h.grid_code,
            address: checked.address,
            head_name: checked.head_name,
            phone: given(&h.phone, |_| checked.phone.clone()),
            notes: checked.notes,
            members,
        });
    }
    (out, errors, rows)
}

fn check_member(m: roster::Member, errors: &mut Vec<RowError>) -> Option<ops::Member> {
    let mut missing = false;
    // A blank cell is `required`; an unreadable one has its error already.
    let mut require = |column: Column, message: &str| {
        missing = true;
        let header = Some(column.header().to_owned());
        if !errors.iter().any(|e| e.row == m.row && e.column == header) {
            errors.push(RowError::new(m.row, Some(column), "required", message));
        }
    };
    let number = clear(&m.id_number);
    let gender = m.gender.unwrap_or_else(|| {
        require(Column::Gender, "write 男 or 女");
        number.as_deref().and_then(|n| IdNumber::parse(n).ok()).map_or(Gender::Male, |n| n.gender())
    });
    let relation = m.relation.unwrap_or_else(|| {
        require(Column::Relation, "write 户主, 配偶, 子女, 父母, 孙子女 or 其他");
        Relation::Other
    });
    let birth = match m.birth_date {
        Some(CellDay::Date(d)) => Some(d),
        _ => None,
    };
    let request = CreateMember {
        id: None,
        name: m.name.clone().unwrap_or_default(),
        gender,
        birth_date: birth.map(Day),
        id_number: number,
        phone: clear(&m.phone),
        relation,
        living_alone: m.living_alone,
        disability_grade: m.disability_grade,
        chronic_illness: m.chronic_illness,
        serious_illness: m.serious_illness,
        low_income: m.low_income,
        extreme_poverty: m.extreme_poverty,
        notes: m.notes.clone(),
    };
    let new = match request.checked() {
        Ok(new) => new,
        Err(e) => {
            row_errors(m.row, e, member_column, errors);
            return None;
        }
    };
    if missing {
        return None;
    }
    let birth_date = match m.birth_date {
        None => Given::Blank,
        Some(CellDay::Date(d)) => Given::Clear(d),
        Some(CellDay::Year(y)) => Given::Masked(y.to_string()),
    };
    Some(ops::Member {
        row: m.row,
        id_number: given(&m.id_number, |n| IdNumber::parse(n).ok()),
        phone: given(&m.phone, |_| new.phone.clone()),
        birth_date,
        new,
    })
}

/// A file refused whole: what it is, as a problem.
fn refused(e: FileError) -> ApiError {
    match e {
        FileError::TooBig(_) => ApiError::PayloadTooLarge(e.to_string()),
        other => ApiError::invalid("file", other.code(), other.to_string()),
    }
}

/// An upload read and checked, before the database is consulted.
pub struct Checked {
    pub format: Format,
    pub sha256: String,
    pub households: Vec<ops::Household>,
    pub errors: Vec<RowError>,
    pub rows: u32,
}

/// Reads and checks an upload (CPU work: run it off the async workers).
pub fn read_upload(bytes: &[u8]) -> ApiResult<Checked> {
    if bytes.is_empty() {
        return Err(ApiError::invalid("file", "required", "send the roster (.xlsx or .csv) as the request body"));
    }
    let sha256 = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
    let (format, sheet) = roster::read::read(bytes, Limits::default()).map_err(refused)?;
    let parsed = roster::parse(&sheet).map_err(|e| {
        let code = match e {
            roster::HeaderError::Missing(_) => "missing_header",
            roster::HeaderError::Twice(_) => "duplicate_column",
            roster::HeaderError::Unknown(_) => "unknown_column",
        };
        ApiError::invalid("file", code, e.to_string())
    })?;
    let (households, errors, rows) = check(parsed);
    Ok(Checked { format, sha256, households, errors, rows })
}

/// The dry run: plans a checked upload for a community and records the import with its file.
pub fn dry_run(
    conn: &mut DbConn,
    caller: &AuthUser,
    community_id: &str,
    file_name: Option<&str>,
    bytes: &[u8],
    checked: Checked,
) -> ApiResult<ImportRow> {
    let community = ops::community(conn, caller, community_id)?;
    let plan = ops::plan(conn, &community, checked.households, checked.errors, checked.rows)?;
    let id = new_id();
    let at = now();
    let summary = serde_json::to_string(&plan.summary).map_err(ApiError::internal)?;
    let errors = serde_json::to_string(&plan.errors).map_err(ApiError::internal)?;
    store::insert(
        conn,
        &NewImport {
            id: &id,
            community_id: &community.id,
            created_by: &caller.id,
            created_at: at,
            updated_at: at,
            status: "validated",
            format: checked.format.as_str(),
            file_name,
            file_sha256: &checked.sha256,
            file: bytes,
            summary: &summary,
            errors: &errors,
            error_count: i32::try_from(plan.errors.len()).unwrap_or(i32::MAX),
            basis: &plan.basis,
        },
    )?;
    store::find(conn, &id)?.ok_or_else(|| ApiError::not_found("import"))
}

/// An import in the caller's scope, for secretaries of its community and administrators.
fn scoped(conn: &mut DbConn, caller: &AuthUser, id: &str, for_update: bool) -> ApiResult<ImportRow> {
    let row = if for_update { store::find_for_update(conn, id)? } else { store::find(conn, id)? };
    let row = row.ok_or_else(|| ApiError::not_found("import"))?;
    ops::community(conn, caller, &row.community_id)?;
    Ok(row)
}

/// The commit: the stored file read and planned again, and applied if the plan is the one the
/// dry run made.
pub fn commit(
    conn: &mut DbConn,
    caller: &AuthUser,
    id: &str,
    skip_errors: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> ApiResult<ImportRow> {
    let import = scoped(conn, caller, id, true)?;
    if import.status != "validated" {
        let detail = format!("the import is {} already", import.status);
        return Err(ApiError::conflict(crate::error::ErrorCode::ImportClosed, detail));
    }
    let community = ops::community(conn, caller, &import.community_id)?;
    let bytes = store::file(conn, id)?;
    let checked = read_upload(&bytes)?;
    let plan = ops::plan(conn, &community, checked.households, checked.errors, checked.rows)?;
    let total = plan.households() as u64;
    ops::apply(conn, caller, &import, plan, skip_errors, &mut |n| progress(n, total))?;
    store::find(conn, id)?.ok_or_else(|| ApiError::not_found("import"))
}

/// Where an import stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    /// The dry run is done; nothing but the import was written.
    Validated,
    /// Applied.
    Committed,
}

#[derive(Serialize, ToSchema)]
pub struct ImportOut {
    pub id: String,
    pub community_id: String,
    pub status: ImportStatus,
    pub format: Format,
    pub file_name: Option<String>,
    /// SHA-256 of the uploaded file, hex.
    pub file_sha256: String,
    pub summary: Summary,
    /// How many errors the dry run found.
    pub error_count: i32,
    /// The first 100 errors, by row; all of them at `/imports/{id}/errors`.
    pub errors: Vec<RowError>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub committed_at: Option<DateTime<Utc>>,
    /// What the commit did.
    pub outcome: Option<Outcome>,
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> ApiResult<T> {
    serde_json::from_str(text).map_err(ApiError::internal)
}

impl ImportOut {
    pub fn of(row: ImportRow) -> ApiResult<ImportOut> {
        let mut errors: Vec<RowError> = parse_json(&row.errors)?;
        errors.truncate(ERRORS_SHOWN);
        Ok(ImportOut {
            format: if row.format == "csv" { Format::Csv } else { Format::Xlsx },
            summary: parse_json(&row.summary)?,
            outcome: row.outcome.as_deref().map(parse_json).transpose()?,
            errors,
            id: row.id,
            community_id: row.community_id,
            status: if row.status == "committed" { ImportStatus::Committed } else { ImportStatus::Validated },
            file_name: row.file_name,
            file_sha256: row.file_sha256,
            error_count: row.error_count,
            created_by: row.created_by,
            created_at: row.created_at.and_utc(),
            committed_at: row.committed_at.map(|t| t.and_utc()),
        })
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The community whose roster this is.
    #[param(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab", min_length = 1, max_length = 64)]
    pub community_id: String,
    /// The file's name, for the record.
    #[param(example = "建新社区户籍台账.xlsx", max_length = 200)]
    pub file_name: Option<String>,
}

/// Checks a roster (the body: an `.xlsx` workbook or a CSV file, at most 100 MiB) against
/// every rule the API checks and against the stored households, and records the import with
/// what a commit would do. Nothing but the import record is written.
#[utoipa::path(post, path = "/api/v1/imports", tag = "imports", operation_id = "create_import",
    params(UploadQuery), security(("bearer" = [])),
    request_body(description = "The roster file",
        content(
            (Spreadsheet = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            (Spreadsheet = "text/csv"),
            (Spreadsheet = "application/octet-stream"),
        )),
    responses(
        (status = 201, description = "Checked; nothing written but the import", body = ImportOut),
        (status = 403, description = "Grid workers do not import", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such community in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Larger than 100 MiB, or a workbook that inflates beyond 256 MiB", body = Problem, content_type = PROBLEM),
        (status = 422, description = "A file refused whole (`errors[0].code`: `not_a_spreadsheet`, `encrypted_workbook`, `macros`, `formula`, `merged_cells`, `extra_sheet`, `missing_header`, `unknown_column`, `too_many_rows`, …); row errors are in the import", body = Problem, content_type = PROBLEM),
    ))]
pub async fn create(api: Api, query: Params<UploadQuery>, body: web::Bytes) -> ApiResult<HttpResponse> {
    let UploadQuery { community_id, file_name } = query.into_inner();
    let file_name = file_name.map(|n| crate::api::validate::clean(&n)).filter(|n| !n.is_empty());
    let file_name = file_name.map(|n| n.chars().take(200).collect::<String>());
    let upload = body.clone();
    let checked = web::block(move || read_upload(&upload)).await.map_err(ApiError::internal)??;
    let row =
        api.write(move |c, caller| dry_run(c, caller, &community_id, file_name.as_deref(), &body, checked)).await?;
    Ok(HttpResponse::Created().json(ImportOut::of(row)?))
}

/// An import: its dry run's summary and first errors, and its commit's outcome.
#[utoipa::path(get, path = "/api/v1/imports/{id}", tag = "imports", operation_id = "get_import",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The import", body = ImportOut),
        (status = 403, description = "Grid workers do not import", body = Problem, content_type = PROBLEM),
    ))]
pub async fn get(api: Api, id: web::Path<String>) -> ApiResult<web::Json<ImportOut>> {
    let row = api.read(move |c, caller| scoped(c, caller, &id, false)).await?;
    Ok(web::Json(ImportOut::of(row)?))
}

/// Every error of an import's dry run, by row, a page at a time.
#[utoipa::path(get, path = "/api/v1/imports/{id}/errors", tag = "imports", operation_id = "list_import_errors",
    params(PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of errors", body = Page<RowError>),
        (status = 403, description = "Grid workers do not import", body = Problem, content_type = PROBLEM),
    ))]
pub async fn errors(api: Api, id: web::Path<String>, page: PageQuery) -> ApiResult<web::Json<Page<RowError>>> {
    let fetch = page.fetch()?;
    let after = page.after_id()?;
    let start = match after {
        None => 0,
        Some(k) => {
            k.parse::<usize>().map_err(|_| ApiError::invalid("cursor", "invalid", "not a cursor of this list"))?
        }
    };
    let row = api.read(move |c, caller| scoped(c, caller, &id, false)).await?;
    let all: Vec<RowError> = parse_json(&row.errors)?;
    let rows: Vec<(usize, RowError)> = all.into_iter().enumerate().skip(start).take(fetch as usize).collect();
    let page = Page::of(rows, fetch, |(i, _)| vec![(i + 1).to_string()]);
    Ok(web::Json(Page { items: page.items.into_iter().map(|(_, e)| e).collect(), next_cursor: page.next_cursor }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CommitQuery {
    /// Commit the households without errors and skip those with any (default: refuse the
    /// commit while there are errors, 409 `import_has_errors`).
    #[serde(default)]
    pub skip_errors: bool,
}

/// Applies exactly what the dry run planned, through the same operations as the API, in one
/// transaction; each change is audited with the request id `import:{id}`.
#[utoipa::path(post, path = "/api/v1/imports/{id}/commit", tag = "imports", operation_id = "commit_import",
    params(CommitQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "Committed: the import with its outcome", body = ImportOut),
        (status = 403, description = "Grid workers do not import", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Committed already (`import_closed`); rows have errors and `skip_errors` is not set (`import_has_errors`); or what the dry run was checked against changed since (`import_stale`: upload the file again)", body = Problem, content_type = PROBLEM),
    ))]
pub async fn commit_import(
    api: Api,
    id: web::Path<String>,
    query: Params<CommitQuery>,
) -> ApiResult<web::Json<ImportOut>> {
    let skip = query.into_inner().skip_errors;
    let row = api.write(move |c, caller| commit(c, caller, &id, skip, &mut |_, _| {})).await?;
    Ok(web::Json(ImportOut::of(row)?))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/imports").app_data(web::PayloadConfig::new(MAX_UPLOAD)).route(web::post().to(create)))
        .service(web::resource("/imports/{id}").route(web::get().to(get)))
        .service(web::resource("/imports/{id}/errors").route(web::get().to(errors)))
        .service(web::resource("/imports/{id}/commit").route(web::post().to(commit_import)));
}
