//! The customer's own reads from memory: their profile (`GET /me`) and
//! their orders (`GET /me/orders`, `GET /me/orders/{id}`), kept per
//! customer as ready-to-send JSON after the first read.
//!
//! A change to a customer's orders (`Topic::Orders`, announced by the store
//! whenever an order is written) drops that customer's entries: at once on
//! the process that made it, so a customer who places an order lists it
//! straight away, and within a second on the others, through the change
//! feed.
//!
//! Per customer, the newest [`KEPT_ORDERS`] orders are kept, each as JSON.
//! Every page that lies within them (with the one order after it, which
//! says whether there is a next page) is built from memory, byte for byte
//! the page the database would give; a page further back is read from the
//! database. Memory is bounded by weight: see [`ORDERS_WEIGHT`] and
//! `docs/architecture.md`.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use bytes::Bytes;
use jeton_auth::cache::GenerationCache;
use metrics::Counter;

use crate::{
    domain::ids::{CustomerId, OrderId},
    pagination::{MAX_LIMIT, PageRequest, cursor},
    responses::{self, json},
    store::Db,
};

/// How many of a customer's newest orders are kept: the largest page. One
/// more is read, and kept too, to know whether there is a next page.
pub const KEPT_ORDERS: usize = MAX_LIMIT as usize;

/// The most the kept orders of all customers may weigh together: their
/// JSON's bytes, plus [`OVERHEAD`] per order and per customer. When a new
/// entry would go over, quick_cache evicts the entries read least (its
/// CLOCK-Pro policy); an entry heavier than its shard's share is not kept
/// at all, and its customer's reads go to the database.
pub const ORDERS_WEIGHT: u64 = 64 << 20;

/// At most this many profiles (each a few hundred bytes).
pub const PROFILES: usize = 50_000;

/// Bookkeeping counted per order and per customer (ids, vector slots, the
/// table's own entry), beyond the JSON.
const OVERHEAD: u64 = 64;

/// How long an entry is served if no invalidation comes: a safety net only,
/// since freshness comes from invalidation.
const TTL: Duration = Duration::from_secs(30);

/// A customer's newest orders.
struct Orders {
    /// Newest first (by id, as the database orders them): each order's id
    /// and JSON.
    newest: Vec<(OrderId, Bytes)>,
    /// Whether these are all the customer's orders (else there are
    /// [`KEPT_ORDERS`] + 1 of them, and more in the database).
    all: bool,
}

impl Orders {
    fn weight(orders: &Arc<Orders>) -> u64 {
        orders
            .newest
            .iter()
            .map(|(_, json)| json.len() as u64 + OVERHEAD)
            .sum::<u64>()
            + OVERHEAD
    }

    /// The page, if it lies within the kept orders (with the order after it,
    /// or the end of all the customer's orders).
    fn page(&self, page: &PageRequest) -> Option<Bytes> {
        let start = match &page.after {
            None => 0,
            Some(after) => self
                .newest
                .partition_point(|(id, _)| id.as_str() >= after.as_str()),
        };
        let rest = &self.newest[start..];
        let limit = usize::try_from(page.limit).ok()?;
        if rest.len() > limit {
            Some(render_page(&rest[..limit], Some(&rest[limit - 1].0)))
        } else if self.all {
            Some(render_page(rest, None))
        } else {
            None
        }
    }

    /// `Some(answer)` if the kept orders settle whether `id` is one of the
    /// customer's.
    fn order(&self, id: &OrderId) -> Option<Option<Bytes>> {
        let at = self.newest.partition_point(|(kept, _)| kept > id);
        match self.newest.get(at) {
            Some((kept, json)) if kept == id => Some(Some(json.clone())),
            // Newer than every order kept: perhaps placed through another
            // process since they were read, so the database says.
            _ if at == 0 => None,
            // Between orders kept, or older than all of them when they are
            // all the customer has: not theirs.
            _ if self.all || at < self.newest.len() => Some(None),
            _ => None,
        }
    }
}

/// `{"data":[…],"next_cursor":…}` from orders already in JSON: what
/// serializing a [`crate::pagination::Page`] of them gives.
fn render_page(orders: &[(OrderId, Bytes)], last: Option<&OrderId>) -> Bytes {
    let size = orders.iter().map(|(_, json)| json.len() + 1).sum::<usize>() + 64;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(b"{\"data\":[");
    for (n, (_, json)) in orders.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(json);
    }
    body.extend_from_slice(b"],\"next_cursor\":");
    match last {
        // Base64url: nothing to escape.
        Some(id) => {
            body.push(b'"');
            body.extend_from_slice(cursor(id.as_str()).as_bytes());
            body.push(b'"');
        }
        None => body.extend_from_slice(b"null"),
    }
    body.push(b'}');
    Bytes::from(body)
}

/// Per-customer reads, in the same generation-tagged cache as the
/// catalogue's and the token verifier's: what a load read before the
/// customer's orders changed is never served after the change.
pub struct CustomerCache {
    /// `None`: no such customer.
    profiles: GenerationCache<CustomerId, Option<Bytes>>,
    orders: GenerationCache<CustomerId, Arc<Orders>>,
    /// Hits and misses, registered on first use.
    counters: OnceLock<[Counter; 2]>,
    #[cfg(test)]
    pause: crate::load_pause::LoadPause,
}

