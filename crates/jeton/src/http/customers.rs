//! Customers: registration and login (through a client key), logout and the
//! profile (with a user token).

use crate::identity::TOKENS;
use axum::{
    Extension,
    extract::State,
    http::{HeaderMap, StatusCode, header::ORIGIN},
    response::{IntoResponse, Response},
};
use jeton_auth::{
    AuthError, Client, ClientPrincipal, PlainToken, Principal, TokenKind, User,
    client_ip::ClientIp, session::SessionCookie,
};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{
    error::{AppError, AppResult},
    extract::{Json, JsonBytes},
    state::AppState,
    tokens::{IssuedToken, issue_user_token},
};
use crate::{
    domain::{
        abilities,
        customer::{Login, LoginInput, NewCustomer, NewCustomerInput, SessionMode},
        ids::{ClientId, ClientIds, CustomerId, TokenId, UserIds},
    },
    hashing,
    responses::Customer,
    store::{
        audit::{Audit, Event},
        customers::CreateCustomerError,
        user_tokens::{NewUserToken, Revoke},
    },
    throttle::{RetryAfter, Throttled},
};

/// 429 with `Retry-After` for a throttled login or registration.
pub(crate) fn throttled(refused: Throttled) -> AppError {
    let Throttled {
        limit,
        retry_after: RetryAfter(retry_after_seconds),
    } = refused;
    AppError::Auth(AuthError::RateLimited {
        limit,
        retry_after_seconds,
    })
}

/// Register a customer
///
/// Creates a customer account with an email (unique), a password and a name.
/// It does not log in: follow with `logIn`. Registrations are throttled per
/// client IP.
#[utoipa::path(post, operation_id = "registerCustomer", path = "/api/v1/customers", tag = "customers", request_body = NewCustomerInput,
    security(("bearer" = ["customers:create"])),
    responses((status = 201, body = Customer), (status = 409, description = "`email_taken`"), (status = 422)))]
pub async fn register(
    State(state): State<AppState>,
    Client(client): Client,
    client_ip: Option<Extension<ClientIp>>,
    Json(input): Json<NewCustomerInput>,
) -> AppResult<(StatusCode, Json<Customer>)> {
    let new = NewCustomer::try_from(input).map_err(AppError::Validation)?;
    let ip = client_ip.map(|Extension(ClientIp(ip))| ip);
    state
        .throttle
        .check_registration(ip)
        .await
        .map_err(throttled)?;
    let hash = hashing::hash(new.password)
        .await
        .map_err(|_| AppError::Unavailable)?;
    match state.db.create_customer(&new.email, &new.name, &hash).await {
        Ok(customer) => {
            if let Some(guest_token) = &new.guest_token {
                let client = ClientIds::from(&*client).client;
                merge_guest_cart(&state, guest_token, &client, &customer.id).await;
            }
            Ok((StatusCode::CREATED, Json(customer.into())))
        }
        // The one place an email's existence shows; registration cannot work
        // otherwise. Login never reveals it.
        Err(CreateCustomerError::EmailTaken) => Err(AppError::conflict(
            "email_taken",
            "an account with this email exists",
        )),
        Err(CreateCustomerError::Db(error)) => Err(error.into()),
    }
}

/// Moves a guest's cart into the customer's who just logged in or
/// registered (API.md §16). A `guest_token` that merges nothing, or a merge
/// the database could not make, leaves the login or registration as it is:
/// the cart is a convenience, the account is what was asked for.
async fn merge_guest_cart(
    state: &AppState,
    guest_token: &str,
    client: &ClientId,
    customer: &CustomerId,
) {
    let merged = state
        .db
        .merge_guest_cart(
            guest_token,
            client,
            customer,
            state.config.max_units_per_line,
        )
        .await;
    if let Err(error) = merged {
        tracing::warn!(%error, "a guest's cart could not be merged at login; the guest keeps it");
    }
}

