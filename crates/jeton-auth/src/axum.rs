//! The gate, the route guard and the typed extractors.
//!
//! The [`Gate`] is built once ([`Gate::builder`]); each route gets its guard
//! from it ([`Gate::guard`], a tower layer). The guard authenticates, checks
//! the origin, the rate limits and the route's [`Access`], and puts the
//! [`Principal`] in the request extensions. The extractors take it out
//! again, typed: a handler that asks for [`User`] gets a [`UserPrincipal`]
//! or the request never reaches it. An extractor used on a route without a
//! guard refuses the request (deny by default).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use axum::{
    extract::{FromRequestParts, Request},
    http::{header::ORIGIN, request::Parts},
};
use ipnet::IpNet;
use metrics::Counter;

use crate::{
    Access, AuthError, Ceilings, ClientPrincipal, Identity, KindSet, Limits, Principal, Refused,
    TokenStore, UserPrincipal, Verifier,
    client_ip::ClientIp,
    failed_auth::FailedAuth,
    limits::{LimitBackend, Rate},
    origin,
    rate_limit::{RateLimitStatus, RateLimiter},
    session::{CookieSessions, SessionCookie},
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
    /// Where every limit is counted (this process, or the fleet).
    pub(crate) limits: Arc<LimitBackend>,
    /// Each user's requests, across all their tokens.
    pub(crate) user_rate: Option<Rate>,
    /// When each (key, code) refusal was last recorded.
    recorded_refusals: Mutex<HashMap<(String, &'static str), Instant>>,
    failed_auth: FailedAuth,
    /// Registered on first use, after the app has installed its recorder.
    client_limited: OnceLock<Counter>,
    user_limited: OnceLock<Counter>,
    /// The verifier's: how refusals are rendered and metrics named.
    pub(crate) identity: Identity,
    pub(crate) trusted_proxies: Arc<[IpNet]>,
    pub(crate) usage_interval: Duration,
    /// Set once the upkeep task runs.
    pub(crate) upkeep: OnceLock<()>,
    /// Held from taking the uses to handing them to the store.
    pub(crate) flushing: tokio::sync::Mutex<()>,
    /// Cookie sessions, if the app has turned them on
    /// ([`GateBuilder::cookie_sessions`](crate::GateBuilder::cookie_sessions)).
    pub(crate) sessions: Option<CookieSessions>,
}

impl<S: TokenStore> Gate<S> {
    /// The gate [`GateBuilder::build`](crate::GateBuilder::build) makes.
    pub(crate) fn assemble(
        verifier: Verifier<S>,
        ceilings: Ceilings,
        limit: FailedAuthLimit,
        trusted_proxies: Arc<[IpNet]>,
        usage_interval: Duration,
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
            recorded_refusals: Mutex::new(HashMap::new()),
            client_limited: OnceLock::new(),
            user_limited: OnceLock::new(),
            identity,
            trusted_proxies,
            usage_interval,
            upkeep: OnceLock::new(),
            flushing: tokio::sync::Mutex::new(()),
            sessions: None,
        }
    }

    /// The app's identity: its token prefix, realm and problem types.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Where the gate counts its limits, for the app's own limits to be
    /// counted in the same place.
    pub fn limits(&self) -> &Arc<LimitBackend> {
        &self.limits
    }

    /// The app's cookie sessions, if turned on: its login route sets them
    /// with [`CookieSessions::issue`], its logout clears them.
    pub fn cookie_sessions(&self) -> Option<&CookieSessions> {
        self.sessions.as_ref()
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

    /// Authenticates and authorizes a request for a route with `access`.
    /// On success the principal is in the request extensions and the rate
    /// limit status (if a limit applies) is returned for the headers.
    pub async fn admit(
        &self,
        request: &mut Request,
        access: &Access,
    ) -> Result<Option<RateLimitStatus>, AuthError> {
        let ip = client_ip(request);
        // A client IP that has failed too often is refused before its token
        // is even parsed.
        self.failed_auth.check(ip)?;
        let tokens = self.identity.tokens();
        let cookie = self
            .sessions
            .as_ref()
            .and_then(|sessions| Some((sessions, sessions.credential(tokens, request.headers())?)));
        let session = cookie.as_ref().map(|(sessions, _)| *sessions);
        let verified = match cookie {
            None => {
                self.verifier
                    .authenticate(request.headers(), request.uri().query())
                    .await
            }
            // The same verification as a bearer token's, through the same
            // cache, then the cookie's own checks.
            Some((_, Ok(token))) => self.verifier.verify(&token).await,
            Some((_, Err(error))) => Err(error),
        };
        let principal = match verified {
            Ok(principal) => principal,
            Err(error) => {
                if error == AuthError::InvalidToken {
                    self.failed_auth.count(ip).await;
                }
                return Err(error);
            }
        };
        if let Some(sessions) = session {
            if let Err(error) = sessions.admit(&principal, request.method(), request.headers()) {
                // Recorded as a key's refusals are: a page of another origin,
                // or a forged request, is using the session.
                let origin = request
                    .headers()
                    .get(ORIGIN)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                Box::pin(self.record_refusal(&principal, &error, origin, ip)).await;
                return Err(error);
            }
            request.extensions_mut().insert(SessionCookie);
        }
        let origin_header = request.headers().get(ORIGIN);
        if let Err(error) = origin::check(&principal, origin_header) {
            let origin = origin_header
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            // Boxed, like the store lookup: rare, and its future is large.
            Box::pin(self.record_refusal(&principal, &error, origin, ip)).await;
            return Err(error);
        }
        let status = match &principal {
            Principal::User(user) => match self.user_rate {
                Some(rate) => Some(
                    self.limits
                        .take(&format!("user:{}", user.user_id), rate)
                        .await
                        .inspect_err(|_| self.count_limited(&self.user_limited, "customer"))?,
                ),
                None => None,
            },
            _ => match principal.client() {
                Some(client) if client.limits != Limits::default() => self
                    .limiter
                    .check(&client.client_id, client.limits, ip)
                    .await
                    .inspect_err(|_| self.count_limited(&self.client_limited, "client"))?,
                _ => None,
            },
        };
        access.check(&principal, &self.ceilings)?;
        request.extensions_mut().insert(principal);
        Ok(status)
    }

    fn count_limited(&self, counter: &OnceLock<Counter>, reason: &'static str) {
        counter
            .get_or_init(|| {
                let name = self.identity.metric_name("rate_limited_total");
                metrics::counter!(name, "reason" => reason)
            })
            .increment(1);
    }

    /// Hands a refusal of `principal`'s credential to the store, at most
    /// once a minute per credential and code. The guard records its own
    /// (an origin the key or session may not be used from, a secret key in
    /// a browser, a failed CSRF check); an app's own endpoints that refuse
    /// a credential for the same reasons record theirs here.
    pub async fn record_refusal(
        &self,
        principal: &Principal,
        error: &AuthError,
        origin: Option<String>,
        client_ip: Option<IpAddr>,
    ) {
        let credential = match (principal, principal.client()) {
            (Principal::User(user), _) => user.token_id.clone(),
            (_, Some(client)) => client.key_id.clone(),
            (_, None) => return,
        };
        let key = (credential, error.code());
        let now = self.verifier.clock().instant();
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

/// A refusal in the identity of the gate that guarded the request (Jeton's
/// when none did).
fn refuse(parts: &Parts, error: AuthError) -> Refused {
    let identity = parts.extensions.get::<Identity>().cloned();
    Refused {
        error,
        identity: identity.unwrap_or_default(),
    }
}

fn principal(parts: &Parts) -> Result<&Principal, Refused> {
    parts
        .extensions
        .get::<Principal>()
        .ok_or_else(|| refuse(parts, AuthError::Unauthenticated))
}

fn wrong_kind(parts: &Parts, accepted: KindSet) -> Refused {
    refuse(parts, AuthError::WrongKind { accepted })
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        principal(parts).cloned()
    }
}

/// A person with a user token.
#[derive(Debug, Clone)]
pub struct User(pub Arc<UserPrincipal>);

impl<S: Send + Sync> FromRequestParts<S> for User {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match principal(parts)? {
            Principal::User(user) => Ok(User(user.clone())),
            _ => Err(wrong_kind(parts, KindSet::USER)),
        }
    }
}

/// A client application with either kind of key.
#[derive(Debug, Clone)]
pub struct Client(pub Arc<ClientPrincipal>);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        principal(parts)?
            .client()
            .cloned()
            .map(Client)
            .ok_or_else(|| wrong_kind(parts, KindSet::PUBLISHABLE | KindSet::SECRET))
    }
}

/// A client application with a secret key, or with an access token, which
/// stands in for one.
#[derive(Debug, Clone)]
pub struct SecretClient(pub Arc<ClientPrincipal>);

impl<S: Send + Sync> FromRequestParts<S> for SecretClient {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match principal(parts)? {
            Principal::SecretClient(client) | Principal::AccessToken(client) => {
                Ok(SecretClient(client.clone()))
            }
            _ => Err(wrong_kind(parts, KindSet::SECRET)),
        }
    }
}
