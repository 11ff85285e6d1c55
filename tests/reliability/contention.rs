//! Write contention: many concurrent writers of different kinds against one real server —
//! visits, household edits, member registrations and secretaries' tag decisions, with readers
//! alongside. No answer is a 5xx (on SQLite: no "database is locked"), and afterwards every
//! acknowledged change is there: each household carries the last edit and the last tag decided
//! for it, its member count matches its members, and the task invariant holds.

use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde_json::json;

use gridlight::db::schema::{households, members, tag_changes};

use crate::http::Client;
use crate::load::{Stored, Tally, Visit, duplicate_open_tasks, task_invariant_breaches};
use crate::server::{Server, Store, report};
use crate::world::{self, World};

const LOAD: Duration = Duration::from_secs(5);
const HOUSEHOLDS: usize = 6;
/// Writers of each kind; each editor and each tag decider owns a share of the households, so
/// that the last change it made to one is known.
const VISITORS: usize = 4;
const EDITORS: usize = 3;
const REGISTRARS: usize = 2;
const DECIDERS: usize = 2;

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

#[derive(Default)]
struct Outcome {
    tally: Tally,
    /// Answers that are not allowed at all (5xx, "locked", unexpected 4xx), with their bodies.
    bad: Vec<String>,
    visits: Vec<Visit>,
    /// household → the notes of the last acknowledged edit.
    last_notes: HashMap<String, String>,
    /// household → the tag of the last acknowledged decision.
    last_tag: HashMap<String, String>,
    members: usize,
    decisions: usize,
}

impl Outcome {
    /// Records an answer; true when it is one of `expected`.
    fn check(&mut self, what: &str, outcome: &std::io::Result<crate::http::Response>, expected: &[u16]) -> bool {
        self.tally.record(outcome);
        match outcome {
            Ok(res) if expected.contains(&res.status) => true,
            Ok(res) => {
                self.bad.push(format!("{what}: {} {}", res.status, res.text()));
                false
            }
            Err(e) => {
                self.bad.push(format!("{what}: {e}"));
                false
            }
        }
    }
}

enum Job {
    Visitor,
    Editor,
    Registrar,
    Decider,
    Reader,
}

fn writer(job: Job, n: usize, client: Client, world: &World, until: Instant) -> Outcome {
    let mut out = Outcome::default();
    let worker = &world.workers[n % world.workers.len()];
    let owned: Vec<&String> = world.households.iter().skip(n).step_by(EDITORS.max(DECIDERS)).collect();
    let mut seq = 0usize;
    const TAGS: [(&str, &[&str]); 3] =
        [("yellow", &["chronic_illness"]), ("red", &["elderly_living_alone", "serious_illness"]), ("green", &[])];
    while Instant::now() < until {
        seq += 1;
        match job {
            Job::Visitor => {
                let household = &world.households[(n + seq) % world.households.len()];
                let kind = if seq.is_multiple_of(2) { "phone_call" } else { "home_visit" };
                let v = Visit::new(household, kind, format!("contention: visitor {n} visit {seq}"));
                if out.check("visit", &v.send(&client, worker), &[201]) {
                    out.visits.push(v);
                }
            }
            Job::Editor => {
                let household = owned[seq % owned.len()];
                let notes = format!("编辑 {n}-{seq}：已更新联系方式");
                let token = if seq.is_multiple_of(2) { &world.secretary } else { worker };
                let res = client.patch(&format!("/api/v1/households/{household}"), token, &json!({"notes": notes}));
                if out.check("household edit", &res, &[200]) {
                    out.last_notes.insert(household.clone(), notes);
                }
            }
            Job::Registrar => {
                let household = &world.households[(n * 3 + seq) % world.households.len()];
                let body = json!({"name": format!("成员{n}-{seq}"), "gender": if seq.is_multiple_of(2) { "female" } else { "male" },
                                  "birth_date": "1948-05-12", "relation": "other", "chronic_illness": seq.is_multiple_of(3)});
                let res = client.post(&format!("/api/v1/households/{household}/members"), Some(worker), &body);
                if out.check("member", &res, &[201]) {
                    out.members += 1;
                }
            }
            Job::Decider => {
                let household = owned[seq % owned.len()];
                // This decider alone tags these households, so the next tag always differs.
                let current = out.last_tag.get(household.as_str()).map(String::as_str).unwrap_or("green");
                let i = TAGS.iter().position(|(t, _)| *t == current).unwrap_or(2);
                let (tag, reasons) = TAGS[(i + 1) % TAGS.len()];
                let body = json!({"to_tag": tag, "reasons": reasons, "note": format!("复核 {n}-{seq}")});
                let res =
                    client.post(&format!("/api/v1/households/{household}/tag-changes"), Some(&world.secretary), &body);
                if out.check("tag decision", &res, &[201]) {
                    out.last_tag.insert(household.clone(), tag.to_owned());
                    out.decisions += 1;
                }
            }
            Job::Reader => {
                let path = match seq % 3 {
                    0 => "/api/v1/tasks?limit=100".to_owned(),
                    1 => "/api/v1/households?limit=100".to_owned(),
                    _ => format!("/api/v1/visits?household_id={}", world.households[seq % world.households.len()]),
                };
                out.check("read", &client.get(&path, Some(&world.secretary)), &[200]);
            }
        }
    }
    out
}

