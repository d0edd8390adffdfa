//! Cookie sessions: a user token carried in an `HttpOnly` cookie instead of
//! the `Authorization` header, for the app's own web pages (Laravel
//! Sanctum's "SPA authentication"). A script injected into such a page can
//! still send requests, but it can never read the token and send it
//! elsewhere.
//!
//! An app turns it on with [`GateBuilder::cookie_sessions`](crate::GateBuilder::cookie_sessions),
//! and its login route sets the cookies with [`CookieSessions::issue`].
//! Then the guard:
//!
//! - reads the session cookie only when the request has no
//!   `Authorization` header (the header alone decides when present);
//! - verifies it like a bearer user token, through the same cache (no
//!   storage work per request);
//! - needs an `Origin` that the token's client lists exactly
//!   ([`UserPrincipal::client_origins`](crate::UserPrincipal::client_origins); a `*` does not count), else 403
//!   `origin_not_allowed`;
//! - for `POST`, `PUT`, `PATCH` and `DELETE`, needs the `X-CSRF-Token`
//!   header to equal the CSRF cookie and the session's own CSRF token
//!   ([`csrf_token_for`]; compared in constant time), else 403
//!   `csrf_failed`;
//! - answers a dead cookie (unknown, revoked, expired) with 401
//!   `invalid_token` and clears both cookies;
//! - marks the request with [`SessionCookie`], so that a logout route
//!   knows to clear the cookies ([`CookieSessions::clear`]).
//!
//! The CSRF cookie is readable by the page's scripts: they copy it into
//! the header, which a page of another site cannot do (it cannot read this
//! site's cookies). The CSRF token is bound to the session: it is a hash of
//! the session's token, which only the server and the `HttpOnly` cookie
//! know, so a value an attacker chose (planted as both cookie and header,
//! say from a sibling subdomain) never matches. Every process sharing the
//! credentials verifies every other's CSRF tokens with no key to share. `SameSite=Lax` keeps other sites' pages from sending the
//! session cookie at all; the origin check covers the same site's other
//! origins (another port of the same host), to which browsers do send it.

use std::fmt;

use axum::http::{
    HeaderMap, HeaderName, HeaderValue, Method,
    header::{AUTHORIZATION, COOKIE, ORIGIN, SET_COOKIE},
};
use cookie::{Cookie, SameSite};
use rand::TryRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{AuthError, PlainToken, Principal, TokenFormat};

/// The header a page sends the CSRF cookie's value back in.
pub const CSRF_HEADER: HeaderName = HeaderName::from_static("x-csrf-token");

/// Random bytes in a CSRF token (hex-encoded in the cookie).
const CSRF_BYTES: usize = 32;

/// Prefixed to the session token before hashing it into its CSRF token,
/// so that the CSRF token is never the token's stored hash (a plain
/// SHA-256 of the token).
const CSRF_DOMAIN: &[u8] = b"jeton-auth session csrf\0";

/// A request authenticated by the session cookie (a request extension set
/// by the guard), rather than by an `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCookie;

/// A cookie name that is not an RFC 6265 token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cookie names are 1 to 64 letters, digits, `_` or `-`: {0:?}")]
pub struct InvalidCookieName(pub String);

/// How an app's cookie sessions are named and scoped.
#[derive(Clone)]
pub struct CookieSessions {
    session_cookie: String,
    csrf_cookie: String,
    session_path: String,
    secure: bool,
}

impl fmt::Debug for CookieSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieSessions")
            .field("session_cookie", &self.session_cookie)
            .field("csrf_cookie", &self.csrf_cookie)
            .field("session_path", &self.session_path)
            .field("secure", &self.secure)
            .finish()
    }
}

/// The cookies the crate's own unit tests use.
#[cfg(test)]
impl Default for CookieSessions {
    fn default() -> Self {
        CookieSessions::with_names("jeton_session", "jeton_csrf").expect("valid names")
    }
}

fn cookie_name(name: &str) -> Result<String, InvalidCookieName> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(name.to_owned())
    } else {
        Err(InvalidCookieName(name.to_owned()))
    }
}

