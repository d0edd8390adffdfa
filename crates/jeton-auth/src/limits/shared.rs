//! Limits shared through Redis, with leases for rates and a fallback to the
//! process's own limits while Redis is down (see the parent module).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock, PoisonError,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use metrics::{Counter, Gauge};
use redis::{Script, aio::ConnectionManager};

use super::{Failures, LimitBackendError, Rate, RateLimitStatus, Window, seconds_ceil};
use crate::{AuthError, Identity};

/// How often a down Redis is tried again.
const RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// How long a question to Redis may go unanswered before Redis counts as
/// down (unless the deadline is longer). A request waits for the answer only
/// until its deadline, then is counted in this process; the question itself
/// keeps waiting, so that a Redis that is busy rather than gone answers it,
/// and is not declared down, while one that has stopped is found within a
/// second.
const OUTAGE_AFTER: Duration = Duration::from_millis(500);

/// How often, at most, slow answers are logged.
const SLOW_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The longest a lease may be spent for.
const LEASE_LIFETIME: Duration = Duration::from_secs(1);

/// Leases kept at once before the expired ones are dropped.
const LEASE_SWEEP_THRESHOLD: usize = 10_000;

/// A sliding log of leases: members `<count>:<unique id>`, scored by the
/// time they were granted, kept for the period plus a lease's lifetime.
/// First settles the process's previous lease of this key, if any
/// (`ARGV[5]`, its member): it is rewritten to what was spent of it
/// (`ARGV[6]`), so a lease that ran out with requests unspent does not hold
/// them for the rest of the period. Then grants up to `want` of what the log
/// has left; returns `{granted, left after it, ms until the oldest lease
/// leaves, ms until the newest leaves}`. Redis's clock, so that processes'
/// clocks do not matter.
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local hold = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - hold)
if ARGV[5] ~= '' then
  local at = redis.call('ZSCORE', KEYS[1], ARGV[5])
  if at then
    redis.call('ZREM', KEYS[1], ARGV[5])
    local spent = tonumber(ARGV[6])
    if spent > 0 then
      redis.call('ZADD', KEYS[1], at, spent .. ':' .. string.match(ARGV[5], ':(.*)$'))
    end
  end
end
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
    /// Its member in the log: rewritten to what was spent of it when the
    /// next lease of the key is taken.
    member: String,
    granted: u32,
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

/// One key in this process.
#[derive(Default)]
struct KeyState {
    held: Mutex<Option<Held>>,
    /// Held while this process asks Redis for the key: requests that find
    /// the lease spent meanwhile wait for that answer and spend from it,
    /// rather than each asking for, and holding, a batch of their own.
    asking: Arc<tokio::sync::Mutex<()>>,
    /// Requests waiting for `asking`: the next lease asked for covers them.
    waiting: AtomicU32,
}

/// One request counted in [`KeyState::waiting`] until dropped, also when
/// the request goes away while it waits.
struct Waiting<'a>(&'a AtomicU32);

