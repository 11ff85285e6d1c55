//! Prometheus metrics: requests by route and status, a latency histogram, and pool use.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::api::cached::Pages;
use crate::db::Db;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pool: IntGaugeVec,
    account_lookups: IntCounterVec,
    account_listening: IntGauge,
    page_lookups: IntCounterVec,
    page_bytes: IntGauge,
    /// Held while the cache's counts are carried over, so that two scrapes never add them twice.
    carry: std::sync::Arc<std::sync::Mutex<()>>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("gridlight_http_requests_total", "HTTP requests answered, by route template and status"),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "gridlight_http_request_duration_seconds",
                "Time to answer a request, by route template",
            )
            .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["method", "route"],
        )
        .expect("valid metric");
        let pool = IntGaugeVec::new(
            Opts::new("gridlight_db_pool_connections", "Database pool connections, by pool and state"),
            &["pool", "state"],
        )
        .expect("valid metric");
        let account_lookups = IntCounterVec::new(
            Opts::new(
                "gridlight_account_cache_lookups_total",
                "Authenticated requests whose account came from the account cache (hit) or the database (miss)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let account_listening = IntGauge::new(
            "gridlight_account_cache_listening",
            "1 while this instance hears account changes from PostgreSQL (LISTEN/NOTIFY)",
        )
        .expect("valid metric");
        let page_lookups = IntCounterVec::new(
            Opts::new(
                "gridlight_page_cache_lookups_total",
                "Household pages of a community's callers answered from kept bytes (hit) or read (miss)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let page_bytes =
            IntGauge::new("gridlight_page_cache_bytes", "Bytes the kept pages take").expect("valid metric");
        for m in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(pool.clone()),
            Box::new(account_lookups.clone()),
            Box::new(account_listening.clone()),
            Box::new(page_lookups.clone()),
            Box::new(page_bytes.clone()),
        ] {
            registry.register(m).expect("metric registered once");
        }
        Metrics {
            registry,
            requests,
            latency,
            pool,
            account_lookups,
            account_listening,
            page_lookups,
            page_bytes,
            carry: Default::default(),
        }
    }

    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests.with_label_values(&[method, route, &status.to_string()]).inc();
        self.latency.with_label_values(&[method, route]).observe(seconds);
    }

    /// The exposition text, with pool and cache figures read at scrape time.
    pub fn render(&self, db: &Db, pages: &Pages) -> String {
        for (name, open, idle, max) in db.pool_stats() {
            self.pool.with_label_values(&[name, "open"]).set(i64::from(open));
            self.pool.with_label_values(&[name, "idle"]).set(i64::from(idle));
            self.pool.with_label_values(&[name, "in_use"]).set(i64::from(open.saturating_sub(idle)));
            self.pool.with_label_values(&[name, "max"]).set(i64::from(max));
        }
        let accounts = db.accounts();
        let _carrying = self.carry.lock().unwrap_or_else(|e| e.into_inner());
        let carried = [(&self.account_lookups, accounts.lookups()), (&self.page_lookups, pages.lookups())];
        for (counters, (hits, misses)) in carried {
            for (result, now) in [("hit", hits), ("miss", misses)] {
                let counter = counters.with_label_values(&[result]);
                counter.inc_by(now.saturating_sub(counter.get()));
            }
        }
        self.page_bytes.set(i64::try_from(pages.bytes()).unwrap_or(i64::MAX));
        self.account_listening.set(i64::from(accounts.is_listening()));
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding cannot fail");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
