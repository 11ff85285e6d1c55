//! `gridlight seed synthetic --households N [--seed S]`: a large deterministic data set for
//! benchmarks: districts × streets × communities × grids × households × members, four weeks of
//! visit history, and the open tasks of the default service plans.
//!
//! Shape: 300 households per grid, 5 grids per community, 7 communities per street (Shizhong
//! district: 615 grids, 116 communities, 17 streets), communities spread over Jinan's districts,
//! an officer per street and per district (`syn<seed>.s<division><street>`, `syn<seed>.d<division>`). Everything comes from a seeded generator and seeded ids, so the same seed gives
//! the same data; rows are written in batched multi-row inserts, one transaction per chunk of
//! households. Tasks are computed with the same scheduling rule as the reconcile job (a
//! reconcile right after loading changes nothing — a test checks it).

use std::collections::HashMap;

use chrono::{Days, Duration, NaiveDate, NaiveDateTime};

use super::{Progress, SplitMix, seeded_id};
use crate::db::{Db, DbConn};
use crate::domain::{Gender, Relation, ServiceKind};
use crate::domain::{IdNumber, Tag, check_char, schedule};
use crate::error::{ApiError, ApiResult};
use crate::store::JsonText;
use crate::store::bulk;
use crate::store::communities::{self, CommunityRow, DEFAULT_TIMEZONE, GridRow};
use crate::store::households::{HouseholdRow, MemberRow};
use crate::store::streets::{self, DistrictRow, StreetRow};
use crate::store::tasks::{NewTask, TaskRow, local_date};
use crate::store::users::{self, NewUser};
use crate::store::visits::VisitRow;
use crate::store::{now, plans, sync};

pub const PASSWORD: &str = "gridlight-synthetic";
pub const HOUSEHOLDS_PER_GRID: u64 = 300;
pub const GRIDS_PER_COMMUNITY: u64 = 5;
pub const COMMUNITIES_PER_STREET: u64 = 7;
const CHUNK: u64 = 2_000;
const DISTRICTS: [(&str, &str); 12] = [
    ("370102", "历下区"),
    ("370103", "市中区"),
    ("370104", "槐荫区"),
    ("370105", "天桥区"),
    ("370112", "历城区"),
    ("370113", "长清区"),
    ("370114", "章丘区"),
    ("370115", "济阳区"),
    ("370116", "莱芜区"),
    ("370117", "钢城区"),
    ("370124", "平阴县"),
    ("370126", "商河县"),
];
const SURNAMES: [&str; 24] = [
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林", "何", "郭", "马",
    "罗", "梁", "宋", "郑", "谢",
];
const GIVEN: [&str; 24] = [
    "桂兰", "秀英", "建国", "淑珍", "志强", "海燕", "玉兰", "德胜", "丽华", "文斌", "春梅", "国庆", "红霞", "永刚",
    "晓东", "雪梅", "子涵", "浩然", "思雨", "一鸣", "明轩", "欣怡", "宇航", "佳琪",
];
const RED_REASONS: [&str; 4] = ["elderly_living_alone", "severe_disability", "serious_illness", "extreme_poverty"];
const YELLOW_REASONS: [&str; 5] =
    ["aged_80_plus", "elderly_couple_only", "chronic_illness", "low_income", "unemployed"];

fn ns(seed: u64) -> String {
    format!("gridlight-synthetic-{seed}")
}

struct Structure {
    districts: Vec<DistrictRow>,
    streets: Vec<StreetRow>,
    communities: Vec<CommunityRow>,
    grids: Vec<GridRow>,
    /// Per grid: its primary worker.
    workers: Vec<String>,
}

