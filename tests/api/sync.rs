//! Offline sync: the change feed (`GET /sync`) against a reference device that keeps a replica,
//! in scenarios and in seeded random interleavings of server-side changes and syncs.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::TestApp;
use crate::support::replica::{self, Replica, View, differences};
use crate::support::world::{World, id_number, ok};

on_both_backends!(
    initial_sync_is_the_scope_paged_as_of_one_point,
    deltas_carry_upserts_deletes_and_leaves,
    scope_changes_reach_the_device,
    tokens_are_bound_and_expire,
    a_device_that_keeps_syncing_keeps_a_young_token,
    a_device_replica_equals_the_server_after_every_sync,
    a_push_applies_each_operation_on_its_own,
    a_stale_edit_is_a_conflict_with_the_server_record,
    a_change_committed_after_a_later_one_is_not_skipped,
    the_change_log_is_pruned_after_the_retention,
);

/// A device: a replica, and where it is in the feed.
#[derive(Default)]
pub struct Device {
    pub token: Option<String>,
    pub replica: Replica,
    pub pages: usize,
}

impl Device {
    /// Syncs until the feed says there is no more; returns the changes received.
    pub async fn sync(&mut self, app: &TestApp, token: &str, limit: usize) -> Vec<Value> {
        let mut all = Vec::new();
        loop {
            let mut url = format!("/api/v1/sync?limit={limit}");
            if let Some(t) = &self.token {
                url.push_str(&format!("&since={t}"));
            }
            let page = ok(&app.get_as(&url, token).await);
            for c in page["changes"].as_array().unwrap() {
                self.replica.apply(c);
                all.push(c.clone());
            }
            self.token = Some(page["next"].as_str().unwrap().to_owned());
            self.pages += 1;
            if page["more"] == false {
                return all;
            }
        }
    }

    pub fn of(&self, entity: &str) -> BTreeMap<String, Value> {
        self.replica.of(entity)
    }
}

async fn all_pages(app: &TestApp, token: &str, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit=500&cursor={c}"),
            None => format!("{path}{sep}limit=500"),
        };
        let page = ok(&app.get_as(&url, token).await);
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// What the server's lists say the caller may see now.
pub async fn server_view(app: &TestApp, token: &str) -> View {
    let households = all_pages(app, token, "/api/v1/households").await;
    let mut members = Vec::new();
    for h in &households {
        members
            .extend(all_pages(app, token, &format!("/api/v1/households/{}/members", h["id"].as_str().unwrap())).await);
    }
    replica::server_view(
        households,
        members,
        all_pages(app, token, "/api/v1/tasks?status=open").await,
        all_pages(app, token, "/api/v1/visits").await,
        all_pages(app, token, "/api/v1/tag-changes?status=pending").await,
    )
}

#[track_caller]
fn assert_same(device: &Device, server: View, context: &str) {
    if let Some(d) = differences(device.replica.view(), server) {
        panic!("{context}: {d}");
    }
}

async fn initial_sync_is_the_scope_paged_as_of_one_point(app: TestApp) {
    let w = app.world().await;
    let mut whole = Device::default();
    let changes = whole.sync(&app, &w.w_a1, 5000).await;
    assert_eq!(whole.pages, 1);
    assert!(changes.iter().all(|c| c["op"] == "upsert"));
    // The caller's account, the catalogue, the community's accounts, plans and the worker's grid.
    assert_eq!(whole.of("me").len(), 1);
    assert!(whole.of("tag_reason").len() > 10);
    assert!(whole.of("user").len() >= 3, "{:?}", whole.of("user").keys());
    assert_eq!(whole.of("plan").len(), 3);
    assert_eq!(whole.of("grid").keys().collect::<Vec<_>>(), vec![&w.grid_a1]);
    assert_eq!(whole.of("household").keys().collect::<Vec<_>>(), vec![&w.household_a1]);
    assert_same(&whole, server_view(&app, &w.w_a1).await, "after an initial sync");
    // Members are masked like every answer.
    let member = &whole.of("member")[&w.member_a1];
    assert!(member["id_number"].as_str().unwrap().starts_with("**************"));
    // Paged three at a time: the same records, in several pages.
    let mut paged = Device::default();
    paged.sync(&app, &w.w_a1, 3).await;
    assert!(paged.pages > 3);
    assert_eq!(paged.replica, whole.replica);
    // Nothing changed: an empty delta.
    let delta = whole.sync(&app, &w.w_a1, 500).await;
    assert!(delta.is_empty(), "{delta:?}");
}

