//! The traffic light: `/tag-reasons`, `/households/{id}/tag-changes`, `/households/{id}/tag-history`,
//! `/tag-changes`, `/tag-changes/{id}`, `/tag-changes/{id}/approve` and `/reject`.
//!
//! A grid worker proposes a tag; a secretary (or an administrator) approves or rejects the
//! proposal, or sets a tag directly, which is recorded as an approved change. Every applied tag
//! goes through [`apply_tag`], in the transaction of the decision.

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Days, NaiveDateTime, Utc};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::conditional::{check_version, if_match};
use crate::api::input::{Body, Params};
use crate::api::pagination::{Page, decode_cursor, fetch_limit, page, parse_time_key, time_key};
use crate::api::validate::{notes, required_notes};
use crate::auth::AuthUser;
use crate::auth::scope::{self, Reach};
use crate::db::DbConn;
use crate::domain::{Role, Tag, TagChangeStatus, TagReason, catalogue, reason};
use crate::error::{ApiError, ApiResult, ErrorCode, FieldError, PROBLEM_JSON as PROBLEM, Problem};
use crate::store::JsonText;
use crate::store::audit::{self, Actor, Event};
use crate::store::households::{self, HouseholdRow};
use crate::store::tags::{self, ListFilter, ONE_PENDING_INDEX, TagChangeRow, TagFields};
use crate::store::{communities, new_id, now, plans};

/// Reason codes of the catalogue (`/tag-reasons`), each at most once: an enum in the OpenAPI
/// document, built from the catalogue itself so that the two cannot drift apart.
pub struct ReasonCodes;

impl utoipa::PartialSchema for ReasonCodes {
    fn schema() -> RefOr<Schema> {
        let code = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(catalogue().iter().map(|r| r.code)))
            .description(Some("A reason code of the catalogue (`/tag-reasons`)"));
        ArrayBuilder::new()
            .items(code)
            .unique_items(true)
            .description(Some("Reason codes (see `/tag-reasons`), each at most once"))
            .examples([serde_json::json!(["elderly_living_alone"])])
            .into()
    }
}

impl utoipa::ToSchema for ReasonCodes {}

/// Longest note on a proposal or a decision, in characters.
const NOTE_MAX: usize = 500;

/// The reason catalogue (the whole of it: it is short and fixed).
#[utoipa::path(get, path = "/api/v1/tag-reasons", tag = "tags", operation_id = "list_tag_reasons",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every reason, red ones first; `next_cursor` is always null", body = Page<TagReason>),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
    ))]
pub async fn reasons(_caller: AuthUser) -> web::Json<Page<TagReason>> {
    web::Json(Page { items: catalogue().to_vec(), next_cursor: None })
}

/// A tag change: a worker's proposal (`pending`, then `approved` or `rejected`), or a
/// secretary's direct setting (recorded as `approved` at once).
#[derive(Serialize, ToSchema, Debug)]
pub struct TagChangeOut {
    pub id: String,
    pub household_id: String,
    pub community_id: String,
    /// The household's grid when the change was proposed.
    pub grid_id: String,
    /// The household's tag before the change: when proposed, and once approved, the tag the
    /// approval actually replaced.
    pub from_tag: Tag,
    pub to_tag: Tag,
    /// Reason codes (see `/tag-reasons`), in catalogue order.
    #[schema(value_type = ReasonCodes)]
    pub reasons: Vec<String>,
    pub note: Option<String>,
    pub proposed_by: String,
    pub proposed_at: DateTime<Utc>,
    pub status: TagChangeStatus,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_note: Option<String>,
}

