//! Visits: `/visits`, `/visits/{id}`.
//!
//! Mobile clients submit visits with their own ids and retry on weak networks: the same
//! submission again returns the stored visit (200) and changes nothing; the same id with other
//! content is 409.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::conditional::{check_version, etag, if_match};
use crate::api::input::{Body, Instant, Params};
use crate::api::pagination::{Page, decode_cursor, fetch_limit, page, parse_time_key, time_key};
use crate::api::validate::{client_id, notes, text};
use crate::auth::AuthUser;
use crate::auth::scope::{self, Reach};
use crate::db::DbConn;
use crate::domain::{Finding, Location, Role, ServiceKind};
use crate::error::{ApiError, ApiResult, ErrorCode, FieldError, PROBLEM_JSON as PROBLEM, Problem};
use crate::store::JsonText;
use crate::store::audit::{self, Event};
use crate::store::now;
use crate::store::replay::{self, Origin};
use crate::store::tasks;
use crate::store::visits::{self as store, ListFilter, VisitCorrection, VisitRow};

/// Clock skew allowed between a client and the server.
const SKEW_MINUTES: i64 = 5;
/// How long the author may correct a visit.
const CORRECTION_HOURS: i64 = 24;

#[derive(Serialize, ToSchema)]
pub struct VisitOut {
    pub id: String,
    pub household_id: String,
    pub community_id: String,
    pub grid_id: String,
    pub worker_id: String,
    pub kind: ServiceKind,
    pub visited_at: DateTime<Utc>,
    pub notes: Option<String>,
    pub findings: Vec<Finding>,
    pub location: Option<Location>,
    /// The open tasks this visit completed.
    pub completed_task_ids: Vec<String>,
    /// When the server received it.
    pub received_at: DateTime<Utc>,
    pub version: i32,
    pub updated_at: DateTime<Utc>,
}

fn visit_out(v: VisitRow, completed: Vec<String>) -> VisitOut {
    let location = match (v.location_lat, v.location_lng, v.location_accuracy_m) {
        (Some(lat), Some(lng), Some(accuracy_m)) => Some(Location { lat, lng, accuracy_m }),
        _ => None,
    };
    VisitOut {
        kind: v.kind,
        visited_at: v.visited_at.and_utc(),
        findings: v.findings.0.clone(),
        location,
        completed_task_ids: completed,
        received_at: v.received_at.and_utc(),
        updated_at: v.updated_at.and_utc(),
        id: v.id,
        household_id: v.household_id,
        community_id: v.community_id,
        grid_id: v.grid_id,
        worker_id: v.worker_id,
        notes: v.notes,
        version: v.version,
    }
}

fn views(conn: &mut DbConn, rows: Vec<VisitRow>) -> ApiResult<Vec<VisitOut>> {
    let ids: Vec<String> = rows.iter().map(|v| v.id.clone()).collect();
    let mut completed: HashMap<String, Vec<String>> = HashMap::new();
    for (visit, task) in tasks::completed_by(conn, &ids)? {
        completed.entry(visit).or_default().push(task);
    }
    Ok(rows
        .into_iter()
        .map(|v| {
            let c = completed.remove(&v.id).unwrap_or_default();
            visit_out(v, c)
        })
        .collect())
}

fn view(conn: &mut DbConn, row: VisitRow) -> ApiResult<VisitOut> {
    views(conn, vec![row])?.pop().ok_or_else(|| ApiError::internal(anyhow::anyhow!("empty view")))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVisit {
    /// Optional client-chosen UUID: resubmitting the same visit is safe.
    #[schema(format = Uuid, example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub id: Option<String>,
    #[schema(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub household_id: String,
    pub kind: ServiceKind,
    /// When it happened (RFC 3339). Not in the future (5 minutes of skew allowed), and not
    /// older than the configured window (30 days) unless a secretary records it.
    #[schema(value_type = DateTime<Utc>)]
    pub visited_at: Instant,
    #[schema(example = "入户走访，老人身体状况良好", max_length = 4000)]
    pub notes: Option<String>,
    /// At most 50.
    #[serde(default)]
    #[schema(max_items = 50)]
    pub findings: Vec<Finding>,
    pub location: Option<Location>,
}

/// A visit's checked content.
pub struct Content {
    pub notes: Option<String>,
    pub findings: Vec<Finding>,
    pub location: Option<Location>,
}

fn check_content(
    notes: Option<&str>,
    findings: &[Finding],
    location: Option<Location>,
    errors: &mut Vec<FieldError>,
) -> Content {
    let notes = self::notes("notes", notes, 4000, errors);
    if findings.len() > 50 {
        errors.push(FieldError::new("findings", "too_many", "at most 50 findings"));
    }
    let findings: Vec<Finding> = findings
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let category = text(&format!("findings[{i}].category"), &f.category, 32, errors);
            let detail = self::notes(&format!("findings[{i}].detail"), Some(&f.detail), 1000, errors);
            Finding { category, detail: detail.unwrap_or_default() }
        })
        .collect();
    if let Some(l) = location {
        let valid = l.lat.is_finite()
            && l.lng.is_finite()
            && l.accuracy_m.is_finite()
            && (-90.0..=90.0).contains(&l.lat)
            && (-180.0..=180.0).contains(&l.lng)
            && (0.0..=100_000.0).contains(&l.accuracy_m);
        if !valid {
            errors.push(FieldError::new(
                "location",
                "out_of_range",
                "lat must be within ±90, lng within ±180, accuracy_m within 0–100000",
            ));
        }
    }
    Content { notes, findings, location }
}

