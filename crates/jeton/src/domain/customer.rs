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

/// Emails are kept in lower case, which is what makes them unique
/// case-insensitively (`Ann@Example.com` and `ann@example.com` are one
/// account).
pub fn parse_email(raw: &str) -> Result<String, String> {
    let email = raw.trim().to_lowercase();
    let invalid = || Err("must be an email address".to_owned());
    if email.is_empty() || email.len() > EMAIL_MAX {
        return invalid();
    }
    let Some((local, domain)) = email.split_once('@') else {
        return invalid();
    };
    let well_formed = !local.is_empty()
        && local.len() <= EMAIL_LOCAL_MAX
        && !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if well_formed { Ok(email) } else { invalid() }
}

/// An email as [`parse_email`] accepts it: the pattern is the format (a
/// `format: email` checker would refuse addresses the parser takes). The
/// schema asks for ASCII (which fits the bounds in characters exactly, where
/// the parser counts bytes) without surrounding white space; the parser also
/// accepts those.
fn email_schema() -> utoipa::openapi::Object {
    let atom = r"!-?A-~"; // printable ASCII but space and `@`
    let label = r"!-\x2d\x2f-?A-~"; // the same without `.`
    schema::field(
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .max_length(Some(EMAIL_MAX))
            .pattern(Some(format!(
                "^[{atom}]{{1,{EMAIL_LOCAL_MAX}}}@(?:[{label}]+\\.)+[{label}]+$"
            )))
            .description(Some("Unique whatever its case; kept in lower case."))
            .examples(["ann@example.com"]),
    )
}

fn new_password_schema() -> utoipa::openapi::Object {
    schema::field(
        schema::sized_text(password::MIN_CHARS, password::MAX_CHARS).examples(["correct horse"]),
    )
}

fn name_schema() -> utoipa::openapi::Object {
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
}

pub struct NewCustomer {
    pub email: String,
    pub password: Password,
    pub name: String,
}

impl TryFrom<NewCustomerInput> for NewCustomer {
    type Error = Vec<FieldError>;

    fn try_from(input: NewCustomerInput) -> Result<Self, Self::Error> {
        let mut problems = Problems::default();
        let email = problems.check("email", parse_email(&input.email));
        let password = problems.check("password", Password::parse(input.password));
        let name = problems.check("name", bounded(&input.name, 1, NAME_MAX));
        problems.finish(|| NewCustomer {
            email: email.expect("checked"),
            password: password.expect("checked"),
            name: name.expect("checked"),
        })
    }
}

fn login_email_schema() -> utoipa::openapi::Object {
    schema::field(schema::bounded_text(1, EMAIL_MAX, false).examples(["ann@example.com"]))
}

fn login_password_schema() -> utoipa::openapi::Object {
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
    /// Lower-cased, but not otherwise checked: a malformed email simply
    /// matches no account and fails like any unknown one.
    pub email: String,
    pub password: Password,
    pub device_name: String,
    pub session: SessionMode,
}

impl TryFrom<LoginInput> for Login {
    type Error = Vec<FieldError>;

    fn try_from(input: LoginInput) -> Result<Self, Self::Error> {
        let mut problems = Problems::default();
        let email = problems.check(
            "email",
            bounded(&input.email, 1, EMAIL_MAX).map(|e| e.to_lowercase()),
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
        problems.finish(|| Login {
            email: email.expect("checked"),
            password: password.expect("checked"),
            device_name: device_name.expect("checked"),
            session: input.session.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(parse_email(" Ann@Example.COM ").unwrap(), "ann@example.com");
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "ann@@example.com",
            "ann@example..com",
        ] {
            assert!(parse_email(bad).is_err(), "{bad}");
        }
    }
}
