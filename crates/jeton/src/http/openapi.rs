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
//!   declared in [`HANDLER_ERRORS`]. Each is problem+json whose `code` is
//!   one of those listed for its status;
//! - the response headers, the `Idempotency-Key` header's rules, the
//!   pagination parameters' bounds, operation ids and links.
//!
//! `document_matches_the_route_table` (below) fails if the two disagree.

mod oauth;

use std::{collections::BTreeMap, sync::LazyLock};

use axum::{Router, http::Method};
use jeton_auth::{Access, TokenKind};
use serde_json::{Map, Value, json};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use super::{
    admin, catalog, customers, extract, hygiene, orders,
    routes::{self, PREFIX, RouteEntry},
    state::AppState,
    tokens,
};
use crate::{
    domain::{FieldError, order::MAX_IDEMPOTENCY_KEY_LEN, password, product},
    pagination::{DEFAULT_LIMIT, MAX_LIMIT},
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Jeton",
        description = "A storefront API with first-class client keys and user tokens. \
            Every request under `/api/v1` carries `Authorization: Bearer <token>`: a publishable key \
            (`jt_pk_`), a secret key (`jt_sk_`), an OAuth 2.0 access token (`jt_at_`) or a user token \
            (`jt_ut_`); each operation lists the kinds it accepts, with the ability it needs. The shop's \
            own storefront may carry its user token in a session cookie instead (`cookie_session`). \
            Errors are RFC 9457 problem+json with a stable `code`. The OAuth 2.0 endpoints (`/oauth/*` \
            and the server's metadata) take form bodies and answer errors as RFC 6749 JSON."
    ),
    paths(
        catalog::list_products,
        catalog::get_product,
        customers::register,
        customers::login,
        customers::logout,
        customers::me,
        tokens::list,
        tokens::create,
        tokens::revoke,
        tokens::revoke_all,
        orders::place,
        orders::list_mine,
        orders::get_mine,
        admin::products::create,
        admin::products::update,
        admin::clients::create,
        admin::clients::list,
        admin::clients::get,
        admin::clients::rotate,
        admin::clients::revoke,
        admin::customers::revoke_tokens,
        admin::orders::cancel,
        admin::audit::list,
    ),
    components(schemas(FieldError)),
    tags(
        (name = "catalog", description = "Products; publishable keys, secret keys and user tokens"),
        (name = "customers", description = "Registration and login through a client key; profile with a user token"),
        (name = "tokens", description = "A customer's own tokens"),
        (name = "orders", description = "Placing and reading one's own orders"),
        (name = "admin", description = "Secret keys with the `admin` ability"),
        (name = "oauth", description = "OAuth 2.0 for server-side clients: the client credentials grant, introspection, revocation, metadata"),
    )
)]
struct ApiDoc;

/// One error answer: its status, its stable `code`, and when it is given.
#[derive(Debug, Clone, Copy)]
pub struct Problem {
    pub status: u16,
    pub code: &'static str,
    pub when: &'static str,
}

const fn problem(status: u16, code: &'static str, when: &'static str) -> Problem {
    Problem { status, code, when }
}

const HASHING_BUSY: Problem = problem(
    503,
    "service_unavailable",
    "the password-hashing queue is full; retry after `Retry-After`",
);

