//! Customers and their user tokens: registration, login, logout, the
//! profile, personal tokens, revoking a customer's tokens, and the login
//! and registration throttles (account enumeration, a login flood beside
//! token-authenticated reads).

use jeton::identity::TOKENS;
use std::sync::Arc;

use jeton::{
    config::Config,
    domain::{abilities, client::ClientKind},
    store::{Db, DbOptions, audit::Audit, user_tokens::NewUserToken},
    throttle::ThrottleSettings,
};
use jeton_auth::TokenKind;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::{
    on_both_databases,
    support::{
        PASSWORD, Res, TestApp, UNKNOWN_ID, USER_ABILITIES, assert_about, assert_fields, last4, s,
        timestamp,
    },
};

const WRONG: &str = "wrong horse battery";

// ---------------------------------------------------------------- helpers

/// A token of the customer that never expires, made in the store (a login
/// always gives one that does).
async fn token_without_expiry(app: &TestApp, customer_id: &str) -> String {
    let token = TOKENS.generate(TokenKind::User);
    app.db
        .insert_user_token(
            &token,
            NewUserToken {
                customer_id: &customer_id.parse().expect("a customer id"),
                client_id: None,
                name: "lasting",
                abilities: &abilities::user_ceiling(),
                expires_at: None,
            },
            &Audit::cli(),
        )
        .await
        .unwrap();
    token.expose_secret().to_owned()
}

/// The caller's token list.
async fn my_tokens(app: &TestApp, token: &str) -> Vec<Value> {
    let res = app.get_as("/api/v1/me/tokens", token).await;
    res.expect(200);
    res.json()["data"].as_array().unwrap().clone()
}

/// `POST /me/tokens` with `token`.
async fn new_token(app: &TestApp, token: &str, body: Value) -> Res {
    app.post_json_as("/api/v1/me/tokens", token, body).await
}

/// A personal token made with `token`; returns the plaintext.
async fn personal_token(app: &TestApp, token: &str, abilities: &[&str]) -> String {
    let res = new_token(
        app,
        token,
        json!({"name": "personal", "abilities": abilities}),
    )
    .await;
    res.expect(201);
    s(&res.json()["token"])
}

on_both_databases!(
    // POST /customers
    register_returns_the_customer_without_secrets,
    register_refuses_a_taken_email_in_any_case,
    register_validates_every_field,
    register_refuses_user_tokens,
    // POST /auth/login
    login_issues_a_thirty_day_user_token,
    login_failures_look_the_same_for_unknown_email_and_wrong_password,
    login_records_the_client_and_works_with_a_secret_key,
    // POST /auth/logout
    logout_revokes_only_the_token_used,
    // GET /me
    me_returns_the_profile_and_needs_profile_read,
    me_from_memory_is_each_customers_own_and_the_stores,
    // /me/tokens
    token_list_shows_metadata_but_never_the_token,
    token_create_issues_a_subset_token,
    token_create_refuses_more_abilities_and_bad_lifetimes,
    token_revoke_one_is_scoped_to_the_caller,
    token_revoke_all_kills_every_token_of_the_caller,
    personal_tokens_live_no_longer_than_the_token_that_made_them,
    revoking_a_token_revokes_the_tokens_it_made,
    token_list_is_paginated,
    // one identity per visible email
    register_stores_one_identity_per_visible_email,
    stored_emails_migrate_and_a_collision_stops_the_start,
    // admin: products
    // admin: clients
    // admin: customers
    admin_revoke_customer_tokens,
);

on_both_databases!(
    config = Config { personal_token_cap: 3, ..Config::default() };
    personal_tokens_are_capped_per_customer,
);

// ---------------------------------------------------------------- POST /customers

async fn register_returns_the_customer_without_secrets(app: TestApp) {
    let pk = app.publishable_key().await;
    let res = app
        .post_json_as(
            "/api/v1/customers",
            &pk,
            json!({"email": "Ann@Example.com", "password": PASSWORD, "name": "Ann"}),
        )
        .await;
    res.expect(201);
    let body = res.json();
    assert_fields(&body, &["id", "email", "name", "created_at"]);
    assert_eq!(body["email"], "ann@example.com");
    assert_eq!(body["name"], "Ann");
    assert_about(timestamp(&body["created_at"]), OffsetDateTime::now_utc());
    let text = res.text();
    assert!(!text.contains("argon2"), "a hash leaked: {text}");
    assert!(!text.contains(PASSWORD), "the password leaked: {text}");
    assert!(!text.contains("password"), "{text}");

    // A secret key with customers:create may register too.
    let (_, sk) = app
        .client(ClientKind::Secret, &["customers:create"], &[])
        .await;
    app.register(&sk, "bob@example.com", PASSWORD).await;

    // Both password bounds are accepted: 8 and 256 characters.
    app.register(&pk, "eight@example.com", "12345678").await;
    app.register(&pk, "long@example.com", &"p".repeat(256))
        .await;
}

async fn register_refuses_a_taken_email_in_any_case(app: TestApp) {
    let pk = app.publishable_key().await;
    app.register(&pk, "ann@example.com", PASSWORD).await;
    for email in ["ann@example.com", "ANN@Example.COM"] {
        app.post_json_as(
            "/api/v1/customers",
            &pk,
            json!({"email": email, "password": "another password", "name": "Ann 2"}),
        )
        .await
        .expect_problem(409, "email_taken");
    }
    // The original account is untouched: its password still works.
    app.login(&pk, "ann@example.com", PASSWORD).await;
}

async fn register_validates_every_field(app: TestApp) {
    let pk = app.publishable_key().await;
    let good = json!({"email": "ann@example.com", "password": PASSWORD, "name": "Ann"});
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    let cases = [
        (with("email", json!("not-an-email")), "email"),
        (with("email", json!("ann@localhost")), "email"),
        (with("password", json!("1234567")), "password"),
        (with("password", json!("p".repeat(257))), "password"),
        (with("name", json!("")), "name"),
    ];
    for (body, field) in cases {
        let res = app.post_json_as("/api/v1/customers", &pk, body).await;
        res.expect_invalid(field);
        assert!(!res.text().contains(PASSWORD));
    }
    // A field the endpoint does not know.
    let res = app
        .post_json_as(
            "/api/v1/customers",
            &pk,
            with("customer_id", json!(UNKNOWN_ID)),
        )
        .await;
    res.expect_problem(422, "validation_failed");
    assert!(res.text().contains("customer_id"), "{}", res.text());
    // A missing field.
    app.post_json_as(
        "/api/v1/customers",
        &pk,
        json!({"email": "ann@example.com", "password": PASSWORD}),
    )
    .await
    .expect_problem(422, "validation_failed");
    // None of them created the account.
    app.register(&pk, "ann@example.com", PASSWORD).await;
}

async fn register_refuses_user_tokens(app: TestApp) {
    let (_, token) = app.customer("ann@example.com").await;
    let res = app
        .post_json_as(
            "/api/v1/customers",
            &token,
            json!({"email": "bob@example.com", "password": PASSWORD, "name": "Bob"}),
        )
        .await;
    res.expect_problem(403, "insufficient_scope");
    // Nor does a publishable key without customers:create.
    let (_, reader) = app
        .client(
            ClientKind::Publishable,
            &["products:read"],
            &["http://localhost:8080"],
        )
        .await;
    app.post_json_as(
        "/api/v1/customers",
        &reader,
        json!({"email": "bob@example.com", "password": PASSWORD, "name": "Bob"}),
    )
    .await
    .expect_problem(403, "insufficient_scope");
}

