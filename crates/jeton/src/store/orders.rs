//! Where an order is placed: one write transaction that decrements stock
//! with a conditional update per line and records the order, or changes
//! nothing at all; and the idempotency keys that make a retried order safe.
//!
//! With an `Idempotency-Key` a placement has three steps:
//! 1. *Claim* the key: insert its row `in_flight` with a lease, in a short
//!    transaction of its own. The primary key (customer, key) decides a race:
//!    one request inserts, the others find the row and answer from it (replay,
//!    `idempotency_key_reused` or `idempotency_key_in_use`).
//! 2. Place the order in one transaction that also turns the key `done` and
//!    stores the response, but only while the lease is still ours. So the order
//!    and the key's final state commit together or not at all.
//! 3. If the order fails (a 4xx, or the database went away), *release* the key
//!    by deleting the row, again only while the lease is ours: nothing was
//!    changed, so the same key may be used again. If even that fails, the
//!    lease runs out after [`KEY_LEASE`] and a retry takes the key over.
//!
//! The three steps run in a task of their own ([`Db::place_order`]): a
//! client that goes away stops neither the order nor the key's release, so
//! only a process that dies leaves a key claimed for its lease.

use std::{borrow::Cow, collections::HashMap};

use crate::webhooks::events::EventType;

use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, FromRow};
use time::OffsetDateTime;
use tracing::Instrument;

use super::{
    Db,
    audit::{Audit, Event},
    carts::{CartOwner, cart_order_lines, empty_cart, touch_cart},
    changes::Topic,
    columns::Micros,
    db_error::{is_contention, is_contention_or_disconnect},
    placeholders,
    retry::{Retryable, retrying, retrying_if},
};
use crate::domain::{
    ids::{CustomerId, OrderId, ProductId, new_id},
    money::MAX_SAFE_AMOUNT,
    order::{IdempotencyKey, OrderLine, OrderRequest},
    time::{from_micros, to_micros},
};

/// How long a request holds its idempotency key while it runs. Placing an
/// order takes milliseconds; a lease this old belongs to a request whose
/// server died, and a retry may take the key over.
pub const KEY_LEASE: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a used idempotency key is remembered (at least; pruning removes
/// it some time after).
pub const KEY_RETENTION: time::Duration = time::Duration::hours(24);

/// A line of an order as stored, with the product's SKU, name and price at
/// the time the order was placed.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct OrderItem {
    pub product_id: ProductId,
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    /// Price of one unit, in minor units of the order's currency.
    pub unit_price: i64,
}

/// An order as stored, with its lines. The API shows it as `responses::Order`.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Order {
    pub id: OrderId,
    /// `placed`, or `cancelled` by an admin (its stock returned).
    pub status: String,
    /// Read with a second query (see `with_items`).
    #[sqlx(skip)]
    pub items: Vec<OrderItem>,
    /// In minor units of `currency`.
    pub total_amount: i64,
    pub currency: String,
    #[sqlx(try_from = "Micros")]
    pub created_at: OffsetDateTime,
}

/// An order line with the order it belongs to, as `with_items` reads it.
#[derive(FromRow)]
struct OrderItemRow {
    order_id: OrderId,
    #[sqlx(flatten)]
    item: OrderItem,
}

/// An order with its customer, as the admin listing reads it.
#[derive(FromRow)]
struct CustomerOrderRow {
    customer_id: CustomerId,
    #[sqlx(flatten)]
    order: Order,
}

/// What an order line's stock update returns of its product.
#[derive(FromRow)]
struct PricedProduct {
    sku: String,
    name: String,
    price_amount: i64,
    currency: String,
}

/// Turns an order into the JSON body that answers its request, the same
/// body stored for replays. The HTTP layer passes it, so the store need not
/// know the API's shapes.
pub type Render = fn(&Order) -> String;

