//! Writes lapses as they fall due, so their events and promotions are
//! recorded even when nobody reads the asset (reads apply them anyway, R6).

use std::time::Duration;

use tracing::warn;

use crate::ledger::{command::Command, store::Store};

/// Sweeps every `every` until `shutdown` completes.
pub async fn sweep(store: Store, every: Duration, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        match store.due_lapses().await {
            Ok(keys) => {
                for asset_key in keys {
                    if let Err(e) = store.execute(Command::Sweep { asset_key }).await {
                        warn!(error = %e, "sweep failed");
                    }
                }
            }
            Err(e) => warn!(error = %e, "sweep failed"),
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
