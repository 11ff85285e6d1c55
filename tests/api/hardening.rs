//! The leaks and races found by probing the service as an attacker would: personal data past the
//! audited reveal, replay oracles, hostile text and dates, lists wider than single reads,
//! concurrent creates and edits, work left with accounts that no longer serve, and the tag
//! workflow's loose ends. Each test failed on the code before the fix, on both backends.

use actix_web::test::TestRequest;
use diesel::prelude::*;
use futures_util::future::join_all;
use serde_json::{Value, json};

use gridlight::db::schema::{audit_events, households, members, tasks, visits};
use gridlight::domain::Role;

use crate::on_both_backends;
use crate::support::world::{id_number, ok};
use crate::support::{TestApp, TestResponse};

on_both_backends!(
    masks_leave_nothing_another_field_completes,
    a_create_replay_answers_alike_whatever_the_guess,
    household_phones_have_an_audited_reveal,
    invisible_and_control_reasons_reveal_nothing,
    hostile_text_and_dates_are_422_and_write_nothing,
    lists_apply_the_scope_of_single_reads,
    concurrent_identical_creates_are_one_201_and_the_rest_200,
    concurrent_edits_without_if_match_all_succeed,
    a_removal_racing_edits_is_really_a_removal,
    deactivated_and_unassigned_workers_hand_their_tasks_on,
    approving_what_is_already_applied_is_refused,
);

fn household(grid: &str, id: &str, phone: &str) -> Value {
    json!({"id": id, "grid_id": grid, "address": {"building": "5号楼", "unit": "1单元", "room": "102"},
           "head_name": "刘淑珍", "phone": phone, "notes": "独居"})
}

/// How many rows every table a hostile request could write to holds.
async fn footprint(app: &TestApp) -> Vec<i64> {
    app.state
        .db
        .read(|c| {
            Ok(vec![
                households::table.count().get_result(c)?,
                members::table.count().get_result(c)?,
                visits::table.count().get_result(c)?,
                tasks::table.count().get_result(c)?,
                audit_events::table.count().get_result(c)?,
                households::table.select(diesel::dsl::sum(households::version)).first::<Option<i64>>(c)?.unwrap_or(0),
            ])
        })
        .await
        .unwrap()
}

async fn masks_leave_nothing_another_field_completes(app: TestApp) {
    let w = app.world().await;
    // The world's member of household a1: born 1941-03-02, its ID number says so.
    let full = id_number("1941-03-02", 2);
    let member = ok(&app.get_as(&format!("/api/v1/members/{}", w.member_a1), &w.w_a1).await);
    assert_eq!(member["id_number"], format!("**************{}", &full[14..]));
    assert_eq!(member["birth_year"], 1941);
    assert!(member.get("birth_date").is_none(), "{member}");
    // Nothing any answer holds can fill the hidden part: not the division code, not the birth
    // date in any spelling.
    let answers = [
        member,
        ok(&app.get_as(&format!("/api/v1/households/{}/members", w.household_a1), &w.w_a1).await),
        ok(&app.get_as(&format!("/api/v1/households/{}", w.household_a1), &w.w_a1).await),
        ok(&app.get_as("/api/v1/households", &w.sec_a).await),
        ok(&app.get_as("/api/v1/audit-events?limit=500", &w.admin).await),
        ok(&app.patch(&format!("/api/v1/members/{}", w.member_a1), &w.sec_a, json!({"notes": "x"}), None).await),
    ];
    for answer in answers {
        let text = answer.to_string();
        for leak in [&full[..14], "1941-03-02", "19410302", &full] {
            assert!(!text.contains(leak), "{leak} in {text}");
        }
    }
    // The reveal gives it all, audited.
    let pii = ok(&app.get_as(&format!("/api/v1/members/{}/pii?reason=%E6%A0%B8%E5%AF%B9", w.member_a1), &w.w_a1).await);
    assert_eq!(pii["id_number"], full.as_str());
    assert_eq!(pii["birth_date"], "1941-03-02");
    // The published examples follow the rule.
    let doc = gridlight::api::openapi_json();
    assert!(!doc.contains("370103********"), "an example shows the old mask");
}

