//! Checking and hashing PINs, for every channel (REST login, USSD, PIN changes).
//!
//! Argon2id is slow on purpose, so it runs on a blocking thread, never on
//! the async runtime. Every check counts towards the five-wrong-PINs lockout
//! before the PIN is looked at (see [`super::lockout`]).

use chainpay_core::crypto::pin_hash;
use chainpay_core::Pin;
use sqlx::PgConnection;
use uuid::Uuid;

use super::lockout::{self, Attempt};

pub async fn hash(pin: Pin) -> anyhow::Result<String> {
    Ok(tokio::task::spawn_blocking(move || pin_hash::hash_pin(&pin)).await?)
}

pub async fn verify(pin: Pin, stored_phc: String) -> anyhow::Result<bool> {
    Ok(tokio::task::spawn_blocking(move || pin_hash::verify_pin(&pin, &stored_phc)).await?)
}

/// Spends a verification's time on a PIN for an unknown phone, so timing
/// does not reveal which numbers are registered.
pub async fn burn(pin: Pin) -> anyhow::Result<()> {
    Ok(tokio::task::spawn_blocking(move || pin_hash::burn_verification_time(&pin)).await?)
}

/// The answer to "is this the user's PIN?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinCheck {
    Correct,
    /// Wrong; `locked` when this attempt locked the account.
    Wrong {
        locked: bool,
    },
    /// Locked before this attempt; the PIN was not looked at.
    Locked {
        retry_after_s: i64,
    },
}

/// Counts an attempt, checks `pin`, and clears the count when it is right.
pub async fn check(conn: &mut PgConnection, user_id: Uuid, pin: Pin) -> anyhow::Result<PinCheck> {
    let locks_if_wrong = match lockout::begin_attempt(conn, user_id).await? {
        Attempt::Locked { retry_after_s } => return Ok(PinCheck::Locked { retry_after_s }),
        Attempt::Proceed { locks_if_wrong } => locks_if_wrong,
    };
    let stored = sqlx::query_scalar!("SELECT pin_hash FROM users WHERE id = $1", user_id)
        .fetch_one(&mut *conn)
        .await?;
    if verify(pin, stored).await? {
        lockout::forgive(conn, user_id).await?;
        Ok(PinCheck::Correct)
    } else {
        Ok(PinCheck::Wrong {
            locked: locks_if_wrong,
        })
    }
}
