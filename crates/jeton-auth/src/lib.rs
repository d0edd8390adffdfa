//! Token authentication for axum apps with two kinds of callers at once:
//! *client applications* (publishable `jt_pk_` and secret `jt_sk_` keys) and
//! *people* (user tokens `jt_ut_`).
//!
//! The crate knows nothing about what an app sells or stores. It owns:
//!
//! | module        | what it answers                                              |
//! |---------------|--------------------------------------------------------------|
//! | [`token`]     | what a token looks like, how it is generated, hashed, parsed |
//! | [`ability`]   | what a token may do (`resource:action`, `resource:*`, `*`)  |
//! | [`principal`] | who is calling, as a typed enum                              |
//! | [`header`]    | how the `Authorization` header is read (RFC 6750)            |
//! | [`store`]     | what the verifier needs from the app's storage              |
//! | [`verify`]    | where a token is verified                                    |
//! | [`access`]    | which kinds and ability a route accepts, and the check       |
//! | [`origin`]    | origin binding of client keys                                |
//! | [`rate_limit`]| per-key and per-IP limits                                    |
//! | [`client_ip`] | which address a request comes from, behind trusted proxies   |
//! | [`axum`]      | the route guard (middleware) and the typed extractors        |
//! | [`cache`]     | a cache that invalidations empty for good                    |
//! | [`error`]     | every authentication outcome as one error type               |

pub mod ability;
pub mod access;
pub mod axum;
pub mod cache;
pub mod client_ip;
pub mod error;
mod failed_auth;
pub mod header;
pub mod origin;
pub mod principal;
pub mod rate_limit;
pub mod store;
pub mod token;
pub mod verify;

pub use ability::{Ability, AbilitySet};
pub use access::{Access, Ceilings, KindSet};
pub use error::AuthError;
pub use principal::{ClientPrincipal, Principal, UserPrincipal};
pub use rate_limit::Limits;
pub use store::{Refusal, StoreError, StoredCredential, TokenStore};
pub use token::{HashedToken, PlainToken, TokenFormatError, TokenKind};
pub use verify::{CacheSettings, Verifier};
