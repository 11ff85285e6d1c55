//! Tasks and the task invariant: every active household has exactly one open task per active
//! template of its current tag's plan, and no other open tasks.
//!
//! `reconcile_household` re-establishes it for one household; it runs after every change that
//! touches a household (in the same transaction), from the periodic job and from
//! `gridlight tasks reconcile`. It is idempotent, and a unique index on open tasks
//! (`tasks_one_open`) with insert-or-ignore makes concurrent runs (several servers) harmless.

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::{households, tasks, visits};
use crate::domain::schedule;
use crate::store::communities::{self, CommunityRow};
use crate::store::households::{self as hh, HouseholdRow};
use crate::store::plans::{self, TemplateRow};
use crate::store::{new_id, now};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = tasks)]
#[diesel(treat_none_as_default_value = false)]
pub struct TaskRow {
    pub id: String,
    pub household_id: String,
    pub template_id: String,
    pub community_id: String,
    pub grid_id: String,
    pub tag: String,
    pub kind: String,
    pub assignee_id: Option<String>,
    pub due_on: NaiveDate,
    pub status: String,
    pub completed_at: Option<NaiveDateTime>,
    pub visit_id: Option<String>,
    pub cancel_reason: Option<String>,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub fn find(conn: &mut DbConn, id: &str) -> QueryResult<Option<TaskRow>> {
    tasks::table.find(id).select(TaskRow::as_select()).first(conn).optional()
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

/// A household moved to another grid: its open tasks follow it (to the new grid's primary
/// worker, or to nobody).
pub fn household_moved(conn: &mut DbConn, household_id: &str, grid_id: &str) -> QueryResult<usize> {
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
pub fn local_date(at: NaiveDateTime, timezone: &str) -> NaiveDate {
    let tz: chrono_tz::Tz = timezone.parse().unwrap_or(chrono_tz::Asia::Shanghai);
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

/// Re-establishes the task invariant for one household, inside the caller's transaction.
pub fn household_changed(conn: &mut DbConn, household_id: &str) -> QueryResult<Reconciled> {
    let mut cache = HashMap::new();
    reconcile_household(conn, household_id, &mut cache)
}

/// Inserts an open task unless the household already has one for the template (the unique
/// index decides, so concurrent reconcilers cannot both insert).
fn insert_open_task(conn: &mut DbConn, row: &TaskRow) -> QueryResult<usize> {
    match conn {
        DbConn::Postgres(c) => diesel::insert_into(tasks::table).values(row).on_conflict_do_nothing().execute(c),
        DbConn::Sqlite(c) => diesel::insert_or_ignore_into(tasks::table).values(row).execute(c),
    }
}

/// The local date of the household's latest visit of a kind.
fn last_visit_on(conn: &mut DbConn, household_id: &str, kind: &str, timezone: &str) -> QueryResult<Option<NaiveDate>> {
    let at: Option<NaiveDateTime> = visits::table
        .filter(visits::household_id.eq(household_id))
        .filter(visits::kind.eq(kind))
        .select(diesel::dsl::max(visits::visited_at))
        .first(conn)?;
    Ok(at.map(|t| local_date(t, timezone)))
}

/// The date the household's current tag was applied (its registration for a never-tagged one).
fn tag_applied_on(h: &HouseholdRow, timezone: &str) -> NaiveDate {
    local_date(h.tag_set_at.unwrap_or(h.created_at), timezone)
}

/// A new open task of a template for a household, due per the scheduling rule.
pub fn new_task(
    conn: &mut DbConn,
    h: &HouseholdRow,
    t: &TemplateRow,
    timezone: &str,
    not_before: Option<NaiveDate>,
) -> QueryResult<TaskRow> {
    let last = last_visit_on(conn, &h.id, &t.kind, timezone)?;
    let interval = u32::try_from(t.interval_days).unwrap_or(1);
    let mut due = schedule::due_on(last, tag_applied_on(h, timezone), interval);
    if let Some(floor) = not_before {
        due = due.max(floor);
    }
    let at = now();
    Ok(TaskRow {
        id: new_id(),
        household_id: h.id.clone(),
        template_id: t.id.clone(),
        community_id: h.community_id.clone(),
        grid_id: h.grid_id.clone(),
        tag: h.tag.clone(),
        kind: t.kind.clone(),
        assignee_id: communities::primary_worker(conn, &h.grid_id)?,
        due_on: due,
        status: "open".to_owned(),
        completed_at: None,
        visit_id: None,
        cancel_reason: None,
        version: 1,
        created_at: at,
        updated_at: at,
    })
}

fn open_tasks(conn: &mut DbConn, household_id: &str) -> QueryResult<Vec<TaskRow>> {
    tasks::table
        .filter(tasks::household_id.eq(household_id))
        .filter(tasks::status.eq("open"))
        .select(TaskRow::as_select())
        .load(conn)
}

fn cancel(conn: &mut DbConn, ids: &[String], reason: &str) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::update(tasks::table.filter(tasks::id.eq_any(ids.to_vec())).filter(tasks::status.eq("open")))
        .set((
            tasks::status.eq("cancelled"),
            tasks::cancel_reason.eq(reason),
            tasks::updated_at.eq(now()),
            tasks::version.eq(tasks::version + 1),
        ))
        .execute(conn)
}

/// A community's timezone, read once per run.
fn timezone_of(
    conn: &mut DbConn,
    cache: &mut HashMap<String, CommunityRow>,
    community_id: &str,
) -> QueryResult<String> {
    if !cache.contains_key(community_id)
        && let Some(c) = communities::find(conn, community_id)?
    {
        cache.insert(c.id.clone(), c);
    }
    Ok(cache.get(community_id).map(|c| c.timezone.clone()).unwrap_or_default())
}

fn reconcile_household(
    conn: &mut DbConn,
    household_id: &str,
    communities_cache: &mut HashMap<String, CommunityRow>,
) -> QueryResult<Reconciled> {
    // Lock the household (PostgreSQL): a concurrent tag change is seen, not overwritten.
    let Some(h) = hh::find_for_update(conn, household_id)? else { return Ok(Reconciled::default()) };
    let mut done = Reconciled { households: 1, ..Default::default() };
    let open = open_tasks(conn, &h.id)?;
    if h.removed_at.is_some() {
        let ids: Vec<String> = open.iter().map(|t| t.id.clone()).collect();
        done.cancelled += cancel(conn, &ids, "household removed")? as u64;
        return Ok(done);
    }
    let timezone = timezone_of(conn, communities_cache, &h.community_id)?;
    let templates = plans::active_templates(conn, &h.community_id, &h.tag)?;
    let stale: Vec<String> =
        open.iter().filter(|t| !templates.iter().any(|tpl| tpl.id == t.template_id)).map(|t| t.id.clone()).collect();
    done.cancelled += cancel(conn, &stale, "no longer in the household's service plan")? as u64;
    for tpl in &templates {
        if open.iter().any(|t| t.template_id == tpl.id) {
            continue;
        }
        let row = new_task(conn, &h, tpl, &timezone, None)?;
        done.created += insert_open_task(conn, &row)? as u64;
    }
    Ok(done)
}

/// Reconciles a batch of households after `after` (by id), in the caller's transaction;
/// returns what it did and the last id seen (`None` when there are no more).
pub fn reconcile_batch(
    conn: &mut DbConn,
    after: Option<&str>,
    batch: i64,
) -> QueryResult<(Reconciled, Option<String>)> {
    let mut q = households::table.select(households::id).order(households::id.asc()).limit(batch).into_boxed();
    if let Some(a) = after {
        q = q.filter(households::id.gt(a.to_owned()));
    }
    let ids: Vec<String> = q.load(conn)?;
    let mut cache = HashMap::new();
    let mut total = Reconciled::default();
    for id in &ids {
        total += reconcile_household(conn, id, &mut cache)?;
    }
    Ok((total, ids.last().cloned()))
}

/// Completes the household's open tasks of a kind with a visit; returns their ids. The caller
/// then reconciles, which schedules the successors from the visit's date.
pub fn complete_with_visit(
    conn: &mut DbConn,
    household_id: &str,
    kind: &str,
    visit_id: &str,
) -> QueryResult<Vec<String>> {
    let ids: Vec<String> = tasks::table
        .filter(tasks::household_id.eq(household_id))
        .filter(tasks::kind.eq(kind))
        .filter(tasks::status.eq("open"))
        .select(tasks::id)
        .load(conn)?;
    if !ids.is_empty() {
        diesel::update(tasks::table.filter(tasks::id.eq_any(ids.clone())))
            .set((
                tasks::status.eq("done"),
                tasks::completed_at.eq(Some(now())),
                tasks::visit_id.eq(Some(visit_id)),
                tasks::updated_at.eq(now()),
                tasks::version.eq(tasks::version + 1),
            ))
            .execute(conn)?;
    }
    Ok(ids)
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
pub fn reschedule_template(conn: &mut DbConn, template_id: &str) -> QueryResult<usize> {
    let open: Vec<TaskRow> = tasks::table
        .filter(tasks::template_id.eq(template_id))
        .filter(tasks::status.eq("open"))
        .select(TaskRow::as_select())
        .load(conn)?;
    let mut changed = 0;
    let mut cache: HashMap<String, CommunityRow> = HashMap::new();
    for task in open {
        let Some(h) = hh::find(conn, &task.household_id)? else { continue };
        let tz = timezone_of(conn, &mut cache, &h.community_id)?;
        let Some(tpl) =
            plans::active_templates(conn, &h.community_id, &h.tag)?.into_iter().find(|t| t.id == template_id)
        else {
            continue;
        };
        let fresh = new_task(conn, &h, &tpl, &tz, None)?;
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
