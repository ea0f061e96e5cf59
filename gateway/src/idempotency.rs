//! Idempotency keys for requests that move money.
//!
//! The outcome of a keyed request — its result, or its refusal as data — is
//! saved in the same database transaction as its effects. A retry with the
//! same key and request gets the saved outcome back and moves nothing; the
//! same key with a different request is a conflict. Two copies racing each
//! other serialise on the key's unique index: the second waits for the
//! first to commit, then replays. A request that must call another service
//! before it knows its outcome [`claim`](IdempotencyKey::claim)s the key
//! first, in the transaction that records it; a copy arriving while it is
//! in flight is refused as a conflict.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Error;

/// Longest key a client may choose.
pub const MAX_KEY_LEN: usize = 255;

/// A client-chosen key, scoped to the user who sent it.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub user_id: Uuid,
    pub key: String,
    /// SHA3-256 of the request's fingerprint (route and canonical body).
    pub request_hash: String,
}

/// A saved outcome, as stored.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Saved<T> {
    Ok(T),
    Err(Error),
}

/// What an earlier request with the same key left behind.
pub enum Prior<T> {
    /// Finished: its outcome, to replay.
    Done(Result<T, Error>),
    /// Claimed and not finished yet.
    InFlight,
}

impl IdempotencyKey {
    /// A key for `user_id`'s request identified by `fingerprint`.
    pub fn new(user_id: Uuid, key: &str, fingerprint: &str) -> Result<Self, Error> {
        let key = key.trim();
        if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Validation(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
            )));
        }
        Ok(Self {
            user_id,
            key: key.to_owned(),
            request_hash: chainpay_core::crypto::sha3_256_hex(fingerprint.as_bytes()),
        })
    }

    /// The earlier request with this key, if any.
    pub async fn prior<T: DeserializeOwned>(
        &self,
        pool: &PgPool,
    ) -> Result<Option<Prior<T>>, Error> {
        let saved = sqlx::query!(
            "SELECT request_hash, outcome FROM idempotency_keys WHERE user_id = $1 AND key = $2",
            self.user_id,
            self.key
        )
        .fetch_optional(pool)
        .await?;
        let Some(row) = saved else {
            return Ok(None);
        };
        if row.request_hash != self.request_hash {
            return Err(Error::IdempotencyConflict);
        }
        let Some(outcome) = row.outcome else {
            return Ok(Some(Prior::InFlight));
        };
        let saved: Saved<T> = serde_json::from_value(outcome)
            .map_err(|e| Error::internal(format!("unreadable idempotency record: {e}")))?;
        Ok(Some(Prior::Done(match saved {
            Saved::Ok(result) => Ok(result),
            Saved::Err(error) => Err(error),
        })))
    }

    /// Saves the outcome inside the caller's transaction. `false` means
    /// another request with this key committed first: roll back and replay.
    pub async fn save<T: Serialize>(
        &self,
        conn: &mut PgConnection,
        outcome: Result<&T, &Error>,
    ) -> Result<bool, Error> {
        let saved = stored(outcome);
        let inserted = sqlx::query!(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, outcome) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            self.user_id,
            self.key,
            self.request_hash,
            saved
        )
        .execute(conn)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Takes the key for a request whose outcome comes later, inside the
    /// caller's transaction. `false`: another request holds it already.
    pub async fn claim(&self, conn: &mut PgConnection) -> Result<bool, Error> {
        let inserted = sqlx::query!(
            "INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            self.user_id,
            self.key,
            self.request_hash
        )
        .execute(conn)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Takes every key of `keys` not taken yet, in (user, key) order so two
    /// batches never wait on each other in a cycle; returns the indexes of
    /// `keys` it took (of two equal keys, only the first can be taken).
    pub async fn claim_all(conn: &mut PgConnection, keys: &[&Self]) -> Result<Vec<usize>, Error> {
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|&a, &b| {
            (keys[a].user_id, &keys[a].key).cmp(&(keys[b].user_id, &keys[b].key))
        });
        let column = |f: fn(&Self) -> String| order.iter().map(|&i| f(keys[i])).collect::<Vec<_>>();
        let users: Vec<Uuid> = order.iter().map(|&i| keys[i].user_id).collect();
        let taken = sqlx::query!(
            r#"INSERT INTO idempotency_keys (user_id, key, request_hash)
               SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[]) AS k (user_id, key, request_hash)
               ORDER BY user_id, key
               ON CONFLICT DO NOTHING RETURNING user_id, key"#,
            &users,
            &column(|k| k.key.clone()),
            &column(|k| k.request_hash.clone()),
        )
        .fetch_all(conn)
        .await?;
        // Each taken key comes back once: the first request that named it.
        let first = |user_id: Uuid, key: &str| {
            keys.iter()
                .position(|k| k.user_id == user_id && k.key == key)
        };
        Ok(taken
            .iter()
            .filter_map(|row| first(row.user_id, &row.key))
            .collect())
    }

    /// The stored form of `outcome`, as [`save`](Self::save) writes it.
    pub fn stored<T: Serialize>(outcome: Result<&T, &Error>) -> serde_json::Value {
        stored(outcome)
    }

    /// Records the outcome of a claimed request.
    pub async fn finish<T: Serialize>(
        &self,
        conn: impl sqlx::PgExecutor<'_>,
        outcome: Result<&T, &Error>,
    ) -> Result<(), Error> {
        let saved = stored(outcome);
        sqlx::query!(
            "UPDATE idempotency_keys SET outcome = $3 WHERE user_id = $1 AND key = $2 AND outcome IS NULL",
            self.user_id,
            self.key,
            saved
        )
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// The stored form of an outcome (see [`Saved`]).
fn stored<T: Serialize>(outcome: Result<&T, &Error>) -> serde_json::Value {
    match outcome {
        Ok(result) => serde_json::json!({ "ok": result }),
        Err(error) => serde_json::json!({ "err": error }),
    }
}
