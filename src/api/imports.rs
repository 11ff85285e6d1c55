//! Roster imports: `POST /imports` (the dry run), `GET /imports/{id}`, `GET
//! /imports/{id}/errors`, `POST /imports/{id}/commit`.
//!
//! An upload is read ([`crate::roster::read`]), its rows grouped into households
//! ([`crate::roster::parse`]), and each household and member checked by the very request types
//! of `POST /households` and `POST /households/{id}/members` ([`check`]): an imported member
//! meets the same rules as a typed one, and its errors carry the same codes, named by row and
//! column. The plan against the stored data and the commit are [`crate::ops::imports`].

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::api::answer::Api;
use crate::api::households::{Address, CreateHousehold, RemoveQuery};
use crate::api::input::{Day, Params};
use crate::api::members::CreateMember;
use crate::api::pagination::{Page, PageQuery};
use crate::auth::AuthUser;
use crate::db::{Db, DbConn};
use crate::domain::{Gender, IdNumber, Relation, RemovalReason};
use crate::error::{ApiError, ApiResult, FieldError, PROBLEM_JSON as PROBLEM, Problem};
use crate::ops::imports::{self as ops, CommitOptions, Given, Outcome, Summary};
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
            missing_basis: &plan.missing_basis,
        },
    )?;
    store::find(conn, &id)?.ok_or_else(|| ApiError::not_found("import"))
}

