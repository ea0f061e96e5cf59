//! Linking audit rows into the hash chain, and checking the chain.
//!
//! Rows are queued in `audit_pending` by the transaction that writes them.
//! One sealer at a time (a transaction-scoped advisory lock, so any number of
//! gateway instances may try) takes the committed queue in id order, links
//! each row to the chain head and removes it from the queue. Money movements
//! therefore never wait for one another on a chain head; the chain's order is
//! the order rows became visible to the sealer.

use chainpay_core::audit::{AuditRecord, GENESIS_HASH};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;

/// Advisory lock key of the audit sealer (`hashtext('chainpay.audit_chain')`
/// would do too; a constant is easier to find in `pg_locks`).
const SEALER_LOCK: i64 = 0x4348_4149_4e41_5544;
/// Rows linked per sealing transaction, and read per verification page.
const BATCH: i64 = 1000;

/// Links every committed pending row; returns how many were linked, or
/// `None` when another instance holds the sealer lock.
pub async fn seal(pool: &PgPool) -> anyhow::Result<Option<usize>> {
    let mut total = 0;
    loop {
        let mut tx = pool.begin().await?;
        let locked = sqlx::query_scalar!(
            r#"SELECT pg_try_advisory_xact_lock($1) AS "locked!""#,
            SEALER_LOCK
        )
        .fetch_one(&mut *tx)
        .await?;
        if !locked {
            return Ok(if total == 0 { None } else { Some(total) });
        }
        let head =
            sqlx::query!("SELECT seq, entry_hash FROM audit_chain ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let (mut seq, mut prev_hash) =
            head.map_or((0, GENESIS_HASH.to_owned()), |h| (h.seq, h.entry_hash));
        let pending = sqlx::query!(
            r#"SELECT a.id, a.at, a.actor_user_id, a.action, a.outcome, a.subject, a.detail, a.request_id
               FROM audit_pending p JOIN audit_log a ON a.id = p.audit_id
               ORDER BY a.id LIMIT $1"#,
            BATCH
        )
        .fetch_all(&mut *tx)
        .await?;
        if pending.is_empty() {
            return Ok(Some(total));
        }
        let (mut seqs, mut ids, mut prevs, mut hashes) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for row in &pending {
            let record = AuditRecord {
                id: row.id,
                at: row.at,
                actor_user_id: row.actor_user_id,
                action: row.action.clone(),
                outcome: row.outcome.clone(),
                subject: row.subject.clone(),
                detail: row.detail.clone(),
                request_id: row.request_id.clone(),
            };
            let hash = record.link_hash(&prev_hash);
            seq += 1;
            seqs.push(seq);
            ids.push(row.id);
            prevs.push(std::mem::replace(&mut prev_hash, hash.clone()));
            hashes.push(hash);
        }
        sqlx::query!(
            "INSERT INTO audit_chain (seq, audit_id, prev_hash, entry_hash)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[])",
            &seqs,
            &ids,
            &prevs,
            &hashes
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!("DELETE FROM audit_pending WHERE audit_id = ANY($1)", &ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        total += pending.len();
        if (pending.len() as i64) < BATCH {
            return Ok(Some(total));
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Verification {
    pub valid: bool,
    pub entries_checked: i64,
    /// Rows committed but not linked yet (they are linked within a second).
    pub unsealed: i64,
    /// Audit id of the first entry that fails, in chain order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broken_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Verification {
    fn broken(entries_checked: i64, unsealed: i64, id: i64, reason: String) -> Self {
        Self {
            valid: false,
            entries_checked,
            unsealed,
            first_broken_id: Some(id),
            reason: Some(reason),
        }
    }
}

/// One link of the chain with the audit row it covers (absent if removed).
struct LinkRow {
    seq: i64,
    audit_id: i64,
    prev_hash: String,
    entry_hash: String,
    id: Option<i64>,
    at: Option<chrono::DateTime<chrono::Utc>>,
    actor_user_id: Option<uuid::Uuid>,
    action: Option<String>,
    outcome: Option<String>,
    subject: Option<String>,
    detail: Option<serde_json::Value>,
    request_id: Option<String>,
}

/// Links what is pending, then recomputes the whole chain page by page.
pub async fn verify(pool: &PgPool) -> anyhow::Result<Verification> {
    seal(pool).await?;
    let unsealed = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM audit_pending"#)
        .fetch_one(pool)
        .await?;
    let broken = |checked, id, reason| Ok(Verification::broken(checked, unsealed, id, reason));
    let mut checked = 0i64;
    let mut prev_hash = GENESIS_HASH.to_owned();
    loop {
        let page = sqlx::query_as!(
            LinkRow,
            r#"SELECT c.seq, c.audit_id, c.prev_hash, c.entry_hash,
                      a.id AS "id?", a.at AS "at?", a.actor_user_id, a.action AS "action?", a.outcome AS "outcome?",
                      a.subject, a.detail AS "detail?", a.request_id
               FROM audit_chain c LEFT JOIN audit_log a ON a.id = c.audit_id
               WHERE c.seq > $1 ORDER BY c.seq LIMIT $2"#,
            checked,
            BATCH
        )
        .fetch_all(pool)
        .await?;
        for row in &page {
            if let Err(reason) = check_link(row, checked + 1, &prev_hash) {
                return broken(checked, row.id.unwrap_or(row.audit_id), reason);
            }
            prev_hash = row.entry_hash.clone();
            checked += 1;
        }
        if (page.len() as i64) < BATCH {
            break;
        }
    }
    let orphan = sqlx::query_scalar!(
        r#"SELECT a.id FROM audit_log a
           WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.audit_id = a.id)
             AND NOT EXISTS (SELECT 1 FROM audit_pending p WHERE p.audit_id = a.id)
           ORDER BY a.id LIMIT 1"#
    )
    .fetch_optional(pool)
    .await?;
    if let Some(id) = orphan {
        return broken(checked, id, "the audit row is not in the chain".into());
    }
    Ok(Verification {
        valid: true,
        entries_checked: checked,
        unsealed,
        first_broken_id: None,
        reason: None,
    })
}

/// Checks one link: its position, its link to the previous entry, and its
/// hash over the audit row as stored now.
fn check_link(row: &LinkRow, expected_seq: i64, prev_hash: &str) -> Result<(), String> {
    if row.seq != expected_seq {
        return Err(format!("chain entry {expected_seq} is missing"));
    }
    if row.prev_hash != prev_hash {
        return Err("link to the previous entry is broken".into());
    }
    let (Some(id), Some(at), Some(action), Some(outcome), Some(detail)) = (
        row.id,
        row.at,
        row.action.clone(),
        row.outcome.clone(),
        row.detail.clone(),
    ) else {
        return Err("the audit row was removed".into());
    };
    let record = AuditRecord {
        id,
        at,
        actor_user_id: row.actor_user_id,
        action,
        outcome,
        subject: row.subject.clone(),
        detail,
        request_id: row.request_id.clone(),
    };
    if record.link_hash(prev_hash) != row.entry_hash {
        return Err("the audit row was altered".into());
    }
    Ok(())
}
