//! Staff accounts and their console sessions (API.md §13): roles against
//! every admin route, the session's cookies, CSRF and origin checks, the
//! isolation of staff sessions from the rest of the API, and changes that
//! apply to live sessions at once.

use std::time::Duration;

use axum::http::Method;
use jeton::{
    config::Config,
    domain::{client::ClientKind, staff::Role},
    http::routes,
    store::{audit::Audit, staff::StaffError},
};
use serde_json::json;

use crate::on_both_databases;
use crate::support::{
    PASSWORD, TestApp,
    staff::{StaffSession, set_cookie},
};

on_both_databases!(
    each_role_reaches_the_admin_routes_of_its_abilities,
    sign_in_sets_the_session_cookies_exactly,
    sign_in_failures_are_one_answer,
    the_csrf_token_is_bound_to_the_session,
    a_staff_session_is_refused_from_other_origins,
    staff_routes_take_staff_sessions_only,
    a_staff_session_reaches_no_customer_or_catalogue_route,
    admin_and_staff_routes_send_no_cors_headers,
    disabling_and_role_changes_apply_to_live_sessions_at_once,
    the_last_owner_stays,
    admin_actions_record_the_staff_member,
    a_password_change_ends_the_other_sessions,
);

on_both_databases!(
    config = Config { usage_interval: Duration::from_millis(20), ..Config::default() };
    an_idle_session_ends_and_an_active_one_does_not,
);

/// An id no row has.
const NO_SUCH_ID: &str = "0193a1b2-7c3d-7e4f-8a5b-6c7d8e9f0a1b";

async fn each_role_reaches_the_admin_routes_of_its_abilities(app: TestApp) {
    for role in Role::ALL {
        let session = app.staff(role).await;
        let held = role.abilities();
        for entry in routes::api().entries() {
            if !entry.path.starts_with("/admin") {
                continue;
            }
            let path = format!("/api/v1{}", entry.path.replace("{id}", NO_SUCH_ID));
            let mut req = app.req(entry.method.clone(), &path).staff(&session);
            if matches!(entry.method, Method::POST | Method::PATCH) {
                req = req.json(json!({}));
            }
            let res = req.send().await;
            let needed = entry
                .access
                .ability
                .as_ref()
                .expect("admin routes name an ability");
            if held.contains(needed) {
                assert_ne!(
                    res.status.as_u16(),
                    403,
                    "{role} {} {}: {}",
                    entry.method,
                    entry.path,
                    res.text()
                );
                assert_ne!(
                    res.status.as_u16(),
                    401,
                    "{role} {} {}",
                    entry.method,
                    entry.path
                );
            } else {
                res.expect_problem(403, "insufficient_scope");
                let challenge = res.header("www-authenticate").unwrap();
                assert!(
                    challenge.contains(&format!("scope=\"{needed}\"")),
                    "{role} {} {}: {challenge}",
                    entry.method,
                    entry.path
                );
            }
        }
    }
}

