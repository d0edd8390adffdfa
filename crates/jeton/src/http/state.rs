use std::sync::Arc;

use jeton_auth::{Ceilings, Verifier};

use crate::{config::Config, domain::abilities, store::Db};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub verifier: Arc<Verifier<Db>>,
    pub ceilings: Arc<Ceilings>,
    pub config: Arc<Config>,
}

impl AppState {
    pub fn new(db: Db, config: Config) -> AppState {
        AppState {
            verifier: Arc::new(Verifier::new(db.clone())),
            db,
            ceilings: Arc::new(abilities::ceilings()),
            config: Arc::new(config),
        }
    }
}
