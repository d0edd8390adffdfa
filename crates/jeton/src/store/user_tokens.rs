//! User tokens: issued at login or by a customer, listed and revoked by them.

use std::collections::HashMap;

use jeton_auth::{AbilitySet, PlainToken};
use sqlx::FromRow;
use time::OffsetDateTime;

use super::{
    Db,
    audit::{Audit, Event},
    changes::{self, Topic},
    columns::{MaybeMicros, Micros, Spaced},
};
use crate::domain::{
    ids::{ClientId, CustomerId, TokenId},
    time::to_micros,
};

/// A user token as stored, without its hash: never any token material but
/// the last four characters. The API shows it as `api::UserToken`.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct UserToken {
    pub id: TokenId,
    pub name: String,
    #[sqlx(try_from = "Spaced")]
    pub abilities: AbilitySet,
    pub last4: String,
    /// The client application the token was issued through.
    pub client_id: Option<ClientId>,
    #[sqlx(try_from = "Micros")]
    pub created_at: OffsetDateTime,
    #[sqlx(try_from = "MaybeMicros")]
    pub last_used_at: Option<OffsetDateTime>,
    #[sqlx(try_from = "MaybeMicros")]
    pub expires_at: Option<OffsetDateTime>,
}

const COLUMNS: &str = "id, name, abilities, last4, client_id, created_at, last_used_at, expires_at";

/// Whose token a revocation touched, for its audit event.
#[derive(FromRow)]
struct RevokedToken {
    customer_id: CustomerId,
    client_id: Option<ClientId>,
}

/// What a new user token is issued with.
#[derive(Debug)]
pub struct NewUserToken<'a> {
    pub customer_id: &'a CustomerId,
    pub client_id: Option<&'a ClientId>,
    pub name: &'a str,
    pub abilities: &'a AbilitySet,
    pub expires_at: Option<OffsetDateTime>,
}

/// Which tokens to revoke.
#[derive(Debug, Clone, Copy)]
pub enum Revoke<'a> {
    /// One token; with an `owner`, only if it is theirs.
    One {
        token_id: &'a TokenId,
        owner: Option<&'a CustomerId>,
    },
    /// Every live token of a customer.
    AllOf { customer_id: &'a CustomerId },
}

/// What `jeton token prune` removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub user_tokens: u64,
    pub client_keys: u64,
    pub access_tokens: u64,
}

