//! Storage: one connection type for both backends, the pools, and the migrations.
//!
//! SQLite is used as a server database: WAL, foreign keys, a busy timeout, one writer
//! connection taking `BEGIN IMMEDIATE` transactions and a pool of read-only connections, so
//! writers queue in the process instead of failing with "database is locked". PostgreSQL has
//! one pool for both. Every call runs on the blocking thread pool, never on an actix worker.

pub mod accounts;
pub mod keyfile;
pub mod keys;
pub mod schema;
pub mod sealing;
pub mod types;

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::accounts::Accounts;
use self::keyfile::KeyState;

use diesel::connection::{AnsiTransactionManager, InstrumentationEvent, SimpleConnection, TransactionManager};
use diesel::r2d2::{CustomizeConnection, ManageConnection, Pool, R2D2Connection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::{DbConfig, is_postgres_url, sqlite_path};
use crate::error::{ApiError, ApiResult};

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Runs one diesel expression on the concrete connection of either backend, for what
/// `MultiConnection` cannot express itself (row locks, multi-row inserts): the expression is
/// written once and compiled for each (vaultwarden's `db_run!`).
///
/// `db_run!(conn, |c| query.execute(c))`
#[macro_export]
macro_rules! db_run {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Postgres($c) => $body,
            $crate::db::DbConn::Sqlite($c) => $body,
        }
    };
}

/// A connection to either backend; queries are written once against it.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Backend {
        if is_postgres_url(url) { Backend::Postgres } else { Backend::Sqlite }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

type DbPool = Pool<Manager>;

/// Opens connections of the backend the URL names. (diesel's generic manager would try every
/// backend in turn, and report a failed PostgreSQL connection as "invalid connection url".)
#[derive(Debug)]
pub struct Manager {
    url: String,
    backend: Backend,
}

/// How long a connection that answered counts as alive without being asked again: checking
/// every connection on every checkout cost a round trip per request on PostgreSQL (a third of
/// `/me`'s time). A connection that dies within the window fails the query it is given; the
/// request answers 503 and the connection is marked [`Conn::suspect`] and discarded.
const ALIVE_WINDOW: Duration = Duration::from_secs(1);

/// A pooled connection: dereferences to the [`DbConn`].
pub struct Conn {
    conn: DbConn,
    /// When the connection last proved alive (opened, or answered the check).
    checked: Instant,
    /// Set when a query on it failed the way a lost connection fails: not reused.
    suspect: bool,
}

impl Deref for Conn {
    type Target = DbConn;
    fn deref(&self) -> &DbConn {
        &self.conn
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut DbConn {
        &mut self.conn
    }
}

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Conn, Self::Error> {
        let conn = match self.backend {
            Backend::Postgres => PgConnection::establish(&self.url).map(DbConn::Postgres),
            Backend::Sqlite => SqliteConnection::establish(&self.url).map(DbConn::Sqlite),
        };
        let conn = conn.map_err(diesel::r2d2::Error::ConnectionError)?;
        Ok(Conn { conn, checked: Instant::now(), suspect: false })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), Self::Error> {
        if conn.checked.elapsed() < ALIVE_WINDOW {
            return Ok(());
        }
        conn.conn.ping().map_err(diesel::r2d2::Error::QueryError)?;
        conn.checked = Instant::now();
        Ok(())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.suspect || conn.conn.is_broken()
    }
}

/// Runs `f` on a pooled connection; a failure that looks like a lost connection marks it, so
/// that the pool drops it instead of handing it out again.
fn on<T>(conn: &mut Conn, f: impl FnOnce(&mut DbConn) -> ApiResult<T>) -> ApiResult<T> {
    let result = f(&mut conn.conn);
    if matches!(result, Err(ApiError::Unavailable(_))) {
        conn.suspect = true;
    }
    result
}

/// Per-connection set-up run by the pool whenever it opens a connection.
#[derive(Debug, Clone)]
struct Setup {
    sqlite_pragmas: String,
    read_only: bool,
    /// Statements slower than this are logged (their SQL, never their bound values).
    slow_query: Option<Duration>,
}

