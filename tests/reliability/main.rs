//! Reliability tests against real `gridlight serve` processes on loopback ports: crashes
//! (SIGKILL), a PostgreSQL outage, write contention, two instances on one database (sharing
//! the task reconciler and the login lockout), retry storms, bad input and request ids in the
//! logs. A separate test binary, so that the API suite stays fast; each test is bounded in time
//! and prints its figures (writes acknowledged, found, lost, duplicates, answers seen) to stderr
//! even when it passes.
//!
//! Tests that run on both backends are named `<area>::sqlite` and `<area>::postgres`, as in the
//! API suite; the PostgreSQL-only ones carry neither suffix.

#[allow(dead_code, reason = "shared with the API suite; this binary uses only part of it")]
#[path = "../api/support/postgres.rs"]
mod postgres;

#[path = "../api/support/replica.rs"]
mod replica;

/// The tests `sqlite` and `postgres` of a module, each calling its `run(store)` with a store of
/// that backend (the PostgreSQL one skipped only where the API suite's would be).
#[macro_export]
macro_rules! on_both_stores {
    () => {
        #[test]
        fn sqlite() {
            run($crate::server::Store::sqlite());
        }

        #[test]
        fn postgres() {
            if let Some(store) = $crate::server::Store::postgres() {
                run(store);
            }
        }
    };
}

mod http;
mod load;
mod server;
mod webdriver;
mod world;

mod account_cache;
mod bad_input;
mod console_browser;
mod contention;
mod crash;
mod instances;
mod lockout;
mod outage;
mod request_ids;
mod retry_storm;
mod sync_devices;
mod webhooks;
