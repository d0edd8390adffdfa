//! The OpenAPI document as a TypeScript developer meets it, against a real
//! `jeton serve` on a fresh SQLite database: every `pattern` compiles with
//! the RegExp `v` flag (as browsers compile `<input pattern>`), Redocly's
//! recommended rules find no error, and a storefront flow written with
//! `openapi-fetch` against the types `openapi-typescript` generates from
//! the live document (`tests/typescript/flow.ts`) type-checks under
//! `strict`, `noUncheckedIndexedAccess` and `exactOptionalPropertyTypes`
//! with no cast, no `any` and no non-null assertion, then runs.
//!
//! The tools are npm packages pinned in `tests/typescript/package-lock.json`
//! (`npm ci` there; `.ci/run` does it) run by `node`. Without them these
//! tests print a `NOTICE:` and pass, unless `JETON_REQUIRE_NODE_TOOLS=1` (as
//! in CI): then they fail.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::{Value, json};

use crate::support::{
    Backend,
    process::{STOREFRONT_ORIGIN, Server, keyed_database, run},
};

const TOOLS: [&str; 3] = ["openapi-typescript", "tsc", "redocly"];

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/typescript")
}

/// `node_modules/.bin` of the TypeScript project, if `node` and every tool
/// are there.
fn tools() -> Option<PathBuf> {
    let bin = project().join("node_modules/.bin");
    let mut missing: Vec<&str> = TOOLS
        .into_iter()
        .filter(|tool| !bin.join(tool).is_file())
        .collect();
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|output| output.status.success()) {
        missing.push("node");
    }
    if missing.is_empty() {
        return Some(bin);
    }
    let message = format!(
        "the TypeScript client tests need {} (node on the PATH; `npm ci` in {})",
        missing.join(", "),
        project().display()
    );
    if std::env::var("JETON_REQUIRE_NODE_TOOLS").is_ok_and(|value| value == "1") {
        panic!("{message}");
    }
    eprintln!("NOTICE: skipped: {message}");
    None
}

/// A server with a storefront key, an admin key and a product; the live
/// document in `dir`.
async fn served(dir: &Path) -> (Server, crate::support::process::KeyedDatabase, PathBuf) {
    let keys = keyed_database(Backend::Sqlite, &[])
        .await
        .expect("SQLite is always there");
    let server = Server::start(&keys.url, &[]).await;
    let product = json!({"sku": "MUG-1", "name": "Mug", "price": {"amount": 1200, "currency": "EUR"}, "stock": 100});
    server
        .call(
            "POST",
            "/api/v1/admin/products",
            Some(&keys.admin),
            Some(&product),
        )
        .await
        .expect(201);
    let (status, text) = server.get("/openapi.json", &[]).await;
    assert_eq!(status, 200);
    let document = text.split_once("\r\n\r\n").unwrap().1;
    let doc: Value = serde_json::from_str(document).unwrap();
    assert_eq!(
        doc["servers"][0]["url"],
        format!("http://{}", server.addr),
        "the document names the server's public URL"
    );
    let path = dir.join("openapi.json");
    std::fs::write(&path, document).unwrap();
    (server, keys, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_compile_for_browsers_and_redocly_finds_no_error() {
    let Some(bin) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_server, _keys, document) = served(dir.path()).await;
    run(
        "patterns with the RegExp v flag",
        Command::new("node")
            .arg(project().join("check-patterns.mjs"))
            .arg(&document),
    );
    // Exit 0: no error; the warnings left are in docs/api-decisions.md.
    run(
        "redocly lint (recommended rules)",
        Command::new(bin.join("redocly"))
            .arg("lint")
            .arg(&document)
            .arg("--config")
            .arg(project().join("redocly.yaml"))
            .args(["--format", "stylish"])
            .env("REDOCLY_TELEMETRY", "off")
            .env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true")
            .env("NO_COLOR", "1"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_client_runs_the_storefront_flow() {
    let Some(bin) = tools() else { return };
    let flow = project().join("flow.ts");
    let counted = run(
        "casts, `any` and `!` in the flow",
        Command::new("node")
            .arg(project().join("count-casts.mjs"))
            .arg(&flow),
    );
    let counted: Value = serde_json::from_str(counted.trim()).unwrap();
    assert_eq!(counted, json!({"as": 0, "any": 0, "nonNull": 0}));

    let dir = tempfile::tempdir().unwrap();
    let (server, keys, document) = served(dir.path()).await;
    // The project, beside the generated types, in a directory of its own.
    let work = dir.path().join("client");
    std::fs::create_dir(&work).unwrap();
    for file in ["flow.ts", "tsconfig.json", "package.json"] {
        std::fs::copy(project().join(file), work.join(file)).unwrap();
    }
    std::os::unix::fs::symlink(project().join("node_modules"), work.join("node_modules")).unwrap();
    run(
        "openapi-typescript",
        Command::new(bin.join("openapi-typescript"))
            .arg(&document)
            .arg("--output")
            .arg(work.join("schema.ts")),
    );
    // The strict settings are in tsconfig.json; nothing is emitted unless
    // the flow type-checks.
    run(
        "tsc --strict",
        Command::new(bin.join("tsc"))
            .arg("--project")
            .arg(work.join("tsconfig.json")),
    );
    let out = run(
        "the flow against the server",
        Command::new("node")
            .arg(work.join("build/flow.js"))
            .env("JETON_URL", format!("http://{}", server.addr))
            .env("JETON_PK", &keys.pk)
            .env("JETON_ORIGIN", STOREFRONT_ORIGIN),
    );
    assert!(out.contains("the typed storefront flow passed"));
    assert!(!server.log_text().contains("panicked"));
}
