//! Sync tokens: where a device is in the change log, bound to the account and scope it was
//! issued for, and signed so that a device can neither forge nor move one.
//!
//! A token is `base64url(JSON) "." base64url(HMAC-SHA256)`; the key is derived from the
//! token-signing secret, so every instance of a deployment reads every other's tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::store::sync::Watermark;

/// Where the next page of an unfinished sync starts. A delta's window closes at `to`, taken
/// when its first page was (`taken`, Unix seconds: once the window is through, the token's `at`
/// is `to` and its age counts from then; `0` in a token of an older server, whose own `taken`
/// then stands); `now` is the scope as of then, the device's scope once the window is through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Progress {
    /// An initial sync: the records of kind `kind` (see `feed::KINDS`) after id `after`, as of
    /// the token's watermark.
    Initial { kind: u8, after: String },
    /// Grids newly in scope: their records, from kind `kind` after id `after`, as of `to`.
    Entering {
        to: Watermark,
        #[serde(default)]
        taken: i64,
        now: Vec<String>,
        entered: Vec<String>,
        kind: u8,
        after: String,
    },
    /// Grids no longer in scope: `leave` for them and the households now in them, after `after`.
    Leaving {
        to: Watermark,
        #[serde(default)]
        taken: i64,
        now: Vec<String>,
        left: Vec<String>,
        after: String,
    },
    /// The log window from the token's watermark to `to`, after `seq`.
    Delta {
        to: Watermark,
        #[serde(default)]
        taken: i64,
        now: Vec<String>,
        seq: i64,
    },
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// The account it was issued to.
    pub user: String,
    /// The community of the scope.
    pub community: String,
    /// The grids in scope at the watermark (a grid worker's, or all of the community's).
    pub grids: Vec<String>,
    /// Everything up to here is on the device (or being sent: see `progress`).
    pub at: Watermark,
    /// When `at` was taken (Unix seconds): tokens older than the retention are refused.
    pub taken: i64,
    /// An unfinished window.
    pub progress: Option<Progress>,
}

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8]) -> HmacSha256 {
    // A key of its own, derived from the token-signing secret: a sync token is never a JWT key.
    let mut derive = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    derive.update(b"gridlight sync token v1");
    let key = derive.finalize().into_bytes();
    HmacSha256::new_from_slice(&key).expect("HMAC takes keys of any length")
}

impl Token {
    /// The opaque text form.
    pub fn seal(&self, secret: &[u8]) -> String {
        let body = serde_json::to_vec(self).expect("tokens serialise");
        let mut m = mac(secret);
        m.update(&body);
        let sig = m.finalize().into_bytes();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(body), URL_SAFE_NO_PAD.encode(sig))
    }

    /// Reads a token this deployment issued; `None` for anything else (altered, truncated,
    /// another deployment's).
    pub fn open(text: &str, secret: &[u8]) -> Option<Token> {
        let (body, sig) = text.split_once('.')?;
        let body = URL_SAFE_NO_PAD.decode(body).ok()?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        let mut m = mac(secret);
        m.update(&body);
        m.verify_slice(&sig).ok()?;
        serde_json::from_slice(&body).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token {
            user: "u1".into(),
            community: "c1".into(),
            grids: vec!["g1".into()],
            at: Watermark::Snapshot("100:105:101,103".into()),
            taken: 1_800_000_000,
            progress: Some(Progress::Delta {
                to: Watermark::Snapshot("106:106:".into()),
                taken: 1_800_000_100,
                now: vec!["g1".into()],
                seq: 42,
            }),
        }
    }

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let secret = b"a test secret of thirty-two bytes!!";
        let sealed = token().seal(secret);
        assert_eq!(Token::open(&sealed, secret), Some(token()));
        assert_eq!(Token::open(&sealed, b"another deployment's secret 32 bytes"), None);
        let (body, sig) = sealed.split_once('.').unwrap();
        let mut forged = token();
        forged.user = "u2".into();
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(Token::open(&format!("{forged_body}.{sig}"), secret), None);
        assert_eq!(Token::open(body, secret), None);
        assert_eq!(Token::open("", secret), None);
        assert_eq!(Token::open("a.b.c", secret), None);
    }

    #[test]
    fn a_window_of_an_older_server_reads_without_its_time() {
        // Tokens sealed before windows recorded when `to` was taken: `taken` reads as 0, and the
        // finished window keeps the token's own age (`fill`).
        let mut old = serde_json::to_value(token()).unwrap();
        old["progress"]["Delta"].as_object_mut().unwrap().remove("taken");
        let read: Token = serde_json::from_value(old).unwrap();
        assert!(matches!(read.progress, Some(Progress::Delta { taken: 0, seq: 42, .. })));
    }
}
