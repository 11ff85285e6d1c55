//! Members of households: `/households/{id}/members`, `/members/{id}`, and the audited
//! reveal of personal data, `/members/{id}/pii`.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::conditional::{check_version, etag, if_match};
use crate::api::input::{Body, Day, Params};
use crate::api::pagination::{Page, PageQuery, decode_cursor, fetch_limit, page};
use crate::api::validate::{client_id, done, notes, phone as check_phone, text};
use crate::auth::AuthUser;
use crate::auth::scope;
use crate::db::DbConn;
use crate::db::schema::members;
use crate::domain::id_number::identity_change;
use crate::domain::{Gender, IdNumber, Relation, mask};
use crate::error::{ApiError, ApiResult, ErrorCode, FieldError, PROBLEM_JSON as PROBLEM, Problem};
use crate::store::audit::{self, Event};
use crate::store::households::{self, MemberChanges, MemberRow};
use crate::store::now;
use crate::store::replay::{self, Origin};

#[derive(Serialize, ToSchema)]
pub struct MemberOut {
    pub id: String,
    pub household_id: String,
    #[schema(example = "张桂兰")]
    pub name: String,
    pub gender: Gender,
    /// The year of birth; the full date comes with the ID number from `/members/{id}/pii`
    /// (see the masking rule in the README).
    #[schema(example = 1941)]
    pub birth_year: Option<i32>,
    /// Masked: the last 4 characters only, e.g. `**************1234`; the full value comes
    /// from `/members/{id}/pii`.
    #[schema(example = "**************1234")]
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

impl From<MemberRow> for MemberOut {
    fn from(m: MemberRow) -> Self {
        MemberOut {
            gender: m.gender,
            relation: m.relation,
            id_number: m.id_number.as_deref().map(mask::id_number),
            phone: m.phone.as_deref().map(mask::phone),
            id: m.id,
            household_id: m.household_id,
            name: m.name,
            birth_year: m.birth_date.map(mask::birth_year),
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
    /// Taken from the ID number when omitted; a past date after 1900.
    #[schema(value_type = Option<NaiveDate>)]
    pub birth_date: Option<Day>,
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
    if birth.is_some_and(|b| b > today || !crate::domain::text::date_in_range(b)) {
        errors.push(FieldError::new("birth_date", "out_of_range", "must be a past date after 1900"));
    }
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
    body: Body<CreateMember>,
) -> ApiResult<HttpResponse> {
    let household_id = path.into_inner();
    let input = body.into_inner();
    let id = client_id(input.id.as_deref())?;
    let mut errors = Vec::new();
    let name = text("name", &input.name, 32, &mut errors);
    let birth_date = input.birth_date.map(|d| d.0);
    check_birth(birth_date, &mut errors);
    let checked = check_identity(input.id_number.as_deref(), birth_date, input.gender, &mut errors);
    let phone = check_phone("phone", input.phone.as_deref(), &mut errors);
    check_grade(input.disability_grade, &mut errors);
    let notes = notes("notes", input.notes.as_deref(), 2000, &mut errors);
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
                gender: input.gender,
                birth_date: checked.birth_date,
                id_number: checked.id_number,
                phone,
                relation: input.relation,
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
            let content = serde_json::json!({"household_id": row.household_id, "name": row.name,
                "gender": row.gender, "birth_date": row.birth_date, "id_number": row.id_number, "phone": row.phone,
                "relation": row.relation, "living_alone": row.living_alone, "disability_grade": row.disability_grade,
                "chronic_illness": row.chronic_illness, "serious_illness": row.serious_illness,
                "low_income": row.low_income, "extreme_poverty": row.extreme_poverty, "notes": row.notes});
            let origin = Origin { created_by: Some(caller.id.clone()), digest: Some(replay::digest(&content)) };
            if !households::insert_new_member(conn, &row, &origin)? {
                let stored = households::member_origin(conn, &id)?.ok_or_else(|| ApiError::not_found("member"))?;
                replay::check_retry(&stored, &caller.id, origin.digest.as_deref().unwrap_or_default())?;
                let existing = households::find_member(conn, &id)?
                    .filter(|m| m.removed_at.is_none())
                    .ok_or_else(|| ApiError::conflict(ErrorCode::IdConflict, "the member has been removed since"))?;
                return Ok((false, existing));
            }
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
    query: Params<PageQuery>,
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
    /// Only with `id_number` while the member has one (the number holds the birth date).
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<NaiveDate>)]
    pub birth_date: Option<Option<Day>>,
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
/// birth date and gender afterwards. Nothing is checked against the stored ID number or birth
/// date, which answers show masked: a new ID number brings its own birth date unless one is
/// sent with it, and a birth date alone is refused (422 `id_number_required`) while the member
/// has an ID number.
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
    body: Body<PatchMember>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let expected = if_match(&req)?;
    let input = body.into_inner();
    let actor = caller.actor();
    let row = state
        .db
        .write(move |conn| {
            let (current, household) = scope::member_for_update(conn, &caller, &id)?;
            let mut errors = Vec::new();
            let name = input.name.as_deref().map(|n| text("name", n, 32, &mut errors));
            let gender = input.gender.unwrap_or(current.gender);
            // Never judged against the stored number or birth date, which the caller sees masked.
            let sent_id = input.id_number.as_ref().map(Option::as_deref);
            let sent_birth = input.birth_date.map(|b| b.map(|d| d.0));
            let stored = (current.id_number.as_deref(), current.birth_date);
            let (id_number, birth) = identity_change(stored, sent_id, sent_birth).unwrap_or_else(|e| {
                errors.push(FieldError::new("birth_date", e.code(), e.to_string()));
                (current.id_number.clone(), current.birth_date)
            });
            check_birth(birth, &mut errors);
            let checked = check_identity(id_number.as_deref(), birth, gender, &mut errors);
            let phone = input.phone.as_ref().map(|p| check_phone("phone", p.as_deref(), &mut errors));
            if let Some(g) = input.disability_grade {
                check_grade(g, &mut errors);
            }
            let notes = input.notes.as_ref().map(|n| notes("notes", n.as_deref(), 2000, &mut errors));
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
            let (current, household) = scope::member_for_update(conn, &caller, &id)?;
            let at = now();
            let changes = MemberChanges {
                removed_at: Some(Some(at)),
                version: Some(current.version + 1),
                updated_at: Some(at),
                ..Default::default()
            };
            if !households::update_member(conn, &id, current.version, &changes)? {
                return Err(ApiError::internal(anyhow::anyhow!("a locked member changed")));
            }
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

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/households/{id}/members").route(web::get().to(list)).route(web::post().to(create)))
        .service(
            web::resource("/members/{id}")
                .route(web::get().to(get))
                .route(web::patch().to(patch))
                .route(web::delete().to(remove)),
        );
}
