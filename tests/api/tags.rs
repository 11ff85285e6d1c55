//! The traffic light: reasons, proposals and their review, direct settings, history, review
//! dates and the suggestion on households built through the API.

use chrono::{Days, NaiveDate};
use diesel::prelude::*;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::world::{World, id_number, ok};
use crate::support::{TestApp, TestResponse};

on_both_backends!(
    reason_catalogue,
    worker_proposes_secretary_approves,
    rejection_needs_a_note_and_changes_nothing,
    one_pending_proposal_per_household,
    secretary_and_admin_set_directly,
    scope_of_tag_changes,
    validation_of_tag_changes,
    history_is_newest_first,
    review_due_dates_follow_the_tag,
    review_due_list,
    suggestions_on_constructed_households,
    proposals_and_decisions_are_audited,
    removed_households_keep_their_tag,
    approval_applies_against_the_current_tag,
);

async fn me(app: &TestApp, token: &str) -> String {
    ok(&app.get_as("/api/v1/me", token).await)["id"].as_str().unwrap().to_owned()
}

async fn propose(app: &TestApp, token: &str, household: &str, body: Value) -> TestResponse {
    app.post(&format!("/api/v1/households/{household}/tag-changes"), Some(token), body).await
}

async fn approve(app: &TestApp, token: &str, change: &str, body: Value) -> TestResponse {
    app.post(&format!("/api/v1/tag-changes/{change}/approve"), Some(token), body).await
}

async fn reject(app: &TestApp, token: &str, change: &str, body: Value) -> TestResponse {
    app.post(&format!("/api/v1/tag-changes/{change}/reject"), Some(token), body).await
}

async fn household(app: &TestApp, token: &str, id: &str) -> Value {
    ok(&app.get_as(&format!("/api/v1/households/{id}"), token).await)
}

async fn history(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    ok(&app.get_as(&format!("/api/v1/households/{id}/tag-history"), token).await)["items"].as_array().unwrap().clone()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect()
}

/// Today in the world's communities (Asia/Shanghai), plus some days.
fn today_plus(days: u64) -> String {
    let today = gridlight::store::communities::today_in("Asia/Shanghai");
    today.checked_add_days(Days::new(days)).unwrap().to_string()
}

async fn reason_catalogue(app: TestApp) {
    let w = app.world().await;
    let res = app.get_as("/api/v1/tag-reasons", &w.w_a1).await;
    let body = ok(&res);
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 15);
    assert_eq!(body["next_cursor"], Value::Null);
    assert_eq!(
        items[0],
        json!({"code": "elderly_living_alone", "label_zh": "独居老人", "label_en": "Elderly person living alone", "suggests": "red"})
    );
    let low = items.iter().find(|i| i["code"] == "low_income").unwrap();
    assert_eq!(low["label_zh"], "低保");
    assert_eq!(low["suggests"], "yellow");
    let reds = items.iter().filter(|i| i["suggests"] == "red").count();
    assert_eq!(reds, 5);
    assert!(items.iter().all(|i| i["suggests"] != "green"));
    // Every role reads it; nobody without a token does.
    assert_eq!(ok(&app.get_as("/api/v1/tag-reasons", &w.sec_b).await), body);
    assert_eq!(ok(&app.get_as("/api/v1/tag-reasons", &w.admin).await), body);
    let res = app.get("/api/v1/tag-reasons").await;
    res.assert_problem(401);
    assert_eq!(res.header("www-authenticate"), Some("Bearer"));
}