async fn sign_in_sets_the_session_cookies_exactly(app: TestApp) {
    let id = app.staff_member("owner@shop.example", Role::Owner).await;
    let res = app.staff_login("Owner@Shop.Example", PASSWORD).await;
    res.expect(201);
    let body = res.json();
    let staff = &body["staff"];
    assert_eq!(
        crate::support::keys(staff),
        [
            "created_at",
            "disabled_at",
            "email",
            "id",
            "last_login_at",
            "mfa",
            "name",
            "role"
        ]
    );
    assert_eq!(staff["id"], id);
    assert_eq!(staff["email"], "owner@shop.example");
    assert_eq!(staff["role"], "owner");
    assert_eq!(staff["mfa"], false);
    assert!(staff["disabled_at"].is_null());
    crate::support::assert_about(
        crate::support::timestamp(&staff["last_login_at"]),
        app.now(),
    );
    crate::support::assert_about(
        crate::support::timestamp(&body["expires_at"]),
        app.now() + time::Duration::hours(12),
    );
    let csrf = crate::support::s(&body["csrf_token"]);
    assert_eq!(csrf.len(), 64);
    let session = set_cookie(&res, "jeton_staff").unwrap();
    let token = session
        .strip_prefix("jeton_staff=")
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    assert!(token.starts_with("jt_st_") && token.len() == 42, "{token}");
    assert_eq!(
        session,
        format!(
            "jeton_staff={token}; HttpOnly; SameSite=Strict; Secure; Path=/api/v1; Max-Age=43200"
        )
    );
    assert_eq!(
        set_cookie(&res, "jeton_staff_csrf").unwrap(),
        format!("jeton_staff_csrf={csrf}; SameSite=Strict; Secure; Path=/console; Max-Age=43200")
    );
    assert!(
        !res.text().contains(token),
        "the token is in the cookie only"
    );

    let session = StaffSession {
        staff_id: id.clone(),
        email: "owner@shop.example".into(),
        token: token.to_owned(),
        csrf,
        body: body.clone(),
    };
    let me = app.get("/api/v1/staff/me").staff(&session).send().await;
    me.expect(200);
    assert_eq!(me.json(), body["staff"]);

    let out = app
        .post("/api/v1/staff/logout")
        .staff(&session)
        .send()
        .await;
    out.expect(204);
    assert_eq!(
        set_cookie(&out, "jeton_staff").unwrap(),
        "jeton_staff=; HttpOnly; SameSite=Strict; Secure; Path=/api/v1; Max-Age=0"
    );
    assert_eq!(
        set_cookie(&out, "jeton_staff_csrf").unwrap(),
        "jeton_staff_csrf=; SameSite=Strict; Secure; Path=/console; Max-Age=0"
    );
    let gone = app.get("/api/v1/staff/me").staff(&session).send().await;
    gone.expect_problem(401, "invalid_token");
    assert!(
        set_cookie(&gone, "jeton_staff")
            .unwrap()
            .contains("Max-Age=0")
    );
    let actions = app.audit_actions().await;
    for action in ["staff.created", "staff.signed_in", "staff.signed_out"] {
        assert!(
            actions.contains(&action.to_owned()),
            "{action}: {actions:?}"
        );
    }
}

async fn sign_in_failures_are_one_answer(app: TestApp) {
    app.staff_member("ann@shop.example", Role::Viewer).await;
    let wrong = app
        .staff_login("ann@shop.example", "not the password")
        .await;
    wrong.expect_problem(401, "invalid_credentials");
    assert!(set_cookie(&wrong, "jeton_staff").is_none());
    app.staff_login("nobody@shop.example", PASSWORD)
        .await
        .expect_problem(401, "invalid_credentials");
    app.db
        .set_staff_disabled("ann@shop.example", true, &Audit::cli())
        .await
        .unwrap();
    app.staff_login("ann@shop.example", PASSWORD)
        .await
        .expect_problem(401, "invalid_credentials");
    app.db
        .set_staff_disabled("ann@shop.example", false, &Audit::cli())
        .await
        .unwrap();
    app.staff_login("ann@shop.example", PASSWORD)
        .await
        .expect(201);
    // A customer of the same email is someone else.
    app.customer("bob@shop.example").await;
    app.staff_login("bob@shop.example", PASSWORD)
        .await
        .expect_problem(401, "invalid_credentials");
    let failed = app
        .audit_actions()
        .await
        .into_iter()
        .filter(|a| a == "staff.sign_in_failed")
        .count();
    assert_eq!(failed, 4);
    // From another site's page, not even tried.
    app.post("/api/v1/staff/login")
        .header("origin", "https://evil.example")
        .json(json!({"email": "ann@shop.example", "password": PASSWORD}))
        .send()
        .await
        .expect_problem(403, "origin_not_allowed");
}

