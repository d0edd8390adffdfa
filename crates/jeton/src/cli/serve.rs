use std::net::SocketAddr;

use clap::Args;
use tokio::net::TcpListener;

use super::{demo, parse_duration};
use crate::{
    config::{Config, DEFAULT_PERSONAL_TOKEN_CAP, PublicUrl},
    domain::order::MAX_QUANTITY,
    hashing,
    http::server::{ConnectionLimits, DEFAULT_MAX_CONNECTIONS},
    http::{self, AppState},
    store::{Db, orders::KEY_RETENTION},
    storefront::{self, StorefrontConfig},
    throttle::ThrottleSettings,
};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "JETON_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Add a demo catalogue, a demo customer and a publishable key for the
    /// storefront's origins, serve the storefront, and print its URL, the
    /// key and the customer. Safe to repeat.
    #[arg(long)]
    demo: bool,
    /// Where `--demo` serves the storefront (its own origin).
    #[arg(long, env = "JETON_STOREFRONT_ADDR", default_value_t = demo::DEFAULT_STOREFRONT_ADDR)]
    storefront_addr: SocketAddr,
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
    /// Share every limit with the other processes that use this Redis
    /// (e.g. redis://127.0.0.1:6379); see docs/fleet.md. Without it, each
    /// process counts its own.
    #[arg(long, env = "REDIS_URL", value_parser = parse_redis_url)]
    redis_url: Option<String>,
    /// How long Redis may take to answer before it counts as down (limits
    /// are then counted per process until it answers again).
    #[arg(long, env = "JETON_REDIS_DEADLINE", default_value = "50ms", value_parser = humantime::parse_duration)]
    redis_deadline: std::time::Duration,
    /// How often each credential's usage (requests by outcome, and the
    /// last uses of user tokens) is written, in one batch: no request
    /// writes. Also at shutdown (SIGTERM); a killed process loses at most
    /// this much of it. See docs/usage.md.
    #[arg(long, env = "JETON_USAGE_INTERVAL", default_value = "5s", value_parser = parse_usage_interval)]
    usage_interval: std::time::Duration,
    /// Counts no usage: for the benchmark that measures what counting
    /// costs (bench/run.py), never for a shop.
    #[arg(long, hide = true)]
    no_usage_counting: bool,
    /// Requests per minute of one customer, across all their tokens (0:
    /// no limit).
    #[arg(long, env = "JETON_CUSTOMER_RATE_LIMIT", default_value_t = Config::default().customer_requests_per_minute)]
    customer_rate_limit: u32,
    /// Orders per minute one customer may place (0: no limit).
    #[arg(long, env = "JETON_CUSTOMER_ORDER_LIMIT", default_value_t = Config::default().customer_orders_per_minute)]
    customer_order_limit: u32,
    /// Requests per minute of one guest token (0: no limit); never counted
    /// against the publishable key that obtained it.
    #[arg(long, env = "JETON_GUEST_RATE_LIMIT", default_value_t = Config::default().guest_requests_per_minute)]
    guest_rate_limit: u32,
    /// Guest tokens one client IP may obtain per hour (0: no limit),
    /// counted across the fleet with `--redis-url`.
    #[arg(long, env = "JETON_GUEST_ISSUANCE_PER_IP", default_value_t = ThrottleSettings::default().guest_issuances_per_ip_per_hour)]
    guest_issuance_per_ip: u32,
    /// Serve `/metrics` on this address only (it is then absent from
    /// `--addr`): keep it on a private interface.
    #[arg(long, env = "JETON_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Live tokens a customer may hold that were made through
    /// `POST /me/tokens` (logins and cookie sessions do not count).
    #[arg(long, env = "JETON_PERSONAL_TOKEN_CAP", default_value_t = DEFAULT_PERSONAL_TOKEN_CAP)]
    personal_token_cap: u32,
    /// Most units of one product in one order (1 to 1000).
    #[arg(long, env = "JETON_MAX_UNITS_PER_LINE", default_value_t = MAX_QUANTITY,
          value_parser = clap::value_parser!(i64).range(1..=MAX_QUANTITY))]
    max_units_per_line: i64,
    /// How long a client has to send a request's headers, e.g. 10s.
    #[arg(long, env = "JETON_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_std_duration)]
    header_read_timeout: std::time::Duration,
    /// How long an idle keep-alive connection stays open, e.g. 60s.
    #[arg(long, env = "JETON_KEEP_ALIVE_TIMEOUT", default_value = "60s", value_parser = parse_std_duration)]
    keep_alive_timeout: std::time::Duration,
    /// Connections served at once; more wait until one closes.
    #[arg(long, env = "JETON_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Where clients reach the API, e.g. https://api.shop.example: the
    /// OAuth 2.0 metadata's issuer and URLs, and whether cookies are
    /// Secure. Default: http://<--addr>.
    #[arg(long, env = "JETON_PUBLIC_URL")]
    public_url: Option<PublicUrl>,
    /// Staff members must sign in with a second factor: one without gets a
    /// session that may only enrol one (and sign out).
    #[arg(long, env = "JETON_REQUIRE_STAFF_MFA")]
    require_staff_mfa: bool,
    /// GitHub's secret scanning public keys, as GitHub publishes them
    /// (JSON, `{"public_keys": [...]}`): with it, the server takes
    /// GitHub's signed reports of leaked tokens at
    /// /api/v1/secret-scanning/github; read again when it changes. See
    /// docs/leaks.md.
    #[arg(long, env = "JETON_SECRET_SCANNING_KEYS")]
    secret_scanning_keys: Option<std::path::PathBuf>,
    /// Lets webhook endpoints be `http` and on private addresses: for tests
    /// and local development only, never in production.
    #[arg(long, env = "JETON_WEBHOOK_ALLOW_HTTP_PRIVATE")]
    webhook_allow_http_private: bool,
    /// How long this process keeps serving the credentials it cached while
    /// the database is unreachable (0s to 60s): a revocation made before
    /// the outage may be honoured that late, never later. Once the database
    /// answers again, every cached credential is read afresh.
    #[arg(long, env = "JETON_CREDENTIAL_OUTAGE_GRACE", default_value = "30s", value_parser = parse_outage_grace)]
    pub(super) credential_outage_grace: std::time::Duration,
    /// Lifetime of OAuth 2.0 access tokens, e.g. 15m, 1h.
    #[arg(long, env = "JETON_ACCESS_TOKEN_TTL", default_value = "15m", value_parser = parse_access_token_ttl)]
    access_token_ttl: time::Duration,
}

