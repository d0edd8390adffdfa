//! The OAuth 2.0 endpoints in the document: written out here rather than
//! derived from the route table, since they are not its rows (see
//! `routes::OAUTH`). Form bodies, the RFC 6749 error object, HTTP Basic
//! client authentication, and `Cache-Control`/`Pragma` on every answer.

use serde_json::{Map, Value, json};

use crate::{
    domain::abilities,
    http::{
        extract::MAX_BODY_BYTES,
        oauth::{AUTH_METHODS, INTROSPECT_PATH, METADATA_PATH, REVOKE_PATH, TOKEN_PATH},
    },
};
use jeton_auth::TokenKind;

const FORM: &str = "application/x-www-form-urlencoded";

/// The security scheme of client authentication by HTTP Basic.
pub const CLIENT_BASIC: &str = "client_basic";

/// The RFC 6749 §5.2 error object, with the codes a status may carry.
fn error_schema(codes: &[&str]) -> Value {
    json!({
        "type": "object",
        "required": ["error", "error_description"],
        "additionalProperties": false,
        "properties": {
            "error": {"type": "string", "enum": codes},
            "error_description": {"type": "string"},
        },
    })
}

fn header_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/headers/{name}")})
}

/// `Cache-Control` and `Pragma`, and the request id, on every answer.
fn common_headers() -> Map<String, Value> {
    let mut headers = Map::new();
    for name in ["Cache-Control", "Pragma", "X-Request-Id"] {
        headers.insert(name.into(), header_ref(name));
    }
    headers
}

/// An error answer: RFC 6749 JSON with these codes, and what it means.
fn error(description: &str, codes: &[&str], extra: &[(&str, &str)]) -> Value {
    let mut headers = common_headers();
    for (name, component) in extra {
        headers.insert((*name).into(), header_ref(component));
    }
    json!({
        "description": description,
        "headers": headers,
        "content": {"application/json": {
            "schema": error_schema(codes),
            "example": {"error": codes[0], "error_description": description},
        }},
    })
}

/// The answers every POST endpoint may give besides its own.
fn post_errors(bad_request: &[&str], bad_request_means: &str) -> Map<String, Value> {
    let mut responses = Map::new();
    let mut codes = vec!["invalid_request"];
    codes.extend_from_slice(bad_request);
    // The hygiene layer's answer to header bytes HTTP cannot carry comes
    // before any route, as problem+json.
    let mut bad = error(
        &format!(
            "`invalid_request`: the body is not a form, a parameter is repeated, or client \
             credentials came both in the `Authorization` header and in the body{bad_request_means}"
        ),
        &codes,
        &[],
    );
    bad["content"]["application/problem+json"] =
        json!({"schema": {"$ref": "#/components/schemas/Problem"}});
    responses.insert("400".into(), bad);
    responses.insert(
        "401".into(),
        error(
            "`invalid_client`: client credentials missing, unknown or wrong, or of a publishable \
             client (counted toward the per-IP limit on failed authentications)",
            &["invalid_client"],
            &[("WWW-Authenticate", "WWW-Authenticate-Required")],
        ),
    );
    responses.insert(
        "413".into(),
        error(
            &format!("the body is over {MAX_BODY_BYTES} bytes"),
            &["invalid_request"],
            &[],
        ),
    );
    responses.insert(
        "429".into(),
        error(
            "`rate_limited`: too many failed authentications from this IP address, or (token \
             endpoint) the client's limit per minute is used up",
            &["rate_limited"],
            &[("Retry-After", "Retry-After-Required")],
        ),
    );
    responses.insert(
        "431".into(),
        json!({
            "description": "a header value is over 8 KiB, or all of them over 32 KiB",
            "content": {"application/problem+json": {"schema": {"type": "object"}}},
        }),
    );
    responses.insert(
        "503".into(),
        error(
            "`temporarily_unavailable`: the database is unavailable or busy; retry after `Retry-After`",
            &["temporarily_unavailable"],
            &[("Retry-After", "Retry-After")],
        ),
    );
    responses
}

/// A form body with these properties.
fn form_body(properties: Value, required: &[&str]) -> Value {
    json!({
        "required": true,
        "content": {FORM: {"schema": {
            "type": "object",
            "properties": properties,
            "required": required,
        }}},
    })
}

fn client_properties() -> Value {
    json!({
        "client_id": {
            "type": "string",
            "description": "`client_secret_post`: the client's id (with `client_secret`; never with HTTP Basic)",
        },
        "client_secret": {
            "type": "string",
            "description": "`client_secret_post`: one of the client's live secret keys (`jt_sk_…`)",
        },
    })
}

fn with_client(mut properties: Value) -> Value {
    for (name, schema) in client_properties().as_object().expect("an object") {
        properties[name] = schema.clone();
    }
    properties
}

/// Client authentication: HTTP Basic, or in the body (no scheme).
fn client_security() -> Value {
    json!([{CLIENT_BASIC: []}, {}])
}