async fn a_create_replay_answers_alike_whatever_the_guess(app: TestApp) {
    let w = app.world().await;
    // The secretary registers a household with a phone; the worker of its grid reads it masked.
    let id = uuid::Uuid::now_v7().to_string();
    let phone = "13912345678";
    let created = app.post("/api/v1/households", Some(&w.sec_a), household(&w.grid_a1, &id, phone)).await;
    assert_eq!(created.status, 201);
    let seen = ok(&app.get_as(&format!("/api/v1/households/{id}"), &w.w_a1).await);
    assert_eq!(seen["phone"], "139****5678");
    // Everything but the hidden digits copied from the masked read: a right guess and a wrong one
    // get the same answer, so the answer tells nothing.
    let before = footprint(&app).await;
    let right = app.post("/api/v1/households", Some(&w.w_a1), household(&w.grid_a1, &id, phone)).await;
    let wrong = app.post("/api/v1/households", Some(&w.w_a1), household(&w.grid_a1, &id, "13900005678")).await;
    let strip = |r: &TestResponse| {
        let mut p = r.assert_problem(409);
        p.as_object_mut().unwrap().remove("instance");
        p
    };
    assert_eq!(strip(&right), strip(&wrong));
    assert_eq!(footprint(&app).await, before);
    // The creator's retry of the same request is still a 200 with the stored household, also
    // after someone edited it; another body is 409.
    let edited = app.patch(&format!("/api/v1/households/{id}"), &w.sec_a, json!({"notes": "改过"}), None).await;
    ok(&edited);
    let retry = app.post("/api/v1/households", Some(&w.sec_a), household(&w.grid_a1, &id, phone)).await;
    assert_eq!(retry.status, 200, "{}", String::from_utf8_lossy(&retry.body));
    assert_eq!(retry.json()["notes"], "改过");
    app.post("/api/v1/households", Some(&w.sec_a), household(&w.grid_a1, &id, "13900005678")).await.assert_problem(409);

    // Members: the same.
    let mid = uuid::Uuid::now_v7().to_string();
    let number = id_number("1950-01-20", 5);
    let member = |phone: &str| json!({"id": mid, "name": "赵大", "gender": "male", "id_number": number, "phone": phone, "relation": "spouse"});
    let path = format!("/api/v1/households/{id}/members");
    assert_eq!(app.post(&path, Some(&w.sec_a), member("13812345678")).await.status, 201);
    let right = app.post(&path, Some(&w.w_a1), member("13812345678")).await;
    let wrong = app.post(&path, Some(&w.w_a1), member("13800005678")).await;
    assert_eq!(strip(&right), strip(&wrong));
    assert_eq!(app.post(&path, Some(&w.sec_a), member("13812345678")).await.status, 200);
}

async fn household_phones_have_an_audited_reveal(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/households/{}/pii?reason=%E9%80%9A%E7%9F%A5%E4%BD%93%E6%A3%80", w.household_a1);
    let res = app.get_as(&path, &w.w_a1).await;
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(ok(&res)["phone"], "13912345678");
    let res = app.get_as(&path, &w.sec_a).await;
    assert_eq!(ok(&res)["phone"], "13912345678");
    // Out of scope: 404; an administrator is not the community's: 403; no reason: 422.
    app.get_as(&path, &w.w_a2).await.assert_problem(404);
    app.get_as(&path, &w.sec_b).await.assert_problem(404);
    app.get_as(&path, &w.admin).await.assert_problem(403);
    app.get_as(&format!("/api/v1/households/{}/pii", w.household_a1), &w.w_a1).await.assert_problem(422);
    let revealed: Vec<(String, Option<String>)> = app
        .state
        .db
        .read(|c| {
            Ok(audit_events::table
                .filter(audit_events::action.eq("household.pii_revealed"))
                .select((audit_events::summary, audit_events::actor_id))
                .load(c)?)
        })
        .await
        .unwrap();
    assert_eq!(revealed.len(), 2);
    assert!(revealed.iter().all(|(s, _)| s.contains("通知体检") && !s.contains("13912345678")));
}

async fn invisible_and_control_reasons_reveal_nothing(app: TestApp) {
    let w = app.world().await;
    let before = footprint(&app).await;
    for reason in ["%E2%80%8B", "%00", "%1B%5B2J", "%E2%80%AEabc", "%20%20", "%EF%BB%BF%E2%80%8D"] {
        for path in
            [format!("/api/v1/members/{}/pii", w.member_a1), format!("/api/v1/households/{}/pii", w.household_a1)]
        {
            let res = app.get_as(&format!("{path}?reason={reason}"), &w.w_a1).await;
            let problem = res.assert_problem(422);
            assert_eq!(problem["errors"][0]["field"], "reason", "{reason}: {problem}");
            assert!(!String::from_utf8_lossy(&res.body).contains("13912345678"));
        }
    }
    assert_eq!(footprint(&app).await, before, "nothing audited");
}