async fn the_csrf_token_is_bound_to_the_session(app: TestApp) {
    let a = app.staff(Role::Viewer).await;
    let b = app.staff(Role::Viewer).await;
    assert_ne!(a.csrf, b.csrf);
    let cookie = a.cookie();
    for csrf in [
        None,
        Some("abc"),
        Some(b.csrf.as_str()),
        Some(&a.csrf[..63]),
    ] {
        let mut req = app.post("/api/v1/staff/logout").header("cookie", &cookie);
        if let Some(csrf) = csrf {
            req = req.header("x-csrf-token", csrf);
        }
        req.send().await.expect_problem(403, "csrf_failed");
    }
    // The CSRF cookie counts for nothing: it is the console's, not the API's.
    app.post("/api/v1/staff/logout")
        .header("cookie", &format!("{cookie}; jeton_staff_csrf=abc"))
        .header("x-csrf-token", "abc")
        .send()
        .await
        .expect_problem(403, "csrf_failed");
    // Reads need none.
    app.get("/api/v1/staff/me")
        .header("cookie", &cookie)
        .send()
        .await
        .expect(200);
    app.post("/api/v1/staff/logout")
        .header("cookie", &cookie)
        .header("x-csrf-token", &a.csrf)
        .send()
        .await
        .expect(204);
    assert!(
        app.audit_actions()
            .await
            .contains(&"staff_session.refused_csrf".to_owned())
    );
}

async fn a_staff_session_is_refused_from_other_origins(app: TestApp) {
    let session = app.staff(Role::Owner).await;
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("origin", "http://127.0.0.1:9999"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        for path in ["/api/v1/staff/me", "/api/v1/admin/clients"] {
            app.get(path)
                .staff(&session)
                .header(name, value)
                .send()
                .await
                .expect_problem(403, "origin_not_allowed");
        }
    }
    // The API's own origin, in both its loopback forms.
    for origin in ["http://127.0.0.1:8080", "http://localhost:8080"] {
        app.get("/api/v1/staff/me")
            .staff(&session)
            .header("origin", origin)
            .header("sec-fetch-site", "same-origin")
            .send()
            .await
            .expect(200);
    }
}

async fn staff_routes_take_staff_sessions_only(app: TestApp) {
    let (pk_client, pk) = app.publishable_client().await;
    let _ = pk_client;
    let (sk_client, sk) = app.client(ClientKind::Secret, &["*"], &[]).await;
    let at = app.access_token(&sk_client, &sk, None).await;
    let (_, ut) = app.customer("ann@example.com").await;
    for token in [&pk, &sk, &at, &ut] {
        app.get("/api/v1/staff/me")
            .bearer(token)
            .send()
            .await
            .expect_problem(403, "insufficient_scope");
    }
    // A staff session's token is accepted from its cookie only.
    let session = app.staff(Role::Owner).await;
    app.get("/api/v1/staff/me")
        .bearer(&session.token)
        .send()
        .await
        .expect_problem(401, "invalid_token");
    app.get("/api/v1/admin/clients")
        .bearer(&session.token)
        .send()
        .await
        .expect_problem(401, "invalid_token");
    // A customer's cookie session is ignored here.
    app.get("/api/v1/staff/me")
        .header("cookie", &format!("jeton_session={ut}"))
        .header("origin", "http://localhost:8080")
        .send()
        .await
        .expect_problem(401, "unauthenticated");
    // No publishable key nor user token reaches an admin route.
    for token in [&pk, &ut] {
        app.get("/api/v1/admin/clients")
            .bearer(token)
            .send()
            .await
            .expect_problem(403, "insufficient_scope");
    }
}

async fn a_staff_session_reaches_no_customer_or_catalogue_route(app: TestApp) {
    let session = app.staff(Role::Owner).await;
    for entry in routes::api().entries() {
        if entry.path.starts_with("/admin") || entry.path.starts_with("/staff") {
            continue;
        }
        let path = format!("/api/v1{}", entry.path.replace("{id}", NO_SUCH_ID));
        let mut req = app.req(entry.method.clone(), &path).staff(&session);
        if matches!(entry.method, Method::POST | Method::PATCH) {
            req = req.json(json!({}));
        }
        // The cookie is not a credential there: as if there were none.
        req.send().await.expect_problem(401, "unauthenticated");
    }
}

