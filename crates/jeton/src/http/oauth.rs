//! OAuth 2.0 for server-side clients (`docs/oauth.md`): the client
//! credentials grant (`POST /oauth/token`), introspection (RFC 7662),
//! revocation (RFC 7009) and the server's metadata (RFC 8414).
//!
//! These routes live outside the API's prefix and speak OAuth, not the
//! API's conventions: form bodies, client authentication by HTTP Basic or
//! in the form, errors as RFC 6749 JSON (`{"error", "error_description"}`),
//! and `Cache-Control: no-store` with `Pragma: no-cache` on every answer.
//! They authenticate the client themselves, so they are not rows of the
//! bearer-token route table; `routes::OAUTH` lists them.
//!
//! A client's secret is one of its live secret keys. It is verified like a
//! bearer key, through the gate's verifier and its cache (a lookup by
//! SHA-256, compared in constant time); only the client id is compared
//! here, also in constant time. Failures count toward the gate's per-IP
//! limit on failed authentications and are audited.

use crate::identity::TOKENS;
use std::{collections::HashMap, net::IpAddr, sync::Arc};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Extension, State, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine;
use jeton_auth::{
    AbilitySet, Access, AuthError, ClientPrincipal, KindSet, PlainToken, Principal, TokenKind,
    client_ip::ClientIp,
};
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use tower_http::set_header::SetResponseHeaderLayer;

use super::{error::AppError, state::AppState};
use crate::{
    domain::{
        abilities::{self, TOKENS_INTROSPECT},
        ids::{ClientId, ClientIds},
    },
    store::{
        IssueError,
        access_tokens::NewAccessToken,
        audit::{Actor, Audit, Event},
        db_error::DbErrorClass,
    },
};

pub const TOKEN_PATH: &str = "/oauth/token";
pub const INTROSPECT_PATH: &str = "/oauth/introspect";
pub const REVOKE_PATH: &str = "/oauth/revoke";
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// The client authentication methods every endpoint takes.
pub const AUTH_METHODS: [&str; 2] = ["client_secret_basic", "client_secret_post"];

/// The OAuth routes, each answer with `Pragma: no-cache` (the app's layers
/// add `Cache-Control: no-store` to every answer).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(TOKEN_PATH, post(token))
        .route(INTROSPECT_PATH, post(introspect))
        .route(REVOKE_PATH, post(revoke))
        .route(METADATA_PATH, get(metadata))
        .layer(SetResponseHeaderLayer::overriding(
            header::PRAGMA,
            HeaderValue::from_static("no-cache"),
        ))
}

// ---------------------------------------------------------------- errors