impl From<TagChangeRow> for TagChangeOut {
    fn from(r: TagChangeRow) -> Self {
        TagChangeOut {
            from_tag: r.from_tag,
            to_tag: r.to_tag,
            reasons: r.reasons(),
            status: r.status,
            proposed_at: r.proposed_at.and_utc(),
            decided_at: r.decided_at.map(|t| t.and_utc()),
            id: r.id,
            household_id: r.household_id,
            community_id: r.community_id,
            grid_id: r.grid_id,
            note: r.note,
            proposed_by: r.proposed_by,
            decided_by: r.decided_by,
            decision_note: r.decision_note,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeTagChange {
    #[schema(value_type = Tag)]
    pub to_tag: String,
    /// Reason codes from `/tag-reasons`, no repeats; at least one for red and yellow.
    #[serde(default)]
    #[schema(value_type = ReasonCodes)]
    pub reasons: Vec<String>,
    /// Up to 500 characters.
    #[schema(example = "老人独居，子女在外地", max_length = 500)]
    pub note: Option<String>,
}

/// A checked proposal.
struct Proposal {
    to_tag: Tag,
    /// In catalogue order.
    reasons: Vec<String>,
    note: Option<String>,
}

fn check_proposal(input: &ProposeTagChange) -> ApiResult<Proposal> {
    let mut errors = Vec::new();
    let to_tag =
        Tag::parse(&input.to_tag).map_err(|e| errors.push(FieldError::new("to_tag", "invalid", e.to_string()))).ok();
    let mut codes: Vec<&'static TagReason> = Vec::new();
    for (i, code) in input.reasons.iter().enumerate() {
        match reason(code) {
            None => errors.push(FieldError::new(
                format!("reasons[{i}]"),
                "unknown",
                format!("`{code}` is not a reason of the catalogue (see /tag-reasons)"),
            )),
            Some(r) if codes.iter().any(|c| c.code == r.code) => {
                errors.push(FieldError::new(format!("reasons[{i}]"), "duplicate", format!("`{code}` is listed twice")))
            }
            Some(r) => codes.push(r),
        }
    }
    if input.reasons.is_empty() && to_tag.is_some_and(|t| t != Tag::Green) {
        errors.push(FieldError::new("reasons", "required", "a red or yellow tag needs at least one reason"));
    }
    let note = notes("note", input.note.as_deref(), NOTE_MAX, &mut errors);
    match to_tag {
        Some(to_tag) if errors.is_empty() => {
            let reasons = catalogue()
                .iter()
                .filter(|r| codes.iter().any(|c| c.code == r.code))
                .map(|r| r.code.to_owned())
                .collect();
            Ok(Proposal { to_tag, reasons, note })
        }
        _ => Err(ApiError::Validation(errors)),
    }
}

/// The same tag with the same reasons would change nothing.
fn unchanged(current: &HouseholdRow, p: &Proposal) -> bool {
    let mut now_reasons = current.reasons();
    now_reasons.sort();
    let mut new_reasons = p.reasons.clone();
    new_reasons.sort();
    current.tag == p.to_tag && now_reasons == new_reasons
}

/// What an applied tag says: the tag, its reasons and note, and who decided it when.
pub struct Applied<'a> {
    pub to_tag: Tag,
    pub reasons: &'a [String],
    pub note: Option<&'a str>,
    pub tag_change_id: &'a str,
    pub decided_by: &'a str,
    pub at: NaiveDateTime,
}

/// Applies a tag to a household: the one place where a household's tag changes, used by direct
/// settings and by approvals, inside their transaction. Locks the household, writes the tag,
/// its reasons and note, who set it and when, and the review date (today in the community's
/// timezone + the tag's review interval in the community's plan), bumps the version,
/// re-establishes the task invariant and audits. Returns the tag replaced and the household as
/// it is now. Removed households are not re-tagged (409).
pub fn apply_tag(
    conn: &mut DbConn,
    actor: &Actor,
    household_id: &str,
    a: &Applied<'_>,
) -> ApiResult<(Tag, HouseholdRow)> {
    let current = households::find_for_update(conn, household_id)?.ok_or_else(|| ApiError::not_found("household"))?;
    if current.removed_at.is_some() {
        return Err(ApiError::conflict(
            ErrorCode::HouseholdRemoved,
            "the household has been removed; its tag can no longer change",
        ));
    }
    let from = current.tag;
    let tz = communities::find(conn, &current.community_id)?.map(|c| c.timezone).unwrap_or_default();
    let days = plans::review_interval_days(conn, &current.community_id, a.to_tag)?;
    let review_due_on = communities::today_in(&tz)
        .checked_add_days(Days::new(u64::from(days)))
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("review date out of range")))?;
    let reasons = serde_json::to_string(a.reasons).map_err(ApiError::internal)?;
    let fields = TagFields {
        tag: a.to_tag.as_str(),
        tag_reasons: &reasons,
        tag_note: a.note,
        tag_set_at: a.at,
        tag_set_by: a.decided_by,
        tag_review_due_on: review_due_on,
        version: current.version + 1,
        updated_at: a.at,
    };
    if !tags::set_household_tag(conn, household_id, current.version, &fields)? {
        return Err(ApiError::conflict(ErrorCode::ConcurrentChange, "the household changed meanwhile; try again"));
    }
    audit::record(
        conn,
        actor,
        Event {
            action: "household.tag_applied",
            entity_type: "household",
            entity_id: Some(household_id),
            community_id: Some(&current.community_id),
            summary: serde_json::json!({
                "tag_change_id": a.tag_change_id,
                "from": from.as_str(),
                "to": a.to_tag.as_str(),
                "reasons": a.reasons,
                "review_due_on": review_due_on,
                "version": current.version + 1,
            }),
        },
    )?;
    crate::store::tasks::household_changed(conn, household_id)?;
    let row = households::find(conn, household_id)?.ok_or_else(|| ApiError::not_found("household"))?;
    Ok((from, row))
}

