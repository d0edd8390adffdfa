//! Webhooks (API.md §14): endpoints and their secrets, every event raised
//! by the API action that causes it, signatures a Standard Webhooks library
//! verifies, the retry schedule and the 5-day disable on the app's clock,
//! nothing lost while the receiver is down, and secret rotation.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use jeton::{
    config::Config,
    domain::{client::ClientKind, staff::Role},
    webhooks::{OutboundSender, outbound::AddressPolicy, worker::Worker},
};
use serde_json::{Value, json};

use crate::{
    on_both_databases,
    support::{PASSWORD, TestApp, s},
};

fn allowing_http() -> Config {
    Config {
        webhook_allow_http_private: true,
        ..Config::default()
    }
}

// ---------------------------------------------------------------- the receiver

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Got {
    headers: HeaderMap,
    body: Bytes,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn id(&self) -> String {
        self.headers["webhook-id"].to_str().unwrap().to_owned()
    }

    /// Verified with the Standard Webhooks reference crate.
    fn verifies_with(&self, secret: &str) -> bool {
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .verify(&self.body, &self.headers)
            .is_ok()
    }
}

/// What the receiver keeps, and the status it answers with.
type Kept = (Arc<Mutex<Vec<Got>>>, Arc<AtomicU16>);

/// A receiver on 127.0.0.1 that keeps what it gets and answers `status`.
#[derive(Clone)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    status: Arc<AtomicU16>,
    addr: SocketAddr,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Receiver::on(listener)
    }

    /// On `addr`, once it is free again (a receiver coming back up).
    async fn start_on(addr: SocketAddr) -> Receiver {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        Receiver::on(listener)
    }

    fn on(listener: tokio::net::TcpListener) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        async fn take(
            State((got, status)): State<Kept>,
            headers: HeaderMap,
            body: Bytes,
        ) -> (StatusCode, &'static str) {
            got.lock().unwrap().push(Got { headers, body });
            let status = StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap();
            (status, "thanks")
        }
        let app = Router::new()
            .route("/hook", post(take))
            .with_state((got.clone(), status.clone()));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            got,
            status,
            addr,
            task: Arc::new(task),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    fn stop(&self) {
        self.task.abort();
    }
}

fn worker(app: &TestApp) -> Worker {
    Worker::new(
        app.db.clone(),
        Arc::new(OutboundSender::new(AddressPolicy::AllowHttpAndPrivate)),
    )
}

/// `POST /admin/webhooks`: (webhook, secret).
async fn create_webhook(app: &TestApp, admin: &str, url: &str, events: Value) -> (Value, String) {
    let res = app
        .post_json_as(
            "/api/v1/admin/webhooks",
            admin,
            json!({"url": url, "events": events, "description": "the shop's ERP"}),
        )
        .await;
    res.expect(201);
    let body = res.json();
    (body["webhook"].clone(), s(&body["secret"]))
}

async fn deliveries(app: &TestApp, admin: &str, webhook_id: &str) -> Vec<Value> {
    let res = app
        .get_as(
            &format!("/api/v1/admin/webhooks/{webhook_id}/deliveries?limit=100"),
            admin,
        )
        .await;
    res.expect(200);
    res.json()["data"].as_array().unwrap().clone()
}

// ---------------------------------------------------------------- endpoints

on_both_databases!(
    config = allowing_http();
    endpoints_are_managed_and_their_secret_shown_once,
);

