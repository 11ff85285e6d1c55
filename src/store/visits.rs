//! Visits: home visits, phone calls and services recorded by grid workers.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::visits;
use crate::db::types::Stamp;
use crate::domain::{Finding, ServiceKind};
use crate::store::households::current_in;
use crate::store::{JsonText, Narrow};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = visits)]
#[diesel(treat_none_as_default_value = false)]
pub struct VisitRow {
    pub id: String,
    pub household_id: String,
    pub community_id: String,
    pub grid_id: String,
    pub worker_id: String,
    pub kind: ServiceKind,
    #[diesel(deserialize_as = Stamp)]
    pub visited_at: NaiveDateTime,
    pub notes: Option<String>,
    pub findings: JsonText<Vec<Finding>>,
    pub location_lat: Option<f64>,
    pub location_lng: Option<f64>,
    pub location_accuracy_m: Option<f64>,
    pub content_hash: String,
    #[diesel(deserialize_as = Stamp)]
    pub received_at: NaiveDateTime,
    pub version: i32,
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
}

pub fn find(conn: &mut DbConn, id: &str) -> QueryResult<Option<VisitRow>> {
    visits::table.find(id).select(VisitRow::as_select()).first(conn).optional()
}

/// [`find`], locked for a change (see [`crate::locked_first`]); lock the household first.
pub fn find_for_update(conn: &mut DbConn, id: &str) -> QueryResult<Option<VisitRow>> {
    crate::locked_first!(conn, visits::table.find(id).select(VisitRow::as_select()))
}

/// Inserts a visit; `Ok(false)` when the id is taken (see [`crate::store::replay`]).
pub fn insert(conn: &mut DbConn, row: &VisitRow) -> QueryResult<bool> {
    crate::store::replay::insert_new(conn, "visits", |c| diesel::insert_into(visits::table).values(row).execute(c))
}

/// Inserts visits in one statement (per slice); `Ok(false)`, inserting none, when an id is
/// taken (see [`crate::store::replay`]).
pub fn insert_many(conn: &mut DbConn, rows: &[VisitRow]) -> QueryResult<bool> {
    crate::store::replay::insert_new(conn, "visits", |c| crate::store::bulk::visits(c, rows))
}

#[derive(Default, Debug)]
pub struct ListFilter {
    pub community_id: Option<String>,
    /// Only these communities (an officer's street or district).
    pub community_ids: Option<Vec<String>>,
    /// Visits recorded in these grids.
    pub grid_ids: Option<Vec<String>>,
    /// Only visits of households that are now in these grids and not removed: a grid worker's
    /// scope, the same rule as reading one visit.
    pub current_households_in: Option<Vec<String>>,
    pub household_id: Option<String>,
    pub worker_id: Option<String>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
}

/// Newest first; the keyset is `(visited_at, id)` descending.
pub fn list(
    conn: &mut DbConn,
    f: &ListFilter,
    before: Option<(NaiveDateTime, String)>,
    limit: i64,
) -> QueryResult<Vec<VisitRow>> {
    visits::table
        .select(VisitRow::as_select())
        .order((visits::visited_at.desc(), visits::id.desc()))
        .limit(limit)
        .into_boxed()
        .narrow(f.community_id.as_ref(), |q, c| q.filter(visits::community_id.eq(c)))
        .narrow(f.community_ids.clone(), |q, ids| q.filter(visits::community_id.eq_any(ids)))
        .narrow(f.grid_ids.clone(), |q, grids| q.filter(visits::grid_id.eq_any(grids)))
        .narrow(f.household_id.as_ref(), |q, h| q.filter(visits::household_id.eq(h)))
        .narrow(f.current_households_in.as_deref(), |q, grids| q.filter(visits::household_id.eq_any(current_in(grids))))
        .narrow(f.worker_id.as_ref(), |q, w| q.filter(visits::worker_id.eq(w)))
        .narrow(f.from, |q, from| q.filter(visits::visited_at.ge(from)))
        .narrow(f.to, |q, to| q.filter(visits::visited_at.lt(to)))
        .narrow(before, |q, (at, id)| {
            q.filter(visits::visited_at.lt(at).or(visits::visited_at.eq(at).and(visits::id.lt(id))))
        })
        .load(conn)
}

#[derive(AsChangeset)]
#[diesel(table_name = visits)]
pub struct VisitCorrection {
    pub notes: Option<Option<String>>,
    pub findings: Option<JsonText<Vec<Finding>>>,
    pub location_lat: Option<Option<f64>>,
    pub location_lng: Option<Option<f64>>,
    pub location_accuracy_m: Option<Option<f64>>,
    pub content_hash: String,
    pub version: i32,
    pub updated_at: NaiveDateTime,
}

pub fn correct(conn: &mut DbConn, id: &str, version: i32, c: &VisitCorrection) -> QueryResult<bool> {
    diesel::update(visits::table.filter(visits::id.eq(id)).filter(visits::version.eq(version)))
        .set(c)
        .execute(conn)
        .map(|n| n == 1)
}
