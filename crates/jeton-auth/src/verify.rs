//! Where a token is verified: header → format check (no I/O) → cache →
//! store lookup by hash → expiry → principal.
//!
//! Verified credentials are cached by token hash, and unknown ones briefly
//! as negatives (bounded, so a flood of random well-formed tokens cannot
//! grow memory). Expiry is checked on every hit. The app calls
//! [`Verifier::invalidate_all`] whenever credentials change (a revocation
//! here, or one seen in the database's change feed); a generation counter
//! stops a lookup that raced with an invalidation from caching what it read.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::http::request::Parts;
use moka::sync::Cache;
use time::OffsetDateTime;

use crate::{AuthError, HashedToken, PlainToken, Principal, StoredCredential, TokenStore, header};

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

pub struct Verifier<S> {
    store: S,
    known: Cache<HashedToken, Arc<StoredCredential>>,
    unknown: Cache<HashedToken, ()>,
    generation: AtomicU64,
    /// User token id → when it was last used, until the app flushes it.
    usage: Mutex<HashMap<String, OffsetDateTime>>,
}

fn count(result: &'static str, kind: &'static str) {
    metrics::counter!("jeton_auth_verifications_total", "result" => result, "kind" => kind)
        .increment(1);
}

impl<S: TokenStore> Verifier<S> {
    pub fn new(store: S) -> Verifier<S> {
        Verifier::with_cache(store, CacheSettings::default())
    }

    pub fn with_cache(store: S, settings: CacheSettings) -> Verifier<S> {
        Verifier {
            store,
            known: Cache::builder()
                .max_capacity(settings.positive_capacity)
                .time_to_live(settings.positive_ttl)
                .build(),
            unknown: Cache::builder()
                .max_capacity(settings.negative_capacity)
                .time_to_live(settings.negative_ttl)
                .build(),
            generation: AtomicU64::new(0),
            usage: Mutex::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Forgets every cached credential, positive and negative. Cheap; call it
    /// on any change to credentials.
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.known.invalidate_all();
        self.unknown.invalidate_all();
    }

    /// Authenticates a request from its `Authorization` header.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Principal, AuthError> {
        let token =
            header::bearer_token(&parts.headers, parts.uri.query()).inspect_err(|error| {
                if *error == AuthError::InvalidToken {
                    count("malformed", "unknown");
                }
            })?;
        self.verify(&token).await
    }

    /// Verifies a token that has already passed the format check.
    pub async fn verify(&self, token: &PlainToken) -> Result<Principal, AuthError> {
        let kind = token.kind().name();
        let hash = token.hash();
        let credential = if let Some(credential) = self.known.get(&hash) {
            metrics::counter!("jeton_auth_cache_total", "result" => "hit").increment(1);
            credential
        } else if self.unknown.contains_key(&hash) {
            metrics::counter!("jeton_auth_cache_total", "result" => "negative").increment(1);
            count("unknown", kind);
            return Err(AuthError::InvalidToken);
        } else {
            metrics::counter!("jeton_auth_cache_total", "result" => "miss").increment(1);
            let generation = self.generation.load(Ordering::SeqCst);
            let found = self
                .store
                .find_credential(token.kind(), &hash)
                .await
                .map_err(|error| {
                    tracing::warn!(%error, kind, "token store unavailable");
                    AuthError::Unavailable
                })?;
            // Cache only what no invalidation has overtaken.
            let fresh = self.generation.load(Ordering::SeqCst) == generation;
            match found {
                Some(credential) => {
                    let credential = Arc::new(credential);
                    if fresh {
                        self.known.insert(hash, Arc::clone(&credential));
                    }
                    credential
                }
                None => {
                    if fresh {
                        self.unknown.insert(hash, ());
                    }
                    count("unknown", kind);
                    return Err(AuthError::InvalidToken);
                }
            }
        };
        // Belt and braces: a store must only return the kind it was asked
        // for, but a key of one kind must never authenticate as another.
        // Expiry is checked on every use, cached or not.
        let now = OffsetDateTime::now_utc();
        if credential.principal.kind() != token.kind() || credential.is_expired_at(now) {
            count("expired", kind);
            return Err(AuthError::InvalidToken);
        }
        if let Principal::User(user) = &credential.principal {
            self.usage
                .lock()
                .expect("usage lock")
                .insert(user.token_id.clone(), now);
        }
        count("ok", kind);
        Ok(credential.principal.clone())
    }

    /// The user tokens used since the last call, with when they were last
    /// used, for the app to write in one batch (no write per request).
    pub fn take_usage(&self) -> HashMap<String, OffsetDateTime> {
        std::mem::take(&mut *self.usage.lock().expect("usage lock"))
    }
}
