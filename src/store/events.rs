//! Events for third-party apps, read from the sync change log (`sync_log` rows that name an
//! event; migrations `…events_webhooks`). The feed (`GET /events`) and the webhook deliveries
//! read them by `event_id`, which follows commit order: on SQLite it is the row's `seq` (one
//! writer at a time); on PostgreSQL [`sequence`] numbers event rows once they are committed, so
//! a transaction that commits late is numbered late and never skipped.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::db::DbConn;
use crate::db::schema::{event_counter, event_marks, households, sync_log, tasks};

/// Every kind of event, as its `type` names it.
pub const TYPES: [&str; 10] = [
    "household.registered",
    "household.tag_changed",
    "household.moved",
    "household.removed",
    "tag_change.proposed",
    "tag_change.decided",
    "task.reassigned",
    "task.overdue",
    "visit.recorded",
    "review.due",
];

/// An event as the log keeps it.
#[derive(Debug, Clone, Queryable)]
pub struct EventRow {
    pub id: i64,
    pub event: String,
    pub at: NaiveDateTime,
    pub entity: String,
    pub entity_id: String,
    pub community_id: Option<String>,
    pub grid_id: Option<String>,
    pub household_id: Option<String>,
    pub detail: Option<String>,
}

/// Whose events a reader sees.
#[derive(Debug, Clone)]
pub enum EventScope {
    All,
    Communities(Vec<String>),
    /// A grid worker's: the events of its grids' households (and of those that left them).
    Grids {
        community_id: String,
        grid_ids: Vec<String>,
    },
}

/// Numbers the event rows committed since the last numbering, in `seq` order (PostgreSQL; on
/// SQLite every event row is numbered as it is written). Ids are handed out when a row becomes
/// visible here, not when it was written, so a row whose transaction commits late is numbered
/// late — after every id a reader may already have passed — and none is skipped. One instance
/// numbers at a time (the counter's row lock); with `wait` false, one that finds it busy leaves
/// the work to the other. Returns how many were numbered.
pub fn sequence(conn: &mut DbConn, wait: bool) -> QueryResult<usize> {
    let DbConn::Postgres(pg) = conn else { return Ok(0) };
    pg.transaction(|c| {
        let counter = event_counter::table.select(event_counter::last).for_update();
        let last: Option<i64> =
            if wait { counter.first(c).optional()? } else { counter.skip_locked().first(c).optional()? };
        let Some(last) = last else { return Ok(0) };
        // This statement's snapshot is taken after the lock: it sees every number handed out
        // before, and every row committed since.
        let numbered = diesel::sql_query(
            "UPDATE sync_log s SET event_id = $1 + n.rn \
             FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS rn FROM sync_log \
                   WHERE event IS NOT NULL AND event_id IS NULL ORDER BY seq LIMIT 10000) n \
             WHERE s.seq = n.seq",
        )
        .bind::<BigInt, _>(last)
        .execute(c)?;
        if numbered > 0 {
            diesel::update(event_counter::table).set(event_counter::last.eq(last + numbered as i64)).execute(c)?;
        }
        Ok(numbered)
    })
}

/// Whether events wait to be numbered (PostgreSQL), by the partial index: a cheap look before
/// [`sequence`] takes the counter's lock.
pub fn unsequenced(conn: &mut DbConn) -> QueryResult<bool> {
    if !matches!(conn, DbConn::Postgres(_)) {
        return Ok(false);
    }
    let any: Vec<i64> = sync_log::table
        .filter(sync_log::event.is_not_null().and(sync_log::event_id.is_null()))
        .select(sync_log::seq)
        .limit(1)
        .load(conn)?;
    Ok(!any.is_empty())
}

