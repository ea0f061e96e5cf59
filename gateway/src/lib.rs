//! The ChainPay gateway: HTTP API, webhooks, jobs and CLI over PostgreSQL.
//! `main.rs` only parses the command line; everything lives here so the
//! integration tests can start the real application in-process.

pub mod audit;
pub mod auth;
pub mod chain;
pub mod cli;
pub mod compliance;
pub mod config;
pub mod db;
pub mod housekeeping;
pub mod http;
pub mod idempotency;
pub mod jobs;
pub mod ledger;
pub mod metrics;
pub mod movements;
pub mod mpesa;
pub mod reversals;
pub mod rules;
pub mod secrets;
pub mod seed;
pub mod sim;
pub mod sms;
pub mod startup;
pub mod statement;
pub mod telemetry;
pub mod transactions;
pub mod ussd;
