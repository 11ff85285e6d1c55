//! Field checks shared by every request type: text, phones, client ids. Each pushes its
//! [`FieldError`] onto the request's list, so one 422 names every invalid field at once
//! ([`done`]).
//!
//! Text follows [`crate::domain::text`]: no control characters (line breaks and tabs only in
//! notes), no bidi overrides, not blank — where blank includes invisible characters only. The
//! request extractors ([`crate::api::input`]) refuse controls and overrides in every string
//! before a handler runs; these checks repeat the rule for values that come another way and add
//! the per-field limits.

use validator::{Validate, ValidationErrors, ValidationErrorsKind};

use crate::domain::Phone;
use crate::domain::text;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::store::new_id;

fn trimmed(value: &str) -> &str {
    value.trim_matches(|c: char| c.is_whitespace() || text::is_invisible(c))
}

/// The common checks; true when the value may be stored.
fn check(field: &str, value: &str, max: usize, multiline: bool, errors: &mut Vec<FieldError>) -> bool {
    if value.chars().count() > max {
        errors.push(FieldError::new(field, "too_long", format!("must be at most {max} characters")));
    } else if let Err(e) = text::check(value, multiline) {
        errors.push(FieldError::new(field, e.code(), e.to_string()));
    } else {
        return true;
    }
    false
}

fn required(field: &str, value: &str, max: usize, multiline: bool, errors: &mut Vec<FieldError>) -> String {
    if value.is_empty() {
        errors.push(FieldError::new(field, "required", "must not be empty"));
    } else if check(field, value, max, multiline, errors) && text::is_blank(value) {
        errors.push(FieldError::new(field, "blank", "must not be only whitespace or invisible characters"));
    }
    trimmed(value).to_owned()
}

fn optional(
    field: &str,
    value: Option<&str>,
    max: usize,
    multiline: bool,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let value = value?;
    if !check(field, value, max, multiline, errors) {
        return None;
    }
    // Whitespace alone means "none"; invisible characters alone are a mistake to report.
    if text::is_blank(value) && !value.chars().all(char::is_whitespace) {
        errors.push(FieldError::new(field, "blank", "must not be only invisible characters"));
    }
    Some(trimmed(value)).filter(|v| !v.is_empty()).map(str::to_owned)
}

/// A required one-line text field, stored trimmed: 1..=max characters as sent (the OpenAPI
/// `minLength`/`maxLength`), visible (code `blank` otherwise, a rule the schema leaves out
/// because JSON Schema engines disagree on what whitespace is).
pub fn text(field: &str, value: &str, max: usize, errors: &mut Vec<FieldError>) -> String {
    required(field, value, max, false, errors)
}

/// An optional one-line text field of at most `max` characters as sent; blank means absent.
pub fn optional_text(field: &str, value: Option<&str>, max: usize, errors: &mut Vec<FieldError>) -> Option<String> {
    optional(field, value, max, false, errors)
}

/// Optional notes: several lines allowed; blank means absent.
pub fn notes(field: &str, value: Option<&str>, max: usize, errors: &mut Vec<FieldError>) -> Option<String> {
    optional(field, value, max, true, errors)
}

/// Required notes (a rejection's reason): several lines allowed.
pub fn required_notes(field: &str, value: &str, max: usize, errors: &mut Vec<FieldError>) -> String {
    required(field, value, max, true, errors)
}

/// The declarative rules of a request type (`#[derive(Validate)]`: lengths, ranges, the text
/// rule), as field errors named by their paths (`findings[2].category`), in field order.
pub fn declared(input: &impl Validate) -> Vec<FieldError> {
    let mut out = Vec::new();
    if let Err(errors) = input.validate() {
        flatten("", &errors, &mut out);
    }
    out.sort_by(|a, b| a.field.cmp(&b.field));
    out
}

fn flatten(prefix: &str, errors: &ValidationErrors, out: &mut Vec<FieldError>) {
    for (field, kind) in errors.errors() {
        let path = if prefix.is_empty() { field.to_string() } else { format!("{prefix}.{field}") };
        match kind {
            ValidationErrorsKind::Field(errs) => out.extend(errs.iter().map(|e| {
                let message = e.message.as_ref().map(|m| m.to_string()).unwrap_or_else(|| match e.code.as_ref() {
                    "too_long" => format!(
                        "must be at most {} characters",
                        e.params.get("max").map_or_else(String::new, ToString::to_string)
                    ),
                    "too_many" => {
                        format!("at most {} items", e.params.get("max").map_or_else(String::new, ToString::to_string))
                    }
                    "out_of_range" => "is out of range".to_owned(),
                    code => format!("is invalid ({code})"),
                });
                FieldError::new(path.clone(), e.code.to_string(), message)
            })),
            ValidationErrorsKind::Struct(inner) => flatten(&path, inner, out),
            ValidationErrorsKind::List(items) => {
                for (i, inner) in items {
                    flatten(&format!("{path}[{i}]"), inner, out);
                }
            }
        }
    }
}

