//! Tasks.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::tasks;

/// Moves a grid's open tasks to its new primary worker (or to nobody: the secretary's queue).
pub fn move_open_tasks(
    conn: &mut DbConn,
    grid_id: &str,
    assignee: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(tasks::table.filter(tasks::grid_id.eq(grid_id)).filter(tasks::status.eq("open")))
        .set((tasks::assignee_id.eq(assignee), tasks::updated_at.eq(at), tasks::version.eq(tasks::version + 1)))
        .execute(conn)
}

/// Re-establishes the task invariant for one household after a change that touches it.
/// The scheduler arrives with the service plans; until then a household has no tasks to keep.
pub fn household_changed(_conn: &mut DbConn, _household_id: &str) -> QueryResult<()> {
    Ok(())
}

/// A household moved to another grid: its open tasks follow it (to the new grid's primary
/// worker, or to nobody).
pub fn household_moved(conn: &mut DbConn, household_id: &str, grid_id: &str) -> QueryResult<usize> {
    let primary = crate::store::communities::primary_worker(conn, grid_id)?;
    diesel::update(tasks::table.filter(tasks::household_id.eq(household_id)).filter(tasks::status.eq("open")))
        .set((
            tasks::grid_id.eq(grid_id),
            tasks::assignee_id.eq(primary),
            tasks::updated_at.eq(crate::store::now()),
            tasks::version.eq(tasks::version + 1),
        ))
        .execute(conn)
}
