//! Ids are UUIDv7 strings: opaque to clients, never sequential integers, and
//! ordered by creation time, which keyset pagination relies on.
//!
//! Each kind of id has its own type, so a customer id cannot be passed where
//! an order id is expected. In JSON and in the database an id is its string;
//! in Rust it reads as one (it derefs to `str`). The OpenAPI document shows
//! an id as a string (`#[schema(value_type = String)]` where one is a field).

use std::{fmt, ops::Deref, str::FromStr};

use jeton_auth::{ClientPrincipal, UserPrincipal};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub fn new_id() -> String {
    Uuid::now_v7().hyphenated().to_string()
}

/// The canonical form of an id, or `None` if it cannot be one. Lookups of a
/// malformed id answer "not found" without asking the database.
pub fn parse_id(text: &str) -> Option<String> {
    if text.len() != 36 {
        return None;
    }
    Uuid::try_parse(text)
        .ok()
        .map(|id| id.hyphenated().to_string())
}

/// The text is not an id of this kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("is not an id")]
pub struct InvalidId;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent, no_pg_array)]
        pub struct $name(String);

        impl $name {
            /// A fresh id, later than every id made before it.
            pub fn generate() -> $name {
                $name(new_id())
            }

            /// The id in canonical form, or `None` if `text` is not one.
            pub fn parse(text: &str) -> Option<$name> {
                parse_id(text).map($name)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// An id this app stored and jeton-auth handed back: taken as it is.
            #[allow(dead_code, reason = "only the ids of credentials need it")]
            pub(crate) fn from_store(text: String) -> $name {
                $name(text)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(text: &str) -> Result<$name, InvalidId> {
                $name::parse(text).ok_or(InvalidId)
            }
        }

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

    };
}

id_type!(
    /// A customer account.
    CustomerId
);
id_type!(
    /// A product of the catalogue.
    ProductId
);
id_type!(
    /// An order.
    OrderId
);
id_type!(
    /// A client application.
    ClientId
);
id_type!(
    /// A user token (its record, never the token itself).
    TokenId
);
id_type!(
    /// A key of a client application (its record, never the key itself).
    KeyId
);
id_type!(
    /// A guest (a visitor with a guest token): its token's id, which is
    /// what the guest's cart is keyed on.
    GuestId
);
id_type!(
    /// An OAuth 2.0 access token (its record, never the token itself).
    AccessTokenId
);

/// The ids a user token carries, as this app's types. jeton-auth serves any
/// app: it keeps ids as strings and calls the customer "the user". The
/// strings came from this app's store, so they are not parsed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserIds {
    pub customer: CustomerId,
    pub token: TokenId,
    /// The client the token was issued through, if any.
    pub client: Option<ClientId>,
}

impl From<&UserPrincipal> for UserIds {
    fn from(user: &UserPrincipal) -> UserIds {
        UserIds {
            customer: CustomerId::from_store(user.user_id.clone()),
            token: TokenId::from_store(user.token_id.clone()),
            client: user.client_id.clone().map(ClientId::from_store),
        }
    }
}

/// The ids a client key carries, as [`UserIds`] for user tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIds {
    pub client: ClientId,
    pub key: KeyId,
}

impl From<&ClientPrincipal> for ClientIds {
    fn from(client: &ClientPrincipal) -> ClientIds {
        ClientIds {
            client: ClientId::from_store(client.client_id.clone()),
            key: KeyId::from_store(client.key_id.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_garbage_does_not() {
        let id = new_id();
        assert_eq!(parse_id(&id).as_deref(), Some(id.as_str()));
        assert_eq!(parse_id("1"), None);
        assert_eq!(parse_id("' OR 1=1 --"), None);
        assert_eq!(parse_id(&id.replace('-', "")), None);
    }

    #[test]
    fn ids_increase() {
        let a = new_id();
        let b = new_id();
        assert!(a < b);
    }

    #[test]
    fn typed_ids_parse_to_canonical_form_and_serialize_as_strings() {
        let id = ProductId::generate();
        let upper: ProductId = id.to_uppercase().parse().unwrap();
        assert_eq!(upper, id);
        assert!("nope".parse::<ProductId>().is_err());
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            format!("\"{}\"", id.as_str())
        );
    }
}
