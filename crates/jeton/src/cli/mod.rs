//! The `jeton` command: `serve`, `migrate`, `client …`, `token …`, `staff …`,
//! `backup`, `secret-scanning pattern`.

mod audit;
mod backup;
mod client;
pub mod demo;
mod secret_scanning;
mod serve;
mod staff;
mod token;
mod usage;

use clap::{Parser, Subcommand};

use crate::store::{Db, DbOptions};

#[derive(Debug, Parser)]
#[command(
    name = "jeton",
    version,
    about = "A storefront API with first-class client keys and user tokens"
)]
pub struct Cli {
    /// sqlite://PATH (created if missing) or postgres://USER@HOST/DB.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://jeton.db",
        global = true
    )]
    database_url: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
// Parsed once at start; its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Serve the API.
    Serve(serve::ServeArgs),
    /// Apply database migrations (every command also does this on start).
    Migrate,
    /// Manage client applications and their keys.
    #[command(subcommand)]
    Client(client::ClientCommand),
    /// Manage user tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// The shop's people, who sign in to the console.
    #[command(subcommand)]
    Staff(staff::StaffCommand),
    /// Show the audit log of credential events, oldest first.
    Audit(audit::AuditArgs),
    /// Show requests by outcome over time: a client's, a customer's or the
    /// whole shop's (docs/usage.md).
    Usage(usage::UsageArgs),
    /// Copy the SQLite database to a new file, consistently, while servers
    /// write to it (docs/operations.md). For PostgreSQL, use pg_dump.
    Backup(backup::BackupArgs),
    /// What to send GitHub to enrol this server's tokens in secret
    /// scanning (docs/leaks.md).
    #[command(subcommand)]
    SecretScanning(secret_scanning::SecretScanningCommand),
}

/// Parses the command line. Help and `--version` print and exit as usual;
/// a usage error becomes one line, like every other error of the command.
fn parse() -> anyhow::Result<Cli> {
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(error) if error.use_stderr() => {
            let text = error.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            anyhow::bail!("{}", first.trim_start_matches("error: "))
        }
        Err(error) => error.exit(),
    }
}

pub async fn run() -> anyhow::Result<()> {
    let cli = parse()?;
    // Needs no database: it describes the token format.
    let command = match cli.command {
        Command::SecretScanning(command) => return secret_scanning::run(command),
        // Copies the database as it is: it neither creates nor migrates it.
        Command::Backup(args) => return backup::run(&cli.database_url, args).await,
        command => command,
    };
    let mut options = DbOptions::default();
    if let Command::Serve(args) = &command {
        options.credential_outage_grace = args.credential_outage_grace;
    }
    let db = Db::connect(&cli.database_url, &options).await?;
    let outcome = match command {
        Command::Serve(args) => serve::run(db.clone(), args).await,
        Command::Migrate => {
            println!("migrations applied");
            Ok(())
        }
        Command::Client(command) => client::run(&db, command).await,
        Command::Token(command) => token::run(&db, command).await,
        Command::Staff(command) => staff::run(&db, command).await,
        Command::Audit(args) => audit::run(&db, args).await,
        Command::Usage(args) => usage::run(&db, args).await,
        Command::SecretScanning(command) => secret_scanning::run(command),
        Command::Backup(args) => backup::run(&cli.database_url, args).await,
    };
    db.close().await;
    outcome
}

/// Durations such as `90s`, `15m`, `1h`, `24h`, `7d`.
fn parse_duration(text: &str) -> Result<time::Duration, String> {
    let std = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    time::Duration::try_from(std).map_err(|e| e.to_string())
}
