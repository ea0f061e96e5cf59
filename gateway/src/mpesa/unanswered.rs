//! STK prompts whose answer never reached us. A push that timed out, or
//! whose reply was lost, unreadable or a server error, may still have
//! reached the phone: the customer is told the deposit failed, but if they
//! pay anyway Safaricom's callback names a CheckoutRequestID we never saw,
//! and without this the money would sit in our paybill with nothing booked
//! for it.
//!
//! Every deposit is recorded with a window of [`WINDOW_S`] (cleared once the
//! push is answered). A paid callback for an unknown CheckoutRequestID with
//! the phone and amount of a deposit whose window was open when it arrived
//! is checked with STK Query (the callback's token can leak; M-Pesa's
//! records are the word) and, once confirmed, attached to that deposit, if
//! the push has failed by then, and applied like any payment for a deposit
//! that already ended: booked to suspense, the customer told it is held,
//! for operators to credit or return with four eyes
//! ([`crate::reconciliation::suspense`]). Unconfirmed, or while the push is
//! still in flight, the report waits for the sweep ([`super::paid_reports`]).

use chainpay_core::daraja::wire::{self, StkCallback};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::deposits::{unknown_checkout, Confirmation};
use super::paid_reports;
use crate::audit::{AuditEvent, Outcome};
use crate::clients::daraja::DarajaError;
use crate::error::Error;
use crate::state::AppState;

/// How long after a deposit is recorded a payment for its prompt is still
/// matched to it when the push got no answer: a prompt lives about a
/// minute on the phone, and Safaricom's callback follows within minutes.
pub const WINDOW_S: f64 = 600.0;

/// Whether a push that ended in `error` may have prompted the phone: no
/// answer, or none we could read (a server error counts as none). A 4xx
/// error body is a refusal: nothing was sent.
pub fn may_have_prompted(error: &DarajaError) -> bool {
    matches!(error, DarajaError::Unreachable(_))
}

/// The phone and amount a callback says were paid, when it says so.
fn claimed(stk: &StkCallback) -> Option<(String, i64)> {
    let paid = wire::code(&stk.result_code).is_some_and(|code| code.is_success());
    match (paid, stk.phone(), stk.amount_minor()) {
        (true, Some(phone), Ok(amount)) => Some((phone, amount)),
        _ => None,
    }
}

/// Whether a paid callback for an unknown CheckoutRequestID may pay an
/// unanswered deposit, so that STK Query is worth asking (read without a
/// lock: [`attach`] looks again).
pub(super) async fn may_pay_one(state: &AppState, stk: &StkCallback) -> Result<bool, Error> {
    let Some((phone, amount)) = claimed(stk) else {
        return Ok(false);
    };
    let found = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM mpesa_deposits
                          WHERE phone = $1 AND amount = $2 AND checkout_request_id IS NULL
                            AND prompt_unanswered_until > now()) AS "found!""#,
        phone,
        amount
    )
    .fetch_one(&state.pool)
    .await?;
    Ok(found)
}

/// Serialises everything that gives a deposit this CheckoutRequestID:
/// [`attach`], and recording the push's own answer.
pub(super) async fn lock_checkout(conn: &mut PgConnection, checkout: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended('stk-checkout:' || $1, 0))",
        checkout
    )
    .execute(conn)
    .await
    .map(drop)
}

/// What [`attach`] came to.
pub(super) enum Attached {
    /// A deposit has the callback's CheckoutRequestID: apply the callback.
    Yes,
    /// None has; the outcome to record.
    No(String),
}

/// Attaches a paid callback's unknown CheckoutRequestID, received at
/// `received`, to the unanswered deposit it pays, when STK Query confirmed
/// the payment; unconfirmed, or while that deposit's push is in flight, the
/// report is kept for the sweep. Under a lock on the CheckoutRequestID
/// ([`lock_checkout`]), so copies of one callback attach it once and a
/// push's own answer is not recorded meanwhile, then one on the phone and
/// amount, so two payments of one phone for one amount pay two deposits
/// (taken in this order; nothing else takes the second).
pub(super) async fn attach(
    conn: &mut PgConnection,
    (stk, received): (&StkCallback, DateTime<Utc>),
    confirmation: &Confirmation,
) -> Result<Attached, Error> {
    let checkout = &stk.checkout_request_id;
    lock_checkout(&mut *conn, checkout).await?;
    let known = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM mpesa_deposits WHERE checkout_request_id = $1) AS "known!""#,
        checkout
    )
    .fetch_one(&mut *conn)
    .await?;
    if known {
        return Ok(Attached::Yes);
    }
    let Some((phone, amount)) = claimed(stk) else {
        return Ok(Attached::No(unknown_checkout(conn, checkout).await?));
    };
    if let Confirmation::NoSuchPrompt = confirmation {
        return Ok(Attached::No(unknown_checkout(conn, checkout).await?));
    }
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended('stk-unanswered:' || $1 || ':' || $2::bigint, 0))",
        phone,
        amount
    )
    .execute(&mut *conn)
    .await?;
    // Deposits recorded before the payment arrived whose push had no
    // answer then.
    let candidates = sqlx::query!(
        "SELECT ref, user_id, status FROM mpesa_deposits
         WHERE phone = $1 AND amount = $2 AND checkout_request_id IS NULL
           AND prompt_unanswered_until > $3 AND created_at <= $3
         ORDER BY created_at FOR UPDATE",
        phone,
        amount,
        received
    )
    .fetch_all(&mut *conn)
    .await?;
    let Some(first) = candidates.first() else {
        return Ok(Attached::No(unknown_checkout(conn, checkout).await?));
    };
    // Whose money it is must not be a guess: with several customers'
    // prompts to one phone (MPESA_PROMPT_OTHER_PHONES) it waits for the
    // operators, as any callback for no deposit does.
    if candidates.iter().any(|c| c.user_id != first.user_id) {
        AuditEvent::new("mpesa.callback", Outcome::Rejected)
            .subject(checkout)
            .detail(json!({"reason": "several customers' unanswered prompts match this payment"}))
            .record(&mut *conn)
            .await?;
        return Ok(Attached::No(
            "unknown: several customers' prompts match".into(),
        ));
    }
    // While a push of theirs is still in flight the payment may be its
    // own, on time: it waits for that push's answer.
    let in_flight = candidates.iter().any(|c| c.status == "PENDING");
    let failed = candidates
        .iter()
        .find(|c| c.status == "FAILED")
        .filter(|_| !in_flight);
    match (confirmation, failed) {
        (Confirmation::Unpaid(_), _) => {
            AuditEvent::new("mpesa.callback", Outcome::Rejected)
                .subject(checkout)
                .detail(json!({"reason": "STK Query says the payment was not made"}))
                .record(&mut *conn)
                .await?;
            Ok(Attached::No("unknown; not paid by STK Query".into()))
        }
        (Confirmation::Paid, Some(failed)) => {
            sqlx::query!(
                "UPDATE mpesa_deposits SET checkout_request_id = $2, merchant_request_id = $3, prompt_unanswered_until = NULL
                 WHERE ref = $1",
                failed.r#ref,
                checkout,
                stk.merchant_request_id
            )
            .execute(&mut *conn)
            .await?;
            tracing::warn!(reference = %failed.r#ref, "a payment for an unanswered STK Push arrived; held in suspense");
            Ok(Attached::Yes)
        }
        _ => {
            let reference: Uuid = failed.unwrap_or(first).r#ref;
            Ok(Attached::No(
                paid_reports::keep(conn, reference, stk).await?,
            ))
        }
    }
}
