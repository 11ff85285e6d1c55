use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::TestApp;
use crate::support::world::{id_number, ok};

on_both_backends!(
    idempotent_creation_by_client_id,
    validation_of_households_and_members,
    masking_everywhere_and_audited_reveal,
    stale_if_match_is_412_and_no_update_is_lost,
    filters_search_and_sync_paging,
    suggestion_explains_but_never_applies,
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
