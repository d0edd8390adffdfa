//! What a route accepts: which kinds of token and which ability. The app's
//! route table is a list of these; [`Access::check`] is the one place where
//! the decision is made.

use std::ops::BitOr;

use crate::{Ability, AbilityRules, AbilitySet, AuthError, Principal, TokenKind};

/// A set of token kinds, written `KindSet::PUBLISHABLE | KindSet::USER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindSet(u8);

impl KindSet {
    pub const PUBLISHABLE: KindSet = KindSet(1);
    pub const SECRET: KindSet = KindSet(2);
    pub const USER: KindSet = KindSet(4);
    /// OAuth 2.0 access tokens, which stand in for the secret key that
    /// obtained them: an app that issues them accepts them where it accepts
    /// secret keys, `KindSet::SECRET.with(KindSet::ACCESS)`.
    pub const ACCESS: KindSet = KindSet(8);
    /// Staff sessions: an app's operators, signed in to its console.
    pub const STAFF: KindSet = KindSet(16);
    /// Guest tokens: anonymous visitors of a client's pages. No person and
    /// no client: a route takes them only if it names them.
    pub const GUEST: KindSet = KindSet(32);

    /// Both sets, in a `const` (`|` is the same, but not `const`).
    pub const fn with(self, other: KindSet) -> KindSet {
        KindSet(self.0 | other.0)
    }

    pub const fn contains(self, kind: TokenKind) -> bool {
        let bit = match kind {
            TokenKind::Publishable => 1,
            TokenKind::Secret => 2,
            TokenKind::User => 4,
            TokenKind::Access => 8,
            TokenKind::Staff => 16,
            TokenKind::Guest => 32,
        };
        self.0 & bit != 0
    }

    /// `pk | sk | at | ut | gt | st`, for documentation and route listings.
    pub fn describe(self) -> String {
        [
            TokenKind::Publishable,
            TokenKind::Secret,
            TokenKind::Access,
            TokenKind::User,
            TokenKind::Guest,
            TokenKind::Staff,
        ]
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

/// The most each kind of token may hold, whatever it was created with: what
/// makes `*` mean "everything *this kind* may hold". The app declares its
/// own abilities; a kind it says nothing about may hold nothing. With them,
/// the [`AbilityRules`] every match applies ([`Ceilings::rules`]): which
/// abilities no `resource:*` reaches, and which grant a set.
///
/// ```
/// use jeton_auth::{Ability, Ceilings, TokenKind};
///
/// const PRODUCTS_READ: Ability = Ability::from_static("products:read");
/// const AUTH_LOGIN: Ability = Ability::from_static("auth:login");
/// const PROFILE_READ: Ability = Ability::from_static("profile:read");
///
/// let ceilings = Ceilings::new().publishable([PRODUCTS_READ, AUTH_LOGIN]).user([PRODUCTS_READ, PROFILE_READ]);
/// assert!(ceilings.for_kind(TokenKind::User).unwrap().grants(&PROFILE_READ));
/// assert!(!ceilings.for_kind(TokenKind::Publishable).unwrap().grants(&PROFILE_READ));
/// // Not declared: secret keys hold nothing.
/// assert!(ceilings.for_kind(TokenKind::Secret).unwrap().is_empty());
/// ```
///
/// An admin ability that a `*` secret key holds but an old `orders:*` one
/// does not, and an umbrella over it:
///
/// ```
/// use jeton_auth::{Ability, AbilityRules, AbilitySet, Ceilings};
///
/// const ORDERS_CANCEL: Ability = Ability::from_static("orders:cancel");
/// const ADMIN: Ability = Ability::from_static("admin");
///
/// let ceilings = Ceilings::new()
///     .secret([Ability::ALL])
///     .rules(AbilityRules::new().exact([ORDERS_CANCEL]).umbrella(ADMIN, [ORDERS_CANCEL]));
/// let held = |text: &str| AbilitySet::parse_spaced(text).unwrap();
/// assert!(ceilings.grants(&held("admin"), &ORDERS_CANCEL));
/// assert!(!ceilings.grants(&held("orders:*"), &ORDERS_CANCEL));
/// assert!(!ceilings.is_subset(&held("orders:cancel"), &held("orders:*")));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Ceilings {
    publishable: AbilitySet,
    secret: AbilitySet,
    user: AbilitySet,
    staff: AbilitySet,
    guest: AbilitySet,
    rules: AbilityRules,
}

impl Ceilings {
    /// Ceilings under which no kind may hold anything; declare each kind's
    /// with [`Ceilings::publishable`], [`Ceilings::secret`],
    /// [`Ceilings::user`] and [`Ceilings::staff`].
    pub fn new() -> Ceilings {
        Ceilings::default()
    }

