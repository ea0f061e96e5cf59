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
use crate::ledger::accounts;
use crate::ledger::post::Locked;
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
    let account = customer_account(conn, held).await?;
    let already = sqlx::query_scalar!(
        r#"SELECT coalesce(sum(reserved), 0)::bigint AS "already!" FROM payout_contradictions
           WHERE withdrawal_ref = $1 AND correction_id IS NULL"#,
        held.reference
    )
    .fetch_one(&mut *conn)
    .await?;
    let owed = (held.amount + held.fee - already).max(0);
    let reserved = account.available().clamp(0, owed);
    if reserved == 0 {
        return Ok(0);
    }
    add_locked(conn, account.id, reserved).await?;
    let rules = state.rules.get(&state.pool).await?;
    let text = Sms(held.lang).withdrawal_paid_after_refund_held(
        &rules.show("KES", held.amount),
        &format!("+{}", held.phone),
        &rules.show("KES", already + reserved),
    );
    crate::sms::outbox::queue(conn, &held.user_phone, &text, None).await?;
    Ok(reserved)
}

/// The customer's account the payout was paid from, locked as every
/// movement locks it.
async fn customer_account(conn: &mut PgConnection, held: &Held) -> Result<Locked, Error> {
    accounts::resolve_and_lock(conn, &[held.source()])
        .await?
        .and_then(|rows| rows.into_iter().next())
        .ok_or_else(|| Error::internal("a payout's account is missing"))
}

/// Adds `amount` (negative: releases it) to what account `id` reserves.
async fn add_locked(conn: &mut PgConnection, id: i64, amount: i64) -> Result<(), Error> {
    sqlx::query!(
        "UPDATE accounts SET locked = locked + $2 WHERE id = $1",
        id,
        amount
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
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
    let account = customer_account(conn, held).await?;
    add_locked(conn, account.id, -amount).await?;
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
