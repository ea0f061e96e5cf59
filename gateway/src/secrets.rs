//! Server keys: one master key from configuration, and the keys it protects.
//!
//! The JWT secret and the transaction-signing key are generated once, sealed
//! with AES-256-GCM under the master key and stored in PostgreSQL, so every
//! instance sharing the database (and the master key) uses the same keys and
//! a restart never invalidates tokens or signatures.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use chainpay_core::chain::block::AuthorityKey;
use chainpay_core::crypto::aead::MasterKey;
use chainpay_core::crypto::random_bytes;
use chainpay_core::crypto::signing::SigningKey;
use sqlx::PgPool;

use crate::config::Settings;

/// Opened with the master key at start-up to prove it is the key this
/// database was set up with, before anything is sealed under a wrong one.
const CANARY: &str = "master_key_canary";
/// The name of the key vouchers' offline form is signed with.
pub const VOUCHER_SIGNING: &str = "voucher_ed25519";

/// What a master key that does not open the canary is told.
const WRONG_MASTER_KEY: &str =
    "CHAINPAY_MASTER_KEY does not match the key this database was set up with";

/// The keys a running gateway needs.
#[derive(Clone)]
pub struct ServerKeys {
    pub master: MasterKey,
    pub jwt_secret: Vec<u8>,
    pub tx_signing: SigningKey,
    /// Signs vouchers' offline form (Ed25519; its public half is published).
    pub voucher_signing: Arc<AuthorityKey>,
    /// Keys the digest vouchers are looked up by (HMAC-SHA3-256).
    pub voucher_digest: SigningKey,
    /// Keys the digests of identity-document numbers and PIN reset codes.
    pub desk_digest: SigningKey,
}

impl ServerKeys {
    pub async fn load(settings: &Settings, pool: &PgPool) -> anyhow::Result<Self> {
        let master = configured_master_key(settings, true)?;
        get_or_create(pool, &master, CANARY)
            .await
            .context(WRONG_MASTER_KEY)?;
        let jwt_secret = match &settings.jwt_secret {
            Some(secret) if secret.len() < 32 => {
                bail!("CHAINPAY_JWT_SECRET must be at least 32 characters")
            }
            Some(secret) => secret.as_bytes().to_vec(),
            None => get_or_create(pool, &master, "jwt_hs256").await?.to_vec(),
        };
        let tx_signing = SigningKey::from_bytes(get_or_create(pool, &master, "tx_signing").await?);
        let voucher_signing = Arc::new(AuthorityKey::from_bytes(
            &get_or_create(pool, &master, VOUCHER_SIGNING).await?,
        ));
        let voucher_digest =
            SigningKey::from_bytes(get_or_create(pool, &master, "voucher_digest").await?);
        let desk_digest =
            SigningKey::from_bytes(get_or_create(pool, &master, "desk_digest").await?);
        Ok(Self {
            master,
            jwt_secret,
            tx_signing,
            voucher_signing,
            voucher_digest,
            desk_digest,
        })
    }
}

/// The master key `serve` uses, for one-shot commands: never generated
/// here, and refused unless it is the key this database was set up with
/// (nothing is written: a database `serve` has never run on is refused, so
/// a wrong key cannot become its key).
pub async fn master_key(settings: &Settings, pool: &PgPool) -> anyhow::Result<MasterKey> {
    let master = configured_master_key(settings, false)?;
    let canary = sqlx::query_scalar!("SELECT sealed FROM server_secrets WHERE name = $1", CANARY)
        .fetch_optional(pool)
        .await?
        .context("this database has no master key yet: run `chainpay serve` on it first")?;
    master
        .open(&canary, CANARY.as_bytes())
        .context(WRONG_MASTER_KEY)?;
    Ok(master)
}

/// `CHAINPAY_MASTER_KEY`, else the key in the data directory, which is
/// created (mode 0600) on first start when `generate`.
fn configured_master_key(settings: &Settings, generate: bool) -> anyhow::Result<MasterKey> {
    if let Some(hex_key) = &settings.master_key_hex {
        return MasterKey::from_hex(hex_key).context("CHAINPAY_MASTER_KEY");
    }
    let path = settings.data_dir.join("master.key");
    if let Ok(hex_key) = std::fs::read_to_string(&path) {
        return MasterKey::from_hex(&hex_key)
            .with_context(|| format!("{} is corrupt", path.display()));
    }
    if !generate {
        bail!(
            "no master key: set CHAINPAY_MASTER_KEY, or CHAINPAY_DATA_DIR to the directory holding serve's master.key"
        );
    }
    generate_master_key(&path)
}

/// Creates the master key file (mode 0600) on first start.
fn generate_master_key(path: &Path) -> anyhow::Result<MasterKey> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let key = MasterKey::generate();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(key.to_hex().as_bytes())?;
    tracing::warn!(
        path = %path.display(),
        "generated a master key; set CHAINPAY_MASTER_KEY in production so every instance shares it"
    );
    Ok(key)
}

/// The 32-byte secret called `name`, generated and stored on first use.
/// `ON CONFLICT DO NOTHING` makes concurrent first starts agree on one value.
pub async fn get_or_create(
    pool: &PgPool,
    master: &MasterKey,
    name: &str,
) -> anyhow::Result<[u8; 32]> {
    let fresh = master.seal(&random_bytes::<32>(), name.as_bytes());
    sqlx::query!(
        "INSERT INTO server_secrets (name, sealed) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        name,
        fresh
    )
    .execute(pool)
    .await?;
    existing(pool, master, name)
        .await?
        .with_context(|| format!("stored secret {name} vanished"))
}

/// A server secret `serve` created, for one-shot commands: `master` from
/// [`master_key`]; `None` when there is none yet (nothing is written).
pub async fn existing(
    pool: &PgPool,
    master: &MasterKey,
    name: &str,
) -> anyhow::Result<Option<[u8; 32]>> {
    let Some(sealed) =
        sqlx::query_scalar!("SELECT sealed FROM server_secrets WHERE name = $1", name)
            .fetch_optional(pool)
            .await?
    else {
        return Ok(None);
    };
    let secret = master.open(&sealed, name.as_bytes())?;
    secret
        .try_into()
        .map(Some)
        .map_err(|_| anyhow::anyhow!("stored secret {name} has the wrong length"))
}

/// Compares a presented secret with ours in constant time (for a given
/// length), so response timing does not leak how much of it was right.
pub fn same_secret(given: Option<&str>, expected: &str) -> bool {
    given.is_some_and(|given| same_bytes(given.as_bytes(), expected.as_bytes()))
}

/// Compares two byte strings in constant time (for a given length).
pub fn same_bytes(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_matches_only_itself() {
        assert!(same_secret(Some("s3cret"), "s3cret"));
        assert!(!same_secret(Some("s3creT"), "s3cret"));
        assert!(!same_secret(Some("s3cre"), "s3cret"));
        assert!(!same_secret(None, "s3cret"));
    }
}
