//! The gate: one per process, shared by every route's guard.
//!
//! The [`Gate`] is built once ([`Gate::builder`], in `builder`); each route
//! gets its guard from it ([`Gate::guard`], a tower layer). The guard has
//! the gate admit each request (`admission`): authenticate, check the
//! origin, the rate limits and the route's [`Access`](crate::Access), and
//! put the [`Principal`](crate::Principal) in the request extensions, where
//! the typed extractors find it. The gate's upkeep (`upkeep`) hands the
//! last uses of user tokens to the store.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use ipnet::IpNet;
use metrics::Counter;

use crate::{
    AuthError, Ceilings, Identity, TokenStore, Verifier,
    client_ip::ClientIpLayer,
    limits::{
        FailedAuthLimit, LimitBackend, Limits, Rate, RateLimitStatus, failed_auth::FailedAuth,
        rate::RateLimiter,
    },
    session::CookieSessions,
    usage::UsageCounter,
};

mod admission;
mod builder;
mod upkeep;

pub use builder::{GateBuilder, GateError};

/// Everything the guards of an app share: one per process.
pub struct Gate<S> {
    verifier: Verifier<S>,
    ceilings: Ceilings,
    limiter: RateLimiter,
    /// Where every limit is counted (this process, or the fleet).
    limits: Arc<LimitBackend>,
    /// Each user's requests, across all their tokens.
    user_rate: Option<Rate>,
    /// Each guest token's requests.
    guest_rate: Option<Rate>,
    /// When each (key, code) refusal was last recorded.
    recorded_refusals: Mutex<HashMap<(String, &'static str), Instant>>,
    failed_auth: FailedAuth,
    /// Registered on first use, after the app has installed its recorder.
    client_limited: OnceLock<Counter>,
    user_limited: OnceLock<Counter>,
    guest_limited: OnceLock<Counter>,
    /// The verifier's: how refusals are rendered and metrics named.
    identity: Identity,
    trusted_proxies: Arc<[IpNet]>,
    usage_interval: Duration,
    /// Set once the upkeep task runs.
    upkeep: OnceLock<()>,
    /// Held from taking the uses to handing them to the store.
    flushing: tokio::sync::Mutex<()>,
    /// Each credential's requests by outcome, until the next flush; `None`
    /// when counting is off ([`GateBuilder::count_usage`]).
    usage: Option<UsageCounter>,
    /// Cookie sessions, one per kind the app has turned them on for
    /// ([`GateBuilder::cookie_sessions`](crate::GateBuilder::cookie_sessions)).
    sessions: Vec<CookieSessions>,
}

impl<S: TokenStore> Gate<S> {
    /// The gate [`GateBuilder::build`](crate::GateBuilder::build) makes.
    pub(crate) fn assemble(
        verifier: Verifier<S>,
        ceilings: Ceilings,
        limit: FailedAuthLimit,
        trusted_proxies: Arc<[IpNet]>,
        usage_interval: Duration,
        count_usage: bool,
        limits: Arc<LimitBackend>,
    ) -> Gate<S> {
        let identity = verifier.identity().clone();
        Gate {
            failed_auth: FailedAuth::new(
                limit,
                Arc::clone(&limits),
                identity.metric_name("rate_limited_total"),
                verifier.clock().clone(),
            ),
            verifier,
            ceilings,
            limiter: RateLimiter::with_backend(Arc::clone(&limits)),
            limits,
            user_rate: None,
            guest_rate: None,
            recorded_refusals: Mutex::new(HashMap::new()),
            client_limited: OnceLock::new(),
            user_limited: OnceLock::new(),
            guest_limited: OnceLock::new(),
            identity,
            trusted_proxies,
            usage_interval,
            upkeep: OnceLock::new(),
            flushing: tokio::sync::Mutex::new(()),
            usage: count_usage.then(UsageCounter::default),
            sessions: Vec::new(),
        }
    }

    /// The app's identity: its token prefix, realm and problem types.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Where tokens are verified: for an app's own authentication endpoints
    /// (an OAuth 2.0 token or introspection endpoint) and for emptying the
    /// cache when the app learns of a change.
    pub fn verifier(&self) -> &Verifier<S> {
        &self.verifier
    }

    /// The most each kind of token may hold.
    pub fn ceilings(&self) -> &Ceilings {
        &self.ceilings
    }

    /// Counts one request of a client against its own limits, as the guard
    /// does: for an app's own endpoints that a client calls without the
    /// guard (an OAuth 2.0 token endpoint), so that one quota covers both.
    /// `Ok(None)`: no limit applies.
    pub async fn check_client_limits(
        &self,
        client_id: &str,
        limits: Limits,
        ip: Option<IpAddr>,
    ) -> Result<Option<RateLimitStatus>, AuthError> {
        self.limiter.check(client_id, limits, ip).await
    }

    /// Where the gate counts its limits, for the app's own limits to be
    /// counted in the same place.
    pub fn limits(&self) -> &Arc<LimitBackend> {
        &self.limits
    }

    /// Finds each request's [`ClientIp`](crate::client_ip::ClientIp) as the
    /// guard does, with the gate's trusted proxies: for the app's routes
    /// without a guard that read the client's address (an OAuth 2.0 token
    /// endpoint, a login throttle). The guard needs no such layer.
    pub fn client_ip_layer(&self) -> ClientIpLayer {
        ClientIpLayer::new(&self.identity, Arc::clone(&self.trusted_proxies))
    }

    /// The app's cookie sessions of user tokens, if turned on: its login
    /// route sets them with [`CookieSessions::issue`], its logout clears
    /// them.
    pub fn cookie_sessions(&self) -> Option<&CookieSessions> {
        self.cookie_sessions_for(crate::TokenKind::User)
    }

    /// The cookie sessions a route with `access` reads.
    pub(crate) fn sessions_for<'a>(
        &'a self,
        access: &'a crate::Access,
    ) -> impl Iterator<Item = &'a CookieSessions> {
        self.sessions
            .iter()
            .filter(|sessions| access.kinds.contains(sessions.kind()))
    }

    /// The app's cookie sessions of tokens of `kind`, if turned on.
    pub fn cookie_sessions_for(&self, kind: crate::TokenKind) -> Option<&CookieSessions> {
        self.sessions
            .iter()
            .find(|sessions| sessions.kind() == kind)
    }

    /// Refuses (429) a client IP that has failed authentication too often:
    /// for an app's own authentication endpoints (an OAuth 2.0 token
    /// endpoint), which then count their failures with
    /// [`Gate::count_failed_auth`], so that one limit covers both.
    pub fn check_failed_auth(&self, ip: Option<IpAddr>) -> Result<(), AuthError> {
        self.failed_auth.check(ip)
    }

    /// Counts a failed authentication of `ip` (see [`Gate::check_failed_auth`]).
    pub async fn count_failed_auth(&self, ip: Option<IpAddr>) {
        self.failed_auth.count(ip).await;
    }
}
