//! Cookie sessions for the shop's own storefront (contract, "Cookie
//! sessions"): a login with `"session": "cookie"`, the cookies' attributes,
//! authentication by the cookie from the client's own origins only, CSRF on
//! unsafe methods, the `Authorization` header taking precedence, and the
//! cookies cleared on logout, revocation and expiry. CORS with credentials
//! for the listed origins, preflights included.

use jeton::{config::Config, domain::client::ClientKind};
use serde_json::{Value, json};

use crate::{
    on_both_databases,
    support::{EVIL, OTHER_SHOP, PASSWORD, Res, SHOP, TestApp, assert_fields, s},
};

// ---------------------------------------------------------------- helpers

/// A publishable client made through the admin API, so that CORS knows
/// its origins at once: (client id, key).
async fn publishable(app: &TestApp, abilities: &[&str], origins: &[&str]) -> (String, String) {
    let admin = app.admin_key().await;
    let body = json!({
        "name": "Storefront", "kind": "publishable", "abilities": abilities,
        "allowed_origins": origins,
        "rate_limit_per_minute": null, "per_ip_rate_limit_per_minute": null,
    });
    let res = app.create_client(&admin, body).await;
    res.expect(201);
    let body = res.json();
    (s(&body["client"]["id"]), s(&body["key"]))
}

/// A storefront's publishable key, for `SHOP` exactly.
async fn shop_key(app: &TestApp) -> String {
    publishable(
        app,
        &["products:read", "customers:create", "auth:login"],
        &[SHOP],
    )
    .await
    .1
}

/// What a browser keeps after a cookie login.
struct Session {
    /// The `Cookie` header the browser sends to the API.
    cookie: String,
    csrf: String,
    token_id: String,
    body: Value,
    /// The login's `Set-Cookie` values: (session, csrf).
    set_session: String,
    set_csrf: String,
}

/// The response's `Set-Cookie` for cookie `name`.
fn set_cookie(res: &Res, name: &str) -> Option<String> {
    res.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(&format!("{name}=")))
}

/// `name=value` of a `Set-Cookie` value.
fn pair(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap()
}

/// The attributes of a `Set-Cookie` value, without its `name=value`.
fn attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_owned())
        .collect()
}

fn login_body(email: &str) -> Value {
    json!({"email": email, "password": PASSWORD, "device_name": "browser", "session": "cookie"})
}

/// A cookie login through `key` from `SHOP`.
async fn cookie_login(app: &TestApp, key: &str, email: &str) -> Session {
    let res = app
        .post("/api/v1/auth/login")
        .bearer(key)
        .header("origin", SHOP)
        .json(login_body(email))
        .send()
        .await;
    res.expect(201);
    session_of(&res)
}

/// The session a cookie login's answer gives the browser.
fn session_of(res: &Res) -> Session {
    let body = res.json();
    let set_session = set_cookie(res, "jeton_session").expect("the session cookie");
    let set_csrf = set_cookie(res, "jeton_csrf").expect("the CSRF cookie");
    Session {
        cookie: format!("{}; {}", pair(&set_session), pair(&set_csrf)),
        csrf: s(&body["csrf_token"]),
        token_id: s(&body["token_id"]),
        body,
        set_session,
        set_csrf,
    }
}

/// Asserts that both cookies are cleared by `res`.
#[track_caller]
fn assert_cleared(res: &Res) {
    for name in ["jeton_session", "jeton_csrf"] {
        let set = set_cookie(res, name).unwrap_or_else(|| panic!("{name} is not cleared"));
        assert_eq!(pair(&set), format!("{name}="), "{set}");
        assert!(attributes(&set).contains(&"Max-Age=0".to_owned()), "{set}");
    }
}

/// Asserts that `res` leaves the cookies alone.
#[track_caller]
fn assert_untouched(res: &Res) {
    assert!(res.headers.get("set-cookie").is_none(), "{:?}", res.headers);
}

