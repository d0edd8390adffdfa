//! Webhook endpoints (API.md §14): `GET` needs `clients:read`, every change
//! `clients:write`. An endpoint's secret is shown once, when it is made or
//! rotated.

use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::{
    domain::{Problems, ids::parse_id, schema, text::bounded},
    http::{
        error::{AppError, AppResult},
        extract::{Json, Query},
        state::AppState,
    },
    pagination::{Page, PageRequest},
    webhooks::{
        events::{ALL, EVENT_TYPES},
        outbound::{AddressPolicy, WebhookUrl},
        signing::new_secret,
        store::{Delivery as StoredDelivery, Endpoint, EndpointChange, NewEndpoint},
    },
};

/// The longest URL an endpoint may have.
pub const URL_MAX: usize = 2048;
/// The longest description.
pub const DESCRIPTION_MAX: usize = 500;
/// The most items of `events`: every type and `*`.
pub const EVENTS_MAX: usize = EVENT_TYPES.len() + 1;

/// The event types and `*`, for the schema of `events`.
fn events_schema_of(nullable: bool) -> utoipa::openapi::schema::Array {
    let mut names: Vec<&str> = EVENT_TYPES.to_vec();
    names.push(ALL);
    let mut list = schema::array(
        schema::one_of_strings(names).build(),
        1,
        EVENTS_MAX,
        nullable,
    );
    list.description = Some(if nullable {
        "Replaces the event types sent; `*`: all of them. Left out or `null`: unchanged.".to_owned()
    } else {
        "The event types sent; `*`: all of them.".to_owned()
    });
    list
}

fn events_schema() -> utoipa::openapi::schema::Array {
    events_schema_of(false)
}

fn patch_events_schema() -> utoipa::openapi::schema::Array {
    events_schema_of(true)
}

fn url_schema_of(nullable: bool) -> utoipa::openapi::schema::Object {
    schema::field(
        schema::sized_text(1, URL_MAX)
            .schema_type(schema::scalar_type(utoipa::openapi::Type::String, nullable))
            .format(Some(utoipa::openapi::schema::SchemaFormat::Custom(
                "uri".to_owned(),
            )))
            .description(Some(
                "Where events are posted: an absolute `https` URL without userinfo (`http` and \
                 private addresses only on a server run with `--webhook-allow-http-private`); \
                 anything else is 422.",
            )),
    )
}

fn url_schema() -> utoipa::openapi::schema::Object {
    url_schema_of(false)
}

fn patch_url_schema() -> utoipa::openapi::schema::Object {
    url_schema_of(true)
}

fn description_schema() -> utoipa::openapi::schema::Object {
    schema::field(schema::bounded_text(0, DESCRIPTION_MAX, true))
}

/// `POST /admin/webhooks`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://hooks.shop.example/jeton", "events": ["order.placed", "order.cancelled"]}))]
pub struct WebhookRequest {
    #[schema(schema_with = url_schema)]
    pub url: String,
    #[schema(schema_with = events_schema)]
    pub events: Vec<String>,
    #[schema(schema_with = description_schema)]
    pub description: Option<String>,
}

/// `PATCH /admin/webhooks/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"disabled": false}))]
pub struct WebhookUpdate {
    #[schema(schema_with = patch_url_schema)]
    pub url: Option<String>,
    #[schema(schema_with = patch_events_schema)]
    pub events: Option<Vec<String>>,
    #[schema(schema_with = description_schema)]
    pub description: Option<String>,
    /// `true` stops deliveries; `false` enables the endpoint again (also
    /// one disabled after five days of failures), and what waited goes out.
    pub disabled: Option<bool>,
}

/// An endpoint, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Set while it is sent nothing.
    #[serde(with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
    /// Why: `disabled by an admin`, or `every delivery failed for 5 days`.
    pub disabled_reason: Option<String>,
    /// Until when the secret before the last rotation still signs.
    #[serde(with = "time::serde::rfc3339::option")]
    pub previous_secret_expires_at: Option<OffsetDateTime>,
}

impl From<Endpoint> for Webhook {
    fn from(row: Endpoint) -> Webhook {
        Webhook {
            id: row.id,
            url: row.url,
            events: row.events,
            description: row.description,
            created_at: row.created_at,
            updated_at: row.updated_at,
            disabled_at: row.disabled_at,
            disabled_reason: row.disabled_reason,
            previous_secret_expires_at: row.previous_secret_expires_at,
        }
    }
}

/// A new endpoint and its secret, shown this once.
#[derive(Serialize, ToSchema)]
pub struct NewWebhook {
    pub webhook: Webhook,
    /// `whsec_` and the base64 of 32 random bytes: the key of every
    /// signature. Keep it; it is not shown again.
    pub secret: String,
}

/// A rotated secret, shown this once.
#[derive(Serialize, ToSchema)]
pub struct WebhookSecret {
    /// The new secret; the previous one signs beside it for 24 hours.
    pub secret: String,
}