async fn admin_and_staff_routes_send_no_cors_headers(app: TestApp) {
    let (_, pk) = app.publishable_client().await;
    let origin = "http://localhost:8080";
    let preflight = |path: &'static str| {
        app.req(Method::OPTIONS, path)
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
    };
    // The storefront's origin gets CORS on the catalogue (once this process
    // has heard of its client, through the change feed)…
    let since = std::time::Instant::now();
    while preflight("/api/v1/products")
        .await
        .header("access-control-allow-origin")
        .is_none()
    {
        assert!(
            since.elapsed() < Duration::from_secs(2),
            "the client's origin"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let res = app
        .get("/api/v1/products")
        .bearer(&pk)
        .header("origin", origin)
        .send()
        .await;
    assert_eq!(
        res.header("access-control-allow-origin").as_deref(),
        Some(origin)
    );
    // …and nothing on the admin API and the staff's routes.
    for path in [
        "/api/v1/admin/clients",
        "/api/v1/admin/usage",
        "/api/v1/staff/me",
        "/api/v1/staff/login",
    ] {
        let res = preflight(path).await;
        for name in [
            "access-control-allow-origin",
            "access-control-allow-credentials",
            "access-control-allow-methods",
        ] {
            assert!(res.header(name).is_none(), "{path} {name}");
        }
        let res = app.get(path).header("origin", origin).send().await;
        assert!(
            res.header("access-control-allow-origin").is_none(),
            "{path}"
        );
    }
}

async fn disabling_and_role_changes_apply_to_live_sessions_at_once(app: TestApp) {
    app.staff(Role::Owner).await;
    let dev = app.staff(Role::Developer).await;
    let create = || {
        app.post("/api/v1/admin/products")
            .staff(&dev)
            .json(json!({}))
            .send()
    };
    create().await.expect_problem(422, "validation_failed");
    let member = app
        .db
        .set_staff_role(&dev.email, Role::Viewer, &Audit::cli())
        .await
        .unwrap();
    assert_eq!(member.role(), Role::Viewer);
    let refused = create().await;
    refused.expect_problem(403, "insufficient_scope");
    assert!(
        refused
            .header("www-authenticate")
            .unwrap()
            .contains("scope=\"products:write\"")
    );
    // Reads still work.
    app.get("/api/v1/admin/clients")
        .staff(&dev)
        .send()
        .await
        .expect(200);
    let me = app.get("/api/v1/staff/me").staff(&dev).send().await;
    assert_eq!(me.expect(200).json()["role"], "viewer");
    app.db
        .set_staff_disabled(&dev.email, true, &Audit::cli())
        .await
        .unwrap();
    let gone = app.get("/api/v1/staff/me").staff(&dev).send().await;
    gone.expect_problem(401, "invalid_token");
    assert!(
        set_cookie(&gone, "jeton_staff")
            .unwrap()
            .contains("Max-Age=0")
    );
    // Enabled again, the old session stays over: a new sign-in is needed.
    app.db
        .set_staff_disabled(&dev.email, false, &Audit::cli())
        .await
        .unwrap();
    app.get("/api/v1/staff/me")
        .staff(&dev)
        .send()
        .await
        .expect_problem(401, "invalid_token");
    app.staff_sign_in(&dev.email).await;
}

async fn the_last_owner_stays(app: TestApp) {
    app.staff_member("first@shop.example", Role::Owner).await;
    app.staff_member("dev@shop.example", Role::Developer).await;
    let cli = Audit::cli();
    assert!(matches!(
        app.db
            .set_staff_disabled("first@shop.example", true, &cli)
            .await,
        Err(StaffError::LastOwner)
    ));
    assert!(matches!(
        app.db
            .set_staff_role("first@shop.example", Role::Developer, &cli)
            .await,
        Err(StaffError::LastOwner)
    ));
    // A disabled owner does not count.
    app.staff_member("second@shop.example", Role::Owner).await;
    app.db
        .set_staff_disabled("second@shop.example", true, &cli)
        .await
        .unwrap();
    assert!(matches!(
        app.db
            .set_staff_disabled("first@shop.example", true, &cli)
            .await,
        Err(StaffError::LastOwner)
    ));
    app.db
        .set_staff_disabled("second@shop.example", false, &cli)
        .await
        .unwrap();
    app.db
        .set_staff_role("first@shop.example", Role::Support, &cli)
        .await
        .unwrap();
    assert!(matches!(
        app.db
            .set_staff_role("second@shop.example", Role::Viewer, &cli)
            .await,
        Err(StaffError::LastOwner)
    ));
    // Other roles come and go freely.
    app.db
        .set_staff_disabled("dev@shop.example", true, &cli)
        .await
        .unwrap();
}

async fn admin_actions_record_the_staff_member(app: TestApp) {
    let owner = app.staff(Role::Owner).await;
    let res = app
        .post("/api/v1/admin/clients")
        .staff(&owner)
        .json(json!({"name": "Server", "kind": "secret", "abilities": ["clients:read"]}))
        .send()
        .await;
    res.expect(201);
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT action, actor_kind, actor_id FROM audit_events WHERE action = 'client.created'",
    )
    .fetch_all(&app.side_pool().await)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [(
            "client.created".to_owned(),
            "staff".to_owned(),
            Some(owner.staff_id.clone())
        )]
    );
    // Granting what the role does not hold is refused.
    let dev = app.staff(Role::Developer).await;
    let res = app
        .post("/api/v1/admin/clients")
        .staff(&dev)
        .json(json!({"name": "Ops", "kind": "secret", "abilities": ["staff:manage"]}))
        .send()
        .await;
    res.expect_problem(403, "insufficient_scope");
    let events = app.get("/api/v1/admin/audit").staff(&owner).send().await;
    let events = events.expect(200).json();
    let signed_in = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["action"] == "staff.signed_in")
        .expect("a sign-in event")
        .clone();
    assert_eq!(signed_in["actor"]["kind"], "staff");
    // The log by staff member: the owner's events only, none of the
    // developer's.
    let path = format!("/api/v1/admin/audit?staff_id={}", owner.staff_id);
    let mine = app.get(&path).staff(&owner).send().await;
    let mine = mine.expect(200).json();
    let actions: Vec<&str> = mine["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            assert_eq!(event["actor"]["id"], owner.staff_id.as_str(), "{event}");
            event["action"].as_str().unwrap()
        })
        .collect();
    assert!(actions.contains(&"client.created"), "{actions:?}");
    assert!(actions.contains(&"staff.signed_in"), "{actions:?}");
    let path = format!("/api/v1/admin/audit?staff_id={}", dev.staff_id);
    let theirs = app.get(&path).staff(&owner).send().await;
    let theirs = theirs.expect(200).json();
    assert!(
        theirs["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|event| event["actor"]["id"] == dev.staff_id.as_str()),
        "{theirs}"
    );
}

