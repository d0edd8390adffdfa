//! Leaked credentials (API.md §15): GitHub's signed secret scanning reports
//! and `POST /admin/leaks`. The tests play GitHub
//! ([`crate::support::secret_scanning`]).

use std::{path::PathBuf, sync::OnceLock, time::Instant};

use jeton::{
    config::Config,
    domain::{client::ClientKind, staff::Role},
    identity::TOKENS,
};
use jeton_auth::TokenKind;
use p256::ecdsa::SigningKey;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::{
    on_both_databases,
    support::{
        Backend, Res, TestApp,
        process::jeton,
        s,
        secret_scanning::{KEY_ID, github_key, keys_json, signature, stranger_key},
        timestamp,
    },
};

const PATH: &str = "/api/v1/secret-scanning/github";
/// A folder of keys files for this test process.
fn keys_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("jeton-secret-scanning")
            .tempdir()
            .expect("a temporary folder")
            .keep()
    })
}

/// The keys file `name`, listing GitHub's key.
fn keys_file(name: &str) -> PathBuf {
    let path = keys_dir().join(name);
    std::fs::write(&path, keys_json(&[(KEY_ID, &github_key())])).expect("write the keys file");
    path
}

/// An app that takes GitHub's reports, signed by the keys of the file
/// `name`.
fn with_keys(name: &str) -> Config {
    Config {
        secret_scanning_keys: Some(keys_file(name)),
        ..Config::default()
    }
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A report body as GitHub sends it, with a field GitHub might add.
fn report_body(tokens: &[(&str, &str)]) -> Vec<u8> {
    let entries: Vec<Value> = tokens
        .iter()
        .map(|(token, kind)| {
            json!({
                "token": token,
                "type": kind,
                "url": "https://github.com/octo/shop/blob/abc123/.env",
                "source": "content",
                "reported_by": "secret-scanning",
            })
        })
        .collect();
    serde_json::to_vec(&entries).unwrap()
}

impl TestApp {
    /// Sends `body` as GitHub would, signed by `key` under `key_id`.
    async fn github_report(&self, body: &[u8], key_id: &str, key: &SigningKey) -> Res {
        self.post(PATH)
            .header("github-public-key-identifier", key_id)
            .header("github-public-key-signature", &signature(key, body))
            .raw("application/json", body.to_vec())
            .send()
            .await
    }

    /// The `credential.exposed` audit events' details, oldest first.
    async fn exposed_details(&self) -> Vec<String> {
        let rows: Vec<(Option<String>,)> = sqlx::query_as(
            "SELECT detail FROM audit_events WHERE action = 'credential.exposed' ORDER BY id",
        )
        .fetch_all(&self.side_pool().await)
        .await
        .unwrap();
        rows.into_iter().map(|(d,)| d.unwrap_or_default()).collect()
    }

    async fn leak_reports(&self) -> i64 {
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM leak_reports")
            .fetch_one(&self.side_pool().await)
            .await
            .unwrap();
        count
    }
}

/// The labels of an answer, in order.
fn labels(answer: &Value) -> Vec<String> {
    answer
        .as_array()
        .expect("an array")
        .iter()
        .map(|entry| s(&entry["label"]))
        .collect()
}

on_both_databases!(config = with_keys("report.json"); a_signed_report_revokes_live_credentials_and_flags_publishable_keys);

async fn a_signed_report_revokes_live_credentials_and_flags_publishable_keys(app: TestApp) {
    let admin = app.admin_key().await;
    let (secret_client, secret) = app
        .client(ClientKind::Secret, &["products:read"], &[])
        .await;
    let access = app.access_token(&secret_client, &secret, None).await;
    let (_, user_token) = app.customer("leaked@example.com").await;
    let (publishable_client, publishable) = app.publishable_client().await;
    let unknown = TOKENS.generate(TokenKind::Secret);
    for token in [&secret, &access, &user_token, &publishable] {
        app.assert_works(token).await;
    }
    let sent = [
        (secret.as_str(), "jt_secret_key"),
        (access.as_str(), "jt_access_token"),
        (user_token.as_str(), "jt_user_token"),
        (publishable.as_str(), "jt_publishable_key"),
        (unknown.expose_secret(), "jt_secret_key"),
        ("jt_sk_not-a-token", "jt_secret_key"),
    ];
    let body = report_body(&sent);

    let res = app.github_report(&body, KEY_ID, &github_key()).await;
    res.expect(200);
    let answer = res.json();
    assert_eq!(
        labels(&answer),
        [
            "true_positive",
            "true_positive",
            "true_positive",
            "true_positive",
            "false_positive",
            "false_positive"
        ]
    );
    for ((token, kind), entry) in sent.iter().zip(answer.as_array().unwrap()) {
        assert_eq!(entry["token_hash"], sha256_hex(token));
        assert_eq!(entry["token_type"], *kind);
        assert_eq!(entry.as_object().unwrap().len(), 3, "{entry}");
    }

    // Revoked at once: the secret key, its access token, the user token.
    app.assert_dead(&secret).await;
    app.assert_dead(&access).await;
    app.assert_dead(&user_token).await;
    // The publishable key is public by design: it keeps working, flagged.
    app.assert_works(&publishable).await;
    let shown = app.get_client(&admin, &publishable_client).await;
    let exposed_at = timestamp(&shown["keys"][0]["exposed_at"]);
    assert!(exposed_at <= app.now() + time::Duration::seconds(1));

    // One audit event per live credential, naming where it was found.
    let details = app.exposed_details().await;
    assert_eq!(details.len(), 4, "{details:?}");
    for detail in &details {
        assert!(detail.contains("source `content`"), "{detail}");
        assert!(
            detail.contains("url `https://github.com/octo/shop/blob/abc123/.env`"),
            "{detail}"
        );
        assert!(!detail.contains(&secret) && !detail.contains(&user_token));
    }
    assert!(details.iter().any(|d| d.starts_with("secret key revoked")));
    assert!(details.iter().any(|d| d.starts_with("user token revoked")));
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("access token revoked"))
    );
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("publishable key flagged"))
    );

    // The same report again: its first answer, nothing more done.
    let again = app.github_report(&body, KEY_ID, &github_key()).await;
    again.expect(200);
    assert_eq!(again.json(), answer);
    assert_eq!(app.exposed_details().await.len(), 4);
    let shown = app.get_client(&admin, &publishable_client).await;
    assert_eq!(timestamp(&shown["keys"][0]["exposed_at"]), exposed_at);
    // A revoked token reported anew in another report: still its first
    // label, the one it had while live.
    let alone = report_body(&[(secret.as_str(), "jt_secret_key")]);
    let res = app.github_report(&alone, KEY_ID, &github_key()).await;
    assert_eq!(labels(&res.expect(200).json()), ["true_positive"]);
    assert_eq!(app.leak_reports().await, 6);
}

