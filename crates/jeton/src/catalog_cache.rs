//! Catalogue reads from memory. Product pages and single products are kept
//! as ready-to-send JSON, keyed by the query. Any catalogue write on this
//! process (a product change, an order taking stock) empties the cache at
//! once; writes by other processes do within a second, through the change
//! feed. Listings may therefore show stock that lags by that much; placing
//! an order always checks stock in the database.

use std::{sync::OnceLock, time::Duration};

use bytes::Bytes;
use jeton_auth::cache::GenerationCache;
use metrics::Counter;

use crate::{
    domain::ids::ProductId,
    pagination::PageRequest,
    responses::{self, json},
    store::{Db, products::ProductFilter},
};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PageKey {
    q: Option<String>,
    in_stock: Option<bool>,
    after: Option<String>,
    limit: i64,
}

/// How long an entry is served if no invalidation comes: a safety net only,
/// since freshness comes from invalidation.
const TTL: Duration = Duration::from_secs(30);

const CAPACITY: usize = 10_000;

/// The same generation-tagged cache as the token verifier's: a value read
/// before an invalidation is never served after it, even if it is inserted
/// after it.
pub struct CatalogCache {
    pages: GenerationCache<PageKey, Bytes>,
    /// `None`: known not to exist.
    products: GenerationCache<ProductId, Option<Bytes>>,
    /// Hits and misses, registered on first use.
    counters: OnceLock<[Counter; 2]>,
    #[cfg(test)]
    pause: crate::load_pause::LoadPause,
}

impl Default for CatalogCache {
    fn default() -> Self {
        CatalogCache {
            pages: GenerationCache::new(CAPACITY, TTL),
            products: GenerationCache::new(CAPACITY, TTL),
            counters: OnceLock::new(),
            #[cfg(test)]
            pause: Default::default(),
        }
    }
}

impl CatalogCache {
    pub fn invalidate_all(&self) {
        self.pages.invalidate_all();
        self.products.invalidate_all();
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
        if let Some(body) = self.pages.get(&key) {
            self.count(true);
            return Ok(body);
        }
        self.count(false);
        let read_in = self.pages.generation(&key);
        // Boxed: the query's future is large, and the handler's future would
        // otherwise carry it on every request, hit or miss.
        let rows =
            Box::pin(db.list_products(filter, page.after.as_deref(), page.fetch_limit())).await?;
        let products: Vec<responses::Product> =
            rows.into_iter().map(responses::Product::from).collect();
        let body = json(&page.page(products, |product| &product.id));
        #[cfg(test)]
        self.pause.here().await;
        self.pages.insert(key, body.clone(), read_in);
        Ok(body)
    }

    /// One product as JSON, or `None` if there is no such product.
    pub async fn product(&self, db: &Db, id: &ProductId) -> Result<Option<Bytes>, sqlx::Error> {
        if let Some(body) = self.products.get(id) {
            self.count(true);
            return Ok(body);
        }
        self.count(false);
        let read_in = self.products.generation(id);
        let body = Box::pin(db.get_product(id))
            .await?
            .map(|product| json(&responses::Product::from(product)));
        #[cfg(test)]
        self.pause.here().await;
        self.products.insert(id.clone(), body.clone(), read_in);
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        domain::product::{NewProduct, ProductPatch},
        store::{DbOptions, changes::Topic},
    };

    /// A SQLite database in a directory that goes when the test ends, and
    /// a catalogue cache that its catalogue changes empty, as the server's.
    async fn catalogue() -> (tempfile::TempDir, Db, Arc<CatalogCache>) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("jeton.db").display());
        let db = Db::connect(&url, &DbOptions::default())
            .await
            .expect("a database");
        let cache = Arc::new(CatalogCache::default());
        let listening = cache.clone();
        db.on_change(move |topic| {
            if *topic == Topic::Catalog {
                listening.invalidate_all();
            }
        });
        (dir, db, cache)
    }

    fn shows(body: &Bytes, name: &str) -> bool {
        String::from_utf8_lossy(body).contains(name)
    }

    /// A product renamed between a load's database read and its insert:
    /// the load answers its own request with what it read, but the cache
    /// never serves that afterwards. Without the generation read before
    /// the load, the old name would be served until the entry expired.
    #[tokio::test]
    async fn a_load_overtaken_by_a_product_change_is_not_served_after_it() {
        let (_dir, db, cache) = catalogue().await;
        let product = db
            .create_product(&NewProduct {
                sku: "MUG".to_owned(),
                name: "Old name".to_owned(),
                description: String::new(),
                price_amount: 1000,
                currency: "EUR".to_owned(),
                stock: 5,
            })
            .await
            .expect("a product");
        let rename = |name: &str| ProductPatch {
            name: Some(name.to_owned()),
            ..ProductPatch::default()
        };
        let filter = ProductFilter::default();
        let page = PageRequest::parse(None, None).expect("the first page");

        // A page.
        let paused = cache.pause.arm();
        let loading = tokio::spawn({
            let (db, cache, filter, page) =
                (db.clone(), cache.clone(), filter.clone(), page.clone());
            async move { cache.page(&db, &filter, &page).await }
        });
        paused.wait().await; // the load has read "Old name"
        db.update_product(&product.id, &rename("New name"))
            .await
            .expect("an update")
            .expect("the product");
        paused.wait().await; // now it inserts what it read
        let answered = loading.await.expect("the load").expect("a page");
        assert!(shows(&answered, "Old name"));
        let served = cache.page(&db, &filter, &page).await.expect("a page");
        assert!(shows(&served, "New name"), "{served:?}");

        // The product itself.
        let paused = cache.pause.arm();
        let loading = tokio::spawn({
            let (db, cache, id) = (db.clone(), cache.clone(), product.id.clone());
            async move { cache.product(&db, &id).await }
        });
        paused.wait().await;
        db.update_product(&product.id, &rename("Newer name"))
            .await
            .expect("an update")
            .expect("the product");
        paused.wait().await;
        let answered = loading.await.expect("the load").expect("a product");
        assert!(shows(&answered.expect("the product"), "New name"));
        let served = cache
            .product(&db, &product.id)
            .await
            .expect("a product")
            .expect("the product");
        assert!(shows(&served, "Newer name"), "{served:?}");
    }
}
