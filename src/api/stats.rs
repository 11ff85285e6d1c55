//! Dashboards and evaluation reports: `/stats/overview` and `/reports/evaluation`.
//!
//! The figures the governance rhythm runs on (每月例会、季度擂台、半年评估、年底观摩). Every
//! figure is computed by the database per grid (`store::stats`) and folded here into
//! communities and the caller's scope, so a grid row, its community row and the totals always
//! add up. Dates are local to each community's timezone.
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

use std::collections::{BTreeSet, HashMap};

use actix_web::http::header::{self, Header};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::input::Params;
use crate::auth::AuthUser;
use crate::auth::scope::{self, Reach};
use crate::db::DbConn;
use crate::domain::ranking::{self, Fraction, Standing};
use crate::domain::{Period, Role, ServiceKind, Tag};
use crate::error::{ApiError, ApiResult, PROBLEM_JSON as PROBLEM, Problem};
use crate::store::communities::{self, CommunityRow};
use crate::store::stats::{self as store, GridInfo, Slice, snapshot, start_of_day, zone};

const CSV: &str = "text/csv; charset=utf-8";

// ---------------------------------------------------------------------------------------------
// Figures

/// Counts by traffic-light tag.
#[derive(Serialize, ToSchema, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TagCounts {
    pub red: i64,
    pub yellow: i64,
    pub green: i64,
    pub total: i64,
}

impl TagCounts {
    fn add(&mut self, tag: &str, n: i64) {
        match Tag::parse(tag) {
            Ok(Tag::Red) => self.red += n,
            Ok(Tag::Yellow) => self.yellow += n,
            Ok(Tag::Green) => self.green += n,
            Err(_) => {}
        }
        self.total += n;
    }

    fn absorb(&mut self, o: &TagCounts) {
        self.red += o.red;
        self.yellow += o.yellow;
        self.green += o.green;
        self.total += o.total;
    }
}

/// Counts by kind of visit.
#[derive(Serialize, ToSchema, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KindCounts {
    pub home_visit: i64,
    pub phone_call: i64,
    pub service: i64,
    pub total: i64,
}

impl KindCounts {
    fn add(&mut self, kind: &str, n: i64) {
        match ServiceKind::parse(kind) {
            Ok(ServiceKind::HomeVisit) => self.home_visit += n,
            Ok(ServiceKind::PhoneCall) => self.phone_call += n,
            Ok(ServiceKind::Service) => self.service += n,
            Err(_) => {}
        }
        self.total += n;
    }

    fn absorb(&mut self, o: &KindCounts) {
        self.home_visit += o.home_visit;
        self.phone_call += o.phone_call;
        self.service += o.service;
        self.total += o.total;
    }
}

/// Home-visit coverage of a set of households.
#[derive(Serialize, ToSchema, Debug, Default, Clone, Copy, PartialEq)]
pub struct Coverage {
    /// Households whose plan has an active home-visit template.
    pub planned: i64,
    /// Of those, households whose latest home visit lies within the template's interval.
    pub covered: i64,
    /// covered / planned; `null` when no household is planned.
    #[schema(example = 0.75)]
    pub rate: Option<f64>,
}

impl Coverage {
    fn add(&mut self, planned: i64, covered: i64) {
        self.planned += planned;
        self.covered += covered;
        self.rate = self.fraction().rate();
    }

    /// covered of planned, as the ranking compares it.
    fn fraction(&self) -> Fraction {
        Fraction::new(self.covered, self.planned)
    }
}

/// Coverage per tag.
#[derive(Serialize, ToSchema, Debug, Default, Clone, Copy, PartialEq)]
pub struct CoverageByTag {
    pub red: Coverage,
    pub yellow: Coverage,
    pub green: Coverage,
}

impl CoverageByTag {
    fn add(&mut self, tag: &str, planned: i64, covered: i64) {
        match Tag::parse(tag) {
            Ok(Tag::Red) => self.red.add(planned, covered),
            Ok(Tag::Yellow) => self.yellow.add(planned, covered),
            Ok(Tag::Green) => self.green.add(planned, covered),
            Err(_) => {}
        }
    }