async fn deltas_carry_upserts_deletes_and_leaves(app: TestApp) {
    let w = app.world().await;
    let mut device = Device::default();
    device.sync(&app, &w.w_a1, 500).await;
    // An edit: the household comes again with its new state.
    let hh = format!("/api/v1/households/{}", w.household_a1);
    ok(&app.patch(&hh, &w.sec_a, json!({"notes": "改过"}), None).await);
    let changes = device.sync(&app, &w.w_a1, 500).await;
    assert!(changes.iter().any(|c| c["entity"] == "household" && c["op"] == "upsert" && c["data"]["notes"] == "改过"));
    assert_same(&device, server_view(&app, &w.w_a1).await, "after an edit");
    // A member added and one removed: an upsert and a tombstone.
    let added = app
        .create_member(
            &w.sec_a,
            &w.household_a1,
            json!({"name": "新成员", "gender": "male", "relation": "child",
            "id_number": id_number("2001-05-06", 3)}),
        )
        .await;
    assert_eq!(app.delete_as(&format!("/api/v1/members/{}", w.member_a1), &w.sec_a).await.status, 204);
    let changes = device.sync(&app, &w.w_a1, 500).await;
    assert!(changes.iter().any(|c| c["entity"] == "member" && c["id"] == added.as_str() && c["op"] == "upsert"));
    assert!(changes.iter().any(|c| c["entity"] == "member" && c["id"] == w.member_a1.as_str() && c["op"] == "delete"));
    assert_same(&device, server_view(&app, &w.w_a1).await, "after member changes");
    // A visit, then the household moves to another grid: the old grid's worker gets a leave,
    // the new one's the household with everything that belongs to it.
    let mut other = Device::default();
    other.sync(&app, &w.w_a2, 500).await;
    let visit =
        json!({"household_id": w.household_a1, "kind": "home_visit", "visited_at": chrono::Utc::now().to_rfc3339()});
    ok(&app.post("/api/v1/visits", Some(&w.w_a1), visit).await);
    device.sync(&app, &w.w_a1, 500).await;
    ok(&app.patch(&hh, &w.sec_a, json!({"grid_id": w.grid_a2}), None).await);
    let changes = device.sync(&app, &w.w_a1, 500).await;
    assert!(changes.iter().any(|c| c["entity"] == "household" && c["op"] == "leave"), "{changes:?}");
    assert!(device.of("household").is_empty() && device.of("member").is_empty() && device.of("visit").is_empty());
    assert_same(&device, server_view(&app, &w.w_a1).await, "after the move, old grid");
    other.sync(&app, &w.w_a2, 500).await;
    assert!(other.of("household").contains_key(&w.household_a1));
    assert_same(&other, server_view(&app, &w.w_a2).await, "after the move, new grid");
    // Removal: a tombstone with the reason.
    assert_eq!(app.delete_as(&format!("{hh}?reason=deceased"), &w.sec_a).await.status, 200);
    let changes = other.sync(&app, &w.w_a2, 500).await;
    let tomb = changes.iter().find(|c| c["entity"] == "household" && c["op"] == "delete").expect("a tombstone");
    assert_eq!(tomb["data"]["removed_reason"], "deceased");
    assert_same(&other, server_view(&app, &w.w_a2).await, "after the removal");
}

