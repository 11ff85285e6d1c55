//! The change log the sync feed reads, and the watermarks that divide it into windows.
//!
//! Triggers (migrations `…000900_sync_log`) append a row to `sync_log` for every change of a
//! record a device may hold, so no write path can forget one. A reader takes a watermark — on
//! SQLite the highest `seq` (one writer at a time: `seq` order is commit order), on PostgreSQL
//! its transaction's snapshot — and serves the rows between two watermarks. On PostgreSQL a
//! sequence number is taken before commit, so a row can become visible after a later-numbered
//! one a reader has already passed; windows are therefore defined by transaction visibility
//! (`pg_visible_in_snapshot`), not by `seq`: a row belongs to the window in whose closing
//! snapshot its transaction is first visible, so none is skipped, whatever the commit order.

use std::collections::HashSet;

use chrono::NaiveDateTime;
use diesel::dsl::sql;
use diesel::expression::BoxableExpression;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};

use crate::db::schema::{sync_log, sync_operations};
use crate::db::{DbConn, MultiBackend};
use crate::error::{ApiError, ApiResult};

/// A point in the log, as a reader saw it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Watermark {
    /// SQLite: every row up to this `seq` is in.
    Seq(i64),
    /// PostgreSQL: every row whose transaction is visible in this snapshot (`pg_snapshot` text,
    /// `xmin:xmax:xip,…`) is in.
    Snapshot(String),
}

impl Watermark {
    /// How many rows of the log came after `at` up to this point, where that is a count (on
    /// SQLite; `None` on PostgreSQL, whose snapshots are not ordered by a count, or if `at` is
    /// later).
    pub fn rows_after(&self, at: &Watermark) -> Option<i64> {
        match (self, at) {
            (Watermark::Seq(to), Watermark::Seq(from)) if to >= from => Some(to - from),
            _ => None,
        }
    }
}

/// Runs `f` on one consistent snapshot (a read-only repeatable-read transaction on PostgreSQL;
/// SQLite's read transactions are snapshots already), so that a watermark and the records read
/// with it agree.
pub fn in_snapshot<T>(conn: &mut DbConn, f: impl FnOnce(&mut DbConn) -> ApiResult<T>) -> ApiResult<T> {
    conn.transaction(|c| {
        if let DbConn::Postgres(pg) = c {
            diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(pg)?;
        }
        f(c)
    })
}

/// The watermark of the current transaction's snapshot.
pub fn watermark(conn: &mut DbConn) -> QueryResult<Watermark> {
    match conn {
        DbConn::Sqlite(c) => {
            let max: Option<i64> = sync_log::table.select(diesel::dsl::max(sync_log::seq)).first(c)?;
            Ok(Watermark::Seq(max.unwrap_or(0)))
        }
        DbConn::Postgres(c) => {
            diesel::select(sql::<Text>("pg_current_snapshot()::text")).get_result(c).map(Watermark::Snapshot)
        }
    }
}

type Condition = Box<dyn BoxableExpression<sync_log::table, MultiBackend, SqlType = Bool>>;

/// The rows whose transactions are in at `to` but not at `from` (`from` none: all up to `to`).
fn window(from: Option<&Watermark>, to: &Watermark) -> ApiResult<Condition> {
    Ok(match (from, to) {
        (None, Watermark::Seq(b)) => Box::new(sync_log::seq.le(*b)),
        (Some(Watermark::Seq(a)), Watermark::Seq(b)) => Box::new(sync_log::seq.gt(*a).and(sync_log::seq.le(*b))),
        (None, Watermark::Snapshot(b)) => {
            Box::new(sql::<Bool>("pg_visible_in_snapshot(txid, ").bind::<Text, _>(b.clone()).sql("::pg_snapshot)"))
        }
        (Some(Watermark::Snapshot(a)), Watermark::Snapshot(b)) => Box::new(
            sql::<Bool>("txid >= pg_snapshot_xmin(")
                .bind::<Text, _>(a.clone())
                .sql("::pg_snapshot) AND NOT pg_visible_in_snapshot(txid, ")
                .bind::<Text, _>(a.clone())
                .sql("::pg_snapshot) AND pg_visible_in_snapshot(txid, ")
                .bind::<Text, _>(b.clone())
                .sql("::pg_snapshot)"),
        ),
        _ => return Err(ApiError::internal(anyhow::anyhow!("a watermark of the other backend"))),
    })
}