/// Proposes a tag (grid workers: the change waits for a secretary, `pending`), or sets it at
/// once (secretaries and administrators: recorded as `approved` by the caller). A household
/// has at most one pending proposal. With `If-Match` (the household's ETag), a change based on
/// an old version of the household is refused (412).
#[utoipa::path(post, path = "/api/v1/households/{id}/tag-changes", tag = "tags", operation_id = "propose_tag_change",
    params(("id" = String, Path, description = "Household id"),
           ("If-Match" = Option<String>, Header, description = "The household ETag the change is based on")),
    request_body = ProposeTagChange, security(("bearer" = [])),
    responses(
        (status = 201, description = "Proposed (`pending`, grid workers) or applied (`approved`, secretaries and administrators)", body = TagChangeOut),
        (status = 400, description = "Malformed request", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such household in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The household already has a pending proposal, or has been removed", body = Problem, content_type = PROBLEM),
        (status = 412, description = "If-Match names an old version of the household", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Unknown tag or reason, note too long, or no change from the current tag and reasons", body = Problem, content_type = PROBLEM),
    ))]
pub async fn propose(
    state: web::Data<AppState>,
    caller: AuthUser,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body<ProposeTagChange>,
) -> ApiResult<HttpResponse> {
    let household_id = path.into_inner();
    let expected = if_match(&req)?;
    let p = check_proposal(&body.into_inner())?;
    let actor = caller.actor();
    let out = state
        .db
        .write(move |conn| {
            let current = scope::household_for_update(conn, &caller, &household_id)?;
            check_version(expected, current.version)?;
            if unchanged(&current, &p) {
                return Err(ApiError::invalid(
                    "to_tag",
                    "unchanged",
                    format!("the household is already {} with these reasons", current.tag),
                ));
            }
            let at = now();
            let mut row = TagChangeRow {
                id: new_id(),
                household_id: current.id.clone(),
                community_id: current.community_id.clone(),
                grid_id: current.grid_id.clone(),
                from_tag: current.tag,
                to_tag: p.to_tag,
                reasons: JsonText(p.reasons.clone()),
                note: p.note.clone(),
                proposed_by: caller.id.clone(),
                proposed_at: at,
                status: TagChangeStatus::Pending,
                decided_by: None,
                decided_at: None,
                decision_note: None,
            };
            if caller.role == Role::GridWorker {
                match tags::insert(conn, &row) {
                    Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info))
                        if info.constraint_name() == Some(ONE_PENDING_INDEX)
                            || info.message().contains("tag_changes.household_id") =>
                    {
                        return Err(ApiError::conflict(
                            ErrorCode::ProposalPending,
                            "this household already has a pending tag change; it must be approved or rejected \
                             before another is proposed",
                        ));
                    }
                    other => other?,
                }
                audit::record(
                    conn,
                    &actor,
                    Event {
                        action: "tag_change.proposed",
                        entity_type: "tag_change",
                        entity_id: Some(&row.id),
                        community_id: Some(&row.community_id),
                        summary: serde_json::json!({
                            "household_id": row.household_id,
                            "from": row.from_tag,
                            "to": row.to_tag,
                            "reasons": p.reasons,
                        }),
                    },
                )?;
                return Ok(TagChangeOut::from(row));
            }
            let applied = Applied {
                to_tag: p.to_tag,
                reasons: &p.reasons,
                note: p.note.as_deref(),
                tag_change_id: &row.id,
                decided_by: &caller.id,
                at,
            };
            let (from, _) = apply_tag(conn, &actor, &household_id, &applied)?;
            row.from_tag = from;
            row.status = TagChangeStatus::Approved;
            row.decided_by = Some(caller.id.clone());
            row.decided_at = Some(at);
            tags::insert(conn, &row)?;
            audit::record(
                conn,
                &actor,
                Event {
                    action: "tag_change.approved",
                    entity_type: "tag_change",
                    entity_id: Some(&row.id),
                    community_id: Some(&row.community_id),
                    summary: serde_json::json!({
                        "household_id": row.household_id,
                        "from": row.from_tag,
                        "to": row.to_tag,
                        "reasons": p.reasons,
                        "direct": true,
                    }),
                },
            )?;
            Ok(TagChangeOut::from(row))
        })
        .await?;
    Ok(HttpResponse::Created().json(out))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListTagChanges {
    pub status: Option<TagChangeStatus>,
    pub community_id: Option<String>,
    /// Changes of the households currently in this grid.
    pub grid_id: Option<String>,
    pub household_id: Option<String>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500, example = 50)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// Lists tag changes in the caller's scope, oldest proposal first (the review queue is