async fn scope_changes_reach_the_device(app: TestApp) {
    let w = app.world().await;
    let mut device = Device::default();
    device.sync(&app, &w.w_a1, 500).await;
    // Assigned a second grid: everything in it arrives.
    app.assign(&w.sec_a, &w.grid_a2, &[(&w.user_w_a2, true), (&w.user_w_a1, false)]).await;
    let changes = device.sync(&app, &w.w_a1, 2).await;
    assert!(changes.iter().any(|c| c["entity"] == "household" && c["id"] == w.household_a2.as_str()));
    assert!(device.of("grid").contains_key(&w.grid_a2));
    assert_same(&device, server_view(&app, &w.w_a1).await, "after an assignment");
    // Unassigned from the first: it leaves, with its households.
    app.assign(&w.sec_a, &w.grid_a1, &[]).await;
    let changes = device.sync(&app, &w.w_a1, 500).await;
    assert!(changes.iter().any(|c| c["entity"] == "grid" && c["id"] == w.grid_a1.as_str() && c["op"] == "leave"));
    assert!(!device.of("household").contains_key(&w.household_a1));
    assert_same(&device, server_view(&app, &w.w_a1).await, "after an unassignment");
    // Deactivated: the session ends.
    ok(&app.patch(&format!("/api/v1/users/{}", w.user_w_a1), &w.sec_a, json!({"active": false}), None).await);
    let url = format!("/api/v1/sync?since={}", device.token.as_deref().unwrap());
    app.get_as(&url, &w.w_a1).await.assert_problem(401);
}

async fn tokens_are_bound_and_expire(app: TestApp) {
    let w: World = app.world().await;
    let mut device = Device::default();
    device.sync(&app, &w.w_a1, 500).await;
    let token = device.token.clone().unwrap();
    // Another account's token, garbage, a tampered one: 410 resync_required.
    let gone = |res: crate::support::TestResponse| assert_eq!(res.assert_problem(410)["code"], "resync_required");
    gone(app.get_as(&format!("/api/v1/sync?since={token}"), &w.w_a2).await);
    gone(app.get_as("/api/v1/sync?since=abc.def", &w.w_a1).await);
    let mut tampered = token.clone();
    tampered.insert(3, 'x');
    gone(app.get_as(&format!("/api/v1/sync?since={tampered}"), &w.w_a1).await);
    // A token older than the retention.
    let old = aged(&token, 31);
    gone(app.get_as(&format!("/api/v1/sync?since={old}"), &w.w_a1).await);
    // Administrators name the community.
    app.get_as("/api/v1/sync", &w.admin).await.assert_problem(422);
    ok(&app.get_as(&format!("/api/v1/sync?community_id={}", w.community_a), &w.admin).await);
    app.get_as(&format!("/api/v1/sync?community_id={}", w.community_b), &w.sec_a).await.assert_problem(404);
}

/// A token's claims, readable (tests know the signing secret).
fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let (body, _) = token.split_once('.').unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap()
}

/// The same token, as if its position had been reached `days` ago.
fn aged(token: &str, days: i64) -> String {
    let mut claims = claims_of(token);
    claims["taken"] = json!(chrono::Utc::now().timestamp() - days * 86_400);
    let t: gridlight::api::sync::token::Token = serde_json::from_value(claims).unwrap();
    t.seal(crate::support::TEST_JWT_SECRET)
}

/// How old a token's position is, in seconds.
fn age(token: &str) -> i64 {
    chrono::Utc::now().timestamp() - claims_of(token)["taken"].as_i64().unwrap()
}

/// The retention counts from the last sync, not from the first: a device that syncs every day
/// never has to start over (its token's age restarts with every delta it finishes).
async fn a_device_that_keeps_syncing_keeps_a_young_token(app: TestApp) {
    let w: World = app.world().await;
    let mut device = Device::default();
    device.sync(&app, &w.w_a1, 500).await;
    // Nothing new since a position reached 29 days ago (the quick answer).
    device.token = Some(aged(device.token.as_deref().unwrap(), 29));
    assert!(device.sync(&app, &w.w_a1, 500).await.is_empty());
    assert!(age(device.token.as_deref().unwrap()) < 60, "an empty delta renews the token");
    // Changes since then, fetched a page at a time (the full path, a window over several pages).
    device.token = Some(aged(device.token.as_deref().unwrap(), 29));
    let hh = format!("/api/v1/households/{}", w.household_a1);
    ok(&app.patch(&hh, &w.sec_a, json!({"notes": "一"}), None).await);
    ok(&app.patch(&format!("/api/v1/members/{}", w.member_a1), &w.sec_a, json!({"notes": "二"}), None).await);
    let before = device.pages;
    assert!(device.sync(&app, &w.w_a1, 1).await.len() >= 2);
    assert!(device.pages - before >= 2, "the window took several pages");
    assert!(age(device.token.as_deref().unwrap()) < 60, "a finished delta renews the token");
    // A day later it still syncs: without renewal this token would have been 30 days old.
    device.token = Some(aged(device.token.as_deref().unwrap(), 1));
    device.sync(&app, &w.w_a1, 500).await;
    assert_same(&device, server_view(&app, &w.w_a1).await, "after renewed tokens");
}

