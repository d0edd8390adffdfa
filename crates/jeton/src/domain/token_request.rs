//! A customer's request for a personal token (`POST /me/tokens`): its name,
//! its abilities and its lifetime, each bounded by the token making the
//! request.

use jeton_auth::{AbilitySet, TokenKind};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    FieldError, Problems, abilities, client::explicit_null, schema, text::bounded, time::Timestamp,
};

/// Longest lifetime a personal token may ask for: ten years.
pub const MAX_EXPIRES_IN_SECONDS: i64 = 10 * 365 * 24 * 3600;

/// Longest name of a personal token.
const NAME_MAX: usize = 100;

fn name_schema() -> utoipa::openapi::Object {
    schema::field(schema::bounded_text(1, NAME_MAX, false).examples(["deploy script"]))
}

fn abilities_schema() -> utoipa::openapi::Array {
    let mut list = abilities::list_schema(TokenKind::User, true);
    list.description = Some(
        "A subset of the calling token's abilities; omitted or `null`: all of them.".to_owned(),
    );
    list
}

fn expires_in_schema() -> utoipa::openapi::Object {
    schema::field(schema::integer(1, MAX_EXPIRES_IN_SECONDS, true).description(Some(
        "Omitted: the server's default lifetime (30 days unless configured), cut to the calling \
         token's expiry. `null`: the token does not expire, which only a token that does not \
         expire may ask for. A lifetime that would outlive the calling token is 422: a token \
         never makes one that outlives it.",
    )))
}

/// `POST /me/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "deploy script", "abilities": ["orders:read"], "expires_in_seconds": 86400}))]
pub struct NewTokenInput {
    #[schema(schema_with = name_schema)]
    pub name: String,
    #[schema(schema_with = abilities_schema)]
    pub abilities: Option<Vec<String>>,
    #[serde(default, deserialize_with = "explicit_null")]
    #[schema(schema_with = expires_in_schema)]
    pub expires_in_seconds: Option<Option<i64>>,
}

/// The token making the request: a token it makes never has more abilities
/// nor outlives it.
#[derive(Debug, Clone, Copy)]
pub struct Parent<'a> {
    pub abilities: &'a AbilitySet,
    pub expires_at: Option<Timestamp>,
}

/// A valid request for a personal token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub name: String,
    pub abilities: AbilitySet,
    /// `None`: the token does not expire.
    pub expires_at: Option<Timestamp>,
}

impl TokenRequest {
    /// Parses `input` for a token made by `parent` at `now`; a lifetime left
    /// out is `default_ttl`, cut to the parent's expiry.
    pub fn parse(
        input: &NewTokenInput,
        parent: Parent<'_>,
        now: Timestamp,
        default_ttl: time::Duration,
    ) -> Result<TokenRequest, Vec<FieldError>> {
        let mut problems = Problems::default();
        let name = problems.check("name", bounded(&input.name, 1, NAME_MAX));
        let abilities = match &input.abilities {
            None => Some(parent.abilities.clone()),
            Some(requested) => problems.check(
                "abilities",
                abilities::parse_for_kind(requested, TokenKind::User).and_then(|wanted| {
                    if abilities::ceilings().is_subset(&wanted, parent.abilities) {
                        Ok(wanted)
                    } else {
                        Err(
                            "must be a subset of the abilities of the token making the request"
                                .to_owned(),
                        )
                    }
                }),
            ),
        };
        // A token never makes one that outlives it: a stolen short-lived token
        // must not become a lasting one.
        let parent_expires = parent.expires_at;
        let outlives = "must not outlive the token making the request";
        let expires_at = match input.expires_in_seconds {
            None => Some(Some(match parent_expires {
                Some(parent) => parent.min(now + default_ttl),
                None => now + default_ttl,
            })),
            Some(None) if parent_expires.is_some() => {
                problems.add(
                    "expires_in_seconds",
                    format!("{outlives}, which expires: give a lifetime in seconds"),
                );
                None
            }
            Some(None) => Some(None),
            Some(Some(seconds)) if (1..=MAX_EXPIRES_IN_SECONDS).contains(&seconds) => {
                let at = now + time::Duration::seconds(seconds);
                match parent_expires {
                    Some(parent) if at > parent => {
                        let left = (parent - now).whole_seconds().max(0);
                        problems.add(
                            "expires_in_seconds",
                            format!("{outlives}, which expires in {left} seconds"),
                        );
                        None
                    }
                    _ => Some(Some(at)),
                }
            }
            Some(Some(_)) => {
                problems.add(
                    "expires_in_seconds",
                    format!("must be from 1 to {MAX_EXPIRES_IN_SECONDS}, or null"),
                );
                None
            }
        };
        problems.finish(|| TokenRequest {
            name: name.expect("checked"),
            abilities: abilities.expect("checked"),
            expires_at: expires_at.expect("checked"),
        })
    }
}

