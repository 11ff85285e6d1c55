//! Members of households: adding one (retried safely with a client id), editing and removing
//! one. Each change locks the household first, refreshes its member count and keeps the ID
//! number in agreement with the birth date and gender.

use std::collections::HashSet;

use chrono::{NaiveDate, Utc};

use crate::auth::{AuthUser, scope};
use crate::db::DbConn;
use crate::domain::id_number::identity_change;
use crate::domain::text::date_in_range;
use crate::domain::{Gender, IdNumber, IdNumberError, Relation};
use crate::error::{ApiError, ApiResult, ErrorCode, FieldError};
use crate::ops::{applied, audit_event, check_version};
use crate::store::audit::{self, Event};
use crate::store::households::{self as store, MemberRow};
use crate::store::now;
use crate::store::replay::Origin;

fn id_number_error(e: IdNumberError) -> FieldError {
    FieldError::new("id_number", e.code(), e.to_string())
}

/// An ID number as the `id_number` field.
pub fn parse_id_number(raw: &str) -> Result<IdNumber, FieldError> {
    IdNumber::parse(raw).map_err(id_number_error)
}

/// A birth date: a past date after 1900.
pub fn check_birth_date(d: NaiveDate) -> Result<(), FieldError> {
    if d > Utc::now().date_naive() || !date_in_range(d) {
        return Err(FieldError::new("birth_date", "out_of_range", "must be a past date after 1900"));
    }
    Ok(())
}

/// A member's gender, birth date and ID number, agreeing with each other: the one constructor
/// checks them, and takes the birth date from the ID number when none is given.
#[derive(Debug, Clone)]
pub struct Identity {
    gender: Gender,
    birth_date: Option<NaiveDate>,
    id_number: Option<IdNumber>,
}

impl Identity {
    pub fn new(gender: Gender, birth_date: Option<NaiveDate>, id_number: Option<IdNumber>) -> Result<Self, FieldError> {
        if let Some(d) = birth_date {
            check_birth_date(d)?;
        }
        if let Some(n) = &id_number {
            n.agrees_with(birth_date, Some(gender)).map_err(id_number_error)?;
        }
        let birth_date = birth_date.or(id_number.as_ref().map(IdNumber::birth_date));
        Ok(Identity { gender, birth_date, id_number })
    }

    pub fn gender(&self) -> Gender {
        self.gender
    }

    /// Given, or taken from the ID number.
    pub fn birth_date(&self) -> Option<NaiveDate> {
        self.birth_date
    }

    fn id_number(&self) -> Option<String> {
        self.id_number.as_ref().map(|n| n.as_str().to_owned())
    }
}

/// A member to add; checked.
#[derive(Debug, Clone)]
pub struct NewMember {
    /// The client's id, or a new one.
    pub id: String,
    pub name: String,
    pub identity: Identity,
    /// Normalised (`Phone::as_str`).
    pub phone: Option<String>,
    pub relation: Relation,
    pub living_alone: bool,
    /// 1 (most severe) to 4.
    pub disability_grade: Option<i32>,
    pub chronic_illness: bool,
    pub serious_illness: bool,
    pub low_income: bool,
    pub extreme_poverty: bool,
    pub notes: Option<String>,
}

/// Adds a member to a household that was not removed (409 `household_removed`). The same
/// request again from its author is answered with the stored member (`false`: nothing new)
/// while it is current; anything else with its id is a 409 `id_conflict`.
pub fn add(conn: &mut DbConn, caller: &AuthUser, household_id: &str, m: NewMember) -> ApiResult<(bool, MemberRow)> {
    let household = scope::household_for_update(conn, caller, household_id)?;
    let (row, content) = new_row(m, &household.id, now());
    let origin = Origin::of(&caller.id, &content)?;
    refuse_taken_id_number(conn, &row.id, row.id_number.as_deref())?;
    if !store::insert_new_member(conn, &row, &origin)? {
        let stored = store::member_origin(conn, &row.id)?.ok_or_else(|| ApiError::not_found("member"))?;
        origin.retries(&stored)?;
        let existing = store::find_member(conn, &row.id)?.filter(|m| m.removed_at.is_none());
        let existing =
            existing.ok_or_else(|| ApiError::conflict(ErrorCode::IdConflict, "the member has been removed since"))?;
        return Ok((false, existing));
    }
    changed(conn, caller, &household.id, created_event(&household.community_id, &row))?;
    Ok((true, row))
}

