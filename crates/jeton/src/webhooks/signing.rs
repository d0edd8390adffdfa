//! Signatures as the Standard Webhooks specification says, with its
//! reference crate: `webhook-signature` holds `v1,<base64 HMAC-SHA256>` of
//! `{id}.{timestamp}.{body}` for each live secret, separated by spaces, so
//! that a receiver holding either secret during a rotation verifies.

use base64::Engine;

/// The prefix of a webhook secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> String {
    use rand::TryRng;
    let mut bytes = [0u8; 32];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random source works");
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The headers of a delivery: `webhook-id`, `webhook-timestamp` (seconds
/// since the epoch) and `webhook-signature`, one signature per secret.
pub fn headers(
    secrets: &[&str],
    id: &str,
    timestamp: i64,
    body: &str,
) -> Result<Vec<(&'static str, String)>, standardwebhooks::WebhookError> {
    let mut signatures = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let signer = standardwebhooks::Webhook::new(secret)?;
        signatures.push(signer.sign(id, timestamp, body.as_bytes())?);
    }
    Ok(vec![
        (standardwebhooks::HEADER_WEBHOOK_ID, id.to_owned()),
        (
            standardwebhooks::HEADER_WEBHOOK_TIMESTAMP,
            timestamp.to_string(),
        ),
        (
            standardwebhooks::HEADER_WEBHOOK_SIGNATURE,
            signatures.join(" "),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_map(headers: &[(&'static str, String)]) -> axum::http::HeaderMap {
        let mut map = axum::http::HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn a_secret_is_32_random_bytes() {
        let secret = new_secret();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(secret.strip_prefix(SECRET_PREFIX).unwrap())
            .unwrap();
        assert_eq!(raw.len(), 32);
        assert_ne!(secret, new_secret());
    }

    #[test]
    fn each_secret_verifies_and_another_does_not() {
        let (old, new) = (new_secret(), new_secret());
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let body = r#"{"type":"webhook.test","timestamp":"2026-12-07T00:00:00Z","data":{}}"#;
        let signed = headers(&[&new, &old], "evt_1", now, body).unwrap();
        let map = header_map(&signed);
        for secret in [&old, &new] {
            let verifier = standardwebhooks::Webhook::new(secret).unwrap();
            verifier.verify(body.as_bytes(), &map).unwrap();
        }
        let stranger = standardwebhooks::Webhook::new(&new_secret()).unwrap();
        assert!(stranger.verify(body.as_bytes(), &map).is_err());
        assert_eq!(
            map["webhook-signature"]
                .to_str()
                .unwrap()
                .split(' ')
                .count(),
            2
        );
    }
}
