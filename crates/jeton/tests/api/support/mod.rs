//! Test support: a real router over a real, freshly created database, on
//! SQLite or PostgreSQL (see [`database`]), a small request builder over
//! `oneshot`, and the fixtures and checks the feature files share.

pub mod browser;
pub mod database;
pub mod fleet;
pub mod postgres;
pub mod process;
pub mod secret_scanning;
pub mod staff;

use jeton::identity::TOKENS;
use std::{
    future::Future,
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
    store::{Db, DbOptions, audit::Audit, products::Product, user_tokens::NewUserToken},
};
use jeton_auth::{AbilitySet, Clock, TokenKind};
use serde_json::{Value, json};
use tower::ServiceExt;

pub use database::{Backend, TestDatabase};

/// The password of every test customer unless a test says otherwise.
pub const PASSWORD: &str = "correct horse battery";

/// A well-formed id that names nothing.
pub const UNKNOWN_ID: &str = "01900000-0000-7000-8000-000000000000";

/// The tables that hold what the API writes (the audit log aside).
pub const STORE_TABLES: [&str; 9] = [
    "auth_clients",
    "client_details",
    "auth_credentials",
    "user_token_details",
    "customers",
    "auth_access_tokens",
    "products",
    "orders",
    "order_items",
];

/// Origins of the client tests.
pub const SHOP: &str = "https://shop.example";
pub const OTHER_SHOP: &str = "https://other-shop.example";
pub const EVIL: &str = "https://evil.example";

/// What a login token holds, in the API's (sorted) order.
pub const USER_ABILITIES: [&str; 6] = [
    "cart:write",
    "orders:read",
    "orders:write",
    "products:read",
    "profile:read",
    "tokens:manage",
];

/// Runs each `async fn name(fixture)` once on SQLite and once on
/// PostgreSQL, as two tests named `<name>::sqlite` and `<name>::postgres`.
/// The fixture is the test's parameter type: a [`TestApp`], or a
/// [`Backend`] for tests that start `jeton` processes on a database of
/// their own. `config = EXPR;` first builds the apps from that
/// configuration (for [`TestApp`] tests only: a process takes its settings
/// on the command line).
#[macro_export]
macro_rules! on_both_databases {
    (config = $config:expr; $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    $crate::support::run_with($crate::support::Backend::Sqlite, $config, super::$name).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    $crate::support::run_with($crate::support::Backend::Postgres, $config, super::$name).await;
                }
            }
        )*
    };
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    $crate::support::run($crate::support::Backend::Sqlite, super::$name).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    $crate::support::run($crate::support::Backend::Postgres, super::$name).await;
                }
            }
        )*
    };
}

/// What a test of [`on_both_databases!`] is given.
pub trait Fixture: Sized {
    /// `None`: PostgreSQL is unavailable and not required (a notice says so).
    fn setup(backend: Backend) -> impl Future<Output = Option<Self>>;
}

impl Fixture for TestApp {
    async fn setup(backend: Backend) -> Option<TestApp> {
        TestApp::spawn(backend).await
    }
}

impl Fixture for Backend {
    async fn setup(backend: Backend) -> Option<Backend> {
        Some(backend)
    }
}

/// Runs `test` with its fixture on `backend`.
pub async fn run<T: Fixture, F: Future<Output = ()>>(backend: Backend, test: impl FnOnce(T) -> F) {
    if let Some(fixture) = T::setup(backend).await {
        test(fixture).await;
    }
}

/// Runs `test` with an app built from `config` on `backend`.
pub async fn run_with<F: Future<Output = ()>>(
    backend: Backend,
    config: Config,
    test: impl FnOnce(TestApp) -> F,
) {
    if let Some(app) = TestApp::spawn_with(backend, config).await {
        test(app).await;
    }
}

/// The Argon2id hash of [`PASSWORD`], computed once per test process.
async fn password_hash() -> &'static str {
    static HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    HASH.get_or_init(|| async {
        tokio::task::spawn_blocking(|| {
            use argon2::PasswordHasher;
            argon2::Argon2::default()
                .hash_password(PASSWORD.as_bytes())
                .expect("hashing cannot fail")
                .to_string()
        })
        .await
        .unwrap()
    })
    .await
}

