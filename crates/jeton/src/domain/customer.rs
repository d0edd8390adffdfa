//! Customers: registration and login input.

use serde::Deserialize;
use utoipa::ToSchema;

use super::{FieldError, Problems, password, password::Password, schema, text::bounded};

/// Longest email, in bytes once trimmed and lower-cased.
pub const EMAIL_MAX: usize = 254;
/// Longest local part (before the `@`), in bytes.
pub const EMAIL_LOCAL_MAX: usize = 64;
pub const NAME_MAX: usize = 200;
pub const DEVICE_NAME_MAX: usize = 100;

/// RFC 5322 `atext`: what a dot-atom's atoms are made of.
fn is_atext(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&byte)
}

/// One identity per visible email. The local part is ASCII, an RFC 5322
/// dot-atom (no quoted strings, no comments); anything else, zero-width,
/// bidi and other format characters, soft hyphens and lookalike letters
/// included, is refused. The domain is converted to its IDNA ASCII form
/// (UTS 46, STD3 rules, DNS lengths), so `bücher.example` and
/// `xn--bcher-kva.example` are one domain. The whole is lower-cased, which
/// makes emails unique whatever their case (`docs/api.md`).
pub fn parse_email(raw: &str) -> Result<String, String> {
    let invalid = |why: &str| Err(format!("must be an email address: {why}"));
    let email = raw.trim();
    let Some((local, domain)) = email.rsplit_once('@') else {
        return invalid("no `@`");
    };
    if local.is_empty() || local.len() > EMAIL_LOCAL_MAX {
        return invalid(&format!(
            "the part before `@` must be 1 to {EMAIL_LOCAL_MAX} characters"
        ));
    }
    let dot_atom = local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext));
    if !dot_atom {
        return invalid(
            "the part before `@` must be ASCII letters, digits, dots (not leading, trailing \
             or doubled) and !#$%&'*+-/=?^_`{|}~",
        );
    }
    let Ok(domain) = idna::domain_to_ascii_strict(domain) else {
        return invalid("the domain is not a valid domain name");
    };
    let well_formed = domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !well_formed {
        return invalid("the domain must be a name with a dot, such as example.com");
    }
    let email = format!("{}@{domain}", local.to_ascii_lowercase());
    if email.len() > EMAIL_MAX {
        return invalid(&format!("at most {EMAIL_MAX} characters"));
    }
    Ok(email)
}

/// The email a login names, in the form [`parse_email`] stores; one it
/// refuses is only lower-cased (it matches no account made since, and
/// fails like any unknown email).
pub fn login_email(raw: &str) -> String {
    parse_email(raw).unwrap_or_else(|_| raw.trim().to_lowercase())
}

/// An email as [`parse_email`] accepts it, in the ASCII form it is stored
/// in: a dot-atom, `@`, and a domain of letters, digits and hyphens with a
/// dot (an internationalized domain may also be sent as Unicode; it is
/// stored in its `xn--` form).
pub(crate) fn email_schema() -> utoipa::openapi::Object {
    // Escaped as the RegExp `v` flag wants (browsers use it for
    // `<input pattern>`): `-`, `/`, `{`, `|` and `}` in a class.
    let atext = r"A-Za-z0-9!#$%&'*+\-\/=?^_`\{\|\}~";
    let label = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?";
    schema::field(
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .max_length(Some(EMAIL_MAX))
            .pattern(Some(format!(
                "^(?=[^@]{{1,{EMAIL_LOCAL_MAX}}}@)[{atext}]+(?:\\.[{atext}]+)*@(?:{label}\\.)+{label}$"
            )))
            .description(Some(
                "The part before `@` is an ASCII RFC 5322 dot-atom; the domain is stored in its \
                 IDNA ASCII form (`xn--…`); the whole is lower-cased, and unique. Anything else, \
                 control and format characters included, is 422.",
            ))
            .examples(["ann@example.com"]),
    )
}

pub(crate) fn new_password_schema() -> utoipa::openapi::Object {
    schema::field(
        schema::sized_text(password::MIN_CHARS, password::MAX_CHARS).examples(["correct horse"]),
    )
}

pub(crate) fn name_schema() -> utoipa::openapi::Object {
    schema::field(schema::bounded_text(1, NAME_MAX, false).examples(["Ann"]))
}

/// `POST /customers`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ann@example.com", "password": "correct horse", "name": "Ann"}))]
pub struct NewCustomerInput {
    #[schema(schema_with = email_schema)]
    pub email: String,
    #[schema(schema_with = new_password_schema)]
    pub password: String,
    #[schema(schema_with = name_schema)]
    pub name: String,
    #[schema(schema_with = guest_token_schema)]
    pub guest_token: Option<String>,
}

pub struct NewCustomer {
    pub email: String,
    pub password: Password,
    pub name: String,
    /// A guest's cart to move into the new customer's.
    pub guest_token: Option<String>,
}

/// Longest `guest_token` taken: a token is 42 characters; anything longer
/// is no token, and is refused rather than carried around.
const GUEST_TOKEN_MAX: usize = 64;

pub(crate) fn guest_token_schema() -> utoipa::openapi::Object {
    schema::field(
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(schema::string_type(true))
            .min_length(Some(1))
            .max_length(Some(GUEST_TOKEN_MAX))
            .description(Some(
                "The visitor's guest token (`jt_gt_…`, API.md §16): its cart is merged into the \
                 customer's and the guest token is revoked, in one transaction. An unknown, \
                 expired or already merged guest token, or one of another client, merges nothing \
                 and the request goes on. It names a cart only: it is never a credential here.",
            ))
            .examples(["jt_gt_0123456789abcdefghijABCDEFGHIJ0a1B2c"]),
    )
}