async fn hostile_text_and_dates_are_422_and_write_nothing(app: TestApp) {
    let w = app.world().await;
    let expect = |res: &TestResponse, field: &str, code: &str| {
        let p = res.assert_problem(422);
        assert_eq!(p["errors"][0]["field"], field, "{p}");
        assert_eq!(p["errors"][0]["code"], code, "{p}");
    };
    // Bodies: a control character, an escape sequence, a bidi override, nothing visible.
    let cases = [
        ("head_name", json!("张\u{0}三"), "control_character"),
        ("head_name", json!("\u{1b}[2J"), "control_character"),
        ("head_name", json!("abc\u{202e}txt"), "bidi_override"),
        ("head_name", json!("\u{200b}\u{200d}"), "blank"),
        ("notes", json!("a\u{0}b"), "control_character"),
        ("notes", json!("\u{85}"), "control_character"),
    ];
    for (field, value, code) in cases {
        let mut body = household(&w.grid_a1, &uuid::Uuid::now_v7().to_string(), "13912345678");
        body[field] = value;
        expect(&app.post("/api/v1/households", Some(&w.sec_a), body).await, field, code);
    }
    let mut body = household(&w.grid_a1, &uuid::Uuid::now_v7().to_string(), "13912345678");
    body["address"]["room"] = json!("1\u{0}");
    expect(&app.post("/api/v1/households", Some(&w.sec_a), body).await, "address.room", "control_character");
    // Several lines are fine in notes.
    let mut body = household(&w.grid_a1, &uuid::Uuid::now_v7().to_string(), "13912345678");
    body["notes"] = json!("第一行\n第二行\r\n\t缩进");
    let multiline = ok(&app.post("/api/v1/households", Some(&w.sec_a), body).await);
    assert_eq!(multiline["notes"], "第一行\n第二行\r\n\t缩进");
    let before = footprint(&app).await;

    // Ids in bodies, the login name, a visit's time far in the past.
    let visit = json!({"household_id": "x\u{0}", "kind": "home_visit", "visited_at": "2026-11-01T08:00:00Z"});
    expect(&app.post("/api/v1/visits", Some(&w.w_a1), visit).await, "household_id", "control_character");
    let login = app.post("/api/v1/auth/login", None, json!({"username": "a\u{0}", "password": "whatever-long"})).await;
    expect(&login, "username", "control_character");
    for at in ["-5000-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "2200-01-01T00:00:00Z"] {
        let visit = json!({"household_id": w.household_a1, "kind": "home_visit", "visited_at": at});
        expect(&app.post("/api/v1/visits", Some(&w.sec_a), visit).await, "visited_at", "out_of_range");
    }
    let member = json!({"name": "甲", "gender": "male", "relation": "head", "birth_date": "1066-10-14"});
    let path = format!("/api/v1/households/{}/members", w.household_a1);
    expect(&app.post(&path, Some(&w.sec_a), member).await, "birth_date", "out_of_range");

    // Queries: text and dates.
    for (url, field, code) in [
        ("/api/v1/households?q=%00", "q", "control_character"),
        ("/api/v1/households?q=%E2%80%AE", "q", "bidi_override"),
        ("/api/v1/households?grid_id=%00", "grid_id", "control_character"),
        ("/api/v1/households?updated_since=-4714-01-01T00:00:00Z", "updated_since", "out_of_range"),
        ("/api/v1/visits?from=-5000-01-01T00:00:00Z", "from", "out_of_range"),
        ("/api/v1/visits?to=0100-01-01T00:00:00Z", "to", "out_of_range"),
        ("/api/v1/tasks?due_before=-4714-01-01", "due_before", "out_of_range"),
        ("/api/v1/audit-events?from=-4714-01-01T00:00:00Z", "from", "out_of_range"),
    ] {
        expect(&app.get_as(url, &w.sec_a).await, field, code);
    }
    // `q=%00` used to match every household on SQLite.
    // Cursors carrying a NUL or an impossible date are not cursors this server issued.
    use base64::Engine;
    let cursor = |parts: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(parts.to_string());
    for (url, parts) in [
        ("/api/v1/households", json!(["a\u{0}"])),
        ("/api/v1/households?updated_since=2026-01-01T00:00:00Z", json!(["-5000-01-01T00:00:00.000000", "x"])),
        ("/api/v1/visits", json!(["-5000-01-01T00:00:00.000000", "x"])),
        ("/api/v1/tasks", json!(["-4714-01-01", "x"])),
    ] {
        let sep = if url.contains('?') { '&' } else { '?' };
        expect(&app.get_as(&format!("{url}{sep}cursor={}", cursor(parts)), &w.sec_a).await, "cursor", "invalid");
    }
    // A path id with a NUL names nothing.
    app.get_as("/api/v1/households/%00", &w.sec_a).await.assert_problem(404);
    app.get_as("/api/v1/members/a%00b/pii?reason=x", &w.sec_a).await.assert_problem(404);
    let res = app
        .call(
            TestRequest::patch()
                .uri("/api/v1/households/%00")
                .insert_header(("authorization", format!("Bearer {}", w.sec_a)))
                .set_json(json!({"notes": "x"})),
        )
        .await;
    res.assert_problem(404);
    assert_eq!(footprint(&app).await, before);
}