// ---------------------------------------------------------------- POST /auth/login

async fn login_issues_a_thirty_day_user_token(app: TestApp) {
    let pk = app.publishable_key().await;
    app.register(&pk, "ann@example.com", PASSWORD).await;
    let res = app
        .post_json_as(
            "/api/v1/auth/login",
            &pk,
            json!({"email": "ANN@example.com", "password": PASSWORD, "device_name": "phone"}),
        )
        .await;
    res.expect(201);
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    let body = res.json();
    assert_fields(
        &body,
        &["token", "token_type", "token_id", "abilities", "expires_at"],
    );
    let token = s(&body["token"]);
    assert!(token.starts_with("jt_ut_"), "{token}");
    assert_eq!(token.len(), 42);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["abilities"], json!(USER_ABILITIES));
    assert_about(
        timestamp(&body["expires_at"]),
        OffsetDateTime::now_utc() + Duration::days(30),
    );

    // The email is matched as registration stored it: trimmed, lower case.
    app.login(&pk, "  Ann@Example.COM ", PASSWORD).await;

    // The token works, and is listed under its device name and id.
    let me = app.get_as("/api/v1/me", &token).await;
    me.expect(200);
    assert_eq!(me.json()["email"], "ann@example.com");
    let tokens = my_tokens(&app, &token).await;
    assert_eq!(tokens.len(), 2);
    let listed = tokens
        .iter()
        .find(|t| t["id"] == body["token_id"])
        .expect("the token is listed");
    assert_eq!(listed["name"], "phone");
}

async fn login_failures_look_the_same_for_unknown_email_and_wrong_password(app: TestApp) {
    let pk = app.publishable_key().await;
    app.register(&pk, "ann@example.com", PASSWORD).await;
    let attempt = |email: &'static str, password: &'static str| {
        app.post("/api/v1/auth/login")
            .bearer(&pk)
            .json(json!({"email": email, "password": password, "device_name": "x"}))
            .send()
    };
    let wrong_password = attempt("ann@example.com", "wrong horse battery").await;
    let unknown_email = attempt("nobody@example.com", "wrong horse battery").await;
    wrong_password.expect_problem(400, "invalid_credentials");
    unknown_email.expect_problem(400, "invalid_credentials");
    assert_eq!(wrong_password.text(), unknown_email.text());
    assert!(!wrong_password.text().contains("ann@example.com"));
    // Too short to be anyone's password: still just a failed login.
    attempt("ann@example.com", "short")
        .await
        .expect_problem(400, "invalid_credentials");
    // A malformed body is not a failed login.
    app.post_json_as(
        "/api/v1/auth/login",
        &pk,
        json!({"email": "ann@example.com", "password": PASSWORD, "remember": true}),
    )
    .await
    .expect_problem(422, "validation_failed");
    // Login needs a client key with auth:login: not a user token.
    let token = app.login_token(&pk, "ann@example.com").await;
    app.post_json_as(
        "/api/v1/auth/login",
        &token,
        json!({"email": "ann@example.com", "password": PASSWORD}),
    )
    .await
    .expect_problem(403, "insufficient_scope");
}

async fn login_records_the_client_and_works_with_a_secret_key(app: TestApp) {
    let (pk_client, pk) = app.publishable_client().await;
    app.register(&pk, "ann@example.com", PASSWORD).await;
    let (sk_client, sk) = app.client(ClientKind::Secret, &["auth:login"], &[]).await;

    let via_pk = app.login(&pk, "ann@example.com", PASSWORD).await;
    let via_sk = app.login(&sk, "ann@example.com", PASSWORD).await;
    assert_eq!(via_sk["abilities"], json!(USER_ABILITIES));

    let tokens = my_tokens(&app, &s(&via_pk["token"])).await;
    assert_eq!(tokens.len(), 2);
    let client_of = |token_id: &Value| {
        tokens
            .iter()
            .find(|t| &t["id"] == token_id)
            .unwrap_or_else(|| panic!("{token_id} not listed"))["client_id"]
            .clone()
    };
    assert_eq!(client_of(&via_pk["token_id"]), json!(pk_client));
    assert_eq!(client_of(&via_sk["token_id"]), json!(sk_client));

    // A secret key without auth:login cannot.
    let (_, reader) = app
        .client(ClientKind::Secret, &["products:read"], &[])
        .await;
    app.post_json_as(
        "/api/v1/auth/login",
        &reader,
        json!({"email": "ann@example.com", "password": PASSWORD}),
    )
    .await
    .expect_problem(403, "insufficient_scope");
}

// ---------------------------------------------------------------- POST /auth/logout

async fn logout_revokes_only_the_token_used(app: TestApp) {
    let pk = app.publishable_key().await;
    app.register(&pk, "ann@example.com", PASSWORD).await;
    let first = app.login_token(&pk, "ann@example.com").await;
    let second = app.login_token(&pk, "ann@example.com").await;
    // Even a token with no useful ability may log itself out.
    let narrow = personal_token(&app, &second, &["orders:read"]).await;

    let res = app.post_as("/api/v1/auth/logout", &first).await;
    res.expect(204);
    assert!(res.body.is_empty());
    app.assert_dead(&first).await;
    app.assert_works(&second).await;
    app.post_as("/api/v1/auth/logout", &first)
        .await
        .expect_problem(401, "invalid_token");

    app.post_as("/api/v1/auth/logout", &narrow)
        .await
        .expect(204);
    app.assert_dead(&narrow).await;
    app.assert_works(&second).await;

    // Logout is for user tokens only.
    app.post_as("/api/v1/auth/logout", &pk)
        .await
        .expect_problem(403, "insufficient_scope");
    // And needs one.
    app.post("/api/v1/auth/logout")
        .send()
        .await
        .expect_problem(401, "unauthenticated");
}

// ---------------------------------------------------------------- GET /me

async fn me_returns_the_profile_and_needs_profile_read(app: TestApp) {
    let pk = app.publishable_key().await;
    let registered = app
        .post_json_as(
            "/api/v1/customers",
            &pk,
            json!({"email": "ann@example.com", "password": PASSWORD, "name": "Ann"}),
        )
        .await;
    registered.expect(201);
    let token = app.login_token(&pk, "ann@example.com").await;
    let res = app.get_as("/api/v1/me", &token).await;
    res.expect(200);
    assert_eq!(res.json(), registered.json());
    assert!(!res.text().contains("argon2"));

    let orders_only = personal_token(&app, &token, &["orders:read"]).await;
    let res = app.get_as("/api/v1/me", &orders_only).await;
    res.expect_problem(403, "insufficient_scope");
    assert!(
        res.header("www-authenticate")
            .is_some_and(|h| h.contains("profile:read")),
        "{:?}",
        res.header("www-authenticate")
    );
    // The narrow token is alive, just not allowed here.
    app.get_as("/api/v1/me/orders", &orders_only)
        .await
        .expect(200);

    // Client keys have no profile.
    app.get_as("/api/v1/me", &pk)
        .await
        .expect_problem(403, "insufficient_scope");
}