/// Asserts the CORS headers a page on `origin` needs for cookies.
#[track_caller]
fn assert_credentialed_cors(res: &Res, origin: &str) {
    assert_eq!(
        res.header("access-control-allow-origin").as_deref(),
        Some(origin)
    );
    assert_eq!(
        res.header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
}

impl Session {
    /// `DELETE path` as the page on `SHOP` sends it: the cookies and the
    /// CSRF header.
    async fn delete(&self, app: &TestApp, path: &str) -> Res {
        app.delete(path)
            .header("cookie", &self.cookie)
            .header("origin", SHOP)
            .header("x-csrf-token", &self.csrf)
            .send()
            .await
    }

    /// The ids of the customer's live tokens, as this session lists them.
    async fn token_ids(&self, app: &TestApp) -> Vec<String> {
        let res = self.get(app, "/api/v1/me/tokens", Some(SHOP)).await;
        res.expect(200);
        res.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|token| s(&token["id"]))
            .collect()
    }

    /// `GET path` as the page on `origin` (if any) sends it: the cookies,
    /// no `Authorization`.
    async fn get(&self, app: &TestApp, path: &str, origin: Option<&str>) -> Res {
        let mut req = app.get(path).header("cookie", &self.cookie);
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        req.send().await
    }
}

on_both_databases!(
    cookie_login_sets_the_cookies_and_no_token,
    cookie_login_needs_one_of_the_clients_own_origins,
    the_session_is_a_user_token_like_any_other,
    the_cookie_works_only_from_the_clients_own_origins,
    unsafe_methods_need_the_csrf_header,
    the_authorization_header_decides,
    logout_revokes_the_session_and_clears_the_cookies,
    revoked_and_expired_sessions_are_refused_and_cleared,
    revoking_ones_own_session_clears_the_cookies,
    a_cookie_login_revokes_the_session_it_replaces,
    cors_allows_credentials_for_listed_origins_only,
    a_cookie_session_cannot_mint_a_token,
    a_csrf_token_not_the_sessions_own_is_refused,
    cookie_refusals_are_audited_once_a_minute,
);

on_both_databases!(
    config = Config { secure_cookies: false, ..Config::default() };
    the_cookies_are_not_secure_for_plain_http_on_loopback,
);

// ---------------------------------------------------------------- login

async fn cookie_login_sets_the_cookies_and_no_token(app: TestApp) {
    let key = shop_key(&app).await;
    app.customer("ann@example.com").await;
    let res = app
        .post("/api/v1/auth/login")
        .bearer(&key)
        .header("origin", SHOP)
        .json(login_body("ann@example.com"))
        .send()
        .await;
    res.expect(201);
    let body = res.json();
    assert_fields(&body, &["customer", "token_id", "expires_at", "csrf_token"]);
    assert_eq!(body["customer"]["email"], "ann@example.com");
    assert!(!res.text().contains("jt_ut_"), "no token in the body");
    assert_credentialed_cors(&res, SHOP);

    let session = set_cookie(&res, "jeton_session").unwrap();
    let value = pair(&session).strip_prefix("jeton_session=").unwrap();
    assert!(value.starts_with("jt_ut_") && value.len() == 42, "{value}");
    let mut attrs = attributes(&session);
    attrs.sort();
    assert_eq!(
        attrs,
        [
            "HttpOnly",
            "Max-Age=2592000",
            "Path=/api/v1",
            "SameSite=Lax",
            "Secure"
        ]
    );

    let csrf = set_cookie(&res, "jeton_csrf").unwrap();
    assert_eq!(
        pair(&csrf),
        format!("jeton_csrf={}", s(&body["csrf_token"]))
    );
    assert_eq!(s(&body["csrf_token"]).len(), 64);
    let mut attrs = attributes(&csrf);
    attrs.sort();
    assert_eq!(
        attrs,
        ["Max-Age=2592000", "Path=/", "SameSite=Lax", "Secure"]
    );

    // Two logins, two sessions, two CSRF tokens.
    let again = cookie_login(&app, &key, "ann@example.com").await;
    assert_ne!(again.csrf, s(&body["csrf_token"]));
    assert_ne!(again.token_id, s(&body["token_id"]));
    // A login without "session" still answers with the token in the body.
    let token = app.login(&key, "ann@example.com", PASSWORD).await;
    assert!(s(&token["token"]).starts_with("jt_ut_"));
}