    fn absorb(&mut self, o: &CoverageByTag) {
        self.red.add(o.red.planned, o.red.covered);
        self.yellow.add(o.yellow.planned, o.yellow.covered);
        self.green.add(o.green.planned, o.green.covered);
    }
}

/// The dashboard figures of a grid, a community or a whole scope.
#[derive(Serialize, ToSchema, Debug, Default, Clone, PartialEq)]
pub struct Figures {
    /// Active (not removed) households by tag.
    pub households: TagCounts,
    /// Open tasks by the tag they were scheduled for.
    pub open_tasks: TagCounts,
    /// Open tasks due before today, by tag.
    pub overdue_tasks: TagCounts,
    /// Visits dated today or in the 6 days before (local dates), by kind.
    pub visits_last_7_days: KindCounts,
    /// Visits dated today or in the 29 days before, by kind.
    pub visits_last_30_days: KindCounts,
    /// Home-visit coverage by tag.
    pub coverage: CoverageByTag,
    /// Pending tag proposals of active households.
    pub pending_tag_changes: i64,
    /// Active households whose tag review is due today or earlier, by tag.
    pub reviews_due: TagCounts,
}

impl Figures {
    fn absorb(&mut self, o: &Figures) {
        self.households.absorb(&o.households);
        self.open_tasks.absorb(&o.open_tasks);
        self.overdue_tasks.absorb(&o.overdue_tasks);
        self.visits_last_7_days.absorb(&o.visits_last_7_days);
        self.visits_last_30_days.absorb(&o.visits_last_30_days);
        self.coverage.absorb(&o.coverage);
        self.pending_tag_changes += o.pending_tag_changes;
        self.reviews_due.absorb(&o.reviews_due);
    }
}

