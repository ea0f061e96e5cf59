//! PINs are stored only as Argon2id hashes (PHC strings).
//!
//! Parameters follow OWASP's 2023 Argon2id recommendation (19 MiB, 2 passes,
//! 1 lane). They are spelled out so an upgrade of the `argon2` crate cannot
//! silently change them. Hashing takes tens of milliseconds on purpose: the
//! gateway calls these functions on a blocking thread, never on the async
//! runtime.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::pin::Pin;

const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

fn hasher() -> Argon2<'static> {
    // The constants above are valid Argon2 parameters; this cannot fail.
    #[allow(clippy::unwrap_used)]
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None).unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a PIN with a fresh random salt.
pub fn hash_pin(pin: &Pin) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    // Hashing with valid parameters and a generated salt does not fail.
    #[allow(clippy::unwrap_used)]
    hasher()
        .hash_password(pin.expose().as_bytes(), &salt)
        .unwrap()
        .to_string()
}

/// True when `pin` matches the stored PHC string. A malformed stored hash
/// counts as a mismatch rather than an error: it can never authenticate.
pub fn verify_pin(pin: &Pin, stored_phc: &str) -> bool {
    match PasswordHash::new(stored_phc) {
        Ok(parsed) => hasher()
            .verify_password(pin.expose().as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the same time as a real verification. Called when a login names a
/// phone that has no account, so response time does not reveal which phones
/// are registered.
pub fn burn_verification_time(pin: &Pin) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        #[allow(clippy::unwrap_used)]
        hash_pin(&Pin::parse("0000").unwrap())
    });
    let _ = verify_pin(pin, dummy);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(raw: &str) -> Pin {
        Pin::parse(raw).unwrap()
    }

    #[test]
    fn the_right_pin_verifies_and_a_wrong_one_does_not() {
        let stored = hash_pin(&pin("5831"));
        assert!(verify_pin(&pin("5831"), &stored));
        assert!(!verify_pin(&pin("5832"), &stored));
    }

    #[test]
    fn hashes_are_argon2id_with_the_documented_parameters_and_a_unique_salt() {
        let first = hash_pin(&pin("5831"));
        assert!(
            first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{first}"
        );
        assert_ne!(first, hash_pin(&pin("5831")));
        assert!(!first.contains("5831"));
    }

    #[test]
    fn a_corrupt_stored_hash_never_verifies() {
        assert!(!verify_pin(&pin("5831"), "not-a-phc-string"));
    }
}
