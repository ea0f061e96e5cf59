//! Why a request was refused, in terms a customer can act on.
//!
//! The domain decides *that* and *why*; each channel words it in its own
//! home: the REST `detail` in the gateway's HTTP error mapping, USSD screens
//! in [`crate::ussd::text`], SMS in [`crate::notify`] — the last two in
//! English and Swahili.

use serde::{Deserialize, Serialize};

use crate::compliance::Rule;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "rule")]
pub enum Refusal {
    /// The paying wallet does not hold amount and fee.
    InsufficientFunds,
    /// The caller's own account is suspended.
    AccountSuspended,
    /// The other party's account is suspended or rejected.
    RecipientCannotReceive,
    /// Paying oneself.
    SelfPayment,
    /// An amount the rate book cannot price (too small to convert, say).
    AmountNotPriceable,
    /// A quote that has been used already.
    QuoteUsed,
    QuoteExpired,
    /// Not one of the caller's reversible transfers.
    ReversalNotEligible,
    ReversalAlreadyRequested,
    ReversalAlreadyDecided,
    /// No active agent has that agent number.
    AgentUnknown,
    /// The agent's float does not hold the amount.
    InsufficientFloat,
    /// No active merchant has that till or paybill number.
    MerchantUnknown,
    /// The payment request was paid, declined or has expired.
    RequestNotPending,
    /// Below the smallest amount this movement allows.
    BelowMinimum,
    /// No active voucher has that code (counts as a wrong guess).
    VoucherUnknown,
    /// The voucher was redeemed, cancelled or has expired.
    VoucherSpent,
    /// The voucher's buyer is suspended: it cannot be redeemed until they
    /// are reinstated (a stolen phone's vouchers stay frozen with it).
    VoucherOnHold,
    /// Too many wrong voucher codes: redeeming is paused for a while.
    VoucherGuessesExhausted,
    /// The identity document is claimed by another account.
    DocumentClaimed,
    /// A document is already under review or verified for this account.
    DocumentAlreadySubmitted,
    /// The PIN reset code is wrong, used up or expired.
    ResetCodeInvalid,
    /// A deposit prompting a phone other than the customer's own.
    PromptOwnPhoneOnly,
    /// Safaricom refused the request outright.
    MpesaRefused,
    /// Safaricom could not be reached.
    MpesaUnreachable,
    /// Registering a number that already has an account.
    PhoneTaken,
    /// An AML rule refused the movement.
    Compliance(Rule),
}

impl Refusal {
    /// A stable name for logs, metrics and audit rows (the AML rule's own
    /// name for a compliance refusal).
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::InsufficientFunds => "insufficient_funds",
            Refusal::AccountSuspended => "account_suspended",
            Refusal::RecipientCannotReceive => "recipient_cannot_receive",
            Refusal::SelfPayment => "self_payment",
            Refusal::AmountNotPriceable => "amount_not_priceable",
            Refusal::QuoteUsed => "quote_used",
            Refusal::QuoteExpired => "quote_expired",
            Refusal::ReversalNotEligible => "reversal_not_eligible",
            Refusal::ReversalAlreadyRequested => "reversal_already_requested",
            Refusal::ReversalAlreadyDecided => "reversal_already_decided",
            Refusal::AgentUnknown => "agent_unknown",
            Refusal::InsufficientFloat => "insufficient_float",
            Refusal::MerchantUnknown => "merchant_unknown",
            Refusal::RequestNotPending => "request_not_pending",
            Refusal::BelowMinimum => "below_minimum",
            Refusal::VoucherUnknown => "voucher_unknown",
            Refusal::VoucherSpent => "voucher_spent",
            Refusal::VoucherOnHold => "voucher_on_hold",
            Refusal::VoucherGuessesExhausted => "voucher_guesses_exhausted",
            Refusal::DocumentClaimed => "document_claimed",
            Refusal::DocumentAlreadySubmitted => "document_already_submitted",
            Refusal::ResetCodeInvalid => "reset_code_invalid",
            Refusal::PromptOwnPhoneOnly => "prompt_own_phone_only",
            Refusal::MpesaRefused => "mpesa_refused",
            Refusal::MpesaUnreachable => "mpesa_unreachable",
            Refusal::PhoneTaken => "phone_taken",
            Refusal::Compliance(rule) => rule.as_str(),
        }
    }
}
