//! Carts on the server (API.md §16): one per customer and one per guest,
//! reached only through the owner's token; lines at live prices; the
//! limits; checkout as an order placement that empties the cart in one
//! transaction, idempotent in the namespace of `POST /orders`.

use axum::http::Method;
use serde_json::{Value, json};

use crate::{
    on_both_databases,
    support::{PASSWORD, Res, TestApp, s},
};

// ---------------------------------------------------------------- helpers

impl TestApp {
    /// `PUT /cart/items/{product}` with `quantity`, as `token`.
    pub async fn put_cart_line(&self, token: &str, product: &str, quantity: i64) -> Res {
        self.req(Method::PUT, &format!("/api/v1/cart/items/{product}"))
            .bearer(token)
            .json(json!({ "quantity": quantity }))
            .send()
            .await
    }

    /// The cart of `token`'s owner.
    pub async fn cart(&self, token: &str) -> Value {
        let res = self.get_as("/api/v1/cart", token).await;
        res.expect(200);
        res.json()
    }

    /// A guest token from `key` (a publishable key holding `guest:create`),
    /// asked for with no `Origin`, as an app does.
    pub async fn guest_token(&self, key: &str) -> String {
        let res = self
            .post("/api/v1/guest")
            .bearer(key)
            .json(json!({}))
            .send()
            .await;
        res.expect(201);
        s(&res.json()["token"])
    }

    /// A login through `key` (the password [`PASSWORD`]) whose `guest_token`
    /// is `guest`.
    pub async fn login_merging(&self, key: &str, email: &str, guest: impl serde::Serialize) -> Res {
        self.post("/api/v1/auth/login")
            .bearer(key)
            .json(json!({"email": email, "password": PASSWORD, "guest_token": guest}))
            .send()
            .await
    }

    /// `POST /cart/checkout` as `token`, with an `Idempotency-Key` if given.
    pub async fn checkout(&self, token: &str, key: Option<&str>) -> Res {
        let mut req = self.post("/api/v1/cart/checkout").bearer(token);
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        req.send().await
    }
}

/// (product id, quantity) of each line, in the cart's order.
fn lines(cart: &Value) -> Vec<(String, i64)> {
    cart["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            (
                s(&item["product_id"]),
                item["quantity"].as_i64().expect("a quantity"),
            )
        })
        .collect()
}

async fn order_count(app: &TestApp) -> i64 {
    app.row_counts(&["orders"]).await[0].1
}

// ---------------------------------------------------------------- the cart

on_both_databases!(
    a_cart_shows_its_lines_at_live_prices_and_availability,
    a_cart_keeps_its_limits_and_refuses_bad_lines,
    each_customer_has_their_own_cart,
    only_customers_and_guests_reach_a_cart,
    checkout_places_the_cart_and_empties_it_once_per_key,
    a_short_line_or_an_empty_cart_changes_nothing,
    concurrent_checkouts_of_one_cart_place_one_order,
);

on_both_databases!(
    config = jeton::config::Config { max_units_per_line: 10, ..Default::default() };
    a_cart_line_stays_within_the_unit_ceiling,
    a_merge_adds_quantities_up_to_the_unit_ceiling,
);

on_both_databases!(
    each_guest_has_their_own_cart_and_logs_in_to_check_out,
    a_guests_cart_merges_into_the_customers_at_login,
    a_guests_cart_becomes_the_new_customers_at_registration,
    a_guest_token_that_cannot_merge_leaves_the_login_alone,
    pruning_takes_ended_guests_carts_with_them,
);

