//! The re-searches of terminated cases, carried out (R30): every due
//! re-search becomes a search job of its case's court, asking every registry
//! for its debtors; the job's poller asks them (with its leases, retries and
//! tickets) and the court reads the result as any of its searches. A
//! re-search opens its job under a request id of its own (`research:CASE:N`),
//! so one claimed twice (a crash between opening and recording it, or two
//! replicas) opens one job.

use std::{collections::HashSet, sync::Arc, time::Duration};

use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};
use tracing::{info, warn};

use super::{Jobs, LegRow, NewJob, Opened};
use crate::{
    core::{identifiers::DebtorId, proto::Debtor},
    gateway::audit::{Record, Trail},
    ledger::{
        LedgerError,
        store::{DueResearch, Store},
    },
    ops::seal::Sealer,
    registry::{call, network::Network},
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
        research_round: Some(r.round),
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

impl Jobs {
    /// R30: what the settled re-search `search_id` of `case` found, against what the case had found
    /// before (its seized assets, its earlier searches kept as jobs, its earlier re-searches), by
    /// asset identity; remembers what it found and says, for the court's event, how much was new.
    pub(super) async fn compare_research(
        &self,
        conn: &mut AnyConnection,
        search_id: &str,
        (case, round): (&str, i64),
    ) -> Result<String, LedgerError> {
        let found = answered(
            conn,
            sqlx::query("SELECT answer FROM search_legs WHERE search_id = $1 AND state = 'answered'").bind(search_id),
        )
        .await?;
        let mut seen: HashSet<String> = sqlx::query_scalar("SELECT asset FROM research_seen WHERE case_number = $1")
            .bind(case)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
        let seized = sqlx::query(
            "SELECT DISTINCT a.kind, a.asset_id FROM seizures s JOIN assets a ON a.asset_key = s.asset_key \
             WHERE s.case_number = $1",
        )
        .bind(case)
        .fetch_all(&mut *conn)
        .await?;
        for r in &seized {
            seen.insert(identity(r.try_get(0)?, &r.try_get::<String, _>(1)?));
        }
        let earlier = sqlx::query(
            "SELECT l.answer FROM search_legs l JOIN search_jobs j ON j.search_id = l.search_id \
             WHERE j.case_number = $1 AND j.search_id <> $2 AND l.state = 'answered'",
        )
        .bind(case)
        .bind(search_id);
        seen.extend(answered(conn, earlier).await?);
        let new = found.iter().filter(|a| !seen.contains(*a)).count();
        for asset in &found {
            sqlx::query("INSERT INTO research_seen (case_number, asset) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(case)
                .bind(asset)
                .execute(&mut *conn)
                .await?;
        }
        sqlx::query("UPDATE researches SET found = $1, new_assets = $2 WHERE case_number = $3 AND round = $4")
            .bind(i64::try_from(found.len()).unwrap_or(i64::MAX))
            .bind(i64::try_from(new).unwrap_or(i64::MAX))
            .bind(case)
            .bind(round)
            .execute(&mut *conn)
            .await?;
        Ok(match new {
            0 => format!(
                "re-search {round} of {case}: {} asset(s) found, none not seen before; tell the applicant (R30)",
                found.len()
            ),
            n => format!(
                "re-search {round} of {case}: {} asset(s) found, {n} not seen before; the case may be resumed \
                 (ResumeCase), and the applicant told (R30)",
                found.len()
            ),
        })
    }
}

/// An asset's identity across searches: its kind and its identity within the kind.
fn identity(kind: i64, id: &str) -> String {
    format!("{kind}:{id}")
}

/// The identities of the assets in the stored answers `query` reads (one answer a row).
async fn answered<'q>(
    conn: &mut AnyConnection,
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
) -> Result<HashSet<String>, LedgerError> {
    let mut assets = HashSet::new();
    for row in query.fetch_all(&mut *conn).await? {
        let answer: Option<String> = row.try_get(0)?;
        let decoded = answer.and_then(|hex| hex::decode(hex).ok()).and_then(|bytes| call::decode(&bytes));
        if let Some((checked, _)) = decoded {
            assets.extend(checked.assets.iter().map(|a| identity(i64::from(a.kind as i32), &a.id)));
        }
    }
    Ok(assets)
}
