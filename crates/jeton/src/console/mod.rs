//! The operator's console (API.md §13): a page for the shop's people,
//! served at `/console/` on the API's own address so that it calls the
//! admin API with the staff session's cookie and no CORS. The files under
//! `console/files/` are plain HTML, CSS and ES modules, embedded in the
//! binary and served as they are (no build step), like the storefront's.
//!
//! Every answer carries a strict Content Security Policy: the page runs
//! only its own scripts and styles and talks only to its own origin, so an
//! injected string can neither run nor send the page's CSRF token
//! elsewhere. The session itself never reaches a script (`HttpOnly`).

use axum::{
    Router,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};

/// Where the console is served.
pub const PATH: &str = "/console";

/// The console's policy (API.md §13).
pub const CSP: &str =
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// (path under [`PATH`], content type, body) of every embedded file.
const FILES: [(&str, &str, &str); 18] = [
    ("/", HTML, include_str!("files/index.html")),
    ("/style.css", CSS, include_str!("files/style.css")),
    ("/favicon.svg", SVG, include_str!("files/favicon.svg")),
    ("/app.js", JS, include_str!("files/app.js")),
    ("/api.js", JS, include_str!("files/api.js")),
    ("/ui.js", JS, include_str!("files/ui.js")),
    ("/chart.js", JS, include_str!("files/chart.js")),
    ("/roles.js", JS, include_str!("files/roles.js")),
    ("/signin.js", JS, include_str!("files/signin.js")),
    ("/overview.js", JS, include_str!("files/overview.js")),
    ("/clients.js", JS, include_str!("files/clients.js")),
    ("/products.js", JS, include_str!("files/products.js")),
    ("/customers.js", JS, include_str!("files/customers.js")),
    ("/orders.js", JS, include_str!("files/orders.js")),
    ("/audit.js", JS, include_str!("files/audit.js")),
    ("/account.js", JS, include_str!("files/account.js")),
    ("/staff.js", JS, include_str!("files/staff.js")),
    ("/webhooks.js", JS, include_str!("files/webhooks.js")),
];

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// The console's routes, for the API's router: `/console` sends the
/// browser to `/console/`, where the page is.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new().route(PATH, get(|| async { Redirect::permanent("/console/") }));
    for (path, content_type, body) in FILES {
        router = router.route(
            &format!("{PATH}{path}"),
            get(move || async move { respond(content_type, body) }),
        );
    }
    router
}

/// One file with the console's headers. `Cache-Control` is the API's
/// `no-store` (set on every response): the files change with each build
/// and are small.
fn respond(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    out.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    out.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use crate::webhooks::events::EVENT_TYPES;

    /// The webhooks page offers every event type the API takes, and no other.
    #[test]
    fn the_webhooks_page_lists_every_event_type() {
        let js = include_str!("files/webhooks.js");
        let start = js.find("export const EVENT_TYPES = [").unwrap();
        let end = start + js[start..].find("];").unwrap();
        let listed: Vec<&str> = js[start..end].split('\'').skip(1).step_by(2).collect();
        assert_eq!(listed, EVENT_TYPES);
    }
}
