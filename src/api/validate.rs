//! Field checks shared by every request type: the declared rules of `#[derive(Validate)]`
//! (lengths, ranges, the text rule of [`crate::domain::text`]) as field errors with paths,
//! phones, client ids, and the cleaning of checked text. Every invalid field of a request is
//! reported in one 422 ([`done`]).

use validator::{Validate, ValidationErrors, ValidationErrorsKind};

use crate::domain::Phone;
use crate::domain::text;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::store::new_id;

fn trimmed(value: &str) -> &str {
    value.trim_matches(|c: char| c.is_whitespace() || text::is_invisible(c))
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
    use crate::domain::Finding;
    use crate::domain::text::{optional_lines, required_line};

    #[derive(Validate)]
    struct Sample {
        #[validate(length(max = 5, code = "too_long"), custom(function = "required_line"))]
        name: String,
        #[validate(length(max = 5, code = "too_long"), custom(function = "optional_lines"))]
        notes: Option<String>,
        #[validate(nested)]
        findings: Vec<Finding>,
    }

    fn codes(name: &str, notes: Option<&str>, findings: Vec<Finding>) -> Vec<(String, String)> {
        let s = Sample { name: name.into(), notes: notes.map(Into::into), findings };
        declared(&s).into_iter().map(|e| (e.field, e.code)).collect()
    }

    fn pair(field: &str, code: &str) -> Vec<(String, String)> {
        vec![(field.to_owned(), code.to_owned())]
    }

    #[test]
    fn declared_rules_name_their_fields_and_codes() {
        assert!(codes(" 张三 ", None, vec![]).is_empty());
        assert_eq!(codes("", None, vec![]), pair("name", "required"));
        assert_eq!(codes("   ", None, vec![]), pair("name", "blank"));
        assert_eq!(codes("\u{200b}\u{feff}", None, vec![]), pair("name", "blank"));
        assert_eq!(codes("a\u{0}", None, vec![]), pair("name", "control_character"));
        assert_eq!(codes("a\u{202e}", None, vec![]), pair("name", "bidi_override"));
        assert_eq!(codes("abcdef", None, vec![]), pair("name", "too_long"));
        // Optional notes: lines allowed, whitespace alone is none, invisible alone an error.
        assert!(codes("x", Some("1\n2"), vec![]).is_empty());
        assert!(codes("x", Some("  "), vec![]).is_empty());
        assert_eq!(codes("x", Some("\u{200b}"), vec![]), pair("notes", "blank"));
        let finding = Finding { category: "".into(), detail: "ok".into() };
        assert_eq!(codes("x", None, vec![finding]), pair("findings[0].category", "required"));
    }

    #[test]
    fn cleaning_trims_whitespace_and_invisible_characters() {
        assert_eq!(clean(" \u{200b}张三\u{feff} "), "张三");
        assert_eq!(clean_optional(Some("  ")), None);
        assert_eq!(clean_optional(Some(" 1\n2 ")).as_deref(), Some("1\n2"));
        assert_eq!(clean_optional(None), None);
    }
}
