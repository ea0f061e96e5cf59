//! Africa's Talking: the SMS API client and the wire shapes of its webhooks.
//!
//! The same client talks to the live service, the sandbox and ChainPay's
//! own simulator; only the base URL differs.

pub mod sms;
