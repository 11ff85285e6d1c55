//! User accounts: `/users`, `/users/{id}`. The rules are in [`crate::ops::users`].

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::api::answer::{Api, view_from};
use crate::api::conditional::IfMatch;
use crate::api::input::{Body, Params};
use crate::api::pagination::{Page, PageQuery};
use crate::api::validate::{clean, declared, done, phone};
use crate::auth::{AuthUser, password, scope};
use crate::domain::text::required_line;
use crate::domain::{Role, mask};
use crate::error::{ApiResult, FieldError, PROBLEM_JSON as PROBLEM, Problem};
use crate::ops;
use crate::ops::users::{AccountEdit, Acting, NewAccount, unit_rule};
use crate::store::users::{self, ListFilter, UserRow};

/// A user account as clients see it; the phone number is masked.
#[derive(Serialize, ToSchema)]
pub struct UserOut {
    #[schema(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub id: String,
    #[schema(example = "wang.fang")]
    pub username: String,
    #[schema(example = "王芳")]
    pub display_name: String,
    /// Masked, e.g. `138****8000`.
    #[schema(example = "138****8000")]
    pub phone: Option<String>,
    pub role: Role,
    pub community_id: Option<String>,
    /// A street officer's street.
    pub street_id: Option<String>,
    /// A district officer's district.
    pub district_id: Option<String>,
    pub active: bool,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<UserRow> for UserOut {
    fn from(u: UserRow) -> Self {
        UserOut {
            role: u.role,
            phone: u.phone.as_deref().map(mask::phone),
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            community_id: u.community_id,
            street_id: u.street_id,
            district_id: u.district_id,
            active: u.active,
            version: u.version,
            created_at: u.created_at.and_utc(),
            updated_at: u.updated_at.and_utc(),
        }
    }
}

view_from!(UserRow => UserOut, version);

#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// 3–32 characters: letters, digits, `.`, `_`, `-`, starting with a letter or digit;
    /// stored in lower case.
    #[schema(example = "wang.fang", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{2,31}$")]
    pub username: String,
    /// 10–128 characters.
    #[schema(example = "a long passphrase", min_length = 10, max_length = 128)]
    pub password: String,
    #[schema(example = "王芳", min_length = 1, max_length = 64)]
    #[validate(length(max = 64, code = "too_long"), custom(function = "required_line"))]
    pub display_name: String,
    pub role: Role,
    /// Required for secretaries and grid workers (a secretary's own community by default);
    /// none for administrators.
    #[schema(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub community_id: Option<String>,
    /// Required for street officers (administrators create them); none for other roles.
    #[schema(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub street_id: Option<String>,
    /// Required for district officers (administrators create them); none for other roles.
    #[schema(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub district_id: Option<String>,
    /// A mainland mobile or a landline with area code; empty for none.
    #[schema(example = "13800138000", pattern = r"^(|1[3-9][0-9]{9}|(010|02[0-9]|0[3-9][0-9]{2})-?[0-9]{7,8})$")]
    pub phone: Option<String>,
}

/// A username as stored: in lower case, 3–32 letters, digits, `.`, `_` or `-`, starting with a
/// letter or digit.
fn username(raw: &str, errors: &mut Vec<FieldError>) -> String {
    let name = raw.to_lowercase();
    let ok_chars = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    let ok_start = name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if !(3..=32).contains(&name.len()) || !ok_chars || !ok_start {
        errors.push(FieldError::new(
            "username",
            "invalid_format",
            "must be 3–32 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
        ));
    }
    name
}

impl CreateUser {
    /// The account to create, every field checked at once (the community rule against the
    /// community the account will have: see `ops::users::placement`); then its password hashed.
    /// Blocking: call it off the async workers.
    pub fn checked(self) -> ApiResult<NewAccount> {
        let mut errors = declared(&self);
        let username = username(&self.username, &mut errors);
        errors.extend(password::check_policy("password", &self.password).err());
        let phone = phone("phone", self.phone.as_deref(), &mut errors);
        errors.extend(unit_rule(
            self.role,
            self.community_id.as_deref(),
            self.street_id.as_deref(),
            self.district_id.as_deref(),
        ));
        done(errors)?;
        Ok(NewAccount {
            username,
            display_name: clean(&self.display_name),
            role: self.role,
            community_id: self.community_id,
            street_id: self.street_id,
            district_id: self.district_id,
            phone,
            password_hash: password::hash(&self.password)?,
        })
    }
}

/// Creates an account. Administrators create anyone; a secretary creates grid workers of their
/// own community.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", operation_id = "create_user",
    request_body = CreateUser, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = UserOut),
        (status = 403, description = "The caller's role may not create this account", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The username is taken (`already_exists`)", body = Problem, content_type = PROBLEM),
    ))]
