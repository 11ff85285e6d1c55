//! The reference device against two `gridlight serve` processes on one PostgreSQL database:
//! seeded random interleavings of server-side changes (through either server), offline work
//! pushed by the device (to either server) and syncs whose pages come from either server. After
//! every sync each device's replica equals what the server's lists say it may see.

use serde_json::{Value, json};

use crate::http::Client;
use crate::replica::{self, Replica, differences};
use crate::server::{Server, Store, report};
use crate::world;

const STEPS: usize = 240;

/// A device: its replica and where it is in the feed.
#[derive(Default)]
struct Device {
    token: Option<String>,
    replica: Replica,
    pages: usize,
    changes: usize,
}

impl Device {
    /// Syncs until `more` is false, each page from one of the servers, `limit` changes a page.
    fn sync(&mut self, servers: &[Client; 2], token: &str, limit: usize, pick: &mut impl FnMut() -> usize) {
        loop {
            let mut url = format!("/api/v1/sync?limit={limit}");
            if let Some(t) = &self.token {
                url.push_str(&format!("&since={t}"));
            }
            let page = servers[pick()].get(&url, Some(token)).expect("sync").ok("sync");
            for c in page["changes"].as_array().expect("changes") {
                self.replica.apply(c);
                self.changes += 1;
            }
            self.token = Some(page["next"].as_str().expect("next").to_owned());
            self.pages += 1;
            if page["more"] == false {
                return;
            }
        }
    }
}

fn all_pages(client: &Client, token: &str, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit=500&cursor={c}"),
            None => format!("{path}{sep}limit=500"),
        };
        let page = client.get(&url, Some(token)).expect("list").ok(path);
        out.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

fn server_view(client: &Client, token: &str) -> replica::View {
    let households = all_pages(client, token, "/api/v1/households");
    let mut members = Vec::new();
    for h in &households {
        members.extend(all_pages(client, token, &format!("/api/v1/households/{}/members", h["id"].as_str().unwrap())));
    }
    replica::server_view(
        households,
        members,
        all_pages(client, token, "/api/v1/tasks?status=open"),
        all_pages(client, token, "/api/v1/visits"),
        all_pages(client, token, "/api/v1/tag-changes?status=pending"),
    )
}

