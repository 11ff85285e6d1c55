//! The HTTP surface: every route is wired here, and the OpenAPI document is built from the
//! same handlers.

pub mod answer;
pub mod audit;
pub mod auth;
pub mod cached;
pub mod communities;
pub mod conditional;
pub mod contract;
pub mod docs;
pub mod events;
pub mod exports;
pub mod grids;
pub mod health;
pub mod households;
pub mod imports;
pub mod input;
pub mod members;
pub mod pagination;
pub mod pii;
pub mod plans;
pub mod record;
pub mod stats;
pub mod streets;
pub mod sync;
pub mod tags;
pub mod tasks;
pub mod users;
pub mod validate;
pub mod visits;
pub mod webhooks;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::header;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, web};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::contract::CommonResponses;
use crate::error::{ApiError, FieldError, PROBLEM_JSON, Problem, problem_response};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gridlight",
        description = "Community grid governance with the traffic-light household mechanism (信号灯机制).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        health::healthz, health::readyz, health::metrics,
        docs::openapi_document, docs::docs_redirect, docs::docs_asset,
        auth::login, auth::refresh, auth::logout, auth::me, auth::change_password,
        users::list, users::create, users::get, users::patch,
        communities::list, communities::create, communities::get, communities::patch,
        streets::list_districts, streets::create_district, streets::get_district, streets::patch_district,
        streets::delete_district,
        streets::list_streets, streets::create_street, streets::get_street, streets::patch_street,
        streets::delete_street,
        grids::list, grids::create, grids::get, grids::patch, grids::put_workers,
        households::list, households::create, households::get, households::patch, households::remove,
        members::list, members::create, members::get, members::patch, members::remove,
        pii::member, pii::household, record::household,
        audit::list,
        tags::reasons, tags::propose, tags::list, tags::get, tags::approve, tags::reject, tags::history,
        plans::list, plans::put,
        tasks::list, tasks::patch,
        visits::list, visits::create, visits::get, visits::patch,
        stats::overview, stats::evaluation,
        sync::sync, sync::push,
        imports::create, imports::get, imports::errors, imports::errors_xlsx, imports::commit_import,
        exports::template_xlsx, exports::template_csv, exports::households_xlsx, exports::households_csv,
        events::list,
        webhooks::list, webhooks::create, webhooks::get, webhooks::patch, webhooks::delete, webhooks::rotate,
        webhooks::deliveries, webhooks::dead_letters, webhooks::resend,
    ),
    components(schemas(Problem, FieldError)),
    modifiers(&BearerAuth, &CommonResponses),
    tags(
        (name = "operations", description = "Liveness, readiness and metrics"),
        (name = "auth", description = "Sessions and the caller's own account"),
        (name = "users", description = "User accounts"),
        (name = "communities", description = "Communities"),
        (name = "streets", description = "Districts (区) and streets (街道) above the community"),
        (name = "grids", description = "Grids and their workers"),
        (name = "households", description = "Households and their traffic-light tags"),
        (name = "members", description = "Residents of households"),
        (name = "audit", description = "The audit log"),
        (name = "tags", description = "The traffic light: tag reasons, proposals, reviews and history"),
        (name = "plans", description = "Service plans per community and tag"),
        (name = "tasks", description = "Scheduled services: to-do lists and the unassigned queue"),
        (name = "visits", description = "Home visits, phone calls and services recorded by grid workers"),
        (name = "stats", description = "Dashboards and periodic evaluation reports"),
        (name = "imports", description = "Household rosters in and out: the template, dry run, errors, commit, and exports (docs/import.md)"),
        (name = "sync", description = "Offline sync for mobile clients: the change feed and the batch push (docs/sync.md)"),
        (name = "events", description = "Events for third-party apps: the replayable feed (docs/events.md)"),
        (name = "webhooks", description = "Signed webhook deliveries of events, with retries and dead letters (docs/events.md)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// The OpenAPI document the server serves and `gridlight openapi` writes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The committed form of the document: pretty JSON with a final newline.
pub fn openapi_json() -> String {
    let mut text = openapi().to_pretty_json().expect("the OpenAPI document serialises");
    text.push('\n');
    text
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").route(web::get().to(health::healthz)))
        .service(web::resource("/readyz").route(web::get().to(health::readyz)))
        .service(web::resource("/metrics").route(web::get().to(health::metrics)))
        .configure(docs::routes)
        .service(
            web::scope("/api/v1")
                .configure(auth::routes)
                .configure(users::routes)
                .configure(communities::routes)
                .configure(streets::routes)
                .configure(grids::routes)
                .configure(households::routes)
                .configure(members::routes)
                .configure(pii::routes)
                .configure(record::routes)
                .configure(audit::routes)
                .configure(tags::routes)
                .configure(plans::routes)
                .configure(tasks::routes)
                .configure(visits::routes)
                .configure(stats::routes)
                .configure(sync::routes)
                .configure(exports::routes)
                .configure(imports::routes)
                .configure(events::routes)
                .configure(webhooks::routes),
        );
}

/// For PATCH fields where `null` means "clear it" and absence means "leave it": absent →
/// `None`, `null` → `Some(None)`, a value → `Some(Some(v))`.
pub fn double_option<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(de).map(Some)
}

/// JSON Schema's `integer` is any number whose fractional part is zero (`3.0` too), serde's
/// `i32` only `3`: the integer fields of request bodies take both, as their schema promises.
pub fn integral<'de, D: serde::Deserializer<'de>>(de: D) -> Result<i32, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Number {
        Int(i64),
        Float(f64),
    }
    let n = match <Number as serde::Deserialize>::deserialize(de)? {
        Number::Int(i) => i32::try_from(i).ok(),
        Number::Float(f) if f.fract() == 0.0 && (f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&f) => {
            Some(f as i32)
        }
        Number::Float(_) => None,
    };
    n.ok_or_else(|| serde::de::Error::custom("invalid type: expected an integer (32 bits)"))
}