/// 100 ms to 1 hour: a batch per request would be a write per request.
fn parse_usage_interval(text: &str) -> Result<std::time::Duration, String> {
    let interval = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if interval < std::time::Duration::from_millis(100)
        || interval > std::time::Duration::from_secs(3600)
    {
        return Err("last uses are written every 100ms to 1h".to_owned());
    }
    Ok(interval)
}

/// At most a minute: past it, a revocation would go unheard too long.
fn parse_outage_grace(text: &str) -> Result<std::time::Duration, String> {
    let grace = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if grace > std::time::Duration::from_secs(60) {
        return Err("cached credentials are served for 60s at most".to_owned());
    }
    Ok(grace)
}

/// 1 s to 1 day: an access token is meant to be short-lived.
fn parse_access_token_ttl(text: &str) -> Result<time::Duration, String> {
    let ttl = parse_duration(text)?;
    if ttl < time::Duration::SECOND || ttl > time::Duration::DAY {
        return Err("an access token lives from 1s to 1d".to_owned());
    }
    Ok(ttl)
}

/// A `redis://` or `unix://` URL.
fn parse_redis_url(value: &str) -> Result<String, String> {
    let url = url::Url::parse(value).map_err(|error| error.to_string())?;
    match url.scheme() {
        "redis" | "unix" | "redis+unix" => Ok(value.to_owned()),
        other => Err(format!("not a Redis URL (scheme {other})")),
    }
}

