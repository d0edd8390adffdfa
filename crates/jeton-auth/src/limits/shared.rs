//! Limits shared through Redis, with leases for rates and a fallback to the
//! process's own limits while Redis is down (see the parent module).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use metrics::{Counter, Gauge};
use redis::{Script, aio::ConnectionManager};

use super::{Failures, LimitBackendError, Rate, Window, seconds_ceil};
use crate::{AuthError, Identity, rate_limit::RateLimitStatus};

/// How often a down Redis is tried again.
const RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// The longest a lease may be spent for.
const LEASE_LIFETIME: Duration = Duration::from_secs(1);

/// Leases kept at once before the expired ones are dropped.
const LEASE_SWEEP_THRESHOLD: usize = 10_000;

/// A sliding log of leases: members `<count>:<unique id>`, scored by the
/// time they were granted, kept for the period plus a lease's lifetime.
/// Grants up to `want` of what the log has left; returns
/// `{granted, left after it, ms until the oldest lease leaves, ms until the
/// newest leaves}`. Redis's clock, so that processes' clocks do not matter.
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local hold = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - hold)
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local used = 0
for i = 1, #entries, 2 do
  used = used + tonumber(string.match(entries[i], '^(%d+)'))
end
local grant = math.max(0, math.min(want, limit - used))
local oldest = now
local newest = now
if #entries > 0 then
  oldest = tonumber(entries[2])
  newest = tonumber(entries[#entries])
end
if grant > 0 then
  redis.call('ZADD', KEYS[1], now, grant .. ':' .. ARGV[4])
  redis.call('PEXPIRE', KEYS[1], hold)
  newest = now
end
return {grant, limit - used - grant, oldest + hold - now, newest + hold - now}
";

/// Counts a failure: `{count, ms left in the window, ms since the latest}`
/// (0, since this is the latest).
const FAIL: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HSET', KEYS[1], 'last', now)
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, math.max(0, redis.call('PTTL', KEYS[1])), 0}
";

/// Reads a key's failures: `{count, ms left in the window, ms since the
/// latest}`.
const FAILURES: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 'n', 'last')
if not v[1] then return {0, 0, 0} end
return {tonumber(v[1]), math.max(0, redis.call('PTTL', KEYS[1])), math.max(0, now - tonumber(v[2]))}
";

/// Requests leased from the shared log, spent here.
struct Lease {
    left: u32,
    until: Instant,
    /// What the fleet had left, and when its window is whole again, when
    /// leased: for the `RateLimit-*` headers.
    fleet_left: u32,
    reset: Instant,
}

/// A refusal the log gave: repeated here until a request can be free.
struct Refused {
    until: Instant,
}

enum Held {
    Lease(Lease),
    Refused(Refused),
}

struct Connection {
    manager: ConnectionManager,
    /// Longer than this without an answer: down.
    deadline: Duration,
    up: AtomicBool,
    /// Set while a task is trying Redis again.
    retrying: AtomicBool,
    gauge: Gauge,
    fallbacks: Counter,
}

pub(super) struct Shared {
    connection: Arc<Connection>,
    /// Every key in Redis starts with this.
    namespace: String,
    /// Unique per process: lease members never collide.
    process: u64,
    next_lease: AtomicU64,
    held: Mutex<HashMap<String, Held>>,
    scripts: OnceLock<(Script, Script, Script)>,
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

impl Shared {
    pub(super) fn connect(
        url: &str,
        identity: &Identity,
        deadline: Duration,
    ) -> Result<Shared, LimitBackendError> {
        let client = redis::Client::open(url).map_err(|e| LimitBackendError(e.to_string()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(deadline * 4))
            .set_response_timeout(Some(deadline))
            .set_number_of_retries(1)
            .set_max_delay(RETRY_INTERVAL);
        let manager = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| LimitBackendError(e.to_string()))?;
        let gauge = metrics::gauge!(identity.metric_name("limit_backend_redis"));
        gauge.set(1.0);
        let connection = Arc::new(Connection {
            manager,
            deadline,
            up: AtomicBool::new(true),
            retrying: AtomicBool::new(false),
            gauge,
            fallbacks: metrics::counter!(
                identity.metric_name("limit_backend_redis_fallbacks_total")
            ),
        });
        Ok(Shared {
            connection,
            namespace: format!("{}limits:", identity.metric_prefix()),
            process: rand::random(),
            next_lease: AtomicU64::new(0),
            held: Mutex::new(HashMap::new()),
            scripts: OnceLock::new(),
        })
    }

    pub(super) fn is_up(&self) -> bool {
        self.connection.up.load(Ordering::Relaxed)
    }

    fn scripts(&self) -> &(Script, Script, Script) {
        self.scripts
            .get_or_init(|| (Script::new(TAKE), Script::new(FAIL), Script::new(FAILURES)))
    }

