//! Who is calling. A handler receives one of these types, so a handler written
//! for a [`UserPrincipal`] can never be handed a client application.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::{AbilitySet, TokenKind, limits::Limits};

/// A client application, authenticated by one of its keys.
///
/// A store builds one with [`ClientPrincipal::new`]: fields may be added,
/// so it cannot be written as a struct literal outside this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientPrincipal {
    pub client_id: String,
    /// The key that was presented (a client has several while rotating).
    pub key_id: String,
    pub abilities: AbilitySet,
    /// Publishable keys: the origins (`scheme://host[:port]`, or `*`) whose
    /// pages may use the key.
    pub allowed_origins: Vec<String>,
    pub limits: Limits,
}

/// A person, authenticated by a user token.
///
/// A store builds one with [`UserPrincipal::new`]: fields may be added, so
/// it cannot be written as a struct literal outside this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserPrincipal {
    pub user_id: String,
    /// The token that was presented, so "revoke this token" and "is this the
    /// current token" can be answered.
    pub token_id: String,
    /// The client application the token was issued through, if any.
    pub client_id: Option<String>,
    /// That client's allowed origins (empty without a live client): the
    /// pages a cookie session may be used from (see [`crate::session`]).
    pub client_origins: Vec<String>,
    pub abilities: AbilitySet,
    /// For the app to show ("expires in 3 days"). The verifier checks
    /// [`StoredCredential::expires_at`](crate::StoredCredential::expires_at),
    /// on every request.
    pub expires_at: Option<OffsetDateTime>,
}

/// An anonymous visitor, authenticated by a guest token: obtained through
/// a client's publishable key, bound to that client (not to the key, so a
/// rotation keeps it) and to the origin it was obtained from.
///
/// A store builds one with [`GuestPrincipal::new`]: fields may be added,
/// so it cannot be written as a struct literal outside this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GuestPrincipal {
    /// The guest's own id (the token's): what an app keys the guest's
    /// things on.
    pub token_id: String,
    /// The client whose publishable key obtained the token.
    pub client_id: String,
    /// The origin the token was obtained from (`scheme://host[:port]`),
    /// the only one a browser may use it from; `None`: obtained with no
    /// `Origin` (an app), and never usable from a browser's page.
    pub origin: Option<String>,
    pub abilities: AbilitySet,
    /// When it ends if used until then: the earlier of its absolute end
    /// and its last use plus its idle time, as the store last read them.
    pub expires_at: Option<OffsetDateTime>,
}

impl GuestPrincipal {
    /// A guest of `client_id`, bound to no origin, that does not expire.
    ///
    /// ```
    /// use jeton_auth::{AbilitySet, GuestPrincipal};
    ///
    /// let guest = GuestPrincipal::new("guest-1", "client-1", AbilitySet::parse_spaced("products:read").unwrap())
    ///     .with_origin(Some("https://shop.example".to_owned()));
    /// assert_eq!(guest.origin.as_deref(), Some("https://shop.example"));
    /// ```
    pub fn new(
        token_id: impl Into<String>,
        client_id: impl Into<String>,
        abilities: AbilitySet,
    ) -> GuestPrincipal {
        GuestPrincipal {
            token_id: token_id.into(),
            client_id: client_id.into(),
            origin: None,
            abilities,
            expires_at: None,
        }
    }

    /// The origin the guest is bound to (`None`: no browser's page).
    pub fn with_origin(mut self, origin: Option<String>) -> GuestPrincipal {
        self.origin = origin;
        self
    }

    pub fn with_expires_at(mut self, expires_at: Option<OffsetDateTime>) -> GuestPrincipal {
        self.expires_at = expires_at;
        self
    }
}

impl ClientPrincipal {
    /// A client with no allowed origins and no rate limits.
    ///
    /// ```
    /// use jeton_auth::{AbilitySet, ClientPrincipal, limits::Limits};
    ///
    /// let client = ClientPrincipal::new("client-1", "key-1", AbilitySet::parse_spaced("products:read").unwrap())
    ///     .with_allowed_origins(["https://shop.example"])
    ///     .with_limits(Limits { per_key: Some(600), per_ip: Some(60) });
    /// assert_eq!(client.allowed_origins, ["https://shop.example"]);
    /// ```
    pub fn new(
        client_id: impl Into<String>,
        key_id: impl Into<String>,
        abilities: AbilitySet,
    ) -> ClientPrincipal {
        ClientPrincipal {
            client_id: client_id.into(),
            key_id: key_id.into(),
            abilities,
            allowed_origins: Vec::new(),
            limits: Limits::default(),
        }
    }

