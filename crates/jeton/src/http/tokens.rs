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
        Problems, abilities,
        ids::{TokenId, UserIds},
        schema,
        text::bounded,
    },
    pagination::{Page, PageRequest},
    responses::UserToken,
    store::{
        audit::Audit,
        user_tokens::{NewUserToken, Revoke},
    },
};

/// A newly issued user token. The only time the token is ever shown.
#[derive(Debug, Serialize, ToSchema)]
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

/// Longest lifetime a personal token may ask for: ten years.
const MAX_EXPIRES_IN_SECONDS: i64 = 10 * 365 * 24 * 3600;

fn explicit_null<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(deserializer).map(Some)
}

/// Longest name of a personal token.
const NAME_MAX: usize = 100;

fn name_schema() -> utoipa::openapi::Object {
    schema::field(schema::bounded_text(1, NAME_MAX, false).examples(["deploy script"]))
}

fn abilities_schema() -> utoipa::openapi::Array {
    let mut list = abilities::list_schema(TokenKind::User, true);
    list.description = Some(
        "A subset of the calling token's abilities; omitted or `null`: all of them.".to_owned(),
    );
    list
}

fn expires_in_schema() -> utoipa::openapi::Object {
    schema::field(schema::integer(1, MAX_EXPIRES_IN_SECONDS, true).description(Some(
        "Omitted: the server's default lifetime (30 days unless configured), cut to the calling \
         token's expiry. `null`: the token does not expire, which only a token that does not \
         expire may ask for. A lifetime that would outlive the calling token is 422: a token \
         never makes one that outlives it.",
    )))
}

/// `POST /me/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "deploy script", "abilities": ["orders:read"], "expires_in_seconds": 86400}))]
pub struct NewTokenInput {
    #[schema(schema_with = name_schema)]
    pub name: String,
    #[schema(schema_with = abilities_schema)]
    pub abilities: Option<Vec<String>>,
    #[serde(default, deserialize_with = "explicit_null")]
    #[schema(schema_with = expires_in_schema)]
    pub expires_in_seconds: Option<Option<i64>>,
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
    let mut problems = Problems::default();
    let name = problems.check("name", bounded(&input.name, 1, NAME_MAX));
    let abilities = match &input.abilities {
        None => Some(user.abilities.clone()),
        Some(requested) => problems.check(
            "abilities",
            abilities::parse_for_kind(requested, TokenKind::User).and_then(|wanted| {
                if wanted.is_subset_of(&user.abilities) {
                    Ok(wanted)
                } else {
                    Err(
                        "must be a subset of the abilities of the token making the request"
                            .to_owned(),
                    )
                }
            }),
        ),
    };
    let now = state.db.now();
    // A token never makes one that outlives it: a stolen short-lived token
    // must not become a lasting one.
    let parent_expires = user.expires_at;
    let outlives = "must not outlive the token making the request";
    let expires_at = match input.expires_in_seconds {
        None => Some(Some(match parent_expires {
            Some(parent) => parent.min(now + state.config.user_token_ttl),
            None => now + state.config.user_token_ttl,
        })),
        Some(None) if parent_expires.is_some() => {
            problems.add(
                "expires_in_seconds",
                format!("{outlives}, which expires: give a lifetime in seconds"),
            );
            None
        }
        Some(None) => Some(None),
        Some(Some(seconds)) if (1..=MAX_EXPIRES_IN_SECONDS).contains(&seconds) => {
            let at = now + time::Duration::seconds(seconds);
            match parent_expires {
                Some(parent) if at > parent => {
                    let left = (parent - now).whole_seconds().max(0);
                    problems.add(
                        "expires_in_seconds",
                        format!("{outlives}, which expires in {left} seconds"),
                    );
                    None
                }
                _ => Some(Some(at)),
            }
        }
        Some(Some(_)) => {
            problems.add(
                "expires_in_seconds",
                format!("must be from 1 to {MAX_EXPIRES_IN_SECONDS}, or null"),
            );
            None
        }
    };
    let (name, abilities, expires_at) = problems
        .finish(|| {
            (
                name.expect("checked"),
                abilities.expect("checked"),
                expires_at.expect("checked"),
            )
        })
        .map_err(AppError::Validation)?;
    let ids = UserIds::from(&*user);
    let new = NewUserToken {
        customer_id: &ids.customer,
        client_id: ids.client.as_ref(),
        name: &name,
        abilities: &abilities,
        expires_at,
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
