//! Reversals: a customer asks for a transfer of theirs to be undone, two
//! operators decide: an approval is booked only when a second admin, other
//! than the first, approves too (one can reject alone; nothing moves). An
//! approval never edits the original: it posts a
//! correcting entry (the recipient pays the amount back; the fee stays
//! earned) and marks the original `REVERSED`, all in one transaction with
//! its audit row, chain entry and SMS to both parties. The request's
//! lifecycle is [`ReversalStatus`]'s.

use chainpay_core::ledger::move_entry;
use chainpay_core::money::show;
use chainpay_core::notify::Sms;
use chainpay_core::refusal::Refusal;
use chainpay_core::status::{ReversalStatus, TxStatus};
use chainpay_core::transaction::{reference, TxFacts, TxType};
use chainpay_core::{CurrencyCode, Lang};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{AuditEvent, Outcome};
use crate::error::{Error, Missing};
use crate::ledger::accounts::AccountRef;
use crate::movements::book::{book, Booking};
use crate::rules::Rules;
use crate::sms::outbox;
use crate::state::AppState;

/// How long after a transfer its sender may ask for a reversal.
pub const WINDOW_HOURS: i32 = 24;
/// How long a first approval waits for a second; after it, or once its
/// admin is no longer an admin in good standing, the next approval is a
/// first one again.
pub const FIRST_APPROVAL_HOURS: i32 = 72;
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
        format!(
            "{} {} {}",
            self.created_at.format("%d/%m"),
            show(&self.currency, self.amount, self.exponent.max(0) as u32),
            chainpay_core::statement::first_name(&self.to_name)
        )
    }
}

/// The caller's completed transfers of the last [`WINDOW_HOURS`] with no
/// reversal pending or done, newest first (the [`MAX_ELIGIBLE`] newest).
pub async fn eligible(pool: &PgPool, user_id: Uuid) -> sqlx::Result<Vec<EligibleTx>> {
    eligible_of(pool, user_id, None).await
}

