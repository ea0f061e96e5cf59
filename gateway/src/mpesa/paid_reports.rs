//! Paid callbacks STK Query has not confirmed yet: for a deposit that
//! already ended, or for a CheckoutRequestID we never saw that may pay an
//! unanswered push ([`super::unanswered`]). Nothing is booked on a
//! callback's word (its token is a secret in a URL, and can leak), and a
//! real payment must not be lost because STK Query was down, still
//! processing, or not asked (too many copies of one callback): the report
//! is kept, at most [`PER_DEPOSIT`] per deposit, and the sweep asks STK
//! Query again, with growing pauses, for a day. Confirmed paid, the
//! callback is applied as if it had just been confirmed; confirmed unpaid
//! or never confirmed, the report is dropped and audited.

use chainpay_core::daraja::wire::StkCallback;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::deposits::{apply_callback, Confirmation, AWAITING_QUERY, LATE_QUERY_WINDOW_S};
use super::unanswered::{self, Attached};
use crate::audit::{AuditEvent, Outcome};
use crate::clients::daraja::StkStatus;
use crate::error::Error;
use crate::state::AppState;

/// Reports kept per deposit: a flood of forged reports cannot grow the
/// sweep's work without bound.
const PER_DEPOSIT: i64 = 5;
/// The pause after the first query of a report, doubling after each.
const FIRST_PAUSE_S: f64 = 10.0;
const LONGEST_PAUSE_S: f64 = 3_600.0;
/// Reports the sweep asks about per pass.
const SWEEP_BATCH: usize = 10;

/// Keeps a paid callback about `deposit` for the sweep to confirm, asked
/// about at its next pass (a copy of one already kept is not kept again;
/// one over the deposit's [`PER_DEPOSIT`] is audited and dropped). Returns
/// the callback's outcome.
pub(super) async fn keep(
    conn: &mut PgConnection,
    deposit: Uuid,
    stk: &StkCallback,
) -> Result<String, Error> {
    let callback = serde_json::to_value(stk).map_err(|e| Error::Internal(e.into()))?;
    let kept = sqlx::query_scalar!(
        r#"WITH kept AS (
               INSERT INTO stk_paid_reports (checkout_request_id, deposit_ref, callback)
               SELECT $1, $2, $3 WHERE (SELECT count(*) FROM stk_paid_reports WHERE deposit_ref = $2) < $4
               ON CONFLICT (checkout_request_id) DO NOTHING RETURNING 1)
           SELECT EXISTS (SELECT 1 FROM kept)
                  OR EXISTS (SELECT 1 FROM stk_paid_reports WHERE checkout_request_id = $1) AS "kept!""#,
        stk.checkout_request_id,
        deposit,
        callback,
        PER_DEPOSIT
    )
    .fetch_one(&mut *conn)
    .await?;
    if kept {
        return Ok(AWAITING_QUERY.to_owned());
    }
    AuditEvent::new("mpesa.paid_report", Outcome::Rejected)
        .subject(&stk.checkout_request_id)
        .detail(
            json!({"reason": "too many unconfirmed reports for one deposit", "deposit": deposit}),
        )
        .record(conn)
        .await?;
    Ok("not kept: too many unconfirmed reports".to_owned())
}

/// Asks STK Query about kept reports that are due. Returns how many were
/// looked at.
pub async fn sweep(state: &AppState) -> Result<usize, Error> {
    let mut looked = 0;
    while looked < SWEEP_BATCH && crate::bounded::item(sweep_one(state)).await? {
        looked += 1;
    }
    Ok(looked)
}

/// A kept report, claimed for one query.
struct Report {
    checkout: String,
    /// The callback kept, unless it no longer reads as one.
    stk: Option<StkCallback>,
    reported_at: DateTime<Utc>,
    stale: bool,
}

/// Claims the report due longest, putting its next query off first: one
/// whose handling fails (or whose gateway stops meanwhile) waits its pause
/// like any other instead of blocking the reports behind it.
async fn claim_due(state: &AppState) -> Result<Option<Report>, Error> {
    // Short in tests, whose deposits are asked about after a second.
    let first = FIRST_PAUSE_S.min(state.settings.mpesa.pending_timeout_s as f64);
    let row = sqlx::query!(
        r#"UPDATE stk_paid_reports
           SET queries = queries + 1,
               next_query_at = now() + make_interval(secs => least($2 * power(2, least(queries, 20)), $3))
           WHERE checkout_request_id = (SELECT checkout_request_id FROM stk_paid_reports WHERE next_query_at <= now()
                                        ORDER BY next_query_at LIMIT 1 FOR UPDATE SKIP LOCKED)
           RETURNING checkout_request_id, callback, reported_at,
                     reported_at < now() - make_interval(secs => $1) AS "stale!""#,
        LATE_QUERY_WINDOW_S,
        first,
        LONGEST_PAUSE_S
    )
    .fetch_optional(&state.pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(Report {
        checkout: row.checkout_request_id,
        stk: serde_json::from_value(row.callback).ok(),
        reported_at: row.reported_at,
        stale: row.stale,
    }))
}