fn token_operation() -> Value {
    let mut responses = post_errors(
        &["invalid_scope", "unsupported_grant_type"],
        "; `invalid_scope`: the scope names an ability the client does not hold; \
         `unsupported_grant_type`: not `client_credentials`",
    );
    responses.insert(
        "200".into(),
        json!({
            "description": "An access token (RFC 6749 §5.1), shown only here",
            "headers": common_headers(),
            "content": {"application/json": {
                "schema": {
                    "type": "object",
                    "required": ["access_token", "token_type", "expires_in", "scope"],
                    "additionalProperties": false,
                    "properties": {
                        "access_token": {"type": "string", "pattern": "^jt_at_[0-9A-Za-z]{36}$"},
                        "token_type": {"type": "string", "const": "Bearer"},
                        "expires_in": {"type": "integer", "minimum": 0, "description": "Seconds; the server's `--access-token-ttl`, or less if the secret key used is being rotated out"},
                        "scope": {"type": "string", "description": "The granted abilities, separated by spaces"},
                    },
                },
                "example": {
                    "access_token": "jt_at_EXAMPLEonlyEXAMPLEonlyEXAMPLEonly000",
                    "token_type": "Bearer",
                    "expires_in": 900,
                    "scope": "products:read",
                },
            }},
        }),
    );
    json!({
        "operationId": "issueAccessToken",
        "tags": ["oauth"],
        "summary": "Get an access token (client credentials grant)",
        "description": "RFC 6749 §4.4. The client authenticates with its id and one of its live \
            secret keys, by HTTP Basic (`client_secret_basic`) or in the form \
            (`client_secret_post`). Without `scope`, the token gets the client's abilities. \
            Counts toward the client's limit per minute. Only secret clients may call it; \
            it issues a token and changes nothing else.",
        "security": client_security(),
        "requestBody": form_body(with_client(json!({
            "grant_type": {"type": "string", "enum": ["client_credentials"]},
            "scope": {
                "type": "string",
                "description": "Abilities separated by spaces, each held by the client",
                "example": "products:read",
            },
        })), &["grant_type"]),
        "responses": responses,
    })
}

fn token_property() -> Value {
    json!({
        "token": {"type": "string", "description": "Any token: `jt_pk_`, `jt_sk_`, `jt_ut_` or `jt_at_`"},
        "token_type_hint": {"type": "string", "description": "A hint; it never changes the answer"},
    })
}

fn introspect_operation() -> Value {
    let mut responses = post_errors(&[], "; `token` is missing");
    responses["401"] = error(
        "The caller failed authentication or lacks `tokens:introspect` (RFC 7662 §2.3): \
         `invalid_client` for client credentials, `invalid_token` or `insufficient_scope` for a \
         bearer token",
        &["invalid_client", "invalid_token", "insufficient_scope"],
        &[("WWW-Authenticate", "WWW-Authenticate-Required")],
    );
    responses["429"] = error(
        "`rate_limited`: too many failed authentications from this IP address",
        &["rate_limited"],
        &[("Retry-After", "Retry-After-Required")],
    );
    let kinds: Vec<&str> = TokenKind::ALL.iter().map(|kind| kind.name()).collect();
    responses.insert(
        "200".into(),
        json!({
            "description": "RFC 7662 §2.2. A live token of any kind is described; anything else \
                (unknown, malformed, revoked, expired) is exactly `{\"active\": false}`",
            "headers": common_headers(),
            "content": {"application/json": {
                "schema": {
                    "oneOf": [
                        {
                            "type": "object",
                            "required": ["active"],
                            "additionalProperties": false,
                            "properties": {"active": {"const": false}},
                        },
                        {
                            "type": "object",
                            "required": ["active", "scope", "token_type", "iat", "jeton_kind"],
                            "additionalProperties": false,
                            "properties": {
                                "active": {"const": true},
                                "scope": {"type": "string"},
                                "client_id": {"type": "string"},
                                "token_type": {"const": "Bearer"},
                                "exp": {"type": "integer", "description": "Unix seconds; absent if the token never expires"},
                                "iat": {"type": "integer", "description": "Unix seconds"},
                                "sub": {"type": "string", "description": "User tokens: the customer's id"},
                                "jeton_kind": {"type": "string", "enum": kinds},
                            },
                        },
                    ],
                },
                "example": {
                    "active": true,
                    "scope": "products:read",
                    "client_id": "0193a1b2-6a4f-7441-b82b-3e602c143de3",
                    "token_type": "Bearer",
                    "exp": 1_796_000_000,
                    "iat": 1_795_999_100,
                    "jeton_kind": "access",
                },
            }},
        }),
    );
    json!({
        "operationId": "introspectToken",
        "tags": ["oauth"],
        "summary": "Describe a token (RFC 7662)",
        "description": "Tells whether a token is live, and if so its kind, scope, client and \
            expiry; changes nothing. The caller authenticates as a secret client (HTTP Basic or in the form), \
            or with a bearer secret key or access token; either way its client needs \
            `tokens:introspect`.",
        "security": [
            {CLIENT_BASIC: []},
            {"secret_key": ["tokens:introspect"]},
            {"oauth2_access_token": ["tokens:introspect"]},
            {},
        ],
        "requestBody": form_body(with_client(token_property()), &["token"]),
        "responses": responses,
    })
}

