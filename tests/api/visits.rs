//! Visits: idempotent submission, the time window, corrections, scope.

use chrono::{Duration, Utc};
use diesel::prelude::*;
use futures_util::future::join_all;
use serde_json::{Value, json};

use gridlight::db::schema::visits;

use crate::on_both_backends;
use crate::support::TestApp;
use crate::support::world::ok;

on_both_backends!(
    retries_are_idempotent_and_conflicts_409,
    retry_storm_yields_one_visit,
    time_window,
    corrections_by_the_author_for_24_hours,
    visits_are_scoped,
    invalid_visits_write_nothing
);

fn body(household: &str, id: &str) -> Value {
    json!({"id": id, "household_id": household, "kind": "home_visit", "visited_at": (Utc::now() - Duration::hours(2)).to_rfc3339(),
           "notes": "老人身体状况良好，已提醒按时服药", "findings": [{"category": "health", "detail": "血压偏高"}],
           "location": {"lat": 36.6512, "lng": 117.0009, "accuracy_m": 12.5}})
}

async fn count(app: &TestApp) -> i64 {
    app.state.db.read(|c| Ok(visits::table.count().get_result(c)?)).await.unwrap()
}

async fn retries_are_idempotent_and_conflicts_409(app: TestApp) {
    let w = app.world().await;
    let id = uuid::Uuid::now_v7().to_string();
    let b = body(&w.household_a1, &id);
    let first = app.post("/api/v1/visits", Some(&w.w_a1), b.clone()).await;
    assert_eq!(first.status, 201);
    let stored = first.json();
    assert_eq!(stored["worker_id"], w.user_w_a1.as_str());
    assert_eq!(stored["findings"][0]["detail"], "血压偏高");
    assert_eq!(stored["location"]["accuracy_m"], 12.5);
    assert_eq!(stored["completed_task_ids"].as_array().unwrap().len(), 1);
    let again = app.post("/api/v1/visits", Some(&w.w_a1), b.clone()).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json(), stored);
    let mut other = b.clone();
    other["notes"] = json!("不同的内容");
    app.post("/api/v1/visits", Some(&w.w_a1), other).await.assert_problem(409);
    let mut other = b.clone();
    other["kind"] = json!("phone_call");
    app.post("/api/v1/visits", Some(&w.w_a1), other).await.assert_problem(409);
    assert_eq!(count(&app).await, 1);
}

async fn retry_storm_yields_one_visit(app: TestApp) {
    let w = app.world().await;
    let id = uuid::Uuid::now_v7().to_string();
    let b = body(&w.household_a1, &id);
    let sends = (0..24).map(|_| app.post("/api/v1/visits", Some(&w.w_a1), b.clone()));
    let results = join_all(sends).await;
    let created = results.iter().filter(|r| r.status == 201).count();
    let replayed = results.iter().filter(|r| r.status == 200).count();
    assert_eq!((created, replayed), (1, 23), "{:?}", results.iter().map(|r| r.status).collect::<Vec<_>>());
    let bodies: Vec<Value> = results.iter().map(|r| r.json()).collect();
    assert!(bodies.windows(2).all(|p| p[0]["id"] == p[1]["id"] && p[0]["received_at"] == p[1]["received_at"]));
    assert_eq!(count(&app).await, 1);
    // Only its author retries a visit: the same body from another account is another request.
    app.post("/api/v1/visits", Some(&w.sec_a), b.clone()).await.assert_problem(409);
    assert_eq!(count(&app).await, 1);
    // One task completed, one successor: no doubled scheduling.
    let open = ok(&app.get_as(&format!("/api/v1/tasks?household_id={}&status=open", w.household_a1), &w.sec_a).await);
    assert_eq!(open["items"].as_array().unwrap().len(), 1);
}

async fn time_window(app: TestApp) {
    let w = app.world().await;
    let at = |d: Duration| (Utc::now() + d).to_rfc3339();
    let post = |token: &String, when: String| {
        let body = json!({"household_id": w.household_a1, "kind": "phone_call", "visited_at": when});
        let token = token.clone();
        let app = &app;
        async move { app.post("/api/v1/visits", Some(&token), body).await }
    };
    let res = post(&w.w_a1, at(Duration::minutes(10))).await;
    assert_eq!(res.assert_problem(422)["errors"][0]["code"], "in_future");
    assert_eq!(post(&w.w_a1, at(Duration::minutes(3))).await.status, 201, "clock skew is tolerated");
    let res = post(&w.w_a1, at(-Duration::days(31))).await;
    assert_eq!(res.assert_problem(422)["errors"][0]["code"], "too_old");
    assert_eq!(post(&w.w_a1, at(-Duration::days(29))).await.status, 201);
    // A secretary may record older visits (paper records entered late).
    assert_eq!(post(&w.sec_a, at(-Duration::days(90))).await.status, 201);
    app.post(
        "/api/v1/visits",
        Some(&w.w_a1),
        json!({"household_id": w.household_a1, "kind": "phone_call", "visited_at": "yesterday"}),
    )
    .await
    .assert_problem(422);
    app.post(
        "/api/v1/visits",
        Some(&w.w_a1),
        json!({"household_id": w.household_a1, "kind": "chat", "visited_at": at(Duration::zero())}),
    )
    .await
    .assert_problem(422);
    assert_eq!(count(&app).await, 3);
}

