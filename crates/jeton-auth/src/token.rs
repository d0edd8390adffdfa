//! The token format: `jt_<kind>_<30 base62 random><6 base62 CRC32>`.
//!
//! [`PlainToken`] is the secret a caller holds; it is zeroized on drop and its
//! `Debug` never prints it. [`HashedToken`] is SHA-256 of it, the only form
//! that is ever stored.

use std::fmt;

use rand::TryRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub(crate) const PREFIX_LEN: usize = 6; // "jt_pk_"
const RANDOM_LEN: usize = 30;
const CHECK_LEN: usize = 6;
/// Every token is exactly this long; anything else is not a token.
pub const TOKEN_LEN: usize = PREFIX_LEN + RANDOM_LEN + CHECK_LEN;

/// What kind of credential a token is. The kind is part of the token text, so
/// a token can never be mistaken for another kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// `jt_pk_`: a client key that lives in browser code; public by design.
    Publishable,
    /// `jt_sk_`: a client key that lives on servers.
    Secret,
    /// `jt_ut_`: a token issued to a person at login.
    User,
    /// `jt_at_`: an OAuth2 access token (reserved; no store issues it yet).
    Access,
}

impl TokenKind {
    pub const ALL: [TokenKind; 4] = [
        TokenKind::Publishable,
        TokenKind::Secret,
        TokenKind::User,
        TokenKind::Access,
    ];

    /// The two letters between `jt_` and `_`.
    pub const fn code(self) -> &'static str {
        match self {
            TokenKind::Publishable => "pk",
            TokenKind::Secret => "sk",
            TokenKind::User => "ut",
            TokenKind::Access => "at",
        }
    }

    pub fn from_code(code: &str) -> Option<TokenKind> {
        TokenKind::from_code_bytes(code.as_bytes().try_into().ok()?)
    }

    fn from_code_bytes(code: [u8; 2]) -> Option<TokenKind> {
        TokenKind::ALL
            .into_iter()
            .find(|kind| kind.code().as_bytes() == code)
    }

    /// A stable lower-case name, for logs and metrics labels.
    pub const fn name(self) -> &'static str {
        match self {
            TokenKind::Publishable => "publishable",
            TokenKind::Secret => "secret",
            TokenKind::User => "user",
            TokenKind::Access => "access",
        }
    }
}

/// Why a string is not a token. Deliberately coarse: the caller only ever
/// learns `invalid_token`, this is for tests and fuzzing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    #[error("a token is exactly {TOKEN_LEN} characters")]
    Length,
    #[error("a token starts with jt_<kind>_")]
    Prefix,
    #[error("a token is base62 after its prefix")]
    Alphabet,
    #[error("the checksum does not match")]
    Checksum,
}

/// A token in plain text. Exists briefly: when it is issued (to show it once)
/// and while a request is verified. Never printed, zeroized on drop.
pub struct PlainToken {
    kind: TokenKind,
    /// ASCII, checked on the way in. A fixed array, so holding a token
    /// allocates nothing and zeroizing it wipes every byte.
    text: Zeroizing<[u8; TOKEN_LEN]>,
}

impl PlainToken {
    /// A fresh token from the operating system's CSPRNG (about 178 bits).
    pub fn generate(kind: TokenKind) -> PlainToken {
        let mut text = Zeroizing::new(String::with_capacity(TOKEN_LEN));
        text.push_str("jt_");
        text.push_str(kind.code());
        text.push('_');
        let mut bytes = Zeroizing::new([0u8; 64]);
        while text.len() < PREFIX_LEN + RANDOM_LEN {
            rand::rngs::SysRng
                .try_fill_bytes(bytes.as_mut())
                .expect("the operating system's random number generator failed");
            // Rejection sampling keeps every character equally likely:
            // 248 = 4 * 62 is the largest multiple of 62 that fits a byte.
            for &byte in bytes.iter().filter(|&&b| b < 248) {
                if text.len() == PREFIX_LEN + RANDOM_LEN {
                    break;
                }
                text.push(ALPHABET[usize::from(byte % 62)] as char);
            }
        }
        let check = checksum(text.as_bytes());
        let mut token = Zeroizing::new([0u8; TOKEN_LEN]);
        token[..PREFIX_LEN + RANDOM_LEN].copy_from_slice(text.as_bytes());
        token[PREFIX_LEN + RANDOM_LEN..].copy_from_slice(&check);
        PlainToken { kind, text: token }
    }

