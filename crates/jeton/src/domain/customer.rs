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
}

pub struct Login {
    /// Lower-cased, but not otherwise checked: a malformed email simply
    /// matches no account and fails like any unknown one.
    pub email: String,
    pub password: Password,
    pub device_name: String,
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
