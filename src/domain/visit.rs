//! What a visit records besides its kind and time: the needs found and where it took place,
//! and how long after it the author may still correct it.

use chrono::{Duration, NaiveDateTime};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

/// A need found on a visit.
#[derive(Serialize, Deserialize, ToSchema, Validate, Clone, PartialEq, Debug)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// A need found, e.g. `health`, `safety`, `living`, `dispute`.
    #[schema(example = "health", min_length = 1, max_length = 32)]
    #[validate(length(max = 32, code = "too_long"), custom(function = "crate::domain::text::required_line"))]
    pub category: String,
    #[schema(example = "血压偏高，已提醒按时服药", max_length = 1000)]
    #[validate(length(max = 1000, code = "too_long"), custom(function = "crate::domain::text::optional_lines"))]
    pub detail: String,
}

/// Where a visit took place, as the device measured it.
#[derive(Serialize, Deserialize, ToSchema, Validate, Clone, Copy, PartialEq, Debug)]
#[serde(deny_unknown_fields)]
pub struct Location {
    #[schema(example = 36.6512, minimum = -90, maximum = 90)]
    #[validate(range(min = -90.0, max = 90.0, code = "out_of_range"))]
    pub lat: f64,
    #[schema(example = 117.0009, minimum = -180, maximum = 180)]
    #[validate(range(min = -180.0, max = 180.0, code = "out_of_range"))]
    pub lng: f64,
    /// Metres.
    #[schema(example = 15.0, minimum = 0, maximum = 100000)]
    #[validate(range(min = 0.0, max = 100_000.0, code = "out_of_range"))]
    pub accuracy_m: f64,
}

impl Location {
    /// The location of stored columns, when all three are there.
    pub fn from_columns(lat: Option<f64>, lng: Option<f64>, accuracy_m: Option<f64>) -> Option<Location> {
        Some(Location { lat: lat?, lng: lng?, accuracy_m: accuracy_m? })
    }
}

/// Clock skew allowed between a device and the server.
pub const SKEW: Duration = Duration::minutes(5);
/// How long the author may correct a visit after the server received it.
pub const CORRECTION_WINDOW: Duration = Duration::hours(24);

/// Why a visit's time is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisitTimeError {
    InFuture,
    TooOld { max_age_days: u32 },
}

/// `visited_at` may not be in the future (beyond the skew) nor, unless the recorder may
/// backfill (secretaries, administrators), older than `max_age_days`.
pub fn check_visited_at(
    visited_at: NaiveDateTime,
    received: NaiveDateTime,
    max_age_days: u32,
    may_backfill: bool,
) -> Result<(), VisitTimeError> {
    if visited_at > received + SKEW {
        return Err(VisitTimeError::InFuture);
    }
    if !may_backfill && visited_at < received - Duration::days(i64::from(max_age_days)) {
        return Err(VisitTimeError::TooOld { max_age_days });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visit_times_are_bounded_by_skew_and_age() {
        let now = chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap().and_hms_opt(8, 0, 0).unwrap();
        assert_eq!(check_visited_at(now + Duration::minutes(4), now, 30, false), Ok(()));
        assert_eq!(check_visited_at(now + Duration::minutes(6), now, 30, true), Err(VisitTimeError::InFuture));
        assert_eq!(
            check_visited_at(now - Duration::days(31), now, 30, false),
            Err(VisitTimeError::TooOld { max_age_days: 30 })
        );
        assert_eq!(check_visited_at(now - Duration::days(31), now, 30, true), Ok(()));
    }
}
