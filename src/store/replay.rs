//! Creates with a client-chosen id, retried safely: the one mechanism for households, members
//! and visits.
//!
//! An offline client resends a create until it hears back. The insert runs in a savepoint and
//! yields to an existing row ([`insert_new`]): on PostgreSQL a concurrent insert of the same id
//! waits for the first to commit, then finds it, so twenty identical requests make one 201 and
//! nineteen 200s on both backends. Whether a create that finds its id taken is a retry is
//! decided by [`check_retry`] from who created the row and a digest of the request that created
//! it — never by comparing the stored fields, which would let anyone who can send a create
//! guess a hidden phone digit by digit.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use sha2::{Digest, Sha256};

use crate::db::DbConn;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// The digest of a create request's content (its canonical JSON).
pub fn digest(content: &serde_json::Value) -> String {
    Sha256::digest(content.to_string().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs an insert in a savepoint; `Ok(false)` when `table`'s primary key is taken, leaving the
/// surrounding transaction usable.
pub fn insert_new(
    conn: &mut DbConn,
    table: &str,
    insert: impl FnOnce(&mut DbConn) -> QueryResult<usize>,
) -> QueryResult<bool> {
    match conn.transaction(insert) {
        Ok(_) => Ok(true),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info))
            if info.constraint_name() == Some(&format!("{table}_pkey"))
                || info.message().contains(&format!("{table}.id")) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Who created a row with a client id, and the digest of the request that did.
#[derive(Debug, Clone, Queryable)]
pub struct Origin {
    pub created_by: Option<String>,
    pub digest: Option<String>,
}

impl Origin {
    /// The origin of a create request: the account that sends it and the digest of its content.
    pub fn of(caller: &str, content: &serde_json::Value) -> Origin {
        Origin { created_by: Some(caller.to_owned()), digest: Some(digest(content)) }
    }

    /// Whether this request, whose id is taken by a row of origin `stored`, is a retry of the
    /// one that created it (see [`check_retry`]).
    pub fn retries(&self, stored: &Origin) -> ApiResult<()> {
        check_retry(stored, self.created_by.as_deref().unwrap_or_default(), self.digest.as_deref().unwrap_or_default())
    }
}

/// A create whose id is taken is a retry only when the same account sends the same request
/// again; anything else is the same 409, whatever the stored row holds.
pub fn check_retry(origin: &Origin, caller: &str, digest: &str) -> ApiResult<()> {
    if origin.created_by.as_deref() == Some(caller) && origin.digest.as_deref() == Some(digest) {
        Ok(())
    } else {
        Err(ApiError::conflict(
            ErrorCode::IdConflict,
            "this id belongs to another record; a retry must come from the account that created it, with the \
             same content",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_creator_with_the_same_request_retries() {
        let origin = Origin { created_by: Some("u1".into()), digest: Some(digest(&serde_json::json!({"a": 1}))) };
        let same = digest(&serde_json::json!({"a": 1}));
        assert!(check_retry(&origin, "u1", &same).is_ok());
        assert!(check_retry(&origin, "u2", &same).is_err());
        assert!(check_retry(&origin, "u1", &digest(&serde_json::json!({"a": 2}))).is_err());
        let unknown = Origin { created_by: None, digest: None };
        assert!(check_retry(&unknown, "u1", &same).is_err());
        assert!(Origin::of("u1", &serde_json::json!({"a": 1})).retries(&origin).is_ok());
        assert!(Origin::of("u2", &serde_json::json!({"a": 1})).retries(&origin).is_err());
    }
}
