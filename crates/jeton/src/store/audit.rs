//! The audit log: one append-only table of credential lifecycle events.
//! Events are written in the same transaction as the change they record, so
//! the log never claims a change that did not happen, nor misses one.

use std::net::IpAddr;

use jeton_auth::{Caller, Principal};
use sqlx::{AnyConnection, AssertSqlSafe, FromRow};
use time::OffsetDateTime;

use super::{Db, columns::Micros};
use crate::domain::ids::{ClientId, ClientIds, CustomerId, KeyId, UserIds, new_id};
use crate::domain::time::to_micros;

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A client application, by the id of the key it used (for the admin
    /// API: a secret key with an admin ability).
    ClientKey {
        key_id: KeyId,
    },
    Customer {
        customer_id: CustomerId,
    },
    /// A staff member, with a session of the console (or signing in).
    Staff {
        staff_id: String,
    },
    /// Someone who tried to sign in to the console with an email that is
    /// no staff member's.
    UnknownStaff,
    /// An anonymous visitor with a guest token, by the guest's id.
    Guest {
        guest_id: String,
    },
    /// An operator at the command line.
    Cli,
    /// Someone who presented client credentials that did not authenticate
    /// (the OAuth 2.0 endpoints): a client key's holder, unidentified.
    UnknownClient,
    /// A secret scanning service that reported leaked tokens, by name
    /// (`github`), its report's signature checked.
    SecretScanning {
        service: &'static str,
    },
}

impl Actor {
    fn kind(&self) -> &'static str {
        match self {
            Actor::ClientKey { .. } | Actor::UnknownClient => "client_key",
            Actor::Customer { .. } => "customer",
            Actor::Staff { .. } | Actor::UnknownStaff => "staff",
            Actor::Guest { .. } => "guest",
            Actor::Cli => "cli",
            Actor::SecretScanning { .. } => "secret_scanning",
        }
    }

    fn id(&self) -> Option<&str> {
        match self {
            Actor::ClientKey { key_id } => Some(key_id.as_str()),
            Actor::Customer { customer_id } => Some(customer_id.as_str()),
            Actor::Staff { staff_id } => Some(staff_id.as_str()),
            Actor::SecretScanning { service } => Some(service),
            Actor::Guest { guest_id } => Some(guest_id.as_str()),
            Actor::Cli | Actor::UnknownClient | Actor::UnknownStaff => None,
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
    pub fn staff(staff_id: &str, client_ip: Option<IpAddr>) -> Audit {
        Audit {
            actor: Actor::Staff {
                staff_id: staff_id.to_owned(),
            },
            client_ip,
        }
    }

    pub fn cli() -> Audit {
        Audit {
            actor: Actor::Cli,
            client_ip: None,
        }
    }

    pub fn of(principal: &Principal, client_ip: Option<IpAddr>) -> Audit {
        if let Principal::Staff(member) = principal {
            return Audit::staff(&member.user_id, client_ip);
        }
        let actor = match principal.caller() {
            Caller::Person(user) => Actor::Customer {
                customer_id: UserIds::from(&**user).customer,
            },
            Caller::Client(client) => Actor::ClientKey {
                key_id: ClientIds::from(&**client).key,
            },
            Caller::Guest(guest) => Actor::Guest {
                guest_id: guest.token_id.clone(),
            },
        };
        Audit { actor, client_ip }
    }
}

/// What happened, to what.
#[derive(Debug, Clone, Default)]
pub struct Event<'a> {
    pub action: &'static str,
    pub client_id: Option<&'a ClientId>,
    pub customer_id: Option<&'a CustomerId>,
    /// The key or token concerned.
    pub subject_id: Option<&'a str>,
    pub detail: Option<String>,
}

impl Db {
    /// Appends an event; call inside the transaction of the change.
    pub(crate) async fn append_audit(
        &self,
        conn: &mut AnyConnection,
        audit: &Audit,
        event: Event<'_>,
    ) -> Result<(), sqlx::Error> {
        append(conn, self.now_micros(), audit, event).await
    }
}

