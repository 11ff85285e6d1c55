//! The responses every operation of a kind can give, added to the OpenAPI document in one
//! place instead of in every handler's `#[utoipa::path]`.
//!
//! They come from machinery the handlers share, not from the handlers' own logic: the
//! `AuthUser` extractor (401), the JSON body extractor and its error handler (400, 413, 415,
//! 422), the query and path extractors (400, 404), the `If-Match` precondition (412), and the
//! database layer (503 while it is unreachable, 500 for a bug); likewise the `ETag` of versioned
//! answers and the description of path ids. A handler's own description of one of these wins.

use utoipa::Modify;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, Parameter, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{Content, Ref, RefOr};

use serde_json::Value;

use crate::error::PROBLEM_JSON;

/// Operations that answer without touching the database (and so never give 503 or 500).
pub const NO_DATABASE: [&str; 5] = ["healthz", "metrics", "openapi_document", "docs_redirect", "docs_asset"];

pub struct CommonResponses;

/// A problem+json response.
pub(crate) fn problem(description: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, Content::new(Some(Ref::from_schema_name("Problem"))))
}

fn header(of: Type, description: &str) -> Header {
    HeaderBuilder::new().schema(Some(ObjectBuilder::new().schema_type(of))).description(Some(description)).build()
}

fn add(op: &mut Operation, status: &str, response: impl FnOnce() -> Response) {
    op.responses.responses.entry(status.to_owned()).or_insert_with(|| RefOr::T(response()));
}

/// Documents a header on a response, whoever wrote the response.
fn add_header(op: &mut Operation, status: &str, name: &str, h: impl FnOnce() -> Header) {
    if let Some(RefOr::T(res)) = op.responses.responses.get_mut(status) {
        res.headers.entry(name.to_owned()).or_insert_with(|| RefOr::T(h()));
    }
}

/// What kind of operation this is, read off the operation itself.
struct Kind {
    secured: bool,
    body: bool,
    query: bool,
    path_params: bool,
    database: bool,
}

fn kind(path: &str, op: &Operation) -> Kind {
    let has = |place: ParameterIn| {
        op.parameters.iter().flatten().any(|p| matches!(p, RefOr::T(p) if p.parameter_in == place))
    };
    Kind {
        secured: op.security.as_ref().is_some_and(|s| !s.is_empty()),
        body: op.request_body.is_some(),
        query: has(ParameterIn::Query),
        path_params: path.contains('{'),
        database: !op.operation_id.as_deref().is_some_and(|id| NO_DATABASE.contains(&id)),
    }
}

/// Path parameters come first, in the order of the path; one without a description of its own
/// names the resource its value identifies: `{id}` after `/tag-changes` is the "Tag change id".
fn describe_path_parameters(path: &str, op: &mut Operation) {
    let at = |p: &RefOr<Parameter>| match p {
        RefOr::T(p) if p.parameter_in == ParameterIn::Path => path.find(&format!("{{{}}}", p.name)),
        _ => None,
    };
    if let Some(params) = op.parameters.as_mut() {
        params.sort_by_key(|p| at(p).unwrap_or(usize::MAX));
    }
    for p in op.parameters.iter_mut().flatten() {
        if let RefOr::T(p) = p
            && p.parameter_in == ParameterIn::Path
            && p.description.is_none()
        {
            let before = path.split(&format!("/{{{}}}", p.name)).next().unwrap_or(path);
            let things = before.rsplit('/').next().unwrap_or(before).replace('-', " ");
            let thing = match things.strip_suffix("ies") {
                Some(stem) => format!("{stem}y"),
                None => things.strip_suffix('s').unwrap_or(&things).to_owned(),
            };
            let mut chars = thing.chars();
            let capital = chars.next().map(|c| c.to_uppercase().chain(chars).collect::<String>()).unwrap_or_default();
            p.description = Some(format!("{capital} {}", p.name));
        }
    }
}

fn has_if_match(op: &Operation) -> bool {
    op.parameters.iter().flatten().any(|p| {
        matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Header && p.name.eq_ignore_ascii_case("If-Match"))
    })
}

