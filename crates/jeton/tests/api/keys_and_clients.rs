//! Client applications and their keys: creation, listing, origin binding
//! and CORS, secret keys refused from browsers, rate limits, the client IP
//! behind trusted proxies, every rotation and revocation, and the audit log.

use jeton::identity::TOKENS;
use std::time::Duration;

use axum::http::Method;
use jeton::domain::client::ClientKind;
use jeton_auth::TokenKind;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::{
    on_both_databases,
    support::{
        EVIL, OTHER_SHOP, PASSWORD, Res, SHOP, TestApp, UNKNOWN_ID, actions, assert_about,
        assert_fields, last4, s, timestamp,
    },
};

// ---------------------------------------------------------------- helpers

/// The tables a client change writes.
const CLIENT_TABLES: [&str; 5] = [
    "auth_clients",
    "client_details",
    "auth_credentials",
    "user_token_details",
    "audit_events",
];

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

/// `GET /products` with `key`, through the trusted proxy for `client_ip`.
async fn products_from(app: &TestApp, key: &str, forwarded_for: &str) -> Res {
    app.get("/api/v1/products")
        .bearer(key)
        .header("x-forwarded-for", forwarded_for)
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
    let res = app.create_client(admin, body).await;
    res.expect(201);
    let body = res.json();
    (s(&body["client"]["id"]), s(&body["key"]))
}

/// A secret client made through the admin API: (client id, key).
async fn secret_client(app: &TestApp, admin: &str, abilities: &[&str]) -> (String, String) {
    let res = app
        .create_client(
            admin,
            json!({"name": "Backend", "kind": "secret", "abilities": abilities}),
        )
        .await;
    res.expect(201);
    let body = res.json();
    (s(&body["client"]["id"]), s(&body["key"]))
}

/// The ids of the client's working keys, oldest first.
async fn key_ids(app: &TestApp, admin: &str, client_id: &str) -> Vec<String> {
    app.get_client(admin, client_id).await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| s(&k["id"]))
        .collect()
}

async fn revoke_client(app: &TestApp, admin: &str, id: &str, query: &str) -> Res {
    app.delete_as(&format!("/api/v1/admin/clients/{id}{query}"), admin)
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
    app.get_as(&format!("/api/v1/admin/audit{query}"), admin)
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

fn with_action<'a>(events: &'a [Value], action: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["action"] == action).collect()
}

async fn login(app: &TestApp, key: &str, email: &str) -> Value {
    app.login(key, email, PASSWORD).await
}

async fn personal_token(app: &TestApp, token: &str) -> (String, String) {
    let res = app
        .post_json_as(
            "/api/v1/me/tokens",
            token,
            json!({"name": "script", "abilities": ["products:read", "profile:read"]}),
        )
        .await;
    res.expect(201);
    let body = res.json();
    (s(&body["token_id"]), s(&body["token"]))
}

