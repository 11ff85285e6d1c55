//! Roster imports: the uploaded file with what its dry run found, and its commit.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::keys::{self, IMPORT_FILE};
use crate::db::schema::imports;
use crate::store::data_keys;

/// An import as stored, without its file.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = imports)]
pub struct ImportRow {
    pub id: String,
    pub community_id: String,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub status: String,
    pub format: String,
    pub file_name: Option<String>,
    pub file_sha256: String,
    pub summary: String,
    pub errors: String,
    pub error_count: i32,
    pub basis: String,
    pub committed_at: Option<NaiveDateTime>,
    pub committed_by: Option<String>,
    pub outcome: Option<String>,
}

/// A new import, as its dry run leaves it.
#[derive(Debug, Insertable)]
#[diesel(table_name = imports)]
pub struct NewImport<'a> {
    pub id: &'a str,
    pub community_id: &'a str,
    pub created_by: &'a str,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub status: &'a str,
    pub format: &'a str,
    pub file_name: Option<&'a str>,
    pub file_sha256: &'a str,
    pub file: &'a [u8],
    pub summary: &'a str,
    pub errors: &'a str,
    pub error_count: i32,
    pub basis: &'a str,
}

/// Records a new import, its file sealed with the current data key (it holds every ID number
/// and phone of the roster).
pub fn insert(conn: &mut DbConn, row: &NewImport<'_>) -> QueryResult<()> {
    let sealed = data_keys()?.seal_bytes(IMPORT_FILE, row.id, row.file);
    let row = NewImport { file: &sealed, ..*row };
    diesel::insert_into(imports::table).values(row).execute(conn).map(|_| ())
}

pub fn find(conn: &mut DbConn, id: &str) -> QueryResult<Option<ImportRow>> {
    imports::table.find(id).select(ImportRow::as_select()).first(conn).optional()
}

/// The import for its commit: locked on PostgreSQL, so two commits of one import queue and the
/// second sees the first's status.
pub fn find_for_update(conn: &mut DbConn, id: &str) -> QueryResult<Option<ImportRow>> {
    crate::locked_first!(conn, imports::table.find(id).select(ImportRow::as_select()))
}

/// The file as uploaded.
pub fn file(conn: &mut DbConn, id: &str) -> QueryResult<Vec<u8>> {
    let stored: Vec<u8> = imports::table.find(id).select(imports::file).first(conn)?;
    data_keys()?.open_bytes(IMPORT_FILE, id, &stored).map_err(keys::to_diesel)
}

/// Records how an import ended (`committed` or `failed`).
pub fn finish(
    conn: &mut DbConn,
    id: &str,
    status: &str,
    by: &str,
    outcome: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(imports::table.find(id))
        .set((
            imports::status.eq(status),
            imports::committed_at.eq(Some(at)),
            imports::committed_by.eq(Some(by)),
            imports::outcome.eq(Some(outcome)),
            imports::updated_at.eq(at),
        ))
        .execute(conn)
        .map(|_| ())
}
