//! The event feed (`GET /events`) and webhook subscriptions (`/webhooks`): every event type with
//! its ids and data, the job's events emitted once, no personal data in any event, the feed's
//! scope per role, its paging and pruning; the subscriptions' CRUD, secret handling, URL policy,
//! audit, and that bad input changes nothing.

use chrono::{Duration, NaiveDate, Utc};
use diesel::prelude::*;
use serde_json::{Value, json};

use gridlight::db::schema::{event_marks, households, tasks};
use gridlight::store::events::Emitted;

use crate::on_both_backends;
use crate::support::fixtures::PASSWORD;
use crate::support::world::{World, id_number, ok};
use crate::support::{TestApp, TestResponse};

on_both_backends!(
    every_event_type_is_in_the_feed_with_its_ids_and_data,
    the_job_emits_its_events_once,
    the_job_works_through_a_backlog_once,
    no_event_carries_personal_data,
    the_feed_is_scoped_per_role,
    the_feed_pages_and_filters,
    pruned_events_are_gone,
    a_new_subscription_starts_after_the_latest_event,
    webhooks_are_managed_by_secretaries_and_administrators,
    webhook_secrets_are_shown_once_and_rotate,
    webhook_urls_must_be_public,
    bad_webhook_input_changes_nothing,
    concurrent_patches_with_one_if_match_apply_once,
    dead_letters_are_listed_and_resent,
    deliveries_are_listed_newest_first,
    a_subscription_the_server_turned_off_is_turned_back_on,
);

// ---------------------------------------------------------------------------------------------
// Helpers

fn today() -> NaiveDate {
    // The world's communities are in Asia/Shanghai.
    gridlight::store::communities::today_in("Asia/Shanghai")
}

/// One page of the feed.
async fn page(app: &TestApp, token: &str, query: &str) -> Value {
    ok(&app.get_as(&format!("/api/v1/events?{query}"), token).await)
}

/// Waits until every event written so far is numbered (PostgreSQL numbers committed events when
/// it finds them: the feed does before it reads, but leaves it to a numbering under way).
async fn settle(app: &TestApp) {
    use gridlight::store::events;
    for _ in 0..1200 {
        let pending = app.state.db.write(|c| Ok(events::sequence(c, true).and_then(|_| events::unsequenced(c))?)).await;
        if !pending.unwrap() {
            return;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("events were not numbered within 30 s");
}

/// Every event after `after` the caller sees (`extra`: more query), and the `next_after` to
/// continue from.
async fn read_all(app: &TestApp, token: &str, after: i64, extra: &str) -> (Vec<Value>, i64) {
    settle(app).await;
    let mut items = Vec::new();
    let mut after = after;
    loop {
        let p = page(app, token, &format!("after={after}&limit=1000{extra}")).await;
        items.extend(p["items"].as_array().unwrap().iter().cloned());
        let next = p["next_after"].as_i64().unwrap();
        assert!(next >= after, "next_after went back: {after} → {next}");
        after = next;
        if p["more"] == false {
            return (items, after);
        }
    }
}

/// Where the feed stands now (the admin's `next_after` from 0).
async fn feed_end(app: &TestApp, w: &World) -> i64 {
    read_all(app, &w.admin, 0, "").await.1
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

/// The events of a type about one record.
fn about<'a>(events: &'a [Value], kind: &str, entity_id: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind && e["entity_id"] == entity_id).collect()
}

/// The one event of a type about a record.
#[track_caller]
fn one<'a>(events: &'a [Value], kind: &str, entity_id: &str) -> &'a Value {
    let found = about(events, kind, entity_id);
    assert_eq!(found.len(), 1, "{kind} of {entity_id}: {found:?}\nall: {}", types_of(events));
    found[0]
}

fn types_of(events: &[Value]) -> String {
    events.iter().map(|e| format!("{}:{}", e["type"], e["entity_id"])).collect::<Vec<_>>().join(", ")
}

/// Checks the envelope every event has.
#[track_caller]
fn assert_event(e: &Value, entity: &str, community: &str, grid: &str, household: &str) {
    assert_eq!(e["entity"], entity, "{e}");
    assert_eq!(e["community_id"], community, "{e}");
    assert_eq!(e["grid_id"], grid, "{e}");
    assert_eq!(e["household_id"], household, "{e}");
    assert!(e["id"].as_i64().is_some_and(|i| i > 0), "{e}");
    assert!(e["occurred_at"].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()), "{e}");
    let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
    let mut keys: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["community_id", "data", "entity", "entity_id", "grid_id", "household_id", "id", "occurred_at", "type"],
        "{e}"
    );
}

async fn user_id(app: &TestApp, token: &str) -> String {
    ok(&app.get_as("/api/v1/me", token).await)["id"].as_str().unwrap().to_owned()
}

async fn run_job(app: &TestApp) -> Emitted {
    let db = app.state.db.clone();
    actix_web::web::block(move || gridlight::jobs::emit_due_events(&db, 30)).await.unwrap().unwrap()
}

async fn set_due_on(app: &TestApp, task: &str, due: NaiveDate) {
    let id = task.to_owned();
    app.state
        .db
        .write(move |c| Ok(diesel::update(tasks::table.find(id)).set(tasks::due_on.eq(due)).execute(c)?))
        .await
        .unwrap();
}

async fn set_review_due(app: &TestApp, household: &str, due: NaiveDate) {
    let id = household.to_owned();
    app.state
        .db
        .write(move |c| {
            Ok(diesel::update(households::table.find(id))
                .set(households::tag_review_due_on.eq(Some(due)))
                .execute(c)?)
        })
        .await
        .unwrap();
}

/// The open tasks of a household.
async fn open_tasks(app: &TestApp, token: &str, household: &str) -> Vec<Value> {
    let res = ok(&app.get_as(&format!("/api/v1/tasks?household_id={household}&status=open"), token).await);
    res["items"].as_array().unwrap().clone()
}

async fn visit(app: &TestApp, token: &str, household: &str, kind: &str, notes: &str) -> String {
    let body = json!({"household_id": household, "kind": kind, "visited_at": Utc::now().to_rfc3339(), "notes": notes});
    ok(&app.post("/api/v1/visits", Some(token), body).await)["id"].as_str().unwrap().to_owned()
}

async fn propose(app: &TestApp, token: &str, household: &str, body: Value) -> Value {
    let res = app.post(&format!("/api/v1/households/{household}/tag-changes"), Some(token), body).await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    res.json()
}

async fn move_household(app: &TestApp, token: &str, household: &str, grid: &str) {
    ok(&app.patch(&format!("/api/v1/households/{household}"), token, json!({"grid_id": grid}), None).await);
}

/// An officer account for a street or district; returns its token.
async fn officer(app: &TestApp, w: &World, username: &str, unit: Value) -> String {
    let mut body = json!({"username": username, "password": PASSWORD, "display_name": username});
    body.as_object_mut().unwrap().extend(unit.as_object().unwrap().clone());
    ok(&app.post("/api/v1/users", Some(&w.admin), body).await);
    app.token(username).await
}

/// A street officer of community A's street and a district officer of community B's district.
async fn officers(app: &TestApp, w: &World) -> (String, String) {
    let street_a =
        ok(&app.get_as(&format!("/api/v1/communities/{}", w.community_a), &w.admin).await)["street_id"].clone();
    let street_b =
        ok(&app.get_as(&format!("/api/v1/communities/{}", w.community_b), &w.admin).await)["street_id"].clone();
    let street_b = street_b.as_str().unwrap();
    let district_b = ok(&app.get_as(&format!("/api/v1/streets/{street_b}"), &w.admin).await)["district_id"].clone();
    let so_a = officer(app, w, "so-a", json!({"role": "street_officer", "street_id": street_a})).await;
    let do_b = officer(app, w, "do-b", json!({"role": "district_officer", "district_id": district_b})).await;
    (so_a, do_b)
}

const HOOK_URL: &str = "https://hooks.example.com/x";

