//! Authentication outcomes and the access matrix: what each kind of
//! credential gets on every route, driven by the route table (deny by
//! default), and the route table itself against the contract.

use axum::http::Method;
use jeton::identity::TOKENS;
use jeton::{
    domain::{abilities, client::ClientKind},
    http::routes,
    store::user_tokens::NewUserToken,
};
use jeton_auth::{Ability, AbilitySet, TokenKind};
use serde_json::json;

use crate::{
    on_both_databases,
    support::{PASSWORD, Req, Res, STORE_TABLES, TestApp, USER_ABILITIES},
};

const CHALLENGE: &str = r#"Bearer realm="jeton""#;
const CHALLENGE_INVALID_REQUEST: &str = r#"Bearer realm="jeton", error="invalid_request""#;
const CHALLENGE_INVALID_TOKEN: &str = r#"Bearer realm="jeton", error="invalid_token""#;

fn challenge_insufficient_scope(ability: &str) -> String {
    format!(r#"Bearer realm="jeton", error="insufficient_scope", scope="{ability}""#)
}

// ---------------------------------------------------------------- helpers

/// Asserts a problem with this status, code and `WWW-Authenticate` value.
#[track_caller]
fn expect_auth(res: &Res, status: u16, code: &str, challenge: &str) {
    res.expect_problem(status, code);
    assert_eq!(
        res.header("www-authenticate").as_deref(),
        Some(challenge),
        "WWW-Authenticate for {code}"
    );
}

#[track_caller]
fn expect_unauthenticated(res: &Res) {
    expect_auth(res, 401, "unauthenticated", CHALLENGE);
}

#[track_caller]
fn expect_invalid_request(res: &Res) {
    expect_auth(res, 400, "invalid_request", CHALLENGE_INVALID_REQUEST);
}

#[track_caller]
fn expect_invalid_token(res: &Res) {
    expect_auth(res, 401, "invalid_token", CHALLENGE_INVALID_TOKEN);
}

#[track_caller]
fn expect_insufficient_scope(res: &Res, ability: &str) {
    expect_auth(
        res,
        403,
        "insufficient_scope",
        &challenge_insufficient_scope(ability),
    );
}

/// What a wrong-kind refusal says a route takes.
const USER_ONLY: &str = "this route takes a user token";
const CLIENTS_ONLY: &str = "this route takes a publishable key, a secret key or an access token";
/// The admin routes: a secret key, its access tokens, or a staff session.
const SECRET_ONLY: &str = "this route takes a secret key, an access token or a staff session";

/// A token of a kind the route does not take: 403 `insufficient_scope`,
/// a challenge without `scope` (no ability would help), and a detail that
/// names the kinds the route takes.
#[track_caller]
fn expect_wrong_kind(res: &Res, detail: &str) {
    expect_auth(
        res,
        403,
        "insufficient_scope",
        r#"Bearer realm="jeton", error="insufficient_scope""#,
    );
    assert_eq!(res.json()["detail"], detail);
}

/// The same token with one character of its random part changed, so the
/// CRC32 no longer matches.
fn with_bad_checksum(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    bytes[10] = if bytes[10] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).unwrap()
}

/// A user token inserted straight into the store.
async fn user_token_in_store(
    app: &TestApp,
    customer_id: &str,
    abilities: &[&str],
    expires_at: Option<time::OffsetDateTime>,
) -> String {
    let token = TOKENS.generate(TokenKind::User);
    let abilities = AbilitySet::new(abilities.iter().map(|a| a.parse().unwrap()));
    app.db
        .insert_user_token(
            &token,
            NewUserToken {
                customer_id: &customer_id.parse().expect("a customer id"),
                client_id: None,
                name: "made in a test",
                abilities: &abilities,
                expires_at,
            },
            &jeton::store::audit::Audit::cli(),
        )
        .await
        .unwrap();
    token.expose_secret().to_owned()
}

/// Every ability a storefront or a customer uses: no admin ability.
const ALL_BUT_ADMIN: [&str; 7] = [
    "products:read",
    "customers:create",
    "auth:login",
    "profile:read",
    "orders:read",
    "orders:write",
    "tokens:manage",
];

/// The route-table path with `{id}` replaced by a fresh id.
fn concrete(path: &str) -> String {
    path.replace("{id}", &jeton::domain::ids::new_id())
        .replace("{delivery_id}", &jeton::domain::ids::new_id())
}

/// A request for a route-table row: `{}` as JSON for POST and PATCH.
fn table_request<'a>(app: &'a TestApp, method: &Method, path: &str) -> Req<'a> {
    let req = app.req(method.clone(), &format!("/api/v1{}", concrete(path)));
    if *method == Method::POST || *method == Method::PATCH {
        req.json(json!({}))
    } else {
        req
    }
}

// ================================================================ §4 outcomes

