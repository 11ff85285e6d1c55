//! Dashboards and evaluation reports: `/stats/overview` and `/reports/evaluation`.
//!
//! The figures the governance rhythm runs on (每月例会、季度擂台、半年评估、年底观摩). Every
//! figure is computed by the database per grid (`store::stats`) and folded here into
//! communities and the caller's scope, so a grid row, its community row and the totals always
//! add up. Dates are local to each community's timezone.
//!
//! The parts: `scope` (which communities and grids a request covers), `types` (the counts and
//! how they add up), `overview` and `evaluation` (each answer and its folding), `csv` (the
//! report as a table). Periods and the ranking are pure rules in `domain::period` and
//! `domain::ranking`; the queries, and the snapshot they share, are in `store::stats`.
//!
//! Definitions:
//! - **coverage** of a tag: of the active households of the tag whose community's plan has an
//!   active `home_visit` template for the tag (`planned`), those whose latest home visit's local
//!   date is on or after today − the template's `interval_days` (`covered`: the next home visit
//!   is not overdue yet). `rate` = covered / planned, `null` when no household is planned.
//! - **visits in the last 7 / 30 days**: visits whose local date is today or one of the 6 / 29
//!   days before.
//! - **reviews due**: active households with `tag_review_due_on` on or before today.
//! - **pending tag changes**: pending proposals of active households, in their current grid.
//! - report **tasks due**: tasks due in the period (`first_day` ≤ `due_on` ≤ `last_day`), except
//!   cancelled ones (skipped by a secretary, no longer in the household's plan, or of a removed
//!   household), which count nowhere. Each counts in exactly one of: `completed_on_time` (the
//!   local date of `completed_at` — for a task done by a visit, when the visit took place — ≤
//!   `due_on`), `completed_late` (done after the due date, by the
//!   end of the period), `missed` (the period is over and the task was not done by its end),
//!   `overdue` (the period is still running, the task is open and past due) and `not_yet_due`
//!   (still running, open, due today or later). `on_time_rate` = on time / (due − not yet due),
//!   `null` when nothing is decided yet.
//! - report **red coverage**: coverage of red households as of the period's last day (today for
//!   a running period), counting the households that existed and were red that evening.
//! - report **visits**: visits whose local date lies in the period, by grid and author.
//! - **ranking**: grids by on-time rate, then red coverage (higher first, `null` last); equal
//!   grids share a rank (1, 2, 2, 4), listed by code.
//! - a worker's tasks are the tasks assigned to them; their visits the visits they recorded;
//!   their red coverage that of the grids they are assigned to now.

mod csv;
mod evaluation;
mod overview;
mod scope;
mod types;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

pub use self::csv::{to_csv, to_xlsx};
pub use self::evaluation::{
    CommunityEvaluation, Evaluation, EvaluationReport, GridEvaluation, StreetEvaluation, WorkerEvaluation,
};
pub use self::overview::{CommunityOverview, Figures, GridOverview, Overview, StreetOverview};
pub use self::scope::ScopeQuery;
pub use self::types::{Coverage, CoverageByTag, KindCounts, ScopeOut, TagCounts};
use crate::AppState;
use crate::api::input::Params;
use crate::auth::AuthUser;
use crate::db::DbConn;
use crate::domain::Period;
use crate::error::{ApiError, ApiResult, PROBLEM_JSON as PROBLEM, Problem};
use crate::store::stats::snapshot;

/// The dashboard of the caller's scope, its communities and its grids.
///
/// Households by tag, open and overdue tasks, visits of the last 7 and 30 days, home-visit
/// coverage, pending tag proposals and reviews due, for the caller's scope or one community or
/// grid inside it, with one row per community and per grid that add up to the totals.
#[utoipa::path(get, path = "/api/v1/stats/overview", tag = "stats", operation_id = "stats_overview",
    params(ScopeQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The figures of the scope, its communities and its grids", body = Overview),
        (status = 404, description = "No such community, grid, street or district in the caller's scope", body = Problem, content_type = PROBLEM),
    ))]
pub async fn overview(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: Params<ScopeQuery>,
) -> ApiResult<web::Json<Overview>> {
    Ok(web::Json(overview_for(&state, caller, query.into_inner()).await?))
}

/// The dashboard of the caller's scope narrowed by `q` (the API's and the console's).
pub async fn overview_for(state: &AppState, caller: AuthUser, q: ScopeQuery) -> ApiResult<Overview> {
    let now = Utc::now();
    of_target(state, caller, q, move |c, t| overview::overview_of(c, t, now)).await
}

