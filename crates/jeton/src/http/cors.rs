//! CORS. A preflight (`OPTIONS`) carries no token, so it is answered for
//! any origin that some active publishable client allows; the real request
//! is then checked against the origins of the key it carries (in the route
//! guard, `jeton_auth::origin`). Unknown origins get no CORS headers at all
//! (tower-http adds the allowed methods, headers and exposed headers
//! whatever the origin; they are removed again when it was not allowed), so
//! the browser blocks the page from reading anything.
//!
//! An origin that a client lists exactly (not through `*`) also gets
//! `Access-Control-Allow-Credentials: true`, so that the shop's own pages
//! can use cookie sessions (`jeton_auth::session`); with it the allowed
//! origin is always the request's own, never `*`.
//!
//! The set of allowed origins is held in memory: rebuilt at once when this
//! process changes a client, and when the change feed reports a change made
//! elsewhere (the CLI, another server process; see `store/changes.rs`).

use std::{
    collections::HashSet,
    sync::{Arc, RwLock},
    time::Duration,
};

use axum::{
    http::{HeaderName, HeaderValue, Method, header},
    response::Response,
};
use jeton_auth::session::CSRF_HEADER;
use tower::{layer::util::Stack, util::MapResponseLayer};
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};

use super::request_id::X_REQUEST_ID;
use crate::store::Db;

#[derive(Debug, Default)]
struct Origins {
    exact: HashSet<String>,
    any: bool,
}

/// CORS, and nothing of it for an origin that is not allowed.
pub type Layer = Stack<CorsLayer, MapResponseLayer<fn(Response) -> Response>>;

/// Without `Access-Control-Allow-Origin` the other CORS headers say nothing
/// useful to the caller, only what the API would allow another site.
fn no_cors_headers_for_unknown_origins(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        for name in [
            header::ACCESS_CONTROL_ALLOW_METHODS,
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            header::ACCESS_CONTROL_MAX_AGE,
        ] {
            headers.remove(name);
        }
    }
    response
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

    /// Whether some active client lists `origin` itself: its pages may
    /// send and receive cookies.
    pub fn allows_credentials(&self, origin: &HeaderValue) -> bool {
        let origins = self.0.read().expect("origin registry lock");
        origin
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

    pub fn layer(&self) -> Layer {
        let (registry, listed) = (self.clone(), self.clone());
        let cors = CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin, _| {
                registry.allows(origin)
            }))
            .allow_credentials(AllowCredentials::predicate(move |origin, _| {
                listed.allows_credentials(origin)
            }))
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                CSRF_HEADER,
            ])
            .expose_headers([
                HeaderName::from_static("ratelimit-limit"),
                HeaderName::from_static("ratelimit-remaining"),
                HeaderName::from_static("ratelimit-reset"),
                header::RETRY_AFTER,
                X_REQUEST_ID.clone(),
            ])
            .max_age(Duration::from_secs(600));
        let strip: fn(Response) -> Response = no_cors_headers_for_unknown_origins;
        Stack::new(cors, MapResponseLayer::new(strip))
    }
}
