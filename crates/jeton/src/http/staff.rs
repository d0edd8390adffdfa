//! Staff members' sign-in and sessions (API.md §13): `POST /staff/login`
//! and `POST /staff/invites/{token}` (outside the route table: no
//! credential yet), then, with the session cookie, `GET /staff/me`,
//! `POST /staff/logout`, `POST /staff/password` and the second factor's
//! enrolment, `POST /staff/mfa` and `POST /staff/mfa/confirm`.

use axum::{
    Extension,
    extract::{Path, State},
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
        mfa::{TotpCode, TotpSecret},
        password::Password,
        staff::{ABSOLUTE_LIFETIME, Role, invitation_hash},
        text::bounded,
    },
    hashing,
    store::{
        audit::{Actor, Audit, Event},
        staff::{NewStaffSession, StaffKey, StaffLogin, StaffRecord},
    },
};

/// Where the sign-in route is served (not a row of the route table: it
/// takes no credential).
pub const LOGIN_PATH: &str = "/api/v1/staff/login";

/// Where an invitation is accepted (not a row of the route table either:
/// the link's token is its credential).
pub const INVITATION_PATH: &str = "/api/v1/staff/invites/{token}";

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
            mfa: record.mfa_enabled_at.is_some(),
            created_at: record.created_at,
            last_login_at: record.last_login_at,
            disabled_at: record.disabled_at,
        }
    }
}

/// A new console session: the session itself is only in the `HttpOnly`
/// cookie `jeton_staff`.
// No `Debug`: it holds a secret shown once, which must never reach a log.
#[derive(Serialize, ToSchema)]
pub struct StaffSession {
    pub staff: StaffMember,
    /// Also in the `jeton_staff_csrf` cookie (on `/console`): sent back as
    /// `X-CSRF-Token` on `POST`, `PUT`, `PATCH` and `DELETE`.
    pub csrf_token: String,
    /// When the session ends at the latest; unused for 30 minutes, it ends
    /// sooner.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The server requires a second factor and the member has none: this
    /// session reaches only `/staff/me`, `/staff/mfa…` and
    /// `/staff/logout` until they enrol.
    pub mfa_enrollment_required: bool,
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
    /// The code the member's authenticator app shows now; needed once
    /// they have enrolled a second factor.
    #[schema(schema_with = totp_schema)]
    pub totp: Option<String>,
}

fn totp_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some("^[0-9]{6}$"))
        .examples([serde_json::json!("492039")])
        .build()
}

/// `POST /staff/mfa/confirm`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"totp": "492039"}))]
pub struct MfaConfirmInput {
    #[schema(schema_with = totp_schema)]
    pub totp: String,
}

/// A second factor to enrol, shown once: give either to an authenticator
/// app, then confirm with a code it shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaEnrolment {
    /// `otpauth://totp/…` with the secret (SHA-1, 6 digits, 30 s).
    pub otpauth_uri: String,
    /// The same URI as a QR code, an SVG document.
    pub qr_svg: String,
}

