//! B2C payouts whose answer never came, resolved through Daraja's
//! Transaction Status API instead of an operator.
//!
//! A withdrawal still PENDING `MPESA_PENDING_TIMEOUT_S` after its B2C
//! request was sent (the submission timed out, or its result was lost) is
//! asked about, backing off from [`QUERY_SPACING_S`] and at most
//! [`MAX_QUERIES`] times; one still pending an hour after it was sent is
//! flagged by reconciliation and settled by two operators from M-Pesa's
//! records ([`super::resolutions`]). Every query's conversation is kept, so a slow answer to an
//! earlier query still counts. The answer arrives at
//! `/api/v1/mpesa/txstatus/result` and settles the withdrawal through the
//! same once-only path as a B2C result: *Completed* pays the hold out with
//! M-Pesa's receipt, *Failed* refunds it. A query that finds no such
//! transaction is not proof on its own (it may not be visible yet, or the
//! query itself may have failed): the payout is refunded only after
//! [`NO_RECORD_LIMIT`] such answers (to as many queries: an answer
//! delivered twice counts once) *and* once `MPESA_QUERY_DEADLINE_S` has
//! passed since it was sent, only if Safaricom never acknowledged the
//! request, and each counted only while an answer that found a transaction
//! shows the query works (see [`no_record`]; without one, a control query
//! asks about a payout known to be completed: [`ask_control`]). A request recorded but never sent (the
//! gateway stopped in between) is sent.

use chainpay_core::daraja::queries::{payout_status, PayoutStatus};
use chainpay_core::daraja::wire::{self, B2cResultEnvelope};
use chainpay_core::status::WithdrawalStatus;
use serde_json::{json, Value};
use uuid::Uuid;

use super::withdrawals;
use crate::audit::{AuditEvent, Outcome};
use crate::error::Error;
use crate::state::AppState;

/// Seconds before the second Transaction Status query of one payout (or the
/// pending timeout, when shorter), doubling with each query up to 32×.
const QUERY_SPACING_S: f64 = 30.0;
/// Queries of one payout at most (operators settle what they leave).
const MAX_QUERIES: i32 = 30;
/// "No such transaction" answers before the payout is taken as never made.
pub const NO_RECORD_LIMIT: i32 = 3;
/// Payouts looked at per pass.
const BATCH: i64 = 20;
/// A request recorded this long ago and never sent is sent now.
const UNSENT_AFTER_S: f64 = 30.0;

/// One pass: sends what was never sent, asks about what is overdue.
/// Returns how many payouts it looked at.
pub async fn recover(state: &AppState) -> Result<usize, Error> {
    let unsent = sqlx::query_scalar!(
        "SELECT hold_tx_id FROM mpesa_withdrawals
         WHERE status = $1 AND submitted_at IS NULL AND created_at < now() - make_interval(secs => $2)
         ORDER BY created_at LIMIT $3",
        WithdrawalStatus::Pending.as_str(),
        UNSENT_AFTER_S,
        BATCH
    )
    .fetch_all(&state.pool)
    .await?;
    for hold_tx_id in &unsent {
        // One payout's trouble does not hold up the others.
        if let Err(error) =
            crate::bounded::item(withdrawals::submit_detached(state, *hold_tx_id)).await
        {
            tracing::warn!(%hold_tx_id, %error, "sending a recorded B2C request failed; trying again next pass");
        }
    }
    let mut asked = 0;
    while asked < BATCH && crate::bounded::item(ask_one(state)).await? {
        asked += 1;
    }
    crate::bounded::item(ask_control(state)).await?;
    Ok(unsent.len() + asked as usize)
}

