//! Accounts: creating one (the API and `gridlight user create`), changing one (name, phone,
//! activation, a password reset), the caller's own password, and the sessions an account signs
//! in with (login, refresh, logout).
//!
//! Passwords arrive here hashed: argon2 is slow on purpose, and runs off the async workers before
//! the transaction, never inside it.

use chrono::NaiveDateTime;
use serde_json::{Value, json};

use crate::auth::{AuthUser, scope, throttle};
use crate::db::DbConn;
use crate::domain::Role;
use crate::error::{ApiError, ApiResult, ErrorCode, FieldError};
use crate::ops::{applied, audit_event, check_version};
use crate::store::audit::{self, Actor, Event};
use crate::store::sessions::{self, Rotation};
use crate::store::users::{self as store, NewUser, UserRow};
use crate::store::{communities, new_id, now, streets, tasks};

/// Who acts on an account.
#[derive(Clone, Copy)]
pub enum Acting<'a> {
    /// A signed-in account, under its role's rules.
    User(&'a AuthUser),
    /// The operator of the deployment at the command line (how the first administrator is
    /// made): no role rules; audited without an actor.
    Operator,
}

/// An account to create; checked.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// In lower case.
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub community_id: Option<String>,
    /// A street officer's street.
    pub street_id: Option<String>,
    /// A district officer's district.
    pub district_id: Option<String>,
    /// Normalised.
    pub phone: Option<String>,
    /// The password's PHC string.
    pub password_hash: String,
}

/// Where `caller` may create an account of `role`: administrators anywhere; a secretary grid
/// workers of their own community, which is where they go when no community is named. 403
/// otherwise. Entry points call it before checking the fields, so that the community rule
/// ([`unit_rule`]) sees the community the account will have.
pub fn placement(caller: &AuthUser, role: Role, community_id: Option<String>) -> ApiResult<Option<String>> {
    caller.require(&[Role::Admin, Role::Secretary])?;
    if caller.role == Role::Admin {
        return Ok(community_id);
    }
    if role != Role::GridWorker {
        return Err(ApiError::Forbidden("a secretary may only create grid worker accounts".into()));
    }
    match community_id {
        None => Ok(caller.community_id.clone()),
        Some(c) if caller.community_id.as_ref() == Some(&c) => Ok(Some(c)),
        Some(_) => Err(ApiError::Forbidden("a secretary creates accounts in their own community only".into())),
    }
}

/// The unit an account of `role` is held to, and only that one: none (administrators), a
/// community (secretaries and grid workers), a street (street officers) or a district (district
/// officers).
pub fn unit_rule(
    role: Role,
    community_id: Option<&str>,
    street_id: Option<&str>,
    district_id: Option<&str>,
) -> Vec<FieldError> {
    let wanted = match role {
        Role::Admin => None,
        Role::Secretary | Role::GridWorker => Some("community_id"),
        Role::StreetOfficer => Some("street_id"),
        Role::DistrictOfficer => Some("district_id"),
    };
    let mut errors = Vec::new();
    for (field, given) in [("community_id", community_id), ("street_id", street_id), ("district_id", district_id)] {
        match (wanted == Some(field), given.is_some()) {
            (true, false) => errors.push(FieldError::new(field, "required", format!("a {} needs one", role.as_str()))),
            (false, true) => {
                errors.push(FieldError::new(field, "not_allowed", format!("a {} has none", role.as_str())))
            }
            _ => {}
        }
    }
    errors
}

