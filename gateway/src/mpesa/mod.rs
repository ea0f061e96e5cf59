//! M-Pesa through Safaricom Daraja: STK Push deposits ([`deposits`], with
//! payments to prompts whose push went unanswered found in [`unanswered`]
//! and payments STK Query has not confirmed yet kept in [`paid_reports`]) and
//! B2C withdrawals ([`withdrawals`]), whose lost answers are recovered
//! through Transaction Status ([`payout_status`]). Money moves exactly once whatever the
//! callbacks do: arrive late, twice, never, or forged. Operators settle, four eyes, a payout
//! M-Pesa never answered for ([`resolutions`]) and one its results contradict
//! ([`corrections`], with what it owes reserved meanwhile: [`reservations`]).

pub mod corrections;
pub mod deposits;
pub mod paid_reports;
pub mod payout_status;
pub mod reservations;
pub mod resolutions;
pub mod unanswered;
pub mod withdrawals;

use crate::error::Error;
use crate::state::AppState;

/// Where Daraja reaches this gateway: `MPESA_CALLBACK_URL`'s origin, or
/// this instance's own listener.
fn public_base(state: &AppState) -> Result<String, Error> {
    match &state.settings.mpesa.callback_url {
        Some(url) => Ok(url
            .trim_end_matches('/')
            .trim_end_matches("/api/v1/mpesa/callback")
            .to_owned()),
        None => Ok(state.self_url()?.to_owned()),
    }
}

/// A Daraja callback URL on this gateway, with the shared token.
pub fn callback_url(state: &AppState, path: &str) -> Result<String, Error> {
    Ok(format!(
        "{}{path}?token={}",
        public_base(state)?,
        state.mpesa_callback_token
    ))
}

/// Whether a callback carries our token.
pub fn token_matches(state: &AppState, given: Option<&str>) -> bool {
    crate::secrets::same_secret(given, &state.mpesa_callback_token)
}
