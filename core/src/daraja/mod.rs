//! Safaricom Daraja (M-Pesa): the wire shapes of STK Push, STK Query, B2C
//! and their callbacks, the result codes and their meanings, the password
//! and timestamp rules and the phone and amount limits. The HTTP client is
//! the gateway's (`mpesa::client`); nothing in core does network I/O.

pub mod codes;
pub mod queries;
pub mod wire;

use chrono::{DateTime, FixedOffset, Utc};

use crate::phone::Msisdn;

/// Safaricom sandbox and production bases.
pub const SANDBOX_URL: &str = "https://sandbox.safaricom.co.ke";
pub const PRODUCTION_URL: &str = "https://api.safaricom.co.ke";
/// Safaricom's public sandbox shortcode and passkey.
pub const SANDBOX_SHORTCODE: &str = "174379";
pub const SANDBOX_PASSKEY: &str =
    "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919";

/// Largest and smallest single M-Pesa payment (KES), per Safaricom's limits.
pub const MAX_KES: i64 = 250_000;
pub const MIN_B2C_KES: i64 = 10;

/// Daraja's `Timestamp`: `YYYYMMDDHHmmss` in Kenya time (UTC+3).
pub fn timestamp(at: DateTime<Utc>) -> String {
    let kenya = FixedOffset::east_opt(3 * 3600)
        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset"));
    at.with_timezone(&kenya).format("%Y%m%d%H%M%S").to_string()
}

/// Daraja's `Password`: base64(shortcode ‖ passkey ‖ timestamp).
pub fn password(shortcode: &str, passkey: &str, timestamp: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{shortcode}{passkey}{timestamp}"))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("M-Pesa needs a Safaricom number (07XX or 011X)")]
pub struct NotSafaricom;

/// The number as Daraja wants it (`2547XXXXXXXX` / `2541XXXXXXXX`), for
/// Safaricom prefixes only: 070–072, 074–079, 010 and 011.
pub fn daraja_phone(phone: &Msisdn) -> Result<String, NotSafaricom> {
    let digits = &phone.as_str()[1..];
    let national = digits.strip_prefix("254").ok_or(NotSafaricom)?;
    let safaricom = [
        "70", "71", "72", "74", "75", "76", "77", "78", "79", "10", "11",
    ]
    .iter()
    .any(|prefix| national.starts_with(prefix));
    if safaricom && national.len() == 9 {
        Ok(digits.to_owned())
    } else {
        Err(NotSafaricom)
    }
}

/// Whole shillings of a KES amount in cents; `None` if it has cents.
pub fn whole_shillings(amount_minor: i64) -> Option<i64> {
    (amount_minor > 0 && amount_minor % 100 == 0).then_some(amount_minor / 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_base64_of_shortcode_passkey_and_kenya_time() {
        let at = DateTime::from_timestamp(1_764_082_268, 0).unwrap(); // 14:51:08 UTC
        let stamp = timestamp(at);
        assert_eq!(stamp, "20251125175108");
        assert_eq!(
            password("174379", SANDBOX_PASSKEY, &stamp),
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("174379{SANDBOX_PASSKEY}20251125175108")
            )
        );
    }

    #[test]
    fn only_safaricom_numbers_are_accepted_in_daraja_form() {
        let phone = |raw| Msisdn::parse(raw).unwrap();
        assert_eq!(daraja_phone(&phone("0712345678")).unwrap(), "254712345678");
        assert_eq!(
            daraja_phone(&phone("+254110345678")).unwrap(),
            "254110345678"
        );
        assert!(
            daraja_phone(&phone("0732345678")).is_err(),
            "073 is not Safaricom"
        );
        assert!(daraja_phone(&phone("+2348031234567")).is_err());
    }

    #[test]
    fn only_whole_shillings_go_to_mpesa() {
        assert_eq!(whole_shillings(10_000), Some(100));
        assert_eq!(whole_shillings(10_050), None);
        assert_eq!(whole_shillings(0), None);
    }
}
