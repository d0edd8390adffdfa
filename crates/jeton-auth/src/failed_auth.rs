//! Failed authentications per client IP: after too many in a window, the
//! IP's requests are refused (429) before their tokens are looked at, so a
//! flood of forged tokens from one address stops reaching the store.
//!
//! The counts live in a fixed table, set-associative like a processor's
//! cache: an IP's set is chosen by a keyed hash, and a set holds
//! [`WAYS`] IPs under one small lock. A failure from a new IP takes the
//! place of the IP in its set with the fewest failures in the current
//! window, so a flood of one-off addresses evicts other one-off addresses,
//! while an address that keeps failing keeps its count (and its refusal).
//! Fixed size, so a flood from many addresses cannot grow memory, and no
//! allocation per new address: the refusal of a forged token from a new IP
//! is a hash, a lock and a few comparisons.

use std::{
    hash::{BuildHasher, RandomState},
    net::IpAddr,
    sync::{
        Mutex, MutexGuard, OnceLock, PoisonError,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use metrics::Counter;

use crate::{AuthError, axum::FailedAuthLimit};

/// IPs per set: three, so that a set and its lock fill one cache line, and
/// a new address evicts the least failing of three.
const WAYS: usize = 3;

/// Sets in the table: 12,288 IPs tracked at once, in 256 KiB. Small, so
/// that it stays in the processor's caches: a flood of forged tokens from
/// new addresses touches one set per request.
const SETS: usize = 4096;

/// One IP's failures in its current window, in 16 bytes.
/// `failures() == 0`: an empty way.
#[derive(Clone, Copy, Default)]
struct Way {
    /// The IP's keyed 64-bit hash: two addresses share a count only if
    /// their hashes collide, one chance in 2^64 for any two.
    fingerprint: u64,
    /// When the window started (milliseconds since the table was made, in
    /// the high 40 bits: 34 years), and the failures in it (low 24 bits).
    packed: u64,
}

const FAILURE_BITS: u32 = 24;
const MAX_FAILURES: u64 = (1 << FAILURE_BITS) - 1;

impl Way {
    fn new(fingerprint: u64, started: u64) -> Way {
        Way {
            fingerprint,
            packed: started << FAILURE_BITS,
        }
    }

    fn started(&self) -> u64 {
        self.packed >> FAILURE_BITS
    }

    fn failures(&self) -> u32 {
        u32::try_from(self.packed & MAX_FAILURES).unwrap_or(u32::MAX)
    }

    /// The failures that still count at `now`: none once the window is over.
    fn current(&self, now: u64, length: u64) -> u32 {
        if now.saturating_sub(self.started()) < length {
            self.failures()
        } else {
            0
        }
    }

    fn add_failure(&mut self) {
        if self.packed & MAX_FAILURES < MAX_FAILURES {
            self.packed += 1;
        }
    }
}

/// A set and its lock, in one cache line.
#[repr(align(64))]
struct Set(Mutex<[Way; WAYS]>);

pub(crate) struct FailedAuth {
    limit: FailedAuthLimit,
    /// The window's length in milliseconds (the table's unit).
    length: u64,
    /// The window's length in nanoseconds (the clock's unit).
    window: i64,
    /// When the table was made, Unix nanoseconds: times in it are counted
    /// from there, in milliseconds.
    epoch: i64,
    sets: Box<[Set]>,
    /// Keyed (per process), so that nobody can pick addresses that share a
    /// set with someone else's.
    hasher: RandomState,
    /// When an IP last reached the limit (Unix nanoseconds). If that is a
    /// whole window ago, no IP can be over the limit now, and a request is
    /// let through without a lookup: the usual case costs one atomic read.
    last_limit_reached: AtomicI64,
    /// Registered on first use (after the app has installed its recorder),
    /// then kept: a flood from one IP is refused here on every request.
    refused: OnceLock<Counter>,
}

fn as_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl FailedAuth {
    pub(crate) fn new(limit: FailedAuthLimit) -> FailedAuth {
        FailedAuth {
            limit,
            length: u64::try_from(limit.window.as_millis()).unwrap_or(u64::MAX),
            window: crate::clock::nanos(limit.window),
            epoch: crate::clock::now_nanos(),
            sets: (0..SETS)
                .map(|_| Set(Mutex::new([Way::default(); WAYS])))
                .collect(),
            hasher: RandomState::new(),
            last_limit_reached: AtomicI64::new(i64::MIN),
            refused: OnceLock::new(),
        }
    }

    /// Milliseconds since the table was made.
    fn millis(&self, now: i64) -> u64 {
        u64::try_from(now.saturating_sub(self.epoch) / 1_000_000).unwrap_or(0)
    }

    /// The IP's fingerprint and its set, locked.
    fn set(&self, ip: IpAddr) -> (u64, MutexGuard<'_, [Way; WAYS]>) {
        let fingerprint = self.hasher.hash_one(as_u128(ip));
        let index = usize::try_from(fingerprint >> 52).unwrap_or_default() % SETS;
        // A poisoned set only held counts: carry on with them.
        let set = self.sets[index]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        (fingerprint, set)
    }

    /// Whether any IP can be over the limit at `now` (Unix nanoseconds): an
    /// IP over it reached it less than a window ago (its window started
    /// before that and has not ended). One atomic read.
    pub(crate) fn may_refuse(&self, now: i64) -> bool {
        now.saturating_sub(self.last_limit_reached.load(Ordering::Relaxed)) < self.window
    }

    /// Refuses an IP that has failed too often in its window. `now`: Unix
    /// nanoseconds. The guard asks [`FailedAuth::may_refuse`] first, and
    /// looks the IP up only if so.
    pub(crate) fn check(&self, ip: Option<IpAddr>, now: i64) -> Result<(), AuthError> {
        let Some(ip) = ip else { return Ok(()) };
        let now = self.millis(now);
        let (fingerprint, set) = self.set(ip);
        let Some(started) = set
            .iter()
            .find(|way| {
                way.fingerprint == fingerprint
                    && way.current(now, self.length) >= self.limit.failures
            })
            .map(Way::started)
        else {
            return Ok(());
        };
        drop(set);
        self.refused
            .get_or_init(
                || metrics::counter!("jeton_rate_limited_total", "reason" => "failed_auth"),
            )
            .increment(1);
        let left = self.length.saturating_sub(now.saturating_sub(started));
        Err(AuthError::RateLimited {
            limit: self.limit.failures,
            retry_after_seconds: Duration::from_millis(left).as_secs().max(1),
        })
    }

    /// Counts a failure of `ip` at `at` (Unix nanoseconds).
    pub(crate) fn count(&self, ip: Option<IpAddr>, at: i64) {
        let Some(ip) = ip else { return };
        let now = self.millis(at);
        let failures = {
            let (fingerprint, mut set) = self.set(ip);
            let length = self.length;
            let index = set
                .iter()
                .position(|way| way.fingerprint == fingerprint && way.failures() > 0)
                // A new address takes the place of the least failing (empty
                // and expired ways count none), the oldest of those.
                .or_else(|| {
                    set.iter()
                        .enumerate()
                        .min_by_key(|(_, way)| (way.current(now, length), way.started()))
                        .map(|(index, _)| index)
                })
                .unwrap_or_default();
            let way = &mut set[index];
            if way.fingerprint != fingerprint || way.current(now, length) == 0 {
                *way = Way::new(fingerprint, now);
            }
            way.add_failure();
            way.failures()
        };
        if failures >= self.limit.failures {
            self.last_limit_reached.fetch_max(at, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::now_nanos;

    fn limit(failures: u32, window: Duration) -> FailedAuth {
        FailedAuth::new(FailedAuthLimit { failures, window })
    }

    fn fail(tracker: &FailedAuth, ip: IpAddr) -> Result<(), AuthError> {
        let now = now_nanos();
        tracker.check(Some(ip), now)?;
        tracker.count(Some(ip), now);
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
            tracker.check(Some(noisy), now_nanos()),
            Err(AuthError::RateLimited {
                limit: 3,
                retry_after_seconds: 1..=60
            })
        ));
        assert!(tracker.check(Some(quiet), now_nanos()).is_ok());
        assert!(tracker.check(None, now_nanos()).is_ok());
    }

    #[test]
    fn a_window_that_has_passed_starts_again() {
        let tracker = limit(2, Duration::from_millis(50));
        let ip = "2001:db8::1".parse().unwrap();
        fail(&tracker, ip).unwrap();
        fail(&tracker, ip).unwrap();
        assert!(tracker.check(Some(ip), now_nanos()).is_err());
        std::thread::sleep(Duration::from_millis(80));
        fail(&tracker, ip).unwrap();
        assert!(
            tracker.check(Some(ip), now_nanos()).is_ok(),
            "one failure in the new window"
        );
    }

    #[test]
    fn a_flood_of_new_addresses_does_not_evict_one_that_keeps_failing() {
        let tracker = limit(50, Duration::from_secs(60));
        let noisy: IpAddr = "198.51.100.9".parse().unwrap();
        for _ in 0..49 {
            fail(&tracker, noisy).unwrap();
        }
        // Four times as many one-off addresses as the table holds.
        for n in 0..(SETS * WAYS * 4) as u32 {
            fail(&tracker, IpAddr::from((0x0a00_0000 | n).to_be_bytes())).unwrap();
        }
        fail(&tracker, noisy).unwrap();
        assert!(tracker.check(Some(noisy), now_nanos()).is_err());
    }

    #[test]
    fn a_set_fills_one_cache_line() {
        assert_eq!(std::mem::size_of::<Set>(), 64);
    }

    #[test]
    fn ipv4_and_its_mapped_ipv6_form_are_one_address() {
        let tracker = limit(2, Duration::from_secs(60));
        fail(&tracker, "192.0.2.7".parse().unwrap()).unwrap();
        fail(&tracker, "::ffff:192.0.2.7".parse().unwrap()).unwrap();
        assert!(
            tracker
                .check(Some("192.0.2.7".parse().unwrap()), now_nanos())
                .is_err()
        );
    }
}