impl CustomizeConnection<Conn, diesel::r2d2::Error> for Setup {
    fn on_acquire(&self, conn: &mut Conn) -> Result<(), diesel::r2d2::Error> {
        let sql = match &conn.conn {
            DbConn::Sqlite(_) if self.read_only => format!("{} PRAGMA query_only = ON;", self.sqlite_pragmas),
            DbConn::Sqlite(_) => self.sqlite_pragmas.clone(),
            // Bound every statement, so that nothing holds a connection forever.
            DbConn::Postgres(_) => format!(
                "SET statement_timeout = '30s'; SET lock_timeout = '10s'; SET default_transaction_read_only = {};",
                if self.read_only { "on" } else { "off" }
            ),
        };
        conn.batch_execute(&sql).map_err(diesel::r2d2::Error::QueryError)?;
        if let Some(limit) = self.slow_query {
            conn.conn.set_instrumentation(slow_statements(limit));
        }
        Ok(())
    }
}

/// An instrumentation that logs each statement slower than `limit`: its SQL text up to the
/// bound values (diesel's debug form appends them after ` -- binds:`; they may be personal
/// data, so they are cut off), how long it took and whether it failed.
fn slow_statements(limit: Duration) -> impl FnMut(InstrumentationEvent<'_>) + Send + 'static {
    let mut started: Option<Instant> = None;
    move |event: InstrumentationEvent<'_>| match event {
        InstrumentationEvent::StartQuery { .. } => started = Some(Instant::now()),
        InstrumentationEvent::FinishQuery { query, error, .. } => {
            let Some(took) = started.take().map(|t| t.elapsed()) else { return };
            if took < limit {
                return;
            }
            let text = query.to_string();
            let sql = text.split(" -- binds:").next().unwrap_or_default();
            tracing::warn!(target: "gridlight::slow_sql", ms = took.as_millis() as u64, failed = error.is_some(), sql, "slow statement");
        }
        _ => {}
    }
}

/// SQLite connections kept for reads on the async workers ([`Db::read_here`]): one per core
/// (a worker each), up to this many.
const HERE_CONNECTIONS: usize = 8;

struct Pools {
    backend: Backend,
    read: DbPool,
    /// A single connection on SQLite.
    write: DbPool,
    /// SQLite: reads made on the async workers themselves ([`Db::read_here`]); they never wait
    /// on a lock (`busy_timeout = 0`).
    here: Option<DbPool>,
    timeout: Duration,
}

/// The database handle the application holds: cheap to clone.
#[derive(Clone)]
pub struct Db {
    pools: Arc<Pools>,
    /// The data keys, loaded by [`Db::migrate`].
    keys: Arc<KeyState>,
    /// The accounts that authenticated lately (see [`accounts`]).
    accounts: Arc<Accounts>,
    database_url: Arc<str>,
}

impl Db {
    /// Opens the pools. Fails when the database cannot be reached within the checkout timeout.
    pub fn connect(cfg: &DbConfig) -> anyhow::Result<Db> {
        let backend = Backend::of_url(&cfg.database_url);
        let keys = Arc::new(KeyState::configured(cfg)?);
        let url = match backend {
            Backend::Postgres => cfg.database_url.clone(),
            Backend::Sqlite => {
                let path = sqlite_path(&cfg.database_url)
                    .ok_or_else(|| anyhow::anyhow!("an in-memory SQLite database cannot be shared by a pool"))?;
                make_private(&path)?;
                path.to_string_lossy().into_owned()
            }
        };
        let timeout = cfg.timeout();
        let slow_query = (cfg.slow_query_ms > 0).then(|| Duration::from_millis(cfg.slow_query_ms));
        let pool = |size: u32, sqlite_pragmas: &str, read_only: bool| {
            let setup = Setup { sqlite_pragmas: sqlite_pragmas.to_owned(), read_only, slow_query };
            build_pool(&url, backend, size, timeout, setup)
        };
        let pools = match backend {
            Backend::Postgres => {
                // Two pools, as on SQLite: writes waiting on locks or on their commit's flush must
                // not hold every connection while reads queue behind them for one.
                let size = cfg.db_pool_size.max(1);
                let write = pool(size, "", false)?;
                let read = pool(size, "", true)?;
                Pools { backend, read, write, here: None, timeout }
            }
            Backend::Sqlite => {
                // secure_delete: a value overwritten (sealed, re-sealed, erased by retention)
                // leaves no copy in the page it was in.
                let pragmas = |busy_timeout_ms: u64| {
                    format!(
                        "PRAGMA busy_timeout = {busy_timeout_ms}; PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; \
                         PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;",
                        cfg.sqlite_synchronous.pragma()
                    )
                };
                // The writer first: it creates the file and switches it to WAL.
                let write = pool(1, &pragmas(cfg.sqlite_busy_timeout_ms), false)?;
                let read = pool(cfg.db_pool_size.max(1), &pragmas(cfg.sqlite_busy_timeout_ms), true)?;
                // Without it (it could not be opened), every read goes to the blocking pool.
                let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(HERE_CONNECTIONS);
                let here = pool(workers as u32, &pragmas(0), true)
                    .inspect_err(|e| {
                        tracing::warn!(error = format!("{e:#}"), "no connections for reads on the workers")
                    })
                    .ok();
                Pools { backend, read, write, here, timeout }
            }
        };
        // On PostgreSQL the cache answers only once its listener hears the database's changes.
        let accounts = Accounts::new(Duration::from_secs(cfg.account_cache_secs), backend == Backend::Sqlite);
        Ok(Db { pools: Arc::new(pools), keys, accounts, database_url: cfg.database_url.as_str().into() })
    }

