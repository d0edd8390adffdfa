//! Secret hygiene: after a scenario that creates every kind of secret, no
//! plaintext token or password is in the database or in the server log,
//! and query strings never reach the log.

use jeton::domain::client::ClientKind;
use serde_json::json;

use crate::{
    on_both_databases,
    support::{Backend, STORE_TABLES, TestApp, captured_log},
};

/// Distinct from every other test's, so that a find is this test's.
const PASSWORD: &str = "a very secret passphrase";

on_both_databases!(no_plaintext_secret_is_stored_or_logged);

/// Every byte the database holds, as text: the SQLite files themselves, or
/// every row of every table on PostgreSQL.
async fn database_contents(app: &TestApp) -> String {
    match app.backend {
        Backend::Sqlite => {
            let path = app.url.trim_start_matches("sqlite://");
            let mut bytes = Vec::new();
            for suffix in ["", "-wal"] {
                if let Ok(content) = std::fs::read(format!("{path}{suffix}")) {
                    bytes.extend(content);
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Backend::Postgres => {
            let pool = sqlx::AnyPool::connect(&app.url).await.unwrap();
            let mut text = String::new();
            for table in STORE_TABLES {
                let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT t::text FROM {table} t"
                )))
                .fetch_all(&pool)
                .await
                .unwrap();
                text.push_str(&rows.join("\n"));
            }
            pool.close().await;
            text
        }
    }
}

async fn no_plaintext_secret_is_stored_or_logged(app: TestApp) {
    let admin = app.admin_key().await;
    let created = app.post_json_as("/api/v1/admin/clients", &admin, json!({"name": "Shop", "kind": "publishable", "abilities": ["products:read", "customers:create", "auth:login"], "allowed_origins": ["https://shop.example"]})).await;
    created.expect(201);
    let client_id = created.json()["client"]["id"].as_str().unwrap().to_owned();
    let first_pk = created.json()["key"].as_str().unwrap().to_owned();
    let rotated = app
        .post_json_as(
            &format!("/api/v1/admin/clients/{client_id}/keys"),
            &admin,
            json!({"previous_key_expires_in_seconds": 60}),
        )
        .await;
    rotated.expect(201);
    let pk = rotated.json()["key"].as_str().unwrap().to_owned();

    app.register(&pk, "secret@example.com", PASSWORD).await;
    let user_token = app.login(&pk, "secret@example.com", PASSWORD).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let personal = app
        .post_json_as(
            "/api/v1/me/tokens",
            &user_token,
            json!({"name": "cli", "abilities": ["orders:read"]}),
        )
        .await;
    personal.expect(201);
    let personal = personal.json()["token"].as_str().unwrap().to_owned();
    // A failed login and a refused token are logged too; they must not
    // carry the secret either.
    app.post_json_as(
        "/api/v1/auth/login",
        &pk,
        json!({"email": "secret@example.com", "password": format!("{PASSWORD}!")}),
    )
    .await
    .expect(400);
    app.get_as("/api/v1/me", &personal).await.expect(403);
    app.get_as("/api/v1/products", &user_token)
        .await
        .expect(200);
    // OAuth 2.0: an exchange, a use, an introspection, a failed client
    // authentication with a real key as the secret, a revocation.
    let (oauth_id, oauth_secret) = app
        .client(
            ClientKind::Secret,
            &["products:read", "tokens:introspect"],
            &[],
        )
        .await;
    let access = app.access_token(&oauth_id, &oauth_secret, None).await;
    app.get("/api/v1/products")
        .bearer(&access)
        .send()
        .await
        .expect(200);
    app.post("/oauth/introspect")
        .basic(&oauth_id, &oauth_secret)
        .form(&format!("token={user_token}"))
        .send()
        .await
        .expect(200);
    app.post("/oauth/token")
        .basic(&oauth_id, &admin)
        .form("grant_type=client_credentials")
        .send()
        .await
        .expect(401);
    app.post("/oauth/revoke")
        .basic(&oauth_id, &oauth_secret)
        .form(&format!("token={access}"))
        .send()
        .await
        .expect(200);

    let secrets = [
        oauth_secret.as_str(),
        access.as_str(),
        admin.as_str(),
        first_pk.as_str(),
        pk.as_str(),
        user_token.as_str(),
        personal.as_str(),
        PASSWORD,
    ];
    let stored = database_contents(&app).await;
    assert!(
        stored.contains("secret@example.com"),
        "the dump must see the data it checks"
    );
    let log = captured_log();
    assert!(
        log.contains("/api/v1/auth/login"),
        "the log capture must see requests"
    );
    for secret in secrets {
        // The body of a token, without the public prefix.
        let needle = secret.strip_prefix("jt_").map_or(secret, |rest| &rest[3..]);
        assert!(
            !stored.contains(needle),
            "the database holds a plaintext secret"
        );
        assert!(!log.contains(needle), "the log holds a plaintext secret");
    }
    assert!(
        !log.contains("Bearer jt_"),
        "an Authorization header reached the log"
    );
}

// ================================================================ secret hygiene

on_both_databases!(query_strings_never_reach_the_log);

on_both_databases!(an_invitations_link_reaches_neither_the_log_nor_the_database);

/// The token of a staff invitation is in its path: the access log shows
/// the route's template instead, and the database only its hash.
async fn an_invitations_link_reaches_neither_the_log_nor_the_database(app: TestApp) {
    let owner = app.staff(jeton::domain::staff::Role::Owner).await;
    let res = app
        .post("/api/v1/admin/staff")
        .staff(&owner)
        .json(json!({"email": "new@shop.example", "name": "New", "role": "viewer"}))
        .send()
        .await;
    res.expect(201);
    let url = res.json()["invite_url"].as_str().unwrap().to_owned();
    let token = url.rsplit('/').next().unwrap().to_owned();
    app.post(&format!("/api/v1/staff/invites/{token}"))
        .json(json!({"password": PASSWORD}))
        .send()
        .await
        .expect(200);
    let log = captured_log();
    assert!(
        log.contains("/api/v1/staff/invites/{token}"),
        "the log capture must see the request"
    );
    assert!(
        !log.contains(&token),
        "an invitation's token reached the log"
    );
    assert!(
        !database_contents(&app).await.contains(&token),
        "the database holds an invitation's token"
    );
}

async fn query_strings_never_reach_the_log(app: TestApp) {
    let pk = app.publishable_key().await;
    app.get_as("/api/v1/products?q=SECRETQUERY123", &pk)
        .await
        .expect(200);
    // Refused requests are logged too, without their query.
    app.get_as("/api/v1/products?access_token=SECRETQUERY456", &pk)
        .await
        .expect_problem(400, "invalid_request");
    app.get_as("/api/v1/products?limit=SECRETQUERY789", &pk)
        .await
        .expect_problem(422, "validation_failed");
    let log = captured_log();
    assert!(
        log.contains("/api/v1/products"),
        "the log capture must see the requests"
    );
    for secret in ["SECRETQUERY123", "SECRETQUERY456", "SECRETQUERY789"] {
        assert!(!log.contains(secret), "a query string reached the log");
    }
}
