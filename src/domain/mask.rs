//! The masking rule: what a response, an export or a report shows of personal data.
//!
//! One rule, in one place, so that no view shows more than another and no field can complete
//! another's mask:
//!
//! - **ID number** (居民身份证号): only the last 4 characters (`**************1234`), enough to
//!   tell two residents apart. The first 14 hold the place of registration and the whole birth
//!   date; showing them beside a birth date (or a birth year and a guessable division code)
//!   would give the number away.
//! - **Birth date**: the year only (`birth_year`); age thresholds (60, 80) are what the traffic
//!   light needs, and the suggestion explains them as ages.
//! - **Phone**: mobiles keep the first 3 and last 4 digits (`138****8000`), landlines their
//!   area code and last 4 (`0531-****2345`). No other field holds a phone's middle digits.
//!
//! The full values come only from the audited reveal endpoints.

use chrono::{Datelike, NaiveDate};

use crate::domain::{IdNumber, Phone};

/// An ID number as shown: the last 4 characters, the rest starred. Something that does not
/// parse (a corrupt stored value) is starred whole.
pub fn id_number(stored: &str) -> String {
    match IdNumber::parse(stored) {
        Ok(n) => n.masked(),
        Err(_) => "*".repeat(18),
    }
}

/// A phone as shown; something that does not parse is starred whole.
pub fn phone(stored: &str) -> String {
    match Phone::parse(stored) {
        Ok(p) => p.masked(),
        Err(_) => "*".repeat(stored.chars().count().min(11)),
    }
}

/// What is shown of a birth date: its year.
pub fn birth_year(birth: NaiveDate) -> i32 {
    birth.year()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::check_char;

    #[test]
    fn an_id_number_mask_leaves_nothing_a_birth_year_and_division_code_complete() {
        let first17 = "37010319410302002";
        let number = format!("{first17}{}", check_char(first17));
        let shown = id_number(&number);
        assert_eq!(shown, format!("**************{}", &number[14..]));
        assert_eq!(shown.chars().count(), 18);
        // Neither the division code nor any digit of the birth date is shown.
        assert!(!shown.contains("370103"));
        assert!(!shown.contains("1941"));
        assert!(!shown.contains("0302"));
        assert_eq!(id_number("garbage"), "*".repeat(18));
    }

    #[test]
    fn phones_keep_their_ends_only() {
        assert_eq!(phone("13800138000"), "138****8000");
        assert_eq!(phone("0531-82345678"), "0531-****5678");
        assert_eq!(phone("nonsense"), "********");
    }
}
