//! Guest tokens (API.md §16): a storefront's visitor obtains a token of
//! its own through the client's publishable key.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode, header::ORIGIN},
};
use jeton_auth::{AuthError, Client, origin::parse_origin};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{
    customers::throttled,
    error::{AppError, AppResult},
    extract::{Json, JsonOrEmpty},
    state::AppState,
};
use crate::{domain::ids::ClientIds, store::audit::Audit};

/// `POST /guest`: nothing to say (yet); an empty body is the same.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGuestInput {}

/// A guest token, shown once.
// No `Debug`: it holds a secret shown once, which must never reach a log.
#[derive(Serialize, ToSchema)]
pub struct IssuedGuest {
    /// `jt_gt_…`: send as `Authorization: Bearer <token>`, from the origin
    /// it was obtained from (or, obtained with no `Origin`, from no page).
    pub token: String,
    /// The absolute end (30 days); it also ends after 14 days unused.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Obtain a guest token
///
/// Issues a token of the visitor's own, for a publishable key holding
/// `guest:create`, from one of its client's allowed origins or with no
/// `Origin` (an app). The token is bound to the client (a key's rotation
/// keeps it) and to the origin it came from: from any other it is 403
/// `origin_not_allowed`. It holds `products:read` and `cart:write`, its
/// requests are limited per token (`--guest-rate-limit`), not by the key's
/// limits, and issuance is limited per client IP
/// (`--guest-issuance-per-ip`, 429 beyond). Ask for one when the visitor
/// first needs it (the first addition to a cart), not on every visit.
#[utoipa::path(post, operation_id = "createGuest", path = "/api/v1/guest", tag = "guests",
    request_body(content = Option<NewGuestInput>, description = "`{}`, or no body"),
    security(("bearer" = ["guest:create"])),
    responses((status = 201, body = IssuedGuest)))]
pub async fn issue(
    State(state): State<AppState>,
    Client(client): Client,
    audit: Audit,
    headers: HeaderMap,
    JsonOrEmpty(NewGuestInput {}): JsonOrEmpty<NewGuestInput>,
) -> AppResult<(StatusCode, Json<IssuedGuest>)> {
    // The gate let the key in from this origin (one of its client's, or
    // none); the guest is bound to it. One that is no page's origin
    // (`null`, from a client that allows any) has no page to bind to.
    let origin = headers
        .get(ORIGIN)
        .map(|origin| {
            origin
                .to_str()
                .ok()
                .and_then(|text| parse_origin(text).ok())
                .filter(|parsed| parsed != "*")
                .ok_or(AppError::Auth(AuthError::OriginNotAllowed))
        })
        .transpose()?;
    state
        .throttle
        .check_guest_issuance(audit.client_ip)
        .await
        .map_err(throttled)?;
    let ClientIds { client, .. } = ClientIds::from(&*client);
    let expires_at = state.db.now() + state.config.guest_token_ttl;
    let issued = state
        .db
        .issue_guest(
            &client,
            origin.as_deref(),
            expires_at,
            state.config.guest_idle_timeout,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedGuest {
            token: issued.token.expose_secret().to_owned(),
            expires_at: issued.expires_at,
        }),
    ))
}
