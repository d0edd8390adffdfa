//! GitHub's secret scanning partner contract (API.md §15):
//! `POST /api/v1/secret-scanning/github`, outside the route table (the
//! report's signature is its credential), and the answer it shares with
//! `POST /admin/leaks`.
//!
//! GitHub signs each report's raw body with ECDSA P-256 and SHA-256 and
//! names the key in `Github-Public-Key-Identifier`; the keys are those of
//! the file GitHub publishes, which the operator keeps on disk
//! (`--secret-scanning-keys`): the server may have no route to GitHub. The
//! file is read again whenever it changes.

use std::{
    collections::HashMap,
    fmt::Write as _,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::SystemTime,
};

use axum::{
    Extension,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, HeaderName, StatusCode},
};
use base64::Engine as _;
use bytes::Bytes;
use jeton_auth::client_ip::ClientIp;
use p256::{
    ecdsa::{Signature, VerifyingKey, signature::Verifier as _},
    pkcs8::DecodePublicKey as _,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;

use super::{
    customers::throttled,
    error::{AppError, AppResult},
    extract::Json,
    state::AppState,
};
use crate::{
    identity::TOKENS,
    store::{
        audit::{Actor, Audit},
        leaks::{Label, ReportedToken},
    },
};

/// Where GitHub sends its reports.
pub const GITHUB_PATH: &str = "/api/v1/secret-scanning/github";

/// The most tokens one report (or one `POST /admin/leaks`) may name.
pub const MAX_TOKENS: usize = 1000;

const KEY_IDENTIFIER: HeaderName = HeaderName::from_static("github-public-key-identifier");
const KEY_SIGNATURE: HeaderName = HeaderName::from_static("github-public-key-signature");

/// Why the keys file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeysFileError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path} is not GitHub's public keys JSON: {detail}")]
    Invalid { path: String, detail: String },
}

/// The keys as last read, and what the file looked like then.
struct Loaded {
    stamp: (Option<SystemTime>, u64),
    keys: Arc<HashMap<String, VerifyingKey>>,
}

/// GitHub's signing keys, from the file `--secret-scanning-keys` names.
pub struct ScanningKeys {
    path: PathBuf,
    loaded: Mutex<Option<Loaded>>,
}

/// `{"public_keys": [{"key_identifier", "key", "is_current"}]}`.
#[derive(Deserialize)]
struct KeysFile {
    public_keys: Vec<PublishedKey>,
}

#[derive(Deserialize)]
struct PublishedKey {
    key_identifier: String,
    /// PEM, `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo).
    key: String,
}

impl ScanningKeys {
    pub fn new(path: PathBuf) -> ScanningKeys {
        ScanningKeys {
            path,
            loaded: Mutex::new(None),
        }
    }

    fn invalid(&self, detail: impl Into<String>) -> KeysFileError {
        KeysFileError::Invalid {
            path: self.path.display().to_string(),
            detail: detail.into(),
        }
    }

    fn parse(&self, text: &[u8]) -> Result<HashMap<String, VerifyingKey>, KeysFileError> {
        let file: KeysFile =
            serde_json::from_slice(text).map_err(|error| self.invalid(error.to_string()))?;
        let mut keys = HashMap::new();
        // Every key listed counts, current or not: a report signed just
        // before GitHub rotated its key still arrives.
        for published in file.public_keys {
            let key = VerifyingKey::from_public_key_pem(&published.key).map_err(|error| {
                self.invalid(format!(
                    "key `{}` is not a P-256 public key in PEM: {error}",
                    published.key_identifier
                ))
            })?;
            keys.insert(published.key_identifier, key);
        }
        if keys.is_empty() {
            return Err(self.invalid("it lists no key"));
        }
        Ok(keys)
    }

