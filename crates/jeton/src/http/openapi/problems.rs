//! The problem catalogue: every problem+json answer an operation of the
//! API may give, by status and `code`, and the error responses built from
//! it. What the guard and the extractors answer is derived from the route
//! and the operation's inputs; what a handler adds is declared in
//! [`HANDLER_ERRORS`].

use std::collections::BTreeMap;

use axum::http::Method;
use jeton_auth::TokenKind;
use serde_json::{Map, Value, json};

use super::document::header_ref;
use crate::http::routes::RouteEntry;

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

/// What `POST /orders` and a cart's checkout (both order placements, with
/// one namespace of keys) answer alike.
const INVALID_IDEMPOTENCY_KEY: Problem = problem(
    400,
    "invalid_idempotency_key",
    "the `Idempotency-Key` is not 1 to 255 printable ASCII characters, or was sent twice",
);
const IDEMPOTENCY_KEY_IN_USE: Problem = problem(
    409,
    "idempotency_key_in_use",
    "a request with this `Idempotency-Key` is still being processed",
);
const ORDERS_RATE_LIMITED: Problem = problem(
    429,
    "rate_limited",
    "the customer's orders per minute are used up",
);

/// What a handler answers beyond its authentication and its inputs, by
/// method and path in the route table. Everything else is derived.
pub const HANDLER_ERRORS: &[(&str, &str, &[Problem])] = &[
    (
        "POST",
        "/guest",
        &[
            problem(
                403,
                "origin_not_allowed",
                "an `Origin` that is no page's origin (`null`), from a client that allows any",
            ),
            problem(
                429,
                "rate_limited",
                "too many guest tokens issued to this IP address in the last hour",
            ),
        ],
    ),
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
            INVALID_IDEMPOTENCY_KEY,
            problem(
                409,
                "insufficient_stock",
                "a product has less stock than ordered; nothing was written",
            ),
            IDEMPOTENCY_KEY_IN_USE,
            problem(
                422,
                "idempotency_key_reused",
                "this `Idempotency-Key` came with a different order",
            ),
            ORDERS_RATE_LIMITED,
        ],
    ),
    (
        "POST",
        "/cart/checkout",
        &[
            INVALID_IDEMPOTENCY_KEY,
            problem(
                409,
                "insufficient_stock",
                "a line's product has less stock than the line; the cart and the stock are as they were",
            ),
            IDEMPOTENCY_KEY_IN_USE,
            problem(422, "cart_empty", "the cart has no lines"),
            problem(
                422,
                "validation_failed",
                "the cart's products are now in two currencies, or its total is too large",
            ),
            problem(
                422,
                "idempotency_key_reused",
                "this `Idempotency-Key` came with an order, not a checkout",
            ),
            ORDERS_RATE_LIMITED,
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
    ("GET", "/admin/staff", &[]),
    // Its refusals are those of its body (422) and its callers.
    ("POST", "/admin/leaks", &[]),
    (
        "POST",
        "/admin/staff",
        &[problem(
            409,
            "email_taken",
            "a member with this email has accepted their invitation already",
        )],
    ),
    (
        "PATCH",
        "/admin/staff/{id}",
        &[problem(
            409,
            "last_owner",
            "the change would leave the shop without an active owner; nothing was written",
        )],
    ),
    (
        "POST",
        "/staff/mfa",
        &[problem(
            409,
            "mfa_enabled",
            "the member has a second factor already; it is reset first",
        )],
    ),
    (
        "POST",
        "/staff/mfa/confirm",
        &[
            problem(
                409,
                "mfa_not_started",
                "no enrolment is waiting for a code: `POST /staff/mfa` first",
            ),
            problem(
                429,
                "rate_limited",
                "5 wrong codes for this member in 15 minutes",
            ),
        ],
    ),
    (
        "POST",
        "/staff/password",
        &[
            problem(
                403,
                "mfa_enrollment_required",
                "the server requires a second factor and the member has not enrolled one",
            ),
            problem(401, "invalid_credentials", "the current password is wrong"),
            problem(
                429,
                "rate_limited",
                "too many wrong passwords for this member or from this IP address",
            ),
            HASHING_BUSY,
        ],
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

const INVALID_HEADER: Problem = problem(
    400,
    "invalid_header",
    "a header holds bytes other than visible ASCII, space and tab",
);

const HEADERS_TOO_LARGE: Problem = problem(
    431,
    "headers_too_large",
    "a header value is over 8 KiB, or all of them over 32 KiB",
);

/// What any operation with a JSON body may answer about the body.
const JSON_BODY: [Problem; 4] = [
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
];

/// The staff's routes outside the table (sign-in, invitations): a JSON
/// body, the API's own origin only, a password hashed, the database.
fn own_origin_json_problems() -> Vec<Problem> {
    let mut all = vec![
        INVALID_HEADER,
        problem(
            403,
            "origin_not_allowed",
            "sent with an `Origin` other than the API's own, or a `Sec-Fetch-Site` other than \
             `same-origin`",
        ),
        HEADERS_TOO_LARGE,
        HASHING_BUSY,
        problem(
            503,
            "service_unavailable",
            "the database is unavailable or busy, or the request took over 30 s; retry after \
             `Retry-After`",
        ),
    ];
    all.extend(JSON_BODY);
    all
}

/// What the staff's sign-in (`POST /staff/login`, outside the route
/// table) may answer with a problem.
pub(super) fn staff_login_problems() -> Vec<Problem> {
    let mut all = own_origin_json_problems();
    all.extend([
        problem(
            401,
            "invalid_credentials",
            "the email or password is wrong, or the member is disabled (one answer for all)",
        ),
        problem(
            401,
            "mfa_required",
            "the password is right, and the member's second factor needs `totp`: none was \
             sent, or it is wrong or used",
        ),
        problem(
            429,
            "rate_limited",
            "too many failed sign-ins for this email or from this IP address, or 5 wrong codes \
             for this member in 15 minutes",
        ),
    ]);
    all
}

/// What accepting an invitation (`POST /staff/invites/{token}`, outside
/// the route table) may answer with a problem.
pub(super) fn staff_invitation_problems() -> Vec<Problem> {
    let mut all = own_origin_json_problems();
    all.extend([problem(
        404,
        "not_found",
        "the link is unknown, used or expired, or its member was disabled",
    )]);
    all
}

/// What GitHub's secret scanning endpoint (`POST
/// /secret-scanning/github`, outside the route table) may answer with a
/// problem.
pub(super) fn secret_scanning_problems() -> Vec<Problem> {
    vec![
        INVALID_HEADER,
        problem(400, "malformed_json", "the body (signed) is not JSON"),
        problem(
            401,
            "invalid_signature",
            "`Github-Public-Key-Identifier` or `Github-Public-Key-Signature` is missing, the key \
             is not in the server's keys file, or the signature is not that key's over the raw \
             body; nothing in the body was looked at",
        ),
        problem(
            404,
            "not_found",
            "the server runs without `--secret-scanning-keys`",
        ),
        problem(413, "payload_too_large", "the body is over 1 MiB"),
        problem(
            422,
            "validation_failed",
            "the body (signed) is not an array of at most 1000 objects with a string `token`",
        ),
        problem(
            429,
            "rate_limited",
            "more than 60 reports a minute from this IP address",
        ),
        HEADERS_TOO_LARGE,
        problem(
            503,
            "service_unavailable",
            "the database is unavailable or busy, the keys file cannot be read, or the request \
             took over 30 s; retry after `Retry-After`",
        ),
    ]
}

/// Whether a request with `method` authenticated by the session cookie
/// needs the CSRF header.
pub(super) fn is_unsafe(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Everything an operation may answer with a problem.
pub(super) fn problems(entry: &RouteEntry, operation: &Value) -> Vec<Problem> {
    let mut all = vec![
        INVALID_HEADER,
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
        HEADERS_TOO_LARGE,
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
    if accepts(TokenKind::Staff) {
        all.push(problem(
            403,
            "origin_not_allowed",
            "the staff session was sent with an `Origin` other than the API's own, or a \
             `Sec-Fetch-Site` other than `same-origin`",
        ));
        if is_unsafe(&entry.method) {
            all.push(problem(
                403,
                "csrf_failed",
                "the staff session came without `X-CSRF-Token` equal to its `csrf_token`",
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
        all.extend(JSON_BODY);
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

/// Problems any request may meet outside an operation's own list: a
/// bug, or a method the path does not serve. The `default` response.
const ANYWHERE: &[Problem] = &[
    problem(
        500,
        "internal_error",
        "a bug: the answer's `request_id` names the log line with the cause",
    ),
    problem(
        405,
        "method_not_allowed",
        "the path does not serve this method",
    ),
];

/// The problem+json schema of a status whose `code` is one of `codes`: the
/// `Problem`, narrowed.
fn problem_schema(status: u16, codes: &[&str]) -> Value {
    json!({
        "allOf": [
            {"$ref": "#/components/schemas/Problem"},
            {
                "type": "object",
                "required": ["status", "code"],
                "properties": {
                    "status": {"const": status},
                    "code": {"enum": codes},
                },
            },
        ],
    })
}

/// The `default` response of every operation.
pub(super) fn default_response() -> Value {
    json!({"$ref": "#/components/responses/Problem"})
}

/// `components/responses/Problem`: any other problem.
pub(super) fn default_response_component() -> Value {
    let description = ANYWHERE
        .iter()
        .map(|problem| format!("{} `{}`: {}", problem.status, problem.code, problem.when))
        .collect::<Vec<_>>()
        .join("; ");
    json!({
        "description": format!("Any other problem, e.g. {description}"),
        "headers": {"X-Request-Id": header_ref("X-Request-Id")},
        "content": {"application/problem+json": {
            "schema": {"$ref": "#/components/schemas/Problem"},
        }},
    })
}

/// `Problem` and `ProblemCode`: the one shape of every problem+json answer,
/// and every `code` the document names (each response narrows it to its
/// own), gathered from the document's responses.
pub(super) fn add_schemas(doc: &mut Value) {
    let mut codes: Vec<String> = ANYWHERE
        .iter()
        .map(|problem| problem.code.to_owned())
        .collect();
    for item in doc["paths"].as_object().expect("paths").values() {
        for operation in item.as_object().expect("a path item").values() {
            let Some(responses) = operation["responses"].as_object() else {
                continue;
            };
            for response in responses.values() {
                let narrowed = &response["content"]["application/problem+json"]["schema"]["allOf"]
                    [1]["properties"]["code"]["enum"];
                for code in narrowed.as_array().into_iter().flatten() {
                    codes.push(code.as_str().expect("a code is a string").to_owned());
                }
            }
        }
    }
    codes.sort();
    codes.dedup();
    let schemas = &mut doc["components"]["schemas"];
    schemas["ProblemCode"] = json!({
        "type": "string",
        "description": "The stable `code` of a problem. Each response of each operation lists \
            the codes it may carry; a client may switch on them.",
        "enum": codes,
    });
    schemas["Problem"] = json!({
        "type": "object",
        "description": "An RFC 9457 problem: every error answer under `/api/v1`, \
            as `application/problem+json`.",
        "required": ["type", "title", "status", "code", "detail"],
        "properties": {
            "type": {"type": "string", "description": "`urn:jeton:problem:` and the code"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "code": {"$ref": "#/components/schemas/ProblemCode"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "description": "With `validation_failed`: every problem, by field",
                "items": {"$ref": "#/components/schemas/FieldError"},
            },
            "request_id": {
                "type": "string",
                "description": "With `internal_error`: the request's id, as in the server's log",
            },
        },
        "example": {
            "type": "urn:jeton:problem:invalid_token",
            "title": "Invalid token",
            "status": 401,
            "code": "invalid_token",
            "detail": "the token is malformed, unknown, revoked or expired",
        },
    });
}

/// The error responses of an operation, one per status.
pub(super) fn error_responses(all: &[Problem]) -> BTreeMap<u16, Value> {
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
