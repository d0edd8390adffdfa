//! The route guard and the typed extractors.
//!
//! The guard runs as a route layer: it authenticates, checks the route's
//! [`Access`], and puts the [`Principal`] in the request extensions. The
//! extractors take it out again, typed: a handler that asks for [`User`] gets
//! a [`UserPrincipal`] or the request never reaches it. An extractor used on
//! a route without a guard refuses the request (deny by default).

use std::sync::Arc;

use axum::{
    extract::{FromRequestParts, Request, State},
    http::request::Parts,
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{
    Access, AuthError, Ceilings, ClientPrincipal, Principal, TokenStore, UserPrincipal, Verifier,
};

/// The state of one route's guard.
pub struct Guard<S> {
    pub verifier: Arc<Verifier<S>>,
    pub ceilings: Arc<Ceilings>,
    pub access: Access,
}

impl<S> Clone for Guard<S> {
    fn clone(&self) -> Self {
        Guard {
            verifier: Arc::clone(&self.verifier),
            ceilings: Arc::clone(&self.ceilings),
            access: self.access.clone(),
        }
    }
}

/// Middleware for `axum::middleware::from_fn_with_state(guard, require::<S, E>)`.
/// `E` is the app's error type, so refusals render like every other error.
pub async fn require<S, E>(State(guard): State<Guard<S>>, request: Request, next: Next) -> Response
where
    S: TokenStore,
    E: From<AuthError> + IntoResponse,
{
    let (mut parts, body) = request.into_parts();
    let outcome = match guard.verifier.authenticate(&parts).await {
        Ok(principal) => guard
            .access
            .check(&principal, &guard.ceilings)
            .map(|()| principal),
        Err(error) => Err(error),
    };
    match outcome {
        Ok(principal) => {
            parts.extensions.insert(principal);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(error) => E::from(error).into_response(),
    }
}

fn principal(parts: &Parts) -> Result<&Principal, AuthError> {
    parts
        .extensions
        .get::<Principal>()
        .ok_or(AuthError::Unauthenticated)
}

fn wrong_kind() -> AuthError {
    AuthError::InsufficientScope { scope: None }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        principal(parts).cloned()
    }
}

/// A person with a user token.
#[derive(Debug, Clone)]
pub struct User(pub UserPrincipal);

impl<S: Send + Sync> FromRequestParts<S> for User {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match principal(parts)? {
            Principal::User(user) => Ok(User(user.clone())),
            _ => Err(wrong_kind()),
        }
    }
}

/// A client application with either kind of key.
#[derive(Debug, Clone)]
pub struct Client(pub ClientPrincipal);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        principal(parts)?
            .client()
            .cloned()
            .map(Client)
            .ok_or_else(wrong_kind)
    }
}

/// A client application with a secret key.
#[derive(Debug, Clone)]
pub struct SecretClient(pub ClientPrincipal);

impl<S: Send + Sync> FromRequestParts<S> for SecretClient {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match principal(parts)? {
            Principal::SecretClient(client) => Ok(SecretClient(client.clone())),
            _ => Err(wrong_kind()),
        }
    }
}
