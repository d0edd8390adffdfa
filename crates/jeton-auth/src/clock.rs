//! The wall clock of the hot path, in one place.
//!
//! Every request reads the clock (expiry, the cache's reload time, the
//! failed-authentication windows, the time of use), and the precise clock
//! costs as much as the token's cache lookup. So the hot path reads the
//! coarse clock, the time of the kernel's last tick, and reads the precise
//! one only to decide an expiry that is near: see [`has_passed`].

/// How far the coarse clock may be behind the true time, with room to
/// spare. It is one tick behind at most on a machine that keeps time
/// regularly (a few milliseconds); CI saw half a millisecond beyond its
/// stated resolution, and a virtual machine's timekeeping can be late by
/// as long as its host deschedules it. A second covers all of that, and
/// costs nothing: it only decides when the precise clock is read.
pub(crate) const COARSE_LAG: i64 = 1_000_000_000;

/// Now, in Unix nanoseconds, from the coarse clock: never ahead of the true
/// time, at most [`COARSE_LAG`] behind it. Good for windows and time-to-live
/// measured in seconds; an expiry is decided by [`has_passed`].
#[cfg(target_os = "linux")]
pub(crate) fn now_nanos() -> i64 {
    use rustix::time::{ClockId, clock_gettime};

    let at = clock_gettime(ClockId::RealtimeCoarse);
    at.tv_sec
        .saturating_mul(1_000_000_000)
        .saturating_add(at.tv_nsec)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn now_nanos() -> i64 {
    precise_now_nanos()
}

/// Now, in Unix nanoseconds, from the precise clock.
pub(crate) fn precise_now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, nanos)
}

/// A duration in the clock's unit, saturating.
pub(crate) fn nanos(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

/// Whether `deadline` has passed, given `now` from [`now_nanos`]. A deadline
/// further than [`COARSE_LAG`] from the coarse time is decided by it alone
/// (the true time lies between the two); a nearer one by the precise clock,
/// so that a key rotated without grace stops working at once.
pub(crate) fn has_passed(deadline: i64, now: i64) -> bool {
    if deadline.saturating_sub(now) > COARSE_LAG {
        false
    } else {
        precise_now_nanos() >= deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_clock_is_never_ahead_of_the_precise_one() {
        for _ in 0..10_000 {
            let coarse = now_nanos();
            let precise = precise_now_nanos();
            assert!(coarse <= precise, "{coarse} ahead of {precise}");
        }
    }

    #[test]
    fn a_near_deadline_is_decided_by_the_precise_clock() {
        let now = now_nanos();
        let precise = precise_now_nanos();
        // Just passed, though the coarse clock may not show it yet.
        assert!(has_passed(precise, now));
        assert!(has_passed(i64::MIN, now));
        // Far ahead: the coarse clock says so without asking.
        assert!(!has_passed(now + 2 * COARSE_LAG, now));
        assert!(!has_passed(i64::MAX, now));
        // Near, but ahead.
        assert!(!has_passed(precise + COARSE_LAG / 2, now));
    }
}
