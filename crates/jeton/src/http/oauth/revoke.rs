//! `POST /oauth/revoke` (RFC 7009).

use crate::identity::TOKENS;

use axum::{
    body::Bytes,
    extract::{Extension, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use jeton_auth::{TokenKind, client_ip::ClientIp};

use super::{OAuthError, client_auth::client_form, client_ip, db_error};
use crate::{domain::ids::ClientIds, http::state::AppState, store::audit::Audit};

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