/// A cookie session, as a login with `"session": "cookie"` answers: the
/// token itself is only in the `HttpOnly` cookie.
// No `Debug`: it holds a secret shown once, which must never reach a log.
#[derive(Serialize, ToSchema)]
pub struct CookieSession {
    pub customer: Customer,
    #[schema(value_type = String)]
    pub token_id: TokenId,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Also in the `jeton_csrf` cookie: sent back as `X-CSRF-Token` on
    /// `POST`, `PUT`, `PATCH` and `DELETE`.
    pub csrf_token: String,
}

/// A cookie session is only for pages on one of the key's client's own
/// origins, listed exactly (`*` does not count): the only pages the
/// session will then work from, and to which the API lets the browser send
/// cookies.
fn check_cookie_origin(client: &ClientPrincipal, headers: &HeaderMap) -> Result<(), AppError> {
    let origin = headers.get(ORIGIN).map(|origin| origin.as_bytes());
    let listed = origin.is_some_and(|origin| {
        client
            .allowed_origins
            .iter()
            .any(|allowed| allowed != "*" && allowed.as_bytes() == origin)
    });
    if listed {
        Ok(())
    } else {
        Err(AuthError::OriginNotAllowed.into())
    }
}

/// Log a customer in
///
/// Checks the email and password and issues a user token through the calling
/// key's client. By default (`"session": "token"`) the answer is an
/// `IssuedToken`, the only time the token is shown. With `"session":
/// "cookie"` (the shop's own storefront, from one of its client's origins
/// listed exactly) the token goes into the `HttpOnly` cookie `jeton_session`
/// and the answer is a `CookieSession`, with the CSRF token to send back as
/// `X-CSRF-Token`. A wrong email or password is one answer for both, and
/// failed logins are throttled.
#[utoipa::path(post, operation_id = "logIn", path = "/api/v1/auth/login", tag = "customers", request_body = LoginInput,
    security(("bearer" = ["auth:login"])),
    responses((status = 201, body = IssuedToken, description = "a user token; with `\"session\": \"cookie\"`, a `CookieSession` instead, and the cookies `jeton_session` and `jeton_csrf`")))]
pub async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    audit: Audit,
    headers: HeaderMap,
    Json(input): Json<LoginInput>,
) -> AppResult<Response> {
    let login = Login::try_from(input).map_err(AppError::Validation)?;
    if login.session == SessionMode::Cookie {
        check_cookie_origin(&client, &headers)?;
    }
    // Throttled before any lookup or hashing: guessing is slowed to a crawl,
    // and a throttled unknown email looks like a throttled known one.
    state
        .throttle
        .check_login(&login.email, audit.client_ip)
        .await
        .map_err(throttled)?;
    let client = ClientIds::from(&*client);
    let found = state.db.find_customer_for_login(&login.email).await?;
    let (customer, stored_hash) = match found {
        Some(record) => (Some(record.customer), Some(record.password_hash)),
        None => (None, None),
    };
    let customer_id = customer.as_ref().map(|customer| customer.id.clone());
    // Unknown email: verified against a dummy hash, so it fails in the same
    // time and with the same answer as a wrong password.
    let verified = hashing::verify(login.password, stored_hash)
        .await
        .map_err(|_| AppError::Unavailable)?;
    let Some(customer_id) = customer_id.clone().filter(|_| verified) else {
        state
            .throttle
            .login_failed(&login.email, audit.client_ip)
            .await;
        let event = Event {
            action: "login.failed",
            client_id: Some(&client.client),
            customer_id: customer_id.as_ref(),
            ..Event::default()
        };
        state.db.record_event(&audit, event).await?;
        return Err(AppError::InvalidCredentials);
    };
    state
        .throttle
        .login_succeeded(&login.email, audit.client_ip)
        .await;
    if let Some(guest_token) = &login.guest_token {
        merge_guest_cart(&state, guest_token, &client.client, &customer_id).await;
    }
    let new = NewUserToken {
        customer_id: &customer_id,
        client_id: Some(&client.client),
        name: &login.device_name,
        abilities: &abilities::user_ceiling(),
        expires_at: Some(state.db.now() + state.config.user_token_ttl),
    };
    if login.session == SessionMode::Token {
        let issued = issue_user_token(&state, new, &audit).await?;
        return Ok((StatusCode::CREATED, Json(issued)).into_response());
    }
    let sessions = state
        .gate
        .cookie_sessions()
        .expect("the app has cookie sessions");
    let token = TOKENS.generate(TokenKind::User);
    let record = state.db.insert_user_token(&token, new, &audit).await?;
    // The browser's cookie now names the new session: the one it held, if
    // still live, would be left behind in the customer's token list.
    if let Some(replaced) = sessions.session_token(state.gate.identity().tokens(), &headers) {
        revoke_replaced(&state, &replaced, &client.client, &audit).await?;
    }
    let mut cookies = HeaderMap::new();
    // The token's lifetime: the cookies go when it does.
    let max_age = record.expires_at.map(|_| state.config.user_token_ttl);
    let csrf_token = sessions.issue(&mut cookies, &token, max_age);
    let body = CookieSession {
        customer: customer.expect("a verified login has its customer").into(),
        token_id: record.id,
        expires_at: record.expires_at,
        csrf_token,
    };
    Ok((StatusCode::CREATED, cookies, Json(body)).into_response())
}

