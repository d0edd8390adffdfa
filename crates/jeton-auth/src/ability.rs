//! Abilities are strings: `resource:action`, `resource:*` (every action on a
//! resource), `*` (everything the principal's kind may hold), or a single word
//! such as `admin`. The app decides which abilities exist; this module knows
//! their grammar, how wildcards match, and ([`AbilityRules`]) the two rules an
//! app may add: abilities that no `resource:*` wildcard reaches, and umbrellas
//! that grant a listed set.

use std::{borrow::Cow, fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One ability, syntactically valid.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ability(Cow<'static, str>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an ability is `*`, `word`, `resource:*` or `resource:action` in lower case (got {0:?})")]
pub struct InvalidAbility(pub String);

impl Ability {
    /// The wildcard `*`.
    pub const ALL: Ability = Ability(Cow::Borrowed("*"));

    /// For an app's own constants: `const ORDERS_READ: Ability =
    /// Ability::from_static("orders:read");`. The text is checked as it is
    /// compiled, so a malformed one in a `const` fails the build.
    ///
    /// ```compile_fail
    /// const BAD: jeton_auth::Ability = jeton_auth::Ability::from_static("Orders:Read");
    /// # let _ = BAD;
    /// ```
    pub const fn from_static(text: &'static str) -> Ability {
        assert!(is_valid(text.as_bytes()), "not an ability: see `Ability`");
        Ability(Cow::Borrowed(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn resource_wildcard(&self) -> Option<&str> {
        self.0.strip_suffix(":*")
    }

    /// Does holding `self` allow `other`? `other` may itself be a wildcard:
    /// `*` covers everything, `orders:*` covers `orders:read` and `orders:*`.
    pub fn covers(&self, other: &Ability) -> bool {
        if self == other || self.0 == "*" {
            return true;
        }
        match (self.resource_wildcard(), other.0.split_once(':')) {
            (Some(resource), Some((other_resource, _))) => resource == other_resource,
            _ => false,
        }
    }
}

/// The grammar of [`Ability`], as a `const fn` for
/// [`Ability::from_static`]: `*`, `word`, `word:*` or `word:word`, where a
/// word is 1 to 64 of `a-z`, `0-9`, `_` and `-`.
const fn is_valid(text: &[u8]) -> bool {
    const fn word(text: &[u8], from: usize, to: usize) -> bool {
        if to <= from || to - from > 64 {
            return false;
        }
        let mut i = from;
        while i < to {
            let b = text[i];
            if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-') {
                return false;
            }
            i += 1;
        }
        true
    }
    if text.len() == 1 && text[0] == b'*' {
        return true;
    }
    let mut colon = 0;
    while colon < text.len() && text[colon] != b':' {
        colon += 1;
    }
    if colon == text.len() {
        return word(text, 0, text.len());
    }
    let action_is_star = text.len() == colon + 2 && text[colon + 1] == b'*';
    word(text, 0, colon) && (action_is_star || word(text, colon + 1, text.len()))
}

impl FromStr for Ability {
    type Err = InvalidAbility;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if is_valid(text.as_bytes()) {
            Ok(Ability(Cow::Owned(text.to_owned())))
        } else {
            Err(InvalidAbility(text.chars().take(80).collect()))
        }
    }
}

impl fmt::Display for Ability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Ability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl Serialize for Ability {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Ability {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of abilities, kept sorted and without duplicates.
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AbilitySet(Vec<Ability>);

impl AbilitySet {
    pub fn new(abilities: impl IntoIterator<Item = Ability>) -> AbilitySet {
        let mut list: Vec<Ability> = abilities.into_iter().collect();
        list.sort();
        list.dedup();
        AbilitySet(list)
    }

    /// Parses a space-separated list (the stored form).
    pub fn parse_spaced(text: &str) -> Result<AbilitySet, InvalidAbility> {
        text.split_ascii_whitespace()
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(AbilitySet::new)
    }

    /// The stored form: abilities separated by single spaces.
    pub fn to_spaced(&self) -> String {
        self.0
            .iter()
            .map(Ability::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Does some ability in the set allow `required`, by the grammar alone?
    /// An app that declares [`AbilityRules`] asks them instead
    /// ([`AbilityRules::grants`], or its [`Ceilings`](crate::Ceilings)).
    pub fn grants(&self, required: &Ability) -> bool {
        // The exact ability first: it is the usual case on every request,
        // and comparing strings of other lengths costs next to nothing,
        // where a wildcard match has to split each one.
        self.0.contains(required) || self.0.iter().any(|held| held.covers(required))
    }

    /// Is every ability of `self` allowed by `other`, by the grammar alone?
    /// With [`AbilityRules`], [`AbilityRules::is_subset`].
    pub fn is_subset_of(&self, other: &AbilitySet) -> bool {
        self.0.iter().all(|ability| other.grants(ability))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Ability> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for AbilitySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.iter()).finish()
    }
}

impl<'de> Deserialize<'de> for AbilitySet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<Ability>::deserialize(deserializer).map(AbilitySet::new)
    }
}

impl FromIterator<Ability> for AbilitySet {
    fn from_iter<I: IntoIterator<Item = Ability>>(iter: I) -> Self {
        AbilitySet::new(iter)
    }
}

/// How abilities match beyond their grammar, as the app declares it:
///
/// - an **exact** ability is matched only by itself, by an umbrella that
///   lists it, or by `*`; never by a `resource:*` wildcard. An ability added
///   later as exact therefore reaches no key that an old `resource:*`
///   already held;
/// - an **umbrella** grants, to whoever holds it, what it lists (and what
///   those grant in turn), not the wildcards over them nor `*`.
///
/// Everything else matches as [`Ability::covers`] says. The rules are held
/// by [`Ceilings`](crate::Ceilings), which the gate's check applies to both
/// the kind's ceiling and the principal's abilities.
///
/// ```
/// use jeton_auth::{Ability, AbilityRules, AbilitySet};
///
/// const ORDERS_READ: Ability = Ability::from_static("orders:read");
/// const ORDERS_CANCEL: Ability = Ability::from_static("orders:cancel");
/// const CLIENTS_READ: Ability = Ability::from_static("clients:read");
/// const STAFF_MANAGE: Ability = Ability::from_static("staff:manage");
/// const ADMIN: Ability = Ability::from_static("admin");
///
/// let rules = AbilityRules::new()
///     .exact([ORDERS_CANCEL, CLIENTS_READ, STAFF_MANAGE])
///     .umbrella(ADMIN, [ORDERS_CANCEL, CLIENTS_READ]);
/// let held = |text: &str| AbilitySet::parse_spaced(text).unwrap();
///
/// // A wildcard reaches the plain abilities of its resource, not the exact ones.
/// assert!(rules.grants(&held("orders:*"), &ORDERS_READ));
/// assert!(!rules.grants(&held("orders:*"), &ORDERS_CANCEL));
/// // The umbrella grants what it lists, and only that.
/// assert!(rules.grants(&held("admin"), &CLIENTS_READ));
/// assert!(!rules.grants(&held("admin"), &STAFF_MANAGE));
/// // `*` grants everything.
/// assert!(rules.grants(&held("*"), &STAFF_MANAGE));
/// assert!(rules.is_subset(&held("orders:cancel clients:read"), &held("admin")));
/// ```
#[derive(Debug, Clone, Default)]
pub struct AbilityRules {
    /// Sorted, for a binary search on every wildcard match.
    exact: Vec<Ability>,
    umbrellas: Vec<(Ability, AbilitySet)>,
}

impl AbilityRules {
    /// No rules: abilities match by their grammar alone.
    pub fn new() -> AbilityRules {
        AbilityRules::default()
    }

    /// Declares abilities that no `resource:*` wildcard matches.
    pub fn exact(mut self, abilities: impl IntoIterator<Item = Ability>) -> AbilityRules {
        self.exact.extend(abilities);
        self.exact.sort();
        self.exact.dedup();
        self
    }

    /// Declares that holding `umbrella` grants `grants`. Declared again, the
    /// lists are merged.
    pub fn umbrella(
        mut self,
        umbrella: Ability,
        grants: impl IntoIterator<Item = Ability>,
    ) -> AbilityRules {
        match self
            .umbrellas
            .iter_mut()
            .find(|(name, _)| *name == umbrella)
        {
            Some((_, listed)) => *listed = listed.iter().cloned().chain(grants).collect(),
            None => self.umbrellas.push((umbrella, AbilitySet::new(grants))),
        }
        self
    }

    /// Is `ability` declared exact?
    fn is_exact(&self, ability: &Ability) -> bool {
        self.exact.binary_search(ability).is_ok()
    }

    /// Does some ability of `held` allow `required`, under these rules?
    /// `required` may itself be a wildcard (`orders:*` is allowed by
    /// `orders:*` and `*`).
    pub fn grants(&self, held: &AbilitySet, required: &Ability) -> bool {
        // The exact ability first: it is the usual case on every request.
        held.0.contains(required)
            || held
                .iter()
                .any(|ability| self.covers(ability, required, self.umbrellas.len()))
    }

    /// Is every ability of `requested` allowed by `held`, under these rules?
    pub fn is_subset(&self, requested: &AbilitySet, held: &AbilitySet) -> bool {
        requested.iter().all(|ability| self.grants(held, ability))
    }

    /// Does holding `held` allow `required`? `depth` bounds the umbrellas
    /// followed through one another, so that two listing each other end.
    fn covers(&self, held: &Ability, required: &Ability, depth: usize) -> bool {
        if held == required || held.0 == "*" {
            return true;
        }
        if held.resource_wildcard().is_some() {
            return !self.is_exact(required) && held.covers(required);
        }
        depth > 0
            && self
                .umbrellas
                .iter()
                .find(|(name, _)| name == held)
                .is_some_and(|(_, listed)| {
                    listed
                        .iter()
                        .any(|ability| self.covers(ability, required, depth - 1))
                })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ab(text: &str) -> Ability {
        text.parse().unwrap()
    }

    fn set(text: &str) -> AbilitySet {
        AbilitySet::parse_spaced(text).unwrap()
    }

    #[test]
    fn grammar() {
        for good in [
            "*",
            "admin",
            "orders:read",
            "orders:*",
            "auth:login",
            "a_b:c-d",
        ] {
            assert!(good.parse::<Ability>().is_ok(), "{good}");
        }
        for bad in [
            "",
            ":",
            "orders:",
            ":read",
            "Orders:read",
            "orders:read:x",
            "*:read",
            "or ders",
            "orders:re*d",
            "ordérs:read",
            "orders :read",
        ] {
            assert!(bad.parse::<Ability>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn exact_match() {
        assert!(set("orders:read").grants(&ab("orders:read")));
        assert!(!set("orders:read").grants(&ab("orders:write")));
        assert!(!set("orders:read").grants(&ab("admin")));
        assert!(!set("").grants(&ab("orders:read")));
    }

    #[test]
    fn resource_wildcard_matches_only_its_resource() {
        let held = set("orders:*");
        assert!(held.grants(&ab("orders:read")));
        assert!(held.grants(&ab("orders:write")));
        assert!(held.grants(&ab("orders:*")));
        assert!(!held.grants(&ab("ordersx:read")));
        assert!(!held.grants(&ab("products:read")));
        assert!(!held.grants(&ab("orders")));
        assert!(!held.grants(&ab("*")));
    }

    #[test]
    fn star_matches_everything() {
        let held = set("*");
        for wanted in ["admin", "orders:read", "products:*", "*"] {
            assert!(held.grants(&ab(wanted)), "{wanted}");
        }
    }

    #[test]
    fn subsets() {
        assert!(set("orders:read").is_subset_of(&set("orders:*")));
        assert!(
            set("orders:read products:read")
                .is_subset_of(&set("orders:read products:read profile:read"))
        );
        assert!(!set("orders:*").is_subset_of(&set("orders:read orders:write")));
        assert!(!set("*").is_subset_of(&set("orders:*")));
        assert!(set("").is_subset_of(&set("")));
    }

    #[test]
    fn sets_are_sorted_and_deduplicated() {
        let held = set("orders:read admin orders:read");
        assert_eq!(held.to_spaced(), "admin orders:read");
        assert_eq!(held.len(), 2);
    }

    fn jeton_like_rules() -> AbilityRules {
        let admin = ["clients:read", "clients:write", "orders:cancel"].map(ab);
        AbilityRules::new()
            .exact(admin.iter().cloned().chain([ab("staff:manage")]))
            .umbrella(ab("admin"), admin)
    }

    #[test]
    fn rules_exact_abilities_match_only_themselves() {
        let rules = jeton_like_rules();
        assert!(rules.grants(&set("orders:cancel"), &ab("orders:cancel")));
        assert!(rules.grants(&set("staff:manage"), &ab("staff:manage")));
        assert!(!rules.grants(&set("orders:read"), &ab("orders:cancel")));
        assert!(!rules.grants(&set(""), &ab("orders:cancel")));
    }

    #[test]
    fn rules_wildcards_do_not_widen_to_exact_abilities() {
        let rules = jeton_like_rules();
        // Still every plain action of the resource, and the wildcard itself.
        assert!(rules.grants(&set("orders:*"), &ab("orders:read")));
        assert!(rules.grants(&set("orders:*"), &ab("orders:*")));
        assert!(!rules.grants(&set("orders:*"), &ab("orders:cancel")));
        assert!(!rules.grants(&set("clients:*"), &ab("clients:read")));
        assert!(!rules.grants(&set("staff:*"), &ab("staff:manage")));
        // Without the rules, the grammar alone would have granted it.
        assert!(set("orders:*").grants(&ab("orders:cancel")));
    }

    #[test]
    fn rules_umbrellas_grant_what_they_list() {
        let rules = jeton_like_rules();
        let admin = set("admin");
        for listed in ["clients:read", "clients:write", "orders:cancel", "admin"] {
            assert!(rules.grants(&admin, &ab(listed)), "{listed}");
        }
        for not_listed in ["staff:manage", "orders:read", "clients:*", "*"] {
            assert!(!rules.grants(&admin, &ab(not_listed)), "{not_listed}");
        }
    }

    #[test]
    fn rules_umbrellas_nest_and_may_list_each_other() {
        let rules = AbilityRules::new()
            .umbrella(ab("owner"), [ab("admin"), ab("staff:manage")])
            .umbrella(ab("admin"), [ab("clients:read"), ab("owner")]);
        assert!(rules.grants(&set("owner"), &ab("clients:read")));
        assert!(rules.grants(&set("admin"), &ab("staff:manage")));
        assert!(!rules.grants(&set("admin"), &ab("orders:read")));
    }

    #[test]
    fn rules_star_grants_everything() {
        let rules = jeton_like_rules();
        for wanted in ["staff:manage", "orders:cancel", "admin", "orders:*", "*"] {
            assert!(rules.grants(&set("*"), &ab(wanted)), "{wanted}");
        }
    }

    #[test]
    fn rules_subsets() {
        let rules = jeton_like_rules();
        assert!(rules.is_subset(&set("clients:read orders:cancel"), &set("admin")));
        assert!(!rules.is_subset(&set("clients:read staff:manage"), &set("admin")));
        assert!(rules.is_subset(&set("orders:read orders:write"), &set("orders:*")));
        assert!(!rules.is_subset(&set("orders:read orders:cancel"), &set("orders:*")));
        assert!(!rules.is_subset(&set("*"), &set("admin staff:manage")));
        assert!(rules.is_subset(&set(""), &set("")));
    }

    #[test]
    fn no_rules_is_the_grammar() {
        let rules = AbilityRules::new();
        for (held, wanted) in [
            ("orders:*", "orders:cancel"),
            ("*", "admin"),
            ("orders:read", "orders:write"),
            ("admin", "clients:read"),
        ] {
            assert_eq!(
                rules.grants(&set(held), &ab(wanted)),
                set(held).grants(&ab(wanted)),
                "{held} {wanted}"
            );
        }
    }

    #[test]
    fn serde_round_trip() {
        let held = set("products:read auth:login");
        let json = serde_json::to_string(&held).unwrap();
        assert_eq!(json, r#"["auth:login","products:read"]"#);
        let back: AbilitySet = serde_json::from_str(&json).unwrap();
        assert_eq!(back, held);
        assert!(serde_json::from_str::<AbilitySet>(r#"["Bad Ability"]"#).is_err());
    }
}
