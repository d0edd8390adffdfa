//! Orders: placing them (`POST /orders`), listing them (`GET /me/orders`),
//! `Idempotency-Key`, contention between concurrent orders, restocking
//! while orders arrive, and the database going away mid-burst.

use jeton::identity::TOKENS;
use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use crate::{
    on_both_databases,
    support::{self, Backend, Res, TestApp, assert_rfc3339_utc, enc, error_fields, ids, keys, s},
};
use axum::{
    body::Body,
    http::{HeaderValue, Method, Request},
};
use jeton::{
    domain::{abilities, ids::new_id},
    store::{audit::Audit, products::Product, user_tokens::NewUserToken},
};
use jeton_auth::TokenKind;
use serde_json::{Value, json};
use sqlx::{AnyPool, Row};

// ---------------------------------------------------------------- helpers

async fn order(app: &TestApp, token: &str, items: Value) -> Res {
    app.post_json_as("/api/v1/orders", token, json!({ "items": items }))
        .await
}

// ---------------------------------------------------------------- placing orders

on_both_databases!(
    multi_line_order_totals_keeps_line_order_and_decrements_stock,
    order_boundaries_are_accepted,
    insufficient_stock_changes_nothing,
    unknown_product_or_mixed_currencies_change_nothing,
    bad_order_bodies_are_refused_and_write_nothing,
    concurrent_orders_never_oversell,
    order_totals_stay_exact_in_javascript,
    admin_cancels_an_order_and_its_stock_returns,
);

on_both_databases!(
    config = jeton::config::Config { max_units_per_line: 10, ..Default::default() };
    orders_above_the_unit_ceiling_are_refused,
);

async fn multi_line_order_totals_keeps_line_order_and_decrements_stock(app: TestApp) {
    let mug = app.named_product("MUG-1", "Mug", 1200, "EUR", 5).await;
    let tea = app.named_product("TEA-1", "Tea", 350, "EUR", 10).await;
    let cup = app.named_product("CUP-1", "Cup", 99, "EUR", 3).await;
    let (_, token) = app.customer("ann@example.com").await;
    // Not in id (creation) order: the response keeps the client's order.
    let res = order(
        &app,
        &token,
        json!([
            {"product_id": cup.id, "quantity": 3},
            {"product_id": mug.id, "quantity": 2},
            {"product_id": tea.id, "quantity": 1},
        ]),
    )
    .await;
    res.expect(201);
    let placed = res.json();
    assert_eq!(
        keys(&placed),
        ["created_at", "id", "items", "status", "total"]
    );
    assert_eq!(placed["status"], "placed");
    assert_eq!(
        placed["total"],
        json!({"amount": 3 * 99 + 2 * 1200 + 350, "currency": "EUR"})
    );
    assert_eq!(
        placed["items"],
        json!([
            {"product_id": cup.id, "sku": "CUP-1", "name": "Cup", "quantity": 3, "unit_price": 99},
            {"product_id": mug.id, "sku": "MUG-1", "name": "Mug", "quantity": 2, "unit_price": 1200},
            {"product_id": tea.id, "sku": "TEA-1", "name": "Tea", "quantity": 1, "unit_price": 350},
        ])
    );
    assert_rfc3339_utc(&placed["created_at"]);
    let order_id = placed["id"].as_str().unwrap().to_owned();
    assert_eq!(
        jeton::domain::ids::parse_id(&order_id).as_deref(),
        Some(order_id.as_str())
    );

    assert_eq!(app.stock(&cup.id).await, 0);
    assert_eq!(app.stock(&mug.id).await, 3);
    assert_eq!(app.stock(&tea.id).await, 9);
    assert_eq!(app.db.count_orders().await.unwrap(), 1);

    // Reading it back gives the same order, lines in the same order.
    let res = app
        .get_as(&format!("/api/v1/me/orders/{order_id}"), &token)
        .await;
    res.expect(200);
    assert_eq!(res.json(), placed);
    let res = app.get_as("/api/v1/me/orders", &token).await;
    res.expect(200);
    assert_eq!(res.json(), json!({"data": [placed], "next_cursor": null}));

    // The catalogue shows the new stock.
    let res = app
        .get_as(&format!("/api/v1/products/{}", mug.id), &token)
        .await;
    res.expect(200);
    assert_eq!(res.json()["stock"], 3);

    // A later price change does not rewrite the order.
    let admin = app.admin_key().await;
    app.patch_json_as(
        &format!("/api/v1/admin/products/{}", mug.id),
        &admin,
        json!({"price": {"amount": 9999, "currency": "EUR"}}),
    )
    .await
    .expect(200);
    let res = app
        .get_as(&format!("/api/v1/me/orders/{order_id}"), &token)
        .await;
    res.expect(200);
    assert_eq!(res.json(), placed);
}

async fn order_boundaries_are_accepted(app: TestApp) {
    let (_, token) = app.customer("bulk@example.com").await;
    // Quantity 1000 (the maximum), taking the whole stock.
    let bulk = app.product("BULK-1", 1, "JPY", 1000).await;
    let res = order(
        &app,
        &token,
        json!([{"product_id": bulk.id, "quantity": 1000}]),
    )
    .await;
    res.expect(201);
    assert_eq!(
        res.json()["total"],
        json!({"amount": 1000, "currency": "JPY"})
    );
    assert_eq!(app.stock(&bulk.id).await, 0);

    // 100 lines (the maximum).
    let mut lines = Vec::new();
    let mut products = Vec::new();
    for i in 0..100 {
        let product = app.product(&format!("LINE-{i:03}"), 10 + i, "EUR", 2).await;
        lines.push(json!({"product_id": product.id, "quantity": 1}));
        products.push(product);
    }
    lines.reverse();
    let res = order(&app, &token, Value::Array(lines)).await;
    res.expect(201);
    let placed = res.json();
    let items = placed["items"].as_array().unwrap();
    assert_eq!(items.len(), 100);
    assert_eq!(items[0]["sku"], "LINE-099");
    assert_eq!(items[99]["sku"], "LINE-000");
    assert_eq!(
        placed["total"]["amount"],
        (0..100).map(|i| 10 + i).sum::<i64>()
    );
    for product in &products {
        assert_eq!(app.stock(&product.id).await, 1);
    }
    assert_eq!(app.db.count_orders().await.unwrap(), 2);
}

async fn insufficient_stock_changes_nothing(app: TestApp) {
    // `plenty` has the smaller id, so a store that takes lines in id order
    // has already decremented it when it finds `scarce` short.
    let plenty = app.product("PLENTY", 500, "EUR", 5).await;
    let scarce = app.product("SCARCE", 700, "EUR", 1).await;
    let (_, token) = app.customer("ann@example.com").await;
    let attempts = [
        json!([{"product_id": plenty.id, "quantity": 2}, {"product_id": scarce.id, "quantity": 2}]),
        json!([{"product_id": scarce.id, "quantity": 2}, {"product_id": plenty.id, "quantity": 2}]),
        json!([{"product_id": plenty.id, "quantity": 6}]),
        json!([{"product_id": plenty.id, "quantity": 6}, {"product_id": scarce.id, "quantity": 1}]),
        json!([{"product_id": plenty.id, "quantity": 1000}, {"product_id": scarce.id, "quantity": 1000}]),
    ];
    for items in attempts {
        order(&app, &token, items.clone())
            .await
            .expect_problem(409, "insufficient_stock");
        assert_eq!(app.stock(&plenty.id).await, 5, "{items}");
        assert_eq!(app.stock(&scarce.id).await, 1, "{items}");
        assert_eq!(app.db.count_orders().await.unwrap(), 0, "{items}");
    }
    let res = app.get_as("/api/v1/me/orders", &token).await;
    res.expect(200);
    assert_eq!(res.json(), json!({"data": [], "next_cursor": null}));

    // Exactly the stock is fine, and then nothing is left.
    order(
        &app,
        &token,
        json!([{"product_id": scarce.id, "quantity": 1}, {"product_id": plenty.id, "quantity": 5}]),
    )
    .await
    .expect(201);
    assert_eq!(app.stock(&plenty.id).await, 0);
    assert_eq!(app.stock(&scarce.id).await, 0);
    order(
        &app,
        &token,
        json!([{"product_id": plenty.id, "quantity": 1}]),
    )
    .await
    .expect_problem(409, "insufficient_stock");
    assert_eq!(app.db.count_orders().await.unwrap(), 1);
}

