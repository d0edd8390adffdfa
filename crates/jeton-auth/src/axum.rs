//! The route guard and the typed extractors.
//!
//! The guard wraps each route's handler ([`Guard::handler`]): it authenticates, checks the origin,
//! the rate limits and the route's [`Access`], and puts the [`Principal`] in
//! the request extensions. It finds the app's [`Gate`] in the app's state
//! ([`GateState`]). The extractors take it out again, typed: a handler
//! that asks for [`User`] gets a [`UserPrincipal`] or the request never
//! reaches it. An extractor used on a route without a guard refuses the
//! request (deny by default).

use std::{
    collections::HashMap,
    marker::PhantomData,
    net::IpAddr,
    pin::Pin,
    sync::{Arc, Mutex, OnceLock},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    extract::{FromRequestParts, Request},
    handler::Handler,
    http::{header::ORIGIN, request::Parts},
    response::{IntoResponse, Response},
};

use metrics::Counter;

use crate::{
    Access, AuthError, Ceilings, ClientPrincipal, KindSet, Limits, Principal, TokenStore,
    UserPrincipal, Verifier,
    client_ip::ClientIp,
    clock::now_nanos,
    failed_auth::FailedAuth,
    origin,
    rate_limit::{self, RateLimitStatus, RateLimiter},
    store::Refusal,
};

/// How often the same refusal of the same key is recorded at most.
const REFUSAL_RECORD_INTERVAL: Duration = Duration::from_secs(60);

/// Failed authentications (malformed, unknown, revoked or expired tokens)
/// allowed per client IP and window before that IP gets 429 without its
/// tokens being looked at.
#[derive(Debug, Clone, Copy)]
pub struct FailedAuthLimit {
    pub failures: u32,
    pub window: Duration,
}

impl Default for FailedAuthLimit {
    fn default() -> Self {
        FailedAuthLimit {
            failures: 500,
            window: Duration::from_secs(60),
        }
    }
}

/// Everything the guards of an app share: one per process.
pub struct Gate<S> {
    pub verifier: Verifier<S>,
    pub ceilings: Ceilings,
    pub limiter: RateLimiter,
    /// When each (key, code) refusal was last recorded.
    recorded_refusals: Mutex<HashMap<(String, &'static str), Instant>>,
    failed_auth: FailedAuth,
    /// Registered on first use, then kept (see `FailedAuth`).
    client_limited: OnceLock<Counter>,
}

impl<S: TokenStore> Gate<S> {
    pub fn new(verifier: Verifier<S>, ceilings: Ceilings) -> Gate<S> {
        Gate::with_failed_auth_limit(verifier, ceilings, FailedAuthLimit::default())
    }

    pub fn with_failed_auth_limit(
        verifier: Verifier<S>,
        ceilings: Ceilings,
        limit: FailedAuthLimit,
    ) -> Gate<S> {
        Gate {
            verifier,
            ceilings,
            limiter: RateLimiter::new(),
            recorded_refusals: Mutex::new(HashMap::new()),
            failed_auth: FailedAuth::new(limit),
            client_limited: OnceLock::new(),
        }
    }

    /// Authenticates and authorizes a request for a route with `access`.
    /// On success the principal is in the request extensions and the rate
    /// limit status (if a limit applies) is returned for the headers.
    pub async fn admit(
        &self,
        request: &mut Request,
        access: &Access,
    ) -> Result<Option<RateLimitStatus>, AuthError> {
        let now = now_nanos();
        self.client_ip_allowed(request, now)?;
        let principal = self
            .verifier
            .authenticate(request.headers(), request.uri().query())
            .await
            .inspect_err(|error| self.count_failure(error, request, now))?;
        let origin_header = request.headers().get(ORIGIN);
        if let Err(error) = origin::check(&principal, origin_header) {
            let origin = origin_header
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            // Boxed, like the store lookup: rare, and its future is large.
            Box::pin(self.record_refusal(&principal, &error, origin, client_ip(request))).await;
            return Err(error);
        }
        self.authorize(principal, request, access)
    }