    /// Runs a script in Redis: `None` when Redis is down or too slow, which
    /// it then counts as an outage.
    async fn run(&self, script: &Script, key: &str, args: &[String]) -> Option<Vec<i64>> {
        if !self.is_up() {
            return None;
        }
        let mut invocation = script.key(format!("{}{key}", self.namespace));
        for arg in args {
            invocation.arg(arg);
        }
        let mut manager = self.connection.manager.clone();
        match tokio::time::timeout(
            self.connection.deadline,
            invocation.invoke_async(&mut manager),
        )
        .await
        {
            Ok(Ok(values)) => Some(values),
            Ok(Err(error)) => {
                self.connection.down(&error.to_string());
                None
            }
            Err(_) => {
                self.connection.down("no answer within the deadline");
                None
            }
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Spends from a lease held here, or repeats a refusal; `None` when
    /// the log must be asked.
    fn spend(
        &self,
        key: &str,
        rate: Rate,
        now: Instant,
    ) -> Option<Result<RateLimitStatus, AuthError>> {
        let mut held = self.held();
        let limit = rate.limit.get();
        match held.get_mut(key)? {
            Held::Lease(lease) if lease.left > 0 && now < lease.until => {
                lease.left -= 1;
                lease.fleet_left = lease.fleet_left.saturating_sub(1);
                Some(Ok(RateLimitStatus {
                    limit,
                    remaining: lease.fleet_left + lease.left,
                    reset_seconds: seconds_ceil(lease.reset.saturating_duration_since(now)),
                }))
            }
            Held::Refused(refused) if now < refused.until => Some(Err(AuthError::RateLimited {
                limit,
                retry_after_seconds: seconds_ceil(refused.until - now).max(1),
            })),
            _ => None,
        }
    }

    pub(super) async fn take(
        &self,
        key: &str,
        rate: Rate,
    ) -> Option<Result<RateLimitStatus, AuthError>> {
        if !self.is_up() {
            return None;
        }
        let now = Instant::now();
        if let Some(spent) = self.spend(key, rate, now) {
            return Some(spent);
        }
        let limit = rate.limit.get();
        // About 1% of the limit per lease: what a process can leave unspent
        // stays small, and a busy key asks Redis once per batch.
        let batch = (limit / 100).max(1);
        let lifetime = LEASE_LIFETIME.min(rate.period / 10);
        let hold = rate.period + lifetime;
        let id = format!(
            "{:x}.{}",
            self.process,
            self.next_lease.fetch_add(1, Ordering::Relaxed)
        );
        let args = [
            hold.as_millis().to_string(),
            limit.to_string(),
            batch.to_string(),
            id,
        ];
        let answer = self.run(&self.scripts().0, key, &args).await?;
        let [granted, left, oldest_leaves, newest_leaves] = answer[..] else {
            return None;
        };
        let now = Instant::now();
        let mut held = self.held();
        if held.len() > LEASE_SWEEP_THRESHOLD {
            held.retain(|_, held| match held {
                Held::Lease(lease) => now < lease.until && lease.left > 0,
                Held::Refused(refused) => now < refused.until,
            });
        }
        if granted <= 0 {
            let wait = millis(oldest_leaves);
            held.insert(key.to_owned(), Held::Refused(Refused { until: now + wait }));
            return Some(Err(AuthError::RateLimited {
                limit,
                retry_after_seconds: seconds_ceil(wait).max(1),
            }));
        }
        let lease = Lease {
            left: granted as u32 - 1,
            until: now + lifetime,
            fleet_left: left.max(0) as u32,
            reset: now + millis(newest_leaves),
        };
        let status = RateLimitStatus {
            limit,
            remaining: lease.fleet_left + lease.left,
            reset_seconds: seconds_ceil(millis(newest_leaves)),
        };
        held.insert(key.to_owned(), Held::Lease(lease));
        Some(Ok(status))
    }

    fn read(answer: Vec<i64>) -> Option<Failures> {
        let [count, window_left, since_last] = answer[..] else {
            return None;
        };
        Some(Failures {
            count: count.clamp(0, i64::from(u32::MAX)) as u32,
            window_left: millis(window_left),
            since_last: millis(since_last),
        })
    }

    pub(super) async fn failures(&self, key: &str, _window: Window) -> Option<Failures> {
        Shared::read(self.run(&self.scripts().2, key, &[]).await?)
    }

    pub(super) async fn fail(&self, key: &str, window: Window) -> Option<Failures> {
        let args = [window.window.as_millis().max(1).to_string()];
        Shared::read(self.run(&self.scripts().1, key, &args).await?)
    }

    pub(super) async fn forgive(&self, key: &str) {
        if !self.is_up() {
            return;
        }
        let mut manager = self.connection.manager.clone();
        let mut del = redis::cmd("DEL");
        del.arg(format!("{}{key}", self.namespace));
        let del = del.exec_async(&mut manager);
        match tokio::time::timeout(self.connection.deadline, del).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => self.connection.down(&error.to_string()),
            Err(_) => self.connection.down("no answer within the deadline"),
        }
    }
}

impl Connection {
    /// The first failure of an outage: logged, counted, and a task tries
    /// Redis again until it answers.
    fn down(self: &Arc<Self>, why: &str) {
        if !self.up.swap(false, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(
            reason = why,
            "Redis is unreachable: limits are counted per process until it is back"
        );
        self.gauge.set(0.0);
        self.fallbacks.increment(1);
        if self.retrying.swap(true, Ordering::AcqRel) {
            return;
        }
        let connection = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RETRY_INTERVAL).await;
                let Some(connection) = connection.upgrade() else {
                    return;
                };
                let mut manager = connection.manager.clone();
                let ping = redis::cmd("PING");
                let ping = ping.query_async::<String>(&mut manager);
                if let Ok(Ok(_)) = tokio::time::timeout(connection.deadline, ping).await {
                    connection.retrying.store(false, Ordering::Release);
                    connection.up.store(true, Ordering::Release);
                    connection.gauge.set(1.0);
                    tracing::info!("Redis is back: limits are shared again");
                    return;
                }
            }
        });
    }
}
