//! A real browser for the storefront's tests: headless Chromium driven over
//! WebDriver (chromedriver, through `fantoccini`), and a `jeton serve
//! --demo` process that serves the API and the storefront on free ports.
//!
//! Without Chromium and chromedriver the browser tests print a `NOTICE:`
//! line and skip; with `JETON_REQUIRE_BROWSER=1` (set by CI) they fail.
//! Pages are driven as a person would: elements are found by their role and
//! visible label or name (XPath on label, link and button text), never by
//! CSS paths.

use std::{
    io::{BufRead, BufReader, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use serde_json::{Value, json};

use super::{
    database::{Backend, TestDatabase},
    process::{self, Reply, free_port},
};

/// Browser tests at once: each runs one Chromium, on a small machine.
pub static BROWSERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// How long a page may take to show what a step waits for.
const PATIENCE: Duration = Duration::from_secs(15);

fn require_browser() -> bool {
    std::env::var("JETON_REQUIRE_BROWSER").is_ok_and(|v| v == "1")
}

/// The first of `names` found on `PATH`.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Where the tests save their screenshots: a folder of this run's under the
/// system's temporary directory, so a test run never rewrites a tracked file.
/// With `JETON_UPDATE_DOC_SCREENSHOTS=1`, `docs/`, whose `storefront/` and
/// `console/` screenshots the documentation shows: refreshing them is a
/// deliberate act.
pub fn screenshot_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = if updating_docs() {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
        } else {
            std::env::temp_dir().join(format!("jeton-screenshots-{}", std::process::id()))
        };
        eprintln!("browser tests: screenshots in {}", dir.display());
        dir
    })
}

fn updating_docs() -> bool {
    std::env::var("JETON_UPDATE_DOC_SCREENSHOTS").is_ok_and(|v| v == "1")
}

// ---------------------------------------------------------------- the browser

