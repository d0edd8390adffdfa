//! The admin abilities (API.md §3 and §13): each admin route needs its own,
//! `admin` grants all of them but `staff:manage`, `*` grants all, and no
//! `resource:*` wildcard grants any; nobody grants what they don't hold;
//! OAuth scopes follow the same rules.

use axum::http::Method;
use jeton::{domain::abilities, domain::client::ClientKind, http::routes};
use serde_json::{Value, json};

use crate::{
    on_both_databases,
    support::{Req, Res, TestApp, s},
};

/// API.md §13's table, for the routes the table has: method, path, the
/// one ability each needs.
const ADMIN_TABLE: [(&str, &str, &str); 34] = [
    ("GET", "/admin/clients", "clients:read"),
    ("GET", "/admin/clients/{id}", "clients:read"),
    ("POST", "/admin/clients", "clients:write"),
    ("PATCH", "/admin/clients/{id}", "clients:write"),
    ("POST", "/admin/clients/{id}/keys", "clients:write"),
    ("DELETE", "/admin/clients/{id}", "clients:write"),
    ("GET", "/admin/products", "products:write"),
    ("POST", "/admin/products", "products:write"),
    ("PATCH", "/admin/products/{id}", "products:write"),
    ("GET", "/admin/customers", "customers:read"),
    ("GET", "/admin/customers/{id}", "customers:read"),
    ("GET", "/admin/customers/{id}/tokens", "customers:read"),
    (
        "POST",
        "/admin/customers/{id}/revoke-tokens",
        "customers:revoke",
    ),
    ("GET", "/admin/orders", "orders:read_all"),
    ("POST", "/admin/orders/{id}/cancel", "orders:cancel"),
    ("GET", "/admin/audit", "audit:read"),
    ("POST", "/admin/leaks", "clients:write"),
    ("GET", "/admin/usage", "usage:read"),
    ("GET", "/admin/usage/top", "usage:read"),
    ("GET", "/admin/clients/{id}/usage", "usage:read"),
    ("GET", "/admin/customers/{id}/usage", "usage:read"),
    ("GET", "/admin/staff", "staff:manage"),
    ("POST", "/admin/staff", "staff:manage"),
    ("PATCH", "/admin/staff/{id}", "staff:manage"),
    ("POST", "/admin/staff/{id}/reset-mfa", "staff:manage"),
    ("POST", "/admin/webhooks", "clients:write"),
    ("GET", "/admin/webhooks", "clients:read"),
    ("GET", "/admin/webhooks/{id}", "clients:read"),
    ("PATCH", "/admin/webhooks/{id}", "clients:write"),
    ("DELETE", "/admin/webhooks/{id}", "clients:write"),
    (
        "POST",
        "/admin/webhooks/{id}/rotate-secret",
        "clients:write",
    ),
    ("GET", "/admin/webhooks/{id}/deliveries", "clients:read"),
    (
        "POST",
        "/admin/webhooks/{id}/deliveries/{delivery_id}/retry",
        "clients:write",
    ),
    ("POST", "/admin/webhooks/{id}/test", "clients:write"),
];

/// Every admin ability, as API.md §3 lists them.
const ADMIN_ABILITIES: [&str; 10] = [
    "clients:read",
    "clients:write",
    "products:write",
    "customers:read",
    "customers:revoke",
    "orders:read_all",
    "orders:cancel",
    "audit:read",
    "usage:read",
    "staff:manage",
];

/// A pure check: it needs no database.
#[test]
fn every_admin_route_needs_the_ability_of_the_table() {
    let table = routes::api();
    let mut actual: Vec<(String, String, String, String)> = table
        .entries()
        .iter()
        .filter(|entry| entry.path.starts_with("/admin/"))
        .map(|entry| {
            (
                entry.method.to_string(),
                entry.path.to_owned(),
                entry.access.kinds.describe(),
                entry
                    .access
                    .ability
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            )
        })
        .collect();
    let mut expected: Vec<(String, String, String, String)> = ADMIN_TABLE
        .iter()
        .map(|(method, path, ability)| {
            (
                method.to_string(),
                path.to_string(),
                "sk | at | st".to_owned(),
                ability.to_string(),
            )
        })
        .collect();
    actual.sort();
    expected.sort();
    assert_eq!(actual, expected);
    // The app's constants are the contract's list.
    assert_eq!(
        abilities::ADMIN_ABILITIES.map(|ability| ability.to_string()),
        ADMIN_ABILITIES.map(str::to_owned)
    );
}

