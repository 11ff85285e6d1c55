//! Aggregates for the dashboard and the evaluation reports, computed by the database.
//!
//! Every function here answers one figure family with one `GROUP BY` query (the coverage
//! families: one per distinct home-visit interval), grouped at least by grid, so that the work
//! grows with the number of grids and never with the number of households; the API folds the
//! grid rows into community and scope totals. Dates are local to the communities of a
//! [`Slice`]: callers split a scope by timezone, and every day boundary is turned into a UTC
//! instant here (`start_of_day`) before it reaches SQL, so both backends compare plain
//! timestamps. The one per-row conversion, a task's completion date, is written per backend
//! (`completed_by_due_on`).

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, Queryable};
use diesel::dsl::{count_star, exists, sql, sum};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};

use crate::db::DbConn;
use crate::db::schema::{
    communities, grid_assignments, grids, households, service_templates, tag_changes, tasks, users, visits,
};
use crate::domain::{Role, ServiceKind, Tag};
use crate::store::Narrow;
use crate::store::communities::CommunityRow;

diesel::define_sql_function! {
    /// The first argument unless it is `NULL`.
    fn coalesce(x: Nullable<Text>, y: Text) -> Text;
}

/// `SUM(CASE WHEN cond THEN 1 ELSE 0 END)`: how many rows of the group satisfy `cond`.
macro_rules! count_if {
    ($cond:expr) => {
        sum(diesel::dsl::case_when::<_, _, diesel::sql_types::Integer>($cond, 1).otherwise(0))
    };
}

/// A `SUM` of [`count_if!`], read as a count: `NULL` (no rows) is 0.
#[derive(Debug, Clone, Copy)]
pub struct Sum(i64);

impl<DB: Backend> Queryable<Nullable<BigInt>, DB> for Sum
where
    Option<i64>: FromSql<Nullable<BigInt>, DB>,
{
    type Row = Option<i64>;

    fn build(row: Option<i64>) -> deserialize::Result<Sum> {
        Ok(Sum(row.unwrap_or(0)))
    }
}

impl From<Sum> for i64 {
    fn from(s: Sum) -> i64 {
        s.0
    }
}

/// The part of the data a query looks at: some communities sharing one timezone, optionally
/// only some of their grids.
#[derive(Debug, Clone)]
pub struct Slice {
    pub communities: Vec<String>,
    /// `None`: every grid of the communities.
    pub grids: Option<Vec<String>>,
    pub timezone: Tz,
}

/// Runs `f` on one consistent snapshot of the database (a read-only repeatable-read
/// transaction on PostgreSQL; SQLite's read transactions are snapshots already), so that the
/// figures of one dashboard or report, read by several queries, all see the same data.
pub fn snapshot<T, E>(conn: &mut DbConn, f: impl FnOnce(&mut DbConn) -> Result<T, E>) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    conn.transaction(|c| {
        if matches!(c, DbConn::Postgres(_)) {
            diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(c)?;
        }
        f(c)
    })
}

/// The UTC instant (as stored) at which a local date begins in a timezone. Where a
/// daylight-saving gap swallows midnight, the day begins at the first local time that exists.
pub fn start_of_day(date: NaiveDate, tz: Tz) -> NaiveDateTime {
    let mut local = date.and_time(NaiveTime::MIN);
    for _ in 0..96 {
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.naive_utc();
        }
        local += Duration::minutes(15);
    }
    // No zone has a gap of a whole day; fall back to the offset of the day before.
    let before = tz.from_utc_datetime(&(date.and_time(NaiveTime::MIN) - Duration::days(1)));
    date.and_time(NaiveTime::MIN) - Duration::seconds(i64::from(chrono::Offset::fix(before.offset()).local_minus_utc()))
}

/// Active households per grid and tag, with how many of them are due for review.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct HouseholdCounts {
    pub grid_id: String,
    pub tag: String,
    pub households: i64,
    #[diesel(deserialize_as = Sum)]
    pub reviews_due: i64,
}

