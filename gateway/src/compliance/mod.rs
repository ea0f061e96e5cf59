//! AML enforcement inside money movements: tier limits and rolling windows
//! ([`limits`]), sanctions screening ([`sanctions`]) and suspicious-activity
//! reports ([`sars`]). A refusal is an [`crate::error::Error::Compliance`]
//! naming the rule; each channel words it in its own home.

pub mod limits;
pub mod sanctions;
pub mod sars;
