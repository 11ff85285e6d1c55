//! `gridlight seed demo`: the demo data set of `seeds/demo/`, loaded in one transaction.
//!
//! The files are embedded in the binary. Ids are derived from the records' keys, so loading
//! twice is loading once: a second run finds the data and changes nothing.

use std::collections::HashMap;

use chrono::{Days, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use serde::Deserialize;

use super::seeded_id;
use crate::db::{Db, DbConn};
use crate::domain::TagChangeStatus;
use crate::domain::grid_code::is_placeholder_street;
use crate::domain::{Finding, Location};
use crate::domain::{GridCode, IdNumber, Phone, ServiceKind, Tag, is_division_code};
use crate::error::{ApiError, ApiResult};
use crate::ops::visits::{Content, content_hash};
use crate::store::JsonText;
use crate::store::audit::{self, Actor, Event};
use crate::store::communities::{self, CommunityEdit, CommunityRow, GridRow};
use crate::store::households::{self, HouseholdRow, MemberRow};
use crate::store::streets::{self, DistrictRow, StreetRow};
use crate::store::tags::{self, TagChangeRow};
use crate::store::users::{self, NewUser};
use crate::store::visits::{self, VisitRow};
use crate::store::{now, plans, tasks};

/// The one password of every demo account.
pub const DEMO_PASSWORD: &str = "gridlight-demo";
const NS: &str = "gridlight-demo";
const COMMUNITIES: &str = include_str!("../../seeds/demo/communities.json");
const HOUSEHOLDS: &str = include_str!("../../seeds/demo/households.json");

#[derive(Deserialize)]
struct CommunitiesFile {
    format_version: u32,
    district: String,
    division_code: String,
    admins: Vec<Account>,
    district_officers: Vec<Account>,
    streets: Vec<Street>,
    communities: Vec<Community>,
}

/// A street (街道) of the district, with its officer.
#[derive(Deserialize)]
struct Street {
    key: String,
    name: String,
    code: String,
    officer: Account,
}

#[derive(Deserialize, Clone)]
struct Account {
    username: String,
    display_name: String,
    phone: Option<String>,
}

#[derive(Deserialize)]
struct Community {
    key: String,
    name: String,
    district: String,
    street: String,
    division_code: String,
    timezone: String,
    secretary: Account,
    workers: Vec<Account>,
    grids: Vec<Grid>,
}

#[derive(Deserialize)]
struct Grid {
    key: String,
    code: String,
    name: String,
    description: Option<String>,
    station: Option<Station>,
    workers: Vec<Assignment>,
}

#[derive(Deserialize)]
struct Station {
    name: String,
    address: Option<String>,
}

#[derive(Deserialize)]
struct Assignment {
    username: String,
    primary: bool,
}

#[derive(Deserialize)]
struct HouseholdsFile {
    format_version: u32,
    households: Vec<Household>,
}

#[derive(Deserialize)]
struct Address {
    building: String,
    unit: String,
    room: String,
}

#[derive(Deserialize)]
struct Household {
    key: String,
    community: String,
    grid: String,
    address: Address,
    head_name: String,
    phone: Option<String>,
    notes: Option<String>,
    tag: Tag,
    tag_reasons: Vec<String>,
    tag_note: Option<String>,
    tag_set_days_ago: u64,
    tag_set_by: String,
    members: Vec<Member>,
    pending_proposal: Option<Proposal>,
    visits: Vec<Visit>,
}

#[derive(Deserialize)]
struct Member {
    key: String,
    name: String,
    gender: crate::domain::Gender,
    birth_date: Option<NaiveDate>,
    id_number: Option<String>,
    phone: Option<String>,
    relation: crate::domain::Relation,
    living_alone: bool,
    disability_grade: Option<i32>,
    chronic_illness: bool,
    serious_illness: bool,
    low_income: bool,
    extreme_poverty: bool,
    notes: Option<String>,
}

#[derive(Deserialize)]
struct Proposal {
    to_tag: Tag,
    reasons: Vec<String>,
    note: Option<String>,
    by: String,
    days_ago: u64,
}

#[derive(Deserialize)]
struct Visit {
    key: String,
    days_ago: u64,
    time: String,
    kind: ServiceKind,
    by: String,
    notes: Option<String>,
    #[serde(default)]
    findings: Vec<Finding>,
    location: Option<Location>,
}

/// A demo login, for printing.
pub struct Login {
    pub username: String,
    pub role: &'static str,
    pub display_name: String,
    /// The community, street or district the account works in.
    pub community: Option<String>,
}

pub struct Loaded {
    /// False when the data set was already there.
    pub created: bool,
    /// For a data set already there: what loading again added to it, that it was loaded
    /// without (streets, their officers, the district's officer, a community moved from its
    /// district's default street to its named one); 0 when it has everything.
    pub completed: usize,
    pub households: usize,
    pub members: usize,
    pub visits: usize,
    pub proposals: usize,
    pub tasks: u64,
    pub logins: Vec<Login>,
}

fn bad(what: impl std::fmt::Display) -> ApiError {
    ApiError::internal(anyhow::anyhow!("demo data set: {what}"))
}

fn parse_files() -> ApiResult<(CommunitiesFile, HouseholdsFile)> {
    let c: CommunitiesFile = serde_json::from_str(COMMUNITIES).map_err(bad)?;
    let h: HouseholdsFile = serde_json::from_str(HOUSEHOLDS).map_err(bad)?;
    if c.format_version != 1 || h.format_version != 1 {
        return Err(bad("unknown format_version"));
    }
    Ok((c, h))
}

fn logins(c: &CommunitiesFile) -> Vec<Login> {
    let mut out: Vec<Login> = c
        .admins
        .iter()
        .map(|a| Login {
            username: a.username.clone(),
            role: "admin",
            display_name: a.display_name.clone(),
            community: None,
        })
        .collect();
    let officer = |a: &Account, role, unit: &str| Login {
        username: a.username.clone(),
        role,
        display_name: a.display_name.clone(),
        community: Some(unit.to_owned()),
    };
    out.extend(c.district_officers.iter().map(|a| officer(a, "district_officer", &c.district)));
    out.extend(c.streets.iter().map(|s| officer(&s.officer, "street_officer", &s.name)));
    for com in &c.communities {
        out.push(Login {
            username: com.secretary.username.clone(),
            role: "secretary",
            display_name: com.secretary.display_name.clone(),
            community: Some(com.name.clone()),
        });
        for w in &com.workers {
            out.push(Login {
                username: w.username.clone(),
                role: "grid_worker",
                display_name: w.display_name.clone(),
                community: Some(com.name.clone()),
            });
        }
    }
    out
}

/// Loads the demo data set unless it is there already. Password hashing happens before the
/// transaction, so the writer is held only for the inserts.
pub fn load(db: &Db) -> ApiResult<Loaded> {
    let (cfile, hfile) = parse_files()?;
    let logins = logins(&cfile);
    let first = cfile.communities.first().ok_or_else(|| bad("no communities"))?;
    let marker = seeded_id(NS, "community", &first.key, 0);
    let present = db.read_blocking(|conn| Ok(communities::find(conn, &marker)?.is_some()))?;
    let summary = |created| Loaded {
        created,
        households: hfile.households.len(),
        members: hfile.households.iter().map(|h| h.members.len()).sum(),
        visits: hfile.households.iter().map(|h| h.visits.len()).sum(),
        proposals: hfile.households.iter().filter(|h| h.pending_proposal.is_some()).count(),
        tasks: 0,
        completed: 0,
        logins: Vec::new(),
    };
    if present {
        let completed = complete(db, &cfile)?;
        return Ok(Loaded { logins, completed, ..summary(false) });
    }
    let hash = crate::auth::password::hash(DEMO_PASSWORD)?;
    let tasks_created = db.write_blocking(|conn| {
        // Another process may have loaded it meanwhile: check again under the write lock.
        if communities::find(conn, &marker)?.is_some() {
            return Ok(None);
        }
        insert_all(conn, &cfile, &hfile, &hash).map(Some)
    })?;
    Ok(match tasks_created {
        Some(tasks) => Loaded { tasks, logins, ..summary(true) },
        None => Loaded { logins, ..summary(false) },
    })
}

/// What a demo data set loaded before streets existed lacks, added: the migration put its
/// communities in the district's default street (`<code>000`) and it has no officers. Adds the
/// named streets and the officers that are missing (by street code, by username), and moves a
/// community still in the default street to its named one; a community an administrator has
/// moved elsewhere stays there. Idempotent: a complete data set is only read. Returns how many
/// things were added or moved.
fn complete(db: &Db, cfile: &CommunitiesFile) -> ApiResult<usize> {
    let lacking = db.read_blocking(|conn| {
        for a in cfile.district_officers.iter().chain(cfile.streets.iter().map(|s| &s.officer)) {
            if users::find_by_username(conn, &a.username)?.is_none() {
                return Ok(true);
            }
        }
        for s in &cfile.streets {
            if streets::street_by_code(conn, &s.code)?.is_none() {
                return Ok(true);
            }
        }
        Ok(false)
    })?;
    if !lacking {
        return Ok(0);
    }
    let hash = crate::auth::password::hash(DEMO_PASSWORD)?;
    db.write_blocking(|conn| add_missing(conn, cfile, &hash))
}

fn add_missing(conn: &mut DbConn, cfile: &CommunitiesFile, hash: &str) -> ApiResult<usize> {
    let at = now();
    let mut added = 0;
    let district = match streets::district_by_code(conn, &cfile.division_code)? {
        Some(d) => d,
        None => {
            let row = district_row(cfile, at);
            streets::insert_district(conn, &row)?;
            added += 1;
            row
        }
    };
    // The officers' ids are those a full load gives them: numbered after the administrators.
    let mut ordinal = cfile.admins.len() as u64;
    let mut ids = HashMap::new();
    let mut officer = |conn: &mut DbConn, a: &Account, role: &str, unit: Unit<'_>, ordinal: u64| -> ApiResult<usize> {
        if users::find_by_username(conn, &a.username)?.is_some() {
            return Ok(0);
        }
        add_user(conn, &mut ids, (a, role, unit), hash, at, ordinal)?;
        Ok(1)
    };
    for a in &cfile.district_officers {
        ordinal += 1;
        added += officer(conn, a, "district_officer", (None, None, Some(&district.id)), ordinal)?;
    }
    for (i, s) in cfile.streets.iter().enumerate() {
        ordinal += 1;
        let street = match streets::street_by_code(conn, &s.code)? {
            Some(found) => found,
            None => {
                let row = street_row(s, i, &district.id, at);
                streets::insert_street(conn, &row)?;
                added += 1;
                row
            }
        };
        added += officer(conn, &s.officer, "street_officer", (None, Some(&street.id), None), ordinal)?;
        for (j, c) in cfile.communities.iter().enumerate().filter(|(_, c)| c.street == s.name) {
            let Some(row) = communities::find(conn, &seeded_id(NS, "community", &c.key, j as u64))? else { continue };
            let now_in = streets::find_street(conn, &row.street_id)?;
            if row.street_id == street.id || !now_in.is_some_and(|n| is_placeholder_street(&n.code)) {
                continue;
            }
            let edit = CommunityEdit {
                street: Some(street.name.clone()),
                district: Some(district.name.clone()),
                street_id: Some(street.id.clone()),
                ..CommunityEdit::default()
            };
            communities::update(conn, &row.id, row.version, &edit, at)?;
            added += 1;
        }
    }
    audit::record(
        conn,
        &Actor::default(),
        Event {
            action: "seed.demo_completed",
            entity_type: "seed",
            entity_id: None,
            community_id: None,
            summary: serde_json::json!({"added": added}),
        },
    )?;
    Ok(added)
}