/// `?status=pending`): all for administrators, their community's for secretaries, those of
/// the households in their grids for grid workers.
#[utoipa::path(get, path = "/api/v1/tag-changes", tag = "tags", operation_id = "list_tag_changes",
    params(ListTagChanges), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of tag changes", body = Page<TagChangeOut>),
        (status = 400, description = "Malformed query (e.g. an unknown status)", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid limit or cursor", body = Problem, content_type = PROBLEM),
    ))]
pub async fn list(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: Params<ListTagChanges>,
) -> ApiResult<web::Json<Page<TagChangeOut>>> {
    let q = query.into_inner();
    let fetch = fetch_limit(q.limit)?;
    let after = decode_cursor(q.cursor.as_deref(), 1)?.map(|mut k| k.remove(0));
    let out = state
        .db
        .read(move |conn| {
            let mut filter = ListFilter {
                status: q.status.map(|s| s.as_str().to_owned()),
                community_id: q.community_id.clone(),
                grid_ids: q.grid_id.clone().map(|g| vec![g]),
                household_id: q.household_id.clone(),
                active_households_only: false,
            };
            let empty = || Ok(Page { items: vec![], next_cursor: None });
            match scope::reach(conn, &caller)? {
                Reach::Everything => {}
                Reach::Community(c) => {
                    if filter.community_id.as_ref().is_some_and(|f| *f != c) {
                        return empty();
                    }
                    filter.community_id = Some(c);
                }
                Reach::Grids { community_id, grid_ids } => {
                    if filter.community_id.as_ref().is_some_and(|f| *f != community_id) {
                        return empty();
                    }
                    let grids: Vec<String> = match &filter.grid_ids {
                        Some(wanted) => wanted.iter().filter(|g| grid_ids.contains(g)).cloned().collect(),
                        None => grid_ids,
                    };
                    filter.community_id = Some(community_id);
                    filter.grid_ids = Some(grids);
                    filter.active_households_only = true;
                }
            }
            let rows = tags::list(conn, &filter, after.as_deref(), fetch)?;
            Ok(page(rows, fetch, |r| vec![r.id.clone()], TagChangeOut::from))
        })
        .await?;
    Ok(web::Json(out))
}

/// A tag change the caller may see: one of a household in their scope.
fn tag_change_in_scope(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<(TagChangeRow, HouseholdRow)> {
    let row = tags::find(conn, id)?.ok_or_else(|| ApiError::not_found("tag change"))?;
    let household = scope::household(conn, caller, &row.household_id).map_err(|_| ApiError::not_found("tag change"))?;
    Ok((row, household))
}

/// One tag change.
#[utoipa::path(get, path = "/api/v1/tag-changes/{id}", tag = "tags", operation_id = "get_tag_change",
    params(("id" = String, Path, description = "Tag change id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The tag change", body = TagChangeOut),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such tag change in the caller's scope", body = Problem, content_type = PROBLEM),
    ))]
pub async fn get(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
) -> ApiResult<web::Json<TagChangeOut>> {
    let id = path.into_inner();
    let out = state.db.read(move |conn| Ok(TagChangeOut::from(tag_change_in_scope(conn, &caller, &id)?.0))).await?;
    Ok(web::Json(out))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Why; required to reject, up to 500 characters. When approving, the whole body may be
    /// omitted.
    #[schema(example = "已入户核实", max_length = 500)]
    pub note: Option<String>,
}