/// Appends an event stamped `at` (microseconds): for writes that have no
/// [`Db`] at hand, the store's refusal hook.
pub(crate) async fn append(
    conn: &mut AnyConnection,
    at: i64,
    audit: &Audit,
    event: Event<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_events (id, at, action, actor_kind, actor_id, client_id, customer_id, subject_id, client_ip, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(new_id())
    .bind(at)
    .bind(event.action)
    .bind(audit.actor.kind())
    .bind(audit.actor.id().map(str::to_owned))
    .bind(event.client_id.cloned())
    .bind(event.customer_id.cloned())
    .bind(event.subject_id.map(str::to_owned))
    .bind(audit.client_ip.map(|ip| ip.to_string()))
    .bind(event.detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// A refused key's or cookie session's audit event, in the transaction in
/// which jeton-auth records the refusal itself (which the admin API and
/// `client list` show on a secret key seen in a browser).
pub(crate) async fn refusal(
    conn: &mut AnyConnection,
    at: i64,
    refusal: &jeton_auth::Refusal,
) -> Result<(), sqlx::Error> {
    // The origin is public information (the page's site); it is clipped
    // because the header is attacker-controlled.
    let origin = refusal
        .origin
        .as_ref()
        .map(|o| format!("origin {}", o.chars().take(200).collect::<String>()));
    if let Principal::Staff(member) = &refusal.principal {
        // A staff session refused: a page of another origin, or a request
        // without the session's CSRF token, tried to use it.
        let action = if refusal.code == "csrf_failed" {
            "staff_session.refused_csrf"
        } else {
            "staff_session.refused_origin"
        };
        let audit = Audit::of(&refusal.principal, refusal.client_ip);
        let event = Event {
            action,
            subject_id: Some(member.token_id.as_str()),
            detail: origin,
            ..Event::default()
        };
        return append(conn, at, &audit, event).await;
    }
    if let Principal::User(user) = &refusal.principal {
        // A cookie session refused: another origin's page, or a request
        // without the session's CSRF token, tried to use it.
        let ids = crate::domain::ids::UserIds::from(&**user);
        let action = if refusal.code == "csrf_failed" {
            "session.refused_csrf"
        } else {
            "session.refused_origin"
        };
        let audit = Audit::of(&refusal.principal, refusal.client_ip);
        let event = Event {
            action,
            client_id: ids.client.as_ref(),
            customer_id: Some(&ids.customer),
            subject_id: Some(ids.token.as_str()),
            detail: origin,
        };
        return append(conn, at, &audit, event).await;
    }
    let Some(client) = refusal.principal.client() else {
        return Ok(());
    };
    let ids = crate::domain::ids::ClientIds::from(&**client);
    let action = if matches!(refusal.principal, Principal::AccessToken(_)) {
        // The token's id: the key that obtained it did not leak.
        "access_token.refused_in_browser"
    } else if refusal.code == "secret_key_in_browser" {
        "client_key.refused_in_browser"
    } else {
        "client_key.refused_origin"
    };
    if action == "client_key.refused_in_browser" {
        crate::webhooks::events::key_used_from_browser(
            conn,
            crate::domain::time::from_micros(at),
            ids.key.as_str(),
            ids.client.as_str(),
            refusal.origin.as_deref(),
        )
        .await?;
    }
    // Whoever holds the key acted; the IP says where from.
    let audit = Audit::of(&refusal.principal, refusal.client_ip);
    let event = Event {
        action,
        client_id: Some(&ids.client),
        subject_id: Some(&ids.key),
        detail: origin,
        ..Event::default()
    };
    append(conn, at, &audit, event).await
}

/// An event as stored. The admin API shows it as `responses::AuditEvent`.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AuditEvent {
    pub id: String,
    #[sqlx(try_from = "Micros")]
    pub at: OffsetDateTime,
    /// e.g. `client.created`, `client.key_rotated`, `client.revoked`,
    /// `client_key.refused_origin`, `client_key.refused_in_browser`,
    /// `session.refused_origin`, `session.refused_csrf`, `user_token.issued`, `user_token.revoked`, `user_tokens.revoked_all`,
    /// `login.failed`, `credential.exposed`.
    pub action: String,
    /// `client_key`, `customer`, `guest`, `staff`, `cli` or `secret_scanning`.
    pub actor_kind: String,
    /// The key id, customer id or staff member's id.
    pub actor_id: Option<String>,
    pub client_id: Option<ClientId>,
    pub customer_id: Option<CustomerId>,
    /// The key or token concerned.
    pub subject_id: Option<String>,
    pub client_ip: Option<String>,
    pub detail: Option<String>,
}

/// Which events a listing takes; every field set narrows it.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub client_id: Option<ClientId>,
    pub customer_id: Option<CustomerId>,
    /// The event's action, exactly (`client.created`, …).
    pub action: Option<String>,
    /// Events at or after this time.
    pub from: Option<OffsetDateTime>,
    /// Events before this time.
    pub to: Option<OffsetDateTime>,
    /// Only what this staff member did.
    pub staff_id: Option<String>,
}

/// Which way a listing runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AuditOrder {
    /// In the order the events happened.
    #[default]
    Oldest,
    Newest,
}

impl Db {
    /// Records an event that is not part of another change (a failed login).
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn record_event(&self, audit: &Audit, event: Event<'_>) -> Result<(), sqlx::Error> {
        let mut conn = self.writer().acquire().await?;
        self.append_audit(&mut conn, audit, event).await
    }

    /// Events in `order` by id (ids grow with time), after `after` (an
    /// event id) in that order.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn list_audit(
        &self,
        filter: &AuditFilter,
        order: AuditOrder,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, sqlx::Error> {
        enum Bind {
            Text(String),
            Int(i64),
        }
        let (past, direction) = match order {
            AuditOrder::Oldest => ("id >", "ASC"),
            AuditOrder::Newest => ("id <", "DESC"),
        };
        let mut conditions = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        let text = |value: Option<String>| value.map(Bind::Text);
        let micros = |value: Option<OffsetDateTime>| value.map(|at| Bind::Int(to_micros(at)));
        for (column, value) in [
            (past, text(after.map(str::to_owned))),
            (
                "client_id =",
                text(filter.client_id.clone().map(String::from)),
            ),
            (
                "customer_id =",
                text(filter.customer_id.clone().map(String::from)),
            ),
            ("action =", text(filter.action.clone())),
            (
                "actor_kind = 'staff' AND actor_id =",
                text(filter.staff_id.clone()),
            ),
            ("at >=", micros(filter.from)),
            ("at <", micros(filter.to)),
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
             FROM audit_events {filter_sql} ORDER BY id {direction} LIMIT ${}",
            binds.len() + 1
        );
        let mut query = sqlx::query_as(AssertSqlSafe(sql));
        for bind in binds {
            query = match bind {
                Bind::Text(text) => query.bind(text),
                Bind::Int(int) => query.bind(int),
            };
        }
        query.bind(limit).fetch_all(self.reader()).await
    }
}
