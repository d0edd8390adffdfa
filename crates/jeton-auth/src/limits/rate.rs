//! Per-key and per-(key, client IP) rate limits.
//!
//! A limit of N per minute, in one process, allows a burst of N and refills
//! one request every 60/N seconds (governor's GCRA); shared through Redis,
//! it is N in any minute (see [`crate::limits`](super)). A change of a client's
//! limits applies from its next request.

use std::{net::IpAddr, sync::Arc};

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use super::{LimitBackend, Rate, RateLimitStatus};
use crate::{AuthError, client_ip::IpKey};

/// A client's limits, in requests per minute; `None` means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub per_key: Option<u32>,
    pub per_ip: Option<u32>,
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

/// Per-key and per-IP limits of clients, counted by the app's
/// [`LimitBackend`]: in this process, or for the fleet.
#[derive(Clone, Default)]
pub(crate) struct RateLimiter {
    limits: Arc<LimitBackend>,
}

impl RateLimiter {
    #[cfg(test)]
    fn new() -> RateLimiter {
        RateLimiter::default()
    }

    pub(crate) fn with_backend(limits: Arc<LimitBackend>) -> RateLimiter {
        RateLimiter { limits }
    }

    /// Counts one request of `client_id` from `ip`. `Ok(None)`: no limit
    /// applies; `Ok(Some(status))`: allowed, with what is left (the
    /// tighter of the limits); `Err(RateLimited)`: refused.
    pub(crate) async fn check(
        &self,
        client_id: &str,
        limits: Limits,
        ip: Option<IpAddr>,
    ) -> Result<Option<RateLimitStatus>, AuthError> {
        let mut tightest: Option<RateLimitStatus> = None;
        let mut keep = |status: RateLimitStatus| {
            if tightest.is_none_or(|t| status.remaining < t.remaining) {
                tightest = Some(status);
            }
        };
        // The per-IP limit first, and a refusal returns at once: a request
        // one address is refused never spends the key's limit, which all
        // addresses share.
        if let (Some(rate), Some(ip)) = (limits.per_ip.and_then(Rate::per_minute), ip) {
            let key = format!("ip:{client_id}:{}", IpKey::of(ip));
            keep(self.limits.take(&key, rate).await?);
        }
        if let Some(rate) = limits.per_key.and_then(Rate::per_minute) {
            keep(self.limits.take(&format!("key:{client_id}"), rate).await?);
        }
        Ok(tightest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sixth_request_of_five_per_minute_is_refused() {
        let limiter = RateLimiter::new();
        let limits = Limits {
            per_key: Some(5),
            per_ip: None,
        };
        for expected_remaining in (0..5).rev() {
            let status = limiter.check("c", limits, None).await.unwrap().unwrap();
            assert_eq!(status.limit, 5);
            assert_eq!(status.remaining, expected_remaining);
        }
        match limiter.check("c", limits, None).await {
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
        assert!(limiter.check("d", limits, None).await.is_ok());
    }

    #[tokio::test]
    async fn per_ip_limits_are_per_ip() {
        let limiter = RateLimiter::new();
        let limits = Limits {
            per_key: Some(100),
            per_ip: Some(2),
        };
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limiter.check("c", limits, Some(a)).await.is_ok());
        assert!(limiter.check("c", limits, Some(a)).await.is_ok());
        assert!(limiter.check("c", limits, Some(a)).await.is_err());
        let status = limiter.check("c", limits, Some(b)).await.unwrap().unwrap();
        assert_eq!((status.limit, status.remaining), (2, 1));
    }

    #[tokio::test]
    async fn per_ip_limits_count_an_ipv6_client_by_its_64() {
        let limiter = RateLimiter::new();
        let limits = Limits {
            per_key: None,
            per_ip: Some(2),
        };
        let ip = |text: &str| Some(text.parse::<IpAddr>().unwrap());
        assert!(
            limiter
                .check("c", limits, ip("2001:db8:0:1::1"))
                .await
                .is_ok()
        );
        assert!(
            limiter
                .check("c", limits, ip("2001:db8:0:1::2"))
                .await
                .is_ok()
        );
        assert!(
            limiter
                .check("c", limits, ip("2001:db8:0:1:ffff::3"))
                .await
                .is_err(),
            "a third address of the same /64"
        );
        assert!(
            limiter
                .check("c", limits, ip("2001:db8:0:2::1"))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn no_limits_no_status() {
        assert_eq!(
            RateLimiter::new()
                .check("c", Limits::default(), None)
                .await
                .unwrap(),
            None
        );
    }
}
