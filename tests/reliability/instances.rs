//! Two `gridlight serve` processes on one PostgreSQL database, both reconciling tasks every
//! second and both taking visits and tag decisions, with `gridlight tasks reconcile` run
//! alongside as a third reconciler. Afterwards no (household, template) has two open tasks,
//! every household has exactly the open tasks its plan asks for, and every visit acknowledged
//! by either server is stored exactly once — including visits re-sent to the other server.

use std::thread;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use rand::Rng;
use serde_json::json;

use gridlight::db::DbConn;
use gridlight::db::schema::tasks;

use crate::http::Client;
use crate::load::{Stored, Tally, Visit, count_open_tasks, duplicate_open_tasks, task_invariant_breaches};
use crate::server::{Server, Store, report};
use crate::world::{self, World};

const LOAD: Duration = Duration::from_secs(6);
const VISITORS: usize = 4;
const HOUSEHOLDS: usize = 12;

#[derive(Default)]
struct Run {
    tally: Tally,
    acked: Vec<Visit>,
    /// Visits acknowledged by one server and re-sent to the other.
    cross_replays: usize,
    /// Re-sends to the other server that did not come back as the same stored visit.
    bad_replays: Vec<String>,
    unexpected: Vec<String>,
    decisions: usize,
}

fn visitor(n: usize, servers: [Client; 2], world: &World, until: Instant) -> Run {
    let mut run = Run::default();
    let token = &world.workers[n % world.workers.len()];
    let mut rng = rand::rng();
    let mut seq = 0;
    let mut pending: Option<Visit> = None;
    let give_up = until + Duration::from_secs(30);
    while Instant::now() < give_up {
        let visit = match pending.take() {
            Some(v) => v,
            None if Instant::now() >= until => break,
            None => {
                seq += 1;
                let household = &world.households[rng.random_range(0..world.households.len())];
                let kind = if rng.random_bool(0.3) { "phone_call" } else { "home_visit" };
                Visit::new(household, kind, format!("instances: visitor {n} visit {seq}"))
            }
        };
        let first = rng.random_range(0..2);
        let outcome = visit.send(&servers[first], token);
        run.tally.record(&outcome);
        match outcome {
            Ok(res) if res.is_success() => {
                // A phone that lost the answer retries through the other instance.
                if rng.random_bool(0.3) {
                    run.cross_replays += 1;
                    let again = visit.send(&servers[1 - first], token);
                    run.tally.record(&again);
                    match again {
                        Ok(r) if r.status == 200 && visit.matches(&r) => {}
                        Ok(r) => run.bad_replays.push(format!("{} {}", r.status, r.text())),
                        Err(e) => run.bad_replays.push(e.to_string()),
                    }
                }
                run.acked.push(visit);
            }
            Ok(res) if res.status == 503 => pending = Some(visit),
            Ok(res) => run.unexpected.push(format!("visit: {} {}", res.status, res.text())),
            Err(e) => {
                run.unexpected.push(format!("visit: {e}"));
                pending = Some(visit);
            }
        }
    }
    run
}

/// A secretary re-tags households in turn through both instances: every decision cancels and
/// creates open tasks, which is what the reconcilers race on.
fn decider(servers: [Client; 2], world: &World, until: Instant) -> Run {
    const TAGS: [(&str, &[&str]); 3] =
        [("red", &["elderly_living_alone"]), ("yellow", &["low_income", "chronic_illness"]), ("green", &[])];
    let mut run = Run::default();
    let mut round = 0;
    while Instant::now() < until {
        let (tag, reasons) = TAGS[(round / world.households.len()) % TAGS.len()];
        let household = &world.households[round % world.households.len()];
        let res = servers[round % 2].post(
            &format!("/api/v1/households/{household}/tag-changes"),
            Some(&world.secretary),
            &json!({"to_tag": tag, "reasons": reasons}),
        );
        run.tally.record(&res);
        match res {
            Ok(r) if r.status == 201 => run.decisions += 1,
            // A database that cannot answer in time answers 503 with Retry-After: the client
            // retries the same decision, as the visitors do, and nothing was written.
            Ok(r) if r.status == 503 => continue,
            Ok(r) => run.unexpected.push(format!("tag decision: {} {}", r.status, r.text())),
            Err(e) => run.unexpected.push(format!("tag decision: {e}")),
        }
        round += 1;
    }
    run
}

