//! Storage: one [`Db`] over SQLite (the embedded default) or PostgreSQL,
//! chosen by the URL scheme.
//!
//! Both backends run the same SQL through sqlx's `Any` driver: the schema uses
//! only types both treat alike, so the dialect shows up in exactly three
//! places, all in this file: connection settings, how a write transaction
//! starts, and which errors mean "try again". The shared test suite runs every
//! query on both.

pub mod audit;
pub mod changes;
pub mod clients;
pub mod credentials;
pub mod customers;
pub mod orders;
pub mod products;
pub mod retry;
pub mod user_tokens;

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    Any, AnyPool, Transaction,
    any::{AnyConnectOptions, AnyPoolOptions},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> anyhow::Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            anyhow::bail!("unsupported database URL scheme: use sqlite://PATH or postgres://...")
        }
    }
}

/// The database handle shared by the server, the CLI and the tests.
#[derive(Clone)]
pub struct Db {
    /// Reads, and on PostgreSQL everything.
    pool: AnyPool,
    /// Writes. On SQLite a single connection: SQLite has one writer at a
    /// time anyway, and queueing in the pool is fairer and cheaper than
    /// connections spinning on `SQLITE_BUSY`. On PostgreSQL the same pool.
    writer: AnyPool,
    backend: Backend,
    /// Who to tell when this process changes something caches depend on.
    changes: Arc<changes::ChangeHub>,
}

#[derive(Debug, Clone)]
pub struct DbOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// SQLite creates the file when missing (`mode=rwc`) unless the URL says
/// otherwise.
fn with_create_mode(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

impl Db {
    /// Connects and runs the embedded migrations.
    pub async fn connect(url: &str, options: &DbOptions) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let db = match backend {
            Backend::Sqlite => {
                let connect = AnyConnectOptions::from_str(&with_create_mode(url))?;
                let pool_options = || {
                    AnyPoolOptions::new()
                        .acquire_timeout(options.acquire_timeout)
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                for pragma in [
                                    "PRAGMA journal_mode = WAL",
                                    "PRAGMA busy_timeout = 5000",
                                    "PRAGMA foreign_keys = ON",
                                    "PRAGMA synchronous = NORMAL",
                                ] {
                                    sqlx::query(pragma).execute(&mut *conn).await?;
                                }
                                Ok(())
                            })
                        })
                };
                let writer = pool_options()
                    .max_connections(1)
                    .connect_with(connect.clone())
                    .await?;
                // The writer creates the file and switches it to WAL first.
                MIGRATOR.run(&writer).await?;
                let pool = pool_options()
                    .max_connections(options.max_connections)
                    .connect_with(connect)
                    .await?;
                Db {
                    pool,
                    writer,
                    backend,
                    changes: Arc::default(),
                }
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .connect(url)
                    .await?;
                MIGRATOR.run(&pool).await?;
                Db {
                    writer: pool.clone(),
                    pool,
                    backend,
                    changes: Arc::default(),
                }
            }
        };
        Ok(db)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn reader(&self) -> &AnyPool {
        &self.pool
    }

    /// A transaction that will write. On SQLite it takes the write lock up
    /// front (`BEGIN IMMEDIATE`), so a transaction never has to upgrade a
    /// read lock halfway through, which is where SQLite deadlocks.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.writer.begin().await,
        }
    }

    /// For single-statement writes outside a transaction.
    pub(crate) fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Connections open and idle in the read pool, for `/metrics`.
    pub fn pool_usage(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// Is the database reachable? For `/readyz`.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// Was this a unique-constraint violation (a duplicate SKU or email)?
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|db_error| db_error.is_unique_violation())
}

/// Builds `$first, $first+1, …` for an `IN (…)` list of `count` values.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_url() {
        assert_eq!(
            Backend::from_url("sqlite://jeton.db").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::from_url("postgres://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert!(Backend::from_url("mysql://u@h/db").is_err());
    }

    #[test]
    fn create_mode() {
        assert_eq!(with_create_mode("sqlite://a.db"), "sqlite://a.db?mode=rwc");
        assert_eq!(
            with_create_mode("sqlite://a.db?mode=ro"),
            "sqlite://a.db?mode=ro"
        );
    }

    #[test]
    fn placeholder_list() {
        assert_eq!(placeholders(2, 3), "$2, $3, $4");
    }
}