/// An RFC 6749 §5.2 error answer.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    challenge: Option<String>,
    retry_after: Option<u64>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
            challenge: None,
            retry_after: None,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// 401 with the Basic challenge (RFC 6749 §5.2).
    fn invalid_client(description: impl Into<String>) -> Self {
        OAuthError {
            challenge: Some(r#"Basic realm="jeton""#.to_owned()),
            ..OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
        }
    }

    /// 503 `temporarily_unavailable`, also for a request to these
    /// endpoints that timed out (`hygiene::timeout`).
    pub(crate) fn unavailable() -> Self {
        OAuthError {
            retry_after: Some(1),
            ..OAuthError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the database is unavailable or busy; retry after `Retry-After`",
            )
        }
    }

    /// A refusal of the gate's (rate limits, an outage).
    fn from_auth(error: &AuthError) -> Self {
        match error {
            AuthError::RateLimited {
                retry_after_seconds,
                ..
            } => OAuthError {
                retry_after: Some(*retry_after_seconds),
                ..OAuthError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many requests; retry after `Retry-After`",
                )
            },
            _ => OAuthError::unavailable(),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(challenge) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A database error: an outage or contention is 503 (retry); anything else
/// is a bug, answered like every 500 (the request id, nothing more).
fn db_error(error: sqlx::Error) -> Response {
    if DbErrorClass::of(&error).is_transient() {
        tracing::warn!(%error, "database unavailable");
        OAuthError::unavailable().into_response()
    } else {
        AppError::from(error).into_response()
    }
}

// ---------------------------------------------------------------- the form

/// A form body's parameters: each at most once, empty ones left out
/// (RFC 6749 §3.2: an empty parameter counts as absent).
#[derive(Debug, Default)]
pub struct Form(HashMap<String, String>);

impl Form {
    /// The body must be `application/x-www-form-urlencoded` (UTF-8); an
    /// empty body without a `Content-Type` is an empty form.
    pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Form, OAuthError> {
        let content_types: Vec<&HeaderValue> =
            headers.get_all(header::CONTENT_TYPE).iter().collect();
        match content_types.as_slice() {
            [] if body.is_empty() => return Ok(Form::default()),
            [one] => {
                let parsed = one
                    .to_str()
                    .ok()
                    .and_then(|text| text.parse::<mime::Mime>().ok());
                let form = parsed.as_ref().is_some_and(|mime| {
                    mime.essence_str() == "application/x-www-form-urlencoded"
                        && mime
                            .get_param(mime::CHARSET)
                            .is_none_or(|charset| charset == mime::UTF_8)
                });
                if !form {
                    return Err(OAuthError::invalid_request(
                        "the body must be application/x-www-form-urlencoded",
                    ));
                }
            }
            _ => {
                return Err(OAuthError::invalid_request(
                    "the body must be application/x-www-form-urlencoded",
                ));
            }
        }
        if std::str::from_utf8(body).is_err() {
            return Err(OAuthError::invalid_request("the form is not UTF-8"));
        }
        let mut params = HashMap::new();
        for (name, value) in form_urlencoded::parse(body) {
            if value.is_empty() {
                continue;
            }
            if params
                .insert(name.clone().into_owned(), value.into_owned())
                .is_some()
            {
                return Err(OAuthError::invalid_request(format!(
                    "the parameter `{}` is repeated",
                    name.chars().take(64).collect::<String>()
                )));
            }
        }
        Ok(Form(params))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// The body, or the answer to one that could not be read (413 past the
/// body limit).
fn form(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Form, OAuthError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            OAuthError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                format!("the body is over {} bytes", super::extract::MAX_BODY_BYTES),
            )
        } else {
            OAuthError::invalid_request("the body could not be read")
        }
    })?;
    Form::parse(headers, &body)
}

// ---------------------------------------------------------------- client authentication

/// Client credentials as presented: by which method, the id and the secret.
struct Presented {
    method: &'static str,
    client_id: String,
    secret: String,
}

/// `Authorization: Basic` per RFC 6749 §2.3.1: base64 of the
/// form-urlencoded id, `:`, the form-urlencoded secret.
fn basic_credentials(value: &HeaderValue) -> Option<Result<(String, String), ()>> {
    let text = value.to_str().ok()?;
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let Some((id, secret)) = decoded.as_deref().and_then(|text| text.split_once(':')) else {
        return Some(Err(()));
    };
    let unescape = |part: &str| -> String {
        form_urlencoded::parse(format!("x={part}").as_bytes())
            .next()
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default()
    };
    Some(Ok((unescape(id), unescape(secret))))
}

