//! Retrying a write transaction that the database rolled back because of
//! contention: PostgreSQL's serialization failures and deadlocks, SQLite's
//! busy and locked errors.
//!
//! Only errors that guarantee the transaction was rolled back are retried.
//! A lost connection is not: the commit may have happened, and running an
//! order again could place it twice. Those surface as 503, and the client's
//! retry (with its `Idempotency-Key`) settles it.

use std::{future::Future, time::Duration};

/// How many times a transaction is run at most (the first try and five
/// retries).
pub const MAX_ATTEMPTS: u32 = 6;
/// The first backoff's upper bound; it doubles on each retry up to
/// [`MAX_BACKOFF`].
const BASE_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_millis(200);

pub use super::db_error::{is_contention, is_contention_or_disconnect};

/// An error that may say "try the transaction again".
pub trait Retryable {
    fn is_retryable(&self) -> bool;
}

impl Retryable for sqlx::Error {
    fn is_retryable(&self) -> bool {
        is_contention(self)
    }
}

/// Runs `attempt` until it succeeds, fails for a reason other than
/// contention, or has run [`MAX_ATTEMPTS`] times; the last error is
/// returned. Between tries it sleeps a random time up to an exponentially
/// growing bound ("full jitter"), so the transactions that collided do not
/// collide again in lockstep.
pub async fn retrying<T, E, F, Fut>(what: &'static str, attempt: F) -> Result<T, E>
where
    E: Retryable + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    retrying_if(what, E::is_retryable, attempt).await
}

/// [`retrying`] with the caller's idea of which errors are worth another
/// try: for statements that are safe to repeat whatever happened to the
/// first run, such as releasing an idempotency key by its lease.
pub async fn retrying_if<T, E, F, Fut>(
    what: &'static str,
    retry: impl Fn(&E) -> bool,
    mut attempt: F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(error) if tries < MAX_ATTEMPTS && retry(&error) => {
                let pause = backoff(tries);
                tracing::debug!(%error, what, tries, ?pause, "retrying");
                tokio::time::sleep(pause).await;
            }
            outcome => return outcome,
        }
    }
}

/// A random pause in `0..=min(MAX_BACKOFF, BASE_BACKOFF * 2^(tries-1))`.
fn backoff(tries: u32) -> Duration {
    let bound = BASE_BACKOFF
        .saturating_mul(1 << (tries - 1).min(16))
        .min(MAX_BACKOFF);
    let micros = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rand::random_range(0..=micros))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[derive(Debug)]
    struct Fake(bool);

    impl std::fmt::Display for Fake {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "fake retryable={}", self.0)
        }
    }

    impl Retryable for Fake {
        fn is_retryable(&self) -> bool {
            self.0
        }
    }

    #[test]
    fn backoff_is_bounded() {
        for tries in 1..40 {
            assert!(backoff(tries) <= MAX_BACKOFF);
        }
        assert!(backoff(1) <= BASE_BACKOFF);
    }

    #[tokio::test]
    async fn contention_is_retried_a_bounded_number_of_times() {
        let runs = AtomicU32::new(0);
        let outcome: Result<(), Fake> = retrying("test", || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Err(Fake(true))
        })
        .await;
        assert!(outcome.is_err());
        assert_eq!(runs.load(Ordering::SeqCst), MAX_ATTEMPTS);
    }

    #[tokio::test]
    async fn other_errors_and_success_end_at_once() {
        let runs = AtomicU32::new(0);
        let outcome: Result<(), Fake> = retrying("test", || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Err(Fake(false))
        })
        .await;
        assert!(outcome.is_err());
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        let runs = AtomicU32::new(0);
        let outcome: Result<u32, Fake> = retrying("test", || async {
            match runs.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(Fake(true)),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(outcome.ok(), Some(2));
    }
}
