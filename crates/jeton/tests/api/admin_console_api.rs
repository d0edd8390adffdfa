//! The admin endpoints the operator's console needs (API.md §13 "More admin
//! endpoints"): products with their stock, customers by email with their
//! tokens and counts, every order, flagged clients and what each key's
//! exposure shows, editing a client (the kind's rules, the grant rule, at
//! once on its keys and its access tokens), and the audit log's filters.

use std::time::Duration;

use jeton::domain::client::ClientKind;
use serde_json::{Value, json};

use crate::{
    on_both_databases,
    support::{
        EVIL, OTHER_SHOP, Res, SHOP, TestApp, UNKNOWN_ID, USER_ABILITIES, actions, assert_fields,
        enc, ids, s, timestamp,
    },
};

on_both_databases!(
    admin_products_list_every_product_with_its_stock,
    admin_customers_by_email_prefix_with_their_counts_and_tokens,
    admin_orders_newest_first_by_customer_and_status,
    flagged_clients_have_a_key_a_browser_sent,
    patching_a_client_applies_to_its_keys_at_once,
    refused_patches_write_nothing,
    patching_follows_the_grant_rule,
    narrowing_a_client_revokes_its_access_tokens_beyond_it,
    audit_filters_by_type_time_and_staff_in_either_order,
);

// ---------------------------------------------------------------- helpers

/// `PATCH /admin/clients/{id}` with `body`.
async fn patch_client(app: &TestApp, caller: &str, id: &str, body: Value) -> Res {
    app.patch_json_as(&format!("/api/v1/admin/clients/{id}"), caller, body)
        .await
}

/// A secret key holding `abilities`, made in the store: (client id, key).
async fn secret(app: &TestApp, abilities: &[&str]) -> (String, String) {
    app.client(ClientKind::Secret, abilities, &[]).await
}

/// 403 `insufficient_scope` naming `ability`.
#[track_caller]
fn expect_needs(res: &Res, ability: &str) {
    res.expect_problem(403, "insufficient_scope");
    assert_eq!(
        res.header("www-authenticate"),
        Some(format!(
            r#"Bearer realm="jeton", error="insufficient_scope", scope="{ability}""#
        ))
    );
}

/// The first page of `path` (with its query), which must succeed.
async fn page(app: &TestApp, token: &str, path: &str) -> Value {
    let res = app.get_as(path, token).await;
    res.expect(200);
    res.json()
}

fn data(page: &Value) -> Vec<Value> {
    page["data"].as_array().unwrap().clone()
}

/// The audit events of a client, oldest first.
async fn client_events(app: &TestApp, admin: &str, id: &str) -> Vec<Value> {
    app.all_pages(
        admin,
        "/api/v1/admin/audit",
        &format!("client_id={id}"),
        100,
    )
    .await
}

/// An order of one unit of `product_id`; its id.
async fn order(app: &TestApp, token: &str, product_id: &str) -> String {
    let res = app
        .post_json_as(
            "/api/v1/orders",
            token,
            json!({"items": [{"product_id": product_id, "quantity": 1}]}),
        )
        .await;
    res.expect(201);
    s(&res.json()["id"])
}

// ---------------------------------------------------------------- products

