//! Client applications done properly (issue #3; spec §1, §4, §6): origin
//! binding, CORS, secret keys refused from browsers, rate limits, the client
//! IP behind trusted proxies, rotation, revocation, the audit log, and the
//! `jeton client` / `jeton audit` commands, including a revocation on the
//! command line reaching a running server. SQLite and PostgreSQL throughout.

use crate::{on_both_databases, support};

use std::time::{Duration, Instant};

use axum::http::Method;
use jeton_auth::{PlainToken, TokenKind};
use serde_json::{Value, json};
use support::{
    Backend, Res, TestApp, fresh_database,
    process::{DropDatabase, Server, http, jeton, within_a_second},
};

const PASSWORD: &str = "correct horse battery";
const SHOP: &str = "https://shop.example";
const OTHER_SHOP: &str = "https://other-shop.example";
const EVIL: &str = "https://evil.example";

/// The same tests with `127.0.0.1` (the test router's socket peer) as a
/// trusted proxy, so that `X-Forwarded-For` names the client.
macro_rules! on_both_databases_behind_a_proxy {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                fn config() -> jeton::config::Config {
                    jeton::config::Config {
                        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
                        ..jeton::config::Config::default()
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    if let Some(app) = crate::support::spawn_app_with(crate::support::Backend::Sqlite, config()).await {
                        super::$name(app).await;
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    if let Some(app) = crate::support::spawn_app_with(crate::support::Backend::Postgres, config()).await {
                        super::$name(app).await;
                    }
                }
            }
        )*
    };
}

// ---------------------------------------------------------------- helpers

fn s(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .to_owned()
}

fn number(res: &Res, header: &str) -> u64 {
    let text = res
        .header(header)
        .unwrap_or_else(|| panic!("no {header} header (status {})", res.status));
    text.parse()
        .unwrap_or_else(|_| panic!("{header} is not a number: {text:?}"))
}

/// The comma-separated items of a header, lower-cased.
fn header_items(res: &Res, name: &str) -> Vec<String> {
    res.headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|item| item.trim().to_ascii_lowercase())
        .filter(|item| !item.is_empty())
        .collect()
}

/// The names of the `Access-Control-*` headers of a response.
fn cors_headers(res: &Res) -> Vec<String> {
    res.headers
        .keys()
        .map(|name| name.as_str().to_owned())
        .filter(|name| name.starts_with("access-control-"))
        .collect()
}

/// A 403 of the origin checks: no challenge (the token itself is fine).
#[track_caller]
fn assert_refused(res: &Res, code: &str) {
    res.expect_problem(403, code);
    assert_eq!(
        res.header("www-authenticate"),
        None,
        "{code} has no challenge"
    );
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

/// `GET /products` with `key`, from `origin` if given.
async fn products(app: &TestApp, key: &str, origin: Option<&str>) -> Res {
    let mut req = app.get("/api/v1/products").bearer(key);
    if let Some(origin) = origin {
        req = req.header("origin", origin);
    }
    req.send().await
}

/// `GET /products` with `key`, through the trusted proxy for `client_ip`.
async fn products_from(app: &TestApp, key: &str, forwarded_for: &str) -> Res {
    app.get("/api/v1/products")
        .bearer(key)
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
}

async fn assert_dead(app: &TestApp, token: &str) {
    products(app, token, None)
        .await
        .expect_problem(401, "invalid_token");
}

async fn create_client(app: &TestApp, admin: &str, body: Value) -> Res {
    app.post("/api/v1/admin/clients")
        .bearer(admin)
        .json(body)
        .send()
        .await
}

/// A storefront client made through the admin API, so that this server's
/// CORS origin set learns of it; no rate limits unless `extra` sets them.
/// Returns (client id, key).
async fn storefront(
    app: &TestApp,
    admin: &str,
    origins: &[&str],
    extra: Value,
) -> (String, String) {
    let mut body = json!({
        "name": "Storefront", "kind": "publishable",
        "abilities": ["products:read", "customers:create", "auth:login"],
        "allowed_origins": origins,
        "rate_limit_per_minute": null,
        "per_ip_rate_limit_per_minute": null,
    });
    for (field, value) in extra.as_object().unwrap() {
        body[field] = value.clone();
    }
    let res = create_client(app, admin, body).await;
    res.expect(201);
    let body = res.json();
    (s(&body["client"]["id"]), s(&body["key"]))
}

/// A secret client made through the admin API: (client id, key).
async fn secret_client(app: &TestApp, admin: &str, abilities: &[&str]) -> (String, String) {
    let res = create_client(
        app,
        admin,
        json!({"name": "Backend", "kind": "secret", "abilities": abilities}),
    )
    .await;
    res.expect(201);
    let body = res.json();
    (s(&body["client"]["id"]), s(&body["key"]))
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

/// The ids of the client's working keys, oldest first.
async fn key_ids(app: &TestApp, admin: &str, client_id: &str) -> Vec<String> {
    get_client(app, admin, client_id).await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| s(&k["id"]))
        .collect()
}

async fn rotate(app: &TestApp, admin: &str, id: &str, body: Value) -> Res {
    app.post(&format!("/api/v1/admin/clients/{id}/keys"))
        .bearer(admin)
        .json(body)
        .send()
        .await
}

async fn revoke_client(app: &TestApp, admin: &str, id: &str, query: &str) -> Res {
    app.delete(&format!("/api/v1/admin/clients/{id}{query}"))
        .bearer(admin)
        .send()
        .await
}

/// A CORS preflight for `GET /api/v1/products` from `origin`.
async fn preflight(app: &TestApp, origin: &str) -> Res {
    app.req(Method::OPTIONS, "/api/v1/products")
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
}

/// `GET /admin/audit` with `query` (e.g. `?limit=2`).
async fn audit_page(app: &TestApp, admin: &str, query: &str) -> Res {
    app.get(&format!("/api/v1/admin/audit{query}"))
        .bearer(admin)
        .send()
        .await
}

/// Every audit event matching `filter` (e.g. `client_id=…`), following the
/// cursors.
async fn audit(app: &TestApp, admin: &str, filter: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = format!("?limit=100&{filter}");
        if let Some(cursor) = &cursor {
            query.push_str(&format!("&cursor={cursor}"));
        }
        let res = audit_page(app, admin, &query).await;
        res.expect(200);
        let page = res.json();
        events.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return events,
        }
    }
}

