//! Client applications and their keys. jeton-auth's store holds them and
//! writes every change; Jeton keeps a client's name and kind beside it
//! (`client_details`) and audits each change in the same transaction.

use std::collections::{HashMap, HashSet};

use jeton_auth::{
    AbilitySet, ClientInfo, ClientUpdate, KeyInfo, NewCredential, PlainToken, limits::Limits,
};
use time::OffsetDateTime;

use crate::webhooks::events::{CredentialRef, EventType};

use super::{
    Db,
    audit::{Audit, Event},
    store_error,
};
use crate::domain::{
    abilities,
    client::{ClientChange, ClientKind, NewClient},
    ids::{ClientId, KeyId},
};

/// A key of a client as stored, without its hash: `last4` and dates only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    pub id: KeyId,
    pub client_id: ClientId,
    pub last4: String,
    pub created_at: OffsetDateTime,
    /// Set while a rotated-out key is in its grace period.
    pub expires_at: Option<OffsetDateTime>,
    /// How often a browser sent this (secret) key.
    pub browser_refusals: i64,
    /// When it was first known to be exposed: sent by a browser, or
    /// reported leaked (API.md §15).
    pub exposed_at: Option<OffsetDateTime>,
    pub last_browser_refusal_at: Option<OffsetDateTime>,
    /// The start of the latest usage bucket the key succeeded in.
    pub last_used_at: Option<OffsetDateTime>,
}

/// A client application as stored, with its working keys. The API shows it
/// as `responses::Client`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: ClientId,
    pub name: String,
    pub kind: ClientKind,
    pub abilities: AbilitySet,
    pub allowed_origins: Vec<String>,
    /// Requests per minute for the key as a whole; `None`: no limit.
    pub rate_limit_per_minute: Option<i64>,
    /// Requests per minute per client IP (publishable keys); `None`: none.
    pub per_ip_rate_limit_per_minute: Option<i64>,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    /// Keys that still work (or will until their grace period ends).
    pub keys: Vec<ClientKey>,
}

impl Client {
    /// Allowed from any website: worth flagging in listings.
    pub fn allows_any_origin(&self) -> bool {
        self.allowed_origins.iter().any(|origin| origin == "*")
    }

    /// Has one of its keys been seen in a browser, or reported leaked?
    pub fn has_leaked_key(&self) -> bool {
        self.keys.iter().any(|key| key.exposed_at.is_some())
    }

    /// The library's client with Jeton's name and kind.
    fn from_parts(client: ClientInfo, name: String, kind: ClientKind) -> Client {
        let id = ClientId::from_store(client.id);
        Client {
            keys: client
                .keys
                .into_iter()
                .map(|key| ClientKey::from_info(key, &id))
                .collect(),
            id,
            name,
            kind,
            abilities: client.abilities,
            allowed_origins: client.allowed_origins,
            rate_limit_per_minute: client.limits.per_key.map(i64::from),
            per_ip_rate_limit_per_minute: client.limits.per_ip.map(i64::from),
            created_at: client.created_at,
            revoked_at: client.revoked_at,
        }
    }
}

impl ClientKey {
    fn from_info(key: KeyInfo, client_id: &ClientId) -> ClientKey {
        ClientKey {
            id: KeyId::from_store(key.credential.id),
            client_id: client_id.clone(),
            last4: key.credential.last4,
            created_at: key.credential.created_at,
            expires_at: key.credential.expires_at,
            browser_refusals: i64::try_from(key.browser_refusals).unwrap_or(i64::MAX),
            exposed_at: key.exposed_at,
            last_browser_refusal_at: key.last_browser_refusal_at,
            last_used_at: key.credential.last_used_at,
        }
    }
}

/// Why [`Db::update_client`] changed nothing.
#[derive(Debug)]
pub enum UpdateClientError<E> {
    /// The caller's check refused the client as it stood.
    Refused(E),
    Db(sqlx::Error),
}

impl<E> From<sqlx::Error> for UpdateClientError<E> {
    fn from(error: sqlx::Error) -> UpdateClientError<E> {
        UpdateClientError::Db(error)
    }
}

