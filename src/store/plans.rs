//! Service plans: per community and tag, the review interval and the service templates.

use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::service_plans;
use crate::domain::Tag;

/// Days between applying `tag` to a household of the community and its review: the
/// community's plan, else the default for the tag.
pub fn review_interval_days(conn: &mut DbConn, community_id: &str, tag: Tag) -> QueryResult<u32> {
    let days: Option<i32> = service_plans::table
        .filter(service_plans::community_id.eq(community_id))
        .filter(service_plans::tag.eq(tag.as_str()))
        .select(service_plans::review_interval_days)
        .first(conn)
        .optional()?;
    Ok(days.and_then(|d| u32::try_from(d).ok()).unwrap_or_else(|| tag.default_review_interval_days()))
}

use chrono::NaiveDateTime;

use crate::db::schema::service_templates;
use crate::domain::ServiceKind;
use crate::store::{new_id, now};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = service_templates)]
pub struct TemplateRow {
    pub id: String,
    pub plan_id: String,
    pub community_id: String,
    pub tag: Tag,
    pub name: String,
    pub kind: ServiceKind,
    pub interval_days: i32,
    pub active: bool,
    pub position: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A template as a plan is written: what `PUT /service-plans/{tag}` takes.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateSpec {
    pub name: String,
    pub kind: ServiceKind,
    pub interval_days: i32,
    pub active: bool,
}

/// The default plans of SPEC §3: red — 平安问候 daily and a home visit weekly; yellow — weekly
/// calls and a monthly visit; green — a visit every 90 days.
pub fn default_templates(tag: Tag) -> Vec<TemplateSpec> {
    let t = |name: &str, kind, interval_days| TemplateSpec { name: name.to_owned(), kind, interval_days, active: true };
    match tag {
        Tag::Red => vec![t("平安问候", ServiceKind::PhoneCall, 1), t("入户走访", ServiceKind::HomeVisit, 7)],
        Tag::Yellow => vec![t("平安问候", ServiceKind::PhoneCall, 7), t("入户走访", ServiceKind::HomeVisit, 30)],
        Tag::Green => vec![t("入户走访", ServiceKind::HomeVisit, 90)],
    }
}

/// Creates the three default plans of a new community.
pub fn create_defaults(conn: &mut DbConn, community_id: &str) -> QueryResult<()> {
    create_defaults_with(conn, community_id, &mut new_id)
}

/// [`create_defaults`] with ids from `next_id` (seeded data sets use deterministic ones).
pub fn create_defaults_with(
    conn: &mut DbConn,
    community_id: &str,
    next_id: &mut dyn FnMut() -> String,
) -> QueryResult<()> {
    let at = now();
    for tag in Tag::ALL {
        let plan_id = next_id();
        diesel::insert_into(service_plans::table)
            .values((
                service_plans::id.eq(&plan_id),
                service_plans::community_id.eq(community_id),
                service_plans::tag.eq(tag.as_str()),
                service_plans::review_interval_days
                    .eq(i32::try_from(tag.default_review_interval_days()).unwrap_or(365)),
                service_plans::created_at.eq(at),
                service_plans::updated_at.eq(at),
            ))
            .execute(conn)?;
        for (i, spec) in default_templates(*tag).into_iter().enumerate() {
            insert_template(conn, &next_id(), &plan_id, community_id, *tag, &spec, i, at)?;
        }
    }
    Ok(())
}

#[expect(clippy::too_many_arguments, reason = "one row's columns")]
fn insert_template(
    conn: &mut DbConn,
    id: &str,
    plan_id: &str,
    community_id: &str,
    tag: Tag,
    spec: &TemplateSpec,
    position: usize,
    at: NaiveDateTime,
) -> QueryResult<String> {
    diesel::insert_into(service_templates::table)
        .values((
            service_templates::id.eq(&id),
            service_templates::plan_id.eq(plan_id),
            service_templates::community_id.eq(community_id),
            service_templates::tag.eq(tag.as_str()),
            service_templates::name.eq(&spec.name),
            service_templates::kind.eq(spec.kind.as_str()),
            service_templates::interval_days.eq(spec.interval_days),
            service_templates::active.eq(spec.active),
            service_templates::position.eq(i32::try_from(position).unwrap_or(i32::MAX)),
            service_templates::created_at.eq(at),
            service_templates::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(id.to_owned())
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = service_plans)]
pub struct PlanRow {
    pub id: String,
    pub community_id: String,
    pub tag: Tag,
    pub review_interval_days: i32,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A community's plans with their templates (active first, then by position).
pub fn plans_of(conn: &mut DbConn, community_id: &str) -> QueryResult<Vec<(PlanRow, Vec<TemplateRow>)>> {
    let plans: Vec<PlanRow> = service_plans::table
        .filter(service_plans::community_id.eq(community_id))
        .select(PlanRow::as_select())
        .load(conn)?;
    let templates: Vec<TemplateRow> = service_templates::table
        .filter(service_templates::community_id.eq(community_id))
        .order((service_templates::active.desc(), service_templates::position.asc(), service_templates::id.asc()))
        .select(TemplateRow::as_select())
        .load(conn)?;
    let mut out: Vec<(PlanRow, Vec<TemplateRow>)> = plans
        .into_iter()
        .map(|p| {
            let ts = templates.iter().filter(|t| t.plan_id == p.id).cloned().collect();
            (p, ts)
        })
        .collect();
    out.sort_by_key(|(p, _)| std::cmp::Reverse(p.tag.severity()));
    Ok(out)
}

/// The active templates of a (community, tag) plan.
pub fn active_templates(conn: &mut DbConn, community_id: &str, tag: Tag) -> QueryResult<Vec<TemplateRow>> {
    service_templates::table
        .filter(service_templates::community_id.eq(community_id))
        .filter(service_templates::tag.eq(tag))
        .filter(service_templates::active)
        .order(service_templates::position.asc())
        .select(TemplateRow::as_select())
        .load(conn)
}

/// Replaces the templates of a plan. Templates keep their ids where a template of the same kind
/// existed (tasks refer to them); templates no longer listed are deactivated, never deleted.
/// Returns the ids of templates whose interval changed.
pub fn replace_templates(
    conn: &mut DbConn,
    plan: &PlanRow,
    specs: &[TemplateSpec],
    review_interval_days: Option<i32>,
) -> QueryResult<Vec<String>> {
    let tag = plan.tag;
    let at = now();
    let existing: Vec<TemplateRow> = service_templates::table
        .filter(service_templates::plan_id.eq(&plan.id))
        .order((service_templates::active.desc(), service_templates::position.asc()))
        .select(TemplateRow::as_select())
        .load(conn)?;
    // Deactivate everything first, so the one-active-per-kind index never sees two.
    diesel::update(service_templates::table.filter(service_templates::plan_id.eq(&plan.id)))
        .set((service_templates::active.eq(false), service_templates::updated_at.eq(at)))
        .execute(conn)?;
    let mut claimed: Vec<String> = Vec::new();
    let mut interval_changed = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let reuse = existing.iter().find(|t| t.kind == spec.kind && !claimed.contains(&t.id)).cloned();
        match reuse {
            Some(t) => {
                diesel::update(service_templates::table.find(&t.id))
                    .set((
                        service_templates::name.eq(&spec.name),
                        service_templates::interval_days.eq(spec.interval_days),
                        service_templates::active.eq(spec.active),
                        service_templates::position.eq(i32::try_from(i).unwrap_or(i32::MAX)),
                        service_templates::updated_at.eq(at),
                    ))
                    .execute(conn)?;
                if t.interval_days != spec.interval_days {
                    interval_changed.push(t.id.clone());
                }
                claimed.push(t.id);
            }
            None => {
                let id = insert_template(conn, &new_id(), &plan.id, &plan.community_id, tag, spec, i, at)?;
                claimed.push(id);
            }
        }
    }
    diesel::update(service_plans::table.find(&plan.id))
        .set((
            service_plans::review_interval_days.eq(review_interval_days.unwrap_or(plan.review_interval_days)),
            service_plans::version.eq(plan.version + 1),
            service_plans::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(interval_changed)
}
