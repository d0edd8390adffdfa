//! Change notification for Jeton's own in-process caches: the catalogue
//! and customers' orders. (Credentials have one feed, jeton-auth's: its
//! store drops the verifier's cached credentials itself, and
//! `http/state.rs` follows it for allowed origins.)
//!
//! A store method that changes the catalogue or an order reports it *after
//! its transaction commits* ([`Db::announce`]), and the caches listening on
//! this process drop what they hold at once. Other processes (another
//! server, the CLI) learn of changes by polling the change feed (the product
//! writes and order changes of the last minute, see [`LOOKBACK`]) every
//! 250 ms. Order changes are told per customer, so a customer's cached
//! reads go only when their own orders change. A change is visible
//! everywhere within one second.

use std::{collections::HashMap, sync::RwLock};

use super::Db;
use crate::domain::ids::CustomerId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// A product or its stock changed.
    Catalog,
    /// A customer's orders changed: one was placed, or changed status.
    /// `None`: any customer's may have (the feed lost track for a while).
    Orders(Option<CustomerId>),
}

type Listener = Box<dyn Fn(&Topic) + Send + Sync>;

/// The feed's stamps and windows are on the system's clock, not the
/// [`Db`]'s: they order changes between processes, which a test's clock
/// does not move.
fn system_micros() -> i64 {
    crate::domain::time::to_micros(time::OffsetDateTime::now_utc())
}

#[derive(Default)]
pub struct ChangeHub {
    listeners: RwLock<Vec<Listener>>,
}

impl Db {
    /// Calls `listener` on every change announced on this handle (and its
    /// clones).
    pub fn on_change(&self, listener: impl Fn(&Topic) + Send + Sync + 'static) {
        self.changes
            .listeners
            .write()
            .expect("listeners lock")
            .push(Box::new(listener));
    }

    /// Tells this process's listeners about a change.
    pub fn announce(&self, topic: &Topic) {
        for listener in self
            .changes
            .listeners
            .read()
            .expect("listeners lock")
            .iter()
        {
            listener(topic);
        }
    }
}

/// How often other processes' changes are looked for: well inside the
/// one-second freshness guarantee.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// How far back each poll looks. A change is stamped (its product's or
/// order's `updated_at`) by the clock of the
/// process that makes it, *before* its transaction commits: it may commit
/// after a change stamped later, and other servers' clocks differ a little.
/// So the feed never asks "did the newest stamp move?", which misses such a
/// change until something newer is written, but "did anything stamped in
/// the last minute change?". That holds as long as a write transaction
/// commits within this long of its stamp (requests time out after 30 s) and
/// servers' clocks agree to within the rest.
pub const LOOKBACK: std::time::Duration = std::time::Duration::from_secs(60);

/// Where the change feed stands: fingerprints of the changes stamped since
/// `since`, compared between polls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedPosition {
    /// Per customer, their orders written since then: how many, and a
    /// checksum of their `updated_at`s, as for products.
    orders: HashMap<CustomerId, (i64, i64)>,
    /// Microseconds since the epoch, on this process's clock.
    since: i64,
    /// Products written since then: how many, and a checksum of their
    /// `updated_at`s (every write moves its row's stamp).
    catalog: (i64, i64),
}

/// What moved between two polls of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedMoves {
    pub catalog: bool,
    /// The customers whose orders changed; `None`: possibly anyone's.
    pub orders: Option<Vec<CustomerId>>,
}