pub fn households_by_tag(conn: &mut DbConn, s: &Slice, today: NaiveDate) -> QueryResult<Vec<HouseholdCounts>> {
    households::table
        .filter(households::removed_at.is_null())
        .filter(households::community_id.eq_any(s.communities.clone()))
        .group_by((households::grid_id, households::tag))
        .select((
            households::grid_id,
            households::tag,
            count_star(),
            count_if!(households::tag_review_due_on.le(today)),
        ))
        .into_boxed()
        .narrow(s.grids.clone(), |q, g| q.filter(households::grid_id.eq_any(g)))
        .load(conn)
}

/// Open tasks per grid and tag (the household's tag when the task was scheduled), with how
/// many are overdue (due before today).
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct OpenTaskCounts {
    pub grid_id: String,
    pub tag: String,
    pub open: i64,
    #[diesel(deserialize_as = Sum)]
    pub overdue: i64,
}

pub fn open_tasks(conn: &mut DbConn, s: &Slice, today: NaiveDate) -> QueryResult<Vec<OpenTaskCounts>> {
    tasks::table
        .filter(tasks::status.eq("open"))
        .filter(tasks::community_id.eq_any(s.communities.clone()))
        .group_by((tasks::grid_id, tasks::tag))
        .select((tasks::grid_id, tasks::tag, count_star(), count_if!(tasks::due_on.lt(today))))
        .into_boxed()
        .narrow(s.grids.clone(), |q, g| q.filter(tasks::grid_id.eq_any(g)))
        .load(conn)
}

/// Visits per grid and kind in `[from, until)`, and how many of them at or after `recent`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct RecentVisitCounts {
    pub grid_id: String,
    pub kind: String,
    pub visits: i64,
    #[diesel(deserialize_as = Sum)]
    pub recent: i64,
}

pub fn recent_visits(
    conn: &mut DbConn,
    s: &Slice,
    from: NaiveDateTime,
    recent: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<Vec<RecentVisitCounts>> {
    visits::table
        .filter(visits::community_id.eq_any(s.communities.clone()))
        .filter(visits::visited_at.ge(from))
        .filter(visits::visited_at.lt(until))
        .group_by((visits::grid_id, visits::kind))
        .select((visits::grid_id, visits::kind, count_star(), count_if!(visits::visited_at.ge(recent))))
        .into_boxed()
        .narrow(s.grids.clone(), |q, g| q.filter(visits::grid_id.eq_any(g)))
        .load(conn)
}

/// Visits per grid, worker and kind in `[from, until)`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct VisitCounts {
    pub grid_id: String,
    pub worker_id: String,
    pub kind: String,
    pub visits: i64,
}

pub fn visits_between(
    conn: &mut DbConn,
    s: &Slice,
    from: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<Vec<VisitCounts>> {
    visits::table
        .filter(visits::community_id.eq_any(s.communities.clone()))
        .filter(visits::visited_at.ge(from))
        .filter(visits::visited_at.lt(until))
        .group_by((visits::grid_id, visits::worker_id, visits::kind))
        .select((visits::grid_id, visits::worker_id, visits::kind, count_star()))
        .into_boxed()
        .narrow(s.grids.clone(), |q, g| q.filter(visits::grid_id.eq_any(g)))
        .load(conn)
}

/// Pending tag proposals of active households, per the household's current grid.
pub fn pending_tag_changes(conn: &mut DbConn, s: &Slice) -> QueryResult<Vec<(String, i64)>> {
    tag_changes::table
        .inner_join(households::table)
        .filter(tag_changes::status.eq("pending"))
        .filter(households::removed_at.is_null())
        .filter(households::community_id.eq_any(s.communities.clone()))
        .group_by(households::grid_id)
        .select((households::grid_id, count_star()))
        .into_boxed()
        .narrow(s.grids.clone(), |q, g| q.filter(households::grid_id.eq_any(g)))
        .load(conn)
}

/// Home-visit coverage of one grid and tag: how many households have a home-visit plan, and
/// how many of them were visited recently enough.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct CoverageCounts {
    pub grid_id: String,
    pub tag: String,
    pub planned: i64,
    #[diesel(deserialize_as = Sum)]
    pub covered: i64,
}

