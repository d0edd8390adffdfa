//! The API's JSON shapes: what handlers, the catalogue cache, stored order
//! replays and `jeton client --json` send. Each is built from a store row,
//! so a column can change without the API changing, and the OpenAPI
//! document (`/openapi.json`) is generated from these types.

use jeton_auth::AbilitySet;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::{
    domain::{
        client::ClientKind,
        ids::{ClientId, CustomerId, KeyId, OrderId, ProductId, TokenId},
        money::Money,
    },
    store,
};

/// A shape as ready-to-send JSON, for the caches that keep responses. The
/// buffer is shrunk to its length: a cache weighs entries by their length.
pub fn json<T: Serialize>(value: &T) -> bytes::Bytes {
    let body = serde_json::to_vec(value).expect("the API's shapes serialize");
    bytes::Bytes::from(body.into_boxed_slice())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Product {
    #[schema(value_type = String)]
    pub id: ProductId,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price: Money,
    pub stock: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<store::products::Product> for Product {
    fn from(row: store::products::Product) -> Product {
        Product {
            id: row.id,
            sku: row.sku,
            name: row.name,
            description: row.description,
            price: Money {
                amount: row.price_amount,
                currency: row.currency,
            },
            stock: row.stock,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Customer {
    #[schema(value_type = String)]
    pub id: CustomerId,
    pub email: String,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<store::customers::Customer> for Customer {
    fn from(row: store::customers::Customer) -> Customer {
        Customer {
            id: row.id,
            email: row.email,
            name: row.name,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OrderItem {
    #[schema(value_type = String)]
    pub product_id: ProductId,
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    /// Price of one unit when the order was placed, in minor units of the
    /// order's currency.
    pub unit_price: i64,
}

impl From<store::orders::OrderItem> for OrderItem {
    fn from(row: store::orders::OrderItem) -> OrderItem {
        OrderItem {
            product_id: row.product_id,
            sku: row.sku,
            name: row.name,
            quantity: row.quantity,
            unit_price: row.unit_price,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Order {
    #[schema(value_type = String)]
    pub id: OrderId,
    pub status: OrderStatus,
    pub items: Vec<OrderItem>,
    pub total: Money,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<store::orders::Order> for Order {
    fn from(row: store::orders::Order) -> Order {
        Order {
            id: row.id,
            status: OrderStatus::from_store(&row.status),
            items: row.items.into_iter().map(OrderItem::from).collect(),
            total: Money {
                amount: row.total_amount,
                currency: row.currency,
            },
            created_at: row.created_at,
        }
    }
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Placed: its units left the stock.
    Placed,
    /// Cancelled by an admin (`POST /admin/orders/{id}/cancel`): its units
    /// went back to stock.
    Cancelled,
}

impl OrderStatus {
    fn from_store(status: &str) -> OrderStatus {
        match status {
            "cancelled" => OrderStatus::Cancelled,
            _ => OrderStatus::Placed,
        }
    }
}

impl Order {
    /// The body that answers a placed order, as stored for its replays
    /// (see `store::orders::Render`).
    pub fn render(row: &store::orders::Order) -> String {
        serde_json::to_string(&Order::from(row.clone())).expect("an order serializes")
    }
}

/// A line of a cart, with its product as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CartItem {
    #[schema(value_type = String)]
    pub product_id: ProductId,
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    /// The product's price now, in minor units of the cart's currency.
    pub unit_price: i64,
    /// Whether the product has the stock for this line now: a checkout of
    /// a cart with a line that is not available is 409 `insufficient_stock`.
    pub available: bool,
}

/// A cart (API.md §16): the owner's lines at today's prices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Cart {
    pub items: Vec<CartItem>,
    /// The sum of the lines at today's prices; `null` for an empty cart.
    pub total: Option<Money>,
    /// When the cart last changed; `null` if it never has.
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
}

impl From<store::carts::Cart> for Cart {
    fn from(cart: store::carts::Cart) -> Cart {
        let total = cart.total().map(|(amount, currency)| Money {
            amount,
            currency: currency.to_owned(),
        });
        Cart {
            items: cart
                .lines
                .into_iter()
                .map(|line| CartItem {
                    available: line.stock >= line.quantity,
                    product_id: line.product_id,
                    sku: line.sku,
                    name: line.name,
                    quantity: line.quantity,
                    unit_price: line.unit_price,
                })
                .collect(),
            total,
            updated_at: cart.updated_at,
        }
    }
}

/// A key of a client, as an admin may see it: `last4` and dates only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ClientKey {
    #[schema(value_type = String)]
    pub id: KeyId,
    pub last4: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Set while a rotated-out key is in its grace period.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// How often this key was refused because a browser sent it (secret
    /// keys; at most once a minute is counted): anything but 0 means the
    /// key has leaked; rotate it.
    pub browser_refusals: i64,
    /// When the key was first known to be exposed: its first
    /// `browser_refusals`, or a leak report (GitHub's secret scanning or
    /// `POST /admin/leaks`); `null` if never.
    #[serde(with = "time::serde::rfc3339::option")]
    pub exposed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_browser_refusal_at: Option<OffsetDateTime>,
    /// When the key was last used successfully, to the minute for two
    /// days, then to the hour for 90 days, then to the day (the start of
    /// the latest usage bucket it succeeded in; usage is written every
    /// `--usage-interval`). `null`: not in the kept usage.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

impl From<store::clients::ClientKey> for ClientKey {
    fn from(row: store::clients::ClientKey) -> ClientKey {
        ClientKey {
            id: row.id,
            last4: row.last4,
            created_at: row.created_at,
            expires_at: row.expires_at,
            browser_refusals: row.browser_refusals,
            exposed_at: row.exposed_at,
            last_browser_refusal_at: row.last_browser_refusal_at,
            last_used_at: row.last_used_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Client {
    #[schema(value_type = String)]
    pub id: ClientId,
    pub name: String,
    pub kind: ClientKind,
    #[schema(value_type = Vec<String>)]
    pub abilities: AbilitySet,
    pub allowed_origins: Vec<String>,
    /// Requests per minute for the key as a whole; `null`: no limit.
    pub rate_limit_per_minute: Option<i64>,
    /// Requests per minute per client IP (publishable keys); `null`: none.
    pub per_ip_rate_limit_per_minute: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Keys that still work (or will until their grace period ends).
    pub keys: Vec<ClientKey>,
}

impl From<store::clients::Client> for Client {
    fn from(row: store::clients::Client) -> Client {
        Client {
            id: row.id,
            name: row.name,
            kind: row.kind,
            abilities: row.abilities,
            allowed_origins: row.allowed_origins,
            rate_limit_per_minute: row.rate_limit_per_minute,
            per_ip_rate_limit_per_minute: row.per_ip_rate_limit_per_minute,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
            keys: row.keys.into_iter().map(ClientKey::from).collect(),
        }
    }
}

/// A user token as its owner may see it: never any token material but the
/// last four characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UserToken {
    #[schema(value_type = String)]
    pub id: TokenId,
    pub name: String,
    #[schema(value_type = Vec<String>)]
    pub abilities: AbilitySet,
    pub last4: String,
    /// The client application the token was issued through.
    #[schema(value_type = Option<String>)]
    pub client_id: Option<ClientId>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl From<store::user_tokens::UserToken> for UserToken {
    fn from(row: store::user_tokens::UserToken) -> UserToken {
        UserToken {
            id: row.id,
            name: row.name,
            abilities: row.abilities,
            last4: row.last4,
            client_id: row.client_id,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditActor {
    /// `client_key`, `customer`, `staff`, `cli` or `secret_scanning`.
    pub kind: String,
    /// The key id, customer id or staff member's id.
    pub id: Option<String>,
}

/// An event as the admin API and `jeton audit` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditEvent {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// e.g. `client.created`, `client.key_rotated`, `client.revoked`,
    /// `client_key.refused_origin`, `client_key.refused_in_browser`,
    /// `access_token.refused_in_browser`, `session.refused_origin`,
    /// `session.refused_csrf`,
    /// `user_token.issued`, `user_token.revoked`, `user_tokens.revoked_all`,
    /// `login.failed`, `staff.created`, `staff.disabled`, `staff.enabled`,
    /// `staff.role_changed`, `staff.signed_in`, `staff.sign_in_failed`,
    /// `staff.signed_out`, `staff.password_changed`,
    /// `staff_session.refused_origin`, `staff_session.refused_csrf`,
    /// `credential.exposed`.
    pub action: String,
    pub actor: AuditActor,
    #[schema(value_type = Option<String>)]
    pub client_id: Option<ClientId>,
    #[schema(value_type = Option<String>)]
    pub customer_id: Option<CustomerId>,
    pub subject_id: Option<String>,
    pub client_ip: Option<String>,
    pub detail: Option<String>,
}

impl From<store::audit::AuditEvent> for AuditEvent {
    fn from(row: store::audit::AuditEvent) -> AuditEvent {
        AuditEvent {
            id: row.id,
            at: row.at,
            action: row.action,
            actor: AuditActor {
                kind: row.actor_kind,
                id: row.actor_id,
            },
            client_id: row.client_id,
            customer_id: row.customer_id,
            subject_id: row.subject_id,
            client_ip: row.client_ip,
            detail: row.detail,
        }
    }
}
