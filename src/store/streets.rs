//! Districts (区) and streets (街道): the units above the community, and which communities each
//! holds.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::db::DbConn;
use crate::db::schema::{communities, districts, streets, users};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::store::{Narrow, new_id};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = districts)]
pub struct DistrictRow {
    pub id: String,
    pub name: String,
    /// GB/T 2260 county-level division code.
    pub division_code: String,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = streets)]
pub struct StreetRow {
    pub id: String,
    pub district_id: String,
    pub name: String,
    /// The district's division code + 3 digits: the first 9 digits of its grids' codes.
    pub code: String,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// The name of the street an existing database's communities were put in (and a community
/// created without a street goes to): code `<division code>000`.
pub const DEFAULT_STREET_NAME: &str = "默认街道";

/// A unique index this module expects, violated: 409 `already_exists` saying what is taken.
fn taken(e: DieselError, rules: &[(&str, &str, &str)]) -> ApiError {
    if let DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) = &e {
        for (index, columns, what) in rules {
            if info.constraint_name() == Some(index) || info.message().ends_with(columns) {
                return ApiError::conflict(ErrorCode::AlreadyExists, format!("{what} is taken"));
            }
        }
    }
    e.into()
}

const DISTRICT_RULES: &[(&str, &str, &str)] =
    &[("districts_division_code_key", "districts.division_code", "the division code")];
const STREET_RULES: &[(&str, &str, &str)] = &[
    ("streets_code_key", "streets.code", "the street code"),
    ("streets_district_name_key", "streets.district_id, streets.name", "the street name in this district"),
];

pub fn find_district(conn: &mut DbConn, id: &str) -> QueryResult<Option<DistrictRow>> {
    districts::table.find(id).select(DistrictRow::as_select()).first(conn).optional()
}

/// [`find_district`], locked for a change.
pub fn find_district_for_update(conn: &mut DbConn, id: &str) -> QueryResult<Option<DistrictRow>> {
    crate::locked_first!(conn, districts::table.find(id).select(DistrictRow::as_select()))
}

pub fn district_by_code(conn: &mut DbConn, division_code: &str) -> QueryResult<Option<DistrictRow>> {
    districts::table
        .filter(districts::division_code.eq(division_code))
        .select(DistrictRow::as_select())
        .first(conn)
        .optional()
}

/// Inserts a district; a division code another district has is 409 `already_exists`.
pub fn insert_district(conn: &mut DbConn, row: &DistrictRow) -> ApiResult<()> {
    diesel::insert_into(districts::table).values(row).execute(conn).map_err(|e| taken(e, DISTRICT_RULES))?;
    Ok(())
}

