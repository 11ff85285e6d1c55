use serde_json::json;

use gridlight::domain::Role;

use crate::on_both_backends;
use crate::support::TestApp;

on_both_backends!(role_rules_on_create, visibility_and_lists, management_rules_on_patch, validation_of_new_accounts);

fn new_user(username: &str, role: &str, community: Option<&str>) -> serde_json::Value {
    json!({"username": username, "password": "a long passphrase", "display_name": "张伟", "role": role,
           "community_id": community, "phone": "0531-86012345"})
}

async fn role_rules_on_create(app: TestApp) {
    let a = app.community("建新社区").await;
    let b = app.community("舜华社区").await;
    app.user("admin", Role::Admin, None).await;
    app.user("sec-a", Role::Secretary, Some(&a)).await;
    app.user("worker-a", Role::GridWorker, Some(&a)).await;
    let admin = app.token("admin").await;
    let sec = app.token("sec-a").await;
    let worker = app.token("worker-a").await;

    // Admins create anyone.
    let res = app.post("/api/v1/users", Some(&admin), new_user("sec-b", "secretary", Some(&b))).await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.header("etag"), Some("\"1\""));
    let body = res.json();
    assert_eq!(body["role"], "secretary");
    assert_eq!(body["phone"], "0531-****2345");
    // A secretary creates grid workers of their own community (by default there)…
    let res = app.post("/api/v1/users", Some(&sec), new_user("worker-a2", "grid_worker", None)).await;
    assert_eq!(res.status, 201);
    assert_eq!(res.json()["community_id"], a.as_str());
    // …and nothing else.
    app.post("/api/v1/users", Some(&sec), new_user("sec-a2", "secretary", Some(&a))).await.assert_problem(403);
    app.post("/api/v1/users", Some(&sec), new_user("adm2", "admin", None)).await.assert_problem(403);
    app.post("/api/v1/users", Some(&sec), new_user("worker-b", "grid_worker", Some(&b))).await.assert_problem(403);
    // Workers create no accounts.
    app.post("/api/v1/users", Some(&worker), new_user("worker-x", "grid_worker", Some(&a))).await.assert_problem(403);
    // Taken usernames conflict.
    app.post("/api/v1/users", Some(&admin), new_user("sec-b", "secretary", Some(&b))).await.assert_problem(409);
    let actions = app.audit_actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "user.created").count(), 5);
}

