//! Where a token is verified: header → format check (no I/O) → store lookup
//! by hash → expiry → principal.

use axum::http::request::Parts;
use time::OffsetDateTime;

use crate::{AuthError, PlainToken, Principal, TokenStore, header};

pub struct Verifier<S> {
    store: S,
}

impl<S: TokenStore> Verifier<S> {
    pub fn new(store: S) -> Verifier<S> {
        Verifier { store }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Authenticates a request from its `Authorization` header.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Principal, AuthError> {
        let token = header::bearer_token(&parts.headers, parts.uri.query())?;
        self.verify(&token).await
    }

    /// Verifies a token that has already passed the format check.
    pub async fn verify(&self, token: &PlainToken) -> Result<Principal, AuthError> {
        let credential = self
            .store
            .find_credential(token.kind(), &token.hash())
            .await
            .map_err(|error| {
                tracing::warn!(%error, kind = token.kind().name(), "token store unavailable");
                AuthError::Unavailable
            })?
            .ok_or(AuthError::InvalidToken)?;
        // Belt and braces: a store must only return the kind it was asked
        // for, but a key of one kind must never authenticate as another.
        if credential.principal.kind() != token.kind()
            || credential.is_expired_at(OffsetDateTime::now_utc())
        {
            return Err(AuthError::InvalidToken);
        }
        Ok(credential.principal)
    }
}
