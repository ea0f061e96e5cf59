//! Who is calling: tokens, the PIN lockout and rate limiting.

pub mod jwt;
pub mod lockout;
pub mod rate_limit;
