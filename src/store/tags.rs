//! Tag changes (proposals, decisions, the tag history) and the household columns a tag sets.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::db::DbConn;
use crate::db::schema::{households, tag_changes};
use crate::domain::{Tag, TagChangeStatus};
use crate::store::{JsonText, Narrow};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, PartialEq)]
#[diesel(table_name = tag_changes)]
pub struct TagChangeRow {
    pub id: String,
    pub household_id: String,
    pub community_id: String,
    /// The household's grid when the change was proposed (lists scope by its current grid).
    pub grid_id: String,
    pub from_tag: Tag,
    pub to_tag: Tag,
    /// Reason codes, stored as a JSON array.
    pub reasons: JsonText<Vec<String>>,
    pub note: Option<String>,
    pub proposed_by: String,
    pub proposed_at: NaiveDateTime,
    pub status: TagChangeStatus,
    pub decided_by: Option<String>,
    pub decided_at: Option<NaiveDateTime>,
    pub decision_note: Option<String>,
}

impl TagChangeRow {
    pub fn reasons(&self) -> Vec<String> {
        self.reasons.0.clone()
    }
}

/// The name of the unique index that allows one pending proposal per household.
const ONE_PENDING_INDEX: &str = "tag_changes_one_pending";

/// Inserts a change (a pending proposal goes through [`insert_pending`]).
pub fn insert(conn: &mut DbConn, row: &TagChangeRow) -> QueryResult<()> {
    diesel::insert_into(tag_changes::table).values(row).execute(conn).map(|_| ())
}

/// Inserts a pending proposal; false when the household has one already. The unique index
/// [`ONE_PENDING_INDEX`] decides, so two concurrent proposals cannot both get in. On PostgreSQL
/// the refused insert aborts the transaction: the caller answers, it does not carry on.
pub fn insert_pending(conn: &mut DbConn, row: &TagChangeRow) -> QueryResult<bool> {
    match insert(conn, row) {
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info))
            // PostgreSQL names the index; SQLite names the column of a partial index.
            if info.constraint_name() == Some(ONE_PENDING_INDEX)
                || info.message().contains("tag_changes.household_id") =>
        {
            Ok(false)
        }
        other => other.map(|()| true),
    }
}

pub fn find(conn: &mut DbConn, id: &str) -> QueryResult<Option<TagChangeRow>> {
    tag_changes::table.find(id).select(TagChangeRow::as_select()).first(conn).optional()
}

