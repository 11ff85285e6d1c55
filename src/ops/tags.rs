//! The traffic light: proposing a tag, deciding a proposal, and [`apply_tag`], the one place a
//! household's tag changes.
//!
//! A grid worker proposes a tag and a secretary (or an administrator) approves or rejects it; a
//! secretary's own setting is recorded as a change approved at once. A household has at most
//! one pending proposal.

use chrono::{Days, NaiveDateTime};
use serde_json::{Value, json};

use crate::auth::{AuthUser, scope};
use crate::db::DbConn;
use crate::domain::{Role, Tag, TagChangeStatus};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ops::{self, audit_event, check_version};
use crate::store::audit::{self, Actor, Event};
use crate::store::households::{self, HouseholdRow};
use crate::store::tags::{self as store, TagChangeRow, TagFields};
use crate::store::{JsonText, communities, new_id, now, plans, tasks};

/// The roles that decide proposals (and set tags directly).
pub const DECIDERS: [Role; 2] = [Role::Admin, Role::Secretary];

/// A tag to propose or set; checked: reasons are codes of the catalogue, each once, in
/// catalogue order, and red and yellow have at least one.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub to_tag: Tag,
    pub reasons: Vec<String>,
    pub note: Option<String>,
}

/// A decision on a pending proposal; checked.
#[derive(Debug, Clone)]
pub enum Decision {
    Approve {
        note: Option<String>,
    },
    /// A rejection says why.
    Reject {
        note: String,
    },
}

/// The same tag with the same reasons (in any order) would change nothing.
fn unchanged(current: &HouseholdRow, to_tag: Tag, reasons: &[String]) -> bool {
    let mut now_reasons = current.reasons();
    now_reasons.sort();
    let mut new_reasons = reasons.to_vec();
    new_reasons.sort();
    current.tag == to_tag && now_reasons == new_reasons
}

/// Proposes a tag (grid workers: the change waits for a decision, `pending`), or sets it at
/// once (secretaries and administrators: recorded as `approved` by the caller). With
/// `expected` (the household's version the client saw), a change based on an old version is
/// refused (412).
pub fn propose(
    conn: &mut DbConn,
    caller: &AuthUser,
    household_id: &str,
    expected: Option<&str>,
    p: Proposal,
) -> ApiResult<TagChangeRow> {
    let current = scope::household_for_update(conn, caller, household_id)?;
    check_version(expected, current.version)?;
    if unchanged(&current, p.to_tag, &p.reasons) {
        return Err(ApiError::invalid(
            "to_tag",
            "unchanged",
            format!("the household is already {} with these reasons", current.tag),
        ));
    }
    let mut row = TagChangeRow {
        id: new_id(),
        household_id: current.id.clone(),
        community_id: current.community_id.clone(),
        grid_id: current.grid_id.clone(),
        from_tag: current.tag,
        to_tag: p.to_tag,
        reasons: JsonText(p.reasons),
        note: p.note,
        proposed_by: caller.id.clone(),
        proposed_at: now(),
        status: TagChangeStatus::Pending,
        decided_by: None,
        decided_at: None,
        decision_note: None,
    };
    if caller.role == Role::GridWorker {
        if !store::insert_pending(conn, &row)? {
            return Err(ApiError::conflict(
                ErrorCode::ProposalPending,
                "this household already has a pending tag change; it must be approved or rejected before \
                 another is proposed",
            ));
        }
        audit_event(conn, caller, event("tag_change.proposed", &row, json!({})))?;
        return Ok(row);
    }
    row.from_tag = apply_change(conn, caller, &row, row.proposed_at)?;
    row.status = TagChangeStatus::Approved;
    row.decided_by = Some(caller.id.clone());
    row.decided_at = Some(row.proposed_at);
    store::insert(conn, &row)?;
    audit_event(conn, caller, event("tag_change.approved", &row, json!({"direct": true})))?;
    Ok(row)
}

