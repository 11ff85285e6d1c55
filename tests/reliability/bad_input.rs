//! Bad input against a real server: oversized bodies (declared and chunked) and request lines,
//! deeply nested JSON, huge `limit`s, invalid UTF-8, wrong content types, unknown fields on write
//! endpoints and malformed `Authorization` headers. Each gets a clear 4xx problem+json (except what
//! the HTTP parser refuses before the application: a bare 400), nothing is written, and the server
//! keeps serving.

use diesel::prelude::*;
use serde_json::{Value, json};

use gridlight::db::DbConn;
use gridlight::db::schema::{
    audit_events, households, login_failures, members, refresh_tokens, tag_changes, tasks, users, visits,
};

use crate::http::{Client, Response};
use crate::load::Visit;
use crate::server::{Server, Store, report};
use crate::world::{self, World};

#[test]
fn sqlite() {
    run(Store::sqlite());
}

#[test]
fn postgres() {
    if let Some(store) = Store::postgres() {
        run(store);
    }
}

/// Row counts of every table a request could write to.
fn counts(conn: &mut DbConn) -> Vec<(&'static str, i64)> {
    vec![
        ("visits", visits::table.count().get_result(conn).unwrap()),
        ("households", households::table.count().get_result(conn).unwrap()),
        ("members", members::table.count().get_result(conn).unwrap()),
        ("tag_changes", tag_changes::table.count().get_result(conn).unwrap()),
        ("tasks", tasks::table.count().get_result(conn).unwrap()),
        ("users", users::table.count().get_result(conn).unwrap()),
        ("audit_events", audit_events::table.count().get_result(conn).unwrap()),
        ("refresh_tokens", refresh_tokens::table.count().get_result(conn).unwrap()),
        ("login_failures", login_failures::table.count().get_result(conn).unwrap()),
        (
            "household versions",
            households::table
                .select(diesel::dsl::sum(households::version))
                .first::<Option<i64>>(conn)
                .unwrap()
                .unwrap_or(0),
        ),
    ]
}

struct Case {
    name: String,
    allowed: &'static [u16],
    /// Whether the answer must be problem+json (everything the application answers).
    problem: bool,
    res: Response,
}

const MIB: usize = 1024 * 1024;

