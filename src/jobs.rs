//! Background work inside `gridlight serve`, and the same work for the CLI.

use std::collections::HashMap;
use std::time::Duration;

use chrono::NaiveDate;

use crate::auth::throttle::Throttle;
use crate::db::Db;
use crate::error::ApiResult;
use crate::store::audit::{self, Actor, Event};
use crate::store::events::{Emitted, Resume};
use crate::store::record;
use crate::store::tasks::{self, Reconciled};

/// Households reconciled per transaction: small enough that requests waiting for the SQLite
/// writer are not held up for long.
const BATCH: i64 = 200;

/// Communities the due-events job looks at in one transaction at most.
const COMMUNITIES_PER_TRANSACTION: usize = 50;

/// Re-establishes the task invariant for every household, batch by batch.
pub fn reconcile_all(db: &Db) -> ApiResult<Reconciled> {
    let mut after: Option<String> = None;
    let mut total = Reconciled::default();
    loop {
        let from = after.clone();
        let (done, last) = db.write_blocking(move |conn| tasks::reconcile_batch(conn, from.as_deref(), BATCH))?;
        total += done;
        match last {
            Some(id) => after = Some(id),
            None => return Ok(total),
        }
    }
}

/// Deletes the sync change log older than the retention, in batches (a device whose token is
/// older starts over: 410 `resync_required`); returns how many rows went.
pub fn prune_sync_log(db: &Db, retention_days: u32) -> ApiResult<usize> {
    let before = crate::store::now() - chrono::Duration::days(i64::from(retention_days));
    db.write_blocking(|conn| Ok(crate::store::sync::prune(conn, before)?))
}

/// Emits the events nobody's write causes — `task.overdue` once a task's due date has passed in
/// its community's calendar, `review.due` once a household's tag review falls due — each once
/// (`store::events::emit_due`). Only what fell due in the last `window_days` is looked at: the
/// server's first run looks back over the change log's retention, later ones (a minute apart)
/// over two days. Returns how many events of each kind.
///
/// Community by community, earliest due first, each batch going on from where the one before
/// got to: a backlog (a first run over a large database) costs about one look per record, not
/// one per record and batch. A transaction emits at most [`BATCH`] events of each kind and
/// looks at most at [`COMMUNITIES_PER_TRANSACTION`] communities, so that requests waiting for
/// the SQLite writer are not held up for long.
pub fn emit_due_events(db: &Db, window_days: u32) -> ApiResult<Emitted> {
    let window = chrono::Duration::days(i64::from(window_days));
    let mut days: HashMap<String, NaiveDate> = HashMap::new();
    let communities: Vec<(String, NaiveDate)> = communities_and_zones(db)?
        .into_iter()
        .map(|(id, zone)| {
            let today = *days.entry(zone).or_insert_with_key(|zone| crate::store::communities::today_in(zone));
            (id, today)
        })
        .collect();
    let mut total = Emitted::default();
    // The community looked at next, and where in it (`None`: from its window's start).
    let (mut next, mut from) = (0, None::<Resume>);
    while next < communities.len() {
        total += db.write_blocking(|c| {
            let (mut done, mut looked) = (Emitted::default(), 0);
            while next < communities.len() && looked < COMMUNITIES_PER_TRANSACTION {
                let room = BATCH - done.overdue.max(done.reviews) as i64;
                if room <= 0 {
                    break;
                }
                let (community, today) = &communities[next];
                let start = from.unwrap_or(Resume::from(*today - window));
                let (got, resume) =
                    crate::store::events::emit_due(c, community, *today, start, crate::store::now(), room)?;
                done += got;
                looked += 1;
                if got.overdue < room as usize && got.reviews < room as usize {
                    (next, from) = (next + 1, None);
                } else {
                    from = Some(resume);
                }
            }
            Ok(done)
        })?;
    }
    Ok(total)
}

/// The time zones of the communities: jobs that go by the calendar make one pass per zone.
fn zones(db: &Db) -> ApiResult<Vec<String>> {
    use crate::db::schema::communities;
    use diesel::prelude::*;
    db.read_blocking(|c| {
        Ok(communities::table.select(communities::timezone).distinct().order(communities::timezone).load(c)?)
    })
}

