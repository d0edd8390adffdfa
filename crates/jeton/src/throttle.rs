//! Throttles for the two places where guessing pays: login (per email and
//! per client IP, counting failures only) and registration (per client IP).
//!
//! Login failures are counted in a window: after `max_failures` failures in
//! `window`, further attempts for that email (or from that IP) get 429 with
//! `Retry-After` until the window that started with the first failure ends.
//! A success clears the email's count. Lockout is therefore bounded by one
//! window: it slows guessing to a crawl but can never lock an owner out for
//! longer than that. Counters live in a bounded `moka` cache that forgets
//! them when their window ends.

use std::{
    net::IpAddr,
    num::NonZeroU32,
    time::{Duration, Instant},
};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};

#[derive(Debug, Clone, Copy)]
pub struct ThrottleSettings {
    pub window: Duration,
    pub failures_per_email: u32,
    pub failures_per_ip: u32,
    pub registrations_per_ip_per_hour: u32,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            window: Duration::from_secs(15 * 60),
            failures_per_email: 10,
            failures_per_ip: 100,
            registrations_per_ip_per_hour: 20,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

/// Failures per key within a window.
struct FailureCounter {
    failures: moka::sync::Cache<String, Failures>,
    max: u32,
    window: Duration,
}

impl FailureCounter {
    fn new(max: u32, window: Duration) -> FailureCounter {
        FailureCounter {
            failures: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(window)
                .build(),
            max,
            window,
        }
    }

    /// `Err(wait)` while the key has used up its failures.
    fn check(&self, key: &str) -> Result<(), Duration> {
        match self.failures.get(key) {
            Some(f) if f.count >= self.max => Err(self
                .window
                .saturating_sub(f.since.elapsed())
                .max(Duration::from_secs(1))),
            _ => Ok(()),
        }
    }

    fn record(&self, key: &str) {
        self.failures
            .entry(key.to_owned())
            .and_upsert_with(|existing| match existing.map(|e| e.into_value()) {
                Some(f) if f.since.elapsed() < self.window => Failures {
                    count: f.count + 1,
                    since: f.since,
                },
                _ => Failures {
                    count: 1,
                    since: Instant::now(),
                },
            });
    }

    fn clear(&self, key: &str) {
        self.failures.invalidate(key);
    }
}

pub struct Throttle {
    per_email: FailureCounter,
    per_ip: FailureCounter,
    registrations: DefaultKeyedRateLimiter<IpAddr>,
    registrations_per_hour: u32,
}

fn seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// Too many attempts: come back in this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

/// A refused attempt: the limit that was reached (for `RateLimit-Limit`)
/// and when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub limit: u32,
    pub retry_after: RetryAfter,
}

impl Throttle {
    pub fn new(settings: ThrottleSettings) -> Throttle {
        let per_hour =
            NonZeroU32::new(settings.registrations_per_ip_per_hour.max(1)).expect("at least one");
        Throttle {
            per_email: FailureCounter::new(settings.failures_per_email, settings.window),
            per_ip: FailureCounter::new(settings.failures_per_ip, settings.window),
            registrations: RateLimiter::keyed(Quota::per_hour(per_hour)),
            registrations_per_hour: per_hour.get(),
        }
    }

    /// Before a login is checked: is this email or IP throttled? The email
    /// is looked at first, whether or not an account has it, so a
    /// throttled unknown email gets the same answer as a throttled known one.
    pub fn check_login(&self, email: &str, ip: Option<IpAddr>) -> Result<(), Throttled> {
        let refused = |counter: &FailureCounter, wait| Throttled {
            limit: counter.max,
            retry_after: RetryAfter(seconds(wait)),
        };
        self.per_email
            .check(email)
            .map_err(|wait| refused(&self.per_email, wait))?;
        if let Some(ip) = ip {
            self.per_ip
                .check(&ip.to_string())
                .map_err(|wait| refused(&self.per_ip, wait))?;
        }
        Ok(())
    }

    pub fn login_failed(&self, email: &str, ip: Option<IpAddr>) {
        self.per_email.record(email);
        if let Some(ip) = ip {
            self.per_ip.record(&ip.to_string());
        }
    }

    pub fn login_succeeded(&self, email: &str) {
        self.per_email.clear(email);
    }

    /// Counts a registration attempt from `ip`.
    pub fn check_registration(&self, ip: Option<IpAddr>) -> Result<(), Throttled> {
        let Some(ip) = ip else { return Ok(()) };
        if self.registrations.len() > 100_000 {
            self.registrations.retain_recent();
        }
        self.registrations.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            Throttled {
                limit: self.registrations_per_hour,
                retry_after: RetryAfter(seconds(wait).max(1)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(window: Duration) -> ThrottleSettings {
        ThrottleSettings {
            window,
            failures_per_email: 3,
            failures_per_ip: 5,
            registrations_per_ip_per_hour: 2,
        }
    }

    #[test]
    fn failures_per_email_then_the_window_ends() {
        let throttle = Throttle::new(settings(Duration::from_millis(300)));
        for _ in 0..3 {
            assert!(throttle.check_login("a@example.com", None).is_ok());
            throttle.login_failed("a@example.com", None);
        }
        let refused = throttle.check_login("a@example.com", None).unwrap_err();
        assert_eq!(refused.retry_after, RetryAfter(1));
        assert_eq!(refused.limit, 3);
        assert!(
            throttle.check_login("b@example.com", None).is_ok(),
            "other accounts are not affected"
        );
        std::thread::sleep(Duration::from_millis(350));
        assert!(throttle.check_login("a@example.com", None).is_ok());
    }

    #[test]
    fn success_clears_the_email() {
        let throttle = Throttle::new(settings(Duration::from_secs(60)));
        throttle.login_failed("a@example.com", None);
        throttle.login_failed("a@example.com", None);
        throttle.login_succeeded("a@example.com");
        throttle.login_failed("a@example.com", None);
        assert!(throttle.check_login("a@example.com", None).is_ok());
    }

    #[test]
    fn failures_per_ip_span_emails() {
        let throttle = Throttle::new(settings(Duration::from_secs(60)));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for n in 0..5 {
            throttle.login_failed(&format!("user{n}@example.com"), Some(ip));
        }
        let refused = throttle
            .check_login("new@example.com", Some(ip))
            .unwrap_err();
        assert_eq!(refused.limit, 5, "the per-IP limit is the one reported");
        assert!(
            throttle
                .check_login("new@example.com", Some("192.0.2.8".parse().unwrap()))
                .is_ok()
        );
    }

    #[test]
    fn registrations_per_ip() {
        let throttle = Throttle::new(settings(Duration::from_secs(60)));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(throttle.check_registration(Some(ip)).is_ok());
        assert!(throttle.check_registration(Some(ip)).is_ok());
        let refused = throttle.check_registration(Some(ip)).unwrap_err();
        assert_eq!(refused.limit, 2);
        // One registration is earned back every half hour at 2 per hour.
        assert!((1..=1800).contains(&refused.retry_after.0));
        assert!(
            throttle
                .check_registration(Some("192.0.2.8".parse().unwrap()))
                .is_ok()
        );
    }
}
