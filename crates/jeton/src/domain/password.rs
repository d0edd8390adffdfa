//! Passwords: 8 to 256 characters. Hashing them is `crate::hashing`'s job.

use std::fmt;

use zeroize::Zeroizing;

pub const MIN_CHARS: usize = 8;
pub const MAX_CHARS: usize = 256;

/// A password as typed, within bounds. Never printed, zeroized on drop.
pub struct Password(Zeroizing<String>);

impl Password {
    pub fn parse(raw: String) -> Result<Password, String> {
        let raw = Zeroizing::new(raw);
        let count = raw.chars().count();
        if count < MIN_CHARS {
            return Err(format!("must be at least {MIN_CHARS} characters"));
        }
        if count > MAX_CHARS {
            return Err(format!("must be at most {MAX_CHARS} characters"));
        }
        Ok(Password(raw))
    }

    /// At login only the upper bound applies (it keeps hashing cost bounded);
    /// a too-short password simply fails verification like any wrong one.
    pub fn for_login(raw: String) -> Result<Password, String> {
        let raw = Zeroizing::new(raw);
        if raw.chars().count() > MAX_CHARS {
            return Err(format!("must be at most {MAX_CHARS} characters"));
        }
        Ok(Password(raw))
    }
}

impl Password {
    /// The password as typed, for the hasher only.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(Password::parse("short".into()).is_err());
        assert!(Password::parse("12345678".into()).is_ok());
        assert!(Password::parse("é".repeat(256)).is_ok());
        assert!(Password::parse("a".repeat(257)).is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let password = Password::parse("hunter2hunter2".into()).unwrap();
        assert_eq!(format!("{password:?}"), "Password([redacted])");
    }
}