async fn the_cookies_are_not_secure_for_plain_http_on_loopback(app: TestApp) {
    let key = shop_key(&app).await;
    app.customer("ann@example.com").await;
    let session = cookie_login(&app, &key, "ann@example.com").await;
    for set in [&session.set_session, &session.set_csrf] {
        let attrs = attributes(set);
        assert!(!attrs.contains(&"Secure".to_owned()), "{set}");
        assert!(attrs.contains(&"SameSite=Lax".to_owned()), "{set}");
    }
    assert!(attributes(&session.set_session).contains(&"HttpOnly".to_owned()));
}

async fn cookie_login_needs_one_of_the_clients_own_origins(app: TestApp) {
    let key = shop_key(&app).await;
    let (_, anywhere) = publishable(&app, &["auth:login"], &["*"]).await;
    let (_, secret) = app.client(ClientKind::Secret, &["auth:login"], &[]).await;
    app.customer("ann@example.com").await;
    let login = |key: &str, origin: Option<&str>| {
        let mut req = app
            .post("/api/v1/auth/login")
            .bearer(key)
            .json(login_body("ann@example.com"));
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        req.send()
    };
    // No page at all (curl, a server), a page the key's client does not
    // list, a client that lists "*" (a session for every site's pages), a
    // server's key: no cookie session.
    for (key, origin, code) in [
        (&key, None, "origin_not_allowed"),
        (&key, Some(EVIL), "origin_not_allowed"),
        (&anywhere, Some(SHOP), "origin_not_allowed"),
        (&secret, None, "origin_not_allowed"),
        (&secret, Some(SHOP), "secret_key_in_browser"),
    ] {
        let res = login(key, origin).await;
        res.expect_problem(403, code);
        assert_untouched(&res);
    }
    let res = app
        .post("/api/v1/auth/login")
        .bearer(&key)
        .header("origin", SHOP)
        .json(json!({"email": "ann@example.com", "password": PASSWORD, "session": "jar"}))
        .send()
        .await;
    res.expect_problem(422, "validation_failed");
    // Refused before any token was issued.
    let tokens = app.row_counts(&["user_token_details"]).await;
    assert_eq!(
        tokens,
        [("user_token_details", 1)],
        "only the fixture's token"
    );
}

// ---------------------------------------------------------------- the session

async fn the_session_is_a_user_token_like_any_other(app: TestApp) {
    let key = shop_key(&app).await;
    let (_, bearer) = app.customer("ann@example.com").await;
    let session = cookie_login(&app, &key, "ann@example.com").await;

    // Listed among the customer's tokens, as the current one when it asks.
    let res = session.get(&app, "/api/v1/me/tokens", Some(SHOP)).await;
    res.expect(200);
    assert_credentialed_cors(&res, SHOP);
    let tokens = res.json()["data"].as_array().unwrap().clone();
    assert_eq!(tokens.len(), 2);
    let this = tokens
        .iter()
        .find(|t| t["id"] == session.token_id.as_str())
        .expect("the session is listed");
    assert_eq!(this["current"], true);
    assert_eq!(this["name"], "browser");
    assert_eq!(this["expires_at"], session.body["expires_at"]);

    // The same customer, the same abilities as a login token.
    let me = session.get(&app, "/api/v1/me", Some(SHOP)).await;
    me.expect(200);
    assert_eq!(me.json(), session.body["customer"]);

    // Revocable one by one from another device.
    let res = app
        .delete_as(&format!("/api/v1/me/tokens/{}", session.token_id), &bearer)
        .await;
    res.expect(204);
    let res = session.get(&app, "/api/v1/me", Some(SHOP)).await;
    res.expect_problem(401, "invalid_token");
    assert_cleared(&res);
    app.assert_works(&bearer).await;
}

