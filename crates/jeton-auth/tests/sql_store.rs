//! The SQL store on SQLite and on PostgreSQL, through a real gate and
//! router: issue, verify, revoke (also from another process), expiry, kinds,
//! rotation, last use, refusals, and migrations beside an app's own.

#[path = "support/requests.rs"]
#[allow(dead_code, reason = "the store's tests send GETs of their own")]
mod requests;
mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode, header},
    routing::get,
};
use jeton_auth::{
    Ability, Access, Ceilings, Clock, Gate, Identity, IssuedToken, KindSet, NewClient,
    NewCredential, SqlStore, SqlStoreError, TokenKind, TokenStore,
    sqlx::{
        self, SqlSafeStr,
        migrate::{Migration, MigrationType, Migrator},
    },
    time::{self, OffsetDateTime},
    usage::{Granularity, Rank, UsageOf, UsageRange},
};
use serde_json::Value;

use support::{Backend, TestDatabase};

const READ: Ability = Ability::from_static("products:read");
const PROFILE: Ability = Ability::from_static("profile:read");
const ADMIN: Ability = Ability::from_static("admin");
const SHOP: &str = "https://shop.example";

fn identity() -> Identity {
    Identity::new("acme").unwrap()
}

async fn store(database: &TestDatabase) -> SqlStore {
    SqlStore::connect(&database.url, identity().tokens())
        .await
        .unwrap()
}

/// A router with one route per kind, as an app would guard them.
fn app(store: &SqlStore) -> (Router, std::sync::Arc<Gate<SqlStore>>) {
    app_on(store, Clock::system())
}

/// The same with its gate on `clock`.
fn app_on(store: &SqlStore, clock: Clock) -> (Router, std::sync::Arc<Gate<SqlStore>>) {
    let gate = Gate::builder(identity(), store.clone())
        .clock(clock)
        .ceilings(
            Ceilings::new()
                .publishable([READ])
                .secret([Ability::ALL])
                .user([READ, PROFILE]),
        )
        .build()
        .unwrap();
    let ok = || async { "ok" };
    let (pk, sk, ut) = (KindSet::PUBLISHABLE, KindSet::SECRET, KindSet::USER);
    let router = requests::served(
        Router::new()
            .route(
                "/products",
                get(ok).route_layer(gate.guard(Access::new(pk | ut, READ))),
            )
            .route(
                "/me",
                get(ok).route_layer(gate.guard(Access::new(ut, PROFILE))),
            )
            .route(
                "/admin",
                get(ok).route_layer(gate.guard(Access::new(sk, ADMIN))),
            ),
    );
    (router, gate)
}

async fn get_as(
    app: &Router,
    path: &str,
    token: &str,
    origin: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = Request::get(path).header(header::AUTHORIZATION, format!("Bearer {token}"));
    if let Some(origin) = origin {
        request = request.header(header::ORIGIN, origin);
    }
    requests::answer(app, request.body(Body::empty()).unwrap()).await
}

async fn status(app: &Router, path: &str, token: &str) -> StatusCode {
    get_as(app, path, token, None).await.0
}

/// Asserts what `token` gets on `path`.
async fn assert_status(app: &Router, path: &str, token: &IssuedToken, expected: StatusCode) {
    let got = status(app, path, token.token.expose_secret()).await;
    assert_eq!(got, expected, "{path} with token {}", token.id);
}

async fn keys_and_tokens_work_until_revoked(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let store = store(&database).await;
    let (app, _gate) = app(&store);
    let client = store
        .add_client(NewClient::new([READ, ADMIN]).allowed_origins([SHOP]))
        .await
        .unwrap();
    let pk = store.issue_publishable_key(&client).await.unwrap();
    let sk = store.issue_secret_key(&client).await.unwrap();
    let ut = store
        .issue_user_token("alice", [READ, PROFILE], None)
        .await
        .unwrap();
    let (pk, sk, ut) = (pk, sk, ut);
    let (pkt, skt, utt) = (
        pk.token.expose_secret(),
        sk.token.expose_secret(),
        ut.token.expose_secret(),
    );
    assert!(
        pkt.starts_with("acme_pk_") && skt.starts_with("acme_sk_") && utt.starts_with("acme_ut_")
    );

    assert_eq!(status(&app, "/products", pkt).await, StatusCode::OK);
    assert_eq!(status(&app, "/products", utt).await, StatusCode::OK);
    assert_eq!(status(&app, "/me", utt).await, StatusCode::OK);
    assert_eq!(status(&app, "/admin", skt).await, StatusCode::OK);
    // A key on a route for another kind.
    let (code, body) = get_as(&app, "/me", pkt, None).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "insufficient_scope");
    // The publishable key from its client's page, and from another site's.
    assert_eq!(
        get_as(&app, "/products", pkt, Some(SHOP)).await.0,
        StatusCode::OK
    );
    let (code, body) = get_as(&app, "/products", pkt, Some("https://evil.example")).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "origin_not_allowed");

    // The store finds a token only as its own kind.
    for (token, wrong) in [
        (&pk.token, TokenKind::Secret),
        (&sk.token, TokenKind::Publishable),
        (&ut.token, TokenKind::Secret),
        (&sk.token, TokenKind::User),
        (&sk.token, TokenKind::Access),
    ] {
        let found = store.find_credential(wrong, &token.hash()).await.unwrap();
        assert!(found.is_none(), "{wrong:?}");
    }
    let found = store
        .find_credential(TokenKind::Publishable, &pk.token.hash())
        .await
        .unwrap()
        .unwrap();
    let client_principal = found.principal.client().unwrap();
    assert_eq!(client_principal.client_id, client);
    assert_eq!(client_principal.key_id, pk.id);
    assert_eq!(client_principal.allowed_origins, [SHOP]);

    // Revoked: refused on the next request, cached or not.
    assert!(store.revoke(&ut.id).await.unwrap());
    assert!(!store.revoke(&ut.id).await.unwrap());
    let (code, body) = get_as(&app, "/me", utt, None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "invalid_token");

    let phone = store.issue_user_token("bob", [READ], None).await.unwrap();
    let laptop = store.issue_user_token("bob", [READ], None).await.unwrap();
    let carol = store.issue_user_token("carol", [READ], None).await.unwrap();
    for token in [&phone, &laptop, &carol] {
        assert_status(&app, "/products", token, StatusCode::OK).await;
    }
    assert_eq!(store.revoke_user_tokens("bob").await.unwrap(), 2);
    assert_status(&app, "/products", &phone, StatusCode::UNAUTHORIZED).await;
    assert_status(&app, "/products", &laptop, StatusCode::UNAUTHORIZED).await;
    assert_status(&app, "/products", &carol, StatusCode::OK).await;

    assert!(store.revoke_client(&client).await.unwrap());
    assert_eq!(
        status(&app, "/products", pkt).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status(&app, "/admin", skt).await, StatusCode::UNAUTHORIZED);
    assert!(matches!(
        store.issue_secret_key(&client).await,
        Err(SqlStoreError::UnknownClient(_))
    ));
    // An unknown token, well formed: the same answer as a revoked one.
    let forged = identity().tokens().generate(TokenKind::User);
    let (code, body) = get_as(&app, "/me", forged.expose_secret(), None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "invalid_token");
}

