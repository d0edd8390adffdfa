//! Where webhooks may be sent, and sending one request there safely.
//!
//! A webhook URL is chosen by whoever holds an admin credential, and the server
//! that calls it usually sits inside a network that the internet cannot reach.
//! Without care, a webhook is a way to make Jeton call its own admin port, a
//! cloud metadata service or a database on the private network. So:
//!
//! - [`WebhookUrl::parse`] takes `https` only, without userinfo, and refuses a
//!   literal address at once unless it is globally routable unicast
//!   ([`is_global_unicast`]).
//! - [`deliver`] checks the URL again (the policy may have changed since the URL
//!   was stored), resolves names itself and hands the HTTP client only the
//!   addresses that pass, so the connection goes to an address that was checked
//!   and a second, different DNS answer cannot slip in between (DNS rebinding).
//!   No proxy from the environment, no redirects, one overall deadline, and at
//!   most [`MAX_RESPONSE_BODY`] bytes of the answer read.
//!
//! [`AddressPolicy::AllowHttpAndPrivate`] (`--webhook-allow-http-private`) lifts
//! the scheme and address rules, for tests and local development only.

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::{Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use url::{Host, Url};

/// The longest webhook URL accepted, in characters.
pub const MAX_URL_LEN: usize = 2048;

/// How much of a receiver's answer is read and kept; the rest is never read.
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// The whole-request deadline, from connecting to the end of the body.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connecting (TCP and TLS handshake) may take at most this much of the deadline.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which URLs and addresses webhooks may go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressPolicy {
    /// `https` only, and only globally routable unicast addresses.
    #[default]
    Public,
    /// `http` too, and any address: `--webhook-allow-http-private`, for tests and
    /// local development. Never for a server that others can configure.
    AllowHttpAndPrivate,
}

impl AddressPolicy {
    /// Whether a connection to `ip` is allowed.
    pub fn allows(self, ip: IpAddr) -> bool {
        match self {
            AddressPolicy::Public => is_global_unicast(ip),
            AddressPolicy::AllowHttpAndPrivate => true,
        }
    }
}

/// Why a URL cannot be a webhook endpoint. The texts are meant for the person
/// who typed the URL (they become a 422 on `url`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("the URL is longer than {MAX_URL_LEN} characters")]
    TooLong,
    #[error("not a valid absolute URL")]
    Invalid,
    #[error("the URL must use https")]
    NotHttps,
    #[error("the URL must use https or http")]
    UnsupportedScheme,
    #[error("the URL must not contain a user name or password")]
    Userinfo,
    #[error("the URL must name a host")]
    NoHost,
    #[error("{0} is not a globally routable unicast address")]
    NonPublicAddress(IpAddr),
}

/// A URL that passed [`WebhookUrl::parse`] under some policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(Url);

