//! The counts both the dashboard and the reports are made of, and how they add up.
//!
//! Every count is filled per grid from the store's rows (`add`) and then folded into its
//! community and the totals (`absorb`), so the rows of an answer always sum to its totals. A
//! rate is recomputed from the summed counts, never averaged.

use std::collections::HashMap;

use serde::Serialize;
use utoipa::ToSchema;

use std::cmp::Ordering;

use crate::domain::ranking::{self, Fraction, Standing};
use crate::domain::{ServiceKind, Tag};
use crate::store::communities::CommunityRow;
use crate::store::stats::GridInfo;
use crate::store::streets::StreetRow;

/// Figures that add up: a grid's are absorbed into its community's and the scope's.
pub(super) trait Absorb: Default {
    fn absorb(&mut self, other: &Self);
}

/// The figures of an answer, folded from its grids' (see [`fold`]).
pub(super) struct Folded<F> {
    pub(super) totals: F,
    /// By community id.
    pub(super) communities: HashMap<String, F>,
    /// Each grid with its figures, in the order given.
    pub(super) grids: Vec<(GridInfo, F)>,
}

/// Folds each grid's figures (none: the default) into its community's and the totals.
pub(super) fn fold<F: Absorb>(grids: Vec<GridInfo>, mut per_grid: HashMap<String, F>) -> Folded<F> {
    let mut totals = F::default();
    let mut communities: HashMap<String, F> = HashMap::new();
    let grids = grids
        .into_iter()
        .map(|g| {
            let figures = per_grid.remove(&g.id).unwrap_or_default();
            communities.entry(g.community_id.clone()).or_default().absorb(&figures);
            totals.absorb(&figures);
            (g, figures)
        })
        .collect();
    Folded { totals, communities, grids }
}

/// Counts by traffic-light tag.
#[derive(Serialize, ToSchema, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TagCounts {
    pub red: i64,
    pub yellow: i64,
    pub green: i64,
    pub total: i64,
}

impl TagCounts {
    pub(super) fn add(&mut self, tag: &str, n: i64) {
        match Tag::parse(tag) {
            Ok(Tag::Red) => self.red += n,
            Ok(Tag::Yellow) => self.yellow += n,
            Ok(Tag::Green) => self.green += n,
            Err(_) => {}
        }
        self.total += n;
    }

