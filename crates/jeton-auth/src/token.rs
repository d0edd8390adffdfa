//! The token format: `<prefix>_<kind>_<30 base62 random><6 base62 CRC32>`,
//! where the prefix is the app's (see [`crate::Identity`]).
//!
//! [`PlainToken`] is the secret a caller holds; it is zeroized on drop and its
//! `Debug` never prints it. [`HashedToken`] is SHA-256 of it, the only form
//! that is ever stored. [`TokenFormat`] generates and parses an app's tokens.

use std::fmt;

use rand::TryRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::IdentityError;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// `_pk_`: what follows the app's prefix.
const KIND_LEN: usize = 4;
const RANDOM_LEN: usize = 30;
const CHECK_LEN: usize = 6;
/// What a token adds to its app's prefix.
const AFTER_PREFIX: usize = KIND_LEN + RANDOM_LEN + CHECK_LEN;
/// The longest token of any app.
const MAX_TOKEN_LEN: usize = TokenFormat::MAX_PREFIX_LEN + AFTER_PREFIX;

/// How an app's tokens look: its prefix, then the kind, 30 random base62
/// characters and a 6-character checksum. A token is the prefix's length
/// plus 40 characters long; anything else is not a token. Copied freely
/// (nine bytes).
///
/// ```
/// use jeton_auth::{TokenFormat, TokenKind};
///
/// let acme = TokenFormat::new("acme")?;
/// let token = acme.generate(TokenKind::User);
/// assert!(token.expose_secret().starts_with("acme_ut_"));
/// assert_eq!(acme.parse(token.expose_secret()).unwrap().kind(), TokenKind::User);
/// // Another app's token is not a token here.
/// let jeton = TokenFormat::new("jt")?.generate(TokenKind::User);
/// assert!(acme.parse(jeton.expose_secret()).is_err());
/// # Ok::<(), jeton_auth::IdentityError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenFormat {
    /// The prefix, then zeros.
    prefix: [u8; TokenFormat::MAX_PREFIX_LEN],
    prefix_len: u8,
}

/// The format the crate's own unit tests use.
#[cfg(test)]
impl Default for TokenFormat {
    fn default() -> TokenFormat {
        TokenFormat::from_static("jt")
    }
}

impl fmt::Debug for TokenFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenFormat({}_)", self.prefix())
    }
}

impl TokenFormat {
    /// The longest prefix an app may choose.
    pub const MAX_PREFIX_LEN: usize = 8;

    /// [`TokenFormat::new`] for a prefix known when the app is compiled, as
    /// a constant. An invalid prefix fails the build (or panics, outside a
    /// constant).
    ///
    /// ```
    /// use jeton_auth::TokenFormat;
    ///
    /// const TOKENS: TokenFormat = TokenFormat::from_static("acme");
    /// assert_eq!(TOKENS.prefix(), "acme");
    /// ```
    pub const fn from_static(prefix: &'static str) -> TokenFormat {
        let given = prefix.as_bytes();
        assert!(
            !given.is_empty() && given.len() <= TokenFormat::MAX_PREFIX_LEN,
            "a token prefix has 1 to 8 characters"
        );
        let mut bytes = [0; TokenFormat::MAX_PREFIX_LEN];
        let mut i = 0;
        while i < given.len() {
            assert!(
                given[i].is_ascii_lowercase() || given[i].is_ascii_digit(),
                "a token prefix is lowercase ASCII letters and digits only"
            );
            bytes[i] = given[i];
            i += 1;
        }
        TokenFormat {
            prefix: bytes,
            prefix_len: given.len() as u8,
        }
    }

