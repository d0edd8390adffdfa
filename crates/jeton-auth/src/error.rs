//! Every authentication outcome as one type, rendered as RFC 9457
//! problem+json with the RFC 6750 `WWW-Authenticate` challenge (the table of
//! outcomes is in the crate's README).
//!
//! When to use which:
//! - [`AuthError::Unauthenticated`]: no credential at all, or another scheme.
//! - [`AuthError::InvalidRequest`]: the request is malformed as an OAuth
//!   bearer request (empty bearer, two credentials, token in the query).
//! - [`AuthError::InvalidToken`]: a bearer token that does not authenticate,
//!   for whatever reason (malformed, another app's, unknown, revoked,
//!   expired). One answer for all of them, so a caller learns nothing about
//!   which.
//! - [`AuthError::WrongKind`]: authenticated, but the route does not take
//!   this kind of token; the detail names the kinds it takes, and the
//!   challenge carries no `scope` (no ability would help).
//! - [`AuthError::InsufficientScope`]: a kind the route takes, without the
//!   ability it needs; the challenge's `scope` names it.
//! - [`AuthError::OriginNotAllowed`]: a publishable key used from a website
//!   its client does not allow (403, no challenge: the token is fine).
//! - [`AuthError::SessionOriginNotAllowed`]: a session cookie sent from an
//!   origin its client does not list exactly (403 `origin_not_allowed`).
//! - [`AuthError::SecretKeyInBrowser`]: a secret key arrived with an `Origin`
//!   header, so it has leaked into browser code (403, recorded).
//! - [`AuthError::CsrfFailed`]: a request authenticated by a session cookie
//!   that changes something without the CSRF header matching the CSRF
//!   cookie (403, no challenge: see [`crate::session`]).
//! - [`AuthError::RateLimited`]: the key or the key and client IP are over
//!   their limit (429 with `Retry-After` and `RateLimit-*`).
//! - [`AuthError::Unavailable`]: storage could not be asked (503).
//!
//! An error becomes a response in an app's [`Identity`](crate::Identity) (its realm and
//! problem types) with [`Identity::refusal`](crate::Identity::refusal); the guard does that for every
//! refusal.

use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::Response,
};

use crate::{KindSet, TokenKind};

const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("this endpoint requires a bearer token")]
    Unauthenticated,
    #[error("{0}")]
    InvalidRequest(&'static str),
    #[error("the bearer token is malformed, unknown, revoked or expired")]
    InvalidToken,
    /// The route takes only `accepted`.
    #[error("this route takes {}", describe_kinds(*accepted))]
    WrongKind { accepted: KindSet },
    /// The route needs the ability `scope`, which the token does not hold
    /// (or its kind may not hold).
    #[error("this token is not allowed to do this; it needs `{scope}`")]
    InsufficientScope { scope: String },
    #[error("this publishable key may not be used from this origin")]
    OriginNotAllowed,
    /// The same code as [`AuthError::OriginNotAllowed`], for a request
    /// authenticated by a session cookie, which carries no key.
    #[error("a session cookie is accepted only from the origins it was issued for")]
    SessionOriginNotAllowed,
    #[error(
        "secret keys are for servers; this one was sent by a browser and must be considered leaked: rotate it"
    )]
    SecretKeyInBrowser,
    #[error(
        "a request made with a session cookie that changes something needs the X-CSRF-Token header, equal to the CSRF cookie"
    )]
    CsrfFailed,
    #[error("too many requests; retry after {retry_after_seconds} s")]
    RateLimited {
        limit: u32,
        retry_after_seconds: u64,
    },
    #[error("the token store is unavailable")]
    Unavailable,
}

