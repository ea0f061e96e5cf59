//! Checking and hashing PINs, for every channel (REST login, USSD, PIN changes).
//!
//! Argon2id is slow on purpose, so it runs on a blocking thread, never on
//! the async runtime. Every check counts towards the escalating wrong-PIN
//! lockout before the PIN is looked at (see [`super::lockout`]).

use chainpay_core::crypto::pin_hash;
use chainpay_core::notify::Sms;
use chainpay_core::Pin;
use sqlx::PgConnection;
use uuid::Uuid;

use super::lockout::{self, Attempt, Lock};
use crate::sms::outbox;

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
    /// Wrong; `lock` when this attempt locked the account.
    Wrong {
        lock: Option<Lock>,
    },
    /// Locked before this attempt; the PIN was not looked at.
    Locked(Lock),
}

impl PinCheck {
    /// Whether the account is locked now.
    pub fn locked(self) -> bool {
        matches!(
            self,
            PinCheck::Locked(_) | PinCheck::Wrong { lock: Some(_) }
        )
    }
}

/// Counts an attempt, checks `pin`, and clears the count when it is right.
/// The attempt that locks the account texts its owner.
pub async fn check(conn: &mut PgConnection, user_id: Uuid, pin: Pin) -> anyhow::Result<PinCheck> {
    let locks = match lockout::begin_attempt(conn, user_id).await? {
        Attempt::Locked(lock) => return Ok(PinCheck::Locked(lock)),
        Attempt::Proceed { locks } => locks,
    };
    let stored = sqlx::query_scalar!("SELECT pin_hash FROM users WHERE id = $1", user_id)
        .fetch_one(&mut *conn)
        .await?;
    if verify(pin, stored).await? {
        lockout::forgive(conn, user_id).await?;
        return Ok(PinCheck::Correct);
    }
    let Some((lock, owner)) = locks else {
        return Ok(PinCheck::Wrong { lock: None });
    };
    let minutes = match lock {
        Lock::For { seconds } => Some((seconds + 59) / 60),
        Lock::UntilUnlocked => None,
    };
    let message = Sms(owner.lang).account_locked(minutes);
    outbox::queue(conn, &owner.phone, &message, None).await?;
    Ok(PinCheck::Wrong { lock: Some(lock) })
}