fn actions(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| s(&e["action"])).collect()
}

fn with_action<'a>(events: &'a [Value], action: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["action"] == action).collect()
}

async fn login(app: &TestApp, key: &str, email: &str) -> Value {
    app.login(key, email, PASSWORD).await
}

async fn personal_token(app: &TestApp, token: &str) -> (String, String) {
    let res = app
        .post("/api/v1/me/tokens")
        .bearer(token)
        .json(json!({"name": "script", "abilities": ["products:read", "profile:read"]}))
        .send()
        .await;
    res.expect(201);
    let body = res.json();
    (s(&body["token_id"]), s(&body["token"]))
}

/// Row counts of the tables a client change writes, straight from the
/// database.
async fn client_row_counts(app: &TestApp) -> Vec<(&'static str, i64)> {
    use sqlx::Row;
    let pool = sqlx::AnyPool::connect(&app.url).await.unwrap();
    let mut counts = Vec::new();
    for table in ["clients", "client_keys", "user_tokens", "audit_events"] {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM {table}"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        counts.push((table, row.get::<i64, _>("n")));
    }
    pool.close().await;
    counts
}

/// Revoked and expiry dates of the client's keys, straight from the
/// database (the admin API shows working keys only).
async fn key_states(app: &TestApp, client_id: &str) -> Vec<(Option<i64>, Option<i64>)> {
    use sqlx::Row;
    let pool = sqlx::AnyPool::connect(&app.url).await.unwrap();
    let rows = sqlx::query(
        "SELECT revoked_at, expires_at FROM client_keys WHERE client_id = $1 ORDER BY id",
    )
    .bind(client_id.to_owned())
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.iter()
        .map(|r| (r.get("revoked_at"), r.get("expires_at")))
        .collect()
}

/// A well-formed id that names nothing.
const UNKNOWN_ID: &str = "01900000-0000-7000-8000-000000000000";

on_both_databases!(
    // origin binding and CORS
    evil_origin_is_refused_while_the_allowed_one_gets_cors_headers,
    any_origin_client_works_from_anywhere,
    origin_allowed_for_one_client_is_refused_with_another_clients_key,
    preflight_is_answered_for_known_origins_only,
    preflight_follows_client_creation_and_revocation_at_once,
    // secret keys from browsers
    secret_key_with_origin_is_refused_and_recorded_once_a_minute,
    // rate limits
    sixth_request_of_a_five_per_minute_key_is_rate_limited,
    spoofed_forwarded_for_is_ignored_without_trusted_proxies,
    // rotation and revocation
    rotation_without_grace_kills_the_old_key_at_once,
    rotation_with_grace_keeps_the_old_key_for_the_grace_period,
    revoking_a_client_kills_exactly_its_user_tokens,
    // audit log
    audit_log_lists_a_scripted_scenario_in_order,
    // bad input
    bad_client_input_is_422_and_writes_nothing,
    rotating_or_revoking_unknown_or_revoked_clients_is_404_and_writes_nothing,
    // the command line
    cli_client_list_flags_any_origin_and_leaked_keys_and_audit_lists_events,
);

on_both_databases_behind_a_proxy!(
    per_ip_limit_counts_each_forwarded_client_ip,
    forged_tokens_from_one_ip_are_refused_after_the_failure_limit,
    audit_records_the_forwarded_client_ip,
);

// ---------------------------------------------------------------- origin binding

async fn evil_origin_is_refused_while_the_allowed_one_gets_cors_headers(app: TestApp) {
    let admin = app.admin_key().await;
    let (_, key) = storefront(&app, &admin, &[SHOP], json!({})).await;

    // Another website's page using the key in its visitors' browsers.
    for evil in [
        EVIL,
        "http://shop.example",
        "https://shop.example:8443",
        "https://shop.example.evil.example",
        "null",
    ] {
        let res = products(&app, &key, Some(evil)).await;
        assert_refused(&res, "origin_not_allowed");
        // No client allows it: no CORS headers at all, so the browser does
        // not even let the page read the refusal.
        assert_eq!(cors_headers(&res), Vec::<String>::new(), "for {evil}");
    }

    // The storefront's own page.
    let res = products(&app, &key, Some(SHOP)).await;
    res.expect(200);
    assert_eq!(
        res.header("access-control-allow-origin").as_deref(),
        Some(SHOP)
    );
    assert!(
        header_items(&res, "vary").contains(&"origin".to_owned()),
        "Vary: {:?}",
        header_items(&res, "vary")
    );
    let exposed = header_items(&res, "access-control-expose-headers");
    for needed in [
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "retry-after",
        "x-request-id",
    ] {
        assert!(
            exposed.contains(&needed.to_owned()),
            "{needed} not exposed: {exposed:?}"
        );
    }

    // No Origin (a server, curl, a mobile app): allowed, and no CORS
    // headers are needed.
    let res = products(&app, &key, None).await;
    res.expect(200);
    assert_eq!(res.header("access-control-allow-origin"), None);
}

