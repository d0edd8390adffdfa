//! A fleet: two or three `jeton serve` processes with `--redis-url`, one
//! PostgreSQL database (processes of a fleet share one, so these tests run
//! on PostgreSQL only) and one `redis-server`, behind nginx round-robin
//! with the operators' example configuration. Every limit holds for the
//! fleet as a whole (within the limit plus 10%), on the address nginx
//! forwards; when Redis stops, requests are still served under
//! per-process limits and `/metrics` shows it; when it is back, the limits
//! are shared again within seconds. See `docs/fleet.md`.
//!
//! The tests of how exact a shared limit is give Redis a second to answer
//! (`--redis-deadline 1s`): on a loaded test machine, Redis may take longer
//! than the default deadline, and the processes would then rightly count on
//! their own. The outage tests keep the default.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use serde_json::json;

use crate::support::{
    PASSWORD,
    fleet::Fleet,
    process::{STOREFRONT_KEY_ARGS, within},
};

const GAUGE: &str = "jeton_limit_backend_redis";
const FALLBACKS: &str = "jeton_limit_backend_redis_fallbacks_total";

/// A Redis deadline no loaded test machine misses.
const PATIENT: &[&str] = &["--redis-deadline", "1s"];

fn client(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// A storefront key with these limits (`--rate-limit`, `--per-ip-rate-limit`).
fn storefront_key(fleet: &Fleet, per_key: &str, per_ip: &str) -> String {
    let mut args = vec!["--name", "Storefront"];
    args.extend(STOREFRONT_KEY_ARGS);
    args.extend(["--rate-limit", per_key, "--per-ip-rate-limit", per_ip]);
    fleet.key(&args)
}

/// Every process's `GAUGE` reads `value` (1: limits shared through Redis,
/// 0: counted in the process) in a check sent within `limit` of `since`.
async fn gauge_within(fleet: &Fleet, value: f64, limit: Duration, since: Instant, what: &str) {
    let every = vec![Some(value); fleet.servers.len()];
    within(limit, since, what, || async {
        let gauge = fleet.metric(GAUGE).await;
        if gauge == every {
            Ok(())
        } else {
            Err(format!("{gauge:?}"))
        }
    })
    .await;
}

/// How many of `count` catalogue reads through nginx, from `from`, eight
/// at a time, got 200; every other one must be a 429 with its `RateLimit-*`
/// headers.
async fn accepted(fleet: &Fleet, key: &str, from: IpAddr, count: usize) -> usize {
    let mut replies = Vec::new();
    for start in (0..count).step_by(8) {
        let batch = (start..count.min(start + 8))
            .map(|_| fleet.call(from, "GET", "/api/v1/products?limit=1", Some(key), None));
        replies.extend(futures::future::join_all(batch).await);
    }
    let mut ok = 0;
    for res in replies {
        match res.status {
            200 => ok += 1,
            429 => {
                res.expect_problem(429, "rate_limited");
                assert!(res.header("retry-after").is_some(), "{}", res.head);
                assert!(res.header("ratelimit-limit").is_some(), "{}", res.head);
            }
            _ => panic!("unexpected {}: {}", res.status, res.body),
        }
    }
    ok
}

/// The limit plus 10%, rounded up: the most a fleet may accept in a window.
fn with_margin(limit: usize) -> usize {
    limit + limit.div_ceil(10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_limit_holds_across_three_processes() {
    let Some(fleet) = Fleet::start(3, PATIENT).await else {
        return;
    };
    let key = storefront_key(&fleet, "60", "none");
    // Per process, three processes would accept 180.
    let ok = accepted(&fleet, &key, client(2), 120).await;
    assert!(
        (57..=with_margin(60)).contains(&ok),
        "{ok} of 120 accepted at 60 per minute"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_ip_limit_counts_the_address_nginx_forwards() {
    let Some(fleet) = Fleet::start(2, PATIENT).await else {
        return;
    };
    let key = storefront_key(&fleet, "none", "20");
    let ok = accepted(&fleet, &key, client(2), 50).await;
    assert!((19..=with_margin(20)).contains(&ok), "{ok} of 50 accepted");
    // Another client behind the same proxy has its own budget.
    assert_eq!(accepted(&fleet, &key, client(3), 5).await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_throttle_holds_across_processes_and_cannot_lock_the_owner_out() {
    let Some(fleet) = Fleet::start(2, PATIENT).await else {
        return;
    };
    let key = storefront_key(&fleet, "none", "none");
    let email = "owner@example.com";
    let body = json!({"email": email, "password": PASSWORD, "name": "Owner"});
    fleet
        .call(
            client(9),
            "POST",
            "/api/v1/customers",
            Some(&key),
            Some(&body),
        )
        .await
        .expect(201);
    let login = |password: &str| json!({"email": email, "password": password, "device_name": "t"});
    let wrong = login("wrong password!");
    let mut refused = 0;
    // Spread over both processes by nginx: per process, none would be
    // throttled.
    for attempt in 1..=16 {
        let res = fleet
            .call(
                client(2),
                "POST",
                "/api/v1/auth/login",
                Some(&key),
                Some(&wrong),
            )
            .await;
        if attempt <= 10 {
            res.expect_problem(400, "invalid_credentials");
        } else {
            res.expect_problem(429, "rate_limited");
            assert_eq!(res.header("ratelimit-limit").as_deref(), Some("10"));
            refused += 1;
        }
    }
    assert_eq!(refused, 6);
    // The attacker's address stays throttled, even with the right password;
    // the owner, from elsewhere, gets in.
    let right = login(PASSWORD);
    fleet
        .call(
            client(2),
            "POST",
            "/api/v1/auth/login",
            Some(&key),
            Some(&right),
        )
        .await
        .expect_problem(429, "rate_limited");
    fleet
        .call(
            client(3),
            "POST",
            "/api/v1/auth/login",
            Some(&key),
            Some(&right),
        )
        .await
        .expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_then_restarted() {
    let Some(mut fleet) = Fleet::start(2, PATIENT).await else {
        return;
    };
    let key = storefront_key(&fleet, "30", "none");
    assert_eq!(fleet.metric(GAUGE).await, vec![Some(1.0); 2]);

    // Redis goes away: requests are still served, under per-process limits
    // (30 each), and each process shows it.
    fleet.redis.stop();
    let stopped = Instant::now();
    let ok = accepted(&fleet, &key, client(2), 20).await;
    assert_eq!(ok, 20, "served while Redis is down");
    gauge_within(
        &fleet,
        0.0,
        Duration::from_secs(1),
        stopped,
        "the gauge shows the fallback",
    )
    .await;
    assert_eq!(fleet.metric(FALLBACKS).await, vec![Some(1.0); 2]);
    for server in &fleet.servers {
        assert_eq!(
            http_status(server.addr, "/readyz").await,
            200,
            "ready without Redis"
        );
        let log = server.log_text();
        assert_eq!(
            log.matches("Redis is unreachable").count(),
            1,
            "logged once per outage: {log}"
        );
    }

    // Redis is back: shared again within seconds, and a fresh key's limit
    // holds for the fleet again.
    fleet.redis.restart().await;
    let restarted = Instant::now();
    gauge_within(
        &fleet,
        1.0,
        Duration::from_secs(10),
        restarted,
        "the limits are shared again",
    )
    .await;
    let key = storefront_key(&fleet, "30", "none");
    let ok = accepted(&fleet, &key, client(4), 60).await;
    assert!(
        (29..=with_margin(30)).contains(&ok),
        "{ok} of 60 accepted at 30 per minute once Redis is back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_does_not_answer_counts_as_down() {
    let Some(fleet) = Fleet::start(2, &[]).await else {
        return;
    };
    let key = storefront_key(&fleet, "1000", "none");
    assert_eq!(accepted(&fleet, &key, client(2), 4).await, 4);
    // Frozen: connections stay open, nothing answers. Every request is
    // still served (each waits for Redis at most its deadline).
    fleet.redis.pause();
    let paused = Instant::now();
    assert_eq!(accepted(&fleet, &key, client(2), 20).await, 20);
    gauge_within(
        &fleet,
        0.0,
        Duration::from_secs(1),
        paused,
        "the gauge shows the fallback",
    )
    .await;
    fleet.redis.resume();
    let resumed = Instant::now();
    gauge_within(
        &fleet,
        1.0,
        Duration::from_secs(10),
        resumed,
        "the limits are shared again",
    )
    .await;
    assert_eq!(accepted(&fleet, &key, client(2), 4).await, 4);
}

async fn http_status(addr: std::net::SocketAddr, path: &str) -> u16 {
    crate::support::process::http(addr, "GET", path, &[])
        .await
        .expect("a response")
        .0
}
