//! The auth overhead, in process: the same product read through the same
//! handler, once behind the route guard (publishable key: header parse,
//! checksum, SHA-256, cache hit, origin and scope checks) and once on a
//! router built here without it. Everything else is identical, so the ratio
//! of the two is the cost of authentication.

use axum::{Router, body::Body, http::Request, routing::get};
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
            allowed_origins: vec!["http://localhost:8080".into()],
            rate_limit_per_minute: None,
            per_ip_rate_limit_per_minute: None,
        };
        db.create_client(&client, &key, &Audit::cli())
            .await
            .unwrap();
        (AppState::new(db, Config::default()), product.id, key)
    });
    let path = format!("/api/v1/products/{product_id}");
    let bare: Router = Router::new()
        .route("/api/v1/products/{id}", get(catalog::get_product))
        .with_state(state.clone());
    let guard = Guard {
        gate: state.gate.clone(),
        access: Access::new(KindSet::PUBLISHABLE, PRODUCTS_READ),
    };
    let guarded: Router = Router::new()
        .route(
            "/api/v1/products/{id}",
            get(guard.handler::<AppError, _>(catalog::get_product)),
        )
        .with_state(state);
    let bearer = format!("Bearer {}", key.expose_secret());
    // Both routers get the same request, token included (the bare one
    // ignores it), so that building and dropping the request is not counted
    // as the cost of authentication.
    let call = |router: &Router| {
        let request = Request::get(&path)
            .header("authorization", &bearer)
            .body(Body::empty())
            .unwrap();
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200);
        }
    };
    // Warm both caches.
    runtime.block_on(call(&guarded));
    runtime.block_on(call(&bare));

    let mut group = c.benchmark_group("GET /products/{id}");
    group.bench_function("without auth", |b| {
        b.to_async(&runtime).iter(|| call(&bare))
    });
    group.bench_function("with auth (publishable key)", |b| {
        b.to_async(&runtime).iter(|| call(&guarded))
    });
    group.finish();
}

criterion_group!(benches, read);
criterion_main!(benches);