async fn expired_tokens_are_refused(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let store = store(&database).await;
    let now = OffsetDateTime::now_utc();
    let clock = Clock::manual(now);
    let (app, _gate) = app_on(&store, clock.clone());
    let past = store
        .issue_user_token("alice", [READ], Some(now - time::Duration::seconds(1)))
        .await
        .unwrap();
    assert_status(&app, "/products", &past, StatusCode::UNAUTHORIZED).await;

    let soon = now + time::Duration::milliseconds(400);
    let brief = store
        .issue_user_token("alice", [READ], Some(soon))
        .await
        .unwrap();
    let found = store
        .find_credential(TokenKind::User, &brief.token.hash())
        .await
        .unwrap()
        .unwrap();
    // Stored to the microsecond.
    assert_eq!(
        found.expires_at.unwrap().unix_timestamp_nanos() / 1000,
        soon.unix_timestamp_nanos() / 1000
    );
    assert_status(&app, "/products", &brief, StatusCode::OK).await;
    clock.advance(Duration::from_millis(400));
    // Cached, and refused all the same.
    assert_status(&app, "/products", &brief, StatusCode::UNAUTHORIZED).await;
}

async fn a_revocation_reaches_another_process_within_a_second(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    // Two stores on one database: this process's and another's.
    let issuer = store(&database).await;
    let other = store(&database).await;
    let (app, _gate) = app(&other);
    let client = issuer.add_client(NewClient::new([READ])).await.unwrap();
    let pk = issuer.issue_publishable_key(&client).await.unwrap();
    let ut = issuer
        .issue_user_token("alice", [READ, PROFILE], None)
        .await
        .unwrap();
    // Both cached in the other process.
    assert_status(&app, "/me", &ut, StatusCode::OK).await;
    assert_status(&app, "/products", &pk, StatusCode::OK).await;

    for revoke in [0, 1] {
        let (token, path) = if revoke == 0 {
            assert!(issuer.revoke(&ut.id).await.unwrap());
            (ut.token.expose_secret(), "/me")
        } else {
            assert!(issuer.revoke_client(&client).await.unwrap());
            (pk.token.expose_secret(), "/products")
        };
        refused_within_a_second(&app, path, token).await;
    }
}

