//! Jeton's abilities (listed in `docs/api.md`), which kind of token may
//! hold which, and how they match (API.md §3): the admin abilities are
//! exact, `admin` is an umbrella over all of them but `staff:manage`.

use std::sync::LazyLock;

use jeton_auth::{Ability, AbilityRules, AbilitySet, Ceilings, TokenKind};

pub const PRODUCTS_READ: Ability = Ability::from_static("products:read");
pub const CUSTOMERS_CREATE: Ability = Ability::from_static("customers:create");
pub const AUTH_LOGIN: Ability = Ability::from_static("auth:login");
pub const PROFILE_READ: Ability = Ability::from_static("profile:read");
pub const ORDERS_READ: Ability = Ability::from_static("orders:read");
pub const ORDERS_WRITE: Ability = Ability::from_static("orders:write");
pub const TOKENS_MANAGE: Ability = Ability::from_static("tokens:manage");
pub const ADMIN: Ability = Ability::from_static("admin");
/// Calling the OAuth 2.0 introspection endpoint.
pub const TOKENS_INTROSPECT: Ability = Ability::from_static("tokens:introspect");
/// Obtaining a guest token for a visitor (API.md §16): publishable keys.
pub const GUEST_CREATE: Ability = Ability::from_static("guest:create");
/// Reading and changing one's own cart (API.md §16): guest and user tokens.
pub const CART_WRITE: Ability = Ability::from_static("cart:write");

/// The admin abilities (API.md §13): each admin route needs one. `admin`
/// grants every one but [`STAFF_MANAGE`]; `*` grants all; a `resource:*`
/// wildcard grants none of them, so that no stored key widens when a new
/// one is added.
pub const CLIENTS_READ: Ability = Ability::from_static("clients:read");
pub const CLIENTS_WRITE: Ability = Ability::from_static("clients:write");
pub const PRODUCTS_WRITE: Ability = Ability::from_static("products:write");
pub const CUSTOMERS_READ: Ability = Ability::from_static("customers:read");
pub const CUSTOMERS_REVOKE: Ability = Ability::from_static("customers:revoke");
pub const ORDERS_READ_ALL: Ability = Ability::from_static("orders:read_all");
pub const ORDERS_CANCEL: Ability = Ability::from_static("orders:cancel");
pub const AUDIT_READ: Ability = Ability::from_static("audit:read");
pub const USAGE_READ: Ability = Ability::from_static("usage:read");
pub const STAFF_MANAGE: Ability = Ability::from_static("staff:manage");

/// The admin abilities, in the order of API.md §13's table.
pub const ADMIN_ABILITIES: [Ability; 10] = [
    CLIENTS_READ,
    CLIENTS_WRITE,
    PRODUCTS_WRITE,
    CUSTOMERS_READ,
    CUSTOMERS_REVOKE,
    ORDERS_READ_ALL,
    ORDERS_CANCEL,
    AUDIT_READ,
    USAGE_READ,
    STAFF_MANAGE,
];

/// Every ability Jeton knows. Tokens can only be created with these (or
/// wildcards that grant some of them).
pub const KNOWN: [Ability; 21] = [
    PRODUCTS_READ,
    CUSTOMERS_CREATE,
    AUTH_LOGIN,
    PROFILE_READ,
    ORDERS_READ,
    ORDERS_WRITE,
    TOKENS_MANAGE,
    ADMIN,
    TOKENS_INTROSPECT,
    GUEST_CREATE,
    CART_WRITE,
    CLIENTS_READ,
    CLIENTS_WRITE,
    PRODUCTS_WRITE,
    CUSTOMERS_READ,
    CUSTOMERS_REVOKE,
    ORDERS_READ_ALL,
    ORDERS_CANCEL,
    AUDIT_READ,
    USAGE_READ,
    STAFF_MANAGE,
];

/// What a publishable key may hold: it is public, so read abilities and
/// the storefront's abilities only.
const PUBLISHABLE_ABILITIES: [Ability; 4] =
    [PRODUCTS_READ, CUSTOMERS_CREATE, AUTH_LOGIN, GUEST_CREATE];

/// A publishable key is public: read abilities and the storefront's
/// abilities only.
pub fn publishable_ceiling() -> AbilitySet {
    AbilitySet::new(PUBLISHABLE_ABILITIES)
}

/// What a user token may hold; also what a login token gets.
const USER_ABILITIES: [Ability; 6] = [
    PRODUCTS_READ,
    PROFILE_READ,
    ORDERS_READ,
    ORDERS_WRITE,
    TOKENS_MANAGE,
    CART_WRITE,
];

/// What a guest token holds, exactly: a visitor browses and fills a cart.
pub const GUEST_ABILITIES: [Ability; 2] = [PRODUCTS_READ, CART_WRITE];

/// What a user token may hold; also what a login token gets.
pub fn user_ceiling() -> AbilitySet {
    AbilitySet::new(USER_ABILITIES)
}

