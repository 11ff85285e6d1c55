//! The demo and synthetic data sets.

use diesel::prelude::*;
use serde_json::Value;

use gridlight::db::schema::{audit_events, communities, grids, households, streets, sync_log, tasks, users};
use gridlight::db::{Db, DbConn};

use crate::on_both_backends;
use crate::support::TestApp;
use crate::support::world::ok;

on_both_backends!(
    demo_loads_once_and_shows_real_content,
    synthetic_is_deterministic_and_reconciled,
    demo_loaded_before_streets_gains_them,
    a_large_load_adds_its_kept_suggestions_past_the_statement_timeout,
);

/// A load's kept-suggestion rows are added in one statement at its end, which on a large set
/// (3,000,000 households) runs for minutes: on PostgreSQL it is not cut by the connections'
/// statement timeout (here a timeout of 1 ms stands in for the 30 s one).
async fn a_large_load_adds_its_kept_suggestions_past_the_statement_timeout(app: TestApp) {
    use gridlight::db::schema::household_suggestions;
    let db = app.state.db.clone();
    let added = actix_web::web::block(move || {
        gridlight::seed::synthetic::load(&db, 1600, 7).unwrap();
        db.write_blocking(|c| {
            diesel::delete(household_suggestions::table).execute(c)?;
            if matches!(c, DbConn::Postgres(_)) {
                diesel::sql_query("SET LOCAL statement_timeout = '1ms'").execute(c)?;
            }
            Ok(gridlight::store::suggestions::add_missing(c)?)
        })
    })
    .await
    .unwrap();
    assert_eq!(added.unwrap(), 1600);
}

async fn load_demo(app: &TestApp) -> gridlight::seed::demo::Loaded {
    let db = app.state.db.clone();
    actix_web::web::block(move || gridlight::seed::demo::load(&db)).await.unwrap().unwrap()
}

async fn demo_loads_once_and_shows_real_content(app: TestApp) {
    let first = load_demo(&app).await;
    assert!(first.created);
    assert_eq!((first.households, first.members, first.visits, first.proposals), (318, 971, 655, 10));
    // An administrator, a district officer, six street officers, six secretaries, 25 workers.
    assert_eq!(first.logins.len(), 1 + 1 + 6 + 6 + 25);
    let db = app.state.db.clone();
    let (off, grids) = actix_web::web::block(move || grids_off_their_street(&db)).await.unwrap();
    assert_eq!((off, grids), (vec![], 21), "every demo grid code carries its street's code");
    let second = load_demo(&app).await;
    assert!(!second.created);
    let db = app.state.db.clone();
    let again = actix_web::web::block(move || gridlight::jobs::reconcile_all(&db).unwrap()).await.unwrap();
    assert_eq!((again.households, again.created, again.cancelled), (318, 0, 0));

    // The demo logins work with the documented password.
    let admin = app.login_as("shizhong.admin", gridlight::seed::demo::DEMO_PASSWORD).await;
    let admin = ok(&admin)["access_token"].as_str().unwrap().to_owned();
    let res = app.login_as("jianxin.sec", gridlight::seed::demo::DEMO_PASSWORD).await;
    let sec = ok(&res)["access_token"].as_str().unwrap().to_owned();
    let count = |v: &Value| v["items"].as_array().unwrap().len();
    // The district's officer oversees the six communities, in six named streets.
    let res = app.login_as("shizhong.district", gridlight::seed::demo::DEMO_PASSWORD).await;
    let district = ok(&res)["access_token"].as_str().unwrap().to_owned();
    let overview = ok(&app.get_as("/api/v1/stats/overview", &district).await);
    assert_eq!(
        (overview["streets"].as_array().unwrap().len(), overview["communities"].as_array().unwrap().len()),
        (6, 6)
    );
    assert_eq!(overview["totals"]["households"]["total"], 318);
    let res = app.login_as("qilishan.street", gridlight::seed::demo::DEMO_PASSWORD).await;
    let street = ok(&res)["access_token"].as_str().unwrap().to_owned();
    let mine = ok(&app.get_as("/api/v1/communities", &street).await);
    assert_eq!(mine["items"][0]["name"], "建新社区");
    assert_eq!(count(&mine), 1);
    let reds = ok(&app.get_as("/api/v1/households?tag=red&limit=500", &admin).await);
    let yellows = ok(&app.get_as("/api/v1/households?tag=yellow&limit=500", &admin).await);
    assert_eq!((count(&reds), count(&yellows)), (16, 46));
    assert_eq!(count(&ok(&app.get_as("/api/v1/tag-changes?status=pending&limit=500", &admin).await)), 10);
    // Every screen has something: overdue work, reviews due, suggestions that differ.
    let overdue = ok(&app.get_as("/api/v1/tasks?overdue=true&limit=500", &admin).await);
    assert!(count(&overdue) >= 5, "{}", count(&overdue));
    assert!(count(&ok(&app.get_as("/api/v1/households?review_due=true&limit=500", &sec).await)) >= 1);
    let all = ok(&app.get_as("/api/v1/households?limit=500", &admin).await);
    let differs = all["items"].as_array().unwrap().iter().filter(|h| h["tag"] != h["suggested_tag"]).count();
    assert!(differs >= 5, "{differs}");
    // The secretary sees only Jianxin.
    let mine = ok(&app.get_as("/api/v1/households?limit=500", &sec).await);
    assert_eq!(count(&mine), 63);
    let visits = ok(&app.get_as("/api/v1/visits?limit=500", &sec).await);
    assert_eq!(count(&visits), 110);
}