/// xorshift: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[test]
fn two_servers_feed_devices_that_stay_equal_to_the_server() {
    let Some(store) = Store::postgres() else { return };
    let a = Server::start(&store, "sync-a", &[("GRIDLIGHT_RECONCILE_INTERVAL_SECS", "0")]);
    let b = Server::start(&store, "sync-b", &[("GRIDLIGHT_RECONCILE_INTERVAL_SECS", "0")]);
    let servers = [a.client(), b.client()];
    let world = world::build(&store, &servers[0], 2, 6);
    let secretary = world.secretary.clone();
    let worker = world.workers[1].clone();
    let worker_id =
        servers[0].get("/api/v1/me", Some(&worker)).expect("me").ok("me")["id"].as_str().unwrap().to_owned();
    let primary_id = {
        let grid = servers[0].get(&format!("/api/v1/grids/{}", world.grid), Some(&secretary)).expect("grid").ok("grid");
        grid["workers"][0]["user_id"].as_str().unwrap().to_owned()
    };
    let second = servers[1]
        .post(
            &format!("/api/v1/communities/{}/grids", world.community),
            Some(&secretary),
            &json!({"code": "37010300100102", "name": "第二网格"}),
        )
        .expect("grid")
        .ok("second grid")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let grids = [world.grid.clone(), second.clone()];
    let mut households = world.households.clone();
    let mut rng = Rng(0x2026_1127_5eed);
    let mut devices = [Device::default(), Device::default()];
    let tokens = [worker.clone(), secretary.clone()];
    let mut syncs = 0;
    let mut failures = Vec::new();
    let mut op = 0;
    for step in 0..STEPS {
        let s = &servers[rng.below(2)];
        let pick_household = |rng: &mut Rng, households: &Vec<String>| households[rng.below(households.len())].clone();
        match rng.below(10) {
            0 => {
                let body = json!({"grid_id": grids[rng.below(2)], "address": {"building": "7号楼", "unit": "1单元",
                    "room": format!("{step}")}, "head_name": format!("户主{step}")});
                if let Ok(r) = s.post("/api/v1/households", Some(&secretary), &body)
                    && r.is_success()
                {
                    households.push(r.json()["id"].as_str().unwrap().to_owned());
                }
            }
            1 => {
                let h = pick_household(&mut rng, &households);
                let body = json!({"name": format!("成员{step}"), "gender": "female", "relation": "child"});
                let _ = s.post(&format!("/api/v1/households/{h}/members"), Some(&secretary), &body);
            }
            2 => {
                let h = pick_household(&mut rng, &households);
                let _ =
                    s.patch(&format!("/api/v1/households/{h}"), &secretary, &json!({"grid_id": grids[rng.below(2)]}));
            }
            3 => {
                let h = pick_household(&mut rng, &households);
                let to = ["red", "yellow", "green"][rng.below(3)];
                let reasons: Vec<&str> = if to == "green" { vec![] } else { vec!["low_income"] };
                let who = if rng.below(2) == 0 { &secretary } else { &worker };
                let _ = s.post(
                    &format!("/api/v1/households/{h}/tag-changes"),
                    Some(who),
                    &json!({"to_tag": to, "reasons": reasons}),
                );
            }
            4 => {
                let h = pick_household(&mut rng, &households);
                if let Ok(r) = s.get(&format!("/api/v1/households/{h}/members"), Some(&secretary))
                    && r.is_success()
                    && let Some(m) = r.json()["items"].as_array().and_then(|a| a.first()).cloned()
                {
                    let _ = s.send(
                        "DELETE",
                        &format!("/api/v1/members/{}", m["id"].as_str().unwrap()),
                        Some(&secretary),
                        None,
                        &[],
                    );
                }
            }
            5 => {
                // The device's worker joins or leaves the second grid.
                let workers = if rng.below(2) == 0 {
                    json!([{"user_id": primary_id, "primary": true}, {"user_id": worker_id, "primary": false}])
                } else {
                    json!([{"user_id": primary_id, "primary": true}])
                };
                let _ = s.put(&format!("/api/v1/grids/{second}/workers"), &secretary, &json!({"workers": workers}));
            }
            6 | 7 => {
                // Offline work of the worker, pushed to either server.
                let h = pick_household(&mut rng, &households);
                op += 1;
                let ops = json!([{"op_id": format!("dev-{op}"), "kind": "visit.record", "body": {"household_id": h,
                    "kind": "phone_call", "visited_at": chrono::Utc::now().to_rfc3339(), "notes": format!("离线 {step}")}}]);
                let _ = s.post("/api/v1/sync/push", Some(&worker), &json!({"operations": ops}));
            }
            8 => {
                if rng.below(4) == 0 && households.len() > 2 {
                    let h = households.remove(rng.below(households.len()));
                    let _ = s.send(
                        "DELETE",
                        &format!("/api/v1/households/{h}?reason=moved_out"),
                        Some(&secretary),
                        None,
                        &[],
                    );
                }
            }
            _ => {
                let plan = json!({"templates": [{"name": "入户走访", "kind": "home_visit", "interval_days": 1 + rng.below(60), "active": true}]});
                let _ =
                    s.put(&format!("/api/v1/communities/{}/service-plans/green", world.community), &secretary, &plan);
            }
        }
        if rng.below(3) == 0 || step == STEPS - 1 {
            let d = rng.below(2);
            let limit = 1 + rng.below(30);
            let mut pick = || rng.below(2);
            devices[d].sync(&servers, &tokens[d], limit, &mut pick);
            syncs += 1;
            if let Some(diff) = differences(devices[d].replica.view(), server_view(&servers[0], &tokens[d])) {
                failures.push(format!("step {step}, device {d}: {diff}"));
                break;
            }
        }
    }
    let mut lines = vec![
        format!("{STEPS} steps through 2 servers, {syncs} syncs compared with the server's lists"),
        format!(
            "worker's device: {} pages, {} changes, {} records; secretary's: {} pages, {} changes, {} records",
            devices[0].pages,
            devices[0].changes,
            devices[0].replica.records.len(),
            devices[1].pages,
            devices[1].changes,
            devices[1].replica.records.len()
        ),
        format!("internal errors logged: {}", a.logged_errors().len() + b.logged_errors().len()),
    ];
    lines.extend(failures.iter().cloned());
    report("sync_devices::two_servers_feed_devices_that_stay_equal_to_the_server", &lines);
    assert!(failures.is_empty(), "{failures:?}");
    assert!(a.logged_errors().is_empty() && b.logged_errors().is_empty());
}
