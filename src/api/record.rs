//! `GET /households/{id}/record`: a complete copy, in clear, of what is held about one
//! household, for a resident's access request (PIPL art. 45). The community's secretary only;
//! audited with its reason like a reveal ([`crate::ops::pii::household_record`]), never cached.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::answer::Api;
use crate::api::input::Params;
use crate::api::pii::{PiiQuery, no_store};
use crate::domain::visit::Finding;
use crate::domain::{Gender, Relation, RemovalReason, ServiceKind, Tag, TagChangeStatus, TaskStatus};
use crate::error::{ApiResult, PROBLEM_JSON as PROBLEM, Problem};
use crate::ops;
use crate::ops::pii::Record;

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// The household as stored, phone in clear.
#[derive(Serialize, ToSchema)]
pub struct RecordHousehold {
    pub id: String,
    pub community_id: String,
    pub grid_id: String,
    pub building: String,
    pub unit: String,
    pub room: String,
    pub head_name: String,
    pub phone: Option<String>,
    pub tag: Tag,
    pub tag_reasons: Vec<String>,
    pub tag_note: Option<String>,
    pub tag_set_at: Option<DateTime<Utc>>,
    pub tag_review_due_on: Option<NaiveDate>,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub removed_at: Option<DateTime<Utc>>,
    pub removed_reason: Option<RemovalReason>,
    pub removed_note: Option<String>,
}

/// A member (removed ones too), everything in clear.
#[derive(Serialize, ToSchema)]
pub struct RecordMember {
    pub id: String,
    pub name: String,
    pub gender: Gender,
    pub birth_date: Option<NaiveDate>,
    pub id_number: Option<String>,
    pub phone: Option<String>,
    pub relation: Relation,
    pub living_alone: bool,
    pub disability_grade: Option<i32>,
    pub chronic_illness: bool,
    pub serious_illness: bool,
    pub low_income: bool,
    pub extreme_poverty: bool,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
    pub removed_at: Option<DateTime<Utc>>,
}

