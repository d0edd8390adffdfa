#![doc = include_str!("../README.md")]
//!
//! ## Where things are
//!
//! The common types are at the crate's root, each by that one path; the
//! public modules hold what a newcomer needs later, each with its own page.
//!
//! | source                | what it answers                                              |
//! |-----------------------|--------------------------------------------------------------|
//! | `identity`            | whose tokens: prefix, realm, problem types, metric names ([`Identity`]) |
//! | `token`               | what a token looks like, how it is generated, hashed, parsed ([`TokenFormat`], [`PlainToken`]) |
//! | `ability`             | what a token may do (`resource:action`, `resource:*`, `*`) and how abilities match ([`Ability`], [`AbilityRules`]) |
//! | `principal`           | who is calling, as a typed enum ([`Principal`])              |
//! | `access`              | which kinds and ability a route accepts, and the check ([`Access`], [`Ceilings`]) |
//! | `verify`              | where a token is verified ([`Verifier`])                     |
//! | `gate/`               | the gate: its struct, builder, admission and upkeep ([`Gate`], [`GateBuilder`]) |
//! | `guard`               | the route guard, a tower layer ([`GuardLayer`])              |
//! | `extract`             | the typed extractors ([`User`], [`Staff`], [`Guest`], [`Client`], [`SecretClient`]) |
//! | `error`               | every authentication outcome as one error type ([`AuthError`]) |
//! | `clock`               | where the time is read, and a manual clock for tests ([`Clock`]) |
//! | `store`               | what the verifier needs from the app's storage ([`TokenStore`]); stores in memory ([`MemoryStore`]) and (features `sqlite`, `postgres`) in SQL ([`SqlStore`]) |
//! | [`limits`]            | every limit: per key and per IP (`limits/rate`), failed authentications (`limits/failed_auth`), counted in one process or a fleet on Redis (`limits/shared`) |
//! | [`client_ip`]         | which address a request comes from, behind trusted proxies   |
//! | [`session`]           | user tokens and staff sessions in cookies for the app's own pages, with CSRF |
//! | [`header`]            | how the `Authorization` header is read (RFC 6750)            |
//! | [`origin`]            | origin binding of client keys                                |
//! | [`cache`]             | a cache that invalidations empty for good                    |
//! | [`usage`]             | every credential's requests and refusals, counted per minute |

mod ability;
mod access;
pub mod cache;
pub mod client_ip;
mod clock;
mod error;
mod extract;
mod gate;
mod guard;
pub mod header;
mod identity;
pub mod limits;
pub mod origin;
mod principal;
pub mod session;
mod store;
mod token;
pub mod usage;
mod verify;

// The crates whose types appear in this one's API, at the versions it uses.
pub use ipnet;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sqlx;
pub use time;

pub use ability::{Ability, AbilityRules, AbilitySet, InvalidAbility};
pub use access::{Access, Ceilings, KindSet};
pub use clock::Clock;
pub use error::AuthError;
pub use extract::{Client, Guest, SecretClient, Staff, User};
pub use gate::{Gate, GateBuilder, GateError};
pub use guard::{GuardLayer, GuardService};
pub use identity::{Identity, IdentityError, Refused};
pub use principal::{Caller, ClientPrincipal, GuestPrincipal, Principal, UserPrincipal};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use store::sql::{
    ClientInfo, ClientUpdate, CredentialInfo, CredentialTx, KeyInfo, NewCredential, Purged,
    RecordedRefusal, RefusalHook, SqlStore, SqlStoreError,
};
pub use store::{
    IssuedToken, MemoryStore, NewClient, Refusal, StoreError, StoredCredential, TokenStore,
    UnknownClient,
};
pub use token::{HashedToken, PlainToken, TokenFormat, TokenFormatError, TokenKind};
pub use verify::{CacheSettings, Verifier};
