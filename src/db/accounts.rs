//! The account cache: the accounts that authenticated lately, so that a request whose bearer
//! token names a cached, active account with the token's credentials epoch is authenticated
//! without a trip to the database pool.
//!
//! The promise stays that deactivation, a password change or a role change takes effect on the
//! very next request, on every instance:
//! - every write to `users` goes through `store::users`, which notes the account in this thread
//!   ([`touched`]); [`crate::db::Db::write_blocking`] forgets the noted accounts once the
//!   transaction has ended, so the instance that wrote never serves the old row;
//! - on PostgreSQL a trigger on `users` sends `NOTIFY gridlight_accounts, '<id>'` with every
//!   change, whoever makes it; each instance listens ([`listen`]) and forgets the account as the
//!   notification arrives. The instance that wrote answers only once its own listener has heard
//!   its change (at most [`HEARD_WAIT`]) and a margin after it ([`HEARD_GRACE`]): the
//!   notification reaches every listener at the same moment, so the others have forgotten the
//!   account before the writer's client can ask them.
//!   While the listener is not connected, the cache is off (every request reads the account);
//! - a reader that read an account while it was being changed does not store what it read: an
//!   entry is stored only if no account was forgotten since the reader started (a generation
//!   count);
//! - entries expire after `GRIDLIGHT_ACCOUNT_CACHE_SECS` (default 60; 0 turns the cache off),
//!   a bound for what nothing above reaches (a second process writing the same SQLite file).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::store::users::UserRow;

/// The channel of the `users` trigger.
pub const CHANNEL: &str = "gridlight_accounts";
/// The longest a write of an account waits for its own instance's listener to hear it.
pub const HEARD_WAIT: Duration = Duration::from_millis(250);
/// After hearing its own change, how long the writer still waits before it answers: the other
/// instances' listeners receive the same notification at the same moment, but each handles it
/// on its own scheduler; this margin covers that jitter.
pub const HEARD_GRACE: Duration = Duration::from_millis(20);
/// More accounts than this and the cache starts afresh (a street office has a few hundred).
const CAPACITY: usize = 20_000;

struct Entry {
    row: UserRow,
    at: Instant,
}

/// What the listener heard: a count of notifications, and the count at each account's latest.
#[derive(Default)]
struct Heard {
    count: u64,
    latest: HashMap<String, u64>,
}