on_both_databases!(
    each_admin_ability_reaches_its_routes_and_only_them,
    admin_reaches_every_admin_route_and_star_too,
    stored_wildcards_gain_no_admin_ability,
    the_api_refuses_wildcards_that_grant_nothing,
    granting_needs_holding_by_the_same_rules,
    rotating_needs_holding_what_the_client_holds,
    oauth_scopes_follow_the_same_rules,
);

// ---------------------------------------------------------------- helpers

/// A request for a row of the table, with a fresh id and `{}` as the body
/// of a POST or PATCH.
fn row_request<'a>(app: &'a TestApp, method: &str, path: &str) -> Req<'a> {
    let path = path.replace("{id}", &jeton::domain::ids::new_id());
    let method: Method = method.parse().unwrap();
    let req = app.req(method.clone(), &format!("/api/v1{path}"));
    if method == Method::POST || method == Method::PATCH {
        req.json(json!({}))
    } else {
        req
    }
}

/// Past the guard: whatever the handler says, not an authentication
/// refusal nor a failure.
#[track_caller]
fn expect_reached(res: &Res, what: &str) {
    assert!(
        !matches!(res.status.as_u16(), 401 | 403) && res.status.as_u16() < 500,
        "{what}: {} {}",
        res.status,
        res.text()
    );
}

/// 403 `insufficient_scope`, naming `ability` in the challenge's `scope`
/// and in the body's detail.
#[track_caller]
fn expect_needs(res: &Res, ability: &str, what: &str) {
    assert_eq!(res.status.as_u16(), 403, "{what}: {}", res.text());
    res.expect_problem(403, "insufficient_scope");
    assert_eq!(
        res.header("www-authenticate"),
        Some(format!(
            r#"Bearer realm="jeton", error="insufficient_scope", scope="{ability}""#
        )),
        "{what}"
    );
    let detail = s(&res.json()["detail"]);
    assert!(detail.contains(&format!("`{ability}`")), "{what}: {detail}");
}

/// A secret key holding `abilities`, made straight in the store (as the
/// command line or an older release would have it): (client id, key).
async fn secret(app: &TestApp, abilities: &[&str]) -> (String, String) {
    app.client(ClientKind::Secret, abilities, &[]).await
}

fn secret_body(abilities: &[&str]) -> Value {
    json!({"name": "Granted", "kind": "secret", "abilities": abilities})
}

// ---------------------------------------------------------------- the routes

async fn each_admin_ability_reaches_its_routes_and_only_them(app: TestApp) {
    for held in ADMIN_ABILITIES {
        let (_, key) = secret(&app, &[held]).await;
        for (method, path, needed) in ADMIN_TABLE {
            let what = format!("{held} on {method} {path}");
            let res = row_request(&app, method, path).bearer(&key).send().await;
            if held == needed {
                expect_reached(&res, &what);
            } else {
                expect_needs(&res, needed, &what);
            }
        }
    }
    // An access token of such a key holds its scope, and reaches the same.
    let (client_id, key) = secret(&app, &["audit:read"]).await;
    let token = app.access_token(&client_id, &key, None).await;
    app.get_as("/api/v1/admin/audit", &token).await.expect(200);
    expect_needs(
        &app.get_as("/api/v1/admin/clients", &token).await,
        "clients:read",
        "an audit:read access token",
    );
}

async fn admin_reaches_every_admin_route_and_star_too(app: TestApp) {
    let admin = app.admin_key().await;
    let (_, star) = secret(&app, &["*"]).await;
    let (_, all) = secret(&app, &ADMIN_ABILITIES).await;
    for (name, key) in [("admin", &admin), ("*", &star), ("all ten", &all)] {
        for (method, path, ability) in ADMIN_TABLE {
            let res = row_request(&app, method, path).bearer(key).send().await;
            if name == "admin" && ability == "staff:manage" {
                expect_needs(&res, ability, "admin");
                continue;
            }
            expect_reached(&res, &format!("{name} on {method} {path}"));
        }
    }
}

// ---------------------------------------------------------------- wildcards

