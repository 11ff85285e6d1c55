//! The integration tests: one binary, a module per area. Every test runs on SQLite and on
//! PostgreSQL (see `support::on_both_backends!`).

mod support;

mod attack;
mod auth;
mod communities;
mod console;
mod contract;
mod database_files;
mod errors;
mod events;
mod hardening;
mod health;
mod households;
mod import_commit;
mod imports;
mod migrations;
mod openapi;
mod outage;
mod privacy;
mod scope;
mod seeds;
mod stats;
mod streets;
mod sync;
mod sync_batch;
mod tags;
mod tasks;
mod users;
mod visits;
