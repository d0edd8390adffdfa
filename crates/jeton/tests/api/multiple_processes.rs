//! Two `jeton serve` processes on one database: what
//! one process changes, the other sees, and revocations and catalogue
//! changes reach it within one second, through the change feed (and on
//! PostgreSQL, `LISTEN`/`NOTIFY`). Every test runs on PostgreSQL and, since
//! two processes can share a SQLite file in WAL mode, on SQLite too.

use std::time::Instant;

use serde_json::{Value, json};

use crate::{
    on_both_databases,
    support::{
        Backend, PASSWORD, TestDatabase, connect,
        process::{
            Reply, STOREFRONT_ORIGIN as ORIGIN, Server, jeton, keyed_database, within_a_second,
        },
        s,
    },
};

on_both_databases!(
    user_token_revoked_through_one_process_is_refused_by_the_other_within_a_second,
    client_key_revoked_through_one_process_is_refused_by_the_other_within_a_second,
    orders_placed_through_either_process_are_visible_through_both,
    product_written_through_one_process_is_served_by_the_other_within_a_second,
    concurrent_orders_through_both_processes_leave_both_catalogues_fresh,
    changes_stamped_by_a_clock_running_ahead_are_not_missed,
    logins_do_not_cool_the_other_processs_verification_cache,
    access_tokens_die_on_the_other_process_within_a_second,
    a_client_edited_through_one_process_applies_on_the_other_within_a_second,
    a_staff_role_change_and_a_disable_reach_every_process_within_a_second,
);

// ---------------------------------------------------------------- the cluster

/// Two servers, A and B, on one fresh database, with a storefront's
/// publishable key and an admin key (which may also read products) made
/// on the command line.
struct Cluster {
    // Dropped in this order: the servers before their database.
    a: Server,
    b: Server,
    url: String,
    pk: String,
    admin: String,
    _database: TestDatabase,
}

async fn cluster(backend: Backend) -> Option<Cluster> {
    // The CLI migrates the database before either server starts.
    let keyed = keyed_database(backend, &["products:read"]).await?;
    // One customer places hundreds of orders here: the per-customer order
    // limit, which has tests of its own (orders.rs, fleet.rs), is off.
    let options = ["--customer-order-limit", "0"];
    let a = Server::start(&keyed.url, &options).await;
    let b = Server::start(&keyed.url, &options).await;
    Some(Cluster {
        a,
        b,
        url: keyed.url,
        pk: keyed.pk,
        admin: keyed.admin,
        _database: keyed.database,
    })
}

/// Registers a customer through `server`; returns their id.
async fn register(server: &Server, pk: &str, email: &str) -> String {
    let body = json!({"email": email, "password": PASSWORD, "name": "Test Customer"});
    let res = server
        .call("POST", "/api/v1/customers", Some(pk), Some(&body))
        .await;
    res.expect(201);
    s(&res.json()["id"])
}

/// Logs in through `server`: (token, token id).
async fn login(server: &Server, pk: &str, email: &str) -> (String, String) {
    let body = json!({"email": email, "password": PASSWORD, "device_name": "test"});
    let res = server
        .call("POST", "/api/v1/auth/login", Some(pk), Some(&body))
        .await;
    res.expect(201);
    let body = res.json();
    (s(&body["token"]), s(&body["token_id"]))
}

async fn get(server: &Server, path: &str, token: &str) -> Reply {
    server.call("GET", path, Some(token), None).await
}

/// A product made through `server`'s admin API; returns it.
async fn create_product(server: &Server, admin: &str, sku: &str, stock: i64) -> Value {
    let body = json!({
        "sku": sku, "name": format!("Product {sku}"), "description": "",
        "price": {"amount": 1000, "currency": "EUR"}, "stock": stock,
    });
    let res = server
        .call("POST", "/api/v1/admin/products", Some(admin), Some(&body))
        .await;
    res.expect(201);
    res.json()
}

/// Places an order through `server`; returns the order.
async fn order(server: &Server, token: &str, lines: &[(&str, i64)]) -> Value {
    let items: Vec<Value> = lines
        .iter()
        .map(|(id, quantity)| json!({"product_id": id, "quantity": quantity}))
        .collect();
    let res = server
        .call(
            "POST",
            "/api/v1/orders",
            Some(token),
            Some(&json!({"items": items})),
        )
        .await;
    res.expect(201);
    res.json()
}

