//! Foreign exchange through a USD pivot, with a bid/ask spread.
//!
//! Every currency has one rate: how many units of it one US dollar buys
//! (its "USD mid"). The mid rate of any pair is derived from those legs, so
//! cross rates are consistent by construction: `mid(A→B) = usd_mid[B] / usd_mid[A]`.
//!
//! A customer converting `from → to` gets `mid × (1 − spread/2)`, truncated
//! to [`RATE_DECIMALS`] places, and the converted amount is rounded *down* to
//! a whole minor unit. Both roundings are in the house's favour, so no
//! sequence of conversions can create value for the customer: a round trip
//! USD→KES→USD returns at most `(1 − spread/2)²` of the amount.
//!
//! The published quote of a pair `A/B` shows `bid = mid × (1 − spread/2)`
//! (what one A sells for) and `ask = mid / (1 − spread/2)` (what one A costs
//! in B), which are exactly the rates conversions in each direction apply.

use std::collections::BTreeMap;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

use crate::money::CurrencyCode;

/// Decimal places of an applied rate.
pub const RATE_DECIMALS: u32 = 10;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FxError {
    #[error("no exchange rate for {0}")]
    NoRate(String),
    #[error("cannot convert a currency into itself")]
    SameCurrency,
    #[error("the amount is too large to convert")]
    Overflow,
    #[error("the amount is too small to convert into any {0}")]
    TooSmall(String),
    #[error("a rate must be a positive number")]
    BadRate,
    #[error("the spread must be at least 0 and below 1")]
    BadSpread,
}

/// One currency's leg against the US dollar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsdLeg {
    /// Units of the currency that one US dollar buys (1 for USD).
    pub usd_mid: Decimal,
    /// Minor-unit exponent of the currency (2 for KES).
    pub exponent: u32,
}

/// The rate book: every currency's USD leg plus the total spread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateBook {
    legs: BTreeMap<String, UsdLeg>,
    /// Total bid/ask spread as a fraction (0.015 = 1.5 %).
    spread: Decimal,
}

/// The rates of one ordered pair `base/quote`, in quote units per base unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRates {
    pub mid: Decimal,
    pub bid: Decimal,
    pub ask: Decimal,
}

/// The outcome of converting an amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// Target-currency units per source-currency unit, as applied.
    pub rate: Decimal,
    /// What the target wallet receives, in its minor units.
    pub converted_minor: i64,
}

impl RateBook {
    pub fn new(spread: Decimal) -> Result<Self, FxError> {
        if spread < Decimal::ZERO || spread >= Decimal::ONE {
            return Err(FxError::BadSpread);
        }
        Ok(Self {
            legs: BTreeMap::new(),
            spread,
        })
    }

    pub fn with_leg(
        mut self,
        currency: &str,
        usd_mid: Decimal,
        exponent: u32,
    ) -> Result<Self, FxError> {
        if usd_mid <= Decimal::ZERO {
            return Err(FxError::BadRate);
        }
        self.legs
            .insert(currency.to_owned(), UsdLeg { usd_mid, exponent });
        Ok(self)
    }

    pub fn spread(&self) -> Decimal {
        self.spread
    }

    pub fn currencies(&self) -> impl Iterator<Item = &str> {
        self.legs.keys().map(String::as_str)
    }

    pub fn leg(&self, currency: &str) -> Result<&UsdLeg, FxError> {
        self.legs
            .get(currency)
            .ok_or_else(|| FxError::NoRate(currency.to_owned()))
    }

    fn half_spread_factor(&self) -> Decimal {
        Decimal::ONE - self.spread / Decimal::TWO
    }

    /// Mid, bid and ask of `base/quote`.
    pub fn pair(&self, base: &str, quote: &str) -> Result<PairRates, FxError> {
        let mid = self.leg(quote)?.usd_mid / self.leg(base)?.usd_mid;
        let factor = self.half_spread_factor();
        Ok(PairRates {
            mid: round_rate(mid),
            bid: truncate_rate(mid * factor),
            ask: round_rate(mid / factor),
        })
    }

    /// Converts `amount_minor` of `from` into `to` at the customer rate.
    pub fn convert(
        &self,
        from: &CurrencyCode,
        to: &CurrencyCode,
        amount_minor: i64,
    ) -> Result<Conversion, FxError> {
        if from == to {
            return Err(FxError::SameCurrency);
        }
        let rate = self.pair(from.as_str(), to.as_str())?.bid;
        let converted_minor = apply_rate(
            amount_minor,
            rate,
            self.leg(from.as_str())?.exponent,
            self.leg(to.as_str())?.exponent,
        )?;
        if converted_minor == 0 {
            return Err(FxError::TooSmall(to.to_string()));
        }
        Ok(Conversion {
            rate,
            converted_minor,
        })
    }

