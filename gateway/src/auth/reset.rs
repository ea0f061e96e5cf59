//! PIN reset: an operator who has verified the customer (by phone, at a
//! counter) issues a one-time code, sent by SMS (sealed in the outbox,
//! masked for operators); the customer sets a new PIN through USSD *Forgot
//! PIN* with it. Only the code's HMAC is kept; it expires after
//! [`CODE_MINUTES`] and after [`MAX_ATTEMPTS`] wrong tries. Setting the PIN
//! ends every token and clears the lockout.

use chainpay_core::crypto::random_bytes;
use chainpay_core::notify::Sms;
use chainpay_core::refusal::Refusal;
use chainpay_core::{Lang, Pin};
use serde_json::json;
use uuid::Uuid;

use super::{lockout, pins, session};
use crate::audit::{AuditEvent, Outcome};
use crate::error::{Error, Missing};
use crate::sms::outbox;
use crate::state::AppState;

pub const CODE_MINUTES: i64 = 15;
pub const MAX_ATTEMPTS: i32 = 5;

fn code_digest(state: &AppState, user_id: Uuid, code: &str) -> Vec<u8> {
    chainpay_core::voucher::digest(
        &state.keys.desk_digest,
        &format!("pin_reset|{user_id}|{code}"),
    )
}

/// Six uniformly random digits.
fn new_code() -> String {
    let n = u32::from_le_bytes(random_bytes::<4>()) % 1_000_000;
    format!("{n:06}")
}

/// Issues (or replaces) the user's reset code and queues its SMS.
pub async fn issue(
    state: &AppState,
    admin: Uuid,
    user_id: Uuid,
    note: Option<&str>,
) -> Result<(), Error> {
    let mut tx = state.pool.begin().await?;
    let user = sqlx::query!(
        "SELECT phone, language, role FROM users WHERE id = $1 FOR NO KEY UPDATE",
        user_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound(Missing::User))?;
    if user.role == "admin" {
        // One admin cannot take over another's account from the console.
        return Err(Error::Forbidden);
    }
    let code = new_code();
    sqlx::query!(
        "INSERT INTO pin_resets (user_id, code_digest, issued_by, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(mins => $4))
         ON CONFLICT (user_id) DO UPDATE SET code_digest = EXCLUDED.code_digest, attempts = 0,
             issued_by = EXCLUDED.issued_by, expires_at = EXCLUDED.expires_at, created_at = now()",
        user_id,
        code_digest(state, user_id, &code),
        admin,
        CODE_MINUTES as i32
    )
    .execute(&mut *tx)
    .await?;
    let sms = Sms(Lang::parse(&user.language));
    let full = sms.pin_reset_code(&code, CODE_MINUTES);
    let masked = sms.pin_reset_code("******", CODE_MINUTES);
    outbox::queue_sealed(
        &mut tx,
        &state.keys.master,
        &user.phone,
        &masked,
        &full,
        None,
    )
    .await?;
    AuditEvent::new("admin.pin_reset", Outcome::Success)
        .actor(admin)
        .subject(user_id)
        .detail(json!({ "note": note }))
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Sets `new` as the user's PIN if `code` is their current reset code.
pub async fn complete(state: &AppState, user_id: Uuid, code: &str, new: Pin) -> Result<(), Error> {
    new.check_strength().map_err(|_| Error::WeakPin)?;
    let mut tx = state.pool.begin().await?;
    let reset = sqlx::query!(
        "SELECT code_digest, attempts, expires_at > now() AS \"live!\" FROM pin_resets WHERE user_id = $1 FOR UPDATE",
        user_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(reset) = reset.filter(|r| r.live && r.attempts < MAX_ATTEMPTS) else {
        return Err(Refusal::ResetCodeInvalid.into());
    };
    let given = code_digest(state, user_id, code);
    if !constant_time_eq(&given, &reset.code_digest) {
        sqlx::query!(
            "UPDATE pin_resets SET attempts = attempts + 1 WHERE user_id = $1",
            user_id
        )
        .execute(&mut *tx)
        .await?;
        AuditEvent::new("auth.pin_reset", Outcome::Failure)
            .actor(user_id)
            .detail(json!({"reason": "wrong_code", "attempts": reset.attempts + 1}))
            .record(&mut tx)
            .await?;
        tx.commit().await?;
        return Err(Refusal::ResetCodeInvalid.into());
    }
    // Hashed only once the code is right: wrong codes cost no Argon2 time.
    let new_hash = pins::hash(new).await?;
    let user = sqlx::query!(
        "UPDATE users SET pin_hash = $2 WHERE id = $1 RETURNING phone, language",
        user_id,
        new_hash
    )
    .fetch_one(&mut *tx)
    .await?;
    lockout::clear(&mut tx, user_id).await?;
    sqlx::query!("DELETE FROM pin_resets WHERE user_id = $1", user_id)
        .execute(&mut *tx)
        .await?;
    session::end_all_tokens(&mut tx, user_id).await?;
    outbox::queue(
        &mut tx,
        &user.phone,
        &Sms(Lang::parse(&user.language)).pin_was_reset(),
        None,
    )
    .await?;
    AuditEvent::new("auth.pin_reset", Outcome::Success)
        .actor(user_id)
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    state.sessions.forget(user_id);
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
