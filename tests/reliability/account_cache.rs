//! Two `gridlight serve` processes on one PostgreSQL database, each with its account cache on.
//! Round after round an account is warmed into one instance's cache (its requests answered
//! without reading the account), then deactivated, given a new password by an administrator, or
//! given a new password by its owner through the other instance: the very next request with
//! the old token, sent to the instance that had it cached, must be refused (401). The cache
//! must have answered meanwhile (its hit count grows), so this cannot pass by never caching.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::http::Client;
use crate::server::{Server, Store, report};
use crate::world::{PASSWORD, login};

const ROUNDS: usize = 30;

/// The instance's `gridlight_account_cache_*` figures: (listening, hits).
fn cache_figures(client: &Client) -> (bool, u64) {
    let text = client.get("/metrics", None).expect("metrics").text();
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().parse::<f64>().expect("metric value") as u64))
            .unwrap_or(0)
    };
    (value("gridlight_account_cache_listening ") == 1, value("gridlight_account_cache_lookups_total{result=\"hit\"} "))
}

#[test]
fn a_change_on_one_instance_is_refused_by_the_other_on_the_next_request() {
    let Some(store) = Store::postgres() else { return };
    let servers = [Server::start(&store, "gridlight-a", &[]), Server::start(&store, "gridlight-b", &[])];
    let clients = [servers[0].client(), servers[1].client()];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !clients.iter().all(|c| cache_figures(c).0) {
        assert!(Instant::now() < deadline, "the account change listeners did not connect");
        std::thread::sleep(Duration::from_millis(50));
    }
    store.cli(
        &["user", "create", "--username", "admin", "--role", "admin", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    let admin = login(&clients[0], "admin");
    let hits_before: u64 = clients.iter().map(|c| cache_figures(c).1).sum();

    let mut refused = [0usize; 3];
    let mut served = Vec::new();
    for round in 0..ROUNDS {
        // Alternate which instance caches and which one changes the account.
        let (cached, changer) = (&clients[round % 2], &clients[(round + 1) % 2]);
        let username = format!("cached-{round}");
        let id = changer
            .post(
                "/api/v1/users",
                Some(&admin),
                &json!({"username": username, "display_name": username, "role": "admin", "password": PASSWORD}),
            )
            .expect("create user")
            .ok("create user")["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let token = login(cached, &username);
        for _ in 0..3 {
            assert_eq!(cached.get("/api/v1/me", Some(&token)).expect("me").status, 200, "round {round}: warm-up");
        }
        let how = round % 3;
        let change = match how {
            0 => changer.patch(&format!("/api/v1/users/{id}"), &admin, &json!({"active": false})),
            1 => changer.patch(&format!("/api/v1/users/{id}"), &admin, &json!({"password": "a brand new passphrase"})),
            _ => changer.put(
                "/api/v1/me/password",
                &token,
                &json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}),
            ),
        }
        .expect("change");
        assert!(change.status == 200 || change.status == 204, "round {round}: change answered {}", change.status);
        let next = cached.get("/api/v1/me", Some(&token)).expect("me after the change").status;
        if next == 401 {
            refused[how] += 1;
        } else {
            served.push((round, how, next));
        }
    }
    let hits: u64 = clients.iter().map(|c| cache_figures(c).1).sum::<u64>() - hits_before;
    report(
        "account_cache::a_change_on_one_instance_is_refused_by_the_other_on_the_next_request",
        &[
            format!(
                "{ROUNDS} rounds through 2 servers: refused on the next request after deactivation {}, after an administrator's new password {}, after the owner's new password {}",
                refused[0], refused[1], refused[2]
            ),
            format!("answered from the cache meanwhile: {hits} requests"),
            format!("served with the old account (must be none): {served:?}"),
        ],
    );
    assert!(served.is_empty(), "old tokens served after the change (round, kind, status): {served:?}");
    assert!(hits >= (ROUNDS * 2) as u64, "the cache answered only {hits} requests: it was not in use");
}