async fn worker_proposes_secretary_approves(app: TestApp) {
    let w = app.world().await;
    let sec_a = me(&app, &w.sec_a).await;
    let before = household(&app, &w.w_a1, &w.household_a1).await;
    assert_eq!(before["tag"], "green");

    let res = propose(
        &app,
        &w.w_a1,
        &w.household_a1,
        json!({"to_tag": "red", "reasons": ["serious_illness", "elderly_living_alone"], "note": "老人独居，子女在外地"}),
    )
    .await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    let p = res.json();
    assert_eq!(p["status"], "pending");
    assert_eq!(p["from_tag"], "green");
    assert_eq!(p["to_tag"], "red");
    // Stored in catalogue order.
    assert_eq!(p["reasons"], json!(["elderly_living_alone", "serious_illness"]));
    assert_eq!(p["note"], "老人独居，子女在外地");
    assert_eq!(p["proposed_by"], w.user_w_a1.as_str());
    assert_eq!(p["household_id"], w.household_a1.as_str());
    assert_eq!(p["community_id"], w.community_a.as_str());
    assert_eq!(p["grid_id"], w.grid_a1.as_str());
    assert_eq!(p["decided_by"], Value::Null);
    assert_eq!(p["decided_at"], Value::Null);
    let id = p["id"].as_str().unwrap().to_owned();

    // Pending changes nothing.
    let hh = household(&app, &w.w_a1, &w.household_a1).await;
    assert_eq!(hh["tag"], "green");
    assert_eq!(hh["version"], before["version"]);
    assert!(history(&app, &w.sec_a, &w.household_a1).await.is_empty());

    // The secretary's queue shows it; the worker sees it too.
    let queue = ok(&app.get_as("/api/v1/tag-changes?status=pending", &w.sec_a).await);
    assert_eq!(ids(&queue), vec![id.clone()]);
    assert_eq!(queue["next_cursor"], Value::Null);
    assert_eq!(ids(&ok(&app.get_as("/api/v1/tag-changes", &w.w_a1).await)), vec![id.clone()]);
    assert!(ids(&ok(&app.get_as("/api/v1/tag-changes?status=approved", &w.sec_a).await)).is_empty());
    assert_eq!(ok(&app.get_as(&format!("/api/v1/tag-changes/{id}"), &w.w_a1).await)["status"], "pending");

    // Approve: applied at once.
    let res = approve(&app, &w.sec_a, &id, json!({"note": "已入户核实"})).await;
    let d = ok(&res);
    assert_eq!(d["status"], "approved");
    assert_eq!(d["decided_by"], sec_a.as_str());
    assert_eq!(d["decision_note"], "已入户核实");
    assert!(d["decided_at"].as_str().is_some());
    assert_eq!(d["from_tag"], "green");

    let hh = household(&app, &w.w_a1, &w.household_a1).await;
    assert_eq!(hh["tag"], "red");
    assert_eq!(hh["tag_reasons"], json!(["elderly_living_alone", "serious_illness"]));
    assert_eq!(hh["tag_note"], "老人独居，子女在外地");
    assert_eq!(hh["tag_set_by"], sec_a.as_str());
    assert_eq!(hh["tag_set_at"], d["decided_at"]);
    assert_eq!(hh["tag_review_due_on"], today_plus(30).as_str());
    assert_eq!(hh["version"], before["version"].as_i64().unwrap() + 1);
    // The recorded reasons are part of the suggestion now.
    assert!(hh["suggestion"]["explanation"].as_array().unwrap().iter().any(|i| i["reason"] == "serious_illness"));

    let h = history(&app, &w.w_a1, &w.household_a1).await;
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["id"], id.as_str());
    assert_eq!(h[0]["proposed_by"], w.user_w_a1.as_str());

    // Queue is empty; the decided one is listed as approved.
    assert!(ids(&ok(&app.get_as("/api/v1/tag-changes?status=pending", &w.sec_a).await)).is_empty());
    assert_eq!(ids(&ok(&app.get_as("/api/v1/tag-changes?status=approved", &w.sec_a).await)), vec![id.clone()]);
    // Deciding it again is a conflict, either way.
    approve(&app, &w.sec_a, &id, json!({})).await.assert_problem(409);
    reject(&app, &w.sec_a, &id, json!({"note": "改主意"})).await.assert_problem(409);

    // The task invariant was re-established in the same transaction: the open tasks follow red.
    let household_id = w.household_a1.clone();
    let open: Vec<(String, String)> = app
        .state
        .db
        .read(move |conn| {
            use gridlight::db::schema::tasks;
            Ok(tasks::table
                .filter(tasks::household_id.eq(household_id))
                .filter(tasks::status.eq("open"))
                .select((tasks::tag, tasks::kind))
                .order(tasks::kind.asc())
                .load(conn)?)
        })
        .await
        .unwrap();
    assert_eq!(open, vec![("red".to_owned(), "home_visit".to_owned()), ("red".to_owned(), "phone_call".to_owned())]);
}

async fn rejection_needs_a_note_and_changes_nothing(app: TestApp) {
    let w = app.world().await;
    let sec_a = me(&app, &w.sec_a).await;
    let p = ok(&propose(&app, &w.w_a2, &w.household_a2, json!({"to_tag": "yellow", "reasons": ["unemployed"]})).await);
    let id = p["id"].as_str().unwrap();
    let before = household(&app, &w.sec_a, &w.household_a2).await;

    let body = reject(&app, &w.sec_a, id, json!({})).await.assert_problem(422);
    assert_eq!(body["errors"][0]["field"], "note");
    assert_eq!(body["errors"][0]["code"], "required");
    reject(&app, &w.sec_a, id, json!({"note": "   "})).await.assert_problem(422);
    // No body at all is no note either.
    let res = app
        .call(
            actix_web::test::TestRequest::post()
                .uri(&format!("/api/v1/tag-changes/{id}/reject"))
                .insert_header(("authorization", format!("Bearer {}", w.sec_a))),
        )
        .await;
    res.assert_problem(422);
    assert_eq!(ok(&app.get_as(&format!("/api/v1/tag-changes/{id}"), &w.sec_a).await)["status"], "pending");

    let d = ok(&reject(&app, &w.sec_a, id, json!({"note": "已就业，无需关注"})).await);
    assert_eq!(d["status"], "rejected");
    assert_eq!(d["decision_note"], "已就业，无需关注");
    assert_eq!(d["decided_by"], sec_a.as_str());
    assert_eq!(d["from_tag"], "green");
    assert_eq!(d["to_tag"], "yellow");

    // The household is untouched and the history empty.
    let after = household(&app, &w.sec_a, &w.household_a2).await;
    assert_eq!(after, before);
    assert_eq!(after["tag"], "green");
    assert!(history(&app, &w.sec_a, &w.household_a2).await.is_empty());
    assert_eq!(ids(&ok(&app.get_as("/api/v1/tag-changes?status=rejected", &w.w_a2).await)), vec![id.to_owned()]);
    // Decided is decided.
    reject(&app, &w.sec_a, id, json!({"note": "again"})).await.assert_problem(409);
    approve(&app, &w.sec_a, id, json!({})).await.assert_problem(409);
    // A new proposal may follow a rejection.
    let again = propose(&app, &w.w_a2, &w.household_a2, json!({"to_tag": "yellow", "reasons": ["unemployed"]})).await;
    assert_eq!(again.status, 201);
    // An approval needs no body at all.
    let again_id = again.json()["id"].as_str().unwrap().to_owned();
    let res = app
        .call(
            actix_web::test::TestRequest::post()
                .uri(&format!("/api/v1/tag-changes/{again_id}/approve"))
                .insert_header(("authorization", format!("Bearer {}", w.sec_a))),
        )
        .await;
    assert_eq!(ok(&res)["status"], "approved");
    assert_eq!(ok(&res)["decision_note"], Value::Null);
    assert_eq!(household(&app, &w.sec_a, &w.household_a2).await["tag"], "yellow");
}

