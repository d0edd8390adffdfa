//! The document's assembly: the handlers' annotations, then what is
//! derived from the route table (security, error responses from the
//! problem catalogue, headers, parameters' rules, operation ids, links and
//! examples).

use std::sync::LazyLock;

use axum::http::Method;
use jeton_auth::{AbilitySet, Access, TokenKind};
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use super::{
    oauth,
    problems::{self, error_responses, is_unsafe, problems},
    schemas,
};
use crate::{
    domain::{FieldError, abilities, order::MAX_IDEMPOTENCY_KEY_LEN, password, product},
    http::{
        admin, carts, catalog, customers, extract, guests, hygiene, orders,
        routes::{self, PREFIX, RouteEntry},
        secret_scanning, staff, tokens,
    },
    pagination::{DEFAULT_LIMIT, MAX_LIMIT},
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Jeton",
        description = "A storefront API with first-class client keys and user tokens. \
            Every request under `/api/v1` carries `Authorization: Bearer <token>`: a publishable key \
            (`jt_pk_`), a secret key (`jt_sk_`), an OAuth 2.0 access token (`jt_at_`), a user token \
            (`jt_ut_`) or a storefront visitor's guest token (`jt_gt_`); each operation lists the kinds it accepts, with the ability it needs. The shop's \
            own storefront may carry its user token in a session cookie instead (`cookie_session`); \
            the shop's staff use the admin API from the console with a staff session in a cookie \
            (`staff_session`, `jt_st_`). \
            Errors are RFC 9457 problem+json with a stable `code`. The OAuth 2.0 endpoints (`/oauth/*` \
            and the server's metadata) take form bodies and answer errors as RFC 6749 JSON."
    ),
    paths(
        catalog::list_products,
        catalog::get_product,
        guests::issue,
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
        carts::get,
        carts::put_item,
        carts::delete_item,
        carts::clear,
        carts::checkout,
        admin::products::list,
        admin::products::create,
        admin::products::update,
        admin::clients::create,
        admin::clients::list,
        admin::clients::get,
        admin::clients::update,
        admin::clients::rotate,
        admin::clients::revoke,
        admin::customers::list,
        admin::customers::get,
        admin::customers::tokens,
        admin::customers::revoke_tokens,
        admin::leaks::report,
        secret_scanning::github,
        admin::orders::list,
        admin::orders::cancel,
        admin::audit::list,
        admin::usage::client,
        admin::usage::customer,
        admin::usage::shop,
        admin::usage::top,
        staff::login,
        staff::me,
        staff::logout,
        staff::change_password,
        staff::start_mfa,
        staff::confirm_mfa,
        staff::accept_invitation,
        admin::staff::list,
        admin::staff::invite,
        admin::staff::update,
        admin::staff::reset_mfa,
        admin::webhooks::create,
        admin::webhooks::list,
        admin::webhooks::get,
        admin::webhooks::update,
        admin::webhooks::delete,
        admin::webhooks::rotate_secret,
        admin::webhooks::deliveries,
        admin::webhooks::retry,
        admin::webhooks::test,
    ),
    components(schemas(FieldError, customers::CookieSession)),
    tags(
        (name = "catalog", description = "Products; publishable keys, secret keys, user tokens and guest tokens"),
        (name = "guests", description = "A storefront visitor's own token, obtained with a publishable key: bound to its client and origin, limited per token"),
        (name = "customers", description = "Registration and login through a client key; profile with a user token"),
        (name = "tokens", description = "A customer's own tokens"),
        (name = "orders", description = "Placing and reading one's own orders"),
        (name = "carts", description = "A guest's or a customer's one cart, reached through the caller's own token, never by an id; and its checkout"),
        (name = "admin", description = "The admin API, for secret keys and their access tokens: each operation needs its own admin ability (`clients:read`, `orders:cancel`, …), which `admin` (all of them but `staff:manage`) and `*` also grant; no `resource:*` wildcard does. A refusal names the missing ability."),
        (name = "staff", description = "The shop's people, signed in to the console: a staff session lives in the `HttpOnly` cookie `jeton_staff`, is accepted only from the API's own origin, needs `X-CSRF-Token` on unsafe methods, ends after 30 minutes unused or 12 hours at most, and holds its member's role's admin abilities"),
        (name = "leaks", description = "Leaked credentials: GitHub's secret scanning reports, signed by GitHub and taken without a bearer token (the admin API's `POST /admin/leaks` takes the others)"),
        (name = "oauth", description = "OAuth 2.0 for server-side clients: the client credentials grant, introspection, revocation, metadata"),
    )
)]
struct ApiDoc;

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
        TokenKind::Guest => (
            "guest_token",
            bearer(
                "jt_gt_…",
                "A storefront visitor's own token, from `POST /api/v1/guest` with a publishable \
                 key. Only from the origin it was obtained from (or, obtained with no `Origin`, \
                 from no page). Rate limited per token, never by its key's limits. Ends after \
                 14 days unused, or 30 days after it was issued, and with its client.",
            ),
        ),
        TokenKind::Staff => (
            STAFF_SESSION,
            json!({
                "type": "apiKey",
                "in": "cookie",
                "name": "jeton_staff",
                "description": "A staff member's console session (`jt_st_…`), which                     `POST /api/v1/staff/login` sets in the `HttpOnly`, `SameSite=Strict` cookie                     `jeton_staff` (never accepted in `Authorization`). Refused (403                     `origin_not_allowed`) with an `Origin` other than the API's own or a                     `Sec-Fetch-Site` other than `same-origin`. `POST`, `PUT`, `PATCH` and                     `DELETE` need the header `X-CSRF-Token` equal to the session's `csrf_token`                     (else 403 `csrf_failed`). It ends after 30 minutes unused, or 12 hours after                     sign-in; it holds its member's role's abilities, changed at once with the                     role.",
            }),
        ),
        other => panic!("no security scheme for {} tokens", other.name()),
    }
}

