//! The `gridlight` command: serve, migrate, and the operational subcommands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use gridlight::config::{Config, DbConfig, LogConfig, ServerConfig};
use gridlight::db::Db;
use gridlight::ops::users::Acting;

/// mimalloc instead of glibc's malloc: answering a page allocates many small strings (rows,
/// JSON), and glibc's allocator took about a fifth of the CPU time of a households page.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "gridlight", version, about = "Community grid governance with the traffic-light household mechanism")]
struct Cli {
    #[command(flatten)]
    db: DbConfig,
    #[command(flatten)]
    log: LogConfig,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending migrations, then serve the API.
    Serve {
        #[command(flatten)]
        server: ServerConfig,
        /// Load the demo data set first (idempotent) and print the demo logins.
        #[arg(long)]
        demo: bool,
    },
    /// Load data: the demo data set, or a large synthetic one for benchmarks.
    Seed {
        #[command(subcommand)]
        command: SeedCommand,
    },
    /// Apply pending migrations and exit.
    Migrate,
    /// Manage accounts from the command line (how the first administrator is made).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Task maintenance.
    Tasks {
        #[command(subcommand)]
        command: TasksCommand,
    },
    /// The data keys that seal ID numbers and phones: make one, rotate, verify.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Import a household roster (.xlsx or .csv): the dry run, then (unless --dry-run) the commit.
    Import {
        /// The roster file.
        file: PathBuf,
        /// The community's id.
        #[arg(long)]
        community: String,
        /// The account the import acts as (a secretary of the community or an administrator);
        /// the audit log shows its changes as this account's.
        #[arg(long = "as", value_name = "USERNAME")]
        username: String,
        /// Check only: record the dry run and print its errors; write nothing else.
        #[arg(long)]
        dry_run: bool,
        /// Commit the households without errors and skip those with any.
        #[arg(long)]
        skip_errors: bool,
        /// Also remove the community's households the file does not list, for this reason
        /// (moved_out, deceased, merged, other), as `DELETE /households/{id}` does.
        #[arg(long, value_name = "REASON")]
        remove_missing: Option<String>,
        /// A note for those removals.
        #[arg(long, requires = "remove_missing")]
        removal_note: Option<String>,
    },
    /// Export a community's households as a roster, masked (`.xlsx` or `.csv` by the file name).
    Export {
        /// Where to write it.
        file: PathBuf,
        #[arg(long)]
        community: String,
        /// The account the export reads as.
        #[arg(long = "as", value_name = "USERNAME")]
        username: String,
    },
    /// Write the OpenAPI document, or check that the committed one matches the code.
    Openapi {
        /// Fail (exit 1) if the file differs from what the code serves, instead of writing it.
        #[arg(long)]
        check: bool,
        /// Where the document lives.
        #[arg(long, default_value = "openapi/openapi.json")]
        path: PathBuf,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account; the password is read from standard input.
    Create {
        #[arg(long)]
        username: String,
        /// `admin`, `secretary` or `grid_worker`.
        #[arg(long)]
        role: String,
        /// The community of a secretary or grid worker.
        #[arg(long)]
        community: Option<String>,
        /// The name shown in the apps (default: the username).
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        phone: Option<String>,
        /// Read the password from the first line of standard input (required: passwords never
        /// go on a command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum SeedCommand {
    /// The demo data set of seeds/demo/ (six Shizhong communities); loading twice = once.
    Demo,
    /// A deterministic large data set (same seed → same data), with visit history and tasks.
    Synthetic {
        /// How many households.
        #[arg(long)]
        households: u64,
        /// Seed of the generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a new random data key (for GRIDLIGHT_DATA_KEY); touches no database.
    Generate,
    /// Re-seal every value with the current key, in batches, beside a running server; then
    /// retire the keys nothing uses. With a key file (SQLite) a new key is added first.
    Rotate {
        /// Finish a rotation that was stopped: no new key, only what is left.
        #[arg(long)]
        resume: bool,
    },
    /// Open every sealed value and check its blind index; exit 1 if any fails.
    Verify,
}

#[derive(Subcommand)]
enum TasksCommand {
    /// Re-establish the task invariant for every household (idempotent).
    Reconcile,
}

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    gridlight::telemetry::init(&cli.log);
    match run(cli).await {
        Ok(code) => code,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "gridlight failed");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { server, demo } => {
            if demo {
                print_demo(&on_migrated(&cli.db, gridlight::seed::demo::load).await?);
            }
            gridlight::serve(Config { db: cli.db, server }).await?;
        }
        Command::Seed { command } => {
            let started = std::time::Instant::now();
            match command {
                SeedCommand::Demo => print_demo(&on_migrated(&cli.db, gridlight::seed::demo::load).await?),
                SeedCommand::Synthetic { households, seed } => {
                    let made =
                        on_migrated(&cli.db, move |db| gridlight::seed::synthetic::load(db, households, seed)).await?;
                    println!("{made}");
                }
            }
            println!("done in {:.1?}", started.elapsed());
        }
        Command::Migrate => {
            let db = Db::connect(&cli.db)?;
            let applied = db.migrate()?;
            println!("applied {} migration(s)", applied.len());
            for version in applied {
                println!("  {version}");
            }
        }
        Command::User {
            command: UserCommand::Create { username, role, community, display_name, phone, password_stdin },
        } => {
            debug_assert!(password_stdin);
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            let role = gridlight::domain::Role::parse(&role)?;
            let input = gridlight::api::users::CreateUser {
                display_name: display_name.unwrap_or_else(|| username.clone()),
                username,
                password,
                role,
                community_id: community,
                street_id: None,
                district_id: None,
                phone,
            };
            let row = on_migrated(&cli.db, move |db| {
                let account = input.checked()?;
                db.write_blocking(|conn| gridlight::ops::users::create(conn, Acting::Operator, account))
            })
            .await?;
            println!("created {} `{}` ({})", row.role, row.username, row.id);
        }
        Command::Tasks { command: TasksCommand::Reconcile } => {
            let started = std::time::Instant::now();
            let done = on_migrated(&cli.db, gridlight::jobs::reconcile_all).await?;
            println!(
                "reconciled {} households in {:.1?}: {} tasks created, {} cancelled",
                done.households,
                started.elapsed(),
                done.created,
                done.cancelled
            );
        }
        Command::Keys { command } => {
            let db_config = cli.db.clone();
            return actix_web::web::block(move || keys_command(&db_config, command)).await?;
        }
        Command::Import { file, community, username, dry_run, skip_errors, remove_missing, removal_note } => {
            // The same rules as `DELETE /households/{id}?reason=…&note=…`.
            let remove_missing = remove_missing
                .map(|reason| {
                    gridlight::api::households::RemoveQuery { reason: Some(reason), note: removal_note }.checked()
                })
                .transpose()
                .map_err(describe)?;
            let options = gridlight::ops::imports::CommitOptions { skip_errors, remove_missing };
            let db_config = cli.db.clone();
            actix_web::web::block(move || roster_import(&db_config, &file, &community, &username, dry_run, options))
                .await??;
        }
        Command::Export { file, community, username } => {
            let db_config = cli.db.clone();
            let xlsx = file.extension().is_some_and(|e| e.eq_ignore_ascii_case("xlsx"));
            let bytes = actix_web::web::block(move || -> anyhow::Result<Vec<u8>> {
                let db = gridlight::db::Db::connect(&db_config)?;
                db.migrate()?;
                let caller = acting_as(&db, &username)?;
                db.read_blocking(|c| gridlight::api::exports::community_roster(c, &caller, &community, xlsx))
                    .map_err(describe)
            })
            .await??;
            std::fs::write(&file, &bytes)?;
            println!("wrote {} ({} bytes)", file.display(), bytes.len());
        }
        Command::Openapi { check, path } => {
            let text = gridlight::api::openapi_json();
            if check {
                let committed = std::fs::read_to_string(&path).unwrap_or_default();
                if committed != text {
                    eprintln!("{} differs from the served document; run `gridlight openapi`", path.display());
                    return Ok(ExitCode::FAILURE);
                }
                println!("{} is up to date", path.display());
            } else {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&path, text)?;
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `gridlight keys rotate` and `gridlight keys verify`.
fn keys_command(db_config: &gridlight::config::DbConfig, command: KeysCommand) -> anyhow::Result<ExitCode> {
    use gridlight::db::sealing;
    use gridlight::seed::Progress;
    let open = || -> anyhow::Result<gridlight::db::Db> {
        let db = gridlight::db::Db::connect(db_config)?;
        db.migrate()?;
        Ok(db)
    };
    let started = std::time::Instant::now();
    match command {
        KeysCommand::Generate => println!("{}", gridlight::db::keys::DataKey::generate()),
        KeysCommand::Rotate { resume } => {
            let db = open()?;
            if !resume && matches!(db.keys().source(), gridlight::db::keyfile::KeySource::File(_)) {
                let id = db.keys().add_key(&db)?;
                println!("added data key {id} to the key file (back it up)");
            }
            let mut progress = Progress::new("re-sealing", sealing::rotation_left(&db)?);
            let done = sealing::rotate(&db, &mut |n| progress.advance(n))?;
            progress.finish();
            println!("re-sealed {} values with key {} in {:.1?}", done.resealed, done.current, started.elapsed());
            for id in &done.retired {
                println!(
                    "retired key {id}: nothing uses it any more (remove it from GRIDLIGHT_DATA_KEY if it is there)"
                );
            }
        }
        KeysCommand::Verify => {
            let db = open()?;
            let mut progress = Progress::new("verifying", sealing::value_count(&db)?);
            let report = sealing::verify(&db, &mut |n| progress.advance(n))?;
            progress.finish();
            for (key, n) in &report.by_key {
                println!("key {key}: {n} values");
            }
            for failure in &report.failures {
                println!("FAILED {failure}");
            }
            println!(
                "checked {} values in {:.1?}: {} failed",
                report.checked,
                started.elapsed(),
                report.failures.len()
            );
            if !report.failures.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a command's `work` on the database, migrated first, off the async workers.
async fn on_migrated<T: Send + 'static>(
    config: &DbConfig,
    work: impl FnOnce(&Db) -> gridlight::error::ApiResult<T> + Send + 'static,
) -> anyhow::Result<T> {
    let config = config.clone();
    actix_web::web::block(move || {
        let db = Db::connect(&config)?;
        db.migrate()?;
        work(&db).map_err(describe)
    })
    .await?
}

/// The account a command acts as, as the API would see it on a request.
fn acting_as(db: &gridlight::db::Db, username: &str) -> anyhow::Result<gridlight::auth::AuthUser> {
    let name = username.to_owned();
    let row = db
        .read_blocking(move |c| Ok(gridlight::store::users::find_by_username(c, &name)?))
        .map_err(describe)?
        .filter(|u| u.active)
        .ok_or_else(|| anyhow::anyhow!("no active account `{username}`"))?;
    Ok(gridlight::auth::AuthUser {
        id: row.id.clone(),
        role: row.role,
        community_id: row.community_id.clone(),
        request_id: None,
        row,
    })
}

/// `gridlight import`: the dry run as the API does it, its summary and errors, then the commit
/// with a progress bar.
fn roster_import(
    db_config: &gridlight::config::DbConfig,
    file: &std::path::Path,
    community: &str,
    username: &str,
    dry_run: bool,
    options: gridlight::ops::imports::CommitOptions,
) -> anyhow::Result<()> {
    use gridlight::api::imports;
    let started = std::time::Instant::now();
    let db = gridlight::db::Db::connect(db_config)?;
    db.migrate()?;
    let caller = acting_as(&db, username)?;
    let bytes = std::fs::read(file)?;
    let checked = imports::read_upload(&bytes).map_err(describe)?;
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
    let row = db
        .write_blocking(|c| imports::dry_run(c, &caller, community, name.as_deref(), &bytes, checked))
        .map_err(describe)?;
    let out = imports::ImportOut::of(row).map_err(describe)?;
    println!("import {} ({}), checked in {:.1?}", out.id, out.file_sha256, started.elapsed());
    println!("{}", serde_json::to_string_pretty(&out.summary)?);
    for e in &out.errors {
        println!("  row {:>6} {:<8} {:<22} {}", e.row, e.column.as_deref().unwrap_or(""), e.code, e.message);
    }
    if out.error_count as usize > out.errors.len() {
        println!("  … {} errors in all: GET /api/v1/imports/{}/errors", out.error_count, out.id);
    }
    if dry_run {
        return Ok(());
    }
    let committing = std::time::Instant::now();
    let mut bar: Option<gridlight::seed::Progress> = None;
    let id = out.id.clone();
    let mut last = 0;
    let row = imports::commit(&db, &caller, &id, options, &mut |done, total| {
        bar.get_or_insert_with(|| gridlight::seed::Progress::new("households", total)).advance(done - last);
        last = done;
    })
    .map_err(describe)?;
    if let Some(bar) = bar {
        bar.finish();
    }
    let out = imports::ImportOut::of(row).map_err(describe)?;
    println!("committed in {:.1?}: {}", committing.elapsed(), serde_json::to_string(&out.outcome)?);
    Ok(())
}

/// A CLI-readable account of an API error, with the field errors spelled out.
fn describe(err: gridlight::error::ApiError) -> anyhow::Error {
    let problem = err.problem();
    let mut text = problem.detail;
    for e in problem.errors.unwrap_or_default() {
        text.push_str(&format!("\n  {}: {}", e.field, e.message));
    }
    anyhow::anyhow!(text)
}

fn print_demo(loaded: &gridlight::seed::demo::Loaded) {
    if loaded.created {
        println!(
            "loaded the demo data set: {} households, {} members, {} visits, {} pending proposals, {} open tasks",
            loaded.households, loaded.members, loaded.visits, loaded.proposals, loaded.tasks
        );
    } else if loaded.completed > 0 {
        println!(
            "the demo data set is already loaded; added what it lacked (streets, officers, moves): {}",
            loaded.completed
        );
    } else {
        println!("the demo data set is already loaded");
    }
    println!("demo logins (password `{}`):", gridlight::seed::demo::DEMO_PASSWORD);
    for l in &loaded.logins {
        println!("  {:<22} {:<12} {} {}", l.username, l.role, l.display_name, l.community.as_deref().unwrap_or(""));
    }
}
