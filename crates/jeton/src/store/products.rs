//! Products and the catalogue queries.

use sqlx::{AnyPool, AssertSqlSafe, FromRow};
use time::OffsetDateTime;

use super::{
    Db,
    changes::Topic,
    columns::Micros,
    db_error::{is_contention, is_unique_violation},
    retry::{Retryable, retrying},
};
use crate::domain::{
    ids::ProductId,
    product::{MAX_STOCK, NewProduct, ProductPatch},
};

/// A product as stored. The API shows it as `responses::Product`.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Product {
    pub id: ProductId,
    pub sku: String,
    pub name: String,
    pub description: String,
    /// In minor units of `currency`.
    pub price_amount: i64,
    pub currency: String,
    pub stock: i64,
    #[sqlx(try_from = "Micros")]
    pub created_at: OffsetDateTime,
}

const COLUMNS: &str = "id, sku, name, description, price_amount, currency, stock, created_at";

#[derive(Debug, thiserror::Error)]
pub enum ProductWriteError {
    #[error("a product with this SKU exists")]
    SkuTaken,
    #[error("the stock change would take the stock below zero")]
    InsufficientStock,
    #[error("the stock change would take the stock above {MAX_STOCK}")]
    StockLimitExceeded,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl Retryable for ProductWriteError {
    fn is_retryable(&self) -> bool {
        matches!(self, ProductWriteError::Db(error) if is_contention(error))
    }
}

fn classify(error: sqlx::Error) -> ProductWriteError {
    if is_unique_violation(&error) {
        ProductWriteError::SkuTaken
    } else {
        ProductWriteError::Db(error)
    }
}

/// What the product list is filtered by.
#[derive(Debug, Clone, Default)]
pub struct ProductFilter {
    /// Case-insensitive substring of the name or SKU.
    pub q: Option<String>,
    /// `true`: only products with stock; `false`: only sold-out ones.
    pub in_stock: Option<bool>,
}

/// `%` and `_` in a search are literal characters, not wildcards.
fn like_pattern(q: &str) -> String {
    let mut pattern = String::with_capacity(q.len() + 2);
    pattern.push('%');
    for c in q.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// `INSERT` of a new product created `at`, then `tail` and the columns (so
/// `tail` may add a conflict clause before `RETURNING`).
fn insert<'q>(
    product: &'q NewProduct,
    at: i64,
    tail: &str,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let sql = format!(
        "INSERT INTO products ({COLUMNS}, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) {tail} {COLUMNS}"
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(ProductId::generate())
        .bind(&product.sku)
        .bind(&product.name)
        .bind(&product.description)
        .bind(product.price_amount)
        .bind(&product.currency)
        .bind(product.stock)
        .bind(at)
}

impl Db {
    #[tracing::instrument(level = "debug", skip_all, fields(sku = %product.sku))]
    pub async fn create_product(&self, product: &NewProduct) -> Result<Product, ProductWriteError> {
        let row = insert(product, self.now_micros(), "RETURNING")
            .fetch_one(self.writer())
            .await
            .map_err(classify)?;
        self.announce(&Topic::Catalog);
        Ok(Product::from_row(&row)?)
    }

    /// Inserts a product unless its SKU exists (for the demo catalogue).
    #[tracing::instrument(level = "debug", skip_all, fields(sku = %product.sku))]
    pub async fn create_product_if_missing(
        &self,
        product: &NewProduct,
    ) -> Result<bool, sqlx::Error> {
        let done = insert(
            product,
            self.now_micros(),
            "ON CONFLICT (sku) DO NOTHING RETURNING",
        )
        .execute(self.writer())
        .await?;
        self.announce(&Topic::Catalog);
        Ok(done.rows_affected() == 1)
    }

    /// Changes the given fields; `None` if there is no such product.
    ///
    /// A `stock_delta` is applied as `stock = stock + delta` in the same
    /// statement that checks the result stays in range, so it composes with
    /// concurrent orders (each a `stock = stock - n`) without losing any.
    #[tracing::instrument(level = "debug", skip(self, patch))]
    pub async fn update_product(
        &self,
        id: &ProductId,
        patch: &ProductPatch,
    ) -> Result<Option<Product>, ProductWriteError> {
        retrying("update product", || async move {
            self.update_product_once(id, patch).await
        })
        .await
    }

    async fn update_product_once(
        &self,
        id: &ProductId,
        patch: &ProductPatch,
    ) -> Result<Option<Product>, ProductWriteError> {
        enum Value {
            Text(String),
            Int(i64),
        }
        let mut assignments: Vec<(&str, Value)> = Vec::new();
        if let Some(sku) = &patch.sku {
            assignments.push(("sku", Value::Text(sku.clone())));
        }
        if let Some(name) = &patch.name {
            assignments.push(("name", Value::Text(name.clone())));
        }
        if let Some(description) = &patch.description {
            assignments.push(("description", Value::Text(description.clone())));
        }
        if let Some((amount, currency)) = &patch.price {
            assignments.push(("price_amount", Value::Int(*amount)));
            assignments.push(("currency", Value::Text(currency.clone())));
        }
        if let Some(stock) = patch.stock {
            assignments.push(("stock", Value::Int(stock)));
        }
        // $1 is the id, $2 the time; the changed fields follow, then the
        // stock delta if any.
        let mut sets: Vec<String> = std::iter::once("updated_at = $2".to_owned())
            .chain(
                assignments
                    .iter()
                    .enumerate()
                    .map(|(i, (column, _))| format!("{column} = ${}", i + 3)),
            )
            .collect();
        let mut condition = "id = $1".to_owned();
        if patch.stock_delta.is_some() {
            let n = assignments.len() + 3;
            sets.push(format!("stock = stock + ${n}"));
            condition.push_str(&format!(" AND stock + ${n} BETWEEN 0 AND {MAX_STOCK}"));
        }
        let sql = format!(
            "UPDATE products SET {} WHERE {condition} RETURNING {COLUMNS}",
            sets.join(", ")
        );
        let mut query = sqlx::query_as::<_, Product>(AssertSqlSafe(sql))
            .bind(id.clone())
            .bind(self.now_micros());
        for (_, value) in assignments {
            query = match value {
                Value::Text(text) => query.bind(text),
                Value::Int(int) => query.bind(int),
            };
        }
        if let Some(delta) = patch.stock_delta {
            query = query.bind(delta);
        }
        let mut tx = self.begin_write().await?;
        let updated = query.fetch_optional(&mut *tx).await.map_err(classify)?;
        let Some(product) = updated else {
            // No such product, or the delta would take the stock out of
            // range. Which bound is known from the sign: the stock is always
            // within range, so only a negative delta can go below zero and
            // only a positive one above the top. (Reading the stock again
            // would not do: on PostgreSQL it may have changed since.)
            let Some(delta) = patch.stock_delta else {
                return Ok(None);
            };
            let exists: Option<String> =
                sqlx::query_scalar("SELECT id FROM products WHERE id = $1")
                    .bind(id.clone())
                    .fetch_optional(&mut *tx)
                    .await?;
            return match exists {
                None => Ok(None),
                Some(_) if delta < 0 => Err(ProductWriteError::InsufficientStock),
                Some(_) => Err(ProductWriteError::StockLimitExceeded),
            };
        };
        tx.commit().await?;
        self.announce(&Topic::Catalog);
        Ok(Some(product))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn get_product(&self, id: &ProductId) -> Result<Option<Product>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM products WHERE id = $1");
        sqlx::query_as(AssertSqlSafe(sql))
            .bind(id.clone())
            .fetch_optional(self.reader())
            .await
    }

    /// Products after `after` (by id, which is creation order), at most
    /// `limit` of them. The search text stays out of the span: like a query
    /// string, it holds whatever a client typed.
    #[tracing::instrument(level = "debug", skip(self, filter), fields(in_stock = ?filter.in_stock))]
    pub async fn list_products(
        &self,
        filter: &ProductFilter,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Product>, sqlx::Error> {
        list_products(self.reader(), filter, after, limit).await
    }
}

async fn list_products(
    pool: &AnyPool,
    filter: &ProductFilter,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Product>, sqlx::Error> {
    let mut conditions = Vec::new();
    let mut binds = Vec::new();
    if let Some(after) = after {
        binds.push(after.to_owned());
        conditions.push(format!("id > ${}", binds.len()));
    }
    if let Some(q) = &filter.q {
        binds.push(like_pattern(q));
        let n = binds.len();
        conditions.push(format!(
            "(lower(name) LIKE ${n} ESCAPE '\\' OR lower(sku) LIKE ${n} ESCAPE '\\')"
        ));
    }
    match filter.in_stock {
        Some(true) => conditions.push("stock > 0".to_owned()),
        Some(false) => conditions.push("stock = 0".to_owned()),
        None => {}
    }
    let filter_sql = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM products {filter_sql} ORDER BY id LIMIT ${}",
        binds.len() + 1
    );
    let mut query = sqlx::query_as(AssertSqlSafe(sql));
    for bind in binds {
        query = query.bind(bind);
    }
    query.bind(limit).fetch_all(pool).await
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn like_wildcards_are_literal() {
        assert_eq!(like_pattern("50%_Off\\"), "%50\\%\\_off\\\\%");
    }
}
