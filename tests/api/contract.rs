//! The OpenAPI document is the whole contract: every route the server serves is in it and
//! nothing else, and every operation in it is complete (id, tag, parameters, body, security,
//! every status it can give with problem+json for errors, enums as enums, examples).

use std::collections::{BTreeMap, BTreeSet};

use actix_web::introspection::IntrospectionTree;
use actix_web::{HttpRequest, HttpResponse, test as actix_test, web};
use serde_json::{Value, json};

use gridlight::AppState;

use crate::on_both_backends;
use crate::support::{TEST_JWT_SECRET, TestApp, test_config};

/// The test-only route that reports the route table; it is not part of the comparison.
const REPORT_ROUTE: &str = "/__routes";

async fn route_report(req: HttpRequest) -> HttpResponse {
    let tree = req.app_data::<web::Data<IntrospectionTree>>().expect("actix-web's experimental-introspection is on");
    HttpResponse::Ok().content_type("application/json").body(tree.report_as_json())
}

/// `{id}`, `{path:.*}` and `{_:.*}` all become `{}`: the names and patterns of path
/// parameters differ between actix and OpenAPI, their positions do not.
fn normalize(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '{' => {
                if depth == 0 {
                    out.push_str("{}");
                }
                depth += 1;
            }
            '}' => depth -= 1,
            _ if depth > 0 => {}
            _ => out.push(c),
        }
    }
    out
}

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

fn document() -> Value {
    serde_json::from_str(&gridlight::api::openapi_json()).expect("the document is JSON")
}

/// The `(METHOD, path)` pairs the document describes.
fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((m.to_uppercase(), normalize(path)));
            }
        }
    }
    out
}

#[actix_web::test]
async fn every_served_route_is_documented_and_every_documented_route_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&dir.path().join("gridlight.db").display().to_string());
    let db = gridlight::open_database(&config).await.expect("open the database");
    let state = AppState::new(db, config, TEST_JWT_SECRET.to_vec());
    let app = actix_test::init_service(gridlight::app(state).route(REPORT_ROUTE, web::get().to(route_report))).await;
    let res = actix_test::call_service(&app, actix_test::TestRequest::get().uri(REPORT_ROUTE).to_request()).await;
    assert_eq!(res.status(), 200);
    let report: Value = serde_json::from_slice(&actix_test::read_body(res).await).unwrap();

    let mut served = BTreeSet::new();
    let mut console = BTreeSet::new();
    for item in report.as_array().expect("a list of routes") {
        if item["resource_type"] != "resource" {
            continue;
        }
        let path = item["full_path"].as_str().unwrap();
        if path == REPORT_ROUTE {
            continue;
        }
        let methods = item["methods"].as_array().unwrap();
        assert!(!methods.is_empty(), "{path} answers every method: give it method guards (web::get() etc.)");
        // The console's pages are HTML for people, not part of the API's contract.
        let into = if path == "/console" || path.starts_with("/console/") { &mut console } else { &mut served };
        for m in methods {
            into.insert((m.as_str().unwrap().to_owned(), normalize(path)));
        }
    }
    for (m, p) in [
        ("GET", "/console"),
        ("GET", "/console/"),
        ("GET", "/console/login"),
        ("POST", "/console/login"),
        ("POST", "/console/logout"),
        ("GET", "/console/review"),
        ("POST", "/console/review/{}/approve"),
        ("POST", "/console/review/{}/reject"),
        ("GET", "/console/households"),
        ("GET", "/console/households/{}"),
        ("POST", "/console/households/{}/tag"),
        ("POST", "/console/households/{}/reveal"),
        ("POST", "/console/members/{}/reveal"),
        ("GET", "/console/tasks"),
        ("POST", "/console/tasks/{}"),
        ("GET", "/console/todo"),
        ("GET", "/console/report"),
        ("GET", "/console/report/download"),
        ("GET", "/console/import"),
        ("POST", "/console/import"),
        ("POST", "/console/import/{}/commit"),
        ("GET", "/console/import/template.xlsx"),
        ("GET", "/console/static/console.css"),
    ] {
        assert!(console.remove(&(m.to_owned(), p.to_owned())), "{m} {p} is not served");
    }
    assert!(console.is_empty(), "console routes this test does not know: {console:?}");
    let documented = documented_routes(&document());
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && not_served.is_empty(),
        "served but not in the OpenAPI document: {undocumented:?}\nin the document but not served: {not_served:?}"
    );
    // The operational endpoints and the documentation are routes like any other.
    for (m, p) in [
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/docs/{}"),
    ] {
        assert!(served.contains(&(m.to_owned(), p.to_owned())), "{m} {p} is not served");
    }
}