async fn unknown_product_or_mixed_currencies_change_nothing(app: TestApp) {
    let euro = app.product("EURO-1", 500, "EUR", 5).await;
    let euro2 = app.product("EURO-2", 600, "EUR", 5).await;
    let dollar = app.product("DOLLAR-1", 700, "USD", 5).await;
    let (_, token) = app.customer("ann@example.com").await;
    let unknown = new_id();

    // A well-formed id that names no product: 422, naming the line.
    let res = order(
        &app,
        &token,
        json!([{"product_id": euro.id, "quantity": 1}, {"product_id": unknown, "quantity": 1}]),
    )
    .await;
    res.expect_problem(422, "validation_failed");
    assert_eq!(error_fields(&res.json()), ["items[1].product_id"]);
    let res = order(
        &app,
        &token,
        json!([{"product_id": unknown, "quantity": 1}]),
    )
    .await;
    res.expect_problem(422, "validation_failed");
    assert_eq!(error_fields(&res.json()), ["items[0].product_id"]);

    // Mixed currencies, in either line order.
    for items in [
        json!([{"product_id": euro.id, "quantity": 1}, {"product_id": dollar.id, "quantity": 1}]),
        json!([{"product_id": dollar.id, "quantity": 1}, {"product_id": euro.id, "quantity": 1}]),
        json!([
            {"product_id": euro.id, "quantity": 1},
            {"product_id": euro2.id, "quantity": 1},
            {"product_id": dollar.id, "quantity": 1},
        ]),
    ] {
        order(&app, &token, items.clone())
            .await
            .expect_problem(422, "validation_failed");
    }
    for product in [&euro, &euro2, &dollar] {
        assert_eq!(app.stock(&product.id).await, 5, "{}", product.sku);
    }
    assert_eq!(app.db.count_orders().await.unwrap(), 0);

    // One currency per order is fine, whichever it is.
    let res = order(
        &app,
        &token,
        json!([{"product_id": dollar.id, "quantity": 2}]),
    )
    .await;
    res.expect(201);
    assert_eq!(
        res.json()["total"],
        json!({"amount": 1400, "currency": "USD"})
    );
}

async fn bad_order_bodies_are_refused_and_write_nothing(app: TestApp) {
    let a = app.product("AAA-1", 500, "EUR", 50).await;
    let b = app.product("BBB-1", 500, "EUR", 50).await;
    let (_, token) = app.customer("ann@example.com").await;
    let line = |quantity: &str| {
        format!(
            r#"{{"items": [{{"product_id": "{}", "quantity": {quantity}}}]}}"#,
            a.id
        )
    };
    let with_id = |id: &str| {
        format!(
            r#"{{"items": [{{"product_id": "{}", "quantity": 1}}, {{"product_id": {id}, "quantity": 1}}]}}"#,
            b.id
        )
    };
    let hundred_and_one: Vec<Value> = (0..101)
        .map(|_| json!({"product_id": new_id(), "quantity": 1}))
        .collect();

    let mut cases: Vec<(String, u16, &str)> = Vec::new();
    // Quantities outside 1..=1000, or not integers (`1.0` is one: JSON
    // has one kind of number).
    for quantity in [
        "0",
        "-1",
        "1001",
        "1.5",
        "1e-1",
        "\"2\"",
        "null",
        "true",
        "[1]",
        "9223372036854775808",
        "9223372036854775807",
        "-9223372036854775808",
        "-9223372036854775809",
        "18446744073709551616",
        "4294967296",
        "4294967297",
        "2147483648",
    ] {
        cases.push((line(quantity), 422, "validation_failed"));
    }
    cases.push((
        format!(r#"{{"items": [{{"product_id": "{}"}}]}}"#, a.id),
        422,
        "validation_failed",
    ));
    // Product ids that are not ids.
    for id in [
        r#""1""#,
        r#""0""#,
        r#""""#,
        r#""' OR 1=1 --""#,
        r#""x'; DROP TABLE products; --""#,
        r#""1 OR 1=1""#,
        "1",
        "null",
        "{}",
        &format!("\"{}\"", a.id.replace('-', "")),
        &format!("\"{} \"", a.id),
        &format!("\"{}' OR '1'='1\"", &a.id[..20]),
    ] {
        cases.push((with_id(id), 422, "validation_failed"));
    }
    // The same product on two lines, also spelled differently.
    cases.push((
        json!({"items": [{"product_id": a.id, "quantity": 1}, {"product_id": a.id, "quantity": 2}]})
            .to_string(),
        422,
        "validation_failed",
    ));
    cases.push((
        json!({"items": [
            {"product_id": a.id, "quantity": 1},
            {"product_id": b.id, "quantity": 1},
            {"product_id": a.id.to_uppercase(), "quantity": 1},
        ]})
        .to_string(),
        422,
        "validation_failed",
    ));
    // Line counts outside 1..=100, and items that are not a list.
    for body in [
        json!({"items": []}),
        json!({"items": hundred_and_one}),
        json!({}),
        json!({"items": null}),
        json!({"items": {}}),
        json!({"items": {"product_id": a.id, "quantity": 1}}),
        json!([{"product_id": a.id, "quantity": 1}]),
        json!(null),
        json!("items"),
    ] {
        cases.push((body.to_string(), 422, "validation_failed"));
    }
    // Fields the endpoint does not know, at the top and in lines.
    let good_line = json!({"product_id": a.id, "quantity": 1});
    for (field, value) in [
        ("unit_price", json!(1)),
        ("price", json!(1)),
        ("status", json!("paid")),
        ("customer_id", json!(new_id())),
        ("total", json!({"amount": 1, "currency": "EUR"})),
        ("id", json!(new_id())),
    ] {
        let mut top = json!({"items": [good_line.clone()]});
        top[field] = value.clone();
        cases.push((top.to_string(), 422, "validation_failed"));
        let mut in_line = good_line.clone();
        in_line[field] = value;
        cases.push((
            json!({"items": [in_line]}).to_string(),
            422,
            "validation_failed",
        ));
    }
    // Not JSON at all.
    for body in [
        "",
        "{",
        r#"{"items": ["#,
        r#"{items: []}"#,
        r#"{"items": [{"product_id": 'x', "quantity": 1}]}"#,
        r#"{"items": []} {"items": []}"#,
        "\u{0}",
        "not json",
    ] {
        cases.push((body.to_owned(), 400, "malformed_json"));
    }

    for (body, status, code) in &cases {
        let res = app
            .post("/api/v1/orders")
            .bearer(&token)
            .raw("application/json", body.clone())
            .send()
            .await;
        assert_eq!(
            (res.status.as_u16(), res.code().as_str()),
            (*status, *code),
            "body {body}: {}",
            res.text()
        );
        res.expect_problem(*status, code);
        if *status == 422 {
            assert!(!error_fields(&res.json()).is_empty(), "{body}");
        }
        assert_eq!(app.db.count_orders().await.unwrap(), 0, "{body}");
        assert_eq!(app.stock(&a.id).await, 50, "{body}");
        assert_eq!(app.stock(&b.id).await, 50, "{body}");
    }

    // The unknown field is named.
    let res = order(
        &app,
        &token,
        json!([{"product_id": a.id, "quantity": 1, "unit_price": 0}]),
    )
    .await;
    res.expect_problem(422, "validation_failed");
    let fields = error_fields(&res.json());
    assert!(fields.iter().any(|f| f.starts_with("items")), "{fields:?}");
    assert!(
        res.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unit_price"),
        "{}",
        res.text()
    );

    // A body that is not declared JSON is 415 and writes nothing either.
    let res = app
        .post("/api/v1/orders")
        .bearer(&token)
        .raw(
            "text/plain",
            json!({"items": [{"product_id": a.id, "quantity": 1}]}).to_string(),
        )
        .send()
        .await;
    res.expect(415);
    assert_eq!(app.db.count_orders().await.unwrap(), 0);

    // And after all that the customer can still order normally.
    order(&app, &token, json!([{"product_id": a.id, "quantity": 1}]))
        .await
        .expect(201);
    assert_eq!(app.stock(&a.id).await, 49);
    assert_eq!(app.db.count_orders().await.unwrap(), 1);
}

async fn concurrent_orders_never_oversell(app: TestApp) {
    let product = app.product("HOT-1", 1500, "EUR", 10).await;
    let mut tokens = Vec::new();
    for i in 0..4 {
        tokens.push(app.customer(&format!("buyer{i}@example.com")).await.1);
    }
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let app = Arc::clone(&app);
        let token = tokens[i % tokens.len()].clone();
        let product_id = product.id.clone();
        tasks.push(tokio::spawn(async move {
            let res = app
                .post_json_as(
                    "/api/v1/orders",
                    &token,
                    json!({"items": [{"product_id": product_id, "quantity": 1}]}),
                )
                .await;
            (res.status.as_u16(), res.code(), res.text())
        }));
    }
    let mut created = 0;
    let mut refused = 0;
    for task in tasks {
        let (status, code, text) = task.await.unwrap();
        match status {
            201 => created += 1,
            409 => {
                assert_eq!(code, "insufficient_stock", "{text}");
                refused += 1;
            }
            other => panic!("unexpected status {other}: {text}"),
        }
    }
    assert_eq!((created, refused), (10, 30));
    assert_eq!(app.db.count_orders().await.unwrap(), 10);
    assert_eq!(app.stock(&product.id).await, 0);

    // The customers' lists agree with the count.
    let mut listed = HashSet::new();
    for token in &tokens {
        for placed in app.all_pages(token, "/api/v1/me/orders", "", 100).await {
            assert_eq!(placed["items"][0]["quantity"], 1);
            assert!(listed.insert(placed["id"].as_str().unwrap().to_owned()));
        }
    }
    assert_eq!(listed.len(), 10);
}

// ---------------------------------------------------------------- reading orders

on_both_databases!(
    my_orders_are_newest_first_and_paged,
    orders_placed_while_paging_neither_appear_nor_duplicate,
    other_customers_orders_are_invisible,
    my_orders_reject_bad_page_requests_and_unknown_ids,
    a_placed_order_is_listed_at_once_after_the_list_was_read,
);

// One customer places more orders than the cache keeps, in a burst: the
// per-customer order limit (tested below) is off.
on_both_databases!(
    config = jeton::config::Config {
        customer_orders_per_minute: 0,
        ..Default::default()
    };
    pages_from_memory_and_past_it_are_the_stores_pages,
);

