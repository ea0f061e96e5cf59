//! PINs are stored only as Argon2id hashes (PHC strings).
//!
//! Parameters follow OWASP's 2023 Argon2id recommendation (19 MiB, 2 passes,
//! 1 lane). They are spelled out so an upgrade of the `argon2` crate cannot
//! silently change them. Hashing takes tens of milliseconds on purpose: the
//! gateway calls these functions on a blocking thread, never on the async
//! runtime.

use std::cell::RefCell;

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::pin::Pin;

const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

fn params() -> Params {
    // The constants above are valid Argon2 parameters; this cannot fail.
    #[allow(clippy::unwrap_used)]
    Params::new(MEMORY_KIB, ITERATIONS, LANES, None).unwrap()
}

thread_local! {
    /// Argon2id's working memory on this thread, kept from one computation
    /// to the next: allocating, zeroing and faulting in 19 MiB each time
    /// cost about a tenth of a verification. Argon2 writes every block
    /// before it reads it, so what a block held before never matters.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Argon2 of `pwd` and `salt` into `out`, in this thread's kept memory when
/// `argon` needs no more than our own parameters (a larger stored hash gets
/// memory of its own, which is not kept), and when that memory is not in
/// use already (were a computation ever to run inside another on the same
/// thread, it gets memory of its own rather than failing).
fn compute(argon: &Argon2<'_>, pwd: &[u8], salt: &[u8], out: &mut [u8]) -> argon2::Result<()> {
    let needed = argon.params().block_count();
    if needed > params().block_count() {
        return argon.hash_password_into(pwd, salt, out);
    }
    MEMORY.with(|memory| {
        let Ok(mut memory) = memory.try_borrow_mut() else {
            return argon.hash_password_into(pwd, salt, out);
        };
        if memory.len() < needed {
            memory.resize(needed, Block::default());
        }
        argon.hash_password_into_with_memory(pwd, salt, out, &mut memory[..needed])
    })
}

/// The `len`-byte Argon2 output of `pin` under `salt` (as a PHC string
/// carries it, base64), computed in this thread's kept memory.
fn output(argon: &Argon2<'_>, pin: &Pin, salt: Salt<'_>, len: usize) -> Option<Output> {
    let mut salt_bytes = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_bytes).ok()?;
    Output::init_with(len, |out| {
        compute(argon, pin.expose().as_bytes(), salt, out).map_err(Into::into)
    })
    .ok()
}

/// Hashes a PIN with a fresh random salt.
// Hashing with valid parameters and a generated salt does not fail.
#[allow(clippy::unwrap_used)]
pub fn hash_pin(pin: &Pin) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let params = params();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).unwrap(),
        salt: Some(salt.as_salt()),
        hash: Some(output(&argon, pin, salt.as_salt(), Params::DEFAULT_OUTPUT_LEN).unwrap()),
    }
    .to_string()
}

