//! Prometheus metrics at `/metrics`. Labels are bounded and never carry a
//! token or a customer id: routes are the matched templates
//! (`/api/v1/me/orders/{id}`), statuses are numbers, token kinds are names.
//!
//! What is counted where:
//! - requests and latency by route and status: [`track`], here;
//! - auth outcomes by kind and result, verification cache hits, misses and
//!   negatives, rate-limit refusals: in `jeton-auth`;
//! - catalogue cache hits and misses: `catalog_cache.rs`;
//! - connection pool usage: read at scrape time, here.

use std::{sync::OnceLock, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::state::AppState;

/// The process-wide recorder (metrics are global by nature; tests build many
/// apps in one process and share it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("the Prometheus recorder is installed once")
    })
}

pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("jeton_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("jeton_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let (size, idle) = state.db.pool_usage();
    metrics::gauge!("jeton_db_pool_connections").set(f64::from(size));
    metrics::gauge!("jeton_db_pool_idle_connections").set(idle as f64);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        handle().render(),
    )
}
