//! The change feed: what a device gets on `GET /sync`, page by page.
//!
//! An initial sync sends the scope as upserts, kind by kind, as of one watermark: a record
//! changed after it is left out, because the first delta (from that watermark) sends it. A
//! delta first sends what entered the scope (grids newly assigned: their records, as upserts),
//! then what left it (`leave` for those grids and the households now in them), then the
//! records changed in the log window, each once, at its latest change: `upsert` with its
//! current state, `delete` when it was removed, `leave` when it is no longer in scope.

use std::collections::{HashMap, HashSet};

use chrono::{Duration, NaiveDateTime};
use serde::Serialize;
use utoipa::ToSchema;

use super::token::Token;
use crate::api::households::views as household_views;
use crate::api::members::MemberOut;
use crate::api::tags::TagChangeOut;
use crate::api::tasks::task_out;
use crate::api::users::UserOut;
use crate::auth::AuthUser;
use crate::db::DbConn;
use crate::domain::catalogue;
use crate::error::ApiResult;
use crate::store::communities::{self as communities_store, today_in};
use crate::store::households::HouseholdRow;
use crate::store::sync::{self as store, LogScope, Scope, Watermark};
use crate::store::users::UserRow;

/// What a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    /// The caller's own account (`UserOut`).
    Me,
    /// A reason of the tag-reason catalogue (`TagReason`).
    TagReason,
    /// An account of the community, as others see it: name and role (`DirectoryEntry`).
    User,
    /// A service plan of the community (`PlanOut`), named by its tag.
    Plan,
    /// A grid in scope, with its workers (`GridOut`).
    Grid,
    /// `HouseholdOut`.
    Household,
    /// `MemberOut`, masked like every response.
    Member,
    /// `TaskOut`: open tasks, and tasks closed since the last sync.
    Task,
    /// `VisitOut`, of the last `GRIDLIGHT_SYNC_VISIT_DAYS` days.
    Visit,
    /// `TagChangeOut`: pending ones, and those decided since the last sync.
    TagChange,
}

/// What to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Store `data` (it replaces what the device holds under this id).
    Upsert,
    /// It is gone (a member removed, a household moved out or otherwise removed): drop it, and
    /// for a household everything that belongs to it. `data` says why for households.
    Delete,
    /// It still exists but is no longer in the caller's scope (a household moved to another
    /// grid, a grid no longer assigned): drop it, and for a household or a grid everything that
    /// belongs to it. Unsent work for it stays on the device and is pushed as usual.
    Leave,
}

/// One change.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChangeOut {
    pub entity: Entity,
    pub op: Op,
    pub id: String,
    /// The record's version, where it has one.
    pub version: Option<i32>,
    /// The record as the API renders it (`upsert`), why it is gone (`delete` of a household),
    /// or nothing.
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
}

/// An account as other accounts of the community see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DirectoryEntry {
    pub id: String,
    pub display_name: String,
    pub role: crate::domain::Role,
    pub active: bool,
}

fn directory(u: &UserRow) -> DirectoryEntry {
    DirectoryEntry { id: u.id.clone(), display_name: u.display_name.clone(), role: u.role, active: u.active }
}

fn json(value: impl Serialize) -> Option<serde_json::Value> {
    Some(serde_json::to_value(value).expect("responses serialise"))
}

fn upsert(entity: Entity, id: &str, version: Option<i32>, data: impl Serialize) -> ChangeOut {
    ChangeOut { entity, op: Op::Upsert, id: id.to_owned(), version, data: json(data) }
}

fn gone(entity: Entity, op: Op, id: &str) -> ChangeOut {
    ChangeOut { entity, op, id: id.to_owned(), version: None, data: None }
}

/// What one page is computed with.
pub struct Ctx<'a> {
    pub caller: &'a AuthUser,
    /// The scope now (a worker's current grids, or all the community's).
    pub scope: Scope,
    /// Visits from this time on are carried.
    pub visits_since: NaiveDateTime,
    /// Tag changes decided from this time on are carried by an initial sync.
    pub decided_since: NaiveDateTime,
    /// At most this many changes a page.
    pub limit: usize,
}

impl Ctx<'_> {
    fn full(&self, out: &[ChangeOut]) -> bool {
        out.len() >= self.limit
    }

    fn batch(&self, out: &[ChangeOut]) -> i64 {
        i64::try_from(self.limit.saturating_sub(out.len()).max(1)).unwrap_or(1)
    }
}

