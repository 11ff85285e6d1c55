//! The one place where flags and `GRIDLIGHT_*` environment variables become settings.
//!
//! Every setting is a flag of the `gridlight` command with an environment variable of the same
//! name; the README lists them all. Tests build a [`Config`] with [`Config::for_database`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// How hard SQLite works to make a commit durable (`PRAGMA synchronous`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SqliteSynchronous {
    /// Every commit is fsynced before it is acknowledged: survives power loss.
    Full,
    /// WAL is fsynced at checkpoints only: survives a process crash, may lose the last commits on
    /// power loss.
    Normal,
}

impl SqliteSynchronous {
    pub fn pragma(self) -> &'static str {
        match self {
            SqliteSynchronous::Full => "FULL",
            SqliteSynchronous::Normal => "NORMAL",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Settings shared by every subcommand: where the data lives and how to reach it.
#[derive(Args, Clone, Debug)]
pub struct DbConfig {
    /// Database URL: a file path or `sqlite://path` for SQLite, `postgres://…` for PostgreSQL.
    #[arg(long, env = "GRIDLIGHT_DATABASE_URL", default_value = "gridlight.db", global = true)]
    pub database_url: String,

    /// Connections in the read pool; PostgreSQL has a write pool of the same size (SQLite: one writer).
    #[arg(long, env = "GRIDLIGHT_DB_POOL_SIZE", default_value_t = 8, global = true)]
    pub db_pool_size: u32,

    /// Longest wait, in milliseconds, for a pooled connection before a request answers 503.
    #[arg(long, env = "GRIDLIGHT_DB_TIMEOUT_MS", default_value_t = 5000, global = true)]
    pub db_timeout_ms: u64,

    /// SQLite durability: `full` (default, survives power loss) or `normal`.
    #[arg(long, env = "GRIDLIGHT_SQLITE_SYNCHRONOUS", value_enum, default_value_t = SqliteSynchronous::Full, global = true)]
    pub sqlite_synchronous: SqliteSynchronous,

    /// How long SQLite waits on a lock held by another process, in milliseconds.
    #[arg(long, env = "GRIDLIGHT_SQLITE_BUSY_TIMEOUT_MS", default_value_t = 5000, global = true)]
    pub sqlite_busy_timeout_ms: u64,

    /// Statements slower than this many milliseconds are logged (warn, `gridlight::slow_sql`)
    /// with their SQL text, never their bound values; 0 logs none.
    #[arg(long, env = "GRIDLIGHT_SLOW_QUERY_MS", default_value_t = 1000, global = true)]
    pub slow_query_ms: u64,

    /// How long, in seconds, an authenticated account is kept in memory so that requests with
    /// its token skip reading it (0: every request reads it). Changes of an account reach every
    /// instance at once regardless (on PostgreSQL through `LISTEN`/`NOTIFY`).
    #[arg(long, env = "GRIDLIGHT_ACCOUNT_CACHE_SECS", default_value_t = 60, global = true)]
    pub account_cache_secs: u64,

    /// Data keys that seal ID numbers and phones (32 bytes in base64 each, comma-separated, the
    /// current one first). With SQLite and none given they are kept beside the database file
    /// (`<database>.data-key`, mode 0600, generated once); PostgreSQL requires them.
    #[arg(long, env = "GRIDLIGHT_DATA_KEY", hide_env_values = true, global = true)]
    pub data_key: Option<String>,
}

impl DbConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.db_timeout_ms.max(1))
    }
}

/// Settings of the HTTP service (`gridlight serve`).
#[derive(Args, Clone, Debug)]
pub struct ServerConfig {
    /// Address and port to listen on.
    #[arg(long, env = "GRIDLIGHT_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,

    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "GRIDLIGHT_WORKERS")]
    pub workers: Option<usize>,

    /// Secret for signing access tokens (at least 32 bytes). With SQLite and none given, one is
    /// generated once and kept beside the database file (mode 0600); PostgreSQL requires it.
    #[arg(long, env = "GRIDLIGHT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "GRIDLIGHT_ACCESS_TOKEN_TTL", default_value_t = 900)]
    pub access_token_ttl: u64,

    /// Absolute lifetime of a login's refresh tokens, in seconds (default 30 days).
    #[arg(long, env = "GRIDLIGHT_REFRESH_TOKEN_TTL", default_value_t = 30 * 24 * 3600)]
    pub refresh_token_ttl: u64,

    /// Password checks (logins and password changes) of one account per window; when they all
    /// failed, the account is locked.
    #[arg(long, env = "GRIDLIGHT_LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: u32,

    /// Window, in seconds, in which failures are counted, and how long a lock lasts.
    #[arg(long, env = "GRIDLIGHT_LOGIN_LOCKOUT_SECS", default_value_t = 900)]
    pub login_lockout_secs: u64,

    /// How old a visit a grid worker may record, in days (secretaries are not limited).
    #[arg(long, env = "GRIDLIGHT_VISIT_MAX_AGE_DAYS", default_value_t = 30)]
    pub visit_max_age_days: u32,

    /// Visits of how many days (up to today) the sync feed carries to devices.
    #[arg(long, env = "GRIDLIGHT_SYNC_VISIT_DAYS", default_value_t = 90)]
    pub sync_visit_days: u32,

    /// Days the sync change log is kept: a device that has not synced for longer starts over
    /// (410 `resync_required`).
    #[arg(long, env = "GRIDLIGHT_SYNC_RETENTION_DAYS", default_value_t = 30)]
    pub sync_retention_days: u32,

    /// Seconds between two runs of the task reconcile job inside the server (0: never).
    #[arg(long, env = "GRIDLIGHT_RECONCILE_INTERVAL_SECS", default_value_t = 3600)]
    pub reconcile_interval_secs: u64,

    /// Years after which the personal fields of a removed household's members are erased by
    /// the server's job (names kept as initials); 0 keeps them.
    #[arg(long, env = "GRIDLIGHT_RETENTION_YEARS", default_value_t = 3)]
    pub retention_years: u32,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "GRIDLIGHT_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub body_limit: usize,

    /// Origins allowed to call the API from a browser, comma-separated (none by default).
    #[arg(long, env = "GRIDLIGHT_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Serve the console's session cookie without `Secure`, for a console reached over plain
    /// HTTP on this machine only: refused unless `bind` is a loopback address.
    #[arg(long, env = "GRIDLIGHT_CONSOLE_PLAIN_HTTP", default_value_t = false)]
    pub console_plain_http: bool,

    /// Megabytes of household pages kept to answer a community's secretaries and grid workers
    /// again while nothing on them has changed (src/api/cached.rs); 0 keeps none.
    #[arg(long, env = "GRIDLIGHT_PAGE_CACHE_MB", default_value_t = 32)]
    pub page_cache_mb: usize,

    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT.
    #[arg(long, env = "GRIDLIGHT_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    pub shutdown_timeout: u64,

    #[command(flatten)]
    pub webhooks: WebhookConfig,
}

