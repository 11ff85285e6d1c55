//! Streets and districts above the community (issue 20): their CRUD, moving a community, the
//! officers' scope (every read and list; 404 outside, 403 for a secretary's or worker's work),
//! the roll-up dashboards and reports, and migrating a database that had no streets.

use diesel_migrations::MigrationHarness;
use serde_json::{Value, json};

use gridlight::db::{DbConn, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};

use crate::on_both_backends;
use crate::scope::{Row, check_matrix};
use crate::support::TestApp;
use crate::support::fixtures::PASSWORD;
use crate::support::world::{World, ok};

on_both_backends!(
    districts_and_streets_are_managed_by_administrators,
    officers_read_their_unit_and_change_nothing,
    officer_lists_hold_to_their_unit,
    roll_ups_add_up_and_rank,
    a_database_without_streets_migrates,
    grid_codes_carry_their_street,
);

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

fn ids(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v["items"].as_array().unwrap().iter().map(id_of).collect();
    out.sort();
    out
}

/// The units around the world's communities: the district of 370103 (community A's) with street
/// S1 (community A moved there), S2 (community C) and the default street; community B stays in
/// the default street of 370102. An officer for S1, for S2, for each district.
pub(crate) struct Units {
    pub(crate) district_1: String,
    pub(crate) district_2: String,
    pub(crate) street_1: String,
    pub(crate) street_2: String,
    pub(crate) community_c: String,
    pub(crate) household_c: String,
    pub(crate) so_1: String,
    pub(crate) so_2: String,
    pub(crate) do_1: String,
    pub(crate) do_2: String,
}

async fn officer(app: &TestApp, admin: &str, username: &str, unit: Value) -> String {
    let mut body = json!({"username": username, "password": PASSWORD, "display_name": username});
    body.as_object_mut().unwrap().extend(unit.as_object().unwrap().clone());
    ok(&app.post("/api/v1/users", Some(admin), body).await);
    app.token(username).await
}

/// The district a community's street belongs to.
async fn district_of(app: &TestApp, admin: &str, community: &str) -> String {
    let field = |v: Value, name: &str| v[name].as_str().unwrap().to_owned();
    let street = field(ok(&app.get_as(&format!("/api/v1/communities/{community}"), admin).await), "street_id");
    field(ok(&app.get_as(&format!("/api/v1/streets/{street}"), admin).await), "district_id")
}

pub(crate) async fn units(app: &TestApp, w: &World) -> Units {
    let district_1 = district_of(app, &w.admin, &w.community_a).await;
    let district_2 = district_of(app, &w.admin, &w.community_b).await;
    let street = |name: &str, code: &str| {
        app.post("/api/v1/streets", Some(&w.admin), json!({"district_id": district_1, "name": name, "code": code}))
    };
    let street_1 = id_of(&ok(&street("七里山街道", "370103006").await));
    let street_2 = id_of(&ok(&street("舜玉路街道", "370103008").await));
    let moved = app
        .patch(&format!("/api/v1/communities/{}", w.community_a), &w.admin, json!({"street_id": street_1}), None)
        .await;
    assert_eq!(ok(&moved)["street"], "七里山街道");
    let body = json!({"name": "睦和苑社区", "district": "x", "street": "x", "division_code": "370103",
                      "street_id": street_2});
    let c = ok(&app.post("/api/v1/communities", Some(&w.admin), body).await);
    assert_eq!((c["street"].as_str(), c["district"].as_str()), (Some("舜玉路街道"), Some("市中区")));
    let community_c = id_of(&c);
    let grid_c = app.create_grid(&w.admin, &community_c, "37010300801501").await;
    let household_c = app.create_household(&w.admin, &grid_c, "赵德胜").await;
    Units {
        so_1: officer(app, &w.admin, "so-1", json!({"role": "street_officer", "street_id": street_1})).await,
        so_2: officer(app, &w.admin, "so-2", json!({"role": "street_officer", "street_id": street_2})).await,
        do_1: officer(app, &w.admin, "do-1", json!({"role": "district_officer", "district_id": district_1})).await,
        do_2: officer(app, &w.admin, "do-2", json!({"role": "district_officer", "district_id": district_2})).await,
        district_1,
        district_2,
        street_1,
        street_2,
        community_c,
        household_c,
    }
}

