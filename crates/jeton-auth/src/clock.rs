//! Where the crate reads the time: token and key expiry, the last use of a
//! user token, failure windows and refused addresses.
//!
//! A [`Clock`] is the system's by default. A test makes a manual one that
//! stands still until it is moved, and hands it to whatever it builds
//! ([`GateBuilder::clock`](crate::GateBuilder::clock),
//! [`Verifier::with_clock`](crate::Verifier::with_clock),
//! [`LimitBackend::with_clock`](crate::limits::LimitBackend::with_clock)): an expiry
//! or the end of a window is then a call to [`Clock::advance`], not a sleep.
//!
//! ```
//! use std::time::Duration;
//! use jeton_auth::{Clock, time::OffsetDateTime};
//!
//! let clock = Clock::manual(OffsetDateTime::UNIX_EPOCH);
//! let seen_by_the_gate = clock.clone();
//! clock.advance(Duration::from_secs(90));
//! assert_eq!(seen_by_the_gate.now().unix_timestamp(), 90);
//! ```

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use time::OffsetDateTime;

/// The time as the crate reads it: the system's, or a manual one that tests
/// move. Cloning is cheap, and clones of a manual clock move together.
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
}

struct Manual {
    start: OffsetDateTime,
    /// What [`Clock::instant`] reads at `start`.
    origin: Instant,
    /// Moved by [`Clock::advance`].
    elapsed_nanos: AtomicU64,
}

impl Manual {
    fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.elapsed_nanos.load(Ordering::Acquire))
    }
}

impl Clock {
    /// The system's clock (also [`Clock::default`]).
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that reads `start` until [`Clock::advance`] moves it.
    pub fn manual(start: OffsetDateTime) -> Clock {
        Clock {
            manual: Some(Arc::new(Manual {
                start,
                origin: Instant::now(),
                elapsed_nanos: AtomicU64::new(0),
            })),
        }
    }

    /// The time of day, in UTC.
    pub fn now(&self) -> OffsetDateTime {
        match &self.manual {
            None => OffsetDateTime::now_utc(),
            Some(manual) => manual.start + manual.elapsed(),
        }
    }

    /// A monotonic reading, for measuring how long since something: it
    /// moves with [`Clock::now`].
    pub fn instant(&self) -> Instant {
        match &self.manual {
            None => Instant::now(),
            Some(manual) => manual.origin + manual.elapsed(),
        }
    }

    /// Moves a manual clock, and every clone of it, forward by `by`.
    ///
    /// # Panics
    /// On the system clock, which no one moves.
    pub fn advance(&self, by: Duration) {
        let manual = self
            .manual
            .as_ref()
            .expect("only a manual clock can be advanced");
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // Only this closure writes; it cannot fail.
        let _ = manual
            .elapsed_nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |elapsed| {
                Some(elapsed.saturating_add(by))
            });
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.manual {
            None => f.write_str("Clock::System"),
            Some(_) => write!(f, "Clock::Manual({})", self.now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_advanced_and_its_clones_follow() {
        let clock = Clock::manual(OffsetDateTime::UNIX_EPOCH);
        let clone = clock.clone();
        let (at, instant) = (clock.now(), clock.instant());
        assert_eq!((clock.now(), clock.instant()), (at, instant));
        clone.advance(Duration::from_millis(1500));
        assert_eq!(clock.now() - at, Duration::from_millis(1500));
        assert_eq!(clock.instant() - instant, Duration::from_millis(1500));
    }

    #[test]
    fn the_system_clock_reads_the_system_time() {
        let clock = Clock::system();
        assert!((clock.now() - OffsetDateTime::now_utc()).abs() < Duration::from_secs(5));
    }

    #[test]
    #[should_panic(expected = "only a manual clock")]
    fn the_system_clock_cannot_be_advanced() {
        Clock::system().advance(Duration::from_secs(1));
    }
}
