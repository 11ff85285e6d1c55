//! Service plans, the task invariant, and scheduling.

use chrono::{Duration, NaiveDate, Utc};
use diesel::prelude::*;
use serde_json::{Value, json};

use gridlight::db::schema::{tasks, visits};

use crate::on_both_backends;
use crate::support::TestApp;
use crate::support::world::{World, ok};

on_both_backends!(
    default_plans_and_validation,
    tags_drive_exactly_the_right_open_tasks,
    visit_completes_the_task_and_schedules_the_next,
    offline_visits_complete_tasks_when_they_took_place,
    plan_edits_reconcile_at_once,
    reconcile_twice_changes_nothing,
    concurrent_reconciles_leave_no_duplicates,
    primary_worker_changes_move_open_tasks,
    secretaries_reassign_and_cancel,
    removal_cancels_and_overdue_is_flagged,
);

fn today() -> NaiveDate {
    // The world's communities are in Asia/Shanghai.
    Utc::now().with_timezone(&chrono_tz::Asia::Shanghai).date_naive()
}

fn d(days: i64) -> String {
    (today() + Duration::days(days)).format("%Y-%m-%d").to_string()
}

/// The open tasks of a household as (kind, due_on, assignee), sorted.
async fn open_tasks(app: &TestApp, token: &str, household: &str) -> Vec<(String, String, Value)> {
    let res = app.get_as(&format!("/api/v1/tasks?household_id={household}&status=open"), token).await;
    let mut out: Vec<(String, String, Value)> = ok(&res)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (t["kind"].as_str().unwrap().to_owned(), t["due_on"].as_str().unwrap().to_owned(), t["assignee_id"].clone())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

async fn set_tag(app: &TestApp, w: &World, household: &str, tag: &str, reason: &str) {
    let res = app
        .post(
            &format!("/api/v1/households/{household}/tag-changes"),
            Some(&w.sec_a),
            json!({"to_tag": tag, "reasons": [reason], "note": "测试"}),
        )
        .await;
    ok(&res);
}

async fn visit(app: &TestApp, token: &str, household: &str, kind: &str, days_ago: i64) -> Value {
    let at = (Utc::now() - Duration::days(days_ago)).to_rfc3339();
    let res = app
        .post("/api/v1/visits", Some(token), json!({"household_id": household, "kind": kind, "visited_at": at}))
        .await;
    ok(&res)
}

async fn default_plans_and_validation(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/communities/{}/service-plans", w.community_a);
    let plans = ok(&app.get_as(&path, &w.w_a1).await);
    type PlanSummary = (String, i64, Vec<(String, i64)>);
    let summary: Vec<PlanSummary> = plans
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let ts = p["templates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| (t["kind"].as_str().unwrap().to_owned(), t["interval_days"].as_i64().unwrap()))
                .collect();
            (p["tag"].as_str().unwrap().to_owned(), p["review_interval_days"].as_i64().unwrap(), ts)
        })
        .collect();
    let s = |x: &str| x.to_owned();
    assert_eq!(
        summary,
        vec![
            (s("red"), 30, vec![(s("phone_call"), 1), (s("home_visit"), 7)]),
            (s("yellow"), 90, vec![(s("phone_call"), 7), (s("home_visit"), 30)]),
            (s("green"), 365, vec![(s("home_visit"), 90)]),
        ]
    );
    let red = format!("{path}/red");
    let bad = json!({"templates": [{"name": "电话", "kind": "phone_call", "interval_days": 0}, {"name": "电话2", "kind": "phone_call", "interval_days": 366}]});
    let body = app.put(&red, &w.sec_a, bad).await.assert_problem(422);
    let codes: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["code"].as_str().unwrap()).collect();
    assert_eq!(codes, vec!["out_of_range", "out_of_range", "duplicate_active_kind"]);
    let good = json!({"templates": [{"name": "平安问候", "kind": "phone_call", "interval_days": 2}]});
    app.put(&red, &w.w_a1, good.clone()).await.assert_problem(403);
    app.put(&format!("/api/v1/communities/{}/service-plans/red", w.community_b), &w.sec_a, good.clone())
        .await
        .assert_problem(404);
    app.put(&format!("{path}/blue"), &w.sec_a, good).await.assert_problem(404);
    app.get_as(&format!("/api/v1/communities/{}/service-plans", w.community_b), &w.sec_a).await.assert_problem(404);
}

