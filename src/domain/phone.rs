//! Mainland China phone numbers: mobiles (`1[3-9]` + 9 digits) and landlines with area code.
//!
//! Checked by hand rather than with a regex: the rules are short, and the area code's length
//! has to be worked out from the numbering plan anyway (`010` and `02x` are the only 2-digit
//! area codes after the trunk `0`; every other area code has 3 digits), so that `053186012345`
//! and `0531-86012345` normalise to the same value.

use std::fmt;

/// Why a string is not an acceptable phone number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("the phone number is empty")]
    Empty,
    #[error("a mobile number is 11 digits starting with 13-19 (an optional +86 prefix is allowed)")]
    Mobile,
    #[error("a landline number is an area code starting with 0, an optional hyphen, then 7-8 digits")]
    Landline,
    #[error("not a mainland mobile number or a landline number with area code")]
    Format,
}

impl PhoneError {
    /// A stable machine-readable code for validation error lists.
    pub const fn code(&self) -> &'static str {
        match self {
            PhoneError::Empty => "empty",
            PhoneError::Mobile => "mobile",
            PhoneError::Landline => "landline",
            PhoneError::Format => "format",
        }
    }
}

/// A valid phone number, normalised: a mobile as its 11 digits, a landline as
/// `area-number` (e.g. `0531-86012345`). `Debug` shows only the masked form.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Parses a phone number; whitespace anywhere is ignored and a `+86`, `0086` or `86`
    /// country prefix on a mobile number is dropped.
    pub fn parse(s: &str) -> Result<Phone, PhoneError> {
        let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.is_empty() {
            return Err(PhoneError::Empty);
        }
        if let Some(rest) = compact.strip_prefix("+86").or_else(|| compact.strip_prefix("0086")) {
            return mobile(rest);
        }
        if compact.len() == 13 && compact.starts_with("86") {
            return mobile(&compact[2..]);
        }
        match compact.as_bytes()[0] {
            b'1' => mobile(&compact),
            b'0' => landline(&compact),
            _ => Err(PhoneError::Format),
        }
    }

    /// The normalised number. Handle with care: it is personal data.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a mobile (not a landline) number.
    pub fn is_mobile(&self) -> bool {
        !self.0.starts_with('0')
    }

    /// The landline's area code including the trunk `0` (e.g. `0531`); `None` for a mobile.
    pub fn area_code(&self) -> Option<&str> {
        self.0.split_once('-').map(|(area, _)| area)
    }

    /// The form shown in responses: `138****8000`, or `0531-****2345` for a landline (area code
    /// kept, all but the last 4 digits starred).
    pub fn masked(&self) -> String {
        match self.0.split_once('-') {
            Some((area, number)) => format!("{area}-{}{}", "*".repeat(number.len() - 4), &number[number.len() - 4..]),
            None => format!("{}****{}", &self.0[..3], &self.0[7..]),
        }
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Phone").field(&self.masked()).finish()
    }
}

fn all_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

fn mobile(s: &str) -> Result<Phone, PhoneError> {
    let b = s.as_bytes();
    if b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]) && all_digits(s) {
        Ok(Phone(s.to_owned()))
    } else {
        Err(PhoneError::Mobile)
    }
}