async fn endpoints_are_managed_and_their_secret_shown_once(app: TestApp) {
    let admin = app.admin_key().await;
    let (webhook, secret) = create_webhook(
        &app,
        &admin,
        "https://hooks.shop.example/jeton",
        json!(["order.placed", "order.cancelled"]),
    )
    .await;
    let raw = secret.strip_prefix("whsec_").expect("a whsec_ secret");
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .unwrap();
    assert_eq!(bytes.len(), 32);
    assert_eq!(webhook["url"], "https://hooks.shop.example/jeton");
    assert_eq!(
        webhook["events"],
        json!(["order.placed", "order.cancelled"])
    );
    assert_eq!(webhook["description"], "the shop's ERP");
    assert_eq!(webhook["disabled_at"], Value::Null);
    let id = s(&webhook["id"]);

    // Never shown again.
    let one = app
        .get_as(&format!("/api/v1/admin/webhooks/{id}"), &admin)
        .await;
    one.expect(200);
    assert_eq!(one.json(), webhook);
    let list = app.get_as("/api/v1/admin/webhooks", &admin).await;
    list.expect(200);
    assert_eq!(list.json()["data"], json!([webhook]));
    for text in [one.text(), list.text()] {
        assert!(!text.contains(raw), "{text}");
    }

    let patched = app
        .patch_json_as(
            &format!("/api/v1/admin/webhooks/{id}"),
            &admin,
            json!({"events": ["*"], "description": "all of it", "disabled": true}),
        )
        .await;
    patched.expect(200);
    let patched = patched.json();
    assert_eq!(patched["events"], json!(["*"]));
    assert_eq!(patched["description"], "all of it");
    assert!(patched["disabled_at"].is_string());
    assert_eq!(patched["disabled_reason"], "disabled by an admin");
    let enabled = app
        .patch_json_as(
            &format!("/api/v1/admin/webhooks/{id}"),
            &admin,
            json!({"disabled": false}),
        )
        .await;
    enabled.expect(200);
    assert_eq!(enabled.json()["disabled_at"], Value::Null);
    assert_eq!(enabled.json()["disabled_reason"], Value::Null);

    // What is no endpoint URL or subscription is refused, field by field.
    for (body, field) in [
        (
            json!({"url": "ftp://hooks.shop.example/", "events": ["*"]}),
            "url",
        ),
        (
            json!({"url": "https://user:pw@hooks.shop.example/", "events": ["*"]}),
            "url",
        ),
        (json!({"url": "not a url", "events": ["*"]}), "url"),
        (
            json!({"url": "https://hooks.shop.example/", "events": []}),
            "events",
        ),
        (
            json!({"url": "https://hooks.shop.example/", "events": ["order.shipped"]}),
            "events",
        ),
        (
            json!({"url": "https://hooks.shop.example/", "events": ["*"], "description": "a\u{0}b"}),
            "description",
        ),
    ] {
        app.post_json_as("/api/v1/admin/webhooks", &admin, body)
            .await
            .expect_invalid(field);
    }
    app.post_json_as(
        "/api/v1/admin/webhooks",
        &admin,
        json!({"url": "https://hooks.shop.example/", "events": ["*"], "secret": "mine"}),
    )
    .await
    .expect_invalid("secret");

    // Reading takes clients:read, writing clients:write.
    let (_, reader) = app.client(ClientKind::Secret, &["clients:read"], &[]).await;
    app.get_as("/api/v1/admin/webhooks", &reader)
        .await
        .expect(200);
    app.post_json_as(
        "/api/v1/admin/webhooks",
        &reader,
        json!({"url": "https://hooks.shop.example/", "events": ["*"]}),
    )
    .await
    .expect(403);

    app.delete_as(&format!("/api/v1/admin/webhooks/{id}"), &admin)
        .await
        .expect(204);
    app.get_as(&format!("/api/v1/admin/webhooks/{id}"), &admin)
        .await
        .expect(404);
    app.delete_as(&format!("/api/v1/admin/webhooks/{id}"), &admin)
        .await
        .expect(404);
}

on_both_databases!(http_and_userinfo_are_refused_without_the_flag);

async fn http_and_userinfo_are_refused_without_the_flag(app: TestApp) {
    let admin = app.admin_key().await;
    app.post_json_as(
        "/api/v1/admin/webhooks",
        &admin,
        json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]}),
    )
    .await
    .expect_invalid("url");
}

// ---------------------------------------------------------------- events

on_both_databases!(
    config = allowing_http();
    every_event_is_delivered_signed_with_its_resource_and_no_secret,
);

