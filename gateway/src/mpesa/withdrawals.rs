//! Withdrawals to M-Pesa (B2C).
//!
//! The request moves the money from the wallet into the M-Pesa payout hold
//! (plus the fee to revenue) in the same transaction that records the
//! withdrawal; the AML rules apply as to any outgoing movement. Only after
//! that commits is the B2C request sent, once. Its result settles the hold
//! exactly once under the withdrawal's row lock: success pays the hold out
//! to the M-Pesa float; failure or a queue timeout returns amount and fee
//! to the customer.

use chainpay_core::daraja::client::DarajaError;
use chainpay_core::daraja::wire::{self, B2cResultEnvelope};
use chainpay_core::daraja::{daraja_phone, whole_shillings, MAX_KES, MIN_B2C_KES};
use chainpay_core::fees::FeeKind;
use chainpay_core::ledger::{JournalEntry, Posting};
use chainpay_core::transaction::{now_micros, TxFacts, TxType};
use chainpay_core::ussd::money;
use chainpay_core::{notify, Amount, CurrencyCode, Msisdn};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{AuditEvent, Outcome};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::ledger::accounts::{self, AccountRef};
use crate::ledger::post::{post, Movement};
use crate::movements::transfer::fx_error;
use crate::movements::{parties, post_error, Operation};
use crate::rules::Rules;
use crate::sms::outbox;
use crate::transactions::TxView;

/// A validated withdrawal request.
#[derive(Debug, Clone)]
pub struct WithdrawOrder {
    pub user_id: Uuid,
    /// The Safaricom number paid, as Daraja wants it (`2547…`).
    pub daraja_phone: String,
    pub amount: Amount,
}

impl WithdrawOrder {
    pub fn new(user_id: Uuid, phone: &Msisdn, amount_minor: i64) -> Result<Self, ApiError> {
        let shillings = whole_shillings(amount_minor)
            .filter(|kes| (MIN_B2C_KES..=MAX_KES).contains(kes))
            .ok_or_else(|| {
                ApiError::Validation(format!(
                    "amount must be whole shillings from KES {MIN_B2C_KES} to KES {MAX_KES}, in cents (10000 = KES 100)"
                ))
            })?;
        let daraja_phone = daraja_phone(phone).map_err(|e| ApiError::Validation(e.to_string()))?;
        let amount =
            Amount::new(shillings * 100).map_err(|e| ApiError::Validation(e.to_string()))?;
        Ok(Self {
            user_id,
            daraja_phone,
            amount,
        })
    }

    /// The fee this withdrawal would pay.
    pub fn fee(&self, rules: &Rules) -> Result<i64, ApiError> {
        rules
            .fees
            .fee(FeeKind::Withdraw, &rules.rates, "KES", self.amount.minor())
            .map_err(fx_error)
    }
}

impl Operation for WithdrawOrder {
    const ACTION: &'static str = "wallet.withdraw";
    const KIND: &'static str = "withdrawal";

    fn actor(&self) -> Uuid {
        self.user_id
    }

    fn currency(&self) -> &str {
        "KES"
    }

    fn describe(&self) -> Value {
        json!({"amount": self.amount.minor(), "currency": "KES", "method": "mpesa", "phone": self.daraja_phone})
    }

