//! Client applications and their keys.

use std::collections::HashMap;

use jeton_auth::{AbilitySet, PlainToken};
use sqlx::{AssertSqlSafe, FromRow};
use time::OffsetDateTime;

use super::{
    Db,
    audit::{Audit, Event},
    changes::{self, Topic},
    columns::{MaybeMicros, Micros, Spaced},
    placeholders,
};
use crate::domain::{
    client::{ClientKind, NewClient},
    ids::{ClientId, KeyId},
    time::to_micros,
};

/// A key of a client as stored, without its hash: `last4` and dates only.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ClientKey {
    pub id: KeyId,
    pub client_id: ClientId,
    pub last4: String,
    #[sqlx(try_from = "Micros")]
    pub created_at: OffsetDateTime,
    /// Set while a rotated-out key is in its grace period.
    #[sqlx(try_from = "MaybeMicros")]
    pub expires_at: Option<OffsetDateTime>,
    /// How often a browser sent this (secret) key.
    pub browser_refusals: i64,
    #[sqlx(try_from = "MaybeMicros")]
    pub last_browser_refusal_at: Option<OffsetDateTime>,
}

/// A client application as stored, with its working keys. The API shows it
/// as `api::Client`.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Client {
    pub id: ClientId,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub kind: ClientKind,
    #[sqlx(try_from = "Spaced")]
    pub abilities: AbilitySet,
    #[sqlx(try_from = "Spaced")]
    pub allowed_origins: Vec<String>,
    /// Requests per minute for the key as a whole; `None`: no limit.
    pub rate_limit_per_minute: Option<i64>,
    /// Requests per minute per client IP (publishable keys); `None`: none.
    pub per_ip_rate_limit_per_minute: Option<i64>,
    #[sqlx(try_from = "Micros")]
    pub created_at: OffsetDateTime,
    #[sqlx(try_from = "MaybeMicros")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Keys that still work (or will until their grace period ends); read
    /// with a second query (see `with_keys`).
    #[sqlx(skip)]
    pub keys: Vec<ClientKey>,
}

/// Clients as stored: jeton-auth's `auth_clients`, with their name and
/// kind beside them (`client_details`).
const CLIENTS: &str = "SELECT c.id, d.name, d.kind, c.abilities, c.allowed_origins, \
    c.per_key_limit AS rate_limit_per_minute, c.per_ip_limit AS per_ip_rate_limit_per_minute, \
    c.created_at, c.revoked_at FROM auth_clients c JOIN client_details d ON d.client_id = c.id";

/// Clients' keys as stored, in jeton-auth's `auth_credentials`. A key's
/// browser refusals are the refusals jeton-auth recorded (at most one a
/// minute, as the gate records them).
const KEYS: &str = "SELECT k.id, k.client_id, k.last4, k.created_at, k.expires_at, \
    (SELECT COUNT(*) FROM auth_refusals r WHERE r.credential_id = k.id \
     AND r.code = 'secret_key_in_browser') AS browser_refusals, \
    (SELECT MAX(r.at) FROM auth_refusals r WHERE r.credential_id = k.id \
     AND r.code = 'secret_key_in_browser') AS last_browser_refusal_at \
    FROM auth_credentials k WHERE k.kind <> 'user'";

impl Client {
    /// Allowed from any website: worth flagging in listings.
    pub fn allows_any_origin(&self) -> bool {
        self.allowed_origins.iter().any(|origin| origin == "*")
    }

    /// Has one of its keys been seen in a browser?
    pub fn has_leaked_key(&self) -> bool {
        self.keys.iter().any(|key| key.browser_refusals > 0)
    }
}

