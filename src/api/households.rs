//! Households: `/households`, `/households/{id}`.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::conditional::{check_version, etag, if_match};
use crate::api::input::{Body, Instant, Params};
use crate::api::pagination::{Page, decode_cursor, fetch_limit, page, parse_time_key, time_key};
use crate::api::validate::{client_id, done, notes, phone as check_phone, text};
use crate::auth::AuthUser;
use crate::auth::scope::{self, Reach};
use crate::db::DbConn;
use crate::domain::{IdNumber, MemberFacts, RemovalReason, Role, Suggestion, Tag, mask, suggest};
use crate::error::{ApiError, ApiResult, ErrorCode, FieldError, PROBLEM_JSON as PROBLEM, Problem};
use crate::store::JsonText;
use crate::store::audit::{self, Event};
use crate::store::communities::{self, today_in};
use crate::store::households::{self, After, HouseholdChanges, HouseholdRow, ListFilter, MemberFactsRow};
use crate::store::now;
use crate::store::replay::{self, Origin};

#[derive(Serialize, Deserialize, ToSchema, Clone, PartialEq, Debug)]
#[serde(deny_unknown_fields)]
pub struct Address {
    #[schema(example = "3号楼", min_length = 1, max_length = 32)]
    pub building: String,
    #[schema(example = "2单元", min_length = 1, max_length = 32)]
    pub unit: String,
    #[schema(example = "301", min_length = 1, max_length = 32)]
    pub room: String,
}

#[derive(Serialize, ToSchema)]
pub struct HouseholdOut {
    pub id: String,
    pub grid_id: String,
    pub community_id: String,
    pub address: Address,
    #[schema(example = "张桂兰")]
    pub head_name: String,
    /// Masked, e.g. `138****8000`.
    pub phone: Option<String>,
    pub tag: Tag,
    /// Reason codes of the applied tag (see `/tag-reasons`).
    #[schema(value_type = crate::api::tags::ReasonCodes)]
    pub tag_reasons: Vec<String>,
    pub tag_note: Option<String>,
    pub tag_set_at: Option<DateTime<Utc>>,
    pub tag_set_by: Option<String>,
    /// When the tag is due for review (a date in the community's timezone).
    pub tag_review_due_on: Option<NaiveDate>,
    /// What the members' facts and the recorded reasons suggest; never applied by itself.
    pub suggested_tag: Tag,
    pub suggestion: Suggestion,
    pub notes: Option<String>,
    pub member_count: i32,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set when the household was removed (moved out, deceased, merged).
    pub removed_at: Option<DateTime<Utc>>,
    pub removed_reason: Option<RemovalReason>,
    pub removed_note: Option<String>,
}

/// What the suggestion rules know of a member: the ID number's birth date stands in for a
/// missing one.
pub fn facts(m: &MemberFactsRow) -> MemberFacts {
    let birth =
        m.birth_date.or_else(|| m.id_number.as_deref().and_then(|n| IdNumber::parse(n).ok()).map(|n| n.birth_date()));
    MemberFacts {
        member_id: m.id.clone(),
        name: m.name.clone(),
        birth_date: birth,
        living_alone: m.living_alone,
        disability_grade: m.disability_grade.and_then(|g| u8::try_from(g).ok()),
        chronic_illness: m.chronic_illness,
        serious_illness: m.serious_illness,
        low_income: m.low_income,
        extreme_poverty: m.extreme_poverty,
    }
}

/// Responses for household rows: members are loaded once for the whole page, and "today" is
/// each community's own.
pub fn views(conn: &mut DbConn, rows: Vec<HouseholdRow>) -> ApiResult<Vec<HouseholdOut>> {
    let ids: Vec<String> = rows.iter().map(|h| h.id.clone()).collect();
    let mut members: HashMap<String, Vec<MemberFacts>> = HashMap::new();
    for m in households::members_of(conn, &ids)? {
        members.entry(m.household_id.clone()).or_default().push(facts(&m));
    }
    let mut today: HashMap<String, NaiveDate> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for h in rows {
        let day = match today.get(&h.community_id) {
            Some(d) => *d,
            None => {
                let tz = communities::find(conn, &h.community_id)?.map(|c| c.timezone).unwrap_or_default();
                let d = today_in(&tz);
                today.insert(h.community_id.clone(), d);
                d
            }
        };
        let reasons = h.reasons();
        let suggestion = suggest(members.get(&h.id).map(Vec::as_slice).unwrap_or(&[]), &reasons, day);
        out.push(HouseholdOut {
            address: Address { building: h.building, unit: h.unit, room: h.room },
            phone: h.phone.as_deref().map(mask::phone),
            tag: h.tag,
            tag_reasons: reasons,
            suggested_tag: suggestion.tag,
            suggestion,
            tag_set_at: h.tag_set_at.map(|t| t.and_utc()),
            removed_at: h.removed_at.map(|t| t.and_utc()),
            removed_reason: h.removed_reason,
            id: h.id,
            grid_id: h.grid_id,
            community_id: h.community_id,
            head_name: h.head_name,
            tag_note: h.tag_note,
            tag_set_by: h.tag_set_by,
            tag_review_due_on: h.tag_review_due_on,
            notes: h.notes,
            member_count: h.member_count,
            version: h.version,
            created_at: h.created_at.and_utc(),
            updated_at: h.updated_at.and_utc(),
            removed_note: h.removed_note,
        });
    }
    Ok(out)
}

