//! The demo storefront: a small web app on its own origin that calls the
//! API the way a shop's own site would, with a publishable key and, once a
//! customer logs in, their user token. The files under `storefront/files/`
//! are plain HTML, CSS and ES modules, embedded in the binary and served as
//! they are (no build step), so a shop developer can copy them.
//!
//! The page learns where the API is and which key to use from
//! `/config.json`, written here from the serving process' settings: nothing
//! of either is in the files.

use std::net::SocketAddr;

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

/// What `/config.json` tells the page.
#[derive(Clone)]
pub struct StorefrontConfig {
    /// Where the API listens.
    pub api_addr: SocketAddr,
    /// The API's base URL when it is not simply `http://<api_addr>` (behind
    /// a proxy, say). `None`: derived from `api_addr` and the page's host.
    pub api_url: Option<String>,
    /// The publishable key the page calls the API with. Public by design:
    /// anyone who opens the page can read it.
    pub publishable_key: String,
}

impl std::fmt::Debug for StorefrontConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorefrontConfig")
            .field("api_addr", &self.api_addr)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

/// (path, content type, body) of every embedded file.
const FILES: [(&str, &str, &str); 8] = [
    ("/", HTML, include_str!("files/index.html")),
    ("/style.css", CSS, include_str!("files/style.css")),
    ("/app.js", JS, include_str!("files/app.js")),
    ("/api.js", JS, include_str!("files/api.js")),
    ("/session.js", JS, include_str!("files/session.js")),
    ("/cart.js", JS, include_str!("files/cart.js")),
    ("/format.js", JS, include_str!("files/format.js")),
    ("/favicon.svg", SVG, include_str!("files/favicon.svg")),
];

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// The storefront's routes: the files and `/config.json`.
pub fn router(config: StorefrontConfig) -> Router {
    let mut router = Router::new().route("/config.json", get(config_json));
    for (path, content_type, body) in FILES {
        router = router.route(
            path,
            get(
                move |State(config): State<StorefrontConfig>, headers: HeaderMap| async move {
                    respond(&config, &headers, content_type, body)
                },
            ),
        );
    }
    router.fallback(not_found).with_state(config)
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// The API's base URL for a page loaded through `headers`' `Host`. An API
/// on a loopback or unspecified address is called on the host name the
/// page came from (`localhost` or `127.0.0.1`), since browsers scope
/// cookies and users type either.
fn api_url(config: &StorefrontConfig, headers: &HeaderMap) -> String {
    if let Some(url) = &config.api_url {
        return url.trim_end_matches('/').to_owned();
    }
    let ip = config.api_addr.ip();
    if ip.is_loopback() || ip.is_unspecified() {
        let page_host = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .and_then(|host| host.parse::<axum::http::uri::Authority>().ok())
            .map(|authority| authority.host().to_owned());
        if let Some(host) = page_host {
            return format!("http://{host}:{}", config.api_addr.port());
        }
        if ip.is_unspecified() {
            return format!("http://127.0.0.1:{}", config.api_addr.port());
        }
    }
    format!("http://{}", config.api_addr)
}

async fn config_json(State(config): State<StorefrontConfig>, headers: HeaderMap) -> Response {
    let body = json!({
        "api_url": api_url(&config, &headers),
        "publishable_key": config.publishable_key,
    })
    .to_string();
    respond(&config, &headers, "application/json", body)
}

/// Every answer: no caching (the key in `config.json` changes with each
/// `serve --demo`, the files with each build), and a Content Security
/// Policy that lets the page run only its own scripts and talk only to the
/// API: a first line against injected scripts, which could otherwise read
/// the user token (see docs/storefront.md).
fn respond(
    config: &StorefrontConfig,
    headers: &HeaderMap,
    content_type: &str,
    body: impl Into<axum::body::Body>,
) -> Response {
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self' {}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        api_url(config, headers)
    );
    let mut response = (StatusCode::OK, body.into()).into_response();
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("ASCII"),
    );
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        out.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// The origins a browser gives pages served on `addr`: `http://<addr>`
/// and, for a loopback or unspecified address, both loopback spellings
/// (`127.0.0.1` or `[::1]`, and `localhost`), which users type
/// interchangeably.
pub fn origins(addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    let ip = addr.ip();
    if ip.is_unspecified() || ip.is_loopback() {
        let numeric = if ip.is_ipv4() {
            format!("http://127.0.0.1:{port}")
        } else {
            format!("http://[::1]:{port}")
        };
        vec![numeric, format!("http://localhost:{port}")]
    } else {
        vec![format!("http://{addr}")]
    }
}

/// The URL to open for a storefront listening on `addr`.
pub fn url(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://127.0.0.1:{}/", addr.port())
    } else {
        format!("http://{addr}/")
    }
}
