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
    pub failed_auth: jeton_auth::limits::FailedAuthLimit,
    /// Requests per minute of one customer, across all their tokens (0:
    /// none).
    pub customer_requests_per_minute: u32,
    /// Orders per minute one customer may place (0: none).
    pub customer_orders_per_minute: u32,
    /// Requests per minute of one guest token (0: none), never counted
    /// against the publishable key that obtained it (API.md §16).
    pub guest_requests_per_minute: u32,
    /// A guest token's absolute lifetime.
    pub guest_token_ttl: time::Duration,
    /// How long a guest token lives unused.
    pub guest_idle_timeout: time::Duration,
    /// Where limits are shared by a fleet of processes (`--redis-url`);
    /// none: each process counts its own.
    pub redis_url: Option<String>,
    /// A Redis that has not answered in this long counts as down.
    pub redis_deadline: std::time::Duration,
    /// How often usage (requests by outcome, last uses of user tokens) is
    /// written, in one batch.
    pub usage_interval: std::time::Duration,
    /// Whether requests are counted per credential and outcome: off only
    /// to measure what counting costs.
    pub count_usage: bool,
    /// Whether cookie sessions' cookies are `Secure`: everywhere but plain
    /// `http` on a loopback address ([`secure_cookies`] of the public URL).
    pub secure_cookies: bool,
    /// Live tokens a customer may hold that were made through
    /// `POST /me/tokens` (logins and cookie sessions do not count).
    pub personal_token_cap: u32,
    /// Most units of one product in one order: at most the contract's 1000.
    pub max_units_per_line: i64,
    /// Whether `/metrics` is served with the API; `false` when it has an
    /// address of its own (`--metrics-addr`).
    pub metrics_on_api: bool,
    /// Lifetime of an OAuth 2.0 access token.
    pub access_token_ttl: time::Duration,
    /// Where clients reach the server (`--public-url`): the OAuth 2.0
    /// metadata's issuer, and the base of its URLs. No trailing slash.
    pub public_url: PublicUrl,
    /// Whether a staff member without a second factor gets a session that
    /// may only enrol one (`--require-staff-mfa`).
    pub require_staff_mfa: bool,
    /// GitHub's secret scanning public keys (`--secret-scanning-keys`):
    /// with it, `POST /api/v1/secret-scanning/github` takes reports signed
    /// by them (API.md §15); without it, the path is 404.
    pub secret_scanning_keys: Option<std::path::PathBuf>,
    /// Whether webhook endpoints may be `http` and on private addresses
    /// (`--webhook-allow-http-private`): tests and local development only.
    pub webhook_allow_http_private: bool,
}

/// An absolute `http` or `https` URL with no path, query or fragment,
/// kept without a trailing slash: `https://api.shop.example`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(url::Url);

impl PublicUrl {
    /// The URL as the issuer: no trailing slash.
    pub fn as_str(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }

    /// `path` (starting with `/`) under the URL.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.as_str())
    }

    /// `http://<addr>`, the default for a server listening on `addr`.
    pub fn for_addr(addr: std::net::SocketAddr) -> PublicUrl {
        format!("http://{addr}")
            .parse()
            .expect("an address is a URL")
    }

    /// The API's own origin, as a browser sends it in `Origin`: where the
    /// console is served from, the only pages a staff session is accepted
    /// from. On a loopback address its `127.0.0.1` and `localhost` forms
    /// both count (one is typed as often as the other).
    pub fn own_origins(&self) -> Vec<String> {
        let mut origins = vec![self.0.origin().ascii_serialization()];
        if self.is_loopback() {
            for host in ["127.0.0.1", "localhost"] {
                let mut url = self.0.clone();
                if url.set_host(Some(host)).is_ok() {
                    let origin = url.origin().ascii_serialization();
                    if !origins.contains(&origin) {
                        origins.push(origin);
                    }
                }
            }
        }
        origins
    }

    fn is_loopback(&self) -> bool {
        match self.0.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        }
    }

    /// Cookies are `Secure` unless the API is plain `http` on a loopback
    /// address (a developer's machine, where browsers would drop them).
    pub fn secure_cookies(&self) -> bool {
        !(self.0.scheme() == "http" && self.is_loopback())
    }
}

impl std::str::FromStr for PublicUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<PublicUrl, String> {
        let url = url::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err("the public URL is http:// or https:// and a host".to_owned());
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err("the public URL has no path, query or fragment".to_owned());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("the public URL has no user or password".to_owned());
        }
        Ok(PublicUrl(url))
    }
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
            guest_requests_per_minute: 600,
            guest_token_ttl: time::Duration::days(30),
            guest_idle_timeout: time::Duration::days(14),
            redis_url: None,
            redis_deadline: jeton_auth::limits::REDIS_DEADLINE,
            usage_interval: std::time::Duration::from_secs(5),
            count_usage: true,
            secure_cookies: true,
            personal_token_cap: DEFAULT_PERSONAL_TOKEN_CAP,
            max_units_per_line: crate::domain::order::MAX_QUANTITY,
            metrics_on_api: true,
            access_token_ttl: time::Duration::minutes(15),
            public_url: PublicUrl::for_addr(([127, 0, 0, 1], 8080).into()),
            require_staff_mfa: false,
            secret_scanning_keys: None,
            webhook_allow_http_private: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PublicUrl;

    #[test]
    fn own_origins_name_loopback_both_ways() {
        let origins = |text: &str| text.parse::<PublicUrl>().unwrap().own_origins();
        assert_eq!(
            origins("http://127.0.0.1:8080"),
            ["http://127.0.0.1:8080", "http://localhost:8080"]
        );
        assert_eq!(
            origins("http://localhost:8080/"),
            ["http://localhost:8080", "http://127.0.0.1:8080"]
        );
        assert_eq!(
            origins("https://api.shop.example:443"),
            ["https://api.shop.example"]
        );
    }

    #[test]
    fn public_urls() {
        let url: PublicUrl = "https://api.shop.example/".parse().unwrap();
        assert_eq!(url.as_str(), "https://api.shop.example");
        assert_eq!(
            url.join("/oauth/token"),
            "https://api.shop.example/oauth/token"
        );
        for bad in [
            "ftp://x",
            "https://x/api",
            "https://x/?a=1",
            "https://x/#f",
            "x",
            "https://u:p@x",
        ] {
            assert!(bad.parse::<PublicUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn cookies_are_secure_but_on_plain_http_on_loopback() {
        let secure = |text: &str| text.parse::<PublicUrl>().unwrap().secure_cookies();
        assert!(!secure("http://127.0.0.1:8080"));
        assert!(!secure("http://[::1]:8080"));
        assert!(!secure("http://localhost:8080"));
        assert!(secure("https://127.0.0.1:8080"));
        assert!(secure("http://10.0.0.5:8080"));
        assert!(secure("http://shop.example"));
        assert!(secure("https://shop.example"));
    }
}
