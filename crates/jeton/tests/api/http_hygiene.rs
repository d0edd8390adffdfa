//! HTTP hygiene: body envelope errors, 404/405, security and cache
//! headers, health, OpenAPI and docs, hostile header bytes in process and
//! over a real socket, and the bad-input table (`docs/bad-input.md` is that
//! table in prose; a test keeps the two in step). No bad input gets a 5xx,
//! echoes a credential, or writes anything.

use jeton::identity::TOKENS;
use std::{collections::HashSet, time::Duration};

use axum::{
    body::Body,
    http::{HeaderName, HeaderValue, Method, Request},
};
use http_body_util::BodyExt;
use jeton::http::{
    routes,
    server::{self, ConnectionLimits},
};
use jeton_auth::TokenKind;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

use crate::{
    on_both_databases,
    support::{PASSWORD, Res, STORE_TABLES, TestApp},
};

// ---------------------------------------------------------------- helpers

/// The `field`s named in a 422's `errors`.
#[track_caller]
fn error_fields(res: &Res) -> Vec<String> {
    res.expect_problem(422, "validation_failed");
    let body = res.json();
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("a 422 has an errors array: {body}"));
    assert!(!errors.is_empty(), "errors is not empty: {body}");
    errors
        .iter()
        .map(|e| {
            assert!(e["message"].is_string(), "each error has a message: {body}");
            e["field"]
                .as_str()
                .expect("each error has a field")
                .to_owned()
        })
        .collect()
}

/// Asserts a 422 whose `errors` name `field` (exactly, or as the last segment
/// of a path like `items[0].unit_price`).
#[track_caller]
fn expect_field_error(res: &Res, field: &str) {
    let fields = error_fields(res);
    assert!(
        fields
            .iter()
            .any(|f| f == field || f.ends_with(&format!(".{field}"))),
        "errors name `{field}`: {}",
        res.text()
    );
}

/// The same token with one character of its random part changed, so the
/// CRC32 no longer matches.
fn with_bad_checksum(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    bytes[10] = if bytes[10] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).unwrap()
}

// ================================================================ HTTP hygiene

on_both_databases!(
    malformed_json_is_400,
    unknown_fields_are_422_naming_the_field,
    wrong_or_missing_content_type_is_415,
    body_over_one_mebibyte_is_413,
    unsupported_method_is_405_with_allow,
    unknown_path_is_404_problem,
    every_response_has_request_id_and_nosniff,
    responses_with_tokens_are_not_cached,
    health_and_readiness,
    openapi_lists_every_route,
    docs_serve_html,
    bad_inputs_write_nothing_and_never_500,
);

async fn malformed_json_is_400(app: TestApp) {
    let pk = app.publishable_key().await;
    let (_, ut) = app.customer("json@example.com").await;
    let admin = app.admin_key().await;
    for body in [
        &b"{"[..],
        b"{\"email\": ",
        b"{\"email\": \"a@example.com\",}",
        b"not json",
        b"{} {}",
        b"{\"a\": 1} trailing",
        b"",
        b"\xff\xfe",
    ] {
        for (path, token) in [
            ("/api/v1/customers", &pk),
            ("/api/v1/orders", &ut),
            ("/api/v1/admin/products", &admin),
        ] {
            let res = app
                .post(path)
                .bearer(token)
                .raw("application/json", body.to_vec())
                .send()
                .await;
            res.expect_problem(400, "malformed_json");
            assert!(!res.text().contains(token.as_str()));
        }
    }
}

async fn unknown_fields_are_422_naming_the_field(app: TestApp) {
    let pk = app.publishable_key().await;
    let (customer_id, ut) = app.customer("fields@example.com").await;
    let admin = app.admin_key().await;
    let product = app.product("F-1", 500, "EUR", 10).await;

    // `customer_id` on registration.
    let res = app.post_json_as("/api/v1/customers", &pk, json!({"email": "b@example.com", "password": PASSWORD, "name": "B", "customer_id": customer_id})).await;
    expect_field_error(&res, "customer_id");

    // A price on an order line, under either name.
    for field in ["unit_price", "price"] {
        let res = app
            .post_json_as(
                "/api/v1/orders",
                &ut,
                json!({"items": [{"product_id": product.id, "quantity": 1, field: 1}]}),
            )
            .await;
        expect_field_error(&res, field);
    }
    // `customer_id` or `total` on the order itself.
    for field in ["customer_id", "total"] {
        let res = app
            .post_json_as(
                "/api/v1/orders",
                &ut,
                json!({"items": [{"product_id": product.id, "quantity": 1}], field: 1}),
            )
            .await;
        expect_field_error(&res, field);
    }
    // Elsewhere: login, personal tokens, admin products.
    let res = app.post_json_as("/api/v1/auth/login", &pk, json!({"email": "fields@example.com", "password": PASSWORD, "customer_id": customer_id})).await;
    expect_field_error(&res, "customer_id");
    let res = app
        .post_json_as(
            "/api/v1/me/tokens",
            &ut,
            json!({"name": "t", "customer_id": customer_id}),
        )
        .await;
    expect_field_error(&res, "customer_id");
    let res = app.post_json_as("/api/v1/admin/products", &admin, json!({"sku": "F-2", "name": "F", "price": {"amount": 1, "currency": "EUR"}, "stock": 1, "id": "x"})).await;
    expect_field_error(&res, "id");

    // Nothing was used: the order did not happen, the stock is untouched.
    assert_eq!(app.stock(&product.id).await, 10);
    let res = app.get_as("/api/v1/me/orders", &ut).await;
    res.expect(200);
    assert_eq!(res.json()["data"], json!([]));
}

async fn wrong_or_missing_content_type_is_415(app: TestApp) {
    let pk = app.publishable_key().await;
    let (_, ut) = app.customer("ct@example.com").await;
    let product = app.product("CT-1", 500, "EUR", 10).await;
    let register =
        serde_json::to_vec(&json!({"email": "c@example.com", "password": PASSWORD, "name": "C"}))
            .unwrap();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("text/json"),
        Some("application/xml"),
        None,
    ] {
        let req = app.post("/api/v1/customers").bearer(&pk);
        let req = match content_type {
            Some(ct) => req.raw(ct, register.clone()),
            // A body without any Content-Type.
            None => req
                .raw("application/json", register.clone())
                .without_content_type(),
        };
        let res = req.send().await;
        res.expect_problem(415, "unsupported_media_type");
    }
    // A form-encoded login is refused too, not parsed.
    let res = app
        .post("/api/v1/auth/login")
        .bearer(&pk)
        .raw(
            "application/x-www-form-urlencoded",
            "email=ct%40example.com&password=correct+horse+battery",
        )
        .send()
        .await;
    res.expect_problem(415, "unsupported_media_type");
    // An order without a Content-Type.
    let order =
        serde_json::to_vec(&json!({"items": [{"product_id": product.id, "quantity": 1}]})).unwrap();
    let res = app
        .post("/api/v1/orders")
        .bearer(&ut)
        .raw("application/json", order)
        .without_content_type()
        .send()
        .await;
    res.expect_problem(415, "unsupported_media_type");
    assert_eq!(app.stock(&product.id).await, 10);
    // The JSON type with parameters is fine.
    app.post("/api/v1/customers")
        .bearer(&pk)
        .raw("application/json; charset=utf-8", register)
        .send()
        .await
        .expect(201);
}

async fn body_over_one_mebibyte_is_413(app: TestApp) {
    const MIB: usize = 1024 * 1024;
    let pk = app.publishable_key().await;
    let admin = app.admin_key().await;
    // A syntactically valid body of exactly `len` bytes.
    let body_of = |len: usize| {
        let head =
            br#"{"email": "big@example.com", "password": "correct horse battery", "name": ""#;
        let tail = br#""}"#;
        let mut body = head.to_vec();
        body.resize(len - tail.len(), b'x');
        body.extend_from_slice(tail);
        assert_eq!(body.len(), len);
        body
    };
    for len in [MIB + 1, MIB + 4096, 3 * MIB] {
        let res = app
            .post("/api/v1/customers")
            .bearer(&pk)
            .raw("application/json", body_of(len))
            .send()
            .await;
        res.expect_problem(413, "payload_too_large");
        let res = app
            .post("/api/v1/admin/products")
            .bearer(&admin)
            .raw("application/json", body_of(len))
            .send()
            .await;
        res.expect_problem(413, "payload_too_large");
    }
    // Exactly 1 MiB is read (and then refused for the long name, not size).
    let res = app
        .post("/api/v1/customers")
        .bearer(&pk)
        .raw("application/json", body_of(MIB))
        .send()
        .await;
    expect_field_error(&res, "name");
    assert_eq!(
        app.row_counts(&STORE_TABLES)
            .await
            .into_iter()
            .find(|(t, _)| *t == "customers")
            .unwrap()
            .1,
        0
    );
}