async fn any_origin_client_works_from_anywhere(app: TestApp) {
    let admin = app.admin_key().await;
    let (id, key) = storefront(&app, &admin, &["*"], json!({})).await;
    assert_eq!(
        get_client(&app, &admin, &id).await["allowed_origins"],
        json!(["*"])
    );
    for origin in [
        EVIL,
        "http://localhost:3000",
        "https://anything.example:8443",
    ] {
        let res = products(&app, &key, Some(origin)).await;
        res.expect(200);
        // The origin is echoed, never a literal `*` (credentials are sent).
        assert_eq!(
            res.header("access-control-allow-origin").as_deref(),
            Some(origin)
        );
    }
    products(&app, &key, None).await.expect(200);
}

async fn origin_allowed_for_one_client_is_refused_with_another_clients_key(app: TestApp) {
    let admin = app.admin_key().await;
    let (a_id, a_key) = storefront(&app, &admin, &[SHOP], json!({})).await;
    let (b_id, b_key) = storefront(&app, &admin, &[OTHER_SHOP], json!({})).await;
    let b_key_id = key_ids(&app, &admin, &b_id).await.remove(0);

    products(&app, &a_key, Some(SHOP)).await.expect(200);
    products(&app, &b_key, Some(OTHER_SHOP)).await.expect(200);
    // B's key from A's site.
    let res = products(&app, &b_key, Some(SHOP)).await;
    assert_refused(&res, "origin_not_allowed");

    // Recorded against B's key, with the origin, never the key.
    let events = audit(&app, &admin, &format!("client_id={b_id}")).await;
    let refused = with_action(&events, "client_key.refused_origin");
    assert_eq!(refused.len(), 1, "{events:#?}");
    let event = refused[0];
    assert_eq!(event["client_id"], b_id.as_str());
    assert_eq!(event["subject_id"], b_key_id.as_str());
    assert_eq!(
        event["actor"],
        json!({"kind": "client_key", "id": b_key_id})
    );
    assert_eq!(event["client_ip"], "127.0.0.1");
    let detail = s(&event["detail"]);
    assert!(detail.contains(SHOP), "{detail}");
    // Nothing about A.
    let events = audit(&app, &admin, &format!("client_id={a_id}")).await;
    assert_eq!(actions(&events), ["client.created"]);
    let text = serde_json::to_string(&audit(&app, &admin, "").await).unwrap();
    assert!(!text.contains(&b_key) && !text.contains(&a_key), "{text}");
}

// ---------------------------------------------------------------- CORS preflight

async fn preflight_is_answered_for_known_origins_only(app: TestApp) {
    let admin = app.admin_key().await;
    storefront(&app, &admin, &[SHOP], json!({})).await;

    let res = preflight(&app, SHOP).await;
    assert!(res.status.is_success(), "{} {}", res.status, res.text());
    assert_eq!(
        res.header("access-control-allow-origin").as_deref(),
        Some(SHOP)
    );
    let methods = header_items(&res, "access-control-allow-methods");
    for method in ["get", "post"] {
        assert!(methods.contains(&method.to_owned()), "{methods:?}");
    }
    let headers = header_items(&res, "access-control-allow-headers");
    for header in ["authorization", "content-type", "idempotency-key"] {
        assert!(headers.contains(&header.to_owned()), "{headers:?}");
    }
    // Preflights carry no token: no challenge, no problem.
    assert_eq!(res.header("www-authenticate"), None);

    for unknown in [EVIL, "http://shop.example", OTHER_SHOP] {
        let res = preflight(&app, unknown).await;
        assert_eq!(cors_headers(&res), Vec::<String>::new(), "for {unknown}");
    }
}

async fn preflight_follows_client_creation_and_revocation_at_once(app: TestApp) {
    let admin = app.admin_key().await;
    let res = preflight(&app, OTHER_SHOP).await;
    assert_eq!(cors_headers(&res), Vec::<String>::new());

    let (id, key) = storefront(&app, &admin, &[OTHER_SHOP], json!({})).await;
    let res = preflight(&app, OTHER_SHOP).await;
    assert_eq!(
        res.header("access-control-allow-origin").as_deref(),
        Some(OTHER_SHOP)
    );
    products(&app, &key, Some(OTHER_SHOP)).await.expect(200);

    // A secret client's (absent) origins add nothing.
    secret_client(&app, &admin, &["products:read"]).await;
    assert_eq!(
        cors_headers(&preflight(&app, EVIL).await),
        Vec::<String>::new()
    );

    revoke_client(&app, &admin, &id, "").await.expect(204);
    let res = preflight(&app, OTHER_SHOP).await;
    assert_eq!(cors_headers(&res), Vec::<String>::new());
    // …and the revoked key is refused from its own site.
    products(&app, &key, Some(OTHER_SHOP))
        .await
        .expect_problem(401, "invalid_token");
}

// ---------------------------------------------------------------- secret keys from browsers