pub fn view(conn: &mut DbConn, row: HouseholdRow) -> ApiResult<HouseholdOut> {
    views(conn, vec![row])?.pop().ok_or_else(|| ApiError::internal(anyhow::anyhow!("empty view")))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateHousehold {
    /// Optional client-chosen UUID, so an offline client can retry safely: the same body again
    /// returns the stored household (200); a different body with the same id is 409.
    #[schema(format = Uuid, example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub id: Option<String>,
    /// A grid in the caller's scope.
    #[schema(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub grid_id: String,
    pub address: Address,
    #[schema(example = "张桂兰", min_length = 1, max_length = 32)]
    pub head_name: String,
    /// A mainland mobile or a landline with area code; empty for none.
    #[schema(example = "13800138000", pattern = r"^(|1[3-9][0-9]{9}|(010|02[0-9]|0[3-9][0-9]{2})-?[0-9]{7,8})$")]
    pub phone: Option<String>,
    #[schema(example = "独居老人，子女在外地", max_length = 2000)]
    pub notes: Option<String>,
}

fn check_address(a: &Address, errors: &mut Vec<FieldError>) -> Address {
    Address {
        building: text("address.building", &a.building, 32, errors),
        unit: text("address.unit", &a.unit, 32, errors),
        room: text("address.room", &a.room, 32, errors),
    }
}

/// Registers a household (new households start green). Workers register households in their
/// own grids.
#[utoipa::path(post, path = "/api/v1/households", tag = "households", operation_id = "create_household",
    request_body = CreateHousehold, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = HouseholdOut, headers(("ETag" = String, description = "Version"))),
        (status = 200, description = "The same household was already created with this id", body = HouseholdOut),
        (status = 400, description = "Malformed request", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The id is taken by different content", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid fields, or a grid outside the caller's scope", body = Problem, content_type = PROBLEM),
    ))]
