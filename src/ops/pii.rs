//! The audited reveal of personal data. Every other answer masks ID numbers, birth dates and
//! phones (see [`crate::domain::mask`]); the full values go to the community's secretary and the
//! grid's workers only, for a stated reason, and each reveal is an audit event with that reason.

use crate::auth::{AuthUser, scope};
use crate::db::DbConn;
use crate::domain::Role;
use crate::error::ApiResult;
use crate::ops::audit_event;
use crate::store::audit::Event;
use crate::store::households::{HouseholdRow, MemberRow};

/// A member with their full values, for `reason` (checked: visible text, trimmed).
pub fn reveal_member(conn: &mut DbConn, caller: &AuthUser, id: &str, reason: &str) -> ApiResult<MemberRow> {
    let (member, household) = scope::member(conn, caller, id)?;
    revealed(conn, caller, &household, reason, ("member.pii_revealed", "member", &member.id))?;
    Ok(member)
}

/// A household with its full phone, for `reason` (checked: visible text, trimmed).
pub fn reveal_household(conn: &mut DbConn, caller: &AuthUser, id: &str, reason: &str) -> ApiResult<HouseholdRow> {
    let household = scope::household(conn, caller, id)?;
    revealed(conn, caller, &household, reason, ("household.pii_revealed", "household", &household.id))?;
    Ok(household)
}

/// The role check and the audit event every reveal shares. Administrators oversee communities
/// but are no one's secretary: they see masked values only (403).
fn revealed(
    conn: &mut DbConn,
    caller: &AuthUser,
    household: &HouseholdRow,
    reason: &str,
    (action, entity_type, entity_id): (&str, &str, &str),
) -> ApiResult<()> {
    caller.require(&[Role::Secretary, Role::GridWorker])?;
    let summary = serde_json::json!({"reason": reason, "household_id": household.id});
    let community_id = Some(household.community_id.as_str());
    audit_event(conn, caller, Event { action, entity_type, entity_id: Some(entity_id), community_id, summary })
}

/// A roster export with the full values, for `reason` (checked): secretaries only, like a
/// reveal; one audit event for the export, naming how many households it holds.
pub fn reveal_export(
    conn: &mut DbConn,
    caller: &AuthUser,
    community_id: &str,
    grid_id: Option<&str>,
    reason: &str,
    households: usize,
) -> ApiResult<()> {
    caller.require(&[Role::Secretary])?;
    let summary = serde_json::json!({"reason": reason, "grid_id": grid_id, "households": households});
    let event = Event {
        action: "export.pii_revealed",
        entity_type: "community",
        entity_id: Some(community_id),
        community_id: Some(community_id),
        summary,
    };
    audit_event(conn, caller, event)
}