on_both_databases!(
    no_authorization_header_is_unauthenticated,
    another_scheme_is_unauthenticated,
    scheme_is_matched_case_insensitively,
    bearer_without_token_is_invalid_request,
    two_tokens_in_one_header_is_invalid_request,
    two_authorization_headers_is_invalid_request,
    access_token_in_query_is_invalid_request,
    malformed_tokens_are_invalid_token,
    unknown_tokens_are_invalid_token,
    logged_out_user_token_is_invalid_token_like_an_unknown_one,
    revoked_client_keys_are_invalid_token_like_an_unknown_one,
    expired_user_token_is_invalid_token,
    token_created_with_one_second_lifetime_expires,
    wrong_kind_is_insufficient_scope,
    missing_ability_is_insufficient_scope,
    user_token_with_star_is_capped_by_the_user_ceiling,
);

async fn no_authorization_header_is_unauthenticated(app: TestApp) {
    expect_unauthenticated(&app.get("/api/v1/products").send().await);
    expect_unauthenticated(&app.get("/api/v1/me").send().await);
    expect_unauthenticated(
        &app.post("/api/v1/orders")
            .json(json!({"items": []}))
            .send()
            .await,
    );
    expect_unauthenticated(&app.get("/api/v1/admin/clients").send().await);
}

async fn another_scheme_is_unauthenticated(app: TestApp) {
    let pk = app.publishable_key().await;
    for value in [
        "Basic dXNlcjpwYXNzd29yZA==".to_owned(),
        format!("Basic {pk}"),
        format!("Token {pk}"),
        format!("Bearer-ish {pk}"),
        pk.clone(),
    ] {
        let res = app
            .get("/api/v1/products")
            .header("authorization", &value)
            .send()
            .await;
        expect_unauthenticated(&res);
        assert!(!res.text().contains(&pk), "the body never echoes a token");
    }
}

async fn scheme_is_matched_case_insensitively(app: TestApp) {
    let pk = app.publishable_key().await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        app.get("/api/v1/products")
            .header("authorization", &format!("{scheme} {pk}"))
            .send()
            .await
            .expect(200);
    }
}

async fn bearer_without_token_is_invalid_request(app: TestApp) {
    for value in ["Bearer", "Bearer ", "Bearer    ", "bearer"] {
        let res = app
            .get("/api/v1/products")
            .header("authorization", value)
            .send()
            .await;
        expect_invalid_request(&res);
    }
}

async fn two_tokens_in_one_header_is_invalid_request(app: TestApp) {
    let pk = app.publishable_key().await;
    let sk = app.admin_key().await;
    for value in [
        format!("Bearer {pk} {sk}"),
        format!("Bearer {pk} {pk}"),
        format!("Bearer {pk}, Bearer {sk}"),
        format!("Bearer {pk},{sk}"),
    ] {
        let res = app
            .get("/api/v1/products")
            .header("authorization", &value)
            .send()
            .await;
        expect_invalid_request(&res);
        assert!(!res.text().contains(&pk) && !res.text().contains(&sk));
    }
}

async fn two_authorization_headers_is_invalid_request(app: TestApp) {
    let pk = app.publishable_key().await;
    let sk = app.admin_key().await;
    // Two good keys, the same key twice, or a good key and garbage.
    for (first, second) in [
        (format!("Bearer {pk}"), format!("Bearer {sk}")),
        (format!("Bearer {pk}"), format!("Bearer {pk}")),
        (format!("Bearer {sk}"), "Basic dXNlcjpwYXNz".to_owned()),
    ] {
        let res = app
            .get("/api/v1/products")
            .header("authorization", &first)
            .header("authorization", &second)
            .send()
            .await;
        expect_invalid_request(&res);
    }
}

async fn access_token_in_query_is_invalid_request(app: TestApp) {
    let pk = app.publishable_key().await;
    // Without a header, with a good header, and among other parameters.
    expect_invalid_request(
        &app.get(&format!("/api/v1/products?access_token={pk}"))
            .send()
            .await,
    );
    expect_invalid_request(
        &app.get_as(&format!("/api/v1/products?access_token={pk}"), &pk)
            .await,
    );
    expect_invalid_request(
        &app.get_as(&format!("/api/v1/products?limit=5&access_token={pk}"), &pk)
            .await,
    );
    expect_invalid_request(&app.get_as("/api/v1/products?access_token=", &pk).await);
    // On a write too, and nothing is written.
    let before = app.row_counts(&STORE_TABLES).await;
    expect_invalid_request(
        &app.post_json_as(
            &format!("/api/v1/customers?access_token={pk}"),
            &pk,
            json!({"email": "q@example.com", "password": PASSWORD, "name": "Q"}),
        )
        .await,
    );
    assert_eq!(app.row_counts(&STORE_TABLES).await, before);
    // A parameter merely containing the name is not the token parameter.
    app.get_as("/api/v1/products?q=access_token", &pk)
        .await
        .expect(200);
}

