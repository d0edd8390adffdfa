//! Change notification for the in-process caches.
//!
//! A store method that changes credentials (revocation, rotation) or the
//! catalogue reports it *after its transaction commits* ([`Db::changed`]),
//! and the caches listening on this process drop what they hold at once.
//!
//! Other processes (another server, the CLI) learn of changes two ways:
//! - on PostgreSQL, credential changes are also sent with `NOTIFY
//!   jeton_changes`, and every server `LISTEN`s: a revocation reaches them
//!   in milliseconds;
//! - on both databases, every server polls the change feed (the newest audit
//!   event and the newest product write) every 250 ms: that covers SQLite,
//!   catalogue changes (an order per `NOTIFY` would serialize commits on
//!   PostgreSQL's notification queue lock), and a lost LISTEN connection.
//!
//! Either way a change is visible everywhere within one second.

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

/// Puts a credential change in the feed; call inside the change's
/// transaction, so the feed never misses a committed change.
pub(crate) async fn record(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO credential_changes (id, at) VALUES ($1, $2)")
        .bind(crate::domain::ids::new_id())
        .bind(crate::domain::time::now_micros())
        .execute(conn)
        .await?;
    Ok(())
}

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

    /// Reports a committed change: to this process's caches at once, and for
    /// credentials on PostgreSQL to every other server through `NOTIFY`.
    pub async fn changed(&self, topic: Topic) {
        self.announce(topic);
        if topic == Topic::Credentials && self.backend() == super::Backend::Postgres {
            let sent = sqlx::query("SELECT pg_notify('jeton_changes', 'credentials')")
                .execute(self.writer())
                .await;
            if let Err(error) = sent {
                // The other servers' polling still sees the change.
                tracing::warn!(%error, "could not notify other servers");
            }
        }
    }

    /// Tells this process's listeners about a change.
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
    /// The newest credential change (see [`record`]).
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

    /// Watches for other processes' changes while `alive()`: polls the
    /// change feed, and on PostgreSQL also listens for `NOTIFY`.
    pub fn spawn_change_watcher(&self, alive: impl Fn() -> bool + Send + Sync + 'static) {
        let alive = std::sync::Arc::new(alive);
        if self.backend() == super::Backend::Postgres {
            let (db, alive) = (self.clone(), alive.clone());
            tokio::spawn(async move { db.listen_for_changes(move || alive()).await });
        }
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

impl Db {
    async fn listen_for_changes(&self, alive: impl Fn() -> bool) {
        let mut listener = match sqlx::postgres::PgListener::connect(&self.url).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot LISTEN for changes; polling only");
                return;
            }
        };
        if let Err(error) = listener.listen("jeton_changes").await {
            tracing::warn!(%error, "cannot LISTEN for changes; polling only");
            return;
        }
        while alive() {
            // Wake up now and then to notice that the app is gone.
            match tokio::time::timeout(std::time::Duration::from_secs(1), listener.recv()).await {
                Ok(Ok(_notification)) => self.announce(Topic::Credentials),
                // Reconnects on the next recv; the poller covers the gap.
                Ok(Err(error)) => tracing::warn!(%error, "LISTEN connection lost"),
                Err(_timeout) => {}
            }
        }
    }
}