/// A client's requests per minute, as jeton-auth's store takes them.
fn stored_limit(limit: Option<i64>) -> Option<u32> {
    limit.and_then(|n| u32::try_from(n).ok())
}

/// A client's name and kind, as Jeton keeps them.
type Details = HashMap<String, (String, ClientKind)>;

impl Db {
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
        let new = jeton_auth::NewClient::new(client.abilities.iter().cloned())
            .allowed_origins(client.allowed_origins.iter().map(String::as_str))
            .limits(Limits {
                per_key: stored_limit(client.rate_limit_per_minute),
                per_ip: stored_limit(client.per_ip_rate_limit_per_minute),
            });
        let mut tx = self.begin_credentials().await?;
        let id = tx.add_client(&new).await.map_err(store_error)?;
        sqlx::query("INSERT INTO client_details (client_id, name, kind) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(client.name.clone())
            .bind(client.kind.as_str())
            .execute(&mut *tx)
            .await?;
        let key_id = tx
            .insert(NewCredential::key(key.kind(), &id), key)
            .await
            .map_err(store_error)?;
        let stored = tx.client(&id).await.map_err(store_error)?;
        let stored = stored.ok_or(sqlx::Error::RowNotFound)?;
        let created = Client::from_parts(stored, client.name.clone(), client.kind);
        let event = Event {
            action: "client.created",
            client_id: Some(&created.id),
            subject_id: Some(&key_id),
            detail: Some(format!("{} client `{}`", client.kind.as_str(), client.name)),
            ..Event::default()
        };
        self.append_audit(&mut tx, audit, event).await?;
        let data = crate::responses::Client::from(created.clone());
        self.raise_webhook(&mut tx, EventType::ClientCreated, &data)
            .await?;
        tx.commit().await?;
        Ok(created)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn get_client(&self, id: &ClientId) -> Result<Option<Client>, sqlx::Error> {
        let found = self.auth().client(id).await.map_err(store_error)?;
        Ok(self.with_details(found.into_iter().collect()).await?.pop())
    }

    /// The clients of these ids, revoked ones included, in no order.
    pub async fn clients_by_id(&self, ids: &[String]) -> Result<Vec<Client>, sqlx::Error> {
        let found = self.auth().clients(ids).await.map_err(store_error)?;
        self.with_details(found).await
    }

    /// Clients in creation order after `after`, revoked ones included.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn list_clients(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Client>, sqlx::Error> {
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let found = self
            .auth()
            .list_clients(after, limit)
            .await
            .map_err(store_error)?;
        self.with_details(found).await
    }