#[derive(Debug, thiserror::Error)]
pub enum PlaceOrderError {
    #[error("no product has the id of line {line}")]
    UnknownProduct { line: usize },
    #[error("not enough stock for the product of line {line}")]
    InsufficientStock { line: usize, product_id: ProductId },
    #[error("all lines of an order must be in one currency")]
    MixedCurrencies,
    #[error("the order total is too large")]
    TotalTooLarge,
    #[error("this idempotency key was used for a different request")]
    KeyReused,
    #[error("a request with this idempotency key is still running")]
    KeyInUse,
    #[error("the cart is empty")]
    CartEmpty,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl Retryable for PlaceOrderError {
    fn is_retryable(&self) -> bool {
        matches!(self, PlaceOrderError::Db(error) if is_contention(error))
    }
}

/// What an order is made of.
#[derive(Debug, Clone, Copy)]
pub enum OrderSource<'a> {
    /// The lines of a `POST /orders` body.
    Request(&'a OrderRequest),
    /// The customer's cart, which the order empties (`POST /cart/checkout`).
    Cart,
}

impl OrderSource<'_> {
    /// What an idempotency key's request is recognised by. A checkout's
    /// body is empty, so its retry is the same request whatever the cart
    /// holds by then (emptied by the first one, it would otherwise look
    /// like another request); and it never matches an order's body, so one
    /// key cannot stand for both.
    fn fingerprint(&self) -> String {
        match self {
            OrderSource::Request(request) => request.fingerprint(),
            OrderSource::Cart => Sha256::digest(b"jeton:cart-checkout:v1\n")
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect(),
        }
    }
}

/// The outcome of a placement that did not fail.
#[derive(Debug)]
pub enum Placed {
    /// Placed now. `body` is the order as JSON, exactly as stored for
    /// replays, so the first response and its replays are byte-identical.
    New { order: Order, body: String },
    /// The stored response of the first request with this idempotency key.
    Replayed { status: u16, body: String },
}

/// A claimed idempotency key: ours while `lease` is in its row.
#[derive(Clone, Copy)]
struct Lease<'a> {
    key: &'a IdempotencyKey,
    lease: &'a str,
}

/// A claim on an idempotency key that releases it when dropped while
/// armed: its placement stopped halfway (it panicked).
struct ClaimGuard {
    db: Db,
    customer_id: CustomerId,
    key: IdempotencyKey,
    lease: String,
    armed: bool,
}

impl ClaimGuard {
    /// The placement finished: it made the key `done`, or releases it.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (db, customer_id, key, lease) = (
            self.db.clone(),
            self.customer_id.clone(),
            self.key.clone(),
            self.lease.clone(),
        );
        runtime.spawn(async move {
            let lease = Lease {
                key: &key,
                lease: &lease,
            };
            db.release_key(&customer_id, lease).await;
        });
    }
}

enum Claim {
    Ours,
    Replay { status: u16, body: String },
}

/// An idempotency key's row.
#[derive(FromRow)]
struct KeyRow {
    request_hash: String,
    status: String,
    lease_id: Option<String>,
    lease_expires_at: Option<i64>,
    response_status: Option<i64>,
    response_body: Option<String>,
}

impl KeyRow {
    /// The stored response, if the first request finished.
    fn replay(&self) -> Option<(u16, String)> {
        match (&self.status[..], self.response_status, &self.response_body) {
            ("done", Some(status), Some(body)) => Some((u16::try_from(status).ok()?, body.clone())),
            _ => None,
        }
    }
}

fn lease_micros() -> i64 {
    i64::try_from(KEY_LEASE.as_micros()).expect("the lease fits")
}

