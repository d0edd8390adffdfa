//! Guest tokens (API.md §16): a storefront's visitor's own token, obtained
//! through the client's publishable key. jeton-auth's store holds them, in
//! its table `auth_guest_tokens` (the guest's id is the row's `id`, which
//! is what a guest's own rows are keyed on); it verifies them, ends them
//! with their client, and `jeton token prune` deletes them once ended.
//!
//! Issuing one writes no audit event: a guest is anonymous, and one is
//! issued to every visitor who fills a cart.

use jeton_auth::{CredentialTx, PlainToken, TokenKind};
use time::OffsetDateTime;

use super::{Db, IssueError, store_error};
use crate::{
    domain::{
        abilities::GUEST_ABILITIES,
        ids::{ClientId, GuestId},
    },
    identity::TOKENS,
};

/// A guest token just issued: the token itself is shown once.
#[derive(Debug)]
pub struct IssuedGuest {
    pub id: GuestId,
    pub token: PlainToken,
    /// The absolute end; it ends sooner unused.
    pub expires_at: OffsetDateTime,
}

/// A guest whose token works now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveGuest {
    pub id: GuestId,
    /// The client whose publishable key obtained it.
    pub client_id: ClientId,
}

impl Db {
    /// Issues a guest token for a visitor of `client_id`'s pages, bound to
    /// `origin` (`None`: obtained with no `Origin`, by an app), with the
    /// guest abilities, ending at `expires_at` or after `idle` unused.
    /// [`IssueError::Revoked`] if the client was revoked meanwhile.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn issue_guest(
        &self,
        client_id: &ClientId,
        origin: Option<&str>,
        expires_at: OffsetDateTime,
        idle: time::Duration,
    ) -> Result<IssuedGuest, IssueError> {
        let idle = std::time::Duration::try_from(idle).ok();
        let mut tx = self.begin_credentials().await?;
        let issued = tx
            .issue_guest_token(client_id, origin, GUEST_ABILITIES, expires_at, idle)
            .await?;
        tx.commit().await?;
        Ok(IssuedGuest {
            id: GuestId::from_store(issued.id),
            token: issued.token,
            expires_at,
        })
    }
}

/// The guest whose token is `token` (as presented: a login's `guest_token`
/// field), if it works now: a well-formed guest token, neither revoked nor
/// ended (absolute or idle), its client live. Anything else is `None`.
/// Read in the caller's transaction: revoke it there with
/// [`revoke_guest`], and move what it owns only if that answered `true`,
/// so that the same token cannot be merged twice.
pub async fn find_live_guest(
    tx: &mut CredentialTx<'_>,
    token: &str,
) -> Result<Option<LiveGuest>, sqlx::Error> {
    let Ok(token) = TOKENS.parse(token) else {
        return Ok(None);
    };
    if token.kind() != TokenKind::Guest {
        return Ok(None);
    }
    let found = tx.live_guest(&token).await.map_err(store_error)?;
    Ok(found.and_then(|guest| {
        Some(LiveGuest {
            id: GuestId::from_store(guest.id),
            client_id: ClientId::from_store(guest.client_id?),
        })
    }))
}

/// Revokes a guest in the caller's transaction (every process stops
/// serving it within a second of the commit); whether it was live. Of two
/// transactions revoking one guest, one gets `true`.
pub async fn revoke_guest(
    tx: &mut CredentialTx<'_>,
    guest_id: &GuestId,
) -> Result<bool, sqlx::Error> {
    tx.revoke_guest(guest_id).await.map_err(store_error)
}
