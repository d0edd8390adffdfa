//! Every authentication outcome as one type, rendered as RFC 9457
//! problem+json with the RFC 6750 `WWW-Authenticate` challenge.
//!
//! When to use which:
//! - [`AuthError::Unauthenticated`]: no credential at all, or another scheme.
//! - [`AuthError::InvalidRequest`]: the request is malformed as an OAuth
//!   bearer request (empty bearer, two credentials, token in the query).
//! - [`AuthError::InvalidToken`]: a bearer token that does not authenticate,
//!   for whatever reason (malformed, unknown, revoked, expired). One answer for
//!   all of them, so a caller learns nothing about which.
//! - [`AuthError::InsufficientScope`]: authenticated, but the route does not
//!   accept this kind of token or it lacks the ability.
//! - [`AuthError::OriginNotAllowed`]: a publishable key used from a website
//!   its client does not allow (403, no challenge: the token is fine).
//! - [`AuthError::SecretKeyInBrowser`]: a secret key arrived with an `Origin`
//!   header, so it has leaked into browser code (403, recorded).
//! - [`AuthError::RateLimited`]: the key or the key and client IP are over
//!   their limit (429 with `Retry-After` and `RateLimit-*`).
//! - [`AuthError::Unavailable`]: storage could not be asked (503).

use axum::{
    body::{Body, Bytes},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

pub const REALM: &str = "jeton";

const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this endpoint requires a bearer token")]
    Unauthenticated,
    #[error("{0}")]
    InvalidRequest(&'static str),
    #[error("the bearer token is malformed, unknown, revoked or expired")]
    InvalidToken,
    #[error("this token is not allowed to do this")]
    InsufficientScope { scope: Option<String> },
    #[error("this publishable key may not be used from this origin")]
    OriginNotAllowed,
    #[error(
        "secret keys are for servers; this one was sent by a browser and must be considered leaked: rotate it"
    )]
    SecretKeyInBrowser,
    #[error("too many requests; retry after {retry_after_seconds} s")]
    RateLimited {
        limit: u32,
        retry_after_seconds: u64,
    },
    #[error("the token store is unavailable")]
    Unavailable,
}

impl AuthError {
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Unauthenticated | AuthError::InvalidToken => StatusCode::UNAUTHORIZED,
            AuthError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            AuthError::InsufficientScope { .. }
            | AuthError::OriginNotAllowed
            | AuthError::SecretKeyInBrowser => StatusCode::FORBIDDEN,
            AuthError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable problem `code`.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Unauthenticated => "unauthenticated",
            AuthError::InvalidRequest(_) => "invalid_request",
            AuthError::InvalidToken => "invalid_token",
            AuthError::InsufficientScope { .. } => "insufficient_scope",
            AuthError::OriginNotAllowed => "origin_not_allowed",
            AuthError::SecretKeyInBrowser => "secret_key_in_browser",
            AuthError::RateLimited { .. } => "rate_limited",
            AuthError::Unavailable => "service_unavailable",
        }
    }

    pub fn title(&self) -> &'static str {
        match self {
            AuthError::Unauthenticated => "Authentication required",
            AuthError::InvalidRequest(_) => "Invalid request",
            AuthError::InvalidToken => "Invalid token",
            AuthError::InsufficientScope { .. } => "Insufficient scope",
            AuthError::OriginNotAllowed => "Origin not allowed",
            AuthError::SecretKeyInBrowser => "Secret key used in a browser",
            AuthError::RateLimited { .. } => "Rate limited",
            AuthError::Unavailable => "Service unavailable",
        }
    }

    /// The RFC 6750 challenge, for the outcomes that carry one.
    pub fn www_authenticate(&self) -> Option<String> {
        let error = match self {
            AuthError::Unauthenticated => return Some(format!("Bearer realm=\"{REALM}\"")),
            AuthError::InvalidRequest(_) => "invalid_request",
            AuthError::InvalidToken => "invalid_token",
            AuthError::InsufficientScope { scope } => {
                return Some(match scope {
                    Some(scope) => format!(
                        "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{scope}\""
                    ),
                    None => format!("Bearer realm=\"{REALM}\", error=\"insufficient_scope\""),
                });
            }
            AuthError::OriginNotAllowed
            | AuthError::SecretKeyInBrowser
            | AuthError::RateLimited { .. }
            | AuthError::Unavailable => return None,
        };
        Some(format!("Bearer realm=\"{REALM}\", error=\"{error}\""))
    }

    pub fn detail(&self) -> String {
        match self {
            AuthError::InsufficientScope { scope: Some(scope) } => {
                format!("this token is not allowed to do this; it needs `{scope}`")
            }
            AuthError::InsufficientScope { scope: None } => {
                "this kind of token is not accepted here".to_owned()
            }
            other => other.to_string(),
        }
    }
}

/// An RFC 9457 problem+json response: `{type, title, status, code, detail}`
/// plus any `extra` members. Shared with apps so that every error of a
/// service has one shape.
pub fn problem_response(
    status: StatusCode,
    code: &str,
    title: &str,
    detail: &str,
    extra: Option<serde_json::Map<String, serde_json::Value>>,
) -> Response {
    let body = problem_body(status, code, title, detail, extra);
    with_problem_body(status, body.into())
}

fn problem_body(
    status: StatusCode,
    code: &str,
    title: &str,
    detail: &str,
    extra: Option<serde_json::Map<String, serde_json::Value>>,
) -> Vec<u8> {
    /// `urn:jeton:problem:{code}`, written straight into the body.
    struct ProblemType<'a>(&'a str);

    impl serde::Serialize for ProblemType<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_str(&format_args!("urn:jeton:problem:{}", self.0))
        }
    }

    // Serialized from borrowed fields.
    #[derive(serde::Serialize)]
    struct Problem<'a> {
        r#type: ProblemType<'a>,
        title: &'a str,
        status: u16,
        code: &'a str,
        detail: &'a str,
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        extra: Option<serde_json::Map<String, serde_json::Value>>,
    }

    serde_json::to_vec(&Problem {
        r#type: ProblemType(code),
        title,
        status: status.as_u16(),
        code,
        detail,
        extra,
    })
    .expect("a problem serializes")
}

fn with_problem_body(status: StatusCode, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

impl AuthError {
    fn render(&self) -> Response {
        let mut response = problem_response(
            self.status(),
            self.code(),
            self.title(),
            &self.detail(),
            None,
        );
        if let Some(challenge) = self.www_authenticate() {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&challenge).expect("challenges are ASCII"),
            );
        }
        response
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let mut response = self.render();
        let headers = response.headers_mut();
        match self {
            AuthError::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            AuthError::RateLimited {
                limit,
                retry_after_seconds,
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
                crate::rate_limit::set_headers(
                    headers,
                    crate::rate_limit::RateLimitStatus {
                        limit,
                        remaining: 0,
                        reset_seconds: retry_after_seconds,
                    },
                );
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refusals_carry_their_challenge_and_code() {
        for error in [AuthError::Unauthenticated, AuthError::InvalidToken] {
            let (parts, body) = error.clone().into_response().into_parts();
            assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
            assert!(parts.headers.contains_key(header::WWW_AUTHENTICATE));
            assert_eq!(parts.headers[header::CONTENT_TYPE], PROBLEM_JSON);
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["code"], error.code());
        }
    }
}
