//! Signatures that let a receiver trust a delivery.
//!
//! The scheme is Stripe's, so receivers can reuse code they already have: the header
//! `t=<unix seconds>,v1=<hex HMAC-SHA256>` signs the timestamp, a `.`, and the raw body bytes. The
//! timestamp inside the signed payload lets a receiver refuse replays of an old delivery; several
//! `v1=` entries let a receiver accept deliveries signed with either the old or the new secret
//! while a secret is rolled over.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What every secret starts with, so a leaked one is recognisable (secret scanners, logs).
const SECRET_PREFIX: &str = "whsec_";

/// A new signing secret: `whsec_` and 32 random bytes, base64url without padding.
///
/// The key for [`signature_header`] and [`verify`] is the whole string's bytes, prefix included,
/// exactly as the receiver is shown it: the receiver needn't know how it was made.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The signature header's value for a delivery of `body` made at `timestamp` (Unix seconds).
pub fn signature_header(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let digest = keyed(secret, timestamp, body).finalize().into_bytes();
    let mut header = format!("t={timestamp},v1=");
    for byte in digest {
        header.push_str(&format!("{byte:02x}"));
    }
    header
}

/// Whether `header` is a valid signature of `body` under `secret`, made at most
/// `tolerance_secs` away from `now`.
///
/// Any one matching `v1=` entry is enough; entries of other schemes are ignored. The comparison
/// is constant-time, so a forger learns nothing from how long a refusal takes.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut timestamps = Vec::new();
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamps.push(value),
            Some(("v1", value)) => signatures.push(value),
            _ => {}
        }
    }
    // Exactly one timestamp: with two, which one the signature covers would be a guess.
    let [timestamp] = timestamps[..] else { return false };
    let Ok(timestamp) = timestamp.parse::<i64>() else { return false };
    let Some(age) = now.checked_sub(timestamp) else { return false };
    if tolerance_secs < 0 || age.unsigned_abs() > tolerance_secs.unsigned_abs() {
        return false;
    }
    let mac = keyed(secret, timestamp, body);
    signatures.into_iter().filter_map(from_hex).any(|candidate| mac.clone().verify_slice(&candidate).is_ok())
}

fn keyed(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret";
    const BODY: &[u8] = br#"{"event":"task.due","id":42}"#;
    const T: i64 = 1_700_000_000;

    #[test]
    fn matches_an_independent_hmac() {
        // python3: hmac.new(b"whsec_test_secret", b'1700000000.{"event":"task.due","id":42}',
        //                   hashlib.sha256).hexdigest()
        assert_eq!(
            signature_header(SECRET, T, BODY),
            "t=1700000000,v1=19b201c41ddd08f21c36941dc2d9da47d0c9c8d89451a0cf727a4198196f7f59"
        );
    }

    #[test]
    fn a_fresh_signature_verifies() {
        let header = signature_header(SECRET, T, BODY);
        assert!(verify(SECRET, &header, BODY, T, 300));
        assert!(verify(SECRET, &header, BODY, T + 300, 300));
        assert!(verify(SECRET, &header, BODY, T - 300, 300));
        assert!(verify(SECRET, &format!(" {} ", header.replace(',', " , ")), BODY, T, 300));
    }

    #[test]
    fn tampering_and_wrong_secrets_are_refused() {
        let header = signature_header(SECRET, T, BODY);
        assert!(!verify(SECRET, &header, br#"{"event":"task.due","id":43}"#, T, 300));
        assert!(!verify(b"whsec_other", &header, BODY, T, 300));
        // Moving the timestamp breaks the signature, which covers it.
        let moved = header.replace("t=1700000000", "t=1700000100");
        assert!(!verify(SECRET, &moved, BODY, T + 100, 300));
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let header = signature_header(SECRET, T, BODY);
        assert!(!verify(SECRET, &header, BODY, T + 301, 300));
        assert!(!verify(SECRET, &header, BODY, T - 301, 300));
        assert!(!verify(SECRET, &header, BODY, T, -1));
        let ancient = signature_header(SECRET, i64::MIN, BODY);
        assert!(!verify(SECRET, &ancient, BODY, i64::MAX, i64::MAX));
    }

    #[test]
    fn any_of_several_v1_entries_may_match() {
        let header = signature_header(SECRET, T, BODY);
        let good = header.split_once(",v1=").unwrap().1;
        let rolled = format!("t={T},v1={},v0=legacy,v1={good}", "ab".repeat(32));
        assert!(verify(SECRET, &rolled, BODY, T, 300));
        let none_good = format!("t={T},v1={},v1=zz", "ab".repeat(32));
        assert!(!verify(SECRET, &none_good, BODY, T, 300));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let header = signature_header(SECRET, T, BODY);
        let good = header.split_once(",v1=").unwrap().1;
        for bad in [
            String::new(),
            format!("v1={good}"),
            format!("t=soon,v1={good}"),
            format!("t={T},t={T},v1={good}"),
            format!("t={T}"),
            format!("t={T},v1={}", &good[1..]),
            format!("t={T},v1={}", &good[..62]),
            format!("t={T},v1=é{}", &good[2..]),
        ] {
            assert!(!verify(SECRET, &bad, BODY, T, 300), "{bad}");
        }
    }

    #[test]
    fn secrets_are_prefixed_random_base64url() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a, b);
        let encoded = a.strip_prefix("whsec_").unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(encoded).unwrap().len(), 32);
        assert!(encoded.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'), "{a}");
    }
}
