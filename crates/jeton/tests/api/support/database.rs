//! A database of its own for every test, on SQLite or PostgreSQL, removed
//! when its guard drops: at the end of the test and also when it panics.
//!
//! PostgreSQL: `JETON_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) names a server where each
//! test clones its database from a migrated template. If the server cannot
//! be reached the PostgreSQL tests are skipped with a notice on the
//! terminal, unless `JETON_REQUIRE_POSTGRES=1` or `CI` is set: then they
//! fail.
//!
//! Names: a test database is `jeton_test_<unix seconds>_<random>`. Test runs
//! of other worktrees may share the server, so the sweep at the start of a
//! run drops only databases of this pattern older than an hour; no test
//! runs that long. The template, `jeton_template_<hash of the migrations>`,
//! is kept between runs as a cache (a new migration makes a new one): it
//! accepts no connections, so cloning it never waits for anyone.

use std::{
    io::Write,
    sync::OnceLock,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use jeton::store::{Db, DbOptions};
use sha2::{Digest, Sha256};
use sqlx::{Connection, Row};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Test databases older than this are left over from a run that was
/// killed, and the sweep drops them.
const STALE: Duration = Duration::from_secs(3600);

const PREFIX: &str = "jeton_test_";

/// A fresh, migrated database, dropped with the guard.
pub struct TestDatabase {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code, reason = "held for its Drop")] tempfile::TempDir),
    Postgres(String),
}

impl TestDatabase {
    /// A migrated database (on SQLite: an empty file, which the first
    /// connection migrates). `None` when PostgreSQL is unavailable and not
    /// required.
    pub async fn create(backend: Backend) -> Option<TestDatabase> {
        TestDatabase::make(backend, true).await
    }

    /// An empty database, for tests of the migration itself.
    pub async fn empty(backend: Backend) -> Option<TestDatabase> {
        TestDatabase::make(backend, false).await
    }

