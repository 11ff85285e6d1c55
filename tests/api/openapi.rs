use crate::on_both_backends;
use crate::support::TestApp;

/// The committed document is a snapshot of what the code serves; `gridlight openapi` renews it.
#[test]
fn committed_document_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
        .expect("openapi/openapi.json is committed");
    assert!(
        committed == gridlight::api::openapi_json(),
        "openapi/openapi.json is stale: run `cargo run -- openapi` and commit the result"
    );
}

on_both_backends!(served_document_is_the_committed_one);

async fn served_document_is_the_committed_one(app: TestApp) {
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status, 200);
    let served: serde_json::Value = res.json();
    let code: serde_json::Value = serde_json::from_str(&gridlight::api::openapi_json()).unwrap();
    assert_eq!(served, code);
    assert!(served["openapi"].as_str().unwrap().starts_with("3."));
}
