//! A [`TokenStore`] in SQLite or PostgreSQL (the `sqlx` cargo feature):
//! clients, their keys and user tokens in the store's own tables, shared by
//! every process that uses the same database.
//!
//! ```no_run
//! use jeton_auth::{Ability, Gate, Identity, NewClient, store::sql::SqlStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let identity = Identity::new("acme")?;
//! // Connects and brings the store's tables up to date.
//! let store = SqlStore::connect("sqlite://acme.db", identity.tokens()).await?;
//! let shop = store
//!     .add_client(NewClient::new([Ability::from_static("products:read")]))
//!     .await?;
//! let key = store.issue_publishable_key(&shop).await?;
//! let gate = Gate::builder(store.clone()).identity(identity).build();
//! # let _ = (key, gate);
//! # Ok(())
//! # }
//! ```
//!
//! **Its tables** are all named `auth_…` and its migrations are recorded in
//! their own table, `_jeton_auth_migrations`, so an app keeps its own tables
//! and runs its own `sqlx` migrator on the same database: neither sees the
//! other's migrations. Both databases take the same SQL through sqlx's
//! `Any` driver: times are BIGINT microseconds since the Unix epoch, ids
//! UUIDv7 text, and tokens are stored only as SHA-256 hex.
//!
//! **The verifier's lookup** is one probe of a unique index (the token's
//! hash), joined to the key's client; nothing is written per request: the
//! last use of user tokens is written in one batch every few seconds
//! ([`TokenStore::record_usage`]).
//!
//! **Revocation across processes**: every change a verifier must not serve
//! stale (a revocation, a rotation) moves a counter in the database in the
//! change's own transaction. The process that made the change drops its
//! cached credentials at once; every other process reads the counter every
//! [`POLL_INTERVAL`] and drops its own when it moved, so a revocation is
//! honoured everywhere within a second. On PostgreSQL the change is also
//! sent with `NOTIFY` on [`NOTIFY_CHANNEL`], which every process `LISTEN`s
//! to: there it is honoured within milliseconds, and polling covers a lost
//! listening connection.