#[test]
fn two_servers_share_one_postgres_database() {
    let Some(store) = Store::postgres() else { return };
    let settings = [
        ("GRIDLIGHT_RECONCILE_INTERVAL_SECS", "1"),
        ("GRIDLIGHT_LOG", "warn,gridlight::jobs=info"),
        ("GRIDLIGHT_LOG_FORMAT", "json"),
    ];
    let a = Server::start(&store, "gridlight-a", &settings);
    let b = Server::start(&store, "gridlight-b", &settings);
    let servers = [a.client(), b.client()];
    let world = world::build(&store, &servers[0], 2, HOUSEHOLDS);
    let until = Instant::now() + LOAD;
    let mut cli_runs = Vec::new();
    let mut deleted = Vec::new();
    let runs: Vec<Run> = thread::scope(|s| {
        let world = &world;
        let mut handles: Vec<_> = (0..VISITORS).map(|n| s.spawn(move || visitor(n, servers, world, until))).collect();
        handles.push(s.spawn(move || decider(servers, world, until)));
        // Behind the servers' backs, open tasks vanish now and then (as if restored from an old
        // backup), so that the reconcilers have work to race on; the operator's command, a
        // third reconciler, runs now and then as well. The deletion takes the households' locks
        // first, in id order, as every writer of tasks does (README, "Several instances"); a bare
        // bulk DELETE would lock task rows in its own order and could deadlock with a writer.
        let mut conn = store.connect();
        let mut round = 0u32;
        while Instant::now() < until {
            round += 1;
            let n = conn
                .transaction(|c| {
                    diesel::sql_query("SELECT id FROM households ORDER BY id FOR NO KEY UPDATE").execute(c)?;
                    diesel::delete(tasks::table.filter(tasks::status.eq("open"))).execute(c)
                })
                .expect("delete open tasks");
            deleted.push(n);
            if round.is_multiple_of(3) {
                let out = store.cli(&["tasks", "reconcile"], None);
                cli_runs.push(String::from_utf8_lossy(&out.stdout).trim().to_owned());
            } else {
                thread::sleep(Duration::from_millis(600));
            }
        }
        handles.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    let mut conn = store.connect();
    let doubled_under_load = duplicate_open_tasks(&mut conn);
    // Let both periodic reconcilers run again on the settled data.
    thread::sleep(Duration::from_millis(2500));

    let mut total = Run::default();
    for r in runs {
        total.tally.merge(&r.tally);
        total.acked.extend(r.acked);
        total.cross_replays += r.cross_replays;
        total.bad_replays.extend(r.bad_replays);
        total.unexpected.extend(r.unexpected);
        total.decisions += r.decisions;
    }
    let stored = Stored::check(&mut conn, &total.acked);
    let doubled = duplicate_open_tasks(&mut conn);
    let breaches = task_invariant_breaches(&mut conn);
    let open = count_open_tasks(&mut conn);
    let reconciles = |s: &Server| s.log_lines("tasks reconciled").len();
    let created = |s: &Server| -> u64 {
        s.log_lines("tasks reconciled")
            .iter()
            .filter_map(|l| {
                l.split("\"created\":").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok()
            })
            .sum()
    };
    let failed_reconciles = a.log_lines("reconcile failed").len() + b.log_lines("reconcile failed").len();
    let deadlocks = deadlocks(&mut conn);
    let logged_errors = [a.logged_errors(), b.logged_errors()].concat();

    report(
        "instances::two_servers_share_one_postgres_database",
        &[
            format!(
                "2 servers, reconcile every 1 s: periodic runs A {} / B {} (tasks created A {} / B {}), failed {failed_reconciles}",
                reconciles(&a),
                reconciles(&b),
                created(&a),
                created(&b)
            ),
            format!(
                "open tasks deleted behind their backs {} times ({} tasks)",
                deleted.len(),
                deleted.iter().sum::<usize>()
            ),
            format!("`gridlight tasks reconcile` alongside: {}", cli_runs.join(" | ")),
            format!(
                "{VISITORS} visitors + 1 secretary for {LOAD:?}: answers (visits and tag decisions) {}; tag decisions {}",
                total.tally.summary(),
                total.decisions
            ),
            stored.line(),
            format!(
                "acknowledged visits re-sent to the other server {}, not answered 200 with the same visit {}",
                total.cross_replays,
                total.bad_replays.len()
            ),
            format!(
                "open tasks {open}; duplicate open tasks under load {} / settled {}; task invariant breaches {}; deadlocks {deadlocks}; internal errors logged {}",
                doubled_under_load.len(),
                doubled.len(),
                breaches.len(),
                logged_errors.len()
            ),
        ],
    );

    assert!(total.unexpected.is_empty(), "{:#?}", total.unexpected);
    assert!(total.bad_replays.is_empty(), "{:#?}", total.bad_replays);
    assert!(total.cross_replays > 0 && total.decisions > 10, "too little load to mean anything");
    stored.assert_exact();
    assert!(doubled_under_load.is_empty(), "duplicate open tasks: {doubled_under_load:?}");
    assert!(doubled.is_empty(), "duplicate open tasks: {doubled:?}");
    assert!(breaches.is_empty(), "task invariant: {breaches:#?}");
    assert!(reconciles(&a) >= 3 && reconciles(&b) >= 3, "the periodic reconcilers did not run");
    assert_eq!(failed_reconciles, 0, "reconciles failed");
    assert_eq!(deadlocks, 0, "PostgreSQL broke deadlocks: some writer takes its locks out of order");
    assert!(logged_errors.is_empty(), "internal errors: {logged_errors:#?}");
}

#[derive(QueryableByName)]
struct Deadlocks {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    deadlocks: i64,
}

/// Deadlocks PostgreSQL detected (and broke by aborting a transaction) in the test database.
/// Statistics reach the view within about a second of the transaction's end.
fn deadlocks(conn: &mut DbConn) -> i64 {
    diesel::sql_query("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        .get_result::<Deadlocks>(conn)
        .expect("pg_stat_database")
        .deadlocks
}
