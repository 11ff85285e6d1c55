//! Small builders for test data, written through the same code the API uses.

use actix_web::test::TestRequest;
use diesel::prelude::*;
use serde_json::{Value, json};

use gridlight::api::users::CreateUser;
use gridlight::db::schema::communities;
use gridlight::domain::Role;
use gridlight::ops::users::{Acting, create};

use super::{TestApp, TestResponse};

pub const PASSWORD: &str = "correct-horse-battery";

impl TestApp {
    /// A community (direct insert until the communities API exists).
    pub async fn community(&self, name: &str) -> String {
        let name = name.to_owned();
        self.state
            .db
            .write(move |conn| {
                let id = gridlight::store::new_id();
                let at = gridlight::store::now();
                let street = gridlight::store::streets::default_street(conn, "370103", "市中区", at)?;
                diesel::insert_into(communities::table)
                    .values((
                        communities::id.eq(&id),
                        communities::name.eq(&name),
                        communities::district.eq("市中区"),
                        communities::street.eq("七里山街道"),
                        communities::division_code.eq("370103"),
                        communities::street_id.eq(&street.id),
                        communities::created_at.eq(at),
                        communities::updated_at.eq(at),
                    ))
                    .execute(conn)?;
                gridlight::store::plans::create_defaults(conn, &id)?;
                Ok(id)
            })
            .await
            .expect("insert community")
    }

    /// An account with password [`PASSWORD`]; returns its id.
    pub async fn user(&self, username: &str, role: Role, community: Option<&str>) -> String {
        let input = CreateUser {
            username: username.to_owned(),
            password: PASSWORD.to_owned(),
            display_name: format!("User {username}"),
            role,
            community_id: community.map(str::to_owned),
            street_id: None,
            district_id: None,
            phone: Some("13800138000".to_owned()),
        };
        let account = input.checked().expect("valid test user");
        self.state.db.write(move |conn| create(conn, Acting::Operator, account)).await.expect("create test user").id
    }

    pub async fn login_as(&self, username: &str, password: &str) -> TestResponse {
        self.post("/api/v1/auth/login", None, json!({"username": username, "password": password})).await
    }

    /// Logs in with [`PASSWORD`]; returns the token response.
    pub async fn session(&self, username: &str) -> Value {
        let res = self.login_as(username, PASSWORD).await;
        assert_eq!(res.status, 200, "login of {username}: {}", String::from_utf8_lossy(&res.body));
        res.json()
    }

    /// Logs in with [`PASSWORD`]; returns the access token.
    pub async fn token(&self, username: &str) -> String {
        self.session(username).await["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn get_as(&self, path: &str, token: &str) -> TestResponse {
        self.call(TestRequest::get().uri(path).insert_header(("authorization", format!("Bearer {token}")))).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> TestResponse {
        let mut req = TestRequest::post().uri(path).set_json(body);
        if let Some(t) = token {
            req = req.insert_header(("authorization", format!("Bearer {t}")));
        }
        self.call(req).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> TestResponse {
        let req =
            TestRequest::put().uri(path).set_json(body).insert_header(("authorization", format!("Bearer {token}")));
        self.call(req).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value, if_match: Option<&str>) -> TestResponse {
        let mut req =
            TestRequest::patch().uri(path).set_json(body).insert_header(("authorization", format!("Bearer {token}")));
        if let Some(tag) = if_match {
            req = req.insert_header(("if-match", tag));
        }
        self.call(req).await
    }

    /// The audit actions recorded so far, oldest first.
    pub async fn audit_actions(&self) -> Vec<String> {
        use gridlight::db::schema::audit_events;
        self.state
            .db
            .read(|conn| {
                Ok(audit_events::table
                    .order((audit_events::at.asc(), audit_events::id.asc()))
                    .select(audit_events::action)
                    .load(conn)?)
            })
            .await
            .unwrap()
    }
}
