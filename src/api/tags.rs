//! The traffic light: `/tag-reasons`, `/households/{id}/tag-changes`, `/households/{id}/tag-history`,
//! `/tag-changes`, `/tag-changes/{id}`, `/tag-changes/{id}/approve` and `/reject`. The rules are
//! in [`crate::ops::tags`].
//!
//! A grid worker proposes a tag; a secretary (or an administrator) approves or rejects the
//! proposal, or sets a tag directly, which is recorded as an approved change.

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::api::answer::{Api, view_from};
use crate::api::conditional::IfMatch;
use crate::api::input::{Body, Params, from_json};
use crate::api::pagination::{Page, PageQuery, parse_time_key, time_key};
use crate::api::validate::{clean, clean_optional, declared, done};
use crate::auth::AuthUser;
use crate::auth::scope::{self, Reach};
use crate::db::DbConn;
use crate::domain::text::{optional_lines, required_lines};
use crate::domain::{Tag, TagChangeStatus, TagReason, catalogue, reason};
use crate::error::{ApiError, ApiResult, FieldError, PROBLEM_JSON as PROBLEM, Problem};
use crate::ops;
use crate::ops::tags::Proposal;
use crate::store::tags::{self, ListFilter, TagChangeRow};

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

/// The reason catalogue (the whole of it: it is short and fixed).
#[utoipa::path(get, path = "/api/v1/tag-reasons", tag = "tags", operation_id = "list_tag_reasons",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every reason, red ones first; `next_cursor` is always null", body = Page<TagReason>),
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

view_from!(TagChangeRow => TagChangeOut);

#[derive(Deserialize, ToSchema, Validate)]
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
    #[validate(length(max = 500, code = "too_long"), custom(function = "optional_lines"))]
    pub note: Option<String>,
}

/// Reason codes as stored: codes of the catalogue, in its order; an unknown or repeated code is
/// a field error naming its place in the list.
fn catalogued(codes: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    let mut known: Vec<&'static TagReason> = Vec::new();
    for (i, code) in codes.iter().enumerate() {
        match reason(code) {
            None => errors.push(FieldError::new(
                format!("reasons[{i}]"),
                "unknown",
                format!("`{code}` is not a reason of the catalogue (see /tag-reasons)"),
            )),
            Some(r) if known.iter().any(|k| k.code == r.code) => {
                errors.push(FieldError::new(format!("reasons[{i}]"), "duplicate", format!("`{code}` is listed twice")))
            }
            Some(r) => known.push(r),
        }
    }
    catalogue().iter().filter(|r| known.iter().any(|k| k.code == r.code)).map(|r| r.code.to_owned()).collect()
}

impl ProposeTagChange {
    pub(crate) fn checked(self) -> ApiResult<Proposal> {
        let mut errors = Vec::new();
        let to_tag =
            Tag::parse(&self.to_tag).map_err(|e| errors.push(FieldError::new("to_tag", "invalid", e.to_string()))).ok();
        let reasons = catalogued(&self.reasons, &mut errors);
        if self.reasons.is_empty() && to_tag.is_some_and(|t| t != Tag::Green) {
            errors.push(FieldError::new("reasons", "required", "a red or yellow tag needs at least one reason"));
        }
        errors.extend(declared(&self));
        match to_tag {
            Some(to_tag) if errors.is_empty() => {
                Ok(Proposal { to_tag, reasons, note: clean_optional(self.note.as_deref()) })
            }
            _ => Err(ApiError::Validation(errors)),
        }
    }
}

/// Proposes a tag (grid workers: the change waits for a secretary, `pending`), or sets it at
/// once (secretaries and administrators: recorded as `approved` by the caller). A household
/// has at most one pending proposal. With `If-Match` (the household's ETag), a change based on
/// an old version of the household is refused (412).
#[utoipa::path(post, path = "/api/v1/households/{id}/tag-changes", tag = "tags", operation_id = "propose_tag_change",
    params(IfMatch), request_body = ProposeTagChange, security(("bearer" = [])),
    responses(
        (status = 201, description = "Proposed (`pending`, grid workers) or applied (`approved`, secretaries and administrators)", body = TagChangeOut),
        (status = 409, description = "The household already has a pending proposal (`proposal_pending`), or has been removed (`household_removed`)", body = Problem, content_type = PROBLEM),
        (status = 412, description = "If-Match names an old version of the household", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Unknown tag or reason, note too long, or no change from the current tag and reasons", body = Problem, content_type = PROBLEM),
    ))]
