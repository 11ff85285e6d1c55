//! The test harness: an in-process app built by the same `gridlight::app` as `main`, on a
//! fresh database per test, and helpers to call it.

pub mod fixtures;
pub mod postgres;
pub mod replica;
pub mod world;

use actix_http::Request;
use actix_service::ServiceExt;
use actix_service::boxed::{self, BoxService};
use actix_web::body::BoxBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use serde_json::Value;

use gridlight::AppState;
use gridlight::config::Config;
pub use gridlight::db::Backend;

/// Runs each named `async fn(TestApp)` once on SQLite and once on PostgreSQL, as
/// `<name>::sqlite` and `<name>::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[actix_web::test]
            async fn sqlite() {
                super::$name($crate::support::TestApp::new($crate::support::Backend::Sqlite).await).await
            }
            #[actix_web::test]
            async fn postgres() {
                if let Some(app) = $crate::support::TestApp::postgres().await {
                    super::$name(app).await
                }
            }
        }
    )*};
}

enum Storage {
    Sqlite(#[expect(dead_code, reason = "held so the directory outlives the test")] tempfile::TempDir),
    Postgres(#[expect(dead_code, reason = "dropping it drops the database")] postgres::TestDatabase),
    None,
}

pub struct TestApp {
    pub backend: Backend,
    pub state: web::Data<AppState>,
    service: BoxService<Request, ServiceResponse<BoxBody>, actix_web::Error>,
    _storage: Storage,
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: web::Bytes,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an RFC 9457 problem with this status and returns its body.
    #[track_caller]
    pub fn assert_problem(&self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "status {status}");
        let body = self.json();
        assert_eq!(body["status"], status);
        assert!(body["type"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
        assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
        assert!(body["detail"].is_string(), "{body}");
        assert!(body["code"].as_str().is_some_and(|c| !c.is_empty()), "a problem without a code: {body}");
        body
    }
}

pub const TEST_JWT_SECRET: &[u8] = b"test-secret-test-secret-test-secret-0123";

impl TestApp {
    pub async fn new(backend: Backend) -> TestApp {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = dir.path().join("gridlight.db").display().to_string();
                Self::with_config(test_config(&url), Storage::Sqlite(dir)).await
            }
            Backend::Postgres => Self::postgres().await.expect("PostgreSQL tests were skipped"),
        }
    }

    /// A PostgreSQL app, or `None` when `GRIDLIGHT_TEST_SKIP_POSTGRES=1` and no server can be had.
    /// Without that variable a missing server fails the test.
    pub async fn postgres() -> Option<TestApp> {
        let admin = match web::block(postgres::admin_url).await.expect("blocking pool") {
            Ok(url) => url,
            Err(e) if std::env::var("GRIDLIGHT_TEST_SKIP_POSTGRES").as_deref() == Ok("1") => {
                eprintln!("\n!!! SKIPPING a PostgreSQL test: {e}\n");
                return None;
            }
            Err(e) => panic!(
                "PostgreSQL is needed for this test and none could be reached or started: {e}\n\
                 Set GRIDLIGHT_TEST_POSTGRES_URL to a superuser URL, install PostgreSQL server \
                 binaries, or set GRIDLIGHT_TEST_SKIP_POSTGRES=1 to skip (CI never does)."
            ),
        };
        let database = web::block(move || postgres::TestDatabase::create(&admin)).await.expect("blocking pool");
        let config = test_config(&database.url);
        Some(Self::with_config(config, Storage::Postgres(database)).await)
    }

    /// An app on a database the test manages itself.
    pub async fn with_config_for_test(config: Config) -> TestApp {
        Self::with_config(config, Storage::None).await
    }

    async fn with_config(config: Config, storage: Storage) -> TestApp {
        let backend = gridlight::db::Backend::of_url(&config.db.database_url);
        let db = gridlight::open_database(&config).await.expect("open and migrate the test database");
        let state = AppState::new(db, config, TEST_JWT_SECRET.to_vec());
        let service = test::init_service(gridlight::app(state.clone())).await;
        let service = boxed::service(service.map(|res| res.map_into_boxed_body()));
        TestApp { backend, state, service, _storage: storage }
    }

    pub async fn call(&self, req: TestRequest) -> TestResponse {
        let res = test::call_service(&self.service, req.to_request()).await;
        let status = res.status();
        let headers = res.headers().clone();
        let body = test::read_body(res).await;
        TestResponse { status, headers, body }
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.call(TestRequest::get().uri(path)).await
    }
}

/// The data key of the PostgreSQL test databases (SQLite ones make a key file of their own).
pub const TEST_DATA_KEY: &str = "dGVzdC1kYXRhLWtleS10ZXN0LWRhdGEta2V5LTAxMjM=";

pub fn test_config(url: &str) -> Config {
    let mut config = Config::for_database(url);
    config.db.db_pool_size = 3;
    if gridlight::config::is_postgres_url(url) {
        config.db.data_key = Some(TEST_DATA_KEY.to_owned());
    }
    config
}

/// A row of SQLite's `EXPLAIN QUERY PLAN`: what the plan tests read.
#[derive(diesel::QueryableByName)]
pub struct PlanStep {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub detail: String,
}
