//! Payouts settled by operators, four eyes.
//!
//! Automatic recovery ([`super::payout_status`]) settles a payout only on
//! M-Pesa's word. A payout Safaricom acknowledged but never answered for,
//! whose Transaction Status queries keep failing, stays held, and after
//! [`STUCK_AFTER_S`] reconciliation reports it. Operators then read
//! M-Pesa's own records (the organisation portal's statement): one admin
//! proposes what they show — paid, with the payout's receipt, or not paid —
//! and a *different* admin approves, which settles the payout through the
//! same once-only path as a B2C result (paid: the hold goes to the M-Pesa
//! float; not paid: amount and fee go back to the customer, with an SMS).
//! A result that arrives meanwhile settles it first and supersedes the
//! proposal; a result that later contradicts an approved PAID (failed, or
//! paid under another receipt) is audited and reported by reconciliation.
//! A request never sent, or not yet asked about, is not for operators: the
//! recovery job sends it and asks. The payout's own customer may neither
//! propose nor decide, nor the proposer decide. The database holds the
//! four-eyes rule too (`payout_resolutions_four_eyes`), one live proposal
//! per payout and one payout per receipt.

use chainpay_core::daraja::codes::ResultCode;
use chainpay_core::status::WithdrawalStatus;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::withdrawals;
use crate::audit::{AuditEvent, Outcome};
use crate::error::{Error, Missing};
use crate::four_eyes::{self, Standing};
use crate::state::AppState;

/// A payout pending this long after it was sent is reported by
/// reconciliation, and operators may settle it.
pub const STUCK_AFTER_S: f64 = 3600.0;

/// What M-Pesa's records show about the payout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Paid to the customer, under this receipt.
    Paid { receipt: String },
    /// Never paid.
    NotPaid,
}

/// A proposal as operators see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PayoutResolution {
    pub id: Uuid,
    /// The withdrawal's `ref`.
    pub withdrawal: Uuid,
    /// `PAID` or `NOT_PAID`.
    pub outcome: String,
    /// The payout's M-Pesa receipt, for `PAID`.
    pub receipt: Option<String>,
    /// `PENDING`, `APPROVED`, `REJECTED`, or `SUPERSEDED` (M-Pesa's result
    /// settled the payout first).
    pub status: String,
    pub proposed_by: Uuid,
    pub proposal_note: String,
    pub decided_by: Option<Uuid>,
    pub decision_note: Option<String>,
    /// The payout or refund the approval booked.
    pub settle_tx_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

/// Proposes settling withdrawal `reference` as M-Pesa's records show.
pub async fn propose(
    state: &AppState,
    admin: Uuid,
    reference: Uuid,
    finding: Finding,
    note: String,
) -> Result<PayoutResolution, Error> {
    let mut tx = state.pool.begin().await?;
    lock_eligible(&mut tx, admin, reference).await?;
    let receipt = match &finding {
        Finding::Paid { receipt } => Some(receipt.as_str()),
        Finding::NotPaid => None,
    };
    if let Some(receipt) = receipt {
        refuse_used_receipt(&mut tx, receipt, reference).await?;
    }
    let id = Uuid::new_v4();
    let outcome = outcome_name(&finding);
    sqlx::query!(
        "INSERT INTO payout_resolutions (id, withdrawal_ref, outcome, receipt, proposed_by, proposal_note)
         VALUES ($1, $2, $3, $4, $5, $6)",
        id,
        reference,
        outcome,
        receipt,
        admin,
        note
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.constraint() == Some("payout_resolutions_live") => {
            Error::Conflict("this payout has a proposal waiting already".into())
        }
        sqlx::Error::Database(db) if db.constraint() == Some("payout_resolutions_receipt_live") => {
            Error::Conflict("that receipt settles another payout already".into())
        }
        _ => e.into(),
    })?;
    AuditEvent::new("mpesa.payout.resolution.propose", Outcome::Success)
        .actor(admin)
        .subject(id)
        .detail(
            json!({"withdrawal": reference, "outcome": outcome, "receipt": receipt, "note": note}),
        )
        .record(&mut tx)
        .await?;
    let proposal = fetch(&mut tx, id).await?;
    tx.commit().await?;
    Ok(proposal)
}