pub async fn create(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: Body<CreateHousehold>,
) -> ApiResult<HttpResponse> {
    let input = body.into_inner();
    let id = client_id(input.id.as_deref())?;
    let mut errors = Vec::new();
    let address = check_address(&input.address, &mut errors);
    let head_name = text("head_name", &input.head_name, 32, &mut errors);
    let phone = check_phone("phone", input.phone.as_deref(), &mut errors);
    let notes = notes("notes", input.notes.as_deref(), 2000, &mut errors);
    done(errors)?;
    let actor = caller.actor();
    let (created, out) = state
        .db
        .write(move |conn| {
            let grid = scope::grid(conn, &caller, &input.grid_id)
                .map_err(|_| ApiError::invalid("grid_id", "unknown", "no such grid in your scope"))?;
            let content = serde_json::json!({"grid_id": grid.id, "address": [address.building, address.unit,
                address.room], "head_name": head_name, "phone": phone, "notes": notes});
            let at = now();
            let row = HouseholdRow {
                id: id.clone(),
                grid_id: grid.id.clone(),
                community_id: grid.community_id.clone(),
                building: address.building,
                unit: address.unit,
                room: address.room,
                head_name,
                phone,
                tag: Tag::Green,
                tag_reasons: JsonText(vec![]),
                tag_note: None,
                tag_set_at: None,
                tag_set_by: None,
                tag_review_due_on: None,
                notes,
                member_count: 0,
                version: 1,
                created_at: at,
                updated_at: at,
                removed_at: None,
                removed_reason: None,
                removed_note: None,
            };
            let origin = Origin { created_by: Some(caller.id.clone()), digest: Some(replay::digest(&content)) };
            if !households::insert_new(conn, &row, &origin)? {
                let stored = households::origin(conn, &id)?.ok_or_else(|| ApiError::not_found("household"))?;
                replay::check_retry(&stored, &caller.id, origin.digest.as_deref().unwrap_or_default())?;
                // Still the caller's to see (a secretary may have moved or removed it since).
                let existing =
                    scope::household(conn, &caller, &id).ok().filter(|h| h.removed_at.is_none()).ok_or_else(|| {
                        ApiError::conflict(ErrorCode::IdConflict, "the household has been moved or removed since")
                    })?;
                return Ok((false, view(conn, existing)?));
            }
            audit::record(
                conn,
                &actor,
                Event {
                    action: "household.created",
                    entity_type: "household",
                    entity_id: Some(&row.id),
                    community_id: Some(&row.community_id),
                    summary: serde_json::json!({"grid_id": row.grid_id, "address": [row.building, row.unit, row.room]}),
                },
            )?;
            crate::store::tasks::household_changed(conn, &row.id)?;
            let row = households::find(conn, &id)?.ok_or_else(|| ApiError::not_found("household"))?;
            Ok((true, view(conn, row)?))
        })
        .await?;
    let mut res = if created { HttpResponse::Created() } else { HttpResponse::Ok() };
    Ok(res.insert_header(etag(out.version)).json(out))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListHouseholds {
    #[param(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub grid_id: Option<String>,
    #[param(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub community_id: Option<String>,
    pub tag: Option<Tag>,
    /// Text search over the head's name and the address.
    #[param(example = "张")]
    pub q: Option<String>,
    /// `true`: only households whose tag review is due (today or earlier).
    pub review_due: Option<bool>,
    /// Only households changed at or after this time (RFC 3339), oldest change first.
    #[param(value_type = Option<DateTime<Utc>>)]
    pub updated_since: Option<Instant>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500, example = 50)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// Lists the households in the caller's scope (removed ones are left out), by id, or by time
/// of change with `updated_since`.
#[utoipa::path(get, path = "/api/v1/households", tag = "households", operation_id = "list_households",
    params(ListHouseholds), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of households", body = Page<HouseholdOut>),
        (status = 400, description = "Malformed query", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid limit or cursor", body = Problem, content_type = PROBLEM),
    ))]
pub async fn list(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: Params<ListHouseholds>,
) -> ApiResult<web::Json<Page<HouseholdOut>>> {
    let q = query.into_inner();
    let fetch = fetch_limit(q.limit)?;
    let by_update = q.updated_since.is_some();
    let after = match decode_cursor(q.cursor.as_deref(), if by_update { 2 } else { 1 })? {
        None => None,
        Some(k) if by_update => Some(After::Updated(parse_time_key(&k[0])?, k[1].clone())),
        Some(mut k) => Some(After::Id(k.remove(0))),
    };
    let page = state
        .db
        .read(move |conn| {
            let mut filter = ListFilter {
                community_id: q.community_id.clone(),
                grid_ids: q.grid_id.clone().map(|g| vec![g]),
                tag: q.tag.map(|t| t.as_str().to_owned()),
                q: q.q.clone(),
                updated_since: q.updated_since.map(|t| t.0.naive_utc()),
                ..Default::default()
            };
            let empty = || Ok(Page { items: vec![], next_cursor: None });
            match scope::reach(conn, &caller)? {
                Reach::Everything => {}
                Reach::Community(c) => {
                    if filter.community_id.as_ref().is_some_and(|f| *f != c) {
                        return empty();
                    }
                    filter.community_id = Some(c);
                }
                Reach::Grids { community_id, grid_ids } => {
                    if filter.community_id.as_ref().is_some_and(|f| *f != community_id) {
                        return empty();
                    }
                    let grids: Vec<String> = match &filter.grid_ids {
                        Some(wanted) => wanted.iter().filter(|g| grid_ids.contains(g)).cloned().collect(),
                        None => grid_ids,
                    };
                    filter.community_id = Some(community_id);
                    filter.grid_ids = Some(grids);
                }
            }
            if q.review_due == Some(true) {
                let tz = match &filter.community_id {
                    Some(c) => communities::find(conn, c)?.map(|c| c.timezone).unwrap_or_default(),
                    None => String::new(),
                };
                filter.review_due_by = Some(today_in(&tz));
            }
            let rows = households::list(conn, &filter, after.as_ref(), fetch)?;
            let keys: Vec<Vec<String>> = rows
                .iter()
                .map(|h| if by_update { vec![time_key(h.updated_at), h.id.clone()] } else { vec![h.id.clone()] })
                .collect();
            let paged = page(rows.into_iter().zip(keys).collect(), fetch, |(_, k)| k.clone(), |(h, _)| h);
            Ok(Page { items: views(conn, paged.items)?, next_cursor: paged.next_cursor })
        })
        .await?;
    Ok(web::Json(page))
}

