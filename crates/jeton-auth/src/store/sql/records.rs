//! What the store tells an app about its credentials and clients (for lists,
//! admin views, introspection): never a hash, only a token's last four
//! characters. Read on any connection, the app's transaction included.

use std::collections::HashMap;

use sqlx::{AnyConnection, FromRow, Row as _, any::AnyRow};
use time::OffsetDateTime;

use super::{from_micros, stored_limit};
use crate::{AbilitySet, HashedToken, TokenKind, limits::Limits};

/// A stored key or token (revoked or not), as an app shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CredentialInfo {
    pub id: String,
    pub kind: TokenKind,
    /// The token's last four characters (empty for access tokens, which
    /// are never listed).
    pub last4: String,
    /// The client: a key's, an access token's, or the one a user token was
    /// issued through.
    pub client_id: Option<String>,
    /// A user token's person.
    pub user_id: Option<String>,
    /// What a user token holds, or an access token's scope; a key holds
    /// its client's (`None`).
    pub abilities: Option<AbilitySet>,
    /// The credential this one was obtained with and dies with (an access
    /// token's secret key).
    pub parent_id: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

impl CredentialInfo {
    /// Neither revoked nor expired at `now`. (An access token also ends
    /// with its key and its client, which the verifier checks.)
    pub fn is_live_at(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// A client key with what an operator needs to see of it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyInfo {
    pub credential: CredentialInfo,
    /// How often the key was refused for being sent by a browser (a secret
    /// key that did has leaked), when first (the key's exposure) and when
    /// last.
    pub browser_refusals: u64,
    pub first_browser_refusal_at: Option<OffsetDateTime>,
    pub last_browser_refusal_at: Option<OffsetDateTime>,
    /// When the key was first known to be exposed: sent by a browser, or
    /// reported leaked ([`CredentialTx::flag_exposed`](super::CredentialTx::flag_exposed)).
    pub exposed_at: Option<OffsetDateTime>,
}

/// A client application as stored, with the keys that still work.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientInfo {
    pub id: String,
    pub abilities: AbilitySet,
    pub allowed_origins: Vec<String>,
    pub limits: Limits,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    /// Keys neither revoked nor past their end, oldest first.
    pub keys: Vec<KeyInfo>,
}

fn time(row: &AnyRow, column: &str) -> Result<OffsetDateTime, sqlx::Error> {
    let micros: i64 = row.try_get(column)?;
    from_micros(micros).ok_or_else(|| out_of_range(column))
}

fn maybe_time(row: &AnyRow, column: &str) -> Result<Option<OffsetDateTime>, sqlx::Error> {
    let micros: Option<i64> = row.try_get(column)?;
    micros
        .map(|micros| from_micros(micros).ok_or_else(|| out_of_range(column)))
        .transpose()
}

fn out_of_range(column: &str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: "a time out of range".into(),
    }
}

fn abilities(text: &str) -> Result<AbilitySet, sqlx::Error> {
    AbilitySet::parse_spaced(text).map_err(|error| sqlx::Error::Decode(error.into()))
}