async fn malformed_tokens_are_invalid_token(app: TestApp) {
    let pk = app.publishable_key().await;
    let sk = app.admin_key().await;
    let (_, ut) = app.customer("mal@example.com").await;
    let unknown = TOKENS.generate(TokenKind::User);
    let unknown_body = app
        .get_as("/api/v1/me", unknown.expose_secret())
        .await
        .json();
    for good in [&pk, &sk, &ut] {
        let bad_prefix = format!("jt_xx_{}", &good[6..]);
        let cases = [
            // Bad checksum.
            with_bad_checksum(good),
            // Wrong length: one character short, one too many.
            good[..good.len() - 1].to_owned(),
            format!("{good}A"),
            // Wrong prefix: unknown kind, upper case, missing `jt_`.
            bad_prefix,
            good.to_uppercase(),
            format!("xx{}", &good[2..]),
            // Not a token at all.
            "x".to_owned(),
            "jt_".to_owned(),
        ];
        for token in cases {
            let res = app.get_as("/api/v1/products", &token).await;
            expect_invalid_token(&res);
            if token.len() > 10 {
                assert!(
                    !res.text().contains(&token),
                    "the body never echoes a token"
                );
            }
            // The same answer as for an unknown, well-formed token.
            assert_eq!(res.json(), unknown_body, "for {token:?}");
        }
    }
}

async fn unknown_tokens_are_invalid_token(app: TestApp) {
    app.publishable_key().await;
    app.admin_key().await;
    app.customer("someone@example.com").await;
    for kind in TokenKind::ALL {
        let token = TOKENS.generate(kind);
        let res = app.get_as("/api/v1/products", token.expose_secret()).await;
        expect_invalid_token(&res);
        assert!(!res.text().contains(token.expose_secret()));
    }
}

async fn logged_out_user_token_is_invalid_token_like_an_unknown_one(app: TestApp) {
    let (_, token) = app.customer("ann@example.com").await;
    app.get_as("/api/v1/me", &token).await.expect(200);
    app.post_as("/api/v1/auth/logout", &token).await.expect(204);

    let revoked = app.get_as("/api/v1/me", &token).await;
    expect_invalid_token(&revoked);
    let unknown = app
        .get_as(
            "/api/v1/me",
            TOKENS.generate(TokenKind::User).expose_secret(),
        )
        .await;
    expect_invalid_token(&unknown);
    assert_eq!(revoked.json(), unknown.json());
    assert_eq!(revoked.body, unknown.body, "byte-identical bodies");
    // Logging out again with the revoked token is refused the same way.
    let again = app.post_as("/api/v1/auth/logout", &token).await;
    expect_invalid_token(&again);
    assert_eq!(again.body, unknown.body);
}

async fn revoked_client_keys_are_invalid_token_like_an_unknown_one(app: TestApp) {
    let admin = app.admin_key().await;
    let (pk_id, pk) = app.publishable_client().await;
    let (sk_id, sk) = app
        .client(ClientKind::Secret, &["products:read"], &[])
        .await;
    for key in [&pk, &sk] {
        app.get_as("/api/v1/products", key).await.expect(200);
    }
    for id in [&pk_id, &sk_id] {
        app.delete_as(&format!("/api/v1/admin/clients/{id}"), &admin)
            .await
            .expect(204);
    }
    for (key, kind) in [(&pk, TokenKind::Publishable), (&sk, TokenKind::Secret)] {
        let revoked = app.get_as("/api/v1/products", key).await;
        expect_invalid_token(&revoked);
        let unknown = app
            .get_as("/api/v1/products", TOKENS.generate(kind).expose_secret())
            .await;
        assert_eq!(revoked.json(), unknown.json());
        assert_eq!(revoked.body, unknown.body, "byte-identical bodies");
    }
    // The admin's own key still works.
    app.get_as("/api/v1/admin/clients", &admin)
        .await
        .expect(200);
}

async fn expired_user_token_is_invalid_token(app: TestApp) {
    let (customer_id, _) = app.customer("exp@example.com").await;
    // The app's clock (which stands still), not the system's: on a loaded
    // machine the system's runs past it, and a token "expired a second ago"
    // would still be live to the app.
    let now = app.now();
    let live = user_token_in_store(
        &app,
        &customer_id,
        &USER_ABILITIES,
        Some(now + time::Duration::hours(1)),
    )
    .await;
    app.get_as("/api/v1/me", &live).await.expect(200);

    let unknown = app
        .get_as(
            "/api/v1/me",
            TOKENS.generate(TokenKind::User).expose_secret(),
        )
        .await;
    for ago in [
        time::Duration::seconds(1),
        time::Duration::days(1),
        time::Duration::days(400),
    ] {
        let expired =
            user_token_in_store(&app, &customer_id, &USER_ABILITIES, Some(now - ago)).await;
        for path in ["/api/v1/me", "/api/v1/products", "/api/v1/me/orders"] {
            let res = app.get_as(path, &expired).await;
            expect_invalid_token(&res);
            assert_eq!(res.body, unknown.body);
        }
    }
}

