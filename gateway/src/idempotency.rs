//! `Idempotency-Key` handling for requests that move money.
//!
//! The outcome of a keyed request (success or a business refusal) is saved in
//! the same database transaction as its effects. A retry with the same key and
//! body gets the saved response back and moves nothing; the same key with a
//! different body is a conflict. Two copies racing each other serialise on the
//! key's unique index: the second waits for the first to commit, then replays.

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::http::error::ApiError;

pub const HEADER: &str = "idempotency-key";
const MAX_KEY_LEN: usize = 255;

/// A client-chosen key, scoped to the user who sent it.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub user_id: Uuid,
    pub key: String,
    pub request_hash: String,
}

/// What an earlier request with the same key left behind.
#[derive(Debug)]
pub enum Prior {
    Fresh,
    Replay { status: StatusCode, body: Value },
}

impl IdempotencyKey {
    /// Reads the header, if any. `fingerprint` identifies the request
    /// (route and canonical body) so a reused key with another body is caught.
    pub fn from_headers(
        headers: &HeaderMap,
        user_id: Uuid,
        fingerprint: &str,
    ) -> Result<Option<Self>, ApiError> {
        let Some(raw) = headers.get(HEADER) else {
            return Ok(None);
        };
        let key = raw
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN)
            .ok_or_else(|| {
                ApiError::Validation(format!(
                    "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
                ))
            })?;
        Ok(Some(Self {
            user_id,
            key: key.to_owned(),
            request_hash: chainpay_core::crypto::sha3_256_hex(fingerprint.as_bytes()),
        }))
    }

    /// Looks for a finished request with this key.
    pub async fn prior(&self, pool: &PgPool) -> Result<Prior, ApiError> {
        let saved = sqlx::query!(
            "SELECT request_hash, response_status, response_body FROM idempotency_keys WHERE user_id = $1 AND key = $2",
            self.user_id,
            self.key
        )
        .fetch_optional(pool)
        .await?;
        match saved {
            None => Ok(Prior::Fresh),
            Some(row) if row.request_hash != self.request_hash => {
                Err(ApiError::IdempotencyConflict)
            }
            Some(row) => Ok(Prior::Replay {
                status: StatusCode::from_u16(row.response_status as u16).unwrap_or(StatusCode::OK),
                body: row.response_body,
            }),
        }
    }

    /// Saves the outcome inside the caller's transaction. `false` means
    /// another request with this key committed first: roll back and replay.
    pub async fn save(
        &self,
        conn: &mut PgConnection,
        status: StatusCode,
        body: &Value,
    ) -> sqlx::Result<bool> {
        let inserted = sqlx::query!(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, response_status, response_body)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            self.user_id,
            self.key,
            self.request_hash,
            status.as_u16() as i16,
            body
        )
        .execute(conn)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }
}
