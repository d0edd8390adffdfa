//! The real `jeton` binary in tests: CLI runs ([`jeton`], [`Run`]), a
//! running `jeton serve` ([`Server`]), a minimal HTTP/1.1 client for it
//! ([`http`], [`http_with_body`]), and the guards and pollers the
//! multi-process tests share ([`KeyedDatabase`], [`within_a_second`]).

use std::{
    net::SocketAddr,
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{Backend, TestDatabase};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------- the CLI

/// `jeton --database-url URL ARGS…`, with none of the server's settings
/// inherited from the environment.
pub fn command(url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jeton"));
    command
        .arg("--database-url")
        .arg(url)
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .env_remove("JETON_ADDR")
        .env_remove("JETON_TRUSTED_PROXIES")
        .env_remove("JETON_USER_TOKEN_TTL");
    command
}

/// A finished CLI run.
pub struct Run {
    pub output: Output,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Exit 0; shows stderr otherwise.
    #[track_caller]
    pub fn ok(&self) -> &Run {
        assert!(
            self.output.status.success(),
            "exit {:?}\nstdout: {}\nstderr: {}",
            self.output.status.code(),
            self.stdout,
            self.stderr
        );
        self
    }

    /// Non-zero exit with a one-line error on stderr, and nothing on stdout.
    #[track_caller]
    pub fn fails(&self) -> &Run {
        assert!(
            !self.output.status.success(),
            "expected a failure\nstdout: {}",
            self.stdout
        );
        assert_ne!(self.output.status.code(), Some(0));
        let lines: Vec<&str> = self.stderr.trim_end().lines().collect();
        assert_eq!(lines.len(), 1, "not one line: {:?}", self.stderr);
        assert!(lines[0].starts_with("error: "), "{:?}", self.stderr);
        assert_eq!(self.stdout, "", "stdout of a failure");
        self
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    /// `secret` is nowhere on stderr (logs and errors included).
    #[track_caller]
    pub fn stderr_hides(&self, secret: &str) -> &Run {
        assert!(
            !self.stderr.contains(secret),
            "a secret reached stderr: {}",
            self.stderr
        );
        self
    }
}

fn finish(output: Output) -> Run {
    Run {
        stdout: String::from_utf8(output.stdout.clone()).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr.clone()).expect("UTF-8 stderr"),
        output,
    }
}

/// `jeton staff create --email E --name N --role R --password-stdin --json`
/// with `password` on standard input, never on the command line: its
/// output, succeeded or not.
pub fn staff_create(
    url: &str,
    email: &str,
    name: &str,
    role: &str,
    password: &str,
) -> std::process::Output {
    let args = [
        "staff",
        "create",
        "--email",
        email,
        "--name",
        name,
        "--role",
        role,
        "--password-stdin",
        "--json",
    ];
    let mut child = command(url, &args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run jeton staff create");
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, format!("{password}\n").as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// [`staff_create`], which must succeed.
#[track_caller]
pub fn staff_created(url: &str, email: &str, name: &str, role: &str, password: &str) {
    let output = staff_create(url, email, name, role, password);
    assert!(
        output.status.success(),
        "jeton staff create: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `jeton --database-url URL ARGS…` with the default log filter.
pub fn jeton(url: &str, args: &[&str]) -> Run {
    finish(command(url, args).output().expect("run jeton"))
}

/// The same with every log line enabled, for checking that no secret is
/// ever logged.
pub fn jeton_traced(url: &str, args: &[&str]) -> Run {
    finish(
        command(url, args)
            .env("RUST_LOG", "trace")
            .output()
            .expect("run jeton"),
    )
}

// ---------------------------------------------------------------- a running server

/// A `jeton serve` process, killed when dropped (also on a panic).
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
    log: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 that is free now, for a process to listen on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts `jeton serve` on a free port with `options`, and waits until
    /// `/healthz` answers.
    pub async fn start(url: &str, options: &[&str]) -> Server {
        Server::start_with_env(url, options, &[]).await
    }

    /// The same with environment variables set (e.g. `RUST_LOG`).
    pub async fn start_with_env(url: &str, options: &[&str], env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serve.log");
        let addr_text = addr.to_string();
        let mut args = vec!["serve", "--addr", addr_text.as_str()];
        args.extend_from_slice(options);
        let child = command(url, &args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start jeton serve");
        let mut server = Server {
            child,
            addr,
            _dir: dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = http(addr, "GET", "/healthz", &[]).await {
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("jeton serve exited with {status}: {}", server.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "jeton serve did not come up: {}",
                server.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the server wrote to stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        http(self.addr, "GET", path, headers)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}; log: {}", self.log_text()))
    }

    /// One request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let (status, text) = json_request(self.addr, None, method, path, bearer, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}; log: {}", self.log_text()));
        Reply::new(status, text)
    }

    /// A form POST to an OAuth 2.0 endpoint, the client authenticated in
    /// the form (`client_secret_post`).
    pub async fn oauth(&self, path: &str, client: (&str, &str), form: &str) -> Reply {
        let body = format!(
            "{form}&client_id={}&client_secret={}",
            super::enc(client.0),
            super::enc(client.1)
        );
        let headers = [("content-type", "application/x-www-form-urlencoded")];
        let (status, text) =
            http_with_body(self.addr, "POST", path, &headers, Some(body.as_bytes()))
                .await
                .unwrap_or_else(|e| panic!("POST {path}: {e}; log: {}", self.log_text()));
        Reply::new(status, text)
    }

    /// Sends SIGTERM (through `kill`: `libc` is not a dependency).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits up to `limit` for the process to exit; `None` if it has not.
    pub async fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A response of [`Server::call`]: the head (lower-cased) and the body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn new(status: u16, text: String) -> Reply {
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        Reply {
            status,
            head: head.to_owned(),
            body: body.to_owned(),
        }
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}, status {}): {}", self.status, self.body))
    }

    /// Asserts the status, showing the response when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Reply {
        assert_eq!(self.status, status, "{}\r\n\r\n{}", self.head, self.body);
        self
    }

    /// Asserts a problem+json error with this status and code.
    #[track_caller]
    pub fn expect_problem(&self, status: u16, code: &str) -> &Reply {
        self.expect(status);
        assert!(
            self.head
                .contains("\r\ncontent-type: application/problem+json\r\n")
                || self
                    .head
                    .ends_with("\r\ncontent-type: application/problem+json"),
            "{}",
            self.head
        );
        assert_eq!(self.json()["code"], code, "{}", self.body);
        self
    }

    /// The value of a header (names are lower-case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim().to_owned())
        })
    }
}

