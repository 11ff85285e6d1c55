//! A small world built the way an operator and a secretary would: the first administrator with
//! `gridlight user create`, everything else through the API of a running server.

use serde_json::{Value, json};

use crate::http::Client;
use crate::server::Store;

pub const PASSWORD: &str = "reliability-passphrase";

pub struct World {
    pub admin: String,
    pub secretary: String,
    /// Tokens of the grid's workers (the first is its primary worker).
    pub workers: Vec<String>,
    pub community: String,
    pub grid: String,
    pub households: Vec<String>,
}

pub fn login(client: &Client, username: &str) -> String {
    let res = client
        .post("/api/v1/auth/login", None, &json!({"username": username, "password": PASSWORD}))
        .expect("login request");
    res.ok(&format!("login of {username}"))["access_token"].as_str().expect("access token").to_owned()
}

fn create(client: &Client, token: &str, path: &str, body: Value) -> String {
    let res = client.post(path, Some(token), &body).unwrap_or_else(|e| panic!("POST {path}: {e}"));
    res.ok(&format!("POST {path}"))["id"].as_str().expect("id").to_owned()
}

/// One community with one grid, a secretary, `workers` grid workers and `households`
/// households (green, each with its default open task).
pub fn build(store: &Store, client: &Client, workers: usize, households: usize) -> World {
    store.cli(
        &["user", "create", "--username", "admin", "--role", "admin", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    let admin = login(client, "admin");
    let community = create(
        client,
        &admin,
        "/api/v1/communities",
        json!({"name": "建新社区", "district": "市中区", "street": "七里山街道", "division_code": "370103"}),
    );
    let user = |username: &str, role: &str| {
        create(
            client,
            &admin,
            "/api/v1/users",
            json!({"username": username, "password": PASSWORD, "display_name": username, "role": role,
                   "community_id": community}),
        )
    };
    user("secretary", "secretary");
    let worker_ids: Vec<String> = (0..workers).map(|i| user(&format!("worker-{i}"), "grid_worker")).collect();
    let secretary = login(client, "secretary");
    let grid = create(
        client,
        &secretary,
        &format!("/api/v1/communities/{community}/grids"),
        json!({"code": "37010300100101", "name": "第一网格"}),
    );
    let assignments: Vec<Value> =
        worker_ids.iter().enumerate().map(|(i, id)| json!({"user_id": id, "primary": i == 0})).collect();
    client
        .put(&format!("/api/v1/grids/{grid}/workers"), &secretary, &json!({"workers": assignments}))
        .expect("assign workers")
        .ok("assign workers");
    let households = (0..households)
        .map(|i| {
            create(
                client,
                &secretary,
                "/api/v1/households",
                json!({"grid_id": grid, "address": {"building": format!("{}号楼", i / 10 + 1), "unit": "1单元",
                       "room": format!("{}", 101 + i % 10)}, "head_name": format!("住户{i}")}),
            )
        })
        .collect();
    let workers = (0..workers).map(|i| login(client, &format!("worker-{i}"))).collect();
    World { admin, secretary, workers, community, grid, households }
}
