//! Load and bookkeeping: visits with client ids, what each answer was, and the check of what
//! the database holds against what was acknowledged.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicU8, Ordering};

use chrono::{Duration, Utc};
use diesel::prelude::*;
use serde_json::{Value, json};

use gridlight::db::DbConn;
use gridlight::db::schema::{households, service_templates, tasks, visits};

use crate::http::{Client, Response};

/// What a test's controller tells its client threads: keep going, finish what you hold (every
/// unacknowledged write is retried until acknowledged), or stop at once (the test failed).
#[derive(Default)]
pub struct Phase(AtomicU8);

impl Phase {
    const DRAIN: u8 = 1;
    const ABORT: u8 = 2;

    pub fn drain(&self) {
        self.0.fetch_max(Self::DRAIN, Ordering::SeqCst);
    }

    pub fn abort(&self) {
        self.0.store(Self::ABORT, Ordering::SeqCst);
    }

    pub fn draining(&self) -> bool {
        self.0.load(Ordering::SeqCst) >= Self::DRAIN
    }

    pub fn aborted(&self) -> bool {
        self.0.load(Ordering::SeqCst) == Self::ABORT
    }
}

/// Aborts the clients if the controller panics, so that the test fails at once instead of
/// waiting for them to give up on a server that will not come back.
pub struct AbortOnPanic<'a>(pub &'a Phase);

impl Drop for AbortOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abort();
        }
    }
}

/// One visit as a mobile client holds it: its id and body are fixed when it is recorded on the
/// phone, and every retry sends exactly the same thing.
#[derive(Clone, Debug)]
pub struct Visit {
    pub id: String,
    pub notes: String,
    pub body: Value,
}

impl Visit {
    /// `notes` must be unique per submission: it tells a doubled write from two writes.
    pub fn new(household: &str, kind: &str, notes: String) -> Visit {
        let id = uuid::Uuid::now_v7().to_string();
        let at = Utc::now() - Duration::minutes(90) + Duration::milliseconds(rand::random_range(0..3_600_000));
        let body = json!({"id": id, "household_id": household, "kind": kind, "visited_at": at.to_rfc3339(),
                          "notes": notes, "findings": [{"category": "health", "detail": "血压平稳"}],
                          "location": {"lat": 36.6512, "lng": 117.0009, "accuracy_m": 10.0}});
        Visit { id, notes, body }
    }

    pub fn send(&self, client: &Client, token: &str) -> io::Result<Response> {
        client.post("/api/v1/visits", Some(token), &self.body)
    }

    /// Whether a 2xx answer is this visit as stored.
    pub fn matches(&self, res: &Response) -> bool {
        let body = res.json();
        body["id"] == self.id.as_str() && body["notes"] == self.notes.as_str()
    }
}

/// How often each kind of answer came back.
#[derive(Default, Debug, Clone)]
pub struct Tally {
    counts: BTreeMap<String, u64>,
}

impl Tally {
    /// Records an answer (by status) or a transport failure (by kind).
    pub fn record(&mut self, outcome: &io::Result<Response>) {
        self.add(&outcome_key(outcome));
    }

    pub fn add(&mut self, key: &str) {
        *self.counts.entry(key.to_owned()).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Tally) {
        for (k, n) in &other.counts {
            *self.counts.entry(k.clone()).or_default() += n;
        }
    }

    pub fn count(&self, key: &str) -> u64 {
        self.counts.get(key).copied().unwrap_or(0)
    }

    pub fn starting_with(&self, prefix: &str) -> u64 {
        self.counts.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, n)| n).sum()
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The outcomes not in `allowed`.
    pub fn other_than(&self, allowed: &[&str]) -> Vec<String> {
        self.counts.iter().filter(|(k, _)| !allowed.contains(&k.as_str())).map(|(k, n)| format!("{k}×{n}")).collect()
    }

    pub fn summary(&self) -> String {
        self.counts.iter().map(|(k, n)| format!("{k}×{n}")).collect::<Vec<_>>().join(" ")
    }
}