async fn lists_apply_the_scope_of_single_reads(app: TestApp) {
    let w = app.world().await;
    let visit = |id: &str| {
        json!({"id": id, "household_id": w.household_a1, "kind": "home_visit",
                                  "visited_at": chrono::Utc::now().to_rfc3339(), "notes": "老人身体很好"})
    };
    let vid = uuid::Uuid::now_v7().to_string();
    ok(&app.post("/api/v1/visits", Some(&w.w_a1), visit(&vid)).await);
    let listed = |page: Value| page["items"].as_array().unwrap().len();
    let by_household = format!("/api/v1/visits?household_id={}", w.household_a1);
    let tasks_of = format!("/api/v1/tasks?household_id={}", w.household_a1);
    assert_eq!(listed(ok(&app.get_as(&by_household, &w.w_a1).await)), 1);
    assert!(listed(ok(&app.get_as(&tasks_of, &w.w_a1).await)) >= 2, "the done task and its successor");
    // The secretary moves the household to grid a2: its old worker reads none of it, in lists
    // as by id; the new grid's worker reads all of it.
    ok(&app
        .patch(&format!("/api/v1/households/{}", w.household_a1), &w.sec_a, json!({"grid_id": w.grid_a2}), None)
        .await);
    app.get_as(&format!("/api/v1/visits/{vid}"), &w.w_a1).await.assert_problem(404);
    assert_eq!(listed(ok(&app.get_as(&by_household, &w.w_a1).await)), 0);
    assert_eq!(listed(ok(&app.get_as("/api/v1/visits", &w.w_a1).await)), 0);
    assert_eq!(listed(ok(&app.get_as(&format!("/api/v1/visits?grid_id={}", w.grid_a1), &w.w_a1).await)), 0);
    assert_eq!(listed(ok(&app.get_as(&tasks_of, &w.w_a1).await)), 0);
    assert_eq!(listed(ok(&app.get_as(&by_household, &w.w_a2).await)), 1);
    ok(&app.get_as(&format!("/api/v1/visits/{vid}"), &w.w_a2).await);
    // Removed: the worker reads none of it either; the secretary still does.
    assert_eq!(
        app.delete_as(&format!("/api/v1/households/{}?reason=moved_out", w.household_a1), &w.sec_a).await.status,
        200
    );
    assert_eq!(listed(ok(&app.get_as(&by_household, &w.w_a2).await)), 0);
    assert_eq!(listed(ok(&app.get_as(&tasks_of, &w.w_a2).await)), 0);
    app.get_as(&format!("/api/v1/visits/{vid}"), &w.w_a2).await.assert_problem(404);
    assert_eq!(listed(ok(&app.get_as(&by_household, &w.sec_a).await)), 1);
}

async fn concurrent_identical_creates_are_one_201_and_the_rest_200(app: TestApp) {
    let w = app.world().await;
    let id = uuid::Uuid::now_v7().to_string();
    let body = household(&w.grid_a1, &id, "13912345678");
    let results = join_all((0..20).map(|_| app.post("/api/v1/households", Some(&w.w_a1), body.clone()))).await;
    let mut statuses: Vec<u16> = results.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [vec![200; 19], vec![201]].concat(),
        "{:?}",
        results.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let bodies: Vec<Value> = results.iter().map(TestResponse::json).collect();
    assert!(bodies.iter().all(|b| b["id"] == id.as_str() && b["created_at"] == bodies[0]["created_at"]));
    let open = ok(&app.get_as(&format!("/api/v1/tasks?household_id={id}&status=open"), &w.sec_a).await);
    assert_eq!(open["items"].as_array().unwrap().len(), 1, "one task for one household");
}

