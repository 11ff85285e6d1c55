//! What a piece of text a client sends may contain, and the range of dates and times it may
//! name.
//!
//! Text is shown to people (console, exports, audit reviews) and stored in two databases: a
//! control character (PostgreSQL refuses NUL outright; an escape sequence rewrites a terminal),
//! a bidi override (which makes `txt.exe` read as `exe.txt`) or a value made only of invisible
//! characters (a name nobody can see) is never what a user meant. One rule for every field:
//!
//! - C0 controls (U+0000–U+001F), DEL and C1 controls (U+007F–U+009F) are refused; a field
//!   that documents several lines (notes) takes line feed, carriage return and tab, and the
//!   Unicode line and paragraph separators (U+2028, U+2029), which one-line fields refuse as the
//!   line breaks they are;
//! - bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) are refused;
//! - a value of only whitespace and invisible characters counts as blank: every default
//!   ignorable code point of Unicode (zero-width spaces and joiners, word joiner, byte-order
//!   mark, variation selectors, tag characters, …), the other format characters that show
//!   nothing (interlinear annotation marks, Egyptian hieroglyph format controls) and the
//!   braille blank (U+2800), a popular "invisible name".
//!
//! Dates and times are accepted between 1900-01-01 and 2100-12-31 (UTC): nothing the service
//! records lies outside, and both databases store that range exactly.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use validator::ValidationError;

/// Why a text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("must not contain control characters")]
    Control,
    #[error("must not contain bidirectional override characters")]
    BidiOverride,
}

impl TextError {
    /// The field error code.
    pub fn code(self) -> &'static str {
        match self {
            TextError::Control => "control_character",
            TextError::BidiOverride => "bidi_override",
        }
    }
}

/// Does the text hold only characters a person can be shown? `multiline` lets line breaks and
/// tabs through.
pub fn check(value: &str, multiline: bool) -> Result<(), TextError> {
    for c in value.chars() {
        if (is_control(c) || is_line_separator(c)) && !(multiline && is_line_break(c)) {
            return Err(TextError::Control);
        }
        if is_bidi_override(c) {
            return Err(TextError::BidiOverride);
        }
    }
    Ok(())
}

/// C0, DEL and C1.
pub fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// The Unicode line and paragraph separators: line breaks outside the C0 range.
pub fn is_line_separator(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}')
}

/// What a field of several lines may hold besides visible text.
fn is_line_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\t') || is_line_separator(c)
}

/// Embeddings, overrides and isolates: they reorder what follows them.
pub fn is_bidi_override(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Characters that show nothing: Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties,
/// less the bidi controls, which are refused outright), the format characters outside it that
/// render as nothing, and the braille blank.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{034f}'
            | '\u{061c}'
            | '\u{115f}'
            | '\u{1160}'
            | '\u{17b4}'
            | '\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2060}'..='\u{2065}'
            | '\u{206a}'..='\u{206f}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff0}'..='\u{fffb}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e0fff}'
    )
}

/// Nothing a person could see: empty, whitespace, invisible characters.
pub fn is_blank(value: &str) -> bool {
    value.chars().all(|c| c.is_whitespace() || is_invisible(c) || is_control(c))
}

// The rule as `validator` functions, for request types (`#[validate(custom(function = ...))]`).

fn rule_error(code: &'static str, message: &'static str) -> ValidationError {
    ValidationError::new(code).with_message(message.into())
}

fn text_rule(value: &str, multiline: bool, required: bool) -> Result<(), ValidationError> {
    if let Err(e) = check(value, multiline) {
        return Err(rule_error(
            e.code(),
            if multiline {
                "must not contain control characters other than line breaks and tabs, nor bidirectional overrides"
            } else {
                "must not contain control characters or bidirectional overrides"
            },
        ));
    }
    match (value.is_empty(), is_blank(value)) {
        (true, _) if required => Err(rule_error("required", "must not be empty")),
        (false, true) if required => Err(rule_error("blank", "must not be only whitespace or invisible characters")),
        // Whitespace alone in an optional field means "none"; invisible characters alone are a
        // mistake to report.
        (false, true) if !value.chars().all(char::is_whitespace) => {
            Err(rule_error("blank", "must not be only invisible characters"))
        }
        _ => Ok(()),
    }
}

/// A required one-line text field (`#[validate(custom(function = ...))]`).
pub fn required_line(value: &str) -> Result<(), ValidationError> {
    text_rule(value, false, true)
}

/// An optional one-line text field; whitespace alone means none.
pub fn optional_line(value: &str) -> Result<(), ValidationError> {
    text_rule(value, false, false)
}

