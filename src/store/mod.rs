//! Queries, one module per resource. Functions take a `&mut DbConn` and run inside whatever
//! transaction the caller holds (see `Db::write`).

pub mod audit;
pub mod bulk;
pub mod communities;
pub mod households;
pub mod imports;
pub mod plans;
pub mod replay;
pub mod sessions;
pub mod stats;
pub mod sync;
pub mod tags;
pub mod tasks;
pub mod users;
pub mod visits;

use chrono::{NaiveDateTime, SubsecRound, Utc};

use crate::db::DbConn;
use crate::error::ApiResult;

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
