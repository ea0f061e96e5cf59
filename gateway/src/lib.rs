//! The ChainPay gateway: HTTP API, webhooks, jobs and CLI over PostgreSQL.
//! `main.rs` only parses the command line; everything lives here so the
//! integration tests can start the real application in-process.

pub mod audit;
pub mod auth;
pub mod cli;
pub mod compliance;
pub mod config;
pub mod db;
pub mod http;
pub mod idempotency;
pub mod jobs;
pub mod ledger;
pub mod metrics;
pub mod movements;
pub mod rules;
pub mod secrets;
pub mod seed;
pub mod startup;
pub mod telemetry;
pub mod transactions;