async fn stock(server: &Server, key: &str, product_id: &str) -> i64 {
    let res = get(server, &format!("/api/v1/products/{product_id}"), key).await;
    res.expect(200);
    res.json()["stock"].as_i64().expect("a stock")
}

/// The ids on one page of `path`.
async fn ids(server: &Server, key: &str, path: &str) -> Vec<String> {
    let res = get(server, path, key).await;
    res.expect(200);
    res.json()["data"]
        .as_array()
        .expect("a page")
        .iter()
        .map(|item| s(&item["id"]))
        .collect()
}

/// `token` is refused by `server` as a revoked token is: 401
/// `invalid_token` with the RFC 6750 challenge, within a second of `since`.
/// Until then it must still work (200).
/// Rotates the client's key through `server`, the older keys dying at
/// once: the new key.
async fn rotate_without_grace(server: &Server, admin: &str, client_id: &str) -> String {
    let path = format!("/api/v1/admin/clients/{client_id}/keys");
    let body = json!({"previous_key_expires_in_seconds": 0});
    let res = server.call("POST", &path, Some(admin), Some(&body)).await;
    res.expect(201);
    s(&res.json()["key"])
}

async fn refused_within_a_second(server: &Server, since: Instant, what: &str, token: &str) {
    within_a_second(since, what, || async {
        let res = get(server, "/api/v1/products", token).await;
        match res.status {
            401 => {
                res.expect_problem(401, "invalid_token");
                assert_eq!(
                    res.header("www-authenticate").as_deref(),
                    Some("bearer realm=\"jeton\", error=\"invalid_token\""),
                );
                Ok(())
            }
            200 => Err(res.body),
            _ => panic!("{what}: neither working nor refused: {res:?}"),
        }
    })
    .await;
}

/// `token` is refused by `server` right now.
#[track_caller]
fn assert_refused(res: &Reply) {
    res.expect_problem(401, "invalid_token");
}

/// Stock of `product_id` as `server` shows it becomes `expected` within a
/// second of `since` (catalogue cache freshness).
async fn stock_within_a_second(
    server: &Server,
    key: &str,
    since: Instant,
    what: &str,
    product_id: &str,
    expected: i64,
) {
    within_a_second(since, what, || async {
        match stock(server, key, product_id).await {
            found if found == expected => Ok(()),
            found => Err(format!("stock {found}, expected {expected}")),
        }
    })
    .await;
}

// ---------------------------------------------------------------- user tokens

async fn user_token_revoked_through_one_process_is_refused_by_the_other_within_a_second(
    backend: Backend,
) {
    let Some(c) = cluster(backend).await else {
        return;
    };
    // Registered and logged in through A, the token works on B.
    let customer_id = register(&c.a, &c.pk, "ann@example.com").await;
    let (first, first_id) = login(&c.a, &c.pk, "ann@example.com").await;
    let me = get(&c.b, "/api/v1/me", &first).await;
    me.expect(200);
    assert_eq!(me.json()["id"], customer_id.as_str());
    assert_eq!(me.json()["email"], "ann@example.com");
    // A second token, from B, is used on both (so both have it cached).
    let (second, second_id) = login(&c.b, &c.pk, "ann@example.com").await;
    assert_ne!(first_id, second_id);
    for server in [&c.a, &c.b] {
        for token in [&first, &second] {
            get(server, "/api/v1/me", token).await.expect(200);
            get(server, "/api/v1/products", token).await.expect(200);
        }
    }

    // `DELETE /me/tokens/{id}` on A: A refuses the token at once, B within
    // a second of the answer.
    c.a.call(
        "DELETE",
        &format!("/api/v1/me/tokens/{second_id}"),
        Some(&first),
        None,
    )
    .await
    .expect(204);
    let revoked = Instant::now();
    assert_refused(&get(&c.a, "/api/v1/me", &second).await);
    refused_within_a_second(&c.b, revoked, "a token revoked on A, on B", &second).await;
    // The other token lives on, on both.
    for server in [&c.a, &c.b] {
        get(server, "/api/v1/me", &first).await.expect(200);
    }

    // Logout on A.
    c.a.call("POST", "/api/v1/auth/logout", Some(&first), None)
        .await
        .expect(204);
    let revoked = Instant::now();
    assert_refused(&get(&c.a, "/api/v1/me", &first).await);
    refused_within_a_second(&c.b, revoked, "a token logged out on A, on B", &first).await;

    // The other way round: logged in and out through B, refused by A.
    let (third, _) = login(&c.b, &c.pk, "ann@example.com").await;
    get(&c.a, "/api/v1/me", &third).await.expect(200);
    c.b.call("POST", "/api/v1/auth/logout", Some(&third), None)
        .await
        .expect(204);
    let revoked = Instant::now();
    assert_refused(&get(&c.b, "/api/v1/me", &third).await);
    refused_within_a_second(&c.a, revoked, "a token logged out on B, on A", &third).await;

    // And an admin revoking all of a customer's tokens through A.
    let (fourth, _) = login(&c.a, &c.pk, "ann@example.com").await;
    get(&c.b, "/api/v1/me", &fourth).await.expect(200);
    c.a.call(
        "POST",
        &format!("/api/v1/admin/customers/{customer_id}/revoke-tokens"),
        Some(&c.admin),
        None,
    )
    .await
    .expect(204);
    let revoked = Instant::now();
    refused_within_a_second(&c.b, revoked, "all tokens revoked on A, on B", &fourth).await;
}

