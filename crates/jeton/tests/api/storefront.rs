//! The storefront scenario end to end: an admin stocks the shop, a guest
//! browses with a publishable key, a customer registers, logs in, fills
//! their cart on the server, checks out and lists their own orders, and
//! another customer sees none of it.
//!
//! Then the storefront's page in a real browser (headless Chromium over
//! WebDriver, see `support::browser`) against `jeton serve --demo` on each
//! database: a guest's cart on the server, kept across a reload and merged
//! at login and at registration, and a page that goes on browsing when no
//! guest token is to be had.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    browser::{log_in, orders_of, product_id, shown_total, wait_for_products},
    on_both_databases,
    support::{
        TestApp,
        browser::{BROWSERS, Browser, Demo},
        database::Backend,
    },
};

on_both_databases!(storefront_scenario);

async fn storefront_scenario(app: TestApp) {
    // The admin stocks the shop with a secret key.
    let admin = app.admin_key().await;
    let res = app.post_json_as("/api/v1/admin/products", &admin, json!({"sku": "MUG-1", "name": "Mug", "description": "A mug", "price": {"amount": 1200, "currency": "EUR"}, "stock": 5})).await;
    res.expect(201);
    let mug = res.json();
    let mug_id = mug["id"].as_str().unwrap().to_owned();
    assert_eq!(mug["price"], json!({"amount": 1200, "currency": "EUR"}));
    assert_eq!(mug["stock"], 5);

    // The admin creates the storefront's publishable key.
    let res = app
        .post_json_as(
            "/api/v1/admin/clients",
            &admin,
            json!({
                "name": "Storefront", "kind": "publishable",
                "abilities": ["products:read", "customers:create", "auth:login"],
                "allowed_origins": ["https://shop.example"]
            }),
        )
        .await;
    res.expect(201);
    let pk = res.json()["key"].as_str().unwrap().to_owned();
    assert!(pk.starts_with("jt_pk_"));

    // A guest browses.
    let res = app.get_as("/api/v1/products", &pk).await;
    res.expect(200);
    assert_eq!(res.json()["data"][0]["sku"], "MUG-1");
    app.get_as(&format!("/api/v1/products/{mug_id}"), &pk)
        .await
        .expect(200);

    // A customer registers and logs in through the storefront.
    let res = app
        .post_json_as(
            "/api/v1/customers",
            &pk,
            json!({"email": "Ann@Example.com", "password": "correct horse", "name": "Ann"}),
        )
        .await;
    res.expect(201);
    assert_eq!(res.json()["email"], "ann@example.com");
    let login = app.login(&pk, "ann@example.com", "correct horse").await;
    let token = login["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("jt_ut_"));
    assert_eq!(login["token_type"], "Bearer");

    // …fills their cart on the server, and places it as an order…
    let res = app.put_cart_line(&token, &mug_id, 2).await;
    res.expect(200);
    assert_eq!(res.json()["items"][0]["unit_price"], 1200);
    assert_eq!(
        res.json()["total"],
        json!({"amount": 2400, "currency": "EUR"})
    );
    let res = app.checkout(&token, Some("storefront-1")).await;
    res.expect(201);
    assert_eq!(app.cart(&token).await["items"], json!([]));
    let order = res.json();
    assert_eq!(order["status"], "placed");
    assert_eq!(order["total"], json!({"amount": 2400, "currency": "EUR"}));
    assert_eq!(order["items"][0]["unit_price"], 1200);
    assert_eq!(order["items"][0]["sku"], "MUG-1");
    assert_eq!(app.stock(&mug_id).await, 3);
    let order_id = order["id"].as_str().unwrap().to_owned();

    // …and sees it.
    let res = app.get_as("/api/v1/me/orders", &token).await;
    res.expect(200);
    assert_eq!(res.json()["data"][0]["id"], order_id.as_str());
    let res = app
        .get_as(&format!("/api/v1/me/orders/{order_id}"), &token)
        .await;
    res.expect(200);
    assert_eq!(res.json(), order);
    let me = app.get_as("/api/v1/me", &token).await;
    me.expect(200);
    assert_eq!(me.json()["name"], "Ann");

    // Another customer sees none of it.
    let (_, other) = app.customer("bob@example.com").await;
    app.get_as(&format!("/api/v1/me/orders/{order_id}"), &other)
        .await
        .expect_problem(404, "not_found");
    let res = app.get_as("/api/v1/me/orders", &other).await;
    res.expect(200);
    assert_eq!(res.json(), json!({"data": [], "next_cursor": null}));

    // Logging out kills the token.
    app.post_as("/api/v1/auth/logout", &token).await.expect(204);
    app.get_as("/api/v1/me", &token)
        .await
        .expect_problem(401, "invalid_token");
}

// ---------------------------------------------------------------- in the browser

/// A browser scenario on SQLite and on PostgreSQL, as `on_both_databases!`
/// runs the API's.
macro_rules! in_the_browser_on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(crate::support::database::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(crate::support::database::Backend::Postgres).await;
                }
            }
        )*
    };
}

