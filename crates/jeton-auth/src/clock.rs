//! The wall clock of the hot path.

/// Now, in Unix nanoseconds, coarse: on Linux the kernel's tick clock
/// (`CLOCK_REALTIME_COARSE`), which costs a quarter of the precise one, plus
/// its resolution (one tick, a few milliseconds). That makes it an upper
/// bound of the true time: a token whose expiry has passed is never taken
/// for valid, at worst it expires one tick early (a key rotated without
/// grace must stop working at once).
#[cfg(target_os = "linux")]
pub(crate) fn now_nanos() -> i64 {
    use std::sync::OnceLock;

    use rustix::time::{ClockId, Timespec, clock_getres, clock_gettime};

    fn nanos(at: Timespec) -> i64 {
        at.tv_sec
            .saturating_mul(1_000_000_000)
            .saturating_add(at.tv_nsec)
    }
    static RESOLUTION: OnceLock<i64> = OnceLock::new();
    let resolution = *RESOLUTION.get_or_init(|| nanos(clock_getres(ClockId::RealtimeCoarse)));
    nanos(clock_gettime(ClockId::RealtimeCoarse)).saturating_add(resolution)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_never_behind_the_precise_clock_and_at_most_a_tick_ahead() {
        for _ in 0..1000 {
            // The precise clock first: the coarse one, read after it, must
            // not be behind it.
            let precise = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as i64;
            let coarse = super::now_nanos();
            assert!(coarse >= precise, "{coarse} behind {precise}");
            // Loose: only a sanity check, a busy machine may pause the test.
            assert!(
                coarse - precise < 1_000_000_000,
                "{coarse} far ahead of {precise}"
            );
        }
    }
}
