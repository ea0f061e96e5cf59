//! STK Push deposits: `PENDING → CONFIRMED | FAILED | EXPIRED`, plus
//! `DUPLICATE` for a receipt already credited and `SUSPENSE` for money that
//! arrived but did not match the request (held for review, never credited
//! to the wallet).
//!
//! The deposit row is written before Safaricom is called. Its settlement —
//! from a callback or from STK Query when the callback is lost — happens
//! under the row's lock and only while it is `PENDING`, so a wallet is
//! credited once however many times, and by whichever path, the answer comes.

use chainpay_core::daraja::client::{DarajaError, StkStatus};
use chainpay_core::daraja::wire::{self, StkCallbackEnvelope};
use chainpay_core::daraja::{daraja_phone, whole_shillings, MAX_KES};
use chainpay_core::ledger::{JournalEntry, Posting};
use chainpay_core::transaction::{now_micros, TxFacts, TxType};
use chainpay_core::ussd::money;
use chainpay_core::{notify, CurrencyCode, Msisdn};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{AuditEvent, Outcome};
use crate::compliance::sars;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::ledger::accounts::{self, AccountRef};
use crate::ledger::post::{post, Movement};
use crate::movements::post_error;
use crate::sms::outbox;

/// ResultCodes that mean the prompt timed out rather than failed.
const EXPIRED_CODES: [i64; 2] = [1037, 1019];
/// Seconds between STK Queries of one deposit.
const QUERY_SPACING_S: f64 = 10.0;
/// Deposits the sweeper settles per pass.
const SWEEP_BATCH: usize = 20;

/// `/mpesa/initiate`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Initiated {
    #[serde(rename = "ref")]
    pub reference: Uuid,
    pub status: String,
    pub checkout_request_id: String,
}

/// A deposit as its owner and operators see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DepositView {
    #[serde(rename = "ref")]
    pub reference: Uuid,
    pub status: String,
    /// KES cents.
    pub amount: i64,
    pub phone: String,
    pub mpesa_receipt: Option<String>,
    pub checkout_request_id: Option<String>,
    pub result_desc: Option<String>,
    /// The ChainPay transaction that credited it.
    pub tx_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
}

/// Validates and starts an STK Push for `amount_minor` KES cents.
pub async fn initiate(
    state: &AppState,
    user_id: Uuid,
    phone: &Msisdn,
    amount_minor: i64,
) -> Result<Initiated, ApiError> {
    let shillings = whole_shillings(amount_minor)
        .filter(|kes| *kes <= MAX_KES)
        .ok_or_else(|| ApiError::Validation(format!("amount must be whole shillings from KES 1 to KES {MAX_KES}, in cents (10000 = KES 100)")))?;
    let daraja_phone = daraja_phone(phone).map_err(|e| ApiError::Validation(e.to_string()))?;
    let client = super::client(state)?;
    let callback = super::callback_url(state, "/api/v1/mpesa/callback")?;
    let reference = Uuid::new_v4();
    let mut tx = state.pool.begin().await?;
    sqlx::query!(
        "INSERT INTO mpesa_deposits (ref, user_id, phone, amount) VALUES ($1, $2, $3, $4)",
        reference,
        user_id,
        daraja_phone,
        amount_minor
    )
    .execute(&mut *tx)
    .await?;
    AuditEvent::new("mpesa.initiate", Outcome::Success)
        .actor(user_id)
        .subject(reference)
        .detail(json!({"amount": amount_minor, "phone": daraja_phone}))
        .record(&mut tx)
        .await?;
    tx.commit().await?;

    let pushed = client
        .stk_push(
            &daraja_phone,
            shillings,
            &callback,
            "ChainPay",
            "Wallet deposit",
        )
        .await;
    match pushed {
        Ok(ack) => {
            sqlx::query!(
                "UPDATE mpesa_deposits SET checkout_request_id = $2, merchant_request_id = $3 WHERE ref = $1",
                reference,
                ack.checkout_request_id,
                ack.merchant_request_id
            )
            .execute(&state.pool)
            .await?;
            Ok(Initiated {
                reference,
                status: "PENDING".into(),
                checkout_request_id: ack.checkout_request_id,
            })
        }
        Err(error) => {
            // Without a CheckoutRequestID there is nothing to pay against.
            sqlx::query!(
                "UPDATE mpesa_deposits SET status = 'FAILED', result_desc = $2, settled_at = now() WHERE ref = $1",
                reference,
                error.to_string()
            )
            .execute(&state.pool)
            .await?;
            tracing::warn!(%reference, error = %error, "STK Push failed");
            Err(match error {
                DarajaError::Refused { .. } => ApiError::Upstream(
                    "M-Pesa refused the payment request; check the number and try again",
                ),
                DarajaError::Unreachable(_) => {
                    ApiError::Upstream("M-Pesa is not reachable right now; try again shortly")
                }
            })
        }
    }
}