async fn create_hook(app: &TestApp, token: &str, body: Value) -> Value {
    let res = app.post("/api/v1/webhooks", Some(token), body).await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    let etag = format!("\"{}\"", res.json()["version"]);
    assert_eq!(res.header("etag"), Some(etag.as_str()));
    res.json()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// The ids of the subscriptions a caller lists.
async fn hook_ids(app: &TestApp, token: &str) -> Vec<String> {
    let mut ids: Vec<String> = ok(&app.get_as("/api/v1/webhooks?limit=500", token).await)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    ids.sort();
    ids
}

async fn webhook_audit(app: &TestApp, w: &World) -> Vec<Value> {
    ok(&app.get_as("/api/v1/audit-events?entity_type=webhook&limit=500", &w.admin).await)["items"]
        .as_array()
        .unwrap()
        .clone()
}

#[track_caller]
fn assert_4xx_problem(res: &TestResponse, context: &str) -> Value {
    assert!(res.status.is_client_error(), "{context}: {} {}", res.status, String::from_utf8_lossy(&res.body));
    res.assert_problem(res.status.as_u16())
}

// ---------------------------------------------------------------------------------------------
// The feed

async fn every_event_type_is_in_the_feed_with_its_ids_and_data(app: TestApp) {
    let w = app.world().await;
    let sec_a_id = user_id(&app, &w.sec_a).await;
    // The world's own registrations are events too.
    let (world_events, start) = read_all(&app, &w.admin, 0, "").await;
    for (h, c, g) in [
        (&w.household_a1, &w.community_a, &w.grid_a1),
        (&w.household_a2, &w.community_a, &w.grid_a2),
        (&w.household_b1, &w.community_b, &w.grid_b1),
    ] {
        let e = one(&world_events, "household.registered", h);
        assert_event(e, "household", c, g, h);
        assert_eq!(e["data"], json!({"tag": "green"}));
    }
    let ids: Vec<i64> = world_events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|p| p[0] < p[1]), "ids increase: {ids:?}");
    assert_eq!(start, *ids.last().unwrap());

    // household.registered
    let h = app.create_household(&w.sec_a, &w.grid_a1, "赵六顺").await;
    // tag_change.proposed, then rejected: tag_change.decided (rejected), no tag change.
    let p1 = propose(&app, &w.w_a1, &h, json!({"to_tag": "yellow", "reasons": ["low_income"]})).await;
    let p1_id = id_of(&p1);
    let res = app.post(&format!("/api/v1/tag-changes/{p1_id}/reject"), Some(&w.sec_a), json!({"note": "不符合"})).await;
    ok(&res);
    // Proposed and approved: tag_change.decided (approved) and household.tag_changed.
    let p2 =
        propose(&app, &w.w_a1, &w.household_a1, json!({"to_tag": "red", "reasons": ["elderly_living_alone"]})).await;
    let p2_id = id_of(&p2);
    ok(&app.post(&format!("/api/v1/tag-changes/{p2_id}/approve"), Some(&w.sec_a), json!({})).await);
    // Set directly by a secretary: decided at once.
    let p3 = propose(&app, &w.sec_a, &w.household_a2, json!({"to_tag": "yellow", "reasons": ["low_income"]})).await;
    let p3_id = id_of(&p3);
    // visit.recorded
    let v = visit(&app, &w.w_a1, &w.household_a1, "service", "").await;
    // task.reassigned: a secretary takes a task off its worker.
    let tasks_a1 = open_tasks(&app, &w.sec_a, &w.household_a1).await;
    let call = tasks_a1.iter().find(|t| t["kind"] == "phone_call").unwrap().clone();
    let home = tasks_a1.iter().find(|t| t["kind"] == "home_visit").unwrap().clone();
    let home_id = id_of(&home);
    ok(&app.patch(&format!("/api/v1/tasks/{home_id}"), &w.sec_a, json!({"assignee_id": null}), None).await);
    // household.moved (its open task follows it: reassigned to the new grid's primary worker).
    let h_task = id_of(&open_tasks(&app, &w.sec_a, &h).await[0]);
    move_household(&app, &w.sec_a, &h, &w.grid_a2).await;
    // A pending proposal, then household.removed (the proposal is cancelled with it).
    let p4 = propose(&app, &w.w_a2, &h, json!({"to_tag": "red", "reasons": ["serious_illness"]})).await;
    let p4_id = id_of(&p4);
    ok(&app.delete_as(&format!("/api/v1/households/{h}?reason=deceased"), &w.sec_a).await);
    // task.overdue and review.due, by the job.
    let call_id = id_of(&call);
    let overdue_on = today() - Duration::days(2);
    set_due_on(&app, &call_id, overdue_on).await;
    let review_on = today() - Duration::days(1);
    set_review_due(&app, &w.household_b1, review_on).await;
    assert_eq!(run_job(&app).await, Emitted { overdue: 1, reviews: 1 });

    let (events, end) = read_all(&app, &w.admin, start, "").await;
    assert!(events.iter().all(|e| e["id"].as_i64().unwrap() > start));
    assert_eq!(end, events.last().unwrap()["id"].as_i64().unwrap());
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|p| p[0] < p[1]), "ids increase: {ids:?}");
    let (ca, cb) = (w.community_a.as_str(), w.community_b.as_str());

    let e = one(&events, "household.registered", &h);
    assert_event(e, "household", ca, &w.grid_a1, &h);
    assert_eq!(e["data"], json!({"tag": "green"}));

    let e = one(&events, "tag_change.proposed", &p1_id);
    assert_event(e, "tag_change", ca, &w.grid_a1, &h);
    assert_eq!(e["data"], json!({"from": "green", "to": "yellow", "proposed_by": w.user_w_a1}));
    let e = one(&events, "tag_change.decided", &p1_id);
    assert_eq!(e["data"], json!({"from": "green", "to": "yellow", "status": "rejected", "decided_by": sec_a_id}));

    let e = one(&events, "tag_change.proposed", &p2_id);
    assert_event(e, "tag_change", ca, &w.grid_a1, &w.household_a1);
    let e = one(&events, "tag_change.decided", &p2_id);
    assert_event(e, "tag_change", ca, &w.grid_a1, &w.household_a1);
    assert_eq!(e["data"], json!({"from": "green", "to": "red", "status": "approved", "decided_by": sec_a_id}));
    let e = one(&events, "household.tag_changed", &w.household_a1);
    assert_event(e, "household", ca, &w.grid_a1, &w.household_a1);
    assert_eq!(e["data"], json!({"from": "green", "to": "red"}));

    // A secretary's setting is decided at once: no proposal event.
    assert!(about(&events, "tag_change.proposed", &p3_id).is_empty());
    let e = one(&events, "tag_change.decided", &p3_id);
    assert_event(e, "tag_change", ca, &w.grid_a2, &w.household_a2);
    assert_eq!(e["data"], json!({"from": "green", "to": "yellow", "status": "approved", "decided_by": sec_a_id}));
    let e = one(&events, "household.tag_changed", &w.household_a2);
    assert_eq!(e["data"], json!({"from": "green", "to": "yellow"}));

    let e = one(&events, "visit.recorded", &v);
    assert_event(e, "visit", ca, &w.grid_a1, &w.household_a1);
    assert_eq!(e["data"], json!({"kind": "service", "worker_id": w.user_w_a1}));

    let e = one(&events, "task.reassigned", &home_id);
    assert_event(e, "task", ca, &w.grid_a1, &w.household_a1);
    assert_eq!(
        e["data"],
        json!({"from_assignee_id": w.user_w_a1, "to_assignee_id": null, "due_on": home["due_on"], "tag": "red"})
    );

    let e = one(&events, "household.moved", &h);
    assert_event(e, "household", ca, &w.grid_a2, &h);
    assert_eq!(e["data"], json!({"from_grid_id": w.grid_a1, "to_grid_id": w.grid_a2}));
    let e = one(&events, "task.reassigned", &h_task);
    assert_eq!(e["data"]["from_assignee_id"], w.user_w_a1.as_str());
    assert_eq!(e["data"]["to_assignee_id"], w.user_w_a2.as_str());
    assert_eq!(e["grid_id"], w.grid_a2.as_str());

    let e = one(&events, "tag_change.proposed", &p4_id);
    assert_eq!(e["data"]["proposed_by"], w.user_w_a2.as_str());
    let e = one(&events, "household.removed", &h);
    assert_event(e, "household", ca, &w.grid_a2, &h);
    assert_eq!(e["data"], json!({"reason": "deceased"}));
    let e = one(&events, "tag_change.decided", &p4_id);
    assert_eq!(e["data"]["status"], "cancelled");
    // Removing is not a re-tag, nor a move.
    assert_eq!(about(&events, "household.moved", &h).len(), 1);
    assert!(about(&events, "household.tag_changed", &h).is_empty());

    let e = one(&events, "task.overdue", &call_id);
    assert_event(e, "task", ca, &w.grid_a1, &w.household_a1);
    assert_eq!(e["data"], json!({"due_on": overdue_on.to_string(), "tag": "red", "assignee_id": w.user_w_a1}));
    let e = one(&events, "review.due", &w.household_b1);
    assert_event(e, "household", cb, &w.grid_b1, &w.household_b1);
    assert_eq!(e["data"], json!({"due_on": review_on.to_string(), "tag": "green"}));

    // Every type appeared; no event that is not one of them.
    let known = [
        "household.registered",
        "household.tag_changed",
        "household.moved",
        "household.removed",
        "tag_change.proposed",
        "tag_change.decided",
        "task.reassigned",
        "task.overdue",
        "visit.recorded",
        "review.due",
    ];
    for t in known {
        assert!(!of_type(&events, t).is_empty(), "no {t}: {}", types_of(&events));
    }
    assert!(events.iter().all(|e| known.contains(&e["type"].as_str().unwrap())), "{}", types_of(&events));
    // Changes that are no event (an edit of notes, a member) add nothing.
    let before = feed_end(&app, &w).await;
    ok(&app.patch(&format!("/api/v1/households/{}", w.household_a2), &w.sec_a, json!({"notes": "改"}), None).await);
    ok(&app.patch(&format!("/api/v1/members/{}", w.member_a2), &w.sec_a, json!({"notes": "改"}), None).await);
    let (none, _) = read_all(&app, &w.admin, before, "").await;
    assert!(none.is_empty(), "{}", types_of(&none));
}