pub async fn propose(
    api: Api,
    if_match: IfMatch,
    household_id: web::Path<String>,
    body: Body<ProposeTagChange>,
) -> ApiResult<HttpResponse> {
    let proposal = body.into_inner().checked()?;
    api.created(move |c, caller| ops::tags::propose(c, caller, &household_id, if_match.version(), proposal)).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListTagChanges {
    pub status: Option<TagChangeStatus>,
    pub community_id: Option<String>,
    /// Changes of the households currently in this grid.
    pub grid_id: Option<String>,
    pub household_id: Option<String>,
}

/// The filter of a list narrowed to what the caller may see; `None` when that is nothing.
fn within_reach(mut filter: ListFilter, reach: Reach) -> Option<ListFilter> {
    let elsewhere = |community: &str| filter.community_id.as_ref().is_some_and(|f| f != community);
    match reach {
        Reach::Everything => {}
        Reach::Community(c) => {
            if elsewhere(&c) {
                return None;
            }
            filter.community_id = Some(c);
        }
        Reach::Communities(ids) => {
            if filter.community_id.as_ref().is_some_and(|f| !ids.contains(f)) {
                return None;
            }
            filter.community_ids = Some(ids);
        }
        Reach::Grids { community_id, grid_ids } => {
            if elsewhere(&community_id) {
                return None;
            }
            let grids = match &filter.grid_ids {
                Some(wanted) => wanted.iter().filter(|g| grid_ids.contains(g)).cloned().collect(),
                None => grid_ids,
            };
            filter.community_id = Some(community_id);
            filter.grid_ids = Some(grids);
            filter.active_households_only = true;
        }
    }
    Some(filter)
}

/// Lists tag changes in the caller's scope, oldest proposal first (the review queue is
/// `?status=pending`): all for administrators, their community's for secretaries, those of
/// the households in their grids for grid workers.
#[utoipa::path(get, path = "/api/v1/tag-changes", tag = "tags", operation_id = "list_tag_changes",
    params(ListTagChanges, PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of tag changes", body = Page<TagChangeOut>),
    ))]
pub async fn list(
    api: Api,
    query: Params<ListTagChanges>,
    page: PageQuery,
) -> ApiResult<web::Json<Page<TagChangeOut>>> {
    let (q, fetch, after) = (query.into_inner(), page.fetch()?, page.after_id()?);
    let filter = ListFilter {
        status: q.status,
        community_id: q.community_id,
        grid_ids: q.grid_id.map(|g| vec![g]),
        household_id: q.household_id,
        active_households_only: false,
        community_ids: None,
    };
    api.listed(move |c, caller| changes(c, caller, filter, after.as_deref(), fetch)).await
}

/// A page of the tag changes `filter` asks for, narrowed to the caller's reach (the API's list
/// and the console's review queue).
pub(crate) fn changes(
    c: &mut DbConn,
    caller: &AuthUser,
    filter: ListFilter,
    after: Option<&str>,
    fetch: i64,
) -> ApiResult<Page<TagChangeRow>> {
    match within_reach(filter, scope::reach(c, caller)?) {
        Some(filter) => Ok(Page::of(tags::list(c, &filter, after, fetch)?, fetch, |r| vec![r.id.clone()])),
        None => Ok(Page::empty()),
    }
}

/// One tag change.
#[utoipa::path(get, path = "/api/v1/tag-changes/{id}", tag = "tags", operation_id = "get_tag_change",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tag change", body = TagChangeOut),
    ))]
pub async fn get(api: Api, id: web::Path<String>) -> ApiResult<HttpResponse> {
    api.current(move |c, caller| scope::tag_change(c, caller, &id)).await
}

#[derive(Deserialize, ToSchema, Validate, Default)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Why; required to reject, up to 500 characters. When approving, the whole body may be
    /// omitted.
    #[schema(example = "已入户核实", max_length = 500)]
    #[validate(length(max = 500, code = "too_long"), custom(function = "optional_lines"))]
    pub note: Option<String>,
}