async fn secret_key_with_origin_is_refused_and_recorded_once_a_minute(app: TestApp) {
    let admin = app.admin_key().await;
    storefront(&app, &admin, &[SHOP], json!({})).await;
    let (id, secret) = secret_client(&app, &admin, &["products:read"]).await;
    let key_id = key_ids(&app, &admin, &id).await.remove(0);
    let before = get_client(&app, &admin, &id).await;
    assert_eq!(before["keys"][0]["browser_refusals"], 0);
    assert_eq!(before["keys"][0]["last_browser_refusal_at"], Value::Null);

    // Even from an origin some publishable client allows.
    for origin in [SHOP, EVIL, SHOP] {
        let res = products(&app, &secret, Some(origin)).await;
        assert_refused(&res, "secret_key_in_browser");
        assert!(!res.text().contains(&secret));
    }

    let after = get_client(&app, &admin, &id).await;
    let key = &after["keys"][0];
    assert_eq!(key["id"], key_id.as_str());
    assert!(
        key["browser_refusals"].as_i64().unwrap() >= 1,
        "not recorded: {key}"
    );
    assert!(key["last_browser_refusal_at"].is_string(), "{key}");
    // Also in the list.
    let list = app.get("/api/v1/admin/clients").bearer(&admin).send().await;
    list.expect(200);
    let listed = list.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(
        listed["keys"][0]["browser_refusals"],
        key["browser_refusals"]
    );

    // Three refusals within a minute: one event.
    let events = audit(&app, &admin, &format!("client_id={id}")).await;
    assert_eq!(
        actions(&events),
        ["client.created", "client_key.refused_in_browser"]
    );
    let event = &events[1];
    assert_eq!(event["subject_id"], key_id.as_str());
    assert_eq!(event["actor"], json!({"kind": "client_key", "id": key_id}));
    assert_eq!(event["client_ip"], "127.0.0.1");
    assert!(s(&event["detail"]).contains(SHOP), "{event}");

    // The key is flagged, not revoked: from a server it still works.
    products(&app, &secret, None).await.expect(200);

    // The admin key itself from a browser: refused too, and recorded
    // separately (another key).
    let res = app
        .get("/api/v1/admin/clients")
        .bearer(&admin)
        .header("origin", SHOP)
        .send()
        .await;
    assert_refused(&res, "secret_key_in_browser");
    let all = audit(&app, &admin, "").await;
    assert_eq!(with_action(&all, "client_key.refused_in_browser").len(), 2);
}

// ---------------------------------------------------------------- rate limits

async fn sixth_request_of_a_five_per_minute_key_is_rate_limited(app: TestApp) {
    let admin = app.admin_key().await;
    let (_, key) = storefront(&app, &admin, &[SHOP], json!({"rate_limit_per_minute": 5})).await;
    let (_, other) = storefront(&app, &admin, &[SHOP], json!({"rate_limit_per_minute": 5})).await;

    for expected_remaining in [4, 3, 2, 1, 0] {
        let res = products(&app, &key, Some(SHOP)).await;
        res.expect(200);
        assert_eq!(number(&res, "ratelimit-limit"), 5);
        assert_eq!(number(&res, "ratelimit-remaining"), expected_remaining);
        let reset = number(&res, "ratelimit-reset");
        assert!((1..=60).contains(&reset), "RateLimit-Reset {reset}");
    }

    let res = products(&app, &key, Some(SHOP)).await;
    res.expect_problem(429, "rate_limited");
    assert_eq!(res.header("www-authenticate"), None);
    let retry_after = number(&res, "retry-after");
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(number(&res, "ratelimit-limit"), 5);
    assert_eq!(number(&res, "ratelimit-remaining"), 0);
    let reset = number(&res, "ratelimit-reset");
    assert!((1..=60).contains(&reset), "RateLimit-Reset {reset}");
    // The storefront's page can read why and how long to wait.
    assert_eq!(
        res.header("access-control-allow-origin").as_deref(),
        Some(SHOP)
    );

    // Still limited without an Origin; another client has its own budget.
    products(&app, &key, None)
        .await
        .expect_problem(429, "rate_limited");
    let res = products(&app, &other, None).await;
    res.expect(200);
    assert_eq!(number(&res, "ratelimit-remaining"), 4);

    // A client without limits gets no RateLimit headers.
    let (_, unlimited) = storefront(&app, &admin, &[SHOP], json!({})).await;
    let res = products(&app, &unlimited, None).await;
    res.expect(200);
    assert_eq!(res.header("ratelimit-limit"), None);
}

async fn per_ip_limit_counts_each_forwarded_client_ip(app: TestApp) {
    let admin = app.admin_key().await;
    let (_, key) = storefront(
        &app,
        &admin,
        &[SHOP],
        json!({"per_ip_rate_limit_per_minute": 2}),
    )
    .await;

    for expected_remaining in [1, 0] {
        let res = products_from(&app, &key, "198.51.100.1").await;
        res.expect(200);
        assert_eq!(number(&res, "ratelimit-limit"), 2);
        assert_eq!(number(&res, "ratelimit-remaining"), expected_remaining);
    }
    let res = products_from(&app, &key, "198.51.100.1").await;
    res.expect_problem(429, "rate_limited");
    assert_eq!(number(&res, "ratelimit-limit"), 2);
    assert!(number(&res, "retry-after") >= 1);
    // A forged entry on the left does not help: the rightmost untrusted
    // address is the client.
    products_from(&app, &key, "203.0.113.66, 198.51.100.1")
        .await
        .expect_problem(429, "rate_limited");

    // Another visitor of the same storefront is not affected.
    let res = products_from(&app, &key, "198.51.100.2").await;
    res.expect(200);
    assert_eq!(number(&res, "ratelimit-remaining"), 1);
    // The proxy itself, without a header, is one more client.
    products(&app, &key, None).await.expect(200);
}