impl Default for CustomerCache {
    fn default() -> Self {
        CustomerCache {
            profiles: GenerationCache::new(PROFILES, TTL),
            orders: GenerationCache::weighted(PROFILES, ORDERS_WEIGHT, Orders::weight, TTL),
            counters: OnceLock::new(),
            #[cfg(test)]
            pause: Default::default(),
        }
    }
}

impl CustomerCache {
    /// `customer`'s orders are no longer served from memory, until they are
    /// read again. (Their profile does not depend on them; nothing edits a
    /// profile, so profiles go only with [`CustomerCache::invalidate_all`]
    /// and their time to live.)
    pub fn customer_changed(&self, customer: &CustomerId) {
        self.orders.invalidate(customer);
    }

    /// Nobody's reads are served from memory until read again.
    pub fn invalidate_all(&self) {
        self.orders.invalidate_all();
        self.profiles.invalidate_all();
    }

    fn count(&self, hit: bool) {
        let [hits, misses] = self.counters.get_or_init(|| {
            ["hit", "miss"]
                .map(|result| metrics::counter!("jeton_customer_cache_total", "result" => result))
        });
        if hit { hits } else { misses }.increment(1);
    }

    /// The customer as JSON, or `None` if there is no such customer.
    pub async fn profile(
        &self,
        db: &Db,
        customer: &CustomerId,
    ) -> Result<Option<Bytes>, sqlx::Error> {
        if let Some(body) = self.profiles.get(customer) {
            self.count(true);
            return Ok(body);
        }
        self.count(false);
        let read_in = self.profiles.generation(customer);
        let body = Box::pin(db.get_customer(customer))
            .await?
            .map(|customer| json(&responses::Customer::from(customer)));
        self.profiles
            .insert(customer.clone(), body.clone(), read_in);
        Ok(body)
    }

    /// The customer's newest orders, from memory or the database.
    async fn newest(&self, db: &Db, customer: &CustomerId) -> Result<Arc<Orders>, sqlx::Error> {
        if let Some(orders) = self.orders.get(customer) {
            self.count(true);
            return Ok(orders);
        }
        self.count(false);
        let read_in = self.orders.generation(customer);
        let limit = i64::try_from(KEPT_ORDERS + 1).expect("a small number");
        let rows = Box::pin(db.list_orders(customer, None, limit)).await?;
        let all = rows.len() <= KEPT_ORDERS;
        let orders = Arc::new(Orders {
            newest: rows
                .into_iter()
                .map(|row| (row.id.clone(), json(&responses::Order::from(row))))
                .collect(),
            all,
        });
        #[cfg(test)]
        self.pause.here().await;
        self.orders
            .insert(customer.clone(), orders.clone(), read_in);
        Ok(orders)
    }

    /// A page of the customer's orders as JSON (`{data, next_cursor}`),
    /// newest first.
    pub async fn orders_page(
        &self,
        db: &Db,
        customer: &CustomerId,
        page: &PageRequest,
    ) -> Result<Bytes, sqlx::Error> {
        if let Some(body) = self.newest(db, customer).await?.page(page) {
            return Ok(body);
        }
        // Further back than the orders kept.
        let rows =
            Box::pin(db.list_orders(customer, page.after.as_deref(), page.fetch_limit())).await?;
        let orders: Vec<responses::Order> = rows.into_iter().map(responses::Order::from).collect();
        Ok(json(&page.page(orders, |order| &order.id)))
    }

    /// One of the customer's orders as JSON; `None` if there is no such
    /// order of theirs.
    pub async fn order(
        &self,
        db: &Db,
        customer: &CustomerId,
        id: &OrderId,
    ) -> Result<Option<Bytes>, sqlx::Error> {
        if let Some(answer) = self.newest(db, customer).await?.order(id) {
            return Ok(answer);
        }
        Ok(Box::pin(db.get_order(customer, id))
            .await?
            .map(|order| json(&responses::Order::from(order))))
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::{
        domain::{
            order::{OrderLine, OrderRequest},
            product::NewProduct,
        },
        pagination::Page,
        store::{DbOptions, changes::Topic, orders::OrderSource},
    };

    /// A customer with a product to order, on a SQLite database in a
    /// directory that goes when the test ends, and a customer cache that
    /// order changes empty, as the server's.
    struct Shop {
        _dir: tempfile::TempDir,
        db: Db,
        cache: Arc<CustomerCache>,
        customer: CustomerId,
        mug: crate::domain::ids::ProductId,
    }

    async fn shop() -> Shop {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("jeton.db").display());
        let db = Db::connect(&url, &DbOptions::default())
            .await
            .expect("a database");
        let cache = Arc::new(CustomerCache::default());
        let listening = cache.clone();
        db.on_change(move |topic| match topic {
            Topic::Orders(Some(customer)) => listening.customer_changed(customer),
            Topic::Orders(None) => listening.invalidate_all(),
            _ => {}
        });
        let customer = db
            .create_customer("ann@example.com", "Ann", "not a real hash")
            .await
            .expect("a customer")
            .id;
        let mug = db
            .create_product(&NewProduct {
                sku: "MUG".to_owned(),
                name: "Mug".to_owned(),
                description: String::new(),
                price_amount: 1000,
                currency: "EUR".to_owned(),
                stock: 1000,
            })
            .await
            .expect("a product")
            .id;
        Shop {
            _dir: dir,
            db,
            cache,
            customer,
            mug,
        }
    }