async fn every_event_is_delivered_signed_with_its_resource_and_no_secret(app: TestApp) {
    let receiver = Receiver::start().await;
    let admin = app.admin_key().await;
    let (webhook, secret) = create_webhook(&app, &admin, &receiver.url(), json!(["*"])).await;
    let (only_orders, orders_secret) =
        create_webhook(&app, &admin, &receiver.url(), json!(["order.placed"])).await;
    let mut secrets: Vec<String> = vec![admin.clone()];

    let raised = raise_every_event(&app, &admin).await;
    secrets.extend(raised.secrets.iter().cloned());
    let Raised {
        client_id,
        client_key,
        customer_id,
        order_id,
        owner,
        member_id,
        ..
    } = raised;

    // Nothing leaves before the worker runs; then everything does.
    assert!(receiver.got().is_empty());
    let attempted = worker(&app).deliver_due().await.unwrap();
    let got = receiver.got();
    assert_eq!(attempted, got.len());

    let mut types: Vec<String> = Vec::new();
    for delivery in &got {
        assert!(
            delivery.verifies_with(&secret) || delivery.verifies_with(&orders_secret),
            "{:?}",
            delivery.headers
        );
        let text = String::from_utf8(delivery.body.to_vec()).unwrap();
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "a secret in {text}");
        }
        for word in ["hash", "password", "$argon2"] {
            assert!(!text.contains(word), "{word} in {text}");
        }
        let body = delivery.json();
        let mut keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["data", "timestamp", "type"]);
        types.push(s(&body["type"]));
    }
    // The `order.placed` endpoint got its one event, under its own secret.
    let placed_only: Vec<_> = deliveries(&app, &admin, &s(&only_orders["id"])).await;
    assert_eq!(placed_only.len(), 1);
    assert_eq!(placed_only[0]["event_type"], "order.placed");
    types.sort();
    assert_eq!(
        types,
        [
            "client.created", // ERP
            "client.created", // the storefront's publishable client
            "client.revoked",
            "client.updated",
            "customer.created",
            "customer.tokens_revoked", // the customer's revoke-all
            "customer.tokens_revoked", // an admin's
            "key.rotated",
            "key.used_from_browser", // two refusals, one event
            "order.cancelled",
            "order.placed",
            "order.placed",  // to both endpoints
            "staff.changed", // the owner made
            "staff.changed", // Sam made
            "staff.changed", // Sam's new role
            "staff.signed_in",
        ]
    );

    let by_type = |kind: &str| -> Vec<Value> {
        got.iter()
            .map(Got::json)
            .filter(|body| body["type"] == kind)
            .map(|body| body["data"].clone())
            .collect()
    };
    let revoked = by_type("client.revoked").remove(0);
    assert_eq!(revoked["id"], client_id.as_str());
    assert_eq!(revoked["name"], "ERP two");
    assert!(revoked["revoked_at"].is_string());
    assert_eq!(by_type("client.updated")[0]["name"], "ERP two");
    let rotated = by_type("key.rotated").remove(0);
    assert_eq!(rotated["client_id"], client_id.as_str());
    assert_eq!(rotated["kind"], "secret_key");
    assert_eq!(rotated["last4"].as_str().unwrap().len(), 4);
    let browser = by_type("key.used_from_browser").remove(0);
    assert_eq!(browser["credential"]["client_id"], client_id.as_str());
    assert_eq!(
        browser["credential"]["last4"],
        &client_key[client_key.len() - 4..]
    );
    assert_eq!(browser["origin"], "https://evil.example");
    let customer = by_type("customer.created").remove(0);
    assert_eq!(customer["id"], customer_id.as_str());
    assert_eq!(customer["email"], "ada@example.com");
    for revoked in by_type("customer.tokens_revoked") {
        assert_eq!(revoked["id"], customer_id.as_str());
    }
    let placed = by_type("order.placed").remove(0);
    assert_eq!(placed["id"], order_id.as_str());
    assert_eq!(placed["customer_id"], customer_id.as_str());
    assert_eq!(placed["status"], "placed");
    assert_eq!(placed["items"][0]["quantity"], 2);
    let cancelled = by_type("order.cancelled").remove(0);
    assert_eq!(cancelled["id"], order_id.as_str());
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["items"], placed["items"]);
    let signed_in = by_type("staff.signed_in").remove(0);
    assert_eq!(signed_in["id"], owner.staff_id.as_str());
    assert!(signed_in["last_login_at"].is_string());
    let changed = by_type("staff.changed");
    assert!(
        changed
            .iter()
            .any(|m| m["id"] == member_id.as_str() && m["role"] == "support")
    );

    // The log: each delivered once, with the receiver's answer.
    let log = deliveries(&app, &admin, &s(&webhook["id"])).await;
    assert_eq!(log.len(), got.len() - 1);
    for delivery in &log {
        assert_eq!(delivery["status"], "succeeded", "{delivery}");
        assert_eq!(delivery["attempts"], 1);
        assert_eq!(delivery["response_code"], 200);
        assert_eq!(delivery["response_body"], "thanks");
        assert!(delivery["last_attempt_at"].is_string());
    }
    // Nothing is sent twice.
    assert_eq!(worker(&app).deliver_due().await.unwrap(), 0);
    let mut ids: Vec<String> = receiver.got().iter().map(Got::id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        got.len() - 1,
        "one id per event, two deliveries of order.placed"
    );
}

