//! The HTTP API: the route table, the handlers, and the layers around them.

mod actor;
pub mod admin;
pub mod carts;
pub mod catalog;
pub mod cors;
pub mod customers;
pub mod error;
pub mod extract;
pub mod guests;
pub mod health;
pub mod hygiene;
pub mod metrics;
pub mod oauth;
pub mod openapi;
pub mod orders;
pub mod request_id;
pub mod routes;
pub mod secret_scanning;
pub mod server;
pub mod staff;
pub mod state;
pub mod tokens;

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    http::{HeaderValue, header},
    middleware::from_fn,
    routing::{get, post},
};
use tower::ServiceBuilder;
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
    let path = logged_path(request.uri().path());
    tracing::info_span!("request", method = %request.method(), path = %path, request_id = %id)
}

/// A path as the access log shows it. An invitation's link carries its
/// secret in the path (API.md §13 fixes it there): it is logged as its
/// template, as a query string is never logged at all.
fn logged_path(path: &str) -> &str {
    let prefix = staff::INVITATION_PATH
        .strip_suffix("{token}")
        .expect("the invitation path ends with its token");
    if path.starts_with(prefix) {
        staff::INVITATION_PATH
    } else {
        path
    }
}

/// `Cache-Control: no-store` on every response. Those of the API carry
/// tokens or customer data, or are cheap to recompute: no cache may keep
/// them. The rest (health, metrics, the API's description) gains nothing
/// from caches either, and one layer for all is cheaper than one around
/// each API route.
pub(crate) fn no_store() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let api = routes::api().into_router(&state);
    with_layers(api, state)
}

/// `/metrics` alone, for `--metrics-addr`.
pub fn metrics_router(state: AppState) -> Router {
    metrics::handle();
    Router::new()
        .route("/metrics", get(metrics::render))
        .fallback(not_found)
        .layer(no_store())
        .with_state(state)
}

/// The application around `api` (the routes under [`routes::PREFIX`],
/// registered with it): the health, metrics and documentation routes and
/// every layer. [`router`] passes the route table; the auth benchmarks pass
/// the same paths unguarded, so that the two differ by authentication alone.
pub fn with_layers(api: Router<AppState>, state: AppState) -> Router {
    metrics::handle();
    let mut routes = Router::new()
        .merge(api)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz));
    // With an address of its own (`--metrics-addr`), `/metrics` is absent
    // here: only that address, which a firewall can keep private, serves it.
    if state.config.metrics_on_api {
        routes = routes.route("/metrics", get(metrics::render));
    }
    let routes = routes
        .route(staff::LOGIN_PATH, post(staff::login))
        .route(staff::INVITATION_PATH, post(staff::accept_invitation))
        .route(secret_scanning::GITHUB_PATH, post(secret_scanning::github))
        .merge(oauth::routes())
        .merge(openapi::routes(&state.config.public_url))
        .merge(crate::console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // A route layer, so it sees the matched path template.
        .route_layer(from_fn(metrics::track))
        .with_state(state.clone());
    // The other layers wrap the router once, as one service, outermost
    // first: request id, access log, nosniff and no-store, panics to 500s,
    // hygiene (header bytes and sizes, paths), the request timeout, CORS
    // (answers preflights), client IP, the body limit, then the routes.
    // `Router::layer` would wrap every route in each of them instead, and
    // axum clones each route's stack of wrappers, a box per layer, on every
    // request, a large share of a cheap route's cost (docs/BENCHMARKS.md).
    let layered = ServiceBuilder::new()
        .layer(from_fn(request_id::middleware))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(span)
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(no_store())
        .layer(CatchPanicLayer::custom(hygiene::panic_response))
        .layer(from_fn(hygiene::check))
        .layer(from_fn(hygiene::timeout))
        .layer(state.origins.layer())
        .layer(state.gate.client_ip_layer())
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .service(routes);
    Router::new().fallback_service(layered)
}
