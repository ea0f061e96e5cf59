//! The blockchain audit layer's rules: Merkle trees (RFC 9162) and signed
//! block headers. The hashing rules are fixed by the API contract so that
//! anyone holding a receipt can verify it without ChainPay's code.

pub mod block;
pub mod merkle;
pub mod receipt;
