//! Personal data at rest: sealed columns, the blind index, keys and their rotation, retention,
//! and a resident's record.

use actix_web::web;
use diesel::prelude::*;
use diesel::sql_types::Text;
use futures_util::future::join_all;
use serde_json::{Value, json};

use diesel_migrations::MigrationHarness;
use gridlight::db::keys::{self, DataKey};
use gridlight::db::schema::{audit_events, households};
use gridlight::db::{Backend, Db, sealing};

use crate::on_both_backends;
use crate::support::world::{id_number, ok};
use crate::support::{TEST_DATA_KEY, TestApp};

on_both_backends!(
    stored_values_hold_no_personal_data_in_clear,
    a_person_is_registered_once,
    rotation_under_concurrent_writes_loses_nothing,
    a_wrong_or_missing_key_refuses_to_start,
    retention_erases_exactly_the_expired_households,
    a_residents_record_is_complete_audited_and_scoped,
    uploaded_rosters_are_sealed_and_still_commit,
    a_database_in_clear_is_sealed_in_resumable_batches,
);

/// Every `id_number` and `phone` of the demo data set.
fn demo_personal_values() -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/demo");
    let mut values = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("id_number" | "phone", Value::String(s)) => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    for file in ["communities.json", "households.json"] {
        let text = std::fs::read_to_string(path.join(file)).unwrap();
        walk(&serde_json::from_str(&text).unwrap(), &mut values);
    }
    values.sort();
    values.dedup();
    values
}

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

/// Everything the database holds, as raw bytes (SQLite: the files; PostgreSQL: every row of
/// every table as text).
fn raw_contents(app: &TestApp) -> Vec<u8> {
    let url = app.state.config.db.database_url.clone();
    match app.backend {
        Backend::Sqlite => {
            let mut bytes = Vec::new();
            for suffix in ["", "-wal"] {
                bytes.extend(std::fs::read(format!("{url}{suffix}")).unwrap_or_default());
            }
            bytes
        }
        Backend::Postgres => {
            let mut conn = PgConnection::establish(&url).unwrap();
            let tables: Vec<Line> =
                diesel::sql_query("SELECT tablename::text AS line FROM pg_tables WHERE schemaname = current_schema()")
                    .load(&mut conn)
                    .unwrap();
            let mut bytes = Vec::new();
            for t in tables {
                let rows: Vec<Line> =
                    diesel::sql_query(format!("SELECT t::text AS line FROM \"{}\" t", t.line)).load(&mut conn).unwrap();
                for r in rows {
                    bytes.extend(r.line.into_bytes());
                    bytes.push(b'\n');
                }
            }
            bytes
        }
    }
}

/// The values of `values` found in `raw`: every window of 11 or 18 characters of each run of
/// digits (and `X`) is looked up, one pass over the bytes (a `contains` per value was minutes).
fn found_in<'a>(raw: &[u8], values: &'a [String]) -> Vec<&'a String> {
    let wanted: std::collections::HashSet<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
    let mut found = std::collections::BTreeSet::new();
    for run in raw.split(|b| !(b.is_ascii_digit() || *b == b'X')) {
        for width in [11, 18] {
            for window in run.windows(width) {
                if wanted.contains(window) {
                    found.insert(window);
                }
            }
        }
    }
    values.iter().filter(|v| found.contains(v.as_bytes())).collect()
}

/// Loads the demo data set; returns a token of 建新's secretary and two of its households.
async fn load_demo(app: &TestApp) -> (String, String, String) {
    let db = app.state.db.clone();
    web::block(move || gridlight::seed::demo::load(&db).unwrap()).await.unwrap();
    let login = app.login_as("jianxin.sec", gridlight::seed::demo::DEMO_PASSWORD).await;
    let token = ok(&login)["access_token"].as_str().unwrap().to_owned();
    let page = ok(&app.get_as("/api/v1/households?limit=2", &token).await);
    let id = |i: usize| page["items"][i]["id"].as_str().unwrap().to_owned();
    (token, id(0), id(1))
}

async fn verify(db: &Db) -> sealing::Verification {
    let db = db.clone();
    web::block(move || sealing::verify(&db, &mut |_| {}).unwrap()).await.unwrap()
}

