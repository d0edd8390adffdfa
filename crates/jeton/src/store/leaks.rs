//! Leaked credentials (API.md §15): each reported token, by its hash, is
//! labelled once; a live credential is revoked (a publishable key only
//! flagged) with its audit event in the same transaction.

use std::collections::{HashMap, HashSet};

use jeton_auth::{CredentialInfo, CredentialTx, TokenKind};

use super::{
    Db,
    audit::{Audit, Event},
    placeholders, store_error,
};
use crate::{
    domain::ids::{ClientId, CustomerId},
    webhooks::events::{CredentialRef, credential_exposed},
};

/// What a report says of a token: a Jeton credential that was live when it
/// was first reported, or anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    TruePositive,
    FalsePositive,
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::TruePositive => "true_positive",
            Label::FalsePositive => "false_positive",
        }
    }

    fn parse(text: &str) -> Label {
        if text == "true_positive" {
            Label::TruePositive
        } else {
            Label::FalsePositive
        }
    }
}

/// One reported token, by the SHA-256 hex of its text, with where it was
/// found.
#[derive(Debug, Clone)]
pub struct ReportedToken {
    pub token_hash: String,
    /// Where it was found, as the reporter names it (`commit`, `content`…).
    pub source: String,
    pub url: Option<String>,
}

/// Rows of `leak_reports` in one `INSERT`: 5 parameters each, well under
/// both databases' limits.
const INSERT_CHUNK: usize = 200;
/// Hashes in one `IN (…)`.
const HASH_CHUNK: usize = 500;

/// What a report did to a live credential, for its audit event.
fn effect(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Publishable => {
            "publishable key flagged as exposed (public by design; not revoked)"
        }
        TokenKind::Secret => "secret key revoked",
        TokenKind::User => "user token revoked",
        TokenKind::Access => "access token revoked",
        TokenKind::Staff => "staff session revoked",
        TokenKind::Guest => "guest token revoked",
        _ => "credential revoked",
    }
}

