//! 居民身份证号 (GB 11643-1999): 6-digit division code, 8-digit birth date, 3-digit sequence
//! whose last digit gives the gender, and an ISO 7064 MOD 11-2 check character.

use std::fmt;

use chrono::{Datelike, FixedOffset, NaiveDate, Utc};

use super::Gender;

/// ISO 7064 MOD 11-2 weights of the first 17 digits (2^(17-i) mod 11).
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character indexed by the weighted sum mod 11.
const CHECK_CHARS: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// Why a string is not an acceptable ID number, or disagrees with the member's other data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdNumberError {
    #[error("an ID number has 18 characters, not {0}")]
    Length(usize),
    #[error("an ID number is 17 digits followed by a digit or X")]
    Format,
    #[error("the ID number contains no valid birth date (positions 7-14 must be a real date from 1900 to today)")]
    BirthDate,
    #[error("the ID number's check character is wrong (expected {expected})")]
    Checksum { expected: char },
    /// The message names neither date: one of them may be a stored value the caller sees
    /// masked (see [`identity_change`]).
    #[error("the birth date in the ID number is not the birth date given")]
    BirthDateMismatch { in_id: NaiveDate, given: NaiveDate },
    #[error("the ID number is a {in_id} person's, but the gender is {given}")]
    GenderMismatch { in_id: Gender, given: Gender },
    #[error("the member has an ID number, which holds the birth date: send id_number with birth_date")]
    BirthDateWithoutNumber,
}

impl IdNumberError {
    /// A stable machine-readable code for validation error lists.
    pub const fn code(&self) -> &'static str {
        match self {
            IdNumberError::Length(_) => "length",
            IdNumberError::Format => "format",
            IdNumberError::BirthDate => "birth_date",
            IdNumberError::Checksum { .. } => "checksum",
            IdNumberError::BirthDateMismatch { .. } => "birth_date_mismatch",
            IdNumberError::GenderMismatch { .. } => "gender_mismatch",
            IdNumberError::BirthDateWithoutNumber => "id_number_required",
        }
    }
}

/// A valid ID number, normalised to upper-case `X`. `Debug` shows only the masked form so the
/// full value does not leak into logs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdNumber(String);

/// The check character for the first 17 digits, e.g. to generate fictional valid numbers.
///
/// # Panics
/// If `first17` is not exactly 17 ASCII digits.
pub fn check_char(first17: &str) -> char {
    let bytes = first17.as_bytes();
    assert!(bytes.len() == 17 && bytes.iter().all(u8::is_ascii_digit), "check_char needs exactly 17 ASCII digits");
    let sum: u32 = bytes.iter().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    CHECK_CHARS[(sum % 11) as usize]
}

/// Today in China (UTC+8 all year, no daylight saving), which is where ID numbers are issued.
fn today_in_china() -> NaiveDate {
    let offset = FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    Utc::now().with_timezone(&offset).date_naive()
}

impl IdNumber {
    /// Parses an ID number, with birth dates in the future judged against today in China.
    /// Surrounding whitespace is ignored and a lower-case `x` is accepted.
    pub fn parse(s: &str) -> Result<IdNumber, IdNumberError> {
        Self::parse_on(s, today_in_china())
    }

    /// [`IdNumber::parse`] with an explicit "today", for deterministic callers and tests.
    pub fn parse_on(s: &str, today: NaiveDate) -> Result<IdNumber, IdNumberError> {
        let s = s.trim();
        let len = s.chars().count();
        if len != 18 {
            return Err(IdNumberError::Length(len));
        }
        if !s.is_ascii() {
            return Err(IdNumberError::Format);
        }
        let (first17, last) = s.split_at(17);
        if !first17.bytes().all(|b| b.is_ascii_digit()) || !matches!(last.as_bytes()[0], b'0'..=b'9' | b'X' | b'x') {
            return Err(IdNumberError::Format);
        }
        let birth = birth_date_of(first17).filter(|d| d.year() >= 1900 && *d <= today);
        if birth.is_none() {
            return Err(IdNumberError::BirthDate);
        }
        let expected = check_char(first17);
        if !last.eq_ignore_ascii_case(expected.encode_utf8(&mut [0; 4])) {
            return Err(IdNumberError::Checksum { expected });
        }
        Ok(IdNumber(format!("{first17}{expected}")))
    }

