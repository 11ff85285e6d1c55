//! The responses every operation of a kind can give, added to the OpenAPI document in one
//! place instead of in every handler's `#[utoipa::path]`.
//!
//! They come from machinery the handlers share, not from the handlers' own logic: the
//! `AuthUser` extractor (401), the JSON body extractor and its error handler (400, 413, 415,
//! 422), the query and path extractors (400, 404), and the database layer (503 while it is
//! unreachable, 500 for a bug). A handler's own description of one of these statuses wins.

use utoipa::Modify;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Content, Ref, RefOr};

use crate::api::conditional::IF_MATCH_PATTERN;
use crate::error::PROBLEM_JSON;

/// Operations that answer without touching the database (and so never give 503 or 500).
pub const NO_DATABASE: [&str; 5] = ["healthz", "metrics", "openapi_document", "docs_redirect", "docs_asset"];

pub struct CommonResponses;

fn problem(description: &str) -> ResponseBuilder {
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

/// Every `If-Match` is read by `conditional::if_match`: its syntax is stated once, here.
fn describe_if_match(op: &mut Operation) {
    for p in op.parameters.iter_mut().flatten() {
        if let RefOr::T(p) = p
            && p.parameter_in == ParameterIn::Header
            && p.name.eq_ignore_ascii_case("If-Match")
        {
            p.schema = Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(IF_MATCH_PATTERN))
                    .examples([serde_json::json!("\"3\"")])
                    .into(),
            );
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

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        add_links(openapi);
        for (path, item) in openapi.paths.paths.iter_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ];
            for op in ops.into_iter().flatten() {
                describe_if_match(op);
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