in_the_browser_on_both_databases!(
    a_guest_fills_a_cart_reloads_logs_in_finds_it_merged_and_checks_out,
    refused_guest_issuance_leaves_the_shop_browsable,
);

/// `jeton serve --demo` on `backend` and a browser on its storefront, or
/// `None` when either is unavailable here (with a `NOTICE:`).
async fn open(
    backend: Backend,
    extra: &[&str],
) -> Option<(Browser, Demo, tokio::sync::SemaphorePermit<'static>)> {
    let permit = BROWSERS.acquire().await.unwrap();
    let demo = Demo::start_on(backend, extra).await?;
    let browser = Browser::start().await?;
    browser.goto(&demo.storefront_url).await;
    browser.heading("Catalogue").await;
    Some((browser, demo, permit))
}

/// What the API answers the page for `GET /cart` with `token` (a guest
/// token): the status and problem code.
async fn page_cart_with(browser: &Browser, api: std::net::SocketAddr, token: &str) -> String {
    let script = "const [url, token, done] = arguments;
        fetch(url, { headers: { Authorization: `Bearer ${token}` }, cache: 'no-store' })
          .then(async (r) => done(`${r.status} ${(await r.json().catch(() => ({}))).code ?? ''}`.trim()))
          .catch(() => done('blocked'));";
    let url = format!("http://{api}/api/v1/cart");
    let answer = browser
        .run_async(script, vec![json!(url), json!(token)])
        .await;
    answer.as_str().unwrap().to_owned()
}

