//! The delivery worker: every process of a fleet runs one. Each pass
//! claims due deliveries (so no other process sends them meanwhile), signs
//! and sends them, and records what came back; endpoints failing for five
//! days are disabled.

use std::{sync::Arc, time::Duration};

use tokio::{sync::watch, task::JoinSet};

use super::{
    Outgoing, Sender, signing,
    store::{Claimed, Outcome},
};
use crate::store::Db;

/// Deliveries claimed in one go.
const BATCH: i64 = 32;

/// How often an idle worker looks for due deliveries.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Worker {
    db: Db,
    sender: Arc<dyn Sender>,
    /// This worker's name in its claims.
    id: String,
}

impl Worker {
    pub fn new(db: Db, sender: Arc<dyn Sender>) -> Worker {
        Worker {
            db,
            sender,
            id: format!("worker_{}", uuid::Uuid::now_v7().simple()),
        }
    }

    /// One pass: sends every delivery due by the app's clock (batch after
    /// batch, each batch's sends at once) and disables endpoints failing
    /// for five days; how many deliveries were attempted.
    pub async fn deliver_due(&self) -> Result<usize, sqlx::Error> {
        self.db.disable_failing_webhooks().await?;
        let mut attempted = 0;
        loop {
            let claimed = self.db.claim_deliveries(&self.id, BATCH).await?;
            if claimed.is_empty() {
                return Ok(attempted);
            }
            attempted += claimed.len();
            let mut sends = JoinSet::new();
            for delivery in claimed {
                let worker = self.clone();
                sends.spawn(async move { worker.attempt(delivery).await });
            }
            while let Some(done) = sends.join_next().await {
                match done {
                    Ok(result) => result?,
                    Err(error) => tracing::error!(%error, "a webhook send panicked"),
                }
            }
        }
    }

    async fn attempt(&self, delivery: Claimed) -> Result<(), sqlx::Error> {
        // The signature's time is the wall clock's: receivers check it
        // against theirs.
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let secrets = delivery.live_secrets(self.db.now());
        let outcome =
            match signing::headers(&secrets, &delivery.event_id, timestamp, &delivery.body) {
                Err(error) => Outcome::NoAnswer {
                    error: format!("cannot sign: {error}"),
                },
                Ok(headers) => {
                    let request = Outgoing {
                        url: delivery.url.clone(),
                        headers,
                        body: delivery.body.clone(),
                    };
                    match self.sender.send(request).await {
                        Ok(received) => Outcome::Answered {
                            status: received.status,
                            body: received.body,
                        },
                        Err(error) => Outcome::NoAnswer { error },
                    }
                }
            };
        tracing::debug!(delivery = %delivery.id, ?outcome, "webhook attempt");
        self.db.record_attempt(&self.id, &delivery, &outcome).await
    }

    /// Runs passes until `stop` turns true: one every [`POLL_INTERVAL`].
    pub fn spawn(self, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(error) = self.deliver_due().await {
                    tracing::warn!(%error, "webhook deliveries: the database failed; trying again");
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL_INTERVAL) => {}
                    _ = stop.changed() => {}
                }
                if *stop.borrow() {
                    return;
                }
            }
        })
    }
}
