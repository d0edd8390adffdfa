//! User tokens: issued at login or by a customer, listed and revoked by them.
//! jeton-auth's store holds them and writes every change; Jeton keeps a
//! token's customer, name and parent beside it (`user_token_details`) and
//! audits each change in the same transaction.

use std::collections::HashMap;

use jeton_auth::{AbilitySet, CredentialInfo, CredentialTx, NewCredential, PlainToken};
use time::OffsetDateTime;

use super::{
    Db, IssueError,
    audit::{Audit, Event},
    store_error,
};
use crate::domain::ids::{ClientId, CustomerId, TokenId};

/// A user token as stored, without its hash: never any token material but
/// the last four characters. The API shows it as `responses::UserToken`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserToken {
    pub id: TokenId,
    pub name: String,
    pub abilities: AbilitySet,
    pub last4: String,
    /// The client application the token was issued through.
    pub client_id: Option<ClientId>,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub expires_at: Option<OffsetDateTime>,
}

impl UserToken {
    fn from_parts(token: CredentialInfo, name: String) -> UserToken {
        UserToken {
            id: TokenId::from_store(token.id),
            name,
            abilities: token.abilities.unwrap_or_default(),
            last4: token.last4,
            client_id: token.client_id.map(ClientId::from_store),
            created_at: token.created_at,
            last_used_at: token.last_used_at,
            expires_at: token.expires_at,
        }
    }
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
    /// Guest tokens revoked, past their absolute end or idle past their
    /// idle timeout (`auth_guest_tokens`).
    pub guest_tokens: u64,
}

