//! The storefront scenario end to end: an admin stocks the shop, a guest
//! browses with a publishable key, a customer registers, logs in, orders and
//! lists their own orders, and another customer sees none of it.

use serde_json::json;

use crate::{on_both_databases, support::TestApp};

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

    // …places an order…
    let res = app
        .post_json_as(
            "/api/v1/orders",
            &token,
            json!({"items": [{"product_id": mug_id, "quantity": 2}]}),
        )
        .await;
    res.expect(201);
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