async fn admin_products_list_every_product_with_its_stock(app: TestApp) {
    let admin = app.admin_key().await;
    let mug = app.named_product("MUG-1", "Blue mug", 1200, "EUR", 5).await;
    let sold_out = app.named_product("MUG-2", "Red mug", 1200, "EUR", 0).await;
    let tee = app
        .named_product("TEE-1", "Green tee", 1900, "EUR", 12)
        .await;
    let odd = app.named_product("ODD_1", "50% off", 100, "EUR", 1).await;
    let all = app.all_pages(&admin, "/api/v1/admin/products", "", 2).await;
    assert_eq!(
        ids(&all),
        [&mug.id, &sold_out.id, &tee.id, &odd.id].map(|id| id.to_string())
    );
    assert_eq!(all[1]["stock"], 0, "sold-out products are listed");
    assert_fields(
        &all[0],
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

    // `q`: in the name or the SKU, whatever its case; `%` and `_` literal.
    let found = |query: &'static str| {
        let app = &app;
        let admin = admin.clone();
        async move {
            ids(&app
                .all_pages(&admin, "/api/v1/admin/products", query, 10)
                .await)
        }
    };
    assert_eq!(
        found("q=MUG").await,
        [mug.id.to_string(), sold_out.id.to_string()]
    );
    assert_eq!(found("q=green").await, [tee.id.to_string()]);
    assert_eq!(found("q=50%25").await, [odd.id.to_string()]);
    assert_eq!(found("q=D_1").await, [odd.id.to_string()]);
    assert_eq!(found("q=G_1").await, Vec::<String>::new());
    assert_eq!(found("q=").await.len(), 4, "an empty search is none");

    // The stock as it is now: a change shows at once.
    app.patch_product(&admin, &mug.id, json!({"stock_delta": -5}))
        .await
        .expect(200);
    let first = page(&app, &admin, "/api/v1/admin/products?limit=1").await;
    assert_eq!(first["data"][0]["stock"], 0);

    app.get_as("/api/v1/admin/products?limit=0", &admin)
        .await
        .expect_invalid("limit");
    app.get_as("/api/v1/admin/products?cursor=nope", &admin)
        .await
        .expect_invalid("cursor");
    app.get_as(
        &format!("/api/v1/admin/products?q={}", "x".repeat(101)),
        &admin,
    )
    .await
    .expect_invalid("q");
    app.get_as("/api/v1/admin/products?in_stock=true", &admin)
        .await
        .expect_problem(422, "validation_failed");
    // It shows what only a catalogue writer sees.
    let (_, reader) = secret(&app, &["products:read", "clients:read"]).await;
    expect_needs(
        &app.get_as("/api/v1/admin/products", &reader).await,
        "products:write",
    );
}

// ---------------------------------------------------------------- customers

async fn admin_customers_by_email_prefix_with_their_counts_and_tokens(app: TestApp) {
    let admin = app.admin_key().await;
    let (ann, ann_token) = app.customer("ann@example.com").await;
    let (anna, _) = app.customer("anna@example.com").await;
    let (bob, _) = app.customer("bob@example.com").await;
    let (odd, _) = app.customer("a_x@example.com").await;
    let (plain, _) = app.customer("abx@example.com").await;

    let every = app
        .all_pages(&admin, "/api/v1/admin/customers", "", 2)
        .await;
    assert_eq!(
        ids(&every),
        [&ann, &anna, &bob, &odd, &plain].map(|id| id.clone())
    );
    assert_fields(&every[0], &["id", "email", "name", "created_at"]);

    let by_email = |prefix: &str| {
        let query = format!("email={}", enc(prefix));
        let (app, admin) = (&app, admin.clone());
        async move {
            ids(&app
                .all_pages(&admin, "/api/v1/admin/customers", &query, 1)
                .await)
        }
    };
    // A prefix, whatever its case, paged.
    assert_eq!(by_email("AN").await, [ann.clone(), anna.clone()]);
    assert_eq!(by_email("ann@").await, [ann.as_str()]);
    assert_eq!(by_email(" Bob@Example.com ").await, [bob.as_str()]);
    // `_` and `%` are themselves.
    assert_eq!(by_email("a_").await, [odd.as_str()]);
    assert_eq!(by_email("%").await, Vec::<String>::new());
    assert_eq!(by_email("example").await, Vec::<String>::new());
    assert_eq!(by_email("").await.len(), 5);
    app.get_as(
        &format!("/api/v1/admin/customers?email={}", "a".repeat(255)),
        &admin,
    )
    .await
    .expect_invalid("email");

    // One customer, with their live tokens and orders counted.
    let details = |id: String| {
        let (app, admin) = (&app, admin.clone());
        async move { page(app, &admin, &format!("/api/v1/admin/customers/{id}")).await }
    };
    let got = details(ann.clone()).await;
    assert_fields(
        &got,
        &[
            "id",
            "email",
            "name",
            "created_at",
            "token_count",
            "order_count",
        ],
    );
    assert_eq!(got["email"], "ann@example.com");
    assert_eq!(
        (got["token_count"].clone(), got["order_count"].clone()),
        (json!(1), json!(0))
    );

    let product = app.product("MUG-1", 1200, "EUR", 10).await;
    let first = order(&app, &ann_token, &product.id).await;
    order(&app, &ann_token, &product.id).await;
    app.post_as(&format!("/api/v1/admin/orders/{first}/cancel"), &admin)
        .await
        .expect(200);
    let mut personal = Vec::new();
    for name in ["laptop", "phone"] {
        let res = app
            .post_json_as(
                "/api/v1/me/tokens",
                &ann_token,
                json!({"name": name, "abilities": ["profile:read"]}),
            )
            .await;
        res.expect(201);
        personal.push(s(&res.json()["token_id"]));
    }
    let got = details(ann.clone()).await;
    assert_eq!(got["token_count"], 3);
    assert_eq!(got["order_count"], 2, "cancelled orders count");
    let other = details(anna.clone()).await;
    assert_eq!(
        (other["token_count"].clone(), other["order_count"].clone()),
        (json!(1), json!(0))
    );

    // Their live tokens, newest first, paged, as `/me/tokens` shows them
    // without `current`.
    let path = format!("/api/v1/admin/customers/{ann}/tokens");
    let tokens = app.all_pages(&admin, &path, "", 2).await;
    assert_eq!(tokens.len(), 3);
    assert_eq!(
        ids(&tokens)[..2],
        [personal[1].clone(), personal[0].clone()]
    );
    assert_fields(
        &tokens[0],
        &[
            "id",
            "name",
            "abilities",
            "last4",
            "client_id",
            "created_at",
            "last_used_at",
            "expires_at",
        ],
    );
    assert_eq!(tokens[0]["name"], "phone");
    assert_eq!(tokens[2]["abilities"], json!(USER_ABILITIES));
    // The last use may be written in between: the rest must agree.
    let mine = page(&app, &ann_token, "/api/v1/me/tokens").await;
    let without = |token: &Value, fields: &[&str]| {
        let mut token = token.clone();
        for field in fields {
            token.as_object_mut().unwrap().remove(*field);
        }
        token
    };
    assert_eq!(data(&mine).len(), tokens.len());
    for (listed, own) in tokens.iter().zip(data(&mine)) {
        assert_eq!(
            without(listed, &["last_used_at"]),
            without(&own, &["last_used_at", "current"])
        );
    }

    // A revoked token is neither listed nor counted.
    app.delete_as(&format!("/api/v1/me/tokens/{}", personal[0]), &ann_token)
        .await
        .expect(204);
    assert_eq!(details(ann.clone()).await["token_count"], 2);
    assert_eq!(app.all_pages(&admin, &path, "", 10).await.len(), 2);
    app.post_as(
        &format!("/api/v1/admin/customers/{ann}/revoke-tokens"),
        &admin,
    )
    .await
    .expect(204);
    assert_eq!(details(ann.clone()).await["token_count"], 0);
    assert_eq!(
        page(&app, &admin, &path).await,
        json!({"data": [], "next_cursor": null})
    );

    // Unknown and malformed ids.
    for id in [UNKNOWN_ID, "nope"] {
        app.get_as(&format!("/api/v1/admin/customers/{id}"), &admin)
            .await
            .expect_problem(404, "not_found");
        app.get_as(&format!("/api/v1/admin/customers/{id}/tokens"), &admin)
            .await
            .expect_problem(404, "not_found");
    }
    app.get_as(&format!("{path}?cursor=nope"), &admin)
        .await
        .expect_invalid("cursor");
    // `customers:read` is its own ability.
    let (_, revoker) = secret(&app, &["customers:revoke"]).await;
    expect_needs(
        &app.get_as("/api/v1/admin/customers", &revoker).await,
        "customers:read",
    );
}