/// What identifies a submission's content, for telling a retry from a conflict.
pub fn content_hash(household_id: &str, kind: ServiceKind, visited_at: NaiveDateTime, c: &Content) -> String {
    let canonical = serde_json::json!({
        "household_id": household_id,
        "kind": kind.as_str(),
        "visited_at": visited_at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        "notes": c.notes,
        "findings": c.findings,
        "location": c.location,
    });
    Sha256::digest(canonical.to_string().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Records a visit: it completes the household's open task of the same kind (early visits
/// count) and schedules the next one from the visit's date, in one transaction.
#[utoipa::path(post, path = "/api/v1/visits", tag = "visits", operation_id = "create_visit",
    request_body = CreateVisit, security(("bearer" = [])),
    responses(
        (status = 201, description = "Recorded", body = VisitOut, headers(("ETag" = String, description = "Version"))),
        (status = 200, description = "The same visit was already recorded with this id", body = VisitOut),
        (status = 400, description = "Malformed request", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such household in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The id holds a different visit, or the household was removed", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid fields or visited_at outside the allowed window", body = Problem, content_type = PROBLEM),
    ))]
pub async fn create(state: web::Data<AppState>, caller: AuthUser, body: Body<CreateVisit>) -> ApiResult<HttpResponse> {
    let input = body.into_inner();
    let id = client_id(input.id.as_deref())?;
    let mut errors = Vec::new();
    let content = check_content(input.notes.as_deref(), &input.findings, input.location, &mut errors);
    let received = now();
    let visited_at = input.visited_at.0.timestamp_micros();
    let visited_at = DateTime::from_timestamp_micros(visited_at).map(|d| d.naive_utc()).unwrap_or(received);
    if visited_at > received + Duration::minutes(SKEW_MINUTES) {
        errors.push(FieldError::new("visited_at", "in_future", "may not be in the future"));
    }
    let max_age = i64::from(state.config.server.visit_max_age_days);
    let privileged = matches!(caller.role, Role::Secretary | Role::Admin);
    if !privileged && visited_at < received - Duration::days(max_age) {
        errors.push(FieldError::new("visited_at", "too_old", format!("may not be older than {max_age} days")));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let actor = caller.actor();
    let (created, out) = state
        .db
        .write(move |conn| {
            let household = scope::household(conn, &caller, &input.household_id)?;
            // Lock the household before its tasks, in the order every other writer takes them
            // (tag decisions, edits, the reconciler); the other way round deadlocks on PostgreSQL.
            crate::store::households::find_for_update(conn, &household.id)?;
            let hash = content_hash(&household.id, input.kind, visited_at, &content);
            let existing = |conn: &mut DbConn| -> ApiResult<(bool, VisitOut)> {
                let stored =
                    store::find(conn, &id)?.ok_or_else(|| ApiError::internal(anyhow::anyhow!("visit vanished")))?;
                let origin =
                    Origin { created_by: Some(stored.worker_id.clone()), digest: Some(stored.content_hash.clone()) };
                replay::check_retry(&origin, &caller.id, &hash)?;
                Ok((false, view(conn, stored)?))
            };
            if store::find(conn, &id)?.is_some() {
                return existing(conn);
            }
            if household.removed_at.is_some() {
                return Err(ApiError::household_removed());
            }
            let row = VisitRow {
                id: id.clone(),
                household_id: household.id.clone(),
                community_id: household.community_id.clone(),
                grid_id: household.grid_id.clone(),
                worker_id: caller.id.clone(),
                kind: input.kind,
                visited_at,
                notes: content.notes.clone(),
                findings: JsonText(content.findings.clone()),
                location_lat: content.location.map(|l| l.lat),
                location_lng: content.location.map(|l| l.lng),
                location_accuracy_m: content.location.map(|l| l.accuracy_m),
                content_hash: hash.clone(),
                received_at: received,
                version: 1,
                updated_at: received,
            };
            if !store::insert(conn, &row)? {
                // A concurrent retry of the same submission got there first.
                return existing(conn);
            }
            let completed =
                tasks::complete_with_visit(conn, &household.id, input.kind.as_str(), &id, visited_at.min(received))?;
            let reconciled = tasks::household_changed(conn, &household.id)?;
            audit::record(
                conn,
                &actor,
                Event {
                    action: "visit.recorded",
                    entity_type: "visit",
                    entity_id: Some(&id),
                    community_id: Some(&household.community_id),
                    summary: serde_json::json!({"household_id": household.id, "kind": input.kind.as_str(),
                    "completed_task_ids": completed, "tasks_created": reconciled.created}),
                },
            )?;
            Ok((true, visit_out(row, completed)))
        })
        .await?;
    let mut res = if created { HttpResponse::Created() } else { HttpResponse::Ok() };
    Ok(res.insert_header(etag(out.version)).json(out))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListVisits {
    pub household_id: Option<String>,
    pub grid_id: Option<String>,
    pub worker_id: Option<String>,
    /// Visits at or after this time (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub from: Option<Instant>,
    /// Visits before this time (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub to: Option<Instant>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500, example = 50)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// Lists visits in the caller's scope, newest first.
#[utoipa::path(get, path = "/api/v1/visits", tag = "visits", operation_id = "list_visits",
    params(ListVisits), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of visits", body = Page<VisitOut>),
        (status = 400, description = "Malformed query", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid limit or cursor", body = Problem, content_type = PROBLEM),
    ))]
pub async fn list(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: Params<ListVisits>,
) -> ApiResult<web::Json<Page<VisitOut>>> {
    let q = query.into_inner();
    let fetch = fetch_limit(q.limit)?;
    let before = match decode_cursor(q.cursor.as_deref(), 2)? {
        Some(k) => Some((parse_time_key(&k[0])?, k[1].clone())),
        None => None,
    };
    let out = state
        .db
        .read(move |conn| {
            let mut filter = ListFilter {
                household_id: q.household_id,
                worker_id: q.worker_id,
                grid_ids: q.grid_id.map(|g| vec![g]),
                from: q.from.map(|f| f.0.naive_utc()),
                to: q.to.map(|t| t.0.naive_utc()),
                ..Default::default()
            };
            match scope::reach(conn, &caller)? {
                Reach::Everything => {}
                Reach::Community(c) => filter.community_id = Some(c),
                Reach::Grids { community_id, grid_ids } => {
                    filter.community_id = Some(community_id);
                    filter.current_households_in = Some(grid_ids);
                }
            }
            let rows = store::list(conn, &filter, before, fetch)?;
            let keyed = page(rows, fetch, |v| vec![time_key(v.visited_at), v.id.clone()], |v| v);
            Ok(Page { items: views(conn, keyed.items)?, next_cursor: keyed.next_cursor })
        })
        .await?;
    Ok(web::Json(out))
}

fn visible_visit(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<VisitRow> {
    let v = store::find(conn, id)?.ok_or_else(|| ApiError::not_found("visit"))?;
    scope::household(conn, caller, &v.household_id).map_err(|_| ApiError::not_found("visit"))?;
    Ok(v)
}

/// One visit.
#[utoipa::path(get, path = "/api/v1/visits/{id}", tag = "visits", operation_id = "get_visit",
    params(("id" = String, Path, description = "Visit id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The visit", body = VisitOut, headers(("ETag" = String, description = "Version"))),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such visit in the caller's scope", body = Problem, content_type = PROBLEM),
    ))]