    async fn execute(
        &self,
        conn: &mut PgConnection,
        state: &AppState,
        rules: &Rules,
    ) -> Result<TxView, ApiError> {
        let amount = self.amount.minor();
        let fee = self.fee(rules)?;
        let usd_cents = rules.rates.usd_cents("KES", amount).map_err(fx_error)?;
        let parties = parties::load(conn, self.user_id, None).await?;
        let report = parties::aml_gate(conn, state, rules, &parties, usd_cents).await?;
        let tx_id = Uuid::new_v4();
        let ids = accounts::resolve(
            conn,
            &[
                AccountRef::wallet(self.user_id, "KES"),
                AccountRef::House {
                    kind: "payout_hold",
                    channel: "mpesa",
                    currency: "KES",
                    shard: 0,
                },
                AccountRef::fee_revenue("KES", tx_id),
            ],
        )
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("KES wallet or payout hold missing")))?;
        let kes = CurrencyCode::parse("KES").map_err(|e| ApiError::Internal(e.into()))?;
        let mut postings = vec![
            Posting {
                account_id: ids[0],
                currency: kes.clone(),
                amount_minor: -(amount + fee),
            },
            Posting {
                account_id: ids[1],
                currency: kes.clone(),
                amount_minor: amount,
            },
        ];
        if fee > 0 {
            postings.push(Posting {
                account_id: ids[2],
                currency: kes,
                amount_minor: fee,
            });
        }
        let entry = JournalEntry::new(postings).map_err(|e| ApiError::Validation(e.to_string()))?;
        let facts = TxFacts {
            tx_id,
            tx_type: TxType::Withdrawal,
            amount_minor: amount,
            fee_minor: fee,
            currency: "KES".into(),
            from_user_id: Some(self.user_id),
            to_user_id: None,
            created_at: now_micros(),
            conversion: None,
        };
        let movement = Movement {
            facts: facts.clone(),
            note: Some(format!("To M-Pesa {}", self.daraja_phone)),
            entry,
            usd_cents: Some(usd_cents),
            status: "PENDING",
        };
        let posted = post(conn, &movement, &state.keys.tx_signing)
            .await
            .map_err(post_error)?;
        let reference = Uuid::new_v4();
        sqlx::query!(
            "INSERT INTO mpesa_withdrawals (ref, user_id, phone, amount, fee, hold_tx_id) VALUES ($1, $2, $3, $4, $5, $6)",
            reference,
            self.user_id,
            self.daraja_phone,
            amount,
            fee,
            tx_id
        )
        .execute(&mut *conn)
        .await?;
        let detail = json!({"amount": amount, "fee": fee, "withdrawal": reference, "phone": self.daraja_phone, "usd_cents": usd_cents});
        parties::file_report(conn, report, self.user_id, tx_id, detail.clone()).await?;
        AuditEvent::new(Self::ACTION, Outcome::Success)
            .actor(self.user_id)
            .subject(tx_id)
            .detail(detail)
            .record(conn)
            .await?;
        Ok(TxView::posted(
            &movement,
            posted.signature,
            Some(parties.sender.party.phone),
            Some(format!("+{}", self.daraja_phone)),
        ))
    }
}

