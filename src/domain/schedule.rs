//! Due dates of tasks and tag reviews (SPEC §3, §4). Dates are calendar dates in the
//! community's timezone; the caller supplies "today".

use chrono::{Days, NaiveDate};

use super::Tag;

/// `date + days`, saturating at the end of the calendar instead of panicking.
fn plus_days(date: NaiveDate, days: u32) -> NaiveDate {
    date.checked_add_days(Days::new(u64::from(days))).unwrap_or(NaiveDate::MAX)
}

/// Due date of a new task: the latest visit of its kind (else the date the tag was applied)
/// plus the interval, but never before the tag was applied, so a visit made long ago under
/// another tag does not make the new task overdue from its first day.
pub fn due_on(last_visit_of_kind: Option<NaiveDate>, tag_applied_on: NaiveDate, interval_days: u32) -> NaiveDate {
    plus_days(last_visit_of_kind.unwrap_or(tag_applied_on), interval_days).max(tag_applied_on)
}

/// A task is overdue once its due date is in the past; on the due date itself it is not.
pub fn is_overdue(due_on: NaiveDate, today: NaiveDate) -> bool {
    due_on < today
}

/// `tag_review_due_on` of a tag applied on `applied_on`, with the tag's default interval.
pub fn review_due_on(tag: Tag, applied_on: NaiveDate) -> NaiveDate {
    plus_days(applied_on, tag.default_review_interval_days())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn without_visits_counts_from_the_tag_date() {
        assert_eq!(due_on(None, date(2026, 3, 1), 7), date(2026, 3, 8));
        assert_eq!(due_on(None, date(2026, 3, 1), 1), date(2026, 3, 2));
        assert_eq!(due_on(None, date(2026, 3, 1), 0), date(2026, 3, 1));
    }

    #[test]
    fn counts_from_the_latest_visit() {
        assert_eq!(due_on(Some(date(2026, 3, 5)), date(2026, 3, 1), 7), date(2026, 3, 12));
        assert_eq!(due_on(Some(date(2026, 2, 25)), date(2026, 3, 1), 7), date(2026, 3, 4));
    }

    #[test]
    fn never_before_the_tag_date() {
        assert_eq!(due_on(Some(date(2026, 1, 1)), date(2026, 3, 1), 7), date(2026, 3, 1));
        assert_eq!(due_on(Some(date(2026, 2, 22)), date(2026, 3, 1), 7), date(2026, 3, 1));
    }

    #[test]
    fn crosses_months_years_and_leap_days() {
        assert_eq!(due_on(None, date(2028, 2, 25), 7), date(2028, 3, 3));
        assert_eq!(due_on(None, date(2027, 2, 25), 7), date(2027, 3, 4));
        assert_eq!(due_on(Some(date(2026, 12, 20)), date(2026, 1, 1), 30), date(2027, 1, 19));
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        assert_eq!(due_on(None, NaiveDate::MAX, 30), NaiveDate::MAX);
        assert_eq!(review_due_on(Tag::Green, NaiveDate::MAX), NaiveDate::MAX);
    }

    #[test]
    fn overdue_only_after_the_due_date() {
        let due = date(2026, 3, 8);
        assert!(!is_overdue(due, date(2026, 3, 7)));
        assert!(!is_overdue(due, due));
        assert!(is_overdue(due, date(2026, 3, 9)));
    }

    #[test]
    fn review_due_dates_use_the_tag_interval() {
        let applied = date(2026, 1, 1);
        assert_eq!(review_due_on(Tag::Red, applied), date(2026, 1, 31));
        assert_eq!(review_due_on(Tag::Yellow, applied), date(2026, 4, 1));
        assert_eq!(review_due_on(Tag::Green, applied), date(2027, 1, 1));
    }
}
