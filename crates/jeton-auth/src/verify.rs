//! Where a token is verified: header → format check (no I/O) → cache →
//! store lookup by hash → expiry → principal.
//!
//! Verified credentials are cached by token hash, and unknown ones briefly
//! as negatives, each in a bounded [`GenerationCache`] (so a flood of random
//! well-formed tokens cannot grow memory, nor evict known tokens). Expiry is
//! checked on every hit. Whenever credentials change (a revocation here, or
//! one seen in the database's change feed) the store moves its
//! [`generation`](TokenStore::generation), or the app calls
//! [`Verifier::invalidate_all`]; no answer read before either is served
//! after it, however late a slow lookup puts it in the cache.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::http::HeaderMap;
use metrics::Counter;
use time::OffsetDateTime;

use crate::{
    AuthError, Clock, HashedToken, Identity, PlainToken, Principal, TokenKind, TokenStore,
    cache::GenerationCache, header, usage::Outcome,
};

#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// Longest a verified credential is trusted without asking the store
    /// again, even if no change is ever announced: a safety net, not the
    /// freshness guarantee (that is the app's change feed).
    pub positive_ttl: Duration,
    pub positive_capacity: u64,
    /// How long "no such token" is remembered.
    pub negative_ttl: Duration,
    pub negative_capacity: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            positive_ttl: Duration::from_secs(30),
            positive_capacity: 100_000,
            negative_ttl: Duration::from_secs(5),
            negative_capacity: 50_000,
        }
    }
}

/// A verified credential as the cache keeps it, cloned out of it on every
/// hit: a reference count for a client key, two for a user token.
#[derive(Clone)]
struct Cached {
    principal: Principal,
    expires_at: Option<OffsetDateTime>,
    /// Refused, but counted as its credential's.
    revoked: bool,
    /// User tokens, staff sessions and guest tokens (`None` for client
    /// keys): when last used, in Unix
    /// nanoseconds; 0 once that use has been handed to
    /// [`Verifier::take_usage`]. An atomic, so noting a use is one store and
    /// the first use since the last flush one push.
    last_used: Option<Arc<AtomicI64>>,
}

/// Why a token was not accepted, as the gate counts it.
pub(crate) enum NotAccepted {
    /// No credential: a token the store does not know (counted as
    /// `unattributed`).
    Unknown,
    /// A credential that exists, revoked or expired.
    Dead(Principal, Outcome),
    /// The store could not be asked.
    Unavailable,
}

impl NotAccepted {
    /// The answer: the same for every token that does not authenticate.
    pub(crate) fn error(&self) -> AuthError {
        match self {
            NotAccepted::Unavailable => AuthError::Unavailable,
            NotAccepted::Unknown | NotAccepted::Dead(..) => AuthError::InvalidToken,
        }
    }
}

const KINDS: usize = TokenKind::ALL.len();

fn kind_index(kind: TokenKind) -> usize {
    TokenKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or_default()
}

/// The recorder's handles, registered once: looking a labelled counter up
/// in the recorder on every request costs more than the rest of a cache hit.
struct Handles {
    hit: Counter,
    miss: Counter,
    negative: Counter,
    malformed: Counter,
    /// By kind.
    ok: [Counter; KINDS],
    unknown: [Counter; KINDS],
    expired: [Counter; KINDS],
}

impl Handles {
    /// `<prefix>auth_cache_total` and `<prefix>auth_verifications_total`,
    /// with the identity's metric prefix.
    fn register(identity: &Identity) -> Handles {
        let (cache_total, verifications_total) = (
            identity.metric_name("auth_cache_total"),
            identity.metric_name("auth_verifications_total"),
        );
        let cache =
            |result: &'static str| metrics::counter!(cache_total.clone(), "result" => result);
        let outcome = |result: &'static str| {
            TokenKind::ALL.map(|kind| {
                metrics::counter!(verifications_total.clone(), "result" => result, "kind" => kind.name())
            })
        };
        Handles {
            hit: cache("hit"),
            miss: cache("miss"),
            negative: cache("negative"),
            malformed: metrics::counter!(verifications_total.clone(), "result" => "malformed", "kind" => "unknown"),
            ok: outcome("ok"),
            unknown: outcome("unknown"),
            expired: outcome("expired"),
        }
    }
}