/// The body of a rejection (read as a [`Decision`] whose note is required).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    /// Why the change is rejected, up to 500 characters.
    #[schema(example = "经核实，老人与子女同住", min_length = 1, max_length = 500)]
    pub note: String,
}

/// The decision body: JSON, or nothing at all (an approval needs no note), or JSON `null`.
/// Whitespace alone is not JSON (400).
fn decision_body(req: &HttpRequest, body: &web::Bytes) -> actix_web::Result<Decision> {
    if body.is_empty() {
        return Ok(Decision::default());
    }
    let json = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        let essence = v.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
    });
    if !json {
        return Err(ApiError::UnsupportedMediaType("send the body as application/json".into()).into());
    }
    let value = serde_json::from_slice::<serde_json::Value>(body)
        .map_err(|e| crate::api::json_error(actix_web::error::JsonPayloadError::Deserialize(e), req))?;
    Ok(crate::api::input::from_json::<Option<Decision>>(value)?.unwrap_or_default())
}

/// Approves or rejects a pending change, in one transaction with the application of the tag.
fn decide(
    conn: &mut DbConn,
    caller: &AuthUser,
    id: &str,
    approve: bool,
    note: Option<String>,
) -> ApiResult<TagChangeOut> {
    let (found, _) = tag_change_in_scope(conn, caller, id)?;
    // The household first, then the change: the order every writer of tag changes takes, so
    // two decisions (or a decision and a proposal) queue instead of deadlocking.
    let household =
        households::find_for_update(conn, &found.household_id)?.ok_or_else(|| ApiError::not_found("tag change"))?;
    let row = tags::find(conn, id)?.ok_or_else(|| ApiError::not_found("tag change"))?;
    if row.status != TagChangeStatus::Pending {
        return Err(ApiError::conflict(
            ErrorCode::AlreadyDecided,
            format!("the tag change has already been {}", row.status),
        ));
    }
    // The rule of proposing holds for deciding: applying what the household already has (a
    // secretary set the same tag and reasons meanwhile) would write an empty history entry and
    // restart the review period. Such a proposal is rejected, with a note.
    if approve {
        let proposal = Proposal { to_tag: row.to_tag, reasons: row.reasons(), note: None };
        if unchanged(&household, &proposal) {
            return Err(ApiError::invalid(
                "to_tag",
                "unchanged",
                format!("the household is already {} with these reasons; reject the proposal instead", household.tag),
            ));
        }
    }
    let actor = caller.actor();
    let at = now();
    let reasons = row.reasons();
    let from = if approve {
        let to_tag = row.to_tag;
        let applied = Applied {
            to_tag,
            reasons: &reasons,
            note: row.note.as_deref(),
            tag_change_id: &row.id,
            decided_by: &caller.id,
            at,
        };
        apply_tag(conn, &actor, &row.household_id, &applied)?.0
    } else {
        row.from_tag
    };
    if !tags::decide(conn, id, approve, &caller.id, at, note.as_deref(), from)? {
        return Err(ApiError::conflict(ErrorCode::AlreadyDecided, "the tag change was decided meanwhile"));
    }
    audit::record(
        conn,
        &actor,
        Event {
            action: if approve { "tag_change.approved" } else { "tag_change.rejected" },
            entity_type: "tag_change",
            entity_id: Some(id),
            community_id: Some(&row.community_id),
            summary: serde_json::json!({
                "household_id": row.household_id,
                "from": from,
                "to": row.to_tag,
                "reasons": reasons,
                "note": note,
                "direct": false,
            }),
        },
    )?;
    let row = tags::find(conn, id)?.ok_or_else(|| ApiError::not_found("tag change"))?;
    Ok(TagChangeOut::from(row))
}

/// Approves a pending proposal and applies its tag (secretaries of the community and
/// administrators). The body may be omitted.
#[utoipa::path(post, path = "/api/v1/tag-changes/{id}/approve", tag = "tags", operation_id = "approve_tag_change",
    params(("id" = String, Path, description = "Tag change id")),
    request_body(content = Option<Decision>, description = "An optional note; the body may be omitted"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Approved and applied", body = TagChangeOut),
        (status = 400, description = "Malformed request", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Grid workers do not decide tag changes", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such tag change in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The change is no longer pending, or the household has been removed", body = Problem, content_type = PROBLEM),
        (status = 415, description = "A body that is not JSON", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Note too long, or the household already has the proposed tag and reasons", body = Problem, content_type = PROBLEM),
    ))]