/// The string a JSON value holds.
#[track_caller]
pub fn s(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .to_owned()
}

/// A timestamp field: RFC 3339.
#[track_caller]
pub fn timestamp(value: &Value) -> time::OffsetDateTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"));
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| panic!("not RFC 3339: {text}"))
}

/// `at` is `expected` give or take a few minutes (the test's own run time).
#[track_caller]
pub fn assert_about(at: time::OffsetDateTime, expected: time::OffsetDateTime) {
    let off = (at - expected).abs();
    assert!(
        off < time::Duration::minutes(5),
        "{at} is not about {expected} (off by {off})"
    );
}

/// The object has exactly these fields.
#[track_caller]
pub fn assert_fields(value: &Value, expected: &[&str]) {
    let mut names: Vec<&String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .collect();
    names.sort();
    let mut expected = expected.to_vec();
    expected.sort();
    assert_eq!(names, expected, "in {value}");
}

/// The last four characters of a token, as listings show them.
pub fn last4(token: &str) -> &str {
    &token[token.len() - 4..]
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
    /// The app's state, for what a test must trigger rather than wait for
    /// (writing the usage, say).
    pub state: AppState,
    pub url: String,
    pub backend: Backend,
    // Last: the database goes after the pool and the router that use it.
    _database: TestDatabase,
}

impl TestApp {
    /// An app with the default configuration.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        TestApp::spawn_with(backend, Config::default()).await
    }

    /// An app on SQLite, which is always there.
    pub async fn sqlite() -> TestApp {
        TestApp::spawn(Backend::Sqlite)
            .await
            .expect("SQLite is always there")
    }

    /// An app whose time stands still until the test moves it on
    /// ([`TestApp::advance`]).
    pub async fn spawn_with(backend: Backend, config: Config) -> Option<TestApp> {
        let clock = Clock::manual(time::OffsetDateTime::now_utc());
        TestApp::spawn_on(backend, config, clock).await
    }

    /// An app on SQLite on the system's clock, for a test whose other
    /// processes (the CLI) write times into the same database: the app
    /// must read the time they write by.
    pub async fn sqlite_on_system_time() -> TestApp {
        TestApp::spawn_on(Backend::Sqlite, Config::default(), Clock::system())
            .await
            .expect("SQLite is always there")
    }

    async fn spawn_on(backend: Backend, config: Config, clock: Clock) -> Option<TestApp> {
        let database = TestDatabase::create(backend).await?;
        Some(TestApp::serve(database, backend, config, clock).await)
    }

    /// An app on a database the test prepared (an older schema, say),
    /// which it brings up to date.
    pub async fn on_database(database: TestDatabase, backend: Backend) -> TestApp {
        let clock = Clock::manual(time::OffsetDateTime::now_utc());
        TestApp::serve(database, backend, Config::default(), clock).await
    }

    async fn serve(
        database: TestDatabase,
        backend: Backend,
        config: Config,
        clock: Clock,
    ) -> TestApp {
        init_logging();
        let options = DbOptions {
            clock,
            ..DbOptions::default()
        };
        let db = Db::connect(&database.url, &options)
            .await
            .expect("connect and migrate");
        let state = AppState::load(db.clone(), config)
            .await
            .expect("load state");
        // Requests come from 127.0.0.1 unless a test says otherwise (through
        // a trusted proxy's X-Forwarded-For).
        let router =
            router(state.clone()).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        TestApp {
            router,
            db,
            state,
            url: database.url.clone(),
            backend,
            _database: database,
        }
    }

    /// Writes the last uses and usage counts now, as the app does every
    /// `usage_interval`.
    pub async fn flush_usage(&self) {
        self.state.gate.flush_usage().await;
    }

    /// The app's time.
    pub fn now(&self) -> time::OffsetDateTime {
        self.db.now()
    }

    /// Moves the app's time on, for its store, its gate and its limits:
    /// an expiry or the end of a window without waiting for it.
    pub fn advance(&self, by: std::time::Duration) {
        self.db.clock().advance(by);
    }

    /// A pool of its own on the test's database, for looking behind the API.
    pub async fn side_pool(&self) -> sqlx::AnyPool {
        connect(&self.url).await
    }

    /// Row counts of `tables`, straight from the database.
    pub async fn row_counts(&self, tables: &[&'static str]) -> Vec<(&'static str, i64)> {
        use sqlx::Row;
        let pool = self.side_pool().await;
        let mut counts = Vec::new();
        for table in tables {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) AS n FROM {table}"
            )))
            .fetch_one(&pool)
            .await
            .unwrap();
            counts.push((*table, row.get::<i64, _>("n")));
        }
        pool.close().await;
        counts
    }
}

