//! A step that carries a PIN is served once per session, whichever
//! instance a resend reaches (`ussd_pin_steps`): the first request claims
//! it, and a resend arriving while it is served waits for the reply the
//! first saves. A resend never checks the PIN again, so retries of a
//! correct PIN neither count towards the lockout nor race the first to a
//! contradicting screen.

use std::time::Duration;

use chainpay_core::ussd::{Effect, Screen, Texts};
use chainpay_core::Lang;

use super::UssdRequest;
use crate::error::Error;
use crate::state::AppState;

/// A claim older than this was left by a request that died; the step may
/// be served again. (Longer than a step takes: a PIN check and a movement
/// within its posting patience.)
const STALE_S: f64 = 30.0;
/// How long a resend waits for the first request's reply.
const WAIT: Duration = Duration::from_secs(8);
const POLL: Duration = Duration::from_millis(50);

/// Whether `effect` carries a PIN (checks one, or sets one).
pub(super) fn carries_pin(effect: &Effect) -> bool {
    matches!(
        effect,
        Effect::Register { .. }
            | Effect::Send { .. }
            | Effect::Withdraw { .. }
            | Effect::Balances { .. }
            | Effect::Statement { .. }
            | Effect::Eligible { .. }
            | Effect::Convert { .. }
            | Effect::Reverse { .. }
            | Effect::ChangePin { .. }
            | Effect::BuyVoucher { .. }
            | Effect::CashOut { .. }
            | Effect::Pay { .. }
            | Effect::ApproveRequest { .. }
            | Effect::CashIn { .. }
            | Effect::Float { .. }
            | Effect::CashVoucher { .. }
            | Effect::ResetPin { .. }
    )
}

/// Claims input `position` of the request's session; `false` when another
/// request is serving it (or has served it) within [`STALE_S`].
pub(super) async fn claim(
    state: &AppState,
    request: &UssdRequest,
    position: usize,
) -> Result<bool, Error> {
    let position = i32::try_from(position).map_err(|e| Error::Internal(e.into()))?;
    let claimed = sqlx::query_scalar!(
        r#"INSERT INTO ussd_pin_steps (session_id, position) VALUES ($1, $2)
           ON CONFLICT (session_id, position) DO UPDATE SET claimed_at = now()
           WHERE ussd_pin_steps.claimed_at < now() - make_interval(secs => $3)
           RETURNING true AS "claimed!""#,
        request.session_id,
        position,
        STALE_S
    )
    .fetch_optional(&state.pool)
    .await?;
    Ok(claimed.is_some())
}

/// The reply the request serving input `position` saved, once it has; "try
/// later" if none came within [`WAIT`].
pub(super) async fn reply_of_first(
    state: &AppState,
    request: &UssdRequest,
    position: usize,
    lang: Lang,
) -> Result<String, Error> {
    let position = i32::try_from(position).map_err(|e| Error::Internal(e.into()))?;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        // Saved since the claim: not an earlier use of the same sessionId.
        let reply = sqlx::query_scalar!(
            "SELECT s.last_reply FROM ussd_sessions s
             JOIN ussd_pin_steps c ON c.session_id = s.session_id AND c.position = $3
             WHERE s.session_id = $1 AND s.phone = $2 AND s.step >= $3 AND s.updated_at >= c.claimed_at",
            request.session_id,
            request.phone.as_str(),
            position
        )
        .fetch_optional(&state.pool)
        .await?;
        if let Some(reply) = reply {
            return Ok(reply);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(Screen::End(Texts(lang).try_later().to_owned()).render());
        }
        tokio::time::sleep(POLL).await;
    }
}