/// The value in the cart's quantity field of `product`.
async fn quantity_of(browser: &Browser, product: &str) -> String {
    browser
        .field(&format!("Quantity of {product}"))
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

async fn a_guest_fills_a_cart_reloads_logs_in_finds_it_merged_and_checks_out(backend: Backend) {
    let Some((browser, demo, _permit)) = open(backend, &[]).await else {
        return;
    };
    let mug = product_id(&demo, "MUG-CLASSIC").await;
    let (mug_stock, travel_stock) = (
        demo.stock(&mug).await,
        demo.stock(&product_id(&demo, "MUG-TRAVEL").await).await,
    );
    // The customer already has a mug in their cart, put there from a phone.
    let phone = demo.login("demo@jeton.dev", "demo-password", "Phone").await;
    demo.call(
        "PUT",
        &format!("/api/v1/cart/items/{mug}"),
        &phone,
        Some(&json!({"quantity": 1})),
    )
    .await
    .expect(200);

    // Browsing asks for no guest token; the first add does.
    wait_for_products(&browser, 12).await;
    assert!(!browser.storage().await.contains("jt_gt_"));
    browser.click_button("Add to cart: Classic mug").await;
    browser.find("//a[normalize-space(.)='Cart (1)']").await;
    let stored = browser
        .run("return localStorage.getItem('jeton.guest');")
        .await;
    let guest: Value = serde_json::from_str(stored.as_str().expect("a guest token kept")).unwrap();
    let guest_token = guest["token"].as_str().unwrap().to_owned();
    assert!(guest_token.starts_with("jt_gt_"), "{guest}");
    assert!(guest["expires_at"].is_string(), "{guest}");
    browser.click_link("Travel mug").await;
    browser.heading("Travel mug").await;
    browser.fill("Quantity", "2").await;
    browser.click_button("Add to cart").await;
    browser.find("//a[normalize-space(.)='Cart (3)']").await;
    assert_eq!(
        browser
            .run("return localStorage.getItem('jeton.guest');")
            .await,
        stored,
        "one guest token for the visit"
    );

    // The cart is on the server: a reload shows it.
    browser.click_link("Cart (3)").await;
    browser.heading("Your cart").await;
    browser
        .run("window.beforeReload = true; location.reload();")
        .await;
    browser
        .wait_until(Duration::from_secs(15), "the cart after a reload", || async {
            browser
                .run("return window.beforeReload === undefined && document.querySelectorAll('input[id^=qty-]').length === 2;")
                .await
                == json!(true)
        })
        .await;
    browser.heading("Your cart").await;
    browser.find("//a[normalize-space(.)='Cart (3)']").await;
    assert_eq!(quantity_of(&browser, "Classic mug").await, "1");
    assert_eq!(quantity_of(&browser, "Travel mug").await, "2");
    assert_eq!(shown_total(&browser).await, 1200 + 2 * 2400);
    browser.screenshot("guest-cart").await;

    // Logging in merges the guest's lines into the customer's cart: the
    // mugs add up. The guest token is spent and forgotten.
    log_in(&browser, "demo@jeton.dev", "demo-password", "Laptop").await;
    browser.find("//a[normalize-space(.)='Cart (4)']").await;
    assert!(!browser.storage().await.contains("jt_gt_"));
    assert!(
        page_cart_with(&browser, demo.api, &guest_token)
            .await
            .starts_with("401"),
        "the merged guest token is refused"
    );
    browser.click_link("Cart (4)").await;
    browser.heading("Your cart").await;
    assert_eq!(quantity_of(&browser, "Classic mug").await, "2");
    assert_eq!(quantity_of(&browser, "Travel mug").await, "2");
    assert_eq!(shown_total(&browser).await, 2 * 1200 + 2 * 2400);
    let cart = demo.call("GET", "/api/v1/cart", &phone, None).await;
    cart.expect(200);
    assert_eq!(
        cart.json()["total"],
        json!({"amount": 7200, "currency": "EUR"})
    );

    // Checkout: the order, and an empty cart everywhere.
    browser.click_button("Place order").await;
    browser.heading_starting("Order of").await;
    assert_eq!(shown_total(&browser).await, 7200);
    browser.find("//a[normalize-space(.)='Cart (0)']").await;
    let orders = orders_of(&demo, &phone).await;
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(
        orders[0]["total"],
        json!({"amount": 7200, "currency": "EUR"})
    );
    assert_eq!(demo.stock(&mug).await, mug_stock - 2);
    assert_eq!(
        demo.stock(&product_id(&demo, "MUG-TRAVEL").await).await,
        travel_stock - 2
    );
    let cart = demo.call("GET", "/api/v1/cart", &phone, None).await;
    cart.expect(200);
    assert_eq!(cart.json()["items"], json!([]));
    browser.click_link("My orders").await;
    browser.heading("My orders").await;
    browser.find("//table//tbody/tr").await;

    // Logged out, with a guest token the API no longer knows (expired,
    // say): the page forgets it, shows an empty cart, and the next add
    // gets a new one.
    browser.click_button("Log out").await;
    browser
        .find("//nav[@aria-label='Main']//a[normalize-space(.)='Log in']")
        .await;
    browser
        .run(
            "localStorage.setItem('jeton.guest', JSON.stringify({
               token: 'jt_gt_' + 'x'.repeat(43),
               expires_at: new Date(Date.now() + 86400000).toISOString() }));
             location.reload();",
        )
        .await;
    browser
        .wait_until(
            Duration::from_secs(15),
            "the dead guest token forgotten",
            || async { !browser.storage().await.contains("jt_gt_") },
        )
        .await;
    browser.find("//a[normalize-space(.)='Cart (0)']").await;
    browser.click_button("Add to cart: Classic mug").await;
    browser.find("//a[normalize-space(.)='Cart (1)']").await;
    let storage = browser.storage().await;
    assert!(storage.contains("jt_gt_"), "{storage}");
    assert!(!storage.contains(&guest_token), "{storage}");

    // Registering takes the guest's cart to the new account, once: the
    // login that follows the registration merges nothing more.
    browser.click_link("Register").await;
    browser.heading("Create an account").await;
    browser.fill("Name", "Bea Guest").await;
    browser.fill("Email", "bea@example.com").await;
    browser.fill("Password", "correct horse battery").await;
    browser.click_button("Create account").await;
    browser
        .find("//nav[@aria-label='Main']//*[normalize-space(.)='Signed in as Bea Guest']")
        .await;
    browser.find("//a[normalize-space(.)='Cart (1)']").await;
    assert!(!browser.storage().await.contains("jt_gt_"));
    let bea = demo
        .login("bea@example.com", "correct horse battery", "Checker")
        .await;
    let cart = demo.call("GET", "/api/v1/cart", &bea, None).await;
    cart.expect(200);
    assert_eq!(cart.json()["items"][0]["product_id"], mug.as_str());
    assert_eq!(cart.json()["items"][0]["quantity"], 1);
    browser.close().await;
}

