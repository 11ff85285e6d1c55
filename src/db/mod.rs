//! Storage: one connection type for both backends, the pools, and the migrations.
//!
//! SQLite is used as a server database: WAL, foreign keys, a busy timeout, one writer
//! connection taking `BEGIN IMMEDIATE` transactions and a pool of read-only connections, so
//! writers queue in the process instead of failing with "database is locked". PostgreSQL has
//! one pool for both. Every call runs on the blocking thread pool, never on an actix worker.

pub mod schema;

use std::sync::Arc;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::r2d2::{CustomizeConnection, ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::{DbConfig, is_postgres_url, sqlite_path};
use crate::error::{ApiError, ApiResult};

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

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
pub type PooledConn = PooledConnection<Manager>;

/// Opens connections of the backend the URL names. (diesel's generic manager would try every
/// backend in turn, and report a failed PostgreSQL connection as "invalid connection url".)
#[derive(Debug)]
pub struct Manager {
    url: String,
    backend: Backend,
}

impl ManageConnection for Manager {
    type Connection = DbConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConn, Self::Error> {
        let conn = match self.backend {
            Backend::Postgres => PgConnection::establish(&self.url).map(DbConn::Postgres),
            Backend::Sqlite => SqliteConnection::establish(&self.url).map(DbConn::Sqlite),
        };
        conn.map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        conn.is_broken()
    }
}

/// Per-connection set-up run by the pool whenever it opens a connection.
#[derive(Debug, Clone)]
struct Setup {
    sqlite_pragmas: String,
    read_only: bool,
}

impl CustomizeConnection<DbConn, diesel::r2d2::Error> for Setup {
    fn on_acquire(&self, conn: &mut DbConn) -> Result<(), diesel::r2d2::Error> {
        let sql = match conn {
            DbConn::Sqlite(_) if self.read_only => format!("{} PRAGMA query_only = ON;", self.sqlite_pragmas),
            DbConn::Sqlite(_) => self.sqlite_pragmas.clone(),
            // Bound every statement, so that nothing holds a connection forever.
            DbConn::Postgres(_) if self.read_only => {
                "SET statement_timeout = '30s'; SET lock_timeout = '10s'; SET default_transaction_read_only = on;"
                    .to_owned()
            }
            DbConn::Postgres(_) => "SET statement_timeout = '30s'; SET lock_timeout = '10s';".to_owned(),
        };
        conn.batch_execute(&sql).map_err(diesel::r2d2::Error::QueryError)
    }
}

struct Pools {
    backend: Backend,
    read: DbPool,
    /// A single connection on SQLite.
    write: DbPool,
    timeout: Duration,
}

/// The database handle the application holds: cheap to clone.
#[derive(Clone)]
pub struct Db {
    pools: Arc<Pools>,
}

impl Db {
    /// Opens the pools. Fails when the database cannot be reached within the checkout timeout.
    pub fn connect(cfg: &DbConfig) -> anyhow::Result<Db> {
        let backend = Backend::of_url(&cfg.database_url);
        let url = match backend {
            Backend::Postgres => cfg.database_url.clone(),
            Backend::Sqlite => {
                let path = sqlite_path(&cfg.database_url)
                    .ok_or_else(|| anyhow::anyhow!("an in-memory SQLite database cannot be shared by a pool"))?;
                path.to_string_lossy().into_owned()
            }
        };
        let timeout = cfg.timeout();
        let pools = match backend {
            Backend::Postgres => {
                // Two pools, as on SQLite: writes waiting on locks or on their commit's flush must
                // not hold every connection while reads queue behind them for one.
                let size = cfg.db_pool_size.max(1);
                let write = build_pool(
                    &url,
                    backend,
                    size,
                    timeout,
                    Setup { sqlite_pragmas: String::new(), read_only: false },
                )?;
                let read =
                    build_pool(&url, backend, size, timeout, Setup { sqlite_pragmas: String::new(), read_only: true })?;
                Pools { backend, read, write, timeout }
            }
            Backend::Sqlite => {
                let pragmas = format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; \
                     PRAGMA foreign_keys = ON;",
                    cfg.sqlite_busy_timeout_ms,
                    cfg.sqlite_synchronous.pragma()
                );
                // The writer first: it creates the file and switches it to WAL.
                let write =
                    build_pool(&url, backend, 1, timeout, Setup { sqlite_pragmas: pragmas.clone(), read_only: false })?;
                let read = build_pool(
                    &url,
                    backend,
                    cfg.db_pool_size.max(1),
                    timeout,
                    Setup { sqlite_pragmas: pragmas, read_only: true },
                )?;
                Pools { backend, read, write, timeout }
            }
        };
        Ok(Db { pools: Arc::new(pools) })
    }

    pub fn backend(&self) -> Backend {
        self.pools.backend
    }

    /// Applies pending migrations. On PostgreSQL an advisory lock keeps several instances
    /// starting at once from migrating together.
    pub fn migrate(&self) -> anyhow::Result<Vec<String>> {
        let mut conn = self.pools.write.get()?;
        fn names(versions: Vec<diesel::migration::MigrationVersion<'_>>) -> Vec<String> {
            versions.into_iter().map(|v| v.to_string()).collect()
        }
        match &mut *conn {
            DbConn::Sqlite(c) => {
                Ok(names(c.run_pending_migrations(SQLITE_MIGRATIONS).map_err(|e| anyhow::anyhow!(e))?))
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
        let db = self.clone();
        let span = tracing::Span::current();
        actix_web::web::block(move || span.in_scope(|| db.read_blocking(f))).await?
    }

    /// Runs `f` inside a write transaction on the blocking pool; an `Err` rolls it back.
    pub async fn write<T, F>(&self, f: F) -> ApiResult<T>
    where
        F: FnOnce(&mut DbConn) -> ApiResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let db = self.clone();
        let span = tracing::Span::current();
        actix_web::web::block(move || span.in_scope(|| db.write_blocking(f))).await?
    }

    /// [`Db::read`] for callers that are already off the async workers (CLI, jobs).
    pub fn read_blocking<T>(&self, f: impl FnOnce(&mut DbConn) -> ApiResult<T>) -> ApiResult<T> {
        let mut conn = self.pools.read.get()?;
        f(&mut conn)
    }

    /// [`Db::write`] for callers that are already off the async workers (CLI, jobs).
    pub fn write_blocking<T>(&self, f: impl FnOnce(&mut DbConn) -> ApiResult<T>) -> ApiResult<T> {
        let mut conn = self.pools.write.get()?;
        write_transaction(&mut conn, f)
    }

    /// Checks that the database answers a query, within a short timeout.
    pub fn ping_blocking(&self) -> ApiResult<()> {
        let timeout = self.pools.timeout.min(Duration::from_secs(2));
        let mut conn = self.pools.read.get_timeout(timeout)?;
        conn.batch_execute("SELECT 1").map_err(ApiError::from)
    }

    /// Pool figures for `/metrics`: (pool name, open connections, idle connections, maximum).
    pub fn pool_stats(&self) -> Vec<(&'static str, u32, u32, u32)> {
        [("read", &self.pools.read), ("write", &self.pools.write)]
            .into_iter()
            .map(|(name, pool)| {
                let state = pool.state();
                (name, state.connections, state.idle_connections, pool.max_size())
            })
            .collect()
    }
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