/// Headless Chromium under a chromedriver of our own, on a free port; both
/// are killed when this is dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver and the Chromium it started share its process group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// A fresh browser, or `None` (with a notice) when none is installed
    /// and none is required.
    pub async fn start() -> Option<Browser> {
        let chromium = on_path(&["chromium", "chromium-browser", "google-chrome"]);
        let driver = on_path(&["chromedriver"]);
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            assert!(
                !require_browser(),
                "JETON_REQUIRE_BROWSER=1 but chromium or chromedriver is not installed \
                 (apt-get install chromium chromium-driver)"
            );
            // Not swallowed by the test harness' output capture.
            let _ = writeln!(
                std::io::stderr(),
                "NOTICE: skipping a browser test: chromium and chromedriver are not installed \
                 (apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let port = free_port();
        let mut command = Command::new(driver);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = command.spawn().expect("start chromedriver");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        // chromedriver keeps connections open: a connect is the readiness check.
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:loggingPrefs".to_owned(), json!({"browser": "ALL"}));
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1200,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://{addr}"))
            .await
            .expect("a WebDriver session");
        Some(Browser {
            client,
            driver,
            _profile: profile,
        })
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("open the page");
    }

    /// Waits until `xpath` matches an element, and returns it.
    pub async fn find(&self, xpath: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .every(Duration::from_millis(25))
            .for_element(Locator::XPath(xpath))
            .await
            .unwrap_or_else(|e| panic!("nothing matches {xpath}: {e}"))
    }

    /// Every element `xpath` matches now.
    pub async fn find_all(&self, xpath: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::XPath(xpath))
            .await
            .expect("find elements")
    }

    /// Waits until `check` holds, up to `limit`.
    pub async fn wait_until<F, Fut>(&self, limit: Duration, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        while !check().await {
            assert!(start.elapsed() < limit, "{what}: not after {limit:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The button whose visible text or accessible name is `name`.
    pub async fn button(&self, name: &str) -> Element {
        self.find(&format!(
            "//button[normalize-space(.)={0} or @aria-label={0}]",
            literal(name)
        ))
        .await
    }

    /// Clicks the button named `name` once it is enabled. A page that
    /// redraws between finding and clicking is tried again.
    pub async fn click_button(&self, name: &str) {
        let what = format!("clicking the button {name}");
        self.wait_until(PATIENCE, &what, || async {
            let button = self.button(name).await;
            button.is_enabled().await.unwrap_or(false) && button.click().await.is_ok()
        })
        .await;
    }

    /// Follows the link whose visible text is `text`.
    pub async fn click_link(&self, text: &str) {
        let xpath = format!("//a[normalize-space(.)={}]", literal(text));
        let what = format!("following the link {text}");
        self.wait_until(PATIENCE, &what, || async {
            self.find(&xpath).await.click().await.is_ok()
        })
        .await;
    }

    /// The form control labelled `label` (by the label's visible text).
    pub async fn field(&self, label: &str) -> Element {
        self.find(&format!(
            "//*[@id=//label[normalize-space(.)={}]/@for]",
            literal(label)
        ))
        .await
    }

    /// Types `value` into the control labelled `label`, replacing its text.
    pub async fn fill(&self, label: &str, value: &str) {
        let field = self.field(label).await;
        field.clear().await.expect("clear a field");
        field.send_keys(value).await.expect("type");
    }

    /// Waits for the page's main heading to read `title`.
    pub async fn heading(&self, title: &str) {
        self.find(&format!("//h1[normalize-space(.)={}]", literal(title)))
            .await;
    }

    /// Waits for the page's main heading to start with `prefix`; its text.
    pub async fn heading_starting(&self, prefix: &str) -> String {
        self.find(&format!(
            "//h1[starts-with(normalize-space(.), {})]",
            literal(prefix)
        ))
        .await
        .text()
        .await
        .unwrap()
    }

    /// Waits for the alert (role `alert`) to contain `text`; its text.
    pub async fn alert(&self, text: &str) -> String {
        self.alert_within(PATIENCE, text).await
    }

    pub async fn alert_within(&self, limit: Duration, text: &str) -> String {
        let mut last = String::new();
        let start = Instant::now();
        loop {
            if let Some(alert) = self.find_all("//*[@role='alert']").await.first() {
                last = alert.text().await.unwrap_or_default();
                if last.contains(text) {
                    return last;
                }
            }
            assert!(
                start.elapsed() < limit,
                "no alert saying {text:?} within {limit:?}; the alert says {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the main navigation has a link named `text`.
    pub async fn nav_has(&self, text: &str) -> bool {
        !self
            .find_all(&format!(
                "//nav[@aria-label='Main']//*[normalize-space(.)={}]",
                literal(text)
            ))
            .await
            .is_empty()
    }

    pub async fn run(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("run a script")
    }

    /// Runs an async script: its last argument is the callback to call.
    pub async fn run_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute_async(script, args)
            .await
            .expect("run an async script")
    }

    /// Everything in sessionStorage and localStorage, as text.
    pub async fn storage(&self) -> String {
        self.run(
            "return JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)]);",
        )
        .await
        .as_str()
        .unwrap()
        .to_owned()
    }

    /// Saves a screenshot of the storefront as `storefront/<name>.png` in
    /// [`screenshot_dir`].
    pub async fn screenshot(&self, name: &str) {
        self.screenshot_of("storefront", name).await;
    }

    /// Saves a screenshot of the page as `<set>/<name>.png` in
    /// [`screenshot_dir`].
    pub async fn screenshot_of(&self, set: &str, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = screenshot_dir().join(set);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Resizes the window (a phone's width, a laptop's).
    pub async fn resize(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("resize the window");
    }

    /// The browser's console log since the last call: each entry's level
    /// and message (chromedriver's `goog:loggingPrefs`, read with its log
    /// command, which empties it).
    pub async fn console_log(&self) -> Vec<(String, String)> {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("the browser's log");
        entries
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|entry| {
                        (
                            entry["level"].as_str().unwrap_or_default().to_owned(),
                            entry["message"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// chromedriver's command for the browser's console log.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// `text` as an XPath string literal.
pub fn literal(text: &str) -> String {
    if !text.contains('\'') {
        format!("'{text}'")
    } else if !text.contains('"') {
        format!("\"{text}\"")
    } else {
        let parts: Vec<String> = text.split('\'').map(|part| format!("'{part}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}

// ---------------------------------------------------------------- jeton serve --demo

/// `jeton serve --demo` on a fresh SQLite database, on free ports, with an
/// admin key made on the command line beforehand.
pub struct Demo {
    pub child: Child,
    pub api: SocketAddr,
    /// The storefront's URL as printed, e.g. `http://127.0.0.1:3000/`.
    pub storefront_url: String,
    pub storefront: SocketAddr,
    pub publishable_key: String,
    pub admin: String,
    pub url: String,
    _stdout: ChildStdout,
    log: PathBuf,
    _dir: tempfile::TempDir,
    _database: Option<TestDatabase>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    pub async fn start() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/jeton.db", dir.path().display());
        Demo::start_in(dir, url, None, &[]).await
    }

    /// `jeton serve --demo` on a fresh database of `backend`, with `extra`
    /// arguments; `None` when that database is not available here (the
    /// test skips with a `NOTICE:`).
    pub async fn start_on(backend: Backend, extra: &[&str]) -> Option<Demo> {
        let database = TestDatabase::create(backend).await?;
        let dir = tempfile::tempdir().unwrap();
        let url = database.url.clone();
        Some(Demo::start_in(dir, url, Some(database), extra).await)
    }

    async fn start_in(
        dir: tempfile::TempDir,
        url: String,
        database: Option<TestDatabase>,
        extra: &[&str],
    ) -> Demo {
        let admin = process::cli_admin_key(&url, &["products:read"]);
        let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let storefront = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = dir.path().join("serve.log");
        let (api_addr, storefront_addr) = (api.to_string(), storefront.to_string());
        let mut args = vec![
            "serve",
            "--demo",
            "--addr",
            &api_addr,
            "--storefront-addr",
            &storefront_addr,
        ];
        args.extend_from_slice(extra);
        let mut child = process::command(&url, &args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start jeton serve --demo");
        let stdout = child.stdout.take().unwrap();
        // Reads the banner on a thread: the URL first, then the key.
        let (stdout, lines) = tokio::task::spawn_blocking(move || {
            let mut reader = BufReader::new(stdout);
            let mut lines = Vec::new();
            while lines.len() < 3 {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                lines.push(line.trim_end().to_owned());
            }
            (reader.into_inner(), lines)
        })
        .await
        .unwrap();
        let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            lines.len() == 3,
            "serve --demo printed {lines:?}; log: {}",
            log_text()
        );
        let storefront_url = lines[0]
            .strip_prefix("Storefront: ")
            .unwrap_or_else(|| panic!("the storefront's URL comes first: {lines:?}"))
            .to_owned();
        assert!(lines[1].contains("publishable key"), "{lines:?}");
        let publishable_key = lines[1].rsplit(' ').next().unwrap().to_owned();
        assert!(publishable_key.starts_with("jt_pk_"), "{lines:?}");
        assert!(
            lines[2].contains("demo@jeton.dev / demo-password"),
            "{lines:?}"
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(
            process::http(api, "GET", "/healthz", &[]).await,
            Ok((200, _))
        ) {
            assert!(
                Instant::now() < deadline,
                "jeton serve did not come up: {}",
                log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Demo {
            child,
            api,
            storefront_url,
            storefront,
            publishable_key,
            admin,
            url,
            _stdout: stdout,
            log,
            _dir: dir,
            _database: database,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One API call from the test (no `Origin`: not a browser).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<&Value>,
    ) -> Reply {
        let authorization = format!("Bearer {bearer}");
        let mut headers = vec![("authorization", authorization.as_str())];
        let body = body.map(|body| serde_json::to_vec(body).unwrap());
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let (status, text) =
            process::http_with_body(self.api, method, path, &headers, body.as_deref())
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: {e}; log: {}", self.log_text()));
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        Reply {
            status,
            head: head.to_owned(),
            body: body.to_owned(),
        }
    }

    /// A customer's token from a login made outside the browser (another
    /// device), through the demo key.
    pub async fn login(&self, email: &str, password: &str, device: &str) -> String {
        let reply = self
            .call(
                "POST",
                "/api/v1/auth/login",
                &self.publishable_key,
                Some(&json!({"email": email, "password": password, "device_name": device})),
            )
            .await;
        reply.expect(201);
        reply.json()["token"].as_str().unwrap().to_owned()
    }

    /// A product's stock, as the API reports it.
    pub async fn stock(&self, id: &str) -> i64 {
        let reply = self
            .call("GET", &format!("/api/v1/products/{id}"), &self.admin, None)
            .await;
        reply.expect(200);
        reply.json()["stock"].as_i64().unwrap()
    }

    /// The API's products for a query, page after page: their ids.
    pub async fn product_pages(&self, query: &str, pages: usize) -> Vec<String> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..pages {
            let mut path = format!("/api/v1/products?limit=12{query}");
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let reply = self.call("GET", &path, &self.admin, None).await;
            reply.expect(200);
            let page = reply.json();
            for product in page["data"].as_array().unwrap() {
                ids.push(product["id"].as_str().unwrap().to_owned());
            }
            cursor = page["next_cursor"].as_str().map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        ids
    }

    /// The demo client's id, from `jeton client list --json`.
    pub fn demo_client_id(&self) -> String {
        let run = process::jeton(&self.url, &["client", "list", "--json"]);
        run.ok();
        let clients = run.json();
        let list = clients
            .as_array()
            .or_else(|| clients["data"].as_array())
            .expect("a list of clients")
            .clone();
        list.iter()
            .find(|client| client["name"] == "Demo storefront" && client["revoked_at"].is_null())
            .and_then(|client| client["id"].as_str())
            .expect("the demo client")
            .to_owned()
    }
}
