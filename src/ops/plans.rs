//! Service plans: replacing a plan's templates brings the open tasks of its households in line
//! at once.

use serde_json::json;

use crate::auth::{AuthUser, scope};
use crate::db::DbConn;
use crate::domain::{Role, Tag};
use crate::error::{ApiError, ApiResult};
use crate::store::audit::{self, Event};
use crate::store::plans::{self as store, PlanRow, TemplateRow, TemplateSpec};
use crate::store::{households, tasks};

/// A plan as a client writes it; checked: at most 20 templates, at most one active of a kind,
/// intervals of 1–365 days, names trimmed.
#[derive(Debug, Clone)]
pub struct NewPlan {
    pub templates: Vec<TemplateSpec>,
    /// Days from applying the tag to its review; unchanged when `None`.
    pub review_interval_days: Option<i32>,
}

/// Replaces the templates of the community's plan for `tag` (the community's secretary, or an
/// administrator). Templates whose interval changed move their open tasks' due dates, and the
/// households with the tag are reconciled: new templates get tasks, dropped ones lose theirs.
/// Returns the community's plans after the change.
pub fn replace(
    conn: &mut DbConn,
    caller: &AuthUser,
    community_id: &str,
    tag: Tag,
    plan: NewPlan,
) -> ApiResult<Vec<(PlanRow, Vec<TemplateRow>)>> {
    scope::community(conn, caller, community_id)?;
    caller.require(&[Role::Admin, Role::Secretary])?;
    let (stored, _) = store::plans_of(conn, community_id)?
        .into_iter()
        .find(|(p, _)| p.tag == tag)
        .ok_or_else(|| ApiError::not_found("service plan"))?;
    // The plan's households before their tasks, as every writer locks them.
    let household_ids = households::lock_with_tag(conn, community_id, tag.as_str())?;
    let changed = store::replace_templates(conn, &stored, &plan.templates, plan.review_interval_days)?;
    let mut rescheduled = 0;
    for template_id in &changed {
        rescheduled += tasks::reschedule_template(conn, template_id)?;
    }
    let mut reconciled = tasks::Reconciled::default();
    for household_id in household_ids {
        reconciled += tasks::household_changed(conn, &household_id)?;
    }
    let templates: Vec<_> = plan
        .templates
        .iter()
        .map(|s| json!({"name": s.name, "kind": s.kind.as_str(), "interval_days": s.interval_days, "active": s.active}))
        .collect();
    audit::record(
        conn,
        &caller.actor(),
        Event {
            action: "service_plan.replaced",
            entity_type: "service_plan",
            entity_id: Some(&stored.id),
            community_id: Some(community_id),
            summary: json!({
                "tag": tag.as_str(),
                "templates": templates,
                "review_interval_days": plan.review_interval_days,
                "tasks": {"created": reconciled.created, "cancelled": reconciled.cancelled, "rescheduled": rescheduled},
            }),
        },
    )?;
    Ok(store::plans_of(conn, community_id)?)
}
