//! Checking and hashing PINs, for every channel (REST login, USSD, PIN changes).
//!
//! Argon2id is slow on purpose, so it runs off the async runtime, on a pool
//! of as many threads as there are cores ([`on_hashing_threads`]). Every
//! check counts towards the escalating wrong-PIN lockout before the PIN is
//! looked at (see [`super::lockout`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use chainpay_core::crypto::pin_hash;
use chainpay_core::notify::Sms;
use chainpay_core::Pin;
use sqlx::PgPool;
use uuid::Uuid;

use super::lockout::{self, Attempt, Lock};
use super::rate_limit::{self, Admission};
use crate::error::Error;
use crate::sms::outbox;

/// PIN computations waiting for or on the hashing threads, per core, before
/// more are turned away with "retry in a second" (429): at about 20 ms a
/// computation, a full queue is a few seconds' work, so a flood of logins or
/// USSD PIN steps waits a bounded time instead of piling up without end.
const MOST_QUEUED_PER_CORE: usize = 128;

/// How many PIN computations are queued or running now.
static QUEUED: AtomicUsize = AtomicUsize::new(0);

/// A place in the hashing threads' queue, held until its computation is
/// done (or its caller gone). A PIN check takes it before the attempt is
/// counted, so a check turned away never counts as a wrong PIN.
struct Slot;

impl Slot {
    fn take() -> Result<Slot, Error> {
        if QUEUED.fetch_add(1, Ordering::Relaxed) >= MOST_QUEUED_PER_CORE * threads() {
            QUEUED.fetch_sub(1, Ordering::Relaxed);
            return Err(Error::RateLimited { retry_after_s: 1 });
        }
        Ok(Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        QUEUED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One hashing thread per core.
fn threads() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// Runs `work` on the hashing threads in `slot`: one thread per core, so
/// PIN checks queue instead of crowding the machine, and the 19 MiB each
/// Argon2id computation takes is at most that many times 19 MiB. (On
/// tokio's blocking pool, each of up to 512 threads kept its own allocator
/// arena holding its last 19 MiB: a soak saw the gateway at 960 MB.)
async fn on_hashing_threads<T: Send + 'static>(
    slot: Slot,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    let pool = POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads())
            .thread_name(|i| format!("argon2-{i}"))
            .panic_handler(|_| tracing::error!("a PIN hashing job panicked"))
            .build()
            .map_err(|e| tracing::error!(error = %e, "cannot start the PIN hashing threads"))
            .ok()
    });
    let pool = pool
        .as_ref()
        .ok_or_else(|| Error::internal("no PIN hashing threads"))?;
    let (done, result) = tokio::sync::oneshot::channel();
    pool.spawn(move || {
        let _slot = slot;
        // Whoever asked has gone (a client or request timeout): no answer
        // is wanted, so spend no core on one.
        if !done.is_closed() {
            let _ = done.send(work());
        }
    });
    result
        .await
        .map_err(|_| Error::internal("a PIN hashing job was dropped"))
}

pub async fn hash(pin: Pin) -> Result<String, Error> {
    on_hashing_threads(Slot::take()?, move || pin_hash::hash_pin(&pin)).await
}

async fn verify(slot: Slot, pin: Pin, stored_phc: String) -> Result<bool, Error> {
    on_hashing_threads(slot, move || pin_hash::verify_pin(&pin, &stored_phc)).await
}

/// Spends a verification's time on a PIN for an unknown phone, so timing
/// does not reveal which numbers are registered.
pub async fn burn(pin: Pin) -> Result<(), Error> {
    on_hashing_threads(Slot::take()?, move || {
        pin_hash::burn_verification_time(&pin)
    })
    .await
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

/// Lock notices texted to one account per [`LOCK_NOTICE_WINDOW_S`].
const LOCK_NOTICES: u32 = 3;
const LOCK_NOTICE_WINDOW_S: i64 = 86_400;
/// The rate-limit bucket of an account's lock notices, before its user id
/// (housekeeping keeps such buckets a day).
const LOCK_NOTICE_BUCKET: &str = "lock_notice:";

/// Counts an attempt, checks `pin`, and clears the count when it is right.
/// The attempt that locks the account texts its owner (at most
/// [`LOCK_NOTICES`] times a day, besides a lock until someone acts). No pooled connection
/// is held while Argon2id runs: a burst of PIN checks waits for the hashing
/// threads, not for the connections every other request needs.
pub async fn check(pool: &PgPool, user_id: Uuid, pin: Pin) -> Result<PinCheck, Error> {
    let slot = Slot::take()?;
    let (locks, stored) = match lockout::begin_attempt(&mut *pool.acquire().await?, user_id).await?
    {
        Attempt::Locked(lock) => return Ok(PinCheck::Locked(lock)),
        Attempt::Proceed { locks, pin_hash } => (locks, pin_hash),
    };
    if verify(slot, pin, stored).await? {
        lockout::forgive(&mut *pool.acquire().await?, user_id).await?;
        return Ok(PinCheck::Correct);
    }
    let Some((lock, owner)) = locks else {
        return Ok(PinCheck::Wrong { lock: None });
    };
    let minutes = match lock {
        Lock::For { seconds } => Some((seconds + 59) / 60),
        Lock::UntilUnlocked => None,
    };
    // Anyone who knows a phone number can lock its account, and each notice
    // is an SMS at the operator's cost: a few a day per account at most,
    // but always the one saying it stays locked until someone acts.
    let bucket = format!("{LOCK_NOTICE_BUCKET}{user_id}");
    let window = LOCK_NOTICE_WINDOW_S;
    let admitted = rate_limit::admit(pool, &bucket, LOCK_NOTICES, window).await?;
    if lock == Lock::UntilUnlocked || admitted == Admission::Allowed {
        let message = Sms(owner.lang).account_locked(minutes);
        outbox::queue(&mut *pool.acquire().await?, &owner.phone, &message, None).await?;
    }
    Ok(PinCheck::Wrong { lock: Some(lock) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn more_computations_than_the_queue_holds_are_turned_away_not_queued() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let most = MOST_QUEUED_PER_CORE * cores;
        let slow = || std::thread::sleep(std::time::Duration::from_millis(20));
        let answers = futures::future::join_all(
            (0..most + 20).map(|_| async { on_hashing_threads(Slot::take()?, slow).await }),
        )
        .await;
        let turned_away = answers
            .iter()
            .filter(|answer| matches!(answer, Err(Error::RateLimited { retry_after_s: 1 })))
            .count();
        let done = answers.iter().filter(|answer| answer.is_ok()).count();
        assert_eq!(turned_away, 20, "the ones past the queue are told to retry");
        assert_eq!(done, most, "every queued one is computed");
        // The queue empties again: the next one runs.
        assert!(on_hashing_threads(Slot::take().unwrap(), slow)
            .await
            .is_ok());
    }
}