/// Whether any holder of `clients:write` may grant `ability` to a client:
/// whether all it grants is the storefront's and the customers' abilities.
/// The others (the admin abilities, `admin`, `tokens:introspect`, `*`) only
/// a caller holding them may grant (API.md §13).
pub fn open_to_grant(ability: &Ability) -> bool {
    let open = [publishable_ceiling(), user_ceiling()];
    let granted = AbilitySet::new([ability.clone()]);
    KNOWN
        .iter()
        .filter(|known| ceilings().grants(&granted, known))
        .all(|known| open.iter().any(|ceiling| ceilings().grants(ceiling, known)))
}

/// How Jeton's abilities match: the admin abilities are exact (no
/// `resource:*` reaches them, so that no stored key widens when one is
/// added) and `admin` grants every one but `staff:manage`.
fn ability_rules() -> AbilityRules {
    AbilityRules::new().exact(ADMIN_ABILITIES).umbrella(
        ADMIN,
        ADMIN_ABILITIES
            .into_iter()
            .filter(|ability| *ability != STAFF_MANAGE),
    )
}

/// Jeton's ceilings and matching rules: the gate's, and what every match
/// of abilities outside it asks (what a token may be created with, an
/// OAuth scope, a grant), so that both agree.
pub fn ceilings() -> &'static Ceilings {
    static CEILINGS: LazyLock<Ceilings> = LazyLock::new(|| {
        Ceilings::new()
            .publishable(PUBLISHABLE_ABILITIES)
            .secret([Ability::ALL])
            .user(USER_ABILITIES)
            .guest(GUEST_ABILITIES)
            .staff(ADMIN_ABILITIES)
            .rules(ability_rules())
    });
    &CEILINGS
}

/// Most abilities one token may be created with.
pub const MAX_PER_TOKEN: usize = 32;

/// Every text [`parse_for_kind`] accepts for a token of `kind`: the known
/// abilities, and the wildcards over them, within the kind's ceiling. Asked
/// of the parser itself, so the API's schemas list exactly these.
pub fn grantable(kind: TokenKind) -> Vec<String> {
    let known = KNOWN;
    let resources = known.iter().filter_map(|ability| {
        ability
            .as_str()
            .split_once(':')
            .map(|(resource, _)| resource)
    });
    let mut grantable: Vec<String> = Vec::new();
    let candidates = std::iter::once("*".to_owned())
        .chain(known.iter().map(|ability| ability.as_str().to_owned()))
        .chain(resources.map(|resource| format!("{resource}:*")));
    for text in candidates {
        if !grantable.contains(&text) && parse_for_kind(std::slice::from_ref(&text), kind).is_ok() {
            grantable.push(text);
        }
    }
    grantable
}

/// The schema of a list of abilities for a token of `kind`.
pub fn list_schema(kind: TokenKind, nullable: bool) -> utoipa::openapi::Array {
    let item = super::schema::one_of_strings(grantable(kind)).build();
    super::schema::array(item, 1, MAX_PER_TOKEN, nullable)
}

