//! The ledger's health as operators watch it: the cross-court handovers and
//! disposal answers past their legal days (R13, R14) and the seizures on
//! bankrupt debtors' assets not lifted within 7 days (R25), counted every sweep, and
//! a periodic verification of every asset's invariants; both exported as
//! metrics, for the alerts that page on them.

use std::time::Duration;

use tracing::warn;

use crate::{ledger::store::Store, ops::metrics::Metrics};

/// Until `shutdown` completes: counts what is overdue every `every`, verifies the ledger every `verify`
/// (`0` never), into `metrics`.
pub async fn watch(
    store: Store,
    metrics: Metrics,
    (every, verify): (Duration, Duration),
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut verified: Option<crate::core::clock::Time> = None;
    loop {
        match store.transfers(true).await {
            Ok(overdue) => {
                let n = overdue.transfers.len() + overdue.disposal_transfers.len() + overdue.designations.len();
                metrics.transfers_overdue.set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            Err(e) => warn!(error = %e, "overdue handovers not counted; will retry"),
        }
        match store.bankruptcy_lifts(None, store.now()).await {
            Ok(lifts) => {
                let n = lifts.iter().filter(|l| l.overdue).count();
                metrics.bankruptcy_lifts_overdue.set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            Err(e) => warn!(error = %e, "overdue bankruptcy lifts not counted; will retry"),
        }
        let now = store.now();
        let due = verified.is_none_or(|at| now - at >= chrono::Duration::from_std(verify).unwrap_or_default());
        if !verify.is_zero() && due {
            verified = Some(now);
            match store.verify().await {
                Ok(violations) => {
                    for v in &violations {
                        warn!(violation = %v, "the ledger breaks an invariant");
                    }
                    metrics.ledger_violations.set(i64::try_from(violations.len()).unwrap_or(i64::MAX));
                    let result = if violations.is_empty() { "held" } else { "broken" };
                    metrics.ledger_verifications.with_label_values(&[result]).inc();
                }
                Err(e) => {
                    warn!(error = %e, "ledger verification failed; will retry");
                    metrics.ledger_verifications.with_label_values(&["failed"]).inc();
                }
            }
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
