//! Per-key and per-(key, client IP) rate limits, with governor's GCRA.
//!
//! A limit of N per minute allows a burst of N and refills one request every
//! 60/N seconds. Each client gets its own limiters, created on first use; a
//! change of a client's limits replaces them.

use std::{
    collections::HashMap,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, RwLock},
};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use governor::{
    NotUntil, Quota,
    clock::{Clock, DefaultClock, QuantaInstant},
    middleware::{StateInformationMiddleware, StateSnapshot},
    state::{InMemoryState, NotKeyed, keyed::DefaultKeyedStateStore},
};

use crate::AuthError;

type DirectLimiter =
    governor::RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;
type PerIpLimiter = governor::RateLimiter<
    IpAddr,
    DefaultKeyedStateStore<IpAddr>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// How many distinct IPs a client's per-IP limiter tracks before it drops
/// the ones whose buckets are full again.
const PER_IP_SWEEP_THRESHOLD: usize = 10_000;

/// A client's limits, in requests per minute; `None` means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub per_key: Option<u32>,
    pub per_ip: Option<u32>,
}

/// What the `RateLimit-*` headers report: the tighter of the limits that
/// apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitStatus {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the quota is whole again.
    pub reset_seconds: u64,
}

pub static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
pub static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
pub static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Sets `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`.
pub fn set_headers(headers: &mut HeaderMap, status: RateLimitStatus) {
    headers.insert(RATELIMIT_LIMIT.clone(), HeaderValue::from(status.limit));
    headers.insert(
        RATELIMIT_REMAINING.clone(),
        HeaderValue::from(status.remaining),
    );
    headers.insert(
        RATELIMIT_RESET.clone(),
        HeaderValue::from(status.reset_seconds),
    );
}

struct ClientLimiters {
    limits: Limits,
    per_key: Option<DirectLimiter>,
    per_ip: Option<PerIpLimiter>,
}

fn quota(per_minute: u32) -> Option<Quota> {
    NonZeroU32::new(per_minute).map(Quota::per_minute)
}

impl ClientLimiters {
    fn new(limits: Limits) -> ClientLimiters {
        ClientLimiters {
            limits,
            per_key: limits
                .per_key
                .and_then(quota)
                .map(|q| governor::RateLimiter::direct(q).with_middleware()),
            per_ip: limits
                .per_ip
                .and_then(quota)
                .map(|q| governor::RateLimiter::keyed(q).with_middleware()),
        }
    }
}

#[derive(Default)]
pub struct RateLimiter {
    clients: RwLock<HashMap<String, Arc<ClientLimiters>>>,
    clock: DefaultClock,
}

fn seconds_ceil(duration: std::time::Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

impl RateLimiter {
    pub fn new() -> RateLimiter {
        RateLimiter::default()
    }

    fn limiters(&self, client_id: &str, limits: Limits) -> Arc<ClientLimiters> {
        // Every request of a limited client comes here: a shared read lock
        // in the common case, the write lock only to create or replace.
        if let Some(existing) = self
            .clients
            .read()
            .expect("rate limiter lock")
            .get(client_id)
            .filter(|existing| existing.limits == limits)
        {
            return Arc::clone(existing);
        }
        let mut clients = self.clients.write().expect("rate limiter lock");
        match clients.get(client_id) {
            Some(existing) if existing.limits == limits => Arc::clone(existing),
            _ => {
                let fresh = Arc::new(ClientLimiters::new(limits));
                clients.insert(client_id.to_owned(), Arc::clone(&fresh));
                fresh
            }
        }
    }

    fn status(&self, snapshot: &StateSnapshot) -> RateLimitStatus {
        let quota = snapshot.quota();
        let limit = quota.burst_size().get();
        let remaining = snapshot.remaining_burst_capacity();
        let refill = quota.replenish_interval() * (limit - remaining.min(limit));
        RateLimitStatus {
            limit,
            remaining,
            reset_seconds: seconds_ceil(refill),
        }
    }

    fn refused(&self, limit: u32, not_until: &NotUntil<QuantaInstant>) -> AuthError {
        let wait = not_until.wait_time_from(self.clock.now());
        AuthError::RateLimited {
            limit,
            retry_after_seconds: seconds_ceil(wait).max(1),
        }
    }

    /// Counts one request of `client_id` from `ip`. `Ok(None)`: no limit
    /// applies; `Ok(Some(status))`: allowed, with what is left;
    /// `Err(RateLimited)`: refused.
    pub fn check(
        &self,
        client_id: &str,
        limits: Limits,
        ip: Option<IpAddr>,
    ) -> Result<Option<RateLimitStatus>, AuthError> {
        if limits == Limits::default() {
            return Ok(None);
        }
        let limiters = self.limiters(client_id, limits);
        let mut tightest: Option<RateLimitStatus> = None;
        let mut keep = |status: RateLimitStatus| {
            if tightest.is_none_or(|t| status.remaining < t.remaining) {
                tightest = Some(status);
            }
        };
        if let (Some(per_ip), Some(ip)) = (&limiters.per_ip, ip) {
            if per_ip.len() > PER_IP_SWEEP_THRESHOLD {
                per_ip.retain_recent();
            }
            let limit = limits.per_ip.unwrap_or_default();
            let snapshot = per_ip
                .check_key(&ip)
                .map_err(|not_until| self.refused(limit, &not_until))?;
            keep(self.status(&snapshot));
        }
        if let Some(per_key) = &limiters.per_key {
            let limit = limits.per_key.unwrap_or_default();
            let snapshot = per_key
                .check()
                .map_err(|not_until| self.refused(limit, &not_until))?;
            keep(self.status(&snapshot));
        }
        Ok(tightest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixth_request_of_five_per_minute_is_refused() {
        let limiter = RateLimiter::new();
        let limits = Limits {
            per_key: Some(5),
            per_ip: None,
        };
        for expected_remaining in (0..5).rev() {
            let status = limiter.check("c", limits, None).unwrap().unwrap();
            assert_eq!(status.limit, 5);
            assert_eq!(status.remaining, expected_remaining);
        }
        match limiter.check("c", limits, None) {
            Err(AuthError::RateLimited {
                limit: 5,
                retry_after_seconds,
            }) => {
                assert!(
                    (1..=12).contains(&retry_after_seconds),
                    "{retry_after_seconds}"
                );
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Another client has its own budget.
        assert!(limiter.check("d", limits, None).is_ok());
    }

    #[test]
    fn per_ip_limits_are_per_ip() {
        let limiter = RateLimiter::new();
        let limits = Limits {
            per_key: Some(100),
            per_ip: Some(2),
        };
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limiter.check("c", limits, Some(a)).is_ok());
        assert!(limiter.check("c", limits, Some(a)).is_ok());
        assert!(limiter.check("c", limits, Some(a)).is_err());
        let status = limiter.check("c", limits, Some(b)).unwrap().unwrap();
        assert_eq!((status.limit, status.remaining), (2, 1));
    }

    #[test]
    fn no_limits_no_status() {
        assert_eq!(
            RateLimiter::new()
                .check("c", Limits::default(), None)
                .unwrap(),
            None
        );
    }
}
