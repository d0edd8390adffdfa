//! Client applications: what the admin API and CLI accept when creating one.

use jeton_auth::{AbilitySet, TokenKind};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::{FieldError, Problems, abilities, schema, text::bounded};

/// The two kinds of client key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    Publishable,
    Secret,
}

impl ClientKind {
    pub fn token_kind(self) -> TokenKind {
        match self {
            ClientKind::Publishable => TokenKind::Publishable,
            ClientKind::Secret => TokenKind::Secret,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Publishable => "publishable",
            ClientKind::Secret => "secret",
        }
    }

    pub fn parse(text: &str) -> Option<ClientKind> {
        match text {
            "publishable" => Some(ClientKind::Publishable),
            "secret" => Some(ClientKind::Secret),
            _ => None,
        }
    }
}

/// As stored: `publishable` or `secret`.
impl TryFrom<String> for ClientKind {
    type Error = String;

    fn try_from(text: String) -> Result<ClientKind, String> {
        ClientKind::parse(&text).ok_or_else(|| format!("unknown client kind {text}"))
    }
}

pub const MAX_RATE_LIMIT: i64 = 1_000_000;
pub const NAME_MAX: usize = 100;
pub const MAX_ORIGINS: usize = 50;

pub use jeton_auth::origin::MAX_ORIGIN_LEN;

/// An origin as browsers send it: `scheme://host[:port]`, nothing else, as
/// jeton-auth's store takes it. The canonical form (lower-case host,
/// default port dropped) is what is stored. `*` is accepted only spelled
/// out on its own.
pub fn parse_origin(raw: &str) -> Result<String, String> {
    jeton_auth::origin::parse_origin(raw).map_err(|invalid| invalid.to_string())
}

/// Distinguishes a field left out (`None`) from one set to `null`
/// (`Some(None)`).
pub(super) fn explicit_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

fn client_name_schema() -> utoipa::openapi::Object {
    schema::field(schema::bounded_text(1, NAME_MAX, false).examples(["Storefront"]))
}

