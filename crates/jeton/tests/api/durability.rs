//! What an acknowledged write survives, against the real `jeton` binary:
//! a client that hangs up mid-order, a SIGKILL under write load on SQLite,
//! and a backup taken while the server writes (docs/operations.md).

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use sqlx::Row;
use tokio::io::AsyncWriteExt;

use crate::{
    on_both_databases,
    support::{
        Backend, PASSWORD, TestDatabase, connect,
        process::{Reply, Server, http_with_body, jeton, keyed_database, within_a_second},
        s,
    },
};

on_both_databases!(
    an_order_whose_client_hung_up_is_placed_once_and_its_retry_gets_it,
    a_shutdown_waits_for_an_order_whose_client_hung_up,
    writes_of_an_older_release_reach_the_new_process_within_a_second,
);

// ---------------------------------------------------------------- a shop

/// A server on a fresh database with one product and one logged-in
/// customer.
struct Shop {
    // Dropped first: the server before its database.
    server: Server,
    url: String,
    pk: String,
    customer: String,
    token: String,
    product: String,
    _database: TestDatabase,
}

async fn shop(backend: Backend, stock: i64, options: &[&str]) -> Option<Shop> {
    let keyed = keyed_database(backend, &[]).await?;
    // One customer places many orders here: the per-customer order limit
    // has tests of its own.
    let mut all = vec!["--customer-order-limit", "0", "--customer-rate-limit", "0"];
    all.extend_from_slice(options);
    let server = Server::start(&keyed.url, &all).await;
    let product = json!({
        "sku": "MUG", "name": "Mug", "description": "",
        "price": {"amount": 1000, "currency": "EUR"}, "stock": stock,
    });
    let res = server
        .call(
            "POST",
            "/api/v1/admin/products",
            Some(&keyed.admin),
            Some(&product),
        )
        .await;
    res.expect(201);
    let product = s(&res.json()["id"]);
    let customer = json!({"email": "ann@example.com", "password": PASSWORD, "name": "Ann"});
    let res = server
        .call(
            "POST",
            "/api/v1/customers",
            Some(&keyed.pk),
            Some(&customer),
        )
        .await;
    res.expect(201);
    let customer = s(&res.json()["id"]);
    let login = json!({"email": "ann@example.com", "password": PASSWORD, "device_name": "test"});
    let res = server
        .call("POST", "/api/v1/auth/login", Some(&keyed.pk), Some(&login))
        .await;
    res.expect(201);
    Some(Shop {
        server,
        url: keyed.url,
        pk: keyed.pk,
        customer,
        token: s(&res.json()["token"]),
        product,
        _database: keyed.database,
    })
}

/// The body of an order of `quantity` units of `product`.
fn order_body(product: &str, quantity: i64) -> Vec<u8> {
    serde_json::to_vec(&json!({"items": [{"product_id": product, "quantity": quantity}]})).unwrap()
}

/// `POST /orders` with an `Idempotency-Key`, on a fresh connection.
async fn place(addr: SocketAddr, token: &str, key: &str, body: &[u8]) -> std::io::Result<Reply> {
    let authorization = format!("Bearer {token}");
    let headers = [
        ("authorization", authorization.as_str()),
        ("content-type", "application/json"),
        ("idempotency-key", key),
    ];
    let (status, text) =
        http_with_body(addr, "POST", "/api/v1/orders", &headers, Some(body)).await?;
    Ok(Reply::new(status, text))
}

async fn count(pool: &sqlx::AnyPool, sql: &'static str) -> i64 {
    sqlx::query(sql).fetch_one(pool).await.unwrap().get(0)
}

async fn stock_of(pool: &sqlx::AnyPool, product: &str) -> i64 {
    sqlx::query("SELECT stock FROM products WHERE id = $1")
        .bind(product.to_owned())
        .fetch_one(pool)
        .await
        .unwrap()
        .get(0)
}

// ---------------------------------------------------------------- a client hangs up