/// The rows after a watermark: those a snapshot taken at it does not hold.
fn after(at: &Watermark) -> Condition {
    match at {
        Watermark::Seq(a) => Box::new(sync_log::seq.gt(*a)),
        Watermark::Snapshot(a) => Box::new(
            sql::<Bool>("txid >= pg_snapshot_xmin(")
                .bind::<Text, _>(a.clone())
                .sql("::pg_snapshot) AND NOT pg_visible_in_snapshot(txid, ")
                .bind::<Text, _>(a.clone())
                .sql("::pg_snapshot)"),
        ),
    }
}

/// Which changes a reader may see: its community, and for a grid worker those of the grids it
/// served or serves (a record is in when it is, or was before a move, in one of them), plus the
/// community-wide records (accounts, plans).
#[derive(Debug, Clone)]
pub struct LogScope {
    pub community_id: String,
    pub grids: Option<Vec<String>>,
}

fn in_scope(scope: &LogScope) -> Condition {
    // The columns are nullable (an administrator's account has no community), the comparisons
    // with them too; NULL is false in a filter either way.
    let community = sync_log::community_id.eq(scope.community_id.clone()).assume_not_null();
    match &scope.grids {
        None => Box::new(community),
        Some(grids) => Box::new(
            community.and(
                sync_log::grid_id
                    .is_null()
                    .or(sync_log::grid_id.eq_any(grids.clone()).assume_not_null())
                    .or(sync_log::old_grid_id.eq_any(grids.clone()).assume_not_null()),
            ),
        ),
    }
}

/// The log's watermark now, if nothing in `scope` came after `at` — and, with `grids_fixed`,
/// no grid of the community changed either (a grid worker's scope is the grids assigned to
/// it; every change of an assignment logs its grid). The watermark first, then one indexed
/// look for a row in the window between: what an up-to-date device's delta costs when there
/// is nothing new for it.
pub fn quiet(conn: &mut DbConn, scope: &LogScope, at: &Watermark, grids_fixed: bool) -> ApiResult<Option<Watermark>> {
    let mut touching = in_scope(scope);
    if grids_fixed {
        let grid =
            sync_log::community_id.eq(scope.community_id.clone()).assume_not_null().and(sync_log::entity.eq("grid"));
        touching = Box::new(touching.or(grid));
    }
    let to = watermark(conn)?;
    nothing_after(conn, at, to, touching)
}

/// `to` (the log's watermark, read by the caller), if no change of these kinds in the community
/// came after `at`: what a kept page of the community's records asks before it is answered
/// again ([`crate::api::cached`]).
pub fn untouched(
    conn: &mut DbConn,
    community_id: &str,
    kinds: &[&str],
    at: &Watermark,
    to: Watermark,
) -> ApiResult<Option<Watermark>> {
    let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
    let touching =
        sync_log::community_id.eq(community_id.to_owned()).assume_not_null().and(sync_log::entity.eq_any(kinds));
    nothing_after(conn, at, to, Box::new(touching))
}

/// What a look at a community's part of the log found ([`community_now`]).
pub struct Now {
    /// The community's version (`None`: no such community).
    pub version: Option<i32>,
    /// The log's watermark now.
    snapshot: String,
    /// Whether a row of the kinds looked for came after the point looked from.
    touched: bool,
}

impl Now {
    /// The log's watermark now, if no change of the kinds looked for came after the point
    /// looked from ([`untouched`]).
    pub fn quiet_to(self) -> Option<Watermark> {
        (!self.touched).then_some(Watermark::Snapshot(self.snapshot))
    }
}