// ---------------------------------------------------------------- orders

async fn admin_orders_newest_first_by_customer_and_status(app: TestApp) {
    let admin = app.admin_key().await;
    let product = app.product("MUG-1", 1200, "EUR", 100).await;
    let (ann, ann_token) = app.customer("ann@example.com").await;
    let (bob, bob_token) = app.customer("bob@example.com").await;
    let mut placed = Vec::new();
    for token in [&ann_token, &bob_token, &ann_token, &bob_token, &ann_token] {
        placed.push(order(&app, token, &product.id).await);
    }
    let owner = |i: usize| {
        if i.is_multiple_of(2) {
            ann.clone()
        } else {
            bob.clone()
        }
    };
    app.post_as(
        &format!("/api/v1/admin/orders/{}/cancel", placed[2]),
        &admin,
    )
    .await
    .expect(200);

    let all = app.all_pages(&admin, "/api/v1/admin/orders", "", 2).await;
    let newest_first: Vec<String> = placed.iter().rev().cloned().collect();
    assert_eq!(ids(&all), newest_first);
    for (i, listed) in all.iter().rev().enumerate() {
        assert_eq!(s(&listed["customer_id"]), owner(i));
    }
    assert_fields(
        &all[0],
        &[
            "id",
            "status",
            "items",
            "total",
            "created_at",
            "customer_id",
        ],
    );
    assert_eq!(all[0]["items"][0]["sku"], "MUG-1");
    assert_eq!(all[0]["total"], json!({"amount": 1200, "currency": "EUR"}));

    let listed = |query: String| {
        let (app, admin) = (&app, admin.clone());
        async move {
            ids(&app
                .all_pages(&admin, "/api/v1/admin/orders", &query, 1)
                .await)
        }
    };
    assert_eq!(
        listed(format!("customer_id={ann}")).await,
        [&placed[4], &placed[2], &placed[0]].map(|id| id.clone())
    );
    assert_eq!(
        listed(format!("customer_id={bob}&status=placed")).await,
        [&placed[3], &placed[1]].map(|id| id.clone())
    );
    assert_eq!(listed("status=cancelled".into()).await, [placed[2].clone()]);
    assert_eq!(
        listed(format!("customer_id={ann}&status=placed")).await,
        [&placed[4], &placed[0]].map(|id| id.clone())
    );
    assert_eq!(
        listed(format!("customer_id={UNKNOWN_ID}")).await,
        Vec::<String>::new()
    );

    for (query, field) in [
        ("status=shipped", "status"),
        ("status=", "status"),
        ("status=PLACED", "status"),
        ("customer_id=nope", "customer_id"),
        ("limit=101", "limit"),
        ("cursor=nope", "cursor"),
    ] {
        app.get_as(&format!("/api/v1/admin/orders?{query}"), &admin)
            .await
            .expect_invalid(field);
    }
    let (_, canceller) = secret(&app, &["orders:cancel"]).await;
    expect_needs(
        &app.get_as("/api/v1/admin/orders", &canceller).await,
        "orders:read_all",
    );
}