async fn one_pending_proposal_per_household(app: TestApp) {
    let w = app.world().await;
    let first =
        ok(&propose(&app, &w.w_a1, &w.household_a1, json!({"to_tag": "red", "reasons": ["elderly_living_alone"]}))
            .await);
    let second =
        propose(&app, &w.w_a1, &w.household_a1, json!({"to_tag": "yellow", "reasons": ["aged_80_plus"]})).await;
    let problem = second.assert_problem(409);
    assert!(problem["detail"].as_str().unwrap().contains("pending"), "{problem}");
    // The same from another worker of the grid.
    let other = app.user("w-a1-b", gridlight::domain::Role::GridWorker, Some(&w.community_a)).await;
    app.assign(&w.sec_a, &w.grid_a1, &[(w.user_w_a1.as_str(), true), (other.as_str(), false)]).await;
    let token = app.token("w-a1-b").await;
    propose(&app, &token, &w.household_a1, json!({"to_tag": "yellow", "reasons": ["aged_80_plus"]}))
        .await
        .assert_problem(409);
    // Other households are not affected.
    assert_eq!(
        propose(&app, &w.w_a2, &w.household_a2, json!({"to_tag": "yellow", "reasons": ["low_income"]})).await.status,
        201
    );
    let pending =
        ok(&app.get_as(&format!("/api/v1/tag-changes?status=pending&household_id={}", w.household_a1), &w.sec_a).await);
    assert_eq!(ids(&pending), vec![first["id"].as_str().unwrap().to_owned()]);
    // Once decided, the next proposal is accepted.
    ok(&approve(&app, &w.sec_a, first["id"].as_str().unwrap(), json!({})).await);
    let next = propose(&app, &token, &w.household_a1, json!({"to_tag": "yellow", "reasons": ["aged_80_plus"]})).await;
    assert_eq!(next.status, 201);
    assert_eq!(next.json()["from_tag"], "red");
}

async fn secretary_and_admin_set_directly(app: TestApp) {
    let w = app.world().await;
    let sec_a = me(&app, &w.sec_a).await;
    let admin = me(&app, &w.admin).await;
    let res = propose(
        &app,
        &w.sec_a,
        &w.household_a1,
        json!({"to_tag": "yellow", "reasons": ["aged_80_plus"], "note": "高龄"}),
    )
    .await;
    assert_eq!(res.status, 201);
    let c = res.json();
    assert_eq!(c["status"], "approved");
    assert_eq!(c["proposed_by"], sec_a.as_str());
    assert_eq!(c["decided_by"], sec_a.as_str());
    assert_eq!(c["decided_at"], c["proposed_at"]);
    assert_eq!(c["from_tag"], "green");
    let hh = household(&app, &w.w_a1, &w.household_a1).await;
    assert_eq!(hh["tag"], "yellow");
    assert_eq!(hh["tag_reasons"], json!(["aged_80_plus"]));
    assert_eq!(hh["tag_note"], "高龄");
    assert_eq!(hh["tag_set_by"], sec_a.as_str());
    assert_eq!(hh["tag_review_due_on"], today_plus(90).as_str());
    assert!(ids(&ok(&app.get_as("/api/v1/tag-changes?status=pending", &w.sec_a).await)).is_empty());

    // An administrator too; and If-Match guards against a stale view of the household.
    let path = format!("/api/v1/households/{}/tag-changes", w.household_b1);
    let stale = app
        .call(
            actix_web::test::TestRequest::post()
                .uri(&path)
                .insert_header(("authorization", format!("Bearer {}", w.admin)))
                .insert_header(("if-match", "\"99\""))
                .set_json(json!({"to_tag": "red", "reasons": ["extreme_poverty"]})),
        )
        .await;
    stale.assert_problem(412);
    let version = household(&app, &w.admin, &w.household_b1).await["version"].as_i64().unwrap();
    let res = app
        .call(
            actix_web::test::TestRequest::post()
                .uri(&path)
                .insert_header(("authorization", format!("Bearer {}", w.admin)))
                .insert_header(("if-match", format!("\"{version}\"")))
                .set_json(json!({"to_tag": "red", "reasons": ["extreme_poverty"]})),
        )
        .await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["decided_by"], admin.as_str());
    let hh = household(&app, &w.sec_b, &w.household_b1).await;
    assert_eq!(hh["tag"], "red");
    assert_eq!(hh["tag_set_by"], admin.as_str());
    assert_eq!(hh["version"], version + 1);

    // Back to green with no reasons: allowed, and it clears reasons and note.
    let res = propose(&app, &w.sec_a, &w.household_a1, json!({"to_tag": "green"})).await;
    assert_eq!(res.status, 201);
    let hh = household(&app, &w.sec_a, &w.household_a1).await;
    assert_eq!(hh["tag"], "green");
    assert_eq!(hh["tag_reasons"], json!([]));
    assert_eq!(hh["tag_note"], Value::Null);
    assert_eq!(hh["tag_review_due_on"], today_plus(365).as_str());
}

