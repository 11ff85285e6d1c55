//! Per-account throttling of password checks, for every endpoint that checks a password (login,
//! password change): one count per account, kept in the database so that every instance on it
//! shares it, and taken before the password is checked, so that parallel guesses cannot outrun
//! it.

use chrono::Duration;

use crate::config::ServerConfig;
use crate::db::{Db, DbConn};
use crate::error::{ApiError, ApiResult};
use crate::store::audit::{self, Actor, Event};
use crate::store::sessions::{self, Attempt};

/// The rule: at most `max_failures` passwords are checked for one account within `window_secs`,
/// whatever address they come from; when they all failed the account is locked for
/// `window_secs`.
#[derive(Clone, Copy, Debug)]
pub struct Throttle {
    pub max_failures: u32,
    pub window_secs: u64,
}

impl Throttle {
    pub fn of(config: &ServerConfig) -> Throttle {
        // No checks at all would lock every account out for good.
        Throttle { max_failures: config.login_max_failures.max(1), window_secs: config.login_lockout_secs }
    }

    pub(crate) fn window(self) -> Duration {
        Duration::seconds(i64::try_from(self.window_secs).unwrap_or(86_400))
    }
}

/// The audit events of a check that did not succeed.
pub struct Refusals<'a> {
    pub actor: &'a Actor,
    /// Written when the account had no attempt left and its password was not checked.
    pub throttled: Event<'a>,
    /// Written when the password was checked and did not match.
    pub failed: Event<'a>,
}

/// Checks a password under the throttle of `account` (the normalised username, also for
/// unknown users, so that a 429 says nothing about existence). First an attempt slot is taken
/// in a write transaction of its own; `check` (the slow hash comparison, outside any
/// transaction) runs only when one was free.
///
/// `Ok(true)`: the password matched; the caller clears the count with [`succeeded`] in the
/// transaction that acts on the success. `Ok(false)`: it did not; that is audited and may lock
/// the account. A 429 with `Retry-After` when the account has no attempt left (audited too).
///
/// Blocking: runs on the blocking pool.
pub fn check_password(
    db: &Db,
    rule: Throttle,
    account: &str,
    refusals: Refusals<'_>,
    check: impl FnOnce() -> bool,
) -> ApiResult<bool> {
    let Refusals { actor, throttled, failed } = refusals;
    let attempt = db.write_blocking(|c| {
        let attempt = sessions::reserve_attempt(c, account, rule)?;
        if attempt != Attempt::Allowed {
            audit::record(c, actor, throttled)?;
        }
        Ok(attempt)
    })?;
    if let Attempt::Locked { retry_after_secs } = attempt {
        return Err(ApiError::TooManyRequests {
            detail: "too many failed password attempts on this account; try again later".into(),
            retry_after_secs,
        });
    }
    if check() {
        return Ok(true);
    }
    let locked = db.write_blocking(|c| {
        audit::record(c, actor, failed)?;
        Ok(sessions::lock_if_spent(c, account, rule)?)
    })?;
    if locked {
        tracing::warn!("an account was locked after repeated failed password checks");
    }
    Ok(false)
}

/// After a matching password: the account's count starts afresh. Call it in the transaction
/// that acts on the success.
pub fn succeeded(conn: &mut DbConn, account: &str) -> ApiResult<()> {
    Ok(sessions::clear_failures(conn, account)?)
}