/// The kinds of an initial sync, in the order they are sent (a device gets the grids before
/// their households, households before their members).
const KINDS: [Entity; 10] = [
    Entity::Me,
    Entity::TagReason,
    Entity::User,
    Entity::Plan,
    Entity::Grid,
    Entity::Household,
    Entity::Member,
    Entity::Task,
    Entity::Visit,
    Entity::TagChange,
];

/// The first kind of a grid's own records (what a newly assigned grid sends).
pub const FIRST_GRID_KIND: u8 = 4;

/// Sends snapshot records from `(kind, after)` on, as of `at`, until the page is full; answers
/// where the next page starts (`None`: done).
pub fn snapshot(
    conn: &mut DbConn,
    ctx: &Ctx<'_>,
    scope: &Scope,
    at: &Watermark,
    mut kind: u8,
    mut after: String,
    out: &mut Vec<ChangeOut>,
) -> ApiResult<Option<(u8, String)>> {
    while let Some(entity) = KINDS.get(usize::from(kind)) {
        if ctx.full(out) {
            return Ok(Some((kind, after)));
        }
        let batch = ctx.batch(out);
        let (sent, last) = snapshot_page(conn, ctx, scope, at, *entity, &after, batch)?;
        out.extend(sent);
        match last {
            Some(id) => after = id,
            None => {
                kind += 1;
                after = String::new();
            }
        }
    }
    Ok(None)
}

/// One batch of one kind: the changes to send and the last id read (`None`: the kind is done).
fn snapshot_page(
    conn: &mut DbConn,
    ctx: &Ctx<'_>,
    scope: &Scope,
    at: &Watermark,
    entity: Entity,
    after: &str,
    batch: i64,
) -> ApiResult<(Vec<ChangeOut>, Option<String>)> {
    // Records changed after the watermark are left to the delta that follows.
    fn keep<T>(
        conn: &mut DbConn,
        rows: Vec<T>,
        kind: &str,
        at: &Watermark,
        id: impl Fn(&T) -> &str,
    ) -> ApiResult<Vec<T>> {
        let ids: Vec<String> = rows.iter().map(|r| id(r).to_owned()).collect();
        let later = store::changed_after(conn, kind, &ids, at)?;
        Ok(rows.into_iter().filter(|r| !later.contains(id(r))).collect())
    }
    fn last<T>(rows: &[T], batch: i64, id: impl Fn(&T) -> &str) -> Option<String> {
        (rows.len() as i64 >= batch).then(|| rows.last().map(|r| id(r).to_owned())).flatten()
    }
    let c = &scope.community_id;
    Ok(match entity {
        Entity::Me => {
            let me = &ctx.caller.row;
            (vec![upsert(Entity::Me, &me.id, Some(me.version), UserOut::from(me.clone()))], None)
        }
        Entity::TagReason => (catalogue().iter().map(|r| upsert(Entity::TagReason, r.code, None, r)).collect(), None),
        Entity::User => {
            let rows = store::users_page(conn, c, after, batch)?;
            let next = last(&rows, batch, |u| &u.id);
            let rows = keep(conn, rows, "user", at, |u| &u.id)?;
            (rows.iter().map(|u| upsert(Entity::User, &u.id, Some(u.version), directory(u))).collect(), next)
        }
        Entity::Plan => (plans(conn, c)?, None),
        Entity::Grid => {
            let rows = store::grids_page(conn, scope, after, batch)?;
            let next = last(&rows, batch, |g| &g.id);
            let rows = keep(conn, rows, "grid", at, |g| &g.id)?;
            let mut sent = Vec::with_capacity(rows.len());
            for g in rows {
                sent.push(grid(conn, g)?);
            }
            (sent, next)
        }
        Entity::Household => {
            let rows = store::households_page(conn, scope, after, batch)?;
            let next = last(&rows, batch, |h| &h.id);
            let rows = keep(conn, rows, "household", at, |h| &h.id)?;
            (households(conn, rows)?, next)
        }
        Entity::Member => {
            let rows = store::members_page(conn, scope, after, batch)?;
            let next = last(&rows, batch, |m| &m.id);
            let rows = keep(conn, rows, "member", at, |m| &m.id)?;
            (
                rows.into_iter()
                    .map(|m| upsert(Entity::Member, &m.id.clone(), Some(m.version), MemberOut::from(m)))
                    .collect(),
                next,
            )
        }
        Entity::Task => {
            let rows = store::open_tasks_page(conn, scope, after, batch)?;
            let next = last(&rows, batch, |t| &t.id);
            let rows = keep(conn, rows, "task", at, |t| &t.id)?;
            let today = community_today(conn, c)?;
            (
                rows.into_iter()
                    .map(|t| upsert(Entity::Task, &t.id.clone(), Some(t.version), task_out(t, today)))
                    .collect(),
                next,
            )
        }
        Entity::Visit => {
            let rows = store::visits_page(conn, scope, ctx.visits_since, after, batch)?;
            let next = last(&rows, batch, |v| &v.id);
            let rows = keep(conn, rows, "visit", at, |v| &v.id)?;
            (visits(conn, rows)?, next)
        }
        Entity::TagChange => {
            let rows = store::tag_changes_page(conn, scope, ctx.decided_since, after, batch)?;
            let next = last(&rows, batch, |t| &t.id);
            let rows = keep(conn, rows, "tag_change", at, |t| &t.id)?;
            (
                rows.into_iter()
                    .map(|t| upsert(Entity::TagChange, &t.id.clone(), None, TagChangeOut::from(t)))
                    .collect(),
                next,
            )
        }
    })
}

