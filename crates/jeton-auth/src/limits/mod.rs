//! Where every limit is counted: in this process, or, with the `redis`
//! feature and `LimitBackend::redis`, once for a whole fleet of processes.
//!
//! Two kinds of limit cover everything an app throttles:
//! - a [`Rate`]: at most `limit` requests per `period` for a key (per-key,
//!   per-IP and per-customer request limits, order placement,
//!   registrations). [`LimitBackend::take`] counts one request.
//! - a [`Window`] of failures: a key that has failed `max` times is refused
//!   until its window, which starts at its first failure, ends (failed
//!   authentications, failed logins). [`LimitBackend::fail`] counts one,
//!   [`LimitBackend::failures`] reads the count, [`LimitBackend::forgive`]
//!   forgets it.
//!
//! In one process, a rate is governor's GCRA (a burst of `limit`, refilled
//! evenly over `period`) and failures are counted in a bounded cache
//! (quick_cache: a flood of one-off keys evicts one-off keys, not one that
//! keeps failing).
//!
//! Shared through Redis, a rate is a sliding log in one Lua script (run by
//! `EVALSHA`), and a process *leases* requests from it in batches of about
//! 1% of the limit, which it then spends without asking Redis again: the
//! hot path makes a round trip once per batch, not once per request. A
//! lease is recorded in the log at once and stays there for the period plus
//! its own lifetime (at most a second), so every request the fleet accepts
//! in any window of the period was leased while the others still counted:
//! the fleet never accepts more than the limit. A process's requests that
//! find its lease of a key spent wait for one of them to ask Redis, for a
//! lease that covers them all, rather than each taking a batch; what a lease
//! did not spend before it ran out is given back when the process takes its
//! next lease of that key. The fleet accepts less than the limit by the
//! unspent part of the last lease of each process that stopped using the
//! key (one batch per process), and by leases lost to an outage (granted,
//! but answered after the deadline) or dropped to keep a process's table of
//! keys bounded.
//!
//! Failures go to Redis as they happen and are read from it where they are
//! checked. A busy Redis is not a dead one:
//! - a request waits for Redis at most its deadline (by default
//!   [`REDIS_DEADLINE`]), for another request's answer and its own together;
//!   past it, that request alone is counted in this process, the
//!   `…limit_backend_redis_slow_answers_total` counter goes up by one, a
//!   "Redis is slow (not down)" warning is logged at most once a minute,
//!   and the question keeps waiting in the background (a lease it brings
//!   back is kept for the next requests);
//! - Redis counts as down when it answers with an error (the connection is
//!   refused or lost) or leaves a question unanswered for half a second (or
//!   the deadline, if longer): the backend then counts in this process, logs
//!   "Redis is unreachable" once, sets the `…limit_backend_redis` gauge to 0
//!   and the `…limit_backend_redis_fallbacks_total` counter up by one, and
//!   tries Redis again in the background until it answers.
//!
//! `…limit_decisions_total{backend="redis"|"process"}` counts the decisions
//! made each way while Redis is configured. No request fails because Redis
//! is slow or down.

use std::{
    collections::HashMap,
    hash::Hash,
    num::NonZeroU32,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use governor::{
    Quota,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};

use quick_cache::sync::{EntryAction, EntryResult};

use crate::AuthError;

pub(crate) mod failed_auth;
pub(crate) mod rate;
#[cfg(feature = "redis")]
mod shared;

pub use failed_auth::FailedAuthLimit;
pub use rate::{Limits, RATELIMIT_LIMIT, RATELIMIT_REMAINING, RATELIMIT_RESET, set_headers};

/// With the `redis` feature: by default, the longest a request waits for
/// Redis before its limits are counted in this process. Long enough for a
/// healthy Redis under load (the server and Redis starved of CPU for a
/// moment) to answer, short enough that a request held up by it still
/// answers well within a second.
pub const REDIS_DEADLINE: Duration = Duration::from_millis(250);

/// What the `RateLimit-*` headers report: the tighter of the limits that
/// apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitStatus {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the quota is whole again.
    pub reset_seconds: u64,
}

/// At most `limit` requests per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    pub limit: NonZeroU32,
    pub period: Duration,
}

impl Rate {
    /// `None` for 0, which means no limit.
    pub fn per_minute(limit: u32) -> Option<Rate> {
        Rate::new(limit, Duration::from_secs(60))
    }

    pub fn per_hour(limit: u32) -> Option<Rate> {
        Rate::new(limit, Duration::from_secs(3600))
    }

    pub fn new(limit: u32, period: Duration) -> Option<Rate> {
        Some(Rate {
            limit: NonZeroU32::new(limit)?,
            period,
        })
    }
}

/// At most `max` failures in a window of `window`, which starts with the
/// first failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub max: u32,
    pub window: Duration,
}

