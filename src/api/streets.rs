//! Districts (区) and streets (街道) above the community: `/districts`, `/streets`. The rules
//! are in [`crate::ops::streets`]; a community moves between streets with
//! `PATCH /communities/{id}` (`street_id`).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::api::answer::{Api, view_from};
use crate::api::communities::check_division;
use crate::api::conditional::IfMatch;
use crate::api::input::{Body, Params};
use crate::api::pagination::{Page, PageQuery};
use crate::api::validate::{clean, declared, done};
use crate::auth::{AuthUser, scope};
use crate::db::DbConn;
use crate::domain::text::required_line;
use crate::error::{ApiResult, FieldError, PROBLEM_JSON as PROBLEM, Problem};
use crate::ops;
use crate::ops::streets::{NewDistrict, NewStreet};
use crate::store::streets::{self, DistrictRow, StreetFilter, StreetRow};

/// The read, rename and delete handlers of a unit above the community (a district, a street):
/// one shape around the unit's scope check and operations, each handler with its own
/// `#[utoipa::path]`. The unit's strings go to utoipa as written (`tt`, `ident`: no invisible
/// groups around them).
macro_rules! unit_handlers {
    (
        path: $path:tt, out: $out:ident;
        get: $get:ident, $get_op:tt, $get_doc:tt, $found:tt, $scope:path;
        patch: $patch:ident, $patch_op:tt, $patch_doc:tt, $renamed:tt, $patch_403:tt, $rename:path
            $(, $patch_409:tt)?;
        delete: $delete:ident, $delete_op:tt, $delete_doc:tt, $delete_403:tt, $in_use:tt, $remove:path;
    ) => {
        #[doc = $get_doc]
        #[utoipa::path(get, path = $path, tag = "streets", operation_id = $get_op,
            security(("bearer" = [])),
            responses(
                (status = 200, description = $found, body = $out),
            ))]
        pub async fn $get(api: Api, id: web::Path<String>) -> ApiResult<HttpResponse> {
            api.current(move |c, caller| $scope(c, caller, &id)).await
        }

        #[doc = $patch_doc]
        #[utoipa::path(patch, path = $path, tag = "streets", operation_id = $patch_op,
            params(IfMatch), request_body = Rename, security(("bearer" = [])),
            responses(
                (status = 200, description = $renamed, body = $out),
                (status = 403, description = $patch_403, body = Problem, content_type = PROBLEM),
                $($patch_409,)?
            ))]
        pub async fn $patch(
            api: Api,
            if_match: IfMatch,
            id: web::Path<String>,
            body: Body<Rename>,
        ) -> ApiResult<HttpResponse> {
            let name = body.into_inner().checked()?;
            api.updated(move |c, caller| $rename(c, caller, &id, if_match.version(), name)).await
        }

        #[doc = $delete_doc]
        #[utoipa::path(delete, path = $path, tag = "streets", operation_id = $delete_op,
            security(("bearer" = [])),
            responses(
                (status = 204, description = "Deleted"),
                (status = 403, description = $delete_403, body = Problem, content_type = PROBLEM),
                (status = 409, description = $in_use, body = Problem, content_type = PROBLEM),
            ))]
        pub async fn $delete(api: Api, id: web::Path<String>) -> ApiResult<HttpResponse> {
            api.write(move |c, caller| $remove(c, caller, &id)).await?;
            Ok(HttpResponse::NoContent().finish())
        }
    };
}