pub struct Verifier<S> {
    store: S,
    /// Whose tokens are accepted, and the metrics' names.
    identity: Identity,
    /// What expiry and last uses are read from.
    clock: Clock,
    /// The store's [`TokenStore::generation`] when last looked at.
    store_generation: AtomicU64,
    known: GenerationCache<HashedToken, Cached>,
    unknown: GenerationCache<HashedToken, ()>,
    /// Cached tokens used since the last [`Verifier::take_usage`].
    used: Mutex<Vec<(Principal, Arc<AtomicI64>)>>,
    /// Registered on first use, so that an app installs its metrics
    /// recorder any time before.
    handles: OnceLock<Handles>,
}

fn capacity(items: u64) -> usize {
    usize::try_from(items).unwrap_or(usize::MAX)
}

fn unix_nanos(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

impl<S: TokenStore> Verifier<S> {
    /// A verifier of `identity`'s tokens, with the default cache. An app
    /// builds a [`Gate`](crate::Gate), which makes its verifier; this one is
    /// for verifying tokens outside a gate.
    pub fn new(store: S, identity: Identity) -> Verifier<S> {
        Verifier::with_cache(store, identity, CacheSettings::default())
    }

    /// A verifier of `identity`'s tokens, with its cache sized by `settings`.
    pub fn with_cache(store: S, identity: Identity, settings: CacheSettings) -> Verifier<S> {
        Verifier {
            store_generation: AtomicU64::new(store.generation()),
            store,
            identity,
            clock: Clock::system(),
            known: GenerationCache::new(
                capacity(settings.positive_capacity),
                settings.positive_ttl,
            ),
            unknown: GenerationCache::new(
                capacity(settings.negative_capacity),
                settings.negative_ttl,
            ),
            used: Mutex::new(Vec::new()),
            handles: OnceLock::new(),
        }
    }

    /// Reads expiry and last uses from `clock` rather than the system's:
    /// a test moves a [`Clock::manual`] past a token's expiry instead of
    /// waiting for it.
    pub fn with_clock(mut self, clock: Clock) -> Verifier<S> {
        self.clock = clock;
        self
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    fn metrics(&self) -> &Handles {
        self.handles
            .get_or_init(|| Handles::register(&self.identity))
    }

    /// Forgets what was cached if the store's generation has moved since
    /// the last look: one atomic load when it has not. The caches are
    /// emptied before the new generation is published: a request that
    /// sees the new generation finds no entry from before it, and one that
    /// still sees the old one empties the caches itself (twice is
    /// harmless).
    fn follow_store(&self) {
        let current = self.store.generation();
        if self.store_generation.load(Ordering::Acquire) != current {
            self.invalidate_all();
            self.store_generation.store(current, Ordering::Release);
        }
    }

    /// Forgets every cached credential, positive and negative. Cheap; call it
    /// on any change to credentials, after the change is committed.
    pub fn invalidate_all(&self) {
        self.known.invalidate_all();
        self.unknown.invalidate_all();
    }

    /// Authenticates a request from its `Authorization` header.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Principal, AuthError> {
        let token =
            header::bearer_token(self.identity.tokens(), headers, query).inspect_err(|error| {
                if *error == AuthError::InvalidToken {
                    self.metrics().malformed.increment(1);
                }
            })?;
        self.verify(&token).await
    }

    /// Counts a token that failed the format check, as
    /// [`Verifier::authenticate`] does.
    pub(crate) fn count_malformed(&self) {
        self.metrics().malformed.increment(1);
    }

    /// Verifies a token that has already passed the format check.
    pub async fn verify(&self, token: &PlainToken) -> Result<Principal, AuthError> {
        self.find(token, true)
            .await
            .map(|found| found.principal)
            .map_err(|refused| refused.error())
    }

    /// As [`Verifier::verify`], saying which credential a refused token
    /// was, for the gate's usage counts.
    /// A use is noted only if `used`.
    pub(crate) async fn resolve(
        &self,
        token: &PlainToken,
        used: bool,
    ) -> Result<Principal, NotAccepted> {
        self.find(token, used).await.map(|found| found.principal)
    }

    /// What a live token is, with when it expires, through the same cache,
    /// without noting a use: for an app that tells others about tokens
    /// (OAuth 2.0 introspection) rather than serving their holders.
    pub async fn inspect(&self, token: &PlainToken) -> Result<crate::StoredCredential, AuthError> {
        self.find(token, false)
            .await
            .map(|found| crate::StoredCredential {
                principal: found.principal,
                expires_at: found.expires_at,
                revoked: false,
            })
            .map_err(|refused| refused.error())
    }

    async fn find(&self, token: &PlainToken, used: bool) -> Result<Cached, NotAccepted> {
        self.follow_store();
        let hash = token.hash();
        let kind = token.kind();
        if let Some(cached) = self.known.get(&hash) {
            // A staff session's or a guest's end moves with its use (an
            // idle timeout, counted by the store from the last use it was
            // told of): one that has ended by what was read is read again,
            // and ends only if the store says so too.
            let idle_ended = matches!(cached.principal.kind(), TokenKind::Staff | TokenKind::Guest)
                && !cached.revoked
                && cached.expires_at.is_some_and(|at| at <= self.clock.now());
            if !idle_ended {
                self.metrics().hit.increment(1);
                return self.accept(cached, kind, used);
            }
        }
        if self.unknown.get(&hash).is_some() {
            let metrics = self.metrics();
            metrics.negative.increment(1);
            metrics.unknown[kind_index(kind)].increment(1);
            return Err(NotAccepted::Unknown);
        }
        self.metrics().miss.increment(1);
        // Boxed: a store's lookup future can be kilobytes, and every
        // request's future would otherwise be that large to serve the rare
        // miss.
        let cached = Box::pin(self.load(token, hash)).await?;
        self.accept(cached, kind, used)
    }

    /// The last checks on a credential the token hashes to, cached or just
    /// read, and noting its use if `used`.
    fn accept(&self, cached: Cached, kind: TokenKind, used: bool) -> Result<Cached, NotAccepted> {
        // Belt and braces: a store must only return the kind it was asked
        // for, but a key of one kind must never authenticate as another.
        if cached.principal.kind() != kind {
            self.metrics().unknown[kind_index(kind)].increment(1);
            return Err(NotAccepted::Unknown);
        }
        if cached.revoked {
            self.metrics().unknown[kind_index(kind)].increment(1);
            return Err(NotAccepted::Dead(cached.principal, Outcome::Revoked));
        }
        // Expiry is checked on every use, cached or not.
        let now = || self.clock.now();
        if cached.expires_at.is_some_and(|at| at <= now()) {
            self.metrics().expired[kind_index(kind)].increment(1);
            return Err(NotAccepted::Dead(cached.principal, Outcome::Expired));
        }
        if let (true, Some(last_used)) = (used, &cached.last_used)
            && last_used.swap(unix_nanos(now()), Ordering::Relaxed) == 0
        {
            self.used
                .lock()
                .expect("usage lock")
                .push((cached.principal.clone(), Arc::clone(last_used)));
        }
        self.metrics().ok[kind_index(kind)].increment(1);
        Ok(cached)
    }

    /// Asks the store, and caches what it says in the generation from
    /// before the question (an invalidation that overtakes the question
    /// keeps the answer from being served to anyone else). A revoked
    /// credential is cached as such: it stays revoked.
    async fn load(&self, token: &PlainToken, hash: HashedToken) -> Result<Cached, NotAccepted> {
        let (known_in, unknown_in) = (self.known.generation(&hash), self.unknown.generation(&hash));
        let found = self
            .store
            .find_credential(token.kind(), &hash)
            .await
            .map_err(|error| {
                tracing::warn!(%error, kind = token.kind().name(), "token store unavailable");
                NotAccepted::Unavailable
            })?;
        match found {
            Some(credential) => {
                let cached = Cached {
                    expires_at: credential.expires_at,
                    revoked: credential.revoked,
                    last_used: matches!(
                        credential.principal,
                        Principal::User(_) | Principal::Staff(_) | Principal::Guest(_)
                    )
                    .then(|| Arc::new(AtomicI64::new(0))),
                    principal: credential.principal,
                };
                self.known.insert(hash, cached.clone(), known_in);
                Ok(cached)
            }
            None => {
                self.unknown.insert(hash, (), unknown_in);
                self.metrics().unknown[kind_index(token.kind())].increment(1);
                Err(NotAccepted::Unknown)
            }
        }
    }

    /// The user tokens, staff sessions and guest tokens used since the
    /// last call (by id), with when they were last used, to write in one batch (no write per request). A [`Gate`]'s
    /// guard does this regularly and hands them to
    /// [`TokenStore::record_usage`]; call it yourself only for a verifier
    /// used without a gate, or the uses pile up.
    ///
    /// [`Gate`]: crate::Gate
    pub fn take_usage(&self) -> HashMap<String, OffsetDateTime> {
        let used = std::mem::take(&mut *self.used.lock().expect("usage lock"));
        let mut usage: HashMap<String, OffsetDateTime> = HashMap::new();
        for (principal, last_used) in used {
            let nanos = last_used.swap(0, Ordering::Relaxed);
            if nanos == 0 {
                continue;
            }
            let Ok(at) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)) else {
                continue;
            };
            let entry = usage
                .entry(principal.credential_id().to_owned())
                .or_insert(at);
            *entry = (*entry).max(at);
        }
        usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AbilitySet, StoreError, StoredCredential, UserPrincipal};

    /// One user token, counting how often it is looked up.
    struct OneToken {
        hash: HashedToken,
        lookups: std::sync::atomic::AtomicUsize,
    }

    impl TokenStore for OneToken {
        async fn find_credential(
            &self,
            _: TokenKind,
            hash: &HashedToken,
        ) -> Result<Option<StoredCredential>, StoreError> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            Ok((*hash == self.hash).then(|| StoredCredential {
                principal: Principal::User(Arc::new(UserPrincipal {
                    user_id: "u".into(),
                    token_id: "t".into(),
                    client_id: None,
                    client_origins: Vec::new(),
                    abilities: AbilitySet::default(),
                    expires_at: None,
                })),
                expires_at: None,
                revoked: false,
            }))
        }
    }

    fn verifier() -> (Verifier<OneToken>, PlainToken) {
        let token = PlainToken::generate(TokenKind::User);
        let store = OneToken {
            hash: token.hash(),
            lookups: Default::default(),
        };
        (Verifier::new(store, Identity::default()), token)
    }

    fn now_or_never<F: Future>(future: F) -> F::Output {
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match std::pin::pin!(future).poll(&mut context) {
            std::task::Poll::Ready(output) => output,
            std::task::Poll::Pending => panic!("the test store never waits"),
        }
    }

    #[test]
    fn hits_do_not_ask_the_store_and_unknowns_are_remembered() {
        let (verifier, token) = verifier();
        for _ in 0..3 {
            assert!(now_or_never(verifier.verify(&token)).is_ok());
        }
        let stranger = PlainToken::generate(TokenKind::User);
        for _ in 0..3 {
            assert_eq!(
                now_or_never(verifier.verify(&stranger)),
                Err(AuthError::InvalidToken)
            );
        }
        assert_eq!(verifier.store.lookups.load(Ordering::SeqCst), 2);
        verifier.invalidate_all();
        assert!(now_or_never(verifier.verify(&token)).is_ok());
        assert_eq!(verifier.store.lookups.load(Ordering::SeqCst), 3);
    }

    /// Credentials by hash; removing one is revoking it.
    #[derive(Default)]
    struct Credentials(Mutex<HashMap<HashedToken, StoredCredential>>);

    impl TokenStore for Credentials {
        async fn find_credential(
            &self,
            _: TokenKind,
            hash: &HashedToken,
        ) -> Result<Option<StoredCredential>, StoreError> {
            Ok(self.0.lock().unwrap().get(hash).cloned())
        }
    }

    impl Credentials {
        /// A new token of `kind`, stored with `expires_at`.
        fn issue(&self, kind: TokenKind, expires_at: Option<OffsetDateTime>) -> PlainToken {
            let token = PlainToken::generate(kind);
            self.add(&token, expires_at);
            token
        }

        fn add(&self, token: &PlainToken, expires_at: Option<OffsetDateTime>) {
            let client = Arc::new(crate::ClientPrincipal {
                client_id: "c".into(),
                key_id: "k".into(),
                abilities: AbilitySet::default(),
                allowed_origins: vec![],
                limits: Default::default(),
            });
            let principal = match token.kind() {
                TokenKind::Publishable => Principal::PublishableClient(client),
                TokenKind::Secret => Principal::SecretClient(client),
                _ => Principal::User(Arc::new(UserPrincipal {
                    user_id: "u".into(),
                    token_id: "t".into(),
                    client_id: None,
                    client_origins: Vec::new(),
                    abilities: AbilitySet::default(),
                    expires_at,
                })),
            };
            let credential = StoredCredential {
                principal,
                expires_at,
                revoked: false,
            };
            self.0.lock().unwrap().insert(token.hash(), credential);
        }

        fn revoke_all(&self) {
            self.0.lock().unwrap().clear();
        }
    }

    fn bearer(token: &PlainToken) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Bearer {}", token.expose_secret());
        headers.insert("authorization", value.parse().unwrap());
        headers
    }

    #[test]
    fn an_expired_credential_is_refused_from_the_store_and_the_cache() {
        let verifier = Verifier::new(Credentials::default(), Identity::default());
        let expired = OffsetDateTime::now_utc() - Duration::from_secs(1);
        for kind in [TokenKind::Publishable, TokenKind::User] {
            let token = verifier.store.issue(kind, Some(expired));
            for _ in 0..2 {
                assert_eq!(
                    now_or_never(verifier.verify(&token)),
                    Err(AuthError::InvalidToken)
                );
            }
        }
        let live = OffsetDateTime::now_utc() + Duration::from_secs(3600);
        let token = verifier.store.issue(TokenKind::User, Some(live));
        assert!(now_or_never(verifier.verify(&token)).is_ok());
    }

    #[test]
    fn a_cached_credential_expires_when_its_clock_passes_its_expiry() {
        let start = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let clock = Clock::manual(start);
        let verifier =
            Verifier::new(Credentials::default(), Identity::default()).with_clock(clock.clone());
        let expires = start + Duration::from_secs(60);
        let token = verifier.store.issue(TokenKind::User, Some(expires));
        assert!(now_or_never(verifier.verify(&token)).is_ok());
        clock.advance(Duration::from_secs(59));
        assert!(now_or_never(verifier.verify(&token)).is_ok());
        assert_eq!(
            verifier.take_usage().into_values().collect::<Vec<_>>(),
            [start + Duration::from_secs(59)],
            "the last use, by the same clock"
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            now_or_never(verifier.verify(&token)),
            Err(AuthError::InvalidToken)
        );
    }

    /// Reads its answer, then waits once before handing it over: a lookup
    /// that an invalidation can overtake.
    struct Slow(Credentials);

    impl TokenStore for Slow {
        async fn find_credential(
            &self,
            kind: TokenKind,
            hash: &HashedToken,
        ) -> Result<Option<StoredCredential>, StoreError> {
            let found = self.0.find_credential(kind, hash).await;
            let mut waited = false;
            std::future::poll_fn(|_| {
                if std::mem::replace(&mut waited, true) {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            })
            .await;
            found
        }
    }

    #[test]
    fn a_lookup_overtaken_by_an_invalidation_is_not_served_from_the_caches() {
        let verifier = Verifier::new(Slow(Credentials::default()), Identity::default());
        let key = verifier.store.0.issue(TokenKind::Publishable, None);
        let headers = bearer(&key);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        let mut lookup = std::pin::pin!(verifier.authenticate(&headers, None));
        assert!(
            lookup.as_mut().poll(&mut context).is_pending(),
            "read, not yet answered"
        );
        verifier.store.0.revoke_all();
        verifier.invalidate_all();
        // The request that was under way gets what it read; no later one does.
        assert!(matches!(
            lookup.poll(&mut context),
            std::task::Poll::Ready(Ok(_))
        ));
        assert!(verifier.known.get(&key.hash()).is_none());
        let mut again = std::pin::pin!(verifier.authenticate(&headers, None));
        assert!(again.as_mut().poll(&mut context).is_pending());
        assert_eq!(
            again.poll(&mut context),
            std::task::Poll::Ready(Err(AuthError::InvalidToken))
        );
    }

    /// A lookup that began before an invalidation may put its answer in the
    /// caches after it; the answer must not be served.
    #[test]
    fn an_answer_read_before_an_invalidation_is_never_served_after_it() {
        let verifier = Verifier::new(Credentials::default(), Identity::default());
        let key = verifier.store.issue(TokenKind::Publishable, None);
        let headers = bearer(&key);
        now_or_never(verifier.authenticate(&headers, None)).unwrap();
        let read_in = verifier.known.generation(&key.hash());
        let stale = verifier.known.get(&key.hash()).unwrap();
        verifier.store.revoke_all();
        verifier.invalidate_all();
        verifier.known.insert(key.hash(), stale, read_in);
        assert_eq!(
            now_or_never(verifier.authenticate(&headers, None)),
            Err(AuthError::InvalidToken)
        );

        // And a token created after it was found unknown.
        let token = PlainToken::generate(TokenKind::User);
        let headers = bearer(&token);
        let read_in = verifier.unknown.generation(&token.hash());
        assert_eq!(
            now_or_never(verifier.authenticate(&headers, None)),
            Err(AuthError::InvalidToken)
        );
        verifier.store.add(&token, None);
        verifier.invalidate_all();
        verifier.unknown.insert(token.hash(), (), read_in);
        assert!(now_or_never(verifier.authenticate(&headers, None)).is_ok());
    }

    #[test]
    fn each_use_is_reported_once_with_the_latest_time() {
        let (verifier, token) = verifier();
        assert!(verifier.take_usage().is_empty());
        now_or_never(verifier.verify(&token)).unwrap();
        let first = verifier.take_usage();
        assert_eq!(first.len(), 1);
        assert!(verifier.take_usage().is_empty(), "reported once");
        now_or_never(verifier.verify(&token)).unwrap();
        now_or_never(verifier.verify(&token)).unwrap();
        let second = verifier.take_usage();
        assert!(second["t"] >= first["t"]);
        // A use after an invalidation (a new cache entry) still counts.
        verifier.invalidate_all();
        now_or_never(verifier.verify(&token)).unwrap();
        assert_eq!(verifier.take_usage().len(), 1);
    }
}