/// The defence against forged tokens (the checksum is public): 500 failed
/// authentications a minute from one client IP, malformed or well-formed
/// but unknown, then that IP gets 429 before its tokens are read. Other
/// addresses are not affected.
async fn forged_tokens_from_one_ip_are_refused_after_the_failure_limit(app: TestApp) {
    const ATTACKER: &str = "198.51.100.7";
    let admin = app.admin_key().await;
    let (_, key) = storefront(&app, &admin, &[SHOP], json!({})).await;
    let mut malformed = key.clone().into_bytes();
    malformed[10] = if malformed[10] == b'a' { b'b' } else { b'a' };
    let malformed = String::from_utf8(malformed).unwrap();
    for attempt in 0..500 {
        let forged = if attempt % 2 == 0 {
            malformed.clone()
        } else {
            PlainToken::generate(TokenKind::Publishable)
                .expose_secret()
                .to_owned()
        };
        products_from(&app, &forged, ATTACKER)
            .await
            .expect_problem(401, "invalid_token");
    }
    let res = products_from(&app, &malformed, ATTACKER).await;
    res.expect_problem(429, "rate_limited");
    assert!((1..=60).contains(&number(&res, "retry-after")));
    // Refused before the token is read: a valid key from there waits too.
    products_from(&app, &key, ATTACKER)
        .await
        .expect_problem(429, "rate_limited");

    products_from(&app, &malformed, "198.51.100.8")
        .await
        .expect_problem(401, "invalid_token");
    products_from(&app, &key, "198.51.100.8").await.expect(200);
}

