//! Every authentication outcome of the contract, against Acme's own routes,
//! through `jeton-auth`'s public API alone.

use std::{net::SocketAddr, sync::Arc};

use adopter_test::{
    ADMIN, AUTH_LOGIN, FAILURES_PER_ADDRESS, PRODUCTS_READ, PROFILE_READ, app, gate, identity,
};
use axum::{
    Router,
    body::Body,
    extract::connect_info::MockConnectInfo,
    http::{HeaderMap, Request, StatusCode, header},
};
use jeton_auth::{
    Gate, IssuedToken, MemoryStore, NewClient, TokenFormat, TokenKind,
    limits::Limits,
    time::{Duration, OffsetDateTime},
};
use serde_json::Value;
use tower::ServiceExt;

const SHOP: &str = "https://shop.acme.example";

/// Acme's app and store, with a client of each kind.
struct Acme {
    store: MemoryStore,
    gate: Arc<Gate<MemoryStore>>,
    /// The shop's publishable key, allowed from [`SHOP`].
    pk: IssuedToken,
    /// The back office's secret key.
    sk: IssuedToken,
}

/// One answer: status, headers and the JSON body (`Null` if none).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    #[track_caller]
    fn problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.body["code"], code);
        assert_eq!(self.body["status"], status);
        assert_eq!(
            self.body["type"],
            format!("https://acme.example/problems/{code}")
        );
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }

    fn challenge(&self) -> Option<&str> {
        self.headers
            .get(header::WWW_AUTHENTICATE)
            .map(|value| value.to_str().unwrap())
    }

    #[track_caller]
    fn refused(&self, status: u16, code: &str, challenge: Option<&str>) {
        self.problem(status, code);
        assert_eq!(self.challenge(), challenge, "the challenge for {code}");
    }
}

impl Acme {
    fn new() -> Acme {
        let store = MemoryStore::new(identity().tokens());
        let gate = gate(store.clone());
        let shop =
            store.add_client(NewClient::new([PRODUCTS_READ, AUTH_LOGIN]).allowed_origins([SHOP]));
        let back_office = store.add_client(NewClient::new([ADMIN]));
        Acme {
            pk: store.issue_publishable_key(&shop).unwrap(),
            sk: store.issue_secret_key(&back_office).unwrap(),
            store,
            gate,
        }
    }

    /// The app as served to requests from `peer`.
    fn from(&self, peer: [u8; 4]) -> Router {
        app(self.store.clone(), &self.gate).layer(MockConnectInfo(SocketAddr::from((peer, 40_000))))
    }

    async fn send(&self, path: &str, authorization: Option<&str>, origin: Option<&str>) -> Answer {
        send(&self.from([198, 51, 100, 1]), path, authorization, origin).await
    }

    async fn bearer(&self, path: &str, token: &IssuedToken) -> Answer {
        self.send(path, Some(&bearer(token)), None).await
    }

    fn user_token(
        &self,
        abilities: &[jeton_auth::Ability],
        expires_at: Option<OffsetDateTime>,
    ) -> IssuedToken {
        self.store
            .issue_user_token("wile", abilities.iter().cloned(), expires_at)
    }
}

fn bearer(token: &IssuedToken) -> String {
    format!("Bearer {}", token.token.expose_secret())
}