/// Up to `limit` events after `after` in `scope`, of `types` (`None`: all), by id.
pub fn after(
    conn: &mut DbConn,
    scope: &EventScope,
    types: Option<&[String]>,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<EventRow>> {
    let mut q = sync_log::table.filter(sync_log::event_id.gt(after)).into_boxed();
    match scope {
        EventScope::All => {}
        EventScope::Communities(ids) => q = q.filter(sync_log::community_id.eq_any(ids.clone())),
        EventScope::Grids { community_id, grid_ids } => {
            q = q
                .filter(sync_log::community_id.eq(community_id.clone()))
                .filter(sync_log::grid_id.eq_any(grid_ids.clone()).or(sync_log::old_grid_id.eq_any(grid_ids.clone())))
        }
    }
    if let Some(types) = types {
        q = q.filter(sync_log::event.eq_any(types.to_vec()));
    }
    q.order(sync_log::event_id.asc())
        .limit(limit)
        .select((
            sync_log::event_id.assume_not_null(),
            sync_log::event.assume_not_null(),
            sync_log::at,
            sync_log::entity,
            sync_log::entity_id,
            sync_log::community_id,
            sync_log::grid_id,
            sync_log::household_id,
            sync_log::detail,
        ))
        .load(conn)
}

/// The highest event id handed out so far (a new subscription starts after it).
pub fn last_id(conn: &mut DbConn) -> QueryResult<i64> {
    if matches!(conn, DbConn::Postgres(_)) {
        // The sequencer moves the counter in the transaction that numbers the rows.
        return event_counter::table.select(event_counter::last).first(conn);
    }
    let max: Option<i64> = sync_log::table
        .filter(sync_log::event_id.is_not_null())
        .select(diesel::dsl::max(sync_log::event_id))
        .first(conn)?;
    Ok(max.unwrap_or(0))
}

/// The highest event id pruned with the log: a reader that stopped before it has missed events.
pub fn pruned_through(conn: &mut DbConn) -> QueryResult<i64> {
    event_counter::table.select(event_counter::pruned_through).first(conn)
}

/// Remembers, before the log is pruned up to `before`, the highest event id that goes.
pub fn note_pruning(conn: &mut DbConn, before: NaiveDateTime) -> QueryResult<()> {
    let max: Option<i64> =
        sync_log::table.filter(sync_log::at.lt(before)).select(diesel::dsl::max(sync_log::event_id)).first(conn)?;
    if let Some(max) = max {
        diesel::update(event_counter::table.filter(event_counter::pruned_through.lt(max)))
            .set(event_counter::pruned_through.eq(max))
            .execute(conn)?;
    }
    diesel::delete(event_marks::table.filter(event_marks::at.lt(before - chrono::Duration::days(365))))
        .execute(conn)?;
    Ok(())
}

/// What the job emitted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Emitted {
    pub overdue: usize,
    pub reviews: usize,
}

impl std::ops::AddAssign for Emitted {
    fn add_assign(&mut self, other: Emitted) {
        self.overdue += other.overdue;
        self.reviews += other.reviews;
    }
}

/// From which due dates on [`emit_due`] looks, for each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    pub overdue: NaiveDate,
    pub reviews: NaiveDate,
}

impl Resume {
    /// Both kinds from `day` on.
    pub fn from(day: NaiveDate) -> Resume {
        Resume { overdue: day, reviews: day }
    }
}

