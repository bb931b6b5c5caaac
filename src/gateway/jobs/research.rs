//! The re-searches of terminated cases, carried out (R30): every due
//! re-search becomes a search job of its case's court, asking every registry
//! for its debtors; the job's poller asks them (with its leases, retries and
//! tickets) and the court reads the result as any of its searches. A
//! re-search opens its job under a request id of its own (`research:CASE:N`),
//! so one claimed twice (a crash between opening and recording it, or two
//! replicas) opens one job.

use std::{sync::Arc, time::Duration};

use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::{Jobs, LegRow, NewJob, Opened};
use crate::{
    core::{identifiers::DebtorId, proto::Debtor},
    gateway::audit::{Record, Trail},
    ledger::store::{DueResearch, Store},
    ops::seal::Sealer,
    registry::network::Network,
};

/// What a terminated case's debtors are sealed under, derived from the audit key (replicas share it).
pub const SEAL_PURPOSE: &str = "terminated case seal";

/// Where a terminated case's debtor is sealed: bound to the case and its position.
pub fn seal_place(case: &str, idx: usize) -> Vec<u8> {
    format!("research:{case}:{idx}").into_bytes()
}

/// Re-searches started per round.
const PER_ROUND: usize = 100;

/// How long a claimed re-search is this replica's to open.
const LEASE: Duration = Duration::from_secs(60);

/// Until `shutdown`: every `every`, opens the jobs of the re-searches due.
pub async fn run(
    (store, jobs): (Store, Jobs),
    (network, trail): (Arc<Network>, Trail),
    seal: Arc<Sealer>,
    every: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let worker = async {
        loop {
            match store.claim_researches(PER_ROUND, LEASE).await {
                Ok(due) => {
                    for research in due {
                        if let Err(e) = start(&store, &jobs, (&network, &trail), &seal, &research).await {
                            warn!(error = %e, case = %research.case_number, round = research.round,
                                "a due re-search was not started; it is claimed again after its lease");
                        }
                    }
                }
                Err(e) => warn!(error = %e, "due re-searches unreadable; will retry"),
            }
            tokio::time::sleep(every).await;
        }
    };
    tokio::select! {
        _ = worker => {}
        _ = shutdown => {}
    }
}

/// Opens the re-search's job (or finds the one opened before), audits it as the court's search, and
/// records it done.
async fn start(
    store: &Store,
    jobs: &Jobs,
    (network, trail): (&Network, &Trail),
    seal: &Sealer,
    r: &DueResearch,
) -> Result<(), String> {
    let mut debtors = Vec::new();
    for (idx, (masked, _, sealed)) in r.debtors.iter().enumerate() {
        let opened = seal.open(&seal_place(&r.case_number, idx), sealed).and_then(|b| String::from_utf8(b).ok());
        let id = opened
            .and_then(|text| DebtorId::detect(&text).ok())
            .ok_or_else(|| format!("debtor {masked} of {} does not unseal (another audit key?)", r.case_number))?;
        debtors.push((id.clone(), Debtor { id: Some(id.to_proto()), ..Debtor::default() }));
    }
    let now = jobs.now();
    let registries = network.serving(&[]);
    // Legs no replica holds (their lease ended just before now): the poller asks them on its next round.
    let free = now - chrono::Duration::microseconds(1);
    let legs = (0..debtors.len())
        .flat_map(|i| registries.iter().map(move |reg| LegRow::asking(i, &reg.name, reg.kind as i32, free)))
        .collect();
    let request_id = format!("research:{}:{}", r.case_number, r.round);
    let job = NewJob {
        search_id: uuid::Uuid::new_v4().to_string(),
        court: r.court.clone(),
        digest: hex::encode(Sha256::digest(request_id.as_bytes())),
        request_id,
        case_number: r.case_number.clone(),
        kinds: Vec::new(),
        debtors: debtors.clone(),
        legs,
        now,
    };
    let (search_id, replayed) = match jobs.open(&job).await.map_err(|e| e.to_string())? {
        Opened::New(id) => (id, false),
        Opened::Replayed(id) => (id, true),
    };
    if !replayed {
        let detail = serde_json::json!({ "search_id": search_id, "round": r.round,
            "asked": registries.iter().map(|reg| &*reg.name).collect::<Vec<_>>() });
        let record = Record {
            court: r.court.clone(),
            officer: String::new(),
            method: "Research".into(),
            case_number: r.case_number.clone(),
            debtors: debtors.into_iter().map(|(id, _)| id).collect(),
            detail,
            code: Some(tonic::Code::Ok),
            message: format!("re-search {} of {} after its termination (R30)", r.round, r.case_number),
        };
        trail.record(record).await.map_err(|e| e.to_string())?;
    }
    store.research_done(&r.case_number, r.round, &search_id).await.map_err(|e| e.to_string())?;
    info!(case = %r.case_number, round = r.round, search = %search_id, "re-search started");
    Ok(())
}
