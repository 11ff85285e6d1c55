use std::io::Read;

use actix_web::test::TestRequest;

use crate::on_both_backends;
use crate::support::TestApp;

on_both_backends!(
    healthz_and_request_ids,
    readyz_names_the_backend,
    metrics_count_requests,
    responses_are_compressed,
    docs_are_served_offline
);

async fn healthz_and_request_ids(app: TestApp) {
    let res = app.get("/healthz").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["status"], "ok");
    let generated = res.header("x-request-id").expect("a request id is always returned");
    let is_server_id = |id: &str| uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 7);
    assert!(is_server_id(generated), "{generated}");

    // The answer carries the server's own id, the one its logs and audit events record; a
    // client's id is only logged beside it, never echoed or stored.
    for client in ["client-abc_123", "a b\"c", "01936f4e-0000-7000-8000-000000000000"] {
        let req = || TestRequest::get().uri("/healthz").insert_header(("x-request-id", client));
        let first = app.call(req()).await;
        let second = app.call(req()).await;
        let (a, b) = (first.header("x-request-id").unwrap(), second.header("x-request-id").unwrap());
        assert!(is_server_id(a) && is_server_id(b), "{client}: {a}, {b}");
        assert_ne!(a, client);
        assert_ne!(a, b, "each request gets an id of its own");
    }
}

async fn readyz_names_the_backend(app: TestApp) {
    let res = app.get("/readyz").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), serde_json::json!({"status": "ready", "database": app.backend.name()}));
}

async fn metrics_count_requests(app: TestApp) {
    for _ in 0..3 {
        assert_eq!(app.get("/healthz").await.status, 200);
    }
    assert_eq!(app.get("/no/such/route").await.status, 404);
    let res = app.get("/metrics").await;
    assert_eq!(res.status, 200);
    assert!(res.header("content-type").unwrap().starts_with("text/plain"));
    let text = String::from_utf8(res.body.to_vec()).unwrap();
    assert!(text.contains(r#"gridlight_http_requests_total{method="GET",route="/healthz",status="200"} 3"#), "{text}");
    // Unknown paths are counted under one label, so a scanner cannot blow up the series count.
    assert!(text.contains(r#"gridlight_http_requests_total{method="GET",route="unmatched",status="404"} 1"#), "{text}");
    assert!(
        text.contains(r#"gridlight_http_request_duration_seconds_bucket{method="GET",route="/healthz",le="0.005"}"#)
    );
    assert!(text.contains(r#"gridlight_db_pool_connections{pool="read",state="max"} 3"#), "{text}");
}

async fn responses_are_compressed(app: TestApp) {
    let res = app.call(TestRequest::get().uri("/openapi.json").insert_header(("accept-encoding", "gzip"))).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-encoding"), Some("gzip"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&res.body[..]).read_to_string(&mut text).expect("valid gzip");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["info"]["title"], "Gridlight");

    let plain = app.get("/openapi.json").await;
    assert_eq!(plain.header("content-encoding"), None);
    assert!(plain.body.len() > res.body.len());
}

async fn docs_are_served_offline(app: TestApp) {
    let res = app.get("/docs").await;
    assert_eq!(res.status, 308);
    assert_eq!(res.header("location"), Some("/docs/"));
    let res = app.get("/docs/").await;
    assert_eq!(res.status, 200);
    let html = String::from_utf8_lossy(&res.body).to_string();
    assert!(html.contains("swagger-ui"), "{html}");
    // The assets come from the binary, not from a CDN.
    assert!(!html.contains("https://"), "{html}");
    let js = app.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(js.status, 200);
    assert!(js.body.len() > 100_000);
}