    /// The origins whose pages may use a publishable key.
    pub fn with_allowed_origins(
        mut self,
        origins: impl IntoIterator<Item = impl Into<String>>,
    ) -> ClientPrincipal {
        self.allowed_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    pub fn with_limits(mut self, limits: Limits) -> ClientPrincipal {
        self.limits = limits;
        self
    }
}

impl UserPrincipal {
    /// A user token issued through no client, that does not expire.
    ///
    /// ```
    /// use jeton_auth::{AbilitySet, UserPrincipal};
    ///
    /// let user = UserPrincipal::new("user-1", "token-1", AbilitySet::parse_spaced("orders:read").unwrap())
    ///     .with_client("client-1", ["https://shop.example"]);
    /// assert_eq!(user.client_id.as_deref(), Some("client-1"));
    /// ```
    pub fn new(
        user_id: impl Into<String>,
        token_id: impl Into<String>,
        abilities: AbilitySet,
    ) -> UserPrincipal {
        UserPrincipal {
            user_id: user_id.into(),
            token_id: token_id.into(),
            client_id: None,
            client_origins: Vec::new(),
            abilities,
            expires_at: None,
        }
    }

    /// The client the token was issued through, and that client's allowed
    /// origins.
    pub fn with_client(
        mut self,
        client_id: impl Into<String>,
        origins: impl IntoIterator<Item = impl Into<String>>,
    ) -> UserPrincipal {
        self.client_id = Some(client_id.into());
        self.client_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    pub fn with_expires_at(mut self, expires_at: Option<OffsetDateTime>) -> UserPrincipal {
        self.expires_at = expires_at;
        self
    }
}

/// The details sit behind an `Arc`: the verifier hands the cached principal
/// to every request, and a clone is then one atomic increment, not a copy of
/// its ids, abilities and origins.
///
/// More kinds may come, so a `match` outside this crate needs a `_` arm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Principal {
    PublishableClient(Arc<ClientPrincipal>),
    SecretClient(Arc<ClientPrincipal>),
    User(Arc<UserPrincipal>),
    /// A client application with an OAuth 2.0 access token: it stands in
    /// for the client's secret key, with the token's scope as its abilities
    /// and the token's id as its `key_id`.
    AccessToken(Arc<ClientPrincipal>),
    /// A staff member with a session of the app's console: a person, as a
    /// user is, but never one: `user_id` is the member's id, `token_id`
    /// the session's, and the abilities their role's. It reaches only the
    /// routes that take [`KindSet::STAFF`](crate::KindSet::STAFF), and the
    /// [`User`](crate::User) extractor refuses it.
    Staff(Arc<UserPrincipal>),
    /// An anonymous visitor with a guest token: neither a person nor a
    /// client. It reaches only the routes that take
    /// [`KindSet::GUEST`](crate::KindSet::GUEST); the [`User`](crate::User)
    /// and [`Client`](crate::Client) extractors refuse it.
    Guest(Arc<GuestPrincipal>),
}

impl Principal {
    pub fn kind(&self) -> TokenKind {
        match self {
            Principal::PublishableClient(_) => TokenKind::Publishable,
            Principal::SecretClient(_) => TokenKind::Secret,
            Principal::User(_) => TokenKind::User,
            Principal::AccessToken(_) => TokenKind::Access,
            Principal::Staff(_) => TokenKind::Staff,
            Principal::Guest(_) => TokenKind::Guest,
        }
    }

    pub fn abilities(&self) -> &AbilitySet {
        match self {
            Principal::PublishableClient(client)
            | Principal::SecretClient(client)
            | Principal::AccessToken(client) => &client.abilities,
            Principal::User(user) | Principal::Staff(user) => &user.abilities,
            Principal::Guest(guest) => &guest.abilities,
        }
    }

    /// The id of the key or token that was presented.
    pub fn credential_id(&self) -> &str {
        match self {
            Principal::PublishableClient(client)
            | Principal::SecretClient(client)
            | Principal::AccessToken(client) => &client.key_id,
            Principal::User(user) | Principal::Staff(user) => &user.token_id,
            Principal::Guest(guest) => &guest.token_id,
        }
    }

    /// Who acts: a person, a client application or an anonymous guest.
    /// Kinds of principal will be added; each is one of these three, so a
    /// `match` on this needs no `_` arm.
    pub fn caller(&self) -> Caller<'_> {
        match self {
            Principal::PublishableClient(client)
            | Principal::SecretClient(client)
            | Principal::AccessToken(client) => Caller::Client(client),
            Principal::User(user) | Principal::Staff(user) => Caller::Person(user),
            Principal::Guest(guest) => Caller::Guest(guest),
        }
    }

    /// The client application behind the request, if the caller is one.
    pub fn client(&self) -> Option<&Arc<ClientPrincipal>> {
        match self {
            Principal::PublishableClient(client)
            | Principal::SecretClient(client)
            | Principal::AccessToken(client) => Some(client),
            Principal::User(_) | Principal::Staff(_) | Principal::Guest(_) => None,
        }
    }
}

/// Who acts, whatever the kind of token: see [`Principal::caller`].
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    Person(&'a Arc<UserPrincipal>),
    Client(&'a Arc<ClientPrincipal>),
    /// An anonymous visitor: no person, and not the client whose key it
    /// obtained its token with.
    Guest(&'a Arc<GuestPrincipal>),
}