    /// The format of an app whose tokens start with `prefix`: 1 to 8
    /// lowercase ASCII letters and digits.
    pub fn new(prefix: &str) -> Result<TokenFormat, IdentityError> {
        if prefix.is_empty() {
            return Err(IdentityError::EmptyPrefix);
        }
        if !prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(IdentityError::PrefixCharacters {
                prefix: prefix.to_owned(),
            });
        }
        if prefix.len() > TokenFormat::MAX_PREFIX_LEN {
            return Err(IdentityError::PrefixTooLong {
                prefix: prefix.to_owned(),
            });
        }
        let mut bytes = [0; TokenFormat::MAX_PREFIX_LEN];
        bytes[..prefix.len()].copy_from_slice(prefix.as_bytes());
        Ok(TokenFormat {
            prefix: bytes,
            prefix_len: u8::try_from(prefix.len()).expect("at most 8"),
        })
    }

    /// The app's prefix, without the `_`.
    pub fn prefix(&self) -> &str {
        std::str::from_utf8(self.prefix_bytes()).expect("checked to be ASCII")
    }

    fn prefix_bytes(&self) -> &[u8] {
        &self.prefix[..usize::from(self.prefix_len)]
    }

    /// How long every token of this format is: the prefix's length plus 40.
    pub const fn token_len(&self) -> usize {
        self.prefix_len as usize + AFTER_PREFIX
    }

    /// What every token of `kind` starts with: `acme_pk_`.
    pub fn kind_prefix(&self, kind: TokenKind) -> String {
        format!("{}_{}_", self.prefix(), kind.code())
    }

    /// A fresh token from the operating system's CSPRNG (about 178 bits).
    pub fn generate(self, kind: TokenKind) -> PlainToken {
        let len = self.token_len();
        let random_start = usize::from(self.prefix_len) + KIND_LEN;
        let mut text = Zeroizing::new([0u8; MAX_TOKEN_LEN]);
        text[..random_start].copy_from_slice(self.kind_prefix(kind).as_bytes());
        let mut filled = random_start;
        let mut bytes = Zeroizing::new([0u8; 64]);
        while filled < random_start + RANDOM_LEN {
            rand::rngs::SysRng
                .try_fill_bytes(bytes.as_mut())
                .expect("the operating system's random number generator failed");
            // Rejection sampling keeps every character equally likely:
            // 248 = 4 * 62 is the largest multiple of 62 that fits a byte.
            for &byte in bytes.iter().filter(|&&b| b < 248) {
                if filled == random_start + RANDOM_LEN {
                    break;
                }
                text[filled] = ALPHABET[usize::from(byte % 62)];
                filled += 1;
            }
        }
        let check = checksum(&text[..filled]);
        text[filled..len].copy_from_slice(&check);
        PlainToken {
            kind,
            len: u8::try_from(len).expect("at most 48"),
            text,
        }
    }

    /// Parses and checks the format without any I/O: length, prefix, alphabet
    /// and checksum. A string that fails here never reaches storage.
    pub fn parse(self, candidate: &str) -> Result<PlainToken, TokenFormatError> {
        self.parse_bytes(candidate.as_bytes())
    }

    /// [`TokenFormat::parse`] on bytes, which need not be text: anything but
    /// ASCII fails the prefix or the alphabet.
    pub fn parse_bytes(self, candidate: &[u8]) -> Result<PlainToken, TokenFormatError> {
        // Bytes throughout: a request's token passes here on every request.
        let len = self.token_len();
        if candidate.len() != len {
            return Err(TokenFormatError::Length);
        }
        let (prefix, rest) = candidate.split_at(usize::from(self.prefix_len));
        let kind = match rest {
            [b'_', a, b, b'_', ..] if prefix == self.prefix_bytes() => {
                TokenKind::from_code_bytes([*a, *b])
            }
            _ => None,
        }
        .ok_or(TokenFormatError::Prefix)?;
        // A fold rather than `all`: without the early exit the compiler
        // checks many bytes at once.
        let alphanumeric = rest[KIND_LEN..]
            .iter()
            .fold(true, |all, byte| all & byte.is_ascii_alphanumeric());
        if !alphanumeric {
            return Err(TokenFormatError::Alphabet);
        }
        let (body, check) = candidate.split_at(len - CHECK_LEN);
        if checksum(body) != check {
            return Err(TokenFormatError::Checksum);
        }
        let mut text = Zeroizing::new([0u8; MAX_TOKEN_LEN]);
        text[..len].copy_from_slice(candidate);
        Ok(PlainToken {
            kind,
            len: u8::try_from(len).expect("at most 48"),
            text,
        })
    }
}

/// What kind of credential a token is. The kind is part of the token text, so
/// a token can never be mistaken for another kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenKind {
    /// `<prefix>_pk_`: a client key that lives in browser code; public by
    /// design.
    Publishable,
    /// `<prefix>_sk_`: a client key that lives on servers.
    Secret,
    /// `<prefix>_ut_`: a token issued to a person at login.
    User,
    /// `<prefix>_at_`: an OAuth 2.0 access token, obtained by a client with
    /// its secret key; it stands in for that key, with its own scope.
    Access,
    /// `<prefix>_st_`: a staff member's session, for the app's own
    /// operators' console. It lives in a cookie only: the gate never
    /// accepts one in an `Authorization` header (see [`crate::session`]).
    Staff,
    /// `<prefix>_gt_`: an anonymous visitor's token, obtained through a
    /// client's publishable key and bound to that client and to the origin
    /// it was obtained from. It is no person and no client: it reaches only
    /// the routes that take [`KindSet::GUEST`](crate::KindSet::GUEST).
    Guest,
}

impl TokenKind {
    pub const ALL: [TokenKind; 6] = [
        TokenKind::Publishable,
        TokenKind::Secret,
        TokenKind::User,
        TokenKind::Access,
        TokenKind::Staff,
        TokenKind::Guest,
    ];

    /// The two letters between the app's prefix and the random part.
    pub const fn code(self) -> &'static str {
        match self {
            TokenKind::Publishable => "pk",
            TokenKind::Secret => "sk",
            TokenKind::User => "ut",
            TokenKind::Access => "at",
            TokenKind::Staff => "st",
            TokenKind::Guest => "gt",
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
            TokenKind::Staff => "staff",
            TokenKind::Guest => "guest",
        }
    }
}