    /// The accounts that authenticated lately.
    pub fn accounts(&self) -> &Arc<Accounts> {
        &self.accounts
    }

    /// On PostgreSQL with the account cache on: listens for changes of accounts made by any
    /// instance, for as long as the server runs (on the current actix system).
    pub fn listen_for_account_changes(&self, cache_secs: u64) {
        if self.backend() == Backend::Postgres && cache_secs > 0 {
            actix_web::rt::spawn(accounts::listen(self.database_url.to_string(), self.accounts.clone()));
        }
    }

    pub fn backend(&self) -> Backend {
        self.pools.backend
    }

    /// Applies pending migrations, then loads the data keys (refusing keys that cannot open
    /// what the database holds) and seals any personal value still stored in clear (a database
    /// of an earlier version), in batches. On PostgreSQL an advisory lock keeps several
    /// instances starting at once from migrating together.
    pub fn migrate(&self) -> anyhow::Result<Vec<String>> {
        let applied = self.migrate_schema()?;
        self.keys.load(self)?;
        let sealed = sealing::seal_clear_values(self, &mut |_| {})?;
        if sealed > 0 {
            tracing::info!(values = sealed, "sealed personal values stored in clear");
            self.scrub()?;
        }
        Ok(applied)
    }

    /// Rewrites the storage so that values replaced in place leave no copy behind: SQLite's free
    /// pages and WAL, PostgreSQL's dead row versions of the sealed tables. Run once after the
    /// values of an earlier version were sealed (it takes the tables' locks for a while).
    pub fn scrub(&self) -> anyhow::Result<()> {
        let mut conn = self.pools.write.get()?;
        match &mut conn.conn {
            DbConn::Sqlite(c) => c.batch_execute("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")?,
            DbConn::Postgres(c) => c.batch_execute("VACUUM FULL members, households, users, imports")?,
        }
        Ok(())
    }

    /// Brings the planner's statistics up to date after a bulk load grew the household tables
    /// (PostgreSQL only: without them it plans the next statements for the tables as they were,
    /// e.g. empty — a roster import's lookups become scans, and on a freshly seeded 300k set a
    /// grid's initial sync took 0.40 s instead of 0.10 s). SQLite plans without them.
    pub fn refresh_statistics(&self) -> ApiResult<()> {
        let mut conn = self.pools.write.get()?;
        if let DbConn::Postgres(c) = &mut conn.conn {
            c.batch_execute("ANALYZE households, members, tasks, visits, tag_changes")?;
        }
        Ok(())
    }

    /// The data keys this database is opened with (after [`Db::migrate`]).
    pub fn keys(&self) -> &KeyState {
        &self.keys
    }

    fn migrate_schema(&self) -> anyhow::Result<Vec<String>> {
        #[derive(diesel::QueryableByName)]
        struct Violations {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.pools.write.get()?;
        fn names(versions: Vec<diesel::migration::MigrationVersion<'_>>) -> Vec<String> {
            versions.into_iter().map(|v| v.to_string()).collect()
        }
        match &mut conn.conn {
            DbConn::Sqlite(c) => {
                // Foreign keys off while migrating (SQLite's procedure for rebuilding a table;
                // it cannot be switched inside the migrations' transactions): dropping a
                // referenced table would otherwise check every row of every table referring to
                // it, row by row, where no index helps (`households.tag_set_by` for `users`).
                // Checked as a whole afterwards; a violation fails the start.
                c.batch_execute("PRAGMA foreign_keys = OFF")?;
                // (Only when a migration ran: the check reads every table, 30 s on a 3M set.)
                let applied = c.run_pending_migrations(SQLITE_MIGRATIONS).map(names).map_err(|e| anyhow::anyhow!(e));
                let check = diesel::sql_query("SELECT count(*) AS n FROM pragma_foreign_key_check");
                let violations = match &applied {
                    Ok(ran) if ran.is_empty() => Ok(0),
                    _ => diesel::RunQueryDsl::get_result::<Violations>(check, c).map(|v| v.n),
                };
                c.batch_execute("PRAGMA foreign_keys = ON")?;
                let applied = applied?;
                if violations? > 0 {
                    anyhow::bail!("the migrations left rows whose references do not hold (PRAGMA foreign_key_check)");
                }
                Ok(applied)
            }
            DbConn::Postgres(c) => {
                c.batch_execute("SELECT pg_advisory_lock(7305861250)")?;
                let result = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(names).map_err(|e| anyhow::anyhow!(e));
                c.batch_execute("SELECT pg_advisory_unlock(7305861250)")?;
                result
            }
        }
    }

    /// Runs `f` with a read connection on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> ApiResult<T>
    where
        F: FnOnce(&mut DbConn) -> ApiResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.off_workers(move |db| db.read_blocking(f)).await
    }

