//! Reading the Authorization header (and the query string) must never panic
//! on any bytes, and a token it returns must be well-formed.
#![no_main]

use axum::http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use jeton::identity::TOKENS;
use jeton_auth::header::bearer_token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte splits the input: header bytes, then a query string.
    let Some((&split, rest)) = data.split_first() else { return };
    let split = usize::from(split).min(rest.len());
    let (header, query) = rest.split_at(split);
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(header) {
        headers.append(AUTHORIZATION, value);
    }
    let query = std::str::from_utf8(query).ok();
    if let Ok(token) = bearer_token(TOKENS, &headers, query) {
        assert_eq!(token.expose_secret().len(), 42);
    }
});