pub async fn get(state: web::Data<AppState>, caller: AuthUser, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let out = state
        .db
        .read(move |conn| {
            let v = visible_visit(conn, &caller, &id)?;
            view(conn, v)
        })
        .await?;
    Ok(HttpResponse::Ok().insert_header(etag(out.version)).json(out))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchVisit {
    /// New notes, or `null` to clear them.
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<String>, example = "补充：已联系子女", max_length = 4000)]
    pub notes: Option<Option<String>>,
    /// The whole new list (at most 50).
    #[schema(max_items = 50)]
    pub findings: Option<Vec<Finding>>,
    /// A new location, or `null` to clear it.
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<Location>)]
    pub location: Option<Option<Location>>,
}

/// Corrects a visit's notes, findings or location: its author only, within 24 hours of
/// receipt; afterwards it is immutable (409).
#[utoipa::path(patch, path = "/api/v1/visits/{id}", tag = "visits", operation_id = "update_visit",
    params(("id" = String, Path, description = "Visit id"),
           ("If-Match" = Option<String>, Header, description = "The ETag the correction is based on")),
    request_body = PatchVisit, security(("bearer" = [])),
    responses(
        (status = 200, description = "The corrected visit", body = VisitOut, headers(("ETag" = String, description = "Version"))),
        (status = 400, description = "Malformed request", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Only the author corrects a visit", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such visit in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 409, description = "More than 24 hours old: immutable", body = Problem, content_type = PROBLEM),
        (status = 412, description = "If-Match names an old version", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid fields", body = Problem, content_type = PROBLEM),
    ))]