    async fn make(backend: Backend, migrated: bool) -> Option<TestDatabase> {
        sqlx::any::install_default_drivers();
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}/jeton.db", dir.path().display());
                Some(TestDatabase {
                    url,
                    cleanup: Cleanup::Sqlite(dir),
                })
            }
            Backend::Postgres => {
                let template = match template() {
                    Ok(template) => template,
                    Err(error) if require_postgres() => panic!(
                        "PostgreSQL is required (CI or JETON_REQUIRE_POSTGRES=1) but unavailable at {}: {error}",
                        base_url()
                    ),
                    Err(error) => {
                        notice(&format!(
                            "skipping a PostgreSQL test: {} unavailable ({error})",
                            base_url()
                        ));
                        return None;
                    }
                };
                let name = format!("{PREFIX}{}_{}", unix_now(), random_suffix());
                // The guard exists before the database does: a failure below
                // still removes whatever was made.
                let database = TestDatabase {
                    url: database_url(&name),
                    cleanup: Cleanup::Postgres(name.clone()),
                };
                let mut admin = admin_connection().await.expect("connect to PostgreSQL");
                let create = if migrated {
                    format!(r#"CREATE DATABASE "{name}" TEMPLATE "{template}""#)
                } else {
                    format!(r#"CREATE DATABASE "{name}""#)
                };
                admin_execute(&mut admin, &create).await;
                // Nothing here needs a commit to survive a server crash; not
                // waiting for the disk makes every write of the test cheaper.
                admin_execute(
                    &mut admin,
                    &format!(r#"ALTER DATABASE "{name}" SET synchronous_commit = off"#),
                )
                .await;
                let _ = admin.close().await;
                Some(database)
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Cleanup::Postgres(name) = &self.cleanup {
            let name = name.clone();
            // Drop runs outside async (or inside a runtime that must not be
            // blocked on): a thread with a small runtime of its own.
            let dropped = std::thread::spawn(move || {
                runtime().block_on(async {
                    let mut admin = admin_connection().await?;
                    drop_database(&mut admin, &name).await
                })
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                notice(&format!(
                    "could not drop a test database ({dropped:?}); the next run's sweep will"
                ));
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

pub fn require_postgres() -> bool {
    std::env::var_os("CI").is_some()
        || std::env::var("JETON_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// A notice that is not swallowed by the test harness' output capture.
pub fn notice(text: &str) {
    let _ = writeln!(std::io::stderr(), "NOTICE: {text}");
}

fn base_url() -> String {
    std::env::var("JETON_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The URL of database `name` on the test server.
fn database_url(name: &str) -> String {
    let base = base_url();
    match base.rfind('/') {
        Some(slash) if slash > "postgres://".len() => format!("{}/{name}", &base[..slash]),
        _ => format!("{base}/{name}"),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

fn random_suffix() -> String {
    jeton::domain::ids::new_id().replace('-', "")[16..].to_owned()
}

async fn admin_connection() -> Result<sqlx::AnyConnection, sqlx::Error> {
    sqlx::AnyConnection::connect(&base_url()).await
}

async fn admin_execute(admin: &mut sqlx::AnyConnection, statement: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&mut *admin)
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"));
}

async fn drop_database(admin: &mut sqlx::AnyConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
    )))
    .execute(&mut *admin)
    .await
    .map(drop)
}

/// The name of the migrated template, made (and stale databases swept) once
/// per test process; an error when PostgreSQL cannot be reached.
fn template() -> Result<&'static str, String> {
    static TEMPLATE: OnceLock<Result<String, String>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            std::thread::spawn(|| runtime().block_on(prepare()))
                .join()
                .unwrap_or_else(|_| Err("preparing the template panicked".to_owned()))
        })
        .as_deref()
        .map_err(Clone::clone)
}

async fn prepare() -> Result<String, String> {
    let mut admin = admin_connection().await.map_err(|e| e.to_string())?;
    sweep(&mut admin).await;
    // Other test runs on this server may make the same template at the same
    // time: one at a time, under a lock that PostgreSQL releases if its
    // holder dies.
    admin_execute(&mut admin, "SELECT pg_advisory_lock(7422605155317915)").await;
    let made = ensure_template(&mut admin).await;
    admin_execute(&mut admin, "SELECT pg_advisory_unlock(7422605155317915)").await;
    let _ = admin.close().await;
    made
}

/// Drops the test databases of runs that ended without cleaning up: those
/// of the timestamped pattern older than [`STALE`]. Others are left alone:
/// they may belong to a run in progress.
async fn sweep(admin: &mut sqlx::AnyConnection) {
    let rows = sqlx::query("SELECT datname FROM pg_database WHERE datname LIKE 'jeton\\_test\\_%'")
        .fetch_all(&mut *admin)
        .await
        .unwrap_or_default();
    let now = unix_now();
    for row in rows {
        let name: String = row.get("datname");
        if is_stale(&name, now) {
            let _ = drop_database(admin, &name).await;
        }
    }
}

/// A test database named with its creation time, made more than [`STALE`]
/// before `now` (unix seconds).
fn is_stale(name: &str, now: u64) -> bool {
    name.strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('_'))
        .and_then(|(secs, _)| secs.parse::<u64>().ok())
        .is_some_and(|created| created.saturating_add(STALE.as_secs()) < now)
}

async fn ensure_template(admin: &mut sqlx::AnyConnection) -> Result<String, String> {
    let name = format!("jeton_template_{}", migrations_hash());
    // Made to the end only when it no longer accepts connections.
    let state = sqlx::query("SELECT datallowconn FROM pg_database WHERE datname = $1")
        .bind(name.clone())
        .fetch_optional(&mut *admin)
        .await
        .map_err(|e| e.to_string())?
        .map(|row| row.get::<bool, _>("datallowconn"));
    match state {
        Some(false) => return Ok(name),
        Some(true) => {
            // A run died while making it.
            drop_database(admin, &name)
                .await
                .map_err(|e| e.to_string())?;
        }
        None => {}
    }
    admin_execute(admin, &format!(r#"CREATE DATABASE "{name}""#)).await;
    let db = Db::connect(&database_url(&name), &DbOptions::default())
        .await
        .map_err(|e| format!("migrating the template: {e:#}"))?;
    db.close().await;
    admin_execute(
        admin,
        &format!(r#"ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"#),
    )
    .await;
    admin_execute(
        admin,
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"),
    )
    .await;
    Ok(name)
}

/// Names the migration set, so that a changed migration (or data step)
/// makes a new template.
fn migrations_hash() -> String {
    // Jeton's, and jeton-auth's that they build on.
    let dirs = [
        concat!(env!("CARGO_MANIFEST_DIR"), "/../jeton-auth/migrations"),
        concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"),
    ];
    let mut hash = Sha256::new();
    for dir in dirs {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("the migrations folder")
            .map(|entry| entry.expect("a migration").path())
            .collect();
        files.sort();
        for file in files {
            hash.update(file.file_name().unwrap().as_encoded_bytes());
            hash.update(std::fs::read(&file).expect("a readable migration"));
        }
    }
    // And the data steps, which make schema of their own (triggers).
    let steps = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/data_steps.rs");
    hash.update(std::fs::read(steps).expect("the data steps"));
    hash.finalize()[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[test]
fn the_sweep_drops_only_test_databases_dated_over_an_hour_ago() {
    let now = 1_800_000_000;
    assert!(is_stale("jeton_test_1799990000_0123abcd", now));
    assert!(
        !is_stale("jeton_test_1799999000_0123abcd", now),
        "a run in progress"
    );
    assert!(
        !is_stale("jeton_test_1800000100_0123abcd", now),
        "a clock ahead"
    );
    // Without a creation time nothing says a database is stale: it may be
    // another run's, in progress.
    assert!(!is_stale(
        "jeton_test_01a228f6cab872cebab1df5e7f07e8d5",
        now
    ));
    assert!(!is_stale("jeton_template_ebe2e9928e8c3382", now));
    assert!(!is_stale("jeton", now));
}

/// The guard drops its database when the test that holds it panics.
#[test]
fn a_panicking_test_leaves_no_database_behind() {
    let exists = |name: String| {
        runtime().block_on(async move {
            let mut admin = admin_connection().await.expect("connect to PostgreSQL");
            sqlx::query("SELECT 1 FROM pg_database WHERE datname = $1")
                .bind(name)
                .fetch_optional(&mut admin)
                .await
                .unwrap()
                .is_some()
        })
    };
    let (sender, receiver) = std::sync::mpsc::channel();
    let test = std::thread::spawn(move || {
        runtime().block_on(async {
            let Some(database) = TestDatabase::create(Backend::Postgres).await else {
                return;
            };
            let Cleanup::Postgres(name) = &database.cleanup else {
                unreachable!("a PostgreSQL database")
            };
            sender.send(name.clone()).unwrap();
            panic!("a failing test");
        })
    });
    assert!(test.join().is_err(), "the test panicked");
    // Nothing sent: PostgreSQL is unavailable and not required.
    if let Ok(name) = receiver.recv() {
        assert!(!exists(name.clone()), "{name} is left behind");
    }
}