/// What a handler answers beyond its authentication and its inputs, by
/// method and path in the route table. Everything else is derived.
pub const HANDLER_ERRORS: &[(&str, &str, &[Problem])] = &[
    (
        "POST",
        "/customers",
        &[
            problem(409, "email_taken", "an account with this email exists"),
            problem(
                429,
                "rate_limited",
                "too many registrations from this IP address",
            ),
            HASHING_BUSY,
        ],
    ),
    (
        "POST",
        "/auth/login",
        &[
            problem(
                400,
                "invalid_credentials",
                "the email or password is wrong (one answer for both)",
            ),
            problem(
                403,
                "origin_not_allowed",
                "a cookie session asked for without an `Origin` that the key's client lists exactly",
            ),
            problem(
                429,
                "rate_limited",
                "too many failed logins for this email or from this IP address",
            ),
            HASHING_BUSY,
        ],
    ),
    (
        "POST",
        "/orders",
        &[
            problem(
                400,
                "invalid_idempotency_key",
                "the `Idempotency-Key` is not 1 to 255 printable ASCII characters, or was sent twice",
            ),
            problem(
                409,
                "insufficient_stock",
                "a product has less stock than ordered; nothing was written",
            ),
            problem(
                409,
                "idempotency_key_in_use",
                "a request with this `Idempotency-Key` is still being processed",
            ),
            problem(
                422,
                "idempotency_key_reused",
                "this `Idempotency-Key` came with a different order",
            ),
            problem(
                429,
                "rate_limited",
                "the customer's orders per minute are used up",
            ),
        ],
    ),
    (
        "POST",
        "/me/tokens",
        &[
            problem(
                403,
                "session_cannot_mint",
                "the request is authenticated by a session cookie, which never mints a token",
            ),
            problem(
                422,
                "token_limit_reached",
                "the customer holds the most live tokens made through this endpoint; revoke one first",
            ),
        ],
    ),
    (
        "POST",
        "/admin/products",
        &[problem(409, "sku_taken", "another product has this SKU")],
    ),
    (
        "PATCH",
        "/admin/products/{id}",
        &[
            problem(409, "sku_taken", "another product has this SKU"),
            problem(
                409,
                "insufficient_stock",
                "`stock_delta` would take the stock below zero",
            ),
            problem(
                409,
                "stock_limit_exceeded",
                "`stock_delta` would take the stock above 1000000000",
            ),
        ],
    ),
];

/// The security scheme of each kind of token a route may accept, and what
/// it says: a route that accepts a kind without one fails the document's
/// build (and so its test).
fn scheme(kind: TokenKind) -> (&'static str, Value) {
    let bearer = |format: &str, description: &str| {
        json!({
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": format,
            "description": description,
        })
    };
    match kind {
        TokenKind::Publishable => (
            "publishable_key",
            bearer(
                "jt_pk_…",
                "A client's publishable key: public by design, for storefronts. From a browser, \
                 only from the client's allowed origins. Rate limited per key and per client IP.",
            ),
        ),
        TokenKind::Secret => (
            "secret_key",
            bearer(
                "jt_sk_…",
                "A client's secret key, for servers only: refused (and recorded as leaked) when \
                 a browser sends it. Rate limited per key.",
            ),
        ),
        TokenKind::User => (
            "user_token",
            bearer(
                "jt_ut_…",
                "A customer's token, from `POST /api/v1/auth/login` or `POST /api/v1/me/tokens`.",
            ),
        ),
        TokenKind::Access => (
            "oauth2_access_token",
            bearer(
                "jt_at_…",
                "An OAuth 2.0 access token a secret client obtained from `POST /oauth/token` \
                 (client credentials grant). Accepted wherever the client's secret key is, with \
                 the token's scope as its abilities; refused from browsers like a secret key; \
                 counted toward the client's limit.",
            ),
        ),
        other => panic!("no security scheme for {} tokens", other.name()),
    }
}

/// The name of the cookie session's scheme: a user token in the
/// `jeton_session` cookie, accepted wherever a user token is.
const COOKIE_SESSION: &str = "cookie_session";

fn cookie_session_scheme() -> Value {
    json!({
        "type": "apiKey",
        "in": "cookie",
        "name": "jeton_session",
        "description": "A cookie session, for the shop's own storefront: the user token a login with \
            `\"session\": \"cookie\"` set in the `HttpOnly` cookie `jeton_session`. Used only \
            when the request has no `Authorization` header, and only with an `Origin` that \
            the token's client lists exactly (else 403 `origin_not_allowed`). `POST`, `PUT`, \
            `PATCH` and `DELETE` also need the header `X-CSRF-Token` equal to the \
            `jeton_csrf` cookie (else 403 `csrf_failed`). A dead session cookie is 401 \
            `invalid_token`, and the answer clears both cookies.",
    })
}

/// Whether the route's success may set or clear a cookie session's cookies:
/// the login sets them, and ending the session clears them.
fn sets_session_cookies(entry: &RouteEntry) -> bool {
    matches!(
        (entry.method.as_str(), entry.path),
        ("POST", "/auth/login")
            | ("POST", "/auth/logout")
            | ("DELETE", "/me/tokens")
            | ("DELETE", "/me/tokens/{id}")
    )
}

