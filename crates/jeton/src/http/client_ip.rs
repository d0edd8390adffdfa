//! Resolves the client's IP once per request (socket peer, or
//! `X-Forwarded-For` from trusted proxies only) for rate limits and the
//! audit log.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, FromRequestParts, Request, State},
    middleware::Next,
    response::Response,
};
use jeton_auth::client_ip::{ClientIp, resolve};

use super::state::AppState;

pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    // The extractor, not a bare extension lookup: it also honours
    // `MockConnectInfo`, which is how a router served without
    // `into_make_service_with_connect_info` (the tests) names its peer.
    if let Ok(ConnectInfo(peer)) =
        ConnectInfo::<SocketAddr>::from_request_parts(&mut parts, &state).await
    {
        let ip = resolve(peer.ip(), &parts.headers, &state.config.trusted_proxies);
        parts.extensions.insert(ClientIp(ip));
    }
    next.run(Request::from_parts(parts, body)).await
}