/// A key stored with wildcards over the admin abilities' resources (which
/// the API no longer creates) gains none of them.
async fn stored_wildcards_gain_no_admin_ability(app: TestApp) {
    let wildcards = [
        "clients:*",
        "products:*",
        "customers:*",
        "orders:*",
        "audit:*",
        "usage:*",
        "staff:*",
        "tokens:*",
    ];
    let (client_id, key) = secret(&app, &wildcards).await;
    for (method, path, needed) in ADMIN_TABLE {
        let res = row_request(&app, method, path).bearer(&key).send().await;
        expect_needs(&res, needed, &format!("{method} {path}"));
    }
    // Still what the wildcards meant before: products:read, for one.
    app.get_as("/api/v1/products", &key).await.expect(200);
    // Nor through an access token: the scope asked for is refused, and the
    // default scope (all the client holds) reaches no admin route.
    let res = app
        .token_request(
            &client_id,
            &key,
            "grant_type=client_credentials&scope=clients%3Aread",
        )
        .await;
    res.expect(400);
    assert_eq!(res.json()["error"], "invalid_scope");
    let token = app.access_token(&client_id, &key, None).await;
    expect_needs(
        &app.get_as("/api/v1/admin/audit", &token).await,
        "audit:read",
        "the access token of a wildcard client",
    );
}

async fn the_api_refuses_wildcards_that_grant_nothing(app: TestApp) {
    let admin = app.admin_key().await;
    for wildcard in ["clients:*", "audit:*", "usage:*", "staff:*"] {
        let res = app.create_client(&admin, secret_body(&[wildcard])).await;
        res.expect_invalid("abilities");
        let body = res.json();
        assert!(
            body.to_string().contains("named one by one"),
            "{wildcard}: {body}"
        );
    }
    // `orders:*` still means orders:read and orders:write.
    app.create_client(&admin, secret_body(&["orders:*"]))
        .await
        .expect(201);
    // And the OAuth metadata offers each admin ability, no such wildcard.
    let metadata = app
        .get("/.well-known/oauth-authorization-server")
        .send()
        .await;
    metadata.expect(200);
    let scopes = metadata.json()["scopes_supported"].clone();
    let scopes: Vec<&str> = scopes
        .as_array()
        .unwrap()
        .iter()
        .map(|scope| scope.as_str().unwrap())
        .collect();
    for ability in ADMIN_ABILITIES.iter().chain(&["admin", "orders:*"]) {
        assert!(scopes.contains(ability), "{ability} in {scopes:?}");
    }
    assert!(!scopes.contains(&"clients:*"), "{scopes:?}");
}

// ---------------------------------------------------------------- granting

async fn granting_needs_holding_by_the_same_rules(app: TestApp) {
    let admin = app.admin_key().await;
    let (_, writer) = secret(&app, &["clients:write"]).await;
    let (_, star) = secret(&app, &["*"]).await;
    let storefront = [
        "products:read",
        "customers:create",
        "auth:login",
        "orders:*",
        "tokens:manage",
    ];
    let all_but_staff: Vec<&str> = ADMIN_ABILITIES
        .into_iter()
        .filter(|ability| *ability != "staff:manage")
        .collect();
    // `admin` grants what it holds: its admin abilities and itself.
    for granted in [
        &["clients:read"][..],
        &["admin"],
        &all_but_staff,
        &storefront,
    ] {
        app.create_client(&admin, secret_body(granted))
            .await
            .expect(201);
    }
    // Not what it does not hold.
    for (granted, needed) in [
        (&["staff:manage"][..], "staff:manage"),
        (&["*"], "*"),
        (&["clients:read", "tokens:introspect"], "tokens:introspect"),
    ] {
        let res = app.create_client(&admin, secret_body(granted)).await;
        expect_needs(&res, needed, &format!("admin granting {granted:?}"));
    }
    // `clients:write` alone grants the storefront's and customers' abilities.
    app.create_client(&writer, secret_body(&storefront))
        .await
        .expect(201);
    app.create_client(
        &writer,
        json!({"name": "Shop", "kind": "publishable", "abilities": ["products:read", "auth:login"],
               "allowed_origins": ["https://shop.example"]}),
    )
    .await
    .expect(201);
    for needed in [
        "admin",
        "clients:read",
        "orders:cancel",
        "tokens:introspect",
        "*",
    ] {
        let res = app.create_client(&writer, secret_body(&[needed])).await;
        expect_needs(&res, needed, &format!("clients:write granting {needed}"));
    }
    // What it holds itself, it may grant.
    app.create_client(&writer, secret_body(&["clients:write", "orders:*"]))
        .await
        .expect(201);
    // `*` grants everything.
    for granted in [&["staff:manage"][..], &["*"], &ADMIN_ABILITIES] {
        app.create_client(&star, secret_body(granted))
            .await
            .expect(201);
    }
}