/// On PostgreSQL, [`crate::store::communities::version`], [`watermark`] and [`untouched`] in
/// one statement — one round trip instead of three, prepared once per connection. The
/// watermark is the statement's own snapshot (`pg_current_snapshot()` is the snapshot it reads
/// with), so the rows its look sees are exactly those of the window `(at, now]`. `None` on
/// SQLite, where the watermark is read first and a caller may see how far the log moved before
/// it looks ([`Watermark::rows_after`]).
pub fn community_now(conn: &mut DbConn, community_id: &str, kinds: &[&str], at: &Watermark) -> ApiResult<Option<Now>> {
    let (DbConn::Postgres(pg), Watermark::Snapshot(at)) = (conn, at) else {
        return Ok(None);
    };
    let query = CommunityNow {
        community: community_id.to_owned(),
        kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
        at: at.clone(),
    };
    let (version, snapshot, touched) = query.get_result::<(Option<i32>, String, bool)>(pg)?;
    Ok(Some(Now { version, snapshot, touched }))
}

/// The statement of [`community_now`]: written out, not `sql_query`, so that diesel prepares it
/// once per connection (a `sql_query` is parsed and planned by the server at every call).
#[derive(diesel::query_builder::QueryId)]
struct CommunityNow {
    community: String,
    kinds: Vec<String>,
    at: String,
}

impl diesel::query_builder::Query for CommunityNow {
    type SqlType = (diesel::sql_types::Nullable<diesel::sql_types::Integer>, Text, Bool);
}

impl RunQueryDsl<diesel::PgConnection> for CommunityNow {}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for CommunityNow {
    fn walk_ast<'b>(&'b self, mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        out.push_sql("SELECT (SELECT version FROM communities WHERE id = ");
        out.push_bind_param::<Text, _>(&self.community)?;
        out.push_sql("), pg_current_snapshot()::text, EXISTS (SELECT 1 FROM sync_log WHERE community_id = ");
        out.push_bind_param::<Text, _>(&self.community)?;
        out.push_sql(" AND entity = ANY(");
        out.push_bind_param::<diesel::sql_types::Array<Text>, _>(&self.kinds)?;
        out.push_sql(") AND txid >= pg_snapshot_xmin(");
        out.push_bind_param::<Text, _>(&self.at)?;
        out.push_sql("::pg_snapshot) AND NOT pg_visible_in_snapshot(txid, ");
        out.push_bind_param::<Text, _>(&self.at)?;
        out.push_sql("::pg_snapshot))");
        Ok(())
    }
}

/// `to`, if no row `touching` came after `at` up to it.
fn nothing_after(
    conn: &mut DbConn,
    at: &Watermark,
    to: Watermark,
    touching: Condition,
) -> ApiResult<Option<Watermark>> {
    if to == *at {
        return Ok(Some(to));
    }
    let any: Vec<i64> =
        sync_log::table.filter(window(Some(at), &to)?).filter(touching).select(sync_log::seq).limit(1).load(conn)?;
    Ok(any.is_empty().then_some(to))
}

/// One change: which record, at which place in the log.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct Change {
    pub seq: i64,
    pub entity: String,
    pub entity_id: String,
}

/// The changes in the window `(from, to]` in scope, after `after_seq` in `seq` order, at most
/// `limit` rows.
pub fn changes(
    conn: &mut DbConn,
    scope: &LogScope,
    from: &Watermark,
    to: &Watermark,
    after_seq: i64,
    limit: i64,
) -> ApiResult<Vec<Change>> {
    Ok(sync_log::table
        .filter(in_scope(scope))
        .filter(window(Some(from), to)?)
        .filter(sync_log::seq.gt(after_seq))
        .order(sync_log::seq.asc())
        .limit(limit)
        .select((sync_log::seq, sync_log::entity, sync_log::entity_id))
        .load(conn)?)
}

