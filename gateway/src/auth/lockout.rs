//! The five-wrong-PINs lockout, kept on the user's row in PostgreSQL.
//!
//! An attempt is counted *before* its PIN is checked and forgiven only when
//! the PIN is right. So a burst of parallel guesses cannot slip more than
//! [`LOCKOUT_THRESHOLD`] attempts past the counter, and the lock survives
//! restarts and is shared by every gateway instance.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::config::{LOCKOUT_MINUTES, LOCKOUT_THRESHOLD};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Go ahead and check the PIN; `locks_if_wrong` says this is the last try.
    Proceed {
        locks_if_wrong: bool,
    },
    Locked {
        retry_after_s: i64,
    },
}

/// Counts one PIN attempt for `user_id`, starting a fresh count when an old
/// lock has expired. The attempt that reaches the threshold sets the lock
/// immediately; a correct PIN lifts it again in [`forgive`].
pub async fn begin_attempt(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<Attempt> {
    let counted = sqlx::query_scalar!(
        r#"
        WITH current AS (
            SELECT id,
                   CASE WHEN locked_until IS NOT NULL AND locked_until <= now() THEN 0
                        ELSE failed_pin_attempts END + 1 AS attempts
            FROM users WHERE id = $1 FOR NO KEY UPDATE
        )
        UPDATE users u
        SET failed_pin_attempts = c.attempts,
            locked_until = CASE WHEN c.attempts >= $2 THEN now() + make_interval(mins => $3) ELSE NULL END
        FROM current c
        WHERE u.id = c.id AND (u.locked_until IS NULL OR u.locked_until <= now())
        RETURNING u.failed_pin_attempts
        "#,
        user_id,
        LOCKOUT_THRESHOLD,
        LOCKOUT_MINUTES as i32,
    )
    .fetch_optional(&mut *conn)
    .await?;
    match counted {
        Some(attempts) => Ok(Attempt::Proceed {
            locks_if_wrong: attempts >= LOCKOUT_THRESHOLD,
        }),
        None => {
            let retry_after_s = sqlx::query_scalar!(
                r#"SELECT ceil(extract(epoch FROM locked_until - now()))::bigint AS "s!" FROM users WHERE id = $1"#,
                user_id
            )
            .fetch_one(&mut *conn)
            .await?;
            Ok(Attempt::Locked {
                retry_after_s: retry_after_s.max(1),
            })
        }
    }
}

/// A correct PIN clears the count and any lock the attempt set.
pub async fn forgive(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET failed_pin_attempts = 0, locked_until = NULL WHERE id = $1",
        user_id
    )
    .execute(conn)
    .await?;
    Ok(())
}
