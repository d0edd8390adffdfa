//! Request hygiene, applied to every request before CORS, authentication or
//! routing look at it:
//!
//! - **Header bytes.** A header value may hold visible ASCII, space and tab
//!   only. Bytes of 0x80 and up (`obs-text`, which HTTP still lets through)
//!   are 400 `invalid_header`, naming the header but never echoing its
//!   value; in the two headers that have their own documented answer, that
//!   answer (`Authorization`: 400 `invalid_request` with the RFC 6750
//!   challenge, as `jeton-auth` would give; `Idempotency-Key`: 400
//!   `invalid_idempotency_key`, see docs/api-decisions.md). Control bytes (CR, LF, NUL, 0x01 to 0x1F but tab, DEL) never get
//!   this far: hyper refuses them while parsing the request and answers a
//!   bare 400 itself, and `http::HeaderValue` cannot even hold them; the
//!   check covers them anyway, in case a future stack lets one through.
//! - **Paths.** A path whose percent-decoding is not UTF-8 (`/products/%FF`)
//!   names nothing: 404 `not_found`, like any other unknown path.
//! - **Header sizes.** One value over [`MAX_HEADER_VALUE_BYTES`] or all of
//!   them over [`MAX_HEADER_BYTES`] is 431 `headers_too_large`. A token is
//!   42 characters; nothing legitimate comes near these. (`Authorization`
//!   has its own, tighter bound in `jeton-auth`: 1 KiB, else 400.)
//! - **Time.** A request that is not answered within [`REQUEST_TIMEOUT`]
//!   is abandoned (its future dropped, so an open transaction rolls back)
//!   and answered 503 `service_unavailable` with `Retry-After`.
//! - **Panics.** A panic in a handler or layer becomes a 500
//!   `internal_error` whose body holds the request id and nothing else. The
//!   panic's message is never read here, so it cannot reach a response or
//!   the access log.
//!
//! These answers pass the app's `no-store` layer like every other.

use crate::identity::identity;
use std::{any::Any, time::Duration};

use axum::{
    extract::Request,
    http::{HeaderName, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use jeton_auth::AuthError;

use super::error::AppError;

/// The longest single header value accepted.
pub const MAX_HEADER_VALUE_BYTES: usize = 8 * 1024;
/// The most header bytes (names and values) a request may carry.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// How long a request may take from the moment its head has arrived.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Visible ASCII, space and horizontal tab: RFC 9110 `field-value` without
/// `obs-text`.
fn allowed_in_value(byte: u8) -> bool {
    byte == b'\t' || (0x20..=0x7e).contains(&byte)
}

fn invalid_header(name: &HeaderName) -> Response {
    let error = if *name == header::AUTHORIZATION {
        AppError::Auth(AuthError::InvalidRequest(
            "the Authorization header must be visible ASCII",
        ))
    } else if name == "idempotency-key" {
        AppError::BadRequest {
            code: "invalid_idempotency_key",
            detail: "an Idempotency-Key is 1 to 255 printable ASCII characters".to_owned(),
        }
    } else {
        AppError::BadRequest {
            code: "invalid_header",
            detail: format!(
                "the `{name}` header holds bytes other than visible ASCII, space and tab"
            ),
        }
    };
    error.into_response()
}

fn headers_too_large() -> Response {
    let detail = format!(
        "request headers are limited to {MAX_HEADER_VALUE_BYTES} bytes per value and {MAX_HEADER_BYTES} bytes in all"
    );
    identity().problem(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers_too_large",
        "Request header fields too large",
        &detail,
        None,
    )
}

/// Does the path percent-decode to UTF-8? Decoded as axum's `Path` does:
/// `%` and two hex digits is a byte, anything else stays as it is.
fn path_is_utf8(path: &str) -> bool {
    fn hex(byte: u8) -> Option<u8> {
        char::from(byte)
            .to_digit(16)
            .map(|digit| u8::try_from(digit).expect("a hex digit fits a byte"))
    }
    if !path.contains('%') {
        return true;
    }
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = (bytes[at] == b'%')
            .then(|| Some(hex(*bytes.get(at + 1)?)? * 16 + hex(*bytes.get(at + 2)?)?))
            .flatten();
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                at += 3;
            }
            None => {
                decoded.push(bytes[at]);
                at += 1;
            }
        }
    }
    std::str::from_utf8(&decoded).is_ok()
}

