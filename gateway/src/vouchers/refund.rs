//! A voucher's amount back to its buyer: on cancel (the buyer, through the
//! pipeline, so a retry refunds nothing twice) or at expiry (a job, one
//! voucher per short transaction, `SKIP LOCKED` so instances share it). The
//! fee stays earned.

use chainpay_core::ledger::move_entry;
use chainpay_core::notify::{Return, Sms};
use chainpay_core::refusal::Refusal;
use chainpay_core::status::TxStatus;
use chainpay_core::transaction::{TxFacts, TxType};
use chainpay_core::CurrencyCode;
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{lock, settle, Locked};
use crate::audit::{AuditEvent, Outcome};
use crate::error::{Error, Missing};
use crate::idempotency::IdempotencyKey;
use crate::ledger::accounts::AccountRef;
use crate::movements::book::{book, Booking};
use crate::movements::{self, Operation, Reply};
use crate::rules::Rules;
use crate::state::AppState;
use crate::transactions::TxView;

/// Vouchers refunded per expiry pass.
const EXPIRY_BATCH: usize = 100;

struct CancelOrder {
    voucher_id: Uuid,
    user_id: Uuid,
}

/// Cancels the caller's active voucher and refunds its amount.
pub async fn cancel(
    state: &AppState,
    user_id: Uuid,
    voucher_id: Uuid,
    key: Option<IdempotencyKey>,
) -> Reply {
    movements::run(
        state,
        &CancelOrder {
            voucher_id,
            user_id,
        },
        key,
    )
    .await
}

impl Operation for CancelOrder {
    const ACTION: &'static str = "voucher.cancel";
    const KIND: &'static str = "voucher_refund";

    fn actor(&self) -> Uuid {
        self.user_id
    }

    fn currency(&self) -> &str {
        ""
    }

    fn describe(&self) -> Value {
        json!({ "voucher_id": self.voucher_id })
    }

    async fn execute(
        &self,
        conn: &mut PgConnection,
        state: &AppState,
        rules: &Rules,
    ) -> Result<TxView, Error> {
        let voucher = lock(conn, self.voucher_id).await?;
        // Someone else's voucher is none of the caller's business.
        if voucher.issuer_id != self.user_id {
            return Err(Error::NotFound(Missing::Voucher));
        }
        if !voucher.active() {
            return Err(Refusal::VoucherSpent.into());
        }
        refund(conn, state, rules, &voucher, Return::Cancelled).await
    }
}

/// Refunds vouchers past their expiry; returns how many.
pub async fn expire_due(state: &AppState) -> Result<usize, Error> {
    let rules = state.rules.get(&state.pool).await?;
    let mut refunded = 0;
    while refunded < EXPIRY_BATCH {
        let mut tx = state.pool.begin().await?;
        let due = sqlx::query_scalar!(
            "SELECT id FROM vouchers WHERE status = 'ACTIVE' AND expires_at <= now()
             ORDER BY expires_at LIMIT 1 FOR UPDATE SKIP LOCKED"
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = due else { break };
        let voucher = lock(&mut tx, id).await?;
        refund(&mut tx, state, &rules, &voucher, Return::Expired).await?;
        tx.commit().await?;
        refunded += 1;
    }
    Ok(refunded)
}

/// The liability pays the buyer back; the voucher is settled.
async fn refund(
    conn: &mut PgConnection,
    state: &AppState,
    rules: &Rules,
    voucher: &Locked,
    why: Return,
) -> Result<TxView, Error> {
    let currency = voucher.currency.as_str();
    let code = CurrencyCode::parse(currency).map_err(|e| Error::internal(e.to_string()))?;
    let wallet = AccountRef::wallet(voucher.issuer_id, currency);
    let entry = move_entry(
        AccountRef::voucher_liability(currency),
        wallet.clone(),
        &code,
        voucher.amount,
    )
    .map_err(|e| Error::Validation(e.to_string()))?;
    let tx_id = crate::ledger::new_tx_id();
    let (action, status) = match why {
        Return::Cancelled => ("voucher.cancel", "CANCELLED"),
        Return::Expired => ("voucher.expire", "EXPIRED"),
    };
    let mut audit = AuditEvent::new(action, Outcome::Success)
        .detail(json!({"voucher_id": voucher.id, "amount": voucher.amount, "currency": currency}));
    if why == Return::Cancelled {
        audit = audit.actor(voucher.issuer_id);
    }
    let booking = Booking {
        facts: TxFacts::now(
            tx_id,
            TxType::VoucherRefund,
            currency,
            (voucher.amount, 0),
            None,
            Some(voucher.issuer_id),
        ),
        entry,
        note: None,
        usd_cents: None,
        status: TxStatus::Completed,
        audit,
    };
    let shown = |minor| rules.show(currency, minor);
    let booked = book(conn, &state.keys.tx_signing, booking, |booked| {
        let text = Sms(voucher.issuer_lang).voucher_returned(
            booked.receipt(),
            &shown(voucher.amount),
            &voucher.code_hint,
            why,
            &shown(booked.available_of(&wallet)),
        );
        vec![(voucher.issuer_phone.clone(), text)]
    })
    .await?;
    settle(conn, voucher.id, status, tx_id, None).await?;
    Ok(booked.view(None, Some(voucher.issuer_phone.clone())))
}