/// `POST /staff/invites/{token}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"password": "correct horse battery"}))]
pub struct InvitationInput {
    #[schema(schema_with = crate::domain::customer::new_password_schema)]
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
/// Checks a staff member's email and password (and, once they have
/// enrolled one, the code of their second factor) and starts a console
/// session: the session in the `HttpOnly` cookie `jeton_staff` (on
/// `/api/v1`), its CSRF token in the body and in the cookie
/// `jeton_staff_csrf` (on `/console`). A wrong password, an unknown email
/// and a disabled member are one answer, and failures are throttled per
/// email and address. Refused from another site's page.
#[utoipa::path(post, operation_id = "logStaffIn", path = "/api/v1/staff/login", tag = "staff",
    request_body = StaffLoginInput,
    responses(
        (status = 201, body = StaffSession, description = "signed in; the cookies `jeton_staff` and `jeton_staff_csrf` are set"),
        (status = 401, description = "`invalid_credentials`; `mfa_required`: the password is right, and a code is needed, or the one sent is wrong or used"),
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
    let totp = match input.totp {
        Some(code) => problems.check("totp", TotpCode::parse(&code)).map(Some),
        None => Some(None),
    };
    let (email, password, totp) = problems
        .finish(|| {
            (
                email.expect("checked"),
                password.expect("checked"),
                totp.expect("checked"),
            )
        })
        .map_err(AppError::Validation)?;
    check_own_origin(&state, &headers)?;
    let key = throttle_key(&email);
    state
        .throttle
        .check_login(&key, ip)
        .await
        .map_err(throttled)?;
    let found = state.db.find_staff_login(StaffKey::Email(&email)).await?;
    // Unknown email, or invited without a password yet: checked against a
    // dummy hash, in the same time.
    let stored = found.as_ref().and_then(StaffLogin::password_hash);
    let verified = hashing::verify(password, stored)
        .await
        .map_err(|_| AppError::Unavailable)?;
    let Some(login) = found.filter(|login| verified && login.member.disabled_at.is_none()) else {
        return Err(refuse_sign_in(&state, &key, &email, ip, None).await);
    };
    if let Some(secret) = login.totp_secret.clone() {
        let secret = TotpSecret::from_stored(secret);
        check_code(&state, &login.member, &secret, totp, &key, &email, ip).await?;
    }
    let restricted = state.config.require_staff_mfa && login.member.mfa_enabled_at.is_none();
    let audit = Audit::staff(&login.member.id, ip);
    let Some(session) = state
        .db
        .sign_in_staff(&login.member, restricted, &audit)
        .await?
    else {
        return Err(refuse_sign_in(&state, &key, &email, ip, None).await);
    };
    state.throttle.login_succeeded(&key, ip).await;
    // The browser's cookie now names the new session: the one it held, if
    // still live, ends.
    let sessions = state
        .gate
        .cookie_sessions_for(TokenKind::Staff)
        .expect("the app has staff sessions");
    if let Some(replaced) = sessions.session_token(state.gate.identity().tokens(), &headers)
        && let Ok(Principal::Staff(old)) = state.gate.verifier().verify(&replaced).await
    {
        let audit = Audit::staff(&old.user_id, ip);
        state.db.sign_out_staff(&old.token_id, &audit).await?;
    }
    Ok(session_response(&state, session, restricted))
}

/// 201 with a new session: the session's cookies and its CSRF token.
fn session_response(state: &AppState, session: NewStaffSession, restricted: bool) -> Response {
    let sessions = state
        .gate
        .cookie_sessions_for(TokenKind::Staff)
        .expect("the app has staff sessions");
    let mut cookies = HeaderMap::new();
    let csrf_token = sessions.issue_session(
        &mut cookies,
        &session.issued.token,
        &session.issued.id,
        Some(ABSOLUTE_LIFETIME),
    );
    let body = StaffSession {
        staff: session.member.into(),
        csrf_token,
        expires_at: session.expires_at,
        mfa_enrollment_required: restricted,
    };
    (StatusCode::CREATED, cookies, Json(body)).into_response()
}

/// A failed sign-in: counted by the throttle and recorded (under the
/// member when the email is theirs), then one answer whatever failed.
async fn refuse_sign_in(
    state: &AppState,
    key: &str,
    email: &str,
    ip: Option<std::net::IpAddr>,
    detail: Option<&str>,
) -> AppError {
    state.throttle.login_failed(key, ip).await;
    let recorded = async {
        let found = state.db.find_staff_login(StaffKey::Email(email)).await?;
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
            detail: detail.map(str::to_owned),
            ..Event::default()
        };
        state.db.record_event(&audit, event).await
    };
    match (recorded.await, detail) {
        (Err(error), _) => error.into(),
        (Ok(()), Some(_)) => AppError::MfaRequired,
        (Ok(()), None) => AppError::StaffInvalidCredentials,
    }
}

/// The second factor of a member who has one. No code: 401 `mfa_required`,
/// counted nowhere (the console asks for one next). A wrong or used code:
/// the same answer, counted against the member (5 per 15 minutes) and as a
/// failed sign-in.
async fn check_code(
    state: &AppState,
    member: &StaffRecord,
    secret: &TotpSecret,
    code: Option<TotpCode>,
    key: &str,
    email: &str,
    ip: Option<std::net::IpAddr>,
) -> AppResult<()> {
    let Some(code) = code else {
        return Err(AppError::MfaRequired);
    };
    state
        .throttle
        .check_mfa(&member.id)
        .await
        .map_err(throttled)?;
    let fresh = match secret.check(&code, state.db.now()) {
        Some(step) => state.db.use_totp_step(&member.id, step).await?,
        None => false,
    };
    if !fresh {
        state.throttle.mfa_failed(&member.id).await;
        return Err(refuse_sign_in(state, key, email, ip, Some("wrong or used code")).await);
    }
    Ok(())
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
    refuse_restricted(&session)?;
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

/// A session without abilities was issued to a member who must enrol a
/// second factor before anything else.
fn refuse_restricted(session: &jeton_auth::UserPrincipal) -> AppResult<()> {
    if session.abilities.is_empty() {
        return Err(AppError::Forbidden {
            code: "mfa_enrollment_required",
            detail: "this server requires a second factor: enrol one with POST /staff/mfa first"
                .to_owned(),
        });
    }
    Ok(())
}

/// Start enrolling a second factor
///
/// A new TOTP secret for the signed-in member, shown once as an
/// `otpauth://` URI and as a QR code (SVG): scan either with an
/// authenticator app, then confirm with a code it shows. Starting again
/// replaces a secret not yet confirmed. 409 `mfa_enabled` once the member
/// has a second factor: it is reset first (by an owner, or
/// `jeton staff reset-mfa`).
#[utoipa::path(post, operation_id = "startStaffMfa", path = "/api/v1/staff/mfa", tag = "staff",
    security(("staff_session" = [])),
    responses(
        (status = 200, body = MfaEnrolment, description = "the secret, shown once"),
        (status = 409, description = "`mfa_enabled`: the member has a second factor already")))]