async fn a_cart_shows_its_lines_at_live_prices_and_availability(app: TestApp) {
    let admin = app.admin_key().await;
    let mug = app.named_product("MUG-1", "Mug", 1200, "EUR", 5).await;
    let tea = app.named_product("TEA-1", "Tea", 350, "EUR", 10).await;
    let (_, token) = app.customer("ann@example.com").await;

    // Never written to: empty, and nothing was stored to say so.
    let empty = app.cart(&token).await;
    assert_eq!(
        empty,
        json!({"items": [], "total": null, "updated_at": null})
    );
    assert_eq!(app.row_counts(&["carts"]).await[0].1, 0);

    app.put_cart_line(&token, &tea.id, 2).await.expect(200);
    let res = app.put_cart_line(&token, &mug.id, 1).await;
    res.expect(200);
    let cart = res.json();
    assert_eq!(
        cart,
        app.cart(&token).await,
        "PUT answers the cart as GET shows it"
    );
    assert_eq!(
        cart["items"][0],
        json!({"product_id": tea.id.to_string(), "sku": "TEA-1", "name": "Tea", "quantity": 2, "unit_price": 350, "available": true})
    );
    assert_eq!(
        lines(&cart),
        [(tea.id.to_string(), 2), (mug.id.to_string(), 1)]
    );
    assert_eq!(
        cart["total"],
        json!({"amount": 2 * 350 + 1200, "currency": "EUR"})
    );
    assert!(cart["updated_at"].is_string());

    // Setting a line again keeps its place; prices and stock are read live.
    app.put_cart_line(&token, &tea.id, 7).await.expect(200);
    app.patch_product(
        &admin,
        &tea.id,
        json!({"price": {"amount": 400, "currency": "EUR"}, "stock_delta": -5}),
    )
    .await
    .expect(200);
    let cart = app.cart(&token).await;
    assert_eq!(
        lines(&cart),
        [(tea.id.to_string(), 7), (mug.id.to_string(), 1)]
    );
    assert_eq!(cart["items"][0]["unit_price"], 400);
    assert_eq!(cart["items"][0]["available"], false, "5 left, 7 wanted");
    assert_eq!(cart["items"][1]["available"], true);
    assert_eq!(cart["total"]["amount"], 7 * 400 + 1200);

    // Quantity 0 and DELETE both remove a line; removing one not there is fine.
    let cart = app.put_cart_line(&token, &tea.id, 0).await.json();
    assert_eq!(lines(&cart), [(mug.id.to_string(), 1)]);
    let res = app
        .delete_as(&format!("/api/v1/cart/items/{}", mug.id), &token)
        .await;
    res.expect(200);
    assert_eq!(res.json()["items"], json!([]));
    assert_eq!(res.json()["total"], Value::Null);
    app.delete_as(&format!("/api/v1/cart/items/{}", mug.id), &token)
        .await
        .expect(200);

    app.put_cart_line(&token, &tea.id, 1).await.expect(200);
    let res = app.delete_as("/api/v1/cart", &token).await;
    res.expect(200);
    assert_eq!(res.json()["items"], json!([]));
    assert_eq!(app.row_counts(&["cart_items"]).await[0].1, 0);
}

async fn a_cart_keeps_its_limits_and_refuses_bad_lines(app: TestApp) {
    let mug = app.product("MUG-1", 1200, "EUR", 5).await;
    let dollar = app.product("CUP-USD", 500, "USD", 5).await;
    let (_, token) = app.customer("ann@example.com").await;
    app.put_cart_line(&token, &mug.id, 1).await.expect(200);
    let before = app.cart(&token).await;

    app.put_cart_line(&token, &mug.id, -1)
        .await
        .expect_invalid("quantity");
    app.put_cart_line(&token, &mug.id, 1001)
        .await
        .expect_invalid("quantity");
    app.put_cart_line(&token, &dollar.id, 1)
        .await
        .expect_invalid("product_id");
    app.put_cart_line(&token, "0190f5c4-7b1e-7d3a-9c2b-5e8f1a2b3c4d", 1)
        .await
        .expect_problem(404, "not_found");
    app.put_cart_line(&token, "not-an-id", 1)
        .await
        .expect_problem(404, "not_found");
    app.req(Method::PUT, &format!("/api/v1/cart/items/{}", mug.id))
        .bearer(&token)
        .json(json!({"quantity": 2, "price": 1}))
        .send()
        .await
        .expect_problem(422, "validation_failed");
    app.req(Method::PUT, &format!("/api/v1/cart/items/{}", mug.id))
        .bearer(&token)
        .raw("application/json", "{\"quantity\": ")
        .send()
        .await
        .expect_problem(400, "malformed_json");
    assert_eq!(app.cart(&token).await, before, "no refusal wrote anything");

    // 100 lines, and not one more.
    for n in 1..100 {
        let product = app.product(&format!("P-{n}"), 1, "EUR", 1).await;
        app.put_cart_line(&token, &product.id, 1).await.expect(200);
    }
    let extra = app.product("P-100", 1, "EUR", 1).await;
    app.put_cart_line(&token, &extra.id, 1)
        .await
        .expect_invalid("product_id");
    assert_eq!(
        app.cart(&token).await["items"].as_array().unwrap().len(),
        100
    );
    // A line already there may still change.
    app.put_cart_line(&token, &mug.id, 3).await.expect(200);
}