/// An import in the caller's scope, for secretaries of its community and administrators.
/// An import the caller may read (404 outside their scope, 403 for grid workers).
pub(crate) fn visible(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<ImportRow> {
    scoped(conn, caller, id, false)
}

fn scoped(conn: &mut DbConn, caller: &AuthUser, id: &str, for_update: bool) -> ApiResult<ImportRow> {
    let row = if for_update { store::find_for_update(conn, id)? } else { store::find(conn, id)? };
    let row = row.ok_or_else(|| ApiError::not_found("import"))?;
    ops::community(conn, caller, &row.community_id)?;
    Ok(row)
}

/// Households applied per transaction of a commit: each batch commits with the import's
/// progress, so `GET /imports/{id}` shows it, and requests waiting for the SQLite writer are
/// not held up for long.
pub const COMMIT_BATCH: usize = 250;

/// A commit under way: the import as it was, its plan, and its error workbook (kept once the
/// file is cleared).
struct Started {
    import: ImportRow,
    plan: ops::Plan,
    errors_file: Option<Vec<u8>>,
}

/// The commit's first transaction: the import still `validated`, the file planned again and
/// found to be what the dry run planned (409 otherwise), and the import marked `committing`,
/// so a second commit of it is refused.
fn start(
    conn: &mut DbConn,
    caller: &AuthUser,
    id: &str,
    checked: Checked,
    bytes: &[u8],
    options: &CommitOptions,
) -> ApiResult<Started> {
    let import = scoped(conn, caller, id, true)?;
    let community = ops::community(conn, caller, &import.community_id)?;
    let plan = ops::plan(conn, &community, checked.households, checked.errors, checked.rows)?;
    ops::check_commit(&import, &plan, options)?;
    let errors_file = if plan.errors.is_empty() {
        None
    } else {
        Some(roster::write::errors_xlsx(bytes, &plan.errors).map_err(ApiError::internal)?)
    };
    let total = i32::try_from(plan.households(options.remove_missing.is_some())).unwrap_or(i32::MAX);
    if store::start(conn, id, total, now())? == 0 {
        return Err(ApiError::conflict(crate::error::ErrorCode::ImportClosed, "the import is being committed already"));
    }
    Ok(Started { import, plan, errors_file })
}

/// The commit: the stored file read and planned again, and applied — if the plan is the one
/// the dry run made — batch by batch through the API's operations, each batch a transaction
/// that also records the progress. A batch that fails ends the import `failed`, saying how far
/// it got (what was applied stays, audited as the import's; importing the file again applies
/// the rest and changes nothing else). `progress` hears (done, total) after each batch.
pub fn commit(
    db: &Db,
    caller: &AuthUser,
    id: &str,
    options: CommitOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> ApiResult<ImportRow> {
    let bytes = db.read_blocking(|c| {
        scoped(c, caller, id, false)?;
        Ok(store::file(c, id)?)
    })?;
    if bytes.is_empty() {
        let detail = "the import has ended, and its file was cleared: upload the file again";
        return Err(ApiError::conflict(crate::error::ErrorCode::ImportClosed, detail));
    }
    let checked = read_upload(&bytes)?;
    let Started { import, plan, errors_file } =
        db.write_blocking(|c| start(c, caller, id, checked, &bytes, &options))?;
    drop(bytes);
    let remove = options.remove_missing.as_ref();
    let total = plan.households(remove.is_some()) as u64;
    let actor = ops::as_import(caller, id);
    let mut out = Outcome { rows_skipped: plan.summary.rows_with_errors, ..Outcome::default() };
    let mut done = 0u64;
    // Records added by the time the planner next hears of the growth: after the first batch
    // that adds any, then each time they have grown fourfold.
    let mut grown = 1;
    for batch in plan.into_batches(COMMIT_BATCH, remove.is_some()) {
        let n = batch.len() as u64;
        let applied = db.write_blocking(|c| {
            let o = ops::apply_batch(c, &actor, batch, remove)?;
            store::advance(c, id, i32::try_from(done + n).unwrap_or(i32::MAX), now())?;
            Ok(o)
        });
        match applied {
            Ok(o) => {
                out += o;
                done += n;
                progress(done, total);
                let added = out.households_created + out.members_created;
                if added >= grown {
                    db.refresh_statistics()?;
                    grown = added.saturating_mul(4);
                }
            }
            Err(e) => {
                let why = format!(
                    "the commit stopped after {done} of {total} households: {}. What was applied stays, audited as \
                     this import's; upload the file again to apply the rest",
                    e.problem().detail
                );
                tracing::warn!(import = id, error = %e, "import commit failed");
                db.write_blocking(|c| ops::failed(c, &import, &out, &why, errors_file.as_deref()))?;
                return Err(e);
            }
        }
    }
    db.write_blocking(|c| {
        ops::committed(c, &actor, &import, &out, errors_file.as_deref())?;
        store::find(c, id)?.ok_or_else(|| ApiError::not_found("import"))
    })
}

/// Where an import stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    /// The dry run is done; nothing but the import was written.
    Validated,
    /// A commit is under way (see `progress`).
    Committing,
    /// Applied.
    Committed,
    /// The commit stopped part-way (see `failure` and `outcome`: what was applied stays).
    Failed,
    /// Never committed, and its file was cleared after the retention period.
    Expired,
}

impl ImportStatus {
    fn of(stored: &str) -> ApiResult<ImportStatus> {
        Ok(match stored {
            "validated" => ImportStatus::Validated,
            "committing" => ImportStatus::Committing,
            "committed" => ImportStatus::Committed,
            "failed" => ImportStatus::Failed,
            "expired" => ImportStatus::Expired,
            other => return Err(ApiError::internal(anyhow::anyhow!("unknown import status {other:?}"))),
        })
    }
}

/// How far a commit is: households gone through of those it goes through.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Progress {
    pub done: i32,
    pub total: i32,
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
    /// What the commit did (for a failed one: what it applied before it stopped).
    pub outcome: Option<Outcome>,
    /// Where a commit stands, updated after each batch; none before a commit starts.
    pub progress: Option<Progress>,
    /// Why the commit failed.
    pub failure: Option<String>,
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
            status: ImportStatus::of(&row.status)?,
            progress: (row.status != "validated" && row.status != "expired")
                .then_some(Progress { done: row.progress_done, total: row.progress_total }),
            failure: row.failure,
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

/// The form of a multipart upload.
#[derive(ToSchema)]
#[expect(dead_code, reason = "a schema only")]
pub struct UploadForm {
    /// The roster file (`.xlsx` or `.csv`); its file name is recorded when the query gives none.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

fn too_large() -> ApiError {
    ApiError::PayloadTooLarge(format!("the upload is larger than {} MiB", MAX_UPLOAD / (1024 * 1024)))
}

/// The uploaded file and the name its form part gives: the body as it is, or the part `file`
/// of a `multipart/form-data` body (other parts are read and ignored, within the same limit).
async fn upload_of(req: &HttpRequest, payload: web::Payload) -> ApiResult<(web::Bytes, Option<String>)> {
    upload(req, payload).await.map(|u| (u.file, u.file_name))
}

/// An upload: the file, the name its form part gives, and the form's CSRF token (the
/// console's upload form; the API has none).
pub(crate) struct Upload {
    pub file: web::Bytes,
    pub file_name: Option<String>,
    pub csrf: Option<String>,
}

/// Reads an upload (see [`upload_of`]); a short part `csrf` is kept as the form's token.
pub(crate) async fn upload(req: &HttpRequest, payload: web::Payload) -> ApiResult<Upload> {
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    if !multipart {
        return match payload.to_bytes_limited(MAX_UPLOAD).await {
            Ok(Ok(body)) => Ok(Upload { file: body, file_name: None, csrf: None }),
            Ok(Err(e)) => Err(ApiError::BadRequest(format!("the body could not be read: {e}"))),
            Err(_) => Err(too_large()),
        };
    }
    // A form that cannot be read is a file that cannot be read: 422 on `file`, as for a body
    // that is not a roster.
    let malformed = |e: actix_multipart::MultipartError| {
        ApiError::invalid("file", "unreadable", format!("the multipart form could not be read: {e}"))
    };
    let mut form = Multipart::new(req.headers(), payload);
    let (mut file, mut csrf) = (None, None);
    let mut left = MAX_UPLOAD;
    while let Some(part) = form.next().await {
        let mut part = part.map_err(malformed)?;
        let bytes = match part.bytes(left).await {
            Ok(read) => read.map_err(malformed)?,
            Err(_) => return Err(too_large()),
        };
        left -= bytes.len();
        if part.name() == Some("csrf") && bytes.len() <= 200 {
            csrf = std::str::from_utf8(&bytes).ok().map(str::to_owned);
            continue;
        }
        if part.name() != Some("file") {
            continue;
        }
        if file.is_some() {
            return Err(ApiError::invalid("file", "duplicate", "send one file per import"));
        }
        let name = part.content_disposition().and_then(|d| d.get_filename()).map(str::to_owned);
        file = Some((bytes, name));
    }
    let (file, file_name) =
        file.ok_or_else(|| ApiError::invalid("file", "required", "send the roster as the form part `file`"))?;
    Ok(Upload { file, file_name, csrf })
}

/// Checks a roster (an `.xlsx` workbook or a CSV file, at most 100 MiB, as the body or as the
/// part `file` of a `multipart/form-data` body) against every rule the API checks and against
/// the stored households, and records the import with what a commit would do. Nothing but the
/// import record is written.
#[utoipa::path(post, path = "/api/v1/imports", tag = "imports", operation_id = "create_import",
    params(UploadQuery), security(("bearer" = [])),
    request_body(description = "The roster file, as the body or as the form part `file`",
        content(
            (Spreadsheet = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            (Spreadsheet = "text/csv"),
            (Spreadsheet = "application/octet-stream"),
            (UploadForm = "multipart/form-data"),
        )),
    responses(
        (status = 201, description = "Checked; nothing written but the import", body = ImportOut),
        (status = 400, description = "The body could not be read", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Grid workers do not import", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such community in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Larger than 100 MiB, or a workbook that inflates beyond 256 MiB", body = Problem, content_type = PROBLEM),
        (status = 422, description = "A file refused whole (`errors[0].code`: `required` (no file, or no part `file`), `duplicate` (two), `not_a_spreadsheet`, `encrypted_workbook`, `macros`, `formula`, `merged_cells`, `extra_sheet`, `missing_header`, `unknown_column`, `too_many_rows`, …); row errors are in the import", body = Problem, content_type = PROBLEM),
    ))]
pub async fn create(
    api: Api,
    query: Params<UploadQuery>,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let UploadQuery { community_id, file_name } = query.into_inner();
    let (body, part_name) = upload_of(&req, payload).await?;
    let Api { caller, state } = api;
    let row = checked_upload(&state, caller, community_id, file_name.or(part_name), body).await?;
    Ok(HttpResponse::Created().json(ImportOut::of(row)?))
}

/// Reads and checks an uploaded roster off the async workers, then records its dry run (the
/// API's upload and the console's).
pub(crate) async fn checked_upload(
    state: &crate::AppState,
    caller: AuthUser,
    community_id: String,
    file_name: Option<String>,
    body: web::Bytes,
) -> ApiResult<ImportRow> {
    let file_name = file_name.map(|n| crate::api::validate::clean(&n)).filter(|n| !n.is_empty());
    let file_name = file_name.map(|n| n.chars().take(200).collect::<String>());
    let upload = body.clone();
    let checked = web::block(move || read_upload(&upload)).await.map_err(ApiError::internal)??;
    state.db.write(move |c| dry_run(c, &caller, &community_id, file_name.as_deref(), &body, checked)).await
}

/// An import: its dry run's summary and first errors, and its commit's outcome.
#[utoipa::path(get, path = "/api/v1/imports/{id}", tag = "imports", operation_id = "get_import",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The import", body = ImportOut),
        (status = 403, description = "Grid workers do not import", body = Problem, content_type = PROBLEM),
    ))]
