//! The data keys that seal personal fields at rest (ID numbers and phones), and the blind index
//! that still finds them by exact value.
//!
//! A configured key is 32 random bytes; its id is a fingerprint of it, so a wrong key can never
//! pass for the right one. From each key three sub-keys are derived (HMAC-SHA256 of the key
//! over a label): the AES-256-GCM key that seals values, the HMAC key of the blind index, and
//! the HMAC key of the idempotent-replay digests. The first key of a ring is the current one
//! (new values are sealed with it); the others only open values sealed before a rotation.
//!
//! A sealed value is `gl1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`, with a fresh random
//! 96-bit nonce, and `<table>.<column>:<record id>` as associated data: a value copied to
//! another row or column does not open.
//!
//! Store functions reach the keys of the database they work on through [`current`]: `Db` sets
//! them for the thread while it runs a closure on one of its connections.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// What every sealed value starts with (no ID number or phone can).
pub const SEALED_PREFIX: &str = "gl1.";
const NONCE_LEN: usize = 12;
pub const KEY_LEN: usize = 32;

/// One data key and what is derived from it.
pub struct DataKey {
    id: String,
    cipher: Aes256Gcm,
    index: [u8; 32],
    replay: [u8; 32],
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey").field("id", &self.id).finish_non_exhaustive()
    }
}

fn derive(key: &[u8], label: &str) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(label.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

impl DataKey {
    pub fn from_bytes(key: &[u8; KEY_LEN]) -> DataKey {
        let id = Sha256::digest([b"gridlight data key id\0".as_slice(), key].concat());
        let id = id[..6].iter().map(|b| format!("{b:02x}")).collect();
        let sealing = derive(key, "gridlight/seal/v1");
        DataKey {
            id,
            cipher: Aes256Gcm::new(&sealing.into()),
            index: derive(key, "gridlight/blind-index/v1"),
            replay: derive(key, "gridlight/replay/v1"),
        }
    }

    /// Parses the text form of a key: 32 bytes in base64 (standard or URL-safe).
    pub fn parse(text: &str) -> Result<DataKey, KeyError> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .map_err(|_| KeyError::Malformed("a data key is 32 bytes in base64".into()))?;
        let bytes: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| KeyError::Malformed(format!("a data key is 32 bytes, this one is {}", b.len())))?;
        Ok(DataKey::from_bytes(&bytes))
    }

    /// A new random key, in its text form.
    pub fn generate() -> String {
        let mut bytes = [0u8; KEY_LEN];
        rand::rng().fill_bytes(&mut bytes);
        STANDARD.encode(bytes)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn mac(key: &[u8; 32], parts: &[&[u8]]) -> String {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Why a key or a sealed value cannot be used. Never carries a value.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Malformed(String),
    #[error("a value is sealed with data key {0}, which is not configured")]
    UnknownKey(String),
    #[error("a sealed value of {0} does not open with its key (tampered, moved, or a wrong key)")]
    DoesNotOpen(String),
    #[error("a value of {0} is stored in clear")]
    Clear(String),
    #[error("no data keys are loaded for this connection (the database was not opened through Db::migrate)")]
    NotLoaded,
}

/// The keys in use: the first seals, all open.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<DataKey>,
}

/// Where a sealed value lives: its table and column (part of the associated data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub table: &'static str,
    pub column: &'static str,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.table, self.column)
    }
}

pub const MEMBER_ID_NUMBER: Field = Field { table: "members", column: "id_number" };
pub const MEMBER_PHONE: Field = Field { table: "members", column: "phone" };
pub const HOUSEHOLD_PHONE: Field = Field { table: "households", column: "phone" };
pub const USER_PHONE: Field = Field { table: "users", column: "phone" };
/// Uploaded roster files (sealed whole, as bytes; not one of [`FIELDS`]: they are few, short-lived
/// and re-sealed by a rotation on their own).
pub const IMPORT_FILE: Field = Field { table: "imports", column: "file" };
/// The error workbook an import keeps once its file is cleared (the rows with errors, sealed).
pub const IMPORT_ERRORS_FILE: Field = Field { table: "imports", column: "errors_file" };
/// Webhook signing secrets (sealed; not one of [`FIELDS`]: few, re-sealed by a rotation on
/// their own, with the import files). A rotated-out secret keeps this field in its own column.
pub const WEBHOOK_SECRET: Field = Field { table: "webhooks", column: "secret" };
/// Not sealed, only digested: a username typed at a login that names no account, as its audit
/// event keeps it (`ops::users::typed_username`).
pub const TYPED_USERNAME: Field = Field { table: "audit_events", column: "typed_username" };
/// Not sealed, only digested: the name a login's attempt count is kept under
/// (`login_failures.username` holds this digest of the typed username, never the text: what is
/// typed there may be a password typed into the wrong field).
pub const THROTTLED_USERNAME: Field = Field { table: "login_failures", column: "throttled_username" };
/// Every sealed column.
pub const FIELDS: [Field; 4] = [MEMBER_ID_NUMBER, MEMBER_PHONE, HOUSEHOLD_PHONE, USER_PHONE];

