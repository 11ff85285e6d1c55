//! Roster imports: the plan a checked roster makes against what is stored (which households
//! and members are new, changed or unchanged), and its commit through the same operations as
//! the API — `households::register_many` (new households with their members, a batch in a few
//! statements, under `register`'s and `members::add`'s rules), `households::edit`,
//! `members::add`/`edit` — so every rule, audit event and task reconcile applies to an imported
//! row as to a typed one.
//!
//! Households match by grid code and address, members by ID number, else by name within their
//! household. A blank cell leaves the stored value alone; a masked one (what an export without
//! a reason shows) stands for the stored value and must be its mask. So importing a file twice,
//! or re-importing an export, changes nothing. Nothing is removed unless the commit asks for it
//! (`remove_missing`).
//!
//! A plan carries a digest of everything it was made against (each matched record's version,
//! each address it would create, its errors): the commit plans again and refuses (409
//! `import_stale`) when the digest differs, so what is applied is exactly what the dry run
//! showed.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::{AuthUser, scope};
use crate::db::DbConn;
use crate::domain::{GridCode, IdNumber, Role, mask};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ops::households::{Address, HouseholdEdit, NewHousehold, Removal};
use crate::ops::members::{MemberEdit, NewMember};
use crate::ops::{households, members};
use crate::roster::RowError;
use crate::roster::columns::Column;
use crate::store::audit::{self, Actor, Event};
use crate::store::communities::{self, CommunityRow};
use crate::store::households::{self as store, HouseholdRow, MemberRow};
use crate::store::{imports, new_id, now};

/// A value of a roster cell as checked: blank (leave the stored value), in clear, or the mask
/// of the stored value.
#[derive(Debug, Clone, PartialEq)]
pub enum Given<T> {
    Blank,
    Clear(T),
    Masked(String),
}

/// A household of a checked roster.
#[derive(Debug, Clone)]
pub struct Household {
    pub rows: Vec<u32>,
    pub grid_code: String,
    pub address: Address,
    pub head_name: String,
    /// Normalised (`Phone::as_str`).
    pub phone: Given<String>,
    pub notes: Option<String>,
    pub members: Vec<Member>,
}

/// A member of a checked roster: `new` is what `members::add` would take (its identity from
/// the clear values only), the `Given`s say what the cells held.
#[derive(Debug, Clone)]
pub struct Member {
    pub row: u32,
    pub new: NewMember,
    pub id_number: Given<IdNumber>,
    /// A masked birth date is its year.
    pub birth_date: Given<NaiveDate>,
    pub phone: Given<String>,
}

/// What a dry run tells the secretary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Summary {
    pub households_new: u32,
    pub households_changed: u32,
    pub households_unchanged: u32,
    pub members_new: u32,
    pub members_changed: u32,
    pub members_unchanged: u32,
    /// Rows with at least one error; their households are skipped by a commit that skips errors.
    pub rows_with_errors: u32,
    /// Rows that were not blank.
    pub rows: u32,
    /// Stored households of the community that the file does not list: what a commit with
    /// `remove_missing` removes.
    #[serde(default)]
    pub households_missing: u32,
}

/// What one household of the roster comes to.
enum Step {
    New { household: NewHousehold, members: Vec<NewMember> },
    Existing { id: String, version: i32, edit: Option<HouseholdEdit>, add: Vec<NewMember>, edits: Vec<MemberChange> },
}

struct MemberChange {
    id: String,
    version: i32,
    edit: MemberEdit,
}

/// A roster planned against the stored data.
pub struct Plan {
    pub summary: Summary,
    /// The cell errors found before, then those the stored data shows, by row.
    pub errors: Vec<RowError>,
    /// A digest of what the plan was made against (see the module documentation).
    pub basis: String,
    /// A digest of the households the file does not list (their ids and versions): a commit
    /// that removes them refuses when it differs from the dry run's.
    pub missing_basis: String,
    steps: Vec<Step>,
    missing: Vec<String>,
}