// ---------------------------------------------------------------- flagged clients

async fn flagged_clients_have_a_key_a_browser_sent(app: TestApp) {
    let admin = app.admin_key().await;
    let (leaky, leaky_key) = secret(&app, &["products:read"]).await;
    let (careful, careful_key) = secret(&app, &["products:read"]).await;
    let (shop, shop_key) = app
        .client(ClientKind::Publishable, &["products:read"], &[SHOP])
        .await;
    // A publishable key from another site is refused for its origin: not
    // an exposure.
    app.products(&shop_key, Some(EVIL))
        .await
        .expect_refused("origin_not_allowed");
    app.products(&careful_key, None).await.expect(200);
    assert_eq!(
        page(&app, &admin, "/api/v1/admin/clients?flagged=true").await,
        json!({"data": [], "next_cursor": null})
    );

    let sent_from_a_page = app.now();
    app.products(&leaky_key, Some(SHOP))
        .await
        .expect_refused("secret_key_in_browser");
    let flagged = app
        .all_pages(&admin, "/api/v1/admin/clients", "flagged=true", 1)
        .await;
    assert_eq!(ids(&flagged), [leaky.as_str()]);
    let key = &flagged[0]["keys"][0];
    assert_eq!(key["browser_refusals"], 1);
    assert_eq!(
        timestamp(&key["exposed_at"]),
        timestamp(&key["last_browser_refusal_at"])
    );
    assert!(timestamp(&key["exposed_at"]) >= sent_from_a_page - time::Duration::seconds(1));

    // Every client response has both fields on every key.
    let shown = app.get_client(&admin, &shop).await;
    assert_fields(
        &shown["keys"][0],
        &[
            "id",
            "last4",
            "created_at",
            "expires_at",
            "browser_refusals",
            "exposed_at",
            "last_browser_refusal_at",
            "last_used_at",
        ],
    );
    assert_eq!(shown["keys"][0]["exposed_at"], Value::Null);
    assert_eq!(shown["keys"][0]["browser_refusals"], 0);
    let all = app
        .all_pages(&admin, "/api/v1/admin/clients", "", 100)
        .await;
    assert_eq!(all.len(), 4);
    let unflagged = app
        .all_pages(&admin, "/api/v1/admin/clients", "flagged=false", 100)
        .await;
    assert_eq!(unflagged, all, "`flagged=false` is every client");

    // A later refusal (one is recorded a minute) moves the last, not the
    // exposure.
    let exposed_at = timestamp(&key["exposed_at"]);
    app.advance(Duration::from_secs(120));
    app.products(&leaky_key, Some(EVIL))
        .await
        .expect_refused("secret_key_in_browser");
    let client = app.get_client(&admin, &leaky).await;
    let key = &client["keys"][0];
    assert_eq!(key["browser_refusals"], 2);
    assert_eq!(timestamp(&key["exposed_at"]), exposed_at);
    assert!(timestamp(&key["last_browser_refusal_at"]) > exposed_at);

    // An access token sent from a page is refused the same way; the key
    // that obtained it is not the one exposed.
    let token = app.access_token(&careful, &careful_key, None).await;
    app.products(&token, Some(SHOP))
        .await
        .expect_refused("secret_key_in_browser");
    assert_eq!(
        ids(&app
            .all_pages(&admin, "/api/v1/admin/clients", "flagged=true", 10)
            .await),
        [leaky.as_str()]
    );

    // Rotated out, the exposed key no longer flags its client.
    app.rotated(&admin, &leaky, None).await;
    assert_eq!(
        page(&app, &admin, "/api/v1/admin/clients?flagged=true").await["data"],
        json!([])
    );
    app.get_as("/api/v1/admin/clients?flagged=maybe", &admin)
        .await
        .expect_problem(422, "validation_failed");
}