/// Revokes the session a cookie login through `client` replaces, whoever's
/// it is: holding the cookie is what a logout needs too. Only a session of
/// the same client: a page of another client on the same site (which the
/// browser sends the cookie from too) cannot log the shop's customer out.
/// A cookie that names no live user token has nothing left to revoke.
async fn revoke_replaced(
    state: &AppState,
    replaced: &PlainToken,
    client: &ClientId,
    audit: &Audit,
) -> AppResult<()> {
    let Ok(Principal::User(user)) = state.gate.verifier().verify(replaced).await else {
        return Ok(());
    };
    if user.client_id.as_deref() != Some(client.as_str()) {
        return Ok(());
    }
    let user = UserIds::from(&*user);
    let which = Revoke::One {
        token_id: &user.token,
        owner: Some(&user.customer),
    };
    state.db.revoke_user_tokens(which, audit).await?;
    Ok(())
}

/// Log out
///
/// Revokes the token making the request (whatever its abilities); a cookie
/// session's cookies are cleared. The customer's other tokens stay live.
#[utoipa::path(post, operation_id = "logOut", path = "/api/v1/auth/logout", tag = "customers",
    security(("bearer" = [])),
    responses((status = 204, description = "the token used is revoked; a cookie session's cookies are cleared")))]
pub async fn logout(
    State(state): State<AppState>,
    User(user): User,
    audit: Audit,
    by_cookie: Option<Extension<SessionCookie>>,
) -> AppResult<Response> {
    let user = UserIds::from(&*user);
    let which = Revoke::One {
        token_id: &user.token,
        owner: Some(&user.customer),
    };
    state.db.revoke_user_tokens(which, &audit).await?;
    let mut headers = HeaderMap::new();
    if let (Some(_), Some(sessions)) = (by_cookie, state.gate.cookie_sessions()) {
        sessions.clear(&mut headers);
    }
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}

/// Get my profile
///
/// The customer the calling user token belongs to. Changes nothing.
#[utoipa::path(get, operation_id = "getMyProfile", path = "/api/v1/me", tag = "customers",
    security(("bearer" = ["profile:read"])),
    responses((status = 200, body = Customer)))]
pub async fn me(State(state): State<AppState>, User(user): User) -> AppResult<JsonBytes> {
    // A token whose customer is gone cannot exist (foreign key), so a miss
    // here is treated like any missing thing.
    state
        .customers
        .profile(&state.db, &UserIds::from(&*user).customer)
        .await?
        .map(JsonBytes)
        .ok_or(AppError::NotFound)
}
