//! OAuth 2.0 for server-side clients (`docs/oauth.md`): the client
//! credentials grant by both client authentication methods, through the
//! `oauth2` crate and by hand; access tokens standing in for their client's
//! secret key and dying with it; introspection, revocation and the
//! metadata; every bad input; and Python's `authlib` against a real server.

use jeton::identity::TOKENS;
use std::{convert::Infallible, path::PathBuf, process::Command};

use axum::body::Body;
use http_body_util::BodyExt;
use jeton::{config::Config, domain::client::ClientKind};
use jeton_auth::{TokenKind, limits::FailedAuthLimit};
use oauth2::{
    AccessToken, AuthType, ClientId, ClientSecret, HttpRequest, HttpResponse, IntrospectionUrl,
    RevocationUrl, Scope, StandardRevocableToken, TokenIntrospectionResponse, TokenResponse,
    TokenUrl, basic::BasicClient,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tower::ServiceExt;

use crate::{
    on_both_databases,
    support::{
        Backend, PASSWORD, SHOP, TestApp, enc, keys, last4,
        process::{Server, keyed_database},
        s,
    },
};

/// What an `oauth2` client sends, through the app's router in process.
fn in_process(app: &TestApp) -> impl Fn(HttpRequest) -> BoxedResponse + use<> {
    let router = app.router.clone();
    move |request: HttpRequest| {
        let router = router.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let request = axum::http::Request::from_parts(parts, Body::from(body));
            let response = router.oneshot(request).await.unwrap();
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await.unwrap().to_bytes().to_vec();
            Ok(HttpResponse::from_parts(parts, bytes))
        })
    }
}

type BoxedResponse =
    std::pin::Pin<Box<dyn Future<Output = Result<HttpResponse, Infallible>> + Send>>;

/// A secret client with `abilities`: (client id, secret key).
async fn secret_client(app: &TestApp, abilities: &[&str]) -> (String, String) {
    app.client(ClientKind::Secret, abilities, &[]).await
}

const URL: &str = "https://jeton.test";

// ---------------------------------------------------------------- the grant, with a real client

on_both_databases!(
    the_oauth2_crate_gets_tokens_by_both_methods_and_uses_them,
    tokens_act_as_their_client_with_their_scope,
    introspection_through_the_oauth2_crate,
    revocation_through_the_oauth2_crate,
);

async fn the_oauth2_crate_gets_tokens_by_both_methods_and_uses_them(app: TestApp) {
    let (id, secret) = secret_client(&app, &["admin", "products:read"]).await;
    let http = in_process(&app);
    for auth_type in [AuthType::BasicAuth, AuthType::RequestBody] {
        let client = BasicClient::new(ClientId::new(id.clone()))
            .set_client_secret(ClientSecret::new(secret.clone()))
            .set_token_uri(TokenUrl::new(format!("{URL}/oauth/token")).unwrap())
            .set_auth_type(auth_type.clone());
        // No scope: the client's abilities.
        let all = client
            .exchange_client_credentials()
            .request_async(&http)
            .await
            .unwrap_or_else(|e| panic!("{auth_type:?}: {e:?}"));
        let token = all.access_token().secret();
        assert!(token.starts_with("jt_at_") && token.len() == 42);
        assert_eq!(all.expires_in().unwrap().as_secs(), 900);
        let scopes: Vec<String> = all
            .scopes()
            .unwrap()
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(scopes, ["admin", "products:read"]);
        app.get("/api/v1/admin/clients")
            .bearer(token)
            .send()
            .await
            .expect(200);
        app.assert_works(token).await;
        // A narrower scope.
        let narrow = client
            .exchange_client_credentials()
            .add_scope(Scope::new("products:read".into()))
            .request_async(&http)
            .await
            .unwrap();
        let narrow = narrow.access_token().secret();
        app.assert_works(narrow).await;
        app.get("/api/v1/admin/clients")
            .bearer(narrow)
            .send()
            .await
            .expect_problem(403, "insufficient_scope");
    }
    // Only the hashes are stored.
    let stored: Vec<(String, String)> =
        sqlx::query_as("SELECT token_hash, scope FROM auth_access_tokens ORDER BY id")
            .fetch_all(&app.side_pool().await)
            .await
            .unwrap();
    assert_eq!(stored.len(), 4);
    assert!(stored.iter().all(|(hash, _)| hash.len() == 64));
    let issued = app.audit_actions().await;
    assert_eq!(
        issued
            .iter()
            .filter(|a| *a == "access_token.issued")
            .count(),
        4
    );
}

