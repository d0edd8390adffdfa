//! Staff: the shop's people, signed in to the console (API.md §13). A
//! member has one role; a role is a set of admin abilities, which their
//! sessions hold.

use jeton_auth::Ability;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::abilities::*;

/// How long a staff session lives unused.
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);
/// How long a staff session lives at most, used or not.
pub const ABSOLUTE_LIFETIME: time::Duration = time::Duration::hours(12);

/// How long an invitation's link may be used.
pub const INVITATION_LIFETIME: time::Duration = time::Duration::hours(72);

/// The secret of an invitation's link: 256 random bits, hex-encoded. Shown
/// once, in the link; only its SHA-256 is stored. Never in `Debug`.
pub struct InvitationToken(zeroize::Zeroizing<String>);

impl std::fmt::Debug for InvitationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InvitationToken(..)")
    }
}

impl InvitationToken {
    pub fn generate() -> InvitationToken {
        use rand::TryRng;
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        rand::rngs::SysRng
            .try_fill_bytes(bytes.as_mut())
            .expect("the operating system's random source works");
        InvitationToken(zeroize::Zeroizing::new(hex(bytes.as_ref())))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// What is stored of an invitation's link: the SHA-256 of its token,
/// hex-encoded, so that the database alone cannot accept it.
pub fn invitation_hash(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A staff member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, staff management included.
    Owner,
    /// Reads, and changes clients and products.
    Developer,
    /// Reads, and revokes customers' tokens and cancels orders.
    Support,
    /// Reads only.
    Viewer,
}

/// What every role may read.
const READS: [Ability; 5] = [
    CLIENTS_READ,
    USAGE_READ,
    AUDIT_READ,
    CUSTOMERS_READ,
    ORDERS_READ_ALL,
];

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Developer, Role::Support, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Developer => "developer",
            Role::Support => "support",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text)
    }

    /// The role's abilities, as API.md §13's table lists them.
    pub fn abilities(self) -> Vec<Ability> {
        let mut abilities = READS.to_vec();
        abilities.extend(match self {
            Role::Owner => vec![
                CLIENTS_WRITE,
                PRODUCTS_WRITE,
                CUSTOMERS_REVOKE,
                ORDERS_CANCEL,
                STAFF_MANAGE,
            ],
            Role::Developer => vec![CLIENTS_WRITE, PRODUCTS_WRITE],
            Role::Support => vec![CUSTOMERS_REVOKE, ORDERS_CANCEL],
            Role::Viewer => Vec::new(),
        });
        abilities
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Role, String> {
        Role::parse(text)
            .ok_or_else(|| format!("`{text}` is not a role: owner, developer, support or viewer"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// API.md §13's table, row by row: the ability, then owner, developer,
    /// support, viewer.
    #[rustfmt::skip]
    const TABLE: [(Ability, [bool; 4]); 10] = [
        (CLIENTS_READ,     [true, true,  true,  true ]),
        (USAGE_READ,       [true, true,  true,  true ]),
        (AUDIT_READ,       [true, true,  true,  true ]),
        (CUSTOMERS_READ,   [true, true,  true,  true ]),
        (ORDERS_READ_ALL,  [true, true,  true,  true ]),
        (CLIENTS_WRITE,    [true, true,  false, false]),
        (PRODUCTS_WRITE,   [true, true,  false, false]),
        (CUSTOMERS_REVOKE, [true, false, true,  false]),
        (ORDERS_CANCEL,    [true, false, true,  false]),
        (STAFF_MANAGE,     [true, false, false, false]),
    ];

    #[test]
    fn roles_hold_the_abilities_of_the_contract() {
        for (ability, holders) in TABLE {
            for (role, holds) in Role::ALL.into_iter().zip(holders) {
                assert_eq!(
                    role.abilities().contains(&ability),
                    holds,
                    "{role} {ability}"
                );
            }
        }
        // Nothing else: every role's abilities are rows of the table, and
        // every admin ability is a row.
        for role in Role::ALL {
            assert!(
                role.abilities()
                    .iter()
                    .all(|a| TABLE.iter().any(|(t, _)| t == a))
            );
        }
        assert!(
            ADMIN_ABILITIES
                .iter()
                .all(|a| TABLE.iter().any(|(t, _)| t == a))
        );
    }

    #[test]
    fn roles_parse_and_print() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
        }
        assert!("admin".parse::<Role>().is_err());
        assert!("Owner".parse::<Role>().is_err());
    }
}
