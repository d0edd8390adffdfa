//! The traps a new user of `jeton-auth` could fall into, each now caught
//! where it is made, with a message that says what to change: from the
//! public API alone.

use std::{net::SocketAddr, sync::Arc};

use adopter_test::{ADMIN, AUTH_LOGIN, PRODUCTS_READ, PROFILE_READ, app, identity};
use axum::{
    Router,
    body::Body,
    extract::connect_info::MockConnectInfo,
    http::{Request, StatusCode, header},
    response::Response,
    routing::get,
};
use jeton_auth::{
    Access, Ceilings, Gate, GateError, Identity, IssuedToken, KindSet, MemoryStore, NewClient,
    TokenFormat, limits::Limits,
};
use serde_json::Value;
use tower::ServiceExt;

fn ceilings() -> Ceilings {
    Ceilings::new()
        .publishable([PRODUCTS_READ, AUTH_LOGIN])
        .secret([ADMIN])
        .user([PRODUCTS_READ, PROFILE_READ])
}

async fn send(app: Router, path: &str, token: &IssuedToken) -> (Response, Value) {
    let request = Request::get(path)
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", token.token.expose_secret()),
        )
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (Response::from_parts(parts, Body::empty()), json)
}

/// The token prefix is the identity's; a store of another prefix would
/// have every one of its tokens answered 401, like garbage.
#[test]
fn a_store_of_another_token_format_is_refused_naming_both() {
    let store = MemoryStore::new(TokenFormat::new("bk").unwrap());
    let error = Gate::builder(identity(), store)
        .ceilings(ceilings())
        .build()
        .err()
        .expect("refused");
    assert_eq!(
        error,
        GateError::TokenFormatMismatch {
            gate: "acme".into(),
            store: "bk".into(),
        }
    );
    let message = error.to_string();
    assert!(
        message.contains("`bk_…`") && message.contains("`acme_…`"),
        "{message}"
    );
}

/// Without ceilings every route would answer 403, whatever a key holds.
#[test]
fn a_gate_without_ceilings_is_refused() {
    let identity = identity();
    let store = MemoryStore::new(identity.tokens());
    let error = Gate::builder(identity, store)
        .build()
        .err()
        .expect("refused");
    assert_eq!(error, GateError::NoCeilings);
    assert!(
        error.to_string().contains("GateBuilder::ceilings"),
        "{error}"
    );
}

/// Served without connection info, the guard answers 500 saying how to
/// add it; a test adds `MockConnectInfo`, as the crate's docs show.
#[tokio::test]
async fn a_guard_without_connection_info_says_how_to_add_it() {
    let identity = identity();
    let store = MemoryStore::new(identity.tokens());
    let gate = Gate::builder(identity, store.clone())
        .ceilings(ceilings())
        .build()
        .unwrap();
    let shop = store.add_client(NewClient::new([PRODUCTS_READ]));
    let key = store.issue_publishable_key(&shop).unwrap();

    let (response, body) = send(app(store.clone(), &gate), "/catalogue", &key).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("into_make_service_with_connect_info::<SocketAddr>()")
            && detail.contains("MockConnectInfo"),
        "{detail}"
    );

    let served = app(store, &gate).layer(MockConnectInfo(SocketAddr::from(([192, 0, 2, 1], 1))));
    let (response, _) = send(served, "/catalogue", &key).await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// A key's limit is per minute: `RateLimit-Limit` is it, each request the
/// key makes counts, whatever the route answers (a 403 too), and beyond it
/// the answer is 429 with the seconds to wait (under a minute).
#[tokio::test]
async fn a_keys_limit_is_per_minute_and_every_admitted_request_counts() {
    let identity = identity();
    let store = MemoryStore::new(identity.tokens());
    let gate: Arc<Gate<MemoryStore>> = Gate::builder(identity, store.clone())
        .ceilings(ceilings())
        .build()
        .unwrap();
    let shop = store.add_client(NewClient::new([PRODUCTS_READ]).limits(Limits {
        per_key: Some(3),
        per_ip: None,
    }));
    let key = store.issue_publishable_key(&shop).unwrap();
    let served = || {
        Router::new()
            .route(
                "/catalogue",
                get(|| async { "[]" })
                    .route_layer(gate.guard(Access::new(KindSet::PUBLISHABLE, PRODUCTS_READ))),
            )
            .route(
                "/reports",
                get(|| async { "{}" }).route_layer(gate.guard(Access::new(KindSet::SECRET, ADMIN))),
            )
            .layer(MockConnectInfo(SocketAddr::from(([192, 0, 2, 1], 1))))
    };

    // A route the key may not use: refused, and counted.
    let (refused, _) = send(served(), "/reports", &key).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    for remaining in ["1", "0"] {
        let (response, _) = send(served(), "/catalogue", &key).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["ratelimit-limit"], "3");
        assert_eq!(response.headers()["ratelimit-remaining"], remaining);
    }
    let (limited, body) = send(served(), "/catalogue", &key).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["code"], "rate_limited");
    let wait: u64 = limited.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
}

/// An identity is the app's own: the library has no default to fall back
/// on, and its tokens are the identity's.
#[test]
fn the_app_names_its_prefix() {
    let identity = Identity::new("acme").unwrap();
    let store = MemoryStore::new(identity.tokens());
    let client = store.add_client(NewClient::new([PRODUCTS_READ]));
    let key = store.issue_publishable_key(&client).unwrap();
    assert!(key.token.expose_secret().starts_with("acme_pk_"));
}