async fn concurrent_edits_without_if_match_all_succeed(app: TestApp) {
    let w = app.world().await;
    let member = format!("/api/v1/members/{}", w.member_a1);
    let results =
        join_all((0..10).map(|i| app.patch(&member, &w.sec_a, json!({"notes": format!("第{i}次")}), None))).await;
    assert!(results.iter().all(|r| r.status == 200), "{:?}", results.iter().map(|r| r.status).collect::<Vec<_>>());
    assert_eq!(ok(&app.get_as(&member, &w.sec_a).await)["version"], 11);
    // Visits, households, accounts, communities and grids too: last write wins, all 200.
    let vid = uuid::Uuid::now_v7().to_string();
    let visit = json!({"id": vid, "household_id": w.household_a1, "kind": "phone_call",
                       "visited_at": chrono::Utc::now().to_rfc3339()});
    ok(&app.post("/api/v1/visits", Some(&w.w_a1), visit).await);
    let paths = [
        (format!("/api/v1/visits/{vid}"), w.w_a1.clone(), json!({"notes": "补充"})),
        (format!("/api/v1/households/{}", w.household_a1), w.sec_a.clone(), json!({"notes": "改"})),
        (format!("/api/v1/users/{}", w.user_w_a1), w.sec_a.clone(), json!({"display_name": "王网格"})),
        (format!("/api/v1/communities/{}", w.community_a), w.admin.clone(), json!({"street": "七里山街道"})),
        (format!("/api/v1/grids/{}", w.grid_a1), w.sec_a.clone(), json!({"name": "第一网格"})),
    ];
    for (path, token, body) in paths {
        let results = join_all((0..6).map(|_| app.patch(&path, &token, body.clone(), None))).await;
        let statuses: Vec<u16> = results.iter().map(|r| r.status.as_u16()).collect();
        assert!(statuses.iter().all(|s| *s == 200), "{path}: {statuses:?}");
    }
}

async fn a_removal_racing_edits_is_really_a_removal(app: TestApp) {
    let w = app.world().await;
    for round in 0..4 {
        let id = app
            .create_member(
                &w.sec_a,
                &w.household_a2,
                json!({"name": format!("成员{round}"), "gender": "female", "relation": "child"}),
            )
            .await;
        let path = format!("/api/v1/members/{id}");
        let patches = (0..6).map(|i| app.patch(&path, &w.sec_a, json!({"notes": format!("{i}")}), None));
        let delete = app.delete_as(&path, &w.sec_a);
        let (removed, edits) = futures_util::join!(delete, join_all(patches));
        assert_eq!(removed.status, 204);
        // Every edit either came before the removal (200) or found the member gone (404).
        assert!(edits.iter().all(|r| r.status == 200 || r.status == 404));
        app.get_as(&path, &w.sec_a).await.assert_problem(404);
        let gone: Option<Option<chrono::NaiveDateTime>> = app
            .state
            .db
            .read(move |c| Ok(members::table.find(&id).select(members::removed_at).first(c).optional()?))
            .await
            .unwrap();
        assert!(gone.flatten().is_some(), "a 204 means it is gone");
    }
}

async fn open_tasks(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    ok(&app.get_as(&format!("/api/v1/tasks?status=open&{query}"), token).await)["items"].as_array().unwrap().clone()
}