impl WebhookUrl {
    /// Parses and checks a webhook URL. Host names are accepted here and checked
    /// on every resolution at delivery; literal addresses are checked now.
    pub fn parse(text: &str, policy: AddressPolicy) -> Result<Self, UrlError> {
        if text.chars().count() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        let url = Url::parse(text).map_err(|e| match e {
            url::ParseError::EmptyHost => UrlError::NoHost,
            _ => UrlError::Invalid,
        })?;
        // The stored form may be longer than the typed one (percent-encoding,
        // punycode); keep what is stored within the limit too.
        if url.as_str().chars().count() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        check(&url, policy)?;
        Ok(WebhookUrl(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn as_url(&self) -> &Url {
        &self.0
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// The rules that do not need the network: scheme, userinfo, host, literal address.
fn check(url: &Url, policy: AddressPolicy) -> Result<(), UrlError> {
    match (url.scheme(), policy) {
        ("https", _) | ("http", AddressPolicy::AllowHttpAndPrivate) => {}
        ("http", AddressPolicy::Public) => return Err(UrlError::NotHttps),
        (_, AddressPolicy::Public) => return Err(UrlError::NotHttps),
        (_, AddressPolicy::AllowHttpAndPrivate) => return Err(UrlError::UnsupportedScheme),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Userinfo);
    }
    let literal = match url.host() {
        None => return Err(UrlError::NoHost),
        Some(Host::Domain("")) => return Err(UrlError::NoHost),
        Some(Host::Domain(_)) => None,
        Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
    };
    if let Some(ip) = literal
        && !policy.allows(ip)
    {
        return Err(UrlError::NonPublicAddress(ip));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Address classification
// ---------------------------------------------------------------------------

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

#[allow(clippy::too_many_arguments)]
const fn v6(a: u16, b: u16, c: u16, d: u16, e: u16, f: u16, g: u16, h: u16, len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len)
}

/// IANA IPv4 Special-Purpose Address Registry: every block whose "Globally
/// Reachable" is False or N/A, plus multicast (IPv4 Multicast Address Space
/// Registry), which is not unicast.
const IPV4_REFUSED: &[Ipv4Net] = &[
    v4(0, 0, 0, 0, 8),          // "This network" (RFC 791), with 0.0.0.0/32 "This host"
    v4(10, 0, 0, 0, 8),         // Private-Use (RFC 1918)
    v4(100, 64, 0, 0, 10),      // Shared Address Space (RFC 6598)
    v4(127, 0, 0, 0, 8),        // Loopback (RFC 1122)
    v4(169, 254, 0, 0, 16),     // Link Local (RFC 3927)
    v4(172, 16, 0, 0, 12),      // Private-Use (RFC 1918)
    v4(192, 0, 0, 0, 24),       // IETF Protocol Assignments (RFC 6890), see IPV4_EXCEPTIONS
    v4(192, 0, 2, 0, 24),       // Documentation TEST-NET-1 (RFC 5737)
    v4(192, 88, 99, 0, 24),     // Deprecated 6to4 Relay Anycast (RFC 7526)
    v4(192, 168, 0, 0, 16),     // Private-Use (RFC 1918)
    v4(198, 18, 0, 0, 15),      // Benchmarking (RFC 2544)
    v4(198, 51, 100, 0, 24),    // Documentation TEST-NET-2 (RFC 5737)
    v4(203, 0, 113, 0, 24),     // Documentation TEST-NET-3 (RFC 5737)
    v4(224, 0, 0, 0, 4),        // Multicast (RFC 5771): not unicast
    v4(240, 0, 0, 0, 4),        // Reserved (RFC 1112)
    v4(255, 255, 255, 255, 32), // Limited Broadcast (RFC 919)
];

/// Entries inside a refused IPv4 block that the registry marks globally reachable.
const IPV4_EXCEPTIONS: &[Ipv4Net] = &[
    v4(192, 0, 0, 9, 32),  // Port Control Protocol Anycast (RFC 7723)
    v4(192, 0, 0, 10, 32), // Traversal Using Relays around NAT Anycast (RFC 8155)
];

/// IANA IPv6 Address Space Registry: only 2000::/3 is Global Unicast; everything
/// else (::/8 with loopback, unspecified and the deprecated IPv4-compatible
/// addresses, 100::/8, fc00::/7, fe80::/10, fec0::/10, ff00::/8, 5f00::/16 SRv6
/// SIDs (RFC 9602), 64:ff9b:1::/48 local-use translation (RFC 8215), ...) is
/// refused, after the IPv4-mapped and NAT64 forms were unwrapped.
const IPV6_GLOBAL_UNICAST: Ipv6Net = v6(0x2000, 0, 0, 0, 0, 0, 0, 0, 3);

/// IPv4-mapped addresses (RFC 4291): judged by the IPv4 address inside.
const IPV6_V4_MAPPED: Ipv6Net = v6(0, 0, 0, 0, 0, 0xffff, 0, 0, 96);

/// The NAT64 well-known prefix (RFC 6052). The registry marks it globally
/// reachable, but a NAT64 gateway forwards to the IPv4 address in the last 32
/// bits, so that address decides; refusing the prefix outright would break every
/// IPv4-only receiver for a server on an IPv6-only network with DNS64.
const IPV6_NAT64: Ipv6Net = v6(0x64, 0xff9b, 0, 0, 0, 0, 0, 0, 96);

/// IANA IPv6 Special-Purpose Address Registry, blocks inside 2000::/3 whose
/// "Globally Reachable" is False or N/A.
const IPV6_REFUSED: &[Ipv6Net] = &[
    v6(0x2001, 0, 0, 0, 0, 0, 0, 0, 23), // IETF Protocol Assignments (RFC 2928), see IPV6_EXCEPTIONS; holds TEREDO 2001::/32, Benchmarking 2001:2::/48, ORCHID 2001:10::/28
    v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0, 32), // Documentation (RFC 3849)
    v6(0x2002, 0, 0, 0, 0, 0, 0, 0, 16), // 6to4 (RFC 3056): reaches the IPv4 address inside through a relay
    v6(0x3fff, 0, 0, 0, 0, 0, 0, 0, 20), // Documentation (RFC 9637)
];

/// Entries inside 2001::/23 that the registry marks globally reachable.
const IPV6_EXCEPTIONS: &[Ipv6Net] = &[
    v6(0x2001, 0x1, 0, 0, 0, 0, 0, 0x1, 128), // Port Control Protocol Anycast (RFC 7723)
    v6(0x2001, 0x1, 0, 0, 0, 0, 0, 0x2, 128), // TURN Anycast (RFC 8155)
    v6(0x2001, 0x1, 0, 0, 0, 0, 0, 0x3, 128), // DNS-SD Service Registration Protocol Anycast (RFC 9665)
    v6(0x2001, 0x3, 0, 0, 0, 0, 0, 0, 32),    // AMT (RFC 7450)
    v6(0x2001, 0x4, 0x112, 0, 0, 0, 0, 0, 48), // AS112-v6 (RFC 7535)
    v6(0x2001, 0x20, 0, 0, 0, 0, 0, 0, 28),   // ORCHIDv2 (RFC 7343)
    v6(0x2001, 0x30, 0, 0, 0, 0, 0, 0, 28),   // Drone Remote ID Protocol Entity Tags (RFC 9374)
];

/// Whether `ip` is a globally routable unicast address, the only kind a webhook
/// may be sent to under [`AddressPolicy::Public`].
///
/// Decided by the IANA registries, following their "Globally Reachable" column
/// exactly:
///
/// - IPv4: the *IANA IPv4 Special-Purpose Address Registry* (every block that is
///   not globally reachable is refused; inside 192.0.0.0/24 the two anycast
///   /32s marked globally reachable, 192.0.0.9 and 192.0.0.10, are allowed) and
///   multicast 224.0.0.0/4 (*IPv4 Multicast Address Space Registry*).
/// - IPv6: IPv4-mapped `::ffff:0:0/96` is unwrapped and judged as IPv4; the NAT64
///   well-known prefix `64:ff9b::/96` is judged by the IPv4 address embedded in
///   it; otherwise only 2000::/3 (Global Unicast in the *IANA IPv6 Address Space
///   Registry*) is allowed, less the blocks of the *IANA IPv6 Special-Purpose
///   Address Registry* that are not globally reachable: 2001::/23 (with its
///   globally reachable entries allowed: 2001:1::1, 2001:1::2, 2001:1::3,
///   2001:3::/32, 2001:4:112::/48, 2001:20::/28, 2001:30::/28), 2001:db8::/32,
///   6to4 2002::/16 and 3fff::/20. TEREDO (2001::/32) stays refused: it embeds
///   an IPv4 address that cannot be checked.
pub fn is_global_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_unicast_v4(v4),
        IpAddr::V6(v6) => is_global_unicast_v6(v6),
    }
}

fn is_global_unicast_v4(ip: Ipv4Addr) -> bool {
    if IPV4_EXCEPTIONS.iter().any(|net| net.contains(&ip)) {
        return true;
    }
    !IPV4_REFUSED.iter().any(|net| net.contains(&ip))
}

fn is_global_unicast_v6(ip: Ipv6Addr) -> bool {
    if IPV6_V4_MAPPED.contains(&ip) || IPV6_NAT64.contains(&ip) {
        let [.., a, b, c, d] = ip.octets();
        return is_global_unicast_v4(Ipv4Addr::new(a, b, c, d));
    }
    if !IPV6_GLOBAL_UNICAST.contains(&ip) {
        return false;
    }
    if IPV6_EXCEPTIONS.iter().any(|net| net.contains(&ip)) {
        return true;
    }
    !IPV6_REFUSED.iter().any(|net| net.contains(&ip))
}

/// The resolved addresses that `policy` allows, in the resolver's order.
pub fn allowed_addresses(
    found: impl IntoIterator<Item = SocketAddr>,
    policy: AddressPolicy,
) -> Vec<SocketAddr> {
    found
        .into_iter()
        .filter(|addr| policy.allows(addr.ip()))
        .collect()
}

// ---------------------------------------------------------------------------
// Resolution
// ---------------------------------------------------------------------------

/// What went wrong in [`CheckedResolver`]; found again in reqwest's error chain
/// to tell the delivery log what happened.
#[derive(Debug)]
enum ResolveFailure {
    NonPublic { host: String },
    Lookup { host: String, message: String },
}

impl fmt::Display for ResolveFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveFailure::NonPublic { host } => {
                write!(f, "{host} resolves to a non-public address")
            }
            ResolveFailure::Lookup { host, message } => {
                write!(f, "could not resolve {host}: {message}")
            }
        }
    }
}