impl<'r> FromRow<'r, AnyRow> for CredentialInfo {
    fn from_row(row: &'r AnyRow) -> Result<CredentialInfo, sqlx::Error> {
        let kind: String = row.try_get("kind")?;
        let kind = TokenKind::ALL
            .into_iter()
            .find(|k| k.name() == kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown kind `{kind}`").into()))?;
        let stored: Option<String> = row.try_get("abilities")?;
        Ok(CredentialInfo {
            id: row.try_get("id")?,
            kind,
            last4: row.try_get("last4")?,
            client_id: row.try_get("client_id")?,
            user_id: row.try_get("user_id")?,
            abilities: stored.as_deref().map(abilities).transpose()?,
            parent_id: row.try_get("parent_id")?,
            created_at: time(row, "created_at")?,
            expires_at: maybe_time(row, "expires_at")?,
            last_used_at: maybe_time(row, "last_used_at")?,
            revoked_at: maybe_time(row, "revoked_at")?,
        })
    }
}

/// Keys and user tokens, then access tokens, in the same columns.
const CREDENTIALS: &str = "SELECT id, kind, last4, client_id, user_id, abilities, \
    CAST(NULL AS TEXT) AS parent_id, created_at, expires_at, last_used_at, revoked_at \
    FROM auth_credentials";
const ACCESS_TOKENS: &str = "SELECT id, 'access' AS kind, '' AS last4, client_id, \
    CAST(NULL AS TEXT) AS user_id, scope AS abilities, key_id AS parent_id, created_at, \
    expires_at, CAST(NULL AS BIGINT) AS last_used_at, revoked_at FROM auth_access_tokens";

/// A guest token's end: the earlier of its absolute end and its last use
/// (or its creation) plus its idle timeout.
const GUEST_END: &str = "CASE WHEN idle_timeout IS NOT NULL \
    AND COALESCE(last_used_at, created_at) + idle_timeout < expires_at \
    THEN COALESCE(last_used_at, created_at) + idle_timeout ELSE expires_at END";

/// Guest tokens in the same columns, with their end as the verifier
/// computes it.
fn guest_tokens(with_hash: bool) -> String {
    let hash = if with_hash { "token_hash, " } else { "" };
    format!(
        "SELECT {hash}id, 'guest' AS kind, last4, client_id, CAST(NULL AS TEXT) AS user_id, \
         abilities, CAST(NULL AS TEXT) AS parent_id, created_at, {GUEST_END} AS expires_at, \
         last_used_at, revoked_at FROM auth_guest_tokens"
    )
}

/// At most this many ids in one `IN (…)`: well under both databases'
/// limits on bound parameters.
const IDS_CHUNK: usize = 500;

/// `$first, $first+1, …`: the placeholders of an `IN (…)` list of `count`
/// values.
pub(super) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) async fn credential(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<CredentialInfo>, sqlx::Error> {
    Ok(credentials(conn, &[id.to_owned()]).await?.pop())
}

/// The credentials with these ids (of any kind), in no particular order;
/// unknown ids are left out.
pub(super) async fn credentials(
    conn: &mut AnyConnection,
    ids: &[String],
) -> Result<Vec<CredentialInfo>, sqlx::Error> {
    let mut found = Vec::new();
    for chunk in ids.chunks(IDS_CHUNK) {
        let list = placeholders(1, chunk.len());
        let sql = format!(
            "{CREDENTIALS} WHERE id IN ({list}) UNION ALL {ACCESS_TOKENS} WHERE id IN ({list}) \
             UNION ALL {} WHERE id IN ({list})",
            guest_tokens(false)
        );
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(id);
        }
        found.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(found)
}

/// The credentials (of any kind, revoked or not) whose tokens hash to
/// `hashes` (SHA-256 hex), each with its hash; unknown hashes are left out.
pub(super) async fn credentials_by_hashes(
    conn: &mut AnyConnection,
    hashes: &[String],
) -> Result<Vec<(String, CredentialInfo)>, sqlx::Error> {
    let mut found = Vec::new();
    for chunk in hashes.chunks(IDS_CHUNK) {
        let list = placeholders(1, chunk.len());
        let sql = format!(
            "SELECT token_hash, id, kind, last4, client_id, user_id, abilities, \
             CAST(NULL AS TEXT) AS parent_id, created_at, expires_at, last_used_at, revoked_at \
             FROM auth_credentials WHERE token_hash IN ({list}) \
             UNION ALL SELECT token_hash, id, 'access' AS kind, '' AS last4, client_id, \
             CAST(NULL AS TEXT) AS user_id, scope AS abilities, key_id AS parent_id, created_at, \
             expires_at, CAST(NULL AS BIGINT) AS last_used_at, revoked_at \
             FROM auth_access_tokens WHERE token_hash IN ({list}) \
             UNION ALL SELECT token_hash, id, 'staff' AS kind, '' AS last4, \
             CAST(NULL AS TEXT) AS client_id, staff_id AS user_id, abilities, \
             CAST(NULL AS TEXT) AS parent_id, created_at, expires_at, last_used_at, revoked_at \
             FROM auth_staff_sessions WHERE token_hash IN ({list}) \
             UNION ALL {} WHERE token_hash IN ({list})",
            guest_tokens(true)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for hash in chunk {
            query = query.bind(hash);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let hash: String = row.try_get("token_hash")?;
            found.push((hash, CredentialInfo::from_row(&row)?));
        }
    }
    Ok(found)
}

/// The credential of `kind` whose token hashes to `hash`, revoked or not.
pub(super) async fn credential_by_hash(
    conn: &mut AnyConnection,
    kind: TokenKind,
    hash: &HashedToken,
) -> Result<Option<CredentialInfo>, sqlx::Error> {
    let query = if kind == TokenKind::Access {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{ACCESS_TOKENS} WHERE token_hash = $1"
        )))
        .bind(hash.to_hex())
    } else if kind == TokenKind::Guest {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{} WHERE token_hash = $1",
            guest_tokens(false)
        )))
        .bind(hash.to_hex())
    } else {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{CREDENTIALS} WHERE token_hash = $1 AND kind = $2"
        )))
        .bind(hash.to_hex())
        .bind(kind.name())
    };
    query.fetch_optional(conn).await
}