use std::{
    collections::HashMap,
    str::FromStr,
    sync::{
        Arc, Weak,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use sqlx::{
    AnyPool, FromRow,
    any::{AnyConnectOptions, AnyPoolOptions},
};
use time::OffsetDateTime;

use super::{
    IssuedToken, NewClient, Refusal, StoreError, StoredCredential, TokenStore, UnknownClient,
};
use crate::{
    Ability, AbilitySet, ClientPrincipal, HashedToken, Limits, Principal, TokenFormat, TokenKind,
    UserPrincipal,
};

/// How often each process reads the change feed: well inside the one second
/// within which a revocation elsewhere must be honoured.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The PostgreSQL channel a change is announced on, when it commits.
pub const NOTIFY_CHANNEL: &str = "jeton_auth_changes";

/// The table the store's migrations are recorded in, apart from an app's
/// own `_sqlx_migrations`.
pub const MIGRATIONS_TABLE: &str = "_jeton_auth_migrations";

/// What the store's methods fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key was asked for a client that does not exist or is revoked.
    #[error(transparent)]
    UnknownClient(#[from] UnknownClient),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("could not migrate the token store's tables: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A key to rotate that does not exist or is revoked.
    #[error("no live key `{0}`")]
    UnknownKey(String),
}

/// Credentials in a database. Clones share one pool and one view of the
/// change feed: keep one to issue and revoke tokens, give another to the
/// [`Gate`](crate::Gate).
#[derive(Clone)]
pub struct SqlStore(Arc<Shared>);

struct Shared {
    pool: AnyPool,
    format: TokenFormat,
    /// What [`TokenStore::generation`] answers: moved by this process's own
    /// changes at once, and by the watcher when the feed moved.
    generation: AtomicU64,
    /// The feed's counter as the watcher last read it; -1 before the first
    /// read.
    feed: AtomicI64,
}

/// A refusal as recorded (see [`TokenStore::record_refusal`]).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
#[non_exhaustive]
pub struct RecordedRefusal {
    /// The key or token that was refused.
    pub credential_id: String,
    pub client_id: Option<String>,
    /// `origin_not_allowed` or `secret_key_in_browser`.
    pub code: String,
    pub origin: Option<String>,
    pub client_ip: Option<String>,
    /// Microseconds since the Unix epoch.
    pub at: i64,
}

impl SqlStore {
    /// Connects to `url` (`sqlite://PATH`, `sqlite::memory:`, or
    /// `postgres://…`), brings the store's tables up to date and starts
    /// following the change feed. A SQLite file is created when missing and
    /// put in WAL mode. Call it inside a Tokio runtime.
    pub async fn connect(url: &str, format: TokenFormat) -> Result<SqlStore, Error> {
        sqlx::any::install_default_drivers();
        let pool = if url.starts_with("sqlite:") {
            let memory = url.contains(":memory:") || url.contains("mode=memory");
            // Writers queue on the busy timeout. Every write transaction
            // here writes before it reads, so none ever has to upgrade a
            // read lock, which is where SQLite deadlocks.
            AnyPoolOptions::new()
                // Each connection to an in-memory database is a database
                // of its own.
                .max_connections(if memory { 1 } else { 10 })
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
            AnyPoolOptions::new().connect(url).await?
        };
        let store = SqlStore::from_pool(pool, format).await;
        store.migrate().await?;
        Ok(store)
    }

    /// On an app's own pool (sqlx's `Any` driver, SQLite or PostgreSQL),
    /// following the change feed from now on. It does not migrate: call
    /// [`SqlStore::migrate`] first, once per deployment or at start-up.
    /// Call it inside a Tokio runtime.
    pub async fn from_pool(pool: AnyPool, format: TokenFormat) -> SqlStore {
        let store = SqlStore(Arc::new(Shared {
            pool,
            format,
            generation: AtomicU64::new(0),
            feed: AtomicI64::new(-1),
        }));
        store.poll_feed().await;
        tokio::spawn(watch_feed(Arc::downgrade(&store.0)));
        let url = store.0.pool.connect_options().database_url.clone();
        if url.scheme().starts_with("postgres") {
            tokio::spawn(listen_for_changes(url.into(), Arc::downgrade(&store.0)));
        }
        store
    }

    /// Creates or updates the store's tables, beside an app's own migrator.
    /// On PostgreSQL several processes may run it at once (sqlx locks the
    /// database meanwhile); on SQLite, start one process first.
    pub async fn migrate(&self) -> Result<(), Error> {
        let mut migrator = sqlx::migrate!("./migrations");
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        migrator.run(&self.0.pool).await?;
        Ok(())
    }

    /// The pool, for an app that keeps its own tables beside the store's.
    pub fn pool(&self) -> &AnyPool {
        &self.0.pool
    }

    /// Adds a client application; returns its id.
    pub async fn add_client(&self, client: NewClient) -> Result<String, Error> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO auth_clients (id, abilities, allowed_origins, per_key_limit, \
             per_ip_limit, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(client.abilities.to_spaced())
        .bind(client.allowed_origins.join(" "))
        .bind(client.limits.per_key.map(i64::from))
        .bind(client.limits.per_ip.map(i64::from))
        .bind(now_micros())
        .execute(&self.0.pool)
        .await?;
        Ok(id)
    }

    /// A publishable key for the client: for browser code, public by
    /// design.
    pub async fn issue_publishable_key(&self, client_id: &str) -> Result<IssuedToken, Error> {
        self.issue_key(client_id, TokenKind::Publishable).await
    }

    /// A secret key for the client: for its servers only.
    pub async fn issue_secret_key(&self, client_id: &str) -> Result<IssuedToken, Error> {
        self.issue_key(client_id, TokenKind::Secret).await
    }

    async fn issue_key(&self, client_id: &str, kind: TokenKind) -> Result<IssuedToken, Error> {
        let (id, token) = (new_id(), self.0.format.generate(kind));
        // One statement: the client is checked and the key written at once,
        // so a key never outlives a client revoked meanwhile.
        let inserted = sqlx::query(
            "INSERT INTO auth_credentials (id, kind, token_hash, last4, client_id, created_at) \
             SELECT $1, $2, $3, $4, id, $5 FROM auth_clients WHERE id = $6 AND revoked_at IS NULL",
        )
        .bind(&id)
        .bind(kind.name())
        .bind(token.hash().to_hex())
        .bind(token.last4())
        .bind(now_micros())
        .bind(client_id)
        .execute(&self.0.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(UnknownClient(client_id.to_owned()).into());
        }
        Ok(IssuedToken { id, token })
    }

    /// A new key of the same kind for the same client; the old one keeps
    /// working for `grace` (zero: it stops now), so the client's servers
    /// can switch without an outage.
    pub async fn rotate_key(&self, key_id: &str, grace: Duration) -> Result<IssuedToken, Error> {
        let until =
            now_micros().saturating_add(i64::try_from(grace.as_micros()).unwrap_or(i64::MAX));
        let mut tx = self.0.pool.begin().await?;
        // The old key's end moves first: it locks the row, so two
        // rotations of one key take turns.
        let old: Option<(String, String)> = sqlx::query_as(
            "UPDATE auth_credentials SET expires_at = CASE \
             WHEN expires_at IS NULL OR expires_at > $2 THEN $2 ELSE expires_at END \
             WHERE id = $1 AND kind <> 'user' AND revoked_at IS NULL \
             RETURNING client_id, kind",
        )
        .bind(key_id)
        .bind(until)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((client_id, kind)) = old else {
            return Err(Error::UnknownKey(key_id.to_owned()));
        };
        let kind = if kind == TokenKind::Publishable.name() {
            TokenKind::Publishable
        } else {
            TokenKind::Secret
        };
        let (id, token) = (new_id(), self.0.format.generate(kind));
        let inserted = sqlx::query(
            "INSERT INTO auth_credentials (id, kind, token_hash, last4, client_id, created_at) \
             SELECT $1, $2, $3, $4, id, $5 FROM auth_clients WHERE id = $6 AND revoked_at IS NULL",
        )
        .bind(&id)
        .bind(kind.name())
        .bind(token.hash().to_hex())
        .bind(token.last4())
        .bind(now_micros())
        .bind(&client_id)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(UnknownClient(client_id).into());
        }
        record_change(&mut tx).await?;
        tx.commit().await?;
        self.changed();
        Ok(IssuedToken { id, token })
    }

    /// A user token for `user_id` (the app's id for the person), holding
    /// `abilities` until `expires_at` (`None`: until revoked).
    pub async fn issue_user_token(
        &self,
        user_id: &str,
        abilities: impl IntoIterator<Item = Ability>,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<IssuedToken, Error> {
        let (id, token) = (new_id(), self.0.format.generate(TokenKind::User));
        sqlx::query(
            "INSERT INTO auth_credentials (id, kind, token_hash, last4, user_id, abilities, \
             created_at, expires_at) VALUES ($1, 'user', $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(token.hash().to_hex())
        .bind(token.last4())
        .bind(user_id)
        .bind(AbilitySet::new(abilities).to_spaced())
        .bind(now_micros())
        .bind(expires_at.map(to_micros))
        .execute(&self.0.pool)
        .await?;
        Ok(IssuedToken { id, token })
    }

    /// A user token issued through a client (the one whose publishable key
    /// logged the person in): the token carries that client's allowed
    /// origins while the client lives, which is where a
    /// [cookie session](crate::CookieSessions) may be used from.
    pub async fn issue_user_token_via(
        &self,
        client_id: &str,
        user_id: &str,
        abilities: impl IntoIterator<Item = Ability>,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<IssuedToken, Error> {
        let (id, token) = (new_id(), self.0.format.generate(TokenKind::User));
        let inserted = sqlx::query(
            "INSERT INTO auth_credentials (id, kind, token_hash, last4, client_id, user_id, \
             abilities, created_at, expires_at) \
             SELECT $1, 'user', $2, $3, id, $4, $5, $6, $7 FROM auth_clients \
             WHERE id = $8 AND revoked_at IS NULL",
        )
        .bind(&id)
        .bind(token.hash().to_hex())
        .bind(token.last4())
        .bind(user_id)
        .bind(AbilitySet::new(abilities).to_spaced())
        .bind(now_micros())
        .bind(expires_at.map(to_micros))
        .bind(client_id)
        .execute(&self.0.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(UnknownClient(client_id.to_owned()).into());
        }
        Ok(IssuedToken { id, token })
    }

    /// Revokes one token or key by its id; whether there was a live one.
    pub async fn revoke(&self, token_id: &str) -> Result<bool, Error> {
        let revoked = self
            .change(
                "UPDATE auth_credentials SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                token_id,
            )
            .await?;
        Ok(revoked > 0)
    }

    /// Revokes every live token of a person (log out everywhere); how many.
    pub async fn revoke_user_tokens(&self, user_id: &str) -> Result<u64, Error> {
        self.change(
            "UPDATE auth_credentials SET revoked_at = $2 \
             WHERE user_id = $1 AND kind = 'user' AND revoked_at IS NULL",
            user_id,
        )
        .await
    }

    /// Revokes a client and all its keys; whether there was a live one.
    pub async fn revoke_client(&self, client_id: &str) -> Result<bool, Error> {
        let now = now_micros();
        let mut tx = self.0.pool.begin().await?;
        let revoked = sqlx::query(
            "UPDATE auth_clients SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(client_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "UPDATE auth_credentials SET revoked_at = $2 \
             WHERE client_id = $1 AND kind <> 'user' AND revoked_at IS NULL",
        )
        .bind(client_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        record_change(&mut tx).await?;
        tx.commit().await?;
        self.changed();
        Ok(revoked > 0)
    }

    /// One revocation statement (`$1` the id, `$2` the time) with its
    /// change in the feed, in one transaction; how many rows it revoked.
    async fn change(&self, statement: &'static str, id: &str) -> Result<u64, Error> {
        let mut tx = self.0.pool.begin().await?;
        let revoked = sqlx::query(statement)
            .bind(id)
            .bind(now_micros())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if revoked > 0 {
            record_change(&mut tx).await?;
        }
        tx.commit().await?;
        if revoked > 0 {
            self.changed();
        }
        Ok(revoked)
    }

    /// After a committed change: nothing this process cached before it is
    /// served again. Other processes learn of it from the feed.
    fn changed(&self) {
        self.0.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Reads the feed's counter; a move since the last read drops what this
    /// process cached. An unreadable feed (the database is down) counts as
    /// a move once it is read again.
    async fn poll_feed(&self) {
        let read: Result<i64, sqlx::Error> =
            sqlx::query_scalar("SELECT generation FROM auth_changes WHERE id = 1")
                .fetch_one(&self.0.pool)
                .await;
        let now = read.unwrap_or(-1);
        if self.0.feed.swap(now, Ordering::AcqRel) != now {
            self.changed();
        }
    }

    /// The latest refusals of the client's keys, newest first.
    pub async fn refusals(
        &self,
        client_id: &str,
        limit: u32,
    ) -> Result<Vec<RecordedRefusal>, Error> {
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
    pub async fn last_used(&self, token_id: &str) -> Result<Option<OffsetDateTime>, Error> {
        let micros: Option<Option<i64>> =
            sqlx::query_scalar("SELECT last_used_at FROM auth_credentials WHERE id = $1")
                .bind(token_id)
                .fetch_optional(&self.0.pool)
                .await?;
        Ok(micros.flatten().and_then(from_micros))
    }

    async fn find(
        &self,
        kind: TokenKind,
        hash: &HashedToken,
    ) -> Result<Option<StoredCredential>, StoreError> {
        let found: Option<Row> = sqlx::query_as(
            "SELECT t.id, t.client_id, t.user_id, t.abilities, t.expires_at, \
             c.abilities AS client_abilities, c.allowed_origins, c.per_key_limit, c.per_ip_limit \
             FROM auth_credentials t \
             LEFT JOIN auth_clients c ON c.id = t.client_id AND c.revoked_at IS NULL \
             WHERE t.token_hash = $1 AND t.kind = $2 AND t.revoked_at IS NULL",
        )
        .bind(hash.to_hex())
        .bind(kind.name())
        .fetch_optional(&self.0.pool)
        .await
        .map_err(StoreError::new)?;
        found.map_or(Ok(None), |row| row.credential(kind))
    }
}

/// A live credential's row, with its client's when it has a live one.
#[derive(FromRow)]
struct Row {
    id: String,
    client_id: Option<String>,
    user_id: Option<String>,
    abilities: Option<String>,
    expires_at: Option<i64>,
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
                // from no page.
                if let (Some(client_id), Some(_)) = (client_id, &self.client_abilities) {
                    user = user.with_client(client_id, origins(self.allowed_origins));
                }
                Principal::User(user.into())
            }
            (TokenKind::Publishable | TokenKind::Secret, None, Some(client_id)) => {
                // A key of a revoked client is revoked with it.
                let Some(abilities) = self.client_abilities else {
                    return Ok(None);
                };
                let abilities = AbilitySet::parse_spaced(&abilities).map_err(StoreError::new)?;
                let limit = |stored: Option<i64>| stored.and_then(|n| u32::try_from(n).ok());
                let client = ClientPrincipal::new(client_id, self.id, abilities)
                    .with_allowed_origins(origins(self.allowed_origins))
                    .with_limits(Limits {
                        per_key: limit(self.per_key_limit),
                        per_ip: limit(self.per_ip_limit),
                    });
                if kind == TokenKind::Publishable {
                    Principal::PublishableClient(client.into())
                } else {
                    Principal::SecretClient(client.into())
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(StoredCredential {
            principal,
            expires_at,
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
            // Access tokens are an OAuth server's: this store issues none.
            _ => Ok(None),
        }
    }

    async fn record_refusal(&self, refusal: Refusal) {
        let (credential_id, client_id) = match &refusal.principal {
            Principal::User(user) => (user.token_id.clone(), user.client_id.clone()),
            principal => match principal.client() {
                Some(client) => (client.key_id.clone(), Some(client.client_id.clone())),
                None => return,
            },
        };
        // The origin is attacker-controlled: clipped.
        let origin = refusal
            .origin
            .map(|origin| origin.chars().take(200).collect::<String>());
        let written = sqlx::query(
            "INSERT INTO auth_refusals (id, at, credential_id, client_id, code, origin, client_ip) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_id())
        .bind(now_micros())
        .bind(credential_id)
        .bind(client_id)
        .bind(refusal.code)
        .bind(origin)
        .bind(refusal.client_ip.map(|ip| ip.to_string()))
        .execute(&self.0.pool)
        .await;
        if let Err(error) = written {
            tracing::warn!(%error, code = refusal.code, "could not record a refused key");
        }
    }

    fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::SeqCst)
    }

    /// One transaction for the whole batch.
    async fn record_usage(&self, usage: HashMap<String, OffsetDateTime>) {
        let count = usage.len();
        let written = async {
            let mut tx = self.0.pool.begin().await?;
            for (token_id, at) in usage {
                sqlx::query(
                    "UPDATE auth_credentials SET last_used_at = $2 \
                     WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
                )
                .bind(token_id)
                .bind(to_micros(at))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        };
        if let Err(error) = written.await {
            tracing::warn!(%error, tokens = count, "could not record token use");
        }
    }
}

/// Moves the feed's counter; inside the change's transaction, so the feed
/// never misses a committed change. On PostgreSQL also announces it, which
/// PostgreSQL delivers when (and only if) the transaction commits.
async fn record_change(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE auth_changes SET generation = generation + 1 WHERE id = 1")
        .execute(&mut *conn)
        .await?;
    if conn.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(NOTIFY_CHANNEL)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Drops this process's cached credentials whenever another announces a
/// change, for as long as a handle on the store is alive. Gives up with a
/// warning if it cannot listen: polling still sees every change.
async fn listen_for_changes(url: String, shared: Weak<Shared>) {
    let listening = async {
        let mut listener = sqlx::postgres::PgListener::connect(&url).await?;
        listener.listen(NOTIFY_CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    let mut listener = match listening.await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(%error, "cannot LISTEN for credential changes; polling only");
            return;
        }
    };
    loop {
        // Wakes up now and then to notice that the store is gone.
        let heard = tokio::time::timeout(Duration::from_secs(1), listener.recv()).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match heard {
            Ok(Ok(_notification)) => SqlStore(shared).changed(),
            // It reconnects on the next `recv`; polling covers the gap.
            Ok(Err(error)) => tracing::warn!(%error, "LISTEN connection lost"),
            Err(_quiet) => {}
        }
    }
}

/// Follows the feed for as long as a handle on the store is alive.
async fn watch_feed(shared: Weak<Shared>) {
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        SqlStore(shared).poll_feed().await;
    }
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

/// UUIDv7: ids sort by creation time.
fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn to_micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

fn now_micros() -> i64 {
    to_micros(OffsetDateTime::now_utc())
}

fn from_micros(micros: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).ok()
}