async fn the_cookie_works_only_from_the_clients_own_origins(app: TestApp) {
    let key = shop_key(&app).await;
    // Another shop's client: its origin is allowed by CORS, but the
    // session was not issued through it.
    publishable(&app, &["products:read"], &[OTHER_SHOP]).await;
    app.customer("ann@example.com").await;
    let session = cookie_login(&app, &key, "ann@example.com").await;

    let res = session.get(&app, "/api/v1/me", Some(SHOP)).await;
    res.expect(200);
    assert_credentialed_cors(&res, SHOP);
    assert_untouched(&res);

    for origin in [Some(OTHER_SHOP), Some(EVIL), Some("null"), None] {
        let res = session.get(&app, "/api/v1/me", origin).await;
        res.expect_problem(403, "origin_not_allowed");
        // No key was sent: the answer speaks of the session.
        let detail = s(&res.json()["detail"]);
        assert!(
            detail.contains("session cookie") && !detail.contains("key"),
            "{detail}"
        );
        // The session is fine: it stays.
        assert_untouched(&res);
        match origin {
            Some(OTHER_SHOP) => assert_credentialed_cors(&res, OTHER_SHOP),
            // The page cannot read the answer.
            _ => assert_eq!(res.header("access-control-allow-origin"), None),
        }
    }
    // The same token in the header is not a cookie session: a user token
    // works from any page.
    let token = pair(&session.set_session)
        .strip_prefix("jeton_session=")
        .unwrap();
    app.get("/api/v1/me")
        .bearer(token)
        .header("origin", EVIL)
        .send()
        .await
        .expect(200);
}

async fn unsafe_methods_need_the_csrf_header(app: TestApp) {
    let key = shop_key(&app).await;
    app.customer("ann@example.com").await;
    let session = cookie_login(&app, &key, "ann@example.com").await;
    let new_token = |csrf: Option<&str>| {
        let mut req = app
            .post("/api/v1/me/tokens")
            .header("cookie", &session.cookie)
            .header("origin", SHOP)
            .json(json!({"name": "script", "abilities": ["products:read"]}));
        if let Some(csrf) = csrf {
            req = req.header("x-csrf-token", csrf);
        }
        req.send()
    };
    // One character changed: the last, to one it is not.
    let other_last = if session.csrf.ends_with('0') {
        '1'
    } else {
        '0'
    };
    let wrong = format!("{}{other_last}", &session.csrf[..63]);
    for csrf in [
        None,
        Some(""),
        Some(wrong.as_str()),
        Some(&session.csrf[..32]),
    ] {
        let res = new_token(csrf).await;
        res.expect_problem(403, "csrf_failed");
        assert_credentialed_cors(&res, SHOP);
        assert_untouched(&res);
    }
    // With the right header the request gets through to the handler,
    // which refuses what it asks: a session never mints a token.
    new_token(Some(&session.csrf))
        .await
        .expect_problem(403, "session_cannot_mint");
    let made = s(&app.login(&key, "ann@example.com", PASSWORD).await["token_id"]);

    // DELETE too, and the CSRF cookie must be there to compare with.
    let only_session = session.cookie.split(';').next().unwrap().to_owned();
    for (cookie, csrf) in [
        (session.cookie.as_str(), "nope"),
        (only_session.as_str(), session.csrf.as_str()),
    ] {
        app.delete(&format!("/api/v1/me/tokens/{made}"))
            .header("cookie", cookie)
            .header("origin", SHOP)
            .header("x-csrf-token", csrf)
            .send()
            .await
            .expect_problem(403, "csrf_failed");
    }
    app.delete(&format!("/api/v1/me/tokens/{made}"))
        .header("cookie", &session.cookie)
        .header("origin", SHOP)
        .header("x-csrf-token", &session.csrf)
        .send()
        .await
        .expect(204);
    // Reads need no CSRF header.
    session
        .get(&app, "/api/v1/me/orders", Some(SHOP))
        .await
        .expect(200);
}

