//! Kept suggestions: each household's suggested tag and its explanation, stored so that a page of
//! households does not read every member to work them out. A row holds what [`suggest`] gives
//! from `computed_on` until the day before `valid_until` (a member's next birthday); triggers
//! mark it stale in the transaction that changes the household's members or recorded reasons
//! (migration `2026-11-29-000200_household_suggestions`), and [`refresh_due`] — run by the server
//! in the background (`jobs::spawn_suggestion_keeper`) — works stale and expired ones out again.
//! A reader that finds a row not good for its day works the suggestion out from the members, so
//! what a client sees never depends on the background work having run.

use std::collections::HashMap;

use chrono::NaiveDate;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::{household_suggestions, households};
use crate::db::types::Day;
use crate::domain::{MemberFacts, Suggestion, Tag, suggest, suggestion_valid_until};
use crate::error::{ApiError, ApiResult};
use crate::store::JsonText;
use crate::store::communities;
use crate::store::households::members_of;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = household_suggestions)]
pub struct KeptRow {
    pub household_id: String,
    #[diesel(deserialize_as = Day)]
    pub computed_on: NaiveDate,
    #[diesel(deserialize_as = Day)]
    pub valid_until: NaiveDate,
    pub suggestion: String,
}

impl KeptRow {
    /// The kept suggestion, if it holds on `day` (a stale row holds on no day).
    pub fn on(&self, day: NaiveDate) -> Option<Suggestion> {
        holds(self.computed_on, self.valid_until, day).then(|| serde_json::from_str(&self.suggestion).ok()).flatten()
    }
}

/// What a summary reads of a kept suggestion: when it holds, and its text for the tag.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = household_suggestions)]
pub struct KeptTag {
    #[diesel(deserialize_as = Day)]
    pub computed_on: NaiveDate,
    #[diesel(deserialize_as = Day)]
    pub valid_until: NaiveDate,
    pub suggestion: String,
}

impl KeptTag {
    /// The kept suggestion's tag, if it holds on `day`: its explanation is passed over, not
    /// built.
    pub fn on(&self, day: NaiveDate) -> Option<Tag> {
        #[derive(serde::Deserialize)]
        struct TagOnly {
            tag: Tag,
        }
        holds(self.computed_on, self.valid_until, day)
            .then(|| serde_json::from_str::<TagOnly>(&self.suggestion).ok().map(|t| t.tag))
            .flatten()
    }
}

/// Whether a row worked out on `computed_on` and good until the day before `valid_until` holds
/// on `day` (a stale row holds on no day).
fn holds(computed_on: NaiveDate, valid_until: NaiveDate, day: NaiveDate) -> bool {
    computed_on <= day && day < valid_until
}

/// The kept suggestions of some households, by household id.
pub fn kept(conn: &mut DbConn, ids: &[String]) -> QueryResult<HashMap<String, KeptRow>> {
    let rows: Vec<KeptRow> = household_suggestions::table
        .filter(household_suggestions::household_id.eq_any(ids))
        .select(KeptRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(|r| (r.household_id.clone(), r)).collect())
}

/// Adds a (stale) kept-suggestion row for every household without one — households written with
/// the triggers off (`sync::unlogged`, as the synthetic data sets are loaded) — for the server to
/// work out; how many.
pub fn add_missing(conn: &mut DbConn) -> QueryResult<usize> {
    // A load's whole set in one statement (3,000,000 households: minutes on PostgreSQL), made by
    // a command, not a request: past the connection's statement timeout, for this transaction.
    if matches!(conn, DbConn::Postgres(_)) {
        diesel::sql_query("SET LOCAL statement_timeout = 0").execute(conn)?;
    }
    diesel::sql_query(
        "INSERT INTO household_suggestions (household_id) SELECT h.id FROM households h \
         WHERE NOT EXISTS (SELECT 1 FROM household_suggestions s WHERE s.household_id = h.id)",
    )
    .execute(conn)
}

/// A household whose suggestion is to be worked out: its id, its recorded reason codes, and the
/// day (its community's today).
pub struct Wanted<'a> {
    pub id: &'a str,
    pub reasons: &'a [String],
    pub day: NaiveDate,
}

