//! The dashboard (`/stats/overview`): today's figures per grid, folded into communities and
//! the caller's scope.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::stats::scope::{Target, today_in};
use crate::api::stats::types::{
    Absorb, CoverageByTag, Folded, KindCounts, ScopeOut, TagCounts, fold, rank_within, street_line, street_rows,
};
use crate::db::DbConn;
use crate::domain::ranking::{Fraction, Standing};
use crate::error::ApiResult;
use crate::store::communities::DEFAULT_TIMEZONE;
use crate::store::stats::{self as store, start_of_day};

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
    /// What a dashboard row ranks by: no on-time rate here, so red coverage decides.
    fn standing(&self) -> Standing {
        Standing { on_time: Fraction::default(), red_coverage: self.coverage.red.fraction() }
    }
}

impl Absorb for Figures {
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

#[derive(Serialize, ToSchema, Debug)]
pub struct CommunityOverview {
    /// Among the answer's communities of the same street, by red coverage (the dashboard has no
    /// on-time rate; otherwise the grid rule of the reports): equal ones share a rank.
    pub rank: u32,
    pub community_id: String,
    pub street_id: String,
    pub name: String,
    pub timezone: String,
    /// Today in the community's timezone: the date the figures are for.
    pub today: NaiveDate,
    #[serde(flatten)]
    pub figures: Figures,
}

/// A street's figures in a roll-up: the sum of its communities'.
#[derive(Serialize, ToSchema, Debug)]
pub struct StreetOverview {
    /// Among the district's streets, by red coverage, as communities rank.
    pub rank: u32,
    pub street_id: String,
    pub district_id: String,
    pub code: String,
    pub name: String,
    #[serde(flatten)]
    pub figures: Figures,
}

street_line!(StreetOverview, Figures);

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
    /// A roll-up's streets (`street_id`: the one, `district_id`: each of the district's), by
    /// code; empty otherwise. They sum to the totals.
    pub streets: Vec<StreetOverview>,
    /// One row per community in scope, by name.
    pub communities: Vec<CommunityOverview>,
    /// One row per grid in scope, by code.
    pub grids: Vec<GridOverview>,
}

/// The dashboard of a target as of `now`: one query per figure family and timezone, then the
/// grid rows folded into their communities and the totals.
pub(super) fn overview_of(conn: &mut DbConn, t: Target, now: DateTime<Utc>) -> ApiResult<Overview> {
    let grids = store::grids_of(conn, &t.community_ids(), t.grids.as_deref())?;
    let mut per_grid: HashMap<String, Figures> = grids.iter().map(|g| (g.id.clone(), Figures::default())).collect();
    for s in t.slices()? {
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
    let Folded { totals, communities: mut per_community, grids } = fold(grids, per_grid);
    let mut streets: Vec<StreetOverview> = street_rows(&t.streets, &t.communities, &per_community);
    let mut communities = t
        .communities
        .iter()
        .map(|c| {
            Ok(CommunityOverview {
                rank: 0,
                community_id: c.id.clone(),
                street_id: c.street_id.clone(),
                name: c.name.clone(),
                timezone: c.timezone.clone(),
                today: today_in(c.zone()?, now),
                figures: per_community.remove(&c.id).unwrap_or_default(),
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    rank_within(
        &mut streets,
        |s| &s.district_id,
        |s| s.figures.standing(),
        |a, b| a.code.cmp(&b.code),
        |s, r| s.rank = r,
    );
    rank_within(
        &mut communities,
        |c| &c.street_id,
        |c| c.figures.standing(),
        |a, b| a.name.cmp(&b.name),
        |c, r| c.rank = r,
    );
    let grids = grids
        .into_iter()
        .map(|(g, figures)| GridOverview {
            grid_id: g.id,
            community_id: g.community_id,
            code: g.code,
            name: g.name,
            figures,
        })
        .collect();
    let dates: BTreeSet<NaiveDate> = communities.iter().map(|c| c.today).collect();
    let today = match dates.len() {
        0 => Some(today_in(DEFAULT_TIMEZONE, now)),
        1 => dates.first().copied(),
        _ => None,
    };
    Ok(Overview { scope: t.scope, generated_at: now, today, totals, streets, communities, grids })
}
