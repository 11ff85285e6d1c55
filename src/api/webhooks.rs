//! Webhook subscriptions: `/webhooks` (docs/events.md). The rules are in
//! [`crate::ops::webhooks`]; delivery in [`crate::webhooks`].

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::api::answer::{Api, View};
use crate::api::conditional::IfMatch;
use crate::api::input::{Body, Params};
use crate::api::pagination::{Page, PageQuery};
use crate::api::validate::{clean_optional, declared, done};
use crate::db::DbConn;
use crate::error::{ApiError, ApiResult, FieldError, PROBLEM_JSON as PROBLEM, Problem};
use crate::ops::webhooks::{self as ops, Edit, NewSubscription};
use crate::store::events::TYPES;
use crate::store::webhooks::{self as store, DeadLetterRow, DeliveryRow, WebhookRow};
use crate::webhooks::guard::check_url;

/// A subscription as answered.
#[derive(Serialize, ToSchema)]
pub struct WebhookOut {
    pub id: String,
    /// Where deliveries are POSTed.
    #[schema(example = "https://hotline.example.gov.cn/gridlight/events")]
    pub url: String,
    /// The event types delivered; empty: every type.
    #[schema(value_type = Vec<crate::api::events::EventType>, example = json!(["household.tag_changed", "task.overdue"]))]
    pub types: Vec<String>,
    /// Whose events: one community's, or (`null`, an administrator's subscription) every one's.
    pub community_id: Option<String>,
    pub active: bool,
    #[schema(example = "12345 热线工单系统")]
    pub description: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
    pub delivery: DeliveryState,
    /// The signing secret: only in the answers to creating the subscription and rotating its
    /// secret, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "whsec_3q2-7wEJ0bKd9k1fQ0mX1fX2r0Yq8n3fJ4GJrQe0w9I")]
    pub secret: Option<String>,
}

/// How delivery stands.
#[derive(Serialize, ToSchema)]
pub struct DeliveryState {
    /// The last event delivered (or parked); the next delivery is the first after it.
    pub last_event_id: i64,
    /// Failed attempts at the next event so far.
    pub attempts: i32,
    /// Since when every attempt failed (`null`: the last one succeeded).
    pub failing_since: Option<DateTime<Utc>>,
    pub next_attempt_at: DateTime<Utc>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Why the server turned the subscription off (it failed for the whole retry period);
    /// `PATCH` `active: true` turns it back on.
    pub disabled_reason: Option<String>,
    /// Until when the secret rotated out last still signs beside the current one.
    pub previous_secret_until: Option<DateTime<Utc>>,
}

fn webhook_out(w: WebhookRow, secret: Option<String>) -> WebhookOut {
    WebhookOut {
        types: w.type_list().unwrap_or_default(),
        id: w.id,
        url: w.url,
        community_id: w.community_id,
        active: w.active,
        description: w.description,
        created_by: w.created_by,
        created_at: w.created_at.and_utc(),
        updated_at: w.updated_at.and_utc(),
        version: w.version,
        delivery: DeliveryState {
            last_event_id: w.cursor,
            attempts: w.attempts,
            failing_since: w.failing_since.map(|t| t.and_utc()),
            next_attempt_at: w.next_attempt_at.and_utc(),
            last_success_at: w.last_success_at.map(|t| t.and_utc()),
            last_error: w.last_error,
            disabled_reason: w.disabled_reason,
            previous_secret_until: w.previous_secret_until.map(|t| t.and_utc()),
        },
        secret,
    }
}

impl View for WebhookRow {
    type Out = WebhookOut;

    fn version(&self) -> Option<i32> {
        Some(self.version)
    }

    fn view(self, _: &mut DbConn) -> ApiResult<WebhookOut> {
        Ok(webhook_out(self, None))
    }
}

/// A subscription just made, or whose secret was just rotated: with the secret.
struct WithSecret(WebhookRow, String);

impl View for WithSecret {
    type Out = WebhookOut;

    fn version(&self) -> Option<i32> {
        Some(self.0.version)
    }

    fn view(self, _: &mut DbConn) -> ApiResult<WebhookOut> {
        Ok(webhook_out(self.0, Some(self.1)))
    }
}

