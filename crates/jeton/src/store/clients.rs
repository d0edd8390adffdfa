//! Client applications and their keys.

use std::collections::HashMap;

use jeton_auth::{AbilitySet, PlainToken};
use serde::Serialize;
use sqlx::{AssertSqlSafe, Row, any::AnyRow};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{
    Db,
    audit::{self, Audit, Event},
    changes::{self, Topic},
    placeholders,
};
use crate::domain::{
    client::{ClientKind, NewClient},
    ids::new_id,
    time::{from_micros, now, now_micros, to_micros},
};

/// A key of a client, as an admin may see it: `last4` and dates only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ClientKey {
    pub id: String,
    pub last4: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Set while a rotated-out key is in its grace period.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// How often this key was refused because a browser sent it (secret
    /// keys): anything but 0 means the key has leaked; rotate it.
    pub browser_refusals: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_browser_refusal_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub kind: ClientKind,
    #[schema(value_type = Vec<String>)]
    pub abilities: AbilitySet,
    pub allowed_origins: Vec<String>,
    /// Requests per minute for the key as a whole; `null`: no limit.
    pub rate_limit_per_minute: Option<i64>,
    /// Requests per minute per client IP (publishable keys); `null`: none.
    pub per_ip_rate_limit_per_minute: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Keys that still work (or will until their grace period ends).
    pub keys: Vec<ClientKey>,
}

const COLUMNS: &str = "id, name, kind, abilities, allowed_origins, rate_limit_per_minute, \
    per_ip_rate_limit_per_minute, created_at, revoked_at";

fn from_row(row: &AnyRow) -> Result<Client, sqlx::Error> {
    let decode = |e: String| sqlx::Error::Decode(e.into());
    let kind: String = row.try_get("kind")?;
    let abilities: String = row.try_get("abilities")?;
    let origins: String = row.try_get("allowed_origins")?;
    Ok(Client {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: ClientKind::parse(&kind)
            .ok_or_else(|| decode(format!("unknown client kind {kind}")))?,
        abilities: AbilitySet::parse_spaced(&abilities).map_err(|e| decode(e.to_string()))?,
        allowed_origins: origins
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect(),
        rate_limit_per_minute: row.try_get("rate_limit_per_minute")?,
        per_ip_rate_limit_per_minute: row.try_get("per_ip_rate_limit_per_minute")?,
        created_at: from_micros(row.try_get("created_at")?),
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")?
            .map(from_micros),
        keys: Vec::new(),
    })
}

fn key_from_row(row: &AnyRow) -> Result<(String, ClientKey), sqlx::Error> {
    Ok((
        row.try_get("client_id")?,
        ClientKey {
            id: row.try_get("id")?,
            last4: row.try_get("last4")?,
            created_at: from_micros(row.try_get("created_at")?),
            expires_at: row
                .try_get::<Option<i64>, _>("expires_at")?
                .map(from_micros),
            browser_refusals: row.try_get("browser_refusals")?,
            last_browser_refusal_at: row
                .try_get::<Option<i64>, _>("last_browser_refusal_at")?
                .map(from_micros),
        },
    ))
}

const KEY_COLUMNS: &str =
    "id, client_id, last4, created_at, expires_at, browser_refusals, last_browser_refusal_at";

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