async fn scope_of_tag_changes(app: TestApp) {
    let w: World = app.world().await;
    let p =
        ok(&propose(&app, &w.w_a1, &w.household_a1, json!({"to_tag": "red", "reasons": ["elderly_living_alone"]}))
            .await);
    let id = p["id"].as_str().unwrap().to_owned();

    // A secretary of another community neither sees nor decides it.
    app.get_as(&format!("/api/v1/tag-changes/{id}"), &w.sec_b).await.assert_problem(404);
    assert!(ids(&ok(&app.get_as("/api/v1/tag-changes", &w.sec_b).await)).is_empty());
    let other = ok(&app.get_as(&format!("/api/v1/tag-changes?community_id={}", w.community_a), &w.sec_b).await);
    assert!(ids(&other).is_empty());
    let text = approve(&app, &w.sec_b, &id, json!({})).await.assert_problem(404).to_string();
    assert!(!text.contains("张桂兰"), "{text}");
    reject(&app, &w.sec_b, &id, json!({"note": "不同意"})).await.assert_problem(404);
    app.get_as(&format!("/api/v1/households/{}/tag-history", w.household_a1), &w.sec_b).await.assert_problem(404);
    propose(&app, &w.sec_b, &w.household_a1, json!({"to_tag": "red", "reasons": ["serious_illness"]}))
        .await
        .assert_problem(404);

    // A worker of another grid neither.
    app.get_as(&format!("/api/v1/tag-changes/{id}"), &w.w_a2).await.assert_problem(404);
    assert!(ids(&ok(&app.get_as("/api/v1/tag-changes", &w.w_a2).await)).is_empty());
    let filtered = ok(&app.get_as(&format!("/api/v1/tag-changes?grid_id={}", w.grid_a1), &w.w_a2).await);
    assert!(ids(&filtered).is_empty());
    propose(&app, &w.w_a2, &w.household_a1, json!({"to_tag": "red", "reasons": ["serious_illness"]}))
        .await
        .assert_problem(404);
    app.get_as(&format!("/api/v1/households/{}/tag-history", w.household_a1), &w.w_a2).await.assert_problem(404);

    // Workers never decide, not even in their own grid: 403.
    approve(&app, &w.w_a1, &id, json!({})).await.assert_problem(403);
    reject(&app, &w.w_a1, &id, json!({"note": "x"})).await.assert_problem(403);
    approve(&app, &w.w_a2, &id, json!({})).await.assert_problem(403);
    // A worker's direct setting is only ever a proposal.
    let own = propose(&app, &w.w_a2, &w.household_a2, json!({"to_tag": "yellow", "reasons": ["low_income"]})).await;
    assert_eq!(own.json()["status"], "pending");
    assert_eq!(household(&app, &w.w_a2, &w.household_a2).await["tag"], "green");

    // Unknown ids are 404 for deciders.
    approve(&app, &w.sec_a, "00000000-0000-7000-8000-000000000000", json!({})).await.assert_problem(404);

    // Filters within scope.
    let a = ok(&app.get_as(&format!("/api/v1/tag-changes?grid_id={}", w.grid_a1), &w.sec_a).await);
    assert_eq!(ids(&a), vec![id.clone()]);
    let all = ok(&app.get_as("/api/v1/tag-changes?status=pending", &w.admin).await);
    assert_eq!(ids(&all).len(), 2);
    let b = ok(&app.get_as(&format!("/api/v1/tag-changes?community_id={}", w.community_b), &w.admin).await);
    assert!(ids(&b).is_empty());
    app.get_as("/api/v1/tag-changes?status=maybe", &w.sec_a).await.assert_problem(400);

    // Paging.
    let first = ok(&app.get_as("/api/v1/tag-changes?limit=1", &w.admin).await);
    assert_eq!(ids(&first).len(), 1);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = ok(&app.get_as(&format!("/api/v1/tag-changes?limit=1&cursor={cursor}"), &w.admin).await);
    assert_eq!(ids(&second).len(), 1);
    assert_ne!(ids(&first), ids(&second));
    assert_eq!(second["next_cursor"], Value::Null);

    // The right secretary decides.
    assert_eq!(ok(&approve(&app, &w.sec_a, &id, json!({})).await)["status"], "approved");
}

async fn validation_of_tag_changes(app: TestApp) {
    let w = app.world().await;
    let path = |h: &str| format!("/api/v1/households/{h}/tag-changes");
    let cases = [
        (json!({"to_tag": "purple", "reasons": ["low_income"]}), "to_tag", "invalid"),
        (json!({"to_tag": "red", "reasons": ["serious_illness", "nope"]}), "reasons[1]", "unknown"),
        (json!({"to_tag": "red", "reasons": ["serious_illness", "serious_illness"]}), "reasons[1]", "duplicate"),
        (json!({"to_tag": "red", "reasons": []}), "reasons", "required"),
        (json!({"to_tag": "yellow"}), "reasons", "required"),
        (json!({"to_tag": "yellow", "reasons": ["low_income"], "note": "长".repeat(501)}), "note", "too_long"),
        // The household is green with no reasons already.
        (json!({"to_tag": "green", "reasons": []}), "to_tag", "unchanged"),
        (json!({"to_tag": "red", "reasons": ["low_income"], "colour": "red"}), "colour", "unknown_field"),
        (json!({"reasons": ["low_income"]}), "to_tag", "required"),
    ];
    for (body, field, code) in cases {
        for token in [&w.w_a1, &w.sec_a] {
            let problem = app.post(&path(&w.household_a1), Some(token), body.clone()).await.assert_problem(422);
            assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
            assert_eq!(problem["errors"][0]["code"], code, "{body}: {problem}");
        }
    }
    // Several errors at once, each named.
    let problem = app
        .post(&path(&w.household_a1), Some(&w.w_a1), json!({"to_tag": "x", "reasons": ["a", "low_income", "b"]}))
        .await
        .assert_problem(422);
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["to_tag", "reasons[0]", "reasons[2]"]);
    // Same tag, other reasons: a real change. Same tag and reasons (in any order): none.
    let set = json!({"to_tag": "yellow", "reasons": ["low_income", "chronic_illness"]});
    assert_eq!(app.post(&path(&w.household_a1), Some(&w.sec_a), set).await.status, 201);
    let same = json!({"to_tag": "yellow", "reasons": ["chronic_illness", "low_income"], "note": "复核"});
    let problem = app.post(&path(&w.household_a1), Some(&w.w_a1), same).await.assert_problem(422);
    assert_eq!(problem["errors"][0]["code"], "unchanged");
    let more = json!({"to_tag": "yellow", "reasons": ["low_income"]});
    assert_eq!(app.post(&path(&w.household_a1), Some(&w.w_a1), more).await.status, 201);
    // Nothing refused was stored.
    let all = ok(&app.get_as(&format!("/api/v1/tag-changes?household_id={}", w.household_a1), &w.sec_a).await);
    assert_eq!(ids(&all).len(), 2);
    // Decision notes are checked too.
    let pending = &ids(&ok(&app.get_as("/api/v1/tag-changes?status=pending", &w.sec_a).await))[0];
    let problem = approve(&app, &w.sec_a, pending, json!({"note": "长".repeat(501)})).await.assert_problem(422);
    assert_eq!(problem["errors"][0]["field"], "note");
    let problem = approve(&app, &w.sec_a, pending, json!({"remark": "x"})).await.assert_problem(422);
    assert_eq!(problem["errors"][0]["field"], "remark");
    let res = app
        .call(
            actix_web::test::TestRequest::post()
                .uri(&format!("/api/v1/tag-changes/{pending}/approve"))
                .insert_header(("authorization", format!("Bearer {}", w.sec_a)))
                .insert_header(("content-type", "application/json"))
                .set_payload("{not json"),
        )
        .await;
    res.assert_problem(400);
    let res = app
        .call(
            actix_web::test::TestRequest::post()
                .uri(&format!("/api/v1/tag-changes/{pending}/approve"))
                .insert_header(("authorization", format!("Bearer {}", w.sec_a)))
                .insert_header(("content-type", "text/plain"))
                .set_payload("ok"),
        )
        .await;
    res.assert_problem(415);
    assert_eq!(ok(&app.get_as(&format!("/api/v1/tag-changes/{pending}"), &w.sec_a).await)["status"], "pending");
}

