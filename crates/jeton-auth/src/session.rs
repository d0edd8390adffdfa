//! Cookie sessions: a user token (or a staff session,
//! [`CookieSessions::staff`]) carried in an `HttpOnly` cookie instead of
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
//!
//! An app may have both: its customers' sessions and its staff's
//! ([`GateBuilder::cookie_sessions`](crate::GateBuilder::cookie_sessions)
//! once for each). A cookie counts only on the routes that take its kind;
//! elsewhere it is ignored. A staff session is accepted from its cookie
//! only, never from an `Authorization` header; see [`CookieSessions::staff`]
//! for its own checks.

use std::{fmt, sync::Arc};

use axum::http::{
    HeaderMap, HeaderName, HeaderValue, Method,
    header::{AUTHORIZATION, COOKIE, ORIGIN, SET_COOKIE},
};
use cookie::{Cookie, SameSite};
use hmac::{Hmac, KeyInit, Mac};
use rand::TryRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::{AuthError, PlainToken, Principal, TokenFormat, TokenKind};

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
    kind: TokenKind,
    session_cookie: String,
    csrf_cookie: String,
    session_path: String,
    csrf_path: String,
    strict: bool,
    secure: bool,
    /// `None`: the token's client's origins; `Some`: the app's own.
    own_origins: Option<Vec<String>>,
    /// `None`: the CSRF token is a hash of the session's token, checked
    /// against the CSRF cookie too; `Some`: an HMAC of the session's id
    /// under this key.
    csrf_key: Option<Arc<Zeroizing<Vec<u8>>>>,
}