/// What a dashboard or report covers.
#[derive(Serialize, ToSchema, Debug, Clone, PartialEq, Eq)]
pub struct ScopeOut {
    /// The one community covered, if it is one.
    pub community_id: Option<String>,
    /// The one grid asked for, if any.
    pub grid_id: Option<String>,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct CommunityOverview {
    pub community_id: String,
    pub name: String,
    pub timezone: String,
    /// Today in the community's timezone: the date the figures are for.
    pub today: NaiveDate,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct GridOverview {
    pub grid_id: String,
    pub community_id: String,
    pub code: String,
    pub name: String,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct Overview {
    pub scope: ScopeOut,
    pub generated_at: DateTime<Utc>,
    /// Today in the scope's timezone; `null` when its communities' dates differ.
    pub today: Option<NaiveDate>,
    /// The whole scope.
    pub totals: Figures,
    /// One row per community in scope, by name.
    pub communities: Vec<CommunityOverview>,
    /// One row per grid in scope, by code.
    pub grids: Vec<GridOverview>,
}

// ---------------------------------------------------------------------------------------------
// Scope

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScopeQuery {
    /// Only this community (inside the caller's scope).
    pub community_id: Option<String>,
    /// Only this grid (inside the caller's scope).
    pub grid_id: Option<String>,
}

/// The communities and grids a request covers.
struct Target {
    communities: Vec<CommunityRow>,
    /// `None`: every grid of the communities.
    grids: Option<Vec<String>>,
    scope: ScopeOut,
}

impl Target {
    fn community_ids(&self) -> Vec<String> {
        self.communities.iter().map(|c| c.id.clone()).collect()
    }

    /// The communities split by timezone, each with the grid restriction.
    fn slices(&self) -> Vec<Slice> {
        let mut out: Vec<Slice> = Vec::new();
        for c in &self.communities {
            let tz = zone(&c.timezone);
            match out.iter_mut().find(|s| s.timezone == tz) {
                Some(s) => s.communities.push(c.id.clone()),
                None => out.push(Slice { communities: vec![c.id.clone()], grids: self.grids.clone(), timezone: tz }),
            }
        }
        out
    }
}

/// The caller's scope, narrowed to `community_id` / `grid_id` (404 outside it): administrators
/// see everything, secretaries their community, grid workers their assigned grids.
fn target(conn: &mut DbConn, caller: &AuthUser, q: &ScopeQuery) -> ApiResult<Target> {
    let reach = scope::reach(conn, caller)?;
    let find = |conn: &mut DbConn, id: &str, what: &str| -> ApiResult<CommunityRow> {
        communities::find(conn, id)?.ok_or_else(|| ApiError::not_found(what))
    };
    if let Some(grid_id) = &q.grid_id {
        let grid = scope::grid(conn, caller, grid_id)?;
        if q.community_id.as_ref().is_some_and(|c| *c != grid.community_id) {
            return Err(ApiError::not_found("grid"));
        }
        let community = find(conn, &grid.community_id, "grid")?;
        let scope = ScopeOut { community_id: Some(community.id.clone()), grid_id: Some(grid.id.clone()) };
        return Ok(Target { communities: vec![community], grids: Some(vec![grid.id]), scope });
    }
    let worker_grids = match &reach {
        Reach::Grids { grid_ids, .. } => Some(grid_ids.clone()),
        _ => None,
    };
    let communities = match (&q.community_id, reach) {
        (Some(id), _) => vec![scope::community(conn, caller, id)?],
        (None, Reach::Everything) => store::all_communities(conn)?,
        (None, Reach::Community(id) | Reach::Grids { community_id: id, .. }) => vec![find(conn, &id, "community")?],
    };
    let single = match communities.as_slice() {
        [c] => Some(c.id.clone()),
        _ => None,
    };
    Ok(Target { communities, grids: worker_grids, scope: ScopeOut { community_id: single, grid_id: None } })
}

fn today_in(tz: chrono_tz::Tz, now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&tz).date_naive()
}

// ---------------------------------------------------------------------------------------------
// Overview

fn overview_of(conn: &mut DbConn, t: Target, now: DateTime<Utc>) -> ApiResult<Overview> {
    let grids = store::grids_of(conn, &t.community_ids(), t.grids.as_deref())?;
    let mut per_grid: HashMap<String, Figures> = grids.iter().map(|g| (g.id.clone(), Figures::default())).collect();
    for s in t.slices() {
        let today = today_in(s.timezone, now);
        let day = |offset: i64| start_of_day(today + Duration::days(offset), s.timezone);
        for r in store::households_by_tag(conn, &s, today)? {
            if let Some(f) = per_grid.get_mut(&r.grid_id) {
                f.households.add(&r.tag, r.households);
                f.reviews_due.add(&r.tag, r.reviews_due);
            }
        }
        for r in store::open_tasks(conn, &s, today)? {
            if let Some(f) = per_grid.get_mut(&r.grid_id) {
                f.open_tasks.add(&r.tag, r.open);
                f.overdue_tasks.add(&r.tag, r.overdue);
            }
        }
        for r in store::recent_visits(conn, &s, day(-29), day(-6), day(1))? {
            if let Some(f) = per_grid.get_mut(&r.grid_id) {
                f.visits_last_30_days.add(&r.kind, r.visits);
                f.visits_last_7_days.add(&r.kind, r.recent);
            }
        }
        for r in store::coverage_today(conn, &s, today)? {
            if let Some(f) = per_grid.get_mut(&r.grid_id) {
                f.coverage.add(&r.tag, r.planned, r.covered);
            }
        }
        for (grid_id, n) in store::pending_tag_changes(conn, &s)? {
            if let Some(f) = per_grid.get_mut(&grid_id) {
                f.pending_tag_changes += n;
            }
        }
    }
    let mut totals = Figures::default();
    let mut communities: Vec<CommunityOverview> = t
        .communities
        .iter()
        .map(|c| CommunityOverview {
            community_id: c.id.clone(),
            name: c.name.clone(),
            timezone: c.timezone.clone(),
            today: today_in(zone(&c.timezone), now),
            figures: Figures::default(),
        })
        .collect();
    let grids: Vec<GridOverview> = grids
        .into_iter()
        .map(|g| {
            let figures = per_grid.remove(&g.id).unwrap_or_default();
            if let Some(c) = communities.iter_mut().find(|c| c.community_id == g.community_id) {
                c.figures.absorb(&figures);
            }
            totals.absorb(&figures);
            GridOverview { grid_id: g.id, community_id: g.community_id, code: g.code, name: g.name, figures }
        })
        .collect();
    let dates: BTreeSet<NaiveDate> = communities.iter().map(|c| c.today).collect();
    let today = match dates.len() {
        0 => Some(today_in(chrono_tz::Asia::Shanghai, now)),
        1 => dates.first().copied(),
        _ => None,
    };
    communities.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.community_id.cmp(&b.community_id)));
    Ok(Overview { scope: t.scope, generated_at: now, today, totals, communities, grids })
}

