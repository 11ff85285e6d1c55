//! Offline sync for mobile clients: `GET /sync` (the change feed) and `POST /sync/push` (the
//! batch upload). The protocol is described for app developers in `docs/sync.md`.

pub mod feed;
pub mod push;
pub mod token;

use actix_web::web;
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use self::feed::{ChangeOut, Ctx, FIRST_GRID_KIND};
use self::push::{PushRequest, PushResponse};
use self::token::{Progress, Token};
use crate::api::answer::Api;
use crate::api::input::{Batch, Params};
use crate::auth::extractor::Bearer;
use crate::auth::{AuthUser, scope};
use crate::db::DbConn;
use crate::domain::Role;
use crate::error::{ApiError, ApiResult, ErrorCode, PROBLEM_JSON as PROBLEM, Problem};
use crate::store::now;
use crate::store::sync::{self as store, LogScope, Scope, Watermark};

/// Changes a page carries by default, and at most.
pub const DEFAULT_LIMIT: u32 = 500;
pub const MAX_LIMIT: u32 = 5000;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SyncQuery {
    /// The `next` of the last page; none to start an initial sync.
    #[param(pattern = "^[A-Za-z0-9_.-]+$")]
    pub since: Option<String>,
    /// Changes a page, 1–5000 (default 500).
    #[param(minimum = 1, maximum = 5000, example = 500)]
    pub limit: Option<u32>,
    /// The community to sync: required for administrators; others sync their own.
    #[param(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub community_id: Option<String>,
}

/// A page of the feed.
#[derive(Serialize, ToSchema)]
pub struct SyncPage {
    /// In the order to apply them.
    pub changes: Vec<ChangeOut>,
    /// Pass as `since` next time: for the next page while `more` is true, for the next delta
    /// once it is false.
    pub next: String,
    /// More changes of this sync follow; ask again at once with `next`.
    pub more: bool,
}

fn resync(detail: &str) -> ApiError {
    ApiError::Gone(ErrorCode::ResyncRequired, format!("{detail}; start a new initial sync (no `since`)"))
}

/// The community a caller syncs, and its scope now.
fn scope_of(conn: &mut DbConn, caller: &AuthUser, asked: Option<&str>) -> ApiResult<Scope> {
    let community_id = match (caller.role, asked) {
        (Role::Admin, Some(c)) => scope::community(conn, caller, c)?.id,
        (Role::Admin, None) => {
            return Err(ApiError::invalid("community_id", "required", "administrators name the community to sync"));
        }
        (Role::StreetOfficer | Role::DistrictOfficer, _) => {
            return Err(ApiError::Forbidden("officers read through the API; sync is for a community's devices".into()));
        }
        (_, Some(c)) if Some(c) != caller.community_id.as_deref() => return Err(ApiError::not_found("community")),
        _ => caller.community_id.clone().ok_or_else(|| ApiError::internal(anyhow::anyhow!("no community")))?,
    };
    let grids = match caller.role {
        Role::GridWorker => store::grids_of_worker(conn, &caller.id)?,
        _ => store::community_grids(conn, &community_id)?,
    };
    Ok(Scope { community_id, grids })
}

/// The answer to an up-to-date device (the token of a finished sync) when nothing came for it
/// since: an empty page, and the token moved to now — what the full path answers, found with
/// one indexed statement and no read of the scope (`store::quiet`). `None`: not that case, or
/// something new; the full path decides (and answers any error).
fn nothing_new(
    conn: &mut DbConn,
    caller: &AuthUser,
    q: &SyncQuery,
    secret: &[u8],
    s: Settings,
) -> ApiResult<Option<SyncPage>> {
    let (Some(text), Some(community)) = (&q.since, caller.community_id.as_ref()) else { return Ok(None) };
    if caller.role == Role::Admin || q.community_id.as_ref().is_some_and(|c| c != community) {
        return Ok(None);
    }
    let Some(token) = Token::open(text, secret) else { return Ok(None) };
    let backend = matches!(conn, DbConn::Postgres(_));
    let up_to_date = token.progress.is_none()
        && token.user == caller.id
        && &token.community == community
        && !feed::too_old(&token, s.retention_days, now())
        && matches!(token.at, Watermark::Snapshot(_)) == backend;
    if !up_to_date {
        return Ok(None);
    }
    let worker = caller.role == Role::GridWorker;
    let log = LogScope { community_id: community.clone(), grids: worker.then(|| token.grids.clone()) };
    let taken = Utc::now().timestamp();
    let Some(at) = store::quiet(conn, &log, &token.at, worker)? else { return Ok(None) };
    // The device now stands at `at`, the log's watermark as of now: its token ages from now.
    let next = Token { at, taken, ..token };
    Ok(Some(SyncPage { changes: Vec::new(), next: next.seal(secret), more: false }))
}

