//! The grid ranking of the evaluation reports (the quarterly contest's 擂台 table).
//!
//! Grids rank by on-time rate, then by red coverage, higher first; a grid without a rate (no
//! task decided yet, no red household planned) comes after every grid with one. Rates are
//! compared as exact fractions, never as floats, so that 1/3 and 2/6 tie and no rounding
//! decides a place. Equal grids share a rank and the next rank skips (1, 2, 2, 4).

use std::cmp::Ordering;

/// A rate kept as its two counts: `part` of `whole`. A `whole` of 0 is "no rate" (`null` in
/// the reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fraction {
    pub part: i64,
    pub whole: i64,
}

impl Fraction {
    pub const fn new(part: i64, whole: i64) -> Fraction {
        Fraction { part, whole }
    }

    /// part / whole, `None` when the whole is 0.
    pub fn rate(self) -> Option<f64> {
        // Counts stay far below 2^53, where i64 → f64 is exact.
        (self.whole > 0).then(|| self.part as f64 / self.whole as f64)
    }

    /// Orders higher rates first and "no rate" last, comparing the fractions exactly.
    pub fn better_first(self, other: Fraction) -> Ordering {
        match (self.whole > 0, other.whole > 0) {
            (true, true) => (i128::from(other.part) * i128::from(self.whole))
                .cmp(&(i128::from(self.part) * i128::from(other.whole))),
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => Ordering::Equal,
        }
    }
}

/// What a grid is ranked by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Standing {
    /// Tasks done on time, of the tasks decided (due in the period and not still "not yet due").
    pub on_time: Fraction,
    /// Red households covered, of those planned.
    pub red_coverage: Fraction,
}

/// Better standings first: on-time rate, then red coverage. `Equal` means the two share a rank.
pub fn compare_rank(a: &Standing, b: &Standing) -> Ordering {
    a.on_time.better_first(b.on_time).then_with(|| a.red_coverage.better_first(b.red_coverage))
}

/// Sorts `items` best first (equal standings in `tie_break` order) and answers their ranks, in
/// the new order: 1 for the best, equal standings sharing the rank of the first of them.
pub fn rank<T>(items: &mut [T], standing: impl Fn(&T) -> Standing, tie_break: impl Fn(&T, &T) -> Ordering) -> Vec<u32> {
    items.sort_by(|a, b| compare_rank(&standing(a), &standing(b)).then_with(|| tie_break(a, b)));
    let mut ranks: Vec<u32> = Vec::with_capacity(items.len());
    for i in 0..items.len() {
        let r = match ranks.last() {
            Some(&previous) if compare_rank(&standing(&items[i - 1]), &standing(&items[i])) == Ordering::Equal => {
                previous
            }
            _ => u32::try_from(i + 1).unwrap_or(u32::MAX),
        };
        ranks.push(r);
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(part: i64, whole: i64) -> Fraction {
        Fraction::new(part, whole)
    }

    fn standing(on_time: (i64, i64), red: (i64, i64)) -> Standing {
        Standing { on_time: f(on_time.0, on_time.1), red_coverage: f(red.0, red.1) }
    }

    /// Ranks `(code, standing)` pairs and answers `(code, rank)` in the ranked order.
    fn ranked(mut grids: Vec<(&'static str, Standing)>) -> Vec<(&'static str, u32)> {
        let ranks = rank(&mut grids, |g| g.1, |a, b| a.0.cmp(b.0));
        grids.iter().map(|g| g.0).zip(ranks).collect()
    }

    #[test]
    fn rates_order_exactly_with_null_last() {
        assert_eq!(f(2, 3).better_first(f(1, 2)), Ordering::Less);
        assert_eq!(f(1, 2).better_first(f(2, 4)), Ordering::Equal);
        assert_eq!(f(0, 1).better_first(f(0, 0)), Ordering::Less);
        assert_eq!(f(0, 0).better_first(f(5, 0)), Ordering::Equal);
        // Floats would call these equal: 1 − 1/2^53 and 1.
        let big = 1_i64 << 53;
        assert_eq!(f(big, big).better_first(f(big - 1, big)), Ordering::Less);
        assert_eq!(f(i64::MAX, i64::MAX).better_first(f(i64::MAX - 1, i64::MAX)), Ordering::Less);
    }

    #[test]
    fn a_rate_is_null_without_a_whole() {
        assert_eq!(f(3, 4).rate(), Some(0.75));
        assert_eq!(f(0, 4).rate(), Some(0.0));
        assert_eq!(f(0, 0).rate(), None);
    }

    #[test]
    fn equal_grids_share_a_rank_and_the_next_skips() {
        let grids = vec![
            ("04", standing((1, 2), (1, 1))),
            ("02", standing((2, 2), (0, 1))),
            ("03", standing((2, 4), (3, 3))),
            ("01", standing((1, 1), (0, 1))),
        ];
        // 01 and 02 tie (all on time, no red covered), listed by code; 03 and 04 tie too.
        assert_eq!(ranked(grids), vec![("01", 1), ("02", 1), ("03", 3), ("04", 3)]);
    }

    #[test]
    fn red_coverage_breaks_ties_of_the_on_time_rate() {
        let grids =
            vec![("01", standing((3, 4), (1, 2))), ("02", standing((3, 4), (2, 2))), ("03", standing((1, 4), (5, 5)))];
        assert_eq!(ranked(grids), vec![("02", 1), ("01", 2), ("03", 3)]);
    }

    #[test]
    fn grids_without_a_rate_come_last() {
        let grids = vec![
            ("01", standing((0, 0), (1, 1))),
            ("02", standing((0, 3), (0, 0))),
            ("03", standing((0, 3), (0, 1))),
            ("04", standing((0, 0), (0, 0))),
            ("05", standing((0, 0), (0, 0))),
        ];
        // A rate of 0 still beats no rate; null red coverage ranks below 0 red coverage.
        assert_eq!(ranked(grids), vec![("03", 1), ("02", 2), ("01", 3), ("04", 4), ("05", 4)]);
    }

    #[test]
    fn nothing_to_rank() {
        assert_eq!(ranked(Vec::new()), Vec::new());
        assert_eq!(ranked(vec![("01", Standing::default())]), vec![("01", 1)]);
    }
}
