//! Which communities and grids a dashboard or report covers, and their calendars.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::api::stats::types::ScopeOut;
use crate::auth::AuthUser;
use crate::auth::scope::{self, Reach};
use crate::db::DbConn;
use crate::error::{ApiError, ApiResult};
use crate::store::communities::{self, CommunityRow};
use crate::store::stats::{self as store, Slice};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScopeQuery {
    /// Only this community (inside the caller's scope).
    pub community_id: Option<String>,
    /// Only this grid (inside the caller's scope).
    pub grid_id: Option<String>,
}

/// The communities and grids a request covers.
pub(super) struct Target {
    /// By name.
    pub(super) communities: Vec<CommunityRow>,
    /// `None`: every grid of the communities.
    pub(super) grids: Option<Vec<String>>,
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

/// The caller's scope, narrowed to `community_id` / `grid_id` (404 outside it): administrators
/// see everything, secretaries their community, grid workers their assigned grids.
pub(super) fn target(conn: &mut DbConn, caller: &AuthUser, q: &ScopeQuery) -> ApiResult<Target> {
    let reach = scope::reach(conn, caller)?;
    let find = |conn: &mut DbConn, id: &str, what: &str| -> ApiResult<CommunityRow> {
        communities::find(conn, id)?.ok_or_else(|| ApiError::not_found(what))
    };
    if let Some(grid_id) = &q.grid_id {
        let grid = scope::grid(conn, caller, grid_id)?;
        if q.community_id.as_ref().is_some_and(|c| *c != grid.community_id) {
            return Err(ApiError::not_found("grid"));
        }
        let community = find(conn, &grid.community_id, "grid")?;
        let scope = ScopeOut { community_id: Some(community.id.clone()), grid_id: Some(grid.id.clone()) };
        return Ok(Target { communities: vec![community], grids: Some(vec![grid.id]), scope });
    }
    let worker_grids = match &reach {
        Reach::Grids { grid_ids, .. } => Some(grid_ids.clone()),
        _ => None,
    };
    let mut communities = match (&q.community_id, reach) {
        (Some(id), _) => vec![scope::community(conn, caller, id)?],
        (None, Reach::Everything) => store::all_communities(conn)?,
        (None, Reach::Community(id) | Reach::Grids { community_id: id, .. }) => vec![find(conn, &id, "community")?],
    };
    communities.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    let single = match communities.as_slice() {
        [c] => Some(c.id.clone()),
        _ => None,
    };
    Ok(Target { communities, grids: worker_grids, scope: ScopeOut { community_id: single, grid_id: None } })
}

/// The local date at `now` in a timezone.
pub(super) fn today_in(tz: chrono_tz::Tz, now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&tz).date_naive()
}
