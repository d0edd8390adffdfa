//! Where a token is verified: header → format check (no I/O) → cache →
//! store lookup by hash → expiry → principal.
//!
//! Verified credentials are cached by token hash, and unknown ones briefly
//! as negatives (bounded, so a flood of random well-formed tokens cannot
//! grow memory). Expiry is checked on every hit. The app calls
//! [`Verifier::invalidate_all`] whenever credentials change (a revocation
//! here, or one seen in the database's change feed). Every cache entry
//! carries the verifier's generation from before the store was asked, and
//! is served only while that is still the generation: an invalidation moves
//! it on, so no answer read before it is served after it, however late a
//! slow lookup puts it in the cache.
//!
//! A cache hit is the hot path of every authenticated request, so it takes
//! no exclusive lock and allocates nothing: the SHA-256 of the token, one
//! lookup in a sharded [`quick_cache`] table (a shard's read lock), two
//! comparisons with the time (one read of the coarse clock per request, see
//! `clock.rs`), one count, and for a user token a read of the precise clock
//! and an atomic store to note the use (see [`Verifier::take_usage`]).
//! A storefront's publishable key, on every guest's request, is found
//! before all that by its text, in slots of the thread's own
//! (`verify/hot_keys.rs`; on [`Verifier::authenticate_cached`], the guard's
//! path).

mod hot_keys;

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
use quick_cache::sync::Cache;
use time::OffsetDateTime;

use crate::{
    AuthError, HashedToken, PlainToken, Principal, TokenKind, TokenStore, UserPrincipal,
    clock::{has_passed, nanos, now_nanos, precise_now_nanos},
    header,
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
/// hit: a reference count for a client key, two for a user token. The
/// principal goes to the request as it is. Times are Unix nanoseconds:
/// reading the clock that way costs half of building an `OffsetDateTime`.
#[derive(Clone)]
struct Cached {
    principal: Principal,
    /// When the credential expires (`i64::MAX`: never).
    expires_at: i64,
    /// When the store must be asked again (the safety-net TTL).
    reload_at: i64,
    /// The verifier's generation before the store was asked: the entry is
    /// served only while it is still the generation.
    generation: u64,
    /// User tokens (`None` for client keys): when last used, in Unix
    /// nanoseconds; 0 once that use has been handed to
    /// [`Verifier::take_usage`]. An atomic, so noting a use is one store and
    /// the first use since the last flush one push.
    last_used: Option<Arc<AtomicI64>>,
}

const KINDS: usize = TokenKind::ALL.len();

fn kind_index(kind: TokenKind) -> usize {
    TokenKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or_default()
}

/// Where a verification's answer came from.
#[derive(Clone, Copy)]
enum Source {
    Cache,
    Store,
}

/// What the verifier counts, as plain atomics that [`Verifier::publish_metrics`]
/// hands to the metrics recorder. A recorder's counter costs two atomic
/// operations an increment (its value and a generation), and a cache hit
/// would pay that for two series (cache hit, outcome ok); here it is one
/// increment of one atomic, and the series are sums of these.
#[derive(Default)]
struct Counts {
    /// By token kind: tokens that authenticated, from the cache or the store.
    ok: [[AtomicU64; KINDS]; 2],
    /// By token kind: expired tokens (or of another kind than their
    /// prefix), from the cache or the store.
    expired: [[AtomicU64; KINDS]; 2],
    /// By token kind: unknown tokens, from the negative cache or the store.
    unknown: [[AtomicU64; KINDS]; 2],
    /// Store lookups, answered or not.
    miss: AtomicU64,
    malformed: AtomicU64,
}

impl Counts {
    fn count(counts: &[[AtomicU64; KINDS]; 2], source: Source, kind: TokenKind) {
        counts[source as usize][kind_index(kind)].fetch_add(1, Ordering::Relaxed);
    }
}

/// The recorder's handles, registered once: looking a labelled counter up
/// in the recorder costs more than the rest of a cache hit.
struct Handles {
    hit: Counter,
    miss: Counter,
    negative: Counter,
    malformed: Counter,
    /// By outcome (ok, unknown, expired), then by kind.
    outcomes: [[Counter; KINDS]; 3],
}

impl Handles {
    fn register() -> Handles {
        let cache =
            |result: &'static str| metrics::counter!("jeton_auth_cache_total", "result" => result);
        let outcome = |result: &'static str| {
            TokenKind::ALL.map(|kind| {
                metrics::counter!("jeton_auth_verifications_total", "result" => result, "kind" => kind.name())
            })
        };
        Handles {
            hit: cache("hit"),
            miss: cache("miss"),
            negative: cache("negative"),
            malformed: metrics::counter!("jeton_auth_verifications_total", "result" => "malformed", "kind" => "unknown"),
            outcomes: [outcome("ok"), outcome("unknown"), outcome("expired")],
        }
    }
}

