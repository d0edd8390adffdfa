//! Origin binding. Browsers send `Origin` on cross-site requests and scripts
//! cannot forge it, so it tells *which website's page* is using a key:
//! - a publishable key works only from its client's allowed origins, which
//!   stops other websites from using it in their visitors' browsers;
//! - a secret key must never be in a page at all: with an `Origin` it is
//!   refused, because it has leaked.
//!
//! - a guest token works only from the origin it was obtained from (one
//!   obtained with no `Origin` from no page at all).
//!
//! A request without `Origin` (a server, curl, a mobile app) is allowed: the
//! binding controls abuse by other websites, it is not secrecy.

use axum::http::HeaderValue;

use crate::{AuthError, Principal};

/// Longest origin accepted: `https://` and a 253-character host with a
/// port fit well within it.
pub const MAX_ORIGIN_LEN: usize = 300;

/// Why a string is not an allowed origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{origin}` is not an origin: {why}")]
pub struct InvalidOrigin {
    /// The string given, clipped to 100 characters.
    pub origin: String,
    pub why: String,
}

/// An allowed origin as browsers send it: `scheme://host[:port]` with an
/// `http` or `https` scheme, nothing else (no path, no whitespace: a list
/// of two is two origins). Returns the canonical form (lower-case host,
/// default port dropped), which is what a browser's `Origin` matches. `*`
/// (any origin) is accepted only spelled out on its own.
pub fn parse_origin(raw: &str) -> Result<String, InvalidOrigin> {
    if raw == "*" {
        return Ok("*".to_owned());
    }
    let invalid = |why: &str| {
        Err(InvalidOrigin {
            origin: raw.chars().take(100).collect(),
            why: why.to_owned(),
        })
    };
    if raw.len() > MAX_ORIGIN_LEN {
        return invalid(&format!("at most {MAX_ORIGIN_LEN} characters"));
    }
    if raw.contains('*') {
        return invalid("wildcards are allowed only as a lone `*`");
    }
    // The URL parser trims and drops some whitespace: an origin has none.
    if raw.chars().any(char::is_whitespace) {
        return invalid("expected scheme://host[:port]");
    }
    let Ok(url) = url::Url::parse(raw) else {
        return invalid("expected scheme://host[:port]");
    };
    if !matches!(url.scheme(), "http" | "https") {
        return invalid("the scheme must be http or https");
    }
    let bare = url.path() == "/" && !raw.ends_with('/');
    if !bare
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return invalid("an origin has no path, query, fragment or credentials");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return invalid("an origin needs a host");
    }
    Ok(url.origin().ascii_serialization())
}

/// Each of `origins` in its canonical form, or the first that is not one.
pub(crate) fn parse_origins(origins: &[String]) -> Result<Vec<String>, InvalidOrigin> {
    origins.iter().map(|origin| parse_origin(origin)).collect()
}

pub fn check(principal: &Principal, origin: Option<&HeaderValue>) -> Result<(), AuthError> {
    let Some(origin) = origin else { return Ok(()) };
    match principal {
        // An access token is a secret key's stand-in: as secret.
        Principal::SecretClient(_) | Principal::AccessToken(_) => {
            Err(AuthError::SecretKeyInBrowser)
        }
        Principal::PublishableClient(client) => {
            // As bytes: origins are ASCII (browsers send names in punycode),
            // and this skips checking the header's characters first.
            let origin = origin.as_bytes();
            if client
                .allowed_origins
                .iter()
                .any(|allowed| allowed == "*" || allowed.as_bytes() == origin)
            {
                Ok(())
            } else {
                Err(AuthError::OriginNotAllowed)
            }
        }
        // User tokens are meant for the customer's device, browsers included.
        Principal::User(_) => Ok(()),
        // A guest token works from the one origin it was obtained from; one
        // obtained with no `Origin` (an app) from no page at all.
        Principal::Guest(guest) => {
            if guest
                .origin
                .as_ref()
                .is_some_and(|bound| bound.as_bytes() == origin.as_bytes())
            {
                Ok(())
            } else {
                Err(AuthError::OriginNotAllowed)
            }
        }
        // A staff session comes only from its cookie, whose own check
        // ([`crate::session::CookieSessions::own_origins`]) allows only the
        // app's own origin.
        Principal::Staff(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AbilitySet, ClientPrincipal, limits::Limits};

    fn client(origins: &[&str]) -> ClientPrincipal {
        ClientPrincipal {
            client_id: "c".into(),
            key_id: "k".into(),
            abilities: AbilitySet::default(),
            allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
            limits: Limits::default(),
        }
    }

    fn origin(text: &str) -> HeaderValue {
        HeaderValue::from_str(text).unwrap()
    }

    #[test]
    fn allowed_origins_are_parsed() {
        assert_eq!(
            parse_origin("HTTPS://Shop.Example:443").unwrap(),
            "https://shop.example"
        );
        assert_eq!(
            parse_origin("http://localhost:8080").unwrap(),
            "http://localhost:8080"
        );
        assert_eq!(parse_origin("*").unwrap(), "*");
        for bad in [
            "https://a.example https://evil.example",
            " https://a.example",
            "https://a.example/",
            "https://a.example/path",
            "https://a.example?q",
            "https://user@a.example",
            "ftp://a.example",
            "https://*.example",
            "a.example",
            "",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn publishable_keys_are_bound_to_their_origins() {
        let shop = Principal::PublishableClient(client(&["https://shop.example"]).into());
        assert_eq!(check(&shop, None), Ok(()));
        assert_eq!(check(&shop, Some(&origin("https://shop.example"))), Ok(()));
        for evil in [
            "https://evil.example",
            "http://shop.example",
            "https://shop.example:8443",
            "null",
            "https://shop.example.evil.example",
        ] {
            assert_eq!(
                check(&shop, Some(&origin(evil))),
                Err(AuthError::OriginNotAllowed),
                "{evil}"
            );
        }
        let anywhere = Principal::PublishableClient(client(&["*"]).into());
        assert_eq!(
            check(&anywhere, Some(&origin("https://evil.example"))),
            Ok(())
        );
    }

    #[test]
    fn guest_tokens_are_bound_to_the_origin_they_came_from() {
        let guest = |bound: Option<&str>| {
            Principal::Guest(
                crate::GuestPrincipal::new("g", "c", AbilitySet::default())
                    .with_origin(bound.map(str::to_owned))
                    .into(),
            )
        };
        let shop = guest(Some("https://shop.example"));
        assert_eq!(check(&shop, None), Ok(()));
        assert_eq!(check(&shop, Some(&origin("https://shop.example"))), Ok(()));
        for other in ["https://evil.example", "http://shop.example", "null"] {
            assert_eq!(
                check(&shop, Some(&origin(other))),
                Err(AuthError::OriginNotAllowed),
                "{other}"
            );
        }
        let app = guest(None);
        assert_eq!(check(&app, None), Ok(()));
        assert_eq!(
            check(&app, Some(&origin("https://shop.example"))),
            Err(AuthError::OriginNotAllowed)
        );
    }

    #[test]
    fn secret_keys_are_refused_from_any_browser() {
        let secret = Principal::SecretClient(client(&[]).into());
        assert_eq!(check(&secret, None), Ok(()));
        assert_eq!(
            check(&secret, Some(&origin("https://admin.example"))),
            Err(AuthError::SecretKeyInBrowser)
        );
    }
}
