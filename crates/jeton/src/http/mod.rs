//! The HTTP API: the route table, the handlers, and the layers around them.

mod actor;
pub mod admin;
pub mod catalog;
mod client_ip;
pub mod cors;
pub mod customers;
pub mod error;
pub mod extract;
pub mod health;
pub mod hygiene;
pub mod metrics;
pub mod openapi;
pub mod orders;
pub mod pagination;
pub mod request_id;
pub mod routes;
pub mod state;
pub mod tokens;

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    http::{HeaderValue, header},
    middleware::{from_fn, from_fn_with_state},
    routing::get,
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    set_header::SetResponseHeaderLayer,
    trace::{DefaultOnResponse, TraceLayer},
};
use tracing::Level;

pub use self::state::AppState;
use self::{error::AppError, request_id::RequestId};

async fn not_found() -> AppError {
    AppError::NotFound
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

/// The access log span: method, matched path without the query string (which
/// could hold anything a client typed), and the request id. Never headers.
fn span(request: &Request) -> tracing::Span {
    let id = request
        .extensions()
        .get::<RequestId>()
        .map_or("", |id| id.0.as_str());
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    metrics::handle();
    let api = routes::api(&state)
        .into_router()
        .method_not_allowed_fallback(method_not_allowed)
        // Responses of the API carry tokens or customer data, or are cheap to
        // recompute: no cache may keep them.
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .merge(openapi::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // A route layer, so it sees the matched path template.
        .route_layer(from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        // Layers run outside-in from the bottom: request id, access log,
        // nosniff, panics to 500s, hygiene (header bytes and sizes, paths),
        // the request timeout,
        // CORS (answers preflights), client IP, then the routes.
        .layer(from_fn_with_state(state.clone(), client_ip::middleware))
        .layer(state.origins.layer())
        .layer(from_fn(hygiene::timeout))
        .layer(from_fn(hygiene::check))
        .layer(CatchPanicLayer::custom(hygiene::panic_response))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(span)
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(from_fn(request_id::middleware))
        .with_state(state)
}