/// Places `n` single-line orders, quantity 1, 2, … so they differ; returns
/// the responses in placement order.
async fn place_orders(app: &TestApp, token: &str, product_id: &str, n: i64) -> Vec<Value> {
    let mut placed = Vec::new();
    for quantity in 1..=n {
        let res = order(
            app,
            token,
            json!([{"product_id": product_id, "quantity": quantity}]),
        )
        .await;
        res.expect(201);
        placed.push(res.json());
    }
    placed
}

async fn my_orders_are_newest_first_and_paged(app: TestApp) {
    let product = app.product("ITEM-1", 100, "EUR", 1000).await;
    let (_, token) = app.customer("ann@example.com").await;
    let mut placed = place_orders(&app, &token, &product.id, 7).await;
    placed.reverse();
    let newest_first = ids(&placed);

    let res = app.get_as("/api/v1/me/orders", &token).await;
    res.expect(200);
    let page = res.json();
    assert_eq!(page["next_cursor"], Value::Null);
    assert_eq!(page["data"], Value::Array(placed.clone()));

    for limit in [1, 3, 7, 100] {
        let seen = app.all_pages(&token, "/api/v1/me/orders", "", limit).await;
        assert_eq!(ids(&seen), newest_first, "limit {limit}");
        assert_eq!(seen, placed, "limit {limit}");
    }

    // Each listed order reads back the same by id.
    for listed in &placed {
        let res = app
            .get_as(
                &format!("/api/v1/me/orders/{}", listed["id"].as_str().unwrap()),
                &token,
            )
            .await;
        res.expect(200);
        assert_eq!(&res.json(), listed);
    }
}

async fn orders_placed_while_paging_neither_appear_nor_duplicate(app: TestApp) {
    let product = app.product("ITEM-1", 100, "EUR", 1000).await;
    let (_, token) = app.customer("ann@example.com").await;
    let mut placed = place_orders(&app, &token, &product.id, 7).await;
    placed.reverse();
    let newest_first = ids(&placed);

    let mut seen = Vec::new();
    let mut late = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            None => "/api/v1/me/orders?limit=3".to_owned(),
            Some(cursor) => format!("/api/v1/me/orders?limit=3&cursor={}", enc(cursor)),
        };
        let res = app.get_as(&url, &token).await;
        res.expect(200);
        let page = res.json();
        seen.extend(ids(page["data"].as_array().unwrap()));
        // An order arrives between every two pages.
        let res = order(
            &app,
            &token,
            json!([{"product_id": product.id, "quantity": 9}]),
        )
        .await;
        res.expect(201);
        late.push(res.json()["id"].as_str().unwrap().to_owned());
        match &page["next_cursor"] {
            Value::String(next) => cursor = Some(next.clone()),
            _ => break,
        }
    }
    assert_eq!(seen, newest_first, "each original order once, in order");
    assert!(late.iter().all(|id| !seen.contains(id)));

    // A fresh listing shows the late orders first, newest first.
    let all = app.all_pages(&token, "/api/v1/me/orders", "", 4).await;
    let mut expected = late.clone();
    expected.reverse();
    expected.extend(newest_first);
    assert_eq!(ids(&all), expected);
}

async fn other_customers_orders_are_invisible(app: TestApp) {
    let product = app.product("ITEM-1", 100, "EUR", 1000).await;
    let (_, ann) = app.customer("ann@example.com").await;
    let (_, bob) = app.customer("bob@example.com").await;
    let placed = place_orders(&app, &ann, &product.id, 3).await;

    let res = app.get_as("/api/v1/me/orders", &bob).await;
    res.expect(200);
    assert_eq!(res.json(), json!({"data": [], "next_cursor": null}));
    for placed_order in &placed {
        let id = placed_order["id"].as_str().unwrap();
        let res = app.get_as(&format!("/api/v1/me/orders/{id}"), &bob).await;
        res.expect_problem(404, "not_found");
        // Exactly the answer for an order that does not exist.
        let missing = app
            .get_as(&format!("/api/v1/me/orders/{}", new_id()), &bob)
            .await;
        assert_eq!(res.json()["detail"], missing.json()["detail"]);
    }
    // Ann's cursor does not open Ann's orders to Bob.
    let res = app.get_as("/api/v1/me/orders?limit=1", &ann).await;
    res.expect(200);
    let cursor = res.json()["next_cursor"].as_str().unwrap().to_owned();
    let res = app
        .get_as(&format!("/api/v1/me/orders?cursor={}", enc(&cursor)), &bob)
        .await;
    res.expect(200);
    assert_eq!(res.json(), json!({"data": [], "next_cursor": null}));

    // Bob's own order is his alone.
    let bobs = place_orders(&app, &bob, &product.id, 1).await;
    let res = app.get_as("/api/v1/me/orders", &bob).await;
    res.expect(200);
    assert_eq!(res.json(), json!({"data": bobs, "next_cursor": null}));
    let res = app.get_as("/api/v1/me/orders", &ann).await;
    res.expect(200);
    let anns = res.json();
    assert_eq!(anns["data"].as_array().unwrap().len(), 3);
    assert!(
        !ids(anns["data"].as_array().unwrap())
            .contains(&bobs[0]["id"].as_str().unwrap().to_owned())
    );
}

async fn my_orders_reject_bad_page_requests_and_unknown_ids(app: TestApp) {
    let product = app.product("ITEM-1", 100, "EUR", 1000).await;
    let (_, token) = app.customer("ann@example.com").await;
    let placed = place_orders(&app, &token, &product.id, 1).await;
    let order_id = placed[0]["id"].as_str().unwrap().to_owned();

    for query in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=abc",
        "cursor=garbage!",
        "cursor=",
        "status=placed",
        "q=x",
        "customer_id=1",
    ] {
        app.get_as(&format!("/api/v1/me/orders?{query}"), &token)
            .await
            .expect_problem(422, "validation_failed");
    }
    app.get_as(&format!("/api/v1/me/orders?cursor={order_id}"), &token)
        .await
        .expect_problem(422, "validation_failed");

    for id in [
        new_id(),
        "1".to_owned(),
        "%27%20OR%201%3D1%20--".to_owned(),
        "%27%20OR%20customer_id%20IS%20NOT%20NULL%20--".to_owned(),
        order_id.replace('-', ""),
        format!("{order_id}x"),
        product.id.to_string(),
    ] {
        app.get_as(&format!("/api/v1/me/orders/{id}"), &token)
            .await
            .expect_problem(404, "not_found");
    }
    // The real one is still there.
    app.get_as(&format!("/api/v1/me/orders/{order_id}"), &token)
        .await
        .expect(200);
}

/// The orders are read from memory after the first read; placing one
/// drops the customer's copy at once on this process.
async fn a_placed_order_is_listed_at_once_after_the_list_was_read(app: TestApp) {
    let product = app.product("ITEM-1", 100, "EUR", 1000).await;
    let (_, token) = app.customer("ann@example.com").await;
    let (_, bob) = app.customer("bob@example.com").await;
    let first = place_orders(&app, &token, &product.id, 1).await.remove(0);
    let bobs = place_orders(&app, &bob, &product.id, 1).await.remove(0);
    for _ in 0..2 {
        let res = app.get("/api/v1/me/orders").bearer(&token).send().await;
        res.expect(200);
        assert_eq!(res.json(), json!({"data": [first], "next_cursor": null}));
    }
    let later = s(&order(
        &app,
        &token,
        json!([{"product_id": product.id, "quantity": 2}]),
    )
    .await
    .expect(201)
    .json()["id"]);

    let res = app.get("/api/v1/me/orders").bearer(&token).send().await;
    res.expect(200);
    assert_eq!(
        ids(res.json()["data"].as_array().unwrap()),
        [later.clone(), s(&first["id"])]
    );
    app.get(&format!("/api/v1/me/orders/{later}"))
        .bearer(&token)
        .send()
        .await
        .expect(200);
    // Another customer's order stays theirs, from memory too.
    app.get(&format!("/api/v1/me/orders/{}", s(&bobs["id"])))
        .bearer(&token)
        .send()
        .await
        .expect_problem(404, "not_found");
    let res = app.get("/api/v1/me/orders").bearer(&bob).send().await;
    assert_eq!(res.json(), json!({"data": [bobs], "next_cursor": null}));
}

