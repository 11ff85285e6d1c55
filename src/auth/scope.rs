//! Scope: what a caller may see and change, decided per request from the database.
//!
//! Out of scope answers 404 (existence is not revealed); a role that may never act answers 403
//! (`AuthUser::require`). Every handler that takes an id calls the function for its resource
//! kind here.

use crate::auth::AuthUser;
use crate::db::DbConn;
use crate::domain::Role;
use crate::error::{ApiError, ApiResult};
use crate::store::communities::{self, CommunityRow, GridRow};
use crate::store::households::{self, HouseholdRow, MemberRow};
use crate::store::streets::{self, DistrictRow, StreetRow};
use crate::store::tags::{self, TagChangeRow};
use crate::store::tasks::{self, TaskRow};
use crate::store::users::{self, UserRow};
use crate::store::visits::{self, VisitRow};

/// May the caller see things of this community at all? Its own for a secretary or worker,
/// those of their street or district for an officer.
fn sees_community(conn: &mut DbConn, caller: &AuthUser, community_id: &str) -> ApiResult<bool> {
    Ok(match caller.role {
        Role::Admin => true,
        Role::Secretary | Role::GridWorker => caller.community_id.as_deref() == Some(community_id),
        Role::StreetOfficer | Role::DistrictOfficer => oversees(conn, caller, community_id)?,
    })
}

/// Whether an officer's street or district holds the community (never, for other roles).
fn oversees(conn: &mut DbConn, caller: &AuthUser, community_id: &str) -> ApiResult<bool> {
    let Some(street) = streets::of_community(conn, community_id)? else { return Ok(false) };
    Ok(match caller.role {
        Role::StreetOfficer => caller.row.street_id.as_deref() == Some(street.id.as_str()),
        Role::DistrictOfficer => caller.row.district_id.as_deref() == Some(street.district_id.as_str()),
        Role::Admin | Role::Secretary | Role::GridWorker => false,
    })
}

/// 403 for officers: they read their street's or district's communities and change nothing
/// there (a secretary's or worker's work). Called by every `…_for_update` below, after the
/// scope check (outside their scope an officer gets 404, as anyone).
pub fn changes_allowed(caller: &AuthUser) -> ApiResult<()> {
    if caller.is_officer() {
        return Err(ApiError::Forbidden(format!("a {} reads only; changes are the community's", caller.role.as_str())));
    }
    Ok(())
}

/// The street and district a caller works under: `None` for administrators (all of them); a
/// district officer's district (every street of it); everyone else's street and its district.
pub fn home(conn: &mut DbConn, caller: &AuthUser) -> ApiResult<Option<(Option<String>, String)>> {
    let street_of = |conn: &mut DbConn, id: &str| -> ApiResult<StreetRow> {
        streets::find_street(conn, id)?.ok_or_else(|| ApiError::internal(anyhow::anyhow!("street {id} is missing")))
    };
    let missing = || ApiError::internal(anyhow::anyhow!("user {} has no unit", caller.id));
    Ok(match caller.role {
        Role::Admin => None,
        Role::DistrictOfficer => Some((None, caller.row.district_id.clone().ok_or_else(missing)?)),
        Role::StreetOfficer => {
            let s = street_of(conn, caller.row.street_id.as_deref().ok_or_else(missing)?)?;
            Some((Some(s.id), s.district_id))
        }
        Role::Secretary | Role::GridWorker => {
            let c = caller.community_id.as_deref().ok_or_else(missing)?;
            let s = streets::of_community(conn, c)?.ok_or_else(missing)?;
            Some((Some(s.id), s.district_id))
        }
    })
}