/// A small pool on the database at `url` (one that a router or a server
/// process also uses).
pub async fn connect(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::pool::PoolOptions::<sqlx::Any>::new()
        .max_connections(2)
        .connect(url)
        .await
        .expect("connect to the test database")
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

    /// `GET path` with `token` as the bearer, nothing else.
    pub async fn get_as(&self, path: &str, token: &str) -> Res {
        self.get(path).bearer(token).send().await
    }

    /// `POST path` with `token` as the bearer and no body.
    pub async fn post_as(&self, path: &str, token: &str) -> Res {
        self.post(path).bearer(token).send().await
    }

    /// `POST path` with `token` as the bearer and `body` as JSON.
    pub async fn post_json_as(&self, path: &str, token: &str, body: Value) -> Res {
        self.post(path).bearer(token).json(body).send().await
    }

    /// `PATCH path` with `token` as the bearer and `body` as JSON.
    pub async fn patch_json_as(&self, path: &str, token: &str, body: Value) -> Res {
        self.patch(path).bearer(token).json(body).send().await
    }

    /// `DELETE path` with `token` as the bearer.
    pub async fn delete_as(&self, path: &str, token: &str) -> Res {
        self.delete(path).bearer(token).send().await
    }

    // ------------------------------------------------------------ fixtures

    /// A client made straight in the store; returns (client id, key).
    pub async fn client(
        &self,
        kind: ClientKind,
        abilities: &[&str],
        origins: &[&str],
    ) -> (String, String) {
        let key = TOKENS.generate(kind.token_kind());
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
        (client.id.into(), key.expose_secret().to_owned())
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

    /// A customer with a login token: (customer id, user token). Made in
    /// the store, as a registration and a login through a storefront's key
    /// would make them (the password is [`PASSWORD`]), without their two
    /// Argon2 computations: tests of registration and login use
    /// [`TestApp::register`] and [`TestApp::login`].
    pub async fn customer(&self, email: &str) -> (String, String) {
        let (client_id, _) = self.publishable_client().await;
        let customer = self
            .db
            .create_customer(email, "Test Customer", password_hash().await)
            .await
            .unwrap_or_else(|_| panic!("create customer {email}"));
        let token = TOKENS.generate(TokenKind::User);
        self.db
            .insert_user_token(
                &token,
                NewUserToken {
                    customer_id: &customer.id,
                    client_id: Some(&client_id.parse().expect("a client id")),
                    name: "test",
                    abilities: &abilities::user_ceiling(),
                    expires_at: Some(time::OffsetDateTime::now_utc() + time::Duration::days(30)),
                },
                &Audit::cli(),
            )
            .await
            .unwrap();
        (customer.id.into(), token.expose_secret().to_owned())
    }

    /// A login token of the customer `email` (password [`PASSWORD`]) through
    /// `key`.
    pub async fn login_token(&self, key: &str, email: &str) -> String {
        s(&self.login(key, email, PASSWORD).await["token"])
    }

    /// Current stock of a product, from the database.
    pub async fn stock(&self, product_id: &str) -> i64 {
        self.db
            .get_product(&product_id.parse().expect("a product id"))
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

// ---------------------------------------------------------------- shared API steps

impl TestApp {
    /// The token no longer authenticates anywhere.
    pub async fn assert_dead(&self, token: &str) {
        self.get("/api/v1/products")
            .bearer(token)
            .send()
            .await
            .expect_problem(401, "invalid_token");
    }

    /// The same for a revocation made by another process (the CLI): it
    /// reaches this app's caches through the change feed, within one second
    /// by the contract. Waits that long plus slack for a loaded machine,
    /// then insists.
    pub async fn assert_dead_soon(&self, token: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
        loop {
            let res = self.get("/api/v1/products").bearer(token).send().await;
            if res.status == 401 || std::time::Instant::now() > deadline {
                res.expect_problem(401, "invalid_token");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// `GET /products` with `key`, from `origin` if given.
    pub async fn products(&self, key: &str, origin: Option<&str>) -> Res {
        let mut req = self.get("/api/v1/products").bearer(key);
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        req.send().await
    }

    /// `POST /admin/clients`.
    pub async fn create_client(&self, admin: &str, body: Value) -> Res {
        self.post("/api/v1/admin/clients")
            .bearer(admin)
            .json(body)
            .send()
            .await
    }

    /// `GET /admin/clients/{id}`, which must succeed.
    pub async fn get_client(&self, admin: &str, id: &str) -> Value {
        let res = self
            .get(&format!("/api/v1/admin/clients/{id}"))
            .bearer(admin)
            .send()
            .await;
        res.expect(200);
        res.json()
    }

    /// `POST /admin/clients/{id}/keys`: a rotation.
    pub async fn rotate(&self, admin: &str, id: &str, body: Value) -> Res {
        self.post(&format!("/api/v1/admin/clients/{id}/keys"))
            .bearer(admin)
            .json(body)
            .send()
            .await
    }

    /// Rotates the client's key, older keys working on for `grace` seconds
    /// (the default, none, without): the new key.
    pub async fn rotated(&self, admin: &str, id: &str, grace: Option<u32>) -> String {
        let body = match grace {
            Some(seconds) => json!({ "previous_key_expires_in_seconds": seconds }),
            None => json!({}),
        };
        let res = self.rotate(admin, id, body).await;
        res.expect(201);
        s(&res.json()["key"])
    }

    /// `POST /admin/products`.
    pub async fn create_product(&self, admin: &str, body: Value) -> Res {
        self.post("/api/v1/admin/products")
            .bearer(admin)
            .json(body)
            .send()
            .await
    }

    /// `PATCH /admin/products/{id}`.
    pub async fn patch_product(&self, admin: &str, id: &str, body: Value) -> Res {
        self.patch(&format!("/api/v1/admin/products/{id}"))
            .bearer(admin)
            .json(body)
            .send()
            .await
    }
}

/// The `action` of each audit event.
pub fn actions(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| s(&e["action"])).collect()
}

impl Res {
    /// A 403 of the origin checks: no challenge (the token itself is fine).
    #[track_caller]
    pub fn expect_refused(&self, code: &str) -> &Res {
        self.expect_problem(403, code);
        assert_eq!(
            self.header("www-authenticate"),
            None,
            "{code} has no challenge"
        );
        self
    }

    /// A 422 `validation_failed` whose `errors` name `field`.
    #[track_caller]
    pub fn expect_invalid(&self, field: &str) -> &Res {
        self.expect_problem(422, "validation_failed");
        let body = self.json();
        let errors = body["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no errors list: {body}"));
        assert!(
            errors.iter().any(|e| e["field"] == field),
            "no error for `{field}` in {body}"
        );
        self
    }
}

// ---------------------------------------------------------------- pages and shapes

impl TestApp {
    /// A product with a chosen name (the support fixture names it after the SKU).
    pub async fn named_product(
        &self,
        sku: &str,
        name: &str,
        price: i64,
        currency: &str,
        stock: i64,
    ) -> Product {
        self.db
            .create_product(&NewProduct {
                sku: sku.to_owned(),
                name: name.to_owned(),
                description: format!("About {name}"),
                price_amount: price,
                currency: currency.to_owned(),
                stock,
            })
            .await
            .unwrap()
    }

    /// Follows `next_cursor` from the first page of `path?query` with `limit`,
    /// checking that every page but the last is full and the last one ends with
    /// `next_cursor: null`. Returns every item in the order seen.
    pub async fn all_pages(
        &self,
        token: &str,
        path: &str,
        query: &str,
        limit: usize,
    ) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let mut url = format!("{path}?limit={limit}");
            if !query.is_empty() {
                url.push('&');
                url.push_str(query);
            }
            if let Some(cursor) = &cursor {
                url.push_str(&format!("&cursor={}", enc(cursor)));
            }
            let res = self.get(&url).bearer(token).send().await;
            res.expect(200);
            let page = res.json();
            let data = page["data"].as_array().unwrap().clone();
            assert!(data.len() <= limit, "{url}: {} items", data.len());
            items.extend(data.iter().cloned());
            match &page["next_cursor"] {
                Value::Null => return items,
                Value::String(next) => {
                    assert_eq!(data.len(), limit, "{url}: a page with a next page is full");
                    cursor = Some(next.clone());
                }
                other => panic!("next_cursor must be a string or null: {other}"),
            }
        }
        panic!("{path}?{query}: pagination does not end");
    }
}

/// Percent-encodes a query value.
pub fn enc(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

pub fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

pub fn assert_rfc3339_utc(value: &Value) {
    let text = value.as_str().expect("a timestamp string");
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{text} is not RFC 3339: {e}"));
    assert_eq!(parsed.offset(), time::UtcOffset::UTC, "{text} is not UTC");
    assert!(text.ends_with('Z'), "{text} is not UTC");
}

pub fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

pub fn error_fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("a validation error lists its fields: {body}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------- OAuth 2.0

impl Req<'_> {
    /// A form body, as OAuth 2.0 endpoints take.
    pub fn form(self, body: &str) -> Self {
        self.raw("application/x-www-form-urlencoded", body)
    }

    /// HTTP Basic client authentication (RFC 6749 §2.3.1: each part
    /// form-urlencoded, then base64).
    pub fn basic(self, client_id: &str, secret: &str) -> Self {
        use base64::Engine;
        let pair = format!("{}:{}", enc(client_id), enc(secret));
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        self.header("authorization", &format!("Basic {encoded}"))
    }
}

impl TestApp {
    /// An access token from the client credentials grant (Basic), with
    /// `scope` if given.
    pub async fn access_token(&self, client_id: &str, secret: &str, scope: Option<&str>) -> String {
        let mut body = "grant_type=client_credentials".to_owned();
        if let Some(scope) = scope {
            body.push_str(&format!("&scope={}", enc(scope)));
        }
        let res = self.token_request(client_id, secret, &body).await;
        res.expect(200);
        s(&res.json()["access_token"])
    }

    /// `POST /oauth/token` with `form`, the client authenticated with
    /// HTTP Basic.
    pub async fn token_request(&self, client_id: &str, secret: &str, form: &str) -> Res {
        self.post("/oauth/token")
            .basic(client_id, secret)
            .form(form)
            .send()
            .await
    }

    /// The actions of the audit log, oldest first.
    pub async fn audit_actions(&self) -> Vec<String> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT action FROM audit_events ORDER BY id")
            .fetch_all(&self.side_pool().await)
            .await
            .unwrap();
        rows.into_iter().map(|(action,)| action).collect()
    }
}

impl Res {
    /// An RFC 6749 §5.2 error: JSON with `error` and `error_description`
    /// and nothing else, never cached.
    #[track_caller]
    pub fn expect_oauth_error(&self, status: u16, error: &str) -> &Res {
        self.expect(status);
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/json")
        );
        let body = self.json();
        assert_eq!(body["error"], error, "body: {body}");
        assert_eq!(keys(&body), ["error", "error_description"]);
        self.expect_oauth_headers()
    }

    /// `Cache-Control: no-store` and `Pragma: no-cache`, as every OAuth
    /// answer carries.
    #[track_caller]
    pub fn expect_oauth_headers(&self) -> &Res {
        assert_eq!(self.header("cache-control").as_deref(), Some("no-store"));
        assert_eq!(self.header("pragma").as_deref(), Some("no-cache"));
        self
    }
}