async fn the_job_emits_its_events_once(app: TestApp) {
    let w = app.world().await;
    // Nothing is due in a new world.
    assert_eq!(run_job(&app).await, Emitted::default());
    let start = feed_end(&app, &w).await;
    let tasks_a1 = open_tasks(&app, &w.sec_a, &w.household_a1).await;
    let task = id_of(&tasks_a1[0]);
    set_due_on(&app, &task, today() - Duration::days(3)).await;
    // Due today is not overdue yet; a review due today is due.
    let task_b = id_of(&open_tasks(&app, &w.sec_b, &w.household_b1).await[0]);
    set_due_on(&app, &task_b, today()).await;
    set_review_due(&app, &w.household_a2, today()).await;
    // Beyond the job's window: left alone (earlier runs emitted it).
    let task_a2 = id_of(&open_tasks(&app, &w.sec_a, &w.household_a2).await[0]);
    set_due_on(&app, &task_a2, today() - Duration::days(45)).await;
    assert_eq!(run_job(&app).await, Emitted { overdue: 1, reviews: 1 });
    assert_eq!(run_job(&app).await, Emitted::default(), "a second run emits nothing more");
    // Two runs at once emit nothing more either.
    let (db1, db2) = (app.state.db.clone(), app.state.db.clone());
    let t1 = std::thread::spawn(move || gridlight::jobs::emit_due_events(&db1, 30).unwrap());
    let t2 = std::thread::spawn(move || gridlight::jobs::emit_due_events(&db2, 30).unwrap());
    assert_eq!((t1.join().unwrap(), t2.join().unwrap()), (Emitted::default(), Emitted::default()));
    let (events, _) = read_all(&app, &w.admin, start, "").await;
    assert_eq!(types_of(&events), format!("\"task.overdue\":\"{task}\", \"review.due\":\"{}\"", w.household_a2));
    // A task that falls due again on another date is overdue again, once.
    set_due_on(&app, &task, today() - Duration::days(1)).await;
    assert_eq!(run_job(&app).await, Emitted { overdue: 1, reviews: 0 });
    assert_eq!(run_job(&app).await, Emitted::default());
    let (events, _) = read_all(&app, &w.admin, start, "&types=task.overdue").await;
    assert_eq!(events.len(), 2);
    // A removed household's review is no event.
    set_review_due(&app, &w.household_b1, today()).await;
    ok(&app.delete_as(&format!("/api/v1/households/{}?reason=moved_out", w.household_b1), &w.sec_b).await);
    assert_eq!(run_job(&app).await, Emitted::default());
}

/// A first run over a large database (a backlog of hundreds of tasks overdue on the same dates,
/// and of reviews due, in one community: more than a transaction's batch of each) emits every
/// event once, in batches that go on from where the one before got to; two instances working
/// through it at once emit each once between them.
async fn the_job_works_through_a_backlog_once(app: TestApp) {
    let db = app.state.db.clone();
    let (overdue, reviews) = actix_web::web::block(move || {
        gridlight::seed::synthetic::load(&db, 1600, 5).unwrap();
        db.write_blocking(|c| {
            let day = |n: i64| today() - Duration::days(n);
            let open: Vec<String> =
                tasks::table.filter(tasks::status.eq("open")).order(tasks::id.asc()).select(tasks::id).load(c)?;
            // A third each overdue by a day, by two days, and beyond the job's window.
            for (i, chunk) in open.chunks(open.len().div_ceil(3)).enumerate() {
                let due = [day(1), day(2), day(45)][i];
                for ids in chunk.chunks(500) {
                    diesel::update(tasks::table.filter(tasks::id.eq_any(ids))).set(tasks::due_on.eq(due)).execute(c)?;
                }
            }
            diesel::update(households::table).set(households::tag_review_due_on.eq(None::<NaiveDate>)).execute(c)?;
            let reviewed: Vec<String> =
                households::table.order(households::id.asc()).select(households::id).limit(450).load(c)?;
            for (i, ids) in reviewed.chunks(225).enumerate() {
                let due = [today(), day(3)][i];
                diesel::update(households::table.filter(households::id.eq_any(ids)))
                    .set(households::tag_review_due_on.eq(Some(due)))
                    .execute(c)?;
            }
            let overdue: i64 = tasks::table
                .filter(tasks::status.eq("open").and(tasks::due_on.eq_any([day(1), day(2)])))
                .count()
                .get_result(c)?;
            Ok((overdue as usize, reviewed.len()))
        })
        .unwrap()
    })
    .await
    .unwrap();
    assert!(overdue > 2 * 200, "{overdue} overdue: more than two transactions' worth");
    let (db1, db2) = (app.state.db.clone(), app.state.db.clone());
    let t1 = std::thread::spawn(move || gridlight::jobs::emit_due_events(&db1, 30).unwrap());
    let t2 = std::thread::spawn(move || gridlight::jobs::emit_due_events(&db2, 30).unwrap());
    let (a, b) = (t1.join().unwrap(), t2.join().unwrap());
    assert_eq!((a.overdue + b.overdue, a.reviews + b.reviews), (overdue, reviews), "{a:?} + {b:?}");
    assert_eq!(run_job(&app).await, Emitted::default(), "a later run emits nothing more");
    let marks: Vec<(String, i64)> = app
        .state
        .db
        .read(|c| {
            Ok(event_marks::table
                .group_by(event_marks::event)
                .select((event_marks::event, diesel::dsl::count_star()))
                .order(event_marks::event.asc())
                .load(c)?)
        })
        .await
        .unwrap();
    assert_eq!(marks, [("review.due".to_owned(), reviews as i64), ("task.overdue".to_owned(), overdue as i64)]);
}

async fn no_event_carries_personal_data(app: TestApp) {
    let w = app.world().await;
    let head = "钱多多";
    let phone = "13712345670";
    let h = ok(&app
        .post(
            "/api/v1/households",
            Some(&w.sec_a),
            json!({"grid_id": w.grid_a1, "address": {"building": "9号楼", "unit": "1单元", "room": "909"},
                   "head_name": head, "phone": phone, "notes": "NOTE-household-0001"}),
        )
        .await)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let new_id_number = id_number("1948-11-09", 5);
    app.create_member(
        &w.sec_a,
        &h,
        json!({"name": head, "gender": "male", "birth_date": "1948-11-09", "id_number": new_id_number,
               "phone": "13698765432", "relation": "head", "notes": "NOTE-member-0002"}),
    )
    .await;
    propose(
        &app,
        &w.w_a1,
        &h,
        json!({"to_tag": "red", "reasons": ["elderly_living_alone"], "note": "NOTE-proposal-0003"}),
    )
    .await;
    let pending = ok(&app.get_as(&format!("/api/v1/tag-changes?status=pending&household_id={h}"), &w.sec_a).await);
    let pid = id_of(&pending["items"][0]);
    ok(&app
        .post(&format!("/api/v1/tag-changes/{pid}/approve"), Some(&w.sec_a), json!({"note": "NOTE-decision-0004"}))
        .await);
    visit(&app, &w.w_a1, &h, "home_visit", "NOTE-visit-0005").await;
    let task = id_of(&open_tasks(&app, &w.sec_a, &h).await[0]);
    let res = app
        .patch(
            &format!("/api/v1/tasks/{task}"),
            &w.sec_a,
            json!({"status": "cancelled", "cancel_reason": "NOTE-cancel-0006"}),
            None,
        )
        .await;
    ok(&res);
    move_household(&app, &w.sec_a, &h, &w.grid_a2).await;
    ok(&app.delete_as(&format!("/api/v1/households/{h}?reason=other&note=NOTE-removal-0007"), &w.sec_a).await);
    set_review_due(&app, &w.household_a2, today()).await;
    set_due_on(&app, &id_of(&open_tasks(&app, &w.sec_a, &w.household_a1).await[0]), today() - Duration::days(1)).await;
    run_job(&app).await;

    let (events, _) = read_all(&app, &w.admin, 0, "").await;
    assert!(events.len() > 10);
    let text = serde_json::to_string(&events).unwrap();
    let secrets = vec![
        head.to_owned(),
        phone.to_owned(),
        "13698765432".to_owned(),
        "13912345678".to_owned(),
        "13800138000".to_owned(),
        new_id_number.clone(),
        new_id_number[new_id_number.len() - 8..].to_owned(),
        id_number("1941-03-02", 2),
        id_number("1960-07-15", 1),
        id_number("1950-01-20", 4),
        "张桂兰".to_owned(),
        "李建国".to_owned(),
        "王秀英".to_owned(),
        "NOTE-".to_owned(),
    ];
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "an event carries {s:?}: {text}");
    }
    // Only ids, tags and codes in `data`.
    for e in &events {
        for (k, v) in e["data"].as_object().unwrap() {
            assert!(
                [
                    "tag",
                    "from",
                    "to",
                    "status",
                    "reason",
                    "kind",
                    "due_on",
                    "from_grid_id",
                    "to_grid_id",
                    "proposed_by",
                    "decided_by",
                    "worker_id",
                    "assignee_id",
                    "from_assignee_id",
                    "to_assignee_id"
                ]
                .contains(&k.as_str()),
                "unexpected data field {k}: {e}"
            );
            assert!(v.is_string() || v.is_null(), "{e}");
        }
    }
}

