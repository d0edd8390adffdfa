//! A running `jeton serve`: graceful shutdown on SIGTERM,
//! `last_used_at` written in batches (at shutdown too) and never by the
//! request itself, Prometheus metrics that carry no secret, and floods of
//! bad tokens answered without harm. Every test runs on SQLite and
//! PostgreSQL, each with a server process of its own.

use jeton::identity::TOKENS;
use std::time::{Duration, Instant};

use jeton_auth::{PlainToken, TokenKind};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    on_both_databases,
    support::{
        Backend, PASSWORD, TestDatabase, connect,
        process::{KeyedDatabase, Reply, Server, cli_key, free_port, http, keyed_database, within},
        s,
    },
};

/// How often these servers write `last_used_at` (`serve --usage-interval`),
/// and the slack a loaded test machine gets on top.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
const SLACK: Duration = Duration::from_secs(2);

on_both_databases!(
    sigterm_drains_in_flight_requests_flushes_token_use_and_exits_zero,
    token_listing_shows_last_use_within_the_flush_interval,
    authenticated_reads_write_nothing,
    metrics_count_routes_auth_outcomes_and_caches_and_carry_no_secret,
    floods_of_unknown_and_malformed_tokens_are_refused_and_the_server_keeps_answering,
);

// ---------------------------------------------------------------- helpers

/// A server on a fresh database, with a storefront's publishable key and
/// an admin key made on the command line (which also migrates).
struct Shop {
    // Dropped in this order: the server before its database.
    server: Server,
    url: String,
    pk: String,
    admin: String,
    _database: TestDatabase,
}

async fn database(backend: Backend) -> Option<KeyedDatabase> {
    keyed_database(backend, &[]).await
}

impl KeyedDatabase {
    /// A server writing last uses every `FLUSH_INTERVAL`.
    async fn serve(self, env: &[(&str, &str)]) -> Shop {
        let interval = format!("{}ms", FLUSH_INTERVAL.as_millis());
        self.serve_with(&["--usage-interval", &interval], env).await
    }

    async fn serve_with(self, options: &[&str], env: &[(&str, &str)]) -> Shop {
        let server = Server::start_with_env(&self.url, options, env).await;
        Shop {
            server,
            url: self.url,
            pk: self.pk,
            admin: self.admin,
            _database: self.database,
        }
    }
}

async fn shop(backend: Backend) -> Option<Shop> {
    Some(database(backend).await?.serve(&[]).await)
}

impl Shop {
    async fn get(&self, path: &str, token: &str) -> Reply {
        self.server.call("GET", path, Some(token), None).await
    }

    async fn register(&self, email: &str) -> String {
        let body = json!({"email": email, "password": PASSWORD, "name": "Test Customer"});
        let res = self
            .server
            .call("POST", "/api/v1/customers", Some(&self.pk), Some(&body))
            .await;
        res.expect(201);
        s(&res.json()["id"])
    }

    /// (token, token id).
    async fn login(&self, email: &str) -> (String, String) {
        let body = json!({"email": email, "password": PASSWORD, "device_name": "test"});
        let res = self
            .server
            .call("POST", "/api/v1/auth/login", Some(&self.pk), Some(&body))
            .await;
        res.expect(201);
        (s(&res.json()["token"]), s(&res.json()["token_id"]))
    }

    async fn product(&self, sku: &str) -> String {
        let body = json!({
            "sku": sku, "name": format!("Product {sku}"), "description": "",
            "price": {"amount": 1000, "currency": "EUR"}, "stock": 100,
        });
        let res = self
            .server
            .call(
                "POST",
                "/api/v1/admin/products",
                Some(&self.admin),
                Some(&body),
            )
            .await;
        res.expect(201);
        s(&res.json()["id"])
    }

    async fn metrics(&self) -> String {
        let (status, text) = self.server.get("/metrics", &[]).await;
        assert_eq!(status, 200, "{text}");
        text
    }
}

