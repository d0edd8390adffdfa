//! Whose tokens these are: an app's name in its tokens, its challenges, its
//! problem types and its metrics, chosen once when the app is built.
//!
//! ```
//! use jeton_auth::{Identity, TokenKind};
//!
//! let acme = Identity::new("acme")?;
//! let key = acme.tokens().generate(TokenKind::Publishable);
//! assert!(key.expose_secret().starts_with("acme_pk_"));
//! assert_eq!(key.expose_secret().len(), "acme".len() + 40);
//! assert_eq!(acme.realm(), "acme");
//! assert_eq!(acme.problem_type("invalid_token"), "urn:acme:problem:invalid_token");
//! assert_eq!(acme.metric_name("auth_cache_total"), "acme_auth_cache_total");
//!
//! // Bad input is refused where it is given, with the reason.
//! let refused = Identity::new("Acme").unwrap_err();
//! assert!(refused.to_string().contains("lowercase"));
//! # Ok::<(), jeton_auth::IdentityError>(())
//! ```
//!
//! There is no default: an app names its own.

use std::{borrow::Cow, fmt, sync::Arc};

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{AuthError, token::TokenFormat};

/// An app's identity: its token prefix, the realm of its challenges, the
/// base of its problem `type`s and the prefix of its metric names. Cheap to
/// clone (one reference count).
#[derive(Clone, PartialEq, Eq)]
pub struct Identity(Arc<Names>);

#[derive(Clone, PartialEq, Eq)]
struct Names {
    tokens: TokenFormat,
    realm: Cow<'static, str>,
    problem_type_base: Cow<'static, str>,
    metric_prefix: Cow<'static, str>,
}

/// Why an identity was refused: each message says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error("a token prefix must not be empty")]
    EmptyPrefix,
    #[error(
        "a token prefix has at most {max} characters; `{prefix}` has {len}",
        max = TokenFormat::MAX_PREFIX_LEN,
        len = prefix.len()
    )]
    PrefixTooLong { prefix: String },
    #[error(
        "a token prefix is lowercase ASCII letters and digits only (a-z, 0-9); `{prefix}` is not"
    )]
    PrefixCharacters { prefix: String },
    #[error(
        "a realm is printable ASCII without `\"` or `\\` (it is quoted in WWW-Authenticate); `{0}` is not"
    )]
    Realm(String),
    #[error(
        "a problem type base is a non-empty URI prefix of printable ASCII without spaces; `{0}` is not"
    )]
    ProblemTypeBase(String),
    #[error(
        "a metric prefix is ASCII letters, digits, `_` and `:`, not starting with a digit; `{0}` is not"
    )]
    MetricPrefix(String),
}

/// The identity the crate's own unit tests use.
#[cfg(test)]
impl Default for Identity {
    fn default() -> Identity {
        Identity(Arc::new(Names {
            tokens: TokenFormat::default(),
            realm: Cow::Borrowed("jeton"),
            problem_type_base: Cow::Borrowed("urn:jeton:problem:"),
            metric_prefix: Cow::Borrowed("jeton_"),
        }))
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("prefix", &self.0.tokens.prefix())
            .field("realm", &self.realm())
            .field("problem_type_base", &self.problem_type_base())
            .field("metric_prefix", &self.metric_prefix())
            .finish()
    }
}

impl Identity {
    /// The identity of an app whose tokens start with `prefix` (`acme` gives
    /// `acme_pk_…`, `acme_sk_…`, `acme_ut_…`): 1 to 8 lowercase ASCII letters
    /// and digits. The realm is the prefix, problem types are
    /// `urn:<prefix>:problem:<code>` and metric names start with `<prefix>_`;
    /// the `with_*` methods change them.
    pub fn new(prefix: &str) -> Result<Identity, IdentityError> {
        let tokens = TokenFormat::new(prefix)?;
        Ok(Identity(Arc::new(Names {
            tokens,
            realm: Cow::Owned(prefix.to_owned()),
            problem_type_base: Cow::Owned(format!("urn:{prefix}:problem:")),
            metric_prefix: Cow::Owned(format!("{prefix}_")),
        })))
    }

    /// The realm of every `WWW-Authenticate` challenge.
    pub fn with_realm(self, realm: &str) -> Result<Identity, IdentityError> {
        let valid = !realm.is_empty()
            && realm
                .bytes()
                .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
        if !valid {
            return Err(IdentityError::Realm(realm.to_owned()));
        }
        Ok(self.with(|names| names.realm = Cow::Owned(realm.to_owned())))
    }

