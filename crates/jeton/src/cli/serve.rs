use std::{net::SocketAddr, sync::Arc};

use clap::Args;
use tokio::net::TcpListener;

use super::{demo, parse_duration};
use crate::{
    config::Config,
    hashing,
    http::{self, AppState},
    store::{Db, orders::KEY_RETENTION},
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
        trusted_proxies: args.trusted_proxies,
        ..Config::default()
    };
    hashing::warm_up().await;
    let state = AppState::load(db.clone(), config).await?;
    let pruner = tokio::spawn(prune_idempotency_keys(db.clone()));
    let flushing = Arc::new(tokio::sync::Mutex::new(()));
    let flusher = tokio::spawn(flush_token_use(state.clone(), flushing.clone()));
    let app = http::router(state.clone());
    let metrics_upkeep = tokio::spawn(http::metrics::upkeep());
    let listener = TcpListener::bind(args.addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "jeton listening");
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal());
    // In-flight requests get DRAIN_TIMEOUT after the signal to finish.
    let drained = tokio::select! {
        served = server.into_future() => { served?; true }
        () = async { shutdown_started().await; tokio::time::sleep(DRAIN_TIMEOUT).await } => false,
    };
    if !drained {
        tracing::warn!("requests still running after the drain timeout; stopping anyway");
    }
    pruner.abort();
    metrics_upkeep.abort();
    {
        // Not in the middle of a flush: the uses it took would be lost.
        let _flushing = flushing.lock().await;
        flusher.abort();
    }
    // Whatever was used since the last flush is written before exiting.
    flush_once(&state, &flushing).await;
    tracing::info!("jeton stopped");
    Ok(())
}

/// How long in-flight requests may run after SIGTERM.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How often `last_used_at` is written.
const USE_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// One flush; `flushing` is held from taking the uses to writing them.
async fn flush_once(state: &AppState, flushing: &tokio::sync::Mutex<()>) {
    let _flushing = flushing.lock().await;
    let uses = state.gate.verifier.take_usage();
    if uses.is_empty() {
        return;
    }
    if let Err(error) = state.db.record_token_use(&uses).await {
        tracing::warn!(%error, tokens = uses.len(), "could not record token use");
    }
}

/// Writes `last_used_at` in batches: no authenticated request writes.
async fn flush_token_use(state: AppState, flushing: Arc<tokio::sync::Mutex<()>>) {
    let mut tick = tokio::time::interval(USE_FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        flush_once(&state, &flushing).await;
    }
}

/// Every hour, forgets idempotency keys older than a day (the promised
/// retention), so the table holds about a day of orders' keys. A failed run
/// is logged and the next hour tries again.
async fn prune_idempotency_keys(db: Db) {
    let mut hourly = tokio::time::interval(std::time::Duration::from_secs(3600));
    hourly.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        hourly.tick().await;
        let cutoff = time::OffsetDateTime::now_utc() - KEY_RETENTION;
        match db.prune_idempotency_keys(cutoff).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "pruned idempotency keys"),
            Err(error) => tracing::warn!(%error, "pruning idempotency keys failed"),
        }
    }
}

static SHUTDOWN: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Resolves once a shutdown signal has arrived.
async fn shutdown_started() {
    SHUTDOWN.notified().await;
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
    tracing::info!("shutting down: draining requests");
    // `notify_one` keeps the wake-up for a waiter that is not waiting yet.
    SHUTDOWN.notify_one();
}
