//! Sealing authorities: each gateway instance seals with its own Ed25519
//! key, generated on its first start and kept in PostgreSQL sealed with
//! AES-256-GCM under the master key.

use std::collections::HashMap;

use anyhow::Context;
use chainpay_core::chain::block::{verifying_key, AuthorityKey, PublicKey};
use chainpay_core::crypto::aead::MasterKey;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgExecutor, PgPool};
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
    Ok(Sealer {
        name: name.to_owned(),
        key: open(master, name, &row.public_key, &row.sealed_key)?,
    })
}

/// The private key sealed in authority `name`'s row, when it opens under
/// the master key and is the half of the public key listed beside it.
fn open(
    master: &MasterKey,
    name: &str,
    public_key: &str,
    sealed: &[u8],
) -> anyhow::Result<AuthorityKey> {
    let bytes: [u8; 32] = master
        .open(sealed, &context(name))
        .context("the chain authority key does not open with this master key")?
        .try_into()
        .map_err(|_| anyhow::anyhow!("the chain authority key of {name} has the wrong length"))?;
    let key = AuthorityKey::from_bytes(&bytes);
    anyhow::ensure!(
        key.public_hex() == public_key,
        "the stored public key of {name} does not match its private key"
    );
    Ok(key)
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Authority {
    pub name: String,
    /// Ed25519 public key, hex.
    pub public_key: String,
}

/// Every enrolled authority, oldest first, and whether the chain may trust
/// it: only a row whose private key opens under this installation's master
/// key (sealed for that name) and gives the listed public key. A row
/// written by anyone without the master key, to re-sign a rewritten chain
/// under a key of their own, is not trusted.
async fn enrolled(
    db: impl PgExecutor<'_>,
    master: &MasterKey,
) -> sqlx::Result<Vec<(Authority, bool)>> {
    let rows = sqlx::query!(
        "SELECT name, public_key, sealed_key FROM chain_authorities ORDER BY created_at, name"
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let trusted = open(master, &row.name, &row.public_key, &row.sealed_key).is_ok();
            let authority = Authority {
                name: row.name,
                public_key: row.public_key,
            };
            (authority, trusted)
        })
        .collect())
}

/// Every authority whose signatures the chain accepts.
pub async fn list(pool: &PgPool, master: &MasterKey) -> sqlx::Result<Vec<Authority>> {
    Ok(enrolled(pool, master)
        .await?
        .into_iter()
        .filter_map(|(authority, trusted)| trusted.then_some(authority))
        .collect())
}

/// Each enrolled authority's decoded public key; `None` where it is not
/// trusted.
pub async fn trusted(
    conn: &mut PgConnection,
    master: &MasterKey,
) -> sqlx::Result<HashMap<String, Option<PublicKey>>> {
    Ok(enrolled(conn, master)
        .await?
        .into_iter()
        .map(|(authority, trusted)| {
            let key = verifying_key(&authority.public_key).filter(|_| trusted);
            (authority.name, key)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_trusted_only_under_its_own_name_master_key_and_public_key() {
        let master = MasterKey::generate();
        let key = AuthorityKey::generate();
        let public = key.public_hex();
        let sealed = master.seal(&key.to_bytes(), &context("node-a"));
        assert!(open(&master, "node-a", &public, &sealed).is_ok());
        // The same sealed key listed under another name does not open.
        assert!(open(&master, "node-b", &public, &sealed).is_err());
        // Nor under another master key.
        assert!(open(&MasterKey::generate(), "node-a", &public, &sealed).is_err());
        // Nor beside another public key.
        let other = AuthorityKey::generate().public_hex();
        assert!(open(&master, "node-a", &other, &sealed).is_err());
    }
}