async fn the_authorization_header_decides(app: TestApp) {
    let key = shop_key(&app).await;
    app.customer("ann@example.com").await;
    let (_, bob) = app.customer("bob@example.com").await;
    let ann = cookie_login(&app, &key, "ann@example.com").await;

    // Ann's cookie, Bob's token: Bob.
    let res = app
        .get("/api/v1/me")
        .header("cookie", &ann.cookie)
        .header("origin", SHOP)
        .bearer(&bob)
        .send()
        .await;
    res.expect(200);
    assert_eq!(res.json()["email"], "bob@example.com");
    // A bearer POST needs no CSRF header, whatever cookie rides along.
    app.post("/api/v1/me/tokens")
        .header("cookie", &ann.cookie)
        .bearer(&bob)
        .json(json!({"name": "script"}))
        .send()
        .await
        .expect(201);
    // A bad header is refused, not rescued by the cookie, which stays.
    let res = app
        .get("/api/v1/me")
        .header("cookie", &ann.cookie)
        .header("origin", SHOP)
        .header("authorization", "Bearer jt_ut_nope")
        .send()
        .await;
    res.expect_problem(401, "invalid_token");
    assert_untouched(&res);
    // A publishable key with the cookie: the key, which is not a user.
    app.get("/api/v1/me")
        .header("cookie", &ann.cookie)
        .header("origin", SHOP)
        .bearer(&key)
        .send()
        .await
        .expect_problem(403, "insufficient_scope");
    // A login with the key works whatever cookie the browser holds, and
    // replaces it.
    let res = app
        .post("/api/v1/auth/login")
        .bearer(&key)
        .header("origin", SHOP)
        .header("cookie", &ann.cookie)
        .json(login_body("bob@example.com"))
        .send()
        .await;
    res.expect(201);
    assert_eq!(res.json()["customer"]["email"], "bob@example.com");
    let bob_session = pair(&set_cookie(&res, "jeton_session").unwrap()).to_owned();
    assert_ne!(bob_session, pair(&ann.set_session));
}

async fn logout_revokes_the_session_and_clears_the_cookies(app: TestApp) {
    let key = shop_key(&app).await;
    app.customer("ann@example.com").await;
    let session = cookie_login(&app, &key, "ann@example.com").await;
    let other = cookie_login(&app, &key, "ann@example.com").await;

    // Logout is a POST: the CSRF header is needed.
    let logout = |csrf: &str| {
        app.post("/api/v1/auth/logout")
            .header("cookie", &session.cookie)
            .header("origin", SHOP)
            .header("x-csrf-token", csrf)
            .send()
    };
    logout("nope").await.expect_problem(403, "csrf_failed");
    let res = logout(&session.csrf).await;
    res.expect(204);
    assert_cleared(&res);
    assert_credentialed_cors(&res, SHOP);

    // The token is revoked: the cookie, replayed, is dead and cleared.
    let res = session.get(&app, "/api/v1/me", Some(SHOP)).await;
    res.expect_problem(401, "invalid_token");
    assert_cleared(&res);
    assert_credentialed_cors(&res, SHOP);
    // Only that session: the other browser's goes on.
    other.get(&app, "/api/v1/me", Some(SHOP)).await.expect(200);

    // A bearer logout leaves whatever cookie rides along alone.
    let (_, bearer) = app.customer("bob@example.com").await;
    let res = app
        .post("/api/v1/auth/logout")
        .header("cookie", &other.cookie)
        .bearer(&bearer)
        .send()
        .await;
    res.expect(204);
    assert_untouched(&res);
}

