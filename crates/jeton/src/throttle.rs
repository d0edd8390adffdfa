//! Throttles for the two places where guessing pays: login (counting
//! failures only) and registration (per client IP).
//!
//! Login failures are counted per (email, client IP), per email across all
//! IPs, and per client IP, each in a window that starts with its first
//! failure (OWASP's Authentication Cheat Sheet, "Login Throttling", and its
//! Blocking Brute Force Attacks page: see `SECURITY.md`):
//! - 10 per (email, IP) in 15 minutes: someone guessing from one address is
//!   slowed to a crawl, while the owner, from anywhere else, is not;
//! - 100 per email across all IPs in 15 minutes, and past 20 an exponential
//!   backoff (1, 2, 4, … up to 30 s after the latest failure): a guess
//!   spread over many addresses is still slowed, and locking an owner out
//!   from elsewhere costs an attacker a steady stream of requests rather
//!   than ten;
//! - 100 per IP across all emails in 15 minutes: one address trying many
//!   accounts.
//!
//! A success forgets its (email, IP) count, and makes its IP one of the
//! account's own for [`HOME_WINDOW`]: a login from there is not held back by
//! the per-email limits, which other IPs' failures fill. Strangers cannot
//! lock the owner out from where the owner signs in; from there, the
//! (email, IP) and per-IP limits still apply (`SECURITY.md` weighs it).
//! Every count lives in the app's [`LimitBackend`]: in this process, or
//! shared by the fleet through Redis.

use std::{net::IpAddr, sync::Arc, time::Duration};

use jeton_auth::{
    AuthError,
    limits::{Failures, LimitBackend, Rate, Window},
};

#[derive(Debug, Clone, Copy)]
pub struct ThrottleSettings {
    pub window: Duration,
    pub failures_per_email_and_ip: u32,
    pub failures_per_email: u32,
    /// Failures of an email, across IPs, after which each further attempt
    /// waits for the backoff.
    pub backoff_after: u32,
    pub failures_per_ip: u32,
    pub registrations_per_ip_per_hour: u32,
    /// Guest tokens one client IP may obtain per hour (0: no limit).
    pub guest_issuances_per_ip_per_hour: u32,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            window: Duration::from_secs(15 * 60),
            failures_per_email_and_ip: 10,
            failures_per_email: 100,
            backoff_after: 20,
            failures_per_ip: 100,
            registrations_per_ip_per_hour: 20,
            guest_issuances_per_ip_per_hour: 30,
        }
    }
}

/// Secret scanning reports per client IP per minute: GitHub sends a batch
/// of up to 1,000 tokens per report.
pub const SECRET_SCANNING_REPORTS_PER_MINUTE: u32 = 60;

/// The longest backoff between two attempts for one email.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How long an IP that an account logged in from stays one of its own:
/// since its latest successful login there.
pub const HOME_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

/// The marks of an account's own IPs are counted like failures, one
/// window of [`HOME_WINDOW`] each: marked means a count above zero.
const HOME: Window = Window {
    max: 1,
    window: HOME_WINDOW,
};

/// Wrong second-factor codes per staff member: 5 in 15 minutes (API.md
/// §13). A code has a million values and a few are right at any time, so
/// this leaves a guesser about one chance in 100,000 per window.
const MFA: Window = Window {
    max: 5,
    window: Duration::from_secs(15 * 60),
};

pub struct Throttle {
    settings: ThrottleSettings,
    limits: Arc<LimitBackend>,
}

fn seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
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

/// The address a request without one counts as.
fn address(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_canonical().to_string())
}

impl Throttle {
    pub fn new(settings: ThrottleSettings, limits: Arc<LimitBackend>) -> Throttle {
        Throttle { settings, limits }
    }

    fn window(&self, max: u32) -> Window {
        Window {
            max,
            window: self.settings.window,
        }
    }

    fn keys(email: &str, ip: Option<IpAddr>) -> [String; 3] {
        let ip = address(ip);
        [
            format!("login:pair:{ip}:{email}"),
            format!("login:email:{email}"),
            format!("login:ip:{ip}"),
        ]
    }

    /// The mark of `ip` as one of `email`'s own; none for a request
    /// without an address, which all share "unknown".
    fn home_key(email: &str, ip: Option<IpAddr>) -> Option<String> {
        ip.map(|ip| format!("login:home:{}:{email}", address(Some(ip))))
    }

    async fn is_home(&self, email: &str, ip: Option<IpAddr>) -> bool {
        match Throttle::home_key(email, ip) {
            Some(key) => self.limits.failures(&key, HOME).await.count > 0,
            None => false,
        }
    }

