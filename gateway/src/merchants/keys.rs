//! Merchant API keys: created by the business's owner, shown once
//! (`cpk_<prefix>_<secret>`), kept only as a SHA3-256 digest, scoped, with
//! their last use recorded, and revoked at once on every instance (each
//! request looks the key up; nothing is cached).

use chainpay_core::crypto::random_bytes;
use chainpay_core::notify::Sms;
use chainpay_core::Lang;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha3::{Digest, Sha3_256};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{owned_active, owned_by};
use crate::audit::{AuditEvent, Outcome};
use crate::error::{Error, Missing};
use crate::sms::outbox;
use crate::state::AppState;

/// What a key may be granted.
pub const SCOPES: &[&str] = &["payments:read", "refunds:write", "payment-requests:write"];
/// Keys one business may hold at once.
const MAX_LIVE_KEYS: i64 = 20;

/// A key as it is created: the only time `key` is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewKey {
    pub key_id: Uuid,
    /// `Authorization: Bearer <key>`. Shown once; store it safely.
    pub key: String,
    pub prefix: String,
    pub name: String,
    pub scopes: Vec<String>,
}

/// A key as its owner sees it later: by prefix, never the secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyView {
    pub key_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Who is calling the merchant API: the owner (every scope) or a key.
#[derive(Debug, Clone)]
pub struct MerchantCaller {
    pub merchant_id: Uuid,
    pub owner_id: Uuid,
    /// The key, when it is one (for the audit trail and the rate limit).
    pub key_id: Option<Uuid>,
    pub scopes: Vec<String>,
}