    /// The normalised number (upper-case `X`). Handle with care: it is personal data.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The birth date encoded at positions 7-14.
    pub fn birth_date(&self) -> NaiveDate {
        birth_date_of(&self.0).expect("checked when parsed")
    }

    /// Odd 17th digit: male; even: female.
    pub fn gender(&self) -> Gender {
        if (self.0.as_bytes()[16] - b'0') % 2 == 1 { Gender::Male } else { Gender::Female }
    }

    /// The GB/T 2260 division code of the place of first registration (first 6 digits).
    pub fn division_code(&self) -> &str {
        &self.0[..6]
    }

    /// The form shown in responses (see [`crate::domain::mask`]): the last 4 characters only,
    /// e.g. `**************1234`.
    pub fn masked(&self) -> String {
        format!("{}{}", "*".repeat(14), &self.0[14..])
    }

    /// Checks the number against a member's recorded birth date and gender, when given.
    pub fn agrees_with(&self, birth_date: Option<NaiveDate>, gender: Option<Gender>) -> Result<(), IdNumberError> {
        if let Some(given) = birth_date {
            let in_id = self.birth_date();
            if in_id != given {
                return Err(IdNumberError::BirthDateMismatch { in_id, given });
            }
        }
        if let Some(given) = gender {
            let in_id = self.gender();
            if in_id != given {
                return Err(IdNumberError::GenderMismatch { in_id, given });
            }
        }
        Ok(())
    }
}

impl fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IdNumber").field(&self.masked()).finish()
    }
}

/// Which ID number and birth date a change to a member leaves to be checked (with
/// [`IdNumber::agrees_with`]) and stored. `stored` is what the member has; `sent_id` and
/// `sent_birth` are the request's fields: `None` when absent, `Some(None)` (or an empty number)
/// to clear.
///
/// A change is never judged against the stored ID number or birth date: both are masked in
/// every answer (the year and the last 4 characters show), so a refusal that depended on them
/// would give them away one guess at a time — a birth date "disagreeing with the ID number"
/// names the number's date. So:
/// - a new ID number brings its own birth date, unless one is sent with it (then the two sent
///   values must agree);
/// - a birth date alone is refused while the member has an ID number
///   ([`IdNumberError::BirthDateWithoutNumber`], whatever the date): send the number with it;
/// - clearing the ID number keeps the birth date, unless another is sent.
///
/// The gender may still be checked against a stored number: its digit is one of the 4 shown.
pub fn identity_change(
    stored: (Option<&str>, Option<NaiveDate>),
    sent_id: Option<Option<&str>>,
    sent_birth: Option<Option<NaiveDate>>,
) -> Result<(Option<String>, Option<NaiveDate>), IdNumberError> {
    let (stored_id, stored_birth) = stored;
    match (sent_id, sent_birth) {
        (Some(Some(id)), birth) if !id.trim().is_empty() => Ok((Some(id.to_owned()), birth.flatten())),
        (Some(_), birth) => Ok((None, birth.unwrap_or(stored_birth))),
        (None, Some(Some(_))) if stored_id.is_some() => Err(IdNumberError::BirthDateWithoutNumber),
        (None, birth) => Ok((stored_id.map(str::to_owned), birth.unwrap_or(stored_birth))),
    }
}