    /// [`Gate::admit`] without waiting, for the hot path: `None` when the
    /// answer needs I/O (a token not in the caches, or a refusal to record),
    /// and the caller runs [`Gate::admit`] instead. Nothing has been recorded
    /// then, and no failure counted; a key refused for its origin has been
    /// counted as verified, and [`Gate::admit`] counts it once more.
    ///
    /// Both take the request itself rather than its parts: taking a request
    /// apart and putting it together again moves it twice, which costs a
    /// tenth of a cache hit.
    pub fn admit_cached(
        &self,
        request: &mut Request,
        access: &Access,
    ) -> Option<Result<Option<RateLimitStatus>, AuthError>> {
        // One read of the clock for the failed-authentication check and
        // the verification: it costs as much as the cache lookup.
        let now = now_nanos();
        if let Err(error) = self.client_ip_allowed(request, now) {
            return Some(Err(error));
        }
        let authenticated =
            self.verifier
                .authenticate_cached_at(request.headers(), request.uri().query(), now)?;
        let principal = match authenticated {
            Ok(principal) => principal,
            Err(error) => {
                self.count_failure(&error, request, now);
                return Some(Err(error));
            }
        };
        if origin::check(&principal, request.headers().get(ORIGIN)).is_err() {
            return None;
        }
        Some(self.authorize(principal, request, access))
    }

    /// Refuses a client IP that has failed to authenticate too often,
    /// before its token is even parsed.
    fn client_ip_allowed(&self, request: &Request, now: i64) -> Result<(), AuthError> {
        // The IP is only looked for when some IP may be over the limit.
        if !self.failed_auth.may_refuse(now) {
            return Ok(());
        }
        self.failed_auth.check(client_ip(request), now)
    }

    fn count_failure(&self, error: &AuthError, request: &Request, now: i64) {
        if let AuthError::InvalidToken = error {
            self.failed_auth.count(client_ip(request), now);
        }
    }

    /// After authentication: the rate limits, then the route's access row.
    fn authorize(
        &self,
        principal: Principal,
        request: &mut Request,
        access: &Access,
    ) -> Result<Option<RateLimitStatus>, AuthError> {
        let status = match principal.client() {
            // The IP is only looked for when a limit applies.
            Some(client) if client.limits != Limits::default() => self
                .limiter
                .check(&client.client_id, client.limits, client_ip(request))
                .inspect_err(|_| {
                    self.client_limited
                        .get_or_init(
                            || metrics::counter!("jeton_rate_limited_total", "reason" => "client"),
                        )
                        .increment(1);
                })?,
            _ => None,
        };
        access.check(&principal, &self.ceilings)?;
        request.extensions_mut().insert(principal);
        Ok(status)
    }

    async fn record_refusal(
        &self,
        principal: &Principal,
        error: &AuthError,
        origin: Option<String>,
        client_ip: Option<IpAddr>,
    ) {
        let Some(client) = principal.client() else {
            return;
        };
        let key = (client.key_id.clone(), error.code());
        let now = Instant::now();
        {
            let mut recorded = self.recorded_refusals.lock().expect("refusal log lock");
            if recorded
                .get(&key)
                .is_some_and(|at| now.duration_since(*at) < REFUSAL_RECORD_INTERVAL)
            {
                return;
            }
            if recorded.len() > 10_000 {
                recorded.retain(|_, at| now.duration_since(*at) < REFUSAL_RECORD_INTERVAL);
            }
            recorded.insert(key, now);
        }
        let refusal = Refusal {
            principal: principal.clone(),
            code: error.code(),
            origin,
            client_ip,
        };
        self.verifier.store().record_refusal(refusal).await;
    }
}

/// The client's IP, as the app's client-IP layer found it.
fn client_ip(request: &Request) -> Option<IpAddr> {
    request.extensions().get::<ClientIp>().map(|ip| ip.0)
}

/// An app state that holds the app's [`Gate`]. axum hands the state to
/// every request anyway, so a guard reads the gate from it rather than
/// holding a reference of its own, which every request would count up and
/// down.
pub trait GateState: Clone + Send + Sync + 'static {
    type Store: TokenStore;

    fn gate(&self) -> &Gate<Self::Store>;
}

/// One route's guard: the route's row of the access table.
#[derive(Debug, Clone)]
pub struct Guard {
    pub access: Access,
}

impl Guard {
    pub fn new(access: Access) -> Guard {
        Guard { access }
    }

