//! The 4-digit PIN that protects every account.
//!
//! A PIN that exists as a [`Pin`] is exactly four ASCII digits. Whether it is
//! strong enough to *set* is a separate check ([`Pin::check_strength`]),
//! because a user must still be able to log in with a PIN chosen before the
//! rules tightened (the demo accounts use `1234`).

use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PinError {
    #[error("PIN must be exactly 4 digits")]
    Format,
    #[error("PIN is too easy to guess: avoid repeated, sequential or common PINs")]
    Weak,
}

/// PINs people pick most often that the digit rules below would not catch
/// (keypad columns, years, well-known numbers).
const COMMON_PINS: [&str; 10] = [
    "2580", "0852", "1004", "2000", "6969", "1122", "1313", "4444", "1998", "2001",
];

/// Four digits. Never printed: `Debug` and `Display` redact it.
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(String);

impl Pin {
    pub fn parse(raw: &str) -> Result<Self, PinError> {
        if raw.len() == 4 && raw.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(PinError::Format)
        }
    }

    /// Refuses PINs an attacker would try first: one repeated digit (`0000`),
    /// a run up or down (`1234`, `4321`, `8901`), a repeated pair (`1212`),
    /// a doubled pair (`1122`), a palindrome pair (`1221`) and a short list
    /// of common choices.
    pub fn check_strength(&self) -> Result<(), PinError> {
        let d: Vec<i8> = self.0.bytes().map(|b| (b - b'0') as i8).collect();
        let steps: Vec<i8> = d.windows(2).map(|w| (w[1] - w[0]).rem_euclid(10)).collect();
        let all_same = steps.iter().all(|&s| s == 0);
        let ascending = steps.iter().all(|&s| s == 1);
        let descending = steps.iter().all(|&s| s == 9);
        let repeated_pair = d[0] == d[2] && d[1] == d[3];
        let doubled_pair = d[0] == d[1] && d[2] == d[3];
        let mirrored_pair = d[0] == d[3] && d[1] == d[2];
        if all_same
            || ascending
            || descending
            || repeated_pair
            || doubled_pair
            || mirrored_pair
            || COMMON_PINS.contains(&self.0.as_str())
        {
            Err(PinError::Weak)
        } else {
            Ok(())
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(****)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_exactly_four_digits() {
        for raw in ["", "123", "12345", "12a4", " 123", "１２３４"] {
            assert_eq!(Pin::parse(raw), Err(PinError::Format), "{raw:?}");
        }
        assert!(Pin::parse("5831").is_ok());
    }

    #[test]
    fn the_weak_pins_named_by_the_product_are_refused() {
        for raw in ["1234", "0000", "1111", "1212", "4321"] {
            assert_eq!(
                Pin::parse(raw).unwrap().check_strength(),
                Err(PinError::Weak),
                "{raw}"
            );
        }
    }

    #[test]
    fn runs_including_wrap_around_and_patterns_are_refused() {
        for raw in [
            "2345", "6789", "8901", "9876", "3210", "7777", "1122", "1221", "2580",
        ] {
            assert_eq!(
                Pin::parse(raw).unwrap().check_strength(),
                Err(PinError::Weak),
                "{raw}"
            );
        }
    }

    #[test]
    fn ordinary_pins_are_accepted() {
        for raw in ["5831", "2749", "9043", "1357", "8264"] {
            assert_eq!(Pin::parse(raw).unwrap().check_strength(), Ok(()), "{raw}");
        }
    }

    #[test]
    fn a_pin_never_shows_in_debug_output() {
        let pin = Pin::parse("5831").unwrap();
        assert!(!format!("{pin:?}").contains("5831"));
    }
}
