//! What the read benches share: a database with one product and a
//! storefront's publishable key, the routers they compare, and the requests
//! they send.
//!
//! Two pairs measure the auth overhead, the same product read with and
//! without the route guard (publishable key: header parse, checksum,
//! SHA-256, cache hit, origin, rate-limit and scope checks):
//!
//! - whole app: the app's router (every layer: request id, access log,
//!   hygiene, CORS, client IP, metrics) against the same layers around the
//!   same route table unguarded, with a browser's request (origin, peer
//!   address);
//! - bare handler: the guarded handler alone against the handler alone on
//!   a one-route router, the strictest view (the guard against nothing).
//!
//! And the server's side of a malformed-token flood: the whole app refusing
//! a bad checksum against `/healthz`, each from a new client IP.

use jeton::identity::TOKENS;
use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::atomic::{AtomicU32, Ordering},
};

use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, connect_info::MockConnectInfo},
    http::{Request, StatusCode},
    routing::{MethodFilter, get, on},
};
use jeton::{
    config::Config,
    domain::{
        abilities::PRODUCTS_READ,
        client::{ClientKind, NewClient},
        product::NewProduct,
    },
    http::{AppState, catalog, routes},
    store::{Db, DbOptions, audit::Audit},
};
use jeton_auth::{AbilitySet, Access, KindSet, PlainToken};
use tokio::runtime::Runtime;
use tower::ServiceExt;

const STOREFRONT_ORIGIN: &str = "http://localhost:8080";

/// A pair of routers serving the same request, one without authentication.
pub struct Pair {
    pub name: &'static str,
    pub bare: Router,
    pub guarded: Router,
    /// Whether the request comes from the storefront's page (an `Origin`).
    pub origin: bool,
}

pub struct Fixture {
    /// One worker thread, like one core of a server.
    pub runtime: Runtime,
    _dir: tempfile::TempDir,
    path: String,
    bearer: String,
    malformed: String,
    pub whole_app: Pair,
    pub bare_handler: Pair,
    /// The whole app, for the refusals.
    app: Router,
    next_ip: AtomicU32,
}

impl Fixture {
    pub fn new() -> Fixture {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/bench.db", dir.path().display());
        let (state, product_id, key) = runtime.block_on(seed(&url));
        let product_guard = state
            .gate
            .guard(Access::new(KindSet::PUBLISHABLE, PRODUCTS_READ));
        let peer = MockConnectInfo(SocketAddr::from(([198, 51, 100, 7], 50_000)));

        // The bare app has the route table's paths and methods, unguarded
        // (the product read's handler, and a stub for the others), so that
        // routing costs the two apps the same.
        let mut unguarded = Router::new();
        for entry in routes::api().entries() {
            let filter = MethodFilter::try_from(entry.method.clone()).unwrap();
            let path = format!("{}{}", routes::PREFIX, entry.path);
            unguarded = if entry.path == "/products/{id}" {
                unguarded.route(&path, on(filter, catalog::get_product))
            } else {
                unguarded.route(&path, on(filter, || async { StatusCode::NO_CONTENT }))
            };
        }
        let whole_app = Pair {
            name: "GET /products/{id}, whole app",
            bare: jeton::http::with_layers(unguarded, state.clone()).layer(peer),
            guarded: jeton::http::router(state.clone()).layer(peer),
            origin: true,
        };
        let bare_handler = Pair {
            name: "GET /products/{id}, bare handler",
            // Both with the peer's address, which the guard needs.
            bare: Router::new()
                .route("/api/v1/products/{id}", get(catalog::get_product))
                .with_state(state.clone())
                .layer(peer),
            guarded: Router::new()
                .route(
                    "/api/v1/products/{id}",
                    get(catalog::get_product).route_layer(product_guard),
                )
                .with_state(state.clone())
                .layer(peer),
            origin: false,
        };

        let mut malformed = key.expose_secret().to_owned().into_bytes();
        malformed[10] = if malformed[10] == b'a' { b'b' } else { b'a' };
        let fixture = Fixture {
            runtime,
            _dir: dir,
            path: format!("/api/v1/products/{product_id}"),
            bearer: format!("Bearer {}", key.expose_secret()),
            malformed: format!("Bearer {}", String::from_utf8(malformed).unwrap()),
            whole_app,
            bare_handler,
            app: jeton::http::router(state),
            next_ip: AtomicU32::new(0),
        };
        // Warm every cache.
        for pair in [&fixture.whole_app, &fixture.bare_handler] {
            fixture
                .runtime
                .block_on(fixture.read(&pair.bare, pair.origin));
            fixture
                .runtime
                .block_on(fixture.read(&pair.guarded, pair.origin));
        }
        fixture
    }

    /// The product read. Both routers of a pair get the same request, token
    /// included (the bare one ignores it), so that building and dropping
    /// the request is not counted as the cost of authentication.
    pub fn read(&self, router: &Router, origin: bool) -> impl Future<Output = ()> + use<> {
        let mut request = Request::get(&self.path).header("authorization", &self.bearer);
        if origin {
            request = request.header("origin", STOREFRONT_ORIGIN);
        }
        let request = request.body(Body::empty()).unwrap();
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200);
        }
    }

    /// `/healthz` from a new client IP each time.
    pub fn healthz(&self) -> impl Future<Output = ()> + use<> {
        self.request_from_new_ip("/healthz", None, 200)
    }

    /// A token with a bad checksum from a new client IP each time, on the
    /// product list as in `bench/run.py`'s flood: refused, and counted
    /// against that IP.
    pub fn malformed(&self) -> impl Future<Output = ()> + use<> {
        self.request_from_new_ip("/api/v1/products", Some(&self.malformed), 401)
    }

    fn request_from_new_ip(
        &self,
        uri: &str,
        authorization: Option<&str>,
        status: u16,
    ) -> impl Future<Output = ()> + use<> {
        let ip = self.next_ip.fetch_add(1, Ordering::Relaxed);
        let peer = SocketAddr::from((Ipv4Addr::from(0x0a00_0000 | (ip & 0xff_ffff)), 50_000));
        // The peer as `axum::serve` would give it.
        let mut request = Request::get(uri).extension(ConnectInfo(peer));
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        let request = request.body(Body::empty()).unwrap();
        let router = self.app.clone();
        async move {
            let response = router.oneshot(request).await.unwrap();
            assert_eq!(response.status(), status);
        }
    }
}

async fn seed(url: &str) -> (AppState, String, PlainToken) {
    let db = Db::connect(url, &DbOptions::default()).await.unwrap();
    let product = db
        .create_product(&NewProduct {
            sku: "BENCH-1".into(),
            name: "Bench mug".into(),
            description: "A mug to measure with.".into(),
            price_amount: 1200,
            currency: "EUR".into(),
            stock: 100,
        })
        .await
        .unwrap();
    let key = TOKENS.generate(ClientKind::Publishable.token_kind());
    let client = NewClient {
        name: "bench".into(),
        kind: ClientKind::Publishable,
        abilities: AbilitySet::new([PRODUCTS_READ]),
        allowed_origins: vec![STOREFRONT_ORIGIN.into()],
        rate_limit_per_minute: None,
        per_ip_rate_limit_per_minute: None,
    };
    db.create_client(&client, &key, &Audit::cli())
        .await
        .unwrap();
    let state = AppState::new(db, Config::default());
    // As `jeton serve` does at start: CORS learns the client's origin.
    state.origins.refresh(&state.db).await.unwrap();
    (state, product.id.to_string(), key)
}
