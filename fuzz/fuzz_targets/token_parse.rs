//! The token parser must never panic, and whatever it accepts must be a
//! 42-character token (Jeton's format, `jt_`) that parses back to itself.
#![no_main]

use jeton::identity::TOKENS;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(token) = TOKENS.parse(text)
    {
        assert_eq!(token.expose_secret(), text);
        assert_eq!(text.len(), 42);
        assert!(TOKENS.parse(token.expose_secret()).is_ok());
    }
});
