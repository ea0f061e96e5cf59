//! Payouts M-Pesa's results contradict, corrected four eyes.
//!
//! A result that contradicts how a payout was settled books nothing by
//! itself ([`super::withdrawals`] keeps it as a contradiction, and
//! reconciliation reports it; a payout paid after its refund has amount
//! and fee reserved meanwhile, [`super::reservations`]). Operators check it
//! against M-Pesa's own statement; one admin proposes, and a *different*
//! admin (neither of them the payout's customer) approves, one of:
//!
//! - **correct**, as M-Pesa says:
//!   - *paid after refund*: amount and fee, refunded earlier, are taken
//!     back from the customer (refused, booking nothing, while they hold
//!     less) and the payout is recorded paid under M-Pesa's receipt;
//!   - *failed after paid*: amount and fee go back to the customer from
//!     the M-Pesa float and revenue, and the payout is recorded failed;
//!   - *paid under another receipt*: M-Pesa's receipt replaces the one
//!     recorded (nothing moves);
//! - **dismiss**: the statement shows the settlement was right; nothing
//!   changes.
//!
//! Either way the approval settles the contradiction and every other open
//! one that says the same about the same payout (M-Pesa sends a result
//! more than once), so reconciliation stops reporting them, and frees what
//! the payout's results reserved. A correction is checked again when
//! approved, under the payout's lock: one whose payout has moved on since
//! is refused. The database holds the four-eyes rule too
//! (`payout_corrections_four_eyes`) and one waiting proposal per payout.

use chainpay_core::daraja::codes::ResultCode;
use chainpay_core::daraja::wire;
use chainpay_core::notify::Sms;
use chainpay_core::status::WithdrawalStatus;
use chainpay_core::transaction::{TxFacts, TxType};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::reservations;
use super::withdrawals::{self, Held, FAILED_AFTER_PAID, PAID_AFTER_REFUND};
use crate::audit::{AuditEvent, Outcome};
use crate::error::{Error, Missing};
use crate::four_eyes::{self, Standing};
use crate::state::AppState;

/// What operators propose to do about a contradiction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    /// Correct the payout as M-Pesa's result says.
    Correct,
    /// Leave the settlement as it is: M-Pesa's statement bears it out.
    Dismiss,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Correct => "CORRECT",
            Action::Dismiss => "DISMISS",
        }
    }
}

/// A result of M-Pesa's that contradicts how a payout was settled.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Contradiction {
    pub id: i64,
    /// The withdrawal's `ref`.
    pub withdrawal: Uuid,
    /// `PAID AFTER REFUND`, `FAILED AFTER PAID` or `PAID UNDER OTHER RECEIPT`.
    pub kind: String,
    /// What it means for the customer.
    pub problem: String,
    /// The receipt M-Pesa reports the payout paid under.
    pub receipt: Option<String>,
    /// The receipt recorded on the payout when the result came.
    pub recorded_receipt: Option<String>,
    /// What M-Pesa said: `{receipt}`, or `{code, desc}`.
    #[schema(value_type = Object)]
    pub result: Value,
    pub found_at: DateTime<Utc>,
    /// The withdrawal as it stands now: status, amount and fee (minor units).
    pub status: String,
    pub amount: i64,
    pub fee: i64,
    /// The proposal waiting on its payout, if any (one at a time per
    /// payout).
    pub pending_correction: Option<Uuid>,
}

/// What a contradiction of `kind` means for the customer.
pub fn problem(kind: &str) -> &'static str {
    match kind {
        PAID_AFTER_REFUND => "M-Pesa reports paid a payout that was refunded: the customer has it twice",
        FAILED_AFTER_PAID => {
            "M-Pesa reports failed a payout operators settled as paid: the customer is owed amount and fee"
        }
        _ => "M-Pesa reports a payout paid under another receipt than the one recorded: check which transaction it was",
    }
}