fn structure(seed: u64, n: u64) -> Structure {
    let ns = ns(seed);
    let grid_count = n.div_ceil(HOUSEHOLDS_PER_GRID).max(1);
    let community_count = grid_count.div_ceil(GRIDS_PER_COMMUNITY);
    let at = now();
    let mut communities = Vec::new();
    let mut grids = Vec::new();
    let mut workers = Vec::new();
    let districts: Vec<DistrictRow> = DISTRICTS
        .iter()
        .take(usize::try_from(community_count).unwrap_or(usize::MAX).min(DISTRICTS.len()))
        .map(|(division, name)| DistrictRow {
            id: seeded_id(&ns, "district", division, 0),
            name: (*name).to_owned(),
            division_code: (*division).to_owned(),
            version: 1,
            created_at: at,
            updated_at: at,
        })
        .collect();
    let mut streets: Vec<StreetRow> = Vec::new();
    for i in 0..community_count {
        let d = usize::try_from(i % 12).unwrap_or(0);
        let (division, district) = DISTRICTS[d];
        let street = (i / 12) / COMMUNITIES_PER_STREET + 1;
        let code = (i / 12) % COMMUNITIES_PER_STREET + 1;
        let street_code = format!("{division}{street:03}");
        if code == 1 {
            streets.push(StreetRow {
                id: seeded_id(&ns, "street", &street_code, street),
                district_id: districts[d].id.clone(),
                name: format!("合成街道{street:03}"),
                code: street_code.clone(),
                version: 1,
                created_at: at,
                updated_at: at,
            });
        }
        let c = CommunityRow {
            id: seeded_id(&ns, "community", &i.to_string(), i),
            name: format!("合成社区{:05}", i + 1),
            district: district.to_owned(),
            street: format!("合成街道{street:03}"),
            division_code: division.to_owned(),
            timezone: DEFAULT_TIMEZONE.name().to_owned(),
            version: 1,
            created_at: at,
            updated_at: at,
            street_id: seeded_id(&ns, "street", &street_code, street),
        };
        for j in 0..GRIDS_PER_COMMUNITY {
            let g = i * GRIDS_PER_COMMUNITY + j;
            if g >= grid_count {
                break;
            }
            grids.push(GridRow {
                id: seeded_id(&ns, "grid", &g.to_string(), g),
                community_id: c.id.clone(),
                code: format!("{division}{street:03}{code:03}{:02}", j + 1),
                name: format!("{}第{}网格", c.name, j + 1),
                description: None,
                station_name: None,
                station_address: None,
                version: 1,
                created_at: at,
                updated_at: at,
            });
            workers.push(seeded_id(&ns, "user", &format!("g{g}"), g * 2 + 1));
        }
        communities.push(c);
    }
    Structure { districts, streets, communities, grids, workers }
}

fn id_number(rng: &mut SplitMix, division: &str, birth: NaiveDate, male: bool) -> String {
    let mut seq = rng.below(500) * 2;
    if male {
        seq += 1;
    }
    let first17 = format!("{division}{}{seq:03}", birth.format("%Y%m%d"));
    format!("{first17}{}", check_char(&first17))
}

