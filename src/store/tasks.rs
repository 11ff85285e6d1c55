//! Tasks and the task invariant: every active household has exactly one open task per active
//! template of its current tag's plan, and no other open tasks.
//!
//! `reconcile_household` re-establishes it for one household; it runs after every change that
//! touches a household (in the same transaction), from the periodic job and from
//! `gridlight tasks reconcile`. It is idempotent, and a unique index on open tasks
//! (`tasks_one_open`) with insert-or-ignore makes concurrent runs (several servers) harmless.

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveDateTime};
use chrono_tz::Tz;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::query_builder::{QueryFragment, QueryId};
use diesel::query_dsl::methods::LoadQuery;
use diesel::sql_types::{Integer, Nullable, Text, Timestamp, Untyped};

use crate::db::MultiBackend;

use crate::db::DbConn;
use crate::db::schema::{households, tasks, visits};
use crate::db::types::{Day, OptStamp, Stamp};
use crate::domain::schedule;
use crate::domain::{ServiceKind, Tag, TaskStatus};
use crate::error::ApiResult;
use crate::store::communities;
use crate::store::households::{self as hh, HouseholdRow};
use crate::store::plans::{self, TemplateRow};
use crate::store::{Narrow, new_id, now};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = tasks)]
#[diesel(treat_none_as_default_value = false)]
pub struct TaskRow {
    pub id: String,
    pub household_id: String,
    pub template_id: String,
    pub community_id: String,
    pub grid_id: String,
    pub tag: Tag,
    pub kind: ServiceKind,
    pub assignee_id: Option<String>,
    #[diesel(deserialize_as = Day)]
    pub due_on: NaiveDate,
    pub status: TaskStatus,
    #[diesel(deserialize_as = OptStamp)]
    pub completed_at: Option<NaiveDateTime>,
    pub visit_id: Option<String>,
    pub cancel_reason: Option<String>,
    pub version: i32,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
}

/// A task the schedule makes: what it is for, whose it is and when it is due. Every task is
/// born the same way, as [`NewTask::open`] says.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub id: String,
    pub household_id: String,
    pub template_id: String,
    pub community_id: String,
    pub grid_id: String,
    pub tag: Tag,
    pub kind: ServiceKind,
    pub assignee_id: Option<String>,
    pub due_on: NaiveDate,
}

impl NewTask {
    /// Its row: open, at version 1, created `at`.
    pub fn open(self, at: NaiveDateTime) -> TaskRow {
        let NewTask { id, household_id, template_id, community_id, grid_id, tag, kind, assignee_id, due_on } = self;
        TaskRow {
            id,
            household_id,
            template_id,
            community_id,
            grid_id,
            tag,
            kind,
            assignee_id,
            due_on,
            status: TaskStatus::Open,
            completed_at: None,
            visit_id: None,
            cancel_reason: None,
            version: 1,
            created_at: at,
            updated_at: at,
        }
    }
}

pub fn find(conn: &mut DbConn, id: &str) -> QueryResult<Option<TaskRow>> {
    tasks::table.find(id).select(TaskRow::as_select()).first(conn).optional()
}

/// [`find`], locked for a change (see [`crate::locked_first`]); lock the household first.
pub fn find_for_update(conn: &mut DbConn, id: &str) -> QueryResult<Option<TaskRow>> {
    crate::locked_first!(conn, tasks::table.find(id).select(TaskRow::as_select()))
}

/// Whose tasks a list shows.
#[derive(Debug, Clone)]
pub enum Assignee {
    /// The unassigned queue.
    Nobody,
    User(String),
}

/// Which tasks a list shows; scope is applied by the caller.
#[derive(Debug, Default)]
pub struct ListFilter {
    pub community_id: Option<String>,
    /// Only these communities (an officer's street or district).
    pub community_ids: Option<Vec<String>>,
    /// Only the tasks of households now in these grids and not removed (what grid workers see:
    /// a done task keeps the grid it was done in).
    pub current_households_in: Option<Vec<String>>,
    pub assignee: Option<Assignee>,
    pub status: Option<TaskStatus>,
    /// Only open tasks due before this date (today: the overdue ones).
    pub open_due_before: Option<NaiveDate>,
    pub due_before: Option<NaiveDate>,
    pub grid_id: Option<String>,
    pub household_id: Option<String>,
}

