//! Money is counted in integer minor units of an ISO 4217 currency.
//!
//! Which currencies exist, and how many minor digits each has, is data (the
//! `currencies` table), so this module only guarantees the *shape* of a code
//! and that an amount is a positive integer that cannot overflow.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Largest amount a single movement may carry: 10^15 minor units. Far above
/// any real transfer, and far enough below `i64::MAX` that adding a fee or
/// summing a day's volume can never overflow.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("currency must be a three-letter ISO 4217 code")]
    BadCurrency,
    #[error("amount must be a positive whole number of minor units")]
    NotPositive,
    #[error("amount is larger than the maximum of {MAX_AMOUNT_MINOR} minor units")]
    TooLarge,
}

/// A syntactically valid ISO 4217 code (`KES`, `USD`, …). Whether ChainPay
/// supports it is decided by the database.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(try_from = "String", into = "String")]
pub struct CurrencyCode(String);

impl CurrencyCode {
    pub fn parse(raw: &str) -> Result<Self, MoneyError> {
        let code = raw.trim().to_ascii_uppercase();
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(code))
        } else {
            Err(MoneyError::BadCurrency)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CurrencyCode {
    type Error = MoneyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<CurrencyCode> for String {
    fn from(value: CurrencyCode) -> Self {
        value.0
    }
}

impl fmt::Display for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A strictly positive amount in minor units, bounded by [`MAX_AMOUNT_MINOR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Amount(i64);

impl Amount {
    pub fn new(minor: i64) -> Result<Self, MoneyError> {
        if minor <= 0 {
            Err(MoneyError::NotPositive)
        } else if minor > MAX_AMOUNT_MINOR {
            Err(MoneyError::TooLarge)
        } else {
            Ok(Self(minor))
        }
    }

    pub fn minor(self) -> i64 {
        self.0
    }
}

/// Formats minor units for people: `format_minor(125075, 2)` is `1,250.75`.
/// Used in SMS, USSD screens and CLI output, never for arithmetic.
pub fn format_minor(minor: i64, exponent: u32) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = minor.unsigned_abs();
    let scale = 10u64.pow(exponent);
    let whole = (magnitude / scale).to_string();
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if exponent == 0 {
        format!("{sign}{grouped}")
    } else {
        let fraction = magnitude % scale;
        format!(
            "{sign}{grouped}.{fraction:0width$}",
            width = exponent as usize
        )
    }
}

/// An amount with its currency for people: `show("KES", 125075, 2)` is
/// `KES 1,250.75`. The one way every channel shows money.
pub fn show(currency: &str, minor: i64, exponent: u32) -> String {
    format!("{currency} {}", format_minor(minor, exponent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_codes_are_normalised_to_upper_case() {
        assert_eq!(CurrencyCode::parse(" kes ").unwrap().as_str(), "KES");
    }

    #[test]
    fn currency_codes_of_the_wrong_shape_are_rejected() {
        for raw in ["", "KE", "KESS", "K3S", "€UR"] {
            assert_eq!(
                CurrencyCode::parse(raw),
                Err(MoneyError::BadCurrency),
                "{raw}"
            );
        }
    }

    #[test]
    fn zero_and_negative_amounts_are_rejected() {
        assert_eq!(Amount::new(0), Err(MoneyError::NotPositive));
        assert_eq!(Amount::new(-1), Err(MoneyError::NotPositive));
    }

    #[test]
    fn amounts_above_the_ceiling_are_rejected() {
        assert!(Amount::new(MAX_AMOUNT_MINOR).is_ok());
        assert_eq!(Amount::new(MAX_AMOUNT_MINOR + 1), Err(MoneyError::TooLarge));
        assert_eq!(Amount::new(i64::MAX), Err(MoneyError::TooLarge));
    }

    #[test]
    fn minor_units_format_with_grouping_and_the_currency_exponent() {
        assert_eq!(format_minor(125075, 2), "1,250.75");
        assert_eq!(format_minor(5, 2), "0.05");
        assert_eq!(format_minor(100000000, 2), "1,000,000.00");
        assert_eq!(format_minor(1500, 0), "1,500");
        assert_eq!(format_minor(-250, 2), "-2.50");
    }
}