/// Loads the data set; returns a summary line. Refuses a database that holds another synthetic
/// set of the same seed partially (it then says so) and skips one that holds it completely.
pub fn load(db: &Db, n: u64, seed: u64) -> ApiResult<String> {
    if n == 0 {
        return Err(ApiError::invalid("households", "out_of_range", "must be at least 1"));
    }
    let s = structure(seed, n);
    let first = s.communities[0].id.clone();
    let last_household = seeded_id(&ns(seed), "household", &(n - 1).to_string(), n - 1);
    let (has_first, has_last) = db.read_blocking(|conn| {
        let a = communities::find(conn, &first)?.is_some();
        let b = crate::store::households::find(conn, &last_household)?.is_some();
        Ok((a, b))
    })?;
    if has_first && has_last {
        return Ok(format!("synthetic data set (seed {seed}, {n} households) is already loaded"));
    }
    if has_first {
        return Err(ApiError::conflict(
            crate::error::ErrorCode::AlreadyExists,
            "a different or partial synthetic data set with this seed is present; use a fresh database",
        ));
    }
    let hash = crate::auth::password::hash(PASSWORD)?;
    let ns = ns(seed);
    let at = now();
    db.write_blocking(|conn| {
        for d in &s.districts {
            streets::insert_district(conn, d)?;
            let id = seeded_id(&ns, "user", &format!("d{}", d.division_code), 0);
            let unit = (None, None, Some(d.id.as_str()));
            insert_user(conn, &id, &format!("syn{seed}.d{}", d.division_code), "district_officer", unit, &hash, at)?;
        }
        for st in &s.streets {
            streets::insert_street(conn, st)?;
            let id = seeded_id(&ns, "user", &format!("s{}", st.code), 0);
            let unit = (None, Some(st.id.as_str()), None);
            insert_user(conn, &id, &format!("syn{seed}.s{}", st.code), "street_officer", unit, &hash, at)?;
        }
        Ok(())
    })?;
    let mut progress = Progress::new("structure ", s.communities.len() as u64);
    // Communities, plans, accounts, grids, assignments.
    let mut templates: HashMap<String, Vec<plans::TemplateRow>> = HashMap::new();
    for (ci, chunk) in s.communities.chunks(200).enumerate() {
        let made = db.write_blocking(|conn| {
            let mut made = Vec::new();
            for (k, c) in chunk.iter().enumerate() {
                let i = (ci * 200 + k) as u64;
                communities::insert(conn, c)?;
                let mut n = 0;
                plans::create_defaults_with(conn, &c.id, &mut || {
                    n += 1;
                    seeded_id(&ns, "plan", &format!("{i}-{n}"), i * 16 + n)
                })?;
                let sec = seeded_id(&ns, "user", &format!("c{i}"), i * 2);
                let unit = (Some(c.id.as_str()), None, None);
                insert_user(conn, &sec, &format!("syn{seed}.c{i}.sec"), "secretary", unit, &hash, at)?;
                let mut by_tag = Vec::new();
                for tag in Tag::ALL {
                    by_tag.extend(plans::active_templates(conn, &c.id, *tag)?);
                }
                made.push((c.id.clone(), by_tag));
            }
            Ok(made)
        })?;
        templates.extend(made);
        progress.advance(chunk.len() as u64);
    }
    progress.finish();
    let mut progress = Progress::new("grids     ", s.grids.len() as u64);
    for (gi, chunk) in s.grids.chunks(500).enumerate() {
        db.write_blocking(|conn| {
            for (k, g) in chunk.iter().enumerate() {
                let idx = gi * 500 + k;
                communities::insert_grid(conn, g)?;
                let worker = &s.workers[idx];
                let unit = (Some(g.community_id.as_str()), None, None);
                insert_user(conn, worker, &format!("syn{seed}.g{idx}"), "grid_worker", unit, &hash, at)?;
                communities::replace_workers(conn, &g.id, &[(worker.clone(), true)], at)?;
            }
            Ok(())
        })?;
        progress.advance(chunk.len() as u64);
    }
    progress.finish();

    let counts = std::cell::Cell::new((0u64, 0u64, 0u64));
    let mut progress = Progress::new("households", n);
    let today = communities::today_in_zone(DEFAULT_TIMEZONE);
    let mut start = 0;
    while start < n {
        let end = (start + CHUNK).min(n);
        let rows = generate(&ns, seed, &s, &templates, start..end, today, at);
        db.write_blocking(|conn| {
            sync::unlogged(conn, &["households", "members", "visits", "tasks"], |conn| {
                bulk::households(conn, &rows.households)?;
                bulk::members(conn, &rows.members)?;
                bulk::visits(conn, &rows.visits)?;
                bulk::tasks(conn, &rows.tasks)?;
                Ok(())
            })
        })?;
        let (m, v, t) = counts.get();
        counts.set((m + rows.members.len() as u64, v + rows.visits.len() as u64, t + rows.tasks.len() as u64));
        progress.advance(end - start);
        start = end;
    }
    progress.finish();
    db.write_blocking(|conn| Ok(crate::store::suggestions::add_missing(conn)?))?;
    db.refresh_statistics()?;
    let (m, v, t) = counts.get();
    Ok(format!(
        "synthetic data set (seed {seed}): {} districts, {} streets, {} communities, {} grids, {n} households, {m} members, {v} visits, {t} open tasks",
        s.districts.len(),
        s.streets.len(),
        s.communities.len(),
        s.grids.len()
    ))
}

