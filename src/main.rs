//! The `gridlight` command: serve, migrate, and the operational subcommands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use gridlight::config::{Config, DbConfig, LogConfig, ServerConfig};
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
                let db_config = cli.db.clone();
                let loaded = actix_web::web::block(move || -> anyhow::Result<_> {
                    let db = gridlight::db::Db::connect(&db_config)?;
                    db.migrate()?;
                    gridlight::seed::demo::load(&db).map_err(describe)
                })
                .await??;
                print_demo(&loaded);
            }
            gridlight::serve(Config { db: cli.db, server }).await?;
        }
        Command::Seed { command } => {
            let db_config = cli.db.clone();
            let started = std::time::Instant::now();
            match command {
                SeedCommand::Demo => {
                    let loaded = actix_web::web::block(move || -> anyhow::Result<_> {
                        let db = gridlight::db::Db::connect(&db_config)?;
                        db.migrate()?;
                        gridlight::seed::demo::load(&db).map_err(describe)
                    })
                    .await??;
                    print_demo(&loaded);
                }
                SeedCommand::Synthetic { households, seed } => {
                    let made = actix_web::web::block(move || -> anyhow::Result<_> {
                        let db = gridlight::db::Db::connect(&db_config)?;
                        db.migrate()?;
                        gridlight::seed::synthetic::load(&db, households, seed).map_err(describe)
                    })
                    .await??;
                    println!("{made}");
                }
            }
            println!("done in {:.1?}", started.elapsed());
        }
        Command::Migrate => {
            let db = gridlight::db::Db::connect(&cli.db)?;
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
                phone,
            };
            let db_config = cli.db.clone();
            let row = actix_web::web::block(move || -> anyhow::Result<_> {
                let db = gridlight::db::Db::connect(&db_config)?;
                db.migrate()?;
                let created = input.checked().and_then(|account| {
                    db.write_blocking(|conn| gridlight::ops::users::create(conn, Acting::Operator, account))
                });
                created.map_err(describe)
            })
            .await??;
            println!("created {} `{}` ({})", row.role, row.username, row.id);
        }
        Command::Tasks { command: TasksCommand::Reconcile } => {
            let db_config = cli.db.clone();
            let started = std::time::Instant::now();
            let done = actix_web::web::block(move || -> anyhow::Result<_> {
                let db = gridlight::db::Db::connect(&db_config)?;
                db.migrate()?;
                gridlight::jobs::reconcile_all(&db).map_err(describe)
            })
            .await??;
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
    } else {
        println!("the demo data set is already loaded");
    }
    println!("demo logins (password `{}`):", gridlight::seed::demo::DEMO_PASSWORD);
    for l in &loaded.logins {
        println!("  {:<22} {:<12} {} {}", l.username, l.role, l.display_name, l.community.as_deref().unwrap_or(""));
    }
}
