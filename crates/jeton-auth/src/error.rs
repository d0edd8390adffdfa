//! Every authentication outcome of spec §4 as one type, rendered as RFC 9457
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

use std::sync::OnceLock;

use axum::{
    body::{Body, Bytes},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

pub const REALM: &str = "jeton";

const PROBLEM_JSON: &str = "application/problem+json";

/// Headers a problem response ends up with, once an app's layers have added
/// theirs.
const RESPONSE_HEADERS: usize = 12;

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
    // Room for the app's layers too (request id, security headers, CORS,
    // length): growing the map mid-flood costs a reallocation and a rehash
    // per refusal.
    let headers = response.headers_mut();
    headers.reserve(RESPONSE_HEADERS);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
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

    /// The answers to a flood (no token, a bad token) never change, so they
    /// are rendered once and their body is shared from then on.
    fn render_constant(&self) -> Option<Response> {
        static RENDERED: [OnceLock<(Bytes, HeaderValue)>; 2] = [const { OnceLock::new() }; 2];
        let slot = match self {
            AuthError::Unauthenticated => &RENDERED[0],
            AuthError::InvalidToken => &RENDERED[1],
            _ => return None,
        };
        let (body, challenge) = slot.get_or_init(|| {
            let body = problem_body(
                self.status(),
                self.code(),
                self.title(),
                &self.detail(),
                None,
            );
            let challenge = self.www_authenticate().expect("a 401 carries a challenge");
            (
                body.into(),
                HeaderValue::from_str(&challenge).expect("challenges are ASCII"),
            )
        });
        let mut response = with_problem_body(self.status(), body.clone());
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge.clone());
        Some(response)
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        if let Some(response) = self.render_constant() {
            return response;
        }
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

    async fn parts(response: Response) -> (StatusCode, axum::http::HeaderMap, Bytes) {
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (parts.status, parts.headers, body)
    }

    #[tokio::test]
    async fn constant_refusals_answer_like_rendered_ones() {
        for error in [AuthError::Unauthenticated, AuthError::InvalidToken] {
            let rendered = parts(error.render()).await;
            // Twice: the first renders and keeps, the second reuses.
            for _ in 0..2 {
                assert_eq!(parts(error.clone().into_response()).await, rendered);
            }
            assert!(rendered.1.contains_key(header::WWW_AUTHENTICATE));
            let body: serde_json::Value = serde_json::from_slice(&rendered.2).unwrap();
            assert_eq!(body["code"], error.code());
        }
    }
}