/// The settings a page is computed with.
#[derive(Clone, Copy)]
struct Settings {
    limit: usize,
    visit_days: u32,
    retention_days: u32,
}

fn page(conn: &mut DbConn, caller: &AuthUser, q: &SyncQuery, secret: &[u8], s: Settings) -> ApiResult<SyncPage> {
    let current = scope_of(conn, caller, q.community_id.as_deref())?;
    let now = now();
    let since = now - Duration::days(i64::from(s.visit_days));
    let token = match &q.since {
        None => {
            // At most when the watermark is taken: a token's age never comes out younger.
            let taken = Utc::now().timestamp();
            Token {
                user: caller.id.clone(),
                community: current.community_id.clone(),
                grids: current.grids.clone(),
                at: store::watermark(conn)?,
                taken,
                progress: Some(Progress::Initial { kind: 0, after: String::new() }),
            }
        }
        Some(text) => {
            // Not even the shape of a token: a malformed request. The shape of one that this
            // server cannot serve: start over.
            let shaped = !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if !shaped {
                return Err(ApiError::invalid("since", "invalid", "is not a sync token (the `next` of a page)"));
            }
            let t = Token::open(text, secret).ok_or_else(|| resync("this is not a sync token of this server"))?;
            if t.user != caller.id || t.community != current.community_id {
                return Err(resync("the token belongs to another account or community"));
            }
            if feed::too_old(&t, s.retention_days, now) {
                return Err(resync("the token is older than the change log is kept"));
            }
            t
        }
    };
    let mut out = Vec::new();
    let next = fill(conn, caller, &current, &token, since, s.limit, &mut out)?;
    Ok(SyncPage { changes: out, more: next.progress.is_some(), next: next.seal(secret) })
}

/// Fills a page from where the token stands; answers the next token: the progress to carry on
/// with, or none — the device is up to date as of its watermark and grids.
fn fill(
    conn: &mut DbConn,
    caller: &AuthUser,
    current: &Scope,
    token: &Token,
    since: chrono::NaiveDateTime,
    limit: usize,
    out: &mut Vec<ChangeOut>,
) -> ApiResult<Token> {
    let ctx = |grids: &[String]| Ctx {
        caller,
        scope: Scope { community_id: current.community_id.clone(), grids: grids.to_vec() },
        visits_since: since,
        decided_since: since,
        limit,
    };
    // Where the device stands while a window is not through.
    let unfinished = |progress: Progress| Token { progress: Some(progress), ..token.clone() };
    // A delta that has not started: its window closes now, at the scope of now.
    let mut progress = match token.progress.clone() {
        Some(p) => p,
        None => {
            let taken = Utc::now().timestamp();
            let to = store::watermark(conn)?;
            if std::mem::discriminant(&to) != std::mem::discriminant(&token.at) {
                return Err(resync("the token was issued by a server on another database"));
            }
            let now = current.grids.clone();
            let entered: Vec<String> = now.iter().filter(|g| !token.grids.contains(g)).cloned().collect();
            Progress::Entering { to, taken, now, entered, kind: FIRST_GRID_KIND, after: String::new() }
        }
    };
    loop {
        progress = match progress {
            Progress::Initial { kind, after } => {
                let c = ctx(&token.grids);
                return Ok(match feed::snapshot(conn, &c, &c.scope, &token.at, kind, after, out)? {
                    Some((kind, after)) => unfinished(Progress::Initial { kind, after }),
                    None => Token { progress: None, ..token.clone() },
                });
            }
            Progress::Entering { to, taken, now, entered, kind, after } => {
                if !entered.is_empty() {
                    let c = ctx(&now);
                    let part = Scope { community_id: current.community_id.clone(), grids: entered.clone() };
                    if let Some((kind, after)) = feed::snapshot(conn, &c, &part, &to, kind, after, out)? {
                        return Ok(unfinished(Progress::Entering { to, taken, now, entered, kind, after }));
                    }
                }
                let left: Vec<String> = token.grids.iter().filter(|g| !now.contains(g)).cloned().collect();
                Progress::Leaving { to, taken, now, left, after: String::new() }
            }
            Progress::Leaving { to, taken, now, left, after } => {
                if !left.is_empty() {
                    let c = ctx(&now);
                    if let Some(after) = feed::leave(conn, &c, &left, after, out)? {
                        return Ok(unfinished(Progress::Leaving { to, taken, now, left, after }));
                    }
                }
                Progress::Delta { to, taken, now, seq: 0 }
            }
            Progress::Delta { to, taken, now, seq } => {
                let c = ctx(&now);
                let log = LogScope {
                    community_id: current.community_id.clone(),
                    grids: (caller.role == Role::GridWorker).then(|| {
                        let mut all = token.grids.clone();
                        all.extend(now.iter().filter(|g| !token.grids.contains(g)).cloned());
                        all
                    }),
                };
                return Ok(match feed::delta(conn, &c, &log, &token.at, &to, seq, out)? {
                    Some(seq) => unfinished(Progress::Delta { to, taken, now, seq }),
                    // Through: the device stands at `to`, aged from when it was taken (a token of
                    // an older server did not say: its own age stands).
                    None => Token {
                        at: to,
                        taken: if taken > 0 { taken } else { token.taken },
                        grids: now,
                        progress: None,
                        ..token.clone()
                    },
                });
            }
        };
    }
}

