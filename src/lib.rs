//! Gridlight: community grid governance with the traffic-light household mechanism.
//!
//! [`app`] builds the whole HTTP application; `main` and the integration tests both use it, so
//! the tests exercise exactly what is served.

pub mod api;
pub mod auth;
pub mod config;
pub mod console;
pub mod db;
pub mod domain;
pub mod error;
pub mod jobs;
pub mod metrics;
pub mod ops;
pub mod roster;
pub mod seed;
pub mod store;
pub mod telemetry;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Compress, Condition, ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, http, web};
use anyhow::Context;

use crate::config::Config;
use crate::db::Db;
use crate::metrics::Metrics;

/// What every handler can reach.
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub metrics: Metrics,
    /// Pages kept to be answered again ([`api::cached`]).
    pub pages: Arc<api::cached::Pages>,
    /// Key material for signing access tokens.
    pub jwt_secret: Vec<u8>,
}

impl AppState {
    pub fn new(db: Db, config: Config, jwt_secret: Vec<u8>) -> web::Data<AppState> {
        let pages = Arc::new(api::cached::Pages::new(config.server.page_cache_mb.saturating_mul(1 << 20)));
        web::Data::new(AppState { db, config: Arc::new(config), metrics: Metrics::new(), pages, jwt_secret })
    }
}

/// The application, with its middleware: request ids and metrics outermost, then compression,
/// then the problem+json rewriting of error responses, then CORS.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let body_limit = state.config.server.body_limit;
    let origins = state.config.server.cors_origins.clone();
    App::new()
        .app_data(state)
        .app_data(web::JsonConfig::default().limit(body_limit).error_handler(api::json_error))
        .app_data(web::PayloadConfig::new(body_limit))
        .app_data(web::QueryConfig::default().error_handler(api::query_error))
        .app_data(web::PathConfig::default().error_handler(api::path_error))
        .configure(api::routes)
        .configure(console::routes)
        .default_service(web::to(api::no_route))
        .wrap(from_fn(api::input::guard_path))
        .wrap(Condition::new(!origins.is_empty(), cors(&origins)))
        .wrap(ErrorHandlers::new().default_handler(api::problemify))
        .wrap(Compress::default())
        .wrap(from_fn(telemetry::observe))
}

fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([http::header::AUTHORIZATION, http::header::CONTENT_TYPE, http::header::IF_MATCH])
        .expose_headers([http::header::ETAG, http::header::HeaderName::from_static("x-request-id")])
        .max_age(3600);
    for origin in origins {
        cors = cors.allowed_origin(origin.trim());
    }
    cors
}

/// Opens the database and applies pending migrations, off the async workers.
pub async fn open_database(config: &Config) -> anyhow::Result<Db> {
    let db_config = config.db.clone();
    let db = web::block(move || -> anyhow::Result<Db> {
        let db = Db::connect(&db_config)?;
        let applied = db.migrate()?;
        if !applied.is_empty() {
            tracing::info!(count = applied.len(), "applied migrations");
        }
        Ok(db)
    })
    .await
    .context("database start-up was interrupted")??;
    Ok(db)
}

/// `gridlight serve`: migrate, then serve until SIGTERM/SIGINT, letting in-flight requests
/// finish.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    if config.server.console_plain_http && !config::is_loopback_bind(&config.server.bind) {
        anyhow::bail!(
            "GRIDLIGHT_CONSOLE_PLAIN_HTTP is only for a console on this machine: bind to a loopback \
             address (127.0.0.1 or ::1), or serve the console over HTTPS"
        );
    }
    let jwt_secret = auth::secret::resolve(config.server.jwt_secret.as_deref(), &config.db.database_url)?;
    let db = open_database(&config).await?;
    // A commit that stopped with the last process is reported failed, never left half-applied
    // without saying so. On SQLite only one server writes the file: none can be under way.
    let silence = match db.backend() {
        db::Backend::Sqlite => Duration::ZERO,
        db::Backend::Postgres => jobs::IMPORT_SILENCE,
    };
    let handle = db.clone();
    web::block(move || jobs::end_abandoned_imports(&handle, silence))
        .await
        .context("ending abandoned imports was interrupted")??;
    let bind = config.server.bind.clone();
    let workers = config.server.workers;
    let shutdown = config.server.shutdown_timeout;
    let reconcile_every = config.server.reconcile_interval_secs;
    let sync_retention = config.server.sync_retention_days;
    let retention_years = config.server.retention_years;
    let throttle = auth::throttle::Throttle::of(&config.server);
    let webhook_settings = config.server.webhooks.clone();
    db.listen_for_account_changes(config.db.account_cache_secs);
    let state = AppState::new(db.clone(), config, jwt_secret);
    let mut server = HttpServer::new(move || app(state.clone()))
        .bind(&bind)
        .with_context(|| format!("cannot listen on {bind}"))?
        .shutdown_timeout(shutdown)
        // Pages of households span several TCP segments: without this, Nagle's algorithm and the
        // client's delayed ACK hold the last one back by ~40 ms.
        .tcp_nodelay(true)
        .client_request_timeout(Duration::from_secs(30));
    if let Some(n) = workers {
        server = server.workers(n.max(1));
    }
    if reconcile_every > 0 {
        jobs::spawn_reconciler(
            db.clone(),
            Duration::from_secs(reconcile_every),
            sync_retention,
            retention_years,
            throttle,
        );
    }
    jobs::spawn_event_clock(db.clone(), Duration::from_secs(60), sync_retention, webhook_settings.webhook_log_days);
    jobs::spawn_suggestion_keeper(db.clone(), Duration::from_secs(2));
    if webhook_settings.webhook_concurrency > 0 {
        webhooks::worker::spawn(db.clone(), webhooks::worker::Settings::of(&webhook_settings))?;
    }
    tracing::info!(bind = %bind, backend = db.backend().name(), "serving");
    server.run().await?;
    tracing::info!("stopped");
    Ok(())
}