/// Of these records, those changed again in the window after `after_seq`: a page leaves them
/// to the page that reaches their latest change.
pub fn changed_later(
    conn: &mut DbConn,
    scope: &LogScope,
    from: &Watermark,
    to: &Watermark,
    after_seq: i64,
    ids: &[String],
) -> ApiResult<HashSet<(String, String)>> {
    let rows: Vec<(String, String)> = sync_log::table
        .filter(in_scope(scope))
        .filter(window(Some(from), to)?)
        .filter(sync_log::seq.gt(after_seq))
        .filter(sync_log::entity_id.eq_any(ids.to_vec()))
        .select((sync_log::entity, sync_log::entity_id))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// Of these records of a kind, those changed after the watermark: a snapshot taken at it leaves
/// them to the delta that follows.
pub fn changed_after(conn: &mut DbConn, entity: &str, ids: &[String], at: &Watermark) -> ApiResult<HashSet<String>> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<String> = sync_log::table
        .filter(sync_log::entity.eq(entity.to_owned()))
        .filter(sync_log::entity_id.eq_any(ids.to_vec()))
        .filter(after(at))
        .select(sync_log::entity_id)
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// The oldest change the log still holds: a token from before it cannot be served.
pub fn oldest(conn: &mut DbConn) -> QueryResult<Option<NaiveDateTime>> {
    sync_log::table.select(diesel::dsl::min(sync_log::at)).first(conn)
}

/// Deletes the log rows and remembered pushes older than `before`; returns how many log rows.
pub fn prune(conn: &mut DbConn, before: NaiveDateTime) -> QueryResult<usize> {
    crate::store::events::note_pruning(conn, before)?;
    diesel::delete(sync_operations::table.filter(sync_operations::at.lt(before))).execute(conn)?;
    diesel::delete(sync_log::table.filter(sync_log::at.lt(before))).execute(conn)
}

/// Runs `f` inside the caller's transaction with the change-log triggers of `tables` off, for
/// loading a benchmark data set whose rows predate the log (as in a database that has run longer
/// than the retention period, whose pruned log holds none of them): a log row per seeded row
/// would double the load's work and nearly its size, and no device could ever ask for one.
/// Transactional on both backends — SQLite drops the triggers and re-creates them from their own
/// stored SQL, PostgreSQL disables them (`ALTER TABLE … DISABLE TRIGGER USER`) — so a failed load
/// leaves them as they were. Every user trigger of these tables is off, the kept suggestions'
/// too: the caller adds those rows itself (`suggestions::add_missing`).
pub fn unlogged<T>(conn: &mut DbConn, tables: &[&str], f: impl FnOnce(&mut DbConn) -> ApiResult<T>) -> ApiResult<T> {
    #[derive(QueryableByName)]
    struct Trigger {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Text)]
        sql: String,
    }
    let quoted = |t: &str| format!("\"{}\"", t.replace('"', "\"\""));
    // Statements that turn the log back on, run after `f`.
    let mut restore = Vec::new();
    for t in tables {
        if matches!(conn, DbConn::Sqlite(_)) {
            let q = "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?";
            for trigger in diesel::sql_query(q).bind::<Text, _>(*t).load::<Trigger>(conn)? {
                diesel::sql_query(format!("DROP TRIGGER {}", quoted(&trigger.name))).execute(conn)?;
                restore.push(trigger.sql);
            }
        } else {
            diesel::sql_query(format!("ALTER TABLE {} DISABLE TRIGGER USER", quoted(t))).execute(conn)?;
            restore.push(format!("ALTER TABLE {} ENABLE TRIGGER USER", quoted(t)));
        }
    }
    let out = f(conn)?;
    for statement in &restore {
        diesel::sql_query(statement.as_str()).execute(conn)?;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The records a device holds, read by page (a snapshot) or by id (a delta).

use crate::db::schema::{grid_assignments, grids, households, members, tag_changes, tasks, users, visits};
use crate::domain::{TagChangeStatus, TaskStatus};
use crate::store::Opened;
use crate::store::communities::GridRow;
use crate::store::households::{HouseholdRow, MemberRow};
use crate::store::tags::TagChangeRow;
use crate::store::tasks::TaskRow;
use crate::store::users::UserRow;
use crate::store::visits::VisitRow;

/// What a device may hold: some grids of a community (a grid worker's, or all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub community_id: String,
    pub grids: Vec<String>,
}

