//! Visits: `/visits`, `/visits/{id}`. The rules are in [`crate::ops::visits`].
//!
//! Mobile clients submit visits with their own ids and retry on weak networks: the same
//! submission again from its author returns the stored visit (200) and changes nothing; the
//! same id with other content is 409.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::api::answer::{Api, View};
use crate::api::conditional::IfMatch;
use crate::api::input::{Body, Instant, Params};
use crate::api::pagination::{Page, PageQuery, parse_time_key, time_key};
use crate::api::validate::{clean, clean_optional, client_id, declared, done};
use crate::auth::AuthUser;
use crate::auth::scope::{self, Reach};
use crate::db::DbConn;
use crate::domain::text::optional_lines;
use crate::domain::{Finding, Location, ServiceKind};
use crate::error::{ApiError, ApiResult, PROBLEM_JSON as PROBLEM, Problem};
use crate::ops;
use crate::ops::visits::{Content, Correction, NewVisit, Policy};
use crate::store::tasks;
use crate::store::visits::{self as store, ListFilter, VisitRow};

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
    let location = Location::from_columns(v.location_lat, v.location_lng, v.location_accuracy_m);
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

pub fn views(conn: &mut DbConn, rows: Vec<VisitRow>) -> ApiResult<Vec<VisitOut>> {
    let ids: Vec<String> = rows.iter().map(|v| v.id.clone()).collect();
    let mut completed: HashMap<String, Vec<String>> = HashMap::new();
    for (visit, task) in tasks::completed_by(conn, &ids)? {
        completed.entry(visit).or_default().push(task);
    }
    Ok(rows
        .into_iter()
        .map(|v| {
            // A page can hold a visit twice (a push's replay of a visit it recorded).
            let c = completed.get(&v.id).cloned().unwrap_or_default();
            visit_out(v, c)
        })
        .collect())
}

impl View for VisitRow {
    type Out = VisitOut;

    fn version(&self) -> Option<i32> {
        Some(self.version)
    }

    fn view(self, conn: &mut DbConn) -> ApiResult<VisitOut> {
        views(conn, vec![self])?.pop().ok_or_else(|| ApiError::internal(anyhow::anyhow!("empty view")))
    }

    fn views(rows: Vec<Self>, conn: &mut DbConn) -> ApiResult<Vec<VisitOut>> {
        views(conn, rows)
    }
}

#[derive(Deserialize, ToSchema, Validate)]
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
    #[validate(length(max = 4000, code = "too_long"), custom(function = "optional_lines"))]
    pub notes: Option<String>,
    /// At most 50.
    #[serde(default)]
    #[schema(max_items = 50)]
    #[validate(length(max = 50, code = "too_many"), nested)]
    pub findings: Vec<Finding>,
    #[validate(nested)]
    pub location: Option<Location>,
}

/// Findings as stored: their text trimmed.
fn clean_findings(findings: Vec<Finding>) -> Vec<Finding> {
    findings.into_iter().map(|f| Finding { category: clean(&f.category), detail: clean(&f.detail) }).collect()
}

impl CreateVisit {
    pub(crate) fn checked(self) -> ApiResult<NewVisit> {
        let id = client_id(self.id.as_deref())?;
        done(declared(&self))?;
        // Stored to the microsecond, like every time.
        let visited_at = self.visited_at.0.naive_utc().trunc_subsecs(6);
        let content = Content {
            notes: clean_optional(self.notes.as_deref()),
            findings: clean_findings(self.findings),
            location: self.location,
        };
        Ok(NewVisit { id, household_id: self.household_id, kind: self.kind, visited_at, content })
    }
}

/// Records a visit: it completes the household's open task of the same kind (early visits
/// count) and schedules the next one from the visit's date, in one transaction.
#[utoipa::path(post, path = "/api/v1/visits", tag = "visits", operation_id = "create_visit",
    request_body = CreateVisit, security(("bearer" = [])),
    responses(
        (status = 201, description = "Recorded", body = VisitOut),
        (status = 200, description = "The same visit was already recorded with this id by the caller", body = VisitOut),
        (status = 404, description = "No such household in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The id holds another visit (`id_conflict`), or the household was removed (`household_removed`)", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid fields, or `visited_at` outside the allowed window", body = Problem, content_type = PROBLEM),
    ))]
pub async fn create(api: Api, body: Body<CreateVisit>) -> ApiResult<HttpResponse> {
    let input = body.into_inner().checked()?;
    let policy = Policy { max_age_days: api.state.config.server.visit_max_age_days };
    api.saved(move |c, caller| ops::visits::record(c, caller, input, policy)).await
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
}