/// Emits, for one community whose calendar says `today`, `task.overdue` for open tasks due
/// before `today` and `review.due` for households whose tag review falls due by `today` — each
/// once per record and date, by its mark; at most `limit` of each kind, earliest due first
/// (the caller repeats until fewer come back). Only what fell due from `from` on is looked at:
/// older ones were emitted by earlier runs, or by the batch before, which returns where the next
/// starts — the latest date it reached (rows of that date it did not reach are looked at again,
/// those it marked passed over) — so that working through a backlog looks at each record about
/// once, instead of passing over every one already marked at each batch.
pub fn emit_due(
    conn: &mut DbConn,
    community: &str,
    today: NaiveDate,
    from: Resume,
    at: NaiveDateTime,
    limit: i64,
) -> QueryResult<(Emitted, Resume)> {
    let (overdue, overdue_to) = mark(
        conn,
        "SELECT 'task.overdue', t.id, t.due_on, {at} FROM tasks t \
         WHERE t.community_id = {community} \
           AND t.status = 'open' AND t.due_on < {today} AND t.due_on >= {from} \
           AND NOT EXISTS (SELECT 1 FROM event_marks m \
                           WHERE m.event = 'task.overdue' AND m.entity_id = t.id AND m.due_on = t.due_on) \
         ORDER BY t.due_on LIMIT {limit}",
        community,
        today,
        from.overdue,
        at,
        limit,
    )?;
    type Due = (String, String, String, Option<String>, String, String, NaiveDate);
    let due: Vec<Due> = tasks::table
        .inner_join(households::table.on(households::id.eq(tasks::household_id)))
        .filter(tasks::id.eq_any(&overdue))
        .select((
            tasks::id,
            households::community_id,
            tasks::tag,
            tasks::assignee_id,
            households::id,
            households::grid_id,
            tasks::due_on,
        ))
        .load(conn)?;
    for (id, community, tag, assignee, household, grid, due_on) in &due {
        let detail = serde_json::json!({"due_on": due_on, "tag": tag, "assignee_id": assignee});
        log_event(conn, "task", id, community, grid, household, "task.overdue", &detail)?;
    }
    let (reviews, reviews_to) = mark(
        conn,
        "SELECT 'review.due', h.id, h.tag_review_due_on, {at} FROM households h \
         WHERE h.community_id = {community} \
           AND h.removed_at IS NULL AND h.tag_review_due_on <= {today} AND h.tag_review_due_on >= {from} \
           AND NOT EXISTS (SELECT 1 FROM event_marks m \
                           WHERE m.event = 'review.due' AND m.entity_id = h.id AND m.due_on = h.tag_review_due_on) \
         ORDER BY h.tag_review_due_on LIMIT {limit}",
        community,
        today,
        from.reviews,
        at,
        limit,
    )?;
    type Review = (String, String, String, String, Option<NaiveDate>);
    let due: Vec<Review> = households::table
        .filter(households::id.eq_any(&reviews))
        .select((
            households::id,
            households::community_id,
            households::tag,
            households::grid_id,
            households::tag_review_due_on,
        ))
        .load(conn)?;
    for (id, community, tag, grid, due_on) in &due {
        let detail = serde_json::json!({"due_on": due_on, "tag": tag});
        log_event(conn, "household", id, community, grid, id, "review.due", &detail)?;
    }
    let next = Resume { overdue: overdue_to.unwrap_or(from.overdue), reviews: reviews_to.unwrap_or(from.reviews) };
    Ok((Emitted { overdue: overdue.len(), reviews: reviews.len() }, next))
}

/// Inserts the marks `select` finds, returning their records' ids: on both backends
/// `INSERT … ON CONFLICT DO NOTHING RETURNING` names only the rows it inserted, so two instances
/// running the job at once emit each event once.
fn mark(
    conn: &mut DbConn,
    select: &str,
    community: &str,
    today: NaiveDate,
    from: NaiveDate,
    at: NaiveDateTime,
    limit: i64,
) -> QueryResult<(Vec<String>, Option<NaiveDate>)> {
    #[derive(QueryableByName)]
    struct Marked {
        #[diesel(sql_type = Text)]
        entity_id: String,
        #[diesel(sql_type = diesel::sql_types::Date)]
        due_on: NaiveDate,
    }
    let placeholders: [&str; 5] = match conn {
        DbConn::Postgres(_) => ["$1", "$2", "$3", "$4", "$5"],
        DbConn::Sqlite(_) => ["?1", "?2", "?3", "?4", "?5"],
    };
    let mut select = select.to_owned();
    for (name, p) in ["{community}", "{today}", "{from}", "{at}", "{limit}"].iter().zip(placeholders) {
        select = select.replace(name, p);
    }
    let statement = format!(
        "INSERT INTO event_marks (event, entity_id, due_on, at) {select} \
         ON CONFLICT DO NOTHING RETURNING entity_id, due_on"
    );
    let rows: Vec<Marked> = diesel::sql_query(statement)
        .bind::<Text, _>(community)
        .bind::<diesel::sql_types::Date, _>(today)
        .bind::<diesel::sql_types::Date, _>(from)
        .bind::<diesel::sql_types::Timestamp, _>(at)
        .bind::<BigInt, _>(limit)
        .load(conn)?;
    let to = rows.iter().map(|m| m.due_on).max();
    Ok((rows.into_iter().map(|m| m.entity_id).collect(), to))
}

/// A log row that is only an event (the job's): the record did not change.
#[allow(clippy::too_many_arguments)]
fn log_event(
    conn: &mut DbConn,
    entity: &str,
    entity_id: &str,
    community_id: &str,
    grid_id: &str,
    household_id: &str,
    event: &str,
    detail: &serde_json::Value,
) -> QueryResult<usize> {
    diesel::insert_into(sync_log::table)
        .values((
            sync_log::entity.eq(entity),
            sync_log::entity_id.eq(entity_id),
            sync_log::community_id.eq(community_id),
            sync_log::grid_id.eq(grid_id),
            sync_log::household_id.eq(household_id),
            sync_log::event.eq(event),
            sync_log::detail.eq(detail.to_string()),
        ))
        .execute(conn)
}
