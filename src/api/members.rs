//! Members of households: `/households/{id}/members`, `/members/{id}`, and the audited
//! reveal of personal data, `/members/{id}/pii`.

use actix_web::http::header::{CACHE_CONTROL, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::communities::{done, optional_text, text};
use crate::api::conditional::{check_version, etag, if_match};
use crate::api::households::client_id;
use crate::api::pagination::{Page, PageQuery, decode_cursor, fetch_limit, page};
use crate::api::users::{mask_phone, parse_phone};
use crate::auth::AuthUser;
use crate::auth::scope;
use crate::db::DbConn;
use crate::db::schema::members;
use crate::domain::{Gender, IdNumber, Relation, Role};
use crate::error::{ApiError, ApiResult, FieldError, PROBLEM_JSON as PROBLEM, Problem};
use crate::store::audit::{self, Event};
use crate::store::households::{self, MemberChanges, MemberRow};
use crate::store::now;

#[derive(Serialize, ToSchema)]
pub struct MemberOut {
    pub id: String,
    pub household_id: String,
    #[schema(example = "张桂兰")]
    pub name: String,
    pub gender: Gender,
    pub birth_date: Option<NaiveDate>,
    /// Masked, e.g. `370103********1234`; the full value comes from `/members/{id}/pii`.
    #[schema(example = "370103********1234")]
    pub id_number: Option<String>,
    /// Masked, e.g. `138****8000`.
    #[schema(example = "138****8000")]
    pub phone: Option<String>,
    pub relation: Relation,
    pub living_alone: bool,
    /// 1 (most severe) to 4, or none.
    pub disability_grade: Option<i32>,
    pub chronic_illness: bool,
    pub serious_illness: bool,
    /// 低保.
    pub low_income: bool,
    /// 特困.
    pub extreme_poverty: bool,
    pub notes: Option<String>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn mask_id(stored: &str) -> String {
    IdNumber::parse(stored).map(|n| n.masked()).unwrap_or_else(|_| "*".repeat(18))
}

impl From<MemberRow> for MemberOut {
    fn from(m: MemberRow) -> Self {
        MemberOut {
            gender: Gender::parse(&m.gender).unwrap_or(Gender::Female),
            relation: Relation::parse(&m.relation).unwrap_or(Relation::Other),
            id_number: m.id_number.as_deref().map(mask_id),
            phone: m.phone.as_deref().map(mask_phone),
            id: m.id,
            household_id: m.household_id,
            name: m.name,
            birth_date: m.birth_date,
            living_alone: m.living_alone,
            disability_grade: m.disability_grade,
            chronic_illness: m.chronic_illness,
            serious_illness: m.serious_illness,
            low_income: m.low_income,
            extreme_poverty: m.extreme_poverty,
            notes: m.notes,
            version: m.version,
            created_at: m.created_at.and_utc(),
            updated_at: m.updated_at.and_utc(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMember {
    /// Optional client-chosen UUID for safe retries (same body → 200, different body → 409).
    #[schema(format = Uuid, example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub id: Option<String>,
    #[schema(example = "张桂兰", min_length = 1, max_length = 32)]
    pub name: String,
    pub gender: Gender,
    /// Taken from the ID number when omitted; a past date after 1880.
    pub birth_date: Option<NaiveDate>,
    /// 居民身份证号 (GB 11643-1999: 17 digits and a check character); must agree with
    /// birth_date and gender. Empty for none.
    #[schema(example = "11010519491231002X", pattern = "^(|[0-9]{17}[0-9Xx])$")]
    pub id_number: Option<String>,
    /// A mainland mobile or a landline with area code; empty for none.
    #[schema(example = "13800138000", pattern = r"^(|1[3-9][0-9]{9}|(010|02[0-9]|0[3-9][0-9]{2})-?[0-9]{7,8})$")]
    pub phone: Option<String>,
    pub relation: Relation,
    #[serde(default)]
    pub living_alone: bool,
    /// 1 (most severe) to 4, or none.
    #[schema(minimum = 1, maximum = 4, example = 2)]
    #[serde(default, deserialize_with = "crate::api::optional_integral")]
    pub disability_grade: Option<i32>,
    #[serde(default)]
    pub chronic_illness: bool,
    #[serde(default)]
    pub serious_illness: bool,
    #[serde(default)]
    pub low_income: bool,
    #[serde(default)]
    pub extreme_poverty: bool,
    #[schema(example = "患高血压，需定期随访", max_length = 2000)]
    pub notes: Option<String>,
}

/// The checks of a member's fields together: the ID number against birth date and gender.
struct Checked {
    birth_date: Option<NaiveDate>,
    id_number: Option<String>,
}

fn check_identity(
    id_number: Option<&str>,
    birth_date: Option<NaiveDate>,
    gender: Gender,
    errors: &mut Vec<FieldError>,
) -> Checked {
    let Some(raw) = id_number.filter(|s| !s.is_empty()) else {
        return Checked { birth_date, id_number: None };
    };
    match IdNumber::parse(raw) {
        Ok(n) => {
            if let Err(e) = n.agrees_with(birth_date, Some(gender)) {
                errors.push(FieldError::new("id_number", e.code(), e.to_string()));
            }
            Checked { birth_date: birth_date.or(Some(n.birth_date())), id_number: Some(n.as_str().to_owned()) }
        }
        Err(e) => {
            errors.push(FieldError::new("id_number", e.code(), e.to_string()));
            Checked { birth_date, id_number: None }
        }
    }
}

fn check_grade(grade: Option<i32>, errors: &mut Vec<FieldError>) {
    if grade.is_some_and(|g| !(1..=4).contains(&g)) {
        errors.push(FieldError::new("disability_grade", "out_of_range", "must be 1–4, or null for none"));
    }
}

fn check_birth(birth: Option<NaiveDate>, errors: &mut Vec<FieldError>) {
    let today = Utc::now().date_naive();
    if birth.is_some_and(|b| b > today || b < NaiveDate::from_ymd_opt(1880, 1, 1).expect("valid date")) {
        errors.push(FieldError::new("birth_date", "out_of_range", "must be a past date after 1880"));
    }
}

fn check_member_phone(phone: Option<&str>, errors: &mut Vec<FieldError>) -> Option<String> {
    let p = phone.filter(|p| !p.is_empty())?;
    parse_phone("phone", p).map_err(|e| errors.push(e)).ok()
}

fn household_touched(conn: &mut DbConn, household_id: &str) -> ApiResult<()> {
    households::refresh_member_count(conn, household_id, now())?;
    Ok(())
}

/// Adds a member to a household.
#[utoipa::path(post, path = "/api/v1/households/{id}/members", tag = "members", operation_id = "create_member",
    params(("id" = String, Path, description = "Household id")),
    request_body = CreateMember, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = MemberOut, headers(("ETag" = String, description = "Version"))),
        (status = 200, description = "The same member was already created with this id", body = MemberOut),
        (status = 400, description = "Malformed request", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such household in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The id is taken by different content, or the household was removed", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid fields", body = Problem, content_type = PROBLEM),
    ))]
pub async fn create(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
    body: web::Json<CreateMember>,
) -> ApiResult<HttpResponse> {
    let household_id = path.into_inner();
    let input = body.into_inner();
    let id = client_id(input.id.as_deref())?;
    let mut errors = Vec::new();
    let name = text("name", &input.name, 32, &mut errors);
    check_birth(input.birth_date, &mut errors);
    let checked = check_identity(input.id_number.as_deref(), input.birth_date, input.gender, &mut errors);
    let phone = check_member_phone(input.phone.as_deref(), &mut errors);
    check_grade(input.disability_grade, &mut errors);
    let notes = optional_text("notes", input.notes.as_deref(), 2000, &mut errors);
    done(errors)?;
    let actor = caller.actor();
    let (created, row) = state
        .db
        .write(move |conn| {
            let household = scope::household_for_update(conn, &caller, &household_id)?;
            let at = now();
            let row = MemberRow {
                id: id.clone(),
                household_id: household.id.clone(),
                name,
                gender: input.gender.as_str().to_owned(),
                birth_date: checked.birth_date,
                id_number: checked.id_number,
                phone,
                relation: input.relation.as_str().to_owned(),
                living_alone: input.living_alone,
                disability_grade: input.disability_grade,
                chronic_illness: input.chronic_illness,
                serious_illness: input.serious_illness,
                low_income: input.low_income,
                extreme_poverty: input.extreme_poverty,
                notes,
                version: 1,
                created_at: at,
                updated_at: at,
                removed_at: None,
            };
            if let Some(existing) = households::find_member(conn, &id)? {
                let same = MemberRow {
                    version: existing.version,
                    created_at: existing.created_at,
                    updated_at: existing.updated_at,
                    ..row.clone()
                };
                if same == existing {
                    return Ok((false, existing));
                }
                return Err(ApiError::Conflict("a different member already has this id".into()));
            }
            households::insert_member(conn, &row)?;
            household_touched(conn, &household.id)?;
            audit::record(
                conn,
                &actor,
                Event {
                    action: "member.created",
                    entity_type: "member",
                    entity_id: Some(&row.id),
                    community_id: Some(&household.community_id),
                    summary: serde_json::json!({"household_id": household.id, "relation": row.relation}),
                },
            )?;
            Ok((true, row))
        })
        .await?;
    let mut res = if created { HttpResponse::Created() } else { HttpResponse::Ok() };
    Ok(res.insert_header(etag(row.version)).json(MemberOut::from(row)))
}

/// The current members of a household.
#[utoipa::path(get, path = "/api/v1/households/{id}/members", tag = "members", operation_id = "list_members",
    params(("id" = String, Path, description = "Household id"), PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of members", body = Page<MemberOut>),
        (status = 400, description = "Malformed query", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such household in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid limit or cursor", body = Problem, content_type = PROBLEM),
    ))]
pub async fn list(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<Page<MemberOut>>> {
    use diesel::prelude::*;
    let household_id = path.into_inner();
    let fetch = fetch_limit(query.limit)?;
    let after = decode_cursor(query.cursor.as_deref(), 1)?.map(|mut k| k.remove(0));
    let rows = state
        .db
        .read(move |conn| {
            scope::household(conn, &caller, &household_id)?;
            let mut q = members::table
                .filter(members::household_id.eq(&household_id))
                .filter(members::removed_at.is_null())
                .order(members::id.asc())
                .limit(fetch)
                .select(MemberRow::as_select())
                .into_boxed();
            if let Some(a) = after {
                q = q.filter(members::id.gt(a));
            }
            Ok(q.load(conn)?)
        })
        .await?;
    Ok(web::Json(page(rows, fetch, |m| vec![m.id.clone()], MemberOut::from)))
}

/// One member.
#[utoipa::path(get, path = "/api/v1/members/{id}", tag = "members", operation_id = "get_member",
    params(("id" = String, Path, description = "Member id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The member", body = MemberOut, headers(("ETag" = String, description = "Version"))),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such member in the caller's scope", body = Problem, content_type = PROBLEM),
    ))]
