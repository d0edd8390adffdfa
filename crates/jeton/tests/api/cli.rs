//! The `jeton` command line (spec §7), run as the real binary against a
//! database that a router in this process also serves, so that what the CLI
//! does is checked through the API. SQLite throughout; `client create` and
//! `client revoke` also on a fresh PostgreSQL database. The demo seed runs on
//! both.

use crate::{on_both_databases, support};

use jeton::{
    cli::demo,
    domain::client::ClientKind,
    http::{AppState, router},
    store::{Db, DbOptions, products::ProductFilter},
};
use serde_json::{Value, json};
use support::{
    Backend, TestApp, fresh_database,
    process::{DropDatabase, STOREFRONT_KEY_ARGS, jeton, jeton_traced},
    spawn_app,
};

const PASSWORD: &str = "correct horse battery";

// ---------------------------------------------------------------- helpers

fn s(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .to_owned()
}

fn last4(token: &str) -> &str {
    &token[token.len() - 4..]
}

/// `client create … --json`: (client id, key).
fn create_client(url: &str, args: &[&str]) -> (String, String) {
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

fn create_storefront(url: &str, name: &str) -> (String, String) {
    let mut args = vec!["--name", name];
    args.extend(STOREFRONT_KEY_ARGS);
    create_client(url, &args)
}

/// The CLI is another process: its revocations reach the server's caches
/// through the change feed, within one second (spec §4). Waits at most that
/// long (plus slack for a loaded machine), then insists.
async fn assert_dead(app: &TestApp, key: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    loop {
        let res = app.get("/api/v1/products").bearer(key).send().await;
        if res.status == 401 || std::time::Instant::now() > deadline {
            res.expect_problem(401, "invalid_token");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn sqlite_app() -> TestApp {
    spawn_app(Backend::Sqlite)
        .await
        .expect("SQLite is always there")
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
    let app = sqlite_app().await;
    let (id, key) = create_client(
        &app.url,
        &[
            "--name",
            "Backend",
            "--kind",
            "secret",
            "--ability",
            "admin",
        ],
    );
    assert!(key.starts_with("jt_sk_") && key.len() == 42, "{key}");
    // The key is an admin key on the API, for the client that was printed.
    let res = app
        .get(&format!("/api/v1/admin/clients/{id}"))
        .bearer(&key)
        .send()
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
    let (pk_id, pk) = create_client(
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
        .get(&format!("/api/v1/admin/clients/{pk_id}"))
        .bearer(&key)
        .send()
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
    let app = sqlite_app().await;
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
    let app = sqlite_app().await;
    let (secret_id, secret_key) = create_client(
        &app.url,
        &[
            "--name",
            "Backend",
            "--kind",
            "secret",
            "--ability",
            "admin",
        ],
    );
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
        .get(&format!("/api/v1/admin/clients/{secret_id}"))
        .bearer(&secret_key)
        .send()
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
    let app = sqlite_app().await;
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
    assert_dead(&app, &old).await;
    let client = app.db.get_client(&id).await.unwrap().unwrap();
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
    assert_eq!(app.db.get_client(&id).await.unwrap().unwrap().keys.len(), 2);

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
    assert_dead(&app, &newest).await;
}

// ---------------------------------------------------------------- client revoke

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_revoke_kills_its_keys_and_optionally_its_user_tokens() {
    let app = sqlite_app().await;
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
    assert_dead(&app, &b_key).await;
    app.assert_works(&s(&via_b["token"])).await;
    // Again: there is no live client to revoke.
    jeton(&app.url, &["client", "revoke", &b_id]).fails();

    // --revoke-user-tokens: the tokens issued through it die too.
    jeton(
        &app.url,
        &["client", "revoke", &a_id, "--revoke-user-tokens"],
    )
    .ok();
    assert_dead(&app, &a_key).await;
    assert_dead(&app, &s(&via_a["token"])).await;
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
    let app = sqlite_app().await;
    let pk = app.publishable_key().await;
    app.register(&pk, "ann@example.com", PASSWORD).await;
    let first = app.login(&pk, "ann@example.com", PASSWORD).await;
    let second = app.login(&pk, "ann@example.com", PASSWORD).await;
    let token = s(&first["token"]);
    let id = s(&first["token_id"]);

    let run = jeton_traced(&app.url, &["token", "revoke", &id]);
    run.ok().stderr_hides(&token);
    assert!(!run.stdout.contains(&token));
    assert_dead(&app, &token).await;
    app.assert_works(&s(&second["token"])).await;

    // Again, unknown, malformed: no live token has that id.
    for unknown in [id.as_str(), "01900000-0000-7000-8000-000000000000", "42"] {
        jeton(&app.url, &["token", "revoke", unknown]).fails();
    }
    app.assert_works(&s(&second["token"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_prune_deletes_only_dead_credentials_and_reports_counts() {
    let app = sqlite_app().await;
    let admin = app.admin_key().await;
    let (client_id, pk) = app.publishable_client().await;
    app.register(&pk, "ann@example.com", PASSWORD).await;
    let live = s(&app.login(&pk, "ann@example.com", PASSWORD).await["token"]);
    let gone = s(&app.login(&pk, "ann@example.com", PASSWORD).await["token"]);
    app.post("/api/v1/auth/logout")
        .bearer(&gone)
        .send()
        .await
        .expect(204);
    // One rotated-out client key.
    let res = app
        .post(&format!("/api/v1/admin/clients/{client_id}/keys"))
        .bearer(&admin)
        .json(json!({"previous_key_expires_in_seconds": 0}))
        .send()
        .await;
    res.expect(201);
    let new_pk = s(&res.json()["key"]);

    // By default only what has been dead for a day goes: nothing yet.
    let run = jeton(&app.url, &["token", "prune"]);
    run.ok();
    assert!(
        run.stdout.contains("user tokens") && run.stdout.contains("client keys"),
        "{}",
        run.stdout
    );
    assert_eq!(numbers(&run.stdout), [0, 0], "{}", run.stdout);

    let run = jeton(&app.url, &["token", "prune", "--expired-for", "0s"]);
    run.ok();
    assert_eq!(numbers(&run.stdout), [1, 1], "{}", run.stdout);
    // What is alive is untouched.
    app.assert_works(&live).await;
    app.assert_works(&new_pk).await;
    assert_dead(&app, &gone).await;
    assert_dead(&app, &pk).await;

    let run = jeton(&app.url, &["token", "prune", "--expired-for", "0s"]);
    run.ok();
    assert_eq!(numbers(&run.stdout), [0, 0], "{}", run.stdout);
    // A duration that is not one.
    let run = jeton(&app.url, &["token", "prune", "--expired-for", "soon"]);
    assert!(!run.output.status.success());
    assert!(run.stdout.is_empty());
}

// ---------------------------------------------------------------- PostgreSQL

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_create_and_revoke_on_postgres() {
    let Some((url, _, drop)) = fresh_database(Backend::Postgres).await else {
        return;
    };
    let _guard = DropDatabase(Some(drop.expect("a PostgreSQL database to drop")));

    // The CLI migrates the empty database itself.
    let (id, key) = create_client(
        &url,
        &[
            "--name",
            "Backend",
            "--kind",
            "secret",
            "--ability",
            "admin",
        ],
    );
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
    // Another process revoked it: dead within one second (spec §4).
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
    let first = demo::seed(&app.db).await.unwrap();
    assert_eq!(first.products_added, 24);
    let first_key = first.publishable_key.expose_secret().to_owned();
    assert!(first_key.starts_with("jt_pk_"));
    app.assert_works(&first_key).await;

    let second = demo::seed(&app.db).await.unwrap();
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
    assert_eq!(demo_client.allowed_origins, [demo::DEMO_ORIGIN]);
    assert_eq!(demo_client.keys.len(), 1);
    assert_eq!(demo_client.keys[0].last4, last4(&second_key));
    app.assert_works(&second_key).await;
    assert_dead(&app, &first_key).await;

    // One demo customer, whose printed credentials work.
    let login = app
        .login(&second_key, demo::DEMO_EMAIL, demo::DEMO_PASSWORD)
        .await;
    let token = s(&login["token"]);
    let me = app.get("/api/v1/me").bearer(&token).send().await;
    me.expect(200);
    assert_eq!(me.json()["email"], demo::DEMO_EMAIL);
    app.post("/api/v1/customers")
        .bearer(&second_key)
        .json(json!({"email": demo::DEMO_EMAIL, "password": "another password", "name": "X"}))
        .send()
        .await
        .expect_problem(409, "email_taken");
}
