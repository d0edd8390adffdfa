//! The `jeton` command line, run as the real binary against a database
//! that a router in this process also serves, so that what the CLI does is
//! checked through the API; a revocation on the command line reaching a
//! running server; the demo seed.

use std::time::Instant;

use jeton::{
    cli::demo,
    domain::client::ClientKind,
    http::{AppState, router},
    store::{Db, DbOptions, products::ProductFilter},
};
use serde_json::{Value, json};

use crate::{
    on_both_databases,
    support::{
        Backend, EVIL, OTHER_SHOP, PASSWORD, SHOP, TestApp, TestDatabase, actions, last4,
        process::{STOREFRONT_KEY_ARGS, Server, http, jeton, jeton_traced, within_a_second},
        s,
    },
};

// ---------------------------------------------------------------- helpers

/// `client create … --json`: (client id, key).
fn cli_create(url: &str, args: &[&str]) -> (String, String) {
    let mut all = vec!["client", "create"];
    all.extend_from_slice(args);
    all.push("--json");
    let run = jeton_traced(url, &all);
    run.ok();
    let body = run.json();
    let mut fields: Vec<&String> = body.as_object().expect("an object").keys().collect();
    fields.sort();
    assert_eq!(fields, ["client_id", "key"], "{body}");
    let key = s(&body["key"]);
    run.stderr_hides(&key);
    (s(&body["client_id"]), key)
}

/// A secret client named "Backend" with one ability: (client id, key).
fn create_backend(url: &str, ability: &str) -> (String, String) {
    cli_create(
        url,
        &[
            "--name",
            "Backend",
            "--kind",
            "secret",
            "--ability",
            ability,
        ],
    )
}

/// A publishable client that reads the catalogue from `origin`: (client
/// id, key).
fn create_reader(url: &str, name: &str, origin: &str) -> (String, String) {
    cli_create(
        url,
        &[
            "--name",
            name,
            "--kind",
            "publishable",
            "--ability",
            "products:read",
            "--origin",
            origin,
        ],
    )
}

fn create_storefront(url: &str, name: &str) -> (String, String) {
    let mut args = vec!["--name", name];
    args.extend(STOREFRONT_KEY_ARGS);
    cli_create(url, &args)
}

/// All integers in `text`, in order.
fn numbers(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().unwrap())
        .collect()
}

// ---------------------------------------------------------------- migrate

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrate_creates_the_database_and_can_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let url = format!("sqlite://{}", path.display());
    assert!(!path.exists());

    let run = jeton(&url, &["migrate"]);
    run.ok();
    assert!(run.stdout.contains("migrations applied"), "{}", run.stdout);
    assert!(path.exists(), "the database file was not created");
    jeton(&url, &["migrate"]).ok();

    // The schema is there: the store works on it without migrating anything
    // it does not already have.
    let db = Db::connect(&url, &DbOptions::default()).await.unwrap();
    assert!(db.list_clients(None, 10).await.unwrap().is_empty());
    db.close().await;

    // A database URL of an unknown kind is a one-line error.
    jeton("mysql://localhost/jeton", &["migrate"]).fails();
}

