//! Everything held about one household, for a resident's access request (PIPL art. 45), and
//! the erasure of what retention no longer allows to keep.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::{audit_events, households, members, tag_changes, tasks, visits};
use crate::domain::text::initials;
use crate::store::audit::EventRow;
use crate::store::households::MemberRow;
use crate::store::tags::TagChangeRow;
use crate::store::tasks::TaskRow;
use crate::store::visits::VisitRow;
use crate::store::{Opened, now};

/// The audit actions that gave someone a household's personal data in clear.
pub const REVEALS: [&str; 3] = ["member.pii_revealed", "household.pii_revealed", "household.record_copied"];

/// Every member the household ever had (removed ones too), in id order.
pub fn all_members(conn: &mut DbConn, household_id: &str) -> QueryResult<Vec<MemberRow>> {
    members::table
        .filter(members::household_id.eq(household_id))
        .order(members::id.asc())
        .select(MemberRow::as_select())
        .load(conn)
        .opened()
}

/// Every tag change of the household (any status), oldest first.
pub fn tag_changes(conn: &mut DbConn, household_id: &str) -> QueryResult<Vec<TagChangeRow>> {
    tag_changes::table
        .filter(tag_changes::household_id.eq(household_id))
        .order((tag_changes::proposed_at.asc(), tag_changes::id.asc()))
        .select(TagChangeRow::as_select())
        .load(conn)
}

/// Every visit of the household, oldest first.
pub fn visits(conn: &mut DbConn, household_id: &str) -> QueryResult<Vec<VisitRow>> {
    visits::table
        .filter(visits::household_id.eq(household_id))
        .order((visits::visited_at.asc(), visits::id.asc()))
        .select(VisitRow::as_select())
        .load(conn)
}

/// Every task of the household, by due date.
pub fn tasks(conn: &mut DbConn, household_id: &str) -> QueryResult<Vec<TaskRow>> {
    tasks::table
        .filter(tasks::household_id.eq(household_id))
        .order((tasks::due_on.asc(), tasks::id.asc()))
        .select(TaskRow::as_select())
        .load(conn)
}

/// Who was given the household's personal data in clear, and when: the reveals of its phone
/// and of its members' data, and the copies of its record, oldest first.
pub fn reveals(conn: &mut DbConn, household_id: &str, member_ids: &[String]) -> QueryResult<Vec<EventRow>> {
    let of_household = audit_events::entity_type.eq("household").and(audit_events::entity_id.eq(household_id));
    let of_members = audit_events::entity_type.eq("member").and(audit_events::entity_id.eq_any(member_ids.to_vec()));
    audit_events::table
        .filter(audit_events::action.eq_any(REVEALS.to_vec()))
        .filter(of_household.or(of_members))
        .order((audit_events::at.asc(), audit_events::id.asc()))
        .select(EventRow::as_select())
        .load(conn)
}

/// What one erasure batch did.
#[derive(Debug, Default, Clone)]
pub struct Erased {
    pub households: Vec<String>,
    pub members: usize,
}

/// Erases the personal fields of up to `limit` households removed before `before` and not yet
/// erased (in id order, each locked before its members): the household's phone and notes, its
/// members' ID numbers, phones, birth dates and notes, and of every name its initials. Tag
/// history, visits and tasks stay: past reports are computed from them.
pub fn erase_removed_before(conn: &mut DbConn, before: NaiveDateTime, limit: i64) -> QueryResult<Erased> {
    let due = households::table
        .filter(households::removed_at.lt(before))
        .filter(households::erased_at.is_null())
        .order(households::id.asc())
        .limit(limit)
        .select((households::id, households::head_name));
    let due: Vec<(String, String)> = match conn {
        DbConn::Postgres(c) => due.for_no_key_update().load(c)?,
        DbConn::Sqlite(c) => due.load(c)?,
    };
    let at = now();
    let mut erased = Erased::default();
    for (id, head_name) in due {
        diesel::update(households::table.find(&id))
            .set((
                households::head_name.eq(initials(&head_name)),
                households::phone.eq(None::<String>),
                households::phone_bidx.eq(None::<String>),
                households::notes.eq(None::<String>),
                households::removed_note.eq(None::<String>),
                households::erased_at.eq(at),
                households::version.eq(households::version + 1),
                households::updated_at.eq(at),
            ))
            .execute(conn)?;
        let people: Vec<(String, String)> = members::table
            .filter(members::household_id.eq(&id))
            .order(members::id.asc())
            .select((members::id, members::name))
            .load(conn)?;
        for (member_id, name) in people {
            diesel::update(members::table.find(&member_id))
                .set((
                    members::name.eq(initials(&name)),
                    members::id_number.eq(None::<String>),
                    members::id_number_bidx.eq(None::<String>),
                    members::phone.eq(None::<String>),
                    members::phone_bidx.eq(None::<String>),
                    members::birth_date.eq(None::<chrono::NaiveDate>),
                    members::notes.eq(None::<String>),
                    members::version.eq(members::version + 1),
                    members::updated_at.eq(at),
                ))
                .execute(conn)?;
            erased.members += 1;
        }
        erased.households.push(id);
    }
    Ok(erased)
}