/// A proposal as operators see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PayoutCorrection {
    pub id: Uuid,
    /// The contradiction it settles.
    pub contradiction: i64,
    /// The withdrawal's `ref`.
    pub withdrawal: Uuid,
    /// The contradiction's kind.
    pub kind: String,
    /// `CORRECT` or `DISMISS`.
    pub action: String,
    /// `PENDING`, `APPROVED` or `REJECTED`.
    pub status: String,
    pub proposed_by: Uuid,
    pub proposal_note: String,
    pub decided_by: Option<Uuid>,
    pub decision_note: Option<String>,
    /// What the approval booked, when it moved money, and the payout or
    /// refund that had settled the payout before it.
    pub correction_tx_id: Option<Uuid>,
    pub replaced_tx_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

/// How many open contradictions [`open`] lists at most.
pub const OPEN_LISTED: i64 = 500;

/// The contradictions no approved correction has settled.
pub struct Open {
    /// The oldest [`OPEN_LISTED`], oldest first.
    pub listed: Vec<Contradiction>,
    /// How many there are in all.
    pub count: i64,
}

/// The contradictions no approved correction has settled.
pub async fn open(conn: &mut PgConnection) -> Result<Open, Error> {
    let rows = sqlx::query!(
        r#"SELECT c.id, c.withdrawal_ref, c.kind, c.receipt, c.recorded_receipt, c.result, c.found_at,
                  w.status, w.amount, w.fee,
                  (SELECT p.id FROM payout_corrections p
                    WHERE p.withdrawal_ref = c.withdrawal_ref AND p.status = 'PENDING') AS pending,
                  count(*) OVER () AS "count!"
           FROM payout_contradictions c JOIN mpesa_withdrawals w ON w.ref = c.withdrawal_ref
           WHERE c.correction_id IS NULL ORDER BY c.id LIMIT $1"#,
        OPEN_LISTED
    )
    .fetch_all(conn)
    .await?;
    let count = rows.first().map_or(0, |r| r.count);
    let listed = rows
        .into_iter()
        .map(|r| Contradiction {
            id: r.id,
            withdrawal: r.withdrawal_ref,
            problem: problem(&r.kind).to_owned(),
            kind: r.kind,
            receipt: r.receipt,
            recorded_receipt: r.recorded_receipt,
            result: r.result,
            found_at: r.found_at,
            status: r.status,
            amount: r.amount,
            fee: r.fee,
            pending_correction: r.pending,
        })
        .collect();
    Ok(Open { listed, count })
}

/// A contradiction as a proposal and its decision need it.
struct Found {
    withdrawal: Uuid,
    kind: String,
    receipt: Option<String>,
    result: Value,
    settled: bool,
}

async fn found(conn: &mut PgConnection, id: i64) -> Result<Found, Error> {
    sqlx::query_as!(
        Found,
        r#"SELECT withdrawal_ref AS withdrawal, kind, receipt, result, correction_id IS NOT NULL AS "settled!"
           FROM payout_contradictions WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound(Missing::PayoutContradiction))
}

/// Locks the contradiction's payout (before anything else: a result
/// settling it takes its lock first too) and refuses the payout's own
/// customer.
async fn lock_payout(conn: &mut PgConnection, reference: Uuid, admin: Uuid) -> Result<Held, Error> {
    let held = withdrawals::lock(conn, reference)
        .await?
        .ok_or(Error::NotFound(Missing::Withdrawal))?;
    if held.user_id == admin {
        return Err(Error::SecondAdminNeeded);
    }
    Ok(held)
}