    impl Shop {
        async fn order(&self) -> OrderId {
            let request = OrderRequest {
                lines: vec![OrderLine {
                    product_id: self.mug.clone(),
                    quantity: 1,
                }],
            };
            match self
                .db
                .place_order(
                    &self.customer,
                    OrderSource::Request(&request),
                    None,
                    responses::Order::render,
                )
                .await
                .expect("an order")
            {
                crate::store::orders::Placed::New { order, .. } => order.id,
                replayed => panic!("not placed: {replayed:?}"),
            }
        }

        async fn listed(&self) -> usize {
            let page = PageRequest::parse(None, None).expect("the first page");
            let body = self
                .cache
                .orders_page(&self.db, &self.customer, &page)
                .await
                .expect("a page");
            let page: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            page["data"].as_array().expect("orders").len()
        }
    }

    /// An order placed between a load's database read and its insert: the
    /// load answers its own request with what it read, but the cache never
    /// serves that afterwards.
    #[tokio::test]
    async fn a_load_overtaken_by_an_order_is_not_served_after_it() {
        let shop = Arc::new(shop().await);
        shop.order().await;
        assert_eq!(shop.listed().await, 1);
        shop.cache.customer_changed(&shop.customer);

        let paused = shop.cache.pause.arm();
        let loading = tokio::spawn({
            let shop = shop.clone();
            async move { shop.listed().await }
        });
        paused.wait().await; // the load has read one order
        let placed = shop.order().await;
        paused.wait().await; // now it inserts what it read
        assert_eq!(loading.await.expect("the load"), 1);
        assert_eq!(shop.listed().await, 2);
        let found = shop
            .cache
            .order(&shop.db, &shop.customer, &placed)
            .await
            .expect("an order");
        assert!(found.is_some());
    }

    fn order(n: u8) -> responses::Order {
        responses::Order {
            id: OrderId::parse(&format!("01900000-0000-7000-8000-0000000000{n:02x}"))
                .expect("an id"),
            status: responses::OrderStatus::Placed,
            items: Vec::new(),
            total: crate::domain::money::Money {
                amount: i64::from(n),
                currency: "EUR".to_owned(),
            },
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    /// Every page of the kept orders is the page the database gives, byte
    /// for byte; and what lies past them is left to the database.
    #[test]
    fn pages_from_memory_are_the_pages_of_the_database() {
        // Newest first, as the database lists them; even numbers, so that
        // an odd one lies between two of them.
        let all: Vec<responses::Order> = (1..=7).rev().map(|n| order(2 * n)).collect();
        let as_stored = |orders: &[responses::Order]| -> Vec<(OrderId, Bytes)> {
            orders.iter().map(|o| (o.id.clone(), json(o))).collect()
        };
        for kept in [7, 5] {
            let orders = Orders {
                newest: as_stored(&all[..kept]),
                all: kept == all.len(),
            };
            for limit in 1..=8 {
                let mut after: Option<String> = None;
                loop {
                    let page = PageRequest {
                        limit,
                        after: after.clone(),
                    };
                    let rows: Vec<responses::Order> = all
                        .iter()
                        .filter(|o| after.as_deref().is_none_or(|after| o.id.as_str() < after))
                        .take(usize::try_from(limit + 1).unwrap())
                        .cloned()
                        .collect();
                    let expected: Page<responses::Order> = page.page(rows, |o| &o.id);
                    let within = after.as_deref().map_or(0, |after| {
                        all.iter().filter(|o| o.id.as_str() >= after).count()
                    }) + usize::try_from(limit).unwrap()
                        < kept
                        || kept == all.len();
                    match orders.page(&page) {
                        Some(body) => {
                            assert!(within, "kept {kept}, limit {limit}, after {after:?}");
                            assert_eq!(body, json(&expected));
                        }
                        None => assert!(!within, "kept {kept}, limit {limit}, after {after:?}"),
                    }
                    match expected.next_cursor {
                        Some(_) => {
                            after = Some(expected.data.last().unwrap().id.as_str().to_owned())
                        }
                        None => break,
                    }
                }
            }
            // One order: kept, not theirs, newer than those kept (perhaps
            // placed through another process since), or older.
            assert_eq!(orders.order(&all[0].id), Some(Some(json(&all[0]))));
            assert_eq!(orders.order(&order(13).id), Some(None));
            assert_eq!(orders.order(&order(0x42).id), None);
            let oldest = &all[all.len() - 1].id;
            let answer = orders.order(oldest);
            if kept == all.len() {
                assert_eq!(answer, Some(Some(json(&all[all.len() - 1]))));
            } else {
                assert_eq!(answer, None);
            }
        }
    }
}
