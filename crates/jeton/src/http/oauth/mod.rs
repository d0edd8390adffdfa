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
//!
//! Here: the routes, the error answer and the metadata; `form` parses the
//! body, `client_auth` authenticates the client, and `token`, `introspect`
//! and `revoke` are the endpoints.

mod client_auth;
mod form;
mod introspect;
mod revoke;
mod token;

use std::net::IpAddr;

use axum::{
    Json, Router,
    extract::{Extension, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use jeton_auth::{AuthError, TokenKind, client_ip::ClientIp};
use serde_json::{Value, json};
use tower_http::set_header::SetResponseHeaderLayer;

use super::{error::AppError, state::AppState};
use crate::{domain::abilities, store::db_error::DbErrorClass};

pub use form::Form;
pub use introspect::introspect;
pub use revoke::revoke;
pub use token::token;

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

/// Whether these endpoints are the request's: they answer in RFC 6749's
/// terms, and never with CORS headers (a browser has no business here).
pub fn is_oauth_path(path: &str) -> bool {
    [TOKEN_PATH, INTROSPECT_PATH, REVOKE_PATH].contains(&path)
}

fn client_ip(ip: Option<Extension<ClientIp>>) -> Option<IpAddr> {
    ip.map(|Extension(ClientIp(ip))| ip)
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
