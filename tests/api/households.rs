use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::PlanStep;
use crate::support::TestApp;
use crate::support::world::{id_number, ok};

on_both_backends!(
    idempotent_creation_by_client_id,
    validation_of_households_and_members,
    masking_everywhere_and_audited_reveal,
    stale_if_match_is_412_and_no_update_is_lost,
    filters_search_and_sync_paging,
    suggestion_explains_but_never_applies,
    kept_suggestions_answer_until_a_change,
    kept_suggestions_survive_concurrent_changes,
    summary_view_is_the_full_view_cut_down,
    kept_pages_answer_until_something_on_them_changes,
    kept_pages_answer_on_the_worker_on_sqlite,
    removal_is_soft,
    mutations_are_audited,
);

fn household(grid: &str, id: Option<&str>) -> Value {
    json!({"id": id, "grid_id": grid, "address": {"building": "5号楼", "unit": "1单元", "room": "102"},
           "head_name": "刘淑珍", "phone": "0531-86012345", "notes": "独居"})
}

async fn idempotent_creation_by_client_id(app: TestApp) {
    let w = app.world().await;
    let id = uuid::Uuid::now_v7().to_string();
    let first = app.post("/api/v1/households", Some(&w.w_a1), household(&w.grid_a1, Some(&id))).await;
    assert_eq!(first.status, 201);
    let body = first.json();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["tag"], "green");
    assert_eq!(body["community_id"], w.community_a.as_str());
    // A retry of the same request returns the stored household and changes nothing.
    let again = app.post("/api/v1/households", Some(&w.w_a1), household(&w.grid_a1, Some(&id))).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json(), body);
    // The same id with other content is a conflict.
    let mut other = household(&w.grid_a1, Some(&id));
    other["head_name"] = json!("别人");
    app.post("/api/v1/households", Some(&w.w_a1), other).await.assert_problem(409);
    // Upper-case spelling of the same UUID is the same id.
    let again = app.post("/api/v1/households", Some(&w.w_a1), household(&w.grid_a1, Some(&id.to_uppercase()))).await;
    assert_eq!(again.status, 200);
    app.post("/api/v1/households", Some(&w.w_a1), household(&w.grid_a1, Some("not-a-uuid"))).await.assert_problem(422);
    // A worker cannot register a household in a grid that is not theirs.
    let res = app.post("/api/v1/households", Some(&w.w_a1), household(&w.grid_a2, None)).await;
    assert_eq!(res.assert_problem(422)["errors"][0]["field"], "grid_id");

    // Members too.
    let mid = uuid::Uuid::now_v7().to_string();
    let m = json!({"id": mid, "name": "刘淑珍", "gender": "female", "id_number": id_number("1938-11-09", 6), "relation": "head", "living_alone": true});
    let path = format!("/api/v1/households/{id}/members");
    let first = app.post(&path, Some(&w.w_a1), m.clone()).await;
    assert_eq!(first.status, 201);
    // The birth date comes from the ID number when not given; responses show its year.
    assert_eq!(first.json()["birth_year"], 1938);
    assert!(first.json().get("birth_date").is_none());
    let again = app.post(&path, Some(&w.w_a1), m.clone()).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json(), first.json());
    let mut changed = m.clone();
    changed["living_alone"] = json!(false);
    app.post(&path, Some(&w.w_a1), changed).await.assert_problem(409);
    let hh = app.get_as(&format!("/api/v1/households/{id}"), &w.w_a1).await.json();
    assert_eq!(hh["member_count"], 1);
}

fn fields(body: &Value) -> Vec<String> {
    let mut f: Vec<String> =
        body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect();
    f.sort();
    f
}

async fn validation_of_households_and_members(app: TestApp) {
    let w = app.world().await;
    let bad = json!({"grid_id": w.grid_a1, "address": {"building": " ", "unit": "", "room": "1"}, "head_name": "", "phone": "12345"});
    let body = app.post("/api/v1/households", Some(&w.sec_a), bad).await.assert_problem(422);
    assert_eq!(fields(&body), vec!["address.building", "address.unit", "head_name", "phone"]);
    let missing = json!({"grid_id": w.grid_a1, "head_name": "x"});
    assert_eq!(
        app.post("/api/v1/households", Some(&w.sec_a), missing).await.assert_problem(422)["errors"][0]["field"],
        "address"
    );

    let path = format!("/api/v1/households/{}/members", w.household_a1);
    let good = id_number("1950-02-03", 11);
    let mut checksum = good.clone();
    let last = checksum.pop().unwrap();
    checksum.push(if last == '0' { '1' } else { '0' });
    let cases = [
        (json!({"name": "甲", "gender": "male", "relation": "head", "id_number": checksum}), "id_number", "checksum"),
        (
            json!({"name": "甲", "gender": "male", "relation": "head", "id_number": "37010319501302011X"}),
            "id_number",
            "",
        ),
        (
            json!({"name": "甲", "gender": "male", "relation": "head", "id_number": good, "birth_date": "1950-02-04"}),
            "id_number",
            "",
        ),
        (json!({"name": "甲", "gender": "female", "relation": "head", "id_number": good}), "id_number", ""),
        (json!({"name": "甲", "gender": "male", "relation": "head", "phone": "1381234567"}), "phone", ""),
        (
            json!({"name": "甲", "gender": "male", "relation": "head", "disability_grade": 5}),
            "disability_grade",
            "out_of_range",
        ),
        (json!({"name": "", "gender": "male", "relation": "head"}), "name", "required"),
        (
            json!({"name": "甲", "gender": "male", "relation": "head", "birth_date": "2999-01-01"}),
            "birth_date",
            "out_of_range",
        ),
        (json!({"name": "甲", "gender": "other", "relation": "head"}), "gender", "invalid_type"),
        (json!({"name": "甲", "gender": "male", "relation": "boss"}), "relation", "invalid_type"),
    ];
    for (body, field, code) in cases {
        let res = app.post(&path, Some(&w.sec_a), body.clone()).await;
        let problem = res.assert_problem(422);
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
        if !code.is_empty() {
            assert_eq!(problem["errors"][0]["code"], code, "{body}: {problem}");
        }
    }
    // A good one passes, and PATCH re-checks agreement with the stored ID number.
    let id = app
        .create_member(
            &w.sec_a,
            &w.household_a1,
            json!({"name": "甲", "gender": "male", "relation": "spouse", "id_number": good}),
        )
        .await;
    let res = app.patch(&format!("/api/v1/members/{id}"), &w.sec_a, json!({"gender": "female"}), None).await;
    assert_eq!(res.assert_problem(422)["errors"][0]["field"], "id_number");
    // Nothing of the refused requests was written.
    let members = app.get_as(&path, &w.sec_a).await.json();
    assert_eq!(members["items"].as_array().unwrap().len(), 2);
}