async fn rotating_needs_holding_what_the_client_holds(app: TestApp) {
    let admin = app.admin_key().await;
    let (_, writer) = secret(&app, &["clients:write"]).await;
    let (_, star) = secret(&app, &["*"]).await;
    let (staff_id, _) = secret(&app, &["staff:manage"]).await;
    let (reader_id, _) = secret(&app, &["clients:read"]).await;
    let (old_id, _) = secret(&app, &["clients:*", "orders:*"]).await;
    let (shop_id, _) = secret(&app, &["products:read", "orders:*"]).await;
    let rotate = |caller: &str, id: &str| {
        let (caller, id) = (caller.to_owned(), id.to_owned());
        let app = &app;
        async move { app.rotate(&caller, &id, json!({})).await }
    };
    expect_needs(
        &rotate(&admin, &staff_id).await,
        "staff:manage",
        "admin rotating staff:manage",
    );
    rotate(&admin, &reader_id).await.expect(201);
    expect_needs(
        &rotate(&writer, &reader_id).await,
        "clients:read",
        "clients:write rotating clients:read",
    );
    // A stored wildcard that grants nothing more is anyone's to rotate.
    rotate(&writer, &old_id).await.expect(201);
    rotate(&writer, &shop_id).await.expect(201);
    rotate(&star, &staff_id).await.expect(201);
}

// ---------------------------------------------------------------- OAuth

async fn oauth_scopes_follow_the_same_rules(app: TestApp) {
    let scope_request = |id: &str, key: &str, scope: &str| {
        let body = format!(
            "grant_type=client_credentials&scope={}",
            crate::support::enc(scope)
        );
        let (id, key) = (id.to_owned(), key.to_owned());
        let app = &app;
        async move { app.token_request(&id, &key, &body).await }
    };
    let refused = |res: Res, what: &str| {
        assert_eq!(res.status.as_u16(), 400, "{what}: {}", res.text());
        assert_eq!(res.json()["error"], "invalid_scope", "{what}");
    };

    // `admin` may ask for one of its admin abilities, and the token holds
    // just that one at the routes.
    let (admin_id, admin) = secret(&app, &["admin"]).await;
    let token = app
        .access_token(&admin_id, &admin, Some("clients:read"))
        .await;
    app.get_as("/api/v1/admin/clients", &token)
        .await
        .expect(200);
    expect_needs(
        &app.get_as("/api/v1/admin/audit", &token).await,
        "audit:read",
        "a clients:read token",
    );
    // An access token grants no more than its scope.
    expect_needs(
        &app.create_client(&token, secret_body(&["products:read"]))
            .await,
        "clients:write",
        "a clients:read token creating a client",
    );
    let writer = app
        .access_token(&admin_id, &admin, Some("clients:write"))
        .await;
    expect_needs(
        &app.create_client(&writer, secret_body(&["clients:read"]))
            .await,
        "clients:read",
        "a clients:write token granting clients:read",
    );
    app.create_client(&writer, secret_body(&["products:read"]))
        .await
        .expect(201);
    for beyond in ["staff:manage", "*", "clients:read staff:manage"] {
        refused(
            scope_request(&admin_id, &admin, beyond).await,
            &format!("admin asking for {beyond}"),
        );
    }

    // `orders:*` asks for orders:read, not orders:cancel.
    let (orders_id, orders) = secret(&app, &["orders:*"]).await;
    app.access_token(&orders_id, &orders, Some("orders:read"))
        .await;
    for beyond in ["orders:cancel", "orders:read_all"] {
        refused(
            scope_request(&orders_id, &orders, beyond).await,
            &format!("orders:* asking for {beyond}"),
        );
    }

    // `*` may ask for staff management.
    let (star_id, star) = secret(&app, &["*"]).await;
    app.access_token(&star_id, &star, Some("staff:manage orders:cancel"))
        .await;
}
