//! The wrong-PIN lockout, kept on the user's row in PostgreSQL, escalating:
//! five wrong PINs lock the account for five minutes, the next five for an
//! hour, and the five after that until an admin unlocks it or the PIN is
//! reset. A correct PIN clears the count and the escalation.
//!
//! Wrong PINs are also counted by the day ([`DAILY_LIMIT`]), and a correct
//! PIN does not clear that count: someone guessing four at a time between
//! the owner's own logins, never five in a row, still locks the account on
//! the tenth wrong PIN of the day, and each wrong PIN after it locks it
//! again, a step further up the escalation, which the owner's logins no
//! longer reset: a few more guesses and it stays locked. An admin's unlock
//! lifts the lock but keeps the day's count ([`lift`]); only a new PIN
//! clears it ([`clear`]).
//!
//! An attempt is counted *before* its PIN is checked and forgiven only when
//! the PIN is right. So a burst of parallel guesses cannot slip more than
//! [`THRESHOLD`] attempts past the counter, and the lock survives restarts
//! and is shared by every gateway instance. At about ten guesses a day after
//! the second lock, and none after the third, guessing a PIN is hopeless.

use chainpay_core::Lang;
use sqlx::PgConnection;
use uuid::Uuid;

/// Wrong PINs in a row that lock an account.
pub const THRESHOLD: i32 = 5;
/// How long the first and the second lock last; the third lasts until an
/// admin unlocks the account or the PIN is reset.
pub const LOCK_MINUTES: [i32; 2] = [5, 60];
/// Wrong PINs in one day, in a row or not, that lock an account.
pub const DAILY_LIMIT: i32 = 2 * THRESHOLD;
/// The window [`DAILY_LIMIT`] counts in, from its first wrong PIN.
const DAILY_WINDOW_HOURS: i32 = 24;

/// A lock on an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    For { seconds: i64 },
    UntilUnlocked,
}

impl Lock {
    fn read(seconds_left: Option<i64>) -> Self {
        match seconds_left {
            Some(seconds) => Lock::For {
                seconds: seconds.max(1),
            },
            None => Lock::UntilUnlocked,
        }
    }
}

/// The account's owner, told by SMS when their account locks.
#[derive(Debug, Clone)]
pub struct Owner {
    pub phone: String,
    pub lang: Lang,
}

/// Not `Debug`: it carries the PIN hash.
pub enum Attempt {
    /// Go ahead and check the PIN; `locks` is the lock this attempt set in
    /// case the PIN is wrong (lifted again if it is right).
    Proceed {
        locks: Option<(Lock, Owner)>,
        /// The stored PIN hash to check the attempt against, read with the count.
        pin_hash: String,
    },
    Locked(Lock),
}

/// Counts one PIN attempt for `user_id`, starting a fresh count when an old
/// lock has expired. The attempt that reaches the threshold sets the next
/// lock of the escalation immediately; a correct PIN lifts it in [`forgive`].
pub async fn begin_attempt(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<Attempt> {
    let counted = sqlx::query!(
        r#"
        WITH current AS (
            SELECT id,
                   CASE WHEN locked_until IS NOT NULL AND locked_until <= now() THEN 0
                        ELSE failed_pin_attempts END + 1 AS attempts,
                   wrong_pins_since IS NULL
                       OR wrong_pins_since <= now() - make_interval(hours => $6) AS new_day,
                   wrong_pins_recent
            FROM users WHERE id = $1 FOR NO KEY UPDATE
        ), counted AS (
            SELECT id, attempts, new_day,
                   CASE WHEN new_day THEN 1 ELSE wrong_pins_recent + 1 END AS today
            FROM current
        )
        UPDATE users u
        SET failed_pin_attempts = c.attempts,
            wrong_pins_recent = c.today,
            wrong_pins_since = CASE WHEN c.new_day THEN now() ELSE u.wrong_pins_since END,
            lockout_level = CASE WHEN c.attempts >= $2 OR c.today >= $5 THEN u.lockout_level + 1
                                 ELSE u.lockout_level END,
            locked_until = CASE WHEN c.attempts < $2 AND c.today < $5 THEN NULL
                                WHEN u.lockout_level = 0 THEN now() + make_interval(mins => $3)
                                WHEN u.lockout_level = 1 THEN now() + make_interval(mins => $4)
                                ELSE 'infinity' END
        FROM counted c
        WHERE u.id = c.id AND (u.locked_until IS NULL OR u.locked_until <= now())
        RETURNING u.locked_until IS NOT NULL AS "locks!", u.phone, u.language, u.pin_hash,
                  CASE WHEN u.locked_until = 'infinity' THEN NULL
                       ELSE ceil(extract(epoch FROM u.locked_until - now()))::bigint END AS seconds_left
        "#,
        user_id,
        THRESHOLD,
        LOCK_MINUTES[0],
        LOCK_MINUTES[1],
        DAILY_LIMIT,
        DAILY_WINDOW_HOURS,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = counted {
        let owner = Owner {
            phone: row.phone,
            lang: Lang::parse(&row.language),
        };
        let locks = row.locks.then(|| (Lock::read(row.seconds_left), owner));
        return Ok(Attempt::Proceed {
            locks,
            pin_hash: row.pin_hash,
        });
    }
    let seconds_left = sqlx::query_scalar!(
        r#"SELECT CASE WHEN locked_until = 'infinity' THEN NULL
                       ELSE ceil(extract(epoch FROM locked_until - now()))::bigint END
           FROM users WHERE id = $1"#,
        user_id
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(Attempt::Locked(Lock::read(seconds_left)))
}

/// A correct PIN clears the count and any lock the attempt set; of the
/// day's count it takes back only its own attempt. It resets the escalation
/// too, unless the day's wrong PINs had reached [`DAILY_LIMIT`] already:
/// then it leaves the escalation where it was before this attempt (which
/// raised it), so guesses spread between the owner's logins keep climbing.
pub async fn forgive(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET failed_pin_attempts = 0, locked_until = NULL,
                          lockout_level = CASE WHEN wrong_pins_recent - 1 >= $2
                                               THEN greatest(lockout_level - 1, 0) ELSE 0 END,
                          wrong_pins_recent = greatest(wrong_pins_recent - 1, 0)
         WHERE id = $1",
        user_id,
        DAILY_LIMIT
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Lifts the lock and the escalation, keeping the day's count of wrong
/// PINs (a guesser who made it reach the limit gets no fresh ten): an
/// admin's unlock, the host's `chainpay unlock`. `false` when no account
/// has `user_id`.
pub async fn lift(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<bool> {
    let lifted = sqlx::query!(
        "UPDATE users SET failed_pin_attempts = 0, locked_until = NULL, lockout_level = 0 WHERE id = $1",
        user_id
    )
    .execute(conn)
    .await?;
    Ok(lifted.rows_affected() == 1)
}

/// Forgets every wrong PIN counted, the day's too, and lifts any lock: the
/// PIN they were guessing is no longer the PIN (a changed or reset PIN).
pub async fn clear(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET failed_pin_attempts = 0, locked_until = NULL, lockout_level = 0,
                          wrong_pins_recent = 0, wrong_pins_since = NULL
         WHERE id = $1",
        user_id
    )
    .execute(conn)
    .await?;
    Ok(())
}