impl fmt::Debug for CookieSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieSessions")
            .field("kind", &self.kind)
            .field("session_cookie", &self.session_cookie)
            .field("csrf_cookie", &self.csrf_cookie)
            .field("session_path", &self.session_path)
            .field("csrf_path", &self.csrf_path)
            .field("strict", &self.strict)
            .field("secure", &self.secure)
            .field("own_origins", &self.own_origins)
            .field("csrf_key", &self.csrf_key.as_ref().map(|_| "…"))
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
            kind: TokenKind::User,
            session_cookie,
            csrf_cookie,
            session_path: "/".to_owned(),
            csrf_path: "/".to_owned(),
            strict: false,
            secure: true,
            own_origins: None,
            csrf_key: None,
        })
    }

    /// Staff sessions ([`TokenKind::Staff`]) in these cookies, for the
    /// app's own console, rather than user tokens: `SameSite=Strict`, the
    /// CSRF cookie on `csrf_path` (the console's pages), accepted only from
    /// `own_origins` (or with no `Origin`) and never with a
    /// `Sec-Fetch-Site` other than `same-origin`, and a CSRF token that is
    /// an HMAC-SHA256 of the session's id under `csrf_key`: every process
    /// given the same key agrees on it, and without the key no one can
    /// make one. The CSRF cookie is not sent to the API's path, so the
    /// header is checked against the session alone.
    pub fn staff(
        session: &str,
        csrf: &str,
        csrf_path: &str,
        own_origins: impl IntoIterator<Item = String>,
        csrf_key: &[u8],
    ) -> Result<CookieSessions, InvalidCookieName> {
        let mut sessions = CookieSessions::with_names(session, csrf)?;
        sessions.kind = TokenKind::Staff;
        csrf_path.clone_into(&mut sessions.csrf_path);
        sessions.strict = true;
        sessions.own_origins = Some(own_origins.into_iter().collect());
        sessions.csrf_key = Some(Arc::new(Zeroizing::new(csrf_key.to_vec())));
        Ok(sessions)
    }

    /// The kind of token the session cookie carries.
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The path the browser sends the session cookie to: the API's prefix,
    /// so that the app's other pages never receive it. The CSRF cookie is
    /// on `/` (a staff session's, on its `csrf_path`), for the page to
    /// read.
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
    ///
    /// Staff sessions ([`CookieSessions::staff`]) are issued with
    /// [`CookieSessions::issue_session`], which knows the session's id.
    pub fn issue(
        &self,
        headers: &mut HeaderMap,
        token: &PlainToken,
        max_age: Option<time::Duration>,
    ) -> String {
        self.issue_session(headers, token, "", max_age)
    }

    /// [`CookieSessions::issue`] for the session `session_id` (the
    /// credential's id, which a staff session's CSRF token is bound to).
    pub fn issue_session(
        &self,
        headers: &mut HeaderMap,
        token: &PlainToken,
        session_id: &str,
        max_age: Option<time::Duration>,
    ) -> String {
        let csrf = self.csrf_token(token.expose_secret(), session_id);
        let session = self.cookie(
            &self.session_cookie,
            token.expose_secret(),
            &self.session_path,
        );
        let readable = self.cookie(&self.csrf_cookie, &csrf, &self.csrf_path);
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
        let readable = self.cookie(&self.csrf_cookie, "", &self.csrf_path);
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
            .same_site(if self.strict {
                SameSite::Strict
            } else {
                SameSite::Lax
            })
            .secure(self.secure)
    }

    /// The CSRF token of a session: an HMAC of its id under the key, or
    /// (without a key) a hash of its token.
    pub fn csrf_token(&self, session_token: &str, session_id: &str) -> String {
        match &self.csrf_key {
            Some(key) => hex(&hmac_sha256(key, session_id.as_bytes())),
            None => csrf_token_for(session_token),
        }
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
    ///
    /// A staff session's: from the app's own origins or none, never with a
    /// `Sec-Fetch-Site` other than `same-origin`, and with the CSRF header
    /// equal to the HMAC of the session's id on unsafe methods.
    pub(crate) fn admit(
        &self,
        principal: &Principal,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<(), AuthError> {
        let person = match principal {
            Principal::User(user) | Principal::Staff(user) if principal.kind() == self.kind => user,
            // Only the app's sign-in puts a token in the cookie, of its kind.
            _ => return Err(AuthError::InvalidToken),
        };
        let origin = headers.get(ORIGIN).map(HeaderValue::as_bytes);
        match &self.own_origins {
            None => {
                let allowed = origin.is_some_and(|origin| {
                    person
                        .client_origins
                        .iter()
                        .any(|allowed| allowed != "*" && allowed.as_bytes() == origin)
                });
                if !allowed {
                    return Err(AuthError::SessionOriginNotAllowed);
                }
            }
            Some(own) => {
                let foreign =
                    origin.is_some_and(|origin| !own.iter().any(|own| own.as_bytes() == origin));
                let cross_site = headers
                    .get(SEC_FETCH_SITE)
                    .is_some_and(|site| site.as_bytes() != b"same-origin");
                if foreign || cross_site {
                    return Err(AuthError::SessionOriginNotAllowed);
                }
            }
        }
        if is_unsafe(method) {
            let sent = headers.get(&CSRF_HEADER).map(HeaderValue::as_bytes);
            let token = self.read(headers, &self.session_cookie).unwrap_or_default();
            let session = self.csrf_token(token, &person.token_id);
            let matches = match (sent, &self.csrf_key) {
                (None, _) => false,
                (Some(sent), Some(_)) => bool::from(sent.ct_eq(session.as_bytes())),
                (Some(sent), None) => {
                    let cookie = self.read(headers, &self.csrf_cookie).map(str::as_bytes);
                    cookie.is_some_and(|cookie| {
                        bool::from(sent.ct_eq(cookie) & sent.ct_eq(session.as_bytes()))
                    })
                }
            };
            if !matches {
                return Err(AuthError::CsrfFailed);
            }
        }
        Ok(())
    }
}

/// What a browser says of where a request comes from, relative to the
/// page's own origin (Fetch Metadata).
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
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
    fn hmac_matches_rfc_4231() {
        let mac = hmac_sha256(&[0x0b; 20], b"Hi There");
        assert_eq!(
            hex(&mac),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        let long = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex(&long),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    fn staff_sessions() -> CookieSessions {
        CookieSessions::staff(
            "acme_staff",
            "acme_staff_csrf",
            "/console",
            ["https://api.example".to_owned()],
            b"a key of the deployment",
        )
        .unwrap()
        .session_path("/api/v1")
    }

    fn member() -> Principal {
        Principal::Staff(Arc::new(UserPrincipal::new(
            "m",
            "session-1",
            AbilitySet::default(),
        )))
    }

    #[test]
    fn staff_cookies_are_strict_and_their_csrf_token_is_bound_to_the_session() {
        let sessions = staff_sessions();
        assert_eq!(sessions.kind(), TokenKind::Staff);
        let token = PlainToken::generate(TokenKind::Staff);
        let mut out = HeaderMap::new();
        let csrf = sessions.issue_session(&mut out, &token, "session-1", None);
        assert_eq!(csrf, sessions.csrf_token("anything", "session-1"));
        assert_ne!(csrf, sessions.csrf_token("anything", "session-2"));
        let set: Vec<&str> = out
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            set[0],
            format!(
                "acme_staff={}; HttpOnly; SameSite=Strict; Secure; Path=/api/v1",
                token.expose_secret()
            )
        );
        assert_eq!(
            set[1],
            format!("acme_staff_csrf={csrf}; SameSite=Strict; Secure; Path=/console")
        );
        // Another key, another token: processes must share theirs.
        let other = CookieSessions::staff("a", "b", "/", Vec::new(), b"another key").unwrap();
        assert_ne!(other.csrf_token("", "session-1"), csrf);
    }

    #[test]
    fn staff_sessions_only_from_the_own_origin() {
        let sessions = staff_sessions();
        let csrf = sessions.csrf_token("", "session-1");
        let cookie = ("cookie", "acme_staff=x");
        let get = Method::GET;
        assert_eq!(sessions.admit(&member(), &get, &headers(&[cookie])), Ok(()));
        assert_eq!(
            sessions.admit(
                &member(),
                &get,
                &headers(&[
                    cookie,
                    ("origin", "https://api.example"),
                    ("sec-fetch-site", "same-origin")
                ])
            ),
            Ok(())
        );
        for refused in [
            vec![("origin", "https://shop.example")],
            vec![("origin", "null")],
            vec![("sec-fetch-site", "cross-site")],
            vec![("sec-fetch-site", "same-site")],
            vec![
                ("origin", "https://api.example"),
                ("sec-fetch-site", "none"),
            ],
        ] {
            let mut list = vec![cookie];
            list.extend(refused.iter().copied());
            assert_eq!(
                sessions.admit(&member(), &get, &headers(&list)),
                Err(AuthError::SessionOriginNotAllowed),
                "{refused:?}"
            );
        }
        let post = Method::POST;
        assert_eq!(
            sessions.admit(
                &member(),
                &post,
                &headers(&[cookie, ("x-csrf-token", &csrf)])
            ),
            Ok(())
        );
        let other = sessions.csrf_token("", "session-2");
        for sent in [None, Some("abc"), Some(other.as_str()), Some(&csrf[..63])] {
            let mut list = vec![cookie];
            list.extend(sent.map(|c| ("x-csrf-token", c)));
            assert_eq!(
                sessions.admit(&member(), &post, &headers(&list)),
                Err(AuthError::CsrfFailed),
                "{sent:?}"
            );
        }
        // A user token in the staff cookie is not a staff session.
        assert_eq!(
            sessions.admit(&user(&[]), &get, &headers(&[cookie])),
            Err(AuthError::InvalidToken)
        );
        assert_eq!(
            CookieSessions::default().admit(&member(), &get, &headers(&[cookie])),
            Err(AuthError::InvalidToken)
        );
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