/// Locks withdrawal `reference` if `admin` may propose settling it: not
/// their own, still pending, sent [`STUCK_AFTER_S`] ago and asked about.
async fn lock_eligible(conn: &mut PgConnection, admin: Uuid, reference: Uuid) -> Result<(), Error> {
    let payout = sqlx::query!(
        r#"SELECT status, user_id, coalesce(status_queries > 0 AND submitted_at < now() - make_interval(secs => $2), false)
                      AS "stuck!"
           FROM mpesa_withdrawals WHERE ref = $1 FOR UPDATE"#,
        reference,
        STUCK_AFTER_S
    )
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound(Missing::Withdrawal))?;
    if payout.user_id == admin {
        return Err(Error::SecondAdminNeeded);
    }
    if payout.status != WithdrawalStatus::Pending.as_str() {
        return Err(Error::Conflict(format!(
            "this withdrawal is settled already ({})",
            payout.status
        )));
    }
    if !payout.stuck {
        return Err(Error::Conflict(
            "this payout is still being recovered automatically; it can be settled by hand once it was sent an hour ago and asked about"
                .into(),
        ));
    }
    Ok(())
}

/// A receipt M-Pesa gave another payout, or a payment, is not this payout's.
pub(super) async fn refuse_used_receipt(
    conn: &mut PgConnection,
    receipt: &str,
    reference: Uuid,
) -> Result<(), Error> {
    let used = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM mpesa_withdrawals WHERE mpesa_receipt = $1 AND ref <> $2)
               OR EXISTS (SELECT 1 FROM mpesa_deposits WHERE mpesa_receipt = $1) AS "used!""#,
        receipt,
        reference
    )
    .fetch_one(conn)
    .await?;
    if used {
        return Err(Error::Conflict(
            "that receipt belongs to another M-Pesa transaction".into(),
        ));
    }
    Ok(())
}

fn outcome_name(finding: &Finding) -> &'static str {
    match finding {
        Finding::Paid { .. } => "PAID",
        Finding::NotPaid => "NOT_PAID",
    }
}

/// Approves (`approve`: the payout settles) or rejects a pending proposal
/// as `admin`, who must not be its proposer. Deciding again the same way
/// answers as the first time.
pub async fn decide(
    state: &AppState,
    admin: Uuid,
    id: Uuid,
    approve: bool,
    note: Option<String>,
) -> Result<PayoutResolution, Error> {
    let mut tx = state.pool.begin().await?;
    lock_payout_of(&mut tx, id).await?;
    let current = sqlx::query!(
        "SELECT r.status, r.proposed_by, r.decided_by, r.created_at, w.user_id AS customer
         FROM payout_resolutions r JOIN mpesa_withdrawals w ON w.ref = r.withdrawal_ref
         WHERE r.id = $1 FOR UPDATE OF r",
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound(Missing::PayoutResolution))?;
    let standing = Standing {
        status: &current.status,
        proposed_by: current.proposed_by,
        decided_by: current.decided_by,
        party: Some(current.customer),
        proposer_stands: four_eyes::proposer_stands(
            &mut tx,
            current.proposed_by,
            Some(current.created_at),
        )
        .await?,
    };
    if !four_eyes::to_decide(&standing, admin, approve, "proposal")? {
        return fetch(&mut tx, id).await;
    }
    let settle_tx_id = if approve {
        let proposal = fetch(&mut tx, id).await?;
        Some(settle(&mut tx, state, &proposal, admin, note.as_deref()).await?)
    } else {
        AuditEvent::new("mpesa.payout.resolution.reject", Outcome::Success)
            .actor(admin)
            .subject(id)
            .detail(json!({ "note": note }))
            .record(&mut tx)
            .await?;
        None
    };
    sqlx::query!(
        "UPDATE payout_resolutions SET status = $2, decided_by = $3, decision_note = $4, settle_tx_id = $5, decided_at = now()
         WHERE id = $1",
        id,
        four_eyes::status(approve),
        admin,
        note,
        settle_tx_id
    )
    .execute(&mut *tx)
    .await?;
    let decided = fetch(&mut tx, id).await?;
    tx.commit().await?;
    Ok(decided)
}

/// Locks the payout proposal `id` would settle, before the proposal itself:
/// a result settling the payout takes the same locks in the same order
/// (the payout, then its waiting proposals, to supersede them), so the two
/// never deadlock, and a proposal found `PENDING` here has a pending payout.
async fn lock_payout_of(conn: &mut PgConnection, id: Uuid) -> Result<(), Error> {
    sqlx::query_scalar!(
        "SELECT w.ref FROM mpesa_withdrawals w
         WHERE w.ref = (SELECT withdrawal_ref FROM payout_resolutions WHERE id = $1) FOR UPDATE",
        id
    )
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound(Missing::PayoutResolution))?;
    Ok(())
}