async fn the_feed_is_scoped_per_role(app: TestApp) {
    let w = app.world().await;
    let (so_a, do_b) = officers(&app, &w).await;
    let start = feed_end(&app, &w).await;
    let v_a1 = visit(&app, &w.w_a1, &w.household_a1, "phone_call", "").await;
    let v_a2 = visit(&app, &w.w_a2, &w.household_a2, "phone_call", "").await;
    let v_b1 = visit(&app, &w.sec_b, &w.household_b1, "phone_call", "").await;
    // household_a1 moves from w_a1's grid to w_a2's; then w_a2 visits it there.
    move_household(&app, &w.sec_a, &w.household_a1, &w.grid_a2).await;
    let v_after = visit(&app, &w.w_a2, &w.household_a1, "home_visit", "").await;
    // And a tag change in its new grid.
    propose(&app, &w.sec_a, &w.household_a1, json!({"to_tag": "red", "reasons": ["elderly_living_alone"]})).await;

    let ids = |events: &[Value]| -> Vec<String> {
        events.iter().map(|e| e["entity_id"].as_str().unwrap().to_owned()).collect()
    };
    let (admin, admin_end) = read_all(&app, &w.admin, start, "").await;
    for v in [&v_a1, &v_a2, &v_b1, &v_after] {
        assert!(ids(&admin).contains(v), "the administrator sees every visit");
    }
    // Secretaries and officers: their communities', whole.
    let community = |events: &[Value], c: &str| events.iter().all(|e| e["community_id"] == c);
    let (sec_a, sec_a_end) = read_all(&app, &w.sec_a, start, "").await;
    assert!(community(&sec_a, &w.community_a), "{}", types_of(&sec_a));
    let in_a: Vec<Value> = admin.iter().filter(|e| e["community_id"] == w.community_a.as_str()).cloned().collect();
    assert_eq!(sec_a, in_a);
    assert_eq!(sec_a_end, admin_end, "next_after passes the events the caller does not see");
    let (sec_b, _) = read_all(&app, &w.sec_b, start, "").await;
    let in_b: Vec<Value> = admin.iter().filter(|e| e["community_id"] == w.community_b.as_str()).cloned().collect();
    assert_eq!(sec_b, in_b);
    assert_eq!(ids(&sec_b), vec![v_b1.clone()]);
    assert_eq!(read_all(&app, &so_a, start, "").await.0, in_a, "a street officer: its street's communities");
    assert_eq!(read_all(&app, &do_b, start, "").await.0, in_b, "a district officer: its district's communities");
    // The whole feed, from the start: nobody sees another community's households.
    for (token, own, other) in
        [(&w.sec_a, &w.community_a, &w.household_b1), (&w.sec_b, &w.community_b, &w.household_a1)]
    {
        let (all, _) = read_all(&app, token, 0, "").await;
        assert!(community(&all, own));
        assert!(all.iter().all(|e| e["household_id"] != other.as_str()));
    }
    // Grid workers: their grids', and the move of a household that left theirs.
    let (w_a1, w_a1_end) = read_all(&app, &w.w_a1, start, "").await;
    assert_eq!(w_a1_end, admin_end);
    let moved = one(&w_a1, "household.moved", &w.household_a1);
    assert_eq!(moved["data"], json!({"from_grid_id": w.grid_a1, "to_grid_id": w.grid_a2}));
    assert!(ids(&w_a1).contains(&v_a1));
    for v in [&v_a2, &v_b1, &v_after] {
        assert!(!ids(&w_a1).contains(v), "w_a1 sees {v}: {}", types_of(&w_a1));
    }
    assert!(of_type(&w_a1, "household.tag_changed").is_empty(), "after the move it is not w_a1's: {}", types_of(&w_a1));
    assert!(
        w_a1.iter().all(|e| e["grid_id"] == w.grid_a1.as_str() || e["type"] == "household.moved"),
        "{}",
        types_of(&w_a1)
    );
    let (w_a2, _) = read_all(&app, &w.w_a2, start, "").await;
    one(&w_a2, "household.moved", &w.household_a1);
    one(&w_a2, "household.tag_changed", &w.household_a1);
    for v in [&v_a2, &v_after] {
        assert!(ids(&w_a2).contains(v));
    }
    for v in [&v_a1, &v_b1] {
        assert!(!ids(&w_a2).contains(v), "w_a2 sees {v}: {}", types_of(&w_a2));
    }
    assert!(w_a2.iter().all(|e| e["grid_id"] == w.grid_a2.as_str()));
    // From the start: the worker of grid a1 sees its own registrations only.
    let (w_a1_all, _) = read_all(&app, &w.w_a1, 0, "&types=household.registered").await;
    assert_eq!(ids(&w_a1_all), vec![w.household_a1.clone()]);
    // Nobody without a token.
    app.get("/api/v1/events").await.assert_problem(401);
}

async fn the_feed_pages_and_filters(app: TestApp) {
    let w = app.world().await;
    for _ in 0..4 {
        visit(&app, &w.w_a1, &w.household_a1, "phone_call", "").await;
    }
    visit(&app, &w.sec_b, &w.household_b1, "phone_call", "").await;
    let (all, end) = read_all(&app, &w.admin, 0, "").await;
    assert!(all.len() >= 8, "{}", types_of(&all));
    let p = page(&app, &w.admin, "").await;
    assert_eq!(p["items"].as_array().unwrap().len(), all.len(), "after and limit are optional");
    assert_eq!((p["next_after"].as_i64(), p["more"].as_bool()), (Some(end), Some(false)));
    // Two at a time: the same events, every page but the last saying more.
    let mut paged = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let p = page(&app, &w.admin, &format!("after={after}&limit=2")).await;
        let items = p["items"].as_array().unwrap();
        pages += 1;
        if p["more"] == true {
            assert_eq!(items.len(), 2);
            assert_eq!(p["next_after"], items[1]["id"]);
        }
        paged.extend(items.iter().cloned());
        after = p["next_after"].as_i64().unwrap();
        if p["more"] == false {
            break;
        }
    }
    assert_eq!(paged, all);
    assert!(pages >= all.len() / 2);
    assert_eq!(after, end);
    // Nothing new: empty, and next_after stays.
    let p = page(&app, &w.admin, &format!("after={end}")).await;
    assert_eq!(p, json!({"items": [], "next_after": end, "more": false}));
    // Types.
    let (visits, visits_end) = read_all(&app, &w.admin, 0, "&types=visit.recorded").await;
    assert_eq!(visits.len(), 5);
    assert_eq!(visits_end, end);
    let (two, _) = read_all(&app, &w.admin, 0, "&types=visit.recorded,household.registered,visit.recorded").await;
    assert_eq!(two.len(), 5 + 3);
    assert!(two.iter().all(|e| e["type"] == "visit.recorded" || e["type"] == "household.registered"));
    let expected: Vec<&Value> = all.iter().filter(|e| two.contains(e)).collect();
    assert_eq!(two.iter().collect::<Vec<_>>(), expected, "filtered in the same order");
    let (none, none_end) = read_all(&app, &w.admin, 0, "&types=review.due").await;
    assert!(none.is_empty());
    assert_eq!(none_end, end);
    // A filtered page of one: more while more visits follow.
    let p = page(&app, &w.sec_a, "types=visit.recorded&limit=1").await;
    assert_eq!(p["more"], true);
    assert_eq!(p["items"][0]["type"], "visit.recorded");
    // A scoped reader pages past what it does not see.
    let (w_a2, w_a2_end) = read_all(&app, &w.w_a2, 0, "").await;
    assert_eq!(w_a2_end, end);
    assert!(w_a2.iter().all(|e| e["grid_id"] == w.grid_a2.as_str()));
    // Bad parameters: 422 naming them, or 400 for what is not a number.
    for (query, field) in [
        ("types=visit.recorded,nope", "types"),
        ("types=visit.recorded,", "types"),
        ("types=Visit.Recorded", "types"),
        ("types=household", "types"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("after=-1", "after"),
        ("types=visit.recorded%00", "types"),
        // The published pattern: no spaces around the names.
        ("types=visit.recorded,%20household.registered", "types"),
    ] {
        let body = app.get_as(&format!("/api/v1/events?{query}"), &w.admin).await.assert_problem(422);
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
    for query in ["limit=abc", "after=x", "limit=-5", "after=1.5"] {
        let res = app.get_as(&format!("/api/v1/events?{query}"), &w.admin).await;
        assert_4xx_problem(&res, query);
    }
    let max = page(&app, &w.admin, "limit=1000").await;
    assert_eq!(max["items"].as_array().unwrap().len(), all.len());
}

async fn pruned_events_are_gone(app: TestApp) {
    let w = app.world().await;
    visit(&app, &w.w_a1, &w.household_a1, "phone_call", "").await;
    let (before, last) = read_all(&app, &w.admin, 0, "").await;
    let first = before[0]["id"].as_i64().unwrap();
    assert!(last > first + 1);
    // Nothing pruned yet: any `after` is fine.
    ok(&app.get_as("/api/v1/events?after=1", &w.admin).await);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let db = app.state.db.clone();
    let pruned = actix_web::web::block(move || gridlight::jobs::prune_sync_log(&db, 0)).await.unwrap().unwrap();
    assert!(pruned > 0);
    for (token, after) in [(&w.admin, 1), (&w.sec_a, 1), (&w.w_a1, first), (&w.admin, last - 1)] {
        let res = app.get_as(&format!("/api/v1/events?after={after}"), token).await;
        assert_eq!(res.assert_problem(410)["code"], "events_pruned", "after={after}");
    }
    // From the oldest kept, or from where a reader stopped when it read everything: fine.
    let p = page(&app, &w.admin, "after=0").await;
    assert_eq!(p["items"], json!([]));
    assert_eq!(p["more"], false);
    let p = page(&app, &w.admin, &format!("after={last}")).await;
    assert_eq!(p["items"], json!([]));
    assert_eq!(p["next_after"], last);
    // New events are numbered after the pruned ones (ids are never reused).
    let v = visit(&app, &w.w_a1, &w.household_a1, "phone_call", "").await;
    let (after, _) = read_all(&app, &w.admin, 0, "").await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["entity_id"], v.as_str());
    assert!(after[0]["id"].as_i64().unwrap() > last);
    let (same, _) = read_all(&app, &w.w_a1, last, "").await;
    assert_eq!(same, after);
}