async fn a_password_change_ends_the_other_sessions(app: TestApp) {
    let one = app.staff(Role::Support).await;
    let two = app.staff_sign_in(&one.email).await;
    app.post("/api/v1/staff/password")
        .staff(&one)
        .json(json!({"current": "wrong password", "new": "a new password"}))
        .send()
        .await
        .expect_problem(401, "invalid_credentials");
    app.post("/api/v1/staff/password")
        .staff(&one)
        .json(json!({"current": PASSWORD, "new": "short"}))
        .send()
        .await
        .expect_problem(422, "validation_failed");
    app.post("/api/v1/staff/password")
        .staff(&one)
        .json(json!({"current": PASSWORD, "new": "a new password"}))
        .send()
        .await
        .expect(204);
    app.get("/api/v1/staff/me")
        .staff(&one)
        .send()
        .await
        .expect(200);
    app.get("/api/v1/staff/me")
        .staff(&two)
        .send()
        .await
        .expect_problem(401, "invalid_token");
    app.staff_login(&one.email, PASSWORD)
        .await
        .expect_problem(401, "invalid_credentials");
    app.staff_login(&one.email, "a new password")
        .await
        .expect(201);
}

async fn an_idle_session_ends_and_an_active_one_does_not(app: TestApp) {
    let active = app.staff(Role::Viewer).await;
    let idle = app.staff(Role::Viewer).await;
    let me = |session: &StaffSession| {
        let session = session.clone();
        let app = &app;
        async move { app.get("/api/v1/staff/me").staff(&session).send().await }
    };
    me(&idle).await.expect(200);
    // Used every 20 minutes for two hours: never idle for 30.
    for _ in 0..6 {
        app.advance(Duration::from_secs(20 * 60));
        me(&active).await.expect(200);
        // The last use reaches the store (as every `usage_interval`).
        app.flush_usage().await;
    }
    me(&idle).await.expect_problem(401, "invalid_token");
    // Unused for 30 minutes, the active one ends too.
    app.advance(Duration::from_secs(30 * 60));
    me(&active).await.expect_problem(401, "invalid_token");
    // However used, a session ends 12 hours after sign-in.
    let day = app.staff(Role::Viewer).await;
    for _ in 0..48 {
        app.advance(Duration::from_secs(15 * 60));
        let res = me(&day).await;
        if res.status.as_u16() == 401 {
            assert!(app.now() >= crate::support::timestamp(&day.body["expires_at"]));
            return;
        }
        res.expect(200);
        app.flush_usage().await;
    }
    panic!("the session outlived its 12 hours");
}

