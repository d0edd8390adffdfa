//! Customers, their user tokens, and the admin API (spec §6): every endpoint
//! once for success and once for each documented error, on SQLite and on
//! PostgreSQL.

use crate::{on_both_databases, support};

use jeton::domain::client::ClientKind;
use serde_json::{Value, json};
use support::{Res, TestApp};
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

const PASSWORD: &str = "correct horse battery";

/// What a login token holds (spec §3), in the API's (sorted) order.
const USER_ABILITIES: [&str; 5] = [
    "orders:read",
    "orders:write",
    "products:read",
    "profile:read",
    "tokens:manage",
];

// ---------------------------------------------------------------- helpers

fn timestamp(value: &Value) -> OffsetDateTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"));
    OffsetDateTime::parse(text, &Rfc3339).unwrap_or_else(|_| panic!("not RFC 3339: {text}"))
}

/// `at` is `expected` give or take a few minutes (the test's own run time).
#[track_caller]
fn assert_about(at: OffsetDateTime, expected: OffsetDateTime) {
    let off = (at - expected).abs();
    assert!(
        off < Duration::minutes(5),
        "{at} is not about {expected} (off by {off})"
    );
}

fn field_names(value: &Value) -> Vec<String> {
    let mut names: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    names.sort();
    names
}

#[track_caller]
fn assert_fields(value: &Value, expected: &[&str]) {
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(field_names(value), expected, "in {value}");
}

/// A 422 `validation_failed` whose `errors` name `field`.
#[track_caller]
fn assert_invalid(res: &Res, field: &str) {
    res.expect_problem(422, "validation_failed");
    let body = res.json();
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors list: {body}"));
    assert!(
        errors.iter().any(|e| e["field"] == field),
        "no error for `{field}` in {body}"
    );
}

fn s(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .to_owned()
}

fn last4(token: &str) -> &str {
    &token[token.len() - 4..]
}

/// The token no longer authenticates anywhere.
async fn assert_dead(app: &TestApp, token: &str) {
    app.get("/api/v1/products")
        .bearer(token)
        .send()
        .await
        .expect_problem(401, "invalid_token");
}

async fn login_token(app: &TestApp, key: &str, email: &str) -> String {
    s(&app.login(key, email, PASSWORD).await["token"])
}

/// The caller's token list.
async fn my_tokens(app: &TestApp, token: &str) -> Vec<Value> {
    let res = app.get("/api/v1/me/tokens").bearer(token).send().await;
    res.expect(200);
    res.json()["data"].as_array().unwrap().clone()
}

/// `POST /me/tokens` with `token`.
async fn new_token(app: &TestApp, token: &str, body: Value) -> Res {
    app.post("/api/v1/me/tokens")
        .bearer(token)
        .json(body)
        .send()
        .await
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

async fn create_client(app: &TestApp, admin: &str, body: Value) -> Res {
    app.post("/api/v1/admin/clients")
        .bearer(admin)
        .json(body)
        .send()
        .await
}

/// A storefront client made through the admin API: (client, key).
async fn storefront(app: &TestApp, admin: &str, name: &str) -> (Value, String) {
    let res = create_client(
        app,
        admin,
        json!({
            "name": name, "kind": "publishable",
            "abilities": ["products:read", "customers:create", "auth:login"],
            "allowed_origins": ["https://shop.example"]
        }),
    )
    .await;
    res.expect(201);
    let body = res.json();
    (body["client"].clone(), s(&body["key"]))
}

async fn get_client(app: &TestApp, admin: &str, id: &str) -> Value {
    let res = app
        .get(&format!("/api/v1/admin/clients/{id}"))
        .bearer(admin)
        .send()
        .await;
    res.expect(200);
    res.json()
}

async fn rotate(app: &TestApp, admin: &str, id: &str, body: Value) -> Res {
    app.post(&format!("/api/v1/admin/clients/{id}/keys"))
        .bearer(admin)
        .json(body)
        .send()
        .await
}

async fn create_product(app: &TestApp, admin: &str, body: Value) -> Res {
    app.post("/api/v1/admin/products")
        .bearer(admin)
        .json(body)
        .send()
        .await
}

async fn patch_product(app: &TestApp, admin: &str, id: &str, body: Value) -> Res {
    app.patch(&format!("/api/v1/admin/products/{id}"))
        .bearer(admin)
        .json(body)
        .send()
        .await
}

/// A well-formed id that names nothing.
const UNKNOWN_ID: &str = "01900000-0000-7000-8000-000000000000";

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
    // /me/tokens
    token_list_shows_metadata_but_never_the_token,
    token_create_issues_a_subset_token,
    token_create_refuses_more_abilities_and_bad_lifetimes,
    token_revoke_one_is_scoped_to_the_caller,
    token_revoke_all_kills_every_token_of_the_caller,
    // admin: products
    admin_product_create_and_its_errors,
    admin_product_patch_changes_only_the_given_fields,
    // admin: clients
    admin_api_needs_a_secret_key_with_admin,
    admin_client_create_shows_the_key_once_and_defaults_limits,
    admin_client_create_validates,
    admin_client_list_paginates_and_get_finds_one,
    admin_client_rotation_without_grace_kills_the_old_key,
    admin_client_rotation_with_grace_keeps_the_old_key,
    admin_client_rotation_of_a_revoked_or_unknown_client_is_404,
    admin_client_revoke_kills_every_key_at_once,
    admin_client_revoke_with_user_tokens,
    // admin: customers
    admin_revoke_customer_tokens,
);