/// What [`raise_every_event`] made.
struct Raised {
    client_id: String,
    client_key: String,
    customer_id: String,
    order_id: String,
    owner: crate::support::staff::StaffSession,
    member_id: String,
    /// Every key, token and CSRF token it saw.
    secrets: Vec<String>,
}

/// Raises every event type of API.md §14 but `credential.exposed` (a leak
/// report's, §15), each through the API action that causes it.
async fn raise_every_event(app: &TestApp, admin: &str) -> Raised {
    let mut secrets = Vec::new();
    // client.created, client.updated, key.rotated, client.revoked
    let created = app
        .create_client(
            admin,
            json!({"name": "ERP", "kind": "secret", "abilities": ["products:read"]}),
        )
        .await;
    created.expect(201);
    let client_id = s(&created.json()["client"]["id"]);
    let client_key = s(&created.json()["key"]);
    secrets.push(client_key.clone());
    app.patch_json_as(
        &format!("/api/v1/admin/clients/{client_id}"),
        admin,
        json!({"name": "ERP two"}),
    )
    .await
    .expect(200);
    // key.used_from_browser: twice, raised once.
    for _ in 0..2 {
        app.products(&client_key, Some("https://evil.example"))
            .await
            .expect_refused("secret_key_in_browser");
    }
    let rotated = app.rotated(admin, &client_id, Some(0)).await;
    secrets.push(rotated);
    app.delete_as(&format!("/api/v1/admin/clients/{client_id}"), admin)
        .await
        .expect(204);

    // customer.created, customer.tokens_revoked (the customer's own and an
    // admin's), order.placed, order.cancelled
    let pk = app.publishable_key().await;
    let customer_id = app.register(&pk, "ada@example.com", PASSWORD).await;
    let token = app.login_token(&pk, "ada@example.com").await;
    secrets.push(token.clone());
    let product = app.product("MUG", 1200, "EUR", 5).await;
    let order = app
        .post_json_as(
            "/api/v1/orders",
            &token,
            json!({"items": [{"product_id": product.id, "quantity": 2}]}),
        )
        .await;
    order.expect(201);
    let order_id = s(&order.json()["id"]);
    app.post_json_as(
        &format!("/api/v1/admin/orders/{order_id}/cancel"),
        admin,
        json!({}),
    )
    .await
    .expect(200);
    app.delete_as("/api/v1/me/tokens", &token).await.expect(204);
    app.post_json_as(
        &format!("/api/v1/admin/customers/{customer_id}/revoke-tokens"),
        admin,
        json!({}),
    )
    .await
    .expect(204);

    // staff.signed_in, staff.changed
    let owner = app.staff(Role::Owner).await;
    secrets.push(owner.token.clone());
    secrets.push(owner.csrf.clone());
    let member_id = app.staff_member("sam@shop.example", Role::Viewer).await;
    app.req(
        axum::http::Method::PATCH,
        &format!("/api/v1/admin/staff/{member_id}"),
    )
    .staff(&owner)
    .json(json!({"role": "support"}))
    .send()
    .await
    .expect(200);

    Raised {
        client_id,
        client_key,
        customer_id,
        order_id,
        owner,
        member_id,
        secrets,
    }
}

// ---------------------------------------------------------------- delivery

on_both_databases!(
    config = allowing_http();
    failures_are_retried_on_schedule_then_failed_and_the_endpoint_disabled_after_5_days,
    nothing_is_lost_while_the_receiver_is_down,
    a_rotated_secret_signs_beside_the_new_one_for_24_hours,
);

/// `POST /admin/webhooks/{id}/test`: the delivery.
async fn test_event(app: &TestApp, admin: &str, webhook_id: &str) -> Value {
    let res = app
        .post_json_as(
            &format!("/api/v1/admin/webhooks/{webhook_id}/test"),
            admin,
            json!({}),
        )
        .await;
    res.expect(202);
    res.json()
}