impl KeyRing {
    pub fn new(keys: Vec<DataKey>) -> Result<KeyRing, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Malformed("no data key is configured".into()));
        }
        Ok(KeyRing { keys })
    }

    /// Parses a list of keys (comma- or line-separated, the current one first).
    pub fn parse(text: &str) -> Result<KeyRing, KeyError> {
        let keys = text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|k| !k.is_empty() && !k.starts_with('#'))
            .map(DataKey::parse)
            .collect::<Result<Vec<_>, _>>()?;
        KeyRing::new(keys)
    }

    pub fn current(&self) -> &DataKey {
        &self.keys[0]
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    fn get(&self, id: &str) -> Option<&DataKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    fn aad(field: Field, record_id: &str) -> Vec<u8> {
        format!("{field}:{record_id}").into_bytes()
    }

    /// Seals a value of `field` of the record `record_id` with the current key.
    pub fn seal(&self, field: Field, record_id: &str, clear: &str) -> String {
        let (key, bytes) = self.seal_raw(field, record_id, clear.as_bytes());
        format!("{SEALED_PREFIX}{key}.{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Seals a file (bytes) of `field` of the record `record_id` with the current key, stored as
    /// `gl1.<key id>.` then the nonce and the sealed bytes.
    pub fn seal_bytes(&self, field: Field, record_id: &str, clear: &[u8]) -> Vec<u8> {
        let (key, bytes) = self.seal_raw(field, record_id, clear);
        let mut out = format!("{SEALED_PREFIX}{key}.").into_bytes();
        out.extend_from_slice(&bytes);
        out
    }

    /// The current key's id and the nonce followed by the sealed bytes.
    fn seal_raw(&self, field: Field, record_id: &str, clear: &[u8]) -> (&str, Vec<u8>) {
        let key = self.current();
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = Self::aad(field, record_id);
        let sealed = key
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: clear, aad: &aad })
            .expect("AES-GCM encrypts any value shorter than 64 GiB");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        (&key.id, bytes)
    }

    /// The id of the key a stored value is sealed with (`None` for a value in clear).
    pub fn key_of(stored: &str) -> Option<&str> {
        stored.strip_prefix(SEALED_PREFIX).and_then(|rest| rest.split_once('.')).map(|(id, _)| id)
    }

    /// Opens a stored value of `field` of the record `record_id`.
    pub fn open(&self, field: Field, record_id: &str, stored: &str) -> Result<String, KeyError> {
        let rest = stored.strip_prefix(SEALED_PREFIX).ok_or_else(|| KeyError::Clear(field.to_string()))?;
        let (id, body) = rest.split_once('.').ok_or_else(|| KeyError::DoesNotOpen(field.to_string()))?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| KeyError::DoesNotOpen(field.to_string()))?;
        let clear = self.open_raw(field, record_id, id, &bytes)?;
        String::from_utf8(clear).map_err(|_| KeyError::DoesNotOpen(field.to_string()))
    }

    /// Opens what [`KeyRing::seal_bytes`] stored.
    pub fn open_bytes(&self, field: Field, record_id: &str, stored: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rest = stored.strip_prefix(SEALED_PREFIX.as_bytes()).ok_or_else(|| KeyError::Clear(field.to_string()))?;
        let dot = rest.iter().position(|b| *b == b'.').ok_or_else(|| KeyError::DoesNotOpen(field.to_string()))?;
        let id = std::str::from_utf8(&rest[..dot]).map_err(|_| KeyError::DoesNotOpen(field.to_string()))?;
        self.open_raw(field, record_id, id, &rest[dot + 1..])
    }

    /// The id of the key a file [`KeyRing::seal_bytes`] stored is sealed with.
    pub fn key_of_bytes(stored: &[u8]) -> Option<&str> {
        let rest = stored.strip_prefix(SEALED_PREFIX.as_bytes())?;
        let dot = rest.iter().position(|b| *b == b'.')?;
        std::str::from_utf8(&rest[..dot]).ok()
    }

    fn open_raw(&self, field: Field, record_id: &str, key_id: &str, bytes: &[u8]) -> Result<Vec<u8>, KeyError> {
        let key = self.get(key_id).ok_or_else(|| KeyError::UnknownKey(key_id.to_owned()))?;
        if bytes.len() < NONCE_LEN {
            return Err(KeyError::DoesNotOpen(field.to_string()));
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| KeyError::DoesNotOpen(field.to_string()))?;
        let aad = Self::aad(field, record_id);
        key.cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: sealed, aad: &aad })
            .map_err(|_| KeyError::DoesNotOpen(field.to_string()))
    }

    /// Opens an optional stored value.
    pub fn open_opt(&self, field: Field, record_id: &str, stored: Option<&str>) -> Result<Option<String>, KeyError> {
        stored.map(|s| self.open(field, record_id, s)).transpose()
    }

    /// The blind index of a normalised value under the current key: what its index column holds.
    pub fn blind(&self, field: Field, normalised: &str) -> String {
        DataKey::mac(&self.current().index, &[field.column.as_bytes(), normalised.as_bytes()])
    }

    /// The blind indexes of a value under every key: an exact lookup matches any of them, so
    /// it finds values whether or not a rotation has reached them yet.
    pub fn blinds(&self, field: Field, normalised: &str) -> Vec<String> {
        self.keys.iter().map(|k| DataKey::mac(&k.index, &[field.column.as_bytes(), normalised.as_bytes()])).collect()
    }

    /// Keyed digests of a create request's content, the current key's first: a copied
    /// database does not let anyone test guessed phones against them.
    pub fn replay_digests(&self, content: &[u8]) -> Vec<String> {
        self.keys.iter().map(|k| DataKey::mac(&k.replay, &[content])).collect()
    }
}