/// Refuses header values with invalid bytes (400), oversized headers (431)
/// and paths that do not percent-decode to UTF-8 (404: no resource has such
/// a name; without this, axum's `Path` would answer a plain-text 400).
pub async fn check(request: Request, next: Next) -> Response {
    if !path_is_utf8(request.uri().path()) {
        return AppError::NotFound.into_response();
    }
    let mut total = 0usize;
    for (name, value) in request.headers() {
        let bytes = value.as_bytes();
        total = total.saturating_add(name.as_str().len() + bytes.len());
        if bytes.len() > MAX_HEADER_VALUE_BYTES || total > MAX_HEADER_BYTES {
            return headers_too_large();
        }
        if !bytes.iter().copied().all(allowed_in_value) {
            return invalid_header(name);
        }
    }
    next.run(request).await
}

/// [`REQUEST_TIMEOUT`] for the whole request.
pub async fn timeout(request: Request, next: Next) -> Response {
    run_with_timeout(REQUEST_TIMEOUT, request, next).await
}

/// The rest of the stack, or 503 once `limit` has passed.
pub async fn run_with_timeout(limit: Duration, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(%path, limit_seconds = limit.as_secs_f64(), "request timed out");
            // OAuth clients expect RFC 6749's error, not a problem.
            if super::oauth::is_oauth_path(&path) {
                super::oauth::OAuthError::unavailable().into_response()
            } else {
                AppError::Unavailable.into_response()
            }
        }
    }
}