/// Why a string is not a token. Deliberately coarse: the caller only ever
/// learns `invalid_token`, this is for tests and fuzzing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenFormatError {
    #[error("a token is exactly its app's prefix plus 40 characters long")]
    Length,
    #[error("a token starts with its app's prefix and a kind: <prefix>_<kind>_")]
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
    /// How much of `text` is the token.
    len: u8,
    /// ASCII, checked on the way in. A fixed array, so holding a token
    /// allocates nothing and zeroizing it wipes every byte.
    text: Zeroizing<[u8; MAX_TOKEN_LEN]>,
}

impl PlainToken {
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The secret itself. Call only to hand it to its owner, once.
    pub fn expose_secret(&self) -> &str {
        std::str::from_utf8(self.text()).expect("a token is ASCII")
    }

    fn text(&self) -> &[u8] {
        &self.text[..usize::from(self.len)]
    }

    /// The last four characters, kept for display ("…a1B2").
    pub fn last4(&self) -> String {
        let text = self.expose_secret();
        text[text.len() - 4..].to_owned()
    }

    pub fn hash(&self) -> HashedToken {
        HashedToken(Sha256::digest(self.text()).into())
    }
}

/// The crate's own unit tests generate and parse in [`TokenFormat::default`].
#[cfg(test)]
impl PlainToken {
    pub(crate) fn generate(kind: TokenKind) -> PlainToken {
        TokenFormat::default().generate(kind)
    }

    pub(crate) fn parse(candidate: &str) -> Result<PlainToken, TokenFormatError> {
        TokenFormat::default().parse(candidate)
    }
}

impl fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The prefix and kind are not secret: `acme_ut_`.
        let public = usize::from(self.len) - RANDOM_LEN - CHECK_LEN;
        write!(
            f,
            "PlainToken({}[redacted])",
            &self.expose_secret()[..public]
        )
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
    /// In constant time: no branch on the bytes until one folded
    /// difference is compared.
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

/// CRC32 (IEEE) of `<prefix>_<kind>_<random>` as six base62 digits,
/// zero-padded.
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
            assert_eq!(token.expose_secret().len(), 42);
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
    fn another_apps_prefix_is_its_own_format() {
        let acme = TokenFormat::new("acme").unwrap();
        for kind in TokenKind::ALL {
            let token = acme.generate(kind);
            let text = token.expose_secret();
            assert_eq!(text.len(), 44);
            assert!(text.starts_with(&format!("acme_{}_", kind.code())));
            assert_eq!(acme.parse(text).unwrap().kind(), kind);
            assert_eq!(acme.parse(text).unwrap().hash(), token.hash());
            // Not a token of Jeton's, nor of an app with a prefix as long.
            assert_eq!(
                PlainToken::parse(text).unwrap_err(),
                TokenFormatError::Length
            );
            let acmf = TokenFormat::new("acmf").unwrap();
            assert_eq!(acmf.parse(text).unwrap_err(), TokenFormatError::Prefix);
        }
        let jeton = PlainToken::generate(TokenKind::User);
        assert_eq!(
            acme.parse(jeton.expose_secret()).unwrap_err(),
            TokenFormatError::Length
        );
        let longest = TokenFormat::new("abcdefgh")
            .unwrap()
            .generate(TokenKind::Secret);
        assert_eq!(longest.expose_secret().len(), 48);
        assert_eq!(format!("{longest:?}"), "PlainToken(abcdefgh_sk_[redacted])");
        // The checksum covers the prefix.
        let body = &longest.expose_secret()[8..];
        let moved = format!("abcdefgi{body}");
        let other = TokenFormat::new("abcdefgi").unwrap();
        assert_eq!(other.parse(&moved).unwrap_err(), TokenFormatError::Checksum);
    }

    #[test]
    fn a_guest_token_is_its_own_kind() {
        let token = PlainToken::generate(TokenKind::Guest);
        assert!(token.expose_secret().starts_with("jt_gt_"));
        assert_eq!(token.expose_secret().len(), 42);
        let parsed = PlainToken::parse(token.expose_secret()).unwrap();
        assert_eq!(parsed.kind(), TokenKind::Guest);
        assert_eq!(TokenKind::from_code("gt"), Some(TokenKind::Guest));
        assert_eq!(TokenKind::Guest.name(), "guest");
        assert_eq!(format!("{token:?}"), "PlainToken(jt_gt_[redacted])");
        // Another kind's code with a guest's body fails its checksum.
        let as_user = format!("jt_ut_{}", &token.expose_secret()[6..]);
        assert_eq!(
            PlainToken::parse(&as_user).unwrap_err(),
            TokenFormatError::Checksum
        );
    }

    #[test]
    fn last4_is_the_tail() {
        let token = PlainToken::generate(TokenKind::User);
        assert!(token.expose_secret().ends_with(&token.last4()));
    }
}
