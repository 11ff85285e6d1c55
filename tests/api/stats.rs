//! Dashboards and evaluation reports: every figure of small hand-built data sets, day
//! boundaries in the communities' timezones, scope, CSV.
//!
//! The data sets are built through the API, then tasks and visits are written directly with
//! chosen dates and times (the API would schedule and complete tasks by itself).

use actix_web::test::TestRequest;
use chrono::{Datelike, Duration, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use diesel::prelude::*;
use serde_json::{Value, json};

use gridlight::db::schema::{grids, households, service_templates, tag_changes, tasks, users};
use gridlight::store::tasks::TaskRow;
use gridlight::store::visits::VisitRow;

use crate::on_both_backends;
use crate::support::PlanStep;
use crate::support::world::{World, ok};
use crate::support::{TestApp, TestResponse};

on_both_backends!(
    overview_counts_every_figure,
    overview_is_scoped,
    report_of_a_past_period,
    report_as_csv,
    report_of_the_running_period,
    report_follows_daylight_saving_time,
    report_is_scoped_and_validated,
);

const SHANGHAI: Tz = chrono_tz::Asia::Shanghai;

fn today() -> NaiveDate {
    Utc::now().with_timezone(&SHANGHAI).date_naive()
}

/// The UTC instant at which a local date begins.
fn midnight(date: NaiveDate, tz: Tz) -> NaiveDateTime {
    tz.from_local_datetime(&date.and_time(NaiveTime::MIN)).earliest().unwrap().naive_utc()
}

fn m(date: NaiveDate) -> NaiveDateTime {
    midnight(date, SHANGHAI)
}

fn days(n: i64) -> Duration {
    Duration::days(n)
}

fn tags(red: i64, yellow: i64, green: i64) -> Value {
    json!({"red": red, "yellow": yellow, "green": green, "total": red + yellow + green})
}

fn kinds(home_visit: i64, phone_call: i64, service: i64) -> Value {
    json!({"home_visit": home_visit, "phone_call": phone_call, "service": service, "total": home_visit + phone_call + service})
}

fn rate(part: i64, whole: i64) -> Value {
    if whole == 0 { Value::Null } else { json!(part as f64 / whole as f64) }
}

fn cov(planned: i64, covered: i64) -> Value {
    json!({"planned": planned, "covered": covered, "rate": rate(covered, planned)})
}

async fn user_id(app: &TestApp, username: &str) -> String {
    let name = username.to_owned();
    app.state
        .db
        .read(move |c| Ok(users::table.filter(users::username.eq(name)).select(users::id).first(c)?))
        .await
        .unwrap()
}

async fn set_tag(app: &TestApp, token: &str, household: &str, tag: &str, reason: &str) {
    let res = app
        .post(
            &format!("/api/v1/households/{household}/tag-changes"),
            Some(token),
            json!({"to_tag": tag, "reasons": [reason]}),
        )
        .await;
    ok(&res);
}

async fn remove(app: &TestApp, token: &str, household: &str) {
    ok(&app.delete_as(&format!("/api/v1/households/{household}?reason=moved_out"), token).await);
}

/// Writes a visit directly, at a chosen time, without touching tasks.
async fn visit(app: &TestApp, household: &str, worker: &str, kind: &str, at: NaiveDateTime) {
    let (household, worker) = (household.to_owned(), worker.to_owned());
    let kind = gridlight::domain::ServiceKind::parse(kind).unwrap();
    app.state
        .db
        .write(move |c| {
            let (grid_id, community_id): (String, String) =
                households::table.find(&household).select((households::grid_id, households::community_id)).first(c)?;
            let row = VisitRow {
                id: gridlight::store::new_id(),
                household_id: household,
                community_id,
                grid_id,
                worker_id: worker,
                kind,
                visited_at: at,
                notes: None,
                findings: gridlight::store::JsonText(vec![]),
                location_lat: None,
                location_lng: None,
                location_accuracy_m: None,
                content_hash: "test".into(),
                received_at: at,
                version: 1,
                updated_at: at,
            };
            diesel::insert_into(gridlight::db::schema::visits::table).values(&row).execute(c)?;
            Ok(())
        })
        .await
        .unwrap();
}

/// Writes a task directly: due on a chosen date, in a chosen state. Open tasks take a template
/// the household has no open task of yet (the database allows one per template).
async fn task(
    app: &TestApp,
    household: &str,
    assignee: Option<&str>,
    due_on: NaiveDate,
    status: &str,
    done_at: Option<NaiveDateTime>,
) {
    let (household, assignee) = (household.to_owned(), assignee.map(str::to_owned));
    let status = gridlight::domain::TaskStatus::parse(status).unwrap();
    app.state
        .db
        .write(move |c| {
            let (grid_id, community_id, tag): (String, String, gridlight::domain::Tag) = households::table
                .find(&household)
                .select((households::grid_id, households::community_id, households::tag))
                .first(c)?;
            let templates: Vec<(String, gridlight::domain::ServiceKind)> = service_templates::table
                .filter(service_templates::community_id.eq(&community_id))
                .order(service_templates::id.asc())
                .select((service_templates::id, service_templates::kind))
                .load(c)?;
            let busy: Vec<String> = tasks::table
                .filter(tasks::household_id.eq(&household))
                .filter(tasks::status.eq("open"))
                .select(tasks::template_id)
                .load(c)?;
            let (template_id, kind) =
                templates.into_iter().find(|(id, _)| !busy.contains(id)).expect("a free template");
            let at = gridlight::store::now();
            let row = TaskRow {
                id: gridlight::store::new_id(),
                household_id: household,
                template_id,
                community_id,
                grid_id,
                tag,
                kind,
                assignee_id: assignee,
                due_on,
                completed_at: done_at,
                cancel_reason: (status == gridlight::domain::TaskStatus::Cancelled).then(|| "测试".to_owned()),
                status,
                visit_id: None,
                version: 1,
                created_at: at,
                updated_at: at,
            };
            diesel::insert_into(tasks::table).values(&row).execute(c)?;
            Ok(())
        })
        .await
        .unwrap();
}

async fn clear_tasks(app: &TestApp) {
    app.state.db.write(|c| Ok(diesel::delete(tasks::table).execute(c)?)).await.unwrap();
}

/// Moves the due date of a household's open task of a kind.
async fn due(app: &TestApp, household: &str, kind: &str, on: NaiveDate) {
    let (household, kind) = (household.to_owned(), kind.to_owned());
    let n = app
        .state
        .db
        .write(move |c| {
            Ok(diesel::update(
                tasks::table
                    .filter(tasks::household_id.eq(household))
                    .filter(tasks::kind.eq(kind))
                    .filter(tasks::status.eq("open")),
            )
            .set(tasks::due_on.eq(on))
            .execute(c)?)
        })
        .await
        .unwrap();
    assert_eq!(n, 1);
}

async fn review_due(app: &TestApp, household: &str, on: NaiveDate) {
    let household = household.to_owned();
    app.state
        .db
        .write(move |c| {
            Ok(diesel::update(households::table.find(household))
                .set(households::tag_review_due_on.eq(on))
                .execute(c)?)
        })
        .await
        .unwrap();
}

fn grid<'a>(body: &'a Value, id: &str) -> &'a Value {
    body["grids"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["grid_id"] == id)
        .unwrap_or_else(|| panic!("no grid {id} in {body}"))
}

