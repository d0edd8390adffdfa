//! The [`TokenStore`] the verifier asks: live credentials by token hash.
//! One indexed lookup per token; revoked credentials are simply not found.

use jeton_auth::{
    AbilitySet, ClientPrincipal, HashedToken, Principal, StoreError, StoredCredential, TokenKind,
    TokenStore, UserPrincipal,
};
use sqlx::{Row, any::AnyRow};

use super::Db;
use crate::domain::time::from_micros;

fn abilities(row: &AnyRow) -> Result<AbilitySet, sqlx::Error> {
    let text: String = row.try_get("abilities")?;
    AbilitySet::parse_spaced(&text).map_err(|e| sqlx::Error::Decode(e.into()))
}

fn expires_at(row: &AnyRow) -> Result<Option<time::OffsetDateTime>, sqlx::Error> {
    Ok(row
        .try_get::<Option<i64>, _>("expires_at")?
        .map(from_micros))
}

impl Db {
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
        let row = sqlx::query(
            "SELECT k.id, k.client_id, k.expires_at, c.abilities FROM client_keys k \
             JOIN clients c ON c.id = k.client_id \
             WHERE k.token_hash = $1 AND k.kind = $2 AND k.revoked_at IS NULL AND c.revoked_at IS NULL",
        )
        .bind(hash.to_hex())
        .bind(kind_name)
        .fetch_optional(self.reader())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let client = ClientPrincipal {
            client_id: row.try_get("client_id")?,
            key_id: row.try_get("id")?,
            abilities: abilities(&row)?,
        };
        let principal = if kind == TokenKind::Publishable {
            Principal::PublishableClient(client)
        } else {
            Principal::SecretClient(client)
        };
        Ok(Some(StoredCredential {
            principal,
            expires_at: expires_at(&row)?,
        }))
    }

    async fn find_user_token(
        &self,
        hash: &HashedToken,
    ) -> Result<Option<StoredCredential>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT id, customer_id, client_id, abilities, expires_at FROM user_tokens \
             WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash.to_hex())
        .fetch_optional(self.reader())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let expires_at = expires_at(&row)?;
        let user = UserPrincipal {
            user_id: row.try_get("customer_id")?,
            token_id: row.try_get("id")?,
            client_id: row.try_get("client_id")?,
            abilities: abilities(&row)?,
            expires_at,
        };
        Ok(Some(StoredCredential {
            principal: Principal::User(user),
            expires_at,
        }))
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
            // OAuth2 access tokens are reserved in the format; none is issued.
            TokenKind::Access => Ok(None),
        };
        found.map_err(|error| StoreError(Box::new(error)))
    }
}