/// The dashboard of the caller's scope, its communities and its grids.
///
/// Households by tag, open and overdue tasks, visits of the last 7 and 30 days, home-visit
/// coverage, pending tag proposals and reviews due, for the caller's scope or one community or
/// grid inside it, with one row per community and per grid that add up to the totals.
#[utoipa::path(get, path = "/api/v1/stats/overview", tag = "stats", operation_id = "stats_overview",
    params(ScopeQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The figures of the scope, its communities and its grids", body = Overview),
        (status = 400, description = "Malformed query", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such community or grid in the caller's scope", body = Problem, content_type = PROBLEM),
    ))]
pub async fn overview(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: Params<ScopeQuery>,
) -> ApiResult<web::Json<Overview>> {
    let q = query.into_inner();
    let now = Utc::now();
    let out = state
        .db
        .read(move |conn| {
            snapshot(conn, |conn| {
                let t = target(conn, &caller, &q)?;
                overview_of(conn, t, now)
            })
        })
        .await?;
    Ok(web::Json(out))
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// The evaluation figures of a grid, a worker, a community or a whole scope for a period.
#[derive(Serialize, ToSchema, Debug, Default, Clone, PartialEq)]
pub struct Evaluation {
    /// Tasks due in the period, cancelled ones left out.
    pub tasks_due: i64,
    /// Done on or before the due date (local date of completion).
    pub completed_on_time: i64,
    /// Done after the due date, by the end of the period.
    pub completed_late: i64,
    /// The period is over and the task was not done by its end.
    pub missed: i64,
    /// The period is still running and the task is open past its due date.
    pub overdue: i64,
    /// The period is still running and the task is due today or later.
    pub not_yet_due: i64,
    /// completed_on_time / (tasks_due − not_yet_due); `null` when nothing is decided yet.
    #[schema(example = 0.9)]
    pub on_time_rate: Option<f64>,
    /// Red households' home-visit coverage as of the period's last day (or today).
    pub red_coverage: Coverage,
    /// Visits dated in the period, by kind.
    pub visits: KindCounts,
}

impl Evaluation {
    fn add_tasks(&mut self, r: &store::TaskOutcomes, over: bool) {
        self.tasks_due += r.due;
        self.completed_on_time += r.on_time;
        self.completed_late += r.late;
        if over {
            self.missed += r.open_past_due + r.open_not_due + r.done_after_end;
        } else {
            self.missed += r.done_after_end;
            self.overdue += r.open_past_due;
            self.not_yet_due += r.open_not_due;
        }
        self.on_time_rate = self.on_time().rate();
    }

    fn absorb(&mut self, o: &Evaluation) {
        self.tasks_due += o.tasks_due;
        self.completed_on_time += o.completed_on_time;
        self.completed_late += o.completed_late;
        self.missed += o.missed;
        self.overdue += o.overdue;
        self.not_yet_due += o.not_yet_due;
        self.on_time_rate = self.on_time().rate();
        self.red_coverage.add(o.red_coverage.planned, o.red_coverage.covered);
        self.visits.absorb(&o.visits);
    }

    /// Done on time, of the tasks decided so far.
    fn on_time(&self) -> Fraction {
        Fraction::new(self.completed_on_time, self.tasks_due - self.not_yet_due)
    }

    fn standing(&self) -> Standing {
        Standing { on_time: self.on_time(), red_coverage: self.red_coverage.fraction() }
    }
}

#[derive(Serialize, ToSchema, Debug)]
pub struct CommunityEvaluation {
    pub community_id: String,
    pub name: String,
    pub timezone: String,
    /// The day the figures are as of: the period's last day, or today while it runs.
    pub as_of: NaiveDate,
    /// Whether the period has ended in the community's timezone.
    pub period_over: bool,
    #[serde(flatten)]
    pub figures: Evaluation,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct GridEvaluation {
    /// 1 = best on-time rate (then red coverage); equal grids share a rank.
    pub rank: u32,
    pub grid_id: String,
    pub community_id: String,
    pub code: String,
    pub name: String,
    #[serde(flatten)]
    pub figures: Evaluation,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct WorkerEvaluation {
    pub worker_id: String,
    pub username: String,
    pub display_name: String,
    /// `grid_worker`, or `secretary` for a secretary who recorded visits.
    pub role: Role,
    pub community_id: Option<String>,
    /// The grids in scope the worker is assigned to now.
    pub grid_ids: Vec<String>,
    #[serde(flatten)]
    pub figures: Evaluation,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct EvaluationReport {
    pub period: Period,
    pub scope: ScopeOut,
    pub generated_at: DateTime<Utc>,
    /// The whole scope.
    pub totals: Evaluation,
    /// One row per community, by name.
    pub communities: Vec<CommunityEvaluation>,
    /// One row per grid, best first.
    pub grids: Vec<GridEvaluation>,
    /// One row per worker with tasks, visits or an assignment in scope, by username.
    pub workers: Vec<WorkerEvaluation>,
}

/// Sorts grids best first, by code among equals, and numbers them; equal grids share a rank.
fn rank(grids: &mut [GridEvaluation]) {
    let ranks = ranking::rank(grids, |g| g.figures.standing(), |a, b| a.code.cmp(&b.code));
    for (g, r) in grids.iter_mut().zip(ranks) {
        g.rank = r;
    }
}

fn evaluation_of(conn: &mut DbConn, t: Target, period: Period, now: DateTime<Utc>) -> ApiResult<EvaluationReport> {
    let grids: Vec<GridInfo> = store::grids_of(conn, &t.community_ids(), t.grids.as_deref())?;
    let grid_ids: Vec<String> = grids.iter().map(|g| g.id.clone()).collect();
    let mut per_grid: HashMap<String, Evaluation> =
        grids.iter().map(|g| (g.id.clone(), Evaluation::default())).collect();
    let mut per_worker: HashMap<String, Evaluation> = HashMap::new();
    let assignments = store::assignments(conn, &grid_ids)?;
    for (_, user) in &assignments {
        per_worker.entry(user.clone()).or_default();
    }
    for s in t.slices() {
        let today = today_in(s.timezone, now);
        let over = period.is_over(today);
        for r in store::task_outcomes(conn, &s, period.first_day, period.last_day, today)? {
            if let Some(e) = per_grid.get_mut(&r.grid_id) {
                e.add_tasks(&r, over);
                if let Some(user) = &r.assignee_id {
                    per_worker.entry(user.clone()).or_default().add_tasks(&r, over);
                }
            }
        }
        let from = start_of_day(period.first_day, s.timezone);
        let until = start_of_day(period.last_day + Duration::days(1), s.timezone);
        for r in store::visits_between(conn, &s, from, until)? {
            if let Some(e) = per_grid.get_mut(&r.grid_id) {
                e.visits.add(&r.kind, r.visits);
                per_worker.entry(r.worker_id.clone()).or_default().visits.add(&r.kind, r.visits);
            }
        }
        for r in store::red_coverage_at(conn, &s, period.as_of(today))? {
            if let Some(e) = per_grid.get_mut(&r.grid_id) {
                e.red_coverage.add(r.planned, r.covered);
            }
        }
    }
    let worker_ids: Vec<String> = per_worker.keys().cloned().collect();
    let workers = store::users_by_id(conn, &worker_ids)?
        .into_iter()
        .map(|u| {
            let mut figures = per_worker.remove(&u.id).unwrap_or_default();
            let grid_ids: Vec<String> =
                assignments.iter().filter(|(_, w)| *w == u.id).map(|(g, _)| g.clone()).collect();
            for g in &grid_ids {
                if let Some(c) = per_grid.get(g).map(|e| e.red_coverage) {
                    figures.red_coverage.add(c.planned, c.covered);
                }
            }
            WorkerEvaluation {
                worker_id: u.id,
                username: u.username,
                display_name: u.display_name,
                role: u.role,
                community_id: u.community_id,
                grid_ids,
                figures,
            }
        })
        .collect();
    let mut totals = Evaluation::default();
    let mut communities: Vec<CommunityEvaluation> = t
        .communities
        .iter()
        .map(|c| {
            let today = today_in(zone(&c.timezone), now);
            CommunityEvaluation {
                community_id: c.id.clone(),
                name: c.name.clone(),
                timezone: c.timezone.clone(),
                as_of: period.as_of(today),
                period_over: period.is_over(today),
                figures: Evaluation::default(),
            }
        })
        .collect();
    let mut grids: Vec<GridEvaluation> = grids
        .into_iter()
        .map(|g| {
            let figures = per_grid.remove(&g.id).unwrap_or_default();
            if let Some(c) = communities.iter_mut().find(|c| c.community_id == g.community_id) {
                c.figures.absorb(&figures);
            }
            totals.absorb(&figures);
            GridEvaluation { rank: 0, grid_id: g.id, community_id: g.community_id, code: g.code, name: g.name, figures }
        })
        .collect();
    rank(&mut grids);
    communities.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.community_id.cmp(&b.community_id)));
    Ok(EvaluationReport { period, scope: t.scope, generated_at: now, totals, communities, grids, workers })
}

#[derive(Deserialize, ToSchema, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReportFormat {
    Json,
    Csv,
}

#[derive(Deserialize, IntoParams)]
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
    /// `csv` or `json`, overriding the `Accept` header (for download links).
    #[param(inline)]
    pub format: Option<ReportFormat>,
}

