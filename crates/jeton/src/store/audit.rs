//! The audit log: one append-only table of credential lifecycle events.
//! Events are written in the same transaction as the change they record, so
//! the log never claims a change that did not happen, nor misses one.

use std::net::IpAddr;

use jeton_auth::Principal;
use serde::Serialize;
use sqlx::{AnyConnection, AssertSqlSafe, Row, any::AnyRow};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::Db;
use crate::domain::{
    ids::new_id,
    time::{from_micros, now_micros},
};

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A client application, by the id of the key it used (for the admin
    /// API: a secret key with `admin`).
    ClientKey {
        key_id: String,
    },
    Customer {
        customer_id: String,
    },
    /// An operator at the command line.
    Cli,
}

impl Actor {
    fn kind(&self) -> &'static str {
        match self {
            Actor::ClientKey { .. } => "client_key",
            Actor::Customer { .. } => "customer",
            Actor::Cli => "cli",
        }
    }

    fn id(&self) -> Option<&str> {
        match self {
            Actor::ClientKey { key_id } => Some(key_id),
            Actor::Customer { customer_id } => Some(customer_id),
            Actor::Cli => None,
        }
    }
}

/// Who acted and from where: passed to every store method that changes a
/// credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    pub actor: Actor,
    pub client_ip: Option<IpAddr>,
}

impl Audit {
    pub fn cli() -> Audit {
        Audit {
            actor: Actor::Cli,
            client_ip: None,
        }
    }

    pub fn of(principal: &Principal, client_ip: Option<IpAddr>) -> Audit {
        let actor = match principal {
            Principal::PublishableClient(client) | Principal::SecretClient(client) => {
                Actor::ClientKey {
                    key_id: client.key_id.clone(),
                }
            }
            Principal::User(user) => Actor::Customer {
                customer_id: user.user_id.clone(),
            },
            // A kind of principal the library adds later acts for its
            // client, if it has one.
            other => Actor::ClientKey {
                key_id: other
                    .client()
                    .map_or_else(String::new, |client| client.key_id.clone()),
            },
        };
        Audit { actor, client_ip }
    }
}

/// What happened, to what.
#[derive(Debug, Clone, Default)]
pub struct Event<'a> {
    pub action: &'static str,
    pub client_id: Option<&'a str>,
    pub customer_id: Option<&'a str>,
    /// The key or token concerned.
    pub subject_id: Option<&'a str>,
    pub detail: Option<String>,
}

/// Appends an event; call inside the transaction of the change.
pub(crate) async fn append(
    conn: &mut AnyConnection,
    audit: &Audit,
    event: Event<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_events (id, at, action, actor_kind, actor_id, client_id, customer_id, subject_id, client_ip, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(new_id())
    .bind(now_micros())
    .bind(event.action)
    .bind(audit.actor.kind())
    .bind(audit.actor.id().map(str::to_owned))
    .bind(event.client_id.map(str::to_owned))
    .bind(event.customer_id.map(str::to_owned))
    .bind(event.subject_id.map(str::to_owned))
    .bind(audit.client_ip.map(|ip| ip.to_string()))
    .bind(event.detail)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditActor {
    /// `client_key`, `customer` or `cli`.
    pub kind: String,
    /// The key id or customer id.
    pub id: Option<String>,
}

/// An event as the admin API and `jeton audit` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditEvent {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// e.g. `client.created`, `client.key_rotated`, `client.revoked`,
    /// `client_key.refused_origin`, `client_key.refused_in_browser`,
    /// `user_token.issued`, `user_token.revoked`, `user_tokens.revoked_all`,
    /// `login.failed`.
    pub action: String,
    pub actor: AuditActor,
    pub client_id: Option<String>,
    pub customer_id: Option<String>,
    pub subject_id: Option<String>,
    pub client_ip: Option<String>,
    pub detail: Option<String>,
}

fn from_row(row: &AnyRow) -> Result<AuditEvent, sqlx::Error> {
    Ok(AuditEvent {
        id: row.try_get("id")?,
        at: from_micros(row.try_get("at")?),
        action: row.try_get("action")?,
        actor: AuditActor {
            kind: row.try_get("actor_kind")?,
            id: row.try_get("actor_id")?,
        },
        client_id: row.try_get("client_id")?,
        customer_id: row.try_get("customer_id")?,
        subject_id: row.try_get("subject_id")?,
        client_ip: row.try_get("client_ip")?,
        detail: row.try_get("detail")?,
    })
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub client_id: Option<String>,
    pub customer_id: Option<String>,
}

impl Db {
    /// Records an event that is not part of another change (a failed login).
    pub async fn record_event(&self, audit: &Audit, event: Event<'_>) -> Result<(), sqlx::Error> {
        let mut conn = self.writer().acquire().await?;
        append(&mut conn, audit, event).await
    }

    /// Events in the order they happened, after `after` (an event id).
    pub async fn list_audit(
        &self,
        filter: &AuditFilter,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, sqlx::Error> {
        let mut conditions = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        for (column, value) in [
            ("id >", after.map(str::to_owned)),
            ("client_id =", filter.client_id.clone()),
            ("customer_id =", filter.customer_id.clone()),
        ] {
            if let Some(value) = value {
                binds.push(value);
                conditions.push(format!("{column} ${}", binds.len()));
            }
        }
        let filter_sql = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT id, at, action, actor_kind, actor_id, client_id, customer_id, subject_id, client_ip, detail \
             FROM audit_events {filter_sql} ORDER BY id LIMIT ${}",
            binds.len() + 1
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for bind in binds {
            query = query.bind(bind);
        }
        let rows = query.bind(limit).fetch_all(self.reader()).await?;
        rows.iter().map(from_row).collect()
    }
}
