//! The audit log: `/audit-events`.

use actix_web::web;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::input::{Instant, Params};
use crate::api::pagination::{Page, decode_cursor, fetch_limit, page};
use crate::auth::AuthUser;
use crate::db::schema::audit_events;
use crate::domain::Role;
use crate::error::{ApiResult, PROBLEM_JSON as PROBLEM, Problem};

#[derive(Serialize, ToSchema, Queryable)]
pub struct AuditEventOut {
    pub id: String,
    pub at: DateTime<Utc>,
    pub actor_id: Option<String>,
    #[schema(example = "household.updated")]
    pub action: String,
    #[schema(example = "household")]
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub community_id: Option<String>,
    /// What changed (field names, reasons; never personal data in full).
    #[schema(value_type = Object)]
    pub summary: serde_json::Value,
    pub request_id: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListAudit {
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    pub actor_id: Option<String>,
    /// Events at or after this time (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub from: Option<Instant>,
    /// Events before this time (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub to: Option<Instant>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500, example = 50)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

type Row = (
    String,
    chrono::NaiveDateTime,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
);

/// The audit log, newest first: everything for administrators, their community's events for
/// secretaries.
#[utoipa::path(get, path = "/api/v1/audit-events", tag = "audit", operation_id = "list_audit_events",
    params(ListAudit), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of events", body = Page<AuditEventOut>),
        (status = 400, description = "Malformed query", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Grid workers do not read the audit log", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid limit or cursor", body = Problem, content_type = PROBLEM),
    ))]
pub async fn list(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: Params<ListAudit>,
) -> ApiResult<web::Json<Page<AuditEventOut>>> {
    caller.require(&[Role::Admin, Role::Secretary])?;
    let q = query.into_inner();
    let fetch = fetch_limit(q.limit)?;
    let before = decode_cursor(q.cursor.as_deref(), 1)?.map(|mut k| k.remove(0));
    let community = if caller.is_admin() { None } else { caller.community_id.clone() };
    let rows: Vec<Row> = state
        .db
        .read(move |conn| {
            let mut query = audit_events::table
                .select((
                    audit_events::id,
                    audit_events::at,
                    audit_events::actor_id,
                    audit_events::action,
                    audit_events::entity_type,
                    audit_events::entity_id,
                    audit_events::community_id,
                    audit_events::summary,
                    audit_events::request_id,
                ))
                .order(audit_events::id.desc())
                .limit(fetch)
                .into_boxed();
            if let Some(c) = community {
                query = query.filter(audit_events::community_id.eq(c));
            }
            if let Some(t) = q.entity_type {
                query = query.filter(audit_events::entity_type.eq(t));
            }
            if let Some(e) = q.entity_id {
                query = query.filter(audit_events::entity_id.eq(e));
            }
            if let Some(a) = q.actor_id {
                query = query.filter(audit_events::actor_id.eq(a));
            }
            if let Some(f) = q.from {
                query = query.filter(audit_events::at.ge(f.0.naive_utc()));
            }
            if let Some(t) = q.to {
                query = query.filter(audit_events::at.lt(t.0.naive_utc()));
            }
            if let Some(b) = before {
                query = query.filter(audit_events::id.lt(b));
            }
            Ok(query.load(conn)?)
        })
        .await?;
    Ok(web::Json(page(
        rows,
        fetch,
        |r| vec![r.0.clone()],
        |r| AuditEventOut {
            id: r.0,
            at: r.1.and_utc(),
            actor_id: r.2,
            action: r.3,
            entity_type: r.4,
            entity_id: r.5,
            community_id: r.6,
            summary: serde_json::from_str(&r.7).unwrap_or(serde_json::Value::Null),
            request_id: r.8,
        },
    )))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/audit-events").route(web::get().to(list)));
}
