//! Integration tests over the real router and real databases. Every test
//! runs twice: on SQLite and on PostgreSQL (see `support`).

mod support;

mod secrets;
mod storefront;
