//! OAuth 2.0 access tokens (client credentials grant): issued to a client
//! that authenticated with one of its secret keys, revoked by that client.
//! The verifier finds them in `store/credentials.rs`, through the same
//! cache as every other credential.

use jeton_auth::{AbilitySet, HashedToken, PlainToken, TokenKind};
use time::OffsetDateTime;

use super::{
    Db,
    audit::{Audit, Event},
    changes::{self, Topic},
    user_tokens::{descendants_detail, revoke_descendants},
};
use crate::domain::{
    ids::{AccessTokenId, ClientId, CustomerId, KeyId, TokenId},
    time::{from_micros_checked, to_micros},
};

/// What a new access token is issued with.
#[derive(Debug)]
pub struct NewAccessToken<'a> {
    pub client_id: &'a ClientId,
    /// The secret key the client authenticated with: the token dies with it.
    pub key_id: &'a KeyId,
    pub scope: &'a AbilitySet,
    pub expires_at: OffsetDateTime,
}

/// What the revocation endpoint revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    AccessToken,
    UserToken,
    /// Unknown, already revoked, another client's, or of a kind that is
    /// not revoked this way: the same answer for all (RFC 7009).
    Nothing,
}

#[derive(sqlx::FromRow)]
struct RevokedUserToken {
    id: TokenId,
    customer_id: CustomerId,
}

impl Db {
    /// Stores an access token (as its hash) with its audit event. One event
    /// per token: each exchange is a write anyway, and the log then says
    /// which key obtained which token.
    #[tracing::instrument(level = "debug", skip(self, token, audit))]
    pub async fn issue_access_token(
        &self,
        token: &PlainToken,
        new: NewAccessToken<'_>,
        audit: &Audit,
    ) -> Result<AccessTokenId, sqlx::Error> {
        debug_assert_eq!(token.kind(), TokenKind::Access);
        let id = AccessTokenId::generate();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO access_tokens (id, client_id, key_id, token_hash, scope, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.clone())
        .bind(new.client_id.clone())
        .bind(new.key_id.clone())
        .bind(token.hash().to_hex())
        .bind(new.scope.to_spaced())
        .bind(self.now_micros())
        .bind(to_micros(new.expires_at))
        .execute(&mut *tx)
        .await?;
        let event = Event {
            action: "access_token.issued",
            client_id: Some(new.client_id),
            subject_id: Some(&id),
            detail: Some(format!(
                "scope `{}`, by key {}",
                new.scope.to_spaced(),
                new.key_id.as_str()
            )),
            ..Event::default()
        };
        self.append_audit(&mut tx, audit, event).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// RFC 7009: revokes `hash` if it is an access token of `client_id`, or
    /// a user token issued through it; anything else is left alone.
    #[tracing::instrument(level = "debug", skip(self, hash, audit))]
    pub async fn revoke_for_client(
        &self,
        kind: TokenKind,
        hash: &HashedToken,
        client_id: &ClientId,
        audit: &Audit,
    ) -> Result<Revoked, sqlx::Error> {
        let at = self.now_micros();
        let mut tx = self.begin_write().await?;
        let revoked = match kind {
            TokenKind::Access => {
                let id: Option<AccessTokenId> = sqlx::query_scalar(
                    "UPDATE access_tokens SET revoked_at = $1 \
                     WHERE token_hash = $2 AND client_id = $3 AND revoked_at IS NULL RETURNING id",
                )
                .bind(at)
                .bind(hash.to_hex())
                .bind(client_id.clone())
                .fetch_optional(&mut *tx)
                .await?;
                let Some(id) = id else {
                    return Ok(Revoked::Nothing);
                };
                let event = Event {
                    action: "access_token.revoked",
                    client_id: Some(client_id),
                    subject_id: Some(&id),
                    ..Event::default()
                };
                self.append_audit(&mut tx, audit, event).await?;
                Revoked::AccessToken
            }
            TokenKind::User => {
                let found: Option<RevokedUserToken> = sqlx::query_as(
                    "UPDATE auth_credentials SET revoked_at = $1 \
                     WHERE token_hash = $2 AND kind = 'user' AND client_id = $3 AND revoked_at IS NULL \
                     RETURNING id, user_id AS customer_id",
                )
                .bind(at)
                .bind(hash.to_hex())
                .bind(client_id.clone())
                .fetch_optional(&mut *tx)
                .await?;
                let Some(found) = found else {
                    return Ok(Revoked::Nothing);
                };
                let descendants = revoke_descendants(&mut tx, &found.id, at).await?;
                let detail = match descendants_detail(descendants) {
                    Some(and) => format!("by its client (OAuth 2.0 revocation), {and}"),
                    None => "by its client (OAuth 2.0 revocation)".to_owned(),
                };
                let event = Event {
                    action: "user_token.revoked",
                    client_id: Some(client_id),
                    customer_id: Some(&found.customer_id),
                    subject_id: Some(&found.id),
                    detail: Some(detail),
                };
                self.append_audit(&mut tx, audit, event).await?;
                Revoked::UserToken
            }
            _ => return Ok(Revoked::Nothing),
        };
        changes::record(&mut tx).await?;
        tx.commit().await?;
        self.changed(Topic::Credentials).await;
        Ok(revoked)
    }

    /// When the credential of `kind` with this id was issued (RFC 7662
    /// `iat`), if it still exists.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn issued_at(
        &self,
        kind: TokenKind,
        id: &str,
    ) -> Result<Option<OffsetDateTime>, sqlx::Error> {
        let sql = match kind {
            TokenKind::Publishable | TokenKind::Secret | TokenKind::User => {
                "SELECT created_at FROM auth_credentials WHERE id = $1"
            }
            TokenKind::Access => "SELECT created_at FROM access_tokens WHERE id = $1",
            _ => return Ok(None),
        };
        let micros: Option<i64> = sqlx::query_scalar(sql)
            .bind(id.to_owned())
            .fetch_optional(self.reader())
            .await?;
        Ok(micros.and_then(|m| from_micros_checked(m).ok()))
    }
}
