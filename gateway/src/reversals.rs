//! Reversals: a customer asks for a transfer of theirs to be undone, an
//! operator decides. An approval never edits the original: it posts a
//! correcting entry (the recipient pays the amount back; the fee stays
//! earned) and marks the original `REVERSED`, all in one transaction with
//! its audit row, chain entry and SMS to both parties.

use chainpay_core::ledger::{JournalEntry, Posting};
use chainpay_core::notify;
use chainpay_core::transaction::{now_micros, reference, TxFacts, TxType};
use chainpay_core::ussd::money;
use chainpay_core::CurrencyCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{AuditEvent, Outcome};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::ledger::accounts::{self, AccountRef};
use crate::ledger::post::{post, Movement};
use crate::movements::post_error;
use crate::sms::outbox;

/// How long after a transfer its sender may ask for a reversal.
pub const WINDOW_HOURS: i32 = 24;
/// Eligible transfers offered at once.
const MAX_ELIGIBLE: i64 = 20;

/// A transfer its sender may still ask to reverse.
#[derive(Debug, Clone)]
pub struct EligibleTx {
    pub tx_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub amount: i64,
    pub currency: String,
    pub exponent: i32,
    pub to_name: String,
}

impl EligibleTx {
    /// `25/11 KES 250.00 BARAKA`: short enough for a USSD list line.
    pub fn label(&self) -> String {
        let first = self
            .to_name
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_uppercase();
        format!(
            "{} {} {first}",
            self.created_at.format("%d/%m"),
            money(&self.currency, self.amount, self.exponent.max(0) as u32)
        )
    }
}

