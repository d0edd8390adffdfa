//! The minimal example, driven end to end: fails if the example breaks.

#[path = "../examples/minimal.rs"]
#[allow(dead_code)] // its `main` and constants are for running it
mod minimal;
#[path = "support/requests.rs"]
mod requests;

use axum::{Router, http::StatusCode};
use serde_json::json;

use minimal::Example;
use requests::send;

/// The example's router, as served.
fn served(example: &Example) -> Router {
    requests::served(example.app())
}

#[tokio::test]
async fn each_kind_reaches_its_own_routes_only() {
    let example = Example::new();
    let app = served(&example);
    let pk = example.publishable_key.token.expose_secret();
    let sk = example.secret_key.token.expose_secret();
    assert!(pk.starts_with("acme_pk_") && sk.starts_with("acme_sk_"));

    let (status, body) = send(&app, "GET", "/products", Some(pk), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["sku"], "TEA-1");

    let login = json!({"email": "alice@example.com", "password": "wonderland"});
    let (status, body) = send(&app, "POST", "/login", Some(pk), Some(login.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ut = body["token"].as_str().unwrap().to_owned();
    assert!(ut.starts_with("acme_ut_"));

    let (status, body) = send(&app, "GET", "/me", Some(&ut), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], "alice");
    assert_eq!(
        send(&app, "GET", "/products", Some(&ut), None).await.0,
        StatusCode::OK
    );

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
        assert_eq!(body["type"], "urn:acme:problem:insufficient_scope");
    }
    let (status, body) = send(&app, "POST", "/login", Some(&ut), Some(login)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["detail"], "this route takes a publishable key");

    // Logged out: the token stops working on the next request.
    example.store.revoke_user_tokens("alice");
    let (status, body) = send(&app, "GET", "/me", Some(&ut), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "invalid_token");
}

#[tokio::test]
async fn forged_tokens_from_one_address_are_cut_off_without_app_middleware() {
    let example = Example::new();
    let app = served(&example);
    let forged = "acme_ut_000000000000000000000000000000000000";
    let mut statuses = Vec::new();
    for _ in 0..600 {
        statuses.push(send(&app, "GET", "/me", Some(forged), None).await.0);
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS));
}

#[tokio::test]
async fn served_without_the_peer_address_it_refuses_rather_than_run_unlimited() {
    let example = Example::new();
    let pk = example.publishable_key.token.expose_secret();
    let (status, body) = send(&example.app(), "GET", "/products", Some(pk), None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["code"], "internal_error");
}