pub async fn get(state: web::Data<AppState>, caller: AuthUser, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let (m, _) = state.db.read(move |conn| scope::member(conn, &caller, &id)).await?;
    Ok(HttpResponse::Ok().insert_header(etag(m.version)).json(MemberOut::from(m)))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PatchMember {
    #[schema(example = "张桂兰", min_length = 1, max_length = 32)]
    pub name: Option<String>,
    pub gender: Option<Gender>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<NaiveDate>)]
    pub birth_date: Option<Option<NaiveDate>>,
    /// A new ID number, or `null` (or empty) to remove it.
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<String>, example = "11010519491231002X", pattern = "^(|[0-9]{17}[0-9Xx])$")]
    pub id_number: Option<Option<String>>,
    /// A new phone number, or `null` (or empty) to remove it.
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<String>, example = "13800138000", pattern = r"^(|1[3-9][0-9]{9}|(010|02[0-9]|0[3-9][0-9]{2})-?[0-9]{7,8})$")]
    pub phone: Option<Option<String>>,
    pub relation: Option<Relation>,
    pub living_alone: Option<bool>,
    /// 1 (most severe) to 4, or `null` for none.
    #[serde(default, deserialize_with = "crate::api::double_option_integral")]
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 4, example = 2)]
    pub disability_grade: Option<Option<i32>>,
    pub chronic_illness: Option<bool>,
    pub serious_illness: Option<bool>,
    pub low_income: Option<bool>,
    pub extreme_poverty: Option<bool>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<String>, example = "患高血压，需定期随访", max_length = 2000)]
    pub notes: Option<Option<String>>,
}