async fn tags_drive_exactly_the_right_open_tasks(app: TestApp) {
    let w = app.world().await;
    let h = &w.household_a1;
    let primary = json!(w.user_w_a1);
    // Registered today, green: one home visit in 90 days, for the grid's primary worker.
    assert_eq!(open_tasks(&app, &w.sec_a, h).await, vec![("home_visit".into(), d(90), primary.clone())]);
    // Green → red: a call tomorrow and a visit within a week; the green task is cancelled.
    set_tag(&app, &w, h, "red", "elderly_living_alone").await;
    assert_eq!(
        open_tasks(&app, &w.sec_a, h).await,
        vec![("home_visit".into(), d(7), primary.clone()), ("phone_call".into(), d(1), primary.clone())]
    );
    // A home visit three days ago counts for the yellow plan's visit: due 30 days after it.
    visit(&app, &w.w_a1, h, "home_visit", 3).await;
    set_tag(&app, &w, h, "yellow", "chronic_illness").await;
    assert_eq!(
        open_tasks(&app, &w.sec_a, h).await,
        vec![("home_visit".into(), d(27), primary.clone()), ("phone_call".into(), d(7), primary.clone())]
    );
    // …but never before the day the tag was applied.
    set_tag(&app, &w, h, "red", "serious_illness").await;
    assert_eq!(
        open_tasks(&app, &w.sec_a, h).await,
        vec![("home_visit".into(), d(4), primary.clone()), ("phone_call".into(), d(1), primary.clone())]
    );
    let cancelled = app.get_as(&format!("/api/v1/tasks?household_id={h}&status=cancelled"), &w.sec_a).await.json();
    assert_eq!(cancelled["items"].as_array().unwrap().len(), 1 + 2 + 2);
}

