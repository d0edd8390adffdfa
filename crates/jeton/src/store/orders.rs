//! Where an order is placed: one write transaction that decrements stock
//! with a conditional update per line and records the order, or changes
//! nothing at all.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::{AssertSqlSafe, Row, any::AnyRow};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{Db, placeholders};
use crate::domain::{
    ids::new_id,
    money::Money,
    order::OrderRequest,
    time::{from_micros, now_micros},
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OrderItem {
    pub product_id: String,
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    /// Price of one unit when the order was placed, in minor units of the
    /// order's currency.
    pub unit_price: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Order {
    pub id: String,
    /// Always `placed` for now.
    pub status: String,
    pub items: Vec<OrderItem>,
    pub total: Money,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, thiserror::Error)]
pub enum PlaceOrderError {
    #[error("no product has the id of line {line}")]
    UnknownProduct { line: usize },
    #[error("not enough stock for the product of line {line}")]
    InsufficientStock { line: usize, product_id: String },
    #[error("all lines of an order must be in one currency")]
    MixedCurrencies,
    #[error("the order total is too large")]
    TotalTooLarge,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

fn order_from_row(row: &AnyRow) -> Result<Order, sqlx::Error> {
    Ok(Order {
        id: row.try_get("id")?,
        status: row.try_get("status")?,
        items: Vec::new(),
        total: Money {
            amount: row.try_get("total_amount")?,
            currency: row.try_get("currency")?,
        },
        created_at: from_micros(row.try_get("created_at")?),
    })
}

impl Db {
    /// Places an order for a customer. Lines are taken in product-id order,
    /// whatever order the customer sent, so two orders for the same products
    /// always lock rows in the same order and cannot deadlock each other.
    pub async fn place_order(
        &self,
        customer_id: &str,
        request: &OrderRequest,
    ) -> Result<Order, PlaceOrderError> {
        let mut by_product: Vec<(usize, &crate::domain::order::OrderLine)> =
            request.lines.iter().enumerate().collect();
        by_product.sort_by(|a, b| a.1.product_id.cmp(&b.1.product_id));

        let created_at = now_micros();
        let mut tx = self.begin_write().await?;
        let mut items: Vec<Option<OrderItem>> = vec![None; request.lines.len()];
        let mut currency: Option<String> = None;
        for (line, wanted) in by_product {
            // The conditional update is the oversell guard: it succeeds only
            // while enough stock is left, and the row lock it takes makes a
            // concurrent order wait and re-check.
            let updated = sqlx::query(
                "UPDATE products SET stock = stock - $1, updated_at = $3 WHERE id = $2 AND stock >= $1 \
                 RETURNING sku, name, price_amount, currency",
            )
            .bind(wanted.quantity)
            .bind(wanted.product_id.clone())
            .bind(created_at)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = updated else {
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
            let line_currency: String = row.try_get("currency")?;
            match &currency {
                Some(first) if *first != line_currency => {
                    return Err(PlaceOrderError::MixedCurrencies);
                }
                Some(_) => {}
                None => currency = Some(line_currency),
            }
            items[line] = Some(OrderItem {
                product_id: wanted.product_id.clone(),
                sku: row.try_get("sku")?,
                name: row.try_get("name")?,
                quantity: wanted.quantity,
                unit_price: row.try_get("price_amount")?,
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
            .ok_or(PlaceOrderError::TotalTooLarge)?;
        let currency = currency.expect("an order has at least one line");

        let order_id = new_id();
        sqlx::query(
            "INSERT INTO orders (id, customer_id, status, total_amount, currency, created_at) VALUES ($1, $2, 'placed', $3, $4, $5)",
        )
        .bind(order_id.clone())
        .bind(customer_id.to_owned())
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
        tx.commit().await?;
        Ok(Order {
            id: order_id,
            status: "placed".to_owned(),
            items,
            total: Money {
                amount: total,
                currency,
            },
            created_at: from_micros(created_at),
        })
    }

    /// One of the customer's orders; another customer's order is `None`,
    /// exactly like a missing one.
    pub async fn get_order(
        &self,
        customer_id: &str,
        order_id: &str,
    ) -> Result<Option<Order>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT id, status, total_amount, currency, created_at FROM orders WHERE id = $1 AND customer_id = $2",
        )
        .bind(order_id.to_owned())
        .bind(customer_id.to_owned())
        .fetch_optional(self.reader())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(self.with_items(vec![order_from_row(&row)?]).await?.pop())
    }

    /// The customer's orders, newest first, older than `before` (an order
    /// id). Ids grow with time, so a page never shifts when orders arrive.
    pub async fn list_orders(
        &self,
        customer_id: &str,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Order>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, status, total_amount, currency, created_at FROM orders \
             WHERE customer_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(customer_id.to_owned())
        .bind(before.map(str::to_owned))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        let orders = rows
            .iter()
            .map(order_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        self.with_items(orders).await
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
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for order in &orders {
            query = query.bind(order.id.clone());
        }
        let mut items: HashMap<String, Vec<OrderItem>> = HashMap::new();
        for row in query.fetch_all(self.reader()).await? {
            items
                .entry(row.try_get("order_id")?)
                .or_default()
                .push(OrderItem {
                    product_id: row.try_get("product_id")?,
                    sku: row.try_get("sku")?,
                    name: row.try_get("name")?,
                    quantity: row.try_get("quantity")?,
                    unit_price: row.try_get("unit_price")?,
                });
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
