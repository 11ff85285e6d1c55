//! The audit log: `/audit-events`.

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::answer::{Api, view_from};
use crate::api::input::{Instant, Params};
use crate::api::pagination::{Page, PageQuery};
use crate::domain::Role;
use crate::error::{ApiResult, PROBLEM_JSON as PROBLEM, Problem};
use crate::store::audit::{self as store, EventRow, ListFilter};

#[derive(Serialize, ToSchema)]
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

impl From<EventRow> for AuditEventOut {
    fn from(e: EventRow) -> Self {
        AuditEventOut {
            id: e.id,
            at: e.at.and_utc(),
            actor_id: e.actor_id,
            action: e.action,
            entity_type: e.entity_type,
            entity_id: e.entity_id,
            community_id: e.community_id,
            summary: e.summary.0,
            request_id: e.request_id,
        }
    }
}

view_from!(EventRow => AuditEventOut);

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
}

/// The audit log, newest first: everything for administrators, their community's events for
/// secretaries.
#[utoipa::path(get, path = "/api/v1/audit-events", tag = "audit", operation_id = "list_audit_events",
    params(ListAudit, PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of events", body = Page<AuditEventOut>),
        (status = 403, description = "Grid workers do not read the audit log", body = Problem, content_type = PROBLEM),
    ))]
pub async fn list(api: Api, query: Params<ListAudit>, page: PageQuery) -> ApiResult<web::Json<Page<AuditEventOut>>> {
    api.caller.require(&[Role::Admin, Role::Secretary])?;
    let (q, fetch) = (query.into_inner(), page.fetch()?);
    let filter = ListFilter {
        community_id: if api.caller.is_admin() { None } else { api.caller.community_id.clone() },
        entity_type: q.entity_type,
        entity_id: q.entity_id,
        actor_id: q.actor_id,
        from: q.from.map(|f| f.0.naive_utc()),
        to: q.to.map(|t| t.0.naive_utc()),
        before: page.after_id()?,
    };
    api.listed(move |c, _| Ok(Page::of(store::list(c, &filter, fetch)?, fetch, |e| vec![e.id.clone()]))).await
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/audit-events").route(web::get().to(list)));
}