/// Byte for byte the page the store gives, for pages within the newest
/// orders kept in memory and for those further back, which are read from
/// the database; and so for single orders.
async fn pages_from_memory_and_past_it_are_the_stores_pages(app: TestApp) {
    use jeton::{
        customer_cache::KEPT_ORDERS, domain::ids::CustomerId, pagination::PageRequest, responses,
    };

    let product = app.product("ITEM-1", 100, "EUR", 100_000).await;
    let (customer, token) = app.customer("ann@example.com").await;
    let customer: CustomerId = customer.parse().expect("a customer id");
    let placed = KEPT_ORDERS + 3;
    for _ in 0..placed {
        order(
            &app,
            &token,
            json!([{"product_id": product.id, "quantity": 1}]),
        )
        .await
        .expect(201);
    }
    let from_store = |page: PageRequest| {
        let db = app.db.clone();
        let customer = customer.clone();
        async move {
            let rows = db
                .list_orders(&customer, page.after.as_deref(), page.fetch_limit())
                .await
                .unwrap();
            let orders: Vec<responses::Order> =
                rows.into_iter().map(responses::Order::from).collect();
            serde_json::to_string(&page.page(orders, |order| &order.id)).unwrap()
        }
    };
    for limit in [100, 7, 1] {
        let mut cursor: Option<String> = None;
        let mut seen = 0;
        loop {
            let url = match &cursor {
                None => format!("/api/v1/me/orders?limit={limit}"),
                Some(cursor) => format!("/api/v1/me/orders?limit={limit}&cursor={}", enc(cursor)),
            };
            let res = app.get(&url).bearer(&token).send().await;
            res.expect(200);
            let page = PageRequest::parse(Some(limit), cursor.as_deref()).unwrap();
            assert_eq!(res.text(), from_store(page).await, "{url}");
            let body = res.json();
            seen += body["data"].as_array().unwrap().len();
            match &body["next_cursor"] {
                Value::String(next) => cursor = Some(next.clone()),
                _ => break,
            }
        }
        assert_eq!(seen, placed, "limit {limit}");
    }
    // The oldest order, older than those kept, reads back from the store.
    let oldest = app
        .db
        .list_orders(&customer, None, i64::try_from(placed).unwrap())
        .await
        .unwrap()
        .pop()
        .unwrap();
    let res = app
        .get(&format!("/api/v1/me/orders/{}", oldest.id))
        .bearer(&token)
        .send()
        .await;
    res.expect(200);
    assert_eq!(
        res.text(),
        serde_json::to_string(&responses::Order::from(oldest)).unwrap()
    );
    app.get(&format!("/api/v1/me/orders/{}", new_id()))
        .bearer(&token)
        .send()
        .await
        .expect_problem(404, "not_found");
}

// ---------------------------------------------------------------- helpers

/// A customer made in the store with a user token, so tests with many
/// customers neither hash passwords nor meet the registration throttle.
async fn buyer(app: &TestApp, email: &str) -> (String, String) {
    let customer = app
        .db
        .create_customer(email, "Buyer", "not-a-password-hash")
        .await
        .unwrap();
    let token = TOKENS.generate(TokenKind::User);
    app.db
        .insert_user_token(
            &token,
            NewUserToken {
                customer_id: &customer.id,
                client_id: None,
                name: "test",
                abilities: &abilities::user_ceiling(),
                expires_at: None,
            },
            &Audit::cli(),
        )
        .await
        .unwrap();
    (customer.id.into(), token.expose_secret().to_owned())
}

async fn buyers(app: &TestApp, n: usize) -> Vec<String> {
    let mut tokens = Vec::new();
    for i in 0..n {
        tokens.push(buyer(app, &format!("buyer{i}@example.com")).await.1);
    }
    tokens
}

/// `POST /orders` with `items` and, if given, an `Idempotency-Key` of
/// arbitrary bytes (the request builder of `support` takes only text).
async fn order_with_key(app: &TestApp, token: &str, key: Option<&[u8]>, items: &Value) -> Res {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/orders")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header(
            "idempotency-key",
            HeaderValue::from_bytes(key).expect("a header value the http crate allows"),
        );
    }
    let body = serde_json::to_vec(&json!({ "items": items })).unwrap();
    support::send_request(app, request.body(Body::from(body)).unwrap()).await
}

async fn keyed(app: &TestApp, token: &str, key: &str, items: &Value) -> Res {
    order_with_key(app, token, Some(key.as_bytes()), items).await
}

fn line(product_id: &str, quantity: i64) -> Value {
    json!({"product_id": product_id, "quantity": quantity})
}

async fn restock(app: &TestApp, admin: &str, product_id: &str, patch: Value) -> Res {
    app.patch_json_as(
        &format!("/api/v1/admin/products/{product_id}"),
        admin,
        patch,
    )
    .await
}

/// Ordered quantity per product, from `order_items`.
async fn ordered_quantities(pool: &AnyPool) -> HashMap<String, i64> {
    sqlx::query("SELECT product_id, quantity FROM order_items")
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .fold(HashMap::new(), |mut sums, row| {
            *sums.entry(row.get::<String, _>("product_id")).or_default() +=
                row.get::<i64, _>("quantity");
            sums
        })
}

fn order_id(res: &Res) -> String {
    res.json()["id"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------- contention

on_both_databases!(
    two_hundred_orders_for_fifty_units_make_exactly_fifty,
    opposite_two_line_orders_all_succeed,
    restocking_while_orders_arrive_loses_no_units,
);

async fn two_hundred_orders_for_fifty_units_make_exactly_fifty(app: TestApp) {
    let product = app.product("HOT-1", 900, "EUR", 50).await;
    let tokens = buyers(&app, 20).await;
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let app = Arc::clone(&app);
        let token = tokens[i % tokens.len()].clone();
        let items = json!([line(&product.id, 1)]);
        tasks.push(tokio::spawn(async move {
            let res = order_with_key(&app, &token, None, &items).await;
            (res.status.as_u16(), res.code(), res.text())
        }));
    }
    let (mut created, mut refused) = (0, 0);
    for task in tasks {
        let (status, code, text) = task.await.unwrap();
        match status {
            201 => created += 1,
            409 if code == "insufficient_stock" => refused += 1,
            _ => panic!("unexpected {status}: {text}"),
        }
    }
    assert_eq!((created, refused), (50, 150));
    assert_eq!(app.stock(&product.id).await, 0);
    assert_eq!(app.db.count_orders().await.unwrap(), 50);
    let pool = app.side_pool().await;
    assert_eq!(ordered_quantities(&pool).await[product.id.as_str()], 50);
}

async fn opposite_two_line_orders_all_succeed(app: TestApp) {
    let a = app.product("PAIR-A", 100, "EUR", 500).await;
    let b = app.product("PAIR-B", 200, "EUR", 500).await;
    let tokens = buyers(&app, 8).await;
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let app = Arc::clone(&app);
        let token = tokens[i % tokens.len()].clone();
        // Half take A then B, half B then A; quantities differ so a line
        // applied to the wrong product would show in the stock.
        let items = if i % 2 == 0 {
            json!([line(&a.id, 1), line(&b.id, 2)])
        } else {
            json!([line(&b.id, 2), line(&a.id, 1)])
        };
        tasks.push(tokio::spawn(async move {
            let res = order_with_key(&app, &token, None, &items).await;
            (res.status.as_u16(), res.text(), items)
        }));
    }
    for task in tasks {
        let (status, text, items) = task.await.unwrap();
        assert_eq!(status, 201, "{text}");
        // The response keeps the order the lines were sent in.
        let placed: Value = serde_json::from_str(&text).unwrap();
        for (sent, got) in items
            .as_array()
            .unwrap()
            .iter()
            .zip(placed["items"].as_array().unwrap())
        {
            assert_eq!(sent["product_id"], got["product_id"]);
            assert_eq!(sent["quantity"], got["quantity"]);
        }
    }
    assert_eq!(app.stock(&a.id).await, 500 - 40);
    assert_eq!(app.stock(&b.id).await, 500 - 80);
    assert_eq!(app.db.count_orders().await.unwrap(), 40);
}

async fn restocking_while_orders_arrive_loses_no_units(app: TestApp) {
    let product = app.product("RESTOCK-1", 500, "EUR", 30).await;
    let admin = app.admin_key().await;
    let tokens = buyers(&app, 10).await;
    let app = Arc::new(app);
    let mut orders = Vec::new();
    for i in 0..80 {
        let app = Arc::clone(&app);
        let token = tokens[i % tokens.len()].clone();
        let quantity = (i % 3 + 1) as i64;
        let items = json!([line(&product.id, quantity)]);
        orders.push(tokio::spawn(async move {
            let res = order_with_key(&app, &token, None, &items).await;
            (res.status.as_u16(), res.code(), res.text(), quantity)
        }));
    }
    let mut restocks = Vec::new();
    for i in 0..30 {
        let app = Arc::clone(&app);
        let admin = admin.clone();
        let product_id = product.id.clone();
        // Mostly deliveries, some write-offs that may find too little stock.
        let delta: i64 = if i % 5 == 4 { -4 } else { 5 };
        restocks.push(tokio::spawn(async move {
            let res = restock(&app, &admin, &product_id, json!({"stock_delta": delta})).await;
            (res.status.as_u16(), res.code(), res.text(), delta)
        }));
    }
    let mut ordered = 0;
    for task in orders {
        let (status, code, text, quantity) = task.await.unwrap();
        match status {
            201 => ordered += quantity,
            409 if code == "insufficient_stock" => {}
            _ => panic!("order: unexpected {status}: {text}"),
        }
    }
    let mut restocked = 0;
    let mut deliveries = 0;
    for task in restocks {
        let (status, code, text, delta) = task.await.unwrap();
        match status {
            200 => {
                restocked += delta;
                deliveries += 1;
                assert!(
                    serde_json::from_str::<Value>(&text).unwrap()["stock"]
                        .as_i64()
                        .unwrap()
                        >= 0
                );
            }
            409 if code == "insufficient_stock" && delta < 0 => {}
            _ => panic!("restock {delta}: unexpected {status}: {text}"),
        }
    }
    assert!(ordered > 0 && deliveries > 0);
    assert_eq!(app.stock(&product.id).await, 30 + restocked - ordered);
    let pool = app.side_pool().await;
    assert_eq!(
        ordered_quantities(&pool).await[product.id.as_str()],
        ordered
    );
}