impl MerchantCaller {
    pub fn owner(merchant_id: Uuid, owner_id: Uuid) -> Self {
        Self {
            merchant_id,
            owner_id,
            key_id: None,
            scopes: SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Refuses (403) a caller without `scope`.
    pub fn require(&self, scope: &str) -> Result<(), Error> {
        if self.scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }

    /// How the caller is named in audit rows and refunds.
    pub fn who(&self) -> String {
        match self.key_id {
            Some(key) => format!("key:{key}"),
            None => format!("owner:{}", self.owner_id),
        }
    }
}

fn digest(key: &str) -> Vec<u8> {
    Sha3_256::digest(key.as_bytes()).to_vec()
}

/// Creates a key for the caller's business.
pub async fn create(
    state: &AppState,
    owner: Uuid,
    name: &str,
    scopes: Vec<String>,
) -> Result<NewKey, Error> {
    if scopes.is_empty() || scopes.iter().any(|s| !SCOPES.contains(&s.as_str())) {
        return Err(Error::Validation(format!(
            "scopes: one or more of {}",
            SCOPES.join(", ")
        )));
    }
    let mut tx = state.pool.begin().await?;
    let merchant = owned_active(&mut tx, owner).await?;
    super::lock_setup(&mut tx, merchant.merchant_id).await?;
    let live = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM merchant_api_keys WHERE merchant_id = $1 AND revoked_at IS NULL"#,
        merchant.merchant_id
    )
    .fetch_one(&mut *tx)
    .await?;
    if live >= MAX_LIVE_KEYS {
        return Err(Error::Conflict(format!(
            "a business holds at most {MAX_LIVE_KEYS} live keys; revoke one first"
        )));
    }
    super::count_creation(&mut tx, merchant.merchant_id).await?;
    let prefix = hex::encode(random_bytes::<6>());
    let key = format!("cpk_{prefix}_{}", hex::encode(random_bytes::<32>()));
    let key_id = Uuid::new_v4();
    sqlx::query!(
        "INSERT INTO merchant_api_keys (id, merchant_id, name, prefix, key_digest, scopes, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        key_id,
        merchant.merchant_id,
        name,
        prefix,
        digest(&key),
        &scopes,
        owner
    )
    .execute(&mut *tx)
    .await?;
    AuditEvent::new("merchant.api_key.create", Outcome::Success)
        .actor(owner)
        .subject(key_id)
        .detail(json!({"merchant": merchant.merchant_id, "prefix": prefix, "scopes": scopes}))
        .record(&mut tx)
        .await?;
    let language = sqlx::query_scalar!("SELECT language FROM users WHERE id = $1", owner)
        .fetch_one(&mut *tx)
        .await?;
    let text = Sms(Lang::parse(&language)).api_key_created(&merchant.name, &prefix, &scopes);
    outbox::queue(&mut tx, &merchant.owner_phone, &text, None).await?;
    tx.commit().await?;
    Ok(NewKey {
        key_id,
        key,
        prefix,
        name: name.to_owned(),
        scopes,
    })
}

/// Revokes one of the caller's keys; it stops working at once.
pub async fn revoke(state: &AppState, owner: Uuid, key_id: Uuid) -> Result<(), Error> {
    let mut tx = state.pool.begin().await?;
    let merchant = owned_by(&mut tx, owner).await?.ok_or(Error::Forbidden)?;
    sqlx::query_scalar!(
        "UPDATE merchant_api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 AND merchant_id = $2 RETURNING id",
        key_id,
        merchant.merchant_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound(Missing::ApiKey))?;
    AuditEvent::new("merchant.api_key.revoke", Outcome::Success)
        .actor(owner)
        .subject(key_id)
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The caller's keys, newest first.
pub async fn list(state: &AppState, owner: Uuid) -> Result<Vec<KeyView>, Error> {
    let mut conn = state.pool.acquire().await?;
    let merchant = owned_by(&mut conn, owner).await?.ok_or(Error::Forbidden)?;
    of_merchant(&mut conn, merchant.merchant_id).await
}

/// A business's keys, newest first, by prefix (never the secret).
pub async fn of_merchant(
    conn: &mut PgConnection,
    merchant_id: Uuid,
) -> Result<Vec<KeyView>, Error> {
    Ok(sqlx::query_as!(
        KeyView,
        "SELECT id AS key_id, name, prefix, scopes, created_at, last_used_at, revoked_at FROM merchant_api_keys
         WHERE merchant_id = $1 ORDER BY created_at DESC",
        merchant_id
    )
    .fetch_all(conn)
    .await?)
}

/// The business behind a presented key, if the key is live and the business
/// active. `Ok(None)` for anything else (a wrong, revoked or malformed key):
/// the caller answers 401 without saying which.
pub async fn authenticate(
    state: &AppState,
    presented: &str,
) -> Result<Option<MerchantCaller>, Error> {
    let Some(prefix) = presented
        .strip_prefix("cpk_")
        .and_then(|rest| rest.split_once('_'))
        .map(|(prefix, _)| prefix)
        .filter(|p| p.len() == 12 && p.bytes().all(|b| b.is_ascii_hexdigit()))
    else {
        return Ok(None);
    };
    let row = sqlx::query!(
        r#"SELECT k.id, k.key_digest, k.scopes, m.id AS merchant_id, m.owner_user_id
           FROM merchant_api_keys k JOIN merchants m ON m.id = k.merchant_id JOIN users u ON u.id = m.owner_user_id
           WHERE k.prefix = $1 AND k.revoked_at IS NULL AND m.status = 'ACTIVE' AND NOT u.suspended
             AND u.sanctions_match_id IS NULL"#,
        prefix
    )
    .fetch_optional(&state.pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    if !crate::secrets::same_bytes(&digest(presented), &row.key_digest) {
        return Ok(None);
    }
    // The last use is kept to the minute: one write per key per minute.
    sqlx::query!(
        "UPDATE merchant_api_keys SET last_used_at = now() WHERE id = $1
           AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        row.id
    )
    .execute(&state.pool)
    .await?;
    Ok(Some(MerchantCaller {
        merchant_id: row.merchant_id,
        owner_id: row.owner_user_id,
        key_id: Some(row.id),
        scopes: row.scopes,
    }))
}
