//! Who is calling: tokens, the PIN lockout and rate limiting.

pub mod accounts;
pub mod cache;
pub mod lockout;
pub mod pins;
pub mod rate_limit;
pub mod reset;
pub mod session;