impl CookieSessions {
    /// The names of the session cookie and of the CSRF cookie (the app's
    /// own: there is no default), the session cookie on every path until
    /// [`CookieSessions::session_path`], `Secure` until
    /// [`CookieSessions::secure`].
    pub fn with_names(session: &str, csrf: &str) -> Result<CookieSessions, InvalidCookieName> {
        let (session_cookie, csrf_cookie) = (cookie_name(session)?, cookie_name(csrf)?);
        if session_cookie == csrf_cookie {
            return Err(InvalidCookieName(csrf.to_owned()));
        }
        Ok(CookieSessions {
            session_cookie,
            csrf_cookie,
            session_path: "/".to_owned(),
            secure: true,
        })
    }

    /// The path the browser sends the session cookie to: the API's prefix,
    /// so that the app's other pages never receive it. The CSRF cookie is
    /// on `/`, for the page to read.
    pub fn session_path(mut self, path: &str) -> CookieSessions {
        path.clone_into(&mut self.session_path);
        self
    }

    /// Whether the cookies are `Secure` (sent over HTTPS only). Turn it off
    /// only for plain `http` on a loopback address, in development.
    pub fn secure(mut self, secure: bool) -> CookieSessions {
        self.secure = secure;
        self
    }

    pub fn session_cookie_name(&self) -> &str {
        &self.session_cookie
    }

    pub fn csrf_cookie_name(&self) -> &str {
        &self.csrf_cookie
    }

    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Sets the session cookie to `token` and a fresh CSRF cookie on a
    /// response, both for `max_age` (`None`: until the browser closes);
    /// returns the CSRF token, which the page must send back in
    /// `X-CSRF-Token` on unsafe requests.
    pub fn issue(
        &self,
        headers: &mut HeaderMap,
        token: &PlainToken,
        max_age: Option<time::Duration>,
    ) -> String {
        let csrf = csrf_token_for(token.expose_secret());
        let session = self.cookie(
            &self.session_cookie,
            token.expose_secret(),
            &self.session_path,
        );
        let readable = self.cookie(&self.csrf_cookie, &csrf, "/");
        for mut cookie in [session.http_only(true), readable.http_only(false)] {
            if let Some(max_age) = max_age {
                cookie = cookie.max_age(max_age.max(time::Duration::ZERO));
            }
            append(headers, &cookie.build());
        }
        csrf
    }

    /// Clears both cookies on a response (`Max-Age=0`).
    pub fn clear(&self, headers: &mut HeaderMap) {
        let session = self.cookie(&self.session_cookie, "", &self.session_path);
        let readable = self.cookie(&self.csrf_cookie, "", "/");
        for cookie in [session.http_only(true), readable] {
            append(headers, &cookie.max_age(time::Duration::ZERO).build());
        }
    }

