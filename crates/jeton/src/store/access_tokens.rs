//! OAuth 2.0 access tokens (client credentials grant): issued to a client
//! that authenticated with one of its secret keys, revoked by that client.
//! jeton-auth's store holds them (the verifier finds them there, through
//! the same cache as every other credential); Jeton audits each change in
//! the same transaction.

use jeton_auth::{AbilitySet, HashedToken, NewCredential, PlainToken, TokenKind};
use time::OffsetDateTime;

use super::{
    Db,
    audit::{Audit, Event},
    store_error,
    user_tokens::{descendants_detail, revoke_descendants},
};
use crate::domain::ids::{AccessTokenId, ClientId, CustomerId, KeyId, TokenId};

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
        let mut tx = self.begin_credentials().await?;
        let credential = NewCredential::access(
            new.client_id,
            new.key_id,
            new.scope.iter().cloned(),
            new.expires_at,
        );
        let id = tx.insert(credential, token).await.map_err(store_error)?;
        let id = AccessTokenId::from_store(id);
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
        if !matches!(kind, TokenKind::Access | TokenKind::User) {
            return Ok(Revoked::Nothing);
        }
        let mut tx = self.begin_credentials().await?;
        let found = tx
            .credential_by_hash(kind, hash)
            .await
            .map_err(store_error)?
            .filter(|token| {
                token.revoked_at.is_none() && token.client_id.as_deref() == Some(client_id)
            });
        let Some(found) = found else {
            return Ok(Revoked::Nothing);
        };
        if !tx.revoke(&found.id).await.map_err(store_error)? {
            return Ok(Revoked::Nothing);
        }
        let revoked = if kind == TokenKind::Access {
            let id = AccessTokenId::from_store(found.id);
            let event = Event {
                action: "access_token.revoked",
                client_id: Some(client_id),
                subject_id: Some(&id),
                ..Event::default()
            };
            self.append_audit(&mut tx, audit, event).await?;
            Revoked::AccessToken
        } else {
            let id = TokenId::from_store(found.id);
            let descendants = revoke_descendants(&mut tx, &id).await?;
            let detail = match descendants_detail(descendants) {
                Some(and) => format!("by its client (OAuth 2.0 revocation), {and}"),
                None => "by its client (OAuth 2.0 revocation)".to_owned(),
            };
            let customer_id = found.user_id.map(CustomerId::from_store);
            let event = Event {
                action: "user_token.revoked",
                client_id: Some(client_id),
                customer_id: customer_id.as_ref(),
                subject_id: Some(&id),
                detail: Some(detail),
            };
            self.append_audit(&mut tx, audit, event).await?;
            Revoked::UserToken
        };
        tx.commit().await?;
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
        let found = self.auth().credential(id).await.map_err(store_error)?;
        Ok(found
            .filter(|credential| credential.kind == kind)
            .map(|credential| credential.created_at))
    }
}
