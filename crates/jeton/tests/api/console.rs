//! The operator's console (API.md §13, "The console") in a real browser
//! (headless Chromium over WebDriver), served by a real `jeton serve` at
//! `/console/` on a fresh SQLite database per scenario, walked as each role
//! would: an owner manages a client from creation to revocation and sees
//! its usage as the API counts it, support finds a customer and signs them
//! out everywhere, a viewer is offered no change and is refused one sent by
//! hand, and the audit log shows each action under its staff member.
//!
//! Every page is screenshotted (to a temporary folder, see
//! `support::browser::screenshot_dir`), and the browser's console log must
//! hold no error but the refusals a scenario provokes on purpose.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::support::{
    TestApp,
    browser::{BROWSERS, Browser, Demo, literal},
    process::{self, Reply, Server, within_a_second},
    staff::Authenticator,
};

/// Every member's password in these scenarios.
const PASSWORD: &str = "console horse battery";

/// A phone's viewport, and a laptop's.
const PHONE: (u32, u32) = (390, 844);
const LAPTOP: (u32, u32) = (1280, 800);

/// `jeton serve` on a fresh database with one member of each role (made on
/// the command line, as an operator would) and a back office's secret key.
struct Shop {
    server: Server,
    url: String,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Shop {
    /// `jeton serve` with `options` on top of a short usage interval.
    async fn start(options: &[&str]) -> Shop {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/jeton.db", dir.path().display());
        let admin = process::cli_admin_key(&url, &["usage:read", "staff:manage"]);
        for (role, name) in [
            ("owner", "Olive Owner"),
            ("developer", "Dev Eloper"),
            ("support", "Sam Support"),
            ("viewer", "Vic Viewer"),
        ] {
            process::staff_created(&url, &email_of(role), name, role, PASSWORD);
        }
        // Usage is flushed often, so that the console shows requests soon.
        let mut args = vec!["--usage-interval", "100ms"];
        args.extend_from_slice(options);
        let server = Server::start(&url, &args).await;
        Shop {
            server,
            url,
            admin,
            _dir: dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    fn console(&self) -> String {
        format!("http://{}/console/", self.addr())
    }

    /// One call from outside a browser, with `bearer` and, when given, an
    /// `Origin` (as a page of that origin would send it).
    async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        origin: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let authorization = format!("Bearer {bearer}");
        let mut headers = vec![("authorization", authorization.as_str())];
        if let Some(origin) = origin {
            headers.push(("origin", origin));
        }
        let body = body.map(|body| serde_json::to_vec(body).unwrap());
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let (status, text) =
            process::http_with_body(self.addr(), method, path, &headers, body.as_deref())
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        Reply::new(status, text)
    }

    /// `POST /admin/clients` with the back office's key: the 201's body.
    async fn create_client(&self, client: Value) -> Value {
        let created = self
            .call(
                "POST",
                "/api/v1/admin/clients",
                &self.admin,
                None,
                Some(&client),
            )
            .await;
        created.expect(201);
        created.json()
    }

    /// The usage API's answer for `path` and `query`, through the back
    /// office's key.
    async fn usage(&self, path: &str, query: &str) -> Value {
        let reply = self
            .call("GET", &format!("{path}?{query}"), &self.admin, None, None)
            .await;
        reply.expect(200);
        reply.json()
    }
}

fn email_of(role: &str) -> String {
    format!("{role}@shop.example")
}

/// A scenario's browser and shop, or `None` when the browser tests skip.
async fn open() -> Option<(Browser, Shop, tokio::sync::SemaphorePermit<'static>)> {
    open_with(&[]).await
}

/// The same with `jeton serve` `options`.
async fn open_with(
    options: &[&str],
) -> Option<(Browser, Shop, tokio::sync::SemaphorePermit<'static>)> {
    let permit = BROWSERS.acquire().await.unwrap();
    let browser = Browser::start().await?;
    let shop = Shop::start(options).await;
    browser.resize(LAPTOP.0, LAPTOP.1).await;
    Some((browser, shop, permit))
}

/// Signs `role`'s member in through the sign-in page.
async fn sign_in(browser: &Browser, shop: &Shop, role: &str) {
    browser.goto(&shop.console()).await;
    browser.heading("Sign in").await;
    browser.fill("Email", &email_of(role)).await;
    browser.fill("Password", PASSWORD).await;
    if role == "owner" {
        browser.screenshot_of("console", "sign-in").await;
    }
    browser.click_button("Sign in").await;
    browser.heading("Overview").await;
}

/// Follows a link of the main navigation.
async fn go(browser: &Browser, page: &str) {
    let xpath = format!(
        "//nav[@aria-label='Main']//a[normalize-space(.)={}]",
        literal(page)
    );
    browser.find(&xpath).await.click().await.unwrap();
}

/// Fails on any error in the browser's console log since the last look,
/// but the failed loads whose message contains one of `expected`.
async fn assert_no_console_errors(browser: &Browser, expected: &[&str]) {
    let errors: Vec<String> = browser
        .console_log()
        .await
        .into_iter()
        .filter(|(level, _)| level == "SEVERE" || level == "ERROR")
        .map(|(_, message)| message)
        .filter(|message| !expected.iter().any(|allowed| message.contains(allowed)))
        .collect();
    assert!(
        errors.is_empty(),
        "errors in the browser's console: {errors:#?}"
    );
}

/// The text of the first element `xpath` matches, once it has some.
async fn text_of(browser: &Browser, xpath: &str) -> String {
    browser.find(xpath).await.text().await.unwrap()
}

/// The chart's figure on the page: its range, and its numbers as text,
/// read from the totals table and the per-bucket table.
struct ShownUsage {
    granularity: String,
    from: String,
    to: String,
    totals: Vec<(String, u64)>,
    buckets: Vec<(String, Vec<(String, u64)>)>,
}

async fn shown_usage(browser: &Browser) -> ShownUsage {
    let read = browser
        .run(
            "const f = document.querySelector('figure.usage');
             const cells = (row) => [...row.querySelectorAll('td[data-outcome]')]
                 .map((td) => [td.dataset.outcome, Number(td.textContent)]);
             return {
               granularity: f.dataset.granularity, from: f.dataset.from, to: f.dataset.to,
               totals: [...f.querySelectorAll('table.totals tr[data-outcome]')]
                 .map((tr) => [tr.dataset.outcome, Number(tr.querySelector('td').textContent)]),
               buckets: [...f.querySelectorAll('table.buckets tr[data-time]')]
                 .map((tr) => [tr.dataset.time, cells(tr)]),
             };",
        )
        .await;
    let pairs = |value: &Value| -> Vec<(String, u64)> {
        value
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| {
                (
                    pair[0].as_str().unwrap().to_owned(),
                    pair[1].as_u64().unwrap(),
                )
            })
            .collect()
    };
    ShownUsage {
        granularity: read["granularity"].as_str().unwrap().to_owned(),
        from: read["from"].as_str().unwrap().to_owned(),
        to: read["to"].as_str().unwrap().to_owned(),
        totals: pairs(&read["totals"]),
        buckets: read["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|bucket| (bucket[0].as_str().unwrap().to_owned(), pairs(&bucket[1])))
            .collect(),
    }
}

/// The page's chart and its text against the usage API's answer for the
/// same range: every total and every bucket equal.
fn assert_usage_equals(shown: &ShownUsage, api: &Value) {
    assert_eq!(shown.granularity, api["granularity"]);
    assert_eq!(shown.from, api["from"]);
    assert_eq!(shown.to, api["to"]);
    for (outcome, count) in &shown.totals {
        assert_eq!(
            Some(*count),
            api["totals"][outcome].as_u64(),
            "the total of {outcome}"
        );
    }
    let series = api["series"].as_array().unwrap();
    assert_eq!(shown.buckets.len(), series.len());
    for ((time, counts), bucket) in shown.buckets.iter().zip(series) {
        assert_eq!(time, &bucket["time"]);
        for (outcome, count) in counts {
            assert_eq!(
                Some(*count),
                bucket[outcome].as_u64(),
                "{outcome} at {time}"
            );
        }
    }
}

/// Waits until the usage API counts `ok` passed and `refused` refusals
/// (origin) for the client: the flush interval has passed.
async fn wait_for_usage(shop: &Shop, client_id: &str, ok: u64, refused: u64) {
    let path = format!("/api/v1/admin/clients/{client_id}/usage");
    let start = Instant::now();
    loop {
        let usage = shop.usage(&path, "granularity=hour").await;
        let totals = &usage["totals"];
        if totals["ok"] == ok && totals["origin_not_allowed"] == refused {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the usage API never counted {ok} and {refused}: {usage}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The audit log page filtered by `member` (the visible name in the staff
/// member filter): the (action, by) of each row.
async fn audit_rows_by(browser: &Browser, member: &str) -> Vec<(String, String)> {
    go(browser, "Audit log").await;
    browser.heading("Audit log").await;
    browser
        .field("Staff member")
        .await
        .select_by_label(member)
        .await
        .expect("the member is offered as a filter");
    browser.click_button("Filter").await;
    browser
        .wait_until(Duration::from_secs(10), "the filtered log", || async {
            browser
                .run("return location.hash;")
                .await
                .as_str()
                .unwrap()
                .contains("staff_id=")
                && !browser
                    .find_all("//table[@aria-label='Audit events']//tbody/tr")
                    .await
                    .is_empty()
        })
        .await;
    let rows = browser
        .run(
            "return [...document.querySelectorAll('table[aria-label=\"Audit events\"] tbody tr')]
               .map((tr) => [tr.children[1].textContent, tr.children[2].textContent]);",
        )
        .await;
    rows.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row[0].as_str().unwrap().to_owned(),
                row[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------- serving (no browser needed)

/// `/console/` and its files come from the API's own address with the
/// contract's policy, `nosniff`, `no-store` and no CORS, even for an origin
/// that a client allows; `/console` leads there; `/docs` has a strict
/// policy too.
#[tokio::test]
async fn the_console_is_served_with_a_strict_policy() {
    let app = TestApp::sqlite().await;
    let admin = app.admin_key().await;
    app.post("/api/v1/admin/clients")
        .bearer(&admin)
        .json(json!({"name": "Storefront", "kind": "publishable",
            "abilities": ["products:read"], "allowed_origins": ["http://shop.example"]}))
        .send()
        .await
        .expect(201);
    let page = app.get("/console/").send().await;
    page.expect(200);
    assert_eq!(
        page.header("content-security-policy").as_deref(),
        Some("default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
    );
    assert_eq!(
        page.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(page.header("cache-control").as_deref(), Some("no-store"));
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text();
    assert!(
        html.contains("<script type=\"module\" src=\"app.js\">"),
        "{html}"
    );
    // Nothing inline for the policy to block, nothing from elsewhere.
    assert!(!html.contains("style="), "{html}");
    assert!(!html.contains("http"), "{html}");
    for file in ["app.js", "api.js", "chart.js", "style.css", "favicon.svg"] {
        let res = app
            .get(&format!("/console/{file}"))
            .header("origin", "http://shop.example")
            .send()
            .await;
        res.expect(200);
        assert!(
            res.header("access-control-allow-origin").is_none(),
            "{file}"
        );
        assert!(res.header("content-security-policy").is_some(), "{file}");
    }
    let preflight = app
        .req(axum::http::Method::OPTIONS, "/console/app.js")
        .header("origin", "http://shop.example")
        .header("access-control-request-method", "GET")
        .send()
        .await;
    assert!(preflight.header("access-control-allow-origin").is_none());
    // The same origin is one the API answers elsewhere.
    let api_preflight = app
        .req(axum::http::Method::OPTIONS, "/api/v1/products")
        .header("origin", "http://shop.example")
        .header("access-control-request-method", "GET")
        .send()
        .await;
    assert_eq!(
        api_preflight
            .header("access-control-allow-origin")
            .as_deref(),
        Some("http://shop.example")
    );

    let bare = app.get("/console").send().await;
    assert_eq!(bare.status, 308);
    assert_eq!(bare.header("location").as_deref(), Some("/console/"));
    app.get("/console/nothing.js").send().await.expect(404);

    let docs = app.get("/docs/").send().await;
    docs.expect(200);
    let csp = docs.header("content-security-policy").unwrap();
    assert!(csp.starts_with("default-src 'self';"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}

/// `serve --demo` serves the console on the API's address too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_demo_serves_the_console_on_the_api_address() {
    let demo = Demo::start().await;
    let (status, text) = process::http(demo.api, "GET", "/console/", &[])
        .await
        .unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("<title>Jeton console</title>"), "{text}");
    let (status, _) = process::http(demo.storefront, "GET", "/console/", &[])
        .await
        .unwrap();
    assert_eq!(status, 404, "the storefront's origin has no console");
}

// ---------------------------------------------------------------- an owner

/// An owner signs in, creates a publishable client and sees its key once;
/// requests made with the key show in the client's chart and its text as
/// the usage API counts them; the owner rotates the key, adds an origin
/// (which works within a second), revokes the client, and finds each of
/// these actions under their name in the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_runs_a_client_from_creation_to_revocation() {
    let Some((browser, shop, _permit)) = open().await else {
        return;
    };
    sign_in(&browser, &shop, "owner").await;

    // Two-step sign-in: the QR code drawn in the page, the first code turns
    // it on; signing in again asks for a code.
    go(&browser, "My account").await;
    browser.heading("My account").await;
    browser.click_button("Set up two-step sign-in").await;
    let uri = browser
        .find("//a[@class='otpauth']")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let qr = browser
        .run(
            "const qr = document.querySelector('svg.qr');
             return qr ? [qr.namespaceURI, qr.querySelectorAll('*').length] : null;",
        )
        .await;
    assert_eq!(qr[0], "http://www.w3.org/2000/svg", "{qr}");
    assert!(qr[1].as_u64().unwrap() > 0, "an empty QR code");
    browser
        .run("document.querySelector('svg.qr').scrollIntoView({block: 'center'});")
        .await;
    browser.screenshot_of("console", "account-mfa").await;
    let app = Authenticator::from_uri(&uri);
    let now = time::OffsetDateTime::now_utc();
    browser
        .fill("Code from your authenticator app", &app.code(now))
        .await;
    browser.click_button("Turn on two-step sign-in").await;
    browser
        .find("//*[@role='status' and normalize-space(.)='Two-step sign-in is on.']")
        .await;
    browser.click_button("Sign out").await;
    browser.heading("Sign in").await;
    browser.fill("Email", &email_of("owner")).await;
    browser.fill("Password", PASSWORD).await;
    browser.click_button("Sign in").await;
    // The code of the next step: the one above was used, and one step of
    // drift is allowed.
    let code = app.code(time::OffsetDateTime::now_utc() + Duration::from_secs(30));
    browser
        .fill("Code from your authenticator app", &code)
        .await;
    browser.screenshot_of("console", "sign-in-code").await;
    browser.click_button("Sign in").await;
    browser.heading("Overview").await;
    browser.find("//figure[contains(@class, 'usage')]").await;
    browser.screenshot_of("console", "overview").await;

    // Create: the key is shown once, with a copy button and the warning,
    // and kept in no storage.
    go(&browser, "Clients").await;
    browser.heading("Clients").await;
    browser.click_link("New client").await;
    browser.heading("New client").await;
    browser.fill("Name", "Mobile app").await;
    // A mistake is explained in the API's words, and nothing is made.
    browser.fill("Allowed origins", "app.shop.example").await;
    browser.click_button("Create client").await;
    let alert = browser.alert("allowed_origins").await;
    assert!(!alert.contains('{'), "{alert}");
    browser
        .fill("Allowed origins", "http://app.shop.example")
        .await;
    browser.screenshot_of("console", "new-client").await;
    browser.click_button("Create client").await;
    let key = text_of(&browser, "//output[@aria-label='New key']").await;
    assert!(key.starts_with("jt_pk_"), "{key}");
    let warning = text_of(&browser, "//p[contains(@class, 'warning')]").await;
    assert!(warning.contains("will not be shown again"), "{warning}");
    browser.button("Copy new key").await;
    browser.screenshot_of("console", "new-client-key").await;
    let storage = browser.storage().await;
    assert!(!storage.contains(&key[key.len() - 8..]), "{storage}");
    let cookies = browser.run("return document.cookie;").await;
    assert!(!cookies.as_str().unwrap().contains("jt_"), "{cookies}");
    browser.click_link("Go to the client").await;
    browser.heading("Client: Mobile app").await;
    let client_id = browser
        .run("return location.hash.split('/').pop();")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    // The key is not on the client's page, only its last four.
    let html = browser.run("return document.body.innerHTML;").await;
    assert!(
        !html.as_str().unwrap().contains(&key),
        "the key shown again"
    );

    // Requests with the key: five pass, two come from an origin it does
    // not allow.
    for _ in 0..5 {
        shop.call("GET", "/api/v1/products", &key, None, None)
            .await
            .expect(200);
    }
    for _ in 0..2 {
        shop.call(
            "GET",
            "/api/v1/products",
            &key,
            Some("http://elsewhere.example"),
            None,
        )
        .await
        .expect_problem(403, "origin_not_allowed");
    }
    wait_for_usage(&shop, &client_id, 5, 2).await;
    let usage_path = format!("/api/v1/admin/clients/{client_id}/usage");
    for (range, label) in [
        ("24h", "Last 24 hours (by hour)"),
        ("1h", "Last hour (by minute)"),
        ("7d", "Last 7 days (by day)"),
        ("30d", "Last 30 days (by day)"),
    ] {
        browser
            .field("Range")
            .await
            .select_by_label(label)
            .await
            .unwrap();
        if range == "24h" {
            browser.click_button("Refresh").await;
        }
        // Every bucket of the range, the current one included.
        let (granularity, buckets) = match range {
            "1h" => ("minute", 60),
            "24h" => ("hour", 24),
            "7d" => ("day", 7),
            _ => ("day", 30),
        };
        browser
            .wait_until(
                Duration::from_secs(10),
                "the chart of the range",
                || async {
                    browser
                        .run(&format!(
                            "const f = document.querySelector('figure.usage');
                         return Boolean(f) && f.dataset.granularity === '{granularity}'
                           && f.querySelectorAll('table.buckets tr[data-time]').length === {buckets}
                           && f.querySelector('tr[data-outcome=ok] td').textContent === '5';"
                        ))
                        .await
                        == json!(true)
                },
            )
            .await;
        let shown = shown_usage(&browser).await;
        let api = shop
            .usage(
                &usage_path,
                &format!(
                    "granularity={}&from={}&to={}",
                    shown.granularity, shown.from, shown.to
                ),
            )
            .await;
        assert_usage_equals(&shown, &api);
        assert_eq!(api["totals"]["ok"], 5, "{range}");
        assert_eq!(api["totals"]["origin_not_allowed"], 2, "{range}");
        if range == "1h" {
            browser
                .run("document.querySelector('figure.usage').scrollIntoView();")
                .await;
            browser.screenshot_of("console", "client").await;
        }
    }

    // Rotate with a grace period: both keys work for now, the new one is
    // shown once.
    browser
        .fill("Seconds the old keys keep working", "300")
        .await;
    browser.click_button("Rotate key").await;
    let new_key = text_of(&browser, "//output[@aria-label='New key']").await;
    assert!(new_key.starts_with("jt_pk_") && new_key != key);
    // The keys list shows both, the old one with its end.
    browser
        .wait_until(Duration::from_secs(10), "two keys listed", || async {
            browser
                .find_all("//table[@aria-label='Keys']//tbody/tr")
                .await
                .len()
                == 2
        })
        .await;
    // The old key was used (its usage is written): its last use is shown.
    let last_used = browser
        .run(
            "return [...document.querySelectorAll('table[aria-label=Keys] tbody tr')]
               .map((row) => row.cells[2].textContent);",
        )
        .await;
    let shown: Vec<String> = serde_json::from_value(last_used).unwrap();
    assert_eq!(shown.len(), 2);
    assert!(shown.iter().any(|cell| cell != "not yet"), "{shown:?}");
    assert!(shown.contains(&"not yet".to_owned()), "{shown:?}");
    browser.screenshot_of("console", "client-rotated").await;
    for key in [&key, &new_key] {
        shop.call("GET", "/api/v1/products", key, None, None)
            .await
            .expect(200);
    }

    // A new origin works within a second of saving it.
    let origin = "http://www.shop.example";
    shop.call("GET", "/api/v1/products", &new_key, Some(origin), None)
        .await
        .expect_problem(403, "origin_not_allowed");
    browser
        .fill(
            "Allowed origins",
            &format!("http://app.shop.example\n{origin}"),
        )
        .await;
    // With its name, its limit and one ability fewer.
    browser.fill("Name", "Mobile app (iOS)").await;
    browser.fill("Requests per minute", "1200").await;
    browser.field("auth:login").await.click().await.unwrap();
    browser.click_button("Save changes").await;
    let saved = Instant::now();
    browser
        .find("//*[@role='status' and normalize-space(.)='The client was saved.']")
        .await;
    let client = shop
        .call(
            "GET",
            &format!("/api/v1/admin/clients/{client_id}"),
            &shop.admin,
            None,
            None,
        )
        .await
        .json();
    assert_eq!(client["name"], "Mobile app (iOS)");
    assert_eq!(client["rate_limit_per_minute"], 1200);
    assert_eq!(
        client["abilities"],
        json!(["customers:create", "products:read"])
    );
    browser.heading("Client: Mobile app (iOS)").await;
    within_a_second(saved, "the new origin", || async {
        let reply = shop
            .call("GET", "/api/v1/products", &new_key, Some(origin), None)
            .await;
        if reply.status == 200 {
            Ok(())
        } else {
            Err(reply.body)
        }
    })
    .await;

    // Revoke, with the users' tokens: every key stops at once.
    browser.click_button("Revoke client").await;
    browser.click_button("Yes, revoke it").await;
    browser
        .find("//*[@role='status' and normalize-space(.)='The client was revoked.']")
        .await;
    for key in [&key, &new_key] {
        let reply = shop.call("GET", "/api/v1/products", key, None, None).await;
        assert_eq!(reply.status, 401, "{}", reply.body);
    }
    assert!(
        browser
            .find_all("//button[normalize-space(.)='Rotate key']")
            .await
            .is_empty()
    );
    browser.screenshot_of("console", "client-revoked").await;

    // The clients list, each with its sparkline and its total as text, the
    // usage API's (once the last requests are flushed).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let day = shop.usage(&usage_path, "granularity=hour").await;
    let total: u64 = day["totals"]
        .as_object()
        .unwrap()
        .values()
        .map(|count| count.as_u64().unwrap())
        .sum();
    go(&browser, "Clients").await;
    let spark = text_of(
        &browser,
        "//table[@aria-label='Clients']//tr[.//a[normalize-space(.)='Mobile app (iOS)']]\
         //span[@class='spark-text']",
    )
    .await;
    assert!(
        spark.starts_with(&format!("{total} requests, ")),
        "{spark}: {day}"
    );
    browser.screenshot_of("console", "clients").await;

    // The client's refusals: the usage API's, by outcome.
    browser.click_link("Mobile app (iOS)").await;
    browser.heading("Client: Mobile app (iOS)").await;
    let month = shop
        .usage(
            &usage_path,
            &format!(
                "granularity=day&from={}",
                (time::OffsetDateTime::now_utc() - Duration::from_secs(29 * 86_400))
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap()
            ),
        )
        .await;
    for (words, outcome) in [
        ("Origin not allowed", "origin_not_allowed"),
        ("Revoked credential", "revoked"),
    ] {
        let shown = text_of(
            &browser,
            &format!(
                "//table[@aria-label='Refused requests']//tr[th[normalize-space(.)='{words}']]/td"
            ),
        )
        .await;
        assert_eq!(
            shown,
            month["totals"][outcome].to_string(),
            "{words}: {month}"
        );
    }
    assert!(month["totals"]["revoked"].as_u64().unwrap() >= 2, "{month}");
    browser
        .run("document.getElementById('refusals-h').scrollIntoView();")
        .await;
    browser.screenshot_of("console", "client-refusals").await;

    // Staff: invite a colleague (the link shown once), change their role,
    // disable them.
    go(&browser, "Staff").await;
    browser.heading("Staff").await;
    browser.fill("Email", "nia@shop.example").await;
    browser.fill("Name", "Nia New").await;
    browser
        .field("Role")
        .await
        .select_by_label("support")
        .await
        .unwrap();
    browser.click_button("Send invitation").await;
    let link = text_of(&browser, "//output[@aria-label='Invitation link']").await;
    assert!(link.contains("/console/#/invite/"), "{link}");
    browser.screenshot_of("console", "staff-invited").await;
    go(&browser, "Overview").await;
    go(&browser, "Staff").await;
    browser
        .find("//table[@aria-label='Staff']//td[normalize-space(.)='nia@shop.example']")
        .await;
    browser
        .find("//select[@aria-label='Role of nia@shop.example']")
        .await
        .select_by_label("viewer")
        .await
        .unwrap();
    browser
        .click_button("Change the role of nia@shop.example")
        .await;
    browser
        .find("//*[@role='status' and normalize-space(.)='nia@shop.example is now viewer.']")
        .await;
    browser.click_button("Disable nia@shop.example").await;
    browser
        .find("//*[@role='status' and normalize-space(.)='nia@shop.example is disabled.']")
        .await;
    browser.screenshot_of("console", "staff").await;

    // The audit log: each action under the owner's name.
    let rows = audit_rows_by(&browser, "Olive Owner (you)").await;
    for action in [
        "staff.mfa_enabled",
        "client.created",
        "client.key_rotated",
        "client.updated",
        "client.revoked",
        "staff.invited",
        "staff.role_changed",
        "staff.disabled",
    ] {
        assert!(
            rows.iter()
                .any(|(a, by)| a == action && by == "Olive Owner (you)"),
            "{action} under the owner: {rows:?}"
        );
    }
    browser.screenshot_of("console", "audit").await;

    // Products: create one, restock it.
    go(&browser, "Products").await;
    browser.heading("Products").await;
    browser.click_link("New product").await;
    browser.fill("SKU", "MUG-1").await;
    browser.fill("Name", "Mug").await;
    browser.fill("Description", "A large mug.").await;
    browser.fill("Price", "12.50").await;
    browser.fill("Currency", "EUR").await;
    browser.fill("Stock", "3").await;
    browser.click_button("Create product").await;
    browser.heading("Product: Mug").await;
    browser.fill("Units to add", "7").await;
    browser.click_button("Update stock").await;
    browser
        .find("//*[@role='status' and normalize-space(.)='Stock is now 10.']")
        .await;
    assert_eq!(text_of(&browser, "//strong[@class='stock']").await, "10");
    browser.screenshot_of("console", "product").await;
    go(&browser, "Products").await;
    browser
        .find("//table[@aria-label='Products']//a[normalize-space(.)='Mug']")
        .await;
    browser.screenshot_of("console", "products").await;

    // One's own account.
    go(&browser, "My account").await;
    browser.heading("My account").await;
    browser.screenshot_of("console", "account").await;

    assert_no_console_errors(
        &browser,
        &[
            "/api/v1/admin/clients - Failed to load resource: the server responded with a status of 422",
            // The sign-in without its code.
            "/api/v1/staff/login - Failed to load resource: the server responded with a status of 401",
        ],
    )
    .await;
    browser.close().await;
}

// ---------------------------------------------------------------- support

/// On a server that requires a second factor, support sets one up before
/// anything else; then finds a customer by the start of their email, sees
/// their tokens and orders, cancels an order, and revokes every token: the
/// customer's token then gets 401, and the audit log shows the revocation
/// under support's name. At a phone's width.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_finds_a_customer_and_signs_them_out_everywhere() {
    let Some((browser, shop, _permit)) = open_with(&["--require-staff-mfa"]).await else {
        return;
    };
    // A customer with a token and an order, made through the API.
    let pk = process::cli_key(
        &shop.url,
        &[
            "--name",
            "Storefront",
            "--kind",
            "publishable",
            "--ability",
            "products:read",
            "--ability",
            "customers:create",
            "--ability",
            "auth:login",
            "--origin",
            "http://shop.example",
        ],
    );
    let email = "jo.customer@example.com";
    shop.call(
        "POST",
        "/api/v1/customers",
        &pk,
        None,
        Some(&json!({"email": email, "password": "customer password", "name": "Jo"})),
    )
    .await
    .expect(201);
    let login = shop
        .call(
            "POST",
            "/api/v1/auth/login",
            &pk,
            None,
            Some(&json!({"email": email, "password": "customer password", "device_name": "Phone"})),
        )
        .await;
    login.expect(201);
    let token = login.json()["token"].as_str().unwrap().to_owned();
    let product = shop
        .call(
            "POST",
            "/api/v1/admin/products",
            &shop.admin,
            None,
            Some(
                &json!({"sku": "TEA-1", "name": "Tea", "description": "Green tea.",
                "price": {"amount": 450, "currency": "EUR"}, "stock": 5}),
            ),
        )
        .await;
    product.expect(201);
    let product_id = product.json()["id"].as_str().unwrap().to_owned();
    shop.call(
        "POST",
        "/api/v1/orders",
        &token,
        None,
        Some(&json!({"items": [{"product_id": product_id, "quantity": 2}]})),
    )
    .await
    .expect(201);

    browser.resize(PHONE.0, PHONE.1).await;
    // The server requires a second factor: support, who has none, is taken
    // to set one up, and offered nothing else until then.
    browser.goto(&shop.console()).await;
    browser.fill("Email", &email_of("support")).await;
    browser.fill("Password", PASSWORD).await;
    browser.click_button("Sign in").await;
    browser.heading("My account").await;
    browser
        .find("//*[@role='status' and contains(., 'requires two-step sign-in')]")
        .await;
    assert!(!browser.nav_has("Customers").await);
    assert!(browser.nav_has("My account").await);
    assert!(
        browser
            .find_all("//button[normalize-space(.)='Change password']")
            .await
            .is_empty()
    );
    browser.click_button("Set up two-step sign-in").await;
    let uri = browser
        .find("//a[@class='otpauth']")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let app = Authenticator::from_uri(&uri);
    browser
        .fill(
            "Code from your authenticator app",
            &app.code(time::OffsetDateTime::now_utc()),
        )
        .await;
    browser.click_button("Turn on two-step sign-in").await;
    browser
        .find("//*[@role='status' and normalize-space(.)='Two-step sign-in is on.']")
        .await;
    // Support is not offered what only others may do.
    assert!(!browser.nav_has("Products").await);
    assert!(!browser.nav_has("Staff").await);
    go(&browser, "Customers").await;
    browser.heading("Customers").await;
    browser.fill("Email starts with", "jo.cu").await;
    browser.click_button("Search").await;
    browser
        .find(&format!(
            "//table[@aria-label='Customers']//a[normalize-space(.)={}]",
            literal(email)
        ))
        .await;
    browser.screenshot_of("console", "customers").await;
    browser.click_link(email).await;
    browser.heading(&format!("Customer: {email}")).await;
    browser
        .find("//table[@aria-label='Tokens']//td[normalize-space(.)='Phone']")
        .await;
    browser
        .find("//table[@aria-label='Orders']//td[normalize-space(.)='2 × Tea']")
        .await;
    browser.screenshot_of("console", "customer").await;

    // Cancel the order from the orders page: its stock returns.
    go(&browser, "Orders").await;
    browser.heading("Orders").await;
    browser
        .find("//table[@aria-label='Orders']//td[normalize-space(.)='placed']")
        .await;
    browser.screenshot_of("console", "orders").await;
    browser
        .find("//table[@aria-label='Orders']//button[normalize-space(.)='Cancel order']")
        .await
        .click()
        .await
        .unwrap();
    browser
        .find("//table[@aria-label='Orders']//td[normalize-space(.)='cancelled']")
        .await;
    let stock = shop
        .call(
            "GET",
            &format!("/api/v1/products/{product_id}"),
            &pk,
            None,
            None,
        )
        .await;
    assert_eq!(stock.json()["stock"], 5);

    // Revoke every token: the customer's token gets 401.
    browser.run("history.back();").await;
    browser.heading(&format!("Customer: {email}")).await;
    shop.call("GET", "/api/v1/me", &token, None, None)
        .await
        .expect(200);
    browser.click_button("Revoke all tokens").await;
    browser.click_button("Yes, revoke them").await;
    browser
        .find(&format!(
            "//*[@role='status' and normalize-space(.)={}]",
            literal(&format!("Every token of {email} was revoked."))
        ))
        .await;
    assert_eq!(text_of(&browser, "//dd[@class='token-count']").await, "0");
    shop.call("GET", "/api/v1/me", &token, None, None)
        .await
        .expect_problem(401, "invalid_token");

    let rows = audit_rows_by(&browser, "Sam Support (you)").await;
    for action in ["user_tokens.revoked_all", "order.cancelled"] {
        assert!(
            rows.iter()
                .any(|(a, by)| a == action && by == "Sam Support (you)"),
            "{action} under support: {rows:?}"
        );
    }
    browser.screenshot_of("console", "audit-phone").await;
    assert_no_console_errors(&browser, &[]).await;
    browser.close().await;
}

// ---------------------------------------------------------------- a viewer

/// A viewer sees every page but is offered no change at all; a change sent
/// by hand from the page, with their session and its CSRF token, is 403.
/// A developer then gets the client controls but not the staff's page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_is_offered_no_change_and_a_developer_no_staff() {
    let Some((browser, shop, _permit)) = open().await else {
        return;
    };
    let created = shop
        .create_client(json!({"name": "Storefront", "kind": "publishable",
            "abilities": ["products:read"], "allowed_origins": ["http://shop.example"]}))
        .await;
    let client_id = created["client"]["id"].as_str().unwrap().to_owned();

    // A secret key sent from a page: flagged on the overview.
    let leaky = shop
        .create_client(
            json!({"name": "Leaky server", "kind": "secret", "abilities": ["products:read"]}),
        )
        .await;
    let leaked = leaky["key"].as_str().unwrap().to_owned();
    shop.call(
        "GET",
        "/api/v1/products",
        &leaked,
        Some("http://shop.example"),
        None,
    )
    .await
    .expect_problem(403, "secret_key_in_browser");

    // The viewer was invited: the link's page sets their password.
    let invited = shop
        .call(
            "POST",
            "/api/v1/admin/staff",
            &shop.admin,
            None,
            Some(&json!({"email": "vera@shop.example", "name": "Vera Viewer", "role": "viewer"})),
        )
        .await;
    invited.expect(201);
    let link = invited.json()["invite_url"].as_str().unwrap().to_owned();
    browser.goto(&link).await;
    browser.heading("Join the console").await;
    browser.fill("Password", PASSWORD).await;
    browser.fill("Password again", PASSWORD).await;
    browser.screenshot_of("console", "invitation").await;
    browser.click_button("Set password").await;
    browser.heading("Sign in").await;
    browser
        .find("//*[@role='status' and contains(., 'Your password is set')]")
        .await;

    // A wrong password is refused in plain words.
    browser.fill("Email", "vera@shop.example").await;
    browser.fill("Password", "not the password").await;
    browser.click_button("Sign in").await;
    let alert = browser.alert("password").await;
    assert!(!alert.contains('{'), "{alert}");
    browser.fill("Password", PASSWORD).await;
    browser.click_button("Sign in").await;
    browser.heading("Overview").await;
    browser
        .find("//table[caption='Keys used from a browser or exposed']//a[normalize-space(.)='Leaky server']")
        .await;
    for absent in ["Products", "Staff"] {
        assert!(!browser.nav_has(absent).await, "{absent} offered");
    }
    go(&browser, "Clients").await;
    browser
        .find("//table[@aria-label='Clients']//a[normalize-space(.)='Storefront']")
        .await
        .click()
        .await
        .unwrap();
    browser.heading("Client: Storefront").await;
    browser.find("//figure[contains(@class, 'usage')]").await;
    browser.screenshot_of("console", "client-viewer").await;
    for page in [
        "Overview",
        "Clients",
        "Customers",
        "Orders",
        "Audit log",
        "My account",
    ] {
        go(&browser, page).await;
        browser
            .wait_until(Duration::from_secs(10), "the page", || async {
                browser.find_all("//main//h1").await.len() == 1
            })
            .await;
        assert_offers_no_change(&browser, page).await;
    }
    go(&browser, "Clients").await;
    browser.find("//table[@aria-label='Clients']").await;
    assert!(
        browser
            .find_all("//a[normalize-space(.)='New client']")
            .await
            .is_empty()
    );
    browser
        .run(&format!("location.hash = '#/clients/{client_id}';"))
        .await;
    browser.heading("Client: Storefront").await;
    browser.find("//h2[normalize-space(.)='Refusals']").await;
    assert_offers_no_change(&browser, "a client").await;

    // By hand: the session and its CSRF token, but not the ability.
    let answer = browser
        .run_async(
            "const [id, done] = arguments;
             const csrf = document.cookie.split('; ')
               .find((c) => c.startsWith('jeton_staff_csrf=')).split('=')[1];
             fetch('/api/v1/admin/clients/' + id, {
               method: 'PATCH',
               headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
               body: JSON.stringify({name: 'Taken over'}),
             }).then((r) => r.json().then((b) => done([r.status, b.code, b.scope])));",
            vec![json!(client_id)],
        )
        .await;
    assert_eq!(answer[0], 403, "{answer}");
    assert_eq!(answer[1], "insufficient_scope", "{answer}");
    let client = shop
        .call(
            "GET",
            &format!("/api/v1/admin/clients/{client_id}"),
            &shop.admin,
            None,
            None,
        )
        .await;
    assert_eq!(client.json()["name"], "Storefront");

    // At a phone's width, the overview still reads.
    browser.resize(PHONE.0, PHONE.1).await;
    go(&browser, "Overview").await;
    browser.find("//figure[contains(@class, 'usage')]").await;
    browser.screenshot_of("console", "overview-phone").await;
    assert_no_console_errors(
        &browser,
        &[
            &format!(
                "/api/v1/admin/clients/{client_id} - Failed to load resource: the server responded with a status of 403"
            ),
            "/api/v1/staff/login - Failed to load resource: the server responded with a status of 401",
        ],
    )
    .await;

    // A developer, after the viewer signs out: clients and products, but
    // neither the staff nor a customer's tokens to revoke.
    browser.resize(LAPTOP.0, LAPTOP.1).await;
    browser.click_button("Sign out").await;
    browser.heading("Sign in").await;
    sign_in(&browser, &shop, "developer").await;
    assert!(browser.nav_has("Products").await);
    assert!(!browser.nav_has("Staff").await);
    go(&browser, "Clients").await;
    browser.click_link("New client").await;
    browser.heading("New client").await;
    go(&browser, "Clients").await;
    browser
        .find("//table[@aria-label='Clients']//a[normalize-space(.)='Storefront']")
        .await
        .click()
        .await
        .unwrap();
    browser
        .find("//button[normalize-space(.)='Rotate key']")
        .await;
    assert_no_console_errors(&browser, &[]).await;
    browser.close().await;
}

/// A tiny receiver on 127.0.0.1 that answers every POST with 200 and a
/// body of markup (shown as text in the delivery log, never as HTML).
async fn receiver() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app =
        axum::Router::new().route("/hook", axum::routing::post(|| async { "<b>received</b>" }));
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}/hook"), task)
}

/// The owner creates a webhook to a local receiver, sees its secret once,
/// sends a test event and sees it delivered in the log with the receiver's
/// status; a publishable key reported exposed is flagged on the overview;
/// a viewer sees the webhooks and their log but no control.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_sends_a_test_event_to_a_webhook_and_a_viewer_only_looks() {
    let Some((browser, shop, _permit)) = open_with(&["--webhook-allow-http-private"]).await else {
        return;
    };
    let (url, task) = receiver().await;

    // A publishable key found in public: flagged, not revoked.
    let created = shop
        .create_client(json!({"name": "Exposed storefront", "kind": "publishable",
            "abilities": ["products:read"], "allowed_origins": ["http://shop.example"]}))
        .await;
    let key = created["key"].as_str().unwrap().to_owned();
    shop.call(
        "POST",
        "/api/v1/admin/leaks",
        &shop.admin,
        None,
        Some(&json!({"tokens": [key], "source": "test"})),
    )
    .await
    .expect(200);

    sign_in(&browser, &shop, "owner").await;
    let exposed = text_of(
        &browser,
        "//table[caption='Keys used from a browser or exposed']//tr[.//a[normalize-space(.)='Exposed storefront']]",
    )
    .await;
    assert!(exposed.contains(&key[key.len() - 4..]), "{exposed}");

    go(&browser, "Webhooks").await;
    browser.heading("Webhooks").await;
    browser
        .find("//p[normalize-space(.)='No webhook yet.']")
        .await;
    browser.click_link("New webhook").await;
    browser.heading("New webhook").await;
    browser.fill("URL", &url).await;
    browser.fill("Description", "The back office").await;
    browser.field("order.placed").await.click().await.unwrap();
    browser.screenshot_of("console", "new-webhook").await;
    browser.click_button("Create webhook").await;
    let secret = text_of(&browser, "//output[@aria-label='Signing secret']").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    browser
        .find("//*[contains(@class, 'warning') and contains(., 'will not be shown again')]")
        .await;
    browser.button("Copy signing secret").await;
    assert!(!browser.storage().await.contains(&secret));
    browser.screenshot_of("console", "new-webhook-secret").await;
    browser.click_link("Go to the webhook").await;
    browser.heading(&format!("Webhook: {url}")).await;
    assert!(
        browser
            .find_all(&format!("//*[contains(., {})]", literal(&secret)))
            .await
            .is_empty(),
        "the secret is shown again"
    );

    browser.click_button("Send test event").await;
    browser
        .find("//*[@role='status' and contains(., 'test event')]")
        .await;
    // The worker polls: the page's Refresh until the row reads delivered.
    let row = "//table[@aria-label='Deliveries']//tr[td[1]='webhook.test' and td[2]='succeeded']";
    browser
        .wait_until(
            Duration::from_secs(10),
            "the test event delivered",
            || async {
                if browser.find_all(row).await.is_empty() {
                    browser.click_button("Refresh").await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    false
                } else {
                    true
                }
            },
        )
        .await;
    let delivered = text_of(&browser, row).await;
    assert!(delivered.contains("200"), "{delivered}");
    // The receiver's body is text in a <pre>, not markup.
    assert_eq!(
        text_of(&browser, &format!("{row}//pre")).await,
        "<b>received</b>"
    );
    assert!(browser.find_all(&format!("{row}//pre/b")).await.is_empty());
    browser.button("Retry").await;
    browser
        .run("document.getElementById('log-h').scrollIntoView();")
        .await;
    browser.screenshot_of("console", "webhook").await;

    // Rotation: a new secret, once, and the old one's 24 hours said.
    browser.click_button("Rotate secret").await;
    let rotated = text_of(&browser, "//output[@aria-label='New signing secret']").await;
    assert_ne!(rotated, secret);
    browser
        .find("//*[contains(@class, 'warning') and contains(., '24 hours')]")
        .await;

    // Disabled by hand, with its reason on the list.
    browser.click_button("Disable webhook").await;
    browser
        .find("//*[@role='status' and contains(., 'disabled')]")
        .await;
    go(&browser, "Webhooks").await;
    let listed = text_of(
        &browser,
        &format!(
            "//table[@aria-label='Webhooks']//tr[.//a[normalize-space(.)={}]]",
            literal(&url)
        ),
    )
    .await;
    assert!(
        listed.contains("order.placed") && listed.contains("disabled"),
        "{listed}"
    );
    browser.screenshot_of("console", "webhooks").await;
    assert_no_console_errors(&browser, &[]).await;

    // A viewer: the list and the log, no control.
    browser.click_button("Sign out").await;
    browser.heading("Sign in").await;
    sign_in(&browser, &shop, "viewer").await;
    go(&browser, "Webhooks").await;
    browser
        .find(&format!(
            "//table[@aria-label='Webhooks']//a[normalize-space(.)={}]",
            literal(&url)
        ))
        .await
        .click()
        .await
        .unwrap();
    browser.heading(&format!("Webhook: {url}")).await;
    browser
        .find("//table[@aria-label='Deliveries']//td[normalize-space(.)='webhook.test']")
        .await;
    assert_offers_no_change(&browser, "a webhook").await;
    go(&browser, "Webhooks").await;
    browser.find("//table[@aria-label='Webhooks']").await;
    assert!(
        browser
            .find_all("//a[normalize-space(.)='New webhook']")
            .await
            .is_empty()
    );
    assert_offers_no_change(&browser, "Webhooks").await;
    assert_no_console_errors(&browser, &[]).await;
    task.abort();
    browser.close().await;
}

/// No control on the page changes anything: the only buttons are the
/// navigation's own (sign out, refresh, filter, search, next page), and no
/// form but the filters, searches and one's own password.
async fn assert_offers_no_change(browser: &Browser, page: &str) {
    let buttons = browser
        .run("return [...document.querySelectorAll('button')].map((b) => b.textContent.trim());")
        .await;
    let allowed = [
        "Sign out",
        "Refresh",
        "Filter",
        "Search",
        "Show",
        "Next page",
        "Change password",
        "Set up two-step sign-in",
    ];
    for button in buttons.as_array().unwrap() {
        let button = button.as_str().unwrap();
        assert!(allowed.contains(&button), "{page} offers {button:?}");
    }
}

// ---------------------------------------------------------------- the reference

/// The API reference at `/docs` loads under its strict policy with no
/// error in the browser's console.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_reference_loads_under_its_policy() {
    let Some((browser, shop, _permit)) = open().await else {
        return;
    };
    browser.goto(&format!("http://{}/docs/", shop.addr())).await;
    browser.find("//*[contains(@class, 'opblock-tag')]").await;
    browser.screenshot_of("console", "api-reference").await;
    assert_no_console_errors(&browser, &[]).await;
    browser.close().await;
}
