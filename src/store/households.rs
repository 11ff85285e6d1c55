//! Households and their members.

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::keys::{Field, HOUSEHOLD_PHONE, KeyRing, MEMBER_ID_NUMBER, MEMBER_PHONE};
use crate::db::schema::{household_suggestions, households, members, tasks};
use crate::db::types::{OptDay, OptStamp, Stamp};
use crate::domain::{Gender, IdNumber, MemberFacts, Relation, RemovalReason, Tag};
use crate::store::replay::{self, Origin, StoredOrigin};
use crate::store::suggestions::{KeptRow, KeptTag};
use crate::store::{JsonText, Narrow, Opened, Sealed, data_keys, open_value, seal_edit, seal_value};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, PartialEq)]
#[diesel(table_name = households)]
#[diesel(treat_none_as_default_value = false)]
pub struct HouseholdRow {
    pub id: String,
    pub grid_id: String,
    pub community_id: String,
    pub building: String,
    pub unit: String,
    pub room: String,
    pub head_name: String,
    pub phone: Option<String>,
    pub tag: Tag,
    pub tag_reasons: JsonText<Vec<String>>,
    pub tag_note: Option<String>,
    #[diesel(deserialize_as = OptStamp)]
    pub tag_set_at: Option<NaiveDateTime>,
    pub tag_set_by: Option<String>,
    #[diesel(deserialize_as = OptDay)]
    pub tag_review_due_on: Option<NaiveDate>,
    pub notes: Option<String>,
    pub member_count: i32,
    pub version: i32,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
    #[diesel(deserialize_as = OptStamp)]
    pub removed_at: Option<NaiveDateTime>,
    pub removed_reason: Option<RemovalReason>,
    pub removed_note: Option<String>,
}

impl HouseholdRow {
    pub fn reasons(&self) -> Vec<String> {
        self.tag_reasons.0.clone()
    }

    /// The row as stored (its phone sealed), and the phone's blind index.
    pub fn sealed(&self, keys: &KeyRing) -> (HouseholdRow, diesel::dsl::Eq<households::phone_bidx, Option<String>>) {
        let (phone, index) = seal_value(keys, HOUSEHOLD_PHONE, &self.id, self.phone.as_deref());
        (HouseholdRow { phone, ..self.clone() }, households::phone_bidx.eq(index))
    }
}

impl Sealed for HouseholdRow {
    fn open(mut self, keys: &KeyRing) -> QueryResult<Self> {
        self.phone = open_value(keys, HOUSEHOLD_PHONE, &self.id, self.phone.take())?;
        Ok(self)
    }
}

pub fn find(conn: &mut DbConn, id: &str) -> QueryResult<Option<HouseholdRow>> {
    households::table.find(id).select(HouseholdRow::as_select()).first(conn).optional().opened()
}

/// The current households with this phone (normalised, `Phone::as_str`): one lookup of the
/// blind index, the only way to find a household by its phone.
pub fn households_by_phone(conn: &mut DbConn, phone: &str) -> QueryResult<Vec<HouseholdRow>> {
    households::table
        .filter(households::phone_bidx.eq_any(data_keys()?.blinds(HOUSEHOLD_PHONE, phone)))
        .filter(households::removed_at.is_null())
        .order(households::id.asc())
        .select(HouseholdRow::as_select())
        .load(conn)
        .opened()
}

/// Reads a household for changing it: on PostgreSQL the row stays locked until the
/// transaction ends, so two concurrent edits are applied one after the other and the version
/// check of the second sees the first (on SQLite the write transaction is exclusive already).
pub fn find_for_update(conn: &mut DbConn, id: &str) -> QueryResult<Option<HouseholdRow>> {
    crate::locked_first!(conn, households::table.find(id).select(HouseholdRow::as_select())).opened()
}

/// The households of these ids (missing ones left out), by id.
pub fn find_many(conn: &mut DbConn, ids: &[String]) -> QueryResult<Vec<HouseholdRow>> {
    households::table
        .filter(households::id.eq_any(ids.to_vec()))
        .order(households::id.asc())
        .select(HouseholdRow::as_select())
        .load(conn)
        .opened()
}

