//! A customer's own tokens: list, create, revoke one, revoke all.

use crate::identity::TOKENS;
use axum::{
    Extension,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use jeton_auth::{AbilitySet, TokenKind, User, session::SessionCookie};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::{
    error::{AppError, AppResult},
    extract::{Json, Query},
    state::AppState,
};
use crate::{
    domain::{
        ids::{TokenId, UserIds},
        token_request::{NewTokenInput, Parent, TokenRequest},
    },
    pagination::{Page, PageRequest},
    responses::UserToken,
    store::{
        audit::Audit,
        user_tokens::{NewUserToken, Revoke},
    },
};

/// A newly issued user token. The only time the token is ever shown.
// No `Debug`: it holds a secret shown once, which must never reach a log.
#[derive(Serialize, ToSchema)]
pub struct IssuedToken {
    /// Send as `Authorization: Bearer <token>`. Shown once.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    #[schema(value_type = String)]
    pub token_id: TokenId,
    #[schema(value_type = Vec<String>)]
    pub abilities: AbilitySet,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// Issues and stores a user token; used by login and by `POST /me/tokens`.
pub(super) async fn issue_user_token(
    state: &AppState,
    new: NewUserToken<'_>,
    audit: &Audit,
) -> AppResult<IssuedToken> {
    let token = TOKENS.generate(TokenKind::User);
    let record = state.db.insert_user_token(&token, new, audit).await?;
    Ok(IssuedToken {
        token: token.expose_secret().to_owned(),
        token_type: "Bearer",
        token_id: record.id,
        abilities: record.abilities,
        expires_at: record.expires_at,
    })
}

/// A token in the owner's listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    #[serde(flatten)]
    pub token: UserToken,
    /// Is this the token making the request?
    pub current: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// 1 to 100, default 20.
    limit: Option<i64>,
    cursor: Option<String>,
}

/// List my tokens
///
/// The calling customer's live tokens (logins, cookie sessions and personal
/// tokens), newest first, each with its last four characters only; `current`
/// marks the one making the request. Changes nothing.
#[utoipa::path(get, operation_id = "listMyTokens", path = "/api/v1/me/tokens", tag = "tokens", params(TokenQuery),
    security(("bearer" = ["tokens:manage"])),
    responses((status = 200, body = Page<TokenView>, description = "the caller's live tokens, newest first")))]
pub async fn list(
    State(state): State<AppState>,
    User(user): User,
    Query(query): Query<TokenQuery>,
) -> AppResult<Json<Page<TokenView>>> {
    let page =
        PageRequest::parse(query.limit, query.cursor.as_deref()).map_err(AppError::Validation)?;
    let user = UserIds::from(&*user);
    let tokens = state
        .db
        .list_user_tokens(&user.customer, page.after.as_deref(), page.fetch_limit())
        .await?;
    let data = tokens
        .into_iter()
        .map(|token| TokenView {
            current: token.id == user.token,
            token: token.into(),
        })
        .collect();
    Ok(Json(
        page.page(data, |view: &TokenView| view.token.id.as_str()),
    ))
}

/// Create a personal token
///
/// Issues a personal token for the calling customer, with a subset of the
/// calling token's abilities and a lifetime that does not outlive it; the
/// answer is the only time the token is shown. A customer holds a bounded
/// number of live personal tokens. A cookie session cannot mint a token
/// (403).
#[utoipa::path(post, operation_id = "createMyToken", path = "/api/v1/me/tokens", tag = "tokens", request_body = NewTokenInput,
    security(("bearer" = ["tokens:manage"])),
    responses((status = 201, body = IssuedToken),
        (status = 403, description = "the request is authenticated by a session cookie (`session_cannot_mint`): a cookie session never mints a token that leaves the cookie"),
        (status = 422, description = "invalid fields, a lifetime that outlives the calling token (`validation_failed`); too many live personal tokens (`token_limit_reached`)")))]
