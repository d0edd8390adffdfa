use std::net::SocketAddr;

use clap::Args;
use tokio::net::TcpListener;

use super::{demo, parse_duration};
use crate::{
    config::Config,
    domain::password,
    http::{self, AppState},
    store::Db,
};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "JETON_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Add a demo catalogue, a demo customer and a publishable key for
    /// http://localhost:8080, and print them. Safe to repeat.
    #[arg(long)]
    demo: bool,
    /// Lifetime of login tokens, e.g. 30d, 12h.
    #[arg(long, env = "JETON_USER_TOKEN_TTL", default_value = "30d", value_parser = parse_duration)]
    user_token_ttl: time::Duration,
    /// A proxy (CIDR, e.g. 10.0.0.0/8) whose X-Forwarded-For is believed;
    /// repeat for several. Without one, the socket peer is the client IP.
    #[arg(
        long = "trusted-proxy",
        env = "JETON_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<ipnet::IpNet>,
}

pub async fn run(db: Db, args: ServeArgs) -> anyhow::Result<()> {
    if args.demo {
        let demo = demo::seed(&db).await?;
        demo.print(args.addr);
    }
    let config = Config {
        user_token_ttl: args.user_token_ttl,
        ..Config::default()
    };
    password::warm_up().await;
    let app = http::router(AppState::new(db, config));
    let listener = TcpListener::bind(args.addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "jeton listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    tracing::info!("jeton stopped");
    Ok(())
}

/// Ctrl-C or SIGTERM: stop accepting, let in-flight requests finish.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