impl Db {
    /// Places an order for a customer, at most once per idempotency key.
    /// Contention (a deadlock, a busy database) is retried a few times;
    /// what is left of it comes back as a `Db` error the HTTP layer answers
    /// with 503.
    ///
    /// The placement runs in a task of its own, to its end, whatever
    /// happens to the caller: a client that hangs up makes axum drop the
    /// handler's future, which must not stop a placement between its
    /// steps (a dropped transaction rolls back, but the key's claim would
    /// stay until its lease runs out, answering the client's retry with
    /// `idempotency_key_in_use`). So the order is placed and the key done,
    /// or nothing is and the key released, and the retry gets the stored
    /// answer. Every way of placing an order (`POST /orders`, a cart's
    /// checkout) goes through here.
    #[tracing::instrument(level = "debug", skip(self, key, render))]
    pub async fn place_order(
        &self,
        customer_id: &CustomerId,
        source: OrderSource<'_>,
        key: Option<&IdempotencyKey>,
        render: Render,
    ) -> Result<Placed, PlaceOrderError> {
        let db = self.clone();
        let (customer_id, key) = (customer_id.clone(), key.cloned());
        let request = match source {
            OrderSource::Request(request) => Some(request.clone()),
            OrderSource::Cart => None,
        };
        let placement = async move {
            let source = match &request {
                Some(request) => OrderSource::Request(request),
                None => OrderSource::Cart,
            };
            db.place_order_to_the_end(&customer_id, source, key.as_ref(), render)
                .await
        };
        match self.placements.spawn(placement.in_current_span()).await {
            Ok(placed) => placed,
            Err(error) => match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // Only when the runtime shuts down past the drain
                // (`serve.rs` waits for placements): a lease left behind
                // runs out as after a crash.
                Err(_) => Err(PlaceOrderError::Db(sqlx::Error::PoolClosed)),
            },
        }
    }

    /// [`Db::place_order`], in its own task.
    async fn place_order_to_the_end(
        &self,
        customer_id: &CustomerId,
        source: OrderSource<'_>,
        key: Option<&IdempotencyKey>,
        render: Render,
    ) -> Result<Placed, PlaceOrderError> {
        let Some(key) = key else {
            let (order, body) = retrying("place order", || async move {
                self.place_order_once(customer_id, source, None, render)
                    .await
            })
            .await?;
            return Ok(Placed::New { order, body });
        };

        let fingerprint = source.fingerprint();
        let lease_id = new_id();
        let lease = Lease {
            key,
            lease: &lease_id,
        };
        match self.claim_key(customer_id, lease, &fingerprint).await {
            Ok(Claim::Ours) => {}
            Ok(Claim::Replay { status, body }) => return Ok(Placed::Replayed { status, body }),
            Err(error) => {
                // The claim may have committed before the connection broke.
                if matches!(error, PlaceOrderError::Db(_)) {
                    self.release_key(customer_id, lease).await;
                }
                return Err(error);
            }
        }

        // Released if this task stops before the key is done or released
        // below (a panic): never left claimed by a request that no longer
        // runs.
        let claim = ClaimGuard {
            db: self.clone(),
            customer_id: customer_id.clone(),
            key: key.clone(),
            lease: lease_id.clone(),
            armed: true,
        };
        let placed = retrying("place order", || async move {
            self.place_order_once(customer_id, source, Some(lease), render)
                .await
        })
        .await;
        claim.disarm();
        match placed {
            Ok((order, body)) => Ok(Placed::New { order, body }),
            // The lease ran out and another request took the key over, or
            // finished with it: answer as if we had arrived second.
            Err(PlaceOrderError::KeyInUse) => match self.read_key(customer_id, key).await? {
                Some(row) if row.request_hash == fingerprint => match row.replay() {
                    Some((status, body)) => Ok(Placed::Replayed { status, body }),
                    None => Err(PlaceOrderError::KeyInUse),
                },
                _ => Err(PlaceOrderError::KeyInUse),
            },
            // Nothing was written (a 4xx, or the transaction never
            // committed): the key is free again. If the commit did happen
            // and only its acknowledgement was lost, the row is `done` and
            // the release leaves it alone.
            Err(error) => {
                self.release_key(customer_id, lease).await;
                Err(error)
            }
        }
    }

    /// Step 1: makes the key ours, or says why not.
    async fn claim_key(
        &self,
        customer_id: &CustomerId,
        lease: Lease<'_>,
        fingerprint: &str,
    ) -> Result<Claim, PlaceOrderError> {
        // A few rounds, because the row may be released or taken over
        // between our insert and our read.
        for _ in 0..3 {
            let now = self.now_micros();
            let inserted = retrying("claim idempotency key", || async move {
                sqlx::query(
                    "INSERT INTO idempotency_keys \
                     (customer_id, idempotency_key, request_hash, status, lease_id, lease_expires_at, created_at) \
                     VALUES ($1, $2, $3, 'in_flight', $4, $5, $6) \
                     ON CONFLICT (customer_id, idempotency_key) DO NOTHING",
                )
                .bind(customer_id.clone())
                .bind(lease.key.as_str().to_owned())
                .bind(fingerprint.to_owned())
                .bind(lease.lease.to_owned())
                .bind(now + lease_micros())
                .bind(now)
                .execute(self.writer())
                .await
            })
            .await?
            .rows_affected();
            if inserted == 1 {
                return Ok(Claim::Ours);
            }
            let Some(row) = self.read_key(customer_id, lease.key).await? else {
                continue;
            };
            // A different request is refused whatever state the key is in.
            if row.request_hash != fingerprint {
                return Err(PlaceOrderError::KeyReused);
            }
            if let Some((status, body)) = row.replay() {
                return Ok(Claim::Replay { status, body });
            }
            if row.lease_expires_at.is_some_and(|expires| expires > now) {
                return Err(PlaceOrderError::KeyInUse);
            }
            // The first request's server died mid-request (its lease ran
            // out): take the key over, unless someone else just did.
            let taken = retrying("take over idempotency key", || {
                let old_lease = row.lease_id.clone();
                async move {
                    sqlx::query(
                        "UPDATE idempotency_keys SET lease_id = $3, lease_expires_at = $4 \
                         WHERE customer_id = $1 AND idempotency_key = $2 AND status = 'in_flight' AND lease_id = $5",
                    )
                    .bind(customer_id.clone())
                    .bind(lease.key.as_str().to_owned())
                    .bind(lease.lease.to_owned())
                    .bind(now + lease_micros())
                    .bind(old_lease)
                    .execute(self.writer())
                    .await
                }
            })
            .await?
            .rows_affected();
            if taken == 1 {
                return Ok(Claim::Ours);
            }
        }
        Err(PlaceOrderError::KeyInUse)
    }

    async fn read_key(
        &self,
        customer_id: &CustomerId,
        key: &IdempotencyKey,
    ) -> Result<Option<KeyRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT request_hash, status, lease_id, lease_expires_at, response_status, response_body \
             FROM idempotency_keys WHERE customer_id = $1 AND idempotency_key = $2",
        )
        .bind(customer_id.clone())
        .bind(key.as_str().to_owned())
        .fetch_optional(self.reader())
        .await
    }

    /// Step 3: frees a key whose request changed nothing. Deleting by lease
    /// is safe to repeat, so a broken connection is retried too; if it still
    /// fails the lease runs out on its own.
    async fn release_key(&self, customer_id: &CustomerId, lease: Lease<'_>) {
        let released = retrying_if(
            "release idempotency key",
            is_contention_or_disconnect,
            || async move {
                sqlx::query(
                    "DELETE FROM idempotency_keys \
                     WHERE customer_id = $1 AND idempotency_key = $2 AND status = 'in_flight' AND lease_id = $3",
                )
                .bind(customer_id.clone())
                .bind(lease.key.as_str().to_owned())
                .bind(lease.lease.to_owned())
                .execute(self.writer())
                .await
            },
        )
        .await;
        if let Err(error) = released {
            tracing::warn!(%error, "an idempotency key could not be released; its lease will run out");
        }
    }

    /// Step 2, one try. Lines are taken in product-id order, whatever order
    /// the customer sent, so two orders for the same products always lock
    /// rows in the same order and cannot deadlock each other.
    async fn place_order_once(
        &self,
        customer_id: &CustomerId,
        source: OrderSource<'_>,
        lease: Option<Lease<'_>>,
        render: Render,
    ) -> Result<(Order, String), PlaceOrderError> {
        let created_at = self.now_micros();
        let mut tx = self.begin_write().await?;
        // A cart is read, and locked, in the order's own transaction: the
        // order holds exactly the lines it empties.
        let (request, cart) = match source {
            OrderSource::Request(request) => (Cow::Borrowed(request), None),
            OrderSource::Cart => {
                let owner = CartOwner::Customer(customer_id.clone());
                let cart_id = touch_cart(&mut tx, &owner, created_at).await?;
                let lines = cart_order_lines(&mut tx, &cart_id).await?;
                if lines.is_empty() {
                    return Err(PlaceOrderError::CartEmpty);
                }
                (Cow::Owned(OrderRequest { lines }), Some(cart_id))
            }
        };
        let mut by_product: Vec<(usize, &OrderLine)> = request.lines.iter().enumerate().collect();
        by_product.sort_by(|a, b| a.1.product_id.cmp(&b.1.product_id));

        let mut items: Vec<Option<OrderItem>> = vec![None; request.lines.len()];
        let mut currency: Option<String> = None;
        for (line, wanted) in by_product {
            // The conditional update is the oversell guard: it succeeds only
            // while enough stock is left, and the row lock it takes makes a
            // concurrent order wait and re-check.
            let updated: Option<PricedProduct> = sqlx::query_as(
                "UPDATE products SET stock = stock - $1, updated_at = $3 WHERE id = $2 AND stock >= $1 \
                 RETURNING sku, name, price_amount, currency",
            )
            .bind(wanted.quantity)
            .bind(wanted.product_id.clone())
            .bind(created_at)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(product) = updated else {
                let exists: Option<String> =
                    sqlx::query_scalar("SELECT id FROM products WHERE id = $1")
                        .bind(wanted.product_id.clone())
                        .fetch_optional(&mut *tx)
                        .await?;
                return Err(match exists {
                    Some(_) => PlaceOrderError::InsufficientStock {
                        line,
                        product_id: wanted.product_id.clone(),
                    },
                    None => PlaceOrderError::UnknownProduct { line },
                });
            };
            match &currency {
                Some(first) if *first != product.currency => {
                    return Err(PlaceOrderError::MixedCurrencies);
                }
                Some(_) => {}
                None => currency = Some(product.currency),
            }
            items[line] = Some(OrderItem {
                product_id: wanted.product_id.clone(),
                sku: product.sku,
                name: product.name,
                quantity: wanted.quantity,
                unit_price: product.price_amount,
            });
        }
        let items: Vec<OrderItem> = items
            .into_iter()
            .map(|item| item.expect("every line was filled"))
            .collect();
        let total = items
            .iter()
            .try_fold(0i64, |sum, item| {
                item.unit_price
                    .checked_mul(item.quantity)
                    .and_then(|line| sum.checked_add(line))
            })
            .filter(|total| *total <= MAX_SAFE_AMOUNT)
            .ok_or(PlaceOrderError::TotalTooLarge)?;
        let currency = currency.expect("an order has at least one line");

        let order_id = OrderId::generate();
        sqlx::query(
            "INSERT INTO orders (id, customer_id, status, total_amount, currency, created_at, updated_at) \
             VALUES ($1, $2, 'placed', $3, $4, $5, $5)",
        )
        .bind(order_id.clone())
        .bind(customer_id.clone())
        .bind(total)
        .bind(currency.clone())
        .bind(created_at)
        .execute(&mut *tx)
        .await?;
        for (line_no, item) in items.iter().enumerate() {
            sqlx::query(
                "INSERT INTO order_items (order_id, line_no, product_id, sku, name, quantity, unit_price) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(order_id.clone())
            .bind(line_no as i64)
            .bind(item.product_id.clone())
            .bind(item.sku.clone())
            .bind(item.name.clone())
            .bind(item.quantity)
            .bind(item.unit_price)
            .execute(&mut *tx)
            .await?;
        }
        let order = Order {
            id: order_id.clone(),
            status: "placed".to_owned(),
            items,
            total_amount: total,
            currency,
            created_at: from_micros(created_at),
        };
        let body = render(&order);
        let data = crate::http::admin::orders::CustomerOrder {
            order: crate::responses::Order::from(order.clone()),
            customer_id: customer_id.clone(),
        };
        self.raise_webhook(&mut tx, EventType::OrderPlaced, &data)
            .await?;
        if let Some(cart_id) = cart {
            empty_cart(&mut tx, &cart_id).await?;
        }
        if let Some(lease) = lease {
            // Only while the lease is ours: if it ran out and another request
            // took the key, this order must not happen (that one places it).
            let done = sqlx::query(
                "UPDATE idempotency_keys SET status = 'done', response_status = 201, response_body = $3, \
                 order_id = $4, completed_at = $5, lease_id = NULL, lease_expires_at = NULL \
                 WHERE customer_id = $1 AND idempotency_key = $2 AND status = 'in_flight' AND lease_id = $6",
            )
            .bind(customer_id.clone())
            .bind(lease.key.as_str().to_owned())
            .bind(body.clone())
            .bind(order_id)
            .bind(created_at)
            .bind(lease.lease.to_owned())
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Err(PlaceOrderError::KeyInUse);
            }
        }
        tx.commit().await?;
        // Stock changed: catalogue reads on this process see it at once.
        self.announce(&Topic::Catalog);
        self.orders_changed(customer_id);
        Ok((order, body))
    }

    /// Cancels an order and puts its units back in stock, in one
    /// transaction with its audit event. An order already cancelled comes
    /// back as it is and nothing changes, so a retried cancellation is safe.
    /// `None`: no order has this id.
    #[tracing::instrument(level = "debug", skip(self, audit))]
    pub async fn cancel_order(
        &self,
        order_id: &OrderId,
        audit: &Audit,
    ) -> Result<Option<Order>, sqlx::Error> {
        let cancelled = retrying("cancel order", || async move {
            self.cancel_order_once(order_id, audit).await
        })
        .await?;
        if let Some(customer) = cancelled {
            // Stock and the order changed: this process's catalogue and the
            // customer's cached orders see it at once (other processes
            // through the products' and the order's `updated_at`).
            self.announce(&Topic::Catalog);
            self.orders_changed(&customer);
        }
        let order = sqlx::query_as(
            "SELECT id, status, total_amount, currency, created_at FROM orders WHERE id = $1",
        )
        .bind(order_id.clone())
        .fetch_optional(self.reader())
        .await?;
        let Some(order) = order else { return Ok(None) };
        Ok(self.with_items(vec![order]).await?.pop())
    }

    /// One try of [`Db::cancel_order`]; the order's customer if it
    /// cancelled the order now.
    async fn cancel_order_once(
        &self,
        order_id: &OrderId,
        audit: &Audit,
    ) -> Result<Option<CustomerId>, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let at = self.now_micros();
        // The status flips once: a second cancellation, even a concurrent
        // one, finds nothing to update and returns no stock.
        let customer: Option<CustomerId> = sqlx::query_scalar(
            "UPDATE orders SET status = 'cancelled', updated_at = $2 WHERE id = $1 AND status = 'placed' \
             RETURNING customer_id",
        )
        .bind(order_id.clone())
        .bind(at)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(customer) = customer else {
            return Ok(None);
        };
        // In product-id order, as placements lock them, so the two cannot
        // deadlock each other.
        let lines: Vec<(ProductId, i64)> = sqlx::query_as(
            "SELECT product_id, quantity FROM order_items WHERE order_id = $1 ORDER BY product_id",
        )
        .bind(order_id.clone())
        .fetch_all(&mut *tx)
        .await?;
        let mut units = 0;
        for (product_id, quantity) in &lines {
            sqlx::query("UPDATE products SET stock = stock + $1, updated_at = $3 WHERE id = $2")
                .bind(*quantity)
                .bind(product_id.clone())
                .bind(at)
                .execute(&mut *tx)
                .await?;
            units += quantity;
        }
        let event = Event {
            action: "order.cancelled",
            customer_id: Some(&customer),
            subject_id: Some(order_id.as_str()),
            detail: Some(format!("{units} units back in stock")),
            ..Event::default()
        };
        self.append_audit(&mut tx, audit, event).await?;
        let mut order: Order = sqlx::query_as(
            "SELECT id, status, total_amount, currency, created_at FROM orders WHERE id = $1",
        )
        .bind(order_id.clone())
        .fetch_one(&mut *tx)
        .await?;
        let items: Vec<OrderItemRow> = sqlx::query_as(
            "SELECT order_id, product_id, sku, name, quantity, unit_price FROM order_items \
             WHERE order_id = $1 ORDER BY line_no",
        )
        .bind(order_id.clone())
        .fetch_all(&mut *tx)
        .await?;
        order.items = items.into_iter().map(|row| row.item).collect();
        let data = crate::http::admin::orders::CustomerOrder {
            order: crate::responses::Order::from(order),
            customer_id: customer.clone(),
        };
        self.raise_webhook(&mut tx, EventType::OrderCancelled, &data)
            .await?;
        tx.commit().await?;
        Ok(Some(customer))
    }

    /// Tells this process's caches that `customer_id`'s orders changed, so
    /// the customer reads their change back at once. Every store method
    /// that writes an order (placing it, changing its status) calls this
    /// after its transaction commits, and sets the order's `updated_at` to
    /// the time of the write: that is how other processes learn of it (the
    /// change feed, `changes.rs`).
    pub(crate) fn orders_changed(&self, customer_id: &CustomerId) {
        self.announce(&Topic::Orders(Some(customer_id.clone())));
    }

    /// Deletes idempotency keys created before `cutoff`; returns how many.
    /// Callers keep keys at least [`KEY_RETENTION`].
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn prune_idempotency_keys(&self, cutoff: OffsetDateTime) -> Result<u64, sqlx::Error> {
        let done = retrying("prune idempotency keys", || async move {
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                .bind(to_micros(cutoff))
                .execute(self.writer())
                .await
        })
        .await?;
        Ok(done.rows_affected())
    }

    /// How many idempotency keys are stored: for tests and operators.
    pub async fn count_idempotency_keys(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM idempotency_keys")
            .fetch_one(self.reader())
            .await
    }

    /// One of the customer's orders; another customer's order is `None`,
    /// exactly like a missing one.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn get_order(
        &self,
        customer_id: &CustomerId,
        order_id: &OrderId,
    ) -> Result<Option<Order>, sqlx::Error> {
        let order = sqlx::query_as(
            "SELECT id, status, total_amount, currency, created_at FROM orders WHERE id = $1 AND customer_id = $2",
        )
        .bind(order_id.clone())
        .bind(customer_id.clone())
        .fetch_optional(self.reader())
        .await?;
        let Some(order) = order else { return Ok(None) };
        Ok(self.with_items(vec![order]).await?.pop())
    }

    /// The customer's orders, newest first, older than `before` (an order
    /// id). Ids grow with time, so a page never shifts when orders arrive.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn list_orders(
        &self,
        customer_id: &CustomerId,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Order>, sqlx::Error> {
        let orders = sqlx::query_as(
            "SELECT id, status, total_amount, currency, created_at FROM orders \
             WHERE customer_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(customer_id.clone())
        .bind(before.map(str::to_owned))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        self.with_items(orders).await
    }

    /// Every customer's orders, newest first, older than `before` (an order
    /// id), optionally only one customer's or of one status (`placed`,
    /// `cancelled`): each with its customer.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn list_all_orders(
        &self,
        customer_id: Option<&CustomerId>,
        status: Option<&str>,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(CustomerId, Order)>, sqlx::Error> {
        let mut conditions = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        for (column, value) in [
            ("id <", before.map(str::to_owned)),
            ("customer_id =", customer_id.map(|id| id.to_string())),
            ("status =", status.map(str::to_owned)),
        ] {
            if let Some(value) = value {
                binds.push(value);
                conditions.push(format!("{column} ${}", binds.len()));
            }
        }
        let filter_sql = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT customer_id, id, status, total_amount, currency, created_at FROM orders \
             {filter_sql} ORDER BY id DESC LIMIT ${}",
            binds.len() + 1
        );
        let mut query = sqlx::query_as::<_, CustomerOrderRow>(AssertSqlSafe(sql));
        for bind in binds {
            query = query.bind(bind);
        }
        let rows = query.bind(limit).fetch_all(self.reader()).await?;
        let (customers, orders): (Vec<CustomerId>, Vec<Order>) = rows
            .into_iter()
            .map(|row| (row.customer_id, row.order))
            .unzip();
        // `with_items` keeps the orders' order.
        let orders = self.with_items(orders).await?;
        Ok(customers.into_iter().zip(orders).collect())
    }

    async fn with_items(&self, mut orders: Vec<Order>) -> Result<Vec<Order>, sqlx::Error> {
        if orders.is_empty() {
            return Ok(orders);
        }
        let sql = format!(
            "SELECT order_id, product_id, sku, name, quantity, unit_price FROM order_items \
             WHERE order_id IN ({}) ORDER BY order_id, line_no",
            placeholders(1, orders.len())
        );
        let mut query = sqlx::query_as::<_, OrderItemRow>(AssertSqlSafe(sql));
        for order in &orders {
            query = query.bind(order.id.clone());
        }
        let mut items: HashMap<OrderId, Vec<OrderItem>> = HashMap::new();
        for row in query.fetch_all(self.reader()).await? {
            items.entry(row.order_id).or_default().push(row.item);
        }
        for order in &mut orders {
            order.items = items.remove(&order.id).unwrap_or_default();
        }
        Ok(orders)
    }

    /// Total number of orders and the stock of one product: for tests and
    /// operators checking that stock and orders agree.
    pub async fn count_orders(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM orders")
            .fetch_one(self.reader())
            .await
    }
}