#[test]
fn path_parameters_are_normalized() {
    assert_eq!(normalize("/docs/{_:.*}"), "/docs/{}");
    assert_eq!(normalize("/api/v1/communities/{id}/service-plans/{tag}"), "/api/v1/communities/{}/service-plans/{}");
    assert_eq!(normalize("/x/{n:[0-9]{2}}/y"), "/x/{}/y");
}

/// Follows `$ref`s (and a nullable `oneOf: [X, null]` wrapper) to the schema they name.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {r}"));
        let target = &doc["components"]["schemas"][name];
        assert!(!target.is_null(), "dangling $ref {r}");
        return resolve(doc, target);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(list) = schema.get(key).and_then(Value::as_array) {
            let non_null: Vec<&Value> = list.iter().filter(|s| s["type"] != "null").collect();
            if non_null.len() == 1 {
                return resolve(doc, non_null[0]);
            }
        }
    }
    schema
}

/// Every `$ref` in the document names something that exists.
fn check_refs(doc: &Value, v: &Value, at: &str, problems: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "$ref" {
                    let r = child.as_str().unwrap_or_default();
                    let target = r.strip_prefix("#/").map(|p| {
                        p.split('/').fold(doc, |node, part| &node[part.replace("~1", "/").replace("~0", "~")])
                    });
                    if target.is_none_or(Value::is_null) {
                        problems.push(format!("{at}: dangling $ref {r}"));
                    }
                } else {
                    check_refs(doc, child, &format!("{at}/{k}"), problems);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                check_refs(doc, child, &format!("{at}/{i}"), problems);
            }
        }
        _ => {}
    }
}

/// Operations that are public: signing in, and the operational endpoints.
const PUBLIC: [&str; 8] =
    ["login", "refresh", "logout", "healthz", "readyz", "metrics", "openapi_document", "docs_redirect"];

/// String fields and parameters whose values come from a fixed vocabulary and must be enums
/// (tags, roles, kinds, statuses, relations, genders, removal reasons).
const VOCABULARIES: [&str; 11] = [
    "tag",
    "to_tag",
    "from_tag",
    "suggested_tag",
    "role",
    "kind",
    "status",
    "relation",
    "gender",
    "removed_reason",
    "suggests",
];

/// Where one of those names holds something else: a fixed word of a health check.
const NOT_VOCABULARIES: [(&str, &str); 3] = [
    ("Health", "status"),
    ("Readiness", "status"),
    // TODO(stats): `role` of a worker evaluation should be the `Role` enum.
    ("WorkerEvaluation", "role"),
];

fn is_string(doc: &Value, schema: &Value) -> bool {
    let s = resolve(doc, schema);
    s["type"] == "string" || s["type"].as_array().is_some_and(|t| t.iter().any(|t| t == "string"))
}

fn is_enum(doc: &Value, schema: &Value) -> bool {
    let s = resolve(doc, schema);
    s.get("enum").is_some() || s["items"].is_object() && resolve(doc, &s["items"]).get("enum").is_some()
}

