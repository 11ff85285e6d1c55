//! Communities and their grids and worker assignments.

use chrono::{NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::db::DbConn;
use crate::db::schema::{communities, grid_assignments, grids, households, users};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::store::Narrow;

/// Is this the violation of the unique index `index` (PostgreSQL names it; SQLite lists its
/// `columns`)? The two this module expects become 409 `already_exists` with what is taken.
fn violates(e: &DieselError, index: &str, columns: &str) -> bool {
    matches!(e, DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)
        if info.constraint_name() == Some(index) || info.message().ends_with(columns))
}

/// A grid write whose code another grid has: 409 `already_exists`; other errors as they are.
fn code_taken(e: DieselError, code: &str) -> ApiError {
    if violates(&e, "grids_code_key", "grids.code") {
        ApiError::conflict(ErrorCode::AlreadyExists, format!("the grid code {code} is taken"))
    } else {
        e.into()
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = communities)]
pub struct CommunityRow {
    pub id: String,
    pub name: String,
    pub district: String,
    pub street: String,
    pub division_code: String,
    pub timezone: String,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The street (街道) the community belongs to.
    pub street_id: String,
}

/// The timezone of a community created without one, and the calendar of lists that span every
/// community (an administrator's).
pub const DEFAULT_TIMEZONE: Tz = chrono_tz::Asia::Shanghai;

impl CommunityRow {
    /// The community's timezone. It is checked when written, so a stored name that does not
    /// parse is a corrupt row: an error (logged, 500), never a default.
    pub fn zone(&self) -> ApiResult<Tz> {
        self.timezone.parse().map_err(|_| {
            ApiError::internal(anyhow::anyhow!("community {} has an unknown timezone {:?}", self.id, self.timezone))
        })
    }
}

/// The timezone of a community that a stored row refers to: a missing community is as much an
/// error (logged, 500) as a corrupt timezone ([`CommunityRow::zone`]).
pub fn timezone(conn: &mut DbConn, id: &str) -> ApiResult<Tz> {
    find(conn, id)?.ok_or_else(|| ApiError::internal(anyhow::anyhow!("community {id} is missing")))?.zone()
}

/// "Today" in a community that a stored row refers to (dates such as `due_on` are local dates).
pub fn today(conn: &mut DbConn, id: &str) -> ApiResult<NaiveDate> {
    Ok(today_in_zone(timezone(conn, id)?))
}

/// "Today" for a list narrowed to a community, if it is: lists that span communities (an
/// administrator's) go by [`DEFAULT_TIMEZONE`], and a community that does not exist lists
/// nothing whatever the date.
pub fn today_of_list(conn: &mut DbConn, community_id: Option<&str>) -> ApiResult<NaiveDate> {
    let zone = match community_id {
        Some(id) => find(conn, id)?.map(|c| c.zone()).transpose()?,
        None => None,
    };
    Ok(today_in_zone(zone.unwrap_or(DEFAULT_TIMEZONE)))
}

/// Today's date in a timezone.
pub fn today_in_zone(tz: Tz) -> NaiveDate {
    Utc::now().with_timezone(&tz).date_naive()
}

/// Today's date in a timezone named by a caller that knows the name to be valid (tests, the
/// demo data); [`DEFAULT_TIMEZONE`] when it is not. Stored names go through [`timezone`].
pub fn today_in(timezone: &str) -> NaiveDate {
    today_in_zone(timezone.parse().unwrap_or(DEFAULT_TIMEZONE))
}

pub fn exists(conn: &mut DbConn, id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(communities::table.find(id))).get_result(conn)
}

/// The community's version (every change of it moves it), if it exists.
pub fn version(conn: &mut DbConn, id: &str) -> QueryResult<Option<i32>> {
    communities::table.find(id).select(communities::version).first(conn).optional()
}

pub fn find(conn: &mut DbConn, id: &str) -> QueryResult<Option<CommunityRow>> {
    communities::table.find(id).select(CommunityRow::as_select()).first(conn).optional()
}

/// [`find`], locked for a change (see [`crate::locked_first`]).
pub fn find_for_update(conn: &mut DbConn, id: &str) -> QueryResult<Option<CommunityRow>> {
    crate::locked_first!(conn, communities::table.find(id).select(CommunityRow::as_select()))
}

/// Inserts a community; one of the same name in the same street and division is 409
/// `already_exists`.
pub fn insert(conn: &mut DbConn, row: &CommunityRow) -> ApiResult<()> {
    diesel::insert_into(communities::table).values(row).execute(conn).map_err(name_taken)?;
    Ok(())
}

/// A community write whose name another community of its street has: 409 `already_exists`.
fn name_taken(e: DieselError) -> ApiError {
    let columns = "communities.division_code, communities.street, communities.name";
    if violates(&e, "communities_division_street_name_key", columns) {
        ApiError::conflict(ErrorCode::AlreadyExists, "a community of that name exists in that street")
    } else {
        e.into()
    }
}

