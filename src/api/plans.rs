//! Service plans: `/communities/{id}/service-plans`, `/communities/{id}/service-plans/{tag}`.

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::input::Body;
use crate::api::validate::text;
use crate::auth::AuthUser;
use crate::auth::scope;
use crate::db::DbConn;
use crate::domain::{Role, ServiceKind, Tag};
use crate::error::{ApiError, ApiResult, FieldError, PROBLEM_JSON as PROBLEM, Problem};
use crate::store::audit::{self, Event};
use crate::store::households;
use crate::store::plans::{self, PlanRow, TemplateRow, TemplateSpec};
use crate::store::tasks;

#[derive(Serialize, ToSchema)]
pub struct TemplateOut {
    pub id: String,
    #[schema(example = "平安问候")]
    pub name: String,
    pub kind: ServiceKind,
    #[schema(example = 7)]
    pub interval_days: i32,
    pub active: bool,
}

#[derive(Serialize, ToSchema)]
pub struct PlanOut {
    pub tag: Tag,
    /// Days from applying the tag to its review.
    #[schema(example = 30)]
    pub review_interval_days: i32,
    pub templates: Vec<TemplateOut>,
    pub version: i32,
    pub updated_at: DateTime<Utc>,
}

fn plan_out(p: PlanRow, ts: Vec<TemplateRow>) -> PlanOut {
    PlanOut {
        tag: p.tag,
        review_interval_days: p.review_interval_days,
        templates: ts
            .into_iter()
            .map(|t| TemplateOut {
                kind: t.kind,
                id: t.id,
                name: t.name,
                interval_days: t.interval_days,
                active: t.active,
            })
            .collect(),
        version: p.version,
        updated_at: p.updated_at.and_utc(),
    }
}

fn load(conn: &mut DbConn, community_id: &str) -> ApiResult<Vec<PlanOut>> {
    Ok(plans::plans_of(conn, community_id)?.into_iter().map(|(p, ts)| plan_out(p, ts)).collect())
}

/// The community's three plans (red, yellow, green) with their service templates.
#[utoipa::path(get, path = "/api/v1/communities/{id}/service-plans", tag = "plans", operation_id = "list_service_plans",
    params(("id" = String, Path, description = "Community id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The plans, red first", body = Vec<PlanOut>),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such community in the caller's scope", body = Problem, content_type = PROBLEM),
    ))]
pub async fn list(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
) -> ApiResult<web::Json<Vec<PlanOut>>> {
    let id = path.into_inner();
    let out = state
        .db
        .read(move |conn| {
            scope::community(conn, &caller, &id)?;
            load(conn, &id)
        })
        .await?;
    Ok(web::Json(out))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateIn {
    #[schema(example = "入户走访", min_length = 1, max_length = 64)]
    pub name: String,
    pub kind: ServiceKind,
    /// 1–365 days between two services of this template.
    #[schema(example = 7, minimum = 1, maximum = 365)]
    #[serde(deserialize_with = "crate::api::integral")]
    pub interval_days: i32,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPlan {
    /// At most 20, and at most one active template of a kind.
    #[schema(max_items = 20)]
    pub templates: Vec<TemplateIn>,
    /// Days from applying the tag to its review (1–3660); unchanged when omitted.
    #[schema(minimum = 1, maximum = 3660, example = 30)]
    #[serde(default, deserialize_with = "crate::api::optional_integral")]
    pub review_interval_days: Option<i32>,
}

/// Replaces a plan's templates (the community's secretary, or an administrator). At most one
/// active template per kind. The open tasks of the community's households with this tag are
/// brought in line at once: new templates get tasks, dropped ones lose theirs, changed
/// intervals move due dates.
#[utoipa::path(put, path = "/api/v1/communities/{id}/service-plans/{tag}", tag = "plans", operation_id = "put_service_plan",
    params(("id" = String, Path, description = "Community id"), ("tag" = Tag, Path, description = "red, yellow or green")),
    request_body = PutPlan, security(("bearer" = [])),
    responses(
        (status = 200, description = "All three plans after the change", body = Vec<PlanOut>),
        (status = 400, description = "Malformed request", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Grid workers do not edit plans", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such community or tag", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid templates", body = Problem, content_type = PROBLEM),
    ))]
pub async fn put(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<(String, String)>,
    body: Body<PutPlan>,
) -> ApiResult<web::Json<Vec<PlanOut>>> {
    let (id, tag) = path.into_inner();
    let tag =
        Tag::parse(&tag).map_err(|_| ApiError::NotFound("no plan for that tag; use red, yellow or green".into()))?;
    let input = body.into_inner();
    let mut errors = Vec::new();
    let mut specs = Vec::new();
    for (i, t) in input.templates.iter().enumerate() {
        let name = text(&format!("templates[{i}].name"), &t.name, 64, &mut errors);
        if !(1..=365).contains(&t.interval_days) {
            errors.push(FieldError::new(format!("templates[{i}].interval_days"), "out_of_range", "must be 1–365 days"));
        }
        if t.active && input.templates[..i].iter().any(|o| o.active && o.kind == t.kind) {
            errors.push(FieldError::new(
                format!("templates[{i}].kind"),
                "duplicate_active_kind",
                "at most one active template of a kind per plan",
            ));
        }
        specs.push(TemplateSpec { name, kind: t.kind, interval_days: t.interval_days, active: t.active });
    }
    if input.templates.len() > 20 {
        errors.push(FieldError::new("templates", "too_many", "at most 20 templates"));
    }
    if input.review_interval_days.is_some_and(|d| !(1..=3660).contains(&d)) {
        errors.push(FieldError::new("review_interval_days", "out_of_range", "must be 1–3660 days"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let actor = caller.actor();
    let out = state
        .db
        .write(move |conn| {
            scope::community(conn, &caller, &id)?;
            caller.require(&[Role::Admin, Role::Secretary])?;
            let (plan, _) = plans::plans_of(conn, &id)?
                .into_iter()
                .find(|(p, _)| p.tag == tag)
                .ok_or_else(|| ApiError::not_found("service plan"))?;
            // The plan's households before their tasks, as every writer locks them.
            let household_ids = households::lock_with_tag(conn, &id, tag.as_str())?;
            let changed = plans::replace_templates(conn, &plan, &specs, input.review_interval_days)?;
            let mut rescheduled = 0;
            for template_id in &changed {
                rescheduled += tasks::reschedule_template(conn, template_id)?;
            }
            let mut reconciled = tasks::Reconciled::default();
            for household_id in household_ids {
                reconciled += tasks::household_changed(conn, &household_id)?;
            }
            audit::record(conn, &actor, Event {
                action: "service_plan.replaced",
                entity_type: "service_plan",
                entity_id: Some(&plan.id),
                community_id: Some(&id),
                summary: serde_json::json!({
                    "tag": tag.as_str(),
                    "templates": specs.iter().map(|s| serde_json::json!({"name": s.name, "kind": s.kind.as_str(), "interval_days": s.interval_days, "active": s.active})).collect::<Vec<_>>(),
                    "review_interval_days": input.review_interval_days,
                    "tasks": {"created": reconciled.created, "cancelled": reconciled.cancelled, "rescheduled": rescheduled},
                }),
            })?;
            load(conn, &id)
        })
        .await?;
    Ok(web::Json(out))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/communities/{id}/service-plans").route(web::get().to(list)))
        .service(web::resource("/communities/{id}/service-plans/{tag}").route(web::put().to(put)));
}