async fn a_cart_line_stays_within_the_unit_ceiling(app: TestApp) {
    let mug = app.product("MUG-1", 1200, "EUR", 50).await;
    let (_, token) = app.customer("ann@example.com").await;
    app.put_cart_line(&token, &mug.id, 10).await.expect(200);
    app.put_cart_line(&token, &mug.id, 11)
        .await
        .expect_invalid("quantity");
    assert_eq!(lines(&app.cart(&token).await), [(mug.id.to_string(), 10)]);
}

async fn each_customer_has_their_own_cart(app: TestApp) {
    let mug = app.product("MUG-1", 1200, "EUR", 5).await;
    let tea = app.product("TEA-1", 350, "EUR", 5).await;
    let (_, ann) = app.customer("ann@example.com").await;
    let (_, bob) = app.customer("bob@example.com").await;
    app.put_cart_line(&ann, &mug.id, 1).await.expect(200);
    app.put_cart_line(&bob, &tea.id, 2).await.expect(200);
    assert_eq!(lines(&app.cart(&ann).await), [(mug.id.to_string(), 1)]);
    assert_eq!(lines(&app.cart(&bob).await), [(tea.id.to_string(), 2)]);
    // Another token of the same customer reaches the same cart.
    let key = app.publishable_key().await;
    let second = app.login_token(&key, "ann@example.com").await;
    assert_eq!(lines(&app.cart(&second).await), [(mug.id.to_string(), 1)]);
    app.delete_as("/api/v1/cart", &bob).await.expect(200);
    assert_eq!(lines(&app.cart(&ann).await), [(mug.id.to_string(), 1)]);
}

async fn only_customers_and_guests_reach_a_cart(app: TestApp) {
    let mug = app.product("MUG-1", 1200, "EUR", 5).await;
    let publishable = app.publishable_key().await;
    let admin = app.admin_key().await;
    for token in [&publishable, &admin] {
        app.get_as("/api/v1/cart", token)
            .await
            .expect_problem(403, "insufficient_scope");
        app.put_cart_line(token, &mug.id, 1)
            .await
            .expect_problem(403, "insufficient_scope");
        app.checkout(token, None)
            .await
            .expect_problem(403, "insufficient_scope");
    }
    app.get("/api/v1/cart")
        .send()
        .await
        .expect_problem(401, "unauthenticated");
    assert_eq!(app.row_counts(&["carts"]).await[0].1, 0);
}

// ---------------------------------------------------------------- checkout