    /// The keys, read again if the file changed since (its modification
    /// time or length). A file that cannot be read or parsed leaves the
    /// keys last read in place (a half-written file is not an outage);
    /// with none read yet, it is the error.
    pub async fn current(&self) -> Result<Arc<HashMap<String, VerifyingKey>>, KeysFileError> {
        let read = async {
            let path = self.path.display().to_string();
            let metadata =
                tokio::fs::metadata(&self.path)
                    .await
                    .map_err(|error| KeysFileError::Read {
                        path: path.clone(),
                        error,
                    })?;
            let stamp = (metadata.modified().ok(), metadata.len());
            if let Some(loaded) = self.loaded.lock().expect("not poisoned").as_ref()
                && loaded.stamp == stamp
            {
                return Ok(Arc::clone(&loaded.keys));
            }
            let text = tokio::fs::read(&self.path)
                .await
                .map_err(|error| KeysFileError::Read { path, error })?;
            let keys = Arc::new(self.parse(&text)?);
            *self.loaded.lock().expect("not poisoned") = Some(Loaded {
                stamp,
                keys: Arc::clone(&keys),
            });
            Ok(keys)
        };
        match read.await {
            Ok(keys) => Ok(keys),
            Err(error) => {
                let last = self.loaded.lock().expect("not poisoned");
                match last.as_ref() {
                    Some(loaded) => {
                        tracing::warn!(%error, "secret scanning keys not reloaded; the last read stay");
                        Ok(Arc::clone(&loaded.keys))
                    }
                    None => Err(error),
                }
            }
        }
    }
}

/// Whether `signature` (base64 of a DER ECDSA signature) is `key`'s over
/// `body`.
fn signed_by(key: &VerifyingKey, signature: &str, body: &[u8]) -> bool {
    let Ok(der) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    let Ok(signature) = Signature::from_der(&der) else {
        return false;
    };
    key.verify(body, &signature).is_ok()
}

/// One token of a GitHub report. Unknown fields are ignored: GitHub may
/// add some.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"token": "jt_sk_…", "type": "jeton_secret_key", "url": "https://github.com/octo/shop/blob/abc123/.env", "source": "content"}))]
pub struct GithubReportEntry {
    /// The text found.
    pub token: String,
    /// The token type the match was enrolled as; echoed as `token_type`.
    #[serde(rename = "type", default)]
    pub token_type: Option<String>,
    /// Where it was found.
    #[serde(default)]
    pub url: Option<String>,
    /// What it was found in (`content`, `commit`, `pull_request`, …).
    #[serde(default)]
    pub source: Option<String>,
}

/// What a report says of one token.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeakLabel {
    /// A credential of this server that worked when first reported.
    TruePositive,
    /// Anything else: not one of ours, or already revoked or expired.
    FalsePositive,
}

/// The answer for one reported token, in the order they were sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeakAnswer {
    /// SHA-256 of the token, in lower-case hex.
    pub token_hash: String,
    /// The `type` the report gave; for `POST /admin/leaks`, the kind the
    /// token's prefix names (`publishable`, `secret`, `user`, `access`,
    /// `staff`), or `unknown` for text that is not a well-formed token.
    pub token_type: String,
    pub label: LeakLabel,
}

/// A token as reported, before it is looked up.
pub(crate) struct Reported {
    pub token: String,
    pub token_type: Option<String>,
    pub source: String,
    pub url: Option<String>,
}

fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// The kind a well-formed token of this server names, else `unknown`.
fn kind_name(token: &str) -> &'static str {
    TOKENS
        .parse(token)
        .map_or("unknown", |token| token.kind().name())
}

/// Looks every reported token up, acts on the live ones, and answers one
/// entry per token sent, in order.
pub(crate) async fn report(
    state: &AppState,
    reported: Vec<Reported>,
    audit: &Audit,
) -> AppResult<Vec<LeakAnswer>> {
    let hashed: Vec<ReportedToken> = reported
        .iter()
        .map(|entry| ReportedToken {
            token_hash: sha256_hex(&entry.token),
            source: entry.source.clone(),
            url: entry.url.clone(),
        })
        .collect();
    let labels = state.db.report_leaks(&hashed, audit).await?;
    Ok(reported
        .into_iter()
        .zip(hashed)
        .map(|(entry, hashed)| {
            let label = match labels.get(&hashed.token_hash) {
                Some(Label::TruePositive) => LeakLabel::TruePositive,
                _ => LeakLabel::FalsePositive,
            };
            LeakAnswer {
                token_type: entry
                    .token_type
                    .unwrap_or_else(|| kind_name(&entry.token).to_owned()),
                token_hash: hashed.token_hash,
                label,
            }
        })
        .collect())
}

