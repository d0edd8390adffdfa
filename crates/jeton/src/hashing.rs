//! The password-hashing executor: Argon2id at OWASP's parameters
//! (m = 19456 KiB, t = 2, p = 1). Hashing and verification are CPU-heavy by
//! design, so they run on threads of their own (one fewer than the cores),
//! in Linux's idle scheduling class, behind a bounded queue with a bounded
//! wait, never on the async runtime's threads. A login flood therefore
//! slows logins, and past the queue or the wait refuses them with 503 and
//! `Retry-After`, rather than slowing every read.

use std::sync::{
    LazyLock,
    atomic::{AtomicUsize, Ordering},
};

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

/// The longest a call waits for a hashing thread. Hashing yields every core
/// to the rest of the server, so under a load that keeps the cores busy the
/// queue may not move: a login is then told to come back rather than held
/// until the client gives up.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

struct HashingGate {
    running: tokio::sync::Semaphore,
    queued: AtomicUsize,
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

static GATE: LazyLock<HashingGate> =
    LazyLock::new(|| HashingGate::new(hashing_threads(), cores() * QUEUE_PER_CORE));

/// Too many password checks are waiting: answer 503 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks are waiting")]
pub struct Busy;

/// The threads that hash, one per permit of the gate. They run in Linux's
/// idle scheduling class (`SCHED_IDLE`, and nice 19 where that is refused):
/// any other thread that wakes up takes the core from them at once, so a
/// read's request never waits behind a hash for its time slice, and a
/// login flood slows logins rather than every read. On an idle machine they
/// run at full speed.
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
        // On Linux, 0 names the calling thread.
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            tracing::warn!("could not put a password hashing thread in the idle scheduling class");
        }
    }
}

/// One call counted among those waiting, until it is dropped: also when
/// its request goes away while it waits (the client disconnected), so the
/// count never keeps calls that no longer wait.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn enter(queued: &'a AtomicUsize, max: usize) -> Option<Queued<'a>> {
        if queued.fetch_add(1, Ordering::SeqCst) >= max {
            queued.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Queued(queued))
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl HashingGate {
    fn new(running: usize, max_queued: usize) -> HashingGate {
        HashingGate {
            running: tokio::sync::Semaphore::new(running),
            queued: AtomicUsize::new(0),
            max_queued,
        }
    }

    /// Runs `work` on the hashing threads once the gate lets it through.
    /// The permit goes with the work, so a request that goes away mid-hash
    /// does not let another hash start before this one ends.
    async fn run<T: Send + 'static>(
        &'static self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let queued = Queued::enter(&self.queued, self.max_queued).ok_or(Busy)?;
        let permit = tokio::time::timeout(MAX_WAIT, self.running.acquire()).await;
        drop(queued);
        let permit = permit
            .map_err(|_| Busy)?
            .expect("the hashing semaphore is never closed");
        let (done, result) = tokio::sync::oneshot::channel();
        POOL.spawn(move || {
            let _permit = permit;
            let _ = done.send(work());
        });
        Ok(result.await.expect("password hashing does not panic"))
    }
}

/// Runs `work` on the hashing threads once the gate lets it through.
async fn gated<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
    GATE.run(work).await
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
        let (nice, policy) = gated(|| {
            // SAFETY: reads this thread's own scheduling priority and policy.
            unsafe {
                (
                    libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t),
                    libc::sched_getscheduler(0),
                )
            }
        })
        .await
        .unwrap();
        assert_eq!(nice, 19);
        assert_eq!(policy, libc::SCHED_IDLE);
    }

    /// With every hashing thread busy and the queue full, the next call is
    /// told to come back at once (the login's 503 with `Retry-After`), and a
    /// call that stops waiting leaves the queue.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn past_the_queue_calls_are_refused_and_leavers_leave_it() {
        let gate: &'static HashingGate = Box::leak(Box::new(HashingGate::new(1, 2)));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let running = tokio::spawn(gate.run(move || hold.recv().is_ok()));
        while gate.running.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let first = tokio::spawn(gate.run(|| true));
        let second = tokio::spawn(gate.run(|| true));
        while gate.queued.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.run(|| true).await, Err(Busy), "past the queue");
        // The async runtime is free meanwhile: everything but hashing runs.
        let started = std::time::Instant::now();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        second.abort();
        let _ = second.await;
        assert_eq!(gate.queued.load(Ordering::SeqCst), 1, "the leaver left");
        let third = tokio::spawn(gate.run(|| true));
        release.send(()).unwrap();
        assert_eq!(running.await.unwrap(), Ok(true));
        assert_eq!(first.await.unwrap(), Ok(true));
        assert_eq!(third.await.unwrap(), Ok(true));
        assert_eq!(gate.queued.load(Ordering::SeqCst), 0);
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
