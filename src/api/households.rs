//! Households: `/households`, `/households/{id}`. The rules are in [`crate::ops::households`].

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::api::answer::{Api, View, rendered_json};
use crate::api::cached;
use crate::api::conditional::IfMatch;
use crate::api::input::{Body, Instant, Params};
use crate::api::pagination::{Page, PageQuery, parse_time_key, time_key};
use crate::api::validate::{clean, clean_optional, client_id, declared, done, done_with, phone};
use crate::auth::AuthUser;
use crate::auth::scope;
use crate::db::DbConn;
use crate::domain::text::{optional_lines, required_line};
use crate::domain::{RemovalReason, Suggestion, Tag, mask};
use crate::error::{ApiError, ApiResult, FieldError, PROBLEM_JSON as PROBLEM, Problem};
use crate::ops;
use crate::ops::households::{AddressEdit, HouseholdEdit, NewHousehold, Removal};
use crate::store::communities;
use crate::store::households::{self, After, HouseholdRow, ListFilter, Listed, Summarised};
use crate::store::suggestions::{self, KeptRow, KeptTag, Wanted};

#[derive(Serialize, Deserialize, ToSchema, Validate, Clone, PartialEq, Debug)]
#[serde(deny_unknown_fields)]
pub struct Address {
    #[schema(example = "3号楼", min_length = 1, max_length = 32)]
    #[validate(length(max = 32, code = "too_long"), custom(function = "required_line"))]
    pub building: String,
    #[schema(example = "2单元", min_length = 1, max_length = 32)]
    #[validate(length(max = 32, code = "too_long"), custom(function = "required_line"))]
    pub unit: String,
    #[schema(example = "301", min_length = 1, max_length = 32)]
    #[validate(length(max = 32, code = "too_long"), custom(function = "required_line"))]
    pub room: String,
}

#[derive(Serialize, ToSchema)]
pub struct HouseholdOut {
    pub id: String,
    pub grid_id: String,
    pub community_id: String,
    pub address: Address,
    #[schema(example = "张桂兰")]
    pub head_name: String,
    /// Masked, e.g. `138****8000`.
    pub phone: Option<String>,
    pub tag: Tag,
    /// Reason codes of the applied tag (see `/tag-reasons`).
    #[schema(value_type = crate::api::tags::ReasonCodes)]
    pub tag_reasons: Vec<String>,
    pub tag_note: Option<String>,
    pub tag_set_at: Option<DateTime<Utc>>,
    pub tag_set_by: Option<String>,
    /// When the tag is due for review (a date in the community's timezone).
    pub tag_review_due_on: Option<NaiveDate>,
    /// What the members' facts and the recorded reasons suggest; never applied by itself.
    pub suggested_tag: Tag,
    pub suggestion: Suggestion,
    pub notes: Option<String>,
    pub member_count: i32,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set when the household was removed (moved out, deceased, merged).
    pub removed_at: Option<DateTime<Utc>>,
    pub removed_reason: Option<RemovalReason>,
    pub removed_note: Option<String>,
}

/// A household as a list screen shows it (`GET /households?view=summary`): who and where, the
/// applied and the suggested tag, when the tag is due for review. Contact data, notes, the
/// suggestion's explanation and the tag's history are in the full view and `GET /households/{id}`.
#[derive(Serialize, ToSchema)]
pub struct HouseholdSummary {
    pub id: String,
    pub grid_id: String,
    pub community_id: String,
    pub address: Address,
    #[schema(example = "张桂兰")]
    pub head_name: String,
    pub tag: Tag,
    /// What the members' facts and the recorded reasons suggest (its explanation is in the full
    /// view).
    pub suggested_tag: Tag,
    /// When the tag is due for review (a date in the community's timezone).
    pub tag_review_due_on: Option<NaiveDate>,
    pub member_count: i32,
    pub version: i32,
    pub updated_at: DateTime<Utc>,
}

/// Responses for household rows: each household's suggestion as kept
/// ([`crate::store::suggestions`]), worked out from the members (one query for the page) where
/// the kept one does not hold on the community's own "today".
pub fn views(conn: &mut DbConn, rows: Vec<HouseholdRow>) -> ApiResult<Vec<HouseholdOut>> {
    let ids: Vec<String> = rows.iter().map(|h| h.id.clone()).collect();
    let mut kept = suggestions::kept(conn, &ids)?;
    let listed = rows.into_iter().map(|h| {
        let k = kept.remove(&h.id);
        (h, k)
    });
    listed_views(conn, listed.collect())
}

