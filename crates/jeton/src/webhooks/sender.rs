//! How a delivery leaves the process: a [`Sender`] takes a signed request
//! and answers with what the receiver said. The worker depends on this
//! trait only, so the transport (which addresses it may reach, how it
//! resolves names) is chosen where the worker is made.

use std::{future::Future, pin::Pin};

use super::outbound::{AddressPolicy, Outbound, OutboundConfig, WebhookUrl, deliver};

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

/// Posts through the [`outbound`](super::outbound) client: only to the
/// addresses its policy allows (checked at every resolution, and connected
/// to as checked), no proxy, no redirects, 10 s, at most 64 KiB of the
/// answer read.
pub struct OutboundSender {
    client: Outbound,
    policy: AddressPolicy,
}

impl OutboundSender {
    pub fn new(policy: AddressPolicy) -> OutboundSender {
        let config = OutboundConfig {
            policy,
            ..OutboundConfig::default()
        };
        let client = Outbound::new(config).expect("the webhook client builds");
        OutboundSender { client, policy }
    }
}

impl Sender for OutboundSender {
    fn send(&self, request: Outgoing) -> SendFuture<'_> {
        Box::pin(async move {
            // Checked again: the URL may have been saved under another
            // policy (`--webhook-allow-http-private`).
            let url = WebhookUrl::parse(&request.url, self.policy).map_err(|e| e.to_string())?;
            let mut headers: Vec<(String, String)> = request
                .headers
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect();
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
            let response = deliver(&self.client, &url, &headers, request.body.into_bytes())
                .await
                .map_err(|e| e.to_string())?;
            Ok(Received {
                status: response.status,
                body: response.body_text,
            })
        })
    }
}
