//! A PostgreSQL cluster of a test's own (`initdb` and `pg_ctl` on a free
//! port, in a temporary directory), for a test that stops and restarts the
//! database: the shared server at `JETON_TEST_DATABASE_URL` serves other
//! tests at the same time and must never go down. Stopped when dropped.
//!
//! As root (CI), PostgreSQL refuses to run: the cluster belongs to the
//! `postgres` user, and its commands run through `runuser`.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
};

use super::process::free_port;

/// The directory holding `initdb` and `pg_ctl`: the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout), else wherever
/// `PATH` finds them. `None` if neither has them.
pub fn binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let output = Command::new("sh")
        .args(["-c", "command -v pg_ctl"])
        .output()
        .ok()?;
    let pg_ctl = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let bin = pg_ctl.parent()?.to_path_buf();
    (output.status.success() && bin.join("initdb").is_file()).then_some(bin)
}

/// Whether the tests run as root (as in CI).
pub fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// What is missing to run a cluster of one's own here, if anything.
pub fn missing() -> Option<String> {
    if binaries().is_none() {
        return Some("initdb and pg_ctl (PostgreSQL's server binaries)".to_owned());
    }
    if running_as_root() {
        let has_user = Command::new("id")
            .arg("postgres")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !has_user || !super::fleet::installed("runuser") {
            return Some("a postgres user and runuser (to run PostgreSQL as root)".to_owned());
        }
    }
    None
}

/// A running cluster on 127.0.0.1, trust authentication, user `postgres`.
pub struct Cluster {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    as_postgres: bool,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// `initdb`, then starts it. Panics if that fails: call [`missing`]
    /// first.
    pub async fn start() -> Cluster {
        let bin = binaries().expect("initdb and pg_ctl");
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = running_as_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["postgres:postgres", &dir.path().display().to_string()])
                .status()
                .expect("run chown");
            assert!(status.success(), "chown of the cluster's directory");
        }
        let cluster = Cluster {
            port: free_port(),
            bin,
            data: dir.path().join("data"),
            log: dir.path().join("postgres.log"),
            as_postgres,
            dir,
        };
        let data = cluster.data.display().to_string();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        cluster.start_again().await;
        cluster
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the stopped cluster, and waits until it accepts connections.
    pub async fn start_again(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.dir.path().display()
        );
        let (data, log) = (
            self.data.display().to_string(),
            self.log.display().to_string(),
        );
        self.run_async(
            "pg_ctl",
            &[
                "start", "-w", "-t", "60", "-D", &data, "-l", &log, "-o", &options,
            ],
        )
        .await;
    }

    /// Stops it as an operator's restart does (`-m fast`: sessions are
    /// cut, nothing committed is lost), and waits until it is down.
    pub async fn stop(&self) {
        let data = self.data.display().to_string();
        self.run_async("pg_ctl", &["stop", "-w", "-m", "fast", "-D", &data])
            .await;
    }

    /// What the server logged, for a failure's message.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        };
        command.args(args).stdin(Stdio::null());
        command
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program, args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?}: {}{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log_text()
        );
    }

    async fn run_async(&self, program: &str, args: &[&str]) {
        let output = tokio::process::Command::from(self.command(program, args))
            .output()
            .await
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?}: {}{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log_text()
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = self
            .command("pg_ctl", &["stop", "-w", "-m", "immediate", "-D", &data])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
