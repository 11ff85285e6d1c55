//! Members of households: `/households/{id}/members`, `/members/{id}`. The rules are in
//! [`crate::ops::members`]; the audited reveal of their personal data is [`crate::api::pii`].

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::api::answer::{Api, view_from};
use crate::api::conditional::IfMatch;
use crate::api::input::{Body, Day};
use crate::api::pagination::{Page, PageQuery};
use crate::api::validate::{clean, clean_optional, client_id, declared, done, done_with, phone};
use crate::auth::scope;
use crate::domain::text::{optional_lines, required_line};
use crate::domain::{Gender, IdNumber, Relation, mask};
use crate::error::{ApiResult, FieldError, PROBLEM_JSON as PROBLEM, Problem};
use crate::ops;
use crate::ops::members::{Identity, MemberEdit, NewMember, check_birth_date, parse_id_number};
use crate::store::households::{self, MemberRow};

#[derive(Serialize, ToSchema)]
pub struct MemberOut {
    pub id: String,
    pub household_id: String,
    #[schema(example = "张桂兰")]
    pub name: String,
    pub gender: Gender,
    /// The year of birth; the full date comes with the ID number from `/members/{id}/pii`
    /// (see the masking rule in the README).
    #[schema(example = 1941)]
    pub birth_year: Option<i32>,
    /// Masked: the last 4 characters only, e.g. `**************1234`; the full value comes
    /// from `/members/{id}/pii`.
    #[schema(example = "**************1234")]
    pub id_number: Option<String>,
    /// Masked, e.g. `138****8000`.
    #[schema(example = "138****8000")]
    pub phone: Option<String>,
    pub relation: Relation,
    pub living_alone: bool,
    /// 1 (most severe) to 4, or none.
    pub disability_grade: Option<i32>,
    pub chronic_illness: bool,
    pub serious_illness: bool,
    /// 低保.
    pub low_income: bool,
    /// 特困.
    pub extreme_poverty: bool,
    pub notes: Option<String>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<MemberRow> for MemberOut {
    fn from(m: MemberRow) -> Self {
        MemberOut {
            gender: m.gender,
            relation: m.relation,
            id_number: m.id_number.as_deref().map(mask::id_number),
            phone: m.phone.as_deref().map(mask::phone),
            id: m.id,
            household_id: m.household_id,
            name: m.name,
            birth_year: m.birth_date.map(mask::birth_year),
            living_alone: m.living_alone,
            disability_grade: m.disability_grade,
            chronic_illness: m.chronic_illness,
            serious_illness: m.serious_illness,
            low_income: m.low_income,
            extreme_poverty: m.extreme_poverty,
            notes: m.notes,
            version: m.version,
            created_at: m.created_at.and_utc(),
            updated_at: m.updated_at.and_utc(),
        }
    }
}

view_from!(MemberRow => MemberOut, version);

#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct CreateMember {
    /// Optional client-chosen UUID for safe retries (same body → 200, different body → 409).
    #[schema(format = Uuid, example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub id: Option<String>,
    #[schema(example = "张桂兰", min_length = 1, max_length = 32)]
    #[validate(length(max = 32, code = "too_long"), custom(function = "required_line"))]
    pub name: String,
    pub gender: Gender,
    /// Taken from the ID number when omitted; a past date after 1900.
    #[schema(value_type = Option<NaiveDate>)]
    pub birth_date: Option<Day>,
    /// 居民身份证号 (GB 11643-1999: 17 digits and a check character); must agree with
    /// birth_date and gender. Empty for none.
    #[schema(example = "11010519491231002X", pattern = "^(|[0-9]{17}[0-9Xx])$")]
    pub id_number: Option<String>,
    /// A mainland mobile or a landline with area code; empty for none.
    #[schema(example = "13800138000", pattern = r"^(|1[3-9][0-9]{9}|(010|02[0-9]|0[3-9][0-9]{2})-?[0-9]{7,8})$")]
    pub phone: Option<String>,
    pub relation: Relation,
    #[serde(default)]
    pub living_alone: bool,
    /// 1 (most severe) to 4, or none.
    #[schema(minimum = 1, maximum = 4, example = 2)]
    #[serde(default, deserialize_with = "crate::api::optional_integral")]
    #[validate(range(min = 1, max = 4, code = "out_of_range", message = "must be 1–4, or null for none"))]
    pub disability_grade: Option<i32>,
    #[serde(default)]
    pub chronic_illness: bool,
    #[serde(default)]
    pub serious_illness: bool,
    #[serde(default)]
    pub low_income: bool,
    #[serde(default)]
    pub extreme_poverty: bool,
    #[schema(example = "患高血压，需定期随访", max_length = 2000)]
    #[validate(length(max = 2000, code = "too_long"), custom(function = "optional_lines"))]
    pub notes: Option<String>,
}