    fn cookie<'c>(
        &self,
        name: &'c str,
        value: &'c str,
        path: &'c str,
    ) -> cookie::CookieBuilder<'c> {
        Cookie::build((name, value))
            .path(path)
            .same_site(SameSite::Lax)
            .secure(self.secure)
    }

    /// The session cookie's token, if the request is to be authenticated by
    /// it: it has the cookie and no `Authorization` header. A value that is
    /// not a well-formed token is `Err(InvalidToken)`.
    pub(crate) fn credential(
        &self,
        tokens: TokenFormat,
        headers: &HeaderMap,
    ) -> Option<Result<PlainToken, AuthError>> {
        if headers.contains_key(AUTHORIZATION) {
            return None;
        }
        let value = self.read(headers, &self.session_cookie)?;
        Some(tokens.parse(value).map_err(|_| AuthError::InvalidToken))
    }

    /// The token in the request's session cookie, whatever `Authorization`
    /// header comes with it: a login that issues a new session finds the
    /// one it replaces, to revoke it. `None` without a cookie, or if its
    /// value is not a well-formed token.
    pub fn session_token(&self, tokens: TokenFormat, headers: &HeaderMap) -> Option<PlainToken> {
        tokens.parse(self.read(headers, &self.session_cookie)?).ok()
    }

    /// Whether the request carries the session cookie (and no
    /// `Authorization` header, which would take precedence).
    pub fn has_session_cookie(&self, headers: &HeaderMap) -> bool {
        !headers.contains_key(AUTHORIZATION) && self.read(headers, &self.session_cookie).is_some()
    }

    /// The first value of cookie `name` in the request's `Cookie` headers:
    /// browsers list the cookie with the longest path first, which for the
    /// session cookie is the API's own rather than one set for `/` by a
    /// sibling site.
    fn read<'h>(&self, headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(key, _)| *key == name)
            .map(|(_, value)| value.trim_matches('"'))
            .next()
    }

    /// The checks a request authenticated by the cookie must pass besides
    /// the token's own: a user token, from one of its client's origins,
    /// with the CSRF header on unsafe methods, equal to the CSRF cookie and
    /// to the session's own CSRF token.
    pub(crate) fn admit(
        &self,
        principal: &Principal,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<(), AuthError> {
        let Principal::User(user) = principal else {
            // Only login puts a token in the cookie, and it is a user token.
            return Err(AuthError::InvalidToken);
        };
        let origin = headers.get(ORIGIN).map(HeaderValue::as_bytes);
        let allowed = origin.is_some_and(|origin| {
            user.client_origins
                .iter()
                .any(|allowed| allowed != "*" && allowed.as_bytes() == origin)
        });
        if !allowed {
            return Err(AuthError::SessionOriginNotAllowed);
        }
        if is_unsafe(method) {
            let sent = headers.get(&CSRF_HEADER).map(HeaderValue::as_bytes);
            let cookie = self.read(headers, &self.csrf_cookie).map(str::as_bytes);
            let session = self.read(headers, &self.session_cookie).map(csrf_token_for);
            match (sent, cookie, session) {
                (Some(sent), Some(cookie), Some(session))
                    if bool::from(sent.ct_eq(cookie) & sent.ct_eq(session.as_bytes())) => {}
                _ => return Err(AuthError::CsrfFailed),
            }
        }
        Ok(())
    }
}