async fn history_is_newest_first(app: TestApp) {
    let w = app.world().await;
    let sec_a = me(&app, &w.sec_a).await;
    let h = &w.household_a1;
    // 1. The secretary sets yellow directly.
    let c1 =
        ok(&propose(&app, &w.sec_a, h, json!({"to_tag": "yellow", "reasons": ["aged_80_plus"], "note": "一"})).await);
    // 2. The worker proposes red; approved.
    let c2 =
        ok(&propose(&app, &w.w_a1, h, json!({"to_tag": "red", "reasons": ["elderly_living_alone"], "note": "二"}))
            .await);
    ok(&approve(&app, &w.sec_a, c2["id"].as_str().unwrap(), json!({"note": "同意"})).await);
    // 3. The worker proposes green; rejected: not in the history.
    let c3 = ok(&propose(&app, &w.w_a1, h, json!({"to_tag": "green"})).await);
    ok(&reject(&app, &w.sec_a, c3["id"].as_str().unwrap(), json!({"note": "仍需关注"})).await);
    // 4. The admin sets yellow again.
    let c4 =
        ok(&propose(&app, &w.admin, h, json!({"to_tag": "yellow", "reasons": ["aged_80_plus", "chronic_illness"]}))
            .await);

    let items = history(&app, &w.w_a1, h).await;
    let got: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|i| (i["id"].as_str().unwrap(), i["from_tag"].as_str().unwrap(), i["to_tag"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (c4["id"].as_str().unwrap(), "red", "yellow"),
            (c2["id"].as_str().unwrap(), "yellow", "red"),
            (c1["id"].as_str().unwrap(), "green", "yellow"),
        ]
    );
    assert!(items.iter().all(|i| i["status"] == "approved"));
    assert_eq!(items[0]["reasons"], json!(["aged_80_plus", "chronic_illness"]));
    assert_eq!(items[0]["note"], Value::Null);
    assert_eq!(items[1]["reasons"], json!(["elderly_living_alone"]));
    assert_eq!(items[1]["note"], "二");
    assert_eq!(items[1]["decision_note"], "同意");
    assert_eq!(items[1]["proposed_by"], w.user_w_a1.as_str());
    assert_eq!(items[1]["decided_by"], sec_a.as_str());
    assert_eq!(items[2]["proposed_by"], sec_a.as_str());
    assert_eq!(items[2]["decided_by"], sec_a.as_str());
    assert_eq!(items[2]["note"], "一");
    let times: Vec<&str> = items.iter().map(|i| i["decided_at"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");

    // Paged, the same order.
    let first = ok(&app.get_as(&format!("/api/v1/households/{h}/tag-history?limit=2"), &w.sec_a).await);
    assert_eq!(ids(&first), vec![c4["id"].as_str().unwrap().to_owned(), c2["id"].as_str().unwrap().to_owned()]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = ok(&app.get_as(&format!("/api/v1/households/{h}/tag-history?limit=2&cursor={cursor}"), &w.sec_a).await);
    assert_eq!(ids(&rest), vec![c1["id"].as_str().unwrap().to_owned()]);
    assert_eq!(rest["next_cursor"], Value::Null);
    app.get_as(&format!("/api/v1/households/{h}/tag-history?cursor=bogus"), &w.sec_a).await.assert_problem(422);
    // Other households have their own (empty) history.
    assert!(history(&app, &w.sec_a, &w.household_a2).await.is_empty());
}

async fn review_due_dates_follow_the_tag(app: TestApp) {
    let w = app.world().await;
    for (tag, reasons, days) in [
        ("red", json!(["serious_illness"]), 30),
        ("yellow", json!(["low_income"]), 90),
        ("green", json!([]), 365),
        ("red", json!(["extreme_poverty"]), 30),
    ] {
        let res = propose(&app, &w.sec_a, &w.household_a2, json!({"to_tag": tag, "reasons": reasons})).await;
        assert_eq!(res.status, 201, "{tag}: {}", String::from_utf8_lossy(&res.body));
        let hh = household(&app, &w.sec_a, &w.household_a2).await;
        assert_eq!(hh["tag"], tag);
        assert_eq!(hh["tag_review_due_on"], today_plus(days).as_str(), "{tag}");
    }
    // Through an approval as well.
    let p =
        ok(&propose(&app, &w.w_a1, &w.household_a1, json!({"to_tag": "yellow", "reasons": ["aged_80_plus"]})).await);
    ok(&approve(&app, &w.sec_a, p["id"].as_str().unwrap(), json!({})).await);
    assert_eq!(household(&app, &w.sec_a, &w.household_a1).await["tag_review_due_on"], today_plus(90).as_str());
    // A household never tagged has no review date.
    assert_eq!(household(&app, &w.sec_b, &w.household_b1).await["tag_review_due_on"], Value::Null);
}

/// Moves a household's review date, as if its tag had been applied long ago.
async fn set_review_due(app: &TestApp, household: &str, on: NaiveDate) {
    let household = household.to_owned();
    app.state
        .db
        .write(move |conn| {
            use gridlight::db::schema::households;
            diesel::update(households::table.find(household))
                .set(households::tag_review_due_on.eq(Some(on)))
                .execute(conn)?;
            Ok(())
        })
        .await
        .unwrap();
}

async fn review_due_list(app: TestApp) {
    let w = app.world().await;
    let today = gridlight::store::communities::today_in("Asia/Shanghai");
    for h in [&w.household_a1, &w.household_a2, &w.household_b1] {
        let token = if *h == w.household_b1 { &w.sec_b } else { &w.sec_a };
        ok(&propose(&app, token, h, json!({"to_tag": "red", "reasons": ["serious_illness"]})).await);
    }
    let due = |token: String| {
        let app = &app;
        async move { ids(&ok(&app.get_as("/api/v1/households?review_due=true", &token).await)) }
    };
    // Freshly tagged: nothing is due.
    assert!(due(w.sec_a.clone()).await.is_empty());
    set_review_due(&app, &w.household_a1, today.checked_sub_days(Days::new(3)).unwrap()).await;
    set_review_due(&app, &w.household_a2, today).await;
    set_review_due(&app, &w.household_b1, today.checked_sub_days(Days::new(1)).unwrap()).await;
    let mut expected = vec![w.household_a1.clone(), w.household_a2.clone()];
    expected.sort();
    assert_eq!(due(w.sec_a.clone()).await, expected, "due today or earlier, own community only");
    assert_eq!(due(w.sec_b.clone()).await, vec![w.household_b1.clone()]);
    assert_eq!(due(w.w_a1.clone()).await, vec![w.household_a1.clone()]);
    assert_eq!(due(w.admin.clone()).await.len(), 3);
    // Tomorrow is not due; review_due=false lists everything.
    set_review_due(&app, &w.household_a2, today.checked_add_days(Days::new(1)).unwrap()).await;
    assert_eq!(due(w.sec_a.clone()).await, vec![w.household_a1.clone()]);
    let all = ids(&ok(&app.get_as("/api/v1/households?review_due=false", &w.sec_a).await));
    assert_eq!(all.len(), 2);
    // Reviewing (applying a tag again) moves the date forward and off the list.
    ok(&propose(
        &app,
        &w.sec_a,
        &w.household_a1,
        json!({"to_tag": "red", "reasons": ["serious_illness", "extreme_poverty"]}),
    )
    .await);
    assert!(due(w.sec_a.clone()).await.is_empty());
}

async fn suggestions_on_constructed_households(app: TestApp) {
    let w = app.world().await;
    let today = gridlight::store::communities::today_in("Asia/Shanghai");
    // Born on 1 January `age` years ago: exactly that age on any day of this year.
    let born = |age: i32| format!("{}-01-01", chrono::Datelike::year(&today) - age);
    let new_household = |head: &'static str| {
        let app = &app;
        let token = w.sec_a.clone();
        let grid = w.grid_a1.clone();
        async move { app.create_household(&token, &grid, head).await }
    };
    let add = |h: String, body: Value| {
        let app = &app;
        let token = w.sec_a.clone();
        async move { app.create_member(&token, &h, body).await }
    };
    let suggestion = |h: String| {
        let app = &app;
        let token = w.sec_a.clone();
        async move {
            let hh = household(app, &token, &h).await;
            assert_eq!(hh["suggestion"]["tag"], hh["suggested_tag"]);
            let items: Vec<(String, Option<String>)> = hh["suggestion"]["explanation"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| (i["reason"].as_str().unwrap().to_owned(), i["member_id"].as_str().map(str::to_owned)))
                .collect();
            (hh["suggested_tag"].as_str().unwrap().to_owned(), items, hh)
        }
    };

    // A young family: green, nothing to explain.
    let h = new_household("赵家").await;
    add(h.clone(), json!({"name": "赵一", "gender": "male", "relation": "head", "birth_date": born(40)})).await;
    add(h.clone(), json!({"name": "赵二", "gender": "female", "relation": "spouse", "birth_date": born(38)})).await;
    assert_eq!(suggestion(h).await.0, "green");

    // One member aged 72: an elderly person living alone → red, naming the member.
    let h = new_household("钱家").await;
    let m =
        add(h.clone(), json!({"name": "钱老", "gender": "female", "relation": "head", "birth_date": born(72)})).await;
    let (tag, items, hh) = suggestion(h.clone()).await;
    assert_eq!((tag.as_str(), items), ("red", vec![("elderly_living_alone".to_owned(), Some(m.clone()))]));
    assert_eq!(hh["suggestion"]["explanation"][0]["member_name"], "钱老");
    assert_eq!(hh["tag"], "green", "the suggestion never applies itself");

    // An elderly couple: yellow, a household-level reason.
    let h = new_household("孙家").await;
    add(h.clone(), json!({"name": "孙一", "gender": "male", "relation": "head", "birth_date": born(70)})).await;
    add(h.clone(), json!({"name": "孙二", "gender": "female", "relation": "spouse", "birth_date": born(68)})).await;
    let (tag, items, _) = suggestion(h).await;
    assert_eq!((tag.as_str(), items), ("yellow", vec![("elderly_couple_only".to_owned(), None)]));

    // Age from the ID number alone (no birth date given): 85 in a family → yellow, 80+.
    let h = new_household("李家").await;
    let birth = born(85);
    let old = add(
        h.clone(),
        json!({"name": "李奶奶", "gender": "female", "relation": "parent", "id_number": id_number(&birth, 2)}),
    )
    .await;
    add(h.clone(), json!({"name": "李四", "gender": "male", "relation": "head", "birth_date": born(50)})).await;
    let (tag, items, _) = suggestion(h).await;
    assert_eq!((tag.as_str(), items), ("yellow", vec![("aged_80_plus".to_owned(), Some(old))]));

    // Disability grade 2 → red; grade 4 and a chronic illness → yellow; flags name members.
    let h = new_household("周家").await;
    let a = add(h.clone(), json!({"name": "周一", "gender": "male", "relation": "head", "birth_date": born(45), "disability_grade": 4, "chronic_illness": true})).await;
    let b = add(
        h.clone(),
        json!({"name": "周二", "gender": "male", "relation": "child", "birth_date": born(20), "disability_grade": 2}),
    )
    .await;
    let (tag, items, _) = suggestion(h.clone()).await;
    assert_eq!(tag, "red");
    assert_eq!(
        items,
        vec![
            ("severe_disability".to_owned(), Some(b.clone())),
            ("moderate_disability".to_owned(), Some(a.clone())),
            ("chronic_illness".to_owned(), Some(a.clone())),
        ]
    );
    // A member flag changed through the API moves the suggestion, not the tag.
    app.patch(&format!("/api/v1/members/{b}"), &w.sec_a, json!({"disability_grade": null}), None).await;
    let (tag, items, hh) = suggestion(h.clone()).await;
    assert_eq!(tag, "yellow");
    assert_eq!(items.len(), 2);
    assert_eq!(hh["tag"], "green");

    // 低保 and 特困 flags; an elderly member flagged as living alone within a family.
    let h = new_household("吴家").await;
    let poor = add(h.clone(), json!({"name": "吴一", "gender": "male", "relation": "head", "birth_date": born(50), "low_income": true, "extreme_poverty": true})).await;
    let alone = add(
        h.clone(),
        json!({"name": "吴二", "gender": "female", "relation": "parent", "birth_date": born(66), "living_alone": true}),
    )
    .await;
    let (tag, items, _) = suggestion(h.clone()).await;
    assert_eq!(tag, "red");
    assert_eq!(
        items,
        vec![
            ("extreme_poverty".to_owned(), Some(poor.clone())),
            ("elderly_living_alone".to_owned(), Some(alone)),
            ("low_income".to_owned(), Some(poor)),
        ]
    );

    // Recorded reasons (from an applied tag) count, once, as household-level items.
    let h = new_household("郑家").await;
    add(h.clone(), json!({"name": "郑一", "gender": "male", "relation": "head", "birth_date": born(35)})).await;
    assert_eq!(suggestion(h.clone()).await.0, "green");
    ok(&propose(&app, &w.sec_a, &h, json!({"to_tag": "yellow", "reasons": ["unemployed", "single_parent"]})).await);
    let (tag, items, hh) = suggestion(h).await;
    assert_eq!(tag, "yellow");
    assert_eq!(items, vec![("unemployed".to_owned(), None), ("single_parent".to_owned(), None)]);
    assert_eq!(hh["suggestion"]["explanation"][0]["detail"], "recorded reason");
}

async fn proposals_and_decisions_are_audited(app: TestApp) {
    let w = app.world().await;
    let sec_a = me(&app, &w.sec_a).await;
    let p =
        ok(&propose(&app, &w.w_a1, &w.household_a1, json!({"to_tag": "red", "reasons": ["elderly_living_alone"]}))
            .await);
    let id = p["id"].as_str().unwrap().to_owned();
    ok(&approve(&app, &w.sec_a, &id, json!({"note": "同意"})).await);
    let r = ok(&propose(&app, &w.w_a2, &w.household_a2, json!({"to_tag": "yellow", "reasons": ["unemployed"]})).await);
    let rid = r["id"].as_str().unwrap().to_owned();
    ok(&reject(&app, &w.sec_a, &rid, json!({"note": "不符合"})).await);
    let d = ok(&propose(&app, &w.sec_a, &w.household_a2, json!({"to_tag": "yellow", "reasons": ["low_income"]})).await);
    let did = d["id"].as_str().unwrap().to_owned();

    let events = |entity: String| {
        let app = &app;
        let token = w.sec_a.clone();
        async move {
            let page = ok(&app.get_as(&format!("/api/v1/audit-events?entity_id={entity}"), &token).await);
            page["items"].as_array().unwrap().clone()
        }
    };
    // Newest first.
    let e = events(id.clone()).await;
    let actions: Vec<&str> = e.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["tag_change.approved", "tag_change.proposed"]);
    assert_eq!(e[1]["actor_id"], w.user_w_a1.as_str());
    assert_eq!(e[1]["entity_type"], "tag_change");
    assert_eq!(e[1]["community_id"], w.community_a.as_str());
    assert_eq!(e[1]["summary"]["to"], "red");
    assert_eq!(e[1]["summary"]["reasons"], json!(["elderly_living_alone"]));
    assert_eq!(e[0]["actor_id"], sec_a.as_str());
    assert_eq!(e[0]["summary"]["note"], "同意");
    assert_eq!(e[0]["summary"]["direct"], false);
    assert!(e[0]["request_id"].as_str().is_some_and(|r| !r.is_empty()));

    let e = events(rid).await;
    let actions: Vec<&str> = e.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["tag_change.rejected", "tag_change.proposed"]);
    assert_eq!(e[0]["summary"]["note"], "不符合");

    let e = events(did.clone()).await;
    let actions: Vec<&str> = e.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["tag_change.approved"]);
    assert_eq!(e[0]["summary"]["direct"], true);

    // Each application is on the household's own record, with the tag change it came from.
    let e = events(w.household_a2.clone()).await;
    let applied: Vec<&Value> = e.iter().filter(|e| e["action"] == "household.tag_applied").collect();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0]["summary"]["tag_change_id"], did.as_str());
    assert_eq!(applied[0]["summary"]["from"], "green");
    assert_eq!(applied[0]["summary"]["to"], "yellow");
    assert_eq!(applied[0]["summary"]["review_due_on"], today_plus(90).as_str());
    let e = events(w.household_a1.clone()).await;
    assert_eq!(e.iter().filter(|e| e["action"] == "household.tag_applied").count(), 1);

    // Refused requests leave no trace.
    let before = app.audit_actions().await.len();
    approve(&app, &w.w_a1, &id, json!({})).await.assert_problem(403);
    propose(&app, &w.w_a1, &w.household_a1, json!({"to_tag": "red", "reasons": ["nope"]})).await.assert_problem(422);
    reject(&app, &w.sec_a, &id, json!({"note": "x"})).await.assert_problem(409);
    assert_eq!(app.audit_actions().await.len(), before);
}

