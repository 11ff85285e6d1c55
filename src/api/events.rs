//! The event feed for third-party apps: `GET /events` (docs/events.md). The same events go to
//! webhook subscriptions (`/webhooks`, src/webhooks).

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::answer::Api;
use crate::api::input::Params;
use crate::auth::AuthUser;
use crate::auth::scope::{self, Reach};
use crate::db::DbConn;
use crate::error::{ApiError, ApiResult, ErrorCode, PROBLEM_JSON as PROBLEM, Problem};
use crate::store::events::{self as store, EventRow, EventScope, TYPES};

/// The kinds of event (docs/events.md lists when each happens and its `data`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum EventType {
    #[serde(rename = "household.registered")]
    HouseholdRegistered,
    #[serde(rename = "household.tag_changed")]
    HouseholdTagChanged,
    #[serde(rename = "household.moved")]
    HouseholdMoved,
    #[serde(rename = "household.removed")]
    HouseholdRemoved,
    #[serde(rename = "tag_change.proposed")]
    TagChangeProposed,
    #[serde(rename = "tag_change.decided")]
    TagChangeDecided,
    #[serde(rename = "task.reassigned")]
    TaskReassigned,
    #[serde(rename = "task.overdue")]
    TaskOverdue,
    #[serde(rename = "visit.recorded")]
    VisitRecorded,
    #[serde(rename = "review.due")]
    ReviewDue,
}

/// One event: what happened, where, to which record — ids, tags and codes only, never a name, an
/// ID number, a phone or a note.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    /// Increasing in the order the changes were committed; the key to de-duplicate deliveries
    /// and the `after` of the next read.
    #[schema(example = 1042)]
    pub id: i64,
    #[serde(rename = "type")]
    #[schema(value_type = EventType, example = "household.tag_changed")]
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    pub community_id: Option<String>,
    /// The grid the record is in (after a move, the new one; `data` names both).
    pub grid_id: Option<String>,
    pub household_id: Option<String>,
    /// What kind of record it is about: `household`, `tag_change`, `task`, `visit`.
    #[schema(example = "household")]
    pub entity: String,
    pub entity_id: String,
    /// The type's details, e.g. `{"from": "yellow", "to": "red"}` (docs/events.md lists them).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<EventRow> for EventOut {
    fn from(e: EventRow) -> Self {
        let data = e
            .detail
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
        EventOut {
            id: e.id,
            kind: e.event,
            occurred_at: e.at.and_utc(),
            community_id: e.community_id,
            grid_id: e.grid_id,
            household_id: e.household_id,
            entity: e.entity,
            entity_id: e.entity_id,
            data,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// The last event id already read (`next_after` of the previous answer); `0` or none: from
    /// the oldest event kept.
    #[param(minimum = 0, example = 1041)]
    pub after: Option<i64>,
    /// Only these types, comma-separated (e.g. `household.tag_changed,task.overdue`).
    #[param(
        example = "household.tag_changed,task.overdue",
        pattern = r"^((household\.(registered|tag_changed|moved|removed)|tag_change\.(proposed|decided)|task\.(reassigned|overdue)|visit\.recorded|review\.due)(,(household\.(registered|tag_changed|moved|removed)|tag_change\.(proposed|decided)|task\.(reassigned|overdue)|visit\.recorded|review\.due))*)?$"
    )]
    pub types: Option<String>,
    /// Events per answer, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000, example = 100)]
    pub limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventOut>,
    /// Pass as `after` next time. Past the last item when the feed skipped events the caller
    /// does not see; equal to `after` when there was nothing new.
    #[schema(example = 1042)]
    pub next_after: i64,
    /// More events follow at once (ask again without waiting).
    pub more: bool,
}

/// The event types a query names (`None`: all), each checked.
pub fn parse_types(field: &str, text: Option<&str>) -> ApiResult<Option<Vec<String>>> {
    let Some(text) = text.filter(|t| !t.is_empty()) else { return Ok(None) };
    let mut types = Vec::new();
    for t in text.split(',') {
        if !TYPES.contains(&t) {
            return Err(ApiError::invalid(
                field,
                "unknown_type",
                format!("must be event types of: {}", TYPES.join(", ")),
            ));
        }
        if !types.iter().any(|k| k == t) {
            types.push(t.to_owned());
        }
    }
    Ok(Some(types))
}

/// Whose events a caller sees: its reach.
pub fn event_scope(conn: &mut DbConn, caller: &AuthUser) -> ApiResult<EventScope> {
    Ok(match scope::reach(conn, caller)? {
        Reach::Everything => EventScope::All,
        Reach::Community(c) => EventScope::Communities(vec![c]),
        Reach::Communities(ids) => EventScope::Communities(ids),
        Reach::Grids { community_id, grid_ids } => EventScope::Grids { community_id, grid_ids },
    })
}

/// Reads the events after `after` in `scope`: up to `limit`, and where the next read starts.
pub fn read_events(
    conn: &mut DbConn,
    scope: &EventScope,
    types: Option<&[String]>,
    after: i64,
    limit: i64,
) -> ApiResult<(Vec<EventRow>, i64, bool)> {
    crate::store::sync::in_snapshot(conn, |c| {
        if after > 0 && after < store::pruned_through(c)? {
            return Err(ApiError::Gone(
                ErrorCode::EventsPruned,
                "events after this id were pruned with the change log (older than the retention); \
                 read from the oldest kept with after=0"
                    .into(),
            ));
        }
        // Every event up to `high` is visible in this snapshot: a read that found fewer than it
        // asked for saw all of them.
        let high = store::last_id(c)?;
        let mut rows = store::after(c, scope, types, after, limit + 1)?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = match rows.last() {
            Some(last) if more => last.id,
            _ => high.max(after),
        };
        Ok((rows, next, more))
    })
}

/// The events after `after` the caller may see, oldest first: a household registered, moved,
/// removed or re-tagged, a tag proposal made or decided, a task reassigned or overdue, a visit
/// recorded, a tag review due. Scoped like every list (a grid worker: its grids). Kept as long
/// as the sync change log (`GRIDLIGHT_SYNC_RETENTION_DAYS`).
#[utoipa::path(get, path = "/api/v1/events", tag = "events", operation_id = "list_events",
    params(EventQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The events after `after`, oldest first", body = EventPage),
        (status = 410, description = "`events_pruned`: events after `after` are no longer kept", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn list(api: Api, query: Params<EventQuery>) -> ApiResult<web::Json<EventPage>> {
    let q = query.into_inner();
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::invalid("after", "out_of_range", "must be 0 or more"));
    }
    let limit = i64::from(q.limit.unwrap_or(100));
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "out_of_range", "must be between 1 and 1000"));
    }
    let types = parse_types("types", q.types.as_deref())?;
    // Number what committed since (PostgreSQL), so a poll sees the latest events.
    if api.state.db.read(|c| Ok(store::unsequenced(c)?)).await? {
        api.state.db.write(|c| Ok(store::sequence(c, false)?)).await?;
    }
    let (rows, next_after, more) = api
        .read(move |c, caller| {
            let scope = event_scope(c, caller)?;
            read_events(c, &scope, types.as_deref(), after, limit)
        })
        .await?;
    Ok(web::Json(EventPage { items: rows.into_iter().map(EventOut::from).collect(), next_after, more }))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/events").route(web::get().to(list)));
}