impl Decision {
    pub(crate) fn checked(self) -> ApiResult<ops::tags::Decision> {
        done(declared(&self))?;
        Ok(ops::tags::Decision::Approve { note: clean_optional(self.note.as_deref()) })
    }
}

/// The body of a rejection.
#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    /// Why the change is rejected, up to 500 characters.
    #[schema(example = "经核实，老人与子女同住", min_length = 1, max_length = 500)]
    #[validate(length(max = 500, code = "too_long"), custom(function = "required_lines"))]
    pub note: String,
}

impl Rejection {
    /// A rejection without a body says nothing: the note is missing.
    pub(crate) fn checked(body: Option<Self>) -> ApiResult<ops::tags::Decision> {
        let r = body.ok_or_else(|| ApiError::invalid("note", "required", "say why the change is rejected"))?;
        done(declared(&r))?;
        Ok(ops::tags::Decision::Reject { note: clean(&r.note) })
    }
}

/// A decision body: JSON, or nothing at all, or JSON `null` (both `None`: an approval needs
/// no note). Whitespace alone is not JSON (400).
fn optional_body<T: DeserializeOwned>(req: &HttpRequest, body: &web::Bytes) -> ApiResult<Option<T>> {
    if body.is_empty() {
        return Ok(None);
    }
    let json = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        let essence = v.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
    });
    if !json {
        return Err(ApiError::UnsupportedMediaType("send the body as application/json".into()));
    }
    let value = serde_json::from_slice::<serde_json::Value>(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    from_json::<Option<T>>(value)
}

/// Approves a pending proposal and applies its tag (secretaries of the community and
/// administrators). The body may be omitted.
#[utoipa::path(post, path = "/api/v1/tag-changes/{id}/approve", tag = "tags", operation_id = "approve_tag_change",
    request_body(content = Option<Decision>, description = "An optional note; the body may be omitted"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Approved and applied", body = TagChangeOut),
        (status = 403, description = "Grid workers do not decide tag changes", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The change is no longer pending (`already_decided`), or the household has been removed (`household_removed`)", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Note too long, or the household already has the proposed tag and reasons", body = Problem, content_type = PROBLEM),
    ))]
pub async fn approve(api: Api, req: HttpRequest, id: web::Path<String>, body: web::Bytes) -> ApiResult<HttpResponse> {
    let decision = optional_body::<Decision>(&req, &body)?.unwrap_or_default().checked()?;
    api.updated(move |c, caller| ops::tags::decide(c, caller, &id, decision)).await
}

/// Rejects a pending proposal, saying why; the household keeps its tag (secretaries of the
/// community and administrators).
#[utoipa::path(post, path = "/api/v1/tag-changes/{id}/reject", tag = "tags", operation_id = "reject_tag_change",
    request_body(content = Rejection, description = "The note is required"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Rejected", body = TagChangeOut),
        (status = 403, description = "Grid workers do not decide tag changes", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The change is no longer pending (`already_decided`)", body = Problem, content_type = PROBLEM),
    ))]
pub async fn reject(api: Api, req: HttpRequest, id: web::Path<String>, body: web::Bytes) -> ApiResult<HttpResponse> {
    let decision = Rejection::checked(optional_body::<Rejection>(&req, &body)?)?;
    api.updated(move |c, caller| ops::tags::decide(c, caller, &id, decision)).await
}

/// The household's tag history: the applied (approved) changes, newest first, each with the
/// tag it replaced, the tag set, the reasons and note, who proposed and who decided it, when.
#[utoipa::path(get, path = "/api/v1/households/{id}/tag-history", tag = "tags", operation_id = "tag_history",
    params(PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of applied changes, newest first", body = Page<TagChangeOut>),
    ))]
pub async fn history(
    api: Api,
    household_id: web::Path<String>,
    page: PageQuery,
) -> ApiResult<web::Json<Page<TagChangeOut>>> {
    let fetch = page.fetch()?;
    let after = page.after_pair(parse_time_key)?;
    api.listed(move |c, caller| {
        scope::household(c, caller, &household_id)?;
        let rows = tags::history(c, &household_id, after, fetch)?;
        Ok(Page::of(rows, fetch, |r| vec![time_key(r.decided_at.unwrap_or(r.proposed_at)), r.id.clone()]))
    })
    .await
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
