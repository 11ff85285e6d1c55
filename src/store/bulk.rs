//! Multi-row inserts for loading large data sets (`gridlight seed synthetic`) and for a roster
//! import's batches: a slice of rows at a time, staying under both backends' bind-parameter
//! limits.

use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::{households, members, tasks, visits};
use crate::store::households::{HouseholdRow, MemberRow};
use crate::store::replay::Origin;
use crate::store::tasks::TaskRow;
use crate::store::visits::VisitRow;

/// Rows a statement carries at most (the widest row has 24 columns, 27 with its blind index and
/// origin: 27 × 1000 binds is under PostgreSQL's 65,535 and SQLite's 32,766 per statement).
const SLICE: usize = 1000;

macro_rules! bulk_insert {
    ($name:ident, $table:ident, $row:ty) => {
        /// Inserts the rows in slices; returns how many.
        pub fn $name(conn: &mut DbConn, rows: &[$row]) -> QueryResult<usize> {
            let mut n = 0;
            for slice in rows.chunks(SLICE) {
                n += crate::db_run!(&mut *conn, |c| diesel::insert_into($table::table).values(slice).execute(c))?;
            }
            Ok(n)
        }
    };
}

/// [`bulk_insert!`] for rows with sealed fields: sealed first, with their blind indexes.
macro_rules! bulk_insert_sealed {
    ($name:ident, $table:ident, $row:ty) => {
        /// Inserts the rows, sealed, in slices; returns how many.
        pub fn $name(conn: &mut DbConn, rows: &[$row]) -> QueryResult<usize> {
            let keys = crate::store::data_keys()?;
            let mut n = 0;
            for slice in rows.chunks(SLICE) {
                let sealed: Vec<_> = slice.iter().map(|r| r.sealed(&keys)).collect();
                n += crate::db_run!(&mut *conn, |c| diesel::insert_into($table::table).values(sealed).execute(c))?;
            }
            Ok(n)
        }
    };
}

/// [`bulk_insert_sealed!`] for rows created by a request, stored with its origin (who sent it
/// and the digest of its content: see `store::replay`).
macro_rules! bulk_insert_created {
    ($name:ident, $table:ident, $row:ty) => {
        /// Inserts the rows, sealed, with their origins, in slices; returns how many.
        pub fn $name(conn: &mut DbConn, rows: &[(Origin, $row)]) -> QueryResult<usize> {
            let keys = crate::store::data_keys()?;
            let mut n = 0;
            for slice in rows.chunks(SLICE) {
                let sealed: Vec<_> = slice
                    .iter()
                    .map(|(origin, r)| {
                        let (row, indexes) = r.sealed(&keys);
                        (
                            row,
                            indexes,
                            $table::created_by.eq(origin.created_by()),
                            $table::create_digest.eq(origin.digest()),
                        )
                    })
                    .collect();
                n += crate::db_run!(&mut *conn, |c| diesel::insert_into($table::table).values(&sealed).execute(c))?;
            }
            Ok(n)
        }
    };
}

bulk_insert_created!(households_created, households, HouseholdRow);
bulk_insert_created!(members_created, members, MemberRow);
bulk_insert_sealed!(households, households, HouseholdRow);
bulk_insert_sealed!(members, members, MemberRow);
bulk_insert!(visits, visits, VisitRow);
bulk_insert!(tasks, tasks, TaskRow);