/// Revoked and expiry dates of the client's keys, straight from the
/// database (the admin API shows working keys only).
async fn key_states(app: &TestApp, client_id: &str) -> Vec<(Option<i64>, Option<i64>)> {
    use sqlx::Row;
    let pool = sqlx::AnyPool::connect(&app.url).await.unwrap();
    let rows = sqlx::query(
        "SELECT revoked_at, expires_at FROM auth_credentials WHERE client_id = $1 AND kind <> 'user' ORDER BY id",
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

/// A storefront client named `name`, made through the admin API: (client,
/// key).
async fn named_storefront(app: &TestApp, admin: &str, name: &str) -> (Value, String) {
    let res = app
        .create_client(
            admin,
            json!({
                "name": name, "kind": "publishable",
                "abilities": ["products:read", "customers:create", "auth:login"],
                "allowed_origins": [SHOP]
            }),
        )
        .await;
    res.expect(201);
    let body = res.json();
    (body["client"].clone(), s(&body["key"]))
}

/// A personal token with `abilities` made with `token`: the plaintext.
async fn personal_token_with(app: &TestApp, token: &str, abilities: &[&str]) -> String {
    let res = app
        .post_json_as(
            "/api/v1/me/tokens",
            token,
            json!({"name": "personal", "abilities": abilities}),
        )
        .await;
    res.expect(201);
    s(&res.json()["token"])
}

on_both_databases!(
    // creation and listing
    admin_client_create_shows_the_key_once_and_defaults_limits,
    admin_client_create_validates,
    admin_client_list_paginates_and_get_finds_one,
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
    // rotation
    rotation_without_grace_kills_the_old_key_at_once,
    rotation_with_grace_keeps_the_old_key_for_the_grace_period,
    admin_client_rotation_without_grace_kills_the_old_key,
    admin_client_rotation_with_grace_keeps_the_old_key,
    admin_client_rotation_of_a_revoked_or_unknown_client_is_404,
    // revocation
    revoking_a_client_kills_exactly_its_user_tokens,
    admin_client_revoke_kills_every_key_at_once,
    admin_client_revoke_with_user_tokens,
    // audit log
    audit_log_lists_a_scripted_scenario_in_order,
    // bad input
    bad_client_input_is_422_and_writes_nothing,
    rotating_or_revoking_unknown_or_revoked_clients_is_404_and_writes_nothing,
);

/// `127.0.0.1` (the test router's socket peer) is a trusted proxy, so that
/// `X-Forwarded-For` names the client.
fn behind_a_proxy() -> jeton::config::Config {
    jeton::config::Config {
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        ..jeton::config::Config::default()
    }
}

on_both_databases!(nobody_grants_what_they_do_not_hold);

on_both_databases!(
    config = behind_a_proxy();
    refusals_by_the_per_ip_limit_leave_the_key_limit_alone,
    per_ip_limit_counts_each_forwarded_client_ip,
    per_ip_limit_counts_an_ipv6_client_by_its_64,
    forged_tokens_from_one_ip_are_refused_after_the_failure_limit,
    audit_records_the_forwarded_client_ip,
);

// ---------------------------------------------------------------- creation and listing

async fn admin_client_create_shows_the_key_once_and_defaults_limits(app: TestApp) {
    let admin = app.admin_key().await;
    let res = app
        .create_client(
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
            "exposed_at",
            "last_browser_refusal_at",
            "last_used_at",
        ],
    );
    assert_eq!(keys[0]["browser_refusals"], 0);
    assert_eq!(keys[0]["exposed_at"], Value::Null);
    assert_eq!(keys[0]["last4"], last4(&key));
    assert!(keys[0]["expires_at"].is_null());
    // The key works.
    app.assert_works(&key).await;

    // GET shows the same client, never the key.
    let id = s(&client["id"]);
    let res = app
        .get_as(&format!("/api/v1/admin/clients/{id}"), &admin)
        .await;
    res.expect(200);
    assert!(!res.text().contains(&key), "the key leaked: {}", res.text());
    assert_eq!(&res.json(), client);
    let res = app.get_as("/api/v1/admin/clients", &admin).await;
    res.expect(200);
    assert!(!res.text().contains(&key));

    // Secret: a whole-key default, no per-IP limit.
    let res = app
        .create_client(
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
    app.get_as("/api/v1/admin/clients", &s(&secret["key"]))
        .await
        .expect(200);

    // `null`: no limit; numbers: as given.
    let res = app
        .create_client(
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
    let stored = app.get_client(&admin, &s(&unlimited["id"])).await;
    assert!(stored["rate_limit_per_minute"].is_null());
    assert!(stored["per_ip_rate_limit_per_minute"].is_null());

    let res = app
        .create_client(
            &admin,
            json!({
                "name": "Tight", "kind": "publishable", "abilities": ["products:read"],
                "allowed_origins": ["https://shop.example"],
                "rate_limit_per_minute": 120, "per_ip_rate_limit_per_minute": 10
            }),
        )
        .await;
    res.expect(201);
    let tight = app
        .get_client(&admin, &s(&res.json()["client"]["id"]))
        .await;
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
        let res = app
            .create_client(&admin, publishable(abilities, shop.clone()))
            .await;
        res.expect_invalid("abilities");
    }
    // …and is bound to origins.
    app.create_client(&admin, publishable(read.clone(), json!([])))
        .await
        .expect_invalid("allowed_origins");
    app.create_client(
        &admin,
        json!({"name": "Shop", "kind": "publishable", "abilities": ["products:read"]}),
    )
    .await
    .expect_invalid("allowed_origins");
    for origin in [
        "https://shop.example/path",
        "https://shop.example/",
        "shop.example",
        "//shop.example",
        "https://*.example.com",
        "https://shop.*.com",
        "ftp://shop.example",
    ] {
        let res = app
            .create_client(&admin, publishable(read.clone(), json!([origin])))
            .await;
        res.expect_invalid("allowed_origins[0]");
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
        app.create_client(&admin, body).await.expect_invalid(field);
    }
    let mut secret_zero = json!({"name": "B", "kind": "secret", "abilities": ["admin"]});
    secret_zero["rate_limit_per_minute"] = json!(0);
    app.create_client(&admin, secret_zero)
        .await
        .expect_invalid("rate_limit_per_minute");
    // Other fields.
    app.create_client(
        &admin,
        json!({"name": "", "kind": "secret", "abilities": ["admin"]}),
    )
    .await
    .expect_invalid("name");
    for body in [
        json!({"name": "B", "kind": "public", "abilities": ["admin"]}),
        json!({"name": "B", "abilities": ["admin"]}),
        json!({"name": "B", "kind": "secret", "abilities": ["admin"], "key": "jt_sk_x"}),
    ] {
        app.create_client(&admin, body)
            .await
            .expect_problem(422, "validation_failed");
    }
    // None of them was created: only the admin's own client exists.
    let res = app.get_as("/api/v1/admin/clients", &admin).await;
    res.expect(200);
    assert_eq!(res.json()["data"].as_array().unwrap().len(), 1);
}

async fn admin_client_list_paginates_and_get_finds_one(app: TestApp) {
    let (admin_id, admin) = app.client(ClientKind::Secret, &["admin"], &[]).await;
    let mut expected = vec![admin_id];
    let mut keys = Vec::new();
    for n in 0..4 {
        let (client, key) = named_storefront(&app, &admin, &format!("Shop {n}")).await;
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
        let res = app.get_as(&path, &admin).await;
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
    let res = app.get_as("/api/v1/admin/clients", &admin).await;
    res.expect(200);
    assert_eq!(res.json()["data"].as_array().unwrap().len(), 5);
    assert!(res.json()["next_cursor"].is_null());

    for query in ["limit=0", "limit=101", "cursor=garbage", "sort=name"] {
        app.get_as(&format!("/api/v1/admin/clients?{query}"), &admin)
            .await
            .expect_problem(422, "validation_failed");
    }

    // One by id.
    let one = app.get_client(&admin, &expected[2]).await;
    assert_eq!(one["id"], expected[2].as_str());
    assert_eq!(one["name"], "Shop 1");
    for id in [UNKNOWN_ID, "not-an-id"] {
        app.get_as(&format!("/api/v1/admin/clients/{id}"), &admin)
            .await
            .expect_problem(404, "not_found");
    }
}

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
        let res = app.products(&key, Some(evil)).await;
        res.expect_refused("origin_not_allowed");
        // No client allows it: no CORS headers at all, so the browser does
        // not even let the page read the refusal.
        assert_eq!(cors_headers(&res), Vec::<String>::new(), "for {evil}");
    }

    // The storefront's own page.
    let res = app.products(&key, Some(SHOP)).await;
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
    let res = app.products(&key, None).await;
    res.expect(200);
    assert_eq!(res.header("access-control-allow-origin"), None);
}

async fn any_origin_client_works_from_anywhere(app: TestApp) {
    let admin = app.admin_key().await;
    let (id, key) = storefront(&app, &admin, &["*"], json!({})).await;
    assert_eq!(
        app.get_client(&admin, &id).await["allowed_origins"],
        json!(["*"])
    );
    for origin in [
        EVIL,
        "http://localhost:3000",
        "https://anything.example:8443",
    ] {
        let res = app.products(&key, Some(origin)).await;
        res.expect(200);
        // The origin is echoed, never a literal `*` (credentials are sent).
        assert_eq!(
            res.header("access-control-allow-origin").as_deref(),
            Some(origin)
        );
    }
    app.products(&key, None).await.expect(200);
}

async fn origin_allowed_for_one_client_is_refused_with_another_clients_key(app: TestApp) {
    let admin = app.admin_key().await;
    let (a_id, a_key) = storefront(&app, &admin, &[SHOP], json!({})).await;
    let (b_id, b_key) = storefront(&app, &admin, &[OTHER_SHOP], json!({})).await;
    let b_key_id = key_ids(&app, &admin, &b_id).await.remove(0);

    app.products(&a_key, Some(SHOP)).await.expect(200);
    app.products(&b_key, Some(OTHER_SHOP)).await.expect(200);
    // B's key from A's site.
    let res = app.products(&b_key, Some(SHOP)).await;
    res.expect_refused("origin_not_allowed");

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
    for method in ["get", "post", "put", "patch", "delete"] {
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
    app.products(&key, Some(OTHER_SHOP)).await.expect(200);

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
    app.products(&key, Some(OTHER_SHOP))
        .await
        .expect_problem(401, "invalid_token");
}

// ---------------------------------------------------------------- secret keys from browsers

async fn secret_key_with_origin_is_refused_and_recorded_once_a_minute(app: TestApp) {
    let admin = app.admin_key().await;
    storefront(&app, &admin, &[SHOP], json!({})).await;
    let (id, secret) = secret_client(&app, &admin, &["products:read"]).await;
    let key_id = key_ids(&app, &admin, &id).await.remove(0);
    let before = app.get_client(&admin, &id).await;
    assert_eq!(before["keys"][0]["browser_refusals"], 0);
    assert_eq!(before["keys"][0]["last_browser_refusal_at"], Value::Null);

    // Even from an origin some publishable client allows.
    for origin in [SHOP, EVIL, SHOP] {
        let res = app.products(&secret, Some(origin)).await;
        res.expect_refused("secret_key_in_browser");
        assert!(!res.text().contains(&secret));
    }

    let after = app.get_client(&admin, &id).await;
    let key = &after["keys"][0];
    assert_eq!(key["id"], key_id.as_str());
    assert!(
        key["browser_refusals"].as_i64().unwrap() >= 1,
        "not recorded: {key}"
    );
    assert!(key["last_browser_refusal_at"].is_string(), "{key}");
    // Also in the list.
    let list = app.get_as("/api/v1/admin/clients", &admin).await;
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
    app.products(&secret, None).await.expect(200);

    // The admin key itself from a browser: refused too, and recorded
    // separately (another key).
    let res = app
        .get("/api/v1/admin/clients")
        .bearer(&admin)
        .header("origin", SHOP)
        .send()
        .await;
    res.expect_refused("secret_key_in_browser");
    let all = audit(&app, &admin, "").await;
    assert_eq!(with_action(&all, "client_key.refused_in_browser").len(), 2);
}

// ---------------------------------------------------------------- rate limits

async fn sixth_request_of_a_five_per_minute_key_is_rate_limited(app: TestApp) {
    let admin = app.admin_key().await;
    let (_, key) = storefront(&app, &admin, &[SHOP], json!({"rate_limit_per_minute": 5})).await;
    let (_, other) = storefront(&app, &admin, &[SHOP], json!({"rate_limit_per_minute": 5})).await;

    for expected_remaining in [4, 3, 2, 1, 0] {
        let res = app.products(&key, Some(SHOP)).await;
        res.expect(200);
        assert_eq!(number(&res, "ratelimit-limit"), 5);
        assert_eq!(number(&res, "ratelimit-remaining"), expected_remaining);
        let reset = number(&res, "ratelimit-reset");
        assert!((1..=60).contains(&reset), "RateLimit-Reset {reset}");
    }

    let res = app.products(&key, Some(SHOP)).await;
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
    app.products(&key, None)
        .await
        .expect_problem(429, "rate_limited");
    let res = app.products(&other, None).await;
    res.expect(200);
    assert_eq!(number(&res, "ratelimit-remaining"), 4);

    // A client without limits gets no RateLimit headers.
    let (_, unlimited) = storefront(&app, &admin, &[SHOP], json!({})).await;
    let res = app.products(&unlimited, None).await;
    res.expect(200);
    assert_eq!(res.header("ratelimit-limit"), None);
}

/// 24 addresses of one IPv6 /64 are one client of a per-IP limit of 20
/// (API.md §16); another /64 has a budget of its own.
async fn per_ip_limit_counts_an_ipv6_client_by_its_64(app: TestApp) {
    let admin = app.admin_key().await;
    let (_, key) = storefront(
        &app,
        &admin,
        &[SHOP],
        json!({"per_ip_rate_limit_per_minute": 20}),
    )
    .await;
    let mut statuses = Vec::new();
    for n in 0..24u32 {
        let ip = format!("2001:db8:aa:bb:{:x}:{n:x}::1", (n * 2731 + 7) % 0x1_0000);
        statuses.push(products_from(&app, &key, &ip).await.status.as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        20,
        "{statuses:?}"
    );
    assert!(statuses[20..].iter().all(|&s| s == 429), "{statuses:?}");
    let res = products_from(&app, &key, "2001:db8:aa:bc::1").await;
    res.expect(200);
    assert_eq!(number(&res, "ratelimit-remaining"), 19);
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
    app.products(&key, None).await.expect(200);
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
            TOKENS
                .generate(TokenKind::Publishable)
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
    app.products(&key, None)
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

    let new = app.rotated(&admin, &id, Some(0)).await;
    assert!(new.starts_with("jt_pk_") && new.len() == 42, "{new}");
    app.assert_dead(&old).await;
    app.assert_works(&new).await;
    // The new key keeps the client's origin binding.
    app.products(&new, Some(EVIL))
        .await
        .expect_refused("origin_not_allowed");
    app.products(&new, Some(SHOP)).await.expect(200);
    assert_eq!(key_ids(&app, &admin, &id).await.len(), 1);

    // The default grace is 0 too.
    let newest = app.rotated(&admin, &id, None).await;
    app.assert_dead(&new).await;
    app.assert_works(&newest).await;
}

async fn rotation_with_grace_keeps_the_old_key_for_the_grace_period(app: TestApp) {
    let admin = app.admin_key().await;
    let (id, old) = storefront(&app, &admin, &[SHOP], json!({})).await;

    let new = app.rotated(&admin, &id, Some(3600)).await;
    // Both work during the grace period; the old one shows when it ends.
    app.assert_works(&old).await;
    app.assert_works(&new).await;
    let keys = app.get_client(&admin, &id).await["keys"].clone();
    assert_eq!(keys.as_array().unwrap().len(), 2, "{keys}");
    assert!(keys[0]["expires_at"].is_string(), "{keys}");
    assert_eq!(keys[1]["expires_at"], Value::Null, "{keys}");

    // To its last second, then no more.
    app.advance(Duration::from_secs(3599));
    app.assert_works(&old).await;
    app.advance(Duration::from_secs(1));
    app.assert_dead(&old).await;
    app.assert_works(&new).await;
    assert_eq!(key_ids(&app, &admin, &id).await.len(), 1);
}

async fn admin_client_rotation_without_grace_kills_the_old_key(app: TestApp) {
    let admin = app.admin_key().await;
    let (client, old) = named_storefront(&app, &admin, "Shop").await;
    let id = s(&client["id"]);

    let res = app
        .rotate(&admin, &id, json!({"previous_key_expires_in_seconds": 0}))
        .await;
    res.expect(201);
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    let new = s(&res.json()["key"]);
    assert!(new.starts_with("jt_pk_") && new.len() == 42);
    assert_ne!(new, old);
    app.assert_works(&new).await;
    app.assert_dead(&old).await;
    let shown = app.get_client(&admin, &id).await;
    let keys = shown["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{shown}");
    assert_eq!(keys[0]["last4"], last4(&new));

    // No body at all means the default grace: none.
    let res = app
        .post_as(&format!("/api/v1/admin/clients/{id}/keys"), &admin)
        .await;
    res.expect(201);
    let newest = s(&res.json()["key"]);
    app.assert_works(&newest).await;
    app.assert_dead(&new).await;

    // Grace out of range.
    for grace in [-1, 10 * 365 * 24 * 3600] {
        app.rotate(
            &admin,
            &id,
            json!({"previous_key_expires_in_seconds": grace}),
        )
        .await
        .expect_invalid("previous_key_expires_in_seconds");
    }
    app.assert_works(&newest).await;
}

async fn admin_client_rotation_with_grace_keeps_the_old_key(app: TestApp) {
    let admin = app.admin_key().await;
    let (client, old) = named_storefront(&app, &admin, "Shop").await;
    let id = s(&client["id"]);

    let new = app.rotated(&admin, &id, Some(60)).await;
    app.assert_works(&new).await;
    app.assert_works(&old).await;

    let shown = app.get_client(&admin, &id).await;
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
        OffsetDateTime::now_utc() + time::Duration::seconds(60),
    );
    assert!(new_key["expires_at"].is_null());

    // A second rotation without grace ends the first grace period early.
    let newest = app.rotated(&admin, &id, None).await;
    app.assert_dead(&old).await;
    app.assert_dead(&new).await;
    app.assert_works(&newest).await;
}

async fn admin_client_rotation_of_a_revoked_or_unknown_client_is_404(app: TestApp) {
    let admin = app.admin_key().await;
    let (client, key) = named_storefront(&app, &admin, "Shop").await;
    let id = s(&client["id"]);
    for unknown in [UNKNOWN_ID, "not-an-id"] {
        app.rotate(&admin, unknown, json!({}))
            .await
            .expect_problem(404, "not_found");
    }
    app.delete_as(&format!("/api/v1/admin/clients/{id}"), &admin)
        .await
        .expect(204);
    app.rotate(&admin, &id, json!({"previous_key_expires_in_seconds": 0}))
        .await
        .expect_problem(404, "not_found");
    app.assert_dead(&key).await;
    // The revoked client gained no key.
    let shown = app.get_client(&admin, &id).await;
    assert_eq!(shown["keys"], json!([]));
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
    let res = app.get_as("/api/v1/me/tokens", &ann_via_b).await;
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
    app.assert_dead(&a_key).await;
    for dead in [&ann_via_a, &bob_via_a, &personal_a] {
        app.assert_dead(dead).await;
    }
    for alive in [&ann_via_b, &ann_via_c, &personal_b, &b_key, &c_key] {
        app.assert_works(alive).await;
    }

    // Without the flag the client's user tokens are kept.
    revoke_client(&app, &admin, &c_id, "?revoke_user_tokens=false")
        .await
        .expect(204);
    app.assert_dead(&c_key).await;
    app.assert_works(&ann_via_c).await;

    // An admin can revoke everything of one customer.
    let bob_via_b = s(&login(&app, &b_key, "bob@example.com").await["token"]);
    app.post_as(
        &format!("/api/v1/admin/customers/{ann}/revoke-tokens"),
        &admin,
    )
    .await
    .expect(204);
    for dead in [&ann_via_b, &ann_via_c, &personal_b] {
        app.assert_dead(dead).await;
    }
    app.assert_works(&bob_via_b).await;
    let events = audit(&app, &admin, &format!("customer_id={ann}")).await;
    let all = with_action(&events, "user_tokens.revoked_all");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["actor"]["kind"], "client_key");
    let events = audit(&app, &admin, &format!("customer_id={bob}")).await;
    assert!(with_action(&events, "user_tokens.revoked_all").is_empty());
}

async fn admin_client_revoke_kills_every_key_at_once(app: TestApp) {
    let admin = app.admin_key().await;
    let (client, first) = named_storefront(&app, &admin, "Shop").await;
    let (_, other) = named_storefront(&app, &admin, "Other shop").await;
    let id = s(&client["id"]);
    // Two live keys: one in its grace period, one new.
    let second = app.rotated(&admin, &id, Some(3600)).await;
    app.assert_works(&first).await;
    app.assert_works(&second).await;

    let res = app
        .delete_as(&format!("/api/v1/admin/clients/{id}"), &admin)
        .await;
    res.expect(204);
    assert!(res.body.is_empty());
    app.assert_dead(&first).await;
    app.assert_dead(&second).await;
    app.assert_works(&other).await;

    // Still listed, as revoked, with no working keys.
    let shown = app.get_client(&admin, &id).await;
    assert_about(timestamp(&shown["revoked_at"]), OffsetDateTime::now_utc());
    assert_eq!(shown["keys"], json!([]));

    // Again, or an unknown id: nothing to revoke.
    for target in [id.as_str(), UNKNOWN_ID, "not-an-id"] {
        app.delete_as(&format!("/api/v1/admin/clients/{target}"), &admin)
            .await
            .expect_problem(404, "not_found");
    }
    // An admin key may revoke its own client, and is dead at once.
    let admin_client = app
        .get_as("/api/v1/admin/clients?limit=1", &admin)
        .await
        .json()["data"][0]["id"]
        .clone();
    app.delete_as(
        &format!("/api/v1/admin/clients/{}", s(&admin_client)),
        &admin,
    )
    .await
    .expect(204);
    app.get_as("/api/v1/admin/clients", &admin)
        .await
        .expect_problem(401, "invalid_token");
}

async fn admin_client_revoke_with_user_tokens(app: TestApp) {
    let admin = app.admin_key().await;
    let (shop_a, key_a) = named_storefront(&app, &admin, "Shop A").await;
    let (_, key_b) = named_storefront(&app, &admin, "Shop B").await;
    let (shop_c, key_c) = named_storefront(&app, &admin, "Shop C").await;
    app.register(&key_a, "ann@example.com", PASSWORD).await;
    app.register(&key_b, "bob@example.com", PASSWORD).await;

    let ann_via_a = app.login_token(&key_a, "ann@example.com").await;
    let bob_via_a = app.login_token(&key_a, "bob@example.com").await;
    // A personal token made with a token from A was issued through A too.
    let ann_script_via_a = personal_token_with(&app, &ann_via_a, &["products:read"]).await;
    let ann_via_b = app.login_token(&key_b, "ann@example.com").await;
    let bob_via_c = app.login_token(&key_c, "bob@example.com").await;

    app.delete_as(
        &format!(
            "/api/v1/admin/clients/{}?revoke_user_tokens=true",
            s(&shop_a["id"])
        ),
        &admin,
    )
    .await
    .expect(204);
    app.assert_dead(&key_a).await;
    for token in [&ann_via_a, &bob_via_a, &ann_script_via_a] {
        app.assert_dead(token).await;
    }
    app.assert_works(&ann_via_b).await;
    app.assert_works(&bob_via_c).await;

    // `false`: the client's keys die, its customers' tokens live on.
    app.delete_as(
        &format!(
            "/api/v1/admin/clients/{}?revoke_user_tokens=false",
            s(&shop_c["id"])
        ),
        &admin,
    )
    .await
    .expect(204);
    app.assert_dead(&key_c).await;
    app.assert_works(&bob_via_c).await;
    app.assert_works(&ann_via_b).await;
    app.assert_works(&key_b).await;
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
    let res = app.rotate(&admin, &shop_id, json!({})).await;
    res.expect(201);
    let shop_key = s(&res.json()["key"]);
    let shop_key_id = s(&res.json()["id"]);
    let shop_actor = json!({"kind": "client_key", "id": shop_key_id});
    let ann = app.register(&shop_key, "ann@example.com", PASSWORD).await;
    let wrong = "wrong horse battery";
    app.post_json_as(
        "/api/v1/auth/login",
        &shop_key,
        json!({"email": "ann@example.com", "password": wrong, "device_name": "phone"}),
    )
    .await
    .expect_problem(400, "invalid_credentials");
    let login = login(&app, &shop_key, "ann@example.com").await;
    let login_token = s(&login["token"]);
    let login_token_id = s(&login["token_id"]);
    let (personal_id, personal) = personal_token(&app, &login_token).await;
    app.delete_as(&format!("/api/v1/me/tokens/{personal_id}"), &login_token)
        .await
        .expect(204);
    app.post_as("/api/v1/auth/logout", &login_token)
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
        audit_page(&app, &admin, query).await.expect_invalid(field);
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
    let before = app.row_counts(&CLIENT_TABLES).await;
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
        let res = app.create_client(&admin, body.clone()).await;
        res.expect_invalid(field);
        assert!(!res.text().contains("jt_"), "{}", res.text());
    }
    assert_eq!(
        app.row_counts(&CLIENT_TABLES).await,
        before,
        "something was written"
    );

    // The edges that are fine.
    app.create_client(&admin,
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
    let before = app.row_counts(&CLIENT_TABLES).await;
    let states = key_states(&app, &id).await;

    for target in [UNKNOWN_ID, "not-an-id", id.as_str()] {
        app.rotate(&admin, target, json!({}))
            .await
            .expect_problem(404, "not_found");
        app.rotate(
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
        let res = app
            .rotate(
                &admin,
                &live_id,
                json!({"previous_key_expires_in_seconds": grace}),
            )
            .await;
        res.expect_invalid("previous_key_expires_in_seconds");
    }

    assert_eq!(
        app.row_counts(&CLIENT_TABLES).await,
        before,
        "something was written"
    );
    assert_eq!(key_states(&app, &id).await, states);
    app.assert_dead(&key).await;
    app.assert_works(&live_key).await;
    assert_eq!(key_ids(&app, &admin, &live_id).await.len(), 1);
    // The revocation date did not move.
    let client = app.get_client(&admin, &id).await;
    assert!(client["revoked_at"].is_string());
    assert_eq!(client["keys"], json!([]));
}

// ---------------------------------------------------------------- nobody grants what they don't hold

/// Creating or rotating a client that holds `*`, `admin` or
/// `tokens:introspect` needs the caller to hold it: an `admin` key, or an
/// access token obtained with one, cannot make a key that holds more than
/// itself. The storefront's and customers' abilities, any admin may grant.
async fn nobody_grants_what_they_do_not_hold(app: TestApp) {
    let (admin_id, admin) = app.client(ClientKind::Secret, &["admin"], &[]).await;
    let access = app.access_token(&admin_id, &admin, None).await;
    let (_, everything) = app.client(ClientKind::Secret, &["*"], &[]).await;
    let (star_id, _) = app.client(ClientKind::Secret, &["*"], &[]).await;
    let secret =
        |abilities: Value| json!({"name": "More", "kind": "secret", "abilities": abilities});
    let count = || async {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM auth_clients")
            .fetch_one(&app.side_pool().await)
            .await
            .unwrap();
        n
    };
    let before = count().await;
    for caller in [&admin, &access] {
        for (abilities, needed) in [
            (json!(["*"]), "*"),
            (
                json!(["products:read", "tokens:introspect"]),
                "tokens:introspect",
            ),
            (json!(["tokens:*"]), "tokens:*"),
        ] {
            let res = app.create_client(caller, secret(abilities.clone())).await;
            res.expect_problem(403, "insufficient_scope");
            assert_eq!(
                res.header("www-authenticate"),
                Some(format!(
                    r#"Bearer realm="jeton", error="insufficient_scope", scope="{needed}""#
                )),
                "{abilities}"
            );
        }
        // A new key of a client holding `*` would be a key holding `*`.
        app.rotate(caller, &star_id, json!({}))
            .await
            .expect_problem(403, "insufficient_scope");
    }
    assert_eq!(count().await, before, "nothing was created");
    // What the caller holds, and what any admin may grant.
    for abilities in [
        json!(["admin"]),
        json!(["products:read", "orders:*", "tokens:manage", "auth:login"]),
    ] {
        app.create_client(&access, secret(abilities))
            .await
            .expect(201);
    }
    // A caller holding `*` grants anything.
    app.create_client(&everything, secret(json!(["*"])))
        .await
        .expect(201);
    app.rotate(&everything, &star_id, json!({}))
        .await
        .expect(201);
}

// ---------------------------------------------------------------- the two limits of a publishable key

/// A request the per-IP limit refuses is not counted against the key's
/// own limit: one busy address cannot use up a storefront's budget for
/// everyone else (`docs/api.md` says how to size both).
async fn refusals_by_the_per_ip_limit_leave_the_key_limit_alone(app: TestApp) {
    let admin = app.admin_key().await;
    let (_, key) = storefront(
        &app,
        &admin,
        &[SHOP],
        json!({"rate_limit_per_minute": 6, "per_ip_rate_limit_per_minute": 2}),
    )
    .await;
    // One address: its 2, then 20 refusals by the per-IP limit.
    for _ in 0..2 {
        products_from(&app, &key, "198.51.100.1").await.expect(200);
    }
    for _ in 0..20 {
        let res = products_from(&app, &key, "198.51.100.1").await;
        res.expect_problem(429, "rate_limited");
        assert_eq!(number(&res, "ratelimit-limit"), 2, "the per-IP limit");
    }
    // The key spent 2 of its 6: two more addresses get their 2 each.
    for n in 2..4 {
        let ip = format!("198.51.100.{n}");
        for _ in 0..2 {
            products_from(&app, &key, &ip).await.expect(200);
        }
    }
    // And then the key's own limit is used up, for a fresh address too.
    let res = products_from(&app, &key, "198.51.100.9").await;
    res.expect_problem(429, "rate_limited");
    assert_eq!(number(&res, "ratelimit-limit"), 6, "the key's limit");
}