    /// [`Db::list_clients`], only the clients with a working key that a
    /// browser sent (a leaked secret key).
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn list_flagged_clients(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Client>, sqlx::Error> {
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let found = self
            .auth()
            .list_exposed_clients(after, limit)
            .await
            .map_err(store_error)?;
        self.with_details(found).await
    }

    /// The live client of that name and kind, if any (for the demo seed).
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn find_live_client_by_name(
        &self,
        name: &str,
        kind: ClientKind,
    ) -> Result<Option<Client>, sqlx::Error> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT client_id FROM client_details WHERE name = $1 AND kind = $2 \
             ORDER BY client_id",
        )
        .bind(name.to_owned())
        .bind(kind.as_str())
        .fetch_all(self.reader())
        .await?;
        let found = self.auth().clients(&ids).await.map_err(store_error)?;
        let live = found.into_iter().filter(|c| c.revoked_at.is_none()).take(1);
        Ok(self.with_details(live.collect()).await?.pop())
    }

    /// The `allowed_origins` of every active publishable client, for CORS.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn active_publishable_origins(&self) -> Result<Vec<String>, sqlx::Error> {
        let origins = self.auth().live_origins().await.map_err(store_error)?;
        let publishable: HashSet<String> =
            sqlx::query_scalar("SELECT client_id FROM client_details WHERE kind = 'publishable'")
                .fetch_all(self.reader())
                .await?
                .into_iter()
                .collect();
        Ok(origins
            .into_iter()
            .filter(|(id, _)| publishable.contains(id))
            .flat_map(|(_, origins)| origins)
            .collect())
    }

    /// The library's clients with their names and kinds; a client Jeton did
    /// not make (no details) is left out.
    async fn with_details(&self, clients: Vec<ClientInfo>) -> Result<Vec<Client>, sqlx::Error> {
        if clients.is_empty() {
            return Ok(Vec::new());
        }
        let mut details = self.client_details(&clients).await?;
        Ok(clients
            .into_iter()
            .filter_map(|client| {
                let (name, kind) = details.remove(&client.id)?;
                Some(Client::from_parts(client, name, kind))
            })
            .collect())
    }

    async fn client_details(&self, clients: &[ClientInfo]) -> Result<Details, sqlx::Error> {
        let sql = format!(
            "SELECT client_id, name, kind FROM client_details WHERE client_id IN ({})",
            super::placeholders(1, clients.len())
        );
        let mut query = sqlx::query_as::<_, (String, String, String)>(sqlx::AssertSqlSafe(sql));
        for client in clients {
            query = query.bind(client.id.clone());
        }
        Ok(query
            .fetch_all(self.reader())
            .await?
            .into_iter()
            .filter_map(|(id, name, kind)| Some((id, (name, ClientKind::parse(&kind)?))))
            .collect())
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
        let mut tx = self.begin_credentials().await?;
        let kind: Option<String> =
            sqlx::query_scalar("SELECT kind FROM client_details WHERE client_id = $1")
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
        tx.expire_keys(client_id, self.now() + grace)
            .await
            .map_err(store_error)?;
        let new = NewCredential::key(key.kind(), client_id);
        let id = match tx.insert(new, key).await {
            Ok(id) => id,
            // Revoked: not a client to rotate.
            Err(jeton_auth::SqlStoreError::UnknownClient(_)) => return Ok(None),
            Err(error) => return Err(store_error(error)),
        };
        // As stored (times to the microsecond), as every later read shows it.
        let stored = tx.credential(&id).await.map_err(store_error)?;
        let stored = stored.ok_or(sqlx::Error::RowNotFound)?;
        let created = ClientKey {
            id: KeyId::from_store(stored.id),
            client_id: client_id.clone(),
            last4: stored.last4,
            created_at: stored.created_at,
            expires_at: stored.expires_at,
            browser_refusals: 0,
            exposed_at: None,
            last_browser_refusal_at: None,
            last_used_at: None,
        };
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
        let credential = CredentialRef {
            id: created.id.to_string(),
            kind: match kind {
                ClientKind::Secret => "secret_key",
                ClientKind::Publishable => "publishable_key",
            },
            last4: created.last4.clone(),
            client_id: Some(client_id.to_string()),
            customer_id: None,
        };
        self.raise_webhook(&mut tx, EventType::KeyRotated, &credential)
            .await?;
        tx.commit().await?;
        Ok(Some(created))
    }

    /// Changes a live client (`change`, already valid for its kind) in one
    /// transaction with its audit event, once `check` accepted the client
    /// as it stands (read in that transaction, its row locked). Its keys
    /// hold the new abilities, origins and limits at once here and, through
    /// jeton-auth's change feed, within a second in every process. New
    /// abilities also revoke the client's live access tokens whose scope
    /// they no longer allow: a token never holds more than its client.
    /// `None` if there is no live client with this id.
    #[tracing::instrument(level = "debug", skip(self, check))]
    pub async fn update_client<E>(
        &self,
        client_id: &ClientId,
        change: &ClientChange,
        audit: &Audit,
        check: impl FnOnce(&Client) -> Result<(), E>,
    ) -> Result<Option<Client>, UpdateClientError<E>> {
        let mut tx = self.begin_credentials().await?;
        // Writing the details first locks them (on PostgreSQL; SQLite has
        // one writer anyway): two edits of one client take turns, so
        // neither undoes the other's limit.
        let details: Option<(String, String)> = sqlx::query_as(
            "UPDATE client_details SET name = COALESCE($2, name) WHERE client_id = $1 \
             RETURNING name, kind",
        )
        .bind(client_id.clone())
        .bind(change.name.clone())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((name, kind)) = details else {
            return Ok(None);
        };
        let kind = ClientKind::parse(&kind)
            .ok_or_else(|| sqlx::Error::Protocol(format!("unknown client kind {kind}")))?;
        let stored = tx.client(client_id).await.map_err(store_error)?;
        let Some(stored) = stored.filter(|client| client.revoked_at.is_none()) else {
            return Ok(None);
        };
        let current = Client::from_parts(stored, name, kind);
        check(&current).map_err(UpdateClientError::Refused)?;

        let mut update = ClientUpdate::new();
        let mut changed = Vec::new();
        if change.name.is_some() {
            changed.push(format!("name `{}`", current.name));
        }
        if let Some(granted) = &change.abilities {
            update = update.abilities(granted.iter().cloned());
            changed.push(format!("abilities `{}`", granted.to_spaced()));
        }
        if let Some(origins) = &change.allowed_origins {
            update = update.allowed_origins(origins.iter().map(String::as_str));
            changed.push(format!("allowed_origins `{}`", origins.join(" ")));
        }
        let (per_key, per_ip) = (
            change.rate_limit_per_minute,
            change.per_ip_rate_limit_per_minute,
        );
        if per_key.is_some() || per_ip.is_some() {
            // The store sets both limits at once: the one left out stays.
            let per_key = per_key.unwrap_or(current.rate_limit_per_minute);
            let per_ip = per_ip.unwrap_or(current.per_ip_rate_limit_per_minute);
            update = update.limits(Limits {
                per_key: stored_limit(per_key),
                per_ip: stored_limit(per_ip),
            });
            let shown = |limit: Option<i64>| limit.map_or("none".to_owned(), |n| n.to_string());
            changed.push(format!(
                "rate_limit_per_minute {}, per_ip_rate_limit_per_minute {}",
                shown(per_key),
                shown(per_ip)
            ));
        }
        if changed.is_empty() {
            // Nothing asked: nothing written, nothing to record.
            return Ok(Some(current));
        }
        if !tx
            .update_client(client_id, &update)
            .await
            .map_err(store_error)?
        {
            return Ok(None);
        }
        if let Some(granted) = &change.abilities {
            let beyond: Vec<String> = tx
                .client_access_tokens(client_id)
                .await
                .map_err(store_error)?
                .into_iter()
                .filter(|token| {
                    let scope = token.abilities.clone().unwrap_or_default();
                    !abilities::ceilings().is_subset(&scope, granted)
                })
                .map(|token| token.id)
                .collect();
            let revoked = tx.revoke_all(&beyond).await.map_err(store_error)?;
            if revoked > 0 {
                changed.push(format!(
                    "{revoked} access tokens revoked, their scope beyond the new abilities"
                ));
            }
        }
        let event = Event {
            action: "client.updated",
            client_id: Some(client_id),
            detail: Some(changed.join("; ")),
            ..Event::default()
        };
        self.append_audit(&mut tx, audit, event).await?;
        let stored = tx.client(client_id).await.map_err(store_error)?;
        let stored = stored.ok_or(sqlx::Error::RowNotFound)?;
        let updated = Client::from_parts(stored, current.name, kind);
        let data = crate::responses::Client::from(updated.clone());
        self.raise_webhook(&mut tx, EventType::ClientUpdated, &data)
            .await?;
        tx.commit().await?;
        Ok(Some(updated))
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
        let mut tx = self.begin_credentials().await?;
        if !tx.revoke_client(client_id).await.map_err(store_error)? {
            return Ok(false);
        }
        let detail = if revoke_user_tokens {
            let revoked = tx
                .revoke_client_tokens(client_id)
                .await
                .map_err(store_error)?;
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
        let details: Option<(String, String)> =
            sqlx::query_as("SELECT name, kind FROM client_details WHERE client_id = $1")
                .bind(client_id.clone())
                .fetch_optional(&mut *tx)
                .await?;
        let stored = tx.client(client_id).await.map_err(store_error)?;
        if let (Some(stored), Some((name, kind))) = (stored, details)
            && let Some(kind) = ClientKind::parse(&kind)
        {
            let data = crate::responses::Client::from(Client::from_parts(stored, name, kind));
            self.raise_webhook(&mut tx, EventType::ClientRevoked, &data)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