    /// Value of `amount_minor` of `currency` in US cents at the mid rate,
    /// rounded half up. Limits, fee bands and the AML rules are all stated
    /// in USD, so every amount is measured with this one function.
    pub fn usd_cents(&self, currency: &str, amount_minor: i64) -> Result<i64, FxError> {
        let leg = self.leg(currency)?;
        let usd = self.leg("USD")?;
        let value = Decimal::from(amount_minor)
            .checked_mul(usd.usd_mid)
            .ok_or(FxError::Overflow)?
            / leg.usd_mid;
        let cents = scale(value, leg.exponent, usd.exponent)?;
        cents
            .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
            .to_i64()
            .ok_or(FxError::Overflow)
    }

    /// `usd_cents` US cents expressed in `currency` minor units at the mid
    /// rate, rounded as `strategy` says (callers choose the direction that
    /// favours the house).
    pub fn from_usd_cents(
        &self,
        currency: &str,
        usd_cents: i64,
        strategy: RoundingStrategy,
    ) -> Result<i64, FxError> {
        let leg = self.leg(currency)?;
        let usd = self.leg("USD")?;
        let value = Decimal::from(usd_cents)
            .checked_mul(leg.usd_mid)
            .ok_or(FxError::Overflow)?
            / usd.usd_mid;
        scale(value, usd.exponent, leg.exponent)?
            .round_dp_with_strategy(0, strategy)
            .to_i64()
            .ok_or(FxError::Overflow)
    }
}

/// Shifts a value in `from_exponent` minor units into `to_exponent` minor units.
fn scale(value: Decimal, from_exponent: u32, to_exponent: u32) -> Result<Decimal, FxError> {
    let shift = Decimal::from(10u64.pow(from_exponent.abs_diff(to_exponent)));
    if to_exponent >= from_exponent {
        value.checked_mul(shift).ok_or(FxError::Overflow)
    } else {
        Ok(value / shift)
    }
}

/// `amount × rate`, moved between minor-unit exponents, rounded down.
pub fn apply_rate(
    amount_minor: i64,
    rate: Decimal,
    from_exponent: u32,
    to_exponent: u32,
) -> Result<i64, FxError> {
    let product = Decimal::from(amount_minor)
        .checked_mul(rate)
        .ok_or(FxError::Overflow)?;
    scale(product, from_exponent, to_exponent)?
        .floor()
        .to_i64()
        .ok_or(FxError::Overflow)
}

fn truncate_rate(rate: Decimal) -> Decimal {
    rate.round_dp_with_strategy(RATE_DECIMALS, RoundingStrategy::ToZero)
        .normalize()
}

fn round_rate(rate: Decimal) -> Decimal {
    rate.round_dp_with_strategy(RATE_DECIMALS, RoundingStrategy::MidpointAwayFromZero)
        .normalize()
}

/// A source of new USD legs. The admin-set table is the default (it never
/// changes rates by itself); [`RandomWalk`] is the demo feed.
pub trait RateSource: Send {
    /// The legs to publish next, given the current ones; `None` keeps them.
    fn next_legs(
        &mut self,
        current: &BTreeMap<String, Decimal>,
    ) -> Option<BTreeMap<String, Decimal>>;
}

/// Rates change only when an operator sets them.
#[derive(Debug, Default)]
pub struct AdminTable;

impl RateSource for AdminTable {
    fn next_legs(
        &mut self,
        _current: &BTreeMap<String, Decimal>,
    ) -> Option<BTreeMap<String, Decimal>> {
        None
    }
}

/// Moves every non-USD leg by a uniformly random step of at most
/// `max_step` (0.003 = ±0.3 %) per tick, as the original ChainPay's demo
/// feed did.
#[derive(Debug)]
pub struct RandomWalk<R> {
    rng: R,
    max_step_ppm: i64,
}

impl<R: rand::Rng + Send> RandomWalk<R> {
    pub fn new(rng: R, max_step: Decimal) -> Self {
        let max_step_ppm = (max_step * Decimal::from(1_000_000))
            .to_i64()
            .unwrap_or(0)
            .max(0);
        Self { rng, max_step_ppm }
    }
}