/// The locked deposit being settled.
struct Pending {
    reference: Uuid,
    user_id: Uuid,
    phone: String,
    amount: i64,
}

/// What Safaricom said about a deposit.
enum Answer {
    /// Paid. Details are present on a callback and absent on STK Query.
    Paid {
        shillings: Option<f64>,
        receipt: Option<String>,
        phone: Option<String>,
    },
    Unpaid {
        code: i64,
        desc: String,
    },
}

/// Settles a locked PENDING deposit; returns its new status.
async fn settle(
    conn: &mut PgConnection,
    state: &AppState,
    deposit: &Pending,
    answer: Answer,
) -> Result<&'static str, ApiError> {
    let (shillings, receipt, phone) = match answer {
        Answer::Unpaid { code, desc } => {
            let status = if EXPIRED_CODES.contains(&code) {
                "EXPIRED"
            } else {
                "FAILED"
            };
            sqlx::query!(
                "UPDATE mpesa_deposits SET status = $2, result_code = $3, result_desc = $4, settled_at = now() WHERE ref = $1",
                deposit.reference,
                status,
                code as i32,
                desc
            )
            .execute(&mut *conn)
            .await?;
            return Ok(status);
        }
        Answer::Paid {
            shillings,
            receipt,
            phone,
        } => (shillings, receipt, phone),
    };
    if let Some(receipt) = &receipt {
        let credited = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM mpesa_deposits WHERE mpesa_receipt = $1 AND status IN ('CONFIRMED', 'SUSPENSE')) AS "seen!""#,
            receipt
        )
        .fetch_one(&mut *conn)
        .await?;
        if credited {
            sqlx::query!(
                "UPDATE mpesa_deposits SET status = 'DUPLICATE', mpesa_receipt = $2, result_code = 0, settled_at = now() WHERE ref = $1",
                deposit.reference,
                receipt
            )
            .execute(&mut *conn)
            .await?;
            return Ok("DUPLICATE");
        }
    }
    let expected = deposit.amount as f64 / 100.0;
    let amount_ok = shillings.is_none_or(|paid| (paid - expected).abs() < 0.005);
    let phone_ok = phone
        .as_deref()
        .is_none_or(|paid_by| paid_by == deposit.phone);
    let matched = amount_ok && phone_ok;
    // What actually arrived is what is booked: the callback's amount when it
    // differs (to suspense), ours otherwise.
    let amount = match shillings {
        Some(paid) if !amount_ok => (paid * 100.0).round() as i64,
        _ => deposit.amount,
    };
    let status = if matched { "CONFIRMED" } else { "SUSPENSE" };
    let credit = if matched {
        AccountRef::wallet(deposit.user_id, "KES")
    } else {
        AccountRef::house("suspense", "KES")
    };
    let ids = accounts::resolve(conn, &[AccountRef::float("mpesa", "KES"), credit])
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("M-Pesa float or KES wallet missing")))?;
    let kes = CurrencyCode::parse("KES").map_err(|e| ApiError::Internal(e.into()))?;
    let entry = JournalEntry::new(vec![
        Posting {
            account_id: ids[0],
            currency: kes.clone(),
            amount_minor: -amount,
        },
        Posting {
            account_id: ids[1],
            currency: kes,
            amount_minor: amount,
        },
    ])
    .map_err(|e| ApiError::Validation(e.to_string()))?;
    let facts = TxFacts {
        tx_id: Uuid::new_v4(),
        tx_type: TxType::Deposit,
        amount_minor: amount,
        fee_minor: 0,
        currency: "KES".into(),
        from_user_id: None,
        to_user_id: matched.then_some(deposit.user_id),
        created_at: now_micros(),
        conversion: None,
    };
    let note = receipt.as_ref().map(|r| format!("M-Pesa {r}"));
    let movement = Movement {
        facts: facts.clone(),
        note,
        entry,
        usd_cents: None,
        status: "COMPLETED",
    };
    let posted = post(conn, &movement, &state.keys.tx_signing)
        .await
        .map_err(post_error)?;
    sqlx::query!(
        "UPDATE mpesa_deposits SET status = $2, mpesa_receipt = $3, result_code = 0, tx_id = $4, settled_at = now() WHERE ref = $1",
        deposit.reference,
        status,
        receipt,
        facts.tx_id
    )
    .execute(&mut *conn)
    .await?;
    if matched {
        let message = notify::deposited(
            facts.tx_id,
            facts.created_at,
            &money("KES", amount, 2),
            receipt.as_deref().unwrap_or("confirmed by M-Pesa"),
            &money("KES", posted.balance_of(ids[1]), 2),
        );
        let to = format!("+{}", deposit.phone);
        outbox::queue(conn, &to, &message, Some(facts.tx_id)).await?;
    } else {
        let finding = json!({"deposit": deposit.reference, "expected_amount": deposit.amount, "paid_amount": amount,
                             "expected_phone": deposit.phone, "paid_phone": phone, "receipt": receipt});
        sars::open_or_append(
            conn,
            Some(deposit.user_id),
            "mpesa_mismatch",
            Some(facts.tx_id),
            finding,
        )
        .await?;
    }
    AuditEvent::new("mpesa.deposit", Outcome::Success)
        .actor(deposit.user_id)
        .subject(deposit.reference)
        .detail(
            json!({"status": status, "amount": amount, "receipt": receipt, "tx_id": facts.tx_id}),
        )
        .record(conn)
        .await?;
    Ok(status)
}