/// One event's delivery to one endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct Delivery {
    pub id: String,
    /// The `webhook-id` header: the same on every attempt.
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `succeeded` or `failed` (after 8 attempts).
    pub status: String,
    pub attempts: i64,
    /// When it is sent next, while `pending`.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_attempt_at: Option<OffsetDateTime>,
    /// The status the receiver answered the last attempt with.
    pub response_code: Option<i64>,
    /// The start (up to 64 KiB) of its answer, as text.
    pub response_body: Option<String>,
    /// Why the last attempt got no answer (refused, timed out).
    pub error: Option<String>,
}

impl From<StoredDelivery> for Delivery {
    fn from(row: StoredDelivery) -> Delivery {
        Delivery {
            id: row.id,
            event_id: row.event_id,
            event_type: row.event_type,
            status: row.status,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            created_at: row.created_at,
            last_attempt_at: row.last_attempt_at,
            response_code: row.last_response_code,
            response_body: row.last_response_body,
            error: row.last_error,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// 1 to 100, default 20.
    limit: Option<i64>,
    cursor: Option<String>,
}

/// A URL an endpoint may have (`outbound::WebhookUrl`): absolute, `https`
/// and a literal address only if globally routable (either rule lifted
/// where the server allows it), with a host and no userinfo.
pub fn check_url(raw: &str, allow_http: bool) -> Result<String, String> {
    let policy = if allow_http {
        AddressPolicy::AllowHttpAndPrivate
    } else {
        AddressPolicy::Public
    };
    WebhookUrl::parse(raw, policy)
        .map(|url| url.as_str().to_owned())
        .map_err(|error| error.to_string())
}

fn check_events(events: &[String]) -> Result<Vec<String>, String> {
    if events.is_empty() {
        return Err("must name at least one event type, or `*`".to_owned());
    }
    if events.len() > EVENTS_MAX {
        return Err(format!("must have at most {EVENTS_MAX} items"));
    }
    let mut checked: Vec<String> = Vec::new();
    for event in events {
        if event != ALL && !EVENT_TYPES.contains(&event.as_str()) {
            return Err(format!(
                "`{}` is not an event type: {} or `*`",
                event.chars().take(60).collect::<String>(),
                EVENT_TYPES.join(", ")
            ));
        }
        if !checked.contains(event) {
            checked.push(event.clone());
        }
    }
    Ok(checked)
}

fn check_description(raw: &str) -> Result<String, String> {
    bounded(raw, 0, DESCRIPTION_MAX)
}

async fn endpoint(state: &AppState, id: &str) -> AppResult<Endpoint> {
    let id = parse_id(id).ok_or(AppError::NotFound)?;
    state.db.get_webhook(&id).await?.ok_or(AppError::NotFound)
}

/// Create a webhook endpoint
///
/// Events of the given types are `POST`ed to `url`, signed as the Standard
/// Webhooks specification says with the secret returned here, shown only
/// this once.
#[utoipa::path(post, operation_id = "createWebhook", path = "/api/v1/admin/webhooks", tag = "admin",
    request_body = WebhookRequest,
    responses((status = 201, body = NewWebhook)))]
pub async fn create(
    State(state): State<AppState>,
    Json(input): Json<WebhookRequest>,
) -> AppResult<(StatusCode, Json<NewWebhook>)> {
    let mut problems = Problems::default();
    let allow_http = state.config.webhook_allow_http_private;
    let url = problems.check("url", check_url(&input.url, allow_http));
    let events = problems.check("events", check_events(&input.events));
    let description = problems.check(
        "description",
        check_description(input.description.as_deref().unwrap_or("")),
    );
    let (url, events, description) = problems
        .finish(|| {
            (
                url.expect("checked"),
                events.expect("checked"),
                description.expect("checked"),
            )
        })
        .map_err(AppError::Validation)?;
    let secret = new_secret();
    let new = NewEndpoint {
        url: &url,
        description: &description,
        events: &events,
    };
    let created = state.db.create_webhook(&new, &secret).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewWebhook {
            webhook: created.into(),
            secret,
        }),
    ))
}

/// List webhook endpoints
///
/// Every endpoint, in the order they were made, without their secrets.
/// Changes nothing.
#[utoipa::path(get, operation_id = "listWebhooks", path = "/api/v1/admin/webhooks", tag = "admin",
    responses((status = 200, body = Page<Webhook>)))]
pub async fn list(State(state): State<AppState>) -> AppResult<Json<Page<Webhook>>> {
    let endpoints = state.db.list_webhooks().await?;
    Ok(Json(Page {
        data: endpoints.into_iter().map(Webhook::from).collect(),
        next_cursor: None,
    }))
}

/// Get a webhook endpoint
///
/// Changes nothing.
#[utoipa::path(get, operation_id = "getWebhook", path = "/api/v1/admin/webhooks/{id}", tag = "admin",
    params(("id" = String, Path)),
    responses((status = 200, body = Webhook), (status = 404, description = "`not_found`")))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Json<Webhook>> {
    Ok(Json(endpoint(&state, &id).await?.into()))
}