impl StdError for ResolveFailure {}

/// Resolves with the system resolver (through tokio) and passes on only the
/// addresses the policy allows, so the client connects to nothing else.
struct CheckedResolver {
    policy: AddressPolicy,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| ResolveFailure::Lookup {
                    host: host.clone(),
                    message: e.to_string(),
                })?
                .collect();
            if found.is_empty() {
                return Err(ResolveFailure::Lookup {
                    host,
                    message: "no addresses".to_owned(),
                }
                .into());
            }
            let allowed = allowed_addresses(found, policy);
            if allowed.is_empty() {
                return Err(ResolveFailure::NonPublic { host }.into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

// ---------------------------------------------------------------------------
// Sending
// ---------------------------------------------------------------------------

/// How the outbound client behaves; [`Default`] is what the server uses.
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    pub policy: AddressPolicy,
    /// From the start of connecting to the end of reading the body.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_response_body: usize,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            policy: AddressPolicy::Public,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_response_body: MAX_RESPONSE_BODY,
        }
    }
}

impl OutboundConfig {
    pub fn with_policy(policy: AddressPolicy) -> Self {
        OutboundConfig {
            policy,
            ..OutboundConfig::default()
        }
    }
}

/// The HTTP client for webhook deliveries: one per process, cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    config: Arc<OutboundConfig>,
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbound")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("could not build the webhook HTTP client: {0}")]
pub struct BuildError(String);