fn grid_ids(body: &Value) -> Vec<String> {
    body["grids"].as_array().unwrap().iter().map(|g| g["grid_id"].as_str().unwrap().to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------
// Overview

/// The dashboard's figures of a grid, a community or a scope, without its identity.
#[expect(clippy::too_many_arguments, reason = "one argument per figure, in the order of the response")]
fn figures(
    households: Value,
    open: Value,
    overdue: Value,
    last7: Value,
    last30: Value,
    coverage: [Value; 3],
    pending: i64,
    reviews: Value,
) -> Value {
    let [red, yellow, green] = coverage;
    json!({
        "households": households, "open_tasks": open, "overdue_tasks": overdue,
        "visits_last_7_days": last7, "visits_last_30_days": last30,
        "coverage": {"red": red, "yellow": yellow, "green": green},
        "pending_tag_changes": pending, "reviews_due": reviews,
    })
}

/// The figure fields of a row (its identity left out).
fn only_figures(row: &Value) -> Value {
    let keys = [
        "households",
        "open_tasks",
        "overdue_tasks",
        "visits_last_7_days",
        "visits_last_30_days",
        "coverage",
        "pending_tag_changes",
        "reviews_due",
    ];
    Value::Object(keys.iter().map(|k| (k.to_string(), row[*k].clone())).collect())
}

fn grid_a1() -> Value {
    figures(
        tags(2, 1, 1),
        tags(4, 1, 1),
        tags(1, 1, 0),
        kinds(1, 0, 0),
        kinds(2, 1, 1),
        [cov(2, 1), cov(0, 0), cov(1, 1)],
        1,
        tags(1, 0, 1),
    )
}

fn grid_a2() -> Value {
    figures(
        tags(2, 0, 1),
        tags(4, 0, 1),
        tags(1, 0, 0),
        kinds(1, 0, 0),
        kinds(3, 0, 0),
        [cov(2, 2), cov(0, 0), cov(1, 0)],
        1,
        tags(0, 0, 0),
    )
}

fn community_a() -> Value {
    figures(
        tags(4, 1, 2),
        tags(8, 1, 2),
        tags(2, 1, 0),
        kinds(2, 0, 0),
        kinds(5, 1, 1),
        [cov(4, 3), cov(0, 0), cov(2, 1)],
        2,
        tags(1, 0, 1),
    )
}

fn grid_b1() -> Value {
    figures(
        tags(0, 0, 1),
        tags(0, 0, 1),
        tags(0, 0, 0),
        kinds(1, 0, 0),
        kinds(1, 0, 0),
        [cov(0, 0), cov(0, 0), cov(1, 1)],
        0,
        tags(0, 0, 0),
    )
}

/// Community A of the world, arranged so that every figure of the dashboard is known:
///
/// | grid | household | tag | visits (local dates, T = today) | notes |
/// |---|---|---|---|---|
/// | a1 | h1 | red | home T−6 00:00, phone T−7 23:59:59, phone T+1 00:00 | call overdue, review due today |
/// | a1 | h2 | yellow | service T−29 00:00 | call overdue; yellow plan has no home visit |
/// | a1 | h3 | green | home T−30 23:59:59 | pending proposal, review due T−5 |
/// | a1 | h4 | red, removed | – | had a pending proposal, review due T−1 |
/// | a1 | h8 | red | home T−8 23:59:59 | not covered |
/// | a2 | h5 | red | home T 00:00, home T−8 12:00 | review due tomorrow |
/// | a2 | h6 | green | – | pending proposal; visit due today (not overdue) |
/// | a2 | h7 | red | home T−7 00:00 | visit overdue; covered (boundary) |
///
/// Community B: one green household visited today.
async fn dashboard_world(app: &TestApp) -> World {
    let w = app.world().await;
    let t = today();
    let (a1, a2) = (w.grid_a1.clone(), w.grid_a2.clone());
    let h1 = w.household_a1.clone();
    let h5 = w.household_a2.clone();
    let h2 = app.create_household(&w.sec_a, &a1, "赵二").await;
    let h3 = app.create_household(&w.sec_a, &a1, "孙三").await;
    let h4 = app.create_household(&w.sec_a, &a1, "周四").await;
    let h8 = app.create_household(&w.sec_a, &a1, "吴八").await;
    let h6 = app.create_household(&w.sec_a, &a2, "郑六").await;
    let h7 = app.create_household(&w.sec_a, &a2, "王七").await;
    let yellow = json!({"templates": [
        {"name": "平安问候", "kind": "phone_call", "interval_days": 7},
        {"name": "入户走访", "kind": "home_visit", "interval_days": 30, "active": false},
    ]});
    ok(&app.put(&format!("/api/v1/communities/{}/service-plans/yellow", w.community_a), &w.sec_a, yellow).await);
    for h in [&h1, &h4, &h8, &h5, &h7] {
        set_tag(app, &w.sec_a, h, "red", "elderly_living_alone").await;
    }
    set_tag(app, &w.sec_a, &h2, "yellow", "chronic_illness").await;
    set_tag(app, &w.w_a1, &h3, "yellow", "chronic_illness").await;
    set_tag(app, &w.w_a1, &h4, "yellow", "chronic_illness").await;
    set_tag(app, &w.w_a2, &h6, "yellow", "chronic_illness").await;
    remove(app, &w.sec_a, &h4).await;

    let (wa1, wa2) = (w.user_w_a1.clone(), w.user_w_a2.clone());
    let s = Duration::seconds(1);
    visit(app, &h1, &wa1, "home_visit", m(t - days(6))).await;
    visit(app, &h1, &wa1, "phone_call", m(t - days(6)) - s).await;
    visit(app, &h1, &wa1, "phone_call", m(t + days(1))).await;
    visit(app, &h2, &wa1, "service", m(t - days(29))).await;
    visit(app, &h3, &wa1, "home_visit", m(t - days(29)) - s).await;
    visit(app, &h8, &wa1, "home_visit", m(t - days(7)) - s).await;
    visit(app, &h5, &wa2, "home_visit", m(t)).await;
    visit(app, &h5, &wa2, "home_visit", m(t - days(8)) + Duration::hours(12)).await;
    visit(app, &h7, &wa2, "home_visit", m(t - days(7))).await;
    let wb1 = user_id(app, "w-b1").await;
    visit(app, &w.household_b1, &wb1, "home_visit", m(t) + Duration::hours(1)).await;

    due(app, &h1, "phone_call", t - days(1)).await;
    due(app, &h2, "phone_call", t - days(10)).await;
    due(app, &h6, "home_visit", t).await;
    due(app, &h7, "home_visit", t - days(3)).await;
    review_due(app, &h1, t).await;
    review_due(app, &h3, t - days(5)).await;
    review_due(app, &h4, t - days(1)).await;
    review_due(app, &h5, t + days(1)).await;
    w
}

async fn overview_counts_every_figure(app: TestApp) {
    let w = dashboard_world(&app).await;
    let body = ok(&app.get_as("/api/v1/stats/overview", &w.sec_a).await);
    assert_eq!(body["scope"], json!({"community_id": w.community_a, "grid_id": null}));
    assert_eq!(body["today"], today().to_string());
    assert_eq!(grid_ids(&body), vec![w.grid_a1.clone(), w.grid_a2.clone()]);
    let a1 = grid(&body, &w.grid_a1);
    assert_eq!(a1["code"], "37010300100101");
    assert_eq!(a1["community_id"], w.community_a.as_str());
    assert_eq!(only_figures(a1), grid_a1());
    assert_eq!(only_figures(grid(&body, &w.grid_a2)), grid_a2());
    // The community row and the totals add the grids up.
    let communities = body["communities"].as_array().unwrap();
    assert_eq!(communities.len(), 1);
    assert_eq!(communities[0]["community_id"], w.community_a.as_str());
    assert_eq!(communities[0]["name"], "建新社区");
    assert_eq!(communities[0]["timezone"], "Asia/Shanghai");
    assert_eq!(communities[0]["today"], today().to_string());
    assert_eq!(only_figures(&communities[0]), community_a());
    assert_eq!(body["totals"], community_a());
    assert_eq!(body["totals"]["coverage"]["red"]["rate"], 0.75);
    assert_eq!(body["totals"]["coverage"]["yellow"]["rate"], Value::Null);

    // One grid of the community.
    let body = ok(&app.get_as(&format!("/api/v1/stats/overview?grid_id={}", w.grid_a2), &w.sec_a).await);
    assert_eq!(body["scope"], json!({"community_id": w.community_a, "grid_id": w.grid_a2}));
    assert_eq!(grid_ids(&body), vec![w.grid_a2.clone()]);
    assert_eq!(body["totals"], grid_a2());

    // Administrators see every community, each in its own row.
    let body = ok(&app.get_as("/api/v1/stats/overview", &w.admin).await);
    assert_eq!(body["scope"], json!({"community_id": null, "grid_id": null}));
    assert_eq!(grid_ids(&body), vec![w.grid_b1.clone(), w.grid_a1.clone(), w.grid_a2.clone()]);
    assert_eq!(only_figures(grid(&body, &w.grid_b1)), grid_b1());
    let names: Vec<&str> =
        body["communities"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["建新社区", "舜华社区"]);
    assert_eq!(only_figures(&body["communities"][0]), community_a());
    assert_eq!(only_figures(&body["communities"][1]), grid_b1());
    let totals = figures(
        tags(4, 1, 3),
        tags(8, 1, 3),
        tags(2, 1, 0),
        kinds(3, 0, 0),
        kinds(6, 1, 1),
        [cov(4, 3), cov(0, 0), cov(3, 2)],
        2,
        tags(1, 0, 1),
    );
    assert_eq!(body["totals"], totals);
    let body = ok(&app.get_as(&format!("/api/v1/stats/overview?community_id={}", w.community_b), &w.admin).await);
    assert_eq!(body["totals"], grid_b1());
}

async fn overview_is_scoped(app: TestApp) {
    let w = dashboard_world(&app).await;
    let path = |q: String| format!("/api/v1/stats/overview{q}");
    // A grid worker sees the grids assigned to them.
    let body = ok(&app.get_as(&path(String::new()), &w.w_a1).await);
    assert_eq!(grid_ids(&body), vec![w.grid_a1.clone()]);
    assert_eq!(body["totals"], grid_a1());
    assert_eq!(only_figures(&body["communities"][0]), grid_a1());
    let body = ok(&app.get_as(&path(format!("?community_id={}", w.community_a)), &w.w_a1).await);
    assert_eq!(grid_ids(&body), vec![w.grid_a1.clone()]);
    assert_eq!(body["totals"], grid_a1());
    ok(&app.get_as(&path(format!("?grid_id={}", w.grid_a1)), &w.w_a1).await);
    app.get_as(&path(format!("?grid_id={}", w.grid_a2)), &w.w_a1).await.assert_problem(404);
    app.get_as(&path(format!("?community_id={}", w.community_b)), &w.w_a1).await.assert_problem(404);
    // Reassigned: the next request follows.
    app.assign(&w.sec_a, &w.grid_a2, &[(&w.user_w_a2, true), (&w.user_w_a1, false)]).await;
    let body = ok(&app.get_as(&path(String::new()), &w.w_a1).await);
    assert_eq!(grid_ids(&body), vec![w.grid_a1.clone(), w.grid_a2.clone()]);
    assert_eq!(body["totals"], community_a());
    // A secretary sees their community only.
    app.get_as(&path(format!("?community_id={}", w.community_a)), &w.sec_b).await.assert_problem(404);
    app.get_as(&path(format!("?grid_id={}", w.grid_a1)), &w.sec_b).await.assert_problem(404);
    let body = ok(&app.get_as(&path(String::new()), &w.sec_b).await);
    assert_eq!(grid_ids(&body), vec![w.grid_b1.clone()]);
    assert_eq!(body["totals"], grid_b1());
    // A grid of another community than the one named; unknown ids; no token.
    app.get_as(&path(format!("?community_id={}&grid_id={}", w.community_a, w.grid_b1)), &w.admin)
        .await
        .assert_problem(404);
    app.get_as(&path(format!("?community_id={}&grid_id={}", w.community_b, w.grid_a1)), &w.sec_a)
        .await
        .assert_problem(404);
    app.get_as(&path("?community_id=nope".into()), &w.admin).await.assert_problem(404);
    app.get_as(&path("?grid_id=nope".into()), &w.admin).await.assert_problem(404);
    let res = app.get(&path(String::new())).await;
    res.assert_problem(401);
    assert_eq!(res.header("www-authenticate"), Some("Bearer"));
}

// ---------------------------------------------------------------------------------------------
// Evaluation report

/// The month before the current one (in Asia/Shanghai): over, whenever the tests run.
fn last_month() -> (String, NaiveDate, NaiveDate) {
    let t = today();
    let this_month = NaiveDate::from_ymd_opt(t.year(), t.month(), 1).unwrap();
    let first = this_month - Months::new(1);
    (first.format("%Y-%m").to_string(), first, this_month - days(1))
}

struct ReportWorld {
    w: World,
    label: String,
    first: NaiveDate,
    last: NaiveDate,
    a3: String,
    a4: String,
    a5: String,
    sec_a_id: String,
}

/// Community A for last month (`F` = first day, `L` = last day, local dates):
///
/// - grid a1 (worker w-a1): tasks due F done F 10:00 (on time), due F+1 done F+1 23:59:59 (on
///   time), due F+1 done F+2 00:00 (late), due F+1 done L 01:00 (late), due L done L 23:59:59
///   (on time), due L−1 done L+1 00:00 (missed), due L open (missed), an unassigned one due
///   F+1 open (missed); not counted: due F cancelled, due F−1 done, due L+1 open.
///   Visits by w-a1: home F 00:00, home L−7 00:00, phone L 23:59:59 (in); home F−1 23:59:59,
///   phone L+1 00:00 (out). Red at the end of L: h1 (since F+1), covered by the L−7 visit; a
///   household registered today and tagged red does not count.
/// - grid a2 (worker w-a2): two tasks on time. Red at the end of L: h2 (yellow since today)
///   and a household removed today, both not covered (home L−8 23:59:59; home L+1 00:00). A
///   service by the secretary on F+5.
/// - grids a3 and a4: tasks on time, no red households; grid a5: nothing.
async fn report_world(app: &TestApp) -> ReportWorld {
    let w = app.world().await;
    let (label, first, last) = last_month();
    let a3 = app.create_grid(&w.sec_a, &w.community_a, "37010300100103").await;
    let a4 = app.create_grid(&w.sec_a, &w.community_a, "37010300100104").await;
    let a5 = app.create_grid(&w.sec_a, &w.community_a, "37010300100105").await;
    let (h1, h2) = (w.household_a1.clone(), w.household_a2.clone());
    let newcomer = app.create_household(&w.sec_a, &w.grid_a1, "新户").await;
    let gone = app.create_household(&w.sec_a, &w.grid_a2, "迁出户").await;
    let h3 = app.create_household(&w.sec_a, &a3, "三号").await;
    let h4 = app.create_household(&w.sec_a, &a4, "四号").await;
    for h in [&h1, &h2, &newcomer, &gone] {
        set_tag(app, &w.sec_a, h, "red", "elderly_living_alone").await;
    }
    set_tag(app, &w.sec_a, &h2, "yellow", "chronic_illness").await;
    remove(app, &w.sec_a, &gone).await;
    clear_tasks(app).await;
    // Back-date the registrations and the red tags.
    let before = m(first) - days(10);
    let backdate =
        [(h1.clone(), m(first + days(1))), (h2.clone(), m(first) - days(1)), (gone.clone(), m(first) - days(1))];
    app.state
        .db
        .write(move |c| {
            for (h, red_since) in backdate {
                diesel::update(households::table.find(&h)).set(households::created_at.eq(before)).execute(c)?;
                let n = diesel::update(
                    tag_changes::table.filter(tag_changes::household_id.eq(&h)).filter(tag_changes::to_tag.eq("red")),
                )
                .set(tag_changes::decided_at.eq(red_since))
                .execute(c)?;
                assert_eq!(n, 1);
            }
            Ok(())
        })
        .await
        .unwrap();

    let (wa1, wa2) = (w.user_w_a1.as_str(), w.user_w_a2.as_str());
    let f1 = first + days(1);
    let s = Duration::seconds(1);
    let h = Duration::hours;
    task(app, &h1, Some(wa1), first, "done", Some(m(first) + h(10))).await;
    task(app, &h1, Some(wa1), f1, "done", Some(m(f1 + days(1)) - s)).await;
    task(app, &h1, Some(wa1), f1, "done", Some(m(f1 + days(1)))).await;
    task(app, &h1, Some(wa1), f1, "done", Some(m(last) + h(1))).await;
    task(app, &h1, Some(wa1), last, "done", Some(m(last + days(1)) - s)).await;
    task(app, &h1, Some(wa1), last - days(1), "done", Some(m(last + days(1)))).await;
    task(app, &h1, Some(wa1), last, "open", None).await;
    task(app, &h1, Some(wa1), first, "cancelled", None).await;
    task(app, &h1, Some(wa1), first - days(1), "done", Some(m(first) - h(1))).await;
    task(app, &h1, Some(wa1), last + days(1), "open", None).await;
    task(app, &newcomer, None, f1, "open", None).await;
    task(app, &h2, Some(wa2), first, "done", Some(m(first) + h(1))).await;
    task(app, &h2, Some(wa2), last, "done", Some(m(last) + h(2))).await;
    task(app, &h3, None, first, "done", Some(m(first) + h(1))).await;
    task(app, &h3, None, f1, "done", Some(m(f1) + h(1))).await;
    task(app, &h4, None, last, "done", Some(m(last) + h(1))).await;

    let sec_a_id = user_id(app, "sec-a").await;
    visit(app, &h1, wa1, "home_visit", m(first)).await;
    visit(app, &h1, wa1, "home_visit", m(last - days(7))).await;
    visit(app, &h1, wa1, "phone_call", m(last + days(1)) - s).await;
    visit(app, &h1, wa1, "home_visit", m(first) - s).await;
    visit(app, &h1, wa1, "phone_call", m(last + days(1))).await;
    visit(app, &h2, wa2, "home_visit", m(last - days(7)) - s).await;
    visit(app, &gone, wa2, "home_visit", m(last + days(1))).await;
    visit(app, &h2, &sec_a_id, "service", m(first + days(5))).await;
    ReportWorld { w, label, first, last, a3, a4, a5, sec_a_id }
}

/// The report figures of a row, without its identity.
#[expect(clippy::too_many_arguments, reason = "one argument per figure, in the order of the response")]
fn evaluation(
    due: i64,
    on_time: i64,
    late: i64,
    missed: i64,
    overdue: i64,
    not_yet_due: i64,
    red: Value,
    visits: Value,
) -> Value {
    json!({
        "tasks_due": due, "completed_on_time": on_time, "completed_late": late, "missed": missed,
        "overdue": overdue, "not_yet_due": not_yet_due, "on_time_rate": rate(on_time, due - not_yet_due),
        "red_coverage": red, "visits": visits,
    })
}

fn only_evaluation(row: &Value) -> Value {
    let keys = [
        "tasks_due",
        "completed_on_time",
        "completed_late",
        "missed",
        "overdue",
        "not_yet_due",
        "on_time_rate",
        "red_coverage",
        "visits",
    ];
    Value::Object(keys.iter().map(|k| (k.to_string(), row[*k].clone())).collect())
}

fn community_a_report() -> Value {
    evaluation(13, 8, 2, 3, 0, 0, cov(3, 1), kinds(3, 1, 1))
}

async fn report_of_a_past_period(app: TestApp) {
    let r = report_world(&app).await;
    let w = &r.w;
    let body = ok(&app.get_as(&format!("/api/v1/reports/evaluation?period={}", r.label), &w.sec_a).await);
    assert_eq!(
        body["period"],
        json!({"label": r.label, "kind": "month", "first_day": r.first.to_string(), "last_day": r.last.to_string()})
    );
    assert_eq!(body["scope"], json!({"community_id": w.community_a, "grid_id": null}));
    // Ranked: on-time rate, then red coverage (null last); a3 and a4 tie.
    let ranked: Vec<(String, u64)> = body["grids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["grid_id"].as_str().unwrap().to_owned(), g["rank"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        ranked,
        vec![(w.grid_a2.clone(), 1), (r.a3.clone(), 2), (r.a4.clone(), 2), (w.grid_a1.clone(), 4), (r.a5.clone(), 5)]
    );
    assert_eq!(only_evaluation(grid(&body, &w.grid_a1)), evaluation(8, 3, 2, 3, 0, 0, cov(1, 1), kinds(2, 1, 0)));
    assert_eq!(only_evaluation(grid(&body, &w.grid_a2)), evaluation(2, 2, 0, 0, 0, 0, cov(2, 0), kinds(1, 0, 1)));
    assert_eq!(only_evaluation(grid(&body, &r.a3)), evaluation(2, 2, 0, 0, 0, 0, cov(0, 0), kinds(0, 0, 0)));
    assert_eq!(only_evaluation(grid(&body, &r.a4)), evaluation(1, 1, 0, 0, 0, 0, cov(0, 0), kinds(0, 0, 0)));
    assert_eq!(only_evaluation(grid(&body, &r.a5)), evaluation(0, 0, 0, 0, 0, 0, cov(0, 0), kinds(0, 0, 0)));
    assert_eq!(grid(&body, &w.grid_a1)["on_time_rate"], 0.375);
    assert_eq!(grid(&body, &r.a5)["on_time_rate"], Value::Null);
    // Workers: their tasks, their visits, their grids' red coverage.
    let workers = body["workers"].as_array().unwrap();
    let who: Vec<(&str, &str)> =
        workers.iter().map(|x| (x["username"].as_str().unwrap(), x["role"].as_str().unwrap())).collect();
    assert_eq!(who, vec![("sec-a", "secretary"), ("w-a1", "grid_worker"), ("w-a2", "grid_worker")]);
    assert_eq!(workers[0]["worker_id"], r.sec_a_id.as_str());
    assert_eq!(workers[0]["grid_ids"], json!([]));
    assert_eq!(only_evaluation(&workers[0]), evaluation(0, 0, 0, 0, 0, 0, cov(0, 0), kinds(0, 0, 1)));
    assert_eq!(workers[1]["worker_id"], w.user_w_a1.as_str());
    assert_eq!(workers[1]["display_name"], "User w-a1");
    assert_eq!(workers[1]["community_id"], w.community_a.as_str());
    assert_eq!(workers[1]["grid_ids"], json!([w.grid_a1]));
    assert_eq!(only_evaluation(&workers[1]), evaluation(7, 3, 2, 2, 0, 0, cov(1, 1), kinds(2, 1, 0)));
    assert_eq!(workers[2]["grid_ids"], json!([w.grid_a2]));
    assert_eq!(only_evaluation(&workers[2]), evaluation(2, 2, 0, 0, 0, 0, cov(2, 0), kinds(1, 0, 0)));
    // The community and the totals.
    let community = &body["communities"][0];
    assert_eq!(body["communities"].as_array().unwrap().len(), 1);
    assert_eq!(community["as_of"], r.last.to_string());
    assert_eq!(community["period_over"], true);
    assert_eq!(only_evaluation(community), community_a_report());
    assert_eq!(body["totals"], community_a_report());
    assert_eq!(body["totals"]["on_time_rate"], json!(8.0 / 13.0));

    // The quarter and the year hold the month: the same tasks, visits and red coverage.
    let quarter = format!("{}-Q{}", r.first.year(), (r.first.month() - 1) / 3 + 1);
    let body = ok(&app.get_as(&format!("/api/v1/reports/evaluation?period={quarter}"), &w.sec_a).await);
    assert_eq!(body["period"]["kind"], "quarter");
    let last_of_quarter: NaiveDate = body["period"]["last_day"].as_str().unwrap().parse().unwrap();
    if last_of_quarter == r.last {
        assert_eq!(body["totals"], community_a_report());
    } else {
        // The quarter is still running: what was done after L is late, not missed, and the open
        // tasks (due F+1, L and L+1) are overdue or not yet due.
        let totals = &body["totals"];
        assert_eq!(totals["tasks_due"], 14);
        assert_eq!((totals["completed_on_time"].as_i64(), totals["completed_late"].as_i64()), (Some(8), Some(3)));
        assert_eq!(totals["missed"], 0);
        assert_eq!(totals["overdue"].as_i64().unwrap() + totals["not_yet_due"].as_i64().unwrap(), 3);
    }
}

async fn report_as_csv(app: TestApp) {
    let r = report_world(&app).await;
    let w = &r.w;
    let path = format!("/api/v1/reports/evaluation?period={}", r.label);
    let csv = |accept: &'static str| {
        TestRequest::get()
            .uri(&path)
            .insert_header(("authorization", format!("Bearer {}", w.sec_a)))
            .insert_header(("accept", accept))
    };
    let res = app.call(csv("text/csv")).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(
        res.header("content-disposition"),
        Some(format!("attachment; filename=\"evaluation-{}.csv\"", r.label).as_str())
    );
    let text = String::from_utf8(res.body.to_vec()).unwrap();
    // A UTF-8 byte order mark first, or Excel shows the Chinese names as mojibake.
    assert!(res.body.starts_with(&[0xEF, 0xBB, 0xBF]), "{text}");
    let table = text.strip_prefix('\u{feff}').unwrap();
    assert!(!table.starts_with('\u{feff}'));
    assert!(table.ends_with("\r\n"));
    let lines: Vec<&str> = table.trim_end_matches("\r\n").split("\r\n").collect();
    assert_eq!(
        lines[0],
        "level,rank,period,street_id,street_name,community_id,community_name,grid_id,grid_code,grid_name,worker_id,worker_username,worker_name,\
         tasks_due,completed_on_time,completed_late,missed,overdue,not_yet_due,on_time_rate,red_planned,red_covered,red_coverage,\
         visits_home_visit,visits_phone_call,visits_service,visits_total"
    );
    // 5 grids, 3 workers, 1 community, the total.
    assert_eq!(lines.len(), 1 + 5 + 3 + 1 + 1, "{text}");
    let (p, a) = (&r.label, &w.community_a);
    assert_eq!(
        lines[1],
        format!(
            "grid,1,{p},,,{a},建新社区,{},37010300100102,网格37010300100102,,,,2,2,0,0,0,0,1.0000,2,0,0.0000,1,0,1,2",
            w.grid_a2
        )
    );
    assert_eq!(
        lines[4],
        format!(
            "grid,4,{p},,,{a},建新社区,{},37010300100101,网格37010300100101,,,,8,3,2,3,0,0,0.3750,1,1,1.0000,2,1,0,3",
            w.grid_a1
        )
    );
    assert_eq!(
        lines[5],
        format!("grid,5,{p},,,{a},建新社区,{},37010300100105,网格37010300100105,,,,0,0,0,0,0,0,,0,0,,0,0,0,0", r.a5)
    );
    assert_eq!(
        lines[7],
        format!("worker,,{p},,,{a},建新社区,,,,{},w-a1,User w-a1,7,3,2,2,0,0,0.4286,1,1,1.0000,2,1,0,3", w.user_w_a1)
    );
    // A community ranks within its street (its district's default street here, named only in a
    // roll-up).
    let (head, tail) = lines[9].split_once(",,").unwrap_or_default();
    assert!(head.starts_with(&format!("community,1,{p},")), "{}", lines[9]);
    assert_eq!(tail, format!("{a},建新社区,,,,,,,13,8,2,3,0,0,0.6154,3,1,0.3333,3,1,1,5"));
    assert_eq!(lines[10], format!("total,,{p},,,,,,,,,,,13,8,2,3,0,0,0.6154,3,1,0.3333,3,1,1,5"));
    // Every row has as many fields as the header.
    assert!(lines.iter().all(|l| l.split(',').count() == 27), "{text}");
    // `format=csv` for download links; JSON when JSON is preferred.
    let res = app.get_as(&format!("{path}&format=csv"), &w.sec_a).await;
    assert_eq!(res.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(String::from_utf8(res.body.to_vec()).unwrap(), text);
    for accept in ["application/json", "text/csv;q=0.5, application/json", "*/*", "text/html, application/json;q=0.9"] {
        let res = app.call(csv(accept)).await;
        assert_eq!(res.header("content-type"), Some("application/json"), "{accept}");
        assert_eq!(res.json()["totals"], community_a_report(), "{accept}");
    }
    let res = app.call(csv("application/json;q=0.5, text/*")).await;
    assert_eq!(res.header("content-type"), Some("text/csv; charset=utf-8"));
    let res = app.get_as(&format!("{path}&format=json"), &w.sec_a).await;
    assert_eq!(res.json()["totals"], community_a_report());
    // Names that a spreadsheet would run as formulas are defused, and commas quoted.
    let (a5, worker) = (r.a5.clone(), w.user_w_a1.clone());
    app.state
        .db
        .write(move |c| {
            diesel::update(grids::table.find(a5)).set(grids::name.eq("=1+1,\"x\"")).execute(c)?;
            Ok(diesel::update(users::table.find(worker)).set(users::display_name.eq("@SUM(A1)")).execute(c)?)
        })
        .await
        .unwrap();
    let res = app.call(csv("text/csv")).await;
    let text = String::from_utf8(res.body.to_vec()).unwrap();
    assert!(text.contains(",37010300100105,\"'=1+1,\"\"x\"\"\",,,,0,"), "{text}");
    assert!(text.contains(",w-a1,'@SUM(A1),7,"), "{text}");
    let mut cells = text.trim_start_matches('\u{feff}').split("\r\n").flat_map(|l| l.split(','));
    assert!(cells.all(|c| !c.starts_with(['=', '+', '-', '@'])), "{text}");
}

async fn report_of_the_running_period(app: TestApp) {
    let w = app.world().await;
    set_tag(&app, &w.sec_a, &w.household_a1, "red", "elderly_living_alone").await;
    clear_tasks(&app).await;
    let t = today();
    let first = NaiveDate::from_ymd_opt(t.year(), t.month(), 1).unwrap();
    let last = first + Months::new(1) - days(1);
    let now = gridlight::store::now();
    let (h, wa1) = (w.household_a1.as_str(), Some(w.user_w_a1.as_str()));
    task(&app, h, wa1, t, "done", Some(now)).await;
    task(&app, h, wa1, t, "open", None).await;
    task(&app, h, wa1, last, "open", None).await;
    task(&app, h, wa1, (t - days(1)).max(first), "open", None).await;
    task(&app, h, wa1, first, "done", Some(now)).await;
    visit(&app, h, &w.user_w_a1, "home_visit", now).await;
    let started_today = t == first;
    let on_time = 1 + i64::from(started_today);
    let late = i64::from(!started_today);
    let overdue = i64::from(!started_today);
    let not_yet_due = 2 + i64::from(started_today);
    let label = first.format("%Y-%m").to_string();
    let body = ok(&app.get_as(&format!("/api/v1/reports/evaluation?period={label}"), &w.sec_a).await);
    let community = &body["communities"][0];
    assert_eq!(community["period_over"], false);
    assert_eq!(community["as_of"], t.to_string());
    let a1 = evaluation(5, on_time, late, 0, overdue, not_yet_due, cov(1, 1), kinds(1, 0, 0));
    assert_eq!(only_evaluation(grid(&body, &w.grid_a1)), a1);
    assert_eq!(only_evaluation(grid(&body, &w.grid_a2)), evaluation(0, 0, 0, 0, 0, 0, cov(0, 0), kinds(0, 0, 0)));
    assert_eq!(body["totals"], a1);
    // A period that has not begun: what is scheduled in it, nothing decided.
    let next = (first + Months::new(13)).format("%Y").to_string();
    let body = ok(&app.get_as(&format!("/api/v1/reports/evaluation?period={next}"), &w.sec_a).await);
    assert_eq!(body["totals"]["tasks_due"], 0);
    assert_eq!(body["totals"]["on_time_rate"], Value::Null);
    assert_eq!(body["communities"][0]["as_of"], t.to_string());
}

/// A community in New York: the on-time cut-off follows the offset of each day (EST before
/// 2026-03-08, EDT after), and the month begins and ends at local midnight.
async fn report_follows_daylight_saving_time(app: TestApp) {
    let w = app.world().await;
    let res = app
        .post(
            "/api/v1/communities",
            Some(&w.admin),
            json!({"name": "纽约社区", "district": "市中区", "street": "七里山街道", "division_code": "370104", "timezone": "America/New_York"}),
        )
        .await;
    let ny = ok(&res)["id"].as_str().unwrap().to_owned();
    let grid = app.create_grid(&w.admin, &ny, "37010400100101").await;
    let h = app.create_household(&w.admin, &grid, "Doe").await;
    clear_tasks(&app).await;
    let utc = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
    let d = |s: &str| s.parse::<NaiveDate>().unwrap();
    task(&app, &h, None, d("2026-03-07"), "done", Some(utc("2026-03-08 04:59:59"))).await; // 23:59:59 EST: on time
    task(&app, &h, None, d("2026-03-07"), "done", Some(utc("2026-03-08 05:00:00"))).await; // 00:00 EST next day: late
    task(&app, &h, None, d("2026-03-20"), "done", Some(utc("2026-03-21 03:59:59"))).await; // 23:59:59 EDT: on time
    task(&app, &h, None, d("2026-03-20"), "done", Some(utc("2026-03-21 04:30:00"))).await; // 00:30 EDT next day: late
    task(&app, &h, None, d("2026-03-31"), "done", Some(utc("2026-04-01 03:59:59"))).await; // on time, in the month
    task(&app, &h, None, d("2026-03-31"), "done", Some(utc("2026-04-01 04:00:00"))).await; // after the month: missed
    task(&app, &h, None, d("2026-02-28"), "done", Some(utc("2026-03-01 04:00:00"))).await; // due in February
    let worker = user_id(&app, "admin").await;
    // Two of these phone calls fall in March in New York.
    for at in ["2026-03-01 04:59:59", "2026-03-01 05:00:00", "2026-04-01 03:59:59", "2026-04-01 04:00:00"] {
        visit(&app, &h, &worker, "phone_call", utc(at)).await;
    }
    let body = ok(&app.get_as(&format!("/api/v1/reports/evaluation?period=2026-03&community_id={ny}"), &w.admin).await);
    assert_eq!(body["communities"][0]["timezone"], "America/New_York");
    assert_eq!(body["communities"][0]["period_over"], true);
    assert_eq!(body["totals"], evaluation(6, 3, 2, 1, 0, 0, cov(0, 0), kinds(0, 2, 0)));
    // The same instants in Shanghai fall on other dates.
    let body = ok(&app.get_as("/api/v1/reports/evaluation?period=2026-03", &w.admin).await);
    assert_eq!(body["communities"].as_array().unwrap().len(), 3);
    assert_eq!(body["totals"]["tasks_due"], 6);
}

async fn report_is_scoped_and_validated(app: TestApp) {
    let r = report_world(&app).await;
    let w = &r.w;
    let path = |q: &str| format!("/api/v1/reports/evaluation?period={}{q}", r.label);
    // A grid worker: their grid, and the workers in it.
    let body = ok(&app.get_as(&path(""), &w.w_a1).await);
    assert_eq!(grid_ids(&body), vec![w.grid_a1.clone()]);
    assert_eq!(body["grids"][0]["rank"], 1);
    let who: Vec<&str> = body["workers"].as_array().unwrap().iter().map(|x| x["username"].as_str().unwrap()).collect();
    assert_eq!(who, vec!["w-a1"]);
    assert_eq!(body["totals"], evaluation(8, 3, 2, 3, 0, 0, cov(1, 1), kinds(2, 1, 0)));
    app.get_as(&path(&format!("&grid_id={}", w.grid_a2)), &w.w_a1).await.assert_problem(404);
    app.get_as(&path(&format!("&community_id={}", w.community_b)), &w.w_a1).await.assert_problem(404);
    // A secretary of another community.
    app.get_as(&path(&format!("&community_id={}", w.community_a)), &w.sec_b).await.assert_problem(404);
    app.get_as(&path(&format!("&grid_id={}", w.grid_a1)), &w.sec_b).await.assert_problem(404);
    let body = ok(&app.get_as(&path(""), &w.sec_b).await);
    assert_eq!(grid_ids(&body), vec![w.grid_b1.clone()]);
    assert_eq!(body["totals"], evaluation(0, 0, 0, 0, 0, 0, cov(0, 0), kinds(0, 0, 0)));
    // One grid; the administrator's whole district.
    let body = ok(&app.get_as(&path(&format!("&grid_id={}", w.grid_a2)), &w.sec_a).await);
    assert_eq!(body["scope"], json!({"community_id": w.community_a, "grid_id": w.grid_a2}));
    assert_eq!(body["totals"], evaluation(2, 2, 0, 0, 0, 0, cov(2, 0), kinds(1, 0, 1)));
    let body = ok(&app.get_as(&path(""), &w.admin).await);
    assert_eq!(body["communities"].as_array().unwrap().len(), 2);
    assert_eq!(body["grids"].as_array().unwrap().len(), 6);
    assert_eq!(body["totals"], community_a_report());
    // Periods.
    let problem = |res: TestResponse| res.assert_problem(422)["errors"][0].clone();
    let e = problem(app.get_as("/api/v1/reports/evaluation", &w.sec_a).await);
    assert_eq!((e["field"].as_str(), e["code"].as_str()), (Some("period"), Some("required")));
    for bad in ["2026-13", "2026-Q5", "2026-H3", "26", "2026-11-01", "November", "2026-W47"] {
        let e = problem(app.get_as(&format!("/api/v1/reports/evaluation?period={bad}"), &w.sec_a).await);
        assert_eq!((e["field"].as_str(), e["code"].as_str()), (Some("period"), Some("invalid_format")), "{bad}");
    }
    for good in ["2026-11", "2026-Q4", "2026-H2", "2026", "2026-q4"] {
        let body = ok(&app.get_as(&format!("/api/v1/reports/evaluation?period={good}"), &w.sec_a).await);
        assert_eq!(body["period"]["label"], good.to_uppercase());
    }
    app.get_as(&path("&format=xml"), &w.sec_a).await.assert_problem(400);
    app.get_as(&path("&community_id=nope"), &w.admin).await.assert_problem(404);
    app.get(&path("")).await.assert_problem(401);
}

/// Every dashboard and report query, those of a district's roll-up too, reaches its rows
/// through an index on SQLite. A full scan
/// slipped in once unnoticed: `active = ?` (a bound `true`) kept SQLite from using the partial
/// index `… WHERE active` of the service templates, so the coverage queries scanned the
/// templates once per household — the overview took 185 ms instead of 3 ms on 300k households.
/// The statements are captured as the store builds them and explained as they are.
#[actix_web::test]
async fn sqlite_dashboard_queries_use_indexes() {
    use gridlight::store::{stats, streets};
    use std::sync::{Arc, Mutex};

    let app = TestApp::new(gridlight::db::Backend::Sqlite).await;
    let w = dashboard_world(&app).await;
    let db = app.state.db.clone();
    let community = w.community_a.clone();
    let steps = actix_web::web::block(move || {
        db.read_blocking(|conn| {
            let seen = Arc::new(Mutex::new(Vec::<String>::new()));
            let sink = seen.clone();
            conn.set_instrumentation(move |event: diesel::connection::InstrumentationEvent<'_>| {
                if let diesel::connection::InstrumentationEvent::StartQuery { query, .. } = event {
                    sink.lock().unwrap().push(query.to_string());
                }
            });
            let community_id = community.clone();
            let s = stats::Slice { communities: vec![community], grids: None, timezone: SHANGHAI };
            let (t, at) = (today(), midnight(today(), SHANGHAI));
            stats::households_by_tag(conn, &s, t)?;
            stats::open_tasks(conn, &s, t)?;
            stats::recent_visits(conn, &s, at - Duration::days(29), at - Duration::days(6), at)?;
            stats::visits_between(conn, &s, at - Duration::days(29), at)?;
            stats::coverage_today(conn, &s, t)?;
            stats::red_coverage_at(conn, &s, t)?;
            stats::pending_tag_changes(conn, &s)?;
            stats::task_outcomes(conn, &s, t - Duration::days(30), t, t)?;
            // A district's roll-up: its streets, their communities, their grids.
            let street = streets::of_community(conn, &community_id)?.expect("a street");
            let filter = streets::StreetFilter { district_id: Some(street.district_id.clone()), only: None };
            let ids: Vec<String> = streets::list_streets(conn, &filter, None, 500)?.into_iter().map(|s| s.id).collect();
            let communities = stats::communities_of_streets(conn, &ids)?;
            streets::communities_of_district(conn, &street.district_id)?;
            streets::communities_of_street(conn, &street.id)?;
            stats::grids_of(conn, &communities.into_iter().map(|c| c.id).collect::<Vec<_>>(), None)?;
            conn.set_instrumentation(|_: diesel::connection::InstrumentationEvent<'_>| {});
            let statements = seen.lock().unwrap().clone();
            assert!(statements.len() >= 10, "{statements:#?}");
            let mut steps = Vec::new();
            for statement in statements {
                let sql = statement.split(" -- binds:").next().unwrap_or_default();
                let plan: Vec<PlanStep> = diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}")).load(conn)?;
                steps.extend(plan.into_iter().map(|p| (p.detail, sql.to_owned())));
            }
            Ok(steps)
        })
    })
    .await
    .unwrap()
    .unwrap();
    let scans: Vec<&(String, String)> = steps.iter().filter(|(detail, _)| detail.starts_with("SCAN")).collect();
    assert!(scans.is_empty(), "full scans in dashboard queries: {scans:#?}");
    assert!(steps.iter().any(|(d, _)| d.contains("service_templates_one_active_kind")), "{steps:#?}");
}