// ---------------------------------------------------------------- editing a client

async fn patching_a_client_applies_to_its_keys_at_once(app: TestApp) {
    let admin = app.admin_key().await;
    let res = app
        .create_client(
            &admin,
            json!({"name": "Storefront", "kind": "publishable",
                   "abilities": ["products:read", "auth:login"], "allowed_origins": [SHOP],
                   "rate_limit_per_minute": null, "per_ip_rate_limit_per_minute": 300}),
        )
        .await;
    res.expect(201);
    let (id, key) = (s(&res.json()["client"]["id"]), s(&res.json()["key"]));
    app.products(&key, Some(SHOP)).await.expect(200);
    app.products(&key, Some(SHOP)).await.expect(200);

    // Origins, name and the key's limit; the per-IP limit left out stays.
    let res = patch_client(
        &app,
        &admin,
        &id,
        json!({"name": "New storefront", "allowed_origins": [OTHER_SHOP, "https://Other-Shop.example:443"],
               "rate_limit_per_minute": 1000}),
    )
    .await;
    res.expect(200);
    let client = res.json();
    assert_eq!(client["name"], "New storefront");
    assert_eq!(client["allowed_origins"], json!([OTHER_SHOP]));
    assert_eq!(client["rate_limit_per_minute"], 1000);
    assert_eq!(client["per_ip_rate_limit_per_minute"], 300);
    assert_eq!(client["abilities"], json!(["auth:login", "products:read"]));
    assert_eq!(client["keys"][0]["last4"], crate::support::last4(&key));
    assert_eq!(app.get_client(&admin, &id).await, client);
    // At once: the old site is refused, the new one served (CORS too).
    app.products(&key, Some(SHOP))
        .await
        .expect_refused("origin_not_allowed");
    app.products(&key, Some(OTHER_SHOP)).await.expect(200);
    let preflight = app
        .req(axum::http::Method::OPTIONS, "/api/v1/products")
        .header("origin", OTHER_SHOP)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await;
    assert_eq!(
        preflight.header("access-control-allow-origin").as_deref(),
        Some(OTHER_SHOP)
    );

    // Abilities: the key holds the new ones at once.
    let res = patch_client(&app, &admin, &id, json!({"abilities": ["auth:login"]})).await;
    res.expect(200);
    assert_eq!(res.json()["abilities"], json!(["auth:login"]));
    expect_needs(&app.products(&key, Some(OTHER_SHOP)).await, "products:read");
    patch_client(&app, &admin, &id, json!({"abilities": ["products:read"]}))
        .await
        .expect(200);
    app.products(&key, Some(OTHER_SHOP)).await.expect(200);

    // A secret client's limit, and no limit again with `null`.
    let (backend, backend_key) = secret(&app, &["products:read"]).await;
    let res = patch_client(&app, &admin, &backend, json!({"rate_limit_per_minute": 2})).await;
    res.expect(200);
    assert_eq!(res.json()["rate_limit_per_minute"], 2);
    assert_eq!(res.json()["per_ip_rate_limit_per_minute"], Value::Null);
    app.products(&backend_key, None).await.expect(200);
    app.products(&backend_key, None).await.expect(200);
    app.products(&backend_key, None)
        .await
        .expect_problem(429, "rate_limited");
    let res = patch_client(
        &app,
        &admin,
        &backend,
        json!({"rate_limit_per_minute": null, "allowed_origins": [], "per_ip_rate_limit_per_minute": null}),
    )
    .await;
    res.expect(200);
    assert_eq!(res.json()["rate_limit_per_minute"], Value::Null);
    app.products(&backend_key, None).await.expect(200);

    // Each change is audited, by the caller's key (between them, the
    // refusal from the site no longer allowed).
    let events = client_events(&app, &admin, &id).await;
    assert_eq!(
        actions(&events),
        [
            "client.created",
            "client.updated",
            "client_key.refused_origin",
            "client.updated",
            "client.updated"
        ]
    );
    let detail = s(&events[1]["detail"]);
    for part in ["New storefront", OTHER_SHOP, "1000"] {
        assert!(detail.contains(part), "{detail}");
    }
    assert_eq!(events[1]["actor"]["kind"], "client_key");
    assert!(s(&events[3]["detail"]).contains("auth:login"));

    // Nothing asked, nothing changed nor recorded.
    let before = app.get_client(&admin, &id).await;
    let res = patch_client(&app, &admin, &id, json!({})).await;
    res.expect(200);
    assert_eq!(res.json(), before);
    assert_eq!(client_events(&app, &admin, &id).await.len(), 5);
}

