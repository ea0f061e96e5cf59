//! The AML rules applied before every outgoing money movement.
//!
//! Pure decisions over numbers the gateway reads inside the movement's own
//! database transaction: the sender's KYC tier limits, their activity in the
//! rolling windows, and the movement's USD value. Sanctions screening lives
//! in [`crate::sanctions`]; suspension is checked at authentication.

/// Limits of one KYC tier (`compliance_tiers` table), in US cents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierLimits {
    pub can_transact: bool,
    pub single_max_usd_cents: i64,
    pub daily_max_usd_cents: i64,
    pub hourly_max_count: i64,
}

/// The structuring pattern (`compliance_settings` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructuringRule {
    pub band_min_usd_cents: i64,
    pub band_max_usd_cents: i64,
    /// Movements in the band within 24 h (this one included) that open a SAR.
    pub count: i64,
}

impl StructuringRule {
    pub fn in_band(&self, usd_cents: i64) -> bool {
        (self.band_min_usd_cents..=self.band_max_usd_cents).contains(&usd_cents)
    }
}

/// The sender's recent outgoing activity, not counting this movement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Activity {
    pub count_last_hour: i64,
    pub volume_last_24h_usd_cents: i64,
    pub in_band_last_24h: i64,
}

/// Which rule fired; stored in audit rows and SARs by [`Rule::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Rule {
    #[serde(rename = "kyc_tier")]
    KycTier,
    #[serde(rename = "single_transaction_limit")]
    SingleLimit,
    #[serde(rename = "daily_volume_limit")]
    DailyLimit,
    #[serde(rename = "hourly_velocity")]
    HourlyVelocity,
    #[serde(rename = "structuring")]
    Structuring,
    #[serde(rename = "sanctions")]
    Sanctions,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::KycTier => "kyc_tier",
            Rule::SingleLimit => "single_transaction_limit",
            Rule::DailyLimit => "daily_volume_limit",
            Rule::HourlyVelocity => "hourly_velocity",
            Rule::Structuring => "structuring",
            Rule::Sanctions => "sanctions",
        }
    }
}

/// What happens to the movement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Allowed, but a suspicious-activity report must be opened.
    AllowAndReport(Rule),
    Reject(Rule),
}

/// Applies the limits in a fixed order: tier, single, daily, velocity, then
/// the structuring pattern (which never blocks, only reports).
pub fn evaluate(
    limits: &TierLimits,
    structuring: &StructuringRule,
    activity: Activity,
    usd_cents: i64,
) -> Decision {
    if !limits.can_transact {
        return Decision::Reject(Rule::KycTier);
    }
    if usd_cents > limits.single_max_usd_cents {
        return Decision::Reject(Rule::SingleLimit);
    }
    if activity.volume_last_24h_usd_cents.saturating_add(usd_cents) > limits.daily_max_usd_cents {
        return Decision::Reject(Rule::DailyLimit);
    }
    if activity.count_last_hour + 1 > limits.hourly_max_count {
        return Decision::Reject(Rule::HourlyVelocity);
    }
    if structuring.in_band(usd_cents) && activity.in_band_last_24h + 1 >= structuring.count {
        return Decision::AllowAndReport(Rule::Structuring);
    }
    Decision::Allow
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified() -> TierLimits {
        TierLimits {
            can_transact: true,
            single_max_usd_cents: 200_000,
            daily_max_usd_cents: 500_000,
            hourly_max_count: 10,
        }
    }

    fn structuring() -> StructuringRule {
        StructuringRule {
            band_min_usd_cents: 90_000,
            band_max_usd_cents: 100_000,
            count: 3,
        }
    }

    fn decide(activity: Activity, usd_cents: i64) -> Decision {
        evaluate(&verified(), &structuring(), activity, usd_cents)
    }

    #[test]
    fn the_single_transaction_limit_allows_the_limit_itself_and_not_a_cent_more() {
        assert_eq!(decide(Activity::default(), 199_999), Decision::Allow);
        assert_eq!(decide(Activity::default(), 200_000), Decision::Allow);
        assert_eq!(
            decide(Activity::default(), 200_001),
            Decision::Reject(Rule::SingleLimit)
        );
    }

    #[test]
    fn the_daily_volume_counts_this_movement_too() {
        let activity = Activity {
            volume_last_24h_usd_cents: 400_000,
            ..Activity::default()
        };
        assert_eq!(decide(activity, 100_000), Decision::Allow);
        assert_eq!(
            decide(activity, 100_001),
            Decision::Reject(Rule::DailyLimit)
        );
    }

    #[test]
    fn the_eleventh_movement_in_an_hour_is_refused() {
        let ninth = Activity {
            count_last_hour: 9,
            ..Activity::default()
        };
        assert_eq!(decide(ninth, 100), Decision::Allow);
        let tenth = Activity {
            count_last_hour: 10,
            ..Activity::default()
        };
        assert_eq!(decide(tenth, 100), Decision::Reject(Rule::HourlyVelocity));
    }

    #[test]
    fn the_third_movement_in_the_structuring_band_is_allowed_and_reported() {
        let two_before = Activity {
            in_band_last_24h: 2,
            ..Activity::default()
        };
        assert_eq!(
            decide(two_before, 90_000),
            Decision::AllowAndReport(Rule::Structuring)
        );
        assert_eq!(
            decide(two_before, 100_000),
            Decision::AllowAndReport(Rule::Structuring)
        );
        assert_eq!(decide(two_before, 89_999), Decision::Allow);
        assert_eq!(decide(two_before, 100_001), Decision::Allow);
        let one_before = Activity {
            in_band_last_24h: 1,
            ..Activity::default()
        };
        assert_eq!(decide(one_before, 95_000), Decision::Allow);
    }

    #[test]
    fn a_tier_that_cannot_transact_is_refused_before_anything_else() {
        let rejected = TierLimits {
            can_transact: false,
            ..verified()
        };
        assert_eq!(
            evaluate(&rejected, &structuring(), Activity::default(), 1),
            Decision::Reject(Rule::KycTier)
        );
    }
}
