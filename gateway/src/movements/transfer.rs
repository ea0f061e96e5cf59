//! Peer-to-peer transfers in one currency, with the tiered fee on top.

use chainpay_core::fees::FeeKind;
use chainpay_core::ledger::{transfer_entry, TransferAccounts};
use chainpay_core::transaction::{now_micros, TxFacts, TxType};
use chainpay_core::{Amount, CurrencyCode, Msisdn};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::parties::{self, Parties, Person};
use super::{post_error, Operation};
use crate::audit::{AuditEvent, Outcome};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::ledger::accounts::{self, AccountRef};
use crate::ledger::post::{post, Movement};
use crate::rules::Rules;
use crate::sms::outbox;
use crate::transactions::TxView;
use chainpay_core::notify;
use chainpay_core::ussd::money;

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
    async fn price(&self, conn: &mut PgConnection, rules: &Rules) -> Result<Priced, ApiError> {
        let currency = self.currency.as_str();
        rules
            .rates
            .leg(currency)
            .map_err(|_| ApiError::Validation(format!("unsupported currency {currency}")))?;
        let parties = parties::load(conn, self.from_user_id, Some(self.to_phone.as_str())).await?;
        let recipient = parties
            .counterparty
            .clone()
            .ok_or(ApiError::NotFound("recipient"))?;
        if recipient.party.user_id == self.from_user_id {
            return Err(ApiError::Validation(
                "you cannot send money to yourself".into(),
            ));
        }
        if !recipient.can_receive() {
            return Err(ApiError::AccountSuspended(
                "the recipient's account cannot receive payments",
            ));
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
    pub async fn preview(&self, state: &AppState) -> Result<SendPreview, ApiError> {
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
pub fn fx_error(error: chainpay_core::fx::FxError) -> ApiError {
    ApiError::Validation(error.to_string())
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
    ) -> Result<TxView, ApiError> {
        let priced = self.price(conn, rules).await?;
        let report =
            parties::aml_gate(conn, state, rules, &priced.parties, priced.usd_cents).await?;

        let currency = self.currency.as_str();
        let tx_id = Uuid::new_v4();
        let recipient_id = priced.recipient.party.user_id;
        let ids = accounts::resolve(
            conn,
            &[
                AccountRef::wallet(self.from_user_id, currency),
                AccountRef::wallet(recipient_id, currency),
                AccountRef::fee_revenue(currency, tx_id),
            ],
        )
        .await?
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "wallet or fee account missing for {currency}"
            ))
        })?;
        let ledger_accounts = TransferAccounts {
            source_wallet: ids[0],
            target_wallet: ids[1],
            fee_revenue: ids[2],
        };
        let entry = transfer_entry(
            ledger_accounts,
            &self.currency,
            self.amount.minor(),
            priced.fee_minor,
        )
        .map_err(|e| ApiError::Validation(e.to_string()))?;
        let facts = TxFacts {
            tx_id,
            tx_type: TxType::Transfer,
            amount_minor: self.amount.minor(),
            fee_minor: priced.fee_minor,
            currency: currency.to_owned(),
            from_user_id: Some(self.from_user_id),
            to_user_id: Some(recipient_id),
            created_at: now_micros(),
            conversion: None,
        };
        let movement = Movement {
            facts: facts.clone(),
            note: self.note.clone(),
            entry,
            usd_cents: Some(priced.usd_cents),
            status: "COMPLETED",
        };
        let posted = post(conn, &movement, &state.keys.tx_signing)
            .await
            .map_err(post_error)?;
        let exponent = rules.rates.leg(currency).map_or(2, |leg| leg.exponent);
        let shown = |minor| money(currency, minor, exponent);
        let (sender, recipient) = (&priced.parties.sender.party, &priced.recipient.party);
        let sent = notify::sent(
            tx_id,
            facts.created_at,
            &shown(facts.amount_minor),
            notify::Party {
                name: &recipient.name,
                phone: &recipient.phone,
            },
            &shown(posted.balance_of(ledger_accounts.source_wallet)),
            &shown(facts.fee_minor),
        );
        let received = notify::received(
            tx_id,
            facts.created_at,
            &shown(facts.amount_minor),
            notify::Party {
                name: &sender.name,
                phone: &sender.phone,
            },
            &shown(posted.balance_of(ledger_accounts.target_wallet)),
        );
        outbox::queue_all(
            conn,
            &[(&sender.phone, &sent), (&recipient.phone, &received)],
            Some(tx_id),
        )
        .await?;
        let signature = posted.signature;
        let detail = json!({"amount": facts.amount_minor, "fee": facts.fee_minor, "currency": currency,
                            "to": self.to_phone.as_str(), "usd_cents": priced.usd_cents});
        parties::file_report(conn, report, self.from_user_id, tx_id, detail.clone()).await?;
        AuditEvent::new(Self::ACTION, Outcome::Success)
            .actor(self.from_user_id)
            .subject(tx_id)
            .detail(detail)
            .record(conn)
            .await?;
        Ok(TxView::posted(
            &movement,
            signature,
            Some(priced.parties.sender.party.phone.clone()),
            Some(self.to_phone.to_string()),
        ))
    }
}
