//! The wall clock of the hot path, in one place.

/// Now, in Unix nanoseconds: the precise clock. The coarse one
/// (`CLOCK_REALTIME_COARSE`) costs about 15 ns less, but it can lag the true
/// time by more than its stated resolution (measured here: half a
/// millisecond beyond it), and then a key rotated without grace would still
/// work for a moment after the rotation.
pub(crate) fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
        })
}
