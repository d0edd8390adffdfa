//! Staff members' sign-in and sessions (API.md §13): `POST /staff/login`
//! (outside the route table: no credential yet), then, with the session
//! cookie, `GET /staff/me`, `POST /staff/logout` and
//! `POST /staff/password`.

use axum::{
    Extension,
    extract::State,
    http::{HeaderMap, HeaderName, StatusCode, header::ORIGIN},
    response::{IntoResponse, Response},
};
use jeton_auth::{AuthError, Principal, Staff, TokenKind, client_ip::ClientIp};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{
    customers::throttled,
    error::{AppError, AppResult},
    extract::Json,
    state::AppState,
};
use crate::{
    domain::{
        Problems,
        customer::{EMAIL_MAX, login_email},
        password::Password,
        staff::{ABSOLUTE_LIFETIME, Role},
        text::bounded,
    },
    hashing,
    store::{
        audit::{Actor, Audit, Event},
        staff::{StaffKey, StaffRecord},
    },
};

/// Where the sign-in route is served (not a row of the route table: it
/// takes no credential).
pub const LOGIN_PATH: &str = "/api/v1/staff/login";

/// A staff member as the API shows them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StaffMember {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    /// Whether the member signs in with a second factor.
    pub mfa: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
}

impl From<StaffRecord> for StaffMember {
    fn from(record: StaffRecord) -> StaffMember {
        StaffMember {
            role: record.role(),
            id: record.id,
            email: record.email,
            name: record.name,
            mfa: false,
            created_at: record.created_at,
            last_login_at: record.last_login_at,
            disabled_at: record.disabled_at,
        }
    }
}

/// A new console session: the session itself is only in the `HttpOnly`
/// cookie `jeton_staff`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffSession {
    pub staff: StaffMember,
    /// Also in the `jeton_staff_csrf` cookie (on `/console`): sent back as
    /// `X-CSRF-Token` on `POST`, `PUT`, `PATCH` and `DELETE`.
    pub csrf_token: String,
    /// When the session ends at the latest; unused for 30 minutes, it ends
    /// sooner.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// `POST /staff/login`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "owner@shop.example", "password": "correct horse"}))]
pub struct StaffLoginInput {
    #[schema(schema_with = crate::domain::customer::login_email_schema)]
    pub email: String,
    #[schema(schema_with = crate::domain::customer::login_password_schema)]
    pub password: String,
}

/// `POST /staff/password`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"current": "correct horse", "new": "battery staple"}))]
pub struct PasswordChangeInput {
    #[schema(schema_with = crate::domain::customer::login_password_schema)]
    pub current: String,
    #[schema(schema_with = crate::domain::customer::new_password_schema)]
    pub new: String,
}

const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// A sign-in from a page of another site is refused as a session's request
/// would be: a staff session is only ever made and used from the API's own
/// origin.
fn check_own_origin(state: &AppState, headers: &HeaderMap) -> AppResult<()> {
    let foreign = headers.get(ORIGIN).is_some_and(|origin| {
        !state
            .config
            .public_url
            .own_origins()
            .iter()
            .any(|own| own.as_bytes() == origin.as_bytes())
    });
    let cross_site = headers
        .get(SEC_FETCH_SITE)
        .is_some_and(|site| site.as_bytes() != b"same-origin");
    if foreign || cross_site {
        return Err(AuthError::SessionOriginNotAllowed.into());
    }
    Ok(())
}

/// The throttle's key of a staff member's email: apart from a customer's
/// with the same email.
fn throttle_key(email: &str) -> String {
    format!("staff:{email}")
}

/// Sign in to the console
///
/// Checks a staff member's email and password and starts a console
/// session: the session in the `HttpOnly` cookie `jeton_staff` (on
/// `/api/v1`), its CSRF token in the body and in the cookie
/// `jeton_staff_csrf` (on `/console`). A wrong password, an unknown email
/// and a disabled member are one answer, and failures are throttled per
/// email and address. Refused from another site's page.
#[utoipa::path(post, operation_id = "logStaffIn", path = "/api/v1/staff/login", tag = "staff",
    request_body = StaffLoginInput,
    responses(
        (status = 201, body = StaffSession, description = "signed in; the cookies `jeton_staff` and `jeton_staff_csrf` are set"),
        (status = 401, description = "`invalid_credentials`"),
        (status = 403, description = "`origin_not_allowed`: from a page of another origin"),
        (status = 422, description = "`validation_failed`"),
        (status = 429, description = "`rate_limited`: too many failed sign-ins")))]