async fn checkout_places_the_cart_and_empties_it_once_per_key(app: TestApp) {
    let mug = app.named_product("MUG-1", "Mug", 1200, "EUR", 5).await;
    let tea = app.named_product("TEA-1", "Tea", 350, "EUR", 10).await;
    let (_, token) = app.customer("ann@example.com").await;
    app.put_cart_line(&token, &tea.id, 3).await.expect(200);
    app.put_cart_line(&token, &mug.id, 2).await.expect(200);

    let res = app.checkout(&token, Some("checkout-1")).await;
    res.expect(201);
    let order = res.json();
    assert_eq!(order["status"], "placed");
    let ordered: Vec<(String, i64)> = order["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| (s(&item["product_id"]), item["quantity"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        ordered,
        [(tea.id.to_string(), 3), (mug.id.to_string(), 2)],
        "in the cart's order"
    );
    assert_eq!(
        order["total"],
        json!({"amount": 3 * 350 + 2 * 1200, "currency": "EUR"})
    );
    assert_eq!(app.stock(&mug.id).await, 3);
    assert_eq!(app.stock(&tea.id).await, 7);
    assert_eq!(app.cart(&token).await["items"], json!([]));
    let mine = app.get_as("/api/v1/me/orders", &token).await.json();
    assert_eq!(mine["data"][0]["id"], order["id"]);

    // The retry returns the first answer, though the cart is empty now.
    let replay = app.checkout(&token, Some("checkout-1")).await;
    replay.expect(201);
    assert_eq!(
        replay.header("idempotent-replayed").as_deref(),
        Some("true")
    );
    assert_eq!(replay.json(), order);
    assert_eq!(order_count(&app).await, 1);

    // One namespace with POST /orders: the key names the checkout.
    app.put_cart_line(&token, &tea.id, 1).await.expect(200);
    app.post("/api/v1/orders")
        .bearer(&token)
        .header("idempotency-key", "checkout-1")
        .json(json!({"items": [{"product_id": tea.id, "quantity": 1}]}))
        .send()
        .await
        .expect_problem(422, "idempotency_key_reused");
    let placed = app
        .post("/api/v1/orders")
        .bearer(&token)
        .header("idempotency-key", "order-1")
        .json(json!({"items": [{"product_id": tea.id, "quantity": 1}]}))
        .send()
        .await;
    placed.expect(201);
    app.checkout(&token, Some("order-1"))
        .await
        .expect_problem(422, "idempotency_key_reused");
    assert_eq!(order_count(&app).await, 2);
    assert_eq!(
        lines(&app.cart(&token).await),
        [(tea.id.to_string(), 1)],
        "refusals keep the cart"
    );
    app.checkout(&token, Some(&"k".repeat(256)))
        .await
        .expect_problem(400, "invalid_idempotency_key");
}

async fn a_short_line_or_an_empty_cart_changes_nothing(app: TestApp) {
    let mug = app.product("MUG-1", 1200, "EUR", 2).await;
    let tea = app.product("TEA-1", 350, "EUR", 10).await;
    let (_, token) = app.customer("ann@example.com").await;
    app.checkout(&token, None)
        .await
        .expect_problem(422, "cart_empty");
    app.checkout(&token, Some("empty"))
        .await
        .expect_problem(422, "cart_empty");

    app.put_cart_line(&token, &tea.id, 4).await.expect(200);
    app.put_cart_line(&token, &mug.id, 3).await.expect(200);
    let before = app.cart(&token).await;
    app.checkout(&token, Some("short"))
        .await
        .expect_problem(409, "insufficient_stock");
    assert_eq!(app.cart(&token).await, before, "the cart stays as it was");
    assert_eq!(app.stock(&tea.id).await, 10, "no line's stock moved");
    assert_eq!(app.stock(&mug.id).await, 2);
    assert_eq!(order_count(&app).await, 0);

    // The key was not used up by the refusal: it places the fixed cart.
    app.put_cart_line(&token, &mug.id, 2).await.expect(200);
    app.checkout(&token, Some("short")).await.expect(201);
    assert_eq!(app.stock(&mug.id).await, 0);
    // An empty key also served a cart later.
    app.put_cart_line(&token, &tea.id, 1).await.expect(200);
    app.checkout(&token, Some("empty")).await.expect(201);
    assert_eq!(order_count(&app).await, 2);
}

async fn concurrent_checkouts_of_one_cart_place_one_order(app: TestApp) {
    let mug = app.product("MUG-1", 1200, "EUR", 100).await;
    let (_, token) = app.customer("ann@example.com").await;
    app.put_cart_line(&token, &mug.id, 3).await.expect(200);
    let answers = futures::future::join_all((0..8).map(|n| {
        let app = &app;
        let token = &token;
        async move { app.checkout(token, Some(&format!("tab-{n}"))).await }
    }))
    .await;
    let placed = answers
        .iter()
        .filter(|res| res.status.as_u16() == 201)
        .count();
    assert_eq!(
        placed,
        1,
        "{:?}",
        answers
            .iter()
            .map(|res| res.status.as_u16())
            .collect::<Vec<_>>()
    );
    for res in answers.iter().filter(|res| res.status.as_u16() != 201) {
        res.expect_problem(422, "cart_empty");
    }
    assert_eq!(app.stock(&mug.id).await, 97);
    assert_eq!(order_count(&app).await, 1);
}

