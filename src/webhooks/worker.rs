//! The delivery worker inside `gridlight serve`: at least once, in order per subscription.
//!
//! Every tick it claims the subscriptions that have something to send (events after their
//! cursor, or dead letters asked to be re-sent) and are not held by another instance — a
//! lease in the row, taken with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so instances sharing a
//! database never deliver the same attempt at once. Each claimed subscription runs on its own:
//! it sends its events one by one in id order and moves its cursor past each one delivered; the
//! first failure ends the run and sets the next attempt after an exponential backoff with
//! jitter. So a dead receiver delays only its own subscription. After the retry period the event
//! is parked as a dead letter and the subscription turned off with the reason.
//!
//! The cursor is saved every few events and at the end of a run: a server stopped mid-run
//! sends again, after its lease runs out, what it had sent since (receivers de-duplicate by the
//! event id), and never skips one.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use rand::Rng;

use crate::api::events::{EventOut, read_events};
use crate::config::WebhookConfig;
use crate::db::{Backend, Db};
use crate::error::{ApiError, ApiResult};
use crate::store::events::{self as events, EventScope};
use crate::store::webhooks::{self as store, DeadLetterRow, DeliveryRow, Progress, WebhookRow};
use crate::store::{new_id, now};
use crate::webhooks::sign::signature_header;
use crate::webhooks::{Outcome, SendConfig, Sender};

/// Events read at a time.
const BATCH: i64 = 500;
/// How long one run keeps a subscription before it lets it be claimed again.
const RUN_FOR: Duration = Duration::from_secs(30);
/// Deliveries, or the time, between two saves of the cursor within a run: what a server
/// stopped mid-run sends again.
const SAVE_EVERY: usize = 200;
const SAVE_AFTER: Duration = Duration::from_secs(1);
/// How often the worker looks for work.
const TICK: Duration = Duration::from_millis(200);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// What the worker runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub concurrency: usize,
    pub retry_for: chrono::Duration,
    pub backoff: Duration,
    pub lease: chrono::Duration,
    pub send: SendConfig,
}

impl Settings {
    pub fn of(c: &WebhookConfig) -> Settings {
        let timeout = Duration::from_secs(c.webhook_timeout_secs.max(1));
        Settings {
            concurrency: c.webhook_concurrency,
            retry_for: chrono::Duration::seconds(i64::try_from(c.webhook_retry_secs).unwrap_or(i64::MAX / 1000)),
            backoff: Duration::from_millis(c.webhook_backoff_ms.max(1)),
            // Long enough for a few deliveries that all time out; a run renews it as it goes.
            lease: chrono::Duration::from_std(timeout * 3 + Duration::from_secs(5)).unwrap_or(chrono::Duration::MAX),
            send: SendConfig {
                connect_timeout: Duration::from_secs(c.webhook_connect_timeout_secs.max(1)),
                timeout,
                allow_private: c.webhook_allow_private,
                body_limit: 4096,
            },
        }
    }
}

