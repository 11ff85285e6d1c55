//! Where the data keys come from, and the key file kept beside a SQLite database.
//!
//! `GRIDLIGHT_DATA_KEY` always wins (required with PostgreSQL: every instance must hold the same
//! keys). With SQLite and none given, a key is generated once into `<database>.data-key` (mode
//! 0600), like the token secret; `gridlight keys rotate` adds keys to that file and drops the
//! ones no value uses any more. A running server re-reads the file when it changes, so a
//! rotation can run beside it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};

use super::keys::{DataKey, KeyRing};
use super::{Db, sealing};
use crate::config::{DbConfig, is_postgres_url, sqlite_path};

/// The file that keeps the data keys of a SQLite database.
pub fn key_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".data-key");
    db_path.with_file_name(name)
}

/// Writes a file readable by its owner only: a new one (`create_new`, failing with
/// `AlreadyExists` when it is there), or a replacement written beside it and renamed over it.
pub fn write_private(path: &Path, text: &str, create_new: bool) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let target = if create_new { path.to_path_buf() } else { PathBuf::from(temporary) };
    let mut options = fs::OpenOptions::new();
    options.write(true);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&target)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    if !create_new {
        fs::rename(&target, path)?;
    }
    Ok(())
}

fn read_optional(path: &Path) -> anyhow::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[derive(Debug, Clone)]
pub enum KeySource {
    /// `GRIDLIGHT_DATA_KEY`.
    Configured(String),
    /// The key file of a SQLite database.
    File(PathBuf),
}

impl KeySource {
    fn describe(&self) -> String {
        match self {
            KeySource::Configured(_) => "GRIDLIGHT_DATA_KEY".into(),
            KeySource::File(path) => path.display().to_string(),
        }
    }
}

/// The keys of one database: where they come from and, once loaded, the ring.
pub struct KeyState {
    source: KeySource,
    ring: RwLock<Option<Arc<KeyRing>>>,
    /// When a key file was last looked at, and when it had last changed then.
    seen: Mutex<(Instant, Option<SystemTime>)>,
}

/// How often a running server looks whether its key file changed (a rotation).
const RECHECK: Duration = Duration::from_secs(1);

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl KeyState {
    pub fn configured(cfg: &DbConfig) -> anyhow::Result<KeyState> {
        let source = match (&cfg.data_key, is_postgres_url(&cfg.database_url)) {
            (Some(keys), _) => KeySource::Configured(keys.clone()),
            (None, true) => bail!(
                "GRIDLIGHT_DATA_KEY is required with PostgreSQL (all instances must share it; make one with \
                 `gridlight keys generate`)"
            ),
            (None, false) => KeySource::File(key_path(
                &sqlite_path(&cfg.database_url).context("an in-memory database has no place to keep its data key")?,
            )),
        };
        Ok(KeyState { source, ring: RwLock::new(None), seen: Mutex::new((Instant::now(), None)) })
    }

    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// The loaded keys (re-reading a key file that changed since it was last looked at).
    pub fn ring(&self) -> Option<Arc<KeyRing>> {
        if let KeySource::File(path) = &self.source {
            let reload = {
                let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                if seen.0.elapsed() >= RECHECK {
                    seen.0 = Instant::now();
                    let now = modified(path);
                    let changed = now != seen.1 && seen.1.is_some();
                    if changed {
                        seen.1 = now;
                    }
                    changed
                } else {
                    false
                }
            };
            if reload {
                match fs::read_to_string(path).map_err(anyhow::Error::from).and_then(|t| Ok(KeyRing::parse(&t)?)) {
                    Ok(ring) => {
                        tracing::info!(current = ring.current().id(), "re-read the data key file");
                        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(ring));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the data key file changed but cannot be read; keeping the keys")
                    }
                }
            }
        }
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, ring: KeyRing) {
        if let KeySource::File(path) = &self.source {
            *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = (Instant::now(), modified(path));
        }
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(ring));
    }

    /// Loads the keys and checks them against the database: every key that still seals values
    /// must be among them, or this fails with an error that says which is missing (never
    /// garbage later). The first key is registered as in use.
    pub fn load(&self, db: &Db) -> anyhow::Result<()> {
        let text = match &self.source {
            KeySource::Configured(text) => text.clone(),
            KeySource::File(path) => match read_optional(path)? {
                Some(text) => text,
                None => {
                    let in_use = db.write_blocking(sealing::keys_in_use).map_err(|e| anyhow::anyhow!("{e}"))?;
                    if !in_use.is_empty() {
                        bail!(
                            "the data key file {} is missing, but the database holds values sealed with key(s) {}: \
                             restore the key file from its backup",
                            path.display(),
                            in_use.join(", ")
                        );
                    }
                    match write_private(path, &format!("{}\n", DataKey::generate()), true) {
                        Ok(()) => tracing::info!(path = %path.display(), "generated a new data key"),
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
                    }
                    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
                }
            },
        };
        let origin = self.source.describe();
        let ring = KeyRing::parse(&text).with_context(|| format!("the data keys of {origin}"))?;
        let missing = db.write_blocking(|c| sealing::register(c, &ring)).map_err(|e| anyhow::anyhow!("{e}"))?;
        if !missing.is_empty() {
            bail!(
                "wrong data key: the database holds values sealed with key(s) {}, which {origin} does not hold (it \
                 holds {}); start with the keys the database was sealed with",
                missing.join(", "),
                ring.ids().collect::<Vec<_>>().join(", ")
            );
        }
        self.set(ring);
        Ok(())
    }

    /// Puts a new key first in the key file (SQLite); returns its id. With
    /// `GRIDLIGHT_DATA_KEY` the operator lists the new key first instead.
    pub fn add_key(&self, db: &Db) -> anyhow::Result<String> {
        let KeySource::File(path) = &self.source else {
            bail!("the keys come from GRIDLIGHT_DATA_KEY: put a new key (`gridlight keys generate`) first in it");
        };
        let old = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let text = format!("{}\n{old}", DataKey::generate());
        let ring = KeyRing::parse(&text)?;
        let id = ring.current().id().to_owned();
        write_private(path, &text, false).with_context(|| format!("writing {}", path.display()))?;
        db.write_blocking(|c| sealing::register(c, &ring).map(|_| ())).map_err(|e| anyhow::anyhow!("{e}"))?;
        self.set(ring);
        Ok(id)
    }

    /// Drops from the key file the keys that are not in `keep` (retired ones).
    pub fn keep_only(&self, keep: &[String]) -> anyhow::Result<Vec<String>> {
        let KeySource::File(path) = &self.source else { return Ok(Vec::new()) };
        let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut kept = String::new();
        let mut dropped = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let id = DataKey::parse(line)?.id().to_owned();
            if keep.contains(&id) {
                kept.push_str(line);
                kept.push('\n');
            } else {
                dropped.push(id);
            }
        }
        if !dropped.is_empty() {
            write_private(path, &kept, false).with_context(|| format!("writing {}", path.display()))?;
            self.set(KeyRing::parse(&kept)?);
        }
        Ok(dropped)
    }
}
