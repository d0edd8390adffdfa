//! Domain types that parse rather than validate: once a value of one of these
//! types exists, it is valid, and the store and handlers never check again.
//!
//! Parsing collects every problem of a request as [`FieldError`]s, so a
//! client gets all of them in one 422.

pub mod abilities;
pub mod client;
pub mod customer;
pub mod ids;
pub mod mfa;
pub mod money;
pub mod order;
pub mod password;
pub mod product;
pub mod schema;
pub mod staff;
pub mod text;
pub mod time;
pub mod token_request;

use serde::Serialize;
use utoipa::ToSchema;

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// JSON path of the field, e.g. `items[2].quantity`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Collects field errors while a request is parsed.
#[derive(Debug, Default)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    /// Keeps the value if it parsed, records the error under `field` if not.
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(message) => {
                self.0.push(FieldError::new(field, message));
                None
            }
        }
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// `Ok(value)` if nothing was recorded. `build` runs only then, so it may
    /// unwrap the `Option`s that [`Problems::check`] returned.
    pub fn finish<T>(self, build: impl FnOnce() -> T) -> Result<T, Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(build())
        } else {
            Err(self.0)
        }
    }
}