/// Refuses correcting a payout that no longer stands as the contradiction
/// found it, or as M-Pesa's result cannot say (a paid result without its
/// receipt, or with a receipt of another M-Pesa transaction's).
async fn still_contradicted(
    conn: &mut PgConnection,
    found: &Found,
    held: &Held,
) -> Result<(), Error> {
    let stands = match found.kind.as_str() {
        PAID_AFTER_REFUND => held.status == WithdrawalStatus::Failed,
        FAILED_AFTER_PAID => held.status == WithdrawalStatus::Completed,
        _ => {
            held.status == WithdrawalStatus::Completed
                && held.receipt.is_some()
                && held.receipt != found.receipt
        }
    };
    if !stands {
        return Err(Error::Conflict(format!(
            "the payout has moved on since M-Pesa's result (it is {} now); dismiss the result or let it be",
            held.status
        )));
    }
    // A receipt to record must be this payout's alone. (A paid result
    // without one, rare, is taken back with none recorded, as a result
    // without a TransactionID is settled.)
    match (found.kind.as_str(), found.receipt.as_deref()) {
        (FAILED_AFTER_PAID, _) => {}
        (_, Some(receipt)) => {
            super::resolutions::refuse_used_receipt(conn, receipt, held.reference).await?
        }
        (PAID_AFTER_REFUND, None) => {}
        (_, None) => {
            return Err(Error::Conflict(
                "M-Pesa's result names no receipt to record".into(),
            ))
        }
    }
    Ok(())
}

/// Proposes to settle contradiction `id` by `action`, as `admin`.
pub async fn propose(
    state: &AppState,
    admin: Uuid,
    id: i64,
    action: Action,
    note: String,
) -> Result<PayoutCorrection, Error> {
    let mut tx = state.pool.begin().await?;
    let reference = found(&mut tx, id).await?.withdrawal;
    let held = lock_payout(&mut tx, reference, admin).await?;
    let found = found(&mut tx, id).await?;
    if found.settled {
        return Err(Error::Conflict(
            "this contradiction was settled already".into(),
        ));
    }
    if action == Action::Correct {
        still_contradicted(&mut tx, &found, &held).await?;
        if found.kind == PAID_AFTER_REFUND {
            reservations::top_up(&mut tx, state, &held, id).await?;
        }
    }
    let proposal = Uuid::new_v4();
    sqlx::query!(
        "INSERT INTO payout_corrections (id, contradiction_id, withdrawal_ref, action, proposed_by, proposal_note)
         VALUES ($1, $2, $3, $4, $5, $6)",
        proposal,
        id,
        reference,
        action.as_str(),
        admin,
        note
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.constraint() == Some("payout_corrections_live") => {
            Error::Conflict("this payout has a correction waiting already".into())
        }
        _ => e.into(),
    })?;
    AuditEvent::new("mpesa.payout.correction.propose", Outcome::Success)
        .actor(admin)
        .subject(proposal)
        .detail(
            json!({"withdrawal": reference, "contradiction": id, "kind": found.kind,
                       "action": action.as_str(), "note": note}),
        )
        .record(&mut tx)
        .await?;
    let proposed = fetch(&mut tx, proposal).await?;
    tx.commit().await?;
    Ok(proposed)
}

/// Approves (`approve`: the correction is made) or rejects a pending
/// proposal as `admin`, who must be neither its proposer nor the payout's
/// customer. Deciding again the same way answers as the first time.
pub async fn decide(
    state: &AppState,
    admin: Uuid,
    id: Uuid,
    approve: bool,
    note: Option<String>,
) -> Result<PayoutCorrection, Error> {
    let mut tx = state.pool.begin().await?;
    let proposal = fetch(&mut tx, id).await?;
    let held = lock_payout(&mut tx, proposal.withdrawal, admin).await?;
    let proposal = fetch_locked(&mut tx, id).await?;
    let standing = Standing {
        status: &proposal.status,
        proposed_by: proposal.proposed_by,
        decided_by: proposal.decided_by,
        party: Some(held.user_id),
        proposer_stands: four_eyes::proposer_stands(
            &mut tx,
            proposal.proposed_by,
            Some(proposal.created_at),
        )
        .await?,
    };
    if !four_eyes::to_decide(&standing, admin, approve, "proposal")? {
        return Ok(proposal);
    }
    let booked = if approve {
        apply(&mut tx, state, &proposal, &held).await?
    } else {
        None
    };
    sqlx::query!(
        "UPDATE payout_corrections SET status = $2, decided_by = $3, decision_note = $4, correction_tx_id = $5,
                replaced_tx_id = $6, decided_at = now() WHERE id = $1",
        id,
        four_eyes::status(approve),
        admin,
        note,
        booked,
        booked.and(held.settle_tx_id)
    )
    .execute(&mut *tx)
    .await?;
    let event = if approve {
        "mpesa.payout.correction.approve"
    } else {
        "mpesa.payout.correction.reject"
    };
    AuditEvent::new(event, Outcome::Success)
        .actor(admin)
        .subject(id)
        .detail(
            json!({"withdrawal": proposal.withdrawal, "action": proposal.action,
                       "correction_tx_id": booked, "note": note}),
        )
        .record(&mut tx)
        .await?;
    let decided = fetch(&mut tx, id).await?;
    tx.commit().await?;
    Ok(decided)
}

