//! The poller: asks the registries again for every leg that is due — a
//! ticket at its `ask_after`, or a call a crashed replica left unfinished —
//! and records what they say. Work is found in the database (the legs' due
//! index), claimed under a lease and at most [`IN_FLIGHT`] at once, so
//! 100,000 pending tickets cost rows, not timers or tasks; replicas share the
//! legs, and a replica's death hands its claims to the others when their
//! leases end. Each registry's call stack (its concurrency bound and breaker)
//! applies to polls as to searches.

use std::{sync::Arc, time::Duration};

use prometheus::Histogram;
use rand::Rng;
use serde_json::json;
use tokio::task::JoinSet;
use tracing::{Instrument, info, info_span, warn};

use super::{Claimed, Jobs, LegState, MIN_GAP, Update, after};
use crate::{
    core::{clock::Time, identifiers::DebtorId, proto::RegistryStatus},
    gateway::audit::{Record, Trail},
    ops::metrics::Metrics,
    registry::{
        call::{Failure, Inquiry},
        network::Network,
    },
};

/// Legs asked at once by one replica.
const IN_FLIGHT: usize = 256;
/// How often the poller looks for due legs when nothing wakes it: the most a ready answer waits to be
/// asked for (an idle look is one indexed read).
const POLL: Duration = Duration::from_millis(50);
/// The first retry after a failed ask waits up to this long; each failure doubles it, up to [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// The longest wait between two asks after failures.
const BACKOFF_CAP: Duration = Duration::from_secs(600);

/// How often settled searches past their retention are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// How often the late answers owed are counted for the metrics.
const COUNT_EVERY: Duration = Duration::from_secs(15);
/// A late answer owed within this of its window's end is about to expire.
const EXPIRING: Duration = Duration::from_secs(3600);