async fn tokens_act_as_their_client_with_their_scope(app: TestApp) {
    let admin = app.admin_key().await;
    let created = app
        .create_client(
            &admin,
            json!({"name": "warehouse", "kind": "secret", "abilities": ["products:read", "admin"],
                   "rate_limit_per_minute": 4}),
        )
        .await;
    created.expect(201);
    let (id, secret) = (
        s(&created.json()["client"]["id"]),
        s(&created.json()["key"]),
    );
    // The exchange counts toward the client's limit, as its requests do.
    let token = app.access_token(&id, &secret, Some("products:read")).await;
    let res = app.get("/api/v1/products").bearer(&token).send().await;
    res.expect(200);
    assert_eq!(res.header("ratelimit-limit").as_deref(), Some("4"));
    assert_eq!(res.header("ratelimit-remaining").as_deref(), Some("2"));
    app.get("/api/v1/products")
        .bearer(&secret)
        .send()
        .await
        .expect(200);
    app.get("/api/v1/products")
        .bearer(&token)
        .send()
        .await
        .expect(200);
    app.get("/api/v1/products")
        .bearer(&token)
        .send()
        .await
        .expect_problem(429, "rate_limited");
    app.token_request(&id, &secret, "grant_type=client_credentials")
        .await
        .expect_oauth_error(429, "rate_limited");

    // Refused from a browser, like a secret key, and recorded against it.
    let (id, secret) = secret_client(&app, &["products:read"]).await;
    let token = app.access_token(&id, &secret, None).await;
    app.products(&token, Some(SHOP))
        .await
        .expect_refused("secret_key_in_browser");
    assert!(
        app.audit_actions()
            .await
            .contains(&"access_token.refused_in_browser".to_owned())
    );
    // Not a user token.
    app.get("/api/v1/me")
        .bearer(&token)
        .send()
        .await
        .expect_problem(403, "insufficient_scope");
    // Expired in the store: never accepted.
    let expired = app.access_token(&id, &secret, None).await;
    let hash = TOKENS.parse(&expired).unwrap().hash().to_hex();
    sqlx::query("UPDATE auth_access_tokens SET expires_at = 1 WHERE token_hash = $1")
        .bind(hash)
        .execute(&app.side_pool().await)
        .await
        .unwrap();
    app.assert_dead(&expired).await;
}

async fn introspection_through_the_oauth2_crate(app: TestApp) {
    let (id, secret) = secret_client(&app, &["tokens:introspect", "products:read"]).await;
    let token = app.access_token(&id, &secret, Some("products:read")).await;
    let client = BasicClient::new(ClientId::new(id.clone()))
        .set_client_secret(ClientSecret::new(secret))
        .set_introspection_url(IntrospectionUrl::new(format!("{URL}/oauth/introspect")).unwrap());
    let http = in_process(&app);
    let found = client
        .introspect(&AccessToken::new(token))
        .request_async(&http)
        .await
        .unwrap();
    assert!(found.active());
    assert_eq!(found.client_id().unwrap().as_str(), id);
    let scopes: Vec<String> = found
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(scopes, ["products:read"]);
    assert!(found.exp().is_some() && found.iat().is_some());
    let unknown = TOKENS.generate(TokenKind::Access);
    let found = client
        .introspect(&AccessToken::new(unknown.expose_secret().to_owned()))
        .request_async(&http)
        .await
        .unwrap();
    assert!(!found.active());
}

async fn revocation_through_the_oauth2_crate(app: TestApp) {
    let (id, secret) = secret_client(&app, &["products:read"]).await;
    let token = app.access_token(&id, &secret, None).await;
    app.assert_works(&token).await;
    let client = BasicClient::new(ClientId::new(id))
        .set_client_secret(ClientSecret::new(secret))
        .set_auth_type(AuthType::RequestBody)
        .set_revocation_url(RevocationUrl::new(format!("{URL}/oauth/revoke")).unwrap());
    client
        .revoke_token(StandardRevocableToken::AccessToken(AccessToken::new(
            token.clone(),
        )))
        .unwrap()
        .request_async(&in_process(&app))
        .await
        .unwrap();
    app.assert_dead(&token).await;
}

// ---------------------------------------------------------------- the token endpoint's rules

on_both_databases!(
    token_answers_and_errors,
    bad_input_is_invalid_request,
    scope_narrowing,
    client_authentication_failures,
);

on_both_databases!(a_secret_key_from_a_browser_is_refused_flagged_and_gets_no_cors);

