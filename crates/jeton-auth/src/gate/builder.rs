//! Building a [`Gate`]: [`Gate::builder`] takes the app's store and, once,
//! its [`Identity`], [`Ceilings`], trusted proxies and limits.

use std::{sync::Arc, time::Duration};

use ipnet::IpNet;

use super::Gate;
use crate::{
    CacheSettings, Ceilings, Clock, Identity, TokenStore, Verifier,
    limits::{FailedAuthLimit, LimitBackend, Rate},
    session::CookieSessions,
};

/// How often the last uses of user tokens go to the store by default.
pub(crate) const USAGE_INTERVAL: Duration = Duration::from_secs(5);

/// Everything a [`Gate`] is built from; see [`Gate::builder`].
#[must_use = "call build() to get the gate"]
pub struct GateBuilder<S> {
    store: S,
    identity: Identity,
    ceilings: Ceilings,
    cache: CacheSettings,
    failed_auth: FailedAuthLimit,
    trusted_proxies: Vec<IpNet>,
    usage_interval: Duration,
    sessions: Option<CookieSessions>,
    /// `None`: a local backend on the gate's clock.
    limits: Option<Arc<LimitBackend>>,
    user_rate: Option<Rate>,
    clock: Clock,
}

impl<S: TokenStore> Gate<S> {
    /// A gate over `store`. Until told otherwise: Jeton's identity
    /// ([`Identity::default`]), ceilings under which no kind holds anything,
    /// no trusted proxies, and the default cache and limits.
    ///
    /// ```
    /// use jeton_auth::{Ability, Ceilings, Gate, Identity, MemoryStore};
    ///
    /// const PROFILE_READ: Ability = Ability::from_static("profile:read");
    ///
    /// let identity = Identity::new("acme")?;
    /// let gate = Gate::builder(MemoryStore::new(identity.tokens()))
    ///     .identity(identity)
    ///     .ceilings(Ceilings::new().user([PROFILE_READ]))
    ///     .trusted_proxies(["10.0.0.0/8".parse()?])
    ///     .build();
    /// assert_eq!(gate.identity().realm(), "acme");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(store: S) -> GateBuilder<S> {
        GateBuilder {
            store,
            identity: Identity::default(),
            ceilings: Ceilings::new(),
            cache: CacheSettings::default(),
            failed_auth: FailedAuthLimit::default(),
            trusted_proxies: Vec::new(),
            usage_interval: USAGE_INTERVAL,
            sessions: None,
            limits: None,
            user_rate: None,
            clock: Clock::system(),
        }
    }
}

impl<S: TokenStore> GateBuilder<S> {
    /// The app's token prefix, realm, problem types and metric names.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = identity;
        self
    }

    /// The most each kind of token may hold.
    pub fn ceilings(mut self, ceilings: Ceilings) -> Self {
        self.ceilings = ceilings;
        self
    }

    pub fn cache(mut self, settings: CacheSettings) -> Self {
        self.cache = settings;
        self
    }

    /// Failed authentications one address may make per window before its
    /// requests are refused without a look at their tokens.
    pub fn failed_auth_limit(mut self, limit: FailedAuthLimit) -> Self {
        self.failed_auth = limit;
        self
    }

    /// The networks of the app's own proxies, whose `X-Forwarded-For` is
    /// believed when the guard finds a request's client address.
    pub fn trusted_proxies(mut self, proxies: impl IntoIterator<Item = IpNet>) -> Self {
        self.trusted_proxies = proxies.into_iter().collect();
        self
    }

    /// How often the last uses of user tokens go to
    /// [`TokenStore::record_usage`] (at least every millisecond).
    pub fn usage_interval(mut self, interval: Duration) -> Self {
        self.usage_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Accepts user tokens in a session cookie too, for the app's own web
    /// pages (see [`crate::session`]). Off unless called.
    pub fn cookie_sessions(mut self, sessions: CookieSessions) -> Self {
        self.sessions = Some(sessions);
        self
    }

    /// Where every limit is counted: [`LimitBackend::local`] (the default)
    /// or, with the `redis` feature, `LimitBackend::redis` for limits
    /// that hold across a fleet of processes. The app may count its own
    /// limits there too ([`Gate::limits`]).
    pub fn limits(mut self, limits: Arc<LimitBackend>) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Each user's requests through the guard, across all their tokens
    /// (`RateLimit-*` headers on every answer, 429 beyond). None by default.
    pub fn user_rate_limit(mut self, rate: Option<Rate>) -> Self {
        self.user_rate = rate;
        self
    }

    /// Where the gate reads the time: token expiry, the last uses of user
    /// tokens, and how long a refused address stays refused. The system's
    /// by default; a test passes a [`Clock::manual`] and moves it. The
    /// default limit backend counts failures on it too; one given to
    /// [`GateBuilder::limits`] counts them on its own clock
    /// ([`LimitBackend::with_clock`]): give both the same.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn build(self) -> Arc<Gate<S>> {
        let limits = self
            .limits
            .unwrap_or_else(|| Arc::new(LimitBackend::local().with_clock(self.clock.clone())));
        let verifier =
            Verifier::with_identity(self.store, self.identity, self.cache).with_clock(self.clock);
        let mut gate = Gate::assemble(
            verifier,
            self.ceilings,
            self.failed_auth,
            self.trusted_proxies.into(),
            self.usage_interval,
            limits,
        );
        gate.sessions = self.sessions;
        gate.user_rate = self.user_rate;
        Arc::new(gate)
    }
}