/// What a publishable key may hold, for the schemas' descriptions.
fn publishable_abilities() -> String {
    abilities::grantable(TokenKind::Publishable)
        .iter()
        .map(|ability| format!("`{ability}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One allowed origin.
fn origin_schema() -> utoipa::openapi::Object {
    schema::sized_text(1, MAX_ORIGIN_LEN)
        .description(Some(
            "`scheme://host[:port]` (http or https), or `*` alone.",
        ))
        .examples(["http://localhost:8080"])
        .build()
}

fn client_abilities_schema() -> utoipa::openapi::Array {
    let mut list = abilities::list_schema(TokenKind::Secret, false);
    list.description = Some(format!(
        "Within the kind's ceiling: a publishable key may hold only {}.",
        publishable_abilities()
    ));
    list
}

fn origins_schema() -> utoipa::openapi::Array {
    let origin = origin_schema();
    let mut list = schema::array(origin, 0, MAX_ORIGINS, false);
    list.description = Some(
        "Websites the key may be used from: at least one for a publishable key, none for a secret key."
            .to_owned(),
    );
    list
}

fn rate_limit_schema() -> utoipa::openapi::Object {
    schema::field(
        schema::integer(1, MAX_RATE_LIMIT, true)
            .description(Some(
                "Requests per minute for the key as a whole. Omitted: the server's default. `null`: no limit.",
            )),
    )
}

fn per_ip_rate_limit_schema() -> utoipa::openapi::Object {
    schema::field(schema::integer(1, MAX_RATE_LIMIT, true).description(Some(
        "Publishable keys only: requests per minute per client IP. Omitted: the server's default. `null`: no limit.",
    )))
}

/// `POST /admin/clients`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Storefront", "kind": "publishable", "abilities": ["products:read", "customers:create", "auth:login"], "allowed_origins": ["http://localhost:8080"]}))]
pub struct NewClientInput {
    #[schema(schema_with = client_name_schema)]
    pub name: String,
    pub kind: ClientKind,
    #[schema(schema_with = client_abilities_schema)]
    pub abilities: Vec<String>,
    #[serde(default)]
    #[schema(schema_with = origins_schema)]
    pub allowed_origins: Vec<String>,
    #[serde(default, deserialize_with = "explicit_null")]
    #[schema(schema_with = rate_limit_schema)]
    pub rate_limit_per_minute: Option<Option<i64>>,
    #[serde(default, deserialize_with = "explicit_null")]
    #[schema(schema_with = per_ip_rate_limit_schema)]
    pub per_ip_rate_limit_per_minute: Option<Option<i64>>,
}

/// The server's defaults for limits a client left out.
#[derive(Debug, Clone, Copy)]
pub struct LimitDefaults {
    pub rate_limit_per_minute: Option<i64>,
    pub per_ip_rate_limit_per_minute: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: String,
    pub kind: ClientKind,
    pub abilities: AbilitySet,
    pub allowed_origins: Vec<String>,
    pub rate_limit_per_minute: Option<i64>,
    pub per_ip_rate_limit_per_minute: Option<i64>,
}

fn parse_limit(limit: Option<i64>) -> Result<Option<i64>, String> {
    match limit {
        Some(n) if !(1..=MAX_RATE_LIMIT).contains(&n) => Err(format!(
            "must be from 1 to {MAX_RATE_LIMIT}, or null for no limit"
        )),
        other => Ok(other),
    }
}

impl NewClient {
    pub fn parse(
        input: NewClientInput,
        defaults: LimitDefaults,
    ) -> Result<NewClient, Vec<FieldError>> {
        let mut problems = Problems::default();
        let name = problems.check("name", bounded(&input.name, 1, NAME_MAX));
        let abilities = problems.check(
            "abilities",
            abilities::parse_for_kind(&input.abilities, input.kind.token_kind()),
        );
        let origins = parse_origins(&mut problems, &input.allowed_origins);
        match input.kind {
            ClientKind::Publishable if input.allowed_origins.is_empty() => problems.add(
                "allowed_origins",
                "a publishable key needs at least one allowed origin",
            ),
            ClientKind::Secret if !input.allowed_origins.is_empty() => problems.add(
                "allowed_origins",
                "secret keys are for servers and are refused from browsers; they have no origins",
            ),
            _ => {}
        }
        let rate_limit = problems.check(
            "rate_limit_per_minute",
            parse_limit(
                input
                    .rate_limit_per_minute
                    .unwrap_or(defaults.rate_limit_per_minute),
            ),
        );
        let per_ip = match (input.kind, input.per_ip_rate_limit_per_minute) {
            (ClientKind::Secret, Some(Some(_))) => {
                problems.add(
                    "per_ip_rate_limit_per_minute",
                    "applies to publishable keys only",
                );
                None
            }
            (ClientKind::Secret, _) => Some(None),
            (ClientKind::Publishable, given) => problems.check(
                "per_ip_rate_limit_per_minute",
                parse_limit(given.unwrap_or(defaults.per_ip_rate_limit_per_minute)),
            ),
        };
        problems.finish(|| NewClient {
            name: name.expect("checked"),
            kind: input.kind,
            abilities: abilities.expect("checked"),
            allowed_origins: origins,
            rate_limit_per_minute: rate_limit.expect("checked"),
            per_ip_rate_limit_per_minute: per_ip.expect("checked"),
        })
    }
}

fn patch_name_schema() -> utoipa::openapi::Object {
    schema::field(
        schema::bounded_text(1, NAME_MAX, true)
            .description(Some("The new name; left out or `null`: unchanged."))
            .examples(["Storefront"]),
    )
}

fn patch_abilities_schema() -> utoipa::openapi::Array {
    let mut list = abilities::list_schema(TokenKind::Secret, true);
    list.description = Some(format!(
        "Replaces the abilities; left out or `null`: unchanged. Within the kind's ceiling \
         (a publishable key may hold only {}), and beyond the storefront's and the customers' \
         abilities only what the caller holds. The client's access tokens whose scope the new \
         abilities do not allow are revoked.",
        publishable_abilities()
    ));
    list
}

fn patch_origins_schema() -> utoipa::openapi::Array {
    let origin = origin_schema();
    let mut list = schema::array(origin, 0, MAX_ORIGINS, true);
    list.description = Some(
        "Replaces the websites the key may be used from; left out or `null`: unchanged. At \
         least one for a publishable key; a secret key has none (only `[]` is accepted)."
            .to_owned(),
    );
    list
}

fn patch_rate_limit_schema() -> utoipa::openapi::Object {
    schema::field(schema::integer(1, MAX_RATE_LIMIT, true).description(Some(
        "Requests per minute for the key as a whole. Left out: unchanged. `null`: no limit.",
    )))
}

fn patch_per_ip_rate_limit_schema() -> utoipa::openapi::Object {
    schema::field(schema::integer(1, MAX_RATE_LIMIT, true).description(Some(
        "Publishable keys only (a secret key takes only `null`): requests per minute per \
         client IP. Left out: unchanged. `null`: no limit.",
    )))
}

/// `PATCH /admin/clients/{id}`: the fields to change, each left out (or,
/// but for the limits, `null`) to keep it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"allowed_origins": ["https://shop.example"], "rate_limit_per_minute": 600}))]
pub struct ClientPatchInput {
    #[schema(schema_with = patch_name_schema)]
    pub name: Option<String>,
    #[schema(schema_with = patch_abilities_schema)]
    pub abilities: Option<Vec<String>>,
    #[schema(schema_with = patch_origins_schema)]
    pub allowed_origins: Option<Vec<String>>,
    #[serde(default, deserialize_with = "explicit_null")]
    #[schema(schema_with = patch_rate_limit_schema)]
    pub rate_limit_per_minute: Option<Option<i64>>,
    #[serde(default, deserialize_with = "explicit_null")]
    #[schema(schema_with = patch_per_ip_rate_limit_schema)]
    pub per_ip_rate_limit_per_minute: Option<Option<i64>>,
}

/// What to change of a client, valid for its kind; `None` keeps a field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientChange {
    pub name: Option<String>,
    pub abilities: Option<AbilitySet>,
    pub allowed_origins: Option<Vec<String>>,
    /// `Some(None)`: no limit.
    pub rate_limit_per_minute: Option<Option<i64>>,
    pub per_ip_rate_limit_per_minute: Option<Option<i64>>,
}

/// Parses a list of origins into their canonical forms, each once.
fn parse_origins(problems: &mut Problems, given: &[String]) -> Vec<String> {
    if given.len() > MAX_ORIGINS {
        problems.add("allowed_origins", format!("at most {MAX_ORIGINS} origins"));
    }
    let mut origins = Vec::new();
    for (index, origin) in given.iter().enumerate() {
        if let Some(origin) =
            problems.check(&format!("allowed_origins[{index}]"), parse_origin(origin))
            && !origins.contains(&origin)
        {
            origins.push(origin);
        }
    }
    origins
}

impl ClientChange {
    /// The change asked for a client of `kind`, by the rules of a new
    /// client of that kind.
    pub fn parse(
        input: ClientPatchInput,
        kind: ClientKind,
    ) -> Result<ClientChange, Vec<FieldError>> {
        let mut problems = Problems::default();
        let name = input
            .name
            .map(|name| problems.check("name", bounded(&name, 1, NAME_MAX)));
        let abilities = input.abilities.map(|requested| {
            problems.check(
                "abilities",
                abilities::parse_for_kind(&requested, kind.token_kind()),
            )
        });
        let allowed_origins = input.allowed_origins.map(|given| {
            match kind {
                ClientKind::Publishable if given.is_empty() => problems.add(
                    "allowed_origins",
                    "a publishable key needs at least one allowed origin",
                ),
                ClientKind::Secret if !given.is_empty() => problems.add(
                    "allowed_origins",
                    "secret keys are for servers and are refused from browsers; they have no origins",
                ),
                _ => {}
            }
            parse_origins(&mut problems, &given)
        });
        let rate_limit = input
            .rate_limit_per_minute
            .map(|limit| problems.check("rate_limit_per_minute", parse_limit(limit)));
        let per_ip = match (kind, input.per_ip_rate_limit_per_minute) {
            (ClientKind::Secret, Some(Some(_))) => {
                problems.add(
                    "per_ip_rate_limit_per_minute",
                    "applies to publishable keys only",
                );
                None
            }
            // A secret key has none: `null` changes nothing.
            (ClientKind::Secret, _) => None,
            (ClientKind::Publishable, given) => given
                .map(|limit| problems.check("per_ip_rate_limit_per_minute", parse_limit(limit))),
        };
        problems.finish(|| ClientChange {
            name: name.map(|name| name.expect("checked")),
            abilities: abilities.map(|set| set.expect("checked")),
            // A secret client's `[]` is what it has.
            allowed_origins: allowed_origins.filter(|_| kind == ClientKind::Publishable),
            rate_limit_per_minute: rate_limit.map(|limit| limit.expect("checked")),
            per_ip_rate_limit_per_minute: per_ip.map(|limit| limit.expect("checked")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            parse_origin("http://localhost:8080").unwrap(),
            "http://localhost:8080"
        );
        assert_eq!(
            parse_origin("https://Shop.Example.com:443").unwrap(),
            "https://shop.example.com"
        );
        assert_eq!(parse_origin("*").unwrap(), "*");
        for bad in [
            "localhost:8080",
            "https://shop.example.com/",
            "https://shop.example.com/path",
            "https://*.example.com",
            "ftp://example.com",
            "https://example.com?x=1",
            "https://user:pw@example.com",
            "",
            "null",
            "https://",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
        let long = format!("https://{}.example", "a".repeat(MAX_ORIGIN_LEN));
        assert!(parse_origin(&long).is_err());
    }

    fn input(kind: ClientKind, abilities: &[&str], origins: &[&str]) -> NewClientInput {
        NewClientInput {
            name: "shop".into(),
            kind,
            abilities: abilities.iter().map(|s| s.to_string()).collect(),
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            rate_limit_per_minute: None,
            per_ip_rate_limit_per_minute: None,
        }
    }

    const DEFAULTS: LimitDefaults = LimitDefaults {
        rate_limit_per_minute: Some(100),
        per_ip_rate_limit_per_minute: Some(10),
    };

    #[test]
    fn publishable_rules() {
        let ok = NewClient::parse(
            input(
                ClientKind::Publishable,
                &["products:read"],
                &["https://shop.example"],
            ),
            DEFAULTS,
        )
        .unwrap();
        assert_eq!(ok.rate_limit_per_minute, Some(100));
        assert_eq!(ok.per_ip_rate_limit_per_minute, Some(10));
        assert!(
            NewClient::parse(
                input(
                    ClientKind::Publishable,
                    &["orders:write"],
                    &["https://shop.example"]
                ),
                DEFAULTS
            )
            .is_err()
        );
        assert!(
            NewClient::parse(
                input(ClientKind::Publishable, &["products:read"], &[]),
                DEFAULTS
            )
            .is_err()
        );
    }

    #[test]
    fn limits() {
        let mut none = input(ClientKind::Secret, &["admin"], &[]);
        none.rate_limit_per_minute = Some(None);
        assert_eq!(
            NewClient::parse(none, DEFAULTS)
                .unwrap()
                .rate_limit_per_minute,
            None
        );
        let mut zero = input(ClientKind::Secret, &["admin"], &[]);
        zero.rate_limit_per_minute = Some(Some(0));
        assert!(NewClient::parse(zero, DEFAULTS).is_err());
    }

    fn patch(body: serde_json::Value) -> ClientPatchInput {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn patches_follow_the_kind() {
        use serde_json::json;
        let change = ClientChange::parse(
            patch(json!({"allowed_origins": ["https://Shop.example:443"], "per_ip_rate_limit_per_minute": null})),
            ClientKind::Publishable,
        )
        .unwrap();
        assert_eq!(
            change.allowed_origins,
            Some(vec!["https://shop.example".to_owned()])
        );
        assert_eq!(change.per_ip_rate_limit_per_minute, Some(None));
        assert_eq!(change.rate_limit_per_minute, None);
        assert!(
            ClientChange::parse(
                patch(json!({"allowed_origins": []})),
                ClientKind::Publishable
            )
            .is_err()
        );
        assert!(
            ClientChange::parse(
                patch(json!({"abilities": ["orders:cancel"]})),
                ClientKind::Publishable
            )
            .is_err()
        );
        assert!(
            ClientChange::parse(
                patch(json!({"allowed_origins": ["https://shop.example"]})),
                ClientKind::Secret
            )
            .is_err()
        );
        assert!(
            ClientChange::parse(
                patch(json!({"per_ip_rate_limit_per_minute": 5})),
                ClientKind::Secret
            )
            .is_err()
        );
        // What a secret client has anyway changes nothing.
        let same = ClientChange::parse(
            patch(json!({"allowed_origins": [], "per_ip_rate_limit_per_minute": null})),
            ClientKind::Secret,
        )
        .unwrap();
        assert_eq!(same, ClientChange::default());
        assert_eq!(
            ClientChange::parse(patch(json!({})), ClientKind::Secret).unwrap(),
            ClientChange::default()
        );
    }
}
