//! Delivers control orders from the ledger's outbox to the registries, until
//! each is acknowledged. An outage delays an order, never loses it; a
//! redelivery after a crash carries the same idempotency key, so the registry
//! acts once. Replicas share the outbox through leases.

use std::{collections::HashMap, sync::Arc, time::Duration};

use tracing::{info, warn};

use super::store::{Command, Store, wall_micros};
use crate::registry::Registry;

/// How long a claimed order is this replica's before another may retry it.
const LEASE: Duration = Duration::from_secs(30);
/// How often to look for due orders when nothing wakes the worker.
const POLL: Duration = Duration::from_millis(200);

/// Delivers orders until `shutdown` completes.
pub async fn run(store: Store, registries: Vec<Arc<Registry>>, shutdown: impl Future<Output = ()>) {
    let registries: HashMap<String, Arc<Registry>> = registries.into_iter().map(|r| (r.name.to_string(), r)).collect();
    let committed = store.committed();
    tokio::pin!(shutdown);
    loop {
        let claimed = store.claim_order(LEASE).await;
        match claimed {
            Ok(Some(order)) => {
                let result = match registries.get(&order.registry) {
                    Some(registry) => registry.deliver(&order).await,
                    None => Err(format!("registry {} is not configured on this gateway", order.registry)),
                };
                let delivered = if result.is_ok() { "acknowledged" } else { "failed" };
                if let Some(r) = registries.get(&order.registry) {
                    r.metrics.orders.with_label_values(&[&order.registry, delivered]).inc();
                }
                match &result {
                    Ok(ack) => {
                        info!(order = order.id, kind = %order.kind, registry = %order.registry, reference = %ack.reference, "order delivered")
                    }
                    Err(e) => {
                        warn!(order = order.id, kind = %order.kind, registry = %order.registry, attempts = order.attempts + 1, error = %e, "order not delivered; will retry")
                    }
                }
                let backoff = Duration::from_millis(200)
                    .saturating_mul(1 << order.attempts.clamp(0, 8))
                    .min(Duration::from_secs(30));
                let retry_at = wall_micros() + i64::try_from(backoff.as_micros()).unwrap_or(i64::MAX);
                if let Err(e) = store.execute(Command::Delivered { outbox_id: order.id, result, retry_at }).await {
                    warn!(order = order.id, error = %e, "could not record delivery; the lease will expire and it is retried");
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => warn!(error = %e, "outbox unavailable"),
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = committed.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Persists lapses as they fall due, so their events and promotions are
/// recorded even when nobody reads the asset (reads apply them anyway, R6).
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
