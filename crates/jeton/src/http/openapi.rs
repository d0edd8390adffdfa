//! OpenAPI 3.1 of the API at `/openapi.json`, and Swagger UI (bundled, works
//! offline) at `/docs`. It is the normative detail of every endpoint;
//! `docs/api.md` is the prose around it (credentials, errors, pagination,
//! idempotency).
//!
//! The handlers' annotations give each operation its inputs (whose schemas
//! come from the domain's parsers, see `domain::schema`) and its success.
//! Everything else is derived here, from the route table and the operation's
//! inputs, so that the document and the server cannot disagree:
//!
//! - `security`: one requirement per kind of token the route accepts, with
//!   the ability it needs as the scope;
//! - the error responses: what every request may get (a bad header, headers
//!   too large, the service unavailable), what the guard answers for the
//!   kinds the route accepts, what the extractors answer for the inputs the
//!   operation has (a body: 400 `malformed_json`, 413, 415, 422; a query:
//!   422; an id in the path: 404), and what the handler itself may answer,
//!   declared in [`problems::HANDLER_ERRORS`]. Each is problem+json whose `code` is
//!   one of those listed for its status;
//! - the response headers, the `Idempotency-Key` header's rules, the
//!   pagination parameters' bounds, operation ids and links.
//!
//! `document_matches_the_route_table` (below) fails if the two disagree.

mod document;
mod oauth;
mod problems;
mod schemas;

use axum::{
    Router,
    http::{HeaderValue, Method, header},
};
use serde_json::Value;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa_swagger_ui::SwaggerUi;

pub use document::document;

use super::{routes::PREFIX, state::AppState};
use crate::config::PublicUrl;

/// `/openapi.json` and `/docs`: the document, with the server's
/// `--public-url` as its one server, so that clients need no base URL.
pub fn routes(public_url: &PublicUrl) -> Router<AppState> {
    let mut doc = document().clone();
    doc["servers"] = serde_json::json!([{
        "url": public_url.as_str(),
        "description": "This server, as its `--public-url` names it",
    }]);
    Router::new()
        .merge(SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", doc))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CSP),
        ))
}

