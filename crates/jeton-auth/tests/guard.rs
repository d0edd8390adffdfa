//! The guard, through a small app in Jeton's identity: each authentication
//! outcome of the contract, the client address behind trusted proxies, and
//! the usage handed to the store.

use std::{net::SocketAddr, sync::Arc, time::Duration as StdDuration};

use axum::{
    Router,
    body::Body,
    extract::connect_info::MockConnectInfo,
    http::{HeaderMap, Request, StatusCode, header},
    routing::get,
};
use jeton_auth::{
    Ability, Access, Ceilings, Clock, Gate, Identity, IssuedToken, KindSet, MemoryStore, NewClient,
    Principal, TokenFormat, TokenKind, User,
    limits::{FailedAuthLimit, Limits},
    time::{Duration, OffsetDateTime},
};
use serde_json::Value;
use tower::ServiceExt;

const READ: Ability = Ability::from_static("products:read");
const PROFILE: Ability = Ability::from_static("profile:read");
const ADMIN: Ability = Ability::from_static("admin");
const SITE: &str = "https://shop.example";

struct App {
    store: MemoryStore,
    gate: Arc<Gate<MemoryStore>>,
    pk: IssuedToken,
    sk: IssuedToken,
    /// The gate's and its limits': time stands still until moved.
    clock: Clock,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    #[track_caller]
    fn refused(&self, status: u16, code: &str, challenge: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.body["code"], code);
        assert_eq!(self.body["type"], format!("urn:jeton:problem:{code}"));
        let got = self.headers.get(header::WWW_AUTHENTICATE);
        assert_eq!(got.map(|v| v.to_str().unwrap()), challenge, "{code}");
    }
}

impl App {
    fn new() -> App {
        App::with(FailedAuthLimit::default(), Vec::new())
    }

    fn with(limit: FailedAuthLimit, trusted: Vec<jeton_auth::ipnet::IpNet>) -> App {
        let identity = Identity::new("jt")
            .and_then(|i| i.with_realm("jeton"))
            .and_then(|i| i.with_problem_type_base("urn:jeton:problem:"))
            .unwrap();
        let store = MemoryStore::new(identity.tokens());
        let clock = Clock::manual(OffsetDateTime::now_utc());
        // No limit backend given: the gate's own counts on its clock.
        let gate = Gate::builder(identity, store.clone())
            .clock(clock.clone())
            .ceilings(
                Ceilings::new()
                    .publishable([READ])
                    .secret([Ability::ALL])
                    .user([READ, PROFILE]),
            )
            .failed_auth_limit(limit)
            .trusted_proxies(trusted)
            .usage_interval(StdDuration::from_millis(50))
            .build()
            .unwrap();
        let site = store.add_client(NewClient::new([READ]).allowed_origins([SITE]));
        let office = store.add_client(NewClient::new([ADMIN]));
        App {
            pk: store.issue_publishable_key(&site).unwrap(),
            sk: store.issue_secret_key(&office).unwrap(),
            store,
            gate,
            clock,
        }
    }

    fn router(&self, peer: Option<[u8; 4]>) -> Router {
        let (pk, sk, ut) = (KindSet::PUBLISHABLE, KindSet::SECRET, KindSet::USER);
        let gate = &self.gate;
        let router = Router::new()
            .route(
                "/products",
                get(|principal: Principal| async move { principal.kind().name() })
                    .route_layer(gate.guard(Access::new(pk | ut, READ))),
            )
            .route(
                "/me",
                get(|User(user): User| async move { user.user_id.clone() })
                    .route_layer(gate.guard(Access::new(ut, PROFILE))),
            )
            .route(
                "/admin",
                get(|| async { "ok" }).route_layer(gate.guard(Access::new(sk, ADMIN))),
            )
            .route(
                "/ip",
                get(
                    |ip: axum::Extension<jeton_auth::client_ip::ClientIp>| async move {
                        ip.0.0.to_string()
                    },
                )
                .route_layer(gate.guard(Access::any_ability(pk))),
            )
            // A handler that asks for a user on a route with no guard.
            .route("/unguarded", get(|User(_): User| async { "never" }));
        match peer {
            Some(peer) => router.layer(MockConnectInfo(SocketAddr::from((peer, 1234)))),
            None => router,
        }
    }

    async fn send(&self, path: &str, auth: Option<&str>, extra: &[(&str, &str)]) -> Answer {
        send(&self.router(Some([192, 0, 2, 1])), path, auth, extra).await
    }

    async fn bearer(&self, path: &str, token: &IssuedToken) -> Answer {
        self.send(path, Some(&bearer(token)), &[]).await
    }
}

