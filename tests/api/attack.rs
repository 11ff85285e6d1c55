//! What still broke when the hardened service was attacked again: a validation that compared a
//! sent value with a hidden one (and quoted it), invisible characters the text rule did not
//! know, lock orders that let a plan change deadlock with visits and a reassignment outlive
//! the worker's assignment, and a lockout nobody could lift. Each test failed on the code
//! before its fix, on the backend named in it or on both.

use diesel::prelude::*;
use futures_util::future::join_all;
use serde_json::{Value, json};

use gridlight::db::schema::{audit_events, members, tasks};
use gridlight::domain::Role;

use crate::on_both_backends;
use crate::support::fixtures::PASSWORD;
use crate::support::world::{id_number, ok};
use crate::support::{TestApp, TestResponse};

on_both_backends!(
    member_changes_never_check_against_the_hidden_birth_date,
    invisible_format_characters_are_blank_and_line_separators_break_lines,
    replacing_a_plan_while_visits_arrive_does_not_deadlock,
    reassigning_tasks_while_workers_leave_leaves_none_with_them,
    households_registered_while_the_primary_changes_go_to_the_new_one,
    a_password_reset_lifts_the_lockout,
);

/// Status, problem code and field error codes: what a caller learns from a refusal, without
/// the per-request `instance`.
fn answer(res: &TestResponse) -> Value {
    let body: Value = serde_json::from_slice(&res.body).unwrap_or(Value::Null);
    let errors: Vec<Value> = body["errors"]
        .as_array()
        .map(|e| e.iter().map(|e| json!([e["field"], e["code"], e["message"]])).collect())
        .unwrap_or_default();
    json!({"status": res.status.as_u16(), "code": body["code"], "errors": errors})
}

async fn written(app: &TestApp) -> (i64, i64) {
    app.state
        .db
        .read(|c| {
            Ok((
                audit_events::table.count().get_result(c)?,
                members::table.select(diesel::dsl::sum(members::version)).first::<Option<i64>>(c)?.unwrap_or(0),
            ))
        })
        .await
        .unwrap()
}

async fn member_changes_never_check_against_the_hidden_birth_date(app: TestApp) {
    let w = app.world().await;
    // Member a1 was born 1941-03-02 (her ID number says so); the worker sees 1941 and the last
    // 4 characters of the number only.
    let path = format!("/api/v1/members/{}", w.member_a1);
    let before = written(&app).await;
    for if_match in [Some("\"99\""), None] {
        // A birth date alone would have to agree with the stored ID number: guessing it told
        // right from wrong (412 or 200 against 422), and the 422 quoted the number's date.
        let right = app.patch(&path, &w.w_a1, json!({"birth_date": "1941-03-02"}), if_match).await;
        let wrong = app.patch(&path, &w.w_a1, json!({"birth_date": "1941-03-03"}), if_match).await;
        for res in [&right, &wrong] {
            let text = String::from_utf8_lossy(&res.body);
            assert!(!text.contains("1941-03-02") && !text.contains("19410302"), "{text}");
        }
        assert_eq!(answer(&right), answer(&wrong), "a guessed birth date is judged against the hidden one");
        assert_eq!(right.assert_problem(422)["errors"][0]["field"], "birth_date");
    }
    // A new ID number alone: judged on its own (its birth date replaces the stored one), never
    // against the hidden birth date.
    let same_day = id_number("1941-03-02", 4);
    let other_day = id_number("1941-03-05", 4);
    let stale = Some("\"99\"");
    let a = app.patch(&path, &w.w_a1, json!({"id_number": same_day}), stale).await;
    let b = app.patch(&path, &w.w_a1, json!({"id_number": other_day}), stale).await;
    assert_eq!(answer(&a), answer(&b), "a new ID number is judged against the hidden birth date");
    a.assert_problem(412);
    assert_eq!(written(&app).await, before, "refusals write nothing");
    // Sent together they are checked against each other, and the message quotes nothing.
    let both = app.patch(&path, &w.w_a1, json!({"id_number": other_day, "birth_date": "1941-03-06"}), None).await;
    let p = both.assert_problem(422);
    assert_eq!(
        (p["errors"][0]["field"].as_str(), p["errors"][0]["code"].as_str()),
        (Some("id_number"), Some("birth_date_mismatch"))
    );
    assert!(!p.to_string().contains("1941-03-0"), "{p}");
    // The legitimate corrections still work: a new number brings its birth date.
    let changed = ok(&app.patch(&path, &w.w_a1, json!({"id_number": other_day}), None).await);
    assert_eq!(changed["birth_year"], 1941);
    let pii = ok(&app.get_as(&format!("{path}/pii?reason=%E6%A0%B8%E5%AF%B9"), &w.sec_a).await);
    assert_eq!((pii["id_number"].as_str(), pii["birth_date"].as_str()), (Some(other_day.as_str()), Some("1941-03-05")));
    let both = json!({"id_number": id_number("1941-04-01", 4), "birth_date": "1941-04-01"});
    assert_eq!(ok(&app.patch(&path, &w.sec_a, both, None).await)["birth_year"], 1941);
    // A member without an ID number takes a birth date alone.
    let plain = app
        .create_member(&w.sec_a, &w.household_a1, json!({"name": "无证", "gender": "male", "relation": "other"}))
        .await;
    ok(&app.patch(&format!("/api/v1/members/{plain}"), &w.w_a1, json!({"birth_date": "1950-05-05"}), None).await);
}