/// CSV when asked for with `Accept: text/csv` (or `text/*`) before JSON; JSON otherwise.
fn wants_csv(req: &HttpRequest) -> bool {
    let Ok(accept) = header::Accept::parse(req) else { return false };
    for mime in accept.ranked() {
        let acceptable = accept.iter().any(|q| q.item == mime && q.quality > header::Quality::ZERO);
        if !acceptable {
            continue;
        }
        match (mime.type_().as_str(), mime.subtype().as_str()) {
            ("text", "csv" | "*") => return true,
            ("application", "json" | "problem+json" | "*") | ("*", _) => return false,
            _ => {}
        }
    }
    false
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
        (status = 400, description = "Malformed query (e.g. an unknown format)", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such community or grid in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Missing or invalid period", body = Problem, content_type = PROBLEM),
    ))]
pub async fn evaluation(
    state: web::Data<AppState>,
    caller: AuthUser,
    req: HttpRequest,
    query: Params<EvaluationQuery>,
) -> ApiResult<HttpResponse> {
    let q = query.into_inner();
    let period = match q.period.as_deref() {
        None | Some("") => {
            return Err(ApiError::invalid("period", "required", "give a period: 2026-11, 2026-Q4, 2026-H2 or 2026"));
        }
        Some(p) => Period::parse(p).ok_or_else(|| {
            ApiError::invalid(
                "period",
                "invalid_format",
                "must be a month (2026-11), quarter (2026-Q4), half year (2026-H2) or year (2026)",
            )
        })?,
    };
    let csv = match q.format {
        Some(f) => f == ReportFormat::Csv,
        None => wants_csv(&req),
    };
    let scope_query = ScopeQuery { community_id: q.community_id, grid_id: q.grid_id };
    let now = Utc::now();
    let report = state
        .db
        .read(move |conn| {
            snapshot(conn, |conn| {
                let t = target(conn, &caller, &scope_query)?;
                evaluation_of(conn, t, period, now)
            })
        })
        .await?;
    if csv {
        let filename = format!("evaluation-{}.csv", report.period.label);
        Ok(HttpResponse::Ok()
            .content_type(CSV)
            .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")))
            .insert_header((header::VARY, "Accept"))
            .body(to_csv(&report)))
    } else {
        Ok(HttpResponse::Ok().insert_header((header::VARY, "Accept")).json(report))
    }
}

