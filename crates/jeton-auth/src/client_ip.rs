//! The client's IP address: the socket peer, unless the peer is a trusted
//! proxy, in which case `X-Forwarded-For` is read from the right, skipping
//! trusted proxies. A header from anyone else is ignored, so it cannot be
//! used to dodge per-IP limits.
//!
//! The guard does this for each request it admits, with the trusted proxies
//! given to the gate ([`GateBuilder::trusted_proxies`](crate::GateBuilder::trusted_proxies)),
//! and puts the answer in the request extensions as [`ClientIp`], where
//! the per-IP limits and the handlers read it. For routes without a guard,
//! [`Gate::client_ip_layer`](crate::Gate::client_ip_layer) does the same
//! with the same proxies.
//!
//! Both need the socket peer: serve the app with
//! `into_make_service_with_connect_info::<SocketAddr>()`. Without it every
//! request is answered 500 with a `detail` that says so, and one error is
//! logged: the limits are never silently off.
//!
//! Per-IP limits count a client by its [`IpKey`]: an IPv4 address, or an
//! IPv6 /64.
//!
//! A test that sends requests with `tower::ServiceExt::oneshot` has no
//! socket: it gives the app axum's `MockConnectInfo` layer, which stands
//! for one.
//!
//! ```
//! use std::net::SocketAddr;
//!
//! use axum::{
//!     Router, body::Body, extract::connect_info::MockConnectInfo, http::Request,
//!     routing::get,
//! };
//! use jeton_auth::{Ability, Access, Ceilings, Gate, Identity, KindSet, MemoryStore, NewClient};
//! use tower::ServiceExt;
//!
//! const READ: Ability = Ability::from_static("products:read");
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let identity = Identity::new("acme")?;
//! let store = MemoryStore::new(identity.tokens());
//! let gate = Gate::builder(identity, store.clone())
//!     .ceilings(Ceilings::new().publishable([READ]))
//!     .build()?;
//! let key = store.issue_publishable_key(&store.add_client(NewClient::new([READ])))?;
//! let app = Router::new()
//!     .route("/products", get(|| async { "[]" }).route_layer(gate.guard(Access::new(KindSet::PUBLISHABLE, READ))))
//!     // The socket a served app has: the client's address.
//!     .layer(MockConnectInfo(SocketAddr::from(([203, 0, 113, 9], 40000))));
//!
//! let request = Request::get("/products")
//!     .header("authorization", format!("Bearer {}", key.token.expose_secret()))
//!     .body(Body::empty())?;
//! let response = app.oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! # Ok(())
//! # }
//! ```

use std::{
    convert::Infallible,
    fmt,
    future::{Ready, ready},
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use axum::{
    extract::{ConnectInfo, Request, connect_info::MockConnectInfo},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use futures_util::future::Either;
use ipnet::IpNet;
use tower::{Layer, Service};

use crate::Identity;

/// The client's address, put in the request extensions by the guard or by
/// [`ClientIpLayer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// What the per-IP limits count this client by.
    pub fn limit_key(self) -> IpKey {
        IpKey::of(self.0)
    }
}

/// What every per-IP limit counts a client by: an IPv4 address as it is
/// (an IPv4-mapped IPv6 address is judged as the IPv4 address it maps), an
/// IPv6 address by its /64. One host is commonly given a whole /64 (SLAAC,
/// privacy addresses, RFC 6177's advice to sites), so per IPv6 address one
/// host could pick a fresh address for every request and never be counted
/// twice. Its `Display` is the limit's key text: the IPv4 address, or the
/// network as `2001:db8:1:2::/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpKey(IpAddr);

impl IpKey {
    /// The prefix length an IPv6 client is counted by.
    pub const IPV6_PREFIX: u8 = 64;

    pub fn of(ip: IpAddr) -> IpKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => IpKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & (u128::MAX << (128 - u32::from(IpKey::IPV6_PREFIX)));
                IpKey(IpAddr::V6(Ipv6Addr::from(network)))
            }
        }
    }
}

impl From<IpAddr> for IpKey {
    fn from(ip: IpAddr) -> IpKey {
        IpKey::of(ip)
    }
}

impl fmt::Display for IpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => v4.fmt(f),
            IpAddr::V6(v6) => write!(f, "{v6}/{}", IpKey::IPV6_PREFIX),
        }
    }
}

/// Finds each request's [`ClientIp`], for routes without a guard; made by
/// [`Gate::client_ip_layer`](crate::Gate::client_ip_layer), with the gate's
/// trusted proxies. See the [module](self) docs.
#[derive(Clone)]
pub struct ClientIpLayer {
    trusted_proxies: Arc<[IpNet]>,
    identity: Identity,
}

impl ClientIpLayer {
    /// `trusted_proxies`: the networks of the app's own proxies (load
    /// balancers, nginx), whose `X-Forwarded-For` is believed. Empty: the
    /// peer is the client. `identity` renders the 500.
    pub(crate) fn new(identity: &Identity, trusted_proxies: Arc<[IpNet]>) -> Self {
        ClientIpLayer {
            trusted_proxies,
            identity: identity.clone(),
        }
    }
}