fn community_today(conn: &mut DbConn, community_id: &str) -> ApiResult<chrono::NaiveDate> {
    let tz = communities_store::find(conn, community_id)?.map(|c| c.timezone).unwrap_or_default();
    Ok(today_in(&tz))
}

fn plans(conn: &mut DbConn, community_id: &str) -> ApiResult<Vec<ChangeOut>> {
    Ok(crate::api::plans::views(crate::store::plans::plans_of(conn, community_id)?)
        .into_iter()
        .map(|p| {
            // A community has one plan per tag: the tag names it.
            let (id, version) = (p.tag.as_str(), p.version);
            upsert(Entity::Plan, id, Some(version), p)
        })
        .collect())
}

fn grid(conn: &mut DbConn, row: crate::store::communities::GridRow) -> ApiResult<ChangeOut> {
    let g = crate::api::grids::view(conn, row)?;
    let (id, version) = (g.id.clone(), g.version);
    Ok(upsert(Entity::Grid, &id, Some(version), g))
}

fn households(conn: &mut DbConn, rows: Vec<HouseholdRow>) -> ApiResult<Vec<ChangeOut>> {
    Ok(household_views(conn, rows)?
        .into_iter()
        .map(|h| {
            let (id, version) = (h.id.clone(), h.version);
            upsert(Entity::Household, &id, Some(version), h)
        })
        .collect())
}

fn visits(conn: &mut DbConn, rows: Vec<crate::store::visits::VisitRow>) -> ApiResult<Vec<ChangeOut>> {
    Ok(crate::api::visits::views(conn, rows)?
        .into_iter()
        .map(|v| {
            let (id, version) = (v.id.clone(), v.version);
            upsert(Entity::Visit, &id, Some(version), v)
        })
        .collect())
}

/// Sends `leave` for grids no longer in scope and the households now in them, from `after`
/// on; answers where the next page starts (`None`: done).
pub fn leave(
    conn: &mut DbConn,
    ctx: &Ctx<'_>,
    grids: &[String],
    mut after: String,
    out: &mut Vec<ChangeOut>,
) -> ApiResult<Option<String>> {
    if after.is_empty() {
        out.extend(grids.iter().map(|g| gone(Entity::Grid, Op::Leave, g)));
    }
    loop {
        if ctx.full(out) {
            return Ok(Some(after));
        }
        let batch = ctx.batch(out);
        let ids = store::households_in_grids(conn, grids, &after, batch)?;
        out.extend(ids.iter().map(|h| gone(Entity::Household, Op::Leave, h)));
        match ids.last() {
            Some(last) if ids.len() as i64 >= batch => after = last.clone(),
            _ => return Ok(None),
        }
    }
}

