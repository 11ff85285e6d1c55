//! Reporting periods: the month, quarter, half year or year an evaluation report covers.
//!
//! The governance rhythm meets monthly (每月例会), holds a quarterly contest (季度擂台), a
//! half-year assessment (半年评估) and a year-end review (年底观摩); each report covers one such
//! period as whole local dates, first and last included. Which calendar a date is in (each
//! community's timezone) is the caller's business: a period is dates, not instants.

use chrono::{Months, NaiveDate};
use serde::Serialize;
use utoipa::ToSchema;

/// How long a reporting period is.
#[derive(Serialize, ToSchema, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    /// `2026-11`: the monthly meeting (每月例会).
    Month,
    /// `2026-Q4`: the quarterly contest (季度擂台).
    Quarter,
    /// `2026-H2`: the half-year assessment (半年评估).
    HalfYear,
    /// `2026`: the year-end review (年底观摩).
    Year,
}

/// A reporting period: whole local dates, first and last included.
#[derive(Serialize, ToSchema, Debug, Clone, PartialEq, Eq)]
pub struct Period {
    #[schema(example = "2026-Q4")]
    pub label: String,
    pub kind: PeriodKind,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
}

impl Period {
    /// Parses `YYYY`, `YYYY-MM`, `YYYY-Qn` or `YYYY-Hn` (years 1970–9999; `q` and `h` may be
    /// lower case, the label is always upper case).
    pub fn parse(text: &str) -> Option<Period> {
        let (year, rest) = match text.split_once('-') {
            Some((y, r)) => (y, Some(r)),
            None => (text, None),
        };
        if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let y: i32 = year.parse().ok()?;
        if y < 1970 {
            return None;
        }
        let digit = |s: &str| (s.len() == 1).then(|| s.parse::<u32>().ok()).flatten();
        let (kind, first_month, months, label) = match rest {
            None => (PeriodKind::Year, 1, 12, format!("{y:04}")),
            Some(r) if r.starts_with(['Q', 'q']) => {
                let q = digit(&r[1..]).filter(|q| (1..=4).contains(q))?;
                (PeriodKind::Quarter, 3 * q - 2, 3, format!("{y:04}-Q{q}"))
            }
            Some(r) if r.starts_with(['H', 'h']) => {
                let h = digit(&r[1..]).filter(|h| (1..=2).contains(h))?;
                (PeriodKind::HalfYear, 6 * h - 5, 6, format!("{y:04}-H{h}"))
            }
            Some(r) if r.len() == 2 && r.bytes().all(|b| b.is_ascii_digit()) => {
                let m: u32 = r.parse().ok().filter(|m| (1..=12).contains(m))?;
                (PeriodKind::Month, m, 1, format!("{y:04}-{m:02}"))
            }
            Some(_) => return None,
        };
        let first_day = NaiveDate::from_ymd_opt(y, first_month, 1)?;
        let after = first_day.checked_add_months(Months::new(months))?;
        Some(Period { label, kind, first_day, last_day: after.pred_opt()? })
    }

    /// Whether the period has ended by `today` (a local date): its last day is behind us.
    pub fn is_over(&self, today: NaiveDate) -> bool {
        today > self.last_day
    }