#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// `https://` (or `http://`) URL of a public address, at most 2048 characters.
    #[schema(example = "https://hotline.example.gov.cn/gridlight/events", max_length = 2048)]
    pub url: String,
    /// Event types to deliver; absent or empty: every type.
    #[schema(value_type = Vec<crate::api::events::EventType>, example = json!(["household.tag_changed", "task.overdue"]))]
    #[serde(default)]
    pub types: Vec<String>,
    /// The community whose events are delivered: a secretary's own (the default for them); an
    /// administrator may name any, or none for every community's.
    #[schema(example = "01a19467-e800-7c0c-9473-24c1758cceda")]
    pub community_id: Option<String>,
    /// Deliver now (default `true`).
    pub active: Option<bool>,
    /// What the receiver is, for people (up to 200 characters).
    #[schema(example = "12345 热线工单系统", max_length = 200)]
    #[validate(length(max = 200, code = "too_long"))]
    pub description: Option<String>,
}

#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct PatchWebhook {
    #[schema(example = "https://hotline.example.gov.cn/gridlight/events", max_length = 2048)]
    pub url: Option<String>,
    #[schema(value_type = Option<Vec<crate::api::events::EventType>>, example = json!(["household.tag_changed"]))]
    pub types: Option<Vec<String>>,
    /// `true` turns a subscription the server disabled back on, from where delivery stopped.
    pub active: Option<bool>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<String>, max_length = 200, example = "12345 热线工单系统")]
    #[validate(length(max = 200, code = "too_long"))]
    pub description: Option<Option<String>>,
}

/// Checks a URL against the server's address policy.
fn url_checked(field: &str, url: &str, allow_private: bool, errors: &mut Vec<FieldError>) -> String {
    match check_url(url, allow_private) {
        Ok(u) => u.to_string(),
        Err(problem) => {
            errors.push(FieldError::new(field, "not_allowed", problem.to_string()));
            String::new()
        }
    }
}