/// Every community with its time zone (jobs that go by the calendar go by each one's).
fn communities_and_zones(db: &Db) -> ApiResult<Vec<(String, String)>> {
    use crate::db::schema::communities;
    use diesel::prelude::*;
    db.read_blocking(|c| {
        Ok(communities::table.select((communities::id, communities::timezone)).order(communities::id).load(c)?)
    })
}

/// Works out again every kept suggestion that went stale (a member or the recorded reasons
/// changed) or expired (a member's birthday came), in batches (`store::suggestions`); how many.
pub fn refresh_suggestions(db: &Db) -> ApiResult<usize> {
    // The furthest-ahead community's today: no row good until later can be due anywhere.
    let Some(latest) = zones(db)?.iter().map(|z| crate::store::communities::today_in(z)).max() else { return Ok(0) };
    // Most passes find nothing: they need not queue for the (SQLite: only) writer to learn it.
    if !db.read_blocking(|c| Ok(crate::store::suggestions::any_due(c, latest)?))? {
        return Ok(0);
    }
    let mut total = 0;
    loop {
        let done = db.write_blocking(|c| crate::store::suggestions::refresh_due(c, latest, BATCH))?;
        total += done.worked;
        if done.looked < BATCH as usize || done.worked == 0 {
            return Ok(total);
        }
    }
}

/// Runs [`refresh_suggestions`] every `interval`: a household page answers from the members
/// meanwhile, only more slowly.
pub fn spawn_suggestion_keeper(db: Db, interval: Duration) {
    actix_web::rt::spawn(async move {
        loop {
            let handle = db.clone();
            match actix_web::web::block(move || refresh_suggestions(&handle)).await {
                Ok(Ok(n)) if n > 0 => tracing::debug!(households = n, "suggestions worked out again"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "working out suggestions failed; will retry"),
                Err(e) => tracing::warn!(error = %e, "working out suggestions was interrupted"),
            }
            actix_web::rt::time::sleep(interval).await;
        }
    });
}

/// Runs [`emit_due_events`] and prunes the webhook delivery log every `interval` (a minute: a
/// task becomes overdue at midnight and its event should not wait for the hourly job).
pub fn spawn_event_clock(db: Db, interval: Duration, retention_days: u32, delivery_log_days: u32) {
    actix_web::rt::spawn(async move {
        let mut window = retention_days;
        loop {
            let handle = db.clone();
            match actix_web::web::block(move || emit_due_events(&handle, window)).await {
                Ok(Ok(e)) => {
                    if e.overdue + e.reviews > 0 {
                        tracing::info!(overdue = e.overdue, reviews = e.reviews, "due events emitted");
                    }
                    window = window.min(2);
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "emitting due events failed; will retry"),
                Err(e) => tracing::warn!(error = %e, "emitting due events was interrupted"),
            }
            let handle = db.clone();
            let before = crate::store::now() - chrono::Duration::days(i64::from(delivery_log_days));
            if let Ok(Err(e)) = actix_web::web::block(move || {
                handle.write_blocking(|c| Ok(crate::store::webhooks::prune_deliveries(c, before)?))
            })
            .await
            {
                tracing::warn!(error = %e, "pruning the webhook delivery log failed; will retry");
            }
            actix_web::rt::time::sleep(interval).await;
        }
    });
}

/// Forgets the login-attempt counts that no longer count (their window passed, no lock).
pub fn forget_login_failures(db: &Db, rule: Throttle) -> ApiResult<usize> {
    db.write_blocking(|conn| Ok(crate::store::sessions::forget_spent_failures(conn, rule)?))
}

/// What one retention run erased.
#[derive(Debug, Default, Clone)]
pub struct Retained {
    pub households: usize,
    pub members: usize,
}

/// Erases the personal fields of the households removed more than `years` ago (`0`: keeps
/// everything), in batches, and records the run as one audit event (`retention.erased`, with the
/// households' ids and counts; no personal value).
pub fn apply_retention(db: &Db, years: u32) -> ApiResult<Retained> {
    if years == 0 {
        return Ok(Retained::default());
    }
    let today = crate::store::now();
    let before = today
        .date()
        .checked_sub_months(chrono::Months::new(12 * years))
        .map_or(chrono::NaiveDateTime::MIN, |d| d.and_time(today.time()));
    let mut ids = Vec::new();
    let mut members = 0;
    loop {
        let batch = db.write_blocking(|conn| Ok(record::erase_removed_before(conn, before, BATCH)?))?;
        members += batch.members;
        let done = batch.households.is_empty();
        ids.extend(batch.households);
        if done {
            break;
        }
    }
    if !ids.is_empty() {
        let summary = serde_json::json!({"removed_before": before, "households": ids.len(), "members": members,
            "household_ids": ids});
        db.write_blocking(|conn| {
            let event = Event {
                action: "retention.erased",
                entity_type: "household",
                entity_id: None,
                community_id: None,
                summary,
            };
            Ok(audit::record(conn, &Actor::default(), event)?)
        })?;
    }
    Ok(Retained { households: ids.len(), members })
}