/// The client's credentials from Basic or the form, never both. `Ok(None)`:
/// none at all (or only half of a pair).
fn presented(headers: &HeaderMap, form: &Form) -> Result<Option<Presented>, OAuthError> {
    let authorizations: Vec<&HeaderValue> = headers.get_all(header::AUTHORIZATION).iter().collect();
    let basic = match authorizations.as_slice() {
        [] => None,
        [one] => basic_credentials(one),
        _ => {
            return Err(OAuthError::invalid_request(
                "the Authorization header is sent once",
            ));
        }
    };
    match basic {
        Some(Err(())) => Ok(Some(Presented {
            method: "client_secret_basic",
            client_id: String::new(),
            secret: String::new(),
        })),
        Some(Ok((client_id, secret))) => {
            if form.get("client_secret").is_some() {
                return Err(OAuthError::invalid_request(
                    "client credentials are sent in the Authorization header or in the body, not both",
                ));
            }
            if form.get("client_id").is_some_and(|id| id != client_id) {
                return Err(OAuthError::invalid_request(
                    "the body's client_id is not the Authorization header's",
                ));
            }
            Ok(Some(Presented {
                method: "client_secret_basic",
                client_id,
                secret,
            }))
        }
        None => Ok(match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret)) => Some(Presented {
                method: "client_secret_post",
                client_id: id.to_owned(),
                secret: secret.to_owned(),
            }),
            _ => None,
        }),
    }
}

/// A client that authenticated: its principal (as its secret key) and when
/// that key stops working, if it is being rotated out.
struct Authenticated {
    principal: Principal,
    key_expires_at: Option<OffsetDateTime>,
}

impl Authenticated {
    fn client(&self) -> &Arc<ClientPrincipal> {
        self.principal.client().expect("a client authenticated")
    }
}

/// The form of a request that only a client may make (the token and
/// revocation endpoints), and the client its credentials authenticate.
async fn client_form(
    state: &AppState,
    ip: Option<IpAddr>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Form, Authenticated), Response> {
    let form = form(headers, body).map_err(IntoResponse::into_response)?;
    let presented = presented(headers, &form).map_err(IntoResponse::into_response)?;
    let client = authenticate_client(state, ip, presented).await?;
    refuse_in_browser(state, ip, headers, &client.principal).await?;
    Ok((form, client))
}

/// Whether these endpoints are the request's: they answer in RFC 6749's
/// terms, and never with CORS headers (a browser has no business here).
pub fn is_oauth_path(path: &str) -> bool {
    [TOKEN_PATH, INTROSPECT_PATH, REVOKE_PATH].contains(&path)
}

/// A secret key (or an access token) that came with an `Origin` was sent by
/// a browser: it has leaked. Refused as `invalid_client`, and flagged and
/// audited as the guard does on the API (`secret_key_in_browser`).
async fn refuse_in_browser(
    state: &AppState,
    ip: Option<IpAddr>,
    headers: &HeaderMap,
    principal: &Principal,
) -> Result<(), Response> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let error = match jeton_auth::origin::check(principal, Some(origin)) {
        Ok(()) => return Ok(()),
        Err(error) => error,
    };
    let origin = origin.to_str().ok().map(str::to_owned);
    Box::pin(state.gate.record_refusal(principal, &error, origin, ip)).await;
    Err(OAuthError::invalid_client(
        "secret keys are for servers; this one was sent by a browser and must be considered leaked: rotate it",
    )
    .into_response())
}

/// Authenticates the client by its id and one of its live secret keys. A
/// failure counts toward the IP's failed authentications and is audited.
async fn authenticate_client(
    state: &AppState,
    ip: Option<IpAddr>,
    presented: Option<Presented>,
) -> Result<Authenticated, Response> {
    state
        .gate
        .check_failed_auth(ip)
        .map_err(|error| OAuthError::from_auth(&error).into_response())?;
    let Some(presented) = presented else {
        return Err(refuse_client(state, ip, None, "no client credentials").await);
    };
    let claimed = ClientId::parse(&presented.client_id);
    let token = match TOKENS.parse(&presented.secret) {
        Ok(token) if token.kind() == TokenKind::Secret => token,
        Ok(token) if token.kind() == TokenKind::Publishable => {
            let why = format!(
                "{}: a publishable key (public clients cannot authenticate)",
                presented.method
            );
            return Err(refuse_client(state, ip, claimed.as_ref(), &why).await);
        }
        _ => {
            let why = format!("{}: the secret is not a secret key", presented.method);
            return Err(refuse_client(state, ip, claimed.as_ref(), &why).await);
        }
    };
    let found = match state.gate.verifier().inspect(&token).await {
        Ok(found) => found,
        Err(AuthError::Unavailable) => return Err(OAuthError::unavailable().into_response()),
        Err(_) => {
            let why = format!("{}: unknown, revoked or expired secret", presented.method);
            return Err(refuse_client(state, ip, claimed.as_ref(), &why).await);
        }
    };
    let matches = found.principal.client().is_some_and(|client| {
        bool::from(
            client
                .client_id
                .as_bytes()
                .ct_eq(presented.client_id.as_bytes()),
        )
    });
    if !matches {
        let why = format!(
            "{}: the secret is not a key of this client",
            presented.method
        );
        return Err(refuse_client(state, ip, claimed.as_ref(), &why).await);
    }
    Ok(Authenticated {
        principal: found.principal,
        key_expires_at: found.expires_at,
    })
}

