//! Jeton: a storefront API with first-class client keys and user tokens.
//!
//! - [`http`]: the API. `http/routes.rs` is the route → access table.
//! - [`domain`]: request types that parse rather than validate.
//! - [`responses`]: the response shapes the API sends, each built from a store row.
//! - [`store`]: SQLite and PostgreSQL behind one [`store::Db`];
//!   `store/orders.rs` is where an order is placed.
//! - [`cli`]: the `jeton` command.
//! - [`storefront`]: the demo storefront web app that `serve --demo` serves.
//!
//! Token verification itself lives in the `jeton-auth` crate.

pub mod catalog_cache;
pub mod cli;
pub mod config;
pub mod customer_cache;
pub mod domain;
pub mod hashing;
pub mod http;
pub mod identity;
#[cfg(test)]
mod load_pause;
pub mod pagination;
pub mod responses;
pub mod store;
pub mod storefront;
pub mod telemetry;
pub mod throttle;
pub mod webhooks;