// ---------------------------------------------------------------- what counts as contention

on_both_databases!(real_contention_errors_are_recognised_as_retryable);

/// The retry helper acts on the codes the databases really return, through
/// the driver the store uses: a PostgreSQL deadlock, SQLite's busy.
async fn real_contention_errors_are_recognised_as_retryable(app: TestApp) {
    use jeton::store::retry::{is_contention, is_contention_or_disconnect};
    use sqlx::{Connection, Executor};

    let a = app.product("LOCK-A", 100, "EUR", 10).await;
    let b = app.product("LOCK-B", 100, "EUR", 10).await;
    let error = match app.backend {
        Backend::Sqlite => {
            let mut holder = sqlx::AnyConnection::connect(&app.url).await.unwrap();
            let mut other = sqlx::AnyConnection::connect(&app.url).await.unwrap();
            other.execute("PRAGMA busy_timeout = 0").await.unwrap();
            holder.execute("BEGIN IMMEDIATE").await.unwrap();
            let error = other.execute("BEGIN IMMEDIATE").await.unwrap_err();
            holder.execute("ROLLBACK").await.unwrap();
            error
        }
        Backend::Postgres => {
            // Two transactions locking the two rows in opposite order: the
            // server breaks the cycle by failing one of them.
            let lock = |first: String, second: String, url: String| async move {
                let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
                let mut tx = conn.begin().await.unwrap();
                let touch = "UPDATE products SET stock = stock WHERE id = $1";
                sqlx::query(touch)
                    .bind(first)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query(touch)
                    .bind(second)
                    .execute(&mut *tx)
                    .await
                    .map(|_| ())
            };
            let mut first_conn = sqlx::AnyConnection::connect(&app.url).await.unwrap();
            let mut tx = first_conn.begin().await.unwrap();
            let touch = "UPDATE products SET stock = stock WHERE id = $1";
            sqlx::query(touch)
                .bind(a.id.clone())
                .execute(&mut *tx)
                .await
                .unwrap();
            let other = tokio::spawn(lock(b.id.to_string(), a.id.to_string(), app.url.clone()));
            // Wait until the other transaction holds B and waits for A.
            let pool = app.side_pool().await;
            loop {
                let waiting: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                if waiting > 0 {
                    break;
                }
                tokio::task::yield_now().await;
            }
            let mine = sqlx::query(touch)
                .bind(b.id.clone())
                .execute(&mut *tx)
                .await
                .map(|_| ());
            // Releases A, so the other transaction ends either way.
            tx.rollback().await.unwrap();
            let theirs = other.await.unwrap();
            match (mine, theirs) {
                (Err(error), Ok(())) | (Ok(()), Err(error)) => error,
                other => panic!("expected exactly one deadlock victim: {other:?}"),
            }
        }
    };
    assert!(is_contention(&error), "{error:?}");
    assert!(is_contention_or_disconnect(&error), "{error:?}");
    // A constraint violation is no contention: retrying cannot help.
    let violation = sqlx::query("UPDATE products SET stock = -1 WHERE id = $1")
        .bind(a.id.clone())
        .execute(&app.side_pool().await)
        .await
        .unwrap_err();
    assert!(!is_contention(&violation), "{violation:?}");
}

// ---------------------------------------------------------------- restocking

on_both_databases!(stock_delta_is_atomic_bounded_and_exclusive_with_stock);

async fn stock_delta_is_atomic_bounded_and_exclusive_with_stock(app: TestApp) {
    let product = app.product("DELTA-1", 500, "EUR", 10).await;
    let admin = app.admin_key().await;

    let res = restock(&app, &admin, &product.id, json!({"stock_delta": 5})).await;
    res.expect(200);
    assert_eq!(res.json()["stock"], 15);
    let res = restock(&app, &admin, &product.id, json!({"stock_delta": -15})).await;
    res.expect(200);
    assert_eq!(res.json()["stock"], 0);
    restock(&app, &admin, &product.id, json!({"stock_delta": 7}))
        .await
        .expect(200);

    // Below zero: refused, nothing changes, not even the other fields.
    restock(
        &app,
        &admin,
        &product.id,
        json!({"stock_delta": -8, "name": "Renamed"}),
    )
    .await
    .expect_problem(409, "insufficient_stock");
    let stored = app.db.get_product(&product.id).await.unwrap().unwrap();
    assert_eq!((stored.stock, stored.name.as_str()), (7, "Product DELTA-1"));

    // Above the largest stock: refused too.
    restock(
        &app,
        &admin,
        &product.id,
        json!({"stock_delta": 1_000_000_000}),
    )
    .await
    .expect_problem(409, "stock_limit_exceeded");
    assert_eq!(app.stock(&product.id).await, 7);

    // With another field it changes both.
    let res = restock(
        &app,
        &admin,
        &product.id,
        json!({"stock_delta": 3, "name": "Renamed"}),
    )
    .await;
    res.expect(200);
    assert_eq!(
        (res.json()["stock"].clone(), res.json()["name"].clone()),
        (json!(10), json!("Renamed"))
    );

    // Malformed, out of range, or combined with `stock`: 422, nothing changes.
    for patch in [
        json!({"stock_delta": 1, "stock": 5}),
        json!({"stock_delta": "1"}),
        json!({"stock_delta": 1.5}),
        json!({"stock_delta": null, "stock": null, "name": 1}),
        json!({"stock_delta": 1_000_000_001}),
        json!({"stock_delta": -1_000_000_001}),
        json!({"stock_delta": i64::MIN}),
    ] {
        let res = restock(&app, &admin, &product.id, patch.clone()).await;
        res.expect_problem(422, "validation_failed");
        assert_eq!(app.stock(&product.id).await, 10, "{patch}");
    }
    // An unknown product is 404 whatever the delta.
    for delta in [1, -1] {
        restock(
            &app,
            &admin,
            "01900000-0000-7000-8000-000000000000",
            json!({"stock_delta": delta}),
        )
        .await
        .expect_problem(404, "not_found");
    }
}

// ---------------------------------------------------------------- idempotency

on_both_databases!(
    ten_concurrent_requests_with_one_key_make_one_order,
    a_replay_is_the_identical_first_response_and_changes_nothing,
    a_different_body_with_the_same_key_is_refused,
    keys_are_per_customer,
    a_failed_order_leaves_its_key_free,
    an_abandoned_key_is_in_use_until_its_lease_runs_out,
    bad_idempotency_keys_are_refused_and_write_nothing,
    keys_older_than_a_day_are_pruned,
);

async fn ten_concurrent_requests_with_one_key_make_one_order(app: TestApp) {
    let product = app.product("ONCE-1", 700, "EUR", 100).await;
    let (_, token) = buyer(&app, "ann@example.com").await;
    let app = Arc::new(app);
    let items = json!([line(&product.id, 3)]);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let app = Arc::clone(&app);
        let token = token.clone();
        let items = items.clone();
        tasks.push(tokio::spawn(async move {
            keyed(&app, &token, "checkout-7f3a", &items).await
        }));
    }
    let mut fresh = Vec::new();
    let mut replays = Vec::new();
    let mut in_use = 0;
    for task in tasks {
        let res = task.await.unwrap();
        match (res.status.as_u16(), res.header("idempotent-replayed")) {
            (201, None) => fresh.push(res),
            (201, Some(replayed)) => {
                assert_eq!(replayed, "true");
                replays.push(res);
            }
            (409, None) => {
                res.expect_problem(409, "idempotency_key_in_use");
                in_use += 1;
            }
            (status, replayed) => panic!("unexpected {status} {replayed:?}: {}", res.text()),
        }
    }
    assert_eq!(fresh.len(), 1, "exactly one request placed the order");
    assert_eq!(1 + replays.len() + in_use, 10);
    for replay in &replays {
        assert_eq!(replay.body, fresh[0].body);
    }
    assert_eq!(app.db.count_orders().await.unwrap(), 1);
    assert_eq!(app.stock(&product.id).await, 97);

    // Once done, the key replays for everyone who comes later.
    let res = keyed(&app, &token, "checkout-7f3a", &items).await;
    res.expect(201);
    assert_eq!(res.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(order_id(&res), order_id(&fresh[0]));
    assert_eq!(app.db.count_orders().await.unwrap(), 1);
}