async fn failures_are_retried_on_schedule_then_failed_and_the_endpoint_disabled_after_5_days(
    app: TestApp,
) {
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let admin = app.admin_key().await;
    // Subscribed to nothing a test raises but `webhook.test`, sent anyway.
    let (webhook, secret) =
        create_webhook(&app, &admin, &receiver.url(), json!(["order.placed"])).await;
    let id = s(&webhook["id"]);
    let delivery = test_event(&app, &admin, &id).await;
    assert_eq!(delivery["status"], "pending");
    assert_eq!(delivery["event_type"], "webhook.test");
    let worker = worker(&app);
    let started = app.now();

    // 8 attempts in all, after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
    let waits = [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600];
    assert_eq!(worker.deliver_due().await.unwrap(), 1);
    for (n, wait) in waits.into_iter().enumerate() {
        app.advance(Duration::from_secs(wait - 1));
        assert_eq!(
            worker.deliver_due().await.unwrap(),
            0,
            "early, before attempt {}",
            n + 2
        );
        app.advance(Duration::from_secs(1));
        assert_eq!(worker.deliver_due().await.unwrap(), 1, "attempt {}", n + 2);
    }
    let log = deliveries(&app, &admin, &id).await;
    assert_eq!(log[0]["status"], "failed");
    assert_eq!(log[0]["attempts"], 8);
    assert_eq!(log[0]["response_code"], 500);
    assert_eq!(log[0]["response_body"], "thanks");
    assert_eq!(log[0]["next_attempt_at"], Value::Null);
    let got = receiver.got();
    assert_eq!(got.len(), 8);
    // The same event, the same id, on every attempt; each signed.
    assert!(
        got.iter()
            .all(|g| g.id() == got[0].id() && g.verifies_with(&secret))
    );
    assert_eq!(got[0].id(), s(&delivery["event_id"]));

    // A manual retry: one more attempt.
    let retried = app
        .post_json_as(
            &format!(
                "/api/v1/admin/webhooks/{id}/deliveries/{}/retry",
                s(&delivery["id"])
            ),
            &admin,
            json!({}),
        )
        .await;
    retried.expect(202);
    assert_eq!(retried.json()["status"], "pending");
    assert_eq!(worker.deliver_due().await.unwrap(), 1);
    let log = deliveries(&app, &admin, &id).await;
    assert_eq!(
        (s(&log[0]["status"]), log[0]["attempts"].as_i64()),
        ("failed".to_owned(), Some(9))
    );

    // Failing since the first attempt: still enabled until 5 days of it.
    let until_5_days = (started + time::Duration::days(5)) - app.now();
    app.advance(Duration::from_secs(
        until_5_days.whole_seconds() as u64 - 10,
    ));
    worker.deliver_due().await.unwrap();
    let endpoint = app
        .get_as(&format!("/api/v1/admin/webhooks/{id}"), &admin)
        .await
        .json();
    assert_eq!(endpoint["disabled_at"], Value::Null);
    app.advance(Duration::from_secs(10));
    worker.deliver_due().await.unwrap();
    let endpoint = app
        .get_as(&format!("/api/v1/admin/webhooks/{id}"), &admin)
        .await
        .json();
    assert!(endpoint["disabled_at"].is_string(), "{endpoint}");
    assert_eq!(
        endpoint["disabled_reason"],
        "every delivery failed for 5 days"
    );

    // Disabled: sent nothing, even a test.
    receiver.answer(200);
    let waiting = test_event(&app, &admin, &id).await;
    app.advance(Duration::from_secs(60));
    assert_eq!(worker.deliver_due().await.unwrap(), 0);
    assert_eq!(receiver.got().len(), 9);

    // Enabled again: what waited goes out.
    app.patch_json_as(
        &format!("/api/v1/admin/webhooks/{id}"),
        &admin,
        json!({"disabled": false}),
    )
    .await
    .expect(200);
    assert_eq!(worker.deliver_due().await.unwrap(), 1);
    let got = receiver.got();
    assert_eq!(got.len(), 10);
    assert_eq!(got[9].id(), s(&waiting["event_id"]));
    let log = deliveries(&app, &admin, &id).await;
    assert_eq!(log[0]["status"], "succeeded");
}

