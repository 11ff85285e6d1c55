//! Seed data: the demo data set (`seeds/demo/`) and the synthetic benchmark set.
//!
//! Both load through the domain rules (ID numbers, phones and grid codes are parsed with the
//! same newtypes as the API; tasks follow the same scheduling rule) and the same tables, so
//! seeded data obeys every rule the service enforces.

pub mod demo;
pub mod synthetic;

use std::io::Write;
use std::time::Instant;

use sha2::{Digest, Sha256};

/// A deterministic UUIDv7 for a seeded record: the timestamp part is a fixed origin plus the
/// record's ordinal (so seeded ids keep their load order), the rest comes from a hash of its
/// key. Loading the same data twice yields the same ids.
pub fn seeded_id(namespace: &str, kind: &str, key: &str, ordinal: u64) -> String {
    let digest = Sha256::digest(format!("{namespace}:{kind}:{key}").as_bytes());
    let mut random = [0u8; 10];
    random.copy_from_slice(&digest[..10]);
    // 2026-11-01T00:00:00Z in milliseconds.
    const ORIGIN_MS: u64 = 1_793_491_200_000;
    uuid::Builder::from_unix_timestamp_millis(ORIGIN_MS + ordinal, &random).into_uuid().to_string()
}

/// A one-line progress bar on stderr, redrawn at most ten times a second.
pub struct Progress {
    what: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    drawn: Instant,
}

impl Progress {
    pub fn new(what: &'static str, total: u64) -> Progress {
        let now = Instant::now();
        Progress { what, total: total.max(1), done: 0, started: now, drawn: now }
    }

    pub fn advance(&mut self, n: u64) {
        self.done += n;
        if self.drawn.elapsed().as_millis() >= 100 && self.done < self.total {
            self.draw();
            self.drawn = Instant::now();
        }
    }

    fn draw(&self) {
        let width = 30;
        let filled = usize::try_from(self.done * width / self.total).unwrap_or(0).min(width as usize);
        let bar = format!("{}{}", "#".repeat(filled), " ".repeat(width as usize - filled));
        let secs = self.started.elapsed().as_secs_f64();
        let rate = self.done as f64 / secs.max(0.001);
        let mut err = std::io::stderr();
        let _ = write!(err, "\r{} [{bar}] {}/{} ({:.0}/s, {:.1}s)", self.what, self.done, self.total, rate, secs);
        let _ = err.flush();
    }

    pub fn finish(self) {
        self.draw();
        eprintln!();
    }
}

/// A small deterministic generator (SplitMix64): the same seed gives the same data on every
/// platform and with every version of the `rand` crate.
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[usize::try_from(self.below(items.len() as u64)).unwrap_or(0)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_are_stable_uuid_v7() {
        let a = seeded_id("gridlight-demo", "household", "jianxin-01-0001", 5);
        assert_eq!(a, seeded_id("gridlight-demo", "household", "jianxin-01-0001", 5));
        assert_ne!(a, seeded_id("gridlight-demo", "household", "jianxin-01-0002", 5));
        let u = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(u.get_version_num(), 7);
        assert!(seeded_id("n", "k", "x", 1) < seeded_id("n", "k", "a", 2));
    }

    #[test]
    fn splitmix_is_deterministic() {
        let mut a = SplitMix::new(42);
        let mut b = SplitMix::new(42);
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(SplitMix::new(43).next_u64(), xs[0]);
    }
}
