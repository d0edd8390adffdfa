//! Customers: registration and login input.

use serde::Deserialize;
use utoipa::ToSchema;

use super::{FieldError, Problems, password::Password, text::bounded};

/// Emails are kept in lower case, which is what makes them unique
/// case-insensitively (`Ann@Example.com` and `ann@example.com` are one
/// account).
pub fn parse_email(raw: &str) -> Result<String, String> {
    let email = raw.trim().to_lowercase();
    let invalid = || Err("must be an email address".to_owned());
    if email.is_empty() || email.len() > 254 {
        return invalid();
    }
    let Some((local, domain)) = email.split_once('@') else {
        return invalid();
    };
    let well_formed = !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if well_formed { Ok(email) } else { invalid() }
}

/// `POST /customers`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCustomerInput {
    pub email: String,
    /// 8 to 256 characters.
    pub password: String,
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
        let name = problems.check("name", bounded(&input.name, 1, 200));
        problems.finish(|| NewCustomer {
            email: email.expect("checked"),
            password: password.expect("checked"),
            name: name.expect("checked"),
        })
    }
}

/// `POST /auth/login`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    pub email: String,
    pub password: String,
    /// A label for the token, shown in `GET /me/tokens`; defaults to "login".
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
            bounded(&input.email, 1, 254).map(|e| e.to_lowercase()),
        );
        let password = problems.check("password", Password::for_login(input.password));
        let device_name = problems.check(
            "device_name",
            bounded(input.device_name.as_deref().unwrap_or("login"), 1, 100),
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
