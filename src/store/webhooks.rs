//! Webhook subscriptions, their delivery state, delivery log and dead letters (src/webhooks
//! delivers; src/ops/webhooks changes subscriptions).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::keys::{self, WEBHOOK_SECRET};
use crate::db::schema::{webhook_dead_letters, webhook_deliveries, webhooks};
use crate::store::data_keys;

/// A subscription as stored, without its secrets.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhooks)]
pub struct WebhookRow {
    pub id: String,
    pub community_id: Option<String>,
    pub url: String,
    /// A JSON array of event types; empty: every type.
    pub types: String,
    pub active: bool,
    pub description: Option<String>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i32,
    pub cursor: i64,
    pub attempts: i32,
    pub failing_since: Option<NaiveDateTime>,
    pub next_attempt_at: NaiveDateTime,
    pub last_success_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub disabled_reason: Option<String>,
    pub previous_secret_until: Option<NaiveDateTime>,
}

impl WebhookRow {
    /// The event types it takes (`None`: all).
    pub fn type_list(&self) -> Option<Vec<String>> {
        let types: Vec<String> = serde_json::from_str(&self.types).unwrap_or_default();
        (!types.is_empty()).then_some(types)
    }
}

/// A new subscription; its secret in clear (sealed on the way in).
pub struct NewWebhook<'a> {
    pub id: &'a str,
    pub community_id: Option<&'a str>,
    pub url: &'a str,
    pub types: &'a str,
    pub secret: &'a str,
    pub active: bool,
    pub description: Option<&'a str>,
    pub created_by: &'a str,
    pub at: NaiveDateTime,
    pub cursor: i64,
}

