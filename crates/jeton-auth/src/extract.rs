//! The typed extractors: a handler that asks for [`User`] gets a
//! [`UserPrincipal`] or the request never reaches it. An extractor used on
//! a route without a guard refuses the request (deny by default).

use std::sync::{
    Arc, LazyLock,
    atomic::{AtomicBool, Ordering},
};

use axum::{extract::FromRequestParts, http::request::Parts};

use crate::{AuthError, ClientPrincipal, Identity, KindSet, Principal, Refused, UserPrincipal};

/// What a refusal on a route without a guard is rendered in: no app's.
static UNGUARDED: LazyLock<Identity> =
    LazyLock::new(|| Identity::new("api").expect("a valid prefix"));

/// Whether an extractor on a route without a guard has been logged.
static UNGUARDED_LOGGED: AtomicBool = AtomicBool::new(false);

/// A refusal in the identity of the gate that guarded the request. Without
/// a guard there is none: the route was wired without one, which is logged
/// once, and the request is refused all the same.
fn refuse(parts: &Parts, error: AuthError) -> Refused {
    let identity = match parts.extensions.get::<Identity>() {
        Some(identity) => identity.clone(),
        None => {
            if !UNGUARDED_LOGGED.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    path = parts.uri.path(),
                    "an extractor of jeton-auth ran on a route without a guard: add \
                     `.route_layer(gate.guard(access))` to the route; its requests are refused"
                );
            }
            UNGUARDED.clone()
        }
    };
    Refused { error, identity }
}

fn principal(parts: &Parts) -> Result<&Principal, Refused> {
    parts
        .extensions
        .get::<Principal>()
        .ok_or_else(|| refuse(parts, AuthError::Unauthenticated))
}

fn wrong_kind(parts: &Parts, accepted: KindSet) -> Refused {
    refuse(parts, AuthError::WrongKind { accepted })
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        principal(parts).cloned()
    }
}

/// A person with a user token (never a staff session).
#[derive(Debug, Clone)]
pub struct User(pub Arc<UserPrincipal>);

impl<S: Send + Sync> FromRequestParts<S> for User {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match principal(parts)? {
            Principal::User(user) => Ok(User(user.clone())),
            _ => Err(wrong_kind(parts, KindSet::USER)),
        }
    }
}

/// A staff member with a session of the app's console (never a user
/// token).
#[derive(Debug, Clone)]
pub struct Staff(pub Arc<UserPrincipal>);

impl<S: Send + Sync> FromRequestParts<S> for Staff {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match principal(parts)? {
            Principal::Staff(member) => Ok(Staff(member.clone())),
            _ => Err(wrong_kind(parts, KindSet::STAFF)),
        }
    }
}

/// A client application with either kind of key.
#[derive(Debug, Clone)]
pub struct Client(pub Arc<ClientPrincipal>);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        principal(parts)?
            .client()
            .cloned()
            .map(Client)
            .ok_or_else(|| wrong_kind(parts, KindSet::PUBLISHABLE | KindSet::SECRET))
    }
}

/// A client application with a secret key, or with an access token, which
/// stands in for one.
#[derive(Debug, Clone)]
pub struct SecretClient(pub Arc<ClientPrincipal>);

impl<S: Send + Sync> FromRequestParts<S> for SecretClient {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match principal(parts)? {
            Principal::SecretClient(client) | Principal::AccessToken(client) => {
                Ok(SecretClient(client.clone()))
            }
            _ => Err(wrong_kind(parts, KindSet::SECRET)),
        }
    }
}
