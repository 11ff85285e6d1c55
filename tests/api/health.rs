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
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");

    let res = app.call(TestRequest::get().uri("/healthz").insert_header(("x-request-id", "client-abc_123"))).await;
    assert_eq!(res.header("x-request-id"), Some("client-abc_123"));
    // Something that is not a plain token is replaced, not echoed into logs.
    let res = app.call(TestRequest::get().uri("/healthz").insert_header(("x-request-id", "a b\"c"))).await;
    assert_ne!(res.header("x-request-id"), Some("a b\"c"));
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