fn insert_user(
    conn: &mut DbConn,
    id: &str,
    username: &str,
    role: &str,
    (community, street, district): (Option<&str>, Option<&str>, Option<&str>),
    hash: &str,
    at: NaiveDateTime,
) -> ApiResult<()> {
    users::insert(
        conn,
        &NewUser {
            id,
            username,
            display_name: username,
            phone: None,
            role,
            community_id: community,
            password_hash: hash,
            street_id: street,
            district_id: district,
        },
        at,
    )?;
    Ok(())
}

struct Rows {
    households: Vec<HouseholdRow>,
    members: Vec<MemberRow>,
    visits: Vec<VisitRow>,
    tasks: Vec<TaskRow>,
}

/// The rows of households `range`; household `i` depends only on the seed and `i`.
fn generate(
    ns: &str,
    seed: u64,
    s: &Structure,
    templates: &HashMap<String, Vec<plans::TemplateRow>>,
    range: std::ops::Range<u64>,
    today: NaiveDate,
    at: NaiveDateTime,
) -> Rows {
    let mut out = Rows { households: Vec::new(), members: Vec::new(), visits: Vec::new(), tasks: Vec::new() };
    let noon = chrono::NaiveTime::from_hms_opt(2, 0, 0).expect("valid time"); // 10:00 in Shanghai
    for i in range {
        let mut rng = SplitMix::new(seed.wrapping_mul(0x1000_0000_01B3) ^ i);
        let g = usize::try_from(i / HOUSEHOLDS_PER_GRID).unwrap_or(0);
        let grid = &s.grids[g];
        let community = &s.communities[g / GRIDS_PER_COMMUNITY as usize].division_code;
        let id = seeded_id(ns, "household", &i.to_string(), i);
        let roll = rng.below(100);
        let tag = if roll < 5 {
            Tag::Red
        } else if roll < 20 {
            Tag::Yellow
        } else {
            Tag::Green
        };
        let reasons: Vec<&str> = match tag {
            Tag::Red => vec![*rng.pick(&RED_REASONS)],
            Tag::Yellow => vec![*rng.pick(&YELLOW_REASONS)],
            Tag::Green => vec![],
        };
        let tag_day = today - Days::new(rng.below(200) + 1);
        let tag_set_at = tag_day.and_time(noon);
        let review = tag.default_review_interval_days();
        let head = format!("{}{}", rng.pick(&SURNAMES), rng.pick(&GIVEN));
        let size = 1 + rng.below(5);
        out.households.push(HouseholdRow {
            id: id.clone(),
            grid_id: grid.id.clone(),
            community_id: grid.community_id.clone(),
            building: format!("{}号楼", 1 + (i % HOUSEHOLDS_PER_GRID) / 30),
            unit: format!("{}单元", 1 + (i % 30) / 10),
            room: format!("{}0{}", 1 + (i % 10) / 2, 1 + i % 2),
            head_name: head.clone(),
            phone: Some(format!("1390{:07}", i % 10_000_000)),
            tag,
            tag_reasons: JsonText(reasons.iter().map(|r| (*r).to_owned()).collect()),
            tag_note: None,
            tag_set_at: Some(tag_set_at),
            tag_set_by: None,
            tag_review_due_on: Some(tag_day + Days::new(u64::from(review))),
            notes: None,
            member_count: i32::try_from(size).unwrap_or(1),
            version: 1,
            created_at: tag_set_at,
            updated_at: at,
            removed_at: None,
            removed_reason: None,
            removed_note: None,
        });
        for m in 0..size {
            let elderly = tag != Tag::Green && m == 0;
            let age = if elderly { 65 + rng.below(30) } else { 1 + rng.below(85) };
            let birth = NaiveDate::from_ymd_opt(
                i32::try_from(2026 - age).unwrap_or(1950),
                1 + (rng.below(12) as u32),
                1 + (rng.below(28) as u32),
            )
            .expect("valid date");
            let male = rng.chance(0.5);
            let number = id_number(&mut rng, community, birth, male);
            debug_assert!(IdNumber::parse(&number).is_ok());
            out.members.push(MemberRow {
                id: seeded_id(ns, "member", &format!("{i}-{m}"), i * 8 + m),
                household_id: id.clone(),
                name: if m == 0 { head.clone() } else { format!("{}{}", rng.pick(&SURNAMES), rng.pick(&GIVEN)) },
                gender: if male { Gender::Male } else { Gender::Female },
                birth_date: Some(birth),
                id_number: Some(number),
                phone: None,
                relation: if m == 0 { Relation::Head } else { Relation::Child },
                living_alone: size == 1 && elderly,
                disability_grade: (reasons.first() == Some(&"severe_disability") && m == 0).then_some(1),
                chronic_illness: reasons.first() == Some(&"chronic_illness") && m == 0,
                serious_illness: reasons.first() == Some(&"serious_illness") && m == 0,
                low_income: reasons.first() == Some(&"low_income"),
                extreme_poverty: reasons.first() == Some(&"extreme_poverty"),
                notes: None,
                version: 1,
                created_at: at,
                updated_at: at,
                removed_at: None,
            });
        }
        // Four weeks of history: red daily-ish calls and weekly visits, yellow weekly calls and
        // a monthly visit, green an occasional visit.
        let mut last: HashMap<ServiceKind, NaiveDate> = HashMap::new();
        let mut plan: Vec<(u64, ServiceKind)> = Vec::new();
        match tag {
            Tag::Red => {
                for d in (0..28).rev() {
                    if rng.chance(0.8) {
                        plan.push((d, ServiceKind::PhoneCall));
                    }
                    if d % 7 == 3 && rng.chance(0.9) {
                        plan.push((d, ServiceKind::HomeVisit));
                    }
                }
            }
            Tag::Yellow => {
                for d in [24u64, 17, 10, 3] {
                    if rng.chance(0.85) {
                        plan.push((d, ServiceKind::PhoneCall));
                    }
                }
                if rng.chance(0.8) {
                    plan.push((rng.below(28), ServiceKind::HomeVisit));
                }
            }
            Tag::Green => {
                if rng.chance(0.3) {
                    plan.push((rng.below(28), ServiceKind::HomeVisit));
                }
            }
        }
        for (k, (days_ago, kind)) in plan.into_iter().enumerate() {
            let day = today - Days::new(days_ago);
            let visited_at = day.and_time(noon) + Duration::minutes(i64::try_from(rng.below(480)).unwrap_or(0));
            let visited_at = visited_at.min(at);
            let e = last.entry(kind).or_insert(day);
            *e = (*e).max(day);
            out.visits.push(VisitRow {
                id: seeded_id(ns, "visit", &format!("{i}-{k}"), i * 64 + k as u64),
                household_id: id.clone(),
                community_id: grid.community_id.clone(),
                grid_id: grid.id.clone(),
                worker_id: s.workers[g].clone(),
                kind,
                visited_at,
                notes: Some("例行服务，情况正常。".to_owned()),
                findings: JsonText(vec![]),
                location_lat: None,
                location_lng: None,
                location_accuracy_m: None,
                content_hash: format!("synthetic-{i}-{k}"),
                received_at: visited_at,
                version: 1,
                updated_at: visited_at,
            });
        }
        for t in templates.get(&grid.community_id).into_iter().flatten().filter(|t| t.tag == tag) {
            let last_visit = last.get(&t.kind).copied();
            let due = schedule::due_on(
                last_visit,
                local_date(tag_set_at, DEFAULT_TIMEZONE),
                u32::try_from(t.interval_days).unwrap_or(1),
            );
            let task = NewTask {
                id: seeded_id(ns, "task", &format!("{i}-{}", t.kind), i * 8 + u64::from(t.kind.as_str().len() as u8)),
                household_id: id.clone(),
                template_id: t.id.clone(),
                community_id: grid.community_id.clone(),
                grid_id: grid.id.clone(),
                tag,
                kind: t.kind,
                assignee_id: Some(s.workers[g].clone()),
                due_on: due,
            };
            out.tasks.push(task.open(at));
        }
    }
    out
}