async fn spoofed_forwarded_for_is_ignored_without_trusted_proxies(app: TestApp) {
    let admin = app.admin_key().await;
    let (_, key) = storefront(
        &app,
        &admin,
        &[SHOP],
        json!({"per_ip_rate_limit_per_minute": 2}),
    )
    .await;
    // Every request really comes from 127.0.0.1, whatever it claims.
    products_from(&app, &key, "198.51.100.1").await.expect(200);
    products_from(&app, &key, "198.51.100.2").await.expect(200);
    products_from(&app, &key, "198.51.100.3")
        .await
        .expect_problem(429, "rate_limited");
    products(&app, &key, None)
        .await
        .expect_problem(429, "rate_limited");

    // The audit log believes the socket, not the header.
    let res = app
        .post("/api/v1/auth/login")
        .bearer(&admin_login_key(&app, &admin).await)
        .header("x-forwarded-for", "198.51.100.9")
        .json(json!({"email": "nobody@example.com", "password": PASSWORD, "device_name": "x"}))
        .send()
        .await;
    res.expect_problem(400, "invalid_credentials");
    let events = audit(&app, &admin, "").await;
    let failed = with_action(&events, "login.failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["client_ip"], "127.0.0.1");
}

/// A secret key with `auth:login` (no limits, no origin rules).
async fn admin_login_key(app: &TestApp, admin: &str) -> String {
    secret_client(app, admin, &["auth:login"]).await.1
}

async fn audit_records_the_forwarded_client_ip(app: TestApp) {
    let admin = app.admin_key().await;
    let key = admin_login_key(&app, &admin).await;
    let res = app
        .post("/api/v1/auth/login")
        .bearer(&key)
        .header("x-forwarded-for", "203.0.113.66, 198.51.100.9")
        .json(json!({"email": "nobody@example.com", "password": PASSWORD, "device_name": "x"}))
        .send()
        .await;
    res.expect_problem(400, "invalid_credentials");
    let events = audit(&app, &admin, "").await;
    let failed = with_action(&events, "login.failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["client_ip"], "198.51.100.9");
}

// ---------------------------------------------------------------- rotation

async fn rotation_without_grace_kills_the_old_key_at_once(app: TestApp) {
    let admin = app.admin_key().await;
    let (id, old) = storefront(&app, &admin, &[SHOP], json!({})).await;
    app.assert_works(&old).await;

    let res = rotate(
        &app,
        &admin,
        &id,
        json!({"previous_key_expires_in_seconds": 0}),
    )
    .await;
    res.expect(201);
    let new = s(&res.json()["key"]);
    assert!(new.starts_with("jt_pk_") && new.len() == 42, "{new}");
    assert_dead(&app, &old).await;
    app.assert_works(&new).await;
    // The new key keeps the client's origin binding.
    assert_refused(
        &products(&app, &new, Some(EVIL)).await,
        "origin_not_allowed",
    );
    products(&app, &new, Some(SHOP)).await.expect(200);
    assert_eq!(key_ids(&app, &admin, &id).await.len(), 1);

    // The default grace is 0 too.
    let res = rotate(&app, &admin, &id, json!({})).await;
    res.expect(201);
    let newest = s(&res.json()["key"]);
    assert_dead(&app, &new).await;
    app.assert_works(&newest).await;
}

async fn rotation_with_grace_keeps_the_old_key_for_the_grace_period(app: TestApp) {
    let admin = app.admin_key().await;
    let (id, old) = storefront(&app, &admin, &[SHOP], json!({})).await;

    let res = rotate(
        &app,
        &admin,
        &id,
        json!({"previous_key_expires_in_seconds": 2}),
    )
    .await;
    res.expect(201);
    let new = s(&res.json()["key"]);
    // Both work during the grace period; the old one shows when it ends.
    app.assert_works(&old).await;
    app.assert_works(&new).await;
    let keys = get_client(&app, &admin, &id).await["keys"].clone();
    assert_eq!(keys.as_array().unwrap().len(), 2, "{keys}");
    assert!(keys[0]["expires_at"].is_string(), "{keys}");
    assert_eq!(keys[1]["expires_at"], Value::Null, "{keys}");

    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_dead(&app, &old).await;
    app.assert_works(&new).await;
    assert_eq!(key_ids(&app, &admin, &id).await.len(), 1);
}

// ---------------------------------------------------------------- revocation

async fn revoking_a_client_kills_exactly_its_user_tokens(app: TestApp) {
    let admin = app.admin_key().await;
    let (a_id, a_key) = storefront(&app, &admin, &[SHOP], json!({})).await;
    let (_, b_key) = storefront(&app, &admin, &[OTHER_SHOP], json!({})).await;
    let (c_id, c_key) = storefront(&app, &admin, &[SHOP], json!({})).await;
    let ann = app.register(&a_key, "ann@example.com", PASSWORD).await;
    let bob = app.register(&b_key, "bob@example.com", PASSWORD).await;

    let ann_via_a = s(&login(&app, &a_key, "ann@example.com").await["token"]);
    let ann_via_b = s(&login(&app, &b_key, "ann@example.com").await["token"]);
    let ann_via_c = s(&login(&app, &c_key, "ann@example.com").await["token"]);
    let bob_via_a = s(&login(&app, &a_key, "bob@example.com").await["token"]);
    // Personal tokens inherit the client of the token that made them.
    let (personal_a_id, personal_a) = personal_token(&app, &ann_via_a).await;
    let (_, personal_b) = personal_token(&app, &ann_via_b).await;
    let res = app.get("/api/v1/me/tokens").bearer(&ann_via_b).send().await;
    res.expect(200);
    let listed = res.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == personal_a_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(listed["client_id"], a_id.as_str());

    let res = revoke_client(&app, &admin, &a_id, "?revoke_user_tokens=true").await;
    res.expect(204);
    assert_dead(&app, &a_key).await;
    for dead in [&ann_via_a, &bob_via_a, &personal_a] {
        assert_dead(&app, dead).await;
    }
    for alive in [&ann_via_b, &ann_via_c, &personal_b, &b_key, &c_key] {
        app.assert_works(alive).await;
    }

    // Without the flag the client's user tokens are kept.
    revoke_client(&app, &admin, &c_id, "?revoke_user_tokens=false")
        .await
        .expect(204);
    assert_dead(&app, &c_key).await;
    app.assert_works(&ann_via_c).await;

    // An admin can revoke everything of one customer.
    let bob_via_b = s(&login(&app, &b_key, "bob@example.com").await["token"]);
    app.post(&format!("/api/v1/admin/customers/{ann}/revoke-tokens"))
        .bearer(&admin)
        .send()
        .await
        .expect(204);
    for dead in [&ann_via_b, &ann_via_c, &personal_b] {
        assert_dead(&app, dead).await;
    }
    app.assert_works(&bob_via_b).await;
    let events = audit(&app, &admin, &format!("customer_id={ann}")).await;
    let all = with_action(&events, "user_tokens.revoked_all");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["actor"]["kind"], "client_key");
    let events = audit(&app, &admin, &format!("customer_id={bob}")).await;
    assert!(with_action(&events, "user_tokens.revoked_all").is_empty());
}

// ---------------------------------------------------------------- audit log

async fn audit_log_lists_a_scripted_scenario_in_order(app: TestApp) {
    let (admin_id, admin) = app
        .client(jeton::domain::client::ClientKind::Secret, &["admin"], &[])
        .await;
    let admin_key_id = key_ids(&app, &admin, &admin_id).await.remove(0);
    let admin_actor = json!({"kind": "client_key", "id": admin_key_id});

    // The script.
    let (shop_id, first_key) = storefront(&app, &admin, &[SHOP], json!({})).await;
    let first_key_id = key_ids(&app, &admin, &shop_id).await.remove(0);
    let res = rotate(&app, &admin, &shop_id, json!({})).await;
    res.expect(201);
    let shop_key = s(&res.json()["key"]);
    let shop_key_id = s(&res.json()["id"]);
    let shop_actor = json!({"kind": "client_key", "id": shop_key_id});
    let ann = app.register(&shop_key, "ann@example.com", PASSWORD).await;
    let wrong = "wrong horse battery";
    app.post("/api/v1/auth/login")
        .bearer(&shop_key)
        .json(json!({"email": "ann@example.com", "password": wrong, "device_name": "phone"}))
        .send()
        .await
        .expect_problem(400, "invalid_credentials");
    let login = login(&app, &shop_key, "ann@example.com").await;
    let login_token = s(&login["token"]);
    let login_token_id = s(&login["token_id"]);
    let (personal_id, personal) = personal_token(&app, &login_token).await;
    app.delete(&format!("/api/v1/me/tokens/{personal_id}"))
        .bearer(&login_token)
        .send()
        .await
        .expect(204);
    app.post("/api/v1/auth/logout")
        .bearer(&login_token)
        .send()
        .await
        .expect(204);
    revoke_client(&app, &admin, &shop_id, "").await.expect(204);

    // Everything, oldest first.
    let events = audit(&app, &admin, "").await;
    assert_eq!(
        actions(&events),
        [
            "client.created",
            "client.created",
            "client.key_rotated",
            "login.failed",
            "user_token.issued",
            "user_token.issued",
            "user_token.revoked",
            "user_token.revoked",
            "client.revoked",
        ],
        "{events:#?}"
    );
    let customer = |id: &str| json!({"kind": "customer", "id": id});
    // (actor, client_id, customer_id, subject_id) of each event.
    let expected = [
        (
            json!({"kind": "cli", "id": null}),
            json!(admin_id),
            Value::Null,
            json!(admin_key_id),
        ),
        (
            admin_actor.clone(),
            json!(shop_id),
            Value::Null,
            json!(first_key_id),
        ),
        (
            admin_actor.clone(),
            json!(shop_id),
            Value::Null,
            json!(shop_key_id),
        ),
        (shop_actor.clone(), json!(shop_id), json!(ann), Value::Null),
        (
            shop_actor.clone(),
            json!(shop_id),
            json!(ann),
            json!(login_token_id),
        ),
        (
            customer(&ann),
            json!(shop_id),
            json!(ann),
            json!(personal_id),
        ),
        (
            customer(&ann),
            json!(shop_id),
            json!(ann),
            json!(personal_id),
        ),
        (
            customer(&ann),
            json!(shop_id),
            json!(ann),
            json!(login_token_id),
        ),
        (
            admin_actor.clone(),
            json!(shop_id),
            Value::Null,
            Value::Null,
        ),
    ];
    for (event, (actor, client_id, customer_id, subject_id)) in events.iter().zip(&expected) {
        let action = s(&event["action"]);
        assert_eq!(&event["actor"], actor, "actor of {action}: {event}");
        assert_eq!(
            &event["client_id"], client_id,
            "client_id of {action}: {event}"
        );
        assert_eq!(
            &event["customer_id"], customer_id,
            "customer_id of {action}: {event}"
        );
        assert_eq!(
            &event["subject_id"], subject_id,
            "subject_id of {action}: {event}"
        );
        let ip = if actor["kind"] == "cli" {
            Value::Null
        } else {
            json!("127.0.0.1")
        };
        assert_eq!(event["client_ip"], ip, "client_ip of {action}: {event}");
        assert!(
            event["id"].is_string() && event["at"].is_string(),
            "{event}"
        );
    }
    let times: Vec<String> = events.iter().map(|e| s(&e["at"])).collect();
    let parsed: Vec<time::OffsetDateTime> = times
        .iter()
        .map(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| panic!("not RFC 3339: {t}"))
        })
        .collect();
    assert!(parsed.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    // Filters.
    let by_client = audit(&app, &admin, &format!("client_id={shop_id}")).await;
    assert_eq!(by_client, events[1..].to_vec());
    let by_admin_client = audit(&app, &admin, &format!("client_id={admin_id}")).await;
    assert_eq!(by_admin_client, events[..1].to_vec());
    let by_customer = audit(&app, &admin, &format!("customer_id={ann}")).await;
    assert_eq!(by_customer, events[3..8].to_vec());
    let both = audit(
        &app,
        &admin,
        &format!("client_id={shop_id}&customer_id={ann}"),
    )
    .await;
    assert_eq!(both, events[3..8].to_vec());
    assert!(
        audit(&app, &admin, &format!("client_id={UNKNOWN_ID}"))
            .await
            .is_empty()
    );

    // Pagination: pages of 4, in order, the last one without a cursor.
    let mut paged = Vec::new();
    let mut query = "?limit=4".to_owned();
    let mut sizes = Vec::new();
    loop {
        let res = audit_page(&app, &admin, &query).await;
        res.expect(200);
        let page = res.json();
        let data = page["data"].as_array().unwrap().clone();
        sizes.push(data.len());
        paged.extend(data);
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=4&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(sizes, [4, 4, 1]);
    assert_eq!(paged, events);
    // …and with a filter.
    let res = audit_page(&app, &admin, &format!("?limit=3&customer_id={ann}")).await;
    res.expect(200);
    let page = res.json();
    assert_eq!(page["data"].as_array().unwrap()[..], events[3..6]);
    let cursor = s(&page["next_cursor"]);
    let res = audit_page(
        &app,
        &admin,
        &format!("?limit=3&customer_id={ann}&cursor={cursor}"),
    )
    .await;
    res.expect(200);
    assert_eq!(res.json()["data"].as_array().unwrap()[..], events[6..8]);
    assert_eq!(res.json()["next_cursor"], Value::Null);

    // Malformed queries.
    for (query, field) in [
        ("?client_id=nope", "client_id"),
        ("?client_id=1%20OR%201%3D1", "client_id"),
        ("?customer_id=42", "customer_id"),
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?cursor=garbage", "cursor"),
    ] {
        assert_invalid(&audit_page(&app, &admin, query).await, field);
    }
    audit_page(&app, &admin, "?action=login.failed")
        .await
        .expect_problem(422, "validation_failed");
    // Only admins read it.
    let pk = app.publishable_key().await;
    audit_page(&app, &pk, "")
        .await
        .expect_problem(403, "insufficient_scope");

    // Never a secret.
    let text = serde_json::to_string(&events).unwrap();
    for secret in [
        admin.as_str(),
        first_key.as_str(),
        shop_key.as_str(),
        login_token.as_str(),
        personal.as_str(),
        PASSWORD,
        wrong,
        "argon2",
    ] {
        assert!(
            !text.contains(secret),
            "`{secret}` in the audit log: {text}"
        );
    }
    assert!(
        !text.contains("jt_"),
        "token material in the audit log: {text}"
    );
}

// ---------------------------------------------------------------- bad input

async fn bad_client_input_is_422_and_writes_nothing(app: TestApp) {
    let admin = app.admin_key().await;
    let before = client_row_counts(&app).await;
    let publishable = |abilities: Value, origins: Value| json!({"name": "Shop", "kind": "publishable", "abilities": abilities, "allowed_origins": origins});
    let read = json!(["products:read"]);
    let shop = json!([SHOP]);
    let mut cases: Vec<(Value, &str)> = vec![
        // Abilities a publishable key may not hold.
        (
            publishable(json!(["products:read", "orders:write"]), shop.clone()),
            "abilities",
        ),
        (publishable(json!(["admin"]), shop.clone()), "abilities"),
        (
            publishable(json!(["tokens:manage"]), shop.clone()),
            "abilities",
        ),
        (publishable(json!(["*"]), shop.clone()), "abilities"),
        // No origins.
        (publishable(read.clone(), json!([])), "allowed_origins"),
        (
            json!({"name": "Shop", "kind": "publishable", "abilities": ["products:read"]}),
            "allowed_origins",
        ),
        // A secret key has no origins.
        (
            json!({"name": "Backend", "kind": "secret", "abilities": ["admin"], "allowed_origins": [SHOP]}),
            "allowed_origins",
        ),
        // Per-IP limits are for publishable keys.
        (
            json!({"name": "Backend", "kind": "secret", "abilities": ["admin"], "per_ip_rate_limit_per_minute": 5}),
            "per_ip_rate_limit_per_minute",
        ),
    ];
    // Not origins.
    for origin in [
        "https://shop.example/path",
        "https://shop.example/",
        "shop.example",
        "localhost:8080",
        "//shop.example",
        "https://*.shop.example",
        "https://shop.*.example",
        "*.shop.example",
        "ftp://shop.example",
        "https://shop.example?x=1",
        "https://user:pw@shop.example",
        "null",
        "",
    ] {
        cases.push((
            publishable(read.clone(), json!([origin])),
            "allowed_origins[0]",
        ));
    }
    cases.push((
        publishable(read.clone(), json!([SHOP, "https://*.example"])),
        "allowed_origins[1]",
    ));
    // Limits that are not a positive number of requests.
    for limit in [json!(0), json!(-1), json!(-100), json!(1.5), json!("10")] {
        for field in ["rate_limit_per_minute", "per_ip_rate_limit_per_minute"] {
            let mut body = publishable(read.clone(), shop.clone());
            body[field] = limit.clone();
            cases.push((body, field));
        }
    }
    for (body, field) in &cases {
        let res = create_client(&app, &admin, body.clone()).await;
        assert_invalid(&res, field);
        assert!(!res.text().contains("jt_"), "{}", res.text());
    }
    assert_eq!(
        client_row_counts(&app).await,
        before,
        "something was written"
    );

    // The edges that are fine.
    create_client(
        &app,
        &admin,
        json!({"name": "Shop", "kind": "publishable", "abilities": ["products:read", "customers:create", "auth:login"],
               "allowed_origins": ["*"], "rate_limit_per_minute": 1, "per_ip_rate_limit_per_minute": 1_000_000}),
    )
    .await
    .expect(201);
}

async fn rotating_or_revoking_unknown_or_revoked_clients_is_404_and_writes_nothing(app: TestApp) {
    let admin = app.admin_key().await;
    let (id, key) = storefront(&app, &admin, &[SHOP], json!({})).await;
    let (live_id, live_key) = storefront(&app, &admin, &[OTHER_SHOP], json!({})).await;
    revoke_client(&app, &admin, &id, "").await.expect(204);
    let before = client_row_counts(&app).await;
    let states = key_states(&app, &id).await;

    for target in [UNKNOWN_ID, "not-an-id", id.as_str()] {
        rotate(&app, &admin, target, json!({}))
            .await
            .expect_problem(404, "not_found");
        rotate(
            &app,
            &admin,
            target,
            json!({"previous_key_expires_in_seconds": 60}),
        )
        .await
        .expect_problem(404, "not_found");
        for query in ["", "?revoke_user_tokens=true"] {
            revoke_client(&app, &admin, target, query)
                .await
                .expect_problem(404, "not_found");
        }
    }
    // A bad grace is refused before anything else.
    for grace in [-1, 31 * 24 * 3600] {
        let res = rotate(
            &app,
            &admin,
            &live_id,
            json!({"previous_key_expires_in_seconds": grace}),
        )
        .await;
        assert_invalid(&res, "previous_key_expires_in_seconds");
    }

    assert_eq!(
        client_row_counts(&app).await,
        before,
        "something was written"
    );
    assert_eq!(key_states(&app, &id).await, states);
    assert_dead(&app, &key).await;
    app.assert_works(&live_key).await;
    assert_eq!(key_ids(&app, &admin, &live_id).await.len(), 1);
    // The revocation date did not move.
    let client = get_client(&app, &admin, &id).await;
    assert!(client["revoked_at"].is_string());
    assert_eq!(client["keys"], json!([]));
}

// ---------------------------------------------------------------- command line

/// `client create … --json`: (client id, key).
fn cli_create(url: &str, args: &[&str]) -> (String, String) {
    let mut all = vec!["client", "create"];
    all.extend_from_slice(args);
    all.push("--json");
    let run = jeton(url, &all);
    run.ok();
    let body = run.json();
    (s(&body["client_id"]), s(&body["key"]))
}

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

async fn cli_client_list_flags_any_origin_and_leaked_keys_and_audit_lists_events(app: TestApp) {
    let url = app.url.clone();
    let (any_id, any_key) = cli_create(
        &url,
        &[
            "--name",
            "Anywhere",
            "--kind",
            "publishable",
            "--ability",
            "products:read",
            "--origin",
            "*",
        ],
    );
    let (shop_id, _) = cli_create(
        &url,
        &[
            "--name",
            "Shop",
            "--kind",
            "publishable",
            "--ability",
            "products:read",
            "--origin",
            SHOP,
        ],
    );
    let (secret_id, secret) = cli_create(
        &url,
        &[
            "--name",
            "Backend",
            "--kind",
            "secret",
            "--ability",
            "products:read",
        ],
    );

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
    products(&app, &any_key, Some(EVIL)).await.expect(200);

    // A browser sends the secret key: the CLI shows it has leaked.
    assert_refused(
        &products(&app, &secret, Some(SHOP)).await,
        "secret_key_in_browser",
    );
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

async fn cli_revocation_reaches_a_running_server_within_a_second(backend: Backend) {
    let Some((url, _dir, drop_url)) = fresh_database(backend).await else {
        return;
    };
    // Declared first, so dropped last: after the server is gone.
    let _database = DropDatabase(drop_url);
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
    let (id, key) = cli_create(
        &url,
        &[
            "--name",
            "Shop",
            "--kind",
            "publishable",
            "--ability",
            "products:read",
            "--origin",
            SHOP,
        ],
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_revocation_reaches_a_running_server_within_a_second_sqlite() {
    cli_revocation_reaches_a_running_server_within_a_second(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_revocation_reaches_a_running_server_within_a_second_postgres() {
    cli_revocation_reaches_a_running_server_within_a_second(Backend::Postgres).await;
}