/// The change feed of the caller's scope: a worker's assigned grids, a secretary's community,
/// the community an administrator names. Without `since`, an initial sync: the whole scope as
/// upserts, in pages, as of one point. With the `next` of the last page, what changed since
/// (upserts, deletes, leaves). A token that is not this server's, not the caller's, or older
/// than `GRIDLIGHT_SYNC_RETENTION_DAYS` is 410 `resync_required`.
#[utoipa::path(get, path = "/api/v1/sync", tag = "sync", operation_id = "sync",
    params(SyncQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of changes", body = SyncPage),
        (status = 404, description = "No such community in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 410, description = "The token cannot be served (`resync_required`): start a new initial sync", body = Problem, content_type = PROBLEM),
    ))]
pub async fn sync(
    bearer: Bearer,
    state: web::Data<crate::AppState>,
    query: Params<SyncQuery>,
) -> ApiResult<web::Json<SyncPage>> {
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid("limit", "out_of_range", format!("must be between 1 and {MAX_LIMIT}")));
    }
    let server = &state.config.server;
    let settings = Settings {
        limit: limit as usize,
        visit_days: server.sync_visit_days,
        retention_days: server.sync_retention_days,
    };
    let secret = state.jwt_secret.clone();
    let accounts = state.db.accounts().clone();
    // Authentication (from the account cache when it answers) and the page in one trip to the
    // database pool.
    let out = state
        .db
        .read(move |c| {
            let caller = bearer.authenticate(c, &accounts)?;
            if let Some(page) = nothing_new(c, &caller, &q, &secret, settings)? {
                return Ok(page);
            }
            store::in_snapshot(c, |c| page(c, &caller, &q, &secret, settings))
        })
        .await?;
    Ok(web::Json(out))
}

/// Applies what a device did offline, in order, each operation through the same rules as its
/// single endpoint, each with its own result (`applied`, `duplicate`, `conflict`, `rejected`):
/// one bad operation never fails the others. At most 500 operations a request (413).
#[utoipa::path(post, path = "/api/v1/sync/push", tag = "sync", operation_id = "sync_push",
    request_body = PushRequest, security(("bearer" = [])),
    responses(
        (status = 200, description = "One result per operation", body = PushResponse),
    ))]
pub async fn push(api: Api, body: Batch<PushRequest>) -> ApiResult<web::Json<PushResponse>> {
    let req = body.into_inner();
    push::check(&req)?;
    let policy = crate::ops::visits::Policy { max_age_days: api.state.config.server.visit_max_age_days };
    let out = api.write(move |c, caller| push::push(c, caller, &req, policy)).await?;
    Ok(web::Json(out))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/sync").route(web::get().to(sync)))
        .service(web::resource("/sync/push").route(web::post().to(push)));
}
