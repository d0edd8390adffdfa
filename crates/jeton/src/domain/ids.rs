//! Ids are UUIDv7 strings: opaque to clients, never sequential integers, and
//! ordered by creation time, which keyset pagination relies on.

use uuid::Uuid;

pub fn new_id() -> String {
    Uuid::now_v7().hyphenated().to_string()
}

/// The canonical form of an id, or `None` if it cannot be one. Lookups of a
/// malformed id answer "not found" without asking the database.
pub fn parse_id(text: &str) -> Option<String> {
    if text.len() != 36 {
        return None;
    }
    Uuid::try_parse(text)
        .ok()
        .map(|id| id.hyphenated().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_garbage_does_not() {
        let id = new_id();
        assert_eq!(parse_id(&id).as_deref(), Some(id.as_str()));
        assert_eq!(parse_id("1"), None);
        assert_eq!(parse_id("' OR 1=1 --"), None);
        assert_eq!(parse_id(&id.replace('-', "")), None);
    }

    #[test]
    fn ids_increase() {
        let a = new_id();
        let b = new_id();
        assert!(a < b);
    }
}