/// 401 `invalid_client`, counted and audited. The client id goes into the
/// log only when it is one (never what else an attacker typed), and the
/// secret never.
async fn refuse_client(
    state: &AppState,
    ip: Option<IpAddr>,
    client_id: Option<&ClientId>,
    why: &str,
) -> Response {
    state.gate.count_failed_auth(ip).await;
    let audit = Audit {
        actor: Actor::UnknownClient,
        client_ip: ip,
    };
    let event = Event {
        action: "oauth.client_authentication_failed",
        client_id,
        detail: Some(why.to_owned()),
        ..Event::default()
    };
    if let Err(error) = state.db.record_event(&audit, event).await {
        tracing::warn!(%error, "could not audit a failed client authentication");
    }
    OAuthError::invalid_client("client authentication failed").into_response()
}

fn client_ip(ip: Option<Extension<ClientIp>>) -> Option<IpAddr> {
    ip.map(|Extension(ClientIp(ip))| ip)
}

// ---------------------------------------------------------------- POST /oauth/token

/// The token endpoint's success (RFC 6749 §5.1).
fn issued(token: &PlainToken, expires_in: i64, scope: &AbilitySet) -> Response {
    Json(json!({
        "access_token": token.expose_secret(),
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": scope.to_spaced(),
    }))
    .into_response()
}

/// The requested scope: the client's abilities without one; else each
/// ability must be known and held by the client.
fn scope(requested: Option<&str>, client: &ClientPrincipal) -> Result<AbilitySet, OAuthError> {
    let Some(requested) = requested else {
        return Ok(client.abilities.clone());
    };
    let words: Vec<String> = requested
        .split_ascii_whitespace()
        .map(str::to_owned)
        .collect();
    let invalid = |description: String| {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    };
    let scope = abilities::parse_for_kind(&words, TokenKind::Secret).map_err(invalid)?;
    if !scope.is_subset_of(&client.abilities) {
        return Err(invalid(format!(
            "the client may ask for at most `{}`",
            client.abilities.to_spaced()
        )));
    }
    Ok(scope)
}

/// `POST /oauth/token`: the client credentials grant.
pub async fn token(
    State(state): State<AppState>,
    ip: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let ip = client_ip(ip);
    let (form, client) = match client_form(&state, ip, &headers, body).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let principal = client.client();
    // The client's own limit per minute, shared with its API requests.
    if let Err(error) = state
        .gate
        .check_client_limits(&principal.client_id, principal.limits, ip)
        .await
    {
        return OAuthError::from_auth(&error).into_response();
    }
    match form.get("grant_type") {
        None => return OAuthError::invalid_request("grant_type is missing").into_response(),
        Some("client_credentials") => {}
        Some(_) => {
            return OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "the only grant is client_credentials",
            )
            .into_response();
        }
    }
    let scope = match scope(form.get("scope"), principal) {
        Ok(scope) => scope,
        Err(error) => return error.into_response(),
    };
    let now = state.db.now();
    // A token never outlives the key that obtained it.
    let expires_at = match client.key_expires_at {
        Some(key) => key.min(now + state.config.access_token_ttl),
        None => now + state.config.access_token_ttl,
    };
    let token = TOKENS.generate(TokenKind::Access);
    let ids = ClientIds::from(&**principal);
    let new = NewAccessToken {
        client_id: &ids.client,
        key_id: &ids.key,
        scope: &scope,
        expires_at,
    };
    let audit = Audit::of(&client.principal, ip);
    match state.db.issue_access_token(&token, new, &audit).await {
        Ok(_) => {}
        Err(IssueError::Revoked) => {
            return refuse_client(&state, ip, Some(&ids.client), "revoked while exchanging").await;
        }
        Err(IssueError::Database(error)) => return db_error(error),
    }
    issued(&token, (expires_at - now).whole_seconds(), &scope)
}

