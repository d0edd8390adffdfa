//! Storage: one [`Db`] over SQLite (the embedded default) or PostgreSQL,
//! chosen by the URL scheme.
//!
//! Both backends run the same SQL through sqlx's `Any` driver: the schema uses
//! only types both treat alike, so the dialect shows up in exactly three
//! places: connection settings and how a write transaction starts (both in
//! this file), and what an error code means (`db_error.rs`). Rows are read
//! with `#[derive(FromRow)]` (`columns.rs` says how times and lists are
//! stored). The shared test suite runs every query on both.

pub mod access_tokens;
pub mod audit;
pub mod carts;
pub mod changes;
pub mod clients;
pub mod columns;
pub mod customers;
mod data_steps;
pub mod db_error;
pub mod guests;
pub mod leaks;
pub mod orders;
pub mod products;
pub mod retry;
pub mod staff;
pub mod usage;
pub mod user_tokens;

use crate::identity::TOKENS;
use std::{str::FromStr, sync::Arc, time::Duration};

use jeton_auth::{Clock, CredentialTx, SqlStore, SqlStoreError};
use sqlx::{
    Any, AnyPool, Transaction,
    any::{AnyConnectOptions, AnyPoolOptions},
};

use crate::domain::time::{Timestamp, to_micros};

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
    /// What every stored time and every expiry is read from; the app's
    /// gate and limits read the same one.
    clock: Clock,
    /// jeton-auth's store, on the same database: it holds clients, keys,
    /// user tokens and access tokens, writes every change to them (in
    /// Jeton's transactions, beside Jeton's own rows and audit events:
    /// [`Db::begin_credentials`]), finds them for the verifier through the
    /// read pool, and follows their change feed.
    auth: SqlStore,
    /// The key of staff sessions' CSRF tokens: made by the first process
    /// to start on the database, shared by every other.
    staff_csrf_key: Arc<zeroize::Zeroizing<Vec<u8>>>,
}

#[derive(Debug, Clone)]
pub struct DbOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// The system's, but for tests that move time on.
    pub clock: Clock,
    /// How long cached credentials are still served while the database is
    /// unreachable (see `SqlStore::with_outage_grace`).
    pub credential_outage_grace: Duration,
}

/// The default of [`DbOptions::credential_outage_grace`].
pub const CREDENTIAL_OUTAGE_GRACE: Duration = Duration::from_secs(30);

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            clock: Clock::system(),
            credential_outage_grace: CREDENTIAL_OUTAGE_GRACE,
        }
    }
}

