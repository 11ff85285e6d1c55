//! Visits: recording one (it completes the household's open task of its kind and schedules the
//! next) and correcting it within the window.

use chrono::NaiveDateTime;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::auth::{AuthUser, scope};
use crate::db::DbConn;
use crate::domain::visit::{CORRECTION_WINDOW, VisitTimeError, check_visited_at};
use crate::domain::{Finding, Location, Role, ServiceKind};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ops::{audit_event, check_version};
use crate::store::audit::{self, Event};
use crate::store::replay::{self, StoredOrigin};
use crate::store::visits::{self as store, VisitCorrection, VisitRow};
use crate::store::{JsonText, households, now, tasks};

/// What a visit says besides its household, kind and time; checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub notes: Option<String>,
    pub findings: Vec<Finding>,
    pub location: Option<Location>,
}

/// A visit to record; checked.
#[derive(Debug, Clone)]
pub struct NewVisit {
    /// The client's id, or a new one.
    pub id: String,
    pub household_id: String,
    pub kind: ServiceKind,
    /// Truncated to microseconds, as stored.
    pub visited_at: NaiveDateTime,
    pub content: Content,
}

/// The rules of the deployment that recording applies.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// How old a visit a grid worker may record (`GRIDLIGHT_VISIT_MAX_AGE_DAYS`).
    pub max_age_days: u32,
}

/// What identifies a submission's content, for telling a retry from another request.
pub fn content_hash(household_id: &str, kind: ServiceKind, visited_at: NaiveDateTime, c: &Content) -> String {
    let canonical = json!({
        "household_id": household_id,
        "kind": kind.as_str(),
        "visited_at": visited_at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        "notes": c.notes,
        "findings": c.findings,
        "location": c.location,
    });
    Sha256::digest(canonical.to_string().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Records a visit: it completes the household's open task of the same kind (early visits
/// count; the task's completion time is the visit's, not before the task was scheduled) and
/// schedules the next one from the visit's date. The same submission again from its author is
/// answered with the stored visit (`false`: nothing new); anything else with its id is a 409.
pub fn record(conn: &mut DbConn, caller: &AuthUser, v: NewVisit, policy: Policy) -> ApiResult<(bool, VisitRow)> {
    let received = now();
    let may_backfill = matches!(caller.role, Role::Secretary | Role::Admin);
    check_visited_at(v.visited_at, received, policy.max_age_days, may_backfill).map_err(|e| match e {
        VisitTimeError::InFuture => ApiError::invalid("visited_at", "in_future", "may not be in the future"),
        VisitTimeError::TooOld { max_age_days } => {
            ApiError::invalid("visited_at", "too_old", format!("may not be older than {max_age_days} days"))
        }
    })?;
    let household = scope::household(conn, caller, &v.household_id)?;
    // The household before its tasks, in the order every writer takes them (tag decisions,
    // edits, the reconciler); the other way round deadlocks on PostgreSQL.
    households::find_for_update(conn, &household.id)?;
    let hash = content_hash(&household.id, v.kind, v.visited_at, &v.content);
    let replayed = |conn: &mut DbConn| -> ApiResult<(bool, VisitRow)> {
        let stored = store::find(conn, &v.id)?.ok_or_else(|| ApiError::not_found("visit"))?;
        let origin =
            StoredOrigin { created_by: Some(stored.worker_id.clone()), digest: Some(stored.content_hash.clone()) };
        replay::check_retry(&origin, &caller.id, &hash)?;
        Ok((false, stored))
    };
    if store::find(conn, &v.id)?.is_some() {
        return replayed(conn);
    }
    if household.removed_at.is_some() {
        return Err(ApiError::household_removed());
    }
    let row = VisitRow {
        id: v.id.clone(),
        household_id: household.id.clone(),
        community_id: household.community_id.clone(),
        grid_id: household.grid_id.clone(),
        worker_id: caller.id.clone(),
        kind: v.kind,
        visited_at: v.visited_at,
        notes: v.content.notes.clone(),
        findings: JsonText(v.content.findings.clone()),
        location_lat: v.content.location.map(|l| l.lat),
        location_lng: v.content.location.map(|l| l.lng),
        location_accuracy_m: v.content.location.map(|l| l.accuracy_m),
        content_hash: hash.clone(),
        received_at: received,
        version: 1,
        updated_at: received,
    };
    if !store::insert(conn, &row)? {
        // A concurrent retry of the same submission got there first.
        return replayed(conn);
    }
    let completed = tasks::complete_with_visit(conn, &household.id, v.kind, &v.id, v.visited_at.min(received))?;
    let reconciled = tasks::household_changed(conn, &household.id)?;
    let summary = json!({"household_id": household.id, "kind": v.kind,
        "completed_task_ids": completed, "tasks_created": reconciled.created});
    audit_event(conn, caller, event("visit.recorded", &row, summary))?;
    Ok((true, row))
}

/// A correction: each field present replaces the stored one (`Some(None)` clears); checked.
#[derive(Debug, Clone, Default)]
pub struct Correction {
    pub notes: Option<Option<String>>,
    pub findings: Option<Vec<Finding>>,
    pub location: Option<Option<Location>>,
}

/// Corrects a visit's notes, findings or location: its author only, within 24 hours of its
/// receipt; afterwards it is immutable (409 `visit_locked`).
pub fn correct(
    conn: &mut DbConn,
    caller: &AuthUser,
    id: &str,
    expected: Option<&str>,
    c: Correction,
) -> ApiResult<VisitRow> {
    let v = scope::visit_for_update(conn, caller, id)?;
    if v.worker_id != caller.id {
        return Err(ApiError::Forbidden("only the visit's author may correct it".into()));
    }
    if now() > v.received_at + CORRECTION_WINDOW {
        return Err(ApiError::conflict(ErrorCode::VisitLocked, "visits can be corrected for 24 hours only"));
    }
    check_version(expected, v.version)?;
    let fields = audit::fields_set([
        ("notes", c.notes.is_some()),
        ("findings", c.findings.is_some()),
        ("location", c.location.is_some()),
    ]);
    let content = Content {
        notes: c.notes.unwrap_or_else(|| v.notes.clone()),
        findings: c.findings.unwrap_or_else(|| v.findings.0.clone()),
        location: c
            .location
            .unwrap_or_else(|| Location::from_columns(v.location_lat, v.location_lng, v.location_accuracy_m)),
    };
    let correction = VisitCorrection {
        content_hash: content_hash(&v.household_id, v.kind, v.visited_at, &content),
        notes: Some(content.notes),
        findings: Some(JsonText(content.findings)),
        location_lat: Some(content.location.map(|l| l.lat)),
        location_lng: Some(content.location.map(|l| l.lng)),
        location_accuracy_m: Some(content.location.map(|l| l.accuracy_m)),
        version: v.version + 1,
        updated_at: now(),
    };
    if !store::correct(conn, id, v.version, &correction)? {
        return Err(ApiError::internal(anyhow::anyhow!("a locked visit changed")));
    }
    audit_event(conn, caller, event("visit.corrected", &v, json!({"fields": fields})))?;
    store::find(conn, id)?.ok_or_else(|| ApiError::not_found("visit"))
}

/// The audit event of a visit.
fn event<'a>(action: &'a str, visit: &'a VisitRow, summary: Value) -> Event<'a> {
    Event { action, entity_type: "visit", entity_id: Some(&visit.id), community_id: Some(&visit.community_id), summary }
}
