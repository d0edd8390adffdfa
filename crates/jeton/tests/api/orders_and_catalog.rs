//! The catalogue (`GET /products`, `GET /products/{id}`) and orders
//! (`POST /orders`, `GET /me/orders`, `GET /me/orders/{id}`), spec §6, on
//! both databases.

use crate::{on_both_databases, support};

use std::{collections::HashSet, sync::Arc};

use jeton::{
    domain::{client::ClientKind, ids::new_id, product::NewProduct},
    store::products::Product,
};
use serde_json::{Value, json};
use support::TestApp;
use time::{OffsetDateTime, UtcOffset, format_description::well_known::Rfc3339};

// ---------------------------------------------------------------- helpers

/// A product with a chosen name (the support fixture names it after the SKU).
async fn named_product(
    app: &TestApp,
    sku: &str,
    name: &str,
    price: i64,
    currency: &str,
    stock: i64,
) -> Product {
    app.db
        .create_product(&NewProduct {
            sku: sku.to_owned(),
            name: name.to_owned(),
            description: format!("About {name}"),
            price_amount: price,
            currency: currency.to_owned(),
            stock,
        })
        .await
        .unwrap()
}

/// The three kinds of credential that may read the catalogue: a
/// publishable key, a secret key with only `products:read`, a user token.
async fn catalogue_readers(app: &TestApp) -> Vec<(&'static str, String)> {
    let publishable = app.publishable_key().await;
    let (_, secret) = app
        .client(ClientKind::Secret, &["products:read"], &[])
        .await;
    let (_, user) = app.customer("reader@example.com").await;
    vec![
        ("publishable key", publishable),
        ("secret key", secret),
        ("user token", user),
    ]
}

/// Percent-encodes a query value.
fn enc(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Follows `next_cursor` from the first page of `path?query` with `limit`,
/// checking that every page but the last is full and the last one ends with
/// `next_cursor: null`. Returns every item in the order seen.
async fn all_pages(
    app: &TestApp,
    token: &str,
    path: &str,
    query: &str,
    limit: usize,
) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut url = format!("{path}?limit={limit}");
        if !query.is_empty() {
            url.push('&');
            url.push_str(query);
        }
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={}", enc(cursor)));
        }
        let res = app.get(&url).bearer(token).send().await;
        res.expect(200);
        let page = res.json();
        let data = page["data"].as_array().unwrap().clone();
        assert!(data.len() <= limit, "{url}: {} items", data.len());
        items.extend(data.iter().cloned());
        match &page["next_cursor"] {
            Value::Null => return items,
            Value::String(next) => {
                assert_eq!(data.len(), limit, "{url}: a page with a next page is full");
                cursor = Some(next.clone());
            }
            other => panic!("next_cursor must be a string or null: {other}"),
        }
    }
    panic!("{path}?{query}: pagination does not end");
}