/// A new member's row in the household, and the content of its create request (what a retry
/// must repeat).
pub(crate) fn new_row(m: NewMember, household_id: &str, at: chrono::NaiveDateTime) -> (MemberRow, serde_json::Value) {
    let row = MemberRow {
        id: m.id,
        household_id: household_id.to_owned(),
        name: m.name,
        gender: m.identity.gender,
        birth_date: m.identity.birth_date,
        id_number: m.identity.id_number(),
        phone: m.phone,
        relation: m.relation,
        living_alone: m.living_alone,
        disability_grade: m.disability_grade,
        chronic_illness: m.chronic_illness,
        serious_illness: m.serious_illness,
        low_income: m.low_income,
        extreme_poverty: m.extreme_poverty,
        notes: m.notes,
        version: 1,
        created_at: at,
        updated_at: at,
        removed_at: None,
    };
    let content = serde_json::json!({"household_id": row.household_id, "name": row.name,
        "gender": row.gender, "birth_date": row.birth_date, "id_number": row.id_number, "phone": row.phone,
        "relation": row.relation, "living_alone": row.living_alone, "disability_grade": row.disability_grade,
        "chronic_illness": row.chronic_illness, "serious_illness": row.serious_illness,
        "low_income": row.low_income, "extreme_poverty": row.extreme_poverty, "notes": row.notes});
    (row, content)
}

/// The audit event of an added member.
pub(crate) fn created_event<'a>(community_id: &'a str, row: &'a MemberRow) -> Event<'a> {
    let summary = serde_json::json!({"household_id": row.household_id, "relation": row.relation});
    event("member.created", community_id, &row.id, summary)
}

/// The audit event of a change to a member.
fn event<'a>(action: &'a str, community_id: &'a str, member_id: &'a str, summary: serde_json::Value) -> Event<'a> {
    Event { action, entity_type: "member", entity_id: Some(member_id), community_id: Some(community_id), summary }
}

/// An edit: each field present replaces the stored one (`Some(None)` clears); checked.
pub use crate::store::households::MemberEdit;

/// Edits a member of a household that was not removed (409 `household_removed`). The ID number
/// must still agree with the birth date and gender afterwards (422 `id_number`); nothing is
/// checked against the stored number or birth date: a new ID number brings its own birth date
/// unless one is sent with it, and a birth date alone is refused (422 `id_number_required`)
/// while the member has an ID number.
pub fn edit(
    conn: &mut DbConn,
    caller: &AuthUser,
    id: &str,
    expected: Option<&str>,
    e: MemberEdit,
) -> ApiResult<MemberRow> {
    let (current, household) = scope::member_for_update(conn, caller, id)?;
    let fields = audit::fields_set([
        ("name", e.name.is_some()),
        ("gender", e.gender.is_some()),
        ("birth_date", e.birth_date.is_some()),
        ("id_number", e.id_number.is_some()),
        ("phone", e.phone.is_some()),
        ("relation", e.relation.is_some()),
        ("living_alone", e.living_alone.is_some()),
        ("disability_grade", e.disability_grade.is_some()),
        ("chronic_illness", e.chronic_illness.is_some()),
        ("serious_illness", e.serious_illness.is_some()),
        ("low_income", e.low_income.is_some()),
        ("extreme_poverty", e.extreme_poverty.is_some()),
        ("notes", e.notes.is_some()),
    ]);
    let invalid = |f: FieldError| ApiError::Validation(vec![f]);
    // Never judged against the stored ID number or birth date, which answers show masked: a
    // refusal that depended on them would give them away (see `identity_change`).
    let sent_id = e.id_number.as_ref().map(|n| n.as_ref().map(IdNumber::as_str));
    let (id_number, birth_date) =
        identity_change((current.id_number.as_deref(), current.birth_date), sent_id, e.birth_date)
            .map_err(|err| invalid(FieldError::new("birth_date", err.code(), err.to_string())))?;
    let id_number = id_number.as_deref().map(parse_id_number).transpose().map_err(invalid)?;
    let gender = e.gender.unwrap_or(current.gender);
    let identity = Identity::new(gender, birth_date, id_number).map_err(invalid)?;
    check_version(expected, current.version)?;
    let id_number = identity.id_number();
    if e.id_number.is_some() {
        refuse_taken_id_number(conn, id, id_number.as_deref())?;
    }
    let updated =
        store::update_member(conn, id, current.version, &e, (id_number.as_deref(), identity.birth_date), now())?;
    applied(updated, "member")?;
    let summary = serde_json::json!({"household_id": household.id, "fields": fields});
    changed(conn, caller, &household.id, event("member.updated", &household.community_id, id, summary))?;
    store::find_member(conn, id)?.ok_or_else(|| ApiError::not_found("member"))
}

