//! The evaluation report (`/reports/evaluation`): a period's tasks, red coverage and visits per
//! grid (ranked), per worker, per community and in total.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::stats::scope::{Target, today_in};
use crate::api::stats::types::{
    Absorb, Coverage, Folded, KindCounts, ScopeOut, fold, rank_within, street_line, street_rows,
};
use crate::db::DbConn;
use crate::domain::ranking::{self, Fraction, Standing};
use crate::domain::{Period, Role};
use crate::error::ApiResult;
use crate::store::stats::{self as store, GridInfo, start_of_day};

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
    /// Counts one row of task outcomes; `over`: the period has ended, so whatever is still
    /// open was missed.
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

    /// Done on time, of the tasks decided so far.
    fn on_time(&self) -> Fraction {
        Fraction::new(self.completed_on_time, self.tasks_due - self.not_yet_due)
    }

    fn standing(&self) -> Standing {
        Standing { on_time: self.on_time(), red_coverage: self.red_coverage.fraction() }
    }
}

impl Absorb for Evaluation {
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
}

#[derive(Serialize, ToSchema, Debug)]
pub struct CommunityEvaluation {
    /// Among the report's communities of the same street: 1 = best on-time rate (then red
    /// coverage), as the grids rank; equal communities share a rank.
    pub rank: u32,
    pub community_id: String,
    pub street_id: String,
    pub name: String,
    pub timezone: String,
    /// The day the figures are as of: the period's last day, or today while it runs.
    pub as_of: NaiveDate,
    /// Whether the period has ended in the community's timezone.
    pub period_over: bool,
    #[serde(flatten)]
    pub figures: Evaluation,
}

/// A street's figures in a roll-up: the sum of its communities'.
#[derive(Serialize, ToSchema, Debug)]
pub struct StreetEvaluation {
    /// Among the district's streets: 1 = best on-time rate (then red coverage), as the grids
    /// rank; equal streets share a rank.
    pub rank: u32,
    pub street_id: String,
    pub district_id: String,
    pub code: String,
    pub name: String,
    #[serde(flatten)]
    pub figures: Evaluation,
}

street_line!(StreetEvaluation, Evaluation);

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
    /// A roll-up's streets (`street_id`: the one, `district_id`: each of the district's), best
    /// first; empty otherwise. They sum to the totals.
    pub streets: Vec<StreetEvaluation>,
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

/// Sorts streets best first, by code among equals, and numbers them.
fn rank_streets(streets: &mut [StreetEvaluation]) {
    let ranks = ranking::rank(streets, |s| s.figures.standing(), |a, b| a.code.cmp(&b.code));
    for (s, r) in streets.iter_mut().zip(ranks) {
        s.rank = r;
    }
}

/// The report of a target for a period as of `now`: per grid from the store's rows, per
/// worker from the same rows by assignee and author, then folded into communities and totals.
pub(super) fn evaluation_of(
    conn: &mut DbConn,
    t: Target,
    period: Period,
    now: DateTime<Utc>,
) -> ApiResult<EvaluationReport> {
    let grids: Vec<GridInfo> = store::grids_of(conn, &t.community_ids(), t.grids.as_deref())?;
    let grid_ids: Vec<String> = grids.iter().map(|g| g.id.clone()).collect();
    let mut per_grid: HashMap<String, Evaluation> =
        grids.iter().map(|g| (g.id.clone(), Evaluation::default())).collect();
    let mut per_worker: HashMap<String, Evaluation> = HashMap::new();
    let assignments = store::assignments(conn, &grid_ids)?;
    for (_, user) in &assignments {
        per_worker.entry(user.clone()).or_default();
    }
    for s in t.slices()? {
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
    let Folded { totals, communities: mut per_community, grids } = fold(grids, per_grid);
    let mut streets: Vec<StreetEvaluation> = street_rows(&t.streets, &t.communities, &per_community);
    rank_streets(&mut streets);
    let mut communities = t
        .communities
        .iter()
        .map(|c| {
            let today = today_in(c.zone()?, now);
            Ok(CommunityEvaluation {
                rank: 0,
                community_id: c.id.clone(),
                street_id: c.street_id.clone(),
                name: c.name.clone(),
                timezone: c.timezone.clone(),
                as_of: period.as_of(today),
                period_over: period.is_over(today),
                figures: per_community.remove(&c.id).unwrap_or_default(),
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    rank_within(
        &mut communities,
        |c| &c.street_id,
        |c| c.figures.standing(),
        |a, b| a.name.cmp(&b.name),
        |c, r| c.rank = r,
    );
    let mut grids: Vec<GridEvaluation> = grids
        .into_iter()
        .map(|(g, figures)| GridEvaluation {
            rank: 0,
            grid_id: g.id,
            community_id: g.community_id,
            code: g.code,
            name: g.name,
            figures,
        })
        .collect();
    rank(&mut grids);
    Ok(EvaluationReport { period, scope: t.scope, generated_at: now, totals, streets, communities, grids, workers })
}
