//! Acme's API, as an outside team would write it on `jeton-auth`: its own
//! token prefix (`acme_`), realm and problem types, the in-memory store, and
//! four routes, one per kind of caller and one for both.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use jeton_auth::{
    Ability, Access, Ceilings, Client, Gate, Identity, KindSet, MemoryStore, SecretClient, User,
    limits::FailedAuthLimit,
};
use serde_json::{Value, json};

pub const PRODUCTS_READ: Ability = Ability::from_static("products:read");
pub const AUTH_LOGIN: Ability = Ability::from_static("auth:login");
pub const PROFILE_READ: Ability = Ability::from_static("profile:read");
pub const ADMIN: Ability = Ability::from_static("admin");

/// Failed authentications one address may make per window before it is
/// refused outright; low, so that the tests reach it.
pub const FAILURES_PER_ADDRESS: u32 = 20;

/// Acme's identity: `acme_` tokens, realm `acme`, problem types
/// `https://acme.example/problems/<code>`.
pub fn identity() -> Identity {
    Identity::new("acme")
        .and_then(|identity| identity.with_problem_type_base("https://acme.example/problems/"))
        .expect("a valid identity")
}

/// The app's gate over `store`.
pub fn gate(store: MemoryStore) -> Arc<Gate<MemoryStore>> {
    Gate::builder(identity(), store)
        .ceilings(
            Ceilings::new()
                .publishable([PRODUCTS_READ, AUTH_LOGIN])
                .secret([Ability::ALL])
                .user([PRODUCTS_READ, PROFILE_READ]),
        )
        .failed_auth_limit(FailedAuthLimit {
            failures: FAILURES_PER_ADDRESS,
            window: Duration::from_secs(3600),
        })
        .build()
        .expect("the store issues the identity's tokens, and the ceilings are given")
}

/// The routes, each behind its guard.
pub fn app(store: MemoryStore, gate: &Arc<Gate<MemoryStore>>) -> Router {
    let (pk, sk, ut) = (KindSet::PUBLISHABLE, KindSet::SECRET, KindSet::USER);
    Router::new()
        .route(
            "/catalogue",
            get(catalogue).route_layer(gate.guard(Access::new(pk | ut, PRODUCTS_READ))),
        )
        .route(
            "/sessions",
            post(log_in).route_layer(gate.guard(Access::new(pk, AUTH_LOGIN))),
        )
        .route(
            "/profile",
            get(profile).route_layer(gate.guard(Access::new(ut, PROFILE_READ))),
        )
        .route(
            "/reports",
            get(reports).route_layer(gate.guard(Access::new(sk, ADMIN))),
        )
        .with_state(store)
}

async fn catalogue() -> Json<Value> {
    Json(json!({"items": ["anvil", "rocket skates"]}))
}

async fn log_in(State(store): State<MemoryStore>, Client(_): Client) -> Json<Value> {
    let issued = store.issue_user_token("wile", [PRODUCTS_READ, PROFILE_READ], None);
    Json(json!({"token": issued.token.expose_secret()}))
}

async fn profile(User(user): User) -> Json<Value> {
    Json(json!({"user": user.user_id}))
}

async fn reports(SecretClient(client): SecretClient) -> Json<Value> {
    Json(json!({"client": client.client_id}))
}
