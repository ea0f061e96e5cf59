//! The USSD menu as a pure state machine.
//!
//! `state + input → step`, where a step either shows a screen (and the next
//! state) or asks the gateway to do something ([`Effect`]: look up a
//! recipient, move money, check a PIN) and report back ([`Outcome`]), after
//! which the machine decides the screen. The machine never sees the
//! database, the network or the clock, so every branch is a unit test.
//!
//! The state is stored between requests (by the gateway, in PostgreSQL) and
//! never holds a PIN: a PIN travels only inside the [`Effect`] of the step
//! where it is typed. Registration compares the confirmation with the first
//! entry by reading it back from the session's own inputs, which Africa's
//! Talking resends with every request.

mod counter;
mod counter_text;
mod desk;
mod desk_text;
mod menu;
mod merchant;
mod merchant_text;
pub mod text;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::lang::Lang;
use crate::phone::Msisdn;
use crate::pin::Pin;
use crate::refusal::Refusal;
pub use counter::VOUCHER_DAYS;
pub use menu::{dial, input, outcome};
pub use text::Texts;

/// The short code customers dial (Africa's Talking's `serviceCode`).
pub const SERVICE_CODE: &str = "*384*123#";

/// What one USSD request answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    /// `CON …`: the session continues.
    Con(String),
    /// `END …`: the session is over.
    End(String),
}

impl Screen {
    /// The reply body as Africa's Talking expects it.
    pub fn render(&self) -> String {
        match self {
            Screen::Con(text) => format!("CON {}", text::fit(text)),
            Screen::End(text) => format!("END {}", text::fit(text)),
        }
    }
}

/// The registered caller, as the gateway knows them.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub lang: Lang,
    pub home_currency: String,
    pub kyc_status: String,
    /// Their agent number, when they are an active agent.
    pub agent_number: Option<String>,
}

/// What the machine may read besides its state.
pub struct Ctx<'a> {
    pub caller: Option<&'a Caller>,
    /// Every input of this session so far, this request's last.
    pub inputs: &'a [String],
    /// Minor-unit digits of a currency (2 for KES).
    pub exponent: &'a (dyn Fn(&str) -> u32 + Sync),
    /// Every supported currency (conversion targets).
    pub currencies: &'a [String],
}

impl Ctx<'_> {
    pub fn lang(&self) -> Lang {
        self.caller.map_or(Lang::En, |c| c.lang)
    }
}

