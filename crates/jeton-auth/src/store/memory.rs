//! A [`TokenStore`] in memory: for tests, examples and small apps whose
//! credentials need not outlive the process.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use time::OffsetDateTime;

use super::{Refusal, StoreError, StoredCredential, TokenStore};
use crate::{
    Ability, AbilitySet, ClientPrincipal, HashedToken, PlainToken, Principal, TokenFormat,
    TokenKind, UserPrincipal, limits::Limits,
};

/// Refusals kept for [`MemoryStore::refusals`]; older ones are dropped.
const REFUSALS_KEPT: usize = 1000;

/// Credentials in memory. Clones share one store: keep one to issue and
/// revoke tokens, give another to the [`Verifier`](crate::Verifier). A
/// revocation takes effect on the next request.
///
/// ```
/// use jeton_auth::{Ability, Identity, MemoryStore, NewClient, TokenKind};
///
/// let identity = Identity::new("acme")?;
/// let store = MemoryStore::new(identity.tokens());
/// let shop = store.add_client(
///     NewClient::new([Ability::from_static("products:read")])
///         .allowed_origins(["https://shop.example"]),
/// );
/// let key = store.issue_publishable_key(&shop)?;
/// assert!(key.token.expose_secret().starts_with("acme_pk_"));
///
/// let login = store.issue_user_token("alice", [Ability::from_static("profile:read")], None);
/// assert!(store.revoke(&login.id));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct MemoryStore(Arc<Shared>);

struct Shared {
    format: TokenFormat,
    state: Mutex<State>,
    /// Moves on every revocation; see [`TokenStore::generation`].
    generation: AtomicU64,
}

#[derive(Default)]
struct State {
    next_id: u64,
    clients: HashMap<String, Client>,
    credentials: HashMap<HashedToken, Credential>,
    refusals: Vec<Refusal>,
    last_used: HashMap<String, OffsetDateTime>,
}

struct Client {
    abilities: AbilitySet,
    allowed_origins: Vec<String>,
    limits: Limits,
}

struct Credential {
    id: String,
    kind: TokenKind,
    owner: Owner,
    expires_at: Option<OffsetDateTime>,
}

enum Owner {
    Client(String),
    User {
        user_id: String,
        abilities: AbilitySet,
        /// The client the token was issued through.
        client_id: Option<String>,
    },
}

/// A client application to add: its abilities, the origins whose pages may
/// use its publishable keys, and its rate limits.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub(super) abilities: AbilitySet,
    pub(super) allowed_origins: Vec<String>,
    pub(super) limits: Limits,
}

impl NewClient {
    /// A client holding `abilities`, usable from no origin and without
    /// rate limits until told otherwise.
    pub fn new(abilities: impl IntoIterator<Item = Ability>) -> NewClient {
        NewClient {
            abilities: AbilitySet::new(abilities),
            allowed_origins: Vec::new(),
            limits: Limits::default(),
        }
    }

    /// Origins (`scheme://host[:port]`, or `*`) whose pages may use the
    /// client's publishable keys. A request with no `Origin` (a server, a
    /// mobile app) is always allowed. `SqlStore` refuses
    /// a client with anything else ([`parse_origin`](crate::origin::parse_origin)),
    /// and stores each in its canonical form.
    pub fn allowed_origins<'a>(mut self, origins: impl IntoIterator<Item = &'a str>) -> NewClient {
        self.allowed_origins = origins.into_iter().map(str::to_owned).collect();
        self
    }

    /// Requests per minute, per key and per key and client IP.
    pub fn limits(mut self, limits: Limits) -> NewClient {
        self.limits = limits;
        self
    }
}

/// A token just issued: show `token` to its owner once; keep `id` to revoke
/// it.
#[derive(Debug)]
pub struct IssuedToken {
    pub id: String,
    pub token: PlainToken,
}

/// A key was asked for a client the store does not know (or revoked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no client `{0}`")]
pub struct UnknownClient(pub String);