on_both_databases!(config = with_keys("refusals.json"); an_unsigned_or_badly_signed_report_is_refused_and_changes_nothing);

async fn an_unsigned_or_badly_signed_report_is_refused_and_changes_nothing(app: TestApp) {
    let (_, secret) = app
        .client(ClientKind::Secret, &["products:read"], &[])
        .await;
    let (_, user_token) = app.customer("careful@example.com").await;
    let body = report_body(&[
        (secret.as_str(), "jt_secret_key"),
        (user_token.as_str(), "jt_user_token"),
    ]);
    let signed = signature(&github_key(), &body);

    // The body changed by one byte after signing (still JSON, still a
    // report).
    let mut changed = body.clone();
    let at = changed
        .windows(6)
        .position(|w| w == b"abc123")
        .expect("the URL is in the body");
    changed[at + 2] = b'd';
    app.post(PATH)
        .header("github-public-key-identifier", KEY_ID)
        .header("github-public-key-signature", &signed)
        .raw("application/json", changed)
        .send()
        .await
        .expect_problem(401, "invalid_signature");
    // No signature, or no key identifier.
    let res = app
        .post(PATH)
        .header("github-public-key-identifier", KEY_ID)
        .raw("application/json", body.clone())
        .send()
        .await;
    res.expect_problem(401, "invalid_signature");
    assert_eq!(
        res.header("www-authenticate").as_deref(),
        Some(r#"Github-Public-Key-Signature realm="jeton""#)
    );
    app.post(PATH)
        .header("github-public-key-signature", &signed)
        .raw("application/json", body.clone())
        .send()
        .await
        .expect_problem(401, "invalid_signature");
    // A key the file does not list, under its own name or GitHub's.
    app.github_report(&body, "unknown-key", &stranger_key())
        .await
        .expect_problem(401, "invalid_signature");
    app.github_report(&body, KEY_ID, &stranger_key())
        .await
        .expect_problem(401, "invalid_signature");
    // A signature that is not base64 DER.
    app.post(PATH)
        .header("github-public-key-identifier", KEY_ID)
        .header("github-public-key-signature", "not base64!")
        .raw("application/json", body.clone())
        .send()
        .await
        .expect_problem(401, "invalid_signature");

    app.assert_works(&secret).await;
    app.assert_works(&user_token).await;
    assert_eq!(app.leak_reports().await, 0);
    assert!(app.exposed_details().await.is_empty());

    // Signed, but not a report: looked at only now.
    let not_a_report = br#"{"token": "x"}"#;
    app.github_report(not_a_report, KEY_ID, &github_key())
        .await
        .expect_problem(422, "validation_failed");
    let too_many = report_body(&vec![("jt_sk_x", "jt_secret_key"); 1001]);
    app.github_report(&too_many, KEY_ID, &github_key())
        .await
        .expect_problem(422, "validation_failed");
}

on_both_databases!(config = with_keys("limit.json"); reports_are_limited_per_client_ip);

async fn reports_are_limited_per_client_ip(app: TestApp) {
    let body = report_body(&[("jt_sk_nothing", "jt_secret_key")]);
    let limit = jeton::throttle::SECRET_SCANNING_REPORTS_PER_MINUTE;
    // Unsigned reports count too: the limit is checked before the
    // signature. The limit refills as real time passes, so the test sends
    // until it is refused rather than exactly one more than the limit.
    let mut sent = 0;
    let refused = loop {
        let res = app
            .post(PATH)
            .raw("application/json", body.clone())
            .send()
            .await;
        if res.status != 401 || sent > 10 * limit {
            break res;
        }
        sent += 1;
    };
    refused.expect_problem(429, "rate_limited");
    assert!(refused.header("retry-after").is_some());
    assert!(sent >= limit, "refused after {sent}");
}

on_both_databases!(without_keys_the_endpoint_is_not_found);

async fn without_keys_the_endpoint_is_not_found(app: TestApp) {
    let (_, secret) = app
        .client(ClientKind::Secret, &["products:read"], &[])
        .await;
    let body = report_body(&[(secret.as_str(), "jt_secret_key")]);
    app.github_report(&body, KEY_ID, &github_key())
        .await
        .expect_problem(404, "not_found");
    app.assert_works(&secret).await;
}

on_both_databases!(the_keys_file_is_read_again_when_it_changes);

async fn the_keys_file_is_read_again_when_it_changes(backend: Backend) {
    // A file of its own per database: this test rewrites it.
    let name = format!("rotation-{backend:?}.json");
    let Some(app) = TestApp::spawn_with(backend, with_keys(&name)).await else {
        return;
    };
    let path = keys_dir().join(name);
    let body = report_body(&[("jt_sk_nothing", "jt_secret_key")]);
    app.github_report(&body, KEY_ID, &github_key())
        .await
        .expect(200);
    app.github_report(&body, "next", &stranger_key())
        .await
        .expect_problem(401, "invalid_signature");
    // GitHub rotates: the file now lists both keys.
    std::fs::write(
        &path,
        keys_json(&[(KEY_ID, &github_key()), ("next", &stranger_key())]),
    )
    .unwrap();
    app.github_report(&body, "next", &stranger_key())
        .await
        .expect(200);
    // A file that no longer parses leaves the keys last read.
    std::fs::write(&path, "{\"public_keys\": [").unwrap();
    app.github_report(&body, "next", &stranger_key())
        .await
        .expect(200);
    // The old key dropped.
    std::fs::write(&path, keys_json(&[("next", &stranger_key())])).unwrap();
    app.github_report(&body, KEY_ID, &github_key())
        .await
        .expect_problem(401, "invalid_signature");
}

on_both_databases!(config = with_keys("thousand.json"); a_report_of_a_thousand_tokens_is_answered_in_order);

async fn a_report_of_a_thousand_tokens_is_answered_in_order(app: TestApp) {
    let mut live = Vec::new();
    for _ in 0..10 {
        live.push(
            app.client(ClientKind::Secret, &["products:read"], &[])
                .await
                .1,
        );
    }
    let unknown: Vec<String> = (0..990)
        .map(|i| {
            if i % 2 == 0 {
                TOKENS
                    .generate(TokenKind::Secret)
                    .expose_secret()
                    .to_owned()
            } else {
                format!("jt_ut_{i:036}")
            }
        })
        .collect();
    let tokens: Vec<(&str, &str)> = live
        .iter()
        .chain(&unknown)
        .map(|token| (token.as_str(), "jt_secret_key"))
        .collect();
    let body = report_body(&tokens);

    let started = Instant::now();
    let res = app.github_report(&body, KEY_ID, &github_key()).await;
    let took = started.elapsed();
    res.expect(200);
    // The contract's bound is 10 s; the figure goes to docs/BENCHMARKS.md.
    println!(
        "a report of 1000 tokens ({} live) on {:?}: answered in {:?}",
        live.len(),
        app.backend,
        took
    );
    let answer = res.json();
    let got = labels(&answer);
    assert_eq!(got.len(), 1000);
    assert!(got[..10].iter().all(|l| l == "true_positive"));
    assert!(got[10..].iter().all(|l| l == "false_positive"));
    for ((token, _), entry) in tokens.iter().zip(answer.as_array().unwrap()) {
        assert_eq!(entry["token_hash"], sha256_hex(token));
    }
    for key in &live {
        app.assert_dead(key).await;
    }
}

on_both_databases!(admin_leaks_act_as_github_reports_do);

async fn admin_leaks_act_as_github_reports_do(app: TestApp) {
    let admin = app.admin_key().await;
    let (_, secret) = app
        .client(ClientKind::Secret, &["products:read"], &[])
        .await;
    let (publishable_client, publishable) = app.publishable_client().await;
    app.staff_member("owner@shop.example", Role::Owner).await;
    let session = app.staff_sign_in("owner@shop.example").await;
    let tokens = json!([secret, publishable, "hunter2", secret, session.token]);
    let res = app
        .post_json_as(
            "/api/v1/admin/leaks",
            &admin,
            json!({"tokens": tokens, "source": "pastebin", "url": "https://paste.example/x"}),
        )
        .await;
    res.expect(200);
    let answer = res.json();
    assert_eq!(
        labels(&answer),
        [
            "true_positive",
            "true_positive",
            "false_positive",
            "true_positive",
            "true_positive"
        ]
    );
    let types: Vec<String> = answer
        .as_array()
        .unwrap()
        .iter()
        .map(|e| s(&e["token_type"]))
        .collect();
    assert_eq!(
        types,
        ["secret", "publishable", "unknown", "secret", "staff"]
    );
    assert_eq!(answer[2]["token_hash"], sha256_hex("hunter2"));
    app.assert_dead(&secret).await;
    app.assert_works(&publishable).await;
    // A staff session lives in a cookie, but a leaked one is revoked too.
    app.get("/api/v1/staff/me")
        .header("cookie", &session.cookie())
        .send()
        .await
        .expect(401);
    let shown = app.get_client(&admin, &publishable_client).await;
    assert!(shown["keys"][0]["exposed_at"].is_string());
    let details = app.exposed_details().await;
    assert_eq!(details.len(), 3, "{details:?}");
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("staff session revoked"))
    );
    assert!(details.iter().all(|d| d.contains("source `pastebin`")
        && d.contains("url `https://paste.example/x`")));
    // The actor is the admin's key.
    let (actor,): (String,) = sqlx::query_as(
        "SELECT actor_kind FROM audit_events WHERE action = 'credential.exposed' LIMIT 1",
    )
    .fetch_one(&app.side_pool().await)
    .await
    .unwrap();
    assert_eq!(actor, "client_key");

    // Reported again: the first answers, nothing more.
    let res = app
        .post_json_as(
            "/api/v1/admin/leaks",
            &admin,
            json!({"tokens": [secret, "hunter2"], "source": "elsewhere"}),
        )
        .await;
    assert_eq!(
        labels(&res.expect(200).json()),
        ["true_positive", "false_positive"]
    );
    assert_eq!(app.exposed_details().await.len(), 3);

    // The body's bounds.
    for body in [
        json!({"tokens": [], "source": "x"}),
        json!({"tokens": ["a"], "source": " "}),
        json!({"tokens": [""], "source": "x"}),
        json!({"tokens": ["a"], "source": "x", "extra": 1}),
        json!({"tokens": vec!["a"; 1001], "source": "x"}),
    ] {
        app.post_json_as("/api/v1/admin/leaks", &admin, body.clone())
            .await
            .expect_problem(422, "validation_failed");
    }
}

