//! Audit events: written in the same transaction as the change they describe.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::Value;

use super::{JsonText, Narrow, new_id, now};
use crate::db::DbConn;
use crate::db::schema::audit_events;

/// Who acts, and in which request.
#[derive(Clone, Debug, Default)]
pub struct Actor {
    pub user_id: Option<String>,
    pub request_id: Option<String>,
}

pub struct Event<'a> {
    pub action: &'a str,
    pub entity_type: &'a str,
    pub entity_id: Option<&'a str>,
    pub community_id: Option<&'a str>,
    /// What changed; never a password, a token, or an unmasked ID number or phone.
    pub summary: Value,
}

/// The names of the fields a PATCH set, for an audit summary: `[("phone", input.phone.is_some()), …]`.
pub fn fields_set<const N: usize>(fields: [(&'static str, bool); N]) -> Vec<&'static str> {
    fields.into_iter().filter_map(|(name, set)| set.then_some(name)).collect()
}

pub fn record(conn: &mut DbConn, actor: &Actor, event: Event<'_>) -> QueryResult<()> {
    record_many(conn, actor, std::slice::from_ref(&event))
}

/// Writes several events in one statement (per slice), in order (ids are UUIDv7).
pub fn record_many(conn: &mut DbConn, actor: &Actor, events: &[Event<'_>]) -> QueryResult<()> {
    let at = now();
    let rows: Vec<_> = events
        .iter()
        .map(|event| {
            (
                audit_events::id.eq(new_id()),
                audit_events::at.eq(at),
                audit_events::actor_id.eq(actor.user_id.as_deref()),
                audit_events::action.eq(event.action),
                audit_events::entity_type.eq(event.entity_type),
                audit_events::entity_id.eq(event.entity_id),
                audit_events::community_id.eq(event.community_id),
                audit_events::summary.eq(event.summary.to_string()),
                audit_events::request_id.eq(actor.request_id.as_deref()),
            )
        })
        .collect();
    // 9 binds a row: far under either backend's limit.
    for slice in rows.chunks(500) {
        crate::db_run!(&mut *conn, |c| diesel::insert_into(audit_events::table).values(slice).execute(c))?;
    }
    Ok(())
}

/// An event as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_events)]
pub struct EventRow {
    pub id: String,
    pub at: NaiveDateTime,
    pub actor_id: Option<String>,
    pub action: String,
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub community_id: Option<String>,
    pub summary: JsonText<Value>,
    pub request_id: Option<String>,
}

/// Which events a list shows; `None` leaves a criterion out.
#[derive(Debug, Default)]
pub struct ListFilter {
    /// Only the events of this community (what a secretary reads).
    pub community_id: Option<String>,
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    pub actor_id: Option<String>,
    /// At or after.
    pub from: Option<NaiveDateTime>,
    /// Before.
    pub to: Option<NaiveDateTime>,
    /// Only ids before this one (keyset pagination, newest first).
    pub before: Option<String>,
}

/// Events newest first (ids are UUIDv7, so by id).
pub fn list(conn: &mut DbConn, filter: &ListFilter, limit: i64) -> QueryResult<Vec<EventRow>> {
    audit_events::table
        .select(EventRow::as_select())
        .order(audit_events::id.desc())
        .limit(limit)
        .into_boxed()
        .narrow(filter.community_id.as_ref(), |q, c| q.filter(audit_events::community_id.eq(c)))
        .narrow(filter.entity_type.as_ref(), |q, t| q.filter(audit_events::entity_type.eq(t)))
        .narrow(filter.entity_id.as_ref(), |q, e| q.filter(audit_events::entity_id.eq(e)))
        .narrow(filter.actor_id.as_ref(), |q, a| q.filter(audit_events::actor_id.eq(a)))
        .narrow(filter.from, |q, from| q.filter(audit_events::at.ge(from)))
        .narrow(filter.to, |q, to| q.filter(audit_events::at.lt(to)))
        .narrow(filter.before.as_ref(), |q, before| q.filter(audit_events::id.lt(before)))
        .load(conn)
}