    /// Runs `f` inside a write transaction on the blocking pool; an `Err` rolls it back.
    pub async fn write<T, F>(&self, f: F) -> ApiResult<T>
    where
        F: FnOnce(&mut DbConn) -> ApiResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.off_workers(move |db| db.write_blocking(f)).await
    }

    /// Runs `work` on the blocking pool, in the caller's tracing span.
    async fn off_workers<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Db) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let db = self.clone();
        let span = tracing::Span::current();
        actix_web::web::block(move || span.in_scope(|| work(&db))).await?
    }

    /// Runs `f` at once on the calling thread — an async worker — if it can be done without
    /// waiting: on SQLite, on an idle connection of the workers' own, which gives up on any lock
    /// at once (`busy_timeout = 0`) instead of waiting for it. `None` on PostgreSQL (every
    /// statement is a round trip) and while no such connection is idle; `Some(Err(_))` if the
    /// database was locked or the read failed. For a few small indexed reads only: they hold the
    /// worker, and every request on it, while they run.
    pub fn read_here<T>(&self, f: impl FnOnce(&mut DbConn) -> ApiResult<T>) -> Option<ApiResult<T>> {
        let mut conn = self.pools.here.as_ref()?.try_get()?;
        // Not [`on`]: a lock found held says nothing against the connection.
        Some(keys::with(self.keys.ring(), || f(&mut conn.conn)))
    }

    /// [`Db::read`] for callers that are already off the async workers (CLI, jobs).
    pub fn read_blocking<T>(&self, f: impl FnOnce(&mut DbConn) -> ApiResult<T>) -> ApiResult<T> {
        let mut conn = self.pools.read.get()?;
        keys::with(self.keys.ring(), || on(&mut conn, f))
    }

    /// [`Db::write`] for callers that are already off the async workers (CLI, jobs).
    /// The accounts it changed are forgotten by the account cache once it has ended, and on
    /// PostgreSQL it answers once this instance's listener has heard of their change (see
    /// [`accounts`]).
    pub fn write_blocking<T>(&self, f: impl FnOnce(&mut DbConn) -> ApiResult<T>) -> ApiResult<T> {
        let _ = accounts::take_touched();
        let mark = self.accounts.heard_mark();
        let result = {
            let mut conn = self.pools.write.get()?;
            keys::with(self.keys.ring(), || on(&mut conn, |c| write_transaction(c, f)))
        };
        let touched = accounts::take_touched();
        for id in &touched {
            self.accounts.forget(id);
        }
        let listening = self.accounts.is_listening();
        if !touched.is_empty() && result.is_ok() && listening {
            if self.accounts.wait_heard(&touched, mark, accounts::HEARD_WAIT) {
                std::thread::sleep(accounts::HEARD_GRACE);
            } else {
                tracing::warn!("an account change was not heard back from the database in time");
            }
        }
        result
    }

    /// Checks that the database answers a query, within a short timeout.
    pub fn ping_blocking(&self) -> ApiResult<()> {
        let timeout = self.pools.timeout.min(Duration::from_secs(2));
        let mut conn = self.pools.read.get_timeout(timeout)?;
        on(&mut conn, |c| c.batch_execute("SELECT 1").map_err(ApiError::from))
    }

    /// Pool figures for `/metrics`: (pool name, open connections, idle connections, maximum).
    pub fn pool_stats(&self) -> Vec<(&'static str, u32, u32, u32)> {
        [("read", Some(&self.pools.read)), ("write", Some(&self.pools.write)), ("here", self.pools.here.as_ref())]
            .into_iter()
            .filter_map(|(name, pool)| Some((name, pool?)))
            .map(|(name, pool)| {
                let state = pool.state();
                (name, state.connections, state.idle_connections, pool.max_size())
            })
            .collect()
    }
}

