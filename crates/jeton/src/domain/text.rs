//! Bounded strings. Every string a client sends has a maximum length, and
//! control characters are refused (they only ever cause trouble in logs and
//! terminals).

/// Trims `raw` and checks it is `min..=max` characters with no control
/// characters.
pub fn bounded(raw: &str, min: usize, max: usize) -> Result<String, String> {
    let text = raw.trim();
    let count = text.chars().count();
    if count < min {
        return Err(if min == 1 {
            "must not be empty".to_owned()
        } else {
            format!("must be at least {min} characters")
        });
    }
    if count > max {
        return Err(format!("must be at most {max} characters"));
    }
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::bounded;

    #[test]
    fn bounds() {
        assert_eq!(bounded("  hi ", 1, 5).unwrap(), "hi");
        assert!(bounded("   ", 1, 5).is_err());
        assert!(bounded("abcdef", 1, 5).is_err());
        assert!(bounded("a\u{0}b", 1, 5).is_err());
        assert!(bounded("a\nb", 1, 5).is_err());
        assert_eq!(bounded("ééé", 1, 3).unwrap(), "ééé");
    }
}