/// Records a decision on a change that is still pending; false when it is not (any more).
/// The conditional update is what makes two concurrent decisions safe: on PostgreSQL the
/// second waits for the first and then finds nothing pending.
pub fn decide(
    conn: &mut DbConn,
    id: &str,
    approve: bool,
    by: &str,
    at: NaiveDateTime,
    note: Option<&str>,
    from_tag: Tag,
) -> QueryResult<bool> {
    let status = if approve { TagChangeStatus::Approved } else { TagChangeStatus::Rejected };
    diesel::update(
        tag_changes::table.filter(tag_changes::id.eq(id)).filter(tag_changes::status.eq(TagChangeStatus::Pending)),
    )
    .set((
        tag_changes::status.eq(status),
        tag_changes::decided_by.eq(by),
        tag_changes::decided_at.eq(at),
        tag_changes::decision_note.eq(note),
        tag_changes::from_tag.eq(from_tag),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Ends a household's pending proposal without a decision (its household was removed); returns
/// its id, if it had one.
pub fn cancel_pending(
    conn: &mut DbConn,
    household_id: &str,
    by: &str,
    at: NaiveDateTime,
    why: &str,
) -> QueryResult<Option<String>> {
    let pending: Option<String> = tag_changes::table
        .filter(tag_changes::household_id.eq(household_id))
        .filter(tag_changes::status.eq("pending"))
        .select(tag_changes::id)
        .first(conn)
        .optional()?;
    if let Some(id) = &pending {
        diesel::update(tag_changes::table.find(id))
            .set((
                tag_changes::status.eq("cancelled"),
                tag_changes::decided_by.eq(by),
                tag_changes::decided_at.eq(at),
                tag_changes::decision_note.eq(why),
            ))
            .execute(conn)?;
    }
    Ok(pending)
}

/// Which changes a list shows; scope is applied by the caller.
#[derive(Default, Debug)]
pub struct ListFilter {
    pub status: Option<TagChangeStatus>,
    pub community_id: Option<String>,
    /// Only these communities (an officer's street or district).
    pub community_ids: Option<Vec<String>>,
    /// Only households currently in these grids.
    pub grid_ids: Option<Vec<String>>,
    pub household_id: Option<String>,
    /// Leave out the changes of removed households (what grid workers see).
    pub active_households_only: bool,
}

/// Changes in id order (ids are UUIDv7, so oldest proposal first), after the cursor id.
pub fn list(conn: &mut DbConn, f: &ListFilter, after: Option<&str>, limit: i64) -> QueryResult<Vec<TagChangeRow>> {
    tag_changes::table
        .inner_join(households::table)
        .select(TagChangeRow::as_select())
        .into_boxed()
        .narrow(f.status, |q, s| q.filter(tag_changes::status.eq(s)))
        .narrow(f.community_id.as_ref(), |q, c| q.filter(tag_changes::community_id.eq(c)))
        .narrow(f.community_ids.clone(), |q, ids| q.filter(tag_changes::community_id.eq_any(ids)))
        .narrow(f.grid_ids.clone(), |q, grids| q.filter(households::grid_id.eq_any(grids)))
        .narrow(f.household_id.as_ref(), |q, h| q.filter(tag_changes::household_id.eq(h)))
        .narrow(f.active_households_only.then_some(households::removed_at.is_null()), |q, active| q.filter(active))
        .narrow(after, |q, id| q.filter(tag_changes::id.gt(id.to_owned())))
        .order(tag_changes::id.asc())
        .limit(limit)
        .load(conn)
}

/// The applied (approved) changes of a household, newest first, after the cursor
/// `(decided_at, id)`.
pub fn history(
    conn: &mut DbConn,
    household_id: &str,
    after: Option<(NaiveDateTime, String)>,
    limit: i64,
) -> QueryResult<Vec<TagChangeRow>> {
    let mut q = tag_changes::table
        .filter(tag_changes::household_id.eq(household_id))
        .filter(tag_changes::status.eq("approved"))
        .select(TagChangeRow::as_select())
        .into_boxed();
    if let Some((at, id)) = after {
        q = q.filter(tag_changes::decided_at.lt(at).or(tag_changes::decided_at.eq(at).and(tag_changes::id.lt(id))));
    }
    q.order((tag_changes::decided_at.desc(), tag_changes::id.desc())).limit(limit).load(conn)
}

/// What applying a tag writes to the household.
#[derive(AsChangeset)]
#[diesel(table_name = households, treat_none_as_null = true)]
pub struct TagFields<'a> {
    pub tag: &'a str,
    /// JSON array of reason codes.
    pub tag_reasons: &'a str,
    /// `None` clears the note.
    pub tag_note: Option<&'a str>,
    pub tag_set_at: NaiveDateTime,
    pub tag_set_by: &'a str,
    pub tag_review_due_on: NaiveDate,
    pub version: i32,
    pub updated_at: NaiveDateTime,
}

/// Writes a tag to the household if it is still at `version`.
pub fn set_household_tag(
    conn: &mut DbConn,
    household_id: &str,
    version: i32,
    fields: &TagFields<'_>,
) -> QueryResult<bool> {
    diesel::update(households::table.filter(households::id.eq(household_id)).filter(households::version.eq(version)))
        .set(fields)
        .execute(conn)
        .map(|n| n == 1)
}
