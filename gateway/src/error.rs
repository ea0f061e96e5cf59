//! The domain's one error type: why a request was not done.
//!
//! Feature code returns it; each channel words it in its own home — `http/`
//! maps it to problem+json with a stable `code`, the USSD driver and the SMS
//! commands to a screen or a message in the customer's language. An
//! [`Error::Internal`] keeps its cause (`{error:#}` prints the chain), so a
//! job's log line says what broke, while a customer only ever reads
//! "try again later".
//!
//! Everything but `Internal` is data: a refused, keyed request saves its
//! error with the idempotency record, and a retry replays it as it was.

use chainpay_core::compliance::Rule;
use chainpay_core::refusal::Refusal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "error", content = "detail", rename_all = "snake_case")]
pub enum Error {
    /// The request itself is malformed; the text tells an API client what to fix.
    #[error("{0}")]
    Validation(String),
    #[error("authentication required")]
    Unauthorized,
    #[error("you are not allowed to do this")]
    Forbidden,
    /// Four eyes: a money correction needs an admin other than the one who
    /// asked for it (or who is a party to it).
    #[error("another admin must decide this: you asked for it or are a party to it")]
    SecondAdminNeeded,
    #[error("{0} not found")]
    NotFound(Missing),
    /// The request clashes with the state of what it names (a reference
    /// used already, a decision already made).
    #[error("{0}")]
    Conflict(String),
    #[error("phone number or PIN is wrong")]
    InvalidCredentials,
    /// Locked after too many wrong PINs: for `retry_after_s`, or (`None`)
    /// until an admin unlocks the account or the PIN is reset.
    #[error("{}", locked_sentence(*.retry_after_s))]
    AccountLocked { retry_after_s: Option<i64> },
    #[error("PIN is too easy to guess: avoid repeated, sequential or common PINs")]
    WeakPin,
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyConflict,
    #[error("a request with this Idempotency-Key is still being processed; retry shortly")]
    RequestInFlight,
    #[error("too many requests; retry in {retry_after_s} seconds")]
    RateLimited { retry_after_s: i64 },
    /// A business refusal a customer can read and act on.
    #[error("refused: {0:?}")]
    Refused(Refusal),
    /// An AML rule refused the movement.
    #[error("refused by the AML rule {}", .0.rule.as_str())]
    Compliance(Box<ComplianceRefusal>),
    /// Something broke on our side; the cause is for the log only.
    #[error("internal error: {0:#}")]
    #[serde(skip)]
    Internal(#[from] anyhow::Error),
}

fn locked_sentence(retry_after_s: Option<i64>) -> String {
    match retry_after_s {
        Some(seconds) => format!("too many wrong PINs; try again in {seconds} seconds"),
        None => "too many wrong PINs; the account is locked until ChainPay support unlocks it or the PIN is reset".into(),
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        crate::db::note_if_lost(&error);
        // Text PostgreSQL cannot store (a NUL character, say) is the
        // caller's mistake, whichever field carried it; the statement
        // failed, so nothing of it was written.
        let unstorable = error
            .as_database_error()
            .and_then(|e| e.code())
            .is_some_and(|code| code == "22021" || code == "22P05");
        if unstorable {
            return Error::Validation("text must not contain NUL or unencodable characters".into());
        }
        Error::Internal(error.into())
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        Error::Refused(refusal)
    }
}

impl Error {
    /// Whether this is a database connection found gone (see
    /// [`crate::db::is_lost`]): the statement may not have run.
    pub fn is_lost_connection(&self) -> bool {
        match self {
            Error::Internal(cause) => cause
                .downcast_ref::<sqlx::Error>()
                .is_some_and(crate::db::is_lost),
            _ => false,
        }
    }

    /// An internal error with a message of our own.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Error::Internal(anyhow::anyhow!("{message}"))
    }