/// The caller's completed transfers of the last [`WINDOW_HOURS`] with no
/// reversal pending or done, newest first.
pub async fn eligible(state: &AppState, user_id: Uuid) -> sqlx::Result<Vec<EligibleTx>> {
    sqlx::query_as!(
        EligibleTx,
        r#"SELECT t.tx_id, t.created_at, t.amount, t.currency, c.exponent::int AS "exponent!", u.name AS to_name
           FROM transactions t
           JOIN users u ON u.id = t.to_user_id
           JOIN currencies c ON c.code = t.currency
           WHERE t.from_user_id = $1 AND t.tx_type = 'transfer' AND t.status = 'COMPLETED'
             AND t.created_at > now() - make_interval(hours => $2)
             AND NOT EXISTS (SELECT 1 FROM reversal_requests r WHERE r.tx_id = t.tx_id AND r.status IN ('PENDING', 'APPROVED'))
           ORDER BY t.seq DESC LIMIT $3"#,
        user_id,
        WINDOW_HOURS,
        MAX_ELIGIBLE
    )
    .fetch_all(&state.pool)
    .await
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReversalRequested {
    pub reversal_id: Uuid,
    pub status: String,
}

/// Files a request for one of the caller's eligible transfers.
pub async fn request(
    state: &AppState,
    user_id: Uuid,
    tx_id: Uuid,
    reason: &str,
) -> Result<ReversalRequested, ApiError> {
    let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    if !(3..=500).contains(&reason.chars().count()) {
        return Err(ApiError::Validation(
            "reason must be 3 to 500 characters".into(),
        ));
    }
    if !eligible(state, user_id)
        .await?
        .iter()
        .any(|t| t.tx_id == tx_id)
    {
        return Err(ApiError::NotEligible(
            "only your own transfers of the last 24 hours without a reversal request can be reversed",
        ));
    }
    let reversal_id = Uuid::new_v4();
    let mut tx = state.pool.begin().await?;
    let inserted = sqlx::query!(
        "INSERT INTO reversal_requests (id, tx_id, requester_id, reason) VALUES ($1, $2, $3, $4)",
        reversal_id,
        tx_id,
        user_id,
        reason
    )
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("reversal_requests_one_live") => {
            return Err(ApiError::NotEligible(
                "a reversal of this transaction was already requested",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    AuditEvent::new("reversal.request", Outcome::Success)
        .actor(user_id)
        .subject(tx_id)
        .detail(json!({"reversal_id": reversal_id, "reason": reason}))
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(ReversalRequested {
        reversal_id,
        status: "PENDING".into(),
    })
}

/// A request as operators see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReversalView {
    pub reversal_id: Uuid,
    pub tx_id: Uuid,
    pub requester_phone: String,
    pub amount: i64,
    pub currency: String,
    pub reason: String,
    /// `PENDING`, `APPROVED` or `REJECTED`.
    pub status: String,
    pub admin_note: Option<String>,
    /// The correcting transaction, once approved.
    pub reversal_tx_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub reviewed_at: Option<DateTime<Utc>>,
}

pub async fn list(
    state: &AppState,
    status: Option<&str>,
    id: Option<Uuid>,
) -> sqlx::Result<Vec<ReversalView>> {
    sqlx::query_as!(
        ReversalView,
        r#"SELECT r.id AS reversal_id, r.tx_id, u.phone AS requester_phone, t.amount, t.currency, r.reason, r.status,
                  r.admin_note, r.reversal_tx_id, r.created_at, r.reviewed_at
           FROM reversal_requests r JOIN users u ON u.id = r.requester_id JOIN transactions t ON t.tx_id = r.tx_id
           WHERE ($1::text IS NULL OR r.status = $1) AND ($2::uuid IS NULL OR r.id = $2)
           ORDER BY r.created_at DESC LIMIT 200"#,
        status,
        id
    )
    .fetch_all(&state.pool)
    .await
}

/// Approves (posting the correcting entry) or rejects a pending request.
pub async fn decide(
    state: &AppState,
    admin_id: Uuid,
    reversal_id: Uuid,
    approve: bool,
    note: &str,
) -> Result<ReversalView, ApiError> {
    let note = note.trim();
    if note.chars().count() > 500 {
        return Err(ApiError::Validation(
            "note must be at most 500 characters".into(),
        ));
    }
    let rules = state.rules.get(&state.pool).await?;
    let mut tx = state.pool.begin().await?;
    let request = sqlx::query!(
        r#"SELECT r.status, r.tx_id, t.amount, t.currency, t.from_user_id AS "sender!", t.to_user_id AS "recipient!",
                  s.phone AS sender_phone, s.name AS sender_name, p.phone AS recipient_phone
           FROM reversal_requests r JOIN transactions t ON t.tx_id = r.tx_id
           JOIN users s ON s.id = t.from_user_id JOIN users p ON p.id = t.to_user_id
           WHERE r.id = $1 FOR UPDATE OF r"#,
        reversal_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound("reversal request"))?;
    if request.status != "PENDING" {
        return Err(ApiError::NotEligible(
            "this reversal request has already been decided",
        ));
    }
    let exponent = rules
        .rates
        .leg(&request.currency)
        .map_or(2, |leg| leg.exponent);
    let shown = |minor| money(&request.currency, minor, exponent);
    let original_ref = reference(request.tx_id);
    let mut reversal_tx_id = None;
    if approve {
        let currency =
            CurrencyCode::parse(&request.currency).map_err(|e| ApiError::Internal(e.into()))?;
        let ids = accounts::resolve(
            &mut tx,
            &[
                AccountRef::wallet(request.recipient, &request.currency),
                AccountRef::wallet(request.sender, &request.currency),
            ],
        )
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("wallets missing for a reversal")))?;
        let entry = JournalEntry::new(vec![
            Posting {
                account_id: ids[0],
                currency: currency.clone(),
                amount_minor: -request.amount,
            },
            Posting {
                account_id: ids[1],
                currency,
                amount_minor: request.amount,
            },
        ])
        .map_err(|e| ApiError::Internal(e.into()))?;
        let facts = TxFacts {
            tx_id: Uuid::new_v4(),
            tx_type: TxType::Reversal,
            amount_minor: request.amount,
            fee_minor: 0,
            currency: request.currency.clone(),
            from_user_id: Some(request.recipient),
            to_user_id: Some(request.sender),
            created_at: now_micros(),
            conversion: None,
        };
        let movement = Movement {
            facts: facts.clone(),
            note: Some(format!("Reversal of {original_ref}")),
            entry,
            usd_cents: None,
            status: "COMPLETED",
        };
        let posted = post(&mut tx, &movement, &state.keys.tx_signing)
            .await
            .map_err(post_error)?;
        sqlx::query!(
            "UPDATE transactions SET status = 'REVERSED' WHERE tx_id = $1",
            request.tx_id
        )
        .execute(&mut *tx)
        .await?;
        let at = facts.created_at;
        let back = notify::reversed(
            facts.tx_id,
            at,
            request.tx_id,
            &shown(request.amount),
            true,
            &shown(posted.balance_of(ids[1])),
        );
        let taken = notify::reversed(
            facts.tx_id,
            at,
            request.tx_id,
            &shown(request.amount),
            false,
            &shown(posted.balance_of(ids[0])),
        );
        outbox::queue_all(
            &mut tx,
            &[
                (&request.sender_phone, &back),
                (&request.recipient_phone, &taken),
            ],
            Some(facts.tx_id),
        )
        .await?;
        reversal_tx_id = Some(facts.tx_id);
    } else {
        let message = format!(
            "ChainPay: your request to reverse {original_ref} ({}) was declined.{}",
            shown(request.amount),
            if note.is_empty() {
                String::new()
            } else {
                format!(" Reason: {note}")
            }
        );
        outbox::queue(&mut tx, &request.sender_phone, &message, None).await?;
    }
    let status = if approve { "APPROVED" } else { "REJECTED" };
    sqlx::query!(
        "UPDATE reversal_requests SET status = $2, admin_id = $3, admin_note = $4, reversal_tx_id = $5, reviewed_at = now()
         WHERE id = $1",
        reversal_id,
        status,
        admin_id,
        (!note.is_empty()).then_some(note),
        reversal_tx_id
    )
    .execute(&mut *tx)
    .await?;
    AuditEvent::new(if approve { "admin.reversal_approve" } else { "admin.reversal_reject" }, Outcome::Success)
        .actor(admin_id)
        .subject(reversal_id)
        .detail(json!({"tx_id": request.tx_id, "reversal_tx_id": reversal_tx_id, "note": note, "sender": request.sender_name}))
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    list(state, None, Some(reversal_id))
        .await?
        .pop()
        .ok_or(ApiError::NotFound("reversal request"))
}