    /// Parses and checks the format without any I/O: length, prefix, alphabet
    /// and checksum. A string that fails here never reaches storage.
    pub fn parse(candidate: &str) -> Result<PlainToken, TokenFormatError> {
        PlainToken::parse_bytes(candidate.as_bytes())
    }

    /// [`PlainToken::parse`] on bytes, which need not be text: anything but
    /// ASCII fails the prefix or the alphabet.
    pub fn parse_bytes(candidate: &[u8]) -> Result<PlainToken, TokenFormatError> {
        // Bytes throughout: a request's token passes here on every request.
        let bytes: &[u8; TOKEN_LEN] = candidate.try_into().map_err(|_| TokenFormatError::Length)?;
        let kind = match (&bytes[..3], bytes[5]) {
            (b"jt_", b'_') => TokenKind::from_code_bytes([bytes[3], bytes[4]]),
            _ => None,
        }
        .ok_or(TokenFormatError::Prefix)?;
        let (body, check) = bytes.split_at(PREFIX_LEN + RANDOM_LEN);
        // A fold rather than `all`: without the early exit the compiler
        // checks many bytes at once.
        let alphanumeric = bytes[PREFIX_LEN..]
            .iter()
            .fold(true, |all, byte| all & byte.is_ascii_alphanumeric());
        if !alphanumeric {
            return Err(TokenFormatError::Alphabet);
        }
        if checksum(body) != check {
            return Err(TokenFormatError::Checksum);
        }
        Ok(PlainToken {
            kind,
            text: Zeroizing::new(*bytes),
        })
    }

    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The secret itself. Call only to hand it to its owner, once.
    pub fn expose_secret(&self) -> &str {
        std::str::from_utf8(self.text.as_slice()).expect("a token is ASCII")
    }

    /// The last four characters, kept for display ("…a1B2").
    pub fn last4(&self) -> String {
        self.expose_secret()[TOKEN_LEN - 4..].to_owned()
    }

    pub fn hash(&self) -> HashedToken {
        HashedToken(Sha256::digest(self.text.as_slice()).into())
    }
}

impl fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlainToken(jt_{}_[redacted])", self.kind.code())
    }
}

/// SHA-256 of a token: what is stored and looked up. Tokens carry 178 bits of
/// randomness, so a fast unsalted hash is enough (a slow hash buys nothing
/// against brute force of that size, and would cost every request).
#[derive(Clone, Copy, Eq)]
pub struct HashedToken([u8; 32]);

impl HashedToken {
    pub fn from_bytes(bytes: [u8; 32]) -> HashedToken {
        HashedToken(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, the form stored in a text column.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl PartialEq for HashedToken {
    /// In constant time: see [`equal_in_constant_time`].
    fn eq(&self, other: &Self) -> bool {
        equal_in_constant_time(&self.0, &other.0)
    }
}

/// Whether two secrets of one fixed length are equal, with no branch on
/// their bytes until the one folded difference is compared. Every cache
/// lookup compares hashes this way, and `subtle`'s comparison of slices,
/// which hides each byte from the optimizer, costs more than the lookup
/// itself; folding a fixed-length array lets the compiler compare it in a
/// few vector instructions.
pub(crate) fn equal_in_constant_time<const N: usize>(a: &[u8; N], b: &[u8; N]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    difference.ct_eq(&0).into()
}

impl std::hash::Hash for HashedToken {
    /// The first eight bytes: a SHA-256 is uniformly distributed, so they
    /// place it in a table as well as all 32 would, for a quarter of the
    /// hashing on every cache lookup. Equality still compares all 32.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let (head, _) = self.0.split_first_chunk::<8>().expect("32 bytes");
        state.write_u64(u64::from_ne_bytes(*head));
    }
}

impl fmt::Debug for HashedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashedToken([redacted])")
    }
}