    /// The day the figures of a report are as of: the last day, or `today` while the period runs.
    pub fn as_of(&self, today: NaiveDate) -> NaiveDate {
        self.last_day.min(today)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Datelike;

    use super::*;

    fn period(s: &str) -> Option<(String, String, String)> {
        Period::parse(s).map(|p| (p.label, p.first_day.to_string(), p.last_day.to_string()))
    }

    fn some(label: &str, first: &str, last: &str) -> Option<(String, String, String)> {
        Some((label.to_owned(), first.to_owned(), last.to_owned()))
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn periods_cover_whole_local_dates() {
        assert_eq!(period("2026-11"), some("2026-11", "2026-11-01", "2026-11-30"));
        assert_eq!(period("2026-Q4"), some("2026-Q4", "2026-10-01", "2026-12-31"));
        assert_eq!(period("2026-q1"), some("2026-Q1", "2026-01-01", "2026-03-31"));
        assert_eq!(period("2026-H1"), some("2026-H1", "2026-01-01", "2026-06-30"));
        assert_eq!(period("2026-H2"), some("2026-H2", "2026-07-01", "2026-12-31"));
        assert_eq!(period("2026-h2"), some("2026-H2", "2026-07-01", "2026-12-31"));
        assert_eq!(period("2026"), some("2026", "2026-01-01", "2026-12-31"));
        assert_eq!(Period::parse("2026-11").unwrap().kind, PeriodKind::Month);
        assert_eq!(Period::parse("2026-Q3").unwrap().kind, PeriodKind::Quarter);
        assert_eq!(Period::parse("2026-H2").unwrap().kind, PeriodKind::HalfYear);
        assert_eq!(Period::parse("2026").unwrap().kind, PeriodKind::Year);
    }

    #[test]
    fn february_follows_the_leap_years() {
        assert_eq!(period("2028-02"), some("2028-02", "2028-02-01", "2028-02-29"));
        assert_eq!(period("2026-02"), some("2026-02", "2026-02-01", "2026-02-28"));
        // Centuries are leap years only when divisible by 400.
        assert_eq!(period("2000-02"), some("2000-02", "2000-02-01", "2000-02-29"));
        assert_eq!(period("2100-02"), some("2100-02", "2100-02-01", "2100-02-28"));
        // A quarter and a half year that hold a leap day end where they always do.
        assert_eq!(period("2028-Q1"), some("2028-Q1", "2028-01-01", "2028-03-31"));
        assert_eq!(period("2028-H1"), some("2028-H1", "2028-01-01", "2028-06-30"));
        assert_eq!(Period::parse("2028").unwrap().last_day.ordinal(), 366);
        assert_eq!(Period::parse("2026").unwrap().last_day.ordinal(), 365);
    }

    #[test]
    fn quarters_and_halves_meet_without_gaps() {
        let year = 2026;
        let mut next = NaiveDate::from_ymd_opt(year, 1, 1).unwrap();
        for q in 1..=4 {
            let p = Period::parse(&format!("{year}-Q{q}")).unwrap();
            assert_eq!(p.first_day, next, "Q{q}");
            next = p.last_day.succ_opt().unwrap();
        }
        assert_eq!(next, date("2027-01-01"));
        let h2 = Period::parse("2026-H2").unwrap();
        assert_eq!(h2.first_day, Period::parse("2026-Q3").unwrap().first_day);
        assert_eq!(h2.last_day, Period::parse("2026-Q4").unwrap().last_day);
        assert_eq!(h2.last_day, Period::parse("2026-12").unwrap().last_day);
        // The last year there is a label for.
        assert_eq!(period("9999-Q4"), some("9999-Q4", "9999-10-01", "9999-12-31"));
        assert_eq!(period("1970-01"), some("1970-01", "1970-01-01", "1970-01-31"));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "26",
            "20266",
            "2026-13",
            "2026-00",
            "2026-1",
            "2026-Q5",
            "2026-Q0",
            "2026-Q12",
            "2026-H3",
            "2026-H0",
            "2026-Q",
            "2026-W4",
            "2026-",
            "-2026",
            "1969",
            "1969-12",
            "２０２６",
            "2026-１１",
            "2026-11-01",
            "2026-Q4 ",
            "+026",
        ] {
            assert_eq!(Period::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_period_is_over_after_its_last_day() {
        let q4 = Period::parse("2026-Q4").unwrap();
        assert!(!q4.is_over(date("2026-10-01")));
        assert!(!q4.is_over(date("2026-12-31")));
        assert!(q4.is_over(date("2027-01-01")));
        assert_eq!(q4.as_of(date("2026-11-15")), date("2026-11-15"));
        assert_eq!(q4.as_of(date("2026-12-31")), date("2026-12-31"));
        assert_eq!(q4.as_of(date("2027-03-01")), date("2026-12-31"));
    }
}
