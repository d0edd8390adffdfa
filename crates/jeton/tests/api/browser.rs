//! The storefront in a real browser (headless Chromium over WebDriver),
//! served by a real `jeton serve --demo` on a fresh SQLite database per
//! scenario: a guest browses, a customer registers, logs in, orders, manages
//! their devices and logs out, and the browser's own rules (CORS, origins)
//! are checked where they matter. Elements are found by role and label.
//! The scenarios also save screenshots, in a temporary folder (see
//! `support::browser::screenshot_dir`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{
    browser::{BROWSERS, Browser, Demo},
    process::{self, within_a_second},
};

/// A scenario's browser and server, or `None` when the browser tests skip.
async fn open() -> Option<(Browser, Demo, tokio::sync::SemaphorePermit<'static>)> {
    let permit = BROWSERS.acquire().await.unwrap();
    let browser = Browser::start().await?;
    let demo = Demo::start().await;
    assert_eq!(demo.storefront_url, format!("http://{}/", demo.storefront));
    browser.goto(&demo.storefront_url).await;
    browser.heading("Catalogue").await;
    Some((browser, demo, permit))
}

/// The ids of the products the catalogue shows, in order.
pub(crate) async fn shown_products(browser: &Browser) -> Vec<String> {
    let mut ids = Vec::new();
    for link in browser
        .find_all("//ul[@aria-label='Products']/li//h2/a")
        .await
    {
        let href = link.attr("href").await.unwrap().unwrap();
        ids.push(href.rsplit('/').next().unwrap().to_owned());
    }
    ids
}

/// Waits until the catalogue shows `count` products; their ids.
pub(crate) async fn wait_for_products(browser: &Browser, count: usize) -> Vec<String> {
    browser
        .find(&format!(
            "//p[normalize-space(.)='Showing {count} products.']"
        ))
        .await;
    let ids = shown_products(browser).await;
    assert_eq!(ids.len(), count);
    ids
}

/// Logs in through the page, from wherever it is.
pub(crate) async fn log_in(browser: &Browser, email: &str, password: &str, device: &str) {
    browser.click_link("Log in").await;
    browser.heading("Log in").await;
    browser.fill("Email", email).await;
    browser.fill("Password", password).await;
    browser.fill("Device name", device).await;
    browser.click_button("Log in").await;
    browser
        .find("//nav[@aria-label='Main']//a[normalize-space(.)='My orders']")
        .await;
}

/// Asserts that the page holds a cookie session and no user token: none
/// in its storage, and no session cookie that its scripts can read (only
/// the CSRF cookie).
async fn assert_cookie_session_only(browser: &Browser) {
    let storage = browser.storage().await;
    assert!(!storage.contains("jt_ut_"), "{storage}");
    let cookies = browser.run("return document.cookie;").await;
    let cookies = cookies.as_str().unwrap();
    assert!(!cookies.contains("jeton_session"), "{cookies}");
    assert!(!cookies.contains("jt_ut_"), "{cookies}");
    assert!(cookies.contains("jeton_csrf="), "{cookies}");
}

/// What a fetch from the page to the API with its cookies gives the page:
/// the status and problem code, or "blocked" when the browser hides the
/// answer.
async fn page_fetch(browser: &Browser, api: std::net::SocketAddr, path: &str) -> String {
    let script = "const [url, done] = arguments;
        fetch(url, { credentials: 'include', cache: 'no-store' })
          .then(async (r) => done(`${r.status} ${(await r.json().catch(() => ({}))).code ?? ''}`.trim()))
          .catch(() => done('blocked'));";
    let url = format!("http://{api}{path}");
    let answer = browser.run_async(script, vec![json!(url)]).await;
    answer.as_str().unwrap().to_owned()
}

/// The `value` of the `data` element in the paragraph starting `Total:`.
pub(crate) async fn shown_total(browser: &Browser) -> i64 {
    browser
        .find("//p[starts-with(normalize-space(.), 'Total:')]//data")
        .await
        .attr("value")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap()
}

