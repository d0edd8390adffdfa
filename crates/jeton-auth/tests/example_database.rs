//! The database example, driven end to end on SQLite and on PostgreSQL:
//! fails if the example breaks.

#[path = "../examples/database.rs"]
#[allow(dead_code)] // its `main` and constants are for running it
mod database;
#[path = "support/requests.rs"]
mod requests;
mod support;

use std::time::{Duration, Instant};

use axum::{Router, http::StatusCode};
use serde_json::json;

use database::Example;
use requests::send;
use support::{Backend, TestDatabase};

/// The example's router, as served.
fn served(example: &Example) -> Router {
    requests::served(example.app())
}

async fn each_kind_reaches_its_own_routes_only(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let example = Example::new(&database.url).await.unwrap();
    let app = served(&example);
    let keys = example.keys.as_ref().expect("a new database: new keys");
    let pk = keys.publishable.token.expose_secret();
    let sk = keys.secret.token.expose_secret();
    assert!(pk.starts_with("acme_pk_") && sk.starts_with("acme_sk_"));

    let (status, body) = send(&app, "GET", "/products", Some(pk), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["sku"], "TEA-1");

    let login = json!({"email": "alice@example.com", "password": "wonderland"});
    let (status, body) = send(&app, "POST", "/login", Some(pk), Some(login.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ut = body["token"].as_str().unwrap().to_owned();
    assert!(ut.starts_with("acme_ut_"));
    let token_id = body["token_id"].as_str().unwrap().to_owned();

    let (status, body) = send(&app, "GET", "/me", Some(&ut), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], "alice");
    assert_eq!(body["token_id"], token_id.as_str());
    // Issued through the shop's client, with its origins.
    let found = jeton_auth::TokenStore::find_credential(
        &example.store,
        jeton_auth::TokenKind::User,
        &example.gate.identity().tokens().parse(&ut).unwrap().hash(),
    )
    .await
    .unwrap()
    .unwrap();
    let jeton_auth::Principal::User(user) = found.principal else {
        panic!("a user")
    };
    assert_eq!(user.client_origins, [database::SHOP_ORIGIN]);
    assert_eq!(
        send(&app, "GET", "/products", Some(&ut), None).await.0,
        StatusCode::OK
    );
    // The use is written in a batch, not by the request.
    example.gate.flush_usage().await;
    assert!(example.store.last_used(&token_id).await.unwrap().is_some());

    let (status, body) = send(&app, "GET", "/admin/stats", Some(sk), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The wrong kind on each route: 403, and the detail names the kind.
    for (path, token, takes) in [
        ("/me", pk, "a user token"),
        ("/me", sk, "a user token"),
        ("/admin/stats", pk, "a secret key"),
        ("/admin/stats", ut.as_str(), "a secret key"),
    ] {
        let (status, body) = send(&app, "GET", path, Some(token), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(body["code"], "insufficient_scope");
        assert_eq!(body["detail"], format!("this route takes {takes}"));
    }
    let (status, body) = send(&app, "POST", "/login", Some(&ut), Some(login)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["detail"], "this route takes a publishable key");

    // Logged out: the token stops working on the next request.
    assert_eq!(example.store.revoke_user_tokens("alice").await.unwrap(), 1);
    let (status, body) = send(&app, "GET", "/me", Some(&ut), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "invalid_token");
}

/// Two servers of the example on one database: the second finds the
/// first's client, and a key it revokes stops working on the first within
/// a second.
async fn two_servers_share_their_revocations(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let first = Example::new(&database.url).await.unwrap();
    let second = Example::new(&database.url).await.unwrap();
    // The second start found the first's client instead of adding another
    // with new keys.
    assert_eq!(second.client_id, first.client_id);
    assert!(second.keys.is_none());
    let clients = second.store.list_clients(None, 10).await.unwrap();
    assert_eq!(
        clients.iter().map(|client| &client.id).collect::<Vec<_>>(),
        [&first.client_id]
    );
    let app = served(&first);
    let first_keys = first.keys.as_ref().expect("the first start made the keys");
    let pk = first_keys.publishable.token.expose_secret();
    assert_eq!(
        send(&app, "GET", "/products", Some(pk), None).await.0,
        StatusCode::OK
    );
    assert!(
        second
            .store
            .revoke(&first_keys.publishable.id)
            .await
            .unwrap()
    );
    let revoked_at = Instant::now();
    while send(&app, "GET", "/products", Some(pk), None).await.0 == StatusCode::OK {
        assert!(revoked_at.elapsed() < Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        send(&app, "GET", "/products", Some(pk), None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn each_kind_reaches_its_own_routes_only_on_sqlite() {
    each_kind_reaches_its_own_routes_only(Backend::Sqlite).await;
}

#[tokio::test]
async fn each_kind_reaches_its_own_routes_only_on_postgres() {
    each_kind_reaches_its_own_routes_only(Backend::Postgres).await;
}

#[tokio::test]
async fn two_servers_share_their_revocations_on_sqlite() {
    two_servers_share_their_revocations(Backend::Sqlite).await;
}

#[tokio::test]
async fn two_servers_share_their_revocations_on_postgres() {
    two_servers_share_their_revocations(Backend::Postgres).await;
}

/// Run without a URL, it keeps everything in memory.
#[tokio::test]
async fn the_default_database_is_in_memory() {
    let example = Example::new(database::DEFAULT_URL).await.unwrap();
    let pk = example
        .keys
        .as_ref()
        .unwrap()
        .publishable
        .token
        .expose_secret();
    let (status, body) = send(&served(&example), "GET", "/products", Some(pk), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
