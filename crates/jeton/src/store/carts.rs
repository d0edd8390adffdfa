//! Where a cart is kept: one per customer and one per guest token (API.md
//! §16), reached only through its owner, never by an id. Lines hold a
//! product and a quantity; price, name and availability are read live from
//! the product each time the cart is shown. Checking a cart out is an order
//! placement (`store::orders`) that also empties the cart.

use sqlx::{AnyConnection, AssertSqlSafe, FromRow};
use time::OffsetDateTime;

use super::{
    Db,
    columns::MaybeMicros,
    db_error::is_contention,
    guests::{find_live_guest, revoke_guest},
    retry::{Retryable, retrying},
};
use crate::domain::{
    ids::{ClientId, CustomerId, GuestId, ProductId, new_id},
    money::MAX_SAFE_AMOUNT,
    order::{MAX_LINES, OrderLine},
};

/// Whose cart: the only way to reach one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CartOwner {
    Customer(CustomerId),
    /// A guest token, by its id in the credential store.
    Guest(GuestId),
}

impl CartOwner {
    /// The `carts` column that names this owner.
    fn column(&self) -> &'static str {
        match self {
            CartOwner::Customer(_) => "customer_id",
            CartOwner::Guest(_) => "guest_id",
        }
    }

    fn id(&self) -> String {
        match self {
            CartOwner::Customer(id) => id.to_string(),
            CartOwner::Guest(id) => id.to_string(),
        }
    }
}

/// A line as shown: the product as it is now.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct CartLine {
    pub product_id: ProductId,
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    /// The product's price now, in minor units of `currency`.
    pub unit_price: i64,
    pub currency: String,
    /// The product's stock now.
    pub stock: i64,
}

/// A cart as shown. A cart nobody has written to yet is empty, with no
/// `updated_at`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cart {
    pub lines: Vec<CartLine>,
    pub updated_at: Option<OffsetDateTime>,
}

#[derive(FromRow)]
struct CartRow {
    #[sqlx(try_from = "MaybeMicros")]
    updated_at: Option<OffsetDateTime>,
}

#[derive(Debug, thiserror::Error)]
pub enum CartError {
    #[error("no product has this id")]
    UnknownProduct,
    #[error("a cart holds at most {MAX_LINES} lines")]
    TooManyLines,
    #[error("the products of a cart must share one currency")]
    MixedCurrencies,
    #[error("the cart's total would be too large")]
    TotalTooLarge,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl Retryable for CartError {
    fn is_retryable(&self) -> bool {
        matches!(self, CartError::Db(error) if is_contention(error))
    }
}

/// The cart's lines with their products, in the order they were added.
fn lines_sql(owner: &CartOwner) -> String {
    format!(
        "SELECT i.product_id, p.sku, p.name, i.quantity, p.price_amount AS unit_price, p.currency, p.stock \
         FROM carts c JOIN cart_items i ON i.cart_id = c.id JOIN products p ON p.id = i.product_id \
         WHERE c.{} = $1 ORDER BY i.position",
        owner.column()
    )
}

async fn read_cart(conn: &mut AnyConnection, owner: &CartOwner) -> Result<Cart, sqlx::Error> {
    let row: Option<CartRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT updated_at FROM carts WHERE {} = $1",
        owner.column()
    )))
    .bind(owner.id())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(Cart::default());
    };
    let lines = sqlx::query_as(AssertSqlSafe(lines_sql(owner)))
        .bind(owner.id())
        .fetch_all(&mut *conn)
        .await?;
    Ok(Cart {
        lines,
        updated_at: row.updated_at,
    })
}

/// The owner's cart row, made if need be, with its `updated_at` moved to
/// `now`. On PostgreSQL the update locks the row, so two changes to one
/// cart (two tabs, or a merge and a change) take turns and the limits on
/// lines and currency hold.
pub(crate) async fn touch_cart(
    tx: &mut AnyConnection,
    owner: &CartOwner,
    now: i64,
) -> Result<String, sqlx::Error> {
    let column = owner.column();
    sqlx::query_scalar(AssertSqlSafe(format!(
        "INSERT INTO carts (id, {column}, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT ({column}) DO UPDATE SET updated_at = excluded.updated_at RETURNING id"
    )))
    .bind(new_id())
    .bind(owner.id())
    .bind(now)
    .fetch_one(&mut *tx)
    .await
}

/// The lines of a locked cart, for a checkout: product and quantity, in the
/// order they were added.
pub(crate) async fn cart_order_lines(
    tx: &mut AnyConnection,
    cart_id: &str,
) -> Result<Vec<OrderLine>, sqlx::Error> {
    let lines: Vec<(ProductId, i64)> = sqlx::query_as(
        "SELECT product_id, quantity FROM cart_items WHERE cart_id = $1 ORDER BY position",
    )
    .bind(cart_id.to_owned())
    .fetch_all(&mut *tx)
    .await?;
    Ok(lines
        .into_iter()
        .map(|(product_id, quantity)| OrderLine {
            product_id,
            quantity,
        })
        .collect())
}

