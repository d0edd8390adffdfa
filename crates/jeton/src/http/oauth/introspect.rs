//! `POST /oauth/introspect` (RFC 7662): what a token is, for a caller with
//! `tokens:introspect`.

use crate::identity::TOKENS;
use std::net::IpAddr;

use axum::{
    Json,
    body::Bytes,
    extract::{Extension, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use jeton_auth::{Access, AuthError, KindSet, PlainToken, Principal, client_ip::ClientIp};
use serde_json::{Map, Value, json};

use super::{
    OAuthError,
    client_auth::{authenticate_client, presented, refuse_in_browser},
    client_ip, db_error,
    form::{Form, form},
};
use crate::{
    domain::{abilities::TOKENS_INTROSPECT, ids::ClientIds},
    http::state::AppState,
    store::audit::{Audit, Event},
};

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
        // An anonymous visitor: its client, no subject.
        Principal::Guest(guest) => (
            guest.token_id.as_str(),
            Some(guest.client_id.as_str()),
            None,
            &guest.abilities,
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
