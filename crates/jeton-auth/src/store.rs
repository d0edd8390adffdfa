//! What the verifier needs from storage. An app implements [`TokenStore`] on
//! whatever it keeps credentials in; only SHA-256 hashes ever cross it.

use std::future::Future;

use time::OffsetDateTime;

use crate::{HashedToken, Principal, TokenKind};

/// A credential found in storage that is not revoked.
#[derive(Debug, Clone)]
pub struct StoredCredential {
    pub principal: Principal,
    /// `None`: the credential does not expire on its own.
    pub expires_at: Option<OffsetDateTime>,
}

impl StoredCredential {
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|expires_at| expires_at <= now)
    }
}

/// Storage could not answer (unreachable, timed out). Becomes a 503: the
/// request is not refused as unauthenticated because of our outage.
#[derive(Debug, thiserror::Error)]
#[error("the token store is unavailable: {0}")]
pub struct StoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

pub trait TokenStore: Send + Sync + 'static {
    /// The live (not revoked) credential whose token hashes to `hash`, of the
    /// given kind. Revoked and unknown credentials are both `None`: callers
    /// must not be able to tell them apart.
    fn find_credential(
        &self,
        kind: TokenKind,
        hash: &HashedToken,
    ) -> impl Future<Output = Result<Option<StoredCredential>, StoreError>> + Send;
}