fn bearer(token: &IssuedToken) -> String {
    format!("Bearer {}", token.token.expose_secret())
}

async fn send(app: &Router, path: &str, auth: Option<&str>, extra: &[(&str, &str)]) -> Answer {
    let mut request = Request::get(path);
    if let Some(auth) = auth {
        request = request.header(header::AUTHORIZATION, auth);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
    }
}

const REALM: &str = r#"Bearer realm="jeton""#;
const INVALID_REQUEST: &str = r#"Bearer realm="jeton", error="invalid_request""#;
const INVALID_TOKEN: &str = r#"Bearer realm="jeton", error="invalid_token""#;
const WRONG_KIND: &str = r#"Bearer realm="jeton", error="insufficient_scope""#;

#[tokio::test]
async fn every_kind_is_admitted_where_it_belongs() {
    let app = App::new();
    let ut = app.store.issue_user_token("ann", [READ, PROFILE], None);
    assert_eq!(app.bearer("/products", &app.pk).await.body, "publishable");
    assert_eq!(app.bearer("/products", &ut).await.body, "user");
    assert_eq!(app.bearer("/me", &ut).await.body, "ann");
    assert_eq!(app.bearer("/admin", &app.sk).await.body, "ok");
}

#[tokio::test]
async fn no_credentials_another_scheme_and_an_empty_bearer() {
    let app = App::new();
    app.send("/products", None, &[])
        .await
        .refused(401, "unauthenticated", Some(REALM));
    app.send("/products", Some("Basic dXNlcjpwYXNz"), &[])
        .await
        .refused(401, "unauthenticated", Some(REALM));
    app.send("/products", Some("Bearer "), &[]).await.refused(
        400,
        "invalid_request",
        Some(INVALID_REQUEST),
    );
    let in_query = format!("/products?access_token={}", app.pk.token.expose_secret());
    app.send(&in_query, Some(&bearer(&app.pk)), &[])
        .await
        .refused(400, "invalid_request", Some(INVALID_REQUEST));
}

#[tokio::test]
async fn malformed_foreign_unknown_revoked_and_expired_tokens_are_one_answer() {
    let app = App::new();
    let acme = TokenFormat::new("acme").unwrap().generate(TokenKind::User);
    let unknown = TokenFormat::from_static("jt").generate(TokenKind::User);
    let revoked = app.store.issue_user_token("ann", [PROFILE], None);
    assert_eq!(app.bearer("/me", &revoked).await.status, StatusCode::OK);
    app.store.revoke(&revoked.id);
    let past = OffsetDateTime::now_utc() - Duration::seconds(1);
    let expired = app.store.issue_user_token("ann", [PROFILE], Some(past));
    for token in [
        "jt_ut_short",
        acme.expose_secret(),
        unknown.expose_secret(),
        revoked.token.expose_secret(),
        expired.token.expose_secret(),
    ] {
        app.send("/me", Some(&format!("Bearer {token}")), &[])
            .await
            .refused(401, "invalid_token", Some(INVALID_TOKEN));
    }
}