    /// What a publishable key may hold. It is public (it sits in browser
    /// code): read abilities and the few a visitor needs, nothing more.
    pub fn publishable(mut self, abilities: impl IntoIterator<Item = Ability>) -> Ceilings {
        self.publishable = AbilitySet::new(abilities);
        self
    }

    /// What a secret key may hold (`[Ability::ALL]`: anything).
    pub fn secret(mut self, abilities: impl IntoIterator<Item = Ability>) -> Ceilings {
        self.secret = AbilitySet::new(abilities);
        self
    }

    /// What a user token may hold.
    pub fn user(mut self, abilities: impl IntoIterator<Item = Ability>) -> Ceilings {
        self.user = AbilitySet::new(abilities);
        self
    }

    /// What a staff session may hold (its member's role's abilities are
    /// cut down to this on every request).
    pub fn staff(mut self, abilities: impl IntoIterator<Item = Ability>) -> Ceilings {
        self.staff = AbilitySet::new(abilities);
        self
    }

    /// What a guest token may hold: what an anonymous visitor needs,
    /// nothing more.
    pub fn guest(mut self, abilities: impl IntoIterator<Item = Ability>) -> Ceilings {
        self.guest = AbilitySet::new(abilities);
        self
    }

    /// How abilities match: exact abilities and umbrellas. Without, by
    /// their grammar alone.
    pub fn rules(mut self, rules: AbilityRules) -> Ceilings {
        self.rules = rules;
        self
    }

    /// Does `held` allow `required`, under the rules? What the check applies
    /// to a principal's abilities and to its kind's ceiling; an app asks the
    /// same when it hands out abilities (an OAuth scope, a key for a client).
    pub fn grants(&self, held: &AbilitySet, required: &Ability) -> bool {
        self.rules.grants(held, required)
    }

    /// Is every ability of `requested` allowed by `held`, under the rules?
    pub fn is_subset(&self, requested: &AbilitySet, held: &AbilitySet) -> bool {
        self.rules.is_subset(requested, held)
    }

    /// No kind may hold anything.
    pub fn is_empty(&self) -> bool {
        self.publishable.is_empty()
            && self.secret.is_empty()
            && self.user.is_empty()
            && self.staff.is_empty()
            && self.guest.is_empty()
    }