/// Lists visits in the caller's scope, newest first.
#[utoipa::path(get, path = "/api/v1/visits", tag = "visits", operation_id = "list_visits",
    params(ListVisits, PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of visits", body = Page<VisitOut>),
    ))]
pub async fn list(api: Api, query: Params<ListVisits>, page: PageQuery) -> ApiResult<web::Json<Page<VisitOut>>> {
    let (q, fetch) = (query.into_inner(), page.fetch()?);
    let before = page.after_pair(parse_time_key)?;
    api.listed(move |c, caller| rows(c, caller, q, before, fetch)).await
}

/// A page of the visits `q` asks for in the caller's reach, newest first (the API's list and
/// the console's).
pub(crate) fn rows(
    c: &mut DbConn,
    caller: &AuthUser,
    q: ListVisits,
    before: Option<(NaiveDateTime, String)>,
    fetch: i64,
) -> ApiResult<Page<VisitRow>> {
    let filter = q.within(scope::reach(c, caller)?);
    let rows = store::list(c, &filter, before, fetch)?;
    Ok(Page::of(rows, fetch, |v| vec![time_key(v.visited_at), v.id.clone()]))
}

impl ListVisits {
    /// The filter of the query, in the caller's reach.
    fn within(self, reach: Reach) -> ListFilter {
        let mut filter = ListFilter {
            household_id: self.household_id,
            worker_id: self.worker_id,
            grid_ids: self.grid_id.map(|g| vec![g]),
            from: self.from.map(|f| f.0.naive_utc()),
            to: self.to.map(|t| t.0.naive_utc()),
            ..Default::default()
        };
        let bounds = reach.bounds();
        (filter.community_id, filter.community_ids, filter.current_households_in) =
            (bounds.community, bounds.communities, bounds.grids);
        filter
    }
}

fn visible_visit(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<VisitRow> {
    let v = store::find(conn, id)?.ok_or_else(|| ApiError::not_found("visit"))?;
    scope::household(conn, caller, &v.household_id).map_err(|_| ApiError::not_found("visit"))?;
    Ok(v)
}

/// One visit.
#[utoipa::path(get, path = "/api/v1/visits/{id}", tag = "visits", operation_id = "get_visit",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The visit", body = VisitOut),
    ))]
pub async fn get(api: Api, id: web::Path<String>) -> ApiResult<HttpResponse> {
    api.current(move |c, caller| visible_visit(c, caller, &id)).await
}

#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct PatchVisit {
    /// New notes, or `null` to clear them.
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<String>, example = "补充：已联系子女", max_length = 4000)]
    #[validate(length(max = 4000, code = "too_long"), custom(function = "optional_lines"))]
    pub notes: Option<Option<String>>,
    /// The whole new list (at most 50).
    #[schema(max_items = 50)]
    #[validate(length(max = 50, code = "too_many"), nested)]
    pub findings: Option<Vec<Finding>>,
    /// A new location, or `null` to clear it.
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<Location>)]
    #[validate(nested)]
    pub location: Option<Option<Location>>,
}

impl PatchVisit {
    pub(crate) fn checked(self) -> ApiResult<Correction> {
        done(declared(&self))?;
        Ok(Correction {
            notes: self.notes.map(|n| clean_optional(n.as_deref())),
            findings: self.findings.map(clean_findings),
            location: self.location,
        })
    }
}

/// Corrects a visit's notes, findings or location: its author only, within 24 hours of
/// receipt; afterwards it is immutable (409 `visit_locked`).
#[utoipa::path(patch, path = "/api/v1/visits/{id}", tag = "visits", operation_id = "update_visit",
    params(IfMatch), request_body = PatchVisit, security(("bearer" = [])),
    responses(
        (status = 200, description = "The corrected visit", body = VisitOut),
        (status = 403, description = "Only the author corrects a visit", body = Problem, content_type = PROBLEM),
        (status = 409, description = "More than 24 hours old: immutable (`visit_locked`)", body = Problem, content_type = PROBLEM),
    ))]
pub async fn patch(
    api: Api,
    if_match: IfMatch,
    id: web::Path<String>,
    body: Body<PatchVisit>,
) -> ApiResult<HttpResponse> {
    let correction = body.into_inner().checked()?;
    api.updated(move |c, caller| ops::visits::correct(c, caller, &id, if_match.version(), correction)).await
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/visits").route(web::get().to(list)).route(web::post().to(create)))
        .service(web::resource("/visits/{id}").route(web::get().to(get)).route(web::patch().to(patch)));
}
