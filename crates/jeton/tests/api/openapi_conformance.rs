//! The OpenAPI document against a real `jeton serve` on a fresh SQLite
//! database: it validates as OpenAPI 3.1 (`openapi-spec-validator`), its
//! examples match their schemas (`openapi/check_examples.py`),
//! schemathesis finds no failure with every check and a credential of the
//! right kind for each operation (configuration in
//! `openapi/schemathesis.toml`), and a client generated from it
//! (`openapi-python-client`) runs the README's walkthrough
//! (`openapi/walkthrough.py`).
//!
//! The tools come from PyPI into a virtualenv (`.ci/python-tools.txt`),
//! found through `JETON_PYTHON_VENV` (`.ci/run` makes one and sets it) or at
//! `.venv` in the workspace. Without them these tests print a `NOTICE:` and
//! pass, unless `JETON_REQUIRE_PYTHON_TOOLS=1` (as in CI): then they fail.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::{Value, json};

use crate::support::{
    Backend,
    process::{Server, keyed_database, run, try_run},
    secret_scanning,
};

const TOOLS: [&str; 3] = [
    "schemathesis",
    "openapi-spec-validator",
    "openapi-python-client",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace")
}

/// The virtualenv's `bin` directory, if it has every tool.
fn tools() -> Option<PathBuf> {
    let venv = std::env::var_os("JETON_PYTHON_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv"));
    let bin = venv.join("bin");
    let missing: Vec<&str> = TOOLS
        .into_iter()
        .filter(|tool| !bin.join(tool).is_file())
        .collect();
    if missing.is_empty() {
        return Some(bin);
    }
    let message = format!(
        "the OpenAPI conformance tests need {} in the virtualenv {} \
         (pip install -r .ci/python-tools.txt; JETON_PYTHON_VENV names it)",
        missing.join(", "),
        venv.display()
    );
    if std::env::var("JETON_REQUIRE_PYTHON_TOOLS").is_ok_and(|value| value == "1") {
        panic!("{message}");
    }
    eprintln!("NOTICE: skipped: {message}");
    None
}

fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/openapi")
}

/// A server on a fresh database with keys of both kinds, a product, and
/// three customers with a user token each.
struct Shop {
    server: Server,
    pk: String,
    sk: String,
    /// The admin key's client, and an access token of it.
    client_id: String,
    at: String,
    ut: String,
    ut_logout: String,
    ut_revoke_all: String,
    _keys: crate::support::process::KeyedDatabase,
    _scanning_keys: tempfile::TempDir,
}

async fn shop() -> Shop {
    // The admin key may also introspect, so that every operation has a
    // credential that succeeds.
    let keys = keyed_database(Backend::Sqlite, &["tokens:introspect"])
        .await
        .expect("SQLite is always there");
    // Schemathesis sends thousands of requests with one customer's token:
    // the per-customer limits are raised for the run (their 429s are
    // declared, with their `RateLimit-*` headers, and tested elsewhere).
    // GitHub's secret scanning reports are taken: schemathesis cannot sign
    // one, so each is the documented 401.
    let scanning_dir = tempfile::tempdir().unwrap();
    let scanning_keys = scanning_dir.path().join("secret-scanning-keys.json");
    std::fs::write(
        &scanning_keys,
        secret_scanning::keys_json(&[(secret_scanning::KEY_ID, &secret_scanning::github_key())]),
    )
    .unwrap();
    let server = Server::start(
        &keys.url,
        &[
            "--customer-rate-limit",
            "1000000",
            "--customer-order-limit",
            "1000000",
            "--guest-issuance-per-ip",
            "1000000",
            "--secret-scanning-keys",
            scanning_keys.to_str().unwrap(),
        ],
    )
    .await;
    let product = json!({"sku": "MUG-1", "name": "Mug", "price": {"amount": 1200, "currency": "EUR"}, "stock": 1000000});
    server
        .call(
            "POST",
            "/api/v1/admin/products",
            Some(&keys.admin),
            Some(&product),
        )
        .await
        .expect(201);
    let mut tokens = Vec::new();
    for email in ["fuzz@example.com", "logout@example.com", "all@example.com"] {
        let customer = json!({"email": email, "password": "correct horse", "name": "Fuzz"});
        server
            .call("POST", "/api/v1/customers", Some(&keys.pk), Some(&customer))
            .await
            .expect(201);
        let login = json!({"email": email, "password": "correct horse"});
        let reply = server
            .call("POST", "/api/v1/auth/login", Some(&keys.pk), Some(&login))
            .await;
        reply.expect(201);
        tokens.push(reply.json()["token"].as_str().unwrap().to_owned());
    }
    let clients = server
        .call("GET", "/api/v1/admin/clients", Some(&keys.admin), None)
        .await;
    clients.expect(200);
    let client_id = clients.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|client| client["kind"] == "secret")
        .map(|client| client["id"].as_str().unwrap().to_owned())
        .expect("the admin client");
    let token = server
        .oauth(
            "/oauth/token",
            (&client_id, &keys.admin),
            "grant_type=client_credentials",
        )
        .await;
    token.expect(200);
    // Staff members made on the command line, who sign in, and whose
    // sessions work against the real server (schemathesis signs in as
    // them: see `credentials.py`).
    for email in [STAFF_EMAIL, STAFF_PASSWORD_EMAIL] {
        crate::support::process::staff_created(&keys.url, email, "Owner", "owner", STAFF_PASSWORD);
    }
    let login = json!({"email": STAFF_EMAIL, "password": STAFF_PASSWORD});
    server
        .call("POST", "/api/v1/staff/login", None, Some(&login))
        .await
        .expect(201);
    let db = jeton::store::Db::connect(&keys.url, &jeton::store::DbOptions::default())
        .await
        .unwrap();
    let member = db
        .find_staff_login(jeton::store::staff::StaffKey::Email(STAFF_EMAIL))
        .await
        .unwrap()
        .expect("the staff member")
        .member;
    // The answers' heads come back lower-cased here, the session's token
    // with them: this session is started in the store, as a sign-in does.
    let audit = jeton::store::audit::Audit::cli();
    let session = db
        .sign_in_staff(&member, false, &audit)
        .await
        .unwrap()
        .unwrap();
    let cookie = format!("jeton_staff={}", session.issued.token.expose_secret());
    let (status, text) = server
        .get("/api/v1/staff/me", &[("cookie", cookie.as_str())])
        .await;
    assert_eq!(status, 200, "the staff session works: {text}");
    db.close().await;
    Shop {
        at: token.json()["access_token"].as_str().unwrap().to_owned(),
        client_id,
        pk: keys.pk.clone(),
        sk: keys.admin.clone(),
        ut: tokens.remove(0),
        ut_logout: tokens.remove(0),
        ut_revoke_all: tokens.remove(0),
        server,
        _keys: keys,
        _scanning_keys: scanning_dir,
    }
}