/// The distinct intervals of the active home-visit templates of the slice's communities
/// (of one tag, or of all).
fn home_visit_intervals(conn: &mut DbConn, s: &Slice, tag: Option<Tag>) -> QueryResult<Vec<i32>> {
    service_templates::table
        .filter(service_templates::community_id.eq_any(s.communities.clone()))
        .filter(service_templates::kind.eq(ServiceKind::HomeVisit.as_str()))
        .filter(service_templates::active)
        .select(service_templates::interval_days)
        .distinct()
        .into_boxed()
        .narrow(tag, |q, t| q.filter(service_templates::tag.eq(t.as_str())))
        .load(conn)
}

/// Coverage today, per grid and tag: a household counts when its community's plan for its
/// tag has an active home-visit template of `N` days, and is covered when its latest home
/// visit's local date is on or after today − N (its next home visit is not yet overdue).
/// One query per distinct interval: the cutoff is a local day boundary of its own.
pub fn coverage_today(conn: &mut DbConn, s: &Slice, today: NaiveDate) -> QueryResult<Vec<CoverageCounts>> {
    let mut out = Vec::new();
    for days in home_visit_intervals(conn, s, None)? {
        let cutoff = start_of_day(today - Duration::days(i64::from(days)), s.timezone);
        let visited = exists(
            visits::table
                .filter(visits::household_id.eq(households::id))
                .filter(visits::kind.eq(ServiceKind::HomeVisit.as_str()))
                .filter(visits::visited_at.ge(cutoff)),
        );
        let q = households::table
            .inner_join(
                service_templates::table.on(service_templates::community_id
                    .eq(households::community_id)
                    .and(service_templates::tag.eq(households::tag))),
            )
            .filter(service_templates::kind.eq(ServiceKind::HomeVisit.as_str()))
            .filter(service_templates::active)
            .filter(service_templates::interval_days.eq(days))
            .filter(households::removed_at.is_null())
            .filter(households::community_id.eq_any(s.communities.clone()))
            .group_by((households::grid_id, households::tag))
            .select((households::grid_id, households::tag, count_star(), count_if!(visited)))
            .into_boxed()
            .narrow(s.grids.clone(), |q, g| q.filter(households::grid_id.eq_any(g)));
        out.extend(q.load::<CoverageCounts>(conn)?);
    }
    Ok(out)
}

/// Red coverage at the end of a local date `as_of`, per grid, as [`coverage_today`] would have
/// answered that evening: the households that existed then (registered before the day ended
/// and not removed by then) and were red then (the tag replaced by the first approved change
/// after that moment, else the current tag), with home visits up to that moment. Plans are
/// today's, and households are counted in their current grid.
pub fn red_coverage_at(conn: &mut DbConn, s: &Slice, as_of: NaiveDate) -> QueryResult<Vec<CoverageCounts>> {
    let end = start_of_day(as_of + Duration::days(1), s.timezone);
    let red = Tag::Red.as_str();
    let mut out = Vec::new();
    for days in home_visit_intervals(conn, s, Some(Tag::Red))? {
        let cutoff = start_of_day(as_of - Duration::days(i64::from(days)), s.timezone);
        let visited = exists(
            visits::table
                .filter(visits::household_id.eq(households::id))
                .filter(visits::kind.eq(ServiceKind::HomeVisit.as_str()))
                .filter(visits::visited_at.ge(cutoff))
                .filter(visits::visited_at.lt(end)),
        );
        let tag_then = coalesce(
            tag_changes::table
                .filter(tag_changes::household_id.eq(households::id))
                .filter(tag_changes::status.eq("approved"))
                .filter(tag_changes::decided_at.ge(end))
                .order((tag_changes::decided_at.asc(), tag_changes::id.asc()))
                .select(tag_changes::from_tag)
                .limit(1)
                .single_value(),
            households::tag,
        );
        let q = households::table
            .inner_join(service_templates::table.on(service_templates::community_id.eq(households::community_id)))
            .filter(service_templates::tag.eq(red))
            .filter(service_templates::kind.eq(ServiceKind::HomeVisit.as_str()))
            .filter(service_templates::active)
            .filter(service_templates::interval_days.eq(days))
            .filter(households::created_at.lt(end))
            .filter(households::removed_at.is_null().or(households::removed_at.ge(end)))
            .filter(tag_then.eq(red))
            .filter(households::community_id.eq_any(s.communities.clone()))
            .group_by(households::grid_id)
            .select((households::grid_id, count_star(), count_if!(visited)))
            .into_boxed()
            .narrow(s.grids.clone(), |q, g| q.filter(households::grid_id.eq_any(g)));
        let rows: Vec<(String, i64, Sum)> = q.load(conn)?;
        out.extend(rows.into_iter().map(|(grid_id, planned, covered)| CoverageCounts {
            grid_id,
            tag: red.to_owned(),
            planned,
            covered: covered.into(),
        }));
    }
    Ok(out)
}

