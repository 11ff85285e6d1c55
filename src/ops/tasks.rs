//! Tasks: a secretary reassigns an open task or cancels it (the next one is scheduled one
//! interval later). Visits complete tasks ([`crate::ops::visits`]); the reconcile creates them.

use chrono::Duration;
use serde_json::{Value, json};

use crate::auth::{AuthUser, scope};
use crate::db::DbConn;
use crate::domain::{Role, TaskStatus};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ops::audit_event;
use crate::store::audit::Event;
use crate::store::tasks::{self as store, TaskRow};
use crate::store::{communities, households, now, plans};

/// What one request changes on a task; checked: at least one of the two. Both: reassigned,
/// then cancelled.
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// A worker of the task's grid, or `Some(None)`: nobody (the unassigned queue).
    pub assignee: Option<Option<String>>,
    /// Cancels the task, saying why.
    pub cancel_reason: Option<String>,
}

/// Applies a [`Change`]; returns the task as it is now.
pub fn change(conn: &mut DbConn, caller: &AuthUser, id: &str, c: Change) -> ApiResult<TaskRow> {
    if let Some(assignee) = c.assignee {
        reassign(conn, caller, id, assignee.as_deref())?;
    }
    if let Some(reason) = c.cancel_reason {
        cancel(conn, caller, id, &reason)?;
    }
    store::find(conn, id)?.ok_or_else(|| ApiError::not_found("task"))
}

/// An open task to change (the community's secretary, or an administrator), locked.
fn open_task(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<TaskRow> {
    let task = scope::task_for_update(conn, caller, id)?;
    caller.require(&[Role::Admin, Role::Secretary])?;
    if task.status != TaskStatus::Open {
        return Err(ApiError::conflict(ErrorCode::TaskClosed, format!("the task is {}, not open", task.status)));
    }
    Ok(task)
}

/// Gives an open task to an active worker of its grid, or to nobody (the unassigned queue).
pub fn reassign(conn: &mut DbConn, caller: &AuthUser, id: &str, assignee: Option<&str>) -> ApiResult<()> {
    let task = open_task(conn, caller, id)?;
    if let Some(user) = assignee
        && !communities::serving_workers(conn, &task.grid_id)?.iter().any(|w| w == user)
    {
        return Err(ApiError::invalid("assignee_id", "not_a_grid_worker", "not an active worker of the task's grid"));
    }
    store::reassign(conn, id, assignee, now())?;
    let summary = json!({"assignee_id": assignee, "cancel_reason": null, "successor": null});
    audit_event(conn, caller, event("task.reassigned", &task, summary))
}

/// Cancels an open task: this occurrence is skipped, and the next one is scheduled one
/// interval after it at the earliest.
pub fn cancel(conn: &mut DbConn, caller: &AuthUser, id: &str, reason: &str) -> ApiResult<()> {
    let task = open_task(conn, caller, id)?;
    store::cancel(conn, id, reason, now())?;
    let successor = schedule_next(conn, &task)?;
    let summary = json!({"assignee_id": null, "cancel_reason": reason, "successor": successor});
    audit_event(conn, caller, event("task.cancelled", &task, summary))
}

/// The occurrence after a skipped one, if its template is still in the household's plan.
fn schedule_next(conn: &mut DbConn, skipped: &TaskRow) -> ApiResult<Option<String>> {
    let household = households::find(conn, &skipped.household_id)?.ok_or_else(|| ApiError::not_found("task"))?;
    let template = plans::active_templates(conn, &household.community_id, household.tag)?
        .into_iter()
        .find(|t| t.id == skipped.template_id);
    let Some(t) = template else { return Ok(None) };
    let tz = communities::timezone(conn, &household.community_id)?;
    let floor = skipped.due_on + Duration::days(i64::from(t.interval_days));
    let row = store::new_task(conn, &household, &t, tz, Some(floor))?;
    store::insert(conn, &row)?;
    Ok(Some(row.id))
}

/// The audit event of a change to a task.
fn event<'a>(action: &'a str, task: &'a TaskRow, summary: Value) -> Event<'a> {
    Event { action, entity_type: "task", entity_id: Some(&task.id), community_id: Some(&task.community_id), summary }
}