pub async fn create(
    State(state): State<AppState>,
    User(user): User,
    by_cookie: Option<Extension<SessionCookie>>,
    audit: Audit,
    Json(input): Json<NewTokenInput>,
) -> AppResult<(StatusCode, Json<IssuedToken>)> {
    // A page's script (an injected one too) may use the session, but must
    // never get a token it could carry elsewhere.
    if by_cookie.is_some() {
        return Err(AppError::Forbidden {
            code: "session_cannot_mint",
            detail:
                "a cookie session cannot create tokens; sign in with a bearer token to make one"
                    .to_owned(),
        });
    }
    let parent = Parent {
        abilities: &user.abilities,
        expires_at: user.expires_at,
    };
    let request = TokenRequest::parse(&input, parent, state.db.now(), state.config.user_token_ttl)
        .map_err(AppError::Validation)?;
    let ids = UserIds::from(&*user);
    let new = NewUserToken {
        customer_id: &ids.customer,
        client_id: ids.client.as_ref(),
        name: &request.name,
        abilities: &request.abilities,
        expires_at: request.expires_at,
    };
    let token = TOKENS.generate(TokenKind::User);
    let cap = state.config.personal_token_cap;
    let record = state
        .db
        .insert_personal_token(&token, new, &ids.token, cap, &audit)
        .await?
        .ok_or_else(|| AppError::Unprocessable {
            code: "token_limit_reached",
            detail: format!(
                "a customer may hold at most {cap} live tokens made through this endpoint; revoke one first"
            ),
        })?;
    let issued = IssuedToken {
        token: token.expose_secret().to_owned(),
        token_type: "Bearer",
        token_id: record.id,
        abilities: record.abilities,
        expires_at: record.expires_at,
    };
    Ok((StatusCode::CREATED, Json(issued)))
}

/// Revoke one of my tokens
///
/// Revokes one of the calling customer's tokens, by id (the calling token
/// included: then a cookie session's cookies are cleared). Another customer's
/// token id is 404.
#[utoipa::path(delete, operation_id = "revokeMyToken", path = "/api/v1/me/tokens/{id}", tag = "tokens",
    security(("bearer" = ["tokens:manage"])),
    responses((status = 204, description = "the token is revoked; when it is the cookie session making the request, its cookies are cleared"), (status = 404)))]
pub async fn revoke(
    State(state): State<AppState>,
    User(user): User,
    audit: Audit,
    by_cookie: Option<Extension<SessionCookie>>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let id = TokenId::parse(&id).ok_or(AppError::NotFound)?;
    let owner = UserIds::from(&*user).customer;
    let which = Revoke::One {
        token_id: &id,
        owner: Some(&owner),
    };
    if state.db.revoke_user_tokens(which, &audit).await? != 1 {
        return Err(AppError::NotFound);
    }
    let mut headers = HeaderMap::new();
    if id == UserIds::from(&*user).token {
        clear_session(&state, by_cookie, &mut headers);
    }
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}

/// A request authenticated by the session cookie that revokes its own
/// session clears the cookies too, as logout does.
fn clear_session(
    state: &AppState,
    by_cookie: Option<Extension<SessionCookie>>,
    headers: &mut HeaderMap,
) {
    if let (Some(_), Some(sessions)) = (by_cookie, state.gate.cookie_sessions()) {
        sessions.clear(headers);
    }
}

/// Revoke all my tokens
///
/// Revokes every token of the calling customer, the calling token included
/// (log out everywhere); a cookie session's cookies are cleared.
#[utoipa::path(delete, operation_id = "revokeAllMyTokens", path = "/api/v1/me/tokens", tag = "tokens",
    security(("bearer" = ["tokens:manage"])),
    responses((status = 204, description = "every token of the caller is revoked, this one included; a cookie session's cookies are cleared")))]
pub async fn revoke_all(
    State(state): State<AppState>,
    User(user): User,
    audit: Audit,
    by_cookie: Option<Extension<SessionCookie>>,
) -> AppResult<Response> {
    let customer = UserIds::from(&*user).customer;
    let which = Revoke::AllOf {
        customer_id: &customer,
    };
    state.db.revoke_user_tokens(which, &audit).await?;
    let mut headers = HeaderMap::new();
    clear_session(&state, by_cookie, &mut headers);
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}