impl Db {
    /// Stores a user token (as its hash) and returns its public record.
    #[tracing::instrument(level = "debug", skip(self, token))]
    pub async fn insert_user_token(
        &self,
        token: &PlainToken,
        new: NewUserToken<'_>,
        audit: &Audit,
    ) -> Result<UserToken, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let issued = self.insert_token(&mut tx, token, &new, None, audit).await?;
        tx.commit().await?;
        Ok(issued)
    }

    /// Stores a personal token made by the token `parent`, unless the
    /// customer already has `cap` live tokens made that way (logins and
    /// cookie sessions have no parent and do not count).
    #[tracing::instrument(level = "debug", skip(self, token))]
    pub async fn insert_personal_token(
        &self,
        token: &PlainToken,
        new: NewUserToken<'_>,
        parent: &TokenId,
        cap: u32,
        audit: &Audit,
    ) -> Result<Option<UserToken>, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        // Locks the customer's row on PostgreSQL (SQLite has one writer
        // anyway), so two concurrent creations cannot both pass the count.
        sqlx::query("UPDATE customers SET id = id WHERE id = $1")
            .bind(new.customer_id.clone())
            .execute(&mut *tx)
            .await?;
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM user_tokens WHERE customer_id = $1 AND parent_id IS NOT NULL \
             AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(new.customer_id.clone())
        .bind(self.now_micros())
        .fetch_one(&mut *tx)
        .await?;
        if live >= i64::from(cap) {
            return Ok(None);
        }
        let issued = self
            .insert_token(&mut tx, token, &new, Some(parent), audit)
            .await?;
        tx.commit().await?;
        Ok(Some(issued))
    }

    /// The customer's live tokens (not revoked, not expired), newest first,
    /// older than `before` (a token id): a page of at most `limit`.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn list_user_tokens(
        &self,
        customer_id: &CustomerId,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<UserToken>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM user_tokens WHERE customer_id = $1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2) AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
        );
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(customer_id.clone())
            .bind(self.now_micros())
            .bind(before.map(str::to_owned))
            .bind(limit)
            .fetch_all(self.reader())
            .await
    }

    /// Revokes the live tokens `which` names; returns how many it revoked
    /// (0: none matched, e.g. not the caller's or already revoked).
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn revoke_user_tokens(
        &self,
        which: Revoke<'_>,
        audit: &Audit,
    ) -> Result<u64, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let at = self.now_micros();
        let revoked = match which {
            Revoke::One { token_id, owner } => {
                let sql = if owner.is_some() {
                    "UPDATE user_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL AND customer_id = $3 \
                     RETURNING customer_id, client_id"
                } else {
                    "UPDATE user_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL \
                     RETURNING customer_id, client_id"
                };
                let mut query = sqlx::query_as(sql).bind(at).bind(token_id.clone());
                if let Some(owner) = owner {
                    query = query.bind(owner.clone());
                }
                let revoked: Option<RevokedToken> = query.fetch_optional(&mut *tx).await?;
                let Some(revoked) = revoked else {
                    return Ok(0);
                };
                // A personal token lives no longer than the token that made
                // it, however that one ends: its descendants go with it.
                let descendants = sqlx::query(
                    "WITH RECURSIVE tree (id) AS ( \
                       SELECT id FROM user_tokens WHERE parent_id = $2 \
                       UNION SELECT t.id FROM user_tokens t JOIN tree ON t.parent_id = tree.id) \
                     UPDATE user_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND id IN (SELECT id FROM tree)",
                )
                .bind(at)
                .bind(token_id.clone())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let event = Event {
                    action: "user_token.revoked",
                    customer_id: Some(&revoked.customer_id),
                    client_id: revoked.client_id.as_ref(),
                    subject_id: Some(token_id),
                    detail: (descendants > 0)
                        .then(|| format!("and {descendants} tokens made from it")),
                };
                self.append_audit(&mut tx, audit, event).await?;
                1
            }
            Revoke::AllOf { customer_id } => {
                let revoked = sqlx::query(
                    "UPDATE user_tokens SET revoked_at = $1 WHERE customer_id = $2 AND revoked_at IS NULL",
                )
                .bind(at)
                .bind(customer_id.clone())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let event = Event {
                    action: "user_tokens.revoked_all",
                    customer_id: Some(customer_id),
                    detail: Some(format!("{revoked} tokens")),
                    ..Event::default()
                };
                self.append_audit(&mut tx, audit, event).await?;
                revoked
            }
        };
        if revoked > 0 {
            changes::record(&mut tx).await?;
        }
        tx.commit().await?;
        self.changed(Topic::Credentials).await;
        Ok(revoked)
    }

    /// Writes when tokens were last used, in one statement per 400 tokens:
    /// the verifier collects uses in memory and the server flushes them every
    /// few seconds, so an authenticated request writes nothing. A time only
    /// ever moves forward, whichever process flushes last.
    #[tracing::instrument(level = "debug", skip_all, fields(tokens = uses.len()))]
    pub async fn record_token_use(
        &self,
        uses: &HashMap<String, OffsetDateTime>,
    ) -> Result<(), sqlx::Error> {
        let uses: Vec<(&String, i64)> = uses.iter().map(|(id, at)| (id, to_micros(*at))).collect();
        for chunk in uses.chunks(400) {
            // $1 is shared by every `WHEN`; each token adds an id and a time.
            let cases: String = (0..chunk.len())
                .map(|i| format!(" WHEN ${} THEN ${}", 2 * i + 2, 2 * i + 3))
                .collect();
            let ids = (0..chunk.len())
                .map(|i| format!("${}", 2 * i + 2))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "UPDATE user_tokens SET last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < (CASE id{cases} ELSE $1 END) \
                 THEN (CASE id{cases} ELSE $1 END) ELSE last_used_at END WHERE id IN ({ids})"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(0i64);
            for (id, at) in chunk {
                query = query.bind((*id).clone()).bind(*at);
            }
            query.execute(self.writer()).await?;
        }
        Ok(())
    }

    /// Deletes user tokens and client keys that expired or were revoked
    /// before `cutoff`. They can never authenticate again; pruning only
    /// keeps the tables small.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn prune_tokens(&self, cutoff: OffsetDateTime) -> Result<Pruned, sqlx::Error> {
        let cutoff = to_micros(cutoff);
        let mut tx = self.begin_write().await?;
        // Access tokens first: they name the keys that obtained them.
        let access_tokens = sqlx::query(
            "DELETE FROM access_tokens WHERE expires_at < $1 OR revoked_at < $1 OR key_id IN \
             (SELECT id FROM client_keys WHERE expires_at < $1 OR revoked_at < $1)",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
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
            access_tokens,
        })
    }

    /// Inserts a token in `tx`, with its audit event.
    async fn insert_token(
        &self,
        tx: &mut sqlx::AnyConnection,
        token: &PlainToken,
        new: &NewUserToken<'_>,
        parent: Option<&TokenId>,
        audit: &Audit,
    ) -> Result<UserToken, sqlx::Error> {
        let sql = format!(
            "INSERT INTO user_tokens (id, customer_id, client_id, name, token_hash, last4, abilities, created_at, expires_at, parent_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
        );
        let issued: UserToken = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(TokenId::generate())
            .bind(new.customer_id.clone())
            .bind(new.client_id.cloned())
            .bind(new.name.to_owned())
            .bind(token.hash().to_hex())
            .bind(token.last4())
            .bind(new.abilities.to_spaced())
            .bind(self.now_micros())
            .bind(new.expires_at.map(to_micros))
            .bind(parent.cloned())
            .fetch_one(&mut *tx)
            .await?;
        let event = Event {
            action: "user_token.issued",
            customer_id: Some(new.customer_id),
            client_id: new.client_id,
            subject_id: Some(&issued.id),
            detail: Some(format!(
                "`{}`: {}",
                issued.name,
                issued.abilities.to_spaced()
            )),
        };
        self.append_audit(tx, audit, event).await?;
        Ok(issued)
    }
}