    pub(super) fn absorb(&mut self, o: &TagCounts) {
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
    pub(super) fn add(&mut self, kind: &str, n: i64) {
        match ServiceKind::parse(kind) {
            Ok(ServiceKind::HomeVisit) => self.home_visit += n,
            Ok(ServiceKind::PhoneCall) => self.phone_call += n,
            Ok(ServiceKind::Service) => self.service += n,
            Err(_) => {}
        }
        self.total += n;
    }

    pub(super) fn absorb(&mut self, o: &KindCounts) {
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
    pub(super) fn add(&mut self, planned: i64, covered: i64) {
        self.planned += planned;
        self.covered += covered;
        self.rate = self.fraction().rate();
    }

    /// covered of planned, as the ranking compares it.
    pub(super) fn fraction(&self) -> Fraction {
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
    pub(super) fn add(&mut self, tag: &str, planned: i64, covered: i64) {
        match Tag::parse(tag) {
            Ok(Tag::Red) => self.red.add(planned, covered),
            Ok(Tag::Yellow) => self.yellow.add(planned, covered),
            Ok(Tag::Green) => self.green.add(planned, covered),
            Err(_) => {}
        }
    }

    pub(super) fn absorb(&mut self, o: &CoverageByTag) {
        self.red.add(o.red.planned, o.red.covered);
        self.yellow.add(o.yellow.planned, o.yellow.covered);
        self.green.add(o.green.planned, o.green.covered);
    }
}

/// What a dashboard or report covers.
#[derive(Serialize, ToSchema, Debug, Clone, PartialEq, Eq, Default)]
pub struct ScopeOut {
    /// The one community covered, if it is one.
    pub community_id: Option<String>,
    /// The one grid asked for, if any.
    pub grid_id: Option<String>,
    /// The street rolled up, if it is a street's roll-up (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street_id: Option<String>,
    /// The district rolled up, if it is a district's roll-up (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub district_id: Option<String>,
}

/// Ranks rows within their groups (communities within a street, streets within a district) by
/// the grid rule (`domain::ranking`), leaving the rows in their order: `tie` orders equal rows,
/// `set` writes each row's rank.
pub(super) fn rank_within<T>(
    rows: &mut [T],
    group: impl Fn(&T) -> &str,
    standing: impl Fn(&T) -> Standing,
    tie: impl Fn(&T, &T) -> Ordering,
    set: impl Fn(&mut T, u32),
) {
    let mut groups: Vec<String> = rows.iter().map(|r| group(r).to_owned()).collect();
    groups.sort_unstable();
    groups.dedup();
    let mut ranks = vec![0; rows.len()];
    for g in groups {
        let mut members: Vec<usize> = (0..rows.len()).filter(|&i| group(&rows[i]) == g).collect();
        let ranked =
            ranking::rank(&mut members, |&i| standing(&rows[i]), |&a, &b| tie(&rows[a], &rows[b]).then(a.cmp(&b)));
        for (i, r) in members.into_iter().zip(ranked) {
            ranks[i] = r;
        }
    }
    for (row, r) in rows.iter_mut().zip(ranks) {
        set(row, r);
    }
}

/// A roll-up's row for a street, in the dashboard ([`super::StreetOverview`]) and in the report
/// ([`super::StreetEvaluation`]): the same fields around their own figures. Implemented by
/// [`street_line!`].
pub(super) trait StreetLine {
    type Figures: Absorb;

    /// The street's row with its figures, unranked (rank 0).
    fn of(street: StreetRow, figures: Self::Figures) -> Self;
}

/// Implements [`StreetLine`] for a row type with the fields `rank`, `street_id`, `district_id`,
/// `code`, `name` and `figures`.
macro_rules! street_line {
    ($row:ty, $figures:ty) => {
        impl $crate::api::stats::types::StreetLine for $row {
            type Figures = $figures;

            fn of(s: $crate::store::streets::StreetRow, figures: $figures) -> Self {
                Self { rank: 0, street_id: s.id, district_id: s.district_id, code: s.code, name: s.name, figures }
            }
        }
    };
}
pub(super) use street_line;

/// A roll-up's street rows, in the streets' order: each street with the sum of its
/// communities' figures.
pub(super) fn street_rows<R: StreetLine>(
    streets: &[StreetRow],
    communities: &[CommunityRow],
    per_community: &HashMap<String, R::Figures>,
) -> Vec<R> {
    streets
        .iter()
        .map(|s| {
            let mut figures = R::Figures::default();
            for c in communities.iter().filter(|c| c.street_id == s.id) {
                if let Some(f) = per_community.get(&c.id) {
                    figures.absorb(f);
                }
            }
            R::of(s.clone(), figures)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_and_rates_follow_the_sums() {
        let mut a = TagCounts::default();
        a.add("red", 2);
        a.add("green", 3);
        let mut total = TagCounts::default();
        total.absorb(&a);
        total.absorb(&a);
        assert_eq!(total, TagCounts { red: 4, yellow: 0, green: 6, total: 10 });

        let mut grid_1 = Coverage::default();
        grid_1.add(3, 1);
        let mut grid_2 = Coverage::default();
        grid_2.add(1, 1);
        let mut both = CoverageByTag::default();
        both.absorb(&CoverageByTag { red: grid_1, ..Default::default() });
        both.absorb(&CoverageByTag { red: grid_2, ..Default::default() });
        // 2 of 4, not the mean of 1/3 and 1/1.
        assert_eq!(both.red, Coverage { planned: 4, covered: 2, rate: Some(0.5) });
        assert_eq!(both.yellow.rate, None);
    }
}