async fn refused_patches_write_nothing(app: TestApp) {
    let admin = app.admin_key().await;
    let (shop, _) = app
        .client(ClientKind::Publishable, &["products:read"], &[SHOP])
        .await;
    let (backend, _) = secret(&app, &["products:read"]).await;
    let tables = [
        "auth_clients",
        "client_details",
        "auth_credentials",
        "auth_access_tokens",
        "audit_events",
    ];
    let counts = app.row_counts(&tables).await;
    let shop_before = app.get_client(&admin, &shop).await;
    let backend_before = app.get_client(&admin, &backend).await;

    for (id, body, field) in [
        (&shop, json!({"allowed_origins": []}), "allowed_origins"),
        (
            &shop,
            json!({"allowed_origins": ["shop.example"]}),
            "allowed_origins[0]",
        ),
        (&shop, json!({"abilities": ["orders:cancel"]}), "abilities"),
        (&shop, json!({"abilities": []}), "abilities"),
        (&shop, json!({"abilities": ["nonsense"]}), "abilities"),
        (&shop, json!({"name": "  "}), "name"),
        (
            &shop,
            json!({"rate_limit_per_minute": 0}),
            "rate_limit_per_minute",
        ),
        (
            &shop,
            json!({"per_ip_rate_limit_per_minute": 2_000_000}),
            "per_ip_rate_limit_per_minute",
        ),
        (
            &backend,
            json!({"allowed_origins": [SHOP]}),
            "allowed_origins",
        ),
        (
            &backend,
            json!({"per_ip_rate_limit_per_minute": 5}),
            "per_ip_rate_limit_per_minute",
        ),
        // Every problem at once, the valid fields with them unwritten.
        (
            &backend,
            json!({"name": "Renamed", "abilities": ["orders:*"], "rate_limit_per_minute": -1}),
            "rate_limit_per_minute",
        ),
    ] {
        patch_client(&app, &admin, id, body)
            .await
            .expect_invalid(field);
    }
    patch_client(&app, &admin, &shop, json!({"kind": "secret"}))
        .await
        .expect_problem(422, "validation_failed");
    patch_client(&app, &admin, &shop, json!({"name": 5}))
        .await
        .expect_problem(422, "validation_failed");

    // Unknown, malformed, revoked.
    for id in [UNKNOWN_ID, "nope"] {
        patch_client(&app, &admin, id, json!({"name": "x"}))
            .await
            .expect_problem(404, "not_found");
    }
    assert_eq!(app.row_counts(&tables).await, counts);
    assert_eq!(app.get_client(&admin, &shop).await, shop_before);
    assert_eq!(app.get_client(&admin, &backend).await, backend_before);

    app.delete_as(&format!("/api/v1/admin/clients/{backend}"), &admin)
        .await
        .expect(204);
    patch_client(&app, &admin, &backend, json!({"name": "Back"}))
        .await
        .expect_problem(404, "not_found");
    assert_eq!(
        app.get_client(&admin, &backend).await["name"],
        backend_before["name"]
    );
}