async fn visit_completes_the_task_and_schedules_the_next(app: TestApp) {
    let w = app.world().await;
    let h = &w.household_a1;
    set_tag(&app, &w, h, "red", "elderly_living_alone").await;
    let before = ok(&app.get_as(&format!("/api/v1/tasks?household_id={h}&status=open&assignee=me"), &w.w_a1).await);
    let visit_task =
        before["items"].as_array().unwrap().iter().find(|t| t["kind"] == "home_visit").unwrap()["id"].clone();
    // Visiting early counts: the visit due in 7 days is done today, the next is due in 7 days.
    let v = visit(&app, &w.w_a1, h, "home_visit", 0).await;
    assert_eq!(v["completed_task_ids"], json!([visit_task]));
    let done = ok(&app.get_as(&format!("/api/v1/tasks?household_id={h}&status=done"), &w.w_a1).await);
    assert_eq!(done["items"][0]["id"], visit_task);
    assert_eq!(done["items"][0]["visit_id"], v["id"]);
    assert_eq!(
        open_tasks(&app, &w.w_a1, h).await,
        vec![("home_visit".into(), d(7), json!(w.user_w_a1)), ("phone_call".into(), d(1), json!(w.user_w_a1))]
    );
    // A service visit has no task to complete; it is just recorded.
    let s = visit(&app, &w.w_a1, h, "service", 0).await;
    assert_eq!(s["completed_task_ids"], json!([]));
    // The visit is listed, newest first, with what it completed.
    let list = ok(&app.get_as(&format!("/api/v1/visits?household_id={h}"), &w.sec_a).await);
    let kinds: Vec<&str> = list["items"].as_array().unwrap().iter().map(|v| v["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 2);
    assert!(list["items"].as_array().unwrap().iter().any(|x| x["completed_task_ids"] == json!([visit_task])));
}

/// The one open task of a kind, as the API shows it.
async fn open_task(app: &TestApp, token: &str, household: &str, kind: &str) -> Value {
    let res = ok(&app.get_as(&format!("/api/v1/tasks?household_id={household}&status=open"), token).await);
    res["items"].as_array().unwrap().iter().find(|t| t["kind"] == kind).unwrap().clone()
}

async fn done_task(app: &TestApp, token: &str, household: &str, id: &str) -> Value {
    let res = ok(&app.get_as(&format!("/api/v1/tasks?household_id={household}&status=done"), token).await);
    res["items"].as_array().unwrap().iter().find(|t| t["id"] == id).expect("the task is done").clone()
}

/// A task done by a visit is completed when the visit took place — a visit made offline on the
/// due date and synced days later is on time — but never before the task was scheduled.
async fn offline_visits_complete_tasks_when_they_took_place(app: TestApp) {
    let w = app.world().await;
    let h = &w.household_a1;
    set_tag(&app, &w, h, "red", "elderly_living_alone").await;
    // The home visit was scheduled ten days ago.
    let scheduled = Utc::now().naive_utc() - Duration::days(10);
    let hid = h.clone();
    app.state
        .db
        .write(move |c| {
            Ok(diesel::update(tasks::table.filter(tasks::household_id.eq(hid)).filter(tasks::kind.eq("home_visit")))
                .set(tasks::created_at.eq(scheduled))
                .execute(c)?)
        })
        .await
        .unwrap();
    let first = open_task(&app, &w.w_a1, h, "home_visit").await;
    // Visited three days ago, synced now.
    let v = visit(&app, &w.w_a1, h, "home_visit", 3).await;
    assert_eq!(v["completed_task_ids"], json!([first["id"]]));
    let done = done_task(&app, &w.w_a1, h, first["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "done");
    assert_eq!(done["completed_at"], v["visited_at"]);
    // The next one was scheduled just now; a visit recorded late, from two days ago, completes
    // it as it was scheduled, not before.
    let next = open_task(&app, &w.w_a1, h, "home_visit").await;
    let created = next["created_at"].as_str().expect("tasks show when they were scheduled").to_owned();
    let late = visit(&app, &w.w_a1, h, "home_visit", 2).await;
    assert_eq!(late["completed_task_ids"], json!([next["id"]]));
    let done = done_task(&app, &w.w_a1, h, next["id"].as_str().unwrap()).await;
    assert_eq!(done["completed_at"].as_str(), Some(created.as_str()));
}

async fn plan_edits_reconcile_at_once(app: TestApp) {
    let w = app.world().await;
    let h = &w.household_a1;
    set_tag(&app, &w, h, "red", "elderly_living_alone").await;
    let red = format!("/api/v1/communities/{}/service-plans/red", w.community_a);
    // Drop the daily call, slow the visit to fortnightly, add a monthly service.
    let plan = json!({"templates": [
        {"name": "入户走访", "kind": "home_visit", "interval_days": 14},
        {"name": "平安问候", "kind": "phone_call", "interval_days": 1, "active": false},
        {"name": "助餐服务", "kind": "service", "interval_days": 30},
    ], "review_interval_days": 60});
    let res = ok(&app.put(&red, &w.sec_a, plan).await);
    assert_eq!(res[0]["review_interval_days"], 60);
    let primary = json!(w.user_w_a1);
    assert_eq!(
        open_tasks(&app, &w.sec_a, h).await,
        vec![("home_visit".into(), d(14), primary.clone()), ("service".into(), d(30), primary.clone())]
    );
    // Reactivating the call template brings its task back (the template keeps its id).
    let plan = json!({"templates": [
        {"name": "入户走访", "kind": "home_visit", "interval_days": 14},
        {"name": "平安问候", "kind": "phone_call", "interval_days": 1},
    ]});
    let res = ok(&app.put(&red, &w.sec_a, plan).await);
    let templates = res[0]["templates"].as_array().unwrap();
    assert_eq!(templates.iter().filter(|t| t["active"] == true).count(), 2);
    assert_eq!(
        open_tasks(&app, &w.sec_a, h).await,
        vec![("home_visit".into(), d(14), primary.clone()), ("phone_call".into(), d(1), primary.clone())]
    );
}

/// Every (household, template) pair has at most one open task; returns the open count.
async fn assert_no_duplicates(app: &TestApp) -> usize {
    let rows: Vec<(String, String)> = app
        .state
        .db
        .read(|c| {
            Ok(tasks::table
                .filter(tasks::status.eq("open"))
                .select((tasks::household_id, tasks::template_id))
                .load(c)?)
        })
        .await
        .unwrap();
    let mut unique = rows.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), rows.len(), "duplicate open tasks");
    rows.len()
}

async fn reconcile_twice_changes_nothing(app: TestApp) {
    let w = app.world().await;
    set_tag(&app, &w, &w.household_a1, "red", "elderly_living_alone").await;
    let open = assert_no_duplicates(&app).await;
    assert_eq!(open, 2 + 1 + 1);
    // Lose the open tasks behind the server's back: reconcile restores exactly them, once.
    app.state
        .db
        .write(|c| Ok(diesel::delete(tasks::table.filter(tasks::status.eq("open"))).execute(c)?))
        .await
        .unwrap();
    let db = app.state.db.clone();
    let (first, second) = actix_web::web::block(move || {
        (gridlight::jobs::reconcile_all(&db).unwrap(), gridlight::jobs::reconcile_all(&db).unwrap())
    })
    .await
    .unwrap();
    assert_eq!((first.households, first.created, first.cancelled), (3, 4, 0));
    assert_eq!((second.households, second.created, second.cancelled), (3, 0, 0));
    assert_eq!(assert_no_duplicates(&app).await, 4);
    // The CLI does the same, and finds nothing to do.
    let url = app.state.config.db.database_url.clone();
    let key = app.state.config.db.data_key.clone().unwrap_or_default();
    let out = actix_web::web::block(move || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gridlight"));
        if !key.is_empty() {
            command.env("GRIDLIGHT_DATA_KEY", &key);
        }
        command.args(["--database-url", &url, "--log", "warn", "tasks", "reconcile"]).output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("reconciled 3 households") && text.contains("0 tasks created, 0 cancelled"), "{text}");
}

async fn concurrent_reconciles_leave_no_duplicates(app: TestApp) {
    let w = app.world().await;
    for i in 0..20 {
        let res = app
            .post(
                "/api/v1/households",
                Some(&w.sec_a),
                json!({"grid_id": if i % 2 == 0 { &w.grid_a1 } else { &w.grid_a2 }, "address": {"building": format!("{i}"), "unit": "1", "room": "1"}, "head_name": "某"}),
            )
            .await;
        ok(&res);
    }
    for round in 0..3 {
        app.state
            .db
            .write(|c| Ok(diesel::delete(tasks::table.filter(tasks::status.eq("open"))).execute(c)?))
            .await
            .unwrap();
        // Two independent pools, as two server processes would have, reconciling at once.
        let cfg = app.state.config.db.clone();
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let cfg = cfg.clone();
                std::thread::spawn(move || {
                    let db = gridlight::db::Db::connect(&cfg).unwrap();
                    gridlight::jobs::reconcile_all(&db).unwrap()
                })
            })
            .collect();
        let created: u64 = threads.into_iter().map(|t| t.join().unwrap().created).sum();
        let open = assert_no_duplicates(&app).await;
        assert_eq!(open, 23, "round {round}");
        assert_eq!(created, 23, "round {round}: every task created exactly once across the three");
    }
}