/// Responses for listed households, whose kept suggestions were read with them.
pub fn listed_views(conn: &mut DbConn, listed: Vec<Listed>) -> ApiResult<Vec<HouseholdOut>> {
    let suggested = with_suggestions(
        conn,
        listed,
        |h| (&h.id, &h.community_id),
        |h| Ok(h.tag_reasons.0.clone()),
        KeptRow::on,
        |s| s,
    )?;
    Ok(suggested
        .into_iter()
        .map(|(h, suggestion)| HouseholdOut {
            address: Address { building: h.building, unit: h.unit, room: h.room },
            phone: h.phone.as_deref().map(mask::phone),
            tag: h.tag,
            tag_reasons: h.tag_reasons.0,
            suggested_tag: suggestion.tag,
            suggestion,
            tag_set_at: h.tag_set_at.map(|t| t.and_utc()),
            removed_at: h.removed_at.map(|t| t.and_utc()),
            removed_reason: h.removed_reason,
            id: h.id,
            grid_id: h.grid_id,
            community_id: h.community_id,
            head_name: h.head_name,
            tag_note: h.tag_note,
            tag_set_by: h.tag_set_by,
            tag_review_due_on: h.tag_review_due_on,
            notes: h.notes,
            member_count: h.member_count,
            version: h.version,
            created_at: h.created_at.and_utc(),
            updated_at: h.updated_at.and_utc(),
            removed_note: h.removed_note,
        })
        .collect())
}

/// Summaries of listed households (`?view=summary`): the suggested tag without its explanation.
fn summary_views(conn: &mut DbConn, listed: Vec<Summarised>) -> ApiResult<Vec<HouseholdSummary>> {
    let suggested = with_suggestions(
        conn,
        listed,
        |h| (&h.id, &h.community_id),
        |h| {
            serde_json::from_str(&h.tag_reasons).map_err(|e| ApiError::internal(anyhow::anyhow!("stored reasons: {e}")))
        },
        KeptTag::on,
        |s| s.tag,
    )?;
    Ok(suggested
        .into_iter()
        .map(|(h, suggested_tag)| HouseholdSummary {
            address: Address { building: h.building, unit: h.unit, room: h.room },
            id: h.id,
            grid_id: h.grid_id,
            community_id: h.community_id,
            head_name: h.head_name,
            tag: h.tag,
            suggested_tag,
            tag_review_due_on: h.tag_review_due_on,
            member_count: h.member_count,
            version: h.version,
            updated_at: h.updated_at.and_utc(),
        })
        .collect())
}

/// Each listed row with its suggestion (`S`: the whole one or its tag): the kept one (`K`) where
/// it holds on the community's own "today" (`held`), otherwise worked out from the members — one
/// query for all the misses of a page. `of` names a row's id and community, `reasons` its
/// recorded reasons (asked for the misses only).
fn with_suggestions<R, K, S>(
    conn: &mut DbConn,
    listed: Vec<(R, Option<K>)>,
    of: impl Fn(&R) -> (&String, &String),
    reasons: impl Fn(&R) -> ApiResult<Vec<String>>,
    held: impl Fn(&K, NaiveDate) -> Option<S>,
    worked_out: impl Fn(Suggestion) -> S,
) -> ApiResult<Vec<(R, S)>> {
    let mut today: HashMap<String, NaiveDate> = HashMap::new();
    let mut pending = Vec::with_capacity(listed.len());
    for (row, kept) in listed {
        let community = of(&row).1;
        let day = match today.get(community) {
            Some(d) => *d,
            None => {
                let d = communities::today(conn, community)?;
                today.insert(community.clone(), d);
                d
            }
        };
        let found = kept.and_then(|k| held(&k, day));
        pending.push((row, day, found));
    }
    let missed: Vec<(&String, Vec<String>, NaiveDate)> = pending
        .iter()
        .filter(|(_, _, found)| found.is_none())
        .map(|(row, day, _)| Ok((of(row).0, reasons(row)?, *day)))
        .collect::<ApiResult<_>>()?;
    let mut worked = if missed.is_empty() {
        HashMap::new()
    } else {
        let wanted: Vec<Wanted> = missed.iter().map(|(id, reasons, day)| Wanted { id, reasons, day: *day }).collect();
        suggestions::compute(conn, &wanted)?
    };
    drop(missed);
    pending
        .into_iter()
        .map(|(row, _, found)| {
            let suggestion = match found {
                Some(s) => s,
                None => worked
                    .remove(of(&row).0)
                    .map(|(s, _)| worked_out(s))
                    .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no suggestion worked out for a household")))?,
            };
            Ok((row, suggestion))
        })
        .collect()
}

