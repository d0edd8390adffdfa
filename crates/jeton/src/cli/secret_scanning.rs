//! `jeton secret-scanning pattern`: what to send GitHub to enrol this
//! server's tokens in secret scanning (API.md §15, docs/leaks.md).

use clap::Subcommand;
use jeton_auth::TokenKind;

use crate::{config::PublicUrl, http::secret_scanning::GITHUB_PATH, identity::TOKENS};

#[derive(Debug, Subcommand)]
pub enum SecretScanningCommand {
    /// Print the regular expressions of this server's tokens, how their
    /// checksum is computed, and the endpoint GitHub reports to.
    Pattern {
        /// Where GitHub reaches the server, e.g. https://api.shop.example:
        /// the endpoint's URL is printed with it.
        #[arg(long, env = "JETON_PUBLIC_URL")]
        public_url: Option<PublicUrl>,
    },
}

/// The name a kind is enrolled under: what GitHub sends back as `type`.
fn type_name(kind: TokenKind) -> String {
    format!("{}_{}", TOKENS.prefix(), kind_words(kind))
}

fn kind_words(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Publishable => "publishable_key",
        TokenKind::Secret => "secret_key",
        TokenKind::User => "user_token",
        TokenKind::Access => "access_token",
        TokenKind::Staff => "staff_session",
        TokenKind::Guest => "guest_token",
        _ => "token",
    }
}

/// What follows a kind's prefix: 30 random characters and 6 of checksum.
fn tail_len(kind: TokenKind) -> usize {
    TOKENS.token_len() - TOKENS.kind_prefix(kind).len()
}

/// One kind's pattern: its prefix, then base62 to the token's length, not
/// inside a longer word.
pub fn pattern(kind: TokenKind) -> String {
    format!(
        r"\b{}[0-9A-Za-z]{{{}}}\b",
        TOKENS.kind_prefix(kind),
        tail_len(kind)
    )
}

/// Every kind in one pattern.
pub fn combined_pattern() -> String {
    let codes: Vec<&str> = TokenKind::ALL.iter().map(|kind| kind.code()).collect();
    format!(
        r"\b{}_(?:{})_[0-9A-Za-z]{{{}}}\b",
        TOKENS.prefix(),
        codes.join("|"),
        tail_len(TokenKind::Secret)
    )
}

pub fn run(command: SecretScanningCommand) -> anyhow::Result<()> {
    let SecretScanningCommand::Pattern { public_url } = command;
    let len = TOKENS.token_len();
    println!("Token types and their patterns (one enrolment each with GitHub):");
    for kind in TokenKind::ALL {
        println!("  {:<28} {}", type_name(kind), pattern(kind));
    }
    println!();
    println!("All kinds in one pattern:");
    println!("  {}", combined_pattern());
    println!();
    println!(
        "Every token is {len} characters: `{p}_<kind>_` ({kinds}), 30 random characters of \
         base62 (0-9A-Za-z), then a 6-character checksum. The checksum is the CRC-32 \
         (IEEE 802.3, the polynomial of zlib's crc32) of the first {body} characters \
         (`{p}_<kind>_<random>` as ASCII), written in base62 with the digits \
         0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz, most significant \
         first, left-padded with `0` to 6 characters. A match whose checksum does not hold \
         is not a token.",
        p = TOKENS.prefix(),
        kinds = TokenKind::ALL
            .iter()
            .map(|kind| kind.code())
            .collect::<Vec<_>>()
            .join(", "),
        body = len - 6,
    );
    println!();
    match public_url {
        Some(url) => println!("Endpoint: {}", url.join(GITHUB_PATH)),
        None => println!("Endpoint: <public URL>{GITHUB_PATH} (give --public-url to print it)"),
    }
    println!(
        "Serve with --secret-scanning-keys FILE, FILE holding GitHub's published secret \
         scanning public keys (docs/leaks.md)."
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_tokens_of_their_kind() {
        for kind in TokenKind::ALL {
            let token = TOKENS.generate(kind);
            let text = token.expose_secret();
            let prefix = TOKENS.kind_prefix(kind);
            assert!(text.starts_with(&prefix));
            assert_eq!(text.len() - prefix.len(), tail_len(kind));
            assert!(pattern(kind).contains(&prefix));
            assert!(combined_pattern().contains(kind.code()));
        }
        assert_eq!(
            combined_pattern(),
            r"\bjt_(?:pk|sk|ut|at|st|gt)_[0-9A-Za-z]{36}\b"
        );
    }
}