impl Db {
    /// Stores a user token (as its hash) and returns its public record.
    #[tracing::instrument(level = "debug", skip(self, token))]
    pub async fn insert_user_token(
        &self,
        token: &PlainToken,
        new: NewUserToken<'_>,
        audit: &Audit,
    ) -> Result<UserToken, IssueError> {
        let mut tx = self.begin_credentials().await?;
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
    ) -> Result<Option<UserToken>, IssueError> {
        let mut tx = self.begin_credentials().await?;
        // Locks the customer's row on PostgreSQL (SQLite has one writer
        // anyway), so two concurrent creations cannot both pass the count.
        sqlx::query("UPDATE customers SET id = id WHERE id = $1")
            .bind(new.customer_id.clone())
            .execute(&mut *tx)
            .await?;
        let personal: Vec<String> = sqlx::query_scalar(
            "SELECT token_id FROM user_token_details \
             WHERE customer_id = $1 AND parent_id IS NOT NULL",
        )
        .bind(new.customer_id.clone())
        .fetch_all(&mut *tx)
        .await?;
        let now = self.now();
        let live = tx
            .credentials(&personal)
            .await
            .map_err(store_error)?
            .iter()
            .filter(|token| token.is_live_at(now))
            .count();
        if live >= usize::try_from(cap).unwrap_or(usize::MAX) {
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
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let tokens = self
            .auth()
            .user_tokens(customer_id, before, limit)
            .await
            .map_err(store_error)?;
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT token_id, name FROM user_token_details WHERE token_id IN ({})",
            super::placeholders(1, tokens.len())
        );
        let mut query = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql));
        for token in &tokens {
            query = query.bind(token.id.clone());
        }
        let mut names: HashMap<String, String> =
            query.fetch_all(self.reader()).await?.into_iter().collect();
        Ok(tokens
            .into_iter()
            .filter_map(|token| {
                let name = names.remove(&token.id)?;
                Some(UserToken::from_parts(token, name))
            })
            .collect())
    }

    /// Revokes the live tokens `which` names; returns how many it revoked
    /// (0: none matched, e.g. not the caller's or already revoked).
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn revoke_user_tokens(
        &self,
        which: Revoke<'_>,
        audit: &Audit,
    ) -> Result<u64, sqlx::Error> {
        let mut tx = self.begin_credentials().await?;
        let revoked = match which {
            Revoke::One { token_id, owner } => {
                let found = tx.credential(token_id).await.map_err(store_error)?;
                let Some(found) = found.filter(|token| {
                    token.kind == jeton_auth::TokenKind::User
                        && owner.is_none_or(|owner| token.user_id.as_deref() == Some(owner))
                }) else {
                    return Ok(0);
                };
                if !tx.revoke(token_id).await.map_err(store_error)? {
                    return Ok(0);
                }
                let descendants = revoke_descendants(&mut tx, token_id).await?;
                let customer_id = found.user_id.map(CustomerId::from_store);
                let client_id = found.client_id.map(ClientId::from_store);
                let event = Event {
                    action: "user_token.revoked",
                    customer_id: customer_id.as_ref(),
                    client_id: client_id.as_ref(),
                    subject_id: Some(token_id),
                    detail: descendants_detail(descendants),
                };
                self.append_audit(&mut tx, audit, event).await?;
                1
            }
            Revoke::AllOf { customer_id } => {
                let revoked = tx
                    .revoke_user_tokens(customer_id)
                    .await
                    .map_err(store_error)?;
                let event = Event {
                    action: "user_tokens.revoked_all",
                    customer_id: Some(customer_id),
                    detail: Some(format!("{revoked} tokens")),
                    ..Event::default()
                };
                self.append_audit(&mut tx, audit, event).await?;
                let customer: Option<super::customers::Customer> = sqlx::query_as(
                    "SELECT id, email, name, created_at FROM customers WHERE id = $1",
                )
                .bind(customer_id.clone())
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(customer) = customer {
                    let data = crate::responses::Customer::from(customer);
                    self.raise_webhook(
                        &mut tx,
                        crate::webhooks::events::EventType::CustomerTokensRevoked,
                        &data,
                    )
                    .await?;
                }
                revoked
            }
        };
        tx.commit().await?;
        Ok(revoked)
    }

    /// Deletes user tokens, client keys, access tokens and guest tokens
    /// that expired (a guest also idle) or were revoked before `cutoff`,
    /// the refusals recorded of them, and the deleted guests' carts.
    /// They can never authenticate again; pruning only keeps the tables
    /// small.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn prune_tokens(&self, cutoff: OffsetDateTime) -> Result<Pruned, sqlx::Error> {
        let mut tx = self.begin_credentials().await?;
        // A user token's details go with it (`ON DELETE CASCADE`).
        let purged = tx.purge_credentials(cutoff).await.map_err(store_error)?;
        // A guest's cart goes with its token (a merged one went at the
        // merge): nothing could reach it again.
        sqlx::query(
            "DELETE FROM carts WHERE guest_id IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM auth_guest_tokens g WHERE g.id = carts.guest_id)",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Pruned {
            user_tokens: purged.user_tokens,
            client_keys: purged.keys,
            access_tokens: purged.access_tokens,
            guest_tokens: purged.guest_tokens,
        })
    }

    /// Inserts a token in `tx`, with its details and audit event.
    async fn insert_token(
        &self,
        tx: &mut CredentialTx<'static>,
        token: &PlainToken,
        new: &NewUserToken<'_>,
        parent: Option<&TokenId>,
        audit: &Audit,
    ) -> Result<UserToken, IssueError> {
        let mut credential = NewCredential::user(new.customer_id, new.abilities.iter().cloned())
            .expires_at(new.expires_at);
        if let Some(client_id) = new.client_id {
            credential = credential.via(client_id);
        }
        let id = tx.insert(credential, token).await?;
        sqlx::query(
            "INSERT INTO user_token_details (token_id, customer_id, name, parent_id) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id.clone())
        .bind(new.customer_id.clone())
        .bind(new.name.to_owned())
        .bind(parent.cloned())
        .execute(&mut **tx)
        .await?;
        // As stored (times to the microsecond), as every later read shows it.
        let stored = tx.credential(&id).await.map_err(store_error)?;
        let stored = stored.ok_or(sqlx::Error::RowNotFound)?;
        let issued = UserToken::from_parts(stored, new.name.to_owned());
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
    tx: &mut CredentialTx<'static>,
    token_id: &TokenId,
) -> Result<u64, sqlx::Error> {
    let tree: Vec<String> = sqlx::query_scalar(
        "WITH RECURSIVE tree (id) AS ( \
           SELECT token_id FROM user_token_details WHERE parent_id = $1 \
           UNION SELECT d.token_id FROM user_token_details d JOIN tree ON d.parent_id = tree.id) \
         SELECT id FROM tree",
    )
    .bind(token_id.clone())
    .fetch_all(&mut **tx)
    .await?;
    tx.revoke_all(&tree).await.map_err(store_error)
}

/// What a revocation's audit event adds when descendants went with it.
pub(super) fn descendants_detail(descendants: u64) -> Option<String> {
    (descendants > 0).then(|| format!("and {descendants} tokens made from it"))
}