pub async fn patch(
    state: web::Data<AppState>,
    caller: AuthUser,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body<PatchVisit>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let expected = if_match(&req)?;
    let input = body.into_inner();
    let actor = caller.actor();
    let out = state
        .db
        .write(move |conn| {
            let v = scope::visit_for_update(conn, &caller, &id)?;
            if v.worker_id != caller.id {
                return Err(ApiError::Forbidden("only the visit's author may correct it".into()));
            }
            if now() > v.received_at + Duration::hours(CORRECTION_HOURS) {
                return Err(ApiError::conflict(ErrorCode::VisitLocked, "visits can be corrected for 24 hours only"));
            }
            let old_findings: Vec<Finding> = v.findings.0.clone();
            let old_location = match (v.location_lat, v.location_lng, v.location_accuracy_m) {
                (Some(lat), Some(lng), Some(accuracy_m)) => Some(Location { lat, lng, accuracy_m }),
                _ => None,
            };
            let mut errors = Vec::new();
            let content = check_content(
                match &input.notes {
                    Some(n) => n.as_deref(),
                    None => v.notes.as_deref(),
                },
                input.findings.as_deref().unwrap_or(&old_findings),
                input.location.unwrap_or(old_location),
                &mut errors,
            );
            if !errors.is_empty() {
                return Err(ApiError::Validation(errors));
            }
            // Preconditions count only for requests that are otherwise valid (RFC 9110 §13.2.1).
            check_version(expected, v.version)?;
            let kind = v.kind;
            let correction = VisitCorrection {
                notes: Some(content.notes.clone()),
                findings: Some(serde_json::to_string(&content.findings).expect("findings serialise")),
                location_lat: Some(content.location.map(|l| l.lat)),
                location_lng: Some(content.location.map(|l| l.lng)),
                location_accuracy_m: Some(content.location.map(|l| l.accuracy_m)),
                content_hash: content_hash(&v.household_id, kind, v.visited_at, &content),
                version: v.version + 1,
                updated_at: now(),
            };
            if !store::correct(conn, &id, v.version, &correction)? {
                return Err(ApiError::PreconditionFailed("the visit changed meanwhile; fetch it again".into()));
            }
            let fields = audit::fields_set([
                ("notes", input.notes.is_some()),
                ("findings", input.findings.is_some()),
                ("location", input.location.is_some()),
            ]);
            audit::record(
                conn,
                &actor,
                Event {
                    action: "visit.corrected",
                    entity_type: "visit",
                    entity_id: Some(&id),
                    community_id: Some(&v.community_id),
                    summary: serde_json::json!({"fields": fields}),
                },
            )?;
            let row = store::find(conn, &id)?.ok_or_else(|| ApiError::not_found("visit"))?;
            view(conn, row)
        })
        .await?;
    Ok(HttpResponse::Ok().insert_header(etag(out.version)).json(out))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/visits").route(web::get().to(list)).route(web::post().to(create)))
        .service(web::resource("/visits/{id}").route(web::get().to(get)).route(web::patch().to(patch)));
}