/// Waits for `token`, revoked by another process just now, to be refused on
/// `path`; fails if it is still accepted a second later.
async fn refused_within_a_second(app: &Router, path: &str, token: &str) {
    let revoked_at = Instant::now();
    loop {
        let answer = status(app, path, token).await;
        if answer == StatusCode::UNAUTHORIZED {
            return;
        }
        assert_eq!(answer, StatusCode::OK);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "still accepted a second after its revocation elsewhere"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An app's own transaction (`SqlStore::within`) carries the store's
/// change and the app's own rows in one commit: another process honours
/// the revocation within a second, and a transaction dropped without a
/// commit changes nothing. The app's table refers to the store's, so its
/// migration runs after `SqlStore::migrator()`.
async fn an_apps_own_transaction_moves_the_feed(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let issuer = store(&database).await;
    let other = store(&database).await;
    let (app, _gate) = app(&other);
    let app_migrator = Migrator::with_migrations(vec![Migration::new(
        1,
        "token names".into(),
        MigrationType::Simple,
        "CREATE TABLE token_names (token_id TEXT PRIMARY KEY REFERENCES auth_credentials (id), \
         name TEXT NOT NULL)"
            .into_sql_str(),
        false,
    )]);
    SqlStore::migrator().run(issuer.pool()).await.unwrap();
    app_migrator.run(issuer.pool()).await.unwrap();

    // Issued with its name in one commit.
    let mut tx = issuer.within(issuer.pool().begin().await.unwrap());
    let ut = tx
        .issue(NewCredential::user("alice", [READ, PROFILE]))
        .await
        .unwrap();
    sqlx::query("INSERT INTO token_names (token_id, name) VALUES ($1, 'laptop')")
        .bind(&ut.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_status(&app, "/me", &ut, StatusCode::OK).await;

    // Rolled back: still live, and still named.
    let mut tx = issuer.begin().await.unwrap();
    assert!(tx.revoke(&ut.id).await.unwrap());
    drop(tx);
    assert_status(&app, "/me", &ut, StatusCode::OK).await;

    let mut tx = issuer.begin().await.unwrap();
    assert!(tx.revoke(&ut.id).await.unwrap());
    sqlx::query("UPDATE token_names SET name = 'laptop (lost)' WHERE token_id = $1")
        .bind(&ut.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    refused_within_a_second(&app, "/me", ut.token.expose_secret()).await;
    let name: String = sqlx::query_scalar("SELECT name FROM token_names WHERE token_id = $1")
        .bind(&ut.id)
        .fetch_one(issuer.pool())
        .await
        .unwrap();
    assert_eq!(name, "laptop (lost)");
}

/// Renames the store's tables away (`off`) or back: to the processes that
/// read them, the database stops answering or answers again.
async fn take_tables(store: &SqlStore, off: bool) {
    let mut tx = store.pool().begin().await.unwrap();
    for table in ["auth_changes", "auth_credentials"] {
        let (from, to) = if off {
            (table.to_owned(), format!("{table}_off"))
        } else {
            (format!("{table}_off"), table.to_owned())
        };
        let sql = format!("ALTER TABLE {from} RENAME TO {to}");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

/// While the database does not answer, a process with an outage grace
/// keeps serving what it cached for that long, never longer; one without
/// (or past it) serves nothing from its cache. A revocation committed that
/// its processes could not hear of is honoured by each of them within a
/// second of the database answering again.
async fn an_outage_is_served_from_cache_for_the_grace_only(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let issuer = store(&database).await;
    const SHORT: Duration = Duration::from_secs(2);
    let short = store(&database).await.with_outage_grace(SHORT);
    let long = store(&database)
        .await
        .with_outage_grace(Duration::from_secs(60));
    let (short_app, _short_gate) = app(&short);
    let (long_app, _long_gate) = app(&long);
    let kept = issuer
        .issue_user_token("alice", [READ], None)
        .await
        .unwrap();
    let lost = issuer.issue_user_token("bob", [READ], None).await.unwrap();
    for app in [&short_app, &long_app] {
        for token in [&kept, &lost] {
            assert_status(app, "/products", token, StatusCode::OK).await;
        }
    }

    // The outage starts; meanwhile `lost` is revoked where neither
    // process can hear of it (the counter moves with it).
    take_tables(&issuer, true).await;
    let outage = Instant::now();
    sqlx::query("UPDATE auth_credentials_off SET revoked_at = created_at WHERE id = $1")
        .bind(&lost.id)
        .execute(issuer.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE auth_changes_off SET generation = generation + 1")
        .execute(issuer.pool())
        .await
        .unwrap();
    tokio::time::sleep(3 * jeton_auth::SqlStore::POLL_INTERVAL).await;
    // Within their grace both serve what they cached; nothing else.
    for app in [&short_app, &long_app] {
        assert_status(app, "/products", &kept, StatusCode::OK).await;
        assert_status(app, "/products", &lost, StatusCode::OK).await;
    }
    let fresh = identity().tokens().generate(TokenKind::User);
    let fresh = fresh.expose_secret();
    assert_eq!(
        status(&short_app, "/products", fresh).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(outage.elapsed() < SHORT);

    // Past the short grace (and a poll), its cache is gone: nothing is
    // served. The other still serves its cache.
    tokio::time::sleep(SHORT + 2 * jeton_auth::SqlStore::POLL_INTERVAL - outage.elapsed()).await;
    for token in [&kept, &lost] {
        assert_status(
            &short_app,
            "/products",
            token,
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .await;
        assert_status(&long_app, "/products", token, StatusCode::OK).await;
    }

    // The database answers again: the revocation reaches both within a
    // second; the other token works on.
    take_tables(&issuer, false).await;
    for app in [&short_app, &long_app] {
        refused_within_a_second(app, "/products", lost.token.expose_secret()).await;
        assert_status(app, "/products", &kept, StatusCode::OK).await;
    }
}

async fn a_grace_ends_on_the_stores_clock(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let clock = Clock::manual(OffsetDateTime::now_utc());
    let store = store(&database).await.with_clock(clock.clone());
    let (app, _gate) = app_on(&store, clock.clone());
    let client = store.add_client(NewClient::new([ADMIN])).await.unwrap();
    let old = store.issue_secret_key(&client).await.unwrap();
    store
        .rotate_key(&old.id, Duration::from_secs(3600))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(3599));
    assert_status(&app, "/admin", &old, StatusCode::OK).await;
    clock.advance(Duration::from_secs(1));
    assert_status(&app, "/admin", &old, StatusCode::UNAUTHORIZED).await;
}

async fn keys_rotate_with_a_grace(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let store = store(&database).await;
    let (app, _gate) = app(&store);
    let client = store.add_client(NewClient::new([ADMIN])).await.unwrap();
    let first = store.issue_secret_key(&client).await.unwrap();
    assert_status(&app, "/admin", &first, StatusCode::OK).await;

    // With a grace, both work for now.
    let second = store
        .rotate_key(&first.id, Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(second.token.expose_secret().starts_with("acme_sk_"));
    assert_status(&app, "/admin", &first, StatusCode::OK).await;
    assert_status(&app, "/admin", &second, StatusCode::OK).await;

    // Without one, the old key stops at once, although it was cached.
    let third = store.rotate_key(&second.id, Duration::ZERO).await.unwrap();
    assert_status(&app, "/admin", &second, StatusCode::UNAUTHORIZED).await;
    assert_status(&app, "/admin", &third, StatusCode::OK).await;
    // The first one's grace never grows.
    let fourth = store
        .rotate_key(&first.id, Duration::from_secs(7200))
        .await
        .unwrap();
    let first_ends = store
        .find_credential(TokenKind::Secret, &first.token.hash())
        .await
        .unwrap()
        .unwrap()
        .expires_at
        .unwrap();
    assert!(first_ends < OffsetDateTime::now_utc() + time::Duration::seconds(3601));
    assert_status(&app, "/admin", &fourth, StatusCode::OK).await;

    assert!(store.revoke(&third.id).await.unwrap());
    assert!(matches!(
        store.rotate_key(&third.id, Duration::ZERO).await,
        Err(SqlStoreError::UnknownKey(_))
    ));
    let ut = store.issue_user_token("alice", [READ], None).await.unwrap();
    assert!(matches!(
        store.rotate_key(&ut.id, Duration::ZERO).await,
        Err(SqlStoreError::UnknownKey(_))
    ));
}

async fn uses_and_refusals_are_recorded(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let store = store(&database).await;
    let (app, gate) = app(&store);
    let ut = store
        .issue_user_token("alice", [READ, PROFILE], None)
        .await
        .unwrap();
    assert_eq!(store.last_used(&ut.id).await.unwrap(), None);
    let before = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    assert_status(&app, "/me", &ut, StatusCode::OK).await;
    gate.flush_usage().await;
    let used = store.last_used(&ut.id).await.unwrap().expect("a last use");
    assert!(used >= before && used <= OffsetDateTime::now_utc());

    // A secret key sent by a browser has leaked: refused and recorded.
    let client = store.add_client(NewClient::new([ADMIN])).await.unwrap();
    let sk = store.issue_secret_key(&client).await.unwrap();
    let (code, body) = get_as(&app, "/admin", sk.token.expose_secret(), Some(SHOP)).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "secret_key_in_browser");
    let refusals = store.refusals(&client, 10).await.unwrap();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].credential_id, sk.id);
    assert_eq!(refusals[0].code, "secret_key_in_browser");
    assert_eq!(refusals[0].origin.as_deref(), Some(SHOP));
    assert_eq!(refusals[0].client_ip.as_deref(), Some("192.0.2.7"));
    assert!(refusals[0].at >= before && refusals[0].at <= OffsetDateTime::now_utc());
}

/// Two processes flush the last uses of the same tokens at once, each
/// with the later time for half of them: neither batch is lost. Written
/// row by row in one transaction, each in its own order, they would
/// deadlock on PostgreSQL.
async fn processes_record_the_same_tokens_use_at_once(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let (one, two) = (store(&database).await, store(&database).await);
    // More tokens than one statement writes.
    let mut ids = Vec::new();
    for _ in 0..450 {
        ids.push(
            one.issue_user_token("alice", [READ], None)
                .await
                .unwrap()
                .id,
        );
    }
    let start = OffsetDateTime::now_utc().replace_microsecond(0).unwrap();
    for round in 0..5_i64 {
        let (early, late) = (
            start + time::Duration::seconds(2 * round),
            start + time::Duration::seconds(2 * round + 1),
        );
        let batch = |later_for_even: bool| {
            ids.iter()
                .enumerate()
                .map(|(i, id)| {
                    let at = if (i % 2 == 0) == later_for_even {
                        late
                    } else {
                        early
                    };
                    (id.clone(), at)
                })
                .collect()
        };
        tokio::join!(
            one.record_usage(batch(true)),
            two.record_usage(batch(false))
        );
        for id in &ids {
            assert_eq!(
                one.last_used(id).await.unwrap(),
                Some(late),
                "round {round}"
            );
        }
    }
}

async fn the_tokens_issued_through_a_client_are_revoked_apart_from_it(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let store = store(&database).await;
    let (app, _gate) = app(&store);
    let shop = store.add_client(NewClient::new([READ])).await.unwrap();
    let other = store.add_client(NewClient::new([READ])).await.unwrap();
    let pk = store.issue_publishable_key(&shop).await.unwrap();
    let via_shop = store
        .issue_user_token_via(&shop, "alice", [READ, PROFILE], None)
        .await
        .unwrap();
    let via_other = store
        .issue_user_token_via(&other, "alice", [READ, PROFILE], None)
        .await
        .unwrap();
    let direct = store
        .issue_user_token("alice", [READ, PROFILE], None)
        .await
        .unwrap();
    for token in [&via_shop, &via_other, &direct] {
        let token = token.token.expose_secret();
        assert_eq!(status(&app, "/me", token).await, StatusCode::OK);
    }
    // Cached, yet refused at once.
    assert_eq!(store.revoke_client_tokens(&shop).await.unwrap(), 1);
    assert_eq!(store.revoke_client_tokens(&shop).await.unwrap(), 0);
    let me = |token: &jeton_auth::IssuedToken| {
        let (app, token) = (app.clone(), token.token.expose_secret().to_owned());
        async move { status(&app, "/me", &token).await }
    };
    assert_eq!(me(&via_shop).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&via_other).await, StatusCode::OK);
    assert_eq!(me(&direct).await, StatusCode::OK);
    // The client and its keys are left alone.
    assert_status(&app, "/products", &pk, StatusCode::OK).await;
}

/// Without the change feed's counter a revocation would go unseen by
/// other processes: it is refused, and nothing is revoked.
async fn a_change_the_feed_cannot_carry_is_not_made(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let store = store(&database).await;
    let client = store.add_client(NewClient::new([READ])).await.unwrap();
    let pk = store.issue_publishable_key(&client).await.unwrap();
    let ut = store.issue_user_token("alice", [READ], None).await.unwrap();
    sqlx::query("DELETE FROM auth_changes")
        .execute(store.pool())
        .await
        .unwrap();
    assert!(store.revoke(&ut.id).await.is_err());
    assert!(store.revoke_user_tokens("alice").await.is_err());
    assert!(store.revoke_client(&client).await.is_err());
    assert!(store.rotate_key(&pk.id, Duration::ZERO).await.is_err());
    for (kind, token) in [(TokenKind::User, &ut), (TokenKind::Publishable, &pk)] {
        let found = store
            .find_credential(kind, &token.token.hash())
            .await
            .unwrap();
        assert!(found.is_some_and(|found| found.expires_at.is_none()));
    }
}

async fn old_rows_are_purged(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let store = store(&database).await;
    let (app, gate) = app(&store);
    let gone = store.add_client(NewClient::new([ADMIN])).await.unwrap();
    let sk = store.issue_secret_key(&gone).await.unwrap();
    assert_eq!(
        get_as(&app, "/admin", sk.token.expose_secret(), Some(SHOP))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let kept = store.add_client(NewClient::new([READ])).await.unwrap();
    let pk = store.issue_publishable_key(&kept).await.unwrap();
    let live = store
        .issue_user_token("alice", [READ, PROFILE], None)
        .await
        .unwrap();
    let past = OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let expired = store
        .issue_user_token("alice", [READ], Some(past))
        .await
        .unwrap();
    assert!(store.revoke_client(&gone).await.unwrap());
    let rows = |table: &'static str| {
        let pool = store.pool().clone();
        async move {
            let query = format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {table}");
            let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(query))
                .fetch_one(&pool)
                .await
                .unwrap();
            count
        }
    };
    assert_eq!(rows("auth_credentials").await, 4);

    // Nothing is old enough yet but the expired token.
    let purged = store
        .purge(past + time::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        (purged.credentials, purged.clients, purged.refusals),
        (1, 0, 0)
    );
    let later = OffsetDateTime::now_utc() + time::Duration::seconds(1);
    let purged = store.purge(later).await.unwrap();
    assert_eq!(
        (purged.credentials, purged.clients, purged.refusals),
        (1, 1, 1)
    );
    assert_eq!(rows("auth_credentials").await, 2);
    assert_eq!(rows("auth_clients").await, 1);
    assert_eq!(rows("auth_refusals").await, 0);
    assert!(
        store
            .find_credential(TokenKind::User, &expired.token.hash())
            .await
            .unwrap()
            .is_none()
    );
    for (path, token) in [("/products", &pk), ("/me", &live)] {
        let token = token.token.expose_secret();
        assert_eq!(status(&app, path, token).await, StatusCode::OK);
    }
    drop(gate);
}

/// An app runs its own migrations on the same database, before and after
/// the store's: neither sees the other's.
async fn migrations_live_beside_an_apps_own(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let app_migrator = Migrator::with_migrations(vec![Migration::new(
        1,
        "app things".into(),
        MigrationType::Simple,
        "CREATE TABLE things (id TEXT PRIMARY KEY)".into_sql_str(),
        false,
    )]);
    let store = store(&database).await;
    app_migrator.run(store.pool()).await.unwrap();
    store.migrate().await.unwrap();
    app_migrator.run(store.pool()).await.unwrap();
    let tables: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM things")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(tables, 0);
    // A second process starting on the migrated database.
    let again = self::store(&database).await;
    let client = again.add_client(NewClient::new([READ])).await.unwrap();
    assert!(store.issue_publishable_key(&client).await.is_ok());
}

async fn a_token_issued_through_a_client_carries_its_origins(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let store = store(&database).await;
    let (app, _gate) = app(&store);
    let shop = store
        .add_client(NewClient::new([READ]).allowed_origins([SHOP]))
        .await
        .unwrap();
    let ut = store
        .issue_user_token_via(&shop, "alice", [READ, PROFILE], None)
        .await
        .unwrap();
    let user = |found: Option<jeton_auth::StoredCredential>| match found.unwrap().principal {
        jeton_auth::Principal::User(user) => user,
        other => panic!("{other:?}"),
    };
    let found = user(
        store
            .find_credential(TokenKind::User, &ut.token.hash())
            .await
            .unwrap(),
    );
    assert_eq!(found.client_id.as_deref(), Some(shop.as_str()));
    assert_eq!(found.client_origins, [SHOP]);
    assert_eq!(found.user_id, "alice");

    // Its client revoked, the token still works, from no page.
    assert!(store.revoke_client(&shop).await.unwrap());
    assert_status(&app, "/me", &ut, StatusCode::OK).await;
    let found = user(
        store
            .find_credential(TokenKind::User, &ut.token.hash())
            .await
            .unwrap(),
    );
    assert_eq!(
        (found.client_id.as_deref(), found.client_origins.len()),
        (Some(shop.as_str()), 0)
    );
    assert!(matches!(
        store
            .issue_user_token_via(&shop, "alice", [READ], None)
            .await,
        Err(SqlStoreError::UnknownClient(_))
    ));
}

/// A busy pool is not an outage: while every pooled connection is taken
/// (lookups queueing under load), the feed is still read, so nothing is
/// dropped without a change, and a revocation elsewhere still arrives
/// within a second.
async fn a_busy_pool_is_not_an_outage(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let issuer = store(&database).await;
    let busy = store(&database).await;
    let ut = issuer
        .issue_user_token("alice", [READ], None)
        .await
        .unwrap();
    let size = busy.pool().options().get_max_connections();
    let mut taken = Vec::new();
    for _ in 0..size {
        taken.push(busy.pool().acquire().await.unwrap());
    }
    let before = busy.generation();
    tokio::time::sleep(4 * SqlStore::POLL_INTERVAL).await;
    assert_eq!(busy.generation(), before, "caches dropped without a change");

    assert!(issuer.revoke(&ut.id).await.unwrap());
    let revoked_at = Instant::now();
    while busy.generation() == before {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "a revocation unheard a second later"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(taken);
}

/// Waits for `token` from `origin` to get `expected` on `/products`;
/// fails if it still does not a second later.
async fn answers_within_a_second(app: &Router, token: &str, origin: &str, expected: StatusCode) {
    let changed_at = Instant::now();
    loop {
        let (answer, body) = get_as(app, "/products", token, Some(origin)).await;
        if answer == expected {
            return;
        }
        assert!(
            changed_at.elapsed() < Duration::from_secs(1),
            "from {origin}: {answer} {body} a second after the change"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client's abilities, origins and limits change each on its own
/// (what is not given stays); a key cached by another process follows
/// within a second, through the feed. A revoked or unknown client is not
/// updated.
async fn a_client_is_updated_and_its_cached_keys_follow(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    const NEW: &str = "https://new.example";
    let issuer = store(&database).await;
    let other = store(&database).await;
    let (app, _gate) = app(&other);
    let shop = issuer
        .add_client(NewClient::new([READ]).allowed_origins([SHOP]))
        .await
        .unwrap();
    let pk = issuer.issue_publishable_key(&shop).await.unwrap();
    let pk = pk.token.expose_secret();
    answers_within_a_second(&app, pk, SHOP, StatusCode::OK).await;
    answers_within_a_second(&app, pk, NEW, StatusCode::FORBIDDEN).await;

    let update = jeton_auth::ClientUpdate::new().allowed_origins([NEW]);
    assert!(issuer.update_client(&shop, update).await.unwrap());
    answers_within_a_second(&app, pk, NEW, StatusCode::OK).await;
    answers_within_a_second(&app, pk, SHOP, StatusCode::FORBIDDEN).await;

    let update = jeton_auth::ClientUpdate::new().abilities([PROFILE]);
    assert!(issuer.update_client(&shop, update).await.unwrap());
    answers_within_a_second(&app, pk, NEW, StatusCode::FORBIDDEN).await;

    let limits = jeton_auth::limits::Limits {
        per_key: Some(7),
        per_ip: None,
    };
    let update = jeton_auth::ClientUpdate::new().limits(limits);
    assert!(issuer.update_client(&shop, update).await.unwrap());
    let info = issuer.client(&shop).await.unwrap().unwrap();
    assert_eq!(info.allowed_origins, [NEW]);
    assert_eq!(info.abilities.to_spaced(), PROFILE.as_str());
    assert_eq!((info.limits.per_key, info.limits.per_ip), (Some(7), None));
    // Limits of none take the client's away.
    let update = jeton_auth::ClientUpdate::new().limits(jeton_auth::limits::Limits::default());
    assert!(issuer.update_client(&shop, update).await.unwrap());
    let info = issuer.client(&shop).await.unwrap().unwrap();
    assert_eq!((info.limits.per_key, info.limits.per_ip), (None, None));
    assert_eq!(info.allowed_origins, [NEW]);

    assert!(issuer.revoke_client(&shop).await.unwrap());
    let update = jeton_auth::ClientUpdate::new().abilities([READ]);
    assert!(!issuer.update_client(&shop, update.clone()).await.unwrap());
    assert!(
        !issuer
            .update_client("no-such-client", update)
            .await
            .unwrap()
    );
}

/// The store takes only origins (`scheme://host[:port]`, or `*`), in
/// their canonical form: two origins in one string, a path or anything
/// else is refused with a typed error, and nothing is written.
async fn only_origins_are_allowed_origins(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let store = store(&database).await;
    let smuggled = "https://a.example https://evil.example";
    for bad in [smuggled, "https://a.example/path", "a.example"] {
        let added = store
            .add_client(NewClient::new([READ]).allowed_origins([SHOP, bad]))
            .await;
        assert!(
            matches!(added, Err(SqlStoreError::InvalidOrigin(_))),
            "{bad}: {added:?}"
        );
    }
    assert!(store.list_clients(None, 10).await.unwrap().is_empty());

    let shop = store
        .add_client(NewClient::new([READ]).allowed_origins(["HTTPS://Shop.Example:443"]))
        .await
        .unwrap();
    let update = jeton_auth::ClientUpdate::new().allowed_origins([smuggled]);
    let updated = store.update_client(&shop, update).await;
    assert!(
        matches!(updated, Err(SqlStoreError::InvalidOrigin(_))),
        "{updated:?}"
    );
    let info = store.client(&shop).await.unwrap().unwrap();
    assert_eq!(info.allowed_origins, [SHOP]);
}

/// Every request of a known credential is counted by outcome, and
/// unknown tokens as unattributed; the flush adds them to minute, hour and
/// day buckets that agree, and a client's, a user's and everyone's usage
/// add up.
async fn usage_is_counted_by_credential_and_outcome(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let store = store(&database).await;
    let (app, gate) = app(&store);
    let shop = store
        .add_client(NewClient::new([READ]).allowed_origins([SHOP]).limits(
            jeton_auth::limits::Limits {
                per_key: Some(3),
                per_ip: None,
            },
        ))
        .await
        .unwrap();
    let pk = store.issue_publishable_key(&shop).await.unwrap();
    let pk = pk.token.expose_secret();
    let server = store.add_client(NewClient::new([ADMIN])).await.unwrap();
    let sk = store.issue_secret_key(&server).await.unwrap();
    let ut = store
        .issue_user_token("alice", [READ, PROFILE], None)
        .await
        .unwrap();
    let past = OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let expired = store
        .issue_user_token("alice", [READ], Some(past))
        .await
        .unwrap();
    let revoked = store.issue_user_token("alice", [READ], None).await.unwrap();
    assert!(store.revoke(&revoked.id).await.unwrap());

    let expect = |got: (StatusCode, Value), code: StatusCode| assert_eq!(got.0, code, "{got:?}");
    expect(
        get_as(&app, "/products", pk, Some(SHOP)).await,
        StatusCode::OK,
    );
    expect(get_as(&app, "/products", pk, None).await, StatusCode::OK);
    expect(
        get_as(&app, "/products", pk, Some("https://evil.example")).await,
        StatusCode::FORBIDDEN,
    );
    // The key's limit of 3 a minute (a refusal for its origin comes
    // before the limit, and uses none of it).
    expect(get_as(&app, "/products", pk, None).await, StatusCode::OK);
    expect(
        get_as(&app, "/products", pk, None).await,
        StatusCode::TOO_MANY_REQUESTS,
    );
    expect(
        get_as(&app, "/me", sk.token.expose_secret(), None).await,
        StatusCode::FORBIDDEN,
    );
    expect(
        get_as(&app, "/admin", sk.token.expose_secret(), Some(SHOP)).await,
        StatusCode::FORBIDDEN,
    );
    expect(
        get_as(&app, "/admin", sk.token.expose_secret(), None).await,
        StatusCode::OK,
    );
    for _ in 0..2 {
        assert_status(&app, "/me", &ut, StatusCode::OK).await;
        assert_status(&app, "/me", &expired, StatusCode::UNAUTHORIZED).await;
        assert_status(&app, "/me", &revoked, StatusCode::UNAUTHORIZED).await;
    }
    let unknown = identity().tokens().generate(TokenKind::User);
    assert_eq!(
        status(&app, "/me", unknown.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&app, "/me", "acme_ut_garbage").await,
        StatusCode::UNAUTHORIZED
    );
    gate.flush_usage().await;

    let now = OffsetDateTime::now_utc();
    for granularity in Granularity::ALL {
        let range = UsageRange::last(granularity, 2, now);
        let of_shop = store.usage(UsageOf::Client(&shop), range).await.unwrap();
        let totals = of_shop.totals;
        assert_eq!(
            (
                totals.ok,
                totals.origin_not_allowed,
                totals.rate_limited,
                totals.unattributed
            ),
            (3, 1, 1, 0),
            "{granularity}: {totals:?}"
        );
        assert_eq!(of_shop.buckets.len(), 2, "every bucket, zeros included");
        let of_server = store
            .usage(UsageOf::Client(&server), range)
            .await
            .unwrap()
            .totals;
        assert_eq!(
            (
                of_server.ok,
                of_server.insufficient_scope,
                of_server.secret_key_in_browser
            ),
            (1, 1, 1),
            "{granularity}: {of_server:?}"
        );
        let of_alice = store
            .usage(UsageOf::User("alice"), range)
            .await
            .unwrap()
            .totals;
        assert_eq!(
            (
                of_alice.ok,
                of_alice.expired,
                of_alice.revoked,
                of_alice.requests()
            ),
            (2, 2, 2, 6),
            "{granularity}: {of_alice:?}"
        );
        let all = store.usage(UsageOf::All, range).await.unwrap().totals;
        assert_eq!(all.unattributed, 2, "{granularity}: {all:?}");
        assert_eq!(
            all.requests(),
            of_shop.totals.requests() + of_server.requests() + of_alice.requests() + 2
        );
        let top = store.top_clients(range, Rank::Refused, 10).await.unwrap();
        assert_eq!(top.len(), 2);
        assert_eq!(top[0].1.refused(), 2);
    }

    // Another flush adds to the same buckets.
    assert_status(&app, "/me", &ut, StatusCode::OK).await;
    gate.flush_usage().await;
    let range = UsageRange::last(Granularity::Day, 1, now);
    let of_alice = store
        .usage(UsageOf::User("alice"), range)
        .await
        .unwrap()
        .totals;
    assert_eq!(of_alice.ok, 3);

    // Nothing is past its retention yet; buckets just past theirs go.
    assert_eq!(store.purge_usage().await.unwrap(), 0);
    let micros = |at: OffsetDateTime| (at.unix_timestamp_nanos() / 1000) as i64;
    for (granularity, age) in [
        ("minute", time::Duration::hours(50)),
        ("hour", time::Duration::days(92)),
        ("day", time::Duration::days(733)),
        ("day", time::Duration::days(700)),
    ] {
        sqlx::query(
            "INSERT INTO auth_usage (granularity, bucket, credential_id, kind, ok) \
             VALUES ($1, $2, 'old', 'secret', 1)",
        )
        .bind(granularity)
        .bind(micros(now - age))
        .execute(store.pool())
        .await
        .unwrap();
    }
    assert_eq!(store.purge_usage().await.unwrap(), 3);
    let kept: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM auth_usage WHERE credential_id = 'old'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(kept, 1, "the day bucket within two years stays");
}

macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })*
        }
    };
}

on_both_databases!(
    keys_and_tokens_work_until_revoked,
    expired_tokens_are_refused,
    a_revocation_reaches_another_process_within_a_second,
    keys_rotate_with_a_grace,
    a_grace_ends_on_the_stores_clock,
    uses_and_refusals_are_recorded,
    migrations_live_beside_an_apps_own,
    a_token_issued_through_a_client_carries_its_origins,
    processes_record_the_same_tokens_use_at_once,
    the_tokens_issued_through_a_client_are_revoked_apart_from_it,
    a_change_the_feed_cannot_carry_is_not_made,
    old_rows_are_purged,
    an_apps_own_transaction_moves_the_feed,
    an_outage_is_served_from_cache_for_the_grace_only,
    a_busy_pool_is_not_an_outage,
    a_client_is_updated_and_its_cached_keys_follow,
    only_origins_are_allowed_origins,
    usage_is_counted_by_credential_and_outcome,
    staff_sessions_live_in_their_cookie_until_idle_revoked_or_changed,
    guests_are_their_own_kind_until_idle_revoked_or_their_client_is,
);

/// On PostgreSQL another process hears of a revocation through `NOTIFY`,
/// well before its next poll: the mean wait over several revocations is far
/// below half the polling interval, which is what polling alone averages.
#[tokio::test]
async fn on_postgres_a_revocation_is_heard_at_once() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let issuer = store(&database).await;
    let other = store(&database).await;
    let (app, _gate) = app(&other);
    // The listening connection is up once a first change is heard.
    let warm_up = issuer.issue_user_token("warm", [READ], None).await.unwrap();
    let before = other.generation();
    assert!(issuer.revoke(&warm_up.id).await.unwrap());
    let started = Instant::now();
    while other.generation() == before {
        assert!(started.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    const ROUNDS: u32 = 8;
    let mut waited = Duration::ZERO;
    for _ in 0..ROUNDS {
        let ut = issuer
            .issue_user_token("alice", [READ], None)
            .await
            .unwrap();
        let token = ut.token.expose_secret();
        assert_eq!(status(&app, "/products", token).await, StatusCode::OK);
        assert!(issuer.revoke(&ut.id).await.unwrap());
        let revoked_at = Instant::now();
        while status(&app, "/products", token).await == StatusCode::OK {
            assert!(revoked_at.elapsed() < Duration::from_secs(1));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        waited += revoked_at.elapsed();
    }
    let mean = waited / ROUNDS;
    assert!(
        mean < jeton_auth::SqlStore::POLL_INTERVAL / 2,
        "a revocation took {mean:?} on average to be heard"
    );
}

/// The listening connections of the processes on the test's database.
async fn listeners(store: &SqlStore) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap()
}

/// On PostgreSQL a lost listening connection is an outage like any other:
/// during the grace, losing it and listening again keep what was cached;
/// a revocation committed meanwhile still arrives within a second of the
/// feed being read again.
#[tokio::test]
async fn on_postgres_a_lost_listener_keeps_the_outage_grace() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let issuer = store(&database).await;
    let long = store(&database)
        .await
        .with_outage_grace(Duration::from_secs(60));
    let (app, _gate) = app(&long);
    let kept = issuer
        .issue_user_token("alice", [READ], None)
        .await
        .unwrap();
    let lost = issuer.issue_user_token("bob", [READ], None).await.unwrap();
    for token in [&kept, &lost] {
        assert_status(&app, "/products", token, StatusCode::OK).await;
    }
    let started = Instant::now();
    while listeners(&issuer).await < 2 {
        assert!(started.elapsed() < Duration::from_secs(5), "nobody listens");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    take_tables(&issuer, true).await;
    sqlx::query("UPDATE auth_credentials_off SET revoked_at = created_at WHERE id = $1")
        .bind(&lost.id)
        .execute(issuer.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE auth_changes_off SET generation = generation + 1")
        .execute(issuer.pool())
        .await
        .unwrap();
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(issuer.pool())
    .await
    .unwrap();
    assert!(terminated.len() >= 2, "{terminated:?}");
    // Each listener notices the loss and listens again meanwhile.
    let started = Instant::now();
    while listeners(&issuer).await < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not listening again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(2 * SqlStore::POLL_INTERVAL).await;
    for token in [&kept, &lost] {
        assert_status(&app, "/products", token, StatusCode::OK).await;
    }

    take_tables(&issuer, false).await;
    refused_within_a_second(&app, "/products", lost.token.expose_secret()).await;
    assert_status(&app, "/products", &kept, StatusCode::OK).await;
}

/// The in-memory SQLite database works too (one connection: each is a
/// database of its own).
#[tokio::test]
async fn an_in_memory_database_works() {
    let store = SqlStore::connect("sqlite::memory:", identity().tokens())
        .await
        .unwrap();
    let (app, _gate) = app(&store);
    let ut = store
        .issue_user_token("alice", [READ, PROFILE], None)
        .await
        .unwrap();
    assert_status(&app, "/me", &ut, StatusCode::OK).await;
    assert!(store.revoke(&ut.id).await.unwrap());
    assert_status(&app, "/me", &ut, StatusCode::UNAUTHORIZED).await;
}

/// The in-memory database is its one connection: the pool never closes it,
/// or a fresh empty database would take its place.
#[tokio::test]
async fn an_in_memory_database_keeps_its_one_connection() {
    let store = SqlStore::connect("sqlite::memory:", identity().tokens())
        .await
        .unwrap();
    let options = store.pool().options();
    assert_eq!(options.get_max_lifetime(), None);
    assert_eq!(options.get_idle_timeout(), None);
    assert_eq!(
        (options.get_min_connections(), options.get_max_connections()),
        (1, 1)
    );
}

/// A PostgreSQL "server" that accepts connections and never answers; how
/// many it accepted so far.
async fn silent_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "postgres://nobody@{}/nothing",
        listener.local_addr().unwrap()
    );
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            open.push(socket);
        }
    });
    (url, accepted)
}

