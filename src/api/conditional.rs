//! Optimistic concurrency: resources with a `version` answer with an `ETag`, and an update
//! carrying a stale `If-Match` is refused with 412.

use actix_web::HttpRequest;
use actix_web::http::header::{ETAG, IF_MATCH};

use crate::error::{ApiError, ApiResult};

pub fn etag(version: i32) -> (actix_web::http::header::HeaderName, String) {
    (ETAG, format!("\"{version}\""))
}

/// The version an `If-Match` header names, if the request has one (`*` matches anything).
pub fn if_match(req: &HttpRequest) -> ApiResult<Option<i32>> {
    let Some(value) = req.headers().get(IF_MATCH) else { return Ok(None) };
    let text = value.to_str().map_err(|_| ApiError::BadRequest("If-Match is not readable".into()))?.trim();
    if text == "*" {
        return Ok(None);
    }
    let tag = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    tag.parse::<i32>()
        .map(Some)
        .map_err(|_| ApiError::PreconditionFailed("If-Match does not name a version of this resource".into()))
}

/// 412 when the client's `If-Match` names another version than the stored one.
pub fn check_version(expected: Option<i32>, current: i32) -> ApiResult<()> {
    match expected {
        Some(v) if v != current => {
            Err(ApiError::PreconditionFailed(format!("the resource is at version {current}, not {v}; fetch it again")))
        }
        _ => Ok(()),
    }
}
