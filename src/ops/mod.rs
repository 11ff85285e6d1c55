//! Operations: every change to the data, written once.
//!
//! An operation is a plain function over a connection inside the caller's transaction, the
//! acting user and a typed input that the entry point has already checked field by field. It
//! owns everything a change implies: the scope check, idempotency, the writes, the audit event
//! and the task reconcile. Every entry point calls the same function — the HTTP handlers
//! (`crate::api`), and the sync push, the roster import, the console and the CLI as they come —
//! so the rules cannot drift apart. See `docs/ARCHITECTURE.md` for where a new write goes.
//!
//! Operations return stored rows; rendering them is the caller's business.

pub mod communities;
pub mod grids;
pub mod households;
pub mod imports;
pub mod members;
pub mod pii;
pub mod plans;
pub mod streets;
pub mod tags;
pub mod tasks;
pub mod users;
pub mod visits;
pub mod webhooks;

use crate::auth::AuthUser;
use crate::db::DbConn;
use crate::error::{ApiError, ApiResult};
use crate::store::audit::{self, Event};

/// Writes the audit event of an operation, as the caller, in the operation's transaction.
pub fn audit_event(conn: &mut DbConn, caller: &AuthUser, event: Event<'_>) -> ApiResult<()> {
    Ok(audit::record(conn, &caller.actor(), event)?)
}

/// A conditional update (`store::…::update(conn, id, version, …)`) that found its row at
/// another version: a concurrent change got there first, and the client should fetch the
/// `what` again (412).
pub fn applied(updated: bool, what: &str) -> ApiResult<()> {
    if updated {
        Ok(())
    } else {
        Err(ApiError::PreconditionFailed(format!("the {what} changed meanwhile; fetch it again")))
    }
}

/// 412 when a client's `If-Match` (its digits) names another version than the stored one.
/// Preconditions are checked after the request was found otherwise valid (RFC 9110 §13.2.1).
pub fn check_version(expected: Option<&str>, current: i32) -> ApiResult<()> {
    match expected {
        Some(v) if v != current.to_string() => {
            Err(ApiError::PreconditionFailed(format!("the resource is at version {current}, not {v}; fetch it again")))
        }
        _ => Ok(()),
    }
}
