//! Admission: what the guard asks of the gate for each request.

use std::{net::IpAddr, sync::OnceLock, time::Duration};

use axum::{extract::Request, http::header::ORIGIN};
use metrics::Counter;

use super::Gate;
use crate::{
    Access, AuthError, Principal, TokenKind, TokenStore,
    client_ip::{self, ClientIp},
    header,
    limits::{Limits, RateLimitStatus},
    origin,
    session::{CookieSessions, SessionCookie},
    store::Refusal,
    usage::Outcome,
    verify::NotAccepted,
};

/// How often the same refusal of the same key is recorded at most.
const REFUSAL_RECORD_INTERVAL: Duration = Duration::from_secs(60);

impl<S: TokenStore> Gate<S> {
    /// Authenticates and authorizes a request for a route with `access`.
    /// On success the principal is in the request extensions and the rate
    /// limit status (if a limit applies) is returned for the headers. Every
    /// request of a known credential is counted in its usage, by outcome;
    /// malformed and unknown tokens as `unattributed`.
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
        // A session cookie counts only on the routes that take its kind.
        let cookie = self
            .sessions_for(access)
            .find_map(|sessions| Some((sessions, sessions.credential(tokens, request.headers())?)));
        let session = cookie.as_ref().map(|(sessions, _)| *sessions);
        let token = match cookie {
            None => header::bearer_token(tokens, request.headers(), request.uri().query()),
            Some((_, token)) => token,
        };
        // A staff session lives in its cookie only: in a header it is
        // looked up as any token is (an unknown one is remembered as such),
        // but never accepted nor counted as a use.
        let staff_in_header =
            session.is_none() && token.as_ref().is_ok_and(|t| t.kind() == TokenKind::Staff);
        let verified = match token {
            // The same verification for a cookie's token as a bearer
            // token's, through the same cache; the cookie's own checks
            // follow.
            Ok(token) => self.verifier.resolve(&token, !staff_in_header).await,
            Err(AuthError::InvalidToken) => {
                self.verifier.count_malformed();
                Err(NotAccepted::Unknown)
            }
            Err(error) => return Err(error),
        };
        let principal = match verified {
            Ok(principal) => principal,
            Err(refused) => {
                let error = refused.error();
                match refused {
                    NotAccepted::Unknown => self.count_unattributed(),
                    NotAccepted::Dead(principal, outcome) => self.count(&principal, outcome),
                    NotAccepted::Unavailable => {}
                }
                if error == AuthError::InvalidToken {
                    self.failed_auth.count(ip).await;
                }
                return Err(error);
            }
        };
        if staff_in_header {
            self.failed_auth.count(ip).await;
            return Err(AuthError::InvalidToken);
        }
        let admitted = self
            .authorize(request, access, &principal, session, ip)
            .await;
        self.count(
            &principal,
            match &admitted {
                Ok(_) => Outcome::Ok,
                Err(error) => Outcome::of_refusal(error),
            },
        );
        let status = admitted?;
        request.extensions_mut().insert(principal);
        Ok(status)
    }

    /// The checks after authentication: a session cookie's, the origin, the
    /// request limits and the route's access.
    async fn authorize(
        &self,
        request: &mut Request,
        access: &Access,
        principal: &Principal,
        session: Option<&CookieSessions>,
        ip: Option<IpAddr>,
    ) -> Result<Option<RateLimitStatus>, AuthError> {
        if let Some(sessions) = session {
            if let Err(error) = sessions.admit(principal, request.method(), request.headers()) {
                // Recorded as a key's refusals are: a page of another origin,
                // or a forged request, is using the session.
                let origin = request
                    .headers()
                    .get(ORIGIN)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                Box::pin(self.record_refusal(principal, &error, origin, ip)).await;
                return Err(error);
            }
            request.extensions_mut().insert(SessionCookie);
        }
        let origin_header = request.headers().get(ORIGIN);
        if let Err(error) = origin::check(principal, origin_header) {
            let origin = origin_header
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            // Boxed, like the store lookup: rare, and its future is large.
            Box::pin(self.record_refusal(principal, &error, origin, ip)).await;
            return Err(error);
        }
        let status = match principal {
            Principal::User(user) => match self.user_rate {
                Some(rate) => Some(
                    self.limits
                        .take(&format!("user:{}", user.user_id), rate)
                        .await
                        .inspect_err(|_| self.count_limited(&self.user_limited, "customer"))?,
                ),
                None => None,
            },
            // Each guest on its own: never counted against the key that
            // obtained it, whose limits its visitors would share.
            Principal::Guest(guest) => match self.guest_rate {
                Some(rate) => Some(
                    self.limits
                        .take(&format!("guest:{}", guest.token_id), rate)
                        .await
                        .inspect_err(|_| self.count_limited(&self.guest_limited, "guest"))?,
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
        access.check(principal, &self.ceilings)?;
        Ok(status)
    }

    fn count(&self, principal: &Principal, outcome: Outcome) {
        if let Some(usage) = &self.usage {
            usage.count(principal, outcome, self.verifier.clock().now());
        }
    }

    fn count_unattributed(&self) {
        if let Some(usage) = &self.usage {
            usage.count_unattributed(self.verifier.clock().now());
        }
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
        let credential = principal.credential_id().to_owned();
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

    /// Puts the request's [`ClientIp`] in its extensions, unless a
    /// [`ClientIpLayer`] did: from the socket peer and the trusted proxies.
    /// `false` without a peer address: the request must be refused, as
    /// per-IP limits must never be silently off.
    ///
    /// [`ClientIpLayer`]: crate::client_ip::ClientIpLayer
    pub(crate) fn find_client_ip(&self, request: &mut Request) -> bool {
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

/// The client's IP, as the app's client-IP layer found it.
fn client_ip(request: &Request) -> Option<IpAddr> {
    request.extensions().get::<ClientIp>().map(|ip| ip.0)
}