/// Polls until `shutdown` completes; a claim lasts `lease` (longer than any
/// registry's timeout). Searches settled longer than `retention` ago are purged.
/// The late answers owed, and how late they reach the court, go to `metrics`.
pub async fn run(
    jobs: Jobs,
    network: Arc<Network>,
    (trail, metrics): (Trail, Metrics),
    (lease, retention): (Duration, Duration),
    shutdown: impl Future<Output = ()>,
) {
    let worker = async {
        let mut in_flight = JoinSet::new();
        // By the gateway's clock, as retention is.
        let (mut purged, mut counted): (Option<Time>, Option<Time>) = (None, None);
        loop {
            let now = jobs.now();
            if counted.is_none_or(|at| now >= after(at, COUNT_EVERY)) {
                count_owed(&jobs, &metrics, now).await;
                counted = Some(now);
            }
            if purged.is_none_or(|at| now >= after(at, PURGE_EVERY)) {
                let before = now - chrono::Duration::from_std(retention).unwrap_or_default();
                match jobs.purge(before).await {
                    Ok(0) => {}
                    Ok(n) => info!(searches = n, "settled searches past their retention purged"),
                    Err(e) => warn!(error = %e, "search purge failed; will retry"),
                }
                purged = Some(now);
            }
            if in_flight.len() <= IN_FLIGHT / 2 {
                match jobs.claim(IN_FLIGHT - in_flight.len(), lease).await {
                    Ok(due) => {
                        for claimed in due {
                            let (jobs, network, lag) =
                                (jobs.clone(), network.clone(), metrics.late_answer_lag_seconds.clone());
                            in_flight.spawn(ask(jobs, network, lag, claimed));
                        }
                    }
                    Err(e) => warn!(error = %e, "search jobs unavailable; polling again shortly"),
                }
            }
            tokio::select! {
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                    // Everything asked by now is recorded together: one transaction, not one per leg.
                    let mut done: Vec<Asked> = done.into_iter().collect();
                    while let Some(more) = in_flight.try_join_next() {
                        done.extend(more);
                    }
                    record(&jobs, &trail, done).await;
                }
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    };
    // The worker never ends by itself; shutdown drops it (claims in flight lapse with their leases).
    tokio::select! {
        _ = worker => {}
        _ = shutdown => {}
    }
}

/// The late answers owed per registry, and those within [`EXPIRING`] of their window's end.
async fn count_owed(jobs: &Jobs, metrics: &Metrics, now: Time) {
    match jobs.owed(after(now, EXPIRING)).await {
        Ok(owed) => {
            metrics.tickets_pending.reset();
            metrics.tickets_expiring.reset();
            for (registry, pending, expiring) in owed {
                metrics.tickets_pending.with_label_values(&[&registry]).set(pending);
                metrics.tickets_expiring.with_label_values(&[&registry]).set(expiring);
            }
        }
        Err(e) => warn!(error = %e, "late answers owed not counted; will retry"),
    }
}

/// Full-jitter exponential backoff after `attempts` failed asks.
fn backoff(attempts: i64) -> Duration {
    let ceiling = BACKOFF_BASE.saturating_mul(1 << attempts.clamp(0, 16)).min(BACKOFF_CAP);
    ceiling.mul_f64(rand::rng().random_range(0.0..=1.0)).max(MIN_GAP)
}

/// A leg asked: how to record it, and its audit record if it settled.
struct Asked {
    update: Update,
    audit: Option<Record>,
}

/// Records what was asked: the audit records of late answers first (a leg
/// whose record cannot be written is not settled: its lease ends and it is
/// asked again), then every leg in one transaction.
async fn record(jobs: &Jobs, trail: &Trail, asked: Vec<Asked>) {
    let audits = asked.iter().map(|a| async {
        match &a.audit {
            Some(r) => trail.record(r.clone()).await.is_ok(),
            None => true,
        }
    });
    let written = futures::future::join_all(audits).await;
    if written.iter().any(|ok| !ok) {
        warn!("late answers not audited; asked again after the lease");
    }
    let updates: Vec<Update> = asked.into_iter().zip(written).filter(|(_, ok)| *ok).map(|(a, _)| a.update).collect();
    if let Err(e) = jobs.record_all(updates).await {
        warn!(error = %e, "legs not recorded; asked again after the lease");
    }
}

/// Asks for one leg; a late answer's lag past its ready time goes to `lag`.
async fn ask(jobs: Jobs, network: Arc<Network>, lag: Histogram, claimed: Claimed) -> Asked {
    let Claimed { search_id, court, case_number, debtor, mut row, mut attempts, scheduled } = claimed;
    let span = info_span!("search_job.poll", search = %search_id, registry = %row.registry, state = row.state.as_str());
    async {
        let now = jobs.now();
        let registry = network.registry(&row.registry);
        let id = debtor.as_ref().and_then(DebtorId::of);
        let mut assets = 0;
        if row.answer_by.is_some_and(|by| now > by) {
            row.expire();
        } else if let Some(registry) = registry {
            let inquiry = Arc::new(Inquiry {
                case_number: case_number.clone(),
                court_code: court.clone(),
                request_id: search_id.clone(),
                accept_deferred: true,
                scheduled,
            });
            let result = match (row.ticket.clone(), debtor) {
                (Some(ticket), _) => registry.answer(ticket, inquiry).await,
                (None, Some(debtor)) => registry.search(debtor, inquiry).await,
                (None, None) => Err(Failure::InvalidResponse(
                    "the search's debtor could not be unsealed (another audit key?); search again".into(),
                )),
            };
            let now = jobs.now();
            match result {
                Err(Failure::Deferred(t)) if row.state == LegState::Pending => match row.breach(&t) {
                    Some(why) => row.fail(RegistryStatus::InvalidResponse, why),
                    None => {
                        row.defer(&t, now);
                        attempts = 0;
                    }
                },
                Err(Failure::Deferred(t)) => {
                    row.defer(&t, now);
                    attempts = 0;
                }
                // A re-search's leg waits for room in the registry's rate, or for its breaker: not a failed ask.
                Err(f @ (Failure::Paced(wait) | Failure::CircuitOpen(wait))) if scheduled => {
                    row.next_ask = after(now, wait.max(MIN_GAP));
                    row.message = format!("{f}");
                }
                Err(Failure::Error(tonic::Code::NotFound)) if row.state == LegState::Pending => {
                    match row.answer_by.is_some_and(|by| now >= by) {
                        true => row.expire(),
                        false => row.fail(
                            RegistryStatus::Error,
                            "the registry no longer knows its ticket (NOT_FOUND) before its window ended".into(),
                        ),
                    }
                }
                Err(f) if f.is_transient() && row.state == LegState::Pending => {
                    // Asked again within the window, spread so that failed asks do not come due together.
                    let next = after(now, backoff(attempts));
                    row.next_ask = row.answer_by.map_or(next, |by| next.min(by));
                    row.message = format!("last ask: {f}; asked again after {}", row.next_ask.format("%H:%M:%S UTC"));
                    attempts += 1;
                }
                Ok(checked) => {
                    if row.state == LegState::Pending {
                        lag.observe((now - row.next_ask).to_std().unwrap_or_default().as_secs_f64());
                    }
                    assets = checked.assets.len();
                    let fetched_at = std::time::SystemTime::from(now);
                    row.settle(Ok((&checked.assets, checked.dropped.as_deref(), fetched_at)), now);
                    if let Some(id) = &id {
                        network.remember(&registry, id, checked, fetched_at).await;
                    }
                }
                Err(f) => row.settle(Err(&f), now),
            }
        } else {
            let message =
                format!("registry {} is no longer in this gateway's directory (removed or disabled)", row.registry);
            row.fail(RegistryStatus::Unavailable, message);
        }
        let mut audit = None;
        if let Some(id) = id.as_ref().filter(|_| matches!(row.state, LegState::Failed | LegState::Expired)) {
            network.forget_ticket(&row.registry, id);
        }
        if row.state.settled() {
            let status = RegistryStatus::try_from(row.status).unwrap_or_default();
            info!(status = status.as_str_name(), "late answer");
            let detail = json!({ "search_id": search_id, "registry": row.registry, "status": status.as_str_name(),
                "assets": assets });
            let record = Record {
                court: court.clone(),
                officer: String::new(),
                method: "LateAnswer".into(),
                case_number: case_number.clone(),
                debtors: id.into_iter().collect(),
                detail,
                code: Some(tonic::Code::Ok),
                message: row.message.clone(),
            };
            audit = Some(record);
        }
        Asked { update: (search_id, row, attempts), audit }
    }
    .instrument(span)
    .await
}