// ---------------------------------------------------------------- client create

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_create_prints_a_key_that_works() {
    let app = TestApp::sqlite_on_system_time().await;
    let (id, key) = create_backend(&app.url, "admin");
    assert!(key.starts_with("jt_sk_") && key.len() == 42, "{key}");
    // The key is an admin key on the API, for the client that was printed.
    let res = app
        .get_as(&format!("/api/v1/admin/clients/{id}"), &key)
        .await;
    res.expect(200);
    let client = res.json();
    assert_eq!(client["name"], "Backend");
    assert_eq!(client["kind"], "secret");
    assert_eq!(client["abilities"], json!(["admin"]));
    assert_eq!(client["keys"][0]["last4"], last4(&key));
    // CLI clients get the same default limits as API ones.
    assert_eq!(client["rate_limit_per_minute"], 6000);
    assert!(client["per_ip_rate_limit_per_minute"].is_null());

    // A publishable key with its origin and limits.
    let (pk_id, pk) = cli_create(
        &app.url,
        &[
            "--name",
            "Shop",
            "--kind",
            "publishable",
            "--ability",
            "products:read",
            "--origin",
            "https://shop.example",
            "--rate-limit",
            "120",
            "--per-ip-rate-limit",
            "none",
        ],
    );
    assert!(pk.starts_with("jt_pk_"));
    app.assert_works(&pk).await;
    let shop = app
        .get_as(&format!("/api/v1/admin/clients/{pk_id}"), &key)
        .await
        .json();
    assert_eq!(shop["allowed_origins"], json!(["https://shop.example"]));
    assert_eq!(shop["rate_limit_per_minute"], 120);
    assert!(shop["per_ip_rate_limit_per_minute"].is_null());

    // Without --json: the key is printed once, for a human.
    let run = jeton_traced(
        &app.url,
        &[
            "client",
            "create",
            "--name",
            "Ops",
            "--kind",
            "secret",
            "--ability",
            "products:read",
        ],
    );
    run.ok();
    let printed = run
        .stdout
        .split_whitespace()
        .find(|word| word.starts_with("jt_sk_"))
        .unwrap_or_else(|| panic!("no key in {}", run.stdout))
        .to_owned();
    run.stderr_hides(&printed);
    app.assert_works(&printed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_create_refuses_what_the_api_refuses() {
    let app = TestApp::sqlite_on_system_time().await;
    let refused: [&[&str]; 5] = [
        // A publishable key cannot write.
        &[
            "--name",
            "Shop",
            "--kind",
            "publishable",
            "--ability",
            "orders:write",
            "--origin",
            "http://localhost:8080",
        ],
        // …and needs an origin.
        &[
            "--name",
            "Shop",
            "--kind",
            "publishable",
            "--ability",
            "products:read",
        ],
        &[
            "--name",
            "Shop",
            "--kind",
            "publishable",
            "--ability",
            "products:read",
            "--origin",
            "https://*.example.com",
        ],
        &[
            "--name",
            "Ops",
            "--kind",
            "secret",
            "--ability",
            "not-an-ability",
        ],
        &[
            "--name",
            "Ops",
            "--kind",
            "secret",
            "--ability",
            "admin",
            "--rate-limit",
            "0",
        ],
    ];
    for args in refused {
        let mut all = vec!["client", "create"];
        all.extend_from_slice(args);
        jeton(&app.url, &all).fails();
        all.push("--json");
        jeton(&app.url, &all).fails();
    }
    // Nothing was created.
    assert!(app.db.list_clients(None, 10).await.unwrap().is_empty());

    // Argument errors are refused too.
    let run = jeton(
        &app.url,
        &[
            "client",
            "create",
            "--name",
            "X",
            "--kind",
            "public",
            "--ability",
            "admin",
        ],
    );
    assert!(!run.output.status.success());
    assert!(app.db.list_clients(None, 10).await.unwrap().is_empty());
}

// ---------------------------------------------------------------- client list, show

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_list_and_show() {
    let app = TestApp::sqlite_on_system_time().await;
    let (secret_id, secret_key) = create_backend(&app.url, "admin");
    let (shop_id, shop_key) = create_storefront(&app.url, "Shop front");
    jeton(&app.url, &["client", "revoke", &shop_id]).ok();

    // A table: a header and one row per client, revoked ones marked.
    let run = jeton_traced(&app.url, &["client", "list"]);
    run.ok().stderr_hides(&secret_key).stderr_hides(&shop_key);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(lines[0].starts_with("ID") && lines[0].contains("KIND"));
    let row = |id: &str| {
        *lines
            .iter()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} not in {}", run.stdout))
    };
    assert!(row(&secret_id).contains("secret") && row(&secret_id).contains("active"));
    assert!(row(&secret_id).contains("Backend"));
    assert!(row(&shop_id).contains("publishable") && row(&shop_id).contains("revoked"));
    assert!(row(&shop_id).contains("http://localhost:8080"));
    for key in [&secret_key, &shop_key] {
        assert!(!run.stdout.contains(key.as_str()), "a key was listed");
    }

    // JSON: the API's shape, never key material but last4.
    let run = jeton(&app.url, &["client", "list", "--json"]);
    run.ok();
    for key in [&secret_key, &shop_key] {
        assert!(!run.stdout.contains(key.as_str()), "a key was listed");
    }
    let list = run.json();
    let list = list.as_array().expect("a JSON array");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], secret_id.as_str());
    assert_eq!(list[0]["keys"][0]["last4"], last4(&secret_key));
    assert_eq!(list[1]["id"], shop_id.as_str());
    assert!(list[1]["revoked_at"].is_string());

    // One client.
    let run = jeton(&app.url, &["client", "show", &secret_id, "--json"]);
    run.ok();
    assert!(!run.stdout.contains(&secret_key));
    let shown = run.json();
    assert_eq!(shown["id"], secret_id.as_str());
    assert_eq!(shown["name"], "Backend");
    assert_eq!(shown["kind"], "secret");
    assert_eq!(shown["abilities"], json!(["admin"]));
    assert_eq!(shown["keys"].as_array().unwrap().len(), 1);
    assert_eq!(shown["keys"][0]["last4"], last4(&secret_key));
    // …the same as the API shows.
    let api = app
        .get_as(&format!("/api/v1/admin/clients/{secret_id}"), &secret_key)
        .await;
    api.expect(200);
    assert_eq!(api.json(), shown);
    let run = jeton(&app.url, &["client", "show", &secret_id]);
    run.ok();
    assert!(run.stdout.contains(&secret_id) && run.stdout.contains(last4(&secret_key)));
    assert!(!run.stdout.contains(&secret_key));

    for unknown in ["01900000-0000-7000-8000-000000000000", "not-an-id"] {
        jeton(&app.url, &["client", "show", unknown, "--json"]).fails();
    }
}