async fn stored_values_hold_no_personal_data_in_clear(app: TestApp) {
    let (sec, household, _) = load_demo(&app).await;
    let values = demo_personal_values();
    assert!(values.len() > 900, "the demo set has {} ID numbers and phones", values.len());
    // And what the API writes: a member with an ID number and phone, revealed once (audited).
    let number = id_number("1941-03-02", 2);
    let body = json!({"name": "张桂兰", "gender": "female", "birth_date": "1941-03-02", "id_number": number,
                      "phone": "13800138000", "relation": "other"});
    let member = app.create_member(&sec, &household, body).await;
    let pii = ok(&app.get_as(&format!("/api/v1/members/{member}/pii?reason=%E6%A0%B8%E5%AF%B9"), &sec).await);
    assert_eq!(pii["id_number"], number.as_str(), "sealed values open");
    let raw = raw_contents(&app);
    assert!(raw.len() > 100_000, "read {} bytes", raw.len());
    let found = found_in(&raw, &values);
    assert!(found.is_empty(), "in clear in the database: {} values, e.g. {:?}", found.len(), found.first());
    let written = [number.clone(), "13800138000".to_owned()];
    assert!(found_in(&raw, &written).is_empty(), "what the API wrote is stored in clear");
    // The scan does find values in clear: the demo files themselves hold them.
    let files = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/demo/households.json"));
    assert!(found_in(&files.unwrap(), &values).len() > 900, "the scan finds values in clear");
    // The masked views are still derived from the clear values.
    let shown = ok(&app.get_as(&format!("/api/v1/members/{member}"), &sec).await);
    assert_eq!(shown["id_number"], format!("**************{}", &number[14..]));
    assert_eq!(shown["phone"], "138****8000");
    // Every value opens and matches its blind index.
    let report = verify(&app.state.db).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(report.checked as usize >= values.len(), "{} checked", report.checked);
    assert_eq!(report.by_key.len(), 1, "{:?}", report.by_key);
}

async fn a_person_is_registered_once(app: TestApp) {
    let w = app.world().await;
    let taken = id_number("1941-03-02", 2);
    let person = |number: &str| json!({"name": "张桂兰", "gender": "female", "id_number": number, "relation": "head"});
    // In another household, in another community, by a worker: refused.
    let again =
        app.post(&format!("/api/v1/households/{}/members", w.household_a2), Some(&w.sec_a), person(&taken)).await;
    assert_eq!(again.assert_problem(409)["code"], "id_number_taken");
    let other =
        app.post(&format!("/api/v1/households/{}/members", w.household_b1), Some(&w.sec_b), person(&taken)).await;
    assert_eq!(other.assert_problem(409)["code"], "id_number_taken");
    // A change to another member's ID number too; the member's own number is no conflict.
    let path = format!("/api/v1/members/{}", w.member_a2);
    let patch = app.patch(&path, &w.sec_a, json!({"id_number": taken, "gender": "female"}), None).await;
    assert_eq!(patch.assert_problem(409)["code"], "id_number_taken");
    let own = format!("/api/v1/members/{}", w.member_a1);
    ok(&app.patch(&own, &w.sec_a, json!({"id_number": taken}), None).await);
    // The lookup is the blind index; once the member is removed, the number is free.
    let db = app.state.db.clone();
    let number = taken.clone();
    let found =
        web::block(move || db.read_blocking(|c| Ok(gridlight::store::households::members_by_id_number(c, &number)?)))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(found.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), [w.member_a1.as_str()]);
    let removed = app.delete_as(&own, &w.sec_a).await;
    assert!(removed.status.is_success(), "{}", removed.status);
    let created =
        app.post(&format!("/api/v1/households/{}/members", w.household_a2), Some(&w.sec_a), person(&taken)).await;
    assert_eq!(created.status.as_u16(), 201, "{}", String::from_utf8_lossy(&created.body));
}

/// The key the app was started with.
fn first_key(app: &TestApp) -> String {
    match app.backend {
        Backend::Sqlite => {
            let path = gridlight::db::keyfile::key_path(std::path::Path::new(&app.state.config.db.database_url));
            std::fs::read_to_string(path).unwrap().trim().to_owned()
        }
        Backend::Postgres => TEST_DATA_KEY.to_owned(),
    }
}