async fn invisible_format_characters_are_blank_and_line_separators_break_lines(app: TestApp) {
    let w = app.world().await;
    let audited =
        || async { app.state.db.read(|c| Ok(audit_events::table.count().get_result::<i64>(c)?)).await.unwrap() };
    let before = audited().await;
    // Tag characters, a musical-notation format character, interlinear annotation marks, the
    // braille blank, a variation selector of the supplement: nothing a person can see.
    let invisible = ["\u{e0041}\u{e0042}", "\u{1d173}", "\u{fff9}\u{fffb}", "\u{2800}", "\u{e0100}", " \u{e0020} "];
    for reason in invisible {
        let q = url_encode(reason);
        for path in
            [format!("/api/v1/members/{}/pii", w.member_a1), format!("/api/v1/households/{}/pii", w.household_a1)]
        {
            let res = app.get_as(&format!("{path}?reason={q}"), &w.w_a1).await;
            let p = res.assert_problem(422);
            assert_eq!(
                (p["errors"][0]["field"].as_str(), p["errors"][0]["code"].as_str()),
                (Some("reason"), Some("blank"))
            );
        }
    }
    assert_eq!(audited().await, before, "no reveal was audited with an invisible reason");
    let household = |head: &str, notes: &str| {
        json!({"grid_id": w.grid_a1, "address": {"building": "1号楼", "unit": "1单元", "room": "101"},
               "head_name": head, "notes": notes})
    };
    for head in invisible {
        let res = app.post("/api/v1/households", Some(&w.w_a1), household(head, "")).await;
        assert_eq!(res.assert_problem(422)["errors"][0]["field"], "head_name", "{head:?}");
    }
    // Line and paragraph separators break lines: refused in one-line fields, fine in notes.
    for head in ["张\u{2028}三", "张\u{2029}三"] {
        let res = app.post("/api/v1/households", Some(&w.w_a1), household(head, "")).await;
        let p = res.assert_problem(422);
        assert_eq!(
            (p["errors"][0]["field"].as_str(), p["errors"][0]["code"].as_str()),
            (Some("head_name"), Some("control_character"))
        );
    }
    assert_eq!(audited().await, before, "nothing was written");
    ok(&app.post("/api/v1/households", Some(&w.w_a1), household("张三", "第一段\u{2029}第二段")).await);
    // Visible text with such characters inside is still text.
    ok(&app.post("/api/v1/households", Some(&w.w_a1), household("王\u{200d}五", "")).await);
}

fn url_encode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

async fn replacing_a_plan_while_visits_arrive_does_not_deadlock(app: TestApp) {
    let w = app.world().await;
    let mut hh = Vec::new();
    for i in 0..10 {
        hh.push(
            app.create_household(&w.sec_a, if i % 2 == 0 { &w.grid_a1 } else { &w.grid_a2 }, &format!("户{i}")).await,
        );
    }
    let plan = format!("/api/v1/communities/{}/service-plans/green", w.community_a);
    let mut statuses = Vec::new();
    for round in 0..12 {
        // A changed interval moves the due dates of the plan's open tasks while each visit
        // completes one of them and schedules the next.
        let interval = if round % 2 == 0 { 60 } else { 90 };
        let body = json!({"templates": [{"name": "入户走访", "kind": "home_visit", "interval_days": interval, "active": true}]});
        let at = chrono::Utc::now().to_rfc3339();
        let visits = hh.iter().map(|h| {
            let token = if hh.iter().position(|x| x == h).unwrap() % 2 == 0 { &w.w_a1 } else { &w.w_a2 };
            app.post("/api/v1/visits", Some(token), json!({"household_id": h, "kind": "home_visit", "visited_at": at}))
        });
        let (replaced, recorded) = futures_util::join!(app.put(&plan, &w.sec_a, body), join_all(visits));
        statuses.push(replaced.status.as_u16());
        statuses.extend(recorded.iter().map(|r| r.status.as_u16()));
    }
    assert!(statuses.iter().all(|s| *s == 200 || *s == 201), "{statuses:?}");
}

