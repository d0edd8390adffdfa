//! Hardening (issue #5): login and registration throttles, account
//! enumeration, a login flood beside token-authenticated reads, header
//! hygiene (in-process and over a real socket), and query strings kept out
//! of the log. SQLite and PostgreSQL throughout.

use crate::{on_both_databases, support};

use std::{sync::Arc, time::Duration};

use jeton::{config::Config, throttle::ThrottleSettings};
use serde_json::{Value, json};
use support::{Res, TestApp, captured_log};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASSWORD: &str = "correct horse battery";
const WRONG: &str = "wrong horse battery";

/// Runs `async fn name(app)` on both databases with the app built from
/// `config()` (a function of this module).
macro_rules! on_both_databases_with {
    ($($name:ident => $config:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    if let Some(app) = crate::support::spawn_app_with(crate::support::Backend::Sqlite, super::$config()).await {
                        super::$name(app).await;
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    if let Some(app) = crate::support::spawn_app_with(crate::support::Backend::Postgres, super::$config()).await {
                        super::$name(app).await;
                    }
                }
            }
        )*
    };
}

// ---------------------------------------------------------------- configs

/// The default limits (10 failures per email) over a 3-second window.
/// Three seconds rather than two: the ten failures that start the window
/// each cost an Argon2 verification, and the window must not end before
/// the eleventh attempt on a slow, busy test machine.
const SHORT_WINDOW: Duration = Duration::from_secs(3);

fn short_window() -> Config {
    Config {
        throttle: ThrottleSettings {
            window: SHORT_WINDOW,
            ..ThrottleSettings::default()
        },
        ..Config::default()
    }
}

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

on_both_databases_with!(
    wrong_passwords_are_throttled_and_the_owner_gets_in_after_the_window => short_window,
);

on_both_databases!(
    a_successful_login_clears_the_failures,
    unknown_email_and_wrong_password_look_the_same,
    throttled_unknown_and_known_emails_look_the_same,
);

on_both_databases_with!(
    failures_from_one_ip_are_throttled_across_emails => behind_a_proxy,
    registrations_are_limited_per_ip => behind_a_proxy,
);

