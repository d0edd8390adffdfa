//! Server settings that shape behaviour (not where to listen or which
//! database: those are command-line concerns).

use crate::{domain::client::LimitDefaults, throttle::ThrottleSettings};

#[derive(Debug, Clone)]
pub struct Config {
    /// Lifetime of a login token, and the default for personal tokens.
    pub user_token_ttl: time::Duration,
    /// Limits a new client gets when its creator leaves them out.
    pub limit_defaults: LimitDefaults,
    /// Proxies whose `X-Forwarded-For` is believed. Empty: the socket peer
    /// is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Login and registration throttles.
    pub throttle: ThrottleSettings,
    /// Failed token authentications per client IP before 429.
    pub failed_auth: jeton_auth::axum::FailedAuthLimit,
    /// Requests per minute of one customer, across all their tokens (0:
    /// none).
    pub customer_requests_per_minute: u32,
    /// Orders per minute one customer may place (0: none).
    pub customer_orders_per_minute: u32,
    /// Where limits are shared by a fleet of processes (`--redis-url`);
    /// none: each process counts its own.
    pub redis_url: Option<String>,
    /// A Redis that has not answered in this long counts as down.
    pub redis_deadline: std::time::Duration,
    /// Whether cookie sessions' cookies are `Secure`: everywhere but plain
    /// `http` on a loopback address (see `cli::serve`).
    pub secure_cookies: bool,
    /// Live tokens a customer may hold that were made through
    /// `POST /me/tokens` (logins and cookie sessions do not count).
    pub personal_token_cap: u32,
    /// Most units of one product in one order: at most the contract's 1000.
    pub max_units_per_line: i64,
    /// Whether `/metrics` is served with the API; `false` when it has an
    /// address of its own (`--metrics-addr`).
    pub metrics_on_api: bool,
}

/// Default of [`Config::personal_token_cap`].
pub const DEFAULT_PERSONAL_TOKEN_CAP: u32 = 50;

impl Default for Config {
    fn default() -> Self {
        Config {
            user_token_ttl: time::Duration::days(30),
            limit_defaults: LimitDefaults {
                // A storefront's whole audience shares one publishable key.
                rate_limit_per_minute: Some(6000),
                per_ip_rate_limit_per_minute: Some(300),
            },
            trusted_proxies: Vec::new(),
            throttle: ThrottleSettings::default(),
            failed_auth: Default::default(),
            customer_requests_per_minute: 600,
            customer_orders_per_minute: 60,
            redis_url: None,
            redis_deadline: jeton_auth::limits::REDIS_DEADLINE,
            secure_cookies: true,
            personal_token_cap: DEFAULT_PERSONAL_TOKEN_CAP,
            max_units_per_line: crate::domain::order::MAX_QUANTITY,
            metrics_on_api: true,
        }
    }
}