// ---------------------------------------------------------------------------------------------
// CSV

const CSV_HEADER: [&str; 25] = [
    "level",
    "rank",
    "period",
    "community_id",
    "community_name",
    "grid_id",
    "grid_code",
    "grid_name",
    "worker_id",
    "worker_username",
    "worker_name",
    "tasks_due",
    "completed_on_time",
    "completed_late",
    "missed",
    "overdue",
    "not_yet_due",
    "on_time_rate",
    "red_planned",
    "red_covered",
    "red_coverage",
    "visits_home_visit",
    "visits_phone_call",
    "visits_service",
    "visits_total",
];

/// One CSV field (RFC 4180): quoted when it holds a comma, quote or line break. Text that a
/// spreadsheet would run as a formula gets a leading apostrophe.
fn csv_field(out: &mut String, value: &str) {
    let guarded;
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        guarded = format!("'{value}");
        guarded.as_str()
    } else {
        value
    };
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn csv_rate(rate: Option<f64>) -> String {
    rate.map(|r| format!("{r:.4}")).unwrap_or_default()
}

fn csv_row(out: &mut String, text: [&str; 11], e: &Evaluation) {
    let numbers = [
        e.tasks_due.to_string(),
        e.completed_on_time.to_string(),
        e.completed_late.to_string(),
        e.missed.to_string(),
        e.overdue.to_string(),
        e.not_yet_due.to_string(),
        csv_rate(e.on_time_rate),
        e.red_coverage.planned.to_string(),
        e.red_coverage.covered.to_string(),
        csv_rate(e.red_coverage.rate),
        e.visits.home_visit.to_string(),
        e.visits.phone_call.to_string(),
        e.visits.service.to_string(),
        e.visits.total.to_string(),
    ];
    for (i, field) in text.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, field);
    }
    for n in &numbers {
        out.push(',');
        out.push_str(n);
    }
    out.push_str("\r\n");
}

