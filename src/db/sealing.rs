//! Whole-database work on the sealed columns: the registry of keys in use, sealing values an
//! earlier version stored in clear, re-sealing under a new key (`gridlight keys rotate`) and
//! checking every value (`gridlight keys verify`).
//!
//! All of it runs beside a serving instance: it reads a batch of values on a read connection,
//! then re-seals each in a short write transaction with a compare-and-set (`… WHERE id = ? AND
//! value = <what was read>`), so a value a request changed in between is left as the request
//! wrote it (and picked up by the next pass if it still needs it). A run stopped half-way is
//! resumed by running it again: what is done is not done twice.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::Utc;
use diesel::prelude::*;

use super::keys::{
    self, FIELDS, Field, HOUSEHOLD_PHONE, IMPORT_ERRORS_FILE, IMPORT_FILE, KeyError, KeyRing, MEMBER_ID_NUMBER,
    MEMBER_PHONE, SEALED_PREFIX,
};
use super::schema::data_keys;
use super::{Db, DbConn};
use crate::error::{ApiError, ApiResult};

/// Values per batch (one read, one short write transaction).
const BATCH: i64 = 200;
/// Passes a rotation makes before it gives up on values that keep arriving under an old key.
const MAX_PASSES: u32 = 30;

/// Runs `$body` with `$t` the sealed column's table module, `$col` the column and `$bidx` its
/// blind index column.
macro_rules! on_field {
    ($field:expr, |$t:ident, $col:ident, $bidx:ident| $body:expr) => {
        match $field {
            MEMBER_ID_NUMBER => {
                use crate::db::schema::members as $t;
                let ($col, $bidx) = ($t::id_number, $t::id_number_bidx);
                $body
            }
            MEMBER_PHONE => {
                use crate::db::schema::members as $t;
                let ($col, $bidx) = ($t::phone, $t::phone_bidx);
                $body
            }
            HOUSEHOLD_PHONE => {
                use crate::db::schema::households as $t;
                let ($col, $bidx) = ($t::phone, $t::phone_bidx);
                $body
            }
            _ => {
                debug_assert_eq!($field, keys::USER_PHONE);
                use crate::db::schema::users as $t;
                let ($col, $bidx) = ($t::phone, $t::phone_bidx);
                $body
            }
        }
    };
}

/// One stored value: the record's id, the value, its blind index.
type Stored = (String, String, Option<String>);

/// A batch of the values of `field` after the id `after`, in id order; with `not_like`, only
/// those that do not match the pattern.
fn scan(conn: &mut DbConn, field: Field, after: &str, not_like: Option<&str>) -> QueryResult<Vec<Stored>> {
    on_field!(field, |t, col, bidx| {
        let mut q = t::table
            .select((t::id, col.assume_not_null(), bidx))
            .filter(col.is_not_null())
            .filter(t::id.gt(after.to_owned()))
            .order(t::id.asc())
            .limit(BATCH)
            .into_boxed();
        if let Some(pattern) = not_like {
            q = q.filter(col.not_like(pattern.to_owned()));
        }
        q.load(conn)
    })
}

/// Replaces a value if it is still what was read; returns whether it was.
fn swap(conn: &mut DbConn, field: Field, id: &str, old: &str, (new, index): (&str, &str)) -> QueryResult<bool> {
    on_field!(field, |t, col, bidx| {
        diesel::update(t::table.filter(t::id.eq(id)).filter(col.eq(old)))
            .set((col.eq(new), bidx.eq(index)))
            .execute(conn)
            .map(|n| n == 1)
    })
}

fn count_like(conn: &mut DbConn, field: Field, pattern: &str) -> QueryResult<i64> {
    on_field!(field, |t, col, _bidx| t::table.filter(col.like(pattern.to_owned())).count().get_result(conn))
}

fn count_not_like(conn: &mut DbConn, field: Field, pattern: &str) -> QueryResult<i64> {
    on_field!(field, |t, col, _bidx| t::table.filter(col.not_like(pattern.to_owned())).count().get_result(conn))
}

fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

/// The clear value of a stored one: opened when sealed, as it is when an earlier version
/// stored it in clear.
fn clear_of(ring: &KeyRing, field: Field, id: &str, stored: &str) -> Result<String, KeyError> {
    if is_sealed(stored) { ring.open(field, id, stored) } else { Ok(stored.to_owned()) }
}

/// The keys that still seal values (not retired).
pub fn keys_in_use(conn: &mut DbConn) -> ApiResult<Vec<String>> {
    Ok(data_keys::table
        .filter(data_keys::retired_at.is_null())
        .select(data_keys::id)
        .order(data_keys::id)
        .load(conn)?)
}