/// Where the caller is in the menu. Serialised into the session row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "at", rename_all = "snake_case")]
pub enum State {
    RegisterName,
    RegisterPin {
        name: String,
    },
    /// `pin_at`: the position of the first PIN entry in the session's inputs.
    RegisterConfirm {
        name: String,
        pin_at: usize,
    },
    Home,
    SendPhone,
    SendCurrency {
        to: String,
        to_name: String,
        options: Vec<String>,
    },
    SendAmount {
        to: String,
        to_name: String,
        currency: String,
    },
    SendConfirm {
        to: String,
        to_name: String,
        currency: String,
        amount: i64,
        tries: u8,
    },
    DepositAmount,
    WithdrawMethod,
    WithdrawAmount,
    WithdrawConfirm {
        amount: i64,
        tries: u8,
    },
    BalancePin {
        tries: u8,
    },
    StatementPin {
        tries: u8,
    },
    Statement {
        lines: Vec<String>,
        page: usize,
    },
    ConvertFrom {
        options: Vec<String>,
    },
    ConvertTo {
        from: String,
        options: Vec<String>,
    },
    ConvertAmount {
        from: String,
        to: String,
    },
    ConvertConfirm {
        quote_id: Uuid,
        to: String,
        tries: u8,
    },
    /// The PIN before the transfers a reversal may be asked for are shown
    /// (amounts and names, as a mini statement's).
    ReversePin {
        tries: u8,
    },
    ReverseChoose {
        items: Vec<(Uuid, String)>,
        page: usize,
    },
    ReverseReason {
        tx_id: Uuid,
        label: String,
    },
    ReverseConfirm {
        tx_id: Uuid,
        label: String,
        reason: String,
        tries: u8,
    },
    Account,
    ChangePinOld,
    ChangePinNew {
        old_at: usize,
    },
    ChangePinConfirm {
        old_at: usize,
        new_at: usize,
    },
    Language,
    VoucherMenu,
    VoucherAmount,
    VoucherConfirm {
        currency: String,
        amount: i64,
        tries: u8,
    },
    VoucherCode,
    /// Withdrawing at an agent: their number, then the amount.
    AgentNumber,
    AgentAmount {
        agent: String,
    },
    CashOutConfirm {
        agent: String,
        agent_name: String,
        currency: String,
        amount: i64,
        tries: u8,
    },
    /// Pay merchant: Buy Goods (a till) or Paybill (a number and account).
    PayMenu,
    PayNumber {
        paybill: bool,
    },
    PayAccount {
        number: String,
    },
    PayAmount {
        paybill: bool,
        number: String,
        account: Option<String>,
    },
    PayConfirm {
        paybill: bool,
        number: String,
        account: Option<String>,
        merchant: String,
        currency: String,
        amount: i64,
        tries: u8,
    },
    /// Payment requests from businesses, waiting for the caller.
    RequestChoose {
        items: Vec<PendingRequest>,
        page: usize,
    },
    /// One request: pay it or decline it.
    RequestAction {
        item: PendingRequest,
    },
    RequestConfirm {
        item: PendingRequest,
        tries: u8,
    },
    /// An agent's own menu.
    AgentMenu,
    CashInPhone,
    CashInAmount {
        phone: String,
    },
    CashInConfirm {
        phone: String,
        name: String,
        currency: String,
        amount: i64,
        tries: u8,
    },
    FloatPin {
        tries: u8,
    },
    AgentVoucherCode,
    /// `code_at`: the position of the typed code in the session's inputs
    /// (the code itself is never stored).
    AgentVoucherPin {
        code_at: usize,
        tries: u8,
    },
    /// Submitting an identity document: its type, then its number.
    IdType,
    IdNumber {
        document_type: String,
    },
    /// Forgot PIN: the one-time code, the new PIN, its confirmation. Only
    /// positions in the session's inputs are kept, never the code or PIN.
    ResetCode,
    ResetPin {
        code_at: usize,
    },
    ResetConfirm {
        code_at: usize,
        new_at: usize,
    },
    /// The session is over; any further input only repeats that.
    Ended,
}

/// A business's request that the caller pay it, as the menu lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    pub id: Uuid,
    /// The business's name.
    pub merchant: String,
    pub currency: String,
    pub amount: i64,
    /// The business's own reference (an invoice or order number).
    pub reference: String,
}

/// Work only the gateway can do. PINs live here, never in [`State`].
#[derive(Debug, Clone)]
pub enum Effect {
    Register {
        name: String,
        pin: Pin,
    },
    FindRecipient {
        phone: Msisdn,
    },
    /// The caller's wallets with money in them.
    Holdings,
    PreviewSend {
        to: Msisdn,
        currency: String,
        amount: i64,
    },
    Send {
        to: Msisdn,
        currency: String,
        amount: i64,
        pin: Pin,
    },
    /// Prompt the caller's phone (M-Pesa STK Push) for a KES deposit.
    Deposit {
        amount: i64,
    },
    PreviewWithdraw {
        amount: i64,
    },
    Withdraw {
        amount: i64,
        pin: Pin,
    },
    Balances {
        pin: Pin,
    },
    Statement {
        pin: Pin,
    },
    Quote {
        from: String,
        to: String,
        amount: i64,
    },
    Convert {
        quote_id: Uuid,
        pin: Pin,
    },
    Eligible {
        pin: Pin,
    },
    Reverse {
        tx_id: Uuid,
        reason: String,
        pin: Pin,
    },
    ChangePin {
        old: Pin,
        new: Pin,
    },
    SetLanguage(Lang),
    PreviewVoucher {
        currency: String,
        amount: i64,
    },
    BuyVoucher {
        currency: String,
        amount: i64,
        pin: Pin,
    },
    RedeemVoucher {
        code: String,
    },
    PreviewCashOut {
        agent: String,
        currency: String,
        amount: i64,
    },
    CashOut {
        agent: String,
        currency: String,
        amount: i64,
        pin: Pin,
    },
    /// The business behind a till or paybill number.
    PreviewPay {
        paybill: bool,
        number: String,
        account: Option<String>,
        currency: String,
        amount: i64,
    },
    Pay {
        paybill: bool,
        number: String,
        account: Option<String>,
        currency: String,
        amount: i64,
        pin: Pin,
    },
    /// The caller's pending payment requests.
    PendingRequests,
    ApproveRequest {
        id: Uuid,
        pin: Pin,
    },
    DeclineRequest {
        id: Uuid,
    },
    PreviewCashIn {
        phone: Msisdn,
        currency: String,
        amount: i64,
    },
    CashIn {
        phone: Msisdn,
        currency: String,
        amount: i64,
        pin: Pin,
    },
    /// The agent's float per currency.
    Float {
        pin: Pin,
    },
    /// An agent redeeming a bearer's voucher for cash.
    CashVoucher {
        code: String,
        pin: Pin,
    },
    SubmitDocument {
        document_type: String,
        number: String,
    },
    /// A new PIN set with the one-time code an operator had sent.
    ResetPin {
        code: String,
        new: Pin,
    },
}