/// Change a webhook endpoint
///
/// Its URL, events or description; `disabled: true` stops deliveries,
/// `disabled: false` enables it again (one disabled after five days of
/// failures too) and sends what waited.
#[utoipa::path(patch, operation_id = "updateWebhook", path = "/api/v1/admin/webhooks/{id}", tag = "admin",
    params(("id" = String, Path)),
    request_body = WebhookUpdate,
    responses((status = 200, body = Webhook), (status = 404, description = "`not_found`")))]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(input): Json<WebhookUpdate>,
) -> AppResult<Json<Webhook>> {
    let id = parse_id(&id).ok_or(AppError::NotFound)?;
    let mut problems = Problems::default();
    let allow_http = state.config.webhook_allow_http_private;
    let url = input
        .url
        .as_deref()
        .and_then(|url| problems.check("url", check_url(url, allow_http)));
    let events = input
        .events
        .as_deref()
        .and_then(|events| problems.check("events", check_events(events)));
    let description = input
        .description
        .as_deref()
        .and_then(|text| problems.check("description", check_description(text)));
    let change = problems
        .finish(|| EndpointChange {
            url,
            events,
            description,
            disabled: input.disabled,
        })
        .map_err(AppError::Validation)?;
    let updated = state.db.update_webhook(&id, &change).await?;
    Ok(Json(updated.ok_or(AppError::NotFound)?.into()))
}

/// Delete a webhook endpoint
///
/// It is sent nothing more; its delivery log goes with it.
#[utoipa::path(delete, operation_id = "deleteWebhook", path = "/api/v1/admin/webhooks/{id}", tag = "admin",
    params(("id" = String, Path)),
    responses((status = 204, description = "deleted"), (status = 404, description = "`not_found`")))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let id = parse_id(&id).ok_or(AppError::NotFound)?;
    if state.db.delete_webhook(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound)
    }
}

/// Rotate a webhook endpoint's secret
///
/// A new secret, shown only this once; the previous one keeps signing
/// beside it (a second signature in `webhook-signature`) for 24 hours, so
/// the receiver can change over without losing a delivery.
#[utoipa::path(post, operation_id = "rotateWebhookSecret", path = "/api/v1/admin/webhooks/{id}/rotate-secret", tag = "admin",
    params(("id" = String, Path)),
    responses((status = 200, body = WebhookSecret), (status = 404, description = "`not_found`")))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Json<WebhookSecret>> {
    let id = parse_id(&id).ok_or(AppError::NotFound)?;
    let secret = new_secret();
    if state.db.rotate_webhook_secret(&id, &secret).await? {
        Ok(Json(WebhookSecret { secret }))
    } else {
        Err(AppError::NotFound)
    }
}

/// List a webhook endpoint's deliveries
///
/// Newest first: each with its status, attempts, and the last attempt's
/// time, response code and response body (as text). Changes nothing.
#[utoipa::path(get, operation_id = "listWebhookDeliveries", path = "/api/v1/admin/webhooks/{id}/deliveries", tag = "admin",
    params(("id" = String, Path), DeliveryQuery),
    responses((status = 200, body = Page<Delivery>), (status = 404, description = "`not_found`")))]
pub async fn deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<DeliveryQuery>,
) -> AppResult<Json<Page<Delivery>>> {
    let page =
        PageRequest::parse(query.limit, query.cursor.as_deref()).map_err(AppError::Validation)?;
    let endpoint = endpoint(&state, &id).await?;
    let rows = state
        .db
        .list_deliveries(&endpoint.id, page.after.as_deref(), page.fetch_limit())
        .await?;
    let rows = rows.into_iter().map(Delivery::from).collect();
    Ok(Json(page.page(rows, |delivery: &Delivery| &delivery.id)))
}

/// Retry a delivery
///
/// Sends it again as soon as the worker comes to it: a pending delivery at
/// once, a failed or succeeded one for one more attempt.
#[utoipa::path(post, operation_id = "retryWebhookDelivery", path = "/api/v1/admin/webhooks/{id}/deliveries/{delivery_id}/retry", tag = "admin",
    params(("id" = String, Path), ("delivery_id" = String, Path)),
    responses((status = 202, body = Delivery), (status = 404, description = "`not_found`")))]
pub async fn retry(
    State(state): State<AppState>,
    Path((id, delivery_id)): Path<(String, String)>,
) -> AppResult<(StatusCode, Json<Delivery>)> {
    let id = parse_id(&id).ok_or(AppError::NotFound)?;
    let delivery_id = parse_id(&delivery_id).ok_or(AppError::NotFound)?;
    let delivery = state.db.retry_delivery(&id, &delivery_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(delivery.ok_or(AppError::NotFound)?.into()),
    ))
}

/// Send a test event
///
/// An event of type `webhook.test` to this endpoint alone, whatever it
/// subscribes to; its delivery, to follow in the log.
#[utoipa::path(post, operation_id = "sendTestWebhook", path = "/api/v1/admin/webhooks/{id}/test", tag = "admin",
    params(("id" = String, Path)),
    responses((status = 202, body = Delivery), (status = 404, description = "`not_found`")))]
pub async fn test(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<(StatusCode, Json<Delivery>)> {
    let endpoint = endpoint(&state, &id).await?;
    let delivery = state.db.test_webhook(&endpoint).await?;
    Ok((StatusCode::ACCEPTED, Json(delivery.into())))
}
