//! Peer-to-peer transfers in one currency, with the tiered fee on top.

use chainpay_core::fees::FeeKind;
use chainpay_core::ledger::{transfer_entry, TransferAccounts};
use chainpay_core::notify::{Party, Sms};
use chainpay_core::refusal::Refusal;
use chainpay_core::status::TxStatus;
use chainpay_core::transaction::{TxFacts, TxType};
use chainpay_core::{Amount, CurrencyCode, Msisdn};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::book::{book, Booking};
use super::parties::{self, Parties, Person};
use super::Operation;
use crate::audit::{AuditEvent, Outcome};
use crate::error::{Error, Missing};
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
    usd_cents: i64,
    fee_minor: i64,
}

impl SendOrder {
    async fn price(&self, conn: &mut PgConnection, rules: &Rules) -> Result<Priced, Error> {
        let currency = self.currency.as_str();
        rules
            .rates
            .leg(currency)
            .map_err(|_| Error::Validation(format!("unsupported currency {currency}")))?;
        let parties = parties::load(conn, self.from_user_id, Some(self.to_phone.as_str())).await?;
        let recipient = parties
            .counterparty
            .clone()
            .ok_or(Error::NotFound(Missing::Recipient))?;
        if recipient.party.user_id == self.from_user_id {
            return Err(Refusal::SelfPayment.into());
        }
        if !recipient.can_receive() {
            return Err(Refusal::RecipientCannotReceive.into());
        }
        let amount = self.amount.minor();
        let usd_cents = rules.rates.usd_cents(currency, amount).map_err(fx_error)?;
        let fee_minor = rules
            .fees
            .fee(FeeKind::Send, &rules.rates, currency, amount)
            .map_err(fx_error)?;
        Ok(Priced {
            parties,
            recipient,
            usd_cents,
            fee_minor,
        })
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
            fee: priced.fee_minor,
            total: self.amount.minor() + priced.fee_minor,
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
        let report =
            parties::aml_gate(conn, state, rules, &priced.parties, priced.usd_cents).await?;
        let currency = self.currency.as_str();
        let (amount, fee) = (self.amount.minor(), priced.fee_minor);
        let tx_id = Uuid::new_v4();
        let (sender, recipient) = (&priced.parties.sender, &priced.recipient);
        let source = AccountRef::wallet(self.from_user_id, currency);
        let target = AccountRef::wallet(recipient.party.user_id, currency);
        let accounts = TransferAccounts {
            source_wallet: source.clone(),
            target_wallet: target.clone(),
            fee_revenue: AccountRef::fee_revenue(currency, tx_id),
        };
        let entry = transfer_entry(accounts, &self.currency, amount, fee)
            .map_err(|e| Error::Validation(e.to_string()))?;
        let detail = json!({"amount": amount, "fee": fee, "currency": currency,
                            "to": self.to_phone.as_str(), "usd_cents": priced.usd_cents});
        let booking = Booking {
            facts: TxFacts::now(
                tx_id,
                TxType::Transfer,
                currency,
                (amount, fee),
                Some(self.from_user_id),
                Some(recipient.party.user_id),
            ),
            entry,
            note: self.note.clone(),
            usd_cents: Some(priced.usd_cents),
            status: TxStatus::Completed,
            audit: AuditEvent::new(Self::ACTION, Outcome::Success)
                .actor(self.from_user_id)
                .detail(detail.clone()),
        };
        let shown = |minor| rules.show(currency, minor);
        let booked = book(conn, &state.keys.tx_signing, booking, |booked| {
            let receipt = booked.receipt();
            let (payer, payee) = (&sender.party, &recipient.party);
            let sent = Sms(sender.lang).sent(
                receipt,
                &shown(amount),
                Party {
                    name: &payee.name,
                    phone: &payee.phone,
                },
                &shown(booked.balance_of(&source)),
                &shown(fee),
            );
            let received = Sms(recipient.lang).received(
                receipt,
                &shown(amount),
                Party {
                    name: &payer.name,
                    phone: &payer.phone,
                },
                &shown(booked.balance_of(&target)),
            );
            vec![(payer.phone.clone(), sent), (payee.phone.clone(), received)]
        })
        .await?;
        parties::file_report(conn, report, self.from_user_id, tx_id, detail).await?;
        Ok(booked.view(
            Some(sender.party.phone.clone()),
            Some(self.to_phone.to_string()),
        ))
    }
}