/// A checked one-line or multi-line value as stored: trimmed of whitespace and invisible
/// characters at both ends.
pub fn clean(value: &str) -> String {
    trimmed(value).to_owned()
}

/// A checked optional value as stored: trimmed; nothing left means none.
pub fn clean_optional(value: Option<&str>) -> Option<String> {
    value.map(trimmed).filter(|v| !v.is_empty()).map(str::to_owned)
}

/// 422 with every collected field error, or Ok when there are none.
pub fn done(errors: Vec<FieldError>) -> ApiResult<()> {
    if errors.is_empty() { Ok(()) } else { Err(ApiError::Validation(errors)) }
}

/// [`done`] for a request whose last check yields a value (a parse that needs several fields):
/// the value when nothing failed, or 422 with its error added to the others.
pub fn done_with<T>(mut errors: Vec<FieldError>, parsed: Result<T, FieldError>) -> ApiResult<T> {
    match parsed {
        Ok(value) if errors.is_empty() => Ok(value),
        Ok(_) => Err(ApiError::Validation(errors)),
        Err(e) => {
            errors.push(e);
            Err(ApiError::Validation(errors))
        }
    }
}

/// A phone number as stored (normalised), or the field error.
pub fn parse_phone(field: &str, phone: &str) -> Result<String, FieldError> {
    Phone::parse(phone)
        .map(|p| p.as_str().to_owned())
        .map_err(|e| FieldError::new(field, "invalid_format", e.to_string()))
}

/// An optional phone: absent, `null` or empty means none.
pub fn phone(field: &str, phone: Option<&str>, errors: &mut Vec<FieldError>) -> Option<String> {
    let p = phone.filter(|p| !p.is_empty())?;
    parse_phone(field, p).map_err(|e| errors.push(e)).ok()
}

/// Is this the canonical form of a UUID (8-4-4-4-12 hex digits)? Ids of every kind are.
pub fn is_uuid(raw: &str) -> bool {
    raw.len() == 36 && uuid::Uuid::try_parse(raw).is_ok()
}

/// A client-supplied id: a UUID, stored in its canonical lowercase form; a new one when none.
pub fn client_id(id: Option<&str>) -> ApiResult<String> {
    match id {
        None => Ok(new_id()),
        Some(raw) => uuid::Uuid::try_parse(raw)
            .ok()
            .filter(|_| raw.len() == 36)
            .map(|u| u.hyphenated().to_string())
            .ok_or_else(|| ApiError::invalid("id", "invalid_format", "must be a UUID (8-4-4-4-12 hex digits)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(f: impl FnOnce(&mut Vec<FieldError>)) -> Option<String> {
        let mut errors = Vec::new();
        f(&mut errors);
        errors.pop().map(|e| e.code)
    }

    #[test]
    fn text_is_visible_printable_and_bounded() {
        assert_eq!(one(|e| assert_eq!(text("f", " 张三 ", 5, e), "张三")), None);
        assert_eq!(one(|e| drop(text("f", "", 5, e))).as_deref(), Some("required"));
        assert_eq!(one(|e| drop(text("f", "   ", 5, e))).as_deref(), Some("blank"));
        assert_eq!(one(|e| drop(text("f", "\u{200b}\u{feff}", 5, e))).as_deref(), Some("blank"));
        assert_eq!(one(|e| drop(text("f", "a\u{0}", 5, e))).as_deref(), Some("control_character"));
        assert_eq!(one(|e| drop(text("f", "a\u{202e}", 5, e))).as_deref(), Some("bidi_override"));
        assert_eq!(one(|e| drop(text("f", "abcdef", 5, e))).as_deref(), Some("too_long"));
        assert_eq!(one(|e| drop(required_notes("f", "a\nb", 5, e))), None);
    }

    #[test]
    fn optional_text_treats_whitespace_as_absent_and_invisible_as_an_error() {
        assert_eq!(one(|e| assert_eq!(optional_text("f", Some("  "), 5, e), None)), None);
        assert_eq!(one(|e| assert_eq!(optional_text("f", None, 5, e), None)), None);
        assert_eq!(one(|e| drop(optional_text("f", Some("\u{200b}"), 5, e))).as_deref(), Some("blank"));
        assert_eq!(one(|e| assert_eq!(notes("f", Some("1\n2"), 5, e).as_deref(), Some("1\n2"))), None);
        assert_eq!(one(|e| drop(optional_text("f", Some("1\n2"), 5, e))).as_deref(), Some("control_character"));
    }
}