/// Parses abilities a client asked for, for a token of `kind`: each must be
/// well-formed, known (or a wildcard that grants some known one, by
/// [`ceilings`]) and within the kind's ceiling.
pub fn parse_for_kind(requested: &[String], kind: TokenKind) -> Result<AbilitySet, String> {
    if requested.is_empty() {
        return Err("must list at least one ability".to_owned());
    }
    if requested.len() > MAX_PER_TOKEN {
        return Err(format!("must list at most {MAX_PER_TOKEN} abilities"));
    }
    let ceiling = match kind {
        TokenKind::Publishable => publishable_ceiling(),
        TokenKind::User => user_ceiling(),
        _ => AbilitySet::new([Ability::ALL]),
    };
    let mut parsed = Vec::with_capacity(requested.len());
    for text in requested {
        let ability: Ability = text.parse().map_err(|_| {
            format!(
                "`{}` is not an ability",
                text.chars().take(64).collect::<String>()
            )
        })?;
        let alone = AbilitySet::new([ability.clone()]);
        if !KNOWN.iter().any(|known| ceilings().grants(&alone, known)) {
            return Err(if KNOWN.iter().any(|known| ability.covers(known)) {
                format!(
                    "`{ability}` grants nothing: admin abilities are named one by one, \
                     never by a wildcard"
                )
            } else {
                format!("`{ability}` is not a known ability")
            });
        }
        if !ceilings().grants(&ceiling, &ability) {
            return Err(format!("a {} token cannot hold `{ability}`", kind.name()));
        }
        parsed.push(ability);
    }
    Ok(AbilitySet::new(parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_well_formed() {
        for ability in KNOWN.into_iter().chain(ADMIN_ABILITIES) {
            assert_eq!(ability.as_str().parse::<Ability>().unwrap(), ability);
        }
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn publishable_keys_are_read_only() {
        assert!(
            parse_for_kind(
                &strings(&["products:read", "auth:login"]),
                TokenKind::Publishable
            )
            .is_ok()
        );
        for bad in ["orders:write", "admin", "*", "orders:*", "tokens:manage"] {
            assert!(
                parse_for_kind(&strings(&[bad]), TokenKind::Publishable).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn secret_keys_may_hold_anything_known() {
        assert!(parse_for_kind(&strings(&["*"]), TokenKind::Secret).is_ok());
        assert!(parse_for_kind(&strings(&["admin", "orders:*"]), TokenKind::Secret).is_ok());
        assert!(parse_for_kind(&strings(&["rockets:launch"]), TokenKind::Secret).is_err());
        assert!(parse_for_kind(&strings(&["Not an ability"]), TokenKind::Secret).is_err());
        assert!(parse_for_kind(&[], TokenKind::Secret).is_err());
    }

    #[test]
    fn grantable_lists_what_the_parser_accepts() {
        // A wildcard is granted only by a ceiling that holds it.
        let mut user = grantable(TokenKind::User);
        user.sort();
        assert_eq!(
            user,
            user_ceiling()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        );
        let mut secret = grantable(TokenKind::Secret);
        secret.sort();
        // `*`, every known ability, and the wildcards that grant some plain
        // one: none over the admin abilities' own resources.
        let mut expected: Vec<String> = ["*"]
            .into_iter()
            .chain(KNOWN.iter().map(Ability::as_str))
            .chain([
                "auth:*",
                "cart:*",
                "customers:*",
                "guest:*",
                "orders:*",
                "products:*",
                "profile:*",
                "tokens:*",
            ])
            .map(str::to_owned)
            .collect();
        expected.sort();
        assert_eq!(secret, expected);
        assert_eq!(
            grantable(TokenKind::Publishable),
            [
                "products:read",
                "customers:create",
                "auth:login",
                "guest:create"
            ]
        );
    }

    #[test]
    fn secret_keys_may_hold_each_admin_ability() {
        for ability in ADMIN_ABILITIES {
            let text = ability.to_string();
            assert!(
                parse_for_kind(std::slice::from_ref(&text), TokenKind::Secret).is_ok(),
                "{text}"
            );
            for kind in [TokenKind::Publishable, TokenKind::User] {
                assert!(
                    parse_for_kind(std::slice::from_ref(&text), kind).is_err(),
                    "{text} {kind:?}"
                );
            }
        }
    }

    #[test]
    fn a_wildcard_that_grants_nothing_is_refused() {
        for text in ["clients:*", "audit:*", "usage:*", "staff:*"] {
            let error = parse_for_kind(&strings(&[text]), TokenKind::Secret).unwrap_err();
            assert!(error.contains("named one by one"), "{text}: {error}");
        }
        // `orders:*` still means orders:read and orders:write.
        let orders = parse_for_kind(&strings(&["orders:*"]), TokenKind::Secret).unwrap();
        assert!(ceilings().grants(&orders, &ORDERS_WRITE));
        assert!(!ceilings().grants(&orders, &ORDERS_CANCEL));
        assert!(!ceilings().grants(&orders, &ORDERS_READ_ALL));
        assert!(
            parse_for_kind(&strings(&["rockets:*"]), TokenKind::Secret)
                .unwrap_err()
                .contains("not a known ability")
        );
    }

    #[test]
    fn admin_grants_every_admin_ability_but_staff_management() {
        let admin = AbilitySet::new([ADMIN]);
        for ability in ADMIN_ABILITIES {
            assert_eq!(
                ceilings().grants(&admin, &ability),
                ability != STAFF_MANAGE,
                "{ability}"
            );
        }
        let star = AbilitySet::new([Ability::ALL]);
        assert!(ADMIN_ABILITIES.iter().all(|a| ceilings().grants(&star, a)));
    }

    #[test]
    fn open_to_grant_is_the_storefront_and_the_customers() {
        for open in [
            "products:read",
            "orders:*",
            "customers:create",
            "tokens:manage",
        ] {
            assert!(open_to_grant(&open.parse().unwrap()), "{open}");
        }
        for closed in [
            "admin",
            "*",
            "tokens:introspect",
            "tokens:*",
            "clients:read",
        ] {
            assert!(!open_to_grant(&closed.parse().unwrap()), "{closed}");
        }
        assert!(ADMIN_ABILITIES.iter().all(|a| !open_to_grant(a)));
    }

    #[test]
    fn user_tokens_never_hold_admin() {
        assert!(parse_for_kind(&strings(&["admin"]), TokenKind::User).is_err());
        assert!(parse_for_kind(&strings(&["orders:read"]), TokenKind::User).is_ok());
        assert!(parse_for_kind(&strings(&["*"]), TokenKind::User).is_err());
    }
}