/// The methods that change something, which other sites' forms can send.
fn is_unsafe(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

fn append(headers: &mut HeaderMap, cookie: &Cookie<'_>) {
    let value = HeaderValue::from_str(&cookie.to_string()).expect("cookies are visible ASCII");
    headers.append(SET_COOKIE, value);
}

/// The CSRF token of the session whose token is `session_token`: the
/// SHA-256 of the token (after a fixed prefix), hex-encoded. The token has
/// 256 random bits, so its hash can be neither guessed nor turned back into
/// the token.
pub fn csrf_token_for(session_token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(CSRF_DOMAIN)
        .chain_update(session_token.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random CSRF token (32 bytes, hex-encoded), for a CSRF cookie not
/// tied to a session token.
pub fn new_csrf_token() -> String {
    let mut bytes = [0u8; CSRF_BYTES];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random number generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{AbilitySet, TokenKind, UserPrincipal};

    fn user(origins: &[&str]) -> Principal {
        Principal::User(Arc::new(UserPrincipal {
            user_id: "u".into(),
            token_id: "t".into(),
            client_id: Some("c".into()),
            client_origins: origins.iter().map(|o| o.to_string()).collect(),
            abilities: AbilitySet::default(),
            expires_at: None,
        }))
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::try_from(*name).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn names_are_checked() {
        assert!(CookieSessions::with_names("acme_session", "acme_csrf").is_ok());
        for (session, csrf) in [("", "c"), ("a b", "c"), ("s", "c;"), ("same", "same")] {
            assert!(
                CookieSessions::with_names(session, csrf).is_err(),
                "{session} {csrf}"
            );
        }
    }

    #[test]
    fn issued_cookies_have_their_attributes_and_clearing_expires_them() {
        let sessions = CookieSessions::default().session_path("/api/v1");
        let token = PlainToken::generate(TokenKind::User);
        let mut out = HeaderMap::new();
        let csrf = sessions.issue(&mut out, &token, Some(time::Duration::days(30)));
        let set: Vec<&str> = out
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(set.len(), 2);
        assert!(set[0].starts_with(&format!("jeton_session={}", token.expose_secret())));
        for part in [
            "HttpOnly",
            "SameSite=Lax",
            "Path=/api/v1",
            "Secure",
            "Max-Age=2592000",
        ] {
            assert!(set[0].contains(part), "{part} in {}", set[0]);
        }
        assert_eq!(csrf.len(), 64);
        assert!(set[1].starts_with(&format!("jeton_csrf={csrf}")));
        assert!(!set[1].contains("HttpOnly"));
        assert!(set[1].contains("Path=/;") || set[1].ends_with("Path=/"));

        let mut out = HeaderMap::new();
        sessions.secure(false).clear(&mut out);
        for value in out.get_all(SET_COOKIE) {
            let value = value.to_str().unwrap();
            assert!(
                value.contains("Max-Age=0") && !value.contains("Secure"),
                "{value}"
            );
        }
    }

    #[test]
    fn the_cookie_counts_only_without_an_authorization_header() {
        let sessions = CookieSessions::default();
        let token = PlainToken::generate(TokenKind::User);
        let cookie = format!("other=1; jeton_session={}", token.expose_secret());
        let found = sessions.credential(TokenFormat::default(), &headers(&[("cookie", &cookie)]));
        assert_eq!(found.unwrap().unwrap().hash(), token.hash());
        assert!(
            sessions
                .credential(
                    TokenFormat::default(),
                    &headers(&[("cookie", &cookie), ("authorization", "Bearer x")])
                )
                .is_none()
        );
        assert!(
            sessions
                .credential(TokenFormat::default(), &headers(&[("cookie", "a=b")]))
                .is_none()
        );
        assert_eq!(
            sessions
                .credential(
                    TokenFormat::default(),
                    &headers(&[("cookie", "jeton_session=garbage")])
                )
                .unwrap()
                .map(|_| ()),
            Err(AuthError::InvalidToken)
        );
    }

    #[test]
    fn origin_and_csrf() {
        let sessions = CookieSessions::default();
        let shop = user(&["https://shop.example", "*"]);
        let csrf = csrf_token_for("x");
        let both = format!("jeton_csrf={csrf}; jeton_session=x");
        let cookie = ("cookie", both.as_str());
        let from_shop = ("origin", "https://shop.example");
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(
            sessions.admit(&shop, &get, &headers(&[cookie, from_shop])),
            Ok(())
        );
        for origin in [None, Some("https://evil.example"), Some("null")] {
            let mut list = vec![cookie];
            list.extend(origin.map(|o| ("origin", o)));
            assert_eq!(
                sessions.admit(&shop, &get, &headers(&list)),
                Err(AuthError::SessionOriginNotAllowed),
                "{origin:?}"
            );
        }
        assert_eq!(
            sessions.admit(
                &shop,
                &post,
                &headers(&[cookie, from_shop, ("x-csrf-token", &csrf)])
            ),
            Ok(())
        );
        let near = format!("{}0", &csrf[..63]);
        for csrf in [None, Some(near.as_str()), Some(&csrf[..63]), Some("")] {
            let mut list = vec![cookie, from_shop];
            list.extend(csrf.map(|c| ("x-csrf-token", c)));
            assert_eq!(
                sessions.admit(&shop, &post, &headers(&list)),
                Err(AuthError::CsrfFailed),
                "{csrf:?}"
            );
        }
        // A value the attacker chose, as both cookie and header, is not the
        // session's.
        assert_eq!(
            sessions.admit(
                &shop,
                &post,
                &headers(&[
                    ("cookie", "jeton_csrf=abc; jeton_session=x"),
                    from_shop,
                    ("x-csrf-token", "abc")
                ])
            ),
            Err(AuthError::CsrfFailed)
        );
        // Nor is another session's.
        let other = csrf_token_for("y");
        let planted = format!("jeton_csrf={other}; jeton_session=x");
        assert_eq!(
            sessions.admit(
                &shop,
                &post,
                &headers(&[("cookie", &planted), from_shop, ("x-csrf-token", &other)])
            ),
            Err(AuthError::CsrfFailed)
        );
        // No CSRF cookie: nothing to compare an empty header with.
        assert_eq!(
            sessions.admit(
                &shop,
                &Method::DELETE,
                &headers(&[
                    ("cookie", "jeton_session=x"),
                    from_shop,
                    ("x-csrf-token", "")
                ])
            ),
            Err(AuthError::CsrfFailed)
        );
    }
}
