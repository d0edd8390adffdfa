use crate::identity::TOKENS;
use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use jeton_auth::{Ability, AbilitySet, AuthError, Principal};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    domain::{
        abilities,
        client::{ClientChange, ClientPatchInput, NewClient, NewClientInput},
        ids::ClientId,
    },
    http::{
        error::{AppError, AppResult},
        extract::{Json, JsonOrEmpty, Query},
        state::AppState,
    },
    pagination::{Page, PageRequest},
    responses::{Client, ClientKey},
    store::{audit::Audit, clients::UpdateClientError},
};

/// Nobody grants what they don't hold (contract §13): an ability that
/// grants more than the storefront's and the customers' abilities
/// ([`abilities::open_to_grant`]: an admin ability, `admin`,
/// `tokens:introspect`, `*`) needs the caller to hold it, by the same rules
/// as the routes (`admin` holds `clients:read`, not `staff:manage`); an
/// access token holds its scope only. Else 403 `insufficient_scope`, naming
/// the first such ability.
fn check_grant(caller: &AbilitySet, granted: &AbilitySet) -> AppResult<()> {
    let beyond = |ability: &&Ability| {
        !abilities::open_to_grant(ability) && !abilities::ceilings().grants(caller, ability)
    };
    match granted.iter().find(beyond) {
        Some(ability) => Err(AuthError::InsufficientScope {
            scope: ability.as_str().to_owned(),
        }
        .into()),
        None => Ok(()),
    }
}

/// A new client and its first key. The key is shown only here.
// No `Debug`: it holds a secret shown once, which must never reach a log.
#[derive(Serialize, ToSchema)]
pub struct CreatedClient {
    pub client: Client,
    /// Shown once; only its hash is stored.
    pub key: String,
}

/// Create a client
///
/// Creates a client application of either kind with its first key, shown once
/// (only its hash is stored). A publishable client lists its allowed origins
/// and may have a per-IP limit; a secret client has neither. Abilities beyond
/// the storefront's and the customers' need the caller to hold them. Recorded
/// in the audit log.
#[utoipa::path(post, operation_id = "createClient", path = "/api/v1/admin/clients", tag = "admin", request_body = NewClientInput,
    responses((status = 201, body = CreatedClient),
        (status = 403, description = "an ability the caller does not hold itself, beyond the storefront's and the customers' (`insufficient_scope`, its `scope` naming it)")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Principal,
    audit: Audit,
    Json(input): Json<NewClientInput>,
) -> AppResult<(StatusCode, Json<CreatedClient>)> {
    let new = NewClient::parse(input, state.config.limit_defaults).map_err(AppError::Validation)?;
    check_grant(caller.abilities(), &new.abilities)?;
    let key = TOKENS.generate(new.kind.token_kind());
    let client = state.db.create_client(&new, &key, &audit).await?;
    state.clients_changed().await;
    Ok((
        StatusCode::CREATED,
        Json(CreatedClient {
            client: client.into(),
            key: key.expose_secret().to_owned(),
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ClientQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    /// `true`: only the clients with a key a browser sent (a leaked secret
    /// key, its `browser_refusals` above 0); left out or `false`: all.
    flagged: Option<bool>,
}

/// List clients
///
/// A page of the client applications in the order they were made, revoked
/// ones included, with their keys' last four characters and leak counters;
/// with `flagged=true`, only those with a leaked key. Changes nothing.
#[utoipa::path(get, operation_id = "listClients", path = "/api/v1/admin/clients", tag = "admin", params(ClientQuery),
    responses((status = 200, body = Page<Client>)))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ClientQuery>,
) -> AppResult<Json<Page<Client>>> {
    let page =
        PageRequest::parse(query.limit, query.cursor.as_deref()).map_err(AppError::Validation)?;
    let (after, limit) = (page.after.as_deref(), page.fetch_limit());
    let rows = if query.flagged == Some(true) {
        state.db.list_flagged_clients(after, limit).await?
    } else {
        state.db.list_clients(after, limit).await?
    };
    let clients = rows.into_iter().map(Client::from).collect();
    Ok(Json(page.page(clients, |client| &client.id)))
}

/// Get a client
///
/// One client application, by id, revoked ones included. Changes nothing.
#[utoipa::path(get, operation_id = "getClient", path = "/api/v1/admin/clients/{id}", tag = "admin",
    responses((status = 200, body = Client)))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> AppResult<Json<Client>> {
    let id = ClientId::parse(&id).ok_or(AppError::NotFound)?;
    state
        .db
        .get_client(&id)
        .await?
        .map(|client| Json(client.into()))
        .ok_or(AppError::NotFound)
}

/// Update a client
///
/// Changes a live client's name, abilities, allowed origins or limits; the
/// fields left out stay as they are. The same rules as a new client of its
/// kind: a publishable client keeps at least one origin and only the
/// storefront's abilities; a secret client has no origins and no per-IP
/// limit. The caller must hold whatever the client will hold, and whatever
/// it holds now, beyond the storefront's and the customers' abilities. The
/// client's keys hold the change at once, everywhere within a second; the
/// OAuth 2.0 access tokens whose scope the new abilities do not allow are
/// revoked. Recorded in the audit log; nothing is written when the answer is
/// not 200.
#[utoipa::path(patch, operation_id = "updateClient", path = "/api/v1/admin/clients/{id}", tag = "admin", request_body = ClientPatchInput,
    responses((status = 200, body = Client, description = "the client as it now is"),
        (status = 403, description = "the client holds, or would hold, an ability the caller does not, beyond the storefront's and the customers' (`insufficient_scope`, its `scope` naming it)"),
        (status = 404, description = "no such client, or a revoked one"),
        (status = 422, description = "a field is invalid, or not for the client's kind (`validation_failed`)")))]