/// One household; removed households stay readable here for secretaries and administrators.
#[utoipa::path(get, path = "/api/v1/households/{id}", tag = "households", operation_id = "get_household",
    params(("id" = String, Path, description = "Household id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The household", body = HouseholdOut, headers(("ETag" = String, description = "Version"))),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such household in the caller's scope", body = Problem, content_type = PROBLEM),
    ))]
pub async fn get(state: web::Data<AppState>, caller: AuthUser, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let out = state
        .db
        .read(move |conn| {
            let row = scope::household(conn, &caller, &id)?;
            view(conn, row)
        })
        .await?;
    Ok(HttpResponse::Ok().insert_header(etag(out.version)).json(out))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchAddress {
    #[schema(example = "3号楼", min_length = 1, max_length = 32)]
    pub building: Option<String>,
    #[schema(example = "2单元", min_length = 1, max_length = 32)]
    pub unit: Option<String>,
    #[schema(example = "301", min_length = 1, max_length = 32)]
    pub room: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchHousehold {
    /// Move to another grid of the same community (secretaries and administrators).
    #[schema(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub grid_id: Option<String>,
    pub address: Option<PatchAddress>,
    #[schema(example = "张桂兰", min_length = 1, max_length = 32)]
    pub head_name: Option<String>,
    /// A new phone number, or `null` (or empty) to remove it.
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<String>, example = "13800138000",
        pattern = r"^(|1[3-9][0-9]{9}|(010|02[0-9]|0[3-9][0-9]{2})-?[0-9]{7,8})$")]
    pub phone: Option<Option<String>>,
    /// New notes, or `null` to clear them.
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<String>, example = "已搬至 5 号楼", max_length = 2000)]
    pub notes: Option<Option<String>>,
}

/// Changes a household's details. With `If-Match`, a change based on an old version is refused
/// (412); two concurrent changes are applied one after the other, never lost.
#[utoipa::path(patch, path = "/api/v1/households/{id}", tag = "households", operation_id = "update_household",
    params(("id" = String, Path, description = "Household id"),
           ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    request_body = PatchHousehold, security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed household", body = HouseholdOut, headers(("ETag" = String, description = "Version"))),
        (status = 400, description = "Malformed request", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Grid workers do not move households between grids", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such household in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The household has been removed", body = Problem, content_type = PROBLEM),
        (status = 412, description = "If-Match names an old version", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid fields", body = Problem, content_type = PROBLEM),
    ))]
pub async fn patch(
    state: web::Data<AppState>,
    caller: AuthUser,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body<PatchHousehold>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let expected = if_match(&req)?;
    let input = body.into_inner();
    let mut errors = Vec::new();
    let building = input
        .address
        .as_ref()
        .and_then(|a| a.building.as_deref())
        .map(|v| text("address.building", v, 32, &mut errors));
    let unit = input.address.as_ref().and_then(|a| a.unit.as_deref()).map(|v| text("address.unit", v, 32, &mut errors));
    let room = input.address.as_ref().and_then(|a| a.room.as_deref()).map(|v| text("address.room", v, 32, &mut errors));
    let head_name = input.head_name.as_deref().map(|v| text("head_name", v, 32, &mut errors));
    let phone = input.phone.as_ref().map(|p| check_phone("phone", p.as_deref(), &mut errors));
    let notes = input.notes.as_ref().map(|n| notes("notes", n.as_deref(), 2000, &mut errors));
    done(errors)?;
    let actor = caller.actor();
    let out = state
        .db
        .write(move |conn| {
            let current = scope::household_for_update(conn, &caller, &id)?;
            check_version(expected, current.version)?;
            let mut grid_id = None;
            if let Some(g) = input.grid_id.as_ref().filter(|g| **g != current.grid_id) {
                caller.require(&[Role::Admin, Role::Secretary])?;
                let grid = scope::grid(conn, &caller, g)
                    .ok()
                    .filter(|grid| grid.community_id == current.community_id)
                    .ok_or_else(|| ApiError::invalid("grid_id", "unknown", "no such grid in this community"))?;
                grid_id = Some(grid.id);
            }
            let changes = HouseholdChanges {
                grid_id: grid_id.clone(),
                building,
                unit,
                room,
                head_name,
                phone,
                notes,
                version: Some(current.version + 1),
                updated_at: Some(now()),
                ..Default::default()
            };
            if !households::update(conn, &id, current.version, &changes)? {
                return Err(ApiError::PreconditionFailed("the household changed meanwhile; fetch it again".into()));
            }
            let fields = audit::fields_set([
                ("grid_id", grid_id.is_some()),
                ("address", input.address.is_some()),
                ("head_name", input.head_name.is_some()),
                ("phone", input.phone.is_some()),
                ("notes", input.notes.is_some()),
            ]);
            audit::record(
                conn,
                &actor,
                Event {
                    action: "household.updated",
                    entity_type: "household",
                    entity_id: Some(&id),
                    community_id: Some(&current.community_id),
                    summary: serde_json::json!({"fields": fields, "version": current.version + 1}),
                },
            )?;
            if let Some(g) = &grid_id {
                crate::store::tasks::household_moved(conn, &id, g)?;
            }
            let row = households::find(conn, &id)?.ok_or_else(|| ApiError::not_found("household"))?;
            view(conn, row)
        })
        .await?;
    Ok(HttpResponse::Ok().insert_header(etag(out.version)).json(out))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RemoveQuery {
    /// Why the household leaves.
    #[param(value_type = RemovalReason, required = true)]
    pub reason: Option<String>,
    #[param(example = "搬至外区", max_length = 500)]
    pub note: Option<String>,
}

/// Removes a household softly (secretaries and administrators): it leaves lists and its open
/// tasks are cancelled, but it stays readable by id for secretaries.
#[utoipa::path(delete, path = "/api/v1/households/{id}", tag = "households", operation_id = "remove_household",
    params(("id" = String, Path, description = "Household id"), RemoveQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The removed household", body = HouseholdOut),
        (status = 400, description = "Malformed query", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Grid workers do not remove households", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such household in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Missing or unknown reason", body = Problem, content_type = PROBLEM),
    ))]