async fn masking_everywhere_and_audited_reveal(app: TestApp) {
    let w = app.world().await;
    let full_id = id_number("1941-03-02", 2);
    let check = |v: &Value| {
        let text = v.to_string();
        assert!(!text.contains(&full_id), "unmasked ID number in {text}");
        assert!(!text.contains("13800138000") && !text.contains("13912345678"), "unmasked phone in {text}");
    };
    let member = app.get_as(&format!("/api/v1/members/{}", w.member_a1), &w.sec_a).await.json();
    assert_eq!(member["id_number"], format!("**************{}", &full_id[14..]));
    assert_eq!(member["birth_year"], 1941);
    assert_eq!(member["phone"], "138****8000");
    check(&member);
    check(&app.get_as(&format!("/api/v1/households/{}/members", w.household_a1), &w.sec_a).await.json());
    let hh = app.get_as(&format!("/api/v1/households/{}", w.household_a1), &w.sec_a).await.json();
    assert_eq!(hh["phone"], "139****5678");
    check(&hh);
    check(&app.get_as("/api/v1/households", &w.sec_a).await.json());
    check(&app.patch(&format!("/api/v1/members/{}", w.member_a1), &w.sec_a, json!({"notes": "x"}), None).await.json());
    check(&app.get_as("/api/v1/users", &w.admin).await.json());
    check(&app.get_as("/api/v1/audit-events?limit=500", &w.admin).await.json());

    // The reveal: full values, never cached, audited with the reason.
    let res = app
        .get_as(&format!("/api/v1/members/{}/pii?reason=%E5%85%A5%E6%88%B7%E6%A0%B8%E5%AE%9E", w.member_a1), &w.w_a1)
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(res.json()["id_number"], full_id.as_str());
    assert_eq!(res.json()["phone"], "13800138000");
    let events = app
        .get_as(&format!("/api/v1/audit-events?entity_id={}&entity_type=member", w.member_a1), &w.sec_a)
        .await
        .json();
    let reveal: Vec<&Value> =
        events["items"].as_array().unwrap().iter().filter(|e| e["action"] == "member.pii_revealed").collect();
    assert_eq!(reveal.len(), 1);
    assert_eq!(reveal[0]["summary"]["reason"], "入户核实");
    assert_eq!(reveal[0]["actor_id"], w.user_w_a1.as_str());
    app.get_as(&format!("/api/v1/members/{}/pii", w.member_a1), &w.w_a1).await.assert_problem(422);
}

async fn stale_if_match_is_412_and_no_update_is_lost(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/households/{}", w.household_a1);
    let res = app.get_as(&path, &w.w_a1).await;
    let tag = res.header("etag").unwrap().to_owned();
    assert_eq!(tag, "\"1\"");
    // Two clients edit from the same version at once: exactly one wins, the other gets 412.
    let (a, b) = futures_util::join!(
        app.patch(&path, &w.w_a1, json!({"notes": "甲"}), Some(&tag)),
        app.patch(&path, &w.sec_a, json!({"notes": "乙"}), Some(&tag)),
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 412]);
    let winner = if a.status == 200 { "甲" } else { "乙" };
    let now = app.get_as(&path, &w.w_a1).await;
    assert_eq!(now.json()["notes"], winner);
    assert_eq!(now.header("etag"), Some("\"2\""));
    // Without If-Match, concurrent edits of different fields are applied one after the other:
    // both survive.
    let (a, b) = futures_util::join!(
        app.patch(&path, &w.w_a1, json!({"head_name": "张桂芝"}), None),
        app.patch(&path, &w.sec_a, json!({"address": {"room": "402"}}), None),
    );
    assert_eq!((a.status.as_u16(), b.status.as_u16()), (200, 200));
    let now = app.get_as(&path, &w.w_a1).await.json();
    assert_eq!(now["head_name"], "张桂芝");
    assert_eq!(now["address"]["room"], "402");
    assert_eq!(now["version"], 4);
    app.patch(&path, &w.w_a1, json!({"notes": "丙"}), Some("\"2\"")).await.assert_problem(412);
    let m = format!("/api/v1/members/{}", w.member_a1);
    app.patch(&m, &w.w_a1, json!({"notes": "丙"}), Some("\"7\"")).await.assert_problem(412);
    assert_eq!(app.patch(&m, &w.w_a1, json!({"notes": "丙"}), Some("\"1\"")).await.header("etag"), Some("\"2\""));
}

