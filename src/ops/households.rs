//! Households: registering one (retried safely with a client id), editing it (a move between
//! grids takes its open tasks along) and removing it softly.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::auth::{AuthUser, scope};
use crate::db::DbConn;
use crate::domain::{RemovalReason, Role, Tag};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ops::members::NewMember;
use crate::ops::{applied, audit_event, check_version, members};
use crate::store::audit::{self, Event};
use crate::store::communities::GridRow;
use crate::store::households::{self as store, HouseholdRow};
use crate::store::replay::Origin;
use crate::store::{JsonText, now, tags, tasks};

/// Where a household lives; checked, trimmed.
#[derive(Debug, Clone, PartialEq)]
pub struct Address {
    pub building: String,
    pub unit: String,
    pub room: String,
}

/// A household to register; checked.
#[derive(Debug, Clone)]
pub struct NewHousehold {
    /// The client's id, or a new one.
    pub id: String,
    /// A grid in the caller's scope (422 `grid_id` otherwise).
    pub grid_id: String,
    pub address: Address,
    pub head_name: String,
    /// Normalised (`Phone::as_str`).
    pub phone: Option<String>,
    pub notes: Option<String>,
}

/// Registers a household; new households start green, and the plan of their tag schedules their
/// first tasks. Workers register households in their own grids. The same request again from its
/// author is answered with the stored household (`false`: nothing new) while they still see it;
/// anything else with its id is a 409 `id_conflict`.
pub fn register(conn: &mut DbConn, caller: &AuthUser, h: NewHousehold) -> ApiResult<(bool, HouseholdRow)> {
    let grid = target_grid(conn, caller, &h.grid_id, None)?;
    let (row, content) = new_row(h, grid, 0, now());
    let origin = Origin::of(&caller.id, &content)?;
    if !store::insert_new(conn, &row, &origin)? {
        let stored = store::origin(conn, &row.id)?.ok_or_else(|| ApiError::not_found("household"))?;
        origin.retries(&stored)?;
        // Still the caller's to see (a secretary may have moved or removed it since).
        return match scope::household(conn, caller, &row.id) {
            Ok(existing) if existing.removed_at.is_none() => Ok((false, existing)),
            Ok(_) | Err(ApiError::NotFound(_)) => {
                Err(ApiError::conflict(ErrorCode::IdConflict, "the household has been moved or removed since"))
            }
            Err(e) => Err(e),
        };
    }
    audit_event(conn, caller, created_event(&row))?;
    tasks::household_changed(conn, &row.id)?;
    found(conn, &row.id).map(|row| (true, row))
}

/// A new household's row in `grid` with `member_count` members, and the content of its
/// create request (what a retry must repeat).
fn new_row(h: NewHousehold, grid: GridRow, member_count: i32, at: chrono::NaiveDateTime) -> (HouseholdRow, Value) {
    let Address { building, unit, room } = h.address;
    let content = json!({"grid_id": grid.id, "address": [building, unit, room],
        "head_name": h.head_name, "phone": h.phone, "notes": h.notes});
    let row = HouseholdRow {
        id: h.id,
        grid_id: grid.id,
        community_id: grid.community_id,
        building,
        unit,
        room,
        head_name: h.head_name,
        phone: h.phone,
        tag: Tag::Green,
        tag_reasons: JsonText(vec![]),
        tag_note: None,
        tag_set_at: None,
        tag_set_by: None,
        tag_review_due_on: None,
        notes: h.notes,
        member_count,
        version: 1,
        created_at: at,
        updated_at: at,
        removed_at: None,
        removed_reason: None,
        removed_note: None,
    };
    (row, content)
}

/// The audit event of a registration.
fn created_event(row: &HouseholdRow) -> Event<'_> {
    let summary = json!({"grid_id": row.grid_id, "address": [row.building, row.unit, row.room]});
    event("household.created", row, summary)
}

/// Registers new households with their members in a few statements for them all — a roster
/// import's batch — under the rules of [`register`] and [`members::add`]: grids in the
/// caller's scope (422 `grid_id`), ID numbers held by no other current resident nor twice in
/// the batch (409 `id_number_taken`), an audit event per household and per member, the plans'
/// first tasks. The ids are new ones: this is no retry of an earlier request (a taken id fails
/// the batch). Answers how many members were added.
pub fn register_many(
    conn: &mut DbConn,
    caller: &AuthUser,
    items: Vec<(NewHousehold, Vec<NewMember>)>,
) -> ApiResult<usize> {
    let at = now();
    let mut grids: HashMap<String, GridRow> = HashMap::new();
    let mut households = Vec::with_capacity(items.len());
    let mut people = Vec::new();
    for (h, new_members) in items {
        let grid = match grids.get(&h.grid_id) {
            Some(grid) => grid.clone(),
            None => {
                let grid = target_grid(conn, caller, &h.grid_id, None)?;
                crate::store::communities::hold_workers(conn, &grid.id)?;
                grids.insert(h.grid_id.clone(), grid.clone());
                grid
            }
        };
        let (row, content) = new_row(h, grid, new_members.len() as i32, at);
        for m in new_members {
            let (member, content) = members::new_row(m, &row.id, at);
            people.push((Origin::of(&caller.id, &content)?, member));
        }
        households.push((Origin::of(&caller.id, &content)?, row));
    }
    let added: Vec<&crate::store::households::MemberRow> = people.iter().map(|(_, m)| m).collect();
    members::refuse_taken_id_numbers(conn, &added)?;
    crate::store::bulk::households_created(conn, &households)?;
    crate::store::bulk::members_created(conn, &people)?;
    let mut events: Vec<Event<'_>> = households.iter().map(|(_, row)| created_event(row)).collect();
    let by_id: HashMap<&str, &HouseholdRow> = households.iter().map(|(_, row)| (row.id.as_str(), row)).collect();
    events.extend(people.iter().map(|(_, m)| members::created_event(&by_id[m.household_id.as_str()].community_id, m)));
    audit::record_many(conn, &caller.actor(), &events)?;
    let ids: Vec<String> = households.iter().map(|(_, row)| row.id.clone()).collect();
    tasks::households_changed(conn, &ids)?;
    Ok(people.len())
}

