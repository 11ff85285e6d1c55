use actix_web::test::TestRequest;

use crate::on_both_backends;
use crate::support::TestApp;

on_both_backends!(
    unknown_route_is_404_problem,
    wrong_method_is_405_problem,
    problems_carry_a_stable_code,
    corrupt_stored_values_are_errors_not_defaults,
    a_corrupt_stored_timezone_is_an_error_not_shanghai,
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

/// Timezones are checked when written: one stored that does not parse is corruption (500,
/// logged), wherever a community's calendar is read, never quietly `Asia/Shanghai`.
async fn a_corrupt_stored_timezone_is_an_error_not_shanghai(app: TestApp) {
    use diesel::prelude::*;
    use gridlight::db::schema::communities;
    let w = app.world().await;
    let id = w.community_a.clone();
    app.state
        .db
        .write(move |c| {
            Ok(diesel::update(communities::table.find(&id)).set(communities::timezone.eq("Mars/Olympus")).execute(c)?)
        })
        .await
        .unwrap();
    for path in [format!("/api/v1/households/{}", w.household_a1), "/api/v1/stats/overview".to_owned()] {
        let res = app.get_as(&path, &w.sec_a).await;
        assert_eq!(res.assert_problem(500)["code"], "internal", "{path}");
    }
    let res = app.get_as("/api/v1/reports/evaluation?period=2026", &w.sec_a).await;
    assert_eq!(res.assert_problem(500)["code"], "internal");
    // Another community's calendar is unaffected.
    assert_eq!(app.get_as("/api/v1/stats/overview", &w.sec_b).await.status.as_u16(), 200);
}
