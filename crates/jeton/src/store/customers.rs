//! Customer accounts.

use serde::Serialize;
use sqlx::{Row, any::AnyRow};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{Db, db_error::is_unique_violation};
use crate::domain::{
    ids::new_id,
    time::{from_micros, now_micros},
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Customer {
    pub id: String,
    pub email: String,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

fn from_row(row: &AnyRow) -> Result<Customer, sqlx::Error> {
    Ok(Customer {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        created_at: from_micros(row.try_get("created_at")?),
    })
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
    pub async fn create_customer(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
    ) -> Result<Customer, CreateCustomerError> {
        let row = sqlx::query(
            "INSERT INTO customers (id, email, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5) \
             RETURNING id, email, name, created_at",
        )
        .bind(new_id())
        .bind(email.to_owned())
        .bind(name.to_owned())
        .bind(password_hash.to_owned())
        .bind(now_micros())
        .fetch_one(self.writer())
        .await
        .map_err(|error| {
            if is_unique_violation(&error) { CreateCustomerError::EmailTaken } else { CreateCustomerError::Db(error) }
        })?;
        Ok(from_row(&row)?)
    }

    /// The customer and their password hash, for login.
    pub async fn find_customer_for_login(
        &self,
        email: &str,
    ) -> Result<Option<(Customer, String)>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT id, email, name, created_at, password_hash FROM customers WHERE email = $1",
        )
        .bind(email.to_owned())
        .fetch_optional(self.reader())
        .await?;
        row.map(|row| Ok((from_row(&row)?, row.try_get("password_hash")?)))
            .transpose()
    }

    pub async fn get_customer(&self, id: &str) -> Result<Option<Customer>, sqlx::Error> {
        let row = sqlx::query("SELECT id, email, name, created_at FROM customers WHERE id = $1")
            .bind(id.to_owned())
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(from_row).transpose()
    }
}