/// A database that does not answer: the lookup fails in time (a 503, not a
/// request left waiting), and every failed read of the change feed drops
/// what was cached, since a revocation may have gone unseen.
#[tokio::test]
async fn a_silent_database_fails_lookups_in_time_and_drops_caches() {
    sqlx::any::install_default_drivers();
    let (url, _accepted) = silent_server().await;
    let pool = sqlx::any::AnyPoolOptions::new()
        .acquire_timeout(Duration::from_secs(60))
        .connect_lazy(&url)
        .unwrap();
    let store = SqlStore::from_pool(pool, identity().tokens()).await;
    let before = store.generation();
    let started = Instant::now();
    let found = store
        .find_credential(
            TokenKind::User,
            &identity().tokens().generate(TokenKind::User).hash(),
        )
        .await;
    assert!(found.is_err());
    let waited = started.elapsed();
    assert!(
        waited >= jeton_auth::SqlStore::LOOKUP_TIMEOUT - Duration::from_millis(100)
            && waited < jeton_auth::SqlStore::LOOKUP_TIMEOUT + Duration::from_secs(1),
        "{waited:?}"
    );
    // Several failed reads meanwhile, each dropping the caches.
    assert!(store.generation() >= before + 3, "{}", store.generation());
}

/// A listening connection that keeps failing is retried after a growing
/// wait, not in a loop: the listener and the feed's reads together connect
/// a handful of times while the test waits.
#[tokio::test]
async fn a_failing_listener_backs_off() {
    sqlx::any::install_default_drivers();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "postgres://nobody@{}/nothing",
        listener.local_addr().unwrap()
    );
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    // Accepts and hangs up at once.
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let pool = sqlx::any::AnyPoolOptions::new()
        .acquire_timeout(Duration::from_millis(100))
        .connect_lazy(&url)
        .unwrap();
    let store = SqlStore::from_pool(pool, identity().tokens()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let attempts = accepted.load(Ordering::SeqCst);
    assert!((2..60).contains(&attempts), "{attempts} connections");
    drop(store);
}

