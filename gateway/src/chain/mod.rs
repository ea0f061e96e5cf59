//! The blockchain audit layer in PostgreSQL.
//!
//! Every money movement queues its transaction in `chain_pending` inside
//! the transaction that moves the money ([`crate::ledger::post`]). The
//! sealer ([`seal`]) turns the queue into signed blocks, one instance at a
//! time; [`validate`] recomputes everything from the stored transaction
//! rows; [`proof`] serves RFC 9162 inclusion proofs.

pub mod authority;
pub mod blocks;
pub mod leaf;
pub mod proof;
pub mod seal;
pub mod validate;

/// Advisory lock held while sealing, so instances never seal competing blocks.
pub const SEAL_LOCK: i64 = 0x4348_4149_4e42_4c4b;