    /// The ceiling of `kind`; `None` for a kind the verifier does not take.
    /// An access token's is the secret keys': it holds a subset of what its
    /// client's secret key holds.
    pub fn for_kind(&self, kind: TokenKind) -> Option<&AbilitySet> {
        match kind {
            TokenKind::Publishable => Some(&self.publishable),
            TokenKind::Secret | TokenKind::Access => Some(&self.secret),
            TokenKind::User => Some(&self.user),
            TokenKind::Staff => Some(&self.staff),
            TokenKind::Guest => Some(&self.guest),
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

    /// The decision: a kind the route takes ([`AuthError::WrongKind`]
    /// otherwise), holding the ability within its kind's ceiling, both under
    /// the ceilings' rules ([`AuthError::InsufficientScope`] otherwise).
    pub fn check(&self, principal: &Principal, ceilings: &Ceilings) -> Result<(), AuthError> {
        if !self.kinds.contains(principal.kind()) {
            return Err(AuthError::WrongKind {
                accepted: self.kinds,
            });
        }
        let Some(required) = &self.ability else {
            return Ok(());
        };
        let granted = ceilings
            .for_kind(principal.kind())
            .is_some_and(|ceiling| ceilings.grants(ceiling, required))
            && ceilings.grants(principal.abilities(), required);
        if granted {
            Ok(())
        } else {
            Err(AuthError::InsufficientScope {
                scope: required.to_string(),
            })
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
        let list = |text: &str| set(text).iter().cloned().collect::<Vec<_>>();
        Ceilings::new()
            .publishable(list("products:read auth:login customers:create"))
            .secret([Ability::ALL])
            .user(list("products:read orders:*"))
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
            AuthError::WrongKind {
                accepted: KindSet::USER
            }
        );
    }

    #[test]
    fn ability_must_be_held() {
        let access = Access::new(KindSet::USER, ORDERS_WRITE);
        assert_eq!(
            access.check(&user("orders:read"), &ceilings()),
            Err(AuthError::InsufficientScope {
                scope: "orders:write".into()
            })
        );
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
    fn an_undeclared_kind_holds_nothing() {
        let only_users = Ceilings::new().user([ORDERS_WRITE]);
        let access = Access::new(KindSet::USER | KindSet::SECRET, ORDERS_WRITE);
        let secret = Principal::SecretClient(std::sync::Arc::new(ClientPrincipal {
            client_id: "c".into(),
            key_id: "k".into(),
            abilities: set("*"),
            allowed_origins: Vec::new(),
            limits: Default::default(),
        }));
        assert!(access.check(&secret, &only_users).is_err());
        assert!(access.check(&user("*"), &only_users).is_ok());
    }

    fn secret(abilities: &str) -> Principal {
        Principal::SecretClient(std::sync::Arc::new(ClientPrincipal {
            client_id: "c".into(),
            key_id: "k".into(),
            abilities: set(abilities),
            allowed_origins: Vec::new(),
            limits: Default::default(),
        }))
    }

    const ORDERS_CANCEL: Ability = Ability::from_static("orders:cancel");
    const STAFF_MANAGE: Ability = Ability::from_static("staff:manage");

    fn with_rules() -> Ceilings {
        ceilings().rules(
            AbilityRules::new()
                .exact([ORDERS_CANCEL, STAFF_MANAGE])
                .umbrella(ADMIN, [ORDERS_CANCEL]),
        )
    }

    #[test]
    fn the_check_applies_the_rules() {
        let cancel = Access::new(KindSet::SECRET, ORDERS_CANCEL);
        assert!(
            cancel
                .check(&secret("orders:cancel"), &with_rules())
                .is_ok()
        );
        assert!(cancel.check(&secret("admin"), &with_rules()).is_ok());
        assert!(cancel.check(&secret("*"), &with_rules()).is_ok());
        assert_eq!(
            cancel.check(&secret("orders:*"), &with_rules()),
            Err(AuthError::InsufficientScope {
                scope: "orders:cancel".into()
            })
        );
        let staff = Access::new(KindSet::SECRET, STAFF_MANAGE);
        assert!(staff.check(&secret("admin"), &with_rules()).is_err());
        assert!(staff.check(&secret("*"), &with_rules()).is_ok());
        // Plain abilities match as before.
        let write = Access::new(KindSet::USER, ORDERS_WRITE);
        assert!(write.check(&user("orders:*"), &with_rules()).is_ok());
    }

    #[test]
    fn a_ceiling_wildcard_does_not_reach_an_exact_ability() {
        // Users' ceiling holds `orders:*`: not `orders:cancel`, even with `*`.
        let cancel = Access::new(KindSet::USER, ORDERS_CANCEL);
        assert!(cancel.check(&user("*"), &with_rules()).is_err());
        assert!(cancel.check(&user("orders:cancel"), &with_rules()).is_err());
        // Without the rule, the ceiling's wildcard would have let it through.
        assert!(cancel.check(&user("orders:cancel"), &ceilings()).is_ok());
    }

    #[test]
    fn describe() {
        assert_eq!((KindSet::PUBLISHABLE | KindSet::USER).describe(), "pk | ut");
        assert_eq!(KindSet::SECRET.with(KindSet::ACCESS).describe(), "sk | at");
        assert!(!KindSet::SECRET.contains(TokenKind::Access));
        assert_eq!(
            KindSet::SECRET
                .with(KindSet::ACCESS)
                .with(KindSet::STAFF)
                .describe(),
            "sk | at | st"
        );
        assert!(!KindSet::USER.contains(TokenKind::Staff));
    }

    fn staff(abilities: &str) -> Principal {
        Principal::Staff(std::sync::Arc::new(UserPrincipal::new(
            "s",
            "t",
            set(abilities),
        )))
    }

    #[test]
    fn staff_sessions_hold_what_their_ceiling_allows() {
        let staffed = with_rules().staff([ORDERS_CANCEL, ADMIN]);
        let cancel = Access::new(KindSet::SECRET.with(KindSet::STAFF), ORDERS_CANCEL);
        assert!(cancel.check(&staff("orders:cancel"), &staffed).is_ok());
        assert_eq!(
            cancel.check(&staff("admin"), &staffed),
            Ok(()),
            "the umbrella within the ceiling"
        );
        // Not declared: a staff session holds nothing.
        assert!(cancel.check(&staff("*"), &with_rules()).is_err());
        // The ceiling caps `*`.
        let manage = Access::new(KindSet::STAFF, STAFF_MANAGE);
        assert!(manage.check(&staff("*"), &staffed).is_err());
        // A staff session is not a user token, nor the other way round.
        let profile = Access::any_ability(KindSet::USER);
        assert_eq!(
            profile.check(&staff("*"), &staffed),
            Err(AuthError::WrongKind {
                accepted: KindSet::USER
            })
        );
        assert!(
            Access::any_ability(KindSet::STAFF)
                .check(&user("*"), &staffed)
                .is_err()
        );
        assert_eq!(
            staffed.for_kind(TokenKind::Staff).map(AbilitySet::len),
            Some(2)
        );
    }

    fn guest(abilities: &str) -> Principal {
        Principal::Guest(std::sync::Arc::new(crate::GuestPrincipal::new(
            "g",
            "c",
            set(abilities),
        )))
    }

    #[test]
    fn guests_are_a_kind_of_their_own() {
        assert_eq!(KindSet::GUEST.describe(), "gt");
        assert_eq!(
            (KindSet::PUBLISHABLE | KindSet::GUEST | KindSet::USER).describe(),
            "pk | ut | gt"
        );
        assert!(KindSet::GUEST.contains(TokenKind::Guest));
        for kind in TokenKind::ALL {
            assert_eq!(KindSet::GUEST.contains(kind), kind == TokenKind::Guest);
        }
        const PRODUCTS_READ: Ability = Ability::from_static("products:read");
        let guested = with_rules().guest([PRODUCTS_READ]);
        let read = Access::new(KindSet::GUEST | KindSet::USER, PRODUCTS_READ);
        assert!(read.check(&guest("products:read"), &guested).is_ok());
        // The ceiling caps `*`, and without one a guest holds nothing.
        assert!(read.check(&guest("*"), &guested).is_ok());
        assert!(read.check(&guest("*"), &with_rules()).is_err());
        let write = Access::new(KindSet::GUEST, ORDERS_WRITE);
        assert!(write.check(&guest("*"), &guested).is_err());
        // Never on a route for users, whatever it holds.
        assert_eq!(
            Access::any_ability(KindSet::USER).check(&guest("*"), &guested),
            Err(AuthError::WrongKind {
                accepted: KindSet::USER
            })
        );
    }
}