async fn token_created_with_one_second_lifetime_expires(app: TestApp) {
    let (_, token) = app.customer("short@example.com").await;
    let res = app
        .post_json_as(
            "/api/v1/me/tokens",
            &token,
            json!({"name": "short", "expires_in_seconds": 1}),
        )
        .await;
    res.expect(201);
    let short = res.json()["token"].as_str().unwrap().to_owned();
    // Verified first (so the cache holds it), up to the last moment of its
    // lifetime; then it has expired.
    app.get_as("/api/v1/me", &short).await.expect(200);
    app.advance(std::time::Duration::from_millis(999));
    app.get_as("/api/v1/me", &short).await.expect(200);
    app.advance(std::time::Duration::from_millis(1));
    expect_invalid_token(&app.get_as("/api/v1/me", &short).await);
    // The token that created it is unaffected.
    app.get_as("/api/v1/me", &token).await.expect(200);
}

async fn wrong_kind_is_insufficient_scope(app: TestApp) {
    let pk = app.publishable_key().await;
    let sk_all = app.client(ClientKind::Secret, &["*"], &[]).await.1;
    let (_, ut) = app.customer("kind@example.com").await;

    // A publishable key on user-token routes.
    expect_wrong_kind(&app.get_as("/api/v1/me", &pk).await, USER_ONLY);
    expect_wrong_kind(&app.get_as("/api/v1/me/orders", &pk).await, USER_ONLY);
    // A secret key with every ability is still not a user token.
    expect_wrong_kind(&app.get_as("/api/v1/me", &sk_all).await, USER_ONLY);
    expect_wrong_kind(
        &app.post_json_as("/api/v1/orders", &sk_all, json!({"items": []}))
            .await,
        USER_ONLY,
    );
    // A user token cannot register customers, log in or administer.
    expect_wrong_kind(
        &app.post_json_as(
            "/api/v1/customers",
            &ut,
            json!({"email": "x@example.com", "password": PASSWORD, "name": "X"}),
        )
        .await,
        CLIENTS_ONLY,
    );
    expect_wrong_kind(
        &app.post_json_as(
            "/api/v1/auth/login",
            &ut,
            json!({"email": "kind@example.com", "password": PASSWORD}),
        )
        .await,
        CLIENTS_ONLY,
    );
    expect_wrong_kind(&app.get_as("/api/v1/admin/clients", &ut).await, SECRET_ONLY);
    // Logout accepts any user token, but only user tokens.
    for key in [&pk, &sk_all] {
        let res = app.post_as("/api/v1/auth/logout", key).await;
        expect_wrong_kind(&res, USER_ONLY);
    }
}

async fn missing_ability_is_insufficient_scope(app: TestApp) {
    // Keys of an accepted kind, without the ability the route needs.
    let pk_login_only = app
        .client(
            ClientKind::Publishable,
            &["auth:login"],
            &["http://localhost:8080"],
        )
        .await
        .1;
    let sk_read_only = app
        .client(ClientKind::Secret, &["products:read"], &[])
        .await
        .1;
    let sk_nothing = app.client(ClientKind::Secret, &[], &[]).await.1;
    expect_insufficient_scope(
        &app.get_as("/api/v1/products", &pk_login_only).await,
        "products:read",
    );
    expect_insufficient_scope(
        &app.post_json_as(
            "/api/v1/customers",
            &pk_login_only,
            json!({"email": "a@example.com", "password": PASSWORD, "name": "A"}),
        )
        .await,
        "customers:create",
    );
    expect_insufficient_scope(
        &app.post_json_as(
            "/api/v1/auth/login",
            &sk_read_only,
            json!({"email": "a@example.com", "password": PASSWORD}),
        )
        .await,
        "auth:login",
    );
    expect_insufficient_scope(
        &app.get_as("/api/v1/products", &sk_nothing).await,
        "products:read",
    );

    // A user token narrowed to products:read through POST /me/tokens.
    let (_, ut) = app.customer("narrow@example.com").await;
    let res = app
        .post_json_as(
            "/api/v1/me/tokens",
            &ut,
            json!({"name": "catalogue only", "abilities": ["products:read"]}),
        )
        .await;
    res.expect(201);
    let narrow = res.json()["token"].as_str().unwrap().to_owned();
    app.get_as("/api/v1/products", &narrow).await.expect(200);
    for (method, path, ability) in [
        (Method::GET, "/api/v1/me", "profile:read"),
        (Method::GET, "/api/v1/me/orders", "orders:read"),
        (Method::GET, "/api/v1/me/tokens", "tokens:manage"),
        (Method::DELETE, "/api/v1/me/tokens", "tokens:manage"),
    ] {
        expect_insufficient_scope(&app.req(method, path).bearer(&narrow).send().await, ability);
    }
    expect_insufficient_scope(
        &app.post_json_as("/api/v1/orders", &narrow, json!({"items": []}))
            .await,
        "orders:write",
    );
    // The narrowed token was not revoked by DELETE /me/tokens above.
    app.get_as("/api/v1/me", &ut).await.expect(200);
}

