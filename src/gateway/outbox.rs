//! The outbox worker: delivers the ledger's control orders through the
//! registry clients until each is acknowledged. An outage delays an order,
//! never loses it; a redelivery after a crash carries the same idempotency
//! key, so the registry acts once. Replicas share the outbox through leases.
//! This is where the ledger and the registry side meet.

use std::{collections::HashMap, sync::Arc, time::Duration};

use tracing::{info, warn};

use crate::{
    core::proto::{ControlOrder, DeductRequest, ReleaseRequest, RenewRequest, SeizeRequest, time_of, ts},
    ledger::{
        command::{Ack, Command, PendingOrder, Undelivered},
        rules::OrderKind,
        store::Store,
    },
    registry::client::{Control, ControlError, Receipt, Registry},
};

/// How long a claimed order is this replica's before another may retry it.
const LEASE: Duration = Duration::from_secs(30);
/// How often to look for due orders when nothing wakes the worker.
const POLL: Duration = Duration::from_millis(200);

/// Why an order was not delivered this time.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The order's registry is not in this gateway's configuration.
    #[error("registry {0} is not configured on this gateway")]
    NotConfigured(String),
    /// The registry did not acknowledge it.
    #[error(transparent)]
    Control(#[from] ControlError),
}

/// Delivers orders until `shutdown` completes.
pub async fn run(store: Store, registries: Vec<Arc<Registry>>, shutdown: impl Future<Output = ()>) {
    let registries: HashMap<String, Arc<Registry>> = registries.into_iter().map(|r| (r.name.to_string(), r)).collect();
    let committed = store.committed();
    tokio::pin!(shutdown);
    loop {
        match store.claim_order(LEASE).await {
            Ok(Some(order)) => {
                let registry = registries.get(&order.registry);
                let result = match registry {
                    Some(registry) => deliver(registry, &order).await,
                    None => Err(DeliveryError::NotConfigured(order.registry.clone())),
                };
                let kind = order.kind.as_str();
                if let Some(r) = registry {
                    let delivered = if result.is_ok() { "acknowledged" } else { "failed" };
                    r.metrics.orders.with_label_values(&[&order.registry, delivered]).inc();
                }
                match &result {
                    Ok(ack) => {
                        info!(order = order.id, kind, registry = %order.registry, reference = %ack.reference, "order delivered")
                    }
                    Err(e) => {
                        warn!(order = order.id, kind, registry = %order.registry, attempts = order.attempts + 1, error = %e, "order not delivered; will retry")
                    }
                }
                let backoff = Duration::from_millis(200)
                    .saturating_mul(1 << order.attempts.clamp(0, 8))
                    .min(Duration::from_secs(30));
                let retry_at = store.now() + backoff;
                let result = result.map_err(|e| Arc::new(e) as Undelivered);
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

/// One order as the registry contract carries it, and its acknowledgement as the ledger records it.
async fn deliver(registry: &Registry, order: &PendingOrder) -> Result<Ack, DeliveryError> {
    let control = ControlOrder {
        idempotency_key: format!("{}:{}:{}", order.seizure_id, order.kind.as_str(), order.id),
        court_code: order.court.clone(),
        case_number: order.case_number.clone(),
        asset_kind: order.asset_kind as i32,
        asset_id: order.asset_id.clone(),
        seizure_id: order.seizure_id.clone(),
    };
    let header = Some(control);
    let reference = order.registry_ref.clone().unwrap_or_default();
    let end = order.end.map(ts);
    let call = match order.kind {
        OrderKind::Seize => Control::Seize(SeizeRequest { order: header, amount: order.amount, end_time: end }),
        OrderKind::Renew => {
            Control::Renew(RenewRequest { order: header, registry_reference: reference, end_time: end })
        }
        OrderKind::Release => Control::Release(ReleaseRequest { order: header, registry_reference: reference }),
        OrderKind::Deduct => {
            Control::Deduct(DeductRequest { order: header, registry_reference: reference, amount: order.amount })
        }
    };
    let Receipt { reference, start, end } = registry.control(call).await?;
    Ok(Ack { reference, start: start.as_ref().map(time_of), end: end.as_ref().map(time_of) })
}
