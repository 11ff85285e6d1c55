//! Background work inside `gridlight serve`, and the same work for the CLI.

use std::time::Duration;

use crate::db::Db;
use crate::error::ApiResult;
use crate::store::tasks::{self, Reconciled};

/// Households reconciled per transaction: small enough that requests waiting for the SQLite
/// writer are not held up for long.
const BATCH: i64 = 200;

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

/// Runs [`reconcile_all`] and [`prune_sync_log`] now and then every `interval`, on the
/// blocking pool, until the server stops. Failures (say, the database is away) are logged and
/// retried next time.
pub fn spawn_reconciler(db: Db, interval: Duration, sync_retention_days: u32) {
    actix_web::rt::spawn(async move {
        loop {
            let handle = db.clone();
            match actix_web::web::block(move || prune_sync_log(&handle, sync_retention_days)).await {
                Ok(Ok(n)) if n > 0 => tracing::info!(rows = n, "sync change log pruned"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "sync change log pruning failed; will retry"),
                Err(e) => tracing::warn!(error = %e, "sync change log pruning was interrupted"),
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