pub(crate) async fn product_id(demo: &Demo, sku: &str) -> String {
    let reply = demo
        .call("GET", "/api/v1/products?limit=100", &demo.admin, None)
        .await;
    reply.expect(200);
    reply.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["sku"] == sku)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub(crate) async fn orders_of(demo: &Demo, token: &str) -> Vec<Value> {
    let reply = demo.call("GET", "/api/v1/me/orders", token, None).await;
    reply.expect(200);
    reply.json()["data"].as_array().unwrap().clone()
}

// ---------------------------------------------------------------- serving (no browser needed)

/// `serve --demo` prints the storefront's URL first (checked by
/// `Demo::start`), serves the page, its modules and a `config.json` naming
/// the API and the key, and the API answers the preflights of both spellings
/// of the storefront's origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_demo_serves_the_storefront_on_its_own_origin() {
    let demo = Demo::start().await;
    let addr = demo.storefront;
    let get = |path: &'static str, host: String| async move { get_as(addr, &host, path).await };
    let numeric = demo.storefront.to_string();
    let named = format!("localhost:{}", demo.storefront.port());

    let (status, page) = get("/", numeric.clone()).await;
    assert_eq!(status, 200);
    assert!(page.contains("content-type: text/html"), "{page}");
    assert!(
        page.contains("<script type=\"module\" src=\"/app.js\">"),
        "{page}"
    );
    assert!(page.contains("content-security-policy: default-src 'none'; script-src 'self'"));
    let (status, module) = get("/session.js", numeric.clone()).await;
    assert_eq!(status, 200);
    assert!(module.contains("content-type: text/javascript"), "{module}");
    assert!(!module.contains("jt_pk_"), "no key in the files");

    // The config names the API on the host name the page was loaded from.
    for (host, api_host) in [(numeric.clone(), "127.0.0.1"), (named.clone(), "localhost")] {
        let (status, text) = get("/config.json", host).await;
        assert_eq!(status, 200);
        let config: Value = serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(
            config,
            json!({
                "session": "cookie",
                "api_url": format!("http://{api_host}:{}", demo.api.port()),
                "publishable_key": demo.publishable_key,
            })
        );
    }

    // The demo key is bound to both origins: preflights and requests pass.
    for origin in [format!("http://{numeric}"), format!("http://{named}")] {
        let (status, head) = process::http(
            demo.api,
            "OPTIONS",
            "/api/v1/products",
            &[
                ("origin", &origin),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "authorization"),
            ],
        )
        .await
        .unwrap();
        assert!(status < 300, "{head}");
        assert!(
            head.contains(&format!("access-control-allow-origin: {origin}")),
            "{head}"
        );
        let authorization = format!("Bearer {}", demo.publishable_key);
        let (status, text) = process::http(
            demo.api,
            "GET",
            "/api/v1/products",
            &[("origin", &origin), ("authorization", &authorization)],
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{text}");
    }
}

/// `GET path` from `addr` as the browser sends it for a page on `host`:
/// (status, head lower-cased and body).
async fn get_as(addr: std::net::SocketAddr, host: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        status,
        format!("{}\r\n\r\n{body}", head.to_ascii_lowercase()),
    )
}

// ---------------------------------------------------------------- a guest

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_browses_searches_filters_and_loads_more() {
    let Some((browser, demo, _permit)) = open().await else {
        return;
    };
    // The first page, then the second: the API's own pages.
    let first = wait_for_products(&browser, 12).await;
    browser.screenshot("catalogue").await;
    assert_eq!(first, demo.product_pages("", 1).await);
    browser.click_button("Load more").await;
    let both = wait_for_products(&browser, 24).await;
    assert_eq!(both, demo.product_pages("", 2).await);
    assert!(
        browser
            .find_all("//button[normalize-space(.)='Load more']")
            .await
            .is_empty()
    );

    // A search.
    let expected = demo.product_pages("&q=tee", 1).await;
    assert!(!expected.is_empty());
    browser.fill("Search products", "tee").await;
    browser.click_button("Search").await;
    let tees = wait_for_products(&browser, expected.len()).await;
    assert_eq!(tees, expected);

    // In stock only, with its second page: the sold-out print is not shown.
    browser.fill("Search products", "").await;
    browser.field("In stock only").await.click().await.unwrap();
    browser.click_button("Search").await;
    wait_for_products(&browser, 12).await;
    browser.click_button("Load more").await;
    let in_stock = wait_for_products(&browser, 23).await;
    assert_eq!(in_stock, demo.product_pages("&in_stock=true", 2).await);
    let sold_out = product_id(&demo, "LIMITED-PRINT").await;
    assert!(!in_stock.contains(&sold_out));

    // A product's page.
    browser.click_link("Grey hoodie").await;
    browser.heading("Grey hoodie").await;
    browser.find("//dd[normalize-space(.)='15 in stock']").await;
    browser.screenshot("product").await;
    browser.close().await;
}

