//! A PostgreSQL outage under load: the cluster is stopped while clients submit visits and read,
//! and started again. While it is down every answer is a 503 problem+json (with `Retry-After`)
//! that comes within the configured database timeout, never a hang and never a 500; once it is
//! back, the same gridlight process serves again within seconds; no acknowledged write is lost.

use std::io;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::http::{Client, Response};
use crate::load::{Phase, Stored, Tally, Visit, outcome_key};
use crate::server::{Server, Store, report};
use crate::world::{self, World};

const DB_TIMEOUT: Duration = Duration::from_millis(1000);
/// Slack on top of the database timeout for a loaded two-core machine.
const SLACK: Duration = Duration::from_millis(2000);
const WRITERS: usize = 3;

/// One request as a client saw it, on the test's clock.
struct Sample {
    what: &'static str,
    start: Duration,
    end: Duration,
    key: String,
    problem: bool,
    retry_after: bool,
}

impl Sample {
    fn of(what: &'static str, t0: Instant, start: Instant, outcome: &io::Result<Response>) -> Sample {
        let (problem, retry_after) = match outcome {
            Ok(res) => (res.is_problem(), res.header("retry-after").is_some()),
            Err(_) => (false, false),
        };
        Sample { what, start: start - t0, end: t0.elapsed(), key: outcome_key(outcome), problem, retry_after }
    }

    fn ok(&self) -> bool {
        self.key.starts_with('2')
    }
}

fn writer(
    c: usize,
    client: Client,
    world: &World,
    phase: &Phase,
    t0: Instant,
    samples: &Mutex<Vec<Sample>>,
) -> Vec<Visit> {
    let token = &world.workers[c % world.workers.len()];
    let mut acked = Vec::new();
    let mut pending: Option<Visit> = None;
    let mut seq = 0;
    let give_up = Instant::now() + Duration::from_secs(90);
    while Instant::now() < give_up && !phase.aborted() {
        let visit = match pending.take() {
            Some(v) => v,
            None if phase.draining() => break,
            None => {
                seq += 1;
                Visit::new(
                    &world.households[(c + seq) % world.households.len()],
                    "home_visit",
                    format!("outage: client {c} visit {seq}"),
                )
            }
        };
        let start = Instant::now();
        let outcome = visit.send(&client, token);
        let sample = Sample::of("POST /api/v1/visits", t0, start, &outcome);
        let acknowledged = sample.ok();
        samples.lock().unwrap().push(sample);
        if acknowledged {
            acked.push(visit);
        } else {
            pending = Some(visit);
            thread::sleep(Duration::from_millis(100));
        }
    }
    acked
}

