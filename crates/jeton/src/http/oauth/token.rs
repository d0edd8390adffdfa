//! `POST /oauth/token`: the client credentials grant (RFC 6749 §4.4).

use crate::identity::TOKENS;

use axum::{
    Json,
    body::Bytes,
    extract::{Extension, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use jeton_auth::{AbilitySet, ClientPrincipal, PlainToken, TokenKind, client_ip::ClientIp};
use serde_json::json;

use super::{
    OAuthError,
    client_auth::{client_form, refuse_client},
    client_ip, db_error,
};
use crate::{
    domain::{abilities, ids::ClientIds},
    http::state::AppState,
    store::{IssueError, access_tokens::NewAccessToken, audit::Audit},
};

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
/// ability must be known and held by the client, by the same rules as the
/// routes (`admin` holds `clients:read`; `orders:*` does not hold
/// `orders:cancel`).
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
    if !abilities::ceilings().is_subset(&scope, &client.abilities) {
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