fn district_row(cfile: &CommunitiesFile, at: NaiveDateTime) -> DistrictRow {
    DistrictRow {
        id: seeded_id(NS, "district", &cfile.division_code, 0),
        name: cfile.district.clone(),
        division_code: cfile.division_code.clone(),
        version: 1,
        created_at: at,
        updated_at: at,
    }
}

fn street_row(s: &Street, i: usize, district_id: &str, at: NaiveDateTime) -> StreetRow {
    StreetRow {
        id: seeded_id(NS, "street", &s.key, i as u64),
        district_id: district_id.to_owned(),
        name: s.name.clone(),
        code: s.code.clone(),
        version: 1,
        created_at: at,
        updated_at: at,
    }
}

fn local(tz: &chrono_tz::Tz, date: NaiveDate, time: NaiveTime) -> NaiveDateTime {
    match tz.from_local_datetime(&date.and_time(time)).earliest() {
        Some(t) => t.naive_utc(),
        None => date.and_time(time),
    }
}

fn phone(p: Option<&str>, what: &str) -> ApiResult<Option<String>> {
    p.map(|p| Phone::parse(p).map(|p| p.as_str().to_owned()).map_err(|e| bad(format!("{what}: {e}")))).transpose()
}

/// Where an account works: `(community, street, district)`, the one its role has.
type Unit<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>);