/// One transaction's share of a commit: some households of the plan, in file order, then the
/// missing ones to remove.
pub struct Batch {
    steps: Vec<Step>,
    remove: Vec<String>,
}

impl Batch {
    /// How many households the batch goes through.
    pub fn len(&self) -> usize {
        self.steps.len() + self.remove.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Plan {
    /// The plan cut into batches of `size` households; the missing households, to remove,
    /// only when `remove_missing`.
    pub fn into_batches(self, size: usize, remove_missing: bool) -> Vec<Batch> {
        let size = size.max(1);
        let mut out = Vec::new();
        let mut steps = self.steps.into_iter().peekable();
        while steps.peek().is_some() {
            out.push(Batch { steps: steps.by_ref().take(size).collect(), remove: vec![] });
        }
        if remove_missing {
            for chunk in self.missing.chunks(size) {
                out.push(Batch { steps: vec![], remove: chunk.to_vec() });
            }
        }
        out
    }

    /// How many households a commit goes through (for a progress bar).
    pub fn households(&self, remove_missing: bool) -> usize {
        self.steps.len() + if remove_missing { self.missing.len() } else { 0 }
    }
}

/// The community an import is for, in the caller's scope (404) and theirs to import into:
/// secretaries and administrators (403).
pub fn community(conn: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<CommunityRow> {
    let community = scope::community(conn, caller, id)?;
    caller.require(&[Role::Admin, Role::Secretary])?;
    Ok(community)
}

/// Plans a checked roster for a community; `errors` are those its cells had already (their
/// rows' households are left out of the plan).
pub fn plan(
    conn: &mut DbConn,
    community: &CommunityRow,
    roster: Vec<Household>,
    mut errors: Vec<RowError>,
    rows: u32,
) -> ApiResult<Plan> {
    let grids: HashMap<String, String> = communities::list_grids(conn, &community.id, None, None, i64::MAX)?
        .into_iter()
        .map(|g| (g.code, g.id))
        .collect();
    let stored = store::current_in_community(conn, &community.id)?;
    let by_address: HashMap<(&str, &str, &str, &str), &HouseholdRow> = stored
        .iter()
        .map(|h| ((h.grid_id.as_str(), h.building.as_str(), h.unit.as_str(), h.room.as_str()), h))
        .collect();
    // What the file lists, errors or not: the rest of the community is missing from it.
    let listed: HashSet<&str> = roster
        .iter()
        .filter_map(|h| {
            let grid = grids.get(&h.grid_code)?;
            let a = &h.address;
            by_address
                .get(&(grid.as_str(), a.building.as_str(), a.unit.as_str(), a.room.as_str()))
                .map(|s| s.id.as_str())
        })
        .collect();
    let matched_ids: Vec<String> = listed.iter().map(|id| (*id).to_owned()).collect();
    let mut missing_basis = Sha256::new();
    let mut missing = Vec::new();
    for h in stored.iter().filter(|h| !listed.contains(h.id.as_str())) {
        missing_basis.update(format!("{} {}\n", h.id, h.version));
        missing.push(h.id.clone());
    }
    let mut members_of: HashMap<String, Vec<MemberRow>> = HashMap::new();
    for m in store::current_members_of(conn, &matched_ids)? {
        members_of.entry(m.household_id.clone()).or_default().push(m);
    }
    // Who holds the file's ID numbers now, in this community; a holder elsewhere is only said to
    // exist (the API's 409 `id_number_taken` says as much), never where.
    let numbers: Vec<String> = roster
        .iter()
        .flat_map(|h| &h.members)
        .filter_map(|m| match &m.id_number {
            Given::Clear(n) => Some(n.as_str().to_owned()),
            _ => None,
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let in_community: HashSet<&str> = stored.iter().map(|h| h.id.as_str()).collect();
    // number → (household, member)
    let mut holders: HashMap<String, (String, String)> = HashMap::new();
    let mut outside = Vec::new();
    for (number, m) in store::members_with_id_numbers(conn, &numbers)? {
        if in_community.contains(m.household_id.as_str()) {
            holders.insert(number, (m.household_id, m.id));
        } else {
            outside.push(number);
        }
    }
    outside.retain(|n| !holders.contains_key(n));
    let elsewhere = members::held_id_numbers(conn, &outside)?;

    let broken: HashSet<u32> = errors.iter().map(|e| e.row).collect();
    let mut basis = Sha256::new();
    let mut summary = Summary { rows, ..Summary::default() };
    let mut steps = Vec::new();
    let mut seen_numbers: HashMap<String, u32> = HashMap::new();
    for h in roster {
        let mut found = Vec::new();
        let grid = match GridCode::parse(&h.grid_code, &community.division_code) {
            Err(e) => {
                found.push(RowError::new(h.rows[0], Some(Column::GridCode), e.code(), e.to_string()));
                None
            }
            Ok(_) => match grids.get(&h.grid_code) {
                Some(g) => Some(g.clone()),
                None => {
                    let message = "no grid of this community has this code";
                    found.push(RowError::new(h.rows[0], Some(Column::GridCode), "unknown_grid", message));
                    None
                }
            },
        };
        for m in &h.members {
            if let Given::Clear(n) = &m.id_number
                && let Some(first) = seen_numbers.insert(n.as_str().to_owned(), m.row)
            {
                let message = format!("the same ID number is on row {first}");
                found.push(RowError::new(m.row, Some(Column::IdNumber), "duplicate_in_file", message));
            }
        }
        let existing = grid.as_ref().and_then(|g| {
            let a = &h.address;
            by_address.get(&(g.as_str(), a.building.as_str(), a.unit.as_str(), a.room.as_str())).copied()
        });
        for m in &h.members {
            if let Given::Clear(n) = &m.id_number
                && let Some((holder, _)) = holders.get(n.as_str())
                && existing.is_none_or(|e| e.id != *holder)
            {
                let message = "this ID number belongs to a member of another household of the community";
                found.push(RowError::new(m.row, Some(Column::IdNumber), "id_number_taken", message));
            } else if let Given::Clear(n) = &m.id_number
                && elsewhere.contains(n.as_str())
            {
                found.push(RowError::new(m.row, Some(Column::IdNumber), "id_number_taken", members::taken_message()));
            }
        }
        let step = match (&grid, existing) {
            (None, _) => None,
            (Some(grid), None) => Some(new_household(&h, grid)),
            (Some(_), Some(stored)) => {
                let members = members_of.get(&stored.id).map(Vec::as_slice).unwrap_or(&[]);
                existing_household(&h, stored, members, &holders, &mut found)
            }
        };
        let failed = !found.is_empty() || h.rows.iter().any(|r| broken.contains(r));
        errors.append(&mut found);
        match step {
            Some(step) if !failed => {
                count(&step, &mut summary, h.members.len());
                digest(&mut basis, &step, &h);
                steps.push(step);
            }
            _ => basis.update(format!("skip {}\n", h.rows[0])),
        }
    }
    errors.sort_by_key(|e| (e.row, column_order(e)));
    errors.dedup();
    for e in &errors {
        basis.update(format!("error {} {:?} {}\n", e.row, e.column, e.code));
    }
    summary.rows_with_errors = errors.iter().map(|e| e.row).collect::<HashSet<_>>().len() as u32;
    summary.households_missing = missing.len() as u32;
    let (basis, missing_basis) = (hex(&basis.finalize()), hex(&missing_basis.finalize()));
    Ok(Plan { summary, errors, basis, missing_basis, steps, missing })
}

/// Errors of a row in the template's column order.
fn column_order(e: &RowError) -> usize {
    let at = e.column.as_deref().and_then(Column::from_header);
    at.and_then(|c| crate::roster::columns::COLUMNS.iter().position(|s| s.column == c)).unwrap_or(usize::MAX)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn count(step: &Step, s: &mut Summary, rows: usize) {
    match step {
        Step::New { members, .. } => {
            s.households_new += 1;
            s.members_new += members.len() as u32;
        }
        Step::Existing { edit, add, edits, .. } => {
            if edit.is_some() || !add.is_empty() || !edits.is_empty() {
                s.households_changed += 1;
            } else {
                s.households_unchanged += 1;
            }
            s.members_new += add.len() as u32;
            s.members_changed += edits.len() as u32;
            s.members_unchanged += (rows - add.len() - edits.len()) as u32;
        }
    }
}

fn digest(basis: &mut Sha256, step: &Step, h: &Household) {
    match step {
        Step::New { .. } => basis.update(format!("new {} {:?}\n", h.grid_code, h.address)),
        Step::Existing { id, version, edits, .. } => {
            basis.update(format!("household {id} {version}\n"));
            for e in edits {
                basis.update(format!("member {} {}\n", e.id, e.version));
            }
        }
    }
}

fn new_household(h: &Household, grid_id: &str) -> Step {
    let household = NewHousehold {
        id: new_id(),
        grid_id: grid_id.to_owned(),
        address: h.address.clone(),
        head_name: h.head_name.clone(),
        phone: match &h.phone {
            Given::Clear(p) => Some(p.clone()),
            _ => None,
        },
        notes: h.notes.clone(),
    };
    Step::New { household, members: h.members.iter().map(|m| m.new.clone()).collect() }
}

/// A masked cell stands for the stored value: it must be its mask.
fn masked_matches(row: u32, column: Column, given: &str, stored: Option<String>, found: &mut Vec<RowError>) {
    if stored.as_deref() != Some(given) {
        let message = "a masked value stands for the stored one, and does not match it: write the value in full";
        found.push(RowError::new(row, Some(column), "masked_value", message));
    }
}

/// `Some(new)` when a given value differs from the stored one.
fn changed<T: PartialEq + Clone>(given: &Given<T>, stored: Option<&T>) -> Option<T> {
    match given {
        Given::Clear(v) if stored != Some(v) => Some(v.clone()),
        _ => None,
    }
}

fn existing_household(
    h: &Household,
    stored: &HouseholdRow,
    members: &[MemberRow],
    holders: &HashMap<String, (String, String)>,
    found: &mut Vec<RowError>,
) -> Option<Step> {
    let row = h.rows[0];
    if let Given::Masked(m) = &h.phone {
        masked_matches(row, Column::HouseholdPhone, m, stored.phone.as_deref().map(mask::phone), found);
    }
    let mut edit = HouseholdEdit::default();
    if h.head_name != stored.head_name {
        edit.head_name = Some(h.head_name.clone());
    }
    if let Some(p) = changed(&h.phone, stored.phone.as_ref()) {
        edit.phone = Some(Some(p));
    }
    if h.notes.is_some() && h.notes != stored.notes {
        edit.notes = Some(h.notes.clone());
    }
    let touched = edit.head_name.is_some() || edit.phone.is_some() || edit.notes.is_some();
    let mut taken: HashSet<&str> = HashSet::new();
    let mut add = Vec::new();
    let mut edits = Vec::new();
    for m in &h.members {
        let by_number = match &m.id_number {
            Given::Clear(n) => {
                let holder = holders.get(n.as_str()).map(|(_, member)| member.as_str());
                members.iter().find(|s| Some(s.id.as_str()) == holder)
            }
            _ => None,
        };
        let by_name = || {
            let same: Vec<&MemberRow> =
                members.iter().filter(|s| s.name == m.new.name && !taken.contains(s.id.as_str())).collect();
            match same.as_slice() {
                [one] => Ok(Some(*one)),
                [] => Ok(None),
                _ => Err(()),
            }
        };
        let matched = match by_number {
            Some(s) => Some(s),
            None => match by_name() {
                Ok(s) => s,
                Err(()) => {
                    let message = "the household has several members of this name: give the ID number";
                    found.push(RowError::new(m.row, Some(Column::Name), "ambiguous_member", message));
                    continue;
                }
            },
        };
        let Some(s) = matched else {
            let masked = [
                (Column::IdNumber, matches!(m.id_number, Given::Masked(_))),
                (Column::MemberPhone, matches!(m.phone, Given::Masked(_))),
            ];
            for (column, _) in masked.into_iter().filter(|(_, is)| *is) {
                let message = "a masked value stands for a stored one, and this member is new: write the value in full";
                found.push(RowError::new(m.row, Some(column), "masked_value", message));
            }
            add.push(m.new.clone());
            continue;
        };
        if !taken.insert(s.id.as_str()) {
            let message = "another row of this household is the same member";
            found.push(RowError::new(m.row, Some(Column::Name), "duplicate_member", message));
            continue;
        }
        if let Some(edit) = member_edit(m, s, found) {
            edits.push(MemberChange { id: s.id.clone(), version: s.version, edit });
        }
    }
    Some(Step::Existing { id: stored.id.clone(), version: stored.version, edit: touched.then_some(edit), add, edits })
}

/// The edit that brings a stored member to what the roster says; none when nothing differs.
fn member_edit(m: &Member, s: &MemberRow, found: &mut Vec<RowError>) -> Option<MemberEdit> {
    let new = &m.new;
    let mut e = MemberEdit::default();
    match &m.id_number {
        Given::Masked(given) => {
            masked_matches(m.row, Column::IdNumber, given, s.id_number.as_deref().map(mask::id_number), found)
        }
        Given::Clear(n) if s.id_number.as_deref() != Some(n.as_str()) => {
            e.id_number = Some(Some(n.clone()));
            e.birth_date = Some(new.identity.birth_date());
        }
        _ => {}
    }
    match &m.birth_date {
        Given::Masked(year) => {
            masked_matches(m.row, Column::BirthDate, year, s.birth_date.map(|d| mask::birth_year(d).to_string()), found)
        }
        Given::Clear(d) if e.id_number.is_none() && s.birth_date != Some(*d) => {
            if s.id_number.is_some() && !matches!(m.id_number, Given::Clear(_)) {
                let message = "the member's ID number holds the birth date: give it in full with the new date";
                found.push(RowError::new(m.row, Some(Column::BirthDate), "id_number_required", message));
            } else {
                e.birth_date = Some(Some(*d));
            }
        }
        _ => {}
    }
    if let Given::Masked(given) = &m.phone {
        masked_matches(m.row, Column::MemberPhone, given, s.phone.as_deref().map(mask::phone), found);
    }
    if let Some(p) = changed(&m.phone, s.phone.as_ref()) {
        e.phone = Some(Some(p));
    }
    if new.identity.gender() != s.gender {
        let stored_number = s.id_number.as_deref().and_then(|n| IdNumber::parse(n).ok());
        let number = match &m.id_number {
            Given::Clear(n) => Some(n.clone()),
            _ => stored_number,
        };
        if number.is_some_and(|n| n.gender() != new.identity.gender()) {
            let message = "the gender disagrees with the member's ID number";
            found.push(RowError::new(m.row, Some(Column::Gender), "gender_mismatch", message));
        }
        e.gender = Some(new.identity.gender());
    }
    if new.name != s.name {
        e.name = Some(new.name.clone());
    }
    (new.relation != s.relation).then(|| e.relation = Some(new.relation));
    (new.living_alone != s.living_alone).then(|| e.living_alone = Some(new.living_alone));
    (new.disability_grade != s.disability_grade).then(|| e.disability_grade = Some(new.disability_grade));
    (new.chronic_illness != s.chronic_illness).then(|| e.chronic_illness = Some(new.chronic_illness));
    (new.serious_illness != s.serious_illness).then(|| e.serious_illness = Some(new.serious_illness));
    (new.low_income != s.low_income).then(|| e.low_income = Some(new.low_income));
    (new.extreme_poverty != s.extreme_poverty).then(|| e.extreme_poverty = Some(new.extreme_poverty));
    if new.notes.is_some() && new.notes != s.notes {
        e.notes = Some(new.notes.clone());
    }
    let any = e.name.is_some()
        || e.gender.is_some()
        || e.birth_date.is_some()
        || e.id_number.is_some()
        || e.phone.is_some()
        || e.relation.is_some()
        || e.living_alone.is_some()
        || e.disability_grade.is_some()
        || e.chronic_illness.is_some()
        || e.serious_illness.is_some()
        || e.low_income.is_some()
        || e.extreme_poverty.is_some()
        || e.notes.is_some();
    any.then_some(e)
}

/// What a commit did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Outcome {
    pub households_created: u32,
    pub households_updated: u32,
    pub members_created: u32,
    pub members_updated: u32,
    /// Households the file did not list, removed because the commit asked to.
    #[serde(default)]
    pub households_removed: u32,
    /// Rows left out because they (or another row of their household) had errors.
    pub rows_skipped: u32,
}

impl std::ops::AddAssign for Outcome {
    fn add_assign(&mut self, o: Outcome) {
        self.households_created += o.households_created;
        self.households_updated += o.households_updated;
        self.members_created += o.members_created;
        self.members_updated += o.members_updated;
        self.households_removed += o.households_removed;
        self.rows_skipped += o.rows_skipped;
    }
}

/// What the caller asks of a commit.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// Commit the households without errors, skipping the others.
    pub skip_errors: bool,
    /// Soft-remove the stored households the file does not list, for this reason.
    pub remove_missing: Option<Removal>,
}

/// Whether a plan may be committed as the import `import`: still `validated`, made against
/// what the dry run saw (409 `import_stale` otherwise), and without errors unless they are to
/// be skipped.
pub fn check_commit(import: &imports::ImportRow, plan: &Plan, options: &CommitOptions) -> ApiResult<()> {
    if import.status != "validated" {
        return Err(ApiError::conflict(ErrorCode::ImportClosed, format!("the import is {} already", import.status)));
    }
    let stale = |what: &str| {
        let detail = format!("{what} changed since the dry run of this import: upload the file again");
        Err(ApiError::conflict(ErrorCode::ImportStale, detail))
    };
    if plan.basis != import.basis {
        return stale("the households or members this import was checked against");
    }
    if options.remove_missing.is_some() && plan.missing_basis != import.missing_basis {
        return stale("the households missing from the file");
    }
    if !plan.errors.is_empty() && !options.skip_errors {
        return Err(ApiError::conflict(
            ErrorCode::ImportHasErrors,
            format!("{} rows have errors: fix them, or commit with skip_errors=true", plan.summary.rows_with_errors),
        ));
    }
    Ok(())
}

/// The caller acting as the import: every audit event of its commit carries `import:<id>` as
/// its request id.
pub fn as_import(caller: &AuthUser, import_id: &str) -> AuthUser {
    let mut actor = caller.clone();
    actor.request_id = Some(format!("import:{import_id}"));
    actor
}

/// Applies one batch of a plan through the operations of the API, in the caller's
/// transaction; `actor` is [`as_import`]'s.
pub fn apply_batch(conn: &mut DbConn, actor: &AuthUser, batch: Batch, removal: Option<&Removal>) -> ApiResult<Outcome> {
    let mut out = Outcome::default();
    let mut new = Vec::new();
    for step in batch.steps {
        match step {
            Step::New { household, members } => new.push((household, members)),
            Step::Existing { edit: None, add, edits, .. } if add.is_empty() && edits.is_empty() => {}
            Step::Existing { id, version, edit, add, edits } => {
                out.households_updated += 1;
                if let Some(edit) = edit {
                    households::edit(conn, actor, &id, Some(&version.to_string()), edit)?;
                }
                for m in add {
                    members::add(conn, actor, &id, m)?;
                    out.members_created += 1;
                }
                for c in edits {
                    members::edit(conn, actor, &c.id, Some(&c.version.to_string()), c.edit)?;
                    out.members_updated += 1;
                }
            }
        }
    }
    out.households_created += new.len() as u32;
    out.members_created += households::register_many(conn, actor, new)? as u32;
    if let Some(removal) = removal {
        for id in batch.remove {
            households::remove(conn, actor, &id, removal.clone())?;
            out.households_removed += 1;
        }
    }
    Ok(out)
}

/// Marks an import committed with what its batches did, audited as the import's.
pub fn committed(
    conn: &mut DbConn,
    actor: &AuthUser,
    import: &imports::ImportRow,
    out: &Outcome,
    errors_file: Option<&[u8]>,
) -> ApiResult<()> {
    let summary = serde_json::to_value(out).map_err(ApiError::internal)?;
    let end = Ending { status: "committed", by: Some(&actor.id), failure: None, errors_file };
    end_import(conn, &actor.actor(), import, out, end, ("import.committed", summary))
}

/// Marks an import failed, saying what of it was applied: a commit stopped half-way is never
/// left to look whole. Audited (`import.failed`).
pub fn failed(
    conn: &mut DbConn,
    import: &imports::ImportRow,
    out: &Outcome,
    why: &str,
    errors_file: Option<&[u8]>,
) -> ApiResult<()> {
    let system = Actor { user_id: None, request_id: Some(format!("import:{}", import.id)) };
    let end = Ending { status: "failed", by: None, failure: Some(why), errors_file };
    end_import(conn, &system, import, out, end, ("import.failed", serde_json::json!({"reason": why, "applied": out})))
}

/// How an import ends, but for its outcome.
struct Ending<'a> {
    status: &'a str,
    by: Option<&'a str>,
    failure: Option<&'a str>,
    errors_file: Option<&'a [u8]>,
}

fn end_import(
    conn: &mut DbConn,
    actor: &Actor,
    import: &imports::ImportRow,
    out: &Outcome,
    end: Ending<'_>,
    (action, summary): (&str, serde_json::Value),
) -> ApiResult<()> {
    let outcome = serde_json::to_string(out).map_err(ApiError::internal)?;
    let Ending { status, by, failure, errors_file } = end;
    imports::finish(conn, &import.id, imports::Ending { status, by, outcome: &outcome, failure, errors_file }, now())?;
    let event = Event {
        action,
        entity_type: "import",
        entity_id: Some(&import.id),
        community_id: Some(&import.community_id),
        summary,
    };
    Ok(audit::record(conn, actor, event)?)
}

/// Ends the imports left `committing` by a process that stopped (their last batch is older
/// than `before`): each is marked `failed`, saying how far its commit got — what was applied
/// stays, audited as the import's, and importing the file again applies the rest. Returns
/// their ids.
pub fn fail_abandoned(conn: &mut DbConn, before: chrono::NaiveDateTime) -> ApiResult<Vec<String>> {
    let mut ended = Vec::new();
    for import in imports::abandoned(conn, before)? {
        let why = format!(
            "the server stopped during the commit, after {} of {} households: what was applied stays, audited as \
             this import's; upload the file again to apply the rest",
            import.progress_done, import.progress_total
        );
        let errors: Vec<RowError> = serde_json::from_str(&import.errors).map_err(ApiError::internal)?;
        let book = if errors.is_empty() {
            None
        } else {
            let file = imports::file(conn, &import.id)?;
            crate::roster::write::errors_xlsx(&file, &errors).ok()
        };
        failed(conn, &import, &Outcome::default(), &why, book.as_deref())?;
        ended.push(import.id);
    }
    Ok(ended)
}