/// The OAuth endpoints keep the API's rule: a secret key (or an access
/// token) that comes with an `Origin` was sent by a browser, so it has
/// leaked. RFC 6749's `invalid_client`, no CORS header for the page to read
/// it with (preflights neither), and the key flagged and audited as on the
/// API, once a minute.
async fn a_secret_key_from_a_browser_is_refused_flagged_and_gets_no_cors(app: TestApp) {
    // SHOP is an origin CORS allows otherwise (a client made through the
    // admin API, so that CORS knows it at once).
    let admin = app.admin_key().await;
    app.create_client(
        &admin,
        json!({"name": "Shop", "kind": "publishable", "abilities": ["products:read"],
               "allowed_origins": [SHOP]}),
    )
    .await
    .expect(201);
    let res = app
        .req(axum::http::Method::OPTIONS, "/api/v1/products")
        .header("origin", SHOP)
        .header("access-control-request-method", "GET")
        .send()
        .await;
    assert_eq!(
        res.header("access-control-allow-origin").as_deref(),
        Some(SHOP),
        "CORS allows SHOP on the API"
    );
    let (id, secret) = secret_client(&app, &["products:read", "tokens:introspect"]).await;
    let token = app.access_token(&id, &secret, None).await;
    let issued = || async {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM auth_access_tokens")
            .fetch_one(&app.side_pool().await)
            .await
            .unwrap();
        n
    };
    let before = issued().await;
    let no_cors = |res: &crate::support::Res, what: &str| {
        for (name, _) in &res.headers {
            assert!(
                !name.as_str().starts_with("access-control-"),
                "{what}: {:?}",
                res.headers
            );
        }
    };
    let form = format!("grant_type=client_credentials&token={}", enc(&token));
    for path in ["/oauth/token", "/oauth/revoke", "/oauth/introspect"] {
        for origin in [SHOP, "https://evil.example"] {
            let res = app
                .post(path)
                .basic(&id, &secret)
                .header("origin", origin)
                .form(&form)
                .send()
                .await;
            res.expect_oauth_error(401, "invalid_client");
            assert!(!res.text().contains(&secret));
            no_cors(&res, path);
        }
        // A preflight neither.
        let res = app
            .req(axum::http::Method::OPTIONS, path)
            .header("origin", SHOP)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization")
            .send()
            .await;
        no_cors(&res, path);
    }
    // Introspection by a bearer secret key or access token, too.
    for bearer in [&secret, &token] {
        let res = app
            .post("/oauth/introspect")
            .bearer(bearer)
            .header("origin", SHOP)
            .form(&form)
            .send()
            .await;
        res.expect_oauth_error(401, "invalid_client");
        no_cors(&res, "introspect by bearer");
    }
    assert_eq!(issued().await, before, "no token was issued");
    // The access token was not revoked by the refused revocation.
    app.assert_works(&token).await;

    // Flagged as on the API: the key's refusals, and one audit event a
    // minute for the key and one for the access token.
    let refusals: Vec<(String,)> =
        sqlx::query_as("SELECT code FROM auth_refusals WHERE client_id = $1")
            .bind(&id)
            .fetch_all(&app.side_pool().await)
            .await
            .unwrap();
    assert_eq!(
        refusals,
        [
            ("secret_key_in_browser".to_owned(),),
            ("secret_key_in_browser".to_owned(),)
        ]
    );
    let actions = app.audit_actions().await;
    let count = |action: &str| actions.iter().filter(|a| *a == action).count();
    assert_eq!(count("client_key.refused_in_browser"), 1, "{actions:?}");
    assert_eq!(count("access_token.refused_in_browser"), 1, "{actions:?}");
    assert_eq!(count("oauth.client_authentication_failed"), 0);
    // From a server, the key still works.
    app.access_token(&id, &secret, None).await;
}

on_both_databases!(
    config = Config {
        failed_auth: FailedAuthLimit { failures: 3, window: std::time::Duration::from_secs(60) },
        ..Config::default()
    };
    failed_client_authentications_count_toward_the_ip_limit,
);

on_both_databases!(
    config = Config { access_token_ttl: time::Duration::minutes(5), ..Config::default() };
    the_lifetime_is_the_servers_and_never_outlives_the_key,
);

on_both_databases!(a_client_revoked_while_issuing_is_refused_as_revoked);

/// A key or client revoked between a caller's authentication and the
/// insert of what it obtains: the store says so in a type of its own, which
/// the token endpoint answers with 401 `invalid_client` and a login with
/// 401 `invalid_token`, as if the caller had come a moment later, never as
/// a failed statement (a 500).
async fn a_client_revoked_while_issuing_is_refused_as_revoked(app: TestApp) {
    use axum::response::IntoResponse as _;
    use jeton::{
        domain::{abilities, ids::ClientId as JetonClientId},
        http::error::AppError,
        store::{
            IssueError, access_tokens::NewAccessToken, audit::Audit, user_tokens::NewUserToken,
        },
    };

    let (id, _secret) = secret_client(&app, &["products:read"]).await;
    let (shop, _key) = app.publishable_client().await;
    let (customer_id, _token) = app.customer("ann@example.com").await;
    let client_id: JetonClientId = id.parse().unwrap();
    let shop: JetonClientId = shop.parse().unwrap();
    let key_id = app.db.get_client(&client_id).await.unwrap().unwrap().keys[0]
        .id
        .clone();
    for revoked in [&client_id, &shop] {
        assert!(
            app.db
                .revoke_client(revoked, false, &Audit::cli())
                .await
                .unwrap()
        );
    }

    let scope = "products:read".parse().unwrap();
    let exchanged = app
        .db
        .issue_access_token(
            &TOKENS.generate(TokenKind::Access),
            NewAccessToken {
                client_id: &client_id,
                key_id: &key_id,
                scope: &jeton_auth::AbilitySet::new([scope]),
                expires_at: app.now() + time::Duration::minutes(5),
            },
            &Audit::cli(),
        )
        .await;
    assert!(
        matches!(exchanged, Err(IssueError::Revoked)),
        "{exchanged:?}"
    );

    let logged_in = app
        .db
        .insert_user_token(
            &TOKENS.generate(TokenKind::User),
            NewUserToken {
                customer_id: &customer_id.parse().unwrap(),
                client_id: Some(&shop),
                name: "login",
                abilities: &abilities::user_ceiling(),
                expires_at: None,
            },
            &Audit::cli(),
        )
        .await;
    let Err(error) = logged_in else {
        panic!("a login through a revoked client was stored");
    };
    assert!(matches!(error, IssueError::Revoked), "{error:?}");
    let answer = AppError::from(error).into_response();
    assert_eq!(answer.status(), 401);
    let challenge = answer.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");
}