/// Set on every PostgreSQL connection of the pool: no statement runs longer
/// than 10 s. A runaway query is cancelled (SQLSTATE 57014) rather than
/// holding a connection and its locks while requests queue behind it. The
/// request timeout (30 s, `http/hygiene.rs`) is the outer bound. SQLite has
/// no equivalent; its `busy_timeout` bounds waiting for the write lock.
pub const POSTGRES_SESSION_SETTINGS: &str = "SET statement_timeout = '10s'";

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
                                    // Reads through a memory map of the
                                    // file (up to 256 MiB, shared by every
                                    // connection through the OS's page
                                    // cache) instead of a read call per page
                                    // missing from SQLite's own 2 MB cache:
                                    // a token lookup among a million stored
                                    // ones then costs what it does among a
                                    // thousand.
                                    "PRAGMA mmap_size = 268435456",
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
                migrate(&writer).await?;
                let pool = pool_options()
                    .max_connections(options.max_connections)
                    .connect_with(connect)
                    .await?;
                Db {
                    auth: credential_store(&pool, &writer, options).await,
                    pool,
                    writer,
                    backend,
                    changes: Arc::default(),
                    clock: options.clock.clone(),
                    staff_csrf_key: Arc::default(),
                }
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            sqlx::query(POSTGRES_SESSION_SETTINGS)
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?;
                migrate(&pool).await?;
                Db {
                    auth: credential_store(&pool, &pool, options).await,
                    writer: pool.clone(),
                    pool,
                    backend,
                    changes: Arc::default(),
                    clock: options.clock.clone(),
                    staff_csrf_key: Arc::default(),
                }
            }
        };
        data_steps::run(&db).await?;
        let key = db.server_secret("staff_csrf").await?;
        Ok(Db {
            staff_csrf_key: Arc::new(key),
            ..db
        })
    }

    /// The secret `name` of the deployment: made (32 random bytes) by the
    /// first process that asks, read by every later one.
    async fn server_secret(&self, name: &str) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
        sqlx::query(
            "INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name.to_owned())
        .bind(jeton_auth::session::new_csrf_token())
        .bind(self.now_micros())
        .execute(&self.writer)
        .await?;
        let value: String = sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = $1")
            .bind(name.to_owned())
            .fetch_one(&self.writer)
            .await?;
        Ok(zeroize::Zeroizing::new(value.into_bytes()))
    }

    /// The key of staff sessions' CSRF tokens (an HMAC of the session's id).
    pub fn staff_csrf_key(&self) -> &[u8] {
        &self.staff_csrf_key
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The time by [`Db::clock`].
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// [`Db::now`] as stored.
    pub fn now_micros(&self) -> i64 {
        to_micros(self.now())
    }

    /// jeton-auth's store of credentials, on this database: the gate
    /// verifies with it.
    pub fn auth(&self) -> &SqlStore {
        &self.auth
    }

    /// A write transaction in which credentials change through jeton-auth's
    /// store, beside Jeton's own rows and audit events.
    pub(crate) async fn begin_credentials(&self) -> Result<CredentialTx<'static>, sqlx::Error> {
        Ok(self.auth.within(self.begin_write().await?))
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

/// jeton-auth's tables first: Jeton's own refer to them.
async fn migrate(pool: &AnyPool) -> anyhow::Result<()> {
    SqlStore::migrator().run(pool).await?;
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// jeton-auth's store: lookups on `pool`, its own writes on `writer`, on
/// the app's clock; a refusal it records is audited in the same commit.
async fn credential_store(pool: &AnyPool, writer: &AnyPool, options: &DbOptions) -> SqlStore {
    let clock = options.clock.clone();
    let audit_clock = clock.clone();
    SqlStore::from_pool(pool.clone(), TOKENS)
        .await
        .with_clock(clock)
        .with_writer(writer.clone())
        .with_outage_grace(options.credential_outage_grace)
        .with_staff_idle_timeout(crate::domain::staff::IDLE_TIMEOUT)
        .on_refusal(Box::new(move |refusal, conn| {
            let at = to_micros(audit_clock.now());
            Box::pin(audit::refusal(conn, at, refusal))
        }))
}

/// Why a credential that rests on the caller's own client or key was not
/// issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The client or key the caller authenticated with was revoked after it
    /// authenticated and before the write: the caller is refused as if it
    /// had come a moment later.
    #[error("the client or key was revoked meanwhile")]
    Revoked,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<SqlStoreError> for IssueError {
    fn from(error: SqlStoreError) -> IssueError {
        match error {
            SqlStoreError::UnknownClient(_) | SqlStoreError::UnknownKey(_) => IssueError::Revoked,
            other => IssueError::Database(store_error(other)),
        }
    }
}

/// A store error as the database error Jeton's methods answer with: what
/// the store refused is a bug of the caller's, as a failed statement is.
pub(crate) fn store_error(error: SqlStoreError) -> sqlx::Error {
    match error {
        SqlStoreError::Database(error) => error,
        other => sqlx::Error::Protocol(other.to_string()),
    }
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

    /// Every pooled PostgreSQL connection has the statement timeout. Needs
    /// the test server (`JETON_TEST_DATABASE_URL`, as the API tests); skipped
    /// when it is unreachable unless `JETON_REQUIRE_POSTGRES=1` or `CI`.
    #[tokio::test]
    async fn postgres_connections_have_a_statement_timeout() {
        use sqlx::migrate::MigrateDatabase;
        sqlx::any::install_default_drivers();
        let base = std::env::var("JETON_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let Some(slash) = base.rfind('/') else {
            panic!("JETON_TEST_DATABASE_URL has no database name")
        };
        let url = format!(
            "{}/jeton_unit_{}",
            &base[..slash],
            uuid::Uuid::now_v7().simple()
        );
        if let Err(error) = sqlx::Any::create_database(&url).await {
            let required = std::env::var_os("CI").is_some()
                || std::env::var("JETON_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
            assert!(!required, "PostgreSQL is required but unavailable: {error}");
            eprintln!("NOTICE: skipping a PostgreSQL test: {error}");
            return;
        }
        let db = Db::connect(&url, &DbOptions::default()).await.unwrap();
        // Several connections at once, so more than the first is checked.
        let mut connections = Vec::new();
        for _ in 0..3 {
            let mut conn = db.reader().acquire().await.unwrap();
            let setting: String = sqlx::query_scalar("SELECT current_setting('statement_timeout')")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(setting, "10s");
            connections.push(conn);
        }
        drop(connections);
        db.close().await;
        sqlx::Any::force_drop_database(&url).await.unwrap();
    }
}
