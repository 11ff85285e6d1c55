use std::collections::BTreeSet;
use std::path::Path;

use diesel::prelude::*;
use diesel_migrations::MigrationHarness;
use futures_util::future::join_all;

use gridlight::db::schema::audit_events;
use gridlight::db::{Backend, Db, DbConn, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};

use crate::on_both_backends;
use crate::support::TestApp;

fn migration_dirs(backend: &str) -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| {
            for file in ["up.sql", "down.sql"] {
                assert!(e.path().join(file).is_file(), "{} has no {file}", e.path().display());
            }
            e.file_name().to_string_lossy().into_owned()
        })
        .collect()
}

#[test]
fn migration_directories_stay_in_step() {
    let sqlite = migration_dirs("sqlite");
    let postgres = migration_dirs("postgres");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, postgres, "migrations/sqlite and migrations/postgres must hold the same directory names");
}

on_both_backends!(migrations_apply_once_and_revert, concurrent_writers_never_see_locked);

async fn migrations_apply_once_and_revert(app: TestApp) {
    let db = app.state.db.clone();
    actix_web::web::block(move || {
        // Already applied by the harness: nothing pending.
        assert_eq!(db.migrate().unwrap(), Vec::<String>::new());
        let expected = migration_dirs(if db.backend() == Backend::Sqlite { "sqlite" } else { "postgres" }).len();
        db.write_blocking(|conn| {
            let reverted = match conn {
                DbConn::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS).unwrap().len(),
                DbConn::Postgres(c) => c.revert_all_migrations(POSTGRES_MIGRATIONS).unwrap().len(),
            };
            assert_eq!(reverted, expected);
            Ok(())
        })
        .unwrap();
        assert_eq!(db.migrate().unwrap().len(), expected);
    })
    .await
    .unwrap();
}

fn insert_event(conn: &mut DbConn, action: &str) -> QueryResult<usize> {
    diesel::insert_into(audit_events::table)
        .values((
            audit_events::id.eq(uuid::Uuid::now_v7().to_string()),
            audit_events::at.eq(chrono::Utc::now().naive_utc()),
            audit_events::action.eq(action),
            audit_events::entity_type.eq("test"),
            audit_events::summary.eq("{}"),
        ))
        .execute(conn)
}

/// Writers in this process and in a second pool on the same database (as a second process
/// would have) all succeed: one writer connection per pool, `BEGIN IMMEDIATE`, busy timeout.
async fn concurrent_writers_never_see_locked(app: TestApp) {
    let db = app.state.db.clone();
    let cfg = app.state.config.db.clone();
    let other = actix_web::web::block(move || Db::connect(&cfg)).await.unwrap().unwrap();
    let writes = (0..60).map(|i| {
        let handle = if i % 2 == 0 { db.clone() } else { other.clone() };
        async move {
            handle
                .write(move |conn| {
                    // Read, then write, inside one transaction: the pattern that deadlocks with
                    // deferred transactions.
                    let n: i64 = audit_events::table.count().get_result(conn)?;
                    insert_event(conn, &format!("write-{i}-{n}"))?;
                    Ok(())
                })
                .await
        }
    });
    let results = join_all(writes).await;
    let failures: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).map(|e| e.to_string()).collect();
    assert!(failures.is_empty(), "{failures:?}");
    let count: i64 = db.read(|conn| Ok(audit_events::table.count().get_result(conn)?)).await.unwrap();
    assert_eq!(count, 60);

    if app.backend == Backend::Sqlite {
        let pragmas = db
            .write(|conn| {
                let DbConn::Sqlite(c) = conn else { unreachable!() };
                #[derive(QueryableByName)]
                struct Mode {
                    #[diesel(sql_type = diesel::sql_types::Text)]
                    journal_mode: String,
                }
                #[derive(QueryableByName)]
                struct Int {
                    #[diesel(sql_type = diesel::sql_types::Integer)]
                    value: i32,
                }
                let mode = diesel::sql_query("PRAGMA journal_mode").get_result::<Mode>(c)?.journal_mode;
                let fk =
                    diesel::sql_query("SELECT foreign_keys AS value FROM pragma_foreign_keys").get_result::<Int>(c)?;
                let sync =
                    diesel::sql_query("SELECT synchronous AS value FROM pragma_synchronous").get_result::<Int>(c)?;
                Ok((mode, fk.value, sync.value))
            })
            .await
            .unwrap();
        // WAL, foreign keys on, synchronous = FULL (2) by default.
        assert_eq!(pragmas, ("wal".to_owned(), 1, 2));
    }
}