fn reader(client: Client, world: &World, phase: &Phase, t0: Instant, samples: &Mutex<Vec<Sample>>) {
    let paths: [(&'static str, Option<&str>); 3] =
        [("/readyz", None), ("/api/v1/households?limit=20", Some(world.secretary.as_str())), ("/healthz", None)];
    let mut i = 0;
    while !phase.draining() {
        let (path, token) = paths[i % paths.len()];
        i += 1;
        let start = Instant::now();
        let outcome = client.get(path, token);
        samples.lock().unwrap().push(Sample::of(path, t0, start, &outcome));
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn postgres_stopped_under_load() {
    let Some(store) = Store::postgres_cluster(false) else { return };
    let timeout_ms = DB_TIMEOUT.as_millis().to_string();
    let server = Server::start(&store, "gridlight", &[("GRIDLIGHT_DB_TIMEOUT_MS", &timeout_ms)]);
    // The client's own timeout is far above the bound asserted, so a hang shows as a long sample.
    let client = server.client().with_timeout(Duration::from_secs(30));
    let world = world::build(&store, &client, 2, 6);
    let cluster = store.cluster();
    let phase = Phase::default();
    let samples = Mutex::new(Vec::new());
    let t0 = Instant::now();
    let mut marks = [Duration::ZERO; 4];
    let acked: Vec<Visit> = thread::scope(|s| {
        let (world, phase, samples) = (&world, &phase, &samples);
        let writers: Vec<_> =
            (0..WRITERS).map(|c| s.spawn(move || writer(c, client, world, phase, t0, samples))).collect();
        let reading = s.spawn(move || reader(client, world, phase, t0, samples));
        let controller = || {
            thread::sleep(Duration::from_millis(1500));
            marks[0] = t0.elapsed();
            cluster.stop_server().expect("stop the cluster");
            marks[1] = t0.elapsed();
            thread::sleep(Duration::from_secs(4));
            marks[2] = t0.elapsed();
            cluster.start_server().expect("start the cluster");
            marks[3] = t0.elapsed();
            thread::sleep(Duration::from_secs(5));
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(controller));
        if outcome.is_err() {
            phase.abort();
        }
        phase.drain();
        reading.join().expect("reader");
        let acked = writers.into_iter().flat_map(|h| h.join().expect("writer")).collect();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
        acked
    });
    let [stop_begin, stop_end, start_begin, start_end] = marks;
    let samples = samples.into_inner().unwrap();

    let mut during = Tally::default();
    let mut around = Tally::default();
    let mut after = Tally::default();
    let mut slowest_during = Duration::ZERO;
    let mut bad_during = Vec::new();
    for s in samples.iter().filter(|s| s.start >= stop_end && s.end <= start_begin) {
        during.add(&s.key);
        slowest_during = slowest_during.max(s.end - s.start);
        let fine = if s.what == "/healthz" { s.key == "200" } else { s.key == "503" && s.problem && s.retry_after };
        if !fine || s.end - s.start > DB_TIMEOUT + SLACK {
            bad_during.push(format!(
                "{} {} in {:?} (problem {}, retry-after {})",
                s.what,
                s.key,
                s.end - s.start,
                s.problem,
                s.retry_after
            ));
        }
    }
    for s in samples.iter().filter(|s| s.end > stop_begin && s.start < stop_end) {
        around.add(&s.key);
    }
    let recovered_at = samples
        .iter()
        .filter(|s| s.what == "POST /api/v1/visits" && s.start >= start_end && s.ok())
        .map(|s| s.end)
        .min()
        .expect("no visit was acknowledged after the database came back");
    let recovery = recovered_at - start_end;
    let settled = recovered_at + Duration::from_secs(2);
    for s in samples.iter().filter(|s| s.start >= settled) {
        after.add(&s.key);
    }
    let mut all = Tally::default();
    for s in &samples {
        all.add(&s.key);
    }
    let stored = Stored::check(&mut store.connect(), &acked);
    let logged_errors = server.logged_errors();

    report(
        "outage::postgres_stopped_under_load",
        &[
            format!(
                "cluster stopped at {:.1} s (stop took {:.1} s), down until {:.1} s, started again by {:.1} s; database timeout {} ms",
                stop_begin.as_secs_f64(),
                (stop_end - stop_begin).as_secs_f64(),
                start_begin.as_secs_f64(),
                start_end.as_secs_f64(),
                DB_TIMEOUT.as_millis()
            ),
            format!("answers while down: {} (slowest {:?})", during.summary(), slowest_during),
            format!("answers while stopping: {}", around.summary()),
            format!(
                "first acknowledged write {:.2} s after the database was back; answers from 2 s later on: {}",
                recovery.as_secs_f64(),
                after.summary()
            ),
            format!("all answers: {}", all.summary()),
            stored.line(),
            format!("internal errors logged: {}", logged_errors.len()),
        ],
    );

    assert!(during.count("503") >= 5, "too few requests during the outage to mean anything: {}", during.summary());
    assert!(bad_during.is_empty(), "answers during the outage: {bad_during:#?}");
    assert!(all.other_than(&["200", "201", "503"]).is_empty(), "answers: {}", all.summary());
    assert!(recovery < Duration::from_secs(10), "recovered only after {recovery:?}");
    assert!(after.other_than(&["200", "201"]).is_empty(), "failures after recovery: {}", after.summary());
    assert!(after.count("201") > 10, "too little load after recovery: {}", after.summary());
    stored.assert_exact();
    assert!(logged_errors.is_empty(), "internal errors: {logged_errors:#?}");
}