/// The guest token that hashes to `hash` if it works at `now`: neither
/// revoked nor past its end, and its client live.
pub(super) async fn live_guest(
    conn: &mut AnyConnection,
    hash: &HashedToken,
    now: i64,
) -> Result<Option<CredentialInfo>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM ({}) g WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2 \
         AND EXISTS (SELECT 1 FROM auth_clients c WHERE c.id = g.client_id \
         AND c.revoked_at IS NULL)",
        guest_tokens(true)
    )))
    .bind(hash.to_hex())
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// A person's user tokens that are neither revoked nor expired at `now`,
/// newest first, older than `before` (a token id): a page of `limit`.
pub(super) async fn user_tokens(
    conn: &mut AnyConnection,
    user_id: &str,
    now: i64,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<CredentialInfo>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CREDENTIALS} WHERE user_id = $1 AND kind = 'user' AND revoked_at IS NULL \
         AND (expires_at IS NULL OR expires_at > $2) AND ($3 IS NULL OR id < $3) \
         ORDER BY id DESC LIMIT $4"
    )))
    .bind(user_id)
    .bind(now)
    .bind(before)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
}

/// How many user tokens of a person are neither revoked nor expired at
/// `now`.
pub(super) async fn count_user_tokens(
    conn: &mut AnyConnection,
    user_id: &str,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let count: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM auth_credentials WHERE user_id = $1 \
         AND kind = 'user' AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(user_id)
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// A client's access tokens that are neither revoked nor expired at `now`,
/// by id; each with its scope as its abilities.
pub(super) async fn client_access_tokens(
    conn: &mut AnyConnection,
    client_id: &str,
    now: i64,
) -> Result<Vec<CredentialInfo>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{ACCESS_TOKENS} WHERE client_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
         ORDER BY id"
    )))
    .bind(client_id)
    .bind(now)
    .fetch_all(conn)
    .await
}

/// A client as stored, before its keys are read.
struct ClientRow(ClientInfo);

impl<'r> FromRow<'r, AnyRow> for ClientRow {
    fn from_row(row: &'r AnyRow) -> Result<ClientRow, sqlx::Error> {
        let stored: String = row.try_get("abilities")?;
        let origins: String = row.try_get("allowed_origins")?;
        let limit = |column: &str| -> Result<Option<u32>, sqlx::Error> {
            let stored: Option<i64> = row.try_get(column)?;
            Ok(stored_limit(stored))
        };
        Ok(ClientRow(ClientInfo {
            id: row.try_get("id")?,
            abilities: abilities(&stored)?,
            allowed_origins: origins
                .split_ascii_whitespace()
                .map(str::to_owned)
                .collect(),
            limits: Limits {
                per_key: limit("per_key_limit")?,
                per_ip: limit("per_ip_limit")?,
            },
            created_at: time(row, "created_at")?,
            revoked_at: maybe_time(row, "revoked_at")?,
            keys: Vec::new(),
        }))
    }
}

const CLIENTS: &str = "SELECT id, abilities, allowed_origins, per_key_limit, per_ip_limit, \
    created_at, revoked_at FROM auth_clients";

/// The clients with these ids, revoked ones included, by id.
pub(super) async fn clients(
    conn: &mut AnyConnection,
    ids: &[String],
    now: i64,
) -> Result<Vec<ClientInfo>, sqlx::Error> {
    let mut found = Vec::new();
    for chunk in ids.chunks(IDS_CHUNK) {
        let sql = format!(
            "{CLIENTS} WHERE id IN ({}) ORDER BY id",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query_as::<_, ClientRow>(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(id);
        }
        found.extend(query.fetch_all(&mut *conn).await?.into_iter().map(|c| c.0));
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    with_keys(conn, found, now).await
}

/// Which clients a listing takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientFilter {
    All,
    /// Those with a working key that a browser sent (a recorded
    /// `secret_key_in_browser` refusal) or that was reported leaked
    /// (`credential_exposed`).
    Exposed,
}

/// Clients by id after `after`, revoked ones included: a page of `limit`.
pub(super) async fn list_clients(
    conn: &mut AnyConnection,
    after: Option<&str>,
    limit: u32,
    now: i64,
    filter: ClientFilter,
) -> Result<Vec<ClientInfo>, sqlx::Error> {
    let exposed = match filter {
        ClientFilter::All => "",
        ClientFilter::Exposed => {
            " AND EXISTS (SELECT 1 FROM auth_refusals r \
             JOIN auth_credentials k ON k.id = r.credential_id \
             WHERE r.client_id = auth_clients.id \
             AND r.code IN ('secret_key_in_browser', 'credential_exposed') \
             AND k.kind <> 'user' AND k.revoked_at IS NULL \
             AND (k.expires_at IS NULL OR k.expires_at > $3))"
        }
    };
    let mut query = sqlx::query_as::<_, ClientRow>(sqlx::AssertSqlSafe(format!(
        "{CLIENTS} WHERE ($1 IS NULL OR id > $1){exposed} ORDER BY id LIMIT $2"
    )))
    .bind(after)
    .bind(i64::from(limit));
    if filter == ClientFilter::Exposed {
        query = query.bind(now);
    }
    let found = query.fetch_all(&mut *conn).await?;
    with_keys(conn, found.into_iter().map(|c| c.0).collect(), now).await
}

/// The allowed origins of every live client (client id → origins), for an
/// app that answers CORS preflights.
pub(super) async fn live_origins(
    conn: &mut AnyConnection,
) -> Result<HashMap<String, Vec<String>>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, allowed_origins FROM auth_clients \
         WHERE revoked_at IS NULL AND allowed_origins <> ''",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, list)| {
            let origins = list.split_ascii_whitespace().map(str::to_owned).collect();
            (id, origins)
        })
        .collect())
}