/// Soonest due first; the keyset is `(due_on, id)` ascending.
pub fn list(
    conn: &mut DbConn,
    f: &ListFilter,
    after: Option<(NaiveDate, String)>,
    limit: i64,
) -> QueryResult<Vec<TaskRow>> {
    tasks::table
        .select(TaskRow::as_select())
        .order((tasks::due_on.asc(), tasks::id.asc()))
        .limit(limit)
        .into_boxed()
        .narrow(f.community_id.as_ref(), |q, c| q.filter(tasks::community_id.eq(c)))
        .narrow(f.community_ids.clone(), |q, ids| q.filter(tasks::community_id.eq_any(ids)))
        .narrow(f.current_households_in.as_deref(), |q, grids| {
            q.filter(tasks::household_id.eq_any(hh::current_in(grids)))
        })
        .narrow(f.assignee.as_ref(), |q, a| match a {
            Assignee::Nobody => q.filter(tasks::assignee_id.is_null()),
            Assignee::User(id) => q.filter(tasks::assignee_id.eq(id)),
        })
        .narrow(f.status, |q, s| q.filter(tasks::status.eq(s)))
        .narrow(f.open_due_before, |q, d| q.filter(tasks::status.eq(TaskStatus::Open)).filter(tasks::due_on.lt(d)))
        .narrow(f.due_before, |q, d| q.filter(tasks::due_on.lt(d)))
        .narrow(f.grid_id.as_ref(), |q, g| q.filter(tasks::grid_id.eq(g)))
        .narrow(f.household_id.as_ref(), |q, h| q.filter(tasks::household_id.eq(h)))
        .narrow(after, |q, (due, id)| q.filter(tasks::due_on.gt(due).or(tasks::due_on.eq(due).and(tasks::id.gt(id)))))
        .load(conn)
}

/// Inserts one task (the reconcile inserts through the one-open-task index instead).
pub fn insert(conn: &mut DbConn, row: &TaskRow) -> QueryResult<()> {
    diesel::insert_into(tasks::table).values(row).execute(conn).map(|_| ())
}

/// Gives a task to a worker, or to nobody (the unassigned queue).
pub fn reassign(conn: &mut DbConn, id: &str, assignee: Option<&str>, at: NaiveDateTime) -> QueryResult<()> {
    diesel::update(tasks::table.find(id))
        .set((tasks::assignee_id.eq(assignee), tasks::updated_at.eq(at), tasks::version.eq(tasks::version + 1)))
        .execute(conn)
        .map(|_| ())
}

/// Cancels a task, saying why.
pub fn cancel(conn: &mut DbConn, id: &str, reason: &str, at: NaiveDateTime) -> QueryResult<()> {
    diesel::update(tasks::table.find(id))
        .set((
            tasks::status.eq(TaskStatus::Cancelled),
            tasks::cancel_reason.eq(reason),
            tasks::updated_at.eq(at),
            tasks::version.eq(tasks::version + 1),
        ))
        .execute(conn)
        .map(|_| ())
}

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

/// The grid's open tasks whose assignee no longer serves it (unassigned from the grid, or
/// deactivated) go to its primary worker, or to nobody (the secretary's queue): an open task is
/// always in someone's list.
pub fn hand_on(conn: &mut DbConn, grid_id: &str, at: NaiveDateTime) -> QueryResult<usize> {
    let primary = communities::primary_worker(conn, grid_id)?;
    let serving = communities::serving_workers(conn, grid_id)?;
    diesel::update(
        tasks::table
            .filter(tasks::grid_id.eq(grid_id))
            .filter(tasks::status.eq("open"))
            .filter(tasks::assignee_id.is_not_null())
            .filter(tasks::assignee_id.ne_all(serving)),
    )
    .set((tasks::assignee_id.eq(primary), tasks::updated_at.eq(at), tasks::version.eq(tasks::version + 1)))
    .execute(conn)
}

/// A household moved to another grid: its open tasks follow it (to the new grid's primary
/// worker, or to nobody).
pub fn household_moved(conn: &mut DbConn, household_id: &str, grid_id: &str) -> QueryResult<usize> {
    communities::hold_workers(conn, grid_id)?;
    let primary = communities::primary_worker(conn, grid_id)?;
    diesel::update(tasks::table.filter(tasks::household_id.eq(household_id)).filter(tasks::status.eq("open")))
        .set((
            tasks::grid_id.eq(grid_id),
            tasks::assignee_id.eq(primary),
            tasks::updated_at.eq(now()),
            tasks::version.eq(tasks::version + 1),
        ))
        .execute(conn)
}

