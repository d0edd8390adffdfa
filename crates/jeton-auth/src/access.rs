//! What a route accepts: which kinds of token and which ability. The app's
//! route table is a list of these; [`Access::check`] is the one place where
//! the decision is made.

use std::ops::BitOr;

use crate::{Ability, AbilitySet, AuthError, Principal, TokenKind};

/// A set of token kinds, written `KindSet::PUBLISHABLE | KindSet::USER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindSet(u8);

impl KindSet {
    pub const PUBLISHABLE: KindSet = KindSet(1);
    pub const SECRET: KindSet = KindSet(2);
    pub const USER: KindSet = KindSet(4);

    pub const fn contains(self, kind: TokenKind) -> bool {
        let bit = match kind {
            TokenKind::Publishable => 1,
            TokenKind::Secret => 2,
            TokenKind::User => 4,
            TokenKind::Access => 0,
        };
        self.0 & bit != 0
    }

    /// `pk | sk | ut`, for documentation and route listings.
    pub fn describe(self) -> String {
        [TokenKind::Publishable, TokenKind::Secret, TokenKind::User]
            .into_iter()
            .filter(|kind| self.contains(*kind))
            .map(TokenKind::code)
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

impl BitOr for KindSet {
    type Output = KindSet;

    fn bitor(self, other: KindSet) -> KindSet {
        KindSet(self.0 | other.0)
    }
}

/// The most each kind of token may hold, whatever it was created with. This
/// is what makes `*` mean "everything *this kind* may hold".
#[derive(Debug, Clone)]
pub struct Ceilings {
    pub publishable: AbilitySet,
    pub secret: AbilitySet,
    pub user: AbilitySet,
}

impl Ceilings {
    pub fn for_kind(&self, kind: TokenKind) -> Option<&AbilitySet> {
        match kind {
            TokenKind::Publishable => Some(&self.publishable),
            TokenKind::Secret => Some(&self.secret),
            TokenKind::User => Some(&self.user),
            TokenKind::Access => None,
        }
    }
}

/// A route's requirement: one of `kinds`, holding `ability` (if any).
#[derive(Debug, Clone)]
pub struct Access {
    pub kinds: KindSet,
    pub ability: Option<Ability>,
}

impl Access {
    pub const fn new(kinds: KindSet, ability: Ability) -> Access {
        Access {
            kinds,
            ability: Some(ability),
        }
    }

    /// Any token of the given kinds, whatever its abilities.
    pub const fn any_ability(kinds: KindSet) -> Access {
        Access {
            kinds,
            ability: None,
        }
    }

    pub fn check(&self, principal: &Principal, ceilings: &Ceilings) -> Result<(), AuthError> {
        let refuse = || AuthError::InsufficientScope {
            scope: self.ability.as_ref().map(ToString::to_string),
        };
        if !self.kinds.contains(principal.kind()) {
            return Err(refuse());
        }
        let Some(required) = &self.ability else {
            return Ok(());
        };
        let ceiling = ceilings.for_kind(principal.kind()).ok_or_else(refuse)?;
        if principal.abilities().grants(required) && ceiling.grants(required) {
            Ok(())
        } else {
            Err(refuse())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientPrincipal, UserPrincipal};

    fn set(text: &str) -> AbilitySet {
        AbilitySet::parse_spaced(text).unwrap()
    }

    fn ceilings() -> Ceilings {
        Ceilings {
            publishable: set("products:read auth:login customers:create"),
            secret: set("*"),
            user: set("products:read orders:*"),
        }
    }

    fn user(abilities: &str) -> Principal {
        Principal::User(std::sync::Arc::new(UserPrincipal {
            user_id: "u".into(),
            token_id: "t".into(),
            client_id: None,
            client_origins: Vec::new(),
            abilities: set(abilities),
            expires_at: None,
        }))
    }

    fn publishable(abilities: &str) -> Principal {
        Principal::PublishableClient(std::sync::Arc::new(ClientPrincipal {
            client_id: "c".into(),
            key_id: "k".into(),
            abilities: set(abilities),
            allowed_origins: Vec::new(),
            limits: Default::default(),
        }))
    }

    const ORDERS_WRITE: Ability = Ability::from_static("orders:write");
    const ADMIN: Ability = Ability::from_static("admin");

    #[test]
    fn kind_must_be_accepted() {
        let access = Access::new(KindSet::USER, ORDERS_WRITE);
        assert!(access.check(&user("orders:write"), &ceilings()).is_ok());
        let err = access.check(&publishable("*"), &ceilings()).unwrap_err();
        assert_eq!(
            err,
            AuthError::InsufficientScope {
                scope: Some("orders:write".into())
            }
        );
    }

    #[test]
    fn ability_must_be_held() {
        let access = Access::new(KindSet::USER, ORDERS_WRITE);
        assert!(access.check(&user("orders:read"), &ceilings()).is_err());
        assert!(access.check(&user("orders:*"), &ceilings()).is_ok());
    }

    #[test]
    fn star_is_capped_by_the_kind_ceiling() {
        let access = Access::new(KindSet::USER | KindSet::SECRET, ADMIN);
        assert!(access.check(&user("*"), &ceilings()).is_err());
        let secret = Principal::SecretClient(std::sync::Arc::new(ClientPrincipal {
            client_id: "c".into(),
            key_id: "k".into(),
            abilities: set("*"),
            allowed_origins: Vec::new(),
            limits: Default::default(),
        }));
        assert!(access.check(&secret, &ceilings()).is_ok());
    }

    #[test]
    fn any_ability_still_checks_kind() {
        let access = Access::any_ability(KindSet::USER);
        assert!(access.check(&user(""), &ceilings()).is_ok());
        assert!(
            access
                .check(&publishable("products:read"), &ceilings())
                .is_err()
        );
    }

    #[test]
    fn describe() {
        assert_eq!((KindSet::PUBLISHABLE | KindSet::USER).describe(), "pk | ut");
    }
}
