//! HTTP clients of the services ChainPay talks to: Safaricom Daraja and
//! Africa's Talking. Each talks to the real service, its sandbox, a
//! compatible host, or ChainPay's own simulator exactly alike; only the
//! base URL differs. The wire formats are core's.

pub mod africastalking;
pub mod daraja;
