//! Pages answered from bytes already built. A community's secretaries and grid workers page
//! through its households all day, between few changes of them; each page one of them reads is
//! kept — its JSON, and its gzip once a client asks for it — with the point of the change log
//! ([`crate::store::sync`]) it was read at, and answered again while all of this holds:
//! - no change of a household, member, grid (or a grid's workers), account, tag decision or plan
//!   of the community came after that point. The log is written by triggers, so every writer —
//!   any path, any instance, a command run on the database — is seen, on either backend; visits
//!   and tasks, the frequent writes, show on no household page and leave it be;
//! - the community (its timezone, so its "today") is at the version the page was read at;
//! - the day has not turned: an entry ends at the next quarter hour (UTC), the latest a midnight
//!   can fall in any timezone, which is when a suggestion by age or a review date falls due;
//! - it is the caller's own: the key holds the account, the account's version (a change of its
//!   role or community misses) and the request's query as sent. Authentication runs first, as
//!   for every request, so a deactivated account is refused as before.
//!
//! Only callers of one community (secretaries, grid workers) are answered from it; other lists
//! span communities and are read each time. Entries past `GRIDLIGHT_PAGE_CACHE_MB` are dropped
//! least recently used first; `0` keeps none. On SQLite the check is made on the async worker
//! itself when it can be made at once ([`Pages::kept_here`], [`crate::db::Db::read_here`]).

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use actix_web::http::header::{self, AcceptEncoding, ContentEncoding, Encoding, Header};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, TimeDelta, Utc};

use crate::auth::AuthUser;
use crate::db::DbConn;
use crate::domain::Role;
use crate::error::{ApiError, ApiResult};
use crate::store::communities;
use crate::store::sync::{self, Watermark};

/// The kinds of change (`sync_log.entity`) a page of households shows.
const HOUSEHOLD_CHANGES: &[&str] = &["household", "member", "grid", "user", "tag_change", "plan"];

/// An async worker checks a kept page only if the log moved by at most this many rows since
/// the page was last found to hold ([`Pages::kept_here`]); past it, the check is left to the
/// blocking pool.
const HERE_SPAN: i64 = 512;

/// At most this many pages are kept, however small.
const MAX_ENTRIES: usize = 4096;

/// The kept pages of this instance.
pub struct Pages {
    budget: usize,
    inner: Mutex<Kept>,
    hits: AtomicU64,
    misses: AtomicU64,
    clock: AtomicU64,
}

#[derive(Default)]
struct Kept {
    entries: HashMap<Key, Arc<Entry>>,
    bytes: usize,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    account: String,
    account_version: i32,
    // Role and community too: an account changed by hand keeps its version.
    role: Role,
    community: String,
    list: &'static str,
    query: String,
}

struct Entry {
    community_version: i32,
    /// The log's point the page holds at: where it was read, moved on by each check that found
    /// nothing of its kinds after it.
    at: Mutex<Watermark>,
    /// The quarter hour after it was read.
    ends: DateTime<Utc>,
    json: Bytes,
    gzip: OnceLock<Bytes>,
    used: AtomicU64,
    /// What it is counted as against the budget, its key's text included.
    size: usize,
}

impl Entry {
    fn answer(&self, gzip: bool) -> ApiResult<Answer> {
        if !gzip {
            return Ok(Answer { body: self.json.clone(), gzip: false });
        }
        let body = match self.gzip.get() {
            Some(b) => b.clone(),
            None => {
                let made = gzipped(&self.json)?;
                self.gzip.get_or_init(|| made).clone()
            }
        };
        Ok(Answer { body, gzip: true })
    }
}

/// A page as it goes out: JSON, gzipped or not.
pub struct Answer {
    body: Bytes,
    gzip: bool,
}