// ---------------------------------------------------------------- client keys

async fn client_key_revoked_through_one_process_is_refused_by_the_other_within_a_second(
    backend: Backend,
) {
    let Some(c) = cluster(backend).await else {
        return;
    };
    // A kiosk client made through A's admin API works on B at once.
    let body = json!({
        "name": "Kiosk", "kind": "publishable",
        "abilities": ["products:read", "auth:login", "customers:create"],
        "allowed_origins": [ORIGIN], "per_ip_rate_limit_per_minute": null,
    });
    let res =
        c.a.call("POST", "/api/v1/admin/clients", Some(&c.admin), Some(&body))
            .await;
    res.expect(201);
    let kiosk_id = s(&res.json()["client"]["id"]);
    let kiosk = s(&res.json()["key"]);
    get(&c.b, "/api/v1/products", &kiosk).await.expect(200);
    // A customer logged in through the kiosk, on B.
    register(&c.b, &kiosk, "ann@example.com").await;
    let (through_kiosk, _) = login(&c.b, &kiosk, "ann@example.com").await;
    let (through_storefront, _) = login(&c.b, &c.pk, "ann@example.com").await;
    for server in [&c.a, &c.b] {
        for token in [&kiosk, &through_kiosk, &through_storefront, &c.pk] {
            get(server, "/api/v1/products", token).await.expect(200);
        }
    }

    // Revoked through A, with the user tokens issued through it.
    c.a.call(
        "DELETE",
        &format!("/api/v1/admin/clients/{kiosk_id}?revoke_user_tokens=true"),
        Some(&c.admin),
        None,
    )
    .await
    .expect(204);
    let revoked = Instant::now();
    assert_refused(&get(&c.a, "/api/v1/products", &kiosk).await);
    assert_refused(&get(&c.a, "/api/v1/products", &through_kiosk).await);
    refused_within_a_second(&c.b, revoked, "a key revoked on A, on B", &kiosk).await;
    refused_within_a_second(
        &c.b,
        revoked,
        "a token issued through a client revoked on A, on B",
        &through_kiosk,
    )
    .await;
    // Nothing else was touched.
    for server in [&c.a, &c.b] {
        for token in [&through_storefront, &c.pk] {
            get(server, "/api/v1/products", token).await.expect(200);
        }
    }

    // Rotation without grace through B: the old storefront key dies on A.
    let storefront_id = {
        let res = get(&c.b, "/api/v1/admin/clients", &c.admin).await;
        res.expect(200);
        let list = res.json();
        let list = list["data"].as_array().unwrap_or_else(|| panic!("{list}"));
        let storefront = list
            .iter()
            .find(|client| client["name"] == "Storefront")
            .expect("the storefront client");
        s(&storefront["id"])
    };
    let new_pk = rotate_without_grace(&c.b, &c.admin, &storefront_id).await;
    let rotated = Instant::now();
    refused_within_a_second(&c.a, rotated, "a key rotated out on B, on A", &c.pk).await;
    get(&c.a, "/api/v1/products", &new_pk).await.expect(200);
}

