//! Faults under load: what an acknowledged write survives
//! (`docs/reliability.md`).
//!
//! Three `jeton serve` processes behind nginx (`deploy/nginx/jeton.conf`),
//! on a PostgreSQL cluster and a `redis-server` of the test's own (so that
//! restarting them disturbs no other test), serve a mixed load: visitors
//! browse with the publishable key; shoppers register, log in, order with an
//! `Idempotency-Key` retried with the same key and body until a definite
//! answer, and revoke tokens; others fill a cart and check it out, retried
//! the same way; a customer has all their tokens revoked, by
//! themselves or by an admin; a back office restocks and cancels orders
//! through the admin API; a webhook endpoint takes every event. Meanwhile
//! one process is killed (SIGKILL) every ten seconds and started again on
//! its address, PostgreSQL is restarted once and Redis once. Then the test
//! checks, and fails on any breach:
//!
//! - every acknowledged order exists exactly once, as it was asked for, and
//!   no idempotency key made two orders;
//! - for every product, stock plus units sold equals the initial stock plus
//!   the restocks;
//! - no revoked token got a 2xx more than a second after its revocation was
//!   acknowledged, except while the database was unreachable (the outage
//!   grace, `docs/architecture.md`), and none once it had been back for a
//!   second;
//! - outside the fault windows (a fault, until 10 s after its component is
//!   back) no 5xx at all; inside them only 502 (nginx) or 503 with
//!   `Retry-After` (Jeton);
//! - every webhook event of an acknowledged change is delivered at least
//!   once.
//!
//! It prints its figures; `JETON_UPDATE_RELIABILITY=1` also writes them into
//! `docs/reliability.md`. Without `initdb`/`pg_ctl`, `redis-server` or
//! `nginx` it skips with a `NOTICE:` line, unless `JETON_REQUIRE_FLEET=1`.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Row;
use tokio::task::JoinSet;

use crate::support::{
    PASSWORD, connect,
    database::notice,
    fleet::{Nginx, Redis, installed, require_fleet},
    postgres::{self, Cluster},
    process::{STOREFRONT_KEY_ARGS, Server, cli_key},
    s,
};

// ---------------------------------------------------------------- the plan

/// How long the load runs. Faults fall between its first and last ten
/// seconds or so, so that some load runs outside every fault window.
const LOAD: Duration = Duration::from_secs(100);

/// When a process is killed (seconds into the load): every ten seconds.
const KILLS: [u64; 8] = [10, 20, 30, 40, 50, 60, 70, 80];

/// When PostgreSQL is restarted, and Redis: between two kills.
const POSTGRES_RESTART: u64 = 35;
const REDIS_RESTART: u64 = 55;

/// How long PostgreSQL and Redis stay down when they are restarted.
const DOWN_FOR: Duration = Duration::from_secs(2);

/// A fault's window lasts until this long after its component is back.
const WINDOW_AFTER: Duration = Duration::from_secs(10);

/// How long after its revocation is acknowledged a token may still work.
const REVOCATION: Duration = Duration::from_secs(1);

/// When retries stop (from the start of the load): after the last kill, an
/// idempotency key it cut off stays claimed for its lease, and a webhook
/// delivery claimed by the killed process waits for its claim to run out.
fn give_up_at() -> Duration {
    let last_kill = Duration::from_secs(KILLS[KILLS.len() - 1]);
    let claim = Duration::try_from(jeton::webhooks::store::CLAIM_LEASE).expect("a positive lease");
    last_kill + jeton::store::orders::KEY_LEASE.max(claim) + Duration::from_secs(20)
}

const BROWSERS: usize = 2;
const SHOPPERS: usize = 6;
const CART_SHOPPERS: usize = 2;

/// Products: the first is scarce (it sells out, and no order may oversell
/// it); the back office restocks the others.
const PRODUCTS: usize = 6;
const SCARCE_STOCK: i64 = 40;
const STOCK: i64 = 1_000;
/// A restock's units: more than the load can sell of a product, so that a
/// restock whose answer was lost (it may or may not have happened) cannot
/// hide a lost or duplicated order in the stock check.
const RESTOCK: i64 = 10_000;

/// The figures go between these lines of `docs/reliability.md`.
const FIGURES_START: &str = "<!-- figures: written by the fault-injection test -->";
const FIGURES_END: &str = "<!-- end of figures -->";

// ---------------------------------------------------------------- what happened

/// One request and its answer (`status` 0: none came).
struct Exchange {
    sent: Duration,
    done: Duration,
    status: u16,
    retry_after: bool,
    what: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Placed,
    OutOfStock,
    /// No definite answer before the test gave up.
    Undecided,
    /// An answer the contract does not allow here (an anomaly too).
    Unexpected,
}

/// An order and every answer its key got.
struct OrderRecord {
    key: String,
    items: Vec<(String, i64)>,
    /// The order ids of every 201 (the first and any replay).
    answers: Vec<String>,
    outcome: Outcome,
    attempts: u32,
    in_use: u32,
    checkout: bool,
}

/// A request with a revoked token, sent at `sent`; the revocation was
/// acknowledged at `acked`.
struct Probe {
    acked: Duration,
    sent: Duration,
    status: u16,
}

#[derive(Default)]
struct Journal {
    exchanges: Vec<Exchange>,
    orders: Vec<OrderRecord>,
    replays: u32,
    revoked_tokens: u32,
    probes: Vec<Probe>,
    /// Product index, and whether the restock was acknowledged (if not,
    /// it may or may not have happened).
    restocks: Vec<(usize, bool)>,
    cancelled: Vec<String>,
    /// Webhook events that acknowledged changes raised: (type, id of what
    /// it is about).
    events: Vec<(&'static str, String)>,
    anomalies: Vec<String>,
}

/// An answer: status 0 when none came (or its body was cut off).
struct Answer {
    status: u16,
    body: Value,
    retry_after: Option<Duration>,
    replayed: bool,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// A fault's answer, or none: whether the request took effect is
    /// unknown.
    fn failed(&self) -> bool {
        self.status == 0 || self.status >= 500
    }

    /// How long to wait before trying again.
    fn pause(&self) -> Duration {
        self.retry_after
            .unwrap_or(Duration::from_millis(300))
            .min(Duration::from_secs(2))
    }
}

/// The shop under load: where it is, its keys and products, and the
/// journal every actor writes.
struct Shop {
    base: String,
    pk: String,
    admin: String,
    products: Vec<String>,
    start: Instant,
    give_up: Duration,
    probe_clients: AtomicU32,
    journal: Mutex<Journal>,
}

impl Shop {
    /// Time since the load started.
    fn at(&self) -> Duration {
        self.start.elapsed()
    }

    fn loading(&self) -> bool {
        self.at() < LOAD
    }

    fn giving_up(&self) -> bool {
        self.at() >= self.give_up
    }