pub(crate) async fn empty_cart(tx: &mut AnyConnection, cart_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM cart_items WHERE cart_id = $1")
        .bind(cart_id.to_owned())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Sets a line's quantity; a new line goes after the others.
async fn upsert_line(
    tx: &mut AnyConnection,
    cart_id: &str,
    product_id: &ProductId,
    quantity: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO cart_items (cart_id, product_id, quantity, position) \
         VALUES ($1, $2, $3, (SELECT COALESCE(MAX(position), 0) + 1 FROM cart_items WHERE cart_id = $1)) \
         ON CONFLICT (cart_id, product_id) DO UPDATE SET quantity = excluded.quantity",
    )
    .bind(cart_id.to_owned())
    .bind(product_id.clone())
    .bind(quantity)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Whether a cart of `lines` is within the limits: lines, one currency, a
/// total exact in JavaScript.
fn check_limits(lines: &[CartLine]) -> Result<(), CartError> {
    if lines.len() > MAX_LINES {
        return Err(CartError::TooManyLines);
    }
    if lines
        .windows(2)
        .any(|pair| pair[0].currency != pair[1].currency)
    {
        return Err(CartError::MixedCurrencies);
    }
    exact_total(lines)
        .map(|_| ())
        .ok_or(CartError::TotalTooLarge)
}

/// The sum of the lines in minor units, if it is exact in JavaScript (at
/// most [`MAX_SAFE_AMOUNT`]); the caller has checked the currency.
fn exact_total(lines: &[CartLine]) -> Option<i64> {
    lines
        .iter()
        .try_fold(0i64, |sum, line| {
            line.unit_price
                .checked_mul(line.quantity)
                .and_then(|amount| sum.checked_add(amount))
        })
        .filter(|total| *total <= MAX_SAFE_AMOUNT)
}

impl Cart {
    /// The cart's total and its currency; `None` for an empty cart, and
    /// for one that a product's later change of price or currency took
    /// past the limits every write checks (not shown rather than shown
    /// wrong).
    pub fn total(&self) -> Option<(i64, &str)> {
        let currency = &self.lines.first()?.currency;
        if self.lines.iter().any(|line| line.currency != *currency) {
            return None;
        }
        Some((exact_total(&self.lines)?, currency))
    }
}

impl Db {
    /// The owner's cart as it is now. Changes nothing.
    pub async fn cart(&self, owner: &CartOwner) -> Result<Cart, sqlx::Error> {
        read_cart(&mut *self.reader().acquire().await?, owner).await
    }

    /// Sets how many units of a product the cart holds (0 removes the
    /// line), and answers the cart. The caller has checked the quantity
    /// against the per-line maximum.
    pub async fn set_cart_line(
        &self,
        owner: &CartOwner,
        product_id: &ProductId,
        quantity: i64,
    ) -> Result<Cart, CartError> {
        retrying("set cart line", || async move {
            let mut tx = self.begin_write().await?;
            let product: Option<(String, i64, String, String, i64)> = sqlx::query_as(
                "SELECT sku, price_amount, currency, name, stock FROM products WHERE id = $1",
            )
            .bind(product_id.clone())
            .fetch_optional(&mut *tx)
            .await?;
            let Some((sku, unit_price, currency, name, stock)) = product else {
                return Err(CartError::UnknownProduct);
            };
            let now = self.now_micros();
            let cart_id = touch_cart(&mut tx, owner, now).await?;
            if quantity == 0 {
                sqlx::query("DELETE FROM cart_items WHERE cart_id = $1 AND product_id = $2")
                    .bind(cart_id.clone())
                    .bind(product_id.clone())
                    .execute(&mut *tx)
                    .await?;
            } else {
                // The limits are judged on the cart as it would be.
                let mut lines = read_cart(&mut tx, owner).await?.lines;
                match lines.iter_mut().find(|line| line.product_id == *product_id) {
                    Some(line) => line.quantity = quantity,
                    None => lines.push(CartLine {
                        product_id: product_id.clone(),
                        sku,
                        name,
                        quantity,
                        unit_price,
                        currency,
                        stock,
                    }),
                }
                check_limits(&lines)?;
                upsert_line(&mut tx, &cart_id, product_id, quantity).await?;
            }
            let cart = read_cart(&mut tx, owner).await?;
            tx.commit().await?;
            Ok(cart)
        })
        .await
    }

    /// Empties the owner's cart, and answers it (empty).
    pub async fn clear_cart(&self, owner: &CartOwner) -> Result<Cart, sqlx::Error> {
        retrying("clear cart", || async move {
            let mut tx = self.begin_write().await?;
            let cart_id = touch_cart(&mut tx, owner, self.now_micros()).await?;
            empty_cart(&mut tx, &cart_id).await?;
            let cart = read_cart(&mut tx, owner).await?;
            tx.commit().await?;
            Ok(cart)
        })
        .await
    }

    /// At a guest's login or registration: if `guest_token` is a live
    /// guest token of `client` (the login's), ends it and moves its cart
    /// into the customer's, in one transaction. Whether it did; any other
    /// `guest_token` changes nothing.
    pub async fn merge_guest_cart(
        &self,
        guest_token: &str,
        client: &ClientId,
        customer: &CustomerId,
        max_units: i64,
    ) -> Result<bool, sqlx::Error> {
        retrying("merge a guest's cart", || async move {
            let mut tx = self.begin_credentials().await?;
            let Some(guest) = find_live_guest(&mut tx, guest_token).await? else {
                return Ok(false);
            };
            // Revoked first: of two logins with one guest token, only the
            // one whose revocation counts moves the cart.
            if guest.client_id != *client || !revoke_guest(&mut tx, &guest.id).await? {
                return Ok(false);
            }
            self.merge_cart_in(&mut tx, &guest.id, customer, max_units)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Moves a guest's cart into a customer's, in the caller's transaction
    /// (which also ends the guest token): quantities of a product in both
    /// add up, capped at `max_units`. The customer's cart keeps its
    /// currency and its limit of lines: a guest's line of another currency,
    /// or beyond the limit, is dropped. Nothing happens without a guest
    /// cart.
    async fn merge_cart_in(
        &self,
        tx: &mut AnyConnection,
        guest_id: &GuestId,
        customer: &CustomerId,
        max_units: i64,
    ) -> Result<(), sqlx::Error> {
        let guest = CartOwner::Guest(guest_id.clone());
        let guest_lines = read_cart(tx, &guest).await?.lines;
        if guest_lines.is_empty() {
            self.drop_guest_cart_in(tx, guest_id).await?;
            return Ok(());
        }
        let owner = CartOwner::Customer(customer.clone());
        let cart_id = touch_cart(tx, &owner, self.now_micros()).await?;
        let mut lines = read_cart(tx, &owner).await?.lines;
        for guest_line in guest_lines {
            let mut merged = lines.clone();
            match merged
                .iter_mut()
                .find(|line| line.product_id == guest_line.product_id)
            {
                Some(line) => line.quantity = (line.quantity + guest_line.quantity).min(max_units),
                None => merged.push(CartLine {
                    quantity: guest_line.quantity.min(max_units),
                    ..guest_line.clone()
                }),
            }
            if check_limits(&merged).is_err() {
                continue;
            }
            let quantity = merged
                .iter()
                .find(|line| line.product_id == guest_line.product_id)
                .map_or(0, |line| line.quantity);
            upsert_line(tx, &cart_id, &guest_line.product_id, quantity).await?;
            lines = merged;
        }
        self.drop_guest_cart_in(tx, guest_id).await
    }

    /// Removes a guest's cart, lines and all.
    async fn drop_guest_cart_in(
        &self,
        tx: &mut AnyConnection,
        guest_id: &GuestId,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM carts WHERE guest_id = $1")
            .bind(guest_id.clone())
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(product: &str, quantity: i64, unit_price: i64, currency: &str) -> CartLine {
        CartLine {
            product_id: ProductId::parse(product).expect("an id"),
            sku: "SKU".to_owned(),
            name: "A product".to_owned(),
            quantity,
            unit_price,
            currency: currency.to_owned(),
            stock: 10,
        }
    }

    const A: &str = "0190f5c4-7b1e-7d3a-9c2b-5e8f1a2b3c4d";
    const B: &str = "0190f5c4-7b1e-7d3a-9c2b-5e8f1a2b3c4e";

    #[test]
    fn a_cart_keeps_one_currency_and_an_exact_total() {
        assert!(check_limits(&[line(A, 2, 100, "EUR"), line(B, 1, 5, "EUR")]).is_ok());
        assert!(matches!(
            check_limits(&[line(A, 2, 100, "EUR"), line(B, 1, 5, "USD")]),
            Err(CartError::MixedCurrencies)
        ));
        assert!(matches!(
            check_limits(&[
                line(A, 1000, MAX_SAFE_AMOUNT / 1000, "EUR"),
                line(B, 1000, 9, "EUR")
            ]),
            Err(CartError::TotalTooLarge)
        ));
        assert!(matches!(
            check_limits(&[line(A, i64::MAX, 2, "EUR")]),
            Err(CartError::TotalTooLarge)
        ));
    }

    #[test]
    fn a_cart_holds_at_most_a_hundred_lines() {
        let lines: Vec<CartLine> = (0..=MAX_LINES)
            .map(|n| line(&format!("0190f5c4-7b1e-7d3a-9c2b-{n:012x}"), 1, 1, "EUR"))
            .collect();
        assert!(check_limits(&lines[..MAX_LINES]).is_ok());
        assert!(matches!(check_limits(&lines), Err(CartError::TooManyLines)));
    }
}
