//! Peer-to-peer transfers in one currency, with the tiered fee on top.

use chainpay_core::fees::FeeKind;
use chainpay_core::ledger::JournalEntry;
use chainpay_core::ledger::{transfer_entry, TransferAccounts};
use chainpay_core::notify::{Party, Receipt, Sms};
use chainpay_core::refusal::Refusal;
use chainpay_core::status::TxStatus;
use chainpay_core::transaction::{TxFacts, TxType};
use chainpay_core::{Amount, CurrencyCode, Msisdn};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::book::{book, Booking, Text};
use super::parties::{self, Parties, Person};
use super::{Operation, Reply};
use crate::audit::{AuditEvent, Outcome};
use crate::error::{Error, Missing};
use crate::idempotency::IdempotencyKey;
use crate::ledger::accounts::AccountRef;
use crate::rules::Rules;
use crate::state::AppState;
use crate::transactions::TxView;

/// A validated request to pay `amount` of `currency` to `to_phone`.
#[derive(Debug, Clone)]
pub struct SendOrder {
    pub from_user_id: Uuid,
    pub to_phone: Msisdn,
    pub amount: Amount,
    pub currency: CurrencyCode,
    pub note: Option<String>,
}

/// What the sender confirms before paying (REST preview, USSD confirm screen).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SendPreview {
    pub to_phone: String,
    /// The recipient's registered name.
    pub recipient_name: String,
    pub amount: i64,
    pub fee: i64,
    /// `amount + fee`: what leaves the sender's wallet.
    pub total: i64,
    pub currency: String,
}

/// The checks and prices shared by the preview and the transfer itself.
struct Priced {
    parties: Parties,
    recipient: Person,
    quote: Quote,
}

/// What a transfer costs, from the rules alone.
#[derive(Debug, Clone, Copy)]
pub struct Quote {
    /// USD value for the sender's AML windows.
    pub usd_cents: i64,
    pub fee_minor: i64,
}

/// A transfer as both ways of posting one write it: its facts, its entry
/// (accounts by reference) and what its audit row says.
pub struct Plan<'a> {
    pub facts: TxFacts,
    pub entry: JournalEntry<AccountRef<'a>>,
    pub source: AccountRef<'a>,
    pub target: AccountRef<'a>,
    pub detail: Value,
}

impl SendOrder {
    /// The fee and USD value of this transfer; a currency or amount the
    /// rate book cannot price is the client's to fix.
    pub fn quote(&self, rules: &Rules) -> Result<Quote, Error> {
        let currency = self.currency.as_str();
        rules
            .rates
            .leg(currency)
            .map_err(|_| Error::Validation(format!("unsupported currency {currency}")))?;
        let amount = self.amount.minor();
        let usd_cents = rules.rates.usd_cents(currency, amount).map_err(fx_error)?;
        let fee_minor = rules
            .fees
            .fee(FeeKind::Send, &rules.rates, currency, amount)
            .map_err(fx_error)?;
        Ok(Quote {
            usd_cents,
            fee_minor,
        })
    }

    /// The registered recipient, if money may be paid to them.
    pub fn recipient(&self, counterparty: Option<&Person>) -> Result<Person, Error> {
        let recipient = counterparty
            .cloned()
            .ok_or(Error::NotFound(Missing::Recipient))?;
        if recipient.party.user_id == self.from_user_id {
            return Err(Refusal::SelfPayment.into());
        }
        if !recipient.can_receive() {
            return Err(Refusal::RecipientCannotReceive.into());
        }
        Ok(recipient)
    }

    async fn price(&self, conn: &mut PgConnection, rules: &Rules) -> Result<Priced, Error> {
        let quote = self.quote(rules)?;
        let parties = parties::load(conn, self.from_user_id, Some(self.to_phone.as_str())).await?;
        parties.sender.may_send()?;
        let recipient = self.recipient(parties.counterparty.as_ref())?;
        Ok(Priced {
            parties,
            recipient,
            quote,
        })
    }