impl View for HouseholdRow {
    type Out = HouseholdOut;

    fn version(&self) -> Option<i32> {
        Some(self.version)
    }

    fn view(self, conn: &mut DbConn) -> ApiResult<HouseholdOut> {
        views(conn, vec![self])?.pop().ok_or_else(|| ApiError::internal(anyhow::anyhow!("empty view")))
    }

    fn views(rows: Vec<Self>, conn: &mut DbConn) -> ApiResult<Vec<HouseholdOut>> {
        views(conn, rows)
    }
}

impl View for Listed {
    type Out = HouseholdOut;

    fn version(&self) -> Option<i32> {
        Some(self.0.version)
    }

    fn view(self, conn: &mut DbConn) -> ApiResult<HouseholdOut> {
        Self::views(vec![self], conn)?.pop().ok_or_else(|| ApiError::internal(anyhow::anyhow!("empty view")))
    }

    fn views(rows: Vec<Self>, conn: &mut DbConn) -> ApiResult<Vec<HouseholdOut>> {
        listed_views(conn, rows)
    }
}

impl View for Summarised {
    type Out = HouseholdSummary;

    fn view(self, conn: &mut DbConn) -> ApiResult<HouseholdSummary> {
        Self::views(vec![self], conn)?.pop().ok_or_else(|| ApiError::internal(anyhow::anyhow!("empty view")))
    }

    fn views(rows: Vec<Self>, conn: &mut DbConn) -> ApiResult<Vec<HouseholdSummary>> {
        summary_views(conn, rows)
    }
}

/// The answer of `GET /households`: a page of [`HouseholdOut`], or of [`HouseholdSummary`] with
/// `view=summary` (`anyOf` the two named pages in the contract).
pub struct HouseholdsPage;

impl utoipa::PartialSchema for HouseholdsPage {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::AnyOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name(FULL_PAGE))
            .item(utoipa::openapi::Ref::from_schema_name(SUMMARY_PAGE))
            .description(Some("`Page_HouseholdOut`, or `Page_HouseholdSummary` with `view=summary`"))
            .into()
    }
}

impl ToSchema for HouseholdsPage {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        use utoipa::PartialSchema;
        schemas.push((FULL_PAGE.into(), Page::<HouseholdOut>::schema()));
        schemas.push((SUMMARY_PAGE.into(), Page::<HouseholdSummary>::schema()));
        schemas.push((HouseholdSummary::name().into(), HouseholdSummary::schema()));
        <HouseholdSummary as ToSchema>::schemas(schemas);
        <Page<HouseholdOut> as ToSchema>::schemas(schemas);
        <Page<HouseholdSummary> as ToSchema>::schemas(schemas);
    }
}

const FULL_PAGE: &str = "Page_HouseholdOut";
const SUMMARY_PAGE: &str = "Page_HouseholdSummary";

/// How much of each household a list gives.
#[derive(Deserialize, ToSchema, Clone, Copy, Default, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum ListView {
    /// Each household as `GET /households/{id}` gives it.
    #[default]
    Full,
    /// Each household as a [`HouseholdSummary`]: a list screen's columns, about half the bytes.
    Summary,
}

