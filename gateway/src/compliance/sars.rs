//! Suspicious-activity reports: opened by the rules, worked by operators.
//!
//! While a user has an open case for a rule, new findings join it rather
//! than opening another, so an analyst sees one pattern as one case.

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
    let id = sqlx::query_scalar!(
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
    .await?;
    let mut event = AuditEvent::new("compliance.sar", Outcome::Success)
        .subject(id)
        .detail(json!({"rule": rule, "tx_id": tx_id}));
    if let Some(user_id) = user_id {
        event = event.actor(user_id);
    }
    event.record(conn).await?;
    Ok(id)
}