/// The schemas of versioned resources (those with a `version`): their answers carry an `ETag`.
fn versioned_schemas(openapi: &utoipa::openapi::OpenApi) -> Vec<String> {
    let schemas = openapi.components.iter().flat_map(|c| c.schemas.iter());
    schemas
        .filter(|(_, s)| matches!(s, RefOr::T(Schema::Object(o)) if o.properties.contains_key("version")))
        .map(|(name, _)| format!("#/components/schemas/{name}"))
        .collect()
}

/// The answers that carry a versioned resource carry its `ETag` (`conditional::current` and
/// `saved`): the one created (201), and the one read or changed by id (200 of a GET, PUT or
/// PATCH of a path with a parameter).
fn add_etag(op: &mut Operation, method: &str, path: &str, versioned: &[String]) {
    let statuses: &[&str] = match method {
        "get" | "put" | "patch" if path.contains('{') => &["200", "201"],
        _ => &["201"],
    };
    for status in statuses {
        let Some(RefOr::T(res)) = op.responses.responses.get_mut(*status) else { continue };
        let body = match res.content.get("application/json") {
            Some(RefOr::T(c)) => c.schema.as_ref(),
            _ => None,
        };
        if matches!(body, Some(RefOr::Ref(r)) if versioned.contains(&r.ref_location)) {
            res.headers.entry("ETag".to_owned()).or_insert_with(|| RefOr::T(header(Type::String, "Version")));
        }
    }
}

/// OpenAPI links, so that clients (and the contract fuzzer's stateful phase) can follow a list
/// or a creation to the operations on what it returned: the items of `GET …/{things}` and the
/// body of `POST …/{things}` (201) lead to every operation under `/api/v1/{things}/{id}`.
fn add_links(openapi: &mut utoipa::openapi::OpenApi) {
    let mut targets: Vec<(String, String)> = Vec::new();
    for (path, item) in openapi.paths.paths.iter() {
        for op in [&item.get, &item.put, &item.post, &item.delete, &item.patch].into_iter().flatten() {
            if let Some(id) = &op.operation_id {
                targets.push((path.clone(), id.clone()));
            }
        }
    }
    for (path, item) in openapi.paths.paths.iter_mut() {
        let Some(things) = path.rsplit('/').next().filter(|s| !s.starts_with('{')) else { continue };
        let prefix = format!("/api/v1/{things}/{{id}}");
        let linked: Vec<&String> = targets
            .iter()
            .filter(|(p, _)| p == &prefix || p.starts_with(&format!("{prefix}/")))
            .map(|(_, id)| id)
            .collect();
        if linked.is_empty() {
            continue;
        }
        for (op, status, pointer) in
            [(&mut item.get, "200", "$response.body#/items/0/id"), (&mut item.post, "201", "$response.body#/id")]
        {
            let Some(RefOr::T(res)) = op.as_mut().and_then(|op| op.responses.responses.get_mut(status)) else {
                continue;
            };
            for id in &linked {
                res.links
                    .entry((*id).clone())
                    .or_insert_with(|| RefOr::T(LinkBuilder::new().operation_id(*id).parameter("id", pointer).build()));
            }
        }
    }
}

/// The text rule of [`crate::domain::text`] as JSON Schema patterns: one line, or several (line
/// feed, carriage return, tab and the Unicode line and paragraph separators let through) for
/// the fields [`crate::api::input`] reads so.
pub const ONE_LINE_PATTERN: &str = r"^[^\x00-\x1F\x7F-\x9F\u2028\u2029\u202A-\u202E\u2066-\u2069]*$";
pub const LINES_PATTERN: &str = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F\u202A-\u202E\u2066-\u2069]*$";

fn is_string(schema: &Value) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
        _ => false,
    }
}

/// Gives a string schema the text rule's pattern, unless it already says more (its own
/// pattern, a format, an enumeration).
fn state_rule(schema: &mut Value, multiline: bool) {
    let free = is_string(schema) && ["pattern", "format", "enum", "const"].iter().all(|k| schema.get(k).is_none());
    if free && let Some(map) = schema.as_object_mut() {
        let pattern = if multiline { LINES_PATTERN } else { ONE_LINE_PATTERN };
        map.insert("pattern".into(), Value::String(pattern.into()));
    }
}

