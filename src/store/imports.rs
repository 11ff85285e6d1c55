//! Roster imports: the uploaded file with what its dry run found, and its commit.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::keys::{self, IMPORT_ERRORS_FILE, IMPORT_FILE};
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
    pub progress_done: i32,
    pub progress_total: i32,
    pub failure: Option<String>,
    pub missing_basis: String,
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
    pub missing_basis: &'a str,
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

/// The file as uploaded (empty once cleared).
pub fn file(conn: &mut DbConn, id: &str) -> QueryResult<Vec<u8>> {
    let stored: Vec<u8> = imports::table.find(id).select(imports::file).first(conn)?;
    if stored.is_empty() {
        return Ok(stored);
    }
    data_keys()?.open_bytes(IMPORT_FILE, id, &stored).map_err(keys::to_diesel)
}

/// The error workbook kept when the import ended (see [`finish`]).
pub fn errors_file(conn: &mut DbConn, id: &str) -> QueryResult<Option<Vec<u8>>> {
    let stored: Option<Vec<u8>> = imports::table.find(id).select(imports::errors_file).first(conn)?;
    let keys = data_keys()?;
    stored.map(|s| keys.open_bytes(IMPORT_ERRORS_FILE, id, &s).map_err(keys::to_diesel)).transpose()
}

/// A commit starts: the import leaves `validated` (so a second commit is refused) with the
/// number of households it goes through.
pub fn start(conn: &mut DbConn, id: &str, total: i32, at: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(imports::table.find(id).filter(imports::status.eq("validated")))
        .set((
            imports::status.eq("committing"),
            imports::progress_done.eq(0),
            imports::progress_total.eq(total),
            imports::updated_at.eq(at),
        ))
        .execute(conn)
}

/// A batch of a commit is applied.
pub fn advance(conn: &mut DbConn, id: &str, done: i32, at: NaiveDateTime) -> QueryResult<()> {
    diesel::update(imports::table.find(id))
        .set((imports::progress_done.eq(done), imports::updated_at.eq(at)))
        .execute(conn)
        .map(|_| ())
}

/// How an import ended: `committed`, or `failed` with why.
pub struct Ending<'a> {
    pub status: &'a str,
    pub by: Option<&'a str>,
    /// What was applied (JSON).
    pub outcome: &'a str,
    pub failure: Option<&'a str>,
    /// The rows with errors as a workbook, kept once the file is cleared.
    pub errors_file: Option<&'a [u8]>,
}

/// Records how an import ended, and clears the uploaded file: a roster in clear (ID numbers,
/// phones) is kept no longer than its commit needs it.
pub fn finish(conn: &mut DbConn, id: &str, end: Ending<'_>, at: NaiveDateTime) -> QueryResult<()> {
    let keys = data_keys()?;
    let errors_file = end.errors_file.map(|f| keys.seal_bytes(IMPORT_ERRORS_FILE, id, f));
    diesel::update(imports::table.find(id))
        .set((
            imports::status.eq(end.status),
            imports::committed_at.eq(Some(at)),
            imports::committed_by.eq(end.by),
            imports::outcome.eq(Some(end.outcome)),
            imports::failure.eq(end.failure),
            imports::errors_file.eq(errors_file),
            imports::file.eq(&[] as &[u8]),
            imports::updated_at.eq(at),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Imports left `committing` whose last batch is older than `before`: their commit stopped
/// with the process that ran it.
pub fn abandoned(conn: &mut DbConn, before: NaiveDateTime) -> QueryResult<Vec<ImportRow>> {
    imports::table
        .filter(imports::status.eq("committing"))
        .filter(imports::updated_at.lt(before))
        .select(ImportRow::as_select())
        .load(conn)
}

/// Clears the files of dry runs never committed, older than `before` (the retention), and the
/// error workbooks of imports that ended before it; the import stays, with its summary and
/// errors, and can no longer be committed.
pub fn expire_files(conn: &mut DbConn, before: NaiveDateTime, at: NaiveDateTime) -> QueryResult<usize> {
    let dry_runs =
        diesel::update(imports::table.filter(imports::status.eq("validated")).filter(imports::created_at.lt(before)))
            .set((imports::status.eq("expired"), imports::file.eq(&[] as &[u8]), imports::updated_at.eq(at)))
            .execute(conn)?;
    let workbooks = diesel::update(
        imports::table.filter(imports::errors_file.is_not_null()).filter(imports::committed_at.lt(before)),
    )
    .set(imports::errors_file.eq(None::<Vec<u8>>))
    .execute(conn)?;
    Ok(dry_runs + workbooks)
}