async fn nothing_is_lost_while_the_receiver_is_down(app: TestApp) {
    // A port with nothing listening: the receiver is down.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let admin = app.admin_key().await;
    let url = format!("http://{addr}/hook");
    let (webhook, secret) = create_webhook(&app, &admin, &url, json!(["customer.created"])).await;
    let id = s(&webhook["id"]);
    let pk = app.publishable_key().await;
    let mut customers = Vec::new();
    for n in 0..5 {
        customers.push(app.customer(&format!("c{n}@example.com")).await.0);
    }
    let worker = worker(&app);
    assert_eq!(worker.deliver_due().await.unwrap(), 5);
    let log = deliveries(&app, &admin, &id).await;
    assert_eq!(log.len(), 5);
    for delivery in &log {
        assert_eq!(delivery["status"], "pending");
        assert_eq!(delivery["attempts"], 1);
        assert_eq!(delivery["response_code"], Value::Null);
        assert!(delivery["error"].is_string(), "{delivery}");
    }
    // More while it is down.
    customers.push(app.register(&pk, "late@example.com", PASSWORD).await);

    let receiver = Receiver::start_on(addr).await;
    app.advance(Duration::from_secs(5));
    assert_eq!(worker.deliver_due().await.unwrap(), 6);
    let got = receiver.got();
    let mut arrived: Vec<String> = got.iter().map(|g| s(&g.json()["data"]["id"])).collect();
    arrived.sort();
    customers.sort();
    assert_eq!(arrived, customers);
    assert!(got.iter().all(|g| g.verifies_with(&secret)));
    assert!(
        deliveries(&app, &admin, &id)
            .await
            .iter()
            .all(|d| d["status"] == "succeeded")
    );
    receiver.stop();
}

async fn a_rotated_secret_signs_beside_the_new_one_for_24_hours(app: TestApp) {
    let receiver = Receiver::start().await;
    let admin = app.admin_key().await;
    let (webhook, old) = create_webhook(&app, &admin, &receiver.url(), json!(["*"])).await;
    let id = s(&webhook["id"]);
    let res = app
        .post_json_as(
            &format!("/api/v1/admin/webhooks/{id}/rotate-secret"),
            &admin,
            json!({}),
        )
        .await;
    res.expect(200);
    let new = s(&res.json()["secret"]);
    assert!(new.starts_with("whsec_") && new != old);
    let endpoint = app
        .get_as(&format!("/api/v1/admin/webhooks/{id}"), &admin)
        .await
        .json();
    assert!(endpoint["previous_secret_expires_at"].is_string());

    let worker = worker(&app);
    test_event(&app, &admin, &id).await;
    worker.deliver_due().await.unwrap();
    let first = receiver.got().remove(0);
    assert!(first.verifies_with(&old) && first.verifies_with(&new));
    assert_eq!(
        first.headers["webhook-signature"]
            .to_str()
            .unwrap()
            .split(' ')
            .count(),
        2
    );

    app.advance(Duration::from_secs(24 * 3600 + 1));
    test_event(&app, &admin, &id).await;
    worker.deliver_due().await.unwrap();
    let second = receiver.got().remove(1);
    assert!(second.verifies_with(&new));
    assert!(!second.verifies_with(&old));
    assert_eq!(
        second.headers["webhook-signature"]
            .to_str()
            .unwrap()
            .split(' ')
            .count(),
        1
    );

    app.post_json_as(
        &format!(
            "/api/v1/admin/webhooks/{}/rotate-secret",
            jeton::domain::ids::new_id()
        ),
        &admin,
        json!({}),
    )
    .await
    .expect(404);
}

// ---------------------------------------------------------------- a receiver in Python

/// The virtualenv's Python, if it has the Standard Webhooks library: the one
/// `JETON_PYTHON_VENV` names (`.ci/run` makes it and sets it), else `.venv`
/// in the workspace.
fn python_with_standardwebhooks() -> Option<std::path::PathBuf> {
    let venv = std::env::var_os("JETON_PYTHON_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv")
        });
    let python = venv.join("bin/python");
    let has = python.is_file()
        && std::process::Command::new(&python)
            .args(["-c", "import standardwebhooks"])
            .status()
            .is_ok_and(|status| status.success());
    has.then_some(python)
}

on_both_databases!(
    config = allowing_http();
    a_python_standard_webhooks_receiver_verifies_every_event_type,
);