thread_local! {
    static KEYS: RefCell<Option<Arc<KeyRing>>> = const { RefCell::new(None) };
}

/// Runs `f` with `keys` as the thread's keys (restoring the previous ones after).
pub fn with<T>(keys: Option<Arc<KeyRing>>, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Arc<KeyRing>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            KEYS.with(|k| *k.borrow_mut() = previous);
        }
    }
    let previous = KEYS.with(|k| std::mem::replace(&mut *k.borrow_mut(), keys));
    let _restore = Restore(previous);
    f()
}

/// The keys of the database the thread works on.
pub fn current() -> Result<Arc<KeyRing>, KeyError> {
    KEYS.with(|k| k.borrow().clone()).ok_or(KeyError::NotLoaded)
}

/// A key error as a diesel error, for store functions (answered as a logged 500).
pub fn to_diesel(e: KeyError) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(n: usize) -> KeyRing {
        KeyRing::parse(&(0..n).map(|_| DataKey::generate()).collect::<Vec<_>>().join(",")).unwrap()
    }

    #[test]
    fn values_open_only_in_their_place_and_with_their_key() {
        let keys = ring(1);
        let sealed = keys.seal(MEMBER_PHONE, "m1", "13800138000");
        assert!(!sealed.contains("13800138000"));
        assert_ne!(sealed, keys.seal(MEMBER_PHONE, "m1", "13800138000"), "a fresh nonce per value");
        assert_eq!(keys.open(MEMBER_PHONE, "m1", &sealed).unwrap(), "13800138000");
        assert!(matches!(keys.open(MEMBER_PHONE, "m2", &sealed), Err(KeyError::DoesNotOpen(_))));
        assert!(matches!(keys.open(HOUSEHOLD_PHONE, "m1", &sealed), Err(KeyError::DoesNotOpen(_))));
        assert!(matches!(ring(1).open(MEMBER_PHONE, "m1", &sealed), Err(KeyError::UnknownKey(_))));
        assert!(matches!(keys.open(MEMBER_PHONE, "m1", "13800138000"), Err(KeyError::Clear(_))));
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(keys.open(MEMBER_PHONE, "m1", &tampered).is_err());
    }

    #[test]
    fn old_keys_open_and_blind_indexes_cover_every_key() {
        let old = ring(1);
        let sealed = old.seal(MEMBER_ID_NUMBER, "m1", "11010519491231002X");
        let new = ring(1);
        let both = KeyRing { keys: vec![DataKey::from_bytes(&[7; 32]), DataKey::from_bytes(&[9; 32])] };
        assert!(new.open(MEMBER_ID_NUMBER, "m1", &sealed).is_err());
        let blinds = both.blinds(MEMBER_ID_NUMBER, "x");
        assert_eq!(blinds.len(), 2);
        assert_eq!(blinds[0], both.blind(MEMBER_ID_NUMBER, "x"));
        assert_ne!(both.blind(MEMBER_ID_NUMBER, "x"), both.blind(MEMBER_PHONE, "x"));
        assert_eq!(KeyRing::key_of(&sealed), Some(old.current().id()));
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(KeyRing::parse("").is_err());
        assert!(KeyRing::parse("c2hvcnQ=").is_err());
        assert!(KeyRing::parse("not base64 at all!").is_err());
    }
}