fn add_user(
    conn: &mut DbConn,
    ids: &mut HashMap<String, String>,
    (a, role, (community, street, district)): (&Account, &str, Unit<'_>),
    hash: &str,
    at: NaiveDateTime,
    ordinal: u64,
) -> ApiResult<()> {
    let id = seeded_id(NS, "user", &a.username, ordinal);
    let phone = phone(a.phone.as_deref(), &a.username)?;
    users::insert(
        conn,
        &NewUser {
            id: &id,
            username: &a.username,
            display_name: &a.display_name,
            phone: phone.as_deref(),
            role,
            community_id: community,
            password_hash: hash,
            street_id: street,
            district_id: district,
        },
        at,
    )?;
    ids.insert(a.username.clone(), id);
    Ok(())
}

fn insert_all(conn: &mut DbConn, cfile: &CommunitiesFile, hfile: &HouseholdsFile, hash: &str) -> ApiResult<u64> {
    let at = now();
    let mut user_ids: HashMap<String, String> = HashMap::new();
    let mut ordinal = 0u64;
    let mut next = || {
        ordinal += 1;
        ordinal
    };
    for a in &cfile.admins {
        add_user(conn, &mut user_ids, (a, "admin", (None, None, None)), hash, at, next())?;
    }
    let district = district_row(cfile, at);
    streets::insert_district(conn, &district)?;
    for a in &cfile.district_officers {
        add_user(conn, &mut user_ids, (a, "district_officer", (None, None, Some(&district.id))), hash, at, next())?;
    }
    let mut street_ids: HashMap<String, String> = HashMap::new();
    for (i, s) in cfile.streets.iter().enumerate() {
        let row = street_row(s, i, &district.id, at);
        streets::insert_street(conn, &row)?;
        add_user(conn, &mut user_ids, (&s.officer, "street_officer", (None, Some(&row.id), None)), hash, at, next())?;
        street_ids.insert(s.name.clone(), row.id);
    }
    let mut community_rows: HashMap<String, CommunityRow> = HashMap::new();
    let mut grid_rows: HashMap<String, GridRow> = HashMap::new();
    for (i, c) in cfile.communities.iter().enumerate() {
        if !is_division_code(&c.division_code) {
            return Err(bad(format!("{}: division code {}", c.key, c.division_code)));
        }
        let row = CommunityRow {
            id: seeded_id(NS, "community", &c.key, i as u64),
            name: c.name.clone(),
            district: c.district.clone(),
            street: c.street.clone(),
            division_code: c.division_code.clone(),
            timezone: c.timezone.clone(),
            version: 1,
            created_at: at,
            updated_at: at,
            street_id: street_ids.get(&c.street).cloned().ok_or_else(|| bad(format!("{}: street", c.key)))?,
        };
        communities::insert(conn, &row)?;
        plans::create_defaults(conn, &row.id)?;
        let unit = (Some(row.id.as_str()), None, None);
        add_user(conn, &mut user_ids, (&c.secretary, "secretary", unit), hash, at, next())?;
        for w in &c.workers {
            add_user(conn, &mut user_ids, (w, "grid_worker", unit), hash, at, next())?;
        }
        let street_code = &cfile.streets.iter().find(|s| s.name == c.street).ok_or_else(|| bad(&c.key))?.code;
        for g in &c.grids {
            let code = GridCode::parse_in_street(&g.code, &c.division_code, street_code)
                .map_err(|e| bad(format!("{}: {e}", g.key)))?;
            let grid = GridRow {
                id: seeded_id(NS, "grid", &g.key, next()),
                community_id: row.id.clone(),
                code: code.as_str().to_owned(),
                name: g.name.clone(),
                description: g.description.clone(),
                station_name: g.station.as_ref().map(|s| s.name.clone()),
                station_address: g.station.as_ref().and_then(|s| s.address.clone()),
                version: 1,
                created_at: at,
                updated_at: at,
            };
            communities::insert_grid(conn, &grid)?;
            let workers: Vec<(String, bool)> = g
                .workers
                .iter()
                .map(|w| user_ids.get(&w.username).cloned().map(|id| (id, w.primary)).ok_or_else(|| bad(&w.username)))
                .collect::<ApiResult<_>>()?;
            communities::replace_workers(conn, &grid.id, &workers, at)?;
            grid_rows.insert(g.key.clone(), grid);
        }
        community_rows.insert(c.key.clone(), row);
    }

    let mut household_ids = Vec::with_capacity(hfile.households.len());
    for h in &hfile.households {
        let community = community_rows.get(&h.community).ok_or_else(|| bad(&h.key))?;
        let grid = grid_rows.get(&h.grid).ok_or_else(|| bad(&h.key))?;
        let tz = community.zone()?;
        let today = communities::today_in_zone(tz);
        let user =
            |name: &str| user_ids.get(name).cloned().ok_or_else(|| bad(format!("{}: unknown user {name}", h.key)));
        let tag_day = today.checked_sub_days(Days::new(h.tag_set_days_ago)).ok_or_else(|| bad(&h.key))?;
        let tag_set_at = local(&tz, tag_day, NaiveTime::from_hms_opt(9, 0, 0).expect("valid time")).min(at);
        let review = plans::review_interval_days(conn, &community.id, h.tag)?;
        let set_by = user(&h.tag_set_by)?;
        for r in h.tag_reasons.iter().chain(h.pending_proposal.iter().flat_map(|p| p.reasons.iter())) {
            if crate::domain::reason(r).is_none() {
                return Err(bad(format!("{}: unknown reason {r}", h.key)));
            }
        }
        let id = seeded_id(NS, "household", &h.key, next());
        let row = HouseholdRow {
            id: id.clone(),
            grid_id: grid.id.clone(),
            community_id: community.id.clone(),
            building: h.address.building.clone(),
            unit: h.address.unit.clone(),
            room: h.address.room.clone(),
            head_name: h.head_name.clone(),
            phone: phone(h.phone.as_deref(), &h.key)?,
            tag: h.tag,
            tag_reasons: JsonText(h.tag_reasons.clone()),
            tag_note: h.tag_note.clone(),
            tag_set_at: Some(tag_set_at),
            tag_set_by: Some(set_by.clone()),
            tag_review_due_on: tag_day.checked_add_days(Days::new(u64::from(review))),
            notes: h.notes.clone(),
            member_count: i32::try_from(h.members.len()).unwrap_or(0),
            version: 1,
            created_at: tag_set_at,
            updated_at: at,
            removed_at: None,
            removed_reason: None,
            removed_note: None,
        };
        households::insert(conn, &row)?;
        if h.tag != Tag::Green {
            tags::insert(
                conn,
                &TagChangeRow {
                    id: seeded_id(NS, "tag-change", &h.key, next()),
                    household_id: id.clone(),
                    community_id: community.id.clone(),
                    grid_id: grid.id.clone(),
                    from_tag: Tag::Green,
                    to_tag: h.tag,
                    reasons: row.tag_reasons.clone(),
                    note: h.tag_note.clone(),
                    proposed_by: set_by.clone(),
                    proposed_at: tag_set_at,
                    status: TagChangeStatus::Approved,
                    decided_by: Some(set_by.clone()),
                    decided_at: Some(tag_set_at),
                    decision_note: None,
                },
            )?;
        }
        for m in &h.members {
            let id_number = match &m.id_number {
                Some(n) => {
                    let parsed = IdNumber::parse(n).map_err(|e| bad(format!("{}: {e}", m.key)))?;
                    parsed.agrees_with(m.birth_date, Some(m.gender)).map_err(|e| bad(format!("{}: {e}", m.key)))?;
                    Some(parsed.as_str().to_owned())
                }
                None => None,
            };
            households::insert_member(
                conn,
                &MemberRow {
                    id: seeded_id(NS, "member", &m.key, next()),
                    household_id: id.clone(),
                    name: m.name.clone(),
                    gender: m.gender,
                    birth_date: m.birth_date,
                    id_number,
                    phone: phone(m.phone.as_deref(), &m.key)?,
                    relation: m.relation,
                    living_alone: m.living_alone,
                    disability_grade: m.disability_grade,
                    chronic_illness: m.chronic_illness,
                    serious_illness: m.serious_illness,
                    low_income: m.low_income,
                    extreme_poverty: m.extreme_poverty,
                    notes: m.notes.clone(),
                    version: 1,
                    created_at: at,
                    updated_at: at,
                    removed_at: None,
                },
            )?;
        }
        if let Some(p) = &h.pending_proposal {
            let day = today.checked_sub_days(Days::new(p.days_ago)).ok_or_else(|| bad(&h.key))?;
            tags::insert(
                conn,
                &TagChangeRow {
                    id: seeded_id(NS, "proposal", &h.key, next()),
                    household_id: id.clone(),
                    community_id: community.id.clone(),
                    grid_id: grid.id.clone(),
                    from_tag: h.tag,
                    to_tag: p.to_tag,
                    reasons: JsonText(p.reasons.clone()),
                    note: p.note.clone(),
                    proposed_by: user(&p.by)?,
                    proposed_at: local(&tz, day, NaiveTime::from_hms_opt(18, 0, 0).expect("valid time")).min(at),
                    status: TagChangeStatus::Pending,
                    decided_by: None,
                    decided_at: None,
                    decision_note: None,
                },
            )?;
        }
        for v in &h.visits {
            let day = today.checked_sub_days(Days::new(v.days_ago)).ok_or_else(|| bad(&v.key))?;
            let time = NaiveTime::parse_from_str(&v.time, "%H:%M").map_err(|e| bad(format!("{}: {e}", v.key)))?;
            let visited_at = local(&tz, day, time).min(at);
            let content = Content { notes: v.notes.clone(), findings: v.findings.clone(), location: v.location };
            visits::insert(
                conn,
                &VisitRow {
                    id: seeded_id(NS, "visit", &v.key, next()),
                    household_id: id.clone(),
                    community_id: community.id.clone(),
                    grid_id: grid.id.clone(),
                    worker_id: user(&v.by)?,
                    kind: v.kind,
                    visited_at,
                    content_hash: content_hash(&id, v.kind, visited_at, &content),
                    notes: content.notes,
                    findings: JsonText(content.findings.clone()),
                    location_lat: v.location.map(|l| l.lat),
                    location_lng: v.location.map(|l| l.lng),
                    location_accuracy_m: v.location.map(|l| l.accuracy_m),
                    received_at: visited_at,
                    version: 1,
                    updated_at: visited_at,
                },
            )?;
        }
        household_ids.push(id);
    }
    let mut created = 0;
    for id in &household_ids {
        created += tasks::household_changed(conn, id)?.created;
    }
    audit::record(
        conn,
        &Actor::default(),
        Event {
            action: "seed.demo_loaded",
            entity_type: "seed",
            entity_id: None,
            community_id: None,
            summary: serde_json::json!({"households": household_ids.len(), "tasks": created}),
        },
    )?;
    Ok(created)
}