/// Approves (applying its tag, in the same transaction) or rejects a pending proposal:
/// secretaries of the community and administrators.
pub fn decide(conn: &mut DbConn, caller: &AuthUser, id: &str, decision: Decision) -> ApiResult<TagChangeRow> {
    // Workers never decide, in their own grids or elsewhere: the role first, which says
    // nothing about the change.
    caller.require(&DECIDERS)?;
    let (row, household) = scope::tag_change_for_update(conn, caller, id)?;
    if row.status != TagChangeStatus::Pending {
        return Err(ApiError::conflict(
            ErrorCode::AlreadyDecided,
            format!("the tag change has already been {}", row.status),
        ));
    }
    let (approve, note) = match decision {
        Decision::Approve { note } => (true, note),
        Decision::Reject { note } => (false, Some(note)),
    };
    // The rule of proposing holds for deciding: applying what the household already has (a
    // secretary set the same tag and reasons meanwhile) would write an empty history entry and
    // restart the review period. Such a proposal is rejected, with a note.
    if approve && unchanged(&household, row.to_tag, &row.reasons) {
        return Err(ApiError::invalid(
            "to_tag",
            "unchanged",
            format!("the household is already {} with these reasons; reject the proposal instead", household.tag),
        ));
    }
    let at = now();
    let from = if approve { apply_change(conn, caller, &row, at)? } else { row.from_tag };
    if !store::decide(conn, id, approve, &caller.id, at, note.as_deref(), from)? {
        return Err(ApiError::conflict(ErrorCode::AlreadyDecided, "the tag change was decided meanwhile"));
    }
    let row = store::find(conn, id)?.ok_or_else(|| ApiError::not_found("tag change"))?;
    let action = if approve { "tag_change.approved" } else { "tag_change.rejected" };
    audit_event(conn, caller, event(action, &row, json!({"note": note, "direct": false})))?;
    Ok(row)
}

/// Applies a change's tag to its household, decided by the caller at `at`; returns the tag it
/// replaced.
fn apply_change(conn: &mut DbConn, caller: &AuthUser, row: &TagChangeRow, at: NaiveDateTime) -> ApiResult<Tag> {
    let applied = Applied {
        to_tag: row.to_tag,
        reasons: &row.reasons,
        note: row.note.as_deref(),
        tag_change_id: &row.id,
        decided_by: &caller.id,
        at,
    };
    Ok(apply_tag(conn, &caller.actor(), &row.household_id, &applied)?.0)
}

/// The audit event of a tag change: its household, the tags and reasons, and `extra`.
fn event<'a>(action: &'a str, row: &'a TagChangeRow, extra: Value) -> Event<'a> {
    let mut summary = json!({
        "household_id": row.household_id,
        "from": row.from_tag,
        "to": row.to_tag,
        "reasons": row.reasons.0,
    });
    if let (Some(summary), Value::Object(extra)) = (summary.as_object_mut(), extra) {
        summary.extend(extra);
    }
    Event {
        action,
        entity_type: "tag_change",
        entity_id: Some(&row.id),
        community_id: Some(&row.community_id),
        summary,
    }
}

/// What an applied tag says: the tag, its reasons and note, and who decided it when.
pub struct Applied<'a> {
    pub to_tag: Tag,
    pub reasons: &'a [String],
    pub note: Option<&'a str>,
    pub tag_change_id: &'a str,
    pub decided_by: &'a str,
    pub at: NaiveDateTime,
}

/// Applies a tag to a household: the one place where a household's tag changes, used by direct
/// settings and by approvals, inside their transaction. Locks the household, writes the tag,
/// its reasons and note, who set it and when, and the review date (today in the community's
/// timezone + the tag's review interval in the community's plan), bumps the version,
/// re-establishes the task invariant and audits. Returns the tag replaced and the household as
/// it is now. Removed households are not re-tagged (409 `household_removed`).
pub fn apply_tag(
    conn: &mut DbConn,
    actor: &Actor,
    household_id: &str,
    a: &Applied<'_>,
) -> ApiResult<(Tag, HouseholdRow)> {
    let current = households::find_for_update(conn, household_id)?.ok_or_else(|| ApiError::not_found("household"))?;
    if current.removed_at.is_some() {
        return Err(ApiError::conflict(
            ErrorCode::HouseholdRemoved,
            "the household has been removed; its tag can no longer change",
        ));
    }
    let from = current.tag;
    let days = plans::review_interval_days(conn, &current.community_id, a.to_tag)?;
    let review_due_on = communities::today(conn, &current.community_id)?
        .checked_add_days(Days::new(u64::from(days)))
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("review date out of range")))?;
    let reasons = serde_json::to_string(a.reasons).map_err(ApiError::internal)?;
    let fields = TagFields {
        tag: a.to_tag.as_str(),
        tag_reasons: &reasons,
        tag_note: a.note,
        tag_set_at: a.at,
        tag_set_by: a.decided_by,
        tag_review_due_on: review_due_on,
        version: current.version + 1,
        updated_at: a.at,
    };
    if !store::set_household_tag(conn, household_id, current.version, &fields)? {
        return Err(ApiError::conflict(ErrorCode::ConcurrentChange, "the household changed meanwhile; try again"));
    }
    let summary = json!({
        "tag_change_id": a.tag_change_id,
        "from": from.as_str(),
        "to": a.to_tag.as_str(),
        "reasons": a.reasons,
        "review_due_on": review_due_on,
        "version": current.version + 1,
    });
    audit::record(conn, actor, ops::households::event("household.tag_applied", &current, summary))?;
    tasks::household_changed(conn, household_id)?;
    let row = households::find(conn, household_id)?.ok_or_else(|| ApiError::not_found("household"))?;
    Ok((from, row))
}
