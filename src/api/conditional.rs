//! Optimistic concurrency: resources with a `version` answer with an `ETag`, and an update
//! carrying a stale `If-Match` is refused with 412.

use actix_web::HttpRequest;
use actix_web::http::header::{ETAG, IF_MATCH};
use utoipa::IntoParams;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};

use crate::error::{ApiError, ApiResult};

pub fn etag(version: i32) -> (actix_web::http::header::HeaderName, String) {
    (ETAG, format!("\"{version}\""))
}

/// What an `If-Match` header may hold: `*`, or one entity tag as this API issues them (`"3"`,
/// `W/"3"`), the quotes optional for clients that drop them.
pub const IF_MATCH_PATTERN: &str = r#"^(\*|(W/)?("[0-9]+"|[0-9]+))$"#;

/// The version an `If-Match` header names (its digits, without leading zeros), if the request
/// has one (`*` matches anything). Anything but `*` or one entity tag (`"3"`, `W/"3"`, or `3`)
/// is a malformed request (400); whether the tag names the current version is decided by
/// [`check_version`], after the request was found otherwise valid.
pub fn if_match(req: &HttpRequest) -> ApiResult<Option<String>> {
    let Some(value) = req.headers().get(IF_MATCH) else { return Ok(None) };
    let malformed = || ApiError::BadRequest("If-Match must be `*` or one entity tag such as \"3\"".into());
    let text = value.to_str().map_err(|_| malformed())?.trim();
    if text == "*" {
        return Ok(None);
    }
    let tag = text.strip_prefix("W/").unwrap_or(text);
    let digits = match tag.strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"'),
        None => Some(tag),
    }
    .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    .ok_or_else(malformed)?;
    let digits = digits.trim_start_matches('0');
    Ok(Some(if digits.is_empty() { "0".to_owned() } else { digits.to_owned() }))
}

/// The `If-Match` of a request, as the digits of the version it names (`None`: no header, or
/// `*`); a malformed one is 400.
pub struct IfMatch(pub Option<String>);

impl IfMatch {
    pub fn version(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

/// Documents the header (its syntax stated once, here) for `params(IfMatch)`.
impl IntoParams for IfMatch {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(IF_MATCH_PATTERN))
            .examples([serde_json::json!("\"3\"")]);
        let header = ParameterBuilder::new()
            .name("If-Match")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some("The ETag the change is based on"))
            .schema(Some(schema));
        vec![header.build()]
    }
}

impl actix_web::FromRequest for IfMatch {
    type Error = ApiError;
    type Future = std::future::Ready<Result<IfMatch, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(if_match(req).map(IfMatch))
    }
}
