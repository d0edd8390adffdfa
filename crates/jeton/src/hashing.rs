//! The password-hashing executor: Argon2id at OWASP's parameters
//! (m = 19456 KiB, t = 2, p = 1). Hashing and verification are CPU-heavy by
//! design, so they run on threads of their own, at the lowest scheduling
//! priority, behind a bounded queue, never on the async runtime's threads.

use std::sync::LazyLock;

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};

use crate::domain::password::Password;

fn argon2() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("OWASP parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Verified against when the email is unknown, so that an unknown email and
/// a wrong password cost the same time.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let dummy = Password::parse("dummy password that matches nothing".to_owned())
        .expect("the dummy password is within bounds");
    hash_blocking(&dummy)
});

fn hash_blocking(password: &Password) -> String {
    argon2()
        .hash_password(password.expose_secret().as_bytes())
        .expect("hashing with a fresh salt cannot fail")
        .to_string()
}

fn verify_blocking(password: &Password, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => argon2()
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Argon2 needs 19 MiB and tens of milliseconds of CPU per call. At most one
/// call per core but one runs at a time (so memory stays bounded and the
/// blocking pool cannot crowd out everything else), and at most
/// `QUEUE_PER_CORE` per core wait; past that the caller is told to come back
/// later.
const QUEUE_PER_CORE: usize = 32;

struct HashingGate {
    running: tokio::sync::Semaphore,
    queued: std::sync::atomic::AtomicUsize,
    max_queued: usize,
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// One core is left to everything else, so a login flood cannot take every
/// core from token-authenticated reads (on one core, hashing shares it).
fn hashing_threads() -> usize {
    cores().saturating_sub(1).max(1)
}

static GATE: LazyLock<HashingGate> = LazyLock::new(|| HashingGate {
    running: tokio::sync::Semaphore::new(hashing_threads()),
    queued: std::sync::atomic::AtomicUsize::new(0),
    max_queued: cores() * QUEUE_PER_CORE,
});

/// Too many password checks are waiting: answer 503 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks are waiting")]
pub struct Busy;

/// The threads that hash, one per permit of the gate. They run at the
/// lowest priority (nice 19): when the machine is busy, the scheduler gives
/// the cores to the async runtime first, so a login flood slows logins
/// rather than every read. On an idle machine they run at full speed.
static POOL: LazyLock<rayon::ThreadPool> = LazyLock::new(|| {
    rayon::ThreadPoolBuilder::new()
        .num_threads(hashing_threads())
        .thread_name(|n| format!("jeton-argon2-{n}"))
        .start_handler(|_| lower_this_threads_priority())
        // A panic drops the result's sender; the caller sees that.
        .panic_handler(|_| {})
        .build()
        .expect("the password hashing threads start")
});

fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on this thread's own id; setpriority only
    // changes its scheduling weight. On Linux, `PRIO_PROCESS` with a thread
    // id names that one thread.
    unsafe {
        let thread = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, 19) != 0 {
            tracing::warn!("could not lower the priority of a password hashing thread");
        }
    }
}

/// Runs `work` on the hashing threads once the gate lets it through.
async fn gated<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
    use std::sync::atomic::Ordering;
    let gate = &*GATE;
    if gate.queued.fetch_add(1, Ordering::SeqCst) >= gate.max_queued {
        gate.queued.fetch_sub(1, Ordering::SeqCst);
        return Err(Busy);
    }
    let permit = gate.running.acquire().await;
    gate.queued.fetch_sub(1, Ordering::SeqCst);
    let _permit = permit.expect("the hashing semaphore is never closed");
    let (done, result) = tokio::sync::oneshot::channel();
    POOL.spawn(move || {
        let _ = done.send(work());
    });
    Ok(result.await.expect("password hashing does not panic"))
}

/// The PHC string of a new Argon2id hash.
pub async fn hash(password: Password) -> Result<String, Busy> {
    gated(move || hash_blocking(&password)).await
}

/// Checks `password` against `stored`, or against a dummy hash when there is
/// no stored hash (unknown email), so both failures take the same time.
pub async fn verify(password: Password, stored: Option<String>) -> Result<bool, Busy> {
    gated(move || match stored {
        Some(stored) => verify_blocking(&password, &stored),
        None => {
            verify_blocking(&password, &DUMMY_HASH);
            false
        }
    })
    .await
}

/// Computes the dummy hash ahead of the first login, so the first unknown
/// email is not slower than the rest.
pub async fn warm_up() {
    tokio::task::spawn_blocking(|| LazyLock::force(&DUMMY_HASH))
        .await
        .expect("warm-up does not panic");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashing yields the cores to everything else when they are busy.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_at_the_lowest_priority() {
        let nice = gated(|| {
            // SAFETY: reads this thread's own scheduling priority.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
        })
        .await
        .unwrap();
        assert_eq!(nice, 19);
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let parse = |text: &str| Password::parse(text.to_owned()).unwrap();
        let stored = hash(parse("correct horse")).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            verify(parse("correct horse"), Some(stored.clone()))
                .await
                .unwrap()
        );
        assert!(!verify(parse("wrong horse!"), Some(stored)).await.unwrap());
        assert!(!verify(parse("correct horse"), None).await.unwrap());
    }
}