async fn districts_and_streets_are_managed_by_administrators(app: TestApp) {
    let w = app.world().await;
    let u = units(&app, &w).await;
    // Moving a community is audited with where from and where to.
    assert!(app.audit_actions().await.iter().any(|a| a == "community.moved"));
    // Validation: problem+json naming the field, nothing created.
    let bad = [
        json!({"district_id": u.district_1, "name": "x", "code": "37010300"}),
        json!({"district_id": u.district_1, "name": "x", "code": "370102001"}),
        json!({"district_id": "nope", "name": "x", "code": "370103001"}),
        json!({"district_id": u.district_1, "name": "a\u{0}b", "code": "370103001"}),
        json!({"district_id": u.district_1, "name": "  ", "code": "370103001"}),
        json!({"district_id": u.district_1, "name": "x", "code": "370103001", "extra": 1}),
    ];
    for body in bad {
        let res = app.post("/api/v1/streets", Some(&w.admin), body.clone()).await;
        assert!([400, 422].contains(&res.status.as_u16()), "{body}: {}", res.status);
        res.assert_problem(res.status.as_u16());
    }
    let taken = app.post(
        "/api/v1/streets",
        Some(&w.admin),
        json!({"district_id": u.district_1, "name": "新街道", "code": "370103006"}),
    );
    assert_eq!(taken.await.assert_problem(409)["code"], "already_exists");
    let dup_name = json!({"district_id": u.district_1, "name": "七里山街道", "code": "370103099"});
    app.post("/api/v1/streets", Some(&w.admin), dup_name).await.assert_problem(409);
    let bad_district = json!({"name": "x", "division_code": "999999"});
    app.post("/api/v1/districts", Some(&w.admin), bad_district).await.assert_problem(422);
    let dup = json!({"name": "市中区", "division_code": "370103"});
    app.post("/api/v1/districts", Some(&w.admin), dup).await.assert_problem(409);
    // A community moves only within its district.
    let other =
        app.post("/api/v1/districts", Some(&w.admin), json!({"name": "历城区", "division_code": "370112"})).await;
    let other = id_of(&ok(&other));
    let far = app.post(
        "/api/v1/streets",
        Some(&w.admin),
        json!({"district_id": other, "name": "洪家楼街道", "code": "370112001"}),
    );
    let far = id_of(&ok(&far.await));
    let res =
        app.patch(&format!("/api/v1/communities/{}", w.community_a), &w.admin, json!({"street_id": far}), None).await;
    assert_eq!(res.assert_problem(422)["errors"][0]["field"], "street_id");
    let res =
        app.patch(&format!("/api/v1/communities/{}", w.community_a), &w.admin, json!({"street_id": "x"}), None).await;
    res.assert_problem(422);
    assert_eq!(
        ok(&app.get_as(&format!("/api/v1/communities/{}", w.community_a), &w.admin).await)["street_id"],
        u.street_1
    );
    // Rename with If-Match; delete only what is empty.
    let res = app.patch(&format!("/api/v1/streets/{far}"), &w.admin, json!({"name": "洪楼街道"}), Some("\"1\"")).await;
    assert_eq!(ok(&res)["version"], 2);
    app.patch(&format!("/api/v1/streets/{far}"), &w.admin, json!({"name": "x"}), Some("\"1\""))
        .await
        .assert_problem(412);
    assert_eq!(
        app.delete_as(&format!("/api/v1/districts/{other}"), &w.admin).await.assert_problem(409)["code"],
        "in_use"
    );
    assert_eq!(
        app.delete_as(&format!("/api/v1/streets/{}", u.street_1), &w.admin).await.assert_problem(409)["code"],
        "in_use"
    );
    assert_eq!(app.delete_as(&format!("/api/v1/streets/{far}"), &w.admin).await.status, 204);
    assert_eq!(app.delete_as(&format!("/api/v1/districts/{other}"), &w.admin).await.status, 204);
    app.get_as(&format!("/api/v1/districts/{other}"), &w.admin).await.assert_problem(404);
    // Pagination by code.
    let page = ok(&app.get_as(&format!("/api/v1/streets?district_id={}&limit=1", u.district_1), &w.admin).await);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = ok(&app
        .get_as(&format!("/api/v1/streets?district_id={}&limit=5&cursor={cursor}", u.district_1), &w.admin)
        .await);
    assert_eq!(next["items"].as_array().unwrap().len(), 2);
    app.get_as("/api/v1/streets?cursor=%00", &w.admin).await.assert_problem(422);
    // Officers need their unit, and only their unit.
    for body in [
        json!({"username": "x-1", "password": PASSWORD, "display_name": "x", "role": "street_officer"}),
        json!({"username": "x-2", "password": PASSWORD, "display_name": "x", "role": "street_officer", "district_id": u.district_1}),
        json!({"username": "x-3", "password": PASSWORD, "display_name": "x", "role": "district_officer", "district_id": "nope"}),
        json!({"username": "x-4", "password": PASSWORD, "display_name": "x", "role": "street_officer", "street_id": u.street_1, "community_id": w.community_a}),
    ] {
        app.post("/api/v1/users", Some(&w.admin), body).await.assert_problem(422);
    }
    // Control characters in ids of bodies: 422 naming the field, on both backends.
    let path_a = format!("/api/v1/communities/{}", w.community_a);
    let nul = app.patch(&path_a, &w.admin, json!({"street_id": "x\u{0}"}), None).await;
    assert_eq!(nul.assert_problem(422)["errors"][0]["field"], "street_id");
    let body = json!({"username": "x-6", "password": PASSWORD, "display_name": "x", "role": "district_officer", "district_id": "d\u{0}"});
    assert_eq!(
        app.post("/api/v1/users", Some(&w.admin), body).await.assert_problem(422)["errors"][0]["field"],
        "district_id"
    );
    let body = json!({"district_id": "\u{1b}[2J", "name": "x", "code": "370103001"});
    assert_eq!(
        app.post("/api/v1/streets", Some(&w.admin), body).await.assert_problem(422)["errors"][0]["field"],
        "district_id"
    );
    // Secretaries create no officers; officers create nothing.
    let body = json!({"username": "x-5", "password": PASSWORD, "display_name": "x", "role": "street_officer", "street_id": u.street_1});
    app.post("/api/v1/users", Some(&w.sec_a), body.clone()).await.assert_problem(403);
    app.post("/api/v1/users", Some(&u.so_1), body).await.assert_problem(403);
    let body = json!({"district_id": u.district_1, "name": "新街道", "code": "370103010"});
    for token in [&w.sec_a, &u.so_1, &u.do_1] {
        app.post("/api/v1/streets", Some(token), body.clone()).await.assert_problem(403);
        app.post("/api/v1/districts", Some(token), json!({"name": "x", "division_code": "370112"}))
            .await
            .assert_problem(403);
    }
}

