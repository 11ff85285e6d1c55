//! Refresh-token families, and the per-account count of password checks behind the throttle
//! (`auth::throttle`). The counts are kept under a keyed digest of the typed username
//! ([`keys::THROTTLED_USERNAME`] under the current data key), never its text: a count exists for
//! every name typed at the login form, including passwords typed into the wrong field. A data
//! key rotation starts the counts afresh (their windows are minutes long).

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::{new_id, now};
use crate::auth::throttle::Throttle;
use crate::auth::token::{hash_refresh_token, new_refresh_token};
use crate::db::schema::{login_failures, refresh_tokens};
use crate::db::{DbConn, keys};

/// Starts a new family (one per login); returns the refresh token to hand out.
pub fn start_family(conn: &mut DbConn, user_id: &str, lifetime_secs: u64) -> QueryResult<String> {
    let issued = now();
    let expires = issued + Duration::seconds(i64::try_from(lifetime_secs).unwrap_or(i64::MAX / 1_000_000));
    insert_token(conn, &new_id(), user_id, issued, expires)
}

fn insert_token(
    conn: &mut DbConn,
    family_id: &str,
    user_id: &str,
    issued: NaiveDateTime,
    expires: NaiveDateTime,
) -> QueryResult<String> {
    let token = new_refresh_token();
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::id.eq(new_id()),
            refresh_tokens::family_id.eq(family_id),
            refresh_tokens::user_id.eq(user_id),
            refresh_tokens::token_hash.eq(hash_refresh_token(&token)),
            refresh_tokens::issued_at.eq(issued),
            refresh_tokens::expires_at.eq(expires),
        ))
        .execute(conn)?;
    Ok(token)
}

#[derive(Queryable)]
struct TokenRow {
    id: String,
    family_id: String,
    user_id: String,
    expires_at: NaiveDateTime,
    used_at: Option<NaiveDateTime>,
    revoked_at: Option<NaiveDateTime>,
}

pub enum Rotation {
    /// The token was current: here is its successor.
    Rotated { user_id: String, refresh_token: String },
    /// The token had already been rotated: someone replayed it, the family is now revoked.
    Reused { user_id: String, family_id: String },
    /// Unknown, expired or revoked.
    Invalid,
}

/// Exchanges a refresh token for its successor in the same family (same absolute expiry).
/// The caller must commit even on `Reused`, so that the revocation sticks.
pub fn rotate(conn: &mut DbConn, token: &str) -> QueryResult<Rotation> {
    let row: Option<TokenRow> = refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(hash_refresh_token(token)))
        .select((
            refresh_tokens::id,
            refresh_tokens::family_id,
            refresh_tokens::user_id,
            refresh_tokens::expires_at,
            refresh_tokens::used_at,
            refresh_tokens::revoked_at,
        ))
        .first(conn)
        .optional()?;
    let Some(TokenRow { id, family_id, user_id, expires_at, used_at, revoked_at }) = row else {
        return Ok(Rotation::Invalid);
    };
    let now = now();
    if revoked_at.is_some() || expires_at <= now {
        return Ok(Rotation::Invalid);
    }
    // Claim the token atomically: of two concurrent uses, exactly one wins.
    let claimed = used_at.is_none()
        && diesel::update(
            refresh_tokens::table.filter(refresh_tokens::id.eq(&id)).filter(refresh_tokens::used_at.is_null()),
        )
        .set(refresh_tokens::used_at.eq(now))
        .execute(conn)?
            == 1;
    if !claimed {
        revoke_family(conn, &family_id)?;
        return Ok(Rotation::Reused { user_id, family_id });
    }
    let refresh_token = insert_token(conn, &family_id, &user_id, now, expires_at)?;
    Ok(Rotation::Rotated { user_id, refresh_token })
}

/// The account of a session token that is still good: known, not revoked, not past its
/// family's absolute expiry, and never exchanged (the console holds its family's first token
/// for the whole session; one that was rotated through the API is spent).
pub fn live(conn: &mut DbConn, token: &str) -> QueryResult<Option<String>> {
    refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(hash_refresh_token(token)))
        .filter(refresh_tokens::revoked_at.is_null())
        .filter(refresh_tokens::used_at.is_null())
        .filter(refresh_tokens::expires_at.gt(now()))
        .select(refresh_tokens::user_id)
        .first(conn)
        .optional()
}

pub fn revoke_family(conn: &mut DbConn, family_id: &str) -> QueryResult<usize> {
    diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::family_id.eq(family_id))
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(now()))
    .execute(conn)
}

/// Logout: revokes the family of a token; returns its user when the token was known.
pub fn revoke_family_of(conn: &mut DbConn, token: &str) -> QueryResult<Option<String>> {
    let row: Option<(String, String)> = refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(hash_refresh_token(token)))
        .select((refresh_tokens::family_id, refresh_tokens::user_id))
        .first(conn)
        .optional()?;
    match row {
        Some((family, user)) => {
            revoke_family(conn, &family)?;
            Ok(Some(user))
        }
        None => Ok(None),
    }
}