/// Whether a request with `method` authenticated by the session cookie
/// needs the CSRF header.
fn is_unsafe(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// The kinds of token `access` accepts, in a stable order.
fn kinds(access: &Access) -> impl Iterator<Item = TokenKind> + '_ {
    TokenKind::ALL
        .into_iter()
        .filter(|kind| access.kinds.contains(*kind))
}

/// The operation's `security`: any one of the kinds, holding the ability;
/// a user token also in the session cookie.
pub fn security(access: &Access) -> Value {
    let scopes: Vec<String> = access.ability.iter().map(ToString::to_string).collect();
    let mut requirements: Vec<Value> = kinds(access)
        .map(|kind| json!({ scheme(kind).0: scopes }))
        .collect();
    if access.kinds.contains(TokenKind::User) {
        requirements.push(json!({ COOKIE_SESSION: scopes }));
    }
    Value::Array(requirements)
}

/// Everything an operation may answer with a problem.
fn problems(entry: &RouteEntry, operation: &Value) -> Vec<Problem> {
    let mut all = vec![
        problem(
            400,
            "invalid_header",
            "a header holds bytes other than visible ASCII, space and tab",
        ),
        problem(
            400,
            "invalid_request",
            "the `Authorization` header is malformed: empty, sent twice, over 1 KiB, \
             not ASCII; or a token is in the query string",
        ),
        problem(
            401,
            "unauthenticated",
            "no bearer token (nor a session cookie, where user tokens are accepted)",
        ),
        problem(
            401,
            "invalid_token",
            "the token (or the session cookie) is malformed, unknown, revoked or expired",
        ),
        problem(
            403,
            "insufficient_scope",
            "this kind of token is not accepted here, or the token lacks the ability",
        ),
        problem(
            429,
            "rate_limited",
            "too many failed authentications from this IP address",
        ),
        problem(
            431,
            "headers_too_large",
            "a header value is over 8 KiB, or all of them over 32 KiB",
        ),
        problem(
            503,
            "service_unavailable",
            "the database or the token store is unavailable or busy, or the request took \
             over 30 s; retry after `Retry-After`",
        ),
    ];
    let accepts = |kind| entry.access.kinds.contains(kind);
    if accepts(TokenKind::Publishable) {
        all.push(problem(
            403,
            "origin_not_allowed",
            "the publishable key was sent from an origin its client does not allow",
        ));
    }
    if accepts(TokenKind::User) {
        all.push(problem(
            403,
            "origin_not_allowed",
            "a session cookie was sent without an `Origin` that its token's client lists exactly",
        ));
        if is_unsafe(&entry.method) {
            all.push(problem(
                403,
                "csrf_failed",
                "the session cookie came without `X-CSRF-Token` equal to the `jeton_csrf` cookie",
            ));
        }
    }
    if accepts(TokenKind::Secret) {
        all.push(problem(
            403,
            "secret_key_in_browser",
            "the secret key (or an access token) was sent by a browser (with `Origin`); rotate it",
        ));
    }
    if accepts(TokenKind::Publishable) || accepts(TokenKind::Secret) {
        all.push(problem(
            429,
            "rate_limited",
            "the key's limit per minute, or its limit per client IP, is used up",
        ));
    }
    if accepts(TokenKind::User) {
        all.push(problem(
            429,
            "rate_limited",
            "the customer's requests per minute, across all their tokens, are used up",
        ));
    }
    if operation.get("requestBody").is_some() {
        all.extend([
            problem(400, "malformed_json", "the body is not JSON"),
            problem(413, "payload_too_large", "the body is over 1 MiB"),
            problem(
                415,
                "unsupported_media_type",
                "the body is not `application/json`",
            ),
            problem(
                422,
                "validation_failed",
                "fields are missing, unknown or invalid; `errors` lists each",
            ),
        ]);
    }
    let parameters = operation["parameters"].as_array();
    let has = |place: &str| {
        parameters.is_some_and(|list| list.iter().any(|parameter| parameter["in"] == place))
    };
    if has("query") {
        all.push(problem(
            422,
            "validation_failed",
            "a query parameter is unknown or invalid; `errors` lists each",
        ));
    }
    if has("path") {
        all.push(problem(
            404,
            "not_found",
            "no such thing for this caller (a malformed id included)",
        ));
    }
    all.extend(handler_errors(entry).iter().copied());
    all
}