/// The outcome of the (not cancelled) tasks due in a period, per grid and assignee.
#[derive(Debug, Clone, Default, PartialEq, Eq, Queryable)]
pub struct TaskOutcomes {
    pub grid_id: String,
    pub assignee_id: Option<String>,
    pub due: i64,
    /// Done, on a local date on or before the due date.
    #[diesel(deserialize_as = Sum)]
    pub on_time: i64,
    /// Done after the due date, but by the end of the period.
    #[diesel(deserialize_as = Sum)]
    pub late: i64,
    /// Done after the period ended.
    #[diesel(deserialize_as = Sum)]
    pub done_after_end: i64,
    /// Still open, due before today.
    #[diesel(deserialize_as = Sum)]
    pub open_past_due: i64,
    /// Still open, due today or later.
    #[diesel(deserialize_as = Sum)]
    pub open_not_due: i64,
}

/// SQL for "the task was completed on a local date on or before its due date", in the
/// backend's dialect: `local_date(completed_at) <= due_on` ⇔ `completed_at + offset <
/// due_on + 1 day`, with the offset the zone has when the day after `due_on` begins. Zones
/// with daylight-saving time get one branch per stretch of days with the same offset.
fn completed_by_due_on(conn: &DbConn, tz: Tz, first: NaiveDate, last: NaiveDate) -> String {
    let postgres = matches!(conn, DbConn::Postgres(_));
    // (last due date of the stretch, offset in seconds)
    let mut stretches: Vec<(NaiveDate, i64)> = Vec::new();
    let mut day = first;
    while day <= last {
        let next = day + Duration::days(1);
        let offset = (next.and_time(NaiveTime::MIN) - start_of_day(next, tz)).num_seconds();
        match stretches.last_mut() {
            Some((end, o)) if *o == offset => *end = day,
            _ => stretches.push((day, offset)),
        }
        day = next;
    }
    let local_date = |offset: i64| {
        if postgres {
            format!("CAST(tasks.completed_at + INTERVAL '{offset} seconds' AS DATE) <= tasks.due_on")
        } else {
            format!("date(tasks.completed_at, '{offset:+} seconds') <= tasks.due_on")
        }
    };
    match stretches.as_slice() {
        [] => "FALSE".to_owned(),
        [(_, offset)] => local_date(*offset),
        [init @ .., (_, offset)] => {
            let mut text = String::from("CASE");
            for (end, o) in init {
                let date = if postgres { format!("DATE '{end}'") } else { format!("'{end}'") };
                text.push_str(&format!(" WHEN tasks.due_on <= {date} THEN {}", local_date(*o)));
            }
            text.push_str(&format!(" ELSE {} END", local_date(*offset)));
            text
        }
    }
}

/// Outcomes of the tasks due from `first` to `last` (local dates), as of `today`.
/// Cancelled tasks are left out.
pub fn task_outcomes(
    conn: &mut DbConn,
    s: &Slice,
    first: NaiveDate,
    last: NaiveDate,
    today: NaiveDate,
) -> QueryResult<Vec<TaskOutcomes>> {
    let end = start_of_day(last + Duration::days(1), s.timezone);
    let on_time = completed_by_due_on(conn, s.timezone, first, last);
    let done = || tasks::status.eq("done");
    tasks::table
        .filter(tasks::status.ne("cancelled"))
        .filter(tasks::due_on.between(first, last))
        .filter(tasks::community_id.eq_any(s.communities.clone()))
        .group_by((tasks::grid_id, tasks::assignee_id))
        .select((
            tasks::grid_id,
            tasks::assignee_id,
            count_star(),
            count_if!(done().and(sql::<Bool>(&on_time))),
            count_if!(done().and(sql::<Bool>(&format!("NOT ({on_time})"))).and(tasks::completed_at.lt(end))),
            count_if!(done().and(tasks::completed_at.ge(end))),
            count_if!(tasks::status.eq("open").and(tasks::due_on.lt(today))),
            count_if!(tasks::status.eq("open").and(tasks::due_on.ge(today))),
        ))
        .into_boxed()
        .narrow(s.grids.clone(), |q, g| q.filter(tasks::grid_id.eq_any(g)))
        .load(conn)
}