/// [`find_many`], each locked as [`find_for_update`] locks one, in id order (the order every
/// writer of several households takes them).
pub fn find_many_for_update(conn: &mut DbConn, ids: &[String]) -> QueryResult<Vec<HouseholdRow>> {
    let of = |ids: &[String]| households::table.filter(households::id.eq_any(ids.to_vec())).order(households::id.asc());
    match conn {
        DbConn::Postgres(c) => of(ids).select(HouseholdRow::as_select()).for_no_key_update().load(c),
        // One writer at a time: the write transaction holds the database.
        DbConn::Sqlite(c) => of(ids).select(HouseholdRow::as_select()).load(c),
    }
    .opened()
}

pub fn insert(conn: &mut DbConn, row: &HouseholdRow) -> QueryResult<()> {
    diesel::insert_into(households::table).values(row.sealed(&*data_keys()?)).execute(conn).map(|_| ())
}

/// Inserts a household created through the API, with who created it and the request's digest;
/// `Ok(false)` when the id is taken (see [`replay`]).
pub fn insert_new(conn: &mut DbConn, row: &HouseholdRow, origin: &Origin) -> QueryResult<bool> {
    // Its tasks go to the grid's workers: they stay who they are until this commits.
    crate::store::communities::hold_workers(conn, &row.grid_id)?;
    let (row, index) = row.sealed(&*data_keys()?);
    replay::insert_new(conn, "households", |c| {
        diesel::insert_into(households::table)
            .values((
                &row,
                index,
                households::created_by.eq(origin.created_by()),
                households::create_digest.eq(origin.digest()),
            ))
            .execute(c)
    })
}

/// Who created a household, and with what request.
pub fn origin(conn: &mut DbConn, id: &str) -> QueryResult<Option<StoredOrigin>> {
    households::table.find(id).select((households::created_by, households::create_digest)).first(conn).optional()
}

type CurrentIn = diesel::dsl::Select<
    diesel::dsl::Filter<
        diesel::dsl::Filter<households::table, diesel::dsl::EqAny<households::grid_id, Vec<String>>>,
        diesel::dsl::IsNull<households::removed_at>,
    >,
    households::id,
>;

/// The ids of the households now in these grids and not removed, as a subquery: what a grid
/// worker's lists of visits and tasks are limited to.
pub fn current_in(grids: &[String]) -> CurrentIn {
    households::table
        .filter(households::grid_id.eq_any(grids.to_vec()))
        .filter(households::removed_at.is_null())
        .select(households::id)
}

/// Which households a list shows. Scope is applied by the caller through `community_id` /
/// `grid_ids`.
#[derive(Default, Debug)]
pub struct ListFilter {
    pub community_id: Option<String>,
    /// Only these communities (an officer's street or district).
    pub community_ids: Option<Vec<String>>,
    /// Only these grids (a worker's assignments, or the `grid_id` filter).
    pub grid_ids: Option<Vec<String>>,
    pub tag: Option<Tag>,
    pub q: Option<String>,
    /// Only those whose review is due on or before this date.
    pub review_due_by: Option<NaiveDate>,
    pub updated_since: Option<NaiveDateTime>,
}