async fn token_answers_and_errors(app: TestApp) {
    let (id, secret) = secret_client(&app, &["products:read"]).await;
    // client_secret_post, an unknown parameter ignored.
    let res = app
        .post("/oauth/token")
        .form(&format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&audience=x",
            enc(&id),
            enc(&secret)
        ))
        .send()
        .await;
    res.expect(200).expect_oauth_headers();
    let body = res.json();
    assert_eq!(
        keys(&body),
        ["access_token", "expires_in", "scope", "token_type"]
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "products:read");
    assert!(!res.text().contains(&secret));
    // Missing or other grant types.
    app.token_request(&id, &secret, "scope=products:read")
        .await
        .expect_oauth_error(400, "invalid_request");
    for grant in [
        "password",
        "authorization_code",
        "refresh_token",
        "CLIENT_CREDENTIALS",
    ] {
        app.token_request(&id, &secret, &format!("grant_type={grant}"))
            .await
            .expect_oauth_error(400, "unsupported_grant_type");
    }
    // An empty parameter counts as absent.
    app.token_request(&id, &secret, "grant_type=")
        .await
        .expect_oauth_error(400, "invalid_request");
    let res = app
        .token_request(&id, &secret, "grant_type=client_credentials&scope=")
        .await;
    res.expect(200);
    assert_eq!(res.json()["scope"], "products:read");
}

async fn bad_input_is_invalid_request(app: TestApp) {
    let (id, secret) = secret_client(&app, &["products:read"]).await;
    let post_body = format!("client_id={}&client_secret={}", enc(&id), enc(&secret));
    for path in ["/oauth/token", "/oauth/revoke", "/oauth/introspect"] {
        // JSON is not a form.
        app.post(path)
            .basic(&id, &secret)
            .json(json!({"grant_type": "client_credentials", "token": "x"}))
            .send()
            .await
            .expect_oauth_error(400, "invalid_request");
        app.post(path)
            .basic(&id, &secret)
            .raw("text/plain", "grant_type=client_credentials")
            .send()
            .await
            .expect_oauth_error(400, "invalid_request");
        // A repeated parameter.
        app.post(path)
            .basic(&id, &secret)
            .form("grant_type=client_credentials&grant_type=client_credentials&token=a&token=b")
            .send()
            .await
            .expect_oauth_error(400, "invalid_request");
        // Credentials in both the header and the body.
        app.post(path)
            .basic(&id, &secret)
            .form(&format!(
                "grant_type=client_credentials&token=x&{post_body}"
            ))
            .send()
            .await
            .expect_oauth_error(400, "invalid_request");
        // Over 1 MiB.
        let huge = format!(
            "grant_type=client_credentials&pad={}",
            "a".repeat(1024 * 1024)
        );
        app.post(path)
            .basic(&id, &secret)
            .form(&huge)
            .send()
            .await
            .expect_oauth_error(413, "invalid_request");
    }
    // Missing token: introspection and revocation.
    for path in ["/oauth/revoke", "/oauth/introspect"] {
        app.post(path)
            .basic(&id, &secret)
            .form("token_type_hint=access_token")
            .send()
            .await
            .expect(if path == "/oauth/revoke" { 400 } else { 401 });
    }
}

async fn scope_narrowing(app: TestApp) {
    let (id, secret) = secret_client(&app, &["products:read", "orders:*", "admin"]).await;
    let scope_of = |res: &crate::support::Res| s(&res.json()["scope"]);
    for (asked, granted) in [
        ("products:read", "products:read"),
        ("admin  products:read", "admin products:read"),
        ("orders:read", "orders:read"),
        ("orders:*", "orders:*"),
        ("products:read products:read", "products:read"),
    ] {
        let res = app
            .post("/oauth/token")
            .basic(&id, &secret)
            .form(&format!(
                "grant_type=client_credentials&scope={}",
                enc(asked)
            ))
            .send()
            .await;
        res.expect(200);
        assert_eq!(scope_of(&res), granted, "{asked}");
    }
    for asked in [
        "*",
        "tokens:introspect",
        "customers:create",
        "nonsense:thing",
        "Admin",
        "products:*",
        "x y",
    ] {
        app.post("/oauth/token")
            .basic(&id, &secret)
            .form(&format!(
                "grant_type=client_credentials&scope={}",
                enc(asked)
            ))
            .send()
            .await
            .expect_oauth_error(400, "invalid_scope");
    }
}