fn handler_errors(entry: &RouteEntry) -> &'static [Problem] {
    HANDLER_ERRORS
        .iter()
        .find(|(method, path, _)| entry.method.as_str() == *method && entry.path == *path)
        .map_or(&[], |(_, _, problems)| problems)
}

/// The problem+json schema of a status whose `code` is one of `codes`.
fn problem_schema(status: u16, codes: &[&str]) -> Value {
    let mut properties = json!({
        "type": {"type": "string", "description": "`urn:jeton:problem:` and the code"},
        "title": {"type": "string"},
        "status": {"type": "integer", "const": status},
        "code": {"type": "string", "enum": codes},
        "detail": {"type": "string"},
    });
    if codes.contains(&"validation_failed") {
        properties["errors"] = json!({
            "type": "array",
            "description": "With `validation_failed`: every problem, by field",
            "items": {"$ref": "#/components/schemas/FieldError"},
        });
    }
    json!({
        "type": "object",
        "required": ["type", "title", "status", "code", "detail"],
        "properties": properties,
    })
}

fn header_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/headers/{name}")})
}

/// The headers responses carry, by name in `components/headers`.
fn headers() -> Value {
    let integer = |description: &str, required: bool| {
        json!({
            "description": description,
            "required": required,
            "schema": {"type": "integer", "minimum": 0},
        })
    };
    json!({
        "X-Request-Id": {
            "description": "The request's id, as in the server's log",
            "required": true,
            "schema": {"type": "string", "format": "uuid"},
        },
        "RateLimit-Limit": integer("The limit per minute that applies (the tightest of the key's, the client IP's and the customer's)", false),
        "RateLimit-Remaining": integer("Requests left in the current window", false),
        "RateLimit-Reset": integer("Seconds until the window resets", false),
        "Retry-After": integer("Seconds to wait before retrying", false),
        "Retry-After-Required": integer("Seconds to wait before retrying", true),
        "WWW-Authenticate": {
            "description": "The RFC 6750 challenge, e.g. `Bearer realm=\"jeton\", error=\"invalid_token\"`",
            "required": false,
            "schema": {"type": "string"},
        },
        "WWW-Authenticate-Required": {
            "description": "The RFC 6750 challenge, e.g. `Bearer realm=\"jeton\", error=\"invalid_token\"`",
            "required": true,
            "schema": {"type": "string"},
        },
        "Idempotent-Replayed": {
            "description": "`true` when this is the stored response to an earlier request with the same `Idempotency-Key`",
            "required": false,
            "schema": {"type": "string", "enum": ["true"]},
        },
        "Set-Cookie": {
            "description": "A cookie session's cookies: `jeton_session` (`HttpOnly`, \
                `SameSite=Lax`, `Path=/api/v1`) and `jeton_csrf` (`Path=/`), set by a login with \
                `\"session\": \"cookie\"`, cleared (`Max-Age=0`) when the session ends",
            "required": false,
            "schema": {"type": "string"},
        },
    })
}

/// The error responses of an operation, one per status.
fn error_responses(all: &[Problem]) -> BTreeMap<u16, Value> {
    let mut by_status: BTreeMap<u16, Vec<&Problem>> = BTreeMap::new();
    for problem in all {
        let list = by_status.entry(problem.status).or_default();
        if !list
            .iter()
            .any(|known| known.code == problem.code && known.when == problem.when)
        {
            list.push(problem);
        }
    }
    by_status
        .into_iter()
        .map(|(status, list)| {
            let mut codes: Vec<&str> = Vec::new();
            for problem in &list {
                if !codes.contains(&problem.code) {
                    codes.push(problem.code);
                }
            }
            let description = list
                .iter()
                .map(|problem| format!("`{}`: {}", problem.code, problem.when))
                .collect::<Vec<_>>()
                .join("; ");
            let mut headers = Map::new();
            headers.insert("X-Request-Id".into(), header_ref("X-Request-Id"));
            match status {
                401 => {
                    headers.insert(
                        "WWW-Authenticate".into(),
                        header_ref("WWW-Authenticate-Required"),
                    );
                }
                400 | 403 => {
                    headers.insert("WWW-Authenticate".into(), header_ref("WWW-Authenticate"));
                }
                429 => {
                    headers.insert("Retry-After".into(), header_ref("Retry-After-Required"));
                    for name in ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"] {
                        headers.insert(name.into(), header_ref(name));
                    }
                }
                503 => {
                    headers.insert("Retry-After".into(), header_ref("Retry-After"));
                }
                _ => {}
            }
            let example = json!({
                "type": format!("urn:jeton:problem:{}", codes[0]),
                "title": "…",
                "status": status,
                "code": codes[0],
                "detail": list[0].when,
            });
            let response = json!({
                "description": description,
                "headers": headers,
                "content": {"application/problem+json": {
                    "schema": problem_schema(status, &codes),
                    "example": example,
                }},
            });
            (status, response)
        })
        .collect()
}

