//! The sync's fast paths against the slow ones they stand for: a push of visits, recorded as a
//! batch, against the same visits sent one by one to `POST /visits`; and the empty delta of an
//! up-to-date device, answered in one statement, against what the full feed then carries.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::TestApp;
use crate::support::replica::differences;
use crate::support::world::{World, ok};
use crate::sync::{Device, server_view};

on_both_backends!(a_push_of_visits_answers_as_the_visits_one_by_one, an_empty_delta_still_sees_what_comes_later);

/// The households of one run: three in the worker's grid, one removed, one in another grid.
struct Homes {
    h: [String; 3],
    removed: String,
    foreign: String,
}

async fn homes(app: &TestApp, w: &World, run: &str) -> Homes {
    let mut h = Vec::new();
    for i in 0..3 {
        h.push(app.create_household(&w.sec_a, &w.grid_a1, &format!("{run}{i}号")).await);
    }
    let removed = app.create_household(&w.sec_a, &w.grid_a1, &format!("{run}迁出")).await;
    ok(&app.delete_as(&format!("/api/v1/households/{removed}?reason=deceased"), &w.sec_a).await);
    Homes { h: h.try_into().unwrap(), removed, foreign: w.household_a2.clone() }
}

/// The visits of a run, in order: two to a household of the same kind (the second completes
/// the task the first scheduled), one out of scope, one in the future, one to a removed
/// household, a replay, an id of another visit, and visits of other kinds to the same
/// households in between.
fn visits(h: &Homes) -> Vec<Value> {
    let base = Utc::now() - Duration::minutes(30);
    let at = |m: i64| (base + Duration::minutes(m)).to_rfc3339();
    let id: Vec<String> = (0..6).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    vec![
        json!({"id": id[0], "household_id": h.h[0], "kind": "home_visit", "visited_at": at(0), "notes": "一"}),
        json!({"id": id[1], "household_id": h.h[0], "kind": "home_visit", "visited_at": at(1)}),
        json!({"id": id[2], "household_id": h.h[1], "kind": "phone_call", "visited_at": at(2)}),
        json!({"household_id": h.foreign, "kind": "phone_call", "visited_at": at(3)}),
        json!({"id": id[3], "household_id": h.h[0], "kind": "phone_call", "visited_at": at(4)}),
        json!({"household_id": h.h[2], "kind": "phone_call", "visited_at": (Utc::now() + Duration::hours(2)).to_rfc3339()}),
        json!({"household_id": h.removed, "kind": "home_visit", "visited_at": at(5)}),
        json!({"id": id[0], "household_id": h.h[0], "kind": "home_visit", "visited_at": at(0), "notes": "一"}),
        json!({"id": id[2], "household_id": h.h[1], "kind": "phone_call", "visited_at": at(2), "notes": "另"}),
        json!({"id": id[4], "household_id": h.h[2], "kind": "service", "visited_at": at(6)}),
        json!({"id": id[5], "household_id": h.h[1], "kind": "phone_call", "visited_at": at(7)}),
        json!({"id": id[3], "household_id": h.h[0], "kind": "phone_call", "visited_at": at(4)}),
    ]
}

/// What a run did for each visit: its status (and code), the number of tasks it completed, and
/// its audit event's `tasks_created` and completed count.
type Outcome = (String, Option<String>, usize);

/// What a run left: per household slot, its tasks as (kind, status, due_on, done, the index of
/// the visit that completed it), sorted; per visit index, its audit summary's counts.
type Left = (Vec<Vec<(String, String, String, bool, Option<usize>)>>, BTreeMap<usize, (u64, usize)>);

async fn left(app: &TestApp, w: &World, h: &Homes, sent: &[Value]) -> Left {
    let index: BTreeMap<String, usize> =
        sent.iter().enumerate().rev().filter_map(|(i, v)| v["id"].as_str().map(|id| (id.to_owned(), i))).collect();
    let mut tasks = Vec::new();
    for household in &h.h {
        let page = ok(&app.get_as(&format!("/api/v1/tasks?household_id={household}&limit=100"), &w.sec_a).await);
        let mut of: Vec<_> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let visit = t["visit_id"].as_str().map(|v| index[v]);
                let s = |f: &str| t[f].as_str().unwrap_or_default().to_owned();
                (s("kind"), s("status"), s("due_on"), !t["completed_at"].is_null(), visit)
            })
            .collect();
        of.sort();
        tasks.push(of);
    }
    let events = ok(&app.get_as("/api/v1/audit-events?entity_type=visit&limit=500", &w.admin).await);
    let mut audit = BTreeMap::new();
    for e in events["items"].as_array().unwrap() {
        if let Some(&i) = e["entity_id"].as_str().and_then(|id| index.get(id)) {
            let s = &e["summary"];
            audit.insert(i, (s["tasks_created"].as_u64().unwrap(), s["completed_task_ids"].as_array().unwrap().len()));
        }
    }
    (tasks, audit)
}