/// As [`eligible`], of `only` that transfer when given: any transfer of the
/// window may be asked about, not only those a list shows.
async fn eligible_of(
    pool: &PgPool,
    user_id: Uuid,
    only: Option<Uuid>,
) -> sqlx::Result<Vec<EligibleTx>> {
    sqlx::query_as!(
        EligibleTx,
        r#"SELECT t.tx_id, t.created_at, t.amount, t.currency, c.exponent::int AS "exponent!", u.name AS to_name
           FROM transactions t
           JOIN users u ON u.id = t.to_user_id
           JOIN currencies c ON c.code = t.currency
           WHERE t.from_user_id = $1 AND t.tx_type = 'transfer' AND t.status = 'COMPLETED'
             AND t.created_at > now() - make_interval(hours => $2)
             AND NOT EXISTS (SELECT 1 FROM reversal_requests r WHERE r.tx_id = t.tx_id AND r.status IN ('PENDING', 'APPROVED'))
             AND ($4::uuid IS NULL OR t.tx_id = $4)
           ORDER BY t.seq DESC LIMIT $3"#,
        user_id,
        WINDOW_HOURS,
        MAX_ELIGIBLE,
        only
    )
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReversalRequested {
    pub reversal_id: Uuid,
    pub status: String,
}

/// Files a request for one of the caller's eligible transfers.
pub async fn request(
    pool: &PgPool,
    user_id: Uuid,
    tx_id: Uuid,
    reason: &str,
) -> Result<ReversalRequested, Error> {
    let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    if !(3..=500).contains(&reason.chars().count()) {
        return Err(Error::Validation(
            "reason must be 3 to 500 characters".into(),
        ));
    }
    if eligible_of(pool, user_id, Some(tx_id)).await?.is_empty() {
        return Err(Refusal::ReversalNotEligible.into());
    }
    let reversal_id = Uuid::new_v4();
    let mut tx = pool.begin().await?;
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
            return Err(Refusal::ReversalAlreadyRequested.into());
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
        status: ReversalStatus::Pending.as_str().into(),
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
    /// The first admin to approve; a second, other admin's approval books it.
    pub first_approved_by: Option<Uuid>,
    pub first_note: Option<String>,
    pub admin_note: Option<String>,
    /// The correcting transaction, once approved.
    pub reversal_tx_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub reviewed_at: Option<DateTime<Utc>>,
}

pub async fn list(
    pool: &PgPool,
    status: Option<ReversalStatus>,
    id: Option<Uuid>,
) -> sqlx::Result<Vec<ReversalView>> {
    sqlx::query_as!(
        ReversalView,
        r#"SELECT r.id AS reversal_id, r.tx_id, u.phone AS requester_phone, t.amount, t.currency, r.reason, r.status,
                  r.first_approved_by, r.first_note, r.admin_note, r.reversal_tx_id, r.created_at, r.reviewed_at
           FROM reversal_requests r JOIN users u ON u.id = r.requester_id JOIN transactions t ON t.tx_id = r.tx_id
           WHERE ($1::text IS NULL OR r.status = $1) AND ($2::uuid IS NULL OR r.id = $2)
           ORDER BY r.created_at DESC LIMIT 200"#,
        status.map(ReversalStatus::as_str),
        id
    )
    .fetch_all(pool)
    .await
}

/// A pending request, locked, with what deciding it needs.
struct Pending {
    tx_id: Uuid,
    requester: Uuid,
    /// The first approval, while it stands ([`FIRST_APPROVAL_HOURS`]).
    first_approved_by: Option<Uuid>,
    amount: i64,
    currency: String,
    sender: Uuid,
    sender_phone: String,
    sender_name: String,
    sender_lang: Lang,
    recipient: Uuid,
    recipient_phone: String,
    recipient_lang: Lang,
}

async fn lock_pending(conn: &mut PgConnection, reversal_id: Uuid) -> Result<Pending, Error> {
    let row = sqlx::query!(
        r#"SELECT r.status, r.tx_id, r.requester_id,
                  (SELECT f.id FROM users f
                   WHERE f.id = r.first_approved_by AND f.role = 'admin' AND NOT f.suspended
                     AND r.first_approved_at > now() - make_interval(hours => $2)) AS first_approved_by,
                  t.amount, t.currency, t.from_user_id AS "sender!", t.to_user_id AS "recipient!",
                  s.phone AS sender_phone, s.name AS sender_name, s.language AS sender_language,
                  p.phone AS recipient_phone, p.language AS recipient_language
           FROM reversal_requests r JOIN transactions t ON t.tx_id = r.tx_id
           JOIN users s ON s.id = t.from_user_id JOIN users p ON p.id = t.to_user_id
           WHERE r.id = $1 FOR UPDATE OF r"#,
        reversal_id,
        FIRST_APPROVAL_HOURS
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound(Missing::ReversalRequest))?;
    if row.status != ReversalStatus::Pending.as_str() {
        return Err(Refusal::ReversalAlreadyDecided.into());
    }
    Ok(Pending {
        tx_id: row.tx_id,
        requester: row.requester_id,
        first_approved_by: row.first_approved_by,
        amount: row.amount,
        currency: row.currency,
        sender: row.sender,
        sender_phone: row.sender_phone,
        sender_name: row.sender_name,
        sender_lang: Lang::parse(&row.sender_language),
        recipient: row.recipient,
        recipient_phone: row.recipient_phone,
        recipient_lang: Lang::parse(&row.recipient_language),
    })
}

/// What a decision came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    /// A first approval, recorded: a second admin's books it.
    FirstApproval,
    /// Booked (approved) or rejected.
    Done,
}

/// Approves or rejects a pending request. An approval is booked (the
/// correcting entry posted) only when it is the second, by another admin
/// than the first; the first is recorded and the request stays `PENDING`.
pub async fn decide(
    state: &AppState,
    admin_id: Uuid,
    reversal_id: Uuid,
    approve: bool,
    note: &str,
) -> Result<(Decided, ReversalView), Error> {
    let note = note.trim();
    if note.chars().count() > 500 {
        return Err(Error::Validation(
            "note must be at most 500 characters".into(),
        ));
    }
    let rules = state.rules.get(&state.pool).await?;
    let mut tx = state.pool.begin().await?;
    let pending = lock_pending(&mut tx, reversal_id).await?;
    // Four eyes: whoever asked for the correction, or gains or loses by it,
    // cannot be the one who decides it, either way (a recipient rejecting
    // the reversal keeps the money as surely as an approval would move it).
    if [pending.requester, pending.sender, pending.recipient].contains(&admin_id) {
        return Err(Error::SecondAdminNeeded);
    }
    if approve
        && pending
            .first_approved_by
            .is_none_or(|first| first == admin_id)
    {
        approve_first(&mut tx, admin_id, reversal_id, &pending, note).await?;
        tx.commit().await?;
        return Ok((Decided::FirstApproval, view(state, reversal_id).await?));
    }
    let (status, reversal_tx_id) = if approve {
        let tx_id = post_correction(&mut tx, state, &rules, &pending).await?;
        (ReversalStatus::Approved, Some(tx_id))
    } else {
        let shown = rules.show(&pending.currency, pending.amount);
        let message = Sms(pending.sender_lang).reversal_declined(pending.tx_id, &shown, note);
        outbox::queue(&mut tx, &pending.sender_phone, &message, None).await?;
        (ReversalStatus::Rejected, None)
    };
    sqlx::query!(
        "UPDATE reversal_requests SET status = $2, admin_id = $3, admin_note = $4, reversal_tx_id = $5, reviewed_at = now()
         WHERE id = $1",
        reversal_id,
        status.as_str(),
        admin_id,
        (!note.is_empty()).then_some(note),
        reversal_tx_id
    )
    .execute(&mut *tx)
    .await?;
    let action = if approve {
        "admin.reversal_approve"
    } else {
        "admin.reversal_reject"
    };
    AuditEvent::new(action, Outcome::Success)
        .actor(admin_id)
        .subject(reversal_id)
        .detail(json!({"tx_id": pending.tx_id, "reversal_tx_id": reversal_tx_id, "note": note, "sender": pending.sender_name,
                       "requested_by": pending.requester, "first_approved_by": pending.first_approved_by,
                       "decided_by": admin_id}))
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    Ok((Decided::Done, view(state, reversal_id).await?))
}