impl Db {
    /// Inserts a key row; shared by creation and rotation.
    async fn insert_key(
        &self,
        conn: &mut sqlx::AnyConnection,
        client_id: &ClientId,
        kind: ClientKind,
        key: &PlainToken,
    ) -> Result<ClientKey, sqlx::Error> {
        let id = KeyId::generate();
        sqlx::query(
            "INSERT INTO auth_credentials (id, kind, token_hash, last4, client_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id.clone())
        .bind(kind.as_str())
        .bind(key.hash().to_hex())
        .bind(key.last4())
        .bind(client_id.clone())
        .bind(self.now_micros())
        .execute(&mut *conn)
        .await?;
        sqlx::query_as(AssertSqlSafe(format!("{KEYS} AND k.id = $1")))
            .bind(id)
            .fetch_one(conn)
            .await
    }

    /// Creates a client with its first key. `key` must be of the client's
    /// kind; only its hash is stored.
    #[tracing::instrument(level = "debug", skip(self, key))]
    pub async fn create_client(
        &self,
        client: &NewClient,
        key: &PlainToken,
        audit: &Audit,
    ) -> Result<Client, sqlx::Error> {
        debug_assert_eq!(key.kind(), client.kind.token_kind());
        let mut tx = self.begin_write().await?;
        let id = ClientId::generate();
        sqlx::query(
            "INSERT INTO auth_clients (id, abilities, allowed_origins, per_key_limit, \
             per_ip_limit, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id.clone())
        .bind(client.abilities.to_spaced())
        .bind(client.allowed_origins.join(" "))
        .bind(client.rate_limit_per_minute)
        .bind(client.per_ip_rate_limit_per_minute)
        .bind(self.now_micros())
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO client_details (client_id, name, kind) VALUES ($1, $2, $3)")
            .bind(id.clone())
            .bind(client.name.clone())
            .bind(client.kind.as_str())
            .execute(&mut *tx)
            .await?;
        let mut created: Client =
            sqlx::query_as(AssertSqlSafe(format!("{CLIENTS} WHERE c.id = $1")))
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        let first_key = self
            .insert_key(&mut tx, &created.id, client.kind, key)
            .await?;
        let event = Event {
            action: "client.created",
            client_id: Some(&created.id),
            subject_id: Some(&first_key.id),
            detail: Some(format!("{} client `{}`", client.kind.as_str(), client.name)),
            ..Event::default()
        };
        self.append_audit(&mut tx, audit, event).await?;
        // Other servers refresh their allowed origins from the feed.
        changes::record(&mut tx).await?;
        created.keys.push(first_key);
        tx.commit().await?;
        self.changed(Topic::Credentials).await;
        Ok(created)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn get_client(&self, id: &ClientId) -> Result<Option<Client>, sqlx::Error> {
        let sql = format!("{CLIENTS} WHERE c.id = $1");
        let client = sqlx::query_as(AssertSqlSafe(sql))
            .bind(id.clone())
            .fetch_optional(self.reader())
            .await?;
        let Some(client) = client else {
            return Ok(None);
        };
        Ok(self.with_keys(vec![client]).await?.pop())
    }

    /// Clients in creation order after `after`, revoked ones included.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn list_clients(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Client>, sqlx::Error> {
        let sql = format!("{CLIENTS} WHERE $1 IS NULL OR c.id > $1 ORDER BY c.id LIMIT $2");
        let clients = sqlx::query_as(AssertSqlSafe(sql))
            .bind(after.map(str::to_owned))
            .bind(limit)
            .fetch_all(self.reader())
            .await?;
        self.with_keys(clients).await
    }

    /// The live client of that name and kind, if any (for the demo seed).
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn find_live_client_by_name(
        &self,
        name: &str,
        kind: ClientKind,
    ) -> Result<Option<Client>, sqlx::Error> {
        let sql = format!(
            "{CLIENTS} WHERE d.name = $1 AND d.kind = $2 AND c.revoked_at IS NULL ORDER BY c.id LIMIT 1"
        );
        let client = sqlx::query_as(AssertSqlSafe(sql))
            .bind(name.to_owned())
            .bind(kind.as_str())
            .fetch_optional(self.reader())
            .await?;
        let Some(client) = client else {
            return Ok(None);
        };
        Ok(self.with_keys(vec![client]).await?.pop())
    }

    /// The `allowed_origins` of every active publishable client, for CORS.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn active_publishable_origins(&self) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT c.allowed_origins FROM auth_clients c JOIN client_details d ON d.client_id = c.id \
             WHERE c.revoked_at IS NULL AND d.kind = 'publishable'",
        )
        .fetch_all(self.reader())
        .await
    }