/// Registers the ring's current key as in use; returns the keys in use the ring does not hold.
pub fn register(conn: &mut DbConn, ring: &KeyRing) -> ApiResult<Vec<String>> {
    let current = ring.current().id();
    let known: Option<Option<chrono::NaiveDateTime>> =
        data_keys::table.find(current).select(data_keys::retired_at).first(conn).optional()?;
    match known {
        None => {
            diesel::insert_into(data_keys::table)
                .values((data_keys::id.eq(current), data_keys::created_at.eq(Utc::now().naive_utc())))
                .execute(conn)?;
        }
        Some(Some(_)) => {
            diesel::update(data_keys::table.find(current))
                .set(data_keys::retired_at.eq(None::<chrono::NaiveDateTime>))
                .execute(conn)?;
        }
        Some(None) => {}
    }
    let held: Vec<&str> = ring.ids().collect();
    Ok(keys_in_use(conn)?.into_iter().filter(|id| !held.contains(&id.as_str())).collect())
}

fn anyhow_of(e: ApiError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Re-seals, with the current key, every value whose stored form matches none of `keep`
/// (built from the current ring), batch by batch, pass after pass until a pass finds none.
/// `progress` hears how many values each batch re-sealed. Returns how many it re-sealed.
fn reseal_all(db: &Db, keep: impl Fn(&KeyRing) -> String, progress: &mut dyn FnMut(u64)) -> anyhow::Result<u64> {
    let mut total = 0;
    for pass in 0.. {
        let mut resealed = 0;
        for field in FIELDS {
            let mut after = String::new();
            loop {
                let ring = db.keys().ring().context("the data keys are not loaded")?;
                let pattern = keep(&ring);
                let batch = db.read_blocking(|c| Ok(scan(c, field, &after, Some(&pattern))?)).map_err(anyhow_of)?;
                let Some(last) = batch.last() else { break };
                after = last.0.clone();
                let n = db
                    .write_blocking(|c| {
                        let ring = keys::current().map_err(|e| ApiError::Internal(e.into()))?;
                        let mut n = 0;
                        for (id, stored, _) in &batch {
                            let clear = clear_of(&ring, field, id, stored)
                                .map_err(|e| ApiError::Internal(anyhow::anyhow!("{field} of {id}: {e}")))?;
                            let sealed = ring.seal(field, id, &clear);
                            let index = ring.blind(field, &clear);
                            n += u64::from(swap(c, field, id, stored, (&sealed, &index))?);
                        }
                        Ok(n)
                    })
                    .map_err(anyhow_of)?;
                resealed += n;
                progress(n);
            }
        }
        total += resealed;
        if resealed == 0 {
            break;
        }
        if pass + 1 >= MAX_PASSES {
            anyhow::bail!(
                "values keep arriving under an older key after {MAX_PASSES} passes: is every instance running with \
                 the new key first?"
            );
        }
        // Writers that had not yet seen a new key file do within a second.
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    Ok(total)
}

/// Re-seals every uploaded roster file not sealed with the current key (in clear, from an
/// earlier version, or under an older key). They are few (a file is kept until its import ends),
/// so one transaction does them all.
fn seal_import_files(conn: &mut DbConn, ring: &KeyRing) -> QueryResult<u64> {
    use super::schema::imports;
    let current = ring.current().id();
    let reseal = |id: &str, field: Field, stored: &[u8]| -> QueryResult<Option<Vec<u8>>> {
        if stored.is_empty() || KeyRing::key_of_bytes(stored) == Some(current) {
            return Ok(None);
        }
        let clear = match ring.open_bytes(field, id, stored) {
            Err(KeyError::Clear(_)) => stored.to_vec(),
            other => other.map_err(keys::to_diesel)?,
        };
        Ok(Some(ring.seal_bytes(field, id, &clear)))
    };
    let ids: Vec<String> = imports::table.select(imports::id).order(imports::id.asc()).load(conn)?;
    let mut n = 0;
    for id in ids {
        let (file, errors): (Vec<u8>, Option<Vec<u8>>) =
            imports::table.find(&id).select((imports::file, imports::errors_file)).first(conn)?;
        if let Some(sealed) = reseal(&id, IMPORT_FILE, &file)? {
            diesel::update(imports::table.find(&id)).set(imports::file.eq(sealed)).execute(conn)?;
            n += 1;
        }
        if let Some(sealed) = errors.map(|e| reseal(&id, IMPORT_ERRORS_FILE, &e)).transpose()?.flatten() {
            diesel::update(imports::table.find(&id)).set(imports::errors_file.eq(sealed)).execute(conn)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Seals every value still stored in clear (a database of an earlier version); resumable.
pub fn seal_clear_values(db: &Db, progress: &mut dyn FnMut(u64)) -> anyhow::Result<u64> {
    let files = db
        .write_blocking(|c| {
            let ring = keys::current().map_err(|e| ApiError::Internal(e.into()))?;
            Ok(seal_import_files(c, &ring)?)
        })
        .map_err(anyhow_of)?;
    progress(files);
    let clear = values_outside(db, &format!("{SEALED_PREFIX}%"))?;
    if clear == 0 {
        return Ok(0);
    }
    reseal_all(db, |_| format!("{SEALED_PREFIX}%"), progress)
}

/// How many stored values do not match `pattern`.
pub fn values_outside(db: &Db, pattern: &str) -> anyhow::Result<u64> {
    db.read_blocking(|c| {
        let mut n = 0;
        for field in FIELDS {
            n += count_not_like(c, field, pattern)?;
        }
        Ok(u64::try_from(n).unwrap_or(0))
    })
    .map_err(anyhow_of)
}

/// The pattern of the values sealed with the current key.
fn under_current(ring: &KeyRing) -> String {
    format!("{SEALED_PREFIX}{}.%", ring.current().id())
}

/// What a rotation did.
#[derive(Debug, Default)]
pub struct Rotation {
    pub current: String,
    pub resealed: u64,
    /// Keys no value uses any more, now retired.
    pub retired: Vec<String>,
}

/// How many values are not sealed with the current key (what a rotation has left to do).
pub fn rotation_left(db: &Db) -> anyhow::Result<u64> {
    let ring = db.keys().ring().context("the data keys are not loaded")?;
    values_outside(db, &under_current(&ring))
}

/// Re-seals every value not sealed with the current key, then retires the keys nothing uses.
pub fn rotate(db: &Db, progress: &mut dyn FnMut(u64)) -> anyhow::Result<Rotation> {
    let resealed = reseal_all(db, under_current, progress)?;
    let ring = db.keys().ring().context("the data keys are not loaded")?;
    let current = ring.current().id().to_owned();
    let retired = db
        .write_blocking(|c| {
            // Files first, in this transaction: then no file holds a key retired below.
            let ring = keys::current().map_err(|e| ApiError::Internal(e.into()))?;
            seal_import_files(c, &ring)?;
            crate::store::webhooks::reseal_secrets(c, &ring)?;
            let mut retired = Vec::new();
            for id in keys_in_use(c)?.into_iter().filter(|id| *id != current) {
                let pattern = format!("{SEALED_PREFIX}{id}.%");
                let mut used = 0;
                for field in FIELDS {
                    used += count_like(c, field, &pattern)?;
                }
                if used == 0 {
                    diesel::update(data_keys::table.find(&id))
                        .set(data_keys::retired_at.eq(Utc::now().naive_utc()))
                        .execute(c)?;
                    retired.push(id);
                }
            }
            Ok(retired)
        })
        .map_err(anyhow_of)?;
    let in_use = db.write_blocking(keys_in_use).map_err(anyhow_of)?;
    db.keys().keep_only(&in_use)?;
    Ok(Rotation { current, resealed, retired })
}

/// What `gridlight keys verify` found.
#[derive(Debug, Default)]
pub struct Verification {
    pub checked: u64,
    /// Values per key id.
    pub by_key: BTreeMap<String, u64>,
    /// What is wrong, one line per value: field and record id, never the value.
    pub failures: Vec<String>,
}

/// Opens every sealed value and checks its blind index.
pub fn verify(db: &Db, progress: &mut dyn FnMut(u64)) -> anyhow::Result<Verification> {
    let ring = db.keys().ring().context("the data keys are not loaded")?;
    let mut report = Verification::default();
    for field in FIELDS {
        let mut after = String::new();
        loop {
            let batch = db.read_blocking(|c| Ok(scan(c, field, &after, None)?)).map_err(anyhow_of)?;
            let Some(last) = batch.last() else { break };
            after = last.0.clone();
            for (id, stored, index) in &batch {
                report.checked += 1;
                if !is_sealed(stored) {
                    report.failures.push(format!("{field} of {id}: stored in clear"));
                    continue;
                }
                match ring.open(field, id, stored) {
                    Ok(clear) => {
                        let key = KeyRing::key_of(stored).unwrap_or_default().to_owned();
                        *report.by_key.entry(key).or_default() += 1;
                        if !index.as_ref().is_some_and(|i| ring.blinds(field, &clear).contains(i)) {
                            report.failures.push(format!("{field} of {id}: the blind index does not match"));
                        }
                    }
                    Err(e) => report.failures.push(format!("{field} of {id}: {e}")),
                }
            }
            progress(batch.len() as u64);
        }
    }
    Ok(report)
}

/// How many values are stored (for a progress bar's total).
pub fn value_count(db: &Db) -> anyhow::Result<u64> {
    db.read_blocking(|c| {
        let mut n = 0;
        for field in FIELDS {
            n += on_field!(field, |t, col, _bidx| t::table.filter(col.is_not_null()).count().get_result::<i64>(c))?;
        }
        Ok(u64::try_from(n).unwrap_or(0))
    })
    .map_err(anyhow_of)
}
