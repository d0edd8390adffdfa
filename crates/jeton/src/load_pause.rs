//! For tests of the caches: stops a cache's next load between its database
//! read and its insert, so a test can land a write exactly there, without
//! relying on timing.

use std::sync::{Arc, Mutex};

use tokio::sync::Barrier;

#[derive(Debug, Default)]
pub struct LoadPause(Mutex<Option<Arc<Barrier>>>);

impl LoadPause {
    /// Stops the next load at [`LoadPause::here`]. The test waits on the
    /// barrier returned: once when the load has read the database, then
    /// again to let it go on.
    pub fn arm(&self) -> Arc<Barrier> {
        let barrier = Arc::new(Barrier::new(2));
        *self.0.lock().expect("pause lock") = Some(barrier.clone());
        barrier
    }

    /// Where a load stops if armed.
    pub async fn here(&self) {
        let armed = self.0.lock().expect("pause lock").take();
        if let Some(barrier) = armed {
            barrier.wait().await;
            barrier.wait().await;
        }
    }
}