/// A tag change, proposed or decided.
#[derive(Serialize, ToSchema)]
pub struct RecordTagChange {
    pub id: String,
    pub from_tag: Tag,
    pub to_tag: Tag,
    pub reasons: Vec<String>,
    pub note: Option<String>,
    pub proposed_by: String,
    pub proposed_at: DateTime<Utc>,
    pub status: TagChangeStatus,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_note: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RecordVisit {
    pub id: String,
    pub worker_id: String,
    pub kind: ServiceKind,
    pub visited_at: DateTime<Utc>,
    pub notes: Option<String>,
    pub findings: Vec<Finding>,
    pub received_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct RecordTask {
    pub id: String,
    pub kind: ServiceKind,
    pub due_on: NaiveDate,
    pub status: TaskStatus,
    pub assignee_id: Option<String>,
    pub completed_at: Option<DateTime<Utc>>,
    pub visit_id: Option<String>,
    pub cancel_reason: Option<String>,
}

/// Someone was given the household's personal data in clear.
#[derive(Serialize, ToSchema)]
pub struct RecordReveal {
    pub at: DateTime<Utc>,
    /// The account that asked.
    pub actor_id: Option<String>,
    /// `member.pii_revealed`, `household.pii_revealed` or `household.record_copied`.
    pub action: String,
    /// The member or household revealed.
    pub entity_id: Option<String>,
    /// The reason the account gave.
    pub reason: Option<String>,
}

/// Everything held about one household.
#[derive(Serialize, ToSchema)]
pub struct HouseholdRecord {
    pub household: RecordHousehold,
    pub members: Vec<RecordMember>,
    pub tag_changes: Vec<RecordTagChange>,
    pub visits: Vec<RecordVisit>,
    pub tasks: Vec<RecordTask>,
    /// Who was given its personal data in clear and when, this copy included.
    pub reveals: Vec<RecordReveal>,
}

impl From<Record> for HouseholdRecord {
    fn from(r: Record) -> Self {
        let h = r.household;
        HouseholdRecord {
            household: RecordHousehold {
                tag_reasons: h.reasons(),
                id: h.id,
                community_id: h.community_id,
                grid_id: h.grid_id,
                building: h.building,
                unit: h.unit,
                room: h.room,
                head_name: h.head_name,
                phone: h.phone,
                tag: h.tag,
                tag_note: h.tag_note,
                tag_set_at: h.tag_set_at.map(utc),
                tag_review_due_on: h.tag_review_due_on,
                notes: h.notes,
                created_at: utc(h.created_at),
                updated_at: utc(h.updated_at),
                removed_at: h.removed_at.map(utc),
                removed_reason: h.removed_reason,
                removed_note: h.removed_note,
            },
            members: r
                .members
                .into_iter()
                .map(|m| RecordMember {
                    id: m.id,
                    name: m.name,
                    gender: m.gender,
                    birth_date: m.birth_date,
                    id_number: m.id_number,
                    phone: m.phone,
                    relation: m.relation,
                    living_alone: m.living_alone,
                    disability_grade: m.disability_grade,
                    chronic_illness: m.chronic_illness,
                    serious_illness: m.serious_illness,
                    low_income: m.low_income,
                    extreme_poverty: m.extreme_poverty,
                    notes: m.notes,
                    created_at: utc(m.created_at),
                    removed_at: m.removed_at.map(utc),
                })
                .collect(),
            tag_changes: r
                .tag_changes
                .into_iter()
                .map(|t| RecordTagChange {
                    reasons: t.reasons(),
                    id: t.id,
                    from_tag: t.from_tag,
                    to_tag: t.to_tag,
                    note: t.note,
                    proposed_by: t.proposed_by,
                    proposed_at: utc(t.proposed_at),
                    status: t.status,
                    decided_by: t.decided_by,
                    decided_at: t.decided_at.map(utc),
                    decision_note: t.decision_note,
                })
                .collect(),
            visits: r
                .visits
                .into_iter()
                .map(|v| RecordVisit {
                    id: v.id,
                    worker_id: v.worker_id,
                    kind: v.kind,
                    visited_at: utc(v.visited_at),
                    notes: v.notes,
                    findings: v.findings.0,
                    received_at: utc(v.received_at),
                })
                .collect(),
            tasks: r
                .tasks
                .into_iter()
                .map(|t| RecordTask {
                    id: t.id,
                    kind: t.kind,
                    due_on: t.due_on,
                    status: t.status,
                    assignee_id: t.assignee_id,
                    completed_at: t.completed_at.map(utc),
                    visit_id: t.visit_id,
                    cancel_reason: t.cancel_reason,
                })
                .collect(),
            reveals: r
                .reveals
                .into_iter()
                .map(|e| RecordReveal {
                    at: utc(e.at),
                    reason: e.summary.0.get("reason").and_then(|r| r.as_str()).map(str::to_owned),
                    actor_id: e.actor_id,
                    action: e.action,
                    entity_id: e.entity_id,
                })
                .collect(),
        }
    }
}

/// A complete copy of what is held about one household — members (removed ones too) with
/// their ID numbers and phones in clear, tag history, visits, tasks, and who was given its
/// personal data when — for a resident's access request. The community's secretary only;
/// every call is audited with its reason, like a reveal; the answer is never cached.
#[utoipa::path(get, path = "/api/v1/households/{id}/record", tag = "households", operation_id = "household_record",
    params(PiiQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The household's complete record (Cache-Control: no-store)", body = HouseholdRecord),
        (status = 403, description = "Only the community's secretary copies a household's record", body = Problem, content_type = PROBLEM),
        (status = 422, description = "No reason given, or one with nothing visible in it or longer than 200 characters", body = Problem, content_type = PROBLEM),
    ))]
pub async fn household(api: Api, id: web::Path<String>, query: Params<PiiQuery>) -> ApiResult<HttpResponse> {
    let reason = query.into_inner().checked()?;
    let record = api.write(move |c, caller| ops::pii::household_record(c, caller, &id, &reason)).await?;
    Ok(no_store(HouseholdRecord::from(record)))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/households/{id}/record").route(web::get().to(household)));
}
