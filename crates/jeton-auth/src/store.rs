//! What the verifier needs from storage. An app implements [`TokenStore`] on
//! whatever it keeps credentials in, or uses a store of this crate:
//! [`MemoryStore`] (tests, examples, small apps that issue tokens at
//! start-up) or, with the `sqlite` or `postgres` cargo feature, `SqlStore` (SQLite or
//! PostgreSQL, shared by every process on the database). Only SHA-256
//! hashes ever cross it.

mod memory;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod sql;

use std::{collections::HashMap, future::Future, net::IpAddr, sync::Arc};

use time::OffsetDateTime;

use crate::{HashedToken, Principal, TokenFormat, TokenKind, usage::UsageRecord};

pub use memory::{IssuedToken, MemoryStore, NewClient, UnknownClient};

/// A credential found in storage.
#[derive(Debug, Clone)]
pub struct StoredCredential {
    pub principal: Principal,
    /// `None`: the credential does not expire on its own. The verifier
    /// checks this one, on every request, cached or not; a user principal's
    /// own `expires_at` is for the app to show.
    pub expires_at: Option<OffsetDateTime>,
    /// Revoked (or its client is): refused like an unknown token, with the
    /// same answer, but counted as the credential's `revoked` requests in
    /// its usage ([`crate::usage`]). A store may return `None` for a
    /// revoked credential instead; its requests are then `unattributed`.
    pub revoked: bool,
}

impl StoredCredential {
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|expires_at| expires_at <= now)
    }
}

/// Storage could not answer (unreachable, timed out). Becomes a 503: the
/// request is not refused as unauthenticated because of our outage.
///
/// Made with [`StoreError::new`] from the store's own error.
#[derive(Debug, thiserror::Error)]
#[error("the token store is unavailable: {0}")]
#[non_exhaustive]
pub struct StoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl StoreError {
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
        StoreError(error.into())
    }
}

/// A credential refused for where it was used from: the events an operator
/// must hear about (a secret key in a browser means it has leaked; a
/// session cookie refused for its origin or CSRF token means a page of
/// another origin, or a forged request, tried to use it).
#[derive(Debug, Clone)]
pub struct Refusal {
    pub principal: Principal,
    /// The problem code: `origin_not_allowed`, `secret_key_in_browser` or
    /// (a session cookie) `csrf_failed`.
    pub code: &'static str,
    pub origin: Option<String>,
    pub client_ip: Option<IpAddr>,
}

pub trait TokenStore: Send + Sync + 'static {
    /// The credential whose token hashes to `hash`, of the given kind, or
    /// `None` for an unknown token. A revoked one is either returned with
    /// [`StoredCredential::revoked`] set (so that its uses are counted as
    /// its own) or `None`; the verifier answers both exactly as an unknown
    /// token, so that callers cannot tell them apart.
    fn find_credential(
        &self,
        kind: TokenKind,
        hash: &HashedToken,
    ) -> impl Future<Output = Result<Option<StoredCredential>, StoreError>> + Send;

    /// The format of the tokens this store issues: a gate over it refuses to
    /// build with an identity of another format, which would answer every
    /// one of its tokens 401. `None` (the default): the store does not say,
    /// and the gate cannot check.
    fn token_format(&self) -> Option<TokenFormat> {
        None
    }

    /// Records a refusal (an audit event, a flag on the key). The guard calls
    /// it at most once a minute per key and code, so a flood of refused
    /// requests cannot become a flood of writes. The default does nothing.
    fn record_refusal(&self, refusal: Refusal) -> impl Future<Output = ()> + Send {
        let _ = refusal;
        async {}
    }

    /// A number that moves whenever credentials change (a revocation, a
    /// rotation, a new expiry): the verifier serves what it cached only
    /// while the number is the one it was read under. Read on every request,
    /// so it must be cheap (an atomic load). The default never moves: a
    /// store whose credentials change calls [`Verifier::invalidate_all`]
    /// instead, or moves this number.
    ///
    /// [`Verifier::invalidate_all`]: crate::Verifier::invalidate_all
    fn generation(&self) -> u64 {
        0
    }

    /// When user tokens were last used (token id → time), in one batch: the
    /// verifier notes uses in memory and hands them here every
    /// `usage_interval`, so a request never writes. The default forgets
    /// them.
    fn record_usage(
        &self,
        usage: HashMap<String, OffsetDateTime>,
    ) -> impl Future<Output = ()> + Send {
        let _ = usage;
        async {}
    }

    /// What the gate counted since the last call, per credential, outcome
    /// and minute ([`crate::usage`]), in one batch every `usage_interval`
    /// and once more at [`Gate::flush_usage`](crate::Gate::flush_usage):
    /// increments, to be added to what is stored. The default forgets
    /// them.
    fn record_counts(&self, records: Vec<UsageRecord>) -> impl Future<Output = ()> + Send {
        let _ = records;
        async {}
    }
}

/// A shared store is a store: an app keeps one handle to issue and revoke
/// tokens and gives the verifier another.
impl<S: TokenStore> TokenStore for Arc<S> {
    fn find_credential(
        &self,
        kind: TokenKind,
        hash: &HashedToken,
    ) -> impl Future<Output = Result<Option<StoredCredential>, StoreError>> + Send {
        S::find_credential(self, kind, hash)
    }

    fn token_format(&self) -> Option<TokenFormat> {
        S::token_format(self)
    }

    fn record_refusal(&self, refusal: Refusal) -> impl Future<Output = ()> + Send {
        S::record_refusal(self, refusal)
    }

    fn generation(&self) -> u64 {
        S::generation(self)
    }

    fn record_usage(
        &self,
        usage: HashMap<String, OffsetDateTime>,
    ) -> impl Future<Output = ()> + Send {
        S::record_usage(self, usage)
    }

    fn record_counts(&self, records: Vec<UsageRecord>) -> impl Future<Output = ()> + Send {
        S::record_counts(self, records)
    }
}