/// Changes a member; `null` clears an optional field. The ID number must still agree with the
/// birth date and gender afterwards.
#[utoipa::path(patch, path = "/api/v1/members/{id}", tag = "members", operation_id = "update_member",
    params(("id" = String, Path, description = "Member id"),
           ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    request_body = PatchMember, security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed member", body = MemberOut, headers(("ETag" = String, description = "Version"))),
        (status = 400, description = "Malformed request", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such member in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The household has been removed", body = Problem, content_type = PROBLEM),
        (status = 412, description = "If-Match names an old version", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid fields", body = Problem, content_type = PROBLEM),
    ))]
pub async fn patch(
    state: web::Data<AppState>,
    caller: AuthUser,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<PatchMember>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let expected = if_match(&req)?;
    let input = body.into_inner();
    let actor = caller.actor();
    let row = state
        .db
        .write(move |conn| {
            let (current, _) = scope::member(conn, &caller, &id)?;
            let household = scope::household_for_update(conn, &caller, &current.household_id)?;
            let mut errors = Vec::new();
            let name = input.name.as_deref().map(|n| text("name", n, 32, &mut errors));
            let gender = input.gender.unwrap_or_else(|| Gender::parse(&current.gender).unwrap_or(Gender::Female));
            let birth = input.birth_date.unwrap_or(current.birth_date);
            check_birth(birth, &mut errors);
            let id_number = match &input.id_number {
                Some(v) => v.clone(),
                None => current.id_number.clone(),
            };
            let checked = check_identity(id_number.as_deref(), birth, gender, &mut errors);
            let phone = input.phone.as_ref().map(|p| check_member_phone(p.as_deref(), &mut errors));
            if let Some(g) = input.disability_grade {
                check_grade(g, &mut errors);
            }
            let notes = input.notes.as_ref().map(|n| optional_text("notes", n.as_deref(), 2000, &mut errors));
            done(errors)?;
            // Preconditions count only for requests that are otherwise valid (RFC 9110 §13.2.1).
            check_version(expected, current.version)?;
            let at = now();
            let changes = MemberChanges {
                name,
                gender: input.gender.map(|g| g.as_str().to_owned()),
                birth_date: Some(checked.birth_date),
                id_number: Some(checked.id_number),
                phone,
                relation: input.relation.map(|r| r.as_str().to_owned()),
                living_alone: input.living_alone,
                disability_grade: input.disability_grade,
                chronic_illness: input.chronic_illness,
                serious_illness: input.serious_illness,
                low_income: input.low_income,
                extreme_poverty: input.extreme_poverty,
                notes,
                version: Some(current.version + 1),
                updated_at: Some(at),
                removed_at: None,
            };
            if !households::update_member(conn, &id, current.version, &changes)? {
                return Err(ApiError::PreconditionFailed("the member changed meanwhile; fetch it again".into()));
            }
            household_touched(conn, &household.id)?;
            let fields = audit::fields_set([
                ("name", input.name.is_some()),
                ("gender", input.gender.is_some()),
                ("birth_date", input.birth_date.is_some()),
                ("id_number", input.id_number.is_some()),
                ("phone", input.phone.is_some()),
                ("relation", input.relation.is_some()),
                ("living_alone", input.living_alone.is_some()),
                ("disability_grade", input.disability_grade.is_some()),
                ("chronic_illness", input.chronic_illness.is_some()),
                ("serious_illness", input.serious_illness.is_some()),
                ("low_income", input.low_income.is_some()),
                ("extreme_poverty", input.extreme_poverty.is_some()),
                ("notes", input.notes.is_some()),
            ]);
            audit::record(
                conn,
                &actor,
                Event {
                    action: "member.updated",
                    entity_type: "member",
                    entity_id: Some(&id),
                    community_id: Some(&household.community_id),
                    summary: serde_json::json!({"household_id": household.id, "fields": fields}),
                },
            )?;
            households::find_member(conn, &id)?.ok_or_else(|| ApiError::not_found("member"))
        })
        .await?;
    Ok(HttpResponse::Ok().insert_header(etag(row.version)).json(MemberOut::from(row)))
}