async fn filters_search_and_sync_paging(app: TestApp) {
    let w = app.world().await;
    let mut created = vec![w.household_a1.clone()];
    for i in 0..6 {
        let res = app
            .post(
                "/api/v1/households",
                Some(&w.w_a1),
                json!({"grid_id": w.grid_a1, "address": {"building": format!("{i}号楼"), "unit": "1单元", "room": "101"}, "head_name": format!("赵{i}")}),
            )
            .await;
        created.push(ok(&res)["id"].as_str().unwrap().to_owned());
    }
    let items = |v: Value| {
        v["items"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    let grid = items(app.get_as(&format!("/api/v1/households?grid_id={}", w.grid_a1), &w.sec_a).await.json());
    assert_eq!(grid, created);
    let q = items(app.get_as("/api/v1/households?q=%E8%B5%B53", &w.sec_a).await.json());
    assert_eq!(q, vec![created[4].clone()]);
    let q = items(app.get_as("/api/v1/households?q=5%E5%8F%B7%E6%A5%BC", &w.sec_a).await.json());
    assert_eq!(q, vec![created[6].clone()]);
    // LIKE wildcards in q are literal.
    assert!(items(app.get_as("/api/v1/households?q=%25", &w.sec_a).await.json()).is_empty());
    assert_eq!(items(app.get_as("/api/v1/households?tag=green", &w.w_a1).await.json()).len(), 7);
    assert!(items(app.get_as("/api/v1/households?tag=red", &w.w_a1).await.json()).is_empty());
    app.get_as("/api/v1/households?tag=blue", &w.w_a1).await.assert_problem(400);

    // Sync: everything changed since a moment, in order of change, paged; an edit moves a
    // household to the end.
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let since = since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    app.patch(&format!("/api/v1/households/{}", created[1]), &w.w_a1, json!({"notes": "改"}), None).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path =
            format!("/api/v1/households?grid_id={}&updated_since={}&limit=3", w.grid_a1, since.replace('+', "%2B"));
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.get_as(&path, &w.w_a1).await.json();
        seen.extend(items(page.clone()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    assert_eq!(seen.last(), Some(&created[1]));
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert!(items(app.get_as(&format!("/api/v1/households?updated_since={future}"), &w.w_a1).await.json()).is_empty());
}

async fn suggestion_explains_but_never_applies(app: TestApp) {
    let w = app.world().await;
    // World: household A1 has one member born 1941 → an elderly person living alone.
    let hh = app.get_as(&format!("/api/v1/households/{}", w.household_a1), &w.w_a1).await.json();
    assert_eq!(hh["tag"], "green");
    assert_eq!(hh["suggested_tag"], "red");
    let items = hh["suggestion"]["explanation"].as_array().unwrap();
    assert!(
        items.iter().any(|i| i["reason"] == "elderly_living_alone" && i["member_id"] == w.member_a1.as_str()),
        "{hh}"
    );
    // A second, younger member ends "living alone"; the 80+ age still suggests yellow.
    app.create_member(
        &w.w_a1,
        &w.household_a1,
        json!({"name": "张伟", "gender": "male", "relation": "child", "birth_date": "1970-01-01"}),
    )
    .await;
    let hh = app.get_as(&format!("/api/v1/households/{}", w.household_a1), &w.w_a1).await.json();
    assert_eq!(hh["suggested_tag"], "yellow");
    assert_eq!(hh["tag"], "green");
    assert_eq!(hh["member_count"], 2);
}

/// What must hold of a household's representation.
type Check = fn(&Value) -> bool;

/// The reason codes a household's suggestion explains itself with.
fn reasons_of(h: &Value) -> Vec<String> {
    h["suggestion"]["explanation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reason"].as_str().unwrap().to_owned())
        .collect()
}

/// The households of community A as the secretary lists them.
async fn community_page(app: &TestApp, token: &str) -> Vec<Value> {
    ok(&app.get_as("/api/v1/households?limit=200", token).await)["items"].as_array().unwrap().clone()
}

/// Works out every stale or expired kept suggestion, as the server does in the background.
async fn refresh_suggestions(app: &TestApp) -> usize {
    let db = app.state.db.clone();
    actix_web::web::block(move || gridlight::jobs::refresh_suggestions(&db)).await.unwrap().unwrap()
}

/// Each kept suggestion's (household, valid_until, text), by household.
async fn kept_rows(app: &TestApp) -> std::collections::BTreeMap<String, (chrono::NaiveDate, String)> {
    use diesel::prelude::*;
    use gridlight::db::schema::household_suggestions as k;
    let db = app.state.db.clone();
    actix_web::web::block(move || {
        db.read_blocking(|c| {
            Ok(k::table
                .select((k::household_id, k::valid_until, k::suggestion))
                .load::<(String, chrono::NaiveDate, String)>(c)?)
        })
    })
    .await
    .unwrap()
    .unwrap()
    .into_iter()
    .map(|(id, until, text)| (id, (until, text)))
    .collect()
}

/// Sets the last day a kept suggestion is good for (as a birthday would).
async fn set_until(app: &TestApp, household: &str, day: chrono::NaiveDate) {
    use diesel::prelude::*;
    use gridlight::db::schema::household_suggestions as k;
    let (db, id) = (app.state.db.clone(), household.to_owned());
    actix_web::web::block(move || {
        db.write_blocking(|c| Ok(diesel::update(k::table.find(id)).set(k::valid_until.eq(day)).execute(c)?))
    })
    .await
    .unwrap()
    .unwrap();
}

/// Overwrites a kept suggestion's text (a marker only the kept row can show).
async fn overwrite_kept(app: &TestApp, household: &str, text: &str) {
    use diesel::prelude::*;
    use gridlight::db::schema::household_suggestions as k;
    let (db, id, text) = (app.state.db.clone(), household.to_owned(), text.to_owned());
    actix_web::web::block(move || {
        db.write_blocking(|c| Ok(diesel::update(k::table.find(id)).set(k::suggestion.eq(text)).execute(c)?))
    })
    .await
    .unwrap()
    .unwrap();
    app.state.pages.clear();
}

/// A household page answers each suggestion from a kept row while it holds, and from the members
/// once a member or the recorded reasons changed (a trigger marks the row stale and wipes it in
/// the same transaction), until the background work keeps it again: what a client sees is the
/// same either way.
async fn kept_suggestions_answer_until_a_change(app: TestApp) {
    let w = app.world().await;
    let a2 = app.create_household(&w.w_a1, &w.grid_a1, "王秀英").await;
    let m = app
        .create_member(
            &w.w_a1,
            &a2,
            json!({"name": "王秀英", "gender": "female", "relation": "head", "birth_date": "1950-03-01", "disability_grade": 2}),
        )
        .await;
    let worked_out = community_page(&app, &w.sec_a).await;
    assert!(worked_out.len() >= 2);
    let stale = kept_rows(&app).await;
    assert!(stale.values().all(|(until, text)| until.to_string() == "0001-01-01" && text.is_empty()), "{stale:?}");

    // Kept: the same answers, every row good past today, until a birthday at the latest.
    assert!(refresh_suggestions(&app).await >= worked_out.len());
    assert_eq!(community_page(&app, &w.sec_a).await, worked_out);
    let kept = kept_rows(&app).await;
    let today = chrono::Utc::now().date_naive();
    assert!(kept.values().all(|(until, text)| *until > today && !text.is_empty()), "{kept:?}");
    assert!(kept[&a2].0 <= today + chrono::Duration::days(366));
    assert_eq!(refresh_suggestions(&app).await, 0, "nothing is due twice");

    // A birthday comes: a row good until the community's today is due, one good until tomorrow
    // is not. With another community a calendar day ahead (UTC+14), a row good until that day is
    // looked at but left until its own community reaches it.
    let shanghai = gridlight::store::communities::today_in("Asia/Shanghai");
    set_until(&app, &a2, shanghai + chrono::Duration::days(1)).await;
    assert_eq!(refresh_suggestions(&app).await, 0, "not due before the birthday");
    set_until(&app, &a2, shanghai).await;
    assert_eq!(refresh_suggestions(&app).await, 1, "due on the birthday");
    assert!(kept_rows(&app).await[&a2].0 > shanghai);
    {
        use diesel::prelude::*;
        use gridlight::db::schema::communities;
        let (db, b) = (app.state.db.clone(), w.community_b.clone());
        actix_web::web::block(move || {
            db.write_blocking(|c| {
                Ok(diesel::update(communities::table.find(b))
                    .set(communities::timezone.eq("Pacific/Kiritimati"))
                    .execute(c)?)
            })
        })
        .await
        .unwrap()
        .unwrap();
    }
    let ahead = gridlight::store::communities::today_in("Pacific/Kiritimati");
    set_until(&app, &a2, ahead).await;
    let due_here = usize::from(ahead <= shanghai);
    assert_eq!(refresh_suggestions(&app).await, due_here, "{ahead} in Kiritimati, {shanghai} here");
    set_until(&app, &a2, shanghai).await;
    assert_eq!(refresh_suggestions(&app).await, 1);

    // The page reads the kept row: a marker written into it shows.
    overwrite_kept(&app, &a2, r#"{"tag":"yellow","explanation":[]}"#).await;
    let page = community_page(&app, &w.sec_a).await;
    let a2_of = |page: &[Value]| page.iter().find(|h| h["id"] == a2.as_str()).unwrap().clone();
    assert_eq!(a2_of(&page)["suggested_tag"], "yellow");
    assert_eq!(a2_of(&page)["suggestion"]["explanation"], json!([]));

    // Each kind of change marks the row stale at once, and the page answers from the members.
    let before = a2_of(&worked_out);
    assert_eq!(before["suggested_tag"], "red", "{before}");
    let changes: Vec<(&str, Check)> = vec![
        ("member edited", |h: &Value| reasons_of(h).contains(&"moderate_disability".to_owned())),
        ("member added", |h: &Value| reasons_of(h) == ["moderate_disability"] && h["suggested_tag"] == "yellow"),
        ("member removed", |h: &Value| reasons_of(h).contains(&"elderly_living_alone".to_owned())),
        ("reasons recorded", |h: &Value| reasons_of(h).contains(&"low_income".to_owned())),
    ];
    let mut added = None;
    for (what, holds) in changes {
        refresh_suggestions(&app).await;
        assert!(kept_rows(&app).await[&a2].0 > today, "{what}: kept before the change");
        match what {
            "member edited" => {
                let res =
                    app.patch(&format!("/api/v1/members/{m}"), &w.sec_a, json!({"disability_grade": 3}), None).await;
                assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
            }
            "member added" => {
                added = Some(
                    app.create_member(
                        &w.w_a1,
                        &a2,
                        json!({"name": "王强", "gender": "male", "relation": "child", "birth_date": "1980-05-05"}),
                    )
                    .await,
                );
            }
            "member removed" => {
                let res = app.delete_as(&format!("/api/v1/members/{}", added.as_deref().unwrap()), &w.sec_a).await;
                assert!(res.status.is_success(), "{}", String::from_utf8_lossy(&res.body));
            }
            _ => {
                let res = app
                    .post(
                        &format!("/api/v1/households/{a2}/tag-changes"),
                        Some(&w.sec_a),
                        json!({"to_tag": "yellow", "reasons": ["low_income"], "note": "低保"}),
                    )
                    .await;
                assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
            }
        }
        let (until, text) = kept_rows(&app).await[&a2].clone();
        assert_eq!((until.to_string().as_str(), text.as_str()), ("0001-01-01", ""), "{what}: stale and wiped");
        let live = a2_of(&community_page(&app, &w.sec_a).await);
        assert!(holds(&live), "{what}: {live}");
        refresh_suggestions(&app).await;
        let kept = a2_of(&community_page(&app, &w.sec_a).await);
        assert_eq!(kept["suggestion"], live["suggestion"], "{what}: kept as worked out");
    }
    // One household's change leaves the others kept.
    let kept = kept_rows(&app).await;
    assert!(kept.values().all(|(until, _)| *until > today));
}

/// What `view=summary` keeps of each household.
const SUMMARY_FIELDS: [&str; 11] = [
    "address",
    "community_id",
    "grid_id",
    "head_name",
    "id",
    "member_count",
    "suggested_tag",
    "tag",
    "tag_review_due_on",
    "updated_at",
    "version",
];

/// Every page of `path` (a list with `limit` set), followed by its cursors: the items and the
/// bytes of the bodies.
async fn all_pages(app: &TestApp, path: &str, token: &str) -> (Vec<Value>, usize) {
    let (mut items, mut bytes, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.to_owned(),
        };
        let res = app.get_as(&url, token).await;
        let page = ok(&res);
        bytes += res.body.len();
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (items, bytes),
        }
    }
}

/// `view=summary` lists the same households in the same order and pages as the full view, each
/// as the full view's item cut down to the summary's fields, in the caller's reach only; its
/// suggested tag is the kept one where that holds and worked out where it does not.
async fn summary_view_is_the_full_view_cut_down(app: TestApp) {
    let w = app.world().await;
    let red = app.create_household(&w.w_a1, &w.grid_a1, "王秀英").await;
    app.create_member(
        &w.w_a1,
        &red,
        json!({"name": "王秀英", "gender": "female", "relation": "head", "birth_date": "1950-03-01", "disability_grade": 2}),
    )
    .await;
    for i in 0..4 {
        app.create_household(&w.w_a1, &w.grid_a1, &format!("孙{i}")).await;
    }
    let cut = |full: &Value| -> Value {
        Value::Object(SUMMARY_FIELDS.iter().map(|k| ((*k).to_owned(), full[*k].clone())).collect())
    };
    let compare = |full: &[Value], summary: &[Value], what: &str| {
        assert_eq!(full.len(), summary.len(), "{what}");
        for (f, s) in full.iter().zip(summary) {
            let keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys, SUMMARY_FIELDS, "{what}: {s}");
            assert_eq!(*s, cut(f), "{what}");
        }
    };
    // Worked out from the members (nothing kept yet), then kept: the same either way.
    for round in ["worked out", "kept"] {
        if round == "kept" {
            assert!(refresh_suggestions(&app).await > 0);
        }
        for (token, who) in [(&w.sec_a, "secretary"), (&w.w_a1, "worker"), (&w.admin, "administrator")] {
            let (full, full_bytes) = all_pages(&app, "/api/v1/households?limit=2", token).await;
            let (summary, summary_bytes) = all_pages(&app, "/api/v1/households?limit=2&view=summary", token).await;
            compare(&full, &summary, &format!("{round}, {who}"));
            assert!(summary_bytes * 10 < full_bytes * 6, "{round}, {who}: {summary_bytes} of {full_bytes} bytes");
            let (explicit, _) = all_pages(&app, "/api/v1/households?limit=2&view=full", token).await;
            assert_eq!(explicit, full, "view=full is the default");
        }
    }
    let page = ok(&app.get_as("/api/v1/households?view=summary&limit=200", &w.sec_a).await);
    let of = |page: &Value, id: &str| page["items"].as_array().unwrap().iter().find(|h| h["id"] == id).unwrap().clone();
    assert_eq!(of(&page, &red)["suggested_tag"], "red");
    assert_eq!(of(&page, &red)["tag"], "green");

    // The summary reads the kept row's tag: a marker written into it shows; once the row is
    // stale the members answer again.
    overwrite_kept(&app, &red, r#"{"tag":"yellow","explanation":[{"reason":"x","suggests":"yellow","member_id":null,"member_name":null,"detail":"marker"}]}"#).await;
    let page = ok(&app.get_as("/api/v1/households?view=summary&limit=200", &w.sec_a).await);
    assert_eq!(of(&page, &red)["suggested_tag"], "yellow");
    mark_all_stale(&app).await;
    let page = ok(&app.get_as("/api/v1/households?view=summary&limit=200", &w.sec_a).await);
    assert_eq!(of(&page, &red)["suggested_tag"], "red");

    // Filters and `updated_since` paging apply as in the full view.
    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    for filter in [
        format!("grid_id={}", w.grid_a1),
        "tag=green".to_owned(),
        "q=%E5%AD%99".to_owned(),
        format!("updated_since={}", since.replace('+', "%2B")),
        "review_due=true".to_owned(),
    ] {
        let (full, _) = all_pages(&app, &format!("/api/v1/households?limit=2&{filter}"), &w.sec_a).await;
        let (summary, _) =
            all_pages(&app, &format!("/api/v1/households?limit=2&view=summary&{filter}"), &w.sec_a).await;
        compare(&full, &summary, &filter);
    }

    // Another scope's households stay out: a foreign grid or community gives an empty page, a
    // worker sees only the grids assigned.
    for (path, token) in [
        (format!("/api/v1/households?view=summary&grid_id={}", w.grid_b1), &w.sec_a),
        (format!("/api/v1/households?view=summary&community_id={}", w.community_a), &w.sec_b),
        (format!("/api/v1/households?view=summary&grid_id={}", w.grid_a1), &w.w_a2),
    ] {
        let page = ok(&app.get_as(&path, token).await);
        assert_eq!(page["items"], json!([]), "{path}");
    }
    let (mine, _) = all_pages(&app, "/api/v1/households?limit=3&view=summary", &w.w_a1).await;
    assert!(!mine.is_empty() && mine.iter().all(|h| h["grid_id"] == w.grid_a1.as_str()));

    // A view that does not exist is refused, whatever the other parameters.
    for bad in ["view=Summary", "view=", "view=brief&grid_id=x"] {
        app.get_as(&format!("/api/v1/households?{bad}"), &w.sec_a).await.assert_problem(400);
    }
    app.get_as("/api/v1/households?view=summary%00", &w.sec_a).await.assert_problem(422);
}

/// A page as `token` is answered it, gzipped when `gzip`: (the JSON, whether it came from kept
/// bytes). Every answer carries `Vary: Accept-Encoding`; a gzipped one is gzipped once.
async fn kept_read(app: &TestApp, path: &str, token: &str, gzip: bool) -> (Value, bool) {
    use std::io::Read;
    let hits = app.state.pages.lookups().0;
    let mut req =
        actix_web::test::TestRequest::get().uri(path).insert_header(("authorization", format!("Bearer {token}")));
    if gzip {
        req = req.insert_header(("accept-encoding", "gzip"));
    }
    let res = app.call(req).await;
    assert_eq!(res.status, 200, "{path}: {}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.header("content-type"), Some("application/json"), "{path}");
    assert!(res.headers.get_all("vary").any(|v| v.to_str().unwrap().eq_ignore_ascii_case("accept-encoding")), "{path}");
    let body = if gzip {
        assert_eq!(res.header("content-encoding"), Some("gzip"), "{path}");
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&res.body[..]).read_to_end(&mut plain).expect("gzip");
        plain
    } else {
        assert_eq!(res.header("content-encoding"), None, "{path}");
        res.body.to_vec()
    };
    (serde_json::from_slice(&body).expect("JSON"), app.state.pages.lookups().0 > hits)
}

/// On SQLite a kept page that holds is answered on the HTTP worker itself: while every read
/// connection of the blocking pool is taken, it still answers at once (and right). A log that
/// moved far since the page was last checked is left to the blocking pool (a bounded check on
/// the worker), which finds it still holds. On PostgreSQL every check is a round trip and goes
/// to the blocking pool.
async fn kept_pages_answer_on_the_worker_on_sqlite(app: TestApp) {
    use diesel::prelude::*;
    let w = app.world().await;
    let summary = "/api/v1/households?view=summary&limit=50";
    let (page, _) = kept_read(&app, summary, &w.sec_a, false).await;
    let sqlite = app.state.db.backend() == gridlight::db::Backend::Sqlite;
    assert_eq!(app.state.db.read_here(|_| Ok(())).is_some(), sqlite, "reads on the worker: SQLite only");
    if !sqlite {
        assert_eq!(kept_read(&app, summary, &w.sec_a, false).await, (page, true));
        return;
    }
    let started = std::time::Instant::now();
    let answers = while_reads_are_taken(&app, async {
        let mut answers = Vec::new();
        for gzip in [false, true] {
            answers.push(kept_read(&app, summary, &w.sec_a, gzip).await);
        }
        answers
    })
    .await;
    assert_eq!(answers, [(page.clone(), true), (page.clone(), true)]);
    assert!(started.elapsed() < app.state.config.db.timeout() / 2, "answered without a pooled connection");

    // 600 rows of the log since the last check (visits: not a household page's kind): the
    // worker leaves the check to the pool, which finds the page holds. An instance whose pool
    // gives up at once shows where the check went.
    let mut config = (*app.state.config).clone();
    config.db.db_timeout_ms = 200;
    let quick = TestApp::with_config_for_test(config).await;
    assert_eq!(kept_read(&quick, summary, &w.sec_a, false).await, (page.clone(), false));
    {
        use gridlight::db::schema::sync_log as l;
        let (db, community) = (app.state.db.clone(), w.community_a.clone());
        actix_web::web::block(move || {
            db.write_blocking(|c| {
                for i in 0..600 {
                    diesel::insert_into(l::table)
                        .values((
                            l::community_id.eq(&community),
                            l::entity.eq("visit"),
                            l::entity_id.eq(format!("v{i}")),
                        ))
                        .execute(c)?;
                }
                Ok(())
            })
        })
        .await
        .unwrap()
        .unwrap();
    }
    let res = while_reads_are_taken(&quick, quick.get_as(summary, &w.sec_a)).await;
    assert_eq!(res.status, 503, "a check over 600 rows of the log is not made on the worker");
    assert_eq!(kept_read(&quick, summary, &w.sec_a, false).await, (page.clone(), true), "checked on the pool");
    let answer = while_reads_are_taken(&quick, kept_read(&quick, summary, &w.sec_a, true)).await;
    assert_eq!(answer, (page, true), "and on the worker again");
}

/// What `work` gives while every read connection of `app`'s pool is taken.
async fn while_reads_are_taken<T>(app: &TestApp, work: impl std::future::Future<Output = T>) -> T {
    use std::sync::{Arc, Barrier, mpsc};
    let size = app.state.config.db.db_pool_size as usize;
    let taken = Arc::new(Barrier::new(size + 1));
    let (release, holders): (Vec<_>, Vec<_>) = (0..size)
        .map(|_| {
            let (db, taken) = (app.state.db.clone(), taken.clone());
            let (tx, rx) = mpsc::channel::<()>();
            let holder = std::thread::spawn(move || {
                db.read_blocking(|_| {
                    taken.wait();
                    let _ = rx.recv();
                    Ok(())
                })
            });
            (tx, holder)
        })
        .unzip();
    taken.wait();
    let out = work.await;
    drop(release);
    for h in holders {
        h.join().unwrap().unwrap();
    }
    out
}

/// A secretary's or grid worker's household page is answered from the bytes kept of it until
/// something it shows changes — made on another instance of the same database, or by hand in
/// the database: each such change shows on the very next read; visits do not drop it; nobody is
/// answered another's page; an administrator's is read each time.
async fn kept_pages_answer_until_something_on_them_changes(app: TestApp) {
    let w = app.world().await;
    // A second instance on the same database: its writes reach the first through the log only.
    let other = TestApp::with_config_for_test((*app.state.config).clone()).await;
    let full = "/api/v1/households?limit=50";
    let summary = "/api/v1/households?view=summary&limit=50";
    let of = |page: &Value, id: &str| page["items"].as_array().unwrap().iter().find(|h| h["id"] == id).cloned();

    // Read, then kept: the same JSON, plain or gzipped, on each view.
    for path in [full, summary] {
        let (first, _) = kept_read(&app, path, &w.sec_a, false).await;
        assert_eq!(first["items"].as_array().unwrap().len(), 2, "{path}");
        for gzip in [false, true, false, true] {
            assert_eq!(kept_read(&app, path, &w.sec_a, gzip).await, (first.clone(), true), "{path}, gzip {gzip}");
        }
    }
    let (mine, _) = kept_read(&app, full, &w.w_a1, false).await;
    assert_eq!(kept_read(&app, full, &w.w_a1, true).await, (mine.clone(), true));
    let ids: Vec<&str> = mine["items"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [w.household_a1.as_str()], "a worker is never answered the secretary's page");
    // Pages of another query, and cursors, are kept apart.
    let (first_page, _) = kept_read(&app, "/api/v1/households?limit=1", &w.sec_a, false).await;
    assert_eq!(first_page["items"].as_array().unwrap().len(), 1);
    let next = first_page["next_cursor"].as_str().unwrap();
    let (second_page, _) = kept_read(&app, &format!("/api/v1/households?limit=1&cursor={next}"), &w.sec_a, false).await;
    assert_ne!(second_page["items"], first_page["items"]);

    // Each change made on the other instance shows on the next read of both views.
    let changes: Vec<(&str, Value)> =
        vec![("head", json!({"head_name": "张桂英"})), ("notes", json!({"notes": "新的备注"}))];
    for (what, edit) in changes {
        let res = other.patch(&format!("/api/v1/households/{}", w.household_a1), &w.sec_a, edit.clone(), None).await;
        assert_eq!(res.status, 200, "{what}: {}", String::from_utf8_lossy(&res.body));
        let (page, kept) = kept_read(&app, full, &w.sec_a, true).await;
        assert!(!kept, "{what}");
        let (key, value) = edit.as_object().unwrap().iter().next().unwrap();
        assert_eq!(of(&page, &w.household_a1).unwrap()[key], *value, "{what}");
        assert!(kept_read(&app, full, &w.sec_a, true).await.1, "{what}: kept again");
    }
    let members = |page: &Value| of(page, &w.household_a1).unwrap()["member_count"].as_i64().unwrap();
    let before = members(&kept_read(&app, summary, &w.sec_a, false).await.0);
    other
        .create_member(
            &w.sec_a,
            &w.household_a1,
            json!({"name": "张小明", "gender": "male", "relation": "grandchild", "birth_date": "2015-05-05"}),
        )
        .await;
    let (page, kept) = kept_read(&app, summary, &w.sec_a, false).await;
    assert!(!kept);
    assert_eq!(members(&page), before + 1, "a new member");

    // A visit shows on no household page: it stays kept, and unchanged.
    let (page, _) = kept_read(&app, summary, &w.sec_a, false).await;
    let visit = json!({"id": uuid::Uuid::now_v7().to_string(), "household_id": w.household_a2, "kind": "phone_call",
                       "visited_at": (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339(), "notes": "电话回访"});
    assert_eq!(other.post("/api/v1/visits", Some(&w.w_a2), visit).await.status, 201);
    let (after, kept) = kept_read(&app, summary, &w.sec_a, false).await;
    assert_eq!(after, page);
    assert!(kept, "a visit leaves the households page kept");
    // Nor does a change in another community.
    let res =
        other.patch(&format!("/api/v1/households/{}", w.household_b1), &w.sec_b, json!({"notes": "b"}), None).await;
    assert_eq!(res.status, 200);
    assert_eq!(kept_read(&app, summary, &w.sec_a, false).await, (page.clone(), true), "another community");

    // A change by hand in the database (no API, no instance) shows as well.
    {
        use diesel::prelude::*;
        use gridlight::db::schema::households as h;
        let (db, id) = (other.state.db.clone(), w.household_a2.clone());
        actix_web::web::block(move || {
            db.write_blocking(|c| Ok(diesel::update(h::table.find(id)).set(h::head_name.eq("手工改名")).execute(c)?))
        })
        .await
        .unwrap()
        .unwrap();
    }
    let (page, kept) = kept_read(&app, summary, &w.sec_a, false).await;
    assert!(!kept);
    assert_eq!(of(&page, &w.household_a2).unwrap()["head_name"], "手工改名");

    // The worker's grid given to another: the worker's next page is empty.
    kept_read(&app, full, &w.w_a1, false).await;
    assert!(kept_read(&app, full, &w.w_a1, false).await.1);
    other.assign(&w.sec_a, &w.grid_a1, &[(&w.user_w_a2, true)]).await;
    let (page, kept) = kept_read(&app, full, &w.w_a1, false).await;
    assert!(!kept);
    assert_eq!(page["items"], json!([]), "a grid no longer assigned");

    // The community's timezone (its "today") read anew.
    kept_read(&app, summary, &w.sec_a, false).await;
    assert!(kept_read(&app, summary, &w.sec_a, false).await.1);
    let res = other
        .patch(&format!("/api/v1/communities/{}", w.community_a), &w.admin, json!({"timezone": "Asia/Urumqi"}), None)
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert!(!kept_read(&app, summary, &w.sec_a, false).await.1, "a community change");
    // The caller's account changed (its version): read anew.
    assert!(kept_read(&app, summary, &w.sec_a, false).await.1);
    let sec = app.state.db.read(|c| Ok(gridlight::store::users::find_by_username(c, "sec-a")?)).await.unwrap().unwrap();
    let res =
        other.patch(&format!("/api/v1/users/{}", sec.id), &w.admin, json!({"display_name": "秘书甲"}), None).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert!(!kept_read(&app, summary, &w.sec_a, false).await.1, "an account change");

    // An administrator's pages (every community) are read each time, and right.
    for _ in 0..3 {
        let (page, kept) = kept_read(&app, summary, &w.admin, true).await;
        assert!(!kept);
        assert_eq!(page["items"].as_array().unwrap().len(), 3);
    }
}

/// Marks every kept suggestion stale, so that pages work them all out from the members.
async fn mark_all_stale(app: &TestApp) {
    use diesel::prelude::*;
    use gridlight::db::schema::household_suggestions as k;
    let db = app.state.db.clone();
    let never = chrono::NaiveDate::from_ymd_opt(1, 1, 1).unwrap();
    actix_web::web::block(move || {
        db.write_blocking(|c| Ok(diesel::update(k::table).set(k::valid_until.eq(never)).execute(c)?))
    })
    .await
    .unwrap()
    .unwrap();
    app.state.pages.clear();
}

/// Member edits racing the background work (on PostgreSQL truly at once, on separate
/// connections): whatever the interleaving, once the work has caught up the kept suggestions
/// are exactly what the members say — a refresh that read the members before an edit committed
/// never leaves its older answer standing.
async fn kept_suggestions_survive_concurrent_changes(app: TestApp) {
    let w = app.world().await;
    let mut members = Vec::new();
    for i in 0..6 {
        let h = app.create_household(&w.w_a1, &w.grid_a1, &format!("住户{i}")).await;
        let body = json!({"name": format!("成员{i}"), "gender": "female", "relation": "head", "birth_date": format!("1950-0{}-15", i + 1)});
        members.push(app.create_member(&w.w_a1, &h, body).await);
    }
    refresh_suggestions(&app).await;
    for round in 0..12 {
        let grade = round % 4 + 1;
        let paths: Vec<String> = members.iter().map(|m| format!("/api/v1/members/{m}")).collect();
        let edits = futures_util::future::join_all(
            paths.iter().map(|p| app.patch(p, &w.sec_a, json!({"disability_grade": grade}), None)),
        );
        let refreshes = futures_util::future::join_all((0..3).map(|_| refresh_suggestions(&app)));
        let (edited, _) = futures_util::join!(edits, refreshes);
        assert!(edited.iter().all(|r| r.status == 200), "round {round}");
    }
    refresh_suggestions(&app).await;
    let kept = community_page(&app, &w.sec_a).await;
    let today = chrono::Utc::now().date_naive();
    assert!(kept_rows(&app).await.values().all(|(until, _)| *until > today), "all kept");
    mark_all_stale(&app).await;
    assert_eq!(community_page(&app, &w.sec_a).await, kept, "kept answers are the members' answers");
    assert!(kept.iter().filter(|h| reasons_of(h).contains(&"moderate_disability".to_owned())).count() >= 6);
}

async fn removal_is_soft(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/households/{}", w.household_a1);
    app.delete_as(&path, &w.sec_a).await.assert_problem(422);
    app.delete_as(&format!("{path}?reason=eloped"), &w.sec_a).await.assert_problem(422);
    app.delete_as(&format!("{path}?reason=deceased"), &w.w_a1).await.assert_problem(403);
    let res = app.delete_as(&format!("{path}?reason=deceased&note=%E7%97%85%E6%95%85"), &w.sec_a).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["removed_reason"], "deceased");
    assert_eq!(res.json()["removed_note"], "病故");
    let list = app.get_as("/api/v1/households", &w.sec_a).await.json();
    assert!(!list.to_string().contains(&w.household_a1));
    assert_eq!(app.get_as(&path, &w.sec_a).await.status, 200);
    app.get_as(&path, &w.w_a1).await.assert_problem(404);
    // A resident who moved out keeps the right to what is still held about them: the audited
    // reveal and the record copy answer the secretary (and only her) after the removal.
    for read in ["pii", "record"] {
        let url = format!("{path}/{read}?reason=%E5%B1%85%E6%B0%91%E7%94%B3%E8%AF%B7");
        let res = app.get_as(&url, &w.sec_a).await;
        assert_eq!(res.status, 200, "{read}");
        app.get_as(&url, &w.w_a1).await.assert_problem(404);
    }
    let record = app.get_as(&format!("{path}/record?reason=x"), &w.sec_a).await.json();
    assert_eq!(record["household"]["removed_reason"], "deceased");
    // A removed household takes no more changes; removing again is harmless.
    app.patch(&path, &w.sec_a, json!({"notes": "x"}), None).await.assert_problem(409);
    assert_eq!(app.delete_as(&format!("{path}?reason=deceased"), &w.sec_a).await.status, 200);
}

async fn mutations_are_audited(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/households/{}", w.household_a1);
    app.patch(&path, &w.w_a1, json!({"notes": "n"}), None).await;
    app.patch(&format!("/api/v1/members/{}", w.member_a1), &w.w_a1, json!({"low_income": true}), None).await;
    let events = app.get_as(&format!("/api/v1/audit-events?entity_id={}", w.household_a1), &w.sec_a).await.json();
    let actions: Vec<&str> =
        events["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["household.updated", "household.created"]);
    let e = &events["items"][0];
    assert_eq!(e["actor_id"], w.user_w_a1.as_str());
    assert_eq!(e["summary"]["fields"], json!(["notes"]));
    assert!(e["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    let all = app.get_as("/api/v1/audit-events?limit=500", &w.admin).await.json();
    let actions: Vec<&str> = all["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for expected in [
        "community.created",
        "grid.created",
        "grid.workers_replaced",
        "household.created",
        "member.created",
        "member.updated",
        "household.updated",
        "user.created",
    ] {
        assert!(actions.contains(&expected), "{expected} missing from {actions:?}");
    }
    // Filters: by actor and by time.
    let by_actor = app.get_as(&format!("/api/v1/audit-events?actor_id={}", w.user_w_a1), &w.admin).await.json();
    assert!(by_actor["items"].as_array().unwrap().iter().all(|e| e["actor_id"] == w.user_w_a1.as_str()));
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let none = app.get_as(&format!("/api/v1/audit-events?from={later}"), &w.admin).await.json();
    assert!(none["items"].as_array().unwrap().is_empty());
}

/// A page of one grid reads that grid's index in id order (its first 51 entries), not the
/// community's index with the grid as a filter (which reads the community to find the grid's
/// households); the community bound still applies: another community's page of the grid is
/// empty.
#[actix_web::test]
async fn sqlite_grid_page_reads_the_grid_index() {
    use diesel::{Connection, RunQueryDsl};
    use gridlight::store::households::{self, ListFilter};
    use std::sync::{Arc, Mutex};

    let app = TestApp::new(gridlight::db::Backend::Sqlite).await;
    let w = app.world().await;
    let db = app.state.db.clone();
    let (community, other, grid) = (w.community_a.clone(), w.community_b.clone(), w.grid_a1.clone());
    let (plan, mine, foreign) = actix_web::web::block(move || {
        db.read_blocking(|conn| {
            let filter = |c: &str| ListFilter {
                community_id: Some(c.to_owned()),
                grid_ids: Some(vec![grid.clone()]),
                ..Default::default()
            };
            let seen = Arc::new(Mutex::new(Vec::<String>::new()));
            let sink = seen.clone();
            conn.set_instrumentation(move |event: diesel::connection::InstrumentationEvent<'_>| {
                if let diesel::connection::InstrumentationEvent::StartQuery { query, .. } = event {
                    sink.lock().unwrap().push(query.to_string());
                }
            });
            let mine = households::list(conn, &filter(&community), None, 51)?;
            conn.set_instrumentation(|_: diesel::connection::InstrumentationEvent<'_>| {});
            let foreign = households::list(conn, &filter(&other), None, 51)?;
            let statements = seen.lock().unwrap().clone();
            let sql = statements.iter().find(|s| s.contains("household_suggestions")).expect("the list statement");
            let sql = sql.split(" -- binds:").next().unwrap_or_default();
            let plan: Vec<PlanStep> = diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}")).load(conn)?;
            Ok((plan.into_iter().map(|p| p.detail).collect::<Vec<_>>(), mine.len(), foreign.len()))
        })
    })
    .await
    .unwrap()
    .unwrap();
    assert!(plan.iter().any(|d| d.contains("households_grid_idx")), "{plan:#?}");
    assert!(mine >= 1, "the grid's households are listed");
    assert_eq!(foreign, 0, "another community's page of the grid is empty");
}
