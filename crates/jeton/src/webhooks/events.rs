//! The events of API.md §14 and how they are raised: in the transaction of
//! the change that causes them (an outbox), with a delivery for every
//! enabled endpoint that subscribes, so that none is lost and none is sent
//! for a change that was rolled back.

use serde::Serialize;
use sqlx::AnyConnection;
use time::OffsetDateTime;

use crate::domain::ids::new_id;
use crate::domain::time::to_micros;

/// Every event type an endpoint may subscribe to (`"*"`: all of them).
pub const EVENT_TYPES: [&str; 12] = [
    EventType::ClientCreated.as_str(),
    EventType::ClientUpdated.as_str(),
    EventType::ClientRevoked.as_str(),
    EventType::KeyRotated.as_str(),
    EventType::CredentialExposed.as_str(),
    EventType::KeyUsedFromBrowser.as_str(),
    EventType::CustomerCreated.as_str(),
    EventType::CustomerTokensRevoked.as_str(),
    EventType::OrderPlaced.as_str(),
    EventType::OrderCancelled.as_str(),
    EventType::StaffSignedIn.as_str(),
    EventType::StaffChanged.as_str(),
];

/// Subscribes to every event type.
pub const ALL: &str = "*";

/// How often at most `key.used_from_browser` is raised for one key.
pub const BROWSER_USE_INTERVAL: time::Duration = time::Duration::minutes(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    ClientCreated,
    ClientUpdated,
    ClientRevoked,
    KeyRotated,
    /// A credential found in public (API.md §15).
    CredentialExposed,
    KeyUsedFromBrowser,
    CustomerCreated,
    CustomerTokensRevoked,
    OrderPlaced,
    OrderCancelled,
    StaffSignedIn,
    StaffChanged,
    /// Sent to one endpoint on request (`POST /admin/webhooks/{id}/test`),
    /// whatever it subscribes to.
    WebhookTest,
}

impl EventType {
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::ClientCreated => "client.created",
            EventType::ClientUpdated => "client.updated",
            EventType::ClientRevoked => "client.revoked",
            EventType::KeyRotated => "key.rotated",
            EventType::CredentialExposed => "credential.exposed",
            EventType::KeyUsedFromBrowser => "key.used_from_browser",
            EventType::CustomerCreated => "customer.created",
            EventType::CustomerTokensRevoked => "customer.tokens_revoked",
            EventType::OrderPlaced => "order.placed",
            EventType::OrderCancelled => "order.cancelled",
            EventType::StaffSignedIn => "staff.signed_in",
            EventType::StaffChanged => "staff.changed",
            EventType::WebhookTest => "webhook.test",
        }
    }
}

/// Does an endpoint subscribed to `events` (as stored: separated by
/// spaces) take events of `kind`?
pub fn subscribes(events: &str, kind: &str) -> bool {
    events
        .split_ascii_whitespace()
        .any(|event| event == ALL || event == kind)
}

/// A credential as an event names it: never the token nor its hash.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CredentialRef {
    pub id: String,
    /// `secret_key`, `publishable_key`, `user_token`, `access_token` or
    /// `staff_session`.
    pub kind: &'static str,
    pub last4: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
}

/// The body of a delivery: the same bytes on every attempt.
fn body(kind: &str, at: OffsetDateTime, data: &serde_json::Value) -> String {
    let timestamp = at
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a stored time formats");
    serde_json::json!({"type": kind, "timestamp": timestamp, "data": data}).to_string()
}

/// Raises an event in the transaction `conn` is in: one delivery for each
/// enabled endpoint that subscribes to `kind`. An event nobody subscribes
/// to is not kept. `subject` names what the event is about, for events
/// raised at most so often (`key.used_from_browser`).
pub(crate) async fn raise(
    conn: &mut AnyConnection,
    at: OffsetDateTime,
    kind: EventType,
    subject: Option<&str>,
    data: &impl Serialize,
) -> Result<Option<String>, sqlx::Error> {
    let endpoints: Vec<(String, String)> =
        sqlx::query_as("SELECT id, events FROM webhook_endpoints WHERE disabled_at IS NULL")
            .fetch_all(&mut *conn)
            .await?;
    let targets: Vec<String> = endpoints
        .into_iter()
        .filter(|(_, events)| subscribes(events, kind.as_str()))
        .map(|(id, _)| id)
        .collect();
    if targets.is_empty() {
        return Ok(None);
    }
    let data = serde_json::to_value(data).map_err(|error| sqlx::Error::Encode(error.into()))?;
    insert(conn, at, kind, subject, &data, &targets)
        .await
        .map(Some)
}