/// CRC32 (IEEE) of `jt_<kind>_<random>` as six base62 digits, zero-padded.
fn checksum(body: &[u8]) -> [u8; CHECK_LEN] {
    let mut value = crc32fast::hash(body);
    let mut digits = [b'0'; CHECK_LEN];
    for digit in digits.iter_mut().rev() {
        *digit = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_back_with_their_kind() {
        for kind in TokenKind::ALL {
            let token = PlainToken::generate(kind);
            assert_eq!(token.expose_secret().len(), TOKEN_LEN);
            assert!(
                token
                    .expose_secret()
                    .starts_with(&format!("jt_{}_", kind.code()))
            );
            let parsed = PlainToken::parse(token.expose_secret()).unwrap();
            assert_eq!(parsed.kind(), kind);
            assert_eq!(parsed.hash(), token.hash());
        }
    }

    #[test]
    fn two_tokens_differ() {
        let a = PlainToken::generate(TokenKind::User);
        let b = PlainToken::generate(TokenKind::User);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn checksum_is_crc32_in_base62() {
        // crc32("jt_pk_000000000000000000000000000000") computed independently.
        let body = format!("jt_pk_{}", "0".repeat(30));
        let crc = crc32fast::hash(body.as_bytes());
        let check = checksum(body.as_bytes());
        let decoded = check.iter().fold(0u64, |acc, &c| {
            acc * 62 + ALPHABET.iter().position(|&a| a == c).unwrap() as u64
        });
        assert_eq!(decoded, u64::from(crc));
        assert_eq!(check.len(), 6);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = PlainToken::generate(TokenKind::Secret);
        let text = good.expose_secret();
        assert_eq!(PlainToken::parse("").unwrap_err(), TokenFormatError::Length);
        assert_eq!(
            PlainToken::parse(&text[1..]).unwrap_err(),
            TokenFormatError::Length
        );
        let wrong_kind = format!("jt_xx_{}", &text[6..]);
        assert_eq!(
            PlainToken::parse(&wrong_kind).unwrap_err(),
            TokenFormatError::Prefix
        );
        let mut flipped = text.to_owned().into_bytes();
        flipped[10] = if flipped[10] == b'a' { b'b' } else { b'a' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(
            PlainToken::parse(&flipped).unwrap_err(),
            TokenFormatError::Checksum
        );
        let dash = format!("{}-{}", &text[..10], &text[11..]);
        assert_eq!(
            PlainToken::parse(&dash).unwrap_err(),
            TokenFormatError::Alphabet
        );
        let unicode = format!("{}é{}", &text[..10], &text[12..]);
        assert!(PlainToken::parse(&unicode).is_err());
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let token = PlainToken::generate(TokenKind::User);
        let shown = format!("{token:?} {:?}", token.hash());
        assert!(!shown.contains(&token.expose_secret()[6..]));
        assert!(!shown.contains(&token.hash().to_hex()));
        assert_eq!(
            shown,
            "PlainToken(jt_ut_[redacted]) HashedToken([redacted])"
        );
    }

    #[test]
    fn hashes_differing_in_any_byte_are_unequal() {
        let hash = PlainToken::generate(TokenKind::User).hash();
        assert_eq!(hash, HashedToken::from_bytes(*hash.as_bytes()));
        for index in 0..32 {
            for bit in 0..8 {
                let mut bytes = *hash.as_bytes();
                bytes[index] ^= 1 << bit;
                assert_ne!(
                    hash,
                    HashedToken::from_bytes(bytes),
                    "byte {index}, bit {bit}"
                );
            }
        }
    }

    #[test]
    fn last4_is_the_tail() {
        let token = PlainToken::generate(TokenKind::User);
        assert!(token.expose_secret().ends_with(&token.last4()));
    }
}