/// Communities by id, optionally only those in `only`, after a cursor.
pub fn list(
    conn: &mut DbConn,
    only: Option<&[String]>,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<CommunityRow>> {
    communities::table
        .select(CommunityRow::as_select())
        .order(communities::id.asc())
        .limit(limit)
        .into_boxed()
        .narrow(only, |q, ids| q.filter(communities::id.eq_any(ids.to_vec())))
        .narrow(after, |q, a| q.filter(communities::id.gt(a)))
        .load(conn)
}

/// A change to a community: each field present replaces the stored one. The division code is
/// not among them: grid codes derive from it. The operation's input (`ops::communities`) and the
/// statement's changeset at once.
#[derive(AsChangeset, Debug, Clone, Default)]
#[diesel(table_name = communities)]
pub struct CommunityEdit {
    pub name: Option<String>,
    pub district: Option<String>,
    pub street: Option<String>,
    pub timezone: Option<String>,
    /// Moves the community to another street (of its district).
    pub street_id: Option<String>,
}

/// Applies an edit if the community is still at `version`, moving it to the next version;
/// returns whether it was. A name another community of the street has is 409
/// `already_exists`.
pub fn update(conn: &mut DbConn, id: &str, version: i32, edit: &CommunityEdit, at: NaiveDateTime) -> ApiResult<bool> {
    diesel::update(communities::table.filter(communities::id.eq(id)).filter(communities::version.eq(version)))
        .set((edit, communities::version.eq(version + 1), communities::updated_at.eq(at)))
        .execute(conn)
        .map(|n| n == 1)
        .map_err(name_taken)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = grids)]
