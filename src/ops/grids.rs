//! Grids: creating one in a community, changing one, and replacing its workers (which hands the
//! grid's open tasks on). A community's secretary or an administrator.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::auth::{AuthUser, scope};
use crate::db::DbConn;
use crate::domain::{GridCode, Role};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::ops::{applied, audit_event, check_version};
use crate::store::audit::Event;
use crate::store::communities::{self as store, CommunityRow, GridChanges, GridRow};
use crate::store::streets;
use crate::store::{new_id, now, tasks, users};

/// A grid's station (网格驿站); checked.
#[derive(Debug, Clone)]
pub struct Station {
    pub name: String,
    pub address: Option<String>,
}

/// A grid to create; checked, except that its code's division part is the community's (which
/// [`create`] checks once it has read the community).
#[derive(Debug, Clone)]
pub struct NewGrid {
    pub code: String,
    pub name: String,
    pub description: Option<String>,
    pub station: Option<Station>,
}

/// Creates a grid in a community; a code another grid has is 409 `already_exists`.
pub fn create(conn: &mut DbConn, caller: &AuthUser, community_id: &str, g: NewGrid) -> ApiResult<GridRow> {
    let community = scope::community(conn, caller, community_id)?;
    caller.require(&[Role::Admin, Role::Secretary])?;
    let code = in_community(conn, &g.code, &community)?;
    let (station_name, station_address) = station_columns(g.station);
    let at = now();
    let row = GridRow {
        id: new_id(),
        community_id: community.id,
        code,
        name: g.name,
        description: g.description,
        station_name,
        station_address,
        version: 1,
        created_at: at,
        updated_at: at,
    };
    store::insert_grid(conn, &row)?;
    let summary = json!({"code": row.code, "name": row.name});
    audit_event(conn, caller, event("grid.created", &row, summary))?;
    Ok(row)
}

/// A change to a grid; checked as [`NewGrid`]. `None` leaves a field alone; `Some(None)`
/// clears the description or the station.
#[derive(Debug, Clone, Default)]
pub struct GridEdit {
    pub code: Option<String>,
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub station: Option<Option<Station>>,
}

/// Changes a grid; a new code another grid has is 409 `already_exists`.
pub fn edit(conn: &mut DbConn, caller: &AuthUser, id: &str, expected: Option<&str>, e: GridEdit) -> ApiResult<GridRow> {
    let grid = managed_grid(conn, caller, id)?;
    let community = store::find(conn, &grid.community_id)?.ok_or_else(|| ApiError::not_found("community"))?;
    // A code is checked when it changes: a grid keeps its code when its community moves to
    // another street (docs/domain.md), and a client sending it back unchanged is not refused.
    let code = match e.code {
        Some(c) if c.trim() != grid.code => Some(in_community(conn, &c, &community)?),
        other => other.map(|c| c.trim().to_owned()),
    };
    check_version(expected, grid.version)?;
    let summary = json!({"code": code, "name": e.name});
    let station = e.station.map(station_columns);
    let changes = GridChanges {
        code,
        name: e.name,
        description: e.description,
        station_name: station.as_ref().map(|s| s.0.clone()),
        station_address: station.map(|s| s.1),
    };
    applied(store::update_grid(conn, id, grid.version, &changes, now())?, "grid")?;
    audit_event(conn, caller, event("grid.updated", &grid, summary))?;
    store::find_grid(conn, id)?.ok_or_else(|| ApiError::not_found("grid"))
}

/// One worker of a grid.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub user_id: String,
    /// The primary worker gets the grid's new tasks; at most one per grid.
    pub primary: bool,
}