async fn user_token_with_star_is_capped_by_the_user_ceiling(app: TestApp) {
    let (customer_id, _) = app.customer("star@example.com").await;
    let star = user_token_in_store(&app, &customer_id, &["*"], None).await;
    app.get_as("/api/v1/me", &star).await.expect(200);
    for (method, path) in [
        (Method::GET, "/api/v1/admin/clients"),
        (Method::POST, "/api/v1/admin/products"),
    ] {
        let req = app.req(method.clone(), path).bearer(&star);
        let req = if method == Method::POST {
            req.json(json!({}))
        } else {
            req
        };
        expect_wrong_kind(&req.send().await, SECRET_ONLY);
    }
    expect_wrong_kind(
        &app.post_json_as(
            "/api/v1/customers",
            &star,
            json!({"email": "s2@example.com", "password": PASSWORD, "name": "S"}),
        )
        .await,
        CLIENTS_ONLY,
    );
}

// ================================================================ access matrix

on_both_databases!(
    publishable_key_reaches_only_storefront_routes,
    user_token_cannot_reach_admin,
    secret_key_without_admin_cannot_reach_admin,
    secret_key_with_admin_reaches_admin,
    route_table_denies_by_default,
);

/// Every admin route of the table, concrete.
fn admin_rows() -> Vec<(Method, String)> {
    let rows: Vec<(Method, String)> = routes::api()
        .entries()
        .iter()
        .filter(|e| e.path.starts_with("/admin/"))
        .map(|e| (e.method.clone(), e.path.to_owned()))
        .collect();
    let spec = SPEC_ROUTES
        .iter()
        .filter(|(_, path, _, _)| path.starts_with("/admin/"))
        .count();
    assert_eq!(rows.len(), spec, "the admin routes of SPEC_ROUTES");
    rows
}

async fn publishable_key_reaches_only_storefront_routes(app: TestApp) {
    let pk = app.publishable_key().await;
    app.get_as("/api/v1/products", &pk).await.expect(200);
    expect_wrong_kind(&app.get_as("/api/v1/me", &pk).await, USER_ONLY);
    expect_wrong_kind(&app.get_as("/api/v1/me/orders", &pk).await, USER_ONLY);
    expect_wrong_kind(
        &app.post_json_as("/api/v1/orders", &pk, json!({"items": []}))
            .await,
        USER_ONLY,
    );
    // Even one created in the store with `*`.
    let pk_star = app
        .client(ClientKind::Publishable, &["*"], &["http://localhost:8080"])
        .await
        .1;
    for key in [&pk, &pk_star] {
        for (method, path) in admin_rows() {
            let res = table_request(&app, &method, &path).bearer(key).send().await;
            expect_wrong_kind(&res, SECRET_ONLY);
        }
    }
}

async fn user_token_cannot_reach_admin(app: TestApp) {
    let (_, ut) = app.customer("ut@example.com").await;
    for (method, path) in admin_rows() {
        let res = table_request(&app, &method, &path).bearer(&ut).send().await;
        expect_wrong_kind(&res, SECRET_ONLY);
    }
}

async fn secret_key_without_admin_cannot_reach_admin(app: TestApp) {
    let sk = app.client(ClientKind::Secret, &ALL_BUT_ADMIN, &[]).await.1;
    app.get_as("/api/v1/products", &sk).await.expect(200);
    for entry in routes::api().entries() {
        if !entry.path.starts_with("/admin/") {
            continue;
        }
        let ability = entry.access.ability.as_ref().expect("admin rows need one");
        let res = table_request(&app, &entry.method, entry.path)
            .bearer(&sk)
            .send()
            .await;
        // The refusal names the route's own admin ability.
        expect_insufficient_scope(&res, ability.as_str());
    }
}