async fn patching_follows_the_grant_rule(app: TestApp) {
    let admin = app.admin_key().await;
    let (_, writer) = secret(&app, &["clients:write"]).await;
    let (shop, _) = secret(&app, &["products:read"]).await;
    let (reader, _) = secret(&app, &["clients:read"]).await;
    let (staff, _) = secret(&app, &["staff:manage"]).await;
    let audited = app.audit_actions().await.len();

    // `clients:write` alone grants the storefront's and customers' abilities…
    patch_client(
        &app,
        &writer,
        &shop,
        json!({"abilities": ["products:read", "customers:create", "orders:*"]}),
    )
    .await
    .expect(200);
    // …not an admin ability, `admin`, `tokens:introspect` or `*`.
    for needed in ["orders:cancel", "admin", "tokens:introspect", "*"] {
        let res = patch_client(
            &app,
            &writer,
            &shop,
            json!({"abilities": ["products:read", needed]}),
        )
        .await;
        expect_needs(&res, needed);
    }
    // Nor may it edit a client holding one, even to take it away.
    for body in [
        json!({"name": "Renamed"}),
        json!({"abilities": ["products:read"]}),
    ] {
        expect_needs(
            &patch_client(&app, &writer, &reader, body).await,
            "clients:read",
        );
    }
    // `admin` grants what it holds, not `staff:manage`.
    patch_client(
        &app,
        &admin,
        &reader,
        json!({"abilities": ["clients:read", "audit:read"]}),
    )
    .await
    .expect(200);
    expect_needs(
        &patch_client(
            &app,
            &admin,
            &reader,
            json!({"abilities": ["staff:manage"]}),
        )
        .await,
        "staff:manage",
    );
    expect_needs(
        &patch_client(&app, &admin, &staff, json!({"name": "Staff"})).await,
        "staff:manage",
    );
    // An access token holds its scope only.
    let (admin_id, admin_key) = secret(&app, &["admin"]).await;
    let token = app
        .access_token(&admin_id, &admin_key, Some("clients:write"))
        .await;
    expect_needs(
        &patch_client(&app, &token, &shop, json!({"abilities": ["audit:read"]})).await,
        "audit:read",
    );
    patch_client(&app, &token, &shop, json!({"name": "Shop"}))
        .await
        .expect(200);
    let (_, star) = secret(&app, &["*"]).await;
    patch_client(&app, &star, &staff, json!({"abilities": ["*"]}))
        .await
        .expect(200);
    // Only the changes made were recorded (and the token's issue).
    let actions = app.audit_actions().await;
    let recorded: Vec<&str> = actions[audited..]
        .iter()
        .map(String::as_str)
        .filter(|action| *action != "client.created")
        .collect();
    assert_eq!(
        recorded,
        [
            "client.updated",
            "client.updated",
            "access_token.issued",
            "client.updated",
            "client.updated"
        ]
    );
}

async fn narrowing_a_client_revokes_its_access_tokens_beyond_it(app: TestApp) {
    let admin = app.admin_key().await;
    let (id, key) = secret(&app, &["clients:read", "audit:read"]).await;
    let everything = app.access_token(&id, &key, None).await;
    let audit_only = app.access_token(&id, &key, Some("audit:read")).await;
    let clients_only = app.access_token(&id, &key, Some("clients:read")).await;
    for token in [&everything, &clients_only] {
        app.get_as("/api/v1/admin/clients", token).await.expect(200);
    }

    // Widening revokes nothing.
    patch_client(
        &app,
        &admin,
        &id,
        json!({"abilities": ["clients:read", "audit:read", "usage:read"]}),
    )
    .await
    .expect(200);
    app.get_as("/api/v1/admin/clients", &everything)
        .await
        .expect(200);

    // Narrowing: the tokens whose scope the client no longer allows are
    // revoked at once; the others keep working.
    patch_client(&app, &admin, &id, json!({"abilities": ["audit:read"]}))
        .await
        .expect(200);
    for token in [&everything, &clients_only] {
        app.get_as("/api/v1/admin/audit", token)
            .await
            .expect_problem(401, "invalid_token");
    }
    app.get_as("/api/v1/admin/audit", &audit_only)
        .await
        .expect(200);
    // The key itself holds the new abilities.
    app.get_as("/api/v1/admin/audit", &key).await.expect(200);
    expect_needs(
        &app.get_as("/api/v1/admin/clients", &key).await,
        "clients:read",
    );
    // A token obtained now gets what the client holds.
    let fresh = app.access_token(&id, &key, None).await;
    expect_needs(
        &app.get_as("/api/v1/admin/clients", &fresh).await,
        "clients:read",
    );
    let res = app
        .token_request(
            &id,
            &key,
            "grant_type=client_credentials&scope=clients%3Aread",
        )
        .await;
    res.expect_oauth_error(400, "invalid_scope");

    let events = client_events(&app, &admin, &id).await;
    let updated: Vec<&Value> = events
        .iter()
        .filter(|event| event["action"] == "client.updated")
        .collect();
    assert_eq!(updated.len(), 2);
    assert!(!s(&updated[0]["detail"]).contains("revoked"));
    assert!(
        s(&updated[1]["detail"]).contains("2 access tokens revoked"),
        "{}",
        updated[1]["detail"]
    );
}