impl<R: rand::Rng + Send> RateSource for RandomWalk<R> {
    fn next_legs(
        &mut self,
        current: &BTreeMap<String, Decimal>,
    ) -> Option<BTreeMap<String, Decimal>> {
        let next = current
            .iter()
            .map(|(currency, mid)| {
                if currency == "USD" {
                    return (currency.clone(), *mid);
                }
                let step_ppm = self.rng.gen_range(-self.max_step_ppm..=self.max_step_ppm);
                let factor = Decimal::ONE + Decimal::new(step_ppm, 6);
                (currency.clone(), round_rate(*mid * factor))
            })
            .collect();
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn code(s: &str) -> CurrencyCode {
        CurrencyCode::parse(s).unwrap()
    }

    fn book() -> RateBook {
        RateBook::new(dec("0.015"))
            .unwrap()
            .with_leg("USD", Decimal::ONE, 2)
            .unwrap()
            .with_leg("KES", dec("129.50"), 2)
            .unwrap()
            .with_leg("EUR", dec("0.92"), 2)
            .unwrap()
            .with_leg("UGX", dec("3700"), 0)
            .unwrap()
    }

    #[test]
    fn cross_rates_are_derived_from_the_usd_legs() {
        let eur_kes = book().pair("EUR", "KES").unwrap();
        assert_eq!(eur_kes.mid, round_rate(dec("129.50") / dec("0.92")));
        assert!(eur_kes.bid < eur_kes.mid && eur_kes.mid < eur_kes.ask);
    }

    #[test]
    fn the_spread_between_bid_and_ask_is_the_configured_total() {
        let pair = book().pair("USD", "KES").unwrap();
        assert_eq!(pair.mid, dec("129.5"));
        assert_eq!(pair.bid, dec("128.52875"));
        let spread = (pair.ask - pair.bid) / pair.mid;
        assert!((spread - dec("0.015")).abs() < dec("0.0001"), "{spread}");
    }

    #[test]
    fn conversion_rounds_down_to_a_whole_minor_unit() {
        // USD 10.00 at 128.52875 is KES 1,285.2875 → KES 1,285.28.
        let conversion = book().convert(&code("USD"), &code("KES"), 1_000).unwrap();
        assert_eq!(conversion.rate, dec("128.52875"));
        assert_eq!(conversion.converted_minor, 128_528);
    }

    #[test]
    fn a_round_trip_loses_the_spread_and_never_gains() {
        let book = book();
        for amount in [1_000, 99_999, 12_345_678] {
            let kes = book.convert(&code("USD"), &code("KES"), amount).unwrap();
            let back = book
                .convert(&code("KES"), &code("USD"), kes.converted_minor)
                .unwrap();
            let ceiling = (Decimal::from(amount)
                * (Decimal::ONE - dec("0.0075"))
                * (Decimal::ONE - dec("0.0075")))
            .floor();
            assert!(
                Decimal::from(back.converted_minor) <= ceiling,
                "{amount}: {back:?}"
            );
            // Rounding costs at most one minor unit per leg (plus the rate's truncation).
            assert!(
                Decimal::from(back.converted_minor) >= ceiling - Decimal::from(3),
                "{amount}: {back:?}"
            );
        }
    }

    #[test]
    fn currencies_with_different_exponents_convert_correctly() {
        // USD 1.00 buys UGX 3,700 at mid; the customer gets the bid, rounded down.
        let conversion = book().convert(&code("USD"), &code("UGX"), 100).unwrap();
        assert_eq!(conversion.converted_minor, 3_672);
        assert_eq!(book().usd_cents("UGX", 3_700).unwrap(), 100);
    }

    #[test]
    fn converting_into_the_same_currency_or_a_dust_amount_is_refused() {
        assert_eq!(
            book().convert(&code("KES"), &code("KES"), 100),
            Err(FxError::SameCurrency)
        );
        assert_eq!(
            book().convert(&code("KES"), &code("USD"), 1),
            Err(FxError::TooSmall("USD".into()))
        );
        assert_eq!(
            book().convert(&code("KES"), &code("GBP"), 100),
            Err(FxError::NoRate("GBP".into()))
        );
    }

    #[test]
    fn usd_equivalents_round_half_up() {
        // KES 129.50 is exactly USD 1.00; KES 0.65 is 0.5019 cents → 1 cent.
        assert_eq!(book().usd_cents("KES", 12_950).unwrap(), 100);
        assert_eq!(book().usd_cents("KES", 65).unwrap(), 1);
        assert_eq!(
            book()
                .from_usd_cents("KES", 100, RoundingStrategy::ToZero)
                .unwrap(),
            12_950
        );
    }

    #[test]
    fn the_random_walk_moves_each_leg_by_at_most_the_step_and_never_usd() {
        let mut walk = RandomWalk::new(rand::rngs::StdRng::seed_from_u64(7), dec("0.003"));
        let mut legs = BTreeMap::from([
            ("USD".to_owned(), Decimal::ONE),
            ("KES".to_owned(), dec("129.50")),
        ]);
        for _ in 0..200 {
            let next = walk.next_legs(&legs).unwrap();
            assert_eq!(next["USD"], Decimal::ONE);
            let step = (next["KES"] / legs["KES"] - Decimal::ONE).abs();
            assert!(step <= dec("0.0030001"), "{step}");
            legs = next;
        }
        assert_ne!(legs["KES"], dec("129.50"));
    }

    #[test]
    fn invalid_rates_and_spreads_are_refused() {
        assert_eq!(RateBook::new(dec("1")).unwrap_err(), FxError::BadSpread);
        assert_eq!(RateBook::new(dec("-0.1")).unwrap_err(), FxError::BadSpread);
        assert_eq!(
            RateBook::new(dec("0.01"))
                .unwrap()
                .with_leg("KES", Decimal::ZERO, 2)
                .unwrap_err(),
            FxError::BadRate
        );
    }
}