/// The `id_number` field: empty means none.
fn id_number(raw: Option<&str>, errors: &mut Vec<FieldError>) -> Option<IdNumber> {
    let raw = raw.filter(|s| !s.is_empty())?;
    parse_id_number(raw).map_err(|e| errors.push(e)).ok()
}

impl CreateMember {
    pub(crate) fn checked(self) -> ApiResult<NewMember> {
        let id = client_id(self.id.as_deref())?;
        let mut errors = declared(&self);
        let phone = phone("phone", self.phone.as_deref(), &mut errors);
        let id_number = id_number(self.id_number.as_deref(), &mut errors);
        let identity = done_with(errors, Identity::new(self.gender, self.birth_date.map(|d| d.0), id_number))?;
        Ok(NewMember {
            id,
            name: clean(&self.name),
            identity,
            phone,
            relation: self.relation,
            living_alone: self.living_alone,
            disability_grade: self.disability_grade,
            chronic_illness: self.chronic_illness,
            serious_illness: self.serious_illness,
            low_income: self.low_income,
            extreme_poverty: self.extreme_poverty,
            notes: clean_optional(self.notes.as_deref()),
        })
    }
}

/// Adds a member to a household.
#[utoipa::path(post, path = "/api/v1/households/{id}/members", tag = "members", operation_id = "create_member",
    request_body = CreateMember, security(("bearer" = [])),
    responses(
        (status = 201, description = "Added", body = MemberOut),
        (status = 200, description = "The caller added this member with this id before: the stored member", body = MemberOut),
        (status = 409, description = "The id belongs to another record or another request, or to a member removed since (`id_conflict`); or the household was removed (`household_removed`)", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid fields, or an ID number that disagrees with the birth date or gender (`id_number`)", body = Problem, content_type = PROBLEM),
    ))]
pub async fn create(api: Api, household_id: web::Path<String>, body: Body<CreateMember>) -> ApiResult<HttpResponse> {
    let input = body.into_inner().checked()?;
    api.saved(move |c, caller| ops::members::add(c, caller, &household_id, input)).await
}

/// The current members of a household.
#[utoipa::path(get, path = "/api/v1/households/{id}/members", tag = "members", operation_id = "list_members",
    params(PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of members", body = Page<MemberOut>),
    ))]
pub async fn list(api: Api, household_id: web::Path<String>, page: PageQuery) -> ApiResult<web::Json<Page<MemberOut>>> {
    let (fetch, after) = (page.fetch()?, page.after_id()?);
    api.listed(move |c, caller| {
        scope::household(c, caller, &household_id)?;
        let rows = households::list_members(c, &household_id, after.as_deref(), fetch)?;
        Ok(Page::of(rows, fetch, |m| vec![m.id.clone()]))
    })
    .await
}

/// One member.
#[utoipa::path(get, path = "/api/v1/members/{id}", tag = "members", operation_id = "get_member",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The member", body = MemberOut),
    ))]
pub async fn get(api: Api, id: web::Path<String>) -> ApiResult<HttpResponse> {
    api.current(move |c, caller| Ok(scope::member(c, caller, &id)?.0)).await
}