/// Staff sessions: only from their cookie and the app's own origin, with
/// their CSRF token on unsafe methods; a change of abilities, a revocation
/// and the idle timeout apply at once; purged after their end.
async fn staff_sessions_live_in_their_cookie_until_idle_revoked_or_changed(backend: Backend) {
    use jeton_auth::session::CookieSessions;
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let clock = Clock::manual(OffsetDateTime::now_utc());
    let store = SqlStore::connect(&database.url, identity().tokens())
        .await
        .unwrap()
        .with_clock(clock.clone())
        .with_staff_idle_timeout(Duration::from_secs(30 * 60));
    let sessions = CookieSessions::staff(
        "acme_staff",
        "acme_staff_csrf",
        "/console",
        ["https://api.example".to_owned()],
        b"the deployment's key",
    )
    .unwrap();
    let gate = Gate::builder(identity(), store.clone())
        .clock(clock.clone())
        .usage_interval(Duration::from_millis(10))
        .ceilings(Ceilings::new().secret([Ability::ALL]).staff([ADMIN, READ]))
        .cookie_sessions(sessions.clone())
        .build()
        .unwrap();
    let ok = || async { "ok" };
    let app = requests::served(
        Router::new()
            .route(
                "/admin",
                get(ok)
                    .post(ok)
                    .route_layer(gate.guard(Access::new(KindSet::SECRET | KindSet::STAFF, ADMIN))),
            )
            .route(
                "/me",
                get(ok).route_layer(gate.guard(Access::any_ability(KindSet::USER))),
            ),
    );
    let issue = |staff_id: &'static str| {
        let store = store.clone();
        let clock = clock.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            let issued = tx
                .issue_staff_session(staff_id, [ADMIN], clock.now() + time::Duration::hours(12))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            issued
        }
    };
    let call = |method: &str, path: &str, token: &str, extra: &[(&str, &str)]| {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::COOKIE, format!("acme_staff={token}"));
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        requests::answer(&app, request.body(Body::empty()).unwrap())
    };
    let member = issue("m1").await;
    assert_eq!(member.token.kind(), TokenKind::Staff);
    let token = member.token.expose_secret();
    let csrf = sessions.csrf_token(token, &member.id);
    assert_eq!(call("GET", "/admin", token, &[]).await.0, StatusCode::OK);
    assert_eq!(
        call("GET", "/admin", token, &[("origin", "https://api.example")])
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = call(
        "GET",
        "/admin",
        token,
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("origin_not_allowed"))
    );
    let (status, body) = call("POST", "/admin", token, &[]).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("csrf_failed"))
    );
    assert_eq!(
        call("POST", "/admin", token, &[("x-csrf-token", csrf.as_str())])
            .await
            .0,
        StatusCode::OK
    );
    // Not a user route's credential; never a bearer token.
    assert_eq!(
        call("GET", "/me", token, &[]).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_of(&app, "/admin", token).await,
        StatusCode::UNAUTHORIZED
    );

    // New abilities apply at once.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.set_staff_abilities("m1", [READ]).await.unwrap(), 1);
    tx.commit().await.unwrap();
    let (status, body) = call("GET", "/admin", token, &[]).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("insufficient_scope"))
    );

    // Revoked: refused, and known as revoked.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.revoke_staff_sessions("m1").await.unwrap(), 1);
    tx.commit().await.unwrap();
    assert_eq!(
        call("GET", "/admin", token, &[]).await.0,
        StatusCode::UNAUTHORIZED
    );
    let found = store
        .find_credential(TokenKind::Staff, &member.token.hash())
        .await
        .unwrap()
        .unwrap();
    assert!(found.revoked);

    // Idle: used, it lives on; unused for 30 minutes, it ends.
    let active = issue("m2").await;
    let idle = issue("m3").await;
    for _ in 0..4 {
        clock.advance(Duration::from_secs(20 * 60));
        assert_eq!(
            call("GET", "/admin", active.token.expose_secret(), &[])
                .await
                .0,
            StatusCode::OK
        );
        gate.flush_usage().await;
    }
    assert_eq!(
        call("GET", "/admin", idle.token.expose_secret(), &[])
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    clock.advance(Duration::from_secs(31 * 60));
    assert_eq!(
        call("GET", "/admin", active.token.expose_secret(), &[])
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );

    // Purged once over.
    clock.advance(Duration::from_secs(13 * 3600));
    let purged = store.purge(clock.now()).await.unwrap();
    assert_eq!(purged.staff_sessions, 3);
}

