//! The gateway's integration tests: the real application on a random port,
//! over real HTTP, against a fresh PostgreSQL database per test. One test
//! binary (one link, one embedded cluster per run), a module per area.
#![allow(clippy::unwrap_used)]

mod support;

mod admin;
mod agents;
mod audit;
mod auth;
mod blockchain;
mod cli;
mod compliance;
mod console;
mod desk;
mod engine;
mod fx;
mod journey;
mod merchants;
mod mpesa;
mod ops;
mod payment_requests;
mod payouts;
mod reconciliation;
mod scaling;
mod security;
mod sms;
mod ussd;
mod vouchers;
mod wallet;