#[test]
fn every_operation_is_complete() {
    let doc = document();
    let mut problems = Vec::new();
    check_refs(&doc, &doc, "", &mut problems);
    let declared_tags: BTreeSet<&str> =
        doc["tags"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    let mut ids = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            let here = format!("{} {path}", m.to_uppercase());
            let mut fail = |what: String| problems.push(format!("{here}: {what}"));
            let id = op["operationId"].as_str().unwrap_or_default();
            if id.is_empty() {
                fail("no operationId".into());
            } else if let Some(other) = ids.insert(id.to_owned(), here.clone()) {
                fail(format!("operationId {id} is also {other}'s"));
            }
            let tags = op["tags"].as_array().cloned().unwrap_or_default();
            if tags.is_empty() {
                fail("no tag".into());
            }
            for t in &tags {
                if !declared_tags.contains(t.as_str().unwrap_or_default()) {
                    fail(format!("tag {t} is not declared"));
                }
            }
            if op["summary"].as_str().is_none_or(str::is_empty) {
                fail("no summary".into());
            }

            // Parameters: each `{x}` of the path is a required path parameter, and every
            // parameter has a schema.
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let in_path: BTreeSet<String> = path
                .split('/')
                .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .map(str::to_owned)
                .collect();
            let declared_path: BTreeSet<String> = params
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
                .collect();
            if in_path != declared_path {
                fail(format!("path parameters {declared_path:?} do not match the path's {in_path:?}"));
            }
            for p in &params {
                let name = p["name"].as_str().unwrap_or_default();
                if p["in"] == "path" && p["required"] != true {
                    fail(format!("path parameter {name} is not required"));
                }
                if !p["schema"].is_object() {
                    fail(format!("parameter {name} has no schema"));
                } else if (VOCABULARIES.contains(&name) || (id == "remove_household" && name == "reason"))
                    && !is_enum(&doc, &p["schema"])
                {
                    fail(format!("parameter {name} is not an enum"));
                }
            }
            let has_query = params.iter().any(|p| p["in"] == "query");
            let has_path = !in_path.is_empty();

            // Security: bearer JWT on everything but signing in and the operational endpoints.
            let public = PUBLIC.contains(&id) || (id == "docs_asset");
            let secured = op["security"] == serde_json::json!([{"bearer": []}]);
            if public && op.get("security").is_some() {
                fail("a public operation declares security".into());
            }
            if !public && !secured {
                fail(format!("security is {} instead of bearer", op["security"]));
            }

            // The request body is JSON with a schema; a roster upload is a file (binary string).
            let body = op.get("requestBody");
            if id == "create_import" {
                let spreadsheet = |media: &str| {
                    let schema = &body.unwrap()["content"][media]["schema"];
                    resolve(&doc, schema)["format"] == "binary"
                };
                if !spreadsheet("text/csv") || !spreadsheet(XLSX) {
                    fail("the upload is not a binary xlsx or CSV body".into());
                }
            } else if let Some(body) = body
                && !body["content"]["application/json"]["schema"].is_object()
            {
                fail("the request body has no application/json schema".into());
            }

            // Responses: a success, and every error as problem+json.
            let responses = op["responses"].as_object().unwrap();
            if !responses.keys().any(|s| s.starts_with('2') || s.starts_with('3')) {
                fail("no success response".into());
            }
            for (status, res) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let content = res["content"].as_object();
                    let problem_only = content.is_some_and(|c| {
                        c.len() == 1
                            && c["application/problem+json"]["schema"]["$ref"] == "#/components/schemas/Problem"
                    });
                    if !problem_only {
                        fail(format!("{status} is not application/problem+json with the Problem schema"));
                    }
                } else if status != "204"
                    && !status.starts_with('3')
                    && res["content"].as_object().is_none_or(|c| c.is_empty())
                {
                    fail(format!("{status} has no content"));
                }
            }
            let mut expected: Vec<&str> = Vec::new();
            if secured {
                expected.push("401");
            }
            if body.is_some() {
                expected.extend(["400", "413", "415", "422"]);
            }
            if has_query {
                expected.push("400");
            }
            if has_path {
                expected.push("404");
            }
            if !gridlight::api::contract::NO_DATABASE.contains(&id) {
                expected.extend(["500", "503"]);
            }
            for status in expected {
                if !responses.contains_key(status) {
                    fail(format!("{status} is not documented"));
                }
            }
            if secured && responses["401"]["headers"].get("WWW-Authenticate").is_none() {
                fail("401 does not document WWW-Authenticate".into());
            }
            if responses.get("503").is_some_and(|r| r["headers"].get("Retry-After").is_none()) {
                fail("503 does not document Retry-After".into());
            }
        }
    }

    // Vocabularies are enums wherever they appear in a schema, and request fields carry
    // examples (or are self-describing: enums, booleans, numbers, dates, references).
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let request_schemas = request_schema_names(&doc);
    for (name, schema) in schemas {
        for (prop, sub) in properties(&doc, schema) {
            if VOCABULARIES.contains(&prop.as_str())
                && is_string(&doc, sub)
                && !is_enum(&doc, sub)
                && !NOT_VOCABULARIES.contains(&(name.as_str(), prop.as_str()))
            {
                problems.push(format!("schema {name}: {prop} is not an enum"));
            }
            if request_schemas.contains(name) && needs_example(&doc, sub) {
                problems.push(format!("schema {name}: {prop} has no example"));
            }
        }
    }
    assert!(problems.is_empty(), "the OpenAPI document is incomplete:\n  {}", problems.join("\n  "));
}

