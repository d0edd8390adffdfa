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
    count_usage: bool,
    sessions: Vec<CookieSessions>,
    /// `None`: a local backend on the gate's clock.
    limits: Option<Arc<LimitBackend>>,
    user_rate: Option<Rate>,
    guest_rate: Option<Rate>,
    clock: Clock,
}

impl<S: TokenStore> Gate<S> {
    /// A gate for `identity`'s tokens over `store`. Until told otherwise:
    /// no trusted proxies, and the default cache and limits. The ceilings
    /// must be given: [`GateBuilder::build`] refuses a gate under which no
    /// kind holds anything, whose every route would answer 403.
    ///
    /// ```
    /// use jeton_auth::{Ability, Ceilings, Gate, Identity, MemoryStore};
    ///
    /// const PROFILE_READ: Ability = Ability::from_static("profile:read");
    ///
    /// let identity = Identity::new("acme")?;
    /// let gate = Gate::builder(identity.clone(), MemoryStore::new(identity.tokens()))
    ///     .ceilings(Ceilings::new().user([PROFILE_READ]))
    ///     .trusted_proxies(["10.0.0.0/8".parse()?])
    ///     .build()?;
    /// assert_eq!(gate.identity().realm(), "acme");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(identity: Identity, store: S) -> GateBuilder<S> {
        GateBuilder {
            store,
            identity,
            ceilings: Ceilings::new(),
            cache: CacheSettings::default(),
            failed_auth: FailedAuthLimit::default(),
            trusted_proxies: Vec::new(),
            usage_interval: USAGE_INTERVAL,
            count_usage: true,
            sessions: Vec::new(),
            limits: None,
            user_rate: None,
            guest_rate: None,
            clock: Clock::system(),
        }
    }
}

/// Why a gate was not built: each says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// The store issues tokens of another prefix than the gate's identity:
    /// every one of its tokens would be answered 401 `invalid_token`.
    #[error(
        "the store issues `{store}_…` tokens but the gate's identity is `{gate}_…`: \
         give the store the identity's format (`Identity::tokens`)"
    )]
    TokenFormatMismatch { gate: String, store: String },
    /// No kind may hold any ability: every route would answer 403.
    #[error(
        "the gate has no ceilings, so every route would answer 403: give \
         `GateBuilder::ceilings` what each kind of token may hold"
    )]
    NoCeilings,
}

impl<S: TokenStore> GateBuilder<S> {
    /// The most each kind of token may hold; required.
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
    /// believed when the guard finds a request's client address; also the
    /// ones of [`Gate::client_ip_layer`], for the app's routes without a
    /// guard. None by default: the socket peer is the client.
    pub fn trusted_proxies(mut self, proxies: impl IntoIterator<Item = IpNet>) -> Self {
        self.trusted_proxies = proxies.into_iter().collect();
        self
    }

    /// How often the last uses of user tokens go to
    /// [`TokenStore::record_usage`], and the usage counts to
    /// [`TokenStore::record_counts`] (at least every millisecond).
    pub fn usage_interval(mut self, interval: Duration) -> Self {
        self.usage_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Whether each credential's requests are counted by outcome
    /// ([`crate::usage`]). On by default; off, for measuring what counting
    /// costs, the store's [`TokenStore::record_counts`] is never called.
    pub fn count_usage(mut self, on: bool) -> Self {
        self.count_usage = on;
        self
    }

    /// Accepts user tokens in a session cookie too, for the app's own web
    /// pages (see [`crate::session`]), or staff sessions in theirs
    /// ([`CookieSessions::staff`]): once per kind, the latest of a kind
    /// replacing the earlier. Off unless called.
    pub fn cookie_sessions(mut self, sessions: CookieSessions) -> Self {
        self.sessions
            .retain(|known| known.kind() != sessions.kind());
        self.sessions.push(sessions);
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

    /// Each guest token's requests through the guard (`RateLimit-*`
    /// headers on every answer, 429 beyond), counted per token and never
    /// against the limits of the key that obtained it: one visitor over
    /// its limit is cut without touching the others behind the same
    /// address. None by default.
    pub fn guest_rate_limit(mut self, rate: Option<Rate>) -> Self {
        self.guest_rate = rate;
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

    /// The gate, or why it cannot work: a store whose tokens are not the
    /// identity's, or no ceilings.
    pub fn build(self) -> Result<Arc<Gate<S>>, GateError> {
        if let Some(store) = self.store.token_format()
            && store != self.identity.tokens()
        {
            return Err(GateError::TokenFormatMismatch {
                gate: self.identity.tokens().prefix().to_owned(),
                store: store.prefix().to_owned(),
            });
        }
        if self.ceilings.is_empty() {
            return Err(GateError::NoCeilings);
        }
        let limits = self
            .limits
            .unwrap_or_else(|| Arc::new(LimitBackend::local().with_clock(self.clock.clone())));
        let verifier =
            Verifier::with_cache(self.store, self.identity, self.cache).with_clock(self.clock);
        let mut gate = Gate::assemble(
            verifier,
            self.ceilings,
            self.failed_auth,
            self.trusted_proxies.into(),
            self.usage_interval,
            self.count_usage,
            limits,
        );
        gate.sessions = self.sessions;
        gate.user_rate = self.user_rate;
        gate.guest_rate = self.guest_rate;
        Ok(Arc::new(gate))
    }
}
