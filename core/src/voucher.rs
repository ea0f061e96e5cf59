//! Offline vouchers: the code a customer types and the signed form anyone
//! can check without the server.
//!
//! A code is 16 digits — 15 random and a Luhn check digit — so it can be
//! typed on a feature phone's keypad and a slip of one digit is caught
//! before it counts as a wrong guess. 10^15 codes against a handful of
//! guesses per user per day makes guessing hopeless.
//!
//! The signed form is `cpv1.<serial>.<amount>.<currency>.<expires>.<signature>`:
//! the voucher key's Ed25519 signature (hex) of the SHA3-256 of
//! `chainpay-voucher-v1|serial|amount|currency|expires`, where `amount` is in
//! minor units and `expires` is a Unix time in seconds.

use chrono::{DateTime, Utc};
use sha3::{Digest, Sha3_256};

use crate::chain::block::{verify_signature, AuthorityKey};
use crate::crypto::signing::SigningKey;

/// Digits in a code, check digit included.
pub const CODE_DIGITS: usize = 16;
const PREFIX: &str = "cpv1";

/// The Luhn check digit that completes `digits`.
fn luhn_digit(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(*d);
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// A fresh random code.
pub fn new_code() -> String {
    let mut digits: Vec<u8> = Vec::with_capacity(CODE_DIGITS);
    while digits.len() < CODE_DIGITS - 1 {
        // Rejection sampling keeps every digit uniform.
        for byte in crate::crypto::random_bytes::<32>() {
            if byte < 250 && digits.len() < CODE_DIGITS - 1 {
                digits.push(byte % 10);
            }
        }
    }
    let check = luhn_digit(&digits);
    digits.push(check);
    digits.iter().map(|d| char::from(b'0' + d)).collect()
}

/// A typed code with spaces and dashes dropped, if it has the right length
/// and check digit.
pub fn parse_code(typed: &str) -> Option<String> {
    let code: String = typed.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if code.len() != CODE_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: Vec<u8> = code.bytes().map(|b| b - b'0').collect();
    (luhn_digit(&digits[..CODE_DIGITS - 1]) == digits[CODE_DIGITS - 1]).then_some(code)
}

/// `1234 5678 9012 3456`, as an SMS shows a code.
pub fn grouped(code: &str) -> String {
    code.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the database keeps instead of the code: HMAC-SHA3-256 under a
/// server key, so a copy of the table redeems nothing.
pub fn digest(key: &SigningKey, code: &str) -> Vec<u8> {
    hex::decode(key.sign(code.as_bytes())).unwrap_or_default()
}

/// What a signed voucher states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    pub serial: i64,
    pub amount_minor: i64,
    pub currency: String,
    pub expires_at: DateTime<Utc>,
}

impl Terms {
    fn hash(&self) -> [u8; 32] {
        let message = format!(
            "chainpay-voucher-v1|{}|{}|{}|{}",
            self.serial,
            self.amount_minor,
            self.currency,
            self.expires_at.timestamp()
        );
        Sha3_256::digest(message.as_bytes()).into()
    }

    /// The signed form.
    pub fn sign(&self, key: &AuthorityKey) -> String {
        format!(
            "{PREFIX}.{}.{}.{}.{}.{}",
            self.serial,
            self.amount_minor,
            self.currency,
            self.expires_at.timestamp(),
            key.sign(&self.hash())
        )
    }
}

/// Why a signed voucher does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedError {
    #[error(
        "not a ChainPay voucher (expected cpv1.<serial>.<amount>.<currency>.<expires>.<signature>)"
    )]
    Malformed,
    #[error("the signature does not match: the voucher was altered or not issued by this key")]
    BadSignature,
}

/// Checks a signed form against the voucher key's public half (hex) and
/// returns what it states. Expiry is the caller's to judge.
pub fn verify(signed: &str, public_key_hex: &str) -> Result<Terms, SignedError> {
    let parts: Vec<&str> = signed.trim().split('.').collect();
    let [PREFIX, serial, amount, currency, expires, signature] = parts.as_slice() else {
        return Err(SignedError::Malformed);
    };
    let number = |s: &str| s.parse::<i64>().ok().filter(|n| *n > 0);
    let (Some(serial), Some(amount), Some(expires)) =
        (number(serial), number(amount), number(expires))
    else {
        return Err(SignedError::Malformed);
    };
    let currency_ok = currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase());
    let expires_at = DateTime::from_timestamp(expires, 0)
        .filter(|_| currency_ok)
        .ok_or(SignedError::Malformed)?;
    let terms = Terms {
        serial,
        amount_minor: amount,
        currency: (*currency).to_owned(),
        expires_at,
    };
    if verify_signature(public_key_hex, &terms.hash(), signature) {
        Ok(terms)
    } else {
        Err(SignedError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_sixteen_digits_that_pass_their_own_check() {
        for _ in 0..200 {
            let code = new_code();
            assert_eq!(code.len(), CODE_DIGITS);
            assert_eq!(parse_code(&code).as_deref(), Some(code.as_str()));
            assert_eq!(parse_code(&grouped(&code)).as_deref(), Some(code.as_str()));
        }
        assert_ne!(new_code(), new_code());
    }

    #[test]
    fn a_mistyped_digit_or_a_swap_fails_the_check() {
        assert_eq!(
            parse_code("4539 1488 0343 6467").as_deref(),
            Some("4539148803436467")
        );
        assert_eq!(parse_code("4539 1488 0343 6468"), None, "one digit off");
        assert_eq!(
            parse_code("4539 1488 0343 6476"),
            None,
            "two digits swapped"
        );
        for bad in ["", "1234", "45391488034364670", "4539-1488-0343-646a"] {
            assert_eq!(parse_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_signed_voucher_verifies_and_any_change_breaks_it() {
        let key = AuthorityKey::from_bytes(&[3; 32]);
        let terms = Terms {
            serial: 42,
            amount_minor: 50_000,
            currency: "KES".into(),
            expires_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        };
        let signed = terms.sign(&key);
        assert!(signed.starts_with("cpv1.42.50000.KES.1800000000."));
        assert_eq!(verify(&signed, &key.public_hex()), Ok(terms));
        let richer = signed.replacen(".50000.", ".90000.", 1);
        assert_eq!(
            verify(&richer, &key.public_hex()),
            Err(SignedError::BadSignature)
        );
        let other = AuthorityKey::from_bytes(&[4; 32]);
        assert_eq!(
            verify(&signed, &other.public_hex()),
            Err(SignedError::BadSignature)
        );
        for bad in [
            "",
            "cpv1.42",
            "cpv2.42.50000.KES.1800000000.00",
            "cpv1.x.50000.KES.1800000000.00",
        ] {
            assert_eq!(
                verify(bad, &key.public_hex()),
                Err(SignedError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_stored_digest_depends_on_the_server_key() {
        let code = new_code();
        let one = digest(&SigningKey::from_bytes([1; 32]), &code);
        assert_eq!(one.len(), 32);
        assert_eq!(one, digest(&SigningKey::from_bytes([1; 32]), &code));
        assert_ne!(one, digest(&SigningKey::from_bytes([2; 32]), &code));
    }
}
