//! Integration tests over the real router, the real `jeton` binary and real
//! databases, one file per feature. Every storage test runs twice: on
//! SQLite and on PostgreSQL (see `support`).

mod support;

mod access;
mod admin_abilities;
mod admin_console_api;
mod browser;
mod carts;
mod catalogue;
mod cli;
mod console;
mod cookie_sessions;
mod customers_and_tokens;
mod fleet;
mod guests;
mod http_hygiene;
mod keys_and_clients;
mod leaks;
mod multiple_processes;
mod oauth;
mod openapi_conformance;
mod orders;
mod secrets;
mod serving;
mod staff;
mod staff_management;
mod staff_mfa;
mod storefront;
mod typescript_client;
mod upgrades;
mod usage;
mod webhook_outbound;
mod webhooks;
