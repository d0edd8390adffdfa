//! Reading the credential of a request (RFC 6750, section 2.1). Pure
//! parsing, no I/O.

use axum::http::{HeaderMap, HeaderValue, header::AUTHORIZATION};

use crate::{AuthError, PlainToken, TokenFormat, TokenFormatError};

/// Longest `Authorization` value looked at; a token is 42 characters, so
/// anything near this is garbage and is refused without further parsing.
const MAX_AUTHORIZATION_LEN: usize = 1024;

/// How every client spells the scheme, with its one space.
const COMMON_SCHEME: &[u8] = b"Bearer ";

/// The bearer token of a request, checked for `format`: a token of another
/// format is [`AuthError::InvalidToken`].
///
/// Tokens are only ever taken from the `Authorization` header. One in the
/// query string is refused outright rather than ignored, so a client that
/// leaks tokens into URLs (and thus into proxy logs) finds out at once.
pub fn bearer_token(
    format: TokenFormat,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<PlainToken, AuthError> {
    token_in(format, authorization(headers, query)?)
}

/// The request's one `Authorization` value, unparsed: what
/// [`bearer_token`] reads its token from, after the same checks of the
/// query string and of duplicate headers.
fn authorization<'a>(
    headers: &'a HeaderMap,
    query: Option<&str>,
) -> Result<&'a HeaderValue, AuthError> {
    if query.is_some_and(query_has_access_token) {
        return Err(AuthError::InvalidRequest(
            "tokens are accepted only in the Authorization header",
        ));
    }
    let mut values = headers.get_all(AUTHORIZATION).iter();
    match (values.next(), values.next()) {
        (None, _) => Err(AuthError::Unauthenticated),
        (Some(_), Some(_)) => Err(AuthError::InvalidRequest(
            "a request carries at most one Authorization header",
        )),
        (Some(value), None) => Ok(value),
    }
}

/// The token of an `Authorization` value, checked for format.
fn token_in(format: TokenFormat, value: &HeaderValue) -> Result<PlainToken, AuthError> {
    if let Some(answer) = common_form(format, value.as_bytes()) {
        return answer;
    }
    general_form(format, value)
}

/// The form every client sends, `Bearer <token>`, in one pass over its
/// bytes: the answer if it is that form, `None` if [`general_form`] must
/// tell. A token that parses, or fails only its checksum, consists of
/// visible b64token characters, so the general path would answer the same.
fn common_form(format: TokenFormat, value: &[u8]) -> Option<Result<PlainToken, AuthError>> {
    match format.parse_bytes(value.strip_prefix(COMMON_SCHEME)?) {
        Ok(token) => Some(Ok(token)),
        Err(TokenFormatError::Checksum) => Some(Err(AuthError::InvalidToken)),
        Err(_) => None,
    }
}

/// Any `Authorization` value, with the precise error.
fn general_form(format: TokenFormat, value: &HeaderValue) -> Result<PlainToken, AuthError> {
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(AuthError::InvalidRequest(
            "the Authorization header is too long",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| AuthError::InvalidRequest("the Authorization header must be visible ASCII"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Unauthenticated);
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() {
        return Err(AuthError::InvalidRequest("the Bearer scheme needs a token"));
    }
    if !all_b64token_chars(token.as_bytes()) {
        return Err(AuthError::InvalidRequest(
            "the Authorization header carries more than one token or invalid characters",
        ));
    }
    format.parse(token).map_err(|_| AuthError::InvalidToken)
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
const fn is_b64token_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// [`is_b64token_char`] for every byte, from a table and without an early
/// exit: this runs on every request, and a lookup per byte is cheaper than
/// the seven comparisons.
fn all_b64token_chars(bytes: &[u8]) -> bool {
    static TABLE: [bool; 256] = {
        let mut table = [false; 256];
        let mut byte = 0;
        while byte < 256 {
            table[byte] = is_b64token_char(byte as u8);
            byte += 1;
        }
        table
    };
    bytes
        .iter()
        .fold(true, |all, &byte| all & TABLE[usize::from(byte)])
}

fn query_has_access_token(query: &str) -> bool {
    form_urlencoded::parse(query.as_bytes()).any(|(key, _)| key == "access_token")
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;
    use crate::TokenKind;

    fn with_auth(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    /// (Authorization values, query string, expected outcome)
    type Case = (Vec<String>, Option<&'static str>, Result<(), AuthError>);

    #[test]
    fn the_common_form_answers_as_the_general_one_does() {
        let token = PlainToken::generate(TokenKind::Publishable);
        let good = format!("Bearer {}", token.expose_secret()).into_bytes();
        let replacements = [
            b'a', b'Z', b'0', b'_', b'-', b'.', b'~', b'+', b'/', b'=', b' ', b'"', b'\t', 0x7f,
            0x80, 0xff,
        ];
        let mut cases = vec![good.clone()];
        for position in 0..good.len() {
            for replacement in replacements {
                let mut case = good.clone();
                case[position] = replacement;
                cases.push(case);
            }
        }
        for case in cases {
            let Ok(value) = HeaderValue::from_bytes(&case) else {
                continue;
            };
            if let Some(answer) = common_form(TokenFormat::default(), &case) {
                assert_eq!(
                    answer.map(|t| t.hash()).map_err(|e| e.code()),
                    general_form(TokenFormat::default(), &value)
                        .map(|t| t.hash())
                        .map_err(|e| e.code()),
                    "{}",
                    String::from_utf8_lossy(&case)
                );
            }
        }
    }

    #[test]
    fn outcomes() {
        let token = PlainToken::generate(TokenKind::User);
        let good = format!("Bearer {}", token.expose_secret());
        let cases: Vec<Case> = vec![
            (vec![], None, Err(AuthError::Unauthenticated)),
            (
                vec!["Basic dXNlcjpwYXNz".into()],
                None,
                Err(AuthError::Unauthenticated),
            ),
            (
                vec!["Bearer".into()],
                None,
                Err(AuthError::InvalidRequest("")),
            ),
            (
                vec!["Bearer    ".into()],
                None,
                Err(AuthError::InvalidRequest("")),
            ),
            (
                vec![format!("{good} {}", token.expose_secret())],
                None,
                Err(AuthError::InvalidRequest("")),
            ),
            (
                vec![good.clone(), good.clone()],
                None,
                Err(AuthError::InvalidRequest("")),
            ),
            (
                vec![good.clone()],
                Some("access_token=x"),
                Err(AuthError::InvalidRequest("")),
            ),
            (
                vec![],
                Some("a=1&access_token=x"),
                Err(AuthError::InvalidRequest("")),
            ),
            (
                vec!["Bearer jt_ut_nope".into()],
                None,
                Err(AuthError::InvalidToken),
            ),
            (vec![good.clone()], None, Ok(())),
            (
                vec![format!("bEaReR {}", token.expose_secret())],
                None,
                Ok(()),
            ),
            (vec![good.clone()], Some("q=shoes"), Ok(())),
        ];
        for (values, query, expected) in cases {
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            let got = bearer_token(TokenFormat::default(), &with_auth(&refs), query).map(|_| ());
            match (&got, &expected) {
                (Err(AuthError::InvalidRequest(_)), Err(AuthError::InvalidRequest(_))) => {}
                _ => assert_eq!(got, expected, "{values:?} {query:?}"),
            }
        }
    }

    #[test]
    fn non_ascii_header_is_an_invalid_request() {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        );
        assert!(matches!(
            bearer_token(TokenFormat::default(), &headers, None),
            Err(AuthError::InvalidRequest(_))
        ));
    }
}
