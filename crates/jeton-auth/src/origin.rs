//! Origin binding. Browsers send `Origin` on cross-site requests and scripts
//! cannot forge it, so it tells *which website's page* is using a key:
//! - a publishable key works only from its client's allowed origins, which
//!   stops other websites from using it in their visitors' browsers;
//! - a secret key must never be in a page at all: with an `Origin` it is
//!   refused, because it has leaked.
//!
//! A request without `Origin` (a server, curl, a mobile app) is allowed: the
//! binding controls abuse by other websites, it is not secrecy.

use axum::http::HeaderValue;

use crate::{AuthError, Principal};

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
    fn secret_keys_are_refused_from_any_browser() {
        let secret = Principal::SecretClient(client(&[]).into());
        assert_eq!(check(&secret, None), Ok(()));
        assert_eq!(
            check(&secret, Some(&origin("https://admin.example"))),
            Err(AuthError::SecretKeyInBrowser)
        );
    }
}
