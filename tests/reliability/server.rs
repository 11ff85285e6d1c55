//! Real `gridlight` processes: the database a test runs on ([`Store`]), `gridlight serve` on a
//! loopback port that is killed when its guard drops ([`Server`]), and the other subcommands.

use std::fs::File;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, SqliteConnection};
use rand::Rng;

use gridlight::db::{Backend, DbConn};

use crate::http::Client;
use crate::postgres::{Cluster, TestDatabase, admin_url};

pub const JWT_SECRET: &str = "reliability-secret-reliability-secret-0123";
/// The data key of every server and command (required with PostgreSQL).
pub const DATA_KEY: &str = "cmVsaWFiaWxpdHktZGF0YS1rZXktcmVsaWFiaWxpdHk=";

/// How long a started server may take to answer `/readyz`.
const READY_WITHIN: Duration = Duration::from_secs(60);

enum Hold {
    Nothing,
    /// A fresh database on the shared test server, dropped at the end.
    Database(#[expect(dead_code, reason = "dropping it drops the database")] TestDatabase),
    /// A cluster of the test's own, stopped and deleted at the end.
    Cluster(Cluster),
}

/// Where a test's data lives, and a scratch directory for its logs.
pub struct Store {
    pub backend: Backend,
    pub url: String,
    pub dir: tempfile::TempDir,
    // Dropped after the servers that use it (they are declared later in each test).
    hold: Hold,
}

/// `None` (with a loud note) when PostgreSQL cannot be had and the caller allowed skipping;
/// a failure otherwise, as in the API suite.
fn skip_or_fail(e: String) -> Option<Store> {
    if std::env::var("GRIDLIGHT_TEST_SKIP_POSTGRES").as_deref() == Ok("1") {
        eprintln!("\n!!! SKIPPING a PostgreSQL reliability test: {e}\n");
        None
    } else {
        panic!(
            "PostgreSQL is needed for this test and none could be reached or started: {e}\n\
             Set GRIDLIGHT_TEST_POSTGRES_URL, install PostgreSQL server binaries, or set \
             GRIDLIGHT_TEST_SKIP_POSTGRES=1 to skip (CI never does)."
        )
    }
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("gridlight-reliability-").tempdir().expect("temporary directory")
}

impl Store {
    /// A fresh SQLite file.
    pub fn sqlite() -> Store {
        let dir = scratch();
        let url = dir.path().join("gridlight.db").display().to_string();
        Store { backend: Backend::Sqlite, url, dir, hold: Hold::Nothing }
    }

    /// A fresh database on the shared PostgreSQL test server.
    pub fn postgres() -> Option<Store> {
        let admin = match admin_url() {
            Ok(url) => url,
            Err(e) => return skip_or_fail(e),
        };
        let db = TestDatabase::create(&admin);
        Some(Store { backend: Backend::Postgres, url: db.url.clone(), dir: scratch(), hold: Hold::Database(db) })
    }

    /// A PostgreSQL cluster of the test's own, to stop and start; `durable` keeps fsync and
    /// synchronous commits on, as in production.
    pub fn postgres_cluster(durable: bool) -> Option<Store> {
        match Cluster::start(durable) {
            Ok(cluster) => Some(Store {
                backend: Backend::Postgres,
                url: cluster.url("postgres"),
                dir: scratch(),
                hold: Hold::Cluster(cluster),
            }),
            Err(e) => skip_or_fail(e),
        }
    }

    pub fn cluster(&self) -> &Cluster {
        match &self.hold {
            Hold::Cluster(c) => c,
            _ => panic!("this store has no cluster of its own"),
        }
    }

    /// A direct connection for checking what was stored (not through the server).
    pub fn connect(&self) -> DbConn {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = SqliteConnection::establish(&self.url).expect("open the SQLite file");
                conn.batch_execute("PRAGMA busy_timeout = 10000;").expect("busy timeout");
                DbConn::Sqlite(conn)
            }
            Backend::Postgres => DbConn::Postgres(PgConnection::establish(&self.url).expect("connect to PostgreSQL")),
        }
    }

    /// Runs a `gridlight` subcommand against this database.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gridlight"));
        clear_gridlight_env(&mut cmd);
        cmd.args(args)
            .env("GRIDLIGHT_DATABASE_URL", &self.url)
            .env("GRIDLIGHT_DATA_KEY", DATA_KEY)
            .env("GRIDLIGHT_LOG", "warn")
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run gridlight");
        if let Some(input) = stdin {
            child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
        }
        let out = child.wait_with_output().expect("gridlight output");
        assert!(
            out.status.success(),
            "gridlight {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

fn clear_gridlight_env(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("GRIDLIGHT_") {
            cmd.env_remove(name);
        }
    }
}

