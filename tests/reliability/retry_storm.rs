//! Retry storms: the same visit (same id, same body) sent many times at once over several
//! connections by the worker who recorded it — a phone retrying on a flaky network — is recorded
//! once: one 201, the rest 200 with the stored visit, one row, one task completed and one
//! successor scheduled. (A retry comes from the visit's author only; the same body from another
//! account is another request, 409: `tests/api/visits.rs`.)

use std::sync::Barrier;
use std::thread;

use diesel::prelude::*;

use gridlight::db::schema::{tasks, visits};

use crate::http::Client;
use crate::load::{Stored, Tally, Visit, duplicate_open_tasks, task_invariant_breaches};
use crate::server::{Server, Store, report};
use crate::world;

const STORMS: usize = 3;
const CLIENTS: usize = 4;
const SENDS_PER_CLIENT: usize = 10;

#[test]
fn sqlite() {
    run(Store::sqlite());
}

#[test]
fn postgres() {
    if let Some(store) = Store::postgres() {
        run(store);
    }
}

fn run(store: Store) {
    let server = Server::start(&store, "gridlight", &[]);
    let client = server.client();
    let world = world::build(&store, &client, 1, 2);
    let mut tally = Tally::default();
    let mut lines = Vec::new();
    let mut acked = Vec::new();
    let mut failures = Vec::new();
    for storm in 0..STORMS {
        let household = &world.households[storm % world.households.len()];
        let visit = Visit::new(household, "home_visit", format!("storm {storm}"));
        let tokens = [&world.workers[0]];
        let barrier = Barrier::new(CLIENTS);
        let answers: Vec<(u16, String, String, usize)> = thread::scope(|s| {
            let handles: Vec<_> = (0..CLIENTS)
                .map(|c| {
                    let (visit, barrier, token) = (&visit, &barrier, tokens[c % tokens.len()]);
                    s.spawn(move || send_many(client, token, visit, barrier))
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("storm client")).collect()
        });
        let mut storm_tally = Tally::default();
        for (status, ..) in &answers {
            storm_tally.add(&status.to_string());
        }
        tally.merge(&storm_tally);
        let created = storm_tally.count("201");
        let replayed = storm_tally.count("200");
        let distinct: std::collections::HashSet<(&str, &str)> =
            answers.iter().map(|(_, id, received, _)| (id.as_str(), received.as_str())).collect();
        let completions: std::collections::HashSet<usize> = answers.iter().map(|a| a.3).collect();
        lines.push(format!(
            "storm {storm}: {} sends → {}; distinct stored visits answered: {}; completed_task_ids lengths {completions:?}",
            answers.len(),
            storm_tally.summary(),
            distinct.len()
        ));
        if (created, replayed) != (1, (CLIENTS * SENDS_PER_CLIENT - 1) as u64) || distinct.len() != 1 {
            failures.push(format!("storm {storm}: {} ({} distinct answers)", storm_tally.summary(), distinct.len()));
        }
        if completions != [1].into() {
            failures.push(format!("storm {storm}: completed_task_ids lengths {completions:?}, want [1]"));
        }
        acked.push(visit);
    }

    let mut conn = store.connect();
    let stored = Stored::check(&mut conn, &acked);
    let completed: Vec<Option<String>> =
        tasks::table.filter(tasks::status.eq("done")).select(tasks::visit_id).load(&mut conn).expect("done tasks");
    let rows: i64 = visits::table.count().get_result(&mut conn).expect("count visits");
    let doubled = duplicate_open_tasks(&mut conn);
    let breaches = task_invariant_breaches(&mut conn);
    lines.push(stored.line());
    lines.push(format!(
        "visit rows {rows}; tasks completed {}; duplicate open tasks {}; task invariant breaches {}",
        completed.len(),
        doubled.len(),
        breaches.len()
    ));
    report(&format!("retry_storm::{}", store.backend.name()), &lines);

    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(rows, STORMS as i64);
    stored.assert_exact();
    // Each storm completed exactly one task, with its visit.
    assert_eq!(completed.len(), STORMS, "tasks completed: {completed:?}");
    for v in &acked {
        assert_eq!(completed.iter().filter(|c| c.as_deref() == Some(v.id.as_str())).count(), 1, "{}", v.id);
    }
    assert!(doubled.is_empty(), "{doubled:?}");
    assert!(breaches.is_empty(), "{breaches:#?}");
}

/// Waits for the others, then sends the visit again and again; returns (status, id,
/// received_at, number of completed tasks) per answer.
fn send_many(client: Client, token: &str, visit: &Visit, barrier: &Barrier) -> Vec<(u16, String, String, usize)> {
    barrier.wait();
    (0..SENDS_PER_CLIENT)
        .map(|_| {
            let res = visit.send(&client, token).expect("send the visit");
            if !res.is_success() {
                return (res.status, String::new(), res.text(), 0);
            }
            let body = res.json();
            let id = body["id"].as_str().unwrap_or_default().to_owned();
            let received = body["received_at"].as_str().unwrap_or_default().to_owned();
            let completed = body["completed_task_ids"].as_array().map_or(0, Vec::len);
            (res.status, id, received, completed)
        })
        .collect()
}