async fn secret_key_with_admin_reaches_admin(app: TestApp) {
    let star = app.client(ClientKind::Secret, &["*"], &[]).await.1;
    for (admin, manages_staff) in [(app.admin_key().await, false), (star, true)] {
        app.get_as("/api/v1/admin/clients", &admin)
            .await
            .expect(200);
        let sku = format!("SKU-{}", jeton::domain::ids::new_id());
        let res = app.post_json_as("/api/v1/admin/products", &admin, json!({"sku": sku, "name": "Mug", "price": {"amount": 100, "currency": "EUR"}, "stock": 1})).await;
        res.expect(201);
        let id = res.json()["id"].as_str().unwrap().to_owned();
        app.patch_json_as(
            &format!("/api/v1/admin/products/{id}"),
            &admin,
            json!({"stock": 7}),
        )
        .await
        .expect(200);
        assert_eq!(app.stock(&id).await, 7);
        // Every admin route with a fresh id gets past the guard: whatever
        // the handler says, it is not an authentication refusal. Except
        // the staff's for `admin`, which grants every admin ability but
        // `staff:manage`.
        for (method, path) in admin_rows() {
            let res = table_request(&app, &method, &path)
                .bearer(&admin)
                .send()
                .await;
            if path.starts_with("/admin/staff") && !manages_staff {
                expect_insufficient_scope(&res, "staff:manage");
                continue;
            }
            assert!(
                !matches!(res.status.as_u16(), 401 | 403) && res.status.as_u16() < 500,
                "{method} {path}: {} {}",
                res.status,
                res.text()
            );
        }
    }
}

/// The contract's endpoints, row by row: method, path, accepted kinds,
/// ability. An access token (`at`) is accepted wherever a secret key is,
/// and a staff session (`st`) on every admin route.
const SPEC_ROUTES: [(&str, &str, &str, Option<&str>); 58] = [
    (
        "GET",
        "/products",
        "pk | sk | at | ut | gt",
        Some("products:read"),
    ),
    (
        "GET",
        "/products/{id}",
        "pk | sk | at | ut | gt",
        Some("products:read"),
    ),
    ("POST", "/guest", "pk", Some("guest:create")),
    (
        "POST",
        "/customers",
        "pk | sk | at",
        Some("customers:create"),
    ),
    ("POST", "/auth/login", "pk | sk | at", Some("auth:login")),
    ("POST", "/auth/logout", "ut", None),
    ("GET", "/me", "ut", Some("profile:read")),
    ("GET", "/me/tokens", "ut", Some("tokens:manage")),
    ("POST", "/me/tokens", "ut", Some("tokens:manage")),
    ("DELETE", "/me/tokens/{id}", "ut", Some("tokens:manage")),
    ("DELETE", "/me/tokens", "ut", Some("tokens:manage")),
    ("POST", "/orders", "ut", Some("orders:write")),
    ("GET", "/me/orders", "ut", Some("orders:read")),
    ("GET", "/me/orders/{id}", "ut", Some("orders:read")),
    ("GET", "/cart", "ut | gt", Some("cart:write")),
    ("DELETE", "/cart", "ut | gt", Some("cart:write")),
    (
        "PUT",
        "/cart/items/{product_id}",
        "ut | gt",
        Some("cart:write"),
    ),
    (
        "DELETE",
        "/cart/items/{product_id}",
        "ut | gt",
        Some("cart:write"),
    ),
    ("POST", "/cart/checkout", "ut", Some("orders:write")),
    (
        "POST",
        "/admin/products",
        "sk | at | st",
        Some("products:write"),
    ),
    (
        "PATCH",
        "/admin/products/{id}",
        "sk | at | st",
        Some("products:write"),
    ),
    (
        "POST",
        "/admin/clients",
        "sk | at | st",
        Some("clients:write"),
    ),
    (
        "GET",
        "/admin/clients",
        "sk | at | st",
        Some("clients:read"),
    ),
    (
        "GET",
        "/admin/clients/{id}",
        "sk | at | st",
        Some("clients:read"),
    ),
    (
        "POST",
        "/admin/clients/{id}/keys",
        "sk | at | st",
        Some("clients:write"),
    ),
    (
        "DELETE",
        "/admin/clients/{id}",
        "sk | at | st",
        Some("clients:write"),
    ),
    (
        "POST",
        "/admin/customers/{id}/revoke-tokens",
        "sk | at | st",
        Some("customers:revoke"),
    ),
    (
        "POST",
        "/admin/orders/{id}/cancel",
        "sk | at | st",
        Some("orders:cancel"),
    ),
    ("GET", "/admin/audit", "sk | at | st", Some("audit:read")),
    // Leaked credentials (API.md §15).
    (
        "POST",
        "/admin/leaks",
        "sk | at | st",
        Some("clients:write"),
    ),
    // Usage (API.md §12).
    ("GET", "/admin/usage", "sk | at | st", Some("usage:read")),
    (
        "GET",
        "/admin/usage/top",
        "sk | at | st",
        Some("usage:read"),
    ),
    (
        "GET",
        "/admin/clients/{id}/usage",
        "sk | at | st",
        Some("usage:read"),
    ),
    (
        "GET",
        "/admin/customers/{id}/usage",
        "sk | at | st",
        Some("usage:read"),
    ),
    // §13: more admin endpoints, for the console.
    (
        "GET",
        "/admin/products",
        "sk | at | st",
        Some("products:write"),
    ),
    (
        "PATCH",
        "/admin/clients/{id}",
        "sk | at | st",
        Some("clients:write"),
    ),
    (
        "GET",
        "/admin/customers",
        "sk | at | st",
        Some("customers:read"),
    ),
    (
        "GET",
        "/admin/customers/{id}",
        "sk | at | st",
        Some("customers:read"),
    ),
    (
        "GET",
        "/admin/customers/{id}/tokens",
        "sk | at | st",
        Some("customers:read"),
    ),
    (
        "GET",
        "/admin/orders",
        "sk | at | st",
        Some("orders:read_all"),
    ),
    // The staff, managed by an owner (§13).
    ("GET", "/admin/staff", "sk | at | st", Some("staff:manage")),
    ("POST", "/admin/staff", "sk | at | st", Some("staff:manage")),
    (
        "PATCH",
        "/admin/staff/{id}",
        "sk | at | st",
        Some("staff:manage"),
    ),
    (
        "POST",
        "/admin/staff/{id}/reset-mfa",
        "sk | at | st",
        Some("staff:manage"),
    ),
    // Webhooks (§14).
    (
        "POST",
        "/admin/webhooks",
        "sk | at | st",
        Some("clients:write"),
    ),
    (
        "GET",
        "/admin/webhooks",
        "sk | at | st",
        Some("clients:read"),
    ),
    (
        "GET",
        "/admin/webhooks/{id}",
        "sk | at | st",
        Some("clients:read"),
    ),
    (
        "PATCH",
        "/admin/webhooks/{id}",
        "sk | at | st",
        Some("clients:write"),
    ),
    (
        "DELETE",
        "/admin/webhooks/{id}",
        "sk | at | st",
        Some("clients:write"),
    ),
    (
        "POST",
        "/admin/webhooks/{id}/rotate-secret",
        "sk | at | st",
        Some("clients:write"),
    ),
    (
        "GET",
        "/admin/webhooks/{id}/deliveries",
        "sk | at | st",
        Some("clients:read"),
    ),
    (
        "POST",
        "/admin/webhooks/{id}/deliveries/{delivery_id}/retry",
        "sk | at | st",
        Some("clients:write"),
    ),
    (
        "POST",
        "/admin/webhooks/{id}/test",
        "sk | at | st",
        Some("clients:write"),
    ),
    // A staff member's own session (§13).
    ("GET", "/staff/me", "st", None),
    ("POST", "/staff/logout", "st", None),
    ("POST", "/staff/password", "st", None),
    ("POST", "/staff/mfa", "st", None),
    ("POST", "/staff/mfa/confirm", "st", None),
];