// ---------------------------------------------------------------------------------------------
// Webhooks

/// "Events start after the latest one now": a subscription made right after a change is not
/// sent that change.
async fn a_new_subscription_starts_after_the_latest_event(app: TestApp) {
    let w = app.world().await;
    // Nobody reads the feed between the change and the subscription.
    visit(&app, &w.w_a1, &w.household_a1, "phone_call", "").await;
    let hook = create_hook(&app, &w.sec_a, json!({"url": HOOK_URL})).await;
    let end = feed_end(&app, &w).await;
    assert!(end > 0);
    // On PostgreSQL events are numbered when found committed: making the subscription numbers
    // those before it, or its cursor would be behind them and it would be sent them.
    assert_eq!(hook["delivery"]["last_event_id"], end, "{hook}");
    // Made after a read of the feed: at its end.
    visit(&app, &w.w_a1, &w.household_a1, "phone_call", "").await;
    let end = feed_end(&app, &w).await;
    let hook = create_hook(&app, &w.sec_a, json!({"url": HOOK_URL})).await;
    assert_eq!(hook["delivery"]["last_event_id"], end, "{hook}");
}

async fn webhooks_are_managed_by_secretaries_and_administrators(app: TestApp) {
    let w = app.world().await;
    let (so_a, _) = officers(&app, &w).await;
    let sec_a_id = user_id(&app, &w.sec_a).await;
    // Unauthenticated: 401. Officers and workers: 403, nothing created.
    app.get("/api/v1/webhooks").await.assert_problem(401);
    for token in [&w.w_a1, &so_a] {
        app.get_as("/api/v1/webhooks", token).await.assert_problem(403);
        app.post("/api/v1/webhooks", Some(token), json!({"url": HOOK_URL})).await.assert_problem(403);
    }
    // A secretary's subscription: its community's, by default.
    let url = "https://hooks.example.com/x?token=SECRETTOKEN123";
    let a = create_hook(
        &app,
        &w.sec_a,
        json!({"url": url, "types": ["task.overdue", "household.tag_changed", "task.overdue"],
               "description": "12345 热线"}),
    )
    .await;
    let a_id = id_of(&a);
    assert_eq!(a["url"], url);
    assert_eq!(a["types"], json!(["task.overdue", "household.tag_changed"]));
    assert_eq!(a["community_id"], w.community_a.as_str());
    assert_eq!((a["active"].as_bool(), a["version"].as_i64()), (Some(true), Some(1)));
    assert_eq!(a["description"], "12345 热线");
    assert_eq!(a["created_by"], sec_a_id.as_str());
    assert_eq!(a["delivery"]["attempts"], 0);
    assert!(a["delivery"]["previous_secret_until"].is_null());
    let secret = a["secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 32, "{secret}");
    // Naming its own community is the same; another community's: refused, nothing created.
    let own =
        create_hook(&app, &w.sec_a, json!({"url": HOOK_URL, "community_id": w.community_a, "active": false})).await;
    assert_eq!(own["active"], false);
    assert_eq!(own["types"], json!([]));
    let res =
        app.post("/api/v1/webhooks", Some(&w.sec_a), json!({"url": HOOK_URL, "community_id": w.community_b})).await;
    let body = assert_4xx_problem(&res, "a secretary naming another community");
    assert!([404, 422].contains(&res.status.as_u16()));
    if res.status == 422 {
        assert_eq!(body["errors"][0]["field"], "community_id");
    }
    // Administrators: any community, or none (every community's).
    let b = create_hook(&app, &w.admin, json!({"url": HOOK_URL, "community_id": w.community_b})).await;
    assert_eq!(b["community_id"], w.community_b.as_str());
    let all = create_hook(&app, &w.admin, json!({"url": HOOK_URL, "types": []})).await;
    assert!(all["community_id"].is_null());
    let res = app.post("/api/v1/webhooks", Some(&w.admin), json!({"url": HOOK_URL, "community_id": "nope"})).await;
    assert_eq!(res.assert_problem(422)["errors"][0]["field"], "community_id");
    // Who lists what.
    let (b_id, all_id, own_id) = (id_of(&b), id_of(&all), id_of(&own));
    let mut mine = vec![a_id.clone(), own_id.clone()];
    mine.sort();
    assert_eq!(hook_ids(&app, &w.sec_a).await, mine);
    assert_eq!(hook_ids(&app, &w.sec_b).await, vec![b_id.clone()]);
    assert_eq!(hook_ids(&app, &w.admin).await.len(), 4);
    // Paged.
    let first = ok(&app.get_as("/api/v1/webhooks?limit=1", &w.sec_a).await);
    assert_eq!(first["items"].as_array().unwrap().len(), 1);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = ok(&app.get_as(&format!("/api/v1/webhooks?limit=1&cursor={cursor}"), &w.sec_a).await);
    assert_eq!(second["next_cursor"], Value::Null);
    assert_ne!(first["items"][0]["id"], second["items"][0]["id"]);
    // Another community's subscription, or the administrators' all-community one: 404 for a
    // secretary, on every route; 403 for the others.
    let routes = |id: &str| {
        [
            ("GET", format!("/api/v1/webhooks/{id}")),
            ("PATCH", format!("/api/v1/webhooks/{id}")),
            ("DELETE", format!("/api/v1/webhooks/{id}")),
            ("POST", format!("/api/v1/webhooks/{id}/rotate-secret")),
            ("GET", format!("/api/v1/webhooks/{id}/deliveries")),
            ("GET", format!("/api/v1/webhooks/{id}/dead-letters")),
            ("POST", format!("/api/v1/webhooks/{id}/dead-letters/resend")),
        ]
    };
    let call = |method: &str, path: &str, token: &str| {
        let req = match method {
            "GET" => actix_web::test::TestRequest::get(),
            "PATCH" => actix_web::test::TestRequest::patch().set_json(json!({"active": false})),
            "DELETE" => actix_web::test::TestRequest::delete(),
            _ => actix_web::test::TestRequest::post().set_json(json!({})),
        };
        app.call(req.uri(path).insert_header(("authorization", format!("Bearer {token}"))))
    };
    for (token, id, status) in [
        (&w.sec_a, &b_id, 404),
        (&w.sec_a, &all_id, 404),
        (&w.sec_b, &a_id, 404),
        (&w.w_a1, &a_id, 403),
        (&so_a, &a_id, 403),
        (&w.sec_a, &"nope".to_owned(), 404),
    ] {
        for (method, path) in routes(id) {
            let res = call(method, &path, token).await;
            assert_eq!(res.status.as_u16(), status, "{method} {path}: {}", String::from_utf8_lossy(&res.body));
            res.assert_problem(status);
        }
    }
    // …and nothing changed.
    let b_now = ok(&app.get_as(&format!("/api/v1/webhooks/{b_id}"), &w.admin).await);
    assert_eq!((b_now["version"].as_i64(), b_now["active"].as_bool()), (Some(1), Some(true)));
    assert_eq!(hook_ids(&app, &w.admin).await.len(), 4);
    // GET: no secret, with its ETag.
    let path = format!("/api/v1/webhooks/{a_id}");
    let res = app.get_as(&path, &w.sec_a).await;
    assert_eq!(res.header("etag"), Some("\"1\""));
    let got = ok(&res);
    assert!(got.get("secret").is_none(), "{got}");
    let mut expected = a.clone();
    expected.as_object_mut().unwrap().remove("secret");
    assert_eq!(got, expected);
    // PATCH: a stale If-Match is 412 and changes nothing; the current one applies.
    let res = app.patch(&path, &w.sec_a, json!({"active": false}), Some("\"7\"")).await;
    assert_eq!(res.assert_problem(412)["code"], "stale_version");
    let res = app.patch(&path, &w.sec_a, json!({"active": false}), Some("abc")).await;
    res.assert_problem(400);
    assert_eq!(ok(&app.get_as(&path, &w.sec_a).await)["active"], true);
    let new_url = "https://other.example.org/in?key=OTHERSECRET";
    let res = app
        .patch(
            &path,
            &w.sec_a,
            json!({"active": false, "types": ["visit.recorded"], "description": null, "url": new_url}),
            Some("\"1\""),
        )
        .await;
    assert_eq!(res.header("etag"), Some("\"2\""));
    let patched = ok(&res);
    assert!(patched.get("secret").is_none(), "{patched}");
    assert_eq!(patched["url"], new_url);
    assert_eq!(patched["types"], json!(["visit.recorded"]));
    assert_eq!(patched["active"], false);
    assert!(patched["description"].is_null());
    assert_eq!(patched["version"], 2);
    assert_eq!(patched["created_at"], a["created_at"]);
    // Administrators change any; types [] means every type again.
    let res = app.patch(&path, &w.admin, json!({"active": true, "types": []}), Some("2")).await;
    assert_eq!(ok(&res)["types"], json!([]));
    // No list answer holds a secret.
    for token in [&w.sec_a, &w.admin] {
        let list = app.get_as("/api/v1/webhooks", token).await;
        let text = String::from_utf8_lossy(&list.body).into_owned();
        assert!(!text.contains("\"secret\"") && !text.contains(&secret), "{text}");
    }
    // Deliveries and dead letters of a new subscription: none.
    let d = ok(&app.get_as(&format!("{path}/deliveries"), &w.sec_a).await);
    assert_eq!(d, json!({"items": [], "next_cursor": null}));
    let d = ok(&app.get_as(&format!("{path}/dead-letters"), &w.sec_a).await);
    assert_eq!(d, json!({"items": [], "next_cursor": null}));
    // Delete: 204, then 404 everywhere, gone from the list.
    let res = app.delete_as(&path, &w.sec_a).await;
    assert_eq!(res.status, 204, "{}", String::from_utf8_lossy(&res.body));
    for (method, route) in routes(&a_id) {
        call(method, &route, &w.sec_a).await.assert_problem(404);
    }
    assert_eq!(hook_ids(&app, &w.sec_a).await, vec![own_id.clone()]);
    // The audit log: what happened, with the host only, never the URL's path or query.
    let audit = webhook_audit(&app, &w).await;
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .filter(|e| e["entity_id"] == a_id.as_str())
        .map(|e| (e["action"].as_str().unwrap(), e["actor_id"].as_str().unwrap_or("")))
        .collect();
    assert!(actions.contains(&("webhook.created", sec_a_id.as_str())), "{actions:?}");
    assert!(actions.contains(&("webhook.deleted", sec_a_id.as_str())), "{actions:?}");
    assert_eq!(actions.iter().filter(|a| a.0 == "webhook.updated").count(), 2, "{actions:?}");
    let created = audit.iter().find(|e| e["entity_id"] == a_id.as_str() && e["action"] == "webhook.created").unwrap();
    assert_eq!(created["summary"]["host"], "hooks.example.com");
    assert_eq!(created["community_id"], w.community_a.as_str());
    let updated = audit
        .iter()
        .find(|e| {
            e["entity_id"] == a_id.as_str() && e["action"] == "webhook.updated" && e["summary"]["host"].is_string()
        })
        .unwrap();
    assert_eq!(updated["summary"]["host"], "other.example.org");
    let text = serde_json::to_string(&audit).unwrap();
    for s in ["SECRETTOKEN123", "OTHERSECRET", "token=", "/in?", secret.as_str()] {
        assert!(!text.contains(s), "the audit log keeps {s:?}: {text}");
    }
    // Secretaries read their community's webhook audit, not the administrators' others.
    let sec_audit = ok(&app.get_as("/api/v1/audit-events?entity_type=webhook&limit=500", &w.sec_a).await);
    let seen: Vec<&str> =
        sec_audit["items"].as_array().unwrap().iter().map(|e| e["entity_id"].as_str().unwrap()).collect();
    assert!(seen.contains(&a_id.as_str()) && !seen.contains(&b_id.as_str()) && !seen.contains(&all_id.as_str()));
}

async fn webhook_secrets_are_shown_once_and_rotate(app: TestApp) {
    let w = app.world().await;
    let hook = create_hook(&app, &w.sec_a, json!({"url": HOOK_URL})).await;
    let id = id_of(&hook);
    let first = hook["secret"].as_str().unwrap().to_owned();
    let other = create_hook(&app, &w.sec_a, json!({"url": HOOK_URL})).await;
    assert_ne!(other["secret"], first.as_str(), "every subscription has its own secret");
    let path = format!("/api/v1/webhooks/{id}");
    let rotate = format!("{path}/rotate-secret");
    app.post(&rotate, Some(&w.w_a1), json!({})).await.assert_problem(403);
    app.post(&rotate, Some(&w.sec_b), json!({})).await.assert_problem(404);
    assert_eq!(ok(&app.get_as(&path, &w.sec_a).await)["version"], 1, "refused rotations change nothing");
    let before = Utc::now();
    let res = app.post(&rotate, Some(&w.sec_a), json!({})).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.header("etag"), Some("\"2\""));
    let rotated = res.json();
    let second = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert!(second.len() >= 32);
    assert_eq!(rotated["version"], 2);
    let until = rotated["delivery"]["previous_secret_until"].as_str().expect("previous_secret_until is set");
    let until = chrono::DateTime::parse_from_rfc3339(until).unwrap().with_timezone(&Utc);
    let hours = (until - before).num_minutes() as f64 / 60.0;
    assert!((23.9..=24.1).contains(&hours), "{until} is {hours} hours away");
    // Never shown again: not by GET, the list, a PATCH.
    let got = ok(&app.get_as(&path, &w.sec_a).await);
    assert!(got.get("secret").is_none(), "{got}");
    assert_eq!(got["delivery"]["previous_secret_until"], rotated["delivery"]["previous_secret_until"]);
    let patched = ok(&app.patch(&path, &w.sec_a, json!({"description": "x"}), Some("\"2\"")).await);
    assert!(patched.get("secret").is_none(), "{patched}");
    for token in [&w.sec_a, &w.admin] {
        for p in ["/api/v1/webhooks".to_owned(), path.clone()] {
            let text = String::from_utf8_lossy(&app.get_as(&p, token).await.body).into_owned();
            assert!(!text.contains(&first) && !text.contains(&second) && !text.contains("\"secret\""), "{text}");
        }
    }
    // Rotating again: another secret again; the stale version is now 3.
    let third = ok(&app.post(&rotate, Some(&w.admin), json!({})).await);
    assert_ne!(third["secret"], second.as_str());
    assert_ne!(third["secret"], first.as_str());
    app.patch(&path, &w.sec_a, json!({"active": false}), Some("\"3\"")).await.assert_problem(412);
    // The stored secret is sealed: not in the database in clear.
    let stored: Vec<String> = app
        .state
        .db
        .read(|c| {
            use gridlight::db::schema::webhooks;
            Ok(webhooks::table.select(webhooks::secret).load(c)?)
        })
        .await
        .unwrap();
    assert!(stored.iter().all(|s| !s.contains(third["secret"].as_str().unwrap())));
    let audit = webhook_audit(&app, &w).await;
    let text = serde_json::to_string(&audit).unwrap();
    assert_eq!(audit.iter().filter(|e| e["action"] == "webhook.secret_rotated").count(), 2);
    assert!(!text.contains(&first) && !text.contains(&second));
}

