//! Access tokens (JWT, HS256 pinned) and refresh tokens (opaque, stored only as hashes).

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const ISSUER: &str = "gridlight";
pub const AUDIENCE: &str = "gridlight-api";
pub const ACCESS_TYPE: &str = "access";

/// The claims of an access token. `cv` is the user's credentials epoch
/// (`credentials_changed_at` in microseconds): a password change or a deactivation moves it,
/// and every token carrying the old value stops working on the next request.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub typ: String,
    pub jti: String,
    pub cv: i64,
}

pub fn issue_access(secret: &[u8], user_id: &str, credentials_epoch: i64, ttl_secs: u64) -> String {
    let now = chrono::Utc::now().timestamp();
    let ttl = i64::try_from(ttl_secs).unwrap_or(i64::MAX / 2);
    let claims = Claims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: user_id.into(),
        iat: now,
        nbf: now,
        exp: now.saturating_add(ttl),
        typ: ACCESS_TYPE.into(),
        jti: uuid::Uuid::now_v7().to_string(),
        cv: credentials_epoch,
    };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret))
        .expect("HS256 signing cannot fail")
}

/// Verifies signature (HS256 only), `exp`, `nbf`, `iss`, `aud`, the presence of `sub` and
/// `iat`, and the token type. Any failure is a plain `None`: the reason goes to no client.
pub fn verify_access(secret: &[u8], token: &str) -> Option<Claims> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = 30;
    let data = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret), &validation).ok()?;
    let claims = data.claims;
    let now = chrono::Utc::now().timestamp();
    let sane = claims.typ == ACCESS_TYPE && !claims.sub.is_empty() && claims.iat <= now + 30;
    sane.then_some(claims)
}

/// A new opaque refresh token: 32 random bytes, base64url.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("glr_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// What the database keeps of a refresh token: its SHA-256, hex. The tokens are random
/// 256-bit values, so a fast hash is enough (no dictionary to guess from).
pub fn hash_refresh_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejection() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let token = issue_access(secret, "u1", 42, 900);
        let claims = verify_access(secret, &token).expect("valid");
        assert_eq!((claims.sub.as_str(), claims.cv), ("u1", 42));
        assert!(verify_access(b"another-secret-another-secret-xx", &token).is_none());
        assert!(verify_access(secret, "garbage").is_none());
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let a = new_refresh_token();
        assert_ne!(a, new_refresh_token());
        assert_eq!(hash_refresh_token(&a).len(), 64);
        assert_ne!(hash_refresh_token(&a), a);
    }
}