    /// A stable name for logs, metrics and audit rows.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Validation(_) => "validation",
            Error::Unauthorized => "unauthorized",
            Error::Forbidden => "forbidden",
            Error::SecondAdminNeeded => "second_admin_needed",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::InvalidCredentials => "invalid_credentials",
            Error::AccountLocked { .. } => "account_locked",
            Error::WeakPin => "weak_pin",
            Error::IdempotencyConflict => "idempotency_conflict",
            Error::RequestInFlight => "request_in_flight",
            Error::RateLimited { .. } => "rate_limited",
            Error::Refused(refusal) => refusal.as_str(),
            Error::Compliance(compliance) => compliance.rule.as_str(),
            Error::Internal(_) => "internal",
        }
    }

    /// What the customer is told, when it is a refusal they can act on.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Error::Refused(refusal) => Some(*refusal),
            Error::Compliance(compliance) => Some(Refusal::Compliance(compliance.rule)),
            _ => None,
        }
    }
}

/// What was looked for and not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    User,
    Recipient,
    Transaction,
    Block,
    Deposit,
    Quote,
    ReversalRequest,
    Sar,
    Agent,
    Issuance,
    Voucher,
    Route,
    ReconciliationRun,
    ReconciliationItem,
    Merchant,
    ApiKey,
    MerchantPayment,
    PaymentRequest,
    Webhook,
    Delivery,
    Withdrawal,
    PayoutResolution,
    PayoutContradiction,
    PayoutCorrection,
    /// A transaction that exists but is not sealed into a block yet.
    UnsealedTransaction,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Missing::User => "user",
            Missing::Recipient => "recipient",
            Missing::Transaction => "transaction",
            Missing::Block => "block",
            Missing::Deposit => "deposit",
            Missing::Quote => "quote",
            Missing::ReversalRequest => "reversal request",
            Missing::Sar => "SAR",
            Missing::Agent => "agent",
            Missing::Issuance => "issuance",
            Missing::Voucher => "voucher",
            Missing::Route => "route",
            Missing::ReconciliationRun => "reconciliation run",
            Missing::ReconciliationItem => "suspense item",
            Missing::Merchant => "merchant",
            Missing::ApiKey => "API key",
            Missing::MerchantPayment => "payment",
            Missing::PaymentRequest => "payment request",
            Missing::Webhook => "webhook endpoint",
            Missing::Delivery => "delivery",
            Missing::Withdrawal => "withdrawal",
            Missing::PayoutResolution => "payout resolution",
            Missing::PayoutContradiction => "payout contradiction",
            Missing::PayoutCorrection => "payout correction",
            Missing::UnsealedTransaction => "sealed block",
        })
    }
}

/// Why an AML rule refused a movement: the rule (which the customer is
/// told about, in plain words) and what the audit log and a report keep.
#[derive(Debug, Serialize, Deserialize)]
pub struct ComplianceRefusal {
    pub rule: Rule,
    /// Internal detail for the audit row (scores, listed names, amounts).
    #[serde(skip)]
    pub detail: Value,
    /// A report to open along with the refusal: (party, finding).
    #[serde(skip)]
    pub report: Option<(Option<Uuid>, Value)>,
}

impl ComplianceRefusal {
    pub fn new(rule: Rule, detail: Value) -> Self {
        Self {
            rule,
            detail,
            report: None,
        }
    }

    pub fn reported(mut self, party: Option<Uuid>, finding: Value) -> Self {
        self.report = Some((party, finding));
        self
    }
}

impl From<ComplianceRefusal> for Error {
    fn from(refusal: ComplianceRefusal) -> Self {
        Error::Compliance(Box::new(refusal))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_refusal_replays_as_the_same_refusal() {
        for error in [
            Error::Refused(Refusal::InsufficientFunds),
            Error::Compliance(Box::new(ComplianceRefusal::new(
                Rule::DailyLimit,
                Value::Null,
            ))),
            Error::Validation("amount: must be positive".into()),
            Error::NotFound(Missing::Recipient),
        ] {
            let saved = serde_json::to_value(&error).unwrap();
            let replayed: Error = serde_json::from_value(saved).unwrap();
            assert_eq!(replayed.to_string(), error.to_string());
            assert_eq!(replayed.refusal(), error.refusal());
        }
    }

    #[test]
    fn an_internal_error_keeps_its_cause() {
        let cause = anyhow::anyhow!("connection reset").context("reading the outbox");
        let error = Error::from(cause);
        assert_eq!(
            error.to_string(),
            "internal error: reading the outbox: connection reset"
        );
        assert!(
            serde_json::to_value(&error).is_err(),
            "internal errors are never saved"
        );
    }
}