pub async fn create(api: Api, body: Body<CreateUser>) -> ApiResult<HttpResponse> {
    let mut input = body.into_inner();
    input.community_id = ops::users::placement(&api.caller, input.role, input.community_id)?;
    let account = web::block(move || input.checked()).await??;
    api.created(move |c, caller| ops::users::create(c, Acting::User(caller), account)).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListUsers {
    /// Only accounts of this community.
    #[param(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub community_id: Option<String>,
    pub role: Option<Role>,
    pub active: Option<bool>,
}

impl ListUsers {
    /// The filter of the query narrowed to the accounts the caller sees; `None` when that is
    /// none of them (a secretary asking for another community).
    fn within_reach(self, caller: &AuthUser, after: Option<String>) -> Option<ListFilter> {
        let mut filter = ListFilter {
            community_id: self.community_id,
            role: self.role,
            active: self.active,
            after,
            ..Default::default()
        };
        match caller.role {
            Role::Admin => {}
            Role::Secretary => {
                if filter.community_id.is_some() && filter.community_id != caller.community_id {
                    return None;
                }
                filter.community_id = caller.community_id.clone();
            }
            Role::GridWorker | Role::StreetOfficer | Role::DistrictOfficer => filter.only_id = Some(caller.id.clone()),
        }
        Some(filter)
    }
}

/// Lists the accounts the caller may see: all (admin), their community's (secretary), their
/// own (grid worker).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", operation_id = "list_users",
    params(ListUsers, PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of accounts", body = Page<UserOut>),
    ))]
pub async fn list(api: Api, query: Params<ListUsers>, page: PageQuery) -> ApiResult<web::Json<Page<UserOut>>> {
    let fetch = page.fetch()?;
    let Some(filter) = query.into_inner().within_reach(&api.caller, page.after_id()?) else {
        return Ok(web::Json(Page::empty()));
    };
    api.listed(move |c, _| Ok(Page::of(users::list(c, &filter, fetch)?, fetch, |u| vec![u.id.clone()]))).await
}

/// One account.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", operation_id = "get_user",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = UserOut),
    ))]
pub async fn get(api: Api, id: web::Path<String>) -> ApiResult<HttpResponse> {
    api.current(move |c, caller| scope::user(c, caller, &id)).await
}

#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    #[schema(example = "王芳", min_length = 1, max_length = 64)]
    #[validate(length(max = 64, code = "too_long"), custom(function = "required_line"))]
    pub display_name: Option<String>,
    /// A new phone number, or `null` (or empty) to remove it.
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<String>, example = "13800138000", pattern = r"^(|1[3-9][0-9]{9}|(010|02[0-9]|0[3-9][0-9]{2})-?[0-9]{7,8})$")]
    pub phone: Option<Option<String>>,
    /// `false` deactivates the account: its tokens stop working at once.
    pub active: Option<bool>,
    /// A new password (10–128 characters): the account's sessions end.
    #[schema(example = "another long passphrase", min_length = 10, max_length = 128)]
    pub password: Option<String>,
}

impl PatchUser {
    /// The change, every field checked at once; then a new password hashed. Blocking: call it
    /// off the async workers.
    fn checked(self) -> ApiResult<AccountEdit> {
        let mut errors = declared(&self);
        let phone = self.phone.map(|p| phone("phone", p.as_deref(), &mut errors));
        if let Some(pw) = &self.password {
            errors.extend(password::check_policy("password", pw).err());
        }
        done(errors)?;
        Ok(AccountEdit {
            display_name: self.display_name.as_deref().map(clean),
            phone,
            active: self.active,
            password_hash: self.password.as_deref().map(password::hash).transpose()?,
        })
    }
}

/// Changes an account. Anyone may change their own display name and phone; administrators
/// manage every account, secretaries the grid workers of their community.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", operation_id = "update_user",
    params(IfMatch), request_body = PatchUser, security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed account", body = UserOut),
        (status = 403, description = "The caller may not manage this account", body = Problem, content_type = PROBLEM),
    ))]
pub async fn patch(
    api: Api,
    if_match: IfMatch,
    id: web::Path<String>,
    body: Body<PatchUser>,
) -> ApiResult<HttpResponse> {
    let input = body.into_inner();
    let edit = web::block(move || input.checked()).await??;
    api.updated(move |c, caller| ops::users::edit(c, caller, &id, if_match.version(), edit)).await
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/users").route(web::get().to(list)).route(web::post().to(create)))
        .service(web::resource("/users/{id}").route(web::get().to(get)).route(web::patch().to(patch)));
}
