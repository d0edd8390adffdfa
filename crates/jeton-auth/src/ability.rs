//! Abilities are strings: `resource:action`, `resource:*` (every action on a
//! resource), `*` (everything the principal's kind may hold), or a single word
//! such as `admin`. The app decides which abilities exist; this module only
//! knows their grammar and how wildcards match.

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

    /// Does some ability in the set allow `required`?
    pub fn grants(&self, required: &Ability) -> bool {
        // The exact ability first: it is the usual case on every request,
        // and comparing strings of other lengths costs next to nothing,
        // where a wildcard match has to split each one.
        self.0.contains(required) || self.0.iter().any(|held| held.covers(required))
    }

    /// Is every ability of `self` allowed by `other`?
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