/// The current households of the scope.
fn current_households(s: &Scope) -> CurrentHouseholds {
    households::community_id
        .eq(s.community_id.clone())
        .and(households::removed_at.is_null())
        .and(households::grid_id.eq_any(s.grids.clone()))
}

/// The ids of the current households of the scope, as a subquery.
fn current_household_ids(
    s: &Scope,
) -> diesel::dsl::Select<diesel::dsl::Filter<households::table, CurrentHouseholds>, households::id> {
    households::table.filter(current_households(s)).select(households::id)
}

type CurrentHouseholds = diesel::dsl::And<
    diesel::dsl::And<diesel::dsl::Eq<households::community_id, String>, diesel::dsl::IsNull<households::removed_at>>,
    diesel::dsl::EqAny<households::grid_id, Vec<String>>,
>;

/// The grids of a community.
pub fn community_grids(conn: &mut DbConn, community_id: &str) -> QueryResult<Vec<String>> {
    grids::table
        .filter(grids::community_id.eq(community_id.to_owned()))
        .order(grids::id.asc())
        .select(grids::id)
        .load(conn)
}

pub fn households_page(conn: &mut DbConn, s: &Scope, after: &str, limit: i64) -> QueryResult<Vec<HouseholdRow>> {
    households::table
        .filter(current_households(s))
        .filter(households::id.gt(after.to_owned()))
        .order(households::id.asc())
        .limit(limit)
        .select(HouseholdRow::as_select())
        .load(conn)
        .opened()
}

pub fn members_page(conn: &mut DbConn, s: &Scope, after: &str, limit: i64) -> QueryResult<Vec<MemberRow>> {
    members::table
        .filter(members::household_id.eq_any(current_household_ids(s)))
        .filter(members::removed_at.is_null())
        .filter(members::id.gt(after.to_owned()))
        .order(members::id.asc())
        .limit(limit)
        .select(MemberRow::as_select())
        .load(conn)
        .opened()
}

pub fn open_tasks_page(conn: &mut DbConn, s: &Scope, after: &str, limit: i64) -> QueryResult<Vec<TaskRow>> {
    tasks::table
        .filter(tasks::household_id.eq_any(current_household_ids(s)))
        .filter(tasks::status.eq(TaskStatus::Open))
        .filter(tasks::id.gt(after.to_owned()))
        .order(tasks::id.asc())
        .limit(limit)
        .select(TaskRow::as_select())
        .load(conn)
}

/// Visits since a time.
pub fn visits_page(
    conn: &mut DbConn,
    s: &Scope,
    since: NaiveDateTime,
    after: &str,
    limit: i64,
) -> QueryResult<Vec<VisitRow>> {
    visits::table
        .filter(visits::household_id.eq_any(current_household_ids(s)))
        .filter(visits::visited_at.ge(since))
        .filter(visits::id.gt(after.to_owned()))
        .order(visits::id.asc())
        .limit(limit)
        .select(VisitRow::as_select())
        .load(conn)
}

/// Pending tag changes, and those decided since a time.
pub fn tag_changes_page(
    conn: &mut DbConn,
    s: &Scope,
    since: NaiveDateTime,
    after: &str,
    limit: i64,
) -> QueryResult<Vec<TagChangeRow>> {
    tag_changes::table
        .filter(tag_changes::household_id.eq_any(current_household_ids(s)))
        .filter(tag_changes::status.eq(TagChangeStatus::Pending).or(tag_changes::decided_at.ge(since)))
        .filter(tag_changes::id.gt(after.to_owned()))
        .order(tag_changes::id.asc())
        .limit(limit)
        .select(TagChangeRow::as_select())
        .load(conn)
}

