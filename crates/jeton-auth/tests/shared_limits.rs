//! Limits shared through a real `redis-server`, started here on a free port:
//! two backends stand for two processes of a fleet. Without `redis-server`
//! these tests print a `NOTICE:` line and pass; with `JETON_REQUIRE_FLEET=1`
//! (CI) they fail.
#![cfg(feature = "redis")]

use std::{
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use jeton_auth::{
    Identity,
    limits::{LimitBackend, REDIS_DEADLINE, Rate},
};

/// A `redis-server` on a free port, saving nothing; killed when dropped.
struct Redis {
    port: u16,
    child: Child,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn redis() -> Option<Redis> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spawned = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match spawned {
        Ok(child) => child,
        Err(error) => {
            assert!(
                std::env::var("JETON_REQUIRE_FLEET").as_deref() != Ok("1"),
                "JETON_REQUIRE_FLEET=1 but redis-server could not start: {error}"
            );
            eprintln!("NOTICE: redis-server is not installed; shared-limit tests skipped");
            return None;
        }
    };
    let redis = Redis { port, child };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(redis);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("redis-server did not come up on port {port}");
}

/// One process's backend.
fn process(redis: &Redis) -> Arc<LimitBackend> {
    let url = format!("redis://127.0.0.1:{}", redis.port);
    // A loaded test machine can take longer than production's deadline.
    let deadline = REDIS_DEADLINE * 20;
    Arc::new(LimitBackend::redis(&url, &Identity::new("jt").unwrap(), deadline).unwrap())
}

/// Takes until refused; how many were accepted. Between takes it lets the
/// other tasks run, as a server's requests do.
async fn drain(limits: &LimitBackend, key: &str, rate: Rate) -> u32 {
    let mut accepted = 0;
    while limits.take(key, rate).await.is_ok() {
        accepted += 1;
        tokio::task::yield_now().await;
    }
    accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_leases_and_the_fleet_gets_its_whole_limit() {
    let Some(redis) = redis().await else { return };
    let rate = Rate::per_minute(20_000).unwrap();
    let processes = [process(&redis), process(&redis)];
    let mut tasks = Vec::new();
    for n in 0..64 {
        let limits = processes[n % 2].clone();
        tasks.push(tokio::spawn(async move {
            drain(&limits, "key:busy", rate).await
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        accepted += task.await.unwrap();
    }
    assert!(
        processes.iter().all(|limits| limits.redis_in_use()),
        "Redis counted as down during the test"
    );
    // Never more than the limit; less by at most one unspent lease (1% of
    // the limit) per process.
    let batch = 20_000 / 100;
    assert!(
        (20_000 - 2 * batch..=20_000).contains(&accepted),
        "{accepted} accepted of 20000"
    );
}

#[tokio::test]
async fn a_lease_that_ran_out_gives_back_what_it_did_not_spend() {
    let Some(redis) = redis().await else { return };
    // Leases of 10 requests, each spendable for 400 ms; the rest of the
    // 4 s period is for the drain below.
    let rate = Rate::new(1000, Duration::from_secs(4)).unwrap();
    let (first, second) = (process(&redis), process(&redis));
    assert!(first.take("key:returns", rate).await.is_ok());
    tokio::time::sleep(Duration::from_millis(450)).await;
    // The first lease ran out with 9 unspent: they go back to the log.
    assert!(first.take("key:returns", rate).await.is_ok());
    // The fleet has had 1 + a lease of 10 (1 spent so far); the rest is
    // the second process's to take.
    assert_eq!(drain(&second, "key:returns", rate).await, 1000 - 1 - 10);
}

/// Scripts Redis has run since it started.
fn scripts_run(redis: &Redis) -> u64 {
    let out = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "INFO", "commandstats"])
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.starts_with("cmdstat_evalsha:") || line.starts_with("cmdstat_eval:"))
        .filter_map(|line| {
            line.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_waiting_for_a_lease_are_served_by_one_answer() {
    let Some(redis) = redis().await else { return };
    // A small limit: a lease of one request, unless more are waiting.
    let rate = Rate::per_minute(60).unwrap();
    let limits = process(&redis);
    let before = scripts_run(&redis);
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let limits = limits.clone();
            tokio::spawn(async move { limits.take("key:small", rate).await.is_ok() })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        accepted += u32::from(task.await.unwrap());
    }
    assert_eq!(accepted, 40);
    let asked = scripts_run(&redis) - before;
    assert!(asked <= 10, "40 requests asked Redis {asked} times");
}

/// Holds every client's commands for `ms` (Redis's `CLIENT PAUSE`): a Redis
/// that is up but slow to answer, as under load.
fn pause(redis: &Redis, ms: u64) {
    let out = Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "CLIENT",
            "PAUSE",
            &ms.to_string(),
            "ALL",
        ])
        .output()
        .expect("run redis-cli");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("OK"),
        "{out:?}"
    );
}

/// A busy Redis is not a dead one. With the default deadline, an answer
/// that comes within it keeps the decision shared; one that comes after it
/// costs only the requests that waited (counted in their process), and the
/// late answer still counts for the fleet. Neither is an outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_is_not_an_outage() {
    let Some(redis) = redis().await else { return };
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let backend = || {
        Arc::new(LimitBackend::redis(&url, &Identity::new("jt").unwrap(), REDIS_DEADLINE).unwrap())
    };
    let (first, second) = (backend(), backend());
    let rate = Rate::per_minute(1).unwrap();
    // Both connected, before Redis is made slow.
    assert!(first.take("key:warm-1", rate).await.is_ok());
    assert!(second.take("key:warm-2", rate).await.is_ok());

    // Answers within the deadline: decided on Redis, so the other process
    // finds the one request of the minute taken.
    pause(&redis, (REDIS_DEADLINE / 3).as_millis() as u64);
    assert!(first.take("key:slow", rate).await.is_ok());
    assert!(first.redis_in_use(), "a slow answer is not an outage");
    assert!(
        second.take("key:slow", rate).await.is_err(),
        "the slow answer was counted for the fleet"
    );
    let window = jeton_auth::limits::Window {
        max: 3,
        window: Duration::from_secs(60),
    };
    pause(&redis, (REDIS_DEADLINE / 3).as_millis() as u64);
    assert_eq!(first.fail("fail:slow", window).await.count, 1);
    assert_eq!(second.failures("fail:slow", window).await.count, 1);

    // Paused past the deadline, though not for as long as an outage: the
    // request is answered at its deadline, counted in its process, and
    // Redis stays in use.
    pause(&redis, 350);
    let started = std::time::Instant::now();
    assert!(first.take("key:late", rate).await.is_ok());
    let waited = started.elapsed();
    // It waited for Redis (paused) until its deadline, and no longer.
    assert!(
        waited >= REDIS_DEADLINE - Duration::from_millis(20) && waited < REDIS_DEADLINE * 2,
        "{waited:?}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(first.redis_in_use(), "slow, not down");
    assert!(second.redis_in_use(), "slow, not down");
    // The question went on waiting: what Redis granted it counts.
    assert!(second.take("key:late", rate).await.is_err());
}