/// An access token obtained on A works on B, and dies on B within a second
/// of its revocation on A, of its key's rotation on A, and of its client's
/// revocation on A (each seen on B through the change feed).
async fn access_tokens_die_on_the_other_process_within_a_second(backend: Backend) {
    let Some(c) = cluster(backend).await else {
        return;
    };
    let body = json!({"name": "Warehouse", "kind": "secret", "abilities": ["products:read"]});
    let res =
        c.a.call("POST", "/api/v1/admin/clients", Some(&c.admin), Some(&body))
            .await;
    res.expect(201);
    let id = s(&res.json()["client"]["id"]);
    let secret = s(&res.json()["key"]);
    let exchange = async |server: &Server, secret: &str| -> String {
        let res = server
            .oauth(
                "/oauth/token",
                (&id, secret),
                "grant_type=client_credentials",
            )
            .await;
        res.expect(200);
        s(&res.json()["access_token"])
    };
    // Revoked on A.
    let first = exchange(&c.a, &secret).await;
    get(&c.b, "/api/v1/products", &first).await.expect(200);
    c.a.oauth("/oauth/revoke", (&id, &secret), &format!("token={first}"))
        .await
        .expect(200);
    let revoked = Instant::now();
    assert_refused(&get(&c.a, "/api/v1/products", &first).await);
    refused_within_a_second(&c.b, revoked, "an access token revoked on A, on B", &first).await;
    // Its key rotated out on A, with no grace.
    let second = exchange(&c.b, &secret).await;
    get(&c.b, "/api/v1/products", &second).await.expect(200);
    let new_secret = rotate_without_grace(&c.a, &c.admin, &id).await;
    let rotated = Instant::now();
    refused_within_a_second(
        &c.b,
        rotated,
        "an access token whose key rotated out on A, on B",
        &second,
    )
    .await;
    // Its client revoked on A.
    let third = exchange(&c.b, &new_secret).await;
    get(&c.b, "/api/v1/products", &third).await.expect(200);
    c.a.call(
        "DELETE",
        &format!("/api/v1/admin/clients/{id}"),
        Some(&c.admin),
        None,
    )
    .await
    .expect(204);
    let revoked = Instant::now();
    refused_within_a_second(
        &c.b,
        revoked,
        "an access token whose client was revoked on A, on B",
        &third,
    )
    .await;
}

async fn a_client_edited_through_one_process_applies_on_the_other_within_a_second(
    backend: Backend,
) {
    let Some(c) = cluster(backend).await else {
        return;
    };
    let body = json!({"name": "Back office", "kind": "secret",
                      "abilities": ["products:read", "clients:read"]});
    let res =
        c.a.call("POST", "/api/v1/admin/clients", Some(&c.admin), Some(&body))
            .await;
    res.expect(201);
    let id = s(&res.json()["client"]["id"]);
    let secret = s(&res.json()["key"]);
    let res =
        c.b.oauth(
            "/oauth/token",
            (&id, &secret),
            "grant_type=client_credentials&scope=clients%3Aread",
        )
        .await;
    res.expect(200);
    let token = s(&res.json()["access_token"]);
    // Both cached on B.
    for credential in [&secret, &token] {
        get(&c.b, "/api/v1/admin/clients", credential)
            .await
            .expect(200);
    }
    let path = format!("/api/v1/admin/clients/{id}");
    let body = json!({"abilities": ["products:read"]});
    c.a.call("PATCH", &path, Some(&c.admin), Some(&body))
        .await
        .expect(200);
    let edited = Instant::now();
    // The key holds the new abilities on B…
    within_a_second(edited, "a key narrowed on A, on B", || async {
        let res = get(&c.b, "/api/v1/admin/clients", &secret).await;
        match res.status {
            403 => {
                res.expect_problem(403, "insufficient_scope");
                Ok(())
            }
            200 => Err(res.body),
            _ => panic!("neither working nor refused: {res:?}"),
        }
    })
    .await;
    get(&c.b, "/api/v1/products", &secret).await.expect(200);
    // …and its access token beyond them is gone there too.
    within_a_second(edited, "an access token cut on A, on B", || async {
        let res = get(&c.b, "/api/v1/admin/clients", &token).await;
        match res.status {
            401 => {
                res.expect_problem(401, "invalid_token");
                Ok(())
            }
            200 => Err(res.body),
            _ => panic!("neither working nor refused: {res:?}"),
        }
    })
    .await;
}