fn properties<'a>(doc: &'a Value, schema: &'a Value) -> Vec<(String, &'a Value)> {
    let mut out = Vec::new();
    if let Some(props) = schema["properties"].as_object() {
        out.extend(props.iter().map(|(k, v)| (k.clone(), v)));
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        out.extend(properties(doc, resolve(doc, part)));
    }
    out
}

/// A string property with nothing that tells a reader what goes in it.
fn needs_example(doc: &Value, schema: &Value) -> bool {
    if schema.get("example").is_some() || schema.get("examples").is_some() {
        return false;
    }
    let s = resolve(doc, schema);
    if s.get("example").is_some()
        || s.get("enum").is_some()
        || s.get("format").is_some()
        || s.get("properties").is_some()
    {
        return false;
    }
    let is_string = |t: &Value| t == "string";
    match &s["type"] {
        Value::String(_) => is_string(&s["type"]),
        Value::Array(types) => types.iter().any(is_string),
        _ => false,
    }
}

/// The component schemas that request bodies use, directly or nested.
fn request_schema_names(doc: &Value) -> BTreeSet<String> {
    fn collect(doc: &Value, v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(map) => {
                if let Some(name) =
                    map.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/"))
                    && out.insert(name.to_owned())
                {
                    collect(doc, &doc["components"]["schemas"][name], out);
                }
                for child in map.values() {
                    collect(doc, child, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|c| collect(doc, c, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for m in METHODS {
            if let Some(body) = item.get(m).and_then(|op| op.get("requestBody")) {
                collect(doc, body, &mut out);
            }
        }
    }
    out
}

// What the contract fuzzing found, pinned down: the server takes every request its document
// calls valid, and refuses what the document calls invalid before looking at preconditions.

on_both_backends!(
    if_match_is_star_or_one_entity_tag,
    integers_may_be_written_as_whole_floats,
    invalid_bodies_are_422_before_a_stale_if_match,
    text_lengths_count_what_was_sent,
    an_approval_body_may_be_json_null,
);

async fn if_match_is_star_or_one_entity_tag(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/households/{}", w.household_a1);
    for malformed in ["null", "\"1", "1\"", "W/1x", "\"1\", \"2\"", "\"\""] {
        app.patch(&path, &w.sec_a, json!({"notes": "甲"}), Some(malformed)).await.assert_problem(400);
    }
    let v = app.get_as(&path, &w.sec_a).await.json()["version"].as_i64().unwrap();
    app.patch(&path, &w.sec_a, json!({"notes": "甲"}), Some(&format!("\"{}\"", v + 7))).await.assert_problem(412);
    app.patch(&path, &w.sec_a, json!({"notes": "甲"}), Some("99999999999")).await.assert_problem(412);
    let tags = [format!("\"{v}\""), format!("W/\"{}\"", v + 1), format!("{}", v + 2), "*".to_owned()];
    for (i, tag) in tags.iter().enumerate() {
        let res = app.patch(&path, &w.sec_a, json!({"notes": "乙"}), Some(tag)).await;
        assert_eq!(res.status, 200, "{tag}: {}", String::from_utf8_lossy(&res.body));
        assert_eq!(res.json()["version"].as_i64(), Some(v + 1 + i as i64), "{tag}");
    }
}

async fn integers_may_be_written_as_whole_floats(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/members/{}", w.member_a1);
    let res = app.patch(&path, &w.sec_a, json!({"disability_grade": 2.0}), None).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["disability_grade"], 2);
    app.patch(&path, &w.sec_a, json!({"disability_grade": 2.5}), None).await.assert_problem(422);
    let plans = format!("/api/v1/communities/{}/service-plans/green", w.community_a);
    let body = json!({"templates": [{"name": "入户走访", "kind": "home_visit", "interval_days": 60.0}],
        "review_interval_days": 400.0});
    let res = app.put(&plans, &w.sec_a, body).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
}

async fn invalid_bodies_are_422_before_a_stale_if_match(app: TestApp) {
    let w = app.world().await;
    let member = format!("/api/v1/members/{}", w.member_a1);
    app.patch(&member, &w.sec_a, json!({"name": "长".repeat(33)}), Some("\"9\"")).await.assert_problem(422);
    let grid = format!("/api/v1/grids/{}", w.grid_a1);
    app.patch(&grid, &w.sec_a, json!({"name": ""}), Some("\"9\"")).await.assert_problem(422);
}

async fn text_lengths_count_what_was_sent(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/households/{}", w.household_a1);
    // 32 characters with a space around them are 34 as sent: longer than the schema's 32.
    let padded = format!(" {} ", "张".repeat(32));
    let body = app.patch(&path, &w.sec_a, json!({"head_name": padded}), None).await.assert_problem(422);
    assert_eq!(body["errors"][0]["code"], "too_long");
    let body = app.patch(&path, &w.sec_a, json!({"head_name": "   "}), None).await.assert_problem(422);
    assert_eq!(body["errors"][0]["code"], "blank");
    // An optional phone may be empty (none), but not whitespace.
    assert_eq!(app.patch(&path, &w.sec_a, json!({"phone": ""}), None).await.status, 200);
    app.patch(&path, &w.sec_a, json!({"phone": "  "}), None).await.assert_problem(422);
}

async fn an_approval_body_may_be_json_null(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/households/{}/tag-changes", w.household_a1);
    let proposal = app.post(&path, Some(&w.w_a1), json!({"to_tag": "yellow", "reasons": ["low_income"]})).await;
    assert_eq!(proposal.status, 201, "{}", String::from_utf8_lossy(&proposal.body));
    let id = proposal.json()["id"].as_str().unwrap().to_owned();
    // Whitespace alone is not JSON: refused, and nothing decided.
    let blank = actix_web::test::TestRequest::post()
        .uri(&format!("/api/v1/tag-changes/{id}/approve"))
        .insert_header(("authorization", format!("Bearer {}", w.sec_a)))
        .insert_header(("content-type", "application/json"))
        .set_payload("\n");
    app.call(blank).await.assert_problem(400);
    let res = app.post(&format!("/api/v1/tag-changes/{id}/approve"), Some(&w.sec_a), Value::Null).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["status"], "approved");
}