pub async fn login(
    State(state): State<AppState>,
    client_ip: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    Json(input): Json<StaffLoginInput>,
) -> AppResult<Response> {
    let ip = client_ip.map(|Extension(ClientIp(ip))| ip);
    let mut problems = Problems::default();
    let email = problems.check(
        "email",
        bounded(&input.email, 1, EMAIL_MAX).map(|e| login_email(&e)),
    );
    let password = problems.check("password", Password::for_login(input.password));
    let (email, password) = problems
        .finish(|| (email.expect("checked"), password.expect("checked")))
        .map_err(AppError::Validation)?;
    check_own_origin(&state, &headers)?;
    let key = throttle_key(&email);
    state
        .throttle
        .check_login(&key, ip)
        .await
        .map_err(throttled)?;
    let found = state.db.find_staff_login(StaffKey::Email(&email)).await?;
    let (member, stored) = match found {
        Some(login) => (Some(login.member), Some(login.password_hash)),
        None => (None, None),
    };
    // Unknown email: checked against a dummy hash, in the same time.
    let verified = hashing::verify(password, stored)
        .await
        .map_err(|_| AppError::Unavailable)?;
    let active = member.filter(|member| verified && member.disabled_at.is_none());
    let signed_in = match &active {
        Some(member) => {
            let audit = Audit::staff(&member.id, ip);
            state.db.sign_in_staff(member, &audit).await?
        }
        None => None,
    };
    let Some((member, issued, expires_at)) = signed_in else {
        state.throttle.login_failed(&key, ip).await;
        let found = state.db.find_staff_login(StaffKey::Email(&email)).await?;
        let actor = match &found {
            Some(login) => Actor::Staff {
                staff_id: login.member.id.clone(),
            },
            None => Actor::UnknownStaff,
        };
        let audit = Audit {
            actor,
            client_ip: ip,
        };
        let event = Event {
            action: "staff.sign_in_failed",
            subject_id: found.as_ref().map(|login| login.member.id.as_str()),
            ..Event::default()
        };
        state.db.record_event(&audit, event).await?;
        return Err(AppError::StaffInvalidCredentials);
    };
    state.throttle.login_succeeded(&key, ip).await;
    let sessions = state
        .gate
        .cookie_sessions_for(TokenKind::Staff)
        .expect("the app has staff sessions");
    // The browser's cookie now names the new session: the one it held, if
    // still live, ends.
    if let Some(replaced) = sessions.session_token(state.gate.identity().tokens(), &headers)
        && let Ok(Principal::Staff(old)) = state.gate.verifier().verify(&replaced).await
    {
        let audit = Audit::staff(&old.user_id, ip);
        state.db.sign_out_staff(&old.token_id, &audit).await?;
    }
    let mut cookies = HeaderMap::new();
    let csrf_token = sessions.issue_session(
        &mut cookies,
        &issued.token,
        &issued.id,
        Some(ABSOLUTE_LIFETIME),
    );
    let body = StaffSession {
        staff: member.into(),
        csrf_token,
        expires_at,
    };
    Ok((StatusCode::CREATED, cookies, Json(body)).into_response())
}

/// The member of a session, as stored now.
async fn member_of(state: &AppState, staff_id: &str) -> AppResult<StaffRecord> {
    state
        .db
        .get_staff(staff_id)
        .await?
        .ok_or(AppError::Auth(AuthError::InvalidToken))
}

/// Get the signed-in staff member
///
/// The staff member the session cookie belongs to. Changes nothing.
#[utoipa::path(get, operation_id = "getStaffMe", path = "/api/v1/staff/me", tag = "staff",
    security(("staff_session" = [])),
    responses((status = 200, body = StaffMember)))]
pub async fn me(
    State(state): State<AppState>,
    Staff(member): Staff,
) -> AppResult<Json<StaffMember>> {
    Ok(Json(member_of(&state, &member.user_id).await?.into()))
}

/// Sign out of the console
///
/// Ends the session making the request and clears both cookies.
#[utoipa::path(post, operation_id = "logStaffOut", path = "/api/v1/staff/logout", tag = "staff",
    security(("staff_session" = [])),
    responses((status = 204, description = "the session is over; its cookies are cleared")))]
pub async fn logout(
    State(state): State<AppState>,
    Staff(member): Staff,
    audit: Audit,
) -> AppResult<Response> {
    state.db.sign_out_staff(&member.token_id, &audit).await?;
    let mut headers = HeaderMap::new();
    if let Some(sessions) = state.gate.cookie_sessions_for(TokenKind::Staff) {
        sessions.clear(&mut headers);
    }
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}

/// Change one's password
///
/// Checks the current password and sets a new one (8 to 256 characters).
/// Every other session of the member ends; this one stays. A wrong current
/// password is 401 `invalid_credentials`, throttled as sign-ins are.
#[utoipa::path(post, operation_id = "updateStaffPassword", path = "/api/v1/staff/password", tag = "staff",
    request_body = PasswordChangeInput,
    security(("staff_session" = [])),
    responses(
        (status = 204, description = "changed; the member's other sessions are over"),
        (status = 401, description = "`invalid_credentials`: the current password is wrong"),
        (status = 422, description = "`validation_failed`"),
        (status = 429, description = "`rate_limited`: too many wrong passwords")))]
pub async fn change_password(
    State(state): State<AppState>,
    Staff(session): Staff,
    audit: Audit,
    Json(input): Json<PasswordChangeInput>,
) -> AppResult<StatusCode> {
    let mut problems = Problems::default();
    let current = problems.check("current", Password::for_login(input.current));
    let new = problems.check("new", Password::parse(input.new));
    let (current, new) = problems
        .finish(|| (current.expect("checked"), new.expect("checked")))
        .map_err(AppError::Validation)?;
    let login = state
        .db
        .find_staff_login(StaffKey::Id(&session.user_id))
        .await?
        .ok_or(AppError::Auth(AuthError::InvalidToken))?;
    let key = throttle_key(&login.member.email);
    state
        .throttle
        .check_login(&key, audit.client_ip)
        .await
        .map_err(throttled)?;
    let verified = hashing::verify(current, Some(login.password_hash))
        .await
        .map_err(|_| AppError::Unavailable)?;
    if !verified {
        state.throttle.login_failed(&key, audit.client_ip).await;
        return Err(AppError::StaffInvalidCredentials);
    }
    let hash = hashing::hash(new)
        .await
        .map_err(|_| AppError::Unavailable)?;
    state
        .db
        .change_staff_password(&session.user_id, &hash, &session.token_id, &audit)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
