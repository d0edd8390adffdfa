//! Test support: a real router over a real, freshly created database, on
//! SQLite or PostgreSQL, and a small request builder over `oneshot`.
//!
//! PostgreSQL: `JETON_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) names a server where each
//! test creates, and afterwards drops, its own database. If it cannot be
//! reached the PostgreSQL tests are skipped with a notice on the terminal,
//! unless `JETON_REQUIRE_POSTGRES=1` or `CI` is set: then they fail.

#![allow(dead_code)]

pub mod browser;
pub mod process;

use std::{
    io::Write,
    sync::{Arc, Mutex, Once, OnceLock},
};

use std::net::SocketAddr;

use axum::{
    Router,
    body::Body,
    extract::connect_info::MockConnectInfo,
    http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode},
};
use http_body_util::BodyExt;
use jeton::{
    config::Config,
    domain::{
        abilities,
        client::{ClientKind, NewClient},
        product::NewProduct,
    },
    http::{AppState, router},
    store::{Db, DbOptions, products::Product},
};
use jeton_auth::{AbilitySet, PlainToken};
use serde_json::{Value, json};
use sqlx::migrate::MigrateDatabase;
use tower::ServiceExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs an `async fn(TestApp)` once on SQLite and once on PostgreSQL, as
/// two tests named `<name>::sqlite` and `<name>::postgres`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    if let Some(app) = $crate::support::spawn_app($crate::support::Backend::Sqlite).await {
                        super::$name(app).await;
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    if let Some(app) = $crate::support::spawn_app($crate::support::Backend::Postgres).await {
                        super::$name(app).await;
                    }
                }
            }
        )*
    };
}

// ---------------------------------------------------------------- logging

static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything the server logged in this test process, at trace level.
pub fn captured_log() -> String {
    let log = LOG.get().expect("logging is set up by spawn_app");
    String::from_utf8_lossy(&log.lock().unwrap()).into_owned()
}

fn init_logging() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let buffer = LOG.get_or_init(|| Arc::new(Mutex::new(Vec::new()))).clone();
        tracing_subscriber::fmt()
            .with_env_filter("trace")
            .with_ansi(false)
            .with_writer(move || LogWriter(buffer.clone()))
            .init();
    });
}

// ---------------------------------------------------------------- the app

pub struct TestApp {
    pub router: Router,
    pub db: Db,
    pub url: String,
    pub backend: Backend,
    _sqlite_dir: Option<tempfile::TempDir>,
    drop_postgres: Option<String>,
}

fn require_postgres() -> bool {
    std::env::var_os("CI").is_some()
        || std::env::var("JETON_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// A notice that is not swallowed by the test harness' output capture.
fn notice(text: &str) {
    let _ = writeln!(std::io::stderr(), "NOTICE: {text}");
}

pub fn postgres_base_url() -> String {
    std::env::var("JETON_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh database URL on the chosen backend, or `None` when PostgreSQL is
/// unavailable and not required. The guard removes the database.
pub async fn fresh_database(
    backend: Backend,
) -> Option<(String, Option<tempfile::TempDir>, Option<String>)> {
    sqlx::any::install_default_drivers();
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}/jeton.db", dir.path().display());
            Some((url, Some(dir), None))
        }
        Backend::Postgres => {
            let base = postgres_base_url();
            let name = format!("jeton_test_{}", uuid_simple());
            let url = match base.rfind('/') {
                Some(slash) if slash > "postgres://".len() => format!("{}/{name}", &base[..slash]),
                _ => format!("{base}/{name}"),
            };
            match sqlx::Any::create_database(&url).await {
                Ok(()) => Some((url.clone(), None, Some(url))),
                Err(error) if require_postgres() => {
                    panic!(
                        "PostgreSQL is required (CI or JETON_REQUIRE_POSTGRES=1) but unavailable at {base}: {error}"
                    )
                }
                Err(error) => {
                    notice(&format!(
                        "skipping a PostgreSQL test: {base} unavailable ({error})"
                    ));
                    None
                }
            }
        }
    }
}

fn uuid_simple() -> String {
    jeton::domain::ids::new_id().replace('-', "")
}

pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, Config::default()).await
}

pub async fn spawn_app_with(backend: Backend, config: Config) -> Option<TestApp> {
    init_logging();
    let (url, dir, drop_postgres) = fresh_database(backend).await?;
    let db = Db::connect(&url, &DbOptions::default())
        .await
        .expect("connect and migrate");
    let state = AppState::load(db.clone(), config)
        .await
        .expect("load state");
    // Requests come from 127.0.0.1 unless a test says otherwise (through a
    // trusted proxy's X-Forwarded-For).
    let router = router(state).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    Some(TestApp {
        router,
        db,
        url,
        backend,
        _sqlite_dir: dir,
        drop_postgres,
    })
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(url) = self.drop_postgres.take() {
            // Drop runs outside async; use a small runtime of its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async { sqlx::Any::force_drop_database(&url).await })
            })
            .join();
        }
    }
}

// ---------------------------------------------------------------- requests

pub struct Req<'a> {
    app: &'a TestApp,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

pub struct Res {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Res {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "not JSON ({}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The problem `code`, or "" when the body has none.
    pub fn code(&self) -> String {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Res {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        self
    }

    /// Asserts a problem+json error with this status and code.
    #[track_caller]
    pub fn expect_problem(&self, status: u16, code: &str) -> &Res {
        self.expect(status);
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json")
        );
        let body = self.json();
        assert_eq!(body["code"], code, "body: {body}");
        assert_eq!(body["status"], status);
        assert_eq!(body["type"], format!("urn:jeton:problem:{code}"));
        self
    }
}

impl<'a> Req<'a> {
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.append(
            HeaderName::try_from(name).unwrap(),
            HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        );
        self
    }

