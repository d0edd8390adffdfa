//! CORS. A preflight (`OPTIONS`) carries no token, so it is answered for
//! any origin that some active publishable client allows; the real request
//! is then checked against the origins of the key it carries (in the route
//! guard, `jeton_auth::origin`). Unknown origins get no CORS headers, so the
//! browser blocks the page from reading anything.
//!
//! The set of allowed origins is held in memory: rebuilt at once when this
//! process changes a client, and every few seconds to pick up changes made
//! elsewhere (the CLI, another server process).

use std::{
    collections::HashSet,
    sync::{Arc, RwLock},
    time::Duration,
};

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::request_id::X_REQUEST_ID;
use crate::store::Db;

/// How often origins changed by other processes are picked up.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct Origins {
    exact: HashSet<String>,
    any: bool,
}

/// The origins some active publishable client allows.
#[derive(Debug, Clone, Default)]
pub struct OriginRegistry(Arc<RwLock<Origins>>);

impl OriginRegistry {
    pub fn allows(&self, origin: &HeaderValue) -> bool {
        let origins = self.0.read().expect("origin registry lock");
        origins.any
            || origin
                .to_str()
                .is_ok_and(|origin| origins.exact.contains(origin))
    }

    /// Reloads the set from the database.
    pub async fn refresh(&self, db: &Db) -> Result<(), sqlx::Error> {
        let lists = db.active_publishable_origins().await?;
        let mut fresh = Origins::default();
        for origin in lists.iter().flat_map(|list| list.split_ascii_whitespace()) {
            if origin == "*" {
                fresh.any = true;
            } else {
                fresh.exact.insert(origin.to_owned());
            }
        }
        *self.0.write().expect("origin registry lock") = fresh;
        Ok(())
    }

    /// Keeps the set fresh until the process ends.
    pub fn spawn_refresher(&self, db: Db) {
        let registry = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH_INTERVAL);
            loop {
                tick.tick().await;
                if let Err(error) = registry.refresh(&db).await {
                    tracing::warn!(%error, "could not refresh allowed origins");
                }
            }
        });
    }

    pub fn layer(&self) -> CorsLayer {
        let registry = self.clone();
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin, _| {
                registry.allows(origin)
            }))
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([
                HeaderName::from_static("ratelimit-limit"),
                HeaderName::from_static("ratelimit-remaining"),
                HeaderName::from_static("ratelimit-reset"),
                header::RETRY_AFTER,
                X_REQUEST_ID.clone(),
            ])
            .max_age(Duration::from_secs(600))
    }
}