/// Optional notes: several lines; whitespace alone means none.
pub fn optional_lines(value: &str) -> Result<(), ValidationError> {
    text_rule(value, true, false)
}

/// Required text of several lines.
pub fn required_lines(value: &str) -> Result<(), ValidationError> {
    text_rule(value, true, true)
}

/// The earliest date and time a client may send.
pub const EARLIEST: NaiveDate = NaiveDate::from_ymd_opt(1900, 1, 1).expect("a valid date");
/// The latest date a client may send (times up to its end).
pub const LATEST: NaiveDate = NaiveDate::from_ymd_opt(2100, 12, 31).expect("a valid date");

/// Is the date inside the accepted range?
pub fn date_in_range(d: NaiveDate) -> bool {
    (EARLIEST..=LATEST).contains(&d)
}

/// Is the time inside the accepted range?
pub fn time_in_range(t: NaiveDateTime) -> bool {
    date_in_range(t.date())
}

/// [`time_in_range`] for a zoned time.
pub fn instant_in_range(t: DateTime<Utc>) -> bool {
    time_in_range(t.naive_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_refused_except_line_breaks_in_notes() {
        assert_eq!(check("张桂兰", false), Ok(()));
        assert_eq!(check("a\0b", false), Err(TextError::Control));
        assert_eq!(check("a\0b", true), Err(TextError::Control));
        assert_eq!(check("\x1b[2J", true), Err(TextError::Control));
        assert_eq!(check("a\u{85}b", true), Err(TextError::Control));
        assert_eq!(check("a\u{7f}", false), Err(TextError::Control));
        assert_eq!(check("line 1\nline 2\r\n\tindented", true), Ok(()));
        assert_eq!(check("line 1\nline 2", false), Err(TextError::Control));
        // The Unicode line and paragraph separators are line breaks too.
        assert_eq!(check("张\u{2028}三", false), Err(TextError::Control));
        assert_eq!(check("张\u{2029}三", false), Err(TextError::Control));
        assert_eq!(check("第一段\u{2029}第二段", true), Ok(()));
    }

    #[test]
    fn format_characters_that_show_nothing_are_blank() {
        for s in
            ["\u{e0041}\u{e0042}", "\u{1d173}", "\u{fff9}\u{fffb}", "\u{2800}", "\u{e0100}", "\u{13430}", "\u{1bca0}"]
        {
            assert!(is_blank(s), "{s:?}");
        }
        assert!(is_blank(" \u{e0020}\u{2800} "));
        assert!(!is_blank("王\u{e0041}"));
    }

    #[test]
    fn bidi_overrides_are_refused_and_invisible_only_is_blank() {
        assert_eq!(check("invoice\u{202e}txt.exe", true), Err(TextError::BidiOverride));
        assert_eq!(check("\u{2066}x\u{2069}", false), Err(TextError::BidiOverride));
        assert!(is_blank("\u{200b}"));
        assert!(is_blank(" \u{feff}\u{200d} \u{3000}"));
        assert!(is_blank(""));
        assert!(!is_blank("\u{200b}王"));
        // A joiner inside visible text (emoji sequences, some scripts) is fine.
        assert_eq!(check("👩\u{200d}👧", false), Ok(()));
    }

    #[test]
    fn dates_outside_1900_to_2100_are_out_of_range() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert!(date_in_range(d(1900, 1, 1)));
        assert!(date_in_range(d(2100, 12, 31)));
        assert!(!date_in_range(d(1899, 12, 31)));
        assert!(!date_in_range(d(2101, 1, 1)));
        assert!(!date_in_range(d(-4713, 1, 1)));
        let t = d(2100, 12, 31).and_hms_opt(23, 59, 59).unwrap();
        assert!(time_in_range(t));
        assert!(!instant_in_range(d(-5000, 1, 1).and_hms_opt(0, 0, 0).unwrap().and_utc()));
    }
}

/// What retention keeps of a name: for a name in Chinese characters its surname character and
/// `某` (`张桂兰` → `张某`), otherwise the first letter of each word (`Anna Li` → `A. L.`).
pub fn initials(name: &str) -> String {
    let name = name.trim();
    match name.chars().next() {
        None => String::new(),
        Some(first) if !first.is_ascii() && !name.contains(char::is_whitespace) => format!("{first}某"),
        Some(_) => name
            .split_whitespace()
            .filter_map(|w| w.chars().next())
            .map(|c| format!("{}.", c.to_uppercase()))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

#[cfg(test)]
mod initials_tests {
    use super::initials;

    #[test]
    fn names_keep_their_initials() {
        assert_eq!(initials("张桂兰"), "张某");
        assert_eq!(initials("anna li"), "A. L.");
        assert_eq!(initials(""), "");
    }
}
