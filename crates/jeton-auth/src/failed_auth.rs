//! Failed authentications per client IP: after too many in a window, the
//! IP's requests are refused (429) before their tokens are looked at, so a
//! flood of forged tokens from one address stops reaching the store.
//!
//! The counts live in a bounded [`quick_cache`] table keyed by IP, so a
//! flood from many addresses cannot grow memory. Its eviction policy keeps
//! entries that are used again over one-off ones: a flood of new addresses
//! evicts other new addresses, while an address that keeps failing keeps its
//! count (and its refusal).

use std::{
    net::IpAddr,
    sync::{Arc, Mutex, OnceLock, PoisonError},
    time::Instant,
};

use metrics::Counter;
use quick_cache::sync::Cache;

use crate::{AuthError, axum::FailedAuthLimit};

/// IPs tracked at once.
const CAPACITY: usize = 16_384;

/// One IP's failures in its current window.
struct Window {
    started: Instant,
    failures: u32,
}

pub(crate) struct FailedAuth {
    limit: FailedAuthLimit,
    windows: Cache<IpAddr, Arc<Mutex<Window>>>,
    /// Registered on first use (after the app has installed its recorder).
    refused: OnceLock<Counter>,
    /// The name of the rate-limited counter, with the app's prefix.
    metric: String,
}

impl FailedAuth {
    pub(crate) fn new(limit: FailedAuthLimit, metric: String) -> FailedAuth {
        FailedAuth {
            limit,
            windows: Cache::new(CAPACITY),
            refused: OnceLock::new(),
            metric,
        }
    }

    /// Refuses an IP that has failed too often in its window.
    pub(crate) fn check(&self, ip: Option<IpAddr>) -> Result<(), AuthError> {
        self.check_at(ip, Instant::now())
    }

    fn check_at(&self, ip: Option<IpAddr>, now: Instant) -> Result<(), AuthError> {
        let Some(window) = ip.and_then(|ip| self.windows.get(&ip.to_canonical())) else {
            return Ok(());
        };
        let elapsed = {
            // A poisoned window only held a count: carry on with it.
            let window = window.lock().unwrap_or_else(PoisonError::into_inner);
            let elapsed = now.saturating_duration_since(window.started);
            if window.failures < self.limit.failures || elapsed >= self.limit.window {
                return Ok(());
            }
            elapsed
        };
        self.refused
            .get_or_init(|| metrics::counter!(self.metric.clone(), "reason" => "failed_auth"))
            .increment(1);
        let left = self.limit.window.saturating_sub(elapsed);
        Err(AuthError::RateLimited {
            limit: self.limit.failures,
            retry_after_seconds: left.as_secs_f64().ceil().max(1.0) as u64,
        })
    }

    /// Counts a failure of `ip`.
    pub(crate) fn count(&self, ip: Option<IpAddr>) {
        self.count_at(ip, Instant::now());
    }

    fn count_at(&self, ip: Option<IpAddr>, now: Instant) {
        let Some(ip) = ip else { return };
        let new = || {
            Arc::new(Mutex::new(Window {
                started: now,
                failures: 0,
            }))
        };
        let window = self
            .windows
            .get_or_insert_with(&ip.to_canonical(), || {
                Ok::<_, std::convert::Infallible>(new())
            })
            .unwrap_or_else(|never| match never {});
        let mut window = window.lock().unwrap_or_else(PoisonError::into_inner);
        if now.saturating_duration_since(window.started) >= self.limit.window {
            *window = Window {
                started: now,
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limit(failures: u32, window: Duration) -> FailedAuth {
        FailedAuth::new(
            FailedAuthLimit { failures, window },
            "rate_limited_total".into(),
        )
    }

    fn fail(tracker: &FailedAuth, ip: IpAddr, now: Instant) -> Result<(), AuthError> {
        tracker.check_at(Some(ip), now)?;
        tracker.count_at(Some(ip), now);
        Ok(())
    }

    #[test]
    fn an_ip_is_refused_after_its_limit_and_others_are_not() {
        let tracker = limit(3, Duration::from_secs(60));
        let now = Instant::now();
        let (noisy, quiet) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..3 {
            fail(&tracker, noisy, now).unwrap();
        }
        assert!(matches!(
            tracker.check_at(Some(noisy), now + Duration::from_secs(20)),
            Err(AuthError::RateLimited {
                limit: 3,
                retry_after_seconds: 40
            })
        ));
        assert!(tracker.check_at(Some(quiet), now).is_ok());
        assert!(tracker.check_at(None, now).is_ok());
    }

    #[test]
    fn a_window_that_has_passed_starts_again() {
        let tracker = limit(2, Duration::from_secs(60));
        let ip = "2001:db8::1".parse().unwrap();
        let now = Instant::now();
        fail(&tracker, ip, now).unwrap();
        fail(&tracker, ip, now).unwrap();
        assert!(tracker.check_at(Some(ip), now).is_err());
        let later = now + Duration::from_secs(61);
        fail(&tracker, ip, later).unwrap();
        assert!(
            tracker.check_at(Some(ip), later).is_ok(),
            "one failure in the new window"
        );
    }

    #[test]
    fn a_flood_of_new_addresses_does_not_evict_one_that_keeps_failing() {
        let tracker = limit(50, Duration::from_secs(60));
        let now = Instant::now();
        let noisy: IpAddr = "198.51.100.9".parse().unwrap();
        for _ in 0..49 {
            fail(&tracker, noisy, now).unwrap();
        }
        // Four times as many one-off addresses as the table holds.
        for n in 0..(CAPACITY * 4) as u32 {
            fail(&tracker, IpAddr::from((0x0a00_0000 | n).to_be_bytes()), now).unwrap();
        }
        fail(&tracker, noisy, now).unwrap();
        assert!(tracker.check_at(Some(noisy), now).is_err());
    }

    #[test]
    fn ipv4_and_its_mapped_ipv6_form_are_one_address() {
        let tracker = limit(2, Duration::from_secs(60));
        let now = Instant::now();
        fail(&tracker, "192.0.2.7".parse().unwrap(), now).unwrap();
        fail(&tracker, "::ffff:192.0.2.7".parse().unwrap(), now).unwrap();
        assert!(
            tracker
                .check_at(Some("192.0.2.7".parse().unwrap()), now)
                .is_err()
        );
    }
}