pub async fn get(api: Api, id: web::Path<String>) -> ApiResult<web::Json<ImportOut>> {
    let row = api.read(move |c, caller| visible(c, caller, &id)).await?;
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

/// The rows with errors of an import as a workbook in the template's format, each erroneous
/// cell filled red with a note saying what is wrong (a problem of a whole row is noted on its
/// first cell); the other rows of their households come along, since a household is skipped
/// whole. Fix them in Excel and upload the workbook again.
#[utoipa::path(get, path = "/api/v1/imports/{id}/errors.xlsx", tag = "imports", operation_id = "get_import_errors_xlsx",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The rows with errors", body = Spreadsheet,
            content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (status = 403, description = "Grid workers do not import", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such import in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 410, description = "The import expired: its file was cleared (`import_file_cleared`)", body = Problem, content_type = PROBLEM),
    ))]
pub async fn errors_xlsx(api: Api, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let (row, kept, file) = api
        .read(move |c, caller| {
            let row = scoped(c, caller, &id, false)?;
            let kept = store::errors_file(c, &id)?;
            let file = if kept.is_none() { store::file(c, &id)? } else { vec![] };
            Ok((row, kept, file))
        })
        .await?;
    let book = match kept {
        Some(book) => book,
        None if row.error_count == 0 => roster::write::xlsx(&[]).map_err(ApiError::internal)?,
        None if file.is_empty() => {
            let detail = "the import's file was cleared and it kept no error workbook: upload the file again";
            return Err(ApiError::Gone(crate::error::ErrorCode::ImportFileCleared, detail.into()));
        }
        None => {
            let errors: Vec<RowError> = parse_json(&row.errors)?;
            web::block(move || roster::write::errors_xlsx(&file, &errors))
                .await
                .map_err(ApiError::internal)?
                .map_err(ApiError::internal)?
        }
    };
    Ok(HttpResponse::Ok()
        .content_type(XLSX)
        .insert_header((header::CONTENT_DISPOSITION, "attachment; filename=\"import-errors.xlsx\""))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(book))
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CommitQuery {
    /// Commit the households without errors and skip those with any (default: refuse the
    /// commit while there are errors, 409 `import_has_errors`).
    #[serde(default)]
    pub skip_errors: bool,
    /// Also remove (softly, as `DELETE /households/{id}` does) the community's households the
    /// file does not list — the dry run's `households_missing`. Needs `removal_reason`.
    #[serde(default)]
    pub remove_missing: bool,
    /// Why the missing households leave (`moved_out`, `deceased`, `merged`, `other`); only
    /// with `remove_missing`.
    #[param(value_type = Option<RemovalReason>)]
    pub removal_reason: Option<String>,
    /// A note for the removals.
    #[param(example = "2026 年度台账核对", max_length = 500)]
    pub removal_note: Option<String>,
}

impl CommitQuery {
    pub(crate) fn checked(self) -> ApiResult<CommitOptions> {
        let remove_missing = match (self.remove_missing, self.removal_reason, self.removal_note) {
            (false, None, None) => None,
            (false, _, _) => {
                let message = "a removal reason or note goes with remove_missing=true";
                return Err(ApiError::invalid("remove_missing", "required", message));
            }
            (true, reason, note) => {
                let removal = RemoveQuery { reason, note }.checked().map_err(|e| match e {
                    ApiError::Validation(fields) => ApiError::Validation(
                        fields.into_iter().map(|f| FieldError { field: format!("removal_{}", f.field), ..f }).collect(),
                    ),
                    other => other,
                })?;
                Some(removal)
            }
        };
        Ok(CommitOptions { skip_errors: self.skip_errors, remove_missing })
    }
}

/// Applies exactly what the dry run planned, through the same operations as the API, in
/// batches of 250 households (each a transaction; `GET /imports/{id}` shows the `progress`);
/// each change is audited with the request id `import:{id}`. A commit that fails part-way
/// leaves the import `failed`, saying how far it got. The uploaded file is cleared when the
/// import ends (an error workbook of the skipped rows is kept).
#[utoipa::path(post, path = "/api/v1/imports/{id}/commit", tag = "imports", operation_id = "commit_import",
    params(CommitQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "Committed: the import with its outcome", body = ImportOut),
        (status = 403, description = "Grid workers do not import", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such import in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Committed (or being committed, failed, expired) already (`import_closed`); rows have errors and `skip_errors` is not set (`import_has_errors`); or what the dry run was checked against changed since (`import_stale`: upload the file again)", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`remove_missing` without a valid `removal_reason`, or a reason without `remove_missing`", body = Problem, content_type = PROBLEM),
    ))]
pub async fn commit_import(
    api: Api,
    id: web::Path<String>,
    query: Params<CommitQuery>,
) -> ApiResult<web::Json<ImportOut>> {
    let options = query.into_inner().checked()?;
    let Api { caller, state } = api;
    let db = state.db.clone();
    let row = web::block(move || commit(&db, &caller, &id, options, &mut |_, _| {})).await??;
    Ok(web::Json(ImportOut::of(row)?))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/imports").route(web::post().to(create)))
        .service(web::resource("/imports/{id}").route(web::get().to(get)))
        .service(web::resource("/imports/{id}/errors").route(web::get().to(errors)))
        .service(web::resource("/imports/{id}/errors.xlsx").route(web::get().to(errors_xlsx)))
        .service(web::resource("/imports/{id}/commit").route(web::post().to(commit_import)));
}