// ---------------------------------------------------------------- POST /oauth/introspect

/// What may call the introspection endpoint: a secret key or an access
/// token of a client with `tokens:introspect`.
const INTROSPECTOR: Access = Access::new(KindSet::SECRET.with(KindSet::ACCESS), TOKENS_INTROSPECT);

/// The caller of the introspection endpoint: by a bearer secret key or
/// access token, or by client authentication.
async fn introspecting_caller(
    state: &AppState,
    ip: Option<IpAddr>,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Principal, Response> {
    if !has_bearer(headers) {
        let presented = presented(headers, form).map_err(IntoResponse::into_response)?;
        let principal = authenticate_client(state, ip, presented).await?.principal;
        refuse_in_browser(state, ip, headers, &principal).await?;
        return Ok(principal);
    }
    if form.get("client_secret").is_some() {
        return Err(OAuthError::invalid_request(
            "the caller authenticates with a bearer token or client credentials, not both",
        )
        .into_response());
    }
    state
        .gate
        .check_failed_auth(ip)
        .map_err(|error| OAuthError::from_auth(&error).into_response())?;
    match state.gate.verifier().authenticate(headers, None).await {
        Ok(principal) => {
            refuse_in_browser(state, ip, headers, &principal).await?;
            Ok(principal)
        }
        Err(AuthError::Unavailable) => Err(OAuthError::unavailable().into_response()),
        Err(error) => {
            if error == AuthError::InvalidToken {
                state.gate.count_failed_auth(ip).await;
            }
            Err(OAuthError {
                challenge: Some(r#"Bearer realm="jeton", error="invalid_token""#.to_owned()),
                ..OAuthError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "the bearer token is malformed, unknown, revoked or expired",
                )
            }
            .into_response())
        }
    }
}

/// RFC 7662 §2.2 for a live credential.
async fn describe(state: &AppState, token: &PlainToken) -> Result<Option<Value>, Response> {
    let found = match state.gate.verifier().inspect(token).await {
        Ok(found) => found,
        Err(AuthError::Unavailable) => return Err(OAuthError::unavailable().into_response()),
        Err(_) => return Ok(None),
    };
    let (id, client_id, subject, abilities) = match &found.principal {
        Principal::User(user) => (
            user.token_id.as_str(),
            user.client_id.as_deref(),
            Some(user.user_id.as_str()),
            &user.abilities,
        ),
        other => {
            let Some(client) = other.client() else {
                return Ok(None);
            };
            (
                client.key_id.as_str(),
                Some(client.client_id.as_str()),
                None,
                &client.abilities,
            )
        }
    };
    let issued_at = match state.db.issued_at(token.kind(), id).await {
        Ok(Some(at)) => at,
        Ok(None) => return Ok(None),
        Err(error) => return Err(db_error(error)),
    };
    let mut body = Map::new();
    body.insert("active".into(), json!(true));
    body.insert("scope".into(), json!(abilities.to_spaced()));
    if let Some(client_id) = client_id {
        body.insert("client_id".into(), json!(client_id));
    }
    body.insert("token_type".into(), json!("Bearer"));
    if let Some(expires_at) = found.expires_at {
        body.insert("exp".into(), json!(expires_at.unix_timestamp()));
    }
    body.insert("iat".into(), json!(issued_at.unix_timestamp()));
    if let Some(subject) = subject {
        body.insert("sub".into(), json!(subject));
    }
    body.insert("jeton_kind".into(), json!(token.kind().name()));
    Ok(Some(Value::Object(body)))
}

/// `POST /oauth/introspect` (RFC 7662).
pub async fn introspect(
    State(state): State<AppState>,
    ip: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let ip = client_ip(ip);
    let form = match form(&headers, body) {
        Ok(form) => form,
        Err(error) => return error.into_response(),
    };
    let caller = match introspecting_caller(&state, ip, &headers, &form).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    if INTROSPECTOR.check(&caller, state.gate.ceilings()).is_err() {
        let audit = Audit::of(&caller, ip);
        let client = caller
            .client()
            .map(|client| ClientIds::from(&**client).client);
        let event = Event {
            action: "oauth.introspection_denied",
            client_id: client.as_ref(),
            detail: Some("the caller lacks tokens:introspect".to_owned()),
            ..Event::default()
        };
        if let Err(error) = state.db.record_event(&audit, event).await {
            tracing::warn!(%error, "could not audit a denied introspection");
        }
        let error = if !has_bearer(&headers) {
            OAuthError::invalid_client("the client lacks the tokens:introspect ability")
        } else {
            OAuthError {
                challenge: Some(
                    r#"Bearer realm="jeton", error="insufficient_scope", scope="tokens:introspect""#
                        .to_owned(),
                ),
                ..OAuthError::new(
                    StatusCode::UNAUTHORIZED,
                    "insufficient_scope",
                    "the caller lacks the tokens:introspect ability",
                )
            }
        };
        return error.into_response();
    }
    let Some(text) = form.get("token") else {
        return OAuthError::invalid_request("token is missing").into_response();
    };
    let inactive = || Json(json!({"active": false})).into_response();
    let Ok(token) = TOKENS.parse(text) else {
        return inactive();
    };
    match describe(&state, &token).await {
        Ok(Some(body)) => Json(body).into_response(),
        Ok(None) => inactive(),
        Err(response) => response,
    }
}

/// Does the caller present a bearer token rather than client credentials?
fn has_bearer(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.split_once(' '))
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
}

