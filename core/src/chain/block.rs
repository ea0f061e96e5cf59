//! Block headers, their hash and the sealing authority's signature.
//!
//! `header = "chainpay-block-v1|<index>|<previous_hash>|<merkle_root>|<timestamp>|<tx_count>|<sealer>"`
//! with hashes in lower-case hex and the timestamp in RFC 3339 UTC with
//! microseconds; `block_hash = SHA3-256(header)`; `signature` is the
//! sealer's Ed25519 signature of the 32 raw bytes of `block_hash`.
//! Block 0 (genesis) has 64 zeros as `previous_hash` and no transactions.

use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer, Verifier};
use sha3::{Digest, Sha3_256};

/// `previous_hash` of the genesis block.
pub const GENESIS_PREVIOUS_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// The fields a block's hash covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockHeader {
    pub index: i64,
    pub previous_hash: String,
    pub merkle_root: String,
    pub timestamp: DateTime<Utc>,
    pub tx_count: i32,
    pub sealer: String,
}

impl BlockHeader {
    pub fn canonical(&self) -> String {
        format!(
            "chainpay-block-v1|{}|{}|{}|{}|{}|{}",
            self.index,
            self.previous_hash,
            self.merkle_root,
            self.timestamp.to_rfc3339_opts(SecondsFormat::Micros, true),
            self.tx_count,
            self.sealer
        )
    }

    /// SHA3-256 of the canonical header.
    pub fn hash(&self) -> [u8; 32] {
        Sha3_256::digest(self.canonical().as_bytes()).into()
    }
}

/// A sealing authority's Ed25519 key. `Debug` never shows it.
pub struct AuthorityKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for AuthorityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthorityKey(..)")
    }
}

impl AuthorityKey {
    pub fn generate() -> Self {
        Self(ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng))
    }

    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(bytes))
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public key, lower-case hex.
    pub fn public_hex(&self) -> String {
        hex::encode(self.0.verifying_key().to_bytes())
    }

    /// Signature of `block_hash` (raw bytes), hex.
    pub fn sign(&self, block_hash: &[u8; 32]) -> String {
        hex::encode(self.0.sign(block_hash).to_bytes())
    }
}

/// A sealer's decoded public key.
pub type PublicKey = ed25519_dalek::VerifyingKey;

/// Checks a hex signature of `block_hash` against a hex public key.
pub fn verify_signature(public_key_hex: &str, block_hash: &[u8; 32], signature_hex: &str) -> bool {
    verifying_key(public_key_hex).is_some_and(|key| verify_with(&key, block_hash, signature_hex))
}

/// A hex public key decoded once, for checking many blocks (decoding is a
/// point decompression, a third of a verification's cost). `None` if it is
/// not a valid Ed25519 key.
pub fn verifying_key(public_key_hex: &str) -> Option<PublicKey> {
    hex::decode(public_key_hex)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .and_then(|bytes| ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok())
}

/// Checks a hex signature of `block_hash` under a decoded key.
pub fn verify_with(key: &PublicKey, block_hash: &[u8; 32], signature_hex: &str) -> bool {
    let mut bytes = [0u8; 64];
    hex::decode_to_slice(signature_hex, &mut bytes).is_ok()
        && key
            .verify(block_hash, &Signature::from_bytes(&bytes))
            .is_ok()
}

/// A block hash and its hex signature, with the key that should have made it.
pub type Signed<'a> = (PublicKey, [u8; 32], &'a str);

/// Checks many signatures at once, true only if every one verifies. Batch
/// verification costs about half as much per signature; when it fails,
/// [`verify_with`] one by one finds which.
pub fn verify_all(signed: &[Signed<'_>]) -> bool {
    let mut signatures = Vec::with_capacity(signed.len());
    for (_, _, hex) in signed {
        let mut bytes = [0u8; 64];
        if hex::decode_to_slice(hex, &mut bytes).is_err() {
            return false;
        }
        signatures.push(Signature::from_bytes(&bytes));
    }
    let messages: Vec<&[u8]> = signed.iter().map(|(_, hash, _)| hash.as_slice()).collect();
    let keys: Vec<PublicKey> = signed.iter().map(|(key, _, _)| *key).collect();
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_verifies_only_when_every_signature_does() {
        let (first, second) = (AuthorityKey::generate(), AuthorityKey::generate());
        let hashes: Vec<[u8; 32]> = (0..5)
            .map(|index| BlockHeader { index, ..header() }.hash())
            .collect();
        let signatures: Vec<String> = hashes
            .iter()
            .enumerate()
            .map(|(at, hash)| if at % 2 == 0 { &first } else { &second }.sign(hash))
            .collect();
        let key = |hex: String| verifying_key(&hex).unwrap();
        let (first_key, second_key) = (key(first.public_hex()), key(second.public_hex()));
        let signed = |swap: Option<usize>| -> bool {
            let batch: Vec<Signed<'_>> = (0..5)
                .map(|at| {
                    let own = if at % 2 == 0 { first_key } else { second_key };
                    let signature = match swap {
                        Some(bad) if bad == at => signatures[(at + 1) % 5].as_str(),
                        _ => signatures[at].as_str(),
                    };
                    (own, hashes[at], signature)
                })
                .collect();
            verify_all(&batch)
        };
        assert!(signed(None));
        for bad in 0..5 {
            assert!(!signed(Some(bad)), "signature {bad} swapped");
        }
        assert!(!verify_all(&[(first_key, hashes[0], "not hex")]));
        assert!(verify_all(&[]));
    }

    fn header() -> BlockHeader {
        BlockHeader {
            index: 3,
            previous_hash: "ab".repeat(32),
            merkle_root: "cd".repeat(32),
            timestamp: DateTime::from_timestamp_micros(1_700_000_000_000_007).unwrap(),
            tx_count: 50,
            sealer: "node-1".into(),
        }
    }

    #[test]
    fn the_header_names_every_field_in_a_fixed_order() {
        assert_eq!(
            header().canonical(),
            format!(
                "chainpay-block-v1|3|{}|{}|2023-11-14T22:13:20.000007Z|50|node-1",
                "ab".repeat(32),
                "cd".repeat(32)
            )
        );
    }

    #[test]
    fn a_signature_verifies_for_its_block_and_key_only() {
        let key = AuthorityKey::generate();
        let hash = header().hash();
        let signature = key.sign(&hash);
        assert!(verify_signature(&key.public_hex(), &hash, &signature));
        let mut other = header();
        other.tx_count = 49;
        assert!(!verify_signature(
            &key.public_hex(),
            &other.hash(),
            &signature
        ));
        assert!(!verify_signature(
            &AuthorityKey::generate().public_hex(),
            &hash,
            &signature
        ));
        assert!(!verify_signature(&key.public_hex(), &hash, "00"));
        let restored = AuthorityKey::from_bytes(&key.to_bytes());
        assert_eq!(restored.public_hex(), key.public_hex());
    }
}