async fn send(
    app: &Router,
    path: &str,
    authorization: Option<&str>,
    origin: Option<&str>,
) -> Answer {
    let method = if path == "/sessions" { "POST" } else { "GET" };
    let mut request = Request::builder().method(method).uri(path);
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    if let Some(origin) = origin {
        request = request.header(header::ORIGIN, origin);
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
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

const REALM: &str = r#"Bearer realm="acme""#;
const INVALID_REQUEST: &str = r#"Bearer realm="acme", error="invalid_request""#;
const INVALID_TOKEN: &str = r#"Bearer realm="acme", error="invalid_token""#;
const WRONG_KIND: &str = r#"Bearer realm="acme", error="insufficient_scope""#;

#[tokio::test]
async fn each_kind_is_admitted_on_its_routes() {
    let acme = Acme::new();
    assert!(acme.pk.token.expose_secret().starts_with("acme_pk_"));
    assert_eq!(acme.pk.token.expose_secret().len(), 44);
    assert_eq!(
        acme.bearer("/catalogue", &acme.pk).await.status,
        StatusCode::OK
    );
    let session = acme.bearer("/sessions", &acme.pk).await;
    assert_eq!(session.status, StatusCode::OK, "{}", session.body);
    let token = session.body["token"].as_str().unwrap();
    assert!(token.starts_with("acme_ut_"));
    let profile = acme
        .send("/profile", Some(&format!("Bearer {token}")), None)
        .await;
    assert_eq!(profile.status, StatusCode::OK);
    assert_eq!(profile.body["user"], "wile");
    assert_eq!(
        acme.bearer("/reports", &acme.sk).await.status,
        StatusCode::OK
    );
    // From an allowed origin too.
    let from_shop = acme
        .send("/catalogue", Some(&bearer(&acme.pk)), Some(SHOP))
        .await;
    assert_eq!(from_shop.status, StatusCode::OK);
}

#[tokio::test]
async fn no_credentials_or_another_scheme_is_unauthenticated() {
    let acme = Acme::new();
    acme.send("/catalogue", None, None)
        .await
        .refused(401, "unauthenticated", Some(REALM));
    acme.send("/catalogue", Some("Basic dXNlcjpwYXNz"), None)
        .await
        .refused(401, "unauthenticated", Some(REALM));
}

#[tokio::test]
async fn an_empty_bearer_is_an_invalid_request() {
    let acme = Acme::new();
    for value in ["Bearer", "Bearer    "] {
        acme.send("/catalogue", Some(value), None).await.refused(
            400,
            "invalid_request",
            Some(INVALID_REQUEST),
        );
    }
}

#[tokio::test]
async fn malformed_tokens_and_another_apps_tokens_are_invalid() {
    let acme = Acme::new();
    let jeton = TokenFormat::new("jt")
        .unwrap()
        .generate(TokenKind::Publishable);
    let other = TokenFormat::new("acmf")
        .unwrap()
        .generate(TokenKind::Publishable);
    let mut flipped = acme.pk.token.expose_secret().to_owned();
    flipped.replace_range(10..11, if &flipped[10..11] == "a" { "b" } else { "a" });
    for token in [
        "acme_pk_nope",
        "not-a-token-at-all",
        jeton.expose_secret(),
        other.expose_secret(),
        &flipped,
    ] {
        acme.send("/catalogue", Some(&format!("Bearer {token}")), None)
            .await
            .refused(401, "invalid_token", Some(INVALID_TOKEN));
    }
}

#[tokio::test]
async fn unknown_revoked_and_expired_tokens_are_invalid() {
    let acme = Acme::new();
    let unknown = identity().tokens().generate(TokenKind::User);
    acme.send(
        "/profile",
        Some(&format!("Bearer {}", unknown.expose_secret())),
        None,
    )
    .await
    .refused(401, "invalid_token", Some(INVALID_TOKEN));

    // Revoked after it has been used (and cached).
    let revoked = acme.user_token(&[PROFILE_READ], None);
    assert_eq!(
        acme.bearer("/profile", &revoked).await.status,
        StatusCode::OK
    );
    assert!(acme.store.revoke(&revoked.id));
    acme.bearer("/profile", &revoked)
        .await
        .refused(401, "invalid_token", Some(INVALID_TOKEN));

    let expired = acme.user_token(
        &[PROFILE_READ],
        Some(OffsetDateTime::now_utc() - Duration::seconds(1)),
    );
    acme.bearer("/profile", &expired)
        .await
        .refused(401, "invalid_token", Some(INVALID_TOKEN));

    // A revoked client's keys stop at once too.
    let shop_key = acme.pk.id.clone();
    assert!(acme.store.revoke(&shop_key));
    acme.bearer("/catalogue", &acme.pk)
        .await
        .refused(401, "invalid_token", Some(INVALID_TOKEN));
}

#[tokio::test]
async fn the_wrong_kind_is_told_which_kinds_the_route_takes() {
    let acme = Acme::new();
    let user = acme.user_token(&[PRODUCTS_READ, PROFILE_READ], None);
    for (path, token, takes) in [
        ("/profile", &acme.pk, "a user token"),
        ("/profile", &acme.sk, "a user token"),
        ("/reports", &acme.pk, "a secret key"),
        ("/reports", &user, "a secret key"),
        ("/sessions", &user, "a publishable key"),
        ("/catalogue", &acme.sk, "a publishable key or a user token"),
    ] {
        let answer = acme.bearer(path, token).await;
        answer.refused(403, "insufficient_scope", Some(WRONG_KIND));
        assert_eq!(
            answer.body["detail"],
            format!("this route takes {takes}"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_missing_ability_is_named_in_the_challenge() {
    let acme = Acme::new();
    let catalogue_only = acme.user_token(&[PRODUCTS_READ], None);
    acme.bearer("/profile", &catalogue_only).await.refused(
        403,
        "insufficient_scope",
        Some(r#"Bearer realm="acme", error="insufficient_scope", scope="profile:read""#),
    );
}

#[tokio::test]
async fn a_publishable_key_works_only_from_its_origins() {
    let acme = Acme::new();
    acme.send(
        "/catalogue",
        Some(&bearer(&acme.pk)),
        Some("https://evil.example"),
    )
    .await
    .refused(403, "origin_not_allowed", None);
    let refusals = acme.store.refusals();
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].code, "origin_not_allowed");
}

#[tokio::test]
async fn a_secret_key_from_a_browser_is_refused_and_recorded() {
    let acme = Acme::new();
    acme.send("/reports", Some(&bearer(&acme.sk)), Some(SHOP))
        .await
        .refused(403, "secret_key_in_browser", None);
    let refusals = acme.store.refusals();
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].code, "secret_key_in_browser");
    assert_eq!(refusals[0].principal.kind(), TokenKind::Secret);
}

#[tokio::test]
async fn a_key_over_its_limit_is_rate_limited() {
    let acme = Acme::new();
    let limited = acme
        .store
        .add_client(NewClient::new([PRODUCTS_READ]).limits(Limits {
            per_key: Some(3),
            per_ip: None,
        }));
    let key = acme.store.issue_publishable_key(&limited).unwrap();
    for _ in 0..3 {
        let answer = acme.bearer("/catalogue", &key).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.headers["ratelimit-limit"], "3");
    }
    let answer = acme.bearer("/catalogue", &key).await;
    answer.refused(429, "rate_limited", None);
    assert!(answer.headers.contains_key(header::RETRY_AFTER));
    assert_eq!(answer.headers["ratelimit-remaining"], "0");
}

#[tokio::test]
async fn an_address_that_keeps_failing_is_cut_off_and_others_are_not() {
    let acme = Acme::new();
    let (attacker, neighbour) = (acme.from([203, 0, 113, 66]), acme.from([203, 0, 113, 67]));
    let forged = format!(
        "Bearer {}",
        identity()
            .tokens()
            .generate(TokenKind::User)
            .expose_secret()
    );
    for _ in 0..FAILURES_PER_ADDRESS {
        send(&attacker, "/profile", Some(&forged), None)
            .await
            .refused(401, "invalid_token", Some(INVALID_TOKEN));
    }
    // Now even a good key from that address is refused before it is looked at.
    send(&attacker, "/catalogue", Some(&bearer(&acme.pk)), None)
        .await
        .refused(429, "rate_limited", None);
    let answer = send(&neighbour, "/catalogue", Some(&bearer(&acme.pk)), None).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn without_the_peer_address_nothing_is_served() {
    let acme = Acme::new();
    let unserved = app(acme.store.clone(), &acme.gate);
    send(&unserved, "/catalogue", Some(&bearer(&acme.pk)), None)
        .await
        .problem(500, "internal_error");
}