/// The grids whose code does not start with their community's street code (CJ/T 349), and how
/// many grids there are.
fn grids_off_their_street(db: &Db) -> (Vec<String>, usize) {
    let pairs: Vec<(String, String)> = db
        .read_blocking(|c| {
            Ok(grids::table
                .inner_join(communities::table.inner_join(streets::table))
                .select((grids::code, streets::code))
                .load(c)?)
        })
        .unwrap();
    let off = pairs.iter().filter(|(g, s)| !g.starts_with(s.as_str())).map(|(g, s)| format!("{g} in {s}")).collect();
    (off, pairs.len())
}

type Fingerprint = (Vec<(String, String, String, String)>, Vec<(String, String, String)>);

fn fingerprint(conn: &mut DbConn) -> QueryResult<Fingerprint> {
    let hh: Vec<(String, String, String, String)> = households::table
        .order(households::id.asc())
        .select((households::id, households::grid_id, households::tag, households::head_name))
        .load(conn)?;
    let ts: Vec<(String, String, chrono::NaiveDate)> = tasks::table
        .order(tasks::id.asc())
        .select((tasks::household_id, tasks::template_id, tasks::due_on))
        .load(conn)?;
    Ok((hh, ts.into_iter().map(|(h, t, d)| (h, t, d.to_string())).collect()))
}

async fn synthetic_is_deterministic_and_reconciled(app: TestApp) {
    let db = app.state.db.clone();
    let (summary, again, fp_a, logged, off) = actix_web::web::block(move || {
        let summary = gridlight::seed::synthetic::load(&db, 700, 3).unwrap();
        let again = gridlight::jobs::reconcile_all(&db).unwrap();
        let fp = db.read_blocking(|c| Ok(fingerprint(c)?)).unwrap();
        // The loaded rows predate the change log; its triggers are back afterwards: a change
        // of a loaded household is logged.
        let logged = db
            .write_blocking(|c| {
                let rows = |c: &mut DbConn| {
                    sync_log::table
                        .filter(sync_log::entity.eq_any(["household", "member", "visit", "task"]))
                        .count()
                        .get_result::<i64>(c)
                };
                let before = rows(c)?;
                let first = households::table.select(households::id).order(households::id.asc()).first::<String>(c)?;
                diesel::update(households::table.find(&first))
                    .set(households::version.eq(households::version))
                    .execute(c)?;
                Ok((before, rows(c)?))
            })
            .unwrap();
        (summary, again, fp, logged, grids_off_their_street(&db))
    })
    .await
    .unwrap();
    assert_eq!(logged, (0, 1), "no log rows for loaded records, one for a later change");
    let (off, grids) = off;
    assert!(off.is_empty() && grids > 0, "synthetic grid codes off their street: {off:?}");
    assert!(summary.contains("700 households"), "{summary}");
    // The invariant holds as loaded: reconciling changes nothing.
    assert_eq!((again.households, again.created, again.cancelled), (700, 0, 0));
    assert_eq!(fp_a.0.len(), 700);
    let reds = fp_a.0.iter().filter(|h| h.2 == "red").count();
    let yellows = fp_a.0.iter().filter(|h| h.2 == "yellow").count();
    assert!((15..=60).contains(&reds) && (70..=150).contains(&yellows), "{reds} red, {yellows} yellow");

    // Same seed, another (SQLite) database: the same data, to the id and the due date.
    let fp_b = actix_web::web::block(|| {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::support::test_config(dir.path().join("b.db").to_str().unwrap()).db;
        let other = Db::connect(&cfg).unwrap();
        other.migrate().unwrap();
        gridlight::seed::synthetic::load(&other, 700, 3).unwrap();
        // Loading again is a no-op.
        let twice = gridlight::seed::synthetic::load(&other, 700, 3).unwrap();
        assert!(twice.contains("already loaded"), "{twice}");
        other.read_blocking(|c| Ok(fingerprint(c)?)).unwrap()
    })
    .await
    .unwrap();
    assert!(fp_a == fp_b, "same seed, different data");
    // The accounts work.
    let res = app.login_as("syn3.g0", gridlight::seed::synthetic::PASSWORD).await;
    let token = ok(&res)["access_token"].as_str().unwrap().to_owned();
    let mine = ok(&app.get_as("/api/v1/households?limit=500", &token).await);
    assert_eq!(mine["items"].as_array().unwrap().len(), 300);
    // Loaded with the triggers off, every household still has a kept suggestion for the server
    // to work out, and the page answers the same from the kept ones.
    let db = app.state.db.clone();
    let worked = actix_web::web::block(move || gridlight::jobs::refresh_suggestions(&db)).await.unwrap().unwrap();
    assert_eq!(worked, 700);
    assert_eq!(ok(&app.get_as("/api/v1/households?limit=500", &token).await), mine);
}

