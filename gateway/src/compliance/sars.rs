//! Suspicious-activity reports: opened by the rules, worked by operators.
//!
//! While a user has an open case for a rule, new findings join it rather
//! than opening another, so an analyst sees one pattern as one case; so do
//! findings without a user (attempts to register a listed name).

use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::audit::{AuditEvent, Outcome};

/// Opens a case for `user_id` under `rule`, or adds this finding to the
/// open one. Returns the case id. Runs in the caller's transaction.
pub async fn open_or_append(
    conn: &mut PgConnection,
    user_id: Option<Uuid>,
    rule: &str,
    tx_id: Option<Uuid>,
    finding: Value,
) -> sqlx::Result<i64> {
    let tx_ids: Vec<Uuid> = tx_id.into_iter().collect();
    let detail = json!({"findings": [finding]});
    let id = match user_id {
        Some(_) => sqlx::query_scalar!(
            r#"
            INSERT INTO sars (user_id, rule, tx_ids, detail) VALUES ($1, $2, $3, $4)
            ON CONFLICT (user_id, rule) WHERE status IN ('OPEN', 'UNDER_REVIEW')
            DO UPDATE SET tx_ids = sars.tx_ids || EXCLUDED.tx_ids,
                          detail = jsonb_set(sars.detail, '{findings}',
                                             coalesce(sars.detail -> 'findings', '[]') || (EXCLUDED.detail -> 'findings')),
                          updated_at = now()
            RETURNING id
            "#,
            user_id,
            rule,
            &tx_ids,
            detail
        )
        .fetch_one(&mut *conn)
        .await?,
        None => anonymous(conn, rule, &tx_ids, detail).await?,
    };
    let mut event = AuditEvent::new("compliance.sar", Outcome::Success)
        .subject(id)
        .detail(json!({"rule": rule, "tx_id": tx_id}));
    if let Some(user_id) = user_id {
        event = event.actor(user_id);
    }
    event.record(conn).await?;
    Ok(id)
}

/// Findings an anonymous case keeps in full; later ones are only counted.
const ANONYMOUS_FINDINGS_KEPT: i32 = 100;

/// A finding without a user (a sanctioned name trying to register, which
/// anyone can send): it joins the one open anonymous case of `rule`, under
/// a lock, so repeated attempts make one case, not one each, and the case
/// keeps the first [`ANONYMOUS_FINDINGS_KEPT`] findings and counts the rest.
async fn anonymous(
    conn: &mut PgConnection,
    rule: &str,
    tx_ids: &[Uuid],
    detail: Value,
) -> sqlx::Result<i64> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended('sar:anonymous:' || $1, 0))",
        rule
    )
    .execute(&mut *conn)
    .await?;
    let joined = sqlx::query_scalar!(
        r#"UPDATE sars SET updated_at = now(), tx_ids = tx_ids || $4,
                  detail = CASE WHEN jsonb_array_length(coalesce(detail -> 'findings', '[]')) < $3
                                THEN jsonb_set(detail, '{findings}', coalesce(detail -> 'findings', '[]') || ($2::jsonb -> 'findings'))
                                ELSE jsonb_set(detail, '{more_findings}', to_jsonb(coalesce((detail ->> 'more_findings')::int, 0) + 1))
                           END
           WHERE id = (SELECT id FROM sars WHERE user_id IS NULL AND rule = $1 AND status IN ('OPEN', 'UNDER_REVIEW')
                       ORDER BY id LIMIT 1)
             AND status IN ('OPEN', 'UNDER_REVIEW')
           RETURNING id"#,
        rule,
        detail,
        ANONYMOUS_FINDINGS_KEPT,
        tx_ids
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = joined {
        return Ok(id);
    }
    sqlx::query_scalar!(
        "INSERT INTO sars (user_id, rule, tx_ids, detail) VALUES (NULL, $1, $3, $2) RETURNING id",
        rule,
        detail,
        tx_ids
    )
    .fetch_one(conn)
    .await
}