pub fn revoke_all_for_user(conn: &mut DbConn, user_id: &str) -> QueryResult<usize> {
    diesel::update(
        refresh_tokens::table.filter(refresh_tokens::user_id.eq(user_id)).filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(now()))
    .execute(conn)
}

/// What an account's attempt count allows a password check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The attempt holds one of the window's slots: check its password.
    Allowed,
    /// The account is locked, or every slot of the window is taken: do not check the password.
    Locked { retry_after_secs: u64 },
}

/// Takes one of the account's attempt slots in the current window, before its password is
/// checked: the slot counts as a failure until a success clears the count, so attempts still
/// being checked count too, and no more than `max_failures` passwords are ever checked in one
/// window. When none is left the account is locked for the window.
///
/// Must run in a write transaction: the account's row is locked first (PostgreSQL:
/// `FOR UPDATE` after an upsert; SQLite: the `BEGIN IMMEDIATE` transaction holds the database's
/// write lock), so that concurrent attempts, in this process or in another instance, are
/// counted one after another.
pub fn reserve_attempt(conn: &mut DbConn, account: &str, rule: Throttle) -> QueryResult<Attempt> {
    let account = &counted_as(account)?;
    let (failures, window_start, locked_until) = locked_count(conn, account, now())?;
    // The clock is read once the row is locked: a request that waited for the lock must not
    // count from before the lock's holder set it (a Retry-After beyond the window).
    let now = now();
    if let Some(until) = locked_until.filter(|until| *until > now) {
        let secs = (until - now).num_milliseconds().max(0) as u64;
        return Ok(Attempt::Locked { retry_after_secs: secs.div_ceil(1000).clamp(1, rule.window_secs.max(1)) });
    }
    let (failures, window_start) =
        if window_start + rule.window() <= now { (0, now) } else { (failures, window_start) };
    let spent = i64::from(failures) >= i64::from(rule.max_failures);
    let (failures, lock) = if spent { (failures, Some(now + rule.window())) } else { (failures + 1, None) };
    diesel::update(login_failures::table.find(account))
        .set((
            login_failures::failures.eq(failures),
            login_failures::window_started_at.eq(window_start),
            login_failures::locked_until.eq(lock),
        ))
        .execute(conn)?;
    Ok(if spent { Attempt::Locked { retry_after_secs: rule.window_secs.max(1) } } else { Attempt::Allowed })
}

/// What a typed username's count is kept under: its keyed digest (see the module's comment).
fn counted_as(account: &str) -> QueryResult<String> {
    Ok(keys::current().map_err(keys::to_diesel)?.blind(keys::THROTTLED_USERNAME, account))
}

/// The account's row (failures, window start, lock), created when missing and locked for the
/// rest of the transaction.
fn locked_count(
    conn: &mut DbConn,
    account: &str,
    now: NaiveDateTime,
) -> QueryResult<(i32, NaiveDateTime, Option<NaiveDateTime>)> {
    let fresh = (
        login_failures::username.eq(account),
        login_failures::failures.eq(0),
        login_failures::window_started_at.eq(now),
    );
    let columns = (login_failures::failures, login_failures::window_started_at, login_failures::locked_until);
    match conn {
        DbConn::Postgres(c) => {
            diesel::insert_into(login_failures::table).values(fresh).on_conflict_do_nothing().execute(c)?;
            login_failures::table.find(account).select(columns).for_update().first(c)
        }
        DbConn::Sqlite(c) => {
            diesel::insert_or_ignore_into(login_failures::table).values(fresh).execute(c)?;
            login_failures::table.find(account).select(columns).first(c)
        }
    }
}

/// After a password that did not match: locks the account for a window when its slots are
/// spent. Returns whether it did.
pub fn lock_if_spent(conn: &mut DbConn, account: &str, rule: Throttle) -> QueryResult<bool> {
    let account = &counted_as(account)?;
    let now = now();
    let max = i32::try_from(rule.max_failures).unwrap_or(i32::MAX);
    let locked = diesel::update(
        login_failures::table
            .find(account)
            .filter(login_failures::failures.ge(max))
            .filter(login_failures::window_started_at.gt(now - rule.window())),
    )
    .set(login_failures::locked_until.eq(now + rule.window()))
    .execute(conn)?;
    Ok(locked == 1)
}

/// Forgets the counts whose window has passed and that hold no lock: such a row counts for
/// nothing (the next attempt starts a window afresh), and without this every name ever typed
/// at the login form would stay in the table. Returns how many went.
pub fn forget_spent_failures(conn: &mut DbConn, rule: Throttle) -> QueryResult<usize> {
    let now = now();
    diesel::delete(
        login_failures::table
            .filter(login_failures::window_started_at.le(now - rule.window()))
            .filter(login_failures::locked_until.is_null().or(login_failures::locked_until.le(now))),
    )
    .execute(conn)
}

/// After a password that matched: the account starts afresh.
pub fn clear_failures(conn: &mut DbConn, account: &str) -> QueryResult<()> {
    diesel::delete(login_failures::table.find(counted_as(account)?)).execute(conn).map(|_| ())
}