#[derive(Serialize, ToSchema)]
pub struct DistrictOut {
    pub id: String,
    #[schema(example = "市中区")]
    pub name: String,
    /// GB/T 2260 county-level division code.
    #[schema(example = "370103")]
    pub division_code: String,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<DistrictRow> for DistrictOut {
    fn from(d: DistrictRow) -> Self {
        DistrictOut {
            id: d.id,
            name: d.name,
            division_code: d.division_code,
            version: d.version,
            created_at: d.created_at.and_utc(),
            updated_at: d.updated_at.and_utc(),
        }
    }
}

view_from!(DistrictRow => DistrictOut, version);

#[derive(Serialize, ToSchema)]
pub struct StreetOut {
    pub id: String,
    pub district_id: String,
    #[schema(example = "七里山街道")]
    pub name: String,
    /// The district's division code + 3 digits: the first 9 digits of its grids' CJ/T 349 codes.
    #[schema(example = "370103008")]
    pub code: String,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<StreetRow> for StreetOut {
    fn from(s: StreetRow) -> Self {
        StreetOut {
            id: s.id,
            district_id: s.district_id,
            name: s.name,
            code: s.code,
            version: s.version,
            created_at: s.created_at.and_utc(),
            updated_at: s.updated_at.and_utc(),
        }
    }
}

view_from!(StreetRow => StreetOut, version);

#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct CreateDistrict {
    #[schema(example = "市中区", min_length = 1, max_length = 64)]
    #[validate(length(max = 64, code = "too_long"), custom(function = "required_line"))]
    pub name: String,
    /// GB/T 2260 county-level division code.
    #[schema(example = "370103", pattern = "^[0-9]{6}$")]
    pub division_code: String,
}

impl CreateDistrict {
    fn checked(self) -> ApiResult<NewDistrict> {
        let mut errors = declared(&self);
        check_division(&self.division_code, &mut errors);
        done(errors)?;
        Ok(NewDistrict { name: clean(&self.name), division_code: self.division_code })
    }
}

/// A new name for a district or a street.
#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct Rename {
    #[schema(example = "七里山街道", min_length = 1, max_length = 64)]
    #[validate(length(max = 64, code = "too_long"), custom(function = "required_line"))]
    pub name: String,
}

impl Rename {
    fn checked(self) -> ApiResult<String> {
        done(declared(&self))?;
        Ok(clean(&self.name))
    }
}

#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct CreateStreet {
    #[schema(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub district_id: String,
    #[schema(example = "七里山街道", min_length = 1, max_length = 64)]
    #[validate(length(max = 64, code = "too_long"), custom(function = "required_line"))]
    pub name: String,
    /// The district's division code + 3 digits (CJ/T 349).
    #[schema(example = "370103008", pattern = "^[0-9]{9}$")]
    pub code: String,
}

impl CreateStreet {
    fn checked(self) -> ApiResult<NewStreet> {
        let mut errors = declared(&self);
        if self.code.len() != 9 || !self.code.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(FieldError::new("code", "invalid_format", "must be 9 digits: the division code + 3 digits"));
        }
        done(errors)?;
        Ok(NewStreet { district_id: self.district_id, name: clean(&self.name), code: self.code })
    }
}

/// Creates a district (administrators only).
#[utoipa::path(post, path = "/api/v1/districts", tag = "streets", operation_id = "create_district",
    request_body = CreateDistrict, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = DistrictOut),
        (status = 403, description = "Only administrators create districts", body = Problem, content_type = PROBLEM),
        (status = 409, description = "A district has that division code (`already_exists`)", body = Problem, content_type = PROBLEM),
    ))]
pub async fn create_district(api: Api, body: Body<CreateDistrict>) -> ApiResult<HttpResponse> {
    let input = body.into_inner().checked()?;
    api.created(move |c, caller| ops::streets::create_district(c, caller, input)).await
}

/// Lists districts: all for administrators, the caller's own for everyone else.
#[utoipa::path(get, path = "/api/v1/districts", tag = "streets", operation_id = "list_districts",
    params(PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of districts", body = Page<DistrictOut>),
    ))]
pub async fn list_districts(api: Api, page: PageQuery) -> ApiResult<web::Json<Page<DistrictOut>>> {
    let (fetch, after) = (page.fetch()?, page.after_id()?);
    api.listed(move |c, caller| {
        let rows = districts(c, caller, after.as_deref(), fetch)?;
        Ok(Page::of(rows, fetch, |d| vec![d.id.clone()]))
    })
    .await
}

/// The districts the caller works in, by id, after a cursor (the API's list and the console's).
pub fn districts(c: &mut DbConn, caller: &AuthUser, after: Option<&str>, fetch: i64) -> ApiResult<Vec<DistrictRow>> {
    let only = scope::home(c, caller)?.map(|(_, district)| district);
    Ok(streets::list_districts(c, only.as_deref(), after, fetch)?)
}