pub async fn update(
    State(state): State<AppState>,
    caller: Principal,
    audit: Audit,
    Path(id): Path<String>,
    Json(input): Json<ClientPatchInput>,
) -> AppResult<Json<Client>> {
    let id = ClientId::parse(&id).ok_or(AppError::NotFound)?;
    // A client's kind never changes: the one read here is the one updated.
    let client = state
        .db
        .get_client(&id)
        .await?
        .filter(|client| client.revoked_at.is_none())
        .ok_or(AppError::NotFound)?;
    let change = ClientChange::parse(input, client.kind).map_err(AppError::Validation)?;
    // Editing a client is granting it what it will hold, and needs
    // holding what it holds (contract §13).
    let check = |current: &crate::store::clients::Client| -> AppResult<()> {
        check_grant(caller.abilities(), &current.abilities)?;
        match &change.abilities {
            Some(abilities) => check_grant(caller.abilities(), abilities),
            None => Ok(()),
        }
    };
    let updated = match state.db.update_client(&id, &change, &audit, check).await {
        Ok(Some(updated)) => updated,
        Ok(None) => return Err(AppError::NotFound),
        Err(UpdateClientError::Refused(error)) => return Err(error),
        Err(UpdateClientError::Db(error)) => return Err(error.into()),
    };
    if change.allowed_origins.is_some() {
        state.clients_changed().await;
    }
    Ok(Json(updated.into()))
}

/// `POST /admin/clients/{id}/keys`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateInput {
    #[serde(default)]
    #[schema(schema_with = grace_schema)]
    pub previous_key_expires_in_seconds: i64,
}

fn grace_schema() -> utoipa::openapi::Object {
    crate::domain::schema::field(
        crate::domain::schema::integer(0, MAX_GRACE_SECONDS, false)
            .description(Some(
                "How long the older keys keep working; default 0 (they stop now).",
            ))
            .examples([3600]),
    )
}

/// Longest grace period for a rotated-out key: 30 days.
const MAX_GRACE_SECONDS: i64 = 30 * 24 * 3600;

// No `Debug`: it holds a secret shown once, which must never reach a log.
#[derive(Serialize, ToSchema)]
pub struct RotatedKey {
    /// The new key, shown once.
    pub key: String,
    #[serde(flatten)]
    pub record: ClientKey,
}

/// Rotate a client's key
///
/// Issues a new key for the client, shown once; the keys it had stop working
/// at once or after a grace period. Recorded in the audit log.
#[utoipa::path(post, operation_id = "rotateClientKey", path = "/api/v1/admin/clients/{id}/keys", tag = "admin",
    request_body(content = Option<RotateInput>, description = "Optional: no body means the defaults"),
    responses((status = 201, body = RotatedKey),
        (status = 403, description = "the client holds an ability the caller does not, beyond the storefront's and the customers' (`insufficient_scope`)")))]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Principal,
    audit: Audit,
    Path(id): Path<String>,
    JsonOrEmpty(input): JsonOrEmpty<RotateInput>,
) -> AppResult<(StatusCode, Json<RotatedKey>)> {
    let grace = input.previous_key_expires_in_seconds;
    if !(0..=MAX_GRACE_SECONDS).contains(&grace) {
        return Err(AppError::validation(
            "previous_key_expires_in_seconds",
            format!("must be from 0 to {MAX_GRACE_SECONDS}"),
        ));
    }
    let id = ClientId::parse(&id).ok_or(AppError::NotFound)?;
    let client = state
        .db
        .get_client(&id)
        .await?
        .filter(|c| c.revoked_at.is_none())
        .ok_or(AppError::NotFound)?;
    // A new key of the client is all it holds.
    check_grant(caller.abilities(), &client.abilities)?;
    let key = TOKENS.generate(client.kind.token_kind());
    let record = state
        .db
        .rotate_client_key(&id, &key, time::Duration::seconds(grace), &audit)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok((
        StatusCode::CREATED,
        Json(RotatedKey {
            key: key.expose_secret().to_owned(),
            record: record.into(),
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RevokeQuery {
    /// Also revoke every user token issued through this client.
    #[serde(default)]
    revoke_user_tokens: bool,
}

/// Revoke a client
///
/// Revokes the client and its keys, and with `revoke_user_tokens=true` the
/// user tokens issued through it too. The client stays readable, with
/// `revoked_at` set, for the audit trail.
#[utoipa::path(delete, operation_id = "revokeClient", path = "/api/v1/admin/clients/{id}", tag = "admin", params(RevokeQuery),
    responses((status = 204)))]
pub async fn revoke(
    State(state): State<AppState>,
    audit: Audit,
    Path(id): Path<String>,
    Query(query): Query<RevokeQuery>,
) -> AppResult<StatusCode> {
    let id = ClientId::parse(&id).ok_or(AppError::NotFound)?;
    if state
        .db
        .revoke_client(&id, query.revoke_user_tokens, &audit)
        .await?
    {
        state.clients_changed().await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound)
    }
}
