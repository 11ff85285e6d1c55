//! The review console (`/console/`): sign-in and its cookie, CSRF on every form, every page and
//! form for secretaries, the scope (another community's secretary gets 404), grid workers kept
//! to their to-do list, and the same operations, audit and errors as the API.

use actix_web::test::TestRequest;
use diesel::prelude::*;
use gridlight::db::schema::refresh_tokens;
use serde_json::json;

use crate::on_both_backends;
use crate::support::fixtures::PASSWORD;
use crate::support::world::{World, ok};
use crate::support::{TestApp, TestResponse};

on_both_backends!(
    console_sign_in_cookie_and_headers,
    console_login_shares_the_throttle,
    console_pages_for_a_secretary,
    console_pages_name_the_people_they_show,
    console_scope_is_the_community,
    console_workers_see_only_their_to_do_list,
    console_review_approves_and_rejects,
    console_forms_refuse_a_missing_or_forged_csrf_token,
    console_reveal_is_audited_like_the_api,
    console_tasks_reassign_and_cancel,
    console_tasks_say_when_there_are_more_and_narrow_by_grid,
    console_review_says_when_there_are_more,
    console_todo_says_when_there_are_more,
    console_direct_tag_change,
    console_session_ends_with_password_change_and_deactivation,
    console_bad_input_is_a_message_not_a_change,
    console_import_dry_run_and_commit,
    console_admin_sees_every_community,
    console_report_rolls_up_for_officers,
);

fn body(res: &TestResponse) -> String {
    String::from_utf8_lossy(&res.body).into_owned()
}