/// Guest issuance refused, for an IP over its hourly issuance (429) and
/// for a key that may not issue guest tokens (403): the catalogue works, an
/// add to the cart says the cart is unavailable, and the page's scripts log
/// no error.
async fn refused_guest_issuance_leaves_the_shop_browsable(backend: Backend) {
    let Some((browser, demo, _permit)) = open(backend, &["--guest-issuance-per-ip", "1"]).await
    else {
        return;
    };
    // This IP's one guest token of the hour, taken by an app (no Origin).
    demo.call(
        "POST",
        "/api/v1/guest",
        &demo.publishable_key,
        Some(&json!({})),
    )
    .await
    .expect(201);
    wait_for_products(&browser, 12).await;
    browser.console_log().await;
    browser.click_button("Add to cart: Classic mug").await;
    browser.alert("The cart is unavailable right now").await;
    assert!(browser.nav_has("Cart (0)").await);
    assert!(!browser.storage().await.contains("jt_gt_"));
    browser.click_link("Travel mug").await;
    browser.heading("Travel mug").await;
    assert_no_script_errors(&browser).await;

    // A shop whose key may not issue guest tokens.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page = listener.local_addr().unwrap();
    let reply = demo
        .call(
            "POST",
            "/api/v1/admin/clients",
            &demo.admin,
            Some(&json!({
                "name": "A shop without guest carts",
                "kind": "publishable",
                "abilities": ["products:read", "customers:create", "auth:login"],
                "allowed_origins": [format!("http://{page}")],
            })),
        )
        .await;
    reply.expect(201);
    let key = reply.json()["key"].as_str().unwrap().to_owned();
    let app = jeton::storefront::router(jeton::storefront::StorefrontConfig {
        api_addr: demo.api,
        api_url: None,
        publishable_key: key,
    });
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    browser.goto(&format!("http://{page}/")).await;
    browser.heading("Catalogue").await;
    wait_for_products(&browser, 12).await;
    browser.console_log().await;
    browser.click_button("Add to cart: Classic mug").await;
    browser.alert("The cart is unavailable right now").await;
    assert!(browser.nav_has("Cart (0)").await);
    assert!(!browser.storage().await.contains("jt_gt_"));
    browser.screenshot("cart-unavailable").await;

    // Browsing goes on with the publishable key.
    browser.click_link("Travel mug").await;
    browser.heading("Travel mug").await;
    browser.find("//dt[normalize-space(.)='Stock']").await;
    browser.click_link("Cart (0)").await;
    browser.heading("Your cart").await;
    browser
        .find("//p[starts-with(normalize-space(.), 'Your cart is empty.')]")
        .await;
    assert_no_script_errors(&browser).await;
    server.abort();
    browser.close().await;
}

/// The browser reports a refused request itself; the page's own scripts
/// (whose console lines name their file, `app.js 70:10 …`) report nothing.
async fn assert_no_script_errors(browser: &Browser) {
    let log = browser.console_log().await;
    assert!(
        !log.iter().any(|(_, message)| message.contains(".js ")),
        "{log:?}"
    );
}