// ---------------------------------------------------------------- orders and stock

async fn orders_placed_through_either_process_are_visible_through_both(backend: Backend) {
    let Some(c) = cluster(backend).await else {
        return;
    };
    let mug = s(&create_product(&c.a, &c.admin, "MUG", 10).await["id"]);
    let last = s(&create_product(&c.a, &c.admin, "LAST-ONE", 1).await["id"]);
    register(&c.b, &c.pk, "ann@example.com").await;
    let (token, _) = login(&c.a, &c.pk, "ann@example.com").await;
    register(&c.a, &c.pk, "bob@example.com").await;
    let (bob, _) = login(&c.b, &c.pk, "bob@example.com").await;

    // Both processes have read (and cached) the catalogue.
    let search = "/api/v1/products?q=LAST-ONE";
    for server in [&c.a, &c.b] {
        assert_eq!(stock(server, &c.pk, &mug).await, 10);
        assert_eq!(stock(server, &c.pk, &last).await, 1);
        assert!(
            ids(server, &c.pk, "/api/v1/products?in_stock=true")
                .await
                .contains(&last)
        );
        assert_eq!(ids(server, &c.pk, search).await, [last.as_str()]);
    }

    // Both processes have read (and keep) Ann's orders: none yet.
    for server in [&c.a, &c.b] {
        assert_eq!(
            ids(server, &token, "/api/v1/me/orders").await,
            Vec::<String>::new()
        );
    }

    // An order through A: A shows the stock and lists the order at once,
    // B within a second.
    let first = order(&c.a, &token, &[(&mug, 3)]).await;
    let placed = Instant::now();
    let first_id = s(&first["id"]);
    assert_eq!(stock(&c.a, &c.pk, &mug).await, 7);
    assert_eq!(
        ids(&c.a, &token, "/api/v1/me/orders").await,
        [first_id.as_str()]
    );
    stock_within_a_second(&c.b, &c.pk, placed, "stock after an order on A", &mug, 7).await;
    within_a_second(placed, "an order placed on A, listed by B", || async {
        let listed = ids(&c.b, &token, "/api/v1/me/orders").await;
        if listed == [first_id.as_str()] {
            Ok(())
        } else {
            Err(format!("{listed:?}"))
        }
    })
    .await;
    let res = get(&c.b, &format!("/api/v1/me/orders/{first_id}"), &token).await;
    res.expect(200);
    assert_eq!(res.json(), first);

    // An order through B: the same the other way round.
    let second = order(&c.b, &token, &[(&mug, 2), (&last, 1)]).await;
    let placed = Instant::now();
    let second_id = s(&second["id"]);
    let mut both = vec![first_id.clone(), second_id.clone()];
    both.sort();
    both.reverse();
    assert_eq!(ids(&c.b, &token, "/api/v1/me/orders").await, both);
    within_a_second(placed, "an order placed on B, listed by A", || async {
        let listed = ids(&c.a, &token, "/api/v1/me/orders").await;
        if listed == both {
            Ok(())
        } else {
            Err(format!("{listed:?}"))
        }
    })
    .await;
    assert_eq!(stock(&c.b, &c.pk, &mug).await, 5);
    stock_within_a_second(&c.a, &c.pk, placed, "stock after an order on B", &mug, 5).await;
    stock_within_a_second(
        &c.a,
        &c.pk,
        placed,
        "sold out after an order on B",
        &last,
        0,
    )
    .await;
    for server in [&c.a, &c.b] {
        let mut listed = ids(server, &token, "/api/v1/me/orders").await;
        listed.sort();
        let mut expected = vec![first_id.clone(), second_id.clone()];
        expected.sort();
        assert_eq!(listed, expected);
        let res = get(server, &format!("/api/v1/me/orders/{second_id}"), &token).await;
        res.expect(200);
        assert_eq!(res.json(), second);
        // …and nobody else's.
        assert_eq!(
            ids(server, &bob, "/api/v1/me/orders").await,
            Vec::<String>::new()
        );
        get(server, &format!("/api/v1/me/orders/{second_id}"), &bob)
            .await
            .expect_problem(404, "not_found");
    }

    // Filtered and searched pages on A follow too.
    within_a_second(
        placed,
        "in_stock=true on A drops the sold-out product",
        || async {
            let listed = ids(&c.a, &c.pk, "/api/v1/products?in_stock=true").await;
            if listed.contains(&last) {
                Err(format!("{listed:?}"))
            } else {
                Ok(())
            }
        },
    )
    .await;
    let res = get(&c.a, search, &c.pk).await;
    res.expect(200);
    assert_eq!(res.json()["data"][0]["stock"], 0);

    // Placing an order checks stock in the database, whichever process.
    let res =
        c.a.call(
            "POST",
            "/api/v1/orders",
            Some(&token),
            Some(&json!({"items": [{"product_id": last, "quantity": 1}]})),
        )
        .await;
    res.expect_problem(409, "insufficient_stock");
}

