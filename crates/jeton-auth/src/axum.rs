//! The route guard and the typed extractors.
//!
//! The guard runs as a route layer: it authenticates, checks the origin,
//! the rate limits and the route's [`Access`], and puts the [`Principal`] in
//! the request extensions. The extractors take it out again, typed: a handler
//! that asks for [`User`] gets a [`UserPrincipal`] or the request never
//! reaches it. An extractor used on a route without a guard refuses the
//! request (deny by default).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{FromRequestParts, Request, State},
    http::{header::ORIGIN, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{
    Access, AuthError, Ceilings, ClientPrincipal, Principal, TokenStore, UserPrincipal, Verifier,
    client_ip::ClientIp,
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
    failed_auth_limit: FailedAuthLimit,
    /// Per client IP: failed authentications in the current window, and
    /// when the window started.
    failed_auth: moka::sync::Cache<std::net::IpAddr, (u32, Instant)>,
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
            failed_auth_limit: limit,
            failed_auth: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(limit.window)
                .build(),
        }
    }

    /// Refuses an IP that has failed to authenticate too often, before its
    /// token is even parsed: a flood of forged tokens stops reaching the
    /// store.
    fn check_failed_auth(&self, ip: std::net::IpAddr) -> Result<(), AuthError> {
        match self.failed_auth.get(&ip) {
            Some((failures, since)) if failures >= self.failed_auth_limit.failures => {
                let wait = self
                    .failed_auth_limit
                    .window
                    .saturating_sub(since.elapsed());
                metrics::counter!("jeton_rate_limited_total", "reason" => "failed_auth")
                    .increment(1);
                Err(AuthError::RateLimited {
                    limit: self.failed_auth_limit.failures,
                    retry_after_seconds: wait.as_secs().max(1),
                })
            }
            _ => Ok(()),
        }
    }

    fn count_failed_auth(&self, ip: std::net::IpAddr) {
        let window = self.failed_auth_limit.window;
        self.failed_auth
            .entry(ip)
            .and_upsert_with(|entry| match entry.map(|e| e.into_value()) {
                Some((failures, since)) if since.elapsed() < window => (failures + 1, since),
                _ => (1, Instant::now()),
            });
    }

    /// Authenticates and authorizes a request for a route with `access`.
    /// On success the principal is in the request extensions and the rate
    /// limit status (if a limit applies) is returned for the headers.
    pub async fn admit(
        &self,
        parts: &mut Parts,
        access: &Access,
    ) -> Result<Option<RateLimitStatus>, AuthError> {
        let client_ip = parts.extensions.get::<ClientIp>().map(|ip| ip.0);
        if let Some(ip) = client_ip {
            self.check_failed_auth(ip)?;
        }
        let principal = match self.verifier.authenticate(parts).await {
            Ok(principal) => principal,
            Err(error) => {
                if let (AuthError::InvalidToken, Some(ip)) = (&error, client_ip) {
                    self.count_failed_auth(ip);
                }
                return Err(error);
            }
        };
        let origin_header = parts.headers.get(ORIGIN);
        if let Err(error) = origin::check(&principal, origin_header) {
            let origin = origin_header
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            self.record_refusal(&principal, &error, origin, client_ip)
                .await;
            return Err(error);
        }
        let status = match principal.client() {
            Some(client) => self
                .limiter
                .check(&client.client_id, client.limits, client_ip)
                .inspect_err(|_| {
                    metrics::counter!("jeton_rate_limited_total", "reason" => "client")
                        .increment(1);
                })?,
            None => None,
        };
        access.check(&principal, &self.ceilings)?;
        parts.extensions.insert(principal);
        Ok(status)
    }

    async fn record_refusal(
        &self,
        principal: &Principal,
        error: &AuthError,
        origin: Option<String>,
        client_ip: Option<std::net::IpAddr>,
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

/// The state of one route's guard: the shared gate and the route's row of
/// the access table.
pub struct Guard<S> {
    pub gate: Arc<Gate<S>>,
    pub access: Access,
}

impl<S> Clone for Guard<S> {
    fn clone(&self) -> Self {
        Guard {
            gate: Arc::clone(&self.gate),
            access: self.access.clone(),
        }
    }
}

/// Middleware for `axum::middleware::from_fn_with_state(guard, require::<S, E>)`.
/// `E` is the app's error type, so refusals render like every other error.
pub async fn require<S, E>(State(guard): State<Guard<S>>, request: Request, next: Next) -> Response
where
    S: TokenStore,
    E: From<AuthError> + IntoResponse,
{
    let (mut parts, body) = request.into_parts();
    match guard.gate.admit(&mut parts, &guard.access).await {
        Ok(status) => {
            let mut response = next.run(Request::from_parts(parts, body)).await;
            if let Some(status) = status {
                rate_limit::set_headers(response.headers_mut(), status);
            }
            response
        }
        Err(error) => E::from(error).into_response(),
    }
}

fn principal(parts: &Parts) -> Result<&Principal, AuthError> {
    parts
        .extensions
        .get::<Principal>()
        .ok_or(AuthError::Unauthenticated)
}

fn wrong_kind() -> AuthError {
    AuthError::InsufficientScope { scope: None }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        principal(parts).cloned()
    }
}

/// A person with a user token.
#[derive(Debug, Clone)]
pub struct User(pub UserPrincipal);

impl<S: Send + Sync> FromRequestParts<S> for User {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match principal(parts)? {
            Principal::User(user) => Ok(User(user.clone())),
            _ => Err(wrong_kind()),
        }
    }
}

/// A client application with either kind of key.
#[derive(Debug, Clone)]
pub struct Client(pub ClientPrincipal);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        principal(parts)?
            .client()
            .cloned()
            .map(Client)
            .ok_or_else(wrong_kind)
    }
}

/// A client application with a secret key.
#[derive(Debug, Clone)]
pub struct SecretClient(pub ClientPrincipal);

impl<S: Send + Sync> FromRequestParts<S> for SecretClient {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match principal(parts)? {
            Principal::SecretClient(client) => Ok(SecretClient(client.clone())),
            _ => Err(wrong_kind()),
        }
    }
}
