//! What a request may bring in, checked before any handler sees it: the extractors every
//! handler takes its JSON body ([`Body`]) and its query ([`Params`]) through, the guard on the
//! path ([`guard_path`]), and the range-checked date types ([`Instant`], [`Day`]).
//!
//! The text rule of [`crate::domain::text`] applies to every string of every body and query,
//! whatever the field: no control character (line breaks and tabs only in fields that hold
//! several lines of text), no bidi override. A refusal is a 422 naming the field; nothing of the
//! request reaches the database, where PostgreSQL would fail on a NUL and SQLite would store it.
//! Deserialisation errors name the field too (`address.building`, `findings[2].detail`).

use std::future::Future;
use std::pin::Pin;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpRequest, ResponseError, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::domain::text::{self, TextError};
use crate::error::{ApiError, FieldError};

/// Fields whose text may span several lines (the last segment of the field's path).
const MULTILINE: &[&str] = &["notes", "note", "detail", "description"];

/// Does the field (a path such as `findings[0].detail`) hold several lines of text?
pub fn is_multiline(field: &str) -> bool {
    let last = field.rsplit(['.', ']']).next().unwrap_or(field);
    MULTILINE.contains(&last)
}

fn text_error(field: String, e: TextError) -> FieldError {
    FieldError::new(field, e.code(), e.to_string())
}

/// Every string of a JSON value (keys too) against the text rule; the first offender. Parts
/// whose path `deferred` names are left to be checked on their own.
fn check_json(value: &Value, path: &mut String, deferred: fn(&str) -> bool) -> Option<FieldError> {
    if deferred(path) {
        return None;
    }
    match value {
        Value::String(s) => text::check(s, is_multiline(path)).err().map(|e| text_error(field_name(path), e)),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = check_json(v, path, deferred);
            path.truncate(len);
            found
        }),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            // A key is text too; a bad one is named by its printable part.
            if let Err(e) = text::check(k, false) {
                path.push_str(&k.chars().filter(|c| !text::is_control(*c)).collect::<String>());
                let found = text_error(field_name(path), e);
                path.truncate(len);
                return Some(found);
            }
            path.push_str(k);
            let found = check_json(v, path, deferred);
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

fn field_name(path: &str) -> String {
    if path.is_empty() { "body".to_owned() } else { path.to_owned() }
}

/// The prefix of a serde error message that carries a field error code (see [`Instant`]).
const CODED: &str = "code=";

/// A custom deserialisation error that names its field error code.
fn coded<E: serde::de::Error>(code: &str, message: &str) -> E {
    E::custom(format_args!("{CODED}{code}: {message}"))
}

/// A serde error at a path, as a field error: "missing field `x`" and "unknown field `x`" name
/// `x`; coded errors keep their code.
fn field_error(path: &str, message: &str) -> FieldError {
    let message = message.split(" at line ").next().unwrap_or(message);
    let quoted = message.split('`').nth(1);
    let under = |name: &str| if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") };
    if let Some(rest) = message.strip_prefix(CODED)
        && let Some((code, text)) = rest.split_once(": ")
    {
        return FieldError::new(field_name(path), code, text);
    }
    match quoted {
        Some(name) if message.starts_with("missing field") => FieldError::new(under(name), "required", "is required"),
        // The path of an unknown field already ends in its name.
        Some(name) if message.starts_with("unknown field") => {
            let field = if path.ends_with(name) { path.to_owned() } else { under(name) };
            FieldError::new(field, "unknown_field", message)
        }
        _ => FieldError::new(field_name(path), "invalid_type", message),
    }
}

fn path_of(path: &serde_path_to_error::Path) -> String {
    let text = path.to_string();
    if text == "." { String::new() } else { text }
}

/// A JSON request body of type `T`. Read like `web::Json` (content type, size limit,
/// malformed JSON: 415, 413, 400 through the app's `JsonConfig`), then every string is checked
/// against the text rule, then it becomes a `T` with errors naming their field (422).
pub struct Body<T>(pub T);

impl<T> Body<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// Turns a parsed JSON value into `T` under the input rules; for bodies read by hand.
pub fn from_json<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    checked_json(value, |_| false)
}