/// Reporter-supplied text in an audit detail: clipped, one line.
fn clipped(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl Db {
    /// Labels every reported token and acts on those first reported now:
    /// a live secret key, access token, user token, guest token or staff
    /// session is
    /// revoked (every process stops serving it within a second, through
    /// jeton-auth's change feed), a live publishable key is flagged
    /// (`exposed_at`); each gets a `credential.exposed` audit event. A
    /// token reported before keeps its first label and nothing changes.
    /// Returns each hash's label; the first entry of a hash counts.
    #[tracing::instrument(level = "debug", skip_all, fields(tokens = reported.len()))]
    pub async fn report_leaks(
        &self,
        reported: &[ReportedToken],
        audit: &Audit,
    ) -> Result<HashMap<String, Label>, sqlx::Error> {
        let mut seen = HashSet::new();
        let unique: Vec<&ReportedToken> = reported
            .iter()
            .filter(|entry| seen.insert(entry.token_hash.as_str()))
            .collect();
        let mut tx = self.begin_credentials().await?;
        let hashes: Vec<String> = unique.iter().map(|e| e.token_hash.clone()).collect();
        let mut labels = known_labels(&mut tx, &hashes).await?;
        let new: Vec<&ReportedToken> = unique
            .into_iter()
            .filter(|entry| !labels.contains_key(&entry.token_hash))
            .collect();
        if new.is_empty() {
            // Nothing to write: dropped, the transaction ends.
            return Ok(labels);
        }
        let new_hashes: Vec<String> = new.iter().map(|e| e.token_hash.clone()).collect();
        let found = tx
            .credentials_by_hashes(&new_hashes)
            .await
            .map_err(store_error)?;
        let live = self.live_of(&mut tx, found).await?;
        let now = self.now_micros();
        let mut inserted = HashSet::new();
        for chunk in new.chunks(INSERT_CHUNK) {
            let rows = (0..chunk.len())
                .map(|i| format!("({})", placeholders(i * 5 + 1, 5)))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO leak_reports (token_hash, label, credential_id, source, reported_at) \
                 VALUES {rows} ON CONFLICT (token_hash) DO NOTHING RETURNING token_hash"
            );
            let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
            for entry in chunk {
                let credential = live.get(&entry.token_hash);
                let label = if credential.is_some() {
                    Label::TruePositive
                } else {
                    Label::FalsePositive
                };
                query = query
                    .bind(entry.token_hash.clone())
                    .bind(label.as_str())
                    .bind(credential.map(|c| c.id.clone()))
                    .bind(clipped(&entry.source, 100))
                    .bind(now);
            }
            inserted.extend(query.fetch_all(&mut *tx).await?);
        }
        // Hashes another report stored meanwhile (it committed first): its
        // labels are the first answers.
        let raced: Vec<String> = new_hashes
            .iter()
            .filter(|hash| !inserted.contains(*hash))
            .cloned()
            .collect();
        labels.extend(known_labels(&mut tx, &raced).await?);
        let ours: Vec<&ReportedToken> = new
            .into_iter()
            .filter(|entry| inserted.contains(&entry.token_hash))
            .collect();
        let revoke: Vec<String> = ours
            .iter()
            .filter_map(|entry| live.get(&entry.token_hash))
            .filter(|credential| credential.kind != TokenKind::Publishable)
            .map(|credential| credential.id.clone())
            .collect();
        tx.revoke_all(&revoke).await.map_err(store_error)?;
        for entry in ours {
            let Some(credential) = live.get(&entry.token_hash) else {
                labels.insert(entry.token_hash.clone(), Label::FalsePositive);
                continue;
            };
            labels.insert(entry.token_hash.clone(), Label::TruePositive);
            if credential.kind == TokenKind::Publishable {
                tx.flag_exposed(&credential.id, credential.client_id.as_deref())
                    .await
                    .map_err(store_error)?;
            }
            let client_id = credential.client_id.clone().map(ClientId::from_store);
            let customer_id = (credential.kind == TokenKind::User)
                .then(|| credential.user_id.clone().map(CustomerId::from_store))
                .flatten();
            let mut detail = format!(
                "{}; source `{}`",
                effect(credential.kind),
                clipped(&entry.source, 100)
            );
            if let Some(url) = &entry.url {
                detail.push_str(&format!(", url `{}`", clipped(url, 500)));
            }
            let event = Event {
                action: "credential.exposed",
                client_id: client_id.as_ref(),
                customer_id: customer_id.as_ref(),
                subject_id: Some(&credential.id),
                detail: Some(detail),
            };
            self.append_audit(&mut tx, audit, event).await?;
            let exposed = CredentialRef {
                id: credential.id.clone(),
                kind: match credential.kind {
                    TokenKind::Publishable => "publishable_key",
                    TokenKind::Secret => "secret_key",
                    TokenKind::Access => "access_token",
                    TokenKind::Staff => "staff_session",
                    TokenKind::User => "user_token",
                    TokenKind::Guest => "guest_token",
                    _ => "token",
                },
                last4: credential.last4.clone(),
                client_id: client_id.as_ref().map(ToString::to_string),
                customer_id: customer_id.as_ref().map(ToString::to_string),
            };
            credential_exposed(
                &mut tx,
                self.now(),
                &exposed,
                &entry.source,
                entry.url.as_deref(),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(labels)
    }

    /// The found credentials that still work, by hash: neither revoked nor
    /// expired, and an access token's key too (its client's revocation
    /// revokes its keys).
    async fn live_of(
        &self,
        tx: &mut CredentialTx<'static>,
        found: Vec<(String, CredentialInfo)>,
    ) -> Result<HashMap<String, CredentialInfo>, sqlx::Error> {
        let now = self.now();
        let parents: Vec<String> = found
            .iter()
            .filter(|(_, c)| c.kind == TokenKind::Access)
            .filter_map(|(_, c)| c.parent_id.clone())
            .collect();
        let live_parents: HashSet<String> = if parents.is_empty() {
            HashSet::new()
        } else {
            tx.credentials(&parents)
                .await
                .map_err(store_error)?
                .into_iter()
                .filter(|key| key.is_live_at(now))
                .map(|key| key.id)
                .collect()
        };
        Ok(found
            .into_iter()
            .filter(|(_, c)| c.is_live_at(now))
            .filter(|(_, c)| {
                c.kind != TokenKind::Access
                    || c.parent_id
                        .as_ref()
                        .is_some_and(|p| live_parents.contains(p))
            })
            .collect())
    }
}

/// The labels of the hashes reported before.
async fn known_labels(
    tx: &mut CredentialTx<'static>,
    hashes: &[String],
) -> Result<HashMap<String, Label>, sqlx::Error> {
    let mut labels = HashMap::new();
    for chunk in hashes.chunks(HASH_CHUNK) {
        let sql = format!(
            "SELECT token_hash, label FROM leak_reports WHERE token_hash IN ({})",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql));
        for hash in chunk {
            query = query.bind(hash.clone());
        }
        for (hash, label) in query.fetch_all(&mut **tx).await? {
            labels.insert(hash, Label::parse(&label));
        }
    }
    Ok(labels)
}
