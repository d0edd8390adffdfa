#![doc = include_str!("../README.md")]
//!
//! ## The modules
//!
//! | module        | what it answers                                              |
//! |---------------|--------------------------------------------------------------|
//! | [`identity`](Identity) | whose tokens: prefix, realm, problem types, metric names |
//! | [`token`]     | what a token looks like, how it is generated, hashed, parsed |
//! | [`ability`]   | what a token may do (`resource:action`, `resource:*`, `*`)  |
//! | [`principal`] | who is calling, as a typed enum                              |
//! | [`header`]    | how the `Authorization` header is read (RFC 6750)            |
//! | [`store`]     | what the verifier needs from the app's storage; stores in memory and (feature `sqlx`) in SQLite or PostgreSQL |
//! | [`verify`]    | where a token is verified                                    |
//! | [`access`]    | which kinds and ability a route accepts, and the check       |
//! | [`origin`]    | origin binding of client keys                                |
//! | [`limits::rate`]| per-key and per-IP limits                                  |
//! | [`limits`]    | where every limit is counted: one process, or a fleet on Redis |
//! | [`client_ip`] | which address a request comes from, behind trusted proxies   |
//! | [`gate`]      | the gate, the route guard and the typed extractors           |
//! | [`session`]   | user tokens in cookies for the app's own pages, with CSRF    |
//! | [`cache`]     | a cache that invalidations empty for good                    |
//! | [`clock`]     | where the time is read, and a manual clock for tests         |
//! | [`error`]     | every authentication outcome as one error type               |

pub mod ability;
pub mod access;
pub mod cache;
pub mod client_ip;
pub mod clock;
pub mod error;
pub mod gate;
mod guard;
pub mod header;
mod identity;
pub mod limits;
pub mod origin;
pub mod principal;
pub mod session;
pub mod store;
pub mod token;
pub mod verify;

// The crates whose types appear in this one's API, at the versions it uses.
pub use ipnet;
#[cfg(feature = "sqlx")]
pub use sqlx;
pub use time;

pub use ability::{Ability, AbilitySet};
pub use access::{Access, Ceilings, KindSet};
pub use gate::{Client, FailedAuthLimit, Gate, SecretClient, User};
pub use clock::Clock;
pub use error::AuthError;
pub use guard::{GateBuilder, GuardLayer, GuardService};
pub use identity::{Identity, IdentityError, Refused};
pub use limits::{LimitBackend, Rate};
pub use principal::{Caller, ClientPrincipal, Principal, UserPrincipal};
pub use limits::rate::Limits;
pub use session::{CookieSessions, SessionCookie};
#[cfg(feature = "sqlx")]
pub use store::sql::{SqlStore, SqlStoreError};
pub use store::{
    IssuedToken, MemoryStore, NewClient, Refusal, StoreError, StoredCredential, TokenStore,
    UnknownClient,
};
pub use token::{HashedToken, PlainToken, TokenFormat, TokenFormatError, TokenKind};
pub use verify::{CacheSettings, Verifier};
