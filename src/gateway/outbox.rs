//! The outbox worker: delivers the ledger's control orders through the
//! registry clients until each is acknowledged. One lane per registry with orders, each
//! with a bounded number of orders in flight, so a registry that hangs or
//! fails delays only its own orders; an asset's orders still go one at a time,
//! in ledger order. An outage delays an order, never loses it; a redelivery
//! after a crash carries the same idempotency key, so the registry acts once.
//! Replicas share the lanes through leases. This is where the ledger and the
//! registry side meet.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use rand::Rng;
use tokio::{
    sync::watch,
    task::{JoinHandle, JoinSet},
};
use tracing::{info, warn};

use crate::{
    core::proto::{ControlOrder, DeductRequest, ReleaseRequest, RenewRequest, SeizeRequest, time_of, ts},
    ledger::{
        command::{Ack, Command, PendingOrder, Undelivered},
        rules::OrderKind,
        store::Store,
    },
    ops::metrics::Metrics,
    registry::{
        client::{Control, ControlError, Receipt, Registry},
        network::Network,
    },
};

/// How long a claimed order is this replica's before another may retry it.
const LEASE: Duration = Duration::from_secs(30);
/// How often the outbox (and a lane) looks for due orders when nothing wakes it.
const POLL: Duration = Duration::from_millis(200);
/// How often a lane publishes its backlog.
const GAUGE_EVERY: Duration = Duration::from_secs(1);
/// Orders in flight to one registry at once (each of a different asset), claimed together.
const IN_FLIGHT: usize = 32;
/// The first retry waits up to this long; each failure doubles it, up to [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// The longest wait between two attempts.
const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// Runs the outbox until `shutdown` completes: a lane for each registry that has orders due,
/// which ends once that registry has none. At the network's width (thousands of registries,
/// few with orders) an idle registry costs nothing. Orders for a registry the directory does
/// not list (or has disabled) wait until it is listed again.
pub async fn run(store: Store, network: Arc<Network>, metrics: Metrics, shutdown: impl Future<Output = ()>) {
    let (stop, stopped) = watch::channel(false);
    let committed = store.committed();
    let mut lanes: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut gauged = tokio::time::Instant::now() - GAUGE_EVERY;
    let mut shown = HashSet::new();
    tokio::pin!(shutdown);
    loop {
        // Register interest before looking, so a commit in between is not missed.
        let notified = committed.notified();
        lanes.retain(|_, lane| !lane.is_finished());
        match store.due_registries().await {
            Ok(due) => {
                for name in due {
                    if lanes.contains_key(&name) {
                        continue;
                    }
                    if let Some(registry) = network.registry(&name) {
                        shown.insert(name.clone());
                        lanes.insert(name, tokio::spawn(lane(store.clone(), registry, stopped.clone())));
                    }
                }
            }
            Err(e) => warn!(error = %e, "outbox unavailable"),
        }
        if gauged.elapsed() >= GAUGE_EVERY {
            gauge(&store, &metrics, &mut shown).await;
            gauged = tokio::time::Instant::now();
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = notified => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    let _ = stop.send(true);
    for (_, lane) in lanes {
        let _ = lane.await;
    }
}

/// One registry's orders: claim while there is room, deliver concurrently, record each
/// result; ends when none is in flight and none is due.
async fn lane(store: Store, registry: Arc<Registry>, mut stopped: watch::Receiver<bool>) {
    let committed = store.committed();
    let mut in_flight = JoinSet::new();
    loop {
        let notified = committed.notified();
        // Claim in batches (one write each) once half the room is free.
        if in_flight.len() <= IN_FLIGHT / 2 {
            match store.claim_orders(LEASE, &registry.name, IN_FLIGHT - in_flight.len()).await {
                Ok(orders) if orders.is_empty() && in_flight.is_empty() => return,
                Ok(orders) => {
                    for order in orders {
                        in_flight.spawn(attempt(store.clone(), registry.clone(), order));
                    }
                }
                Err(e) => warn!(registry = %registry.name, error = %e, "outbox unavailable"),
            }
        }
        tokio::select! {
            _ = stopped.changed() => return,
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            _ = notified => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Delivers one order and records the outcome: acknowledged, or due again after a jittered backoff.
async fn attempt(store: Store, registry: Arc<Registry>, order: PendingOrder) {
    let result = deliver(&registry, &order).await;
    let (kind, name) = (order.kind.as_str(), &*registry.name);
    let delivered = if result.is_ok() { "acknowledged" } else { "failed" };
    registry.metrics.orders.with_label_values(&[name, delivered]).inc();
    match &result {
        Ok(ack) => info!(order = order.id, kind, registry = name, reference = %ack.reference, "order delivered"),
        Err(e) => {
            warn!(order = order.id, kind, registry = name, attempts = order.attempts + 1, error = %e, "order not delivered; will retry")
        }
    }
    let retry_at = store.now() + backoff(order.attempts);
    let result = result.map_err(|e| Arc::new(e) as Undelivered);
    if let Err(e) = store.execute(Command::Delivered { outbox_id: order.id, result, retry_at }).await {
        warn!(order = order.id, error = %e, "could not record delivery; the lease will expire and it is retried");
    }
}

/// Publishes every registry's backlog and its oldest order's age (in one read); a registry
/// shown before (or given a lane) whose backlog is empty is shown at zero.
async fn gauge(store: &Store, metrics: &Metrics, shown: &mut HashSet<String>) {
    match store.backlogs().await {
        Ok(backlogs) => {
            let now: HashSet<String> = backlogs.iter().map(|(name, _, _)| name.clone()).collect();
            for name in shown.difference(&now) {
                metrics.outbox_backlog.with_label_values(&[name]).set(0);
                metrics.outbox_oldest_seconds.with_label_values(&[name]).set(0.0);
            }
            for (name, pending, oldest) in backlogs {
                metrics.outbox_backlog.with_label_values(&[&name]).set(pending);
                let age = oldest.map_or(0.0, |t| (store.now() - t).num_milliseconds().max(0) as f64 / 1e3);
                metrics.outbox_oldest_seconds.with_label_values(&[&name]).set(age);
            }
            shown.extend(now);
        }
        Err(e) => warn!(error = %e, "outbox backlog unreadable"),
    }
}

/// Full-jitter exponential backoff: uniform up to `BACKOFF_BASE · 2^attempts`, at most [`BACKOFF_CAP`],
/// so that orders failed together do not come due together.
fn backoff(attempts: i64) -> Duration {
    let ceiling = BACKOFF_BASE.saturating_mul(1 << attempts.clamp(0, 16)).min(BACKOFF_CAP);
    ceiling.mul_f64(rand::rng().random_range(0.0..=1.0))
}

/// One order as the registry contract carries it, and its acknowledgement as the ledger records it.
async fn deliver(registry: &Registry, order: &PendingOrder) -> Result<Ack, ControlError> {
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
        OrderKind::Seize => Control::Seize(SeizeRequest {
            order: header,
            amount: order.amount,
            end_time: end,
            registry_reference: reference,
        }),
        OrderKind::Renew => {
            Control::Renew(RenewRequest { order: header, registry_reference: reference, end_time: end })
        }
        OrderKind::Release => Control::Release(ReleaseRequest {
            order: header,
            registry_reference: reference,
            reason: order.reason.clone(),
        }),
        OrderKind::Deduct => {
            Control::Deduct(DeductRequest { order: header, registry_reference: reference, amount: order.amount })
        }
    };
    let Receipt { reference, start, end } = registry.control(call).await?;
    Ok(Ack { reference, start: start.as_ref().map(time_of), end: end.as_ref().map(time_of) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_below_a_doubling_ceiling_and_capped() {
        for attempts in [0, 1, 5, 40] {
            let ceiling = BACKOFF_BASE.saturating_mul(1 << attempts.clamp(0, 16)).min(BACKOFF_CAP);
            let waits: Vec<Duration> = (0..200).map(|_| backoff(attempts)).collect();
            assert!(waits.iter().all(|w| *w <= ceiling), "attempt {attempts}");
            assert!(waits.iter().any(|w| *w < ceiling / 2), "attempt {attempts}: jittered, not fixed");
        }
        assert!((0..200).map(|_| backoff(100)).all(|w| w <= BACKOFF_CAP));
    }
}