/// Claims the most overdue payout and asks about it; `false` when none is due.
async fn ask_one(state: &AppState) -> Result<bool, Error> {
    let timeout_s = state.settings.mpesa.pending_timeout_s as f64;
    let due = sqlx::query_scalar!(
        "UPDATE mpesa_withdrawals SET status_queried_at = now(), status_queries = status_queries + 1
         WHERE ref = (SELECT ref FROM mpesa_withdrawals
                      WHERE status = $1 AND submitted_at < now() - make_interval(secs => $2) AND status_queries < $4
                        AND (status_queried_at IS NULL
                             OR status_queried_at < now() - make_interval(secs => $3 * power(2, least(status_queries - 1, 5))))
                      ORDER BY submitted_at LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING ref",
        WithdrawalStatus::Pending.as_str(),
        timeout_s,
        QUERY_SPACING_S.min(timeout_s),
        MAX_QUERIES
    )
    .fetch_optional(&state.pool)
    .await?;
    let Some(reference) = due else {
        return Ok(false);
    };
    ask(state, reference, false).await?;
    Ok(true)
}

/// Sends a Transaction Status query about payout `reference` and keeps its
/// conversation (`control`: asked only as evidence that the query works);
/// a query Daraja refused is asked again on a later pass.
async fn ask(state: &AppState, reference: Uuid, control: bool) -> Result<(), Error> {
    let result_url = super::callback_url(state, "/api/v1/mpesa/txstatus/result")?;
    let timeout_url = super::callback_url(state, "/api/v1/mpesa/txstatus/timeout")?;
    match state
        .daraja()?
        .transaction_status(&reference.to_string(), &result_url, &timeout_url)
        .await
    {
        Ok(ack) => {
            sqlx::query!(
                "INSERT INTO mpesa_status_queries (conversation_id, withdrawal_ref, control) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                ack.conversation_id,
                reference,
                control
            )
            .execute(&state.pool)
            .await?;
        }
        Err(error) => {
            tracing::warn!(withdrawal = %reference, control, %error, "Transaction Status query failed; asking again later");
        }
    }
    Ok(())
}

/// Applies a Transaction Status result (or, `timed_out`, its queue
/// timeout, which only means asking again). Returns what happened.
pub async fn on_result(state: &AppState, body: Value, timed_out: bool) -> Result<String, Error> {
    let mut tx = state.pool.begin().await?;
    let outcome = match serde_json::from_value::<B2cResultEnvelope>(body.clone()) {
        Err(_) => "unreadable".to_owned(),
        Ok(_) if timed_out => "query timed out; asking again".to_owned(),
        Ok(envelope) => apply(&mut tx, state, &envelope.result).await?,
    };
    if outcome == "unknown" || outcome == "unreadable" {
        AuditEvent::new("mpesa.txstatus_result", Outcome::Rejected)
            .detail(json!({"reason": outcome}))
            .record(&mut tx)
            .await?;
    }
    let kind = if timed_out {
        "txstatus_timeout"
    } else {
        "txstatus_result"
    };
    sqlx::query!(
        "INSERT INTO mpesa_callbacks (kind, reference, body, outcome) VALUES ($1, NULL, $2, $3)",
        kind,
        body,
        outcome
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(outcome)
}

async fn apply(
    conn: &mut sqlx::PgConnection,
    state: &AppState,
    result: &wire::B2cResult,
) -> Result<String, Error> {
    let asked = sqlx::query!(
        r#"SELECT withdrawal_ref, answered_at IS NOT NULL AS "answered!" FROM mpesa_status_queries
           WHERE conversation_id = $1 FOR UPDATE"#,
        result.conversation_id
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(asked) = asked else {
        return Ok("unknown".into());
    };
    // One query, one answer: a second delivery changes nothing.
    if asked.answered {
        return Ok("answered already".into());
    }
    // A query that succeeded found a transaction: the query works.
    let found = wire::code(&result.result_code).is_some_and(|code| code.is_success());
    let control = sqlx::query_scalar!(
        "UPDATE mpesa_status_queries SET answered_at = now(), found = $2 WHERE conversation_id = $1 RETURNING control",
        result.conversation_id,
        found
    )
    .fetch_one(&mut *conn)
    .await?;
    let reference = asked.withdrawal_ref;
    if control {
        return Ok(format!("control answered (found: {found})"));
    }
    if found {
        // Found, so it exists: its earlier "no record" answers were wrong.
        sqlx::query!(
            "UPDATE mpesa_withdrawals SET status_no_record = 0 WHERE ref = $1",
            reference
        )
        .execute(&mut *conn)
        .await?;
    }
    let answer = match payout_status(result) {
        PayoutStatus::Completed { receipt } => Ok(receipt),
        PayoutStatus::NotPaid { code, desc } => Err((code, desc)),
        PayoutStatus::NoRecord { code, desc } => match no_record(conn, state, reference).await? {
            Some(answers) => Err((
                code,
                format!("M-Pesa has no record of the payout ({answers} answers): {desc}"),
            )),
            None => return Ok("no record yet; asking again".into()),
        },
        PayoutStatus::Unknown => return Ok("still processing; asking again".into()),
    };
    withdrawals::settle(conn, state, reference, answer).await
}

/// Counts a "no such transaction" answer, only while the query is known to
/// work (an answer that found a transaction within [`EVIDENCE_S`]: one that
/// came without is noted, and [`ask_control`] looks for evidence);
/// `Some(answers)` once enough were counted and the payout was sent long
/// enough ago to be sure, unless M-Pesa reported it paid (a result whose
/// conversation was never acknowledged).
async fn no_record(
    conn: &mut sqlx::PgConnection,
    state: &AppState,
    reference: Uuid,
) -> Result<Option<i32>, Error> {
    let counted = sqlx::query!(
        r#"WITH evidence AS (
               SELECT EXISTS (SELECT 1 FROM mpesa_status_queries
                              WHERE found AND answered_at > now() - make_interval(secs => $4)) AS works)
           UPDATE mpesa_withdrawals
           SET status_no_record = status_no_record + CASE WHEN evidence.works THEN 1 ELSE 0 END,
               status_unproven_at = CASE WHEN evidence.works THEN status_unproven_at ELSE now() END
           FROM evidence WHERE ref = $1 AND status = $3
           RETURNING status_no_record, submitted_at < now() - make_interval(secs => $2) AS "old_enough!",
                     conversation_id IS NULL AS "unacknowledged!", evidence.works AS "query_works!",
                     reported_paid_receipt IS NULL AS "none_reported_paid!""#,
        reference,
        state.settings.mpesa.query_deadline_s as f64,
        WithdrawalStatus::Pending.as_str(),
        EVIDENCE_S
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(counted
        .filter(|c| {
            c.status_no_record >= NO_RECORD_LIMIT
                && c.old_enough
                && c.unacknowledged
                && c.query_works
                && c.none_reported_paid
        })
        .map(|c| c.status_no_record))
}

/// How long an answer that found a transaction counts as evidence that
/// Transaction Status works.
const EVIDENCE_S: f64 = 600.0;
/// Seconds between control queries.
const CONTROL_SPACING_S: f64 = 60.0;

/// When a "no such transaction" answer came without recent evidence that
/// Transaction Status works, and none has come since, asks about the latest
/// payout known to be completed (at most every [`CONTROL_SPACING_S`]).
async fn ask_control(state: &AppState) -> Result<(), Error> {
    let control = sqlx::query_scalar!(
        "SELECT (SELECT ref FROM mpesa_withdrawals WHERE status = $1 ORDER BY settled_at DESC NULLS LAST LIMIT 1) AS known
         WHERE EXISTS (SELECT 1 FROM mpesa_withdrawals
                       WHERE status = $2 AND status_unproven_at > now() - make_interval(secs => $3))
           AND NOT EXISTS (SELECT 1 FROM mpesa_status_queries WHERE found AND answered_at > now() - make_interval(secs => $3))
           AND NOT EXISTS (SELECT 1 FROM mpesa_status_queries WHERE control AND asked_at > now() - make_interval(secs => $4))",
        WithdrawalStatus::Completed.as_str(),
        WithdrawalStatus::Pending.as_str(),
        EVIDENCE_S,
        CONTROL_SPACING_S
    )
    .fetch_optional(&state.pool)
    .await?
    .flatten();
    let Some(known) = control else {
        return Ok(());
    };
    ask(state, known, true).await
}