impl Outbound {
    pub fn new(config: OutboundConfig) -> Result<Self, BuildError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout.min(config.timeout))
            .dns_resolver(Arc::new(CheckedResolver {
                policy: config.policy,
            }))
            .user_agent(concat!("Jeton-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BuildError(root_cause(&e)))?;
        Ok(Outbound {
            client,
            config: Arc::new(config),
        })
    }

    pub fn config(&self) -> &OutboundConfig {
        &self.config
    }
}

/// A receiver's answer, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryResponse {
    pub status: u16,
    /// At most `max_response_body` bytes of the body, as lossy UTF-8.
    pub body_text: String,
    /// The body was longer than `max_response_body`; the rest was not read.
    pub truncated: bool,
    /// The body stopped early (the deadline passed, the connection broke) after
    /// the status had arrived; `body_text` holds what came before.
    pub body_error: Option<String>,
    /// From sending the request to the end of reading the body.
    pub duration: Duration,
}

/// Why a delivery got no answer. Display gives a short text for the delivery log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The URL breaks the current policy; nothing was sent.
    #[error("refused: {0}")]
    Refused(UrlError),
    /// Every address the host resolves to breaks the policy; nothing was sent.
    #[error("refused: {host} resolves to a non-public address")]
    NonPublicResolution { host: String },
    #[error("could not resolve {host}: {message}")]
    Resolve { host: String, message: String },
    #[error("timed out after {} s", .0.as_secs_f64())]
    Timeout(Duration),
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("invalid header: {0}")]
    InvalidHeader(String),
    #[error("request failed: {0}")]
    Request(String),
}

