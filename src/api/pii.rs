//! The audited reveal of personal data: `/members/{id}/pii` and `/households/{id}/pii`.
//!
//! Every other answer shows ID numbers and phones masked (see [`crate::domain::mask`]). The full
//! values go to the community's secretary and the grid's workers only, for a stated reason; each
//! call writes an audit event with it, and the answer is never cached.

use actix_web::http::header::{CACHE_CONTROL, HeaderValue};
use actix_web::{HttpResponse, web};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::input::Params;
use crate::api::validate::{done, text};
use crate::auth::{AuthUser, scope};
use crate::db::DbConn;
use crate::domain::Role;
use crate::error::{ApiError, ApiResult, PROBLEM_JSON as PROBLEM, Problem};
use crate::store::audit::{self, Event};
use crate::store::households::HouseholdRow;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PiiQuery {
    /// Why the full values are needed; recorded in the audit log.
    #[param(required = true, min_length = 1, max_length = 200, example = "联系家属办理低保复核")]
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MemberPii {
    pub id: String,
    /// The full ID number.
    pub id_number: Option<String>,
    /// The full birth date.
    pub birth_date: Option<NaiveDate>,
    /// The full phone number.
    pub phone: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct HouseholdPii {
    pub id: String,
    /// The household's full phone number.
    pub phone: Option<String>,
}

/// The checks and the audit event every reveal shares: the caller's role, a visible reason.
fn audit_reveal(
    conn: &mut DbConn,
    caller: &AuthUser,
    household: &HouseholdRow,
    reason: Option<String>,
    action: &str,
    entity_type: &str,
    entity_id: &str,
) -> ApiResult<()> {
    caller.require(&[Role::Secretary, Role::GridWorker])?;
    let raw = reason.ok_or_else(|| ApiError::invalid("reason", "required", "say why the full values are needed"))?;
    let mut errors = Vec::new();
    let reason = text("reason", &raw, 200, &mut errors);
    done(errors)?;
    audit::record(
        conn,
        &caller.actor(),
        Event {
            action,
            entity_type,
            entity_id: Some(entity_id),
            community_id: Some(&household.community_id),
            summary: serde_json::json!({"reason": reason, "household_id": household.id}),
        },
    )?;
    Ok(())
}

fn no_store<T: Serialize>(body: T) -> HttpResponse {
    HttpResponse::Ok().insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store"))).json(body)
}

/// Reveals a member's full ID number, birth date and phone, to the community's secretary or a
/// worker of the grid. Every call is audited with its reason; the answer is never cached.
#[utoipa::path(get, path = "/api/v1/members/{id}/pii", tag = "members", operation_id = "reveal_member_pii",
    params(("id" = String, Path, description = "Member id"), PiiQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The full values (Cache-Control: no-store)", body = MemberPii),
        (status = 400, description = "Malformed query", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Only the community's secretary and the grid's workers see personal data", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such member in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 422, description = "No reason given, or one with nothing visible in it", body = Problem, content_type = PROBLEM),
    ))]
pub async fn member(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
    query: Params<PiiQuery>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let reason = query.into_inner().reason;
    let out = state
        .db
        .write(move |conn| {
            let (m, household) = scope::member(conn, &caller, &id)?;
            audit_reveal(conn, &caller, &household, reason, "member.pii_revealed", "member", &m.id)?;
            Ok(MemberPii { id: m.id, id_number: m.id_number, birth_date: m.birth_date, phone: m.phone })
        })
        .await?;
    Ok(no_store(out))
}

/// Reveals a household's full phone number, to the community's secretary or a worker of the
/// grid. Every call is audited with its reason; the answer is never cached.
#[utoipa::path(get, path = "/api/v1/households/{id}/pii", tag = "households", operation_id = "reveal_household_pii",
    params(("id" = String, Path, description = "Household id"), PiiQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The full values (Cache-Control: no-store)", body = HouseholdPii),
        (status = 400, description = "Malformed query", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Only the community's secretary and the grid's workers see personal data", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such household in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 422, description = "No reason given, or one with nothing visible in it", body = Problem, content_type = PROBLEM),
    ))]
pub async fn household(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
    query: Params<PiiQuery>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let reason = query.into_inner().reason;
    let out = state
        .db
        .write(move |conn| {
            let h = scope::household(conn, &caller, &id)?;
            audit_reveal(conn, &caller, &h, reason, "household.pii_revealed", "household", &h.id)?;
            Ok(HouseholdPii { id: h.id, phone: h.phone })
        })
        .await?;
    Ok(no_store(out))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/members/{id}/pii").route(web::get().to(member)))
        .service(web::resource("/households/{id}/pii").route(web::get().to(household)));
}