pub fn outcome_key(outcome: &io::Result<Response>) -> String {
    match outcome {
        Ok(res) => res.status.to_string(),
        Err(e) => match e.kind() {
            io::ErrorKind::ConnectionRefused => "refused".into(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted => {
                "reset".into()
            }
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timeout".into(),
            io::ErrorKind::UnexpectedEof => "cut-short".into(),
            other => format!("io-{other:?}"),
        },
    }
}

/// What the database holds compared with what was acknowledged.
pub struct Stored {
    pub acknowledged: usize,
    pub found: usize,
    pub lost: Vec<String>,
    /// Submissions stored more than once (two rows with one submission's notes).
    pub duplicates: usize,
    /// Rows no client got an acknowledgement for.
    pub unacknowledged: usize,
    /// Acknowledged visits stored with other content.
    pub altered: usize,
}

impl Stored {
    pub fn check(conn: &mut DbConn, acked: &[Visit]) -> Stored {
        let rows: Vec<(String, Option<String>)> =
            visits::table.select((visits::id, visits::notes)).load(conn).expect("read the stored visits");
        let by_id: HashMap<&str, Option<&str>> = rows.iter().map(|(id, n)| (id.as_str(), n.as_deref())).collect();
        let mut per_notes: HashMap<&str, usize> = HashMap::new();
        for (_, notes) in &rows {
            *per_notes.entry(notes.as_deref().unwrap_or("")).or_default() += 1;
        }
        let acked_ids: HashSet<&str> = acked.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(acked_ids.len(), acked.len(), "a visit was acknowledged twice to the clients' bookkeeping");
        let lost: Vec<String> =
            acked.iter().filter(|v| !by_id.contains_key(v.id.as_str())).map(|v| v.id.clone()).collect();
        let altered =
            acked.iter().filter(|v| by_id.get(v.id.as_str()).is_some_and(|n| *n != Some(v.notes.as_str()))).count();
        Stored {
            acknowledged: acked.len(),
            found: acked.len() - lost.len(),
            duplicates: per_notes.values().filter(|n| **n > 1).count(),
            unacknowledged: rows.iter().filter(|(id, _)| !acked_ids.contains(id.as_str())).count(),
            lost,
            altered,
        }
    }

    pub fn line(&self) -> String {
        format!(
            "writes acknowledged {}, found {}, lost {}, duplicates {}, stored but never acknowledged {}, altered {}",
            self.acknowledged,
            self.found,
            self.lost.len(),
            self.duplicates,
            self.unacknowledged,
            self.altered
        )
    }

    /// Every acknowledged visit is there exactly once with its content, and nothing else is.
    #[track_caller]
    pub fn assert_exact(&self) {
        assert!(self.acknowledged > 0, "no write was acknowledged at all");
        assert!(self.lost.is_empty(), "acknowledged visits lost: {} ({:?}…)", self.lost.len(), self.lost.first());
        assert_eq!(self.duplicates, 0, "submissions stored twice");
        assert_eq!(self.altered, 0, "acknowledged visits stored with other content");
        assert_eq!(
            self.unacknowledged, 0,
            "visits stored that no client had acknowledged (every pending one was retried)"
        );
    }
}

/// (household, template) pairs with more than one open task.
pub fn duplicate_open_tasks(conn: &mut DbConn) -> Vec<(String, String, usize)> {
    let open: Vec<(String, String)> = tasks::table
        .filter(tasks::status.eq("open"))
        .select((tasks::household_id, tasks::template_id))
        .load(conn)
        .expect("read open tasks");
    let mut per: BTreeMap<(String, String), usize> = BTreeMap::new();
    for key in open {
        *per.entry(key).or_default() += 1;
    }
    per.into_iter().filter(|(_, n)| *n > 1).map(|((h, t), n)| (h, t, n)).collect()
}

/// Active households whose open tasks are not exactly one per active template of their tag's
/// plan.
pub fn task_invariant_breaches(conn: &mut DbConn) -> Vec<String> {
    let homes: Vec<(String, String, String)> = households::table
        .filter(households::removed_at.is_null())
        .select((households::id, households::community_id, households::tag))
        .load(conn)
        .expect("read households");
    let templates: Vec<(String, String, String)> = service_templates::table
        .filter(service_templates::active.eq(true))
        .select((service_templates::id, service_templates::community_id, service_templates::tag))
        .load(conn)
        .expect("read templates");
    let open: Vec<(String, String)> = tasks::table
        .filter(tasks::status.eq("open"))
        .select((tasks::household_id, tasks::template_id))
        .load(conn)
        .expect("read open tasks");
    let mut breaches = Vec::new();
    for (id, community, tag) in homes {
        let mut want: Vec<&str> =
            templates.iter().filter(|(_, c, t)| *c == community && *t == tag).map(|(t, _, _)| t.as_str()).collect();
        let mut have: Vec<&str> = open.iter().filter(|(h, _)| *h == id).map(|(_, t)| t.as_str()).collect();
        want.sort_unstable();
        have.sort_unstable();
        if want != have {
            breaches.push(format!("household {id} ({tag}): open tasks for {have:?}, plan {want:?}"));
        }
    }
    breaches
}

/// Every visit id the API lists to `token`, following the cursor.
pub fn listed_visit_ids(client: &Client, token: &str) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/visits?limit=500&cursor={c}"),
            None => "/api/v1/visits?limit=500".to_owned(),
        };
        let page = client.get(&path, Some(token)).expect("list visits").ok("list visits");
        for v in page["items"].as_array().expect("items") {
            ids.insert(v["id"].as_str().expect("id").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return ids,
        }
    }
}

pub fn count_open_tasks(conn: &mut DbConn) -> i64 {
    tasks::table.filter(tasks::status.eq("open")).count().get_result(conn).expect("count open tasks")
}
