//! Which communities and grids a dashboard or report covers, and their calendars.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::api::stats::types::ScopeOut;
use crate::auth::AuthUser;
use crate::auth::scope::{self, Reach};
use crate::db::DbConn;
use crate::domain::Role;
use crate::error::{ApiError, ApiResult};
use crate::store::communities::{self, CommunityRow};
use crate::store::stats::{self as store, Slice};
use crate::store::streets::{self, StreetFilter, StreetRow};

#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct ScopeQuery {
    /// Only this community (inside the caller's scope).
    pub community_id: Option<String>,
    /// Only this grid (inside the caller's scope).
    pub grid_id: Option<String>,
    /// This street's roll-up: a row per community (administrators, the street's officer and its
    /// district's officer). Not with the other scope parameters.
    pub street_id: Option<String>,
    /// This district's roll-up: a row per street and per community (administrators and the
    /// district's officer). Not with the other scope parameters.
    pub district_id: Option<String>,
}

/// The communities and grids a request covers.
pub(super) struct Target {
    /// By name.
    pub(super) communities: Vec<CommunityRow>,
    /// `None`: every grid of the communities.
    pub(super) grids: Option<Vec<String>>,
    /// A roll-up's streets, by code, holding every one of `communities`; empty below a street.
    pub(super) streets: Vec<StreetRow>,
    pub(super) scope: ScopeOut,
}

impl Target {
    pub(super) fn community_ids(&self) -> Vec<String> {
        self.communities.iter().map(|c| c.id.clone()).collect()
    }

    /// The communities split by timezone, each with the grid restriction.
    pub(super) fn slices(&self) -> ApiResult<Vec<Slice>> {
        let mut out: Vec<Slice> = Vec::new();
        for c in &self.communities {
            let tz = c.zone()?;
            match out.iter_mut().find(|s| s.timezone == tz) {
                Some(s) => s.communities.push(c.id.clone()),
                None => out.push(Slice { communities: vec![c.id.clone()], grids: self.grids.clone(), timezone: tz }),
            }
        }
        Ok(out)
    }
}

/// A roll-up asked for: of a street or of a district.
enum RollUp {
    Street(String),
    District(String),
}

impl ScopeQuery {
    /// The roll-up asked for, if any (422 when mixed with another scope parameter).
    fn roll_up(&self) -> ApiResult<Option<RollUp>> {
        let others = self.community_id.is_some() || self.grid_id.is_some();
        match (&self.street_id, &self.district_id) {
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err(ApiError::invalid("district_id", "conflict", "give street_id or district_id")),
            (Some(_), None) | (None, Some(_)) if others => Err(ApiError::invalid(
                if self.street_id.is_some() { "street_id" } else { "district_id" },
                "conflict",
                "a roll-up takes no community_id or grid_id",
            )),
            (Some(s), None) => Ok(Some(RollUp::Street(s.clone()))),
            (None, Some(d)) => Ok(Some(RollUp::District(d.clone()))),
        }
    }
}

/// The caller's scope, narrowed to `community_id` / `grid_id` (404 outside it), or rolled up to
/// a street or district: administrators see everything, officers their street or district
/// (rolled up unless narrowed), secretaries their community, grid workers their assigned grids.
pub(super) fn target(conn: &mut DbConn, caller: &AuthUser, q: &ScopeQuery) -> ApiResult<Target> {
    let asked = q.roll_up()?;
    let reach = scope::reach(conn, caller)?;
    let implied = match (&reach, &q.community_id, &q.grid_id) {
        (Reach::Communities(_), None, None) => match (caller.role, &caller.row.street_id, &caller.row.district_id) {
            (Role::StreetOfficer, Some(s), _) => Some(RollUp::Street(s.clone())),
            (Role::DistrictOfficer, _, Some(d)) => Some(RollUp::District(d.clone())),
            _ => None,
        },
        _ => None,
    };
    if let Some(r) = asked.or(implied) {
        return roll_up(conn, caller, r);
    }
    let find = |conn: &mut DbConn, id: &str, what: &str| -> ApiResult<CommunityRow> {
        communities::find(conn, id)?.ok_or_else(|| ApiError::not_found(what))
    };
    if let Some(grid_id) = &q.grid_id {
        let grid = scope::grid(conn, caller, grid_id)?;
        if q.community_id.as_ref().is_some_and(|c| *c != grid.community_id) {
            return Err(ApiError::not_found("grid"));
        }
        let community = find(conn, &grid.community_id, "grid")?;
        let scope =
            ScopeOut { community_id: Some(community.id.clone()), grid_id: Some(grid.id.clone()), ..Default::default() };
        return Ok(Target { communities: vec![community], grids: Some(vec![grid.id]), streets: Vec::new(), scope });
    }
    let worker_grids = match &reach {
        Reach::Grids { grid_ids, .. } => Some(grid_ids.clone()),
        _ => None,
    };
    let mut communities = match (&q.community_id, reach) {
        (Some(id), _) => vec![scope::community(conn, caller, id)?],
        (None, Reach::Everything) => store::all_communities(conn)?,
        (None, Reach::Communities(ids)) => store::communities_by_id(conn, &ids)?,
        (None, Reach::Community(id) | Reach::Grids { community_id: id, .. }) => vec![find(conn, &id, "community")?],
    };
    communities.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    let single = match communities.as_slice() {
        [c] => Some(c.id.clone()),
        _ => None,
    };
    let scope = ScopeOut { community_id: single, ..Default::default() };
    Ok(Target { communities, grids: worker_grids, streets: Vec::new(), scope })
}

/// A street's or a district's roll-up, for those who oversee it: administrators, and the
/// officer of the street or of its district (404 for anyone else, as outside their scope).
fn roll_up(conn: &mut DbConn, caller: &AuthUser, r: RollUp) -> ApiResult<Target> {
    let oversees = caller.is_admin() || caller.is_officer();
    let (streets, scope) = match r {
        RollUp::Street(id) => {
            let street = match scope::street(conn, caller, &id) {
                Ok(s) if oversees => s,
                Ok(_) | Err(ApiError::NotFound(_)) => return Err(ApiError::not_found("street")),
                Err(e) => return Err(e),
            };
            let scope = ScopeOut { street_id: Some(street.id.clone()), ..Default::default() };
            (vec![street], scope)
        }
        RollUp::District(id) => {
            let district = match scope::district(conn, caller, &id) {
                Ok(d) if caller.is_admin() || caller.role == Role::DistrictOfficer => d,
                Ok(_) | Err(ApiError::NotFound(_)) => return Err(ApiError::not_found("district")),
                Err(e) => return Err(e),
            };
            let filter = StreetFilter { district_id: Some(district.id.clone()), only: None };
            let streets = streets::list_streets(conn, &filter, None, i64::MAX)?;
            (streets, ScopeOut { district_id: Some(district.id), ..Default::default() })
        }
    };
    let ids: Vec<String> = streets.iter().map(|s| s.id.clone()).collect();
    let communities = store::communities_of_streets(conn, &ids)?;
    Ok(Target { communities, grids: None, streets, scope })
}

/// The local date at `now` in a timezone.
pub(super) fn today_in(tz: chrono_tz::Tz, now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&tz).date_naive()
}