/// Sends the B2C request for the withdrawal held by `hold_tx_id`, unless it
/// was already sent (a replayed request must not pay twice).
pub async fn submit(state: &AppState, hold_tx_id: Uuid) -> Result<(), ApiError> {
    let claimed = sqlx::query!(
        "UPDATE mpesa_withdrawals SET submitted_at = now() WHERE hold_tx_id = $1 AND submitted_at IS NULL AND status = 'PENDING'
         RETURNING ref, phone, amount",
        hold_tx_id
    )
    .fetch_optional(&state.pool)
    .await?;
    let Some(withdrawal) = claimed else {
        return Ok(());
    };
    let result_url = super::callback_url(state, "/api/v1/mpesa/b2c/result")?;
    let timeout_url = super::callback_url(state, "/api/v1/mpesa/b2c/timeout")?;
    let sent = super::client(state)?
        .b2c(
            &withdrawal.r#ref.to_string(),
            &withdrawal.phone,
            withdrawal.amount / 100,
            &result_url,
            &timeout_url,
        )
        .await;
    match sent {
        Ok(ack) => {
            sqlx::query!(
                "UPDATE mpesa_withdrawals SET conversation_id = $2 WHERE ref = $1",
                withdrawal.r#ref,
                ack.conversation_id
            )
            .execute(&state.pool)
            .await?;
        }
        Err(DarajaError::Refused { code, message }) => {
            // Safaricom said no outright: nothing was paid, so refund now.
            let mut tx = state.pool.begin().await?;
            settle(
                &mut tx,
                state,
                &withdrawal.r#ref.to_string(),
                Err((-1, format!("{message} ({code})"))),
            )
            .await?;
            tx.commit().await?;
        }
        Err(DarajaError::Unreachable(error)) => {
            // Unknown whether Safaricom received it: the money stays held
            // until a result arrives or an operator reconciles it.
            tracing::error!(withdrawal = %withdrawal.r#ref, %error, "B2C request unconfirmed");
            sqlx::query!(
                "UPDATE mpesa_withdrawals SET result_desc = $2 WHERE ref = $1",
                withdrawal.r#ref,
                format!("submission unconfirmed: {error}")
            )
            .execute(&state.pool)
            .await?;
        }
    }
    Ok(())
}

/// Settles a PENDING withdrawal once: `Ok(receipt)` pays the hold out,
/// `Err((code, desc))` refunds it. Returns the outcome for the log.
async fn settle(
    conn: &mut PgConnection,
    state: &AppState,
    reference: &str,
    result: Result<String, (i64, String)>,
) -> Result<String, ApiError> {
    let Ok(reference) = Uuid::parse_str(reference) else {
        return Ok("unknown".into());
    };
    let row = sqlx::query!(
        "SELECT w.user_id, w.phone, w.amount, w.fee, w.status, w.hold_tx_id, u.phone AS user_phone
         FROM mpesa_withdrawals w JOIN users u ON u.id = w.user_id WHERE w.ref = $1 FOR UPDATE OF w",
        reference
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok("unknown".into());
    };
    if row.status != "PENDING" {
        return Ok(format!("already {}", row.status));
    }
    let kes = CurrencyCode::parse("KES").map_err(|e| ApiError::Internal(e.into()))?;
    let success = result.is_ok();
    let refs = [
        AccountRef::House {
            kind: "payout_hold",
            channel: "mpesa",
            currency: "KES",
            shard: 0,
        },
        if success {
            AccountRef::float("mpesa", "KES")
        } else {
            AccountRef::wallet(row.user_id, "KES")
        },
        AccountRef::fee_revenue("KES", row.hold_tx_id),
    ];
    let ids = accounts::resolve(conn, &refs)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("payout accounts missing")))?;
    let mut postings = vec![Posting {
        account_id: ids[0],
        currency: kes.clone(),
        amount_minor: -row.amount,
    }];
    let returned = if success {
        row.amount
    } else {
        row.amount + row.fee
    };
    postings.push(Posting {
        account_id: ids[1],
        currency: kes.clone(),
        amount_minor: returned,
    });
    if !success && row.fee > 0 {
        postings.push(Posting {
            account_id: ids[2],
            currency: kes,
            amount_minor: -row.fee,
        });
    }
    let entry = JournalEntry::new(postings).map_err(|e| ApiError::Internal(e.into()))?;
    let facts = TxFacts {
        tx_id: Uuid::new_v4(),
        tx_type: if success {
            TxType::Payout
        } else {
            TxType::Refund
        },
        amount_minor: returned,
        fee_minor: 0,
        currency: "KES".into(),
        from_user_id: None,
        to_user_id: (!success).then_some(row.user_id),
        created_at: now_micros(),
        conversion: None,
    };
    let movement = Movement {
        facts: facts.clone(),
        note: None,
        entry,
        usd_cents: None,
        status: "COMPLETED",
    };
    post(conn, &movement, &state.keys.tx_signing)
        .await
        .map_err(post_error)?;
    let (status, receipt, code, desc) = match &result {
        Ok(receipt) => ("COMPLETED", Some(receipt.clone()), 0, "paid out".to_owned()),
        Err((code, desc)) => ("FAILED", None, *code, desc.clone()),
    };
    sqlx::query!(
        "UPDATE mpesa_withdrawals SET status = $2, mpesa_receipt = $3, result_code = $4, result_desc = $5,
                settle_tx_id = $6, settled_at = now() WHERE ref = $1",
        reference,
        status,
        receipt,
        code as i32,
        desc,
        facts.tx_id
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "UPDATE transactions SET status = $2 WHERE tx_id = $1",
        row.hold_tx_id,
        if success { "COMPLETED" } else { "FAILED" }
    )
    .execute(&mut *conn)
    .await?;
    let balance = sqlx::query_scalar!(
        "SELECT balance FROM accounts WHERE kind = 'wallet' AND user_id = $1 AND currency = 'KES'",
        row.user_id
    )
    .fetch_one(&mut *conn)
    .await?;
    let message = if success {
        notify::withdrawn(
            row.hold_tx_id,
            facts.created_at,
            &money("KES", row.amount, 2),
            &format!("+{}", row.phone),
            &money("KES", balance, 2),
            &money("KES", row.fee, 2),
        )
    } else {
        format!(
            "ChainPay: your withdrawal of {} to M-Pesa did not go through ({desc}). {} has been returned. New balance is {}.",
            money("KES", row.amount, 2),
            money("KES", returned, 2),
            money("KES", balance, 2)
        )
    };
    outbox::queue(conn, &row.user_phone, &message, Some(facts.tx_id)).await?;
    AuditEvent::new("mpesa.withdrawal", Outcome::Success)
        .actor(row.user_id)
        .subject(reference)
        .detail(json!({"status": status, "code": code, "desc": desc, "tx_id": facts.tx_id}))
        .record(conn)
        .await?;
    Ok(status.to_owned())
}

