//! The catalogue: `GET /products` (pages, search, filters), `GET
//! /products/{id}`, and the admin product endpoints.

use jeton::domain::{client::ClientKind, ids::new_id};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::{
    on_both_databases,
    support::{
        TestApp, UNKNOWN_ID, assert_about, assert_fields, assert_rfc3339_utc, enc, error_fields,
        ids, keys, s, timestamp,
    },
};

// ---------------------------------------------------------------- helpers

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
        let res = app.get_as("/api/v1/products", &token).await;
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
        let seen = app.all_pages(&token, "/api/v1/products", "", 20).await;
        assert_eq!(seen.len(), 45, "{who}");
        assert_eq!(ids(&seen), created, "{who}");

        // Page sizes that divide the total still end with a null cursor
        // on the last page, not with a cursor to an empty page.
        assert_eq!(
            ids(&app.all_pages(&token, "/api/v1/products", "", 15).await),
            created
        );
        assert_eq!(
            ids(&app.all_pages(&token, "/api/v1/products", "", 1).await),
            created
        );
        let res = app.get_as("/api/v1/products?limit=45", &token).await;
        res.expect(200);
        assert_eq!(res.json()["next_cursor"], Value::Null, "{who}");
        let res = app.get_as("/api/v1/products?limit=100", &token).await;
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
        let res = app.get_as(&format!("/api/v1/products?{query}"), &pk).await;
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
        app.get_as(&format!("/api/v1/products?{query}"), &pk)
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
        .get_as(&format!("/api/v1/products?limit=100&{query}"), token)
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
    app.named_product("MUG-BLUE", "Blue Mug", 1200, "EUR", 3)
        .await;
    app.named_product("MUG-RED", "Red mug", 1100, "EUR", 0)
        .await;
    app.named_product("TEA-POT", "Teapot", 3000, "EUR", 2).await;
    app.named_product("CUP-9", "Espresso CUP", 500, "EUR", 9)
        .await;
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
    app.named_product("VOUCHER-50", "50% off voucher", 0, "EUR", 5)
        .await;
    app.named_product("SHIRT-1", "Snake_case shirt", 2500, "EUR", 5)
        .await;
    app.named_product("PLAIN_2", "Plain shirt", 2000, "EUR", 5)
        .await;
    app.named_product("PATH-3", r"C:\Temp poster", 900, "EUR", 5)
        .await;
    app.named_product("OTHER-4", "500 gram bag", 700, "EUR", 5)
        .await;
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
        let product = app
            .named_product(
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
        let seen = app
            .all_pages(&token, "/api/v1/products", "in_stock=true", 7)
            .await;
        assert!(
            seen.iter().all(|p| p["stock"].as_i64().unwrap() > 0),
            "{who}"
        );
        assert_eq!(ids(&seen), in_stock, "{who}");

        let seen = app
            .all_pages(&token, "/api/v1/products", "in_stock=false", 3)
            .await;
        assert!(seen.iter().all(|p| p["stock"] == 0), "{who}");
        assert_eq!(ids(&seen), sold_out, "{who}");

        let seen = app
            .all_pages(&token, "/api/v1/products", "q=LAMP&in_stock=true", 4)
            .await;
        assert_eq!(ids(&seen), lamps_in_stock, "{who}");
        assert_eq!(lamps_in_stock.len(), 10);

        let seen = app.all_pages(&token, "/api/v1/products", "q=lamp", 6).await;
        assert_eq!(seen.len(), 15, "{who}");
        assert!(
            seen.iter()
                .all(|p| p["name"].as_str().unwrap().starts_with("Lamp")),
            "{who}"
        );
    }
}

async fn product_by_id_has_the_product_shape(app: TestApp) {
    let product = app.named_product("MUG-1", "Mug", 1299, "EUR", 7).await;
    for (who, token) in catalogue_readers(&app).await {
        let res = app
            .get_as(&format!("/api/v1/products/{}", product.id), &token)
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
        let res = app.get_as("/api/v1/products", &token).await;
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
            let res = app.get_as(&format!("/api/v1/products/{id}"), &token).await;
            assert_eq!(res.status.as_u16(), 404, "{who}, {id}: {}", res.text());
            res.expect_problem(404, "not_found");
        }
    }
    // The products are still there and unchanged.
    assert_eq!(app.stock(&product.id).await, 1);
}

// ---------------------------------------------------------------- admin: products

on_both_databases!(
    admin_product_create_and_its_errors,
    prices_stay_exact_in_javascript,
);

async fn prices_stay_exact_in_javascript(app: TestApp) {
    use jeton::domain::money::MAX_AMOUNT;
    assert_eq!(MAX_AMOUNT, 9_007_199_254_740);
    let admin = app.admin_key().await;
    let product = |sku: &str, amount: i64| json!({"sku": sku, "name": "Gold", "price": {"amount": amount, "currency": "EUR"}, "stock": 1});
    app.create_product(&admin, product("GOLD-1", MAX_AMOUNT + 1))
        .await
        .expect_invalid("price.amount");
    app.create_product(&admin, product("GOLD-1", 9_999_999_999_999))
        .await
        .expect_invalid("price.amount");
    let res = app
        .create_product(&admin, product("GOLD-1", MAX_AMOUNT))
        .await;
    res.expect(201);
    let id = s(&res.json()["id"]);
    app.patch_product(
        &admin,
        &id,
        json!({"price": {"amount": MAX_AMOUNT + 1, "currency": "EUR"}}),
    )
    .await
    .expect_invalid("price.amount");
    assert_eq!(app.row_counts(&["products"]).await, [("products", 1)]);
}

