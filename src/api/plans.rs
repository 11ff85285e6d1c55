//! Service plans: `/communities/{id}/service-plans`, `/communities/{id}/service-plans/{tag}`.
//! The rules are in [`crate::ops::plans`].

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::api::answer::Api;
use crate::api::input::Body;
use crate::api::validate::{clean, declared, done};
use crate::auth::scope;
use crate::domain::text::required_line;
use crate::domain::{ServiceKind, Tag};
use crate::error::{ApiError, ApiResult, FieldError, PROBLEM_JSON as PROBLEM, Problem};
use crate::ops;
use crate::ops::plans::NewPlan;
use crate::store::plans::{self, PlanRow, TemplateRow, TemplateSpec};

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

pub fn views(plans: Vec<(PlanRow, Vec<TemplateRow>)>) -> Vec<PlanOut> {
    plans.into_iter().map(|(p, ts)| plan_out(p, ts)).collect()
}

/// The community's three plans (red, yellow, green) with their service templates.
#[utoipa::path(get, path = "/api/v1/communities/{id}/service-plans", tag = "plans", operation_id = "list_service_plans",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The plans, red first", body = Vec<PlanOut>),
    ))]
pub async fn list(api: Api, id: web::Path<String>) -> ApiResult<web::Json<Vec<PlanOut>>> {
    let plans = api
        .read(move |c, caller| {
            scope::community(c, caller, &id)?;
            Ok(plans::plans_of(c, &id)?)
        })
        .await?;
    Ok(web::Json(views(plans)))
}

// Serialize: `validator` puts the value of a too long list into its error.
#[derive(Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct TemplateIn {
    #[schema(example = "入户走访", min_length = 1, max_length = 64)]
    #[validate(length(max = 64, code = "too_long"), custom(function = "required_line"))]
    pub name: String,
    pub kind: ServiceKind,
    /// 1–365 days between two services of this template.
    #[schema(example = 7, minimum = 1, maximum = 365)]
    #[serde(deserialize_with = "crate::api::integral")]
    #[validate(range(min = 1, max = 365, code = "out_of_range", message = "must be 1–365 days"))]
    pub interval_days: i32,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct PutPlan {
    /// At most 20, and at most one active template of a kind.
    #[schema(max_items = 20)]
    #[validate(length(max = 20, code = "too_many"), nested)]
    pub templates: Vec<TemplateIn>,
    /// Days from applying the tag to its review (1–3660); unchanged when omitted.
    #[schema(minimum = 1, maximum = 3660, example = 30)]
    #[serde(default, deserialize_with = "crate::api::optional_integral")]
    #[validate(range(min = 1, max = 3660, code = "out_of_range", message = "must be 1–3660 days"))]
    pub review_interval_days: Option<i32>,
}

impl PutPlan {
    fn checked(self) -> ApiResult<NewPlan> {
        let mut errors = declared(&self);
        for (i, t) in self.templates.iter().enumerate() {
            if t.active && self.templates[..i].iter().any(|o| o.active && o.kind == t.kind) {
                errors.push(FieldError::new(
                    format!("templates[{i}].kind"),
                    "duplicate_active_kind",
                    "at most one active template of a kind per plan",
                ));
            }
        }
        done(errors)?;
        let templates = self
            .templates
            .into_iter()
            .map(|t| TemplateSpec {
                name: clean(&t.name),
                kind: t.kind,
                interval_days: t.interval_days,
                active: t.active,
            })
            .collect();
        Ok(NewPlan { templates, review_interval_days: self.review_interval_days })
    }
}

/// Replaces a plan's templates (the community's secretary, or an administrator). At most one
/// active template per kind. The open tasks of the community's households with this tag are
/// brought in line at once: new templates get tasks, dropped ones lose theirs, changed
/// intervals move due dates.
#[utoipa::path(put, path = "/api/v1/communities/{id}/service-plans/{tag}", tag = "plans", operation_id = "put_service_plan",
    params(("tag" = Tag, Path, description = "red, yellow or green")),
    request_body = PutPlan, security(("bearer" = [])),
    responses(
        (status = 200, description = "All three plans after the change", body = Vec<PlanOut>),
        (status = 403, description = "Grid workers do not edit plans", body = Problem, content_type = PROBLEM),
    ))]
pub async fn put(
    api: Api,
    path: web::Path<(String, String)>,
    body: Body<PutPlan>,
) -> ApiResult<web::Json<Vec<PlanOut>>> {
    let (id, tag) = path.into_inner();
    let tag =
        Tag::parse(&tag).map_err(|_| ApiError::NotFound("no plan for that tag; use red, yellow or green".into()))?;
    let plan = body.into_inner().checked()?;
    let plans = api.write(move |c, caller| ops::plans::replace(c, caller, &id, tag, plan)).await?;
    Ok(web::Json(views(plans)))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/communities/{id}/service-plans").route(web::get().to(list)))
        .service(web::resource("/communities/{id}/service-plans/{tag}").route(web::put().to(put)));
}
