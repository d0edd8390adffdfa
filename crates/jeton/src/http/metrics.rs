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
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::state::AppState;

/// Request latency buckets, in seconds: from a cached read (well under a
/// millisecond) to a request timing out (30 s).
const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0, 30.0,
];

/// The process-wide recorder (metrics are global by nature; tests build many
/// apps in one process and share it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        // Latency as a histogram, not the exporter's default summary:
        // buckets add up across servers, quantiles do not.
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("jeton_http_request_duration_seconds".to_owned()),
                &LATENCY_BUCKETS,
            )
            .expect("latency buckets")
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
    metrics::counter!("jeton_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.clone())
        .increment(1);
    metrics::histogram!("jeton_http_request_duration_seconds", "method" => method, "route" => route, "status" => status)
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