async fn admin_product_create_and_its_errors(app: TestApp) {
    let admin = app.admin_key().await;
    let good = json!({
        "sku": "MUG-1", "name": "Mug", "description": "A mug",
        "price": {"amount": 1200, "currency": "EUR"}, "stock": 5
    });
    let res = app.create_product(&admin, good.clone()).await;
    res.expect(201);
    let mug = res.json();
    assert_fields(
        &mug,
        &[
            "id",
            "sku",
            "name",
            "description",
            "price",
            "stock",
            "created_at",
        ],
    );
    assert_eq!(mug["sku"], "MUG-1");
    assert_eq!(mug["name"], "Mug");
    assert_eq!(mug["description"], "A mug");
    assert_eq!(mug["price"], json!({"amount": 1200, "currency": "EUR"}));
    assert_eq!(mug["stock"], 5);
    assert_about(timestamp(&mug["created_at"]), OffsetDateTime::now_utc());
    // It is in the catalogue.
    let reader = app.publishable_key().await;
    let res = app
        .get_as(&format!("/api/v1/products/{}", s(&mug["id"])), &reader)
        .await;
    res.expect(200);
    assert_eq!(res.json(), mug);

    // The same SKU again.
    let mut again = good.clone();
    again["name"] = json!("Another mug");
    app.create_product(&admin, again)
        .await
        .expect_problem(409, "sku_taken");

    let with = |path: &[&str], value: Value| {
        let mut body = good.clone();
        body["sku"] = json!("MUG-2");
        let mut target = &mut body;
        for key in &path[..path.len() - 1] {
            target = &mut target[*key];
        }
        target[path[path.len() - 1]] = value;
        body
    };
    let cases = [
        (with(&["stock"], json!(-1)), "stock"),
        (with(&["price", "amount"], json!(-1)), "price.amount"),
        (with(&["price", "currency"], json!("eur")), "price.currency"),
        (with(&["price", "currency"], json!("XYZ")), "price.currency"),
        (with(&["sku"], json!("")), "sku"),
        (with(&["name"], json!("")), "name"),
    ];
    for (body, field) in cases {
        app.create_product(&admin, body).await.expect_invalid(field);
    }
    // Missing fields, wrong types, unknown fields.
    for body in [
        json!({"sku": "MUG-2", "name": "Mug", "stock": 5}),
        json!({"sku": "MUG-2", "price": {"amount": 1, "currency": "EUR"}, "stock": 5}),
        json!({"sku": "MUG-2", "name": "Mug", "price": {"amount": 1, "currency": "EUR"}}),
        json!({}),
        with(&["stock"], json!("5")),
        with(&["price", "amount"], json!(12.5)),
        with(&["colour"], json!("red")),
    ] {
        app.create_product(&admin, body)
            .await
            .expect_problem(422, "validation_failed");
    }
    // Nothing but the first mug was created.
    let res = app.get_as("/api/v1/products", &reader).await;
    res.expect(200);
    assert_eq!(res.json()["data"].as_array().unwrap().len(), 1);
}

on_both_databases!(admin_product_patch_changes_only_the_given_fields);

async fn admin_product_patch_changes_only_the_given_fields(app: TestApp) {
    let admin = app.admin_key().await;
    let mug = app.product("MUG-1", 1200, "EUR", 5).await;
    app.product("TEE-1", 1900, "EUR", 3).await;
    let path_id = mug.id.clone();
    let original = serde_json::to_value(jeton::responses::Product::from(mug.clone())).unwrap();

    // One field.
    let res = app
        .patch_product(&admin, &path_id, json!({"stock": 7}))
        .await;
    res.expect(200);
    let mut expected = original.clone();
    expected["stock"] = json!(7);
    assert_eq!(res.json(), expected);

    // Several.
    let res = app
        .patch_product(
            &admin,
            &path_id,
            json!({"name": "Big mug", "price": {"amount": 1500, "currency": "USD"}}),
        )
        .await;
    res.expect(200);
    expected["name"] = json!("Big mug");
    expected["price"] = json!({"amount": 1500, "currency": "USD"});
    assert_eq!(res.json(), expected);
    // An empty patch changes nothing.
    let res = app.patch_product(&admin, &path_id, json!({})).await;
    res.expect(200);
    assert_eq!(res.json(), expected);
    // Its own SKU is not "taken".
    app.patch_product(&admin, &path_id, json!({"sku": "MUG-1"}))
        .await
        .expect(200);

    // Errors, none of which changes anything.
    app.patch_product(&admin, UNKNOWN_ID, json!({"stock": 1}))
        .await
        .expect_problem(404, "not_found");
    app.patch_product(&admin, "not-an-id", json!({"stock": 1}))
        .await
        .expect_problem(404, "not_found");
    app.patch_product(&admin, &path_id, json!({"sku": "TEE-1"}))
        .await
        .expect_problem(409, "sku_taken");
    let cases = [
        (json!({"stock": -1}), "stock"),
        (
            json!({"price": {"amount": -5, "currency": "EUR"}}),
            "price.amount",
        ),
        (
            json!({"price": {"amount": 5, "currency": "eur"}}),
            "price.currency",
        ),
        (json!({"sku": "has space"}), "sku"),
        (json!({"name": ""}), "name"),
    ];
    for (body, field) in cases {
        app.patch_product(&admin, &path_id, body)
            .await
            .expect_invalid(field);
    }
    app.patch_product(&admin, &path_id, json!({"customer_id": UNKNOWN_ID}))
        .await
        .expect_problem(422, "validation_failed");
    let reader = app.publishable_key().await;
    let res = app
        .get_as(&format!("/api/v1/products/{path_id}"), &reader)
        .await;
    res.expect(200);
    assert_eq!(res.json(), expected);
}