async fn corrections_by_the_author_for_24_hours(app: TestApp) {
    let w = app.world().await;
    let id = uuid::Uuid::now_v7().to_string();
    ok(&app.post("/api/v1/visits", Some(&w.w_a1), body(&w.household_a1, &id)).await);
    let path = format!("/api/v1/visits/{id}");
    let res = app.patch(&path, &w.w_a1, json!({"notes": "补充：已联系子女", "location": null}), Some("\"1\"")).await;
    let v = ok(&res);
    assert_eq!(v["notes"], "补充：已联系子女");
    assert_eq!(v["location"], Value::Null);
    assert_eq!(v["findings"][0]["category"], "health");
    assert_eq!(res.header("etag"), Some("\"2\""));
    // The corrected content is what a retry is now compared against.
    app.post("/api/v1/visits", Some(&w.w_a1), body(&w.household_a1, &id)).await.assert_problem(409);
    app.patch(&path, &w.sec_a, json!({"notes": "x"}), None).await.assert_problem(403);
    app.patch(&path, &w.w_a1, json!({"notes": "x"}), Some("\"1\"")).await.assert_problem(412);
    app.patch(&path, &w.w_a1, json!({"kind": "phone_call"}), None).await.assert_problem(422);
    // After 24 hours it is immutable.
    let vid = id.clone();
    app.state
        .db
        .write(move |c| {
            let old = gridlight::store::now() - Duration::hours(25);
            Ok(diesel::update(visits::table.find(vid)).set(visits::received_at.eq(old)).execute(c)?)
        })
        .await
        .unwrap();
    app.patch(&path, &w.w_a1, json!({"notes": "太晚了"}), None).await.assert_problem(409);
}

async fn visits_are_scoped(app: TestApp) {
    let w = app.world().await;
    let a1 =
        ok(&app.post("/api/v1/visits", Some(&w.w_a1), body(&w.household_a1, &uuid::Uuid::now_v7().to_string())).await);
    ok(&app.post("/api/v1/visits", Some(&w.w_a2), body(&w.household_a2, &uuid::Uuid::now_v7().to_string())).await);
    // Not their grid's household: 404, nothing recorded.
    app.post("/api/v1/visits", Some(&w.w_a2), body(&w.household_a1, &uuid::Uuid::now_v7().to_string()))
        .await
        .assert_problem(404);
    app.post("/api/v1/visits", Some(&w.sec_b), body(&w.household_a1, &uuid::Uuid::now_v7().to_string()))
        .await
        .assert_problem(404);
    let ids = |v: Value| {
        v["items"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(ids(ok(&app.get_as("/api/v1/visits", &w.w_a1).await)), vec![a1["id"].as_str().unwrap().to_owned()]);
    assert_eq!(ids(ok(&app.get_as("/api/v1/visits", &w.sec_a).await)).len(), 2);
    assert!(ids(ok(&app.get_as("/api/v1/visits", &w.sec_b).await)).is_empty());
    assert!(ids(ok(&app.get_as(&format!("/api/v1/visits?grid_id={}", w.grid_a2), &w.w_a1).await)).is_empty());
    let path = format!("/api/v1/visits/{}", a1["id"].as_str().unwrap());
    assert_eq!(app.get_as(&path, &w.sec_a).await.status, 200);
    app.get_as(&path, &w.w_a2).await.assert_problem(404);
    app.get_as(&path, &w.sec_b).await.assert_problem(404);
    // Filters: by worker and by time.
    assert_eq!(ids(ok(&app.get_as(&format!("/api/v1/visits?worker_id={}", w.user_w_a2), &w.sec_a).await)).len(), 1);
    let later = (Utc::now() - Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert!(ids(ok(&app.get_as(&format!("/api/v1/visits?from={later}"), &w.sec_a).await)).is_empty());
    assert_eq!(ids(ok(&app.get_as(&format!("/api/v1/visits?to={later}"), &w.sec_a).await)).len(), 2);
    assert_eq!(count(&app).await, 2);
}

async fn invalid_visits_write_nothing(app: TestApp) {
    let w = app.world().await;
    let mut b = body(&w.household_a1, &uuid::Uuid::now_v7().to_string());
    b["location"] = json!({"lat": 95.0, "lng": 117.0, "accuracy_m": 5});
    let problem = app.post("/api/v1/visits", Some(&w.w_a1), b).await.assert_problem(422);
    assert_eq!(
        (problem["errors"][0]["field"].as_str(), problem["errors"][0]["code"].as_str()),
        (Some("location.lat"), Some("out_of_range"))
    );
    let mut b = body(&w.household_a1, &uuid::Uuid::now_v7().to_string());
    b["findings"] = json!([{"category": "", "detail": "x"}]);
    assert_eq!(
        app.post("/api/v1/visits", Some(&w.w_a1), b).await.assert_problem(422)["errors"][0]["field"],
        "findings[0].category"
    );
    let mut b = body(&w.household_a1, &uuid::Uuid::now_v7().to_string());
    b["surprise"] = json!(1);
    app.post("/api/v1/visits", Some(&w.w_a1), b).await.assert_problem(422);
    let b = body(&w.household_a1, "not-a-uuid");
    app.post("/api/v1/visits", Some(&w.w_a1), b).await.assert_problem(422);
    assert_eq!(count(&app).await, 0);
}