/// `jeton staff …`, the real binary, on the database a router of this
/// process serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_makes_and_manages_staff() {
    use crate::support::process::jeton;

    let app = TestApp::sqlite_on_system_time().await;
    let create = |email: &str, role: &str, password: &str| {
        crate::support::process::staff_create(&app.url, email, "Owner", role, password)
    };
    let made = create("First@Shop.Example", "owner", PASSWORD);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let member: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    assert_eq!(member["email"], "first@shop.example");
    assert_eq!(member["role"], "owner");
    for output in [&made.stdout, &made.stderr] {
        assert!(!String::from_utf8_lossy(output).contains(PASSWORD));
    }
    // A password is never an argument, and is a password.
    jeton(
        &app.url,
        &[
            "staff",
            "create",
            "--email",
            "a@shop.example",
            "--name",
            "A",
            "--role",
            "viewer",
        ],
    )
    .fails();
    assert!(!create("b@shop.example", "viewer", "short").status.success());
    assert!(
        !create("first@shop.example", "viewer", PASSWORD)
            .status
            .success()
    );

    let list = jeton(&app.url, &["staff", "list", "--json"]);
    assert_eq!(list.ok().json().as_array().unwrap().len(), 1);
    let refused = jeton(
        &app.url,
        &["staff", "disable", "--email", "first@shop.example"],
    );
    refused.fails();
    assert!(refused.stderr.contains("last_owner"), "{}", refused.stderr);
    jeton(
        &app.url,
        &[
            "staff",
            "role",
            "--email",
            "first@shop.example",
            "--role",
            "viewer",
        ],
    )
    .fails();

    assert!(
        create("second@shop.example", "developer", PASSWORD)
            .status
            .success()
    );
    jeton(
        &app.url,
        &[
            "staff",
            "role",
            "--email",
            "second@shop.example",
            "--role",
            "owner",
        ],
    )
    .ok();
    let session = app.staff_sign_in("first@shop.example").await;
    let disabled = jeton(
        &app.url,
        &[
            "staff",
            "disable",
            "--email",
            "first@shop.example",
            "--json",
        ],
    );
    assert!(!disabled.ok().json()["disabled_at"].is_null());
    // Its session is over within a second (the CLI is another process).
    let since = std::time::Instant::now();
    loop {
        let res = app.get("/api/v1/staff/me").staff(&session).send().await;
        if res.status.as_u16() == 401 {
            break;
        }
        assert!(since.elapsed() < Duration::from_secs(1), "still signed in");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.staff_login("first@shop.example", PASSWORD)
        .await
        .expect_problem(401, "invalid_credentials");
    jeton(
        &app.url,
        &["staff", "enable", "--email", "first@shop.example"],
    )
    .ok();
    app.staff_sign_in("first@shop.example").await;
}
