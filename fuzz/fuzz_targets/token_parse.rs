//! The token parser must never panic, and whatever it accepts must be a
//! 42-character token that parses back to itself.
#![no_main]

use jeton_auth::PlainToken;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(token) = PlainToken::parse(text)
    {
        assert_eq!(token.expose_secret(), text);
        assert_eq!(text.len(), 42);
        assert!(PlainToken::parse(token.expose_secret()).is_ok());
    }
});
