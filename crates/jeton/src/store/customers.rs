//! Customer accounts.

use sqlx::{AssertSqlSafe, FromRow};
use time::OffsetDateTime;

use super::{Db, columns::Micros, db_error::is_unique_violation};
use crate::domain::ids::CustomerId;
use crate::webhooks::events::EventType;

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
        let mut tx = self.begin_write().await?;
        let created: Customer = sqlx::query_as(
            "INSERT INTO customers (id, email, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5) \
             RETURNING id, email, name, created_at",
        )
        .bind(CustomerId::generate())
        .bind(email.to_owned())
        .bind(name.to_owned())
        .bind(password_hash.to_owned())
        .bind(self.now_micros())
        .fetch_one(&mut *tx)
        .await
        .map_err(|error| {
            if is_unique_violation(&error) { CreateCustomerError::EmailTaken } else { CreateCustomerError::Db(error) }
        })?;
        let data = crate::responses::Customer::from(created.clone());
        self.raise_webhook(&mut tx, EventType::CustomerCreated, &data)
            .await?;
        tx.commit().await?;
        Ok(created)
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

    /// Customers by id (creation order) after `after`, at most `limit`;
    /// with `email_prefix` (lower-cased, as emails are stored), only those
    /// whose email starts with it. The prefix stays out of the span: it is
    /// personal data.
    #[tracing::instrument(level = "debug", skip(self, email_prefix))]
    pub async fn list_customers(
        &self,
        email_prefix: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Customer>, sqlx::Error> {
        let mut conditions = Vec::new();
        let mut binds = Vec::new();
        if let Some(after) = after {
            binds.push(after.to_owned());
            conditions.push(format!("id > ${}", binds.len()));
        }
        if let Some(prefix) = email_prefix {
            binds.push(prefix_pattern(prefix));
            conditions.push(format!("email LIKE ${} ESCAPE '\\'", binds.len()));
        }
        let filter_sql = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT id, email, name, created_at FROM customers {filter_sql} ORDER BY id LIMIT ${}",
            binds.len() + 1
        );
        let mut query = sqlx::query_as(AssertSqlSafe(sql));
        for bind in binds {
            query = query.bind(bind);
        }
        query.bind(limit).fetch_all(self.reader()).await
    }

    /// How many orders the customer placed, cancelled ones included.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn count_customer_orders(&self, id: &CustomerId) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM orders WHERE customer_id = $1")
            .bind(id.clone())
            .fetch_one(self.reader())
            .await
    }

    /// How many live user tokens the customer holds (logins, cookie
    /// sessions and personal tokens): what `GET /admin/customers/{id}/tokens`
    /// lists.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn count_customer_tokens(&self, id: &CustomerId) -> Result<i64, sqlx::Error> {
        let count = self
            .auth()
            .count_user_tokens(id)
            .await
            .map_err(super::store_error)?;
        Ok(i64::try_from(count).unwrap_or(i64::MAX))
    }
}

/// A `LIKE` pattern for what starts with `prefix`: `%` and `_` in it are
/// literal characters, not wildcards.
fn prefix_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::prefix_pattern;

    #[test]
    fn prefixes_are_literal() {
        assert_eq!(prefix_pattern("a_b%c\\"), "a\\_b\\%c\\\\%");
    }
}