/// Makes the approved proposal's correction (checked again under the
/// payout's lock) and settles its contradiction with every other one still
/// open that says the same about the same payout (M-Pesa sends a result
/// more than once), releasing what they reserved; what it booked, if it
/// moved money.
async fn apply(
    conn: &mut PgConnection,
    state: &AppState,
    proposal: &PayoutCorrection,
    held: &Held,
) -> Result<Option<Uuid>, Error> {
    let found = found(conn, proposal.contradiction).await?;
    if found.settled {
        return Err(Error::Conflict(
            "this contradiction was settled already".into(),
        ));
    }
    let correct_it = proposal.action == Action::Correct.as_str();
    if correct_it {
        still_contradicted(conn, &found, held).await?;
    }
    if correct_it && found.kind == PAID_AFTER_REFUND {
        // The accounts a take-back books, locked in the ledger's order
        // before the release touches the customer's: as every movement
        // locks them, so none waits on another in a circle.
        let paid = withdrawals::paid_accounts(held);
        let accounts = [paid.source_wallet, paid.target_wallet, paid.fee_revenue];
        crate::ledger::accounts::resolve_and_lock(conn, &accounts).await?;
    }
    sqlx::query!(
        "UPDATE payout_contradictions SET correction_id = $1
         WHERE withdrawal_ref = $2 AND kind = $3 AND correction_id IS NULL
           AND receipt IS NOT DISTINCT FROM $4 AND result = $5",
        proposal.id,
        proposal.withdrawal,
        found.kind,
        found.receipt,
        found.result
    )
    .execute(&mut *conn)
    .await?;
    let released = reservations::unreserve(conn, held, proposal.id).await?;
    reservations::release(conn, state, held, released, !correct_it).await?;
    if !correct_it {
        return Ok(None);
    }
    correct(conn, state, &found, held).await
}

/// Corrects the payout as M-Pesa's result says.
async fn correct(
    conn: &mut PgConnection,
    state: &AppState,
    found: &Found,
    held: &Held,
) -> Result<Option<Uuid>, Error> {
    match found.kind.as_str() {
        PAID_AFTER_REFUND => Ok(Some(take_back(conn, state, found, held).await?)),
        FAILED_AFTER_PAID => Ok(Some(give_back(conn, state, found, held).await?)),
        _ => {
            sqlx::query!(
                "UPDATE mpesa_withdrawals SET mpesa_receipt = $2 WHERE ref = $1",
                held.reference,
                found.receipt
            )
            .execute(&mut *conn)
            .await?;
            Ok(None)
        }
    }
}