// ---------------------------------------------------------------- catalogue

async fn product_written_through_one_process_is_served_by_the_other_within_a_second(
    backend: Backend,
) {
    let Some(c) = cluster(backend).await else {
        return;
    };
    // B has the (empty) first page cached.
    for _ in 0..2 {
        assert_eq!(
            ids(&c.b, &c.pk, "/api/v1/products").await,
            Vec::<String>::new()
        );
    }
    let created = create_product(&c.a, &c.admin, "TEE", 5).await;
    let since = Instant::now();
    let id = s(&created["id"]);
    within_a_second(since, "a product created on A, listed by B", || async {
        let listed = ids(&c.b, &c.pk, "/api/v1/products").await;
        if listed == [id.as_str()] {
            Ok(())
        } else {
            Err(format!("{listed:?}"))
        }
    })
    .await;
    let res = get(&c.b, &format!("/api/v1/products/{id}"), &c.pk).await;
    res.expect(200);
    assert_eq!(res.json(), created);

    // A price change and a restock through B reach A.
    assert_eq!(stock(&c.a, &c.pk, &id).await, 5);
    let res =
        c.b.call(
            "PATCH",
            &format!("/api/v1/admin/products/{id}"),
            Some(&c.admin),
            Some(&json!({"price": {"amount": 1500, "currency": "EUR"}, "stock": 9})),
        )
        .await;
    res.expect(200);
    let since = Instant::now();
    within_a_second(since, "a product changed on B, shown by A", || async {
        let res = get(&c.a, &format!("/api/v1/products/{id}"), &c.pk).await;
        res.expect(200);
        let product = res.json();
        if product["price"]["amount"] == 1500 && product["stock"] == 9 {
            Ok(())
        } else {
            Err(product.to_string())
        }
    })
    .await;
}

/// Orders race through both processes on a few products. However their
/// commits interleave, once the last one is answered both processes show
/// the stock the database holds within a second.
async fn concurrent_orders_through_both_processes_leave_both_catalogues_fresh(backend: Backend) {
    let Some(c) = cluster(backend).await else {
        return;
    };
    const PRODUCTS: usize = 4;
    const ORDERS_PER_TASK: usize = 12;
    const TASKS_PER_SERVER: usize = 4;
    let mut products = Vec::new();
    for n in 0..PRODUCTS {
        let sku = format!("SKU-{n}");
        products.push(s(&create_product(&c.a, &c.admin, &sku, 1000).await["id"]));
    }
    register(&c.a, &c.pk, "ann@example.com").await;
    let (token, _) = login(&c.a, &c.pk, "ann@example.com").await;

    let mut sold = [0i64; PRODUCTS];
    for round in 0..3 {
        // Both processes have the catalogue cached.
        for server in [&c.a, &c.b] {
            for id in &products {
                stock(server, &c.pk, id).await;
            }
        }
        let mut tasks = Vec::new();
        for task in 0..2 * TASKS_PER_SERVER {
            let lines: Vec<(usize, i64)> = (0..ORDERS_PER_TASK)
                .map(|n| ((task + n + round) % PRODUCTS, 1 + (n % 3) as i64))
                .collect();
            for (product, quantity) in &lines {
                sold[*product] += quantity;
            }
            let server = if task % 2 == 0 { &c.a } else { &c.b };
            let (token, products) = (token.clone(), products.clone());
            tasks.push(async move {
                for (product, quantity) in lines {
                    order(server, &token, &[(&products[product], quantity)]).await;
                }
            });
        }
        futures::future::join_all(tasks).await;
        let done = Instant::now();
        for (server, name) in [(&c.a, "A"), (&c.b, "B")] {
            for (n, id) in products.iter().enumerate() {
                let what = format!("round {round}: stock of product {n} on {name}");
                stock_within_a_second(server, &c.pk, done, &what, id, 1000 - sold[n]).await;
            }
        }
    }
}