/// A loopback port below the kernel's ephemeral range, so that no outgoing connection (ours or
/// another process's) takes it while the server is down between a kill and a restart.
fn free_port() -> u16 {
    let mut rng = rand::rng();
    for _ in 0..200 {
        let port = rng.random_range(20_000..32_000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between 20000 and 32000");
}

/// A `gridlight serve` process on a loopback port, SIGKILLed when dropped. A restart uses the
/// same port, so clients keep their address across crashes.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub label: String,
    env: Vec<(String, String)>,
    /// The subcommand and its flags (`serve`, or `serve --demo`).
    args: Vec<String>,
    log: PathBuf,
    pub starts: u32,
}

impl Server {
    /// Starts `gridlight serve` on `store` with extra `GRIDLIGHT_*` settings, and waits until it
    /// is ready.
    pub fn start(store: &Store, label: &str, settings: &[(&str, &str)]) -> Server {
        Server::start_with(store, label, &["serve"], settings)
    }

    /// [`Server::start`] with other arguments, e.g. `serve --demo`.
    pub fn start_with(store: &Store, label: &str, args: &[&str], settings: &[(&str, &str)]) -> Server {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut env: Vec<(String, String)> = vec![
            ("GRIDLIGHT_DATABASE_URL".into(), store.url.clone()),
            ("GRIDLIGHT_BIND".into(), addr.to_string()),
            ("GRIDLIGHT_JWT_SECRET".into(), JWT_SECRET.into()),
            ("GRIDLIGHT_DATA_KEY".into(), DATA_KEY.into()),
            ("GRIDLIGHT_LOG".into(), "warn".into()),
            ("GRIDLIGHT_WORKERS".into(), "2".into()),
        ];
        for (name, value) in settings {
            env.retain(|(n, _)| n != name);
            env.push(((*name).to_owned(), (*value).to_owned()));
        }
        let log = store.dir.path().join(format!("{label}.log"));
        let args = args.iter().map(|a| (*a).to_owned()).collect();
        let mut server = Server { child: None, addr, label: label.to_owned(), env, args, log, starts: 0 };
        server.restart();
        server
    }

    pub fn client(&self) -> Client {
        Client::new(self.addr)
    }

    /// Starts the process again (after [`Server::kill`]) and waits until it is ready.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.label);
        let log = File::options().create(true).append(true).open(&self.log).expect("server log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gridlight"));
        clear_gridlight_env(&mut cmd);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(n, v)| (n, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        self.child = Some(cmd.spawn().expect("start gridlight serve"));
        self.starts += 1;
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_WITHIN;
        let client = self.client().with_timeout(Duration::from_secs(2));
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                panic!("{} exited during start-up ({status}):\n{}", self.label, self.log_tail(40));
            }
            if client.get("/readyz", None).is_ok_and(|r| r.status == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready within {READY_WITHIN:?}:\n{}",
                self.label,
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL (what `Child::kill` sends on unix): no shutdown, no flushing, like a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Lines of the server's log that report internal errors (answered 500, logged with their
    /// cause).
    pub fn logged_errors(&self) -> Vec<String> {
        self.log_lines("internal error")
    }

    /// Lines of the server's log (over all its runs) that contain `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- last lines of {} ({}):\n{}", self.label, self.log.display(), self.log_tail(30));
        }
    }
}

/// Prints a test's figures where they are seen even when the test passes (stderr, past the
/// test harness's capture), one block in one write so that it does not mix with other output.
pub fn report(test: &str, lines: &[String]) {
    let mut text = format!("\n[reliability] {test}\n");
    for line in lines {
        text.push_str("    ");
        text.push_str(line);
        text.push('\n');
    }
    let _ = std::io::stderr().write_all(text.as_bytes());
}
