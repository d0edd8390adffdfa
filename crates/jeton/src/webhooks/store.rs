//! Webhook endpoints, their secrets and their deliveries, as stored; the
//! claims by which one process at a time delivers each.

use sqlx::{AssertSqlSafe, FromRow};
use time::OffsetDateTime;

use super::events::{self, EventType};
use crate::domain::ids::new_id;
use crate::domain::time::to_micros;
use crate::store::{
    Backend, Db,
    columns::{MaybeMicros, Micros, Spaced},
    placeholders,
};

/// How long the old secret keeps signing after a rotation.
pub const ROTATION_OVERLAP: time::Duration = time::Duration::hours(24);

/// Attempts in all before a delivery is `failed`.
pub const MAX_ATTEMPTS: i64 = 8;

/// The wait after each failed attempt but the last.
pub const BACKOFF: [time::Duration; 7] = [
    time::Duration::seconds(5),
    time::Duration::minutes(5),
    time::Duration::minutes(30),
    time::Duration::hours(2),
    time::Duration::hours(5),
    time::Duration::hours(10),
    time::Duration::hours(10),
];

/// How long every delivery to an endpoint may fail before it is disabled.
pub const DISABLE_AFTER: time::Duration = time::Duration::days(5);

/// What a disabled endpoint says of why.
pub const DISABLED_FOR_FAILURES: &str = "every delivery failed for 5 days";

/// How long a claim holds a delivery: longer than a send may take, so a
/// live process never loses its claim mid-send; a dead one's runs out.
pub const CLAIM_LEASE: time::Duration = time::Duration::seconds(60);

/// An endpoint as stored, without its secrets. The API shows it as
/// `http::admin::webhooks::Webhook`.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub description: String,
    #[sqlx(try_from = "Spaced")]
    pub events: Vec<String>,
    #[sqlx(try_from = "Micros")]
    pub created_at: OffsetDateTime,
    #[sqlx(try_from = "Micros")]
    pub updated_at: OffsetDateTime,
    #[sqlx(try_from = "MaybeMicros")]
    pub disabled_at: Option<OffsetDateTime>,
    pub disabled_reason: Option<String>,
    /// Until when the secret before the last rotation still signs.
    #[sqlx(try_from = "MaybeMicros")]
    pub previous_secret_expires_at: Option<OffsetDateTime>,
}

const ENDPOINT_COLUMNS: &str = "id, url, description, events, created_at, updated_at, \
     disabled_at, disabled_reason, previous_secret_expires_at";

/// A new endpoint.
#[derive(Debug, Clone)]
pub struct NewEndpoint<'a> {
    pub url: &'a str,
    pub description: &'a str,
    pub events: &'a [String],
}

/// What `PATCH /admin/webhooks/{id}` changes.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub disabled: Option<bool>,
}

/// A delivery as stored, for the log.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Delivery {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub endpoint_id: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub attempts: i64,
    #[sqlx(try_from = "MaybeMicros")]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[sqlx(try_from = "Micros")]
    pub created_at: OffsetDateTime,
    #[sqlx(try_from = "MaybeMicros")]
    pub last_attempt_at: Option<OffsetDateTime>,
    pub last_response_code: Option<i64>,
    pub last_response_body: Option<String>,
    pub last_error: Option<String>,
}

const DELIVERY_COLUMNS: &str = "d.id, d.event_id, ev.type AS event_type, d.endpoint_id, d.status, \
     d.attempts, d.next_attempt_at, d.created_at, d.last_attempt_at, d.last_response_code, \
     d.last_response_body, d.last_error";

/// A delivery claimed for sending, with what it takes to send it. Its
/// `Debug` leaves the secrets out.
#[derive(Clone, FromRow)]
pub struct Claimed {
    pub id: String,
    pub event_id: String,
    pub attempts: i64,
    /// Attempts after which a failure is final: [`MAX_ATTEMPTS`], or one
    /// more than were made when an admin asked for a retry.
    pub attempt_limit: i64,
    pub url: String,
    pub body: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<i64>,
}