/// Applies a B2C result (or, with `timed_out`, a queue timeout).
pub async fn on_result(state: &AppState, body: Value, timed_out: bool) -> Result<String, ApiError> {
    let mut tx = state.pool.begin().await?;
    let outcome = match serde_json::from_value::<B2cResultEnvelope>(body.clone()) {
        Err(_) => "unreadable".to_owned(),
        Ok(envelope) => {
            let result = envelope.result;
            let code = wire::code(&result.result_code).unwrap_or(-1);
            let answer = if code == 0 && !timed_out {
                Ok(result.transaction_id.clone())
            } else if timed_out {
                Err((
                    code,
                    format!("timed out in M-Pesa's queue: {}", result.result_desc),
                ))
            } else {
                Err((code, result.result_desc.clone()))
            };
            settle(&mut tx, state, &result.originator_conversation_id, answer).await?
        }
    };
    if outcome == "unknown" || outcome == "unreadable" {
        AuditEvent::new("mpesa.b2c_result", Outcome::Rejected)
            .detail(json!({"reason": outcome}))
            .record(&mut tx)
            .await?;
    }
    sqlx::query!(
        "INSERT INTO mpesa_callbacks (kind, reference, body, outcome) VALUES ($1, NULL, $2, $3)",
        if timed_out {
            "b2c_timeout"
        } else {
            "b2c_result"
        },
        body,
        outcome
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(outcome)
}

/// A withdrawal as operators see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WithdrawalView {
    #[serde(rename = "ref")]
    pub reference: Uuid,
    pub status: String,
    pub amount: i64,
    pub fee: i64,
    pub phone: String,
    pub conversation_id: Option<String>,
    pub mpesa_receipt: Option<String>,
    pub result_desc: Option<String>,
    pub hold_tx_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
}

pub async fn list(state: &AppState, limit: i64) -> sqlx::Result<Vec<WithdrawalView>> {
    sqlx::query_as!(
        WithdrawalView,
        r#"SELECT ref AS reference, status, amount, fee, phone, conversation_id, mpesa_receipt, result_desc, hold_tx_id, created_at, settled_at
           FROM mpesa_withdrawals ORDER BY created_at DESC LIMIT $1"#,
        limit
    )
    .fetch_all(&state.pool)
    .await
}