async fn revoked_and_expired_sessions_are_refused_and_cleared(app: TestApp) {
    let admin = app.admin_key().await;
    let (client_id, key) = publishable(&app, &["products:read", "auth:login"], &[SHOP]).await;
    let customer_id = app.customer("ann@example.com").await.0;
    let dead = |session: Session| {
        let app = &app;
        async move {
            let res = session.get(app, "/api/v1/me", Some(SHOP)).await;
            res.expect_problem(401, "invalid_token");
            assert_cleared(&res);
        }
    };

    // All at once, by the customer.
    let first = cookie_login(&app, &key, "ann@example.com").await;
    let second = cookie_login(&app, &key, "ann@example.com").await;
    first.delete(&app, "/api/v1/me/tokens").await.expect(204);
    dead(first).await;
    dead(second).await;

    // By an admin.
    let session = cookie_login(&app, &key, "ann@example.com").await;
    session
        .get(&app, "/api/v1/me", Some(SHOP))
        .await
        .expect(200);
    app.post_as(
        &format!("/api/v1/admin/customers/{customer_id}/revoke-tokens"),
        &admin,
    )
    .await
    .expect(204);
    dead(session).await;

    // Expired: its expiry moved into the past before its first use.
    let session = cookie_login(&app, &key, "ann@example.com").await;
    let pool = app.side_pool().await;
    sqlx::query("UPDATE auth_credentials SET expires_at = 1 WHERE id = $1")
        .bind(session.token_id.clone())
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    dead(session).await;

    // With its client.
    let session = cookie_login(&app, &key, "ann@example.com").await;
    session
        .get(&app, "/api/v1/me", Some(SHOP))
        .await
        .expect(200);
    app.delete_as(
        &format!("/api/v1/admin/clients/{client_id}?revoke_user_tokens=true"),
        &admin,
    )
    .await
    .expect(204);
    dead(session).await;

    // A cookie that was never a token.
    let res = app
        .get("/api/v1/me")
        .header("cookie", "jeton_session=jt_ut_forged; jeton_csrf=x")
        .header("origin", SHOP)
        .send()
        .await;
    res.expect_problem(401, "invalid_token");
    assert_cleared(&res);
}

async fn revoking_ones_own_session_clears_the_cookies(app: TestApp) {
    let key = shop_key(&app).await;
    let (_, bearer) = app.customer("ann@example.com").await;

    // All of the customer's tokens, the session among them: the answer
    // clears the cookies, as logout's does.
    let session = cookie_login(&app, &key, "ann@example.com").await;
    let res = session.delete(&app, "/api/v1/me/tokens").await;
    res.expect(204);
    assert_cleared(&res);
    assert_credentialed_cors(&res, SHOP);
    app.get_as("/api/v1/me", &bearer)
        .await
        .expect_problem(401, "invalid_token");

    // Another token of the customer, by its id: the session stays, and so
    // do its cookies.
    let session = cookie_login(&app, &key, "ann@example.com").await;
    let other = cookie_login(&app, &key, "ann@example.com").await;
    let res = session
        .delete(&app, &format!("/api/v1/me/tokens/{}", other.token_id))
        .await;
    res.expect(204);
    assert_untouched(&res);
    session
        .get(&app, "/api/v1/me", Some(SHOP))
        .await
        .expect(200);

    // The session itself, by its id: cleared.
    let res = session
        .delete(&app, &format!("/api/v1/me/tokens/{}", session.token_id))
        .await;
    res.expect(204);
    assert_cleared(&res);
    let res = session.get(&app, "/api/v1/me", Some(SHOP)).await;
    res.expect_problem(401, "invalid_token");

    // Revoked with a bearer token, whatever cookie rides along is left
    // alone: the header decides.
    let session = cookie_login(&app, &key, "ann@example.com").await;
    let bearer = app.login_token(&key, "ann@example.com").await;
    let res = app
        .delete(&format!("/api/v1/me/tokens/{}", session.token_id))
        .header("cookie", &session.cookie)
        .bearer(&bearer)
        .send()
        .await;
    res.expect(204);
    assert_untouched(&res);
}