/// The name of the staff session's scheme: the `jeton_staff` cookie.
pub(super) const STAFF_SESSION: &str = "staff_session";

/// The name of the cookie session's scheme: a user token in the
/// `jeton_session` cookie, accepted wherever a user token is.
pub(super) const COOKIE_SESSION: &str = "cookie_session";

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
            | ("POST", "/staff/logout")
    )
}

/// Whether a cookie session may call the route with a method that needs
/// the CSRF header. Minting a token is refused to cookie sessions, so the
/// header is no use there.
///
/// A staff session needs it too, on every unsafe admin route; there the
/// header is documented in the `staff_session` scheme rather than as a
/// parameter of each operation, which a secret key (the admin API's usual
/// caller) never sends: only the staff's own routes list it.
fn takes_csrf_header(entry: &RouteEntry) -> bool {
    let kinds = entry.access.kinds;
    let session = kinds.contains(TokenKind::User)
        || (kinds.contains(TokenKind::Staff) && !kinds.contains(TokenKind::Secret));
    session
        && is_unsafe(&entry.method)
        && !(entry.method == Method::POST && entry.path == "/me/tokens")
}

fn csrf_parameter() -> Value {
    json!({
        "name": "X-CSRF-Token",
        "in": "header",
        "required": false,
        "description": "With a cookie session or a staff session only: the `csrf_token` of \
            the login's answer (also in the `jeton_csrf` or `jeton_staff_csrf` cookie). Without \
            it, or with another value, such a request is 403 `csrf_failed`. Ignored with an \
            `Authorization` header.",
        // Any string: a value other than the session's (an empty one
        // too) is the documented 403, and a bearer request ignores it.
        "schema": {"type": "string"},
    })
}

/// Who may call the route, for its description: the kinds of token it
/// accepts and the ability they need.
fn who_may_call(entry: &RouteEntry) -> String {
    let names: Vec<&str> = kinds(&entry.access)
        .map(|kind| match kind {
            TokenKind::Publishable => "a publishable key",
            TokenKind::Secret => "a secret key",
            TokenKind::Access => "an OAuth 2.0 access token",
            TokenKind::User => "a user token (as a bearer token or a cookie session)",
            TokenKind::Staff => "a staff session (the `jeton_staff` cookie)",
            TokenKind::Guest => "a guest token",
            other => panic!("no name for {} tokens", other.name()),
        })
        .collect();
    let list = match names.as_slice() {
        [] => panic!("{} {} accepts no token", entry.method, entry.path),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    };
    let ability = match &entry.access.ability {
        None => ", whatever its abilities".to_owned(),
        Some(ability) if abilities::ADMIN_ABILITIES.contains(ability) => {
            let admin = AbilitySet::new([abilities::ADMIN]);
            let umbrella = if abilities::ceilings().grants(&admin, ability) {
                "`admin` or `*`"
            } else {
                "`*`"
            };
            format!(
                " holding `{ability}` (an admin ability: also granted by {umbrella}, never by a \
                 `resource:*` wildcard)"
            )
        }
        Some(ability) => format!(" holding `{ability}`"),
    };
    let csrf = if takes_csrf_header(entry) {
        " A cookie session or staff session also sends `X-CSRF-Token`."
    } else if entry.access.kinds.contains(TokenKind::Staff) && is_unsafe(&entry.method) {
        " A staff session also sends `X-CSRF-Token` (see `staff_session`)."
    } else {
        ""
    };
    format!("**Who may call it:** {list}{ability}.{csrf}")
}

/// The kinds of token `access` accepts, in a stable order.
pub(super) fn kinds(access: &Access) -> impl Iterator<Item = TokenKind> + '_ {
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

