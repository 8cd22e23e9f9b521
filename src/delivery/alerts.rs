//! The alert sweep (SPEC §12): what only time brings, stored as alert deliveries by every node
//! every poll (a webhook failing for its account's `alert_after`; failed deliveries counted
//! since a `delivery.failed` at least `failed_every` old). The store decides each under a lock
//! per webhook, so nodes sweeping at once never store one twice. Transitions that attempts
//! cause are decided as the attempts are recorded (`Store::record_attempts`).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::dispatcher::Waker;
use crate::shutdown::Shutdown;
use crate::store::Store;

/// Sweeps every `every` until shutdown, waking the dispatcher when alerts were stored.
pub async fn sweep_loop(
    store: Arc<dyn Store>,
    waker: Waker,
    every: Duration,
    failed_every: Duration,
    mut shutdown: Shutdown,
) {
    loop {
        match store.sweep_alerts(Timestamp::now(), failed_every).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::debug!(alerts = n, "alerts stored by the sweep");
                waker.wake();
            }
            Err(e) => tracing::warn!(error = %e, "cannot sweep for alerts; trying again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.recv() => return,
        }
    }
}