#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct CreateHousehold {
    /// Optional client-chosen UUID, so an offline client can retry safely: the same body again
    /// returns the stored household (200); a different body with the same id is 409.
    #[schema(format = Uuid, example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub id: Option<String>,
    /// A grid in the caller's scope.
    #[schema(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub grid_id: String,
    #[validate(nested)]
    pub address: Address,
    #[schema(example = "张桂兰", min_length = 1, max_length = 32)]
    #[validate(length(max = 32, code = "too_long"), custom(function = "required_line"))]
    pub head_name: String,
    /// A mainland mobile or a landline with area code; empty for none.
    #[schema(example = "13800138000", pattern = r"^(|1[3-9][0-9]{9}|(010|02[0-9]|0[3-9][0-9]{2})-?[0-9]{7,8})$")]
    pub phone: Option<String>,
    #[schema(example = "独居老人，子女在外地", max_length = 2000)]
    #[validate(length(max = 2000, code = "too_long"), custom(function = "optional_lines"))]
    pub notes: Option<String>,
}

impl CreateHousehold {
    pub(crate) fn checked(self) -> ApiResult<NewHousehold> {
        let id = client_id(self.id.as_deref())?;
        let mut errors = declared(&self);
        let phone = phone("phone", self.phone.as_deref(), &mut errors);
        done(errors)?;
        let a = &self.address;
        Ok(NewHousehold {
            id,
            grid_id: self.grid_id,
            address: ops::households::Address {
                building: clean(&a.building),
                unit: clean(&a.unit),
                room: clean(&a.room),
            },
            head_name: clean(&self.head_name),
            phone,
            notes: clean_optional(self.notes.as_deref()),
        })
    }
}

/// Registers a household (new households start green). Workers register households in their
/// own grids.
#[utoipa::path(post, path = "/api/v1/households", tag = "households", operation_id = "create_household",
    request_body = CreateHousehold, security(("bearer" = [])),
    responses(
        (status = 201, description = "Registered", body = HouseholdOut),
        (status = 200, description = "The caller registered this household with this id before: the stored household", body = HouseholdOut),
        (status = 409, description = "The id belongs to another record or another request, or the household it names has since left the caller's scope or been removed (`id_conflict`)", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid fields, or a grid outside the caller's scope (`grid_id`)", body = Problem, content_type = PROBLEM),
    ))]
pub async fn create(api: Api, body: Body<CreateHousehold>) -> ApiResult<HttpResponse> {
    let input = body.into_inner().checked()?;
    api.saved(move |c, caller| ops::households::register(c, caller, input)).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListHouseholds {
    #[param(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub grid_id: Option<String>,
    #[param(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub community_id: Option<String>,
    pub tag: Option<Tag>,
    /// Text search over the head's name and the address.
    #[param(example = "张")]
    pub q: Option<String>,
    /// `true`: only households whose tag review is due (today or earlier).
    pub review_due: Option<bool>,
    /// Only households changed at or after this time (RFC 3339), oldest change first.
    #[param(value_type = Option<DateTime<Utc>>)]
    pub updated_since: Option<Instant>,
    /// `summary`: each household as `HouseholdSummary` (a list screen's columns: no contact
    /// data, notes or the suggestion's explanation); `full` (the default): as
    /// `GET /households/{id}` gives it.
    #[param(inline)]
    pub view: Option<ListView>,
}

/// The filter of a list, narrowed to the caller's reach; `None` when it asks for a community
/// the caller does not see (an empty page).
fn within_reach(conn: &mut DbConn, caller: &AuthUser, q: &ListHouseholds) -> ApiResult<Option<ListFilter>> {
    let mut filter = ListFilter {
        community_id: q.community_id.clone(),
        grid_ids: q.grid_id.clone().map(|g| vec![g]),
        tag: q.tag,
        q: q.q.clone(),
        updated_since: q.updated_since.map(|t| t.0.naive_utc()),
        ..Default::default()
    };
    let bounds = scope::reach(conn, caller)?.bounds();
    if let Some(c) = bounds.community {
        if filter.community_id.as_ref().is_some_and(|f| *f != c) {
            return Ok(None);
        }
        filter.community_id = Some(c);
    }
    if let Some(ids) = bounds.communities {
        if filter.community_id.as_ref().is_some_and(|f| !ids.contains(f)) {
            return Ok(None);
        }
        filter.community_ids = Some(ids);
    }
    if let Some(mine) = bounds.grids {
        filter.grid_ids = Some(match &filter.grid_ids {
            Some(wanted) => wanted.iter().filter(|g| mine.contains(g)).cloned().collect(),
            None => mine,
        });
    }
    if q.review_due == Some(true) {
        filter.review_due_by = Some(communities::today_of_list(conn, filter.community_id.as_deref())?);
    }
    Ok(Some(filter))
}

/// Lists the households in the caller's scope (removed ones are left out), by id, or by time
/// of change with `updated_since`.
#[utoipa::path(get, path = "/api/v1/households", tag = "households", operation_id = "list_households",
    params(ListHouseholds, PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of households: in full, or summaries with `view=summary`", body = HouseholdsPage),
    ))]