async fn rotation_under_concurrent_writes_loses_nothing(app: TestApp) {
    let (sec, first, second) = load_demo(&app).await;
    let old = first_key(&app);
    let old_id = DataKey::parse(&old).unwrap().id().to_owned();
    // The instances restart with a new key first (the procedure of docs/operations.md): here a
    // second app on the same database.
    let mut config = (*app.state.config).clone();
    config.db.data_key = Some(format!("{},{old}", DataKey::generate()));
    let next = TestApp::with_config_for_test(config).await;
    let new_id = next.state.db.keys().ring().unwrap().current().id().to_owned();
    assert_ne!(new_id, old_id);

    let db = next.state.db.clone();
    let rotation = web::block(move || sealing::rotate(&db, &mut |_| {}));
    // Meanwhile four writers add members and change phones through the new instance.
    let writers = (0..4u32).map(|i| {
        let (next, sec, first, second) = (&next, &sec, &first, &second);
        async move {
            let mut written = Vec::new();
            for j in 0..12u32 {
                let phone = format!("1370000{:02}{:02}", i, j);
                let body =
                    json!({"name": format!("住户{i}{j}"), "gender": "male", "relation": "other", "phone": phone});
                let id = next.create_member(sec, first, body).await;
                written.push((id, phone));
            }
            let phone = format!("1360000{:04}", i);
            let path = format!("/api/v1/households/{second}");
            let res = next.patch(&path, sec, json!({"phone": phone}), None).await;
            assert!(res.status.is_success() || res.status.as_u16() == 409, "{}", res.status);
            written
        }
    });
    let (done, written) = futures_util::future::join(rotation, join_all(writers)).await;
    let done = done.unwrap().unwrap();
    assert_eq!(done.current, new_id);
    assert!(done.resealed > 900, "re-sealed {}", done.resealed);
    assert_eq!(done.retired, vec![old_id.clone()], "the old key is retired once nothing uses it");
    // Nothing lost: every member written reads back with its phone; every value is under the
    // new key.
    for (id, phone) in written.into_iter().flatten() {
        let pii = ok(&next.get_as(&format!("/api/v1/members/{id}/pii?reason=%E6%A0%B8%E5%AF%B9"), &sec).await);
        assert_eq!(pii["phone"], phone.as_str());
    }
    let report = verify(&next.state.db).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.by_key.keys().collect::<Vec<_>>(), [&new_id]);
    // Started again with the new key alone, the database opens.
    let mut config = (*app.state.config).clone();
    config.db.data_key = Some(next_key(&next));
    let db = web::block(move || Db::connect(&config.db).and_then(|db| db.migrate().map(|_| db))).await.unwrap();
    assert!(db.is_ok(), "{:?}", db.err());
}

fn next_key(app: &TestApp) -> String {
    app.state.config.db.data_key.as_deref().unwrap().split(',').next().unwrap().to_owned()
}

async fn a_wrong_or_missing_key_refuses_to_start(app: TestApp) {
    app.world().await;
    let mut config = (*app.state.config).clone();
    config.db.data_key = Some(DataKey::generate());
    let wrong = web::block(move || Db::connect(&config.db).and_then(|db| db.migrate().map(|_| ()))).await.unwrap();
    let message = format!("{:#}", wrong.unwrap_err());
    assert!(message.contains("wrong data key"), "{message}");
    let mut config = (*app.state.config).clone();
    config.db.data_key = Some("not a key".into());
    let malformed = web::block(move || Db::connect(&config.db).and_then(|db| db.migrate().map(|_| ()))).await.unwrap();
    assert!(format!("{:#}", malformed.unwrap_err()).contains("32 bytes"));
    // Without a key: PostgreSQL requires one; a SQLite database whose key file is gone does not
    // make a new one.
    let mut config = (*app.state.config).clone();
    config.db.data_key = None;
    if app.backend == Backend::Sqlite {
        let path = gridlight::db::keyfile::key_path(std::path::Path::new(&config.db.database_url));
        std::fs::rename(&path, path.with_extension("moved")).unwrap();
    }
    let missing = web::block(move || Db::connect(&config.db).and_then(|db| db.migrate().map(|_| ()))).await.unwrap();
    let message = format!("{:#}", missing.unwrap_err());
    assert!(message.contains("GRIDLIGHT_DATA_KEY is required") || message.contains("is missing"), "{message}");
}