/// `GET /me` is kept in memory after the first read: the same bytes as
/// the store's customer, each customer their own, and orders placed in
/// between change nothing of it.
async fn me_from_memory_is_each_customers_own_and_the_stores(app: TestApp) {
    let product = app.product("ITEM-1", 100, "EUR", 10).await;
    let (ann_id, ann) = app.customer("ann@example.com").await;
    let (bob_id, bob) = app.customer("bob@example.com").await;
    for _ in 0..2 {
        for (id, token) in [(&ann_id, &ann), (&bob_id, &bob)] {
            let stored = app
                .db
                .get_customer(&id.parse().expect("a customer id"))
                .await
                .unwrap()
                .expect("the customer");
            let res = app.get("/api/v1/me").bearer(token).send().await;
            res.expect(200);
            assert_eq!(
                res.text(),
                serde_json::to_string(&jeton::responses::Customer::from(stored)).unwrap()
            );
        }
        app.post("/api/v1/orders")
            .bearer(&ann)
            .json(json!({"items": [{"product_id": product.id, "quantity": 1}]}))
            .send()
            .await
            .expect(201);
    }
}

// ---------------------------------------------------------------- /me/tokens

async fn token_list_shows_metadata_but_never_the_token(app: TestApp) {
    let (client_id, pk) = app.publishable_client().await;
    app.register(&pk, "ann@example.com", PASSWORD).await;
    let first = app.login(&pk, "ann@example.com", PASSWORD).await;
    let second = app.login(&pk, "ann@example.com", PASSWORD).await;
    let first_token = s(&first["token"]);
    let second_token = s(&second["token"]);
    // Someone else's token is not listed.
    let (_, other) = app.customer("bob@example.com").await;

    let res = app.get_as("/api/v1/me/tokens", &first_token).await;
    res.expect(200);
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    let text = res.text();
    for token in [&first_token, &second_token, &other] {
        assert!(!text.contains(token.as_str()), "a token leaked: {text}");
    }
    let body = res.json();
    assert_fields(&body, &["data", "next_cursor"]);
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{body}");
    for item in data {
        assert_fields(
            item,
            &[
                "id",
                "name",
                "abilities",
                "last4",
                "client_id",
                "created_at",
                "last_used_at",
                "expires_at",
                "current",
            ],
        );
        assert_eq!(item["abilities"], json!(USER_ABILITIES));
        assert_eq!(item["client_id"], json!(client_id));
        assert_about(timestamp(&item["created_at"]), OffsetDateTime::now_utc());
        assert_about(
            timestamp(&item["expires_at"]),
            OffsetDateTime::now_utc() + Duration::days(30),
        );
        assert!(item["last_used_at"].is_null() || item["last_used_at"].is_string());
        let (login, token) = if item["id"] == first["token_id"] {
            (&first, &first_token)
        } else {
            (&second, &second_token)
        };
        assert_eq!(item["id"], login["token_id"]);
        assert_eq!(item["last4"], last4(token));
        assert_eq!(item["current"], json!(item["id"] == first["token_id"]));
    }
    assert_eq!(
        data.iter().filter(|t| t["current"] == true).count(),
        1,
        "{body}"
    );

    // Seen from the second token, `current` moves.
    let seen = my_tokens(&app, &second_token).await;
    let current: Vec<&Value> = seen.iter().filter(|t| t["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], second["token_id"]);

    // A token without tokens:manage may not look.
    let narrow = personal_token(&app, &first_token, &["orders:read"]).await;
    app.get_as("/api/v1/me/tokens", &narrow)
        .await
        .expect_problem(403, "insufficient_scope");
}

async fn token_create_issues_a_subset_token(app: TestApp) {
    let (client_id, pk) = app.publishable_client().await;
    app.register(&pk, "ann@example.com", PASSWORD).await;
    let token = app.login_token(&pk, "ann@example.com").await;

    let res = new_token(
        &app,
        &token,
        json!({"name": "orders script", "abilities": ["orders:read"], "expires_in_seconds": 3600}),
    )
    .await;
    res.expect(201);
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    let body = res.json();
    assert_fields(
        &body,
        &["token", "token_type", "token_id", "abilities", "expires_at"],
    );
    let script = s(&body["token"]);
    assert!(script.starts_with("jt_ut_") && script.len() == 42);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["abilities"], json!(["orders:read"]));
    assert_about(
        timestamp(&body["expires_at"]),
        OffsetDateTime::now_utc() + Duration::hours(1),
    );
    // It can do what it holds and nothing more.
    app.get_as("/api/v1/me/orders", &script).await.expect(200);
    app.get_as("/api/v1/products", &script)
        .await
        .expect_problem(403, "insufficient_scope");
    // It is listed, under its name, issued through the caller's client.
    let listed = my_tokens(&app, &token).await;
    let item = listed
        .iter()
        .find(|t| t["id"] == body["token_id"])
        .expect("listed");
    assert_eq!(item["name"], "orders script");
    assert_eq!(item["client_id"], json!(client_id));
    assert_eq!(item["current"], false);

    // `null` lifetime: the token does not expire, which only a token that
    // does not expire may ask for.
    let forever_body =
        json!({"name": "forever", "abilities": ["products:read"], "expires_in_seconds": null});
    new_token(&app, &token, forever_body.clone())
        .await
        .expect_invalid("expires_in_seconds");
    let customer_id = s(&app.get("/api/v1/me").bearer(&token).send().await.json()["id"]);
    let lasting = token_without_expiry(&app, &customer_id).await;
    let res = new_token(&app, &lasting, forever_body).await;
    res.expect(201);
    let forever = res.json();
    assert!(forever["expires_at"].is_null(), "{forever}");
    app.assert_works(&s(&forever["token"])).await;
    let listed = my_tokens(&app, &lasting).await;
    let item = listed
        .iter()
        .find(|t| t["id"] == forever["token_id"])
        .expect("listed");
    assert!(item["expires_at"].is_null());

    // Left out: the server's default lifetime and all the caller's abilities.
    let res = new_token(&app, &token, json!({"name": "default"})).await;
    res.expect(201);
    let default = res.json();
    assert_eq!(default["abilities"], json!(USER_ABILITIES));
    assert_about(
        timestamp(&default["expires_at"]),
        OffsetDateTime::now_utc() + Duration::days(30),
    );

    // A narrower token may make an equal or narrower one.
    let manager = personal_token(&app, &token, &["orders:read", "tokens:manage"]).await;
    let res = new_token(
        &app,
        &manager,
        json!({"name": "same", "abilities": ["orders:read", "tokens:manage"]}),
    )
    .await;
    res.expect(201);
}

async fn token_create_refuses_more_abilities_and_bad_lifetimes(app: TestApp) {
    let pk = app.publishable_key().await;
    app.register(&pk, "ann@example.com", PASSWORD).await;
    let token = app.login_token(&pk, "ann@example.com").await;
    // A token limited to orders:read may not make tokens at all…
    let reader = personal_token(&app, &token, &["orders:read"]).await;
    new_token(
        &app,
        &reader,
        json!({"name": "more", "abilities": ["orders:write"]}),
    )
    .await
    .expect_problem(403, "insufficient_scope");
    // …and one that may make tokens may not make a stronger one.
    let manager = personal_token(&app, &token, &["orders:read", "tokens:manage"]).await;

    // Not a subset of the caller's abilities.
    for abilities in [json!(["orders:write"]), json!(["orders:*"]), json!(["*"])] {
        let res = new_token(
            &app,
            &manager,
            json!({"name": "more", "abilities": abilities}),
        )
        .await;
        res.expect_invalid("abilities");
    }
    // Unknown, malformed, or beyond what any user token may hold.
    for abilities in [
        json!(["wishlist:read"]),
        json!(["not an ability"]),
        json!(["admin"]),
        json!(["customers:create"]),
        json!([]),
    ] {
        let res = new_token(&app, &token, json!({"name": "bad", "abilities": abilities})).await;
        res.expect_invalid("abilities");
    }
    // Lifetimes must be positive (or null).
    for seconds in [0, -1, -3600] {
        let res = new_token(
            &app,
            &token,
            json!({"name": "bad", "abilities": ["orders:read"], "expires_in_seconds": seconds}),
        )
        .await;
        res.expect_invalid("expires_in_seconds");
    }
    // Other fields.
    new_token(
        &app,
        &token,
        json!({"name": "", "abilities": ["orders:read"]}),
    )
    .await
    .expect_invalid("name");
    new_token(
        &app,
        &token,
        json!({"name": "x", "abilities": ["orders:read"], "customer_id": UNKNOWN_ID}),
    )
    .await
    .expect_problem(422, "validation_failed");
    // None of the refused requests made a token: the login token, the
    // reader and the manager are all there is.
    assert_eq!(my_tokens(&app, &token).await.len(), 3);
}

async fn token_revoke_one_is_scoped_to_the_caller(app: TestApp) {
    let pk = app.publishable_key().await;
    app.register(&pk, "ann@example.com", PASSWORD).await;
    app.register(&pk, "bob@example.com", PASSWORD).await;
    let ann = app.login_token(&pk, "ann@example.com").await;
    let ann_phone = app.login(&pk, "ann@example.com", PASSWORD).await;
    let bob = app.login(&pk, "bob@example.com", PASSWORD).await;

    // Bob's token is "not found" for Ann, and keeps working.
    app.delete_as(&format!("/api/v1/me/tokens/{}", s(&bob["token_id"])), &ann)
        .await
        .expect_problem(404, "not_found");
    app.assert_works(&s(&bob["token"])).await;
    for id in [UNKNOWN_ID, "not-an-id"] {
        app.delete_as(&format!("/api/v1/me/tokens/{id}"), &ann)
            .await
            .expect_problem(404, "not_found");
    }

    // Her own: gone at once, and from the list.
    let phone_id = s(&ann_phone["token_id"]);
    let res = app
        .delete_as(&format!("/api/v1/me/tokens/{phone_id}"), &ann)
        .await;
    res.expect(204);
    assert!(res.body.is_empty());
    app.assert_dead(&s(&ann_phone["token"])).await;
    app.assert_works(&ann).await;
    let listed = my_tokens(&app, &ann).await;
    assert!(listed.iter().all(|t| t["id"] != phone_id.as_str()));
    // Twice: there is no such live token any more.
    app.delete_as(&format!("/api/v1/me/tokens/{phone_id}"), &ann)
        .await
        .expect_problem(404, "not_found");
}

async fn token_revoke_all_kills_every_token_of_the_caller(app: TestApp) {
    let pk = app.publishable_key().await;
    app.register(&pk, "ann@example.com", PASSWORD).await;
    app.register(&pk, "bob@example.com", PASSWORD).await;
    let ann = app.login_token(&pk, "ann@example.com").await;
    let ann_phone = app.login_token(&pk, "ann@example.com").await;
    let ann_script = personal_token(&app, &ann, &["products:read"]).await;
    let bob = app.login_token(&pk, "bob@example.com").await;

    let res = app.delete_as("/api/v1/me/tokens", &ann).await;
    res.expect(204);
    for token in [&ann, &ann_phone, &ann_script] {
        app.assert_dead(token).await;
    }
    app.assert_works(&bob).await;
    assert_eq!(my_tokens(&app, &bob).await.len(), 1);
    // Ann can log in again.
    let again = app.login_token(&pk, "ann@example.com").await;
    assert_eq!(my_tokens(&app, &again).await.len(), 1);
}

// ---------------------------------------------------------------- admin: products

// ---------------------------------------------------------------- admin: customers

async fn admin_revoke_customer_tokens(app: TestApp) {
    let admin = app.admin_key().await;
    let pk = app.publishable_key().await;
    let ann_id = app.register(&pk, "ann@example.com", PASSWORD).await;
    app.register(&pk, "bob@example.com", PASSWORD).await;
    let ann = app.login_token(&pk, "ann@example.com").await;
    let ann_phone = app.login_token(&pk, "ann@example.com").await;
    let ann_script = personal_token(&app, &ann, &["products:read"]).await;
    let bob = app.login_token(&pk, "bob@example.com").await;

    let res = app
        .post_as(
            &format!("/api/v1/admin/customers/{ann_id}/revoke-tokens"),
            &admin,
        )
        .await;
    res.expect(204);
    assert!(res.body.is_empty());
    for token in [&ann, &ann_phone, &ann_script] {
        app.assert_dead(token).await;
    }
    app.assert_works(&bob).await;
    // The account itself is fine: Ann can log in again.
    let again = app.login_token(&pk, "ann@example.com").await;
    app.assert_works(&again).await;
    // Doing it again is fine too (the customer exists).
    app.post_as(
        &format!("/api/v1/admin/customers/{ann_id}/revoke-tokens"),
        &admin,
    )
    .await
    .expect(204);
    app.assert_dead(&again).await;

    for id in [UNKNOWN_ID, "not-an-id"] {
        app.post_as(
            &format!("/api/v1/admin/customers/{id}/revoke-tokens"),
            &admin,
        )
        .await
        .expect_problem(404, "not_found");
    }
    // Not for anyone but an admin.
    app.post_as(
        &format!("/api/v1/admin/customers/{ann_id}/revoke-tokens"),
        &bob,
    )
    .await
    .expect_problem(403, "insufficient_scope");
    app.assert_works(&bob).await;
}

// ---------------------------------------------------------------- configs

/// `127.0.0.1` (the test router's peer) is a trusted proxy, so
/// `X-Forwarded-For` names the client; 12 failures per IP.
fn behind_a_proxy() -> Config {
    Config {
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        throttle: ThrottleSettings {
            failures_per_ip: 12,
            ..ThrottleSettings::default()
        },
        ..Config::default()
    }
}

// ---------------------------------------------------------------- helpers

async fn login_as(app: &TestApp, key: &str, email: &str, password: &str) -> Res {
    login_from(app, key, email, password, None).await
}

/// A login, optionally from `ip` (through the trusted proxy).
async fn login_from(
    app: &TestApp,
    key: &str,
    email: &str,
    password: &str,
    ip: Option<&str>,
) -> Res {
    let mut req = app
        .post("/api/v1/auth/login")
        .bearer(key)
        .json(json!({"email": email, "password": password, "device_name": "test"}));
    if let Some(ip) = ip {
        req = req.header("x-forwarded-for", ip);
    }
    req.send().await
}

async fn register_from(app: &TestApp, key: &str, email: &str, ip: &str) -> Res {
    app.post("/api/v1/customers")
        .bearer(key)
        .header("x-forwarded-for", ip)
        .json(json!({"email": email, "password": PASSWORD, "name": "Test Customer"}))
        .send()
        .await
}

/// A 429 `rate_limited` with a `Retry-After` of 1 to `max` seconds and the
/// limit that was reached; returns the `Retry-After`.
#[track_caller]
fn expect_throttled(res: &Res, limit: u32, max: u64) -> u64 {
    res.expect_problem(429, "rate_limited");
    let retry_after: u64 = res
        .header("retry-after")
        .expect("a 429 has Retry-After")
        .parse()
        .expect("Retry-After is in seconds");
    assert!(
        (1..=max).contains(&retry_after),
        "Retry-After {retry_after} is not within 1..={max}"
    );
    assert_eq!(res.header("ratelimit-limit"), Some(limit.to_string()));
    retry_after
}

#[track_caller]
fn expect_wrong_credentials(res: &Res) {
    res.expect_problem(400, "invalid_credentials");
}

/// The body with the one number in it that depends on when the window
/// started (not on the account), replaced.
fn without_retry_after(res: &Res) -> String {
    let mut body: Value = res.json();
    body["detail"] = json!(
        body["detail"]
            .as_str()
            .unwrap()
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect::<String>()
    );
    body.to_string()
}

// ================================================================ login throttle

on_both_databases!(
    wrong_passwords_are_throttled_and_the_owner_gets_in_after_the_window,
    a_successful_login_clears_the_failures,
    unknown_email_and_wrong_password_look_the_same,
    throttled_unknown_and_known_emails_look_the_same,
);

on_both_databases!(
    config = behind_a_proxy();
    failures_from_one_ip_are_throttled_across_emails,
    registrations_are_limited_per_ip,
    registrations_from_one_ipv6_64_count_as_one_address,
    ten_failures_from_one_ip_do_not_lock_the_owner_out_elsewhere,
    failures_for_one_email_from_many_ips_back_off_then_stop,
    strangers_cannot_lock_the_owner_out_from_their_own_ip,
);

on_both_databases!(a_customers_requests_are_limited_with_ratelimit_headers);

async fn wrong_passwords_are_throttled_and_the_owner_gets_in_after_the_window(app: TestApp) {
    let window = ThrottleSettings::default().window;
    let pk = app.publishable_key().await;
    app.register(&pk, "owner@example.com", PASSWORD).await;

    let mut statuses = Vec::new();
    for attempt in 1..=25 {
        let res = login_as(&app, &pk, "owner@example.com", WRONG).await;
        if attempt <= 10 {
            expect_wrong_credentials(&res);
        } else {
            assert_eq!(
                expect_throttled(&res, 10, window.as_secs()),
                window.as_secs()
            );
            assert_eq!(
                res.header("www-authenticate"),
                None,
                "the key is fine; no challenge"
            );
        }
        statuses.push(res.status.as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 15);
    // While throttled, even the right password is refused (it is not even
    // checked: no Argon2 work is spent on a throttled email).
    let res = login_as(&app, &pk, "owner@example.com", PASSWORD).await;
    expect_throttled(&res, 10, window.as_secs());
    // Another account is not affected.
    app.register(&pk, "neighbour@example.com", PASSWORD).await;
    login_as(&app, &pk, "neighbour@example.com", PASSWORD)
        .await
        .expect(201);

    // A second before the window ends, still refused; then the owner gets
    // in: lockout is bounded by one window.
    app.advance(window - std::time::Duration::from_secs(1));
    let res = login_as(&app, &pk, "owner@example.com", PASSWORD).await;
    assert_eq!(expect_throttled(&res, 10, window.as_secs()), 1);
    app.advance(std::time::Duration::from_secs(1));
    let res = login_as(&app, &pk, "owner@example.com", PASSWORD).await;
    res.expect(201);
    assert!(res.json()["token"].as_str().unwrap().starts_with("jt_ut_"));
}

async fn a_successful_login_clears_the_failures(app: TestApp) {
    let pk = app.publishable_key().await;
    app.register(&pk, "clears@example.com", PASSWORD).await;
    for _ in 0..9 {
        expect_wrong_credentials(&login_as(&app, &pk, "clears@example.com", WRONG).await);
    }
    login_as(&app, &pk, "clears@example.com", PASSWORD)
        .await
        .expect(201);
    // The count starts over: ten more failures before a 429, not one.
    for _ in 0..10 {
        expect_wrong_credentials(&login_as(&app, &pk, "clears@example.com", WRONG).await);
    }
    let res = login_as(&app, &pk, "clears@example.com", WRONG).await;
    expect_throttled(&res, 10, 15 * 60);
}

async fn failures_from_one_ip_are_throttled_across_emails(app: TestApp) {
    let pk = app.publishable_key().await;
    app.register(&pk, "victim@example.com", PASSWORD).await;
    let attacker = "203.0.113.5";
    // One failure per email (far below the per-email limit), twelve emails.
    for n in 0..12 {
        let res = login_from(
            &app,
            &pk,
            &format!("guess{n}@example.com"),
            WRONG,
            Some(attacker),
        )
        .await;
        expect_wrong_credentials(&res);
    }
    // The thirteenth from that IP is refused whatever the email, with the
    // per-IP limit reported.
    let res = login_from(&app, &pk, "fresh@example.com", WRONG, Some(attacker)).await;
    expect_throttled(&res, 12, 15 * 60);
    let res = login_from(&app, &pk, "victim@example.com", PASSWORD, Some(attacker)).await;
    expect_throttled(&res, 12, 15 * 60);
    // Another IP is not affected: it fails normally, and the account's
    // owner logs in from it.
    let elsewhere = Some("203.0.113.6");
    let res = login_from(&app, &pk, "fresh@example.com", WRONG, elsewhere).await;
    expect_wrong_credentials(&res);
    let res = login_from(&app, &pk, "victim@example.com", PASSWORD, elsewhere).await;
    res.expect(201);
}

async fn ten_failures_from_one_ip_do_not_lock_the_owner_out_elsewhere(app: TestApp) {
    let pk = app.publishable_key().await;
    app.register(&pk, "victim@example.com", PASSWORD).await;
    let attacker = Some("203.0.113.5");
    for _ in 0..10 {
        let res = login_from(&app, &pk, "victim@example.com", WRONG, attacker).await;
        expect_wrong_credentials(&res);
    }
    // The attacker's address is throttled for this email, even with the
    // right password...
    let res = login_from(&app, &pk, "victim@example.com", PASSWORD, attacker).await;
    expect_throttled(&res, 10, 15 * 60);
    // ...and the owner, from anywhere else, gets in at once.
    let elsewhere = Some("198.51.100.7");
    let res = login_from(&app, &pk, "victim@example.com", PASSWORD, elsewhere).await;
    res.expect(201);
}

async fn failures_for_one_email_from_many_ips_back_off_then_stop(app: TestApp) {
    let pk = app.publishable_key().await;
    app.register(&pk, "target@example.com", PASSWORD).await;
    // Twenty failures from twenty addresses: no address reaches its own
    // limit, but the email reaches the point where backoff starts.
    for n in 0..20 {
        let ip = format!("203.0.113.{n}");
        let res = login_from(&app, &pk, "target@example.com", WRONG, Some(&ip)).await;
        expect_wrong_credentials(&res);
    }
    // The next attempt, from a fresh address, waits a second: a
    // distributed guess is slowed down too.
    let res = login_from(&app, &pk, "target@example.com", WRONG, Some("203.0.113.99")).await;
    let retry_after = expect_throttled(&res, 100, 1);
    assert_eq!(retry_after, 1);
}

/// The per-email limits slow a guess spread over many addresses; they must
/// not let those addresses lock the owner out. A login from an address the
/// account last logged in from is not held back by other addresses'
/// failures.
async fn strangers_cannot_lock_the_owner_out_from_their_own_ip(app: TestApp) {
    let pk = app.publishable_key().await;
    app.register(&pk, "owner@example.com", PASSWORD).await;
    let home = Some("198.51.100.7");
    login_from(&app, &pk, "owner@example.com", PASSWORD, home)
        .await
        .expect(201);
    // Strangers, from twenty-one addresses: the email is backing off.
    for n in 0..21 {
        let ip = format!("203.0.113.{n}");
        let res = login_from(&app, &pk, "owner@example.com", WRONG, Some(&ip)).await;
        if n < 20 {
            expect_wrong_credentials(&res);
        }
    }
    let res = login_from(
        &app,
        &pk,
        "owner@example.com",
        PASSWORD,
        Some("203.0.113.99"),
    )
    .await;
    expect_throttled(&res, 100, 30);
    // The owner, from home, gets in at once; a typo there is only a typo.
    expect_wrong_credentials(&login_from(&app, &pk, "owner@example.com", WRONG, home).await);
    login_from(&app, &pk, "owner@example.com", PASSWORD, home)
        .await
        .expect(201);
    // Home is the owner's, not the email's on any address: a stranger is
    // still held back.
    let res = login_from(
        &app,
        &pk,
        "owner@example.com",
        PASSWORD,
        Some("203.0.113.98"),
    )
    .await;
    expect_throttled(&res, 100, 30);
}

async fn a_customers_requests_are_limited_with_ratelimit_headers(app: TestApp) {
    let limit = Config::default().customer_requests_per_minute;
    let pk = app.publishable_key().await;
    app.register(&pk, "busy@example.com", PASSWORD).await;
    // Two tokens of one customer share one budget.
    let tokens = [
        app.login_token(&pk, "busy@example.com").await,
        app.login_token(&pk, "busy@example.com").await,
    ];
    // A burst of the limit, then 429 (the budget refills evenly, one
    // request every 60/limit seconds, so a few more may pass meanwhile).
    let mut refused = None;
    for n in 0..limit * 2 {
        let res = app
            .get("/api/v1/me")
            .bearer(&tokens[n as usize % 2])
            .send()
            .await;
        if res.status.as_u16() == 429 {
            assert!(n >= limit, "refused after {n} requests");
            refused = Some(res);
            break;
        }
        res.expect(200);
        assert_eq!(res.header("ratelimit-limit"), Some(limit.to_string()));
        let remaining: u32 = res.header("ratelimit-remaining").unwrap().parse().unwrap();
        assert!(remaining < limit);
    }
    let res = refused.expect("a customer's burst is refused");
    expect_throttled(&res, limit, 60);
    // Another customer is not affected.
    app.register(&pk, "calm@example.com", PASSWORD).await;
    let other = app.login_token(&pk, "calm@example.com").await;
    app.get("/api/v1/me")
        .bearer(&other)
        .send()
        .await
        .expect(200);
}

// ================================================================ enumeration

async fn unknown_email_and_wrong_password_look_the_same(app: TestApp) {
    let pk = app.publishable_key().await;
    app.register(&pk, "known@example.com", PASSWORD).await;
    let unknown = login_as(&app, &pk, "nobody@example.com", PASSWORD).await;
    let wrong = login_as(&app, &pk, "known@example.com", WRONG).await;
    expect_wrong_credentials(&unknown);
    expect_wrong_credentials(&wrong);
    assert_eq!(unknown.status, wrong.status);
    assert_eq!(unknown.body, wrong.body, "byte-identical bodies");
    let names = |res: &Res| {
        let mut names: Vec<String> = res
            .headers
            .iter()
            .map(|(name, value)| {
                if name == "x-request-id" {
                    name.to_string()
                } else {
                    format!("{name}: {}", value.to_str().unwrap())
                }
            })
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(&unknown), names(&wrong), "the same headers");
    // A too-short password is not a tell either: login checks only the
    // upper bound, so it fails like any wrong password.
    let short = login_as(&app, &pk, "known@example.com", "short").await;
    assert_eq!(short.body, wrong.body);
}

async fn throttled_unknown_and_known_emails_look_the_same(app: TestApp) {
    let pk = app.publishable_key().await;
    app.register(&pk, "known@example.com", PASSWORD).await;
    // Ten failures each, side by side, so both windows start together.
    for _ in 0..10 {
        let (unknown, known) = tokio::join!(
            login_as(&app, &pk, "nobody@example.com", WRONG),
            login_as(&app, &pk, "known@example.com", WRONG),
        );
        assert_eq!(unknown.body, known.body);
    }
    let (unknown, known) = tokio::join!(
        login_as(&app, &pk, "nobody@example.com", WRONG),
        login_as(&app, &pk, "known@example.com", WRONG),
    );
    let unknown_wait = expect_throttled(&unknown, 10, 15 * 60);
    let known_wait = expect_throttled(&known, 10, 15 * 60);
    // The one difference there can be is the number of seconds left, which
    // follows when each email's first failure happened (a rounding of the
    // same instant can straddle a second), never whether the account exists.
    assert!(unknown_wait.abs_diff(known_wait) <= 1);
    assert_eq!(without_retry_after(&unknown), without_retry_after(&known));
    if unknown_wait == known_wait {
        assert_eq!(unknown.body, known.body, "byte-identical bodies");
    }
}

// ================================================================ registration

async fn registrations_are_limited_per_ip(app: TestApp) {
    let pk = app.publishable_key().await;
    let ip = "198.51.100.7";
    for n in 0..20 {
        register_from(&app, &pk, &format!("new{n}@example.com"), ip)
            .await
            .expect(201);
    }
    let res = register_from(&app, &pk, "new20@example.com", ip).await;
    // 20 per hour: one registration is earned back every three minutes.
    expect_throttled(&res, 20, 180);
    // Nothing was created for the refused one.
    login_as(&app, &pk, "new20@example.com", PASSWORD)
        .await
        .expect_problem(400, "invalid_credentials");
    // Another IP still registers.
    register_from(&app, &pk, "new20@example.com", "198.51.100.8")
        .await
        .expect(201);
}

/// An IPv6 client is counted by its /64 (API.md §16): one host holds a
/// whole /64, so 21 addresses of one /64 are one client, and the 21st
/// registration is refused as from one address; another /64 has its own.
async fn registrations_from_one_ipv6_64_count_as_one_address(app: TestApp) {
    let pk = app.publishable_key().await;
    for n in 0..20 {
        let ip = format!("2001:db8:7:64:{:x}::{:x}", n * 977 + 1, n + 1);
        register_from(&app, &pk, &format!("v6-{n}@example.com"), &ip)
            .await
            .expect(201);
    }
    let res = register_from(&app, &pk, "v6-20@example.com", "2001:db8:7:64:ffff:1:2:3").await;
    expect_throttled(&res, 20, 180);
    login_as(&app, &pk, "v6-20@example.com", PASSWORD)
        .await
        .expect_problem(400, "invalid_credentials");
    // The neighbouring /64 is another client.
    register_from(&app, &pk, "v6-20@example.com", "2001:db8:7:65::1")
        .await
        .expect(201);
    // An IPv4 client stays counted per address.
    register_from(&app, &pk, "v4@example.com", "198.51.100.70")
        .await
        .expect(201);
}

// ================================================================ login flood

on_both_databases!(token_reads_keep_succeeding_under_a_login_flood);

async fn token_reads_keep_succeeding_under_a_login_flood(app: TestApp) {
    let pk = app.publishable_key().await;
    let (_, token) = app.customer("reader@example.com").await;
    app.product("FLOOD-1", 100, "EUR", 5).await;
    let app = Arc::new(app);

    let mut logins = Vec::new();
    for n in 0..60 {
        let (app, pk) = (app.clone(), pk.clone());
        logins.push(tokio::spawn(async move {
            let res = login_as(&app, &pk, &format!("flood{n}@example.com"), WRONG).await;
            (res.status.as_u16(), res.code())
        }));
    }
    let mut reads = Vec::new();
    for _ in 0..40 {
        let (app, token) = (app.clone(), token.clone());
        reads.push(tokio::spawn(async move {
            let res = app.get_as("/api/v1/products", &token).await;
            (res.status.as_u16(), res.text())
        }));
    }
    for read in reads {
        let (status, body) = read.await.unwrap();
        assert_eq!(status, 200, "a token-authenticated read failed: {body}");
        assert!(body.contains("FLOOD-1"));
    }
    for login in logins {
        let (status, code) = login.await.unwrap();
        // A wrong password, or "busy, come back" when the Argon2 queue is
        // full; never a 500.
        assert!(
            matches!(
                (status, code.as_str()),
                (400, "invalid_credentials") | (503, "service_unavailable")
            ),
            "login answered {status} {code}"
        );
    }
}

// ---------------------------------------------------------------- a token's children

async fn personal_tokens_live_no_longer_than_the_token_that_made_them(app: TestApp) {
    let (customer_id, login) = app.customer("ann@example.com").await;
    let login_expires = timestamp(&my_tokens(&app, &login).await[0]["expires_at"]);

    // From a login token (30 days): a null or a longer lifetime is refused,
    // and a left-out one is cut to the login's.
    for lifetime in [
        json!(null),
        json!(10 * 365 * 24 * 3600),
        json!(31 * 24 * 3600),
    ] {
        new_token(
            &app,
            &login,
            json!({"name": "long", "expires_in_seconds": lifetime}),
        )
        .await
        .expect_invalid("expires_in_seconds");
    }
    let res = new_token(&app, &login, json!({"name": "default"})).await;
    res.expect(201);
    assert!(timestamp(&res.json()["expires_at"]) <= login_expires);

    // A short-lived token: its children live no longer than its 60 seconds.
    let res = new_token(
        &app,
        &login,
        json!({"name": "short", "expires_in_seconds": 60}),
    )
    .await;
    res.expect(201);
    let short = s(&res.json()["token"]);
    let short_expires = timestamp(&res.json()["expires_at"]);
    for lifetime in [
        json!(null),
        json!(61),
        json!(3600),
        json!(10 * 365 * 24 * 3600),
    ] {
        let res = new_token(
            &app,
            &short,
            json!({"name": "child", "expires_in_seconds": lifetime}),
        )
        .await;
        res.expect_invalid("expires_in_seconds");
        assert!(
            res.json()["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("must not outlive"),
            "{}",
            res.text()
        );
    }
    for body in [
        json!({"name": "child"}),
        json!({"name": "child", "expires_in_seconds": 30}),
    ] {
        let res = new_token(&app, &short, body).await;
        res.expect(201);
        assert!(timestamp(&res.json()["expires_at"]) <= short_expires);
    }

    // A token that never expires may make one that never expires.
    let lasting = token_without_expiry(&app, &customer_id).await;
    let res = new_token(
        &app,
        &lasting,
        json!({"name": "forever", "expires_in_seconds": null}),
    )
    .await;
    res.expect(201);
    assert!(res.json()["expires_at"].is_null());
}

async fn revoking_a_token_revokes_the_tokens_it_made(app: TestApp) {
    let (_, login) = app.customer("ann@example.com").await;
    let res = new_token(&app, &login, json!({"name": "sibling"})).await;
    res.expect(201);
    let other_login = s(&res.json()["token"]);
    let made = |parent: String| {
        let app = &app;
        async move {
            let res = new_token(app, &parent, json!({"name": "child"})).await;
            res.expect(201);
            (s(&res.json()["token_id"]), s(&res.json()["token"]))
        }
    };
    let (child_id, child) = made(login.clone()).await;
    let (_, grandchild) = made(child.clone()).await;
    let (_, nephew) = made(other_login.clone()).await;

    // Revoking the child (from its parent) revokes what it made, and
    // nothing else.
    app.delete(&format!("/api/v1/me/tokens/{child_id}"))
        .bearer(&login)
        .send()
        .await
        .expect(204);
    app.assert_dead(&child).await;
    app.assert_dead(&grandchild).await;
    for alive in [&login, &other_login, &nephew] {
        app.get("/api/v1/me").bearer(alive).send().await.expect(200);
    }
    let events = app
        .get("/api/v1/admin/audit?limit=100")
        .bearer(&app.admin_key().await)
        .send()
        .await
        .json();
    assert!(
        events["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "user_token.revoked"
                && e["subject_id"] == json!(child_id)
                && e["detail"] == "and 1 tokens made from it"),
        "{events}"
    );

    // Logging out revokes the login's descendants too.
    app.post("/api/v1/auth/logout")
        .bearer(&login)
        .send()
        .await
        .expect(204);
    app.assert_dead(&other_login).await;
    app.assert_dead(&nephew).await;
}

async fn personal_tokens_are_capped_per_customer(app: TestApp) {
    let pk = app.publishable_key().await;
    app.register(&pk, "ann@example.com", PASSWORD).await;
    let login = app.login_token(&pk, "ann@example.com").await;
    let mut made = Vec::new();
    for n in 0..3 {
        let res = new_token(&app, &login, json!({"name": format!("script {n}")})).await;
        res.expect(201);
        made.push(s(&res.json()["token_id"]));
    }
    let res = new_token(&app, &login, json!({"name": "one too many"})).await;
    res.expect_problem(422, "token_limit_reached");
    assert!(res.json()["detail"].as_str().unwrap().contains("at most 3"));
    // Another customer has a cap of their own.
    let (_, bob) = app.customer("bob@example.com").await;
    new_token(&app, &bob, json!({"name": "bob's"}))
        .await
        .expect(201);
    // Logins do not count, and do not lift the cap.
    let again = app.login_token(&pk, "ann@example.com").await;
    new_token(&app, &again, json!({"name": "still too many"}))
        .await
        .expect_problem(422, "token_limit_reached");
    // Revoking one makes room for one.
    app.delete(&format!("/api/v1/me/tokens/{}", made[0]))
        .bearer(&login)
        .send()
        .await
        .expect(204);
    new_token(&app, &again, json!({"name": "in its place"}))
        .await
        .expect(201);
    new_token(&app, &again, json!({"name": "and no more"}))
        .await
        .expect_problem(422, "token_limit_reached");
}

async fn token_list_is_paginated(app: TestApp) {
    let (_, login) = app.customer("ann@example.com").await;
    let mut ids = vec![s(&my_tokens(&app, &login).await[0]["id"])];
    for n in 0..4 {
        let res = new_token(&app, &login, json!({"name": format!("t{n}")})).await;
        res.expect(201);
        ids.push(s(&res.json()["token_id"]));
    }
    ids.reverse();
    // Newest first, two at a time, like every other list.
    let all = app.all_pages(&login, "/api/v1/me/tokens", "", 2).await;
    assert_eq!(crate::support::ids(&all), ids);
    let current: Vec<bool> = all.iter().map(|t| t["current"] == true).collect();
    assert_eq!(current, [false, false, false, false, true]);
    let res = app.get("/api/v1/me/tokens").bearer(&login).send().await;
    res.expect(200);
    assert_fields(&res.json(), &["data", "next_cursor"]);
    for query in ["limit=0", "limit=101", "cursor=%27%3B--", "sort=name"] {
        let res = app
            .get(&format!("/api/v1/me/tokens?{query}"))
            .bearer(&login)
            .send()
            .await;
        res.expect_problem(422, "validation_failed");
    }
}

// ---------------------------------------------------------------- one identity per email

async fn register_stores_one_identity_per_visible_email(app: TestApp) {
    let pk = app.publishable_key().await;
    // The domain in its IDNA ASCII form, all in lower case.
    let res = app
        .post("/api/v1/customers")
        .bearer(&pk)
        .json(json!({"email": "Ann.Lee+shop@B\u{fc}cher.Example", "password": PASSWORD, "name": "Ann"}))
        .send()
        .await;
    res.expect(201);
    assert_eq!(res.json()["email"], "ann.lee+shop@xn--bcher-kva.example");
    // The same address however it is spelled: the ASCII form, the
    // decomposed ü, another case.
    for same in [
        "ann.lee+shop@xn--bcher-kva.example",
        "ANN.LEE+SHOP@bu\u{308}cher.example",
        "ann.lee+shop@B\u{dc}CHER.EXAMPLE",
    ] {
        app.post("/api/v1/customers")
            .bearer(&pk)
            .json(json!({"email": same, "password": PASSWORD, "name": "Ann"}))
            .send()
            .await
            .expect_problem(409, "email_taken");
    }
    // Logging in works with any spelling of it.
    app.login(&pk, "Ann.Lee+Shop@bu\u{308}cher.example", PASSWORD)
        .await;

    // Lookalikes and what RFC 5322 does not allow unquoted are refused.
    app.register(&pk, "alice@example.com", PASSWORD).await;
    for lookalike in [
        "alice\u{200b}@example.com",
        "alice\u{200d}@example.com",
        "al\u{ad}ice@example.com",
        "\u{202e}alice@example.com",
        "\u{130}alice@example.com",
        "\u{430}lice@example.com",
        "jos\u{e9}@example.com",
        "jose\u{301}@example.com",
        "<script>alert(1)</script>@x.com",
        "\"alice\"@example.com",
        "alice..x@example.com",
        "alice@exa_mple.com",
    ] {
        let res = app
            .post("/api/v1/customers")
            .bearer(&pk)
            .json(json!({"email": lookalike, "password": PASSWORD, "name": "Eve"}))
            .send()
            .await;
        res.expect_invalid("email");
    }
    assert_eq!(app.row_counts(&["customers"]).await, [("customers", 2)]);
}

async fn stored_emails_migrate_and_a_collision_stops_the_start(app: TestApp) {
    let pool = app.side_pool().await;
    let insert = |id: String, email: &'static str| {
        let pool = &pool;
        async move {
            sqlx::query(
                "INSERT INTO customers (id, email, name, password_hash, created_at) VALUES ($1, $2, 'N', 'x', 0)",
            )
            .bind(id)
            .bind(email)
            .execute(pool)
            .await
            .unwrap();
        }
    };
    // Rows as registration used to store them: lower-cased only.
    let (ann, ann_again, bob, odd) = (
        jeton::domain::ids::new_id(),
        jeton::domain::ids::new_id(),
        jeton::domain::ids::new_id(),
        jeton::domain::ids::new_id(),
    );
    insert(ann.clone(), "ann@b\u{fc}cher.example").await;
    insert(ann_again.clone(), "ann@xn--bcher-kva.example").await;
    insert(bob.clone(), "bob@b\u{fc}cher.example").await;
    insert(odd.clone(), "j\u{f6}rg@example.com").await;
    sqlx::query("DELETE FROM data_steps")
        .execute(&pool)
        .await
        .unwrap();
    let email_of = |id: String| {
        let pool = &pool;
        async move {
            sqlx::query_scalar::<_, String>("SELECT email FROM customers WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
                .unwrap()
        }
    };

    // Two rows that are one address: the start is refused, naming both,
    // and nothing is rewritten.
    let error = Db::connect(&app.url, &DbOptions::default())
        .await
        .err()
        .expect("a collision refuses to start")
        .to_string();
    assert!(
        error.contains(&ann) && error.contains(&ann_again) && !error.contains(&bob),
        "{error}"
    );
    assert!(error.contains("ann@xn--bcher-kva.example"), "{error}");
    assert_eq!(email_of(bob.clone()).await, "bob@b\u{fc}cher.example");

    // Once a person has resolved it, the start rewrites the rest.
    sqlx::query("UPDATE customers SET email = 'ann.old@example.com' WHERE id = $1")
        .bind(ann_again.clone())
        .execute(&pool)
        .await
        .unwrap();
    let db = Db::connect(&app.url, &DbOptions::default()).await.unwrap();
    db.close().await;
    assert_eq!(email_of(ann).await, "ann@xn--bcher-kva.example");
    assert_eq!(email_of(bob).await, "bob@xn--bcher-kva.example");
    // One the rule now refuses stays as it was.
    assert_eq!(email_of(odd).await, "j\u{f6}rg@example.com");
    // And registration sees the rewritten address.
    let pk = app.publishable_key().await;
    app.post("/api/v1/customers")
        .bearer(&pk)
        .json(json!({"email": "Bob@B\u{dc}cher.example", "password": PASSWORD, "name": "Bob"}))
        .send()
        .await
        .expect_problem(409, "email_taken");
    pool.close().await;
}
