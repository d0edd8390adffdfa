//! A database made by an earlier version upgrades in place: every key and
//! token it holds keeps working, with what the API shows of it.

use jeton::identity::TOKENS;
use jeton_auth::{SqlStore, TokenKind};
use serde_json::json;

use crate::{
    on_both_databases,
    support::{Backend, SHOP, TestApp, connect, database::TestDatabase, s, timestamp},
};

/// The last of Jeton's migrations before its credentials moved into
/// jeton-auth's tables.
const BEFORE_THE_MOVE: i64 = 20261130000010;

/// An empty database migrated as an earlier version left it: jeton-auth's
/// migrations up to `library` (all of them: `None`) and Jeton's up to
/// `app`. `None`: PostgreSQL is unavailable and not required.
async fn migrated_to(
    backend: Backend,
    library: Option<i64>,
    app: i64,
) -> Option<(TestDatabase, sqlx::AnyPool)> {
    let database = TestDatabase::empty(backend).await?;
    let url = match backend {
        Backend::Sqlite => format!("{}?mode=rwc", database.url),
        Backend::Postgres => database.url.clone(),
    };
    let pool = connect(&url).await;
    let library_migrations = SqlStore::migrator();
    match library {
        Some(version) => library_migrations.run_to(version, &pool).await.unwrap(),
        None => library_migrations.run(&pool).await.unwrap(),
    }
    sqlx::migrate!("./migrations")
        .run_to(app, &pool)
        .await
        .unwrap();
    Some((database, pool))
}

on_both_databases!(credentials_keep_working_when_they_move_into_jeton_auth_tables);

