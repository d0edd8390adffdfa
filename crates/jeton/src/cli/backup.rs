//! `jeton backup --to FILE`: a consistent copy of the SQLite database,
//! made while servers go on writing to it (docs/operations.md).
//!
//! `VACUUM INTO` reads the database in one read transaction, so the copy
//! is the database as of one commit: every write committed before the
//! copy began is in it, none that committed after. In WAL mode a reader
//! blocks no writer, so the servers keep taking orders meanwhile. The copy
//! is a compact, ordinary database file: restoring is putting it in the
//! place of the database while no server runs.

use std::path::PathBuf;

use anyhow::Context;
use sqlx::Connection;

use crate::store::Backend;

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The file to write the copy to. It must not exist: a backup never
    /// overwrites anything.
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
}

pub async fn run(url: &str, args: BackupArgs) -> anyhow::Result<()> {
    if Backend::from_url(url)? == Backend::Postgres {
        anyhow::bail!(
            "jeton backup copies SQLite databases; back up PostgreSQL with its own tools: \
             pg_dump (a consistent dump while the servers run) and pg_restore, or a base \
             backup with WAL archiving for point-in-time recovery (docs/operations.md)"
        );
    }
    let to = &args.to;
    // `symlink_metadata`: a dangling link is something too.
    if std::fs::symlink_metadata(to).is_ok() {
        anyhow::bail!(
            "{} already exists; a backup never overwrites a file: name a new one",
            to.display()
        );
    }
    let target = to
        .to_str()
        .with_context(|| format!("{} is not a UTF-8 path", to.display()))?;
    // Read-only: a backup never creates the database it copies, nor
    // migrates it.
    let source = read_only(url);
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&source)
        .await
        .with_context(|| format!("cannot open the SQLite database {url}"))?;
    // A checkpoint may hold the database for a moment.
    sqlx::query("PRAGMA busy_timeout = 5000")
        .execute(&mut conn)
        .await?;
    sqlx::query("VACUUM INTO $1")
        .bind(target.to_owned())
        .execute(&mut conn)
        .await
        .with_context(|| format!("cannot write the copy to {}", to.display()))?;
    conn.close().await?;
    // SQLite writes the copy without syncing it: it is on disk, not only
    // in the OS's cache, once this says it is done.
    let file = std::fs::File::open(to)?;
    file.sync_all()?;
    let bytes = file.metadata()?.len();
    println!("backed up to {} ({bytes} bytes)", to.display());
    Ok(())
}

/// The URL with `mode=ro`, whatever mode it asked for.
fn read_only(url: &str) -> String {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params: Vec<&str> = query
        .split('&')
        .filter(|param| !param.is_empty() && !param.starts_with("mode="))
        .collect();
    params.push("mode=ro");
    format!("{path}?{}", params.join("&"))
}

#[cfg(test)]
mod tests {
    use super::read_only;

    #[test]
    fn read_only_urls() {
        assert_eq!(read_only("sqlite://jeton.db"), "sqlite://jeton.db?mode=ro");
        assert_eq!(
            read_only("sqlite:///a/b.db?mode=rwc&cache=shared"),
            "sqlite:///a/b.db?cache=shared&mode=ro"
        );
    }
}