pub async fn approve(
    state: web::Data<AppState>,
    caller: AuthUser,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> actix_web::Result<web::Json<TagChangeOut>> {
    caller.require(&[Role::Admin, Role::Secretary])?;
    let input = decision_body(&req, &body)?;
    let mut errors = Vec::new();
    let note = notes("note", input.note.as_deref(), NOTE_MAX, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors).into());
    }
    let id = path.into_inner();
    let out = state.db.write(move |conn| decide(conn, &caller, &id, true, note)).await?;
    Ok(web::Json(out))
}

/// Rejects a pending proposal, saying why; the household keeps its tag (secretaries of the
/// community and administrators).
#[utoipa::path(post, path = "/api/v1/tag-changes/{id}/reject", tag = "tags", operation_id = "reject_tag_change",
    params(("id" = String, Path, description = "Tag change id")),
    request_body(content = Rejection, description = "The note is required"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Rejected", body = TagChangeOut),
        (status = 400, description = "Malformed request", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Grid workers do not decide tag changes", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such tag change in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The change is no longer pending", body = Problem, content_type = PROBLEM),
        (status = 415, description = "A body that is not JSON", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Missing or too long note", body = Problem, content_type = PROBLEM),
    ))]
pub async fn reject(
    state: web::Data<AppState>,
    caller: AuthUser,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> actix_web::Result<web::Json<TagChangeOut>> {
    caller.require(&[Role::Admin, Role::Secretary])?;
    let input = decision_body(&req, &body)?;
    let mut errors = Vec::new();
    let note = match input.note.as_deref() {
        None => {
            errors.push(FieldError::new("note", "required", "say why the change is rejected"));
            None
        }
        Some(n) => Some(required_notes("note", n, NOTE_MAX, &mut errors)),
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors).into());
    }
    let id = path.into_inner();
    let out = state.db.write(move |conn| decide(conn, &caller, &id, false, note)).await?;
    Ok(web::Json(out))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500, example = 50)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// The household's tag history: the applied (approved) changes, newest first, each with the
/// tag it replaced, the tag set, the reasons and note, who proposed and who decided it, when.
#[utoipa::path(get, path = "/api/v1/households/{id}/tag-history", tag = "tags", operation_id = "tag_history",
    params(("id" = String, Path, description = "Household id"), HistoryQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of applied changes, newest first", body = Page<TagChangeOut>),
        (status = 400, description = "Malformed query", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such household in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid limit or cursor", body = Problem, content_type = PROBLEM),
    ))]
pub async fn history(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
    query: Params<HistoryQuery>,
) -> ApiResult<web::Json<Page<TagChangeOut>>> {
    let household_id = path.into_inner();
    let q = query.into_inner();
    let fetch = fetch_limit(q.limit)?;
    let after = match decode_cursor(q.cursor.as_deref(), 2)? {
        None => None,
        Some(mut k) => {
            let at = parse_time_key(&k[0])?;
            Some((at, k.remove(1)))
        }
    };
    let out = state
        .db
        .read(move |conn| {
            scope::household(conn, &caller, &household_id)?;
            let rows = tags::history(conn, &household_id, after, fetch)?;
            let key = |r: &TagChangeRow| {
                let at = r.decided_at.unwrap_or(r.proposed_at);
                vec![time_key(at), r.id.clone()]
            };
            Ok(page(rows, fetch, key, TagChangeOut::from))
        })
        .await?;
    Ok(web::Json(out))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/tag-reasons").route(web::get().to(reasons)))
        .service(web::resource("/households/{id}/tag-changes").route(web::post().to(propose)))
        .service(web::resource("/households/{id}/tag-history").route(web::get().to(history)))
        .service(web::resource("/tag-changes").route(web::get().to(list)))
        .service(web::resource("/tag-changes/{id}").route(web::get().to(get)))
        .service(web::resource("/tag-changes/{id}/approve").route(web::post().to(approve)))
        .service(web::resource("/tag-changes/{id}/reject").route(web::post().to(reject)));
}
