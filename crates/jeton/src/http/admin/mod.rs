//! The admin API: secret keys and access tokens, each route with its own admin
//! ability (see `routes.rs`).

pub mod audit;
pub mod clients;
pub mod customers;
pub mod leaks;
pub mod orders;
pub mod products;
pub mod staff;
pub mod usage;
pub mod webhooks;