// ---------------------------------------------------------------- POST /oauth/revoke

/// `POST /oauth/revoke` (RFC 7009): revokes the calling client's own access
/// tokens and the user tokens issued through it; 200 whatever the token.
pub async fn revoke(
    State(state): State<AppState>,
    ip: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let ip = client_ip(ip);
    let (form, client) = match client_form(&state, ip, &headers, body).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Some(text) = form.get("token") else {
        return OAuthError::invalid_request("token is missing").into_response();
    };
    if let Ok(token) = TOKENS.parse(text)
        && matches!(token.kind(), TokenKind::Access | TokenKind::User)
    {
        let ids = ClientIds::from(&**client.client());
        let audit = Audit::of(&client.principal, ip);
        if let Err(error) = state
            .db
            .revoke_for_client(token.kind(), &token.hash(), &ids.client, &audit)
            .await
        {
            return db_error(error);
        }
    }
    StatusCode::OK.into_response()
}

// ---------------------------------------------------------------- GET /.well-known/oauth-authorization-server

/// The server's metadata (RFC 8414), its URLs under `--public-url`.
pub fn metadata_document(state: &AppState) -> Value {
    let url = &state.config.public_url;
    json!({
        "issuer": url.as_str(),
        "token_endpoint": url.join(TOKEN_PATH),
        "introspection_endpoint": url.join(INTROSPECT_PATH),
        "revocation_endpoint": url.join(REVOKE_PATH),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "scopes_supported": abilities::grantable(TokenKind::Secret),
    })
}

pub async fn metadata(State(state): State<AppState>) -> Json<Value> {
    Json(metadata_document(&state))
}