fn types_checked(types: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in types {
        if !TYPES.contains(&t.as_str()) {
            errors.push(FieldError::new("types", "unknown_type", format!("each must be one of: {}", TYPES.join(", "))));
            return Vec::new();
        }
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    out
}

impl CreateWebhook {
    fn checked(self, allow_private: bool) -> ApiResult<NewSubscription> {
        let mut errors = declared(&self);
        let url = url_checked("url", &self.url, allow_private, &mut errors);
        let types = types_checked(&self.types, &mut errors);
        done(errors)?;
        Ok(NewSubscription {
            url,
            types,
            community_id: self.community_id,
            active: self.active.unwrap_or(true),
            description: clean_optional(self.description.as_deref()),
        })
    }
}

impl PatchWebhook {
    fn checked(self, allow_private: bool) -> ApiResult<Edit> {
        let mut errors = declared(&self);
        let url = self.url.as_deref().map(|u| url_checked("url", u, allow_private, &mut errors));
        let types = self.types.as_deref().map(|t| types_checked(t, &mut errors));
        done(errors)?;
        Ok(Edit {
            url,
            types,
            active: self.active,
            description: self.description.map(|d| clean_optional(d.as_deref())),
        })
    }
}

/// The subscriptions in the caller's reach (a secretary's community's; all for administrators).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", operation_id = "list_webhooks",
    params(PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of subscriptions", body = Page<WebhookOut>),
        (status = 403, description = "Only secretaries and administrators manage webhooks", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn list(api: Api, page: PageQuery) -> ApiResult<web::Json<Page<WebhookOut>>> {
    let (fetch, after) = (page.fetch()?, page.after_id()?);
    api.listed(move |c, caller| {
        let community = ops::listed_community(caller)?;
        let rows = store::list(c, community.as_deref(), after.as_deref(), fetch)?;
        Ok(Page::of(rows, fetch, |w| vec![w.id.clone()]))
    })
    .await
}

/// Subscribes a URL to events. The answer carries the signing secret, shown this once; events
/// start after the latest one now.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", operation_id = "create_webhook",
    request_body = CreateWebhook, security(("bearer" = [])),
    responses(
        (status = 201, description = "Subscribed (with `secret`)", body = WebhookOut),
        (status = 403, description = "Only secretaries and administrators manage webhooks", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn create(api: Api, body: Body<CreateWebhook>) -> ApiResult<HttpResponse> {
    let new = body.into_inner().checked(api.state.config.server.webhooks.webhook_allow_private)?;
    api.created(move |c, caller| ops::create(c, caller, new).map(|(w, s)| WithSecret(w, s))).await
}

/// A subscription and how its delivery stands.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", operation_id = "get_webhook",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The subscription", body = WebhookOut),
        (status = 403, description = "Only secretaries and administrators manage webhooks", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn get(api: Api, id: web::Path<String>) -> ApiResult<HttpResponse> {
    api.current(move |c, caller| ops::subscription(c, caller, &id)).await
}

/// Changes a subscription's URL, types, description, or turns it on or off.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", operation_id = "patch_webhook",
    params(IfMatch), request_body = PatchWebhook, security(("bearer" = [])),
    responses(
        (status = 200, description = "Changed", body = WebhookOut),
        (status = 403, description = "Only secretaries and administrators manage webhooks", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn patch(
    api: Api,
    if_match: IfMatch,
    id: web::Path<String>,
    body: Body<PatchWebhook>,
) -> ApiResult<HttpResponse> {
    let edit = body.into_inner().checked(api.state.config.server.webhooks.webhook_allow_private)?;
    api.updated(move |c, caller| ops::edit(c, caller, &id, if_match.version(), edit)).await
}

/// Deletes a subscription, its delivery log and its dead letters.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", operation_id = "delete_webhook",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Only secretaries and administrators manage webhooks", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn delete(api: Api, id: web::Path<String>) -> ApiResult<HttpResponse> {
    api.write(move |c, caller| ops::delete(c, caller, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A new signing secret, shown this once; the old one keeps signing beside it for 24 hours
/// (deliveries carry a `v1=` signature of each) so the receiver can switch without losing any.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    operation_id = "rotate_webhook_secret", security(("bearer" = [])),
    responses(
        (status = 200, description = "Rotated (with the new `secret`)", body = WebhookOut),
        (status = 403, description = "Only secretaries and administrators manage webhooks", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn rotate(api: Api, id: web::Path<String>) -> ApiResult<HttpResponse> {
    api.updated(move |c, caller| ops::rotate_secret(c, caller, &id).map(|(w, s)| WithSecret(w, s))).await
}

/// One delivery attempt.
#[derive(Serialize, ToSchema)]
pub struct DeliveryOut {
    pub id: i64,
    pub event_id: i64,
    #[serde(rename = "type")]
    #[schema(example = "household.tag_changed")]
    pub kind: String,
    /// 1 for the first attempt at the event.
    pub attempt: i32,
    pub at: DateTime<Utc>,
    /// `delivered`, `failed` (retried at `next_attempt_at`), `parked` (a dead letter now),
    /// `resent` or `resend_failed` (a dead letter sent again).
    #[schema(example = "delivered")]
    pub outcome: String,
    /// The receiver's HTTP status (`null`: no answer).
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl From<DeliveryRow> for DeliveryOut {
    fn from(d: DeliveryRow) -> Self {
        DeliveryOut {
            id: d.id,
            event_id: d.event_id,
            kind: d.event,
            attempt: d.attempt,
            at: d.at.and_utc(),
            outcome: d.outcome,
            status_code: d.status_code,
            latency_ms: d.latency_ms,
            error: d.error,
            next_attempt_at: d.next_attempt_at.map(|t| t.and_utc()),
        }
    }
}

crate::api::answer::view_from!(DeliveryRow => DeliveryOut);

/// The subscription's delivery log, newest first (kept `GRIDLIGHT_WEBHOOK_LOG_DAYS`).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    operation_id = "list_webhook_deliveries", params(PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of attempts", body = Page<DeliveryOut>),
        (status = 403, description = "Only secretaries and administrators manage webhooks", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn deliveries(api: Api, id: web::Path<String>, page: PageQuery) -> ApiResult<web::Json<Page<DeliveryOut>>> {
    let fetch = page.fetch()?;
    let before = number_key(&page)?;
    api.listed(move |c, caller| {
        ops::subscription(c, caller, &id)?;
        Ok(Page::of(store::deliveries(c, &id, before, fetch)?, fetch, |d| vec![d.id.to_string()]))
    })
    .await
}

/// An event given up on.
#[derive(Serialize, ToSchema)]
pub struct DeadLetterOut {
    pub event_id: i64,
    #[serde(rename = "type")]
    pub kind: String,
    /// The event as it was sent.
    #[schema(value_type = crate::api::events::EventOut)]
    pub event: serde_json::Value,
    pub parked_at: DateTime<Utc>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub resend_requested_at: Option<DateTime<Utc>>,
    /// When a re-send was delivered (`null`: not yet).
    pub resent_at: Option<DateTime<Utc>>,
}

impl View for DeadLetterRow {
    type Out = DeadLetterOut;

    fn view(self, _: &mut DbConn) -> ApiResult<DeadLetterOut> {
        let event = serde_json::from_str(&self.body).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
        Ok(DeadLetterOut {
            event_id: self.event_id,
            kind: self.event,
            event,
            parked_at: self.parked_at.and_utc(),
            attempts: self.attempts,
            last_error: self.last_error,
            resend_requested_at: self.resend_requested_at.map(|t| t.and_utc()),
            resent_at: self.resent_at.map(|t| t.and_utc()),
        })
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterQuery {
    /// Only those not re-sent yet (default `false`: all).
    pub waiting: Option<bool>,
}

/// The subscription's dead letters: events given up on after the retry period, oldest first.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/dead-letters", tag = "webhooks",
    operation_id = "list_webhook_dead_letters", params(DeadLetterQuery, PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of dead letters", body = Page<DeadLetterOut>),
        (status = 403, description = "Only secretaries and administrators manage webhooks", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn dead_letters(
    api: Api,
    id: web::Path<String>,
    query: Params<DeadLetterQuery>,
    page: PageQuery,
) -> ApiResult<web::Json<Page<DeadLetterOut>>> {
    let fetch = page.fetch()?;
    let after = number_key(&page)?;
    let waiting = query.into_inner().waiting.unwrap_or(false);
    api.listed(move |c, caller| {
        ops::subscription(c, caller, &id)?;
        let rows = store::dead_letters(c, &id, after, waiting, fetch)?;
        Ok(Page::of(rows, fetch, |d| vec![d.event_id.to_string()]))
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resend {
    /// The dead letters to send again (at most 1000); absent: every one not re-sent yet.
    #[schema(example = json!([1042, 1043]), max_items = 1000)]
    #[serde(default, deserialize_with = "event_ids")]
    pub event_ids: Option<Vec<i64>>,
}

#[derive(Serialize, ToSchema)]
pub struct ResendAccepted {
    /// How many dead letters will be sent again (by the delivery worker, within seconds).
    pub requested: usize,
}

/// Sends dead letters again, once each, outside the subscription's order (they are old); each
/// shows `resent_at` once delivered, or its new error.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/dead-letters/resend", tag = "webhooks",
    operation_id = "resend_webhook_dead_letters", request_body = Resend, security(("bearer" = [])),
    responses(
        (status = 202, description = "Queued for sending", body = ResendAccepted),
        (status = 403, description = "Only secretaries and administrators manage webhooks", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn resend(api: Api, id: web::Path<String>, body: Body<Resend>) -> ApiResult<HttpResponse> {
    let ids = body.into_inner().event_ids;
    if ids.as_ref().is_some_and(|i| i.len() > 1000) {
        return Err(ApiError::invalid("event_ids", "too_many", "at most 1000 at a time"));
    }
    let requested = api.write(move |c, caller| ops::resend(c, caller, &id, ids)).await?;
    Ok(HttpResponse::Accepted().json(ResendAccepted { requested }))
}

/// Event ids: JSON Schema's integers, `3.0` too (see [`crate::api::integral`]).
fn event_ids<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<Vec<i64>>, D::Error> {
    let numbers = <Option<Vec<serde_json::Number>> as Deserialize>::deserialize(de)?;
    numbers
        .map(|ns| {
            ns.iter()
                .map(|n| {
                    n.as_i64()
                        .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18).map(|f| f as i64))
                        .ok_or_else(|| serde::de::Error::custom("invalid type: expected an integer (64 bits)"))
                })
                .collect()
        })
        .transpose()
}

/// A cursor of one number (a delivery's or an event's id).
fn number_key(page: &PageQuery) -> ApiResult<Option<i64>> {
    page.after_id()?
        .map(|k| k.parse::<i64>().map_err(|_| ApiError::invalid("cursor", "invalid", "not a cursor of this list")))
        .transpose()
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/webhooks").route(web::get().to(list)).route(web::post().to(create)))
        .service(
            web::resource("/webhooks/{id}")
                .route(web::get().to(get))
                .route(web::patch().to(patch))
                .route(web::delete().to(delete)),
        )
        .service(web::resource("/webhooks/{id}/rotate-secret").route(web::post().to(rotate)))
        .service(web::resource("/webhooks/{id}/deliveries").route(web::get().to(deliveries)))
        .service(web::resource("/webhooks/{id}/dead-letters").route(web::get().to(dead_letters)))
        .service(web::resource("/webhooks/{id}/dead-letters/resend").route(web::post().to(resend)));
}
