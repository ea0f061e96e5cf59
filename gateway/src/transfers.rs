//! Peer-to-peer transfers: one balanced journal entry, its audit row and its
//! idempotency record, committed together.

use axum::http::StatusCode;
use chainpay_core::ledger::transfer_entry;
use chainpay_core::transaction::{now_micros, TxFacts, TxType};
use chainpay_core::{Amount, CurrencyCode, Msisdn};
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::audit::{AuditEvent, Outcome};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::idempotency::{IdempotencyKey, Prior};
use crate::ledger::accounts;
use crate::ledger::post::{post, Movement, PostError};
use crate::transactions::TxView;

/// A validated request to pay `amount` of `currency` to `to_phone`.
#[derive(Debug, Clone)]
pub struct SendOrder {
    pub from_user_id: Uuid,
    pub from_phone: String,
    pub to_phone: Msisdn,
    pub amount: Amount,
    pub currency: CurrencyCode,
    pub note: Option<String>,
}

/// The response a transfer request gets: status and JSON body, exactly as
/// saved for replays.
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub replayed: bool,
}

/// Runs `order` once per idempotency key. Business refusals (unknown
/// recipient, insufficient funds) are audited and, when keyed, saved so a
/// retry sees the same answer.
pub async fn send(
    state: &AppState,
    order: SendOrder,
    key: Option<IdempotencyKey>,
) -> Result<Reply, ApiError> {
    if let Some(key) = &key {
        if let Prior::Replay { status, body } = key.prior(&state.pool).await? {
            return Ok(Reply {
                status,
                body,
                replayed: true,
            });
        }
    }
    let mut tx = state.pool.begin().await?;
    match execute(&mut tx, state, &order).await {
        Ok(view) => {
            let body = serde_json::to_value(&view).map_err(anyhow::Error::from)?;
            if let Some(key) = &key {
                if !key.save(&mut tx, StatusCode::CREATED, &body).await? {
                    tx.rollback().await?;
                    return replay_winner(state, key).await;
                }
            }
            tx.commit().await?;
            state
                .metrics
                .transfers
                .with_label_values(&["transfer", order.currency.as_str(), "completed"])
                .inc();
            tracing::info!(tx_id = %view.tx_id, amount = view.amount, currency = %view.currency, "transfer completed");
            Ok(Reply {
                status: StatusCode::CREATED,
                body,
                replayed: false,
            })
        }
        Err(ApiError::Internal(error)) => Err(ApiError::Internal(error)),
        Err(refusal) => {
            tx.rollback().await?;
            record_refusal(state, &order, key.as_ref(), &refusal).await?;
            Err(refusal)
        }
    }
}

/// Another request with the same key committed first: answer as it did.
async fn replay_winner(state: &AppState, key: &IdempotencyKey) -> Result<Reply, ApiError> {
    match key.prior(&state.pool).await? {
        Prior::Replay { status, body } => Ok(Reply {
            status,
            body,
            replayed: true,
        }),
        Prior::Fresh => Err(ApiError::Internal(anyhow::anyhow!(
            "idempotency record vanished"
        ))),
    }
}

async fn record_refusal(
    state: &AppState,
    order: &SendOrder,
    key: Option<&IdempotencyKey>,
    refusal: &ApiError,
) -> Result<(), ApiError> {
    let mut tx = state.pool.begin().await?;
    AuditEvent::new("wallet.send", Outcome::Rejected)
        .actor(order.from_user_id)
        .subject(order.to_phone.as_str())
        .detail(json!({
            "reason": refusal.code(),
            "amount": order.amount.minor(),
            "currency": order.currency.as_str(),
        }))
        .record(&mut tx)
        .await?;
    if let Some(key) = key {
        let problem = serde_json::to_value(refusal.problem()).map_err(anyhow::Error::from)?;
        if !key.save(&mut tx, refusal.status(), &problem).await? {
            // A concurrent copy already answered; nothing of ours to keep.
            tx.rollback().await?;
            return Ok(());
        }
    }
    tx.commit().await?;
    state
        .metrics
        .transfers
        .with_label_values(&["transfer", order.currency.as_str(), refusal.code()])
        .inc();
    Ok(())
}

/// The movement itself, inside the caller's transaction.
async fn execute(
    conn: &mut PgConnection,
    state: &AppState,
    order: &SendOrder,
) -> Result<TxView, ApiError> {
    let currency = order.currency.as_str();
    if !accounts::currency_exists(conn, currency).await? {
        return Err(ApiError::Validation(format!(
            "unsupported currency {currency}"
        )));
    }
    let recipient = sqlx::query!(
        "SELECT id, suspended, kyc_status FROM users WHERE phone = $1",
        order.to_phone.as_str()
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(ApiError::NotFound("recipient"))?;
    if recipient.id == order.from_user_id {
        return Err(ApiError::Validation(
            "you cannot send money to yourself".into(),
        ));
    }
    if recipient.suspended || recipient.kyc_status == "REJECTED" {
        return Err(ApiError::AccountSuspended(
            "the recipient's account cannot receive payments",
        ));
    }
    let fee_minor = sqlx::query_scalar!(
        "SELECT flat_fee_minor FROM fee_schedule WHERE tx_type = 'transfer' AND currency = $1",
        currency
    )
    .fetch_optional(&mut *conn)
    .await?
    .unwrap_or(0);

    let tx_id = Uuid::new_v4();
    let ledger_accounts = accounts::transfer_accounts(
        conn,
        order.from_user_id,
        recipient.id,
        currency,
        accounts::fee_shard(tx_id),
    )
    .await?
    .ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "wallet or fee account missing for {currency}"
        ))
    })?;
    let entry = transfer_entry(
        ledger_accounts,
        &order.currency,
        order.amount.minor(),
        fee_minor,
    )
    .map_err(|e| ApiError::Validation(e.to_string()))?;
    let facts = TxFacts {
        tx_id,
        tx_type: TxType::Transfer,
        amount_minor: order.amount.minor(),
        fee_minor,
        currency: currency.to_owned(),
        from_user_id: Some(order.from_user_id),
        to_user_id: Some(recipient.id),
        created_at: now_micros(),
    };
    let movement = Movement {
        facts: facts.clone(),
        note: order.note.clone(),
        entry,
    };
    let signature = post(conn, &movement, &state.keys.tx_signing)
        .await
        .map_err(|e| match e {
            PostError::InsufficientFunds => ApiError::InsufficientFunds,
            PostError::UnknownAccount => {
                ApiError::Internal(anyhow::anyhow!("ledger account vanished"))
            }
            PostError::Database(e) => e.into(),
        })?;
    AuditEvent::new("wallet.send", Outcome::Success)
        .actor(order.from_user_id)
        .subject(tx_id)
        .detail(json!({"amount": facts.amount_minor, "fee": fee_minor, "currency": currency, "to": order.to_phone.as_str()}))
        .record(conn)
        .await?;
    Ok(TxView {
        tx_id,
        tx_type: TxType::Transfer.as_str().to_owned(),
        status: "COMPLETED".into(),
        amount: facts.amount_minor,
        fee: fee_minor,
        currency: facts.currency,
        from_phone: Some(order.from_phone.clone()),
        to_phone: Some(order.to_phone.to_string()),
        note: order.note.clone(),
        created_at: facts.created_at,
        signature,
        block_index: None,
        from_user_id: facts.from_user_id,
        to_user_id: facts.to_user_id,
        seq: 0,
    })
}
