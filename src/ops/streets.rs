//! Districts and streets: creating, renaming and deleting them (administrators only). Codes are
//! fixed once made: the grid codes of CJ/T 349 start with them.

use serde_json::{Value, json};

use crate::auth::{AuthUser, scope};
use crate::db::DbConn;
use crate::domain::Role;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ops::{applied, audit_event, check_version};
use crate::store::audit::Event;
use crate::store::streets::{self as store, DistrictRow, StreetRow};
use crate::store::{new_id, now};

/// A district to create; checked (a county-level division code).
#[derive(Debug, Clone)]
pub struct NewDistrict {
    pub name: String,
    pub division_code: String,
}

/// A street to create; checked (9 digits).
#[derive(Debug, Clone)]
pub struct NewStreet {
    pub district_id: String,
    pub name: String,
    pub code: String,
}

/// Creates a district; a division code another district has is 409 `already_exists`.
pub fn create_district(conn: &mut DbConn, caller: &AuthUser, d: NewDistrict) -> ApiResult<DistrictRow> {
    caller.require(&[Role::Admin])?;
    let at = now();
    let row = DistrictRow {
        id: new_id(),
        name: d.name,
        division_code: d.division_code,
        version: 1,
        created_at: at,
        updated_at: at,
    };
    store::insert_district(conn, &row)?;
    let summary = json!({"name": row.name, "division_code": row.division_code});
    audit_event(conn, caller, event("district.created", "district", &row.id, summary))?;
    Ok(row)
}

/// Renames a district.
pub fn rename_district(
    conn: &mut DbConn,
    caller: &AuthUser,
    id: &str,
    expected: Option<&str>,
    name: String,
) -> ApiResult<DistrictRow> {
    scope::district(conn, caller, id)?;
    caller.require(&[Role::Admin])?;
    let current = store::find_district_for_update(conn, id)?.ok_or_else(|| ApiError::not_found("district"))?;
    check_version(expected, current.version)?;
    applied(store::rename_district(conn, id, current.version, &name, now())?, "district")?;
    audit_event(conn, caller, event("district.updated", "district", id, json!({"name": name})))?;
    store::find_district(conn, id)?.ok_or_else(|| ApiError::not_found("district"))
}

/// Deletes a district that has no streets and no officers left (409 `in_use` otherwise).
pub fn delete_district(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<()> {
    scope::district(conn, caller, id)?;
    caller.require(&[Role::Admin])?;
    let current = store::find_district_for_update(conn, id)?.ok_or_else(|| ApiError::not_found("district"))?;
    if store::street_count(conn, id)? > 0 || store::officer_count(conn, None, Some(id))? > 0 {
        return Err(ApiError::conflict(ErrorCode::InUse, "the district still has streets or officers"));
    }
    store::delete_district(conn, id)?;
    let summary = json!({"name": current.name, "division_code": current.division_code});
    audit_event(conn, caller, event("district.deleted", "district", id, summary))
}

/// Creates a street of a district (422 `district_id` when there is no such district); its code
/// starts with the district's division code (422 `code` otherwise), and a code or a name in the
/// district another street has is 409 `already_exists`.
pub fn create_street(conn: &mut DbConn, caller: &AuthUser, s: NewStreet) -> ApiResult<StreetRow> {
    caller.require(&[Role::Admin])?;
    let district = store::find_district(conn, &s.district_id)?
        .ok_or_else(|| ApiError::invalid("district_id", "unknown", "no such district"))?;
    if !s.code.starts_with(&district.division_code) {
        return Err(ApiError::invalid(
            "code",
            "other_district",
            format!("must start with the district's division code {}", district.division_code),
        ));
    }
    let at = now();
    let row = StreetRow {
        id: new_id(),
        district_id: district.id,
        name: s.name,
        code: s.code,
        version: 1,
        created_at: at,
        updated_at: at,
    };
    store::insert_street(conn, &row)?;
    let summary = json!({"name": row.name, "code": row.code, "district_id": row.district_id});
    audit_event(conn, caller, event("street.created", "street", &row.id, summary))?;
    Ok(row)
}

/// Renames a street; a name another street of the district has is 409 `already_exists`.
pub fn rename_street(
    conn: &mut DbConn,
    caller: &AuthUser,
    id: &str,
    expected: Option<&str>,
    name: String,
) -> ApiResult<StreetRow> {
    scope::street(conn, caller, id)?;
    caller.require(&[Role::Admin])?;
    let current = store::find_street_for_update(conn, id)?.ok_or_else(|| ApiError::not_found("street"))?;
    check_version(expected, current.version)?;
    applied(store::rename_street(conn, id, current.version, &name, now())?, "street")?;
    audit_event(conn, caller, event("street.updated", "street", id, json!({"name": name})))?;
    store::find_street(conn, id)?.ok_or_else(|| ApiError::not_found("street"))
}

/// Deletes a street that has no communities and no officers left (409 `in_use` otherwise).
pub fn delete_street(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<()> {
    scope::street(conn, caller, id)?;
    caller.require(&[Role::Admin])?;
    let current = store::find_street_for_update(conn, id)?.ok_or_else(|| ApiError::not_found("street"))?;
    if store::community_count(conn, id)? > 0 || store::officer_count(conn, Some(id), None)? > 0 {
        return Err(ApiError::conflict(ErrorCode::InUse, "the street still has communities or officers"));
    }
    store::delete_street(conn, id)?;
    let summary = json!({"name": current.name, "code": current.code});
    audit_event(conn, caller, event("street.deleted", "street", id, summary))
}

fn event<'a>(action: &'a str, entity_type: &'a str, id: &'a str, summary: Value) -> Event<'a> {
    Event { action, entity_type, entity_id: Some(id), community_id: None, summary }
}
