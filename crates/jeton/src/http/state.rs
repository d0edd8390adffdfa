use std::sync::Arc;

use jeton_auth::{Verifier, axum::Gate};

use super::cors::OriginRegistry;
use crate::{config::Config, domain::abilities, store::Db, throttle::Throttle};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// Verifier, ceilings and rate limiters, shared by every route guard.
    pub gate: Arc<Gate<Db>>,
    pub config: Arc<Config>,
    /// Origins allowed by active publishable clients (CORS preflights).
    pub origins: OriginRegistry,
    /// Login and registration throttles.
    pub throttle: Arc<Throttle>,
}

impl AppState {
    /// A state whose CORS origin set is still empty; see [`AppState::load`].
    pub fn new(db: Db, config: Config) -> AppState {
        AppState {
            gate: Arc::new(Gate::new(Verifier::new(db.clone()), abilities::ceilings())),
            db,
            throttle: Arc::new(Throttle::new(config.throttle)),
            config: Arc::new(config),
            origins: OriginRegistry::default(),
        }
    }

    /// A state with the allowed origins loaded from the database.
    pub async fn load(db: Db, config: Config) -> Result<AppState, sqlx::Error> {
        let state = AppState::new(db, config);
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
