//! The auth overhead, in process: the same product read through the same
//! handler, once behind the route guard (publishable key: header parse,
//! checksum, SHA-256, cache hit, origin, rate-limit and scope checks) and
//! once without it. Everything else is identical, so the ratio of the two is
//! the cost of authentication. Two pairs:
//!
//! - whole app: the app's router (every layer: request id, access log,
//!   hygiene, CORS, client IP, metrics) against the same layers around an
//!   unguarded route, with a browser's request (origin, peer address);
//! - bare handler: the guarded handler alone against the handler alone on
//!   a one-route router, the strictest view (the guard against nothing).
//!
//! And the server's side of a malformed-token flood: the whole app refusing
//! a bad checksum against `/healthz`, each from a new client IP.

use std::net::SocketAddr;

use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, connect_info::MockConnectInfo},
    http::Request,
    routing::get,
};
use criterion::{Criterion, criterion_group, criterion_main};
use jeton::{
    config::Config,
    domain::{
        abilities::PRODUCTS_READ,
        client::{ClientKind, NewClient},
        product::NewProduct,
    },
    http::{AppState, catalog, error::AppError},
    store::{Db, DbOptions, audit::Audit},
};
use jeton_auth::{AbilitySet, Access, KindSet, PlainToken, axum::Guard};
use tower::ServiceExt;

const STOREFRONT_ORIGIN: &str = "http://localhost:8080";

fn read(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/bench.db", dir.path().display());
    let (state, product_id, key) = runtime.block_on(async {
        let db = Db::connect(&url, &DbOptions::default()).await.unwrap();
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
        let key = PlainToken::generate(ClientKind::Publishable.token_kind());
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
        (state, product.id, key)
    });
    let path = format!("/api/v1/products/{product_id}");
    let bearer = format!("Bearer {}", key.expose_secret());
    let guard = Guard {
        gate: state.gate.clone(),
        access: Access::new(KindSet::PUBLISHABLE, PRODUCTS_READ),
    };
    let peer = MockConnectInfo(SocketAddr::from(([198, 51, 100, 7], 50_000)));

    let whole_app_bare = jeton::http::with_layers(
        Router::new().route("/api/v1/products/{id}", get(catalog::get_product)),
        state.clone(),
    )
    .layer(peer);
    let whole_app_guarded = jeton::http::router(state.clone()).layer(peer);
    let handler_bare: Router = Router::new()
        .route("/api/v1/products/{id}", get(catalog::get_product))
        .with_state(state.clone());
    let handler_guarded: Router = Router::new()
        .route(
            "/api/v1/products/{id}",
            get(guard.handler::<AppError, _>(catalog::get_product)),
        )
        .with_state(state.clone());

    // Both routers of a pair get the same request, token included (the
    // bare one ignores it), so that building and dropping the request is
    // not counted as the cost of authentication.
    let call = |router: &Router, origin: bool| {
        let mut request = Request::get(&path).header("authorization", &bearer);
        if origin {
            request = request.header("origin", STOREFRONT_ORIGIN);
        }
        let request = request.body(Body::empty()).unwrap();
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200);
        }
    };
    // Warm every cache.
    for (router, origin) in [
        (&whole_app_guarded, true),
        (&whole_app_bare, true),
        (&handler_guarded, false),
        (&handler_bare, false),
    ] {
        runtime.block_on(call(router, origin));
    }

    let pair = |c: &mut Criterion, name: &str, bare: &Router, guarded: &Router, origin: bool| {
        let mut group = c.benchmark_group(name);
        group.bench_function("without auth", |b| {
            b.to_async(&runtime).iter(|| call(bare, origin))
        });
        group.bench_function("with auth (publishable key)", |b| {
            b.to_async(&runtime).iter(|| call(guarded, origin))
        });
        group.finish();
    };
    pair(
        c,
        "GET /products/{id}, whole app",
        &whole_app_bare,
        &whole_app_guarded,
        true,
    );

    // The server's side of a flood of malformed tokens, without wrk: a
    // token with a bad checksum from a new client IP each time (refused,
    // counted against that IP), against `/healthz` from the same IPs.
    let mut malformed = key.expose_secret().to_owned().into_bytes();
    malformed[10] = if malformed[10] == b'a' { b'b' } else { b'a' };
    let malformed = format!("Bearer {}", String::from_utf8(malformed).unwrap());
    let app = jeton::http::router(state.clone());
    let next_ip = std::sync::atomic::AtomicU32::new(0);
    let from_new_ip = |uri: &str, authorization: Option<&str>, status: u16| {
        let ip = next_ip.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let peer = SocketAddr::from((
            std::net::Ipv4Addr::from(0x0a00_0000 | (ip & 0xff_ffff)),
            50_000,
        ));
        // The peer as `axum::serve` would give it.
        let mut request = Request::get(uri).extension(ConnectInfo(peer));
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        let router = app.clone();
        let request = request.body(Body::empty()).unwrap();
        async move {
            let response = router.oneshot(request).await.unwrap();
            assert_eq!(response.status(), status);
        }
    };
    let mut group = c.benchmark_group("refusals, whole app, a new client IP each");
    group.bench_function("GET /healthz", |b| {
        b.to_async(&runtime)
            .iter(|| from_new_ip("/healthz", None, 200))
    });
    group.bench_function("malformed token (bad checksum)", |b| {
        b.to_async(&runtime)
            .iter(|| from_new_ip(&path, Some(&malformed), 401))
    });
    group.finish();

    pair(
        c,
        "GET /products/{id}, bare handler",
        &handler_bare,
        &handler_guarded,
        false,
    );
}

criterion_group!(benches, read);
criterion_main!(benches);
