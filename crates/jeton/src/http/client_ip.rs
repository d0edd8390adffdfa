//! Resolves the client's IP once per request (socket peer, or
//! `X-Forwarded-For` from trusted proxies only) for rate limits and the
//! audit log.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, Request, State},
    middleware::Next,
    response::Response,
};
use jeton_auth::client_ip::{ClientIp, resolve};

use super::state::AppState;

pub async fn middleware(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    {
        let ip = resolve(peer.ip(), request.headers(), &state.config.trusted_proxies);
        request.extensions_mut().insert(ClientIp(ip));
    }
    next.run(request).await
}
