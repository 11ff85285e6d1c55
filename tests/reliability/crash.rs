//! Crash safety: a real server takes concurrent visit submissions and is killed with SIGKILL
//! at random moments, then restarted, cycle after cycle. Clients keep every unacknowledged
//! visit and retry it (same id, same body) until it is acknowledged, as the mobile app does.
//! Afterwards every acknowledged visit is stored exactly once, nothing else is, and on SQLite
//! the file passes `PRAGMA integrity_check`.

use std::thread;
use std::time::{Duration, Instant};

use diesel::sql_types::Text;
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};
use rand::Rng;

use gridlight::db::Backend;

use crate::http::Client;
use crate::load::{AbortOnPanic, Phase, Stored, Tally, Visit, duplicate_open_tasks, listed_visit_ids};
use crate::server::{Server, Store, report};
use crate::world::{self, World};

const CLIENTS: usize = 4;
const CYCLES: usize = 5;
/// Clients give up (and the test fails) if their visits are still unacknowledged by then.
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

#[test]
fn sqlite() {
    run(Store::sqlite());
}

#[test]
fn postgres() {
    if let Some(store) = Store::postgres_cluster(true) {
        run(store);
    }
}

#[derive(Default)]
struct ClientRun {
    acked: Vec<Visit>,
    tally: Tally,
    /// Answers other than 2xx, 503 or a dropped connection.
    unexpected: Vec<String>,
    /// 2xx answers that were not the submitted visit.
    mismatched: usize,
    /// Visits still unacknowledged when the client gave up.
    abandoned: usize,
}

fn client_loop(c: usize, client: Client, world: &World, phase: &Phase, deadline: Instant) -> ClientRun {
    let token = &world.workers[c % world.workers.len()];
    let mut run = ClientRun::default();
    let mut pending: Option<Visit> = None;
    let mut seq = 0usize;
    while !phase.aborted() {
        let visit = match pending.take() {
            Some(v) => v,
            None if phase.draining() => break,
            None => {
                seq += 1;
                let household = &world.households[(c * 7 + seq) % world.households.len()];
                let kind = if seq.is_multiple_of(3) { "phone_call" } else { "home_visit" };
                Visit::new(household, kind, format!("crash: client {c} visit {seq}"))
            }
        };
        let outcome = visit.send(&client, token);
        run.tally.record(&outcome);
        match outcome {
            Ok(res) if res.is_success() => {
                if !visit.matches(&res) {
                    run.mismatched += 1;
                }
                run.acked.push(visit);
            }
            Ok(res) if res.status == 503 => {
                pending = Some(visit);
                thread::sleep(Duration::from_millis(50));
            }
            Ok(res) => run.unexpected.push(format!("{} {}", res.status, res.text())),
            // The server is down (refused) or died mid-request (reset, cut short): retry.
            Err(_) => {
                pending = Some(visit);
                thread::sleep(Duration::from_millis(25));
            }
        }
        if Instant::now() > deadline {
            run.abandoned += usize::from(pending.is_some());
            break;
        }
    }
    run
}

#[derive(QueryableByName)]
struct IntegrityCheck {
    #[diesel(sql_type = Text)]
    integrity_check: String,
}

#[derive(QueryableByName)]
struct ForeignKeyViolation {
    #[diesel(sql_type = Text)]
    #[diesel(column_name = "table")]
    _table: String,
}

fn run(store: Store) {
    let mut server = Server::start(&store, "gridlight", &[]);
    let client = server.client();
    let world = world::build(&store, &client, 2, CLIENTS * 2);
    let started = Instant::now();
    let phase = Phase::default();
    let deadline = Instant::now() + GIVE_UP_AFTER;
    let mut pauses = Vec::new();
    let runs: Vec<ClientRun> = thread::scope(|s| {
        let _abort = AbortOnPanic(&phase);
        let handles: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (world, phase) = (&world, &phase);
                s.spawn(move || client_loop(c, client, world, phase, deadline))
            })
            .collect();
        let mut rng = rand::rng();
        for _ in 0..CYCLES {
            let up = Duration::from_millis(rng.random_range(600..2200));
            thread::sleep(up);
            server.kill();
            thread::sleep(Duration::from_millis(rng.random_range(0..250)));
            pauses.push(up);
            server.restart();
        }
        // Load on the last server, then let the clients drain what they still hold.
        thread::sleep(Duration::from_millis(500));
        phase.drain();
        handles.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    let load_secs = started.elapsed().as_secs_f64();
    // One more crash right after the last acknowledgements, then look at the files.
    server.kill();

    let mut tally = Tally::default();
    let mut acked = Vec::new();
    let mut unexpected = Vec::new();
    let (mut mismatched, mut abandoned) = (0, 0);
    for r in runs {
        tally.merge(&r.tally);
        acked.extend(r.acked);
        unexpected.extend(r.unexpected);
        mismatched += r.mismatched;
        abandoned += r.abandoned;
    }
    let mut conn = store.connect();
    let stored = Stored::check(&mut conn, &acked);
    let doubled_tasks = duplicate_open_tasks(&mut conn);
    drop(conn);
    let integrity = match store.backend {
        Backend::Sqlite => {
            let mut c = SqliteConnection::establish(&store.url).expect("open the SQLite file");
            let rows: Vec<IntegrityCheck> =
                diesel::sql_query("PRAGMA integrity_check").load(&mut c).expect("integrity_check");
            let fk: Vec<ForeignKeyViolation> =
                diesel::sql_query("PRAGMA foreign_key_check").load(&mut c).expect("foreign_key_check");
            Some((rows.into_iter().map(|r| r.integrity_check).collect::<Vec<_>>().join("; "), fk.len()))
        }
        Backend::Postgres => None,
    };
    // And the restarted server serves every one of them.
    server.restart();
    let listed = listed_visit_ids(&server.client(), &world.secretary);
    let unlisted = acked.iter().filter(|v| !listed.contains(&v.id)).count();

    let mut lines = vec![
        format!(
            "{} SIGKILLs under load, after {} ms each, and one after the last acknowledgement; {} starts, {} clients, {load_secs:.1} s of load",
            CYCLES,
            pauses.iter().map(|p| p.as_millis().to_string()).collect::<Vec<_>>().join("/"),
            server.starts,
            CLIENTS
        ),
        stored.line(),
        format!(
            "answers: {}; retries answered 200 (committed, answer lost to a kill): {}; cut off by a kill: {}",
            tally.summary(),
            tally.count("200"),
            tally.count("reset") + tally.count("cut-short")
        ),
        format!("duplicate open tasks: {}; visits the API does not list: {unlisted}", doubled_tasks.len()),
    ];
    if let Some((check, fk)) = &integrity {
        lines.push(format!("PRAGMA integrity_check: {check}; foreign_key_check violations: {fk}"));
    }
    report(&format!("crash::{}", store.backend.name()), &lines);

    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:?}");
    assert_eq!(mismatched, 0, "2xx answers that were not the submitted visit");
    assert_eq!(abandoned, 0, "visits never acknowledged within {GIVE_UP_AFTER:?}");
    assert!(tally.count("201") > 50, "too little load to mean anything: {}", tally.summary());
    stored.assert_exact();
    assert!(doubled_tasks.is_empty(), "duplicate open tasks: {doubled_tasks:?}");
    assert_eq!(unlisted, 0, "acknowledged visits the API does not list");
    if let Some((check, fk)) = integrity {
        assert_eq!(check, "ok");
        assert_eq!(fk, 0, "foreign key violations");
    }
}
