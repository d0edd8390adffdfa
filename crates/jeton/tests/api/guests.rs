//! Guest tokens (API.md §16): issued to a publishable key holding
//! `guest:create`, bound to its client and origin, limited per token and
//! their issuance per client IP, never reaching a customer's or an admin
//! route; ended by their client's revocation, by 14 days unused or 30 in
//! all, and by a leak report; pruned once ended.

use std::time::{Duration, Instant};

use jeton::{config::Config, domain::client::ClientKind, throttle::ThrottleSettings};
use serde_json::{Value, json};

use crate::{
    on_both_databases,
    support::{
        Backend, EVIL, OTHER_SHOP, Res, SHOP, TestApp, assert_about,
        process::{Server, jeton, within_a_second},
        s, timestamp,
    },
};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// A storefront's publishable key that may obtain guest tokens, for
/// [`SHOP`] and [`OTHER_SHOP`]: (client id, key).
async fn storefront(app: &TestApp) -> (String, String) {
    app.client(
        ClientKind::Publishable,
        &["products:read", "auth:login", "guest:create"],
        &[SHOP, OTHER_SHOP],
    )
    .await
}

/// `POST /guest` with `key`, from `origin` if given.
async fn issue_from(app: &TestApp, key: &str, origin: Option<&str>) -> Res {
    let mut req = app.post("/api/v1/guest").bearer(key).json(json!({}));
    if let Some(origin) = origin {
        req = req.header("origin", origin);
    }
    req.send().await
}

/// A guest token obtained with `key` from `origin`.
async fn guest(app: &TestApp, key: &str, origin: Option<&str>) -> String {
    let res = issue_from(app, key, origin).await;
    res.expect(201);
    s(&res.json()["token"])
}

/// `GET /products` with `token`, from `origin` if given.
async fn browse(app: &TestApp, token: &str, origin: Option<&str>) -> Res {
    app.products(token, origin).await
}

on_both_databases!(issuance_and_its_refusals);