async fn record_callback(
    conn: &mut PgConnection,
    kind: &str,
    reference: Option<String>,
    body: &Value,
    outcome: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO mpesa_callbacks (kind, reference, body, outcome) VALUES ($1, $2, $3, $4)",
        kind,
        reference,
        body,
        outcome
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Applies a Daraja STK callback. Returns what happened, for the log.
pub async fn on_callback(state: &AppState, body: Value) -> Result<String, ApiError> {
    let mut tx = state.pool.begin().await?;
    let Ok(envelope) = serde_json::from_value::<StkCallbackEnvelope>(body.clone()) else {
        record_callback(&mut tx, "stk", None, &body, "unreadable").await?;
        AuditEvent::new("mpesa.callback", Outcome::Rejected)
            .detail(json!({"reason": "unreadable"}))
            .record(&mut tx)
            .await?;
        tx.commit().await?;
        return Ok("unreadable".into());
    };
    let stk = envelope.body.stk_callback;
    let deposit = sqlx::query!(
        "SELECT ref, user_id, phone, amount, status FROM mpesa_deposits WHERE checkout_request_id = $1 FOR UPDATE",
        stk.checkout_request_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let outcome = match deposit {
        None => {
            AuditEvent::new("mpesa.callback", Outcome::Rejected)
                .subject(&stk.checkout_request_id)
                .detail(json!({"reason": "unknown CheckoutRequestID"}))
                .record(&mut tx)
                .await?;
            "unknown".to_owned()
        }
        Some(row) if row.status != "PENDING" => format!("already {}", row.status),
        Some(row) => {
            let pending = Pending {
                reference: row.r#ref,
                user_id: row.user_id,
                phone: row.phone,
                amount: row.amount,
            };
            let answer = match wire::code(&stk.result_code) {
                Some(0) => Answer::Paid {
                    shillings: stk.amount_shillings(),
                    receipt: stk.receipt(),
                    phone: stk.phone(),
                },
                Some(code) => Answer::Unpaid {
                    code,
                    desc: stk.result_desc.clone(),
                },
                None => Answer::Unpaid {
                    code: -1,
                    desc: "no ResultCode in the callback".into(),
                },
            };
            settle(&mut tx, state, &pending, answer).await?.to_owned()
        }
    };
    record_callback(
        &mut tx,
        "stk",
        Some(stk.checkout_request_id.clone()),
        &body,
        &outcome,
    )
    .await?;
    tx.commit().await?;
    Ok(outcome)
}

/// A forged or misrouted callback (wrong token): nothing moves; it is audited.
pub async fn reject_callback(state: &AppState, body: Value) -> Result<(), ApiError> {
    let mut tx = state.pool.begin().await?;
    record_callback(&mut tx, "stk", None, &body, "bad token").await?;
    AuditEvent::new("mpesa.callback", Outcome::Rejected)
        .detail(json!({"reason": "bad token"}))
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Asks STK Query about deposits whose callback is overdue and settles them
/// on a definitive answer. Returns how many were looked at.
pub async fn sweep(state: &AppState) -> Result<usize, ApiError> {
    let timeout_s = state.settings.mpesa.pending_timeout_s as f64;
    let mut looked = 0;
    while looked < SWEEP_BATCH {
        let mut tx = state.pool.begin().await?;
        let due = sqlx::query!(
            "SELECT ref, user_id, phone, amount, checkout_request_id FROM mpesa_deposits
             WHERE status = 'PENDING' AND created_at < now() - make_interval(secs => $1)
               AND (last_query_at IS NULL OR last_query_at < now() - make_interval(secs => $2))
             ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED",
            timeout_s,
            QUERY_SPACING_S
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = due else {
            break;
        };
        looked += 1;
        let pending = Pending {
            reference: row.r#ref,
            user_id: row.user_id,
            phone: row.phone,
            amount: row.amount,
        };
        let Some(checkout) = row.checkout_request_id else {
            // Recorded, but the prompt was never confirmed sent (the gateway
            // stopped in between): there is nothing to ask Safaricom about.
            sqlx::query!(
                "UPDATE mpesa_deposits SET status = 'FAILED', result_desc = 'the payment prompt was never confirmed sent',
                        settled_at = now() WHERE ref = $1",
                pending.reference
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            continue;
        };
        match super::client(state)?.stk_query(&checkout).await {
            Ok(StkStatus::Final { result_code: 0, .. }) => {
                settle(
                    &mut tx,
                    state,
                    &pending,
                    Answer::Paid {
                        shillings: None,
                        receipt: None,
                        phone: None,
                    },
                )
                .await?;
            }
            Ok(StkStatus::Final {
                result_code,
                result_desc,
            }) => {
                settle(
                    &mut tx,
                    state,
                    &pending,
                    Answer::Unpaid {
                        code: result_code,
                        desc: result_desc,
                    },
                )
                .await?;
            }
            Ok(StkStatus::Pending) | Err(_) => {
                sqlx::query!(
                    "UPDATE mpesa_deposits SET query_attempts = query_attempts + 1, last_query_at = now() WHERE ref = $1",
                    pending.reference
                )
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
    }
    Ok(looked)
}

/// One of the user's deposits (`None` for another user's).
pub async fn find(
    state: &AppState,
    user_id: Option<Uuid>,
    reference: Uuid,
) -> sqlx::Result<Option<DepositView>> {
    sqlx::query_as!(
        DepositView,
        r#"SELECT ref AS reference, status, amount, phone, mpesa_receipt, checkout_request_id, result_desc, tx_id, created_at, settled_at
           FROM mpesa_deposits WHERE ref = $1 AND ($2::uuid IS NULL OR user_id = $2)"#,
        reference,
        user_id
    )
    .fetch_optional(&state.pool)
    .await
}

/// Deposits newest first: one user's, or everyone's (`None`).
pub async fn history(
    state: &AppState,
    user_id: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<DepositView>> {
    sqlx::query_as!(
        DepositView,
        r#"SELECT ref AS reference, status, amount, phone, mpesa_receipt, checkout_request_id, result_desc, tx_id, created_at, settled_at
           FROM mpesa_deposits WHERE ($1::uuid IS NULL OR user_id = $1) ORDER BY created_at DESC LIMIT $2"#,
        user_id,
        limit
    )
    .fetch_all(&state.pool)
    .await
}
