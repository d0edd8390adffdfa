//! The typed extractors: a handler that asks for [`User`] gets a
//! [`UserPrincipal`] or the request never reaches it. An extractor used on
//! a route without a guard refuses the request (deny by default).

use std::sync::{
    Arc, LazyLock,
    atomic::{AtomicBool, Ordering},
};

use axum::{extract::FromRequestParts, http::request::Parts};

use crate::{
    AuthError, ClientPrincipal, GuestPrincipal, Identity, KindSet, Principal, Refused,
    UserPrincipal,
};

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

/// A person with a user token (never a staff session, never a guest).
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

/// An anonymous visitor with a guest token (never a person, never a
/// client).
#[derive(Debug, Clone)]
pub struct Guest(pub Arc<GuestPrincipal>);

impl<S: Send + Sync> FromRequestParts<S> for Guest {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match principal(parts)? {
            Principal::Guest(guest) => Ok(Guest(guest.clone())),
            _ => Err(wrong_kind(parts, KindSet::GUEST)),
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

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;
    use crate::{AbilitySet, AuthError};

    fn parts_with(principal: Principal) -> Parts {
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.extensions.insert(principal);
        parts.extensions.insert(Identity::default());
        parts
    }

    fn person() -> Arc<UserPrincipal> {
        Arc::new(UserPrincipal::new("p", "t", AbilitySet::default()))
    }

    #[tokio::test]
    async fn a_staff_session_is_never_a_user_and_the_other_way_round() {
        let mut staff = parts_with(Principal::Staff(person()));
        let refused = User::from_request_parts(&mut staff, &()).await.unwrap_err();
        assert_eq!(
            refused.error,
            AuthError::WrongKind {
                accepted: KindSet::USER
            }
        );
        assert!(Staff::from_request_parts(&mut staff, &()).await.is_ok());
        assert!(Client::from_request_parts(&mut staff, &()).await.is_err());
        assert!(
            SecretClient::from_request_parts(&mut staff, &())
                .await
                .is_err()
        );

        let mut user = parts_with(Principal::User(person()));
        let refused = Staff::from_request_parts(&mut user, &()).await.unwrap_err();
        assert_eq!(
            refused.error,
            AuthError::WrongKind {
                accepted: KindSet::STAFF
            }
        );
        assert!(User::from_request_parts(&mut user, &()).await.is_ok());

        // A person all the same, for whoever records who acted.
        let member = Principal::Staff(person());
        assert!(matches!(member.caller(), crate::Caller::Person(_)));
        assert!(member.client().is_none());
        assert_eq!(member.kind(), crate::TokenKind::Staff);
    }

    #[tokio::test]
    async fn a_guest_is_neither_a_user_nor_a_client() {
        let guest = Arc::new(GuestPrincipal::new("g", "c", AbilitySet::default()));
        let mut parts = parts_with(Principal::Guest(guest));
        let refused = User::from_request_parts(&mut parts, &()).await.unwrap_err();
        assert_eq!(
            refused.error,
            AuthError::WrongKind {
                accepted: KindSet::USER
            }
        );
        assert!(Staff::from_request_parts(&mut parts, &()).await.is_err());
        assert!(Client::from_request_parts(&mut parts, &()).await.is_err());
        assert!(
            SecretClient::from_request_parts(&mut parts, &())
                .await
                .is_err()
        );
        let Guest(found) = Guest::from_request_parts(&mut parts, &()).await.unwrap();
        assert_eq!(found.token_id, "g");

        let mut user = parts_with(Principal::User(person()));
        let refused = Guest::from_request_parts(&mut user, &()).await.unwrap_err();
        assert_eq!(
            refused.error,
            AuthError::WrongKind {
                accepted: KindSet::GUEST
            }
        );
    }
}