#[derive(Deserialize, ToSchema, Validate, Default)]
#[serde(deny_unknown_fields)]
pub struct PatchMember {
    #[schema(example = "张桂兰", min_length = 1, max_length = 32)]
    #[validate(length(max = 32, code = "too_long"), custom(function = "required_line"))]
    pub name: Option<String>,
    pub gender: Option<Gender>,
    /// Only with `id_number` while the member has one (the number holds the birth date).
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<NaiveDate>)]
    pub birth_date: Option<Option<Day>>,
    /// A new ID number, or `null` (or empty) to remove it.
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<String>, example = "11010519491231002X", pattern = "^(|[0-9]{17}[0-9Xx])$")]
    pub id_number: Option<Option<String>>,
    /// A new phone number, or `null` (or empty) to remove it.
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<String>, example = "13800138000", pattern = r"^(|1[3-9][0-9]{9}|(010|02[0-9]|0[3-9][0-9]{2})-?[0-9]{7,8})$")]
    pub phone: Option<Option<String>>,
    pub relation: Option<Relation>,
    pub living_alone: Option<bool>,
    /// 1 (most severe) to 4, or `null` for none.
    #[serde(default, deserialize_with = "crate::api::double_option_integral")]
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 4, example = 2)]
    #[validate(range(min = 1, max = 4, code = "out_of_range", message = "must be 1–4, or null for none"))]
    pub disability_grade: Option<Option<i32>>,
    pub chronic_illness: Option<bool>,
    pub serious_illness: Option<bool>,
    pub low_income: Option<bool>,
    pub extreme_poverty: Option<bool>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<String>, example = "患高血压，需定期随访", max_length = 2000)]
    #[validate(length(max = 2000, code = "too_long"), custom(function = "optional_lines"))]
    pub notes: Option<Option<String>>,
}

impl PatchMember {
    /// The fields on their own; whether the ID number agrees with the birth date and gender
    /// depends on what is stored, and is the operation's to check.
    pub(crate) fn checked(self) -> ApiResult<MemberEdit> {
        let mut errors = declared(&self);
        let birth_date = self.birth_date.map(|b| b.map(|d| d.0));
        errors.extend(birth_date.flatten().and_then(|d| check_birth_date(d).err()));
        let id_number = self.id_number.map(|n| id_number(n.as_deref(), &mut errors));
        let phone = self.phone.map(|p| phone("phone", p.as_deref(), &mut errors));
        done(errors)?;
        Ok(MemberEdit {
            name: self.name.as_deref().map(clean),
            gender: self.gender,
            birth_date,
            id_number,
            phone,
            relation: self.relation,
            living_alone: self.living_alone,
            disability_grade: self.disability_grade,
            chronic_illness: self.chronic_illness,
            serious_illness: self.serious_illness,
            low_income: self.low_income,
            extreme_poverty: self.extreme_poverty,
            notes: self.notes.map(|n| clean_optional(n.as_deref())),
        })
    }
}

/// Changes a member; `null` clears an optional field. The ID number must still agree with the
/// birth date and gender afterwards. Nothing is checked against the stored ID number or birth
/// date, which answers show masked: a new ID number brings its own birth date unless one is
/// sent with it, and a birth date alone is refused (422 `id_number_required`) while the member
/// has an ID number.
#[utoipa::path(patch, path = "/api/v1/members/{id}", tag = "members", operation_id = "update_member",
    params(IfMatch), request_body = PatchMember, security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed member", body = MemberOut),
        (status = 409, description = "The household was removed: it takes no more changes (`household_removed`)", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid fields, or an ID number that would disagree with the birth date or gender (`id_number`)", body = Problem, content_type = PROBLEM),
    ))]
pub async fn patch(
    api: Api,
    if_match: IfMatch,
    id: web::Path<String>,
    body: Body<PatchMember>,
) -> ApiResult<HttpResponse> {
    let edit = body.into_inner().checked()?;
    api.updated(move |c, caller| ops::members::edit(c, caller, &id, if_match.version(), edit)).await
}

/// Removes a member from a household (moved out, deceased, registered in error).
#[utoipa::path(delete, path = "/api/v1/members/{id}", tag = "members", operation_id = "remove_member",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 409, description = "The household was removed: it takes no more changes (`household_removed`)", body = Problem, content_type = PROBLEM),
    ))]
pub async fn remove(api: Api, id: web::Path<String>) -> ApiResult<HttpResponse> {
    api.write(move |c, caller| ops::members::remove(c, caller, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/households/{id}/members").route(web::get().to(list)).route(web::post().to(create)))
        .service(
            web::resource("/members/{id}")
                .route(web::get().to(get))
                .route(web::patch().to(patch))
                .route(web::delete().to(remove)),
        );
}
