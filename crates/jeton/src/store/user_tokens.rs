//! User tokens: issued at login or by a customer, listed and revoked by them.

use jeton_auth::{AbilitySet, PlainToken};
use serde::Serialize;
use sqlx::{Row, any::AnyRow};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::Db;
use crate::domain::{
    ids::new_id,
    time::{from_micros, now_micros, to_micros},
};

/// A user token as its owner may see it: never any token material but the
/// last four characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UserToken {
    pub id: String,
    pub name: String,
    #[schema(value_type = Vec<String>)]
    pub abilities: AbilitySet,
    pub last4: String,
    /// The client application the token was issued through.
    pub client_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

const COLUMNS: &str = "id, name, abilities, last4, client_id, created_at, last_used_at, expires_at";

fn from_row(row: &AnyRow) -> Result<UserToken, sqlx::Error> {
    let abilities: String = row.try_get("abilities")?;
    Ok(UserToken {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        abilities: AbilitySet::parse_spaced(&abilities)
            .map_err(|e| sqlx::Error::Decode(e.into()))?,
        last4: row.try_get("last4")?,
        client_id: row.try_get("client_id")?,
        created_at: from_micros(row.try_get("created_at")?),
        last_used_at: row
            .try_get::<Option<i64>, _>("last_used_at")?
            .map(from_micros),
        expires_at: row
            .try_get::<Option<i64>, _>("expires_at")?
            .map(from_micros),
    })
}

/// What a new user token is issued with.
pub struct NewUserToken<'a> {
    pub customer_id: &'a str,
    pub client_id: Option<&'a str>,
    pub name: &'a str,
    pub abilities: &'a AbilitySet,
    pub expires_at: Option<OffsetDateTime>,
}

/// What `jeton token prune` removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub user_tokens: u64,
    pub client_keys: u64,
}

impl Db {
    /// Stores a user token (as its hash) and returns its public record.
    pub async fn insert_user_token(
        &self,
        token: &PlainToken,
        new: NewUserToken<'_>,
    ) -> Result<UserToken, sqlx::Error> {
        let sql = format!(
            "INSERT INTO user_tokens (id, customer_id, client_id, name, token_hash, last4, abilities, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(new_id())
            .bind(new.customer_id.to_owned())
            .bind(new.client_id.map(str::to_owned))
            .bind(new.name.to_owned())
            .bind(token.hash().to_hex())
            .bind(token.last4())
            .bind(new.abilities.to_spaced())
            .bind(now_micros())
            .bind(new.expires_at.map(to_micros))
            .fetch_one(self.writer())
            .await?;
        from_row(&row)
    }

    /// The customer's live tokens (not revoked, not expired), newest first.
    pub async fn list_user_tokens(&self, customer_id: &str) -> Result<Vec<UserToken>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM user_tokens WHERE customer_id = $1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2) ORDER BY id DESC"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(customer_id.to_owned())
            .bind(now_micros())
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Revokes one of the customer's tokens; `false` if they have no such
    /// live token.
    pub async fn revoke_user_token(
        &self,
        customer_id: &str,
        token_id: &str,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE user_tokens SET revoked_at = $3 WHERE id = $1 AND customer_id = $2 AND revoked_at IS NULL",
        )
        .bind(token_id.to_owned())
        .bind(customer_id.to_owned())
        .bind(now_micros())
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes a token by id alone (the operator's `jeton token revoke`).
    pub async fn revoke_user_token_by_id(&self, token_id: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE user_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(token_id.to_owned())
        .bind(now_micros())
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes every live token of a customer; returns how many.
    pub async fn revoke_customer_tokens(&self, customer_id: &str) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE user_tokens SET revoked_at = $2 WHERE customer_id = $1 AND revoked_at IS NULL",
        )
        .bind(customer_id.to_owned())
        .bind(now_micros())
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    /// Deletes user tokens and client keys that expired or were revoked
    /// before `cutoff`. They can never authenticate again; pruning only
    /// keeps the tables small.
    pub async fn prune_tokens(&self, cutoff: OffsetDateTime) -> Result<Pruned, sqlx::Error> {
        let cutoff = to_micros(cutoff);
        let mut tx = self.begin_write().await?;
        let user_tokens =
            sqlx::query("DELETE FROM user_tokens WHERE expires_at < $1 OR revoked_at < $1")
                .bind(cutoff)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        let client_keys =
            sqlx::query("DELETE FROM client_keys WHERE expires_at < $1 OR revoked_at < $1")
                .bind(cutoff)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        tx.commit().await?;
        Ok(Pruned {
            user_tokens,
            client_keys,
        })
    }
}