/// How long an import may sit `committing` without a batch before it is taken for abandoned
/// by another instance's periodic job (a batch takes seconds).
pub const IMPORT_SILENCE: Duration = Duration::from_secs(300);
/// How long the file of a dry run never committed is kept.
pub const IMPORT_FILE_RETENTION_DAYS: i64 = 7;

/// Ends imports whose commit stopped with its process (left `committing` with no batch since
/// `silence`): they are marked `failed`, saying how far they got. `gridlight serve` runs it at
/// start-up (on SQLite with no silence: only one server writes its file) and then with the
/// periodic job; it also clears the files of dry runs older than the retention.
pub fn end_abandoned_imports(db: &Db, silence: Duration) -> ApiResult<Vec<String>> {
    let now = crate::store::now();
    let before = now - chrono::Duration::from_std(silence).unwrap_or(chrono::Duration::zero());
    let ended = db.write_blocking(|conn| crate::ops::imports::fail_abandoned(conn, before))?;
    for id in &ended {
        tracing::warn!(import = %id, "an import's commit had stopped with the server; it is marked failed");
    }
    let expiry = now - chrono::Duration::days(IMPORT_FILE_RETENTION_DAYS);
    let expired = db.write_blocking(|conn| Ok(crate::store::imports::expire_files(conn, expiry, now)?))?;
    if expired > 0 {
        tracing::info!(imports = expired, "dry-run files past their retention cleared");
    }
    Ok(ended)
}

/// Runs [`reconcile_all`], [`prune_sync_log`], [`forget_login_failures`], [`apply_retention`] and
/// [`end_abandoned_imports`] now and then every `interval`, on the blocking pool, until the
/// server stops. Failures (say, the database is away) are logged and retried next time.
pub fn spawn_reconciler(
    db: Db,
    interval: Duration,
    sync_retention_days: u32,
    retention_years: u32,
    throttle: Throttle,
) {
    actix_web::rt::spawn(async move {
        loop {
            let handle = db.clone();
            match actix_web::web::block(move || apply_retention(&handle, retention_years)).await {
                Ok(Ok(r)) if r.households > 0 => {
                    tracing::info!(households = r.households, members = r.members, "retention erased personal fields")
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "retention failed; will retry"),
                Err(e) => tracing::warn!(error = %e, "retention was interrupted"),
            }
            let handle = db.clone();
            match actix_web::web::block(move || prune_sync_log(&handle, sync_retention_days)).await {
                Ok(Ok(n)) if n > 0 => tracing::info!(rows = n, "sync change log pruned"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "sync change log pruning failed; will retry"),
                Err(e) => tracing::warn!(error = %e, "sync change log pruning was interrupted"),
            }
            let handle = db.clone();
            if let Ok(Err(e)) = actix_web::web::block(move || forget_login_failures(&handle, throttle)).await {
                tracing::warn!(error = %e, "forgetting spent login attempts failed; will retry");
            }
            let handle = db.clone();
            if let Ok(Err(e)) = actix_web::web::block(move || end_abandoned_imports(&handle, IMPORT_SILENCE)).await {
                tracing::warn!(error = %e, "ending abandoned imports failed; will retry");
            }
            let handle = db.clone();
            match actix_web::web::block(move || reconcile_all(&handle)).await {
                Ok(Ok(r)) => tracing::info!(
                    households = r.households,
                    created = r.created,
                    cancelled = r.cancelled,
                    "tasks reconciled"
                ),
                Ok(Err(e)) => tracing::warn!(error = %e, "task reconcile failed; will retry"),
                Err(e) => tracing::warn!(error = %e, "task reconcile was interrupted"),
            }
            actix_web::rt::time::sleep(interval).await;
        }
    });
}