/// Walks a schema: the strings of its properties and items get the rule; references are
/// collected for the caller to follow.
fn walk(schema: &mut Value, name: &str, refs: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        refs.push(r.rsplit('/').next().unwrap_or(r).to_owned());
        return;
    }
    state_rule(schema, crate::api::input::is_multiline(name));
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for (prop, s) in props.iter_mut() {
            walk(s, prop, refs);
        }
    }
    if let Some(items) = schema.get_mut("items") {
        walk(items, name, refs);
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        if let Some(Value::Array(all)) = schema.get_mut(key) {
            for s in all {
                walk(s, name, refs);
            }
        }
    }
}

/// Every string a client sends (request bodies, query and path parameters) states the text
/// rule as a pattern, so that the document is as strict as the server.
fn state_the_text_rule(openapi: &mut utoipa::openapi::OpenApi) {
    let Ok(mut doc) = serde_json::to_value(&*openapi) else { return };
    let mut refs = Vec::new();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in item.values_mut() {
                for param in op.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten() {
                    let place = param.get("in").and_then(Value::as_str).unwrap_or("");
                    if matches!(place, "query" | "path")
                        && let Some(schema) = param.get_mut("schema")
                    {
                        state_rule(schema, false);
                    }
                }
                let bodies = op.pointer_mut("/requestBody/content").and_then(Value::as_object_mut);
                for media in bodies.into_iter().flat_map(|m| m.values_mut()) {
                    if let Some(schema) = media.get_mut("schema") {
                        walk(schema, "", &mut refs);
                    }
                }
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    while let Some(name) = refs.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = doc.pointer_mut(&format!("/components/schemas/{name}")) {
            walk(schema, "", &mut refs);
        }
    }
    match serde_json::from_value(doc) {
        Ok(stated) => *openapi = stated,
        Err(e) => tracing::error!(error = %e, "the OpenAPI document did not survive stating the text rule"),
    }
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        add_links(openapi);
        state_the_text_rule(openapi);
        let versioned = versioned_schemas(openapi);
        for (path, item) in openapi.paths.paths.iter_mut() {
            let ops = [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("patch", &mut item.patch),
                ("head", &mut item.head),
                ("options", &mut item.options),
                ("trace", &mut item.trace),
            ];
            for (method, op) in ops {
                let Some(op) = op else { continue };
                describe_path_parameters(path, op);
                add_etag(op, method, path, &versioned);
                if has_if_match(op) {
                    add(op, "412", || problem("If-Match names an old version").build());
                }
                let k = kind(path, op);
                if k.secured {
                    add(op, "401", || {
                        problem("Missing, malformed, expired or revoked bearer token, or a deactivated account").build()
                    });
                    add_header(op, "401", "WWW-Authenticate", || header(Type::String, "`Bearer`"));
                }
                if k.body {
                    add(op, "400", || problem("The body is not well-formed JSON").build());
                    add(op, "413", || {
                        problem("The body is larger than the configured limit (1 MiB by default)").build()
                    });
                    add(op, "415", || problem("The body is not sent as `application/json`").build());
                    add(op, "422", || {
                        problem("The body does not have the expected shape, or a field is invalid; `errors` names each")
                            .build()
                    });
                }
                if k.query {
                    add(op, "400", || problem("A query parameter has the wrong type or an unknown value").build());
                    add(op, "422", || {
                        problem("A query parameter breaks a rule (text, date range, limit, cursor); `errors` names it")
                            .build()
                    });
                }
                if k.path_params {
                    add(op, "404", || problem("No such resource in the caller's scope").build());
                }
                if k.database {
                    add(op, "500", || {
                        problem("An unexpected failure; the cause is logged, never sent (detail is generic)").build()
                    });
                    add(op, "503", || {
                        problem("The database is unreachable or busy; retry after the given seconds").build()
                    });
                    add_header(op, "503", "Retry-After", || header(Type::Integer, "Seconds to wait before retrying"));
                }
            }
        }
    }
}