async fn webhook_urls_must_be_public(app: TestApp) {
    let w = app.world().await;
    let refused = [
        "http://127.0.0.1/",
        "http://127.0.0.1:8080/hook",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://100.64.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[fd00:ec2::254]/",
        "http://[fe80::1]/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://0/",
        "http://0.0.0.0/",
        "http://%31%32%37.0.0.1/",
        "ftp://hooks.example.com/x",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "https://user:pw@hooks.example.com/x",
        "https://user@hooks.example.com/x",
        "https://:pw@hooks.example.com/x",
        "https://hooks.example.com/x#frag",
        "hooks.example.com/x",
        "https://",
        "",
        "https://hooks.example.com:99999/",
    ];
    let long = format!("https://hooks.example.com/{}", "a".repeat(2049 - 26));
    assert_eq!(long.len(), 2049);
    let at_limit = format!("https://hooks.example.com/{}", "a".repeat(2048 - 26));
    let mut bad: Vec<String> = refused.iter().map(|s| s.to_string()).collect();
    bad.push(long);
    for url in &bad {
        let res = app.post("/api/v1/webhooks", Some(&w.admin), json!({"url": url})).await;
        let body = res.assert_problem(422);
        assert_eq!(body["errors"][0]["field"], "url", "{url}: {body}");
    }
    assert!(hook_ids(&app, &w.admin).await.is_empty(), "nothing was created");
    // Public names and addresses are accepted (names are resolved at delivery), normalised.
    for (url, stored) in [
        (HOOK_URL, HOOK_URL.to_owned()),
        ("HTTPS://Hooks.Example.COM/x", HOOK_URL.to_owned()),
        ("http://8.8.8.8/hook", "http://8.8.8.8/hook".to_owned()),
        ("https://[2606:4700:4700::1111]/hook", "https://[2606:4700:4700::1111]/hook".to_owned()),
        (at_limit.as_str(), at_limit.clone()),
    ] {
        let hook = create_hook(&app, &w.sec_a, json!({"url": url})).await;
        assert_eq!(hook["url"], stored.as_str());
    }
    // A PATCH is held to the same policy, and changes nothing when refused.
    let hook = create_hook(&app, &w.sec_a, json!({"url": HOOK_URL})).await;
    let path = format!("/api/v1/webhooks/{}", id_of(&hook));
    for url in
        ["http://169.254.169.254/", "http://[::1]/", "gopher://hooks.example.com/", "https://u:p@hooks.example.com/"]
    {
        let res = app.patch(&path, &w.sec_a, json!({"url": url}), None).await;
        assert_eq!(res.assert_problem(422)["errors"][0]["field"], "url", "{url}");
    }
    let now = ok(&app.get_as(&path, &w.sec_a).await);
    assert_eq!((now["url"].as_str(), now["version"].as_i64()), (Some(HOOK_URL), Some(1)));
}