async fn wrong_passwords_are_throttled_and_the_owner_gets_in_after_the_window(app: TestApp) {
    let pk = app.publishable_key().await;
    app.register(&pk, "owner@example.com", PASSWORD).await;

    let mut statuses = Vec::new();
    for attempt in 1..=25 {
        let res = login_as(&app, &pk, "owner@example.com", WRONG).await;
        if attempt <= 10 {
            expect_wrong_credentials(&res);
        } else {
            expect_throttled(&res, 10, SHORT_WINDOW.as_secs());
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
    expect_throttled(&res, 10, SHORT_WINDOW.as_secs());
    // Another account is not affected.
    app.register(&pk, "neighbour@example.com", PASSWORD).await;
    login_as(&app, &pk, "neighbour@example.com", PASSWORD)
        .await
        .expect(201);

    // After the window the owner gets in: lockout is bounded by one window.
    tokio::time::sleep(SHORT_WINDOW + Duration::from_millis(100)).await;
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
    let res = login_from(&app, &pk, "fresh@example.com", WRONG, Some("203.0.113.6")).await;
    expect_wrong_credentials(&res);
    login_from(
        &app,
        &pk,
        "victim@example.com",
        PASSWORD,
        Some("203.0.113.6"),
    )
    .await
    .expect(201);
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
            let res = app.get("/api/v1/products").bearer(&token).send().await;
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

// ================================================================ header hygiene

on_both_databases!(
    header_values_with_non_ascii_bytes_are_400,
    control_bytes_in_headers_are_refused_by_the_server,
    oversized_headers_are_431,
);

async fn header_values_with_non_ascii_bytes_are_400(app: TestApp) {
    let pk = app.publishable_key().await;
    for (name, value, code) in [
        ("user-agent", "caf\u{e9}", "invalid_header"),
        ("x-note", "\u{202e}reversed", "invalid_header"),
        ("origin", "https://b\u{fc}cher.example", "invalid_header"),
        // The two headers with their own documented answer keep it.
        ("authorization", "Bearer jt_pk_\u{e9}", "invalid_request"),
        (
            "idempotency-key",
            "key-\u{1f600}",
            "invalid_idempotency_key",
        ),
    ] {
        let mut req = app.get("/api/v1/products");
        if name != "authorization" {
            req = req.bearer(&pk);
        }
        let res = req.header(name, value).send().await;
        res.expect_problem(400, code);
        let body = res.json();
        if code == "invalid_header" {
            assert!(
                body["detail"].as_str().unwrap().contains(name),
                "names the header: {body}"
            );
        }
        assert!(!res.text().contains(value), "never echoes the value");
        assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
        assert_eq!(
            res.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert!(res.header("x-request-id").is_some());
    }
    // Tab and every visible ASCII byte are fine.
    let visible: String = (0x20u8..=0x7e).map(char::from).collect();
    app.get("/api/v1/products")
        .bearer(&pk)
        .header("x-note", &format!("a\tb {visible}"))
        .send()
        .await
        .expect(200);
}

/// Serves the app on a real socket; returns its address.
async fn serve(app: &TestApp) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = app.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

/// Sends raw bytes as a request; returns the status code and the rest of
/// the response.
async fn raw_request(address: std::net::SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // A server that refuses a request early may close before reading all
    // of it: a failed write, or a reset after the answer, is expected then.
    let _ = stream.write_all(request).await;
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("the server answers and closes")
        {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    (status, text)
}

fn request_with_header(key: &str, header: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "GET /api/v1/products HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {key}\r\n"
    )
    .into_bytes();
    request.extend_from_slice(header);
    request.extend_from_slice(b"\r\n\r\n");
    request
}

async fn control_bytes_in_headers_are_refused_by_the_server(app: TestApp) {
    let pk = app.publishable_key().await;
    let address = serve(&app).await;
    let (status, _) = raw_request(address, &request_with_header(&pk, b"X-Note: fine")).await;
    assert_eq!(status, 200, "the raw request itself is good");
    // hyper refuses these while parsing, before any of Jeton's code runs,
    // with a bare 400.
    for header in [
        &b"X-Note: a\x01b"[..],
        b"X-Note: a\x00b",
        b"X-Note: a\x7fb",
        b"X-Note: a\x1b[31mred",
        b"X-Note: a\rb",
        b"X-Note: a\nb",
    ] {
        let (status, text) = raw_request(address, &request_with_header(&pk, header)).await;
        assert_eq!(status, 400, "{header:?}: {text}");
    }
    // Bytes of 0x80 and up pass hyper; Jeton refuses them with a problem.
    let (status, text) =
        raw_request(address, &request_with_header(&pk, b"X-Note: caf\xc3\xa9")).await;
    assert_eq!(status, 400);
    assert!(text.contains("\"code\":\"invalid_header\""), "{text}");
    let (status, text) = raw_request(address, &request_with_header(&pk, b"X-Note: \xff")).await;
    assert_eq!(status, 400);
    assert!(text.contains("\"code\":\"invalid_header\""), "{text}");
}

async fn oversized_headers_are_431(app: TestApp) {
    let pk = app.publishable_key().await;
    let big = "a".repeat(jeton::http::hygiene::MAX_HEADER_VALUE_BYTES + 1);
    let res = app
        .get("/api/v1/products")
        .bearer(&pk)
        .header("x-note", &big)
        .send()
        .await;
    res.expect_problem(431, "headers_too_large");
    // Many headers that are each fine, but too much together.
    let mut req = app.get("/api/v1/products").bearer(&pk);
    let chunk = "b".repeat(4000);
    for n in 0..10 {
        req = req.header(&format!("x-note-{n}"), &chunk);
    }
    req.send().await.expect_problem(431, "headers_too_large");
    // An oversized Authorization header is refused before it is parsed.
    let res = app
        .get("/api/v1/products")
        .header("authorization", &format!("Bearer {}", "a".repeat(2000)))
        .send()
        .await;
    res.expect_problem(400, "invalid_request");
    // Over a real socket too, and the server stays up.
    let address = serve(&app).await;
    let (status, text) = raw_request(
        address,
        &request_with_header(&pk, format!("X-Note: {big}").as_bytes()),
    )
    .await;
    assert_eq!(status, 431, "{text}");
    assert!(text.contains("\"code\":\"headers_too_large\""), "{text}");
    // Past hyper's own buffer (about 400 KB), hyper answers a bare 431.
    let huge = format!("X-Note: {}", "h".repeat(1024 * 1024));
    let (status, text) = raw_request(address, &request_with_header(&pk, huge.as_bytes())).await;
    assert_eq!(status, 431, "{}", &text[..text.len().min(300)]);
    let (status, _) = raw_request(address, &request_with_header(&pk, b"X-Note: ok")).await;
    assert_eq!(status, 200);
}

// ================================================================ secret hygiene

on_both_databases!(query_strings_never_reach_the_log);

async fn query_strings_never_reach_the_log(app: TestApp) {
    let pk = app.publishable_key().await;
    app.get("/api/v1/products?q=SECRETQUERY123")
        .bearer(&pk)
        .send()
        .await
        .expect(200);
    // Refused requests are logged too, without their query.
    app.get("/api/v1/products?access_token=SECRETQUERY456")
        .bearer(&pk)
        .send()
        .await
        .expect_problem(400, "invalid_request");
    app.get("/api/v1/products?limit=SECRETQUERY789")
        .bearer(&pk)
        .send()
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