pub struct Verifier<S> {
    /// Tells this verifier's entries in `hot_keys` from another's in the
    /// same process.
    id: u64,
    store: S,
    settings: CacheSettings,
    known: Cache<HashedToken, Cached>,
    /// Unknown token hashes, with when to forget them (Unix nanoseconds)
    /// and the generation they were found unknown in, as for `known`.
    unknown: Cache<HashedToken, (i64, u64)>,
    generation: AtomicU64,
    /// Cached user tokens used since the last [`Verifier::take_usage`].
    used: Mutex<Vec<(Arc<UserPrincipal>, Arc<AtomicI64>)>>,
    counts: Counts,
    /// Registered on first publication, so that an app installs its metrics
    /// recorder any time before.
    handles: OnceLock<Handles>,
}

/// Verifiers made so far in this process, for their ids: one count for
/// every store type.
static VERIFIERS: AtomicU64 = AtomicU64::new(0);

fn capacity(items: u64) -> usize {
    usize::try_from(items).unwrap_or(usize::MAX).max(1)
}

fn unix_nanos(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

impl<S: TokenStore> Verifier<S> {
    pub fn new(store: S) -> Verifier<S> {
        Verifier::with_cache(store, CacheSettings::default())
    }

    pub fn with_cache(store: S, settings: CacheSettings) -> Verifier<S> {
        Verifier {
            id: VERIFIERS.fetch_add(1, Ordering::Relaxed),
            store,
            settings,
            known: Cache::new(capacity(settings.positive_capacity)),
            unknown: Cache::new(capacity(settings.negative_capacity)),
            generation: AtomicU64::new(0),
            used: Mutex::new(Vec::new()),
            counts: Counts::default(),
            handles: OnceLock::new(),
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Adds what has been counted since the last call to the metrics
    /// recorder's series (`jeton_auth_cache_total`,
    /// `jeton_auth_verifications_total`). Call it before rendering them.
    pub fn publish_metrics(&self) {
        let take = |atomic: &AtomicU64| atomic.swap(0, Ordering::Relaxed);
        let by_source =
            |counts: &[[AtomicU64; KINDS]; 2]| counts.each_ref().map(|c| c.each_ref().map(take));
        let counts = &self.counts;
        let (ok, expired, unknown) = (
            by_source(&counts.ok),
            by_source(&counts.expired),
            by_source(&counts.unknown),
        );
        let handles = self.handles.get_or_init(Handles::register);
        let cache = Source::Cache as usize;
        handles
            .hit
            .increment(ok[cache].iter().chain(&expired[cache]).sum());
        handles.negative.increment(unknown[cache].iter().sum());
        handles.miss.increment(take(&counts.miss));
        handles.malformed.increment(take(&counts.malformed));
        for (series, [cache, store]) in handles.outcomes.iter().zip([ok, unknown, expired]) {
            for ((counter, cache), store) in series.iter().zip(cache).zip(store) {
                counter.increment(cache + store);
            }
        }
    }

    /// Forgets every cached credential, positive and negative. Cheap; call it
    /// on any change to credentials, after the change is committed.
    pub fn invalidate_all(&self) {
        // From here on no entry made before is served (nor any entry of
        // `hot_keys`), even one a slow lookup adds after the emptying; the
        // emptying frees the memory.
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.known.clear();
        self.unknown.clear();
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Authenticates a request from its `Authorization` header.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Principal, AuthError> {
        let token = header::bearer_token(headers, query)
            .inspect_err(|error| self.count_malformed(error))?;
        self.verify(&token).await
    }

    /// [`Verifier::authenticate`] without waiting: `None` if the answer
    /// needs the store (a token neither cached nor known to be unknown).
    pub fn authenticate_cached(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Option<Result<Principal, AuthError>> {
        self.authenticate_cached_at(headers, query, now_nanos())
    }

    /// [`Verifier::authenticate_cached`] at `now` (Unix nanoseconds), for a
    /// caller that has read the clock already: a read costs as much as the
    /// cache lookup.
    pub(crate) fn authenticate_cached_at(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        now: i64,
    ) -> Option<Result<Principal, AuthError>> {
        let value = match header::authorization(headers, query) {
            Ok(value) => value,
            Err(error) => return Some(Err(error)),
        };
        let generation = self.generation();
        if let Some(cached) = header::common_form_text(value.as_bytes())
            .and_then(|text| hot_keys::find(self.id, generation, text, now))
        {
            return Some(self.accept(cached, TokenKind::Publishable, now, Source::Cache));
        }
        match header::token_in(value).inspect_err(|error| self.count_malformed(error)) {
            Ok(token) => self.verify_cached_at(&token, now, generation),
            Err(error) => Some(Err(error)),
        }
    }

    fn count_malformed(&self, error: &AuthError) {
        if *error == AuthError::InvalidToken {
            self.counts.malformed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Verifies a token that has already passed the format check.
    pub async fn verify(&self, token: &PlainToken) -> Result<Principal, AuthError> {
        let now = now_nanos();
        if let Some(answer) = self.verify_cached_at(token, now, self.generation()) {
            return answer;
        }
        self.counts.miss.fetch_add(1, Ordering::Relaxed);
        // Boxed: a store's lookup future can be kilobytes, and every
        // request's future would otherwise be that large (and be copied
        // around) to serve the rare miss.
        let cached = Box::pin(self.load(token, token.hash(), now)).await?;
        self.accept(cached, token.kind(), now, Source::Store)
    }

    /// The answer from the caches alone, or `None` if the store must be
    /// asked.
    pub fn verify_cached(&self, token: &PlainToken) -> Option<Result<Principal, AuthError>> {
        self.verify_cached_at(token, now_nanos(), self.generation())
    }

    /// The caches' answer at `now` in `generation`, the verifier's current
    /// one.
    fn verify_cached_at(
        &self,
        token: &PlainToken,
        now: i64,
        generation: u64,
    ) -> Option<Result<Principal, AuthError>> {
        let hash = token.hash();
        if let Some(cached) = self
            .known
            .get(&hash)
            .filter(|c| c.generation == generation && c.reload_at > now)
        {
            hot_keys::remember(self.id, token, &cached, now);
            return Some(self.accept(cached, token.kind(), now, Source::Cache));
        }
        if self
            .unknown
            .get(&hash)
            .is_some_and(|(until, of)| of == generation && until > now)
        {
            Counts::count(&self.counts.unknown, Source::Cache, token.kind());
            return Some(Err(AuthError::InvalidToken));
        }
        None
    }

    /// The last checks on a credential the token hashes to, cached or just
    /// read, and noting its use.
    fn accept(
        &self,
        cached: Cached,
        kind: TokenKind,
        now: i64,
        source: Source,
    ) -> Result<Principal, AuthError> {
        // Belt and braces: a store must only return the kind it was asked
        // for, but a key of one kind must never authenticate as another.
        // Expiry is checked on every use, cached or not.
        if cached.principal.kind() != kind || has_passed(cached.expires_at, now) {
            Counts::count(&self.counts.expired, source, kind);
            return Err(AuthError::InvalidToken);
        }
        // The time of use is shown to the customer, so it comes from the
        // precise clock: the coarse one may be a tick behind the request.
        if let (Principal::User(user), Some(last_used)) = (&cached.principal, &cached.last_used)
            && last_used.swap(precise_now_nanos(), Ordering::Relaxed) == 0
        {
            self.used
                .lock()
                .expect("usage lock")
                .push((Arc::clone(user), Arc::clone(last_used)));
        }
        Counts::count(&self.counts.ok, source, kind);
        Ok(cached.principal)
    }

    /// Asks the store, and caches what it says unless an invalidation
    /// overtook the question (if one overtakes it after all, the entry's
    /// generation keeps it from being served).
    async fn load(
        &self,
        token: &PlainToken,
        hash: HashedToken,
        now: i64,
    ) -> Result<Cached, AuthError> {
        let generation = self.generation();
        let found = self
            .store
            .find_credential(token.kind(), &hash)
            .await
            .map_err(|error| {
                tracing::warn!(%error, kind = token.kind().name(), "token store unavailable");
                AuthError::Unavailable
            })?;
        let fresh = self.generation() == generation;
        match found {
            Some(credential) => {
                let ttl = nanos(self.settings.positive_ttl);
                let cached = Cached {
                    expires_at: credential.expires_at.map_or(i64::MAX, unix_nanos),
                    last_used: matches!(credential.principal, Principal::User(_))
                        .then(|| Arc::new(AtomicI64::new(0))),
                    principal: credential.principal,
                    reload_at: now.saturating_add(ttl),
                    generation,
                };
                if fresh && self.settings.positive_capacity > 0 {
                    self.known.insert(hash, cached.clone());
                }
                Ok(cached)
            }
            None => {
                if fresh && self.settings.negative_capacity > 0 {
                    let until = now.saturating_add(nanos(self.settings.negative_ttl));
                    self.unknown.insert(hash, (until, generation));
                }
                Counts::count(&self.counts.unknown, Source::Store, token.kind());
                Err(AuthError::InvalidToken)
            }
        }
    }

    /// The user tokens used since the last call, with when they were last
    /// used, for the app to write in one batch (no write per request).
    pub fn take_usage(&self) -> HashMap<String, OffsetDateTime> {
        let used = std::mem::take(&mut *self.used.lock().expect("usage lock"));
        let mut usage: HashMap<String, OffsetDateTime> = HashMap::new();
        for (user, last_used) in used {
            let nanos = last_used.swap(0, Ordering::Relaxed);
            let Ok(at) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)) else {
                continue;
            };
            if nanos == 0 {
                continue;
            }
            let entry = usage.entry(user.token_id.clone()).or_insert(at);
            *entry = (*entry).max(at);
        }
        usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AbilitySet, StoreError, StoredCredential};

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
                    abilities: AbilitySet::default(),
                    expires_at: None,
                })),
                expires_at: None,
            }))
        }
    }

    fn verifier() -> (Verifier<OneToken>, PlainToken) {
        let token = PlainToken::generate(TokenKind::User);
        let store = OneToken {
            hash: token.hash(),
            lookups: Default::default(),
        };
        (Verifier::new(store), token)
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
                    abilities: AbilitySet::default(),
                    expires_at,
                })),
            };
            let credential = StoredCredential {
                principal,
                expires_at,
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

    /// Whether `token` is among this thread's keys found by text, for
    /// `verifier` as it is now.
    fn kept_by_text<S: TokenStore>(verifier: &Verifier<S>, token: &PlainToken) -> bool {
        hot_keys::find(
            verifier.id,
            verifier.generation(),
            token.text(),
            now_nanos(),
        )
        .is_some()
    }

    /// A publishable key, looked up in the store, then found in the shared
    /// cache, and so kept by its text.
    fn kept_key(verifier: &Verifier<Credentials>) -> (PlainToken, HeaderMap) {
        let key = verifier.store.issue(TokenKind::Publishable, None);
        let headers = bearer(&key);
        now_or_never(verifier.authenticate(&headers, None)).unwrap();
        assert!(
            !kept_by_text(verifier, &key),
            "not kept from a store lookup"
        );
        let found = verifier.authenticate_cached(&headers, None).unwrap();
        assert_eq!(found.unwrap().kind(), TokenKind::Publishable);
        assert!(kept_by_text(verifier, &key));
        (key, headers)
    }

    #[test]
    fn a_publishable_key_is_found_by_its_text_until_an_invalidation() {
        let verifier = Verifier::new(Credentials::default());
        let (key, headers) = kept_key(&verifier);
        let found = verifier.authenticate_cached(&headers, None).unwrap();
        assert_eq!(found.unwrap().kind(), TokenKind::Publishable);

        // Revoked: the store forgets it and the app invalidates.
        verifier.store.revoke_all();
        verifier.invalidate_all();
        assert!(!kept_by_text(&verifier, &key));
        assert!(verifier.authenticate_cached(&headers, None).is_none());
        assert_eq!(
            now_or_never(verifier.authenticate(&headers, None)),
            Err(AuthError::InvalidToken)
        );
    }

    #[test]
    fn only_publishable_keys_are_kept_by_text_and_only_for_their_verifier() {
        let verifier = Verifier::new(Credentials::default());
        let other = Verifier::new(Credentials::default());
        for kind in [TokenKind::Secret, TokenKind::User, TokenKind::Publishable] {
            let token = verifier.store.issue(kind, None);
            let headers = bearer(&token);
            now_or_never(verifier.authenticate(&headers, None)).unwrap();
            let found = verifier.authenticate_cached(&headers, None).unwrap();
            assert_eq!(found.unwrap().kind(), kind);
            assert_eq!(
                kept_by_text(&verifier, &token),
                kind == TokenKind::Publishable,
                "{kind:?}"
            );
            assert!(!kept_by_text(&other, &token));
        }
    }

    #[test]
    fn a_key_found_by_its_text_is_still_refused_in_a_query_or_twice() {
        let verifier = Verifier::new(Credentials::default());
        let (_, headers) = kept_key(&verifier);
        let refused = verifier.authenticate_cached(&headers, Some("access_token=x"));
        assert!(matches!(refused, Some(Err(AuthError::InvalidRequest(_)))));
        let mut twice = headers.clone();
        twice.append("authorization", headers["authorization"].clone());
        let refused = verifier.authenticate_cached(&twice, None);
        assert!(matches!(refused, Some(Err(AuthError::InvalidRequest(_)))));
    }

    #[test]
    fn a_key_found_by_its_text_still_expires_and_is_reloaded() {
        let verifier = Verifier::new(Credentials::default());
        let expires_at = OffsetDateTime::now_utc() + Duration::from_millis(500);
        let key = verifier
            .store
            .issue(TokenKind::Publishable, Some(expires_at));
        let headers = bearer(&key);
        for _ in 0..2 {
            // From the store, then from the shared cache.
            now_or_never(verifier.authenticate(&headers, None)).unwrap();
        }
        assert!(kept_by_text(&verifier, &key));
        // Past its reload time the store is asked again, key kept or not.
        let reload = now_nanos() + nanos(CacheSettings::default().positive_ttl) + 1;
        assert!(
            verifier
                .authenticate_cached_at(&headers, None, reload)
                .is_none()
        );
        std::thread::sleep(Duration::from_millis(600));
        assert!(kept_by_text(&verifier, &key), "found by its text, first");
        assert_eq!(
            verifier.authenticate_cached(&headers, None),
            Some(Err(AuthError::InvalidToken))
        );
    }

    #[test]
    fn an_expired_key_is_not_kept_by_its_text() {
        let verifier = Verifier::new(Credentials::default());
        let expired = OffsetDateTime::now_utc() - Duration::from_secs(1);
        let key = verifier.store.issue(TokenKind::Publishable, Some(expired));
        let headers = bearer(&key);
        for _ in 0..3 {
            assert_eq!(
                now_or_never(verifier.authenticate(&headers, None)),
                Err(AuthError::InvalidToken)
            );
        }
        assert!(!kept_by_text(&verifier, &key));
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
        let verifier = Verifier::new(Slow(Credentials::default()));
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
        assert!(verifier.authenticate_cached(&headers, None).is_none());
        let mut again = std::pin::pin!(verifier.authenticate(&headers, None));
        assert!(again.as_mut().poll(&mut context).is_pending());
        assert_eq!(
            again.poll(&mut context),
            std::task::Poll::Ready(Err(AuthError::InvalidToken))
        );
    }

    /// A lookup that began before an invalidation may put its answer in the
    /// caches after it (between its check of the generation and its
    /// insert); the answer must not be served.
    #[test]
    fn an_answer_read_before_an_invalidation_is_never_served_after_it() {
        let verifier = Verifier::new(Credentials::default());
        let (key, headers) = kept_key(&verifier);
        let stale = verifier.known.get(&key.hash()).unwrap();
        verifier.store.revoke_all();
        verifier.invalidate_all();
        verifier.known.insert(key.hash(), stale.clone());
        hot_keys::remember(verifier.id, &key, &stale, now_nanos());
        assert!(!kept_by_text(&verifier, &key));
        assert!(verifier.authenticate_cached(&headers, None).is_none());
        assert_eq!(
            now_or_never(verifier.authenticate(&headers, None)),
            Err(AuthError::InvalidToken)
        );

        // And a token created after it was found unknown.
        let token = PlainToken::generate(TokenKind::User);
        let headers = bearer(&token);
        assert_eq!(
            now_or_never(verifier.authenticate(&headers, None)),
            Err(AuthError::InvalidToken)
        );
        let stale = verifier.unknown.get(&token.hash()).unwrap();
        verifier.store.add(&token, None);
        verifier.invalidate_all();
        verifier.unknown.insert(token.hash(), stale);
        assert!(now_or_never(verifier.authenticate(&headers, None)).is_ok());
    }

    #[test]
    fn a_slot_in_use_keeps_its_key() {
        let verifier = Verifier::new(Credentials::default());
        let (first, _) = kept_key(&verifier);
        // Another key for the same slot.
        let second = loop {
            let key = PlainToken::generate(TokenKind::Publishable);
            if hot_keys::slot(key.text().try_into().unwrap())
                == hot_keys::slot(first.text().try_into().unwrap())
            {
                break key;
            }
        };
        verifier.store.add(&second, None);
        let headers = bearer(&second);
        for _ in 0..3 {
            now_or_never(verifier.authenticate(&headers, None)).unwrap();
        }
        assert!(kept_by_text(&verifier, &first));
        assert!(!kept_by_text(&verifier, &second));
        // Until the next invalidation.
        verifier.invalidate_all();
        for _ in 0..2 {
            now_or_never(verifier.authenticate(&headers, None)).unwrap();
        }
        assert!(kept_by_text(&verifier, &second));
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