async fn officers_read_their_unit_and_change_nothing(app: TestApp) {
    let w = app.world().await;
    let u = units(&app, &w).await;
    let (a, a1, h, m) = (&w.community_a, &w.grid_a1, &w.household_a1, &w.member_a1);
    let proposal = app
        .post(
            &format!("/api/v1/households/{h}/tag-changes"),
            Some(&w.w_a1),
            json!({"to_tag": "yellow", "reasons": ["chronic_illness"]}),
        )
        .await;
    let tc = id_of(&ok(&proposal));
    let at = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let visit = app
        .post("/api/v1/visits", Some(&w.w_a1), json!({"household_id": h, "kind": "phone_call", "visited_at": at}))
        .await;
    let v = id_of(&ok(&visit));
    let tasks = ok(&app.get_as(&format!("/api/v1/tasks?household_id={h}&status=open"), &w.sec_a).await);
    let t = id_of(&tasks["items"][0]);
    let member = json!({"name": "张小明", "gender": "male", "relation": "grandchild", "birth_date": "2015-05-05"});
    let (s1, d1) = (&u.street_1, &u.district_1);
    let callers = [("so_1", &u.so_1), ("so_2", &u.so_2), ("do_1", &u.do_1), ("do_2", &u.do_2)];
    #[rustfmt::skip]
    let matrix: Vec<Row<4>> = vec![
        //                                                                              so_1 so_2 do_1 do_2
        ("GET", format!("/api/v1/communities/{a}"), json!(null),                         [200, 404, 200, 404]),
        ("PATCH", format!("/api/v1/communities/{a}"), json!({"street_id": u.street_2}), [403, 404, 403, 404]),
        ("GET", format!("/api/v1/communities/{a}/grids"), json!(null),                   [200, 404, 200, 404]),
        ("POST", format!("/api/v1/communities/{a}/grids"), json!({"code": "37010300601209", "name": "x"}), [403, 404, 403, 404]),
        ("GET", format!("/api/v1/communities/{a}/service-plans"), json!(null),           [200, 404, 200, 404]),
        ("GET", format!("/api/v1/grids/{a1}"), json!(null),                              [200, 404, 200, 404]),
        ("PATCH", format!("/api/v1/grids/{a1}"), json!({"description": "东片"}),          [403, 404, 403, 404]),
        ("PUT", format!("/api/v1/grids/{a1}/workers"), json!({"workers": []}),            [403, 404, 403, 404]),
        ("GET", format!("/api/v1/households/{h}"), json!(null),                          [200, 404, 200, 404]),
        ("PATCH", format!("/api/v1/households/{h}"), json!({"notes": "x"}),               [403, 404, 403, 404]),
        ("DELETE", format!("/api/v1/households/{h}?reason=moved_out"), json!(null),      [403, 404, 403, 404]),
        ("POST", "/api/v1/households".to_owned(),
            json!({"grid_id": a1, "address": {"building": "1", "unit": "1", "room": "1"}, "head_name": "x"}), [403, 422, 403, 422]),
        ("GET", format!("/api/v1/households/{h}/members"), json!(null),                  [200, 404, 200, 404]),
        ("POST", format!("/api/v1/households/{h}/members"), member,                      [403, 404, 403, 404]),
        ("GET", format!("/api/v1/members/{m}"), json!(null),                             [200, 404, 200, 404]),
        ("PATCH", format!("/api/v1/members/{m}"), json!({"chronic_illness": true}),      [403, 404, 403, 404]),
        ("DELETE", format!("/api/v1/members/{m}"), json!(null),                          [403, 404, 403, 404]),
        ("GET", format!("/api/v1/members/{m}/pii?reason=check"), json!(null),            [403, 404, 403, 404]),
        ("GET", format!("/api/v1/households/{h}/pii?reason=check"), json!(null),         [403, 404, 403, 404]),
        ("GET", format!("/api/v1/households/{h}/record?reason=check"), json!(null),      [403, 404, 403, 404]),
        ("GET", format!("/api/v1/households/{h}/tag-history"), json!(null),              [200, 404, 200, 404]),
        ("POST", format!("/api/v1/households/{h}/tag-changes"), json!({"to_tag": "red", "reasons": ["serious_illness"]}), [403, 404, 403, 404]),
        ("GET", format!("/api/v1/tag-changes/{tc}"), json!(null),                        [200, 404, 200, 404]),
        ("POST", format!("/api/v1/tag-changes/{tc}/approve"), json!({}),                 [403, 403, 403, 403]),
        ("POST", format!("/api/v1/tag-changes/{tc}/reject"), json!({"note": "x"}),       [403, 403, 403, 403]),
        ("PATCH", format!("/api/v1/tasks/{t}"), json!({"status": "cancelled", "cancel_reason": "x"}), [403, 404, 403, 404]),
        ("GET", format!("/api/v1/visits/{v}"), json!(null),                              [200, 404, 200, 404]),
        ("PATCH", format!("/api/v1/visits/{v}"), json!({"notes": "x"}),                  [403, 404, 403, 404]),
        ("POST", "/api/v1/visits".to_owned(), json!({"household_id": h, "kind": "phone_call", "visited_at": at}), [403, 404, 403, 404]),
        ("PUT", format!("/api/v1/communities/{a}/service-plans/red"), json!({"templates": []}), [403, 404, 403, 404]),
        ("GET", format!("/api/v1/stats/overview?community_id={a}"), json!(null),         [200, 404, 200, 404]),
        ("GET", format!("/api/v1/stats/overview?grid_id={a1}"), json!(null),             [200, 404, 200, 404]),
        ("GET", format!("/api/v1/stats/overview?street_id={s1}"), json!(null),           [200, 404, 200, 404]),
        ("GET", format!("/api/v1/stats/overview?district_id={d1}"), json!(null),         [404, 404, 200, 404]),
        ("GET", format!("/api/v1/reports/evaluation?period=2026&community_id={a}"), json!(null), [200, 404, 200, 404]),
        ("GET", format!("/api/v1/reports/evaluation?period=2026&street_id={s1}&format=csv"), json!(null), [200, 404, 200, 404]),
        ("GET", format!("/api/v1/reports/evaluation?period=2026&district_id={d1}"), json!(null), [404, 404, 200, 404]),
        ("GET", format!("/api/v1/streets/{s1}"), json!(null),                            [200, 404, 200, 404]),
        ("PATCH", format!("/api/v1/streets/{s1}"), json!({"name": "x"}),                 [403, 404, 403, 404]),
        ("DELETE", format!("/api/v1/streets/{s1}"), json!(null),                         [403, 404, 403, 404]),
        ("GET", format!("/api/v1/districts/{d1}"), json!(null),                          [200, 200, 200, 404]),
        ("PATCH", format!("/api/v1/districts/{d1}"), json!({"name": "x"}),               [403, 403, 403, 404]),
        ("GET", format!("/api/v1/users/{}", w.user_w_a1), json!(null),                   [404, 404, 404, 404]),
        ("GET", "/api/v1/audit-events".to_owned(), json!(null),                          [403, 403, 403, 403]),
        ("GET", format!("/api/v1/sync?community_id={a}"), json!(null),                   [403, 403, 403, 403]),
    ];
    check_matrix(&app, &callers, &matrix).await;
    // Reads are masked: no ID number or phone in clear.
    let member = ok(&app.get_as(&format!("/api/v1/members/{m}"), &u.so_1).await).to_string();
    assert!(!member.contains("13800138000") && !member.contains("19410302"), "{member}");
    let household = ok(&app.get_as(&format!("/api/v1/households/{h}"), &u.do_1).await).to_string();
    assert!(!household.contains("13912345678"), "{household}");
    // Nothing changed: the household is at its version, the proposal pending.
    assert_eq!(ok(&app.get_as(&format!("/api/v1/households/{h}"), &w.sec_a).await)["version"], 1);
    assert_eq!(ok(&app.get_as(&format!("/api/v1/tag-changes/{tc}"), &w.sec_a).await)["status"], "pending");
    // Control characters in ids are bad requests or not found, never a panic.
    for path in ["/api/v1/streets/%00", "/api/v1/districts/a%0Ab", "/api/v1/stats/overview?street_id=%00"] {
        let res = app.get_as(path, &u.do_1).await;
        assert!([400, 404, 422].contains(&res.status.as_u16()), "{path}: {}", res.status);
        res.assert_problem(res.status.as_u16());
    }
    let _ = (&u.district_2, &u.household_c);
}

