//! Audit events: written in the same transaction as the change they describe.

use diesel::prelude::*;
use serde_json::Value;

use super::{new_id, now};
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
    diesel::insert_into(audit_events::table)
        .values((
            audit_events::id.eq(new_id()),
            audit_events::at.eq(now()),
            audit_events::actor_id.eq(actor.user_id.as_deref()),
            audit_events::action.eq(event.action),
            audit_events::entity_type.eq(event.entity_type),
            audit_events::entity_id.eq(event.entity_id),
            audit_events::community_id.eq(event.community_id),
            audit_events::summary.eq(event.summary.to_string()),
            audit_events::request_id.eq(actor.request_id.as_deref()),
        ))
        .execute(conn)?;
    Ok(())
}