async fn credentials_keep_working_when_they_move_into_jeton_auth_tables(backend: Backend) {
    let Some((database, pool)) = migrated_to(backend, None, BEFORE_THE_MOVE).await else {
        return;
    };

    // Rows as the earlier version wrote them.
    let id = |n: u8| format!("01900000-0000-7000-8000-0000000000{n:02}");
    let (shop, backend_client, ann) = (id(1), id(2), id(3));
    let (shop_key_id, secret_key_id, login_id, personal_id, access_id) =
        (id(11), id(12), id(13), id(14), id(15));
    // A client revoked before the upgrade, with its key and a user token
    // issued through it (which outlives it).
    let (old_shop, old_key_id, old_login_id) = (id(4), id(16), id(17));
    let old_key = TOKENS.generate(TokenKind::Publishable);
    let old_login = TOKENS.generate(TokenKind::User);
    let shop_key = TOKENS.generate(TokenKind::Publishable);
    let secret_key = TOKENS.generate(TokenKind::Secret);
    let login = TOKENS.generate(TokenKind::User);
    let personal = TOKENS.generate(TokenKind::User);
    let access = TOKENS.generate(TokenKind::Access);
    let now = jeton::domain::time::to_micros(time::OffsetDateTime::now_utc());
    let statements: Vec<(&str, Vec<String>)> = vec![
        (
            "INSERT INTO clients (id, name, kind, abilities, allowed_origins, rate_limit_per_minute, \
             per_ip_rate_limit_per_minute, created_at) VALUES ($1, 'Shop', 'publishable', \
             'products:read customers:create auth:login', $2, 600, 60, $3)",
            vec![shop.clone(), SHOP.to_owned(), now.to_string()],
        ),
        (
            "INSERT INTO clients (id, name, kind, abilities, allowed_origins, created_at) \
             VALUES ($1, 'Backend', 'secret', 'admin tokens:introspect', '', $2)",
            vec![backend_client.clone(), now.to_string()],
        ),
        (
            "INSERT INTO client_keys (id, client_id, kind, token_hash, last4, created_at) \
             VALUES ($1, $2, 'publishable', $3, $4, $5)",
            vec![
                shop_key_id.clone(),
                shop.clone(),
                shop_key.hash().to_hex(),
                shop_key.last4(),
                now.to_string(),
            ],
        ),
        (
            "INSERT INTO client_keys (id, client_id, kind, token_hash, last4, created_at, \
             browser_refusals, last_browser_refusal_at) VALUES ($1, $2, 'secret', $3, $4, $5, 2, $5)",
            vec![
                secret_key_id.clone(),
                backend_client.clone(),
                secret_key.hash().to_hex(),
                secret_key.last4(),
                now.to_string(),
            ],
        ),
        (
            "INSERT INTO clients (id, name, kind, abilities, allowed_origins, created_at, revoked_at) \
             VALUES ($1, 'Old shop', 'publishable', 'products:read auth:login', $2, $3, $3)",
            vec![old_shop.clone(), SHOP.to_owned(), now.to_string()],
        ),
        (
            "INSERT INTO client_keys (id, client_id, kind, token_hash, last4, created_at, revoked_at) \
             VALUES ($1, $2, 'publishable', $3, $4, $5, $5)",
            vec![
                old_key_id.clone(),
                old_shop.clone(),
                old_key.hash().to_hex(),
                old_key.last4(),
                now.to_string(),
            ],
        ),
        (
            "INSERT INTO customers (id, email, name, password_hash, created_at) \
             VALUES ($1, 'ann@example.com', 'Ann', 'x', $2)",
            vec![ann.clone(), now.to_string()],
        ),
        (
            "INSERT INTO access_tokens (id, client_id, key_id, token_hash, scope, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, 'admin', $5, $6)",
            vec![
                access_id.clone(),
                backend_client.clone(),
                secret_key_id.clone(),
                access.hash().to_hex(),
                now.to_string(),
                (now + 3_600_000_000).to_string(),
            ],
        ),
    ];
    for (statement, values) in statements {
        let mut query = sqlx::query(statement);
        for value in values {
            // Times and limits are numbers; everything else text.
            query = match value.parse::<i64>() {
                Ok(number) => query.bind(number),
                Err(_) => query.bind(value),
            };
        }
        query.execute(&pool).await.unwrap();
    }
    let tokens = [
        (
            &login_id,
            &login,
            Some(&shop),
            "login",
            "profile:read tokens:manage",
            None,
        ),
        (
            &personal_id,
            &personal,
            None,
            "laptop",
            "profile:read",
            Some(&login_id),
        ),
        (
            &old_login_id,
            &old_login,
            Some(&old_shop),
            "old login",
            "profile:read",
            None,
        ),
    ];
    for (id, token, client, name, abilities, parent) in tokens {
        sqlx::query(
            "INSERT INTO user_tokens (id, customer_id, client_id, name, token_hash, last4, \
             abilities, created_at, parent_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id.clone())
        .bind(ann.clone())
        .bind(client.cloned())
        .bind(name)
        .bind(token.hash().to_hex())
        .bind(token.last4())
        .bind(abilities)
        .bind(now)
        .bind(parent.cloned())
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    // The app brings the database up to date as it starts.
    let app = TestApp::on_database(database, backend).await;
    for gone in ["clients", "client_keys", "user_tokens"] {
        let pool = app.side_pool().await;
        let read = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT 1 FROM {gone}")))
            .fetch_optional(&pool)
            .await;
        assert!(read.is_err(), "{gone} is still there");
        pool.close().await;
    }

    // Every credential works as before.
    app.get("/api/v1/products")
        .bearer(shop_key.expose_secret())
        .header("origin", SHOP)
        .send()
        .await
        .expect(200);
    app.get("/api/v1/me")
        .bearer(login.expose_secret())
        .send()
        .await
        .expect(200);
    app.get("/api/v1/me")
        .bearer(personal.expose_secret())
        .send()
        .await
        .expect(200);
    let res = app
        .get_as(
            &format!("/api/v1/admin/clients/{backend_client}"),
            access.expose_secret(),
        )
        .await;
    res.expect(200);

    // With what the API shows of them: names, kinds, limits, refusals.
    let res = app
        .get_as(
            &format!("/api/v1/admin/clients/{backend_client}"),
            secret_key.expose_secret(),
        )
        .await;
    res.expect(200);
    let client = res.json();
    assert_eq!(client["name"], "Backend");
    assert_eq!(client["kind"], "secret");
    assert_eq!(client["keys"][0]["id"], json!(secret_key_id));
    assert_eq!(client["keys"][0]["browser_refusals"], 2);
    assert_eq!(
        timestamp(&client["keys"][0]["last_browser_refusal_at"]),
        jeton::domain::time::from_micros(now)
    );
    let res = app
        .get_as(
            &format!("/api/v1/admin/clients/{shop}"),
            secret_key.expose_secret(),
        )
        .await;
    res.expect(200);
    let client = res.json();
    assert_eq!(client["name"], "Shop");
    assert_eq!(client["allowed_origins"], json!([SHOP]));
    assert_eq!(client["rate_limit_per_minute"], 600);
    let res = app.get_as("/api/v1/me/tokens", login.expose_secret()).await;
    res.expect(200);
    let names: Vec<String> = res.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|token| s(&token["name"]))
        .collect();
    assert_eq!(names, ["old login", "laptop", "login"]);

    // The revoked client's key stays dead; the token issued through it
    // works, from no page.
    app.assert_dead(old_key.expose_secret()).await;
    app.get("/api/v1/me")
        .bearer(old_login.expose_secret())
        .send()
        .await
        .expect(200);

    // A personal token still goes with the token that made it.
    app.delete_as(
        &format!("/api/v1/me/tokens/{login_id}"),
        login.expose_secret(),
    )
    .await
    .expect(204);
    app.assert_dead(personal.expose_secret()).await;
    app.assert_dead(login.expose_secret()).await;
}

/// The last of Jeton's migrations before its OAuth access tokens moved into
/// jeton-auth's tables, and the last of the library's then.
const BEFORE_THE_ACCESS_TOKENS_MOVED: i64 = 20261130000020;
const LIBRARY_BEFORE_ACCESS_TOKENS: i64 = 20261130000001;

on_both_databases!(access_tokens_keep_working_when_they_move_into_jeton_auth_tables);

async fn access_tokens_keep_working_when_they_move_into_jeton_auth_tables(backend: Backend) {
    let library = Some(LIBRARY_BEFORE_ACCESS_TOKENS);
    let Some((database, pool)) =
        migrated_to(backend, library, BEFORE_THE_ACCESS_TOKENS_MOVED).await
    else {
        return;
    };

    // Rows as the earlier version wrote them: a secret client, two of its
    // keys, an access token obtained by each (one already revoked), and a
    // credential change in Jeton's own feed.
    let id = |n: u8| format!("01900000-0000-7000-8000-0000000001{n:02}");
    let (client, key_id, other_key_id, access_id, revoked_id) = (id(1), id(2), id(3), id(4), id(5));
    let key = TOKENS.generate(TokenKind::Secret);
    let other_key = TOKENS.generate(TokenKind::Secret);
    let access = TOKENS.generate(TokenKind::Access);
    let revoked = TOKENS.generate(TokenKind::Access);
    let now = jeton::domain::time::to_micros(time::OffsetDateTime::now_utc());
    let created = now - 60_000_000;
    let statements: Vec<(&str, Vec<String>)> = vec![
        (
            "INSERT INTO auth_clients (id, abilities, allowed_origins, created_at) \
             VALUES ($1, 'admin tokens:introspect', '', $2)",
            vec![client.clone(), created.to_string()],
        ),
        (
            "INSERT INTO client_details (client_id, name, kind) VALUES ($1, 'Backend', 'secret')",
            vec![client.clone()],
        ),
        (
            "INSERT INTO auth_credentials (id, kind, token_hash, last4, client_id, created_at) \
             VALUES ($1, 'secret', $2, $3, $4, $5)",
            vec![
                key_id.clone(),
                key.hash().to_hex(),
                key.last4(),
                client.clone(),
                created.to_string(),
            ],
        ),
        (
            "INSERT INTO auth_credentials (id, kind, token_hash, last4, client_id, created_at) \
             VALUES ($1, 'secret', $2, $3, $4, $5)",
            vec![
                other_key_id.clone(),
                other_key.hash().to_hex(),
                other_key.last4(),
                client.clone(),
                created.to_string(),
            ],
        ),
        (
            "INSERT INTO access_tokens (id, client_id, key_id, token_hash, scope, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, 'admin', $5, $6)",
            vec![
                access_id.clone(),
                client.clone(),
                key_id.clone(),
                access.hash().to_hex(),
                created.to_string(),
                (now + 3_600_000_000).to_string(),
            ],
        ),
        (
            "INSERT INTO access_tokens (id, client_id, key_id, token_hash, scope, created_at, \
             expires_at, revoked_at) VALUES ($1, $2, $3, $4, 'admin', $5, $6, $5)",
            vec![
                revoked_id.clone(),
                client.clone(),
                other_key_id.clone(),
                revoked.hash().to_hex(),
                created.to_string(),
                (now + 3_600_000_000).to_string(),
            ],
        ),
        (
            "INSERT INTO credential_changes (id, at) VALUES ($1, $2)",
            vec![id(9), created.to_string()],
        ),
    ];
    for (statement, values) in statements {
        let mut query = sqlx::query(statement);
        for value in values {
            query = match value.parse::<i64>() {
                Ok(number) => query.bind(number),
                Err(_) => query.bind(value),
            };
        }
        query.execute(&pool).await.unwrap();
    }
    pool.close().await;

    let app = TestApp::on_database(database, backend).await;
    let side = app.side_pool().await;
    for gone in ["access_tokens", "credential_changes"] {
        let read = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT 1 FROM {gone}")))
            .fetch_optional(&side)
            .await;
        assert!(read.is_err(), "{gone} is still there");
    }
    // Ids, hashes, keys and times as they were.
    let moved: Vec<(String, String, String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT id, token_hash, key_id, created_at, revoked_at FROM auth_access_tokens ORDER BY id",
    )
    .fetch_all(&side)
    .await
    .unwrap();
    side.close().await;
    assert_eq!(
        moved,
        [
            (
                access_id.clone(),
                access.hash().to_hex(),
                key_id.clone(),
                created,
                None
            ),
            (
                revoked_id,
                revoked.hash().to_hex(),
                other_key_id,
                created,
                Some(created)
            ),
        ]
    );

    // The live token works, the revoked one does not; introspection still
    // says when the live one was issued.
    let admin = format!("/api/v1/admin/clients/{client}");
    app.get_as(&admin, access.expose_secret()).await.expect(200);
    app.assert_dead(revoked.expose_secret()).await;
    let res = app
        .post("/oauth/introspect")
        .basic(&client, key.expose_secret())
        .form(&format!("token={}", access.expose_secret()))
        .send()
        .await;
    res.expect(200);
    assert_eq!(res.json()["active"], true);
    assert_eq!(
        res.json()["iat"],
        json!(jeton::domain::time::from_micros(created).unix_timestamp())
    );

    // It still dies with the key that obtained it: rotated out at once.
    let res = app
        .rotate(
            key.expose_secret(),
            &client,
            json!({"previous_key_expires_in_seconds": 0}),
        )
        .await;
    res.expect(201);
    app.assert_dead(access.expose_secret()).await;
}

/// The last of Jeton's migrations before guest carts (API.md §16).
const BEFORE_GUEST_CARTS: i64 = 20261207000040;

on_both_databases!(live_user_tokens_that_place_orders_gain_cart_write);

/// The upgrade that brings `cart:write` gives it to every live user token
/// that holds `orders:write` (or `orders:*`), and to no other.
async fn live_user_tokens_that_place_orders_gain_cart_write(backend: Backend) {
    let Some((database, pool)) = migrated_to(backend, None, BEFORE_GUEST_CARTS).await else {
        return;
    };
    let now = jeton::domain::time::to_micros(time::OffsetDateTime::now_utc());
    let id = |n: u8| format!("01900000-0000-7000-8000-0000000002{n:02}");
    // (id, abilities, revoked): what each token held before.
    let tokens = [
        (id(1), "orders:read orders:write products:read", false),
        (id(2), "orders:* profile:read", false),
        (id(3), "orders:read profile:read", false),
        (id(4), "orders:write", true),
        (id(5), "*", false),
    ];
    for (token_id, abilities, revoked) in &tokens {
        let token = TOKENS.generate(TokenKind::User);
        sqlx::query(
            "INSERT INTO auth_credentials (id, kind, token_hash, last4, user_id, abilities, \
             created_at, revoked_at) VALUES ($1, 'user', $2, $3, $4, $5, $6, $7)",
        )
        .bind(token_id.clone())
        .bind(token.hash().to_hex())
        .bind(token.last4())
        .bind(id(99))
        .bind(abilities.to_string())
        .bind(now)
        .bind(revoked.then_some(now))
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let app = TestApp::on_database(database, backend).await;
    let side = app.side_pool().await;
    let after: Vec<(String, String)> =
        sqlx::query_as("SELECT id, abilities FROM auth_credentials ORDER BY id")
            .fetch_all(&side)
            .await
            .unwrap();
    side.close().await;
    assert_eq!(
        after,
        [
            (
                id(1),
                "orders:read orders:write products:read cart:write".to_owned()
            ),
            (id(2), "orders:* profile:read cart:write".to_owned()),
            (id(3), "orders:read profile:read".to_owned()),
            (id(4), "orders:write".to_owned()),
            (id(5), "*".to_owned()),
        ]
    );
}