impl DeliveryError {
    /// Whether the rules stopped the request before any connection.
    pub fn is_refused(&self) -> bool {
        matches!(
            self,
            DeliveryError::Refused(_) | DeliveryError::NonPublicResolution { .. }
        )
    }
}

/// Sends one `POST` of `body` with `headers` to `url`, under the client's policy.
///
/// The URL is checked again here: it may have been stored under a looser policy.
/// Any status is a [`DeliveryResponse`]; redirects are answers, not followed.
pub async fn deliver(
    client: &Outbound,
    url: &WebhookUrl,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<DeliveryResponse, DeliveryError> {
    // A literal address never reaches the resolver, so this is its only check.
    check(url.as_url(), client.config.policy).map_err(DeliveryError::Refused)?;
    let mut header_map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| DeliveryError::InvalidHeader(name.clone()))?;
        let header_value =
            HeaderValue::from_str(value).map_err(|_| DeliveryError::InvalidHeader(name.clone()))?;
        header_map.append(header_name, header_value);
    }

    let started = Instant::now();
    let mut response = client
        .client
        .post(url.as_url().clone())
        .headers(header_map)
        .body(body)
        .send()
        .await
        .map_err(|e| classify(&e, &client.config))?;
    let status = response.status().as_u16();

    let limit = client.config.max_response_body;
    let mut kept: Vec<u8> = Vec::new();
    let mut truncated = false;
    let mut body_error = None;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - kept.len();
                if chunk.len() > room {
                    kept.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    break;
                }
                kept.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                body_error = Some(classify(&e, &client.config).to_string());
                break;
            }
        }
    }
    // Dropping the response here closes a connection whose body was not read
    // to the end, rather than reading the rest.
    drop(response);
    Ok(DeliveryResponse {
        status,
        body_text: String::from_utf8_lossy(&kept).into_owned(),
        truncated,
        body_error,
        duration: started.elapsed(),
    })
}

fn classify(err: &reqwest::Error, config: &OutboundConfig) -> DeliveryError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(failure) = e.downcast_ref::<ResolveFailure>() {
            return match failure {
                ResolveFailure::NonPublic { host } => {
                    DeliveryError::NonPublicResolution { host: host.clone() }
                }
                ResolveFailure::Lookup { host, message } => DeliveryError::Resolve {
                    host: host.clone(),
                    message: message.clone(),
                },
            };
        }
        source = e.source();
    }
    if err.is_timeout() && err.is_connect() {
        let limit = config.connect_timeout.min(config.timeout);
        DeliveryError::Connect(format!("timed out after {} s", limit.as_secs_f64()))
    } else if err.is_timeout() {
        DeliveryError::Timeout(config.timeout)
    } else if err.is_connect() {
        DeliveryError::Connect(root_cause(err))
    } else {
        DeliveryError::Request(root_cause(err))
    }
}