// ---------------------------------------------------------------- POST /customers

async fn register_returns_the_customer_without_secrets(app: TestApp) {
    let pk = app.publishable_key().await;
    let res = app
        .post("/api/v1/customers")
        .bearer(&pk)
        .json(json!({"email": "Ann@Example.com", "password": PASSWORD, "name": "Ann"}))
        .send()
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
        app.post("/api/v1/customers")
            .bearer(&pk)
            .json(json!({"email": email, "password": "another password", "name": "Ann 2"}))
            .send()
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
        let res = app
            .post("/api/v1/customers")
            .bearer(&pk)
            .json(body)
            .send()
            .await;
        assert_invalid(&res, field);
        assert!(!res.text().contains(PASSWORD));
    }
    // A field the endpoint does not know.
    let res = app
        .post("/api/v1/customers")
        .bearer(&pk)
        .json(with("customer_id", json!(UNKNOWN_ID)))
        .send()
        .await;
    res.expect_problem(422, "validation_failed");
    assert!(res.text().contains("customer_id"), "{}", res.text());
    // A missing field.
    app.post("/api/v1/customers")
        .bearer(&pk)
        .json(json!({"email": "ann@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect_problem(422, "validation_failed");
    // None of them created the account.
    app.register(&pk, "ann@example.com", PASSWORD).await;
}

async fn register_refuses_user_tokens(app: TestApp) {
    let (_, token) = app.customer("ann@example.com").await;
    let res = app
        .post("/api/v1/customers")
        .bearer(&token)
        .json(json!({"email": "bob@example.com", "password": PASSWORD, "name": "Bob"}))
        .send()
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
    app.post("/api/v1/customers")
        .bearer(&reader)
        .json(json!({"email": "bob@example.com", "password": PASSWORD, "name": "Bob"}))
        .send()
        .await
        .expect_problem(403, "insufficient_scope");
}

// ---------------------------------------------------------------- POST /auth/login

async fn login_issues_a_thirty_day_user_token(app: TestApp) {
    let pk = app.publishable_key().await;
    app.register(&pk, "ann@example.com", PASSWORD).await;
    let res = app
        .post("/api/v1/auth/login")
        .bearer(&pk)
        .json(json!({"email": "ANN@example.com", "password": PASSWORD, "device_name": "phone"}))
        .send()
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
    let me = app.get("/api/v1/me").bearer(&token).send().await;
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
    app.post("/api/v1/auth/login")
        .bearer(&pk)
        .json(json!({"email": "ann@example.com", "password": PASSWORD, "remember": true}))
        .send()
        .await
        .expect_problem(422, "validation_failed");
    // Login needs a client key with auth:login: not a user token.
    let token = login_token(&app, &pk, "ann@example.com").await;
    app.post("/api/v1/auth/login")
        .bearer(&token)
        .json(json!({"email": "ann@example.com", "password": PASSWORD}))
        .send()
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
    app.post("/api/v1/auth/login")
        .bearer(&reader)
        .json(json!({"email": "ann@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect_problem(403, "insufficient_scope");
}

// ---------------------------------------------------------------- POST /auth/logout

async fn logout_revokes_only_the_token_used(app: TestApp) {
    let pk = app.publishable_key().await;
    app.register(&pk, "ann@example.com", PASSWORD).await;
    let first = login_token(&app, &pk, "ann@example.com").await;
    let second = login_token(&app, &pk, "ann@example.com").await;
    // Even a token with no useful ability may log itself out.
    let narrow = personal_token(&app, &first, &["orders:read"]).await;

    let res = app.post("/api/v1/auth/logout").bearer(&first).send().await;
    res.expect(204);
    assert!(res.body.is_empty());
    assert_dead(&app, &first).await;
    app.assert_works(&second).await;
    app.post("/api/v1/auth/logout")
        .bearer(&first)
        .send()
        .await
        .expect_problem(401, "invalid_token");

    app.post("/api/v1/auth/logout")
        .bearer(&narrow)
        .send()
        .await
        .expect(204);
    assert_dead(&app, &narrow).await;
    app.assert_works(&second).await;

    // Logout is for user tokens only.
    app.post("/api/v1/auth/logout")
        .bearer(&pk)
        .send()
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
        .post("/api/v1/customers")
        .bearer(&pk)
        .json(json!({"email": "ann@example.com", "password": PASSWORD, "name": "Ann"}))
        .send()
        .await;
    registered.expect(201);
    let token = login_token(&app, &pk, "ann@example.com").await;
    let res = app.get("/api/v1/me").bearer(&token).send().await;
    res.expect(200);
    assert_eq!(res.json(), registered.json());
    assert!(!res.text().contains("argon2"));

    let orders_only = personal_token(&app, &token, &["orders:read"]).await;
    let res = app.get("/api/v1/me").bearer(&orders_only).send().await;
    res.expect_problem(403, "insufficient_scope");
    assert!(
        res.header("www-authenticate")
            .is_some_and(|h| h.contains("profile:read")),
        "{:?}",
        res.header("www-authenticate")
    );
    // The narrow token is alive, just not allowed here.
    app.get("/api/v1/me/orders")
        .bearer(&orders_only)
        .send()
        .await
        .expect(200);

    // Client keys have no profile.
    app.get("/api/v1/me")
        .bearer(&pk)
        .send()
        .await
        .expect_problem(403, "insufficient_scope");
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

    let res = app
        .get("/api/v1/me/tokens")
        .bearer(&first_token)
        .send()
        .await;
    res.expect(200);
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    let text = res.text();
    for token in [&first_token, &second_token, &other] {
        assert!(!text.contains(token.as_str()), "a token leaked: {text}");
    }
    let body = res.json();
    assert_fields(&body, &["data"]);
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
    app.get("/api/v1/me/tokens")
        .bearer(&narrow)
        .send()
        .await
        .expect_problem(403, "insufficient_scope");
}

async fn token_create_issues_a_subset_token(app: TestApp) {
    let (client_id, pk) = app.publishable_client().await;
    app.register(&pk, "ann@example.com", PASSWORD).await;
    let token = login_token(&app, &pk, "ann@example.com").await;

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
    app.get("/api/v1/me/orders")
        .bearer(&script)
        .send()
        .await
        .expect(200);
    app.get("/api/v1/products")
        .bearer(&script)
        .send()
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

    // `null` lifetime: the token does not expire.
    let res = new_token(
        &app,
        &token,
        json!({"name": "forever", "abilities": ["products:read"], "expires_in_seconds": null}),
    )
    .await;
    res.expect(201);
    let forever = res.json();
    assert!(forever["expires_at"].is_null(), "{forever}");
    app.assert_works(&s(&forever["token"])).await;
    let listed = my_tokens(&app, &token).await;
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
    let token = login_token(&app, &pk, "ann@example.com").await;
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
        assert_invalid(&res, "abilities");
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
        assert_invalid(&res, "abilities");
    }
    // Lifetimes must be positive (or null).
    for seconds in [0, -1, -3600] {
        let res = new_token(
            &app,
            &token,
            json!({"name": "bad", "abilities": ["orders:read"], "expires_in_seconds": seconds}),
        )
        .await;
        assert_invalid(&res, "expires_in_seconds");
    }
    // Other fields.
    assert_invalid(
        &new_token(
            &app,
            &token,
            json!({"name": "", "abilities": ["orders:read"]}),
        )
        .await,
        "name",
    );
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
    let ann = login_token(&app, &pk, "ann@example.com").await;
    let ann_phone = app.login(&pk, "ann@example.com", PASSWORD).await;
    let bob = app.login(&pk, "bob@example.com", PASSWORD).await;

    // Bob's token is "not found" for Ann, and keeps working.
    app.delete(&format!("/api/v1/me/tokens/{}", s(&bob["token_id"])))
        .bearer(&ann)
        .send()
        .await
        .expect_problem(404, "not_found");
    app.assert_works(&s(&bob["token"])).await;
    for id in [UNKNOWN_ID, "not-an-id"] {
        app.delete(&format!("/api/v1/me/tokens/{id}"))
            .bearer(&ann)
            .send()
            .await
            .expect_problem(404, "not_found");
    }

    // Her own: gone at once, and from the list.
    let phone_id = s(&ann_phone["token_id"]);
    let res = app
        .delete(&format!("/api/v1/me/tokens/{phone_id}"))
        .bearer(&ann)
        .send()
        .await;
    res.expect(204);
    assert!(res.body.is_empty());
    assert_dead(&app, &s(&ann_phone["token"])).await;
    app.assert_works(&ann).await;
    let listed = my_tokens(&app, &ann).await;
    assert!(listed.iter().all(|t| t["id"] != phone_id.as_str()));
    // Twice: there is no such live token any more.
    app.delete(&format!("/api/v1/me/tokens/{phone_id}"))
        .bearer(&ann)
        .send()
        .await
        .expect_problem(404, "not_found");
}

async fn token_revoke_all_kills_every_token_of_the_caller(app: TestApp) {
    let pk = app.publishable_key().await;
    app.register(&pk, "ann@example.com", PASSWORD).await;
    app.register(&pk, "bob@example.com", PASSWORD).await;
    let ann = login_token(&app, &pk, "ann@example.com").await;
    let ann_phone = login_token(&app, &pk, "ann@example.com").await;
    let ann_script = personal_token(&app, &ann, &["products:read"]).await;
    let bob = login_token(&app, &pk, "bob@example.com").await;

    let res = app.delete("/api/v1/me/tokens").bearer(&ann).send().await;
    res.expect(204);
    for token in [&ann, &ann_phone, &ann_script] {
        assert_dead(&app, token).await;
    }
    app.assert_works(&bob).await;
    assert_eq!(my_tokens(&app, &bob).await.len(), 1);
    // Ann can log in again.
    let again = login_token(&app, &pk, "ann@example.com").await;
    assert_eq!(my_tokens(&app, &again).await.len(), 1);
}

// ---------------------------------------------------------------- admin: products

async fn admin_product_create_and_its_errors(app: TestApp) {
    let admin = app.admin_key().await;
    let good = json!({
        "sku": "MUG-1", "name": "Mug", "description": "A mug",
        "price": {"amount": 1200, "currency": "EUR"}, "stock": 5
    });
    let res = create_product(&app, &admin, good.clone()).await;
    res.expect(201);
    let mug = res.json();
    assert_fields(
        &mug,
        &[
            "id",
            "sku",
            "name",
            "description",
            "price",
            "stock",
            "created_at",
        ],
    );
    assert_eq!(mug["sku"], "MUG-1");
    assert_eq!(mug["name"], "Mug");
    assert_eq!(mug["description"], "A mug");
    assert_eq!(mug["price"], json!({"amount": 1200, "currency": "EUR"}));
    assert_eq!(mug["stock"], 5);
    assert_about(timestamp(&mug["created_at"]), OffsetDateTime::now_utc());
    // It is in the catalogue.
    let reader = app.publishable_key().await;
    let res = app
        .get(&format!("/api/v1/products/{}", s(&mug["id"])))
        .bearer(&reader)
        .send()
        .await;
    res.expect(200);
    assert_eq!(res.json(), mug);

    // The same SKU again.
    let mut again = good.clone();
    again["name"] = json!("Another mug");
    create_product(&app, &admin, again)
        .await
        .expect_problem(409, "sku_taken");

    let with = |path: &[&str], value: Value| {
        let mut body = good.clone();
        body["sku"] = json!("MUG-2");
        let mut target = &mut body;
        for key in &path[..path.len() - 1] {
            target = &mut target[*key];
        }
        target[path[path.len() - 1]] = value;
        body
    };
    let cases = [
        (with(&["stock"], json!(-1)), "stock"),
        (with(&["price", "amount"], json!(-1)), "price.amount"),
        (with(&["price", "currency"], json!("eur")), "price.currency"),
        (with(&["price", "currency"], json!("XYZ")), "price.currency"),
        (with(&["sku"], json!("")), "sku"),
        (with(&["name"], json!("")), "name"),
    ];
    for (body, field) in cases {
        assert_invalid(&create_product(&app, &admin, body).await, field);
    }
    // Missing fields, wrong types, unknown fields.
    for body in [
        json!({"sku": "MUG-2", "name": "Mug", "stock": 5}),
        json!({"sku": "MUG-2", "price": {"amount": 1, "currency": "EUR"}, "stock": 5}),
        json!({"sku": "MUG-2", "name": "Mug", "price": {"amount": 1, "currency": "EUR"}}),
        json!({}),
        with(&["stock"], json!("5")),
        with(&["price", "amount"], json!(12.5)),
        with(&["colour"], json!("red")),
    ] {
        create_product(&app, &admin, body)
            .await
            .expect_problem(422, "validation_failed");
    }
    // Nothing but the first mug was created.
    let res = app.get("/api/v1/products").bearer(&reader).send().await;
    res.expect(200);
    assert_eq!(res.json()["data"].as_array().unwrap().len(), 1);
}

async fn admin_product_patch_changes_only_the_given_fields(app: TestApp) {
    let admin = app.admin_key().await;
    let mug = app.product("MUG-1", 1200, "EUR", 5).await;
    app.product("TEE-1", 1900, "EUR", 3).await;
    let path_id = mug.id.clone();
    let original = serde_json::to_value(jeton::api::Product::from(mug.clone())).unwrap();

    // One field.
    let res = patch_product(&app, &admin, &path_id, json!({"stock": 7})).await;
    res.expect(200);
    let mut expected = original.clone();
    expected["stock"] = json!(7);
    assert_eq!(res.json(), expected);

    // Several.
    let res = patch_product(
        &app,
        &admin,
        &path_id,
        json!({"name": "Big mug", "price": {"amount": 1500, "currency": "USD"}}),
    )
    .await;
    res.expect(200);
    expected["name"] = json!("Big mug");
    expected["price"] = json!({"amount": 1500, "currency": "USD"});
    assert_eq!(res.json(), expected);
    // An empty patch changes nothing.
    let res = patch_product(&app, &admin, &path_id, json!({})).await;
    res.expect(200);
    assert_eq!(res.json(), expected);
    // Its own SKU is not "taken".
    patch_product(&app, &admin, &path_id, json!({"sku": "MUG-1"}))
        .await
        .expect(200);

    // Errors, none of which changes anything.
    patch_product(&app, &admin, UNKNOWN_ID, json!({"stock": 1}))
        .await
        .expect_problem(404, "not_found");
    patch_product(&app, &admin, "not-an-id", json!({"stock": 1}))
        .await
        .expect_problem(404, "not_found");
    patch_product(&app, &admin, &path_id, json!({"sku": "TEE-1"}))
        .await
        .expect_problem(409, "sku_taken");
    let cases = [
        (json!({"stock": -1}), "stock"),
        (
            json!({"price": {"amount": -5, "currency": "EUR"}}),
            "price.amount",
        ),
        (
            json!({"price": {"amount": 5, "currency": "eur"}}),
            "price.currency",
        ),
        (json!({"sku": "has space"}), "sku"),
        (json!({"name": ""}), "name"),
    ];
    for (body, field) in cases {
        assert_invalid(&patch_product(&app, &admin, &path_id, body).await, field);
    }
    patch_product(&app, &admin, &path_id, json!({"customer_id": UNKNOWN_ID}))
        .await
        .expect_problem(422, "validation_failed");
    let reader = app.publishable_key().await;
    let res = app
        .get(&format!("/api/v1/products/{path_id}"))
        .bearer(&reader)
        .send()
        .await;
    res.expect(200);
    assert_eq!(res.json(), expected);
}

// ---------------------------------------------------------------- admin: clients

async fn admin_api_needs_a_secret_key_with_admin(app: TestApp) {
    let pk = app.publishable_key().await;
    let (_, sk) = app
        .client(ClientKind::Secret, &["products:read", "auth:login"], &[])
        .await;
    let (_, user) = app.customer("ann@example.com").await;
    for token in [&pk, &sk, &user] {
        app.get("/api/v1/admin/clients")
            .bearer(token)
            .send()
            .await
            .expect_problem(403, "insufficient_scope");
        create_product(
            &app,
            token,
            json!({"sku": "X", "name": "X", "price": {"amount": 1, "currency": "EUR"}, "stock": 1}),
        )
        .await
        .expect_problem(403, "insufficient_scope");
    }
    app.get("/api/v1/admin/clients")
        .send()
        .await
        .expect_problem(401, "unauthenticated");
    // `*` on a secret key covers admin.
    let (_, star) = app.client(ClientKind::Secret, &["*"], &[]).await;
    app.get("/api/v1/admin/clients")
        .bearer(&star)
        .send()
        .await
        .expect(200);
}

async fn admin_client_create_shows_the_key_once_and_defaults_limits(app: TestApp) {
    let admin = app.admin_key().await;
    let res = create_client(
        &app,
        &admin,
        json!({
            "name": "Storefront", "kind": "publishable",
            "abilities": ["products:read", "auth:login"],
            "allowed_origins": ["https://Shop.Example:443", "http://localhost:8080"]
        }),
    )
    .await;
    res.expect(201);
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    let body = res.json();
    assert_fields(&body, &["client", "key"]);
    let key = s(&body["key"]);
    assert!(key.starts_with("jt_pk_") && key.len() == 42, "{key}");
    let client = &body["client"];
    assert_fields(
        client,
        &[
            "id",
            "name",
            "kind",
            "abilities",
            "allowed_origins",
            "rate_limit_per_minute",
            "per_ip_rate_limit_per_minute",
            "created_at",
            "revoked_at",
            "keys",
        ],
    );
    assert_eq!(client["name"], "Storefront");
    assert_eq!(client["kind"], "publishable");
    assert_eq!(client["abilities"], json!(["auth:login", "products:read"]));
    assert_eq!(
        client["allowed_origins"],
        json!(["https://shop.example", "http://localhost:8080"])
    );
    // Omitted limits: the server's defaults.
    assert_eq!(client["rate_limit_per_minute"], 6000);
    assert_eq!(client["per_ip_rate_limit_per_minute"], 300);
    assert!(client["revoked_at"].is_null());
    let keys = client["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_fields(
        &keys[0],
        &[
            "id",
            "last4",
            "created_at",
            "expires_at",
            "browser_refusals",
            "last_browser_refusal_at",
        ],
    );
    assert_eq!(keys[0]["browser_refusals"], 0);
    assert_eq!(keys[0]["last4"], last4(&key));
    assert!(keys[0]["expires_at"].is_null());
    // The key works.
    app.assert_works(&key).await;

    // GET shows the same client, never the key.
    let id = s(&client["id"]);
    let res = app
        .get(&format!("/api/v1/admin/clients/{id}"))
        .bearer(&admin)
        .send()
        .await;
    res.expect(200);
    assert!(!res.text().contains(&key), "the key leaked: {}", res.text());
    assert_eq!(&res.json(), client);
    let res = app.get("/api/v1/admin/clients").bearer(&admin).send().await;
    res.expect(200);
    assert!(!res.text().contains(&key));

    // Secret: a whole-key default, no per-IP limit.
    let res = create_client(
        &app,
        &admin,
        json!({"name": "Backend", "kind": "secret", "abilities": ["admin"]}),
    )
    .await;
    res.expect(201);
    let secret = res.json();
    assert!(s(&secret["key"]).starts_with("jt_sk_"));
    assert_eq!(secret["client"]["rate_limit_per_minute"], 6000);
    assert!(secret["client"]["per_ip_rate_limit_per_minute"].is_null());
    assert_eq!(secret["client"]["allowed_origins"], json!([]));
    app.get("/api/v1/admin/clients")
        .bearer(&s(&secret["key"]))
        .send()
        .await
        .expect(200);

    // `null`: no limit; numbers: as given.
    let res = create_client(
        &app,
        &admin,
        json!({
            "name": "Unlimited", "kind": "publishable", "abilities": ["products:read"],
            "allowed_origins": ["https://shop.example"],
            "rate_limit_per_minute": null, "per_ip_rate_limit_per_minute": null
        }),
    )
    .await;
    res.expect(201);
    let unlimited = res.json()["client"].clone();
    assert!(unlimited["rate_limit_per_minute"].is_null(), "{unlimited}");
    assert!(unlimited["per_ip_rate_limit_per_minute"].is_null());
    let stored = get_client(&app, &admin, &s(&unlimited["id"])).await;
    assert!(stored["rate_limit_per_minute"].is_null());
    assert!(stored["per_ip_rate_limit_per_minute"].is_null());

    let res = create_client(
        &app,
        &admin,
        json!({
            "name": "Tight", "kind": "publishable", "abilities": ["products:read"],
            "allowed_origins": ["https://shop.example"],
            "rate_limit_per_minute": 120, "per_ip_rate_limit_per_minute": 10
        }),
    )
    .await;
    res.expect(201);
    let tight = get_client(&app, &admin, &s(&res.json()["client"]["id"])).await;
    assert_eq!(tight["rate_limit_per_minute"], 120);
    assert_eq!(tight["per_ip_rate_limit_per_minute"], 10);
}

async fn admin_client_create_validates(app: TestApp) {
    let admin = app.admin_key().await;
    let publishable = |abilities: Value, origins: Value| json!({"name": "Shop", "kind": "publishable", "abilities": abilities, "allowed_origins": origins});
    let shop = json!(["https://shop.example"]);
    let read = json!(["products:read"]);

    // A publishable key is public: no write or admin abilities.
    for abilities in [
        json!(["orders:write"]),
        json!(["admin"]),
        json!(["products:read", "tokens:manage"]),
        json!(["*"]),
        json!([]),
        json!(["nonsense:read"]),
    ] {
        let res = create_client(&app, &admin, publishable(abilities, shop.clone())).await;
        assert_invalid(&res, "abilities");
    }
    // …and is bound to origins.
    assert_invalid(
        &create_client(&app, &admin, publishable(read.clone(), json!([]))).await,
        "allowed_origins",
    );
    assert_invalid(
        &create_client(
            &app,
            &admin,
            json!({"name": "Shop", "kind": "publishable", "abilities": ["products:read"]}),
        )
        .await,
        "allowed_origins",
    );
    for origin in [
        "https://shop.example/path",
        "https://shop.example/",
        "shop.example",
        "//shop.example",
        "https://*.example.com",
        "https://shop.*.com",
        "ftp://shop.example",
    ] {
        let res = create_client(&app, &admin, publishable(read.clone(), json!([origin]))).await;
        assert_invalid(&res, "allowed_origins[0]");
    }
    // Limits must be positive.
    for (field, value) in [
        ("rate_limit_per_minute", 0),
        ("rate_limit_per_minute", -1),
        ("per_ip_rate_limit_per_minute", 0),
        ("per_ip_rate_limit_per_minute", -10),
    ] {
        let mut body = publishable(read.clone(), shop.clone());
        body[field] = json!(value);
        assert_invalid(&create_client(&app, &admin, body).await, field);
    }
    let mut secret_zero = json!({"name": "B", "kind": "secret", "abilities": ["admin"]});
    secret_zero["rate_limit_per_minute"] = json!(0);
    assert_invalid(
        &create_client(&app, &admin, secret_zero).await,
        "rate_limit_per_minute",
    );
    // Other fields.
    assert_invalid(
        &create_client(
            &app,
            &admin,
            json!({"name": "", "kind": "secret", "abilities": ["admin"]}),
        )
        .await,
        "name",
    );
    for body in [
        json!({"name": "B", "kind": "public", "abilities": ["admin"]}),
        json!({"name": "B", "abilities": ["admin"]}),
        json!({"name": "B", "kind": "secret", "abilities": ["admin"], "key": "jt_sk_x"}),
    ] {
        create_client(&app, &admin, body)
            .await
            .expect_problem(422, "validation_failed");
    }
    // None of them was created: only the admin's own client exists.
    let res = app.get("/api/v1/admin/clients").bearer(&admin).send().await;
    res.expect(200);
    assert_eq!(res.json()["data"].as_array().unwrap().len(), 1);
}

async fn admin_client_list_paginates_and_get_finds_one(app: TestApp) {
    let (admin_id, admin) = app.client(ClientKind::Secret, &["admin"], &[]).await;
    let mut expected = vec![admin_id];
    let mut keys = Vec::new();
    for n in 0..4 {
        let (client, key) = storefront(&app, &admin, &format!("Shop {n}")).await;
        expected.push(s(&client["id"]));
        keys.push(key);
    }

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => "/api/v1/admin/clients?limit=2".to_owned(),
            Some(c) => format!("/api/v1/admin/clients?limit=2&cursor={c}"),
        };
        let res = app.get(&path).bearer(&admin).send().await;
        res.expect(200);
        for key in &keys {
            assert!(!res.text().contains(key.as_str()), "a key leaked");
        }
        let body = res.json();
        assert_fields(&body, &["data", "next_cursor"]);
        let data = body["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|c| s(&c["id"])));
        pages += 1;
        assert!(pages <= 5, "pagination does not end");
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, expected, "every client once, in creation order");
    assert_eq!(pages, 3);

    // Default page size holds them all.
    let res = app.get("/api/v1/admin/clients").bearer(&admin).send().await;
    res.expect(200);
    assert_eq!(res.json()["data"].as_array().unwrap().len(), 5);
    assert!(res.json()["next_cursor"].is_null());

    for query in ["limit=0", "limit=101", "cursor=garbage", "sort=name"] {
        app.get(&format!("/api/v1/admin/clients?{query}"))
            .bearer(&admin)
            .send()
            .await
            .expect_problem(422, "validation_failed");
    }

    // One by id.
    let one = get_client(&app, &admin, &expected[2]).await;
    assert_eq!(one["id"], expected[2].as_str());
    assert_eq!(one["name"], "Shop 1");
    for id in [UNKNOWN_ID, "not-an-id"] {
        app.get(&format!("/api/v1/admin/clients/{id}"))
            .bearer(&admin)
            .send()
            .await
            .expect_problem(404, "not_found");
    }
}

async fn admin_client_rotation_without_grace_kills_the_old_key(app: TestApp) {
    let admin = app.admin_key().await;
    let (client, old) = storefront(&app, &admin, "Shop").await;
    let id = s(&client["id"]);

    let res = rotate(
        &app,
        &admin,
        &id,
        json!({"previous_key_expires_in_seconds": 0}),
    )
    .await;
    res.expect(201);
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    let new = s(&res.json()["key"]);
    assert!(new.starts_with("jt_pk_") && new.len() == 42);
    assert_ne!(new, old);
    app.assert_works(&new).await;
    assert_dead(&app, &old).await;
    let shown = get_client(&app, &admin, &id).await;
    let keys = shown["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{shown}");
    assert_eq!(keys[0]["last4"], last4(&new));

    // No body at all means the default grace: none.
    let res = app
        .post(&format!("/api/v1/admin/clients/{id}/keys"))
        .bearer(&admin)
        .send()
        .await;
    res.expect(201);
    let newest = s(&res.json()["key"]);
    app.assert_works(&newest).await;
    assert_dead(&app, &new).await;

    // Grace out of range.
    for grace in [-1, 10 * 365 * 24 * 3600] {
        assert_invalid(
            &rotate(
                &app,
                &admin,
                &id,
                json!({"previous_key_expires_in_seconds": grace}),
            )
            .await,
            "previous_key_expires_in_seconds",
        );
    }
    app.assert_works(&newest).await;
}

async fn admin_client_rotation_with_grace_keeps_the_old_key(app: TestApp) {
    let admin = app.admin_key().await;
    let (client, old) = storefront(&app, &admin, "Shop").await;
    let id = s(&client["id"]);

    let res = rotate(
        &app,
        &admin,
        &id,
        json!({"previous_key_expires_in_seconds": 60}),
    )
    .await;
    res.expect(201);
    let new = s(&res.json()["key"]);
    app.assert_works(&new).await;
    app.assert_works(&old).await;

    let shown = get_client(&app, &admin, &id).await;
    let keys = shown["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{shown}");
    let old_key = keys
        .iter()
        .find(|k| k["last4"] == last4(&old))
        .expect("old key listed");
    let new_key = keys
        .iter()
        .find(|k| k["last4"] == last4(&new))
        .expect("new key listed");
    assert_about(
        timestamp(&old_key["expires_at"]),
        OffsetDateTime::now_utc() + Duration::seconds(60),
    );
    assert!(new_key["expires_at"].is_null());

    // A second rotation without grace ends the first grace period early.
    let res = rotate(&app, &admin, &id, json!({})).await;
    res.expect(201);
    let newest = s(&res.json()["key"]);
    assert_dead(&app, &old).await;
    assert_dead(&app, &new).await;
    app.assert_works(&newest).await;
}

async fn admin_client_rotation_of_a_revoked_or_unknown_client_is_404(app: TestApp) {
    let admin = app.admin_key().await;
    let (client, key) = storefront(&app, &admin, "Shop").await;
    let id = s(&client["id"]);
    for unknown in [UNKNOWN_ID, "not-an-id"] {
        rotate(&app, &admin, unknown, json!({}))
            .await
            .expect_problem(404, "not_found");
    }
    app.delete(&format!("/api/v1/admin/clients/{id}"))
        .bearer(&admin)
        .send()
        .await
        .expect(204);
    rotate(
        &app,
        &admin,
        &id,
        json!({"previous_key_expires_in_seconds": 0}),
    )
    .await
    .expect_problem(404, "not_found");
    assert_dead(&app, &key).await;
    // The revoked client gained no key.
    let shown = get_client(&app, &admin, &id).await;
    assert_eq!(shown["keys"], json!([]));
}

async fn admin_client_revoke_kills_every_key_at_once(app: TestApp) {
    let admin = app.admin_key().await;
    let (client, first) = storefront(&app, &admin, "Shop").await;
    let (_, other) = storefront(&app, &admin, "Other shop").await;
    let id = s(&client["id"]);
    // Two live keys: one in its grace period, one new.
    let res = rotate(
        &app,
        &admin,
        &id,
        json!({"previous_key_expires_in_seconds": 3600}),
    )
    .await;
    res.expect(201);
    let second = s(&res.json()["key"]);
    app.assert_works(&first).await;
    app.assert_works(&second).await;

    let res = app
        .delete(&format!("/api/v1/admin/clients/{id}"))
        .bearer(&admin)
        .send()
        .await;
    res.expect(204);
    assert!(res.body.is_empty());
    assert_dead(&app, &first).await;
    assert_dead(&app, &second).await;
    app.assert_works(&other).await;

    // Still listed, as revoked, with no working keys.
    let shown = get_client(&app, &admin, &id).await;
    assert_about(timestamp(&shown["revoked_at"]), OffsetDateTime::now_utc());
    assert_eq!(shown["keys"], json!([]));

    // Again, or an unknown id: nothing to revoke.
    for target in [id.as_str(), UNKNOWN_ID, "not-an-id"] {
        app.delete(&format!("/api/v1/admin/clients/{target}"))
            .bearer(&admin)
            .send()
            .await
            .expect_problem(404, "not_found");
    }
    // An admin key may revoke its own client, and is dead at once.
    let admin_client = app
        .get("/api/v1/admin/clients?limit=1")
        .bearer(&admin)
        .send()
        .await
        .json()["data"][0]["id"]
        .clone();
    app.delete(&format!("/api/v1/admin/clients/{}", s(&admin_client)))
        .bearer(&admin)
        .send()
        .await
        .expect(204);
    app.get("/api/v1/admin/clients")
        .bearer(&admin)
        .send()
        .await
        .expect_problem(401, "invalid_token");
}

async fn admin_client_revoke_with_user_tokens(app: TestApp) {
    let admin = app.admin_key().await;
    let (shop_a, key_a) = storefront(&app, &admin, "Shop A").await;
    let (_, key_b) = storefront(&app, &admin, "Shop B").await;
    let (shop_c, key_c) = storefront(&app, &admin, "Shop C").await;
    app.register(&key_a, "ann@example.com", PASSWORD).await;
    app.register(&key_b, "bob@example.com", PASSWORD).await;

    let ann_via_a = login_token(&app, &key_a, "ann@example.com").await;
    let bob_via_a = login_token(&app, &key_a, "bob@example.com").await;
    // A personal token made with a token from A was issued through A too.
    let ann_script_via_a = personal_token(&app, &ann_via_a, &["products:read"]).await;
    let ann_via_b = login_token(&app, &key_b, "ann@example.com").await;
    let bob_via_c = login_token(&app, &key_c, "bob@example.com").await;

    app.delete(&format!(
        "/api/v1/admin/clients/{}?revoke_user_tokens=true",
        s(&shop_a["id"])
    ))
    .bearer(&admin)
    .send()
    .await
    .expect(204);
    assert_dead(&app, &key_a).await;
    for token in [&ann_via_a, &bob_via_a, &ann_script_via_a] {
        assert_dead(&app, token).await;
    }
    app.assert_works(&ann_via_b).await;
    app.assert_works(&bob_via_c).await;

    // `false`: the client's keys die, its customers' tokens live on.
    app.delete(&format!(
        "/api/v1/admin/clients/{}?revoke_user_tokens=false",
        s(&shop_c["id"])
    ))
    .bearer(&admin)
    .send()
    .await
    .expect(204);
    assert_dead(&app, &key_c).await;
    app.assert_works(&bob_via_c).await;
    app.assert_works(&ann_via_b).await;
    app.assert_works(&key_b).await;
}

// ---------------------------------------------------------------- admin: customers

async fn admin_revoke_customer_tokens(app: TestApp) {
    let admin = app.admin_key().await;
    let pk = app.publishable_key().await;
    let ann_id = app.register(&pk, "ann@example.com", PASSWORD).await;
    app.register(&pk, "bob@example.com", PASSWORD).await;
    let ann = login_token(&app, &pk, "ann@example.com").await;
    let ann_phone = login_token(&app, &pk, "ann@example.com").await;
    let ann_script = personal_token(&app, &ann, &["products:read"]).await;
    let bob = login_token(&app, &pk, "bob@example.com").await;

    let res = app
        .post(&format!("/api/v1/admin/customers/{ann_id}/revoke-tokens"))
        .bearer(&admin)
        .send()
        .await;
    res.expect(204);
    assert!(res.body.is_empty());
    for token in [&ann, &ann_phone, &ann_script] {
        assert_dead(&app, token).await;
    }
    app.assert_works(&bob).await;
    // The account itself is fine: Ann can log in again.
    let again = login_token(&app, &pk, "ann@example.com").await;
    app.assert_works(&again).await;
    // Doing it again is fine too (the customer exists).
    app.post(&format!("/api/v1/admin/customers/{ann_id}/revoke-tokens"))
        .bearer(&admin)
        .send()
        .await
        .expect(204);
    assert_dead(&app, &again).await;

    for id in [UNKNOWN_ID, "not-an-id"] {
        app.post(&format!("/api/v1/admin/customers/{id}/revoke-tokens"))
            .bearer(&admin)
            .send()
            .await
            .expect_problem(404, "not_found");
    }
    // Not for anyone but an admin.
    app.post(&format!("/api/v1/admin/customers/{ann_id}/revoke-tokens"))
        .bearer(&bob)
        .send()
        .await
        .expect_problem(403, "insufficient_scope");
    app.assert_works(&bob).await;
}
