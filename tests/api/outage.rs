//! The database going away under a running app: 503 problem+json, never a hang or a 500, and
//! recovery without a restart once it is back.

use std::time::{Duration, Instant};

use crate::support::postgres::Cluster;
use crate::support::{TestApp, test_config};

#[actix_web::test]
async fn postgres_outage_answers_503_then_recovers() {
    let cluster = match actix_web::web::block(|| Cluster::start(false)).await.unwrap() {
        Ok(c) => c,
        Err(e) if std::env::var("GRIDLIGHT_TEST_SKIP_POSTGRES").as_deref() == Ok("1") => {
            eprintln!("\n!!! SKIPPING the PostgreSQL outage test: {e}\n");
            return;
        }
        Err(e) => panic!("the outage test needs PostgreSQL server binaries: {e}"),
    };
    let mut config = test_config(&cluster.url("postgres"));
    config.db.db_timeout_ms = 1000;
    let app = TestApp::with_config_for_test(config).await;
    assert_eq!(app.get("/readyz").await.status, 200);

    let cluster = actix_web::web::block(move || cluster.stop_server().map(|_| cluster)).await.unwrap().unwrap();
    for _ in 0..3 {
        let started = Instant::now();
        let res = app.get("/readyz").await;
        let body = res.assert_problem(503);
        assert_eq!(body["type"], "urn:gridlight:problem:unavailable");
        assert!(res.header("retry-after").is_some());
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    }
    // The process itself stays alive.
    assert_eq!(app.get("/healthz").await.status, 200);

    let cluster = actix_web::web::block(move || cluster.start_server().map(|_| cluster)).await.unwrap().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let res = app.get("/readyz").await;
        if res.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery within 20 s: {}", res.status);
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    drop(app);
    drop(cluster);
}
