//! The smallest app with both kinds of callers: a catalogue for publishable
//! keys (and people), a login that issues user tokens, a profile for people
//! only and an admin route for secret keys, over the in-memory store.
//!
//! From a clone of <https://github.com/jeton-rs/jeton>:
//!
//! ```sh
//! cargo run -p jeton-auth --example minimal
//! ```
//!
//! It prints the keys it made; the crate's README shows what to send.
//! Ctrl-C stops it after the requests in flight, and hands the last uses of
//! user tokens to the store.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    routing::{get, post},
};
use jeton_auth::{
    Ability, Access, Ceilings, Client, Gate, Identity, IssuedToken, KindSet, MemoryStore,
    NewClient, SecretClient, User,
    limits::Limits,
    time::{Duration, OffsetDateTime},
};
use serde_json::{Value, json};

pub const PRODUCTS_READ: Ability = Ability::from_static("products:read");
pub const AUTH_LOGIN: Ability = Ability::from_static("auth:login");
pub const PROFILE_READ: Ability = Ability::from_static("profile:read");
pub const ADMIN: Ability = Ability::from_static("admin");

/// Where the example listens; the README's curl lines use it.
pub const ADDRESS: &str = "127.0.0.1:3000";
/// The website allowed to use the publishable key from its pages.
pub const SHOP_ORIGIN: &str = "http://localhost:8080";

/// The app with its store and the two keys it made at start.
pub struct Example {
    pub store: MemoryStore,
    pub gate: Arc<Gate<MemoryStore>>,
    pub publishable_key: IssuedToken,
    pub secret_key: IssuedToken,
}

impl Example {
    pub fn new() -> Example {
        let identity = Identity::new("acme").expect("a valid prefix");
        let store = MemoryStore::new(identity.tokens());
        let gate = Gate::builder(identity, store.clone())
            .ceilings(
                Ceilings::new()
                    .publishable([PRODUCTS_READ, AUTH_LOGIN])
                    .secret([Ability::ALL])
                    .user([PRODUCTS_READ, PROFILE_READ]),
            )
            .build()
            .expect("the store issues the identity's tokens, and the ceilings are given");
        // One client application: the shop's website (publishable key) and
        // its back office (secret key).
        let shop = store.add_client(
            NewClient::new([PRODUCTS_READ, AUTH_LOGIN, ADMIN])
                .allowed_origins([SHOP_ORIGIN])
                .limits(Limits {
                    per_key: Some(600),
                    per_ip: Some(60),
                }),
        );
        let publishable_key = store
            .issue_publishable_key(&shop)
            .expect("the client exists");
        let secret_key = store.issue_secret_key(&shop).expect("the client exists");
        Example {
            store,
            gate,
            publishable_key,
            secret_key,
        }
    }

    /// The routes, each behind its guard.
    pub fn app(&self) -> Router {
        let (pk, sk, ut) = (KindSet::PUBLISHABLE, KindSet::SECRET, KindSet::USER);
        let gate = &self.gate;
        Router::new()
            .route(
                "/products",
                get(products).route_layer(gate.guard(Access::new(pk | ut, PRODUCTS_READ))),
            )
            .route(
                "/login",
                post(login).route_layer(gate.guard(Access::new(pk, AUTH_LOGIN))),
            )
            .route(
                "/me",
                get(me).route_layer(gate.guard(Access::new(ut, PROFILE_READ))),
            )
            .route(
                "/admin/stats",
                get(stats).route_layer(gate.guard(Access::new(sk, ADMIN))),
            )
            .with_state(self.store.clone())
    }
}

impl Default for Example {
    fn default() -> Self {
        Example::new()
    }
}

/// Anyone with `products:read`: a publishable key or a user token.
async fn products() -> Json<Value> {
    Json(json!({"data": [{"sku": "TEA-1", "name": "Green tea"}]}))
}

/// A publishable key logs a person in: a user token for 30 days.
async fn login(
    State(store): State<MemoryStore>,
    Client(client): Client,
    Json(body): Json<Value>,
) -> Result<Json<Value>, StatusCode> {
    // A real app checks the password against its users (Argon2id, off the
    // async runtime); this one knows one person.
    if body["email"] != "alice@example.com" || body["password"] != "wonderland" {
        return Err(StatusCode::BAD_REQUEST);
    }
    let expires_at = OffsetDateTime::now_utc() + Duration::days(30);
    let issued = store.issue_user_token("alice", [PRODUCTS_READ, PROFILE_READ], Some(expires_at));
    Ok(Json(json!({
        "token": issued.token.expose_secret(),
        "token_id": issued.id,
        "via_client": client.client_id,
    })))
}

/// People only: the handler is handed a user, never a client.
async fn me(User(user): User) -> Json<Value> {
    Json(json!({"user_id": user.user_id, "token_id": user.token_id}))
}

/// Secret keys only.
async fn stats(SecretClient(client): SecretClient) -> Json<Value> {
    Json(json!({"client_id": client.client_id, "orders_today": 0}))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let example = Example::new();
    println!("# paste these into another shell:");
    println!(
        "export PK={}",
        example.publishable_key.token.expose_secret()
    );
    println!("export SK={}", example.secret_key.token.expose_secret());
    println!("# listening on http://{ADDRESS}");
    let listener = tokio::net::TcpListener::bind(ADDRESS).await?;
    // With the peer's address: the per-IP limits need it.
    axum::serve(
        listener,
        example
            .app()
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    // Ctrl-C: stop taking connections, finish the requests in flight.
    .with_graceful_shutdown(async {
        tokio::signal::ctrl_c().await.unwrap_or(());
    })
    .await?;
    // The last uses of user tokens noted since the last batch.
    example.gate.flush_usage().await;
    Ok(())
}