async fn unsupported_method_is_405_with_allow(app: TestApp) {
    let admin = app.admin_key().await;
    let (_, ut) = app.customer("m@example.com").await;
    let allow_set = |res: &Res| -> HashSet<String> {
        res.header("allow")
            .unwrap_or_else(|| panic!("a 405 has Allow: {:?}", res.headers))
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty())
            .collect()
    };
    for (method, path, token, allowed) in [
        (Method::PUT, "/api/v1/products", &admin, &["GET"][..]),
        (Method::DELETE, "/api/v1/products", &admin, &["GET"]),
        (Method::DELETE, "/api/v1/orders", &ut, &["POST"]),
        (Method::GET, "/api/v1/orders", &ut, &["POST"]),
        (
            Method::PATCH,
            "/api/v1/me/tokens",
            &ut,
            &["GET", "POST", "DELETE"],
        ),
        (Method::PUT, "/api/v1/admin/products", &admin, &["POST"]),
        (Method::POST, "/healthz", &admin, &["GET"]),
    ] {
        let res = app.req(method.clone(), path).bearer(token).send().await;
        res.expect_problem(405, "method_not_allowed");
        let allow = allow_set(&res);
        for m in allowed {
            assert!(
                allow.contains(*m),
                "{method} {path}: Allow {allow:?} lists {m}"
            );
        }
        assert!(
            !allow.contains(method.as_str()),
            "{method} {path}: Allow {allow:?} does not list the refused method"
        );
    }
}

async fn unknown_path_is_404_problem(app: TestApp) {
    let admin = app.admin_key().await;
    let pk = app.publishable_key().await;
    for path in [
        "/api/v1/nope",
        "/api/v1/admin/nope",
        "/api/v2/products",
        "/nope",
    ] {
        let res = app.get_as(path, &admin).await;
        res.expect_problem(404, "not_found");
    }
    app.get("/nope")
        .send()
        .await
        .expect_problem(404, "not_found");
    // An unknown id on a real route is the same problem.
    let id = jeton::domain::ids::new_id();
    app.get_as(&format!("/api/v1/products/{id}"), &pk)
        .await
        .expect_problem(404, "not_found");
}

async fn every_response_has_request_id_and_nosniff(app: TestApp) {
    let pk = app.publishable_key().await;
    let (_, ut) = app.customer("rid@example.com").await;
    let mut responses = vec![
        app.get_as("/api/v1/products", &pk).await,
        app.post_json_as(
            "/api/v1/customers",
            &pk,
            json!({"email": "r2@example.com", "password": PASSWORD, "name": "R"}),
        )
        .await,
        app.get_as("/api/v1/me", &ut).await,
        app.get("/api/v1/products").send().await,
        app.get_as("/api/v1/products", "nope").await,
        app.get("/api/v1/products")
            .header("authorization", "Bearer")
            .send()
            .await,
        app.get_as("/api/v1/me", &pk).await,
        app.post("/api/v1/customers")
            .bearer(&pk)
            .raw("application/json", "{")
            .send()
            .await,
        app.post("/api/v1/customers")
            .bearer(&pk)
            .raw("text/plain", "{}")
            .send()
            .await,
        app.post_json_as("/api/v1/customers", &pk, json!({"x": 1}))
            .await,
        app.req(Method::PUT, "/api/v1/products")
            .bearer(&pk)
            .send()
            .await,
        app.get_as("/api/v1/nope", &pk).await,
        app.get("/nope").send().await,
        app.get("/healthz").send().await,
        app.get("/readyz").send().await,
        app.get("/openapi.json").send().await,
    ];
    // The same request twice gets two ids.
    responses.push(app.get("/healthz").send().await);
    let statuses: HashSet<u16> = responses.iter().map(|r| r.status.as_u16()).collect();
    for status in [200, 201, 400, 401, 403, 404, 405, 415, 422] {
        assert!(statuses.contains(&status), "covers {status}: {statuses:?}");
    }
    let mut ids = HashSet::new();
    for res in &responses {
        assert!(res.status.as_u16() < 500, "{}", res.text());
        let id = res
            .header("x-request-id")
            .unwrap_or_else(|| panic!("X-Request-Id on a {}", res.status));
        assert!(!id.is_empty());
        assert!(ids.insert(id.clone()), "request ids are unique: {id}");
        assert_eq!(
            res.header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "nosniff on a {}",
            res.status
        );
    }
}

async fn responses_with_tokens_are_not_cached(app: TestApp) {
    let admin = app.admin_key().await;
    let pk = app.publishable_key().await;
    app.register(&pk, "cache@example.com", PASSWORD).await;
    let no_store = |res: &Res, what: &str| {
        let value = res
            .header("cache-control")
            .unwrap_or_else(|| panic!("{what} has Cache-Control"));
        assert!(
            value
                .split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-store")),
            "{what}: Cache-Control {value}"
        );
    };

    let login = app
        .post_json_as(
            "/api/v1/auth/login",
            &pk,
            json!({"email": "cache@example.com", "password": PASSWORD, "device_name": "d"}),
        )
        .await;
    login.expect(201);
    no_store(&login, "login");
    let ut = login.json()["token"].as_str().unwrap().to_owned();

    let personal = app
        .post_json_as("/api/v1/me/tokens", &ut, json!({"name": "cli"}))
        .await;
    personal.expect(201);
    no_store(&personal, "POST /me/tokens");

    let client = app
        .post_json_as(
            "/api/v1/admin/clients",
            &admin,
            json!({"name": "Backend", "kind": "secret", "abilities": ["products:read"]}),
        )
        .await;
    client.expect(201);
    no_store(&client, "POST /admin/clients");
    let client_id = client.json()["client"]["id"].as_str().unwrap().to_owned();

    let rotated = app
        .post_json_as(
            &format!("/api/v1/admin/clients/{client_id}/keys"),
            &admin,
            json!({}),
        )
        .await;
    rotated.expect(201);
    no_store(&rotated, "rotation");
    assert!(
        rotated.json()["key"]
            .as_str()
            .unwrap()
            .starts_with("jt_sk_")
    );
}

async fn health_and_readiness(app: TestApp) {
    app.get("/healthz").send().await.expect(200);
    app.get("/readyz").send().await.expect(200);
}

async fn openapi_lists_every_route(app: TestApp) {
    let res = app.get("/openapi.json").send().await;
    res.expect(200);
    let content_type = res.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let doc = res.json();
    let version = doc["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3.1"), "OpenAPI 3.1, got {version}");
    let paths = doc["paths"].as_object().expect("paths");

    let table = routes::api();
    assert!(!table.entries().is_empty());
    for entry in table.entries() {
        let path = format!("/api/v1{}", entry.path);
        let item = paths
            .get(&path)
            .unwrap_or_else(|| panic!("{path} is documented; have {:?}", paths.keys()));
        let method = entry.method.as_str().to_lowercase();
        assert!(
            item.get(&method).is_some(),
            "{} {path} is documented",
            entry.method
        );
    }
    // The OAuth 2.0 endpoints, outside the prefix, too.
    for (method, path, _) in routes::OAUTH {
        let method = method.as_str().to_lowercase();
        assert!(
            paths[path].get(&method).is_some(),
            "{method} {path} is documented"
        );
    }
    // And nothing that is not served.
    let served: HashSet<String> = table
        .entries()
        .iter()
        .map(|e| format!("/api/v1{}", e.path))
        .chain(routes::OAUTH.iter().map(|(_, path, _)| (*path).to_owned()))
        // The staff's sign-in and invitations (no credential yet) and
        // GitHub's signed reports: no row of the table.
        .chain([
            jeton::http::staff::LOGIN_PATH.to_owned(),
            jeton::http::staff::INVITATION_PATH.to_owned(),
            jeton::http::secret_scanning::GITHUB_PATH.to_owned(),
        ])
        .collect();
    for path in paths.keys() {
        assert!(served.contains(path), "{path} is documented but not served");
    }
}