fn assert_rfc3339_utc(value: &Value) {
    let text = value.as_str().expect("a timestamp string");
    let parsed = OffsetDateTime::parse(text, &Rfc3339)
        .unwrap_or_else(|e| panic!("{text} is not RFC 3339: {e}"));
    assert_eq!(parsed.offset(), UtcOffset::UTC, "{text} is not UTC");
    assert!(text.ends_with('Z'), "{text} is not UTC");
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

fn error_fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("a validation error lists its fields: {body}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

async fn order(app: &TestApp, token: &str, items: Value) -> support::Res {
    app.post("/api/v1/orders")
        .bearer(token)
        .json(json!({ "items": items }))
        .send()
        .await
}

// ---------------------------------------------------------------- catalogue

on_both_databases!(
    catalogue_pages_visit_every_product_once_in_creation_order,
    catalogue_rejects_bad_page_requests,
    catalogue_search_matches_name_or_sku_case_insensitively,
    catalogue_search_treats_like_wildcards_literally,
    catalogue_filters_by_stock_and_combines_with_search_and_paging,
    product_by_id_has_the_product_shape,
    product_by_unknown_or_malformed_id_is_not_found,
);

async fn catalogue_pages_visit_every_product_once_in_creation_order(app: TestApp) {
    let mut created = Vec::new();
    for i in 0..45 {
        created.push(
            app.product(&format!("SKU-{i:03}"), 100 + i, "EUR", i % 3)
                .await
                .id,
        );
    }
    for (who, token) in catalogue_readers(&app).await {
        // Default limit is 20.
        let res = app.get("/api/v1/products").bearer(&token).send().await;
        res.expect(200);
        let first = res.json();
        assert_eq!(keys(&first), ["data", "next_cursor"], "{who}");
        assert_eq!(first["data"].as_array().unwrap().len(), 20, "{who}");
        assert!(first["next_cursor"].is_string(), "{who}: {first}");
        assert_eq!(
            ids(first["data"].as_array().unwrap()),
            created[..20],
            "{who}"
        );

        // limit=20: 20, 20, 5, in creation order, each exactly once.
        let seen = all_pages(&app, &token, "/api/v1/products", "", 20).await;
        assert_eq!(seen.len(), 45, "{who}");
        assert_eq!(ids(&seen), created, "{who}");

        // Page sizes that divide the total still end with a null cursor
        // on the last page, not with a cursor to an empty page.
        assert_eq!(
            ids(&all_pages(&app, &token, "/api/v1/products", "", 15).await),
            created
        );
        assert_eq!(
            ids(&all_pages(&app, &token, "/api/v1/products", "", 1).await),
            created
        );
        let res = app
            .get("/api/v1/products?limit=45")
            .bearer(&token)
            .send()
            .await;
        res.expect(200);
        assert_eq!(res.json()["next_cursor"], Value::Null, "{who}");
        let res = app
            .get("/api/v1/products?limit=100")
            .bearer(&token)
            .send()
            .await;
        res.expect(200);
        let all = res.json();
        assert_eq!(ids(all["data"].as_array().unwrap()), created, "{who}");
        assert_eq!(all["next_cursor"], Value::Null, "{who}");
    }
}

async fn catalogue_rejects_bad_page_requests(app: TestApp) {
    let product = app.product("ONLY-1", 100, "EUR", 1).await;
    let (_, pk) = app.publishable_client().await;
    let cursor_of_raw_id = product.id.clone();
    let sql_cursor = enc(&base64_url("' OR 1=1 --"));
    let cases: Vec<(String, &str)> = vec![
        ("limit=0".into(), "limit"),
        ("limit=101".into(), "limit"),
        ("limit=-1".into(), "limit"),
        ("limit=abc".into(), "limit"),
        ("limit=1.5".into(), "limit"),
        ("limit=".into(), "limit"),
        ("limit=99999999999999999999".into(), "limit"),
        ("limit=1&limit=2".into(), ""),
        ("cursor=garbage!".into(), "cursor"),
        ("cursor=".into(), "cursor"),
        (format!("cursor={cursor_of_raw_id}"), "cursor"),
        (format!("cursor={sql_cursor}"), "cursor"),
        ("in_stock=yes".into(), "in_stock"),
        (format!("q={}", "x".repeat(101)), "q"),
        ("page=2".into(), ""),
        ("offset=10".into(), ""),
        ("sort=name".into(), ""),
    ];
    for (query, field) in &cases {
        let res = app
            .get(&format!("/api/v1/products?{query}"))
            .bearer(&pk)
            .send()
            .await;
        res.expect_problem(422, "validation_failed");
        let fields = error_fields(&res.json());
        assert!(!fields.is_empty(), "{query}");
        if !field.is_empty() {
            assert!(
                fields.iter().any(|f| f == field),
                "{query}: errors name {fields:?}"
            );
        }
    }
    // The boundaries are accepted.
    for query in [
        "limit=1",
        "limit=100",
        "q=",
        "in_stock=true",
        "in_stock=false",
    ] {
        app.get(&format!("/api/v1/products?{query}"))
            .bearer(&pk)
            .send()
            .await
            .expect(200);
    }
}

/// base64url without padding, as the server encodes cursors (only used to
/// forge cursors that decode to something that is not an id).
fn base64_url(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

async fn search(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let res = app
        .get(&format!("/api/v1/products?limit=100&{query}"))
        .bearer(token)
        .send()
        .await;
    res.expect(200);
    let page = res.json();
    assert_eq!(page["next_cursor"], Value::Null, "{query}");
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].as_str().unwrap().to_owned())
        .collect()
}

async fn catalogue_search_matches_name_or_sku_case_insensitively(app: TestApp) {
    named_product(&app, "MUG-BLUE", "Blue Mug", 1200, "EUR", 3).await;
    named_product(&app, "MUG-RED", "Red mug", 1100, "EUR", 0).await;
    named_product(&app, "TEA-POT", "Teapot", 3000, "EUR", 2).await;
    named_product(&app, "CUP-9", "Espresso CUP", 500, "EUR", 9).await;
    for (who, token) in catalogue_readers(&app).await {
        assert_eq!(
            search(&app, &token, "q=mug").await,
            ["MUG-BLUE", "MUG-RED"],
            "{who}"
        );
        assert_eq!(
            search(&app, &token, "q=MUG").await,
            ["MUG-BLUE", "MUG-RED"],
            "{who}"
        );
        assert_eq!(search(&app, &token, "q=bLuE").await, ["MUG-BLUE"], "{who}");
        // Only the SKU contains these.
        assert_eq!(search(&app, &token, "q=mUg-r").await, ["MUG-RED"], "{who}");
        assert_eq!(
            search(&app, &token, "q=tea-pot").await,
            ["TEA-POT"],
            "{who}"
        );
        assert_eq!(search(&app, &token, "q=cup").await, ["CUP-9"], "{who}");
        // A substring, not a prefix.
        assert_eq!(search(&app, &token, "q=apo").await, ["TEA-POT"], "{who}");
        assert_eq!(
            search(&app, &token, &format!("q={}", enc("d m"))).await,
            ["MUG-RED"],
            "{who}"
        );
        // No match, and SQL is just text.
        assert!(search(&app, &token, "q=kettle").await.is_empty(), "{who}");
        assert!(
            search(&app, &token, &format!("q={}", enc("' OR 1=1 --")))
                .await
                .is_empty(),
            "{who}"
        );
        assert!(
            search(&app, &token, &format!("q={}", enc("mug' OR '1'='1")))
                .await
                .is_empty(),
            "{who}"
        );
        // An empty q is no filter.
        assert_eq!(search(&app, &token, "q=").await.len(), 4, "{who}");
    }
}

async fn catalogue_search_treats_like_wildcards_literally(app: TestApp) {
    named_product(&app, "VOUCHER-50", "50% off voucher", 0, "EUR", 5).await;
    named_product(&app, "SHIRT-1", "Snake_case shirt", 2500, "EUR", 5).await;
    named_product(&app, "PLAIN_2", "Plain shirt", 2000, "EUR", 5).await;
    named_product(&app, "PATH-3", r"C:\Temp poster", 900, "EUR", 5).await;
    named_product(&app, "OTHER-4", "500 gram bag", 700, "EUR", 5).await;
    let pk = app.publishable_key().await;
    let q = |text: &str| format!("q={}", enc(text));
    assert_eq!(search(&app, &pk, &q("50%")).await, ["VOUCHER-50"]);
    assert_eq!(search(&app, &pk, &q("0% OFF")).await, ["VOUCHER-50"]);
    // `%` alone matches only a literal percent sign, not everything.
    assert_eq!(search(&app, &pk, &q("%")).await, ["VOUCHER-50"]);
    assert_eq!(search(&app, &pk, &q("%%")).await, Vec::<String>::new());
    // `_` is not "any one character".
    assert_eq!(search(&app, &pk, &q("_")).await, ["SHIRT-1", "PLAIN_2"]);
    assert_eq!(search(&app, &pk, &q("50_")).await, Vec::<String>::new());
    assert_eq!(search(&app, &pk, &q("e_c")).await, ["SHIRT-1"]);
    // The escape character itself is literal too.
    assert_eq!(search(&app, &pk, &q(r"\")).await, ["PATH-3"]);
    assert_eq!(search(&app, &pk, &q(r"c:\t")).await, ["PATH-3"]);
    assert_eq!(search(&app, &pk, &q(r"\%")).await, Vec::<String>::new());
    assert_eq!(search(&app, &pk, &q("500")).await, ["OTHER-4"]);
}

async fn catalogue_filters_by_stock_and_combines_with_search_and_paging(app: TestApp) {
    let mut in_stock = Vec::new();
    let mut sold_out = Vec::new();
    let mut lamps_in_stock = Vec::new();
    for i in 0..30 {
        let stock = if i % 3 == 0 { 0 } else { i };
        let kind = if i % 2 == 0 { "Lamp" } else { "Chair" };
        let product = named_product(
            &app,
            &format!("ITEM-{i:02}"),
            &format!("{kind} no. {i}"),
            1000,
            "EUR",
            stock,
        )
        .await;
        if stock > 0 {
            in_stock.push(product.id.clone());
            if kind == "Lamp" {
                lamps_in_stock.push(product.id.clone());
            }
        } else {
            sold_out.push(product.id.clone());
        }
    }
    assert_eq!((in_stock.len(), sold_out.len()), (20, 10));
    for (who, token) in catalogue_readers(&app).await {
        let seen = all_pages(&app, &token, "/api/v1/products", "in_stock=true", 7).await;
        assert!(
            seen.iter().all(|p| p["stock"].as_i64().unwrap() > 0),
            "{who}"
        );
        assert_eq!(ids(&seen), in_stock, "{who}");

        let seen = all_pages(&app, &token, "/api/v1/products", "in_stock=false", 3).await;
        assert!(seen.iter().all(|p| p["stock"] == 0), "{who}");
        assert_eq!(ids(&seen), sold_out, "{who}");

        let seen = all_pages(&app, &token, "/api/v1/products", "q=LAMP&in_stock=true", 4).await;
        assert_eq!(ids(&seen), lamps_in_stock, "{who}");
        assert_eq!(lamps_in_stock.len(), 10);

        let seen = all_pages(&app, &token, "/api/v1/products", "q=lamp", 6).await;
        assert_eq!(seen.len(), 15, "{who}");
        assert!(
            seen.iter()
                .all(|p| p["name"].as_str().unwrap().starts_with("Lamp")),
            "{who}"
        );
    }
}

async fn product_by_id_has_the_product_shape(app: TestApp) {
    let product = named_product(&app, "MUG-1", "Mug", 1299, "EUR", 7).await;
    for (who, token) in catalogue_readers(&app).await {
        let res = app
            .get(&format!("/api/v1/products/{}", product.id))
            .bearer(&token)
            .send()
            .await;
        res.expect(200);
        assert!(
            res.header("content-type")
                .unwrap()
                .starts_with("application/json"),
            "{who}"
        );
        let body = res.json();
        assert_eq!(
            keys(&body),
            [
                "created_at",
                "description",
                "id",
                "name",
                "price",
                "sku",
                "stock"
            ],
            "{who}"
        );
        assert_eq!(body["id"], product.id.as_str());
        assert_eq!(body["sku"], "MUG-1");
        assert_eq!(body["name"], "Mug");
        assert_eq!(body["description"], "About Mug");
        assert_eq!(body["price"], json!({"amount": 1299, "currency": "EUR"}));
        assert!(body["price"]["amount"].is_i64(), "amount is an integer");
        assert_eq!(body["stock"], 7);
        assert_rfc3339_utc(&body["created_at"]);
        // The same shape as in the list.
        let res = app.get("/api/v1/products").bearer(&token).send().await;
        res.expect(200);
        assert_eq!(res.json()["data"][0], body, "{who}");
    }
}

async fn product_by_unknown_or_malformed_id_is_not_found(app: TestApp) {
    let product = app.product("REAL-1", 100, "EUR", 1).await;
    let unknown = new_id();
    let malformed = [
        unknown.clone(),
        "00000000-0000-0000-0000-000000000000".to_owned(),
        "1".to_owned(),
        "0".to_owned(),
        "-1".to_owned(),
        "%27%20OR%201%3D1%20--".to_owned(),
        "%27%20OR%20%271%27%3D%271".to_owned(),
        "1%20OR%201%3D1".to_owned(),
        "x%27%3B%20DROP%20TABLE%20products%3B%20--".to_owned(),
        product.id.replace('-', ""),
        format!("{}x", product.id),
        format!("%7B{}%7D", product.id),
        format!("urn:uuid:{}", product.id),
        product.id[..35].to_owned(),
        "%00".to_owned(),
    ];
    for (who, token) in catalogue_readers(&app).await {
        for id in &malformed {
            let res = app
                .get(&format!("/api/v1/products/{id}"))
                .bearer(&token)
                .send()
                .await;
            assert_eq!(res.status.as_u16(), 404, "{who}, {id}: {}", res.text());
            res.expect_problem(404, "not_found");
        }
    }
    // The products are still there and unchanged.
    assert_eq!(app.stock(&product.id).await, 1);
}

// ---------------------------------------------------------------- placing orders

on_both_databases!(
    multi_line_order_totals_keeps_line_order_and_decrements_stock,
    order_boundaries_are_accepted,
    insufficient_stock_changes_nothing,
    unknown_product_or_mixed_currencies_change_nothing,
    bad_order_bodies_are_refused_and_write_nothing,
    concurrent_orders_never_oversell,
);

async fn multi_line_order_totals_keeps_line_order_and_decrements_stock(app: TestApp) {
    let mug = named_product(&app, "MUG-1", "Mug", 1200, "EUR", 5).await;
    let tea = named_product(&app, "TEA-1", "Tea", 350, "EUR", 10).await;
    let cup = named_product(&app, "CUP-1", "Cup", 99, "EUR", 3).await;
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
        .get(&format!("/api/v1/me/orders/{order_id}"))
        .bearer(&token)
        .send()
        .await;
    res.expect(200);
    assert_eq!(res.json(), placed);
    let res = app.get("/api/v1/me/orders").bearer(&token).send().await;
    res.expect(200);
    assert_eq!(res.json(), json!({"data": [placed], "next_cursor": null}));

    // The catalogue shows the new stock.
    let res = app
        .get(&format!("/api/v1/products/{}", mug.id))
        .bearer(&token)
        .send()
        .await;
    res.expect(200);
    assert_eq!(res.json()["stock"], 3);

    // A later price change does not rewrite the order.
    let admin = app.admin_key().await;
    app.patch(&format!("/api/v1/admin/products/{}", mug.id))
        .bearer(&admin)
        .json(json!({"price": {"amount": 9999, "currency": "EUR"}}))
        .send()
        .await
        .expect(200);
    let res = app
        .get(&format!("/api/v1/me/orders/{order_id}"))
        .bearer(&token)
        .send()
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
    let res = app.get("/api/v1/me/orders").bearer(&token).send().await;
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
                .post("/api/v1/orders")
                .bearer(&token)
                .json(json!({"items": [{"product_id": product_id, "quantity": 1}]}))
                .send()
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
        for placed in all_pages(&app, token, "/api/v1/me/orders", "", 100).await {
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

    let res = app.get("/api/v1/me/orders").bearer(&token).send().await;
    res.expect(200);
    let page = res.json();
    assert_eq!(page["next_cursor"], Value::Null);
    assert_eq!(page["data"], Value::Array(placed.clone()));

    for limit in [1, 3, 7, 100] {
        let seen = all_pages(&app, &token, "/api/v1/me/orders", "", limit).await;
        assert_eq!(ids(&seen), newest_first, "limit {limit}");
        assert_eq!(seen, placed, "limit {limit}");
    }

    // Each listed order reads back the same by id.
    for listed in &placed {
        let res = app
            .get(&format!(
                "/api/v1/me/orders/{}",
                listed["id"].as_str().unwrap()
            ))
            .bearer(&token)
            .send()
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
        let res = app.get(&url).bearer(&token).send().await;
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
    let all = all_pages(&app, &token, "/api/v1/me/orders", "", 4).await;
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

    let res = app.get("/api/v1/me/orders").bearer(&bob).send().await;
    res.expect(200);
    assert_eq!(res.json(), json!({"data": [], "next_cursor": null}));
    for placed_order in &placed {
        let id = placed_order["id"].as_str().unwrap();
        let res = app
            .get(&format!("/api/v1/me/orders/{id}"))
            .bearer(&bob)
            .send()
            .await;
        res.expect_problem(404, "not_found");
        // Exactly the answer for an order that does not exist.
        let missing = app
            .get(&format!("/api/v1/me/orders/{}", new_id()))
            .bearer(&bob)
            .send()
            .await;
        assert_eq!(res.json()["detail"], missing.json()["detail"]);
    }
    // Ann's cursor does not open Ann's orders to Bob.
    let res = app
        .get("/api/v1/me/orders?limit=1")
        .bearer(&ann)
        .send()
        .await;
    res.expect(200);
    let cursor = res.json()["next_cursor"].as_str().unwrap().to_owned();
    let res = app
        .get(&format!("/api/v1/me/orders?cursor={}", enc(&cursor)))
        .bearer(&bob)
        .send()
        .await;
    res.expect(200);
    assert_eq!(res.json(), json!({"data": [], "next_cursor": null}));

    // Bob's own order is his alone.
    let bobs = place_orders(&app, &bob, &product.id, 1).await;
    let res = app.get("/api/v1/me/orders").bearer(&bob).send().await;
    res.expect(200);
    assert_eq!(res.json(), json!({"data": bobs, "next_cursor": null}));
    let res = app.get("/api/v1/me/orders").bearer(&ann).send().await;
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
        app.get(&format!("/api/v1/me/orders?{query}"))
            .bearer(&token)
            .send()
            .await
            .expect_problem(422, "validation_failed");
    }
    app.get(&format!("/api/v1/me/orders?cursor={order_id}"))
        .bearer(&token)
        .send()
        .await
        .expect_problem(422, "validation_failed");

    for id in [
        new_id(),
        "1".to_owned(),
        "%27%20OR%201%3D1%20--".to_owned(),
        "%27%20OR%20customer_id%20IS%20NOT%20NULL%20--".to_owned(),
        order_id.replace('-', ""),
        format!("{order_id}x"),
        product.id.clone(),
    ] {
        app.get(&format!("/api/v1/me/orders/{id}"))
            .bearer(&token)
            .send()
            .await
            .expect_problem(404, "not_found");
    }
    // The real one is still there.
    app.get(&format!("/api/v1/me/orders/{order_id}"))
        .bearer(&token)
        .send()
        .await
        .expect(200);
}
