//! Failed authentications per client IP: after too many in a window, the
//! IP's requests are refused (429) before their tokens are looked at, so a
//! flood of forged tokens from one address stops reaching the store.
//!
//! The failures are counted by the app's [`LimitBackend`] (in this process,
//! or for the fleet). Which IPs are refused is remembered here, in a bounded
//! [`quick_cache`] table, as soon as one of their failures reaches the
//! limit: a request's check never waits for a shared backend, and a process
//! learns of an IP that other processes refuse at its own next failure from
//! it. Both tables are bounded and keep entries that are used again over
//! one-off ones, so a flood of new addresses cannot evict an address that
//! keeps failing.

use std::{
    net::IpAddr,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use metrics::Counter;
use quick_cache::sync::Cache;

use super::{LimitBackend, Window, seconds_ceil};
use crate::{AuthError, Clock, client_ip::IpKey};

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

/// Refused IPs remembered at once.
const CAPACITY: usize = 16_384;

pub(crate) struct FailedAuth {
    limit: FailedAuthLimit,
    limits: Arc<LimitBackend>,
    /// IPs refused until then: learnt when one of their failures reaches
    /// the limit, so that checking costs no round trip to a shared backend.
    refused_until: Cache<IpKey, Instant>,
    /// Registered on first use (after the app has installed its recorder).
    refused: OnceLock<Counter>,
    /// The name of the rate-limited counter, with the app's prefix.
    metric: String,
    /// What `refused_until` is read against.
    clock: Clock,
}

impl FailedAuth {
    pub(crate) fn new(
        limit: FailedAuthLimit,
        limits: Arc<LimitBackend>,
        metric: String,
        clock: Clock,
    ) -> FailedAuth {
        FailedAuth {
            limit,
            limits,
            refused_until: Cache::new(CAPACITY),
            refused: OnceLock::new(),
            metric,
            clock,
        }
    }

    fn window(&self) -> Window {
        Window {
            max: self.limit.failures,
            window: self.limit.window,
        }
    }

    /// Refuses an IP that has failed too often in its window.
    pub(crate) fn check(&self, ip: Option<IpAddr>) -> Result<(), AuthError> {
        let Some(until) = ip.and_then(|ip| self.refused_until.get(&IpKey::of(ip))) else {
            return Ok(());
        };
        let left = until.saturating_duration_since(self.clock.instant());
        if left.is_zero() {
            return Ok(());
        }
        self.refused
            .get_or_init(|| metrics::counter!(self.metric.clone(), "reason" => "failed_auth"))
            .increment(1);
        Err(AuthError::RateLimited {
            limit: self.limit.failures,
            retry_after_seconds: seconds_ceil(left).max(1),
        })
    }

    /// Counts a failure of `ip`.
    pub(crate) async fn count(&self, ip: Option<IpAddr>) {
        let Some(ip) = ip.map(IpKey::of) else {
            return;
        };
        let window = self.window();
        let failures = self.limits.fail(&format!("auth:{ip}"), window).await;
        if failures.exhausted(window) {
            self.refused_until
                .insert(ip, self.clock.instant() + failures.window_left);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(failures: u32, window: Duration) -> FailedAuth {
        limit_on(Clock::system(), failures, window)
    }

    fn limit_on(clock: Clock, failures: u32, window: Duration) -> FailedAuth {
        FailedAuth::new(
            FailedAuthLimit { failures, window },
            Arc::new(LimitBackend::local().with_clock(clock.clone())),
            "rate_limited_total".into(),
            clock,
        )
    }

    async fn fail(tracker: &FailedAuth, ip: IpAddr) -> Result<(), AuthError> {
        tracker.check(Some(ip))?;
        tracker.count(Some(ip)).await;
        Ok(())
    }

    #[tokio::test]
    async fn an_ip_is_refused_after_its_limit_and_others_are_not() {
        let tracker = limit(3, Duration::from_secs(60));
        let (noisy, quiet) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..3 {
            fail(&tracker, noisy).await.unwrap();
        }
        assert!(matches!(
            tracker.check(Some(noisy)),
            Err(AuthError::RateLimited {
                limit: 3,
                retry_after_seconds: 59 | 60
            })
        ));
        assert!(tracker.check(Some(quiet)).is_ok());
        assert!(tracker.check(None).is_ok());
    }

    #[tokio::test]
    async fn a_window_that_has_passed_starts_again() {
        let clock = Clock::manual(time::OffsetDateTime::UNIX_EPOCH);
        let tracker = limit_on(clock.clone(), 2, Duration::from_secs(60));
        let ip = "2001:db8::1".parse().unwrap();
        fail(&tracker, ip).await.unwrap();
        fail(&tracker, ip).await.unwrap();
        clock.advance(Duration::from_secs(59));
        assert!(tracker.check(Some(ip)).is_err());
        clock.advance(Duration::from_secs(1));
        fail(&tracker, ip).await.unwrap();
        assert!(
            tracker.check(Some(ip)).is_ok(),
            "one failure in the new window"
        );
    }

    #[tokio::test]
    async fn a_flood_of_new_addresses_does_not_evict_one_that_keeps_failing() {
        let tracker = limit(50, Duration::from_secs(60));
        let noisy: IpAddr = "198.51.100.9".parse().unwrap();
        for _ in 0..49 {
            fail(&tracker, noisy).await.unwrap();
        }
        // Four times as many one-off addresses as the refusals table holds.
        for n in 0..(CAPACITY * 4) as u32 {
            fail(&tracker, IpAddr::from((0x0a00_0000 | n).to_be_bytes()))
                .await
                .unwrap();
        }
        fail(&tracker, noisy).await.unwrap();
        assert!(tracker.check(Some(noisy)).is_err());
    }

    #[tokio::test]
    async fn ipv4_and_its_mapped_ipv6_form_are_one_address() {
        let tracker = limit(2, Duration::from_secs(60));
        fail(&tracker, "192.0.2.7".parse().unwrap()).await.unwrap();
        fail(&tracker, "::ffff:192.0.2.7".parse().unwrap())
            .await
            .unwrap();
        assert!(tracker.check(Some("192.0.2.7".parse().unwrap())).is_err());
    }

    #[tokio::test]
    async fn an_ipv6_64_is_one_client() {
        let tracker = limit(3, Duration::from_secs(60));
        for n in 1..=3u16 {
            let ip = IpAddr::from([0x2001, 0xdb8, 0, 7, n, 0, 0, n]);
            fail(&tracker, ip).await.unwrap();
        }
        assert!(
            tracker
                .check(Some("2001:db8:0:7::99".parse().unwrap()))
                .is_err()
        );
        assert!(
            tracker
                .check(Some("2001:db8:0:8::1".parse().unwrap()))
                .is_ok()
        );
    }
}