/// A person is registered once: an ID number another current resident holds is refused (409
/// `id_number_taken`), found through its blind index. Only someone who already holds the whole
/// number can ask, and the answer says nothing about where that resident lives.
fn refuse_taken_id_number(conn: &mut DbConn, member_id: &str, id_number: Option<&str>) -> ApiResult<()> {
    let Some(number) = id_number else { return Ok(()) };
    if store::members_by_id_number(conn, number)?.iter().any(|m| m.id != member_id) {
        return Err(taken());
    }
    Ok(())
}

/// [`refuse_taken_id_number`] for members about to be added together: their ID numbers held
/// by no current resident nor twice among them.
pub(crate) fn refuse_taken_id_numbers(conn: &mut DbConn, added: &[&MemberRow]) -> ApiResult<()> {
    let mut numbers: Vec<String> = added.iter().filter_map(|m| m.id_number.clone()).collect();
    let given = numbers.len();
    numbers.sort_unstable();
    numbers.dedup();
    if numbers.len() != given || !held_id_numbers(conn, &numbers)?.is_empty() {
        return Err(taken());
    }
    Ok(())
}

/// Which of these ID numbers (normalised) a current resident holds: one blind-index query per
/// few hundred numbers, then [`refuse_taken_id_number`]'s own lookup for each one found.
pub(crate) fn held_id_numbers(conn: &mut DbConn, numbers: &[String]) -> ApiResult<HashSet<String>> {
    let mut held = HashSet::new();
    for (number, _) in store::members_with_id_numbers(conn, numbers)? {
        if !held.contains(&number) && !store::members_by_id_number(conn, &number)?.is_empty() {
            held.insert(number);
        }
    }
    Ok(held)
}

/// The refusal of an ID number a current resident holds: the same words wherever it is, which
/// say nothing about where that resident lives.
pub(crate) fn taken_message() -> &'static str {
    "a resident with this ID number is already registered"
}

fn taken() -> ApiError {
    ApiError::conflict(ErrorCode::IdNumberTaken, taken_message())
}

/// Removes a member from a household that was not removed (moved out, deceased, registered in
/// error; 409 `household_removed` otherwise).
pub fn remove(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<()> {
    let (current, household) = scope::member_for_update(conn, caller, id)?;
    store::remove_member(conn, &current.id, now())?;
    let summary = serde_json::json!({"household_id": household.id});
    changed(conn, caller, &household.id, event("member.removed", &household.community_id, id, summary))
}

/// What every member change does after its write: the household's member count (and its
/// `updated_at`, which syncing clients follow), and the audit event.
fn changed(conn: &mut DbConn, caller: &AuthUser, household_id: &str, event: Event<'_>) -> ApiResult<()> {
    store::refresh_member_count(conn, household_id, now())?;
    audit_event(conn, caller, event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::check_char;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn an_identity_agrees_with_itself_and_dates_the_member() {
        let first17 = "11010519491231002"; // born 1949-12-31, an even sequence: female
        let n = IdNumber::parse(&format!("{first17}{}", check_char(first17))).unwrap();
        let i = Identity::new(Gender::Female, None, Some(n.clone())).unwrap();
        assert_eq!(i.birth_date, Some(day("1949-12-31")));
        let e = Identity::new(Gender::Male, None, Some(n.clone())).unwrap_err();
        assert_eq!((e.field.as_str(), e.code.as_str()), ("id_number", "gender_mismatch"));
        let e = Identity::new(Gender::Female, Some(day("1950-01-01")), Some(n)).unwrap_err();
        assert_eq!((e.field.as_str(), e.code.as_str()), ("id_number", "birth_date_mismatch"));
        let tomorrow = Utc::now().date_naive() + chrono::Days::new(1);
        let e = Identity::new(Gender::Male, Some(tomorrow), None).unwrap_err();
        assert_eq!((e.field.as_str(), e.code.as_str()), ("birth_date", "out_of_range"));
        assert!(Identity::new(Gender::Male, None, None).is_ok_and(|i| i.birth_date.is_none()));
    }
}