async fn a_push_of_visits_answers_as_the_visits_one_by_one(app: TestApp) {
    let w = app.world().await;
    // One by one.
    let one = homes(&app, &w, "逐条").await;
    let sent_one = visits(&one);
    let mut singles: Vec<Outcome> = Vec::new();
    for v in &sent_one {
        let res = app.post("/api/v1/visits", Some(&w.w_a1), v.clone()).await;
        let body = res.json();
        singles.push(match res.status.as_u16() {
            201 => ("applied".into(), None, body["completed_task_ids"].as_array().unwrap().len()),
            200 => ("duplicate".into(), None, body["completed_task_ids"].as_array().unwrap().len()),
            _ => ("rejected".into(), body["code"].as_str().map(str::to_owned), 0),
        });
    }
    // The same as one push.
    let batch = homes(&app, &w, "批量").await;
    let sent_batch = visits(&batch);
    let ops: Vec<Value> = sent_batch
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"op_id": format!("b-{i}"), "kind": "visit.record", "body": v}))
        .collect();
    let res = ok(&app.post("/api/v1/sync/push", Some(&w.w_a1), json!({"operations": ops})).await);
    let pushed: Vec<Outcome> = res["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let completed = r["record"]["completed_task_ids"].as_array().map_or(0, Vec::len);
            let status = r["status"].as_str().unwrap().to_owned();
            let completed = if status == "rejected" { 0 } else { completed };
            (status, r["code"].as_str().map(str::to_owned), completed)
        })
        .collect();
    let statuses: Vec<(&str, Option<&str>)> = pushed.iter().map(|(s, c, _)| (s.as_str(), c.as_deref())).collect();
    assert_eq!(
        statuses,
        [
            ("applied", None),
            ("applied", None),
            ("applied", None),
            ("rejected", Some("not_found")),
            ("applied", None),
            ("rejected", Some("validation")),
            ("rejected", Some("not_found")),
            ("duplicate", None),
            ("rejected", Some("id_conflict")),
            ("applied", None),
            ("applied", None),
            ("duplicate", None),
        ],
        "{res}"
    );
    // The second home visit completed the task the first one scheduled.
    assert_eq!(pushed[1].2, 1, "{res}");
    assert_eq!(pushed, singles, "the push answers as the visits one by one");
    let (tasks_one, audit_one) = left(&app, &w, &one, &sent_one).await;
    let (tasks_batch, audit_batch) = left(&app, &w, &batch, &sent_batch).await;
    assert_eq!(tasks_batch, tasks_one, "the same tasks");
    assert_eq!(audit_batch, audit_one, "the same audit events");
    assert_eq!(audit_batch.len(), 6, "{audit_batch:?}");
    assert!(tasks_batch[0].iter().filter(|t| t.1 == "done").count() >= 2, "{tasks_batch:?}");

    // Sent again: what was done is a duplicate, what was refused is refused again.
    let again = ok(&app.post("/api/v1/sync/push", Some(&w.w_a1), json!({"operations": ops})).await);
    let statuses: Vec<&str> =
        again["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    let expected: Vec<&str> =
        pushed.iter().map(|(s, _, _)| if s == "rejected" { "rejected" } else { "duplicate" }).collect();
    assert_eq!(statuses, expected, "{again}");
    // Under new op ids, the visits are replays by their ids, as one by one.
    let renamed: Vec<Value> = sent_batch
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"op_id": format!("c-{i}"), "kind": "visit.record", "body": v}))
        .collect();
    let replayed = ok(&app.post("/api/v1/sync/push", Some(&w.w_a1), json!({"operations": renamed})).await);
    let mut singles_again = Vec::new();
    for v in &sent_one {
        let res = app.post("/api/v1/visits", Some(&w.w_a1), v.clone()).await;
        singles_again.push(match res.status.as_u16() {
            200 => "duplicate".to_owned(),
            201 => "applied".to_owned(),
            _ => format!("rejected {}", res.json()["code"].as_str().unwrap()),
        });
    }
    let replays: Vec<String> = replayed["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| match r["status"].as_str().unwrap() {
            "rejected" => format!("rejected {}", r["code"].as_str().unwrap()),
            s => s.to_owned(),
        })
        .collect();
    assert_eq!(replays, singles_again, "{replayed}");
    // Nothing was written twice.
    assert_eq!(left(&app, &w, &batch, &sent_batch).await, (tasks_batch, audit_batch));
}

async fn an_empty_delta_still_sees_what_comes_later(app: TestApp) {
    let w = app.world().await;
    let mut device = Device::default();
    device.sync(&app, &w.w_a1, 500).await;
    let mut office = Device::default();
    office.sync(&app, &w.sec_a, 500).await;
    // Nothing new: empty pages, again and again.
    for _ in 0..2 {
        assert_eq!(device.sync(&app, &w.w_a1, 500).await, Vec::<Value>::new());
        assert_eq!(office.sync(&app, &w.sec_a, 500).await, Vec::<Value>::new());
    }
    // A change in another grid: nothing for the worker, the household for the secretary.
    let path = format!("/api/v1/households/{}", w.household_a2);
    ok(&app.patch(&path, &w.sec_a, json!({"notes": "楼道灯坏了"}), None).await);
    assert_eq!(device.sync(&app, &w.w_a1, 500).await, Vec::<Value>::new());
    let changes = office.sync(&app, &w.sec_a, 500).await;
    assert!(changes.iter().any(|c| c["id"] == w.household_a2.as_str()), "{changes:?}");
    // Assigned a second grid right after an empty delta: all of it arrives.
    app.assign(&w.sec_a, &w.grid_a2, &[(&w.user_w_a2, true), (&w.user_w_a1, false)]).await;
    let changes = device.sync(&app, &w.w_a1, 500).await;
    assert!(changes.iter().any(|c| c["entity"] == "household" && c["id"] == w.household_a2.as_str()), "{changes:?}");
    if let Some(d) = differences(device.replica.view(), server_view(&app, &w.w_a1).await) {
        panic!("after an assignment: {d}");
    }
    assert_eq!(device.sync(&app, &w.w_a1, 500).await, Vec::<Value>::new());
    // A token of another account is refused, not served empty.
    let url = format!("/api/v1/sync?since={}", device.token.as_deref().unwrap());
    app.get_as(&url, &w.w_a2).await.assert_problem(410);
    // Deactivated: the session ends on this path too.
    ok(&app.patch(&format!("/api/v1/users/{}", w.user_w_a1), &w.sec_a, json!({"active": false}), None).await);
    app.get_as(&url, &w.w_a1).await.assert_problem(401);
}
