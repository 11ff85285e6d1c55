//! The `gridlight` command: serve, migrate, and the operational subcommands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use gridlight::config::{Config, DbConfig, LogConfig, ServerConfig};

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
    },
    /// Apply pending migrations and exit.
    Migrate,
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
        Command::Serve { server } => {
            gridlight::serve(Config { db: cli.db, server }).await?;
        }
        Command::Migrate => {
            let db = gridlight::db::Db::connect(&cli.db)?;
            let applied = db.migrate()?;
            println!("applied {} migration(s)", applied.len());
            for version in applied {
                println!("  {version}");
            }
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