/// [`integral`] for an optional field (with `#[serde(default)]`).
pub fn optional_integral<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<i32>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Wrap(#[serde(deserialize_with = "integral")] i32);
    Ok(<Option<Wrap> as serde::Deserialize>::deserialize(de)?.map(|w| w.0))
}

/// [`integral`] for a PATCH field where `null` clears (see [`double_option`]).
pub fn double_option_integral<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<Option<i32>>, D::Error> {
    optional_integral(de).map(Some)
}

/// Answers requests that match no route.
pub async fn no_route() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no resource at this path".into()))
}

/// Malformed JSON is 400; well-formed JSON of the wrong shape is 422 naming the field.
pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::Overflow { limit } | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            ApiError::PayloadTooLarge(format!("the request body is larger than {limit} bytes"))
        }
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType("send the body as application/json".into()),
        JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::Validation(vec![field_error_of(e)]),
        JsonPayloadError::Deserialize(e) => ApiError::BadRequest(format!("the body is not valid JSON: {e}")),
        other => ApiError::BadRequest(format!("the body could not be read: {other}")),
    };
    api.into()
}

/// Turns serde's "missing field `x`" / "unknown field `x`" / "invalid type … at line" into a
/// field error.
fn field_error_of(e: &serde_json::Error) -> FieldError {
    let text = e.to_string();
    let message = text.split(" at line ").next().unwrap_or(&text).to_owned();
    let quoted = message.split('`').nth(1).map(str::to_owned);
    if message.starts_with("missing field") {
        FieldError::new(quoted.unwrap_or_else(|| "body".into()), "required", "is required")
    } else if message.starts_with("unknown field") {
        FieldError::new(quoted.unwrap_or_else(|| "body".into()), "unknown_field", message)
    } else {
        FieldError::new("body", "invalid_type", message)
    }
}

pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid query string: {err}")).into()
}

pub fn path_error(_err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::NotFound("no resource at this path".into()).into()
}

/// Rewrites any error response that is not already problem+json (actix's own 404/405, an
/// extractor's rejection) into problem+json, so that every failure has the same shape.
pub fn problemify<B: MessageBody + 'static>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // The console's error pages are HTML of their own making, for people rather than programs.
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()) || v.as_bytes().starts_with(b"text/html"));
    if is_problem {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let detail = match (status.as_u16(), res.response().error()) {
        (404, _) => "no resource at this path".to_owned(),
        (405, _) => String::new(),
        (400..=499, Some(err)) => err.to_string(),
        _ => String::new(),
    };
    let (req, old) = res.into_parts();
    let mut new = problem_response(status, &detail);
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().insert(name.clone(), value.clone());
        }
    }
    let res: ServiceResponse<EitherBody<B, BoxBody>> = ServiceResponse::new(req, new).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}
