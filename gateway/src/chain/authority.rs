//! Sealing authorities: each gateway instance seals with its own Ed25519
//! key, generated on its first start and kept in PostgreSQL sealed with
//! AES-256-GCM under the master key.

use anyhow::Context;
use chainpay_core::chain::block::AuthorityKey;
use chainpay_core::crypto::aead::MasterKey;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;

/// This instance's identity on the chain.
#[derive(Debug)]
pub struct Sealer {
    pub name: String,
    pub key: AuthorityKey,
}

fn context(name: &str) -> Vec<u8> {
    format!("chain_authority:{name}").into_bytes()
}

/// The key of authority `name`, enrolling it on first use.
pub async fn load_or_enroll(
    pool: &PgPool,
    master: &MasterKey,
    name: &str,
) -> anyhow::Result<Sealer> {
    let fresh = AuthorityKey::generate();
    sqlx::query!(
        "INSERT INTO chain_authorities (name, public_key, sealed_key) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        name,
        fresh.public_hex(),
        master.seal(&fresh.to_bytes(), &context(name))
    )
    .execute(pool)
    .await
    .context("enrolling the chain authority (CHAINPAY_NODE_NAME must be 1 to 64 of A-Z a-z 0-9 . _ -)")?;
    let row = sqlx::query!(
        "SELECT public_key, sealed_key FROM chain_authorities WHERE name = $1",
        name
    )
    .fetch_one(pool)
    .await?;
    let bytes: [u8; 32] = master
        .open(&row.sealed_key, &context(name))
        .context("the chain authority key does not open with this master key")?
        .try_into()
        .map_err(|_| anyhow::anyhow!("the chain authority key of {name} has the wrong length"))?;
    let key = AuthorityKey::from_bytes(&bytes);
    anyhow::ensure!(
        key.public_hex() == row.public_key,
        "the stored public key of {name} does not match its private key"
    );
    Ok(Sealer {
        name: name.to_owned(),
        key,
    })
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Authority {
    pub name: String,
    /// Ed25519 public key, hex.
    pub public_key: String,
}

/// Every authority whose signatures the chain accepts.
pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<Authority>> {
    sqlx::query_as!(
        Authority,
        "SELECT name, public_key FROM chain_authorities ORDER BY created_at, name"
    )
    .fetch_all(pool)
    .await
}