    /// Before a login is checked: may this email be tried from this IP now?
    /// Looked at whether or not an account has the email, so a throttled
    /// unknown email gets the same answer as a throttled known one.
    pub async fn check_login(&self, email: &str, ip: Option<IpAddr>) -> Result<(), Throttled> {
        let s = &self.settings;
        let [pair, per_email, per_ip] = Throttle::keys(email, ip);
        let exhausted = |failures: Failures, max: u32| {
            if failures.exhausted(self.window(max)) {
                Err(Throttled {
                    limit: max,
                    retry_after: RetryAfter(seconds(failures.window_left)),
                })
            } else {
                Ok(())
            }
        };
        let (pair, per_email, per_ip, home) = tokio::join!(
            self.limits
                .failures(&pair, self.window(s.failures_per_email_and_ip)),
            self.limits
                .failures(&per_email, self.window(s.failures_per_email)),
            self.limits
                .failures(&per_ip, self.window(s.failures_per_ip)),
            self.is_home(email, ip),
        );
        exhausted(pair, s.failures_per_email_and_ip)?;
        // The per-email limits hold back guesses spread over many IPs; from
        // an IP of the account's own they would only let strangers lock
        // the owner out.
        if !home {
            exhausted(per_email, s.failures_per_email)?;
        }
        if !home && per_email.count >= s.backoff_after {
            let backoff = backoff(per_email.count - s.backoff_after);
            if per_email.since_last < backoff {
                return Err(Throttled {
                    limit: s.failures_per_email,
                    retry_after: RetryAfter(seconds(backoff - per_email.since_last)),
                });
            }
        }
        exhausted(per_ip, s.failures_per_ip)
    }

    pub async fn login_failed(&self, email: &str, ip: Option<IpAddr>) {
        let s = &self.settings;
        let [pair, per_email, per_ip] = Throttle::keys(email, ip);
        tokio::join!(
            self.limits
                .fail(&pair, self.window(s.failures_per_email_and_ip)),
            self.limits
                .fail(&per_email, self.window(s.failures_per_email)),
            self.limits.fail(&per_ip, self.window(s.failures_per_ip)),
        );
    }

    /// The owner got in from this address: its count starts again, and
    /// the address is one of the account's own for [`HOME_WINDOW`] from now.
    pub async fn login_succeeded(&self, email: &str, ip: Option<IpAddr>) {
        let [pair, ..] = Throttle::keys(email, ip);
        self.limits.forgive(&pair).await;
        if let Some(home) = Throttle::home_key(email, ip) {
            // Forgotten first, so that the mark's window starts now.
            self.limits.forgive(&home).await;
            self.limits.fail(&home, HOME).await;
        }
    }

    /// Before a staff member's code is checked: may they try one now?
    pub async fn check_mfa(&self, staff_id: &str) -> Result<(), Throttled> {
        let failures = self.limits.failures(&format!("mfa:{staff_id}"), MFA).await;
        if failures.exhausted(MFA) {
            return Err(Throttled {
                limit: MFA.max,
                retry_after: RetryAfter(seconds(failures.window_left)),
            });
        }
        Ok(())
    }

    /// A wrong (or replayed) code of a staff member.
    pub async fn mfa_failed(&self, staff_id: &str) {
        self.limits.fail(&format!("mfa:{staff_id}"), MFA).await;
    }

    /// Counts a secret scanning report from `ip` (API.md §15): 60 a
    /// minute, checked before its signature, which costs more to check.
    pub async fn check_secret_scanning(&self, ip: Option<IpAddr>) -> Result<(), Throttled> {
        let Some(rate) = Rate::per_minute(SECRET_SCANNING_REPORTS_PER_MINUTE) else {
            return Ok(());
        };
        self.take(&format!("secret-scanning:{}", address(ip)), rate)
            .await
    }

    /// Counts a registration attempt from `ip`.
    pub async fn check_registration(&self, ip: Option<IpAddr>) -> Result<(), Throttled> {
        let Some(ip) = ip else { return Ok(()) };
        let Some(rate) = Rate::per_hour(self.settings.registrations_per_ip_per_hour) else {
            return Ok(());
        };
        self.take(&format!("register:{}", ip.to_canonical()), rate)
            .await
    }

    /// Counts a guest token's issuance to `ip` (API.md §16): an hourly
    /// limit, so that a scraper cannot mint itself a fresh per-guest limit
    /// for every few requests.
    pub async fn check_guest_issuance(&self, ip: Option<IpAddr>) -> Result<(), Throttled> {
        let Some(rate) = Rate::per_hour(self.settings.guest_issuances_per_ip_per_hour) else {
            return Ok(());
        };
        self.take(&format!("guest:issue:{}", address(ip)), rate)
            .await
    }

    /// Takes one from the bucket `key`: refused when it is empty.
    async fn take(&self, key: &str, rate: Rate) -> Result<(), Throttled> {
        match self.limits.take(key, rate).await {
            Err(AuthError::RateLimited {
                limit,
                retry_after_seconds,
            }) => Err(Throttled {
                limit,
                retry_after: RetryAfter(retry_after_seconds),
            }),
            _ => Ok(()),
        }
    }
}