/// Creates an account in an existing community (422 `unknown` otherwise); a taken username is
/// 409 `already_exists`.
pub fn create(conn: &mut DbConn, by: Acting<'_>, a: NewAccount) -> ApiResult<UserRow> {
    let (community_id, actor) = match by {
        Acting::User(caller) => (placement(caller, a.role, a.community_id)?, caller.actor()),
        Acting::Operator => (a.community_id, Actor::default()),
    };
    let errors = unit_rule(a.role, community_id.as_deref(), a.street_id.as_deref(), a.district_id.as_deref());
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if let Some(c) = &community_id
        && !communities::exists(conn, c)?
    {
        return Err(ApiError::invalid("community_id", "unknown", "no such community"));
    }
    if let Some(s) = &a.street_id
        && streets::find_street(conn, s)?.is_none()
    {
        return Err(ApiError::invalid("street_id", "unknown", "no such street"));
    }
    if let Some(d) = &a.district_id
        && streets::find_district(conn, d)?.is_none()
    {
        return Err(ApiError::invalid("district_id", "unknown", "no such district"));
    }
    let (id, at) = (new_id(), now());
    store::insert(
        conn,
        &NewUser {
            id: &id,
            username: &a.username,
            display_name: &a.display_name,
            phone: a.phone.as_deref(),
            role: a.role.as_str(),
            community_id: community_id.as_deref(),
            password_hash: &a.password_hash,
            street_id: a.street_id.as_deref(),
            district_id: a.district_id.as_deref(),
        },
        at,
    )?;
    let summary = json!({"username": a.username, "role": a.role});
    audit::record(conn, &actor, account_event("user.created", &id, community_id.as_deref(), summary))?;
    store::find(conn, &id)?.ok_or_else(|| ApiError::internal(anyhow::anyhow!("user vanished after insert")))
}

/// A change to an account; checked, a new password hashed. `None` leaves a field alone.
pub use crate::store::users::AccountEdit;

/// Changes an account. Everyone changes their own name and phone; managing an account
/// (activation, a password reset) is for administrators (anyone) and secretaries (the grid
/// workers of their community), and never of one's own. Deactivation ends the account's grid
/// assignments and hands its open tasks on; deactivation and a new password end its sessions.
pub fn edit(
    conn: &mut DbConn,
    caller: &AuthUser,
    id: &str,
    expected: Option<&str>,
    e: AccountEdit,
) -> ApiResult<UserRow> {
    let manages = e.active.is_some() || e.password_hash.is_some();
    if manages && caller.id == id {
        return Err(if e.active == Some(false) {
            ApiError::invalid("active", "not_allowed", "you cannot deactivate your own account")
        } else {
            ApiError::Forbidden("change your own password with PUT /api/v1/me/password".into())
        });
    }
    let target = scope::user_for_update(conn, caller, id)?;
    if manages || caller.id != target.id {
        scope::manage_user(caller, &target)?;
    }
    check_version(expected, target.version)?;
    let at = now();
    let ends_sessions = e.password_hash.is_some() || e.active == Some(false);
    let fields = audit::fields_set([
        ("display_name", e.display_name.is_some()),
        ("phone", e.phone.is_some()),
        ("active", e.active.is_some()),
        ("password", e.password_hash.is_some()),
    ]);
    applied(store::update(conn, &target.id, target.version, &e, ends_sessions.then_some(at), at)?, "account")?;
    if ends_sessions {
        sessions::revoke_all_for_user(conn, &target.id)?;
    }
    // A new password set by a manager ends the lock that guesses at the old one caused.
    if e.password_hash.is_some() {
        throttle::succeeded(conn, &target.username)?;
    }
    let grids_left = if e.active == Some(false) && target.active { leave_grids(conn, &target.id, at)? } else { vec![] };
    let summary = json!({"fields": fields, "active": e.active, "grids_left": grids_left});
    audit_event(conn, caller, account_event("user.updated", &target.id, target.community_id.as_deref(), summary))?;
    store::find(conn, &target.id)?.ok_or_else(|| ApiError::not_found("user"))
}

/// A deactivated account serves no grid: its assignments end, and its open tasks go to each
/// grid's primary worker, or to the secretary's queue. Returns the grids it left.
fn leave_grids(conn: &mut DbConn, user_id: &str, at: NaiveDateTime) -> ApiResult<Vec<String>> {
    let grids = communities::unassign_everywhere(conn, user_id)?;
    for grid_id in &grids {
        tasks::hand_on(conn, grid_id, at)?;
        communities::touch_grid(conn, grid_id, at)?;
    }
    Ok(grids)
}