impl std::fmt::Debug for Claimed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claimed")
            .field("id", &self.id)
            .field("event_id", &self.event_id)
            .field("attempts", &self.attempts)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Claimed {
    /// The secrets that sign now: the current one, and the previous one
    /// during its overlap.
    pub fn live_secrets(&self, now: OffsetDateTime) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(previous), Some(until)) =
            (&self.previous_secret, self.previous_secret_expires_at)
            && until > to_micros(now)
        {
            secrets.push(previous);
        }
        secrets
    }
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The receiver answered (2xx: delivered).
    Answered { status: u16, body: String },
    /// No answer: refused, timed out, unreachable.
    NoAnswer { error: String },
}

impl Outcome {
    fn succeeded(&self) -> bool {
        matches!(self, Outcome::Answered { status, .. } if (200..300).contains(status))
    }
}

impl Db {
    /// Stores an endpoint with its first secret.
    pub async fn create_webhook(
        &self,
        new: &NewEndpoint<'_>,
        secret: &str,
    ) -> Result<Endpoint, sqlx::Error> {
        let now = self.now_micros();
        sqlx::query_as(AssertSqlSafe(format!(
            "INSERT INTO webhook_endpoints (id, url, description, events, secret, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {ENDPOINT_COLUMNS}"
        )))
        .bind(new_id())
        .bind(new.url.to_owned())
        .bind(new.description.to_owned())
        .bind(new.events.join(" "))
        .bind(secret.to_owned())
        .bind(now)
        .fetch_one(self.writer())
        .await
    }