async fn bad_webhook_input_changes_nothing(app: TestApp) {
    let w = app.world().await;
    let audit_before = webhook_audit(&app, &w).await.len();
    let bodies = [
        (json!({"url": "https://hooks.example.com/\u{0}x"}), "url"),
        (json!({"url": "https://hooks.example.com/a\nb"}), "url"),
        (json!({"url": "https://hooks.example.com/a\tb"}), "url"),
        (json!({"url": "https://hooks.example.com/a\u{7}"}), "url"),
        (json!({"url": "https://hooks.example.com/\u{202e}x"}), "url"),
        (json!({"url": HOOK_URL, "description": "a\u{0}b"}), "description"),
        (json!({"url": HOOK_URL, "description": "a\u{1b}[31m"}), "description"),
        (json!({"url": HOOK_URL, "description": "\u{202e}evil"}), "description"),
        (json!({"url": HOOK_URL, "description": "x".repeat(201)}), "description"),
        (json!({"url": HOOK_URL, "extra": 1}), "extra"),
        (json!({"url": HOOK_URL, "secret": "mine"}), "secret"),
        (json!({"url": HOOK_URL, "version": 5}), "version"),
        (json!({"url": 5}), "url"),
        (json!({"url": null}), "url"),
        (json!({"url": HOOK_URL, "types": "task.overdue"}), "types"),
        (json!({"url": HOOK_URL, "types": ["nope"]}), "types"),
        (json!({"url": HOOK_URL, "types": ["task.overdue,visit.recorded"]}), "types"),
        (json!({"url": HOOK_URL, "types": ["task.overdue", ""]}), "types"),
        (json!({"url": HOOK_URL, "types": [5]}), "types[0]"),
        (json!({"url": HOOK_URL, "types": [null]}), "types[0]"),
        (json!({"url": HOOK_URL, "active": "yes"}), "active"),
        (json!({"url": HOOK_URL, "active": null, "community_id": 7}), "community_id"),
        (json!({"url": HOOK_URL, "community_id": "x\u{0}"}), "community_id"),
        (json!({"url\u{0}": HOOK_URL}), "url"),
        (json!({}), "url"),
        (json!({"description": "no url"}), "url"),
    ];
    for (body, field) in &bodies {
        let res = app.post("/api/v1/webhooks", Some(&w.admin), body.clone()).await;
        let problem = assert_4xx_problem(&res, &body.to_string());
        assert_eq!(res.status, 422, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["field"], *field, "{body}: {problem}");
    }
    // Not an object, not JSON, not JSON's content type.
    for body in [json!([]), json!(null), json!("https://hooks.example.com/x"), json!(5)] {
        let res = app.post("/api/v1/webhooks", Some(&w.admin), body.clone()).await;
        assert_4xx_problem(&res, &body.to_string());
    }
    let raw = |content_type: &str, body: &'static str| {
        actix_web::test::TestRequest::post()
            .uri("/api/v1/webhooks")
            .insert_header(("content-type", content_type.to_owned()))
            .insert_header(("authorization", format!("Bearer {}", w.admin)))
            .set_payload(body)
    };
    for (ct, body) in [
        ("application/json", "{\"url\": "),
        ("application/json", "not json"),
        ("text/plain", "{\"url\": \"https://hooks.example.com/x\"}"),
    ] {
        let res = app.call(raw(ct, body)).await;
        assert_4xx_problem(&res, body);
    }
    assert!(hook_ids(&app, &w.admin).await.is_empty(), "nothing was created");
    assert_eq!(webhook_audit(&app, &w).await.len(), audit_before);
    // The same for PATCH: nothing of the subscription changes.
    let hook =
        create_hook(&app, &w.sec_a, json!({"url": HOOK_URL, "description": "原样", "types": ["task.overdue"]})).await;
    let path = format!("/api/v1/webhooks/{}", id_of(&hook));
    let mut stored = hook.clone();
    stored.as_object_mut().unwrap().remove("secret");
    let patches = [
        json!({"url": "https://hooks.example.com/\u{0}"}),
        json!({"description": "a\u{0}b"}),
        json!({"description": "a\u{8}b"}),
        json!({"description": "x".repeat(201)}),
        json!({"types": ["nope"]}),
        json!({"types": "task.overdue"}),
        json!({"types": null, "active": "no"}),
        json!({"active": 1}),
        json!({"community_id": w.community_b}),
        json!({"secret": "mine"}),
        json!([]),
    ];
    for body in &patches {
        let res = app.patch(&path, &w.sec_a, body.clone(), Some("\"1\"")).await;
        assert_4xx_problem(&res, &body.to_string());
        assert_eq!(ok(&app.get_as(&path, &w.sec_a).await), stored, "after {body}");
    }
    // Re-sending with a bad body.
    let resend = format!("{path}/dead-letters/resend");
    for body in
        [json!({"event_ids": "1"}), json!({"event_ids": [-1.5]}), json!({"nope": 1}), json!({"event_ids": [1, "x"]})]
    {
        let res = app.post(&resend, Some(&w.sec_a), body.clone()).await;
        assert_eq!(
            res.assert_problem(422)["errors"][0]["field"].as_str().map(|f| f.split('[').next().unwrap()),
            Some(if body.get("nope").is_some() { "nope" } else { "event_ids" }),
            "{body}"
        );
    }
    let many: Vec<i64> = (1..=1001).collect();
    let res = app.post(&resend, Some(&w.sec_a), json!({"event_ids": many})).await;
    assert_eq!(res.assert_problem(422)["errors"][0]["field"], "event_ids");
    assert_eq!(hook_ids(&app, &w.admin).await, vec![id_of(&hook)]);
    assert_eq!(ok(&app.get_as(&path, &w.sec_a).await), stored);
    let actions: Vec<String> =
        webhook_audit(&app, &w).await.iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect();
    assert_eq!(actions, vec!["webhook.created".to_owned()]);
    // 200 characters (not bytes) is the limit.
    let res = app.patch(&path, &w.sec_a, json!({"description": "字".repeat(200)}), None).await;
    assert_eq!(ok(&res)["description"], "字".repeat(200));
    let res = app.patch(&path, &w.sec_a, json!({"description": "第一行\n第二行"}), None).await;
    assert_eq!(ok(&res)["description"], "第一行\n第二行", "a description may hold several lines");
    // An empty or blank type is no event type: refused, not taken for "every type".
    for types in [json!([""]), json!([" "])] {
        let res = app.post("/api/v1/webhooks", Some(&w.admin), json!({"url": HOOK_URL, "types": types})).await;
        assert_eq!(res.status, 422, "types {types}: {}", String::from_utf8_lossy(&res.body));
        let res = app.patch(&path, &w.sec_a, json!({"types": types}), None).await;
        assert_eq!(res.status, 422, "PATCH types {types}: {}", String::from_utf8_lossy(&res.body));
    }
    assert_eq!(hook_ids(&app, &w.admin).await, vec![id_of(&hook)]);
}

async fn concurrent_patches_with_one_if_match_apply_once(app: TestApp) {
    let w = app.world().await;
    let hook = create_hook(&app, &w.sec_a, json!({"url": HOOK_URL})).await;
    let path = format!("/api/v1/webhooks/{}", id_of(&hook));
    for round in 0..5 {
        let version = ok(&app.get_as(&path, &w.sec_a).await)["version"].as_i64().unwrap();
        let tag = format!("\"{version}\"");
        let body = json!({"description": format!("第{round}轮"), "active": round % 2 == 0});
        let (a, b) = futures_util::future::join(
            app.patch(&path, &w.sec_a, body.clone(), Some(&tag)),
            app.patch(&path, &w.admin, body.clone(), Some(&tag)),
        )
        .await;
        let mut statuses = [a.status.as_u16(), b.status.as_u16()];
        statuses.sort();
        assert_eq!(
            statuses,
            [200, 412],
            "round {round}: {} / {}",
            String::from_utf8_lossy(&a.body),
            String::from_utf8_lossy(&b.body)
        );
        let now = ok(&app.get_as(&path, &w.sec_a).await);
        assert_eq!(now["version"].as_i64(), Some(version + 1), "round {round}");
        assert_eq!(now["description"], format!("第{round}轮"));
    }
    let updates = webhook_audit(&app, &w).await.iter().filter(|e| e["action"] == "webhook.updated").count();
    assert_eq!(updates, 5, "one audit event per applied change");
}

