//! The audited reveal of personal data. Every other answer masks ID numbers, birth dates and
//! phones (see [`crate::domain::mask`]); the full values go to the community's secretary and the
//! grid's workers only, for a stated reason, and each reveal is an audit event with that reason.

use crate::auth::{AuthUser, scope};
use crate::db::DbConn;
use crate::domain::Role;
use crate::error::ApiResult;
use crate::ops::audit_event;
use crate::store::audit::Event;
use crate::store::audit::EventRow;
use crate::store::households::{HouseholdRow, MemberRow};
use crate::store::record as store;
use crate::store::tags::TagChangeRow;
use crate::store::tasks::TaskRow;
use crate::store::visits::VisitRow;

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

/// Everything held about one household, in clear.
pub struct Record {
    pub household: HouseholdRow,
    pub members: Vec<MemberRow>,
    pub tag_changes: Vec<TagChangeRow>,
    pub visits: Vec<VisitRow>,
    pub tasks: Vec<TaskRow>,
    /// Who was given its personal data in clear, and when (this copy included).
    pub reveals: Vec<EventRow>,
}

/// A complete copy of what is held about a household, for a resident's access request (PIPL
/// art. 45): the community's secretary only (workers and administrators 403; outside the
/// caller's scope 404), audited with its reason like a reveal.
pub fn household_record(conn: &mut DbConn, caller: &AuthUser, id: &str, reason: &str) -> ApiResult<Record> {
    let household = scope::household(conn, caller, id)?;
    caller.require(&[Role::Secretary])?;
    audit_event(
        conn,
        caller,
        Event {
            action: "household.record_copied",
            entity_type: "household",
            entity_id: Some(household.id.as_str()),
            community_id: Some(household.community_id.as_str()),
            summary: serde_json::json!({"reason": reason, "household_id": household.id}),
        },
    )?;
    let members = store::all_members(conn, &household.id)?;
    let member_ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    Ok(Record {
        tag_changes: store::tag_changes(conn, &household.id)?,
        visits: store::visits(conn, &household.id)?,
        tasks: store::tasks(conn, &household.id)?,
        reveals: store::reveals(conn, &household.id, &member_ids)?,
        members,
        household,
    })
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