// ---------------------------------------------------------------- guests

async fn each_guest_has_their_own_cart_and_logs_in_to_check_out(app: TestApp) {
    let mug = app.product("MUG-1", 1200, "EUR", 5).await;
    let tea = app.product("TEA-1", 350, "EUR", 5).await;
    let key = app.publishable_key().await;
    let ann = app.guest_token(&key).await;
    let bob = app.guest_token(&key).await;
    app.put_cart_line(&ann, &mug.id, 1).await.expect(200);
    app.put_cart_line(&bob, &tea.id, 2).await.expect(200);
    assert_eq!(lines(&app.cart(&ann).await), [(mug.id.to_string(), 1)]);
    assert_eq!(lines(&app.cart(&bob).await), [(tea.id.to_string(), 2)]);
    app.delete_as("/api/v1/cart", &bob).await.expect(200);
    assert_eq!(
        lines(&app.cart(&ann).await),
        [(mug.id.to_string(), 1)],
        "untouched by bob"
    );
    assert_eq!(app.cart(&bob).await["items"], json!([]));

    // A guest does not order: checkout is a customer's.
    app.checkout(&ann, Some("guest-order"))
        .await
        .expect_problem(403, "insufficient_scope");
    assert_eq!(order_count(&app).await, 0);
    assert_eq!(app.stock(&mug.id).await, 5);
}

async fn a_guests_cart_merges_into_the_customers_at_login(app: TestApp) {
    let mug = app.product("MUG-1", 1200, "EUR", 50).await;
    let tea = app.product("TEA-1", 350, "EUR", 50).await;
    let key = app.publishable_key().await;
    let (_, earlier) = app.customer("ann@example.com").await;
    app.put_cart_line(&earlier, &mug.id, 3).await.expect(200);

    let guest = app.guest_token(&key).await;
    app.put_cart_line(&guest, &tea.id, 1).await.expect(200);
    app.put_cart_line(&guest, &mug.id, 2).await.expect(200);
    let res = app.login_merging(&key, "ann@example.com", &guest).await;
    res.expect(201);
    let token = s(&res.json()["token"]);
    assert_eq!(
        lines(&app.cart(&token).await),
        [(mug.id.to_string(), 5), (tea.id.to_string(), 1)],
        "quantities add; the guest's new lines follow the customer's"
    );
    // The guest token is spent: revoked, its cart gone.
    app.get_as("/api/v1/cart", &guest)
        .await
        .expect_problem(401, "invalid_token");
    assert_eq!(app.row_counts(&["carts"]).await[0].1, 1);

    // Merging again merges nothing, and the login still works.
    let again = app.login_merging(&key, "ann@example.com", &guest).await;
    again.expect(201);
    assert_eq!(
        lines(&app.cart(&token).await),
        [(mug.id.to_string(), 5), (tea.id.to_string(), 1)]
    );

    // And checkout places what was merged.
    app.checkout(&token, Some("merged")).await.expect(201);
    assert_eq!(app.stock(&mug.id).await, 45);
    assert_eq!(app.stock(&tea.id).await, 49);
}

async fn a_guests_cart_becomes_the_new_customers_at_registration(app: TestApp) {
    let mug = app.product("MUG-1", 1200, "EUR", 5).await;
    let key = app.publishable_key().await;
    let guest = app.guest_token(&key).await;
    app.put_cart_line(&guest, &mug.id, 2).await.expect(200);
    app.post("/api/v1/customers")
        .bearer(&key)
        .json(json!({"email": "new@example.com", "password": "correct horse", "name": "New", "guest_token": guest}))
        .send()
        .await
        .expect(201);
    app.get_as("/api/v1/cart", &guest)
        .await
        .expect_problem(401, "invalid_token");
    let token = s(&app.login(&key, "new@example.com", "correct horse").await["token"]);
    assert_eq!(lines(&app.cart(&token).await), [(mug.id.to_string(), 2)]);
}