/// Sends the records changed in the window `(from, to]` after `seq`, each at its latest change;
/// answers where the next page starts (`None`: the window is done).
pub fn delta(
    conn: &mut DbConn,
    ctx: &Ctx<'_>,
    log: &LogScope,
    from: &Watermark,
    to: &Watermark,
    mut seq: i64,
    out: &mut Vec<ChangeOut>,
) -> ApiResult<Option<i64>> {
    loop {
        if ctx.full(out) {
            return Ok(Some(seq));
        }
        let batch = ctx.batch(out);
        let rows = store::changes(conn, log, from, to, seq, batch)?;
        let Some(page_end) = rows.last().map(|r| r.seq) else { return Ok(None) };
        // A record changed again later in the window is sent when its latest change is reached.
        let ids: Vec<String> = rows.iter().map(|r| r.entity_id.clone()).collect();
        let later = store::changed_later(conn, log, from, to, page_end, &ids)?;
        let mut seen = HashSet::new();
        let mut latest: Vec<(String, String)> = Vec::new();
        for r in rows.iter().rev() {
            let key = (r.entity.clone(), r.entity_id.clone());
            if !later.contains(&key) && seen.insert(key.clone()) {
                latest.push(key);
            }
        }
        latest.reverse();
        out.extend(current(conn, ctx, (from, to), latest)?);
        seq = page_end;
        if (rows.len() as i64) < batch {
            return Ok(None);
        }
    }
}

/// The current state of changed records, in the given order, as the caller may see them.
fn current(
    conn: &mut DbConn,
    ctx: &Ctx<'_>,
    window: (&Watermark, &Watermark),
    changed: Vec<(String, String)>,
) -> ApiResult<Vec<ChangeOut>> {
    let mut by_kind: HashMap<String, Vec<String>> = HashMap::new();
    for (kind, id) in &changed {
        by_kind.entry(kind.clone()).or_default().push(id.clone());
    }
    let ids = |k: &str| by_kind.get(k).cloned().unwrap_or_default();
    let visible: HashSet<&str> = ctx.scope.grids.iter().map(String::as_str).collect();
    let c = ctx.scope.community_id.clone();

    // Households: of the changed ones and of every changed record that belongs to one.
    let members = store::members_by_ids(conn, &ids("member"))?;
    let tasks = store::tasks_by_ids(conn, &ids("task"))?;
    let visits = store::visits_by_ids(conn, &ids("visit"))?;
    let tag_changes = store::tag_changes_by_ids(conn, &ids("tag_change"))?;
    let mut household_ids = ids("household");
    household_ids.extend(members.iter().map(|m| m.household_id.clone()));
    household_ids.extend(tasks.iter().map(|t| t.household_id.clone()));
    household_ids.extend(visits.iter().map(|v| v.household_id.clone()));
    household_ids.extend(tag_changes.iter().map(|t| t.household_id.clone()));
    household_ids.sort();
    household_ids.dedup();
    let homes: HashMap<String, HouseholdRow> =
        store::households_by_ids(conn, &household_ids)?.into_iter().map(|h| (h.id.clone(), h)).collect();
    // Where a household is, for the caller: in scope, removed, or elsewhere.
    let place = |household_id: &str| -> Place {
        match homes.get(household_id) {
            Some(h) if h.removed_at.is_some() => Place::Removed,
            Some(h) if h.community_id == c && visible.contains(h.grid_id.as_str()) => Place::InScope,
            _ => Place::Elsewhere,
        }
    };

    let mut rendered: HashMap<(Entity, String), ChangeOut> = HashMap::new();
    let mut put = |c: ChangeOut| {
        rendered.insert((c.entity, c.id.clone()), c);
    };
    // Households.
    let mut in_scope_households = Vec::new();
    for id in ids("household") {
        match (place(&id), homes.get(&id)) {
            (Place::InScope, Some(h)) => in_scope_households.push(h.clone()),
            (Place::Removed, Some(h)) => put(ChangeOut {
                entity: Entity::Household,
                op: Op::Delete,
                id: id.clone(),
                version: Some(h.version),
                data: json(
                    serde_json::json!({"removed_reason": h.removed_reason, "removed_at": h.removed_at.map(|t| t.and_utc())}),
                ),
            }),
            _ => put(gone(Entity::Household, Op::Leave, &id)),
        }
    }
    // A household that moved here brings everything that belongs to it.
    let arrived: Vec<String> = {
        let ids: Vec<String> = in_scope_households.iter().map(|h| h.id.clone()).collect();
        let moved = store::moved(conn, window.0, window.1, &ids)?;
        ids.into_iter().filter(|id| moved.contains(id)).collect()
    };
    for h in households(conn, in_scope_households)? {
        put(h);
    }
    let mut parts = Vec::new();
    if !arrived.is_empty() {
        parts = belongings(conn, ctx, &arrived)?;
    }
    // Members: a removed member is deleted; one of a household elsewhere leaves.
    for m in members {
        let id = m.id.clone();
        match place(&m.household_id) {
            _ if m.removed_at.is_some() => put(gone(Entity::Member, Op::Delete, &id)),
            Place::InScope => put(upsert(Entity::Member, &id, Some(m.version), MemberOut::from(m))),
            Place::Removed => put(gone(Entity::Member, Op::Delete, &id)),
            Place::Elsewhere => put(gone(Entity::Member, Op::Leave, &id)),
        }
    }
    let today = community_today(conn, &c)?;
    for t in tasks {
        let id = t.id.clone();
        match place(&t.household_id) {
            Place::InScope | Place::Removed => put(upsert(Entity::Task, &id, Some(t.version), task_out(t, today))),
            Place::Elsewhere => put(gone(Entity::Task, Op::Leave, &id)),
        }
    }
    let mut shown_visits = Vec::new();
    for v in visits {
        match place(&v.household_id) {
            Place::InScope if v.visited_at >= ctx.visits_since => shown_visits.push(v),
            Place::InScope => {}
            _ => put(gone(Entity::Visit, Op::Leave, &v.id)),
        }
    }
    for v in self::visits(conn, shown_visits)? {
        put(v);
    }
    for t in tag_changes {
        let id = t.id.clone();
        match place(&t.household_id) {
            Place::InScope | Place::Removed => put(upsert(Entity::TagChange, &id, None, TagChangeOut::from(t))),
            Place::Elsewhere => put(gone(Entity::TagChange, Op::Leave, &id)),
        }
    }
    let grid_ids = ids("grid");
    for g in store::grids_by_ids(conn, &grid_ids)? {
        if visible.contains(g.id.as_str()) {
            put(grid(conn, g)?);
        }
    }
    for g in grid_ids.iter().filter(|g| !visible.contains(g.as_str())) {
        put(gone(Entity::Grid, Op::Leave, g));
    }
    for u in store::users_by_ids(conn, &ids("user"))? {
        if u.id == ctx.caller.id {
            put(upsert(Entity::Me, &u.id, Some(u.version), UserOut::from(u.clone())));
        }
        put(upsert(Entity::User, &u.id, Some(u.version), directory(&u)));
    }
    if !ids("plan").is_empty() {
        for p in plans(conn, &c)? {
            put(p);
        }
    }

    // In the order of the changes (the account first where it changed), what arrived with a
    // household right after it.
    let mut out = Vec::with_capacity(rendered.len() + parts.len());
    for (kind, id) in changed {
        let entity = match kind.as_str() {
            "household" => Entity::Household,
            "member" => Entity::Member,
            "task" => Entity::Task,
            "visit" => Entity::Visit,
            "tag_change" => Entity::TagChange,
            "grid" => Entity::Grid,
            "plan" => Entity::Plan,
            "user" => {
                out.extend(rendered.remove(&(Entity::Me, id.clone())));
                Entity::User
            }
            _ => continue,
        };
        out.extend(rendered.remove(&(entity, id)));
    }
    // Plans are sent whole: whichever of their rows changed.
    out.extend(rendered.into_values().filter(|c| c.entity == Entity::Plan));
    out.extend(parts);
    Ok(out)
}

