//! Probes for load balancers and orchestrators. No authentication.

use axum::{extract::State, http::StatusCode};

use super::state::AppState;

/// The process is up. Touches nothing else: it is also the baseline of the
/// benchmarks.
pub async fn healthz() -> &'static str {
    "ok"
}

/// The database answers.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.db.ping().await {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
    }
}
