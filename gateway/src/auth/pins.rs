//! Checking and hashing PINs, for every channel (REST login, USSD, PIN changes).
//!
//! Argon2id is slow on purpose, so it runs off the async runtime, on a pool
//! of as many threads as there are cores ([`on_hashing_threads`]). Every
//! check counts towards the escalating wrong-PIN lockout before the PIN is
//! looked at (see [`super::lockout`]).

use chainpay_core::crypto::pin_hash;
use chainpay_core::notify::Sms;
use chainpay_core::Pin;
use sqlx::PgConnection;
use uuid::Uuid;

use super::lockout::{self, Attempt, Lock};
use crate::sms::outbox;

/// Runs `work` on the hashing threads: one per core, so PIN checks queue
/// instead of crowding the machine, and the 19 MiB each Argon2id
/// computation takes is at most that many times 19 MiB. (On tokio's
/// blocking pool, each of up to 512 threads kept its own allocator arena
/// holding its last 19 MiB: a soak saw the gateway at 960 MB.)
async fn on_hashing_threads<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    let pool = POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("argon2-{i}"))
            .panic_handler(|_| tracing::error!("a PIN hashing job panicked"))
            .build()
            .map_err(|e| tracing::error!(error = %e, "cannot start the PIN hashing threads"))
            .ok()
    });
    let pool = pool
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no PIN hashing threads"))?;
    let (done, result) = tokio::sync::oneshot::channel();
    pool.spawn(move || {
        // Whoever asked has gone (a client or request timeout): no answer
        // is wanted, so spend no core on one.
        if !done.is_closed() {
            let _ = done.send(work());
        }
    });
    Ok(result.await?)
}

pub async fn hash(pin: Pin) -> anyhow::Result<String> {
    on_hashing_threads(move || pin_hash::hash_pin(&pin)).await
}

pub async fn verify(pin: Pin, stored_phc: String) -> anyhow::Result<bool> {
    on_hashing_threads(move || pin_hash::verify_pin(&pin, &stored_phc)).await
}

/// Spends a verification's time on a PIN for an unknown phone, so timing
/// does not reveal which numbers are registered.
pub async fn burn(pin: Pin) -> anyhow::Result<()> {
    on_hashing_threads(move || pin_hash::burn_verification_time(&pin)).await
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