async fn a_python_standard_webhooks_receiver_verifies_every_event_type(app: TestApp) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let Some(python) = python_with_standardwebhooks() else {
        let message = "the Python receiver needs standardwebhooks in the virtualenv \
                       JETON_PYTHON_VENV names (pip install -r .ci/python-tools.txt)";
        if std::env::var("JETON_REQUIRE_PYTHON_TOOLS").is_ok_and(|v| v == "1") {
            panic!("{message}");
        }
        eprintln!("NOTICE: skipped: {message}");
        return;
    };
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/api/support/webhook_receiver.py"
    );
    let mut child = tokio::process::Command::new(python)
        .arg(script)
        .arg(secret_file.path())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port: u16 = lines.next_line().await.unwrap().unwrap().parse().unwrap();
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                seen.lock()
                    .unwrap()
                    .push(serde_json::from_str(&line).unwrap());
            }
        })
    };

    let admin = app.admin_key().await;
    let url = format!("http://127.0.0.1:{port}/hook");
    let (webhook, secret) = create_webhook(&app, &admin, &url, json!(["*"])).await;
    std::fs::write(secret_file.path(), &secret).unwrap();
    let id = s(&webhook["id"]);
    raise_every_event(&app, &admin).await;
    test_event(&app, &admin, &id).await;
    // `credential.exposed`: a leak report of a live secret key (API.md §15).
    let (_, leaked) = app
        .client(ClientKind::Secret, &["products:read"], &[])
        .await;
    app.post_json_as(
        "/api/v1/admin/leaks",
        &admin,
        json!({"tokens": [leaked], "source": "github", "url": "https://github.com/shop/leak/blob/main/.env"}),
    )
    .await
    .expect(200);

    let attempted = worker(&app).deliver_due().await.unwrap();
    for _ in 0..100 {
        if seen.lock().unwrap().len() >= attempted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), attempted);
    for line in &seen {
        assert_eq!(line["verified"], true, "{line}");
    }
    let mut types: Vec<String> = seen.iter().map(|line| s(&line["type"])).collect();
    types.sort();
    types.dedup();
    let mut expected: Vec<&str> = jeton::webhooks::events::EVENT_TYPES.to_vec();
    expected.push("webhook.test");
    expected.sort_unstable();
    assert_eq!(types, expected);
    for delivery in deliveries(&app, &admin, &id).await {
        assert_eq!(delivery["status"], "succeeded", "{delivery}");
        assert_eq!(delivery["response_code"], 204);
    }
    reader.abort();
}

// ---------------------------------------------------------------- real processes

mod processes {
    use std::time::Instant;

    use super::*;
    use crate::support::{
        Backend,
        process::{Server, cli_key, free_port, keyed_database},
    };

