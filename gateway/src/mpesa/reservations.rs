//! What a payout paid after its refund owes, reserved on the customer's
//! account (`accounts.locked`, which every posting check honours) from the
//! moment M-Pesa's result comes until two operators settle it
//! ([`super::corrections`]): the customer has the money twice and must not
//! spend it meanwhile. Every step runs under the payout's lock.

use chainpay_core::notify::Sms;
use sqlx::PgConnection;
use uuid::Uuid;

use super::withdrawals::Held;
use crate::error::Error;
use crate::state::AppState;

/// Reserves on the customer's account what a payout paid after its refund
/// owes (amount and fee, less what its open contradictions reserved
/// already), as far as it is there, so it is not spent while operators
/// check; tells the customer. What was reserved.
pub(super) async fn reserve(
    conn: &mut PgConnection,
    state: &AppState,
    held: &Held,
) -> Result<i64, Error> {
    let owed = held.amount + held.fee;
    let (kind, user, currency) = held.account_key();
    let reserved = sqlx::query!(
        r#"WITH open AS (
               SELECT coalesce(sum(reserved), 0)::bigint AS already FROM payout_contradictions
               WHERE withdrawal_ref = $5 AND correction_id IS NULL),
           held AS (
               SELECT a.id, least(greatest(a.balance - a.locked, 0), greatest($4::bigint - open.already, 0)) AS n,
                      open.already
               FROM accounts a, open WHERE a.kind = $1 AND a.user_id = $2 AND a.currency = $3 FOR NO KEY UPDATE OF a)
           UPDATE accounts a SET locked = a.locked + held.n FROM held WHERE a.id = held.id
           RETURNING held.n AS "n!", held.already + held.n AS "total!""#,
        kind,
        user,
        currency,
        owed,
        held.reference
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(reserved) = reserved.filter(|r| r.n > 0) else {
        return Ok(0);
    };
    let rules = state.rules.get(&state.pool).await?;
    let text = Sms(held.lang).withdrawal_paid_after_refund_held(
        &rules.show("KES", held.amount),
        &format!("+{}", held.phone),
        &rules.show("KES", reserved.total),
    );
    crate::sms::outbox::queue(conn, &held.user_phone, &text, None).await?;
    Ok(reserved.n)
}

/// Reserves what came in since the payout's result up to its debt, as
/// contradiction `id`'s (a correction of it is being proposed).
pub(super) async fn top_up(
    conn: &mut PgConnection,
    state: &AppState,
    held: &Held,
    id: i64,
) -> Result<(), Error> {
    let topped = reserve(conn, state, held).await?;
    sqlx::query!(
        "UPDATE payout_contradictions SET reserved = reserved + $2 WHERE id = $1",
        id,
        topped
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Releases `amount` reserved on the customer's account; `tell`: the
/// customer is told it is theirs to spend again (a take-back tells them
/// itself).
pub(super) async fn release(
    conn: &mut PgConnection,
    state: &AppState,
    held: &Held,
    amount: i64,
    tell: bool,
) -> Result<(), Error> {
    if amount == 0 {
        return Ok(());
    }
    let (kind, user, currency) = held.account_key();
    sqlx::query!(
        "UPDATE accounts SET locked = locked - $4 WHERE kind = $1 AND user_id = $2 AND currency = $3",
        kind,
        user,
        currency,
        amount
    )
    .execute(&mut *conn)
    .await?;
    if tell {
        let rules = state.rules.get(&state.pool).await?;
        let text = Sms(held.lang).hold_released(&rules.show("KES", amount));
        crate::sms::outbox::queue(conn, &held.user_phone, &text, None).await?;
    }
    Ok(())
}

/// What the payout's paid-after-refund results reserved, freed from those
/// still open (one debt, whatever receipt each names: settled or not, they
/// reserve no more; a later proposal to correct one reserves again) and
/// from those `correction` has just settled, which keep the figure.
pub(super) async fn unreserve(
    conn: &mut PgConnection,
    held: &Held,
    correction: Uuid,
) -> Result<i64, Error> {
    Ok(sqlx::query_scalar!(
        r#"WITH reserving AS (
               SELECT id, reserved, correction_id FROM payout_contradictions
               WHERE withdrawal_ref = $1 AND reserved > 0 AND (correction_id IS NULL OR correction_id = $2)
               FOR UPDATE),
           cleared AS (
               UPDATE payout_contradictions c SET reserved = 0 FROM reserving r
               WHERE c.id = r.id AND r.correction_id IS NULL)
           SELECT coalesce(sum(reserved), 0)::bigint AS "released!" FROM reserving"#,
        held.reference,
        correction
    )
    .fetch_one(conn)
    .await?)
}