fn run(store: Store) {
    let server = Server::start(&store, "gridlight", &[]);
    let client = server.client();
    let world = world::build(&store, &client, 2, HOUSEHOLDS);
    let until = Instant::now() + LOAD;
    let mut crew = Vec::new();
    crew.extend((0..VISITORS).map(|n| (0, Job::Visitor, n)));
    crew.extend((0..EDITORS).map(|n| (1, Job::Editor, n)));
    crew.extend((0..REGISTRARS).map(|n| (2, Job::Registrar, n)));
    crew.extend((0..DECIDERS).map(|n| (3, Job::Decider, n)));
    crew.push((4, Job::Reader, 0));
    let outcomes: Vec<(usize, Outcome)> = thread::scope(|s| {
        let world = &world;
        let handles: Vec<_> = crew
            .into_iter()
            .map(|(kind, job, n)| (kind, s.spawn(move || writer(job, n, client, world, until))))
            .collect();
        handles.into_iter().map(|(kind, h)| (kind, h.join().expect("writer thread"))).collect()
    });

    let names = ["visits", "household edits", "member registrations", "tag decisions", "reads"];
    let mut per_kind = vec![Tally::default(); names.len()];
    let mut total = Outcome::default();
    for (kind, o) in outcomes {
        per_kind[kind].merge(&o.tally);
        total.tally.merge(&o.tally);
        total.bad.extend(o.bad);
        total.visits.extend(o.visits);
        total.last_notes.extend(o.last_notes);
        total.last_tag.extend(o.last_tag);
        total.members += o.members;
        total.decisions += o.decisions;
    }

    let mut conn = store.connect();
    let stored = Stored::check(&mut conn, &total.visits);
    let rows: Vec<(String, Option<String>, String, i32)> = households::table
        .select((households::id, households::notes, households::tag, households::member_count))
        .load(&mut conn)
        .expect("households");
    let member_rows: Vec<String> = members::table.select(members::household_id).load(&mut conn).expect("members");
    let decision_rows: i64 = tag_changes::table.count().get_result(&mut conn).expect("tag changes");
    let doubled_tasks = duplicate_open_tasks(&mut conn);
    let breaches = task_invariant_breaches(&mut conn);
    let mut lost_edits = Vec::new();
    let mut lost_tags = Vec::new();
    let mut wrong_counts = Vec::new();
    for (id, notes, tag, member_count) in &rows {
        if let Some(last) = total.last_notes.get(id)
            && notes.as_deref() != Some(last.as_str())
        {
            lost_edits.push(format!("{id}: {notes:?}, last acknowledged {last:?}"));
        }
        if let Some(last) = total.last_tag.get(id)
            && tag != last
        {
            lost_tags.push(format!("{id}: {tag}, last acknowledged {last}"));
        }
        let actual = member_rows.iter().filter(|h| *h == id).count();
        if usize::try_from(*member_count).ok() != Some(actual) {
            wrong_counts.push(format!("{id}: member_count {member_count}, members {actual}"));
        }
    }
    let locked = total.bad.iter().filter(|b| b.contains("locked") || b.contains("busy")).count();
    let logged_errors = server.logged_errors();

    let mut lines = vec![format!(
        "{} writers and 1 reader for {:?}: {} requests, {:.0}/s",
        VISITORS + EDITORS + REGISTRARS + DECIDERS,
        LOAD,
        total.tally.total(),
        total.tally.total() as f64 / LOAD.as_secs_f64()
    )];
    for (name, tally) in names.iter().zip(&per_kind) {
        lines.push(format!("{name}: {}", tally.summary()));
    }
    lines.push(stored.line());
    lines.push(format!(
        "members registered {} / stored {}; tag decisions acknowledged {} / stored {}",
        total.members,
        member_rows.len(),
        total.decisions,
        decision_rows
    ));
    lines.push(format!(
        "lost edits {}, lost tag decisions {}, wrong member counts {}, duplicate open tasks {}, task invariant breaches {}",
        lost_edits.len(),
        lost_tags.len(),
        wrong_counts.len(),
        doubled_tasks.len(),
        breaches.len()
    ));
    lines.push(format!(
        "\"database is locked\"/busy answers: {locked}; 5xx: {}; internal errors logged: {}",
        total.tally.starting_with("5"),
        logged_errors.len()
    ));
    report(&format!("contention::{}", store.backend.name()), &lines);

    assert!(
        total.bad.is_empty(),
        "unexpected answers ({}): {:#?}",
        total.bad.len(),
        &total.bad[..total.bad.len().min(10)]
    );
    for (name, tally) in names.iter().zip(&per_kind) {
        assert!(tally.total() >= 10, "too few {name} to mean anything: {}", tally.summary());
    }
    stored.assert_exact();
    assert_eq!(member_rows.len(), total.members, "members stored vs acknowledged");
    assert_eq!(usize::try_from(decision_rows).unwrap(), total.decisions, "tag changes stored vs acknowledged");
    assert!(lost_edits.is_empty(), "{lost_edits:#?}");
    assert!(lost_tags.is_empty(), "{lost_tags:#?}");
    assert!(wrong_counts.is_empty(), "{wrong_counts:#?}");
    assert!(doubled_tasks.is_empty(), "duplicate open tasks: {doubled_tasks:?}");
    assert!(breaches.is_empty(), "task invariant: {breaches:#?}");
    assert!(logged_errors.is_empty(), "internal errors: {logged_errors:#?}");
}
