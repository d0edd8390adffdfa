//! Logging, set up once per process. Logs go to stderr, so that what the CLI
//! prints on stdout (a new key, JSON) stays clean for scripts.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt};

/// `RUST_LOG` overrides the default filter. sqlx logs statements (never
/// their bound values) only at debug, so the default keeps it at warn.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let _ = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