/// Districts by id, optionally only one, after a cursor.
pub fn list_districts(
    conn: &mut DbConn,
    only: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<DistrictRow>> {
    districts::table
        .select(DistrictRow::as_select())
        .order(districts::id.asc())
        .limit(limit)
        .into_boxed()
        .narrow(only, |q, id| q.filter(districts::id.eq(id)))
        .narrow(after, |q, a| q.filter(districts::id.gt(a)))
        .load(conn)
}

/// Renames a district if it is still at `version`; returns whether it was.
pub fn rename_district(conn: &mut DbConn, id: &str, version: i32, name: &str, at: NaiveDateTime) -> QueryResult<bool> {
    diesel::update(districts::table.filter(districts::id.eq(id)).filter(districts::version.eq(version)))
        .set((districts::name.eq(name), districts::version.eq(version + 1), districts::updated_at.eq(at)))
        .execute(conn)
        .map(|n| n == 1)
}

pub fn delete_district(conn: &mut DbConn, id: &str) -> QueryResult<usize> {
    diesel::delete(districts::table.find(id)).execute(conn)
}

pub fn find_street(conn: &mut DbConn, id: &str) -> QueryResult<Option<StreetRow>> {
    streets::table.find(id).select(StreetRow::as_select()).first(conn).optional()
}

/// The street with this 9-digit code.
pub fn street_by_code(conn: &mut DbConn, code: &str) -> QueryResult<Option<StreetRow>> {
    streets::table.filter(streets::code.eq(code)).select(StreetRow::as_select()).first(conn).optional()
}

/// [`find_street`], locked for a change.
pub fn find_street_for_update(conn: &mut DbConn, id: &str) -> QueryResult<Option<StreetRow>> {
    crate::locked_first!(conn, streets::table.find(id).select(StreetRow::as_select()))
}

/// Inserts a street; a code or a name in its district another street has is 409
/// `already_exists`.
pub fn insert_street(conn: &mut DbConn, row: &StreetRow) -> ApiResult<()> {
    diesel::insert_into(streets::table).values(row).execute(conn).map_err(|e| taken(e, STREET_RULES))?;
    Ok(())
}

/// Which streets a list shows.
#[derive(Debug, Clone, Default)]
pub struct StreetFilter {
    /// Only the streets of this district.
    pub district_id: Option<String>,
    /// Only this street (what a street officer sees).
    pub only: Option<String>,
}

/// Streets by code, after a cursor (a code).
pub fn list_streets(
    conn: &mut DbConn,
    f: &StreetFilter,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<StreetRow>> {
    streets::table
        .select(StreetRow::as_select())
        .order(streets::code.asc())
        .limit(limit)
        .into_boxed()
        .narrow(f.district_id.as_ref(), |q, d| q.filter(streets::district_id.eq(d)))
        .narrow(f.only.as_ref(), |q, id| q.filter(streets::id.eq(id)))
        .narrow(after, |q, a| q.filter(streets::code.gt(a)))
        .load(conn)
}

/// Renames a street if it is still at `version`; returns whether it was. A name another street
/// of the district has is 409 `already_exists`.
pub fn rename_street(conn: &mut DbConn, id: &str, version: i32, name: &str, at: NaiveDateTime) -> ApiResult<bool> {
    diesel::update(streets::table.filter(streets::id.eq(id)).filter(streets::version.eq(version)))
        .set((streets::name.eq(name), streets::version.eq(version + 1), streets::updated_at.eq(at)))
        .execute(conn)
        .map(|n| n == 1)
        .map_err(|e| taken(e, STREET_RULES))
}

pub fn delete_street(conn: &mut DbConn, id: &str) -> QueryResult<usize> {
    diesel::delete(streets::table.find(id)).execute(conn)
}

/// How many streets a district has.
pub fn street_count(conn: &mut DbConn, district_id: &str) -> QueryResult<i64> {
    streets::table.filter(streets::district_id.eq(district_id)).count().get_result(conn)
}

/// How many officers hold a street or a district.
pub fn officer_count(conn: &mut DbConn, street_id: Option<&str>, district_id: Option<&str>) -> QueryResult<i64> {
    users::table
        .into_boxed()
        .narrow(street_id, |q, s| q.filter(users::street_id.eq(s)))
        .narrow(district_id, |q, d| q.filter(users::district_id.eq(d)))
        .count()
        .get_result(conn)
}

/// How many communities a street has.
pub fn community_count(conn: &mut DbConn, street_id: &str) -> QueryResult<i64> {
    communities::table.filter(communities::street_id.eq(street_id)).count().get_result(conn)
}

/// The communities of a street, by id.
pub fn communities_of_street(conn: &mut DbConn, street_id: &str) -> QueryResult<Vec<String>> {
    communities::table
        .filter(communities::street_id.eq(street_id))
        .order(communities::id.asc())
        .select(communities::id)
        .load(conn)
}

/// The communities of every street of a district, by id.
pub fn communities_of_district(conn: &mut DbConn, district_id: &str) -> QueryResult<Vec<String>> {
    communities::table
        .inner_join(streets::table)
        .filter(streets::district_id.eq(district_id))
        .order(communities::id.asc())
        .select(communities::id)
        .load(conn)
}

/// The street (and its district) of a community.
pub fn of_community(conn: &mut DbConn, community_id: &str) -> QueryResult<Option<StreetRow>> {
    communities::table
        .inner_join(streets::table)
        .filter(communities::id.eq(community_id))
        .select(StreetRow::as_select())
        .first(conn)
        .optional()
}

/// The default street of a division's district (code `<division code>000`), made with its
/// district when missing: where a community created without a street goes.
pub fn default_street(
    conn: &mut DbConn,
    division_code: &str,
    district_name: &str,
    at: NaiveDateTime,
) -> ApiResult<StreetRow> {
    let district = match district_by_code(conn, division_code)? {
        Some(d) => d,
        None => {
            let row = DistrictRow {
                id: new_id(),
                name: district_name.to_owned(),
                division_code: division_code.to_owned(),
                version: 1,
                created_at: at,
                updated_at: at,
            };
            insert_district(conn, &row)?;
            row
        }
    };
    let code = format!("{division_code}000");
    if let Some(s) = street_by_code(conn, &code)? {
        return Ok(s);
    }
    let row = StreetRow {
        id: new_id(),
        district_id: district.id,
        name: DEFAULT_STREET_NAME.to_owned(),
        code,
        version: 1,
        created_at: at,
        updated_at: at,
    };
    insert_street(conn, &row)?;
    Ok(row)
}