async fn a_merge_adds_quantities_up_to_the_unit_ceiling(app: TestApp) {
    let mug = app.product("MUG-1", 1200, "EUR", 50).await;
    let dollar = app.product("CUP-USD", 500, "USD", 50).await;
    let key = app.publishable_key().await;
    let (_, earlier) = app.customer("ann@example.com").await;
    app.put_cart_line(&earlier, &mug.id, 8).await.expect(200);
    let guest = app.guest_token(&key).await;
    app.put_cart_line(&guest, &dollar.id, 1).await.expect(200);
    app.delete_as(&format!("/api/v1/cart/items/{}", dollar.id), &guest)
        .await
        .expect(200);
    app.put_cart_line(&guest, &mug.id, 7).await.expect(200);
    let token = s(&app
        .login_merging(&key, "ann@example.com", &guest)
        .await
        .json()["token"]);
    assert_eq!(
        lines(&app.cart(&token).await),
        [(mug.id.to_string(), 10)],
        "8 + 7, capped at 10"
    );

    // A guest's line in another currency than the customer's cart is left out.
    let guest = app.guest_token(&key).await;
    app.put_cart_line(&guest, &dollar.id, 1).await.expect(200);
    app.login_merging(&key, "ann@example.com", &guest)
        .await
        .expect(201);
    assert_eq!(lines(&app.cart(&token).await), [(mug.id.to_string(), 10)]);
    app.get_as("/api/v1/cart", &guest)
        .await
        .expect_problem(401, "invalid_token");
}

async fn a_guest_token_that_cannot_merge_leaves_the_login_alone(app: TestApp) {
    use jeton::domain::client::ClientKind;
    let mug = app.product("MUG-1", 1200, "EUR", 5).await;
    let key = app.publishable_key().await;
    let (_, other_key) = app
        .client(
            ClientKind::Publishable,
            &["auth:login", "guest:create"],
            &["https://other.example"],
        )
        .await;
    let (_, token) = app.customer("ann@example.com").await;
    // Another client's guest: not this login's to take.
    let foreign = app.guest_token(&other_key).await;
    app.put_cart_line(&foreign, &mug.id, 1).await.expect(200);
    let malformed = "jt_gt_not-a-token".to_owned();
    for guest_token in [foreign.clone(), malformed, token.clone()] {
        app.login_merging(&key, "ann@example.com", &guest_token)
            .await
            .expect(201);
    }
    assert_eq!(app.cart(&token).await["items"], json!([]));
    assert_eq!(
        lines(&app.cart(&foreign).await),
        [(mug.id.to_string(), 1)],
        "still the guest's"
    );
    // Too long to be a token: the field is refused, and nothing happens.
    app.login_merging(&key, "ann@example.com", &"x".repeat(65))
        .await
        .expect_invalid("guest_token");
}

async fn pruning_takes_ended_guests_carts_with_them(app: TestApp) {
    let mug = app.product("MUG-1", 1200, "EUR", 5).await;
    let key = app.publishable_key().await;
    let (_, customer) = app.customer("ann@example.com").await;
    app.put_cart_line(&customer, &mug.id, 1).await.expect(200);
    let idle = app.guest_token(&key).await;
    app.put_cart_line(&idle, &mug.id, 1).await.expect(200);
    app.advance(std::time::Duration::from_secs(31 * 24 * 3600));
    let fresh = app.guest_token(&key).await;
    app.put_cart_line(&fresh, &mug.id, 2).await.expect(200);
    assert_eq!(app.row_counts(&["carts"]).await[0].1, 3);

    app.db.prune_tokens(app.now()).await.unwrap();
    assert_eq!(
        app.row_counts(&["carts", "cart_items"]).await,
        [("carts", 2), ("cart_items", 2)]
    );
    assert_eq!(lines(&app.cart(&fresh).await), [(mug.id.to_string(), 2)]);
    // The customer's cart stays (through a token of the advanced clock).
    let customer = app.login_token(&key, "ann@example.com").await;
    assert_eq!(lines(&app.cart(&customer).await), [(mug.id.to_string(), 1)]);
}