pub struct Accounts {
    entries: RwLock<HashMap<String, Entry>>,
    /// Bumped (under the entries' write lock) each time an account is forgotten.
    generation: AtomicU64,
    /// Whether the cache may answer: off with a TTL of 0, and on PostgreSQL while no listener
    /// is connected.
    live: AtomicBool,
    /// Whether changes are heard from the database (PostgreSQL's listener is connected).
    listening: AtomicBool,
    ttl: Duration,
    heard: Mutex<Heard>,
    heard_changed: Condvar,
    /// Requests answered from the cache, and those that read the account (for `/metrics`).
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Accounts {
    /// A cache whose entries live `ttl` (zero: off); `live` whether it answers from the start
    /// (SQLite) or only once a listener is connected (PostgreSQL).
    pub fn new(ttl: Duration, live: bool) -> Arc<Accounts> {
        Arc::new(Accounts {
            entries: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            live: AtomicBool::new(live && !ttl.is_zero()),
            listening: AtomicBool::new(false),
            ttl,
            heard: Mutex::new(Heard::default()),
            heard_changed: Condvar::new(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// The cached account `id`, if it is fresh, active and its credentials epoch is `cv`.
    /// Anything else (not cached, expired, deactivated, another epoch) is for the database to
    /// answer: a token newer than the cached row must not be refused on the cache's word.
    pub fn get(&self, id: &str, cv: i64) -> Option<UserRow> {
        let found = self.live.load(Ordering::Acquire).then(|| self.fresh(id, cv)).flatten();
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    fn fresh(&self, id: &str, cv: i64) -> Option<UserRow> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let e = entries.get(id)?;
        (e.at.elapsed() < self.ttl && e.row.active && e.row.credentials_epoch() == cv).then(|| e.row.clone())
    }

    /// How many look-ups the cache answered, and how many went to the database.
    pub fn lookups(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }

    /// Taken before reading an account, handed to [`Accounts::remember`] with what was read.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Stores an account read from the database, unless an account was forgotten since the
    /// read began (`seen`, [`Accounts::generation`] before it): the row may predate that change.
    pub fn remember(&self, row: &UserRow, seen: u64) {
        if !self.live.load(Ordering::Acquire) {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::Acquire) != seen {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(row.id.clone(), Entry { row: row.clone(), at: Instant::now() });
    }

    /// Forgets an account (it changed).
    pub fn forget(&self, id: &str) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.remove(id);
    }

    fn forget_all(&self) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// The listener connected (`true`: the cache answers from now on) or lost its connection
    /// (`false`: off until it is back — changes made meanwhile would go unheard).
    pub fn set_listening(&self, on: bool) {
        self.forget_all();
        self.listening.store(on, Ordering::Release);
        self.live.store(on && !self.ttl.is_zero(), Ordering::Release);
    }

    /// Whether a listener hears the database's changes (PostgreSQL).
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// The listener heard that account `id` changed.
    pub fn heard(&self, id: &str) {
        self.forget(id);
        let mut h = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        h.count += 1;
        if h.latest.len() >= CAPACITY {
            h.latest.clear();
        }
        let count = h.count;
        h.latest.insert(id.to_owned(), count);
        self.heard_changed.notify_all();
    }

    /// How many changes the listener has heard so far: taken before a write, handed to
    /// [`Accounts::wait_heard`] after it.
    pub fn heard_mark(&self) -> u64 {
        self.heard.lock().unwrap_or_else(|e| e.into_inner()).count
    }

    /// Waits (at most `limit`) until the listener has heard of each of `ids` a change after
    /// `mark`; answers whether it did.
    pub fn wait_heard(&self, ids: &[String], mark: u64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut h = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if ids.iter().all(|id| h.latest.get(id).is_some_and(|&n| n > mark)) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            h = self.heard_changed.wait_timeout(h, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

thread_local! {
    /// The accounts the current write transaction of this thread changed.
    static TOUCHED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Notes that the running transaction changes account `id` (called by `store::users`).
pub fn touched(id: &str) {
    TOUCHED.with(|t| t.borrow_mut().push(id.to_owned()));
}

/// The accounts noted since the last call, in this thread.
pub fn take_touched() -> Vec<String> {
    TOUCHED.with(|t| std::mem::take(&mut *t.borrow_mut()))
}

/// Listens for changes of accounts on PostgreSQL until the process ends: connects, `LISTEN`s,
/// switches the cache on, forgets each account a notification names; on a lost connection the
/// cache goes off and the listener reconnects (after a second, then up to a minute apart).
pub async fn listen(url: String, accounts: Arc<Accounts>) {
    let mut pause = Duration::from_secs(1);
    loop {
        match listen_once(&url, &accounts).await {
            Ok(()) => pause = Duration::from_secs(1),
            Err(e) => tracing::warn!(error = %e, "account change listener: not connected; the account cache is off"),
        }
        accounts.set_listening(false);
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(60));
    }
}

async fn listen_once(url: &str, accounts: &Arc<Accounts>) -> Result<(), tokio_postgres::Error> {
    use tokio_postgres::AsyncMessage;
    let mut config: tokio_postgres::Config = url.parse()?;
    // A connection lost without a word (a network gone quiet) is noticed within a minute.
    config.keepalives_idle(Duration::from_secs(15)).keepalives_interval(Duration::from_secs(5)).keepalives_retries(6);
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
    let hears = accounts.clone();
    // The connection does the talking; the notifications it receives are handled as they come.
    let driver = actix_web::rt::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => hears.heard(n.payload()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
        driver.abort();
        return Err(e);
    }
    accounts.set_listening(true);
    tracing::info!("account change listener: connected");
    let ended = driver.await;
    drop(client);
    ended.unwrap_or(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, active: bool, at_micros: i64) -> UserRow {
        let t = chrono::DateTime::from_timestamp_micros(at_micros).unwrap().naive_utc();
        UserRow {
            id: id.into(),
            username: id.into(),
            display_name: id.into(),
            phone: None,
            role: crate::domain::Role::GridWorker,
            community_id: None,
            active,
            password_hash: String::new(),
            credentials_changed_at: t,
            version: 1,
            created_at: t,
            updated_at: t,
            street_id: None,
            district_id: None,
        }
    }

    #[test]
    fn answers_only_fresh_active_accounts_of_the_tokens_epoch() {
        let a = Accounts::new(Duration::from_secs(60), true);
        let seen = a.generation();
        a.remember(&row("u1", true, 1_000), seen);
        a.remember(&row("u2", false, 1_000), seen);
        assert!(a.get("u1", 1_000).is_some());
        assert!(a.get("u1", 2_000).is_none(), "another epoch is for the database to judge");
        assert!(a.get("u2", 1_000).is_none(), "a deactivated account is for the database to judge");
        assert!(a.get("u3", 1_000).is_none());
        a.forget("u1");
        assert!(a.get("u1", 1_000).is_none());

        let expired = Accounts::new(Duration::from_millis(1), true);
        expired.remember(&row("u1", true, 1_000), expired.generation());
        std::thread::sleep(Duration::from_millis(5));
        assert!(expired.get("u1", 1_000).is_none(), "entries expire");

        let off = Accounts::new(Duration::ZERO, true);
        off.remember(&row("u1", true, 1_000), off.generation());
        assert!(off.get("u1", 1_000).is_none(), "a TTL of 0 turns the cache off");
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_stored() {
        let a = Accounts::new(Duration::from_secs(60), true);
        let seen = a.generation();
        // The account changes (and is forgotten) while a reader holds the row it read before.
        a.forget("u1");
        a.remember(&row("u1", true, 1_000), seen);
        assert!(a.get("u1", 1_000).is_none());
        a.remember(&row("u1", true, 1_000), a.generation());
        assert!(a.get("u1", 1_000).is_some());
    }

    #[test]
    fn off_until_a_listener_is_connected_and_while_it_is_lost() {
        let a = Accounts::new(Duration::from_secs(60), false);
        a.remember(&row("u1", true, 1_000), a.generation());
        assert!(a.get("u1", 1_000).is_none());
        a.set_listening(true);
        a.remember(&row("u1", true, 1_000), a.generation());
        assert!(a.get("u1", 1_000).is_some());
        a.set_listening(false);
        assert!(a.get("u1", 1_000).is_none(), "forgotten when the listener is lost");
    }

    #[test]
    fn a_writer_waits_until_its_change_is_heard() {
        let a = Accounts::new(Duration::from_secs(60), true);
        let mark = a.heard_mark();
        assert!(!a.wait_heard(&["u1".into()], mark, Duration::from_millis(10)));
        let b = a.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            b.heard("u1");
        });
        assert!(a.wait_heard(&["u1".into()], mark, Duration::from_secs(5)));
        t.join().unwrap();
        assert!(
            !a.wait_heard(&["u1".into()], a.heard_mark(), Duration::from_millis(10)),
            "a later mark wants a later change"
        );
    }

    #[test]
    fn touched_accounts_are_taken_once() {
        let _ = take_touched();
        touched("u1");
        touched("u2");
        assert_eq!(take_touched(), vec!["u1".to_string(), "u2".to_string()]);
        assert!(take_touched().is_empty());
    }
}