async fn a_cookie_login_revokes_the_session_it_replaces(app: TestApp) {
    let key = shop_key(&app).await;
    app.customer("ann@example.com").await;
    app.customer("bob@example.com").await;
    // A login from the browser that holds `held`.
    let login = |held: &Session, email: &str, password: &str, mode: &str| {
        app.post("/api/v1/auth/login")
            .bearer(&key)
            .header("origin", SHOP)
            .header("cookie", &held.cookie)
            .json(json!({"email": email, "password": password, "device_name": "browser", "session": mode}))
            .send()
    };

    // Ann logs in again in the same browser: her old session is revoked,
    // and her tokens list the new one only.
    let first = cookie_login(&app, &key, "ann@example.com").await;
    let res = login(&first, "ann@example.com", PASSWORD, "cookie").await;
    res.expect(201);
    let ann = session_of(&res);
    let res = first.get(&app, "/api/v1/me", Some(SHOP)).await;
    res.expect_problem(401, "invalid_token");
    let ids = ann.token_ids(&app).await;
    assert!(ids.contains(&ann.token_id), "{ids:?}");
    assert!(!ids.contains(&first.token_id), "{ids:?}");

    // A failed login replaces nothing, nor does a login for a bearer
    // token, which sets no cookie.
    login(&ann, "ann@example.com", "wrong password!", "cookie")
        .await
        .expect_problem(400, "invalid_credentials");
    login(&ann, "ann@example.com", PASSWORD, "token")
        .await
        .expect(201);
    ann.get(&app, "/api/v1/me", Some(SHOP)).await.expect(200);

    // Bob logs in in Ann's browser: Ann's session goes, Bob's works.
    let res = login(&ann, "bob@example.com", PASSWORD, "cookie").await;
    res.expect(201);
    let bob = session_of(&res);
    ann.get(&app, "/api/v1/me", Some(SHOP))
        .await
        .expect_problem(401, "invalid_token");
    let me = bob.get(&app, "/api/v1/me", Some(SHOP)).await;
    me.expect(200);
    assert_eq!(me.json()["email"], "bob@example.com");

    // A dead cookie in the browser is no obstacle.
    login(&ann, "bob@example.com", PASSWORD, "cookie")
        .await
        .expect(201);

    // Another client's page on the same site (the browser sends it the
    // cookie too) logs in through its own key: the shop's session stays.
    let shop = cookie_login(&app, &key, "ann@example.com").await;
    let other_key = shop_key(&app).await;
    app.post("/api/v1/auth/login")
        .bearer(&other_key)
        .header("origin", SHOP)
        .header("cookie", &shop.cookie)
        .json(json!({"email": "bob@example.com", "password": PASSWORD, "device_name": "browser", "session": "cookie"}))
        .send()
        .await
        .expect(201);
    shop.get(&app, "/api/v1/me", Some(SHOP)).await.expect(200);
}

// ---------------------------------------------------------------- CORS

async fn cors_allows_credentials_for_listed_origins_only(app: TestApp) {
    shop_key(&app).await;
    publishable(&app, &["products:read"], &["*"]).await;
    let preflight = |origin: &str| {
        app.req(axum::http::Method::OPTIONS, "/api/v1/me/tokens")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type, x-csrf-token",
            )
            .send()
    };
    let res = preflight(SHOP).await;
    assert!(res.status.is_success(), "{}", res.status);
    assert_credentialed_cors(&res, SHOP);
    let allowed = res.header("access-control-allow-headers").unwrap();
    assert!(allowed.to_lowercase().contains("x-csrf-token"), "{allowed}");

    // An origin allowed only through "*": readable, but no credentials,
    // and never "*" itself.
    let res = preflight(EVIL).await;
    assert_eq!(
        res.header("access-control-allow-origin").as_deref(),
        Some(EVIL)
    );
    assert_eq!(res.header("access-control-allow-credentials"), None);

    // The real request, without a token: the answer still lets the
    // shop's page read it.
    let res = app.get("/api/v1/me").header("origin", SHOP).send().await;
    res.expect_problem(401, "unauthenticated");
    assert_credentialed_cors(&res, SHOP);
}

// ---------------------------------------------------------------- what a session may not do

