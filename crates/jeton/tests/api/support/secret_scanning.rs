//! GitHub's side of secret scanning, as the tests play it: a P-256 key of
//! their own, published in a keys file as GitHub publishes its keys, that
//! signs reports as GitHub does.

use base64::Engine as _;
use p256::{
    ecdsa::{Signature, SigningKey, signature::Signer as _},
    pkcs8::{EncodePublicKey as _, LineEnding},
};
use serde_json::{Value, json};

/// The identifier GitHub's file gives [`github_key`].
pub const KEY_ID: &str = "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a";

/// GitHub's signing key, as far as the tests go: fixed, so that a failure
/// replays.
pub fn github_key() -> SigningKey {
    SigningKey::from_slice(&[0x11; 32]).expect("a valid P-256 scalar")
}

/// Another key, that GitHub's file does not list.
pub fn stranger_key() -> SigningKey {
    SigningKey::from_slice(&[0x22; 32]).expect("a valid P-256 scalar")
}

/// GitHub's published keys JSON, listing `keys` (identifier, key).
pub fn keys_json(keys: &[(&str, &SigningKey)]) -> String {
    let public_keys: Vec<Value> = keys
        .iter()
        .map(|(id, key)| {
            let pem = key
                .verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .expect("PEM");
            json!({"key_identifier": id, "key": pem, "is_current": true})
        })
        .collect();
    json!({"public_keys": public_keys}).to_string()
}

/// `Github-Public-Key-Signature` of `body` by `key`: base64 of DER.
pub fn signature(key: &SigningKey, body: &[u8]) -> String {
    let signature: Signature = key.sign(body);
    base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
}
