//! Client authentication (RFC 6749 §2.3.1): HTTP Basic or the form's
//! `client_id` and `client_secret`, and the refusals, each counted and
//! audited.

use crate::identity::TOKENS;
use std::{net::IpAddr, sync::Arc};

use axum::{
    body::Bytes,
    extract::rejection::BytesRejection,
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use base64::Engine;
use jeton_auth::{AuthError, ClientPrincipal, Principal, TokenKind};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::{
    OAuthError,
    form::{Form, form},
};
use crate::{
    domain::ids::ClientId,
    http::state::AppState,
    store::audit::{Actor, Audit, Event},
};

/// Client credentials as presented: by which method, the id and the secret.
pub(super) struct Presented {
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
pub(super) fn presented(headers: &HeaderMap, form: &Form) -> Result<Option<Presented>, OAuthError> {
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
pub(super) struct Authenticated {
    pub(super) principal: Principal,
    pub(super) key_expires_at: Option<OffsetDateTime>,
}

impl Authenticated {
    pub(super) fn client(&self) -> &Arc<ClientPrincipal> {
        self.principal.client().expect("a client authenticated")
    }
}

/// The form of a request that only a client may make (the token and
/// revocation endpoints), and the client its credentials authenticate.
pub(super) async fn client_form(
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

/// A secret key (or an access token) that came with an `Origin` was sent by
/// a browser: it has leaked. Refused as `invalid_client`, and flagged and
/// audited as the guard does on the API (`secret_key_in_browser`).
pub(super) async fn refuse_in_browser(
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
pub(super) async fn authenticate_client(
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
pub(super) async fn refuse_client(
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
