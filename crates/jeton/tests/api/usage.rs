//! Usage (API.md §12): every credential's requests by outcome, counted in
//! memory and written in batches; exact across two processes and through a
//! SIGTERM; the API's ranges, zero-filled buckets and limits; `jeton usage`.

use std::time::{Duration, Instant};

use jeton::{domain::client::ClientKind, identity::TOKENS};
use jeton_auth::TokenKind;
use serde_json::Value;

use crate::{
    on_both_databases,
    support::{
        Backend, TestApp,
        process::{Server, http, jeton, keyed_database, within},
        s,
    },
};

on_both_databases!(counts_from_two_processes_add_up_exactly_and_a_sigterm_loses_nothing,);

on_both_databases!(
    config = jeton::config::Config { usage_interval: Duration::from_millis(50), ..Default::default() };
    every_outcome_is_counted_against_its_credential,
    ranges_are_rounded_bounded_and_every_bucket_is_present,
    a_client_and_a_customer_must_exist,
    clients_are_ranked_by_requests_or_refusals,
    a_key_shows_when_it_was_last_used,
);

const OUTCOMES: [&str; 8] = [
    "ok",
    "insufficient_scope",
    "origin_not_allowed",
    "secret_key_in_browser",
    "csrf_failed",
    "rate_limited",
    "revoked",
    "expired",
];

const EVIL: &str = "https://evil.example";

/// `totals` as (outcome, count) pairs, for one readable assertion.
fn totals(usage: &Value, keys: &[&str]) -> Vec<(String, u64)> {
    keys.iter()
        .map(|key| {
            let count = usage["totals"][*key]
                .as_u64()
                .unwrap_or_else(|| panic!("totals.{key} in {usage}"));
            (key.to_string(), count)
        })
        .collect()
}