pub struct GridRow {
    pub id: String,
    pub community_id: String,
    pub code: String,
    pub name: String,
    pub description: Option<String>,
    pub station_name: Option<String>,
    pub station_address: Option<String>,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub fn find_grid(conn: &mut DbConn, id: &str) -> QueryResult<Option<GridRow>> {
    grids::table.find(id).select(GridRow::as_select()).first(conn).optional()
}

/// [`find_grid`], locked for a change (see [`crate::locked_first`]).
pub fn find_grid_for_update(conn: &mut DbConn, id: &str) -> QueryResult<Option<GridRow>> {
    crate::locked_first!(conn, grids::table.find(id).select(GridRow::as_select()))
}

/// Inserts a grid; a code another grid has is 409 `already_exists`.
pub fn insert_grid(conn: &mut DbConn, row: &GridRow) -> ApiResult<()> {
    diesel::insert_into(grids::table).values(row).execute(conn).map_err(|e| code_taken(e, &row.code))?;
    Ok(())
}

/// A community's grids by code, optionally only those in `only`.
pub fn list_grids(
    conn: &mut DbConn,
    community_id: &str,
    only: Option<&[String]>,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<GridRow>> {
    grids::table
        .filter(grids::community_id.eq(community_id))
        .select(GridRow::as_select())
        .order(grids::code.asc())
        .limit(limit)
        .into_boxed()
        .narrow(only, |q, ids| q.filter(grids::id.eq_any(ids.to_vec())))
        .narrow(after, |q, a| q.filter(grids::code.gt(a)))
        .load(conn)
}

/// The columns a grid edit changes; `None` leaves one alone.
#[derive(AsChangeset, Default)]
#[diesel(table_name = grids)]
pub struct GridChanges {
    pub code: Option<String>,
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub station_name: Option<Option<String>>,
    pub station_address: Option<Option<String>>,
}

/// Applies `changes` if the grid is still at `version`, moving it to the next version; returns
/// whether it was. A new code another grid has is 409 `already_exists`.
pub fn update_grid(
    conn: &mut DbConn,
    id: &str,
    version: i32,
    changes: &GridChanges,
    at: NaiveDateTime,
) -> ApiResult<bool> {
    diesel::update(grids::table.filter(grids::id.eq(id)).filter(grids::version.eq(version)))
        .set((changes, grids::version.eq(version + 1), grids::updated_at.eq(at)))
        .execute(conn)
        .map(|n| n == 1)
        .map_err(|e| code_taken(e, changes.code.as_deref().unwrap_or_default()))
}

/// A worker of a grid, as listed on the grid.
#[derive(Debug, Clone, Queryable)]
pub struct AssignmentRow {
    pub user_id: String,
    pub is_primary: bool,
    pub username: String,
    pub display_name: String,
    pub active: bool,
}

pub fn grid_workers(conn: &mut DbConn, grid_id: &str) -> QueryResult<Vec<AssignmentRow>> {
    grid_assignments::table
        .inner_join(users::table)
        .filter(grid_assignments::grid_id.eq(grid_id))
        .order((grid_assignments::is_primary.desc(), users::username.asc()))
        .select((
            grid_assignments::user_id,
            grid_assignments::is_primary,
            users::username,
            users::display_name,
            users::active,
        ))
        .load(conn)
}

/// Replaces a grid's assignments.
pub fn replace_workers(
    conn: &mut DbConn,
    grid_id: &str,
    workers: &[(String, bool)],
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::delete(grid_assignments::table.filter(grid_assignments::grid_id.eq(grid_id))).execute(conn)?;
    for (user_id, primary) in workers {
        diesel::insert_into(grid_assignments::table)
            .values((
                grid_assignments::grid_id.eq(grid_id),
                grid_assignments::user_id.eq(user_id),
                grid_assignments::is_primary.eq(primary),
                grid_assignments::created_at.eq(at),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The grid's primary worker, if it has one whose account is active.
pub fn primary_worker(conn: &mut DbConn, grid_id: &str) -> QueryResult<Option<String>> {
    grid_assignments::table
        .inner_join(users::table)
        .filter(grid_assignments::grid_id.eq(grid_id))
        .filter(grid_assignments::is_primary)
        .filter(users::active)
        .select(grid_assignments::user_id)
        .first(conn)
        .optional()
}

/// The workers of a grid whose accounts are active: who may hold its tasks.
pub fn serving_workers(conn: &mut DbConn, grid_id: &str) -> QueryResult<Vec<String>> {
    grid_assignments::table
        .inner_join(users::table)
        .filter(grid_assignments::grid_id.eq(grid_id))
        .filter(users::active)
        .select(grid_assignments::user_id)
        .load(conn)
}

/// A grid's assignments changed: its version moves on.
pub fn touch_grid(conn: &mut DbConn, grid_id: &str, at: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(grids::table.find(grid_id))
        .set((grids::version.eq(grids::version + 1), grids::updated_at.eq(at)))
        .execute(conn)
}

/// Locks what a change of a grid's workers must hold before it reads or changes the
/// assignments and hands tasks on: the grid's households (in id order, as every writer locks
/// households), then the grid (PostgreSQL; SQLite's writer is exclusive already).
///
/// Whoever gives one of the grid's tasks to a worker either holds one of those households
/// (a reassignment, a visit, a tag decision: it locked the task's household first) or the
/// grid, shared ([`hold_workers`]: a new household, one moving in). So a change of workers waits
/// until such a writer has committed, and its hand-over then sees the task; or the writer waits
/// and reads the new workers. Without these locks a task given to a worker while that worker
/// left the grid (or was deactivated) stayed with them, in nobody's list.
pub fn lock_for_worker_change(conn: &mut DbConn, grid_id: &str) -> QueryResult<()> {
    if let DbConn::Postgres(c) = conn {
        households::table
            .filter(households::grid_id.eq(grid_id))
            .filter(households::removed_at.is_null())
            .order(households::id.asc())
            .select(households::id)
            .for_no_key_update()
            .load::<String>(c)?;
        grids::table.find(grid_id).select(grids::id).for_no_key_update().first::<String>(c).optional()?;
    }
    Ok(())
}

/// Keeps a grid's workers as they are until the transaction ends (PostgreSQL: the grid row
/// `FOR SHARE`): for a writer that gives tasks of a household no change of workers has locked
/// yet, a new one or one moving into the grid (see [`lock_for_worker_change`]).
pub fn hold_workers(conn: &mut DbConn, grid_id: &str) -> QueryResult<()> {
    if let DbConn::Postgres(c) = conn {
        grids::table.find(grid_id).select(grids::id).for_share().first::<String>(c).optional()?;
    }
    Ok(())
}

/// Ends every assignment of a worker (a deactivated account serves no grid); returns the grids
/// it served. Each grid is locked for the change first ([`lock_for_worker_change`]), in id
/// order.
pub fn unassign_everywhere(conn: &mut DbConn, user_id: &str) -> QueryResult<Vec<String>> {
    let grids = grids_of_worker(conn, user_id)?;
    for grid_id in &grids {
        lock_for_worker_change(conn, grid_id)?;
    }
    diesel::delete(grid_assignments::table.filter(grid_assignments::user_id.eq(user_id))).execute(conn)?;
    Ok(grids)
}

/// The grids a worker is currently assigned to.
pub fn grids_of_worker(conn: &mut DbConn, user_id: &str) -> QueryResult<Vec<String>> {
    grid_assignments::table
        .filter(grid_assignments::user_id.eq(user_id))
        .order(grid_assignments::grid_id.asc())
        .select(grid_assignments::grid_id)
        .load(conn)
}

pub fn is_assigned(conn: &mut DbConn, user_id: &str, grid_id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        grid_assignments::table
            .filter(grid_assignments::user_id.eq(user_id))
            .filter(grid_assignments::grid_id.eq(grid_id)),
    ))
    .get_result(conn)
}
