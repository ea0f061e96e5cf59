//! ChainPay's domain library.
//!
//! Everything here is pure: parsing of values that arrive from the edges
//! (phones, PINs, amounts), the double-entry rules, and the cryptography the
//! gateway uses. It knows nothing of HTTP or SQL, so it is tested with fast
//! unit tests and reused by every channel (REST, USSD, SMS).

pub mod africastalking;
pub mod audit;
pub mod chain;
pub mod compliance;
pub mod crypto;
pub mod daraja;
pub mod fees;
pub mod fx;
pub mod ledger;
pub mod money;
pub mod notify;
pub mod phone;
pub mod pin;
pub mod sanctions;
pub mod transaction;
pub mod ussd;

pub use money::{Amount, CurrencyCode};
pub use phone::Msisdn;
pub use pin::Pin;