// ---------------------------------------------------------------- the command line

#[test]
fn the_pattern_command_prints_what_github_needs() {
    let dir = tempfile::tempdir().unwrap();
    // It describes the token format: no database is opened.
    let url = format!("sqlite://{}", dir.path().join("never.db").display());
    let run = jeton(
        &url,
        &[
            "secret-scanning",
            "pattern",
            "--public-url",
            "https://api.shop.example",
        ],
    );
    run.ok();
    for kind in ["pk", "sk", "ut", "at", "st", "gt"] {
        assert!(
            run.stdout
                .contains(&format!(r"\bjt_{kind}_[0-9A-Za-z]{{36}}\b")),
            "{}",
            run.stdout
        );
    }
    assert!(
        run.stdout
            .contains(r"\bjt_(?:pk|sk|ut|at|st|gt)_[0-9A-Za-z]{36}\b")
    );
    assert!(run.stdout.contains("CRC-32"));
    assert!(
        run.stdout
            .contains("Endpoint: https://api.shop.example/api/v1/secret-scanning/github")
    );
    assert!(!dir.path().join("never.db").exists());
}

#[test]
fn serve_refuses_a_keys_file_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("jeton.db").display());
    let missing = dir.path().join("missing.json");
    let run = jeton(
        &url,
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--secret-scanning-keys",
            missing.to_str().unwrap(),
        ],
    );
    run.fails();
    assert!(run.stderr.contains("cannot read"), "{}", run.stderr);
    let not_keys = dir.path().join("not-keys.json");
    std::fs::write(
        &not_keys,
        r#"{"public_keys": [{"key_identifier": "a", "key": "not PEM", "is_current": true}]}"#,
    )
    .unwrap();
    let run = jeton(
        &url,
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--secret-scanning-keys",
            not_keys.to_str().unwrap(),
        ],
    );
    run.fails();
    assert!(
        run.stderr.contains("not a P-256 public key"),
        "{}",
        run.stderr
    );
}