/// Keyset position: `(id)`, or `(updated_at, id)` when listing by `updated_since`.
pub enum After {
    Id(String),
    Updated(NaiveDateTime, String),
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

/// A listed household, with its kept suggestion read in the same statement.
pub type Listed = (HouseholdRow, Option<KeptRow>);

impl Sealed for Listed {
    fn open(self, keys: &KeyRing) -> QueryResult<Self> {
        Ok((self.0.open(keys)?, self.1))
    }
}

/// A listed household in its summary view: what a list screen shows of it, without contact
/// data or notes (nothing sealed is read), with its kept suggestion.
pub type Summarised = (SummaryRow, Option<KeptTag>);

/// The columns of a household's summary (`?view=summary`).
#[derive(Debug, Clone, Queryable, Selectable, PartialEq)]
#[diesel(table_name = households)]
pub struct SummaryRow {
    pub id: String,
    pub grid_id: String,
    pub community_id: String,
    pub building: String,
    pub unit: String,
    pub room: String,
    pub head_name: String,
    pub tag: Tag,
    /// The recorded reasons as stored (JSON), parsed only for a household whose kept suggestion
    /// does not hold (worked out from them).
    pub tag_reasons: String,
    #[diesel(deserialize_as = OptDay)]
    pub tag_review_due_on: Option<NaiveDate>,
    pub member_count: i32,
    pub version: i32,
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
}

type Backend = <DbConn as diesel::Connection>::Backend;
type ListQuery<'a> =
    diesel::dsl::IntoBoxed<'a, diesel::dsl::LeftJoin<households::table, household_suggestions::table>, Backend>;

/// The households `f` asks for, each with its kept suggestion ([`crate::store::suggestions`]).
/// A filter of one grid or community is an equality, not a list: a statement without a list of
/// bound values is prepared once per connection and kept (diesel caches no `IN (…)`).
pub fn list(conn: &mut DbConn, f: &ListFilter, after: Option<&After>, limit: i64) -> QueryResult<Vec<Listed>> {
    listing(f, after, limit).select((HouseholdRow::as_select(), Option::<KeptRow>::as_select())).load(conn).opened()
}

/// [`list`] in the summary's columns.
pub fn list_summaries(
    conn: &mut DbConn,
    f: &ListFilter,
    after: Option<&After>,
    limit: i64,
) -> QueryResult<Vec<Summarised>> {
    listing(f, after, limit).select((SummaryRow::as_select(), Option::<KeptTag>::as_select())).load(conn)
}

/// The statement of a list, its columns still to choose.
fn listing<'a>(f: &'a ListFilter, after: Option<&'a After>, limit: i64) -> ListQuery<'a> {
    let text = f.q.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let one_grid = f.grid_ids.as_ref().is_some_and(|g| g.len() == 1);
    let mut q = households::table
        .left_join(household_suggestions::table)
        .filter(households::removed_at.is_null())
        .into_boxed()
        .narrow(f.community_id.as_ref(), |q, c| match one_grid {
            // Written so that no index can serve it (`|| ''`): with one grid asked for, the grid's
            // index in id order is the page (the first 51 entries). Both planners otherwise take
            // the community's index — SQLite without statistics, PostgreSQL misjudging two
            // dependent columns as one row — and read the community (or the whole grid) to sort
            // it: 7 ms against 1.4 ms for a grid page on the 3M PostgreSQL set, 2× on SQLite.
            true => q.filter(households::community_id.concat("").eq(c)),
            false => q.filter(households::community_id.eq(c)),
        })
        .narrow(f.community_ids.clone(), |q, mut ids| match ids.len() {
            1 => q.filter(households::community_id.eq(ids.remove(0))),
            _ => q.filter(households::community_id.eq_any(ids)),
        })
        .narrow(f.grid_ids.clone(), |q, mut ids| match ids.len() {
            1 => q.filter(households::grid_id.eq(ids.remove(0))),
            _ => q.filter(households::grid_id.eq_any(ids)),
        })
        .narrow(f.tag, |q, t| q.filter(households::tag.eq(t)))
        .narrow(text.map(escape_like), |q, pattern| {
            q.filter(
                households::head_name
                    .like(pattern.clone())
                    .escape('\\')
                    .or(households::building.like(pattern.clone()).escape('\\'))
                    .or(households::unit.like(pattern.clone()).escape('\\'))
                    .or(households::room.like(pattern).escape('\\')),
            )
        })
        .narrow(f.review_due_by, |q, d| q.filter(households::tag_review_due_on.le(d)));
    if let Some(since) = f.updated_since {
        q = q.filter(households::updated_at.ge(since)).order((households::updated_at.asc(), households::id.asc()));
        if let Some(After::Updated(at, id)) = after {
            q = q.filter(
                households::updated_at.gt(*at).or(households::updated_at.eq(*at).and(households::id.gt(id.clone()))),
            );
        }
    } else {
        q = q.order(households::id.asc());
        if let Some(After::Id(id)) = after {
            q = q.filter(households::id.gt(id.clone()));
        }
    }
    q.limit(limit)
}

/// An edit of a household: each field present replaces the stored one (`Some(None)` clears).
/// The operation's input (`ops::households`) and the statement's changeset at once.
#[derive(AsChangeset, Debug, Clone, Default)]
#[diesel(table_name = households)]
pub struct HouseholdEdit {
    /// Another grid of the same community (secretaries and administrators only).
    pub grid_id: Option<String>,
    #[diesel(embed)]
    pub address: Option<AddressEdit>,
    pub head_name: Option<String>,
    /// Normalised (`Phone::as_str`).
    pub phone: Option<Option<String>>,
    pub notes: Option<Option<String>>,
}

/// An address change: each part present replaces the stored one.
#[derive(AsChangeset, Debug, Clone, Default)]
#[diesel(table_name = households)]
pub struct AddressEdit {
    pub building: Option<String>,
    pub unit: Option<String>,
    pub room: Option<String>,
}

/// Applies an edit if the household is still at `version`, moving it to the next version;
/// returns whether it was.
pub fn update(conn: &mut DbConn, id: &str, version: i32, edit: &HouseholdEdit, at: NaiveDateTime) -> QueryResult<bool> {
    let (phone, index) = seal_edit(&*data_keys()?, HOUSEHOLD_PHONE, id, edit.phone.as_ref().map(Option::as_deref));
    let edit = HouseholdEdit { phone, ..edit.clone() };
    let index = index.map(|i| households::phone_bidx.eq(i));
    diesel::update(households::table.filter(households::id.eq(id)).filter(households::version.eq(version)))
        .set((&edit, index, households::version.eq(version + 1), households::updated_at.eq(at)))
        .execute(conn)
        .map(|n| n == 1)
}

/// Marks the household removed if it is still at `version`, moving it to the next version;
/// returns whether it was.
pub fn remove(
    conn: &mut DbConn,
    id: &str,
    version: i32,
    (reason, note): (RemovalReason, Option<&str>),
    at: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(households::table.filter(households::id.eq(id)).filter(households::version.eq(version)))
        .set((
            households::removed_at.eq(at),
            households::removed_reason.eq(reason),
            households::removed_note.eq(note),
            households::version.eq(version + 1),
            households::updated_at.eq(at),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// Recounts the members and touches `updated_at` (a member change changes what a client
/// syncing the household must fetch), without moving the household's version.
pub fn refresh_member_count(conn: &mut DbConn, id: &str, at: NaiveDateTime) -> QueryResult<()> {
    let n: i64 = members::table
        .filter(members::household_id.eq(id))
        .filter(members::removed_at.is_null())
        .count()
        .get_result(conn)?;
    diesel::update(households::table.find(id))
        .set((households::member_count.eq(i32::try_from(n).unwrap_or(i32::MAX)), households::updated_at.eq(at)))
        .execute(conn)
        .map(|_| ())
}

/// Cancels the open tasks of a household (when it is removed).
pub fn cancel_open_tasks(conn: &mut DbConn, id: &str, reason: &str, at: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(tasks::table.filter(tasks::household_id.eq(id)).filter(tasks::status.eq("open")))
        .set((
            tasks::status.eq("cancelled"),
            tasks::cancel_reason.eq(reason),
            tasks::updated_at.eq(at),
            tasks::version.eq(tasks::version + 1),
        ))
        .execute(conn)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, PartialEq)]
#[diesel(table_name = members)]
#[diesel(treat_none_as_default_value = false)]
pub struct MemberRow {
    pub id: String,
    pub household_id: String,
    pub name: String,
    pub gender: Gender,
    #[diesel(deserialize_as = OptDay)]
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
    pub version: i32,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
    #[diesel(deserialize_as = OptStamp)]
    pub removed_at: Option<NaiveDateTime>,
}

/// The blind indexes of a member's ID number and phone, as stored beside them.
pub type MemberIndexes =
    (diesel::dsl::Eq<members::id_number_bidx, Option<String>>, diesel::dsl::Eq<members::phone_bidx, Option<String>>);

impl MemberRow {
    /// The row as stored (ID number and phone sealed), and their blind indexes.
    pub fn sealed(&self, keys: &KeyRing) -> (MemberRow, MemberIndexes) {
        let (id_number, id_index) = seal_value(keys, MEMBER_ID_NUMBER, &self.id, self.id_number.as_deref());
        let (phone, phone_index) = seal_value(keys, MEMBER_PHONE, &self.id, self.phone.as_deref());
        (
            MemberRow { id_number, phone, ..self.clone() },
            (members::id_number_bidx.eq(id_index), members::phone_bidx.eq(phone_index)),
        )
    }
}

impl Sealed for MemberRow {
    fn open(mut self, keys: &KeyRing) -> QueryResult<Self> {
        self.id_number = open_value(keys, MEMBER_ID_NUMBER, &self.id, self.id_number.take())?;
        self.phone = open_value(keys, MEMBER_PHONE, &self.id, self.phone.take())?;
        Ok(self)
    }
}

pub fn find_member(conn: &mut DbConn, id: &str) -> QueryResult<Option<MemberRow>> {
    members::table.find(id).select(MemberRow::as_select()).first(conn).optional().opened()
}

/// The current members (of current households) with this ID number (normalised,
/// `IdNumber::as_str`): one lookup of the blind index, the only way to find a member by ID
/// number (duplicate checks, roster imports).
pub fn members_by_id_number(conn: &mut DbConn, id_number: &str) -> QueryResult<Vec<MemberRow>> {
    members_by(conn, MEMBER_ID_NUMBER, id_number)
}

/// The current members (of current households) with this phone (normalised, `Phone::as_str`).
pub fn members_by_phone(conn: &mut DbConn, phone: &str) -> QueryResult<Vec<MemberRow>> {
    members_by(conn, MEMBER_PHONE, phone)
}

fn members_by(conn: &mut DbConn, field: Field, value: &str) -> QueryResult<Vec<MemberRow>> {
    let blinds = data_keys()?.blinds(field, value);
    let current = households::table.filter(households::removed_at.is_null()).select(households::id);
    let q = members::table
        .filter(members::removed_at.is_null())
        .filter(members::household_id.eq_any(current))
        .order(members::id.asc())
        .select(MemberRow::as_select())
        .into_boxed();
    let q = if field == MEMBER_ID_NUMBER {
        q.filter(members::id_number_bidx.eq_any(blinds))
    } else {
        q.filter(members::phone_bidx.eq_any(blinds))
    };
    q.load(conn).opened()
}

pub fn insert_member(conn: &mut DbConn, row: &MemberRow) -> QueryResult<()> {
    diesel::insert_into(members::table).values(row.sealed(&*data_keys()?)).execute(conn).map(|_| ())
}

/// [`insert_new`] for members.
pub fn insert_new_member(conn: &mut DbConn, row: &MemberRow, origin: &Origin) -> QueryResult<bool> {
    let (row, indexes) = row.sealed(&*data_keys()?);
    replay::insert_new(conn, "members", |c| {
        diesel::insert_into(members::table)
            .values((
                &row,
                indexes,
                members::created_by.eq(origin.created_by()),
                members::create_digest.eq(origin.digest()),
            ))
            .execute(c)
    })
}

/// Who created a member, and with what request.
pub fn member_origin(conn: &mut DbConn, id: &str) -> QueryResult<Option<StoredOrigin>> {
    members::table.find(id).select((members::created_by, members::create_digest)).first(conn).optional()
}

/// A page of a household's current members, in id order, after the cursor id.
pub fn list_members(
    conn: &mut DbConn,
    household_id: &str,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<MemberRow>> {
    members::table
        .filter(members::household_id.eq(household_id))
        .filter(members::removed_at.is_null())
        .order(members::id.asc())
        .limit(limit)
        .select(MemberRow::as_select())
        .into_boxed()
        .narrow(after, |q, a| q.filter(members::id.gt(a.to_owned())))
        .load(conn)
        .opened()
}

/// What the tag suggestion reads of a member: the fact columns, without contact data or
/// timestamps (a households page reads these for every member of every household on it).
#[derive(Debug, Clone, Queryable, Selectable, PartialEq)]
#[diesel(table_name = members)]
pub struct MemberFactsRow {
    pub id: String,
    pub household_id: String,
    pub name: String,
    #[diesel(deserialize_as = OptDay)]
    pub birth_date: Option<NaiveDate>,
    /// Opened only when `birth_date` is missing (see the `Sealed` impl).
    pub id_number: Option<String>,
    pub living_alone: bool,
    pub disability_grade: Option<i32>,
    pub chronic_illness: bool,
    pub serious_illness: bool,
    pub low_income: bool,
    pub extreme_poverty: bool,
}

impl MemberFactsRow {
    /// What the suggestion rules know of the member: the ID number's birth date stands in for a
    /// missing one.
    pub fn facts(&self) -> MemberFacts {
        let birth = self
            .birth_date
            .or_else(|| self.id_number.as_deref().and_then(|n| IdNumber::parse(n).ok()).map(|n| n.birth_date()));
        MemberFacts {
            member_id: self.id.clone(),
            name: self.name.clone(),
            birth_date: birth,
            living_alone: self.living_alone,
            disability_grade: self.disability_grade.and_then(|g| u8::try_from(g).ok()),
            chronic_illness: self.chronic_illness,
            serious_illness: self.serious_illness,
            low_income: self.low_income,
            extreme_poverty: self.extreme_poverty,
        }
    }
}

impl Sealed for MemberFactsRow {
    /// The ID number stands in for a missing birth date only: with a birth date (every member
    /// registered through the API has one) it is not opened at all, which keeps a households
    /// page free of decryption for its members.
    fn open(mut self, keys: &KeyRing) -> QueryResult<Self> {
        let stored = self.id_number.take();
        if self.birth_date.is_none() {
            self.id_number = open_value(keys, MEMBER_ID_NUMBER, &self.id, stored)?;
        }
        Ok(self)
    }
}

/// The facts of the current members of some households, in household then id order.
pub fn members_of(conn: &mut DbConn, household_ids: &[String]) -> QueryResult<Vec<MemberFactsRow>> {
    members::table
        .filter(members::household_id.eq_any(household_ids.to_vec()))
        .filter(members::removed_at.is_null())
        .order((members::household_id.asc(), members::id.asc()))
        .select(MemberFactsRow::as_select())
        .load(conn)
        .opened()
}

/// An edit of a member: each field present replaces the stored one (`Some(None)` clears). The
/// operation's input (`ops::members`) and the statement's changeset at once, but for the ID
/// number and birth date: the operation works out what they become (see
/// `domain::id_number::identity_change`) and [`update_member`] writes that.
#[derive(AsChangeset, Debug, Clone, Default)]
#[diesel(table_name = members)]
pub struct MemberEdit {
    pub name: Option<String>,
    pub gender: Option<Gender>,
    #[diesel(skip_update)]
    pub birth_date: Option<Option<NaiveDate>>,
    #[diesel(skip_update)]
    pub id_number: Option<Option<IdNumber>>,
    /// Normalised (`Phone::as_str`).
    pub phone: Option<Option<String>>,
    pub relation: Option<Relation>,
    pub living_alone: Option<bool>,
    /// 1 (most severe) to 4.
    pub disability_grade: Option<Option<i32>>,
    pub chronic_illness: Option<bool>,
    pub serious_illness: Option<bool>,
    pub low_income: Option<bool>,
    pub extreme_poverty: Option<bool>,
    pub notes: Option<Option<String>>,
}

/// Applies an edit, with the ID number and birth date it leaves the member with, if the member
/// is still at `version`, moving it to the next version; returns whether it was.
pub fn update_member(
    conn: &mut DbConn,
    id: &str,
    version: i32,
    edit: &MemberEdit,
    (id_number, birth_date): (Option<&str>, Option<NaiveDate>),
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let keys = data_keys()?;
    let (id_number, id_index) = seal_value(&keys, MEMBER_ID_NUMBER, id, id_number);
    let (phone, phone_index) = seal_edit(&keys, MEMBER_PHONE, id, edit.phone.as_ref().map(Option::as_deref));
    let edit = MemberEdit { phone, ..edit.clone() };
    let identity = (
        members::id_number.eq(id_number),
        members::id_number_bidx.eq(id_index),
        members::birth_date.eq(birth_date),
        phone_index.map(|i| members::phone_bidx.eq(i)),
    );
    diesel::update(members::table.filter(members::id.eq(id)).filter(members::version.eq(version)))
        .set((&edit, identity, members::version.eq(version + 1), members::updated_at.eq(at)))
        .execute(conn)
        .map(|n| n == 1)
}

/// Marks a member removed (locked by the caller), moving it to the next version.
pub fn remove_member(conn: &mut DbConn, id: &str, at: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(members::table.find(id))
        .set((members::removed_at.eq(at), members::version.eq(members::version + 1), members::updated_at.eq(at)))
        .execute(conn)
}

/// The current households of a community with a tag, locked for a plan change: in id order
/// (PostgreSQL: `FOR NO KEY UPDATE`), before any of their tasks is touched, the order every
/// writer takes (see `tasks::reconcile_batch`). A plan change that moved due dates first and
/// locked the households afterwards deadlocked with visits, which lock a household and then
/// its tasks.
pub fn lock_with_tag(conn: &mut DbConn, community_id: &str, tag: &str) -> QueryResult<Vec<String>> {
    let q = households::table
        .filter(households::community_id.eq(community_id))
        .filter(households::tag.eq(tag))
        .filter(households::removed_at.is_null())
        .select(households::id)
        .order(households::id.asc());
    match conn {
        DbConn::Postgres(c) => q.for_no_key_update().load(c),
        DbConn::Sqlite(c) => q.load(c),
    }
}

/// The current households of a community, in id order (what an import matches its rows to).
pub fn current_in_community(conn: &mut DbConn, community_id: &str) -> QueryResult<Vec<HouseholdRow>> {
    households::table
        .filter(households::community_id.eq(community_id))
        .filter(households::removed_at.is_null())
        .order(households::id.asc())
        .select(HouseholdRow::as_select())
        .load(conn)
        .opened()
}

/// How many ids one `IN (…)` list carries (well under SQLite's and PostgreSQL's bind limits).
const IN_LIST: usize = 1000;

/// The current members of some households, in household then id order.
pub fn current_members_of(conn: &mut DbConn, household_ids: &[String]) -> QueryResult<Vec<MemberRow>> {
    let mut out = Vec::new();
    for chunk in household_ids.chunks(IN_LIST) {
        out.extend(
            members::table
                .filter(members::household_id.eq_any(chunk))
                .filter(members::removed_at.is_null())
                .order((members::household_id.asc(), members::id.asc()))
                .select(MemberRow::as_select())
                .load(conn)
                .opened()?,
        );
    }
    Ok(out)
}

/// The current members holding any of these ID numbers (normalised), each with the number it
/// was found by: lookups of the blind index, a few hundred numbers per query.
pub fn members_with_id_numbers(conn: &mut DbConn, numbers: &[String]) -> QueryResult<Vec<(String, MemberRow)>> {
    let keys = data_keys()?;
    let mut out = Vec::new();
    for chunk in numbers.chunks(IN_LIST / 4) {
        let by_blind: HashMap<String, &String> =
            chunk.iter().flat_map(|n| keys.blinds(MEMBER_ID_NUMBER, n).into_iter().map(move |b| (b, n))).collect();
        let rows: Vec<(String, MemberRow)> = members::table
            .filter(members::id_number_bidx.eq_any(by_blind.keys()))
            .filter(members::removed_at.is_null())
            .order(members::id.asc())
            .select((MemberRow::as_select(), members::id_number_bidx))
            .load::<(MemberRow, Option<String>)>(conn)?
            .into_iter()
            .filter_map(|(m, blind)| Some(((*by_blind.get(blind.as_deref()?)?).clone(), m)))
            .map(|(number, m)| Ok((number, m.open(&keys)?)))
            .collect::<QueryResult<Vec<_>>>()?;
        out.extend(rows);
    }
    Ok(out)
}