async fn issuance_and_its_refusals(app: TestApp) {
    let (_, key) = storefront(&app).await;
    let res = issue_from(&app, &key, Some(SHOP)).await;
    res.expect(201);
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    let body = res.json();
    let mut fields: Vec<&String> = body.as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(fields, ["expires_at", "token"]);
    let token = s(&body["token"]);
    assert!(token.starts_with("jt_gt_") && token.len() == 42, "{token}");
    assert_about(
        timestamp(&body["expires_at"]),
        app.now() + time::Duration::days(30),
    );
    // With no body, and with no `Origin` (an app).
    app.post("/api/v1/guest")
        .bearer(&key)
        .header("origin", SHOP)
        .send()
        .await
        .expect(201);
    issue_from(&app, &key, None).await.expect(201);

    // From an origin the client does not allow.
    issue_from(&app, &key, Some(EVIL))
        .await
        .expect_refused("origin_not_allowed");
    // Only a publishable key.
    let admin = app.admin_key().await;
    let (_, secret) = app
        .client(ClientKind::Secret, &["guest:create", "admin"], &[])
        .await;
    let (_, user) = app.customer("ann@example.com").await;
    for wrong in [&secret, &admin, &user, &token] {
        let res = issue_from(&app, wrong, None).await;
        res.expect_problem(403, "insufficient_scope");
        assert_eq!(
            res.header("www-authenticate").as_deref(),
            Some(r#"Bearer realm="jeton", error="insufficient_scope""#)
        );
        assert!(
            s(&res.json()["detail"]).contains("a publishable key"),
            "{}",
            res.text()
        );
    }
    // A publishable key without `guest:create`.
    let (_, plain) = app
        .client(ClientKind::Publishable, &["products:read"], &[SHOP])
        .await;
    let res = issue_from(&app, &plain, Some(SHOP)).await;
    res.expect_problem(403, "insufficient_scope");
    assert_eq!(
        res.header("www-authenticate").as_deref(),
        Some(r#"Bearer realm="jeton", error="insufficient_scope", scope="guest:create""#)
    );
    // Anything in the body is refused.
    app.post("/api/v1/guest")
        .bearer(&key)
        .json(json!({"abilities": ["*"]}))
        .send()
        .await
        .expect_problem(422, "validation_failed");
    // Only the hash is stored.
    let pool = app.side_pool().await;
    let stored: Vec<(String, Option<String>, String)> =
        sqlx::query_as("SELECT token_hash, origin, abilities FROM auth_guest_tokens")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(stored.len(), 3);
    assert!(stored.iter().all(|(hash, _, _)| hash.len() == 64));
    assert!(
        stored
            .iter()
            .all(|(_, _, abilities)| abilities == "cart:write products:read")
    );
    assert_eq!(
        stored
            .iter()
            .filter(|(_, origin, _)| origin.is_none())
            .count(),
        1
    );
    pool.close().await;
}

/// Requests come through a trusted proxy, which names the client.
fn behind_a_proxy() -> Config {
    Config {
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        ..Config::default()
    }
}

on_both_databases!(config = behind_a_proxy(); the_31st_issuance_in_an_hour_from_one_ip_is_refused);

async fn the_31st_issuance_in_an_hour_from_one_ip_is_refused(app: TestApp) {
    let (_, key) = storefront(&app).await;
    let from = |ip: &'static str| {
        app.post("/api/v1/guest")
            .bearer(&key)
            .header("origin", SHOP)
            .header("x-forwarded-for", ip)
    };
    for n in 0..30 {
        let res = from("203.0.113.7").send().await;
        assert_eq!(res.status, 201, "issuance {n}: {}", res.text());
    }
    let res = from("203.0.113.7").send().await;
    res.expect_problem(429, "rate_limited");
    let retry: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    assert_eq!(res.header("ratelimit-limit").as_deref(), Some("30"));
    // Another address is served; the key itself still works from this one.
    from("203.0.113.8").send().await.expect(201);
    app.get("/api/v1/products")
        .bearer(&key)
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .expect(200);
}

on_both_databases!(a_guest_token_works_only_from_the_origin_it_came_from);

async fn a_guest_token_works_only_from_the_origin_it_came_from(app: TestApp) {
    let (_, key) = storefront(&app).await;
    let shop = guest(&app, &key, Some(SHOP)).await;
    browse(&app, &shop, Some(SHOP)).await.expect(200);
    // No `Origin`: not a page of another site.
    browse(&app, &shop, None).await.expect(200);
    // Another of the client's origins is another page all the same.
    for other in [OTHER_SHOP, EVIL, "null"] {
        browse(&app, &shop, Some(other))
            .await
            .expect_refused("origin_not_allowed");
    }
    // Obtained by an app (no `Origin`): from no page at all.
    let app_guest = guest(&app, &key, None).await;
    browse(&app, &app_guest, None).await.expect(200);
    browse(&app, &app_guest, Some(SHOP))
        .await
        .expect_refused("origin_not_allowed");
}

on_both_databases!(a_guest_reaches_no_customer_or_admin_route);

async fn a_guest_reaches_no_customer_or_admin_route(app: TestApp) {
    let (_, key) = storefront(&app).await;
    let token = guest(&app, &key, None).await;
    let product = app.product("SKU-1", 1000, "EUR", 5).await;
    let refused = |res: Res, kinds: &str| {
        res.expect_problem(403, "insufficient_scope");
        assert_eq!(
            res.header("www-authenticate").as_deref(),
            Some(r#"Bearer realm="jeton", error="insufficient_scope""#),
            "no scope: no ability of a guest's would do"
        );
        let detail = s(&res.json()["detail"]);
        assert!(detail.contains(kinds), "{detail}");
    };
    refused(app.get_as("/api/v1/me", &token).await, "a user token");
    refused(
        app.get_as("/api/v1/me/orders", &token).await,
        "a user token",
    );
    refused(
        app.get_as("/api/v1/me/tokens", &token).await,
        "a user token",
    );
    refused(
        app.post_json_as(
            "/api/v1/orders",
            &token,
            json!({"items": [{"product_id": product.id.to_string(), "quantity": 1}]}),
        )
        .await,
        "a user token",
    );
    for admin_route in ["/api/v1/admin/clients", "/api/v1/admin/orders"] {
        refused(app.get_as(admin_route, &token).await, "a secret key");
    }
    refused(
        app.post_json_as("/api/v1/auth/login", &token, json!({}))
            .await,
        "a publishable key",
    );
    assert_eq!(app.stock(product.id.as_str()).await, 5);
}

on_both_databases!(guests_read_products);

async fn guests_read_products(app: TestApp) {
    let (_, key) = storefront(&app).await;
    let token = guest(&app, &key, Some(SHOP)).await;
    let product = app.product("SKU-1", 1000, "EUR", 5).await;
    let res = browse(&app, &token, Some(SHOP)).await;
    res.expect(200);
    assert_eq!(res.json()["data"][0]["sku"], "SKU-1");
    // The guest's own limit, not the key's.
    assert_eq!(res.header("ratelimit-limit").as_deref(), Some("600"));
    app.get(&format!("/api/v1/products/{}", product.id))
        .bearer(&token)
        .header("origin", SHOP)
        .send()
        .await
        .expect(200);
}

on_both_databases!(a_rotation_keeps_guests_and_the_client_revocation_ends_them);

async fn a_rotation_keeps_guests_and_the_client_revocation_ends_them(app: TestApp) {
    let admin = app.admin_key().await;
    let (client_id, key) = storefront(&app).await;
    let token = guest(&app, &key, None).await;
    let new_key = app.rotated(&admin, &client_id, None).await;
    app.assert_dead(&key).await;
    app.assert_works(&token).await;
    guest(&app, &new_key, None).await;
    app.delete_as(&format!("/api/v1/admin/clients/{client_id}"), &admin)
        .await
        .expect(204);
    app.assert_dead(&token).await;
    let pool = app.side_pool().await;
    let live: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM auth_guest_tokens WHERE client_id = $1 AND revoked_at IS NULL",
    )
    .bind(&client_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(live, 0);
    pool.close().await;
}

on_both_databases!(guests_end_after_14_days_unused_or_30_days_in_all);

/// Idle time is counted from the last use the usage flush wrote: no
/// request writes.
async fn guests_end_after_14_days_unused_or_30_days_in_all(app: TestApp) {
    let (_, key) = storefront(&app).await;
    let used = guest(&app, &key, None).await;
    let idle = guest(&app, &key, None).await;
    app.advance(10 * DAY);
    browse(&app, &used, None).await.expect(200);
    app.flush_usage().await;
    app.advance(5 * DAY);
    // Day 15: never used since it was issued.
    app.assert_dead(&idle).await;
    browse(&app, &used, None).await.expect(200);
    app.flush_usage().await;
    app.advance(7 * DAY);
    browse(&app, &used, None).await.expect(200);
    app.flush_usage().await;
    app.advance(8 * DAY - Duration::from_secs(60));
    browse(&app, &used, None).await.expect(200);
    app.flush_usage().await;
    // Day 30: however recently used.
    app.advance(Duration::from_secs(60));
    app.assert_dead(&used).await;
}

on_both_databases!(prune_removes_ended_guests);

async fn prune_removes_ended_guests(app: TestApp) {
    let admin = app.admin_key().await;
    let (_, key) = storefront(&app).await;
    let (gone_client, gone_key) = storefront(&app).await;
    let active = guest(&app, &key, None).await;
    let _idle = guest(&app, &key, None).await;
    let _revoked = guest(&app, &gone_key, None).await;
    app.delete_as(&format!("/api/v1/admin/clients/{gone_client}"), &admin)
        .await
        .expect(204);
    app.advance(10 * DAY);
    browse(&app, &active, None).await.expect(200);
    app.flush_usage().await;
    // Day 16: the idle one ended on day 14, the revoked one on day 0.
    app.advance(6 * DAY);
    let pruned = app.db.prune_tokens(app.now() - DAY).await.unwrap();
    assert_eq!(pruned.guest_tokens, 2);
    assert_eq!(
        app.row_counts(&["auth_guest_tokens"]).await,
        [("auth_guest_tokens", 1)]
    );
    browse(&app, &active, None).await.expect(200);
}

on_both_databases!(a_leaked_guest_token_is_revoked);

async fn a_leaked_guest_token_is_revoked(app: TestApp) {
    let admin = app.admin_key().await;
    app.post_json_as(
        "/api/v1/admin/webhooks",
        &admin,
        json!({"url": "https://hooks.example/jeton", "events": ["credential.exposed"]}),
    )
    .await
    .expect(201);
    let (client_id, key) = storefront(&app).await;
    let token = guest(&app, &key, Some(SHOP)).await;
    let res = app
        .post_json_as(
            "/api/v1/admin/leaks",
            &admin,
            json!({"tokens": [token], "source": "pastebin"}),
        )
        .await;
    res.expect(200);
    assert_eq!(res.json()[0]["label"], "true_positive");
    assert_eq!(res.json()[0]["token_type"], "guest");
    app.assert_dead(&token).await;
    let pool = app.side_pool().await;
    let details: Vec<String> =
        sqlx::query_scalar("SELECT detail FROM audit_events WHERE action = 'credential.exposed'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(details.len(), 1);
    assert!(details[0].starts_with("guest token revoked"), "{details:?}");
    let bodies: Vec<String> =
        sqlx::query_scalar("SELECT body FROM webhook_events WHERE type = 'credential.exposed'")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert_eq!(bodies.len(), 1);
    let body: Value = serde_json::from_str(&bodies[0]).unwrap();
    let credential = &body["data"]["credential"];
    assert_eq!(credential["kind"], "guest_token", "{body}");
    assert_eq!(credential["client_id"], client_id.as_str());
    assert_eq!(credential["last4"], &token[token.len() - 4..]);
    // A second report changes nothing.
    app.post_json_as(
        "/api/v1/admin/leaks",
        &admin,
        json!({"tokens": [token], "source": "pastebin"}),
    )
    .await
    .expect(200);
}

/// Small limits, so that a scrape shows them: 3 guest tokens per IP per
/// hour, 5 requests per guest per minute.
fn small_limits() -> Config {
    Config {
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        guest_requests_per_minute: 5,
        throttle: ThrottleSettings {
            guest_issuances_per_ip_per_hour: 3,
            ..ThrottleSettings::default()
        },
        ..Config::default()
    }
}

on_both_databases!(config = small_limits(); a_scrape_from_one_ip_stays_within_the_issuance_limit);

/// A scraper that mints a guest token per handful of requests gets no more
/// than the issuance limit's worth of per-guest limits.
async fn a_scrape_from_one_ip_stays_within_the_issuance_limit(app: TestApp) {
    let (_, key) = storefront(&app).await;
    let ip = "198.51.100.9";
    let mut served = 0;
    let mut issued = 0;
    for _ in 0..10 {
        let res = app
            .post("/api/v1/guest")
            .bearer(&key)
            .header("x-forwarded-for", ip)
            .send()
            .await;
        if res.status == 429 {
            continue;
        }
        res.expect(201);
        issued += 1;
        let token = s(&res.json()["token"]);
        for _ in 0..8 {
            let res = app
                .get("/api/v1/products")
                .bearer(&token)
                .header("x-forwarded-for", ip)
                .send()
                .await;
            if res.status == 200 {
                served += 1;
            } else {
                res.expect_problem(429, "rate_limited");
            }
        }
    }
    assert_eq!((issued, served), (3, 15));
}

/// Like [`small_limits`], with a publishable key of its own per-IP limit.
async fn limited_storefront(app: &TestApp) -> String {
    let admin = app.admin_key().await;
    let res = app
        .create_client(
            &admin,
            json!({
                "name": "Storefront", "kind": "publishable",
                "abilities": ["products:read", "guest:create"],
                "allowed_origins": [SHOP],
                "rate_limit_per_minute": 100,
                "per_ip_rate_limit_per_minute": 8,
            }),
        )
        .await;
    res.expect(201);
    s(&res.json()["key"])
}

on_both_databases!(config = small_limits(); one_guest_over_its_limit_is_cut_while_another_on_the_same_ip_is_served);

async fn one_guest_over_its_limit_is_cut_while_another_on_the_same_ip_is_served(app: TestApp) {
    let key = limited_storefront(&app).await;
    let ip = "192.0.2.44";
    let issue = || {
        app.post("/api/v1/guest")
            .bearer(&key)
            .header("origin", SHOP)
            .header("x-forwarded-for", ip)
            .send()
    };
    let greedy = s(&issue().await.json()["token"]);
    let modest = s(&issue().await.json()["token"]);
    let browse_from = |token: &str| {
        app.get("/api/v1/products")
            .bearer(token)
            .header("origin", SHOP)
            .header("x-forwarded-for", ip)
            .send()
    };
    for n in 0..5 {
        let res = browse_from(&greedy).await;
        res.expect(200);
        assert_eq!(res.header("ratelimit-limit").as_deref(), Some("5"));
        assert_eq!(res.header("ratelimit-remaining"), Some((4 - n).to_string()));
    }
    let res = browse_from(&greedy).await;
    res.expect_problem(429, "rate_limited");
    assert!(res.header("retry-after").is_some());
    assert_eq!(res.header("ratelimit-remaining").as_deref(), Some("0"));
    // The other visitor behind the same address is served…
    for _ in 0..5 {
        browse_from(&modest).await.expect(200);
    }
    // …and the guests' ten requests took nothing from the key's limits
    // for this address (8 a minute), which two issuances used.
    for _ in 0..6 {
        browse_from(&key).await.expect(200);
    }
    browse_from(&key).await.expect_problem(429, "rate_limited");
}

on_both_databases!(revoking_the_client_ends_its_guests_on_another_process_within_a_second);

/// Two servers on one database: the client revoked through one, its guest
/// is refused by the other within a second.
async fn revoking_the_client_ends_its_guests_on_another_process_within_a_second(backend: Backend) {
    // Declared first, so dropped last: after the servers are gone.
    let Some(database) = crate::support::TestDatabase::create(backend).await else {
        return;
    };
    let url = database.url.clone();
    let created = |args: &[&str]| {
        let mut all = vec!["client", "create", "--name", "Client", "--json"];
        all.extend_from_slice(args);
        let run = jeton(&url, &all);
        run.ok();
        run.json()
    };
    let admin = s(&created(&["--kind", "secret", "--ability", "clients:write"])["key"]);
    let shop = created(&[
        "--kind",
        "publishable",
        "--ability",
        "products:read",
        "--ability",
        "guest:create",
        "--origin",
        SHOP,
    ]);
    let (client_id, key) = (s(&shop["client_id"]), s(&shop["key"]));
    let a = Server::start(&url, &[]).await;
    let b = Server::start(&url, &[]).await;
    let issued = a
        .call("POST", "/api/v1/guest", Some(&key), Some(&json!({})))
        .await;
    let token = s(&issued.expect(201).json()["token"]);
    let bearer = format!("Bearer {token}");
    let (status, text) = b
        .get("/api/v1/products", &[("authorization", bearer.as_str())])
        .await;
    assert_eq!(status, 200, "{text}");
    let revoked = Instant::now();
    a.call(
        "DELETE",
        &format!("/api/v1/admin/clients/{client_id}"),
        Some(&admin),
        None,
    )
    .await
    .expect(204);
    within_a_second(revoked, "the other process refuses the guest", || async {
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