/// Starts the worker on the current (the server's main) runtime. Returns at once.
pub fn spawn(db: Db, settings: Settings) -> anyhow::Result<()> {
    let sender = Sender::new(settings.send.clone())?;
    let settings = Arc::new(settings);
    actix_web::rt::spawn(async move {
        // This instance's leases; a restarted server takes new ones.
        let token = Arc::new(new_id());
        if db.backend() == Backend::Sqlite {
            // One server uses a SQLite file: a lease left in it is a stopped server's.
            let handle = db.clone();
            if let Err(e) = handle.write(|c| Ok(store::release_all(c)?)).await {
                tracing::warn!(error = %e, "could not release the webhook leases of the last run");
            }
        }
        let running = Rc::new(Cell::new(0usize));
        loop {
            let free = settings.concurrency.saturating_sub(running.get());
            if free > 0 {
                match claim(&db, &settings, &token, free).await {
                    Ok(subs) => {
                        for sub in subs {
                            running.set(running.get() + 1);
                            let (db, sender, settings, token, running) =
                                (db.clone(), sender.clone(), settings.clone(), token.clone(), running.clone());
                            actix_web::rt::spawn(async move {
                                let id = sub.id.clone();
                                if let Err(e) = run(&db, &sender, &settings, &token, sub).await {
                                    tracing::warn!(webhook = %id, error = %e, "a webhook delivery run failed; will retry");
                                }
                                running.set(running.get() - 1);
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming webhook deliveries failed; will retry"),
                }
            }
            actix_web::rt::time::sleep(TICK).await;
        }
    });
    Ok(())
}

/// Numbers new events (PostgreSQL) and claims up to `limit` subscriptions with work. An idle
/// tick only reads.
async fn claim(db: &Db, s: &Settings, token: &Arc<String>, limit: usize) -> ApiResult<Vec<WebhookRow>> {
    if db.read(|c| Ok(events::unsequenced(c)?)).await? {
        db.write(|c| Ok(events::sequence(c, false)?)).await?;
    }
    if !db
        .read(|c| {
            let high = events::last_id(c)?;
            Ok(store::any_due(c, now(), high)?)
        })
        .await?
    {
        return Ok(Vec::new());
    }
    let (token, lease) = (token.clone(), s.lease);
    db.write(move |c| {
        let at = now();
        let high = events::last_id(c)?;
        Ok(store::claim(c, at, at + lease, &token, high, limit as i64)?)
    })
    .await
}

/// One run of a subscription: re-sends first, then its events in order until one fails or the
/// batch is done.
async fn run(db: &Db, sender: &Sender, s: &Settings, token: &Arc<String>, sub: WebhookRow) -> ApiResult<()> {
    let id = sub.id.clone();
    let handle = id.clone();
    let (resends, secrets) =
        db.read(move |c| Ok((store::resends(c, &handle, 20)?, store::signing_secrets(c, &handle, now())?))).await?;
    let mut log = Vec::new();
    for letter in resends {
        let outcome = post(sender, &sub, &secrets, letter.event_id, &letter.event, letter.body.as_bytes(), 0).await;
        let at = now();
        let ok = outcome.delivered();
        log.push(entry(
            &sub,
            letter.event_id,
            &letter.event,
            0,
            at,
            if ok { "resent" } else { "resend_failed" },
            &outcome,
            None,
        ));
        let (handle, error) = (id.clone(), (!ok).then(|| describe(&outcome)));
        db.write(move |c| Ok(store::resent(c, &handle, letter.event_id, ok, error.as_deref(), at)?)).await?;
    }

    if !sub.active {
        // Off: only the dead letters asked for are sent.
        return save(db, &id, token, progress(&sub), log, true).await;
    }
    let scope = match &sub.community_id {
        Some(c) => EventScope::Communities(vec![c.clone()]),
        None => EventScope::All,
    };
    let types = sub.type_list();
    let mut p = progress(&sub);
    let started = Instant::now();
    let mut saved_at = started;
    let lease = s.lease.to_std().unwrap_or(Duration::from_secs(60));
    // Batch after batch while there are events and nothing fails, up to RUN_FOR: a receiver
    // that keeps up is never left waiting for the next tick.
    loop {
        let (scope, types, cursor) = (scope.clone(), types.clone(), p.cursor);
        let read = db.read(move |c| read_events(c, &scope, types.as_deref(), cursor, BATCH)).await;
        let (rows, next_after, more) = match read {
            Ok(read) => read,
            // The events after the cursor were pruned (the subscription was off longer than the
            // log's retention): go on from the oldest kept, saying what was lost.
            Err(ApiError::Gone(..)) => {
                let pruned = db.read(|c| Ok(events::pruned_through(c)?)).await?;
                tracing::warn!(webhook = %id, from = cursor, to = pruned, "webhook events pruned before delivery");
                p.cursor = pruned;
                p.last_error =
                    Some(format!("events {} to {} were pruned before they could be delivered", cursor + 1, pruned));
                return save(db, &id, token, p, log, true).await;
            }
            Err(e) => return Err(e),
        };
        for row in rows {
            let event = EventOut::from(row);
            let body = serde_json::to_vec(&event).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
            let attempt = p.attempts + 1;
            let outcome = post(sender, &sub, &secrets, event.id, &event.kind, &body, attempt).await;
            let at = now();
            if !outcome.delivered() {
                failed(db, s, &sub, &mut p, &mut log, &event, body, attempt, &outcome).await?;
                return save(db, &id, token, p, log, true).await;
            }
            log.push(entry(&sub, event.id, &event.kind, attempt, at, "delivered", &outcome, None));
            p.cursor = event.id;
            p.attempts = 0;
            p.failing_since = None;
            p.last_success_at = Some(at);
            p.last_error = None;
            if log.len() >= SAVE_EVERY || saved_at.elapsed() > SAVE_AFTER.min(lease / 2) {
                // Keep what was delivered, and the lease; a lost lease means another instance
                // took the subscription over: stop here.
                if !keep(db, &id, token, s, p.clone(), std::mem::take(&mut log)).await? {
                    return Ok(());
                }
                saved_at = Instant::now();
            }
        }
        if !more {
            // Everything up to `next_after` in this subscription's view was sent.
            p.cursor = p.cursor.max(next_after);
        }
        if !more || started.elapsed() > RUN_FOR {
            p.next_attempt_at = now();
            return save(db, &id, token, p, log, true).await;
        }
    }
}

/// A failed attempt at `event`: the next after a backoff, or — after the retry period — the
/// event parked and the subscription turned off.
#[allow(clippy::too_many_arguments)]
async fn failed(
    db: &Db,
    s: &Settings,
    sub: &WebhookRow,
    p: &mut Progress,
    log: &mut Vec<DeliveryRow>,
    event: &EventOut,
    body: Vec<u8>,
    attempt: i32,
    outcome: &Outcome,
) -> ApiResult<()> {
    let at = now();
    let since = *p.failing_since.get_or_insert(at);
    p.last_error = Some(describe(outcome));
    if at - since < s.retry_for {
        p.attempts = attempt;
        p.next_attempt_at = at + backoff(s.backoff, attempt);
        log.push(entry(sub, event.id, &event.kind, attempt, at, "failed", outcome, Some(p.next_attempt_at)));
        return Ok(());
    }
    log.push(entry(sub, event.id, &event.kind, attempt, at, "parked", outcome, None));
    let letter = DeadLetterRow {
        webhook_id: sub.id.clone(),
        event_id: event.id,
        event: event.kind.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
        parked_at: at,
        attempts: attempt,
        last_error: p.last_error.clone(),
        resend_requested_at: None,
        resent_at: None,
    };
    let reason = format!(
        "every delivery failed from {} for the whole retry period ({} attempts at event {}; last error: {}); \
         the event is a dead letter, later events wait",
        since.and_utc().to_rfc3339(),
        attempt,
        event.id,
        p.last_error.as_deref().unwrap_or("-"),
    );
    p.cursor = event.id;
    p.attempts = 0;
    p.next_attempt_at = at;
    let id = sub.id.clone();
    db.write(move |c| {
        store::park(c, &letter)?;
        Ok(store::disable(c, &id, &reason, at)?)
    })
    .await?;
    tracing::warn!(webhook = %sub.id, event = event.id, "webhook turned off after failing for the retry period");
    Ok(())
}

/// Saves progress mid-run and renews the lease; false when the lease was lost.
async fn keep(
    db: &Db,
    id: &str,
    token: &Arc<String>,
    s: &Settings,
    p: Progress,
    log: Vec<DeliveryRow>,
) -> ApiResult<bool> {
    let (id, token, until) = (id.to_owned(), token.clone(), now() + s.lease);
    db.write(move |c| {
        store::log_deliveries(c, &log)?;
        Ok(store::save_progress(c, &id, &token, &p, false)? && store::renew(c, &id, &token, until)?)
    })
    .await
}

async fn save(
    db: &Db,
    id: &str,
    token: &Arc<String>,
    p: Progress,
    log: Vec<DeliveryRow>,
    release: bool,
) -> ApiResult<()> {
    let (id, token) = (id.to_owned(), token.clone());
    db.write(move |c| {
        store::log_deliveries(c, &log)?;
        store::save_progress(c, &id, &token, &p, release)?;
        Ok(())
    })
    .await
}

fn progress(sub: &WebhookRow) -> Progress {
    Progress {
        cursor: sub.cursor,
        attempts: sub.attempts,
        failing_since: sub.failing_since,
        next_attempt_at: sub.next_attempt_at,
        last_success_at: sub.last_success_at,
        last_error: sub.last_error.clone(),
    }
}

/// Sends one event, signed with every secret that signs now.
async fn post(
    sender: &Sender,
    sub: &WebhookRow,
    secrets: &[String],
    event_id: i64,
    kind: &str,
    body: &[u8],
    attempt: i32,
) -> Outcome {
    let t = chrono::Utc::now().timestamp();
    let mut signature = String::new();
    for secret in secrets {
        let header = signature_header(secret.as_bytes(), t, body);
        if signature.is_empty() {
            signature = header;
        } else if let Some((_, v1)) = header.split_once(',') {
            signature.push(',');
            signature.push_str(v1);
        }
    }
    let headers = [
        ("Gridlight-Signature", signature),
        ("Gridlight-Event-Id", event_id.to_string()),
        ("Gridlight-Event-Type", kind.to_owned()),
        ("Gridlight-Webhook-Id", sub.id.clone()),
        ("Gridlight-Delivery-Attempt", attempt.to_string()),
    ];
    sender.post(&sub.url, body.to_vec(), &headers).await
}

/// The wait before attempt `attempt + 1`: the base doubled per failed attempt, at most an hour,
/// each a random 50–100 % of that so that receivers coming back are not hit all at once.
fn backoff(base: Duration, attempt: i32) -> chrono::Duration {
    let doubled = base.saturating_mul(1u32 << attempt.clamp(1, 20).saturating_sub(1)).min(MAX_BACKOFF);
    let jittered = doubled.mul_f64(rand::rng().random_range(0.5..=1.0));
    // Whole microseconds, as times are stored.
    chrono::Duration::microseconds(i64::try_from(jittered.as_micros()).unwrap_or(i64::MAX / 1000))
}

fn describe(o: &Outcome) -> String {
    match (&o.error, o.status) {
        (Some(e), _) => e.clone(),
        (None, Some(code)) => format!("the receiver answered {code}"),
        (None, None) => "no answer".into(),
    }
}

#[allow(clippy::too_many_arguments)]
fn entry(
    sub: &WebhookRow,
    event_id: i64,
    kind: &str,
    attempt: i32,
    at: NaiveDateTime,
    outcome: &str,
    o: &Outcome,
    next: Option<NaiveDateTime>,
) -> DeliveryRow {
    DeliveryRow {
        id: 0,
        webhook_id: sub.id.clone(),
        event_id,
        event: kind.to_owned(),
        attempt,
        at,
        outcome: outcome.to_owned(),
        status_code: o.status.map(i32::from),
        latency_ms: i32::try_from(o.latency.as_millis()).unwrap_or(i32::MAX),
        error: (!o.delivered()).then(|| describe(o)),
        next_attempt_at: next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_an_hour() {
        let base = Duration::from_secs(5);
        for attempt in 1..=30 {
            let nominal = base.saturating_mul(1u32 << (attempt.min(20) - 1) as u32).min(MAX_BACKOFF);
            let wait = backoff(base, attempt).to_std().unwrap();
            assert!(wait <= nominal, "attempt {attempt}: {wait:?} > {nominal:?}");
            assert!(wait >= nominal / 2, "attempt {attempt}: {wait:?} < half of {nominal:?}");
        }
        assert!(backoff(base, 1).to_std().unwrap() <= Duration::from_secs(5));
        assert!(backoff(base, 30).to_std().unwrap() <= MAX_BACKOFF);
    }
}