    fn note(&self, change: impl FnOnce(&mut Journal)) {
        change(&mut self.journal.lock().unwrap());
    }

    fn unexpected(&self, what: &str, answer: &Answer) {
        let line = format!(
            "{what} at {:.1}s: {} {}",
            self.at().as_secs_f64(),
            answer.status,
            answer.body
        );
        self.note(|journal| journal.anomalies.push(line));
    }

    /// A client whose connections come from `from` (any address of
    /// 127.0.0.0/8): nginx forwards it, and the per-IP limits count it.
    fn client(from: IpAddr) -> reqwest::Client {
        reqwest::Client::builder()
            .local_address(from)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            .expect("an HTTP client")
    }

    /// A client from an address of its own: probes of revoked tokens fail
    /// authentication on purpose, and the per-IP limit on failures must
    /// not count them all against one address.
    fn probe_client(&self) -> reqwest::Client {
        let n = self.probe_clients.fetch_add(1, Ordering::Relaxed);
        Shop::client(IpAddr::from([127, 1, (n / 250) as u8, (n % 250 + 1) as u8]))
    }

    #[allow(clippy::too_many_arguments)]
    async fn call(
        &self,
        http: &reqwest::Client,
        what: &'static str,
        method: Method,
        path: &str,
        bearer: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Answer {
        let mut request = http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(bearer);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let sent = self.at();
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|value| value.to_str().ok())
                        .map(str::to_owned)
                };
                let retry_after = header("retry-after")
                    .and_then(|value| value.parse().ok())
                    .map(Duration::from_secs);
                let replayed = header("idempotent-replayed").as_deref() == Some("true");
                match response.text().await {
                    Ok(text) => Answer {
                        status,
                        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
                        retry_after,
                        replayed,
                    },
                    Err(_) => no_answer(),
                }
            }
            Err(_) => no_answer(),
        };
        let exchange = Exchange {
            sent,
            done: self.at(),
            status: answer.status,
            retry_after: answer.retry_after.is_some(),
            what,
        };
        self.note(|journal| journal.exchanges.push(exchange));
        answer
    }

    /// Sends until an answer that is not a fault's, or until the test gives
    /// up (`None`): the answer, and whether an earlier attempt may have
    /// taken effect.
    #[allow(clippy::too_many_arguments)]
    async fn until_answered(
        &self,
        http: &reqwest::Client,
        what: &'static str,
        method: Method,
        path: &str,
        bearer: &str,
        body: Option<&Value>,
    ) -> Option<(Answer, bool)> {
        let mut retried = false;
        while !self.giving_up() {
            let answer = self
                .call(http, what, method.clone(), path, bearer, body, None)
                .await;
            if !answer.failed() {
                return Some((answer, retried));
            }
            retried = true;
            tokio::time::sleep(answer.pause()).await;
        }
        None
    }
}

fn no_answer() -> Answer {
    Answer {
        status: 0,
        body: Value::Null,
        retry_after: None,
        replayed: false,
    }
}

/// A small deterministic generator: the load differs per actor, not per run.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

// ---------------------------------------------------------------- the actors

/// Runs every actor until the load ends and their last retries are
/// decided. One more kind of actor is one more `spawn` here.
async fn run_load(shop: Arc<Shop>) {
    let mut actors = JoinSet::new();
    for n in 0..BROWSERS {
        actors.spawn(browser(shop.clone(), n));
    }
    for n in 0..SHOPPERS {
        actors.spawn(shopper(shop.clone(), n));
    }
    for n in 0..CART_SHOPPERS {
        actors.spawn(cart_shopper(shop.clone(), n));
    }
    actors.spawn(revoker(shop.clone()));
    actors.spawn(back_office(shop.clone()));
    while let Some(done) = actors.join_next().await {
        done.expect("an actor panicked");
    }
}