/// For `CatchPanicLayer::custom`: a 500 that names the request id only.
/// The payload (the panic message) is dropped unread.
pub fn panic_response(_payload: Box<dyn Any + Send + 'static>) -> Response {
    let error = AppError::Internal(anyhow::anyhow!(
        "a handler panicked (the message is on the process's stderr)"
    ));
    error.into_response()
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, http::HeaderValue, middleware::from_fn, routing::get};
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    use tower_http::catch_panic::CatchPanicLayer;

    use super::*;

    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "late"
    }

    async fn boom() -> &'static str {
        panic!("secret-in-panic jt_ut_SHOULDNEVERSHOW")
    }

    fn app() -> Router {
        Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route("/slow", get(slow))
            .route("/boom", get(boom))
            .route(
                super::super::oauth::TOKEN_PATH,
                axum::routing::post(
                    |body: axum::body::Bytes| async move { body.len().to_string() },
                ),
            )
            .layer(from_fn(|request, next| {
                run_with_timeout(Duration::from_millis(50), request, next)
            }))
            .layer(from_fn(check))
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(super::super::no_store())
            .layer(from_fn(super::super::request_id::middleware))
    }

    async fn send(
        request: axum::http::Request<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let response = app().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    fn get_with(name: &str, value: &[u8]) -> axum::http::Request<Body> {
        let mut request = axum::http::Request::get("/ok").body(Body::empty()).unwrap();
        request.headers_mut().insert(
            HeaderName::try_from(name).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
        request
    }

    #[tokio::test]
    async fn header_bytes() {
        for good in [&b"plain text"[..], b"tab\there", b"~!@#$%^&*()", b""] {
            let (status, _, _) = send(get_with("x-test", good)).await;
            assert_eq!(status, StatusCode::OK, "{good:?}");
        }
        // Control bytes cannot be put in a `HeaderValue` (they are tested
        // over a real socket in tests/api/hardening.rs).
        for byte in [0u8, 1, 0x1b, b'\r', b'\n', 0x7f] {
            assert!(HeaderValue::from_bytes(&[b'a', byte]).is_err());
            assert!(!allowed_in_value(byte));
        }
        for bad in [&b"caf\xc3\xa9"[..], b"\x80", b"\xff", b"ok \xa0"] {
            let (status, headers, body) = send(get_with("x-test", bad)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
            assert!(body.contains("\"code\":\"invalid_header\""), "{body}");
            assert!(body.contains("x-test"), "names the header: {body}");
            assert_eq!(headers["cache-control"], "no-store");
            assert!(headers.contains_key("x-request-id"));
        }
        // The two headers with their own documented answer keep it.
        let (status, headers, body) = send(get_with("authorization", b"Bearer \xe9")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("\"code\":\"invalid_request\""), "{body}");
        assert!(headers.contains_key("www-authenticate"));
        let (status, _, body) = send(get_with("idempotency-key", b"k\xe9")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body.contains("\"code\":\"invalid_idempotency_key\""),
            "{body}"
        );
    }

    #[tokio::test]
    async fn header_sizes() {
        let (status, _, _) = send(get_with("x-test", &[b'a'; MAX_HEADER_VALUE_BYTES])).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, body) = send(get_with("x-test", &[b'a'; MAX_HEADER_VALUE_BYTES + 1])).await;
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert!(body.contains("\"code\":\"headers_too_large\""), "{body}");

        let mut request = axum::http::Request::get("/ok").body(Body::empty()).unwrap();
        for n in 0..5 {
            request.headers_mut().insert(
                HeaderName::try_from(format!("x-test-{n}")).unwrap(),
                HeaderValue::from_str(&"a".repeat(MAX_HEADER_VALUE_BYTES)).unwrap(),
            );
        }
        let (status, _, _) = send(request).await;
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    #[test]
    fn paths() {
        for good in [
            "/",
            "/api/v1/products/abc",
            "/a%20b",
            "/%E2%9C%93",
            "/%00",
            "/100%",
            "/%zz",
            "/%4",
        ] {
            assert!(path_is_utf8(good), "{good}");
        }
        for bad in ["/%FF", "/products/%C3", "/%e2%9c", "/x/%80/y"] {
            assert!(!path_is_utf8(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn paths_that_are_not_utf8_are_404_problems() {
        let request = axum::http::Request::get("/ok%FF")
            .body(Body::empty())
            .unwrap();
        let (status, headers, body) = send(request).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(headers["content-type"], "application/problem+json");
        assert!(body.contains("\"code\":\"not_found\""), "{body}");
    }

    #[tokio::test]
    async fn slow_requests_time_out_with_a_problem() {
        let request = axum::http::Request::get("/slow")
            .body(Body::empty())
            .unwrap();
        let (status, headers, body) = send(request).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("\"code\":\"service_unavailable\""), "{body}");
        assert_eq!(headers["retry-after"], "1");
        assert_eq!(headers["content-type"], "application/problem+json");
    }

    /// A body that never ends, to the token endpoint: RFC 6749's error,
    /// which OAuth clients read, not a problem.
    #[tokio::test]
    async fn slow_oauth_requests_time_out_with_an_oauth_error() {
        let never = futures::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
        let request = axum::http::Request::post(super::super::oauth::TOKEN_PATH)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from_stream(never))
            .unwrap();
        let (status, headers, body) = send(request).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["retry-after"], "1");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    }

    #[tokio::test]
    async fn a_panic_is_a_500_with_the_request_id_only() {
        let request = axum::http::Request::get("/boom")
            .body(Body::empty())
            .unwrap();
        let (status, headers, body) = send(request).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(headers["cache-control"], "no-store");
        let id = headers["x-request-id"].to_str().unwrap();
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["code"], "internal_error");
        assert_eq!(body["request_id"], id);
        let text = body.to_string();
        assert!(!text.contains("secret-in-panic"));
        assert!(!text.contains("jt_ut_"));
    }
}