/// Removes a member from a household (moved out, deceased, registered in error).
#[utoipa::path(delete, path = "/api/v1/members/{id}", tag = "members", operation_id = "remove_member",
    params(("id" = String, Path, description = "Member id")), security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such member in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The household has been removed", body = Problem, content_type = PROBLEM),
    ))]
pub async fn remove(state: web::Data<AppState>, caller: AuthUser, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let actor = caller.actor();
    state
        .db
        .write(move |conn| {
            let (current, _) = scope::member(conn, &caller, &id)?;
            let household = scope::household_for_update(conn, &caller, &current.household_id)?;
            let at = now();
            let changes = MemberChanges {
                removed_at: Some(Some(at)),
                version: Some(current.version + 1),
                updated_at: Some(at),
                ..Default::default()
            };
            households::update_member(conn, &id, current.version, &changes)?;
            household_touched(conn, &household.id)?;
            audit::record(
                conn,
                &actor,
                Event {
                    action: "member.removed",
                    entity_type: "member",
                    entity_id: Some(&id),
                    community_id: Some(&household.community_id),
                    summary: serde_json::json!({"household_id": household.id}),
                },
            )?;
            Ok(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PiiQuery {
    /// Why the full values are needed; recorded in the audit log.
    #[param(required = true, min_length = 1, max_length = 200, example = "联系家属办理低保复核")]
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MemberPii {
    pub id: String,
    /// The full ID number.
    pub id_number: Option<String>,
    /// The full phone number.
    pub phone: Option<String>,
}

/// Reveals a member's full ID number and phone, to the community's secretary or a worker of
/// the grid. Every call is audited with its reason; the answer is never cached.
#[utoipa::path(get, path = "/api/v1/members/{id}/pii", tag = "members", operation_id = "reveal_member_pii",
    params(("id" = String, Path, description = "Member id"), PiiQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The full values (Cache-Control: no-store)", body = MemberPii),
        (status = 400, description = "Malformed query", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Only the community's secretary and the grid's workers see personal data", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such member in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 422, description = "No reason given", body = Problem, content_type = PROBLEM),
    ))]
pub async fn pii(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
    query: web::Query<PiiQuery>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let reason = query.into_inner().reason;
    let actor = caller.actor();
    let out = state
        .db
        .write(move |conn| {
            let (m, household) = scope::member(conn, &caller, &id)?;
            caller.require(&[Role::Secretary, Role::GridWorker])?;
            let raw =
                reason.ok_or_else(|| ApiError::invalid("reason", "required", "say why the full values are needed"))?;
            let mut errors = Vec::new();
            let reason = text("reason", &raw, 200, &mut errors);
            done(errors)?;
            audit::record(
                conn,
                &actor,
                Event {
                    action: "member.pii_revealed",
                    entity_type: "member",
                    entity_id: Some(&m.id),
                    community_id: Some(&household.community_id),
                    summary: serde_json::json!({"reason": reason, "household_id": household.id}),
                },
            )?;
            Ok(MemberPii { id: m.id, id_number: m.id_number, phone: m.phone })
        })
        .await?;
    Ok(HttpResponse::Ok().insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store"))).json(out))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/households/{id}/members").route(web::get().to(list)).route(web::post().to(create)))
        .service(
            web::resource("/members/{id}")
                .route(web::get().to(get))
                .route(web::patch().to(patch))
                .route(web::delete().to(remove)),
        )
        .service(web::resource("/members/{id}/pii").route(web::get().to(pii)));
}
