//! How a delivery leaves the process: a [`Sender`] takes a signed request
//! and answers with what the receiver said. The worker depends on this
//! trait only, so the transport (which addresses it may reach, how it
//! resolves names) is chosen where the worker is made.

use std::{future::Future, pin::Pin, time::Duration};

/// The longest a receiver has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a response is read and kept.
pub const RESPONSE_CAP: usize = 64 * 1024;

/// A signed delivery, ready to `POST`.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// What the receiver answered: its status and the start of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub status: u16,
    pub body: String,
}

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Received, String>> + Send + 'a>>;

/// Posts one delivery. `Err` says why no answer came (refused, timed out).
pub trait Sender: Send + Sync + 'static {
    fn send(&self, request: Outgoing) -> SendFuture<'_>;
}

/// Posts with reqwest to whatever the URL names: no proxy, no redirects,
/// [`TIMEOUT`], at most [`RESPONSE_CAP`] of the answer read.
pub struct PlainSender {
    client: reqwest::Client,
}

impl PlainSender {
    pub fn new() -> PlainSender {
        // reqwest is built without a TLS crypto provider of its own: ring's
        // (lighter to build than aws-lc-rs, whose post-quantum key exchange
        // is why ring's is marked deprecated), for the whole process; a
        // second install is a harmless error.
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("Jeton-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a plain HTTP client builds");
        PlainSender { client }
    }
}

impl Default for PlainSender {
    fn default() -> Self {
        PlainSender::new()
    }
}

impl Sender for PlainSender {
    fn send(&self, request: Outgoing) -> SendFuture<'_> {
        Box::pin(async move {
            let mut builder = self
                .client
                .post(&request.url)
                .header("content-type", "application/json");
            for (name, value) in &request.headers {
                builder = builder.header(*name, value);
            }
            let mut response = builder
                .body(request.body)
                .send()
                .await
                .map_err(|error| error.to_string())?;
            let status = response.status().as_u16();
            let mut body = Vec::new();
            while body.len() < RESPONSE_CAP {
                match tokio::time::timeout(TIMEOUT, response.chunk()).await {
                    Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
                    Ok(Ok(None)) => break,
                    // The status came: what was read of the body is kept.
                    Ok(Err(_)) | Err(_) => break,
                }
            }
            body.truncate(RESPONSE_CAP);
            Ok(Received {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        })
    }
}