/// A small deterministic generator (no dependency): xorshift.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

async fn a_device_replica_equals_the_server_after_every_sync(app: TestApp) {
    let w = app.world().await;
    let worker3 = app.user("w-a3", gridlight::domain::Role::GridWorker, Some(&w.community_a)).await;
    let w_a3 = app.token("w-a3").await;
    let mut devices = [Device::default(), Device::default(), Device::default()];
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    let mut rng = Rng(0x5eed_2026_1127);
    let mut households = vec![w.household_a1.clone(), w.household_a2.clone()];
    let grids = [w.grid_a1.clone(), w.grid_a2.clone()];
    let steps = 200;
    for step in 0..steps {
        match rng.below(9) {
            0 => {
                let g = &grids[rng.below(2)];
                households.push(app.create_household(&w.sec_a, g, &format!("户主{step}")).await);
            }
            1 => {
                let h = &households[rng.below(households.len())];
                let _ = app
                    .post(
                        &format!("/api/v1/households/{h}/members"),
                        Some(&w.sec_a),
                        json!({"name": format!("成员{step}"), "gender": "female", "relation": "child"}),
                    )
                    .await;
            }
            2 => {
                let h = &households[rng.below(households.len())];
                let _ = app
                    .patch(&format!("/api/v1/households/{h}"), &w.sec_a, json!({"grid_id": grids[rng.below(2)]}), None)
                    .await;
            }
            3 => {
                let h = &households[rng.below(households.len())];
                let to_tag = ["red", "yellow", "green"][rng.below(3)];
                let reasons: Vec<&str> =
                    if to_tag == "green" { vec![] } else { vec![["elderly_living_alone", "low_income"][rng.below(2)]] };
                // Half of them a worker's proposal, half a secretary's setting.
                let token = if rng.below(2) == 0 { &w.sec_a } else { &w.w_a1 };
                let _ = app
                    .post(
                        &format!("/api/v1/households/{h}/tag-changes"),
                        Some(token),
                        json!({"to_tag": to_tag, "reasons": reasons}),
                    )
                    .await;
            }
            4 => {
                let h = &households[rng.below(households.len())];
                let members = ok(&app.get_as(&format!("/api/v1/households/{h}/members"), &w.sec_a).await);
                if let Some(m) = members["items"].as_array().and_then(|a| a.first()) {
                    let _ = app.delete_as(&format!("/api/v1/members/{}", m["id"].as_str().unwrap()), &w.sec_a).await;
                }
            }
            5 => {
                // Worker reassignment: w-a3 joins or leaves grid a1 or a2.
                let g = &grids[rng.below(2)];
                let primary = if g == &w.grid_a1 { &w.user_w_a1 } else { &w.user_w_a2 };
                if rng.below(2) == 0 {
                    app.assign(&w.sec_a, g, &[(primary, true), (&worker3, false)]).await;
                } else {
                    app.assign(&w.sec_a, g, &[(primary, true)]).await;
                }
            }
            6 => {
                let h = &households[rng.below(households.len())];
                let visit =
                    json!({"household_id": h, "kind": "phone_call", "visited_at": chrono::Utc::now().to_rfc3339()});
                let _ = app.post("/api/v1/visits", Some(&w.sec_a), visit).await;
            }
            7 => {
                if rng.below(4) == 0 {
                    let h = households.remove(rng.below(households.len()));
                    let _ = app.delete_as(&format!("/api/v1/households/{h}?reason=moved_out"), &w.sec_a).await;
                }
            }
            _ => {
                let plan = json!({"templates": [{"name": "入户走访", "kind": "home_visit", "interval_days": 1 + rng.below(60), "active": true}]});
                let _ = app
                    .put(&format!("/api/v1/communities/{}/service-plans/green", w.community_a), &w.sec_a, plan)
                    .await;
            }
        }
        if rng.below(2) == 0 || step == steps - 1 {
            // One of three devices: a worker whose grids change, one whose grid's households
            // come and go, the secretary's.
            let which = rng.below(3);
            let (device, token) = match which {
                0 => (&mut devices[0], &w_a3),
                1 => (&mut devices[1], &w.w_a1),
                _ => (&mut devices[2], &w.sec_a),
            };
            let got = device.sync(&app, token, 1 + rng.below(40)).await;
            for op in ["upsert", "delete", "leave"] {
                *ops.entry(op).or_insert(0) += got.iter().filter(|c| c["op"] == op).count();
            }
            assert_same(device, server_view(&app, token).await, &format!("step {step}, device {which}"));
        }
    }
    // The run exercised every kind of change.
    assert!(ops.values().all(|n| *n > 0) && ops.len() == 3, "{ops:?}");
}