/// Closes the proposals still waiting to settle withdrawal `reference`,
/// which has just settled as `settled` (M-Pesa's result came first), but
/// for `approved`, the one being approved if operators settled it. Called
/// under the withdrawal's lock, in the transaction that settled it.
pub(super) async fn supersede(
    conn: &mut PgConnection,
    reference: Uuid,
    approved: Option<Uuid>,
    settled: WithdrawalStatus,
) -> Result<(), Error> {
    let note = format!("M-Pesa's result settled the payout first ({settled})");
    let closed = sqlx::query_scalar!(
        "UPDATE payout_resolutions SET status = 'SUPERSEDED', decided_at = now(), decision_note = $3
         WHERE withdrawal_ref = $1 AND status = 'PENDING' AND id IS DISTINCT FROM $2
         RETURNING id",
        reference,
        approved,
        note
    )
    .fetch_all(&mut *conn)
    .await?;
    for id in closed {
        AuditEvent::new("mpesa.payout.resolution.supersede", Outcome::Success)
            .subject(id)
            .detail(json!({"withdrawal": reference, "settled": settled.as_str()}))
            .record(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Settles the proposal's payout as it says, in the caller's transaction;
/// the payout or refund booked.
async fn settle(
    conn: &mut PgConnection,
    state: &AppState,
    proposal: &PayoutResolution,
    admin: Uuid,
    note: Option<&str>,
) -> Result<Uuid, Error> {
    let result = match &proposal.receipt {
        Some(receipt) if proposal.outcome == "PAID" => {
            // A result may have recorded it for another payout since.
            refuse_used_receipt(conn, receipt, proposal.withdrawal).await?;
            Ok(receipt.clone())
        }
        _ => Err((OPERATOR_SETTLED, NOT_PAID_REASON.to_owned())),
    };
    let outcome =
        withdrawals::settle_approved(conn, state, proposal.withdrawal, result, proposal.id).await?;
    let expected = if proposal.outcome == "PAID" {
        WithdrawalStatus::Completed
    } else {
        WithdrawalStatus::Failed
    };
    if outcome != expected.as_str() {
        // Not expected: decide holds the payout's lock, and a result that
        // settled it first superseded this proposal.
        return Err(Error::Conflict(format!(
            "the payout was settled meanwhile ({outcome})"
        )));
    }
    let tx_id = sqlx::query_scalar!(
        "SELECT settle_tx_id FROM mpesa_withdrawals WHERE ref = $1",
        proposal.withdrawal
    )
    .fetch_one(&mut *conn)
    .await?
    .ok_or_else(|| Error::internal("a settled payout without its transaction"))?;
    AuditEvent::new("mpesa.payout.resolution.approve", Outcome::Success)
        .actor(admin)
        .subject(proposal.id)
        .detail(
            json!({"withdrawal": proposal.withdrawal, "outcome": proposal.outcome,
                       "receipt": proposal.receipt, "settle_tx_id": tx_id, "note": note}),
        )
        .record(&mut *conn)
        .await?;
    Ok(tx_id)
}

/// The result code recorded for a payout settled as not paid. Not one of
/// Daraja's (no result ever came), nor the gateway's own -1 (a refused
/// submission, an unreadable code).
const OPERATOR_SETTLED: ResultCode = ResultCode(-2);

/// Why the customer's SMS says a payout settled as not paid did not go through.
const NOT_PAID_REASON: &str = "M-Pesa did not pay it";

/// Proposals, newest first, optionally of one status.
pub async fn list(
    conn: &mut PgConnection,
    status: Option<&str>,
) -> Result<Vec<PayoutResolution>, Error> {
    select(conn, status, None).await
}

async fn fetch(conn: &mut PgConnection, id: Uuid) -> Result<PayoutResolution, Error> {
    select(conn, None, Some(id))
        .await?
        .into_iter()
        .next()
        .ok_or(Error::NotFound(Missing::PayoutResolution))
}

async fn select(
    conn: &mut PgConnection,
    status: Option<&str>,
    id: Option<Uuid>,
) -> Result<Vec<PayoutResolution>, Error> {
    Ok(sqlx::query_as!(
        PayoutResolution,
        r#"SELECT id, withdrawal_ref AS withdrawal, outcome, receipt, status, proposed_by, proposal_note, decided_by,
                  decision_note, settle_tx_id, created_at, decided_at
           FROM payout_resolutions
           WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR id = $2)
           ORDER BY created_at DESC LIMIT 200"#,
        status,
        id
    )
    .fetch_all(conn)
    .await?)
}