/// 1 s after the first failure past the threshold, doubling with each
/// further one, up to [`MAX_BACKOFF`].
fn backoff(past: u32) -> Duration {
    Duration::from_secs(1u64 << past.min(16)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(window: Duration) -> Throttle {
        throttle_on(jeton_auth::Clock::system(), window)
    }

    fn throttle_on(clock: jeton_auth::Clock, window: Duration) -> Throttle {
        Throttle::new(
            ThrottleSettings {
                window,
                failures_per_email_and_ip: 3,
                failures_per_email: 8,
                backoff_after: 5,
                failures_per_ip: 5,
                registrations_per_ip_per_hour: 2,
                guest_issuances_per_ip_per_hour: 2,
            },
            Arc::new(LimitBackend::local().with_clock(clock)),
        )
    }

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, last]))
    }

    #[tokio::test]
    async fn failures_per_email_and_ip_then_the_window_ends() {
        let clock = jeton_auth::Clock::manual(time::OffsetDateTime::UNIX_EPOCH);
        let throttle = throttle_on(clock.clone(), Duration::from_secs(60));
        for _ in 0..3 {
            assert!(throttle.check_login("a@example.com", ip(1)).await.is_ok());
            throttle.login_failed("a@example.com", ip(1)).await;
        }
        let refused = throttle
            .check_login("a@example.com", ip(1))
            .await
            .unwrap_err();
        assert_eq!(refused.retry_after, RetryAfter(60));
        assert_eq!(refused.limit, 3);
        assert!(
            throttle.check_login("a@example.com", ip(2)).await.is_ok(),
            "the owner, elsewhere, is not locked out"
        );
        assert!(throttle.check_login("b@example.com", ip(1)).await.is_ok());
        clock.advance(Duration::from_secs(59));
        assert_eq!(
            throttle.check_login("a@example.com", ip(1)).await,
            Err(Throttled {
                limit: 3,
                retry_after: RetryAfter(1)
            })
        );
        clock.advance(Duration::from_secs(1));
        assert!(throttle.check_login("a@example.com", ip(1)).await.is_ok());
    }

    #[tokio::test]
    async fn success_clears_the_email_and_ip() {
        let throttle = throttle(Duration::from_secs(60));
        throttle.login_failed("a@example.com", None).await;
        throttle.login_failed("a@example.com", None).await;
        throttle.login_succeeded("a@example.com", None).await;
        throttle.login_failed("a@example.com", None).await;
        assert!(throttle.check_login("a@example.com", None).await.is_ok());
    }

    #[tokio::test]
    async fn failures_of_an_email_across_ips_back_off_then_stop() {
        let throttle = throttle(Duration::from_secs(60));
        for n in 0..5 {
            assert!(throttle.check_login("a@example.com", ip(n)).await.is_ok());
            throttle.login_failed("a@example.com", ip(n)).await;
        }
        // Past the threshold: the next attempt, from anywhere, waits.
        let refused = throttle
            .check_login("a@example.com", ip(9))
            .await
            .unwrap_err();
        assert_eq!((refused.limit, refused.retry_after), (8, RetryAfter(1)));
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(40), MAX_BACKOFF);
        for n in 5..8 {
            throttle.login_failed("a@example.com", ip(n)).await;
        }
        let refused = throttle
            .check_login("a@example.com", ip(9))
            .await
            .unwrap_err();
        assert_eq!(refused.limit, 8, "the per-email limit, for the window");
        assert!(refused.retry_after.0 > 30);
    }

    #[tokio::test]
    async fn failures_per_ip_span_emails() {
        let throttle = throttle(Duration::from_secs(60));
        for n in 0..5 {
            throttle
                .login_failed(&format!("user{n}@example.com"), ip(7))
                .await;
        }
        let refused = throttle
            .check_login("new@example.com", ip(7))
            .await
            .unwrap_err();
        assert_eq!(refused.limit, 5, "the per-IP limit is the one reported");
        assert!(throttle.check_login("new@example.com", ip(8)).await.is_ok());
    }

    #[tokio::test]
    async fn registrations_per_ip() {
        let throttle = throttle(Duration::from_secs(60));
        assert!(throttle.check_registration(ip(7)).await.is_ok());
        assert!(throttle.check_registration(ip(7)).await.is_ok());
        let refused = throttle.check_registration(ip(7)).await.unwrap_err();
        assert_eq!(refused.limit, 2);
        // One registration is earned back every half hour at 2 per hour.
        assert!((1..=1800).contains(&refused.retry_after.0));
        assert!(throttle.check_registration(ip(8)).await.is_ok());
    }
}