impl Answer {
    pub fn respond(self) -> HttpResponse {
        let mut res = HttpResponse::Ok();
        res.insert_header(header::ContentType::json()).insert_header((header::VARY, "Accept-Encoding"));
        if self.gzip {
            // Already encoded: the compression middleware leaves a body with an encoding be.
            res.insert_header((header::CONTENT_ENCODING, ContentEncoding::Gzip));
        }
        res.body(self.body)
    }
}

/// A page a client asks for, as far as keeping it goes.
pub struct Asked {
    list: &'static str,
    /// The kinds of change that show on the page.
    changes: &'static [&'static str],
    /// The query as sent.
    query: String,
    gzip: bool,
}

impl Asked {
    /// The page of the households list `req` asks for.
    pub fn households(req: &HttpRequest) -> Asked {
        Asked {
            list: "households",
            changes: HOUSEHOLD_CHANGES,
            query: req.query_string().to_owned(),
            gzip: wants_gzip(req),
        }
    }
}

/// Whether the request's `Accept-Encoding` takes gzip before no encoding at all.
pub fn wants_gzip(req: &HttpRequest) -> bool {
    AcceptEncoding::parse(req).ok().and_then(|a| a.negotiate([Encoding::gzip(), Encoding::identity()].iter()))
        == Some(Encoding::gzip())
}

fn gzipped(json: &[u8]) -> ApiResult<Bytes> {
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(json.len() / 4), flate2::Compression::fast());
    enc.write_all(json)
        .and_then(|_| enc.finish())
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(anyhow::Error::from(e)))
}

/// The first quarter hour (UTC) after `t`.
fn next_quarter(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp();
    DateTime::from_timestamp(secs - secs.rem_euclid(900), 0).unwrap_or(t) + TimeDelta::seconds(900)
}

impl Pages {
    /// Pages kept within `budget` bytes (0: none).
    pub fn new(budget: usize) -> Pages {
        Pages {
            budget,
            inner: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            clock: AtomicU64::new(0),
        }
    }

    /// (hits, misses) of the pages a caller could be answered from.
    pub fn lookups(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }

