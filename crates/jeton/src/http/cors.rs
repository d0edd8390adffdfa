//! CORS. A preflight (`OPTIONS`) carries no token, so it is answered for
//! any origin that some active publishable client allows; the real request
//! is then checked against the origins of the key it carries (in the route
//! guard, `jeton_auth::origin`). Unknown origins get no CORS headers at all
//! (tower-http adds the allowed methods, headers and exposed headers
//! whatever the origin; they are removed again when it was not allowed), so
//! the browser blocks the page from reading anything.
//!
//! The OAuth 2.0 endpoints (`/oauth/token`, `/oauth/revoke`,
//! `/oauth/introspect`) never get CORS headers, preflights included: they
//! are for servers, and a page that holds a secret key has leaked it.
//!
//! Nor do the admin API (`/api/v1/admin/…`) and the staff's routes
//! (`/api/v1/staff/…`): the console is served from the API's own origin,
//! which needs no CORS, and scripts call the admin API from servers. The
//! console's own files (`/console/…`) get none either: no other page has a
//! reason to read them.
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
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
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

/// Paths that never answer with CORS headers, preflights included.
pub fn never_cors(path: &str) -> bool {
    super::oauth::is_oauth_path(path)
        || is_console_path(path)
        || ["/admin", "/staff"].iter().any(|area| {
            path.strip_prefix(super::routes::PREFIX)
                .and_then(|rest| rest.strip_prefix(area))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
}

/// The console's page and files: for the API's own origin only.
fn is_console_path(path: &str) -> bool {
    path.strip_prefix(crate::console::PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[derive(Debug, Default)]
struct Origins {
    exact: HashSet<String>,
    any: bool,
    /// The refresh that read these: see [`OriginRegistry::refresh`].
    read_by: u64,
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
pub struct OriginRegistry(Arc<Registry>);

#[derive(Debug, Default)]
struct Registry {
    origins: RwLock<Origins>,
    /// Numbers the refreshes in the order they start.
    refreshes: AtomicU64,
    #[cfg(test)]
    pause: crate::load_pause::LoadPause,
}

impl OriginRegistry {
    fn origins(&self) -> std::sync::RwLockReadGuard<'_, Origins> {
        self.0.origins.read().expect("origin registry lock")
    }

    pub fn allows(&self, origin: &HeaderValue) -> bool {
        let origins = self.origins();
        origins.any
            || origin
                .to_str()
                .is_ok_and(|origin| origins.exact.contains(origin))
    }

    /// Whether some active client lists `origin` itself: its pages may
    /// send and receive cookies.
    pub fn allows_credentials(&self, origin: &HeaderValue) -> bool {
        let origins = self.origins();
        origin
            .to_str()
            .is_ok_and(|origin| origins.exact.contains(origin))
    }

    /// Reloads the set from the database. Refreshes run at once (one for
    /// this process's change, one for the change feed's news): what a
    /// refresh read is kept only if no refresh that started after it has
    /// been kept, since a later one read the database later.
    pub async fn refresh(&self, db: &Db) -> Result<(), sqlx::Error> {
        let this = self.0.refreshes.fetch_add(1, Ordering::AcqRel) + 1;
        let lists = db.active_publishable_origins().await?;
        #[cfg(test)]
        self.0.pause.here().await;
        let mut fresh = Origins {
            read_by: this,
            ..Origins::default()
        };
        for origin in lists.iter().flat_map(|list| list.split_ascii_whitespace()) {
            if origin == "*" {
                fresh.any = true;
            } else {
                fresh.exact.insert(origin.to_owned());
            }
        }
        let mut origins = self.0.origins.write().expect("origin registry lock");
        if origins.read_by < this {
            *origins = fresh;
        }
        Ok(())
    }

    pub fn layer(&self) -> Layer {
        // Staff sessions and the admin API are for the API's own origin
        // (the console) and for servers: no other page may read them.
        let (registry, listed) = (self.clone(), self.clone());
        let cors = CorsLayer::new()
            // The OAuth endpoints are for servers: no page may read them.
            .allow_origin(AllowOrigin::predicate(move |origin, request| {
                !never_cors(request.uri.path()) && registry.allows(origin)
            }))
            .allow_credentials(AllowCredentials::predicate(move |origin, _| {
                listed.allows_credentials(origin)
            }))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
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

#[cfg(test)]
mod tests {
    use jeton_auth::AbilitySet;

    use crate::identity::TOKENS;

    use super::*;
    use crate::{
        domain::{
            abilities::PRODUCTS_READ,
            client::{ClientKind, NewClient},
        },
        store::{DbOptions, audit::Audit},
    };

    /// A refresh that read the database before a new client was made, and
    /// finishes after the refresh that read it since: what it read is
    /// dropped, and the new client's origin stays allowed. Without the
    /// refresh numbers, the stale set would replace the fresh one until the
    /// next change.
    #[tokio::test]
    async fn a_refresh_overtaken_by_a_later_one_is_dropped() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("jeton.db").display());
        let db = Db::connect(&url, &DbOptions::default())
            .await
            .expect("a database");
        let registry = OriginRegistry::default();
        let origin = HeaderValue::from_static("https://shop.example");

        let paused = registry.0.pause.arm();
        let stale = tokio::spawn({
            let (registry, db) = (registry.clone(), db.clone());
            async move { registry.refresh(&db).await }
        });
        paused.wait().await; // it has read: no client yet
        let client = NewClient {
            name: "shop".into(),
            kind: ClientKind::Publishable,
            abilities: AbilitySet::new([PRODUCTS_READ]),
            allowed_origins: vec!["https://shop.example".into()],
            rate_limit_per_minute: None,
            per_ip_rate_limit_per_minute: None,
        };
        let key = TOKENS.generate(ClientKind::Publishable.token_kind());
        db.create_client(&client, &key, &Audit::cli())
            .await
            .expect("a client");
        registry.refresh(&db).await.expect("a refresh");
        assert!(registry.allows(&origin));

        paused.wait().await; // now the stale one keeps what it read, or not
        stale.await.expect("the refresh").expect("a refresh");
        assert!(registry.allows(&origin));
        assert!(registry.allows_credentials(&origin));
    }
}