/// The calendar date at positions 7-14 of a digit string, if it is one.
fn birth_date_of(digits: &str) -> Option<NaiveDate> {
    let part = |range: std::ops::Range<usize>| digits.get(range)?.parse::<u32>().ok();
    NaiveDate::from_ymd_opt(i32::try_from(part(6..10)?).ok()?, part(10..12)?, part(12..14)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn today() -> NaiveDate {
        date(2026, 6, 1)
    }

    /// A fictional valid number from its first 17 digits.
    fn valid(first17: &str) -> String {
        format!("{first17}{}", check_char(first17))
    }

    fn parse(s: &str) -> Result<IdNumber, IdNumberError> {
        IdNumber::parse_on(s, today())
    }

    #[test]
    fn check_char_matches_known_numbers() {
        // The worked examples of GB 11643-1999.
        assert_eq!(check_char("11010519491231002"), 'X');
        assert_eq!(check_char("44052418800101001"), '4');
    }

    #[test]
    fn every_check_char_is_reachable() {
        let seen: std::collections::HashSet<char> =
            (0..200).map(|n| check_char(&format!("370103198001011{n:02}")[..17])).collect();
        assert_eq!(seen.len(), 11);
    }

    #[test]
    #[should_panic(expected = "17 ASCII digits")]
    fn check_char_rejects_bad_input() {
        check_char("1234");
    }

    #[test]
    fn parses_and_normalises_lower_case_x() {
        let id = parse("11010519491231002x").unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
        assert_eq!(parse(" 11010519491231002X\n").unwrap(), id);
    }

    #[test]
    fn exposes_its_parts() {
        let id = parse(&valid("37010319850612123")).unwrap();
        assert_eq!(id.birth_date(), date(1985, 6, 12));
        assert_eq!(id.gender(), Gender::Male);
        assert_eq!(id.division_code(), "370103");
        assert_eq!(id.masked(), format!("**************123{}", check_char("37010319850612123")));
        assert_eq!(parse(&valid("37010319850612124")).unwrap().gender(), Gender::Female);
        assert_eq!(parse(&valid("37010319850612120")).unwrap().gender(), Gender::Female);
    }

    #[test]
    fn masked_shows_the_last_four_only() {
        let id = parse("11010519491231002X").unwrap();
        assert_eq!(id.masked(), "**************002X");
        assert_eq!(id.masked().chars().count(), 18);
        assert!(!format!("{id:?}").contains("19491231"), "Debug must not leak the number");
        assert!(!format!("{id:?}").contains("110105"), "Debug must not leak the number");
    }

    #[test]
    fn rejects_wrong_length() {
        assert_eq!(parse(""), Err(IdNumberError::Length(0)));
        assert_eq!(parse("11010519491231002"), Err(IdNumberError::Length(17)));
        assert_eq!(parse("11010519491231002X1"), Err(IdNumberError::Length(19)));
        // 15-digit first-generation numbers are not accepted.
        assert_eq!(parse("110105491231002"), Err(IdNumberError::Length(15)));
        // Length counts characters, not bytes.
        assert_eq!(parse("１1010519491231002"), Err(IdNumberError::Length(17)));
    }

    #[test]
    fn rejects_bad_characters() {
        assert_eq!(parse("1101051949123100XX"), Err(IdNumberError::Format));
        assert_eq!(parse("11010519491231002Y"), Err(IdNumberError::Format));
        assert_eq!(parse("1101-5194912310024"), Err(IdNumberError::Format));
        assert_eq!(parse("X10105194912310024"), Err(IdNumberError::Format));
        assert_eq!(parse("１1010519491231002X"), Err(IdNumberError::Format));
    }

    #[test]
    fn rejects_wrong_check_char() {
        assert_eq!(parse("110105194912310021"), Err(IdNumberError::Checksum { expected: 'X' }));
        // A single mistyped digit is caught.
        assert_eq!(parse("11010519491231003X").unwrap_err().code(), "checksum");
        // Two adjacent digits swapped are caught.
        assert_eq!(parse("11010519491231020X").unwrap_err().code(), "checksum");
    }

    #[test]
    fn rejects_impossible_birth_dates() {
        for first17 in [
            "37010319850230123", // 30 February
            "37010319851301123", // month 13
            "37010319850000123", // month 0
            "37010319850132123", // day 32
            "37010319000229123", // 1900 was not a leap year
            "37010318991231123", // before 1900
            "37010320260602123", // tomorrow
            "37010399991231123", // far future
        ] {
            assert_eq!(parse(&valid(first17)), Err(IdNumberError::BirthDate), "{first17}");
        }
        assert!(parse(&valid("37010320000229123")).is_ok(), "2000 was a leap year");
        assert!(parse(&valid("37010319000101123")).is_ok());
        assert!(parse(&valid("37010320260601123")).is_ok(), "born today");
    }

    #[test]
    fn parse_uses_the_real_clock() {
        assert!(IdNumber::parse("11010519491231002X").is_ok());
        assert_eq!(IdNumber::parse(&valid("37010321991231123")), Err(IdNumberError::BirthDate));
    }

    #[test]
    fn agrees_with_member_data() {
        let id = parse(&valid("37010319850612123")).unwrap();
        assert_eq!(id.agrees_with(None, None), Ok(()));
        assert_eq!(id.agrees_with(Some(date(1985, 6, 12)), Some(Gender::Male)), Ok(()));
        assert_eq!(
            id.agrees_with(Some(date(1985, 6, 13)), Some(Gender::Male)),
            Err(IdNumberError::BirthDateMismatch { in_id: date(1985, 6, 12), given: date(1985, 6, 13) })
        );
        assert_eq!(
            id.agrees_with(None, Some(Gender::Female)),
            Err(IdNumberError::GenderMismatch { in_id: Gender::Male, given: Gender::Female })
        );
    }

    #[test]
    fn identity_changes_never_depend_on_the_stored_values() {
        let stored_id = valid("37010319850612123");
        let stored = (Some(stored_id.as_str()), Some(date(1985, 6, 12)));
        let other = valid("37010319900101123");
        // A birth date alone is refused whatever it is, right or wrong.
        for guess in [date(1985, 6, 12), date(1985, 6, 13)] {
            assert_eq!(identity_change(stored, None, Some(Some(guess))), Err(IdNumberError::BirthDateWithoutNumber));
        }
        // A new number alone brings its birth date; sent together they are checked together.
        assert_eq!(identity_change(stored, Some(Some(&other)), None), Ok((Some(other.clone()), None)));
        let both = identity_change(stored, Some(Some(&other)), Some(Some(date(1990, 1, 2))));
        assert_eq!(both, Ok((Some(other.clone()), Some(date(1990, 1, 2)))));
        // Clearing the number keeps the birth date; nothing sent keeps both.
        assert_eq!(identity_change(stored, Some(None), None), Ok((None, Some(date(1985, 6, 12)))));
        assert_eq!(identity_change(stored, Some(Some("")), None), Ok((None, Some(date(1985, 6, 12)))));
        assert_eq!(identity_change(stored, None, None), Ok((Some(stored_id.clone()), Some(date(1985, 6, 12)))));
        // Without a number a birth date is the member's own business.
        assert_eq!(
            identity_change((None, None), None, Some(Some(date(1950, 5, 5)))),
            Ok((None, Some(date(1950, 5, 5))))
        );
        // The mismatch message quotes neither date.
        let e = IdNumberError::BirthDateMismatch { in_id: date(1985, 6, 12), given: date(1985, 6, 13) };
        assert!(!e.to_string().contains("1985"), "{e}");
    }

    #[test]
    fn errors_have_codes_and_messages() {
        let mismatch = IdNumberError::GenderMismatch { in_id: Gender::Male, given: Gender::Female };
        assert_eq!(mismatch.to_string(), "the ID number is a male person's, but the gender is female");
        assert_eq!(mismatch.code(), "gender_mismatch");
        assert_eq!(IdNumberError::Length(5).to_string(), "an ID number has 18 characters, not 5");
        assert_eq!(
            IdNumberError::Checksum { expected: 'X' }.to_string(),
            "the ID number's check character is wrong (expected X)"
        );
        let codes = [
            IdNumberError::Length(1).code(),
            IdNumberError::Format.code(),
            IdNumberError::BirthDate.code(),
            IdNumberError::Checksum { expected: '1' }.code(),
            IdNumberError::BirthDateMismatch { in_id: today(), given: today() }.code(),
            mismatch.code(),
        ];
        assert_eq!(codes.iter().collect::<std::collections::HashSet<_>>().len(), codes.len());
    }
}
