//! Webhook subscriptions: secretaries manage their community's, administrators any (one with no
//! community takes every community's events). The URL arrives checked against the address
//! policy (`crate::webhooks::guard`); the secret is made here and shown once.

use chrono::Duration;
use serde_json::json;

use crate::auth::{AuthUser, scope};
use crate::db::DbConn;
use crate::domain::Role;
use crate::error::{ApiError, ApiResult};
use crate::ops::{applied, audit_event, check_version};
use crate::store::audit::Event;
use crate::store::events;
use crate::store::webhooks::{self as store, NewWebhook, WebhookChanges, WebhookRow};
use crate::store::{new_id, now};
use crate::webhooks::sign::new_secret;

/// How long a rotated-out secret keeps signing beside the new one, for receivers to switch.
pub const PREVIOUS_SECRET_HOURS: i64 = 24;

/// A subscription to create; checked field by field.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub url: String,
    /// Empty: every type.
    pub types: Vec<String>,
    pub community_id: Option<String>,
    pub active: bool,
    pub description: Option<String>,
}

/// An edit (each `None`: left as it is).
#[derive(Debug, Clone, Default)]
pub struct Edit {
    pub url: Option<String>,
    pub types: Option<Vec<String>>,
    pub active: Option<bool>,
    pub description: Option<Option<String>>,
}

/// A subscription in the caller's reach (404 otherwise; officers and grid workers 403).
pub fn subscription(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<WebhookRow> {
    caller.require(&[Role::Admin, Role::Secretary])?;
    let row = store::find(conn, id)?.ok_or_else(|| ApiError::not_found("webhook"))?;
    visible(caller, &row)?;
    Ok(row)
}

fn visible(caller: &AuthUser, row: &WebhookRow) -> ApiResult<()> {
    if caller.is_admin() || (row.community_id.is_some() && row.community_id == caller.community_id) {
        Ok(())
    } else {
        Err(ApiError::not_found("webhook"))
    }
}

/// The community whose subscriptions a caller lists (`None`: all, an administrator's).
pub fn listed_community(caller: &AuthUser) -> ApiResult<Option<String>> {
    caller.require(&[Role::Admin, Role::Secretary])?;
    Ok(if caller.is_admin() { None } else { caller.community_id.clone() })
}

/// Creates a subscription; its events start after the latest one now. Returns it with its
/// secret in clear, which is never shown again.
pub fn create(conn: &mut DbConn, caller: &AuthUser, s: NewSubscription) -> ApiResult<(WebhookRow, String)> {
    caller.require(&[Role::Admin, Role::Secretary])?;
    let community = match (&s.community_id, caller.is_admin()) {
        (Some(c), _) => Some(
            scope::community(conn, caller, c)
                .map_err(|_| ApiError::invalid("community_id", "unknown", "no such community in your reach"))?
                .id,
        ),
        (None, true) => None,
        (None, false) => caller.community_id.clone(),
    };
    let id = new_id();
    let secret = new_secret();
    let types = serde_json::to_string(&s.types).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    // Number what committed before (PostgreSQL): it is not this subscription's.
    events::sequence(conn, true)?;
    let cursor = events::last_id(conn)?;
    store::insert(
        conn,
        &NewWebhook {
            id: &id,
            community_id: community.as_deref(),
            url: &s.url,
            types: &types,
            secret: &secret,
            active: s.active,
            description: s.description.as_deref(),
            created_by: &caller.id,
            at: now(),
            cursor,
        },
    )?;
    let summary = json!({"host": host_of(&s.url), "types": s.types, "active": s.active});
    audit_event(conn, caller, event("webhook.created", &id, community.as_deref(), summary))?;
    let row = store::find(conn, &id)?.ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok((row, secret))
}

/// Edits a subscription. Turning one back on clears why it was off and retries at once from
/// where delivery stopped.
pub fn edit(conn: &mut DbConn, caller: &AuthUser, id: &str, expected: Option<&str>, e: Edit) -> ApiResult<WebhookRow> {
    subscription(conn, caller, id)?;
    let current = store::find_for_update(conn, id)?.ok_or_else(|| ApiError::not_found("webhook"))?;
    check_version(expected, current.version)?;
    let at = now();
    let reactivated = e.active == Some(true) && !current.active;
    let mut changes = WebhookChanges {
        url: e.url.clone(),
        types: e.types.as_ref().map(|t| serde_json::to_string(t).unwrap_or_else(|_| "[]".into())),
        active: e.active,
        description: e.description.clone(),
        ..Default::default()
    };
    if reactivated {
        changes.disabled_reason = Some(None);
        changes.attempts = Some(0);
        changes.failing_since = Some(None);
        changes.next_attempt_at = Some(at);
    }
    applied(store::update(conn, id, current.version, at, &changes)?, "webhook")?;
    let mut summary = json!({"active": e.active, "types": e.types});
    if let Some(url) = &e.url {
        summary["host"] = json!(host_of(url));
    }
    audit_event(conn, caller, event("webhook.updated", id, current.community_id.as_deref(), summary))?;
    store::find(conn, id)?.ok_or_else(|| ApiError::not_found("webhook"))
}

/// Deletes a subscription with its delivery log and dead letters.
pub fn delete(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<()> {
    let current = subscription(conn, caller, id)?;
    store::delete(conn, id)?;
    let summary = json!({"host": host_of(&current.url)});
    audit_event(conn, caller, event("webhook.deleted", id, current.community_id.as_deref(), summary))
}

/// A new secret; the old one keeps signing beside it for [`PREVIOUS_SECRET_HOURS`].
pub fn rotate_secret(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<(WebhookRow, String)> {
    let current = subscription(conn, caller, id)?;
    store::find_for_update(conn, id)?;
    let secret = new_secret();
    let at = now();
    store::rotate_secret(conn, id, &secret, at + Duration::hours(PREVIOUS_SECRET_HOURS), at)?;
    audit_event(conn, caller, event("webhook.secret_rotated", id, current.community_id.as_deref(), json!({})))?;
    let row = store::find(conn, id)?.ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok((row, secret))
}

/// Asks for dead letters (those of `event_ids`, or all not re-sent yet) to be sent again by
/// the delivery worker; returns how many.
pub fn resend(conn: &mut DbConn, caller: &AuthUser, id: &str, event_ids: Option<Vec<i64>>) -> ApiResult<usize> {
    let current = subscription(conn, caller, id)?;
    let n = store::request_resend(conn, id, event_ids.as_deref(), now())?;
    let summary = json!({"dead_letters": n, "event_ids": event_ids});
    audit_event(conn, caller, event("webhook.resend_requested", id, current.community_id.as_deref(), summary))?;
    Ok(n)
}

/// The host a URL names, for the audit log: the rest of a URL may carry a receiver's token.
fn host_of(url: &str) -> String {
    reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default()
}

fn event<'a>(action: &'a str, id: &'a str, community_id: Option<&'a str>, summary: serde_json::Value) -> Event<'a> {
    Event { action, entity_type: "webhook", entity_id: Some(id), community_id, summary }
}