    /// The transfer `tx_id` to `recipient` at `quote`, its fee credited to
    /// `fee_revenue`.
    pub fn plan<'a>(
        &'a self,
        recipient: &Person,
        quote: Quote,
        tx_id: Uuid,
        fee_revenue: AccountRef<'a>,
    ) -> Result<Plan<'a>, Error> {
        let currency = self.currency.as_str();
        let (amount, fee) = (self.amount.minor(), quote.fee_minor);
        let source = AccountRef::wallet(self.from_user_id, currency);
        let target = AccountRef::wallet(recipient.party.user_id, currency);
        let accounts = TransferAccounts {
            source_wallet: source.clone(),
            target_wallet: target.clone(),
            fee_revenue,
        };
        let entry = transfer_entry(accounts, &self.currency, amount, fee)
            .map_err(|e| Error::Validation(e.to_string()))?;
        let facts = TxFacts::now(
            tx_id,
            TxType::Transfer,
            currency,
            (amount, fee),
            Some(self.from_user_id),
            Some(recipient.party.user_id),
        );
        let detail = json!({"amount": amount, "fee": fee, "currency": currency,
                            "to": self.to_phone.as_str(), "usd_cents": quote.usd_cents});
        Ok(Plan {
            facts,
            entry,
            source,
            target,
            detail,
        })
    }

    /// The two confirmations of a posted transfer: the sender's and the
    /// recipient's, each in their language, citing their new balance.
    pub fn texts(
        &self,
        rules: &Rules,
        (sender, recipient): (&Person, &Person),
        receipt: Receipt,
        fee: i64,
        (sender_balance, recipient_balance): (i64, i64),
    ) -> Vec<Text> {
        let currency = self.currency.as_str();
        let shown = |minor| rules.show(currency, minor);
        let amount = self.amount.minor();
        let (payer, payee) = (&sender.party, &recipient.party);
        let sent = Sms(sender.lang).sent(
            receipt,
            &shown(amount),
            Party {
                name: &payee.name,
                phone: &payee.phone,
            },
            &shown(sender_balance),
            &shown(fee),
        );
        let received = Sms(recipient.lang).received(
            receipt,
            &shown(amount),
            Party {
                name: &payer.name,
                phone: &payer.phone,
            },
            &shown(recipient_balance),
        );
        vec![(payer.phone.clone(), sent), (payee.phone.clone(), received)]
    }

    /// The fee and recipient a transfer would have, without moving money.
    pub async fn preview(&self, state: &AppState) -> Result<SendPreview, Error> {
        let rules = state.rules.get(&state.pool).await?;
        let mut conn = state.pool.acquire().await?;
        let priced = self.price(&mut conn, &rules).await?;
        Ok(SendPreview {
            to_phone: self.to_phone.to_string(),
            recipient_name: priced.recipient.party.name,
            amount: self.amount.minor(),
            fee: priced.quote.fee_minor,
            total: self.amount.minor() + priced.quote.fee_minor,
            currency: self.currency.to_string(),
        })
    }
}

/// Amount problems found while pricing are the client's to fix.
pub fn fx_error(error: chainpay_core::fx::FxError) -> Error {
    Error::Validation(error.to_string())
}

impl Operation for SendOrder {
    const ACTION: &'static str = "wallet.send";
    const KIND: &'static str = "transfer";

    fn actor(&self) -> Uuid {
        self.from_user_id
    }

    fn currency(&self) -> &str {
        self.currency.as_str()
    }

    fn describe(&self) -> Value {
        json!({"to": self.to_phone.as_str(), "amount": self.amount.minor(), "currency": self.currency.as_str()})
    }

    async fn execute(
        &self,
        conn: &mut PgConnection,
        state: &AppState,
        rules: &Rules,
    ) -> Result<TxView, Error> {
        let priced = self.price(conn, rules).await?;
        let quote = priced.quote;
        let report =
            parties::aml_gate(conn, state, rules, &priced.parties, quote.usd_cents).await?;
        let tx_id = crate::ledger::new_tx_id();
        let fee_revenue = AccountRef::fee_revenue(self.currency.as_str(), tx_id);
        let plan = self.plan(&priced.recipient, quote, tx_id, fee_revenue)?;
        let (sender, recipient) = (&priced.parties.sender, &priced.recipient);
        let booking = Booking {
            facts: plan.facts,
            entry: plan.entry,
            note: self.note.clone(),
            usd_cents: Some(quote.usd_cents),
            status: TxStatus::Completed,
            audit: AuditEvent::new(Self::ACTION, Outcome::Success)
                .actor(self.from_user_id)
                .detail(plan.detail.clone()),
        };
        let (source, target) = (&plan.source, &plan.target);
        let booked = book(conn, &state.keys.tx_signing, booking, |booked| {
            let balances = (booked.available_of(source), booked.available_of(target));
            self.texts(
                rules,
                (sender, recipient),
                booked.receipt(),
                quote.fee_minor,
                balances,
            )
        })
        .await?;
        parties::file_report(conn, report, self.from_user_id, tx_id, plan.detail).await?;
        Ok(booked.view(
            Some(sender.party.phone.clone()),
            Some(self.to_phone.to_string()),
        ))
    }

    async fn submit(&self, state: &AppState, key: Option<IdempotencyKey>) -> Reply {
        state.engine.send(state, self.clone(), key).await
    }
}