/// A visitor: the catalogue and a product, with the publishable key.
async fn browser(shop: Arc<Shop>, n: usize) {
    let http = Shop::client(IpAddr::from([127, 0, 0, 10 + n as u8]));
    let mut rng = Rng::new(n as u64);
    while shop.loading() {
        let page = shop
            .call(
                &http,
                "browse",
                Method::GET,
                "/api/v1/products?limit=20",
                &shop.pk,
                None,
                None,
            )
            .await;
        if page.status != 200 && !page.failed() {
            shop.unexpected("browse", &page);
        }
        let id = &shop.products[rng.below(PRODUCTS)];
        let path = format!("/api/v1/products/{id}");
        let one = shop
            .call(&http, "product", Method::GET, &path, &shop.pk, None, None)
            .await;
        if one.status != 200 && !one.failed() {
            shop.unexpected("product", &one);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A customer: registers, logs in, and until the load ends orders, lists
/// their orders and now and then revokes a token of theirs.
async fn shopper(shop: Arc<Shop>, n: usize) {
    let http = Shop::client(IpAddr::from([127, 0, 0, 30 + n as u8]));
    let email = format!("shopper{n}@faults.example");
    let Some((_, token)) = sign_up(&shop, &http, &email).await else {
        return;
    };
    let mut rng = Rng::new(100 + n as u64);
    // An order cut off by a kill may keep its key claimed for the key's
    // lease: it goes on retrying in the background, and the shopper orders on.
    let mut background = Vec::new();
    let mut round = 0u64;
    while shop.loading() {
        round += 1;
        let items = pick(&mut rng, &shop.products);
        let mut order = tokio::spawn(place_order(
            shop.clone(),
            http.clone(),
            token.clone(),
            items,
            Placement::Order,
        ));
        if tokio::time::timeout(Duration::from_secs(3), &mut order)
            .await
            .is_err()
        {
            background.push(order);
        }
        if round.is_multiple_of(5) {
            let mine = shop
                .call(
                    &http,
                    "my orders",
                    Method::GET,
                    "/api/v1/me/orders?limit=5",
                    &token,
                    None,
                    None,
                )
                .await;
            if mine.status != 200 && !mine.failed() {
                shop.unexpected("my orders", &mine);
            }
        }
        if round.is_multiple_of(15) {
            revoke_one(&shop, &http, &email, &token, round.is_multiple_of(30)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for order in background {
        order.await.expect("an order's task panicked");
    }
}

/// One to two lines of one to three units; now and then of the scarce
/// product.
fn pick(rng: &mut Rng, products: &[String]) -> Vec<(String, i64)> {
    let lines = 1 + rng.below(2);
    let mut chosen: Vec<usize> = Vec::new();
    while chosen.len() < lines {
        let product = if rng.below(8) == 0 {
            0
        } else {
            1 + rng.below(PRODUCTS - 1)
        };
        if !chosen.contains(&product) {
            chosen.push(product);
        }
    }
    chosen
        .into_iter()
        .map(|product| (products[product].clone(), 1 + rng.below(3) as i64))
        .collect()
}

/// Registers (retried: a retry of a registration that went through is 409
/// `email_taken`) and logs in: (customer id, token).
async fn sign_up(shop: &Shop, http: &reqwest::Client, email: &str) -> Option<(String, String)> {
    let body = json!({"email": email, "password": PASSWORD, "name": "Faulty Customer"});
    let (answer, retried) = shop
        .until_answered(
            http,
            "register",
            Method::POST,
            "/api/v1/customers",
            &shop.pk,
            Some(&body),
        )
        .await?;
    match answer.status {
        201 => {
            let id = s(&answer.body["id"]);
            shop.note(|journal| journal.events.push(("customer.created", id)));
        }
        409 if retried && answer.code() == "email_taken" => {}
        _ => {
            shop.unexpected("register", &answer);
            return None;
        }
    }
    let (token, _) = login(shop, http, email).await?;
    let (me, _) = shop
        .until_answered(http, "me", Method::GET, "/api/v1/me", &token, None)
        .await?;
    if me.status != 200 {
        shop.unexpected("me", &me);
        return None;
    }
    Some((s(&me.body["id"]), token))
}

/// Logs in, retried until answered: (token, token id).
async fn login(shop: &Shop, http: &reqwest::Client, email: &str) -> Option<(String, String)> {
    login_with(shop, http, email, None).await
}

/// A login that merges `guest`'s cart, if given. A retry after a lost
/// answer merges nothing more: the first attempt spent the guest token.
async fn login_with(
    shop: &Shop,
    http: &reqwest::Client,
    email: &str,
    guest: Option<&str>,
) -> Option<(String, String)> {
    let mut body = json!({"email": email, "password": PASSWORD, "device_name": "faults"});
    if let Some(guest) = guest {
        body["guest_token"] = json!(guest);
    }
    let (answer, _) = shop
        .until_answered(
            http,
            "login",
            Method::POST,
            "/api/v1/auth/login",
            &shop.pk,
            Some(&body),
        )
        .await?;
    if answer.status != 201 {
        shop.unexpected("login", &answer);
        return None;
    }
    Some((s(&answer.body["token"]), s(&answer.body["token_id"])))
}

/// Places an order with a key of its own, retried with the same key and
/// body until a definite answer; an order that needed retries, and every
/// tenth, is sent once more, and must be replayed, not placed again.
async fn place_order(
    shop: Arc<Shop>,
    http: reqwest::Client,
    token: String,
    items: Vec<(String, i64)>,
    placement: Placement,
) -> Outcome {
    let key = uuid::Uuid::now_v7().to_string();
    let lines: Vec<Value> = items
        .iter()
        .map(|(id, quantity)| json!({"product_id": id, "quantity": quantity}))
        .collect();
    let body = json!({"items": lines});
    let mut record = OrderRecord {
        key: key.clone(),
        items,
        answers: Vec::new(),
        outcome: Outcome::Undecided,
        attempts: 0,
        in_use: 0,
        checkout: matches!(placement, Placement::Checkout),
    };
    let (what, path, body) = match placement {
        Placement::Order => ("order", "/api/v1/orders", Some(&body)),
        Placement::Checkout => ("checkout", "/api/v1/cart/checkout", None),
    };
    let send = || shop.call(&http, what, Method::POST, path, &token, body, Some(&key));
    while !shop.giving_up() {
        let answer = send().await;
        record.attempts += 1;
        match (answer.status, answer.code()) {
            (201, _) => {
                let id = s(&answer.body["id"]);
                shop.note(|journal| journal.events.push(("order.placed", id.clone())));
                record.answers.push(id);
                record.outcome = Outcome::Placed;
                break;
            }
            (409, "insufficient_stock") => {
                record.outcome = Outcome::OutOfStock;
                break;
            }
            (409, "idempotency_key_in_use") => {
                // Cut off by a kill: the key is free again when its lease
                // runs out.
                record.in_use += 1;
                let backoff = 250u64 << record.in_use.min(3);
                tokio::time::sleep(Duration::from_millis(backoff)).await;
            }
            _ if answer.failed() => tokio::time::sleep(answer.pause()).await,
            _ => {
                shop.unexpected(what, &answer);
                record.outcome = Outcome::Unexpected;
                break;
            }
        }
    }
    if record.outcome == Outcome::Placed && (record.attempts > 1 || record.key.ends_with('0')) {
        let replay = send().await;
        if replay.status == 201 {
            if !replay.replayed {
                shop.unexpected("a replay without Idempotent-Replayed", &replay);
            }
            record.answers.push(s(&replay.body["id"]));
            shop.note(|journal| journal.replays += 1);
        } else if !replay.failed() {
            shop.unexpected("a replay", &replay);
        }
    }
    let outcome = record.outcome;
    shop.note(|journal| journal.orders.push(record));
    outcome
}

/// Where an order comes from: `POST /orders` with its lines, or `POST
/// /cart/checkout` of a cart that holds them.
#[derive(Debug, Clone, Copy)]
enum Placement {
    Order,
    Checkout,
}

/// A shopper who fills a cart (`PUT /cart/items/{id}`, safe to repeat) and
/// checks it out, retried with the same `Idempotency-Key` as an order is.
/// Every other round they start as a guest: a guest token from `POST
/// /guest`, the guest's cart filled, then a login with `guest_token` that
/// merges it into the customer's, which is checked out.
async fn cart_shopper(shop: Arc<Shop>, n: usize) {
    let http = Shop::client(IpAddr::from([127, 0, 0, 60 + n as u8]));
    let email = format!("cart{n}@faults.example");
    let Some((_, mut token)) = sign_up(&shop, &http, &email).await else {
        return;
    };
    let mut rng = Rng::new(200 + n as u64);
    let mut round = 0u64;
    while shop.loading() {
        round += 1;
        let items = pick(&mut rng, &shop.products);
        let guest = if round.is_multiple_of(2) {
            let Some(guest) = guest_token(&shop, &http).await else {
                return;
            };
            Some(guest)
        } else {
            None
        };
        let filler = guest.as_deref().unwrap_or(&token);
        for (id, quantity) in &items {
            let path = format!("/api/v1/cart/items/{id}");
            let body = json!({"quantity": quantity});
            let put = shop
                .until_answered(&http, "cart", Method::PUT, &path, filler, Some(&body))
                .await;
            match put {
                Some((answer, _)) if answer.status == 200 => {}
                Some((answer, _)) => return shop.unexpected("cart", &answer),
                None => return,
            }
        }
        if let Some(guest) = &guest {
            let Some((merged, _)) = login_with(&shop, &http, &email, Some(guest)).await else {
                return;
            };
            token = merged;
        }
        let placement = Placement::Checkout;
        let outcome = place_order(shop.clone(), http.clone(), token.clone(), items, placement);
        if outcome.await != Outcome::Placed {
            // Out of stock: the cart stays as it was; the next round starts
            // from an empty one.
            let emptied = shop
                .until_answered(&http, "cart", Method::DELETE, "/api/v1/cart", &token, None)
                .await;
            match emptied {
                Some((answer, _)) if matches!(answer.status, 200 | 204) => {}
                Some((answer, _)) => return shop.unexpected("empty the cart", &answer),
                None => return,
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A guest token for a new visitor, from the storefront's key.
async fn guest_token(shop: &Shop, http: &reqwest::Client) -> Option<String> {
    let (answer, _) = shop
        .until_answered(
            http,
            "guest",
            Method::POST,
            "/api/v1/guest",
            &shop.pk,
            Some(&json!({})),
        )
        .await?;
    if answer.status != 201 {
        shop.unexpected("guest", &answer);
        return None;
    }
    Some(s(&answer.body["token"]))
}

/// Logs in on a second device, uses that token on every process, revokes
/// it (`DELETE /me/tokens/{id}` with the shopper's token, or its own
/// logout), and probes it.
async fn revoke_one(shop: &Shop, http: &reqwest::Client, email: &str, token: &str, logout: bool) {
    let Some((second, second_id)) = login(shop, http, email).await else {
        return;
    };
    warm(shop, http, &second).await;
    let (method, path, bearer) = if logout {
        (
            Method::POST,
            "/api/v1/auth/logout".to_owned(),
            second.as_str(),
        )
    } else {
        (
            Method::DELETE,
            format!("/api/v1/me/tokens/{second_id}"),
            token,
        )
    };
    let Some((answer, retried)) = shop
        .until_answered(http, "revoke", method, &path, bearer, None)
        .await
    else {
        return;
    };
    // After an attempt whose answer was lost, the token may be gone
    // already: the retry is refused, and that is an acknowledgement too.
    let expected = if logout { 401 } else { 404 };
    if answer.status != 204 && !(retried && answer.status == expected) {
        shop.unexpected("revoke", &answer);
        return;
    }
    let acked = shop.at();
    probe(shop, &[second], acked).await;
}

/// A token used twice on each process (round-robin), so every cache holds it.
async fn warm(shop: &Shop, http: &reqwest::Client, token: &str) {
    for _ in 0..6 {
        let me = shop
            .call(http, "warm", Method::GET, "/api/v1/me", token, None, None)
            .await;
        if me.status != 200 && !me.failed() {
            shop.unexpected("warm", &me);
        }
    }
}

/// Uses revoked tokens for a while after their revocation was
/// acknowledged at `acked`, every 150 ms; the check comes later.
async fn probe(shop: &Shop, tokens: &[String], acked: Duration) {
    let http = shop.probe_client();
    shop.note(|journal| journal.revoked_tokens += tokens.len() as u32);
    while shop.at() < acked + REVOCATION * 2 + Duration::from_millis(200) {
        for token in tokens {
            let sent = shop.at();
            let answer = shop
                .call(&http, "probe", Method::GET, "/api/v1/me", token, None, None)
                .await;
            if !matches!(answer.status, 200 | 401) && !answer.failed() {
                shop.unexpected("probe", &answer);
            }
            let status = answer.status;
            shop.note(|journal| {
                journal.probes.push(Probe {
                    acked,
                    sent,
                    status,
                })
            });
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// A customer whose tokens are all revoked again and again: by themselves
/// (`DELETE /me/tokens`) or by an admin (`POST
/// /admin/customers/{id}/revoke-tokens`). Each raises
/// `customer.tokens_revoked`.
async fn revoker(shop: Arc<Shop>) {
    let http = Shop::client(IpAddr::from([127, 0, 0, 50]));
    let email = "revoker@faults.example";
    let Some((customer, _)) = sign_up(&shop, &http, email).await else {
        return;
    };
    let mut round = 0u64;
    while shop.loading() {
        round += 1;
        let (Some((first, _)), Some((second, _))) = (
            login(&shop, &http, email).await,
            login(&shop, &http, email).await,
        ) else {
            return;
        };
        warm(&shop, &http, &first).await;
        warm(&shop, &http, &second).await;
        let by_admin = round.is_multiple_of(2);
        let (method, path, bearer) = if by_admin {
            (
                Method::POST,
                format!("/api/v1/admin/customers/{customer}/revoke-tokens"),
                shop.admin.as_str(),
            )
        } else {
            (
                Method::DELETE,
                "/api/v1/me/tokens".to_owned(),
                first.as_str(),
            )
        };
        let Some((answer, retried)) = shop
            .until_answered(&http, "revoke all", method, &path, bearer, None)
            .await
        else {
            return;
        };
        match answer.status {
            204 => shop.note(|journal| {
                journal
                    .events
                    .push(("customer.tokens_revoked", customer.clone()))
            }),
            401 if retried && !by_admin => {}
            _ => {
                shop.unexpected("revoke all", &answer);
                continue;
            }
        }
        let acked = shop.at();
        probe(&shop, &[first, second], acked).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The back office, with a secret key: restocks a product (not retried:
/// a restock is not idempotent, and one whose answer was lost is counted
/// as maybe done), then cancels an acknowledged order (retried: cancelling
/// again changes nothing), in turn, every second.
async fn back_office(shop: Arc<Shop>) {
    let http = Shop::client(IpAddr::from([127, 0, 0, 51]));
    let mut rng = Rng::new(51);
    let mut round = 0u64;
    while shop.loading() {
        round += 1;
        if round % 2 == 1 {
            let product = 1 + rng.below(PRODUCTS - 1);
            let path = format!("/api/v1/admin/products/{}", shop.products[product]);
            let body = json!({"stock_delta": RESTOCK});
            let answer = shop
                .call(
                    &http,
                    "restock",
                    Method::PATCH,
                    &path,
                    &shop.admin,
                    Some(&body),
                    None,
                )
                .await;
            if answer.status == 200 {
                shop.note(|journal| journal.restocks.push((product, true)));
            } else if answer.failed() {
                shop.note(|journal| journal.restocks.push((product, false)));
            } else {
                shop.unexpected("restock", &answer);
            }
        } else {
            let order = {
                let journal = shop.journal.lock().unwrap();
                let placed: Vec<&String> = journal
                    .orders
                    .iter()
                    .filter(|order| order.outcome == Outcome::Placed)
                    .map(|order| &order.answers[0])
                    .filter(|id| !journal.cancelled.contains(id))
                    .collect();
                (!placed.is_empty()).then(|| placed[rng.below(placed.len())].clone())
            };
            if let Some(id) = order {
                let path = format!("/api/v1/admin/orders/{id}/cancel");
                let body = json!({});
                match shop
                    .until_answered(
                        &http,
                        "cancel",
                        Method::POST,
                        &path,
                        &shop.admin,
                        Some(&body),
                    )
                    .await
                {
                    Some((answer, _)) if answer.status == 200 => shop.note(|journal| {
                        journal.events.push(("order.cancelled", id.clone()));
                        journal.cancelled.push(id);
                    }),
                    Some((answer, _)) => shop.unexpected("cancel", &answer),
                    None => {}
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

// ---------------------------------------------------------------- the webhook receiver

/// What the receiver got: headers and body of every delivery.
type Deliveries = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A receiver on 127.0.0.1 that takes every delivery (204).
async fn receiver() -> (SocketAddr, Deliveries) {
    async fn take(
        State(got): State<Deliveries>,
        headers: HeaderMap,
        body: Bytes,
    ) -> axum::http::StatusCode {
        got.lock().unwrap().push((headers, body));
        axum::http::StatusCode::NO_CONTENT
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Deliveries::default();
    let app = Router::new()
        .route("/hook", post(take))
        .with_state(got.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, got)
}

/// Distinct deliveries (by `webhook-id`) per (type, subject), and how many
/// did not verify.
fn received(got: &[(HeaderMap, Bytes)], secret: &str) -> (HashMap<(String, String), usize>, usize) {
    let webhook = standardwebhooks::Webhook::new(secret).unwrap();
    let mut seen = HashSet::new();
    let mut counts = HashMap::new();
    let mut unverified = 0;
    for (headers, body) in got {
        if webhook.verify(body, headers).is_err() {
            unverified += 1;
            continue;
        }
        let id = headers["webhook-id"].to_str().unwrap().to_owned();
        if !seen.insert(id) {
            continue;
        }
        let event: Value = serde_json::from_slice(body).unwrap();
        let key = (
            s(&event["type"]),
            event["data"]["id"].as_str().unwrap_or("").to_owned(),
        );
        *counts.entry(key).or_insert(0) += 1;
    }
    (counts, unverified)
}

/// How many expected events have fewer deliveries than raises.
fn missing(
    expected: &[(&'static str, String)],
    counts: &HashMap<(String, String), usize>,
) -> usize {
    let mut wanted: HashMap<(String, String), usize> = HashMap::new();
    for (kind, subject) in expected {
        *wanted
            .entry(((*kind).to_owned(), subject.clone()))
            .or_insert(0) += 1;
    }
    wanted
        .iter()
        .map(|(key, n)| n.saturating_sub(counts.get(key).copied().unwrap_or(0)))
        .sum()
}

// ---------------------------------------------------------------- the faults

/// A fault: from `start` until its component was `back`.
struct Fault {
    what: String,
    start: Duration,
    back: Duration,
}

impl Fault {
    /// Whether a request in flight from `sent` to `done` met its window.
    fn covers(&self, sent: Duration, done: Duration) -> bool {
        done >= self.start && sent <= self.back + WINDOW_AFTER
    }
}

/// What the faults act on.
struct Stack {
    cluster: Cluster,
    redis: Redis,
    servers: Vec<Server>,
    url: String,
    options: Vec<String>,
    /// The logs of killed processes.
    logs: Vec<String>,
}

enum Kind {
    Kill(usize),
    Postgres,
    Redis,
}

/// Injects every fault on schedule, each component back before the next.
async fn inject(stack: &mut Stack, start: Instant) -> Vec<Fault> {
    let mut schedule: Vec<(u64, Kind)> = KILLS
        .iter()
        .enumerate()
        .map(|(n, at)| (*at, Kind::Kill(n % stack.servers.len())))
        .collect();
    schedule.push((POSTGRES_RESTART, Kind::Postgres));
    schedule.push((REDIS_RESTART, Kind::Redis));
    schedule.sort_by_key(|(at, _)| *at);
    let mut faults = Vec::new();
    for (at, kind) in schedule {
        tokio::time::sleep_until((start + Duration::from_secs(at)).into()).await;
        let began = start.elapsed();
        let what = match kind {
            Kind::Kill(n) => {
                let server = &mut stack.servers[n];
                server.child.kill().expect("SIGKILL");
                server.child.wait().unwrap();
                stack.logs.push(server.log_text());
                let (addr, options) = (server.addr, stack.options.clone());
                let options: Vec<&str> = options.iter().map(String::as_str).collect();
                stack.servers[n] = Server::start_at(&stack.url, addr, &options).await;
                format!("SIGKILL of process {n}, restarted")
            }
            Kind::Postgres => {
                stack.cluster.stop().await;
                tokio::time::sleep(DOWN_FOR).await;
                stack.cluster.start_again().await;
                "PostgreSQL stopped (fast) and started".to_owned()
            }
            Kind::Redis => {
                stack.redis.stop();
                tokio::time::sleep(DOWN_FOR).await;
                stack.redis.restart().await;
                "Redis killed and started empty".to_owned()
            }
        };
        let fault = Fault {
            what,
            start: began,
            back: start.elapsed(),
        };
        eprintln!(
            "fault: {} at {:.1}s, back at {:.1}s",
            fault.what,
            fault.start.as_secs_f64(),
            fault.back.as_secs_f64()
        );
        faults.push(fault);
    }
    faults
}

// ---------------------------------------------------------------- the test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_under_faults() {
    let started = Instant::now();
    let mut missing_programs: Vec<String> = ["redis-server", "nginx"]
        .into_iter()
        .filter(|program| !installed(program))
        .map(str::to_owned)
        .collect();
    missing_programs.extend(postgres::missing());
    if !missing_programs.is_empty() {
        let text = format!(
            "skipping the fault-injection test: {} not installed (JETON_REQUIRE_FLEET=1 makes \
             this a failure)",
            missing_programs.join(", ")
        );
        assert!(!require_fleet(), "{text}");
        notice(&text);
        return;
    }

    // ---- setup: a cluster, Redis, a receiver, three processes, nginx
    let cluster = Cluster::start().await;
    let url = cluster.url();
    let mut pk_args = vec!["--name", "Storefront"];
    pk_args.extend(STOREFRONT_KEY_ARGS);
    pk_args.extend(["--per-ip-rate-limit", "none", "--rate-limit", "none"]);
    // The first `jeton` command migrates the database.
    let pk = cli_key(&url, &pk_args);
    let admin = cli_key(
        &url,
        &[
            "--name",
            "Back office",
            "--kind",
            "secret",
            "--ability",
            "admin",
            "--rate-limit",
            "none",
        ],
    );
    let redis = Redis::start().await;
    let (hook, deliveries) = receiver().await;
    let options: Vec<String> = [
        "--redis-url",
        &redis.url(),
        "--trusted-proxy",
        "127.0.0.1/32",
        "--webhook-allow-http-private",
        // Shoppers order several times a minute each; the order limit has
        // tests of its own.
        "--customer-order-limit",
        "0",
        // A cart shopper is a new visitor every other round.
        "--guest-issuance-per-ip",
        "100000",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let borrowed: Vec<&str> = options.iter().map(String::as_str).collect();
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(Server::start(&url, &borrowed).await);
    }
    let addrs: Vec<SocketAddr> = servers.iter().map(|server| server.addr).collect();
    let nginx = Nginx::start(&addrs).await;
    let base = format!("http://{}", nginx.addr);

    let setup = Shop::client(IpAddr::from([127, 0, 0, 5]));
    let created = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, 201, "{text}");
        serde_json::from_str::<Value>(&text).unwrap()
    };
    let webhook = created(
        setup
            .post(format!("{base}/api/v1/admin/webhooks"))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(json!({"url": format!("http://{hook}/hook"), "events": ["*"]}).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    let secret = s(&webhook["secret"]);
    let mut products = Vec::new();
    for n in 0..PRODUCTS {
        let stock = if n == 0 { SCARCE_STOCK } else { STOCK };
        let body = json!({
            "sku": format!("FAULT-{n}"), "name": format!("Product {n}"), "description": "",
            "price": {"amount": 500 + n as i64, "currency": "EUR"}, "stock": stock,
        });
        let product = created(
            setup
                .post(format!("{base}/api/v1/admin/products"))
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap(),
        )
        .await;
        products.push(s(&product["id"]));
    }
    let setup_time = started.elapsed();

    // ---- the load and the faults, together
    let shop = Arc::new(Shop {
        base,
        pk,
        admin,
        products,
        start: Instant::now(),
        give_up: give_up_at(),
        probe_clients: AtomicU32::new(0),
        journal: Mutex::default(),
    });
    let mut stack = Stack {
        cluster,
        redis,
        servers,
        url: url.clone(),
        options,
        logs: Vec::new(),
    };
    let (faults, ()) = tokio::join!(inject(&mut stack, shop.start), run_load(shop.clone()));

    // Every event is delivered: wait for them (a delivery claimed by a
    // killed process is sent again when its claim runs out).
    let expected = shop.journal.lock().unwrap().events.clone();
    loop {
        let got = deliveries.lock().unwrap().clone();
        let (counts, _) = received(&got, &secret);
        if missing(&expected, &counts) == 0 || shop.giving_up() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drained = shop.at();

    // ---- the checks
    let figures = check(&shop, &stack, &faults, &deliveries, &secret).await;
    let wall = started.elapsed();
    let report = figures.table(setup_time, drained, wall, &faults);
    eprintln!("{report}");
    drop(nginx);
    figures.assert_clean();
    // Only a clean run's figures are published.
    if std::env::var("JETON_UPDATE_RELIABILITY").is_ok_and(|v| v == "1") {
        write_figures(&report);
    }
}

// ---------------------------------------------------------------- the checks

#[derive(Default)]
struct Figures {
    requests: usize,
    acknowledged: usize,
    checkouts: usize,
    out_of_stock: usize,
    undecided: usize,
    retries: u32,
    in_use: u32,
    replays: u32,
    five_xx_inside: BTreeMap<u16, usize>,
    no_answer_inside: usize,
    five_xx_outside: usize,
    requests_outside: usize,
    slowest: Duration,
    slowest_outside: Duration,
    slowest_outside_what: String,
    no_answer_outside: usize,
    unavailable_without_retry_after: usize,
    lost: usize,
    duplicated: usize,
    wrong_items: usize,
    stock_drift: i64,
    revoked_tokens: u32,
    probes: usize,
    /// 2xx answers to revoked tokens within the allowed second: how often
    /// a process still held a revoked token, and the longest it did.
    revoked_accepted_in_time: usize,
    latest_revoked_accepted: Duration,
    revoked_accepted: usize,
    revoked_accepted_in_outage: usize,
    events_expected: usize,
    events_missing: usize,
    phantom_events: usize,
    deliveries: usize,
    unverified: usize,
    restocks: usize,
    restocks_unknown: usize,
    cancelled: usize,
    panics: usize,
    /// The processes' warnings and errors, shown with a failure.
    warnings: Vec<String>,
    breaches: Vec<String>,
}

/// What the database holds at the end.
struct Stored {
    /// Order id to status.
    orders: HashMap<String, String>,
    /// Order id to its lines (product id, quantity).
    items: HashMap<String, Vec<(String, i64)>>,
    /// Idempotency key to the order it made, if any.
    keys: HashMap<String, Option<String>>,
    /// Product id to stock.
    stocks: HashMap<String, i64>,
}

impl Stored {
    async fn read(url: &str) -> Stored {
        let pool = connect(url).await;
        let rows = |sql: &'static str| {
            let pool = pool.clone();
            async move { sqlx::query(sql).fetch_all(&pool).await.unwrap() }
        };
        let orders = rows("SELECT id, status FROM orders")
            .await
            .iter()
            .map(|row| (row.get("id"), row.get("status")))
            .collect();
        let mut items: HashMap<String, Vec<(String, i64)>> = HashMap::new();
        for row in rows("SELECT order_id, product_id, quantity FROM order_items").await {
            items
                .entry(row.get("order_id"))
                .or_default()
                .push((row.get("product_id"), row.get("quantity")));
        }
        let keys = rows("SELECT idempotency_key, order_id FROM idempotency_keys")
            .await
            .iter()
            .map(|row| (row.get("idempotency_key"), row.get("order_id")))
            .collect();
        let stocks = rows("SELECT id, stock FROM products")
            .await
            .iter()
            .map(|row| (row.get("id"), row.get("stock")))
            .collect();
        pool.close().await;
        Stored {
            orders,
            items,
            keys,
            stocks,
        }
    }
}

async fn check(
    shop: &Shop,
    stack: &Stack,
    faults: &[Fault],
    deliveries: &Deliveries,
    secret: &str,
) -> Figures {
    let stored = Stored::read(&stack.url).await;
    let got = deliveries.lock().unwrap().clone();
    let journal = shop.journal.lock().unwrap();
    let mut f = Figures {
        requests: journal.exchanges.len(),
        replays: journal.replays,
        revoked_tokens: journal.revoked_tokens,
        probes: journal.probes.len(),
        cancelled: journal.cancelled.len(),
        ..Figures::default()
    };
    f.orders(&journal, &stored);
    f.stock(&shop.products, &journal, &stored);
    f.revocations(&journal, faults);
    f.errors(&journal, faults);
    f.webhooks(&journal, &stored, &got, secret);
    f.processes(stack);
    f.breaches.extend(
        journal
            .anomalies
            .iter()
            .map(|line| format!("unexpected: {line}")),
    );
    f
}

impl Figures {
    /// Each acknowledged order exists once, as asked; no key made two.
    fn orders(&mut self, journal: &Journal, stored: &Stored) {
        let Stored {
            orders,
            items,
            keys,
            ..
        } = stored;
        for order in &journal.orders {
            self.retries += order.attempts.saturating_sub(1);
            self.in_use += order.in_use;
            match order.outcome {
                Outcome::Placed => {
                    self.acknowledged += 1;
                    self.checkouts += usize::from(order.checkout);
                    let id = &order.answers[0];
                    if order.answers.iter().any(|other| other != id) {
                        self.duplicated += 1;
                        self.breaches.push(format!(
                            "key {} answered two orders: {:?}",
                            order.key, order.answers
                        ));
                    }
                    if !orders.contains_key(id) {
                        self.lost += 1;
                        self.breaches.push(format!(
                            "order {id} (key {}) was acknowledged and is gone",
                            order.key
                        ));
                        continue;
                    }
                    if keys.get(&order.key) != Some(&Some(id.clone())) {
                        self.duplicated += 1;
                        self.breaches.push(format!(
                            "key {} names {:?}, not its acknowledged order {id}",
                            order.key,
                            keys.get(&order.key)
                        ));
                    }
                    let mut asked = order.items.clone();
                    let mut stored = items.get(id).cloned().unwrap_or_default();
                    asked.sort();
                    stored.sort();
                    if asked != stored {
                        self.wrong_items += 1;
                        self.breaches.push(format!(
                            "order {id} holds {stored:?}, not the {asked:?} asked for"
                        ));
                    }
                }
                Outcome::OutOfStock => {
                    self.out_of_stock += 1;
                    if let Some(Some(id)) = keys.get(&order.key) {
                        self.duplicated += 1;
                        self.breaches.push(format!(
                            "key {} was answered insufficient_stock but made order {id}",
                            order.key
                        ));
                    }
                }
                Outcome::Undecided => self.undecided += 1,
                Outcome::Unexpected => {}
            }
        }
        // Every order of the test was placed with a key: an order no key names
        // was made by a key that then made another.
        let named: HashSet<&String> = keys.values().flatten().collect();
        for id in orders.keys() {
            if !named.contains(id) {
                self.duplicated += 1;
                self.breaches
                    .push(format!("order {id} is named by no idempotency key"));
            }
        }
        for id in &journal.cancelled {
            if orders.get(id).map(String::as_str) != Some("cancelled") {
                self.lost += 1;
                self.breaches.push(format!(
                    "the cancellation of order {id} was acknowledged and is gone"
                ));
            }
        }

        if self.undecided > 0 {
            self.breaches.push(format!(
                "{} orders got no definite answer before the test gave up (a key claimed past its lease?)",
                self.undecided
            ));
        }
    }

    /// Stock + units sold == initial stock + restocks.
    fn stock(&mut self, products: &[String], journal: &Journal, stored: &Stored) {
        let Stored {
            orders,
            items,
            stocks,
            ..
        } = stored;
        // A restock whose answer was lost may or may not have happened.
        for (n, product) in products.iter().enumerate() {
            let initial = if n == 0 { SCARCE_STOCK } else { STOCK };
            let sold: i64 = items
                .iter()
                .filter(|(order, _)| orders.get(*order).map(String::as_str) == Some("placed"))
                .flat_map(|(_, lines)| lines)
                .filter(|(id, _)| id == product)
                .map(|(_, quantity)| quantity)
                .sum();
            let acked = journal
                .restocks
                .iter()
                .filter(|(p, ok)| *p == n && *ok)
                .count() as i64;
            let unknown = journal
                .restocks
                .iter()
                .filter(|(p, ok)| *p == n && !*ok)
                .count() as i64;
            let surplus = stocks[product] + sold - initial - acked * RESTOCK;
            let drift = (0..=unknown)
                .map(|k| (surplus - k * RESTOCK).abs())
                .min()
                .unwrap_or(0);
            if drift != 0 {
                self.breaches.push(format!(
                    "product {n}: stock {} + sold {sold} != {initial} + {acked} restocks (+ up to {unknown} unknown) of {RESTOCK}",
                    stocks[product]
                ));
            }
            self.stock_drift += drift;
            self.restocks += acked as usize;
            self.restocks_unknown += unknown as usize;
        }
    }

    /// No 2xx to a revoked token a second after the acknowledgement, but
    /// while the database was unreachable (and until a second after it was
    /// back).
    fn revocations(&mut self, journal: &Journal, faults: &[Fault]) {
        let outage: Vec<&Fault> = faults
            .iter()
            .filter(|fault| fault.what.starts_with("PostgreSQL"))
            .collect();
        for probe in &journal.probes {
            if !(200..300).contains(&probe.status) {
                continue;
            }
            let after = probe.sent.saturating_sub(probe.acked);
            self.latest_revoked_accepted = self.latest_revoked_accepted.max(after);
            if after <= REVOCATION {
                self.revoked_accepted_in_time += 1;
            } else {
                let allowed = outage.iter().any(|fault| {
                    probe.sent >= fault.start && probe.sent <= fault.back + REVOCATION
                });
                if allowed {
                    self.revoked_accepted_in_outage += 1;
                } else {
                    self.revoked_accepted += 1;
                    self.breaches.push(format!(
                        "a token revoked at {:.2}s worked at {:.2}s",
                        probe.acked.as_secs_f64(),
                        probe.sent.as_secs_f64()
                    ));
                }
            }
        }
    }

    /// No 5xx outside the windows; inside, 502, or 503 with Retry-After.
    fn errors(&mut self, journal: &Journal, faults: &[Fault]) {
        for exchange in &journal.exchanges {
            self.slowest = self.slowest.max(exchange.done - exchange.sent);
            let inside = faults
                .iter()
                .any(|fault| fault.covers(exchange.sent, exchange.done));
            if !inside {
                self.requests_outside += 1;
                let took = exchange.done - exchange.sent;
                if took > self.slowest_outside {
                    self.slowest_outside = took;
                    self.slowest_outside_what =
                        format!("{} at {:.1} s", exchange.what, exchange.sent.as_secs_f64());
                }
            }
            if exchange.status != 0 && exchange.status < 500 {
                continue;
            }
            let when = format!(
                "{} {:.2}-{:.2}s",
                exchange.what,
                exchange.sent.as_secs_f64(),
                exchange.done.as_secs_f64()
            );
            match (inside, exchange.status) {
                (true, 0) => self.no_answer_inside += 1,
                (true, 502) => *self.five_xx_inside.entry(502).or_insert(0) += 1,
                (true, 503) => {
                    *self.five_xx_inside.entry(503).or_insert(0) += 1;
                    if !exchange.retry_after {
                        self.unavailable_without_retry_after += 1;
                        self.breaches
                            .push(format!("503 without Retry-After: {when}"));
                    }
                }
                (true, status) => {
                    *self.five_xx_inside.entry(status).or_insert(0) += 1;
                    self.breaches
                        .push(format!("{status} inside a fault window: {when}"));
                }
                (false, 0) => {
                    self.no_answer_outside += 1;
                    self.breaches
                        .push(format!("no answer outside the fault windows: {when}"));
                }
                (false, status) => {
                    self.five_xx_outside += 1;
                    self.breaches
                        .push(format!("{status} outside the fault windows: {when}"));
                }
            }
        }
    }

    /// Every event of an acknowledged change, delivered at least once.
    /// And none of an order that does not exist, or is not cancelled:
    /// events are written in their change's transaction.
    fn webhooks(
        &mut self,
        journal: &Journal,
        stored: &Stored,
        got: &[(HeaderMap, Bytes)],
        secret: &str,
    ) {
        let (counts, unverified) = received(got, secret);
        for (kind, id) in counts.keys() {
            let status = stored.orders.get(id).map(String::as_str);
            let phantom = match kind.as_str() {
                "order.placed" => status.is_none(),
                "order.cancelled" => status != Some("cancelled"),
                _ => false,
            };
            if phantom {
                self.phantom_events += 1;
                self.breaches.push(format!(
                    "{kind} delivered for order {id}, which is {status:?}"
                ));
            }
        }
        self.deliveries = got.len();
        self.unverified = unverified;
        self.events_expected = journal.events.len();
        self.events_missing = missing(&journal.events, &counts);
        if self.events_missing > 0 {
            self.breaches.push(format!(
                "{} webhook events never delivered",
                self.events_missing
            ));
        }
        if unverified > 0 {
            self.breaches
                .push(format!("{unverified} webhook deliveries did not verify"));
        }
    }

    /// No process panicked, the killed ones included.
    fn processes(&mut self, stack: &Stack) {
        let logs = stack
            .logs
            .iter()
            .cloned()
            .chain(stack.servers.iter().map(Server::log_text));
        for log in logs {
            for line in log.lines() {
                if line.contains("panicked") {
                    self.panics += 1;
                    self.breaches.push(format!("a process panicked: {line}"));
                } else if line.contains("WARN") || line.contains("ERROR") {
                    self.warnings.push(line.to_owned());
                }
            }
        }
    }

    fn table(
        &self,
        setup: Duration,
        drained: Duration,
        wall: Duration,
        faults: &[Fault],
    ) -> String {
        let kills = faults
            .iter()
            .filter(|fault| fault.what.starts_with("SIGKILL"))
            .count();
        let inside: usize = self.five_xx_inside.values().sum();
        let by_status = self
            .five_xx_inside
            .iter()
            .map(|(status, n)| format!("{n}× {status}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = [
            ("requests", self.requests.to_string()),
            (
                "acknowledged orders (201), of which cart checkouts",
                format!("{} ({})", self.acknowledged, self.checkouts),
            ),
            (
                "orders refused: out of stock (409)",
                self.out_of_stock.to_string(),
            ),
            (
                "retries (order attempts after the first)",
                self.retries.to_string(),
            ),
            (
                "… of which answered `idempotency_key_in_use`",
                self.in_use.to_string(),
            ),
            (
                "replays checked (same key and body again)",
                self.replays.to_string(),
            ),
            (
                "orders left without a definite answer",
                self.undecided.to_string(),
            ),
            (
                "faults injected",
                format!(
                    "{} ({kills} SIGKILL and restart, 1 PostgreSQL restart, 1 Redis restart)",
                    faults.len()
                ),
            ),
            (
                "5xx inside the fault windows",
                if inside == 0 {
                    "0".to_owned()
                } else {
                    format!("{inside} ({by_status})")
                },
            ),
            (
                "requests cut off inside the fault windows (no answer)",
                self.no_answer_inside.to_string(),
            ),
            (
                "slowest answer (outside the fault windows)",
                format!(
                    "{:.1} s ({:.1} s: {})",
                    self.slowest.as_secs_f64(),
                    self.slowest_outside.as_secs_f64(),
                    self.slowest_outside_what
                ),
            ),
            (
                "requests outside the fault windows",
                self.requests_outside.to_string(),
            ),
            (
                "**5xx outside the fault windows**",
                self.five_xx_outside.to_string(),
            ),
            (
                "no answer outside the fault windows",
                self.no_answer_outside.to_string(),
            ),
            (
                "503 without `Retry-After`",
                self.unavailable_without_retry_after.to_string(),
            ),
            ("**lost** (acknowledged, then gone)", self.lost.to_string()),
            (
                "**duplicated** (a key, two orders)",
                self.duplicated.to_string(),
            ),
            ("orders not as asked for", self.wrong_items.to_string()),
            ("**stock drift** (units)", self.stock_drift.to_string()),
            (
                "restocks acknowledged (and with a lost answer)",
                format!("{} ({})", self.restocks, self.restocks_unknown),
            ),
            ("orders cancelled", self.cancelled.to_string()),
            (
                "tokens revoked and probed (probes)",
                format!("{} ({})", self.revoked_tokens, self.probes),
            ),
            (
                "2xx to a revoked token within its second (latest, after the `204`)",
                format!(
                    "{} ({} ms)",
                    self.revoked_accepted_in_time,
                    self.latest_revoked_accepted.as_millis()
                ),
            ),
            (
                "**revoked-accepted** (a 2xx over 1 s after the revocation)",
                self.revoked_accepted.to_string(),
            ),
            (
                "… accepted within the outage allowance",
                self.revoked_accepted_in_outage.to_string(),
            ),
            (
                "webhook events of acknowledged changes (missing)",
                format!("{} ({})", self.events_expected, self.events_missing),
            ),
            (
                "webhook events of orders that do not exist (or are not cancelled)",
                self.phantom_events.to_string(),
            ),
            (
                "webhook deliveries received (not verifying)",
                format!("{} ({})", self.deliveries, self.unverified),
            ),
            ("process panics", self.panics.to_string()),
            (
                "wall time: setup, load and drain, total",
                format!(
                    "{:.0} s, {:.0} s, {:.0} s",
                    setup.as_secs_f64(),
                    drained.as_secs_f64(),
                    wall.as_secs_f64()
                ),
            ),
        ];
        let mut table = String::from("| figure | value |\n|---|---|\n");
        for (name, value) in rows {
            table.push_str(&format!("| {name} | {value} |\n"));
        }
        table
    }

    #[track_caller]
    fn assert_clean(&self) {
        assert!(
            self.acknowledged > 0 && self.revoked_tokens > 0,
            "the load did too little to prove anything"
        );
        assert!(
            self.breaches.is_empty(),
            "{} breaches:\n{}\nthe processes' warnings and errors ({}):\n{}",
            self.breaches.len(),
            self.breaches
                .iter()
                .take(40)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n"),
            self.warnings.len(),
            self.latest_warnings(80),
        );
    }

    /// The last `n` warnings of every process, in time order (each line
    /// starts with its time).
    fn latest_warnings(&self, n: usize) -> String {
        let mut lines = self.warnings.clone();
        lines.sort();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// Writes the figures into `docs/reliability.md`, between its markers.
fn write_figures(table: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/reliability.md");
    let text = std::fs::read_to_string(path).expect("docs/reliability.md");
    let (before, rest) = text.split_once(FIGURES_START).expect("the start marker");
    let (_, after) = rest.split_once(FIGURES_END).expect("the end marker");
    let text = format!("{before}{FIGURES_START}\n{table}{FIGURES_END}{after}");
    std::fs::write(path, text).expect("write docs/reliability.md");
}
