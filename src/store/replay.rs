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

use crate::db::DbConn;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::store::data_keys;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// The keyed digests of a create request's content (its canonical JSON), under every data key,
/// the current one first: a keyed HMAC, so that a copy of the database does not let anyone
/// test guessed phones or ID numbers against the stored digests.
fn digests(content: &serde_json::Value) -> QueryResult<Vec<String>> {
    Ok(data_keys()?.replay_digests(content.to_string().as_bytes()))
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

/// Who created a row with a client id, and the digest of the request that did, as stored.
#[derive(Debug, Clone, Queryable)]
pub struct StoredOrigin {
    pub created_by: Option<String>,
    pub digest: Option<String>,
}

/// A create request with a client id: the account that sends it and the digests of its content.
#[derive(Debug, Clone)]
pub struct Origin {
    created_by: String,
    /// Under every data key, the current one's first (what is stored).
    digests: Vec<String>,
}

impl Origin {
    pub fn of(caller: &str, content: &serde_json::Value) -> QueryResult<Origin> {
        Ok(Origin { created_by: caller.to_owned(), digests: digests(content)? })
    }

    pub fn created_by(&self) -> &str {
        &self.created_by
    }

    /// The digest stored with the row this request creates.
    pub fn digest(&self) -> &str {
        &self.digests[0]
    }

    /// Whether this request, whose id is taken by a row of origin `stored`, is a retry of the
    /// one that created it (see [`check_retry`]); a digest made under a key since rotated
    /// still counts while that key is configured.
    pub fn retries(&self, stored: &StoredOrigin) -> ApiResult<()> {
        let matching = self.digests.iter().find(|d| stored.digest.as_deref() == Some(d.as_str()));
        check_retry(stored, &self.created_by, matching.map_or("", String::as_str))
    }
}

/// A create whose id is taken is a retry only when the same account sends the same request
/// again; anything else is the same 409, whatever the stored row holds.
pub fn check_retry(origin: &StoredOrigin, caller: &str, digest: &str) -> ApiResult<()> {
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
        let origin = StoredOrigin { created_by: Some("u1".into()), digest: Some("d1".into()) };
        assert!(check_retry(&origin, "u1", "d1").is_ok());
        assert!(check_retry(&origin, "u2", "d1").is_err());
        assert!(check_retry(&origin, "u1", "d2").is_err());
        assert!(check_retry(&origin, "u1", "").is_err());
        let unknown = StoredOrigin { created_by: None, digest: None };
        assert!(check_retry(&unknown, "u1", "d1").is_err());
        let request = Origin { created_by: "u1".into(), digests: vec!["d2".into(), "d1".into()] };
        assert!(request.retries(&origin).is_ok(), "a digest under an older key still counts");
        let other = Origin { created_by: "u2".into(), digests: vec!["d1".into()] };
        assert!(other.retries(&origin).is_err());
    }
}