impl<'a> Waiting<'a> {
    fn count(waiting: &'a AtomicU32) -> Waiting<'a> {
        waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(waiting)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl KeyState {
    fn held(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Spends from a lease held here, or repeats a refusal; `None` when
    /// the log must be asked. The time is read under the lock, so that a
    /// request never spends from a lease already settled as run out.
    fn spend(&self, limit: u32) -> Option<Result<RateLimitStatus, AuthError>> {
        let mut held = self.held();
        let now = Instant::now();
        match held.as_mut()? {
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

    /// The previous lease's member and what was spent of it, when it ran
    /// out with requests left: for the log to give them back.
    fn unspent(&self) -> (String, u32) {
        match self.held().as_ref() {
            Some(Held::Lease(lease)) if lease.left > 0 => {
                (lease.member.clone(), lease.granted - lease.left)
            }
            _ => (String::new(), 0),
        }
    }

    /// Keeps what the log answered (see `TAKE`) and counts this request
    /// against it. A lease's lifetime runs from when it was asked for, so
    /// it never outlives what the log counted it for.
    fn record(
        &self,
        answer: &[i64],
        asked: Instant,
        lifetime: Duration,
        limit: u32,
        id: &str,
    ) -> Option<Result<RateLimitStatus, AuthError>> {
        let [granted, left, oldest_leaves, newest_leaves] = answer[..] else {
            return None;
        };
        let now = Instant::now();
        let mut held = self.held();
        if granted <= 0 {
            let wait = millis(oldest_leaves);
            *held = Some(Held::Refused(Refused { until: now + wait }));
            return Some(Err(AuthError::RateLimited {
                limit,
                retry_after_seconds: seconds_ceil(wait).max(1),
            }));
        }
        let granted = u32::try_from(granted).unwrap_or(limit).min(limit);
        let lease = Lease {
            member: format!("{granted}:{id}"),
            granted,
            left: granted - 1,
            until: asked + lifetime,
            fleet_left: u32::try_from(left.max(0)).unwrap_or(0),
            reset: now + millis(newest_leaves),
        };
        let status = RateLimitStatus {
            limit,
            remaining: lease.fleet_left + lease.left,
            reset_seconds: seconds_ceil(millis(newest_leaves)),
        };
        *held = Some(Held::Lease(lease));
        Some(Ok(status))
    }

    /// Worth keeping: a lease or refusal still running, or a request using it.
    fn in_use(self: &Arc<Self>, now: Instant) -> bool {
        Arc::strong_count(self) > 1
            || match self.held().as_ref() {
                Some(Held::Lease(lease)) => now < lease.until && lease.left > 0,
                Some(Held::Refused(refused)) => now < refused.until,
                None => false,
            }
    }
}

struct Connection {
    manager: ConnectionManager,
    /// The longest a request waits for Redis before it is counted here.
    deadline: Duration,
    /// Longer than this without an answer to a question: down.
    outage_after: Duration,
    up: AtomicBool,
    /// Set while a task is trying Redis again.
    retrying: AtomicBool,
    gauge: Gauge,
    fallbacks: Counter,
    /// Requests that Redis, up, did not answer within their deadline.
    slow: Counter,
    /// When a slow answer was last logged.
    slow_logged: Mutex<Option<Instant>>,
}

pub(super) struct Shared {
    connection: Arc<Connection>,
    /// Every key in Redis starts with this.
    namespace: String,
    /// Unique per process: lease members never collide.
    process: u64,
    next_lease: AtomicU64,
    keys: Mutex<HashMap<String, Arc<KeyState>>>,
    scripts: OnceLock<(Script, Script, Script)>,
    /// Limit decisions (a request counted, failures read or counted) made
    /// on Redis and in this process: with Redis up, the second should stay
    /// at zero.
    decided_on_redis: Counter,
    decided_here: Counter,
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
        let outage_after = OUTAGE_AFTER.max(deadline);
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(outage_after))
            .set_response_timeout(Some(outage_after))
            .set_number_of_retries(1)
            .set_max_delay(RETRY_INTERVAL);
        let manager = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| LimitBackendError(e.to_string()))?;
        let gauge = metrics::gauge!(identity.metric_name("limit_backend_redis"));
        gauge.set(1.0);
        let connection = Arc::new(Connection {
            manager,
            deadline,
            outage_after,
            up: AtomicBool::new(true),
            retrying: AtomicBool::new(false),
            gauge,
            fallbacks: metrics::counter!(
                identity.metric_name("limit_backend_redis_fallbacks_total")
            ),
            slow: metrics::counter!(identity.metric_name("limit_backend_redis_slow_answers_total")),
            slow_logged: Mutex::new(None),
        });
        Ok(Shared {
            connection,
            namespace: format!("{}limits:", identity.metric_prefix()),
            process: rand::random(),
            next_lease: AtomicU64::new(0),
            keys: Mutex::new(HashMap::new()),
            scripts: OnceLock::new(),
            decided_on_redis: metrics::counter!(
                identity.metric_name("limit_decisions_total"), "backend" => "redis"
            ),
            decided_here: metrics::counter!(
                identity.metric_name("limit_decisions_total"), "backend" => "process"
            ),
        })
    }

    /// Counts one limit decision: made on Redis, or in this process.
    pub(super) fn decided(&self, on_redis: bool) {
        if on_redis {
            self.decided_on_redis.increment(1);
        } else {
            self.decided_here.increment(1);
        }
    }

    pub(super) fn is_up(&self) -> bool {
        self.connection.up.load(Ordering::Relaxed)
    }

    fn scripts(&self) -> &(Script, Script, Script) {
        self.scripts
            .get_or_init(|| (Script::new(TAKE), Script::new(FAIL), Script::new(FAILURES)))
    }

    /// `key` as this backend's keys are named in Redis (its namespace first).
    fn redis_key(&self, key: &str) -> String {
        format!("{}{key}", self.namespace)
    }

    /// The key's state here, created on first use; expired ones are dropped
    /// once there are many.
    fn key(&self, key: &str) -> Arc<KeyState> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(state) = keys.get(key) {
            return state.clone();
        }
        if keys.len() > LEASE_SWEEP_THRESHOLD {
            let now = Instant::now();
            keys.retain(|_, state| state.in_use(now));
        }
        keys.entry(key.to_owned()).or_default().clone()
    }

    pub(super) async fn take(
        &self,
        key: &str,
        rate: Rate,
    ) -> Option<Result<RateLimitStatus, AuthError>> {
        if !self.is_up() {
            return None;
        }
        let limit = rate.limit.get();
        let state = self.key(key);
        if let Some(spent) = state.spend(limit) {
            return Some(spent);
        }
        // One deadline for the whole wait: for another request's answer,
        // then for this one's.
        let until = tokio::time::Instant::now() + self.connection.deadline;
        let waiting = Waiting::count(&state.waiting);
        let asking = state.asking.clone().lock_owned();
        let asking = tokio::time::timeout_at(until, asking).await;
        drop(waiting);
        let Ok(asking) = asking else {
            // Another request's question has waited as long as a request
            // may: Redis is slow. Asking again would only add to its load.
            self.connection.slow_answer();
            return None;
        };
        if let Some(spent) = state.spend(limit) {
            return Some(spent);
        }
        // About 1% of the limit per lease: what a process can leave unspent
        // stays small, and a busy key asks Redis once per batch. More when
        // more requests are waiting, so that one answer serves them all.
        let want = (limit / 100)
            .max(1)
            .max(state.waiting.load(Ordering::Relaxed).saturating_add(1));
        let (previous, spent) = state.unspent();
        let lifetime = LEASE_LIFETIME.min(rate.period / 10);
        let id = format!(
            "{:x}.{}",
            self.process,
            self.next_lease.fetch_add(1, Ordering::Relaxed)
        );
        let args = [
            (rate.period + lifetime).as_millis().to_string(),
            limit.to_string(),
            want.to_string(),
            id.clone(),
            previous,
            spent.to_string(),
        ];
        let connection = self.connection.clone();
        let script = self.scripts().0.clone();
        let key = self.redis_key(key);
        let asked = Instant::now();
        // In a task of its own, which keeps what Redis granted even if this
        // request stops waiting (its deadline passed, or its client
        // disconnected): a lease counted in the log but kept nowhere would
        // be lost for the period. Requests that come after spend it.
        self.connection
            .within(until, async move {
                let _asking = asking;
                let answer = connection.run(&script, key, &args).await?;
                state.record(&answer, asked, lifetime, limit, &id)
            })
            .await
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

    /// Runs `script` on `key` for a request: its answer, or `None` when
    /// Redis is down or has not answered within the request's deadline.
    async fn ask(&self, script: &Script, key: &str, args: Vec<String>) -> Option<Failures> {
        let until = tokio::time::Instant::now() + self.connection.deadline;
        let connection = self.connection.clone();
        let (script, key) = (script.clone(), self.redis_key(key));
        self.connection
            .within(until, async move {
                Shared::read(connection.run(&script, key, &args).await?)
            })
            .await
    }

    pub(super) async fn failures(&self, key: &str, _window: Window) -> Option<Failures> {
        if !self.is_up() {
            return None;
        }
        self.ask(&self.scripts().2, key, Vec::new()).await
    }

    pub(super) async fn fail(&self, key: &str, window: Window) -> Option<Failures> {
        if !self.is_up() {
            return None;
        }
        let args = vec![window.window.as_millis().max(1).to_string()];
        self.ask(&self.scripts().1, key, args).await
    }

    pub(super) async fn forgive(&self, key: &str) {
        if !self.is_up() {
            return;
        }
        let until = tokio::time::Instant::now() + self.connection.deadline;
        let connection = self.connection.clone();
        let key = self.redis_key(key);
        self.connection
            .within(until, async move {
                let mut manager = connection.manager.clone();
                let mut del = redis::cmd("DEL");
                del.arg(key);
                let del = del.exec_async(&mut manager);
                connection.answered(tokio::time::timeout(connection.outage_after, del).await)
            })
            .await;
    }
}

impl Connection {
    /// Runs a script in Redis on `key` (with its namespace), waiting for
    /// its answer as long as an outage allows: `None` when Redis is down,
    /// which an error or that long a silence declares.
    async fn run(
        self: &Arc<Self>,
        script: &Script,
        key: String,
        args: &[String],
    ) -> Option<Vec<i64>> {
        if !self.up.load(Ordering::Relaxed) {
            return None;
        }
        let mut invocation = script.key(key);
        for arg in args {
            invocation.arg(arg);
        }
        let mut manager = self.manager.clone();
        let answer = invocation.invoke_async(&mut manager);
        self.answered(tokio::time::timeout(self.outage_after, answer).await)
    }

    /// What Redis answered, or the outage its error or silence declares.
    fn answered<T>(
        self: &Arc<Self>,
        answer: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Option<T> {
        match answer {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                self.down(&error.to_string());
                None
            }
            Err(_) => {
                self.down("no answer within the outage window");
                None
            }
        }
    }

    /// Runs `work` (a question to Redis) in a task of its own and waits for
    /// it until `until`: past that, the request is counted in this process
    /// and the answer, when it comes, is only kept (a lease) or dropped.
    async fn within<T: Send + 'static>(
        self: &Arc<Self>,
        until: tokio::time::Instant,
        work: impl Future<Output = Option<T>> + Send + 'static,
    ) -> Option<T> {
        let task = tokio::spawn(work);
        match tokio::time::timeout_at(until, task).await {
            Ok(joined) => joined.ok().flatten(),
            Err(_) => {
                self.slow_answer();
                None
            }
        }
    }

    /// A request that Redis, still up, did not answer within its deadline:
    /// counted, and logged at most once a minute. Not an outage: the limits
    /// stay shared, and only that request was counted in this process.
    fn slow_answer(&self) {
        if !self.up.load(Ordering::Relaxed) {
            return;
        }
        self.slow.increment(1);
        let now = Instant::now();
        let mut logged = self
            .slow_logged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if logged.is_none_or(|at| now.duration_since(at) >= SLOW_LOG_INTERVAL) {
            *logged = Some(now);
            tracing::warn!(
                deadline_ms = self.deadline.as_millis() as u64,
                "Redis is slow (not down): a request's limits were counted per process because \
                 Redis had not answered within the deadline; the limits stay shared"
            );
        }
    }

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
                if let Ok(Ok(_)) = tokio::time::timeout(connection.outage_after, ping).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A request that goes away while it waits for another's lease (its
    /// client disconnected) is no longer counted among those waiting: the
    /// next lease asked for would otherwise grow for good.
    #[tokio::test]
    async fn a_request_gone_while_waiting_is_not_counted() {
        let state = Arc::new(KeyState::default());
        let _asking = state.asking.clone().lock_owned().await;
        let request = {
            let state = state.clone();
            async move {
                let _waiting = Waiting::count(&state.waiting);
                let _ = state.asking.clone().lock_owned().await;
            }
        };
        assert!(
            tokio::time::timeout(Duration::from_millis(10), request)
                .await
                .is_err()
        );
        assert_eq!(state.waiting.load(Ordering::Relaxed), 0);
    }
}
