//! The scope matrix: five callers × every endpoint that takes an id, and what lists reveal.

use actix_web::test::TestRequest;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::world::World;
use crate::support::{TestApp, TestResponse};

on_both_backends!(every_endpoint_with_an_id, lists_never_leak);

pub(crate) async fn send(app: &TestApp, method: &str, path: &str, token: &str, body: &Value) -> TestResponse {
    let req = match method {
        "GET" => TestRequest::get(),
        "POST" => TestRequest::post().set_json(body),
        "PATCH" => TestRequest::patch().set_json(body),
        "PUT" => TestRequest::put().set_json(body),
        "DELETE" => TestRequest::delete(),
        other => panic!("{other}"),
    };
    app.call(req.uri(path).insert_header(("authorization", format!("Bearer {token}")))).await
}

/// One row of a scope matrix: a request and the status each caller gets.
pub(crate) type Row<const N: usize> = (&'static str, String, Value, [u16; N]);

/// Sends every request of a matrix as every caller: each gets its status, and a refusal is
/// problem+json that says nothing about the resource (the world's household head, grid code).
pub(crate) async fn check_matrix<const N: usize>(app: &TestApp, callers: &[(&str, &String); N], matrix: &[Row<N>]) {
    for (method, path, body, expected) in matrix {
        for ((who, token), want) in callers.iter().zip(expected) {
            let res = send(app, method, path, token, body).await;
            assert_eq!(res.status.as_u16(), *want, "{who} {method} {path}: {}", String::from_utf8_lossy(&res.body));
            if *want >= 400 {
                res.assert_problem(*want);
                let text = String::from_utf8_lossy(&res.body);
                assert!(!text.contains("张桂兰") && !text.contains("37010300100101"), "{who} {method} {path}: {text}");
            }
        }
    }
}

async fn every_endpoint_with_an_id(app: TestApp) {
    let w: World = app.world().await;
    let callers = [("admin", &w.admin), ("sec_a", &w.sec_a), ("sec_b", &w.sec_b), ("w_a1", &w.w_a1), ("w_a2", &w.w_a2)];
    let (a, a1, h, m) = (&w.community_a, &w.grid_a1, &w.household_a1, &w.member_a1);
    let member = json!({"name": "张小明", "gender": "male", "relation": "grandchild", "birth_date": "2015-05-05"});
    #[rustfmt::skip]
    let matrix: Vec<Row<5>> = vec![
        //                                                                        admin sec_a sec_b w_a1 w_a2
        ("GET", format!("/api/v1/communities/{a}"), json!(null),                   [200, 200, 404, 200, 200]),
        ("PATCH", format!("/api/v1/communities/{a}"), json!({"street": "七里山街道"}), [200, 403, 404, 403, 403]),
        ("GET", format!("/api/v1/communities/{a}/grids"), json!(null),             [200, 200, 404, 200, 200]),
        ("GET", format!("/api/v1/grids/{a1}"), json!(null),                        [200, 200, 404, 200, 404]),
        ("PATCH", format!("/api/v1/grids/{a1}"), json!({"description": "东片"}),    [200, 200, 404, 403, 404]),
        ("PUT", format!("/api/v1/grids/{a1}/workers"),
            json!({"workers": [{"user_id": w.user_w_a1, "primary": true}]}),       [200, 200, 404, 403, 404]),
        ("GET", format!("/api/v1/households/{h}"), json!(null),                    [200, 200, 404, 200, 404]),
        ("PATCH", format!("/api/v1/households/{h}"), json!({"notes": "已走访"}),    [200, 200, 404, 200, 404]),
        ("GET", format!("/api/v1/households/{h}/members"), json!(null),            [200, 200, 404, 200, 404]),
        ("POST", format!("/api/v1/households/{h}/members"), member,                [201, 201, 404, 201, 404]),
        ("GET", format!("/api/v1/members/{m}"), json!(null),                       [200, 200, 404, 200, 404]),
        ("PATCH", format!("/api/v1/members/{m}"), json!({"chronic_illness": true}), [200, 200, 404, 200, 404]),
        ("GET", format!("/api/v1/members/{m}/pii?reason=home%20visit"), json!(null), [403, 200, 404, 200, 404]),
        ("GET", format!("/api/v1/users/{}", w.user_w_a1), json!(null),             [200, 200, 404, 200, 404]),
    ];
    check_matrix(&app, &callers, &matrix).await;
    // Refused writes changed nothing: only the three allowed PATCHes moved the household.
    let hh = app.get_as(&format!("/api/v1/households/{h}"), &w.admin).await.json();
    assert_eq!(hh["version"], 4);
    assert_eq!(hh["member_count"], 4);
    let grid = app.get_as(&format!("/api/v1/grids/{a1}"), &w.admin).await.json();
    assert_eq!(grid["version"], 6);

    // Removing: workers never, secretaries of other communities see nothing.
    let h2 = &w.household_a2;
    let path = format!("/api/v1/households/{h2}?reason=moved_out");
    send(&app, "DELETE", &path, &w.sec_b, &json!(null)).await.assert_problem(404);
    send(&app, "DELETE", &path, &w.w_a1, &json!(null)).await.assert_problem(404);
    send(&app, "DELETE", &path, &w.w_a2, &json!(null)).await.assert_problem(403);
    let m2 = format!("/api/v1/members/{}", w.member_a2);
    send(&app, "DELETE", &m2, &w.sec_b, &json!(null)).await.assert_problem(404);
    send(&app, "DELETE", &m2, &w.w_a1, &json!(null)).await.assert_problem(404);
    assert_eq!(send(&app, "DELETE", &m2, &w.w_a2, &json!(null)).await.status, 204);
    assert_eq!(send(&app, "DELETE", &path, &w.sec_a, &json!(null)).await.status, 200);
    // Removed: gone for its worker, still readable by id for the secretary.
    app.get_as(&format!("/api/v1/households/{h2}"), &w.w_a2).await.assert_problem(404);
    let removed = app.get_as(&format!("/api/v1/households/{h2}"), &w.sec_a).await.json();
    assert_eq!(removed["removed_reason"], "moved_out");
    app.get_as(&format!("/api/v1/households/{h2}"), &w.sec_b).await.assert_problem(404);
}

fn ids(v: &Value) -> Vec<String> {
    let mut out: Vec<String> =
        v["items"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_owned()).collect();
    out.sort();
    out
}

fn sorted(mut v: Vec<&String>) -> Vec<String> {
    v.sort();
    v.into_iter().cloned().collect()
}

async fn lists_never_leak(app: TestApp) {
    let w = app.world().await;
    let list = |token: &String, query: &str| {
        let path = format!("/api/v1/households{query}");
        let token = token.clone();
        let app = &app;
        async move { app.get_as(&path, &token).await.json() }
    };
    let (h1, h2, hb) = (&w.household_a1, &w.household_a2, &w.household_b1);
    assert_eq!(ids(&list(&w.admin, "").await), sorted(vec![h1, h2, hb]));
    assert_eq!(ids(&list(&w.sec_a, "").await), sorted(vec![h1, h2]));
    assert_eq!(ids(&list(&w.sec_b, "").await), sorted(vec![hb]));
    assert_eq!(ids(&list(&w.w_a1, "").await), sorted(vec![h1]));
    assert_eq!(ids(&list(&w.w_a2, "").await), sorted(vec![h2]));
    // Filters can only narrow the caller's scope, never widen it.
    assert!(ids(&list(&w.sec_a, &format!("?community_id={}", w.community_b)).await).is_empty());
    assert!(ids(&list(&w.sec_a, &format!("?grid_id={}", w.grid_b1)).await).is_empty());
    assert!(ids(&list(&w.w_a1, &format!("?grid_id={}", w.grid_a2)).await).is_empty());
    assert_eq!(ids(&list(&w.admin, &format!("?community_id={}", w.community_b)).await), vec![hb.clone()]);

    // Grids: a worker sees the grids assigned to them.
    let grids = app.get_as(&format!("/api/v1/communities/{}/grids", w.community_a), &w.w_a1).await.json();
    assert_eq!(ids(&grids), vec![w.grid_a1.clone()]);
    let grids = app.get_as(&format!("/api/v1/communities/{}/grids", w.community_a), &w.sec_a).await.json();
    assert_eq!(ids(&grids).len(), 2);
    // Communities: everyone but administrators sees their own.
    let cs = app.get_as("/api/v1/communities", &w.sec_b).await.json();
    assert_eq!(ids(&cs), vec![w.community_b.clone()]);
    assert_eq!(ids(&app.get_as("/api/v1/communities", &w.admin).await.json()).len(), 2);

    // The audit log: secretaries see their community's events only; workers none.
    let events = app.get_as("/api/v1/audit-events?limit=500", &w.sec_b).await.json();
    let items = events["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items.iter().all(|e| e["community_id"] == w.community_b.as_str()), "{events}");
    app.get_as("/api/v1/audit-events", &w.w_a1).await.assert_problem(403);
    let all = app.get_as("/api/v1/audit-events?limit=500", &w.admin).await.json();
    assert!(all["items"].as_array().unwrap().len() > items.len());
}
