//! Building a [`Gate`] and putting it in front of routes.
//!
//! [`Gate::builder`] takes the app's store and, once, its [`Identity`],
//! [`Ceilings`], trusted proxies and limits. [`Gate::guard`] makes one
//! route's guard, a tower layer for axum's `route_layer`.
//!
//! The guard also keeps the gate's upkeep: the first request it sees starts
//! a task that hands the user tokens' last uses to the store every
//! [`GateBuilder::usage_interval`], for as long as the gate lives. Call
//! [`Gate::flush_usage`] once more at shutdown.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::{Arc, Weak},
    task::{Context, Poll},
    time::Duration,
};

use axum::{extract::Request, response::Response};
use ipnet::IpNet;
use tower::{Layer, Service};

use crate::{
    Access, AuthError, CacheSettings, Ceilings, Clock, CookieSessions, Identity, TokenStore,
    Verifier,
    gate::{FailedAuthLimit, Gate},
    client_ip::{self, ClientIp},
    limits::{LimitBackend, Rate},
    limits::rate as rate_limit,
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

impl<S: TokenStore> Gate<S> {
    /// One route's guard: `get(handler).route_layer(gate.guard(access))`.
    /// Refusals are rendered in the gate's [`Identity`]; an admitted
    /// request reaches the handler with its [`Principal`](crate::Principal)
    /// in the extensions, for the typed extractors.
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// use jeton_auth::{Ability, Access, Ceilings, Gate, KindSet, MemoryStore, TokenFormat, User};
    ///
    /// const PROFILE_READ: Ability = Ability::from_static("profile:read");
    ///
    /// let gate = Gate::builder(MemoryStore::new(TokenFormat::default()))
    ///     .ceilings(Ceilings::new().user([PROFILE_READ]))
    ///     .build();
    /// let app: Router = Router::new().route(
    ///     "/me",
    ///     get(|User(user): User| async move { user.user_id.clone() })
    ///         .route_layer(gate.guard(Access::new(KindSet::USER, PROFILE_READ))),
    /// );
    /// ```
    pub fn guard(self: &Arc<Self>, access: Access) -> GuardLayer<S> {
        GuardLayer {
            gate: Arc::clone(self),
            access: Arc::new(access),
        }
    }

    /// Hands the user tokens' uses noted since the last call to the store
    /// ([`TokenStore::record_usage`]). The guard does it regularly; call it
    /// once more at shutdown. Calls wait for each other, so that a call at
    /// shutdown returns after the regular one's writes too.
    pub async fn flush_usage(&self) {
        let _flushing = self.flushing.lock().await;
        let usage = self.verifier.take_usage();
        if !usage.is_empty() {
            self.verifier.store().record_usage(usage).await;
        }
    }

    /// Starts the upkeep task, once: it holds the gate weakly and ends with
    /// it.
    fn start_upkeep(self: &Arc<Self>) {
        self.upkeep.get_or_init(|| {
            let gate: Weak<Gate<S>> = Arc::downgrade(self);
            let interval = self.usage_interval;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(gate) = gate.upgrade() else { break };
                    gate.flush_usage().await;
                }
            });
        });
    }

    /// Puts the request's [`ClientIp`] in its extensions, unless a
    /// [`ClientIpLayer`] did: from the socket peer and the trusted proxies.
    /// `false` without a peer address: the request must be refused, as
    /// per-IP limits must never be silently off.
    ///
    /// [`ClientIpLayer`]: crate::client_ip::ClientIpLayer
    fn find_client_ip(&self, request: &mut Request) -> bool {
        if request.extensions().get::<ClientIp>().is_some() {
            return true;
        }
        let Some(peer) = client_ip::peer(request) else {
            return false;
        };
        let ip = client_ip::resolve(peer.ip(), request.headers(), &self.trusted_proxies);
        request.extensions_mut().insert(ClientIp(ip));
        true
    }
}

/// One route's guard, from [`Gate::guard`].
pub struct GuardLayer<S> {
    gate: Arc<Gate<S>>,
    access: Arc<Access>,
}

impl<S> Clone for GuardLayer<S> {
    fn clone(&self) -> Self {
        GuardLayer {
            gate: Arc::clone(&self.gate),
            access: Arc::clone(&self.access),
        }
    }
}

impl<S, I> Layer<I> for GuardLayer<S> {
    type Service = GuardService<S, I>;

    fn layer(&self, inner: I) -> Self::Service {
        GuardService {
            guard: self.clone(),
            inner,
        }
    }
}

/// The service of a [`GuardLayer`]: the route's handler behind its guard.
pub struct GuardService<S, I> {
    guard: GuardLayer<S>,
    inner: I,
}

impl<S, I: Clone> Clone for GuardService<S, I> {
    fn clone(&self) -> Self {
        GuardService {
            guard: self.guard.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<S, I> Service<Request> for GuardService<S, I>
where
    S: TokenStore,
    I: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    I::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The service that was polled ready serves this request.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let GuardLayer { gate, access } = self.guard.clone();
        gate.start_upkeep();
        Box::pin(async move {
            if !gate.find_client_ip(&mut request) {
                return Ok(client_ip::no_peer(&gate.identity));
            }
            match gate.admit(&mut request, &access).await {
                Ok(status) => {
                    // The extractors render their refusals in it.
                    request.extensions_mut().insert(gate.identity.clone());
                    let mut response = inner.call(request).await?;
                    // A handler that refused with a limit of its own (an
                    // app's order limit, say) has set the headers of that
                    // one.
                    if let Some(status) = status
                        && !response
                            .headers()
                            .contains_key(&rate_limit::RATELIMIT_LIMIT)
                    {
                        rate_limit::set_headers(response.headers_mut(), status);
                    }
                    Ok(response)
                }
                Err(error) => {
                    let mut response = gate.identity.refusal(&error);
                    // A dead session cookie is cleared: the page starts afresh.
                    if let Some(sessions) = &gate.sessions
                        && error == AuthError::InvalidToken
                        && sessions.has_session_cookie(request.headers())
                    {
                        sessions.clear(response.headers_mut());
                    }
                    Ok(response)
                }
            }
        })
    }
}