/// Every kind of failed client authentication: 401 `invalid_client` with
/// the Basic challenge, audited, and the secret never echoed.
async fn client_authentication_failures(app: TestApp) {
    let (id, secret) = secret_client(&app, &["products:read", "tokens:introspect"]).await;
    let (other_id, other_secret) = secret_client(&app, &["products:read"]).await;
    let (pk_id, pk) = app.publishable_client().await;
    let unknown = TOKENS.generate(TokenKind::Secret);
    let unknown = unknown.expose_secret();
    let cases: Vec<(&str, String, String)> = vec![
        ("wrong secret", id.clone(), unknown.to_owned()),
        ("another client's secret", id.clone(), other_secret.clone()),
        (
            "unknown client",
            crate::support::UNKNOWN_ID.to_owned(),
            secret.clone(),
        ),
        ("not an id", "warehouse".to_owned(), secret.clone()),
        ("publishable client", pk_id.clone(), pk.clone()),
        ("not a token", id.clone(), "hunter2".to_owned()),
        ("empty secret", id.clone(), String::new()),
    ];
    let before = app.audit_actions().await.len();
    let mut refused = 0;
    for path in ["/oauth/token", "/oauth/revoke", "/oauth/introspect"] {
        let body = "grant_type=client_credentials&token=x";
        for (what, client_id, client_secret) in &cases {
            for basic in [true, false] {
                let req = app.post(path);
                let req = if basic {
                    req.basic(client_id, client_secret).form(body)
                } else {
                    req.form(&format!(
                        "{body}&client_id={}&client_secret={}",
                        enc(client_id),
                        enc(client_secret)
                    ))
                };
                let res = req.send().await;
                res.expect_oauth_error(401, "invalid_client");
                assert_eq!(
                    res.header("www-authenticate").as_deref(),
                    Some(r#"Basic realm="jeton""#),
                    "{path} {what}"
                );
                if !client_secret.is_empty() {
                    assert!(!res.text().contains(client_secret.as_str()), "{what}");
                }
                refused += 1;
            }
        }
        // No credentials at all; a bearer token is not client authentication
        // on the token and revocation endpoints.
        let res = app.post(path).form(body).send().await;
        res.expect_oauth_error(401, "invalid_client");
        refused += 1;
        if path != "/oauth/introspect" {
            app.post(path)
                .bearer(&secret)
                .form(body)
                .send()
                .await
                .expect_oauth_error(401, "invalid_client");
            refused += 1;
        }
    }
    let actions = app.audit_actions().await;
    let failed = actions[before..]
        .iter()
        .filter(|a| *a == "oauth.client_authentication_failed")
        .count();
    assert_eq!(failed, refused);
    // The other client still works.
    app.access_token(&other_id, &other_secret, None).await;
}

async fn failed_client_authentications_count_toward_the_ip_limit(app: TestApp) {
    let (id, secret) = secret_client(&app, &["products:read"]).await;
    for _ in 0..3 {
        app.token_request(&id, "wrong", "grant_type=client_credentials")
            .await
            .expect_oauth_error(401, "invalid_client");
    }
    // The IP is refused now, even with the right secret, and on the API too.
    let res = app
        .token_request(&id, &secret, "grant_type=client_credentials")
        .await;
    res.expect_oauth_error(429, "rate_limited");
    assert!(res.header("retry-after").is_some());
    app.get("/api/v1/products")
        .bearer(&secret)
        .send()
        .await
        .expect_problem(429, "rate_limited");
}

async fn the_lifetime_is_the_servers_and_never_outlives_the_key(app: TestApp) {
    // Rotating a client with `tokens:introspect` needs the caller to hold it.
    let admin = app
        .client(ClientKind::Secret, &["admin", "tokens:introspect"], &[])
        .await
        .1;
    let (id, secret) = secret_client(&app, &["products:read", "tokens:introspect"]).await;
    let res = app
        .token_request(&id, &secret, "grant_type=client_credentials")
        .await;
    assert_eq!(res.json()["expires_in"], 300);
    let before = s(&res.json()["access_token"]);
    // A rotation after the token was issued: the token now dies with the
    // old key, in 60 s, not in 300.
    let rotated = app
        .rotate(&admin, &id, json!({"previous_key_expires_in_seconds": 60}))
        .await;
    rotated.expect(201);
    let new_key = s(&rotated.json()["key"]);
    let exp = introspect(&app, &id, &new_key, &before).await["exp"]
        .as_i64()
        .unwrap();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    assert!((now + 55..=now + 61).contains(&exp), "exp {exp}, now {now}");
    // A token obtained with the old key in its grace period: the same.
    let res = app
        .token_request(&id, &secret, "grant_type=client_credentials")
        .await;
    let expires_in = res.json()["expires_in"].as_i64().unwrap();
    assert!((55..=60).contains(&expires_in), "{expires_in}");
    let during = s(&res.json()["access_token"]);
    app.assert_works(&during).await;
    // The grace ends (a rotation with none): both die at once; a token of
    // the new key lives on.
    let of_new = app.access_token(&id, &new_key, None).await;
    let again = app
        .rotate(&admin, &id, json!({"previous_key_expires_in_seconds": 0}))
        .await;
    again.expect(201);
    for token in [&before, &during, &of_new] {
        app.assert_dead(token).await;
    }
    let newest = s(&again.json()["key"]);
    let token = app.access_token(&id, &newest, None).await;
    app.assert_works(&token).await;
    // The client revoked: everything dies at once.
    app.delete(&format!("/api/v1/admin/clients/{id}"))
        .bearer(&admin)
        .send()
        .await
        .expect(204);
    app.assert_dead(&token).await;
    app.token_request(&id, &newest, "grant_type=client_credentials")
        .await
        .expect_oauth_error(401, "invalid_client");
}

// ---------------------------------------------------------------- introspection

/// `POST /oauth/introspect` of `token` by client `id` (Basic), which must
/// answer 200.
async fn introspect(app: &TestApp, id: &str, secret: &str, token: &str) -> Value {
    let res = app
        .post("/oauth/introspect")
        .basic(id, secret)
        .form(&format!("token={}", enc(token)))
        .send()
        .await;
    res.expect(200).expect_oauth_headers();
    res.json()
}

on_both_databases!(
    introspection_of_every_kind,
    introspection_needs_the_ability,
    revocation_revokes_only_the_callers_own,
    metadata_from_the_public_url,
);

async fn introspection_of_every_kind(app: TestApp) {
    let (id, secret) = secret_client(&app, &["tokens:introspect", "admin"]).await;
    let (pk_id, pk) = app.publishable_client().await;
    let (ann, user) = app.customer("ann@example.com").await;
    let access = app.access_token(&id, &secret, Some("admin")).await;
    let now = OffsetDateTime::now_utc().unix_timestamp();

    let found = introspect(&app, &id, &secret, &access).await;
    assert_eq!(
        keys(&found),
        [
            "active",
            "client_id",
            "exp",
            "iat",
            "jeton_kind",
            "scope",
            "token_type"
        ]
    );
    assert_eq!(found["active"], true);
    assert_eq!(found["jeton_kind"], "access");
    assert_eq!(found["scope"], "admin");
    assert_eq!(found["client_id"], id.as_str());
    assert_eq!(found["token_type"], "Bearer");
    assert!((now - 5..=now + 1).contains(&found["iat"].as_i64().unwrap()));
    assert!((now + 895..=now + 901).contains(&found["exp"].as_i64().unwrap()));

    let found = introspect(&app, &id, &secret, &user).await;
    assert_eq!(found["jeton_kind"], "user");
    assert!(found["client_id"].is_string());
    assert_eq!(found["sub"], ann.as_str());
    assert!(found["exp"].is_i64());
    assert_eq!(
        found["scope"],
        "cart:write orders:read orders:write products:read profile:read tokens:manage"
    );

    // A guest: its client, no subject.
    let (guest_client, storefront) = app
        .client(ClientKind::Publishable, &["guest:create"], &[])
        .await;
    let issued = app.post_as("/api/v1/guest", &storefront).await;
    issued.expect(201);
    let guest = s(&issued.json()["token"]);
    let found = introspect(&app, &id, &secret, &guest).await;
    assert_eq!(found["jeton_kind"], "guest");
    assert_eq!(found["scope"], "cart:write products:read");
    assert_eq!(found["client_id"], guest_client.as_str());
    assert!(found.get("sub").is_none(), "{found}");
    assert!(found["exp"].is_i64());

    let found = introspect(&app, &id, &secret, &pk).await;
    assert_eq!(found["jeton_kind"], "publishable");
    assert_eq!(found["client_id"], pk_id.as_str());
    assert!(found.get("exp").is_none() && found.get("sub").is_none());

    let found = introspect(&app, &id, &secret, &secret).await;
    assert_eq!(found["jeton_kind"], "secret");
    assert_eq!(found["scope"], "admin tokens:introspect");

    // Introspecting is not using: a user token's last use stays unset.
    let used: Vec<(Option<i64>,)> =
        sqlx::query_as("SELECT last_used_at FROM auth_credentials WHERE kind = 'user'")
            .fetch_all(&app.side_pool().await)
            .await
            .unwrap();
    assert_eq!(used, [(None,)]);

    // Unknown, malformed, revoked, expired: exactly {"active": false}.
    app.post("/api/v1/auth/logout")
        .bearer(&user)
        .send()
        .await
        .expect(204);
    let expired = app.access_token(&id, &secret, None).await;
    let hash = TOKENS.parse(&expired).unwrap().hash().to_hex();
    sqlx::query("UPDATE auth_access_tokens SET expires_at = 1 WHERE token_hash = $1")
        .bind(hash)
        .execute(&app.side_pool().await)
        .await
        .unwrap();
    let unknown = TOKENS.generate(TokenKind::User);
    for token in [
        unknown.expose_secret(),
        "jt_at_garbage",
        user.as_str(),
        expired.as_str(),
    ] {
        assert_eq!(
            introspect(&app, &id, &secret, token).await,
            json!({"active": false}),
            "{}",
            last4(token)
        );
    }
    // The caller may also be a bearer secret key or access token, or
    // authenticate in the body.
    for res in [
        app.post("/oauth/introspect")
            .bearer(&secret)
            .form(&format!("token={access}"))
            .send()
            .await,
        app.post("/oauth/introspect")
            .bearer(
                &app.access_token(&id, &secret, Some("tokens:introspect"))
                    .await,
            )
            .form(&format!("token={access}"))
            .send()
            .await,
        app.post("/oauth/introspect")
            .form(&format!(
                "token={access}&token_type_hint=refresh_token&client_id={}&client_secret={}",
                enc(&id),
                enc(&secret)
            ))
            .send()
            .await,
    ] {
        res.expect(200).expect_oauth_headers();
        assert_eq!(res.json()["active"], true);
    }
    app.post("/oauth/introspect")
        .bearer(&secret)
        .form("")
        .send()
        .await
        .expect_oauth_error(400, "invalid_request");
}

async fn introspection_needs_the_ability(app: TestApp) {
    let (id, secret) = secret_client(&app, &["admin", "products:read"]).await;
    let (_, pk) = app.publishable_client().await;
    let token = app.access_token(&id, &secret, None).await;
    let body = format!("token={token}");
    app.post("/oauth/introspect")
        .basic(&id, &secret)
        .form(&body)
        .send()
        .await
        .expect_oauth_error(401, "invalid_client");
    for bearer in [&secret, &token] {
        let res = app
            .post("/oauth/introspect")
            .bearer(bearer)
            .form(&body)
            .send()
            .await;
        res.expect_oauth_error(401, "insufficient_scope");
        assert!(
            res.header("www-authenticate")
                .unwrap()
                .contains("tokens:introspect")
        );
    }
    // A publishable key, a user token, or a token that is no token.
    let (_, user) = app.customer("bob@example.com").await;
    for bearer in [pk.as_str(), user.as_str()] {
        app.post("/oauth/introspect")
            .bearer(bearer)
            .form(&body)
            .send()
            .await
            .expect_oauth_error(401, "insufficient_scope");
    }
    app.post("/oauth/introspect")
        .bearer("jt_sk_nonsense")
        .form(&body)
        .send()
        .await
        .expect_oauth_error(401, "invalid_token");
    let denied = app
        .audit_actions()
        .await
        .iter()
        .filter(|a| *a == "oauth.introspection_denied")
        .count();
    assert_eq!(denied, 5);
}

async fn revocation_revokes_only_the_callers_own(app: TestApp) {
    let (id, secret) =
        secret_client(&app, &["products:read", "auth:login", "customers:create"]).await;
    let (other_id, other_secret) = secret_client(&app, &["products:read"]).await;
    let revoke = |token: String, client: (&str, &str)| {
        let (client_id, client_secret) = (client.0.to_owned(), client.1.to_owned());
        let app = &app;
        async move {
            let res = app
                .post("/oauth/revoke")
                .basic(&client_id, &client_secret)
                .form(&format!(
                    "token={}&token_type_hint=refresh_token",
                    enc(&token)
                ))
                .send()
                .await;
            res.expect(200).expect_oauth_headers();
            assert!(res.body.is_empty());
        }
    };
    // Unknown, malformed: 200.
    revoke(
        TOKENS.generate(TokenKind::Access).expose_secret().into(),
        (&id, &secret),
    )
    .await;
    revoke("not a token".into(), (&id, &secret)).await;
    // Another client's access token: 200, no effect.
    let others = app.access_token(&other_id, &other_secret, None).await;
    revoke(others.clone(), (&id, &secret)).await;
    app.assert_works(&others).await;
    // Its own: dead at once.
    let own = app.access_token(&id, &secret, None).await;
    app.assert_works(&own).await;
    revoke(own.clone(), (&id, &secret)).await;
    app.assert_dead(&own).await;
    revoke(own, (&id, &secret)).await;
    // A user token issued through it (by login with its secret key); not
    // one issued through another client.
    app.register(&secret, "cy@example.com", PASSWORD).await;
    let user = s(&app.login(&secret, "cy@example.com", PASSWORD).await["token"]);
    let (_, pk) = app.publishable_client().await;
    let elsewhere = app.login_token(&pk, "cy@example.com").await;
    revoke(elsewhere.clone(), (&id, &secret)).await;
    revoke(user.clone(), (&other_id, &other_secret)).await;
    app.get("/api/v1/me").bearer(&user).send().await.expect(200);
    // A personal token made from it goes with it, as on `DELETE /me/tokens/{id}`.
    let res = app
        .post_json_as(
            "/api/v1/me/tokens",
            &user,
            json!({"name": "script", "abilities": ["profile:read"]}),
        )
        .await;
    res.expect(201);
    let made = s(&res.json()["token"]);
    revoke(user.clone(), (&id, &secret)).await;
    app.assert_dead(&user).await;
    app.assert_dead(&made).await;
    app.get("/api/v1/me")
        .bearer(&elsewhere)
        .send()
        .await
        .expect(200);
    // Secret keys are not revoked this way.
    revoke(other_secret.clone(), (&other_id, &other_secret)).await;
    app.assert_works(&other_secret).await;
    let actions = app.audit_actions().await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "access_token.revoked")
            .count(),
        1
    );
    assert!(actions.contains(&"user_token.revoked".to_owned()));
}

