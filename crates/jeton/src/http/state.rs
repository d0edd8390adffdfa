use crate::identity::{
    CONSOLE_PATH, CSRF_COOKIE, SESSION_COOKIE, STAFF_COOKIE, STAFF_CSRF_COOKIE, identity,
};
use std::sync::Arc;

use jeton_auth::{
    Gate, SqlStore,
    limits::{LimitBackend, Rate},
    session::CookieSessions,
};

use super::{cors::OriginRegistry, secret_scanning::ScanningKeys};
use crate::{
    catalog_cache::CatalogCache,
    config::Config,
    customer_cache::CustomerCache,
    domain::abilities,
    store::{Db, changes::Topic},
    throttle::Throttle,
};

/// The shop's own storefront may keep its customer's token in a cookie
/// (`docs/storefront.md`): sent to the API's routes only.
fn cookie_sessions(config: &Config) -> CookieSessions {
    CookieSessions::with_names(SESSION_COOKIE, CSRF_COOKIE)
        .expect("Jeton's cookie names are valid")
        .session_path(super::routes::PREFIX)
        .secure(config.secure_cookies)
}

/// Staff members' console sessions (API.md §13): the session cookie sent
/// to the API's routes only, the CSRF cookie to the console's pages only,
/// accepted only from the API's own origin, with CSRF tokens that every
/// process of the deployment derives from the key it shares in the
/// database.
fn staff_sessions(config: &Config, db: &Db) -> CookieSessions {
    CookieSessions::staff(
        STAFF_COOKIE,
        STAFF_CSRF_COOKIE,
        CONSOLE_PATH,
        config.public_url.own_origins(),
        db.staff_csrf_key(),
    )
    .expect("Jeton's cookie names are valid")
    .session_path(super::routes::PREFIX)
    .secure(config.secure_cookies)
}

/// What every handler can reach. Cloned for every request (each layer and
/// handler that takes `State` gets its own), so it is one `Arc`: a clone is
/// one atomic increment, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub db: Db,
    /// Verifier, ceilings and rate limiters, shared by every route guard.
    /// It verifies with jeton-auth's store directly, which drops the
    /// verifier's cached credentials itself when its change feed moves.
    pub gate: Arc<Gate<SqlStore>>,
    pub config: Arc<Config>,
    /// Origins allowed by active publishable clients (CORS preflights).
    pub origins: OriginRegistry,
    /// Login and registration throttles.
    pub throttle: Arc<Throttle>,
    /// Product pages and products, served from memory.
    pub catalog: Arc<CatalogCache>,
    /// Each customer's profile and orders, served from memory.
    pub customers: Arc<CustomerCache>,
    /// The keys that sign GitHub's secret scanning reports, when the
    /// server takes them (`--secret-scanning-keys`).
    pub secret_scanning: Option<ScanningKeys>,
}

impl AppState {
    /// A state whose CORS origin set is still empty; see [`AppState::load`].
    pub fn new(db: Db, config: Config) -> AppState {
        // One clock for the store, the gate and the limits: a test that
        // moves the database's clock on moves all of them.
        let clock = db.clock().clone();
        let limits = match &config.redis_url {
            Some(url) => LimitBackend::redis(url, identity(), config.redis_deadline)
                .expect("the Redis URL is checked on the command line"),
            None => LimitBackend::local(),
        };
        let limits = Arc::new(limits.with_clock(clock.clone()));
        let gate = Gate::builder(identity().clone(), db.auth().clone())
            .clock(clock)
            .ceilings(abilities::ceilings().clone())
            .limits(Arc::clone(&limits))
            .user_rate_limit(Rate::per_minute(config.customer_requests_per_minute))
            .guest_rate_limit(Rate::per_minute(config.guest_requests_per_minute))
            .failed_auth_limit(config.failed_auth)
            .usage_interval(config.usage_interval)
            .count_usage(config.count_usage)
            .trusted_proxies(config.trusted_proxies.iter().copied())
            .cookie_sessions(cookie_sessions(&config))
            .cookie_sessions(staff_sessions(&config, &db))
            .build()
            .expect("Jeton's store and ceilings fit its identity");
        let catalog = Arc::new(CatalogCache::default());
        let listening = Arc::downgrade(&catalog);
        db.on_change(move |topic| {
            if let (Topic::Catalog, Some(catalog)) = (topic, listening.upgrade()) {
                catalog.invalidate_all();
            }
        });
        let customers = Arc::new(CustomerCache::default());
        let listening = Arc::downgrade(&customers);
        db.on_change(move |topic| {
            if let (Topic::Orders(whose), Some(customers)) = (topic, listening.upgrade()) {
                match whose {
                    Some(customer) => customers.customer_changed(customer),
                    None => customers.invalidate_all(),
                }
            }
        });
        AppState(Arc::new(Shared {
            gate,
            catalog,
            customers,
            db,
            throttle: Arc::new(Throttle::new(config.throttle, limits)),
            origins: OriginRegistry::default(),
            secret_scanning: config.secret_scanning_keys.clone().map(ScanningKeys::new),
            config: Arc::new(config),
        }))
    }

    /// A running state: allowed origins loaded, and the change feed watched
    /// so that changes made by other processes (revocations, new clients,
    /// stock) reach this one's caches within a second.
    pub async fn load(db: Db, config: Config) -> Result<AppState, sqlx::Error> {
        let state = AppState::new(db, config);
        // Credential changes come from jeton-auth's feed (this process's
        // own and others'): a client's origins may have changed.
        // Weak: the task ends with the state (and the receiver with the
        // store).
        let mut credentials = state.db.auth().subscribe();
        let listening = Arc::downgrade(&state.0);
        tokio::spawn(async move {
            while credentials.changed().await.is_ok() {
                let Some(state) = listening.upgrade() else {
                    return;
                };
                if let Err(error) = state.origins.refresh(&state.db).await {
                    tracing::debug!(%error, "could not refresh allowed origins");
                }
            }
        });
        // The feed's starting position first, then what is read from the
        // database: a change between the two is then announced, not missed.
        let alive = Arc::downgrade(&state.gate);
        state
            .db
            .watch_changes(move || alive.strong_count() > 0)
            .await;
        state.origins.refresh(&state.db).await?;
        Ok(state)
    }

    /// After a client change on this process: CORS sees it at once.
    pub async fn clients_changed(&self) {
        if let Err(error) = self.origins.refresh(&self.db).await {
            tracing::warn!(%error, "could not refresh allowed origins");
        }
    }
}