unit_handlers! {
    path: "/api/v1/districts/{id}", out: DistrictOut;
    get: get_district, "get_district", "One district.", "The district", scope::district;
    patch: patch_district, "update_district", "Renames a district (administrators). Its division code is fixed.",
        "The renamed district", "Only administrators change districts", ops::streets::rename_district;
    delete: delete_district, "delete_district", "Deletes a district without streets or officers (administrators).",
        "Only administrators delete districts", "The district still has streets or officers (`in_use`)",
        ops::streets::delete_district;
}

/// Creates a street of a district (administrators only).
#[utoipa::path(post, path = "/api/v1/streets", tag = "streets", operation_id = "create_street",
    request_body = CreateStreet, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = StreetOut),
        (status = 403, description = "Only administrators create streets", body = Problem, content_type = PROBLEM),
        (status = 409, description = "A street has that code, or that name in the district (`already_exists`)", body = Problem, content_type = PROBLEM),
    ))]
pub async fn create_street(api: Api, body: Body<CreateStreet>) -> ApiResult<HttpResponse> {
    let input = body.into_inner().checked()?;
    api.created(move |c, caller| ops::streets::create_street(c, caller, input)).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListStreets {
    /// Only the streets of this district.
    pub district_id: Option<String>,
}

/// Lists streets by code: all for administrators, those of their district for a district
/// officer, the caller's own street for everyone else.
#[utoipa::path(get, path = "/api/v1/streets", tag = "streets", operation_id = "list_streets",
    params(ListStreets, PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of streets", body = Page<StreetOut>),
    ))]
pub async fn list_streets(
    api: Api,
    query: Params<ListStreets>,
    page: PageQuery,
) -> ApiResult<web::Json<Page<StreetOut>>> {
    let (fetch, after) = (page.fetch()?, page.after_id()?);
    let wanted = query.into_inner().district_id;
    api.listed(move |c, caller| {
        let rows = streets_in_reach(c, caller, wanted, after.as_deref(), fetch)?;
        Ok(Page::of(rows, fetch, |s| vec![s.code.clone()]))
    })
    .await
}

/// The streets the caller works in (of `district_id` only, if given), by code, after a cursor
/// (the API's list and the console's).
pub fn streets_in_reach(
    c: &mut DbConn,
    caller: &AuthUser,
    district_id: Option<String>,
    after: Option<&str>,
    fetch: i64,
) -> ApiResult<Vec<StreetRow>> {
    let mut filter = StreetFilter { district_id, only: None };
    if let Some((street, district)) = scope::home(c, caller)? {
        if filter.district_id.as_ref().is_some_and(|d| *d != district) {
            return Ok(Vec::new());
        }
        filter = StreetFilter { district_id: Some(district), only: street };
    }
    Ok(streets::list_streets(c, &filter, after, fetch)?)
}

unit_handlers! {
    path: "/api/v1/streets/{id}", out: StreetOut;
    get: get_street, "get_street", "One street.", "The street", scope::street;
    patch: patch_street, "update_street", "Renames a street (administrators). Its code is fixed.",
        "The renamed street", "Only administrators change streets", ops::streets::rename_street,
        (status = 409, description = "Another street of the district has that name (`already_exists`)", body = Problem, content_type = PROBLEM);
    delete: delete_street, "delete_street", "Deletes a street without communities or officers (administrators).",
        "Only administrators delete streets", "The street still has communities or officers (`in_use`)",
        ops::streets::delete_street;
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/districts").route(web::get().to(list_districts)).route(web::post().to(create_district)),
    )
    .service(
        web::resource("/districts/{id}")
            .route(web::get().to(get_district))
            .route(web::patch().to(patch_district))
            .route(web::delete().to(delete_district)),
    )
    .service(web::resource("/streets").route(web::get().to(list_streets)).route(web::post().to(create_street)))
    .service(
        web::resource("/streets/{id}")
            .route(web::get().to(get_street))
            .route(web::patch().to(patch_street))
            .route(web::delete().to(delete_street)),
    );
}