/// Fills in each client's working keys, in one query per chunk.
async fn with_keys(
    conn: &mut AnyConnection,
    mut clients: Vec<ClientInfo>,
    now: i64,
) -> Result<Vec<ClientInfo>, sqlx::Error> {
    let mut keys: HashMap<String, Vec<KeyInfo>> = HashMap::new();
    let ids: Vec<&str> = clients.iter().map(|c| c.id.as_str()).collect();
    for chunk in ids.chunks(IDS_CHUNK) {
        // A key's browser refusals are those the gate recorded, at most
        // one a minute per key. Its last use is the start of the latest
        // usage bucket it succeeded in, the finest one still kept (a
        // minute for two days, then an hour, then a day): keys' uses are
        // counted, not written one by one.
        let sql = format!(
            "SELECT k.id, k.kind, k.last4, k.client_id, k.user_id, k.abilities, \
             CAST(NULL AS TEXT) AS parent_id, k.created_at, k.expires_at, \
             COALESCE(\
              (SELECT MAX(u.bucket) FROM auth_usage u WHERE u.granularity = 'minute' \
               AND u.credential_id = k.id AND u.ok > 0), \
              (SELECT MAX(u.bucket) FROM auth_usage u WHERE u.granularity = 'hour' \
               AND u.credential_id = k.id AND u.ok > 0), \
              (SELECT MAX(u.bucket) FROM auth_usage u WHERE u.granularity = 'day' \
               AND u.credential_id = k.id AND u.ok > 0)) AS last_used_at, \
             k.revoked_at, \
             (SELECT CAST(COUNT(*) AS BIGINT) FROM auth_refusals r WHERE r.credential_id = k.id \
              AND r.code = 'secret_key_in_browser') AS browser_refusals, \
             (SELECT MIN(r.at) FROM auth_refusals r WHERE r.credential_id = k.id \
              AND r.code = 'secret_key_in_browser') AS first_browser_refusal_at, \
             (SELECT MAX(r.at) FROM auth_refusals r WHERE r.credential_id = k.id \
              AND r.code = 'secret_key_in_browser') AS last_browser_refusal_at, \
             (SELECT MIN(r.at) FROM auth_refusals r WHERE r.credential_id = k.id \
              AND r.code IN ('secret_key_in_browser', 'credential_exposed')) AS exposed_at \
             FROM auth_credentials k WHERE k.kind <> 'user' AND k.revoked_at IS NULL \
             AND (k.expires_at IS NULL OR k.expires_at > $1) AND k.client_id IN ({}) \
             ORDER BY k.id",
            placeholders(2, chunk.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let credential = CredentialInfo::from_row(&row)?;
            let refusals: i64 = row.try_get("browser_refusals")?;
            let key = KeyInfo {
                browser_refusals: u64::try_from(refusals).unwrap_or(0),
                first_browser_refusal_at: maybe_time(&row, "first_browser_refusal_at")?,
                last_browser_refusal_at: maybe_time(&row, "last_browser_refusal_at")?,
                exposed_at: maybe_time(&row, "exposed_at")?,
                credential,
            };
            let client = key.credential.client_id.clone().unwrap_or_default();
            keys.entry(client).or_default().push(key);
        }
    }
    for client in &mut clients {
        client.keys = keys.remove(&client.id).unwrap_or_default();
    }
    Ok(clients)
}
