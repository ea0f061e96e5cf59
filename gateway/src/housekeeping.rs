//! Pruning state that has served its purpose, so working tables stay small:
//! finished USSD sessions and their PIN steps' claims, rate-limit windows
//! of idle callers, revocations of tokens that have expired anyway, expired
//! quotes and old idempotency records. Each delete is bounded per pass. Nothing here touches money,
//! the audit log or the chain.

use sqlx::PgPool;

/// Rows each delete removes at most per pass.
const BATCH: i64 = 5000;

/// One pass; returns the number of rows removed.
pub async fn prune(pool: &PgPool) -> sqlx::Result<u64> {
    let mut removed = 0;
    // A USSD session lasts at most 180 seconds; a day after it began is
    // plenty for retries. (By start, not last step: `created_at` is the
    // column no step rewrites, so steps update their row in place.)
    removed += sqlx::query!(
        "DELETE FROM ussd_sessions WHERE session_id IN
           (SELECT session_id FROM ussd_sessions WHERE created_at < now() - interval '1 day' LIMIT $1)",
        BATCH
    )
    .execute(pool)
    .await?
    .rows_affected();
    // A PIN step's claim matters while its session lives.
    removed += sqlx::query!(
        "DELETE FROM ussd_pin_steps WHERE (session_id, position) IN
           (SELECT session_id, position FROM ussd_pin_steps WHERE claimed_at < now() - interval '1 day' LIMIT $1)",
        BATCH
    )
    .execute(pool)
    .await?
    .rows_affected();
    removed += sqlx::query!(
        "DELETE FROM rate_limits WHERE bucket IN
           (SELECT bucket FROM rate_limits
            WHERE hits[cardinality(hits)] < now() - make_interval(secs => window_s)
            LIMIT $1)",
        BATCH
    )
    .execute(pool)
    .await?
    .rows_affected();
    removed += sqlx::query!(
        // Kept a minute past expiry: tokens are accepted for a few seconds
        // after it (the JWT leeway), and a logged-out one must not be then.
        "DELETE FROM revoked_tokens WHERE jti IN
           (SELECT jti FROM revoked_tokens WHERE expires_at < now() - interval '1 minute' LIMIT $1)",
        BATCH
    )
    .execute(pool)
    .await?
    .rows_affected();
    removed += sqlx::query!(
        "DELETE FROM fx_quotes WHERE quote_id IN
           (SELECT quote_id FROM fx_quotes WHERE expires_at < now() - interval '1 day' AND used_by_tx IS NULL LIMIT $1)",
        BATCH
    )
    .execute(pool)
    .await?
    .rows_affected();
    // Africa's Talking retries an inbound SMS for about ten minutes.
    removed += sqlx::query!(
        "DELETE FROM sms_inbound WHERE at_id IN
           (SELECT at_id FROM sms_inbound WHERE received_at < now() - interval '1 day' LIMIT $1)",
        BATCH
    )
    .execute(pool)
    .await?
    .rows_affected();
    // Clients retry within minutes; a week covers any sane retry policy.
    removed += sqlx::query!(
        "DELETE FROM idempotency_keys WHERE (user_id, key) IN
           (SELECT user_id, key FROM idempotency_keys WHERE created_at < now() - interval '7 days' LIMIT $1)",
        BATCH
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(removed)
}