/// `GET /me/orders/{id}` → `get_me_orders_id`: unique, as the table's
/// method and path are.
fn operation_id(entry: &RouteEntry) -> String {
    let words: Vec<String> = entry
        .path
        .split(['/', '-'])
        .filter(|part| !part.is_empty())
        .map(|part| part.trim_matches(['{', '}']).to_owned())
        .collect();
    format!(
        "{}_{}",
        entry.method.as_str().to_lowercase(),
        words.join("_")
    )
}

/// A link from a response to an operation that takes what it returned,
/// for clients and for schemathesis's stateful tests.
struct Link {
    /// Method, path and status of the response.
    from: (&'static str, &'static str, &'static str),
    name: &'static str,
    /// Method and path of the operation.
    to: (&'static str, &'static str),
    /// The path parameter, and the runtime expression that fills it.
    parameter: (&'static str, &'static str),
}

const LINKS: &[Link] = &[
    Link {
        from: ("GET", "/products", "200"),
        name: "GetFirstProduct",
        to: ("GET", "/products/{id}"),
        parameter: ("id", "$response.body#/data/0/id"),
    },
    Link {
        from: ("POST", "/me/tokens", "201"),
        name: "RevokeToken",
        to: ("DELETE", "/me/tokens/{id}"),
        parameter: ("id", "$response.body#/token_id"),
    },
    Link {
        from: ("POST", "/orders", "201"),
        name: "GetOrder",
        to: ("GET", "/me/orders/{id}"),
        parameter: ("id", "$response.body#/id"),
    },
    Link {
        from: ("GET", "/me/orders", "200"),
        name: "GetFirstOrder",
        to: ("GET", "/me/orders/{id}"),
        parameter: ("id", "$response.body#/data/0/id"),
    },
    Link {
        from: ("POST", "/admin/products", "201"),
        name: "UpdateProduct",
        to: ("PATCH", "/admin/products/{id}"),
        parameter: ("id", "$response.body#/id"),
    },
    Link {
        from: ("POST", "/admin/clients", "201"),
        name: "GetClient",
        to: ("GET", "/admin/clients/{id}"),
        parameter: ("id", "$response.body#/client/id"),
    },
    Link {
        from: ("POST", "/admin/clients", "201"),
        name: "RotateKey",
        to: ("POST", "/admin/clients/{id}/keys"),
        parameter: ("id", "$response.body#/client/id"),
    },
    Link {
        from: ("POST", "/admin/clients", "201"),
        name: "RevokeClient",
        to: ("DELETE", "/admin/clients/{id}"),
        parameter: ("id", "$response.body#/client/id"),
    },
];

/// Example answers, with the README walkthrough's values: (method, path,
/// status, body). Every example is checked against its schema by the
/// conformance test.
fn examples() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    let product = json!({
        "id": "0193a1b2-7c3d-7e4f-8a5b-6c7d8e9f0a1b",
        "sku": "TEE-GREEN-S",
        "name": "Green tee, S",
        "description": "",
        "price": {"amount": 1900, "currency": "EUR"},
        "stock": 12,
        "created_at": "2026-11-29T21:01:51.701637Z",
    });
    let customer = json!({
        "id": "0193a1b2-7f8b-7146-927a-c5fa1af1dab8",
        "email": "ann@example.com",
        "name": "Ann",
        "created_at": "2026-11-29T21:01:52.395388Z",
    });
    let abilities = json!([
        "orders:read",
        "orders:write",
        "products:read",
        "profile:read",
        "tokens:manage"
    ]);
    let issued = json!({
        "token": "jt_ut_EXAMPLEonlyEXAMPLEonlyEXAMPLEonly0000",
        "token_type": "Bearer",
        "token_id": "0193a1b2-800b-7349-99cc-59c0c401c54c",
        "abilities": abilities,
        "expires_at": "2026-12-29T21:01:52.523532Z",
    });
    let order = json!({
        "id": "0193a1b2-8234-77a3-aae4-5617325da992",
        "status": "placed",
        "items": [{
            "product_id": product["id"],
            "sku": "TEE-GREEN-S",
            "name": "Green tee, S",
            "quantity": 2,
            "unit_price": 1900,
        }],
        "total": {"amount": 3800, "currency": "EUR"},
        "created_at": "2026-11-29T21:01:53.075708Z",
    });
    let token = json!({
        "id": issued["token_id"],
        "name": "laptop",
        "abilities": abilities,
        "last4": "0000",
        "client_id": "0193a1b2-6a4f-7441-b82b-3e602c143de3",
        "created_at": "2026-11-29T21:01:52.523929Z",
        "last_used_at": null,
        "expires_at": "2026-12-29T21:01:52.523532Z",
        "current": true,
    });
    vec![
        (
            "GET",
            "/products",
            "200",
            json!({"data": [product], "next_cursor": null}),
        ),
        ("GET", "/products/{id}", "200", product.clone()),
        ("POST", "/customers", "201", customer.clone()),
        ("POST", "/auth/login", "201", issued.clone()),
        ("GET", "/me", "200", customer),
        ("POST", "/orders", "201", order.clone()),
        (
            "GET",
            "/me/orders",
            "200",
            json!({"data": [order], "next_cursor": null}),
        ),
        ("GET", "/me/tokens", "200", json!({"data": [token]})),
        ("POST", "/me/tokens", "201", issued),
        ("POST", "/admin/products", "201", product),
    ]
}

