//! A merchant refunds a payment, in full or in part: the merchant's
//! account pays the customer's wallet, never more than is left of the
//! payment (its transaction's row is locked while earlier refunds are
//! summed; payments themselves are append-only) and only
//! within `CHAINPAY_REFUND_WINDOW_DAYS`. The merchant's fee on the payment
//! is not returned. The customer gets an SMS naming the business.

use chainpay_core::ledger::move_entry;
use chainpay_core::notify::Sms;
use chainpay_core::status::TxStatus;
use chainpay_core::transaction::{TxFacts, TxType};
use chainpay_core::{CurrencyCode, Lang};
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use super::book::{book, Booking};
use super::parties;
use super::transfer::fx_error;
use super::Operation;
use crate::audit::{AuditEvent, Outcome};
use crate::error::{Error, Missing};
use crate::ledger::accounts::AccountRef;
use crate::merchants::keys::MerchantCaller;
use crate::merchants::webhooks;
use crate::rules::Rules;
use crate::state::AppState;
use crate::transactions::TxView;

/// A refund asked for by a merchant (its owner or one of its keys).
#[derive(Debug, Clone)]
pub struct RefundOrder {
    pub caller: MerchantCaller,
    pub payment_tx_id: Uuid,
    /// `None`: whatever is left of the payment.
    pub amount: Option<i64>,
    /// The payment's currency (read when the order is made, for metrics).
    pub currency: String,
}

impl RefundOrder {
    /// An order for one of the caller's own payments.
    pub async fn new(
        state: &AppState,
        caller: MerchantCaller,
        payment_tx_id: Uuid,
        amount: Option<i64>,
    ) -> Result<Self, Error> {
        if amount.is_some_and(|a| a <= 0) {
            return Err(Error::Validation(
                "amount: a positive number of minor units".into(),
            ));
        }
        let currency = sqlx::query_scalar!(
            "SELECT currency FROM merchant_payments WHERE tx_id = $1 AND merchant_id = $2",
            payment_tx_id,
            caller.merchant_id
        )
        .fetch_optional(&state.pool)
        .await?
        .ok_or(Error::NotFound(Missing::MerchantPayment))?;
        Ok(Self {
            caller,
            payment_tx_id,
            amount,
            currency,
        })
    }

    /// Both sides screened, as every other movement is: a listed owner
    /// cannot move the business's money out by refunding, nor a listed
    /// customer receive it; nor can a suspended owner refund.
    async fn screen(
        &self,
        conn: &mut PgConnection,
        (state, rules): (&AppState, &Rules),
        payment: &Refundable,
        amount: i64,
    ) -> Result<(), Error> {
        let usd_cents = rules
            .rates
            .usd_cents(&self.currency, amount)
            .map_err(fx_error)?;
        let parties =
            parties::load(conn, self.caller.owner_id, Some(&payment.customer_phone)).await?;
        parties.sender.may_send()?;
        parties::screen(conn, state, rules, &parties, usd_cents).await
    }
}

/// The payment being refunded, locked, with what is left of it.
struct Refundable {
    customer_id: Uuid,
    customer_phone: String,
    lang: Lang,
    merchant_name: String,
    left: i64,
}

