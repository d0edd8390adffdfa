//! Integration tests over the real router and real databases. Every test
//! runs twice: on SQLite and on PostgreSQL (see `support`).

mod support;

mod auth_and_http;
mod bad_input;
mod cli;
mod clients;
mod customers_and_admin;
mod hardening;
mod multi_node;
mod openapi_conformance;
mod order_safety;
mod orders_and_catalog;
mod secrets;
mod serving;
mod storefront;
