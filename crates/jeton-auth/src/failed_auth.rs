//! Failed authentications per client IP: after too many in a window, the
//! IP's requests are refused (429) before their tokens are looked at, so a
//! flood of forged tokens from one address stops reaching the store.

use std::{
    net::IpAddr,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicI64, AtomicU32, Ordering},
    },
    time::Duration,
};

use metrics::Counter;

use crate::{AuthError, axum::FailedAuthLimit, clock::now_nanos};

/// How many client IPs are tracked at once. Past that the cache drops the
/// least useful entries (those seen once), so a flood from many addresses
/// cannot grow memory, while an address that keeps failing stays tracked.
/// Small enough to stay in the processor's cache: every refused token from
/// a new address costs a lookup and an insert here.
const TRACKED_IPS: usize = 16_384;

/// One IP's failures in its current window. Atomics, so that counting a
/// failure of an IP already tracked is an increment, not a cache write.
struct Window {
    /// When the window started, in Unix nanoseconds.
    started: AtomicI64,
    failures: AtomicU32,
}

impl Window {
    fn new(now: i64) -> Window {
        Window {
            started: AtomicI64::new(now),
            failures: AtomicU32::new(1),
        }
    }

    fn age(&self, now: i64) -> i64 {
        now.saturating_sub(self.started.load(Ordering::Relaxed))
    }

    /// Counts one failure; returns the failures in the window so far.
    fn count(&self, now: i64, window: i64) -> u32 {
        let started = self.started.load(Ordering::Relaxed);
        // An expired window starts again at one; if two failures race to
        // restart it, the loser counts in the new window.
        if now.saturating_sub(started) >= window
            && self
                .started
                .compare_exchange(started, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.failures.store(1, Ordering::Relaxed);
            1
        } else {
            self.failures
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1)
        }
    }
}

/// What [`FailedAuth::check`] saw of an IP, for [`FailedAuth::count`].
#[derive(Default)]
pub(crate) struct Seen {
    ip: Option<IpAddr>,
    /// Whether the table was asked (and `window` is its answer).
    looked_up: bool,
    window: Option<Arc<Window>>,
}

impl Seen {
    pub(crate) fn ip(&self) -> Option<IpAddr> {
        self.ip
    }
}

pub(crate) struct FailedAuth {
    limit: FailedAuthLimit,
    windows: quick_cache::sync::Cache<IpAddr, Arc<Window>>,
    /// When an IP last reached the limit (Unix nanoseconds). If that is a
    /// whole window ago, no IP can be over the limit now, and a request is
    /// let through without a lookup: the usual case costs one atomic read.
    last_limit_reached: AtomicI64,
    /// Registered on first use (after the app has installed its recorder),
    /// then kept: a flood from one IP is refused here on every request.
    refused: OnceLock<Counter>,
}

fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

impl FailedAuth {
    pub(crate) fn new(limit: FailedAuthLimit) -> FailedAuth {
        FailedAuth {
            limit,
            windows: quick_cache::sync::Cache::new(TRACKED_IPS),
            last_limit_reached: AtomicI64::new(i64::MIN),
            refused: OnceLock::new(),
        }
    }

    /// Refuses an IP that has failed too often in its window.
    pub(crate) fn check(&self, ip: Option<IpAddr>) -> Result<Seen, AuthError> {
        let Some(ip) = ip else {
            return Ok(Seen::default());
        };
        let (now, length) = (now_nanos(), nanos(self.limit.window));
        // An IP over the limit reached it less than a window ago (its window
        // started before that and has not ended).
        if now.saturating_sub(self.last_limit_reached.load(Ordering::Relaxed)) >= length {
            return Ok(Seen {
                ip: Some(ip),
                ..Seen::default()
            });
        }
        let window = self.windows.get(&ip);
        if let Some(current) = &window {
            let age = current.age(now);
            if age < length && current.failures.load(Ordering::Relaxed) >= self.limit.failures {
                self.refused
                    .get_or_init(
                        || metrics::counter!("jeton_rate_limited_total", "reason" => "failed_auth"),
                    )
                    .increment(1);
                let wait = Duration::from_nanos(u64::try_from(length - age).unwrap_or(0));
                return Err(AuthError::RateLimited {
                    limit: self.limit.failures,
                    retry_after_seconds: wait.as_secs().max(1),
                });
            }
        }
        Ok(Seen {
            ip: Some(ip),
            looked_up: true,
            window,
        })
    }

    /// Counts a failure of the IP [`FailedAuth::check`] saw. The first
    /// failures of a new IP at the same instant may count once, which a
    /// limit in the hundreds can afford.
    pub(crate) fn count(&self, seen: &Seen) {
        let Some(ip) = seen.ip else { return };
        let now = now_nanos();
        let window = match &seen.window {
            Some(window) => Some(Arc::clone(window)),
            None if !seen.looked_up => self.windows.get(&ip),
            None => None,
        };
        let failures = match window {
            Some(window) => window.count(now, nanos(self.limit.window)),
            None => {
                self.windows.insert(ip, Arc::new(Window::new(now)));
                1
            }
        };
        if failures >= self.limit.failures {
            self.last_limit_reached.fetch_max(now, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(failures: u32, window: Duration) -> FailedAuth {
        FailedAuth::new(FailedAuthLimit { failures, window })
    }

    fn fail(tracker: &FailedAuth, ip: IpAddr) -> Result<(), AuthError> {
        let seen = tracker.check(Some(ip))?;
        tracker.count(&seen);
        Ok(())
    }

    #[test]
    fn an_ip_is_refused_after_its_limit_and_others_are_not() {
        let tracker = limit(3, Duration::from_secs(60));
        let (noisy, quiet) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..3 {
            fail(&tracker, noisy).unwrap();
        }
        assert!(matches!(
            tracker.check(Some(noisy)),
            Err(AuthError::RateLimited {
                limit: 3,
                retry_after_seconds: 1..=60
            })
        ));
        assert!(tracker.check(Some(quiet)).is_ok());
        assert!(tracker.check(None).is_ok());
    }

    #[test]
    fn a_window_that_has_passed_starts_again() {
        let tracker = limit(2, Duration::from_millis(50));
        let ip = "2001:db8::1".parse().unwrap();
        fail(&tracker, ip).unwrap();
        fail(&tracker, ip).unwrap();
        assert!(tracker.check(Some(ip)).is_err());
        std::thread::sleep(Duration::from_millis(80));
        fail(&tracker, ip).unwrap();
        assert!(
            tracker.check(Some(ip)).is_ok(),
            "one failure in the new window"
        );
    }

    #[test]
    fn many_addresses_stay_bounded() {
        let tracker = limit(500, Duration::from_secs(60));
        for n in 0..(TRACKED_IPS as u32 * 4) {
            fail(&tracker, IpAddr::from(n.to_be_bytes())).unwrap();
        }
        assert!(tracker.windows.len() <= TRACKED_IPS);
    }
}