/// A district the caller works in (any, for administrators).
pub fn district(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<DistrictRow> {
    let row = streets::find_district(conn, id)?.ok_or_else(|| ApiError::not_found("district"))?;
    match home(conn, caller)? {
        Some((_, d)) if d != row.id => Err(ApiError::not_found("district")),
        _ => Ok(row),
    }
}

/// A street the caller works in (any, for administrators; every street of their district for a
/// district officer).
pub fn street(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<StreetRow> {
    let row = streets::find_street(conn, id)?.ok_or_else(|| ApiError::not_found("street"))?;
    let visible = match home(conn, caller)? {
        None => true,
        Some((Some(s), _)) => s == row.id,
        Some((None, d)) => d == row.district_id,
    };
    if visible { Ok(row) } else { Err(ApiError::not_found("street")) }
}

/// A user account the caller may see: admins see all, secretaries their community's accounts,
/// everyone their own.
pub fn user(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<UserRow> {
    let row = users::find(conn, id)?.ok_or_else(|| ApiError::not_found("user"))?;
    let visible = caller.id == row.id
        || caller.is_admin()
        || (caller.role == Role::Secretary && row.community_id.is_some() && row.community_id == caller.community_id);
    if visible { Ok(row) } else { Err(ApiError::not_found("user")) }
}

/// May the caller manage (activate, reset the password of) this visible account? Admins
/// manage everyone; a secretary manages the grid workers of their own community.
pub fn manage_user(caller: &AuthUser, target: &UserRow) -> ApiResult<()> {
    let allowed = caller.is_admin()
        || (caller.role == Role::Secretary
            && target.role == Role::GridWorker
            && target.community_id == caller.community_id);
    if allowed { Ok(()) } else { Err(ApiError::Forbidden("you may not manage this account".into())) }
}

/// A community the caller belongs to (or any, for administrators).
pub fn community(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<CommunityRow> {
    let row = communities::find(conn, id)?.ok_or_else(|| ApiError::not_found("community"))?;
    if sees_community(conn, caller, &row.id)? { Ok(row) } else { Err(ApiError::not_found("community")) }
}

/// Whether the caller works in (or oversees) a grid of the given community.
fn sees_grid(conn: &mut DbConn, caller: &AuthUser, grid_id: &str, community_id: &str) -> ApiResult<bool> {
    if caller.is_officer() {
        return oversees(conn, caller, community_id);
    }
    sees_grid_by(caller, community_id, || Ok(communities::is_assigned(conn, &caller.id, grid_id)?))
}

/// [`sees_grid`], asking `assigned` whether a grid worker serves the grid.
fn sees_grid_by(caller: &AuthUser, community_id: &str, assigned: impl FnOnce() -> ApiResult<bool>) -> ApiResult<bool> {
    Ok(match caller.role {
        Role::Admin => true,
        Role::Secretary => caller.community_id.as_deref() == Some(community_id),
        Role::GridWorker => caller.community_id.as_deref() == Some(community_id) && assigned()?,
        // Decided by `sees_grid`; an officer changes no household (`households_for_update`).
        Role::StreetOfficer | Role::DistrictOfficer => false,
    })
}

/// A grid in the caller's scope: any (admin), their community's (secretary), their assigned
/// grids (grid worker).
pub fn grid(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<GridRow> {
    let row = communities::find_grid(conn, id)?.ok_or_else(|| ApiError::not_found("grid"))?;
    if sees_grid(conn, caller, &row.id, &row.community_id)? { Ok(row) } else { Err(ApiError::not_found("grid")) }
}

/// Where a caller's lists may look.
#[derive(Debug, Clone)]
pub enum Reach {
    Everything,
    Community(String),
    Grids {
        community_id: String,
        grid_ids: Vec<String>,
    },
    /// An officer's: the communities of their street or district.
    Communities(Vec<String>),
}

/// What a list is held to (`None`: not held by that).
#[derive(Debug, Clone, Default)]
pub struct Bounds {
    /// One community (a secretary's or worker's).
    pub community: Option<String>,
    /// Several communities (an officer's).
    pub communities: Option<Vec<String>>,
    /// The grids whose current households it is held to (a worker's).
    pub grids: Option<Vec<String>>,
}

impl Reach {
    pub fn bounds(self) -> Bounds {
        match self {
            Reach::Everything => Bounds::default(),
            Reach::Community(c) => Bounds { community: Some(c), ..Default::default() },
            Reach::Grids { community_id, grid_ids } => {
                Bounds { community: Some(community_id), grids: Some(grid_ids), ..Default::default() }
            }
            Reach::Communities(ids) => Bounds { communities: Some(ids), ..Default::default() },
        }
    }

    /// The one community a list is held to, if it is (its calendar is the list's).
    pub fn community(&self) -> Option<&str> {
        match self {
            Reach::Community(c) | Reach::Grids { community_id: c, .. } => Some(c),
            Reach::Everything | Reach::Communities(_) => None,
        }
    }
}

pub fn reach(conn: &mut DbConn, caller: &AuthUser) -> ApiResult<Reach> {
    let community =
        || caller.community_id.clone().ok_or_else(|| ApiError::internal(anyhow::anyhow!("user has no community")));
    Ok(match caller.role {
        Role::Admin => Reach::Everything,
        Role::Secretary => Reach::Community(community()?),
        Role::GridWorker => {
            Reach::Grids { community_id: community()?, grid_ids: communities::grids_of_worker(conn, &caller.id)? }
        }
        Role::StreetOfficer | Role::DistrictOfficer => Reach::Communities(overseen(conn, caller)?),
    })
}

/// The communities of an officer's street or district (none for other roles).
pub fn overseen(conn: &mut DbConn, caller: &AuthUser) -> ApiResult<Vec<String>> {
    Ok(match (caller.role, &caller.row.street_id, &caller.row.district_id) {
        (Role::StreetOfficer, Some(s), _) => streets::communities_of_street(conn, s)?,
        (Role::DistrictOfficer, _, Some(d)) => streets::communities_of_district(conn, d)?,
        _ => Vec::new(),
    })
}

/// A household in the caller's scope. Removed households stay readable by id for secretaries
/// and administrators only.
pub fn household(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<HouseholdRow> {
    let row = households::find(conn, id)?.ok_or_else(|| ApiError::not_found("household"))?;
    check_household(conn, caller, row)
}

/// [`household`], locking the row for a change (see `households::find_for_update`); removed
/// households cannot be changed.
pub fn household_for_update(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<HouseholdRow> {
    let row = households::find_for_update(conn, id)?.ok_or_else(|| ApiError::not_found("household"))?;
    let row = check_household(conn, caller, row)?;
    changes_allowed(caller)?;
    if row.removed_at.is_some() {
        return Err(ApiError::household_removed());
    }
    Ok(row)
}

fn check_household(conn: &mut DbConn, caller: &AuthUser, row: HouseholdRow) -> ApiResult<HouseholdRow> {
    let sees = sees_grid(conn, caller, &row.grid_id, &row.community_id)?;
    if household_visible(caller, &row, sees) { Ok(row) } else { Err(ApiError::not_found("household")) }
}

/// A household in a grid the caller sees (`sees`) is visible, unless it was removed and the
/// caller is a grid worker.
fn household_visible(caller: &AuthUser, row: &HouseholdRow, sees: bool) -> bool {
    sees && (row.removed_at.is_none() || caller.role != Role::GridWorker)
}

/// [`household`] for several ids at once (a batch of writes): the visible ones, locked for a
/// change in id order (see `households::find_many_for_update`), by id; an id left out answers
/// 404 `household`, as [`household`] does. The grid worker's grids are read once for all.
pub fn households_for_update(
    conn: &mut DbConn,
    caller: &AuthUser,
    ids: &[String],
) -> ApiResult<std::collections::HashMap<String, HouseholdRow>> {
    let found = households::find_many(conn, ids)?;
    if caller.is_officer() {
        // An officer records nothing: 403 where they see a household, 404 (left out) elsewhere.
        for row in &found {
            if sees_grid(conn, caller, &row.grid_id, &row.community_id)? {
                changes_allowed(caller)?;
            }
        }
        return Ok(Default::default());
    }
    let served = match caller.role {
        Role::GridWorker if !found.is_empty() => communities::grids_of_worker(conn, &caller.id)?,
        _ => Vec::new(),
    };
    let mut visible = Vec::with_capacity(found.len());
    for row in &found {
        let sees = sees_grid_by(caller, &row.community_id, || Ok(served.contains(&row.grid_id)))?;
        if household_visible(caller, row, sees) {
            visible.push(row.id.clone());
        }
    }
    if visible.is_empty() {
        return Ok(Default::default());
    }
    let locked = match conn {
        // The write transaction holds the database: the rows just read are the ones to use.
        DbConn::Sqlite(_) => found.into_iter().filter(|r| visible.contains(&r.id)).collect(),
        DbConn::Postgres(_) => households::find_many_for_update(conn, &visible)?,
    };
    Ok(locked.into_iter().map(|r| (r.id.clone(), r)).collect())
}

/// A current member of a household in the caller's scope, with that household.
pub fn member(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<(MemberRow, HouseholdRow)> {
    let m = households::find_member(conn, id)?
        .filter(|m| m.removed_at.is_none())
        .ok_or_else(|| ApiError::not_found("member"))?;
    let h = household(conn, caller, &m.household_id).map_err(|_| ApiError::not_found("member"))?;
    Ok((m, h))
}

/// [`member`], to change it: the household is locked first (the order every writer takes), then
/// the member is read again under that lock, so concurrent edits queue instead of failing their
/// version check, and a removal racing an edit is seen. Removed households cannot be changed.
pub fn member_for_update(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<(MemberRow, HouseholdRow)> {
    let m = households::find_member(conn, id)?
        .filter(|m| m.removed_at.is_none())
        .ok_or_else(|| ApiError::not_found("member"))?;
    let h = household_for_update(conn, caller, &m.household_id).map_err(not_found_as("member"))?;
    let m = households::find_member(conn, id)?
        .filter(|m| m.removed_at.is_none() && m.household_id == h.id)
        .ok_or_else(|| ApiError::not_found("member"))?;
    Ok((m, h))
}

/// A visit in the caller's scope (that of its household), to change it: household locked, then
/// the visit read again and locked.
pub fn visit_for_update(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<VisitRow> {
    let v = visits::find(conn, id)?.ok_or_else(|| ApiError::not_found("visit"))?;
    household(conn, caller, &v.household_id).map_err(not_found_as("visit"))?;
    changes_allowed(caller)?;
    households::find_for_update(conn, &v.household_id)?;
    visits::find_for_update(conn, id)?.ok_or_else(|| ApiError::not_found("visit"))
}

/// A task in the caller's scope (that of its household), to change it: household locked, then
/// the task read again and locked.
pub fn task_for_update(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<TaskRow> {
    let t = tasks::find(conn, id)?.ok_or_else(|| ApiError::not_found("task"))?;
    household(conn, caller, &t.household_id).map_err(not_found_as("task"))?;
    changes_allowed(caller)?;
    households::find_for_update(conn, &t.household_id)?;
    tasks::find_for_update(conn, id)?.ok_or_else(|| ApiError::not_found("task"))
}

/// A tag change in the caller's scope (that of its household).
pub fn tag_change(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<TagChangeRow> {
    let row = tags::find(conn, id)?.ok_or_else(|| ApiError::not_found("tag change"))?;
    household(conn, caller, &row.household_id).map_err(|_| ApiError::not_found("tag change"))?;
    Ok(row)
}

/// [`tag_change`], to decide it: household locked, then the change read again under that lock
/// (every writer of tag changes takes the household first, so two decisions queue), with the
/// household as it is now.
pub fn tag_change_for_update(
    conn: &mut DbConn,
    caller: &AuthUser,
    id: &str,
) -> ApiResult<(TagChangeRow, HouseholdRow)> {
    let found = tag_change(conn, caller, id)?;
    changes_allowed(caller)?;
    let h = households::find_for_update(conn, &found.household_id)?.ok_or_else(|| ApiError::not_found("tag change"))?;
    let row = tags::find(conn, id)?.ok_or_else(|| ApiError::not_found("tag change"))?;
    Ok((row, h))
}

/// [`community`], locked for a change.
pub fn community_for_update(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<CommunityRow> {
    community(conn, caller, id)?;
    changes_allowed(caller)?;
    communities::find_for_update(conn, id)?.ok_or_else(|| ApiError::not_found("community"))
}

/// [`grid`], locked for a change.
pub fn grid_for_update(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<GridRow> {
    grid(conn, caller, id)?;
    changes_allowed(caller)?;
    communities::find_grid_for_update(conn, id)?.ok_or_else(|| ApiError::not_found("grid"))
}

/// [`user`], locked for a change.
pub fn user_for_update(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<UserRow> {
    user(conn, caller, id)?;
    users::find_for_update(conn, id)?.ok_or_else(|| ApiError::not_found("user"))
}

/// Out of scope reads as "no such <what>"; other errors (a removed household: 409) stay.
fn not_found_as(what: &'static str) -> impl Fn(ApiError) -> ApiError {
    move |e| match e {
        ApiError::NotFound(_) => ApiError::not_found(what),
        other => other,
    }
}

/// A visit in the caller's scope (that of its household now).
pub fn visit(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<VisitRow> {
    let v = visits::find(conn, id)?.ok_or_else(|| ApiError::not_found("visit"))?;
    household(conn, caller, &v.household_id).map_err(not_found_as("visit"))?;
    Ok(v)
}

/// A task in the caller's scope (that of its household now).
pub fn task(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<TaskRow> {
    let t = tasks::find(conn, id)?.ok_or_else(|| ApiError::not_found("task"))?;
    household(conn, caller, &t.household_id).map_err(not_found_as("task"))?;
    Ok(t)
}
