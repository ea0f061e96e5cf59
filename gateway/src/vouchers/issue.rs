//! Buying a voucher: the wallet pays amount and fee, the voucher liability
//! holds the amount, and the buyer gets the code by SMS (sealed in the
//! outbox; operators see it masked) and in the response.

use chainpay_core::fees::FeeKind;
use chainpay_core::ledger::{transfer_entry, TransferAccounts};
use chainpay_core::notify::Sms;
use chainpay_core::status::TxStatus;
use chainpay_core::transaction::{TxFacts, TxType};
use chainpay_core::voucher::{self, Terms};
use chainpay_core::{Amount, CurrencyCode};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{open_code, seal_code};
use crate::audit::{AuditEvent, Outcome};
use crate::error::{Error, Missing};
use crate::ledger::accounts::AccountRef;
use crate::movements::book::{book, Booked, Booking};
use crate::movements::parties::{self, Person};
use crate::movements::transfer::fx_error;
use crate::movements::Operation;
use crate::rules::Rules;
use crate::sms::outbox;
use crate::state::AppState;
use crate::transactions::TxView;

/// A customer's request to buy a voucher of `amount`, valid `days`.
#[derive(Debug, Clone)]
pub struct VoucherOrder {
    pub user_id: Uuid,
    pub amount: Amount,
    pub currency: CurrencyCode,
    pub days: i64,
}

/// A bought voucher, code included: what the buyer hands on.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Created {
    pub voucher_id: Uuid,
    /// 16 digits with a check digit; whoever has it can redeem it once.
    pub code: String,
    /// The signed form (`cpv1.…`), checkable offline.
    pub signed: String,
    pub amount: i64,
    pub fee: i64,
    pub currency: String,
    pub expires_at: DateTime<Utc>,
    /// The purchase's transaction.
    pub tx_id: Uuid,
}

impl Operation for VoucherOrder {
    const ACTION: &'static str = "voucher.create";
    const KIND: &'static str = "voucher";

    fn actor(&self) -> Uuid {
        self.user_id
    }

    fn currency(&self) -> &str {
        self.currency.as_str()
    }

    fn describe(&self) -> Value {
        json!({"amount": self.amount.minor(), "currency": self.currency.as_str(), "days": self.days})
    }

    async fn execute(
        &self,
        conn: &mut PgConnection,
        state: &AppState,
        rules: &Rules,
    ) -> Result<TxView, Error> {
        let currency = self.currency.as_str();
        let amount = self.amount.minor();
        rules
            .rates
            .leg(currency)
            .map_err(|_| Error::Validation(format!("unsupported currency {currency}")))?;
        let parties = parties::load(conn, self.user_id, None).await?;
        let usd_cents = rules.rates.usd_cents(currency, amount).map_err(fx_error)?;
        let report = parties::aml_gate(conn, state, rules, &parties, usd_cents).await?;
        let fee = rules
            .fees
            .fee(FeeKind::Voucher, &rules.rates, currency, amount)
            .map_err(fx_error)?;
        let tx_id = crate::ledger::new_tx_id();
        let accounts = TransferAccounts {
            source_wallet: AccountRef::wallet(self.user_id, currency),
            target_wallet: AccountRef::voucher_liability(currency),
            fee_revenue: AccountRef::fee_revenue(currency, tx_id),
        };
        let entry = transfer_entry(accounts, &self.currency, amount, fee)
            .map_err(|e| Error::Validation(e.to_string()))?;
        let detail = json!({"amount": amount, "fee": fee, "currency": currency, "usd_cents": usd_cents, "days": self.days});
        let booking = Booking {
            facts: TxFacts::now(
                tx_id,
                TxType::Voucher,
                currency,
                (amount, fee),
                Some(self.user_id),
                None,
            ),
            entry,
            note: None,
            usd_cents: Some(usd_cents),
            status: TxStatus::Completed,
            audit: AuditEvent::new(Self::ACTION, Outcome::Success)
                .actor(self.user_id)
                .detail(detail),
        };
        // The SMS carries the code, so it is queued sealed (`issue_code`).
        let booked = book(conn, &state.keys.tx_signing, booking, |_| Vec::new()).await?;
        let signed = self
            .issue_code(conn, (state, rules), &parties.sender, &booked, fee)
            .await?;
        parties::file_report(
            conn,
            report,
            self.user_id,
            tx_id,
            json!({"voucher": signed}),
        )
        .await?;
        Ok(booked.view(Some(parties.sender.party.phone.clone()), None))
    }
}