async fn open_tasks_held_by(app: &TestApp, grid: &str, holder: &str) -> usize {
    let (grid, holder) = (grid.to_owned(), holder.to_owned());
    app.state
        .db
        .read(move |c| {
            Ok(tasks::table
                .filter(tasks::grid_id.eq(&grid))
                .filter(tasks::status.eq("open"))
                .filter(tasks::assignee_id.eq(&holder))
                .count()
                .get_result::<i64>(c)?)
        })
        .await
        .unwrap() as usize
}

async fn open_tasks_of(app: &TestApp, grid: &str) -> Vec<String> {
    let grid = grid.to_owned();
    app.state
        .db
        .read(move |c| {
            Ok(tasks::table
                .filter(tasks::grid_id.eq(&grid))
                .filter(tasks::status.eq("open"))
                .select(tasks::id)
                .load(c)?)
        })
        .await
        .unwrap()
}

async fn reassigning_tasks_while_workers_leave_leaves_none_with_them(app: TestApp) {
    let w = app.world().await;
    for i in 0..8 {
        app.create_household(&w.sec_a, &w.grid_a2, &format!("住户{i}")).await;
    }
    let helper = app.user("w-help", Role::GridWorker, Some(&w.community_a)).await;
    let workers = format!("/api/v1/grids/{}/workers", w.grid_a2);
    let with_helper =
        json!({"workers": [{"user_id": w.user_w_a2, "primary": true}, {"user_id": helper, "primary": false}]});
    let without = json!({"workers": [{"user_id": w.user_w_a2, "primary": true}]});
    let user = format!("/api/v1/users/{helper}");
    for round in 0..8 {
        ok(&app.patch(&user, &w.sec_a, json!({"active": true}), None).await);
        ok(&app.put(&workers, &w.sec_a, with_helper.clone()).await);
        let ids = open_tasks_of(&app, &w.grid_a2).await;
        let paths: Vec<String> = ids.iter().map(|t| format!("/api/v1/tasks/{t}")).collect();
        let patches = paths.iter().map(|p| app.patch(p, &w.sec_a, json!({"assignee_id": helper}), None));
        // Half the rounds take the helper off the grid, the others deactivate the account.
        let leave = async {
            if round % 2 == 0 {
                app.put(&workers, &w.sec_a, without.clone()).await
            } else {
                app.patch(&user, &w.sec_a, json!({"active": false}), None).await
            }
        };
        let (left, results) = futures_util::join!(leave, join_all(patches));
        ok(&left);
        assert!(results.iter().all(|r| r.status == 200 || r.status == 422), "round {round}");
        assert_eq!(
            open_tasks_held_by(&app, &w.grid_a2, &helper).await,
            0,
            "round {round}: open tasks left with the helper"
        );
    }
}

async fn a_password_reset_lifts_the_lockout(app: TestApp) {
    let w = app.world().await;
    app.user("w-locked", Role::GridWorker, Some(&w.community_a)).await;
    let id = ok(&app.get_as("/api/v1/users?limit=500", &w.sec_a).await)["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "w-locked")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..5 {
        assert_eq!(app.login_as("w-locked", &format!("wrong-password-{i}")).await.status, 401);
    }
    app.login_as("w-locked", PASSWORD).await.assert_problem(429);
    // The secretary gives the worker a new password: the lock on the old one ends with it.
    ok(&app.patch(&format!("/api/v1/users/{id}"), &w.sec_a, json!({"password": "a-brand-new-secret"}), None).await);
    let res = app.login_as("w-locked", "a-brand-new-secret").await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
}

async fn households_registered_while_the_primary_changes_go_to_the_new_one(app: TestApp) {
    let w = app.world().await;
    let other = app.user("w-next", Role::GridWorker, Some(&w.community_a)).await;
    let workers = format!("/api/v1/grids/{}/workers", w.grid_a1);
    for round in 0..6 {
        let (from, to) = if round % 2 == 0 { (&w.user_w_a1, &other) } else { (&other, &w.user_w_a1) };
        let both = json!({"workers": [{"user_id": from, "primary": true}, {"user_id": to, "primary": false}]});
        ok(&app.put(&workers, &w.sec_a, both).await);
        let bodies: Vec<Value> = (0..8)
            .map(|i| {
                json!({"grid_id": w.grid_a1, "address": {"building": format!("{round}号楼"), "unit": "1单元", "room": format!("{i}")},
                       "head_name": "新住户"})
            })
            .collect();
        let creates = bodies.iter().map(|b| app.post("/api/v1/households", Some(&w.sec_a), b.clone()));
        let change = app.put(&workers, &w.sec_a, json!({"workers": [{"user_id": to, "primary": true}]}));
        let (changed, created) = futures_util::join!(change, join_all(creates));
        ok(&changed);
        assert!(created.iter().all(|r| r.status == 201));
        let open = open_tasks_of(&app, &w.grid_a1).await.len();
        assert_eq!(
            open_tasks_held_by(&app, &w.grid_a1, to).await,
            open,
            "round {round}: tasks of new households went to the old primary"
        );
    }
}
