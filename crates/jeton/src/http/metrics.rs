//! Prometheus metrics at `/metrics`. Labels are bounded and never carry a
//! token or a customer id: routes are the matched templates
//! (`/api/v1/me/orders/{id}`), methods are the standard ones or `other`,
//! statuses are numbers, token kinds are names. Nothing a client sends
//! becomes a label as it is: a made-up method (any token is a valid one, of
//! any length) would otherwise add a series per request.
//!
//! What is counted where:
//! - requests and latency by route and status: [`track`], here;
//! - auth outcomes by kind and result, verification cache hits, misses and
//!   negatives, rate-limit refusals: in `jeton-auth`;
//! - catalogue cache hits and misses: `catalog_cache.rs`;
//! - customer cache hits and misses: `customer_cache.rs`;
//! - with `--redis-url`, the limit backend in use (`jeton_limit_backend_redis`,
//!   1 while Redis is shared, 0 while limits fall back to this process) and
//!   the fallbacks (`jeton_limit_backend_redis_fallbacks_total`), the
//!   requests Redis answered too late for (`…_slow_answers_total`), and
//!   where limit decisions were made (`jeton_limit_decisions_total`): in
//!   `jeton-auth`'s `limits`;
//! - connection pool usage: read at scrape time, here.

use std::{sync::OnceLock, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::Method,
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use quick_cache::{Equivalent, sync::Cache};

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

/// One request series: its counter and its latency histogram.
#[derive(Clone)]
struct Series {
    requests: Counter,
    latency: Histogram,
}

/// The `method` label: one of a fixed set, so that a client cannot add
/// series by inventing methods.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

#[derive(PartialEq, Eq, Hash)]
struct SeriesKey {
    method: &'static str,
    route: String,
    status: u16,
}

/// A [`SeriesKey`] borrowed from the request: looking a series up allocates
/// nothing. Hashes as the key does (same fields, same order).
#[derive(Hash)]
struct SeriesRef<'a> {
    method: &'static str,
    route: &'a str,
    status: u16,
}

impl Equivalent<SeriesKey> for SeriesRef<'_> {
    fn equivalent(&self, key: &SeriesKey) -> bool {
        self.method == key.method && self.route == key.route && self.status == key.status
    }
}

/// The handles of every series seen, so that a request costs a lookup here
/// rather than three label strings and two lookups in the recorder. The
/// label set is bounded (matched templates, methods, statuses); the bound
/// here only matters if that ever stops being true.
fn series(method: &'static str, route: &str, status: u16) -> Series {
    static SERIES: OnceLock<Cache<SeriesKey, Series>> = OnceLock::new();
    let cache = SERIES.get_or_init(|| Cache::new(4096));
    let key = SeriesRef {
        method,
        route,
        status,
    };
    if let Some(series) = cache.get(&key) {
        return series;
    }
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    let series = Series {
        requests: metrics::counter!("jeton_http_requests_total", &labels),
        latency: metrics::histogram!("jeton_http_request_duration_seconds", &labels),
    };
    cache.insert(
        SeriesKey {
            method,
            route: route.to_owned(),
            status,
        },
        series.clone(),
    );
    series
}

pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    let series = series(
        method,
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        response.status().as_u16(),
    );
    series.requests.increment(1);
    series.latency.record(started.elapsed().as_secs_f64());
    response
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The recorder keeps every histogram sample until it folds them into the
/// buckets, at a scrape or at upkeep. Without upkeep, a server that nobody
/// scrapes would keep every request's latency: memory growing with traffic
/// (tens of MB a minute under a flood, found with `malloc_stats`). The
/// server runs this for as long as it serves.
pub async fn upkeep() {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        tick.tick().await;
        handle().run_upkeep();
    }
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
