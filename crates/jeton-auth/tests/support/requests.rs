//! Requests through an example's router, as a served app would see them.
//! Included by the example tests and the store's with `#[path]`.

use std::net::SocketAddr;

use axum::{
    Router,
    body::Body,
    extract::connect_info::MockConnectInfo,
    http::{Request, StatusCode, header},
};
use serde_json::Value;
use tower::ServiceExt;

/// What `into_make_service_with_connect_info` adds when served.
pub fn served(app: Router) -> Router {
    app.layer(MockConnectInfo(SocketAddr::from(([192, 0, 2, 7], 50_000))))
}

/// One request, with a bearer token and a JSON body if given: the status
/// and the JSON body of the answer (`Null` without one).
pub async fn send(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match body {
        Some(body) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    answer(app, request.body(body).unwrap()).await
}

/// Sends `request`: the status and the JSON body of the answer (`Null`
/// without one).
pub async fn answer(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