async fn docs_serve_html(app: TestApp) {
    let mut path = "/docs".to_owned();
    let mut hops = 0;
    let res = loop {
        let res = app.get(&path).send().await;
        if res.status.is_redirection() {
            hops += 1;
            assert!(hops <= 3, "too many redirects");
            let location = res.header("location").expect("a redirect has Location");
            path = if location.starts_with('/') {
                location
            } else {
                format!("/docs/{location}")
            };
            continue;
        }
        break res;
    };
    res.expect(200);
    let content_type = res.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(res.text().to_lowercase().contains("<html"));
    let res = app.get("/docs/").send().await;
    res.expect(200);
    assert!(
        res.header("content-type")
            .unwrap_or_default()
            .starts_with("text/html")
    );
}

async fn bad_inputs_write_nothing_and_never_500(app: TestApp) {
    let pk = app.publishable_key().await;
    let admin = app.admin_key().await;
    let (_, ut) = app.customer("bad@example.com").await;
    let product = app.product("BAD-1", 500, "EUR", 10).await;
    let before = app.row_counts(&STORE_TABLES).await;

    let good_bodies: [(&str, &String, Value); 5] = [
        (
            "/api/v1/customers",
            &pk,
            json!({"email": "new@example.com", "password": PASSWORD, "name": "New"}),
        ),
        (
            "/api/v1/orders",
            &ut,
            json!({"items": [{"product_id": product.id, "quantity": 1}]}),
        ),
        (
            "/api/v1/admin/products",
            &admin,
            json!({"sku": "BAD-2", "name": "B", "price": {"amount": 1, "currency": "EUR"}, "stock": 1}),
        ),
        (
            "/api/v1/admin/clients",
            &admin,
            json!({"name": "C", "kind": "secret", "abilities": ["products:read"]}),
        ),
        ("/api/v1/me/tokens", &ut, json!({"name": "t"})),
    ];
    let mut statuses = Vec::new();
    for (path, token, good) in &good_bodies {
        let good_bytes = serde_json::to_vec(good).unwrap();
        let mut with_extra = good.clone();
        with_extra["customer_id"] = json!("someone-else");
        let mut oversized = good_bytes.clone();
        oversized.truncate(oversized.len() - 1);
        oversized.extend(std::iter::repeat_n(b' ', 1024 * 1024));
        oversized.push(b'}');
        let requests = vec![
            app.post(path).bearer(token).raw("application/json", "{"),
            app.post(path).bearer(token).json(with_extra),
            app.post(path)
                .bearer(token)
                .raw("text/plain", good_bytes.clone()),
            app.post(path)
                .bearer(token)
                .raw("application/x-www-form-urlencoded", good_bytes.clone()),
            app.post(path)
                .bearer(token)
                .raw("application/json", good_bytes.clone())
                .without_content_type(),
            app.post(path)
                .bearer(token)
                .raw("application/json", oversized),
            app.post(path).json(good.clone()),
            app.post(path)
                .bearer(TOKENS.generate(TokenKind::Secret).expose_secret())
                .json(good.clone()),
            app.post(path)
                .bearer(&with_bad_checksum(token))
                .json(good.clone()),
            app.post(path)
                .header("authorization", "Bearer")
                .json(good.clone()),
            app.post(&format!("{path}?access_token={token}"))
                .bearer(token)
                .json(good.clone()),
            app.post(path)
                .bearer(token)
                .bearer(token)
                .json(good.clone()),
            app.post(path)
                .header("authorization", &format!("Basic {token}"))
                .json(good.clone()),
        ];
        for req in requests {
            let res = req.send().await;
            assert!(
                (400..500).contains(&res.status.as_u16()),
                "POST {path}: {} {}",
                res.status,
                res.text()
            );
            assert!(!res.text().contains(token.as_str()), "no token echoed");
            statuses.push(res.status.as_u16());
        }
    }
    for status in [400, 401, 413, 415, 422] {
        assert!(statuses.contains(&status), "covers {status}");
    }
    assert_eq!(
        app.row_counts(&STORE_TABLES).await,
        before,
        "no bad input wrote"
    );
    assert_eq!(app.stock(&product.id).await, 10);
}

// ================================================================ header hygiene

on_both_databases!(
    header_values_with_non_ascii_bytes_are_400,
    control_bytes_in_headers_are_refused_by_the_server,
    oversized_headers_are_431,
);

async fn header_values_with_non_ascii_bytes_are_400(app: TestApp) {
    let pk = app.publishable_key().await;
    for (name, value, code) in [
        ("user-agent", "caf\u{e9}", "invalid_header"),
        ("x-note", "\u{202e}reversed", "invalid_header"),
        ("origin", "https://b\u{fc}cher.example", "invalid_header"),
        // The two headers with their own documented answer keep it.
        ("authorization", "Bearer jt_pk_\u{e9}", "invalid_request"),
        (
            "idempotency-key",
            "key-\u{1f600}",
            "invalid_idempotency_key",
        ),
    ] {
        let mut req = app.get("/api/v1/products");
        if name != "authorization" {
            req = req.bearer(&pk);
        }
        let res = req.header(name, value).send().await;
        res.expect_problem(400, code);
        let body = res.json();
        if code == "invalid_header" {
            assert!(
                body["detail"].as_str().unwrap().contains(name),
                "names the header: {body}"
            );
        }
        assert!(!res.text().contains(value), "never echoes the value");
        assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
        assert_eq!(
            res.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert!(res.header("x-request-id").is_some());
    }
    // Tab and every visible ASCII byte are fine.
    let visible: String = (0x20u8..=0x7e).map(char::from).collect();
    app.get("/api/v1/products")
        .bearer(&pk)
        .header("x-note", &format!("a\tb {visible}"))
        .send()
        .await
        .expect(200);
}

/// Serves the app on a real socket, as `jeton serve` does; returns its
/// address.
async fn serve(app: &TestApp) -> std::net::SocketAddr {
    serve_with(app, ConnectionLimits::default()).await
}

/// The same with connection limits of the test's choosing.
async fn serve_with(app: &TestApp, limits: ConnectionLimits) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = app.router.clone();
    tokio::spawn(server::serve(
        listener,
        router,
        limits,
        std::future::pending(),
    ));
    address
}

/// Sends raw bytes as a request; returns the status code and the rest of
/// the response.
async fn raw_request(address: std::net::SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // A server that refuses a request early may close before reading all
    // of it: a failed write, or a reset after the answer, is expected then.
    let _ = stream.write_all(request).await;
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("the server answers and closes")
        {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    (status, text)
}

fn request_with_header(key: &str, header: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "GET /api/v1/products HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {key}\r\n"
    )
    .into_bytes();
    request.extend_from_slice(header);
    request.extend_from_slice(b"\r\n\r\n");
    request
}

async fn control_bytes_in_headers_are_refused_by_the_server(app: TestApp) {
    let pk = app.publishable_key().await;
    let address = serve(&app).await;
    let (status, _) = raw_request(address, &request_with_header(&pk, b"X-Note: fine")).await;
    assert_eq!(status, 200, "the raw request itself is good");
    // hyper refuses these while parsing, before any of Jeton's code runs,
    // with a bare 400.
    for header in [
        &b"X-Note: a\x01b"[..],
        b"X-Note: a\x00b",
        b"X-Note: a\x7fb",
        b"X-Note: a\x1b[31mred",
        b"X-Note: a\rb",
        b"X-Note: a\nb",
    ] {
        let (status, text) = raw_request(address, &request_with_header(&pk, header)).await;
        assert_eq!(status, 400, "{header:?}: {text}");
    }
    // Bytes of 0x80 and up pass hyper; Jeton refuses them with a problem.
    let (status, text) =
        raw_request(address, &request_with_header(&pk, b"X-Note: caf\xc3\xa9")).await;
    assert_eq!(status, 400);
    assert!(text.contains("\"code\":\"invalid_header\""), "{text}");
    let (status, text) = raw_request(address, &request_with_header(&pk, b"X-Note: \xff")).await;
    assert_eq!(status, 400);
    assert!(text.contains("\"code\":\"invalid_header\""), "{text}");
}