/// Keeps the SQLite files private to their owner (mode 0600): they hold personal data and
/// password hashes. The database file is created before SQLite opens it, and SQLite gives the
/// `-wal` and `-shm` files it creates the database file's mode, so they follow. Files left
/// readable by others (made before this rule, or by hand) are tightened at start-up.
fn make_private(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

        use anyhow::Context;
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            // An empty file is a new database to SQLite.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating the database file {}", path.display())),
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let file = Path::new(&name);
            let mode = match std::fs::metadata(file) {
                Ok(meta) => meta.permissions().mode() & 0o777,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading the mode of {}", file.display())),
            };
            if mode & 0o077 != 0 {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode & 0o700))
                    .with_context(|| format!("making {} private", file.display()))?;
                tracing::info!(
                    path = %file.display(),
                    was = format!("{mode:o}"),
                    now = format!("{:o}", mode & 0o700),
                    "made a database file readable by its owner only"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn build_pool(url: &str, backend: Backend, size: u32, timeout: Duration, setup: Setup) -> anyhow::Result<DbPool> {
    let pool = Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        .connection_timeout(timeout)
        .test_on_check_out(true)
        .connection_customizer(Box::new(setup))
        .build(Manager { url: url.to_owned(), backend })?;
    Ok(pool)
}

/// Runs `f` in a transaction: `BEGIN IMMEDIATE` on SQLite, so that the write lock is taken up
/// front and a transaction never fails half-way on a lock upgrade; plain `BEGIN` on PostgreSQL.
pub fn write_transaction<T>(conn: &mut DbConn, f: impl FnOnce(&mut DbConn) -> ApiResult<T>) -> ApiResult<T> {
    match conn {
        DbConn::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?,
        DbConn::Postgres(c) => AnsiTransactionManager::begin_transaction(c)?,
    }
    match f(conn) {
        Ok(value) => {
            <DbConn as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(err) => {
            // A failed rollback leaves the connection broken; the pool discards it.
            if let Err(rollback) = <DbConn as Connection>::TransactionManager::rollback_transaction(conn) {
                tracing::warn!(error = %rollback, "rollback failed");
            }
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_checked_once_a_window_and_dropped_when_lost() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("pool.db").display().to_string();
        let manager = Manager { url, backend: Backend::Sqlite };
        let mut conn = manager.connect().unwrap();
        let opened = conn.checked;
        // Inside the window: no query, the time stays.
        manager.is_valid(&mut conn).unwrap();
        assert_eq!(conn.checked, opened);
        // Past it: asked again, and the time moves on.
        conn.checked = Instant::now() - ALIVE_WINDOW * 2;
        manager.is_valid(&mut conn).unwrap();
        assert!(conn.checked.elapsed() < ALIVE_WINDOW);
        // An ordinary error keeps the connection; a lost-connection error retires it.
        let missing: ApiResult<()> = on(&mut conn, |_| Err(ApiError::not_found("household")));
        assert!(missing.is_err());
        assert!(!manager.has_broken(&mut conn));
        let lost: ApiResult<()> = on(&mut conn, |_| Err(ApiError::Unavailable("database connection lost".into())));
        assert!(lost.is_err());
        assert!(manager.has_broken(&mut conn));
    }

    /// A writer for the test's log lines.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn slow_statements_are_logged_without_their_values() {
        use diesel::sql_types::{BigInt, Text};
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || sink.clone()).finish();
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.set_instrumentation(slow_statements(Duration::from_millis(5)));
        // Two million rows of a recursive count: far slower than 5 ms on any machine.
        let slow = diesel::sql_query(
            "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 2000000) \
             SELECT count(*) AS n FROM r WHERE ? <> ''",
        )
        .bind::<Text, _>("110101199003077777");
        let n = tracing::subscriber::with_default(subscriber, || {
            diesel::RunQueryDsl::get_result::<N>(slow, &mut conn).unwrap().n
        });
        assert_eq!(n, 2_000_000);
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("slow statement") && log.contains("WITH RECURSIVE r(i)"), "{log}");
        assert!(log.contains("gridlight::slow_sql") && log.contains("failed=false"), "{log}");
        assert!(!log.contains("110101199003077777") && !log.contains("binds"), "{log}");
    }
}