/// Records the first admin's approval (again: unchanged; one that no
/// longer stands is replaced). Nothing moves.
async fn approve_first(
    conn: &mut PgConnection,
    admin_id: Uuid,
    reversal_id: Uuid,
    pending: &Pending,
    note: &str,
) -> Result<(), Error> {
    if pending.first_approved_by.is_some() {
        return Ok(());
    }
    sqlx::query!(
        "UPDATE reversal_requests SET first_approved_by = $2, first_approved_at = now(), first_note = $3 WHERE id = $1",
        reversal_id,
        admin_id,
        (!note.is_empty()).then_some(note)
    )
    .execute(&mut *conn)
    .await?;
    AuditEvent::new("admin.reversal_first_approval", Outcome::Success)
        .actor(admin_id)
        .subject(reversal_id)
        .detail(json!({"tx_id": pending.tx_id, "note": note, "requested_by": pending.requester}))
        .record(conn)
        .await?;
    Ok(())
}

async fn view(state: &AppState, reversal_id: Uuid) -> Result<ReversalView, Error> {
    list(&state.pool, None, Some(reversal_id))
        .await?
        .pop()
        .ok_or(Error::NotFound(Missing::ReversalRequest))
}

/// The recipient pays the amount back to the sender; the original is marked
/// `REVERSED`. Returns the correcting transaction's id.
async fn post_correction(
    conn: &mut PgConnection,
    state: &AppState,
    rules: &Rules,
    pending: &Pending,
) -> Result<Uuid, Error> {
    let currency = CurrencyCode::parse(&pending.currency).map_err(|e| Error::Internal(e.into()))?;
    let (payer, payee) = (
        AccountRef::wallet(pending.recipient, &pending.currency),
        AccountRef::wallet(pending.sender, &pending.currency),
    );
    let entry = move_entry(payer.clone(), payee.clone(), &currency, pending.amount)
        .map_err(|e| Error::Internal(e.into()))?;
    let tx_id = crate::ledger::new_tx_id();
    let booking = Booking {
        facts: TxFacts::now(tx_id, TxType::Reversal, &pending.currency, (pending.amount, 0), Some(pending.recipient), Some(pending.sender)),
        entry,
        note: Some(format!("Reversal of {}", reference(pending.tx_id))),
        usd_cents: None,
        status: TxStatus::Completed,
        audit: AuditEvent::new("reversal.posted", Outcome::Success)
            .actor(pending.sender)
            .detail(json!({"original": pending.tx_id, "amount": pending.amount, "currency": pending.currency})),
    };
    let shown = |minor| rules.show(&pending.currency, minor);
    book(conn, &state.keys.tx_signing, booking, |booked| {
        let (receipt, amount) = (booked.receipt(), shown(pending.amount));
        let back = Sms(pending.sender_lang).reversed(
            receipt,
            pending.tx_id,
            &amount,
            true,
            &shown(booked.available_of(&payee)),
        );
        let taken = Sms(pending.recipient_lang).reversed(
            receipt,
            pending.tx_id,
            &amount,
            false,
            &shown(booked.available_of(&payer)),
        );
        vec![
            (pending.sender_phone.clone(), back),
            (pending.recipient_phone.clone(), taken),
        ]
    })
    .await?;
    sqlx::query!(
        "UPDATE transactions SET status = $2 WHERE tx_id = $1",
        pending.tx_id,
        TxStatus::Reversed.as_str()
    )
    .execute(&mut *conn)
    .await?;
    Ok(tx_id)
}