/// The grids of the scope.
pub fn grids_page(conn: &mut DbConn, s: &Scope, after: &str, limit: i64) -> QueryResult<Vec<GridRow>> {
    grids::table
        .filter(grids::community_id.eq(s.community_id.clone()))
        .filter(grids::id.eq_any(s.grids.clone()))
        .filter(grids::id.gt(after.to_owned()))
        .order(grids::id.asc())
        .limit(limit)
        .select(GridRow::as_select())
        .load(conn)
}

/// The accounts of the community (the directory a device shows names from).
pub fn users_page(conn: &mut DbConn, community_id: &str, after: &str, limit: i64) -> QueryResult<Vec<UserRow>> {
    users::table
        .filter(users::community_id.eq(community_id.to_owned()))
        .filter(users::id.gt(after.to_owned()))
        .order(users::id.asc())
        .limit(limit)
        .select(UserRow::as_select())
        .load(conn)
        .opened()
}

/// The households now in some grids, after an id (what leaves with the grids).
pub fn households_in_grids(conn: &mut DbConn, grids: &[String], after: &str, limit: i64) -> QueryResult<Vec<String>> {
    households::table
        .filter(households::grid_id.eq_any(grids.to_vec()))
        .filter(households::id.gt(after.to_owned()))
        .order(households::id.asc())
        .limit(limit)
        .select(households::id)
        .load(conn)
}

/// The grids a worker serves now.
pub fn grids_of_worker(conn: &mut DbConn, user_id: &str) -> QueryResult<Vec<String>> {
    grid_assignments::table
        .filter(grid_assignments::user_id.eq(user_id.to_owned()))
        .order(grid_assignments::grid_id.asc())
        .select(grid_assignments::grid_id)
        .load(conn)
}

macro_rules! by_ids {
    ($name:ident, $table:ident, $row:ty) => {
        /// The records of these ids (in any order; missing ones left out).
        pub fn $name(conn: &mut DbConn, ids: &[String]) -> QueryResult<Vec<$row>> {
            if ids.is_empty() {
                return Ok(vec![]);
            }
            $table::table.filter($table::id.eq_any(ids.to_vec())).select(<$row>::as_select()).load(conn)
        }
    };
    ($name:ident, $table:ident, $row:ty, sealed) => {
        /// The records of these ids (in any order; missing ones left out), opened.
        pub fn $name(conn: &mut DbConn, ids: &[String]) -> QueryResult<Vec<$row>> {
            if ids.is_empty() {
                return Ok(vec![]);
            }
            $table::table.filter($table::id.eq_any(ids.to_vec())).select(<$row>::as_select()).load(conn).opened()
        }
    };
}

by_ids!(households_by_ids, households, HouseholdRow, sealed);
by_ids!(members_by_ids, members, MemberRow, sealed);
by_ids!(tasks_by_ids, tasks, TaskRow);
by_ids!(visits_by_ids, visits, VisitRow);
by_ids!(tag_changes_by_ids, tag_changes, TagChangeRow);
by_ids!(grids_by_ids, grids, GridRow);
by_ids!(users_by_ids, users, UserRow, sealed);

/// Of these households, those that moved between grids in the window `(from, to]`: a device
/// they moved to gets everything that belongs to them.
pub fn moved(conn: &mut DbConn, from: &Watermark, to: &Watermark, ids: &[String]) -> ApiResult<HashSet<String>> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<String> = sync_log::table
        .filter(window(Some(from), to)?)
        .filter(sync_log::entity.eq("household"))
        .filter(sync_log::entity_id.eq_any(ids.to_vec()))
        .filter(sync_log::old_grid_id.is_not_null())
        .select(sync_log::entity_id)
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// The current members of some households.
pub fn members_of(conn: &mut DbConn, household_ids: &[String]) -> QueryResult<Vec<MemberRow>> {
    members::table
        .filter(members::household_id.eq_any(household_ids.to_vec()))
        .filter(members::removed_at.is_null())
        .order(members::id.asc())
        .select(MemberRow::as_select())
        .load(conn)
        .opened()
}

