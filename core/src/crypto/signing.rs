//! HMAC-SHA3-256 signatures over canonical transaction bytes.
//!
//! The server signs every transaction record with a key that only it holds,
//! so a row edited directly in the database no longer matches its signature.

use hmac::{Hmac, Mac};
use sha3::Sha3_256;

type HmacSha3 = Hmac<Sha3_256>;

/// A 256-bit HMAC key. `Debug` never shows it.
#[derive(Clone)]
pub struct SigningKey([u8; 32]);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    fn mac(&self) -> HmacSha3 {
        // HMAC accepts keys of any length.
        #[allow(clippy::unwrap_used)]
        HmacSha3::new_from_slice(&self.0).unwrap()
    }

    /// Hex signature of `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(message);
        hex::encode(mac.finalize().into_bytes())
    }

    /// Constant-time check of a hex signature.
    pub fn verify(&self, message: &[u8], signature_hex: &str) -> bool {
        let Ok(expected) = hex::decode(signature_hex) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(message);
        mac.verify_slice(&expected).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_the_same_message_and_key() {
        let key = SigningKey::from_bytes([7; 32]);
        let signature = key.sign(b"tx|1|KES|100");
        assert_eq!(signature.len(), 64);
        assert!(key.verify(b"tx|1|KES|100", &signature));
        assert!(!key.verify(b"tx|1|KES|101", &signature));
        assert!(!SigningKey::from_bytes([8; 32]).verify(b"tx|1|KES|100", &signature));
        assert!(!key.verify(b"tx|1|KES|100", "zz"));
    }
}
