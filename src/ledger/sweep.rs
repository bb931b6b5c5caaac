//! Writes lapses as they fall due, so their events and promotions are
//! recorded even when nobody reads the asset (reads apply them anyway, R6),
//! pays out served distributions whose objection periods have run (R29), and
//! forgets stored replies past the request window.

use std::time::Duration;

use tracing::warn;

use crate::ledger::{
    command::{Command, PlanStep},
    rules::Holidays,
    store::Store,
};

/// Sweeps every `every` until `shutdown` completes; replies older than `window` are purged;
/// periods end by `holidays`.
pub async fn sweep(
    store: Store,
    (every, window): (Duration, Duration),
    holidays: Holidays,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let before = chrono::Duration::from_std(window).ok().and_then(|w| store.now().checked_sub_signed(w));
        match store.purge_replies(before.unwrap_or_default()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(replies = n, "stored replies past the request window purged"),
            Err(e) => warn!(error = %e, "purging stored replies failed; will retry"),
        }
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
        match store.due_distributions().await {
            Ok(ids) => {
                for distribution_id in ids {
                    let step = PlanStep::PayOut;
                    let command = Command::Plan { by: None, distribution_id, step, holidays: holidays.clone() };
                    if let Err(e) = store.execute(command).await {
                        warn!(error = %e, "paying out a distribution whose period ran failed; will retry");
                    }
                }
            }
            Err(e) => warn!(error = %e, "looking for distributions to pay out failed; will retry"),
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