// ---------------------------------------------------------------- audit filters

async fn audit_filters_by_type_time_and_staff_in_either_order(app: TestApp) {
    let admin = app.admin_key().await;
    let (first, _) = secret(&app, &["products:read"]).await;
    app.advance(Duration::from_secs(10));
    let middle_start = app.now();
    let (second, _) = secret(&app, &["products:read"]).await;
    app.rotated(&admin, &second, None).await;
    app.advance(Duration::from_secs(10));
    let late_start = app.now();
    app.delete_as(&format!("/api/v1/admin/clients/{first}"), &admin)
        .await
        .expect(204);

    let oldest_first = app.all_pages(&admin, "/api/v1/admin/audit", "", 100).await;
    assert!(oldest_first.len() >= 5, "{oldest_first:?}");
    let events = |query: String, limit: usize| {
        let (app, admin) = (&app, admin.clone());
        async move {
            app.all_pages(&admin, "/api/v1/admin/audit", &query, limit)
                .await
        }
    };

    // Newest first, paged, is the same list backwards, in either page size.
    let mut newest_first = oldest_first.clone();
    newest_first.reverse();
    for limit in [1, 2, 100] {
        assert_eq!(events("order=desc".into(), limit).await, newest_first);
        assert_eq!(events("order=asc".into(), limit).await, oldest_first);
    }

    // `type`: the action, exactly.
    let created = events("type=client.created".into(), 1).await;
    assert!(
        created
            .iter()
            .all(|event| event["action"] == "client.created")
    );
    assert_eq!(
        created.len(),
        oldest_first
            .iter()
            .filter(|event| event["action"] == "client.created")
            .count()
    );
    assert_eq!(events("type=client".into(), 10).await, Vec::<Value>::new());
    assert_eq!(
        ids(&events("type=client.revoked&order=desc".into(), 10).await),
        ids(&oldest_first
            .iter()
            .filter(|event| event["action"] == "client.revoked")
            .cloned()
            .collect::<Vec<_>>())
    );

    // `[from, to)`.
    let at = |when: time::OffsetDateTime| {
        enc(&when
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap())
    };
    let middle = events(
        format!("from={}&to={}", at(middle_start), at(late_start)),
        1,
    )
    .await;
    assert_eq!(actions(&middle), ["client.created", "client.key_rotated"]);
    assert_eq!(middle[0]["client_id"], second.as_str());
    let late = events(format!("from={}", at(late_start)), 10).await;
    assert_eq!(actions(&late), ["client.revoked"]);
    let early = events(format!("to={}", at(middle_start)), 10).await;
    assert_eq!(early.len() + middle.len() + late.len(), oldest_first.len());
    assert!(
        early
            .iter()
            .all(|event| timestamp(&event["at"]) < middle_start)
    );
    // The bounds: `from` included, `to` excluded.
    let exact = timestamp(&late[0]["at"]);
    assert_eq!(events(format!("from={}", at(exact)), 10).await.len(), 1);
    assert_eq!(
        events(format!("to={}", at(exact)), 100).await.len(),
        oldest_first.len() - 1
    );
    assert_eq!(
        events(format!("from={0}&to={0}", at(exact)), 10).await,
        Vec::<Value>::new()
    );
    // Filters together, newest first.
    let together = events(
        format!("client_id={second}&from={}&order=desc", at(middle_start)),
        1,
    )
    .await;
    assert_eq!(actions(&together), ["client.key_rotated", "client.created"]);

    // A staff member who did nothing: no events.
    assert_eq!(
        page(
            &app,
            &admin,
            &format!("/api/v1/admin/audit?staff_id={UNKNOWN_ID}")
        )
        .await,
        json!({"data": [], "next_cursor": null})
    );

    for (query, field) in [
        ("staff_id=nope", "staff_id"),
        ("order=newest", "order"),
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        ("type=", "type"),
    ] {
        let res = app
            .get_as(&format!("/api/v1/admin/audit?{query}"), &admin)
            .await;
        assert_eq!(res.status.as_u16(), 422, "{query}: {}", res.text());
        res.expect_invalid(field);
    }
    app.get_as(
        &format!(
            "/api/v1/admin/audit?from={}&to={}",
            at(late_start),
            at(middle_start)
        ),
        &admin,
    )
    .await
    .expect_invalid("to");
    app.get_as(
        &format!("/api/v1/admin/audit?type={}", "a".repeat(101)),
        &admin,
    )
    .await
    .expect_invalid("type");
}