    pub async fn list_webhooks(&self) -> Result<Vec<Endpoint>, sqlx::Error> {
        sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY id"
        )))
        .fetch_all(self.reader())
        .await
    }

    pub async fn get_webhook(&self, id: &str) -> Result<Option<Endpoint>, sqlx::Error> {
        sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
        )))
        .bind(id.to_owned())
        .fetch_optional(self.reader())
        .await
    }

    /// Changes an endpoint. Enabling it again forgets its failures: its
    /// pending deliveries go out at once.
    pub async fn update_webhook(
        &self,
        id: &str,
        change: &EndpointChange,
    ) -> Result<Option<Endpoint>, sqlx::Error> {
        let now = self.now_micros();
        let (disable, enable) = match change.disabled {
            Some(true) => (true, false),
            Some(false) => (false, true),
            None => (false, false),
        };
        let mut tx = self.begin_write().await?;
        let updated: Option<Endpoint> = sqlx::query_as(AssertSqlSafe(format!(
            "UPDATE webhook_endpoints SET url = COALESCE($2, url), events = COALESCE($3, events), \
             description = COALESCE($4, description), updated_at = $5, \
             disabled_at = CASE WHEN $6 = 1 THEN COALESCE(disabled_at, $5) WHEN $7 = 1 THEN NULL ELSE disabled_at END, \
             disabled_reason = CASE WHEN $6 = 1 THEN COALESCE(disabled_reason, 'disabled by an admin') \
                                    WHEN $7 = 1 THEN NULL ELSE disabled_reason END, \
             failing_since = CASE WHEN $7 = 1 THEN NULL ELSE failing_since END \
             WHERE id = $1 RETURNING {ENDPOINT_COLUMNS}"
        )))
        .bind(id.to_owned())
        .bind(change.url.clone())
        .bind(change.events.as_ref().map(|events| events.join(" ")))
        .bind(change.description.clone())
        .bind(now)
        .bind(i64::from(disable))
        .bind(i64::from(enable))
        .fetch_optional(&mut *tx)
        .await?;
        if updated.is_some() && enable {
            // What waited while it was disabled goes now.
            sqlx::query(
                "UPDATE webhook_deliveries SET next_attempt_at = $2 \
                 WHERE endpoint_id = $1 AND status = 'pending' AND next_attempt_at > $2",
            )
            .bind(id.to_owned())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(updated)
    }

    /// Deletes an endpoint and its deliveries; `false` if there was none.
    pub async fn delete_webhook(&self, id: &str) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE endpoint_id = $1")
            .bind(id.to_owned())
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
            .bind(id.to_owned())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted.rows_affected() == 1)
    }

    /// A new secret; the current one keeps signing beside it for
    /// [`ROTATION_OVERLAP`]. `false` if there is no such endpoint.
    pub async fn rotate_webhook_secret(&self, id: &str, secret: &str) -> Result<bool, sqlx::Error> {
        let now = self.now();
        let rotated = sqlx::query(
            "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_expires_at = $3, \
             secret = $2, updated_at = $4 WHERE id = $1",
        )
        .bind(id.to_owned())
        .bind(secret.to_owned())
        .bind(to_micros(now + ROTATION_OVERLAP))
        .bind(to_micros(now))
        .execute(self.writer())
        .await?;
        Ok(rotated.rows_affected() == 1)
    }

    /// The endpoint's deliveries, newest first, older than `before` (a
    /// delivery id).
    pub async fn list_deliveries(
        &self,
        endpoint_id: &str,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Delivery>, sqlx::Error> {
        sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id \
             WHERE d.endpoint_id = $1 AND ($2 IS NULL OR d.id < $2) ORDER BY d.id DESC LIMIT $3"
        )))
        .bind(endpoint_id.to_owned())
        .bind(before.map(str::to_owned))
        .bind(limit)
        .fetch_all(self.reader())
        .await
    }

    pub async fn get_delivery(
        &self,
        endpoint_id: &str,
        id: &str,
    ) -> Result<Option<Delivery>, sqlx::Error> {
        sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id \
             WHERE d.endpoint_id = $1 AND d.id = $2"
        )))
        .bind(endpoint_id.to_owned())
        .bind(id.to_owned())
        .fetch_optional(self.writer())
        .await
    }

    /// Sends a delivery again as soon as the worker comes to it: one more
    /// attempt for a failed one (a failure then fails it again), at once
    /// for a pending one.
    pub async fn retry_delivery(
        &self,
        endpoint_id: &str,
        id: &str,
    ) -> Result<Option<Delivery>, sqlx::Error> {
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3, \
             attempt_limit = CASE WHEN status = 'pending' THEN attempt_limit ELSE attempts + 1 END \
             WHERE endpoint_id = $1 AND id = $2",
        )
        .bind(endpoint_id.to_owned())
        .bind(id.to_owned())
        .bind(self.now_micros())
        .execute(self.writer())
        .await?;
        self.get_delivery(endpoint_id, id).await
    }

    /// Raises `webhook.test` for this endpoint alone; its delivery.
    pub async fn test_webhook(&self, endpoint: &Endpoint) -> Result<Delivery, sqlx::Error> {
        let data = serde_json::json!({
            "webhook": {"id": endpoint.id, "url": endpoint.url, "description": endpoint.description},
        });
        let mut tx = self.begin_write().await?;
        let event_id = events::insert(
            &mut tx,
            self.now(),
            EventType::WebhookTest,
            None,
            &data,
            std::slice::from_ref(&endpoint.id),
        )
        .await?;
        tx.commit().await?;
        let id: String =
            sqlx::query_scalar("SELECT id FROM webhook_deliveries WHERE event_id = $1")
                .bind(event_id)
                .fetch_one(self.writer())
                .await?;
        self.get_delivery(&endpoint.id, &id)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// Claims up to `limit` due deliveries of enabled endpoints for
    /// `worker` until `now + CLAIM_LEASE`: no other process takes them
    /// meanwhile (PostgreSQL skips rows another claim holds locked; SQLite
    /// has one writer).
    pub async fn claim_deliveries(
        &self,
        worker: &str,
        limit: i64,
    ) -> Result<Vec<Claimed>, sqlx::Error> {
        let now = self.now();
        // A read first: an idle worker takes no write lock (SQLite has one).
        let due: Option<String> = sqlx::query_scalar(
            "SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 LIMIT 1",
        )
        .bind(to_micros(now))
        .fetch_optional(self.reader())
        .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE OF d SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let ids: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "UPDATE webhook_deliveries SET claimed_by = $1, claimed_until = $2 WHERE id IN ( \
               SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
               WHERE d.status = 'pending' AND d.next_attempt_at <= $3 \
                 AND (d.claimed_until IS NULL OR d.claimed_until <= $3) AND e.disabled_at IS NULL \
               ORDER BY d.next_attempt_at, d.id LIMIT $4 {lock}) \
             RETURNING id"
        )))
        .bind(worker.to_owned())
        .bind(to_micros(now + CLAIM_LEASE))
        .bind(to_micros(now))
        .bind(limit)
        .fetch_all(self.writer())
        .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT d.id, d.event_id, d.attempts, d.attempt_limit, e.url, ev.body, e.secret, e.previous_secret, \
                    e.previous_secret_expires_at \
             FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                  JOIN webhook_events ev ON ev.id = d.event_id \
             WHERE d.id IN ({}) ORDER BY d.next_attempt_at, d.id",
            placeholders(1, ids.len())
        );
        let mut query = sqlx::query_as::<_, Claimed>(AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id);
        }
        query.fetch_all(self.writer()).await
    }

    /// Records an attempt at a delivery `worker` claimed: delivered, or
    /// retried later (after [`BACKOFF`]), or `failed` after
    /// [`MAX_ATTEMPTS`]. Its endpoint's run of failures starts or ends
    /// here. Nothing is written if the claim was lost meanwhile.
    pub async fn record_attempt(
        &self,
        worker: &str,
        delivery: &Claimed,
        outcome: &Outcome,
    ) -> Result<(), sqlx::Error> {
        let now = self.now();
        let attempts = delivery.attempts + 1;
        let succeeded = outcome.succeeded();
        let (status, next) = if succeeded {
            ("succeeded", None)
        } else if attempts >= delivery.attempt_limit {
            ("failed", None)
        } else {
            let wait = BACKOFF[usize::try_from(attempts - 1)
                .unwrap_or(0)
                .min(BACKOFF.len() - 1)];
            ("pending", Some(to_micros(now + wait)))
        };
        let (code, body, error) = match outcome {
            Outcome::Answered { status, body } => {
                (Some(i64::from(*status)), Some(body.clone()), None)
            }
            Outcome::NoAnswer { error } => (None, None, Some(error.clone())),
        };
        let mut tx = self.begin_write().await?;
        let endpoint: Option<String> = sqlx::query_scalar(
            "UPDATE webhook_deliveries SET status = $3, attempts = $4, next_attempt_at = $5, \
             claimed_by = NULL, claimed_until = NULL, last_attempt_at = $6, last_response_code = $7, \
             last_response_body = $8, last_error = $9 \
             WHERE id = $1 AND claimed_by = $2 RETURNING endpoint_id",
        )
        .bind(delivery.id.clone())
        .bind(worker.to_owned())
        .bind(status)
        .bind(attempts)
        .bind(next)
        .bind(to_micros(now))
        .bind(code)
        .bind(body)
        .bind(error)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(endpoint) = endpoint {
            let query = if succeeded {
                sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1")
                    .bind(endpoint)
            } else {
                sqlx::query(
                    "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2) WHERE id = $1",
                )
                .bind(endpoint)
                .bind(to_micros(now))
            };
            query.execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    /// Disables the endpoints whose every delivery has failed for
    /// [`DISABLE_AFTER`]; how many.
    pub async fn disable_failing_webhooks(&self) -> Result<u64, sqlx::Error> {
        let now = self.now();
        let failing: Option<String> = sqlx::query_scalar(
            "SELECT id FROM webhook_endpoints \
             WHERE disabled_at IS NULL AND failing_since IS NOT NULL AND failing_since <= $1 LIMIT 1",
        )
        .bind(to_micros(now - DISABLE_AFTER))
        .fetch_optional(self.reader())
        .await?;
        if failing.is_none() {
            return Ok(0);
        }
        let disabled = sqlx::query(
            "UPDATE webhook_endpoints SET disabled_at = $1, disabled_reason = $2, updated_at = $1 \
             WHERE disabled_at IS NULL AND failing_since IS NOT NULL AND failing_since <= $3",
        )
        .bind(to_micros(now))
        .bind(DISABLED_FOR_FAILURES)
        .bind(to_micros(now - DISABLE_AFTER))
        .execute(self.writer())
        .await?;
        Ok(disabled.rows_affected())
    }
}
