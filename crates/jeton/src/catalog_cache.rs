//! Catalogue reads from memory. Product pages and single products are kept
//! as ready-to-send JSON, keyed by the query. Any catalogue write on this
//! process (a product change, an order taking stock) empties the cache at
//! once; writes by other processes do within a second, through the change
//! feed. Listings may therefore show stock that lags by that much; placing
//! an order always checks stock in the database.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use metrics::Counter;
use quick_cache::sync::Cache;

use crate::{
    api,
    domain::ids::ProductId,
    pagination::PageRequest,
    store::{Db, products::ProductFilter},
};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PageKey {
    q: Option<String>,
    in_stock: Option<bool>,
    after: Option<String>,
    limit: i64,
}

/// Entries carry the time they must be read again: a safety net only, since
/// freshness comes from invalidation.
const TTL: Duration = Duration::from_secs(30);

/// `quick_cache`, like the token verifier's: a hit takes no lock and
/// allocates nothing (moka records every read for its eviction policy).
pub struct CatalogCache {
    pages: Cache<PageKey, (Instant, Bytes)>,
    /// `None`: known not to exist.
    products: Cache<ProductId, (Instant, Option<Bytes>)>,
    generation: AtomicU64,
    /// Hits and misses, registered on first use.
    counters: OnceLock<[Counter; 2]>,
}

impl Default for CatalogCache {
    fn default() -> Self {
        const CAPACITY: usize = 10_000;
        CatalogCache {
            pages: Cache::new(CAPACITY),
            products: Cache::new(CAPACITY),
            generation: AtomicU64::new(0),
            counters: OnceLock::new(),
        }
    }
}

fn json<T: serde::Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("products serialize"))
}

impl CatalogCache {
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.pages.clear();
        self.products.clear();
    }

    fn count(&self, hit: bool) {
        let [hits, misses] = self.counters.get_or_init(|| {
            ["hit", "miss"]
                .map(|result| metrics::counter!("jeton_catalog_cache_total", "result" => result))
        });
        if hit { hits } else { misses }.increment(1);
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
        if let Some((_, body)) = self
            .pages
            .get(&key)
            .filter(|(until, _)| *until > Instant::now())
        {
            self.count(true);
            return Ok(body);
        }
        self.count(false);
        let generation = self.generation.load(Ordering::SeqCst);
        // Boxed: the query's future is large, and the handler's future would
        // otherwise carry it on every request, hit or miss.
        let rows =
            Box::pin(db.list_products(filter, page.after.as_deref(), page.fetch_limit())).await?;
        let products: Vec<api::Product> = rows.into_iter().map(api::Product::from).collect();
        let body = json(&page.page(products, |product| &product.id));
        // Not if a write overtook the read: it would cache what it replaced.
        if self.generation.load(Ordering::SeqCst) == generation {
            self.pages.insert(key, (Instant::now() + TTL, body.clone()));
        }
        Ok(body)
    }

    /// One product as JSON, or `None` if there is no such product.
    pub async fn product(&self, db: &Db, id: &ProductId) -> Result<Option<Bytes>, sqlx::Error> {
        if let Some((_, body)) = self
            .products
            .get(id)
            .filter(|(until, _)| *until > Instant::now())
        {
            self.count(true);
            return Ok(body);
        }
        self.count(false);
        let generation = self.generation.load(Ordering::SeqCst);
        let body = Box::pin(db.get_product(id))
            .await?
            .map(|product| json(&api::Product::from(product)));
        if self.generation.load(Ordering::SeqCst) == generation {
            self.products
                .insert(id.clone(), (Instant::now() + TTL, body.clone()));
        }
        Ok(body)
    }
}
