//! Cursor pagination shared by every list: `limit` (default 50, at most 500) and an opaque
//! `cursor`; answers `{"items": [...], "next_cursor": "..." | null}`.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::input::parse_query;
use crate::error::{ApiError, ApiResult};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

#[derive(Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The page a list asks for, read from its query beside the list's own filters (a handler
/// takes both `Params<Filters>` and `PageQuery`; its annotation lists both).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500, example = 50)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

impl PageQuery {
    /// How many rows to fetch: `limit` checked, and one more.
    pub fn fetch(&self) -> ApiResult<i64> {
        fetch_limit(self.limit)
    }

    /// The sort key the cursor carries, of `parts` parts (422 for one this server did not issue).
    pub fn key(&self, parts: usize) -> ApiResult<Option<Vec<String>>> {
        decode_cursor(self.cursor.as_deref(), parts)
    }

    /// The id a list in id order continues after.
    pub fn after_id(&self) -> ApiResult<Option<String>> {
        Ok(self.key(1)?.map(|mut k| k.remove(0)))
    }

    /// The `(value, id)` a list in that order continues after, the value read by `parse`
    /// ([`parse_time_key`], [`parse_date_key`]).
    pub fn after_pair<T>(&self, parse: impl Fn(&str) -> ApiResult<T>) -> ApiResult<Option<(T, String)>> {
        self.key(2)?.map(|mut k| Ok((parse(&k[0])?, k.remove(1)))).transpose()
    }
}

impl FromRequest for PageQuery {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_query(req.query_string()).map_err(Into::into))
    }
}

/// Checks `limit`; returns how many rows to fetch (one more than the page, to know whether
/// another page follows).
pub fn fetch_limit(limit: Option<u32>) -> ApiResult<i64> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid("limit", "out_of_range", format!("must be between 1 and {MAX_LIMIT}")));
    }
    Ok(i64::from(limit) + 1)
}

/// The sort key a cursor carries (e.g. `[id]` or `[due_on, id]`).
pub fn decode_cursor(cursor: Option<&str>, parts: usize) -> ApiResult<Option<Vec<String>>> {
    let Some(cursor) = cursor else { return Ok(None) };
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid_cursor())?;
    let key: Vec<String> = serde_json::from_slice(&bytes).map_err(|_| invalid_cursor())?;
    // Key parts are ids, dates and times: never text a person wrote.
    let printable = key.iter().all(|k| crate::domain::text::check(k, false).is_ok());
    if key.len() != parts || !printable { Err(invalid_cursor()) } else { Ok(Some(key)) }
}

fn invalid_cursor() -> ApiError {
    ApiError::invalid("cursor", "invalid", "is not a cursor this server issued")
}

const TIME_KEY: &str = "%Y-%m-%dT%H:%M:%S%.6f";
const DATE_KEY: &str = "%Y-%m-%d";

/// A timestamp as a part of a cursor key (microseconds, as stored).
pub fn time_key(t: NaiveDateTime) -> String {
    t.format(TIME_KEY).to_string()
}

/// A key part written by [`time_key`]; 422 for anything else.
pub fn parse_time_key(part: &str) -> ApiResult<NaiveDateTime> {
    NaiveDateTime::parse_from_str(part, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .filter(|t| crate::domain::text::time_in_range(*t))
        .ok_or_else(invalid_cursor)
}

/// A date as a part of a cursor key.
pub fn date_key(d: NaiveDate) -> String {
    d.format(DATE_KEY).to_string()
}

/// A key part written by [`date_key`]; 422 for anything else.
pub fn parse_date_key(part: &str) -> ApiResult<NaiveDate> {
    NaiveDate::parse_from_str(part, DATE_KEY)
        .ok()
        .filter(|d| crate::domain::text::date_in_range(*d))
        .ok_or_else(invalid_cursor)
}

fn encode_cursor(key: &[String]) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).expect("strings serialise"))
}

impl<R> Page<R> {
    /// No items: what a list answers when the caller asks for what they do not see.
    pub fn empty() -> Page<R> {
        Page { items: vec![], next_cursor: None }
    }

    /// The page of `rows` fetched with `fetch` ([`PageQuery::fetch`]): the extra row cut off,
    /// and the cursor of the last item, by its sort `key`, kept when another page follows.
    pub fn of(mut rows: Vec<R>, fetch: i64, key: impl Fn(&R) -> Vec<String>) -> Page<R> {
        let page_size = usize::try_from(fetch - 1).unwrap_or(0);
        let more = rows.len() > page_size;
        rows.truncate(page_size);
        let next_cursor = if more { rows.last().map(|r| encode_cursor(&key(r))) } else { None };
        Page { items: rows, next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let p = Page::of(vec![1, 2, 3], 3, |n| vec![n.to_string()]);
        assert_eq!(p.items, vec![1, 2]);
        let key = decode_cursor(p.next_cursor.as_deref(), 1).unwrap().unwrap();
        assert_eq!(key, vec!["2".to_owned()]);
        assert!(decode_cursor(Some("!!"), 1).is_err());
        assert!(decode_cursor(p.next_cursor.as_deref(), 2).is_err());
        let last = Page::of(vec![1], 3, |n| vec![n.to_string()]);
        assert_eq!(last.next_cursor, None);
        assert!(fetch_limit(Some(0)).is_err());
        assert!(fetch_limit(Some(501)).is_err());
        assert_eq!(fetch_limit(None).unwrap(), 51);
    }

    #[test]
    fn time_and_date_key_parts_round_trip() {
        let t = NaiveDateTime::parse_from_str("2026-11-27 06:10:16.006594", "%Y-%m-%d %H:%M:%S%.f").unwrap();
        assert_eq!(time_key(t), "2026-11-27T06:10:16.006594");
        assert_eq!(parse_time_key(&time_key(t)).unwrap(), t);
        let d = t.date();
        assert_eq!(parse_date_key(&date_key(d)).unwrap(), d);
        assert!(parse_time_key("2026-11-27").is_err());
        assert!(parse_date_key("yesterday").is_err());
        assert!(parse_date_key("-5000-01-01").is_err());
        assert!(parse_time_key("1066-10-14T09:00:00").is_err());
        let nul = encode_cursor(&["a\u{0}".to_owned()]);
        assert!(decode_cursor(Some(&nul), 1).is_err());
    }
}