fn expected(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

// ---------------------------------------------------------------- two processes

/// N requests of each outcome the gate decides from a command line's
/// keys, half through A (which writes every 200 ms) and half through B
/// (which writes only when stopped: its interval is an hour). Once B has
/// had its SIGTERM and A an interval, the API's totals equal the requests
/// made, per outcome; the minute, hour and day buckets of the same range
/// agree.
async fn counts_from_two_processes_add_up_exactly_and_a_sigterm_loses_nothing(backend: Backend) {
    const N: u64 = 3;
    let Some(keyed) = keyed_database(backend, &[]).await else {
        return;
    };
    let url = keyed.url.clone();
    let created = |args: &[&str]| {
        let mut all = vec!["client", "create"];
        all.extend_from_slice(args);
        all.push("--json");
        let run = jeton(&url, &all);
        run.ok();
        let json = run.json();
        (s(&json["client_id"]), s(&json["key"]))
    };
    let (limited_id, limited) = created(&[
        "--name",
        "Limited",
        "--kind",
        "secret",
        "--ability",
        "products:read",
        "--rate-limit",
        "1",
    ]);
    let (gone_id, gone) = created(&[
        "--name",
        "Gone",
        "--kind",
        "secret",
        "--ability",
        "products:read",
    ]);
    jeton(&url, &["client", "revoke", &gone_id]).ok();
    let a = Server::start(&url, &["--usage-interval", "200ms"]).await;
    let mut b = Server::start(&url, &["--usage-interval", "1h"]).await;
    let started = time::OffsetDateTime::now_utc();

    let garbage = "jt_ut_not_a_token";
    let unknown = TOKENS.generate(TokenKind::User);
    let unknown = unknown.expose_secret().to_owned();
    for server in [&a, &b] {
        let call = |path: &'static str, token: String, origin: Option<&'static str>| async move {
            let authorization = format!("Bearer {token}");
            let mut headers = vec![("authorization", authorization.as_str())];
            if let Some(origin) = origin {
                headers.push(("origin", origin));
            }
            http(server.addr, "GET", path, &headers).await.unwrap().0
        };
        // One request within the limited key's minute, on each process.
        assert_eq!(call("/api/v1/products", limited.clone(), None).await, 200);
        for _ in 0..N {
            assert_eq!(call("/api/v1/products", keyed.pk.clone(), None).await, 200);
            assert_eq!(call("/api/v1/me", keyed.pk.clone(), None).await, 403);
            assert_eq!(
                call("/api/v1/products", keyed.pk.clone(), Some(EVIL)).await,
                403
            );
            assert_eq!(
                call("/api/v1/admin/clients", keyed.admin.clone(), Some(EVIL)).await,
                403
            );
            assert_eq!(call("/api/v1/products", limited.clone(), None).await, 429);
            assert_eq!(call("/api/v1/products", gone.clone(), None).await, 401);
            assert_eq!(call("/api/v1/me", garbage.to_owned(), None).await, 401);
            assert_eq!(call("/api/v1/me", unknown.clone(), None).await, 401);
        }
    }
    // B writes what it holds as it stops.
    b.terminate();
    let status = b.wait_for_exit(Duration::from_secs(20)).await;
    assert!(status.is_some_and(|s| s.success()), "{}", b.log_text());

    let from = started - time::Duration::minutes(1);
    let query = |granularity: &str| {
        format!(
            "?granularity={granularity}&from={}",
            crate::support::enc(
                &from
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap()
            )
        )
    };
    let admin = keyed.admin.clone();
    let get = |path: String| {
        let (a, admin) = (&a, admin.clone());
        async move {
            let reply = a.call("GET", &path, Some(&admin), None).await;
            reply.expect(200);
            reply.json()
        }
    };
    // The admin key's own requests to read usage are counted as they go:
    // its `ok` is left out of the shop's expected totals.
    let mut shop_keys: Vec<&str> = OUTCOMES.to_vec();
    shop_keys.retain(|key| *key != "ok");
    shop_keys.push("unattributed");
    let shop_expected = expected(&[
        ("insufficient_scope", 2 * N),
        ("origin_not_allowed", 2 * N),
        ("secret_key_in_browser", 2 * N),
        ("csrf_failed", 0),
        ("rate_limited", 2 * N),
        ("revoked", 2 * N),
        ("expired", 0),
        ("unattributed", 4 * N),
    ]);
    let since = Instant::now();
    within(Duration::from_secs(5), since, "A's flush", || {
        let get = &get;
        let (query, shop_expected, shop_keys) = (query("minute"), &shop_expected, &shop_keys);
        async move {
            let usage = get(format!("/api/v1/admin/usage{query}")).await;
            let got = totals(&usage, shop_keys);
            if got == *shop_expected {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        }
    })
    .await;
    for granularity in ["minute", "hour", "day"] {
        let usage = get(format!("/api/v1/admin/usage{}", query(granularity))).await;
        assert_eq!(totals(&usage, &shop_keys), shop_expected, "{granularity}");
        let pk_client = s(&a
            .call("GET", "/api/v1/admin/clients?limit=100", Some(&admin), None)
            .await
            .json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "Storefront")
            .unwrap()["id"]);
        let storefront = get(format!(
            "/api/v1/admin/clients/{pk_client}/usage{}",
            query(granularity)
        ))
        .await;
        assert_eq!(
            totals(&storefront, &OUTCOMES),
            expected(&[
                ("ok", 2 * N),
                ("insufficient_scope", 2 * N),
                ("origin_not_allowed", 2 * N),
                ("secret_key_in_browser", 0),
                ("csrf_failed", 0),
                ("rate_limited", 0),
                ("revoked", 0),
                ("expired", 0),
            ]),
            "{granularity}"
        );
        let limited = get(format!(
            "/api/v1/admin/clients/{limited_id}/usage{}",
            query(granularity)
        ))
        .await;
        assert_eq!(
            totals(&limited, &["ok", "rate_limited"]),
            expected(&[("ok", 2), ("rate_limited", 2 * N)])
        );
        let gone = get(format!(
            "/api/v1/admin/clients/{gone_id}/usage{}",
            query(granularity)
        ))
        .await;
        assert_eq!(
            totals(&gone, &["ok", "revoked"]),
            expected(&[("ok", 0), ("revoked", 2 * N)])
        );
    }

    // The command line answers what the API does.
    let run = jeton(&url, &["usage", "--json"]);
    run.ok();
    let api = get("/api/v1/admin/usage".to_owned()).await;
    let cli = run.json();
    assert_eq!(cli["from"], api["from"]);
    assert_eq!(cli["series"].as_array().unwrap().len(), 24);
    assert_eq!(
        totals(&cli, &shop_keys),
        totals(&api, &shop_keys),
        "{cli} {api}"
    );
    let table = jeton(
        &url,
        &["usage", "--client-id", &limited_id, "--since", "2h"],
    );
    table.ok();
    let text = &table.stdout;
    assert!(text.contains("TOTAL"), "{text}");
    assert!(text.contains("limited"), "{text}");
}

// ---------------------------------------------------------------- one process

/// Flushes happen every 50 ms here; polls until `path` shows `check`.
async fn eventually(
    app: &TestApp,
    admin: &str,
    path: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let usage = app.get_as(path, admin).await;
        usage.expect(200);
        let usage = usage.json();
        if check(&usage) {
            return usage;
        }
        assert!(Instant::now() < deadline, "{path}: {usage}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A key's `last_used_at` is the start of the latest minute it succeeded
/// in, once its usage is written; a refusal is not a use.
async fn a_key_shows_when_it_was_last_used(app: TestApp) {
    let admin = app.admin_key().await;
    let (shop_id, pk) = app
        .client(
            ClientKind::Publishable,
            &["products:read"],
            &["http://localhost:8080"],
        )
        .await;
    let path = format!("/api/v1/admin/clients/{shop_id}");
    app.get("/api/v1/products")
        .bearer(&pk)
        .header("origin", EVIL)
        .send()
        .await
        .expect_problem(403, "origin_not_allowed");
    let usage = format!("/api/v1/admin/clients/{shop_id}/usage");
    eventually(&app, &admin, &usage, |u| {
        u["totals"]["origin_not_allowed"] == 1
    })
    .await;
    let client = app.get_as(&path, &admin).await.json();
    assert_eq!(client["keys"][0]["last_used_at"], Value::Null, "{client}");
    app.get_as("/api/v1/products", &pk).await.expect(200);
    let client = eventually(&app, &admin, &path, |c| {
        c["keys"][0]["last_used_at"].is_string()
    })
    .await;
    let minute = app
        .now()
        .replace_second(0)
        .unwrap()
        .replace_nanosecond(0)
        .unwrap();
    assert_eq!(
        crate::support::timestamp(&client["keys"][0]["last_used_at"]),
        minute
    );
}

/// Every outcome of §12's table, each counted against its own credential:
/// the cookie session's CSRF failure and the expired token against the
/// customer, the rest against their clients.
async fn every_outcome_is_counted_against_its_credential(app: TestApp) {
    let admin = app.admin_key().await;
    let (shop_id, pk) = app
        .client(
            ClientKind::Publishable,
            &["products:read", "auth:login"],
            &["http://localhost:8080"],
        )
        .await;
    let (customer, token) = app.customer("ann@example.com").await;
    app.get_as("/api/v1/me", &token).await.expect(200);
    app.get_as("/api/v1/me/orders", &pk)
        .await
        .expect_problem(403, "insufficient_scope");
    app.get("/api/v1/products")
        .bearer(&pk)
        .header("origin", EVIL)
        .send()
        .await
        .expect_problem(403, "origin_not_allowed");
    // A cookie session without its CSRF header, on a route that writes.
    app.delete("/api/v1/me/tokens")
        .header("cookie", &format!("jeton_session={token}"))
        .header("origin", "http://localhost:8080")
        .send()
        .await
        .expect_problem(403, "csrf_failed");
    // Past the token's 30 days: expired.
    app.advance(Duration::from_secs(31 * 86_400));
    app.get_as("/api/v1/me", &token).await.expect(401);

    let path = format!(
        "/api/v1/admin/customers/{customer}/usage?granularity=day&from={}",
        crate::support::enc(
            &(app.now() - time::Duration::days(40))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        )
    );
    let usage = eventually(&app, &admin, &path, |u| u["totals"]["expired"] == 1).await;
    assert_eq!(
        totals(&usage, &OUTCOMES),
        expected(&[
            ("ok", 1),
            ("insufficient_scope", 0),
            ("origin_not_allowed", 0),
            ("secret_key_in_browser", 0),
            ("csrf_failed", 1),
            ("rate_limited", 0),
            ("revoked", 0),
            ("expired", 1),
        ])
    );
    assert!(usage["totals"].get("unattributed").is_none(), "{usage}");
    let path = format!(
        "/api/v1/admin/clients/{shop_id}/usage?granularity=day&from={}",
        crate::support::enc(
            &(app.now() - time::Duration::days(40))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        )
    );
    let usage = eventually(&app, &admin, &path, |u| {
        u["totals"]["origin_not_allowed"] == 1
    })
    .await;
    assert_eq!(
        totals(&usage, &["ok", "insufficient_scope", "origin_not_allowed"]),
        expected(&[
            ("ok", 0),
            ("insufficient_scope", 1),
            ("origin_not_allowed", 1)
        ])
    );
}

async fn ranges_are_rounded_bounded_and_every_bucket_is_present(app: TestApp) {
    let admin = app.admin_key().await;
    let rfc3339 = |at: time::OffsetDateTime| {
        crate::support::enc(
            &at.format(&time::format_description::well_known::Rfc3339)
                .unwrap(),
        )
    };
    let now = app.now();

    // The default: the last 24 hourly buckets, the current one included,
    // zeros and all, in time order.
    let usage = app.get_as("/api/v1/admin/usage", &admin).await;
    usage.expect(200);
    let usage = usage.json();
    assert_eq!(usage["granularity"], "hour");
    let series = usage["series"].as_array().unwrap();
    assert_eq!(series.len(), 24);
    let hour = |at: time::OffsetDateTime| {
        at.replace_minute(0)
            .unwrap()
            .replace_second(0)
            .unwrap()
            .replace_nanosecond(0)
            .unwrap()
    };
    assert_eq!(crate::support::timestamp(&series[23]["time"]), hour(now));
    assert_eq!(
        crate::support::timestamp(&usage["to"]),
        hour(now) + time::Duration::HOUR
    );
    for bucket in series {
        let mut keys = crate::support::keys(bucket);
        keys.sort();
        let mut want: Vec<String> = OUTCOMES.iter().map(|k| k.to_string()).collect();
        want.extend(["time".to_owned(), "unattributed".to_owned()]);
        want.sort();
        assert_eq!(keys, want);
    }

    // Rounded down: 10:59:59 to 12:00:01 is the hours 10 and 11.
    let from = hour(now) - time::Duration::hours(3) + time::Duration::minutes(59);
    let to = hour(now) - time::Duration::hours(1) + time::Duration::seconds(1);
    let usage = app
        .get_as(
            &format!(
                "/api/v1/admin/usage?granularity=hour&from={}&to={}",
                rfc3339(from),
                rfc3339(to)
            ),
            &admin,
        )
        .await;
    usage.expect(200);
    let usage = usage.json();
    assert_eq!(usage["series"].as_array().unwrap().len(), 2);
    assert_eq!(
        crate::support::timestamp(&usage["from"]),
        hour(now) - time::Duration::hours(3)
    );

    // At most 1,440 buckets; not past retention; a real range.
    let minutes = |from: time::OffsetDateTime, to: time::OffsetDateTime| {
        format!(
            "/api/v1/admin/usage?granularity=minute&from={}&to={}",
            rfc3339(from),
            rfc3339(to)
        )
    };
    app.get_as(&minutes(now - time::Duration::minutes(1440), now), &admin)
        .await
        .expect(200);
    app.get_as(&minutes(now - time::Duration::minutes(1442), now), &admin)
        .await
        .expect_invalid("from");
    app.get_as(
        &minutes(
            now - time::Duration::hours(50),
            now - time::Duration::hours(49),
        ),
        &admin,
    )
    .await
    .expect_invalid("from");
    app.get_as(&minutes(now, now - time::Duration::hours(1)), &admin)
        .await
        .expect_invalid("to");
    app.get_as("/api/v1/admin/usage?granularity=week", &admin)
        .await
        .expect_invalid("granularity");
    app.get_as("/api/v1/admin/usage?from=yesterday", &admin)
        .await
        .expect_invalid("from");
    app.get_as("/api/v1/admin/usage?colour=blue", &admin)
        .await
        .expect_invalid("colour");
    // Days reach two years back.
    app.get_as(
        &format!(
            "/api/v1/admin/usage?granularity=day&from={}",
            rfc3339(now - time::Duration::days(700))
        ),
        &admin,
    )
    .await
    .expect(200);
}

async fn a_client_and_a_customer_must_exist(app: TestApp) {
    let admin = app.admin_key().await;
    let nobody = "01890a5d-ac96-774b-bcce-b302099a8057";
    for path in [
        format!("/api/v1/admin/clients/{nobody}/usage"),
        format!("/api/v1/admin/customers/{nobody}/usage"),
        "/api/v1/admin/clients/not-an-id/usage".to_owned(),
    ] {
        app.get_as(&path, &admin)
            .await
            .expect_problem(404, "not_found");
    }
    // Nor is usage for a storefront's key or a customer.
    let pk = app.publishable_key().await;
    app.get_as("/api/v1/admin/usage", &pk)
        .await
        .expect_problem(403, "insufficient_scope");
    let (_, token) = app.customer("ann@example.com").await;
    app.get_as("/api/v1/admin/usage", &token)
        .await
        .expect_problem(403, "insufficient_scope");
}

async fn clients_are_ranked_by_requests_or_refusals(app: TestApp) {
    let admin = app.admin_key().await;
    let (busy, busy_key) = app
        .client(ClientKind::Publishable, &["products:read"], &[])
        .await;
    let (refused, refused_key) = app
        .client(ClientKind::Publishable, &["products:read"], &[])
        .await;
    for _ in 0..5 {
        app.get_as("/api/v1/products", &busy_key).await.expect(200);
    }
    for _ in 0..2 {
        app.get_as("/api/v1/me", &refused_key).await.expect(403);
    }
    let top = eventually(&app, &admin, "/api/v1/admin/usage/top?by=refused", |top| {
        top["data"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    let data = top["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{top}");
    assert_eq!(s(&data[0]["client_id"]), refused);
    assert_eq!(data[0]["kind"], "publishable");
    assert_eq!(data[0]["totals"]["insufficient_scope"], 2);
    let top = app
        .get_as("/api/v1/admin/usage/top?by=requests&limit=2", &admin)
        .await;
    top.expect(200);
    let top = top.json();
    let ids: Vec<String> = top["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| s(&c["client_id"]))
        .collect();
    assert_eq!(ids[0], busy, "{top}");
    assert_eq!(ids.len(), 2);
    app.get_as("/api/v1/admin/usage/top?by=loudest", &admin)
        .await
        .expect_invalid("by");
    app.get_as("/api/v1/admin/usage/top?limit=0", &admin)
        .await
        .expect_invalid("limit");
}
