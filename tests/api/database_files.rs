//! The SQLite files hold personal data and password hashes: only their owner may read them.
//! (SQLite only: PostgreSQL keeps its files itself.)

#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use gridlight::domain::Role;

use crate::support::{TestApp, test_config};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// The database file and the two SQLite keeps beside it in WAL mode.
fn files(db: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [db.to_owned(), with("-wal"), with("-shm")]
}

/// `(file name, mode in octal)` of each file.
fn modes(db: &Path) -> Vec<(String, String)> {
    files(db)
        .iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), format!("{:o}", mode(p))))
        .collect()
}

fn all_private(db: &Path) -> Vec<(String, String)> {
    files(db).iter().map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), "600".to_owned())).collect()
}

#[actix_web::test]
async fn a_new_database_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gridlight.db");
    // Opened and migrated by the code the server runs, then written to (an account, with its
    // password hash), so that the WAL and its index exist.
    let app = TestApp::with_config_for_test(test_config(db.to_str().unwrap())).await;
    app.user("admin", Role::Admin, None).await;
    assert_eq!(modes(&db), all_private(&db));
    drop(app);
}

#[actix_web::test]
async fn an_existing_database_is_made_private_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gridlight.db");
    // A database made before this rule, still open elsewhere (say, by a CLI command), so that
    // its WAL and index files exist too; all readable by everyone.
    let mut other = SqliteConnection::establish(db.to_str().unwrap()).unwrap();
    other.batch_execute("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);").unwrap();
    for path in files(&db) {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let app = TestApp::with_config_for_test(test_config(db.to_str().unwrap())).await;
    app.user("admin", Role::Admin, None).await;
    assert_eq!(modes(&db), all_private(&db));
    drop(app);
    drop(other);
}
