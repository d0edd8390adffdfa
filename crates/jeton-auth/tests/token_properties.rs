//! Properties of the token format, checked on generated inputs.

use jeton_auth::{TokenFormat, TokenKind, header::bearer_token};

const TOKENS: TokenFormat = TokenFormat::from_static("jt");
use proptest::prelude::*;

fn kind() -> impl Strategy<Value = TokenKind> {
    prop::sample::select(TokenKind::ALL.to_vec())
}

proptest! {
    /// generate → parse gives the same token back, of the same kind.
    #[test]
    fn generated_tokens_round_trip(kind in kind()) {
        let token = TOKENS.generate(kind);
        let parsed = TOKENS.parse(token.expose_secret()).unwrap();
        prop_assert_eq!(parsed.kind(), kind);
        prop_assert_eq!(parsed.expose_secret(), token.expose_secret());
        prop_assert_eq!(parsed.hash(), token.hash());
    }

    /// Changing any one character to any other character makes the token
    /// invalid: the checksum (or the prefix, or the alphabet) catches it.
    #[test]
    fn any_single_character_change_is_refused(
        kind in kind(),
        position in 0usize..42,
        replacement in any::<char>(),
    ) {
        let token = TOKENS.generate(kind);
        let original: Vec<char> = token.expose_secret().chars().collect();
        prop_assume!(original[position] != replacement);
        let mut changed = original.clone();
        changed[position] = replacement;
        let changed: String = changed.into_iter().collect();
        // A change in the kind code may turn a valid token into a token of
        // another kind with a wrong checksum; either way it must not parse.
        prop_assert!(TOKENS.parse(&changed).is_err(), "{} parsed", changed);
    }

    /// Parsing never panics, whatever the input.
    #[test]
    fn parsing_never_panics(input in ".*") {
        let _ = TOKENS.parse(&input);
    }

    /// Nor does reading an Authorization header, whatever its bytes.
    #[test]
    fn header_parsing_never_panics(value in prop::collection::vec(any::<u8>(), 0..200), query in ".{0,50}") {
        let mut headers = axum::http::HeaderMap::new();
        if let Ok(value) = axum::http::HeaderValue::from_bytes(&value) {
            headers.insert(axum::http::header::AUTHORIZATION, value);
        }
        let _ = bearer_token(TOKENS, &headers, Some(&query));
    }

    /// Strings shaped like tokens (right prefix and length, base62) are
    /// refused unless their checksum matches.
    #[test]
    fn forged_bodies_need_the_checksum(kind in kind(), body in "[0-9A-Za-z]{36}") {
        let candidate = format!("jt_{}_{}", kind.code(), body);
        if let Ok(token) = TOKENS.parse(&candidate) {
            // A 1-in-62^6 chance that the random tail is the right checksum:
            // then it is a well-formed token and must round-trip.
            prop_assert_eq!(token.expose_secret(), candidate.as_str());
        }
    }
}
