//! The tiered fee schedule.
//!
//! A fee band applies to one transaction type from a USD-equivalent amount
//! upwards; the band with the highest lower bound not above the amount wins.
//! The fee is a percentage of the amount in the transaction's own currency,
//! rounded up to a whole minor unit, then held between the band's optional
//! minimum and maximum (stated in US cents and converted at the mid rate),
//! and never more than the smallest amount of the next band costs (so a
//! larger amount never costs less, even where that undercuts a minimum).
//! The schedule itself is data: the `fee_bands` table.

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

use crate::fx::{FxError, RateBook};

/// Kinds of movement that pay a fee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeeKind {
    Send,
    Withdraw,
    Convert,
    /// Cash withdrawn at an agent.
    CashOut,
    /// Buying a voucher.
    Voucher,
    /// Cash deposited at an agent: free to the customer, so only the agent's
    /// commission schedule has bands of this kind.
    CashIn,
    /// A payment to a merchant: paid by the merchant out of what it
    /// receives, never by the customer.
    Merchant,
}

impl FeeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FeeKind::Send => "send",
            FeeKind::Withdraw => "withdraw",
            FeeKind::Convert => "convert",
            FeeKind::CashOut => "cash_out",
            FeeKind::Voucher => "voucher",
            FeeKind::CashIn => "cash_in",
            FeeKind::Merchant => "merchant",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "send" => Some(FeeKind::Send),
            "withdraw" => Some(FeeKind::Withdraw),
            "convert" => Some(FeeKind::Convert),
            "cash_out" => Some(FeeKind::CashOut),
            "voucher" => Some(FeeKind::Voucher),
            "cash_in" => Some(FeeKind::CashIn),
            "merchant" => Some(FeeKind::Merchant),
            _ => None,
        }
    }
}

/// One row of the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeBand {
    pub kind: FeeKind,
    /// Lower bound of the band, inclusive, in US cents.
    pub from_usd_cents: i64,
    /// Fraction of the amount (0.015 = 1.5 %).
    pub rate: Decimal,
    pub min_fee_usd_cents: Option<i64>,
    pub max_fee_usd_cents: Option<i64>,
}

/// The bands of every kind.
#[derive(Debug, Clone, Default)]
pub struct FeeSchedule {
    bands: Vec<FeeBand>,
}

impl FeeSchedule {
    pub fn new(mut bands: Vec<FeeBand>) -> Self {
        bands.sort_by_key(|b| b.from_usd_cents);
        Self { bands }
    }

    pub fn bands(&self) -> &[FeeBand] {
        &self.bands
    }

    fn band(&self, kind: FeeKind, usd_cents: i64) -> Option<&FeeBand> {
        self.bands
            .iter()
            .rev()
            .find(|b| b.kind == kind && b.from_usd_cents <= usd_cents)
    }

    /// The band of `kind` after `band`, if any.
    fn next_band(&self, band: &FeeBand) -> Option<&FeeBand> {
        self.bands
            .iter()
            .find(|b| b.kind == band.kind && b.from_usd_cents > band.from_usd_cents)
    }

    /// The fee, in minor units of `currency`, for moving `amount_minor` of it.
    /// No band for the kind means no fee.
    pub fn fee(
        &self,
        kind: FeeKind,
        rates: &RateBook,
        currency: &str,
        amount_minor: i64,
    ) -> Result<i64, FxError> {
        self.priced(
            kind,
            rates,
            currency,
            amount_minor,
            RoundingStrategy::AwayFromZero,
        )
    }

    /// The band's share of `amount_minor`, its fraction of a minor unit and
    /// its minimum settled by `round`: away from zero for what the house
    /// charges, toward zero for what it pays out (an agent's commission), so
    /// that splitting an amount never earns more than the whole. Never more
    /// than the smallest amount of the next band costs: where the rate falls
    /// at a band's bound, sending a little more must not cost less.
    fn priced(
        &self,
        kind: FeeKind,
        rates: &RateBook,
        currency: &str,
        amount_minor: i64,
        round: RoundingStrategy,
    ) -> Result<i64, FxError> {
        let usd_cents = rates.usd_cents(currency, amount_minor)?;
        let Some(band) = self.band(kind, usd_cents) else {
            return Ok(0);
        };
        let fee = Self::in_band(band, rates, currency, amount_minor, round)?;
        let Some(next) = self.next_band(band) else {
            return Ok(fee);
        };
        let bound = rates.from_usd_cents(
            currency,
            next.from_usd_cents,
            RoundingStrategy::AwayFromZero,
        )?;
        // Priced as a whole (capped by the bands after it in turn; each
        // step starts a band higher, so it ends).
        Ok(fee.min(self.priced(kind, rates, currency, bound, round)?))
    }