    /// Fills in each client's working keys, in one query.
    async fn with_keys(&self, mut clients: Vec<Client>) -> Result<Vec<Client>, sqlx::Error> {
        if clients.is_empty() {
            return Ok(clients);
        }
        let sql = format!(
            "{KEYS} AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > $1) \
             AND k.client_id IN ({}) ORDER BY k.id",
            placeholders(2, clients.len())
        );
        let mut query = sqlx::query_as::<_, ClientKey>(AssertSqlSafe(sql)).bind(self.now_micros());
        for client in &clients {
            query = query.bind(client.id.clone());
        }
        let mut keys: HashMap<ClientId, Vec<ClientKey>> = HashMap::new();
        for key in query.fetch_all(self.reader()).await? {
            keys.entry(key.client_id.clone()).or_default().push(key);
        }
        for client in &mut clients {
            client.keys = keys.remove(&client.id).unwrap_or_default();
        }
        Ok(clients)
    }

    /// Rotation: adds `key` to a live client, and makes every older key stop
    /// working `grace` from now (at once for a zero grace). Keys already due
    /// to expire sooner keep their earlier date. `None` if there is no live
    /// client with this id.
    #[tracing::instrument(level = "debug", skip(self, key))]
    pub async fn rotate_client_key(
        &self,
        client_id: &ClientId,
        key: &PlainToken,
        grace: time::Duration,
        audit: &Audit,
    ) -> Result<Option<ClientKey>, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let kind: Option<String> = sqlx::query_scalar(
            "SELECT d.kind FROM auth_clients c JOIN client_details d ON d.client_id = c.id \
             WHERE c.id = $1 AND c.revoked_at IS NULL",
        )
        .bind(client_id.clone())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(kind) = kind.as_deref().and_then(ClientKind::parse) else {
            return Ok(None);
        };
        if kind.token_kind() != key.kind() {
            return Err(sqlx::Error::Protocol(format!(
                "a {} client takes {} keys",
                kind.as_str(),
                kind.as_str()
            )));
        }
        let cutoff = to_micros(self.now() + grace);
        sqlx::query(
            "UPDATE auth_credentials SET expires_at = $2 WHERE client_id = $1 AND kind <> 'user' \
             AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(client_id.clone())
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
        let created = self.insert_key(&mut tx, client_id, kind, key).await?;
        let event = Event {
            action: "client.key_rotated",
            client_id: Some(client_id),
            subject_id: Some(&created.id),
            detail: Some(format!(
                "older keys stop working in {} s",
                grace.whole_seconds()
            )),
            ..Event::default()
        };
        self.append_audit(&mut tx, audit, event).await?;
        changes::record(&mut tx).await?;
        tx.commit().await?;
        // Older keys now expire: cached copies must learn it.
        self.changed(Topic::Credentials).await;
        Ok(Some(created))
    }

    /// Revokes a live client and all its keys at once; with
    /// `revoke_user_tokens`, also every user token issued through it.
    /// `false` if there is no live client with this id.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn revoke_client(
        &self,
        client_id: &ClientId,
        revoke_user_tokens: bool,
        audit: &Audit,
    ) -> Result<bool, sqlx::Error> {
        let at = self.now_micros();
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE auth_clients SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(client_id.clone())
        .bind(at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE auth_credentials SET revoked_at = $2 WHERE client_id = $1 AND kind <> 'user' \
             AND revoked_at IS NULL",
        )
        .bind(client_id.clone())
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let detail = if revoke_user_tokens {
            let revoked = sqlx::query("UPDATE auth_credentials SET revoked_at = $2 WHERE client_id = $1 AND kind = 'user' AND revoked_at IS NULL")
                .bind(client_id.clone())
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            format!("all keys, and {revoked} user tokens issued through it")
        } else {
            "all keys; user tokens issued through it are kept".to_owned()
        };
        let event = Event {
            action: "client.revoked",
            client_id: Some(client_id),
            detail: Some(detail),
            ..Event::default()
        };
        self.append_audit(&mut tx, audit, event).await?;
        changes::record(&mut tx).await?;
        tx.commit().await?;
        self.changed(Topic::Credentials).await;
        Ok(true)
    }
}
