//! The console's pages, one module per menu entry.

pub mod households;
pub mod imports;
pub mod overview;
pub mod reports;
pub mod review;
pub mod sign;
pub mod tasks;

use std::collections::HashMap;

use serde::Serialize;

use crate::auth::AuthUser;
use crate::auth::scope::{self, Reach};
use crate::console::{Console, Fail};
use crate::db::DbConn;
use crate::domain::Role;
use crate::error::ApiResult;
use crate::store::{communities, users};

/// Review pages are for secretaries and administrators: a grid worker gets 403 (their page is
/// the to-do list).
pub fn reviewer(console: &Console) -> Result<(), Fail> {
    Ok(console.caller.require(&[Role::Admin, Role::Secretary])?)
}

/// Display names of the accounts a page names (who proposed, decided, is assigned, visited):
/// those ids only, whatever the size of the community or of the whole installation.
pub fn names<'a>(c: &mut DbConn, ids: impl IntoIterator<Item = &'a String>) -> ApiResult<HashMap<String, String>> {
    let ids: Vec<String> = ids.into_iter().cloned().collect();
    Ok(users::display_names(c, &ids)?)
}

/// A grid as the console lists it, with its active workers (for reassigning).
#[derive(Serialize, Clone)]
pub struct GridItem {
    pub id: String,
    pub code: String,
    pub name: String,
    pub workers: Vec<(String, String)>,
}

/// The grids in the caller's reach, by code.
pub fn grids(c: &mut DbConn, caller: &AuthUser, with_workers: bool) -> ApiResult<Vec<GridItem>> {
    let (communities, only) = match scope::reach(c, caller)? {
        Reach::Everything => (communities::list(c, None, None, 1000)?.into_iter().map(|c| c.id).collect(), None),
        Reach::Community(id) => (vec![id], None),
        Reach::Communities(ids) => (ids, None),
        Reach::Grids { community_id, grid_ids } => (vec![community_id], Some(grid_ids)),
    };
    let mut out = Vec::new();
    for community in communities {
        for g in communities::list_grids(c, &community, only.as_deref(), None, 1000)? {
            let workers = if with_workers {
                communities::grid_workers(c, &g.id)?
                    .into_iter()
                    .filter(|w| w.active)
                    .map(|w| (w.user_id, w.display_name))
                    .collect()
            } else {
                Vec::new()
            };
            out.push(GridItem { id: g.id, code: g.code, name: g.name, workers });
        }
    }
    Ok(out)
}