/// The local date of a UTC time in a community's timezone.
pub fn local_date(at: NaiveDateTime, tz: Tz) -> NaiveDate {
    at.and_utc().with_timezone(&tz).date_naive()
}

/// What a reconcile did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Reconciled {
    pub households: u64,
    pub created: u64,
    pub cancelled: u64,
}

impl std::ops::AddAssign for Reconciled {
    fn add_assign(&mut self, o: Reconciled) {
        self.households += o.households;
        self.created += o.created;
        self.cancelled += o.cancelled;
    }
}

/// Inserts open tasks, skipping any (household, template) that already has one: the unique
/// index decides, so concurrent reconcilers cannot both insert.
fn insert_open_tasks(conn: &mut DbConn, rows: &[TaskRow]) -> QueryResult<usize> {
    match conn {
        DbConn::Postgres(c) => diesel::insert_into(tasks::table).values(rows).on_conflict_do_nothing().execute(c),
        DbConn::Sqlite(c) => diesel::insert_or_ignore_into(tasks::table).values(rows).execute(c),
    }
}

/// The local date of the household's latest visit of a kind.
fn last_visit_on(conn: &mut DbConn, household_id: &str, kind: ServiceKind, tz: Tz) -> QueryResult<Option<NaiveDate>> {
    let at: Option<NaiveDateTime> = visits::table
        .filter(visits::household_id.eq(household_id))
        .filter(visits::kind.eq(kind))
        .select(diesel::dsl::max(visits::visited_at))
        .first(conn)?;
    Ok(at.map(|t| local_date(t, tz)))
}

/// The date the household's current tag was applied (its registration for a never-tagged one).
fn tag_applied_on(h: &HouseholdRow, tz: Tz) -> NaiveDate {
    local_date(h.tag_set_at.unwrap_or(h.created_at), tz)
}

/// A new open task of a template for a household, due per the scheduling rule.
pub fn new_task(
    conn: &mut DbConn,
    h: &HouseholdRow,
    t: &TemplateRow,
    tz: Tz,
    not_before: Option<NaiveDate>,
) -> QueryResult<TaskRow> {
    let last = last_visit_on(conn, &h.id, t.kind, tz)?;
    let interval = u32::try_from(t.interval_days).unwrap_or(1);
    let mut due = schedule::due_on(last, tag_applied_on(h, tz), interval);
    if let Some(floor) = not_before {
        due = due.max(floor);
    }
    let task = NewTask {
        id: new_id(),
        household_id: h.id.clone(),
        template_id: t.id.clone(),
        community_id: h.community_id.clone(),
        grid_id: h.grid_id.clone(),
        tag: h.tag,
        kind: t.kind,
        assignee_id: communities::primary_worker(conn, &h.grid_id)?,
        due_on: due,
    };
    Ok(task.open(now()))
}

/// A community's timezone (see [`communities::timezone`]), read once per run.
fn timezone_of(conn: &mut DbConn, cache: &mut HashMap<String, Tz>, community_id: &str) -> ApiResult<Tz> {
    if let Some(tz) = cache.get(community_id) {
        return Ok(*tz);
    }
    let tz = communities::timezone(conn, community_id)?;
    cache.insert(community_id.to_owned(), tz);
    Ok(tz)
}

/// The households a reconcile covers, already locked by the caller: the ids from `first` to
/// `last` inclusive (a run of the job; one household: both the same), or a list of ids (a batch
/// of changes, such as the visits of one sync push).
enum Span<'a> {
    Range { first: &'a str, last: &'a str },
    Ids { ids: &'a [String], postgres: bool },
}

/// A condition on a household id column as SQL around two binds, the same shape for both kinds
/// of span so that each statement keeps one type: `{pre}{a}{mid}{b}{post}`.
struct SpanSql {
    pre: String,
    a: String,
    mid: String,
    b: String,
    post: &'static str,
}