async fn lock_payment(
    conn: &mut PgConnection,
    order: &RefundOrder,
    window_days: u32,
) -> Result<Refundable, Error> {
    let row = sqlx::query!(
        r#"SELECT p.customer_id, p.amount, u.phone, u.language, m.name, m.status AS merchant_status,
                  p.created_at > now() - make_interval(days => $3) AS "in_window!"
           FROM merchant_payments p JOIN transactions t ON t.tx_id = p.tx_id
           JOIN users u ON u.id = p.customer_id JOIN merchants m ON m.id = p.merchant_id
           WHERE p.tx_id = $1 AND p.merchant_id = $2 FOR NO KEY UPDATE OF t FOR SHARE OF m"#,
        order.payment_tx_id,
        order.caller.merchant_id,
        window_days as i32
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound(Missing::MerchantPayment))?;
    // A suspended business moves no money, whoever asks (its row is share-
    // locked: a suspension waits for a refund under way, or wins before it).
    if row.merchant_status != "ACTIVE" {
        return Err(Error::Conflict("this business is suspended".into()));
    }
    if !row.in_window {
        return Err(Error::Conflict(format!(
            "payments can be refunded within {window_days} days"
        )));
    }
    let refunded = sqlx::query_scalar!(
        r#"SELECT coalesce(sum(amount), 0)::bigint AS "refunded!" FROM merchant_refunds WHERE payment_tx_id = $1"#,
        order.payment_tx_id
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(Refundable {
        customer_id: row.customer_id,
        customer_phone: row.phone,
        lang: Lang::parse(&row.language),
        merchant_name: row.name,
        left: row.amount - refunded,
    })
}

impl Operation for RefundOrder {
    const ACTION: &'static str = "merchant.refund";
    const KIND: &'static str = "merchant_refund";

    fn actor(&self) -> Uuid {
        self.caller.owner_id
    }

    fn currency(&self) -> &str {
        &self.currency
    }

    fn describe(&self) -> Value {
        json!({"payment": self.payment_tx_id, "amount": self.amount, "by": self.caller.who()})
    }

    async fn execute(
        &self,
        conn: &mut PgConnection,
        state: &AppState,
        rules: &Rules,
    ) -> Result<TxView, Error> {
        let payment = lock_payment(conn, self, state.settings.refund_window_days).await?;
        let amount = self.amount.unwrap_or(payment.left);
        if payment.left == 0 {
            return Err(Error::Conflict(
                "this payment has been refunded in full".into(),
            ));
        }
        if amount > payment.left {
            return Err(Error::Conflict(format!(
                "only {} is left to refund",
                rules.show(&self.currency, payment.left)
            )));
        }
        self.screen(conn, (state, rules), &payment, amount).await?;
        let currency =
            CurrencyCode::parse(&self.currency).map_err(|e| Error::internal(e.to_string()))?;
        let wallet = AccountRef::wallet(payment.customer_id, &self.currency);
        let entry = move_entry(
            AccountRef::merchant(self.caller.owner_id, &self.currency),
            wallet.clone(),
            &currency,
            amount,
        )
        .map_err(|e| Error::Validation(e.to_string()))?;
        let tx_id = crate::ledger::new_tx_id();
        let booking = Booking {
            facts: TxFacts::now(tx_id, TxType::MerchantRefund, &self.currency, (amount, 0), None, Some(payment.customer_id)),
            entry,
            note: Some(format!("refund from {}", payment.merchant_name)),
            usd_cents: None,
            status: TxStatus::Completed,
            audit: AuditEvent::new(Self::ACTION, Outcome::Success)
                .actor(self.caller.owner_id)
                .detail(json!({"payment": self.payment_tx_id, "amount": amount, "by": self.caller.who(), "tx_id": tx_id})),
        };
        let booked = book(conn, &state.keys.tx_signing, booking, |booked| {
            let text = Sms(payment.lang).merchant_refunded(
                booked.receipt(),
                &rules.show(&self.currency, amount),
                &payment.merchant_name,
                &rules.show(&self.currency, booked.available_of(&wallet)),
            );
            vec![(payment.customer_phone.clone(), text)]
        })
        .await?;
        sqlx::query!(
            "INSERT INTO merchant_refunds (tx_id, payment_tx_id, amount, requested_by) VALUES ($1, $2, $3, $4)",
            tx_id,
            self.payment_tx_id,
            amount,
            self.caller.who()
        )
        .execute(&mut *conn)
        .await?;
        let event = json!({"refund_id": tx_id, "payment_id": self.payment_tx_id, "amount": amount, "currency": self.currency,
                           "left": payment.left - amount, "created_at": booked.movement.facts.created_at});
        webhooks::enqueue(conn, self.caller.merchant_id, "refund.completed", event).await?;
        let payer = chainpay_core::phone::masked(&payment.customer_phone);
        Ok(booked.view(None, Some(payer)))
    }
}
