//! Where the access-token signing secret comes from.
//!
//! An explicit `GRIDLIGHT_JWT_SECRET` always wins. With SQLite and none given, a random secret
//! is generated once and kept beside the database file with mode 0600, so tokens survive a
//! restart without any set-up. PostgreSQL deployments run several instances, which must share
//! one secret: there it is required.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use rand::RngCore;

use crate::config::{is_postgres_url, sqlite_path};

pub const MIN_SECRET_LEN: usize = 32;

/// The file that keeps the generated secret of a SQLite database.
pub fn secret_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".jwt-secret");
    db_path.with_file_name(name)
}

pub fn resolve(explicit: Option<&str>, database_url: &str) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = explicit {
        if secret.len() < MIN_SECRET_LEN {
            bail!("GRIDLIGHT_JWT_SECRET must be at least {MIN_SECRET_LEN} bytes long");
        }
        return Ok(secret.as_bytes().to_vec());
    }
    if is_postgres_url(database_url) {
        bail!("GRIDLIGHT_JWT_SECRET is required with PostgreSQL (all instances must share it)");
    }
    let db_path = sqlite_path(database_url).context("an in-memory database has no place to keep a secret")?;
    load_or_create(&secret_path(&db_path))
}

fn load_or_create(path: &Path) -> anyhow::Result<Vec<u8>> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let secret = text.trim();
            if secret.len() < MIN_SECRET_LEN {
                bail!("{} holds a secret shorter than {MIN_SECRET_LEN} bytes", path.display());
            }
            return Ok(secret.as_bytes().to_vec());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())?;
            file.sync_all()?;
            tracing::info!(path = %path.display(), "generated a new token-signing secret");
            Ok(secret.into_bytes())
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create(path),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("g.db");
        let url = db.to_str().unwrap();
        let first = resolve(None, url).unwrap();
        let second = resolve(None, url).unwrap();
        assert_eq!(first, second);
        assert!(first.len() >= MIN_SECRET_LEN);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(secret_path(&db)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn postgres_requires_a_secret() {
        assert!(resolve(None, "postgres://localhost/g").is_err());
        assert!(resolve(Some("short"), "postgres://localhost/g").is_err());
        assert!(resolve(Some(&"x".repeat(32)), "postgres://localhost/g").is_ok());
    }
}