/// Inserts a key row; shared by creation and rotation.
async fn insert_key(
    conn: &mut sqlx::AnyConnection,
    client_id: &str,
    kind: ClientKind,
    key: &PlainToken,
) -> Result<ClientKey, sqlx::Error> {
    let sql = format!(
        "INSERT INTO client_keys (id, client_id, kind, token_hash, last4, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {KEY_COLUMNS}"
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(new_id())
        .bind(client_id.to_owned())
        .bind(kind.as_str())
        .bind(key.hash().to_hex())
        .bind(key.last4())
        .bind(now_micros())
        .fetch_one(conn)
        .await?;
    Ok(key_from_row(&row)?.1)
}

impl Db {
    /// Creates a client with its first key. `key` must be of the client's
    /// kind; only its hash is stored.
    pub async fn create_client(
        &self,
        client: &NewClient,
        key: &PlainToken,
        audit: &Audit,
    ) -> Result<Client, sqlx::Error> {
        debug_assert_eq!(key.kind(), client.kind.token_kind());
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "INSERT INTO clients ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL) RETURNING {COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(new_id())
            .bind(client.name.clone())
            .bind(client.kind.as_str())
            .bind(client.abilities.to_spaced())
            .bind(client.allowed_origins.join(" "))
            .bind(client.rate_limit_per_minute)
            .bind(client.per_ip_rate_limit_per_minute)
            .bind(now_micros())
            .fetch_one(&mut *tx)
            .await?;
        let mut created = from_row(&row)?;
        let first_key = insert_key(&mut tx, &created.id, client.kind, key).await?;
        let event = Event {
            action: "client.created",
            client_id: Some(&created.id),
            subject_id: Some(&first_key.id),
            detail: Some(format!("{} client `{}`", client.kind.as_str(), client.name)),
            ..Event::default()
        };
        audit::append(&mut tx, audit, event).await?;
        // Other servers refresh their allowed origins from the feed.
        changes::record(&mut tx).await?;
        created.keys.push(first_key);
        tx.commit().await?;
        self.changed(Topic::Credentials).await;
        Ok(created)
    }

    pub async fn get_client(&self, id: &str) -> Result<Option<Client>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM clients WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.to_owned())
            .fetch_optional(self.reader())
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(self.with_keys(vec![from_row(&row)?]).await?.pop())
    }

    /// Clients in creation order after `after`, revoked ones included.
    pub async fn list_clients(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Client>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM clients WHERE $1 IS NULL OR id > $1 ORDER BY id LIMIT $2"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(after.map(str::to_owned))
            .bind(limit)
            .fetch_all(self.reader())
            .await?;
        let clients = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        self.with_keys(clients).await
    }

    /// The live client of that name and kind, if any (for the demo seed).
    pub async fn find_live_client_by_name(
        &self,
        name: &str,
        kind: ClientKind,
    ) -> Result<Option<Client>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM clients WHERE name = $1 AND kind = $2 AND revoked_at IS NULL ORDER BY id LIMIT 1"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(name.to_owned())
            .bind(kind.as_str())
            .fetch_optional(self.reader())
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(self.with_keys(vec![from_row(&row)?]).await?.pop())
    }

    /// The `allowed_origins` of every active publishable client, for CORS.
    pub async fn active_publishable_origins(&self) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT allowed_origins FROM clients WHERE revoked_at IS NULL AND kind = 'publishable'",
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
            "SELECT {KEY_COLUMNS} FROM client_keys \
             WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1) AND client_id IN ({}) ORDER BY id",
            placeholders(2, clients.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(now_micros());
        for client in &clients {
            query = query.bind(client.id.clone());
        }
        let mut keys: HashMap<String, Vec<ClientKey>> = HashMap::new();
        for row in query.fetch_all(self.reader()).await? {
            let (client_id, key) = key_from_row(&row)?;
            keys.entry(client_id).or_default().push(key);
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
    pub async fn rotate_client_key(
        &self,
        client_id: &str,
        key: &PlainToken,
        grace: time::Duration,
        audit: &Audit,
    ) -> Result<Option<ClientKey>, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let kind: Option<String> =
            sqlx::query_scalar("SELECT kind FROM clients WHERE id = $1 AND revoked_at IS NULL")
                .bind(client_id.to_owned())
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
        let cutoff = to_micros(now() + grace);
        sqlx::query(
            "UPDATE client_keys SET expires_at = $2 WHERE client_id = $1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(client_id.to_owned())
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
        let created = insert_key(&mut tx, client_id, kind, key).await?;
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
        audit::append(&mut tx, audit, event).await?;
        changes::record(&mut tx).await?;
        tx.commit().await?;
        // Older keys now expire: cached copies must learn it.
        self.changed(Topic::Credentials).await;
        Ok(Some(created))
    }

    /// Revokes a live client and all its keys at once; with
    /// `revoke_user_tokens`, also every user token issued through it.
    /// `false` if there is no live client with this id.
    pub async fn revoke_client(
        &self,
        client_id: &str,
        revoke_user_tokens: bool,
        audit: &Audit,
    ) -> Result<bool, sqlx::Error> {
        let at = now_micros();
        let mut tx = self.begin_write().await?;
        let done =
            sqlx::query("UPDATE clients SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(client_id.to_owned())
                .bind(at)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE client_keys SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL",
        )
        .bind(client_id.to_owned())
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let detail = if revoke_user_tokens {
            let revoked = sqlx::query("UPDATE user_tokens SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL")
                .bind(client_id.to_owned())
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
        audit::append(&mut tx, audit, event).await?;
        changes::record(&mut tx).await?;
        tx.commit().await?;
        self.changed(Topic::Credentials).await;
        Ok(true)
    }
}