async fn oversized_headers_are_431(app: TestApp) {
    let pk = app.publishable_key().await;
    let big = "a".repeat(jeton::http::hygiene::MAX_HEADER_VALUE_BYTES + 1);
    let res = app
        .get("/api/v1/products")
        .bearer(&pk)
        .header("x-note", &big)
        .send()
        .await;
    res.expect_problem(431, "headers_too_large");
    // Many headers that are each fine, but too much together.
    let mut req = app.get("/api/v1/products").bearer(&pk);
    let chunk = "b".repeat(4000);
    for n in 0..10 {
        req = req.header(&format!("x-note-{n}"), &chunk);
    }
    req.send().await.expect_problem(431, "headers_too_large");
    // An oversized Authorization header is refused before it is parsed.
    let res = app
        .get("/api/v1/products")
        .header("authorization", &format!("Bearer {}", "a".repeat(2000)))
        .send()
        .await;
    res.expect_problem(400, "invalid_request");
    // Over a real socket too, and the server stays up.
    let address = serve(&app).await;
    let (status, text) = raw_request(
        address,
        &request_with_header(&pk, format!("X-Note: {big}").as_bytes()),
    )
    .await;
    assert_eq!(status, 431, "{text}");
    assert!(text.contains("\"code\":\"headers_too_large\""), "{text}");
    // Past hyper's own buffer (about 400 KB), hyper answers a bare 431.
    let huge = format!("X-Note: {}", "h".repeat(1024 * 1024));
    let (status, text) = raw_request(address, &request_with_header(&pk, huge.as_bytes())).await;
    assert_eq!(status, 431, "{}", &text[..text.len().min(300)]);
    let (status, _) = raw_request(address, &request_with_header(&pk, b"X-Note: ok")).await;
    assert_eq!(status, 200);
}

/// Who the request claims to be.
#[derive(Debug, Clone)]
enum Auth {
    None,
    /// The storefront's publishable key.
    Pk,
    /// A secret key with `admin`.
    Sk,
    /// A customer's login token.
    Ut,
    /// This exact `Authorization` value (placeholders substituted).
    Header(Vec<u8>),
    /// Two `Authorization` headers, each with the publishable key.
    TwicePk,
}

/// One row: a request and the answer it must get.
#[derive(Debug, Clone)]
struct Row {
    name: &'static str,
    /// For the docs: what is sent.
    input: String,
    method: Method,
    /// Under `/api/v1`; may hold placeholders.
    path: String,
    auth: Auth,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    headers: Vec<(&'static str, Vec<u8>)>,
    status: u16,
    /// The problem `code`; empty for a success.
    code: &'static str,
}

impl Row {
    fn new(name: &'static str, input: &str, method: Method, path: &str) -> Row {
        Row {
            name,
            input: input.to_owned(),
            method,
            path: path.to_owned(),
            auth: Auth::Pk,
            content_type: None,
            body: Vec::new(),
            headers: Vec::new(),
            status: 0,
            code: "",
        }
    }

    fn auth(mut self, auth: Auth) -> Row {
        self.auth = auth;
        self
    }

    fn authorization(self, value: impl AsRef<[u8]>) -> Row {
        self.auth(Auth::Header(value.as_ref().to_vec()))
    }

    fn json(self, body: impl AsRef<[u8]>) -> Row {
        self.raw(Some("application/json"), body)
    }

    fn raw(mut self, content_type: Option<&'static str>, body: impl AsRef<[u8]>) -> Row {
        self.content_type = content_type;
        self.body = body.as_ref().to_vec();
        self
    }

    fn header(mut self, name: &'static str, value: impl AsRef<[u8]>) -> Row {
        self.headers.push((name, value.as_ref().to_vec()));
        self
    }

