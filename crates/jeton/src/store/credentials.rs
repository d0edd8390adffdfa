//! The [`TokenStore`] the verifier asks: live credentials by token hash.
//! One indexed lookup per token; revoked credentials are simply not found.

use jeton_auth::{
    AbilitySet, ClientPrincipal, HashedToken, Limits, Principal, Refusal, StoreError,
    StoredCredential, TokenKind, TokenStore, UserPrincipal,
};
use std::collections::HashMap;

use sqlx::FromRow;
use time::OffsetDateTime;

use super::{
    Db,
    audit::{Audit, Event},
    columns::{MaybeMicros, Micros, Spaced},
};
use crate::domain::ids::{AccessTokenId, ClientId, ClientIds, CustomerId, KeyId, TokenId};

/// A live client key and what its client allows.
#[derive(FromRow)]
struct ClientKeyCredential {
    id: KeyId,
    client_id: ClientId,
    #[sqlx(try_from = "MaybeMicros")]
    expires_at: Option<OffsetDateTime>,
    #[sqlx(try_from = "Spaced")]
    abilities: AbilitySet,
    #[sqlx(try_from = "Spaced")]
    allowed_origins: Vec<String>,
    rate_limit_per_minute: Option<i64>,
    per_ip_rate_limit_per_minute: Option<i64>,
}

/// A live user token.
#[derive(FromRow)]
struct UserTokenCredential {
    id: TokenId,
    customer_id: CustomerId,
    client_id: Option<ClientId>,
    /// The live client's allowed origins; NULL without one.
    client_origins: Option<String>,
    #[sqlx(try_from = "Spaced")]
    abilities: AbilitySet,
    #[sqlx(try_from = "MaybeMicros")]
    expires_at: Option<OffsetDateTime>,
}

/// A live access token, its client, and when the key that obtained it
/// stops working.
#[derive(FromRow)]
struct AccessTokenCredential {
    id: AccessTokenId,
    client_id: ClientId,
    #[sqlx(try_from = "Spaced")]
    scope: AbilitySet,
    #[sqlx(try_from = "Micros")]
    expires_at: OffsetDateTime,
    #[sqlx(try_from = "MaybeMicros")]
    key_expires_at: Option<OffsetDateTime>,
    rate_limit_per_minute: Option<i64>,
    per_ip_rate_limit_per_minute: Option<i64>,
}

/// Stored limits are within 1..=1_000_000 (see `domain::client`).
fn limit(stored: Option<i64>) -> Option<u32> {
    stored.and_then(|n| u32::try_from(n).ok())
}

impl Db {
    #[tracing::instrument(level = "debug", skip(self, hash))]
    async fn find_client_key(
        &self,
        kind: TokenKind,
        hash: &HashedToken,
    ) -> Result<Option<StoredCredential>, sqlx::Error> {
        let kind_name = if kind == TokenKind::Publishable {
            "publishable"
        } else {
            "secret"
        };
        let found: Option<ClientKeyCredential> = sqlx::query_as(
            "SELECT k.id, k.client_id, k.expires_at, c.abilities, c.allowed_origins, \
             c.rate_limit_per_minute, c.per_ip_rate_limit_per_minute FROM client_keys k \
             JOIN clients c ON c.id = k.client_id \
             WHERE k.token_hash = $1 AND k.kind = $2 AND k.revoked_at IS NULL AND c.revoked_at IS NULL",
        )
        .bind(hash.to_hex())
        .bind(kind_name)
        .fetch_optional(self.reader())
        .await?;
        let Some(key) = found else { return Ok(None) };
        let client = ClientPrincipal::new(key.client_id, key.id, key.abilities)
            .with_allowed_origins(key.allowed_origins)
            .with_limits(Limits {
                per_key: limit(key.rate_limit_per_minute),
                per_ip: limit(key.per_ip_rate_limit_per_minute),
            });
        let principal = if kind == TokenKind::Publishable {
            Principal::PublishableClient(client.into())
        } else {
            Principal::SecretClient(client.into())
        };
        Ok(Some(StoredCredential {
            principal,
            expires_at: key.expires_at,
        }))
    }

