//! Africa's Talking: the wire shapes of its SMS API. (The HTTP client is
//! the gateway's, `sms::client`; nothing in core does network I/O.)

pub mod sms;
pub mod webhooks;