impl Db {
    /// Reads the change feed: where it stands now, and what moved since
    /// `before` (everything, without a `before`). Both answers come from
    /// one window, counted from `before`'s start, so that a change stamped
    /// early but committed late still shows.
    pub async fn poll_feed(
        &self,
        before: Option<&FeedPosition>,
    ) -> Result<(FeedPosition, FeedMoves), sqlx::Error> {
        let lookback = i64::try_from(LOOKBACK.as_micros()).expect("a short lookback");
        let start = system_micros() - lookback;
        // The window `before` counted, and the (later) one to count next.
        let (old, new) = match before {
            Some(before) => (before.since, start.max(before.since)),
            None => (start, start),
        };
        // 1000000007: a stamp moved by less than about 16 minutes always
        // changes the checksum.
        let (old_count, old_sum, new_count, new_sum): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT CAST(COUNT(*) AS BIGINT) AS old_count, \
             CAST(COALESCE(SUM(updated_at % 1000000007), 0) AS BIGINT) AS old_sum, \
             CAST(COALESCE(SUM(CASE WHEN updated_at > $2 THEN 1 ELSE 0 END), 0) AS BIGINT) AS new_count, \
             CAST(COALESCE(SUM(CASE WHEN updated_at > $2 THEN updated_at % 1000000007 ELSE 0 END), 0) AS BIGINT) AS new_sum \
             FROM products WHERE updated_at > $1",
        )
        .bind(old)
        .bind(new)
        .fetch_one(self.reader())
        .await?;
        let catalog_then = (old_count, old_sum);
        let catalog_now = (new_count, new_sum);
        // The same per customer: one row per customer with an order
        // written in the window.
        let orders: Vec<(CustomerId, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT customer_id, CAST(COUNT(*) AS BIGINT) AS old_count, \
             CAST(COALESCE(SUM(updated_at % 1000000007), 0) AS BIGINT) AS old_sum, \
             CAST(COALESCE(SUM(CASE WHEN updated_at > $2 THEN 1 ELSE 0 END), 0) AS BIGINT) AS new_count, \
             CAST(COALESCE(SUM(CASE WHEN updated_at > $2 THEN updated_at % 1000000007 ELSE 0 END), 0) AS BIGINT) AS new_sum \
             FROM orders WHERE updated_at > $1 GROUP BY customer_id",
        )
        .bind(old)
        .bind(new)
        .fetch_all(self.reader())
        .await?;
        let moves = match before {
            Some(before) => {
                let mut then: HashMap<&CustomerId, (i64, i64)> = orders
                    .iter()
                    .map(|(customer, count, sum, _, _)| (customer, (*count, *sum)))
                    .collect();
                // Customers whose fingerprint differs, or who left the
                // window (rows never leave it between two polls, but
                // telling them costs only a cache miss).
                let mut moved: Vec<CustomerId> = before
                    .orders
                    .iter()
                    .filter(|(customer, was)| then.remove(customer).as_ref() != Some(was))
                    .map(|(customer, _)| customer.clone())
                    .collect();
                moved.extend(then.into_keys().cloned());
                FeedMoves {
                    catalog: before.catalog != catalog_then,
                    orders: Some(moved),
                }
            }
            None => FeedMoves {
                catalog: true,
                orders: None,
            },
        };
        let position = FeedPosition {
            since: new,
            orders: orders
                .into_iter()
                .filter(|(_, _, _, count, _)| *count > 0)
                .map(|(customer, _, _, count, sum)| (customer, (count, sum)))
                .collect(),
            catalog: catalog_now,
        };
        Ok((position, moves))
    }

    /// Watches for other processes' changes while `alive()`: polls the
    /// change feed. Returns once the feed's starting position is read, so
    /// that nothing a cache holds was read before it: a change committed before the first poll
    /// would otherwise count as already seen.
    pub async fn watch_changes(&self, alive: impl Fn() -> bool + Send + Sync + 'static) {
        let db = self.clone();
        let mut last = db.poll_feed(None).await.ok().map(|(position, _)| position);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while alive() {
                tick.tick().await;
                // Unreachable database: everything is announced once it is
                // back (`last` is then `None`).
                let Ok((now, moves)) = db.poll_feed(last.as_ref()).await else {
                    last = None;
                    continue;
                };
                last = Some(now);
                if moves.catalog {
                    db.announce(&Topic::Catalog);
                }
                match moves.orders {
                    None => db.announce(&Topic::Orders(None)),
                    Some(customers) => {
                        for customer in customers {
                            db.announce(&Topic::Orders(Some(customer)));
                        }
                    }
                }
            }
        });
    }
}