    /// Waits up to `limit` for the receiver to hold `count` deliveries.
    async fn until_received(receiver: &Receiver, count: usize, limit: Duration) -> Vec<Got> {
        let deadline = Instant::now() + limit;
        loop {
            let got = receiver.got();
            if got.len() >= count || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A secret key with `admin` and no rate limit, for bursts.
    fn burst_key(url: &str) -> String {
        cli_key(
            url,
            &[
                "--name",
                "Burst",
                "--kind",
                "secret",
                "--ability",
                "admin",
                "--rate-limit",
                "none",
            ],
        )
    }

    async fn create(server: &Server, admin: &str, url: &str) -> (String, String) {
        let reply = server
            .call(
                "POST",
                "/api/v1/admin/webhooks",
                Some(admin),
                Some(&json!({"url": url, "events": ["*"]})),
            )
            .await;
        reply.expect(201);
        (
            s(&reply.json()["webhook"]["id"]),
            s(&reply.json()["secret"]),
        )
    }

    on_both_databases!(
        two_processes_deliver_a_burst_of_1000_events_each_once,
        a_server_killed_with_sigkill_loses_no_pending_delivery,
        the_command_line_raises_the_same_events,
    );

    async fn the_command_line_raises_the_same_events(backend: Backend) {
        let Some(keyed) = keyed_database(backend, &[]).await else {
            return;
        };
        let server = Server::start(&keyed.url, &["--webhook-allow-http-private"]).await;
        let receiver = Receiver::start().await;
        let (_, secret) = create(&server, &keyed.admin, &receiver.url()).await;

        let run = crate::support::process::jeton(
            &keyed.url,
            &[
                "client",
                "create",
                "--name",
                "ERP",
                "--kind",
                "secret",
                "--ability",
                "products:read",
                "--json",
            ],
        );
        run.ok();
        let client_id = s(&run.json()["client_id"]);
        crate::support::process::jeton(&keyed.url, &["client", "rotate", &client_id]).ok();
        crate::support::process::jeton(&keyed.url, &["client", "revoke", &client_id]).ok();

        let got = until_received(&receiver, 3, Duration::from_secs(30)).await;
        let mut types: Vec<String> = got.iter().map(|g| s(&g.json()["type"])).collect();
        types.sort();
        assert_eq!(types, ["client.created", "client.revoked", "key.rotated"]);
        assert!(got.iter().all(|g| g.verifies_with(&secret)));
        for delivery in &got {
            let body = delivery.json();
            let about = if body["type"] == "key.rotated" {
                &body["data"]["client_id"]
            } else {
                &body["data"]["id"]
            };
            assert_eq!(about, client_id.as_str(), "{body}");
        }
    }

    async fn two_processes_deliver_a_burst_of_1000_events_each_once(backend: Backend) {
        let Some(keyed) = keyed_database(backend, &[]).await else {
            return;
        };
        let admin = burst_key(&keyed.url);
        let options = ["--webhook-allow-http-private"];
        let a = Arc::new(Server::start(&keyed.url, &options).await);
        let b = Arc::new(Server::start(&keyed.url, &options).await);
        let receiver = Receiver::start().await;
        let (id, secret) = create(&a, &admin, &receiver.url()).await;

        // 1,000 events, half through each process, 10 at a time.
        let mut events = Vec::new();
        for batch in 0..100 {
            let mut calls = tokio::task::JoinSet::new();
            for n in 0..10 {
                let server = if (batch + n) % 2 == 0 {
                    a.clone()
                } else {
                    b.clone()
                };
                let (admin, id) = (admin.clone(), id.clone());
                calls.spawn(async move {
                    let path = format!("/api/v1/admin/webhooks/{id}/test");
                    let reply = server.call("POST", &path, Some(&admin), None).await;
                    reply.expect(202);
                    s(&reply.json()["event_id"])
                });
            }
            while let Some(event) = calls.join_next().await {
                events.push(event.unwrap());
            }
        }

        let got = until_received(&receiver, 1000, Duration::from_secs(120)).await;
        let mut ids: Vec<String> = got.iter().map(Got::id).collect();
        ids.sort();
        let received = ids.len();
        ids.dedup();
        assert_eq!(received, ids.len(), "an event was sent twice");
        events.sort();
        assert_eq!(ids, events, "every event arrived");
        assert!(got.iter().all(|g| g.verifies_with(&secret)));
        // And nothing more comes.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(receiver.got().len(), 1000);
    }

    async fn a_server_killed_with_sigkill_loses_no_pending_delivery(backend: Backend) {
        let Some(keyed) = keyed_database(backend, &[]).await else {
            return;
        };
        let options = ["--webhook-allow-http-private"];
        let mut a = Server::start(&keyed.url, &options).await;
        // The receiver is down: nothing listens on its port yet.
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}/hook");
        let (id, secret) = create(&a, &keyed.admin, &url).await;

        let mut events = Vec::new();
        for _ in 0..10 {
            let path = format!("/api/v1/admin/webhooks/{id}/test");
            let reply = a.call("POST", &path, Some(&keyed.admin), None).await;
            reply.expect(202);
            events.push(s(&reply.json()["event_id"]));
        }
        // The worker tries them (and fails) within its poll interval…
        tokio::time::sleep(Duration::from_millis(2500)).await;
        // …and a few more happen just before the process is killed.
        for _ in 0..5 {
            let path = format!("/api/v1/admin/webhooks/{id}/test");
            let reply = a.call("POST", &path, Some(&keyed.admin), None).await;
            reply.expect(202);
            events.push(s(&reply.json()["event_id"]));
        }
        a.child.kill().unwrap(); // SIGKILL
        a.child.wait().unwrap();

        let a = Server::start(&keyed.url, &options).await;
        let receiver = Receiver::start_on(std::net::SocketAddr::from(([127, 0, 0, 1], port))).await;
        let got = until_received(&receiver, events.len(), Duration::from_secs(60)).await;
        let mut ids: Vec<String> = got.iter().map(Got::id).collect();
        ids.sort();
        ids.dedup();
        events.sort();
        assert_eq!(ids, events, "every event arrived: {}", a.log_text());
        assert!(got.iter().all(|g| g.verifies_with(&secret)));
    }
}