/// The report as one table: the grids (ranked), the workers, the communities, then the total.
pub fn to_csv(r: &EvaluationReport) -> String {
    let mut out = CSV_HEADER.join(",");
    out.push_str("\r\n");
    let name_of = |id: &str| r.communities.iter().find(|c| c.community_id == id).map(|c| c.name.as_str()).unwrap_or("");
    let p = r.period.label.as_str();
    for g in &r.grids {
        let rank = g.rank.to_string();
        let text = [
            "grid",
            rank.as_str(),
            p,
            g.community_id.as_str(),
            name_of(&g.community_id),
            g.grid_id.as_str(),
            g.code.as_str(),
            g.name.as_str(),
            "",
            "",
            "",
        ];
        csv_row(&mut out, text, &g.figures);
    }
    for w in &r.workers {
        let community = w.community_id.as_deref().unwrap_or("");
        let text = [
            "worker",
            "",
            p,
            community,
            name_of(community),
            "",
            "",
            "",
            w.worker_id.as_str(),
            w.username.as_str(),
            w.display_name.as_str(),
        ];
        csv_row(&mut out, text, &w.figures);
    }
    for c in &r.communities {
        let text = ["community", "", p, c.community_id.as_str(), c.name.as_str(), "", "", "", "", "", ""];
        csv_row(&mut out, text, &c.figures);
    }
    csv_row(&mut out, ["total", "", p, "", "", "", "", "", "", "", ""], &r.totals);
    out
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/stats/overview").route(web::get().to(overview)))
        .service(web::resource("/reports/evaluation").route(web::get().to(evaluation)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        let mut out = String::new();
        csv_field(&mut out, "网格, \"一\"");
        assert_eq!(out, "\"网格, \"\"一\"\"\"");
        let mut out = String::new();
        csv_field(&mut out, "=HYPERLINK(\"x\")");
        assert_eq!(out, "\"'=HYPERLINK(\"\"x\"\")\"");
        let mut out = String::new();
        csv_field(&mut out, "建新一网格");
        assert_eq!(out, "建新一网格");
    }
}