/// A key's failures in its current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Failures {
    pub count: u32,
    /// Until the window ends and the count starts again from 0.
    pub window_left: Duration,
    /// Since the latest failure.
    pub since_last: Duration,
}

impl Failures {
    /// Refused: the window's failures are used up.
    pub fn exhausted(&self, window: Window) -> bool {
        self.count >= window.max && !self.window_left.is_zero()
    }
}

/// Whole seconds, rounded up.
pub(crate) fn seconds_ceil(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// Every limit of an app, counted in this process or shared through Redis.
/// One per process, shared by the gate and the app (see
/// [`GateBuilder::limits`](crate::GateBuilder::limits)).
pub struct LimitBackend {
    local: Local,
    #[cfg(feature = "redis")]
    shared: Option<shared::Shared>,
}

impl Default for LimitBackend {
    fn default() -> Self {
        LimitBackend::local()
    }
}

impl LimitBackend {
    /// Limits counted in this process only.
    pub fn local() -> LimitBackend {
        LimitBackend {
            local: Local::default(),
            #[cfg(feature = "redis")]
            shared: None,
        }
    }

    /// Limits shared by every process that uses the same Redis (`url`, e.g.
    /// `redis://127.0.0.1:6379`), under keys that start with the identity's
    /// metric prefix, and counted in this process while Redis is down. It
    /// connects in the background: an unreachable Redis at start is an
    /// outage like any other. A request waits for Redis at most `deadline`
    /// ([`REDIS_DEADLINE`] is a good default), and is then counted in this
    /// process; Redis counts as down only on an error or a longer silence
    /// (see the [module](self) docs).
    /// Must be called within a Tokio runtime.
    #[cfg(feature = "redis")]
    pub fn redis(
        url: &str,
        identity: &crate::Identity,
        deadline: Duration,
    ) -> Result<LimitBackend, LimitBackendError> {
        Ok(LimitBackend {
            local: Local::default(),
            shared: Some(shared::Shared::connect(url, identity, deadline)?),
        })
    }

    /// Counts failure windows on `clock` rather than the system's (Redis
    /// counts on its own): a test moves a [`Clock::manual`](crate::Clock::manual)
    /// past a window instead of waiting for it to end.
    pub fn with_clock(mut self, clock: crate::Clock) -> LimitBackend {
        self.local.failure_clock = clock;
        self
    }

    /// Whether Redis is configured and currently in use.
    pub fn redis_in_use(&self) -> bool {
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared {
            return shared.is_up();
        }
        false
    }

    /// Counts one request of `key` against `rate`: its status for the
    /// `RateLimit-*` headers, or [`AuthError::RateLimited`].
    pub async fn take(&self, key: &str, rate: Rate) -> Result<RateLimitStatus, AuthError> {
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared {
            let taken = shared.take(key, rate).await;
            shared.decided(taken.is_some());
            if let Some(taken) = taken {
                return taken;
            }
        }
        self.local.take(key, rate)
    }

    /// `key`'s failures in its current window.
    pub async fn failures(&self, key: &str, window: Window) -> Failures {
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared {
            let failures = shared.failures(key, window).await;
            shared.decided(failures.is_some());
            if let Some(failures) = failures {
                return failures;
            }
        }
        self.local.failures(key, window)
    }

    /// Counts a failure of `key`; the count after it.
    pub async fn fail(&self, key: &str, window: Window) -> Failures {
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared {
            let failures = shared.fail(key, window).await;
            shared.decided(failures.is_some());
            if let Some(failures) = failures {
                return failures;
            }
        }
        self.local.fail(key, window)
    }

    /// Forgets `key`'s failures (in every window it is counted in).
    pub async fn forgive(&self, key: &str) {
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared {
            shared.forgive(key).await;
        }
        self.local.forgive(key);
    }
}

/// Redis could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("invalid Redis URL: {0}")]
pub struct LimitBackendError(String);

// ------------------------------------------------------------ in this process

type KeyedLimiter = governor::RateLimiter<
    String,
    DefaultKeyedStateStore<String>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// Keys a keyed limiter tracks before it drops those whose buckets are full
/// again.
const SWEEP_THRESHOLD: usize = 10_000;

/// Failure counts kept at once, per window length.
const FAILURE_CAPACITY: usize = 100_000;

type FailureCounts = quick_cache::sync::Cache<String, Counted>;

#[derive(Debug, Clone, Copy)]
struct Counted {
    count: u32,
    since: Instant,
    last: Instant,
}

#[derive(Default)]
struct Local {
    /// One keyed limiter per distinct rate.
    rates: RwLock<HashMap<Rate, Arc<KeyedLimiter>>>,
    /// One cache per window length; a count whose window has ended reads
    /// as none, and is replaced at the key's next failure.
    failures: RwLock<HashMap<Duration, Arc<FailureCounts>>>,
    clock: DefaultClock,
    /// What failure windows are measured on.
    failure_clock: crate::Clock,
}

fn get_or_create<K: Hash + Eq + Copy, V: Clone>(
    map: &RwLock<HashMap<K, V>>,
    key: K,
    create: impl FnOnce() -> V,
) -> V {
    // Every counted request comes here: a shared read lock in the common
    // case, the write lock only the first time a rate is seen.
    if let Some(found) = map.read().expect("limits lock").get(&key) {
        return found.clone();
    }
    map.write()
        .expect("limits lock")
        .entry(key)
        .or_insert_with(create)
        .clone()
}

impl Local {
    fn take(&self, key: &str, rate: Rate) -> Result<RateLimitStatus, AuthError> {
        let limiter = get_or_create(&self.rates, rate, || {
            let quota = Quota::with_period(rate.period / rate.limit.get())
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
                .allow_burst(rate.limit);
            Arc::new(governor::RateLimiter::keyed(quota).with_middleware())
        });
        if limiter.len() > SWEEP_THRESHOLD {
            limiter.retain_recent();
        }
        let limit = rate.limit.get();
        match limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let quota = snapshot.quota();
                let remaining = snapshot.remaining_burst_capacity();
                let refill = quota.replenish_interval() * (limit - remaining.min(limit));
                Ok(RateLimitStatus {
                    limit,
                    remaining,
                    reset_seconds: seconds_ceil(refill),
                })
            }
            Err(not_until) => Err(AuthError::RateLimited {
                limit,
                retry_after_seconds: seconds_ceil(not_until.wait_time_from(self.clock.now()))
                    .max(1),
            }),
        }
    }

    fn window(&self, window: Duration) -> Arc<FailureCounts> {
        get_or_create(&self.failures, window, || {
            Arc::new(FailureCounts::new(FAILURE_CAPACITY))
        })
    }

    fn read(counted: Option<Counted>, window: Duration, now: Instant) -> Failures {
        match counted {
            Some(c) if now.saturating_duration_since(c.since) < window => Failures {
                count: c.count,
                window_left: window.saturating_sub(now.saturating_duration_since(c.since)),
                since_last: now.saturating_duration_since(c.last),
            },
            _ => Failures::default(),
        }
    }

    fn failures(&self, key: &str, window: Window) -> Failures {
        Local::read(
            self.window(window.window).get(key),
            window.window,
            self.failure_clock.instant(),
        )
    }

    fn fail(&self, key: &str, window: Window) -> Failures {
        let now = self.failure_clock.instant();
        let first = Counted {
            count: 1,
            since: now,
            last: now,
        };
        let counts = self.window(window.window);
        // Counted in place under the shard's lock, so that concurrent
        // failures of one key are all counted.
        let counted = match counts.entry(key, None, |_, counted| {
            *counted = if now.saturating_duration_since(counted.since) < window.window {
                Counted {
                    count: counted.count.saturating_add(1),
                    last: now,
                    ..*counted
                }
            } else {
                first
            };
            EntryAction::Retain(*counted)
        }) {
            EntryResult::Retained(counted) => counted,
            EntryResult::Vacant(guard) => {
                let _ = guard.insert(first);
                first
            }
            // Neither is asked for: the callback only retains, and without
            // a timeout the call waits for a concurrent first failure.
            EntryResult::Removed(..) | EntryResult::Replaced(..) | EntryResult::Timeout => first,
        };
        Local::read(Some(counted), window.window, now)
    }

    fn forgive(&self, key: &str) {
        for counts in self.failures.read().expect("limits lock").values() {
            counts.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_rate_refuses_past_its_limit_per_key() {
        let limits = LimitBackend::local();
        let rate = Rate::per_minute(3).unwrap();
        for remaining in (0..3).rev() {
            assert_eq!(limits.take("a", rate).await.unwrap().remaining, remaining);
        }
        assert!(matches!(
            limits.take("a", rate).await,
            Err(AuthError::RateLimited { limit: 3, .. })
        ));
        assert!(limits.take("b", rate).await.is_ok());
    }

    #[tokio::test]
    async fn failures_are_counted_per_window_and_forgiven() {
        let limits = LimitBackend::local();
        let window = Window {
            max: 2,
            window: Duration::from_secs(60),
        };
        assert_eq!(limits.failures("a", window).await.count, 0);
        limits.fail("a", window).await;
        let after = limits.fail("a", window).await;
        assert_eq!(after.count, 2);
        assert!(after.exhausted(window));
        assert!(limits.failures("a", window).await.exhausted(window));
        assert!(!limits.failures("b", window).await.exhausted(window));
        limits.forgive("a").await;
        assert_eq!(limits.failures("a", window).await.count, 0);
    }
}