fn csrf_of(html: &str) -> String {
    let start = html.find(r#"name="csrf" value=""#).expect("a CSRF field") + r#"name="csrf" value=""#.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// The `name=value` of a `Set-Cookie` header of this name.
fn set_cookie(res: &TestResponse, name: &str) -> Option<String> {
    res.headers
        .get_all("set-cookie")
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// A browser's cookies and the CSRF token of the last page.
struct Browser<'a> {
    app: &'a TestApp,
    cookie: String,
    csrf: String,
}

impl<'a> Browser<'a> {
    /// Signs in through the form; panics unless it works.
    async fn sign_in(app: &'a TestApp, username: &str) -> Browser<'a> {
        let res = Self::try_sign_in(app, username, PASSWORD).await;
        assert_eq!(res.status, 303, "sign-in of {username}: {}", body(&res));
        let session = set_cookie(&res, "gl_session").expect("a session cookie");
        let cookie = session.split(';').next().unwrap().to_owned();
        let mut b = Browser { app, cookie, csrf: String::new() };
        for page in ["/console/review", "/console/todo", "/console/"] {
            let res = b.get(page).await;
            if res.status == 200 {
                b.csrf = csrf_of(&body(&res));
                break;
            }
        }
        assert!(!b.csrf.is_empty(), "no page for {username}");
        b
    }

    async fn try_sign_in(app: &TestApp, username: &str, password: &str) -> TestResponse {
        let page = app.get("/console/login").await;
        let pre = set_cookie(&page, "gl_pre").expect("a pre-session cookie");
        let pre = pre.split(';').next().unwrap().to_owned();
        let csrf = csrf_of(&body(&page));
        let req = TestRequest::post()
            .uri("/console/login")
            .insert_header(("cookie", pre))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(form(&[("csrf", &csrf), ("username", username), ("password", password)]));
        app.call(req).await
    }

    async fn get(&self, path: &str) -> TestResponse {
        self.app.call(TestRequest::get().uri(path).insert_header(("cookie", self.cookie.clone()))).await
    }

    /// Posts a form with this session's CSRF token.
    async fn post(&self, path: &str, pairs: &[(&str, &str)]) -> TestResponse {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(pairs);
        self.post_raw(path, form(&all)).await
    }

    async fn post_raw(&self, path: &str, payload: String) -> TestResponse {
        let req = TestRequest::post()
            .uri(path)
            .insert_header(("cookie", self.cookie.clone()))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(payload);
        self.app.call(req).await
    }
}

#[track_caller]
fn assert_page(res: &TestResponse, status: u16, contains: &str) {
    let text = body(res);
    assert_eq!(res.status.as_u16(), status, "{text}");
    assert!(res.header("content-type").is_some_and(|c| c.starts_with("text/html")), "{:?}", res.headers);
    assert!(text.contains(contains), "`{contains}` not on the page:\n{text}");
}

/// The session cookie `gl_session=token.cv.deadline.mac` with its idle deadline moved to
/// `secs` from now and signed again with the test server's secret.
fn with_deadline(cookie: &str, secs: i64) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let value = cookie.strip_prefix("gl_session=").unwrap();
    let mut parts: Vec<&str> = value.split('.').collect();
    let until = (chrono::Utc::now().timestamp() + secs).to_string();
    parts[2] = &until;
    let payload = parts[..3].join(".");
    let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(crate::support::TEST_JWT_SECRET).unwrap();
    m.update(format!("gridlight-console|session|{payload}").as_bytes());
    let mac = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("gl_session={payload}.{mac}")
}

fn location(res: &TestResponse) -> &str {
    res.header("location").unwrap_or_default()
}

async fn console_sign_in_cookie_and_headers(app: TestApp) {
    let w = app.world().await;
    let _ = w;
    let res = app.get("/console/").await;
    assert_eq!((res.status.as_u16(), location(&res)), (303, "/console/login"));
    let page = app.get("/console/login").await;
    assert_page(&page, 200, "登录");
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(!body(&page).contains("<script") && !body(&page).contains("style="));

    let wrong = Browser::try_sign_in(&app, "sec-a", "not-the-password").await;
    assert_page(&wrong, 401, "用户名或密码错误");
    assert!(set_cookie(&wrong, "gl_session").is_none());
    let unknown = Browser::try_sign_in(&app, "nobody", "not-the-password").await;
    assert_page(&unknown, 401, "用户名或密码错误");

    let res = Browser::try_sign_in(&app, "SEC-A", PASSWORD).await;
    assert_eq!((res.status.as_u16(), location(&res)), (303, "/console/"));
    let cookie = set_cookie(&res, "gl_session").unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/console"] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    assert!(app.audit_actions().await.contains(&"auth.login_succeeded".to_owned()));

    let b = Browser::sign_in(&app, "sec-a").await;
    let home = b.get("/console/").await;
    assert_page(&home, 200, "今日概览");
    assert!(set_cookie(&home, "gl_session").is_some(), "every page renews the idle deadline");
    // A tampered cookie is no session.
    let forged = Browser { app: &app, cookie: format!("{}x", b.cookie), csrf: b.csrf.clone() };
    assert_eq!(forged.get("/console/").await.status, 303);
    // Past its idle deadline (signed as the server signs it), the cookie is no session either.
    let idle = Browser { app: &app, cookie: with_deadline(&b.cookie, -1), csrf: b.csrf.clone() };
    assert_eq!(idle.get("/console/").await.status, 303);
    let fresh = Browser { app: &app, cookie: with_deadline(&b.cookie, 600), csrf: b.csrf.clone() };
    assert_eq!(fresh.get("/console/").await.status, 200, "the re-signed cookie is good: the test signs as the server");
    // Sign out: audited, and the cookie is dead even if the browser kept it.
    let out = b.post("/console/logout", &[]).await;
    assert_eq!((out.status.as_u16(), location(&out)), (303, "/console/login"));
    assert!(app.audit_actions().await.contains(&"auth.logout".to_owned()));
    let after = b.get("/console/review").await;
    assert_eq!((after.status.as_u16(), location(&after)), (303, "/console/login"));

    // Past the family's absolute expiry, a cookie within its idle deadline is no session.
    let c = Browser::sign_in(&app, "sec-a").await;
    assert_eq!(c.get("/console/").await.status, 200);
    app.state
        .db
        .write(|conn| {
            let past = chrono::Utc::now().naive_utc() - chrono::Duration::seconds(1);
            diesel::update(refresh_tokens::table).set(refresh_tokens::expires_at.eq(past)).execute(conn)?;
            Ok(())
        })
        .await
        .unwrap();
    let expired = Browser { app: &app, cookie: with_deadline(&c.cookie, 600), csrf: c.csrf.clone() };
    let res = expired.get("/console/").await;
    assert_eq!((res.status.as_u16(), location(&res)), (303, "/console/login"));
}

async fn console_login_shares_the_throttle(app: TestApp) {
    app.world().await;
    for _ in 0..5 {
        assert_eq!(Browser::try_sign_in(&app, "sec-a", "wrong-password").await.status, 401);
    }
    let locked = Browser::try_sign_in(&app, "sec-a", PASSWORD).await;
    assert_page(&locked, 429, "暂时锁定");
    assert!(locked.header("retry-after").is_some());
    // The same count as the API's login.
    app.login_as("sec-a", PASSWORD).await.assert_problem(429);
}

async fn console_pages_for_a_secretary(app: TestApp) {
    let w = app.world().await;
    let b = Browser::sign_in(&app, "sec-a").await;
    let home = b.get("/console/").await;
    assert_page(&home, 200, "<svg class=\"chart\"");
    assert!(
        body(&home).contains(r#"<a class="stat" href="/console/households?due=1">"#),
        "a reviewer's figures lead on"
    );
    assert_page(&b.get("/console/review").await, 200, "待审核");
    let list = b.get("/console/households").await;
    assert_page(&list, 200, "张桂兰");
    assert!(!body(&list).contains("王秀英"), "another community's household is listed");
    assert_page(&b.get("/console/households?tag=green&grid=&q=%E5%BC%A0&due=").await, 200, "张桂兰");
    assert_page(&b.get("/console/households?tag=red").await, 200, "没有符合条件的住户");
    let page = b.get(&format!("/console/households/{}", w.household_a1)).await;
    assert_page(&page, 200, "家庭成员");
    let text = body(&page);
    assert!(!text.contains("13800138000") && !text.contains("13912345678"), "personal data in clear");
    assert!(text.contains("●") || text.contains("绿灯"), "the tag is named beside its colour");
    assert_page(&b.get("/console/tasks").await, 200, "任务");
    assert_page(&b.get("/console/report?period=2026-Q4").await, 200, "网格排名");
    assert_page(&b.get("/console/report?period=2026-13").await, 422, "period-error");
    let csv = b.get("/console/report/download?period=2026&format=csv").await;
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    assert!(body(&csv).contains("level,rank,period"));
    let xlsx = b.get("/console/report/download?period=2026-11&format=xlsx").await;
    assert_eq!(xlsx.status, 200);
    assert!(xlsx.body.starts_with(b"PK"), "an xlsx is a zip");
    assert_page(&b.get("/console/import").await, 200, "上传并核对");
    let template = b.get("/console/import/template.xlsx").await;
    assert_eq!(template.status, 200);
    assert!(template.body.starts_with(b"PK"), "the template is a workbook");
    assert_page(&b.get("/console/no-such-page").await, 404, "页面不存在");
    let css = b.get("/console/static/console.css").await;
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
}

/// Who proposed, decided or is assigned is named by the account's display name, looked up for
/// the ids on the page: an administrator's decision in a community shows their name too.
async fn console_pages_name_the_people_they_show(app: TestApp) {
    let w = app.world().await;
    let sec = Browser::sign_in(&app, "sec-a").await;
    let change = propose(&app, &w, "red").await;
    let queue = body(&sec.get("/console/review").await);
    assert!(queue.contains(&change) && queue.contains("User w-a1"), "the proposer is named: {queue}");
    let admin = Browser::sign_in(&app, "admin").await;
    assert_eq!(admin.post(&format!("/console/review/{change}/approve"), &[]).await.status, 303);
    let page = body(&sec.get(&format!("/console/households/{}", w.household_a1)).await);
    assert!(page.contains("User w-a1") && page.contains("User admin"), "proposer and decider are named: {page}");
}

async fn console_scope_is_the_community(app: TestApp) {
    let w = app.world().await;
    let b = Browser::sign_in(&app, "sec-b").await;
    assert_page(&b.get(&format!("/console/households/{}", w.household_a1)).await, 404, "页面不存在");
    let reveal = b.post(&format!("/console/members/{}/reveal", w.member_a1), &[("reason", "核实")]).await;
    assert_page(&reveal, 404, "不在您的管辖范围");
    let tag = b
        .post(
            &format!("/console/households/{}/tag", w.household_a1),
            &[("to_tag", "yellow"), ("reasons", "low_income")],
        )
        .await;
    assert_eq!(tag.status, 404);
    let phone = b.post(&format!("/console/households/{}/reveal", w.household_a1), &[("reason", "核实")]).await;
    assert_eq!(phone.status, 404);
    let change = propose(&app, &w, "red").await;
    let approve = b.post(&format!("/console/review/{change}/approve"), &[]).await;
    assert_eq!(approve.status, 404);
    let task = first_task(&app, &w).await;
    let cancel = b.post(&format!("/console/tasks/{task}"), &[("action", "cancel"), ("cancel_reason", "住院")]).await;
    assert_eq!(cancel.status, 404);
    // Nothing happened.
    let actions = app.audit_actions().await;
    assert!(!actions.iter().any(|a| a.contains("pii_revealed") || a == "tag_change.approved" || a == "task.cancelled"));
    let queue = body(&b.get("/console/review").await);
    assert!(!queue.contains(&change), "another community's proposal is listed");
}

async fn console_workers_see_only_their_to_do_list(app: TestApp) {
    let w = app.world().await;
    let b = Browser::sign_in(&app, "w-a1").await;
    let home = b.get("/console/").await;
    assert_eq!((home.status.as_u16(), location(&home)), (303, "/console/todo"));
    let todo = b.get("/console/todo").await;
    assert_page(&todo, 200, "我的待办");
    assert!(body(&todo).contains("张桂兰"), "the worker's own task is listed");
    assert!(!body(&todo).contains("李建国"), "another worker's task is listed");
    for path in ["/console/review", "/console/households", "/console/tasks", "/console/report", "/console/import"] {
        assert_page(&b.get(path).await, 403, "没有这项操作的权限");
    }
    assert_eq!(b.get(&format!("/console/households/{}", w.household_a1)).await.status, 403);
    let change = propose(&app, &w, "red").await;
    assert_eq!(b.post(&format!("/console/review/{change}/approve"), &[]).await.status, 403);
    assert_eq!(b.post(&format!("/console/members/{}/reveal", w.member_a1), &[("reason", "x")]).await.status, 403);
}

/// A worker's proposal on household a1 (API); its id.
async fn propose(app: &TestApp, w: &World, to: &str) -> String {
    let res = app
        .post(
            &format!("/api/v1/households/{}/tag-changes", w.household_a1),
            Some(&w.w_a1),
            json!({"to_tag": to, "reasons": ["elderly_living_alone"], "note": "老人独居"}),
        )
        .await;
    ok(&res)["id"].as_str().unwrap().to_owned()
}

async fn first_task(app: &TestApp, w: &World) -> String {
    let page = ok(&app.get_as(&format!("/api/v1/tasks?household_id={}&status=open", w.household_a1), &w.sec_a).await);
    page["items"][0]["id"].as_str().expect("an open task").to_owned()
}

async fn tag_of(app: &TestApp, w: &World) -> String {
    ok(&app.get_as(&format!("/api/v1/households/{}", w.household_a1), &w.sec_a).await)["tag"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn console_review_approves_and_rejects(app: TestApp) {
    let w = app.world().await;
    let b = Browser::sign_in(&app, "sec-a").await;
    let change = propose(&app, &w, "red").await;
    let queue = b.get("/console/review").await;
    assert_page(&queue, 200, &change);
    assert!(body(&queue).contains("老人独居") && body(&queue).contains("独居老人"), "note and reasons are shown");
    // Rejecting needs a note: the message is beside the field and nothing changes.
    let res = b.post(&format!("/console/review/{change}/reject"), &[("note", "  ")]).await;
    assert_page(&res, 422, "必填");
    assert_eq!(tag_of(&app, &w).await, "green");
    let res = b.post(&format!("/console/review/{change}/approve"), &[("note", "已入户核实")]).await;
    assert_eq!((res.status.as_u16(), location(&res)), (303, "/console/review?done=approved"));
    assert_page(&b.get("/console/review?done=approved").await, 200, "已通过");
    assert_eq!(tag_of(&app, &w).await, "red");
    assert!(app.audit_actions().await.iter().any(|a| a.starts_with("tag_change.")));
    // The red plan's tasks are there, on the household's page too.
    let page = body(&b.get(&format!("/console/households/{}", w.household_a1)).await);
    assert!(page.contains("电话问候") && page.contains("入户走访"), "{page}");
    // Deciding twice: the API's conflict, as a readable message.
    let again = b.post(&format!("/console/review/{change}/reject"), &[("note", "重复")]).await;
    assert_page(&again, 409, "该申请已被处理");
    // A rejection with its note.
    let second = propose(&app, &w, "yellow").await;
    let res = b.post(&format!("/console/review/{second}/reject"), &[("note", "经核实，子女同住")]).await;
    assert_eq!(res.status, 303);
    assert_eq!(tag_of(&app, &w).await, "red");
}

async fn console_forms_refuse_a_missing_or_forged_csrf_token(app: TestApp) {
    let w = app.world().await;
    let b = Browser::sign_in(&app, "sec-a").await;
    let change = propose(&app, &w, "red").await;
    let task = first_task(&app, &w).await;
    let posts = [
        format!("/console/review/{change}/approve"),
        format!("/console/review/{change}/reject"),
        format!("/console/households/{}/tag", w.household_a1),
        format!("/console/households/{}/reveal", w.household_a1),
        format!("/console/members/{}/reveal", w.member_a1),
        format!("/console/tasks/{task}"),
        "/console/import/x/commit".to_owned(),
        "/console/logout".to_owned(),
    ];
    for path in &posts {
        let missing = b.post_raw(path, form(&[("note", "x"), ("reason", "x")])).await;
        assert_page(&missing, 403, "表单已失效");
        let forged = b.post_raw(path, form(&[("csrf", "forged"), ("note", "x")])).await;
        assert_eq!(forged.status, 403, "{path}");
        // Another session's token is not this one's.
        let other = Browser::sign_in(&app, "sec-a").await;
        let crossed = b.post_raw(path, form(&[("csrf", &other.csrf), ("reason", "x")])).await;
        assert_eq!(crossed.status, 403, "{path}");
    }
    // A login form without its token.
    let req = TestRequest::post()
        .uri("/console/login")
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload(form(&[("username", "sec-a"), ("password", PASSWORD)]));
    assert_eq!(app.call(req).await.status, 403);
    // The upload form (multipart) without its token.
    let boundary = "XyZ";
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\nContent-Type: text/csv\r\n\r\nx\r\n--{boundary}--\r\n"
    );
    let req = TestRequest::post()
        .uri("/console/import")
        .insert_header(("cookie", b.cookie.clone()))
        .insert_header(("content-type", format!("multipart/form-data; boundary={boundary}")))
        .set_payload(multipart);
    assert_eq!(app.call(req).await.status, 403);
    // Nothing was done, and the session is still good.
    assert_eq!(tag_of(&app, &w).await, "green");
    assert!(!app.audit_actions().await.iter().any(|a| a.contains("pii_revealed") || a == "auth.logout"));
    assert_eq!(b.get("/console/").await.status, 200);
}

async fn console_reveal_is_audited_like_the_api(app: TestApp) {
    let w = app.world().await;
    let b = Browser::sign_in(&app, "sec-a").await;
    let path = format!("/console/members/{}/reveal", w.member_a1);
    let none = b.post(&path, &[("reason", "")]).await;
    assert_page(&none, 422, "必填");
    assert!(!body(&none).contains("13800138000"));
    let res = b.post(&path, &[("reason", "联系家属办理低保复核")]).await;
    assert_page(&res, 200, "13800138000");
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert!(body(&res).contains("联系家属办理低保复核"), "the reveal is listed on the page");
    let actions = app.audit_actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "member.pii_revealed").count(), 1, "{actions:?}");
    // The API's audit log has the reason, as for the API's reveal.
    let events = ok(&app.get_as("/api/v1/audit-events?entity_type=member", &w.sec_a).await);
    assert_eq!(events["items"][0]["summary"]["reason"], "联系家属办理低保复核");
    let phone = b.post(&format!("/console/households/{}/reveal", w.household_a1), &[("reason", "回访")]).await;
    assert_page(&phone, 200, "13912345678");
    assert!(app.audit_actions().await.contains(&"household.pii_revealed".to_owned()));
    // Nothing personal in the URLs: reveals are posts.
    let page = body(&b.get(&format!("/console/households/{}", w.household_a1)).await);
    assert!(page.contains(r#"method="post" action="/console/members/"#));
}

/// `n` new households in grid a1 (building 9), imported as community A's secretary.
async fn import_households(app: &TestApp, w: &World, n: usize) {
    use crate::imports::{A1, commit, csv, line, upload};
    let lines: Vec<String> = (0..n)
        .map(|i| line(&[A1, "9号楼", "1单元", &format!("{}", 1000 + i), "住户"], &["住户", "男", "", "", "", "户主"]))
        .collect();
    let import = ok(&upload(app, &w.sec_a, &w.community_a, csv(&lines), "text/csv").await);
    ok(&commit(app, &w.sec_a, import["id"].as_str().unwrap(), false).await);
}

/// More open tasks than the page lists: it says so, and the grid filter narrows it (kept across
/// a reassignment).
async fn console_tasks_say_when_there_are_more_and_narrow_by_grid(app: TestApp) {
    let w = app.world().await;
    // Grid a1 without workers, then 210 new households in it: their tasks are unassigned.
    app.assign(&w.sec_a, &w.grid_a1, &[]).await;
    import_households(&app, &w, 210).await;
    let open = ok(&app.get_as(&format!("/api/v1/tasks?assignee=none&grid_id={}&limit=1", w.grid_a1), &w.sec_a).await);
    assert!(open["next_cursor"].is_string(), "more than one unassigned task: {open}");
    let b = Browser::sign_in(&app, "sec-a").await;
    let all = body(&b.get("/console/tasks").await);
    assert!(all.contains(r#"id="more""#) && all.contains("请选择网格分批处理"), "the page says it lists part: {all}");
    assert_eq!(all.matches(r#"name="action" value="cancel""#).count(), 200, "200 unassigned tasks listed");
    assert!(all.contains("9号楼1单元"));
    // Narrowed to grid a2: none of a1's tasks, no notice.
    let a2 = body(&b.get(&format!("/console/tasks?grid={}", w.grid_a2)).await);
    assert!(!a2.contains(r#"id="more""#) && !a2.contains("9号楼1单元"), "{a2}");
    assert!(a2.contains(&format!(r#"<option value="{}" selected>"#, w.grid_a2)), "{a2}");
    // Narrowed to grid a1: still more than the page lists; its forms carry the grid.
    let a1 = body(&b.get(&format!("/console/tasks?grid={}", w.grid_a1)).await);
    assert!(a1.contains("处理后刷新即可看到其余"), "{a1}");
    assert!(a1.contains(&format!(r#"<input type="hidden" name="grid" value="{}">"#, w.grid_a1)), "{a1}");
    // A reassignment from the narrowed page comes back to it.
    let task = first_task(&app, &w).await;
    let form = [("action", "reassign"), ("assignee_id", ""), ("grid", w.grid_a1.as_str())];
    let res = b.post(&format!("/console/tasks/{task}"), &form).await;
    assert_eq!(location(&res), format!("/console/tasks?done=reassigned&grid={}", w.grid_a1));
    // Anything but an id's shape is no filter, and never reaches the redirect.
    let form = [("action", "reassign"), ("assignee_id", ""), ("grid", "x/../y?z=1&done=forged")];
    let res = b.post(&format!("/console/tasks/{task}"), &form).await;
    assert_eq!(location(&res), "/console/tasks?done=reassigned");
    let form = [("action", "reassign"), ("assignee_id", ""), ("grid", "a\r\nSet-Cookie: x=1")];
    let res = b.post(&format!("/console/tasks/{task}"), &form).await;
    assert!(res.status.is_client_error() && location(&res).is_empty(), "{}", res.status);
    assert_eq!(b.get("/console/tasks?grid=%00").await.status, 200);
}

/// More pending proposals than the queue lists: it says how many it shows and that there are
/// more.
async fn console_review_says_when_there_are_more(app: TestApp) {
    let w = app.world().await;
    import_households(&app, &w, 201).await;
    let list = ok(&app.get_as(&format!("/api/v1/households?grid_id={}&limit=500", w.grid_a1), &w.sec_a).await);
    let ids: Vec<&str> = list["items"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap()).collect();
    assert!(ids.len() > 200, "{}", ids.len());
    let b = Browser::sign_in(&app, "sec-a").await;
    for (n, id) in ids.iter().enumerate() {
        let proposal = json!({"to_tag": "yellow", "reasons": ["low_income"]});
        ok(&app.post(&format!("/api/v1/households/{id}/tag-changes"), Some(&w.w_a1), proposal).await);
        if n == 199 {
            let queue = body(&b.get("/console/review").await);
            assert!(!queue.contains(r#"id="more""#) && queue.contains("200 条，最早提交的在前"), "{queue}");
        }
    }
    let queue = body(&b.get("/console/review").await);
    assert!(queue.contains(r#"id="more""#) && queue.contains("最早提交的 200 条（还有更多）"), "{queue}");
    assert_eq!(queue.matches(r#"<article class="card proposal""#).count(), 200);
}

/// A grid worker with more open tasks than the to-do list shows: it says so.
async fn console_todo_says_when_there_are_more(app: TestApp) {
    let w = app.world().await;
    import_households(&app, &w, 500).await;
    let mine = ok(&app.get_as("/api/v1/tasks?assignee=me&status=open&limit=500", &w.w_a1).await);
    assert!(mine["next_cursor"].is_string(), "more than 500 open tasks");
    let todo = body(&Browser::sign_in(&app, "w-a1").await.get("/console/todo").await);
    assert!(todo.contains("最早截止的 500 项（还有更多）"), "{todo}");
    assert_eq!(todo.matches("<li><span class=\"chip").count(), 500);
}

async fn console_tasks_reassign_and_cancel(app: TestApp) {
    let w = app.world().await;
    // A second worker on grid a1 to reassign to.
    app.assign(&w.sec_a, &w.grid_a1, &[(&w.user_w_a1, true), (&w.user_w_a2, false)]).await;
    let b = Browser::sign_in(&app, "sec-a").await;
    let task = first_task(&app, &w).await;
    let res = b.post(&format!("/console/tasks/{task}"), &[("action", "reassign"), ("assignee_id", &w.user_w_a2)]).await;
    assert_eq!((res.status.as_u16(), location(&res)), (303, "/console/tasks?done=reassigned"));
    let t = ok(&app.get_as(&format!("/api/v1/tasks?household_id={}", w.household_a1), &w.sec_a).await);
    assert_eq!(t["items"][0]["assignee_id"], w.user_w_a2.as_str());
    // Unassigned: the queue shows it under its grid.
    let res = b.post(&format!("/console/tasks/{task}"), &[("action", "reassign"), ("assignee_id", "")]).await;
    assert_eq!(res.status, 303);
    let queue = b.get("/console/tasks").await;
    assert_page(&queue, 200, "未分派任务");
    assert!(body(&queue).contains(&task));
    // Someone who is not a worker of the grid: the API's 422, beside the task.
    let res = b.post(&format!("/console/tasks/{task}"), &[("action", "reassign"), ("assignee_id", "nobody")]).await;
    assert_eq!(res.status, 422, "{}", body(&res));
    let res = b.post(&format!("/console/tasks/{task}"), &[("action", "cancel"), ("cancel_reason", "")]).await;
    assert_page(&res, 422, "必填");
    let res = b.post(&format!("/console/tasks/{task}"), &[("action", "cancel"), ("cancel_reason", "老人住院")]).await;
    assert_eq!((res.status.as_u16(), location(&res)), (303, "/console/tasks?done=cancelled"));
    assert!(app.audit_actions().await.iter().any(|a| a.starts_with("task.")));
    let again = b.post(&format!("/console/tasks/{task}"), &[("action", "cancel"), ("cancel_reason", "再次")]).await;
    assert_page(&again, 409, "已完成或已取消");
}

async fn console_direct_tag_change(app: TestApp) {
    let w = app.world().await;
    let b = Browser::sign_in(&app, "sec-a").await;
    let path = format!("/console/households/{}/tag", w.household_a1);
    let res = b.post(&path, &[("to_tag", "yellow")]).await;
    assert_page(&res, 422, "至少");
    assert_eq!(tag_of(&app, &w).await, "green");
    let res = b
        .post(
            &path,
            &[("to_tag", "yellow"), ("reasons", "low_income"), ("reasons", "chronic_illness"), ("note", "核实")],
        )
        .await;
    assert_eq!(
        (res.status.as_u16(), location(&res)),
        (303, format!("/console/households/{}?done=tagged", w.household_a1).as_str())
    );
    assert_eq!(tag_of(&app, &w).await, "yellow");
    let page = body(&b.get(&format!("/console/households/{}?done=tagged", w.household_a1)).await);
    assert!(page.contains("已调整住户标签") && page.contains("低保") && page.contains("黄灯"));
    let res = b.post(&path, &[("to_tag", "purple")]).await;
    assert_eq!(res.status, 422);
}

async fn console_session_ends_with_password_change_and_deactivation(app: TestApp) {
    let w = app.world().await;
    let b = Browser::sign_in(&app, "sec-a").await;
    let res = app
        .put(
            "/api/v1/me/password",
            &w.sec_a,
            json!({"current_password": PASSWORD, "new_password": "a-brand-new-passphrase"}),
        )
        .await;
    assert_eq!(res.status, 204);
    assert_eq!(b.get("/console/").await.status, 303, "a password change ends the console session");
    let worker = Browser::sign_in(&app, "w-a1").await;
    assert_eq!(worker.get("/console/todo").await.status, 200);
    let res = app.patch(&format!("/api/v1/users/{}", w.user_w_a1), &w.admin, json!({"active": false}), None).await;
    assert!(res.status.is_success(), "{}", body(&res));
    assert_eq!(worker.get("/console/todo").await.status, 303, "deactivation ends the console session");
    assert_eq!(Browser::try_sign_in(&app, "w-a1", PASSWORD).await.status, 401);
}

async fn console_bad_input_is_a_message_not_a_change(app: TestApp) {
    let w = app.world().await;
    let b = Browser::sign_in(&app, "sec-a").await;
    let change = propose(&app, &w, "red").await;
    let nul = b.post(&format!("/console/review/{change}/reject"), &[("note", "bad\u{0}note")]).await;
    assert_eq!(nul.status, 422, "{}", body(&nul));
    let ctl = b.post(&format!("/console/members/{}/reveal", w.member_a1), &[("reason", "a\u{7}b")]).await;
    assert_page(&ctl, 422, "控制字符");
    let bidi = b
        .post(
            &format!("/console/households/{}/tag", w.household_a1),
            &[("to_tag", "red"), ("reasons", "elderly_living_alone"), ("note", "x\u{202e}y")],
        )
        .await;
    assert_eq!(bidi.status, 422);
    let unknown = b.post(&format!("/console/tasks/{}", first_task(&app, &w).await), &[("action", "explode")]).await;
    assert_eq!(unknown.status, 422);
    let extra = b.post(&format!("/console/review/{change}/approve"), &[("tag", "red")]).await;
    assert!(extra.status == 400 || extra.status == 422, "{}", extra.status);
    let long = "长".repeat(501);
    let res = b.post(&format!("/console/review/{change}/reject"), &[("note", &long)]).await;
    assert_page(&res, 422, "太长");
    let path_nul = b.get("/console/households/%00").await;
    assert_eq!(path_nul.status, 404);
    assert_eq!(b.get("/console/households/no-such-id").await.status, 404);
    assert_eq!(b.get("/console/households?tag=purple").await.status, 422);
    assert_eq!(b.get("/console/households?cursor=!!").await.status, 422);
    assert_eq!(b.get("/console/report/download?period=2026&format=pdf").await.status, 422);
    // None of it changed anything.
    assert_eq!(tag_of(&app, &w).await, "green");
    let pending = ok(&app.get_as("/api/v1/tag-changes?status=pending", &w.sec_a).await);
    assert_eq!(pending["items"].as_array().unwrap().len(), 1);
    assert!(!app.audit_actions().await.iter().any(|a| a.contains("pii_revealed")));
}

/// A multipart upload of a roster through the console's form.
async fn upload(b: &Browser<'_>, csrf: &str, file: &[u8]) -> TestResponse {
    let boundary = "gridlight-console-test";
    let mut payload = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"roster.csv\"\r\nContent-Type: text/csv\r\n\r\n"
    )
    .into_bytes();
    payload.extend_from_slice(file);
    payload.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let req = TestRequest::post()
        .uri("/console/import")
        .insert_header(("cookie", b.cookie.clone()))
        .insert_header(("content-type", format!("multipart/form-data; boundary={boundary}")))
        .set_payload(payload);
    b.app.call(req).await
}

async fn console_import_dry_run_and_commit(app: TestApp) {
    let w = app.world().await;
    let b = Browser::sign_in(&app, "sec-a").await;
    let before = crate::imports::household_count(&app, &w.sec_a, &w.community_a).await;
    let roster = crate::imports::roster(&crate::support::world::id_number("1990-01-01", 61));
    let res = upload(&b, &b.csrf, &roster).await;
    assert_eq!(res.status, 303, "{}", body(&res));
    let to = location(&res).to_owned();
    assert!(to.starts_with("/console/import?id="), "{to}");
    let id = to.trim_start_matches("/console/import?id=").to_owned();
    let report = b.get(&to).await;
    assert_page(&report, 200, "核对结果");
    assert!(body(&report).contains("确认提交"));
    assert_eq!(
        crate::imports::household_count(&app, &w.sec_a, &w.community_a).await,
        before,
        "a dry run writes nothing"
    );
    // Another community's secretary does not see or commit it; a worker does not import.
    let other = Browser::sign_in(&app, "sec-b").await;
    assert_eq!(other.get(&to).await.status, 404);
    assert_eq!(other.post(&format!("/console/import/{id}/commit"), &[]).await.status, 404);
    let worker = Browser::sign_in(&app, "w-a1").await;
    assert_eq!(upload(&worker, &worker.csrf, &roster).await.status, 403);
    // Rows with errors: refused unless they are skipped.
    let refused = b.post(&format!("/console/import/{id}/commit"), &[]).await;
    assert_page(&refused, 409, "跳过错误行");
    let done = b.post(&format!("/console/import/{id}/commit"), &[("skip_errors", "1")]).await;
    assert_eq!(
        (done.status.as_u16(), location(&done)),
        (303, format!("/console/import?id={id}&done=committed").as_str())
    );
    assert!(crate::imports::household_count(&app, &w.sec_a, &w.community_a).await > before);
    assert_page(&b.get(&format!("/console/import?id={id}&done=committed")).await, 200, "提交结果");
    // Not a roster: the reason beside the file field, nothing recorded.
    let bad = upload(&b, &b.csrf, b"not a spreadsheet").await;
    assert_page(&bad, 422, "file-error");
}

async fn console_admin_sees_every_community(app: TestApp) {
    let w = app.world().await;
    let b = Browser::sign_in(&app, "admin").await;
    let home = b.get("/console/").await;
    assert_page(&home, 200, "今日概览");
    let list = body(&b.get("/console/households").await);
    assert!(list.contains("张桂兰") && list.contains("王秀英"), "an administrator sees every community");
    assert_page(&b.get(&format!("/console/households/{}", w.household_b1)).await, 200, "家庭成员");
    assert_page(&b.get("/console/tasks").await, 200, "任务");
    assert_page(&b.get("/console/report?period=2026").await, 200, "网格排名");
    // Administrators oversee but see personal data masked only, as in the API.
    let reveal = b.post(&format!("/console/members/{}/reveal", w.member_a1), &[("reason", "核实")]).await;
    assert_page(&reveal, 403, "没有这项操作的权限");
    assert!(!body(&reveal).contains("13800138000"));
}

/// The `<table id="{id}">` of a page, up to its end.
fn table<'h>(html: &'h str, id: &str) -> &'h str {
    let start = html.find(&format!(r#"<table id="{id}">"#)).unwrap_or_else(|| panic!("no table {id} in {html}"));
    let end = html[start..].find("</table>").unwrap() + start;
    &html[start..end]
}

/// The body rows of a table, and its totals row as the API's totals give it.
fn rows_and_totals(table: &str) -> (usize, &str) {
    let body = &table[table.find("<tbody>").unwrap()..table.find("</tbody>").unwrap()];
    let foot = &table[table.find("<tfoot>").unwrap()..];
    (body.matches("<tr>").count(), foot)
}

fn totals_cells(report: &serde_json::Value) -> String {
    let t = &report["totals"];
    let n = |f: &str| t[f].as_i64().unwrap();
    format!(
        "<th scope=\"row\">合计</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
        n("tasks_due"),
        n("completed_on_time"),
        n("completed_late"),
        n("missed") + n("overdue")
    )
}

async fn console_report_rolls_up_for_officers(app: TestApp) {
    let w = app.world().await;
    let u = crate::streets::units(&app, &w).await;
    // A red household in street 1 gives its community tasks and a red coverage to roll up.
    let red = json!({"to_tag": "red", "reasons": ["serious_illness"]});
    ok(&app.post(&format!("/api/v1/households/{}/tag-changes", w.household_a1), Some(&w.sec_a), red).await);
    let period = chrono::Utc::now().format("%Y").to_string();
    let api = |token: String, extra: String| {
        let app = &app;
        let path = format!("/api/v1/reports/evaluation?period={period}{extra}");
        async move { ok(&app.get_as(&path, &token).await) }
    };

    // A street officer: a row per community of their street (community A only), the totals of
    // the API's roll-up, no other street's or district's community; the menu has the report.
    let so = Browser::sign_in(&app, "so-1").await;
    let page = so.get(&format!("/console/report?period={period}")).await;
    assert_page(&page, 200, "社区排名");
    let html = body(&page);
    assert!(html.contains(r#"href="/console/report""#), "the officer's menu has the report");
    let link =
        format!(r#"href="/console/report/download?period={period}&amp;unit=street:{}&amp;format=csv""#, u.street_1);
    assert!(html.contains(&link), "the download is of the page's unit: {html}");
    assert!(!html.contains(r#"<table id="streets">"#), "a street's page has no street ranking");
    let report = api(u.so_1.clone(), String::new()).await;
    assert_eq!(report["scope"]["street_id"], u.street_1);
    assert_eq!(report["totals"]["red_coverage"]["planned"], 1, "{report}");
    let (rows, foot) = rows_and_totals(table(&html, "communities"));
    assert_eq!(rows, 1);
    assert!(foot.contains(&totals_cells(&report)), "{foot} vs {report}");
    assert!(html.contains("建新社区") && !html.contains("睦和苑社区") && !html.contains("舜华社区"), "{html}");
    // Another street, another district: 404, as in the API.
    let other = so.get(&format!("/console/report?period={period}&unit=street:{}", u.street_2)).await;
    assert_page(&other, 404, "");
    let other = format!("/console/report/download?period={period}&format=csv&unit=street:{}", u.street_2);
    assert_eq!(so.get(&other).await.status, 404);
    let other = so.get(&format!("/console/report?period={period}&unit=district:{}", u.district_2)).await;
    assert_eq!(other.status, 404);
    // The download is the same roll-up.
    let csv = so.get(&format!("/console/report/download?period={period}&format=csv")).await;
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").is_some_and(|c| c.starts_with("text/csv")));
    let text = body(&csv);
    let communities: Vec<&str> = text.lines().filter(|l| l.starts_with("community,")).collect();
    assert_eq!(communities.len(), 1, "{text}");
    assert!(communities[0].contains("建新社区") && !text.contains("睦和苑社区") && !text.contains("舜华社区"));

    // Every console link on an officer's overview leads to a page the officer may see.
    for officer in [&so, &Browser::sign_in(&app, "do-1").await] {
        let home = officer.get("/console/").await;
        assert_page(&home, 200, "今日概览");
        let html = body(&home);
        assert!(!html.contains(r#"<a class="stat""#), "an officer's figures are not links: {html}");
        for link in html.split(r#"href=""#).skip(1).filter_map(|rest| rest.split('"').next()) {
            if link.starts_with("/console/") && !link.starts_with("/console/static/") {
                let status = officer.get(&link.replace("&amp;", "&")).await.status;
                assert_eq!(status, 200, "{link} on an officer's overview");
            }
        }
    }

    // A district officer: a row per street of their district (three, the default street
    // included), ranked, summing to the totals; the communities of district 2 never show.
    let dof = Browser::sign_in(&app, "do-1").await;
    let page = dof.get(&format!("/console/report?period={period}")).await;
    assert_page(&page, 200, "街道排名");
    let html = body(&page);
    let report = api(u.do_1.clone(), String::new()).await;
    assert_eq!(report["scope"]["district_id"], u.district_1);
    let (rows, foot) = rows_and_totals(table(&html, "streets"));
    assert_eq!(rows, 3, "{html}");
    assert!(foot.contains(&totals_cells(&report)), "{foot} vs {report}");
    assert!(html.contains("七里山街道") && html.contains("舜玉路街道") && html.contains("默认街道"));
    assert!(html.contains("<td>1</td><th scope=\"row\">七里山街道"), "street 1 ranks first: {html}");
    assert!(html.contains("睦和苑社区") && !html.contains("舜华社区"), "{html}");
    assert_eq!(dof.get(&format!("/console/report?period={period}&unit=district:{}", u.district_2)).await.status, 404);
    // Narrowed to one of their streets, as the API allows.
    let one = body(&dof.get(&format!("/console/report?period={period}&unit=street:{}", u.street_2)).await);
    assert!(one.contains("睦和苑社区") && !one.contains("建新社区"), "{one}");
    let xlsx = dof.get(&format!("/console/report/download?period={period}&format=xlsx")).await;
    assert_eq!(xlsx.status, 200);
    assert!(xlsx.header("content-type").is_some_and(|c| c.contains("spreadsheetml")));
    assert!(xlsx.body.starts_with(b"PK"), "an XLSX is a zip");
    let csv = body(&dof.get(&format!("/console/report/download?period={period}&format=csv")).await);
    assert_eq!(csv.lines().filter(|l| l.starts_with("street,")).count(), 3, "{csv}");
    assert!(!csv.contains("舜华社区"));
    let api_csv = app.get_as(&format!("/api/v1/reports/evaluation?period={period}&format=csv"), &u.do_1).await;
    let strip = |t: &str| t.lines().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(strip(&csv).len(), strip(&body(&api_csv)).len(), "the console's CSV is the API's");

    // An administrator picks the level; a district's page is the API's district roll-up.
    let admin = Browser::sign_in(&app, "admin").await;
    let page = body(&admin.get(&format!("/console/report?period={period}")).await);
    assert!(page.contains(r#"<select id="unit" name="unit">"#), "{page}");
    assert!(page.contains(&format!(r#"<option value="district:{}">"#, u.district_2)), "{page}");
    assert!(page.contains(&format!(r#"<option value="street:{}">"#, u.street_1)), "{page}");
    let page = body(&admin.get(&format!("/console/report?period={period}&unit=district:{}", u.district_1)).await);
    let report = api(w.admin.clone(), format!("&district_id={}", u.district_1)).await;
    let (rows, foot) = rows_and_totals(table(&page, "streets"));
    assert_eq!(rows, 3);
    assert!(foot.contains(&totals_cells(&report)), "{foot} vs {report}");
    assert!(page.contains(&format!(r#"<option value="district:{}" selected>"#, u.district_1)), "{page}");
    assert!(!page.contains("舜华社区"));
    // Officers see no level selector, and grid workers no report.
    assert!(!html.contains(r#"<select id="unit""#));
    let worker = Browser::sign_in(&app, "w-a1").await;
    assert_eq!(worker.get(&format!("/console/report?period={period}")).await.status, 403);
}