fn json_request(method: &str, path: &str, token: Option<&str>, content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn cases(client: &Client, world: &World) -> Vec<Case> {
    let mut out = Vec::new();
    let mut case = |name: &str, allowed: &'static [u16], res: std::io::Result<Response>| {
        let res = res.unwrap_or_else(|e| panic!("{name}: no answer: {e}"));
        // `raw …` cases are refused by the HTTP parser before the application, `lenient …` ones
        // are answered normally: neither needs to be problem+json.
        let problem = !(name.starts_with("raw ") || name.starts_with("lenient "));
        out.push(Case { name: name.to_owned(), allowed, problem, res });
    };
    let worker = world.workers[0].as_str();
    let household = world.households[0].as_str();
    let good = Visit::new(household, "home_visit", "bad input: the good body".into()).body;
    let with = |extra: (&str, Value)| {
        let mut b = good.clone();
        b[extra.0] = extra.1;
        b
    };
    let json_ct = Some("application/json");

    // Oversized bodies: a declared length over the 1 MiB limit, and the same streamed in chunks.
    let big = with(("notes", json!("很".repeat(MIB / 2)))).to_string().into_bytes();
    case(
        "visit body of 1.5 MiB",
        &[413],
        client.raw(&json_request("POST", "/api/v1/visits", Some(worker), json_ct, &big)),
    );
    let big_household = json!({"grid_id": world.grid, "address": {"building": "1", "unit": "1", "room": "1"},
                               "head_name": "x", "notes": "x".repeat(2 * MIB)});
    case(
        "household body of 2 MiB",
        &[413],
        client.raw(&json_request(
            "POST",
            "/api/v1/households",
            Some(&world.secretary),
            json_ct,
            big_household.to_string().as_bytes(),
        )),
    );
    let mut chunked = format!(
        "POST /api/v1/visits HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {worker}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for piece in big.chunks(64 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    case("chunked visit body of 1.5 MiB", &[413], client.raw(&chunked));

    // Deep nesting: far past any sane depth, at the top and inside a field.
    let depth = 100_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    // serde refuses an array where a visit object belongs at the first level (422) …
    case(
        "100000-deep JSON array as a visit",
        &[400, 422],
        client.raw(&json_request("POST", "/api/v1/visits", Some(worker), json_ct, nested.as_bytes())),
    );
    // … and skips an ignored value without recursing: the refresh just fails.
    let padded = format!(r#"{{"refresh_token":"not-a-token","pad":{nested}}}"#);
    case(
        "100000-deep JSON in an ignored field",
        &[400, 401],
        client.raw(&json_request("POST", "/api/v1/auth/refresh", None, json_ct, padded.as_bytes())),
    );
    let nested_field = format!(
        r#"{{"household_id":"{household}","kind":"home_visit","visited_at":{}0{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    case(
        "100000-deep JSON in a field",
        &[400, 422],
        client.raw(&json_request("POST", "/api/v1/visits", Some(worker), json_ct, nested_field.as_bytes())),
    );
    let nested_objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    case(
        "100000-deep JSON objects",
        &[400, 422],
        client.raw(&json_request(
            "PATCH",
            &format!("/api/v1/households/{household}"),
            Some(worker),
            json_ct,
            nested_objects.as_bytes(),
        )),
    );

    // Huge and nonsensical limits.
    case("limit=100000", &[400, 422], client.get("/api/v1/visits?limit=100000", Some(worker)));
    case("limit=2^64+1", &[400, 422], client.get("/api/v1/households?limit=18446744073709551617", Some(worker)));
    case("limit=-1", &[400, 422], client.get("/api/v1/tasks?limit=-1", Some(worker)));
    case("limit=0", &[400, 422], client.get("/api/v1/tag-changes?limit=0", Some(worker)));

    // Invalid UTF-8 in a body, a query and a header.
    let mut bad_utf8 = br#"{"household_id":""#.to_vec();
    bad_utf8.extend_from_slice(b"\xff\xfe\xc3\x28");
    bad_utf8.extend_from_slice(br#"","kind":"home_visit","visited_at":"2026-01-01T00:00:00Z"}"#);
    case(
        "invalid UTF-8 in a JSON body",
        &[400],
        client.raw(&json_request("POST", "/api/v1/visits", Some(worker), json_ct, &bad_utf8)),
    );
    let member = b"{\"name\":\"\xe5\xbc\x80\x80\",\"gender\":\"male\",\"relation\":\"other\"}";
    case(
        "invalid UTF-8 in a member's name",
        &[400],
        client.raw(&json_request(
            "POST",
            &format!("/api/v1/households/{household}/members"),
            Some(worker),
            json_ct,
            member,
        )),
    );
    case("invalid UTF-8 in a path", &[400, 404], client.get("/api/v1/households/%FF%FE%C3%28", Some(worker)));
    // Refused by the HTTP parser before the application sees it: a bare 400.
    case(
        "raw invalid UTF-8 in the request line",
        &[400],
        client.raw(b"GET /api/v1/households?q=\xff\xfe HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    );
    // A request line of 100 KB: past the `http` crate's URI limit (65,534 bytes) but inside
    // actix-http's 128 KiB head buffer. The HTTP/1 dispatcher answers a bare 400 before the
    // application sees it, and no setting or hook lets the application shape that answer
    // (see README, "Operations").
    let long_line = format!(
        "GET /api/v1/households?q={} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {worker}\r\n\
         Connection: close\r\n\r\n",
        "a".repeat(100_000)
    );
    case("raw request line of 100 KB", &[400, 414, 431], client.raw(long_line.as_bytes()));
    // actix decodes query strings lossily (U+FFFD): a search for garbage finds nothing.
    case(
        "lenient invalid UTF-8 in a query",
        &[200, 400],
        client.get("/api/v1/households?q=%FF%FE%C3%28", Some(worker)),
    );

    // Wrong or missing content types on a valid body.
    let body = good.to_string();
    for ct in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml"]
    {
        case(
            &format!("visit sent as {ct}"),
            &[415],
            client.send("POST", "/api/v1/visits", Some(worker), Some((ct, body.as_bytes())), &[]),
        );
    }
    case(
        "visit with no content type",
        &[415],
        client.raw(&json_request("POST", "/api/v1/visits", Some(worker), None, body.as_bytes())),
    );

    // Unknown fields on write endpoints: a typo or an attempt to set what the client may not.
    case(
        "visit with an unknown field",
        &[422],
        client.post("/api/v1/visits", Some(worker), &with(("worker_id", json!("someone-else")))),
    );
    case(
        "household edit setting its tag",
        &[422],
        client.patch(&format!("/api/v1/households/{household}"), worker, &json!({"notes": "x", "tag": "green"})),
    );
    case(
        "household edit setting its version",
        &[422],
        client.patch(&format!("/api/v1/households/{household}"), worker, &json!({"version": 99})),
    );
    case(
        "household created with a community_id",
        &[422],
        client.post(
            "/api/v1/households",
            Some(&world.secretary),
            &json!({"grid_id": world.grid, "address": {"building": "1", "unit": "1", "room": "1"}, "head_name": "张三",
                    "community_id": world.community}),
        ),
    );
    case(
        "member with an unknown field",
        &[422],
        client.post(
            &format!("/api/v1/households/{household}/members"),
            Some(worker),
            &json!({"name": "张三", "gender": "male", "relation": "other", "removed_at": "2026-01-01T00:00:00Z"}),
        ),
    );
    case(
        "tag change with an unknown field",
        &[422],
        client.post(
            &format!("/api/v1/households/{household}/tag-changes"),
            Some(&world.secretary),
            &json!({"to_tag": "red", "reasons": ["serious_illness"], "status": "approved"}),
        ),
    );
    case(
        "user with an unknown field",
        &[422],
        client.post(
            "/api/v1/users",
            Some(&world.admin),
            &json!({"username": "sneaky", "password": "long enough password", "display_name": "x", "role": "admin", "active": true}),
        ),
    );

    // Malformed credentials on a valid write.
    let tampered = {
        let mut t = worker.to_owned();
        let last = t.pop().unwrap();
        t.push(if last == 'A' { 'B' } else { 'A' });
        t
    };
    let headers: Vec<(&str, String)> = vec![
        ("no Authorization", String::new()),
        ("Authorization: Bearer", "Bearer".into()),
        ("Authorization: Bearer (empty)", "Bearer ".into()),
        ("Authorization: Basic", "Basic d29ya2VyLTA6cmVsaWFiaWxpdHktcGFzc3BocmFzZQ==".into()),
        ("Authorization: Bearer not-a-jwt", "Bearer not.a.jwt".into()),
        ("Authorization: token without scheme", worker.to_owned()),
        ("Authorization: tampered signature", format!("Bearer {tampered}")),
        ("Authorization: token twice", format!("Bearer {worker} {worker}")),
        ("Authorization: alg none", format!("Bearer {}", unsigned(worker))),
    ];
    for (name, value) in headers {
        let extra: Vec<(&str, &str)> = if value.is_empty() { vec![] } else { vec![("Authorization", value.as_str())] };
        case(
            name,
            &[401],
            client.send("POST", "/api/v1/visits", None, Some(("application/json", body.as_bytes())), &extra),
        );
    }
    let mut raw = b"POST /api/v1/visits HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer \xff\xfe\x80\r\n\
                    Content-Type: application/json\r\n"
        .to_vec();
    raw.extend_from_slice(format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
    case("Authorization: invalid UTF-8", &[400, 401], client.raw(&raw));
    out
}

/// The same claims with `alg: none` and no signature.
fn unsigned(token: &str) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = token.split('.').nth(1).unwrap_or_default();
    format!("{}.{claims}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#))
}

fn run(store: Store) {
    let server = Server::start(&store, "gridlight", &[]);
    let client = server.client();
    let world = world::build(&store, &client, 1, 1);
    let before = counts(&mut store.connect());
    let cases = cases(&client, &world);
    let after = counts(&mut store.connect());
    let alive = client.get("/readyz", None).is_ok_and(|r| r.status == 200);
    // A good request still works afterwards (and proves the bad ones were not just refused by a
    // broken server).
    let good = Visit::new(&world.households[0], "home_visit", "bad input: afterwards".into());
    let accepted = good.send(&client, &world.workers[0]).map(|r| r.status).unwrap_or(0);
    let logged_errors = server.logged_errors();

    let mut lines: Vec<String> = cases
        .iter()
        .map(|c| {
            let problem = if c.res.is_problem() { "problem+json" } else { "not problem+json" };
            format!("{:<40} {} {problem}, {} bytes, {:?}", c.name, c.res.status, c.res.body.len(), c.res.elapsed)
        })
        .collect();
    let changed: Vec<String> =
        before.iter().zip(&after).filter(|(b, a)| b != a).map(|(b, a)| format!("{}: {} → {}", b.0, b.1, a.1)).collect();
    lines.push(format!(
        "rows written by the {} bad requests: {}",
        cases.len(),
        if changed.is_empty() { "none".into() } else { changed.join(", ") }
    ));
    lines.push(format!(
        "server ready afterwards: {alive}; a good visit afterwards: {accepted}; internal errors logged: {}",
        logged_errors.len()
    ));
    report(&format!("bad_input::{}", store.backend.name()), &lines);

    let wrong: Vec<String> = cases
        .iter()
        .filter(|c| !c.allowed.contains(&c.res.status) || (c.problem && c.res.status >= 400 && !c.res.is_problem()))
        .map(|c| {
            format!(
                "{}: {} (want {:?}) {:?} {}",
                c.name,
                c.res.status,
                c.allowed,
                c.res.header("content-type"),
                c.res.text()
            )
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
    for c in cases.iter().filter(|c| c.res.status == 401) {
        assert_eq!(c.res.header("www-authenticate"), Some("Bearer"), "{}", c.name);
    }
    for c in &cases {
        let body = c.res.text();
        assert!(
            !body.contains("/work/") && !body.contains("src/") && !body.contains("SELECT"),
            "{} leaks: {body}",
            c.name
        );
    }
    assert!(changed.is_empty(), "bad requests wrote: {changed:?}");
    assert!(alive, "the server stopped being ready");
    assert_eq!(accepted, 201, "a good visit after the bad input");
    assert!(logged_errors.is_empty(), "internal errors: {logged_errors:#?}");
}
