//! The [`TokenStore`] the verifier asks: live credentials by token hash.
//! Clients' keys and user tokens are jeton-auth's [`SqlStore`]'s to find
//! (one indexed lookup, in its tables); OAuth access tokens are Jeton's
//! own. Revoked credentials are simply not found.
//!
//! [`SqlStore`]: jeton_auth::SqlStore

use jeton_auth::{
    AbilitySet, ClientPrincipal, HashedToken, Principal, Refusal, StoreError, StoredCredential,
    TokenKind, TokenStore, limits::Limits,
};
use std::collections::HashMap;

use sqlx::FromRow;
use time::OffsetDateTime;

use super::{
    Db,
    audit::{Audit, Event},
    columns::{MaybeMicros, Micros, Spaced},
};
use crate::domain::ids::{AccessTokenId, ClientId, ClientIds, UserIds};

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
    per_key_limit: Option<i64>,
    per_ip_limit: Option<i64>,
}

/// Stored limits are within 1..=1_000_000 (see `domain::client`).
fn limit(stored: Option<i64>) -> Option<u32> {
    stored.and_then(|n| u32::try_from(n).ok())
}

impl Db {
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
             c.per_key_limit, c.per_ip_limit FROM access_tokens a \
             JOIN auth_credentials k ON k.id = a.key_id JOIN auth_clients c ON c.id = a.client_id \
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
                per_key: limit(token.per_key_limit),
                per_ip: limit(token.per_ip_limit),
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

    /// A refused key's audit event. jeton-auth records the refusal itself,
    /// which the admin API and `client list` show on a secret key seen in
    /// a browser.
    #[tracing::instrument(level = "debug", skip_all, fields(code = refusal.code))]
    async fn audit_refusal(&self, refusal: &Refusal) -> Result<(), sqlx::Error> {
        // The origin is public information (the page's site); it is clipped
        // because the header is attacker-controlled.
        let origin = refusal
            .origin
            .as_ref()
            .map(|o| format!("origin {}", o.chars().take(200).collect::<String>()));
        let audit = Audit::of(&refusal.principal, refusal.client_ip);
        if let Principal::User(user) = &refusal.principal {
            // A cookie session refused: another origin's page, or a
            // request without the session's CSRF token, tried to use it.
            let ids = UserIds::from(&**user);
            let action = if refusal.code == "csrf_failed" {
                "session.refused_csrf"
            } else {
                "session.refused_origin"
            };
            let event = Event {
                action,
                client_id: ids.client.as_ref(),
                customer_id: Some(&ids.customer),
                subject_id: Some(ids.token.as_str()),
                detail: origin,
            };
            return self.record_event(&audit, event).await;
        }
        let Some(client) = refusal.principal.client() else {
            return Ok(());
        };
        let ids = ClientIds::from(&**client);
        let mut tx = self.begin_write().await?;
        let action = if matches!(refusal.principal, Principal::AccessToken(_)) {
            // The token's id: the key that obtained it did not leak.
            "access_token.refused_in_browser"
        } else if refusal.code == "secret_key_in_browser" {
            "client_key.refused_in_browser"
        } else {
            "client_key.refused_origin"
        };
        // Whoever holds the key acted; the IP says where from.
        let event = Event {
            action,
            client_id: Some(&ids.client),
            subject_id: Some(&ids.key),
            detail: origin,
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
        match kind {
            TokenKind::Access => self.find_access_token(hash).await.map_err(StoreError::new),
            _ => self.auth().find_credential(kind, hash).await,
        }
    }

    /// Every few seconds, from the gate: no authenticated request writes.
    async fn record_usage(&self, usage: HashMap<String, OffsetDateTime>) {
        self.auth_writes().record_usage(usage).await;
    }

    async fn record_refusal(&self, refusal: Refusal) {
        self.auth_writes().record_refusal(refusal.clone()).await;
        if let Err(error) = self.audit_refusal(&refusal).await {
            tracing::warn!(%error, code = refusal.code, "could not record a refused key");
        }
    }
}
