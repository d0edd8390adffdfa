//! The admin API: secret keys with `admin` only (see `routes.rs`).

pub mod audit;
pub mod clients;
pub mod customers;
pub mod orders;
pub mod products;
pub mod usage;