impl Span<'_> {
    fn on(&self, column: &str) -> SpanSql {
        match self {
            Span::Range { first, last } => SpanSql {
                pre: format!("{column} BETWEEN "),
                a: (*first).to_owned(),
                mid: " AND ".into(),
                b: (*last).to_owned(),
                post: "",
            },
            // The list goes as one JSON array, whatever its length; the lower bound helps the
            // planner and is always true.
            Span::Ids { ids, postgres } => SpanSql {
                pre: format!("{column} >= "),
                a: ids.iter().min().cloned().unwrap_or_default(),
                mid: if *postgres {
                    format!(" AND {column} IN (SELECT jsonb_array_elements_text(CAST(")
                } else {
                    format!(" AND {column} IN (SELECT value FROM json_each(")
                },
                b: serde_json::Value::from(ids.to_vec()).to_string(),
                post: if *postgres { " AS jsonb)))" } else { "))" },
            },
        }
    }
}

/// `UPDATE tasks SET {set}` (and the next version, at `at`) for the open tasks of the span's
/// households that match `condition`.
fn update_open_tasks(
    span: &Span<'_>,
    at: NaiveDateTime,
    set: &'static str,
    condition: &'static str,
) -> impl RunQueryDsl<DbConn> + QueryFragment<MultiBackend> + QueryId {
    let on = span.on("household_id");
    sql::<Integer>("UPDATE tasks SET ")
        .sql(set)
        .sql(", version = version + 1, updated_at = ")
        .bind::<Timestamp, _>(at)
        .sql(" WHERE status = 'open' AND ")
        .sql(&on.pre)
        .bind::<Text, _>(on.a)
        .sql(&on.mid)
        .bind::<Text, _>(on.b)
        .sql(on.post)
        .sql(" AND ")
        .sql(condition)
}

/// Open tasks whose template is no longer an active template of the household's current tag
/// (or whose household was removed) are cancelled.
fn cancel_stale(
    span: &Span<'_>,
    at: NaiveDateTime,
) -> impl RunQueryDsl<DbConn> + QueryFragment<MultiBackend> + QueryId {
    update_open_tasks(
        span,
        at,
        "status = 'cancelled', \
         cancel_reason = CASE WHEN EXISTS (SELECT 1 FROM households h \
           WHERE h.id = tasks.household_id AND h.removed_at IS NOT NULL) \
           THEN 'household removed' ELSE 'no longer in the household''s service plan' END",
        "NOT EXISTS (SELECT 1 FROM households h JOIN service_templates t ON t.id = tasks.template_id \
         WHERE h.id = tasks.household_id AND h.removed_at IS NULL AND t.active AND t.tag = h.tag \
         AND t.community_id = h.community_id)",
    )
}

/// Open tasks held by someone who does not (or no longer) serve the task's grid as an active
/// worker go to the grid's active primary worker, or to nobody.
fn hand_on_span(
    span: &Span<'_>,
    at: NaiveDateTime,
) -> impl RunQueryDsl<DbConn> + QueryFragment<MultiBackend> + QueryId {
    update_open_tasks(
        span,
        at,
        "assignee_id = (SELECT ga.user_id FROM grid_assignments ga \
           JOIN users u ON u.id = ga.user_id WHERE ga.grid_id = tasks.grid_id AND ga.is_primary AND u.active)",
        "assignee_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM grid_assignments ga \
           JOIN users u ON u.id = ga.user_id \
           WHERE ga.grid_id = tasks.grid_id AND ga.user_id = tasks.assignee_id AND u.active)",
    )
}

