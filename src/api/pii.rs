//! The audited reveal of personal data: `/members/{id}/pii` and `/households/{id}/pii`.
//!
//! Every other answer shows ID numbers and phones masked (see [`crate::domain::mask`]). The full
//! values go to the community's secretary and the grid's workers only, for a stated reason; each
//! call writes an audit event with it ([`crate::ops::pii`]), and the answer is never cached.

use std::collections::BTreeMap;

use actix_web::http::header::{CACHE_CONTROL, HeaderValue};
use actix_web::{HttpResponse, web};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::response::Response;
use utoipa::{IntoParams, IntoResponses, ToSchema};
use validator::Validate;

use crate::api::answer::Api;
use crate::api::contract::problem;
use crate::api::input::Params;
use crate::api::validate::{clean, declared, done};
use crate::domain::text::required_line;
use crate::error::ApiResult;
use crate::ops;

#[derive(Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
pub struct PiiQuery {
    /// Why the full values are needed; recorded in the audit log.
    #[param(required = true, min_length = 1, max_length = 200, example = "联系家属办理低保复核")]
    #[validate(
        required(message = "say why the full values are needed"),
        length(max = 200, code = "too_long"),
        custom(function = "required_line")
    )]
    pub reason: Option<String>,
}

impl PiiQuery {
    /// The reason as recorded.
    pub fn checked(self) -> ApiResult<String> {
        done(declared(&self))?;
        Ok(clean(self.reason.as_deref().unwrap_or_default()))
    }
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

/// Why either reveal is refused: the same rule ([`crate::ops::pii`]) decides both.
struct Refusals;

impl IntoResponses for Refusals {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        [
            ("403", "Only the community's secretary and the grid's workers see personal data"),
            ("422", "No reason given, or one with nothing visible in it or longer than 200 characters"),
        ]
        .into_iter()
        .map(|(status, description)| (status.to_owned(), RefOr::T(problem(description).build())))
        .collect()
    }
}

pub fn no_store<T: Serialize>(body: T) -> HttpResponse {
    HttpResponse::Ok().insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store"))).json(body)
}

/// Reveals a member's full ID number, birth date and phone, to the community's secretary or a
/// worker of the grid. Every call is audited with its reason; the answer is never cached.
#[utoipa::path(get, path = "/api/v1/members/{id}/pii", tag = "members", operation_id = "reveal_member_pii",
    params(PiiQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The full values (Cache-Control: no-store)", body = MemberPii),
        Refusals,
    ))]
pub async fn member(api: Api, id: web::Path<String>, query: Params<PiiQuery>) -> ApiResult<HttpResponse> {
    let reason = query.into_inner().checked()?;
    let m = api.write(move |c, caller| ops::pii::reveal_member(c, caller, &id, &reason)).await?;
    Ok(no_store(MemberPii { id: m.id, id_number: m.id_number, birth_date: m.birth_date, phone: m.phone }))
}

/// Reveals a household's full phone number, to the community's secretary or a worker of the
/// grid. Every call is audited with its reason; the answer is never cached.
#[utoipa::path(get, path = "/api/v1/households/{id}/pii", tag = "households", operation_id = "reveal_household_pii",
    params(PiiQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The full values (Cache-Control: no-store)", body = HouseholdPii),
        Refusals,
    ))]
pub async fn household(api: Api, id: web::Path<String>, query: Params<PiiQuery>) -> ApiResult<HttpResponse> {
    let reason = query.into_inner().checked()?;
    let h = api.write(move |c, caller| ops::pii::reveal_household(c, caller, &id, &reason)).await?;
    Ok(no_store(HouseholdPii { id: h.id, phone: h.phone }))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/members/{id}/pii").route(web::get().to(member)))
        .service(web::resource("/households/{id}/pii").route(web::get().to(household)));
}
