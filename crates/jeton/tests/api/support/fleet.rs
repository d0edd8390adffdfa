//! A fleet in tests: `jeton serve` processes sharing one PostgreSQL
//! database and one `redis-server` (started here on a free port, so that a
//! test can stop and restart it), behind a real `nginx`, round-robin, with
//! the operators' example configuration (`deploy/nginx/jeton.conf`).
//!
//! Without `redis-server` or `nginx`, the fleet tests print a `NOTICE:`
//! line and skip; with `JETON_REQUIRE_FLEET=1` (CI) they fail.

use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{
    Backend,
    database::notice,
    process::{KeyedDatabase, Reply, Server, free_port, http, json_request, keyed_database},
};

pub fn require_fleet() -> bool {
    std::env::var("JETON_REQUIRE_FLEET").is_ok_and(|v| v == "1")
}

pub fn installed(program: &str) -> bool {
    Command::new("sh")
        .args([
            "-c",
            &format!("command -v {program} || test -x /usr/sbin/{program}"),
        ])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn program(name: &str) -> String {
    let sbin = format!("/usr/sbin/{name}");
    if Path::new(&sbin).exists() {
        sbin
    } else {
        name.to_owned()
    }
}

pub async fn wait_for_port(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not come up on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------------- redis

/// A `redis-server` on a free port, with nothing saved to disk; stopped
/// when dropped.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    pub async fn start() -> Redis {
        let mut redis = Redis {
            port: free_port(),
            child: None,
        };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server, as a crash would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A paused server must be able to die.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): it keeps its connections and its port
    /// but answers nothing, like a Redis too slow to count on.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server answer again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("redis-server is running");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed: {status}");
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) {
        self.stop();
        let child = Command::new(program("redis-server"))
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        wait_for_port(
            SocketAddr::from(([127, 0, 0, 1], self.port)),
            "redis-server",
        )
        .await;
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------- nginx

/// `nginx` in the foreground on a free port, round-robin over `upstreams`,
/// with `deploy/nginx/jeton.conf`; stopped when dropped.
pub struct Nginx {
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

/// The operators' example, with these upstream servers and this `listen`.
pub fn nginx_site(upstreams: &[SocketAddr], listen: SocketAddr) -> String {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nginx/jeton.conf"),
    )
    .expect("deploy/nginx/jeton.conf");
    let servers: String = upstreams
        .iter()
        .map(|addr| format!("    server {addr};\n"))
        .collect();
    let example_servers = "    server 127.0.0.1:8081;\n    server 127.0.0.1:8082;\n";
    assert!(example.contains(example_servers) && example.contains("listen 80;"));
    example
        .replace(example_servers, &servers)
        .replace("listen 80;", &format!("listen {listen};"))
}

impl Nginx {
    pub async fn start(upstreams: &[SocketAddr]) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        std::fs::write(dir.path().join("jeton.conf"), nginx_site(upstreams, addr)).unwrap();
        let d = dir.path().display();
        // Everything nginx writes stays in the test's directory. As root,
        // its workers would switch to an unprivileged user that cannot read
        // that directory, so they stay root.
        let user = if running_as_root() {
            "user root;\n"
        } else {
            ""
        };
        let main = format!(
            "{user}daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             include {d}/jeton.conf;\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), main).unwrap();
        let child = Command::new(program("nginx"))
            .args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        wait_for_port(addr, "nginx").await;
        Nginx {
            addr,
            child,
            _dir: dir,
        }
    }
}

/// Whether the tests run as root (as in CI).
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers, then exits. SIGKILL would
        // leave the workers running.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- the fleet

/// `size` processes on one fresh PostgreSQL database and one Redis, behind
/// nginx, which they trust as their proxy.
pub struct Fleet {
    // Dropped in this order: the balancer, the servers, then what they use.
    pub nginx: Nginx,
    pub servers: Vec<Server>,
    pub redis: Redis,
    pub keyed: KeyedDatabase,
}

impl Fleet {
    /// `None` (with a notice) without PostgreSQL, `redis-server` or `nginx`,
    /// unless required. `options` go to every `jeton serve`.
    pub async fn start(size: usize, options: &[&str]) -> Option<Fleet> {
        let missing: Vec<&str> = ["redis-server", "nginx"]
            .into_iter()
            .filter(|program| !installed(program))
            .collect();
        if !missing.is_empty() {
            let text = format!(
                "skipping a fleet test: {} not installed (apt-get install redis-server nginx; \
                 JETON_REQUIRE_FLEET=1 makes this a failure)",
                missing.join(" and ")
            );
            assert!(!require_fleet(), "{text}");
            notice(&text);
            return None;
        }
        // Processes of a fleet share a database: PostgreSQL only.
        let keyed = keyed_database(Backend::Postgres, &["products:read"]).await?;
        let redis = Redis::start().await;
        let url = redis.url();
        let mut args = vec![
            "--redis-url",
            url.as_str(),
            "--trusted-proxy",
            "127.0.0.1/32",
        ];
        args.extend_from_slice(options);
        let mut servers = Vec::new();
        for _ in 0..size {
            servers.push(Server::start(&keyed.url, &args).await);
        }
        let addrs: Vec<SocketAddr> = servers.iter().map(|server| server.addr).collect();
        let nginx = Nginx::start(&addrs).await;
        Some(Fleet {
            nginx,
            servers,
            redis,
            keyed,
        })
    }

    /// `jeton client create …` on the fleet's database: the key.
    pub fn key(&self, args: &[&str]) -> String {
        super::process::cli_key(&self.keyed.url, args)
    }

    /// One request through nginx, from the client address `from`.
    pub async fn call(
        &self,
        from: IpAddr,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let (status, text) = json_request(self.nginx.addr, Some(from), method, path, bearer, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path} through nginx: {e}"));
        Reply::new(status, text)
    }

    /// A metric's value on each process, from its `/metrics`.
    pub async fn metric(&self, name: &str) -> Vec<Option<f64>> {
        let mut values = Vec::new();
        for server in &self.servers {
            let (_, text) = http(server.addr, "GET", "/metrics", &[])
                .await
                .expect("GET /metrics");
            values.push(text.lines().find_map(|line| {
                let (metric, value) = line.rsplit_once(' ')?;
                (metric == name).then(|| value.parse().ok())?
            }));
        }
        values
    }
}