fn checked_json<T: DeserializeOwned>(value: Value, deferred: fn(&str) -> bool) -> Result<T, ApiError> {
    if let Some(e) = check_json(&value, &mut String::new(), deferred) {
        return Err(ApiError::Validation(vec![e]));
    }
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = path_of(e.path());
        ApiError::Validation(vec![field_error(&path, &e.inner().to_string())])
    })
}

type Reading<T> = Pin<Box<dyn Future<Output = Result<T, actix_web::Error>>>>;

/// Reads a JSON body as `T` under the input rules, `deferred` parts aside.
fn read<T: DeserializeOwned + 'static>(
    req: &HttpRequest,
    payload: &mut Payload,
    deferred: fn(&str) -> bool,
) -> Reading<T> {
    let json = web::Json::<Value>::from_request(req, payload);
    Box::pin(async move { Ok(checked_json(json.await?.into_inner(), deferred)?) })
}

impl<T: DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = actix_web::Error;
    type Future = Reading<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read(req, payload, |_| false);
        Box::pin(async move { body.await.map(Body) })
    }
}

/// A batch of operations (`{"operations": [{…, "body": {…}}]}`) as `T`: like [`Body`], except
/// that each operation's `body` is left to [`from_json`] when that operation runs, so that its
/// problems are that operation's result and not the whole request's.
pub struct Batch<T>(pub T);

impl<T> Batch<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// `operations[N].body`
fn operation_body(path: &str) -> bool {
    path.strip_prefix("operations[")
        .and_then(|rest| rest.strip_suffix("].body"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

impl<T: DeserializeOwned + 'static> FromRequest for Batch<T> {
    type Error = actix_web::Error;
    type Future = Reading<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read(req, payload, operation_body);
        Box::pin(async move { body.await.map(Batch) })
    }
}

/// The query of a request, as `T`. Every parameter is checked against the text rule first
/// (422 naming it); a value `T` cannot take is a 400, except the range-checked dates, which
/// are 422 naming the parameter.
pub struct Params<T>(pub T);

impl<T> Params<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Params<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Parses a query string into `T` under the input rules.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    parse_pairs(query, |_| false)
}

/// An HTML form's body (`application/x-www-form-urlencoded`), read as a query is, except that
/// the fields that hold several lines of text ([`is_multiline`]) may hold line breaks.
pub fn parse_form<T: DeserializeOwned>(body: &str) -> Result<T, ApiError> {
    parse_pairs(body, is_multiline)
}

fn parse_pairs<T: DeserializeOwned>(query: &str, multiline: fn(&str) -> bool) -> Result<T, ApiError> {
    for (name, value) in form_urlencoded_pairs(query) {
        if let Err(e) = text::check(&name, false).and_then(|()| text::check(&value, multiline(&name))) {
            let name: String = name.chars().filter(|c| !text::is_control(*c) && !text::is_bidi_override(*c)).collect();
            return Err(ApiError::Validation(vec![text_error(name, e)]));
        }
    }
    let de = serde_urlencoded::Deserializer::new(url_pairs(query));
    serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
        let path = path_of(e.path());
        let message = e.inner().to_string();
        match message.strip_prefix(CODED) {
            Some(_) => ApiError::Validation(vec![field_error(&path, &message)]),
            None if path.is_empty() => ApiError::BadRequest(format!("invalid query string: {message}")),
            None => ApiError::BadRequest(format!("invalid query string: `{path}`: {message}")),
        }
    })
}

fn url_pairs(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

fn form_urlencoded_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    url_pairs(query).map(|(k, v)| (k.into_owned(), v.into_owned()))
}

impl<T: DeserializeOwned + 'static> FromRequest for Params<T> {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_query(req.query_string()).map(Params).map_err(Into::into))
    }
}

/// Refuses a path with a control character or bidi override in it, before routing (404: no
/// resource has such a name). Path segments are ids, tags and file names; none holds one.
pub async fn guard_path<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let decoded = percent_encoding::percent_decode_str(req.path()).decode_utf8_lossy();
    if text::check(&decoded, false).is_err() {
        let res = ApiError::NotFound("no resource at this path".into()).error_response();
        return Ok(req.into_response(res).map_into_right_body());
    }
    next.call(req).await.map(ServiceResponse::map_into_left_body)
}