pub async fn list(
    api: Api,
    req: HttpRequest,
    query: Params<ListHouseholds>,
    page: PageQuery,
) -> ApiResult<HttpResponse> {
    let (q, fetch) = (query.into_inner(), page.fetch()?);
    let by_update = q.updated_since.is_some();
    let after = match page.key(if by_update { 2 } else { 1 })? {
        None => None,
        Some(k) if by_update => Some(After::Updated(parse_time_key(&k[0])?, k[1].clone())),
        Some(mut k) => Some(After::Id(k.remove(0))),
    };
    let key =
        move |at: NaiveDateTime, id: &String| if by_update { vec![time_key(at), id.clone()] } else { vec![id.clone()] };
    let (asked, pages) = (cached::Asked::households(&req), api.state.pages.clone());
    // A kept page that holds is answered here, on the worker, when that needs no waiting (SQLite).
    if let Some(Ok(Some(answer))) = api.state.db.read_here(|c| pages.kept_here(c, &api.caller, &asked)) {
        return Ok(answer.respond());
    }
    let answer = api
        .read(move |c, caller| {
            pages.page(c, caller, asked, |c| {
                let after = after.as_ref();
                match q.view.unwrap_or_default() {
                    ListView::Full => rendered_json(c, caller, |c, caller| {
                        rows(c, caller, &q, after, fetch, households::list, |(h, _)| key(h.updated_at, &h.id))
                    }),
                    ListView::Summary => rendered_json(c, caller, |c, caller| {
                        rows(c, caller, &q, after, fetch, households::list_summaries, |(h, _)| key(h.updated_at, &h.id))
                    }),
                }
            })
        })
        .await?;
    Ok(answer.respond())
}

/// A page of the households `q` asks for in the caller's reach (the API's list and the
/// console's), read by `load` and cut with `key`.
pub(crate) fn rows<R>(
    c: &mut DbConn,
    caller: &AuthUser,
    q: &ListHouseholds,
    after: Option<&After>,
    fetch: i64,
    load: impl FnOnce(&mut DbConn, &ListFilter, Option<&After>, i64) -> diesel::QueryResult<Vec<R>>,
    key: impl Fn(&R) -> Vec<String>,
) -> ApiResult<Page<R>> {
    match within_reach(c, caller, q)? {
        Some(filter) => Ok(Page::of(load(c, &filter, after, fetch)?, fetch, key)),
        None => Ok(Page::empty()),
    }
}

/// One household; removed households stay readable here for secretaries and administrators.
#[utoipa::path(get, path = "/api/v1/households/{id}", tag = "households", operation_id = "get_household",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The household", body = HouseholdOut),
    ))]
pub async fn get(api: Api, id: web::Path<String>) -> ApiResult<HttpResponse> {
    api.current(move |c, caller| scope::household(c, caller, &id)).await
}

#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct PatchAddress {
    #[schema(example = "3号楼", min_length = 1, max_length = 32)]
    #[validate(length(max = 32, code = "too_long"), custom(function = "required_line"))]
    pub building: Option<String>,
    #[schema(example = "2单元", min_length = 1, max_length = 32)]
    #[validate(length(max = 32, code = "too_long"), custom(function = "required_line"))]
    pub unit: Option<String>,
    #[schema(example = "301", min_length = 1, max_length = 32)]
    #[validate(length(max = 32, code = "too_long"), custom(function = "required_line"))]
    pub room: Option<String>,
}