/// (users, streets, communities per street id) of the database.
fn units_of(db: &Db) -> (i64, i64, Vec<(String, i64)>) {
    db.read_blocking(|c| {
        let users: i64 = users::table.count().get_result(c)?;
        let streets: i64 = streets::table.count().get_result(c)?;
        let per_street: Vec<(String, i64)> = communities::table
            .group_by(communities::street_id)
            .select((communities::street_id, diesel::dsl::count_star()))
            .order(communities::street_id.asc())
            .load(c)?;
        Ok((users, streets, per_street))
    })
    .unwrap()
}

async fn demo_loaded_before_streets_gains_them(app: TestApp) {
    let first = load_demo(&app).await;
    assert_eq!(first.completed, 0);
    let db = app.state.db.clone();
    let (loaded, old) = actix_web::web::block(move || {
        let loaded = units_of(&db);
        // What the streets migration leaves of a demo set loaded before it: the communities in
        // their district's default street, no named streets, no officers.
        db.write_blocking(|c| {
            let default =
                gridlight::store::streets::default_street(c, "370103", "市中区", chrono::Utc::now().naive_utc())?;
            diesel::delete(users::table.filter(users::role.eq_any(["street_officer", "district_officer"])))
                .execute(c)?;
            diesel::update(communities::table)
                .set((communities::street_id.eq(&default.id), communities::street.eq("默认街道")))
                .execute(c)?;
            diesel::delete(streets::table.filter(streets::code.ne("370103000"))).execute(c)?;
            Ok(())
        })
        .unwrap();
        (loaded, units_of(&db))
    })
    .await
    .unwrap();
    assert_eq!((old.0, old.1, old.2.len()), (loaded.0 - 7, 1, 1), "{old:?}");

    // Loading again adds the six streets and their officers, the district's officer, and moves
    // the six communities: 6 + 6 + 1 + 6.
    let again = load_demo(&app).await;
    assert!(!again.created);
    assert_eq!(again.completed, 19);
    let res = app.login_as("qilishan.street", gridlight::seed::demo::DEMO_PASSWORD).await;
    let street = ok(&res)["access_token"].as_str().unwrap().to_owned();
    let mine = ok(&app.get_as("/api/v1/communities", &street).await);
    assert_eq!(mine["items"][0]["name"], "建新社区");
    assert_eq!(mine["items"][0]["street"], "七里山街道");
    let res = app.login_as("shizhong.district", gridlight::seed::demo::DEMO_PASSWORD).await;
    let district = ok(&res)["access_token"].as_str().unwrap().to_owned();
    let overview = ok(&app.get_as("/api/v1/stats/overview", &district).await);
    let with_communities =
        overview["streets"].as_array().unwrap().iter().filter(|s| s["households"]["total"].as_i64() > Some(0)).count();
    assert_eq!(with_communities, 6, "{overview}");
    assert_eq!(overview["totals"]["households"]["total"], 318);

    // Once more: nothing to add, nothing changed; one completion event in all.
    let third = load_demo(&app).await;
    assert_eq!(third.completed, 0);
    let db = app.state.db.clone();
    let (now, events) = actix_web::web::block(move || {
        let events: i64 = db
            .read_blocking(|c| {
                Ok(audit_events::table.filter(audit_events::action.eq("seed.demo_completed")).count().get_result(c)?)
            })
            .unwrap();
        (units_of(&db), events)
    })
    .await
    .unwrap();
    assert_eq!((now.0, now.1 - 1, now.2.len()), (loaded.0, loaded.1, 6), "the default street stays, empty");
    assert_eq!(events, 1);
}