/// A point in time a client sends: RFC 3339, within the accepted range (1900–2100, see
/// [`crate::domain::text`]); else a 422 `out_of_range` naming the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(pub DateTime<Utc>);

impl<'de> Deserialize<'de> for Instant {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let t = DateTime::<Utc>::deserialize(de)?;
        if text::instant_in_range(t) {
            Ok(Instant(t))
        } else {
            Err(coded("out_of_range", "must be between 1900-01-01 and 2100-12-31"))
        }
    }
}

/// A date a client sends: `YYYY-MM-DD` within the accepted range; else a 422 `out_of_range`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day(pub NaiveDate);

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let d = NaiveDate::deserialize(de)?;
        if text::date_in_range(d) {
            Ok(Day(d))
        } else {
            Err(coded("out_of_range", "must be between 1900-01-01 and 2100-12-31"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields are read by Debug only")]
    struct Sample {
        name: String,
        notes: Option<String>,
        when: Option<Instant>,
        items: Option<Vec<Item>>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields are read by Debug only")]
    struct Item {
        category: String,
        detail: String,
    }

    fn fails(value: Value) -> FieldError {
        match from_json::<Sample>(value) {
            Err(ApiError::Validation(mut errors)) => errors.remove(0),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn every_string_of_a_body_follows_the_text_rule() {
        let e = fails(serde_json::json!({"name": "a\u{0}b"}));
        assert_eq!((e.field.as_str(), e.code.as_str()), ("name", "control_character"));
        let e = fails(serde_json::json!({"name": "x", "items": [{"category": "ok", "detail": "ok"},
            {"category": "a\u{202e}b", "detail": ""}]}));
        assert_eq!((e.field.as_str(), e.code.as_str()), ("items[1].category", "bidi_override"));
        // Several lines in notes and details, not in names.
        assert!(
            from_json::<Sample>(serde_json::json!({"name": "x", "notes": "1\n2\r\n\t3",
            "items": [{"category": "c", "detail": "a\nb"}]}))
            .is_ok()
        );
        let e = fails(serde_json::json!({"name": "x\ny"}));
        assert_eq!(e.code, "control_character");
        let e = fails(serde_json::json!({"name": "x", "notes": "\u{1b}[2J"}));
        assert_eq!((e.field.as_str(), e.code.as_str()), ("notes", "control_character"));
    }

    #[test]
    fn deserialisation_errors_name_their_field() {
        let e = fails(serde_json::json!({"name": "x", "when": "0001-01-01T00:00:00Z"}));
        assert_eq!((e.field.as_str(), e.code.as_str()), ("when", "out_of_range"));
        let e = fails(serde_json::json!({"name": "x", "items": [{"category": 3, "detail": "d"}]}));
        assert_eq!((e.field.as_str(), e.code.as_str()), ("items[0].category", "invalid_type"));
        let e = fails(serde_json::json!({"name": "x", "items": [{"category": "c"}]}));
        assert_eq!((e.field.as_str(), e.code.as_str()), ("items[0].detail", "required"));
        let e = fails(serde_json::json!({"name": "x", "extra": 1}));
        assert_eq!((e.field.as_str(), e.code.as_str()), ("extra", "unknown_field"));
        let e = fails(serde_json::json!({}));
        assert_eq!((e.field.as_str(), e.code.as_str()), ("name", "required"));
    }

    #[derive(Deserialize, Debug)]
    #[expect(dead_code, reason = "fields are read by Debug only")]
    struct Query {
        q: Option<String>,
        from: Option<Instant>,
        limit: Option<u32>,
    }

    #[test]
    fn queries_follow_the_text_rule_and_range_dates() {
        match parse_query::<Query>("q=%00") {
            Err(ApiError::Validation(e)) => {
                assert_eq!((e[0].field.as_str(), e[0].code.as_str()), ("q", "control_character"))
            }
            other => panic!("{other:?}"),
        }
        match parse_query::<Query>("from=-5000-01-01T00:00:00Z") {
            Err(ApiError::Validation(e)) => {
                assert_eq!((e[0].field.as_str(), e[0].code.as_str()), ("from", "out_of_range"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_query::<Query>("limit=abc"), Err(ApiError::BadRequest(_))));
        assert!(parse_query::<Query>("q=%E5%BC%A0&from=2026-11-27T08:00:00Z&limit=5").is_ok());
    }
}