/// An edit: each field present replaces the stored one (`Some(None)` clears); checked.
pub use crate::store::households::{AddressEdit, HouseholdEdit};

/// Edits a household. A move to another grid of its community is for secretaries and
/// administrators (403), and its open tasks follow it. Concurrent edits queue on the
/// household's lock: without `expected` both apply, with it the second is 412.
pub fn edit(
    conn: &mut DbConn,
    caller: &AuthUser,
    id: &str,
    expected: Option<&str>,
    e: HouseholdEdit,
) -> ApiResult<HouseholdRow> {
    let current = scope::household_for_update(conn, caller, id)?;
    let moved_to = match e.grid_id.as_ref().filter(|g| **g != current.grid_id) {
        None => None,
        Some(g) => {
            caller.require(&[Role::Admin, Role::Secretary])?;
            Some(target_grid(conn, caller, g, Some(&current.community_id))?.id)
        }
    };
    check_version(expected, current.version)?;
    let fields = audit::fields_set([
        ("grid_id", moved_to.is_some()),
        ("address", e.address.is_some()),
        ("head_name", e.head_name.is_some()),
        ("phone", e.phone.is_some()),
        ("notes", e.notes.is_some()),
    ]);
    applied(store::update(conn, id, current.version, &e, now())?, "household")?;
    let summary = json!({"fields": fields, "version": current.version + 1});
    audit_event(conn, caller, event("household.updated", &current, summary))?;
    if let Some(grid_id) = &moved_to {
        tasks::household_moved(conn, id, grid_id)?;
    }
    found(conn, id)
}

/// Why a household leaves; checked.
#[derive(Debug, Clone)]
pub struct Removal {
    pub reason: RemovalReason,
    pub note: Option<String>,
}

/// Removes a household softly (secretaries and administrators): it leaves lists, its open tasks
/// are cancelled and its pending tag proposal leaves the review queue, but it stays readable by
/// id for secretaries. Removing it again changes nothing and answers the removed household.
pub fn remove(conn: &mut DbConn, caller: &AuthUser, id: &str, r: Removal) -> ApiResult<HouseholdRow> {
    scope::household(conn, caller, id)?;
    caller.require(&[Role::Admin, Role::Secretary])?;
    let current = store::find_for_update(conn, id)?.ok_or_else(|| ApiError::not_found("household"))?;
    if current.removed_at.is_some() {
        return Ok(current);
    }
    let at = now();
    applied(store::remove(conn, id, current.version, (r.reason, r.note.as_deref()), at)?, "household")?;
    let why = format!("household removed: {}", r.reason.as_str());
    let cancelled = store::cancel_open_tasks(conn, id, &why, at)?;
    // Its pending proposal leaves the review queue: there is nothing left to decide.
    if let Some(change) = tags::cancel_pending(conn, id, &caller.id, at, &why)? {
        let summary = json!({"household_id": id, "reason": why});
        let event = Event {
            action: "tag_change.cancelled",
            entity_type: "tag_change",
            entity_id: Some(&change),
            community_id: Some(&current.community_id),
            summary,
        };
        audit_event(conn, caller, event)?;
    }
    let summary = json!({"reason": r.reason.as_str(), "note": r.note, "tasks_cancelled": cancelled});
    audit_event(conn, caller, event("household.removed", &current, summary))?;
    found(conn, id)
}

/// A grid in the caller's scope to put a household in, of `community` when given; 422
/// `grid_id` otherwise. A failure to look (the database) stays what it is.
fn target_grid(conn: &mut DbConn, caller: &AuthUser, id: &str, community: Option<&str>) -> ApiResult<GridRow> {
    let unknown = |where_: &str| ApiError::invalid("grid_id", "unknown", format!("no such grid in {where_}"));
    match scope::grid(conn, caller, id) {
        Ok(grid) if community.is_none_or(|c| c == grid.community_id) => {
            scope::changes_allowed(caller)?;
            Ok(grid)
        }
        Ok(_) => Err(unknown("this community")),
        Err(ApiError::NotFound(_)) => Err(unknown(if community.is_some() { "this community" } else { "your scope" })),
        Err(e) => Err(e),
    }
}

/// The audit event of a change to a household.
pub(crate) fn event<'a>(action: &'a str, household: &'a HouseholdRow, summary: Value) -> Event<'a> {
    Event {
        action,
        entity_type: "household",
        entity_id: Some(&household.id),
        community_id: Some(&household.community_id),
        summary,
    }
}

/// The household as stored now.
fn found(conn: &mut DbConn, id: &str) -> ApiResult<HouseholdRow> {
    store::find(conn, id)?.ok_or_else(|| ApiError::not_found("household"))
}