async fn a_replay_is_the_identical_first_response_and_changes_nothing(app: TestApp) {
    let mug = app.product("MUG-1", 1200, "EUR", 10).await;
    let tea = app.product("TEA-1", 350, "EUR", 10).await;
    let (_, token) = buyer(&app, "ann@example.com").await;
    let items = json!([line(&tea.id, 2), line(&mug.id, 1)]);

    let first = keyed(&app, &token, "order-1", &items).await;
    first.expect(201);
    assert_eq!(first.header("idempotent-replayed"), None);
    assert_eq!(
        first.header("content-type").as_deref(),
        Some("application/json")
    );
    let placed = first.json();
    assert_eq!(
        placed["total"],
        json!({"amount": 2 * 350 + 1200, "currency": "EUR"})
    );
    assert_eq!(app.stock(&tea.id).await, 8);

    // A price change and a restock in between show nowhere in the replay.
    let admin = app.admin_key().await;
    restock(
        &app,
        &admin,
        &mug.id,
        json!({"price": {"amount": 1, "currency": "EUR"}, "stock_delta": 5}),
    )
    .await
    .expect(200);

    for _ in 0..3 {
        let replay = keyed(&app, &token, "order-1", &items).await;
        replay.expect(201);
        assert_eq!(
            replay.header("idempotent-replayed").as_deref(),
            Some("true")
        );
        assert_eq!(
            replay.header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(replay.header("cache-control").as_deref(), Some("no-store"));
        assert_eq!(replay.body, first.body, "byte for byte the first response");
    }
    // The same request written differently (whitespace, field order, an id
    // in capitals) is the same request.
    let respelled = format!(
        r#"{{ "items" : [ {{"quantity":2, "product_id":"{}"}}, {{"quantity": 1, "product_id": "{}"}} ] }}"#,
        tea.id.to_uppercase(),
        mug.id
    );
    let replay = app
        .post("/api/v1/orders")
        .bearer(&token)
        .header("idempotency-key", "order-1")
        .raw("application/json", respelled)
        .send()
        .await;
    replay.expect(201);
    assert_eq!(
        replay.header("idempotent-replayed").as_deref(),
        Some("true")
    );
    assert_eq!(replay.body, first.body);

    // Nothing changed: one order, the stock as after the first.
    assert_eq!(app.db.count_orders().await.unwrap(), 1);
    assert_eq!(app.stock(&tea.id).await, 8);
    assert_eq!(app.stock(&mug.id).await, 9 + 5);
    // The order reads back as it was placed.
    let res = app
        .get_as(
            &format!("/api/v1/me/orders/{}", placed["id"].as_str().unwrap()),
            &token,
        )
        .await;
    res.expect(200);
    assert_eq!(res.json(), placed);

    // Without a key, the same body is a new order.
    order_with_key(&app, &token, None, &items).await.expect(201);
    assert_eq!(app.db.count_orders().await.unwrap(), 2);
}

async fn a_different_body_with_the_same_key_is_refused(app: TestApp) {
    let a = app.product("AAA-1", 100, "EUR", 10).await;
    let b = app.product("BBB-1", 100, "EUR", 10).await;
    let (_, token) = buyer(&app, "ann@example.com").await;
    let items = json!([line(&a.id, 1), line(&b.id, 1)]);
    let first = keyed(&app, &token, "k-1", &items).await;
    first.expect(201);

    for other in [
        json!([line(&a.id, 2), line(&b.id, 1)]),
        json!([line(&a.id, 1)]),
        json!([line(&b.id, 1)]),
        json!([line(&b.id, 1), line(&a.id, 1)]),
    ] {
        let res = keyed(&app, &token, "k-1", &other).await;
        res.expect_problem(422, "idempotency_key_reused");
        assert_eq!(res.header("idempotent-replayed"), None);
    }
    assert_eq!(app.db.count_orders().await.unwrap(), 1);
    assert_eq!((app.stock(&a.id).await, app.stock(&b.id).await), (9, 9));
    // The first request still replays.
    let replay = keyed(&app, &token, "k-1", &items).await;
    replay.expect(201);
    assert_eq!(replay.body, first.body);
    // Keys differ by case and by any character.
    for other_key in ["K-1", "k-1 ", "k-2"] {
        keyed(&app, &token, other_key, &json!([line(&a.id, 1)]))
            .await
            .expect(201);
    }
    assert_eq!(app.db.count_orders().await.unwrap(), 4);
}

async fn keys_are_per_customer(app: TestApp) {
    let product = app.product("SHARED-1", 100, "EUR", 10).await;
    let (_, ann) = buyer(&app, "ann@example.com").await;
    let (_, bob) = buyer(&app, "bob@example.com").await;
    let items = json!([line(&product.id, 2)]);

    let anns = keyed(&app, &ann, "cart-1", &items).await;
    anns.expect(201);
    // Bob's request with Ann's key: his own order, not her replay.
    let bobs = keyed(&app, &bob, "cart-1", &items).await;
    bobs.expect(201);
    assert_eq!(bobs.header("idempotent-replayed"), None);
    assert_ne!(order_id(&anns), order_id(&bobs));
    // Nor is a different body with it a reuse for him.
    let res = keyed(&app, &bob, "cart-2", &json!([line(&product.id, 1)])).await;
    res.expect(201);
    let res = keyed(&app, &ann, "cart-2", &json!([line(&product.id, 3)])).await;
    res.expect(201);
    assert_eq!(app.db.count_orders().await.unwrap(), 4);
    assert_eq!(app.stock(&product.id).await, 10 - 2 - 2 - 1 - 3);

    // Each replays their own.
    let replay = keyed(&app, &bob, "cart-1", &items).await;
    assert_eq!(
        replay.header("idempotent-replayed").as_deref(),
        Some("true")
    );
    assert_eq!(replay.body, bobs.body);
    let replay = keyed(&app, &ann, "cart-1", &items).await;
    assert_eq!(replay.body, anns.body);
    // And each sees only their own order.
    let res = app
        .get_as(&format!("/api/v1/me/orders/{}", order_id(&anns)), &bob)
        .await;
    res.expect_problem(404, "not_found");
}

async fn a_failed_order_leaves_its_key_free(app: TestApp) {
    let product = app.product("SCARCE-1", 100, "EUR", 1).await;
    let (_, token) = buyer(&app, "ann@example.com").await;
    let admin = app.admin_key().await;
    let items = json!([line(&product.id, 3)]);

    // Not enough stock: 409, and the key is not remembered...
    keyed(&app, &token, "try-1", &items)
        .await
        .expect_problem(409, "insufficient_stock");
    assert_eq!(app.db.count_idempotency_keys().await.unwrap(), 0);
    // ...so after a restock the same key and body place the order.
    restock(&app, &admin, &product.id, json!({"stock_delta": 2}))
        .await
        .expect(200);
    let res = keyed(&app, &token, "try-1", &items).await;
    res.expect(201);
    assert_eq!(res.header("idempotent-replayed"), None);
    assert_eq!(app.stock(&product.id).await, 0);

    // An unknown product or mixed currencies: 422, nothing remembered.
    let usd = app.product("USD-1", 100, "USD", 5).await;
    let eur = app.product("EUR-1", 100, "EUR", 5).await;
    for items in [
        json!([line(&new_id(), 1)]),
        json!([line(&usd.id, 1), line(&eur.id, 1)]),
    ] {
        keyed(&app, &token, "try-2", &items)
            .await
            .expect_problem(422, "validation_failed");
    }
    assert_eq!(app.db.count_idempotency_keys().await.unwrap(), 1);
    assert_eq!(app.db.count_orders().await.unwrap(), 1);
    assert_eq!((app.stock(&usd.id).await, app.stock(&eur.id).await), (5, 5));
    // The key is free for a good order.
    keyed(&app, &token, "try-2", &json!([line(&usd.id, 1)]))
        .await
        .expect(201);
}

async fn an_abandoned_key_is_in_use_until_its_lease_runs_out(app: TestApp) {
    let product = app.product("LEASE-1", 100, "EUR", 10).await;
    let (customer_id, token) = buyer(&app, "ann@example.com").await;
    let items = json!([line(&product.id, 1)]);
    let pool = app.side_pool().await;

    // A request that claimed the key and whose server then died: its row
    // is `in_flight`. Made by a request whose order failed halfway is not
    // possible from outside, so the row is planted, fingerprint and all.
    let fingerprint = {
        let input: jeton::domain::order::OrderInput =
            serde_json::from_value(json!({ "items": items })).unwrap();
        jeton::domain::order::OrderRequest::try_from(input)
            .unwrap()
            .fingerprint()
    };
    let now = app.db.now_micros();
    sqlx::query(
        "INSERT INTO idempotency_keys (customer_id, idempotency_key, request_hash, status, lease_id, lease_expires_at, created_at) \
         VALUES ($1, 'crashed', $2, 'in_flight', 'lease-of-a-dead-server', $3, $4)",
    )
    .bind(customer_id.clone())
    .bind(fingerprint)
    .bind(now + 30_000_000)
    .bind(now)
    .execute(&pool)
    .await
    .unwrap();

    // While the lease runs: 409 for the same body, 422 for another.
    keyed(&app, &token, "crashed", &items)
        .await
        .expect_problem(409, "idempotency_key_in_use");
    keyed(&app, &token, "crashed", &json!([line(&product.id, 2)]))
        .await
        .expect_problem(422, "idempotency_key_reused");
    assert_eq!(app.db.count_orders().await.unwrap(), 0);

    // Once it has run out, the retry takes the key over and places the
    // order, exactly once.
    sqlx::query(
        "UPDATE idempotency_keys SET lease_expires_at = $1 WHERE idempotency_key = 'crashed'",
    )
    .bind(now - 1)
    .execute(&pool)
    .await
    .unwrap();
    let res = keyed(&app, &token, "crashed", &items).await;
    res.expect(201);
    assert_eq!(res.header("idempotent-replayed"), None);
    let replay = keyed(&app, &token, "crashed", &items).await;
    assert_eq!(
        replay.header("idempotent-replayed").as_deref(),
        Some("true")
    );
    assert_eq!(replay.body, res.body);
    assert_eq!(app.db.count_orders().await.unwrap(), 1);
    assert_eq!(app.stock(&product.id).await, 9);
    let row = sqlx::query(
        "SELECT status, order_id, lease_id FROM idempotency_keys WHERE idempotency_key = 'crashed'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>("status"), "done");
    assert_eq!(
        row.get::<Option<String>, _>("order_id"),
        Some(order_id(&res))
    );
    assert_eq!(row.get::<Option<String>, _>("lease_id"), None);
}

async fn bad_idempotency_keys_are_refused_and_write_nothing(app: TestApp) {
    let product = app.product("KEYS-1", 100, "EUR", 10).await;
    let (_, token) = buyer(&app, "ann@example.com").await;
    let items = json!([line(&product.id, 1)]);

    // Every byte the http crate lets through that is not printable ASCII:
    // the tab and bytes from 0x80 (other control characters and DEL cannot
    // be sent at all).
    let long = "k".repeat(256);
    let bad: Vec<&[u8]> = vec![
        b"",
        long.as_bytes(),
        b"tab\there",
        b"\t",
        "caf\u{e9}".as_bytes(),
        b"\x80\x81",
        b"\xff",
        "\u{1F600}".as_bytes(),
    ];
    for key in bad {
        let res = order_with_key(&app, &token, Some(key), &items).await;
        res.expect_problem(400, "invalid_idempotency_key");
        assert_eq!(app.db.count_orders().await.unwrap(), 0, "{key:?}");
        assert_eq!(app.db.count_idempotency_keys().await.unwrap(), 0, "{key:?}");
        assert_eq!(app.stock(&product.id).await, 10);
    }
    // Two keys in one request.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/orders")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("idempotency-key", "one")
        .header("idempotency-key", "two")
        .body(Body::from(json!({ "items": items }).to_string()))
        .unwrap();
    support::send_request(&app, request)
        .await
        .expect_problem(400, "invalid_idempotency_key");

    // A bad key is refused before the body is looked at.
    for body in ["{\"items\": [", "{\"items\": [], \"customer_id\": 1}"] {
        let res = app
            .post("/api/v1/orders")
            .bearer(&token)
            .header("idempotency-key", "")
            .raw("application/json", body)
            .send()
            .await;
        res.expect_problem(400, "invalid_idempotency_key");
    }

    // A good key with a bad body: the body's 422, and no key is kept.
    for bad_items in [
        json!([line(&product.id, 0)]),
        json!([line(&product.id, 1001)]),
        json!([line("' OR 1=1 --", 1)]),
        json!([line(&product.id, 1), line(&product.id, 1)]),
        json!([]),
        json!([{"product_id": product.id, "quantity": 1, "unit_price": 1}]),
    ] {
        keyed(&app, &token, "good-key", &bad_items)
            .await
            .expect_problem(422, "validation_failed");
    }
    let res = app
        .post("/api/v1/orders")
        .bearer(&token)
        .header("idempotency-key", "good-key")
        .raw("application/json", "{\"items\": [")
        .send()
        .await;
    res.expect_problem(400, "malformed_json");
    assert_eq!(app.db.count_orders().await.unwrap(), 0);
    assert_eq!(app.db.count_idempotency_keys().await.unwrap(), 0);
    assert_eq!(app.stock(&product.id).await, 10);

    // The bounds themselves are fine: 1 and 255 characters, every printable
    // character, spaces included.
    let longest = "x".repeat(255);
    let printable: String = (0x20u8..=0x7e).map(char::from).collect();
    for key in [
        "1",
        longest.as_str(),
        printable.as_str(),
        "\"quoted\"",
        "a b",
    ] {
        keyed(&app, &token, key, &items).await.expect(201);
        let replay = keyed(&app, &token, key, &items).await;
        assert_eq!(
            replay.header("idempotent-replayed").as_deref(),
            Some("true"),
            "{key}"
        );
    }
    assert_eq!(app.db.count_orders().await.unwrap(), 5);
}

async fn keys_older_than_a_day_are_pruned(app: TestApp) {
    let product = app.product("PRUNE-1", 100, "EUR", 10).await;
    let (_, token) = buyer(&app, "ann@example.com").await;
    let items = json!([line(&product.id, 1)]);
    keyed(&app, &token, "old", &items).await.expect(201);
    keyed(&app, &token, "new", &items).await.expect(201);
    let pool = app.side_pool().await;
    let day_and_a_bit_ago = app.db.now_micros() - 25 * 3600 * 1_000_000;
    sqlx::query("UPDATE idempotency_keys SET created_at = $1 WHERE idempotency_key = 'old'")
        .bind(day_and_a_bit_ago)
        .execute(&pool)
        .await
        .unwrap();

    let cutoff = app.now() - jeton::store::orders::KEY_RETENTION;
    assert_eq!(app.db.prune_idempotency_keys(cutoff).await.unwrap(), 1);
    assert_eq!(app.db.prune_idempotency_keys(cutoff).await.unwrap(), 0);
    assert_eq!(app.db.count_idempotency_keys().await.unwrap(), 1);
    // The kept key still replays; the forgotten one is a new order now.
    let res = keyed(&app, &token, "new", &items).await;
    assert_eq!(res.header("idempotent-replayed").as_deref(), Some("true"));
    let res = keyed(&app, &token, "old", &items).await;
    res.expect(201);
    assert_eq!(res.header("idempotent-replayed"), None);
    assert_eq!(app.db.count_orders().await.unwrap(), 3);

    // The command does the same, and refuses to forget keys younger than
    // the promised day.
    sqlx::query("UPDATE idempotency_keys SET created_at = $1 WHERE idempotency_key = 'old'")
        .bind(day_and_a_bit_ago)
        .execute(&pool)
        .await
        .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_jeton"))
            .args(args)
            .env("DATABASE_URL", &app.url)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let too_soon = run(&["token", "prune-idempotency-keys", "--older-than", "1h"]);
    assert!(!too_soon.status.success());
    assert_eq!(app.db.count_idempotency_keys().await.unwrap(), 2);
    let output = run(&["token", "prune-idempotency-keys"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "pruned 1 idempotency keys"
    );
    assert_eq!(app.db.count_idempotency_keys().await.unwrap(), 1);
}

// ---------------------------------------------------------------- the database goes away

/// PostgreSQL only: `pg_terminate_backend` on every connection of the
/// server, three times during a burst of orders.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_connections_mid_burst_leave_orders_whole_and_the_service_recovers() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let hot = app.product("KILL-HOT", 100, "EUR", 60).await;
    let cold = app.product("KILL-COLD", 200, "EUR", 10_000).await;
    let tokens = buyers(&app, 10).await;
    let pool = app.side_pool().await;

    // Request i: its customer, its key, its lines.
    let requests: Vec<(String, String, Value)> = (0..150)
        .map(|i| {
            let items = match i % 3 {
                0 => json!([line(&hot.id, 1)]),
                1 => json!([line(&cold.id, (i % 5 + 1) as i64), line(&hot.id, 1)]),
                _ => json!([line(&cold.id, 2)]),
            };
            (
                tokens[i % tokens.len()].clone(),
                format!("burst-{i}"),
                items,
            )
        })
        .collect();

    let app = Arc::new(app);
    let finished = Arc::new(AtomicUsize::new(0));
    let killer = {
        let finished = Arc::clone(&finished);
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut killed = 0;
            for threshold in [10, 50, 100] {
                while finished.load(Ordering::SeqCst) < threshold {
                    tokio::task::yield_now().await;
                }
                // The app's connections, and this pool's other one: pools reconnect.
                killed += sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .fetch_all(&pool)
                .await
                .unwrap()
                .len();
            }
            killed
        })
    };
    let mut tasks = Vec::new();
    for (token, key, items) in requests.clone() {
        let app = Arc::clone(&app);
        let finished = Arc::clone(&finished);
        tasks.push(tokio::spawn(async move {
            let res = keyed(&app, &token, &key, &items).await;
            finished.fetch_add(1, Ordering::SeqCst);
            res
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let killed = killer.await.unwrap();
    assert!(killed > 0, "the burst ran while connections were killed");

    let mut unavailable = 0;
    for res in &outcomes {
        match res.status.as_u16() {
            201 => {}
            409 => assert_eq!(res.code(), "insufficient_stock", "{}", res.text()),
            503 => {
                unavailable += 1;
                res.expect_problem(503, "service_unavailable");
                assert!(res.header("retry-after").is_some());
                let text = res.text().to_lowercase();
                for leak in [
                    "select",
                    "insert",
                    "update",
                    "terminating",
                    "sqlx",
                    "postgres",
                ] {
                    assert!(!text.contains(leak), "{text}");
                }
            }
            other => panic!("unexpected {other}: {}", res.text()),
        }
    }
    eprintln!(
        "NOTICE: {unavailable} of {} orders got 503 while connections were killed",
        outcomes.len()
    );

    // Every 503 retried with its key until it settles: the retry places the
    // order, replays one whose commit made it after all, or finds no stock.
    let mut settled: Vec<Res> = Vec::new();
    for ((token, key, items), res) in requests.iter().zip(outcomes) {
        if res.status != 503 {
            settled.push(res);
            continue;
        }
        let mut attempt = 0;
        let res = loop {
            let res = keyed(&app, token, key, items).await;
            let again = res.status == 503 || res.code() == "idempotency_key_in_use";
            if !again {
                break res;
            }
            attempt += 1;
            // A lost release leaves the key leased for at most a minute.
            assert!(attempt < 1500, "{key} never settled: {}", res.text());
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert!(
            res.status == 201 || res.code() == "insufficient_stock",
            "{}",
            res.text()
        );
        settled.push(res);
    }

    // The service recovered by itself: a new order goes through.
    let fresh = keyed(
        &app,
        &tokens[0],
        "after-the-storm",
        &json!([line(&cold.id, 1)]),
    )
    .await;
    fresh.expect(201);

    // Every order is whole, and exactly the ones the clients were told of.
    let mut told: HashMap<String, Value> = HashMap::new();
    for ((_, _, items), res) in requests.iter().zip(&settled) {
        if res.status == 201 {
            assert!(told.insert(order_id(res), items.clone()).is_none());
        }
    }
    told.insert(order_id(&fresh), json!([line(&cold.id, 1)]));
    let stored: HashSet<String> = sqlx::query_scalar("SELECT id FROM orders")
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(stored, told.keys().cloned().collect::<HashSet<_>>());
    for (id, items) in &told {
        let lines: Vec<(String, i64)> = sqlx::query(
            "SELECT product_id, quantity FROM order_items WHERE order_id = $1 ORDER BY line_no",
        )
        .bind(id.clone())
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get("product_id"), row.get("quantity")))
        .collect();
        let sent: Vec<(String, i64)> = items
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["product_id"].as_str().unwrap().to_owned(),
                    l["quantity"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(lines, sent, "order {id}");
    }
    // Stock agrees with the recorded orders.
    let ordered = ordered_quantities(&pool).await;
    assert_eq!(
        app.stock(&hot.id).await,
        60 - ordered.get(hot.id.as_str()).copied().unwrap_or(0)
    );
    assert_eq!(
        app.stock(&cold.id).await,
        10_000 - ordered[cold.id.as_str()]
    );
    // Every key left is a finished one pointing at its order.
    let keys = sqlx::query("SELECT status, order_id FROM idempotency_keys")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(keys.len(), told.len());
    for row in keys {
        assert_eq!(row.get::<String, _>("status"), "done");
        assert!(stored.contains(&row.get::<String, _>("order_id")));
    }
}

// ---------------------------------------------------------------- limits

on_both_databases!(a_customers_orders_are_limited_per_minute);

/// A customer who empties the shop in a burst: the default limit of orders
/// per minute stops them, and another customer can still buy.
async fn a_customers_orders_are_limited_per_minute(app: TestApp) {
    let limit = jeton::config::Config::default().customer_orders_per_minute;
    let product = app.product("BURST-1", 100, "EUR", 10_000).await;
    let (_, token) = app.customer("burst@example.com").await;
    for _ in 0..limit {
        order(
            &app,
            &token,
            json!([{"product_id": product.id, "quantity": 1}]),
        )
        .await
        .expect(201);
    }
    let res = order(
        &app,
        &token,
        json!([{"product_id": product.id, "quantity": 1}]),
    )
    .await;
    res.expect_problem(429, "rate_limited");
    assert!(res.header("retry-after").is_some());
    assert_eq!(res.header("ratelimit-limit"), Some(limit.to_string()));
    assert_eq!(app.stock(&product.id).await, 10_000 - i64::from(limit));
    let (_, other) = app.customer("other@example.com").await;
    order(
        &app,
        &other,
        json!([{"product_id": product.id, "quantity": 1}]),
    )
    .await
    .expect(201);
}

// ---------------------------------------------------------------- limits and cancellation

async fn orders_above_the_unit_ceiling_are_refused(app: TestApp) {
    let mug = app.product("MUG-1", 100, "EUR", 1000).await;
    let tea = app.product("TEA-1", 100, "EUR", 1000).await;
    let (_, token) = app.customer("ann@example.com").await;
    let res = order(
        &app,
        &token,
        json!([{"product_id": mug.id, "quantity": 10}, {"product_id": tea.id, "quantity": 11}]),
    )
    .await;
    res.expect_problem(422, "validation_failed");
    assert_eq!(error_fields(&res.json()), ["items[1].quantity"]);
    assert!(res.text().contains("at most 10"), "{}", res.text());
    assert_eq!(app.stock(&mug.id).await, 1000);
    order(
        &app,
        &token,
        json!([{"product_id": mug.id, "quantity": 10}]),
    )
    .await
    .expect(201);
    assert_eq!(app.stock(&mug.id).await, 990);
}

async fn order_totals_stay_exact_in_javascript(app: TestApp) {
    use jeton::domain::money::{MAX_AMOUNT, MAX_SAFE_AMOUNT};
    assert_eq!(MAX_SAFE_AMOUNT, (1 << 53) - 1);
    let dear = app.product("DEAR-1", MAX_AMOUNT, "EUR", 5000).await;
    let also = app.product("DEAR-2", MAX_AMOUNT, "EUR", 5000).await;
    let (_, token) = app.customer("ann@example.com").await;
    // 1000 units at the highest price: exact in JavaScript.
    let res = order(
        &app,
        &token,
        json!([{"product_id": dear.id, "quantity": 1000}]),
    )
    .await;
    res.expect(201);
    assert_eq!(res.json()["total"]["amount"], json!(MAX_AMOUNT * 1000));
    // Two such lines would pass 2^53 − 1: refused, nothing written.
    let res = order(
        &app,
        &token,
        json!([{"product_id": dear.id, "quantity": 1000}, {"product_id": also.id, "quantity": 1000}]),
    )
    .await;
    res.expect_problem(422, "validation_failed");
    assert_eq!(error_fields(&res.json()), ["items"]);
    assert_eq!(app.stock(&dear.id).await, 4000);
    assert_eq!(app.stock(&also.id).await, 5000);
    assert_eq!(app.db.count_orders().await.unwrap(), 1);
}

/// What the customer reads, through the caches: each product's stock, how
/// many products are in stock, and `order` (by its id, and first in their
/// list).
async fn assert_reads(
    app: &TestApp,
    token: &str,
    stocks: &[(&Product, i64)],
    in_stock: usize,
    order: &Value,
) {
    for (product, stock) in stocks {
        let res = app
            .get_as(&format!("/api/v1/products/{}", product.id), token)
            .await;
        res.expect(200);
        assert_eq!(res.json()["stock"], json!(stock), "{}", product.sku);
    }
    let listed = app.get_as("/api/v1/products?in_stock=true", token).await;
    assert_eq!(listed.json()["data"].as_array().unwrap().len(), in_stock);
    let mine = app
        .get_as(&format!("/api/v1/me/orders/{}", s(&order["id"])), token)
        .await;
    assert_eq!(&mine.json(), order);
    let listed = app.get_as("/api/v1/me/orders", token).await;
    assert_eq!(&listed.json()["data"][0], order);
}

async fn admin_cancels_an_order_and_its_stock_returns(app: TestApp) {
    let mug = app.product("MUG-1", 1200, "EUR", 10).await;
    let tea = app.product("TEA-1", 350, "EUR", 5).await;
    let (customer_id, token) = app.customer("ann@example.com").await;
    let admin = app.admin_key().await;
    let res = order(
        &app,
        &token,
        json!([{"product_id": mug.id, "quantity": 3}, {"product_id": tea.id, "quantity": 5}]),
    )
    .await;
    res.expect(201);
    let placed = res.json();
    let id = placed["id"].as_str().unwrap().to_owned();
    // The catalogue and the order have been read (and cached) as placed.
    assert_reads(&app, &token, &[(&mug, 7), (&tea, 0)], 1, &placed).await;

    let cancel = || {
        app.post(&format!("/api/v1/admin/orders/{id}/cancel"))
            .bearer(&admin)
            .send()
    };
    let res = cancel().await;
    res.expect(200);
    let cancelled = res.json();
    assert_eq!(cancelled["status"], "cancelled");
    let mut expected = placed.clone();
    expected["status"] = json!("cancelled");
    assert_eq!(cancelled, expected);
    // The stock is back, and every read sees it at once.
    assert_eq!(app.stock(&mug.id).await, 10);
    assert_eq!(app.stock(&tea.id).await, 5);
    assert_reads(&app, &token, &[(&mug, 10), (&tea, 5)], 2, &cancelled).await;

    // Again: the same order, nothing changes.
    let res = cancel().await;
    res.expect(200);
    assert_eq!(res.json(), cancelled);
    assert_eq!(app.stock(&mug.id).await, 10);
    assert_eq!(app.stock(&tea.id).await, 5);

    // Audited once, against the customer.
    let events = app
        .get(&format!(
            "/api/v1/admin/audit?customer_id={customer_id}&limit=100"
        ))
        .bearer(&admin)
        .send()
        .await
        .json();
    let cancellations: Vec<&Value> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "order.cancelled")
        .collect();
    assert_eq!(cancellations.len(), 1, "{events}");
    assert_eq!(cancellations[0]["subject_id"], json!(id));
    assert_eq!(cancellations[0]["detail"], "8 units back in stock");

    // Unknown and malformed ids; callers other than an admin key.
    for unknown in [support::UNKNOWN_ID, "nope"] {
        app.post(&format!("/api/v1/admin/orders/{unknown}/cancel"))
            .bearer(&admin)
            .send()
            .await
            .expect_problem(404, "not_found");
    }
    app.post(&format!("/api/v1/admin/orders/{id}/cancel"))
        .bearer(&token)
        .send()
        .await
        .expect_problem(403, "insufficient_scope");
}