impl VoucherOrder {
    /// Draws the code, stores the voucher and queues the buyer's SMS with
    /// the code sealed; returns the signed form.
    async fn issue_code(
        &self,
        conn: &mut PgConnection,
        (state, rules): (&AppState, &Rules),
        sender: &Person,
        booked: &Booked<'_>,
        fee: i64,
    ) -> Result<String, Error> {
        let (currency, amount, tx_id) = (
            self.currency.as_str(),
            self.amount.minor(),
            booked.movement.facts.tx_id,
        );
        let wallet = AccountRef::wallet(self.user_id, currency);
        let code = voucher::new_code();
        // Whole seconds: the signed form states the expiry in seconds.
        let expires_at = booked.movement.facts.created_at + Duration::days(self.days);
        let expires_at = DateTime::from_timestamp(expires_at.timestamp(), 0).unwrap_or(expires_at);
        let signed = record(conn, state, self, (tx_id, fee), &code, expires_at).await?;
        let shown = |minor| rules.show(currency, minor);
        let text = |code: &str| {
            let balance = shown(booked.available_of(&wallet));
            Sms(sender.lang).voucher_created(
                booked.receipt(),
                &shown(amount),
                code,
                expires_at,
                &balance,
                &shown(fee),
            )
        };
        let masked = text(&format!("**** **** **** {}", &code[code.len() - 4..]));
        let full = text(&voucher::grouped(&code));
        outbox::queue_sealed(
            conn,
            &state.keys.master,
            &sender.party.phone,
            &masked,
            &full,
            Some(tx_id),
        )
        .await?;
        Ok(signed)
    }
}

/// Stores the voucher (digest, sealed code, signed form); returns the
/// signed form.
async fn record(
    conn: &mut PgConnection,
    state: &AppState,
    order: &VoucherOrder,
    (tx_id, fee): (Uuid, i64),
    code: &str,
    expires_at: DateTime<Utc>,
) -> Result<String, Error> {
    let serial = sqlx::query_scalar!(r#"SELECT nextval('vouchers_serial_seq') AS "serial!""#)
        .fetch_one(&mut *conn)
        .await?;
    let terms = Terms {
        serial,
        amount_minor: order.amount.minor(),
        currency: order.currency.to_string(),
        expires_at,
    };
    let signed = terms.sign(&state.keys.voucher_signing);
    sqlx::query!(
        "INSERT INTO vouchers (id, serial, code_digest, code_sealed, code_hint, issuer_id, amount, fee, currency,
                               expires_at, signed, issue_tx_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        Uuid::new_v4(),
        serial,
        voucher::digest(&state.keys.voucher_digest, code),
        seal_code(&state.keys.master, code),
        &code[code.len() - 4..],
        order.user_id,
        order.amount.minor(),
        fee,
        order.currency.as_str(),
        expires_at,
        signed,
        tx_id
    )
    .execute(conn)
    .await?;
    Ok(signed)
}

/// The voucher a purchase created, code included (for the buyer's
/// response, first time or replayed).
pub async fn created(state: &AppState, buyer: Uuid, tx_id: Uuid) -> Result<Created, Error> {
    let row = sqlx::query!(
        "SELECT id, code_sealed, signed, amount, fee, currency, expires_at FROM vouchers
         WHERE issue_tx_id = $1 AND issuer_id = $2",
        tx_id,
        buyer
    )
    .fetch_optional(&state.pool)
    .await?
    .ok_or(Error::NotFound(Missing::Voucher))?;
    Ok(Created {
        voucher_id: row.id,
        code: open_code(&state.keys.master, &row.code_sealed)?,
        signed: row.signed,
        amount: row.amount,
        fee: row.fee,
        currency: row.currency,
        expires_at: row.expires_at,
        tx_id,
    })
}