// ---------------------------------------------------------------- the change feed

/// Servers' clocks differ a little, and a write is stamped before its
/// transaction waits for locks: the feed must not take "the newest stamp
/// did not move" for "nothing changed". Here another server, whose clock
/// runs two seconds ahead, has just written a product and revoked a key.
async fn changes_stamped_by_a_clock_running_ahead_are_not_missed(backend: Backend) {
    let Some(c) = cluster(backend).await else {
        return;
    };
    let mug = s(&create_product(&c.a, &c.admin, "MUG", 10).await["id"]);
    let other = s(&create_product(&c.a, &c.admin, "OTHER", 10).await["id"]);
    register(&c.a, &c.pk, "ann@example.com").await;
    let (token, _) = login(&c.a, &c.pk, "ann@example.com").await;
    let (doomed, doomed_id) = login(&c.a, &c.pk, "ann@example.com").await;
    // Both servers have the products and the credentials cached.
    for server in [&c.a, &c.b] {
        for id in [&mug, &other] {
            assert_eq!(stock(server, &c.pk, id).await, 10);
        }
        get(server, "/api/v1/me", &doomed).await.expect(200);
        get(server, "/api/v1/products", &c.pk).await.expect(200);
    }
    let misses = [cache_misses(&c.a).await, cache_misses(&c.b).await];

    // The server whose clock runs ahead, straight in the database: it sold
    // one of the other product and revoked something.
    let ahead = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let ahead_micros = (ahead.unix_timestamp_nanos() / 1000) as i64;
    let db = connect(&c.url).await;
    sqlx::query("UPDATE products SET stock = stock - 1, updated_at = $1 WHERE id = $2")
        .bind(ahead_micros)
        .bind(other.clone())
        .execute(&db)
        .await
        .unwrap();
    // A credential change moves jeton-auth's counter, which no clock
    // stamps.
    sqlx::query("UPDATE auth_changes SET generation = generation + 1")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let since = Instant::now();
    // Both servers take both in (their caches were emptied).
    for (server, misses) in [(&c.a, misses[0]), (&c.b, misses[1])] {
        stock_within_a_second(server, &c.pk, since, "a write from ahead", &other, 9).await;
        within_a_second(since, "a credential change from ahead", || async {
            get(server, "/api/v1/products", &c.pk).await.expect(200);
            let now = cache_misses(server).await;
            if now > misses {
                Ok(())
            } else {
                Err(format!("{now} cache misses"))
            }
        })
        .await;
    }

    // Now, within those two seconds, this machine's writes: stamped
    // earlier than what the feed has already seen.
    for server in [&c.a, &c.b] {
        assert_eq!(stock(server, &c.pk, &mug).await, 10);
        get(server, "/api/v1/me", &doomed).await.expect(200);
    }
    order(&c.a, &token, &[(&mug, 1)]).await;
    let placed = Instant::now();
    stock_within_a_second(&c.b, &c.pk, placed, "an order on A, on B", &mug, 9).await;
    // A revocation on the command line reaches both servers.
    jeton(&c.url, &["token", "revoke", &doomed_id]).ok();
    let revoked = Instant::now();
    for server in [&c.a, &c.b] {
        refused_within_a_second(server, revoked, "a token revoked on the CLI", &doomed).await;
    }
    assert!(
        time::OffsetDateTime::now_utc() < ahead,
        "too slow to show anything: the clock ahead was caught up with"
    );
}