/// One HTTP/1.1 request on a fresh connection: (status, head and body as
/// text, header names lower-cased).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    http_with_body(addr, method, path, headers, None).await
}

/// The same with a body (sent with its `Content-Length`; the caller sets
/// the `Content-Type`). A chunked response body is decoded.
pub async fn http_with_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<(u16, String)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    exchange(stream, addr, method, path, headers, body).await
}

/// A request with an optional bearer token and JSON body, from a chosen
/// local address or the default one.
pub async fn json_request(
    addr: SocketAddr,
    from: Option<std::net::IpAddr>,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> std::io::Result<(u16, String)> {
    let authorization = bearer.map(|token| format!("Bearer {token}"));
    let mut headers = Vec::new();
    if let Some(authorization) = &authorization {
        headers.push(("authorization", authorization.as_str()));
    }
    let body = body.map(|body| serde_json::to_vec(body).unwrap());
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    match from {
        Some(from) => http_from(from, addr, method, path, &headers, body.as_deref()).await,
        None => http_with_body(addr, method, path, &headers, body.as_deref()).await,
    }
}

/// The same from a chosen local address (any of 127.0.0.0/8 on loopback),
/// as a client behind a proxy would come from its own.
pub async fn http_from(
    from: std::net::IpAddr,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<(u16, String)> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    let stream = socket.connect(addr).await?;
    exchange(stream, addr, method, path, headers, body).await
}

async fn exchange(
    mut stream: tokio::net::TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<(u16, String)> {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    stream.write_all(&bytes).await?;
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes))
        .await
        .map_err(|_| std::io::Error::other("timed out"))??;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let head = head.to_ascii_lowercase();
    let body = if head.contains("\r\ntransfer-encoding: chunked") {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Ok((status, format!("{head}\r\n\r\n{body}")))
}

fn dechunk(mut rest: &str) -> std::io::Result<String> {
    let bad = || std::io::Error::other("bad chunked body");
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").ok_or_else(bad)?;
        let size =
            usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).map_err(|_| bad())?;
        if size == 0 {
            return Ok(body);
        }
        body.push_str(after.get(..size).ok_or_else(bad)?);
        rest = after.get(size + 2..).ok_or_else(bad)?;
    }
}