pub fn insert(conn: &mut DbConn, w: &NewWebhook<'_>) -> QueryResult<()> {
    let sealed = data_keys()?.seal(WEBHOOK_SECRET, w.id, w.secret);
    diesel::insert_into(webhooks::table)
        .values((
            webhooks::id.eq(w.id),
            webhooks::community_id.eq(w.community_id),
            webhooks::url.eq(w.url),
            webhooks::types.eq(w.types),
            webhooks::secret.eq(sealed),
            webhooks::active.eq(w.active),
            webhooks::description.eq(w.description),
            webhooks::created_by.eq(w.created_by),
            webhooks::created_at.eq(w.at),
            webhooks::updated_at.eq(w.at),
            webhooks::version.eq(1),
            webhooks::cursor.eq(w.cursor),
            webhooks::attempts.eq(0),
            webhooks::next_attempt_at.eq(w.at),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConn, id: &str) -> QueryResult<Option<WebhookRow>> {
    webhooks::table.find(id).select(WebhookRow::as_select()).first(conn).optional()
}

pub fn find_for_update(conn: &mut DbConn, id: &str) -> QueryResult<Option<WebhookRow>> {
    crate::locked_first!(conn, webhooks::table.find(id).select(WebhookRow::as_select()))
}

/// A page of subscriptions (of one community, or all), by id.
pub fn list(
    conn: &mut DbConn,
    community: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<WebhookRow>> {
    let mut q = webhooks::table.select(WebhookRow::as_select()).into_boxed();
    if let Some(c) = community {
        q = q.filter(webhooks::community_id.eq(c.to_owned()));
    }
    if let Some(a) = after {
        q = q.filter(webhooks::id.gt(a.to_owned()));
    }
    q.order(webhooks::id.asc()).limit(limit).load(conn)
}

/// What an edit sets (each `None`: left as it is).
#[derive(Debug, Default, Clone, AsChangeset)]
#[diesel(table_name = webhooks)]
pub struct WebhookChanges {
    pub url: Option<String>,
    pub types: Option<String>,
    pub active: Option<bool>,
    pub description: Option<Option<String>>,
    pub disabled_reason: Option<Option<String>>,
    pub attempts: Option<i32>,
    pub failing_since: Option<Option<NaiveDateTime>>,
    pub next_attempt_at: Option<NaiveDateTime>,
}

/// Applies an edit to the subscription at `version`; false when it is at another.
pub fn update(conn: &mut DbConn, id: &str, version: i32, at: NaiveDateTime, c: &WebhookChanges) -> QueryResult<bool> {
    let n = diesel::update(webhooks::table.filter(webhooks::id.eq(id)).filter(webhooks::version.eq(version)))
        .set((c, webhooks::version.eq(version + 1), webhooks::updated_at.eq(at)))
        .execute(conn)?;
    Ok(n == 1)
}

pub fn delete(conn: &mut DbConn, id: &str) -> QueryResult<()> {
    diesel::delete(webhook_deliveries::table.filter(webhook_deliveries::webhook_id.eq(id))).execute(conn)?;
    diesel::delete(webhook_dead_letters::table.filter(webhook_dead_letters::webhook_id.eq(id))).execute(conn)?;
    diesel::delete(webhooks::table.find(id)).execute(conn)?;
    Ok(())
}

/// A new secret; the one it replaces keeps signing alongside until `previous_until`.
pub fn rotate_secret(
    conn: &mut DbConn,
    id: &str,
    secret: &str,
    previous_until: NaiveDateTime,
    at: NaiveDateTime,
) -> QueryResult<()> {
    let current: String = webhooks::table.find(id).select(webhooks::secret).first(conn)?;
    let sealed = data_keys()?.seal(WEBHOOK_SECRET, id, secret);
    diesel::update(webhooks::table.find(id))
        .set((
            webhooks::secret.eq(sealed),
            webhooks::previous_secret.eq(Some(current)),
            webhooks::previous_secret_until.eq(Some(previous_until)),
            webhooks::version.eq(webhooks::version + 1),
            webhooks::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

/// The secrets a delivery is signed with now: the current one, and the one it replaced while
/// that still counts.
pub fn signing_secrets(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> QueryResult<Vec<String>> {
    let (current, previous, until): (String, Option<String>, Option<NaiveDateTime>) = webhooks::table
        .find(id)
        .select((webhooks::secret, webhooks::previous_secret, webhooks::previous_secret_until))
        .first(conn)?;
    let ring = data_keys()?;
    let mut out = vec![ring.open(WEBHOOK_SECRET, id, &current).map_err(keys::to_diesel)?];
    if let (Some(p), Some(u)) = (previous, until)
        && u > now
    {
        out.push(ring.open(WEBHOOK_SECRET, id, &p).map_err(keys::to_diesel)?);
    }
    Ok(out)
}

/// Re-seals every secret with the current key (a key rotation).
pub fn reseal_secrets(conn: &mut DbConn, ring: &keys::KeyRing) -> QueryResult<usize> {
    let rows: Vec<(String, String, Option<String>)> =
        webhooks::table.select((webhooks::id, webhooks::secret, webhooks::previous_secret)).load(conn)?;
    let current = ring.current().id().to_owned();
    let mut n = 0;
    for (id, secret, previous) in rows {
        let stale = |v: &str| keys::KeyRing::key_of(v) != Some(current.as_str());
        if !stale(&secret) && previous.as_deref().is_none_or(|p| !stale(p)) {
            continue;
        }
        let reseal = |v: &str| -> QueryResult<String> {
            let clear = ring.open(WEBHOOK_SECRET, &id, v).map_err(keys::to_diesel)?;
            Ok(ring.seal(WEBHOOK_SECRET, &id, &clear))
        };
        let secret = reseal(&secret)?;
        let previous = previous.as_deref().map(reseal).transpose()?;
        diesel::update(webhooks::table.find(&id))
            .set((webhooks::secret.eq(secret), webhooks::previous_secret.eq(previous)))
            .execute(conn)?;
        n += 1;
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// Delivery: leases, progress, the log, dead letters.

/// The subscriptions that are due, have something to send (active ones: events up to `high`
/// after their cursor; any: dead letters asked to be re-sent) and are not held by a live lease,
/// oldest due first.
macro_rules! due {
    ($now:expr, $high:expr) => {
        webhooks::table
            .filter(webhooks::next_attempt_at.le($now))
            .filter(webhooks::lease_until.is_null().or(webhooks::lease_until.lt($now)))
            .filter(
                webhooks::active.eq(true).and(webhooks::cursor.lt($high)).or(diesel::dsl::exists(
                    webhook_dead_letters::table
                        .filter(webhook_dead_letters::webhook_id.eq(webhooks::id))
                        .filter(webhook_dead_letters::resend_requested_at.is_not_null())
                        .filter(webhook_dead_letters::resent_at.is_null()),
                )),
            )
            .order(webhooks::next_attempt_at.asc())
            .select(webhooks::id)
    };
}

/// Whether any subscription has work now (a read, before [`claim`] takes a write).
pub fn any_due(conn: &mut DbConn, now: NaiveDateTime, high: i64) -> QueryResult<bool> {
    let first: Vec<String> = due!(now, high).limit(1).load(conn)?;
    Ok(!first.is_empty())
}

/// Takes up to `limit` subscriptions with work (see `due!`) for `token` until `until`. On
/// PostgreSQL rows another instance is claiming are skipped (`FOR UPDATE SKIP LOCKED`), so two
/// instances never hold the same subscription.
pub fn claim(
    conn: &mut DbConn,
    now: NaiveDateTime,
    until: NaiveDateTime,
    token: &str,
    high: i64,
    limit: i64,
) -> QueryResult<Vec<WebhookRow>> {
    let ids: Vec<String> = match conn {
        DbConn::Postgres(c) => due!(now, high).limit(limit).for_update().skip_locked().load(c)?,
        DbConn::Sqlite(c) => due!(now, high).limit(limit).load(c)?,
    };
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    diesel::update(webhooks::table.filter(webhooks::id.eq_any(&ids)))
        .set((webhooks::lease_until.eq(Some(until)), webhooks::lease_token.eq(Some(token))))
        .execute(conn)?;
    webhooks::table.filter(webhooks::id.eq_any(&ids)).select(WebhookRow::as_select()).load(conn)
}

/// Extends a lease still held by `token`; false when it was lost.
pub fn renew(conn: &mut DbConn, id: &str, token: &str, until: NaiveDateTime) -> QueryResult<bool> {
    let n = diesel::update(webhooks::table.filter(webhooks::id.eq(id)).filter(webhooks::lease_token.eq(token)))
        .set(webhooks::lease_until.eq(Some(until)))
        .execute(conn)?;
    Ok(n == 1)
}

/// Releases every lease (SQLite at start-up: one server uses the file, none is delivering).
pub fn release_all(conn: &mut DbConn) -> QueryResult<usize> {
    diesel::update(webhooks::table.filter(webhooks::lease_token.is_not_null()))
        .set((webhooks::lease_until.eq(None::<NaiveDateTime>), webhooks::lease_token.eq(None::<String>)))
        .execute(conn)
}

/// Where a delivery run left a subscription.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = webhooks, treat_none_as_null = true)]
pub struct Progress {
    pub cursor: i64,
    pub attempts: i32,
    pub failing_since: Option<NaiveDateTime>,
    pub next_attempt_at: NaiveDateTime,
    pub last_success_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
}

/// Saves a run's progress if `token` still holds the lease (else another instance took over:
/// what it does stands); `release` ends the lease. False when the lease was lost.
pub fn save_progress(conn: &mut DbConn, id: &str, token: &str, p: &Progress, release: bool) -> QueryResult<bool> {
    let target = webhooks::table.filter(webhooks::id.eq(id)).filter(webhooks::lease_token.eq(token));
    let n = if release {
        diesel::update(target)
            .set((p, webhooks::lease_until.eq(None::<NaiveDateTime>), webhooks::lease_token.eq(None::<String>)))
            .execute(conn)?
    } else {
        diesel::update(target).set(p).execute(conn)?
    };
    Ok(n == 1)
}

/// Turns a subscription off after it failed for the whole retry period, saying why.
pub fn disable(conn: &mut DbConn, id: &str, reason: &str, at: NaiveDateTime) -> QueryResult<()> {
    diesel::update(webhooks::table.find(id))
        .set((
            webhooks::active.eq(false),
            webhooks::disabled_reason.eq(Some(reason)),
            webhooks::version.eq(webhooks::version + 1),
            webhooks::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

/// One delivery attempt, as logged.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_deliveries)]
pub struct DeliveryRow {
    #[diesel(skip_insertion)]
    pub id: i64,
    pub webhook_id: String,
    pub event_id: i64,
    pub event: String,
    pub attempt: i32,
    pub at: NaiveDateTime,
    pub outcome: String,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
    pub next_attempt_at: Option<NaiveDateTime>,
}

pub fn log_deliveries(conn: &mut DbConn, rows: &[DeliveryRow]) -> QueryResult<()> {
    for chunk in rows.chunks(500) {
        crate::db_run!(conn, |c| diesel::insert_into(webhook_deliveries::table).values(chunk).execute(c))?;
    }
    Ok(())
}

/// A page of a subscription's delivery log, newest first.
pub fn deliveries(
    conn: &mut DbConn,
    webhook_id: &str,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<DeliveryRow>> {
    let mut q = webhook_deliveries::table
        .filter(webhook_deliveries::webhook_id.eq(webhook_id.to_owned()))
        .select(DeliveryRow::as_select())
        .into_boxed();
    if let Some(b) = before {
        q = q.filter(webhook_deliveries::id.lt(b));
    }
    q.order(webhook_deliveries::id.desc()).limit(limit).load(conn)
}

/// Forgets delivery log entries older than `before`; returns how many.
pub fn prune_deliveries(conn: &mut DbConn, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(webhook_deliveries::table.filter(webhook_deliveries::at.lt(before))).execute(conn)
}

/// An event given up on.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_dead_letters)]
pub struct DeadLetterRow {
    pub webhook_id: String,
    pub event_id: i64,
    pub event: String,
    pub body: String,
    pub parked_at: NaiveDateTime,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub resend_requested_at: Option<NaiveDateTime>,
    pub resent_at: Option<NaiveDateTime>,
}

pub fn park(conn: &mut DbConn, row: &DeadLetterRow) -> QueryResult<()> {
    crate::db_run!(conn, |c| diesel::insert_into(webhook_dead_letters::table)
        .values(row)
        .on_conflict((webhook_dead_letters::webhook_id, webhook_dead_letters::event_id))
        .do_nothing()
        .execute(c))?;
    Ok(())
}

/// A page of a subscription's dead letters, oldest event first; `waiting`: only those not
/// re-sent yet.
pub fn dead_letters(
    conn: &mut DbConn,
    webhook_id: &str,
    after: Option<i64>,
    waiting: bool,
    limit: i64,
) -> QueryResult<Vec<DeadLetterRow>> {
    let mut q = webhook_dead_letters::table
        .filter(webhook_dead_letters::webhook_id.eq(webhook_id.to_owned()))
        .select(DeadLetterRow::as_select())
        .into_boxed();
    if let Some(a) = after {
        q = q.filter(webhook_dead_letters::event_id.gt(a));
    }
    if waiting {
        q = q.filter(webhook_dead_letters::resent_at.is_null());
    }
    q.order(webhook_dead_letters::event_id.asc()).limit(limit).load(conn)
}

/// Asks for the dead letters not yet re-sent (those of `event_ids`, or all) to be sent again;
/// returns how many.
pub fn request_resend(
    conn: &mut DbConn,
    webhook_id: &str,
    event_ids: Option<&[i64]>,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    let mut q = diesel::update(webhook_dead_letters::table)
        .filter(webhook_dead_letters::webhook_id.eq(webhook_id.to_owned()))
        .filter(webhook_dead_letters::resent_at.is_null())
        .into_boxed();
    if let Some(ids) = event_ids {
        q = q.filter(webhook_dead_letters::event_id.eq_any(ids.to_vec()));
    }
    let n = q.set(webhook_dead_letters::resend_requested_at.eq(Some(at))).execute(conn)?;
    if n > 0 {
        // Sent at the next tick, not after the subscription's backoff.
        diesel::update(webhooks::table.find(webhook_id)).set(webhooks::next_attempt_at.eq(at)).execute(conn)?;
    }
    Ok(n)
}

/// The dead letters waiting to be re-sent, oldest event first.
pub fn resends(conn: &mut DbConn, webhook_id: &str, limit: i64) -> QueryResult<Vec<DeadLetterRow>> {
    webhook_dead_letters::table
        .filter(webhook_dead_letters::webhook_id.eq(webhook_id))
        .filter(webhook_dead_letters::resend_requested_at.is_not_null())
        .filter(webhook_dead_letters::resent_at.is_null())
        .order(webhook_dead_letters::event_id.asc())
        .limit(limit)
        .select(DeadLetterRow::as_select())
        .load(conn)
}

/// Records how a re-send went: sent (`resent_at` set), or failed again (left for another
/// request, with its error).
pub fn resent(
    conn: &mut DbConn,
    webhook_id: &str,
    event_id: i64,
    ok: bool,
    error: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<()> {
    let target = webhook_dead_letters::table
        .filter(webhook_dead_letters::webhook_id.eq(webhook_id))
        .filter(webhook_dead_letters::event_id.eq(event_id));
    if ok {
        diesel::update(target).set(webhook_dead_letters::resent_at.eq(Some(at))).execute(conn)?;
    } else {
        diesel::update(target)
            .set((
                webhook_dead_letters::resend_requested_at.eq(None::<NaiveDateTime>),
                webhook_dead_letters::last_error.eq(error),
                webhook_dead_letters::attempts.eq(webhook_dead_letters::attempts + 1),
            ))
            .execute(conn)?;
    }
    Ok(())
}