fn landline(s: &str) -> Result<Phone, PhoneError> {
    let area_len = match s.as_bytes().get(1) {
        Some(b'1') if s.starts_with("010") => 3,
        Some(b'2') => 3,
        Some(b'3'..=b'9') => 4,
        _ => return Err(PhoneError::Landline),
    };
    let (area, rest) = s.split_at_checked(area_len).ok_or(PhoneError::Landline)?;
    let number = rest.strip_prefix('-').unwrap_or(rest);
    if !all_digits(area) || !(7..=8).contains(&number.len()) || !all_digits(number) {
        return Err(PhoneError::Landline);
    }
    Ok(Phone(format!("{area}-{number}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> String {
        Phone::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}")).as_str().to_owned()
    }

    #[test]
    fn accepts_mobiles() {
        assert_eq!(ok("13800138000"), "13800138000");
        for prefix in 13..=19 {
            let n = format!("{prefix}912345678");
            assert_eq!(ok(&n), n);
        }
        assert!(Phone::parse("13800138000").unwrap().is_mobile());
        assert_eq!(Phone::parse("13800138000").unwrap().area_code(), None);
    }

    #[test]
    fn strips_spaces_and_country_code() {
        assert_eq!(ok(" 138 0013 8000 "), "13800138000");
        assert_eq!(ok("+8613800138000"), "13800138000");
        assert_eq!(ok("+86 138 0013 8000"), "13800138000");
        assert_eq!(ok("8613800138000"), "13800138000");
        assert_eq!(ok("0086 13800138000"), "13800138000");
        assert_eq!(ok("138\u{3000}0013\t8000"), "13800138000");
    }

    #[test]
    fn rejects_bad_mobiles() {
        for s in ["12800138000", "10800138000", "1380013800", "138001380000", "1380013800a", "138-0013-8000"] {
            assert_eq!(Phone::parse(s), Err(PhoneError::Mobile), "{s}");
        }
        assert_eq!(Phone::parse("+86053186012345"), Err(PhoneError::Mobile), "+86 is for mobiles only");
        assert_eq!(Phone::parse("8612800138000"), Err(PhoneError::Mobile));
    }

    #[test]
    fn accepts_landlines_with_and_without_hyphen() {
        assert_eq!(ok("0531-86012345"), "0531-86012345");
        assert_eq!(ok("053186012345"), "0531-86012345");
        assert_eq!(ok("0531 8601 2345"), "0531-86012345");
        assert_eq!(ok("0531-6012345"), "0531-6012345");
        assert_eq!(ok("010-12345678"), "010-12345678");
        assert_eq!(ok("01012345678"), "010-12345678");
        assert_eq!(ok("021-6234567"), "021-6234567");
        assert_eq!(ok("0755 86012345"), "0755-86012345");
        let p = Phone::parse("0531-86012345").unwrap();
        assert!(!p.is_mobile());
        assert_eq!(p.area_code(), Some("0531"));
    }

    #[test]
    fn rejects_bad_landlines() {
        for s in [
            "0531-860123",     // 6-digit number
            "0531-860123456",  // 9-digit number
            "053-186012345",   // hyphen not after the area code
            "0531--86012345",  // two hyphens
            "0531-8601-2345",  // hyphen inside the number
            "011-12345678",    // no such area code
            "001-12345678",    // no such area code
            "0",               // no area code
            "0531-",           // no number
            "0531-8601234a",   // not a digit
            "0531-86012345-1", // extensions are not supported
        ] {
            assert_eq!(Phone::parse(s), Err(PhoneError::Landline), "{s}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        assert_eq!(Phone::parse(""), Err(PhoneError::Empty));
        assert_eq!(Phone::parse("   "), Err(PhoneError::Empty));
        for s in ["86012345", "abc", "-13800138000", "＋8613800138000", "2345678901"] {
            assert_eq!(Phone::parse(s), Err(PhoneError::Format), "{s}");
        }
    }

    #[test]
    fn masks_mobiles_and_landlines() {
        assert_eq!(Phone::parse("13800138000").unwrap().masked(), "138****8000");
        assert_eq!(Phone::parse("0531-86012345").unwrap().masked(), "0531-****2345");
        assert_eq!(Phone::parse("0531-6012345").unwrap().masked(), "0531-***2345");
        assert_eq!(Phone::parse("010-12345678").unwrap().masked(), "010-****5678");
        let debug = format!("{:?}", Phone::parse("13800138000").unwrap());
        assert_eq!(debug, "Phone(\"138****8000\")");
    }

    #[test]
    fn errors_have_codes_and_messages() {
        assert_eq!(PhoneError::Mobile.code(), "mobile");
        assert_eq!(PhoneError::Landline.code(), "landline");
        assert_eq!(PhoneError::Empty.code(), "empty");
        assert_eq!(PhoneError::Format.code(), "format");
        assert!(PhoneError::Mobile.to_string().contains("11 digits"));
    }
}