pub async fn remove(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
    query: Params<RemoveQuery>,
) -> ApiResult<web::Json<HouseholdOut>> {
    let id = path.into_inner();
    let q = query.into_inner();
    let reason = match q.reason.as_deref() {
        None => return Err(ApiError::invalid("reason", "required", "say why: moved_out, deceased, merged or other")),
        Some(r) => RemovalReason::parse(r).map_err(|e| ApiError::invalid("reason", "invalid", e.to_string()))?,
    };
    let mut errors = Vec::new();
    let note = notes("note", q.note.as_deref(), 500, &mut errors);
    done(errors)?;
    let actor = caller.actor();
    let out = state
        .db
        .write(move |conn| {
            scope::household(conn, &caller, &id)?;
            caller.require(&[Role::Admin, Role::Secretary])?;
            let current = households::find_for_update(conn, &id)?.ok_or_else(|| ApiError::not_found("household"))?;
            if current.removed_at.is_some() {
                return view(conn, current);
            }
            let at = now();
            let changes = HouseholdChanges {
                removed_at: Some(Some(at)),
                removed_reason: Some(Some(reason.as_str().to_owned())),
                removed_note: Some(note.clone()),
                version: Some(current.version + 1),
                updated_at: Some(at),
                ..Default::default()
            };
            if !households::update(conn, &id, current.version, &changes)? {
                return Err(ApiError::PreconditionFailed("the household changed meanwhile; try again".into()));
            }
            let why = format!("household removed: {}", reason.as_str());
            let cancelled = households::cancel_open_tasks(conn, &id, &why, at)?;
            // Its pending proposal leaves the review queue: there is nothing left to decide.
            if let Some(change) = crate::store::tags::cancel_pending(conn, &id, &caller.id, at, &why)? {
                audit::record(
                    conn,
                    &actor,
                    Event {
                        action: "tag_change.cancelled",
                        entity_type: "tag_change",
                        entity_id: Some(&change),
                        community_id: Some(&current.community_id),
                        summary: serde_json::json!({"household_id": id, "reason": why}),
                    },
                )?;
            }
            audit::record(
                conn,
                &actor,
                Event {
                    action: "household.removed",
                    entity_type: "household",
                    entity_id: Some(&id),
                    community_id: Some(&current.community_id),
                    summary: serde_json::json!({"reason": reason.as_str(), "note": note, "tasks_cancelled": cancelled}),
                },
            )?;
            let row = households::find(conn, &id)?.ok_or_else(|| ApiError::not_found("household"))?;
            view(conn, row)
        })
        .await?;
    Ok(web::Json(out))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/households").route(web::get().to(list)).route(web::post().to(create))).service(
        web::resource("/households/{id}")
            .route(web::get().to(get))
            .route(web::patch().to(patch))
            .route(web::delete().to(remove)),
    );
}
