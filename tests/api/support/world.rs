//! A small world built through the API: two communities, three grids, a secretary per
//! community, a worker per grid, a household per grid with one member.

use serde_json::{Value, json};

use gridlight::domain::Role;

use super::TestApp;

pub struct World {
    pub admin: String,
    pub sec_a: String,
    pub sec_b: String,
    pub w_a1: String,
    pub w_a2: String,
    pub community_a: String,
    pub community_b: String,
    pub grid_a1: String,
    pub grid_a2: String,
    pub grid_b1: String,
    pub household_a1: String,
    pub household_a2: String,
    pub household_b1: String,
    pub member_a1: String,
    pub member_a2: String,
    pub user_w_a1: String,
    pub user_w_a2: String,
}

/// A valid fictional ID number for a birth date and sequence (odd = male).
pub fn id_number(birth: &str, seq: u32) -> String {
    let first17 = format!("370103{}{:03}", birth.replace('-', ""), seq);
    format!("{first17}{}", gridlight::domain::check_char(&first17))
}

#[track_caller]
pub fn ok(res: &super::TestResponse) -> Value {
    assert!(res.status.is_success(), "{}: {}", res.status, String::from_utf8_lossy(&res.body));
    res.json()
}

impl TestApp {
    pub async fn create_community(&self, token: &str, name: &str, division: &str) -> String {
        let res = self
            .post(
                "/api/v1/communities",
                Some(token),
                json!({"name": name, "district": "市中区", "street": "七里山街道", "division_code": division}),
            )
            .await;
        ok(&res)["id"].as_str().unwrap().to_owned()
    }

    pub async fn create_grid(&self, token: &str, community: &str, code: &str) -> String {
        let res = self
            .post(
                &format!("/api/v1/communities/{community}/grids"),
                Some(token),
                json!({"code": code, "name": format!("网格{code}"), "station": {"name": "网格驿站", "address": "1号楼"}}),
            )
            .await;
        ok(&res)["id"].as_str().unwrap().to_owned()
    }

    pub async fn assign(&self, token: &str, grid: &str, workers: &[(&str, bool)]) {
        let body: Vec<Value> = workers.iter().map(|(u, p)| json!({"user_id": u, "primary": p})).collect();
        let res = self.put(&format!("/api/v1/grids/{grid}/workers"), token, json!({"workers": body})).await;
        ok(&res);
    }

    pub async fn create_household(&self, token: &str, grid: &str, head: &str) -> String {
        let res = self
            .post(
                "/api/v1/households",
                Some(token),
                json!({"grid_id": grid, "address": {"building": "3号楼", "unit": "2单元", "room": "301"},
                       "head_name": head, "phone": "13912345678"}),
            )
            .await;
        ok(&res)["id"].as_str().unwrap().to_owned()
    }

    pub async fn create_member(&self, token: &str, household: &str, body: Value) -> String {
        let res = self.post(&format!("/api/v1/households/{household}/members"), Some(token), body).await;
        ok(&res)["id"].as_str().unwrap().to_owned()
    }

    pub async fn world(&self) -> World {
        self.user("admin", Role::Admin, None).await;
        let admin = self.token("admin").await;
        let community_a = self.create_community(&admin, "建新社区", "370103").await;
        let community_b = self.create_community(&admin, "舜华社区", "370102").await;
        self.user("sec-a", Role::Secretary, Some(&community_a)).await;
        self.user("sec-b", Role::Secretary, Some(&community_b)).await;
        let user_w_a1 = self.user("w-a1", Role::GridWorker, Some(&community_a)).await;
        let user_w_a2 = self.user("w-a2", Role::GridWorker, Some(&community_a)).await;
        let user_w_b1 = self.user("w-b1", Role::GridWorker, Some(&community_b)).await;
        let sec_a = self.token("sec-a").await;
        let sec_b = self.token("sec-b").await;
        let grid_a1 = self.create_grid(&sec_a, &community_a, "37010300100101").await;
        let grid_a2 = self.create_grid(&sec_a, &community_a, "37010300100102").await;
        let grid_b1 = self.create_grid(&sec_b, &community_b, "37010200200101").await;
        self.assign(&sec_a, &grid_a1, &[(&user_w_a1, true)]).await;
        self.assign(&sec_a, &grid_a2, &[(&user_w_a2, true)]).await;
        self.assign(&sec_b, &grid_b1, &[(&user_w_b1, true)]).await;
        let household_a1 = self.create_household(&sec_a, &grid_a1, "张桂兰").await;
        let household_a2 = self.create_household(&sec_a, &grid_a2, "李建国").await;
        let household_b1 = self.create_household(&sec_b, &grid_b1, "王秀英").await;
        let member = |name: &str, birth: &str, seq: u32| {
            json!({"name": name, "gender": if seq % 2 == 1 { "male" } else { "female" }, "birth_date": birth,
                   "id_number": id_number(birth, seq), "phone": "13800138000", "relation": "head"})
        };
        let member_a1 = self.create_member(&sec_a, &household_a1, member("张桂兰", "1941-03-02", 2)).await;
        let member_a2 = self.create_member(&sec_a, &household_a2, member("李建国", "1960-07-15", 1)).await;
        self.create_member(&sec_b, &household_b1, member("王秀英", "1950-01-20", 4)).await;
        World {
            w_a1: self.token("w-a1").await,
            w_a2: self.token("w-a2").await,
            admin,
            sec_a,
            sec_b,
            community_a,
            community_b,
            grid_a1,
            grid_a2,
            grid_b1,
            household_a1,
            household_a2,
            household_b1,
            member_a1,
            member_a2,
            user_w_a1,
            user_w_a2,
        }
    }

    pub async fn delete_as(&self, path: &str, token: &str) -> super::TestResponse {
        self.call(
            actix_web::test::TestRequest::delete()
                .uri(path)
                .insert_header(("authorization", format!("Bearer {token}"))),
        )
        .await
    }
}