    /// `band`'s fee for `amount_minor`, held between its minimum and maximum.
    fn in_band(
        band: &FeeBand,
        rates: &RateBook,
        currency: &str,
        amount_minor: i64,
        round: RoundingStrategy,
    ) -> Result<i64, FxError> {
        let mut fee = (Decimal::from(amount_minor) * band.rate)
            .round_dp_with_strategy(0, round)
            .to_i64()
            .ok_or(FxError::Overflow)?;
        if let Some(min) = band.min_fee_usd_cents {
            fee = fee.max(rates.from_usd_cents(currency, min, round)?);
        }
        if let Some(max) = band.max_fee_usd_cents {
            fee = fee.min(rates.from_usd_cents(currency, max, RoundingStrategy::ToZero)?);
        }
        Ok(fee.max(0))
    }
}

/// The smallest cash-in, in US cents. Its commission is paid from fee
/// revenue, so small ones (where rounding up to a whole minor unit is a
/// large share) would reward splitting one deposit into many.
pub const MIN_CASH_IN_USD_CENTS: i64 = 500;

/// What an agent earns for a cash-in or cash-out, from the commission
/// schedule (bands of kind `CashIn`/`CashOut`, shaped like fee bands). A
/// cash-out's commission is a share of the customer's `fee`, so it is never
/// more than the fee; a cash-in's is paid from fee revenue.
pub fn commission(
    schedule: &FeeSchedule,
    kind: FeeKind,
    rates: &RateBook,
    currency: &str,
    amount_minor: i64,
    fee_minor: i64,
) -> Result<i64, FxError> {
    let earned = schedule.priced(
        kind,
        rates,
        currency,
        amount_minor,
        RoundingStrategy::ToZero,
    )?;
    Ok(match kind {
        FeeKind::CashOut => earned.min(fee_minor),
        _ => earned,
    })
}