fn revoke_operation() -> Value {
    let mut responses = post_errors(&[], "; `token` is missing");
    responses["429"] = error(
        "`rate_limited`: too many failed authentications from this IP address",
        &["rate_limited"],
        &[("Retry-After", "Retry-After-Required")],
    );
    responses.insert(
        "200".into(),
        json!({
            "description": "RFC 7009: the token is revoked if it is an access token of the \
                calling client or a user token issued through it; any other token (unknown, \
                another client's) is left alone, with the same answer. Empty body.",
            "headers": common_headers(),
        }),
    );
    json!({
        "operationId": "revokeOAuthToken",
        "tags": ["oauth"],
        "summary": "Revoke a token (RFC 7009)",
        "description": "A secret client (HTTP Basic or in the form) revokes one of its access \
            tokens, or a user token issued through it (with the personal tokens made from it). \
            Any other token is left alone with the same answer, so that the endpoint tells \
            nothing about tokens that are not the caller's.",
        "security": client_security(),
        "requestBody": form_body(with_client(token_property()), &["token"]),
        "responses": responses,
    })
}

fn metadata_operation() -> Value {
    let methods = json!({"type": "array", "items": {"type": "string", "enum": AUTH_METHODS}});
    let url = json!({"type": "string", "format": "uri"});
    let too_large = json!({
        "description": "`headers_too_large`: a header value is over 8 KiB, or all of them over 32 KiB",
        "headers": {"X-Request-Id": header_ref("X-Request-Id")},
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    });
    json!({
        "operationId": "getAuthorizationServerMetadata",
        "tags": ["oauth"],
        "summary": "Get the authorization server's metadata (RFC 8414)",
        "description": "Anyone may read it, without credentials: the issuer, the endpoints \
            under the server's `--public-url`, the grant and the client authentication \
            methods supported, and the abilities a client may ask for as scopes. Changes \
            nothing.",
        "security": [],
        "responses": {"431": too_large, "200": {
            "description": "Its URLs are under the server's `--public-url`",
            "headers": common_headers(),
            "content": {"application/json": {"schema": {
                "type": "object",
                "required": [
                    "issuer", "token_endpoint", "introspection_endpoint", "revocation_endpoint",
                    "grant_types_supported", "token_endpoint_auth_methods_supported",
                    "introspection_endpoint_auth_methods_supported",
                    "revocation_endpoint_auth_methods_supported", "scopes_supported",
                ],
                "additionalProperties": false,
                "properties": {
                    "issuer": url,
                    "token_endpoint": url,
                    "introspection_endpoint": url,
                    "revocation_endpoint": url,
                    "grant_types_supported": {"type": "array", "items": {"const": "client_credentials"}},
                    "token_endpoint_auth_methods_supported": methods,
                    "introspection_endpoint_auth_methods_supported": methods,
                    "revocation_endpoint_auth_methods_supported": methods,
                    "scopes_supported": {
                        "type": "array",
                        "items": {"type": "string", "enum": abilities::grantable(TokenKind::Secret)},
                    },
                },
            }}},
        }},
    })
}

/// Adds the four operations to `paths`, and the Basic scheme.
pub fn add(paths: &mut Value, schemes: &mut Map<String, Value>) {
    paths[TOKEN_PATH] = json!({"post": token_operation()});
    paths[INTROSPECT_PATH] = json!({"post": introspect_operation()});
    paths[REVOKE_PATH] = json!({"post": revoke_operation()});
    paths[METADATA_PATH] = json!({"get": metadata_operation()});
    schemes.insert(
        CLIENT_BASIC.into(),
        json!({
            "type": "http",
            "scheme": "basic",
            "description": "OAuth 2.0 `client_secret_basic` (RFC 6749 §2.3.1): the client's id \
                as the user name and one of its live secret keys as the password, each \
                form-urlencoded. Alternatively (`client_secret_post`), `client_id` and \
                `client_secret` in the form; never both.",
        }),
    );
}

/// The headers only the OAuth answers carry.
pub fn add_headers(headers: &mut Value) {
    headers["Cache-Control"] = json!({
        "description": "Always `no-store`",
        "required": true,
        "schema": {"type": "string", "const": "no-store"},
    });
    headers["Pragma"] = json!({
        "description": "Always `no-cache` (RFC 6749 §5.1)",
        "required": true,
        "schema": {"type": "string", "const": "no-cache"},
    });
}