async fn visibility_and_lists(app: TestApp) {
    let a = app.community("建新社区").await;
    let b = app.community("舜华社区").await;
    app.user("admin", Role::Admin, None).await;
    let sec_a = app.user("sec-a", Role::Secretary, Some(&a)).await;
    let sec_b = app.user("sec-b", Role::Secretary, Some(&b)).await;
    let w_a = app.user("worker-a", Role::GridWorker, Some(&a)).await;
    let w_a2 = app.user("worker-a2", Role::GridWorker, Some(&a)).await;
    let w_b = app.user("worker-b", Role::GridWorker, Some(&b)).await;
    let admin = app.token("admin").await;
    let sec = app.token("sec-a").await;
    let worker = app.token("worker-a").await;

    assert_eq!(app.get_as(&format!("/api/v1/users/{w_b}"), &admin).await.status, 200);
    assert_eq!(app.get_as(&format!("/api/v1/users/{w_a}"), &sec).await.status, 200);
    app.get_as(&format!("/api/v1/users/{w_b}"), &sec).await.assert_problem(404);
    app.get_as(&format!("/api/v1/users/{sec_b}"), &sec).await.assert_problem(404);
    assert_eq!(app.get_as(&format!("/api/v1/users/{w_a}"), &worker).await.status, 200);
    app.get_as(&format!("/api/v1/users/{w_a2}"), &worker).await.assert_problem(404);
    app.get_as(&format!("/api/v1/users/{sec_a}"), &worker).await.assert_problem(404);
    app.get_as("/api/v1/users/no-such-id", &admin).await.assert_problem(404);

    let ids = |v: serde_json::Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_owned()).collect()
    };
    let all = app.get_as("/api/v1/users", &admin).await.json();
    assert_eq!(ids(all).len(), 6);
    let mine = ids(app.get_as("/api/v1/users", &sec).await.json());
    assert_eq!(mine, vec![sec_a.clone(), w_a.clone(), w_a2.clone()]);
    // Asking for another community's accounts gives nothing, not theirs.
    let theirs = app.get_as(&format!("/api/v1/users?community_id={b}"), &sec).await.json();
    assert!(ids(theirs).is_empty());
    assert_eq!(ids(app.get_as("/api/v1/users", &worker).await.json()), vec![w_a.clone()]);
    let workers = ids(app.get_as("/api/v1/users?role=grid_worker", &sec).await.json());
    assert_eq!(workers, vec![w_a.clone(), w_a2.clone()]);

    // Paging through all six, two at a time, visits each once, in order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/users?limit=2&cursor={c}"),
            None => "/api/v1/users?limit=2".to_owned(),
        };
        let page = app.get_as(&path, &admin).await.json();
        seen.extend(ids(page.clone()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
    app.get_as("/api/v1/users?limit=501", &admin).await.assert_problem(422);
    app.get_as("/api/v1/users?limit=0", &admin).await.assert_problem(422);
    app.get_as("/api/v1/users?limit=99999999999999999999", &admin).await.assert_problem(400);
    app.get_as("/api/v1/users?cursor=garbage", &admin).await.assert_problem(422);
    app.get_as("/api/v1/users?role=king", &admin).await.assert_problem(400);
}

async fn management_rules_on_patch(app: TestApp) {
    let a = app.community("建新社区").await;
    let b = app.community("舜华社区").await;
    let admin_id = app.user("admin", Role::Admin, None).await;
    app.user("sec-a", Role::Secretary, Some(&a)).await;
    let sec_a2 = app.user("sec-a2", Role::Secretary, Some(&a)).await;
    let w_a = app.user("worker-a", Role::GridWorker, Some(&a)).await;
    let w_b = app.user("worker-b", Role::GridWorker, Some(&b)).await;
    let admin = app.token("admin").await;
    let sec = app.token("sec-a").await;
    let worker = app.token("worker-a").await;
    let url = |id: &str| format!("/api/v1/users/{id}");

    // A secretary manages their community's workers…
    let res = app.patch(&url(&w_a), &sec, json!({"display_name": "李娜", "phone": null}), Some("\"1\"")).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.header("etag"), Some("\"2\""));
    assert_eq!(res.json()["phone"], serde_json::Value::Null);
    // …with optimistic concurrency…
    app.patch(&url(&w_a), &sec, json!({"display_name": "王强"}), Some("\"1\"")).await.assert_problem(412);
    // …but not another secretary, nor another community's worker (not even visible).
    app.patch(&url(&sec_a2), &sec, json!({"active": false}), None).await.assert_problem(403);
    app.patch(&url(&w_b), &sec, json!({"active": false}), None).await.assert_problem(404);
    // Nobody raises their own role: there is no such field to send.
    let res = app.patch(&url(&w_a), &worker, json!({"role": "admin"}), None).await;
    assert_eq!(res.assert_problem(422)["errors"][0]["field"], "role");
    // A worker edits their own name and phone, not their activation or password.
    assert_eq!(app.patch(&url(&w_a), &worker, json!({"display_name": "小李"}), None).await.status, 200);
    app.patch(&url(&w_a), &worker, json!({"active": false}), None).await.assert_problem(422);
    app.patch(&url(&w_a), &worker, json!({"password": "a long passphrase"}), None).await.assert_problem(403);
    app.patch(&url(&admin_id), &worker, json!({"display_name": "x"}), None).await.assert_problem(404);
    // Admins manage anyone, and reset passwords.
    let res = app.patch(&url(&w_b), &admin, json!({"password": "a reset passphrase"}), None).await;
    assert_eq!(res.status, 200);
    assert_eq!(app.login_as("worker-b", "a reset passphrase").await.status, 200);
    app.patch(&url(&w_a), &admin, json!({"phone": "12345"}), None).await.assert_problem(422);
}

async fn validation_of_new_accounts(app: TestApp) {
    let a = app.community("建新社区").await;
    app.user("admin", Role::Admin, None).await;
    let admin = app.token("admin").await;
    let res = app
        .post(
            "/api/v1/users",
            Some(&admin),
            json!({"username": "x", "password": "short", "display_name": "", "role": "secretary", "phone": "123"}),
        )
        .await;
    let body = res.assert_problem(422);
    let mut fields: Vec<&str> =
        body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    fields.sort();
    assert_eq!(fields, vec!["community_id", "display_name", "password", "phone", "username"]);
    let res = app.post("/api/v1/users", Some(&admin), new_user("ok-name", "admin", Some(&a))).await;
    assert_eq!(res.assert_problem(422)["errors"][0]["field"], "community_id");
    let res = app.post("/api/v1/users", Some(&admin), new_user("ok-name", "grid_worker", Some("missing"))).await;
    assert_eq!(res.assert_problem(422)["errors"][0]["code"], "unknown");
    let res = app.post("/api/v1/users", Some(&admin), new_user("ok-name", "overlord", None)).await;
    assert_eq!(res.assert_problem(422)["errors"][0]["field"], "role");
    // Nothing was written by any of these.
    let list = app.get_as("/api/v1/users", &admin).await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}