/// Every (household, active template of its tag) without an open task, with what the due date
/// and the assignee (the grid's active primary worker) depend on.
fn missing(span: &Span<'_>) -> impl LoadQuery<'static, DbConn, Missing> {
    let on = span.on("h.id");
    sql::<Untyped>(
        "SELECT h.id AS household_id, h.community_id, h.grid_id, h.tag, h.tag_set_at, h.created_at, \
           t.id AS template_id, t.kind, t.interval_days, ga.user_id AS assignee_id, \
           (SELECT max(v.visited_at) FROM visits v WHERE v.household_id = h.id AND v.kind = t.kind) AS last_visit \
         FROM households h \
         JOIN service_templates t ON t.community_id = h.community_id AND t.tag = h.tag AND t.active \
         LEFT JOIN grid_assignments ga ON ga.grid_id = h.grid_id AND ga.is_primary \
           /* the worker looked up, not listed: SQLite probed the (grid, user) key once per \
              active user for every row (12,300 users: 300 ms for 100 households) */ \
           AND EXISTS (SELECT 1 FROM users u WHERE u.id = ga.user_id AND u.active) \
         WHERE ",
    )
    .sql(&on.pre)
    .bind::<Text, _>(on.a)
    .sql(&on.mid)
    .bind::<Text, _>(on.b)
    .sql(on.post)
    .sql(
        " AND h.removed_at IS NULL AND NOT EXISTS (SELECT 1 FROM tasks x \
           WHERE x.household_id = h.id AND x.template_id = t.id AND x.status = 'open')",
    )
}

#[derive(QueryableByName)]
struct Missing {
    #[diesel(sql_type = Text)]
    household_id: String,
    #[diesel(sql_type = Text)]
    community_id: String,
    #[diesel(sql_type = Text)]
    grid_id: String,
    #[diesel(sql_type = Text)]
    tag: Tag,
    #[diesel(sql_type = Nullable<Timestamp>)]
    tag_set_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Timestamp)]
    created_at: NaiveDateTime,
    #[diesel(sql_type = Text)]
    template_id: String,
    #[diesel(sql_type = Text)]
    kind: ServiceKind,
    #[diesel(sql_type = Integer)]
    interval_days: i32,
    #[diesel(sql_type = Nullable<Text>)]
    assignee_id: Option<String>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    last_visit: Option<NaiveDateTime>,
}

/// Re-establishes the invariant for the households of `span` in a few set-based statements:
/// the same rule for one household after a change and for thousands in the periodic job.
fn reconcile_span(
    conn: &mut DbConn,
    span: Span<'_>,
    households: u64,
    timezones: &mut HashMap<String, Tz>,
) -> ApiResult<Reconciled> {
    Ok(reconcile_span_created(conn, span, households, timezones)?.0)
}

/// [`reconcile_span`], also answering the tasks it set out to create: (household, kind).
fn reconcile_span_created(
    conn: &mut DbConn,
    span: Span<'_>,
    households: u64,
    timezones: &mut HashMap<String, Tz>,
) -> ApiResult<(Reconciled, Vec<(String, ServiceKind)>)> {
    let at = now();
    let cancelled = cancel_stale(&span, at).execute(conn)?;
    hand_on_span(&span, at).execute(conn)?;
    let missing: Vec<Missing> = missing(&span).load(conn)?;
    let mut rows = Vec::with_capacity(missing.len());
    for m in missing {
        let tz = timezone_of(conn, timezones, &m.community_id)?;
        let tag_day = local_date(m.tag_set_at.unwrap_or(m.created_at), tz);
        let last = m.last_visit.map(|t| local_date(t, tz));
        let task = NewTask {
            id: new_id(),
            due_on: schedule::due_on(last, tag_day, u32::try_from(m.interval_days).unwrap_or(1)),
            household_id: m.household_id,
            template_id: m.template_id,
            community_id: m.community_id,
            grid_id: m.grid_id,
            tag: m.tag,
            kind: m.kind,
            assignee_id: m.assignee_id,
        };
        rows.push(task.open(at));
    }
    let mut created = 0;
    for slice in rows.chunks(1000) {
        created += insert_open_tasks(conn, slice)?;
    }
    let made = rows.into_iter().map(|r| (r.household_id, r.kind)).collect();
    Ok((Reconciled { households, created: created as u64, cancelled: cancelled as u64 }, made))
}

/// Re-establishes the task invariant for one household, inside the caller's transaction. The
/// household row is locked first (PostgreSQL), so a concurrent tag change is seen, not raced.
pub fn household_changed(conn: &mut DbConn, household_id: &str) -> ApiResult<Reconciled> {
    if hh::find_for_update(conn, household_id)?.is_none() {
        return Ok(Reconciled::default());
    }
    reconcile_span(conn, Span::Range { first: household_id, last: household_id }, 1, &mut HashMap::new())
}

/// [`household_changed`] for several households at once (a batch of changes), in a few
/// statements for them all; the caller has locked them. Answers the tasks it created, as
/// (household, kind), for the changes' audit events.
pub fn households_changed(conn: &mut DbConn, household_ids: &[String]) -> ApiResult<Vec<(String, ServiceKind)>> {
    if household_ids.is_empty() {
        return Ok(Vec::new());
    }
    let span = Span::Ids { ids: household_ids, postgres: matches!(conn, DbConn::Postgres(_)) };
    Ok(reconcile_span_created(conn, span, household_ids.len() as u64, &mut HashMap::new())?.1)
}

