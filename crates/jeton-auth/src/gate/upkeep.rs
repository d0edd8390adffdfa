//! The gate's upkeep: the first request a guard sees starts a task that
//! hands the user tokens' last uses and the usage counts to the store every
//! [`GateBuilder::usage_interval`](crate::GateBuilder::usage_interval), for
//! as long as the gate lives. Call [`Gate::flush_usage`] once more at
//! shutdown.

use std::sync::{Arc, Weak};

use super::Gate;
use crate::TokenStore;

impl<S: TokenStore> Gate<S> {
    /// Hands the user tokens' uses noted since the last call to the store
    /// ([`TokenStore::record_usage`]), and the requests counted since
    /// ([`TokenStore::record_counts`]). The guard does it regularly; call
    /// it once more at shutdown, or lose up to one interval of counts.
    /// Calls wait for each other, so that a call at shutdown returns after
    /// the regular one's writes too.
    pub async fn flush_usage(&self) {
        let _flushing = self.flushing.lock().await;
        let usage = self.verifier.take_usage();
        if !usage.is_empty() {
            self.verifier.store().record_usage(usage).await;
        }
        let counts = self
            .usage
            .as_ref()
            .map(|usage| usage.take())
            .unwrap_or_default();
        if !counts.is_empty() {
            self.verifier.store().record_counts(counts).await;
        }
    }

    /// Starts the upkeep task, once: it holds the gate weakly and ends with
    /// it.
    pub(crate) fn start_upkeep(self: &Arc<Self>) {
        self.upkeep.get_or_init(|| {
            let gate: Weak<Gate<S>> = Arc::downgrade(self);
            let interval = self.usage_interval;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(gate) = gate.upgrade() else { break };
                    gate.flush_usage().await;
                }
            });
        });
    }
}
