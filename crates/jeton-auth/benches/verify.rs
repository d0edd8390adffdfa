//! Token verification: on a cache hit, on a miss (the store is asked), and
//! a malformed token (refused before any lookup). The store here is an
//! in-memory map, so "miss" measures the verifier's own work around one
//! lookup, not a database round trip. And a request's authentication from
//! its headers, cached: a user token beside a publishable key.

use std::{collections::HashMap, hint::black_box};

use axum::http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use criterion::{Criterion, criterion_group, criterion_main};
use jeton_auth::{
    AbilitySet, CacheSettings, ClientPrincipal, HashedToken, Identity, PlainToken, Principal,
    StoreError, StoredCredential, TokenKind, TokenStore, UserPrincipal, Verifier,
    header::bearer_token,
};

fn identity() -> Identity {
    Identity::new("jt").expect("a valid prefix")
}

struct MemoryStore(HashMap<HashedToken, StoredCredential>);

impl TokenStore for MemoryStore {
    async fn find_credential(
        &self,
        _: TokenKind,
        hash: &HashedToken,
    ) -> Result<Option<StoredCredential>, StoreError> {
        Ok(self.0.get(hash).cloned())
    }
}

fn credential() -> StoredCredential {
    let principal = Principal::User(std::sync::Arc::new(UserPrincipal::new(
        "01a21ed1-9c14-76e1-b4b1-72faf5c47cf8",
        "01a21ed1-9c28-729f-b2a8-a12fecec3c37",
        AbilitySet::parse_spaced(
            "products:read orders:read orders:write profile:read tokens:manage",
        )
        .unwrap(),
    )));
    StoredCredential {
        principal,
        expires_at: None,
        revoked: false,
    }
}

fn publishable_credential() -> StoredCredential {
    let principal = Principal::PublishableClient(std::sync::Arc::new(
        ClientPrincipal::new(
            "01a21ed1-9c14-76e1-b4b1-72faf5c47cf9",
            "01a21ed1-9c28-729f-b2a8-a12fecec3c38",
            AbilitySet::parse_spaced("products:read").unwrap(),
        )
        .with_allowed_origins(["https://shop.example"]),
    ));
    StoredCredential {
        principal,
        expires_at: None,
        revoked: false,
    }
}

fn bearer(token: &PlainToken) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).unwrap(),
    );
    headers
}

/// Polls a future once. The in-memory store answers at once, so every
/// verification here completes on its first poll; entering an async runtime
/// per call (hundreds of ns) would measure the executor, not verification.
fn now_or_never<F: Future>(future: F) -> F::Output {
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(future).poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("the in-memory store never waits"),
    }
}

fn verification(c: &mut Criterion) {
    let token = identity().tokens().generate(TokenKind::User);
    let store = MemoryStore(HashMap::from([(token.hash(), credential())]));
    let cached = Verifier::new(store, identity());
    now_or_never(cached.verify(&token)).unwrap();
    c.bench_function("verify: cache hit", |b| {
        b.iter(|| now_or_never(cached.verify(black_box(&token))).unwrap())
    });

    // A verifier whose cache never keeps anything: every call is a miss.
    let no_cache = CacheSettings {
        positive_capacity: 0,
        negative_capacity: 0,
        ..CacheSettings::default()
    };
    let uncached = Verifier::with_cache(
        MemoryStore(HashMap::from([(token.hash(), credential())])),
        identity(),
        no_cache,
    );
    c.bench_function("verify: cache miss (in-memory store)", |b| {
        b.iter(|| now_or_never(uncached.verify(black_box(&token))).unwrap())
    });

    let tokens = identity().tokens();
    let headers = bearer(&token);
    c.bench_function("parse Authorization header + checksum", |b| {
        b.iter(|| bearer_token(tokens, black_box(&headers), None).unwrap())
    });
    let mut bad = token.expose_secret().to_owned();
    bad.replace_range(10..11, if &bad[10..11] == "a" { "b" } else { "a" });
    let mut bad_headers = HeaderMap::new();
    bad_headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {bad}")).unwrap(),
    );
    c.bench_function("refuse a bad checksum", |b| {
        b.iter(|| bearer_token(tokens, black_box(&bad_headers), None).unwrap_err())
    });
}

fn authentication(c: &mut Criterion) {
    let user = identity().tokens().generate(TokenKind::User);
    let key = identity().tokens().generate(TokenKind::Publishable);
    let verifier = Verifier::new(
        MemoryStore(HashMap::from([
            (user.hash(), credential()),
            (key.hash(), publishable_credential()),
        ])),
        identity(),
    );
    for (name, token) in [
        ("authenticate a request, cached: user token", &user),
        ("authenticate a request, cached: publishable key", &key),
    ] {
        let headers = bearer(token);
        // The store lookup; from then on, the cache.
        now_or_never(verifier.authenticate(&headers, None)).unwrap();
        c.bench_function(name, |b| {
            b.iter(|| now_or_never(verifier.authenticate(black_box(&headers), None)).unwrap())
        });
    }
}

criterion_group!(benches, verification, authentication);
criterion_main!(benches);