/// Sets the caller's new password once the throttle found the current one right
/// (`auth::throttle`): the throttle's count starts afresh and every session of the account
/// ends, this one included. A change to the account since this request read it is 409
/// `concurrent_change`.
pub fn change_own_password(conn: &mut DbConn, caller: &AuthUser, password_hash: String) -> ApiResult<()> {
    let at = now();
    let edit = AccountEdit { password_hash: Some(password_hash), ..Default::default() };
    if !store::update(conn, &caller.id, caller.row.version, &edit, Some(at), at)? {
        return Err(ApiError::conflict(ErrorCode::ConcurrentChange, "the account changed meanwhile; try again"));
    }
    throttle::succeeded(conn, &caller.row.username)?;
    sessions::revoke_all_for_user(conn, &caller.id)?;
    let event = account_event("user.password_changed", &caller.id, caller.community_id.as_deref(), json!({}));
    audit_event(conn, caller, event)
}

/// What an audit event keeps of a username that names no account: a short keyed digest (the
/// data key's index key), enough to see repeated attempts on one name, useless for reading it
/// back or for testing guesses against a copied database. `None` before the keys are loaded.
pub fn typed_username(keys: Option<&crate::db::keys::KeyRing>, username: &str) -> Option<String> {
    keys.map(|k| k.blind(crate::db::keys::TYPED_USERNAME, username)[..16].to_owned())
}

/// The audit event of a login attempt: the account it names, if any, by its username; else
/// `unknown`, a keyed digest of what was typed ([`typed_username`]) — never the text, which may
/// be a password typed into the wrong field or someone's phone number.
pub fn sign_in_event<'a>(action: &'a str, user: Option<&'a UserRow>, unknown: Option<&str>) -> Event<'a> {
    Event {
        action,
        entity_type: "user",
        entity_id: user.map(|u| u.id.as_str()),
        community_id: user.and_then(|u| u.community_id.as_deref()),
        summary: match user {
            Some(u) => json!({"username": u.username}),
            None => json!({"unknown_username": unknown}),
        },
    }
}

/// After a login's password matched (`auth::throttle`): the count starts afresh, the login is
/// audited, and a new session (refresh-token family) starts. Returns its refresh token.
pub fn start_session(
    conn: &mut DbConn,
    user: &UserRow,
    username: &str,
    request_id: Option<String>,
    lifetime_secs: u64,
) -> ApiResult<String> {
    throttle::succeeded(conn, username)?;
    let actor = Actor { user_id: Some(user.id.clone()), request_id };
    audit::record(conn, &actor, sign_in_event("auth.login_succeeded", Some(user), None))?;
    Ok(sessions::start_family(conn, &user.id, lifetime_secs)?)
}

/// Exchanges a refresh token for its successor: the account and the new token, or `None` when
/// the token is unknown, expired or revoked, or its account deactivated. A spent token
/// presented again revokes its whole family (commit even then), and is audited.
pub fn refresh_session(
    conn: &mut DbConn,
    token: &str,
    request_id: Option<String>,
) -> ApiResult<Option<(UserRow, String)>> {
    match sessions::rotate(conn, token)? {
        Rotation::Rotated { user_id, refresh_token } => {
            Ok(store::find(conn, &user_id)?.filter(|u| u.active).map(|u| (u, refresh_token)))
        }
        Rotation::Reused { user_id, family_id } => {
            let actor = Actor { user_id: Some(user_id.clone()), request_id };
            let event = account_event("auth.refresh_reused", &user_id, None, json!({"family_revoked": family_id}));
            audit::record(conn, &actor, event)?;
            tracing::warn!("a spent refresh token was presented again; its session family is revoked");
            Ok(None)
        }
        Rotation::Invalid => Ok(None),
    }
}

/// Ends the session a refresh token belongs to (every token of its family); audited when the
/// token was known.
pub fn end_session(conn: &mut DbConn, token: &str, request_id: Option<String>) -> ApiResult<()> {
    if let Some(user_id) = sessions::revoke_family_of(conn, token)? {
        let actor = Actor { user_id: Some(user_id.clone()), request_id };
        audit::record(conn, &actor, account_event("auth.logout", &user_id, None, json!({})))?;
    }
    Ok(())
}

/// The audit event of a change to an account, or of one of its sessions.
pub fn account_event<'a>(action: &'a str, id: &'a str, community_id: Option<&'a str>, summary: Value) -> Event<'a> {
    Event { action, entity_type: "user", entity_id: Some(id), community_id, summary }
}