    /// An access token lives while it, its client and the secret key that
    /// obtained it do: it expires with that key's rotation grace too. A
    /// rotation or revocation after the token was issued moves the change
    /// feed, so the cached copy is read again with the key's new date.
    #[tracing::instrument(level = "debug", skip_all)]
    async fn find_access_token(
        &self,
        hash: &HashedToken,
    ) -> Result<Option<StoredCredential>, sqlx::Error> {
        let found: Option<AccessTokenCredential> = sqlx::query_as(
            "SELECT a.id, a.client_id, a.scope, a.expires_at, k.expires_at AS key_expires_at, \
             c.rate_limit_per_minute, c.per_ip_rate_limit_per_minute FROM access_tokens a \
             JOIN client_keys k ON k.id = a.key_id JOIN clients c ON c.id = a.client_id \
             WHERE a.token_hash = $1 AND a.revoked_at IS NULL AND k.revoked_at IS NULL \
             AND c.revoked_at IS NULL",
        )
        .bind(hash.to_hex())
        .fetch_optional(self.reader())
        .await?;
        let Some(token) = found else { return Ok(None) };
        // Refused from any browser, as the secret key it stands for: no
        // allowed origins.
        let client =
            ClientPrincipal::new(token.client_id, token.id, token.scope).with_limits(Limits {
                per_key: limit(token.rate_limit_per_minute),
                per_ip: limit(token.per_ip_rate_limit_per_minute),
            });
        let expires_at = match token.key_expires_at {
            Some(key) => key.min(token.expires_at),
            None => token.expires_at,
        };
        Ok(Some(StoredCredential {
            principal: Principal::AccessToken(client.into()),
            expires_at: Some(expires_at),
        }))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn find_user_token(
        &self,
        hash: &HashedToken,
    ) -> Result<Option<StoredCredential>, sqlx::Error> {
        let found: Option<UserTokenCredential> = sqlx::query_as(
            "SELECT t.id, t.customer_id, t.client_id, c.allowed_origins AS client_origins, \
             t.abilities, t.expires_at FROM user_tokens t \
             LEFT JOIN clients c ON c.id = t.client_id AND c.revoked_at IS NULL \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
        )
        .bind(hash.to_hex())
        .fetch_optional(self.reader())
        .await?;
        let Some(token) = found else { return Ok(None) };
        let mut user = UserPrincipal::new(token.customer_id, token.id, token.abilities)
            .with_expires_at(token.expires_at);
        user.client_id = token.client_id.map(String::from);
        user.client_origins = token
            .client_origins
            .as_deref()
            .map(|list| list.split_ascii_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        Ok(Some(StoredCredential {
            principal: Principal::User(user.into()),
            expires_at: token.expires_at,
        }))
    }

    /// A refused key: an audit event, and for a secret key seen in a browser
    /// a mark on the key itself, shown in the admin API and `client list`.
    #[tracing::instrument(level = "debug", skip_all, fields(code = refusal.code))]
    async fn store_refusal(&self, refusal: &Refusal) -> Result<(), sqlx::Error> {
        let Some(client) = refusal.principal.client() else {
            return Ok(());
        };
        let ids = ClientIds::from(&**client);
        let mut tx = self.begin_write().await?;
        let action = if matches!(refusal.principal, Principal::AccessToken(_)) {
            // The token's id: the key that obtained it did not leak.
            "access_token.refused_in_browser"
        } else if refusal.code == "secret_key_in_browser" {
            sqlx::query(
                "UPDATE client_keys SET browser_refusals = browser_refusals + 1, last_browser_refusal_at = $2 WHERE id = $1",
            )
            .bind(ids.key.clone())
            .bind(self.now_micros())
            .execute(&mut *tx)
            .await?;
            "client_key.refused_in_browser"
        } else {
            "client_key.refused_origin"
        };
        // Whoever holds the key acted; the IP says where from.
        let audit = Audit::of(&refusal.principal, refusal.client_ip);
        let event = Event {
            action,
            client_id: Some(&ids.client),
            subject_id: Some(&ids.key),
            // The origin is public information (the page's site); it is
            // clipped because the header is attacker-controlled.
            detail: refusal
                .origin
                .as_ref()
                .map(|o| format!("origin {}", o.chars().take(200).collect::<String>())),
            ..Event::default()
        };
        self.append_audit(&mut tx, &audit, event).await?;
        tx.commit().await
    }
}

impl TokenStore for Db {
    async fn find_credential(
        &self,
        kind: TokenKind,
        hash: &HashedToken,
    ) -> Result<Option<StoredCredential>, StoreError> {
        let found = match kind {
            TokenKind::Publishable | TokenKind::Secret => self.find_client_key(kind, hash).await,
            TokenKind::User => self.find_user_token(hash).await,
            TokenKind::Access => self.find_access_token(hash).await,
            _ => Ok(None),
        };
        found.map_err(StoreError::new)
    }

    /// Every few seconds, from the gate: no authenticated request writes.
    async fn record_usage(&self, usage: HashMap<String, OffsetDateTime>) {
        if let Err(error) = self.record_token_use(&usage).await {
            tracing::warn!(%error, tokens = usage.len(), "could not record token use");
        }
    }

    async fn record_refusal(&self, refusal: Refusal) {
        if let Err(error) = self.store_refusal(&refusal).await {
            tracing::warn!(%error, code = refusal.code, "could not record a refused key");
        }
    }
}