/// Webhook delivery (docs/events.md).
#[derive(Args, Clone, Debug)]
pub struct WebhookConfig {
    /// Let webhooks reach loopback, private, link-local and other non-public addresses (a LAN's
    /// own receivers, tests). Off: such URLs are refused, and host names are checked again
    /// when each delivery resolves them.
    #[arg(long, env = "GRIDLIGHT_WEBHOOK_ALLOW_PRIVATE", default_value_t = false)]
    pub webhook_allow_private: bool,

    /// Subscriptions this instance delivers to at once (0: this instance delivers none; others
    /// sharing the PostgreSQL database do).
    #[arg(long, env = "GRIDLIGHT_WEBHOOK_CONCURRENCY", default_value_t = 8)]
    pub webhook_concurrency: usize,

    /// Seconds an event is retried before it is parked as a dead letter and its subscription
    /// turned off (default 3 days).
    #[arg(long, env = "GRIDLIGHT_WEBHOOK_RETRY_SECS", default_value_t = 259_200)]
    pub webhook_retry_secs: u64,

    /// Milliseconds before the first retry; each next waits twice as long (with jitter), at
    /// most an hour.
    #[arg(long, env = "GRIDLIGHT_WEBHOOK_BACKOFF_MS", default_value_t = 5_000)]
    pub webhook_backoff_ms: u64,

    /// Seconds a delivery may take in all (connecting, sending, the answer's headers and up to
    /// 4 KiB of its body).
    #[arg(long, env = "GRIDLIGHT_WEBHOOK_TIMEOUT_SECS", default_value_t = 10)]
    pub webhook_timeout_secs: u64,

    /// Seconds to connect to a receiver.
    #[arg(long, env = "GRIDLIGHT_WEBHOOK_CONNECT_TIMEOUT_SECS", default_value_t = 5)]
    pub webhook_connect_timeout_secs: u64,

    /// Days the delivery log is kept.
    #[arg(long, env = "GRIDLIGHT_WEBHOOK_LOG_DAYS", default_value_t = 7)]
    pub webhook_log_days: u32,
}

/// Logging settings, shared by every subcommand.
#[derive(Args, Clone, Debug)]
pub struct LogConfig {
    /// Log line format: `text` or `json`.
    #[arg(long, env = "GRIDLIGHT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` syntax, e.g. `info` or `gridlight=debug,info`.
    #[arg(long, env = "GRIDLIGHT_LOG", default_value = "info", global = true)]
    pub log: String,
}

/// Everything the running service needs.
#[derive(Clone, Debug)]
pub struct Config {
    pub db: DbConfig,
    pub server: ServerConfig,
}

impl Config {
    /// Defaults for everything but the database, as the CLI would have them with no flags and
    /// no environment; used by tests.
    pub fn for_database(url: &str) -> Config {
        use clap::Parser;
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            db: DbConfig,
            #[command(flatten)]
            server: ServerConfig,
        }
        let d = Defaults::parse_from(["gridlight"]);
        let mut db = d.db;
        db.database_url = url.to_owned();
        db.data_key = None;
        let mut server = d.server;
        server.jwt_secret = None;
        server.cors_origins.clear();
        Config { db, server }
    }
}

/// Where a SQLite URL points on disk (`None` for PostgreSQL or an in-memory database).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    if is_postgres_url(url) {
        return None;
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .or_else(|| url.strip_prefix("file:"))
        .unwrap_or(url);
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(PathBuf::from(path))
}

/// Whether `bind` (`host:port`) listens on a loopback address only.
pub fn is_loopback_bind(bind: &str) -> bool {
    match bind.parse::<std::net::SocketAddr>() {
        Ok(addr) => addr.ip().is_loopback(),
        Err(_) => bind.rsplit_once(':').is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost")),
    }
}

pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(sqlite_path("gridlight.db"), Some(PathBuf::from("gridlight.db")));
        assert_eq!(sqlite_path("sqlite:///var/lib/g.db"), Some(PathBuf::from("/var/lib/g.db")));
        assert_eq!(sqlite_path("postgres://u@h/db"), None);
        assert!(is_postgres_url("postgresql://h/db"));
        assert!(is_loopback_bind("127.0.0.1:8080") && is_loopback_bind("[::1]:80") && is_loopback_bind("localhost:1"));
        assert!(!is_loopback_bind("0.0.0.0:8080") && !is_loopback_bind("10.0.0.2:80"));
    }
}
