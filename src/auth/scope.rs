//! Scope: what a caller may see and change, decided per request from the database.
//!
//! Out of scope answers 404 (existence is not revealed); a role that may never act answers 403
//! (`AuthUser::require`). Every handler that takes an id calls the function for its resource
//! kind here.

use crate::auth::AuthUser;
use crate::db::DbConn;
use crate::domain::Role;
use crate::error::{ApiError, ApiResult};
use crate::store::users::{self, UserRow};

/// May the caller see things of this community at all?
pub fn sees_community(caller: &AuthUser, community_id: &str) -> bool {
    caller.is_admin() || caller.community_id.as_deref() == Some(community_id)
}

/// A user account the caller may see: admins see all, secretaries their community's accounts,
/// everyone their own.
pub fn user(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<UserRow> {
    let row = users::find(conn, id)?.ok_or_else(|| ApiError::not_found("user"))?;
    let visible = caller.id == row.id
        || caller.is_admin()
        || (caller.role == Role::Secretary && row.community_id.is_some() && row.community_id == caller.community_id);
    if visible { Ok(row) } else { Err(ApiError::not_found("user")) }
}

/// May the caller manage (activate, reset the password of) this visible account? Admins
/// manage everyone; a secretary manages the grid workers of their own community.
pub fn manage_user(caller: &AuthUser, target: &UserRow) -> ApiResult<()> {
    let allowed = caller.is_admin()
        || (caller.role == Role::Secretary
            && target.role == Role::GridWorker.as_str()
            && target.community_id == caller.community_id);
    if allowed { Ok(()) } else { Err(ApiError::Forbidden("you may not manage this account".into())) }
}