async fn dead_letters_are_listed_and_resent(app: TestApp) {
    let w = app.world().await;
    let hook = create_hook(&app, &w.sec_a, json!({"url": HOOK_URL})).await;
    let id = id_of(&hook);
    let path = format!("/api/v1/webhooks/{id}");
    // Two events given up on (as the delivery worker parks them).
    let (events, _) = read_all(&app, &w.admin, 0, "").await;
    let parked: Vec<Value> =
        events.iter().filter(|e| e["community_id"] == w.community_a.as_str()).take(2).cloned().collect();
    assert_eq!(parked.len(), 2);
    for e in &parked {
        let row = gridlight::store::webhooks::DeadLetterRow {
            webhook_id: id.clone(),
            event_id: e["id"].as_i64().unwrap(),
            event: e["type"].as_str().unwrap().to_owned(),
            body: e.to_string(),
            parked_at: gridlight::store::now(),
            attempts: 9,
            last_error: Some("HTTP 500".to_owned()),
            resend_requested_at: None,
            resent_at: None,
        };
        app.state.db.write(move |c| Ok(gridlight::store::webhooks::park(c, &row)?)).await.unwrap();
    }
    let letters = ok(&app.get_as(&format!("{path}/dead-letters"), &w.sec_a).await);
    let items = letters["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["event"], parked[0]);
    assert_eq!(items[0]["event_id"], parked[0]["id"]);
    assert_eq!(items[0]["type"], parked[0]["type"]);
    assert_eq!(items[0]["attempts"], 9);
    assert!(items[0]["resend_requested_at"].is_null() && items[0]["resent_at"].is_null());
    let page1 = ok(&app.get_as(&format!("{path}/dead-letters?limit=1&waiting=true"), &w.sec_a).await);
    assert_eq!(page1["items"][0]["event_id"], parked[0]["id"]);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let page2 = ok(&app.get_as(&format!("{path}/dead-letters?limit=1&cursor={cursor}"), &w.sec_a).await);
    assert_eq!(page2["items"][0]["event_id"], parked[1]["id"]);
    // Another community's secretary sees none of them; a worker is refused.
    app.get_as(&format!("{path}/dead-letters"), &w.sec_b).await.assert_problem(404);
    app.post(&format!("{path}/dead-letters/resend"), Some(&w.sec_b), json!({})).await.assert_problem(404);
    app.post(&format!("{path}/dead-letters/resend"), Some(&w.w_a1), json!({})).await.assert_problem(403);
    // Re-send one, then all; ids that are no dead letter count for nothing.
    let resend = format!("{path}/dead-letters/resend");
    let res = app.post(&resend, Some(&w.sec_a), json!({"event_ids": [parked[0]["id"], 999_999_999]})).await;
    assert_eq!(res.status, 202, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json(), json!({"requested": 1}));
    let letters = ok(&app.get_as(&format!("{path}/dead-letters"), &w.sec_a).await);
    assert!(letters["items"][0]["resend_requested_at"].is_string());
    assert!(letters["items"][1]["resend_requested_at"].is_null());
    let res = app.post(&resend, Some(&w.sec_a), json!({})).await;
    assert_eq!((res.status.as_u16(), res.json()), (202, json!({"requested": 2})));
    let res = app.post(&resend, Some(&w.admin), json!({"event_ids": []})).await;
    assert_eq!((res.status.as_u16(), res.json()), (202, json!({"requested": 0})));
    let actions = webhook_audit(&app, &w).await;
    assert_eq!(actions.iter().filter(|e| e["action"] == "webhook.resend_requested").count(), 3);
    // Deleting the subscription deletes its dead letters.
    assert_eq!(app.delete_as(&path, &w.sec_a).await.status, 204);
    let left: i64 = app
        .state
        .db
        .read(|c| {
            use gridlight::db::schema::webhook_dead_letters;
            Ok(webhook_dead_letters::table.count().get_result(c)?)
        })
        .await
        .unwrap();
    assert_eq!(left, 0);
}

async fn deliveries_are_listed_newest_first(app: TestApp) {
    use gridlight::store::webhooks::{DeliveryRow, log_deliveries};
    let w = app.world().await;
    let hook = create_hook(&app, &w.sec_a, json!({"url": HOOK_URL})).await;
    let other = create_hook(&app, &w.sec_a, json!({"url": HOOK_URL})).await;
    let id = id_of(&hook);
    let at = gridlight::store::now();
    let row = |webhook: &str, event_id: i64, outcome: &str| DeliveryRow {
        id: 0,
        webhook_id: webhook.to_owned(),
        event_id,
        event: "visit.recorded".to_owned(),
        attempt: 1,
        at,
        outcome: outcome.to_owned(),
        status_code: Some(if outcome == "delivered" { 204 } else { 500 }),
        latency_ms: 12,
        error: (outcome != "delivered").then(|| "HTTP 500".to_owned()),
        next_attempt_at: None,
    };
    let rows = vec![
        row(&id, 1, "failed"),
        row(&id, 1, "delivered"),
        row(&id_of(&other), 2, "delivered"),
        row(&id, 2, "delivered"),
    ];
    app.state.db.write(move |c| Ok(log_deliveries(c, &rows)?)).await.unwrap();
    let path = format!("/api/v1/webhooks/{id}/deliveries");
    let all = ok(&app.get_as(&path, &w.sec_a).await);
    let items = all["items"].as_array().unwrap();
    let seen: Vec<(i64, &str)> =
        items.iter().map(|d| (d["event_id"].as_i64().unwrap(), d["outcome"].as_str().unwrap())).collect();
    assert_eq!(seen, [(2, "delivered"), (1, "delivered"), (1, "failed")], "its own, newest first");
    assert_eq!(items[2]["status_code"], 500);
    assert_eq!(items[2]["error"], "HTTP 500");
    assert_eq!(items[0]["type"], "visit.recorded");
    let first = ok(&app.get_as(&format!("{path}?limit=2"), &w.sec_a).await);
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = ok(&app.get_as(&format!("{path}?limit=2&cursor={cursor}"), &w.sec_a).await);
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["items"][0]["outcome"], "failed");
    assert_eq!(second["next_cursor"], Value::Null);
    app.get_as(&format!("{path}?cursor=garbage!"), &w.sec_a).await.assert_problem(422);
    app.get_as(&format!("{path}?limit=0"), &w.sec_a).await.assert_problem(422);
    app.get_as(&path, &w.sec_b).await.assert_problem(404);
    app.get_as(&path, &w.w_a1).await.assert_problem(403);
    // Deleting the subscription deletes its log, not another's.
    assert_eq!(app.delete_as(&format!("/api/v1/webhooks/{id}"), &w.sec_a).await.status, 204);
    let left: Vec<String> = app
        .state
        .db
        .read(|c| {
            use gridlight::db::schema::webhook_deliveries;
            Ok(webhook_deliveries::table.select(webhook_deliveries::webhook_id).load(c)?)
        })
        .await
        .unwrap();
    assert_eq!(left, vec![id_of(&other)]);
}

async fn a_subscription_the_server_turned_off_is_turned_back_on(app: TestApp) {
    use gridlight::db::schema::webhooks;
    let w = app.world().await;
    let hook = create_hook(&app, &w.sec_a, json!({"url": HOOK_URL})).await;
    let id = id_of(&hook);
    let path = format!("/api/v1/webhooks/{id}");
    // It failed for the whole retry period: the worker turned it off.
    let since = gridlight::store::now() - Duration::days(3);
    let handle = id.clone();
    app.state
        .db
        .write(move |c| {
            diesel::update(webhooks::table.find(&handle))
                .set((
                    webhooks::attempts.eq(17),
                    webhooks::failing_since.eq(Some(since)),
                    webhooks::last_error.eq(Some("HTTP 503")),
                    webhooks::next_attempt_at.eq(since + Duration::days(10)),
                ))
                .execute(c)?;
            Ok(gridlight::store::webhooks::disable(c, &handle, "failed for 3 days", gridlight::store::now())?)
        })
        .await
        .unwrap();
    let off = ok(&app.get_as(&path, &w.sec_a).await);
    assert_eq!(off["active"], false);
    assert_eq!(off["delivery"]["disabled_reason"], "failed for 3 days");
    assert_eq!(off["version"], 2, "turning it off is a change: an old ETag is stale");
    app.patch(&path, &w.sec_a, json!({"active": true}), Some("\"1\"")).await.assert_problem(412);
    // Another edit leaves it off, saying why.
    let edited = ok(&app.patch(&path, &w.sec_a, json!({"description": "x"}), Some("\"2\"")).await);
    assert_eq!((edited["active"].as_bool(), edited["delivery"]["attempts"].as_i64()), (Some(false), Some(17)));
    assert_eq!(edited["delivery"]["disabled_reason"], "failed for 3 days");
    // On again: retried at once, from where it stopped.
    let before = Utc::now();
    let on = ok(&app.patch(&path, &w.sec_a, json!({"active": true}), Some("\"3\"")).await);
    assert_eq!(on["active"], true);
    assert!(on["delivery"]["disabled_reason"].is_null(), "{on}");
    assert_eq!(on["delivery"]["attempts"], 0);
    assert!(on["delivery"]["failing_since"].is_null());
    assert_eq!(on["delivery"]["last_event_id"], hook["delivery"]["last_event_id"]);
    let next = chrono::DateTime::parse_from_rfc3339(on["delivery"]["next_attempt_at"].as_str().unwrap()).unwrap();
    assert!((next.with_timezone(&Utc) - before).num_seconds().abs() < 60, "{next}");
}
