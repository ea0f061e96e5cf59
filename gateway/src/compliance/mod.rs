//! AML enforcement inside money movements: tier limits and rolling windows
//! ([`limits`]), sanctions screening ([`sanctions`]) and suspicious-activity
//! reports ([`sars`]).

pub mod limits;
pub mod sanctions;
pub mod sars;

use chainpay_core::compliance::Rule;
use serde_json::Value;
use uuid::Uuid;

/// Why a movement was refused, carried by [`crate::http::error::ApiError::Compliance`].
#[derive(Debug)]
pub struct Refusal {
    pub rule: Rule,
    /// What the customer reads: plain, and without internal detail.
    pub message: &'static str,
    /// Internal detail for the audit row (scores, listed names, amounts).
    pub detail: Value,
    /// A report to open along with the refusal: (party, detail).
    pub report: Option<(Option<Uuid>, Value)>,
}

impl Refusal {
    pub fn new(rule: Rule, detail: Value) -> Self {
        Self {
            rule,
            message: customer_message(rule),
            detail,
            report: None,
        }
    }

    pub fn reported(mut self, party: Option<Uuid>, detail: Value) -> Self {
        self.report = Some((party, detail));
        self
    }
}

/// The sentence a customer sees for each rule, on every channel.
pub fn customer_message(rule: Rule) -> &'static str {
    match rule {
        Rule::KycTier => "your account cannot move money until your identity is verified",
        Rule::SingleLimit => "this amount is above your limit for a single transaction",
        Rule::DailyLimit => "this amount would take you over your daily limit",
        Rule::HourlyVelocity => "too many transactions in the last hour; please try again later",
        Rule::Structuring => "this transaction cannot be completed",
        Rule::Sanctions => "this transaction cannot be completed; contact support",
    }
}