/// A page's script (an injected one too) may use the session, but never
/// gets a token it could carry elsewhere (to curl, another site).
async fn a_cookie_session_cannot_mint_a_token(app: TestApp) {
    let key = shop_key(&app).await;
    let (_, bearer) = app.customer("ann@example.com").await;
    let session = cookie_login(&app, &key, "ann@example.com").await;
    let before = session.token_ids(&app).await;
    for body in [
        json!({"name": "script"}),
        json!({"name": "script", "abilities": ["products:read"]}),
    ] {
        let res = app
            .post("/api/v1/me/tokens")
            .header("cookie", &session.cookie)
            .header("origin", SHOP)
            .header("x-csrf-token", &session.csrf)
            .json(body)
            .send()
            .await;
        res.expect_problem(403, "session_cannot_mint");
        assert_eq!(
            res.header("content-type").as_deref(),
            Some("application/problem+json")
        );
        assert!(!res.text().contains("jt_ut_"), "{}", res.text());
        assert_credentialed_cors(&res, SHOP);
        assert_untouched(&res);
    }
    assert_eq!(session.token_ids(&app).await, before, "nothing was made");
    // The same customer with a bearer token may.
    app.post_json_as(
        "/api/v1/me/tokens",
        &bearer,
        json!({"name": "deploy script"}),
    )
    .await
    .expect(201);
}

/// The CSRF token is the session's own: a value the attacker chose, set as
/// both the cookie and the header (a sibling subdomain can plant cookies),
/// or another session's, is refused.
async fn a_csrf_token_not_the_sessions_own_is_refused(app: TestApp) {
    let key = shop_key(&app).await;
    app.customer("ann@example.com").await;
    app.customer("eve@example.com").await;
    let session = cookie_login(&app, &key, "ann@example.com").await;
    let eves = cookie_login(&app, &key, "eve@example.com").await;
    let made = s(&app.login(&key, "ann@example.com", PASSWORD).await["token_id"]);
    let only_session = session.cookie.split(';').next().unwrap().to_owned();
    let app = &app;
    let delete = |csrf: String| {
        let cookie = format!("{only_session}; jeton_csrf={csrf}");
        let path = format!("/api/v1/me/tokens/{made}");
        async move {
            app.delete(&path)
                .header("cookie", &cookie)
                .header("origin", SHOP)
                .header("x-csrf-token", &csrf)
                .send()
                .await
        }
    };
    let chosen = "a".repeat(64);
    for csrf in [chosen, eves.csrf.clone()] {
        let res = delete(csrf).await;
        res.expect_problem(403, "csrf_failed");
        assert_untouched(&res);
    }
    // Its own, the one the login gave: accepted.
    delete(session.csrf.clone()).await.expect(204);
}

/// Refusals of a cookie session (another origin, a failed CSRF check) are
/// in the audit log, like a key's, each at most once a minute per session.
async fn cookie_refusals_are_audited_once_a_minute(app: TestApp) {
    let admin = app.admin_key().await;
    let key = shop_key(&app).await;
    let (customer_id, _) = app.customer("ann@example.com").await;
    let session = cookie_login(&app, &key, "ann@example.com").await;
    for _ in 0..3 {
        session
            .get(&app, "/api/v1/me", Some(EVIL))
            .await
            .expect_problem(403, "origin_not_allowed");
        app.post("/api/v1/orders")
            .header("cookie", &session.cookie)
            .header("origin", SHOP)
            .header("x-csrf-token", "forged")
            .json(json!({"lines": []}))
            .send()
            .await
            .expect_problem(403, "csrf_failed");
    }
    let res = app
        .get_as(
            &format!("/api/v1/admin/audit?limit=100&customer_id={customer_id}"),
            &admin,
        )
        .await;
    res.expect(200);
    let events = res.json()["data"].as_array().unwrap().clone();
    let refusals: Vec<&Value> = events
        .iter()
        .filter(|e| s(&e["action"]).starts_with("session.refused"))
        .collect();
    let actions: Vec<String> = refusals.iter().map(|e| s(&e["action"])).collect();
    assert_eq!(
        actions,
        ["session.refused_origin", "session.refused_csrf"],
        "{events:?}"
    );
    for event in &refusals {
        assert_eq!(event["subject_id"], session.token_id.as_str(), "{event}");
        assert_eq!(event["customer_id"], customer_id.as_str(), "{event}");
        assert_eq!(event["client_ip"], "127.0.0.1", "{event}");
        assert!(!event.to_string().contains("jt_ut_"), "{event}");
    }
    assert!(s(&refusals[0]["detail"]).contains(EVIL), "{}", refusals[0]);
}
