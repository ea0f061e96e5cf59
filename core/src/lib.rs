//! ChainPay's domain library.
//!
//! Everything here is pure: parsing of values that arrive from the edges
//! (phones, PINs, amounts), the double-entry rules, FX, fees and AML
//! decisions, the lifecycles of records, the chain's hashing and signing,
//! the USSD menu machine, every customer sentence (USSD screens and SMS, in
//! English and Swahili), and the wire formats of Daraja and Africa's
//! Talking. It does no I/O at all — no HTTP, no SQL, no clock but
//! `now_micros`, no network clients — so it is tested with fast unit tests
//! and reused by every channel (REST, USSD, SMS) and by the console (wasm).

pub mod africastalking;
pub mod audit;
pub mod chain;
pub mod compliance;
pub mod crypto;
pub mod daraja;
pub mod fees;
pub mod fx;
pub mod kyc;
pub mod lang;
pub mod ledger;
pub mod money;
pub mod notify;
pub mod phone;
pub mod pin;
pub mod refusal;
pub mod sanctions;
pub mod statement;
pub mod status;
pub mod transaction;
pub mod ussd;
pub mod voucher;

pub use lang::Lang;
pub use money::{Amount, CurrencyCode};
pub use phone::Msisdn;
pub use pin::Pin;
