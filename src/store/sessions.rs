//! Refresh-token families and per-account login throttling.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::{new_id, now};
use crate::auth::token::{hash_refresh_token, new_refresh_token};
use crate::db::DbConn;
use crate::db::schema::{login_failures, refresh_tokens};

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

/// Throttling rule: `max_failures` failed logins on one account within `window_secs` lock it
/// for `window_secs`, whatever address they come from.
#[derive(Clone, Copy, Debug)]
pub struct Throttle {
    pub max_failures: u32,
    pub window_secs: u64,
}

impl Throttle {
    fn window(self) -> Duration {
        Duration::seconds(i64::try_from(self.window_secs).unwrap_or(86_400))
    }
}

/// Seconds until the account may try again, if it is locked now.
pub fn locked_for(conn: &mut DbConn, username: &str) -> QueryResult<Option<u64>> {
    let locked: Option<Option<NaiveDateTime>> =
        login_failures::table.find(username).select(login_failures::locked_until).first(conn).optional()?;
    let now = now();
    Ok(locked.flatten().filter(|until| *until > now).map(|until| {
        let secs = (until - now).num_milliseconds().max(0) as u64;
        secs.div_ceil(1000).max(1)
    }))
}

/// Counts a failure; returns the lock-out in seconds when this failure triggered one.
pub fn record_failure(conn: &mut DbConn, username: &str, rule: Throttle) -> QueryResult<Option<u64>> {
    let now = now();
    // Make sure the row exists, then lock it (PostgreSQL) so concurrent failures all count.
    let row: (i32, NaiveDateTime) = match conn {
        DbConn::Postgres(c) => {
            diesel::insert_into(login_failures::table)
                .values((
                    login_failures::username.eq(username),
                    login_failures::failures.eq(0),
                    login_failures::window_started_at.eq(now),
                ))
                .on_conflict_do_nothing()
                .execute(c)?;
            login_failures::table
                .find(username)
                .select((login_failures::failures, login_failures::window_started_at))
                .for_update()
                .first(c)?
        }
        DbConn::Sqlite(c) => {
            diesel::insert_or_ignore_into(login_failures::table)
                .values((
                    login_failures::username.eq(username),
                    login_failures::failures.eq(0),
                    login_failures::window_started_at.eq(now),
                ))
                .execute(c)?;
            login_failures::table
                .find(username)
                .select((login_failures::failures, login_failures::window_started_at))
                .first(c)?
        }
    };
    let (failures, window_start) = if row.1 + rule.window() <= now { (1, now) } else { (row.0 + 1, row.1) };
    let lock = (failures >= i32::try_from(rule.max_failures).unwrap_or(i32::MAX)).then(|| now + rule.window());
    diesel::update(login_failures::table.find(username))
        .set((
            login_failures::failures.eq(failures),
            login_failures::window_started_at.eq(window_start),
            login_failures::locked_until.eq(lock),
        ))
        .execute(conn)?;
    Ok(lock.map(|_| rule.window_secs))
}

pub fn clear_failures(conn: &mut DbConn, username: &str) -> QueryResult<()> {
    diesel::delete(login_failures::table.find(username)).execute(conn).map(|_| ())
}
