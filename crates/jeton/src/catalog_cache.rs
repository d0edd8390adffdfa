//! Catalogue reads from memory. Product pages and single products are kept
//! as ready-to-send JSON, keyed by the query. Any catalogue write on this
//! process (a product change, an order taking stock) empties the cache at
//! once; writes by other processes do within a second, through the change
//! feed. Listings may therefore show stock that lags by that much; placing
//! an order always checks stock in the database.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use bytes::Bytes;
use moka::sync::Cache;

use crate::{
    http::pagination::PageRequest,
    store::{
        Db,
        products::{Product, ProductFilter},
    },
};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PageKey {
    q: Option<String>,
    in_stock: Option<bool>,
    after: Option<String>,
    limit: i64,
}

pub struct CatalogCache {
    pages: Cache<PageKey, Bytes>,
    /// `None`: known not to exist.
    products: Cache<String, Option<Bytes>>,
    generation: AtomicU64,
}

impl Default for CatalogCache {
    fn default() -> Self {
        // The TTL is a safety net only; freshness comes from invalidation.
        const CAPACITY: u64 = 10_000;
        const TTL: Duration = Duration::from_secs(30);
        CatalogCache {
            pages: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(TTL)
                .build(),
            products: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(TTL)
                .build(),
            generation: AtomicU64::new(0),
        }
    }
}

fn json<T: serde::Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("products serialize"))
}

impl CatalogCache {
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.pages.invalidate_all();
        self.products.invalidate_all();
    }

    fn count(result: &'static str) {
        metrics::counter!("jeton_catalog_cache_total", "result" => result).increment(1);
    }

    /// A page of products as JSON (`{data, next_cursor}`).
    pub async fn page(
        &self,
        db: &Db,
        filter: &ProductFilter,
        page: &PageRequest,
    ) -> Result<Bytes, sqlx::Error> {
        let key = PageKey {
            q: filter.q.clone(),
            in_stock: filter.in_stock,
            after: page.after.clone(),
            limit: page.limit,
        };
        if let Some(body) = self.pages.get(&key) {
            Self::count("hit");
            return Ok(body);
        }
        Self::count("miss");
        let generation = self.generation.load(Ordering::SeqCst);
        let rows = db
            .list_products(filter, page.after.as_deref(), page.fetch_limit())
            .await?;
        let body = json(&page.page(rows, |product: &Product| &product.id));
        // Not if a write overtook the read: it would cache what it replaced.
        if self.generation.load(Ordering::SeqCst) == generation {
            self.pages.insert(key, body.clone());
        }
        Ok(body)
    }

    /// One product as JSON, or `None` if there is no such product.
    pub async fn product(&self, db: &Db, id: &str) -> Result<Option<Bytes>, sqlx::Error> {
        if let Some(body) = self.products.get(id) {
            Self::count("hit");
            return Ok(body);
        }
        Self::count("miss");
        let generation = self.generation.load(Ordering::SeqCst);
        let body = db.get_product(id).await?.as_ref().map(json);
        if self.generation.load(Ordering::SeqCst) == generation {
            self.products.insert(id.to_owned(), body.clone());
        }
        Ok(body)
    }
}