/// `auth_credentials.last_used_at` of a token, straight from the database.
async fn last_used_at(url: &str, token_id: &str) -> Option<i64> {
    let db = connect(url).await;
    let value = sqlx::query_scalar("SELECT last_used_at FROM auth_credentials WHERE id = $1")
        .bind(token_id.to_owned())
        .fetch_one(&db)
        .await
        .expect("the token's row");
    db.close().await;
    value
}

fn micros(at: time::OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1000) as i64
}

/// `name`'s samples with `labels` add up to at least `min`.
#[track_caller]
fn assert_at_least(text: &str, name: &str, labels: &[&str], min: f64) {
    let sum = metric(text, name, labels);
    assert!(
        sum >= min,
        "{name} {labels:?}: {sum}, not {min} or more: {text}"
    );
}

/// The sum of the samples of `name` whose labels include all of `labels`
/// (e.g. `kind="user"`), in Prometheus text.
fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((series_name, rest)) => (series_name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels_match = labels.iter().all(|label| {
                series_labels
                    .split(',')
                    .any(|series_label| series_label == *label)
            });
            (series_name == name && labels_match).then(|| value.parse::<f64>().unwrap())
        })
        .sum()
}

// ---------------------------------------------------------------- shutdown

/// SIGTERM: the server stops accepting connections, finishes the request
/// it is serving, writes the token use it has collected, and exits 0.
async fn sigterm_drains_in_flight_requests_flushes_token_use_and_exits_zero(backend: Backend) {
    let Some(database) = database(backend).await else {
        return;
    };
    // At debug, tower-http logs when it starts on a request. No periodic
    // write of last uses comes before the one at shutdown.
    let mut shop = database
        .serve_with(
            &["--usage-interval", "1h"],
            &[("RUST_LOG", "info,sqlx=warn,tower_http=debug")],
        )
        .await;
    shop.register("ann@example.com").await;

    // A token used and not yet written.
    let (token, token_id) = shop.login("ann@example.com").await;
    let used_from = micros(time::OffsetDateTime::now_utc());
    shop.get("/api/v1/me", &token).await.expect(200);
    shop.get("/api/v1/products", &token).await.expect(200);
    shop.get("/api/v1/me/orders", &token).await.expect(200);
    assert_eq!(last_used_at(&shop.url, &token_id).await, None);

    // A registration is in flight: its head is read, its body half sent.
    let started = |log: &str| {
        log.lines()
            .filter(|line| {
                line.contains("started processing request") && line.contains("/api/v1/customers")
            })
            .count()
    };
    let registrations = started(&shop.server.log_text());
    let body = serde_json::to_vec(
        &json!({"email": "bob@example.com", "password": PASSWORD, "name": "Bob"}),
    )
    .unwrap();
    let (first_half, second_half) = body.split_at(body.len() / 2);
    let mut in_flight = tokio::net::TcpStream::connect(shop.server.addr)
        .await
        .unwrap();
    let head = format!(
        "POST /api/v1/customers HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        shop.server.addr,
        shop.pk,
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.unwrap();
    in_flight.write_all(first_half).await.unwrap();
    wait_for_log(&shop.server, "the registration to start", |log| {
        started(log) > registrations
    })
    .await;

    shop.server.terminate();
    wait_for_log(&shop.server, "the server to start shutting down", |log| {
        log.contains("shutting down")
    })
    .await;
    // No new connection is served any more.
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Ok((status, _)) = http(shop.server.addr, "GET", "/healthz", &[]).await {
        assert!(
            Instant::now() < deadline,
            "still answering ({status}) after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        shop.server.child.try_wait().unwrap().is_none(),
        "exited with a request in flight: {}",
        shop.server.log_text()
    );

    // The request in flight completes.
    in_flight.write_all(second_half).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        in_flight.read_to_end(&mut response),
    )
    .await
    .expect("the in-flight request is answered")
    .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 201 "), "{response}");
    assert!(response.contains("bob@example.com"), "{response}");

    // …and the process exits 0, well inside the ten-second drain.
    let status = shop
        .server
        .wait_for_exit(Duration::from_secs(10) + SLACK)
        .await
        .unwrap_or_else(|| panic!("still running: {}", shop.server.log_text()));
    assert!(
        status.success(),
        "exit {status}: {}",
        shop.server.log_text()
    );

    // The token's use was written on the way out.
    let written = last_used_at(&shop.url, &token_id)
        .await
        .expect("last_used_at written at shutdown");
    let now = micros(time::OffsetDateTime::now_utc());
    assert!(
        (used_from..=now).contains(&written),
        "{used_from} <= {written} <= {now}"
    );
    let db = connect(&shop.url).await;
    let bob: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM customers WHERE email = $1")
        .bind("bob@example.com")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(bob, 1);
    db.close().await;
}

/// Waits (up to 10 s) until the server's log satisfies `check`.
async fn wait_for_log(server: &Server, what: &str, check: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = server.log_text();
        if check(&log) {
            return;
        }
        assert!(Instant::now() < deadline, "waiting for {what}: {log}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------- last_used_at

async fn token_listing_shows_last_use_within_the_flush_interval(backend: Backend) {
    let Some(shop) = shop(backend).await else {
        return;
    };
    shop.register("ann@example.com").await;
    let (token, id) = shop.login("ann@example.com").await;
    let (_, unused_id) = shop.login("ann@example.com").await;

    // Listing the tokens is a use of the token that lists them.
    let used_from = time::OffsetDateTime::now_utc();
    let first = Instant::now();
    within(
        FLUSH_INTERVAL + SLACK,
        first,
        "last_used_at in the listing",
        || async {
            let res = shop.get("/api/v1/me/tokens", &token).await;
            res.expect(200);
            let listed = res.json();
            let current = listed["data"]
                .as_array()
                .expect("a list")
                .iter()
                .find(|t| t["id"] == id.as_str())
                .expect("the current token is listed")
                .clone();
            assert_eq!(current["current"], true);
            if current["last_used_at"].is_string() {
                Ok(())
            } else {
                Err(current.to_string())
            }
        },
    )
    .await;
    let res = shop.get("/api/v1/me/tokens", &token).await;
    res.expect(200);
    let listed = res.json();
    let tokens = listed["data"].as_array().unwrap();
    let current = tokens.iter().find(|t| t["id"] == id.as_str()).unwrap();
    let at = time::OffsetDateTime::parse(
        current["last_used_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    assert!(
        at >= used_from - time::Duration::seconds(1) && at <= time::OffsetDateTime::now_utc(),
        "{at}"
    );
    // A token nobody used shows none.
    let unused = tokens
        .iter()
        .find(|t| t["id"] == unused_id.as_str())
        .expect("the other token is listed");
    assert_eq!(unused["last_used_at"], Value::Null, "{unused}");
    assert_eq!(unused["current"], false);
}

// ---------------------------------------------------------------- no writes per read

/// Every write to any table of the database is recorded in `test_writes`
/// by a trigger: per statement on PostgreSQL, per row on SQLite.
async fn record_writes(url: &str, backend: Backend) {
    let db = connect(url).await;
    sqlx::query("CREATE TABLE test_writes (seq BIGINT, tbl TEXT, op TEXT)")
        .execute(&db)
        .await
        .unwrap();
    let tables: Vec<String> = match backend {
        Backend::Sqlite => sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        ),
        Backend::Postgres => sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' \
             AND table_type = 'BASE TABLE'",
        ),
    }
    .fetch_all(&db)
    .await
    .unwrap();
    let tables: Vec<String> = tables
        .into_iter()
        .filter(|t| t != "test_writes" && t != "_sqlx_migrations")
        .collect();
    assert!(tables.iter().any(|t| t == "auth_credentials"), "{tables:?}");
    if backend == Backend::Postgres {
        sqlx::raw_sql(
            "CREATE SEQUENCE test_writes_seq; \
             CREATE FUNCTION test_record_write() RETURNS trigger AS $$ BEGIN \
             INSERT INTO test_writes VALUES (nextval('test_writes_seq'), TG_TABLE_NAME, TG_OP); \
             RETURN NULL; END $$ LANGUAGE plpgsql",
        )
        .execute(&db)
        .await
        .unwrap();
    }
    for table in &tables {
        let sql = match backend {
            Backend::Postgres => format!(
                "CREATE TRIGGER test_writes_{table} AFTER INSERT OR UPDATE OR DELETE ON {table} \
                 FOR EACH STATEMENT EXECUTE FUNCTION test_record_write()"
            ),
            Backend::Sqlite => {
                for op in ["INSERT", "UPDATE", "DELETE"] {
                    let sql = format!(
                        "CREATE TRIGGER test_writes_{table}_{op} AFTER {op} ON {table} BEGIN \
                         INSERT INTO test_writes VALUES \
                         ((SELECT COUNT(*) FROM test_writes) + 1, '{table}', '{op}'); END"
                    );
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&db)
                        .await
                        .unwrap();
                }
                continue;
            }
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&db)
            .await
            .unwrap();
    }
    db.close().await;
}

/// The writes recorded after `after` (a `seq`): (table, operation).
async fn writes_after(url: &str, after: i64) -> Vec<(String, String)> {
    let db = connect(url).await;
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT tbl, op FROM test_writes WHERE seq > $1 ORDER BY seq")
            .bind(after)
            .fetch_all(&db)
            .await
            .unwrap();
    db.close().await;
    rows
}

async fn last_write(url: &str) -> i64 {
    let db = connect(url).await;
    let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM test_writes")
        .fetch_one(&db)
        .await
        .unwrap();
    db.close().await;
    seq.unwrap_or(0)
}

/// Hundreds of authenticated reads write nothing: only the batched
/// flushes write, each one statement of last uses (`auth_credentials`) and
/// one of usage counts (`auth_usage`), and nothing else (Sanctum writes on
/// every request).
async fn authenticated_reads_write_nothing(backend: Backend) {
    let Some(database) = database(backend).await else {
        return;
    };
    record_writes(&database.url, backend).await;
    let shop = database.serve(&[]).await;
    let product = shop.product("MUG").await;
    shop.register("ann@example.com").await;
    let (token, token_id) = shop.login("ann@example.com").await;
    shop.get("/api/v1/me", &token).await.expect(200);

    let before = last_write(&shop.url).await;
    let reading = Instant::now();
    let item = format!("/api/v1/products/{product}");
    for _ in 0..50 {
        shop.get("/api/v1/products", &shop.pk).await.expect(200);
        shop.get(&item, &shop.pk).await.expect(200);
        shop.get("/api/v1/products", &token).await.expect(200);
        shop.get("/api/v1/me", &token).await.expect(200);
        shop.get("/api/v1/me/orders", &token).await.expect(200);
    }
    let read_for = reading.elapsed();
    let writes = writes_after(&shop.url, before).await;
    let flushes = 1 + read_for.as_millis() / FLUSH_INTERVAL.as_millis();
    assert_only_flushes(&writes, flushes, backend);

    // The flush does come, and records the use and the counts.
    let flushed_from = Instant::now();
    within(
        FLUSH_INTERVAL + SLACK,
        flushed_from,
        "the batched flush",
        || async {
            match last_used_at(&shop.url, &token_id).await {
                Some(_) => Ok(()),
                None => Err("last_used_at still null".to_owned()),
            }
        },
    )
    .await;
    let writes = writes_after(&shop.url, before).await;
    let flushes = 1 + flushed_from.duration_since(reading).as_millis() / FLUSH_INTERVAL.as_millis();
    assert_only_flushes(&writes, flushes + 1, backend);
    assert!(
        writes.iter().any(|(table, _)| table == "auth_usage"),
        "{writes:?}"
    );
}

/// Every write is a flush's: last uses (one UPDATE of `auth_credentials`)
/// and usage counts (one upsert of `auth_usage`), at most `flushes` of
/// each. The triggers count statements on PostgreSQL (an upsert fires
/// INSERT and UPDATE) and rows on SQLite: two credentials, their minute,
/// hour and day rows, over at most two minutes.
fn assert_only_flushes(writes: &[(String, String)], flushes: u128, backend: Backend) {
    assert!(
        writes.iter().all(
            |(table, op)| (table == "auth_credentials" && op == "UPDATE")
                || (table == "auth_usage" && (op == "INSERT" || op == "UPDATE"))
        ),
        "reads wrote: {writes:?}"
    );
    let count = |wanted: &str| writes.iter().filter(|(table, _)| table == wanted).count() as u128;
    assert!(
        count("auth_credentials") <= flushes,
        "{} last-use writes for {flushes} flushes: {writes:?}",
        count("auth_credentials")
    );
    let per_flush = match backend {
        Backend::Postgres => 2,
        Backend::Sqlite => 2 * 3 * 2,
    };
    assert!(
        count("auth_usage") <= flushes * per_flush,
        "{} usage writes for {flushes} flushes: {writes:?}",
        count("auth_usage")
    );
}

// ---------------------------------------------------------------- metrics

async fn metrics_count_routes_auth_outcomes_and_caches_and_carry_no_secret(backend: Backend) {
    let Some(database) = database(backend).await else {
        return;
    };
    let limited = cli_key(
        &database.url,
        &[
            "--name",
            "Limited",
            "--kind",
            "secret",
            "--ability",
            "products:read",
            "--rate-limit",
            "1",
        ],
    );
    let shop = database.serve(&[]).await;
    let product = shop.product("MUG").await;
    let customer_id = shop.register("ann@example.com").await;
    let (token, token_id) = shop.login("ann@example.com").await;
    let (_, unused_id) = shop.login("ann@example.com").await;
    for _ in 0..2 {
        shop.get("/api/v1/products", &shop.pk).await.expect(200);
        shop.get(&format!("/api/v1/products/{product}"), &shop.pk)
            .await
            .expect(200);
        shop.get("/api/v1/me", &token).await.expect(200);
    }
    shop.get("/api/v1/products", &limited).await.expect(200);
    shop.get("/api/v1/products", &limited)
        .await
        .expect_problem(429, "rate_limited");
    let unknown = TOKENS.generate(TokenKind::User);
    shop.get("/api/v1/me", unknown.expose_secret())
        .await
        .expect_problem(401, "invalid_token");
    let odd_path = format!("/api/v1/{}", customer_id.replace('-', ""));
    let (status, _) = shop.server.get(&odd_path, &[]).await;
    assert_eq!(status, 404);

    let (status, text) = shop.server.get("/metrics", &[]).await;
    assert_eq!(status, 200, "{text}");
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("\r\ncontent-type: text/plain"), "{head}");

    // Requests by matched route (the template, not the id) and status.
    let requests = "jeton_http_requests_total";
    assert_at_least(
        body,
        requests,
        &["route=\"/api/v1/products\"", "status=\"200\""],
        3.0,
    );
    assert_at_least(
        body,
        requests,
        &["route=\"/api/v1/products\"", "status=\"429\""],
        1.0,
    );
    assert_at_least(
        body,
        requests,
        &["route=\"/api/v1/products/{id}\"", "status=\"200\""],
        2.0,
    );
    assert_at_least(
        body,
        requests,
        &["route=\"/api/v1/me\"", "status=\"401\""],
        1.0,
    );
    // …with latency histograms, by route and status.
    let latency = "jeton_http_request_duration_seconds";
    assert!(
        body.contains(&format!("# TYPE {latency} histogram")),
        "{body}"
    );
    assert_at_least(
        body,
        &format!("{latency}_count"),
        &["route=\"/api/v1/products\"", "status=\"200\""],
        3.0,
    );
    assert_at_least(
        body,
        &format!("{latency}_bucket"),
        &["route=\"/api/v1/me\"", "status=\"200\"", "le=\"+Inf\""],
        2.0,
    );

    // Auth outcomes by token kind and result.
    let auth = "jeton_auth_verifications_total";
    assert_at_least(body, auth, &["kind=\"publishable\"", "result=\"ok\""], 4.0);
    assert_at_least(body, auth, &["kind=\"user\"", "result=\"ok\""], 2.0);
    assert_at_least(body, auth, &["kind=\"user\"", "result=\"unknown\""], 1.0);
    // Cache outcomes, rate-limit refusals, pool usage.
    assert_at_least(body, "jeton_auth_cache_total", &["result=\"hit\""], 1.0);
    assert_at_least(body, "jeton_auth_cache_total", &["result=\"miss\""], 1.0);
    assert_at_least(body, "jeton_catalog_cache_total", &["result=\"hit\""], 1.0);
    assert_at_least(body, "jeton_catalog_cache_total", &["result=\"miss\""], 1.0);
    assert_at_least(body, "jeton_rate_limited_total", &[], 1.0);
    assert!(
        body.lines()
            .any(|line| line.starts_with("jeton_db_pool_connections ")),
        "{body}"
    );

    // Nothing secret or personal, and no unbounded label.
    for secret in [
        "jt_",
        token.as_str(),
        shop.pk.as_str(),
        shop.admin.as_str(),
        limited.as_str(),
        unknown.expose_secret(),
        customer_id.as_str(),
        &customer_id.replace('-', ""),
        token_id.as_str(),
        unused_id.as_str(),
        product.as_str(),
        "ann@example.com",
        "example.com",
    ] {
        assert!(!body.contains(secret), "{secret:?} in the metrics: {body}");
    }
}

