//! STK prompts whose answer never reached us. A push that timed out, or
//! whose reply was lost or unreadable, may still have reached the phone: the
//! customer is told the deposit failed, but if they pay anyway Safaricom's
//! callback names a CheckoutRequestID we never saw, and without this the
//! money would sit in our paybill with nothing booked for it.
//!
//! For [`WINDOW_S`] after such a push, a paid callback for an unknown
//! CheckoutRequestID with the deposit's phone and amount is checked with
//! STK Query (the callback's token can leak; M-Pesa's records are the word)
//! and, once confirmed, attached to the deposit. The callback is then
//! applied like any payment for a deposit that already ended: booked to
//! suspense, the customer told it is held, for operators to credit or
//! return with four eyes ([`crate::reconciliation::suspense`]).

use chainpay_core::daraja::wire::{self, StkCallback};
use uuid::Uuid;

use super::deposits::{confirmed, Confirmation};
use crate::auth::rate_limit::{admit, Admission};
use crate::clients::daraja::DarajaError;
use crate::error::Error;
use crate::state::AppState;

/// How long after an unanswered push its payment is still looked for:
/// a prompt lives about a minute on the phone, and Safaricom retries a
/// callback for some minutes after.
pub const WINDOW_S: f64 = 600.0;
/// STK Queries one unanswered deposit may cause per window: each unknown
/// paid callback naming its phone and amount asks once, and a caller with
/// the token could send many.
const QUERIES_PER_WINDOW: u32 = 10;

/// Whether a push that ended in `error` may have prompted the phone: no
/// answer, or none we could read. Daraja's own error body is a refusal
/// (nothing was sent).
pub fn may_have_prompted(error: &DarajaError) -> bool {
    matches!(error, DarajaError::Unreachable(_))
}

/// Attaches a paid callback's unknown CheckoutRequestID to the unanswered
/// deposit it pays, when there is one and STK Query confirms the payment.
/// Returns whether it did: the callback is then applied as STK Query
/// confirmed it.
pub async fn attach(state: &AppState, stk: &StkCallback) -> Result<bool, Error> {
    let Some(reference) = candidate(state, stk).await? else {
        return Ok(false);
    };
    let bucket = format!("stk-unanswered:{reference}");
    let window = WINDOW_S as i64;
    let admitted = admit(&state.pool, &bucket, QUERIES_PER_WINDOW, window).await?;
    if let Admission::Limited { .. } = admitted {
        return Ok(false);
    }
    if !matches!(
        confirmed(state, &stk.checkout_request_id).await,
        Confirmation::Paid
    ) {
        return Ok(false);
    }
    // Still unattached: two copies of the callback attach it once, and the
    // second then finds the deposit by its CheckoutRequestID.
    let attached = sqlx::query!(
        "UPDATE mpesa_deposits SET checkout_request_id = $2, merchant_request_id = $3, prompt_unanswered_until = NULL
         WHERE ref = $1 AND checkout_request_id IS NULL AND prompt_unanswered_until IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM mpesa_deposits WHERE checkout_request_id = $2)",
        reference,
        stk.checkout_request_id,
        stk.merchant_request_id
    )
    .execute(&state.pool)
    .await?;
    if attached.rows_affected() == 1 {
        tracing::warn!(%reference, "a payment for an unanswered STK Push arrived; held in suspense");
    }
    Ok(true)
}

/// The oldest unanswered deposit, still in its window, that a paid
/// callback's phone and amount match.
async fn candidate(state: &AppState, stk: &StkCallback) -> Result<Option<Uuid>, Error> {
    let paid = wire::code(&stk.result_code).is_some_and(|code| code.is_success());
    let (true, Some(phone), Ok(amount)) = (paid, stk.phone(), stk.amount_minor()) else {
        return Ok(None);
    };
    let found = sqlx::query_scalar!(
        "SELECT ref FROM mpesa_deposits
         WHERE phone = $1 AND amount = $2 AND checkout_request_id IS NULL AND prompt_unanswered_until > now()
         ORDER BY created_at LIMIT 1",
        phone,
        amount
    )
    .fetch_optional(&state.pool)
    .await?;
    Ok(found)
}