    fn expect(mut self, status: u16, code: &'static str) -> Row {
        self.status = status;
        self.code = code;
        self
    }
}

fn get(name: &'static str, input: &str, path: &str) -> Row {
    Row::new(name, input, Method::GET, path)
}

fn post(name: &'static str, input: &str, path: &str) -> Row {
    Row::new(name, input, Method::POST, path)
}

const REGISTER: &str =
    r#"{"email": "new@example.com", "password": "correct horse battery", "name": "New"}"#;
const LOGIN: &str =
    r#"{"email": "bad@example.com", "password": "correct horse battery", "device_name": "x"}"#;
const ORDER: &str = r#"{"items": [{"product_id": "{product}", "quantity": 1}]}"#;
const PRODUCT: &str =
    r#"{"sku": "NEW-1", "name": "N", "price": {"amount": 1, "currency": "EUR"}, "stock": 1}"#;

fn register(fields: &str) -> String {
    format!(r#"{{"email": "new@example.com", "password": "correct horse battery", {fields}}}"#)
}

fn order_with(line: &str) -> String {
    format!(r#"{{"items": [{{"product_id": "{{product}}", {line}}}]}}"#)
}

fn product_with(fields: &str) -> String {
    format!(r#"{{"sku": "NEW-1", "name": "N", {fields}}}"#)
}

fn nested(open: &str, close: &str, depth: usize) -> String {
    format!("{}{}", open.repeat(depth), close.repeat(depth))
}

/// THE table.
#[rustfmt::skip]
fn table() -> Vec<Row> {
    use Auth::*;
    let over_a_mebibyte = format!("{}{}", &REGISTER[..REGISTER.len() - 1], " ".repeat(1024 * 1024) + "}");
    let hundred_and_one_lines = format!(
        r#"{{"items": [{}]}}"#,
        (0..101).map(|n| format!(r#"{{"product_id": "00000000-0000-7000-8000-{n:012}", "quantity": 1}}"#)).collect::<Vec<_>>().join(", ")
    );
    let thirty_three_abilities = format!(r#"{{"name": "t", "abilities": [{}]}}"#, vec![r#""orders:read""#; 33].join(", "));
    let long_origin = format!(r#"{{"name": "C", "kind": "publishable", "abilities": ["products:read"], "allowed_origins": ["https://{}.example"]}}"#, "a".repeat(400));
    vec![
        // ------------------------------------------------ Authorization
        get("auth_basic_scheme", "`Authorization: Basic dXNlcjpwYXNz`", "/products").authorization("Basic dXNlcjpwYXNz").expect(401, "unauthenticated"),
        get("auth_no_header", "no `Authorization` header", "/products").auth(None).expect(401, "unauthenticated"),
        get("auth_bearer_without_token", "`Authorization: Bearer`", "/products").authorization("Bearer").expect(400, "invalid_request"),
        get("auth_bearer_only_spaces", "`Authorization: Bearer` and four spaces", "/products").authorization("Bearer    ").expect(400, "invalid_request"),
        get("auth_two_tokens_in_one_header", "`Authorization: Bearer <pk> <pk>`", "/products").authorization("Bearer {pk} {pk}").expect(400, "invalid_request"),
        get("auth_two_headers", "two `Authorization` headers", "/products").auth(TwicePk).expect(400, "invalid_request"),
        get("auth_token_in_query", "`?access_token=<pk>` as well as the header", "/products?access_token={pk}").expect(400, "invalid_request"),
        get("auth_oversized_2k", "`Authorization: Bearer` and 2,000 characters", "/products").authorization(format!("Bearer {}", "a".repeat(2000))).expect(400, "invalid_request"),
        get("auth_oversized_16k", "`Authorization: Bearer` and 16,000 characters", "/products").authorization(format!("Bearer {}", "a".repeat(16_000))).expect(431, "headers_too_large"),
        get("auth_bad_checksum", "a publishable key with its last character changed", "/products").authorization("Bearer {pk_bad_checksum}").expect(401, "invalid_token"),
        get("auth_truncated_token", "a publishable key without its last character", "/products").authorization("Bearer {pk_truncated}").expect(401, "invalid_token"),
        get("auth_unknown_prefix", "`jt_zz_` and 36 characters", "/products").authorization(format!("Bearer jt_zz_{}", "A".repeat(36))).expect(401, "invalid_token"),
        get("auth_unknown_token", "a well-formed secret key that was never issued", "/products").authorization("Bearer {unknown_sk}").expect(401, "invalid_token"),
        get("auth_sql_as_token", "`Authorization: Bearer ' OR '1'='1`", "/products").authorization("Bearer ' OR '1'='1").expect(400, "invalid_request"),
        get("auth_sql_in_token_chars", "`Authorization: Bearer jt_pk_';--`", "/products").authorization("Bearer jt_pk_';--").expect(400, "invalid_request"),
        get("auth_non_ascii_token", "`Authorization: Bearer jt_pk_é` (UTF-8)", "/products").authorization("Bearer jt_pk_\u{e9}").expect(400, "invalid_request"),
        get("auth_homoglyph_scheme", "`Authorization: Bеarer <pk>` with a Cyrillic `е`", "/products").authorization("B\u{435}arer {pk}").expect(400, "invalid_request"),
        get("auth_latin1_byte", "`Authorization: Bearer <pk>` and the byte 0xFF", "/products").authorization(b"Bearer jt_pk_\xff").expect(400, "invalid_request"),
        // ------------------------------------------------ a token of the wrong kind
        post("pk_creates_product", "publishable key on `POST /admin/products`", "/admin/products").json(PRODUCT).expect(403, "insufficient_scope"),
        get("ut_lists_clients", "user token on `GET /admin/clients`", "/admin/clients").auth(Ut).expect(403, "insufficient_scope"),
        post("pk_places_order", "publishable key on `POST /orders`", "/orders").json(ORDER).expect(403, "insufficient_scope"),
        post("sk_places_order", "secret key on `POST /orders`", "/orders").auth(Sk).json(ORDER).expect(403, "insufficient_scope"),
        get("sk_reads_me", "secret key on `GET /me`", "/me").auth(Sk).expect(403, "insufficient_scope"),
        post("ut_logs_in", "user token on `POST /auth/login`", "/auth/login").auth(Ut).json(LOGIN).expect(403, "insufficient_scope"),
        post("ut_registers", "user token on `POST /customers`", "/customers").auth(Ut).json(REGISTER).expect(403, "insufficient_scope"),
        post("pk_logs_out", "publishable key on `POST /auth/logout`", "/auth/logout").expect(403, "insufficient_scope"),
        get("pk_lists_tokens", "publishable key on `GET /me/tokens`", "/me/tokens").expect(403, "insufficient_scope"),
        post("sk_creates_user_token", "secret key on `POST /me/tokens`", "/me/tokens").auth(Sk).json(r#"{"name": "t"}"#).expect(403, "insufficient_scope"),
        // ------------------------------------------------ content types
        post("register_text_plain", "registration as `text/plain`", "/customers").raw(Some("text/plain"), REGISTER).expect(415, "unsupported_media_type"),
        post("register_form_urlencoded", "registration as `application/x-www-form-urlencoded`", "/customers").raw(Some("application/x-www-form-urlencoded"), "email=a%40b.c&password=x&name=y").expect(415, "unsupported_media_type"),
        post("register_no_content_type", "registration JSON without `Content-Type`", "/customers").raw(Option::None, REGISTER).expect(415, "unsupported_media_type"),
        post("order_multipart", "an order as `multipart/form-data`", "/orders").auth(Ut).raw(Some("multipart/form-data; boundary=x"), ORDER).expect(415, "unsupported_media_type"),
        post("login_jsonp", "login as `application/jsonp`", "/auth/login").raw(Some("application/jsonp"), LOGIN).expect(415, "unsupported_media_type"),
        post("product_xml", "a product as `application/xml`", "/admin/products").auth(Sk).raw(Some("application/xml"), "<product/>").expect(415, "unsupported_media_type"),
        // ------------------------------------------------ empty bodies
        post("register_empty_body", "registration, `application/json`, empty body", "/customers").json("").expect(400, "malformed_json"),
        post("login_whitespace_body", "login, `application/json`, body of spaces", "/auth/login").json("   ").expect(400, "malformed_json"),
        post("login_empty_object", "login `{}`", "/auth/login").json("{}").expect(422, "validation_failed"),
        post("order_no_lines", "order `{\"items\": []}`", "/orders").auth(Ut).json(r#"{"items": []}"#).expect(422, "validation_failed"),
        Row::new("patch_product_no_body", "`PATCH /admin/products/{id}`, no body, no `Content-Type`", Method::PATCH, "/admin/products/{product}").auth(Sk).expect(415, "unsupported_media_type"),
        // ------------------------------------------------ wrong JSON types
        post("register_email_number", "registration with `\"email\": 5`", "/customers").json(r#"{"email": 5, "password": "correct horse battery", "name": "N"}"#).expect(422, "validation_failed"),
        post("order_items_object", "order `{\"items\": {}}`", "/orders").auth(Ut).json(r#"{"items": {}}"#).expect(422, "validation_failed"),
        post("order_quantity_string", "order line with `\"quantity\": \"1\"`", "/orders").auth(Ut).json(order_with(r#""quantity": "1""#)).expect(422, "validation_failed"),
        post("order_body_array", "order body `[]`", "/orders").auth(Ut).json("[]").expect(422, "validation_failed"),
        post("order_body_null", "order body `null`", "/orders").auth(Ut).json("null").expect(422, "validation_failed"),
        post("order_body_string", "order body `\"items\"`", "/orders").auth(Ut).json(r#""items""#).expect(422, "validation_failed"),
        post("product_price_string", "product with `\"price\": \"10.00\"`", "/admin/products").auth(Sk).json(product_with(r#""price": "10.00", "stock": 1"#)).expect(422, "validation_failed"),
        post("product_stock_fraction", "product with `\"stock\": 1.5`", "/admin/products").auth(Sk).json(product_with(r#""price": {"amount": 1, "currency": "EUR"}, "stock": 1.5"#)).expect(422, "validation_failed"),
        post("token_abilities_string", "user token with `\"abilities\": \"orders:read\"`", "/me/tokens").auth(Ut).json(r#"{"name": "t", "abilities": "orders:read"}"#).expect(422, "validation_failed"),
        post("client_kind_unknown", "client with `\"kind\": \"admin\"`", "/admin/clients").auth(Sk).json(r#"{"name": "C", "kind": "admin", "abilities": ["products:read"]}"#).expect(422, "validation_failed"),
        // ------------------------------------------------ huge numbers
        post("order_quantity_20_digits", "order line with `\"quantity\": 99999999999999999999`", "/orders").auth(Ut).json(order_with(r#""quantity": 99999999999999999999"#)).expect(422, "validation_failed"),
        post("order_quantity_i64_max", "order line with `\"quantity\": 9223372036854775807`", "/orders").auth(Ut).json(order_with(r#""quantity": 9223372036854775807"#)).expect(422, "validation_failed"),
        post("order_quantity_negative", "order line with `\"quantity\": -1`", "/orders").auth(Ut).json(order_with(r#""quantity": -1"#)).expect(422, "validation_failed"),
        post("product_amount_i64_min", "product with `\"amount\": -9223372036854775808`", "/admin/products").auth(Sk).json(product_with(r#""price": {"amount": -9223372036854775808, "currency": "EUR"}, "stock": 1"#)).expect(422, "validation_failed"),
        post("product_stock_1e400", "product with `\"stock\": 1e400` (beyond f64)", "/admin/products").auth(Sk).json(product_with(r#""price": {"amount": 1, "currency": "EUR"}, "stock": 1e400"#)).expect(400, "malformed_json"),
        post("product_stock_small_exponent", "product with `\"stock\": 1e-3`", "/admin/products").auth(Sk).json(product_with(r#""price": {"amount": 1, "currency": "EUR"}, "stock": 1e-3"#)).expect(422, "validation_failed"),
        post("token_expiry_i64_max", "user token with `\"expires_in_seconds\": 9223372036854775807`", "/me/tokens").auth(Ut).json(r#"{"name": "t", "expires_in_seconds": 9223372036854775807}"#).expect(422, "validation_failed"),
        get("products_limit_huge", "`?limit=99999999999999999999`", "/products?limit=99999999999999999999").expect(422, "validation_failed"),
        get("products_limit_negative", "`?limit=-1`", "/products?limit=-1").expect(422, "validation_failed"),
        // ------------------------------------------------ deep JSON
        post("order_200_nested_arrays", "order body of 200 nested arrays", "/orders").auth(Ut).json(nested("[", "]", 200)).expect(422, "validation_failed"),
        post("order_100k_nested_arrays", "order body of 100,000 nested arrays (200 KB)", "/orders").auth(Ut).json(nested("[", "]", 100_000)).expect(422, "validation_failed"),
        post("order_200_nested_objects", "order body of 200 nested `{\"a\": …}`", "/orders").auth(Ut).json(nested(r#"{"a": "#, "}", 200).replacen("}", "1}", 1)).expect(422, "validation_failed"),
        post("order_items_nested_deep", "`{\"items\": ` and 200 nested arrays", "/orders").auth(Ut).json(format!(r#"{{"items": {}}}"#, nested("[", "]", 200))).expect(422, "validation_failed"),
        post("order_deep_unclosed", "order body of 200 `[` never closed", "/orders").auth(Ut).json("[".repeat(200)).expect(400, "malformed_json"),
        post("order_items_nested_shallow", "`{\"items\": [[[[1]]]]}`", "/orders").auth(Ut).json(r#"{"items": [[[[1]]]]}"#).expect(422, "validation_failed"),
        // ------------------------------------------------ unicode and NUL
        post("register_nul_in_name", "registration with `\"name\": \"Ann\\u0000\"`", "/customers").json(register(r#""name": "Ann\u0000""#)).expect(422, "validation_failed"),
        post("register_nul_in_email", "registration with `\"email\": \"a\\u0000@example.com\"`", "/customers").json(r#"{"email": "a\u0000@example.com", "password": "correct horse battery", "name": "N"}"#).expect(422, "validation_failed"),
        post("register_escape_in_name", "registration with an ANSI escape (`\\u001b[31m`) in the name", "/customers").json(register(r#""name": "\u001b[31mRed""#)).expect(422, "validation_failed"),
        post("login_nul_in_password", "login with `\\u0000` inside the password", "/auth/login").json(r#"{"email": "bad@example.com", "password": "correct\u0000horse"}"#).expect(400, "invalid_credentials"),
        post("login_unicode_email", "login as `ännä@exämple.com`", "/auth/login").json(r#"{"email": "ännä@exämple.com", "password": "correct horse battery"}"#).expect(400, "invalid_credentials"),
        post("register_invalid_utf8", "registration whose JSON holds the byte 0xFF", "/customers").json(b"{\"email\": \"\xff@example.com\", \"password\": \"correct horse battery\", \"name\": \"N\"}").expect(400, "malformed_json"),
        post("register_lone_surrogate", "registration with `\\ud800` (a lone surrogate)", "/customers").json(register(r#""name": "\ud800""#)).expect(400, "malformed_json"),
        post("register_utf8_bom", "registration JSON after a UTF-8 byte-order mark", "/customers").json(format!("\u{feff}{REGISTER}")).expect(400, "malformed_json"),
        get("product_path_nul", "`GET /products/%00`", "/products/%00").expect(404, "not_found"),
        get("product_path_unicode", "`GET /products/%E2%9C%93` (✓)", "/products/%E2%9C%93").expect(404, "not_found"),
        get("product_path_invalid_utf8", "`GET /products/%FF`", "/products/%FF").expect(404, "not_found"),
        get("products_query_nul", "`?q=%00`", "/products?q=%00").expect(422, "validation_failed"),
        get("products_query_unicode", "`?q=%E2%9C%93` (✓)", "/products?q=%E2%9C%93").expect(200, ""),
        get("products_query_invalid_utf8", "`?q=%FF` (read as U+FFFD)", "/products?q=%FF").expect(200, ""),
        get("header_obs_text", "`X-Note: café` (UTF-8 in a header)", "/products").header("x-note", "caf\u{e9}").expect(400, "invalid_header"),
        post("order_idempotency_key_utf8", "`Idempotency-Key: café` (UTF-8)", "/orders").auth(Ut).header("idempotency-key", "caf\u{e9}").json(ORDER).expect(400, "invalid_idempotency_key"),
        // ------------------------------------------------ SQL-looking strings
        get("products_query_sql", "`?q=' OR 1=1 --`", "/products?q=%27%20OR%201%3D1%20--").expect(200, ""),
        get("products_query_sql_union", "`?q=x' UNION SELECT token_hash FROM user_tokens --`", "/products?q=x%27%20UNION%20SELECT%20token_hash%20FROM%20user_tokens%20--").expect(200, ""),
        get("product_id_sql", "`GET /products/1' OR '1'='1`", "/products/1%27%20OR%20%271%27%3D%271").expect(404, "not_found"),
        post("order_product_id_sql", "order line with `\"product_id\": \"' OR 1=1 --\"`", "/orders").auth(Ut).json(r#"{"items": [{"product_id": "' OR 1=1 --", "quantity": 1}]}"#).expect(422, "validation_failed"),
        post("login_sql_email", "login with `\"email\": \"' OR 1=1 --\"`", "/auth/login").json(r#"{"email": "' OR 1=1 --", "password": "correct horse battery"}"#).expect(400, "invalid_credentials"),
        post("register_sql_email", "registration with `\"email\": \"x'); DROP TABLE customers; --\"`", "/customers").json(r#"{"email": "x'); DROP TABLE customers; --", "password": "correct horse battery", "name": "N"}"#).expect(422, "validation_failed"),
        post("product_sql_sku", "product with `\"sku\": \"'; DROP TABLE products; --\"`", "/admin/products").auth(Sk).json(r#"{"sku": "'; DROP TABLE products; --", "name": "N", "price": {"amount": 1, "currency": "EUR"}, "stock": 1}"#).expect(422, "validation_failed"),
        get("audit_filter_sql", "`GET /admin/audit?client_id=' OR 1=1`", "/admin/audit?client_id=%27%20OR%201%3D1").auth(Sk).expect(422, "validation_failed"),
        get("audit_type_sql", "`GET /admin/audit?type=' OR 1=1 --`", "/admin/audit?type=%27%20OR%201%3D1%20--").auth(Sk).expect(200, ""),
        get("admin_customers_email_sql", "`GET /admin/customers?email=' OR 1=1 --`", "/admin/customers?email=%27%20OR%201%3D1%20--").auth(Sk).expect(200, ""),
        get("admin_customers_email_wildcard", "`GET /admin/customers?email=%` (a literal `%`)", "/admin/customers?email=%25").auth(Sk).expect(200, ""),
        get("admin_orders_status_sql", "`GET /admin/orders?status=' OR 1=1`", "/admin/orders?status=%27%20OR%201%3D1").auth(Sk).expect(422, "validation_failed"),
        get("products_cursor_sql", "`?cursor=';--`", "/products?cursor=%27%3B--").expect(422, "validation_failed"),
        // ------------------------------------------------ extra fields
        post("order_extra_price", "order line with `\"price\": 1`", "/orders").auth(Ut).json(order_with(r#""quantity": 1, "price": 1"#)).expect(422, "validation_failed"),
        post("order_extra_customer_id", "order with `\"customer_id\"`", "/orders").auth(Ut).json(r#"{"items": [{"product_id": "{product}", "quantity": 1}], "customer_id": "someone-else"}"#).expect(422, "validation_failed"),
        post("register_extra_customer_id", "registration with `\"customer_id\"`", "/customers").json(register(r#""name": "N", "customer_id": "x""#)).expect(422, "validation_failed"),
        post("login_extra_field", "login with `\"remember_me\": true`", "/auth/login").json(r#"{"email": "bad@example.com", "password": "correct horse battery", "remember_me": true}"#).expect(422, "validation_failed"),
        post("product_extra_nested", "product price with `\"tax\": 0`", "/admin/products").auth(Sk).json(product_with(r#""price": {"amount": 1, "currency": "EUR", "tax": 0}, "stock": 1"#)).expect(422, "validation_failed"),
        get("products_unknown_query", "`GET /products?sort=price`", "/products?sort=price").expect(422, "validation_failed"),
        // ------------------------------------------------ sizes
        post("body_over_one_mebibyte", "registration padded to just over 1 MiB", "/customers").json(over_a_mebibyte).expect(413, "payload_too_large"),
        post("register_password_257", "registration with a 257-character password", "/customers").json(format!(r#"{{"email": "new@example.com", "password": "{}", "name": "N"}}"#, "p".repeat(257))).expect(422, "validation_failed"),
        post("register_password_7", "registration with a 7-character password", "/customers").json(r#"{"email": "new@example.com", "password": "1234567", "name": "N"}"#).expect(422, "validation_failed"),
        post("login_password_10k", "login with a 10,000-character password (refused before hashing)", "/auth/login").json(format!(r#"{{"email": "bad@example.com", "password": "{}"}}"#, "p".repeat(10_000))).expect(422, "validation_failed"),
        post("register_name_201", "registration with a 201-character name", "/customers").json(register(&format!(r#""name": "{}""#, "n".repeat(201)))).expect(422, "validation_failed"),
        post("register_email_300", "registration with a 300-character email", "/customers").json(format!(r#"{{"email": "{}@example.com", "password": "correct horse battery", "name": "N"}}"#, "e".repeat(288))).expect(422, "validation_failed"),
        post("order_101_lines", "order with 101 lines", "/orders").auth(Ut).json(hundred_and_one_lines).expect(422, "validation_failed"),
        post("token_33_abilities", "user token listing 33 abilities", "/me/tokens").auth(Ut).json(thirty_three_abilities).expect(422, "validation_failed"),
        post("client_origin_too_long", "client with a 400-character origin", "/admin/clients").auth(Sk).json(long_origin).expect(422, "validation_failed"),
        post("order_idempotency_key_256", "`Idempotency-Key` of 256 characters", "/orders").auth(Ut).header("idempotency-key", "k".repeat(256)).json(ORDER).expect(400, "invalid_idempotency_key"),
        get("header_value_9k", "an `X-Note` header of 9,000 bytes", "/products").header("x-note", "n".repeat(9000)).expect(431, "headers_too_large"),
        get("products_query_q_101", "`?q=` and 101 characters", &format!("/products?q={}", "q".repeat(101))).expect(422, "validation_failed"),
        // ------------------------------------------------ identities, lifetimes, money
        post("register_email_zero_width", "registration with a zero-width space before the email's `@`", "/customers").json(r#"{"email": "alice\u200b@example.com", "password": "correct horse battery", "name": "N"}"#).expect(422, "validation_failed"),
        post("register_email_soft_hyphen", "registration with a soft hyphen in the email's local part", "/customers").json(r#"{"email": "ali\u00adce@example.com", "password": "correct horse battery", "name": "N"}"#).expect(422, "validation_failed"),
        post("register_email_cyrillic", "registration with a Cyrillic `а` in the email's local part", "/customers").json(r#"{"email": "\u0430lice@example.com", "password": "correct horse battery", "name": "N"}"#).expect(422, "validation_failed"),
        post("register_email_combining", "registration with `jose` and a combining acute accent before the `@`", "/customers").json(r#"{"email": "jose\u0301@example.com", "password": "correct horse battery", "name": "N"}"#).expect(422, "validation_failed"),
        post("register_email_markup", "registration with `\"email\": \"<script>alert(1)</script>@x.com\"`", "/customers").json(r#"{"email": "<script>alert(1)</script>@x.com", "password": "correct horse battery", "name": "N"}"#).expect(422, "validation_failed"),
        post("register_email_quoted", "registration with a quoted local part, `\"\\\"ann\\\"@example.com\"`", "/customers").json(r#"{"email": "\"ann\"@example.com", "password": "correct horse battery", "name": "N"}"#).expect(422, "validation_failed"),
        post("token_expiry_null_from_login", "user token with `\"expires_in_seconds\": null`, made by a login token", "/me/tokens").auth(Ut).json(r#"{"name": "t", "expires_in_seconds": null}"#).expect(422, "validation_failed"),
        post("token_expiry_beyond_login", "user token with ten years' `\"expires_in_seconds\"`, made by a login token", "/me/tokens").auth(Ut).json(r#"{"name": "t", "expires_in_seconds": 315360000}"#).expect(422, "validation_failed"),
        post("product_amount_beyond_js", "product with `\"amount\": 9007199254741` (1,000 of it pass 2^53)", "/admin/products").auth(Sk).json(product_with(r#""price": {"amount": 9007199254741, "currency": "EUR"}, "stock": 1"#)).expect(422, "validation_failed"),
        get("me_tokens_limit_101", "`GET /me/tokens?limit=101`", "/me/tokens?limit=101").auth(Ut).expect(422, "validation_failed"),
        get("me_tokens_cursor_sql", "`GET /me/tokens?cursor=';--`", "/me/tokens?cursor=%27%3B--").auth(Ut).expect(422, "validation_failed"),
        post("cancel_unknown_order", "`POST /admin/orders/{id}/cancel` for an id no order has", "/admin/orders/01900000-0000-7000-8000-000000000000/cancel").auth(Sk).expect(404, "not_found"),
        post("ut_cancels_order", "user token on `POST /admin/orders/{id}/cancel`", "/admin/orders/01900000-0000-7000-8000-000000000000/cancel").auth(Ut).expect(403, "insufficient_scope"),
        // ------------------------------------------------ methods and paths
        Row::new("put_products", "`PUT /products`", Method::PUT, "/products").expect(405, "method_not_allowed"),
        Row::new("delete_me", "`DELETE /me`", Method::DELETE, "/me").auth(Ut).expect(405, "method_not_allowed"),
        get("unknown_path", "`GET /api/v1/nope`", "/nope").expect(404, "not_found"),
        get("dot_dot_path", "`GET /api/v1/../admin/clients`", "/../admin/clients").auth(Sk).expect(404, "not_found"),
        get("order_id_not_uuid", "`GET /me/orders/1`", "/me/orders/1").auth(Ut).expect(404, "not_found"),
    ]
}

// ---------------------------------------------------------------- running it

struct Secrets {
    pk: String,
    sk: String,
    ut: String,
    unknown_sk: String,
    product: String,
}

impl Secrets {
    fn fill(&self, text: &[u8]) -> Vec<u8> {
        let mut pk_bad_checksum = self.pk.clone();
        let last = pk_bad_checksum.pop().unwrap();
        pk_bad_checksum.push(if last == 'A' { 'B' } else { 'A' });
        let replacements = [
            ("{pk_bad_checksum}", pk_bad_checksum),
            ("{pk_truncated}", self.pk[..self.pk.len() - 1].to_owned()),
            ("{pk}", self.pk.clone()),
            ("{sk}", self.sk.clone()),
            ("{ut}", self.ut.clone()),
            ("{unknown_sk}", self.unknown_sk.clone()),
            ("{product}", self.product.clone()),
        ];
        let mut out = text.to_vec();
        for (from, to) in replacements {
            out = replace(&out, from.as_bytes(), to.as_bytes());
        }
        out
    }
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}")).unwrap()
}

async fn send(app: &TestApp, secrets: &Secrets, row: &Row) -> (u16, String, Option<String>) {
    let path = String::from_utf8(secrets.fill(format!("/api/v1{}", row.path).as_bytes())).unwrap();
    let mut request = Request::builder()
        .method(row.method.clone())
        .uri(path)
        .body(Body::from(secrets.fill(&row.body)))
        .unwrap();
    let headers = request.headers_mut();
    match &row.auth {
        Auth::None => {}
        Auth::Pk => {
            headers.insert("authorization", bearer(&secrets.pk));
        }
        Auth::Sk => {
            headers.insert("authorization", bearer(&secrets.sk));
        }
        Auth::Ut => {
            headers.insert("authorization", bearer(&secrets.ut));
        }
        Auth::TwicePk => {
            headers.append("authorization", bearer(&secrets.pk));
            headers.append("authorization", bearer(&secrets.pk));
        }
        Auth::Header(value) => {
            headers.insert(
                "authorization",
                HeaderValue::from_bytes(&secrets.fill(value)).unwrap(),
            );
        }
    }
    if let Some(content_type) = row.content_type {
        headers.insert("content-type", HeaderValue::from_static(content_type));
    }
    for (name, value) in &row.headers {
        headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        String::from_utf8_lossy(&body).into_owned(),
        content_type,
    )
}

on_both_databases!(bad_input_table);

async fn bad_input_table(app: TestApp) {
    let secrets = Secrets {
        pk: app.publishable_key().await,
        sk: app.admin_key().await,
        ut: app.customer("bad@example.com").await.1,
        unknown_sk: TOKENS
            .generate(TokenKind::Secret)
            .expose_secret()
            .to_owned(),
        product: app.product("BAD-1", 500, "EUR", 10).await.id.into(),
    };
    let before = app.row_counts(&STORE_TABLES).await;

    let rows = table();
    let mut wrong = Vec::new();
    for row in &rows {
        let (status, body, content_type) = send(&app, &secrets, row).await;
        assert!(status < 500, "{}: {status} {body}", row.name);
        for secret in [&secrets.pk, &secrets.sk, &secrets.ut] {
            assert!(
                !body.contains(secret.as_str()),
                "{}: echoes a credential",
                row.name
            );
        }
        let code = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned))
            .unwrap_or_default();
        if status >= 400 {
            assert_eq!(
                content_type.as_deref(),
                Some("application/problem+json"),
                "{}: every error is problem+json",
                row.name
            );
        }
        if (status, code.as_str()) != (row.status, row.code) {
            wrong.push(format!(
                "{}: expected {} {:?}, got {status} {code:?}: {}",
                row.name,
                row.status,
                row.code,
                body.chars().take(300).collect::<String>()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "rows that got another answer:\n{}",
        wrong.join("\n")
    );
    assert_eq!(
        app.row_counts(&STORE_TABLES).await,
        before,
        "a bad input wrote something"
    );
    assert_eq!(app.stock(&secrets.product).await, 10);
}

// ---------------------------------------------------------------- the table itself

#[test]
fn the_table_is_big_and_its_names_are_unique() {
    let rows = table();
    assert!(rows.len() >= 40, "{} rows", rows.len());
    let mut names: Vec<&str> = rows.iter().map(|row| row.name).collect();
    names.sort_unstable();
    let count = names.len();
    names.dedup();
    assert_eq!(names.len(), count, "duplicate row names");
    for row in &rows {
        assert!(row.status >= 200, "{}: no expectation", row.name);
        assert!(row.status < 500, "{}: no row may expect a 5xx", row.name);
        assert_eq!(row.status < 300, row.code.is_empty(), "{}", row.name);
    }
}

/// The line of `docs/bad-input.md` for a row.
fn doc_line(row: &Row) -> String {
    let code = if row.code.is_empty() {
        "(none)".to_owned()
    } else {
        format!("`{}`", row.code)
    };
    format!(
        "| `{}` | {} | {} | {code} |",
        row.name, row.input, row.status
    )
}

#[test]
fn the_docs_list_every_row() {
    let docs = include_str!("../../../../docs/bad-input.md");
    let missing: Vec<String> = table()
        .iter()
        .map(doc_line)
        .filter(|line| !docs.lines().any(|doc| doc.trim() == line))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/bad-input.md lacks (or differs on) these rows:\n{}",
        missing.join("\n")
    );
}

// ---------------------------------------------------------------- connections

/// Short limits, so that the tests wait fractions of a second.
fn short_limits() -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: Duration::from_millis(300),
        keep_alive_timeout: Duration::from_millis(300),
        max_connections: 64,
    }
}

/// Reads until the server closes the connection (or resets it); returns
/// what came. Fails if it stays open for `limit`, far beyond the timeouts
/// under test.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> Vec<u8> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut chunk))
            .await
            .expect("the server closes the connection")
        {
            Ok(0) | Err(_) => return received,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let app = TestApp::sqlite().await;
    let address = serve_with(&app, short_limits()).await;
    // One header line, and then nothing.
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(20)).await;
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    // A connection that sends nothing at all is closed too.
    let mut silent = tokio::net::TcpStream::connect(address).await.unwrap();
    read_until_closed(&mut silent, Duration::from_secs(20)).await;
}

#[tokio::test]
async fn trickled_headers_are_cut_off() {
    let app = TestApp::sqlite().await;
    let address = serve_with(&app, short_limits()).await;
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // One byte every 50 ms: the whole request would take seconds, each
    // byte well within the timeout of the one before.
    let request = HEALTHZ.to_vec();
    let trickle = tokio::spawn(async move {
        let mut sent = 0;
        for byte in request {
            if writer.write_all(&[byte]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sent
    });
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), reader.read(&mut chunk))
            .await
            .expect("the server closes the connection")
        {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
    let sent = trickle.await.unwrap();
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "the trickled request was never served"
    );
    assert!(
        sent < HEALTHZ.len(),
        "closed before the request was complete ({sent} bytes)"
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_and_busy_ones_are_not() {
    let app = TestApp::sqlite().await;
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_millis(400),
        keep_alive_timeout: Duration::from_millis(400),
        ..short_limits()
    };
    let address = serve_with(&app, limits).await;
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // Several requests on one connection, each promptly: all answered.
    for _ in 0..3 {
        stream.write_all(HEALTHZ).await.unwrap();
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(
            chunk[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&chunk[..n])
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Then idle: closed after the keep-alive timeout.
    assert!(
        read_until_closed(&mut stream, Duration::from_secs(20))
            .await
            .is_empty()
    );

    // A body that comes after the header timeout is still read: the timeout
    // is for headers only, and the request timeout covers the rest.
    let pk = app.publishable_key().await;
    let body = br#"{"email": "ann@example.com", "password": "correct horse battery"}"#;
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Authorization: Bearer {pk}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    stream.write_all(body).await.unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(20)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("invalid_credentials"), "{answer}");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_one() {
    let app = TestApp::sqlite().await;
    let limits = ConnectionLimits {
        max_connections: 1,
        ..ConnectionLimits::default()
    };
    let address = serve_with(&app, limits).await;
    // The first connection takes the only slot, busy with a request whose
    // body has not come yet (an idle one would give way: see below).
    let pk = app.publishable_key().await;
    let mut first = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {pk}\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\n\r\n"
    );
    first.write_all(head.as_bytes()).await.unwrap();
    let mut chunk = [0u8; 4096];
    // A second one is not served while the first is open...
    let mut second = tokio::net::TcpStream::connect(address).await.unwrap();
    second.write_all(HEALTHZ).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(300), second.read(&mut chunk)).await;
    assert!(waited.is_err(), "served beyond the cap");
    // ...and is as soon as the first closes.
    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(20), second.read(&mut chunk))
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert!(chunk[..n].starts_with(b"HTTP/1.1 200"));
}

/// A full cap of idle keep-alive connections (each did one request and
/// then sits, as a browser's or a slow attacker's do) gives way: a new
/// connection is served within a second, not after the keep-alive timeout.
/// A connection in the middle of a request is not cut short.
#[tokio::test]
async fn idle_connections_give_way_to_new_ones_at_the_cap() {
    const CAP: usize = 4;
    let app = TestApp::sqlite().await;
    let limits = ConnectionLimits {
        max_connections: CAP,
        ..ConnectionLimits::default()
    };
    let address = serve_with(&app, limits).await;
    let mut chunk = [0u8; 4096];
    // One connection busy: its request's headers are in, its body comes
    // later.
    let pk = app.publishable_key().await;
    let body = br#"{"email": "ann@example.com", "password": "correct horse battery"}"#;
    let mut busy = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Authorization: Bearer {pk}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    busy.write_all(head.as_bytes()).await.unwrap();
    // The rest of the slots: idle keep-alive connections.
    let mut idle = Vec::new();
    for _ in 1..CAP {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.write_all(HEALTHZ).await.unwrap();
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(chunk[..n].starts_with(b"HTTP/1.1 200"));
        idle.push(stream);
    }
    for round in 0..3 {
        let started = std::time::Instant::now();
        let mut fresh = tokio::net::TcpStream::connect(address).await.unwrap();
        fresh.write_all(HEALTHZ).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(1), fresh.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("round {round}: not served within a second"))
            .unwrap();
        assert!(
            chunk[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&chunk[..n])
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        // It stays open, idle, in turn.
        idle.push(fresh);
    }
    // The idle ones that gave way were closed by the server.
    let mut closed = 0;
    for stream in &mut idle {
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(200), stream.read(&mut chunk)).await
        {
            closed += 1;
        }
    }
    assert!(closed >= 3, "{closed} idle connections closed");
    // The busy one was not: its request completes.
    busy.write_all(body).await.unwrap();
    let answer = read_until_closed(&mut busy, Duration::from_secs(20)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("invalid_credentials"), "{answer}");
}
