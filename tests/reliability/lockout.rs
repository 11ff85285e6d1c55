//! Two `gridlight serve` processes on one PostgreSQL database, and a burst of parallel wrong
//! passwords for one account sent through both: the account's attempt count is shared through
//! the database, so no more passwords are checked than `GRIDLIGHT_LOGIN_MAX_FAILURES` in all,
//! and afterwards the right password is refused by both instances.

use std::thread;

use diesel::prelude::*;
use serde_json::json;

use gridlight::db::schema::audit_events;

use crate::server::{Server, Store, report};
use crate::world::PASSWORD;

const MAX_FAILURES: usize = 5;
const BURST: usize = 40;

#[test]
fn two_servers_share_one_account_lockout() {
    let Some(store) = Store::postgres() else { return };
    let settings = [("GRIDLIGHT_LOGIN_MAX_FAILURES", "5")];
    let a = Server::start(&store, "gridlight-a", &settings);
    let b = Server::start(&store, "gridlight-b", &settings);
    store.cli(
        &["user", "create", "--username", "admin", "--role", "admin", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    let clients = [a.client(), b.client()];
    let login = |n: usize, password: &str| {
        clients[n % 2]
            .post("/api/v1/auth/login", None, &json!({"username": "admin", "password": password}))
            .map(|r| (r.status, r.header("retry-after").map(str::to_owned)))
    };
    let barrier = std::sync::Barrier::new(BURST);
    let answers: Vec<_> = thread::scope(|s| {
        let handles: Vec<_> = (0..BURST)
            .map(|n| {
                let barrier = &barrier;
                let login = &login;
                s.spawn(move || {
                    barrier.wait();
                    login(n, "wrong password!")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    let statuses: Vec<u16> = answers.iter().map(|r| r.as_ref().map(|(s, _)| *s).unwrap_or(0)).collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    let without_retry_after = answers.iter().filter(|r| matches!(r, Ok((429, None)))).count();
    let after: Vec<u16> = (0..2).map(|n| login(n, PASSWORD).map(|(s, _)| s).unwrap_or(0)).collect();
    let mut conn = store.connect();
    let mut audited = |action: &str| -> i64 {
        audit_events::table.filter(audit_events::action.eq(action)).count().get_result(&mut conn).unwrap()
    };
    let (failed, throttled) = (audited("auth.login_failed"), audited("auth.login_throttled"));
    report(
        "lockout::two_servers_share_one_account_lockout",
        &[
            format!(
                "{BURST} parallel wrong passwords through 2 servers, limit {MAX_FAILURES}: {checked} checked (401), {refused} refused (429), other {:?}",
                statuses.iter().filter(|s| **s != 401 && **s != 429).collect::<Vec<_>>()
            ),
            format!("the right password afterwards: {after:?}"),
            format!("audit events: {failed} auth.login_failed, {throttled} auth.login_throttled"),
        ],
    );
    assert_eq!(checked + refused, BURST, "{statuses:?}");
    assert_eq!(checked, MAX_FAILURES, "passwords checked in one window across both servers");
    assert_eq!(without_retry_after, 0, "a 429 without Retry-After");
    assert_eq!(after, [429, 429], "the right password during the lock");
    assert_eq!(failed, MAX_FAILURES as i64);
    assert_eq!(throttled, (BURST - MAX_FAILURES + 2) as i64);
}