impl MemoryStore {
    /// An empty store issuing tokens in `format` (an [`Identity`]'s
    /// [`tokens`](crate::Identity::tokens)).
    ///
    /// [`Identity`]: crate::Identity
    pub fn new(format: TokenFormat) -> MemoryStore {
        MemoryStore(Arc::new(Shared {
            format,
            state: Mutex::new(State::default()),
            generation: AtomicU64::new(0),
        }))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every change is one insert or removal: a panic elsewhere cannot
        // leave the maps half-changed.
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// After a revocation: nothing cached before it is served again.
    fn changed(&self) {
        self.0.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Adds a client application; returns its id.
    pub fn add_client(&self, client: NewClient) -> String {
        let mut state = self.state();
        let id = state.id("client");
        state.clients.insert(
            id.clone(),
            Client {
                abilities: client.abilities,
                allowed_origins: client.allowed_origins,
                limits: client.limits,
            },
        );
        id
    }

    /// A publishable key for the client: for browser code, public by
    /// design.
    pub fn issue_publishable_key(&self, client_id: &str) -> Result<IssuedToken, UnknownClient> {
        self.issue_key(client_id, TokenKind::Publishable)
    }

    /// A secret key for the client: for its servers only.
    pub fn issue_secret_key(&self, client_id: &str) -> Result<IssuedToken, UnknownClient> {
        self.issue_key(client_id, TokenKind::Secret)
    }

    fn issue_key(&self, client_id: &str, kind: TokenKind) -> Result<IssuedToken, UnknownClient> {
        let mut state = self.state();
        if !state.clients.contains_key(client_id) {
            return Err(UnknownClient(client_id.to_owned()));
        }
        let owner = Owner::Client(client_id.to_owned());
        Ok(state.issue(self.0.format, kind, owner, None))
    }

    /// A user token for `user_id` (the app's id for the person), holding
    /// `abilities` until `expires_at` (`None`: until revoked).
    pub fn issue_user_token(
        &self,
        user_id: &str,
        abilities: impl IntoIterator<Item = Ability>,
        expires_at: Option<OffsetDateTime>,
    ) -> IssuedToken {
        let owner = Owner::User {
            user_id: user_id.to_owned(),
            abilities: AbilitySet::new(abilities),
            client_id: None,
        };
        self.state()
            .issue(self.0.format, TokenKind::User, owner, expires_at)
    }

    /// A user token issued through a client (the one whose publishable key
    /// logged the person in): the token carries that client's allowed
    /// origins while the client lives, which is where a
    /// [cookie session](crate::session::CookieSessions) may be used from.
    pub fn issue_user_token_via(
        &self,
        client_id: &str,
        user_id: &str,
        abilities: impl IntoIterator<Item = Ability>,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<IssuedToken, UnknownClient> {
        let mut state = self.state();
        if !state.clients.contains_key(client_id) {
            return Err(UnknownClient(client_id.to_owned()));
        }
        let owner = Owner::User {
            user_id: user_id.to_owned(),
            abilities: AbilitySet::new(abilities),
            client_id: Some(client_id.to_owned()),
        };
        Ok(state.issue(self.0.format, TokenKind::User, owner, expires_at))
    }

    /// Revokes one token or key by its id; whether there was one.
    pub fn revoke(&self, token_id: &str) -> bool {
        let removed = self.state().remove(|c| c.id == token_id) > 0;
        self.changed();
        removed
    }

    /// Revokes every token of a person (log out everywhere); how many.
    pub fn revoke_user_tokens(&self, user_id: &str) -> usize {
        let removed = self
            .state()
            .remove(|c| matches!(&c.owner, Owner::User { user_id: u, .. } if u == user_id));
        self.changed();
        removed
    }

    /// Revokes every user token issued through the client
    /// ([`issue_user_token_via`](MemoryStore::issue_user_token_via)); how
    /// many. With [`revoke_client`](MemoryStore::revoke_client), nothing the
    /// client ever handed out works any more.
    pub fn revoke_client_tokens(&self, client_id: &str) -> usize {
        let removed = self.state().remove(
            |c| matches!(&c.owner, Owner::User { client_id: Some(id), .. } if id == client_id),
        );
        self.changed();
        removed
    }

    /// Revokes a client and its keys (publishable and secret); whether
    /// there was one. User tokens issued through it stay valid, no longer
    /// bound to its origins (a person logged in through a website stays
    /// logged in to the app): revoke them with
    /// [`revoke_client_tokens`](MemoryStore::revoke_client_tokens).
    pub fn revoke_client(&self, client_id: &str) -> bool {
        let mut state = self.state();
        let known = state.clients.remove(client_id).is_some();
        state.remove(|c| matches!(&c.owner, Owner::Client(id) if id == client_id));
        drop(state);
        self.changed();
        known
    }

    /// The latest refusals recorded by the guard (an origin not allowed, a
    /// secret key sent by a browser), oldest first.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.state().refusals.clone()
    }

    /// When a user token was last used, as the verifier last reported.
    pub fn last_used(&self, token_id: &str) -> Option<OffsetDateTime> {
        self.state().last_used.get(token_id).copied()
    }
}

impl State {
    fn id(&mut self, what: &str) -> String {
        self.next_id += 1;
        format!("{what}_{}", self.next_id)
    }

    fn issue(
        &mut self,
        format: TokenFormat,
        kind: TokenKind,
        owner: Owner,
        expires_at: Option<OffsetDateTime>,
    ) -> IssuedToken {
        let token = format.generate(kind);
        let id = self.id(if kind == TokenKind::User {
            "token"
        } else {
            "key"
        });
        self.credentials.insert(
            token.hash(),
            Credential {
                id: id.clone(),
                kind,
                owner,
                expires_at,
            },
        );
        IssuedToken { id, token }
    }

    /// Removes the credentials that match; how many.
    fn remove(&mut self, matches: impl Fn(&Credential) -> bool) -> usize {
        let before = self.credentials.len();
        self.credentials
            .retain(|_, credential| !matches(credential));
        before - self.credentials.len()
    }

    fn find(&self, kind: TokenKind, hash: &HashedToken) -> Option<StoredCredential> {
        let credential = self.credentials.get(hash).filter(|c| c.kind == kind)?;
        let principal = match &credential.owner {
            Owner::Client(client_id) => {
                let client = self.clients.get(client_id)?;
                let principal = Arc::new(ClientPrincipal {
                    client_id: client_id.clone(),
                    key_id: credential.id.clone(),
                    abilities: client.abilities.clone(),
                    allowed_origins: client.allowed_origins.clone(),
                    limits: client.limits,
                });
                match kind {
                    TokenKind::Publishable => Principal::PublishableClient(principal),
                    TokenKind::Access => Principal::AccessToken(principal),
                    _ => Principal::SecretClient(principal),
                }
            }
            Owner::User {
                user_id,
                abilities,
                client_id,
            } => {
                // A token issued through a client that is gone keeps
                // working, from no page: it still names the client, without
                // origins.
                let client = client_id.as_ref().and_then(|id| self.clients.get(id));
                Principal::User(Arc::new(UserPrincipal {
                    user_id: user_id.clone(),
                    token_id: credential.id.clone(),
                    client_id: client_id.clone(),
                    client_origins: client
                        .map(|client| client.allowed_origins.clone())
                        .unwrap_or_default(),
                    abilities: abilities.clone(),
                    expires_at: credential.expires_at,
                }))
            }
        };
        Some(StoredCredential {
            principal,
            expires_at: credential.expires_at,
            revoked: false,
        })
    }
}

impl TokenStore for MemoryStore {
    async fn find_credential(
        &self,
        kind: TokenKind,
        hash: &HashedToken,
    ) -> Result<Option<StoredCredential>, StoreError> {
        Ok(self.state().find(kind, hash))
    }

    async fn record_refusal(&self, refusal: Refusal) {
        let mut state = self.state();
        if state.refusals.len() == REFUSALS_KEPT {
            state.refusals.remove(0);
        }
        state.refusals.push(refusal);
    }

    fn token_format(&self) -> Option<TokenFormat> {
        Some(self.0.format)
    }

    fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::SeqCst)
    }