/// The innermost error's text: "Connection refused (os error 111)" says more
/// than the layers of "error sending request" around it.
fn root_cause(err: &(dyn StdError + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// One address from (or at the edge of) every refused block, in both
    /// families, with the mapped, NAT64, 6to4 and IPv4-compatible forms.
    const REFUSED: &[&str] = &[
        // IPv4
        "0.0.0.0",
        "0.1.2.3",
        "10.0.0.1",
        "10.255.255.255",
        "100.64.0.1",
        "100.127.255.255",
        "127.0.0.1",
        "127.255.255.254",
        "169.254.169.254",
        "172.16.0.1",
        "172.31.255.255",
        "192.0.0.0",
        "192.0.0.1",
        "192.0.0.8",
        "192.0.0.11",
        "192.0.0.170",
        "192.0.0.171",
        "192.0.0.255",
        "192.0.2.1",
        "192.88.99.1",
        "192.168.0.1",
        "192.168.255.255",
        "198.18.0.1",
        "198.19.255.255",
        "198.51.100.1",
        "203.0.113.1",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.254",
        "255.255.255.255",
        // IPv6
        "::",
        "::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:0.0.0.0",
        "::10.0.0.1",
        "::1.1.1.1",
        "64:ff9b::a00:1",
        "64:ff9b::7f00:1",
        "64:ff9b::c0a8:101",
        "64:ff9b:1::1.1.1.1",
        "100::1",
        "100:0:0:1::1",
        "2001::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001:1::4",
        "2001:2::1",
        "2001:10::1",
        "2001:db8::1",
        "2001:db8:ffff::1",
        "2002:a00:1::",
        "2002:101:101::1",
        "3fff::1",
        "3fff:fff:ffff::1",
        "5f00::1",
        "fc00::1",
        "fd12:3456:789a::1",
        "fe80::1",
        "febf::1",
        "fec0::1",
        "ff02::1",
        "ff0e::1",
        "4000::1",
        "8000::1",
    ];

    const ALLOWED: &[&str] = &[
        "1.1.1.1",
        "8.8.8.8",
        "9.255.255.255",
        "11.0.0.1",
        "100.63.255.255",
        "100.128.0.1",
        "126.255.255.255",
        "128.0.0.1",
        "169.253.255.255",
        "172.15.255.255",
        "172.32.0.1",
        "192.0.0.9",
        "192.0.0.10",
        "192.0.1.1",
        "192.31.196.1",
        "192.52.193.1",
        "192.88.98.255",
        "192.169.0.1",
        "192.175.48.1",
        "198.17.255.255",
        "198.20.0.1",
        "223.255.255.255",
        "2606:4700::1111",
        "2001:4860:4860::8888",
        "2000::1",
        "2001:200::1",
        "2001:1::1",
        "2001:1::2",
        "2001:1::3",
        "2001:3::1",
        "2001:4:112::1",
        "2001:20::1",
        "2001:30::1",
        "2003::1",
        "2620:4f:8000::1",
        "3ffe::1",
        "3fff:1000::1",
        "::ffff:1.1.1.1",
        "64:ff9b::101:101",
        "64:ff9b::8.8.8.8",
    ];

    #[test]
    fn every_special_purpose_address_is_refused() {
        let wrongly_allowed: Vec<&str> = REFUSED
            .iter()
            .copied()
            .filter(|text| is_global_unicast(ip(text)))
            .collect();
        assert!(wrongly_allowed.is_empty(), "allowed: {wrongly_allowed:?}");
    }

    #[test]
    fn globally_routable_unicast_addresses_are_allowed() {
        let wrongly_refused: Vec<&str> = ALLOWED
            .iter()
            .copied()
            .filter(|text| !is_global_unicast(ip(text)))
            .collect();
        assert!(wrongly_refused.is_empty(), "refused: {wrongly_refused:?}");
    }

    #[test]
    fn literal_hosts_are_checked_when_the_url_is_parsed() {
        for text in REFUSED {
            let host = match ip(text) {
                IpAddr::V4(a) => a.to_string(),
                IpAddr::V6(a) => format!("[{a}]"),
            };
            let url = format!("https://{host}:8443/hook");
            assert_eq!(
                WebhookUrl::parse(&url, AddressPolicy::Public),
                Err(UrlError::NonPublicAddress(ip(text))),
                "{url}"
            );
            assert!(
                WebhookUrl::parse(&url, AddressPolicy::AllowHttpAndPrivate).is_ok(),
                "{url}"
            );
        }
        for text in ALLOWED {
            let host = match ip(text) {
                IpAddr::V4(a) => a.to_string(),
                IpAddr::V6(a) => format!("[{a}]"),
            };
            let url = format!("https://{host}/hook");
            assert!(
                WebhookUrl::parse(&url, AddressPolicy::Public).is_ok(),
                "{url}"
            );
        }
    }

    #[test]
    fn unusual_spellings_of_a_private_address_are_refused() {
        // The URL parser reads these all as IPv4 literals (the WHATWG rules).
        for url in [
            "https://2130706433/",
            "https://0x7f000001/",
            "https://017700000001/",
            "https://127.1/",
            "https://0x7f.0.0.1/",
            "https://127.0.0.1./",
            "https://0/",
            "https://[::ffff:7f00:1]/",
            "https://[0:0:0:0:0:ffff:127.0.0.1]/",
            "https://[::FFFF:a9fe:a9fe]/",
        ] {
            assert!(
                matches!(
                    WebhookUrl::parse(url, AddressPolicy::Public),
                    Err(UrlError::NonPublicAddress(_))
                ),
                "{url}: {:?}",
                WebhookUrl::parse(url, AddressPolicy::Public)
            );
        }
    }

    #[test]
    fn scheme_userinfo_host_and_length_rules() {
        use AddressPolicy::*;
        let parse = WebhookUrl::parse;
        assert!(parse("https://hooks.example.com/in?x=1", Public).is_ok());
        assert_eq!(
            parse("http://hooks.example.com/", Public),
            Err(UrlError::NotHttps)
        );
        assert!(parse("http://hooks.example.com/", AllowHttpAndPrivate).is_ok());
        assert!(parse("http://127.0.0.1:8080/", AllowHttpAndPrivate).is_ok());
        assert_eq!(parse("ftp://example.com/", Public), Err(UrlError::NotHttps));
        assert_eq!(
            parse("ftp://example.com/", AllowHttpAndPrivate),
            Err(UrlError::UnsupportedScheme)
        );
        assert_eq!(
            parse("mailto:a@example.com", Public),
            Err(UrlError::NotHttps)
        );
        assert_eq!(
            parse("https://user@example.com/", Public),
            Err(UrlError::Userinfo)
        );
        assert_eq!(
            parse("https://user:pw@example.com/", AllowHttpAndPrivate),
            Err(UrlError::Userinfo)
        );
        assert_eq!(
            parse("https://:pw@example.com/", Public),
            Err(UrlError::Userinfo)
        );
        assert_eq!(parse("https://", Public), Err(UrlError::NoHost));
        assert_eq!(parse("not a url", Public), Err(UrlError::Invalid));
        assert_eq!(parse("/relative/path", Public), Err(UrlError::Invalid));
        assert_eq!(
            parse("https://exa mple.com/", Public),
            Err(UrlError::Invalid)
        );

        let prefix = "https://example.com/";
        let longest = format!("{prefix}{}", "a".repeat(MAX_URL_LEN - prefix.len()));
        assert!(parse(&longest, Public).is_ok());
        let too_long = format!("{longest}a");
        assert_eq!(parse(&too_long, Public), Err(UrlError::TooLong));
        // Within the limit as typed, over it once percent-encoded.
        let spaces = format!("{prefix}{}", " x".repeat(700));
        assert_eq!(parse(&spaces, Public), Err(UrlError::TooLong));
    }

    #[test]
    fn errors_read_as_sentences() {
        assert_eq!(
            UrlError::NonPublicAddress(ip("10.0.0.1")).to_string(),
            "10.0.0.1 is not a globally routable unicast address"
        );
        assert_eq!(UrlError::NotHttps.to_string(), "the URL must use https");
        assert_eq!(
            DeliveryError::NonPublicResolution {
                host: "localhost".into()
            }
            .to_string(),
            "refused: localhost resolves to a non-public address"
        );
        assert_eq!(
            DeliveryError::Timeout(Duration::from_secs(10)).to_string(),
            "timed out after 10 s"
        );
    }

    #[test]
    fn resolution_keeps_only_allowed_addresses() {
        let found: Vec<SocketAddr> = [
            "127.0.0.1:443",
            "93.184.215.14:443",
            "[::1]:443",
            "[fd00::1]:443",
            "[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:443",
            "[::ffff:192.168.1.1]:443",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let public = allowed_addresses(found.clone(), AddressPolicy::Public);
        assert_eq!(
            public,
            vec![
                "93.184.215.14:443".parse::<SocketAddr>().unwrap(),
                "[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:443"
                    .parse()
                    .unwrap(),
            ]
        );
        assert_eq!(
            allowed_addresses(found.clone(), AddressPolicy::AllowHttpAndPrivate),
            found
        );
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_with_only_private_addresses() {
        let resolver = CheckedResolver {
            policy: AddressPolicy::Public,
        };
        let error = match resolver.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        assert_eq!(
            error.to_string(),
            "localhost resolves to a non-public address"
        );

        let open = CheckedResolver {
            policy: AddressPolicy::AllowHttpAndPrivate,
        };
        let addrs: Vec<SocketAddr> = open
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        assert!(!addrs.is_empty());
    }
}
