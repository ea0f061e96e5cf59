//! The ledger in PostgreSQL: finding accounts, posting balanced journal
//! entries, and proving afterwards that the books still balance.

pub mod accounts;
pub mod check;
pub mod post;
