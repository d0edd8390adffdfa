//! The minimal example's routes on the database store: clients, keys and
//! user tokens in SQLite or PostgreSQL, in the store's own tables. Every
//! process on the same database sees the others' revocations within a
//! second.
//!
//! From a clone of <https://github.com/jeton-rs/jeton>:
//!
//! ```sh
//! cargo run -p jeton-auth --features sqlite --example database -- 'sqlite://acme.db?mode=rwc'
//! cargo run -p jeton-auth --features postgres --example database -- postgres://postgres@127.0.0.1/acme
//! ```
//!
//! Without a URL it keeps everything in memory (`sqlite::memory:`) for as
//! long as it runs. It sets itself up once: the first start on a database
//! adds the shop's client and prints its keys (shown once, stored only as
//! hashes); a later start finds that client and serves its keys as they
//! are. The crate's README shows what to send. Ctrl-C stops it after the
//! requests in flight, and writes the last uses of user tokens.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    routing::{get, post},
};
use jeton_auth::{
    Ability, Access, Ceilings, Client, Gate, Identity, IssuedToken, KindSet, NewClient,
    SecretClient, SqlStore, SqlStoreError, User,
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
/// The database when none is named: in memory, lost when the example
/// stops.
pub const DEFAULT_URL: &str = "sqlite::memory:";

/// The app with its store and its client.
pub struct Example {
    pub store: SqlStore,
    pub gate: Arc<Gate<SqlStore>>,
    /// The shop's client: the one this start added, or the one an earlier
    /// start on the same database did.
    pub client_id: String,
    /// The client's keys, if this start made them: shown once.
    pub keys: Option<Keys>,
}

/// A publishable key for the shop's website and a secret key for its back
/// office.
pub struct Keys {
    pub publishable: IssuedToken,
    pub secret: IssuedToken,
}

impl Example {
    /// Connects to `url`, creates or updates the store's tables, and finds
    /// the shop's client, or adds it with a publishable and a secret key.
    pub async fn new(url: &str) -> Result<Example, SqlStoreError> {
        let identity = Identity::new("acme").expect("a valid prefix");
        let store = SqlStore::connect(url, identity.tokens()).await?;
        let gate = Gate::builder(identity, store.clone())
            .ceilings(
                Ceilings::new()
                    .publishable([PRODUCTS_READ, AUTH_LOGIN])
                    .secret([Ability::ALL])
                    .user([PRODUCTS_READ, PROFILE_READ]),
            )
            .build()
            .expect("the store issues the identity's tokens, and the ceilings are given");
        // An earlier start on this database made the client: its keys were
        // shown then, and the store keeps only their hashes.
        let earlier = store.list_clients(None, 100).await?.into_iter();
        if let Some(client_id) = earlier
            .filter(|client| client.revoked_at.is_none())
            .map(|client| client.id)
            .next()
        {
            return Ok(Example {
                store,
                gate,
                client_id,
                keys: None,
            });
        }
        // One client application: the shop's website (publishable key) and
        // its back office (secret key).
        let client_id = store
            .add_client(
                NewClient::new([PRODUCTS_READ, AUTH_LOGIN, ADMIN])
                    .allowed_origins([SHOP_ORIGIN])
                    .limits(Limits {
                        per_key: Some(600),
                        per_ip: Some(60),
                    }),
            )
            .await?;
        let keys = Keys {
            publishable: store.issue_publishable_key(&client_id).await?,
            secret: store.issue_secret_key(&client_id).await?,
        };
        Ok(Example {
            store,
            gate,
            client_id,
            keys: Some(keys),
        })
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

/// Anyone with `products:read`: a publishable key or a user token.
async fn products() -> Json<Value> {
    Json(json!({"data": [{"sku": "TEA-1", "name": "Green tea"}]}))
}

/// A publishable key logs a person in: a user token for 30 days.
async fn login(
    State(store): State<SqlStore>,
    Client(client): Client,
    Json(body): Json<Value>,
) -> Result<Json<Value>, StatusCode> {
    // A real app checks the password against its users (Argon2id, off the
    // async runtime); this one knows one person.
    if body["email"] != "alice@example.com" || body["password"] != "wonderland" {
        return Err(StatusCode::BAD_REQUEST);
    }
    let expires_at = OffsetDateTime::now_utc() + Duration::days(30);
    // Through the client that logged the person in: the token carries its
    // origins, which a cookie session would need.
    let abilities = [PRODUCTS_READ, PROFILE_READ];
    let issued = store
        .issue_user_token_via(&client.client_id, "alice", abilities, Some(expires_at))
        .await
        .map_err(|error| {
            tracing::error!(%error, "could not issue a user token");
            StatusCode::SERVICE_UNAVAILABLE
        })?;
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
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let example = Example::new(&url).await?;
    match &example.keys {
        Some(keys) => {
            println!("# paste these into another shell:");
            println!("export PK={}", keys.publishable.token.expose_secret());
            println!("export SK={}", keys.secret.token.expose_secret());
        }
        None => println!(
            "# client {} was set up by an earlier start; use the keys it printed",
            example.client_id
        ),
    }
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