async fn removed_households_keep_their_tag(app: TestApp) {
    let w = app.world().await;
    let p =
        ok(&propose(&app, &w.w_a1, &w.household_a1, json!({"to_tag": "red", "reasons": ["elderly_living_alone"]}))
            .await);
    let id = p["id"].as_str().unwrap();
    assert_eq!(
        app.delete_as(&format!("/api/v1/households/{}?reason=moved_out", w.household_a1), &w.sec_a).await.status,
        200
    );
    // Neither a direct setting nor the approval of an earlier proposal re-tags it.
    propose(&app, &w.sec_a, &w.household_a1, json!({"to_tag": "red", "reasons": ["serious_illness"]}))
        .await
        .assert_problem(409);
    approve(&app, &w.sec_a, id, json!({})).await.assert_problem(409);
    let hh = household(&app, &w.sec_a, &w.household_a1).await;
    assert_eq!(hh["tag"], "green");
    // The removal ended the proposal: it left the review queue, cancelled with the reason.
    let change = ok(&app.get_as(&format!("/api/v1/tag-changes/{id}"), &w.sec_a).await);
    assert_eq!(change["status"], "cancelled");
    assert_eq!(change["decision_note"], "household removed: moved_out");
    assert!(ids(&ok(&app.get_as("/api/v1/tag-changes?status=pending", &w.sec_a).await)).is_empty());
    assert!(ids(&ok(&app.get_as("/api/v1/tag-changes", &w.w_a1).await)).is_empty());
    reject(&app, &w.sec_a, id, json!({"note": "已迁出"})).await.assert_problem(409);
    assert!(app.audit_actions().await.contains(&"tag_change.cancelled".to_owned()));
    // The removed household's history stays readable for the secretary.
    assert!(history(&app, &w.sec_a, &w.household_a1).await.is_empty());
    app.get_as(&format!("/api/v1/households/{}/tag-history", w.household_a1), &w.w_a1).await.assert_problem(404);
}

