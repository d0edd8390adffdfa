//! User tokens: issued at login or by a customer, listed and revoked by them.

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

/// User tokens as stored: jeton-auth's `auth_credentials` (whose `user_id`
/// is the customer's id), with their name and parent beside them
/// (`user_token_details`).
const TOKENS: &str = "SELECT t.id, d.name, t.abilities, t.last4, t.client_id, t.created_at, \
    t.last_used_at, t.expires_at FROM auth_credentials t \
    JOIN user_token_details d ON d.token_id = t.id";

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
            "SELECT COUNT(*) FROM auth_credentials t JOIN user_token_details d ON d.token_id = t.id \
             WHERE t.user_id = $1 AND d.parent_id IS NOT NULL \
             AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)",
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
            "{TOKENS} WHERE t.user_id = $1 AND t.revoked_at IS NULL \
             AND (t.expires_at IS NULL OR t.expires_at > $2) AND ($3 IS NULL OR t.id < $3) \
             ORDER BY t.id DESC LIMIT $4"
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
                    "UPDATE auth_credentials SET revoked_at = $1 \
                     WHERE id = $2 AND kind = 'user' AND revoked_at IS NULL AND user_id = $3 \
                     RETURNING user_id AS customer_id, client_id"
                } else {
                    "UPDATE auth_credentials SET revoked_at = $1 \
                     WHERE id = $2 AND kind = 'user' AND revoked_at IS NULL \
                     RETURNING user_id AS customer_id, client_id"
                };
                let mut query = sqlx::query_as(sql).bind(at).bind(token_id.clone());
                if let Some(owner) = owner {
                    query = query.bind(owner.clone());
                }
                let revoked: Option<RevokedToken> = query.fetch_optional(&mut *tx).await?;
                let Some(revoked) = revoked else {
                    return Ok(0);
                };
                let descendants = revoke_descendants(&mut tx, token_id, at).await?;
                let event = Event {
                    action: "user_token.revoked",
                    customer_id: Some(&revoked.customer_id),
                    client_id: revoked.client_id.as_ref(),
                    subject_id: Some(token_id),
                    detail: descendants_detail(descendants),
                };
                self.append_audit(&mut tx, audit, event).await?;
                1
            }
            Revoke::AllOf { customer_id } => {
                let revoked = sqlx::query(
                    "UPDATE auth_credentials SET revoked_at = $1 WHERE user_id = $2 AND kind = 'user' AND revoked_at IS NULL",
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

    /// Deletes user tokens, client keys and access tokens that expired or
    /// were revoked before `cutoff`, and the refusals recorded of them.
    /// They can never authenticate again; pruning only keeps the tables
    /// small.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn prune_tokens(&self, cutoff: OffsetDateTime) -> Result<Pruned, sqlx::Error> {
        let cutoff = to_micros(cutoff);
        let mut tx = self.begin_write().await?;
        // Access tokens first: they name the keys that obtained them.
        let access_tokens = sqlx::query(
            "DELETE FROM access_tokens WHERE expires_at < $1 OR revoked_at < $1 OR key_id IN \
             (SELECT id FROM auth_credentials WHERE expires_at < $1 OR revoked_at < $1)",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // A user token's details go with it (`ON DELETE CASCADE`).
        let user_tokens = sqlx::query(
            "DELETE FROM auth_credentials WHERE kind = 'user' AND (expires_at < $1 OR revoked_at < $1)",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let client_keys = sqlx::query(
            "DELETE FROM auth_credentials WHERE kind <> 'user' AND (expires_at < $1 OR revoked_at < $1)",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // The refusals jeton-auth recorded of what is gone; a live key's
        // stay, however old: they are how a leaked key shows.
        sqlx::query(
            "DELETE FROM auth_refusals WHERE \
             NOT EXISTS (SELECT 1 FROM auth_credentials c WHERE c.id = auth_refusals.credential_id) \
             AND NOT EXISTS (SELECT 1 FROM access_tokens a WHERE a.id = auth_refusals.credential_id)",
        )
        .execute(&mut *tx)
        .await?;
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
        let id = TokenId::generate();
        sqlx::query(
            "INSERT INTO auth_credentials (id, kind, token_hash, last4, client_id, user_id, \
             abilities, created_at, expires_at) VALUES ($1, 'user', $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id.clone())
        .bind(token.hash().to_hex())
        .bind(token.last4())
        .bind(new.client_id.cloned())
        .bind(new.customer_id.clone())
        .bind(new.abilities.to_spaced())
        .bind(self.now_micros())
        .bind(new.expires_at.map(to_micros))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO user_token_details (token_id, customer_id, name, parent_id) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id.clone())
        .bind(new.customer_id.clone())
        .bind(new.name.to_owned())
        .bind(parent.cloned())
        .execute(&mut *tx)
        .await?;
        let issued: UserToken =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{TOKENS} WHERE t.id = $1")))
                .bind(id)
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

/// A personal token lives no longer than the token that made it, however
/// that one ends: revokes the descendants of a token revoked in `tx`;
/// how many.
pub(super) async fn revoke_descendants(
    tx: &mut sqlx::AnyConnection,
    token_id: &TokenId,
    at: i64,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "WITH RECURSIVE tree (id) AS ( \
           SELECT token_id FROM user_token_details WHERE parent_id = $2 \
           UNION SELECT d.token_id FROM user_token_details d JOIN tree ON d.parent_id = tree.id) \
         UPDATE auth_credentials SET revoked_at = $1 WHERE revoked_at IS NULL AND id IN (SELECT id FROM tree)",
    )
    .bind(at)
    .bind(token_id.clone())
    .execute(tx)
    .await?
    .rows_affected())
}

/// What a revocation's audit event adds when descendants went with it.
pub(super) fn descendants_detail(descendants: u64) -> Option<String> {
    (descendants > 0).then(|| format!("and {descendants} tokens made from it"))
}
