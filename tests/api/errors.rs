use actix_web::test::TestRequest;

use crate::on_both_backends;
use crate::support::TestApp;

on_both_backends!(
    unknown_route_is_404_problem,
    wrong_method_is_405_problem,
    problems_carry_a_stable_code,
    corrupt_stored_values_are_errors_not_defaults,
);

async fn unknown_route_is_404_problem(app: TestApp) {
    let body = app.get("/api/v1/nothing-here").await.assert_problem(404);
    assert_eq!(body["type"], "urn:gridlight:problem:not-found");
}

async fn wrong_method_is_405_problem(app: TestApp) {
    let res = app.call(TestRequest::delete().uri("/healthz")).await;
    res.assert_problem(405);
    assert_eq!(res.header("allow"), Some("GET"));
}

/// Every kind of failure a client branches on carries its stable `code`.
async fn problems_carry_a_stable_code(app: TestApp) {
    use serde_json::json;
    let w = app.world().await;
    let code = |res: crate::support::TestResponse, status: u16| res.assert_problem(status)["code"].clone();
    assert_eq!(code(app.get("/api/v1/nothing-here").await, 404), "not_found");
    assert_eq!(code(app.get("/api/v1/me").await, 401), "unauthenticated");
    assert_eq!(code(app.post("/api/v1/communities", Some(&w.sec_a), json!({})).await, 422), "validation");
    let hh = format!("/api/v1/households/{}", w.household_a1);
    assert_eq!(code(app.patch(&hh, &w.sec_a, json!({"notes": "x"}), Some("\"999\"")).await, 412), "stale_version");
    let propose = format!("{hh}/tag-changes");
    crate::support::world::ok(
        &app.post(&propose, Some(&w.w_a1), json!({"to_tag": "yellow", "reasons": ["low_income"]})).await,
    );
    let again = app.post(&propose, Some(&w.w_a1), json!({"to_tag": "red", "reasons": ["serious_illness"]})).await;
    assert_eq!(code(again, 409), "proposal_pending");
    assert_eq!(app.delete_as(&format!("{hh}?reason=moved_out"), &w.sec_a).await.status, 200);
    let member = json!({"name": "甲", "gender": "male", "relation": "head"});
    assert_eq!(code(app.post(&format!("{hh}/members"), Some(&w.sec_a), member).await, 409), "household_removed");
    let mut body = json!({"id": w.household_a2, "grid_id": w.grid_a2, "head_name": "x",
                          "address": {"building": "1", "unit": "1", "room": "1"}});
    assert_eq!(code(app.post("/api/v1/households", Some(&w.sec_a), body.clone()).await, 409), "id_conflict");
    body["head_name"] = json!("\u{0}");
    assert_eq!(code(app.post("/api/v1/households", Some(&w.sec_a), body).await, 422), "validation");
    // The codes are listed in the published document.
    let doc: serde_json::Value = serde_json::from_str(&gridlight::api::openapi_json()).unwrap();
    let listed = doc["components"]["schemas"]["ErrorCode"]["enum"].as_array().cloned().unwrap_or_default();
    for c in ["id_conflict", "household_removed", "proposal_pending", "stale_version", "visit_locked", "rate_limited"] {
        assert!(listed.iter().any(|l| l == c), "{c} not in {listed:?}");
    }
}

/// A stored value that names no variant is an error (500, logged), never quietly a default.
async fn corrupt_stored_values_are_errors_not_defaults(app: TestApp) {
    use diesel::prelude::*;
    use gridlight::db::schema::households;
    let w = app.world().await;
    let id = w.household_a1.clone();
    app.state
        .db
        .write(move |c| Ok(diesel::update(households::table.find(&id)).set(households::tag.eq("purple")).execute(c)?))
        .await
        .expect_err("the CHECK constraint refuses it on both backends");
    // A JSON column that does not parse (no constraint guards it).
    let id = w.household_a1.clone();
    app.state
        .db
        .write(move |c| {
            Ok(diesel::update(households::table.find(&id)).set(households::tag_reasons.eq("not json")).execute(c)?)
        })
        .await
        .unwrap();
    let res = app.get_as(&format!("/api/v1/households/{}", w.household_a1), &w.sec_a).await;
    assert_eq!(res.assert_problem(500)["code"], "internal");
}
