//! Jeton's names in jeton-auth, which has no defaults of its own: its token
//! prefix, realm, problem types, metric prefix and cookie names.

use std::sync::LazyLock;

use jeton_auth::{Identity, TokenFormat};

/// Jeton's tokens: `jt_pk_…`, `jt_sk_…`, `jt_ut_…`, `jt_at_…`, `jt_st_…`.
pub const TOKENS: TokenFormat = TokenFormat::from_static("jt");

/// The cookie that carries a storefront customer's token (`docs/storefront.md`).
pub const SESSION_COOKIE: &str = "jeton_session";

/// The cookie whose value the storefront's page echoes in `X-CSRF-Token`.
pub const CSRF_COOKIE: &str = "jeton_csrf";

/// The cookie that carries a staff member's console session (API.md §13).
pub const STAFF_COOKIE: &str = "jeton_staff";

/// The console's CSRF cookie, on the console's pages only, which echo it in
/// `X-CSRF-Token`.
pub const STAFF_CSRF_COOKIE: &str = "jeton_staff_csrf";

/// Where the console is served, the path of its CSRF cookie.
pub const CONSOLE_PATH: &str = "/console";

static IDENTITY: LazyLock<Identity> = LazyLock::new(|| {
    Identity::new(TOKENS.prefix())
        .and_then(|identity| identity.with_realm("jeton"))
        .and_then(|identity| identity.with_problem_type_base("urn:jeton:problem:"))
        .and_then(|identity| identity.with_metric_prefix("jeton_"))
        .expect("Jeton's names are valid")
});

/// Jeton's identity: [`TOKENS`], realm `jeton`, problem types
/// `urn:jeton:problem:<code>` and metrics `jeton_*`.
pub fn identity() -> &'static Identity {
    &IDENTITY
}
