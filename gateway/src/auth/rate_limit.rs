//! Sliding-window rate limiting kept in PostgreSQL, so every gateway instance
//! counts the same requests.
//!
//! Each bucket stores the times of the requests it admitted in its window
//! (never more than the limit). One statement prunes, decides and records
//! under the row's lock, so concurrent requests cannot overshoot.

use sqlx::PgExecutor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    Limited { retry_after_s: i64 },
}

/// Admits one request into `bucket` if fewer than `limit` were admitted in
/// the last `window_s` seconds; `limit == 0` disables the check. On a
/// transaction, the admission stands only if it commits.
pub async fn admit<'c>(
    executor: impl PgExecutor<'c>,
    bucket: &str,
    limit: u32,
    window_s: i64,
) -> sqlx::Result<Admission> {
    if limit == 0 {
        return Ok(Admission::Allowed);
    }
    let row = sqlx::query!(
        r#"
        INSERT INTO rate_limits AS r (bucket, hits, window_s) VALUES ($1, ARRAY[now()], $4)
        ON CONFLICT (bucket) DO UPDATE SET window_s = GREATEST(r.window_s, $4), hits =
            CASE WHEN (SELECT count(*) FROM unnest(r.hits) h WHERE h > now() - make_interval(secs => $3)) < $2
                 THEN ARRAY(SELECT h FROM unnest(r.hits) h WHERE h > now() - make_interval(secs => $3) ORDER BY h) || now()
                 ELSE ARRAY(SELECT h FROM unnest(r.hits) h WHERE h > now() - make_interval(secs => $3) ORDER BY h)
            END
        RETURNING hits[cardinality(hits)] = now() AS "admitted!",
                  ceil(extract(epoch FROM hits[1] + make_interval(secs => $3) - now()))::bigint AS "retry_after_s!"
        "#,
        bucket,
        i64::from(limit),
        window_s as f64,
        i32::try_from(window_s).unwrap_or(i32::MAX),
    )
    .fetch_one(executor)
    .await?;
    Ok(if row.admitted {
        Admission::Allowed
    } else {
        Admission::Limited {
            retry_after_s: row.retry_after_s.max(1),
        }
    })
}