/// A cash-in's commission when its agent already cashed in `earlier`
/// (same currency) for the same customer within the day: what the day's
/// total earns less what the earlier ones earned. So the band's minimum and
/// maximum apply once a day per agent and customer, and splitting one
/// deposit into many, or cycling money agent → customer → voucher → agent,
/// earns no more than one deposit of the total would.
pub fn cash_in_commission(
    schedule: &FeeSchedule,
    rates: &RateBook,
    currency: &str,
    earlier: i64,
    amount_minor: i64,
) -> Result<i64, FxError> {
    let total = earlier.checked_add(amount_minor).ok_or(FxError::Overflow)?;
    let earned = |minor| commission(schedule, FeeKind::CashIn, rates, currency, minor, 0);
    let before = if earlier > 0 { earned(earlier)? } else { 0 };
    Ok((earned(total)? - before).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn a_days_cash_ins_for_one_customer_earn_what_one_of_the_total_would() {
        let band = |min| {
            FeeSchedule::new(vec![FeeBand {
                kind: FeeKind::CashIn,
                from_usd_cents: 0,
                rate: dec("0.002"),
                min_fee_usd_cents: min,
                max_fee_usd_cents: Some(200),
            }])
        };
        let (rates, capped, floored) = (rates(), band(None), band(Some(2)));
        let earns = |schedule: &FeeSchedule, earlier, minor| {
            cash_in_commission(schedule, &rates, "KES", earlier, minor).unwrap()
        };
        // The cap (USD 2.00 = KES 259.00) applies to the day's total.
        assert_eq!(earns(&capped, 0, 10_000_000), 20_000);
        assert_eq!(earns(&capped, 10_000_000, 10_000_000), 5_900);
        assert_eq!(earns(&capped, 20_000_000, 10_000_000), 0);
        // So would a minimum: KES 700.00 alone earns USD 0.02 = KES 2.59; a
        // second the same day only what the total adds, 2.80 − 2.59.
        assert_eq!(earns(&floored, 0, 70_000), 259);
        assert_eq!(earns(&floored, 70_000, 70_000), 21);
        assert!(cash_in_commission(&capped, &rates, "KES", i64::MAX, 1).is_err());
    }

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn rates() -> RateBook {
        RateBook::new(dec("0.015"))
            .unwrap()
            .with_leg("USD", Decimal::ONE, 2)
            .unwrap()
            .with_leg("KES", dec("129.50"), 2)
            .unwrap()
    }

    fn band(from: i64, rate: &str) -> FeeBand {
        FeeBand {
            kind: FeeKind::Send,
            from_usd_cents: from,
            rate: dec(rate),
            min_fee_usd_cents: None,
            max_fee_usd_cents: None,
        }
    }

    fn schedule() -> FeeSchedule {
        FeeSchedule::new(vec![
            band(100_000, "0.005"),
            band(0, "0.02"),
            band(10_000, "0.01"),
            band(1_000, "0.015"),
        ])
    }

    #[test]
    fn the_rate_falls_as_the_usd_equivalent_rises_with_inclusive_lower_bounds() {
        let fee = |cents| {
            schedule()
                .fee(FeeKind::Send, &rates(), "USD", cents)
                .unwrap()
        };
        assert_eq!(fee(700), 14); // USD 7.00 at 2 %
        assert_eq!(fee(1_000), 15); // USD 10.00 at 1.5 %
        assert_eq!(fee(5_000), 75); // USD 50.00 at 1.5 %
        assert_eq!(fee(10_000), 100); // USD 100.00 at 1 %
        assert_eq!(fee(100_000), 500); // USD 1,000.00 at 0.5 %

        // Just below a bound, never more than the bound costs: USD 9.99 at
        // 2 % would be 20 cents, USD 99.99 at 1.5 % 150.
        assert_eq!(fee(999), 15);
        assert_eq!(fee(9_999), 100);
        assert_eq!(fee(99_999), 500);
    }

    #[test]
    fn sending_more_never_costs_less() {
        // The default bands, and the same with a top band capped below
        // what the band before it charges at its bound.
        let mut capped_top = band(100_000, "0.005");
        capped_top.max_fee_usd_cents = Some(50);
        let capped = FeeSchedule::new(vec![
            band(0, "0.02"),
            band(1_000, "0.015"),
            band(10_000, "0.01"),
            capped_top,
        ]);
        for schedule in [schedule(), capped] {
            for currency in ["USD", "KES"] {
                let mut last = 0;
                for minor in (0..20_000_000).step_by(997) {
                    let charged = schedule
                        .fee(FeeKind::Send, &rates(), currency, minor)
                        .unwrap();
                    assert!(charged >= last, "{currency} {minor}: {charged} < {last}");
                    last = charged;
                }
            }
        }
    }

    #[test]
    fn bands_are_chosen_by_usd_equivalent_and_fees_charged_in_the_currency() {
        // KES 250.00 ≈ USD 1.93: the 2 % band.
        assert_eq!(
            schedule()
                .fee(FeeKind::Send, &rates(), "KES", 25_000)
                .unwrap(),
            500
        );
        // KES 12,950.00 = USD 100.00: the 1 % band.
        assert_eq!(
            schedule()
                .fee(FeeKind::Send, &rates(), "KES", 1_295_000)
                .unwrap(),
            12_950
        );
    }

    #[test]
    fn minimum_and_maximum_fees_hold_the_fee_in_bounds() {
        let mut bounded = band(0, "0.01");
        bounded.min_fee_usd_cents = Some(10);
        bounded.max_fee_usd_cents = Some(500);
        let schedule = FeeSchedule::new(vec![bounded]);
        assert_eq!(
            schedule.fee(FeeKind::Send, &rates(), "USD", 100).unwrap(),
            10
        );
        assert_eq!(
            schedule
                .fee(FeeKind::Send, &rates(), "USD", 10_000_000)
                .unwrap(),
            500
        );
        assert_eq!(
            schedule.fee(FeeKind::Send, &rates(), "KES", 100).unwrap(),
            1_295
        );
    }

    #[test]
    fn a_kind_without_bands_is_free() {
        assert_eq!(
            schedule()
                .fee(FeeKind::Convert, &rates(), "USD", 5_000)
                .unwrap(),
            0
        );
    }

    #[test]
    fn a_cash_out_commission_is_a_share_of_the_fee_and_never_more() {
        let mut share = band(0, "0.004");
        share.kind = FeeKind::CashOut;
        share.min_fee_usd_cents = Some(4);
        let commissions = FeeSchedule::new(vec![share]);
        let earned = |amount, fee| {
            commission(&commissions, FeeKind::CashOut, &rates(), "USD", amount, fee).unwrap()
        };
        assert_eq!(earned(100_000, 1_000), 400, "0.4 % of USD 1,000");
        assert_eq!(earned(100, 3), 3, "the minimum is held to the fee");
        // What the house pays out is rounded down: 0.4 % of USD 1,001.01 is
        // 400.404 cents, paid as 400, not 401 (splitting never pays).
        assert_eq!(earned(100_101, 1_000), 400);
        assert_eq!(
            commission(&commissions, FeeKind::CashIn, &rates(), "USD", 100_000, 0).unwrap(),
            0,
            "no cash-in band, no commission"
        );
    }
}
