use serde_json::json;

use gridlight::domain::Role;

use crate::on_both_backends;
use crate::support::TestApp;
use crate::support::world::ok;

on_both_backends!(communities_rules_and_validation, grids_codes_and_workers);

async fn communities_rules_and_validation(app: TestApp) {
    app.user("admin", Role::Admin, None).await;
    let admin = app.token("admin").await;
    let res = app
        .post(
            "/api/v1/communities",
            Some(&admin),
            json!({"name": "建新社区", "district": "市中区", "street": "七里山街道", "division_code": "370103"}),
        )
        .await;
    assert_eq!(res.status, 201);
    let c = res.json();
    assert_eq!(c["timezone"], "Asia/Shanghai");
    let id = c["id"].as_str().unwrap().to_owned();
    let dup = json!({"name": "建新社区", "district": "市中区", "street": "七里山街道", "division_code": "370103"});
    app.post("/api/v1/communities", Some(&admin), dup).await.assert_problem(409);
    let bad =
        json!({"name": "", "district": "市中区", "street": "x", "division_code": "99", "timezone": "Mars/Olympus"});
    let body = app.post("/api/v1/communities", Some(&admin), bad).await.assert_problem(422);
    let mut fields: Vec<&str> =
        body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    fields.sort();
    assert_eq!(fields, vec!["division_code", "name", "timezone"]);

    app.user("sec", Role::Secretary, Some(&id)).await;
    let sec = app.token("sec").await;
    let again = json!({"name": "别的", "district": "市中区", "street": "x", "division_code": "370103"});
    app.post("/api/v1/communities", Some(&sec), again).await.assert_problem(403);
    let path = format!("/api/v1/communities/{id}");
    let res = app.patch(&path, &admin, json!({"timezone": "Asia/Urumqi"}), Some("\"1\"")).await;
    assert_eq!(ok(&res)["timezone"], "Asia/Urumqi");
    app.patch(&path, &admin, json!({"name": "x"}), Some("\"1\"")).await.assert_problem(412);
    // The division code is not changeable: grid codes derive from it.
    app.patch(&path, &admin, json!({"division_code": "370102"}), None).await.assert_problem(422);
}

async fn grids_codes_and_workers(app: TestApp) {
    let w = app.world().await;
    let grids = format!("/api/v1/communities/{}/grids", w.community_a);
    // CJ/T 349: 14 digits starting with the community's division code, sequence not 00.
    for (code, err) in
        [("37010200100103", "division_mismatch"), ("3701030010010", "length"), ("37010300100100", "zero_sequence")]
    {
        let res = app.post(&grids, Some(&w.sec_a), json!({"code": code, "name": "x"})).await;
        let body = res.assert_problem(422);
        assert_eq!(body["errors"][0]["field"], "code", "{code}");
        assert_eq!(body["errors"][0]["code"], err, "{code}: {body}");
    }
    app.post(&grids, Some(&w.sec_a), json!({"code": "37010300100101", "name": "重复"})).await.assert_problem(409);
    app.post(&grids, Some(&w.w_a1), json!({"code": "37010300100109", "name": "x"})).await.assert_problem(403);
    let res = app
        .post(&grids, Some(&w.sec_a), json!({"code": "37010300100103", "name": "第三网格", "description": "南片"}))
        .await;
    assert_eq!(res.status, 201);
    let grid = res.json();
    assert_eq!(grid["station"], serde_json::Value::Null);
    let gid = grid["id"].as_str().unwrap().to_owned();

    let workers = format!("/api/v1/grids/{gid}/workers");
    let two =
        json!({"workers": [{"user_id": w.user_w_a1, "primary": true}, {"user_id": w.user_w_a2, "primary": true}]});
    assert_eq!(app.put(&workers, &w.sec_a, two).await.assert_problem(422)["errors"][0]["code"], "two_primaries");
    let foreign = app.get_as("/api/v1/users?role=grid_worker", &w.admin).await.json();
    let b_worker = foreign["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["community_id"] == w.community_b.as_str())
        .unwrap()["id"]
        .clone();
    let res = app.put(&workers, &w.sec_a, json!({"workers": [{"user_id": b_worker}]})).await;
    assert_eq!(res.assert_problem(422)["errors"][0]["code"], "unknown");
    let me = app.get_as("/api/v1/me", &w.sec_a).await.json();
    let res = app.put(&workers, &w.sec_a, json!({"workers": [{"user_id": me["id"]}]})).await;
    assert_eq!(res.assert_problem(422)["errors"][0]["code"], "not_a_grid_worker");
    let res = app
        .put(
            &workers,
            &w.sec_a,
            json!({"workers": [{"user_id": w.user_w_a1, "primary": true}, {"user_id": w.user_w_a2}]}),
        )
        .await;
    let body = ok(&res);
    assert_eq!(body["workers"].as_array().unwrap().len(), 2);
    assert_eq!(body["workers"][0]["user_id"], w.user_w_a1.as_str());
    assert_eq!(body["workers"][0]["primary"], true);
    // The new assignment shows at once in what the worker may see.
    assert_eq!(app.get_as(&format!("/api/v1/grids/{gid}"), &w.w_a2).await.status, 200);
    let res = app
        .patch(
            &format!("/api/v1/grids/{gid}"),
            &w.sec_a,
            json!({"station": {"name": "南片驿站"}, "description": null}),
            None,
        )
        .await;
    let body = ok(&res);
    assert_eq!(body["station"]["name"], "南片驿站");
    assert_eq!(body["description"], serde_json::Value::Null);
    // Unassigned again: gone from the worker's scope on the next request.
    ok(&app.put(&workers, &w.sec_a, json!({"workers": [{"user_id": w.user_w_a1, "primary": true}]})).await);
    app.get_as(&format!("/api/v1/grids/{gid}"), &w.w_a2).await.assert_problem(404);
}