// ---------------------------------------------------------------- a customer

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_registers_logs_in_and_orders() {
    let Some((browser, demo, _permit)) = open().await else {
        return;
    };
    let mug = product_id(&demo, "MUG-CLASSIC").await;
    let travel = product_id(&demo, "MUG-TRAVEL").await;
    let (mug_stock, travel_stock) = (demo.stock(&mug).await, demo.stock(&travel).await);

    // Register (which logs in), log out, log in again.
    browser.click_link("Register").await;
    browser.heading("Create an account").await;
    browser.fill("Name", "Ann Shopper").await;
    browser.fill("Email", "ann@example.com").await;
    browser.fill("Password", "correct horse battery").await;
    browser.click_button("Create account").await;
    browser
        .find("//nav[@aria-label='Main']//*[normalize-space(.)='Signed in as Ann Shopper']")
        .await;
    browser.click_button("Log out").await;
    browser
        .find("//nav[@aria-label='Main']//a[normalize-space(.)='Log in']")
        .await;
    log_in(
        &browser,
        "ann@example.com",
        "correct horse battery",
        "Laptop",
    )
    .await;

    // Two products: one from the list, two of another from its page.
    browser.click_link("Catalogue").await;
    wait_for_products(&browser, 12).await;
    browser.click_button("Add to cart: Classic mug").await;
    browser.click_link("Travel mug").await;
    browser.heading("Travel mug").await;
    browser.fill("Quantity", "2").await;
    browser.click_button("Add to cart").await;
    browser.click_link("Cart (3)").await;
    browser.heading("Your cart").await;

    // More than the stock: the page says which line, and how many are left.
    browser.fill("Quantity of Travel mug", "30").await;
    browser.click_button("Update cart").await;
    browser.find("//a[normalize-space(.)='Cart (31)']").await;
    browser.click_button("Place order").await;
    let alert = browser.alert("Not enough stock").await;
    assert!(
        alert.contains(&format!(
            "Only {travel_stock} Travel mug left (you asked for 30)"
        )),
        "{alert}"
    );
    assert_eq!(demo.stock(&travel).await, travel_stock);
    browser.fill("Quantity of Travel mug", "2").await;
    browser.click_button("Update cart").await;
    browser.find("//a[normalize-space(.)='Cart (3)']").await;
    assert_eq!(shown_total(&browser).await, 1200 + 2 * 2400);
    browser.screenshot("checkout").await;

    browser.click_button("Place order").await;
    browser.heading_starting("Order of").await;
    assert_eq!(shown_total(&browser).await, 6000);
    browser.find("//a[normalize-space(.)='Cart (0)']").await;

    // My orders: the order, with the right total.
    browser.click_link("My orders").await;
    browser.heading("My orders").await;
    // The heading comes before the list is fetched: wait for a row first.
    browser.find("//table//tbody/tr").await;
    let rows = browser.find_all("//table//tbody/tr").await;
    assert_eq!(rows.len(), 1);
    let total: i64 = browser
        .find("//table//tbody/tr[1]/td[2]/data")
        .await
        .attr("value")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(total, 6000);
    browser.screenshot("orders").await;

    // Stock fell by exactly the quantities, and the API has the one order.
    assert_eq!(demo.stock(&mug).await, mug_stock - 1);
    assert_eq!(demo.stock(&travel).await, travel_stock - 2);
    assert_cookie_session_only(&browser).await;
    let token = demo
        .login("ann@example.com", "correct horse battery", "Checker")
        .await;
    let orders = orders_of(&demo, &token).await;
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(
        orders[0]["total"],
        json!({"amount": 6000, "currency": "EUR"})
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_click_or_retry_on_checkout_places_one_order() {
    let Some((browser, demo, _permit)) = open().await else {
        return;
    };
    let mug = product_id(&demo, "MUG-CLASSIC").await;
    let before = demo.stock(&mug).await;
    log_in(&browser, "demo@jeton.dev", "demo-password", "Laptop").await;
    browser.click_link("Catalogue").await;
    wait_for_products(&browser, 12).await;
    browser.click_button("Add to cart: Classic mug").await;
    browser.click_link("Cart (1)").await;
    browser.button("Place order").await;
    // Two clicks in the same instant, as a double click delivers them.
    browser
        .run(
            "const button = [...document.querySelectorAll('button')]
                .find((b) => b.textContent.trim() === 'Place order');
             button.click(); button.click();",
        )
        .await;
    browser.heading_starting("Order of").await;
    let token = demo
        .login("demo@jeton.dev", "demo-password", "Checker")
        .await;
    assert_eq!(orders_of(&demo, &token).await.len(), 1);
    assert_eq!(demo.stock(&mug).await, before - 1);

    // The answer lost on the way back (a timeout, a dropped connection):
    // the shopper presses Place order again, with the same cart, hence the
    // same Idempotency-Key, and gets the same one order.
    browser.click_link("Catalogue").await;
    wait_for_products(&browser, 12).await;
    browser.click_button("Add to cart: Classic mug").await;
    browser.click_link("Cart (1)").await;
    browser.button("Place order").await;
    browser
        .run(
            "const send = window.fetch;
             window.fetch = async (url, init) => {
               const response = await send(url, init);
               if (init?.method === 'POST' && String(url).endsWith('/cart/checkout') && !window.lost) {
                 window.lost = true;
                 throw new TypeError('Failed to fetch');
               }
               return response;
             };",
        )
        .await;
    browser.click_button("Place order").await;
    browser.alert("it will not be placed twice").await;
    assert_eq!(orders_of(&demo, &token).await.len(), 2);
    browser.click_button("Place order").await;
    browser.heading_starting("Order of").await;
    assert_eq!(orders_of(&demo, &token).await.len(), 2);
    assert_eq!(demo.stock(&mug).await, before - 2);
    browser.close().await;
}

// ---------------------------------------------------------------- devices and sessions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_revoke_one_and_log_out_everywhere() {
    let Some((browser, demo, _permit)) = open().await else {
        return;
    };
    let phone = demo.login("demo@jeton.dev", "demo-password", "Phone").await;
    let tablet = demo
        .login("demo@jeton.dev", "demo-password", "Tablet")
        .await;
    log_in(&browser, "demo@jeton.dev", "demo-password", "Laptop").await;
    assert_cookie_session_only(&browser).await;

    browser.click_link("My devices").await;
    browser.heading("My devices").await;
    browser
        .find("//tbody/tr/th[normalize-space(.)='Laptop (this device)']")
        .await;
    browser
        .find("//tbody/tr/th[normalize-space(.)='Tablet']")
        .await;
    browser.click_button("Revoke Phone").await;
    browser
        .find("//*[@role='status'][normalize-space(.)='Revoked Phone.']")
        .await;
    browser.heading("My devices").await;
    browser
        .wait_until(Duration::from_secs(15), "the Phone row gone", || async {
            browser
                .find_all("//tbody/tr/th[normalize-space(.)='Phone']")
                .await
                .is_empty()
                && !browser
                    .find_all("//tbody/tr/th[normalize-space(.)='Tablet']")
                    .await
                    .is_empty()
        })
        .await;
    demo.call("GET", "/api/v1/me", &phone, None)
        .await
        .expect_problem(401, "invalid_token");
    demo.call("GET", "/api/v1/me", &tablet, None)
        .await
        .expect(200);

    browser.click_button("Log out everywhere").await;
    browser.heading("Log in").await;
    browser
        .find("//p[normalize-space(.)='You are logged out on every device.']")
        .await;
    demo.call("GET", "/api/v1/me", &tablet, None)
        .await
        .expect_problem(401, "invalid_token");
    // The page's own session is dead too, and the answer that ended it
    // cleared its cookies: the page has no session left to send.
    assert_eq!(
        page_fetch(&browser, demo.api, "/api/v1/me").await,
        "401 unauthenticated"
    );
    let cookies = browser.run("return document.cookie;").await;
    assert!(
        !cookies.as_str().unwrap().contains("jeton_csrf"),
        "{cookies}"
    );
    assert!(!browser.storage().await.contains("jt_ut_"));

    // A session ended elsewhere: the next action goes back to log in, and
    // the cart is kept on the server, back at the next login.
    log_in(&browser, "demo@jeton.dev", "demo-password", "Laptop").await;
    browser.click_link("Catalogue").await;
    wait_for_products(&browser, 12).await;
    browser.click_button("Add to cart: Classic mug").await;
    browser.find("//a[normalize-space(.)='Cart (1)']").await;
    let token = demo.login("demo@jeton.dev", "demo-password", "Phone").await;
    demo.call("DELETE", "/api/v1/me/tokens", &token, None)
        .await
        .expect(204);
    browser.click_link("My orders").await;
    browser.heading("Log in").await;
    browser
        .find("//p[normalize-space(.)='Your session has ended. Please log in again: your cart is kept.']")
        .await;
    assert!(!browser.storage().await.contains("jt_ut_"));
    browser.fill("Email", "demo@jeton.dev").await;
    browser.fill("Password", "demo-password").await;
    browser.click_button("Log in").await;
    browser.find("//a[normalize-space(.)='Cart (1)']").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_log_out_orders_are_unreachable_and_the_token_is_gone() {
    let Some((browser, demo, _permit)) = open().await else {
        return;
    };
    log_in(&browser, "demo@jeton.dev", "demo-password", "Laptop").await;
    assert_cookie_session_only(&browser).await;
    assert_eq!(
        page_fetch(&browser, demo.api, "/api/v1/me/orders").await,
        "200"
    );
    browser.click_link("My orders").await;
    browser.heading("My orders").await;
    browser.click_button("Log out").await;
    browser
        .find("//nav[@aria-label='Main']//a[normalize-space(.)='Log in']")
        .await;
    assert!(!browser.nav_has("My orders").await);
    let storage = browser.storage().await;
    assert!(!storage.contains("jt_ut_"), "{storage}");
    // Logout cleared both cookies.
    let cookies = browser.run("return document.cookie;").await;
    assert_eq!(cookies.as_str(), Some(""));
    assert_eq!(
        page_fetch(&browser, demo.api, "/api/v1/me/orders").await,
        "401 unauthenticated"
    );
    // Typing the address of My orders leads to the log-in page.
    browser
        .goto(&format!("{}#/orders", demo.storefront_url))
        .await;
    browser.heading("Log in").await;
    browser
        .find("//p[normalize-space(.)='Please log in to see your orders.']")
        .await;
    browser.close().await;
}

// ---------------------------------------------------------------- origins and keys

/// A page served on another port of the same host gets the session
/// cookie sent along (the same site), so the API's origin check is what
/// refuses it: a page whose origin another client allows reads the 403
/// `origin_not_allowed`; a page no client allows cannot read the answer at
/// all. The shop's own page goes on working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_another_origin_cannot_use_the_cookie_session() {
    let Some((browser, demo, _permit)) = open().await else {
        return;
    };
    log_in(&browser, "demo@jeton.dev", "demo-password", "Laptop").await;
    assert_cookie_session_only(&browser).await;

    let mut servers = Vec::new();
    let mut pages = Vec::new();
    for _ in 0..2 {
        let app = jeton::storefront::router(jeton::storefront::StorefrontConfig {
            api_addr: demo.api,
            api_url: None,
            publishable_key: demo.publishable_key.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        pages.push(listener.local_addr().unwrap());
        servers.push(tokio::spawn(
            async move { axum::serve(listener, app).await },
        ));
    }
    // Another shop's client allows the first page's origin.
    let other_shop = format!("http://{}", pages[0]);
    demo.call(
        "POST",
        "/api/v1/admin/clients",
        &demo.admin,
        Some(&json!({
            "name": "Another shop",
            "kind": "publishable",
            "abilities": ["products:read"],
            "allowed_origins": [other_shop],
        })),
    )
    .await
    .expect(201);

    browser.goto(&format!("{other_shop}/")).await;
    browser.heading("Catalogue").await;
    let answer = page_fetch(&browser, demo.api, "/api/v1/me/orders").await;
    assert_eq!(answer, "403 origin_not_allowed");

    browser.goto(&format!("http://{}/", pages[1])).await;
    browser.heading("Catalogue").await;
    let answer = page_fetch(&browser, demo.api, "/api/v1/me/orders").await;
    assert_eq!(answer, "blocked");

    browser.goto(&demo.storefront_url).await;
    browser.heading("Catalogue").await;
    assert_eq!(
        page_fetch(&browser, demo.api, "/api/v1/me/orders").await,
        "200"
    );
    browser.click_link("My orders").await;
    browser.heading("My orders").await;
    for server in servers {
        server.abort();
    }
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_files_on_a_foreign_origin_show_nothing() {
    let Some((browser, demo, _permit)) = open().await else {
        return;
    };
    // The storefront's files and config, served from an origin that is
    // not among the key's allowed origins.
    let app = jeton::storefront::router(jeton::storefront::StorefrontConfig {
        api_addr: demo.api,
        api_url: None,
        publishable_key: demo.publishable_key.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let foreign = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    browser.goto(&format!("http://{foreign}/")).await;
    browser.heading("Catalogue").await;
    browser.alert("The shop cannot reach its API").await;
    assert!(shown_products(&browser).await.is_empty());
    browser
        .find("//p[normalize-space(.)='No products to show.']")
        .await;

    // The console tells the shop's developer what to check.
    browser
        .run("window.errors = []; console.error = (...args) => window.errors.push(args.join(' '));")
        .await;
    browser.click_button("Search").await;
    browser.alert("The shop cannot reach its API").await;
    let start = Instant::now();
    let errors = loop {
        let errors = browser.run("return window.errors.join('\\n');").await;
        let errors = errors.as_str().unwrap_or_default().to_owned();
        if errors.contains("allowed origins") {
            break errors;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no console hint: {errors}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(errors.contains(&format!("http://{foreign}")), "{errors}");
    server.abort();
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_key_sent_from_the_page_is_refused_and_audited() {
    let Some((browser, demo, _permit)) = open().await else {
        return;
    };
    // A script on the storefront's own, allowed, origin.
    let answer = browser
        .run_async(
            "const [url, key, done] = arguments;
             fetch(url, { headers: { Authorization: `Bearer ${key}` } })
               .then((r) => r.json().then((body) => done({ status: r.status, code: body.code })))
               .catch((e) => done({ error: String(e) }));",
            vec![
                json!(format!("http://{}/api/v1/products", demo.api)),
                json!(demo.admin),
            ],
        )
        .await;
    assert_eq!(
        answer,
        json!({"status": 403, "code": "secret_key_in_browser"})
    );
    let reply = demo
        .call("GET", "/api/v1/admin/audit?limit=100", &demo.admin, None)
        .await;
    reply.expect(200);
    let events = reply.json()["data"].as_array().unwrap().clone();
    assert!(
        events
            .iter()
            .any(|event| event["action"] == "client_key.refused_in_browser"),
        "{events:?}"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_while_the_page_is_open_shows_an_error() {
    let Some((browser, demo, _permit)) = open().await else {
        return;
    };
    wait_for_products(&browser, 12).await;
    let client = demo.demo_client_id();
    let run = crate::support::process::jeton(
        &demo.url,
        &["client", "rotate", &client, "--grace", "0s", "--json"],
    );
    run.ok();
    // The server sees the CLI's rotation within a second…
    let rotated = Instant::now();
    within_a_second(rotated, "the old key refused", || async {
        let reply = demo
            .call("GET", "/api/v1/products", &demo.publishable_key, None)
            .await;
        match reply.status {
            401 => Ok(()),
            status => Err(format!("{status}")),
        }
    })
    .await;
    // …and the page's next action says so within a second.
    browser.click_button("Search").await;
    let alert = browser
        .alert_within(
            Duration::from_secs(1),
            "The shop's API refused its key (401 invalid_token)",
        )
        .await;
    assert!(!alert.contains("jt_"), "{alert}");
    browser.close().await;
}
