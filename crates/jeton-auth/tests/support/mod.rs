//! A database of its own for each test of the SQL store, removed when its
//! guard drops (also when the test panics).
//!
//! SQLite: a file in the temporary directory. PostgreSQL: a database named
//! `jeton_auth_test_…` on the server of `JETON_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); without a server the
//! test is skipped with a `NOTICE:` line, unless `JETON_REQUIRE_POSTGRES=1`
//! or `CI` is set: then it fails.

use std::{
    io::Write,
    path::PathBuf,
    time::{SystemTime, UNIX_EPOCH},
};

use jeton_auth::sqlx::{self, migrate::MigrateDatabase};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestDatabase {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(PathBuf),
    Postgres,
}

/// Unique within the machine: the time in nanoseconds and the process.
fn unique_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos();
    format!("jeton_auth_test_{}_{nanos}", std::process::id())
}

impl TestDatabase {
    /// `None` when PostgreSQL is unavailable and not required.
    pub async fn create(backend: Backend) -> Option<TestDatabase> {
        sqlx::any::install_default_drivers();
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("{}.db", unique_name()));
                Some(TestDatabase {
                    url: format!("sqlite://{}", path.display()),
                    cleanup: Cleanup::Sqlite(path),
                })
            }
            Backend::Postgres => {
                let base = std::env::var("JETON_TEST_DATABASE_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
                let slash = base.rfind('/').expect("a database name in the URL");
                let url = format!("{}/{}", &base[..slash], unique_name());
                match sqlx::Any::create_database(&url).await {
                    Ok(()) => Some(TestDatabase {
                        url,
                        cleanup: Cleanup::Postgres,
                    }),
                    Err(error) => {
                        let required = std::env::var_os("CI").is_some()
                            || std::env::var("JETON_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
                        assert!(!required, "PostgreSQL is required but unavailable: {error}");
                        let _ = writeln!(
                            std::io::stderr(),
                            "NOTICE: skipping a PostgreSQL test: {error}"
                        );
                        None
                    }
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
            Cleanup::Postgres => {
                let url = self.url.clone();
                // Drop runs inside the test's runtime, which must not be
                // blocked on: a thread with a small runtime of its own.
                let dropped = std::thread::spawn(move || {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime")
                        .block_on(sqlx::Any::force_drop_database(&url))
                })
                .join();
                if !matches!(dropped, Ok(Ok(()))) {
                    let _ = writeln!(
                        std::io::stderr(),
                        "NOTICE: could not drop a test database: {dropped:?}"
                    );
                }
            }
        }
    }
}
