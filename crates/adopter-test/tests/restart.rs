//! Credentials in a database outlive the process: keys and user tokens that
//! one run of Acme's app issued work in the next, and a revocation made in
//! one holds in the next. From the public API alone, on a SQLite file.

use std::{net::SocketAddr, path::PathBuf};

use adopter_test::{AUTH_LOGIN, PRODUCTS_READ, PROFILE_READ, identity};
use axum::{
    Router,
    body::Body,
    extract::connect_info::MockConnectInfo,
    http::{Request, StatusCode, header},
    routing::get,
};
use jeton_auth::{Access, Ceilings, Gate, IssuedToken, KindSet, NewClient, SqlStore};
use tower::ServiceExt;

const SHOP: &str = "https://shop.acme.example";

/// A database file of this test's own, removed when it ends.
struct DatabaseFile(PathBuf);

impl DatabaseFile {
    fn new() -> DatabaseFile {
        let path = std::env::temp_dir().join(format!("adopter-restart-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        DatabaseFile(path)
    }

    fn url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.0.display())
    }
}

impl Drop for DatabaseFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

/// One run of the app: its store on `url`, its gate and two routes.
async fn run(url: &str) -> (SqlStore, Router) {
    let identity = identity();
    let store = SqlStore::connect(url, identity.tokens()).await.unwrap();
    let gate = Gate::builder(identity, store.clone())
        .ceilings(
            Ceilings::new()
                .publishable([PRODUCTS_READ, AUTH_LOGIN])
                .user([PRODUCTS_READ, PROFILE_READ]),
        )
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/catalogue",
            get(|| async { "[]" }).route_layer(gate.guard(Access::new(
                KindSet::PUBLISHABLE | KindSet::USER,
                PRODUCTS_READ,
            ))),
        )
        .route(
            "/profile",
            get(|| async { "{}" })
                .route_layer(gate.guard(Access::new(KindSet::USER, PROFILE_READ))),
        )
        .layer(MockConnectInfo(SocketAddr::from(([192, 0, 2, 1], 1))));
    (store, app)
}

async fn status(app: &Router, path: &str, token: &IssuedToken) -> StatusCode {
    let request = Request::get(path)
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", token.token.expose_secret()),
        )
        .body(Body::empty())
        .unwrap();
    app.clone().oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn keys_tokens_and_revocations_outlive_a_restart() {
    let file = DatabaseFile::new();
    let (key, token, revoked) = {
        let (store, app) = run(&file.url()).await;
        let shop = store
            .add_client(NewClient::new([PRODUCTS_READ, AUTH_LOGIN]).allowed_origins([SHOP]))
            .await
            .unwrap();
        let key = store.issue_publishable_key(&shop).await.unwrap();
        let token = store
            .issue_user_token("wile", [PRODUCTS_READ, PROFILE_READ], None)
            .await
            .unwrap();
        let revoked = store
            .issue_user_token("wile", [PROFILE_READ], None)
            .await
            .unwrap();
        assert_eq!(status(&app, "/profile", &revoked).await, StatusCode::OK);
        assert!(store.revoke(&revoked.id).await.unwrap());
        store.pool().close().await;
        (key, token, revoked)
    };

    // The next run, on the same file: the same client, nothing new.
    let (store, app) = run(&file.url()).await;
    assert_eq!(store.list_clients(None, 10).await.unwrap().len(), 1);
    assert_eq!(status(&app, "/catalogue", &key).await, StatusCode::OK);
    assert_eq!(status(&app, "/profile", &token).await, StatusCode::OK);
    assert_eq!(
        status(&app, "/profile", &revoked).await,
        StatusCode::UNAUTHORIZED
    );
    store.pool().close().await;
}