    /// What every problem `type` starts with; the problem's `code` follows.
    pub fn with_problem_type_base(self, base: &str) -> Result<Identity, IdentityError> {
        if base.is_empty() || !base.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(IdentityError::ProblemTypeBase(base.to_owned()));
        }
        Ok(self.with(|names| names.problem_type_base = Cow::Owned(base.to_owned())))
    }

    /// What every metric name of the library starts with (may be empty).
    pub fn with_metric_prefix(self, prefix: &str) -> Result<Identity, IdentityError> {
        let valid = prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
            && !prefix.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(IdentityError::MetricPrefix(prefix.to_owned()));
        }
        Ok(self.with(|names| names.metric_prefix = Cow::Owned(prefix.to_owned())))
    }

    fn with(self, change: impl FnOnce(&mut Names)) -> Identity {
        let mut names = Arc::unwrap_or_clone(self.0);
        change(&mut names);
        Identity(Arc::new(names))
    }

    /// How this app's tokens look: generate and parse them here.
    pub fn tokens(&self) -> TokenFormat {
        self.0.tokens
    }

    pub fn realm(&self) -> &str {
        &self.0.realm
    }

    pub fn problem_type_base(&self) -> &str {
        &self.0.problem_type_base
    }

    /// The problem `type` for `code`.
    pub fn problem_type(&self, code: &str) -> String {
        format!("{}{code}", self.problem_type_base())
    }

    pub fn metric_prefix(&self) -> &str {
        &self.0.metric_prefix
    }

    /// A metric's full name: the prefix, then `name`.
    pub fn metric_name(&self, name: &str) -> String {
        format!("{}{name}", self.metric_prefix())
    }

    /// An RFC 9457 problem+json response: `{type, title, status, code,
    /// detail}` plus any `extra` members, with this app's problem `type`.
    /// For the app's own errors too, so that every error of a service has
    /// one shape.
    pub fn problem(
        &self,
        status: StatusCode,
        code: &str,
        title: &str,
        detail: &str,
        extra: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> Response {
        crate::error::problem(self.problem_type_base(), status, code, title, detail, extra)
    }

    /// The response to a refused request: the problem, its RFC 6750
    /// challenge in this app's realm, and `Retry-After` and `RateLimit-*`
    /// where they apply.
    pub fn refusal(&self, error: &AuthError) -> Response {
        let mut response = self.problem(
            error.status(),
            error.code(),
            error.title(),
            &error.detail(),
            None,
        );
        if let Some(challenge) = error.www_authenticate(self.realm()) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&challenge).expect("realms are checked to be ASCII"),
            );
        }
        error.add_headers(response.headers_mut());
        response
    }

    /// [`Identity::refusal`] as a value a handler can return.
    pub fn refuse(&self, error: AuthError) -> Refused {
        Refused {
            error,
            identity: self.clone(),
        }
    }
}

/// An [`AuthError`] with the identity to render it in; see
/// [`Identity::refuse`].
#[derive(Debug, Clone)]
pub struct Refused {
    pub error: AuthError,
    pub identity: Identity,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        self.identity.refusal(&self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_prefixes_are_refused_with_the_reason() {
        for (prefix, says) in [
            ("", "must not be empty"),
            ("abcdefghi", "at most 8 characters; `abcdefghi` has 9"),
            ("Acme", "lowercase ASCII letters and digits"),
            ("ac_me", "lowercase ASCII letters and digits"),
            ("acmé", "lowercase ASCII letters and digits"),
            ("ac me", "lowercase ASCII letters and digits"),
        ] {
            let error = Identity::new(prefix).unwrap_err().to_string();
            assert!(error.contains(says), "{prefix:?}: {error}");
        }
        for prefix in ["a", "acme", "abcdefgh", "x9", "0"] {
            let identity = Identity::new(prefix).unwrap();
            assert_eq!(identity.tokens().token_len(), prefix.len() + 40);
        }
    }

    #[test]
    fn names_can_be_changed_and_are_checked() {
        let acme = Identity::new("acme")
            .and_then(|i| i.with_realm("Acme API"))
            .and_then(|i| i.with_problem_type_base("https://acme.example/problems/"))
            .and_then(|i| i.with_metric_prefix("acme_shop_"))
            .unwrap();
        assert_eq!(acme.realm(), "Acme API");
        assert_eq!(
            acme.problem_type("invalid_token"),
            "https://acme.example/problems/invalid_token"
        );
        assert_eq!(acme.metric_name("x"), "acme_shop_x");
        let base = Identity::new("acme").unwrap();
        assert!(base.clone().with_realm("a\"b").is_err());
        assert!(base.clone().with_realm("").is_err());
        assert!(base.clone().with_problem_type_base("urn:a b:").is_err());
        assert!(base.clone().with_metric_prefix("9x").is_err());
        assert!(base.clone().with_metric_prefix("a-b").is_err());
        assert!(base.with_metric_prefix("").is_ok());
    }
}