/// The staff members schemathesis signs in as: one for every staff
/// operation but the password change, which has its own (its failures are
/// throttled per member). Not the documented examples' password, which
/// schemathesis sends.
const STAFF_EMAIL: &str = "owner@shop.example";
const STAFF_PASSWORD_EMAIL: &str = "password@shop.example";
const STAFF_PASSWORD: &str = "staff horse battery";

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_validates_and_schemathesis_finds_nothing() {
    let Some(bin) = tools() else { return };
    let mut shop = shop().await;
    let dir = tempfile::tempdir().unwrap();
    let (status, text) = shop.server.get("/openapi.json", &[]).await;
    assert_eq!(status, 200);
    let document = text.split_once("\r\n\r\n").unwrap().1;
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, document).unwrap();
    run(
        "openapi-spec-validator",
        Command::new(bin.join("openapi-spec-validator")).arg(&path),
    );
    run(
        "examples against their schemas",
        Command::new(bin.join("python"))
            .arg(here().join("check_examples.py"))
            .arg(&path),
    );

    let url = format!("http://{}/openapi.json", shop.server.addr);
    let (success, out) = try_run(
        "schemathesis",
        Command::new(bin.join("schemathesis"))
            .arg("--config-file")
            .arg(here().join("schemathesis.toml"))
            // Every check but use-after-free: a revoked client stays
            // readable by design (see `schemathesis.toml`).
            .args([
                "run",
                &url,
                "--checks",
                "all",
                "--exclude-checks",
                "use_after_free",
            ])
            .arg("--report-dir")
            .arg(dir.path())
            .env("JETON_PK", &shop.pk)
            .env("JETON_SK", &shop.sk)
            .env("JETON_CLIENT_ID", &shop.client_id)
            .env("JETON_AT", &shop.at)
            .env("JETON_UT", &shop.ut)
            .env("JETON_UT_LOGOUT", &shop.ut_logout)
            .env("JETON_UT_REVOKE_ALL", &shop.ut_revoke_all)
            .env("JETON_URL", format!("http://{}", shop.server.addr))
            .env("JETON_STAFF_EMAIL", STAFF_EMAIL)
            .env("JETON_STAFF_PASSWORD_EMAIL", STAFF_PASSWORD_EMAIL)
            .env("JETON_STAFF_PASSWORD", STAFF_PASSWORD)
            .env("SCHEMATHESIS_HOOKS", "credentials")
            .env("PYTHONPATH", here())
            .env("NO_COLOR", "1")
            .current_dir(dir.path()),
    );
    let exited = shop.server.child.try_wait().unwrap();
    assert!(
        success && exited.is_none(),
        "schemathesis failed (the server {}); the server's log ends:\n{}",
        exited.map_or("runs".to_owned(), |status| format!("exited with {status}")),
        tail(&shop.server.log_text(), 40)
    );
    // Every operation of the document was tested.
    let doc: Value = serde_json::from_str(document).unwrap();
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert!(
        out.contains(&format!("{operations} selected"))
            || out.contains(&format!("{operations}/{operations}")),
        "schemathesis did not select all {operations} operations"
    );
    assert!(!shop.server.log_text().contains("panicked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_client_runs_the_walkthrough() {
    let Some(bin) = tools() else { return };
    let shop = shop().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{}/openapi.json", shop.server.addr);
    run(
        "openapi-python-client generate",
        Command::new(bin.join("openapi-python-client"))
            .args(["generate", "--url", &url, "--meta", "none", "--output-path"])
            .arg(dir.path().join("jeton_client"))
            .arg("--config")
            .arg(here().join("python-client.yaml"))
            .current_dir(dir.path()),
    );
    run(
        "the walkthrough through the generated client",
        Command::new(bin.join("python"))
            .arg(here().join("walkthrough.py"))
            .env("PYTHONPATH", dir.path())
            .env("JETON_URL", format!("http://{}", shop.server.addr))
            .env("JETON_PK", &shop.pk)
            .env("JETON_SK", &shop.sk),
    );
}