/// "a user token", "a publishable key or a secret key".
fn describe_kinds(kinds: KindSet) -> String {
    let names: Vec<&str> = [
        (TokenKind::Publishable, "a publishable key"),
        (TokenKind::Secret, "a secret key"),
        (TokenKind::Access, "an access token"),
        (TokenKind::User, "a user token"),
        (TokenKind::Guest, "a guest token"),
        (TokenKind::Staff, "a staff session"),
    ]
    .into_iter()
    .filter(|(kind, _)| kinds.contains(*kind))
    .map(|(_, name)| name)
    .collect();
    match names.as_slice() {
        [] => "no token at all".to_owned(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

impl AuthError {
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Unauthenticated | AuthError::InvalidToken => StatusCode::UNAUTHORIZED,
            AuthError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            AuthError::WrongKind { .. }
            | AuthError::InsufficientScope { .. }
            | AuthError::OriginNotAllowed
            | AuthError::SessionOriginNotAllowed
            | AuthError::SecretKeyInBrowser
            | AuthError::CsrfFailed => StatusCode::FORBIDDEN,
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
            AuthError::WrongKind { .. } | AuthError::InsufficientScope { .. } => {
                "insufficient_scope"
            }
            AuthError::OriginNotAllowed | AuthError::SessionOriginNotAllowed => {
                "origin_not_allowed"
            }
            AuthError::SecretKeyInBrowser => "secret_key_in_browser",
            AuthError::CsrfFailed => "csrf_failed",
            AuthError::RateLimited { .. } => "rate_limited",
            AuthError::Unavailable => "service_unavailable",
        }
    }

    pub fn title(&self) -> &'static str {
        match self {
            AuthError::Unauthenticated => "Authentication required",
            AuthError::InvalidRequest(_) => "Invalid request",
            AuthError::InvalidToken => "Invalid token",
            AuthError::WrongKind { .. } | AuthError::InsufficientScope { .. } => {
                "Insufficient scope"
            }
            AuthError::OriginNotAllowed | AuthError::SessionOriginNotAllowed => {
                "Origin not allowed"
            }
            AuthError::SecretKeyInBrowser => "Secret key used in a browser",
            AuthError::CsrfFailed => "CSRF check failed",
            AuthError::RateLimited { .. } => "Rate limited",
            AuthError::Unavailable => "Service unavailable",
        }
    }

    /// The RFC 6750 challenge in `realm`, for the outcomes that carry one.
    pub fn www_authenticate(&self, realm: &str) -> Option<String> {
        let error = match self {
            AuthError::Unauthenticated => return Some(format!("Bearer realm=\"{realm}\"")),
            AuthError::InvalidRequest(_) => "invalid_request",
            AuthError::InvalidToken => "invalid_token",
            AuthError::WrongKind { .. } => "insufficient_scope",
            AuthError::InsufficientScope { scope } => {
                return Some(format!(
                    "Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"{scope}\""
                ));
            }
            AuthError::OriginNotAllowed
            | AuthError::SessionOriginNotAllowed
            | AuthError::SecretKeyInBrowser
            | AuthError::CsrfFailed
            | AuthError::RateLimited { .. }
            | AuthError::Unavailable => return None,
        };
        Some(format!("Bearer realm=\"{realm}\", error=\"{error}\""))
    }

    /// The problem's `detail`: the error's message.
    pub fn detail(&self) -> String {
        self.to_string()
    }

    /// `Retry-After` and `RateLimit-*`, for the outcomes that carry them.
    pub(crate) fn add_headers(&self, headers: &mut HeaderMap) {
        match *self {
            AuthError::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            AuthError::RateLimited {
                limit,
                retry_after_seconds,
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
                crate::limits::set_headers(
                    headers,
                    crate::limits::RateLimitStatus {
                        limit,
                        remaining: 0,
                        reset_seconds: retry_after_seconds,
                    },
                );
            }
            _ => {}
        }
    }
}

/// An RFC 9457 problem+json response whose `type` is `type_base` and the
/// code; see [`Identity::problem`](crate::Identity::problem).
pub(crate) fn problem(
    type_base: &str,
    status: StatusCode,
    code: &str,
    title: &str,
    detail: &str,
    extra: Option<serde_json::Map<String, serde_json::Value>>,
) -> Response {
    /// `<base><code>`, written straight into the body.
    struct ProblemType<'a>(&'a str, &'a str);

    impl serde::Serialize for ProblemType<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_str(&format_args!("{}{}", self.0, self.1))
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

    let body = serde_json::to_vec(&Problem {
        r#type: ProblemType(type_base, code),
        title,
        status: status.as_u16(),
        code,
        detail,
        extra,
    })
    .expect("a problem serializes");
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Identity;

    async fn parts(response: Response) -> (StatusCode, HeaderMap, serde_json::Value) {
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&body).unwrap(),
        )
    }

    #[tokio::test]
    async fn refusals_speak_in_the_apps_identity() {
        let acme = Identity::new("acme").unwrap();
        let (status, headers, body) = parts(acme.refusal(&AuthError::InvalidToken)).await;
        assert_eq!(status, 401);
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            r#"Bearer realm="acme", error="invalid_token""#
        );
        assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(body["type"], "urn:acme:problem:invalid_token");
        assert_eq!(body["code"], "invalid_token");
        assert_eq!(body["status"], 401);

        let (_, headers, body) =
            parts(Identity::default().refusal(&AuthError::Unauthenticated)).await;
        assert_eq!(headers[header::WWW_AUTHENTICATE], r#"Bearer realm="jeton""#);
        assert_eq!(body["type"], "urn:jeton:problem:unauthenticated");
    }

    #[tokio::test]
    async fn a_wrong_kind_names_the_kinds_and_no_scope() {
        let wrong = AuthError::WrongKind {
            accepted: KindSet::USER,
        };
        let (status, headers, body) = parts(Identity::default().refusal(&wrong)).await;
        assert_eq!(status, 403);
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            r#"Bearer realm="jeton", error="insufficient_scope""#
        );
        assert_eq!(body["code"], "insufficient_scope");
        assert_eq!(body["detail"], "this route takes a user token");
        let all = KindSet::PUBLISHABLE | KindSet::SECRET | KindSet::USER;
        assert_eq!(
            AuthError::WrongKind { accepted: all }.detail(),
            "this route takes a publishable key, a secret key or a user token"
        );
        let missing = AuthError::InsufficientScope {
            scope: "orders:write".into(),
        };
        assert_eq!(
            missing.www_authenticate("jeton").unwrap(),
            r#"Bearer realm="jeton", error="insufficient_scope", scope="orders:write""#
        );
    }

    #[tokio::test]
    async fn rate_limits_and_outages_say_when_to_retry() {
        let limited = AuthError::RateLimited {
            limit: 60,
            retry_after_seconds: 7,
        };
        let (status, headers, _) = parts(Identity::default().refusal(&limited)).await;
        assert_eq!(status, 429);
        assert_eq!(headers[header::RETRY_AFTER], "7");
        assert!(headers.get(header::WWW_AUTHENTICATE).is_none());
        let (status, headers, _) =
            parts(Identity::default().refusal(&AuthError::Unavailable)).await;
        assert_eq!(status, 503);
        assert_eq!(headers[header::RETRY_AFTER], "1");
    }
}