on_both_databases!(a_reported_key_is_refused_by_another_process_within_a_second);

/// Two servers on one database: a leak reported to one revokes the key on
/// the other within a second (the revocation moves jeton-auth's change
/// feed, as every revocation does).
async fn a_reported_key_is_refused_by_another_process_within_a_second(backend: Backend) {
    // Declared first, so dropped last: after the servers are gone.
    let Some(database) = crate::support::TestDatabase::create(backend).await else {
        return;
    };
    let url = database.url.clone();
    let created = |ability: &str| {
        let run = jeton(
            &url,
            &[
                "client",
                "create",
                "--name",
                "Backend",
                "--kind",
                "secret",
                "--ability",
                ability,
                "--json",
            ],
        );
        run.ok();
        s(&run.json()["key"])
    };
    let admin = created("clients:write");
    let leaked = created("products:read");
    let a = crate::support::process::Server::start(&url, &[]).await;
    let b = crate::support::process::Server::start(&url, &[]).await;
    let bearer = format!("Bearer {leaked}");
    let (status, text) = b
        .get("/api/v1/products", &[("authorization", bearer.as_str())])
        .await;
    assert_eq!(status, 200, "{text}");
    let report = json!({"tokens": [leaked], "source": "pastebin"});
    let reported = Instant::now();
    a.call("POST", "/api/v1/admin/leaks", Some(&admin), Some(&report))
        .await
        .expect(200);
    crate::support::process::within_a_second(reported, "the other process refuses it", || async {
        let (status, text) = b
            .get("/api/v1/products", &[("authorization", bearer.as_str())])
            .await;
        if status == 401 {
            Ok(())
        } else {
            Err(format!("{status} {text}"))
        }
    })
    .await;
}