    async fn record_usage(&self, usage: HashMap<String, OffsetDateTime>) {
        self.state().last_used.extend(usage);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: Ability = Ability::from_static("products:read");

    fn find(store: &MemoryStore, token: &PlainToken) -> Option<StoredCredential> {
        store.state().find(token.kind(), &token.hash())
    }

    #[test]
    fn keys_and_tokens_are_found_by_hash_until_revoked() {
        let store = MemoryStore::new(TokenFormat::new("acme").unwrap());
        let client =
            store.add_client(NewClient::new([READ]).allowed_origins(["https://a.example"]));
        let pk = store.issue_publishable_key(&client).unwrap();
        let sk = store.issue_secret_key(&client).unwrap();
        let ut = store.issue_user_token("alice", [READ], None);
        assert!(pk.token.expose_secret().starts_with("acme_pk_"));

        let found = find(&store, &pk.token).unwrap();
        let client_principal = found.principal.client().unwrap();
        assert_eq!(found.principal.kind(), TokenKind::Publishable);
        assert_eq!(client_principal.allowed_origins, ["https://a.example"]);
        assert_eq!(client_principal.key_id, pk.id);
        assert_eq!(
            find(&store, &sk.token).unwrap().principal.kind(),
            TokenKind::Secret
        );
        assert_eq!(
            find(&store, &ut.token).unwrap().principal.kind(),
            TokenKind::User
        );
        // A token is found only as its own kind.
        assert!(
            store
                .state()
                .find(TokenKind::Secret, &pk.token.hash())
                .is_none()
        );

        let before = store.generation();
        assert!(store.revoke(&ut.id));
        assert!(store.generation() > before);
        assert!(find(&store, &ut.token).is_none());
        assert!(store.revoke_client(&client));
        assert!(find(&store, &pk.token).is_none() && find(&store, &sk.token).is_none());
        assert_eq!(
            store.issue_secret_key(&client).unwrap_err(),
            UnknownClient(client)
        );
    }

    #[test]
    fn a_person_is_logged_out_everywhere() {
        let store = MemoryStore::new(TokenFormat::default());
        let phone = store.issue_user_token("bob", [READ], None);
        let laptop = store.issue_user_token("bob", [READ], None);
        let other = store.issue_user_token("carol", [READ], None);
        assert_eq!(store.revoke_user_tokens("bob"), 2);
        assert!(find(&store, &phone.token).is_none() && find(&store, &laptop.token).is_none());
        assert!(find(&store, &other.token).is_some());
    }

    #[test]
    fn the_tokens_issued_through_a_client_are_revoked_apart_from_it() {
        let store = MemoryStore::new(TokenFormat::default());
        let shop = store.add_client(NewClient::new([READ]));
        let other = store.add_client(NewClient::new([READ]));
        let pk = store.issue_publishable_key(&shop).unwrap();
        let via_shop = store
            .issue_user_token_via(&shop, "alice", [READ], None)
            .unwrap();
        let via_other = store
            .issue_user_token_via(&other, "alice", [READ], None)
            .unwrap();
        let direct = store.issue_user_token("alice", [READ], None);
        let before = store.generation();
        assert_eq!(store.revoke_client_tokens(&shop), 1);
        assert!(store.generation() > before);
        assert!(find(&store, &via_shop.token).is_none());
        assert!(find(&store, &via_other.token).is_some() && find(&store, &direct.token).is_some());
        // The client and its keys are left alone.
        assert!(find(&store, &pk.token).is_some());
    }

    #[test]
    fn a_token_issued_through_a_client_carries_its_origins_while_it_lives() {
        let store = MemoryStore::new(TokenFormat::default());
        let shop = store.add_client(NewClient::new([READ]).allowed_origins(["https://a.example"]));
        let token = store
            .issue_user_token_via(&shop, "alice", [READ], None)
            .unwrap();
        let found = find(&store, &token.token).unwrap();
        let Principal::User(user) = &found.principal else {
            panic!("a user")
        };
        assert_eq!(user.client_id.as_deref(), Some(shop.as_str()));
        assert_eq!(user.client_origins, ["https://a.example"]);
        assert!(store.revoke_client(&shop));
        let Principal::User(user) = find(&store, &token.token).unwrap().principal else {
            panic!("a user")
        };
        assert_eq!(
            (user.client_id.as_deref(), user.client_origins.len()),
            (Some(shop.as_str()), 0)
        );
        assert!(
            store
                .issue_user_token_via(&shop, "alice", [READ], None)
                .is_err()
        );
    }
}
