//! [`SqlStore`]: credentials in SQLite or PostgreSQL; its documentation
//! says how it keeps them, follows changes and shares a transaction.

mod records;
mod tx;
mod usage;

pub use records::{ClientInfo, CredentialInfo, KeyInfo};

use records::ClientFilter;
pub use tx::{ClientUpdate, CredentialTx, NewCredential};

use std::{
    collections::HashMap,
    str::FromStr,
    sync::{
        Arc, OnceLock, Weak,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sqlx::{
    AnyConnection, AnyPool, FromRow,
    any::{AnyConnectOptions, AnyPoolOptions, AnyRow},
};
use time::OffsetDateTime;
use tokio::sync::watch;

use super::{
    IssuedToken, NewClient, Refusal, StoreError, StoredCredential, TokenStore, UnknownClient,
};
use crate::{
    Ability, AbilitySet, ClientPrincipal, Clock, GuestPrincipal, HashedToken, Principal,
    TokenFormat, TokenKind, UserPrincipal, limits::Limits,
};

/// How often each process reads the change feed: well inside the one second
/// within which a revocation elsewhere must be honoured.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How long a read of the change feed may take before it counts as failed:
/// a process that cannot read the feed drops its cached credentials.
pub const POLL_TIMEOUT: Duration = Duration::from_millis(500);

/// How long the verifier's lookup may wait for the database (a connection,
/// then the query) before it fails with a [`StoreError`], which the gate
/// answers with a 503.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// A lookup's answer, or a store error once [`LOOKUP_TIMEOUT`] has passed.
async fn within_lookup_timeout<T>(
    lookup: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(LOOKUP_TIMEOUT, lookup)
        .await
        .map_err(|_| StoreError::new(format!("no answer within {LOOKUP_TIMEOUT:?}")))?
        .map_err(StoreError::new)
}

/// When a credential that also ends after `idle` unused (microseconds;
/// `None`: never) ends: the earlier of its absolute end and its last use
/// (`since`) plus `idle`.
fn idle_end(expires_at: i64, since: i64, idle: Option<i64>) -> Result<OffsetDateTime, StoreError> {
    let end = idle.map_or(expires_at, |idle| {
        expires_at.min(since.saturating_add(idle))
    });
    from_micros(end)
        .ok_or("an expiry out of range")
        .map_err(StoreError::new)
}

/// How long [`SqlStore::connect`]'s pool lets a caller wait for a
/// connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Last uses written by one statement: few enough that each statement holds
/// its row locks only briefly, and well under both databases' limits on
/// bound parameters.
const USAGE_CHUNK: usize = 200;

/// The first and the longest wait before listening again after the
/// listening connection failed.
#[cfg(feature = "postgres")]
const LISTEN_RETRY_FIRST: Duration = Duration::from_millis(100);
#[cfg(feature = "postgres")]
const LISTEN_RETRY_MAX: Duration = Duration::from_secs(5);

/// The PostgreSQL channel a change is announced on, when it commits.
pub const NOTIFY_CHANNEL: &str = "jeton_auth_changes";

/// The table the store's migrations are recorded in, apart from an app's
/// own `_sqlx_migrations`.
pub const MIGRATIONS_TABLE: &str = "_jeton_auth_migrations";

impl SqlStore {
    /// How often each process reads the change feed: well inside the one
    /// second within which a revocation elsewhere must be honoured.
    pub const POLL_INTERVAL: Duration = POLL_INTERVAL;
    /// How long a read of the change feed may take before it counts as
    /// failed: a process that cannot read the feed drops its cached
    /// credentials.
    pub const POLL_TIMEOUT: Duration = POLL_TIMEOUT;
    /// How long the verifier's lookup may wait for the database (a
    /// connection, then the query) before it fails with a [`StoreError`],
    /// which the gate answers with a 503.
    pub const LOOKUP_TIMEOUT: Duration = LOOKUP_TIMEOUT;
    /// The PostgreSQL channel a change is announced on, when it commits.
    pub const NOTIFY_CHANNEL: &str = NOTIFY_CHANNEL;
    /// The table the store's migrations are recorded in, apart from an
    /// app's own `_sqlx_migrations`.
    pub const MIGRATIONS_TABLE: &str = MIGRATIONS_TABLE;
}

/// What [`SqlStore`]'s methods fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqlStoreError {
    /// A key was asked for a client that does not exist or is revoked.
    #[error(transparent)]
    UnknownClient(#[from] UnknownClient),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("could not migrate the token store's tables: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A key to rotate, or to obtain an access token with, that does not
    /// exist or is revoked.
    #[error("no live key `{0}`")]
    UnknownKey(String),
    /// An allowed origin that is not `scheme://host[:port]` (nor `*`).
    #[error(transparent)]
    InvalidOrigin(#[from] crate::origin::InvalidOrigin),
    /// A token of another kind than the credential it was stored as.
    #[error("a {} token was given for a {} credential", got.name(), expected.name())]
    WrongKind { expected: TokenKind, got: TokenKind },
}

/// What an app runs in the transaction of a recorded refusal, to record it
/// its own way in the same commit (see [`SqlStore::on_refusal`]).
pub type RefusalHook = Box<
    dyn for<'c> Fn(
            &'c Refusal,
            &'c mut AnyConnection,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c>,
        > + Send
        + Sync,
>;

/// A [`TokenStore`] in SQLite or PostgreSQL (the `sqlite` and `postgres`
/// cargo features): clients, their keys, user tokens, OAuth access tokens,
/// staff sessions and guest tokens in the store's own tables, shared by every process that uses the same
/// database. The store writes every change to them ([`CredentialTx`]) and
/// verifies them.
///
/// ```no_run
/// use jeton_auth::{Ability, Ceilings, Gate, Identity, NewClient, SqlStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let identity = Identity::new("acme")?;
/// // Connects and brings the store's tables up to date.
/// let store = SqlStore::connect("sqlite://acme.db", identity.tokens()).await?;
/// const PRODUCTS_READ: Ability = Ability::from_static("products:read");
/// let shop = store.add_client(NewClient::new([PRODUCTS_READ])).await?;
/// let key = store.issue_publishable_key(&shop).await?;
/// let gate = Gate::builder(identity, store.clone())
///     .ceilings(Ceilings::new().publishable([PRODUCTS_READ]))
///     .build()?;
/// # let _ = (key, gate);
/// # Ok(())
/// # }
/// ```
///
/// **Its tables** are all named `auth_…` and its migrations are recorded in
/// their own table, `_jeton_auth_migrations`, so an app keeps its own tables
/// and runs its own `sqlx` migrator on the same database: neither sees the
/// other's migrations. Both databases take the same SQL through sqlx's
/// `Any` driver: times are BIGINT microseconds since the Unix epoch, ids
/// UUIDv7 text, and tokens are stored only as SHA-256 hex.
///
/// **The verifier's lookup** is one probe of a unique index (the token's
/// hash), joined to the key's client (and for an access token to the key
/// that obtained it); nothing is written per request: the
/// last use of user tokens is written in one batch every few seconds
/// ([`TokenStore::record_usage`]).
///
/// **Revocation across processes**: every change a verifier must not serve
/// stale (a revocation, a rotation, a client's new origins) moves a counter
/// in the database in the change's own transaction. The process that made
/// the change drops its cached credentials once it commits; every other
/// process reads the counter every [`POLL_INTERVAL`](Self::POLL_INTERVAL) and drops its own when
/// it moved, so a revocation is honoured everywhere within a second. On
/// PostgreSQL the change is also sent with `NOTIFY` on [`NOTIFY_CHANNEL`](Self::NOTIFY_CHANNEL),
/// which every process `LISTEN`s to: there it is honoured within
/// milliseconds, and polling covers a lost listening connection. An app
/// that keeps something of its own derived from credentials (allowed
/// origins for CORS) follows the same feed: [`SqlStore::subscribe`].
///
/// **While the database is unreachable** a process cannot tell whether
/// something was revoked meanwhile. By default it drops its cached
/// credentials on every failed read of the counter. With
/// [`SqlStore::with_outage_grace`] it keeps serving what it cached for that
/// long (requests for anything not cached fail with a 503 meanwhile), then
/// drops it; either way, once the database answers again, what it cached
/// is dropped at the next read of the counter, so a revocation committed
/// before the outage is honoured within a second of it. On PostgreSQL a
/// lost listening connection is no more than that: the counter is read
/// then, under the same grace. The counter is read on a connection of its
/// own, so lookups waiting for the pool under load are no outage.
///
/// **Time limits**: a lookup gives up after [`LOOKUP_TIMEOUT`](Self::LOOKUP_TIMEOUT) with a
/// [`StoreError`] (a 503), rather than keeping the request waiting on a
/// database that does not answer.
///
/// **Old rows**: revoked and expired credentials and recorded refusals stay
/// in their tables until [`SqlStore::purge`] removes them; an app calls it
/// now and then (a daily job).
///
/// **An app's own columns and transactions**: what an app keeps about a
/// client or a token beyond these (a name, an owner) goes in its own table,
/// keyed by the credential's id. Every credential change is a method of
/// [`CredentialTx`], a transaction the app may share ([`SqlStore::within`]
/// its own, or [`SqlStore::begin`]): the app writes its own rows (an audit
/// event, a name) on the same connection and everything commits together,
/// the change feed included. The app never writes the store's tables
/// itself. The methods of [`SqlStore`] that change something each run one
/// such transaction of their own. Apply [`SqlStore::migrator`] before the
/// app's own migrations when those refer to the store's tables.
///
/// Clones share one pool and one view of the
/// change feed: keep one to issue and revoke tokens, give another to the
/// [`Gate`](crate::Gate).
#[derive(Clone)]
pub struct SqlStore(Arc<Shared>);

struct Shared {
    /// Lookups and reads.
    pool: AnyPool,
    /// The change feed's reads: a connection of their own, so that a read
    /// never waits behind lookups for a pooled connection, which would
    /// count as an outage under load. The lookups' pool for an in-memory
    /// SQLite database, whose one connection is the database.
    feed_pool: AnyPool,
    /// The store's own writes: [`SqlStore::begin`], last uses, refusals.
    /// The same pool unless [`SqlStore::with_writer`] gave another.
    writer: OnceLock<AnyPool>,
    format: TokenFormat,
    /// What [`TokenStore::generation`] answers: moved by this process's own
    /// changes at once, and by the watcher when the feed moved.
    generation: AtomicU64,
    /// The same number, for [`SqlStore::subscribe`]rs.
    changes: watch::Sender<u64>,
    /// How long cached credentials are still served while the feed cannot
    /// be read; zero unless [`SqlStore::with_outage_grace`] set it.
    outage_grace: OnceLock<Duration>,
    /// When the feed's reads started failing, while they do.
    outage_since: std::sync::Mutex<Option<Instant>>,
    /// Run with each recorded refusal, in its transaction.
    on_refusal: OnceLock<RefusalHook>,
    /// The feed's counter as the watcher last read it; -1 before the first
    /// read and after a failed one.
    feed: AtomicI64,
    /// Whether the last read of the feed failed: an outage is logged when
    /// it starts and when it ends, not on every failed read.
    feed_down: AtomicBool,
    /// What this store stamps its own times on; the system's unless
    /// [`SqlStore::with_clock`] set another.
    clock: OnceLock<Clock>,
    /// How long a staff session lives unused; none unless
    /// [`SqlStore::with_staff_idle_timeout`] set it.
    staff_idle: OnceLock<Duration>,
}

/// A refusal as recorded (see [`TokenStore::record_refusal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedRefusal {
    /// The key or token that was refused.
    pub credential_id: String,
    pub client_id: Option<String>,
    /// `origin_not_allowed` or `secret_key_in_browser`.
    pub code: String,
    pub origin: Option<String>,
    pub client_ip: Option<String>,
    pub at: OffsetDateTime,
}

impl<'r> FromRow<'r, AnyRow> for RecordedRefusal {
    fn from_row(row: &'r AnyRow) -> Result<RecordedRefusal, sqlx::Error> {
        use sqlx::Row as _;
        let at: i64 = row.try_get("at")?;
        Ok(RecordedRefusal {
            credential_id: row.try_get("credential_id")?,
            client_id: row.try_get("client_id")?,
            code: row.try_get("code")?,
            origin: row.try_get("origin")?,
            client_ip: row.try_get("client_ip")?,
            at: from_micros(at).ok_or_else(|| sqlx::Error::ColumnDecode {
                index: "at".to_owned(),
                source: "a time out of range".into(),
            })?,
        })
    }
}

/// What [`SqlStore::purge`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Purged {
    /// Revoked or expired keys and tokens, of every kind: the five below.
    pub credentials: u64,
    pub keys: u64,
    pub user_tokens: u64,
    pub access_tokens: u64,
    pub staff_sessions: u64,
    /// Guest tokens revoked, past their absolute end or idle past their
    /// idle timeout (by the last use written).
    pub guest_tokens: u64,
    /// Revoked clients left with no keys or tokens.
    pub clients: u64,
    pub refusals: u64,
}

impl SqlStore {
    /// Connects to `url` (`sqlite://PATH`, `sqlite::memory:`, or
    /// `postgres://…`), brings the store's tables up to date and starts
    /// following the change feed. A SQLite file is created when missing and
    /// put in WAL mode. Call it inside a Tokio runtime.
    ///
    /// An in-memory SQLite database lives as long as its one connection,
    /// which the pool keeps open for good: it is lost with the process.
    ///
    /// It installs sqlx's default drivers for the `Any` driver
    /// (`sqlx::any::install_default_drivers`, which an app that uses `Any`
    /// may call too, before or after). An app that installed a set of its
    /// own with `sqlx::any::install_drivers` keeps it; it needs SQLite's or
    /// PostgreSQL's in it.
    pub async fn connect(url: &str, format: TokenFormat) -> Result<SqlStore, SqlStoreError> {
        // sqlx panics when the app installed a set of its own first: that
        // set stays, and a URL it has no driver for fails below as an error.
        let _ = std::panic::catch_unwind(sqlx::any::install_default_drivers);
        let options = AnyPoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
        let pool = if url.starts_with("sqlite:") {
            let memory = url.contains(":memory:") || url.contains("mode=memory");
            let options = if memory {
                // Each connection to an in-memory database is a database
                // of its own, gone when it closes: one connection, never
                // recycled.
                options
                    .max_connections(1)
                    .min_connections(1)
                    .max_lifetime(None)
                    .idle_timeout(None)
            } else {
                options.max_connections(10)
            };
            // Writers queue on the busy timeout. Every write transaction
            // here writes before it reads, so none ever has to upgrade a
            // read lock, which is where SQLite deadlocks.
            options
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        let wal = ["PRAGMA journal_mode = WAL"];
                        let always = ["PRAGMA busy_timeout = 5000", "PRAGMA foreign_keys = ON"];
                        let pragmas = if memory { &[][..] } else { &wal[..] };
                        for pragma in pragmas.iter().chain(&always) {
                            sqlx::query(*pragma).execute(&mut *conn).await?;
                        }
                        Ok(())
                    })
                })
                .connect_with(AnyConnectOptions::from_str(&with_create_mode(url))?)
                .await?
        } else {
            options.connect(url).await?
        };
        let store = SqlStore::from_pool(pool, format).await;
        store.migrate().await?;
        Ok(store)
    }

    /// On an app's own pool (sqlx's `Any` driver, SQLite or PostgreSQL),
    /// following the change feed from now on, on one connection of its own
    /// to the same database (on PostgreSQL a second one listens). It does
    /// not migrate: call
    /// [`SqlStore::migrate`] first, once per deployment or at start-up.
    /// Call it inside a Tokio runtime.
    pub async fn from_pool(pool: AnyPool, format: TokenFormat) -> SqlStore {
        let store = SqlStore(Arc::new(Shared {
            feed_pool: feed_pool(&pool),
            pool,
            writer: OnceLock::new(),
            format,
            generation: AtomicU64::new(0),
            changes: watch::Sender::new(0),
            feed: AtomicI64::new(-1),
            feed_down: AtomicBool::new(false),
            outage_grace: OnceLock::new(),
            outage_since: std::sync::Mutex::new(None),
            on_refusal: OnceLock::new(),
            clock: OnceLock::new(),
            staff_idle: OnceLock::new(),
        }));
        store.poll_feed().await;
        tokio::spawn(watch_feed(Arc::downgrade(&store.0)));
        #[cfg(feature = "postgres")]
        let url = store.0.pool.connect_options().database_url.clone();
        #[cfg(feature = "postgres")]
        if url.scheme().starts_with("postgres") {
            tokio::spawn(listen_for_changes(url.into(), Arc::downgrade(&store.0)));
        }
        store
    }

    /// Stamps this store's own times (issuing, revocations, a rotation's
    /// grace, refusals) on `clock` instead of the system's: a test gives it
    /// the clock it gives the gate ([`GateBuilder::clock`](crate::GateBuilder::clock)),
    /// so that moving that clock past a grace ends it.
    ///
    /// # Panics
    /// When the store has already read its clock: call it right after
    /// connecting, before the store is used.
    pub fn with_clock(self, clock: Clock) -> SqlStore {
        assert!(
            self.0.clock.set(clock).is_ok(),
            "SqlStore::with_clock is called before the store is used"
        );
        self
    }

    /// Ends a staff session that has not been used for `idle`, whatever
    /// its absolute end: the verifier is told it expires at the earlier of
    /// that end and its last use (or its creation) plus `idle`. Last uses
    /// are written every few seconds and a verified session is cached for
    /// at most the cache's time to live, so an idle session stops within
    /// that much of `idle` and an active one never does.
    ///
    /// # Panics
    /// When called twice.
    pub fn with_staff_idle_timeout(self, idle: Duration) -> SqlStore {
        assert!(
            self.0.staff_idle.set(idle).is_ok(),
            "SqlStore::with_staff_idle_timeout is called once"
        );
        self
    }

    /// Writes through `writer` (a pool on the same database) instead of
    /// the lookups' pool: on SQLite, an app that queues its writes on one
    /// connection gives the store that one too.
    ///
    /// # Panics
    /// When called twice.
    pub fn with_writer(self, writer: AnyPool) -> SqlStore {
        assert!(
            self.0.writer.set(writer).is_ok(),
            "SqlStore::with_writer is called once"
        );
        self
    }

    /// Keeps serving cached credentials for up to `grace` while the change
    /// feed cannot be read (the database is down or slow), instead of
    /// dropping them at the first failed read: an outage of the database
    /// then does not become an outage of every authenticated route at
    /// once. A credential revoked before the outage may be served that
    /// long, never longer; once the feed is read again, what was cached is
    /// dropped.
    ///
    /// # Panics
    /// When called twice.
    pub fn with_outage_grace(self, grace: Duration) -> SqlStore {
        assert!(
            self.0.outage_grace.set(grace).is_ok(),
            "SqlStore::with_outage_grace is called once"
        );
        self
    }

    /// Runs `hook` with every refusal the store records (see
    /// [`TokenStore::record_refusal`]), in the same transaction: an app
    /// records its own audit event of it in the same commit.
    ///
    /// # Panics
    /// When called twice.
    pub fn on_refusal(self, hook: RefusalHook) -> SqlStore {
        assert!(
            self.0.on_refusal.set(hook).is_ok(),
            "SqlStore::on_refusal is called once"
        );
        self
    }

    /// A receiver that sees every change of credentials this process learns
    /// of, its own and other processes' (through the feed), and every
    /// dropping of caches during an outage: an app refreshes what it keeps
    /// derived from credentials (allowed origins for CORS) when it moves.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.changes.subscribe()
    }

    fn now_micros(&self) -> i64 {
        to_micros(self.now())
    }

    fn now(&self) -> OffsetDateTime {
        self.0.clock.get_or_init(Clock::system).now()
    }

    fn writer(&self) -> &AnyPool {
        self.0.writer.get().unwrap_or(&self.0.pool)
    }

    /// Creates or updates the store's tables, beside an app's own migrator.
    /// On PostgreSQL several processes may run it at once (sqlx locks the
    /// database meanwhile); on SQLite, start one process first.
    pub async fn migrate(&self) -> Result<(), SqlStoreError> {
        SqlStore::migrator().run(&self.0.pool).await?;
        Ok(())
    }

    /// The store's migrations, recorded in [`Self::MIGRATIONS_TABLE`]: for an
    /// app that brings its database up to date before it opens the store,
    /// or whose own migrations build on the store's tables (run these
    /// first).
    pub fn migrator() -> sqlx::migrate::Migrator {
        let mut migrator = sqlx::migrate!("./migrations");
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        migrator
    }

    /// The pool, for an app that keeps its own tables beside the store's.
    pub fn pool(&self) -> &AnyPool {
        &self.0.pool
    }

    /// Adds a client application; returns its id.
    pub async fn add_client(&self, client: NewClient) -> Result<String, SqlStoreError> {
        let mut tx = self.begin().await?;
        let done = tx.add_client(&client).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Changes a live client's abilities, origins or limits; whether there
    /// was a live client.
    pub async fn update_client(
        &self,
        client_id: &str,
        update: ClientUpdate,
    ) -> Result<bool, SqlStoreError> {
        let mut tx = self.begin().await?;
        let done = tx.update_client(client_id, &update).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// A publishable key for the client: for browser code, public by
    /// design.
    pub async fn issue_publishable_key(
        &self,
        client_id: &str,
    ) -> Result<IssuedToken, SqlStoreError> {
        self.issue(NewCredential::key(TokenKind::Publishable, client_id))
            .await
    }

    /// A secret key for the client: for its servers only.
    pub async fn issue_secret_key(&self, client_id: &str) -> Result<IssuedToken, SqlStoreError> {
        self.issue(NewCredential::key(TokenKind::Secret, client_id))
            .await
    }

    /// Stores a new credential of any kind, with a token generated for it.
    pub async fn issue(&self, new: NewCredential) -> Result<IssuedToken, SqlStoreError> {
        let mut tx = self.begin().await?;
        let done = tx.issue(new).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// A new key of the same kind for the same client; the old one keeps
    /// working for `grace` (zero: it stops now), so the client's servers
    /// can switch without an outage.
    pub async fn rotate_key(
        &self,
        key_id: &str,
        grace: Duration,
    ) -> Result<IssuedToken, SqlStoreError> {
        let mut tx = self.begin().await?;
        let done = tx.rotate_key(key_id, grace).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// A user token for `user_id` (the app's id for the person), holding
    /// `abilities` until `expires_at` (`None`: until revoked).
    pub async fn issue_user_token(
        &self,
        user_id: &str,
        abilities: impl IntoIterator<Item = Ability>,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<IssuedToken, SqlStoreError> {
        self.issue(NewCredential::user(user_id, abilities).expires_at(expires_at))
            .await
    }

    /// A user token issued through a client (the one whose publishable key
    /// logged the person in): the token carries that client's allowed
    /// origins while the client lives, which is where a
    /// [cookie session](crate::session::CookieSessions) may be used from.
    pub async fn issue_user_token_via(
        &self,
        client_id: &str,
        user_id: &str,
        abilities: impl IntoIterator<Item = Ability>,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<IssuedToken, SqlStoreError> {
        let new = NewCredential::user(user_id, abilities)
            .via(client_id)
            .expires_at(expires_at);
        self.issue(new).await
    }

    /// Revokes one token or key by its id; whether there was a live one.
    pub async fn revoke(&self, token_id: &str) -> Result<bool, SqlStoreError> {
        let mut tx = self.begin().await?;
        let done = tx.revoke(token_id).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Revokes every live token of a person (log out everywhere); how many.
    pub async fn revoke_user_tokens(&self, user_id: &str) -> Result<u64, SqlStoreError> {
        let mut tx = self.begin().await?;
        let done = tx.revoke_user_tokens(user_id).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Revokes every live user token issued through the client
    /// ([`issue_user_token_via`](SqlStore::issue_user_token_via)); how
    /// many. With [`revoke_client`](SqlStore::revoke_client), nothing the
    /// client ever handed out works any more.
    pub async fn revoke_client_tokens(&self, client_id: &str) -> Result<u64, SqlStoreError> {
        let mut tx = self.begin().await?;
        let done = tx.revoke_client_tokens(client_id).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Revokes a client and its keys (publishable and secret); whether
    /// there was a live one. User tokens issued through it stay valid, no
    /// longer bound to its origins (a person logged in through a website
    /// stays logged in to the app): revoke them with
    /// [`revoke_client_tokens`](SqlStore::revoke_client_tokens).
    pub async fn revoke_client(&self, client_id: &str) -> Result<bool, SqlStoreError> {
        let mut tx = self.begin().await?;
        let done = tx.revoke_client(client_id).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// After a committed change: nothing this process cached before it is
    /// served again. Other processes learn of it from the feed.
    fn changed(&self) {
        let now = self.0.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.changes.send_replace(now);
    }

    /// Reads the feed's counter; a move since the last read drops what this
    /// process cached. So does a read that fails or takes longer than
    /// [`POLL_TIMEOUT`](Self::POLL_TIMEOUT) once the outage has lasted longer than the outage
    /// grace (at once without one): a revocation elsewhere may have gone
    /// unseen. The first read that succeeds after a failed one drops what
    /// was cached too.
    async fn poll_feed(&self) {
        let read = tokio::time::timeout(
            POLL_TIMEOUT,
            sqlx::query_scalar::<_, i64>("SELECT generation FROM auth_changes WHERE id = 1")
                .fetch_one(&self.0.feed_pool),
        )
        .await;
        let now = match read {
            Ok(Ok(now)) => {
                if self.0.feed_down.swap(false, Ordering::AcqRel) {
                    tracing::info!("the credential change feed is readable again");
                }
                *self.0.outage_since.lock().expect("outage lock") = None;
                now
            }
            // Closed meanwhile: the app is done with the store.
            Ok(Err(sqlx::Error::PoolClosed)) => return,
            failed => {
                let grace = self.0.outage_grace.get().copied().unwrap_or_default();
                if !self.0.feed_down.swap(true, Ordering::AcqRel) {
                    let error = match failed {
                        Ok(Err(error)) => error.to_string(),
                        _ => format!("no answer within {POLL_TIMEOUT:?}"),
                    };
                    tracing::warn!(
                        %error,
                        "cannot read the credential change feed; \
                         cached credentials are served for {grace:?} at most"
                    );
                }
                self.0.feed.store(-1, Ordering::Release);
                let since = *self
                    .0
                    .outage_since
                    .lock()
                    .expect("outage lock")
                    .get_or_insert_with(Instant::now);
                if since.elapsed() >= grace {
                    self.changed();
                }
                return;
            }
        };
        if self.0.feed.swap(now, Ordering::AcqRel) != now {
            self.changed();
        }
    }

    /// Deletes what no longer serves, older than `older_than`: keys and
    /// tokens revoked or expired before it and the refusals recorded of
    /// them, and clients revoked before it that no key or token refers to
    /// any more. Nothing it deletes could be verified: caches are
    /// unaffected.
    pub async fn purge(&self, older_than: OffsetDateTime) -> Result<Purged, SqlStoreError> {
        let mut tx = self.begin().await?;
        let done = tx.purge(older_than).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Writes the last uses of a few tokens: one statement for user
    /// tokens, and one for staff sessions and one for guest tokens if any
    /// of the ids is one (ids are unique across the tables; a read finds
    /// them, so that a flush without them writes what it always did).
    async fn record_usage_chunk(&self, chunk: &[(String, i64)]) -> Result<(), sqlx::Error> {
        update_last_uses(self.writer(), "auth_credentials", chunk).await?;
        for table in ["auth_staff_sessions", "auth_guest_tokens"] {
            let sql = format!(
                "SELECT id FROM {table} WHERE id IN ({})",
                records::placeholders(1, chunk.len())
            );
            let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
            for (id, _) in chunk {
                query = query.bind(id.as_str());
            }
            let found = query.fetch_all(self.writer()).await?;
            if !found.is_empty() {
                let uses: Vec<(String, i64)> = chunk
                    .iter()
                    .filter(|(id, _)| found.contains(id))
                    .cloned()
                    .collect();
                update_last_uses(self.writer(), table, &uses).await?;
            }
        }
        Ok(())
    }

    /// The latest refusals of the client's keys, newest first.
    pub async fn refusals(
        &self,
        client_id: &str,
        limit: u32,
    ) -> Result<Vec<RecordedRefusal>, SqlStoreError> {
        Ok(sqlx::query_as(
            "SELECT credential_id, client_id, code, origin, client_ip, at FROM auth_refusals \
             WHERE client_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(client_id)
        .bind(i64::from(limit))
        .fetch_all(&self.0.pool)
        .await?)
    }

    /// When a user token was last used, as the verifier last reported.
    pub async fn last_used(&self, token_id: &str) -> Result<Option<OffsetDateTime>, SqlStoreError> {
        Ok(self
            .credential(token_id)
            .await?
            .and_then(|credential| credential.last_used_at))
    }

    /// A credential of any kind by its id, revoked or not.
    pub async fn credential(&self, id: &str) -> Result<Option<CredentialInfo>, SqlStoreError> {
        let mut conn = self.0.pool.acquire().await?;
        Ok(records::credential(&mut conn, id).await?)
    }

    /// The credentials with these ids, in no particular order; unknown ids
    /// are left out.
    pub async fn credentials(&self, ids: &[String]) -> Result<Vec<CredentialInfo>, SqlStoreError> {
        let mut conn = self.0.pool.acquire().await?;
        Ok(records::credentials(&mut conn, ids).await?)
    }

    /// A person's live user tokens (neither revoked nor expired), newest
    /// first, older than the token `before`: a page of at most `limit`.
    pub async fn user_tokens(
        &self,
        user_id: &str,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CredentialInfo>, SqlStoreError> {
        let mut conn = self.0.pool.acquire().await?;
        let now = self.now_micros();
        Ok(records::user_tokens(&mut conn, user_id, now, before, limit).await?)
    }

    /// A client with its working keys, revoked or not.
    pub async fn client(&self, client_id: &str) -> Result<Option<ClientInfo>, SqlStoreError> {
        Ok(self.clients(&[client_id.to_owned()]).await?.pop())
    }

    /// The clients with these ids (revoked ones too) with their working
    /// keys, by id; unknown ids are left out.
    pub async fn clients(&self, ids: &[String]) -> Result<Vec<ClientInfo>, SqlStoreError> {
        let mut conn = self.0.pool.acquire().await?;
        let now = self.now_micros();
        Ok(records::clients(&mut conn, ids, now).await?)
    }

    /// Clients by id after `after` (revoked ones too), with their working
    /// keys: a page of at most `limit`.
    pub async fn list_clients(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ClientInfo>, SqlStoreError> {
        let mut conn = self.0.pool.acquire().await?;
        let now = self.now_micros();
        Ok(records::list_clients(&mut conn, after, limit, now, ClientFilter::All).await?)
    }

    /// [`list_clients`](SqlStore::list_clients), only those with a working
    /// key a browser sent: a recorded `secret_key_in_browser` refusal (see
    /// [`KeyInfo`]). A leaked key, to rotate.
    pub async fn list_exposed_clients(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ClientInfo>, SqlStoreError> {
        let mut conn = self.0.pool.acquire().await?;
        let now = self.now_micros();
        let filter = ClientFilter::Exposed;
        Ok(records::list_clients(&mut conn, after, limit, now, filter).await?)
    }

    /// How many of a person's user tokens are live (neither revoked nor
    /// expired): what [`user_tokens`](SqlStore::user_tokens) pages through.
    pub async fn count_user_tokens(&self, user_id: &str) -> Result<u64, SqlStoreError> {
        let mut conn = self.0.pool.acquire().await?;
        let now = self.now_micros();
        Ok(records::count_user_tokens(&mut conn, user_id, now).await?)
    }

    /// Every live client's allowed origins (client id → origins), for an
    /// app that answers CORS preflights itself; clients with none are left
    /// out.
    pub async fn live_origins(&self) -> Result<HashMap<String, Vec<String>>, SqlStoreError> {
        let mut conn = self.0.pool.acquire().await?;
        Ok(records::live_origins(&mut conn).await?)
    }

    async fn find(
        &self,
        kind: TokenKind,
        hash: &HashedToken,
    ) -> Result<Option<StoredCredential>, StoreError> {
        let lookup = sqlx::query_as::<_, Row>(
            "SELECT t.id, t.client_id, t.user_id, t.abilities, t.expires_at, t.revoked_at, \
             c.revoked_at AS client_revoked_at, c.abilities AS client_abilities, \
             c.allowed_origins, c.per_key_limit, c.per_ip_limit \
             FROM auth_credentials t LEFT JOIN auth_clients c ON c.id = t.client_id \
             WHERE t.token_hash = $1 AND t.kind = $2",
        )
        .bind(hash.to_hex())
        .bind(kind.name())
        .fetch_optional(&self.0.pool);
        let found = within_lookup_timeout(lookup).await?;
        found.map_or(Ok(None), |row| row.credential(kind))
    }

    /// An access token lives while it, its client and the secret key that
    /// obtained it do: it expires with that key's rotation grace too. A
    /// rotation or revocation after the token was issued moves the change
    /// feed, so a cached copy is read again with the key's new date.
    async fn find_access_token(
        &self,
        hash: &HashedToken,
    ) -> Result<Option<StoredCredential>, StoreError> {
        let lookup = sqlx::query_as::<_, AccessRow>(
            "SELECT a.id, a.client_id, a.scope, a.expires_at, k.expires_at AS key_expires_at, \
             c.per_key_limit, c.per_ip_limit, \
             CAST(CASE WHEN a.revoked_at IS NULL AND k.revoked_at IS NULL \
             AND c.revoked_at IS NULL THEN 0 ELSE 1 END AS BIGINT) AS revoked \
             FROM auth_access_tokens a \
             JOIN auth_credentials k ON k.id = a.key_id JOIN auth_clients c ON c.id = a.client_id \
             WHERE a.token_hash = $1",
        )
        .bind(hash.to_hex())
        .fetch_optional(&self.0.pool);
        let found = within_lookup_timeout(lookup).await?;
        let Some(token) = found else { return Ok(None) };
        let at = |micros: i64| from_micros(micros).ok_or("an expiry out of range");
        let own = at(token.expires_at).map_err(StoreError::new)?;
        let expires_at = match token.key_expires_at {
            Some(key) => own.min(at(key).map_err(StoreError::new)?),
            None => own,
        };
        let scope = AbilitySet::parse_spaced(&token.scope).map_err(StoreError::new)?;
        // Refused from any browser, as the secret key it stands for: no
        // allowed origins.
        let client = ClientPrincipal::new(token.client_id, token.id, scope).with_limits(Limits {
            per_key: stored_limit(token.per_key_limit),
            per_ip: stored_limit(token.per_ip_limit),
        });
        Ok(Some(StoredCredential {
            principal: Principal::AccessToken(client.into()),
            expires_at: Some(expires_at),
            revoked: token.revoked != 0,
        }))
    }

    /// A staff session ends at the earlier of its absolute end and its
    /// last use (or its creation) plus the idle timeout. A role change
    /// rewrites its abilities and moves the change feed.
    async fn find_staff_session(
        &self,
        hash: &HashedToken,
    ) -> Result<Option<StoredCredential>, StoreError> {
        let lookup = sqlx::query_as::<_, StaffRow>(
            "SELECT id, staff_id, abilities, created_at, expires_at, last_used_at, \
             CAST(CASE WHEN revoked_at IS NULL THEN 0 ELSE 1 END AS BIGINT) AS revoked \
             FROM auth_staff_sessions WHERE token_hash = $1",
        )
        .bind(hash.to_hex())
        .fetch_optional(&self.0.pool);
        let found = within_lookup_timeout(lookup).await?;
        let Some(session) = found else {
            return Ok(None);
        };
        let idle = self
            .0
            .staff_idle
            .get()
            .map(|idle| i64::try_from(idle.as_micros()).unwrap_or(i64::MAX));
        let since = session.last_used_at.unwrap_or(session.created_at);
        let expires_at = idle_end(session.expires_at, since, idle)?;
        let abilities = AbilitySet::parse_spaced(&session.abilities).map_err(StoreError::new)?;
        let member = UserPrincipal::new(session.staff_id, session.id, abilities)
            .with_expires_at(Some(expires_at));
        Ok(Some(StoredCredential {
            principal: Principal::Staff(member.into()),
            expires_at: Some(expires_at),
            revoked: session.revoked != 0,
        }))
    }

    /// A guest token ends at the earlier of its absolute end and its last
    /// use (or its creation) plus its idle timeout, and with its client.
    async fn find_guest_token(
        &self,
        hash: &HashedToken,
    ) -> Result<Option<StoredCredential>, StoreError> {
        let lookup = sqlx::query_as::<_, GuestRow>(
            "SELECT g.id, g.client_id, g.origin, g.abilities, g.created_at, g.expires_at, \
             g.idle_timeout, g.last_used_at, \
             CAST(CASE WHEN g.revoked_at IS NULL AND c.revoked_at IS NULL THEN 0 ELSE 1 END \
             AS BIGINT) AS revoked \
             FROM auth_guest_tokens g JOIN auth_clients c ON c.id = g.client_id \
             WHERE g.token_hash = $1",
        )
        .bind(hash.to_hex())
        .fetch_optional(&self.0.pool);
        let found = within_lookup_timeout(lookup).await?;
        let Some(guest) = found else {
            return Ok(None);
        };
        let since = guest.last_used_at.unwrap_or(guest.created_at);
        let expires_at = idle_end(guest.expires_at, since, guest.idle_timeout)?;
        let abilities = AbilitySet::parse_spaced(&guest.abilities).map_err(StoreError::new)?;
        let principal = GuestPrincipal::new(guest.id, guest.client_id, abilities)
            .with_origin(guest.origin)
            .with_expires_at(Some(expires_at));
        Ok(Some(StoredCredential {
            principal: Principal::Guest(principal.into()),
            expires_at: Some(expires_at),
            revoked: guest.revoked != 0,
        }))
    }

    /// Records a refusal, and the app's own record of it, in one
    /// transaction.
    async fn write_refusal(&self, refusal: &Refusal) -> Result<(), sqlx::Error> {
        let (credential_id, client_id) = match &refusal.principal {
            Principal::User(user) | Principal::Staff(user) => {
                (user.token_id.clone(), user.client_id.clone())
            }
            Principal::Guest(guest) => (guest.token_id.clone(), Some(guest.client_id.clone())),
            principal => match principal.client() {
                Some(client) => (client.key_id.clone(), Some(client.client_id.clone())),
                None => return Ok(()),
            },
        };
        // The origin is attacker-controlled: clipped.
        let origin = refusal
            .origin
            .as_ref()
            .map(|origin| origin.chars().take(200).collect::<String>());
        let mut tx = self.writer().begin().await?;
        sqlx::query(
            "INSERT INTO auth_refusals (id, at, credential_id, client_id, code, origin, client_ip) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_id())
        .bind(self.now_micros())
        .bind(credential_id)
        .bind(client_id)
        .bind(refusal.code)
        .bind(origin)
        .bind(refusal.client_ip.map(|ip| ip.to_string()))
        .execute(&mut *tx)
        .await?;
        if let Some(hook) = self.0.on_refusal.get() {
            hook(refusal, &mut tx).await?;
        }
        tx.commit().await
    }
}

/// A live access token's row, with its key's end and its client's limits.
#[derive(FromRow)]
struct AccessRow {
    id: String,
    client_id: String,
    scope: String,
    expires_at: i64,
    key_expires_at: Option<i64>,
    per_key_limit: Option<i64>,
    per_ip_limit: Option<i64>,
    /// 1: the token, its key or its client is revoked.
    revoked: i64,
}

/// A staff session's row.
#[derive(FromRow)]
struct StaffRow {
    id: String,
    staff_id: String,
    abilities: String,
    created_at: i64,
    expires_at: i64,
    last_used_at: Option<i64>,
    /// 1: revoked.
    revoked: i64,
}

/// A guest token's row, with whether it or its client is revoked.
#[derive(FromRow)]
struct GuestRow {
    id: String,
    client_id: String,
    origin: Option<String>,
    abilities: String,
    created_at: i64,
    expires_at: i64,
    idle_timeout: Option<i64>,
    last_used_at: Option<i64>,
    /// 1: the token or its client is revoked.
    revoked: i64,
}

/// A credential's row, with its client's.
#[derive(FromRow)]
struct Row {
    id: String,
    client_id: Option<String>,
    user_id: Option<String>,
    abilities: Option<String>,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    client_revoked_at: Option<i64>,
    client_abilities: Option<String>,
    allowed_origins: Option<String>,
    per_key_limit: Option<i64>,
    per_ip_limit: Option<i64>,
}

impl Row {
    fn credential(self, kind: TokenKind) -> Result<Option<StoredCredential>, StoreError> {
        // Out of range: refused rather than taken for "never expires".
        let expires_at = self
            .expires_at
            .map(|micros| from_micros(micros).ok_or("an expiry out of range"))
            .transpose()
            .map_err(StoreError::new)?;
        let origins = |list: Option<String>| -> Vec<String> {
            list.unwrap_or_default()
                .split_ascii_whitespace()
                .map(str::to_owned)
                .collect()
        };
        let principal = match (kind, self.user_id, self.client_id) {
            (TokenKind::User, Some(user_id), client_id) => {
                let abilities = AbilitySet::parse_spaced(self.abilities.as_deref().unwrap_or(""))
                    .map_err(StoreError::new)?;
                let mut user =
                    UserPrincipal::new(user_id, self.id, abilities).with_expires_at(expires_at);
                // A token issued through a client that is gone keeps working,
                // from no page: it still names the client, without origins.
                if let Some(client_id) = client_id {
                    let live = self.client_revoked_at.is_none();
                    let origins = if live {
                        origins(self.allowed_origins)
                    } else {
                        Vec::new()
                    };
                    user = user.with_client(client_id, origins);
                }
                Principal::User(user.into())
            }
            (TokenKind::Publishable | TokenKind::Secret, None, Some(client_id)) => {
                let abilities =
                    AbilitySet::parse_spaced(self.client_abilities.as_deref().unwrap_or(""))
                        .map_err(StoreError::new)?;
                let client = ClientPrincipal::new(client_id, self.id, abilities)
                    .with_allowed_origins(origins(self.allowed_origins))
                    .with_limits(Limits {
                        per_key: stored_limit(self.per_key_limit),
                        per_ip: stored_limit(self.per_ip_limit),
                    });
                if kind == TokenKind::Publishable {
                    Principal::PublishableClient(client.into())
                } else {
                    Principal::SecretClient(client.into())
                }
            }
            _ => return Ok(None),
        };
        // A key of a revoked client is revoked with it.
        let revoked = self.revoked_at.is_some()
            || (kind != TokenKind::User && self.client_revoked_at.is_some());
        Ok(Some(StoredCredential {
            principal,
            expires_at,
            revoked,
        }))
    }
}

impl TokenStore for SqlStore {
    async fn find_credential(
        &self,
        kind: TokenKind,
        hash: &HashedToken,
    ) -> Result<Option<StoredCredential>, StoreError> {
        match kind {
            TokenKind::Publishable | TokenKind::Secret | TokenKind::User => {
                self.find(kind, hash).await
            }
            TokenKind::Access => self.find_access_token(hash).await,
            TokenKind::Staff => self.find_staff_session(hash).await,
            TokenKind::Guest => self.find_guest_token(hash).await,
        }
    }

    async fn record_counts(&self, records: Vec<crate::usage::UsageRecord>) {
        let credentials = records.len();
        if let Err(error) = self.write_counts(records).await {
            tracing::warn!(%error, credentials, "could not record usage counts");
        }
    }

    async fn record_refusal(&self, refusal: Refusal) {
        if let Err(error) = self.write_refusal(&refusal).await {
            tracing::warn!(%error, code = refusal.code, "could not record a refused key");
        }
    }

    fn token_format(&self) -> Option<TokenFormat> {
        Some(self.0.format)
    }

    fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::SeqCst)
    }

    /// One statement per chunk of tokens, each committed on its own, in
    /// the order of their ids: a statement holds its rows' locks only
    /// briefly, and processes writing the same tokens lock them in the same
    /// order, so they never deadlock.
    async fn record_usage(&self, usage: HashMap<String, OffsetDateTime>) {
        let mut usage: Vec<(String, i64)> = usage
            .into_iter()
            .map(|(id, at)| (id, to_micros(at)))
            .collect();
        usage.sort_unstable();
        let mut failed = 0;
        let mut last_error = None;
        for chunk in usage.chunks(USAGE_CHUNK) {
            if let Err(error) = self.record_usage_chunk(chunk).await {
                failed += chunk.len();
                last_error = Some(error);
            }
        }
        if let Some(error) = last_error {
            tracing::warn!(%error, tokens = failed, "could not record token use");
        }
    }
}

/// Writes the last uses of `chunk` (id, microseconds) to `table`, in one
/// statement, only where they are later than the stored ones. The values'
/// columns are `column1` and `column2` on both databases.
async fn update_last_uses(
    pool: &AnyPool,
    table: &'static str,
    chunk: &[(String, i64)],
) -> Result<(), sqlx::Error> {
    let rows = (0..chunk.len())
        .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
        .collect::<Vec<_>>()
        .join(", ");
    let statement = format!(
        "UPDATE {table} SET last_used_at = v.column2 \
         FROM (VALUES {rows}) AS v \
         WHERE {table}.id = v.column1 \
         AND ({table}.last_used_at IS NULL \
         OR {table}.last_used_at < v.column2)"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
    for (id, at) in chunk {
        query = query.bind(id.as_str()).bind(*at);
    }
    query.execute(pool).await?;
    Ok(())
}

/// Moves the feed's counter; inside the change's transaction, so the feed
/// never misses a committed change. On PostgreSQL also announces it, which
/// PostgreSQL delivers when (and only if) the transaction commits.
async fn record_change(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    let moved = sqlx::query("UPDATE auth_changes SET generation = generation + 1 WHERE id = 1")
        .execute(&mut *conn)
        .await?
        .rows_affected();
    // No counter (its row deleted): the change would go unseen elsewhere,
    // so it is not made.
    if moved != 1 {
        return Err(sqlx::Error::RowNotFound);
    }
    if conn.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(NOTIFY_CHANNEL)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Drops this process's cached credentials whenever another announces a
/// change, for as long as a handle on the store is alive and its pool
/// open. While it cannot
/// listen, polling still sees every change, later; it tries again after a
/// wait that doubles up to [`LISTEN_RETRY_MAX`], and logs an outage once.
#[cfg(feature = "postgres")]
async fn listen_for_changes(url: String, shared: Weak<Shared>) {
    let mut retry = LISTEN_RETRY_FIRST;
    let mut down = false;
    while shared
        .upgrade()
        .is_some_and(|shared| !shared.pool.is_closed())
    {
        let listening = async {
            let mut listener = sqlx::postgres::PgListener::connect(&url).await?;
            listener.listen(NOTIFY_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let error = match listening.await {
            Ok(listener) => {
                if down {
                    tracing::debug!("listening for credential changes again");
                    // Changes announced meanwhile went unheard: the feed's
                    // counter has them (read as the poller does, so that an
                    // outage grace holds).
                    if let Some(shared) = shared.upgrade() {
                        SqlStore(shared).poll_feed().await;
                    }
                }
                let connected = Instant::now();
                let Some(error) = listen(listener, &shared).await else {
                    return;
                };
                // A connection that held is followed by a new outage, logged
                // as such; one that fails at once is the same outage.
                if connected.elapsed() >= LISTEN_RETRY_MAX {
                    (down, retry) = (false, LISTEN_RETRY_FIRST);
                }
                error
            }
            Err(error) => error,
        };
        if !down {
            tracing::warn!(%error, "cannot LISTEN for credential changes; polling only");
            down = true;
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(LISTEN_RETRY_MAX);
    }
}

/// Hears changes until the connection fails (its error, after reading the
/// feed's counter: changes may have gone unheard) or the store is gone
/// (`None`). A lost connection drops nothing by itself: the read does, as
/// every read of the feed does, when the counter moved or when the outage
/// outlasts its grace.
#[cfg(feature = "postgres")]
async fn listen(
    mut listener: sqlx::postgres::PgListener,
    shared: &Weak<Shared>,
) -> Option<sqlx::Error> {
    loop {
        // Wakes up now and then to notice that the store is gone.
        let heard = tokio::time::timeout(Duration::from_secs(1), listener.try_recv()).await;
        let shared = shared.upgrade().filter(|shared| !shared.pool.is_closed())?;
        match heard {
            Ok(Ok(Some(_notification))) => SqlStore(shared).changed(),
            Ok(Ok(None)) => {
                SqlStore(shared).poll_feed().await;
                return Some(sqlx::Error::Protocol("the connection was closed".into()));
            }
            Ok(Err(error)) => {
                SqlStore(shared).poll_feed().await;
                return Some(error);
            }
            Err(_quiet) => {}
        }
    }
}

/// Follows the feed for as long as a handle on the store is alive and its
/// pool open (an app that closes the pool is done with the store).
async fn watch_feed(shared: Weak<Shared>) {
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.pool.is_closed() {
            shared.feed_pool.close().await;
            return;
        }
        SqlStore(shared).poll_feed().await;
    }
}

/// A pool of one connection to `pool`'s database for the feed's reads,
/// connected when first used; `pool` itself for an in-memory SQLite
/// database (another connection would open another database).
fn feed_pool(pool: &AnyPool) -> AnyPool {
    let options = pool.connect_options();
    let url = options.database_url.as_str();
    if url.starts_with("sqlite:") && (url.contains(":memory:") || url.contains("mode=memory")) {
        return pool.clone();
    }
    AnyPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(pool.options().get_acquire_timeout().min(POLL_TIMEOUT))
        .after_connect(|conn, _| {
            Box::pin(async move {
                // A read that meets a writer waits for it, as the lookups
                // do, rather than failing as an outage.
                if conn.backend_name() == "SQLite" {
                    sqlx::query("PRAGMA busy_timeout = 5000")
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect_lazy_with((*options).clone())
}

/// SQLite creates the file when missing (`mode=rwc`) unless told otherwise.
fn with_create_mode(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// A rate limit as stored: one out of `u32`'s range (written by hand) is
/// none rather than a wrapped number.
fn stored_limit(stored: Option<i64>) -> Option<u32> {
    stored.and_then(|n| u32::try_from(n).ok())
}

/// UUIDv7: ids sort by creation time.
fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn to_micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

fn from_micros(micros: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).ok()
}