fn idempotency_key_schema() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_IDEMPOTENCY_KEY_LEN,
        // Printable ASCII; HTTP drops surrounding spaces, so none are sent.
        "pattern": "^[!-~](?:[ -~]*[!-~])?$",
        "example": "order-2f9c1d",
    })
}

/// The document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: LazyLock<Value> = LazyLock::new(build);
    &DOCUMENT
}

fn build() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
    let table = routes::api();
    let mut schemes = Map::new();
    for entry in table.entries() {
        let path = format!("{PREFIX}{}", entry.path);
        let method = entry.method.as_str().to_lowercase();
        let id = operation_id(entry);
        let operation = doc["paths"][&path]
            .get_mut(&method)
            .unwrap_or_else(|| panic!("{} {path} has no annotated handler", entry.method));
        operation["operationId"] = json!(id);
        operation["security"] = security(&entry.access);
        for kind in kinds(&entry.access) {
            let (name, scheme) = scheme(kind);
            schemes.insert(name.to_owned(), scheme);
        }
        if entry.access.kinds.contains(TokenKind::User) {
            schemes.insert(COOKIE_SESSION.to_owned(), cookie_session_scheme());
        }
        if let Some(parameters) = operation
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
        {
            for parameter in parameters {
                match (parameter["in"].as_str(), parameter["name"].as_str()) {
                    (Some("query"), Some("limit")) => {
                        parameter["schema"] = json!({
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_LIMIT,
                            "default": DEFAULT_LIMIT,
                        });
                    }
                    (Some("query"), Some("cursor")) => {
                        parameter["description"] =
                            json!("The `next_cursor` of the previous page, as it was returned");
                    }
                    (Some("header"), Some("Idempotency-Key")) => {
                        parameter["schema"] = idempotency_key_schema();
                    }
                    (Some("path"), Some("id")) => {
                        parameter["description"] = json!("An id this API returned");
                        parameter["schema"] = json!({"type": "string"});
                    }
                    _ => {}
                }
            }
        }
        let found = problems(entry, operation);
        let responses = operation["responses"]
            .as_object_mut()
            .expect("every operation has responses");
        // The annotations' own error entries give way to the derived ones.
        responses.retain(|status, _| status.starts_with(['1', '2', '3']));
        // Keys have their limits, users theirs: either way the answer says
        // what is left.
        let limited = entry.access.kinds.contains(TokenKind::Publishable)
            || entry.access.kinds.contains(TokenKind::Secret)
            || entry.access.kinds.contains(TokenKind::User);
        for (status, response) in responses.iter_mut() {
            let response = response.as_object_mut().expect("a response is an object");
            let described = response
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|text| !text.is_empty());
            if !described {
                let reason = status
                    .parse::<u16>()
                    .ok()
                    .and_then(|code| axum::http::StatusCode::from_u16(code).ok())
                    .and_then(|code| code.canonical_reason())
                    .unwrap_or("Success");
                response.insert("description".into(), json!(reason));
            }
            let headers = response.entry("headers").or_insert_with(|| json!({}));
            headers["X-Request-Id"] = header_ref("X-Request-Id");
            if limited {
                for name in ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"] {
                    headers[name] = header_ref(name);
                }
            }
            if entry.path == "/orders" && status == "201" {
                headers["Idempotent-Replayed"] = header_ref("Idempotent-Replayed");
            }
            if sets_session_cookies(entry) && status.starts_with('2') {
                headers["Set-Cookie"] = header_ref("Set-Cookie");
            }
        }
        for (status, response) in error_responses(&found) {
            responses.insert(status.to_string(), response);
        }
    }
    for link in LINKS {
        let ((method, path, status), (target_method, target_path)) = (link.from, link.to);
        let target = table
            .entries()
            .iter()
            .find(|entry| entry.method.as_str() == target_method && entry.path == target_path)
            .unwrap_or_else(|| panic!("link to {target_method} {target_path}: no such route"));
        let response = &mut doc["paths"][format!("{PREFIX}{path}")][method.to_lowercase()]["responses"]
            [status];
        assert!(response.is_object(), "link from {method} {path} {status}");
        let (parameter, expression) = link.parameter;
        response["links"][link.name] = json!({
            "operationId": operation_id(target),
            "parameters": {parameter: expression},
        });
    }
    for (method, path, status, example) in examples() {
        let response = &mut doc["paths"][format!("{PREFIX}{path}")][method.to_lowercase()]["responses"]
            [status]["content"]["application/json"];
        assert!(response.is_object(), "example of {method} {path} {status}");
        response["example"] = example;
    }
    let patch = doc["components"]["schemas"]
        .get_mut("ProductPatchInput")
        .expect("the patch's schema is a component");
    patch["not"] = product::patch_schema_not();
    patch["description"] = json!(
        "`PATCH /admin/products/{id}`: any of the fields of a new product, or `stock_delta` instead of `stock` (not both)."
    );
    oauth::add(&mut doc["paths"], &mut schemes);
    let components = doc["components"]
        .as_object_mut()
        .expect("the document has components");
    components.insert("securitySchemes".into(), Value::Object(schemes));
    components.insert("headers".into(), headers());
    oauth::add_headers(&mut components["headers"]);
    let password_rule = format!(
        "Passwords are {} to {} characters.",
        password::MIN_CHARS,
        password::MAX_CHARS
    );
    let description = doc["info"]["description"].as_str().unwrap_or_default();
    doc["info"]["description"] = json!(format!(
        "{description} Request bodies are at most {} bytes; header values at most {} bytes. {password_rule}",
        extract::MAX_BODY_BYTES,
        hygiene::MAX_HEADER_VALUE_BYTES,
    ));
    doc
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", document().clone()))
}

/// The operation of `method` and `path` (a path of the route table).
pub fn operation<'a>(doc: &'a Value, method: &Method, path: &str) -> Option<&'a Value> {
    doc["paths"]
        .get(format!("{PREFIX}{path}"))?
        .get(method.as_str().to_lowercase())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

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

    #[test]
    fn operation_ids_are_unique() {
        let table = routes::api();
        let ids: HashSet<String> = table.entries().iter().map(operation_id).collect();
        assert_eq!(ids.len(), table.entries().len());
    }

    #[test]
    fn codes_by_status() {
        let doc = document();
        let codes = |method: Method, path: &str, status: &str| -> Vec<String> {
            let operation = operation(doc, &method, path).unwrap();
            operation["responses"][status]["content"]["application/problem+json"]["schema"]
                ["properties"]["code"]["enum"]
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
        ] {
            assert!(
                codes(method.clone(), path, "403").contains(&"csrf_failed".to_owned()),
                "{method} {path}"
            );
        }
        for (method, path) in [(Method::GET, "/me"), (Method::POST, "/admin/products")] {
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