async fn retention_erases_exactly_the_expired_households(app: TestApp) {
    let w = app.world().await;
    let period = chrono::Utc::now().format("%Y-%m").to_string();
    let report = || {
        let path = format!("/api/v1/reports/evaluation?period={period}");
        let sec = w.sec_a.clone();
        let app = &app;
        async move {
            let mut body = ok(&app.get_as(&path, &sec).await);
            body.as_object_mut().unwrap().remove("generated_at");
            body
        }
    };
    // Household a1 was removed four years ago, a2 two years ago; b1 is current.
    for h in [&w.household_a1, &w.household_a2] {
        let res = app.delete_as(&format!("/api/v1/households/{h}?reason=moved_out"), &w.sec_a).await;
        assert!(res.status.is_success(), "{}: {}", res.status, String::from_utf8_lossy(&res.body));
    }
    let now = gridlight::store::now();
    let (a1, a2) = (w.household_a1.clone(), w.household_a2.clone());
    app.state
        .db
        .write_blocking(|c| {
            for (id, years) in [(&a1, 4), (&a2, 2)] {
                diesel::update(households::table.find(id))
                    .set(households::removed_at.eq(now - chrono::Duration::days(365 * years)))
                    .execute(c)?;
            }
            Ok(())
        })
        .unwrap();
    let before = report().await;
    let db = app.state.db.clone();
    let run = web::block(move || gridlight::jobs::apply_retention(&db, 3).unwrap()).await.unwrap();
    assert_eq!((run.households, run.members), (1, 1));
    let record = |h: String| {
        let app = &app;
        let sec = w.sec_a.clone();
        async move { ok(&app.get_as(&format!("/api/v1/households/{h}/record?reason=%E6%9F%A5%E8%AF%A2"), &sec).await) }
    };
    let erased = record(w.household_a1.clone()).await;
    assert_eq!(erased["household"]["head_name"], "张某");
    assert_eq!(erased["household"]["phone"], Value::Null);
    let m = &erased["members"][0];
    assert_eq!(
        (m["name"].as_str(), &m["id_number"], &m["phone"], &m["birth_date"]),
        (Some("张某"), &Value::Null, &Value::Null, &Value::Null)
    );
    let kept = record(w.household_a2.clone()).await;
    assert_eq!(kept["household"]["head_name"], "李建国");
    assert_eq!(kept["members"][0]["id_number"], id_number("1960-07-15", 1).as_str());
    let current = ok(&app
        .get_as(&format!("/api/v1/households/{}/record?reason=%E6%9F%A5%E8%AF%A2", w.household_b1), &w.sec_b)
        .await);
    assert_eq!(current["members"][0]["name"], "王秀英");
    // One audit event for the run; a second run finds nothing and writes none.
    let db = app.state.db.clone();
    let again = web::block(move || gridlight::jobs::apply_retention(&db, 3).unwrap()).await.unwrap();
    assert_eq!(again.households, 0);
    let events: Vec<String> = app
        .state
        .db
        .read_blocking(|c| {
            Ok(audit_events::table
                .filter(audit_events::action.eq("retention.erased"))
                .select(audit_events::summary)
                .load::<String>(c)?)
        })
        .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains(&w.household_a1) && !events[0].contains("13912345678"), "{}", events[0]);
    // `0` keeps everything.
    let db = app.state.db.clone();
    assert_eq!(web::block(move || gridlight::jobs::apply_retention(&db, 0).unwrap()).await.unwrap().households, 0);
    // The evaluation report is what it was.
    assert_eq!(report().await, before);
}

