//! Change notification for the in-process caches.
//!
//! A store method that changes credentials (revocation, rotation) or the
//! catalogue announces it here *after its transaction commits*, and the
//! caches listening drop what they hold. Changes made by other processes
//! (another server, the CLI) arrive through the change feed the server
//! polls, which announces them here the same way.

use std::sync::RwLock;

use super::Db;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// A key or token was revoked, rotated or otherwise changed.
    Credentials,
    /// A product or its stock changed.
    Catalog,
}

type Listener = Box<dyn Fn(Topic) + Send + Sync>;

#[derive(Default)]
pub struct ChangeHub {
    listeners: RwLock<Vec<Listener>>,
}

impl Db {
    /// Calls `listener` on every change announced on this handle (and its
    /// clones).
    pub fn on_change(&self, listener: impl Fn(Topic) + Send + Sync + 'static) {
        self.changes
            .listeners
            .write()
            .expect("listeners lock")
            .push(Box::new(listener));
    }

    /// Announces a committed change.
    pub fn announce(&self, topic: Topic) {
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

/// Where the change feed stands: compared between polls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedPosition {
    /// The newest audit event: every credential change appends one.
    credentials: Option<String>,
    /// The newest product write (orders included: they update stock).
    catalog: Option<i64>,
}

/// How often other processes' changes are looked for: well inside the
/// one-second freshness guarantee.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

impl Db {
    pub async fn feed_position(&self) -> Result<FeedPosition, sqlx::Error> {
        let credentials = sqlx::query_scalar("SELECT MAX(id) FROM audit_events")
            .fetch_one(self.reader())
            .await?;
        let catalog = sqlx::query_scalar("SELECT MAX(updated_at) FROM products")
            .fetch_one(self.reader())
            .await?;
        Ok(FeedPosition {
            credentials,
            catalog,
        })
    }

    /// Polls the change feed and announces what moved, while `alive()`.
    /// This is how a revocation made by another process (the CLI, another
    /// server) reaches this one's caches.
    pub fn spawn_change_watcher(&self, alive: impl Fn() -> bool + Send + 'static) {
        let db = self.clone();
        tokio::spawn(async move {
            let mut last = db.feed_position().await.ok();
            let mut tick = tokio::time::interval(POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while alive() {
                tick.tick().await;
                let Ok(now) = db.feed_position().await else {
                    // Unreachable database: announce everything once it is back.
                    last = None;
                    continue;
                };
                let (credentials_moved, catalog_moved) = match last.replace(now.clone()) {
                    Some(before) => (
                        before.credentials != now.credentials,
                        before.catalog != now.catalog,
                    ),
                    None => (true, true),
                };
                if credentials_moved {
                    db.announce(Topic::Credentials);
                }
                if catalog_moved {
                    db.announce(Topic::Catalog);
                }
            }
        });
    }
}