async fn metadata_from_the_public_url(app: TestApp) {
    let res = app
        .get("/.well-known/oauth-authorization-server")
        .send()
        .await;
    res.expect(200).expect_oauth_headers();
    let doc = res.json();
    assert_eq!(doc["issuer"], "http://127.0.0.1:8080");
    assert_eq!(doc["token_endpoint"], "http://127.0.0.1:8080/oauth/token");
    assert_eq!(
        doc["introspection_endpoint"],
        "http://127.0.0.1:8080/oauth/introspect"
    );
    assert_eq!(
        doc["revocation_endpoint"],
        "http://127.0.0.1:8080/oauth/revoke"
    );
    assert_eq!(doc["grant_types_supported"], json!(["client_credentials"]));
    for field in [
        "token_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
    ] {
        assert_eq!(
            doc[field],
            json!(["client_secret_basic", "client_secret_post"])
        );
    }
    let scopes: Vec<&str> = doc["scopes_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(scopes.contains(&"tokens:introspect") && scopes.contains(&"admin"));
    assert!(doc.get("response_types_supported").is_none());
}

// ---------------------------------------------------------------- real servers

/// `--public-url` sets the issuer and the URLs, and whether cookies are
/// Secure; without it, `http://<--addr>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_url_is_the_issuer() {
    let keys = keyed_database(Backend::Sqlite, &[]).await.unwrap();
    let server = Server::start(&keys.url, &["--public-url", "https://api.shop.example/"]).await;
    let (status, text) = server
        .get("/.well-known/oauth-authorization-server", &[])
        .await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(doc["issuer"], "https://api.shop.example");
    assert_eq!(
        doc["token_endpoint"],
        "https://api.shop.example/oauth/token"
    );
    let server = Server::start(&keys.url, &[]).await;
    let (_, text) = server
        .get("/.well-known/oauth-authorization-server", &[])
        .await;
    let doc: Value = serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(doc["issuer"], format!("http://{}", server.addr));
}