impl<S> Layer<S> for ClientIpLayer {
    type Service = ClientIpService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientIpService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of a [`ClientIpLayer`].
#[derive(Clone)]
pub struct ClientIpService<S> {
    inner: S,
    layer: ClientIpLayer,
}

/// Whether the missing peer address has been logged by this process.
static NO_PEER_LOGGED: AtomicBool = AtomicBool::new(false);

impl<S> Service<Request> for ClientIpService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let Some(peer) = peer(&request) else {
            return Either::Left(ready(Ok(no_peer(&self.layer.identity))));
        };
        let ip = resolve(peer.ip(), request.headers(), &self.layer.trusted_proxies);
        request.extensions_mut().insert(ClientIp(ip));
        Either::Right(self.inner.call(request))
    }
}

/// The socket peer of a request: `ConnectInfo` as the server put it there,
/// or `MockConnectInfo` in tests.
pub(crate) fn peer(request: &Request) -> Option<SocketAddr> {
    let extensions = request.extensions();
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
        .or_else(|| extensions.get::<MockConnectInfo<SocketAddr>>().map(|m| m.0))
}

/// What is wrong when a request has no peer address, and how to fix it: no
/// secret of the app, so it is the 500's `detail` too.
const NO_PEER: &str = "the request has no client address, which the per-IP limits need: \
     serve the app with `into_make_service_with_connect_info::<SocketAddr>()`, or, in a \
     test without a socket, add axum's `MockConnectInfo` layer (see jeton_auth::client_ip)";

/// The answer to a request with no peer address, logged once per process.
pub(crate) fn no_peer(identity: &Identity) -> Response {
    if !NO_PEER_LOGGED.swap(true, Ordering::Relaxed) {
        tracing::error!("{NO_PEER}");
    }
    identity.problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "Internal error",
        NO_PEER,
        None,
    )
}

/// The client's address for a request from `peer`: see the [module](self)
/// docs.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> IpAddr {
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in forwarded.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else { break };
        client = ip;
        if !trusted(&ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, http::HeaderValue, routing::get};
    use tower::ServiceExt;

    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_cannot_spoof() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            resolve(ip("203.0.113.9"), &headers("1.2.3.4"), &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            resolve(ip("203.0.113.9"), &headers("1.2.3.4"), &[]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn trusted_proxies_are_skipped_from_the_right() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // The client forged the leftmost entry; the rightmost untrusted one counts.
        let xff = headers("6.6.6.6, 198.51.100.7, 10.0.0.2");
        assert_eq!(resolve(ip("10.0.0.1"), &xff, &trusted), ip("198.51.100.7"));
        assert_eq!(
            resolve(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
        assert_eq!(
            resolve(ip("10.0.0.1"), &headers("garbage"), &trusted),
            ip("10.0.0.1")
        );
    }

    fn app(trusted: &[&str]) -> Router {
        let trusted: Arc<[IpNet]> = trusted.iter().map(|net| net.parse().unwrap()).collect();
        Router::new()
            .route(
                "/",
                get(|ip: Option<axum::Extension<ClientIp>>| async move {
                    ip.map(|ip| ip.0.0.to_string()).unwrap_or_default()
                }),
            )
            .layer(ClientIpLayer::new(&Identity::default(), trusted))
    }

    async fn answer(app: Router, xff: Option<&str>) -> (StatusCode, String) {
        let mut request = Request::builder().uri("/");
        if let Some(xff) = xff {
            request = request.header("x-forwarded-for", xff);
        }
        let response = app
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_ipv4_per_address() {
        let key = |text: &str| IpKey::of(ip(text)).to_string();
        assert_eq!(key("203.0.113.9"), "203.0.113.9");
        assert_ne!(key("203.0.113.9"), key("203.0.113.10"));
        // IPv4-mapped IPv6 is the IPv4 address, not a /64 of mapped ones.
        assert_eq!(key("::ffff:203.0.113.9"), "203.0.113.9");
        assert_ne!(key("::ffff:203.0.113.9"), key("::ffff:203.0.113.10"));
        assert_eq!(key("2001:db8:1:2:a:b:c:d"), "2001:db8:1:2::/64");
        assert_eq!(
            IpKey::of(ip("2001:db8:1:2::1")),
            IpKey::of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        assert_ne!(
            IpKey::of(ip("2001:db8:1:2::1")),
            IpKey::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(key("::1"), "::/64");
        assert_eq!(
            ClientIp(ip("2001:db8::5")).limit_key(),
            IpKey::of(ip("2001:db8::9"))
        );
    }

    #[tokio::test]
    async fn the_layer_finds_the_client_behind_trusted_proxies_only() {
        let peer = |ip: [u8; 4]| MockConnectInfo(SocketAddr::from((ip, 4000)));
        let direct = app(&["10.0.0.0/8"]).layer(peer([203, 0, 113, 9]));
        assert_eq!(
            answer(direct, Some("1.2.3.4")).await,
            (StatusCode::OK, "203.0.113.9".to_owned())
        );
        let proxied = app(&["10.0.0.0/8"]).layer(peer([10, 0, 0, 1]));
        assert_eq!(
            answer(proxied, Some("6.6.6.6, 198.51.100.7")).await,
            (StatusCode::OK, "198.51.100.7".to_owned())
        );
    }

    #[tokio::test]
    async fn without_a_peer_address_every_request_is_refused() {
        for _ in 0..2 {
            let (status, body) = answer(app(&[]), None).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert!(body.contains("internal_error"), "{body}");
        }
    }
}