async fn push(app: &TestApp, token: &str, operations: Value) -> crate::support::TestResponse {
    app.post("/api/v1/sync/push", Some(token), json!({"operations": operations})).await
}

async fn a_push_applies_each_operation_on_its_own(app: TestApp) {
    let w = app.world().await;
    let household = uuid::Uuid::now_v7().to_string();
    let member = uuid::Uuid::now_v7().to_string();
    let visit = uuid::Uuid::now_v7().to_string();
    let at = chrono::Utc::now().to_rfc3339();
    let ops = json!([
        {"op_id": "d1-1", "kind": "household.register", "body": {"id": household, "grid_id": w.grid_a1,
            "address": {"building": "9号楼", "unit": "1单元", "room": "101"}, "head_name": "离线登记"}},
        {"op_id": "d1-2", "kind": "member.add", "body": {"household_id": household, "id": member, "name": "离线成员",
            "gender": "female", "relation": "head"}},
        {"op_id": "d1-3", "kind": "visit.record", "body": {"id": visit, "household_id": household,
            "kind": "home_visit", "visited_at": at, "notes": "离线走访"}},
        // Out of the worker's scope: rejected alone.
        {"op_id": "d1-4", "kind": "visit.record", "body": {"household_id": w.household_a2, "kind": "phone_call", "visited_at": at}},
        // Malformed: rejected alone, naming the field.
        {"op_id": "d1-5", "kind": "member.add", "body": {"household_id": household, "name": "", "gender": "male", "relation": "child"}},
        {"op_id": "d1-6", "kind": "tag_change.propose", "body": {"household_id": household, "to_tag": "yellow", "reasons": ["low_income"]}},
    ]);
    let res = ok(&push(&app, &w.w_a1, ops.clone()).await);
    let statuses: Vec<&str> =
        res["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["applied", "applied", "applied", "rejected", "rejected", "applied"], "{res}");
    let results = res["results"].as_array().unwrap();
    assert_eq!(results[0]["record"]["id"], household.as_str());
    assert_eq!(results[2]["record"]["completed_task_ids"].as_array().unwrap().len(), 1);
    assert_eq!(results[3]["code"], "not_found");
    assert_eq!(results[4]["code"], "validation");
    assert_eq!(results[4]["problem"]["errors"][0]["field"], "name");
    assert!(results[0]["problem"].is_null() && results[0]["code"].is_null());
    // The same push again: every applied operation is a duplicate with what is stored now.
    let again = ok(&push(&app, &w.w_a1, ops).await);
    let statuses: Vec<&str> =
        again["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["duplicate", "duplicate", "duplicate", "rejected", "rejected", "duplicate"], "{again}");
    assert_eq!(again["results"][1]["record"]["name"], "离线成员");
    // A create retried under a new op_id by its author is a duplicate too.
    let retry = json!([{"op_id": "d1-7", "kind": "visit.record", "body": {"id": visit, "household_id": household,
        "kind": "home_visit", "visited_at": at, "notes": "离线走访"}}]);
    assert_eq!(ok(&push(&app, &w.w_a1, retry).await)["results"][0]["status"], "duplicate");
    // Nothing was written twice.
    let visits = ok(&app.get_as(&format!("/api/v1/visits?household_id={household}"), &w.w_a1).await);
    assert_eq!(visits["items"].as_array().unwrap().len(), 1);
}

async fn a_stale_edit_is_a_conflict_with_the_server_record(app: TestApp) {
    let w = app.world().await;
    let member = ok(&app.get_as(&format!("/api/v1/members/{}", w.member_a1), &w.w_a1).await);
    let base = member["version"].as_i64().unwrap();
    // Someone else edits it first.
    ok(&app.patch(&format!("/api/v1/members/{}", w.member_a1), &w.sec_a, json!({"notes": "秘书改的"}), None).await);
    let ops = json!([
        {"op_id": "d2-1", "kind": "member.edit", "base_version": base, "body": {"id": w.member_a1, "notes": "网格员离线改的"}},
        {"op_id": "d2-2", "kind": "household.edit", "body": {"id": w.household_a1, "notes": "没有 base_version：后写为准"}},
    ]);
    let res = ok(&push(&app, &w.w_a1, ops).await);
    let conflict = &res["results"][0];
    assert_eq!((conflict["status"].as_str(), conflict["code"].as_str()), (Some("conflict"), Some("stale_version")));
    assert_eq!(conflict["record"]["notes"], "秘书改的");
    assert_eq!(res["results"][1]["status"], "applied");
    // Limits: at most 500 operations, op_ids once each.
    let many: Vec<Value> =
        (0..501).map(|i| json!({"op_id": format!("x{i}"), "kind": "task.change", "body": {}})).collect();
    let too_many = push(&app, &w.w_a1, json!(many)).await.assert_problem(413);
    assert_eq!(too_many["code"], "payload_too_large");
    assert!(too_many["detail"].as_str().unwrap().contains("at most 500 operations"), "{too_many}");
    // A base version written as a float is read like the single endpoints read it.
    let float =
        json!([{"op_id": "f", "kind": "member.edit", "base_version": 1.0, "body": {"id": w.member_a1, "notes": "x"}}]);
    assert_eq!(ok(&push(&app, &w.w_a1, float).await)["results"][0]["code"], "stale_version");
    let zero = json!([{"op_id": "z", "kind": "member.edit", "base_version": 0, "body": {"id": w.member_a1}}]);
    assert_eq!(push(&app, &w.w_a1, zero).await.assert_problem(422)["errors"][0]["field"], "operations[0].base_version");
    let twice = json!([{"op_id": "same", "kind": "task.change", "body": {}}, {"op_id": "same", "kind": "task.change", "body": {}}]);
    assert_eq!(push(&app, &w.w_a1, twice).await.assert_problem(422)["errors"][0]["field"], "operations[1].op_id");
    let unknown = json!([{"op_id": "k", "kind": "household.explode", "body": {}}]);
    assert_eq!(push(&app, &w.w_a1, unknown).await.assert_problem(422)["errors"][0]["field"], "operations[0].kind");
    // A body that is not an object is the request's problem: nothing runs.
    let array = json!([{"op_id": "a", "kind": "member.add", "body": [null, null]}]);
    assert_eq!(push(&app, &w.w_a1, array).await.assert_problem(422)["errors"][0]["field"], "operations[0].body");
    // The text rule inside a body (key or value) is that operation's problem, as the single
    // endpoint would answer it; the others still run.
    let texts = json!([
        {"op_id": "t1", "kind": "household.edit", "body": {"id": w.household_a1, "notes\u{1}": "x"}},
        {"op_id": "t2", "kind": "household.edit", "body": {"id": w.household_a1, "head_name": "张\u{0}三"}},
        {"op_id": "t3", "kind": "household.edit", "body": {"id": w.household_a1, "notes": "第一行\n第二行"}},
    ]);
    let res = ok(&push(&app, &w.w_a1, texts).await);
    let results = res["results"].as_array().unwrap();
    for (r, field) in results[..2].iter().zip(["notes", "head_name"]) {
        assert_eq!((r["status"].as_str(), r["code"].as_str()), (Some("rejected"), Some("validation")), "{r}");
        assert_eq!(r["problem"]["errors"][0]["field"], field, "{r}");
        assert_eq!(r["problem"]["errors"][0]["code"], "control_character", "{r}");
    }
    assert_eq!(results[2]["status"], "applied", "{res}");
}

/// The outbox visibility problem: on PostgreSQL a change numbered before another can commit
/// after it. A write transaction is held open while a later one commits and a device syncs:
/// the held change must come in the next delta. (SQLite has one writer: the later write waits,
/// so there the held one simply commits first.)
async fn a_change_committed_after_a_later_one_is_not_skipped(app: TestApp) {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    let w = app.world().await;
    let mut device = Device::default();
    device.sync(&app, &w.sec_a, 500).await;
    let url = app.state.config.db.database_url.clone();
    let held_id = w.household_a1.clone();
    let hold = move |commit_first: bool| -> Box<dyn FnOnce() + Send> {
        let sql = format!("UPDATE households SET notes = 'held', version = version + 1 WHERE id = '{held_id}'");
        if url.starts_with("postgres") {
            let mut c = diesel::PgConnection::establish(&url).unwrap();
            c.batch_execute(&format!("BEGIN; {sql};")).unwrap();
            Box::new(move || c.batch_execute("COMMIT").unwrap())
        } else {
            let mut c = diesel::SqliteConnection::establish(&url).unwrap();
            c.batch_execute(&format!("BEGIN IMMEDIATE; {sql};")).unwrap();
            assert!(commit_first);
            c.batch_execute("COMMIT").unwrap();
            Box::new(|| {})
        }
    };
    let postgres = app.backend == crate::support::Backend::Postgres;
    let commit = web_block(move || hold(!postgres)).await;
    // A later change commits while the first is still open, and the device syncs.
    let hh2 = format!("/api/v1/households/{}", w.household_a2);
    ok(&app.patch(&hh2, &w.sec_a, json!({"notes": "later"}), None).await);
    let first = device.sync(&app, &w.sec_a, 500).await;
    assert!(first.iter().any(|c| c["id"] == w.household_a2.as_str()), "{first:?}");
    if postgres {
        assert!(!first.iter().any(|c| c["id"] == w.household_a1.as_str()), "not committed yet");
    }
    web_block(commit).await;
    let next = device.sync(&app, &w.sec_a, 500).await;
    let seen = first.iter().chain(&next).find(|c| c["id"] == w.household_a1.as_str() && c["data"]["notes"] == "held");
    assert!(seen.is_some(), "the held change was skipped: {next:?}");
    assert_same(&device, server_view(&app, &w.sec_a).await, "after the held change");
}

async fn web_block<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    actix_web::web::block(f).await.unwrap()
}

/// The server's job keeps the change log for the retention and no longer.
async fn the_change_log_is_pruned_after_the_retention(app: TestApp) {
    use diesel::prelude::*;
    use gridlight::db::schema::sync_log;
    let w = app.world().await;
    let count = |app: &TestApp| {
        let db = app.state.db.clone();
        async move { db.read(|c| Ok(sync_log::table.count().get_result::<i64>(c)?)).await.unwrap() }
    };
    let before = count(&app).await;
    assert!(before > 0, "the world's writes are logged");
    // Half the log is 40 days old.
    let old = gridlight::store::now() - chrono::Duration::days(40);
    app.state
        .db
        .write(move |c| {
            let half: Vec<i64> =
                sync_log::table.select(sync_log::seq).order(sync_log::seq.asc()).limit(before / 2).load(c)?;
            Ok(diesel::update(sync_log::table.filter(sync_log::seq.eq_any(half)))
                .set(sync_log::at.eq(old))
                .execute(c)?)
        })
        .await
        .unwrap();
    let db = app.state.db.clone();
    let pruned = web_block(move || gridlight::jobs::prune_sync_log(&db, 30)).await.unwrap();
    assert_eq!(pruned as i64, before / 2);
    assert_eq!(count(&app).await, before - before / 2);
    let _ = w;
}