#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct PatchHousehold {
    /// Move to another grid of the same community (secretaries and administrators).
    #[schema(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub grid_id: Option<String>,
    #[validate(nested)]
    pub address: Option<PatchAddress>,
    #[schema(example = "张桂兰", min_length = 1, max_length = 32)]
    #[validate(length(max = 32, code = "too_long"), custom(function = "required_line"))]
    pub head_name: Option<String>,
    /// A new phone number, or `null` (or empty) to remove it.
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<String>, example = "13800138000",
        pattern = r"^(|1[3-9][0-9]{9}|(010|02[0-9]|0[3-9][0-9]{2})-?[0-9]{7,8})$")]
    pub phone: Option<Option<String>>,
    /// New notes, or `null` to clear them.
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<String>, example = "已搬至 5 号楼", max_length = 2000)]
    #[validate(length(max = 2000, code = "too_long"), custom(function = "optional_lines"))]
    pub notes: Option<Option<String>>,
}

impl PatchHousehold {
    pub(crate) fn checked(self) -> ApiResult<HouseholdEdit> {
        let mut errors = declared(&self);
        let phone = self.phone.map(|p| phone("phone", p.as_deref(), &mut errors));
        done(errors)?;
        let address = self.address.map(|a| AddressEdit {
            building: a.building.as_deref().map(clean),
            unit: a.unit.as_deref().map(clean),
            room: a.room.as_deref().map(clean),
        });
        Ok(HouseholdEdit {
            grid_id: self.grid_id,
            address,
            head_name: self.head_name.as_deref().map(clean),
            phone,
            notes: self.notes.map(|n| clean_optional(n.as_deref())),
        })
    }
}

/// Changes a household's details. With `If-Match`, a change based on an old version is refused
/// (412); two concurrent changes are applied one after the other, never lost.
#[utoipa::path(patch, path = "/api/v1/households/{id}", tag = "households", operation_id = "update_household",
    params(IfMatch), request_body = PatchHousehold, security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed household", body = HouseholdOut),
        (status = 403, description = "Grid workers do not move households between grids", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The household was removed: it takes no more changes (`household_removed`)", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid fields, or a `grid_id` that is no grid of the household's community in the caller's scope", body = Problem, content_type = PROBLEM),
    ))]
pub async fn patch(
    api: Api,
    if_match: IfMatch,
    id: web::Path<String>,
    body: Body<PatchHousehold>,
) -> ApiResult<HttpResponse> {
    let edit = body.into_inner().checked()?;
    api.updated(move |c, caller| ops::households::edit(c, caller, &id, if_match.version(), edit)).await
}

#[derive(Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
pub struct RemoveQuery {
    /// Why the household leaves.
    #[param(value_type = RemovalReason, required = true)]
    pub reason: Option<String>,
    #[param(example = "搬至外区", max_length = 500)]
    #[validate(length(max = 500, code = "too_long"), custom(function = "optional_lines"))]
    pub note: Option<String>,
}

impl RemoveQuery {
    pub fn checked(self) -> ApiResult<Removal> {
        let reason = match self.reason.as_deref() {
            None => Err(FieldError::new("reason", "required", "say why: moved_out, deceased, merged or other")),
            Some(r) => RemovalReason::parse(r).map_err(|e| FieldError::new("reason", "invalid", e.to_string())),
        };
        let reason = done_with(declared(&self), reason)?;
        Ok(Removal { reason, note: clean_optional(self.note.as_deref()) })
    }
}

/// Removes a household softly (secretaries and administrators): it leaves lists, its open
/// tasks are cancelled and its pending tag proposal with them, but it stays readable by id for
/// secretaries. Removing it again answers the removed household and changes nothing.
#[utoipa::path(delete, path = "/api/v1/households/{id}", tag = "households", operation_id = "remove_household",
    params(RemoveQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The removed household", body = HouseholdOut),
        (status = 403, description = "Grid workers do not remove households", body = Problem, content_type = PROBLEM),
        (status = 422, description = "No reason or an unknown one, or a note that breaks the text rule", body = Problem, content_type = PROBLEM),
    ))]
pub async fn remove(api: Api, id: web::Path<String>, query: Params<RemoveQuery>) -> ApiResult<web::Json<HouseholdOut>> {
    let removal = query.into_inner().checked()?;
    let out = api.written(move |c, caller| ops::households::remove(c, caller, &id, removal)).await?;
    Ok(web::Json(out))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/households").route(web::get().to(list)).route(web::post().to(create))).service(
        web::resource("/households/{id}")
            .route(web::get().to(get))
            .route(web::patch().to(patch))
            .route(web::delete().to(remove)),
    );
}
