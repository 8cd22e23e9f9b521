//! Retention: finished deliveries, their attempts and events older than `retention` are
//! deleted in the background, a small batch at a time so delivery never waits on it.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::shutdown::Shutdown;
use crate::store::Store;

const BATCH: u32 = 500;
const EVERY: Duration = Duration::from_secs(60);

pub async fn prune_loop(store: Arc<dyn Store>, retention: Duration, mut shutdown: Shutdown) {
    let keep = SignedDuration::try_from(retention).unwrap_or(SignedDuration::MAX);
    loop {
        let before = Timestamp::now()
            .saturating_sub(keep)
            .unwrap_or(Timestamp::MIN);
        loop {
            match store.prune(before, BATCH).await {
                Ok(n) if n >= BATCH as u64 => {
                    metrics::counter!("callhook_pruned_total").increment(n);
                    // More to do: let other writes through first.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(n) => {
                    metrics::counter!("callhook_pruned_total").increment(n);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pruning failed; trying again later");
                    break;
                }
            }
            if shutdown.is_shutdown() {
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.recv() => return,
        }
    }
}