/// Logging in writes no credential change: a burst of logins on A leaves
/// B's cached credentials warm. (Revocations, rotations and new clients
/// are what the feed carries.)
async fn logins_do_not_cool_the_other_processs_verification_cache(backend: Backend) {
    let Some(c) = cluster(backend).await else {
        return;
    };
    register(&c.a, &c.pk, "ann@example.com").await;
    // B has both keys cached.
    for key in [&c.pk, &c.admin] {
        get(&c.b, "/api/v1/products", key).await.expect(200);
        get(&c.b, "/api/v1/products", key).await.expect(200);
    }
    let misses = cache_misses(&c.b).await;
    for _ in 0..3 {
        login(&c.a, &c.pk, "ann@example.com").await;
    }
    // B's change watcher has looked at the feed since the logins: it has
    // seen two product writes made after them, one after the other.
    for sku in ["FIRST", "SECOND"] {
        let since = Instant::now();
        let id = s(&create_product(&c.a, &c.admin, sku, 1).await["id"]);
        within_a_second(since, "B sees the product", || async {
            let listed = ids(&c.b, &c.admin, "/api/v1/products?limit=100").await;
            if listed.contains(&id) {
                Ok(())
            } else {
                Err(format!("{listed:?}"))
            }
        })
        .await;
    }
    get(&c.b, "/api/v1/products", &c.pk).await.expect(200);
    assert_eq!(
        cache_misses(&c.b).await,
        misses,
        "B's verification cache was emptied though no credential changed"
    );
}

/// `jeton_auth_cache_total{result="miss"}` on `server`.
async fn cache_misses(server: &Server) -> u64 {
    let (status, text) = server.get("/metrics", &[]).await;
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find(|line| {
            line.starts_with("jeton_auth_cache_total{") && line.contains("result=\"miss\"")
        })
        .and_then(|line| line.rsplit(' ').next())
        .map_or(0, |value| value.parse().unwrap())
}

// ---------------------------------------------------------------- staff

/// Signs in through `server`: (the `Cookie` header, the CSRF token). On a
/// connection of its own: the shared helpers lower-case the head, and the
/// session's token is in a header's value.
async fn staff_sign_in(server: &Server, email: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let body = json!({"email": email, "password": PASSWORD}).to_string();
    let request = format!(
        "POST /api/v1/staff/login HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 201"), "{answer}");
    let cookie = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            let value = value.trim();
            (name.eq_ignore_ascii_case("set-cookie") && value.starts_with("jeton_staff="))
                .then(|| value.split(';').next().unwrap().to_owned())
        })
        .expect("the session cookie");
    let body: Value = serde_json::from_str(body).expect("a JSON body");
    (cookie, s(&body["csrf_token"]))
}

/// Cancels an order no one placed with a staff session: 404 when the
/// session may cancel orders, 403 when it may not, 401 when it is over.
async fn cancel_nothing(server: &Server, (cookie, csrf): &(String, String)) -> u16 {
    let headers = [
        ("cookie", cookie.as_str()),
        ("x-csrf-token", csrf.as_str()),
        ("content-type", "application/json"),
    ];
    let path = "/api/v1/admin/orders/01890a5d-ac96-774b-bcce-b302099a8057/cancel";
    crate::support::process::http_with_body(server.addr, "POST", path, &headers, Some(b"{}"))
        .await
        .unwrap()
        .0
}

/// A role change and a disable, made by the command line (a process of its
/// own), reach a live staff session on either server within a second.
async fn a_staff_role_change_and_a_disable_reach_every_process_within_a_second(backend: Backend) {
    let Some(c) = cluster(backend).await else {
        return;
    };
    crate::support::process::staff_created(
        &c.url,
        "support@shop.example",
        "Staff",
        "support",
        PASSWORD,
    );
    let on_a = staff_sign_in(&c.a, "support@shop.example").await;
    let on_b = staff_sign_in(&c.b, "support@shop.example").await;
    // Support may cancel orders: the unknown one is 404 on both.
    assert_eq!(cancel_nothing(&c.a, &on_a).await, 404);
    assert_eq!(cancel_nothing(&c.b, &on_b).await, 404);

    jeton(
        &c.url,
        &[
            "staff",
            "role",
            "--email",
            "support@shop.example",
            "--role",
            "viewer",
        ],
    )
    .ok();
    let changed = Instant::now();
    for (server, session) in [(&c.a, &on_a), (&c.b, &on_b)] {
        within_a_second(changed, "the role change", || async {
            match cancel_nothing(server, session).await {
                403 => Ok(()),
                other => Err(other.to_string()),
            }
        })
        .await;
    }

    jeton(
        &c.url,
        &["staff", "disable", "--email", "support@shop.example"],
    )
    .ok();
    let disabled = Instant::now();
    for (server, session) in [(&c.a, &on_a), (&c.b, &on_b)] {
        within_a_second(disabled, "the disable", || async {
            match cancel_nothing(server, session).await {
                401 => Ok(()),
                other => Err(other.to_string()),
            }
        })
        .await;
    }
}