pub async fn start_mfa(
    State(state): State<AppState>,
    Staff(session): Staff,
) -> AppResult<Json<MfaEnrolment>> {
    let member = member_of(&state, &session.user_id).await?;
    let enabled = || {
        AppError::conflict(
            "mfa_enabled",
            "the second factor is on already; it is reset before a new enrolment",
        )
    };
    if member.mfa_enabled_at.is_some() {
        return Err(enabled());
    }
    let secret = TotpSecret::generate();
    let enrolment = secret
        .enrolment(&member.email)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no otpauth URI for this email")))?;
    if !state.db.start_staff_mfa(&member.id, &secret).await? {
        return Err(enabled());
    }
    Ok(Json(MfaEnrolment {
        otpauth_uri: enrolment.otpauth_uri,
        qr_svg: enrolment.qr_svg,
    }))
}

/// Confirm a second factor
///
/// Turns the secret of `startStaffMfa` on with a code the app shows now.
/// Every session of the member ends and a new one starts (201, new
/// cookies and CSRF token), with their role's abilities. A wrong code is
/// 422, counted against the member: 5 in 15 minutes, then 429.
#[utoipa::path(post, operation_id = "confirmStaffMfa", path = "/api/v1/staff/mfa/confirm", tag = "staff",
    request_body = MfaConfirmInput,
    security(("staff_session" = [])),
    responses(
        (status = 201, body = StaffSession, description = "on; a new session, in new cookies"),
        (status = 409, description = "`mfa_not_started`: no enrolment is waiting for a code"),
        (status = 422, description = "`validation_failed`: the code is malformed or not the app's"),
        (status = 429, description = "`rate_limited`: too many wrong codes")))]
pub async fn confirm_mfa(
    State(state): State<AppState>,
    Staff(session): Staff,
    audit: Audit,
    Json(input): Json<MfaConfirmInput>,
) -> AppResult<Response> {
    let code =
        TotpCode::parse(&input.totp).map_err(|message| AppError::validation("totp", message))?;
    let not_started = || {
        AppError::conflict(
            "mfa_not_started",
            "no enrolment is waiting for a code: start one with POST /staff/mfa",
        )
    };
    let pending = state
        .db
        .find_staff_login(StaffKey::Id(&session.user_id))
        .await?
        .and_then(|login| login.totp_pending)
        .map(TotpSecret::from_stored)
        .ok_or_else(not_started)?;
    state
        .throttle
        .check_mfa(&session.user_id)
        .await
        .map_err(throttled)?;
    let Some(step) = pending.check(&code, state.db.now()) else {
        state.throttle.mfa_failed(&session.user_id).await;
        return Err(AppError::validation(
            "totp",
            "is not the code the authenticator app shows now",
        ));
    };
    let confirmed = state
        .db
        .confirm_staff_mfa(&session.user_id, &pending, step, &audit)
        .await?
        .ok_or_else(not_started)?;
    Ok(session_response(&state, confirmed, false))
}

/// Accept an invitation
///
/// Sets the first password of the member an owner invited, with the token
/// of the link they were sent (72 hours, once). Then they sign in. An
/// unknown, used or expired link is 404.
#[utoipa::path(post, operation_id = "acceptStaffInvitation", path = "/api/v1/staff/invites/{token}", tag = "staff",
    params(("token" = String, Path, description = "the token of the invitation's link")),
    request_body = InvitationInput,
    responses(
        (status = 200, body = StaffMember, description = "the password is set; sign in with it"),
        (status = 403, description = "`origin_not_allowed`: from a page of another origin"),
        (status = 404, description = "`not_found`: the link is unknown, used or expired"),
        (status = 422, description = "`validation_failed`")))]
pub async fn accept_invitation(
    State(state): State<AppState>,
    client_ip: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Json(input): Json<InvitationInput>,
) -> AppResult<Json<StaffMember>> {
    let ip = client_ip.map(|Extension(ClientIp(ip))| ip);
    let password = Password::parse(input.password)
        .map_err(|message| AppError::validation("password", message))?;
    check_own_origin(&state, &headers)?;
    let token_hash = invitation_hash(&token);
    // Looked up before the password is hashed, so that a made-up link
    // costs no hashing.
    if !state.db.staff_invitation_open(&token_hash).await? {
        return Err(AppError::NotFound);
    }
    let hash = hashing::hash(password)
        .await
        .map_err(|_| AppError::Unavailable)?;
    let member = state
        .db
        .accept_staff_invitation(&token_hash, &hash, ip)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(member.into()))
}