async fn primary_worker_changes_move_open_tasks(app: TestApp) {
    let w = app.world().await;
    let h = &w.household_a1;
    set_tag(&app, &w, h, "red", "elderly_living_alone").await;
    let grid_workers = format!("/api/v1/grids/{}/workers", w.grid_a1);
    // w_a2 joins and becomes primary: the open tasks follow.
    ok(&app
        .put(
            &grid_workers,
            &w.sec_a,
            json!({"workers": [{"user_id": w.user_w_a1}, {"user_id": w.user_w_a2, "primary": true}]}),
        )
        .await);
    let tasks = open_tasks(&app, &w.sec_a, h).await;
    assert!(tasks.iter().all(|t| t.2 == json!(w.user_w_a2)), "{tasks:?}");
    // Any worker of the grid may still complete them.
    let v = visit(&app, &w.w_a1, h, "phone_call", 0).await;
    assert_eq!(v["completed_task_ids"].as_array().unwrap().len(), 1);
    // No primary: unassigned, in the secretary's queue.
    ok(&app.put(&grid_workers, &w.sec_a, json!({"workers": [{"user_id": w.user_w_a1}]})).await);
    assert!(open_tasks(&app, &w.sec_a, h).await.iter().all(|t| t.2.is_null()));
    let queue = ok(&app.get_as("/api/v1/tasks?assignee=none&status=open", &w.sec_a).await);
    assert_eq!(queue["items"].as_array().unwrap().len(), 2);
    // New tasks while unassigned are unassigned too.
    let hh = app.create_household(&w.sec_a, &w.grid_a1, "新住户").await;
    assert!(open_tasks(&app, &w.sec_a, &hh).await[0].2.is_null());
}