// ---------------------------------------------------------------- client rotate

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_rotate_replaces_the_key() {
    let app = TestApp::sqlite_on_system_time().await;
    let (id, old) = create_storefront(&app.url, "Shop");
    app.assert_works(&old).await;

    let run = jeton_traced(
        &app.url,
        &["client", "rotate", &id, "--grace", "0s", "--json"],
    );
    run.ok();
    let body = run.json();
    assert_eq!(body["client_id"], id.as_str());
    let new = s(&body["key"]);
    run.stderr_hides(&new).stderr_hides(&old);
    assert!(new.starts_with("jt_pk_") && new.len() == 42);
    app.assert_works(&new).await;
    app.assert_dead_soon(&old).await;
    let client = app
        .db
        .get_client(&id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.keys.len(), 1);
    assert_eq!(client.keys[0].id, s(&body["key_id"]));
    assert_eq!(client.keys[0].last4, last4(&new));

    // With a grace period the previous key keeps working for now.
    let run = jeton(
        &app.url,
        &["client", "rotate", &id, "--grace", "1h", "--json"],
    );
    run.ok();
    let newest = s(&run.json()["key"]);
    app.assert_works(&newest).await;
    app.assert_works(&new).await;
    assert_eq!(
        app.db
            .get_client(&id.parse().unwrap())
            .await
            .unwrap()
            .unwrap()
            .keys
            .len(),
        2
    );

    // Unknown or revoked clients cannot be rotated.
    jeton(
        &app.url,
        &[
            "client",
            "rotate",
            "01900000-0000-7000-8000-000000000000",
            "--json",
        ],
    )
    .fails();
    jeton(&app.url, &["client", "revoke", &id]).ok();
    jeton(&app.url, &["client", "rotate", &id, "--grace", "0s"]).fails();
    app.assert_dead_soon(&newest).await;
}

// ---------------------------------------------------------------- client revoke

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_revoke_kills_its_keys_and_optionally_its_user_tokens() {
    let app = TestApp::sqlite_on_system_time().await;
    let (a_id, a_key) = create_storefront(&app.url, "Shop A");
    let (b_id, b_key) = create_storefront(&app.url, "Shop B");
    let (_, c_key) = create_storefront(&app.url, "Shop C");
    app.register(&a_key, "ann@example.com", PASSWORD).await;
    let via_a = app.login(&a_key, "ann@example.com", PASSWORD).await;
    let via_b = app.login(&b_key, "ann@example.com", PASSWORD).await;
    let via_c = app.login(&c_key, "ann@example.com", PASSWORD).await;

    // Plain revoke: the key dies, tokens issued through it live on.
    let run = jeton(&app.url, &["client", "revoke", &b_id]);
    run.ok();
    app.assert_dead_soon(&b_key).await;
    app.assert_works(&s(&via_b["token"])).await;
    // Again: there is no live client to revoke.
    jeton(&app.url, &["client", "revoke", &b_id]).fails();

    // --revoke-user-tokens: the tokens issued through it die too.
    jeton(
        &app.url,
        &["client", "revoke", &a_id, "--revoke-user-tokens"],
    )
    .ok();
    app.assert_dead_soon(&a_key).await;
    app.assert_dead_soon(&s(&via_a["token"])).await;
    app.assert_works(&s(&via_b["token"])).await;
    app.assert_works(&s(&via_c["token"])).await;
    app.assert_works(&c_key).await;

    for unknown in ["01900000-0000-7000-8000-000000000000", "not-an-id"] {
        jeton(&app.url, &["client", "revoke", unknown]).fails();
    }
}