/// Sends an order of 2 units with the key `hung-up` while `side` holds
/// what its placement needs, waits until the placement waits, and hangs
/// up; the lock is returned, still held.
async fn hang_up_mid_order<'a>(
    shop: &Shop,
    backend: Backend,
    side: &'a sqlx::AnyPool,
) -> sqlx::Transaction<'a, sqlx::Any> {
    // Holds what the placement needs: on PostgreSQL the product's row (the
    // key's claim commits, the stock update waits), on SQLite the write
    // lock (the claim itself waits, well within the busy timeout).
    let lock = match backend {
        Backend::Postgres => {
            let mut tx = side.begin().await.unwrap();
            sqlx::query("SELECT id FROM products WHERE id = $1 FOR UPDATE")
                .bind(shop.product.clone())
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            tx
        }
        Backend::Sqlite => side.begin_with("BEGIN IMMEDIATE").await.unwrap(),
    };

    let body = order_body(&shop.product, 2);
    let request = format!(
        "POST /api/v1/orders HTTP/1.1\r\nHost: {}\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\nidempotency-key: hung-up\r\ncontent-length: {}\r\n\r\n",
        shop.server.addr,
        shop.token,
        body.len()
    );
    let mut browser = tokio::net::TcpStream::connect(shop.server.addr)
        .await
        .unwrap();
    browser.write_all(request.as_bytes()).await.unwrap();
    browser.write_all(&body).await.unwrap();
    // Until the placement waits for the lock.
    match backend {
        Backend::Postgres => {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let waiting: i64 = sqlx::query(
                    "SELECT COUNT(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .fetch_one(side)
                .await
                .unwrap()
                .get(0);
                if waiting > 0 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the order never waited for the lock"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // Nothing to watch from outside: it gets there in milliseconds.
        Backend::Sqlite => tokio::time::sleep(Duration::from_millis(1000)).await,
    }
    // The browser hangs up, and the server notices (it drops what the
    // request was doing, unless the placement outlives it).
    browser.shutdown().await.unwrap();
    drop(browser);
    tokio::time::sleep(Duration::from_millis(500)).await;
    lock
}

/// A customer's browser sends an order, the placement is slow (another
/// transaction holds the lock it needs), and the browser gives up and
/// closes the connection. The order goes on to its end regardless; the
/// browser's retry with the same key and body gets it at once (the stored
/// answer), not `idempotency_key_in_use` for the key's lease; exactly one
/// order is placed and the stock goes down once.
async fn an_order_whose_client_hung_up_is_placed_once_and_its_retry_gets_it(backend: Backend) {
    let Some(shop) = shop(backend, 10, &[]).await else {
        return;
    };
    let side = connect(&shop.url).await;
    let lock = hang_up_mid_order(&shop, backend, &side).await;
    lock.rollback().await.unwrap();
    let body = order_body(&shop.product, 2);

    // The retry, as a browser sends it: promptly, and again on 409 for a
    // few seconds, far less than the key's 60 s lease.
    let retried = Instant::now();
    let answer = loop {
        let res = place(shop.server.addr, &shop.token, "hung-up", &body)
            .await
            .unwrap();
        if res.status != 409 || retried.elapsed() > Duration::from_secs(5) {
            break res;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    answer.expect(201);
    // The first request placed it; the retry is its stored answer.
    assert_eq!(
        answer.header("idempotent-replayed").as_deref(),
        Some("true")
    );
    let order = answer.json();
    assert_eq!(order["items"][0]["quantity"], 2, "{order}");

    // One order, the stock down once, the key done with that order.
    let pool = connect(&shop.url).await;
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM orders").await, 1);
    assert_eq!(stock_of(&pool, &shop.product).await, 8);
    let key: (String, Option<String>) =
        sqlx::query_as("SELECT status, order_id FROM idempotency_keys")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(key, ("done".to_owned(), Some(s(&order["id"]))));
    let res = shop
        .server
        .call("GET", "/api/v1/me/orders", Some(&shop.token), None)
        .await;
    res.expect(200);
    let listed: Vec<Value> = res.json()["data"].as_array().unwrap().clone();
    assert_eq!(listed, [order]);
}

/// SIGTERM while an order whose client hung up waits for a lock: no
/// request is left to drain, but the process waits for the placement,
/// which places the order and completes its key before the process exits.
async fn a_shutdown_waits_for_an_order_whose_client_hung_up(backend: Backend) {
    let Some(mut shop) = shop(backend, 10, &[]).await else {
        return;
    };
    let side = connect(&shop.url).await;
    let lock = hang_up_mid_order(&shop, backend, &side).await;
    shop.server.terminate();
    // Long enough for the process to have finished everything else it
    // does on its way out.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    lock.rollback().await.unwrap();
    let status = shop.server.wait_for_exit(Duration::from_secs(20)).await;
    assert!(
        status.is_some_and(|status| status.success()),
        "{status:?}: {}",
        shop.server.log_text()
    );
    let pool = connect(&shop.url).await;
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM orders").await, 1);
    assert_eq!(stock_of(&pool, &shop.product).await, 8);
    let status: String = sqlx::query_scalar("SELECT status FROM idempotency_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "done");
}

// ---------------------------------------------------------------- a rolling deploy

/// A rolling deploy: the new release runs (and has migrated the database)
/// while a process of an older one still writes orders. The older process
/// is stood in for by its SQL, run as it ran it: the statements of
/// `Db::place_order_once` in the release before orders carried
/// `updated_at` (git d4d905d, copied verbatim, its idempotency key aside),
/// which insert an order without a stamp; and writes that leave the
/// stamps as they were, as any version that does not know a column the
/// feed reads would (a cancellation and a restock). The new process's
/// caches (the customer's orders, the catalogue) see each within a second.
async fn writes_of_an_older_release_reach_the_new_process_within_a_second(backend: Backend) {
    let Some(shop) = shop(backend, 10, &[]).await else {
        return;
    };
    let orders = || async {
        let res = shop
            .server
            .call("GET", "/api/v1/me/orders", Some(&shop.token), None)
            .await;
        res.expect(200);
        res.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|order| (s(&order["id"]), s(&order["status"])))
            .collect::<Vec<_>>()
    };
    let stock = || async {
        let res = shop
            .server
            .call(
                "GET",
                &format!("/api/v1/products/{}", shop.product),
                Some(&shop.pk),
                None,
            )
            .await;
        res.expect(200);
        res.json()["stock"].as_i64().unwrap()
    };
    // The new process holds the customer's orders (none) and the stock.
    for _ in 0..2 {
        assert_eq!(orders().await, []);
        assert_eq!(stock().await, 10);
    }

    // The older release places an order.
    let pool = connect(&shop.url).await;
    let mut tx = match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await.unwrap(),
        Backend::Postgres => pool.begin().await.unwrap(),
    };
    let now = jeton::domain::time::to_micros(time::OffsetDateTime::now_utc());
    let order_id = uuid::Uuid::now_v7().to_string();
    let row = sqlx::query(
        "UPDATE products SET stock = stock - $1, updated_at = $3 WHERE id = $2 AND stock >= $1 \
         RETURNING sku, name, price_amount, currency",
    )
    .bind(3_i64)
    .bind(shop.product.clone())
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    let (sku, name, price, currency): (String, String, i64, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    sqlx::query(
        "INSERT INTO orders (id, customer_id, status, total_amount, currency, created_at) VALUES ($1, $2, 'placed', $3, $4, $5)",
    )
    .bind(order_id.clone())
    .bind(shop.customer.clone())
    .bind(price * 3)
    .bind(currency)
    .bind(now)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO order_items (order_id, line_no, product_id, sku, name, quantity, unit_price) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(order_id.clone())
    .bind(0_i64)
    .bind(shop.product.clone())
    .bind(sku)
    .bind(name)
    .bind(3_i64)
    .bind(price)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let written = Instant::now();
    let placed = vec![(order_id.clone(), "placed".to_owned())];
    within_a_second(written, "an order of the older release, listed", || async {
        let listed = orders().await;
        if listed == placed {
            Ok(())
        } else {
            Err(format!("{listed:?}"))
        }
    })
    .await;
    within_a_second(written, "its stock, served", || async {
        match stock().await {
            7 => Ok(()),
            other => Err(format!("stock {other}")),
        }
    })
    .await;

    // Writes that leave the stamps alone: a cancellation and its restock.
    sqlx::query("UPDATE orders SET status = 'cancelled' WHERE id = $1")
        .bind(order_id.clone())
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE products SET stock = stock + 3 WHERE id = $1")
        .bind(shop.product.clone())
        .execute(&pool)
        .await
        .unwrap();
    let written = Instant::now();
    let cancelled = vec![(order_id.clone(), "cancelled".to_owned())];
    within_a_second(
        written,
        "a cancellation without a stamp, listed",
        || async {
            let listed = orders().await;
            if listed == cancelled {
                Ok(())
            } else {
                Err(format!("{listed:?}"))
            }
        },
    )
    .await;
    within_a_second(written, "a restock without a stamp, served", || async {
        match stock().await {
            10 => Ok(()),
            other => Err(format!("stock {other}")),
        }
    })
    .await;
}

// ---------------------------------------------------------------- SQLite: a crash and a backup

/// Customers' browsers placing orders of one unit, each with a key of its
/// own, until `stop`: the ids of the orders answered 201 go to `acked`.
fn order_load(
    shop: &Shop,
    clients: usize,
    stop: &Arc<AtomicBool>,
    acked: &Arc<Mutex<Vec<String>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|client| {
            let (addr, token) = (shop.server.addr, shop.token.clone());
            let body = order_body(&shop.product, 1);
            let (stop, acked) = (stop.clone(), acked.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    match place(addr, &token, &format!("load-{client}-{n}"), &body).await {
                        Ok(res) if res.status == 201 => {
                            acked.lock().unwrap().push(s(&res.json()["id"]));
                        }
                        // Refused, or the server is gone: not acknowledged.
                        _ => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
            })
        })
        .collect()
}

/// Waits until the load has had `orders` acknowledged.
async fn until_acked(acked: &Arc<Mutex<Vec<String>>>, orders: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < orders {
        assert!(Instant::now() < deadline, "the load is not placing orders");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `PRAGMA integrity_check` of the SQLite database at `url`: "ok" or what
/// it found.
async fn integrity(url: &str) -> String {
    let pool = connect(url).await;
    let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.join("; ")
}

/// Every order of `ids` is in the database at `url`, and the product's
/// stock plus the units ordered is `initial`.
async fn holds_every_order(url: &str, ids: &[String], product: &str, initial: i64) {
    let pool = connect(url).await;
    let stored: Vec<String> = sqlx::query_scalar("SELECT id FROM orders")
        .fetch_all(&pool)
        .await
        .unwrap();
    let stored: std::collections::HashSet<String> = stored.into_iter().collect();
    let lost: Vec<&String> = ids.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged orders are missing: {lost:?}",
        lost.len(),
        ids.len()
    );
    let ordered: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM order_items WHERE product_id = $1",
    )
    .bind(product.to_owned())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stock_of(&pool, product).await + ordered, initial);
    pool.close().await;
}

const LOAD_STOCK: i64 = 1_000_000;

/// SIGKILL in the middle of concurrent orders on SQLite: the database
/// opens, passes `PRAGMA integrity_check`, holds every order a client got
/// 201 for (WAL with `synchronous = NORMAL`: a commit is in the WAL, in the
/// OS's hands, before its answer leaves; docs/operations.md), its stock
/// agrees with its orders, and a server starts on it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_keeps_every_acknowledged_order_through_a_sigkill_under_write_load() {
    let mut shop = shop(Backend::Sqlite, LOAD_STOCK, &[]).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let clients = order_load(&shop, 8, &stop, &acked);
    until_acked(&acked, 200).await;
    shop.server.child.kill().unwrap();
    shop.server.child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    assert_eq!(integrity(&shop.url).await, "ok");
    holds_every_order(&shop.url, &acked, &shop.product, LOAD_STOCK).await;
    let again = Server::start(&shop.url, &[]).await;
    let res = again
        .call(
            "GET",
            &format!("/api/v1/me/orders/{}", acked[0]),
            Some(&shop.token),
            None,
        )
        .await;
    res.expect(200);
}

