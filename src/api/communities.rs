//! Communities: `/communities`, `/communities/{id}`. The rules are in
//! [`crate::ops::communities`]; grids are in [`crate::api::grids`].

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::api::answer::{Api, view_from};
use crate::api::conditional::IfMatch;
use crate::api::input::Body;
use crate::api::pagination::{Page, PageQuery};
use crate::api::validate::{clean, declared, done};
use crate::auth::scope::{self, Reach};
use crate::domain::is_division_code;
use crate::domain::text::required_line;
use crate::error::{ApiResult, FieldError, PROBLEM_JSON as PROBLEM, Problem};
use crate::ops;
use crate::ops::communities::{CommunityEdit, NewCommunity};
use crate::store::communities::{self, CommunityRow};

#[derive(Serialize, ToSchema)]
pub struct CommunityOut {
    pub id: String,
    #[schema(example = "建新社区")]
    pub name: String,
    #[schema(example = "市中区")]
    pub district: String,
    #[schema(example = "七里山街道")]
    pub street: String,
    /// GB/T 2260 division code.
    #[schema(example = "370103")]
    pub division_code: String,
    #[schema(example = "Asia/Shanghai")]
    pub timezone: String,
    /// The street (街道) it belongs to; `street` and `district` are its and its district's names.
    pub street_id: String,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<CommunityRow> for CommunityOut {
    fn from(c: CommunityRow) -> Self {
        CommunityOut {
            id: c.id,
            name: c.name,
            district: c.district,
            street: c.street,
            division_code: c.division_code,
            timezone: c.timezone,
            street_id: c.street_id,
            version: c.version,
            created_at: c.created_at.and_utc(),
            updated_at: c.updated_at.and_utc(),
        }
    }
}

view_from!(CommunityRow => CommunityOut, version);

#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct CreateCommunity {
    #[schema(example = "建新社区", min_length = 1, max_length = 64)]
    #[validate(length(max = 64, code = "too_long"), custom(function = "required_line"))]
    pub name: String,
    #[schema(example = "市中区", min_length = 1, max_length = 64)]
    #[validate(length(max = 64, code = "too_long"), custom(function = "required_line"))]
    pub district: String,
    #[schema(example = "七里山街道", min_length = 1, max_length = 64)]
    #[validate(length(max = 64, code = "too_long"), custom(function = "required_line"))]
    pub street: String,
    /// GB/T 2260 county-level division code: a real province (first 2 digits), not a whole
    /// province (`xx0000`).
    #[schema(example = "370103", pattern = "^[0-9]{6}$")]
    pub division_code: String,
    /// IANA timezone; `Asia/Shanghai` by default.
    #[schema(example = "Asia/Shanghai", min_length = 1)]
    pub timezone: Option<String>,
    /// The street it belongs to, of the district of `division_code`; its name and its district's
    /// then replace `street` and `district`. Without one, the district's default street
    /// (made with the district when missing).
    #[schema(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub street_id: Option<String>,
}

pub(crate) fn check_division(code: &str, errors: &mut Vec<FieldError>) {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        errors.push(FieldError::new("division_code", "invalid_format", "must be a 6-digit GB/T 2260 division code"));
    } else if !is_division_code(code) {
        errors.push(FieldError::new("division_code", "unknown_division", "is not a county-level GB/T 2260 division"));
    }
}

fn check_timezone(tz: &str, errors: &mut Vec<FieldError>) {
    if tz.parse::<chrono_tz::Tz>().is_err() {
        errors.push(FieldError::new("timezone", "unknown_timezone", "must be an IANA timezone such as Asia/Shanghai"));
    }
}

impl CreateCommunity {
    fn checked(self) -> ApiResult<NewCommunity> {
        let mut errors = declared(&self);
        check_division(&self.division_code, &mut errors);
        let timezone = self.timezone.unwrap_or_else(|| "Asia/Shanghai".to_owned());
        check_timezone(&timezone, &mut errors);
        done(errors)?;
        Ok(NewCommunity {
            name: clean(&self.name),
            district: clean(&self.district),
            street: clean(&self.street),
            division_code: self.division_code,
            timezone,
            street_id: self.street_id,
        })
    }
}