// ---------------------------------------------------------------- token revoke, prune

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_revoke_kills_a_user_token() {
    let app = TestApp::sqlite_on_system_time().await;
    let pk = app.publishable_key().await;
    app.register(&pk, "ann@example.com", PASSWORD).await;
    let first = app.login(&pk, "ann@example.com", PASSWORD).await;
    let second = app.login(&pk, "ann@example.com", PASSWORD).await;
    let token = s(&first["token"]);
    let id = s(&first["token_id"]);

    let run = jeton_traced(&app.url, &["token", "revoke", &id]);
    run.ok().stderr_hides(&token);
    assert!(!run.stdout.contains(&token));
    app.assert_dead_soon(&token).await;
    app.assert_works(&s(&second["token"])).await;

    // Again, unknown, malformed: no live token has that id.
    for unknown in [id.as_str(), "01900000-0000-7000-8000-000000000000", "42"] {
        jeton(&app.url, &["token", "revoke", unknown]).fails();
    }
    app.assert_works(&s(&second["token"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_prune_deletes_only_dead_credentials_and_reports_counts() {
    let app = TestApp::sqlite_on_system_time().await;
    let admin = app.admin_key().await;
    let (client_id, pk) = app.publishable_client().await;
    app.register(&pk, "ann@example.com", PASSWORD).await;
    let live = s(&app.login(&pk, "ann@example.com", PASSWORD).await["token"]);
    let gone = s(&app.login(&pk, "ann@example.com", PASSWORD).await["token"]);
    app.post_as("/api/v1/auth/logout", &gone).await.expect(204);
    // A refusal recorded of the key that will be rotated out.
    app.products(&pk, Some(EVIL))
        .await
        .expect_refused("origin_not_allowed");
    // One rotated-out client key.
    let res = app
        .post_json_as(
            &format!("/api/v1/admin/clients/{client_id}/keys"),
            &admin,
            json!({"previous_key_expires_in_seconds": 0}),
        )
        .await;
    res.expect(201);
    let new_pk = s(&res.json()["key"]);
    app.products(&new_pk, Some(EVIL))
        .await
        .expect_refused("origin_not_allowed");
    // One revoked access token, one live.
    let (oauth_id, sk) = app
        .client(ClientKind::Secret, &["products:read"], &[])
        .await;
    let revoked = app.access_token(&oauth_id, &sk, None).await;
    let live_at = app.access_token(&oauth_id, &sk, None).await;
    app.post("/oauth/revoke")
        .basic(&oauth_id, &sk)
        .form(&format!("token={revoked}"))
        .send()
        .await
        .expect(200);

    // By default only what has been dead for a day goes: nothing yet.
    let run = jeton(&app.url, &["token", "prune"]);
    run.ok();
    assert!(
        run.stdout.contains("user tokens")
            && run.stdout.contains("client keys")
            && run.stdout.contains("access tokens")
            && run.stdout.contains("usage buckets past their retention"),
        "{}",
        run.stdout
    );
    assert_eq!(numbers(&run.stdout), [0, 0, 0, 0, 0], "{}", run.stdout);

    let run = jeton(&app.url, &["token", "prune", "--expired-for", "0s"]);
    run.ok();
    // Usage is kept for its retention, whatever `--expired-for` says.
    assert_eq!(numbers(&run.stdout), [1, 1, 1, 0, 0], "{}", run.stdout);
    // What is alive is untouched.
    app.assert_works(&live).await;
    app.assert_works(&new_pk).await;
    app.assert_works(&live_at).await;
    app.assert_dead_soon(&gone).await;
    app.assert_dead_soon(&pk).await;
    // The refusal of the rotated-out key went with it; the live key's stays.
    let refused: Vec<String> = sqlx::query_scalar(
        "SELECT last4 FROM auth_credentials c \
         JOIN auth_refusals r ON r.credential_id = c.id",
    )
    .fetch_all(&app.side_pool().await)
    .await
    .unwrap();
    assert_eq!(refused, [last4(&new_pk)]);
    let refusals: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM auth_refusals")
        .fetch_one(&app.side_pool().await)
        .await
        .unwrap();
    assert_eq!(refusals, 1);

    let run = jeton(&app.url, &["token", "prune", "--expired-for", "0s"]);
    run.ok();
    assert_eq!(numbers(&run.stdout), [0, 0, 0, 0, 0], "{}", run.stdout);
    // A duration that is not one.
    let run = jeton(&app.url, &["token", "prune", "--expired-for", "soon"]);
    assert!(!run.output.status.success());
    assert!(run.stdout.is_empty());
}

// ---------------------------------------------------------------- PostgreSQL

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_create_and_revoke_on_postgres() {
    let Some(database) = TestDatabase::empty(Backend::Postgres).await else {
        return;
    };
    let url = database.url.clone();

    // The CLI migrates the empty database itself.
    let (id, key) = create_backend(&url, "admin");
    let db = Db::connect(&url, &DbOptions::default()).await.unwrap();
    // As served: the guard needs the peer's address.
    let app_router = router(
        AppState::load(db.clone(), Default::default())
            .await
            .unwrap(),
    )
    .layer(axum::extract::connect_info::MockConnectInfo(
        std::net::SocketAddr::from(([127, 0, 0, 1], 40000)),
    ));
    let call = |key: String| {
        let app_router = app_router.clone();
        async move {
            use tower::ServiceExt;
            let request = axum::http::Request::get("/api/v1/admin/clients")
                .header("authorization", format!("Bearer {key}"))
                .body(axum::body::Body::empty())
                .unwrap();
            app_router.oneshot(request).await.unwrap().status().as_u16()
        }
    };
    assert_eq!(call(key.clone()).await, 200);

    let run = jeton(&url, &["client", "list", "--json"]);
    run.ok();
    assert_eq!(run.json()[0]["id"], id.as_str());

    jeton(&url, &["client", "revoke", &id]).ok();
    // Another process revoked it: dead within one second, by the contract.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    while call(key.clone()).await != 401 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(call(key.clone()).await, 401);
    jeton(&url, &["client", "revoke", &id]).fails();
    db.close().await;
}

// ---------------------------------------------------------------- serve --demo

on_both_databases!(demo_seed_is_idempotent);

async fn demo_seed_is_idempotent(app: TestApp) {
    let first = demo::seed(&app.db, demo::DEFAULT_STOREFRONT_ADDR)
        .await
        .unwrap();
    assert_eq!(first.products_added, 24);
    let first_key = first.publishable_key.expose_secret().to_owned();
    assert!(first_key.starts_with("jt_pk_"));
    app.assert_works(&first_key).await;

    let second = demo::seed(&app.db, demo::DEFAULT_STOREFRONT_ADDR)
        .await
        .unwrap();
    assert_eq!(second.products_added, 0);
    let second_key = second.publishable_key.expose_secret().to_owned();
    assert_ne!(second_key, first_key);

    // 24 products, each once.
    let products = app
        .db
        .list_products(&ProductFilter::default(), None, 1000)
        .await
        .unwrap();
    assert_eq!(products.len(), 24);
    let mut skus: Vec<&str> = products.iter().map(|p| p.sku.as_str()).collect();
    skus.sort();
    skus.dedup();
    assert_eq!(skus.len(), 24);

    // One demo client, whose earlier key stopped working.
    let clients = app.db.list_clients(None, 1000).await.unwrap();
    let demo_clients: Vec<_> = clients
        .iter()
        .filter(|c| c.name == demo::DEMO_CLIENT)
        .collect();
    assert_eq!(demo_clients.len(), 1, "{clients:?}");
    let demo_client = demo_clients[0];
    assert_eq!(demo_client.kind, ClientKind::Publishable);
    assert!(demo_client.revoked_at.is_none());
    assert_eq!(
        demo_client.allowed_origins,
        ["http://127.0.0.1:3000", "http://localhost:3000"]
    );
    assert_eq!(demo_client.keys.len(), 1);
    assert_eq!(demo_client.keys[0].last4, last4(&second_key));
    app.assert_works(&second_key).await;
    app.assert_dead_soon(&first_key).await;
    // The storefront's guests get cart tokens through it.
    app.post_json_as("/api/v1/guest", &second_key, serde_json::json!({}))
        .await
        .expect(201);

    // One demo customer, whose printed credentials work.
    let login = app
        .login(&second_key, demo::DEMO_EMAIL, demo::DEMO_PASSWORD)
        .await;
    let token = s(&login["token"]);
    let me = app.get_as("/api/v1/me", &token).await;
    me.expect(200);
    assert_eq!(me.json()["email"], demo::DEMO_EMAIL);
    app.post_json_as(
        "/api/v1/customers",
        &second_key,
        json!({"email": demo::DEMO_EMAIL, "password": "another password", "name": "X"}),
    )
    .await
    .expect_problem(409, "email_taken");
}

// ---------------------------------------------------------------- command line

/// The row of `client list` for `id`.
fn list_row(url: &str, id: &str) -> String {
    let run = jeton(url, &["client", "list"]);
    run.ok();
    run.stdout
        .lines()
        .find(|line| line.starts_with(id))
        .unwrap_or_else(|| panic!("{id} not listed:\n{}", run.stdout))
        .to_owned()
}

on_both_databases!(cli_client_list_flags_any_origin_and_leaked_keys_and_audit_lists_events);

async fn cli_client_list_flags_any_origin_and_leaked_keys_and_audit_lists_events(app: TestApp) {
    let url = app.url.clone();
    let (any_id, any_key) = create_reader(&url, "Anywhere", "*");
    let (shop_id, _) = create_reader(&url, "Shop", SHOP);
    let (secret_id, secret) = create_backend(&url, "products:read");

    let row = list_row(&url, &any_id);
    assert!(row.contains("ANY-ORIGIN"), "{row}");
    assert!(!row.contains("LEAKED-KEY"), "{row}");
    for id in [&shop_id, &secret_id] {
        let row = list_row(&url, id);
        assert!(
            !row.contains("ANY-ORIGIN") && !row.contains("LEAKED-KEY"),
            "{row}"
        );
    }
    // The `*` key works from any site (this server's origin set was loaded
    // before the CLI made it, so only the key check is asserted here).
    app.products(&any_key, Some(EVIL)).await.expect(200);

    // A browser sends the secret key: the CLI shows it has leaked.
    app.products(&secret, Some(SHOP))
        .await
        .expect_refused("secret_key_in_browser");
    let row = list_row(&url, &secret_id);
    assert!(row.contains("LEAKED-KEY"), "{row}");
    assert!(!list_row(&url, &shop_id).contains("LEAKED-KEY"));
    let run = jeton(&url, &["client", "show", &secret_id, "--json"]);
    run.ok();
    assert!(run.json()["keys"][0]["browser_refusals"].as_i64().unwrap() >= 1);

    // `client revoke --json` says what it did.
    let run = jeton(&url, &["client", "revoke", &shop_id, "--json"]);
    run.ok();
    assert_eq!(
        run.json(),
        json!({"client_id": shop_id, "revoked": true, "revoked_user_tokens": false})
    );
    jeton(&url, &["client", "revoke", &shop_id, "--json"]).fails();

    // `jeton audit --json`: every event, oldest first, the CLI as actor.
    let run = jeton(&url, &["audit", "--json"]);
    run.ok();
    let events = run.json();
    let events = events.as_array().expect("a JSON array").clone();
    assert_eq!(
        actions(&events),
        [
            "client.created",
            "client.created",
            "client.created",
            "client_key.refused_in_browser",
            "client.revoked",
        ],
        "{events:#?}"
    );
    let cli = json!({"kind": "cli", "id": null});
    for index in [0, 1, 2, 4] {
        assert_eq!(events[index]["actor"], cli, "{}", events[index]);
        assert_eq!(events[index]["client_ip"], Value::Null);
    }
    assert_eq!(events[0]["client_id"], any_id.as_str());
    assert_eq!(events[3]["client_id"], secret_id.as_str());
    assert_eq!(events[3]["actor"]["kind"], "client_key");
    assert_eq!(events[3]["client_ip"], "127.0.0.1");
    assert_eq!(events[4]["client_id"], shop_id.as_str());
    for key in [&any_key, &secret] {
        assert!(!run.stdout.contains(key.as_str()), "a key in the audit log");
    }

    // Filters and the newest-N limit.
    let run = jeton(&url, &["audit", "--client-id", &secret_id, "--json"]);
    run.ok();
    assert_eq!(
        actions(run.json().as_array().unwrap()),
        ["client.created", "client_key.refused_in_browser"]
    );
    let run = jeton(&url, &["audit", "--limit", "2", "--json"]);
    run.ok();
    assert_eq!(run.json().as_array().unwrap()[..], events[3..]);
    jeton(&url, &["audit", "--client-id", "nope"]).fails();
    // The table.
    let run = jeton(&url, &["audit"]);
    run.ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{}", run.stdout);
    assert!(lines[4].contains("client_key.refused_in_browser") && lines[4].contains(&secret_id));
    assert!(lines[5].contains("client.revoked") && lines[5].contains(&shop_id));
}

// ---------------------------------------------------------------- a running server

fn allows_origin(text: &str, origin: &str) -> bool {
    text.contains(&format!("access-control-allow-origin: {origin}\r\n"))
}

on_both_databases!(cli_revocation_reaches_a_running_server_within_a_second);

async fn cli_revocation_reaches_a_running_server_within_a_second(backend: Backend) {
    // Declared first, so dropped last: after the server is gone.
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let url = database.url.clone();
    let server = Server::start(&url, &["--trusted-proxy", "127.0.0.1/32"]).await;
    let preflight = || async {
        http(
            server.addr,
            "OPTIONS",
            "/api/v1/products",
            &[
                ("origin", SHOP),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "authorization"),
            ],
        )
        .await
        .unwrap()
        .1
    };
    assert!(!allows_origin(&preflight().await, SHOP));

    // A key made on the command line while the server runs works at once,
    // and its origin becomes preflight-able.
    let (id, key) = create_reader(&url, "Shop", SHOP);
    let created = Instant::now();
    let bearer = format!("Bearer {key}");
    let products = |origin: Option<&'static str>| {
        let bearer = bearer.clone();
        let server = &server;
        async move {
            let mut headers = vec![("authorization", bearer.as_str())];
            headers.extend(origin.map(|o| ("origin", o)));
            server.get("/api/v1/products", &headers).await
        }
    };
    let (status, text) = products(None).await;
    assert_eq!(status, 200, "{text}");
    within_a_second(
        created,
        "the new client's origin preflight-able",
        || async {
            let text = preflight().await;
            if allows_origin(&text, SHOP) {
                Ok(())
            } else {
                Err(text)
            }
        },
    )
    .await;
    let (status, text) = products(Some(SHOP)).await;
    assert_eq!(status, 200, "{text}");
    assert!(allows_origin(&text, SHOP), "{text}");
    let (status, text) = products(Some(EVIL)).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("origin_not_allowed"), "{text}");

    // `--trusted-proxy`: X-Forwarded-For from it names the client.
    let (_, limited) = cli_create(
        &url,
        &[
            "--name",
            "Limited",
            "--kind",
            "publishable",
            "--ability",
            "products:read",
            "--origin",
            OTHER_SHOP,
            "--per-ip-rate-limit",
            "2",
        ],
    );
    let limited = format!("Bearer {limited}");
    for (client, expected) in [
        ("198.51.100.1", 200),
        ("198.51.100.1", 200),
        ("198.51.100.1", 429),
        ("198.51.100.2", 200),
    ] {
        let (status, text) = server
            .get(
                "/api/v1/products",
                &[("authorization", &limited), ("x-forwarded-for", client)],
            )
            .await;
        assert_eq!(status, expected, "from {client}: {text}");
    }

    // The revocation, on the command line.
    jeton(&url, &["client", "revoke", &id]).ok();
    let revoked = Instant::now();
    within_a_second(revoked, "the revoked key refused", || async {
        let (status, text) = products(None).await;
        match status {
            401 => {
                assert!(text.contains("invalid_token"), "{text}");
                assert!(
                    text.contains(
                        "www-authenticate: bearer realm=\"jeton\", error=\"invalid_token\""
                    ),
                    "{text}"
                );
                Ok(())
            }
            200 => Err(text),
            _ => panic!("neither working nor revoked: {text}"),
        }
    })
    .await;
    within_a_second(
        revoked,
        "the revoked client's origin no longer preflight-able",
        || async {
            let text = preflight().await;
            if allows_origin(&text, SHOP) {
                Err(text)
            } else {
                Ok(())
            }
        },
    )
    .await;
    drop(server);
}
