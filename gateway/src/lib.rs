//! The ChainPay gateway: HTTP API, webhooks, jobs and CLI over PostgreSQL.
//! `main.rs` only parses the command line; everything lives here so the
//! integration tests can start the real application in-process.
//!
//! Dependencies run one way:
//!
//! - edges: `http` (REST and webhooks), `jobs`, `sim` (simulators), `cli`,
//!   `startup`;
//! - features: `movements`, `agents`, `treasury`, `vouchers`, `mpesa`,
//!   `reversals`, `ussd`, `auth`, `compliance`, `sms`, `statement`,
//!   `housekeeping`, `seed`;
//! - foundations: `state`, `error`, `four_eyes`, `ledger`, `chain`, `audit`, `rules`,
//!   `idempotency`, `transactions`, `clients`, `db`, `config`, `secrets`,
//!   `jwt`, `metrics`, `telemetry`.
//!
//! Nothing outside `http` knows about HTTP: features return
//! [`error::Error`], which each channel words in its own home.

pub mod agents;
pub mod audit;
pub mod auth;
pub mod bounded;
pub mod chain;
pub mod cli;
pub mod clients;
pub mod compliance;
pub mod config;
pub mod db;
pub mod error;
pub mod four_eyes;
pub mod housekeeping;
pub mod http;
pub mod idempotency;
pub mod jobs;
pub mod jwt;
pub mod kyc;
pub mod ledger;
pub mod merchants;
pub mod metrics;
pub mod movements;
pub mod mpesa;
pub mod rate_book;
pub mod reconciliation;
pub mod reversals;
pub mod rules;
pub mod secrets;
pub mod seed;
pub mod sim;
pub mod sms;
pub mod startup;
pub mod state;
pub mod statement;
pub mod telemetry;
pub mod transactions;
pub mod treasury;
pub mod ussd;
pub mod vouchers;