/// The virtualenv's Python, if it has authlib: the one `JETON_PYTHON_VENV`
/// names (`.ci/run` makes it and sets it), else `.venv` in the workspace.
fn python_with_authlib() -> Option<PathBuf> {
    let venv = std::env::var_os("JETON_PYTHON_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    let python = venv.join("bin/python");
    let has = python.is_file()
        && Command::new(&python)
            .args(["-c", "import authlib, requests"])
            .status()
            .is_ok_and(|status| status.success());
    has.then_some(python)
}

/// Python's authlib, a client nobody here wrote, gets tokens by both
/// methods, uses them, introspects and revokes them, on both databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_gets_and_uses_tokens() {
    let Some(python) = python_with_authlib() else {
        let message = "the authlib test needs authlib in the virtualenv JETON_PYTHON_VENV \
                       names (pip install -r .ci/python-tools.txt)";
        if std::env::var("JETON_REQUIRE_PYTHON_TOOLS").is_ok_and(|v| v == "1") {
            panic!("{message}");
        }
        eprintln!("NOTICE: skipped: {message}");
        return;
    };
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(keys) = keyed_database(backend, &["tokens:introspect"]).await else {
            continue;
        };
        let server = Server::start(&keys.url, &[]).await;
        let client = server
            .call(
                "POST",
                "/api/v1/admin/clients",
                Some(&keys.admin),
                Some(&json!({"name": "back office", "kind": "secret",
                             "abilities": ["products:read", "tokens:introspect", "admin"]})),
            )
            .await;
        client.expect(201);
        let body = client.json();
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/oauth/authlib_client.py");
        let output = Command::new(&python)
            .arg(&script)
            .env("JETON_URL", format!("http://{}", server.addr))
            .env("JETON_CLIENT_ID", s(&body["client"]["id"]))
            .env("JETON_CLIENT_SECRET", s(&body["key"]))
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&output.stdout);
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{backend:?}:\n{out}\n{err}");
        assert!(out.contains("authlib: all good"), "{out}");
    }
}