/// Writes an event and one pending delivery to each of `endpoints`; the
/// event's id.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    at: OffsetDateTime,
    kind: EventType,
    subject: Option<&str>,
    data: &serde_json::Value,
    endpoints: &[String],
) -> Result<String, sqlx::Error> {
    let event_id = new_id();
    let micros = to_micros(at);
    sqlx::query(
        "INSERT INTO webhook_events (id, type, subject_id, body, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(event_id.clone())
    .bind(kind.as_str())
    .bind(subject.map(str::to_owned))
    .bind(body(kind.as_str(), at, data))
    .bind(micros)
    .execute(&mut *conn)
    .await?;
    for endpoint in endpoints {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, status, attempts, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, 'pending', 0, $4, $4)",
        )
        .bind(new_id())
        .bind(event_id.clone())
        .bind(endpoint.clone())
        .bind(micros)
        .execute(&mut *conn)
        .await?;
    }
    Ok(event_id)
}

/// `key.used_from_browser` for a secret key a browser sent, unless one was
/// raised for it within [`BROWSER_USE_INTERVAL`]; in the transaction that
/// records the refusal.
pub(crate) async fn key_used_from_browser(
    conn: &mut AnyConnection,
    at: OffsetDateTime,
    key_id: &str,
    client_id: &str,
    origin: Option<&str>,
) -> Result<(), sqlx::Error> {
    let since = to_micros(at - BROWSER_USE_INTERVAL);
    let recent: Option<String> = sqlx::query_scalar(
        "SELECT id FROM webhook_events WHERE type = $1 AND subject_id = $2 AND created_at > $3 LIMIT 1",
    )
    .bind(EventType::KeyUsedFromBrowser.as_str())
    .bind(key_id.to_owned())
    .bind(since)
    .fetch_optional(&mut *conn)
    .await?;
    if recent.is_some() {
        return Ok(());
    }
    let last4: Option<String> =
        sqlx::query_scalar("SELECT last4 FROM auth_credentials WHERE id = $1")
            .bind(key_id.to_owned())
            .fetch_optional(&mut *conn)
            .await?;
    let credential = CredentialRef {
        id: key_id.to_owned(),
        kind: "secret_key",
        last4: last4.unwrap_or_default(),
        client_id: Some(client_id.to_owned()),
        customer_id: None,
    };
    let data = serde_json::json!({
        "credential": credential,
        // Public information (the page's site), clipped: the header is the
        // caller's to choose.
        "origin": origin.map(|o| o.chars().take(200).collect::<String>()),
    });
    raise(conn, at, EventType::KeyUsedFromBrowser, Some(key_id), &data).await?;
    Ok(())
}

/// `credential.exposed` (API.md §15): `credential` was found at `url` by
/// `source`; in the transaction that revokes or flags it.
pub async fn credential_exposed(
    conn: &mut AnyConnection,
    at: OffsetDateTime,
    credential: &CredentialRef,
    source: &str,
    url: Option<&str>,
) -> Result<(), sqlx::Error> {
    let data = serde_json::json!({
        "credential": credential,
        "source": source,
        "url": url,
    });
    raise(
        conn,
        at,
        EventType::CredentialExposed,
        Some(&credential.id),
        &data,
    )
    .await?;
    Ok(())
}

impl crate::store::Db {
    /// Raises `kind` about `data` (the admin API's JSON of the resource)
    /// in the transaction `conn` is in, at the app's time.
    pub(crate) async fn raise_webhook(
        &self,
        conn: &mut AnyConnection,
        kind: EventType,
        data: &impl Serialize,
    ) -> Result<(), sqlx::Error> {
        raise(conn, self.now(), kind, None, data).await?;
        Ok(())
    }
}