async fn status_of(app: &Router, path: &str, token: &str) -> StatusCode {
    status(app, path, token).await
}

/// Guest tokens: their own kind, from their own origin only, limited per
/// token; found and revoked in an app's transaction; ended by their idle
/// time (from the last use the flush wrote), by their client's revocation,
/// and purged after.
async fn guests_are_their_own_kind_until_idle_revoked_or_their_client_is(backend: Backend) {
    use jeton_auth::limits::Rate;
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let clock = Clock::manual(OffsetDateTime::now_utc());
    let store = store(&database).await.with_clock(clock.clone());
    let gate = Gate::builder(identity(), store.clone())
        .clock(clock.clone())
        .usage_interval(Duration::from_millis(10))
        .guest_rate_limit(Rate::per_minute(5))
        .ceilings(
            Ceilings::new()
                .publishable([READ])
                .user([READ])
                .guest([READ]),
        )
        .build()
        .unwrap();
    let ok = || async { "ok" };
    let app = requests::served(
        Router::new()
            .route(
                "/products",
                get(ok).route_layer(gate.guard(Access::new(KindSet::GUEST | KindSet::USER, READ))),
            )
            .route(
                "/me",
                get(ok).route_layer(gate.guard(Access::any_ability(KindSet::USER))),
            ),
    );
    let client = store
        .add_client(NewClient::new([READ]).allowed_origins([SHOP]))
        .await
        .unwrap();
    let issue = |origin: Option<&'static str>| {
        let store = store.clone();
        let client = client.clone();
        let clock = clock.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            let issued = tx
                .issue_guest_token(
                    &client,
                    origin,
                    [READ],
                    clock.now() + time::Duration::days(30),
                    Some(Duration::from_secs(14 * 24 * 3600)),
                )
                .await
                .unwrap();
            tx.commit().await.unwrap();
            issued
        }
    };
    let shop = issue(Some(SHOP)).await;
    let idle = issue(None).await;
    assert_eq!(shop.token.kind(), TokenKind::Guest);
    let token = shop.token.expose_secret();
    assert!(token.starts_with("acme_gt_"));
    assert_eq!(
        get_as(&app, "/products", token, Some(SHOP)).await.0,
        StatusCode::OK
    );
    let (status, body) = get_as(&app, "/products", token, Some("https://evil.example")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("origin_not_allowed"))
    );
    assert_eq!(status_of(&app, "/me", token).await, StatusCode::FORBIDDEN);
    // Each guest its own limit: 5 a minute.
    let limited = issue(None).await;
    for _ in 0..5 {
        assert_eq!(
            status_of(&app, "/products", limited.token.expose_secret()).await,
            StatusCode::OK
        );
    }
    assert_eq!(
        status_of(&app, "/products", limited.token.expose_secret()).await,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Found in an app's transaction while it works; no other kind is.
    let secret = store.issue_secret_key(&client).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let found = tx.live_guest(&idle.token).await.unwrap().unwrap();
    assert_eq!(
        (found.kind, found.client_id.as_deref()),
        (TokenKind::Guest, Some(client.as_str()))
    );
    assert!(tx.live_guest(&secret.token).await.unwrap().is_none());
    drop(tx);

    // Used on day 10 (the flush writes it), it lives past day 14; the
    // other, never used, does not.
    clock.advance(Duration::from_secs(10 * 24 * 3600));
    assert_eq!(
        get_as(&app, "/products", token, Some(SHOP)).await.0,
        StatusCode::OK
    );
    gate.flush_usage().await;
    clock.advance(Duration::from_secs(5 * 24 * 3600));
    assert_eq!(
        status_of(&app, "/products", idle.token.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get_as(&app, "/products", token, Some(SHOP)).await.0,
        StatusCode::OK
    );
    let mut tx = store.begin().await.unwrap();
    assert!(tx.live_guest(&idle.token).await.unwrap().is_none());
    assert!(tx.live_guest(&shop.token).await.unwrap().is_some());
    tx.commit().await.unwrap();

    // A revocation in an app's transaction answers once.
    let other = issue(None).await;
    let mut tx = store.begin().await.unwrap();
    assert!(tx.revoke_guest(&other.id).await.unwrap());
    assert!(!tx.revoke_guest(&other.id).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(
        status_of(&app, "/products", other.token.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );

    // The client's revocation ends its guests; purged after.
    store.revoke_client(&client).await.unwrap();
    assert_eq!(
        get_as(&app, "/products", token, Some(SHOP)).await.0,
        StatusCode::UNAUTHORIZED
    );
    clock.advance(Duration::from_secs(60));
    let purged = store.purge(clock.now()).await.unwrap();
    assert_eq!(purged.guest_tokens, 4);
}