/// The reference's policy: its own scripts and styles only, as the
/// console's (API.md §13), but for the icons its stylesheet draws from
/// `data:` URLs and the one `<style>` element the bundled Swagger UI adds,
/// allowed by its hash (a new Swagger UI that adds another fails
/// `the_api_reference_loads_under_its_policy`).
pub const DOCS_CSP: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self' 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The operation of `method` and `path` (a path of the route table).
pub fn operation<'a>(doc: &'a Value, method: &Method, path: &str) -> Option<&'a Value> {
    doc["paths"]
        .get(format!("{PREFIX}{path}"))?
        .get(method.as_str().to_lowercase())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use jeton_auth::TokenKind;
    use serde_json::json;

    use super::{
        document::{kinds, security},
        problems::HANDLER_ERRORS,
        *,
    };
    use crate::http::routes;

    #[test]
    fn document_matches_the_route_table() {
        let doc = document();
        let table = routes::api();
        let mut served = HashSet::new();
        for entry in table.entries() {
            let operation = operation(doc, &entry.method, entry.path)
                .unwrap_or_else(|| panic!("{} {} is documented", entry.method, entry.path));
            assert_eq!(operation["security"], security(&entry.access));
            let requirements = operation["security"].as_array().unwrap();
            let cookie = usize::from(entry.access.kinds.contains(TokenKind::User));
            assert_eq!(requirements.len(), kinds(&entry.access).count() + cookie);
            for requirement in requirements {
                let (name, scopes) = requirement.as_object().unwrap().iter().next().unwrap();
                assert!(doc["components"]["securitySchemes"].get(name).is_some());
                let expected: Vec<Value> = entry
                    .access
                    .ability
                    .iter()
                    .map(|a| json!(a.to_string()))
                    .collect();
                assert_eq!(scopes.as_array().unwrap(), &expected);
            }
            for status in ["401", "403", "503"] {
                assert!(operation["responses"].get(status).is_some(), "{status}");
            }
            served.insert((entry.method.as_str().to_lowercase(), entry.path.to_owned()));
        }
        for (method, path, _) in routes::OAUTH {
            let operation = &doc["paths"][path][method.as_str().to_lowercase()];
            assert!(operation.is_object(), "{method} {path} is documented");
            for status in ["200", "503"] {
                assert!(
                    operation["responses"][status]["headers"]["Pragma"].is_object()
                        || method == Method::GET,
                    "{method} {path} {status}"
                );
            }
        }
        for (path, item) in doc["paths"].as_object().unwrap() {
            if [
                crate::http::staff::LOGIN_PATH,
                crate::http::staff::INVITATION_PATH,
                crate::http::secret_scanning::GITHUB_PATH,
            ]
            .contains(&path.as_str())
            {
                continue;
            }
            let Some(path) = path.strip_prefix(PREFIX) else {
                for method in item.as_object().unwrap().keys() {
                    assert!(
                        routes::OAUTH
                            .iter()
                            .any(|(m, p, _)| m.as_str().to_lowercase() == *method && p == path),
                        "{method} {path} is documented but not served"
                    );
                }
                continue;
            };
            for method in item.as_object().unwrap().keys() {
                assert!(
                    served.contains(&(method.clone(), path.to_owned())),
                    "{method} {path} is documented but not in the route table"
                );
            }
        }
    }

    #[test]
    fn handler_errors_name_routes_of_the_table() {
        let table = routes::api();
        for (method, path, _) in HANDLER_ERRORS {
            assert!(
                table
                    .entries()
                    .iter()
                    .any(|entry| entry.method.as_str() == *method && entry.path == *path),
                "{method} {path}"
            );
        }
    }

    /// The rule every operation, today's and tomorrow's, is born under: a
    /// verb-noun camelCase operationId (unique), a summary, a description,
    /// and its errors documented, `default` included.
    #[test]
    fn every_operation_is_named_summarized_described_and_has_its_errors() {
        const VERBS: &[&str] = &[
            "list",
            "get",
            "create",
            "register",
            "log",
            "place",
            "update",
            "cancel",
            "revoke",
            "rotate",
            "issue",
            "introspect",
            "invite",
            "accept",
            "start",
            "confirm",
            "reset",
            "report",
            "delete",
            "retry",
            "send",
            "set",
            "remove",
            "clear",
            "checkout",
        ];
        let doc = document();
        let mut ids = HashSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let what = format!("{method} {path}");
                let id = operation["operationId"].as_str().unwrap_or_default();
                let verb: String = id.chars().take_while(char::is_ascii_lowercase).collect();
                let noun = &id[verb.len()..];
                assert!(
                    VERBS.contains(&verb.as_str())
                        && noun.starts_with(|c: char| c.is_ascii_uppercase())
                        && noun.chars().all(|c| c.is_ascii_alphanumeric()),
                    "{what}: `{id}` is not verbNoun camelCase with a known verb"
                );
                assert!(ids.insert(id.to_owned()), "{what}: `{id}` is used twice");
                for field in ["summary", "description"] {
                    let text = operation[field].as_str().unwrap_or_default();
                    assert!(!text.trim().is_empty(), "{what} has no {field}");
                }
                let summary = operation["summary"].as_str().unwrap();
                assert!(!summary.ends_with('.'), "{what}: a summary is a title");
                let responses = operation["responses"].as_object().unwrap();
                assert!(responses.contains_key("default"), "{what} has no default");
                let errors = responses
                    .keys()
                    .filter(|status| status.starts_with(['4', '5']))
                    .count();
                assert!(errors > 0, "{what} documents no error");
            }
        }
        for entry in routes::api().entries() {
            let operation = operation(doc, &entry.method, entry.path).unwrap();
            let description = operation["description"].as_str().unwrap();
            assert!(
                description.contains("**Who may call it:**"),
                "{} {}",
                entry.method,
                entry.path
            );
        }
    }

    #[test]
    fn codes_by_status() {
        let doc = document();
        let codes = |method: Method, path: &str, status: &str| -> Vec<String> {
            let operation = operation(doc, &method, path).unwrap();
            operation["responses"][status]["content"]["application/problem+json"]["schema"]["allOf"]
                [1]["properties"]["code"]["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path} {status}"))
                .iter()
                .map(|code| code.as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            codes(Method::GET, "/me", "401"),
            ["unauthenticated", "invalid_token"]
        );
        let forbidden = codes(Method::GET, "/products", "403");
        assert!(forbidden.contains(&"origin_not_allowed".to_owned()));
        assert!(forbidden.contains(&"secret_key_in_browser".to_owned()));
        assert_eq!(
            codes(Method::GET, "/me", "403"),
            ["insufficient_scope", "origin_not_allowed"]
        );
        for (method, path) in [
            (Method::POST, "/orders"),
            (Method::DELETE, "/me/tokens"),
            (Method::DELETE, "/me/tokens/{id}"),
            (Method::POST, "/auth/logout"),
            (Method::POST, "/admin/products"),
            (Method::POST, "/staff/logout"),
        ] {
            assert!(
                codes(method.clone(), path, "403").contains(&"csrf_failed".to_owned()),
                "{method} {path}"
            );
        }
        for (method, path) in [(Method::GET, "/me"), (Method::GET, "/admin/clients")] {
            assert!(
                !codes(method.clone(), path, "403").contains(&"csrf_failed".to_owned()),
                "{method} {path}"
            );
        }
        let security = &operation(doc, &Method::GET, "/me").unwrap()["security"];
        assert!(
            security
                .as_array()
                .unwrap()
                .contains(&json!({"cookie_session": ["profile:read"]}))
        );
        assert_eq!(
            doc["components"]["securitySchemes"]["cookie_session"]["in"],
            "cookie"
        );
        let login = codes(Method::POST, "/auth/login", "400");
        for code in ["malformed_json", "invalid_credentials", "invalid_request"] {
            assert!(login.contains(&code.to_owned()), "{code}");
        }
        assert_eq!(
            codes(Method::POST, "/auth/login", "422"),
            ["validation_failed"]
        );
        assert!(codes(Method::GET, "/me/orders/{id}", "404").contains(&"not_found".to_owned()));
        assert!(
            operation(doc, &Method::GET, "/me").unwrap()["responses"]
                .get("404")
                .is_none()
        );
        assert_eq!(
            codes(Method::POST, "/orders", "409"),
            ["insufficient_stock", "idempotency_key_in_use"]
        );
        assert!(
            codes(Method::POST, "/customers", "503").contains(&"service_unavailable".to_owned())
        );
    }
}
