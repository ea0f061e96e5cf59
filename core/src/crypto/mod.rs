//! The cryptography ChainPay relies on, each primitive in its own module with
//! its parameters written out at the call site rather than left to defaults.

pub mod aead;
pub mod pin_hash;
pub mod signing;

use rand::RngCore;
use sha3::{Digest, Sha3_256};

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// SHA3-256 of `data`, lower-case hex.
pub fn sha3_256_hex(data: &[u8]) -> String {
    hex::encode(Sha3_256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha3_256_matches_the_fips_202_empty_string_vector() {
        assert_eq!(
            sha3_256_hex(b""),
            "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
        );
    }

    #[test]
    fn random_bytes_differ_between_calls() {
        assert_ne!(random_bytes::<32>(), random_bytes::<32>());
    }
}