#[tokio::test]
async fn the_wrong_kind_and_a_missing_ability() {
    let app = App::new();
    let answer = app.bearer("/me", &app.pk).await;
    answer.refused(403, "insufficient_scope", Some(WRONG_KIND));
    assert_eq!(answer.body["detail"], "this route takes a user token");
    let answer = app.bearer("/products", &app.sk).await;
    assert_eq!(
        answer.body["detail"],
        "this route takes a publishable key or a user token"
    );
    let reader = app.store.issue_user_token("ann", [READ], None);
    app.bearer("/me", &reader).await.refused(
        403,
        "insufficient_scope",
        Some(r#"Bearer realm="jeton", error="insufficient_scope", scope="profile:read""#),
    );
}

#[tokio::test]
async fn origins_and_secret_keys_in_browsers() {
    let app = App::new();
    let from_site = app
        .send("/products", Some(&bearer(&app.pk)), &[("origin", SITE)])
        .await;
    assert_eq!(from_site.status, StatusCode::OK);
    app.send(
        "/products",
        Some(&bearer(&app.pk)),
        &[("origin", "https://x.example")],
    )
    .await
    .refused(403, "origin_not_allowed", None);
    app.send("/admin", Some(&bearer(&app.sk)), &[("origin", SITE)])
        .await
        .refused(403, "secret_key_in_browser", None);
    let codes: Vec<&str> = app.store.refusals().iter().map(|r| r.code).collect();
    assert_eq!(codes, ["origin_not_allowed", "secret_key_in_browser"]);
}

#[tokio::test]
async fn rate_limits_per_key_and_per_failing_address() {
    let app = App::with(
        FailedAuthLimit {
            failures: 5,
            window: StdDuration::from_secs(3600),
        },
        Vec::new(),
    );
    let limited = app.store.add_client(NewClient::new([READ]).limits(Limits {
        per_key: Some(2),
        per_ip: None,
    }));
    let key = app.store.issue_publishable_key(&limited).unwrap();
    for _ in 0..2 {
        assert_eq!(app.bearer("/products", &key).await.status, StatusCode::OK);
    }
    let answer = app.bearer("/products", &key).await;
    answer.refused(429, "rate_limited", None);
    assert!(answer.headers.contains_key(header::RETRY_AFTER));
    assert_eq!(answer.headers["ratelimit-limit"], "2");

    let (noisy, quiet) = (
        app.router(Some([203, 0, 113, 1])),
        app.router(Some([203, 0, 113, 2])),
    );
    for _ in 0..5 {
        send(&noisy, "/me", Some("Bearer jt_ut_forged"), &[])
            .await
            .refused(401, "invalid_token", Some(INVALID_TOKEN));
    }
    send(&noisy, "/products", Some(&bearer(&app.pk)), &[])
        .await
        .refused(429, "rate_limited", None);
    let ok = send(&quiet, "/products", Some(&bearer(&app.pk)), &[]).await;
    assert_eq!(ok.status, StatusCode::OK);
    // Its window ends on the gate's clock, and its failures are counted
    // afresh.
    app.clock.advance(StdDuration::from_secs(3600));
    for _ in 0..4 {
        send(&noisy, "/me", Some("Bearer jt_ut_forged"), &[])
            .await
            .refused(401, "invalid_token", Some(INVALID_TOKEN));
    }
    let ok = send(&noisy, "/products", Some(&bearer(&app.pk)), &[]).await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn a_token_expires_on_the_gates_clock() {
    let app = App::new();
    let expires = app.clock.now() + Duration::minutes(5);
    let token = app.store.issue_user_token("ann", [PROFILE], Some(expires));
    app.clock.advance(StdDuration::from_secs(299));
    assert_eq!(app.bearer("/me", &token).await.status, StatusCode::OK);
    app.clock.advance(StdDuration::from_secs(1));
    app.bearer("/me", &token)
        .await
        .refused(401, "invalid_token", Some(INVALID_TOKEN));
}

#[tokio::test]
async fn the_client_address_is_believed_from_trusted_proxies_only() {
    let app = App::with(
        FailedAuthLimit::default(),
        vec!["10.0.0.0/8".parse().unwrap()],
    );
    let auth = bearer(&app.pk);
    let xff = [("x-forwarded-for", "6.6.6.6, 198.51.100.9")];
    let proxied = send(&app.router(Some([10, 0, 0, 1])), "/ip", Some(&auth), &xff).await;
    assert_eq!(proxied.body, "198.51.100.9");
    let direct = send(&app.router(Some([192, 0, 2, 5])), "/ip", Some(&auth), &xff).await;
    assert_eq!(direct.body, "192.0.2.5");
    let unserved = send(&app.router(None), "/ip", Some(&auth), &[]).await;
    assert_eq!(unserved.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(unserved.body["code"], "internal_error");
}

#[tokio::test]
async fn an_extractor_without_a_guard_refuses() {
    let app = App::new();
    // No gate guarded the request: no app's identity to answer in.
    let answer = app.send("/unguarded", None, &[]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body["code"], "unauthenticated");
    assert_eq!(answer.body["type"], "urn:api:problem:unauthenticated");
    assert_eq!(
        answer.headers[header::WWW_AUTHENTICATE],
        r#"Bearer realm="api""#
    );
}

#[tokio::test]
async fn the_last_uses_reach_the_store_without_the_app_asking() {
    let app = App::new();
    let token = app.store.issue_user_token("ann", [PROFILE], None);
    assert_eq!(app.bearer("/me", &token).await.status, StatusCode::OK);
    // The task the guard started hands them over every 50 ms here.
    for _ in 0..100 {
        if app.store.last_used(&token.id).is_some() {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    assert!(app.store.last_used(&token.id).is_some());
    // And once more on demand, at shutdown.
    assert_eq!(app.bearer("/me", &token).await.status, StatusCode::OK);
    let before = app.store.last_used(&token.id);
    app.gate.flush_usage().await;
    assert!(app.store.last_used(&token.id) >= before);
}