/// Creates a community (administrators only).
#[utoipa::path(post, path = "/api/v1/communities", tag = "communities", operation_id = "create_community",
    request_body = CreateCommunity, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = CommunityOut),
        (status = 403, description = "Only administrators create communities", body = Problem, content_type = PROBLEM),
        (status = 409, description = "A community of that name exists in that street (`already_exists`)", body = Problem, content_type = PROBLEM),
    ))]
pub async fn create(api: Api, body: Body<CreateCommunity>) -> ApiResult<HttpResponse> {
    let input = body.into_inner().checked()?;
    api.created(move |c, caller| ops::communities::create(c, caller, input)).await
}

/// Lists communities: all for administrators, those of their street or district for officers,
/// their own for everyone else.
#[utoipa::path(get, path = "/api/v1/communities", tag = "communities", operation_id = "list_communities",
    params(PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of communities", body = Page<CommunityOut>),
    ))]
pub async fn list(api: Api, page: PageQuery) -> ApiResult<web::Json<Page<CommunityOut>>> {
    let (fetch, after) = (page.fetch()?, page.after_id()?);
    api.listed(move |c, caller| {
        let only = match scope::reach(c, caller)? {
            Reach::Everything => None,
            Reach::Communities(ids) => Some(ids),
            Reach::Community(id) | Reach::Grids { community_id: id, .. } => Some(vec![id]),
        };
        let rows = communities::list(c, only.as_deref(), after.as_deref(), fetch)?;
        Ok(Page::of(rows, fetch, |c| vec![c.id.clone()]))
    })
    .await
}

/// One community.
#[utoipa::path(get, path = "/api/v1/communities/{id}", tag = "communities", operation_id = "get_community",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The community", body = CommunityOut),
    ))]
pub async fn get(api: Api, id: web::Path<String>) -> ApiResult<HttpResponse> {
    api.current(move |c, caller| scope::community(c, caller, &id)).await
}

#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct PatchCommunity {
    #[schema(example = "建新社区", min_length = 1, max_length = 64)]
    #[validate(length(max = 64, code = "too_long"), custom(function = "required_line"))]
    pub name: Option<String>,
    #[schema(example = "市中区", min_length = 1, max_length = 64)]
    #[validate(length(max = 64, code = "too_long"), custom(function = "required_line"))]
    pub district: Option<String>,
    #[schema(example = "七里山街道", min_length = 1, max_length = 64)]
    #[validate(length(max = 64, code = "too_long"), custom(function = "required_line"))]
    pub street: Option<String>,
    /// IANA timezone.
    #[schema(example = "Asia/Shanghai", min_length = 1)]
    pub timezone: Option<String>,
    /// Moves the community to this street of its district (audited as `community.moved`); its
    /// name and its district's replace `street` and `district`.
    #[schema(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub street_id: Option<String>,
}

impl PatchCommunity {
    fn checked(self) -> ApiResult<CommunityEdit> {
        let mut errors = declared(&self);
        if let Some(tz) = &self.timezone {
            check_timezone(tz, &mut errors);
        }
        done(errors)?;
        let cleaned = |v: Option<String>| v.as_deref().map(clean);
        Ok(CommunityEdit {
            name: cleaned(self.name),
            district: cleaned(self.district),
            street: cleaned(self.street),
            timezone: self.timezone,
            street_id: self.street_id,
        })
    }
}

/// Changes a community (administrators). The division code is fixed: grid codes derive from it.
#[utoipa::path(patch, path = "/api/v1/communities/{id}", tag = "communities", operation_id = "update_community",
    params(IfMatch), request_body = PatchCommunity, security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed community", body = CommunityOut),
        (status = 403, description = "Only administrators change communities", body = Problem, content_type = PROBLEM),
        (status = 409, description = "A community of that name exists in that street (`already_exists`)", body = Problem, content_type = PROBLEM),
    ))]
pub async fn patch(
    api: Api,
    if_match: IfMatch,
    id: web::Path<String>,
    body: Body<PatchCommunity>,
) -> ApiResult<HttpResponse> {
    let edit = body.into_inner().checked()?;
    api.updated(move |c, caller| ops::communities::edit(c, caller, &id, if_match.version(), edit)).await
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/communities").route(web::get().to(list)).route(web::post().to(create)))
        .service(web::resource("/communities/{id}").route(web::get().to(get)).route(web::patch().to(patch)));
}