/// A `guest_token` field: at most [`GUEST_TOKEN_MAX`] characters.
fn guest_token(problems: &mut Problems, token: Option<String>) -> Option<String> {
    let token = token?;
    if token.is_empty() || token.len() > GUEST_TOKEN_MAX {
        problems.add(
            "guest_token",
            format!(
                "must be 1 to {GUEST_TOKEN_MAX} characters: a guest token, as POST /guest issued it"
            ),
        );
        return None;
    }
    Some(token)
}

impl TryFrom<NewCustomerInput> for NewCustomer {
    type Error = Vec<FieldError>;

    fn try_from(input: NewCustomerInput) -> Result<Self, Self::Error> {
        let mut problems = Problems::default();
        let email = problems.check("email", parse_email(&input.email));
        let password = problems.check("password", Password::parse(input.password));
        let name = problems.check("name", bounded(&input.name, 1, NAME_MAX));
        let guest_token = guest_token(&mut problems, input.guest_token);
        problems.finish(|| NewCustomer {
            email: email.expect("checked"),
            password: password.expect("checked"),
            name: name.expect("checked"),
            guest_token,
        })
    }
}

pub(crate) fn login_email_schema() -> utoipa::openapi::Object {
    schema::field(schema::bounded_text(1, EMAIL_MAX, false).examples(["ann@example.com"]))
}

pub(crate) fn login_password_schema() -> utoipa::openapi::Object {
    schema::field(schema::sized_text(0, password::MAX_CHARS).examples(["correct horse"]))
}

fn device_name_schema() -> utoipa::openapi::Object {
    schema::field(
        schema::bounded_text(1, DEVICE_NAME_MAX, true)
            .description(Some(
                "A label for the token, shown in `GET /me/tokens`; defaults to \"login\". \
                 1 to 100 characters once surrounding white space is trimmed; no control characters.",
            ))
            .examples(["laptop"]),
    )
}

/// `POST /auth/login`. Any email and password of the right sizes may be
/// tried; a wrong one is a 400 `invalid_credentials`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ann@example.com", "password": "correct horse", "device_name": "laptop"}))]
pub struct LoginInput {
    #[schema(schema_with = login_email_schema)]
    pub email: String,
    #[schema(schema_with = login_password_schema)]
    pub password: String,
    #[schema(schema_with = device_name_schema)]
    pub device_name: Option<String>,
    /// `cookie`: the token goes into an `HttpOnly` cookie instead of the
    /// body, for the shop's own storefront (`docs/storefront.md`).
    /// Omitted or `token`: the token is in the body.
    pub session: Option<SessionMode>,
    #[schema(schema_with = guest_token_schema)]
    pub guest_token: Option<String>,
}

/// How the browser or app will carry the token a login issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionMode {
    /// In the response body, sent back as `Authorization: Bearer`.
    #[default]
    Token,
    /// In the `jeton_session` cookie, with the `jeton_csrf` cookie.
    Cookie,
}

pub struct Login {
    /// As stored (see [`login_email`]), but not otherwise checked: a
    /// malformed email simply matches no account and fails like any unknown
    /// one.
    pub email: String,
    pub password: Password,
    pub device_name: String,
    pub session: SessionMode,
    /// A guest's cart to move into the customer's.
    pub guest_token: Option<String>,
}

impl TryFrom<LoginInput> for Login {
    type Error = Vec<FieldError>;

    fn try_from(input: LoginInput) -> Result<Self, Self::Error> {
        let mut problems = Problems::default();
        let email = problems.check(
            "email",
            bounded(&input.email, 1, EMAIL_MAX).map(|e| login_email(&e)),
        );
        let password = problems.check("password", Password::for_login(input.password));
        let device_name = problems.check(
            "device_name",
            bounded(
                input.device_name.as_deref().unwrap_or("login"),
                1,
                DEVICE_NAME_MAX,
            ),
        );
        let guest_token = guest_token(&mut problems, input.guest_token);
        problems.finish(|| Login {
            email: email.expect("checked"),
            password: password.expect("checked"),
            device_name: device_name.expect("checked"),
            session: input.session.unwrap_or_default(),
            guest_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(parse_email(" Ann@Example.COM ").unwrap(), "ann@example.com");
        assert_eq!(
            parse_email("o'neil+shop@B\u{fc}cher.Example").unwrap(),
            "o'neil+shop@xn--bcher-kva.example"
        );
        assert_eq!(
            parse_email("ann@xn--bcher-kva.example").unwrap(),
            parse_email("ann@bu\u{308}cher.example").unwrap(),
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "ann@@example.com",
            "ann@example..com",
            "ann@example.com.",
            ".ann@example.com",
            "ann.@example.com",
            "an..n@example.com",
            "\"ann\"@example.com",
            "<script>alert(1)</script>@x.com",
            "alice\u{200b}@example.com",
            "alice\u{200d}@example.com",
            "ali\u{ad}ce@example.com",
            "\u{130}lice@example.com",
            "\u{430}lice@example.com",
            "jos\u{e9}@example.com",
            "jose\u{301}@example.com",
            "ann@exa_mple.com",
            "ann@-example.com",
        ] {
            assert!(parse_email(bad).is_err(), "{bad:?}");
        }
    }
}