pub(super) fn header_ref(name: &str) -> Value {
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
                `\"session\": \"cookie\"`, cleared (`Max-Age=0`) when the session ends; a staff \
                session's: `jeton_staff` (`HttpOnly`, `SameSite=Strict`, `Path=/api/v1`) and \
                `jeton_staff_csrf` (`SameSite=Strict`, `Path=/console`), set by a staff sign-in, \
                cleared when it ends",
            "required": false,
            "schema": {"type": "string"},
        },
    })
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
        name: "UpdateClient",
        to: ("PATCH", "/admin/clients/{id}"),
        parameter: ("id", "$response.body#/client/id"),
    },
    Link {
        from: ("GET", "/admin/customers", "200"),
        name: "GetFirstCustomer",
        to: ("GET", "/admin/customers/{id}"),
        parameter: ("id", "$response.body#/data/0/id"),
    },
    Link {
        from: ("GET", "/admin/customers", "200"),
        name: "ListFirstCustomerTokens",
        to: ("GET", "/admin/customers/{id}/tokens"),
        parameter: ("id", "$response.body#/data/0/id"),
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

/// The staff's sign-in and invitations and GitHub's secret scanning
/// reports, outside the route table (they take no bearer token): their
/// error answers from the catalogue, their headers as the table's.
fn outside_table(doc: &mut Value, path: &str, found: Vec<problems::Problem>) {
    let operation = doc["paths"][path]
        .get_mut("post")
        .unwrap_or_else(|| panic!("POST {path} is documented"));
    operation["security"] = json!([]);
    let responses = operation["responses"]
        .as_object_mut()
        .expect("every operation has responses");
    responses.retain(|status, _| status.starts_with(['1', '2', '3']));
    for (status, response) in responses.iter_mut() {
        let headers = response
            .as_object_mut()
            .expect("a response is an object")
            .entry("headers")
            .or_insert_with(|| json!({}));
        headers["X-Request-Id"] = header_ref("X-Request-Id");
        if path == staff::LOGIN_PATH && status.starts_with('2') {
            headers["Set-Cookie"] = header_ref("Set-Cookie");
        }
    }
    for (status, response) in error_responses(&found) {
        responses.insert(status.to_string(), response);
    }
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
        let operation = doc["paths"][&path]
            .get_mut(&method)
            .unwrap_or_else(|| panic!("{} {path} has no annotated handler", entry.method));
        assert!(
            operation["operationId"].is_string(),
            "{} {path} names its operation (`operation_id`)",
            entry.method
        );
        operation["security"] = security(&entry.access);
        let described = operation["description"].as_str().unwrap_or_default();
        operation["description"] = json!(format!("{described}\n\n{}", who_may_call(entry)));
        if takes_csrf_header(entry) {
            let parameters = operation
                .as_object_mut()
                .expect("an operation is an object")
                .entry("parameters")
                .or_insert_with(|| json!([]));
            parameters
                .as_array_mut()
                .expect("parameters are a list")
                .push(json!({"$ref": "#/components/parameters/X-CSRF-Token"}));
        }
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
                        parameter["description"] = json!(
                            "The `next_cursor` of the previous page, as it was returned; \
                             anything else is 422"
                        );
                        parameter["schema"] = json!({"type": "string", "minLength": 1});
                    }
                    (Some("header"), Some("Idempotency-Key")) => {
                        parameter["schema"] = idempotency_key_schema();
                    }
                    (Some("path"), Some("id")) => {
                        parameter["description"] =
                            json!("An id this API returned; any other text is 404");
                        parameter["schema"] = json!({"$ref": "#/components/schemas/Id"});
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
    outside_table(
        &mut doc,
        staff::LOGIN_PATH,
        problems::staff_login_problems(),
    );
    outside_table(
        &mut doc,
        staff::INVITATION_PATH,
        problems::staff_invitation_problems(),
    );
    outside_table(
        &mut doc,
        secret_scanning::GITHUB_PATH,
        problems::secret_scanning_problems(),
    );
    for link in LINKS {
        let ((method, path, status), (target_method, target_path)) = (link.from, link.to);
        let target = table
            .entries()
            .iter()
            .find(|entry| entry.method.as_str() == target_method && entry.path == target_path)
            .unwrap_or_else(|| panic!("link to {target_method} {target_path}: no such route"));
        assert!(
            doc["paths"][format!("{PREFIX}{path}")][method.to_lowercase()]["responses"][status]
                .is_object(),
            "link from {method} {path} {status}"
        );
        let (parameter, expression) = link.parameter;
        let target_id = doc["paths"][format!("{PREFIX}{}", target.path)]
            [target.method.as_str().to_lowercase()]["operationId"]
            .clone();
        let response = &mut doc["paths"][format!("{PREFIX}{path}")][method.to_lowercase()]["responses"]
            [status];
        response["links"][link.name] = json!({
            "operationId": target_id,
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
    // Any other problem (a bug, a method the path does not serve) has the
    // one shape too, on every operation.
    for item in doc["paths"].as_object_mut().expect("paths").values_mut() {
        for operation in item.as_object_mut().expect("a path item").values_mut() {
            operation["responses"]["default"] = problems::default_response();
        }
    }
    schemas::shape(&mut doc);
    let components = doc["components"]
        .as_object_mut()
        .expect("the document has components");
    components.insert("securitySchemes".into(), Value::Object(schemes));
    components.insert("headers".into(), headers());
    components.insert(
        "parameters".into(),
        json!({"X-CSRF-Token": csrf_parameter()}),
    );
    components.insert(
        "responses".into(),
        json!({"Problem": problems::default_response_component()}),
    );
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
