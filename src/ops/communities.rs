//! Communities: creating one (with the default service plans of each tag), changing one and
//! moving it to another street of its district (audited). Administrators only.

use serde_json::{Value, json};

use crate::auth::{AuthUser, scope};
use crate::db::DbConn;
use crate::domain::{GridCode, Role};
use crate::error::{ApiError, ApiResult};
use crate::ops::{applied, audit_event, check_version};
use crate::store::audit::Event;
use crate::store::communities::{self as store, CommunityRow};
use crate::store::streets::{self, StreetRow};
use crate::store::{new_id, now, plans};

/// A community to create; checked (a county-level division code, an IANA timezone).
#[derive(Debug, Clone)]
pub struct NewCommunity {
    pub name: String,
    pub district: String,
    pub street: String,
    pub division_code: String,
    pub timezone: String,
    /// The street it belongs to (its district's default street when `None`).
    pub street_id: Option<String>,
}

/// The street a community of `division_code` may belong to: one of its district (422
/// `street_id` otherwise), with the names the community then shows.
fn street_for(conn: &mut DbConn, id: &str, division_code: &str) -> ApiResult<(StreetRow, String)> {
    let unknown = || ApiError::invalid("street_id", "unknown", "no such street");
    let street = streets::find_street(conn, id)?.ok_or_else(unknown)?;
    let district = streets::find_district(conn, &street.district_id)?.ok_or_else(unknown)?;
    if district.division_code != division_code {
        return Err(ApiError::invalid(
            "street_id",
            "other_district",
            format!("the street is in district {}, not in the community's {division_code}", district.division_code),
        ));
    }
    Ok((street, district.name))
}

/// Creates a community with the default service plans; one of the same name in the same street
/// is 409 `already_exists`.
pub fn create(conn: &mut DbConn, caller: &AuthUser, c: NewCommunity) -> ApiResult<CommunityRow> {
    caller.require(&[Role::Admin])?;
    let at = now();
    let (street, district, street_name) = match &c.street_id {
        Some(id) => {
            let (s, district) = street_for(conn, id, &c.division_code)?;
            (s.id, district, s.name)
        }
        None => (streets::default_street(conn, &c.division_code, &c.district, at)?.id, c.district, c.street),
    };
    let row = CommunityRow {
        id: new_id(),
        name: c.name,
        district,
        street: street_name,
        division_code: c.division_code,
        timezone: c.timezone,
        version: 1,
        created_at: at,
        updated_at: at,
        street_id: street,
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
    mut e: CommunityEdit,
) -> ApiResult<CommunityRow> {
    let current = scope::community_for_update(conn, caller, id)?;
    caller.require(&[Role::Admin])?;
    let moved = match e.street_id.take() {
        Some(to) if to != current.street_id => {
            let (street, district) = street_for(conn, &to, &current.division_code)?;
            (e.street, e.district) = (Some(street.name.clone()), Some(district));
            e.street_id = Some(street.id.clone());
            Some(street)
        }
        _ => None,
    };
    check_version(expected, current.version)?;
    let summary = json!({"name": e.name, "district": e.district, "street": e.street, "timezone": e.timezone});
    applied(store::update(conn, id, current.version, &e, now())?, "community")?;
    audit_event(conn, caller, event("community.updated", id, summary))?;
    if let Some(to) = moved {
        // Its grids keep their codes (printed on stations and rosters, the key of imports): the
        // event counts those whose street digits now name another street, for re-coding.
        let grids = store::list_grids(conn, id, None, None, i64::MAX)?;
        let off_street = grids
            .iter()
            .filter(|g| GridCode::parse_in_street(&g.code, &current.division_code, &to.code).is_err())
            .count();
        let summary = json!({"from_street_id": current.street_id, "to_street_id": to.id,
            "grids_coded_for_another_street": off_street});
        audit_event(conn, caller, event("community.moved", id, summary))?;
    }
    store::find(conn, id)?.ok_or_else(|| ApiError::not_found("community"))
}

fn event<'a>(action: &'a str, id: &'a str, summary: Value) -> Event<'a> {
    Event { action, entity_type: "community", entity_id: Some(id), community_id: Some(id), summary }
}