/// Reconciles the next `batch` households after `after` (by id), in the caller's transaction;
/// returns what it did and the last id seen (`None` when there are no more).
pub fn reconcile_batch(conn: &mut DbConn, after: Option<&str>, batch: i64) -> ApiResult<(Reconciled, Option<String>)> {
    // Ids are never empty, so "" precedes them all. FOR NO KEY UPDATE, as every writer takes:
    // FOR UPDATE would also block the key-share locks of inserts referencing the households.
    let next = households::table
        .select(households::id)
        .filter(households::id.gt(after.unwrap_or("").to_owned()))
        .order(households::id.asc())
        .limit(batch);
    let ids: Vec<String> = match conn {
        DbConn::Postgres(c) => next.for_no_key_update().load(c)?,
        DbConn::Sqlite(c) => next.load(c)?,
    };
    let (Some(first), Some(last)) = (ids.first(), ids.last()) else { return Ok((Reconciled::default(), None)) };
    let done = reconcile_span(conn, Span::Range { first, last }, ids.len() as u64, &mut HashMap::new())?;
    Ok((done, Some(last.to_owned())))
}

/// An open task as a visit completes it: (id, household, kind, created_at).
pub type OpenTask = (String, String, ServiceKind, NaiveDateTime);

/// The open tasks of some households, by id.
pub fn open_of(conn: &mut DbConn, household_ids: &[String]) -> QueryResult<Vec<OpenTask>> {
    tasks::table
        .filter(tasks::household_id.eq_any(household_ids.to_vec()))
        .filter(tasks::status.eq("open"))
        .select((tasks::id, tasks::household_id, tasks::kind, tasks::created_at))
        .order(tasks::id.asc())
        .load(conn)
}

/// Completes these open tasks (id, created_at) with a visit; returns their ids. The caller
/// then reconciles, which schedules the successors from the visit's date.
pub fn complete(
    conn: &mut DbConn,
    open: &[(String, NaiveDateTime)],
    visit_id: &str,
    visited_at: NaiveDateTime,
) -> QueryResult<Vec<String>> {
    let at = now();
    for (id, created_at) in open {
        diesel::update(tasks::table.find(id))
            .set((
                tasks::status.eq("done"),
                // When the visit took place (a visit made offline on the due date and synced
                // the next day is on time), but not before the task was scheduled.
                tasks::completed_at.eq(Some(visited_at.max(*created_at))),
                tasks::visit_id.eq(Some(visit_id)),
                tasks::updated_at.eq(at),
                tasks::version.eq(tasks::version + 1),
            ))
            .execute(conn)?;
    }
    Ok(open.iter().map(|(id, _)| id.clone()).collect())
}

/// The tasks a visit completed.
pub fn completed_by(conn: &mut DbConn, visit_ids: &[String]) -> QueryResult<Vec<(String, String)>> {
    tasks::table
        .filter(tasks::visit_id.eq_any(visit_ids.to_vec()))
        .order(tasks::id.asc())
        .select((tasks::visit_id.assume_not_null(), tasks::id))
        .load(conn)
}

/// Recomputes the due dates of open tasks whose template's interval changed.
pub fn reschedule_template(conn: &mut DbConn, template_id: &str) -> ApiResult<usize> {
    let open: Vec<TaskRow> = tasks::table
        .filter(tasks::template_id.eq(template_id))
        .filter(tasks::status.eq("open"))
        .select(TaskRow::as_select())
        .load(conn)?;
    let mut changed = 0;
    let mut cache: HashMap<String, Tz> = HashMap::new();
    for task in open {
        let Some(h) = hh::find(conn, &task.household_id)? else { continue };
        let tz = timezone_of(conn, &mut cache, &h.community_id)?;
        let Some(tpl) =
            plans::active_templates(conn, &h.community_id, h.tag)?.into_iter().find(|t| t.id == template_id)
        else {
            continue;
        };
        let fresh = new_task(conn, &h, &tpl, tz, None)?;
        if fresh.due_on != task.due_on {
            diesel::update(tasks::table.find(&task.id))
                .set((
                    tasks::due_on.eq(fresh.due_on),
                    tasks::updated_at.eq(now()),
                    tasks::version.eq(tasks::version + 1),
                ))
                .execute(conn)?;
            changed += 1;
        }
    }
    Ok(changed)
}