/// A made-up HTTP method (any token is a valid method, of any length) is
/// 405, and is counted under `method="other"`: what a client invents never
/// becomes a label, so `/metrics` and the process's memory stay bounded
/// however many methods are sent.
#[tokio::test]
async fn made_up_methods_add_no_metric_series() {
    let database = database(Backend::Sqlite)
        .await
        .expect("SQLite is always there");
    let shop = database.serve(&[]).await;
    shop.get("/api/v1/products", &shop.pk).await.expect(200);
    // One made-up method first, so that the `other` series exists before
    // the measure.
    let made_up = |i: usize| format!("X{i:04}{}", "Q".repeat(1024));
    let send = |method: String| {
        let addr = shop.server.addr;
        async move { http(addr, &method, "/api/v1/products", &[]).await }
    };
    assert_eq!(send(made_up(0)).await.unwrap().0, 405);
    // And a scrape, whose own series then exists too.
    shop.metrics().await;
    let before = shop.metrics().await.len();
    let rss_before = resident_kib(shop.server.child.id());
    for i in 1..=1000 {
        let (status, text) = send(made_up(i)).await.unwrap();
        assert_eq!(status, 405, "{text}");
    }
    let text = shop.metrics().await;
    let rss_after = resident_kib(shop.server.child.id());
    eprintln!(
        "/metrics: {before} bytes before, {} after; RSS: {rss_before} KiB before, {rss_after} KiB after",
        text.len()
    );
    assert!(!text.contains("QQQQ"), "a made-up method is a label");
    assert!(
        text.contains(r#"method="other",route="/api/v1/products",status="405""#),
        "{text}"
    );
    // Only counts and sums change (a few digits each), never the set of
    // series: each made-up method as a label would add kilobytes.
    assert!(
        text.len() < before + 4096,
        "/metrics grew from {before} to {} bytes",
        text.len()
    );
}

/// The resident memory of a process, in KiB (Linux), for the log.
fn resident_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

// ---------------------------------------------------------------- floods

/// Well-formed tokens that name nothing cost one lookup each, and then are
/// remembered as unknown for a while; malformed ones never get past the
/// format check. Both are 401, and the server goes on serving.
async fn floods_of_unknown_and_malformed_tokens_are_refused_and_the_server_keeps_answering(
    backend: Backend,
) {
    let Some(mut shop) = shop(backend).await else {
        return;
    };
    shop.register("ann@example.com").await;
    let (token, _) = shop.login("ann@example.com").await;
    let counters = |text: &str| {
        (
            metric(text, "jeton_auth_cache_total", &["result=\"miss\""]),
            metric(text, "jeton_auth_cache_total", &["result=\"negative\""]),
            metric(text, "jeton_auth_cache_total", &[]),
            metric(
                text,
                "jeton_auth_verifications_total",
                &["result=\"malformed\""],
            ),
        )
    };

    // Fifty checksum-valid tokens of every kind that no one was issued.
    let unknown: Vec<PlainToken> = (0..50)
        .map(|n| TOKENS.generate(TokenKind::ALL[n % TokenKind::ALL.len()]))
        .collect();
    let (misses, negatives, _, _) = counters(&shop.metrics().await);
    for token in &unknown {
        let path = match token.kind() {
            TokenKind::User => "/api/v1/me",
            _ => "/api/v1/products",
        };
        shop.get(path, token.expose_secret())
            .await
            .expect_problem(401, "invalid_token");
    }
    let (misses_after, negatives_after, _, _) = counters(&shop.metrics().await);
    assert_eq!(misses_after - misses, 50.0, "one lookup each");
    assert_eq!(negatives_after, negatives);
    // Again, straight away: remembered as unknown, no lookup.
    for token in &unknown {
        shop.get("/api/v1/products", token.expose_secret())
            .await
            .expect_problem(401, "invalid_token");
    }
    let (misses_again, negatives_again, _, _) = counters(&shop.metrics().await);
    assert_eq!(misses_again, misses_after, "a second lookup");
    assert_eq!(negatives_again - negatives_after, 50.0);

    // Fifty malformed ones: a wrong checksum, prefix, length or alphabet.
    let malformed: Vec<String> = unknown
        .iter()
        .enumerate()
        .map(|(n, token)| {
            let text = token.expose_secret();
            match n % 5 {
                0 => {
                    let last = if text.ends_with('0') { '1' } else { '0' };
                    format!("{}{last}", &text[..text.len() - 1])
                }
                1 => format!("jt_xx_{}", &text[6..]),
                2 => text[..text.len() - 1].to_owned(),
                3 => format!("{text}0"),
                _ => format!("{}-{}", &text[..20], &text[21..]),
            }
        })
        .collect();
    let (_, _, lookups, refused) = counters(&shop.metrics().await);
    for text in &malformed {
        assert!(TOKENS.parse(text).is_err(), "{text}");
        shop.get("/api/v1/products", text)
            .await
            .expect_problem(401, "invalid_token");
    }
    let (_, _, lookups_after, refused_after) = counters(&shop.metrics().await);
    assert_eq!(
        lookups_after, lookups,
        "a malformed token reached the cache"
    );
    assert_eq!(refused_after - refused, 50.0);

    // The server is fine.
    let (status, _) = shop.server.get("/healthz", &[]).await;
    assert_eq!(status, 200);
    let (status, _) = shop.server.get("/readyz", &[]).await;
    assert_eq!(status, 200);
    shop.get("/api/v1/products", &shop.pk).await.expect(200);
    shop.get("/api/v1/me", &token).await.expect(200);
    assert!(shop.server.child.try_wait().unwrap().is_none());
    let log = shop.server.log_text();
    for token in &unknown {
        assert!(!log.contains(token.expose_secret()), "a token was logged");
    }
}

// ---------------------------------------------------------------- --metrics-addr

/// With `--metrics-addr`, `/metrics` is served there and nowhere else.
#[tokio::test]
async fn metrics_on_their_own_address_are_absent_from_the_api() {
    let database = TestDatabase::create(Backend::Sqlite)
        .await
        .expect("SQLite is always there");
    let port = free_port();
    let metrics_addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let server = Server::start(
        &database.url,
        &["--metrics-addr", &metrics_addr.to_string()],
    )
    .await;
    let (status, text) = server.get("/metrics", &[]).await;
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("not_found"), "{text}");
    server.get("/healthz", &[]).await;
    let (status, text) = http(metrics_addr, "GET", "/metrics", &[]).await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("jeton_http_requests"), "{text}");
    let (status, _) = http(metrics_addr, "GET", "/api/v1/products", &[])
        .await
        .unwrap();
    assert_eq!(status, 404, "the metrics address serves nothing else");
}