// ---------------------------------------------------------------- a keyed database

/// The origin the storefront key of a [`KeyedDatabase`] is bound to.
pub const STOREFRONT_ORIGIN: &str = "http://localhost:8080";

/// `client create` arguments of a storefront's publishable key, after its
/// `--name`: what a storefront needs, from [`STOREFRONT_ORIGIN`].
pub const STOREFRONT_KEY_ARGS: [&str; 12] = [
    "--kind",
    "publishable",
    "--ability",
    "products:read",
    "--ability",
    "customers:create",
    "--ability",
    "auth:login",
    "--ability",
    "guest:create",
    "--origin",
    STOREFRONT_ORIGIN,
];

/// A fresh database with a storefront's publishable key and an admin key,
/// made on the command line (which also migrates), for tests that then
/// start `jeton serve` processes on it.
pub struct KeyedDatabase {
    pub url: String,
    pub pk: String,
    pub admin: String,
    pub database: TestDatabase,
}

/// `admin_abilities` come on top of `admin`.
pub async fn keyed_database(backend: Backend, admin_abilities: &[&str]) -> Option<KeyedDatabase> {
    let database = TestDatabase::create(backend).await?;
    let url = database.url.clone();
    let mut pk_args = vec!["--name", "Storefront"];
    pk_args.extend(STOREFRONT_KEY_ARGS);
    // Every request of these tests comes from 127.0.0.1.
    pk_args.extend(["--per-ip-rate-limit", "none"]);
    let pk = cli_key(&url, &pk_args);
    let admin = cli_admin_key(&url, admin_abilities);
    Some(KeyedDatabase {
        url,
        pk,
        admin,
        database,
    })
}

/// A back office's secret key with `admin` and `abilities`, made on the
/// command line.
pub fn cli_admin_key(url: &str, abilities: &[&str]) -> String {
    let mut args = vec![
        "--name",
        "Back office",
        "--kind",
        "secret",
        "--ability",
        "admin",
    ];
    for ability in abilities {
        args.extend(["--ability", ability]);
    }
    cli_key(url, &args)
}

/// `client create … --json`: the key.
pub fn cli_key(url: &str, args: &[&str]) -> String {
    let mut all = vec!["client", "create"];
    all.extend_from_slice(args);
    all.push("--json");
    let run = jeton(url, &all);
    run.ok();
    run.json()["key"]
        .as_str()
        .expect("the key is a string")
        .to_owned()
}

// ---------------------------------------------------------------- guards and pollers

/// Polls `check` until it holds, failing if that takes a second or more
/// from `since` (the contract: other processes see a revocation within one second).
pub async fn within_a_second<F, Fut>(since: Instant, what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    within(Duration::from_secs(1), since, what, check).await;
}

/// Polls `check` until it holds, failing if a check *sent* `limit` or more
/// after `since` still does not.
///
/// A check is timed by when it starts, not when its answer arrives: the
/// server looked at its state somewhere in between, so a stale answer to a
/// request sent before the limit proves nothing, however late a loaded
/// machine delivers it. One sent after the limit that is still stale does
/// break the guarantee.
pub async fn within<F, Fut>(limit: Duration, since: Instant, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut attempts = 0;
    loop {
        attempts += 1;
        let sent = since.elapsed();
        match check().await {
            Ok(()) => return,
            Err(last) => assert!(
                sent < limit,
                "{what}: still not in a check sent after {sent:?} ({attempts} tries); last answer: {last}",
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs an outside tool (`what` names it in the output), showing its
/// output: did it exit 0, and its stdout.
pub fn try_run(what: &str, command: &mut std::process::Command) -> (bool, String) {
    let started = std::time::Instant::now();
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!(
        "== {what} ({:.0?}, exit {:?})\n{stdout}{stderr}",
        started.elapsed(),
        output.status.code()
    );
    (output.status.success(), stdout)
}

/// Runs an outside tool, showing its output, and fails unless it exits 0.
pub fn run(what: &str, command: &mut std::process::Command) -> String {
    let (success, stdout) = try_run(what, command);
    assert!(success, "{what} failed");
    stdout
}