/// Everything that belongs to some households, as an initial sync sends it.
fn belongings(conn: &mut DbConn, ctx: &Ctx<'_>, household_ids: &[String]) -> ApiResult<Vec<ChangeOut>> {
    let mut out = Vec::new();
    for m in store::members_of(conn, household_ids)? {
        out.push(upsert(Entity::Member, &m.id.clone(), Some(m.version), MemberOut::from(m)));
    }
    let today = community_today(conn, &ctx.scope.community_id)?;
    for t in store::open_tasks_of(conn, household_ids)? {
        out.push(upsert(Entity::Task, &t.id.clone(), Some(t.version), task_out(t, today)));
    }
    let recent = store::visits_of(conn, household_ids, ctx.visits_since)?;
    out.extend(visits(conn, recent)?);
    for t in store::tag_changes_of(conn, household_ids, ctx.decided_since)? {
        out.push(upsert(Entity::TagChange, &t.id.clone(), None, TagChangeOut::from(t)));
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    InScope,
    Removed,
    Elsewhere,
}

/// Tokens older than this are refused.
pub fn too_old(token: &Token, retention_days: u32, now: NaiveDateTime) -> bool {
    let taken = chrono::DateTime::from_timestamp(token.taken, 0).map(|t| t.naive_utc()).unwrap_or_default();
    taken < now - Duration::days(i64::from(retention_days))
}