    /// Guards a route's handler: `get(guard.handler::<AppError, _>(list_products))`.
    /// `E` is the app's error type, so refusals render like every other
    /// error.
    ///
    /// A wrapper around the handler rather than a route layer or
    /// `middleware::from_fn`: axum boxes and clones each layer's service on
    /// every request, which costs more than verifying a cached token. This
    /// way a request admitted from the caches goes straight to the handler,
    /// and only one that needs the store takes a boxed, asynchronous path.
    pub fn handler<E, H>(self, handler: H) -> Guarded<E, H> {
        Guarded {
            access: self.access,
            handler,
            error: PhantomData,
        }
    }
}

/// A handler behind its route's guard; see [`Guard::handler`].
pub struct Guarded<E, H> {
    access: Access,
    handler: H,
    error: PhantomData<fn() -> E>,
}

impl<E, H: Clone> Clone for Guarded<E, H> {
    fn clone(&self) -> Self {
        Guarded {
            access: self.access.clone(),
            handler: self.handler.clone(),
            error: PhantomData,
        }
    }
}

impl<E, H, T, St> Handler<T, St> for Guarded<E, H>
where
    E: From<AuthError> + IntoResponse + 'static,
    H: Handler<T, St>,
    T: 'static,
    St: GateState,
{
    type Future = GuardedFuture<H::Future>;

    fn call(self, mut request: Request, state: St) -> Self::Future {
        let admitted = state.gate().admit_cached(&mut request, &self.access);
        match admitted {
            Some(Ok(status)) => GuardedFuture::Admitted {
                inner: self.handler.call(request, state),
                status,
            },
            Some(Err(error)) => GuardedFuture::Refused {
                response: Some(E::from(error).into_response()),
            },
            None => GuardedFuture::Waiting {
                future: Box::pin(async move {
                    let Guarded {
                        access, handler, ..
                    } = self;
                    let admitted = state.gate().admit(&mut request, &access).await;
                    match admitted {
                        Ok(status) => with_rate_limit(handler.call(request, state).await, status),
                        Err(error) => E::from(error).into_response(),
                    }
                }),
            },
        }
    }
}

fn with_rate_limit(mut response: Response, status: Option<RateLimitStatus>) -> Response {
    if let Some(status) = status {
        rate_limit::set_headers(response.headers_mut(), status);
    }
    response
}

pin_project_lite::pin_project! {
    /// The future of a [`Guarded`] handler.
    #[project = GuardedProjection]
    pub enum GuardedFuture<F> {
        Admitted { #[pin] inner: F, status: Option<RateLimitStatus> },
        Refused { response: Option<Response> },
        Waiting { future: Pin<Box<dyn Future<Output = Response> + Send>> },
    }
}

impl<F: Future<Output = Response>> Future for GuardedFuture<F> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        match self.project() {
            GuardedProjection::Admitted { inner, status } => inner
                .poll(cx)
                .map(|response| with_rate_limit(response, *status)),
            GuardedProjection::Refused { response } => {
                Poll::Ready(response.take().expect("polled after completion"))
            }
            GuardedProjection::Waiting { future } => future.as_mut().poll(cx),
        }
    }
}

fn principal(parts: &Parts) -> Result<&Principal, AuthError> {
    parts
        .extensions
        .get::<Principal>()
        .ok_or(AuthError::Unauthenticated)
}

fn wrong_kind(accepted: KindSet) -> AuthError {
    AuthError::WrongKind { accepted }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        principal(parts).cloned()
    }
}

/// A person with a user token.
#[derive(Debug, Clone)]
pub struct User(pub Arc<UserPrincipal>);

impl<S: Send + Sync> FromRequestParts<S> for User {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match principal(parts)? {
            Principal::User(user) => Ok(User(user.clone())),
            _ => Err(wrong_kind(KindSet::USER)),
        }
    }
}

/// A client application with either kind of key.
#[derive(Debug, Clone)]
pub struct Client(pub Arc<ClientPrincipal>);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        principal(parts)?
            .client()
            .cloned()
            .map(Client)
            .ok_or_else(|| wrong_kind(KindSet::PUBLISHABLE | KindSet::SECRET))
    }
}

/// A client application with a secret key.
#[derive(Debug, Clone)]
pub struct SecretClient(pub Arc<ClientPrincipal>);

impl<S: Send + Sync> FromRequestParts<S> for SecretClient {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match principal(parts)? {
            Principal::SecretClient(client) => Ok(SecretClient(client.clone())),
            _ => Err(wrong_kind(KindSet::SECRET)),
        }
    }
}