/// A pure check: it needs no database.
#[test]
fn route_table_matches_the_spec() {
    let table = routes::api();
    let mut actual: Vec<(String, String, String, Option<String>)> = table
        .entries()
        .iter()
        .map(|e| {
            (
                e.method.to_string(),
                e.path.to_owned(),
                e.access.kinds.describe(),
                e.access.ability.as_ref().map(ToString::to_string),
            )
        })
        .collect();
    let mut expected: Vec<(String, String, String, Option<String>)> = SPEC_ROUTES
        .iter()
        .map(|(m, p, k, a)| {
            (
                m.to_string(),
                p.to_string(),
                k.to_string(),
                a.map(str::to_owned),
            )
        })
        .collect();
    actual.sort();
    expected.sort();
    assert_eq!(actual, expected);
}

async fn route_table_denies_by_default(app: TestApp) {
    let table = routes::api();
    let entries = table.entries();
    assert_eq!(
        entries.len(),
        SPEC_ROUTES.len(),
        "the routes of SPEC_ROUTES"
    );

    // The strongest token of each kind: a wrong kind is refused whatever
    // it holds.
    let strongest = [
        (
            TokenKind::Publishable,
            app.client(ClientKind::Publishable, &["*"], &["http://localhost:8080"])
                .await
                .1,
        ),
        (
            TokenKind::Secret,
            app.client(ClientKind::Secret, &["*"], &[]).await.1,
        ),
        (TokenKind::User, {
            let (customer_id, _) = app.customer("table@example.com").await;
            user_token_in_store(&app, &customer_id, &["*"], None).await
        }),
        (
            TokenKind::Guest,
            guest_in_store(&app, &[Ability::ALL]).await,
        ),
    ];
    // A token of each kind holding nothing.
    let powerless = [
        (
            TokenKind::Publishable,
            app.client(ClientKind::Publishable, &[], &["http://localhost:8080"])
                .await
                .1,
        ),
        (
            TokenKind::Secret,
            app.client(ClientKind::Secret, &[], &[]).await.1,
        ),
        (TokenKind::User, {
            let (customer_id, _) = app.customer("nothing@example.com").await;
            user_token_in_store(&app, &customer_id, &[], None).await
        }),
        (TokenKind::Guest, guest_in_store(&app, &[]).await),
    ];
    let before = app.row_counts(&STORE_TABLES).await;

    let mut refused = 0;
    for entry in entries {
        let what = format!("{} {}", entry.method, entry.path);
        let needed = entry.access.ability.as_ref().map(ToString::to_string);

        // No token.
        let res = table_request(&app, &entry.method, entry.path).send().await;
        assert_eq!(res.status, 401, "{what}: {}", res.text());
        expect_unauthenticated(&res);

        // Every kind the row does not accept.
        for (kind, token) in &strongest {
            if entry.access.kinds.contains(*kind) {
                continue;
            }
            refused += 1;
            let res = table_request(&app, &entry.method, entry.path)
                .bearer(token)
                .send()
                .await;
            assert_eq!(res.status, 403, "{what} with {kind:?}: {}", res.text());
            // Whatever the row needs: no ability would help a kind it
            // does not take.
            expect_auth(
                &res,
                403,
                "insufficient_scope",
                r#"Bearer realm="jeton", error="insufficient_scope""#,
            );
            let detail = res.json()["detail"].as_str().unwrap().to_owned();
            assert!(detail.starts_with("this route takes "), "{detail}");
        }

        // Every kind the row accepts, without the ability.
        if let Some(ability) = &needed {
            for (kind, token) in &powerless {
                if !entry.access.kinds.contains(*kind) {
                    continue;
                }
                let res = table_request(&app, &entry.method, entry.path)
                    .bearer(token)
                    .send()
                    .await;
                assert_eq!(res.status, 403, "{what} with a powerless {kind:?}");
                expect_insufficient_scope(&res, ability);
            }
        }

        // An unknown token of each kind.
        for kind in [TokenKind::Publishable, TokenKind::Secret, TokenKind::User] {
            let res = table_request(&app, &entry.method, entry.path)
                .bearer(TOKENS.generate(kind).expose_secret())
                .send()
                .await;
            assert_eq!(res.status, 401, "{what} with an unknown {kind:?}");
            expect_invalid_token(&res);
        }
    }
    // pk: 53 rows, sk: 20 (the user-token, staff, guest-issuing and
    // cart rows), ut: 42 (the client-key and staff rows), gt: 52 (all but
    // the products' and the cart's but checkout).
    assert_eq!(refused, 53 + 20 + 42 + 52, "wrong-kind refusals checked");
    assert_eq!(
        app.row_counts(&STORE_TABLES).await,
        before,
        "no refused request wrote"
    );
}