/// True when `pin` matches the stored PHC string, computed with the
/// algorithm, version and parameters the string names and compared in
/// constant time. A malformed stored hash counts as a mismatch rather than
/// an error: it can never authenticate.
pub fn verify_pin(pin: &Pin, stored_phc: &str) -> bool {
    let verified = || -> Option<bool> {
        let parsed = PasswordHash::new(stored_phc).ok()?;
        let (salt, expected) = (parsed.salt?, parsed.hash?);
        let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
        let version = match parsed.version {
            Some(version) => Version::try_from(version).ok()?,
            None => Version::default(),
        };
        let argon = Argon2::new(algorithm, version, Params::try_from(&parsed).ok()?);
        Some(output(&argon, pin, salt, expected.len())? == expected)
    };
    verified().unwrap_or(false)
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

    /// The stored hashes made before this thread kept its memory (by the
    /// crate's own hasher) still verify, and ours verify by the crate's
    /// verifier: the kept memory changes nothing of the result.
    #[test]
    fn hashes_agree_with_the_argon2_crates_own_hasher_and_verifier() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params());
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let theirs = argon.hash_password(b"5831", &salt).unwrap().to_string();
        assert!(verify_pin(&pin("5831"), &theirs));
        assert!(!verify_pin(&pin("1111"), &theirs));
        let ours = hash_pin(&pin("5831"));
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon.verify_password(b"5831", &parsed).is_ok());
        assert!(argon.verify_password(b"1111", &parsed).is_err());
    }

    /// Hashes stored with other parameters verify on a thread whose kept
    /// memory was sized for ours, smaller ones in part of it and larger ones
    /// in memory of their own.
    #[test]
    fn hashes_with_other_parameters_verify_on_the_same_thread() {
        use argon2::password_hash::PasswordHasher;
        let _ = hash_pin(&pin("0000"));
        for memory_kib in [8 * 1024, 24 * 1024] {
            let other = Params::new(memory_kib, 1, 1, None).unwrap();
            let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, other);
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            let stored = argon.hash_password(b"5831", &salt).unwrap().to_string();
            assert!(verify_pin(&pin("5831"), &stored), "{memory_kib} KiB");
            assert!(!verify_pin(&pin("5832"), &stored), "{memory_kib} KiB");
        }
        assert!(verify_pin(&pin("0000"), &hash_pin(&pin("0000"))));
    }

    /// Every stored hash the crate's own verifier accepts or refuses, ours
    /// accepts or refuses alike, whatever the kept memory held before:
    /// Argon2i and Argon2d, version 0x10, several lanes, the shortest and
    /// longest outputs, a key id and associated data, no version field.
    #[test]
    fn verification_agrees_with_the_argon2_crate_on_every_kind_of_stored_hash() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        use argon2::{AssociatedData, KeyId, ParamsBuilder};
        let _ = hash_pin(&pin("0000"));
        let kinds = [
            (Algorithm::Argon2i, Version::V0x13, 4096, 1, None),
            (Algorithm::Argon2d, Version::V0x13, 4096, 1, None),
            (Algorithm::Argon2id, Version::V0x10, 4096, 1, None),
            (Algorithm::Argon2id, Version::V0x13, 8192, 4, None),
            (Algorithm::Argon2id, Version::V0x13, 4096, 1, Some(10)),
            (Algorithm::Argon2id, Version::V0x13, 4096, 2, Some(64)),
        ];
        for (algorithm, version, memory_kib, lanes, output) in kinds {
            let params = Params::new(memory_kib, 1, lanes, output).unwrap();
            let argon = Argon2::new(algorithm, version, params);
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            let stored = argon.hash_password(b"5831", &salt).unwrap().to_string();
            let parsed = PasswordHash::new(&stored).unwrap();
            for guess in ["5831", "5830"] {
                assert_eq!(
                    verify_pin(&pin(guess), &stored),
                    argon.verify_password(guess.as_bytes(), &parsed).is_ok(),
                    "{stored} with {guess}"
                );
            }
            assert!(verify_pin(&pin("5831"), &stored), "{stored}");
        }
        let with_key_and_data = ParamsBuilder::new()
            .m_cost(4096)
            .t_cost(1)
            .p_cost(1)
            .keyid(KeyId::new(b"k1").unwrap())
            .data(AssociatedData::new(b"ad").unwrap())
            .build()
            .unwrap();
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, with_key_and_data);
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let stored = argon.hash_password(b"5831", &salt).unwrap().to_string();
        assert!(
            stored.contains("keyid=") && stored.contains("data="),
            "{stored}"
        );
        assert!(verify_pin(&pin("5831"), &stored), "{stored}");
        assert!(!verify_pin(&pin("5830"), &stored), "{stored}");
        let no_version = "$argon2id$m=4096,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$";
        let argon = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(4096, 1, 1, None).unwrap(),
        );
        let mut out = [0u8; 32];
        argon
            .hash_password_into(b"5831", b"somesaltsomesalt", &mut out)
            .unwrap();
        let stored = format!("{no_version}{}", Output::new(&out).unwrap());
        assert!(verify_pin(&pin("5831"), &stored), "{stored}");
        assert!(!verify_pin(&pin("5832"), &stored), "{stored}");
    }

    #[test]
    fn a_corrupt_stored_hash_never_verifies() {
        assert!(!verify_pin(&pin("5831"), "not-a-phc-string"));
    }
}