/// What the gateway reports back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Recipient {
        name: String,
    },
    Holdings(Vec<(String, i64)>),
    Preview {
        fee: i64,
    },
    Sent {
        reference: String,
        balance: i64,
    },
    /// The M-Pesa prompt is on its way to the phone.
    DepositStarted,
    Withdrawn {
        reference: String,
        balance: i64,
    },
    Balances(Vec<(String, i64)>),
    Statement(Vec<String>),
    Quote {
        quote_id: Uuid,
        amount: i64,
        converted: i64,
        rate: String,
        fee: i64,
    },
    Converted {
        reference: String,
        converted: i64,
        balance: i64,
    },
    Eligible(Vec<(Uuid, String)>),
    ReversalRequested {
        reference: String,
    },
    /// The code is on its way by SMS (never on a screen).
    VoucherBought {
        reference: String,
    },
    VoucherRedeemed {
        reference: String,
        currency: String,
        amount: i64,
        /// The wallet's, or for an agent the float's, new balance.
        balance: i64,
    },
    /// Payment requests waiting for the caller, oldest first.
    PaymentRequests(Vec<PendingRequest>),
    /// The business a payment would go to.
    MerchantFound {
        name: String,
    },
    /// The agent a cash-out would go to, and its fee.
    AgentFound {
        name: String,
        fee: i64,
    },
    /// The customer a cash-in would reach, and the agent's commission.
    CustomerFound {
        name: String,
        commission: i64,
    },
    CashedIn {
        reference: String,
        float: i64,
    },
    Float(Vec<(String, i64)>),
    /// The number is not registered.
    Unknown,
    WrongPin {
        locked: bool,
    },
    WeakPin,
    /// Refused for a reason the customer can read (funds, limits, compliance).
    Refused(Refusal),
    /// The request's details were not accepted (a validation problem).
    Invalid,
    /// Something broke on our side.
    Failed,
}

/// What the machine does next.
#[derive(Debug, Clone)]
pub enum Step {
    Show(Screen, State),
    /// Do the effect, then call [`outcome`] with this state and the result.
    Do(Effect, State),
}

/// Parses a typed amount in major units (`250`, `250.5`) into minor units.
pub fn parse_amount(input: &str, exponent: u32) -> Option<i64> {
    let (whole, fraction) = input.split_once('.').unwrap_or((input, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    if fraction.len() > exponent as usize || whole.len() > 13 {
        return None;
    }
    let scale = 10i64.pow(exponent);
    let whole: i64 = whole.parse().ok()?;
    let fraction: i64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<width$}", width = exponent as usize)
            .parse()
            .ok()?
    };
    let minor = whole.checked_mul(scale)?.checked_add(fraction)?;
    (minor > 0).then_some(minor)
}

#[cfg(test)]
mod machine_tests;

#[cfg(any(test, feature = "exercise"))]
pub mod exercise;

#[cfg(test)]
mod machine_props;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_amounts_become_minor_units() {
        assert_eq!(parse_amount("250", 2), Some(25_000));
        assert_eq!(parse_amount("250.5", 2), Some(25_050));
        assert_eq!(parse_amount("0.01", 2), Some(1));
        assert_eq!(parse_amount("1500", 0), Some(1_500));
        for bad in [
            "",
            "0",
            "-5",
            "1.234",
            "1.5.0",
            "abc",
            ".5",
            "12a",
            "99999999999999",
        ] {
            assert_eq!(parse_amount(bad, 2), None, "{bad}");
        }
        assert_eq!(parse_amount("1.5", 0), None);
    }
}