/// A guest token holding `abilities`, made straight in the store (the API
/// issues guests only the guest abilities).
async fn guest_in_store(app: &TestApp, abilities: &[Ability]) -> String {
    let (client_id, _) = app.publishable_client().await;
    let mut tx = app.db.auth().begin().await.unwrap();
    let issued = tx
        .issue_guest_token(
            &client_id,
            None,
            abilities.to_vec(),
            app.now() + time::Duration::days(1),
            None,
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    issued.token.expose_secret().to_owned()
}

// The `abilities` module lists the user ceiling this file assumes.
#[test]
fn user_abilities_match_the_user_ceiling() {
    let ceiling = abilities::user_ceiling();
    let mut names: Vec<&str> = ceiling.iter().map(|a| a.as_str()).collect();
    names.sort_unstable();
    let mut expected = USER_ABILITIES.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
}

// ---------------------------------------------------------------- admin: clients

on_both_databases!(admin_api_needs_a_secret_key_with_admin);

async fn admin_api_needs_a_secret_key_with_admin(app: TestApp) {
    let pk = app.publishable_key().await;
    let (_, sk) = app
        .client(ClientKind::Secret, &["products:read", "auth:login"], &[])
        .await;
    let (_, user) = app.customer("ann@example.com").await;
    for token in [&pk, &sk, &user] {
        app.get_as("/api/v1/admin/clients", token)
            .await
            .expect_problem(403, "insufficient_scope");
        app.create_product(
            token,
            json!({"sku": "X", "name": "X", "price": {"amount": 1, "currency": "EUR"}, "stock": 1}),
        )
        .await
        .expect_problem(403, "insufficient_scope");
    }
    app.get("/api/v1/admin/clients")
        .send()
        .await
        .expect_problem(401, "unauthenticated");
    // `*` on a secret key covers admin.
    let (_, star) = app.client(ClientKind::Secret, &["*"], &[]).await;
    app.get_as("/api/v1/admin/clients", &star).await.expect(200);
}