    pub fn json(self, body: Value) -> Self {
        let bytes = serde_json::to_vec(&body).unwrap();
        self.raw("application/json", bytes)
    }

    pub fn raw(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.headers
            .insert("content-type", HeaderValue::from_str(content_type).unwrap());
        self.body = body.into();
        self
    }

    pub async fn send(self) -> Res {
        let mut request = Request::builder()
            .method(self.method)
            .uri(self.path)
            .body(Body::from(self.body))
            .unwrap();
        *request.headers_mut() = self.headers;
        send_request(self.app, request).await
    }
}

/// Sends a request through the app's router, as a client would.
pub async fn send_request(app: &TestApp, request: Request<Body>) -> Res {
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Res {
        status,
        headers,
        body,
    }
}

impl TestApp {
    /// Asserts that `token` reads the catalogue. Three times: the first
    /// request looks it up in the store, the second finds it in the shared
    /// cache, and from the third on a publishable key is found by its text
    /// (the requests run on this thread). So a refusal after a revocation or
    /// a rotation shows that every one of them has forgotten it.
    pub async fn assert_works(&self, token: &str) {
        for _ in 0..3 {
            self.get("/api/v1/products")
                .bearer(token)
                .send()
                .await
                .expect(200);
        }
    }

    pub fn req(&self, method: Method, path: &str) -> Req<'_> {
        Req {
            app: self,
            method,
            path: path.to_owned(),
            headers: HeaderMap::new(),
            body: Vec::new(),
        }
    }

    pub fn get(&self, path: &str) -> Req<'_> {
        self.req(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Req<'_> {
        self.req(Method::POST, path)
    }

    pub fn patch(&self, path: &str) -> Req<'_> {
        self.req(Method::PATCH, path)
    }

    pub fn delete(&self, path: &str) -> Req<'_> {
        self.req(Method::DELETE, path)
    }

    // ------------------------------------------------------------ fixtures

    /// A client made straight in the store; returns (client id, key).
    pub async fn client(
        &self,
        kind: ClientKind,
        abilities: &[&str],
        origins: &[&str],
    ) -> (String, String) {
        let key = PlainToken::generate(kind.token_kind());
        let abilities = AbilitySet::new(abilities.iter().map(|a| a.parse().unwrap()));
        let new = NewClient {
            name: format!("{} client", kind.as_str()),
            kind,
            abilities,
            allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
            rate_limit_per_minute: None,
            per_ip_rate_limit_per_minute: None,
        };
        let client = self
            .db
            .create_client(&new, &key, &jeton::store::audit::Audit::cli())
            .await
            .unwrap();
        (client.id, key.expose_secret().to_owned())
    }

    /// A secret key with `admin`.
    pub async fn admin_key(&self) -> String {
        self.client(ClientKind::Secret, &["admin"], &[]).await.1
    }

    /// A storefront's publishable key: products:read, customers:create,
    /// auth:login, for http://localhost:8080.
    pub async fn publishable_key(&self) -> String {
        self.publishable_client().await.1
    }

    pub async fn publishable_client(&self) -> (String, String) {
        let all = abilities::publishable_ceiling();
        let names: Vec<&str> = all.iter().map(|a| a.as_str()).collect();
        self.client(ClientKind::Publishable, &names, &["http://localhost:8080"])
            .await
    }

    pub async fn product(&self, sku: &str, price: i64, currency: &str, stock: i64) -> Product {
        self.db
            .create_product(&NewProduct {
                sku: sku.to_owned(),
                name: format!("Product {sku}"),
                description: String::new(),
                price_amount: price,
                currency: currency.to_owned(),
                stock,
            })
            .await
            .unwrap()
    }

    /// Registers a customer through `key` and returns their id.
    pub async fn register(&self, key: &str, email: &str, password: &str) -> String {
        let res = self
            .post("/api/v1/customers")
            .bearer(key)
            .json(json!({"email": email, "password": password, "name": "Test Customer"}))
            .send()
            .await;
        res.expect(201);
        res.json()["id"].as_str().unwrap().to_owned()
    }

    /// Logs in through `key`; returns the login response body.
    pub async fn login(&self, key: &str, email: &str, password: &str) -> Value {
        let res = self
            .post("/api/v1/auth/login")
            .bearer(key)
            .json(json!({"email": email, "password": password, "device_name": "test"}))
            .send()
            .await;
        res.expect(201);
        res.json()
    }

    /// A registered, logged-in customer: (customer id, user token).
    pub async fn customer(&self, email: &str) -> (String, String) {
        let key = self.publishable_key().await;
        let id = self.register(&key, email, "correct horse battery").await;
        let token = self.login(&key, email, "correct horse battery").await["token"]
            .as_str()
            .unwrap()
            .to_owned();
        (id, token)
    }

    /// Current stock of a product, from the database.
    pub async fn stock(&self, product_id: &str) -> i64 {
        self.db
            .get_product(product_id)
            .await
            .unwrap()
            .unwrap()
            .stock
    }
}

impl Req<'_> {
    /// Removes the `Content-Type` that `raw`/`json` set, keeping the body:
    /// a request with a body and no declared type.
    pub fn without_content_type(mut self) -> Self {
        self.headers.remove("content-type");
        self
    }
}