/// Receive GitHub's secret scanning reports
///
/// GitHub's secret scanning partner endpoint: a list of tokens found in
/// public places, signed by GitHub (ECDSA P-256 with SHA-256 over the raw
/// body, base64 DER in `Github-Public-Key-Signature`, by the key that
/// `Github-Public-Key-Identifier` names in the file of GitHub's public
/// keys the server runs with, `--secret-scanning-keys`). Without that
/// option the path is 404. An unsigned or badly signed report is 401 and
/// nothing in it is looked at. Unknown fields are ignored. Each live
/// credential reported is acted on at once, in one transaction with its
/// audit event `credential.exposed`: a secret key, access token, user
/// token or staff session is revoked (every process of the fleet refuses
/// it within a second), a publishable key, public by design, is flagged
/// (`exposed_at`). A token reported again gets its first answer and
/// changes nothing. Limited to 60 reports a minute per client IP address.
#[utoipa::path(post, operation_id = "reportGithubSecretScanning", path = "/api/v1/secret-scanning/github", tag = "leaks",
    params(
        ("Github-Public-Key-Identifier" = String, Header, description = "The `key_identifier` of the key that signed the body"),
        ("Github-Public-Key-Signature" = String, Header, description = "Base64 of the DER ECDSA P-256 signature, with SHA-256, of the raw body"),
    ),
    request_body(content = Vec<GithubReportEntry>, description = "Up to 1000 tokens"),
    responses(
        (status = 200, body = Vec<LeakAnswer>, description = "one answer per token sent, in order")))]
pub async fn github(
    State(state): State<AppState>,
    client_ip: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<(StatusCode, Json<Vec<LeakAnswer>>)> {
    let Some(keys) = state.secret_scanning.as_ref() else {
        return Err(AppError::NotFound);
    };
    let ip = client_ip.map(|Extension(ClientIp(ip))| ip);
    state
        .throttle
        .check_secret_scanning(ip)
        .await
        .map_err(throttled)?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge
        } else {
            AppError::MalformedJson("the body could not be read".to_owned())
        }
    })?;
    let keys = keys.current().await.map_err(|error| {
        tracing::error!(%error, "secret scanning keys unavailable");
        AppError::Unavailable
    })?;
    let header = |name: &HeaderName| headers.get(name).and_then(|value| value.to_str().ok());
    let (Some(key_id), Some(signature)) = (header(&KEY_IDENTIFIER), header(&KEY_SIGNATURE)) else {
        return Err(AppError::InvalidSignature);
    };
    let Some(key) = keys.get(key_id.trim()) else {
        return Err(AppError::InvalidSignature);
    };
    if !signed_by(key, signature, &body) {
        return Err(AppError::InvalidSignature);
    }
    let entries = parse_report(&body)?;
    let reported = entries
        .into_iter()
        .map(|entry| Reported {
            token: entry.token,
            token_type: Some(entry.token_type.unwrap_or_else(|| "unknown".to_owned())),
            source: entry.source.unwrap_or_else(|| "unknown".to_owned()),
            url: entry.url,
        })
        .collect();
    let audit = Audit {
        actor: Actor::SecretScanning { service: "github" },
        client_ip: ip,
    };
    let answer = report(&state, reported, &audit).await?;
    Ok((StatusCode::OK, Json(answer)))
}

/// The report's entries: a JSON array of at most [`MAX_TOKENS`] objects
/// with a string `token` each.
fn parse_report(body: &[u8]) -> AppResult<Vec<GithubReportEntry>> {
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .map_err(|error| AppError::MalformedJson(error.to_string()))?;
    let entries: Vec<GithubReportEntry> = serde_json::from_slice(body).map_err(|error| {
        AppError::validation(
            "body",
            format!(
                "must be an array of objects with a string `token`: {}",
                error
                    .to_string()
                    .split(" at line ")
                    .next()
                    .unwrap_or_default()
            ),
        )
    })?;
    if entries.len() > MAX_TOKENS {
        return Err(AppError::validation(
            "body",
            format!("at most {MAX_TOKENS} tokens per report"),
        ));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_lower_case_sha256_hex() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_report_names_at_most_a_thousand_tokens() {
        let body = |n: usize| {
            serde_json::to_vec(&vec![serde_json::json!({"token": "x", "extra": 1}); n]).unwrap()
        };
        assert_eq!(parse_report(&body(MAX_TOKENS)).unwrap().len(), MAX_TOKENS);
        assert!(matches!(
            parse_report(&body(MAX_TOKENS + 1)),
            Err(AppError::Validation(_))
        ));
        assert!(matches!(
            parse_report(b"[{\"type\": \"x\"}]"),
            Err(AppError::Validation(_))
        ));
        assert!(matches!(
            parse_report(b"[{"),
            Err(AppError::MalformedJson(_))
        ));
    }
}