/// Works the suggestions out from the current members (one query for all), each with the first
/// day it may change.
pub fn compute(conn: &mut DbConn, wanted: &[Wanted<'_>]) -> QueryResult<HashMap<String, (Suggestion, NaiveDate)>> {
    let ids: Vec<String> = wanted.iter().map(|w| w.id.to_owned()).collect();
    let mut members: HashMap<String, Vec<MemberFacts>> = HashMap::new();
    for m in members_of(conn, &ids)? {
        members.entry(m.household_id.clone()).or_default().push(m.facts());
    }
    Ok(wanted
        .iter()
        .map(|w| {
            let of = members.get(w.id).map(Vec::as_slice).unwrap_or(&[]);
            (w.id.to_owned(), (suggest(of, w.reasons, w.day), suggestion_valid_until(of, w.day)))
        })
        .collect())
}

/// Whether any kept suggestion good until `latest` at most waits to be worked out: a read, so
/// that the background pass takes the writer only when there is work.
pub fn any_due(conn: &mut DbConn, latest: NaiveDate) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        household_suggestions::table.filter(household_suggestions::valid_until.le(latest)),
    ))
    .get_result(conn)
}

/// What one [`refresh_due`] did: how many due rows it looked at, and how many it worked out.
#[derive(Debug, Default, Clone, Copy)]
pub struct Refreshed {
    pub looked: usize,
    pub worked: usize,
}

/// Works out again up to `limit` kept suggestions that are stale or expired, soonest first: rows
/// good until `latest` at most (the furthest-ahead community's today), each worked out for its
/// own community's today, and left for later when that has not reached it yet. The rows are
/// found through the `valid_until` index alone, so a pass with nothing due reads nothing else.
/// Meant for a write transaction: on PostgreSQL the rows are locked and rows a writer holds are
/// skipped (their writer marks them stale anyway), and a member change that commits after the
/// members were read marks its row stale again once this transaction's lock is released.
pub fn refresh_due(conn: &mut DbConn, latest: NaiveDate, limit: i64) -> ApiResult<Refreshed> {
    let due = household_suggestions::table
        .filter(household_suggestions::valid_until.le(latest))
        .order(household_suggestions::valid_until.asc())
        .select((household_suggestions::household_id, household_suggestions::valid_until))
        .limit(limit);
    let due: Vec<(String, NaiveDate)> = match conn {
        DbConn::Postgres(c) => due.for_update().skip_locked().load(c)?,
        DbConn::Sqlite(c) => due.load(c)?,
    };
    if due.is_empty() {
        return Ok(Refreshed::default());
    }
    let until: HashMap<&str, NaiveDate> = due.iter().map(|(id, d)| (id.as_str(), *d)).collect();
    let ids: Vec<&str> = until.keys().copied().collect();
    let rows: Vec<(String, String, JsonText<Vec<String>>)> = households::table
        .filter(households::id.eq_any(&ids))
        .select((households::id, households::community_id, households::tag_reasons))
        .load(conn)?;
    let mut today: HashMap<String, NaiveDate> = HashMap::new();
    let mut wanted = Vec::with_capacity(rows.len());
    for (id, community, reasons) in &rows {
        let day = match today.get(community) {
            Some(d) => *d,
            None => *today.entry(community.clone()).or_insert(communities::today(conn, community)?),
        };
        if until.get(id.as_str()).is_some_and(|u| *u <= day) {
            wanted.push(Wanted { id, reasons: &reasons.0, day });
        }
    }
    let worked = compute(conn, &wanted)?;
    for w in &wanted {
        let Some((suggestion, valid_until)) = worked.get(w.id) else { continue };
        let text = serde_json::to_string(suggestion).map_err(ApiError::internal)?;
        diesel::update(household_suggestions::table.find(w.id))
            .set((
                household_suggestions::computed_on.eq(w.day),
                household_suggestions::valid_until.eq(valid_until),
                household_suggestions::suggestion.eq(text),
            ))
            .execute(conn)?;
    }
    Ok(Refreshed { looked: due.len(), worked: worked.len() })
}
