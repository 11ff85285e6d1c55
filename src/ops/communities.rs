//! Communities: creating one (with the default service plans of each tag) and changing one.
//! Administrators only.

use serde_json::{Value, json};

use crate::auth::{AuthUser, scope};
use crate::db::DbConn;
use crate::domain::Role;
use crate::error::{ApiError, ApiResult};
use crate::ops::{applied, audit_event, check_version};
use crate::store::audit::Event;
use crate::store::communities::{self as store, CommunityRow};
use crate::store::{new_id, now, plans};

/// A community to create; checked (a county-level division code, an IANA timezone).
#[derive(Debug, Clone)]
pub struct NewCommunity {
    pub name: String,
    pub district: String,
    pub street: String,
    pub division_code: String,
    pub timezone: String,
}

/// Creates a community with the default service plans; one of the same name in the same street
/// is 409 `already_exists`.
pub fn create(conn: &mut DbConn, caller: &AuthUser, c: NewCommunity) -> ApiResult<CommunityRow> {
    caller.require(&[Role::Admin])?;
    let at = now();
    let row = CommunityRow {
        id: new_id(),
        name: c.name,
        district: c.district,
        street: c.street,
        division_code: c.division_code,
        timezone: c.timezone,
        version: 1,
        created_at: at,
        updated_at: at,
    };
    store::insert(conn, &row)?;
    plans::create_defaults(conn, &row.id)?;
    let summary = json!({"name": row.name, "division_code": row.division_code});
    audit_event(conn, caller, event("community.created", &row.id, summary))?;
    Ok(row)
}

/// A change to a community; checked (an IANA timezone). `None` leaves a field alone.
pub use crate::store::communities::CommunityEdit;

/// Changes a community.
pub fn edit(
    conn: &mut DbConn,
    caller: &AuthUser,
    id: &str,
    expected: Option<&str>,
    e: CommunityEdit,
) -> ApiResult<CommunityRow> {
    let current = scope::community_for_update(conn, caller, id)?;
    caller.require(&[Role::Admin])?;
    check_version(expected, current.version)?;
    let summary = json!({"name": e.name, "district": e.district, "street": e.street, "timezone": e.timezone});
    applied(store::update(conn, id, current.version, &e, now())?, "community")?;
    audit_event(conn, caller, event("community.updated", id, summary))?;
    store::find(conn, id)?.ok_or_else(|| ApiError::not_found("community"))
}

fn event<'a>(action: &'a str, id: &'a str, summary: Value) -> Event<'a> {
    Event { action, entity_type: "community", entity_id: Some(id), community_id: Some(id), summary }
}