/// A positive duration such as `10s` or `500ms`.
fn parse_std_duration(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err("must be more than zero".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

pub async fn run(db: Db, args: ServeArgs) -> anyhow::Result<()> {
    // A keys file that cannot be used stops the start, not a report.
    if let Some(path) = &args.secret_scanning_keys {
        http::secret_scanning::ScanningKeys::new(path.clone())
            .current()
            .await?;
    }
    // Both listeners first: the printed URL works once printed, and a port
    // 0 resolves before the demo key is bound to the storefront's origin.
    let listener = TcpListener::bind(args.addr).await?;
    let api_addr = listener.local_addr()?;
    let metrics_listener = match args.metrics_addr {
        Some(addr) => Some(TcpListener::bind(addr).await?),
        None => None,
    };
    let storefront = if args.demo {
        let listener = TcpListener::bind(args.storefront_addr).await?;
        let addr = listener.local_addr()?;
        let demo = demo::seed(&db, addr).await?;
        demo.print(api_addr, addr);
        let app = storefront::router(StorefrontConfig {
            api_addr,
            api_url: None,
            publishable_key: demo.publishable_key.expose_secret().to_owned(),
        });
        tracing::info!(%addr, "storefront listening");
        // Static files: stopped with the API, with nothing to drain.
        Some(tokio::spawn(
            async move { axum::serve(listener, app).await },
        ))
    } else {
        None
    };
    let public_url = args
        .public_url
        .unwrap_or_else(|| PublicUrl::for_addr(api_addr));
    let config = Config {
        user_token_ttl: args.user_token_ttl,
        trusted_proxies: args.trusted_proxies,
        redis_url: args.redis_url,
        redis_deadline: args.redis_deadline,
        usage_interval: args.usage_interval,
        count_usage: !args.no_usage_counting,
        require_staff_mfa: args.require_staff_mfa,
        secret_scanning_keys: args.secret_scanning_keys,
        webhook_allow_http_private: args.webhook_allow_http_private,
        customer_requests_per_minute: args.customer_rate_limit,
        customer_orders_per_minute: args.customer_order_limit,
        guest_requests_per_minute: args.guest_rate_limit,
        throttle: ThrottleSettings {
            guest_issuances_per_ip_per_hour: args.guest_issuance_per_ip,
            ..ThrottleSettings::default()
        },
        secure_cookies: public_url.secure_cookies(),
        access_token_ttl: args.access_token_ttl,
        public_url,
        personal_token_cap: args.personal_token_cap,
        max_units_per_line: args.max_units_per_line,
        metrics_on_api: metrics_listener.is_none(),
        ..Config::default()
    };
    hashing::warm_up().await;
    // The limit backend's gauge is registered as it is built.
    http::metrics::handle();
    let state = AppState::load(db.clone(), config).await?;
    let pruner = tokio::spawn(prune_idempotency_keys(db.clone()));
    // Deliveries go out from every process; claims keep each to one.
    let (stop_webhooks, webhooks_stopped) = tokio::sync::watch::channel(false);
    let policy = if state.config.webhook_allow_http_private {
        crate::webhooks::outbound::AddressPolicy::AllowHttpAndPrivate
    } else {
        crate::webhooks::outbound::AddressPolicy::Public
    };
    let webhook_worker = crate::webhooks::worker::Worker::new(
        db.clone(),
        std::sync::Arc::new(crate::webhooks::OutboundSender::new(policy)),
    )
    .spawn(webhooks_stopped);
    let app = http::router(state.clone());
    let metrics_upkeep = tokio::spawn(http::metrics::upkeep());
    let metrics_server = metrics_listener.map(|listener| {
        let addr = listener.local_addr().ok();
        tracing::info!(?addr, "metrics listening");
        let app = http::metrics_router(state.clone());
        // Stopped with the API; a scrape has nothing to drain.
        tokio::spawn(async move { axum::serve(listener, app).await })
    });
    tracing::info!(addr = %api_addr, "jeton listening");
    let limits = ConnectionLimits {
        header_read_timeout: args.header_read_timeout,
        keep_alive_timeout: args.keep_alive_timeout,
        max_connections: args.max_connections as usize,
    };
    let server = http::server::serve(listener, app, limits, shutdown_signal());
    // In-flight requests get DRAIN_TIMEOUT after the signal to finish.
    let drained = tokio::select! {
        () = server => true,
        () = async { shutdown_started().await; tokio::time::sleep(DRAIN_TIMEOUT).await } => false,
    };
    if !drained {
        tracing::warn!("requests still running after the drain timeout; stopping anyway");
    }
    pruner.abort();
    metrics_upkeep.abort();
    // A send under way finishes (or its claim runs out and another process
    // sends it again): nothing pending is lost.
    let _ = stop_webhooks.send(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, webhook_worker)
        .await
        .is_err()
    {
        tracing::warn!("webhook deliveries still running after the drain timeout; stopping anyway");
    }
    if let Some(metrics_server) = metrics_server {
        metrics_server.abort();
    }
    if let Some(storefront) = storefront {
        storefront.abort();
    }
    // The gate writes usage every few seconds; what was counted since its
    // last flush is written before exiting (after that flush, if one is
    // running).
    state.gate.flush_usage().await;
    tracing::info!("jeton stopped");
    Ok(())
}

/// How long in-flight requests may run after SIGTERM.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Every hour, forgets idempotency keys older than a day (the promised
/// retention), so the table holds about a day of orders' keys. A failed run
/// is logged and the next hour tries again.
async fn prune_idempotency_keys(db: Db) {
    let mut hourly = tokio::time::interval(std::time::Duration::from_secs(3600));
    hourly.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        hourly.tick().await;
        let cutoff = db.now() - KEY_RETENTION;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_credentials_outlive_an_outage_by_a_minute_at_most() {
        assert_eq!(parse_outage_grace("0s"), Ok(std::time::Duration::ZERO));
        assert_eq!(
            parse_outage_grace("60s"),
            Ok(std::time::Duration::from_secs(60))
        );
        for refused in ["61s", "1h", "soon"] {
            assert!(parse_outage_grace(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn usage_is_written_every_100ms_to_1h() {
        assert_eq!(
            parse_usage_interval("250ms"),
            Ok(std::time::Duration::from_millis(250))
        );
        assert_eq!(
            parse_usage_interval("1h"),
            Ok(std::time::Duration::from_secs(3600))
        );
        for refused in ["0s", "99ms", "61m", "soon"] {
            assert!(parse_usage_interval(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn an_access_token_lives_1s_to_1d() {
        assert_eq!(
            parse_access_token_ttl("15m"),
            Ok(time::Duration::minutes(15))
        );
        for refused in ["0s", "999ms", "25h"] {
            assert!(parse_access_token_ttl(refused).is_err(), "{refused}");
        }
    }
}