async fn a_residents_record_is_complete_audited_and_scoped(app: TestApp) {
    let w = app.world().await;
    let number = id_number("1941-03-02", 2);
    ok(&app
        .get_as(&format!("/api/v1/members/{}/pii?reason=%E8%81%94%E7%B3%BB%E5%AE%B6%E5%B1%9E", w.member_a1), &w.w_a1)
        .await);
    let path = format!(
        "/api/v1/households/{}/record?reason=%E5%B1%85%E6%B0%91%E6%9F%A5%E9%98%85%E7%94%B3%E8%AF%B7",
        w.household_a1
    );
    let res = app.get_as(&path, &w.sec_a).await;
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let record = ok(&res);
    assert_eq!(record["household"]["phone"], "13912345678");
    assert_eq!(record["members"][0]["id_number"], number.as_str());
    assert_eq!(record["members"][0]["phone"], "13800138000");
    assert_eq!(record["members"][0]["birth_date"], "1941-03-02");
    assert!(record["tasks"].is_array() && record["visits"].is_array() && record["tag_changes"].is_array());
    let reveals: Vec<(&str, &str)> = record["reveals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["action"].as_str().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(reveals, [("member.pii_revealed", "联系家属"), ("household.record_copied", "居民查阅申请")]);
    // Audited like a reveal.
    let events = ok(&app.get_as("/api/v1/audit-events?limit=500", &w.admin).await);
    let copies: Vec<&Value> =
        events["items"].as_array().unwrap().iter().filter(|e| e["action"] == "household.record_copied").collect();
    assert_eq!(copies.len(), 1, "{events}");
    assert!(!copies[0].to_string().contains(&number) && !copies[0].to_string().contains("13912345678"));
    // Scoped: another community's secretary does not see it, a worker and an administrator may
    // not copy it, and a reason is required.
    app.get_as(&path, &w.sec_b).await.assert_problem(404);
    app.get_as(&path, &w.w_a1).await.assert_problem(403);
    app.get_as(&format!("/api/v1/households/{}/record?reason=x", w.household_b1), &w.w_a1).await.assert_problem(404);
    app.get_as(&path, &w.admin).await.assert_problem(403);
    app.get_as(&format!("/api/v1/households/{}/record", w.household_a1), &w.sec_a).await.assert_problem(422);
}

/// A SQLite key file is rotated in place: a new key first, the old one dropped once unused,
/// and the running app re-reads the file.
#[actix_web::test]
async fn key_file_rotation() {
    let app = TestApp::new(Backend::Sqlite).await;
    let w = app.world().await;
    let old = first_key(&app);
    let db = app.state.db.clone();
    let (id, done) = web::block(move || {
        let id = db.keys().add_key(&db).unwrap();
        (id, sealing::rotate(&db, &mut |_| {}).unwrap())
    })
    .await
    .unwrap();
    assert_eq!(done.current, id);
    assert_eq!(done.retired.len(), 1);
    let file = first_key(&app);
    assert_ne!(file, old, "the key file holds the new key alone");
    assert_eq!(DataKey::parse(&file).unwrap().id(), id);
    let pii =
        ok(&app.get_as(&format!("/api/v1/members/{}/pii?reason=%E6%A0%B8%E5%AF%B9", w.member_a1), &w.sec_a).await);
    assert_eq!(pii["phone"], "13800138000");
}

async fn uploaded_rosters_are_sealed_and_still_commit(app: TestApp) {
    use crate::imports::{A1, commit, csv, line, upload};
    let w = app.world().await;
    let number = id_number("1977-07-07", 71);
    let phone = "13677776666";
    // A good household, and one with an error (a bad phone) that stays in the error workbook.
    let kept = id_number("1978-08-08", 72);
    let file = csv(&[
        line(&[A1, "21号楼", "1单元", "1", "周九", phone], &["周九", "男", "", &number, "", "户主"]),
        line(&[A1, "22号楼", "1单元", "1", "吴十", "12345"], &["吴十", "男", "", &kept, "", "户主"]),
    ]);
    let res = upload(&app, &w.sec_a, &w.community_a, file, "text/csv").await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    let id = res.json()["id"].as_str().unwrap().to_owned();
    let values = [number.clone(), phone.to_owned(), kept.clone()];
    assert!(found_in(&raw_contents(&app), &values).is_empty(), "the uploaded file is stored in clear");
    // The commit opens the sealed file and applies it; the error workbook is sealed too.
    let done = ok(&commit(&app, &w.sec_a, &id, true).await);
    assert_eq!(done["status"], "committed");
    let found = ok(&app.get_as("/api/v1/households?q=%E5%91%A8%E4%B9%9D", &w.sec_a).await);
    assert_eq!(found["items"].as_array().unwrap().len(), 1, "{found}");
    assert!(found_in(&raw_contents(&app), &values).is_empty(), "the committed roster is stored in clear");
    let workbook = app.get_as(&format!("/api/v1/imports/{id}/errors.xlsx"), &w.sec_a).await;
    assert_eq!(workbook.status, 200, "the sealed error workbook opens");
    assert!(workbook.body.len() > 1000);
}

/// A member's `(id, id_number, phone)`.
type MemberValues = (String, Option<String>, Option<String>);

/// Every sealed value of the members table, opened.
fn members_in_clear(conn: &mut gridlight::db::DbConn) -> QueryResult<Vec<MemberValues>> {
    use gridlight::db::keys::{MEMBER_ID_NUMBER, MEMBER_PHONE};
    use gridlight::db::schema::members;
    let ring = gridlight::store::data_keys()?;
    let rows: Vec<MemberValues> =
        members::table.select((members::id, members::id_number, members::phone)).order(members::id.asc()).load(conn)?;
    rows.into_iter()
        .map(|(id, number, phone)| {
            let number = ring.open_opt(MEMBER_ID_NUMBER, &id, number.as_deref());
            let phone = ring.open_opt(MEMBER_PHONE, &id, phone.as_deref());
            Ok((id, number.map_err(keys::to_diesel)?, phone.map_err(keys::to_diesel)?))
        })
        .collect()
}

/// A database of the version before sealing (values in clear, no blind indexes) is sealed when a
/// new version starts on it, in batches; a run stopped half-way resumes; verify finds it whole.
async fn a_database_in_clear_is_sealed_in_resumable_batches(app: TestApp) {
    use gridlight::db::schema::{households, members, users};
    use gridlight::db::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};
    load_demo(&app).await;
    let db = app.state.db.clone();
    let clear = web::block(move || {
        db.write_blocking(|c| {
            let before = members_in_clear(c)?;
            // Back to the earlier version: every value in clear, then the sealing migration reverted.
            for (id, number, phone) in &before {
                diesel::update(members::table.find(id))
                    .set((members::id_number.eq(number), members::phone.eq(phone)))
                    .execute(c)?;
            }
            diesel::update(households::table).set(households::phone.eq(Some("13700001111"))).execute(c)?;
            diesel::update(users::table).set(users::phone.eq(None::<String>)).execute(c)?;
            // Every migration from the sealing one on, the sealing one last.
            loop {
                let version = match c {
                    gridlight::db::DbConn::Sqlite(c) => {
                        c.revert_last_migration(SQLITE_MIGRATIONS).map(|v| v.to_string())
                    }
                    gridlight::db::DbConn::Postgres(c) => {
                        c.revert_last_migration(POSTGRES_MIGRATIONS).map(|v| v.to_string())
                    }
                }
                .map_err(|e| gridlight::error::ApiError::Internal(anyhow::anyhow!("{e}")))?;
                if version.replace('-', "").starts_with("20261127001100") {
                    break;
                }
            }
            Ok(before)
        })
        .unwrap()
    })
    .await
    .unwrap();
    let values: Vec<String> = clear.iter().flat_map(|(_, n, p)| [n.clone(), p.clone()]).flatten().collect();
    assert!(values.len() > 900, "{} values", values.len());
    assert!(
        found_in(&raw_contents(&app), &values).len() > 900,
        "the database of the earlier version holds them in clear"
    );

    // The new version's schema, then a sealing run stopped after its first batch.
    let db = app.state.db.clone();
    let (total, left) = web::block(move || {
        db.write_blocking(|c| {
            match c {
                gridlight::db::DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
                gridlight::db::DbConn::Postgres(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ()),
            }
            .map_err(|e| gridlight::error::ApiError::Internal(anyhow::anyhow!("{e}")))
        })
        .unwrap();
        let total = sealing::values_outside(&db, "gl1.%").unwrap();
        let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sealing::seal_clear_values(&db, &mut |n| assert!(n == 0, "stopped after a batch of {n}"))
        }));
        assert!(stopped.is_err(), "the run was stopped");
        (total, sealing::values_outside(&db, "gl1.%").unwrap())
    })
    .await
    .unwrap();
    assert!(left > 0 && left < total, "{left} of {total} values left in clear after one batch");

    // Starting again finishes the work; every value opens to what it was, under its blind index.
    let db = app.state.db.clone();
    let after = web::block(move || {
        db.migrate().unwrap();
        assert_eq!(sealing::values_outside(&db, "gl1.%").unwrap(), 0);
        db.read_blocking(|c| Ok(members_in_clear(c)?)).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(after, clear, "every value survives sealing unchanged");
    let report = verify(&app.state.db).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.checked, total);
    assert!(found_in(&raw_contents(&app), &values).is_empty(), "sealed values remain in clear");
    // The blind index answers exact lookups of the sealed values.
    let (id, number) = clear.iter().find_map(|(id, n, _)| Some((id.clone(), n.clone()?))).unwrap();
    let db = app.state.db.clone();
    let found = web::block(move || {
        db.read_blocking(|c| Ok(gridlight::store::households::members_by_id_number(c, &number)?)).unwrap()
    })
    .await
    .unwrap();
    assert!(found.iter().any(|m| m.id == id), "the member is found by its ID number");
}