/// The evaluation report of `period` for the caller's scope narrowed by `q` (the API's and the
/// console's).
pub async fn evaluation_for(
    state: &AppState,
    caller: AuthUser,
    period: Period,
    q: ScopeQuery,
) -> ApiResult<EvaluationReport> {
    let now = Utc::now();
    of_target(state, caller, q, move |c, t| evaluation::evaluation_of(c, t, period, now)).await
}

/// Computes figures of the caller's scope narrowed by `q` (404 outside it), on one snapshot.
async fn of_target<T: Send + 'static>(
    state: &AppState,
    caller: AuthUser,
    q: ScopeQuery,
    figures: impl FnOnce(&mut DbConn, scope::Target) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    state
        .db
        .read(move |conn| {
            snapshot(conn, |conn| {
                let target = scope::target(conn, &caller, &q)?;
                figures(conn, target)
            })
        })
        .await
}

#[derive(Deserialize, ToSchema, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReportFormat {
    Json,
    Csv,
}

#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct EvaluationQuery {
    /// `2026-11` (month), `2026-Q4` (quarter), `2026-H2` (half year) or `2026` (year); dates
    /// in each community's timezone.
    #[param(
        required = true,
        example = "2026-Q4",
        pattern = "^(19[7-9][0-9]|[2-9][0-9]{3})(-(0[1-9]|1[0-2]|[Qq][1-4]|[Hh][12]))?$"
    )]
    pub period: Option<String>,
    /// Only this community (inside the caller's scope).
    pub community_id: Option<String>,
    /// Only this grid (inside the caller's scope).
    pub grid_id: Option<String>,
    /// This street's roll-up: communities ranked within it (see `/stats/overview`).
    pub street_id: Option<String>,
    /// This district's roll-up: streets ranked within it, communities within their street.
    pub district_id: Option<String>,
    /// `csv` or `json`, overriding the `Accept` header (for download links).
    #[param(inline)]
    pub format: Option<ReportFormat>,
}

impl EvaluationQuery {
    /// The period asked for (422 when missing or malformed).
    pub fn period(&self) -> ApiResult<Period> {
        match self.period.as_deref() {
            None | Some("") => {
                Err(ApiError::invalid("period", "required", "give a period: 2026-11, 2026-Q4, 2026-H2 or 2026"))
            }
            Some(p) => Period::parse(p).ok_or_else(|| {
                ApiError::invalid(
                    "period",
                    "invalid_format",
                    "must be a month (2026-11), quarter (2026-Q4), half year (2026-H2) or year (2026)",
                )
            }),
        }
    }

    /// Whether the report is wanted as CSV: `format`, else the `Accept` header.
    fn as_csv(&self, req: &HttpRequest) -> bool {
        match self.format {
            Some(f) => f == ReportFormat::Csv,
            None => csv::wanted(req),
        }
    }
}

/// The evaluation report of a month, quarter, half year or year.
///
/// Per grid (ranked), per worker and per community, with the scope's totals: tasks due and how
/// they ended, the on-time rate, red coverage and visits. JSON, or CSV (one table, a `level`
/// column telling the rows apart) with `Accept: text/csv` or `format=csv`.
#[utoipa::path(get, path = "/api/v1/reports/evaluation", tag = "stats", operation_id = "evaluation_report",
    params(EvaluationQuery, ("Accept" = Option<String>, Header, description = "`text/csv` for CSV")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The report", content(
            (EvaluationReport = "application/json"),
            (String = "text/csv", example = "level,rank,period,…\r\ngrid,1,2026-Q4,…\r\n"),
        ), headers(("Content-Disposition" = String, description = "For CSV: an attachment named after the period"))),
        (status = 404, description = "No such community, grid, street or district in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Missing or invalid period, or a roll-up mixed with another scope", body = Problem, content_type = PROBLEM),
    ))]
pub async fn evaluation(
    state: web::Data<AppState>,
    caller: AuthUser,
    req: HttpRequest,
    query: Params<EvaluationQuery>,
) -> ApiResult<HttpResponse> {
    let q = query.into_inner();
    let (period, as_csv) = (q.period()?, q.as_csv(&req));
    let scope_query = ScopeQuery {
        community_id: q.community_id,
        grid_id: q.grid_id,
        street_id: q.street_id,
        district_id: q.district_id,
    };
    let report = evaluation_for(&state, caller, period, scope_query).await?;
    let mut res = HttpResponse::Ok();
    res.insert_header((header::VARY, "Accept"));
    Ok(if as_csv { csv::attachment(res, &report) } else { res.json(report) })
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/stats/overview").route(web::get().to(overview)))
        .service(web::resource("/reports/evaluation").route(web::get().to(evaluation)));
}
