//! Identity documents: a customer submits one (REST or USSD), the number is
//! sealed with AES-256-GCM under the master key and only its last three
//! characters are ever shown; an operator reviews it with the user's KYC
//! status (`POST /admin/users/{id}/kyc`), which settles the pending document
//! the same way and tells the customer by SMS.

use chainpay_core::kyc::{self, DocumentType};
use chainpay_core::refusal::Refusal;
use chainpay_core::voucher::digest;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{AuditEvent, Outcome};
use crate::auth::rate_limit::{self, Admission};
use crate::error::Error;
use crate::state::AppState;

/// Submissions one customer may make per day (each a write of ours).
const SUBMISSIONS_PER_DAY: u32 = 5;
const SEAL_CONTEXT: &[u8] = b"kyc_documents.number_sealed";

/// A document as it is shown: never the number, only its tail.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DocumentView {
    pub document_id: Uuid,
    pub user_id: Uuid,
    pub phone: String,
    pub name: String,
    /// `national_id`, `passport` or `alien_id`.
    pub document_type: String,
    /// `*****678`.
    pub number_masked: String,
    /// `PENDING`, `VERIFIED` or `REJECTED`.
    pub status: String,
    /// Other accounts with a live (pending or verified) claim to the same
    /// number: a reviewer's cue that one of them is not its owner. Shown to
    /// reviewers only: a customer would learn from it whether someone else
    /// claims a number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub also_claimed_by: Option<i64>,
    pub review_note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub reviewed_at: Option<DateTime<Utc>>,
}

impl DocumentView {
    /// The document as its own customer sees it (no reviewer's cues).
    pub fn for_customer(self) -> Self {
        Self {
            also_claimed_by: None,
            ..self
        }
    }
}

/// Records a customer's document for review.
pub async fn submit(
    state: &AppState,
    user_id: Uuid,
    kind: DocumentType,
    raw_number: &str,
) -> Result<DocumentView, Error> {
    let number =
        kyc::normalise_number(kind, raw_number).map_err(|e| Error::Validation(e.to_string()))?;
    let bucket = format!("kyc:{user_id}");
    if let Admission::Limited { retry_after_s } =
        rate_limit::admit(&state.pool, &bucket, SUBMISSIONS_PER_DAY, 86_400).await?
    {
        return Err(Error::RateLimited { retry_after_s });
    }
    let mut tx = state.pool.begin().await?;
    // One submission at a time per customer, decided under their row lock.
    sqlx::query!(
        "SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE",
        user_id
    )
    .fetch_one(&mut *tx)
    .await?;
    let live = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM kyc_documents WHERE user_id = $1 AND status <> 'REJECTED') AS "live!""#,
        user_id
    )
    .fetch_one(&mut *tx)
    .await?;
    if live {
        return Err(Refusal::DocumentAlreadySubmitted.into());
    }
    let id = Uuid::new_v4();
    // A number is held only once it verifies an account: a pending claim
    // by someone else does not keep its owner out.
    let inserted = sqlx::query!(
        "INSERT INTO kyc_documents (id, user_id, document_type, number_sealed, number_digest, number_hint)
         SELECT $1, $2, $3, $4, $5, $6
         WHERE NOT EXISTS (SELECT 1 FROM kyc_documents
                           WHERE document_type = $3 AND number_digest = $5 AND status = 'VERIFIED')",
        id,
        user_id,
        kind.as_str(),
        state.keys.master.seal(number.as_bytes(), SEAL_CONTEXT),
        digest(&state.keys.desk_digest, &format!("{}|{number}", kind.as_str())),
        kyc::hint(&number)
    )
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        AuditEvent::new("kyc.submit", Outcome::Rejected)
            .actor(user_id)
            .detail(json!({"reason": "document_claimed", "document_type": kind.as_str()}))
            .record(&mut tx)
            .await?;
        tx.commit().await?;
        return Err(Refusal::DocumentClaimed.into());
    }
    AuditEvent::new("kyc.submit", Outcome::Success)
        .actor(user_id)
        .subject(id)
        .detail(json!({"document_type": kind.as_str(), "number_hint": kyc::hint(&number)}))
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    let mut conn = state.pool.acquire().await?;
    list(&mut conn, Some(user_id), None)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::internal("document vanished"))
}

/// Settles the user's pending document with the operator's KYC decision;
/// a number that verifies another account already cannot verify this one.
pub async fn review(
    conn: &mut PgConnection,
    user_id: Uuid,
    admin: Uuid,
    status: &str,
    note: Option<&str>,
) -> Result<(), Error> {
    if status == "PENDING" {
        return Ok(());
    }
    sqlx::query!(
        "UPDATE kyc_documents SET status = $3, reviewed_by = $2, review_note = $4, reviewed_at = now()
         WHERE user_id = $1 AND status = 'PENDING'",
        user_id,
        admin,
        status,
        note
    )
    .execute(conn)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.constraint() == Some("kyc_documents_number_verified") => {
            Error::Conflict(
                "this customer's document already verifies another account: reject it".into(),
            )
        }
        _ => e.into(),
    })?;
    Ok(())
}

/// Documents newest first: one user's, or everyone's, optionally of one status.
pub async fn list(
    conn: &mut PgConnection,
    user_id: Option<Uuid>,
    status: Option<&str>,
) -> Result<Vec<DocumentView>, Error> {
    let rows = sqlx::query!(
        r#"SELECT d.id, d.user_id, u.phone, u.name, d.document_type, d.number_hint, octet_length(d.number_sealed) AS "sealed_len!",
                  d.status, d.review_note, d.created_at, d.reviewed_at,
                  (SELECT count(*) FROM kyc_documents o
                   WHERE o.document_type = d.document_type AND o.number_digest = d.number_digest
                     AND o.status <> 'REJECTED' AND o.user_id <> d.user_id) AS "also_claimed_by!"
           FROM kyc_documents d JOIN users u ON u.id = d.user_id
           WHERE ($1::uuid IS NULL OR d.user_id = $1) AND ($2::text IS NULL OR d.status = $2)
           ORDER BY d.created_at DESC LIMIT 200"#,
        user_id,
        status
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| DocumentView {
            document_id: r.id,
            user_id: r.user_id,
            phone: r.phone,
            name: r.name,
            document_type: r.document_type,
            // AES-GCM adds a 12-byte nonce and a 16-byte tag to the number.
            number_masked: kyc::masked(&r.number_hint, (r.sealed_len as usize).saturating_sub(28)),
            status: r.status,
            also_claimed_by: Some(r.also_claimed_by),
            review_note: r.review_note,
            created_at: r.created_at,
            reviewed_at: r.reviewed_at,
        })
        .collect())
}
