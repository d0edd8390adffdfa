//! The one error type of the HTTP layer. Every error response is RFC 9457
//! problem+json with a stable `code`; `docs/api.md` lists them for clients.
//!
//! When to use which:
//! - `Auth`: anything about the credential (see `jeton_auth::AuthError`).
//! - `MalformedJson` (400): the body is not JSON at all.
//! - `Validation` (422): well-formed JSON (or query) with wrong, missing or
//!   unknown fields, or values out of range. Lists every problem.
//! - `UnsupportedMediaType` (415), `PayloadTooLarge` (413): the body's
//!   envelope is wrong.
//! - `NotFound` (404): no such thing *for this caller*; someone else's
//!   order is "not found", not "forbidden".
//! - `BadRequest` (400): a request header is malformed
//!   (`invalid_idempotency_key`).
//! - `Unprocessable` (422) with its own code: well-formed, but refused for a
//!   reason that is not a field (`idempotency_key_reused`).
//! - `Forbidden` (403) with its own code: the caller is who it says, but
//!   this way of calling may not do this (`session_cannot_mint`). Missing
//!   abilities are `Auth` (`insufficient_scope`).
//! - `Conflict` (409): the request is valid but the state forbids it
//!   (`email_taken`, `sku_taken`, `insufficient_stock`,
//!   `idempotency_key_in_use`).
//! - `InvalidCredentials` (400): login failed; one answer for unknown email
//!   and wrong password.
//! - `Unavailable` (503): the database is unreachable or busy; retrying is
//!   safe and `Retry-After` says when.
//! - `Internal` (500): a bug. The body says only `internal_error` and the
//!   request id; the cause goes to the log.

use crate::identity::identity;
use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use jeton_auth::AuthError;
use serde_json::{Map, Value, json};

use super::request_id;
use crate::{
    domain::FieldError,
    store::{IssueError, db_error::DbErrorClass},
};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    #[error("request bodies must be application/json")]
    UnsupportedMediaType,
    #[error("the request body is larger than 1 MiB")]
    PayloadTooLarge,
    #[error("not found")]
    NotFound,
    #[error("this path does not support this method; see the Allow header")]
    MethodNotAllowed,
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("the email or password is wrong")]
    InvalidCredentials,
    /// A staff sign-in or password check that failed: 401, one answer for
    /// an unknown email, a wrong password and a disabled member.
    #[error("the email or password is wrong")]
    StaffInvalidCredentials,
    /// A staff sign-in with the right password but without the code its
    /// member's second factor needs, or with a wrong or used one: 401.
    #[error("the password is right; send the code the authenticator app shows now as `totp`")]
    MfaRequired,
    /// A secret scanning report (API.md §15) without a valid signature
    /// by a key of the configured file: 401, nothing looked at.
    #[error("the report's signature is missing, or is not by a key this server knows")]
    InvalidSignature,
    #[error("the service is temporarily unavailable; retry shortly")]
    Unavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> AppError {
        AppError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> AppError {
        AppError::Conflict {
            code,
            detail: detail.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            AppError::Auth(_) => unreachable!("rendered by AuthError"),
            AppError::MalformedJson(_) => {
                (StatusCode::BAD_REQUEST, "malformed_json", "Malformed JSON")
            }
            AppError::Validation(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "Validation failed",
            ),
            AppError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
            ),
            AppError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
            ),
            AppError::NotFound => (StatusCode::NOT_FOUND, "not_found", "Not found"),
            AppError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            ),
            AppError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code, "Bad request"),
            AppError::Unprocessable { code, .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                code,
                "Unprocessable request",
            ),
            AppError::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code, "Forbidden"),
            AppError::Conflict { code, .. } => (StatusCode::CONFLICT, code, "Conflict"),
            AppError::InvalidCredentials => (
                StatusCode::BAD_REQUEST,
                "invalid_credentials",
                "Invalid credentials",
            ),
            AppError::StaffInvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "Invalid credentials",
            ),
            AppError::MfaRequired => (
                StatusCode::UNAUTHORIZED,
                "mfa_required",
                "Second factor required",
            ),
            AppError::InvalidSignature => (
                StatusCode::UNAUTHORIZED,
                "invalid_signature",
                "Invalid signature",
            ),
            AppError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "Service unavailable",
            ),
            AppError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Internal error",
            ),
        }
    }
}

/// Database errors, as the store classifies them: an outage or contention
/// is a 503 (retry), anything else is a bug (500). No SQL ever reaches the
/// client either way.
impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> AppError {
        if DbErrorClass::of(&error).is_transient() {
            tracing::warn!(%error, "database unavailable");
            AppError::Unavailable
        } else {
            AppError::Internal(error.into())
        }
    }
}

/// A login or token request whose client or key was revoked while it ran
/// is refused as a revoked credential is: 401 `invalid_token`.
impl From<IssueError> for AppError {
    fn from(error: IssueError) -> AppError {
        match error {
            IssueError::Revoked => AppError::Auth(AuthError::InvalidToken),
            IssueError::Database(error) => error.into(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code, title) = match &self {
            AppError::Auth(auth) => return identity().refusal(auth),
            other => other.parts(),
        };
        let mut extra = Map::new();
        let detail = match &self {
            AppError::Internal(error) => {
                let id = request_id::current();
                tracing::error!(error = format!("{error:#}"), request_id = %id, "internal error");
                extra.insert("request_id".into(), Value::String(id.clone()));
                format!("request {id} failed; the cause is in the server log")
            }
            AppError::Validation(errors) => {
                extra.insert("errors".into(), json!(errors));
                self.to_string()
            }
            other => other.to_string(),
        };
        let mut response = identity().problem(status, code, title, &detail, Some(extra));
        if matches!(
            self,
            AppError::StaffInvalidCredentials | AppError::MfaRequired
        ) {
            // Every 401 of the API names its realm's scheme.
            let challenge = format!("Bearer realm=\"{}\"", identity().realm());
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&challenge).expect("the realm is ASCII"),
            );
        }
        if matches!(self, AppError::InvalidSignature) {
            // A 401 names what would authenticate: here no bearer token,
            // but GitHub's signature header.
            let challenge = format!(
                "Github-Public-Key-Signature realm=\"{}\"",
                identity().realm()
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&challenge).expect("the realm is ASCII"),
            );
        }
        if matches!(self, AppError::Unavailable) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

pub type AppResult<T> = Result<T, AppError>;