/// Asks STK Query about the next due report and acts on the answer.
/// `false` when nothing is due.
async fn sweep_one(state: &AppState) -> Result<bool, Error> {
    let Some(report) = claim_due(state).await? else {
        return Ok(false);
    };
    let checkout = report.checkout.clone();
    let mut tx = state.pool.begin().await?;
    // Still kept (another instance may have finished it meanwhile), and
    // whether its CheckoutRequestID is a deposit's (Safaricom issued it).
    let kept = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM mpesa_deposits WHERE checkout_request_id = $1) AS "known!"
           FROM stk_paid_reports WHERE checkout_request_id = $1 FOR UPDATE"#,
        checkout
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(known) = kept else {
        return Ok(true);
    };
    let stk = match (&report.stk, report.stale) {
        (Some(stk), false) => stk,
        (None, _) => {
            let why = "the kept callback no longer reads as one";
            dropped(&mut tx, &checkout, why).await?;
            tx.commit().await?;
            return Ok(true);
        }
        (Some(_), true) => {
            let why = "STK Query never confirmed the payment";
            dropped(&mut tx, &checkout, why).await?;
            tx.commit().await?;
            return Ok(true);
        }
    };
    match state.daraja()?.stk_query(&checkout).await {
        Ok(StkStatus::Final { result_code, .. }) if result_code.is_success() => {
            confirmed(&mut tx, state, (stk, report.reported_at)).await?;
        }
        Ok(StkStatus::Final { .. }) => {
            let why = "STK Query says the payment was not made";
            dropped(&mut tx, &checkout, why).await?;
        }
        Err(error) if error.no_such_checkout() && !known => {
            let why = "Safaricom never issued this CheckoutRequestID";
            dropped(&mut tx, &checkout, why).await?;
        }
        // Asked again after the pause the claim set.
        Ok(StkStatus::Pending) | Err(_) => {}
    }
    tx.commit().await?;
    Ok(true)
}

/// STK Query confirmed a kept report: its callback is applied (to its
/// deposit, or attached first to the unanswered one it pays).
async fn confirmed(
    conn: &mut PgConnection,
    state: &AppState,
    (stk, reported_at): (&StkCallback, DateTime<Utc>),
) -> Result<(), Error> {
    let received = (stk, reported_at);
    let (outcome, booked) = match unanswered::attach(conn, received, &Confirmation::Paid).await? {
        Attached::Yes => (
            apply_callback(conn, state, received, Confirmation::Paid).await?,
            true,
        ),
        // Its deposit's push is still in flight: asked again later.
        Attached::No(outcome) if outcome == AWAITING_QUERY => return Ok(()),
        // Paid, but to no deposit it can be given to: the callback stays a
        // reconciliation finding ("a success callback for no deposit").
        Attached::No(outcome) => (outcome, false),
    };
    sqlx::query!(
        "DELETE FROM stk_paid_reports WHERE checkout_request_id = $1",
        stk.checkout_request_id
    )
    .execute(&mut *conn)
    .await?;
    let audited = if booked {
        Outcome::Success
    } else {
        Outcome::Rejected
    };
    AuditEvent::new("mpesa.paid_report", audited)
        .subject(&stk.checkout_request_id)
        .detail(json!({"outcome": outcome, "reported_at": reported_at, "confirmed_paid": true}))
        .record(conn)
        .await?;
    Ok(())
}

async fn dropped(conn: &mut PgConnection, checkout: &str, reason: &str) -> Result<(), Error> {
    sqlx::query!(
        "DELETE FROM stk_paid_reports WHERE checkout_request_id = $1",
        checkout
    )
    .execute(&mut *conn)
    .await?;
    AuditEvent::new("mpesa.paid_report", Outcome::Rejected)
        .subject(checkout)
        .detail(json!({"reason": reason}))
        .record(conn)
        .await?;
    Ok(())
}