async fn secretaries_reassign_and_cancel(app: TestApp) {
    let w = app.world().await;
    let h = &w.household_a1;
    let list = ok(&app.get_as(&format!("/api/v1/tasks?household_id={h}&status=open"), &w.sec_a).await);
    let task = list["items"][0].clone();
    let path = format!("/api/v1/tasks/{}", task["id"].as_str().unwrap());
    app.patch(&path, &w.w_a1, json!({"assignee_id": null}), None).await.assert_problem(403);
    // Only a worker of the task's grid may take it.
    let res = app.patch(&path, &w.sec_a, json!({"assignee_id": w.user_w_a2}), None).await;
    assert_eq!(res.assert_problem(422)["errors"][0]["code"], "not_a_grid_worker");
    let res = ok(&app.patch(&path, &w.sec_a, json!({"assignee_id": null}), None).await);
    assert_eq!(res["assignee_id"], Value::Null);
    app.patch(&path, &w.sec_a, json!({"status": "cancelled"}), None).await.assert_problem(422);
    app.patch(&path, &w.sec_a, json!({"status": "done"}), None).await.assert_problem(422);
    app.patch(&path, &w.sec_b, json!({"status": "cancelled", "cancel_reason": "x"}), None).await.assert_problem(404);
    let res = ok(&app.patch(&path, &w.sec_a, json!({"status": "cancelled", "cancel_reason": "住院中"}), None).await);
    assert_eq!(res["status"], "cancelled");
    // Skipped: the next visit is one interval after the skipped one.
    assert_eq!(open_tasks(&app, &w.sec_a, h).await, vec![("home_visit".into(), d(180), json!(w.user_w_a1))]);
    app.patch(&path, &w.sec_a, json!({"status": "cancelled", "cancel_reason": "again"}), None)
        .await
        .assert_problem(409);
}

async fn removal_cancels_and_overdue_is_flagged(app: TestApp) {
    let w = app.world().await;
    let h = &w.household_a1;
    set_tag(&app, &w, h, "red", "elderly_living_alone").await;
    // Make the call overdue.
    let yesterday = today() - Duration::days(2);
    let hid = h.clone();
    app.state
        .db
        .write(move |c| {
            Ok(diesel::update(
                tasks::table
                    .filter(tasks::household_id.eq(hid))
                    .filter(tasks::kind.eq("phone_call"))
                    .filter(tasks::status.eq("open")),
            )
            .set(tasks::due_on.eq(yesterday))
            .execute(c)?)
        })
        .await
        .unwrap();
    let overdue = ok(&app.get_as("/api/v1/tasks?assignee=me&overdue=true", &w.w_a1).await);
    let items = overdue["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["overdue"], true);
    assert_eq!(items[0]["kind"], "phone_call");
    // The to-do list is soonest first, the overdue one on top.
    let todo = ok(&app.get_as("/api/v1/tasks?assignee=me&status=open", &w.w_a1).await);
    assert_eq!(todo["items"][0]["overdue"], true);
    let dues: Vec<&str> = todo["items"].as_array().unwrap().iter().map(|t| t["due_on"].as_str().unwrap()).collect();
    let mut sorted = dues.clone();
    sorted.sort();
    assert_eq!(dues, sorted);
    // Workers see their grids' tasks only.
    let other = ok(&app.get_as("/api/v1/tasks", &w.w_a2).await);
    assert!(other["items"].as_array().unwrap().iter().all(|t| t["grid_id"] == w.grid_a2.as_str()));
    // Removing the household cancels its open tasks.
    ok(&app.delete_as(&format!("/api/v1/households/{h}?reason=moved_out"), &w.sec_a).await);
    assert!(open_tasks(&app, &w.sec_a, h).await.is_empty());
    let n: i64 = app.state.db.read(|c| Ok(visits::table.count().get_result(c)?)).await.unwrap();
    assert_eq!(n, 0);
}