    /// Bytes the kept pages take, as counted against the budget.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Drops every kept page: for a change the log does not see — a kept suggestion rewritten
    /// by hand (tests do, to tell kept answers from worked-out ones).
    pub fn clear(&self) {
        let mut kept = self.lock();
        kept.entries.clear();
        kept.bytes = 0;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The page `asked` for, as `build` serializes it on `conn` for `caller` — or as kept,
    /// while it holds (see the module). Runs off the async workers, on a read connection.
    pub fn page(
        &self,
        conn: &mut DbConn,
        caller: &AuthUser,
        asked: Asked,
        build: impl FnOnce(&mut DbConn) -> ApiResult<Vec<u8>>,
    ) -> ApiResult<Answer> {
        let Some(key) = self.key(caller, &asked) else {
            // Read each time; the compression middleware encodes it.
            return Ok(Answer { body: Bytes::from(build(conn)?), gzip: false });
        };
        if let Some(answer) = self.found(conn, &key, &asked, None)? {
            return Ok(answer);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        // The point first, then the page: a change that lands between shows on the page and
        // moves the log past the point, so the page is read again next time — never the reverse.
        let now = Utc::now();
        let at = sync::watermark(conn)?;
        let Some(community_version) = communities::version(conn, &key.community)? else {
            return Ok(Answer { body: Bytes::from(build(conn)?), gzip: false });
        };
        let json = Bytes::from(build(conn)?);
        let entry = Arc::new(Entry {
            community_version,
            at: Mutex::new(at),
            ends: next_quarter(now),
            gzip: OnceLock::new(),
            used: AtomicU64::new(self.tick()),
            // The gzip is made on first asking: counted ahead, at the quarter of the JSON it comes to.
            size: json.len() + json.len() / 4 + key.query.len() + key.account.len() + key.community.len() + 256,
            json,
        });
        let answer = entry.answer(asked.gzip)?;
        self.keep(key, entry);
        Ok(answer)
    }

    /// The kept page `asked` for, if there is one and it holds — checked only if the log has
    /// moved by at most [`HERE_SPAN`] rows since the page was last found to hold, so that the
    /// check stays a few index look-ups: for an async worker ([`crate::db::Db::read_here`]).
    /// `None` sends the request the whole way ([`Pages::page`]).
    pub fn kept_here(&self, conn: &mut DbConn, caller: &AuthUser, asked: &Asked) -> ApiResult<Option<Answer>> {
        match self.key(caller, asked) {
            Some(key) => self.found(conn, &key, asked, Some(HERE_SPAN)),
            None => Ok(None),
        }
    }

    /// The key of the page `asked` for by `caller`, if such a page is kept at all.
    fn key(&self, caller: &AuthUser, asked: &Asked) -> Option<Key> {
        match (&caller.role, &caller.community_id) {
            (Role::Secretary | Role::GridWorker, Some(community)) if self.budget > 0 => Some(Key {
                account: caller.id.clone(),
                account_version: caller.row.version,
                role: caller.role,
                community: community.clone(),
                list: asked.list,
                query: asked.query.clone(),
            }),
            _ => None,
        }
    }

    /// The answer kept under `key`, if it holds (looked at over at most `span` rows of the log).
    fn found(&self, conn: &mut DbConn, key: &Key, asked: &Asked, span: Option<i64>) -> ApiResult<Option<Answer>> {
        let Some(entry) = self.lock().entries.get(key).cloned() else {
            return Ok(None);
        };
        if !self.holds(conn, &key.community, asked.changes, &entry, span)? {
            return Ok(None);
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        entry.used.store(self.tick(), Ordering::Relaxed);
        entry.answer(asked.gzip).map(Some)
    }

    /// Whether a kept page of `community` showing `changes` still holds (see the module),
    /// moving its point on if it does; `false` as well when the log moved by more than `span`
    /// rows since that point.
    fn holds(
        &self,
        conn: &mut DbConn,
        community: &str,
        changes: &[&str],
        entry: &Entry,
        span: Option<i64>,
    ) -> ApiResult<bool> {
        if Utc::now() >= entry.ends {
            return Ok(false);
        }
        let at = entry.at.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let quiet_to = match sync::community_now(conn, community, changes, &at)? {
            // PostgreSQL: all of it in one round trip.
            Some(now) if now.version == Some(entry.community_version) => now.quiet_to(),
            Some(_) => return Ok(false),
            None => {
                if communities::version(conn, community)? != Some(entry.community_version) {
                    return Ok(false);
                }
                let to = sync::watermark(conn)?;
                if span.is_some_and(|span| to.rows_after(&at).is_none_or(|rows| rows > span)) {
                    return Ok(false);
                }
                sync::untouched(conn, community, changes, &at, to)?
            }
        };
        Ok(match quiet_to {
            Some(to) => {
                if to != at {
                    *entry.at.lock().unwrap_or_else(|e| e.into_inner()) = to;
                }
                true
            }
            None => false,
        })
    }

    /// The next use's place in time, for least-recently-used order.
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Keeps a page; past the budget (or [`MAX_ENTRIES`]) the least recently used quarter of
    /// the pages goes at once, so that a caller asking page after new page costs no more than a
    /// scan now and then.
    fn keep(&self, key: Key, entry: Arc<Entry>) {
        if entry.size > self.budget {
            return;
        }
        let mut kept = self.lock();
        kept.bytes += entry.size;
        if let Some(old) = kept.entries.insert(key, entry) {
            kept.bytes -= old.size;
        }
        while (kept.bytes > self.budget || kept.entries.len() > MAX_ENTRIES) && kept.entries.len() > 1 {
            let mut used: Vec<u64> = kept.entries.values().map(|e| e.used.load(Ordering::Relaxed)).collect();
            let gone = (used.len() / 4).max(1);
            let (_, &mut first_kept, _) = used.select_nth_unstable(gone);
            let (mut freed, before) = (0, kept.entries.len());
            kept.entries.retain(|_, e| {
                let stays = e.used.load(Ordering::Relaxed) >= first_kept;
                if !stays {
                    freed += e.size;
                }
                stays
            });
            kept.bytes -= freed;
            if kept.entries.len() == before {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_ends_at_the_next_quarter_hour() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(next_quarter(at("2026-11-29T15:59:59Z")), at("2026-11-29T16:00:00Z"));
        assert_eq!(next_quarter(at("2026-11-29T16:00:00Z")), at("2026-11-29T16:15:00Z"));
        assert_eq!(next_quarter(at("2026-11-29T18:14:59.9Z")), at("2026-11-29T18:15:00Z"));
        // Midnight in Asia/Kathmandu (+05:45) and Asia/Shanghai (+08:00) are quarter hours.
        assert_eq!(next_quarter(at("2026-11-29T18:14:00Z")), at("2026-11-30T00:00:00+05:45"));
        assert_eq!(next_quarter(at("2026-11-29T15:50:00Z")), at("2026-11-30T00:00:00+08:00"));
    }

    fn entry(pages: &Pages, json: usize) -> Arc<Entry> {
        Arc::new(Entry {
            community_version: 1,
            at: Mutex::new(Watermark::Seq(1)),
            ends: Utc::now(),
            json: Bytes::from(vec![b' '; json]),
            gzip: OnceLock::new(),
            used: AtomicU64::new(pages.tick()),
            size: json + 100,
        })
    }

    fn key(n: usize) -> Key {
        Key {
            account: "a".into(),
            account_version: 1,
            role: Role::Secretary,
            community: "c".into(),
            list: "households",
            query: format!("n={n}"),
        }
    }

    #[test]
    fn the_least_recently_used_go_past_the_budget() {
        let pages = Pages::new(10_000);
        for n in 0..100 {
            pages.keep(key(n), entry(&pages, 900));
            // The first page is asked again each time: it stays.
            let first = pages.lock().entries.get(&key(0)).cloned();
            if let Some(e) = first {
                e.used.store(pages.tick(), Ordering::Relaxed);
            }
            let kept = pages.lock();
            assert!(kept.bytes <= 10_000, "{} bytes", kept.bytes);
            assert_eq!(kept.bytes, kept.entries.values().map(|e| e.size).sum::<usize>());
            assert!(kept.entries.contains_key(&key(n)) && kept.entries.contains_key(&key(0)), "page {n}");
        }
        assert!(pages.lock().entries.len() >= 7);
        // Larger than the whole budget: not kept.
        pages.keep(key(1000), entry(&pages, 20_000));
        assert!(!pages.lock().entries.contains_key(&key(1000)));
        // However small, at most MAX_ENTRIES.
        let pages = Pages::new(1 << 30);
        for n in 0..MAX_ENTRIES + 500 {
            pages.keep(key(n), entry(&pages, 1));
        }
        let kept = pages.lock();
        assert!(kept.entries.len() <= MAX_ENTRIES && kept.entries.len() > MAX_ENTRIES / 2);
        assert!(kept.entries.contains_key(&key(MAX_ENTRIES + 499)));
    }

    #[test]
    fn only_gzip_before_identity_is_gzip() {
        let req = |v: Option<&str>| {
            let mut r = actix_web::test::TestRequest::default();
            if let Some(v) = v {
                r = r.insert_header((header::ACCEPT_ENCODING, v));
            }
            r.to_http_request()
        };
        assert!(wants_gzip(&req(Some("gzip, deflate, br"))));
        assert!(wants_gzip(&req(Some("br;q=1, gzip;q=0.8"))));
        assert!(!wants_gzip(&req(Some("gzip;q=0"))));
        assert!(!wants_gzip(&req(Some("identity"))));
        assert!(!wants_gzip(&req(Some("deflate"))));
        assert!(!wants_gzip(&req(None)));
    }
}