/// `jeton backup --to FILE` while orders are being placed: the copy passes
/// `PRAGMA integrity_check`, and a server started on it serves every order
/// acknowledged before the backup began. It never overwrites a file, and
/// for PostgreSQL it names pg_dump.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_while_orders_are_placed_serves_every_order_acknowledged_before_it() {
    let shop = shop(Backend::Sqlite, LOAD_STOCK, &[]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    let copy_path = copy.to_str().unwrap().to_owned();

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let clients = order_load(&shop, 8, &stop, &acked);
    until_acked(&acked, 100).await;
    let before = acked.lock().unwrap().clone();
    let url = shop.url.clone();
    let args = ["backup", "--to", copy_path.as_str()].map(str::to_owned);
    let run = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        jeton(&url, &args)
    })
    .await
    .unwrap();
    // The load goes on after the backup, then stops.
    let during = acked.lock().unwrap().len();
    until_acked(&acked, during + 50).await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    run.ok();
    assert!(run.stdout.starts_with("backed up to "), "{}", run.stdout);

    let copy_url = format!("sqlite://{copy_path}");
    assert_eq!(integrity(&copy_url).await, "ok");
    holds_every_order(&copy_url, &before, &shop.product, LOAD_STOCK).await;
    let restored = Server::start(&copy_url, &["--customer-rate-limit", "0"]).await;
    for id in &before {
        let res = restored
            .call(
                "GET",
                &format!("/api/v1/me/orders/{id}"),
                Some(&shop.token),
                None,
            )
            .await;
        res.expect(200);
    }
    drop(restored);

    // Never over an existing file.
    let bytes = std::fs::read(&copy).unwrap();
    let run = jeton(&shop.url, &["backup", "--to", &copy_path]);
    run.fails();
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    assert_eq!(std::fs::read(&copy).unwrap(), bytes);

    // PostgreSQL has its own tools.
    let elsewhere = dir.path().join("pg.db");
    let run = jeton(
        "postgres://postgres@127.0.0.1:5432/postgres",
        &["backup", "--to", elsewhere.to_str().unwrap()],
    );
    run.fails();
    assert!(run.stderr.contains("pg_dump"), "{}", run.stderr);
    assert!(!elsewhere.exists());
}
