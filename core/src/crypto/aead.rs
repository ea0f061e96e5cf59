//! AES-256-GCM encryption of secrets at rest (server keys, sensitive fields).
//!
//! Sealed form: `nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`. A fresh
//! random 96-bit nonce per message; the associated data binds a ciphertext to
//! the place it belongs (e.g. the secret's name), so a ciphertext copied into
//! another row fails to open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use super::random_bytes;

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AeadError {
    #[error("master key must be 32 bytes (64 hex characters)")]
    BadKey,
    #[error("ciphertext is corrupt or was sealed under another key or context")]
    Open,
}

/// The 256-bit key that protects secrets at rest. `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub fn from_hex(hex_key: &str) -> Result<Self, AeadError> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| AeadError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| AeadError::BadKey)?;
        Ok(Self(key))
    }

    pub fn generate() -> Self {
        Self(random_bytes::<32>())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.0.into())
    }

    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let nonce = random_bytes::<NONCE_LEN>();
        // Encryption with a valid key and nonce only fails for inputs larger
        // than GCM's 64 GiB limit, which secrets never approach.
        #[allow(clippy::unwrap_used)]
        let ciphertext = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .unwrap();
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, AeadError> {
        if sealed.len() < NONCE_LEN {
            return Err(AeadError::Open);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| AeadError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_with_the_same_key_and_context() {
        let key = MasterKey::generate();
        let sealed = key.seal(b"jwt-secret", b"server_secret:jwt");
        assert_ne!(&sealed[NONCE_LEN..], b"jwt-secret");
        assert_eq!(
            key.open(&sealed, b"server_secret:jwt").unwrap(),
            b"jwt-secret"
        );
    }

    #[test]
    fn a_wrong_key_a_wrong_context_or_a_flipped_bit_fails_to_open() {
        let key = MasterKey::generate();
        let mut sealed = key.seal(b"secret", b"a");
        assert_eq!(
            MasterKey::generate().open(&sealed, b"a"),
            Err(AeadError::Open)
        );
        assert_eq!(key.open(&sealed, b"b"), Err(AeadError::Open));
        sealed[NONCE_LEN] ^= 1;
        assert_eq!(key.open(&sealed, b"a"), Err(AeadError::Open));
        assert_eq!(key.open(&[1, 2], b"a"), Err(AeadError::Open));
    }

    #[test]
    fn master_keys_parse_from_64_hex_characters_only() {
        let key = MasterKey::generate();
        assert!(MasterKey::from_hex(&key.to_hex()).is_ok());
        assert_eq!(MasterKey::from_hex("abcd").unwrap_err(), AeadError::BadKey);
        assert_eq!(
            MasterKey::from_hex(&"zz".repeat(32)).unwrap_err(),
            AeadError::BadKey
        );
    }
}