/// Every community, by name (an administrator's whole scope).
pub fn all_communities(conn: &mut DbConn) -> QueryResult<Vec<CommunityRow>> {
    communities::table
        .select(CommunityRow::as_select())
        .order((communities::name.asc(), communities::id.asc()))
        .load(conn)
}

/// The communities of some streets, by name (a street's or a district's roll-up).
pub fn communities_of_streets(conn: &mut DbConn, street_ids: &[String]) -> QueryResult<Vec<CommunityRow>> {
    communities::table
        .filter(communities::street_id.eq_any(street_ids.to_vec()))
        .select(CommunityRow::as_select())
        .order((communities::name.asc(), communities::id.asc()))
        .load(conn)
}

/// Some communities by id, by name (an officer's scope).
pub fn communities_by_id(conn: &mut DbConn, ids: &[String]) -> QueryResult<Vec<CommunityRow>> {
    communities::table
        .filter(communities::id.eq_any(ids.to_vec()))
        .select(CommunityRow::as_select())
        .order((communities::name.asc(), communities::id.asc()))
        .load(conn)
}

/// A grid as the reports list it.
#[derive(Debug, Clone, Queryable)]
pub struct GridInfo {
    pub id: String,
    pub community_id: String,
    pub code: String,
    pub name: String,
}

/// The grids of some communities (optionally only some of them), by code.
pub fn grids_of(conn: &mut DbConn, communities: &[String], only: Option<&[String]>) -> QueryResult<Vec<GridInfo>> {
    let mut q = grids::table
        .filter(grids::community_id.eq_any(communities.to_vec()))
        .select((grids::id, grids::community_id, grids::code, grids::name))
        .order((grids::code.asc(), grids::id.asc()))
        .into_boxed();
    if let Some(ids) = only {
        q = q.filter(grids::id.eq_any(ids.to_vec()));
    }
    q.load(conn)
}

/// Current worker assignments of some grids: `(grid_id, user_id)`.
pub fn assignments(conn: &mut DbConn, grid_ids: &[String]) -> QueryResult<Vec<(String, String)>> {
    grid_assignments::table
        .filter(grid_assignments::grid_id.eq_any(grid_ids.to_vec()))
        .select((grid_assignments::grid_id, grid_assignments::user_id))
        .order((grid_assignments::grid_id.asc(), grid_assignments::user_id.asc()))
        .load(conn)
}

/// A user as the reports name them.
#[derive(Debug, Clone, Queryable)]
pub struct UserInfo {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub community_id: Option<String>,
}

pub fn users_by_id(conn: &mut DbConn, ids: &[String]) -> QueryResult<Vec<UserInfo>> {
    users::table
        .filter(users::id.eq_any(ids.to_vec()))
        .select((users::id, users::username, users::display_name, users::role, users::community_id))
        .order(users::username.asc())
        .load(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn days_begin_at_local_midnight() {
        let shanghai = chrono_tz::Asia::Shanghai;
        assert_eq!(start_of_day(date("2026-11-01"), shanghai).to_string(), "2026-10-31 16:00:00");
        let new_york = chrono_tz::America::New_York;
        assert_eq!(start_of_day(date("2026-07-01"), new_york).to_string(), "2026-07-01 04:00:00");
        assert_eq!(start_of_day(date("2026-12-01"), new_york).to_string(), "2026-12-01 05:00:00");
        // Santiago skipped midnight on 2022-09-11 (00:00 → 01:00).
        let santiago = chrono_tz::America::Santiago;
        assert_eq!(start_of_day(date("2022-09-11"), santiago).to_string(), "2022-09-11 04:00:00");
    }
}