async fn approval_applies_against_the_current_tag(app: TestApp) {
    let w = app.world().await;
    // A worker proposes red; meanwhile the secretary sets yellow directly.
    let p =
        ok(&propose(&app, &w.w_a1, &w.household_a1, json!({"to_tag": "red", "reasons": ["elderly_living_alone"]}))
            .await);
    ok(&propose(&app, &w.sec_a, &w.household_a1, json!({"to_tag": "yellow", "reasons": ["aged_80_plus"]})).await);
    // The proposal is still pending and, once approved, records the tag it actually replaced.
    let d = ok(&approve(&app, &w.sec_a, p["id"].as_str().unwrap(), json!({})).await);
    assert_eq!(d["from_tag"], "yellow");
    assert_eq!(d["to_tag"], "red");
    let h = history(&app, &w.sec_a, &w.household_a1).await;
    let chain: Vec<(&str, &str)> =
        h.iter().map(|i| (i["from_tag"].as_str().unwrap(), i["to_tag"].as_str().unwrap())).collect();
    assert_eq!(chain, vec![("yellow", "red"), ("green", "yellow")]);
    // Two deciders at once: exactly one wins.
    let q =
        ok(&propose(&app, &w.w_a1, &w.household_a1, json!({"to_tag": "yellow", "reasons": ["aged_80_plus"]})).await);
    let qid = q["id"].as_str().unwrap();
    let (a, b) = futures_util::join!(approve(&app, &w.sec_a, qid, json!({})), approve(&app, &w.admin, qid, json!({})));
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409]);
    assert_eq!(history(&app, &w.sec_a, &w.household_a1).await.len(), 3);
}