/// Replaces a grid's workers with active grid workers of its community, each listed once, at
/// most one of them primary (one 422 names every problem). A new primary takes the grid's open
/// tasks; otherwise the tasks of workers who left the grid go to the primary, or to nobody (the
/// secretary's queue).
pub fn set_workers(conn: &mut DbConn, caller: &AuthUser, id: &str, workers: Vec<Assignment>) -> ApiResult<GridRow> {
    let grid = grid_for_worker_change(conn, caller, id)?;
    check_workers(conn, &grid.community_id, &workers)?;
    let before = store::primary_worker(conn, id)?;
    let workers: Vec<(String, bool)> = workers.into_iter().map(|w| (w.user_id, w.primary)).collect();
    let at = now();
    store::replace_workers(conn, id, &workers, at)?;
    let after = store::primary_worker(conn, id)?;
    let moved = if before != after {
        tasks::move_open_tasks(conn, id, after.as_deref(), at)?
    } else {
        tasks::hand_on(conn, id, at)?
    };
    store::touch_grid(conn, id, at)?;
    let listed: Vec<Value> = workers.iter().map(|(u, p)| json!({"user_id": u, "primary": p})).collect();
    let summary = json!({"workers": listed, "primary_before": before, "primary_after": after,
        "open_tasks_moved": moved});
    audit_event(conn, caller, event("grid.workers_replaced", &grid, summary))?;
    store::find_grid(conn, id)?.ok_or_else(|| ApiError::not_found("grid"))
}

/// A grid in the caller's scope (404) that their role manages (403), locked for a change.
fn managed_grid(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<GridRow> {
    scope::grid(conn, caller, id)?;
    caller.require(&[Role::Admin, Role::Secretary])?;
    scope::grid_for_update(conn, caller, id)
}

/// [`managed_grid`] for a change of its workers: its households are locked first, so that no
/// task is given meanwhile to a worker about to leave (see `lock_for_worker_change`).
fn grid_for_worker_change(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<GridRow> {
    scope::grid(conn, caller, id)?;
    caller.require(&[Role::Admin, Role::Secretary])?;
    store::lock_for_worker_change(conn, id)?;
    scope::grid_for_update(conn, caller, id)
}

fn check_workers(conn: &mut DbConn, community_id: &str, workers: &[Assignment]) -> ApiResult<()> {
    let mut errors = Vec::new();
    if workers.iter().filter(|w| w.primary).count() > 1 {
        errors.push(FieldError::new("workers", "two_primaries", "a grid has at most one primary worker"));
    }
    let mut seen = HashSet::new();
    for (i, w) in workers.iter().enumerate() {
        let field = format!("workers[{i}].user_id");
        if !seen.insert(w.user_id.as_str()) {
            errors.push(FieldError::new(field, "duplicate", "listed twice"));
            continue;
        }
        match users::find(conn, &w.user_id)?.filter(|u| u.community_id.as_deref() == Some(community_id)) {
            None => errors.push(FieldError::new(field, "unknown", "no such grid worker in this community")),
            Some(u) if u.role != Role::GridWorker => {
                errors.push(FieldError::new(field, "not_a_grid_worker", "only grid workers serve grids"))
            }
            Some(u) if !u.active => errors.push(FieldError::new(field, "inactive", "the account is deactivated")),
            Some(_) => {}
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(ApiError::Validation(errors)) }
}

/// The code of a grid of `community`: it starts with the community's division code, then its
/// street's digits (422 `code`: `division_mismatch`, `street_mismatch`, …).
fn in_community(conn: &mut DbConn, code: &str, community: &CommunityRow) -> ApiResult<String> {
    let street = streets::find_street(conn, &community.street_id)?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("street {} is missing", community.street_id)))?;
    GridCode::parse_in_street(code, &community.division_code, &street.code)
        .map(|c| c.as_str().to_owned())
        .map_err(|e| ApiError::invalid("code", e.code(), e.to_string()))
}

fn station_columns(station: Option<Station>) -> (Option<String>, Option<String>) {
    station.map_or((None, None), |s| (Some(s.name), s.address))
}

fn event<'a>(action: &'a str, grid: &'a GridRow, summary: Value) -> Event<'a> {
    Event { action, entity_type: "grid", entity_id: Some(&grid.id), community_id: Some(&grid.community_id), summary }
}
