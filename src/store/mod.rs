//! Queries, one module per resource. Functions take a `&mut DbConn` and run inside whatever
//! transaction the caller holds (see `Db::write`).

pub mod audit;
pub mod bulk;
pub mod communities;
pub mod events;
pub mod households;
pub mod imports;
pub mod plans;
pub mod record;
pub mod replay;
pub mod sessions;
pub mod stats;
pub mod streets;
pub mod suggestions;
pub mod sync;
pub mod tags;
pub mod tasks;
pub mod users;
pub mod visits;
pub mod webhooks;

use std::sync::Arc;

use chrono::{NaiveDateTime, SubsecRound, Utc};
use diesel::QueryResult;

use crate::db::DbConn;
use crate::db::keys::{self, Field, KeyRing};
use crate::error::ApiResult;

/// The data keys of the database this thread works on (see `db::keys`).
pub fn data_keys() -> QueryResult<Arc<KeyRing>> {
    keys::current().map_err(keys::to_diesel)
}

/// A row with sealed fields, opened after it is read: every read of such a row goes through
/// [`Opened::opened`], so nothing else of the crate sees a sealed value.
pub trait Sealed: Sized {
    fn open(self, keys: &KeyRing) -> QueryResult<Self>;
}

/// Opens the sealed rows a query answered: `query.first(conn).optional().opened()`.
pub trait Opened<T> {
    fn opened(self) -> QueryResult<T>;
}

impl<T: Sealed> Opened<Option<T>> for QueryResult<Option<T>> {
    fn opened(self) -> QueryResult<Option<T>> {
        match self? {
            Some(row) => Ok(Some(row.open(&*data_keys()?)?)),
            None => Ok(None),
        }
    }
}

impl<T: Sealed> Opened<Vec<T>> for QueryResult<Vec<T>> {
    fn opened(self) -> QueryResult<Vec<T>> {
        let rows = self?;
        if rows.is_empty() {
            return Ok(rows);
        }
        let keys = data_keys()?;
        rows.into_iter().map(|r| r.open(&keys)).collect()
    }
}

/// Opens one stored value of a row.
pub fn open_value(keys: &KeyRing, field: Field, id: &str, stored: Option<String>) -> QueryResult<Option<String>> {
    keys.open_opt(field, id, stored.as_deref()).map_err(keys::to_diesel)
}

/// A value as it is stored: sealed, with its blind index.
pub fn seal_value(keys: &KeyRing, field: Field, id: &str, clear: Option<&str>) -> (Option<String>, Option<String>) {
    match clear {
        Some(v) => (Some(keys.seal(field, id, v)), Some(keys.blind(field, v))),
        None => (None, None),
    }
}

/// An edit of a sealed value (`Some(None)` clears it), as stored: the sealed edit and the edit
/// of its blind index.
pub fn seal_edit(
    keys: &KeyRing,
    field: Field,
    id: &str,
    edit: Option<Option<&str>>,
) -> (Option<Option<String>>, Option<Option<String>>) {
    match edit {
        Some(v) => {
            let (sealed, index) = seal_value(keys, field, id, v);
            (Some(sealed), Some(index))
        }
        None => (None, None),
    }
}

/// Reads one row to change it: on PostgreSQL the row stays locked (`FOR NO KEY UPDATE`) until
/// the transaction ends, so concurrent changes queue and each sees the one before it; on SQLite
/// the write transaction is exclusive already. `locked_first!(conn, query)` answers
/// `QueryResult<Option<Row>>`.
#[macro_export]
macro_rules! locked_first {
    ($conn:expr, $query:expr) => {
        match $conn {
            $crate::db::DbConn::Postgres(c) => $query.for_no_key_update().first(c).optional(),
            // One writer at a time: the write transaction holds the database.
            $crate::db::DbConn::Sqlite(c) => $query.first(c).optional(),
        }
    };
}

/// How the lists build their queries: a boxed query narrowed by each criterion a filter gives,
/// `query.narrow(f.status, |q, s| q.filter(tasks::status.eq(s)))`, left alone by one it leaves
/// out.
pub trait Narrow: Sized {
    fn narrow<T>(self, criterion: Option<T>, by: impl FnOnce(Self, T) -> Self) -> Self {
        match criterion {
            Some(c) => by(self, c),
            None => self,
        }
    }
}

impl<Q> Narrow for Q {}

/// A JSON column (reasons, findings), read and written as text (see `crate::db::types`): a
/// stored value that does not parse is an error, never an empty default.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JsonText<T>(pub T);

impl<T: serde::Serialize> From<JsonText<T>> for String {
    fn from(value: JsonText<T>) -> String {
        serde_json::to_string(&value.0).expect("lists of strings and findings serialise")
    }
}

impl<T> std::ops::Deref for JsonText<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Runs `f` in a savepoint of the caller's transaction: when it fails, its writes alone are
/// rolled back and the transaction goes on (on PostgreSQL a failed statement would otherwise
/// end it).
pub fn savepoint<T>(conn: &mut DbConn, f: impl FnOnce(&mut DbConn) -> ApiResult<T>) -> ApiResult<T> {
    use diesel::Connection;
    conn.transaction(f)
}

/// The current time as stored: UTC, truncated to microseconds so that both backends keep
/// exactly the value written.
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

/// A new identifier: UUIDv7, so ids sort by creation time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