#[cfg(test)]
mod tests {
    use time::{Duration, macros::datetime};

    use super::*;

    const NOW: Timestamp = datetime!(2026-01-01 00:00 UTC);
    const TTL: Duration = Duration::days(30);

    fn set(abilities: &[&str]) -> AbilitySet {
        let list: Vec<String> = abilities.iter().map(|a| (*a).to_owned()).collect();
        abilities::parse_for_kind(&list, TokenKind::User).expect("valid abilities")
    }

    fn input(json: serde_json::Value) -> NewTokenInput {
        serde_json::from_value(json).expect("a well-formed request")
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn left_out_fields_take_the_parents_abilities_and_the_default_lifetime() {
        let held = set(&["orders:read", "tokens:manage"]);
        let parent = Parent {
            abilities: &held,
            expires_at: None,
        };
        let request =
            TokenRequest::parse(&input(serde_json::json!({"name": "ci"})), parent, NOW, TTL)
                .expect("valid");
        assert_eq!(request.name, "ci");
        assert_eq!(request.abilities, held);
        assert_eq!(request.expires_at, Some(NOW + TTL));
    }

    #[test]
    fn the_default_lifetime_is_cut_to_the_parents_expiry() {
        let held = set(&["orders:read"]);
        let parent = Parent {
            abilities: &held,
            expires_at: Some(NOW + Duration::hours(1)),
        };
        let request =
            TokenRequest::parse(&input(serde_json::json!({"name": "ci"})), parent, NOW, TTL)
                .expect("valid");
        assert_eq!(request.expires_at, Some(NOW + Duration::hours(1)));
    }

    #[test]
    fn a_token_never_makes_one_with_more_abilities_or_a_longer_life() {
        let held = set(&["orders:read"]);
        let parent = Parent {
            abilities: &held,
            expires_at: Some(NOW + Duration::hours(1)),
        };
        let wider = input(serde_json::json!({
            "name": "ci", "abilities": ["orders:read", "tokens:manage"], "expires_in_seconds": 7200
        }));
        let errors = TokenRequest::parse(&wider, parent, NOW, TTL).expect_err("refused");
        assert_eq!(fields(errors), ["abilities", "expires_in_seconds"]);
        let forever = input(serde_json::json!({"name": "ci", "expires_in_seconds": null}));
        let errors = TokenRequest::parse(&forever, parent, NOW, TTL).expect_err("refused");
        assert_eq!(fields(errors), ["expires_in_seconds"]);
    }

    #[test]
    fn a_parent_that_does_not_expire_may_make_a_token_that_does_not() {
        let held = set(&["orders:read"]);
        let parent = Parent {
            abilities: &held,
            expires_at: None,
        };
        let forever = input(serde_json::json!({"name": "ci", "expires_in_seconds": null}));
        let request = TokenRequest::parse(&forever, parent, NOW, TTL).expect("valid");
        assert_eq!(request.expires_at, None);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let held = set(&["orders:read"]);
        let parent = Parent {
            abilities: &held,
            expires_at: None,
        };
        let bad = input(serde_json::json!({
            "name": "", "abilities": ["no:such"], "expires_in_seconds": 0
        }));
        let errors = TokenRequest::parse(&bad, parent, NOW, TTL).expect_err("refused");
        assert_eq!(fields(errors), ["name", "abilities", "expires_in_seconds"]);
        let too_long = input(serde_json::json!({
            "name": "ci", "expires_in_seconds": MAX_EXPIRES_IN_SECONDS + 1
        }));
        let errors = TokenRequest::parse(&too_long, parent, NOW, TTL).expect_err("refused");
        assert_eq!(fields(errors), ["expires_in_seconds"]);
    }
}