async fn officer_lists_hold_to_their_unit(app: TestApp) {
    let w = app.world().await;
    let u = units(&app, &w).await;
    let (a, b, c) = (&w.community_a, &w.community_b, &u.community_c);
    let list = |path: &str, token: &String| {
        let (path, token, app) = (path.to_owned(), token.clone(), &app);
        async move { ok(&app.get_as(&path, &token).await) }
    };
    let mut a_households = vec![w.household_a1.clone(), w.household_a2.clone()];
    a_households.sort();
    assert_eq!(ids(&list("/api/v1/households", &u.so_1).await), a_households);
    assert_eq!(ids(&list("/api/v1/households", &u.so_2).await), vec![u.household_c.clone()]);
    let mut d1 = [a_households.clone(), vec![u.household_c.clone()]].concat();
    d1.sort();
    assert_eq!(ids(&list("/api/v1/households", &u.do_1).await), d1);
    assert_eq!(ids(&list("/api/v1/households", &u.do_2).await), vec![w.household_b1.clone()]);
    // Filters narrow, never widen; another unit's ids list nothing.
    for (token, query) in [
        (&u.so_1, format!("?community_id={b}")),
        (&u.so_1, format!("?community_id={c}")),
        (&u.so_1, format!("?grid_id={}", w.grid_b1)),
        (&u.do_2, format!("?community_id={a}")),
    ] {
        assert!(ids(&list(&format!("/api/v1/households{query}"), token).await).is_empty(), "{query}");
    }
    assert_eq!(ids(&list(&format!("/api/v1/households?community_id={a}"), &u.do_1).await), a_households);
    // Communities, tasks, visits, tag changes: only the unit's.
    let mut cs = vec![a.clone(), c.clone()];
    cs.sort();
    assert_eq!(ids(&list("/api/v1/communities", &u.do_1).await), cs);
    assert_eq!(ids(&list("/api/v1/communities", &u.so_2).await), vec![c.clone()]);
    assert_eq!(ids(&list("/api/v1/communities", &u.do_2).await), vec![b.clone()]);
    let communities_of = |v: &Value| -> Vec<String> {
        let mut out: Vec<String> =
            v["items"].as_array().unwrap().iter().map(|i| i["community_id"].as_str().unwrap().to_owned()).collect();
        out.dedup();
        out
    };
    let tasks = list("/api/v1/tasks?limit=500", &u.so_1).await;
    assert!(!tasks["items"].as_array().unwrap().is_empty());
    let households_of_tasks: Vec<&str> =
        tasks["items"].as_array().unwrap().iter().map(|t| t["household_id"].as_str().unwrap()).collect();
    assert!(households_of_tasks.iter().all(|h| a_households.iter().any(|x| x == h)), "{tasks}");
    assert!(
        list("/api/v1/tasks", &u.so_2).await["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["household_id"] == u.household_c.as_str())
    );
    let at = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    ok(&app
        .post(
            "/api/v1/visits",
            Some(&w.w_a1),
            json!({"household_id": w.household_a1, "kind": "phone_call", "visited_at": at}),
        )
        .await);
    assert_eq!(list("/api/v1/visits", &u.so_1).await["items"].as_array().unwrap().len(), 1);
    assert!(list("/api/v1/visits", &u.so_2).await["items"].as_array().unwrap().is_empty());
    assert!(list("/api/v1/visits", &u.do_2).await["items"].as_array().unwrap().is_empty());
    ok(&app
        .post(
            &format!("/api/v1/households/{}/tag-changes", w.household_a1),
            Some(&w.w_a1),
            json!({"to_tag": "yellow", "reasons": ["chronic_illness"]}),
        )
        .await);
    assert_eq!(communities_of(&list("/api/v1/tag-changes", &u.do_1).await), vec![a.clone()]);
    assert!(list("/api/v1/tag-changes", &u.so_2).await["items"].as_array().unwrap().is_empty());
    assert!(
        list(&format!("/api/v1/tag-changes?community_id={a}"), &u.do_2).await["items"].as_array().unwrap().is_empty()
    );
    // Users: their own account; streets and districts: their own.
    let me = list("/api/v1/users", &u.so_1).await;
    assert_eq!(me["items"].as_array().unwrap().len(), 1);
    assert_eq!(me["items"][0]["street_id"], u.street_1);
    assert_eq!(ids(&list("/api/v1/streets", &u.so_1).await), vec![u.street_1.clone()]);
    assert_eq!(list("/api/v1/streets", &u.do_1).await["items"].as_array().unwrap().len(), 3);
    assert!(
        list(&format!("/api/v1/streets?district_id={}", u.district_1), &u.do_2).await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(ids(&list("/api/v1/districts", &u.so_2).await), vec![u.district_1.clone()]);
    // A secretary sees their own street and district, nothing more.
    assert_eq!(ids(&list("/api/v1/streets", &w.sec_a).await), vec![u.street_1.clone()]);
    app.get_as(&format!("/api/v1/streets/{}", u.street_2), &w.sec_a).await.assert_problem(404);
    app.get_as(&format!("/api/v1/stats/overview?street_id={}", u.street_1), &w.sec_a).await.assert_problem(404);
}

fn sum(rows: &Value, key: &str, field: &str) -> i64 {
    rows.as_array().unwrap().iter().map(|r| r[key][field].as_i64().unwrap()).sum()
}

async fn roll_ups_add_up_and_rank(app: TestApp) {
    let w = app.world().await;
    let u = units(&app, &w).await;
    // The district officer's dashboard is their district's roll-up by default.
    let overview = ok(&app.get_as("/api/v1/stats/overview", &u.do_1).await);
    assert_eq!(overview["scope"]["district_id"], u.district_1);
    let streets = &overview["streets"];
    assert_eq!(streets.as_array().unwrap().len(), 3, "{overview}");
    for field in ["red", "yellow", "green", "total"] {
        for key in ["households", "open_tasks", "overdue_tasks", "reviews_due"] {
            let total = overview["totals"][key][field].as_i64().unwrap();
            assert_eq!(sum(streets, key, field), total, "streets {key}.{field}");
            assert_eq!(sum(&overview["communities"], key, field), total, "communities {key}.{field}");
        }
    }
    assert_eq!(overview["totals"]["households"]["total"], 3);
    let by_id = |id: &str| streets.as_array().unwrap().iter().find(|s| s["street_id"] == id).cloned().unwrap();
    assert_eq!(by_id(&u.street_1)["households"]["total"], 2);
    assert_eq!(by_id(&u.street_2)["households"]["total"], 1);
    // A street's roll-up: its communities only.
    let street = ok(&app.get_as("/api/v1/stats/overview", &u.so_1).await);
    assert_eq!(street["scope"]["street_id"], u.street_1);
    assert_eq!(street["communities"].as_array().unwrap().len(), 1);
    assert_eq!(street["totals"]["households"]["total"], 2);
    // Mixed scopes are refused.
    let mixed = format!("/api/v1/stats/overview?street_id={}&community_id={}", u.street_1, w.community_a);
    app.get_as(&mixed, &w.admin).await.assert_problem(422);
    let mixed = format!("/api/v1/stats/overview?street_id={}&district_id={}", u.street_1, u.district_1);
    app.get_as(&mixed, &w.admin).await.assert_problem(422);
    app.get_as(&format!("/api/v1/stats/overview?district_id={}", u.district_2), &u.do_1).await.assert_problem(404);

    // The report: a red household in street 1 (set by its secretary) gives it a red coverage;
    // streets rank, ties share a rank.
    let red = app
        .post(
            &format!("/api/v1/households/{}/tag-changes", w.household_a1),
            Some(&w.sec_a),
            json!({"to_tag": "red", "reasons": ["serious_illness"]}),
        )
        .await;
    assert_eq!(ok(&red)["status"], "approved");
    let period = chrono::Utc::now().format("%Y").to_string();
    let path = format!("/api/v1/reports/evaluation?period={period}&district_id={}", u.district_1);
    let report = ok(&app.get_as(&path, &w.admin).await);
    let streets = report["streets"].as_array().unwrap();
    assert_eq!(streets.len(), 3);
    for field in ["tasks_due", "completed_on_time", "missed", "overdue", "not_yet_due"] {
        let total = report["totals"][field].as_i64().unwrap();
        let of = |rows: &Value| rows.as_array().unwrap().iter().map(|r| r[field].as_i64().unwrap()).sum::<i64>();
        assert_eq!(of(&report["streets"]), total, "streets {field}");
        assert_eq!(of(&report["communities"]), total, "communities {field}");
    }
    let planned: i64 = streets.iter().map(|s| s["red_coverage"]["planned"].as_i64().unwrap()).sum();
    assert_eq!(planned, report["totals"]["red_coverage"]["planned"].as_i64().unwrap());
    // Street 1 has a red household planned (0 covered: a rate of 0 beats no rate); the other
    // two have no rate at all and tie, listed by code.
    let ranks: Vec<(String, u64)> =
        streets.iter().map(|s| (s["street_id"].as_str().unwrap().to_owned(), s["rank"].as_u64().unwrap())).collect();
    assert_eq!(ranks[0], (u.street_1.clone(), 1), "{report}");
    assert_eq!((ranks[1].1, ranks[2].1), (2, 2), "{report}");
    let codes: Vec<&str> = streets[1..].iter().map(|s| s["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["370103000", "370103008"]);
    assert!(report["communities"].as_array().unwrap().iter().all(|c| c["rank"] == 1));
    // The dashboard ranks the same way without an on-time rate: by red coverage.
    let overview = ok(&app.get_as("/api/v1/stats/overview", &u.do_1).await);
    let ranks: Vec<(&str, u64)> = overview["streets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["code"].as_str().unwrap(), s["rank"].as_u64().unwrap()))
        .collect();
    assert_eq!(ranks, [("370103000", 2), ("370103006", 1), ("370103008", 2)], "{overview}");
    // CSV: a street row per street.
    let csv = app.get_as(&format!("{path}&format=csv"), &u.do_1).await;
    let text = String::from_utf8(csv.body.to_vec()).unwrap();
    assert_eq!(text.lines().filter(|l| l.starts_with("street,")).count(), 3, "{text}");
    assert!(text.contains(&format!("street,1,{period},{},七里山街道,", u.street_1)), "{text}");
}

async fn a_database_without_streets_migrates(app: TestApp) {
    let w = app.world().await;
    let db = app.state.db.clone();
    // Back to the schema before streets (reverting the streets migration and every later one, whatever comes after it),
    // with the world's data in it.
    actix_web::web::block(move || {
        let reverted = db
            .write_blocking(|conn| {
                let mut reverted = 0;
                loop {
                    let version = match conn {
                        DbConn::Sqlite(c) => c.revert_last_migration(SQLITE_MIGRATIONS).map(|v| v.to_string()),
                        DbConn::Postgres(c) => c.revert_last_migration(POSTGRES_MIGRATIONS).map(|v| v.to_string()),
                    }
                    .map_err(|e| gridlight::error::ApiError::internal(anyhow::anyhow!(e)))?;
                    reverted += 1;
                    if version.replace('-', "").starts_with("20261128002000") {
                        return Ok(reverted);
                    }
                }
            })
            .unwrap();
        assert_eq!(db.migrate().unwrap().len(), reverted);
    })
    .await
    .unwrap();
    // Each division code got a district and a default street holding its communities.
    let a = ok(&app.get_as(&format!("/api/v1/communities/{}", w.community_a), &w.admin).await);
    assert_eq!(a["street_id"], "00000000-0000-7000-8001-370103000000");
    let street = ok(&app.get_as("/api/v1/streets/00000000-0000-7000-8001-370103000000", &w.admin).await);
    assert_eq!((street["code"].as_str(), street["name"].as_str()), (Some("370103000"), Some("默认街道")));
    let district =
        ok(&app.get_as(&format!("/api/v1/districts/{}", street["district_id"].as_str().unwrap()), &w.admin).await);
    assert_eq!((district["division_code"].as_str(), district["name"].as_str()), (Some("370103"), Some("市中区")));
    assert_eq!(ok(&app.get_as("/api/v1/districts", &w.admin).await)["items"].as_array().unwrap().len(), 2);
    // The accounts survived the rebuild: sessions and reads work as before.
    assert_eq!(
        ok(&app.get_as(&format!("/api/v1/households/{}", w.household_a1), &w.sec_a).await)["id"],
        w.household_a1
    );
    let token = app.token("w-a1").await;
    app.get_as(&format!("/api/v1/households/{}", w.household_b1), &token).await.assert_problem(404);
    // Reassignable: a new street, the community moved to it.
    let body = json!({"district_id": district["id"], "name": "七里山街道", "code": "370103006"});
    let s = id_of(&ok(&app.post("/api/v1/streets", Some(&w.admin), body).await));
    let moved =
        app.patch(&format!("/api/v1/communities/{}", w.community_a), &w.admin, json!({"street_id": s}), None).await;
    assert_eq!(ok(&moved)["street_id"], s);
    // SQLite rebuilt communities and users: every reference to them still holds.
    let violations = app
        .state
        .db
        .write(|conn| {
            use diesel::RunQueryDsl;
            #[derive(diesel::QueryableByName)]
            struct Row {
                #[diesel(sql_type = diesel::sql_types::Text)]
                #[expect(dead_code, reason = "only counted")]
                table: String,
            }
            Ok(match conn {
                DbConn::Sqlite(c) => diesel::sql_query("PRAGMA foreign_key_check").load::<Row>(c)?.len(),
                DbConn::Postgres(_) => 0,
            })
        })
        .await
        .unwrap();
    assert_eq!(violations, 0);
}

/// The `summary` of the newest audit event of an entity with this action.
async fn last_summary(app: &TestApp, admin: &str, entity_id: &str, action: &str) -> Value {
    let events = ok(&app.get_as(&format!("/api/v1/audit-events?entity_id={entity_id}&limit=100"), admin).await);
    let found = events["items"].as_array().unwrap().iter().find(|e| e["action"] == action).cloned();
    found.unwrap_or_else(|| panic!("no {action} in {events}"))["summary"].clone()
}

async fn grid_codes_carry_their_street(app: TestApp) {
    let w = app.world().await;
    let u = units(&app, &w).await;
    let grid = |community: &str, code: &str| {
        let path = format!("/api/v1/communities/{community}/grids");
        let body = json!({"code": code, "name": format!("网格{code}")});
        let (app, admin) = (&app, &w.admin);
        async move { app.post(&path, Some(admin), body).await }
    };
    // Community C lies in street 2 (370103008): its grid codes carry 008.
    let refused = grid(&u.community_c, "37010300601502").await.assert_problem(422);
    assert_eq!(
        (refused["errors"][0]["field"].as_str(), refused["errors"][0]["code"].as_str()),
        (Some("code"), Some("street_mismatch")),
        "{refused}"
    );
    assert_eq!(ok(&grid(&u.community_c, "37010300801502").await)["code"], "37010300801502");
    // The division is checked first, as before.
    let refused = grid(&u.community_c, "37010200801503").await.assert_problem(422);
    assert_eq!(refused["errors"][0]["code"], "division_mismatch");
    // Community B is in its district's placeholder street (370102000): any street digits.
    ok(&grid(&w.community_b, "37010200900101").await);

    // Community A moved to street 1 (370103006) with grids coded 001 before: they keep their
    // codes (the move's event counts them), edits that leave the code alone pass, and a new code
    // must carry 006.
    let moved = last_summary(&app, &w.admin, &w.community_a, "community.moved").await;
    assert_eq!(moved["grids_coded_for_another_street"], 2, "{moved}");
    let path = format!("/api/v1/grids/{}", w.grid_a1);
    let renamed = app.patch(&path, &w.sec_a, json!({"name": "第一网格"}), None).await;
    assert_eq!(ok(&renamed)["code"], "37010300100101");
    ok(&app.patch(&path, &w.sec_a, json!({"code": "37010300100101"}), None).await);
    let refused = app.patch(&path, &w.sec_a, json!({"code": "37010300100109"}), None).await.assert_problem(422);
    assert_eq!(refused["errors"][0]["code"], "street_mismatch", "{refused}");
    let recoded = app.patch(&path, &w.sec_a, json!({"code": "37010300600101"}), None).await;
    assert_eq!(ok(&recoded)["code"], "37010300600101");
    // Moving community C to street 1: its two grids (coded 008) are counted, and still listed.
    let to_1 = json!({"street_id": u.street_1});
    ok(&app.patch(&format!("/api/v1/communities/{}", u.community_c), &w.admin, to_1, None).await);
    let moved = last_summary(&app, &w.admin, &u.community_c, "community.moved").await;
    assert_eq!(moved["grids_coded_for_another_street"], 2, "{moved}");
    let listed = ok(&app.get_as(&format!("/api/v1/communities/{}/grids", u.community_c), &w.admin).await);
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
}
