//! User accounts.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::db::DbConn;
use crate::db::keys::{KeyRing, USER_PHONE};
use crate::db::schema::users;
use crate::domain::Role;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::store::{Narrow, Opened, Sealed, data_keys, open_value, seal_edit, seal_value};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub phone: Option<String>,
    pub role: Role,
    pub community_id: Option<String>,
    pub active: bool,
    pub password_hash: String,
    pub credentials_changed_at: NaiveDateTime,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// A street officer's street.
    pub street_id: Option<String>,
    /// A district officer's district.
    pub district_id: Option<String>,
}

impl Sealed for UserRow {
    fn open(mut self, keys: &KeyRing) -> QueryResult<Self> {
        self.phone = open_value(keys, USER_PHONE, &self.id, self.phone.take())?;
        Ok(self)
    }
}

impl UserRow {
    /// The credentials epoch carried in access tokens (see `auth::token::Claims::cv`).
    pub fn credentials_epoch(&self) -> i64 {
        self.credentials_changed_at.and_utc().timestamp_micros()
    }
}

/// An account to create; [`insert`] makes it active, at version 1, with credentials set now.
#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: &'a str,
    pub username: &'a str,
    pub display_name: &'a str,
    pub phone: Option<&'a str>,
    pub role: &'a str,
    pub community_id: Option<&'a str>,
    pub password_hash: &'a str,
    pub street_id: Option<&'a str>,
    pub district_id: Option<&'a str>,
}

pub fn find(conn: &mut DbConn, id: &str) -> QueryResult<Option<UserRow>> {
    users::table.find(id).select(UserRow::as_select()).first(conn).optional().opened()
}

/// [`find`], locked for a change (see [`crate::locked_first`]).
pub fn find_for_update(conn: &mut DbConn, id: &str) -> QueryResult<Option<UserRow>> {
    crate::locked_first!(conn, users::table.find(id).select(UserRow::as_select())).opened()
}

pub fn find_by_username(conn: &mut DbConn, username: &str) -> QueryResult<Option<UserRow>> {
    users::table.filter(users::username.eq(username)).select(UserRow::as_select()).first(conn).optional().opened()
}

/// The accounts with this phone (normalised, `Phone::as_str`): one lookup of the blind index.
pub fn find_by_phone(conn: &mut DbConn, phone: &str) -> QueryResult<Vec<UserRow>> {
    users::table
        .filter(users::phone_bidx.eq_any(data_keys()?.blinds(USER_PHONE, phone)))
        .order(users::id.asc())
        .select(UserRow::as_select())
        .load(conn)
        .opened()
}

/// Inserts an account, created `at`, its phone sealed; a taken username is 409 `already_exists`.
pub fn insert(conn: &mut DbConn, user: &NewUser<'_>, at: NaiveDateTime) -> ApiResult<()> {
    let (phone, index) = seal_value(&*data_keys()?, USER_PHONE, user.id, user.phone);
    let stored = NewUser { phone: phone.as_deref(), ..*user };
    let new = (
        stored,
        users::phone_bidx.eq(index),
        users::active.eq(true),
        users::credentials_changed_at.eq(at),
        users::version.eq(1),
        users::created_at.eq(at),
        users::updated_at.eq(at),
    );
    diesel::insert_into(users::table).values(new).execute(conn).map_err(|e| match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)
            if info.constraint_name() == Some("users_username_key") || info.message().ends_with("users.username") =>
        {
            ApiError::conflict(ErrorCode::AlreadyExists, format!("the username `{}` is taken", user.username))
        }
        other => other.into(),
    })?;
    Ok(())
}

#[derive(Default)]
pub struct ListFilter {
    /// Only users of this community (secretaries are always limited to theirs).
    pub community_id: Option<String>,
    /// Only this user (what a grid worker can see).
    pub only_id: Option<String>,
    pub role: Option<Role>,
    pub active: Option<bool>,
    /// Only ids after this one (keyset pagination).
    pub after: Option<String>,
}

pub fn list(conn: &mut DbConn, filter: &ListFilter, limit: i64) -> QueryResult<Vec<UserRow>> {
    users::table
        .select(UserRow::as_select())
        .order(users::id.asc())
        .limit(limit)
        .into_boxed()
        .narrow(filter.community_id.as_ref(), |q, c| q.filter(users::community_id.eq(c)))
        .narrow(filter.only_id.as_ref(), |q, id| q.filter(users::id.eq(id)))
        .narrow(filter.role, |q, r| q.filter(users::role.eq(r)))
        .narrow(filter.active, |q, a| q.filter(users::active.eq(a)))
        .narrow(filter.after.as_ref(), |q, after| q.filter(users::id.gt(after)))
        .load(conn)
        .opened()
}

/// The display names of the accounts `ids` (those that exist), by id: one statement, names only
/// (nothing sealed is read).
pub fn display_names(conn: &mut DbConn, ids: &[String]) -> QueryResult<std::collections::HashMap<String, String>> {
    let mut wanted: Vec<&String> = ids.iter().collect();
    wanted.sort();
    wanted.dedup();
    let mut out = std::collections::HashMap::new();
    for chunk in wanted.chunks(500) {
        let rows: Vec<(String, String)> =
            users::table.filter(users::id.eq_any(chunk)).select((users::id, users::display_name)).load(conn)?;
        out.extend(rows);
    }
    Ok(out)
}

/// A change to an account: each field present replaces the stored one. The operation's input
/// (`ops::users`) and the statement's changeset at once.
#[derive(AsChangeset, Debug, Clone, Default)]
#[diesel(table_name = users)]
pub struct AccountEdit {
    pub display_name: Option<String>,
    /// `Some(None)` removes the phone.
    pub phone: Option<Option<String>>,
    pub active: Option<bool>,
    /// A new password's PHC string.
    pub password_hash: Option<String>,
}

/// Applies an edit if the account is still at `version`, moving it to the next version (and,
/// with `credentials_changed_at`, ending the tokens issued before); returns whether it was.
pub fn update(
    conn: &mut DbConn,
    id: &str,
    version: i32,
    edit: &AccountEdit,
    credentials_changed_at: Option<NaiveDateTime>,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let next = (users::version.eq(version + 1), users::updated_at.eq(at));
    let credentials = credentials_changed_at.map(|t| users::credentials_changed_at.eq(t));
    let (phone, index) = seal_edit(&*data_keys()?, USER_PHONE, id, edit.phone.as_ref().map(Option::as_deref));
    let edit = AccountEdit { phone, ..edit.clone() };
    let index = index.map(|i| users::phone_bidx.eq(i));
    let n = diesel::update(users::table.filter(users::id.eq(id)).filter(users::version.eq(version)))
        .set((&edit, index, credentials, next))
        .execute(conn)?;
    crate::db::accounts::touched(id);
    Ok(n == 1)
}
