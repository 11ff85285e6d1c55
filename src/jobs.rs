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

/// Runs [`reconcile_all`] now and then every `interval`, on the blocking pool, until the
/// server stops. Failures (say, the database is away) are logged and retried next time.
pub fn spawn_reconciler(db: Db, interval: Duration) {
    actix_web::rt::spawn(async move {
        loop {
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
