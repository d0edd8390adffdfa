//! Customer accounts.

use sqlx::FromRow;
use time::OffsetDateTime;

use super::{Db, columns::Micros, db_error::is_unique_violation};
use crate::domain::ids::CustomerId;

/// A customer as stored, without the password hash. The API shows it as
/// `responses::Customer`.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Customer {
    pub id: CustomerId,
    pub email: String,
    pub name: String,
    #[sqlx(try_from = "Micros")]
    pub created_at: OffsetDateTime,
}

/// A customer and the hash their password is checked against.
#[derive(FromRow)]
pub struct LoginRecord {
    #[sqlx(flatten)]
    pub customer: Customer,
    pub password_hash: String,
}

/// The hash is a secret: it stays out of logs.
impl std::fmt::Debug for LoginRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRecord")
            .field("customer", &self.customer)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CreateCustomerError {
    #[error("an account with this email exists")]
    EmailTaken,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl Db {
    /// `email` must already be lower-cased (see `domain::customer`).
    /// Emails and names are personal data and the hash a secret: none of
    /// them goes into the span.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn create_customer(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
    ) -> Result<Customer, CreateCustomerError> {
        sqlx::query_as(
            "INSERT INTO customers (id, email, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5) \
             RETURNING id, email, name, created_at",
        )
        .bind(CustomerId::generate())
        .bind(email.to_owned())
        .bind(name.to_owned())
        .bind(password_hash.to_owned())
        .bind(self.now_micros())
        .fetch_one(self.writer())
        .await
        .map_err(|error| {
            if is_unique_violation(&error) { CreateCustomerError::EmailTaken } else { CreateCustomerError::Db(error) }
        })
    }

    /// The customer and their password hash, for login.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn find_customer_for_login(
        &self,
        email: &str,
    ) -> Result<Option<LoginRecord>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, email, name, created_at, password_hash FROM customers WHERE email = $1",
        )
        .bind(email.to_owned())
        .fetch_optional(self.reader())
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn get_customer(&self, id: &CustomerId) -> Result<Option<Customer>, sqlx::Error> {
        sqlx::query_as("SELECT id, email, name, created_at FROM customers WHERE id = $1")
            .bind(id.clone())
            .fetch_optional(self.reader())
            .await
    }
}