async fn deactivated_and_unassigned_workers_hand_their_tasks_on(app: TestApp) {
    let w = app.world().await;
    let grid_tasks = |grid: &str| format!("grid_id={grid}");
    // Grid a1's primary worker w-a1 holds its open tasks; the secretary deactivates the account.
    let held = open_tasks(&app, &w.sec_a, &grid_tasks(&w.grid_a1)).await;
    assert!(!held.is_empty() && held.iter().all(|t| t["assignee_id"] == w.user_w_a1.as_str()));
    ok(&app.patch(&format!("/api/v1/users/{}", w.user_w_a1), &w.sec_a, json!({"active": false}), None).await);
    // Its work is in the secretary's queue; it serves no grid any more.
    let queue = open_tasks(&app, &w.sec_a, "assignee=none").await;
    assert_eq!(queue.len(), held.len());
    let grid = ok(&app.get_as(&format!("/api/v1/grids/{}", w.grid_a1), &w.sec_a).await);
    assert!(grid["workers"].as_array().unwrap().is_empty(), "{grid}");
    // A new household of the grid gets unassigned tasks, not the inactive account's.
    let hh = app.create_household(&w.sec_a, &w.grid_a1, "新住户").await;
    let fresh = open_tasks(&app, &w.sec_a, &format!("household_id={hh}")).await;
    assert!(!fresh.is_empty() && fresh.iter().all(|t| t["assignee_id"].is_null()));
    // An inactive account cannot be given a task.
    let task = fresh[0]["id"].as_str().unwrap();
    let res = app.patch(&format!("/api/v1/tasks/{task}"), &w.sec_a, json!({"assignee_id": w.user_w_a1}), None).await;
    assert_eq!(res.assert_problem(422)["errors"][0]["field"], "assignee_id");

    // Grid a2: a task reassigned to a second worker, who then leaves the grid, goes back to the
    // primary: it is in someone's list.
    let helper = app.user("w-a3", Role::GridWorker, Some(&w.community_a)).await;
    app.assign(&w.sec_a, &w.grid_a2, &[(&w.user_w_a2, true), (&helper, false)]).await;
    let task = open_tasks(&app, &w.sec_a, &grid_tasks(&w.grid_a2)).await[0]["id"].as_str().unwrap().to_owned();
    ok(&app.patch(&format!("/api/v1/tasks/{task}"), &w.sec_a, json!({"assignee_id": helper}), None).await);
    app.assign(&w.sec_a, &w.grid_a2, &[(&w.user_w_a2, true)]).await;
    let mine = open_tasks(&app, &w.w_a2, "assignee=me").await;
    assert!(mine.iter().any(|t| t["id"] == task.as_str()), "the task came back to the primary");

    // The reconcile re-establishes the rule for an assignee that slipped past it.
    let stray = helper.clone();
    let t = task.clone();
    app.state
        .db
        .write(move |c| {
            diesel::update(tasks::table.find(&t)).set(tasks::assignee_id.eq(Some(stray))).execute(c)?;
            Ok(())
        })
        .await
        .unwrap();
    app.state.db.write(|c| gridlight::store::tasks::reconcile_batch(c, None, 1000)).await.unwrap();
    let mine = open_tasks(&app, &w.w_a2, "assignee=me").await;
    assert!(mine.iter().any(|t| t["id"] == task.as_str()), "reconciled back to the primary");
}

async fn approving_what_is_already_applied_is_refused(app: TestApp) {
    let w = app.world().await;
    let reasons = json!({"to_tag": "red", "reasons": ["elderly_living_alone"]});
    let path = format!("/api/v1/households/{}/tag-changes", w.household_a1);
    let proposal = ok(&app.post(&path, Some(&w.w_a1), reasons.clone()).await);
    // Meanwhile the secretary applies the same tag and reasons directly.
    ok(&app.post(&path, Some(&w.sec_a), reasons).await);
    let hh = ok(&app.get_as(&format!("/api/v1/households/{}", w.household_a1), &w.sec_a).await);
    let history_url = format!("/api/v1/households/{}/tag-history", w.household_a1);
    let history = async || ok(&app.get_as(&history_url, &w.sec_a).await)["items"].as_array().unwrap().len();
    assert_eq!(history().await, 1);
    let approve = format!("/api/v1/tag-changes/{}/approve", proposal["id"].as_str().unwrap());
    let res = app.post(&approve, Some(&w.sec_a), json!({})).await;
    assert_eq!(res.assert_problem(422)["errors"][0]["code"], "unchanged");
    // No red→red entry, the review date and version stand, and the proposal can be rejected.
    assert_eq!(history().await, 1);
    let after = ok(&app.get_as(&format!("/api/v1/households/{}", w.household_a1), &w.sec_a).await);
    assert_eq!(
        (after["tag_review_due_on"].clone(), after["version"].clone()),
        (hh["tag_review_due_on"].clone(), hh["version"].clone())
    );
    let reject = format!("/api/v1/tag-changes/{}/reject", proposal["id"].as_str().unwrap());
    assert_eq!(ok(&app.post(&reject, Some(&w.sec_a), json!({"note": "已直接设置"})).await)["status"], "rejected");
}