/// A refunded payout M-Pesa made after all: amount and fee are taken back
/// from the customer, as the withdrawal they made (refused, booking
/// nothing, while they hold less), and the payout is recorded paid. Its
/// hold stays returned: the refund happened, and so did this.
async fn take_back(
    conn: &mut PgConnection,
    state: &AppState,
    found: &Found,
    held: &Held,
) -> Result<Uuid, Error> {
    let facts = TxFacts::now(
        crate::ledger::new_tx_id(),
        TxType::Withdrawal,
        "KES",
        (held.amount, held.fee),
        Some(held.user_id),
        None,
    );
    let note = format!("To M-Pesa {}, paid after its refund", held.phone);
    let entry = withdrawals::paid_entry(held)?;
    let taken = held.amount + held.fee;
    let wallet = held.source();
    let tx_id = withdrawals::book_settlement(
        conn,
        state,
        held,
        facts,
        Some(note),
        entry,
        |rules, booked| {
            Sms(held.lang).withdrawal_paid_after_all(
                &rules.show("KES", held.amount),
                &format!("+{}", held.phone),
                &rules.show("KES", taken),
                &rules.show("KES", booked.available_of(&wallet)),
            )
        },
    )
    .await?;
    // A result without a receipt records none.
    let paid = Ok(found.receipt.clone().unwrap_or_default());
    withdrawals::record_settlement(conn, held, WithdrawalStatus::Completed, &paid, tx_id).await?;
    Ok(tx_id)
}

/// A payout settled as paid that M-Pesa did not make: amount and fee go
/// back from the M-Pesa float and revenue, and it is recorded failed.
async fn give_back(
    conn: &mut PgConnection,
    state: &AppState,
    found: &Found,
    held: &Held,
) -> Result<Uuid, Error> {
    let code = wire::code(&found.result["code"]).unwrap_or(ResultCode(-1));
    let desc = found.result["desc"]
        .as_str()
        .unwrap_or("M-Pesa reports it was not paid")
        .to_owned();
    let entry = withdrawals::paid_entry(held)?.reversed();
    let tx_id = withdrawals::refund(conn, state, held, &desc, entry).await?;
    let failed = Err((code, desc));
    withdrawals::record_settlement(conn, held, WithdrawalStatus::Failed, &failed, tx_id).await?;
    withdrawals::mark_hold(conn, held, WithdrawalStatus::Failed).await?;
    Ok(tx_id)
}

/// Proposals, newest first, optionally of one status.
pub async fn list(
    conn: &mut PgConnection,
    status: Option<&str>,
) -> Result<Vec<PayoutCorrection>, Error> {
    select(conn, status, None).await
}

async fn fetch(conn: &mut PgConnection, id: Uuid) -> Result<PayoutCorrection, Error> {
    select(conn, None, Some(id))
        .await?
        .into_iter()
        .next()
        .ok_or(Error::NotFound(Missing::PayoutCorrection))
}

/// The proposal, locked.
async fn fetch_locked(conn: &mut PgConnection, id: Uuid) -> Result<PayoutCorrection, Error> {
    sqlx::query_scalar!(
        "SELECT id FROM payout_corrections WHERE id = $1 FOR UPDATE",
        id
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound(Missing::PayoutCorrection))?;
    fetch(conn, id).await
}

async fn select(
    conn: &mut PgConnection,
    status: Option<&str>,
    id: Option<Uuid>,
) -> Result<Vec<PayoutCorrection>, Error> {
    Ok(sqlx::query_as!(
        PayoutCorrection,
        r#"SELECT p.id, p.contradiction_id AS contradiction, p.withdrawal_ref AS withdrawal, c.kind, p.action,
                  p.status, p.proposed_by, p.proposal_note, p.decided_by, p.decision_note, p.correction_tx_id,
                  p.replaced_tx_id, p.created_at, p.decided_at
           FROM payout_corrections p JOIN payout_contradictions c ON c.id = p.contradiction_id
           WHERE ($1::text IS NULL OR p.status = $1) AND ($2::uuid IS NULL OR p.id = $2)
           ORDER BY p.created_at DESC LIMIT 200"#,
        status,
        id
    )
    .fetch_all(conn)
    .await?)
}
