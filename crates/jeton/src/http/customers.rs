//! Customers: registration and login (through a client key), logout and the
//! profile (with a user token).

use axum::{Extension, extract::State, http::StatusCode};
use jeton_auth::{
    AuthError,
    axum::{Client, User},
    client_ip::ClientIp,
};

use super::{
    error::{AppError, AppResult},
    extract::Json,
    state::AppState,
    tokens::{IssuedToken, issue_user_token},
};
use crate::{
    api::Customer,
    domain::{
        abilities,
        customer::{Login, LoginInput, NewCustomer, NewCustomerInput},
        ids::{ClientIds, UserIds},
    },
    hashing,
    store::{
        audit::{Audit, Event},
        customers::CreateCustomerError,
        user_tokens::{NewUserToken, Revoke},
    },
    throttle::{RetryAfter, Throttled},
};

/// 429 with `Retry-After` for a throttled login or registration.
fn throttled(refused: Throttled) -> AppError {
    let Throttled {
        limit,
        retry_after: RetryAfter(retry_after_seconds),
    } = refused;
    AppError::Auth(AuthError::RateLimited {
        limit,
        retry_after_seconds,
    })
}

#[utoipa::path(post, path = "/api/v1/customers", tag = "customers", request_body = NewCustomerInput,
    security(("bearer" = ["customers:create"])),
    responses((status = 201, body = Customer), (status = 409, description = "`email_taken`"), (status = 422)))]
pub async fn register(
    State(state): State<AppState>,
    client_ip: Option<Extension<ClientIp>>,
    Json(input): Json<NewCustomerInput>,
) -> AppResult<(StatusCode, Json<Customer>)> {
    let new = NewCustomer::try_from(input).map_err(AppError::Validation)?;
    let ip = client_ip.map(|Extension(ClientIp(ip))| ip);
    state.throttle.check_registration(ip).map_err(throttled)?;
    let hash = hashing::hash(new.password)
        .await
        .map_err(|_| AppError::Unavailable)?;
    match state.db.create_customer(&new.email, &new.name, &hash).await {
        Ok(customer) => Ok((StatusCode::CREATED, Json(customer.into()))),
        // The one place an email's existence shows; registration cannot work
        // otherwise. Login never reveals it.
        Err(CreateCustomerError::EmailTaken) => Err(AppError::conflict(
            "email_taken",
            "an account with this email exists",
        )),
        Err(CreateCustomerError::Db(error)) => Err(error.into()),
    }
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "customers", request_body = LoginInput,
    security(("bearer" = ["auth:login"])),
    responses((status = 201, body = IssuedToken), (status = 400, description = "`invalid_credentials`")))]
pub async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    audit: Audit,
    Json(input): Json<LoginInput>,
) -> AppResult<(StatusCode, Json<IssuedToken>)> {
    let login = Login::try_from(input).map_err(AppError::Validation)?;
    // Throttled before any lookup or hashing: guessing is slowed to a crawl,
    // and a throttled unknown email looks like a throttled known one.
    state
        .throttle
        .check_login(&login.email, audit.client_ip)
        .map_err(throttled)?;
    let client = ClientIds::from(&*client);
    let found = state.db.find_customer_for_login(&login.email).await?;
    let (customer_id, stored_hash) = match found {
        Some(record) => (Some(record.customer.id), Some(record.password_hash)),
        None => (None, None),
    };
    // Unknown email: verified against a dummy hash, so it fails in the same
    // time and with the same answer as a wrong password.
    let verified = hashing::verify(login.password, stored_hash)
        .await
        .map_err(|_| AppError::Unavailable)?;
    let Some(customer_id) = customer_id.clone().filter(|_| verified) else {
        state.throttle.login_failed(&login.email, audit.client_ip);
        let event = Event {
            action: "login.failed",
            client_id: Some(&client.client),
            customer_id: customer_id.as_ref(),
            ..Event::default()
        };
        state.db.record_event(&audit, event).await?;
        return Err(AppError::InvalidCredentials);
    };
    state.throttle.login_succeeded(&login.email);
    let new = NewUserToken {
        customer_id: &customer_id,
        client_id: Some(&client.client),
        name: &login.device_name,
        abilities: &abilities::user_ceiling(),
        expires_at: Some(time::OffsetDateTime::now_utc() + state.config.user_token_ttl),
    };
    let issued = issue_user_token(&state, new, &audit).await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "customers",
    security(("bearer" = [])),
    responses((status = 204, description = "the token used is revoked")))]
pub async fn logout(
    State(state): State<AppState>,
    User(user): User,
    audit: Audit,
) -> AppResult<StatusCode> {
    let user = UserIds::from(&*user);
    let which = Revoke::One {
        token_id: &user.token,
        owner: Some(&user.customer),
    };
    state.db.revoke_user_tokens(which, &audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/me", tag = "customers",
    security(("bearer" = ["profile:read"])),
    responses((status = 200, body = Customer)))]
pub async fn me(State(state): State<AppState>, User(user): User) -> AppResult<Json<Customer>> {
    // A token whose customer is gone cannot exist (foreign key), so a miss
    // here is treated like any missing thing.
    state
        .db
        .get_customer(&UserIds::from(&*user).customer)
        .await?
        .map(|customer| Json(customer.into()))
        .ok_or(AppError::NotFound)
}