/// The open tasks of some households.
pub fn open_tasks_of(conn: &mut DbConn, household_ids: &[String]) -> QueryResult<Vec<TaskRow>> {
    tasks::table
        .filter(tasks::household_id.eq_any(household_ids.to_vec()))
        .filter(tasks::status.eq(TaskStatus::Open))
        .order(tasks::id.asc())
        .select(TaskRow::as_select())
        .load(conn)
}

/// The visits of some households since a time.
pub fn visits_of(conn: &mut DbConn, household_ids: &[String], since: NaiveDateTime) -> QueryResult<Vec<VisitRow>> {
    visits::table
        .filter(visits::household_id.eq_any(household_ids.to_vec()))
        .filter(visits::visited_at.ge(since))
        .order(visits::id.asc())
        .select(VisitRow::as_select())
        .load(conn)
}

/// The pending tag changes of some households, and those decided since a time.
pub fn tag_changes_of(
    conn: &mut DbConn,
    household_ids: &[String],
    since: NaiveDateTime,
) -> QueryResult<Vec<TagChangeRow>> {
    tag_changes::table
        .filter(tag_changes::household_id.eq_any(household_ids.to_vec()))
        .filter(tag_changes::status.eq(TagChangeStatus::Pending).or(tag_changes::decided_at.ge(since)))
        .order(tag_changes::id.asc())
        .select(TagChangeRow::as_select())
        .load(conn)
}

/// A pushed operation already applied: what it touched.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct Applied {
    pub kind: String,
    pub entity: Option<String>,
    pub entity_id: Option<String>,
}

/// The operation of this account with this id, if it was applied.
pub fn applied(conn: &mut DbConn, user_id: &str, op_id: &str) -> QueryResult<Option<Applied>> {
    sync_operations::table
        .find((user_id, op_id))
        .select((sync_operations::kind, sync_operations::entity, sync_operations::entity_id))
        .first(conn)
        .optional()
}

/// [`applied`] for several operations of this account at once: those applied, by op id.
pub fn applied_many(
    conn: &mut DbConn,
    user_id: &str,
    op_ids: &[String],
) -> QueryResult<std::collections::HashMap<String, Applied>> {
    let rows: Vec<(String, String, Option<String>, Option<String>)> = sync_operations::table
        .filter(sync_operations::user_id.eq(user_id.to_owned()))
        .filter(sync_operations::op_id.eq_any(op_ids.to_vec()))
        .select((sync_operations::op_id, sync_operations::kind, sync_operations::entity, sync_operations::entity_id))
        .load(conn)?;
    Ok(rows.into_iter().map(|(op, kind, entity, entity_id)| (op, Applied { kind, entity, entity_id })).collect())
}

/// [`remember`] for several operations, in one statement (per slice).
pub fn remember_many(conn: &mut DbConn, user_id: &str, done: &[(&str, Applied)], at: NaiveDateTime) -> QueryResult<()> {
    let rows: Vec<_> = done
        .iter()
        .map(|(op_id, a)| {
            (
                sync_operations::user_id.eq(user_id),
                sync_operations::op_id.eq(*op_id),
                sync_operations::kind.eq(&a.kind),
                sync_operations::entity.eq(&a.entity),
                sync_operations::entity_id.eq(&a.entity_id),
                sync_operations::at.eq(at),
            )
        })
        .collect();
    for slice in rows.chunks(500) {
        crate::db_run!(&mut *conn, |c| diesel::insert_into(sync_operations::table).values(slice).execute(c))?;
    }
    Ok(())
}

/// Remembers an applied operation, so that its replay is answered `duplicate`.
pub fn remember(conn: &mut DbConn, user_id: &str, op_id: &str, a: &Applied, at: NaiveDateTime) -> QueryResult<()> {
    remember_many(conn, user_id, &[(op_id, a.clone())], at)
}
