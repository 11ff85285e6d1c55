//! Password hashing: argon2id at m=19456 KiB, t=2, p=1 (OWASP's minimum), PHC strings.
//!
//! Hashing is deliberately slow; callers run it on the blocking pool, never on an async worker.

use std::sync::OnceLock;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{ApiError, FieldError};

pub const MIN_LEN: usize = 10;
pub const MAX_LEN: usize = 128;

fn hasher() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The password policy, as a 422 field error on `field`.
pub fn check_policy(field: &str, password: &str) -> Result<(), FieldError> {
    let chars = password.chars().count();
    if chars < MIN_LEN {
        return Err(FieldError::new(field, "too_short", format!("must be at least {MIN_LEN} characters")));
    }
    if chars > MAX_LEN {
        return Err(FieldError::new(field, "too_long", format!("must be at most {MAX_LEN} characters")));
    }
    Ok(())
}

pub fn hash(password: &str) -> Result<String, ApiError> {
    hasher()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| ApiError::internal(anyhow::anyhow!("password hashing failed: {e}")))
}

pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => hasher().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Spends the same work as [`verify`] against a real hash, for logins naming an unknown user,
/// so that the answer's timing does not tell whether the account exists.
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash("gridlight-dummy-password").expect("hashing a constant"));
    let _ = verify(password, phc);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_the_minimum_cost() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery", &h));
        assert!(!verify("wrong horse battery", &h));
        assert!(!verify("x", "not a phc string"));
    }

    #[test]
    fn policy() {
        assert!(check_policy("password", "short").is_err());
        assert!(check_policy("password", "long enough!").is_ok());
        assert!(check_policy("password", &"x".repeat(129)).is_err());
    }
}
