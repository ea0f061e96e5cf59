//! SMS through Africa's Talking: a transactional outbox written with each
//! movement, the worker that sends it, delivery reports, and the inbound
//! commands customers text in (`BAL`, `MINI`, `HELP`). What every message
//! says is core's (`chainpay_core::notify`).

pub mod commands;
pub mod outbox;
pub mod reports;
pub mod worker;
