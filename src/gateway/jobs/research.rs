//! The re-searches of terminated cases, carried out (R30): the re-searches
//! due are claimed (with those of the same debtors due within a window), every
//! registry is asked once for each of their debtors, and each re-search
//! becomes a search job of its case's court holding those answers; what was
//! not answered in time is left to the job's poller (its leases, retries and
//! tickets), and the court reads the result as any of its searches. A
//! re-search opens its job under a request id of its own (`research:CASE:N`),
//! so one claimed twice (a crash between opening and recording it, or two
//! replicas) opens one job.

use std::{collections::HashSet, sync::Arc, time::Duration};

use futures::StreamExt;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};
use tokio::sync::Notify;
use tracing::{Instrument, info, info_span, warn};

use super::{Jobs, LegRow, NewJob, Opened};
use crate::{
    core::{
        clock::{BeijingHours, Time},
        identifiers::DebtorId,
        proto::Debtor,
    },
    gateway::audit::{AuditError, Key, Record, Trail},
    ledger::{
        LedgerError, rules,
        store::{DueResearch, ResearchClaim, Store},
    },
    ops::{metrics::Metrics, seal::Sealer},
    registry::{
        call::{self, Failure, Inquiry},
        fanout::{Leg, Plan},
        network::Network,
        pace::SPAN,
    },
};

/// What a terminated case's debtors are sealed under, derived from the audit key (replicas share it).
const SEAL_PURPOSE: &str = "terminated case seal";

/// The re-search duty as the debtor service and the worker share it: the seal of the terminated
/// cases' debtors, and a bell a termination rings when a re-search is due at once (one recorded
/// late), so the worker need not wait for its next round.
#[derive(Clone)]
pub struct Researches {
    /// Seals and opens the debtors.
    pub seal: Arc<Sealer>,
    due: Arc<Notify>,
}

impl Researches {
    /// The duty, sealing under a key derived from `key`.
    pub fn new(key: &Key) -> Researches {
        Researches { seal: Arc::new(Sealer::new(key.derive(SEAL_PURPOSE))), due: Arc::new(Notify::new()) }
    }

    /// Wakes the worker: a re-search is due now.
    pub fn wake(&self) {
        self.due.notify_one();
    }
}

/// Where a terminated case's debtor is sealed: bound to the case and its position.
pub fn seal_place(case: &str, idx: usize) -> Vec<u8> {
    format!("research:{case}:{idx}").into_bytes()
}

/// Why a claimed re-search was not started; it is claimed again after its lease.
#[derive(Debug, thiserror::Error)]
pub enum ResearchError {
    /// A debtor's sealed identifier does not open: damaged, or sealed under another audit key.
    #[error("debtor {masked} of {case} does not unseal (another audit key?)")]
    Unsealed {
        /// The terminated case.
        case: String,
        /// The debtor, masked.
        masked: String,
    },
    /// The job or the schedule could not be written.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The audit record could not be written.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// Re-searches claimed per round (with the ones of the same debtors that come along).
const PER_ROUND: u64 = 100;

/// How often the backlog per registry is counted for the metrics.
const COUNT_EVERY: Duration = Duration::from_secs(15);

/// How the worker paces itself and shares: how often it looks, how far ahead a re-search of a
/// debtor already being asked is brought forward, how long it waits for the registries before
/// leaving the rest to the job's poller, and the hours it spreads the day's re-searches over.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    /// Between rounds.
    pub every: Duration,
    /// Re-searches of the same debtors due within this join a due one.
    pub window: Duration,
    /// The longest wait for the shared fan-out.
    pub deadline: Duration,
    /// How long a claimed re-search is this replica's to open (longer than the fan-out's wait).
    pub lease: Duration,
    /// Re-searches a court starts per Beijing day, apart from its search quota.
    pub allowance: u32,
    /// The Beijing hours the due re-searches are spread over (`None`: any hour).
    pub hours: Option<BeijingHours>,
}

/// Until `shutdown`: every round, opens the jobs of the re-searches due, as many as the hours
/// leave to this round and the registries' rates leave to re-searches (the courts' searches come
/// first). Those of one debtor due within the window are served by one fan-out (R30): each still
/// gets its own job, audit record and comparison.
pub async fn run(
    (store, jobs): (Store, Jobs),
    (network, trail, metrics): (Arc<Network>, Trail, Metrics),
    duty: Researches,
    cadence: Cadence,
    shutdown: impl Future<Output = ()>,
) {
    let worker = async {
        let group = Group { store: &store, jobs: &jobs, network: &network, trail: &trail, seal: &duty.seal };
        let mut counted: Option<Time> = None;
        loop {
            let now = jobs.now();
            if counted.is_none_or(|at| now >= super::after(at, COUNT_EVERY)) {
                count_backlog(&group, &metrics, now).await;
                counted = Some(now);
            }
            let next = match group.round(cadence).await {
                Ok((saved, next)) => {
                    metrics.research_calls_saved.inc_by(saved);
                    next
                }
                Err(e) => {
                    warn!(error = %e, "due re-searches unreadable; will retry");
                    cadence.every
                }
            };
            tokio::select! {
                _ = duty.due.notified() => {}
                _ = tokio::time::sleep(next) => {}
            }
        }
    };
    tokio::select! {
        _ = worker => {}
        _ = shutdown => {}
    }
}

/// The re-searches waiting per registry, and how long the oldest has waited, for the metrics.
async fn count_backlog(group: &Group<'_>, metrics: &Metrics, now: Time) {
    let counted = async {
        let (due, oldest) = group.store.researches_waiting().await?;
        Ok::<_, LedgerError>((due, oldest, group.jobs.research_legs_waiting().await?))
    };
    match counted.await {
        Ok((due, oldest, legs)) => {
            metrics.research_backlog.reset();
            metrics.research_lag_seconds.reset();
            for registry in group.network.registries() {
                let (waiting, since) = legs.get(&*registry.name).copied().unwrap_or((0, None));
                let since = [oldest, since].into_iter().flatten().min();
                let lag = since.map_or(0.0, |t| (now - t).to_std().unwrap_or_default().as_secs_f64());
                let backlog = i64::try_from(due).unwrap_or(i64::MAX).saturating_add(waiting);
                metrics.research_backlog.with_label_values(&[&*registry.name]).set(backlog);
                metrics.research_lag_seconds.with_label_values(&[&*registry.name]).set(lag);
            }
        }
        Err(e) => warn!(error = %e, "re-search backlog not counted; will retry"),
    }
}

/// How many of the `due` re-searches a round at `now` claims, and when the next round comes: what
/// the hours leave to this round (R30's spread) and the registries' `rooms` leave to re-searches
/// (a registry whose breaker refuses, `None`, is paused, not waited for: its legs wait in their
/// jobs), at most [`PER_ROUND`]; the next round as soon as the rates have room again when they
/// held this one back.
pub fn claimable(rooms: impl Iterator<Item = Option<u32>>, due: u64, now: Time, cadence: Cadence) -> (u64, Duration) {
    let room = u64::from(rooms.flatten().min().unwrap_or(0));
    let quota = rules::research_quota(due, now, cadence.hours, cadence.every).min(PER_ROUND);
    let limit = quota.min(room);
    let next = if limit < quota || limit == PER_ROUND { SPAN } else { cadence.every };
    (limit, next)
}

/// What a round of re-searches works with.
struct Group<'a> {
    store: &'a Store,
    jobs: &'a Jobs,
    network: &'a Network,
    trail: &'a Trail,
    seal: &'a Sealer,
}

impl Group<'_> {
    /// One round: claims what the hours leave to it (R30's spread) and the registries' rates leave
    /// to re-searches, and starts them. Returns the registry calls the sharing saved and when the
    /// next round should come: as soon as the rates have room again when they held it back.
    async fn round(&self, cadence: Cadence) -> Result<(u64, Duration), LedgerError> {
        let (due, _) = self.store.researches_waiting().await?;
        if due == 0 {
            // Nothing to pace: no registry is asked for its rate (or connected to) for nothing.
            return Ok((0, cadence.every));
        }
        let registries = self.network.serving(&[]);
        futures::future::join_all(registries.iter().map(|r| r.learn())).await;
        let (limit, next) = claimable(registries.iter().map(|r| r.room()), due, self.jobs.now(), cadence);
        if limit == 0 {
            return Ok((0, next));
        }
        let claim = ResearchClaim {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            lease: cadence.lease,
            window: cadence.window,
            allowance: cadence.allowance,
        };
        let claimed = self.store.claim_researches(claim).await?;
        if claimed.is_empty() {
            // Due and held by another replica (or a dead one, until its lease ends): looked at again then.
            return Ok((0, cadence.every.min(cadence.lease)));
        }
        let span = info_span!("research.round", researches = claimed.len());
        Ok((self.start(&claimed, cadence.deadline).instrument(span).await, next))
    }

    /// Asks every registry once for each debtor of `due`, then opens each re-search's job from those
    /// answers (the legs not answered by `deadline`, or held back by a registry's rate or breaker,
    /// are left asking, for the poller); returns the registry calls the sharing saved. A re-search
    /// that cannot be started is left, with a warning, to be claimed again after its lease; the
    /// others go on.
    async fn start(&self, due: &[DueResearch], deadline: Duration) -> u64 {
        // Every debtor once, by its key; each re-search's debtors as positions in that list.
        let mut debtors: Vec<(String, DebtorId)> = Vec::new();
        let mut ready = Vec::new();
        for r in due {
            match self.unseal_all(r) {
                Ok(ids) => {
                    let of_r = r
                        .debtors
                        .iter()
                        .zip(ids)
                        .map(|(d, id)| match debtors.iter().position(|(key, _)| *key == d.key) {
                            Some(at) => at,
                            None => {
                                debtors.push((d.key.clone(), id));
                                debtors.len() - 1
                            }
                        })
                        .collect::<Vec<_>>();
                    ready.push((r, of_r));
                }
                Err(e) => warn_not_started(r, &e),
            }
        }
        let Some((first, _)) = ready.first() else { return 0 };
        let registries = self.network.serving(&[]);
        // The registries see the earliest due case as the asker; the trail records every case.
        let plan = Arc::new(Plan {
            debtors: debtors
                .iter()
                .map(|(_, id)| (id.clone(), Debtor { id: Some(id.to_proto()), ..Debtor::default() }))
                .collect(),
            registries: registries.clone(),
            kinds: Vec::new(),
            caller: Arc::new(Inquiry {
                accept_deferred: true,
                scheduled: true,
                ..Inquiry::new(first.case_number.clone(), first.court.clone())
            }),
            max_age: None,
        });
        let mut legs = Vec::new();
        let mut stream = Box::pin(self.network.fan_out(&plan));
        let _ = tokio::time::timeout(deadline, async {
            while let Some(leg) = stream.next().await {
                legs.push(leg);
            }
        })
        .await;
        let mut done = Vec::new();
        for (r, of_r) in &ready {
            match self.open(r, of_r, (&plan, &legs)).await {
                Ok(search_id) => done.push((r.case_number.clone(), r.round, search_id)),
                Err(e) => warn_not_started(r, &e),
            }
        }
        // Not recorded done: claimed again after the lease, each finds its job (its id is its own) and is recorded then.
        if let Err(e) = self.store.researches_done(&done).await {
            warn!(error = %e, researches = done.len(), "started re-searches not recorded; recorded after their lease");
        }
        let asked: usize = ready.iter().map(|(r, _)| r.debtors.len()).sum();
        ((asked - debtors.len()) * registries.len()) as u64
    }

    /// Every debtor of `r`, unsealed.
    fn unseal_all(&self, r: &DueResearch) -> Result<Vec<DebtorId>, ResearchError> {
        r.debtors
            .iter()
            .enumerate()
            .map(|(idx, d)| {
                let opened = self.seal.open(&seal_place(&r.case_number, idx), &d.sealed);
                opened
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|text| DebtorId::detect(&text).ok())
                    .ok_or_else(|| ResearchError::Unsealed { case: r.case_number.clone(), masked: d.masked.clone() })
            })
            .collect()
    }

    /// Opens `r`'s job from the shared legs, its audit record first (the job's id is the
    /// re-search's own, so the record names it before it exists): a crash between the two records
    /// twice, never not at all, and the re-search claimed again finds its job opened and records
    /// nothing more. Returns the job's id.
    async fn open(
        &self,
        r: &DueResearch,
        of_r: &[usize],
        (plan, legs): (&Plan, &[Leg]),
    ) -> Result<String, ResearchError> {
        let now = self.jobs.now();
        // Legs no replica holds (their lease ended just before now): the poller asks them on its next round.
        let free = now - chrono::Duration::microseconds(1);
        let mut rows = Vec::new();
        for (i, at) in of_r.iter().enumerate() {
            for reg in &plan.registries {
                let leg = legs.iter().find(|l| l.debtor_index == *at && l.registry.name == reg.name);
                let mut row = match leg {
                    // Held back by the registry's rate or breaker: asked when there is room.
                    Some(Leg { result: Err(f @ (Failure::Paced(wait) | Failure::CircuitOpen(wait))), .. }) => {
                        let mut row = LegRow::asking(i, &reg.name, reg.kind as i32, super::after(now, *wait));
                        row.message = f.to_string();
                        row
                    }
                    Some(leg) => LegRow::of(leg, now),
                    None => LegRow::asking(i, &reg.name, reg.kind as i32, free),
                };
                row.debtor_index = i;
                rows.push(row);
            }
        }
        let request_id = format!("research:{}:{}", r.case_number, r.round);
        let digest = Sha256::digest(request_id.as_bytes());
        let search_id = uuid::Builder::from_random_bytes(digest[..16].try_into().unwrap_or_default()).into_uuid();
        let job = NewJob {
            search_id: search_id.to_string(),
            court: r.court.clone(),
            digest: hex::encode(digest),
            request_id,
            case_number: r.case_number.clone(),
            kinds: Vec::new(),
            debtors: of_r.iter().map(|at| plan.debtors[*at].clone()).collect(),
            legs: rows,
            now,
            research_round: Some(r.round),
        };
        if self.jobs.head(&job.search_id).await?.is_none() {
            let detail = serde_json::json!({ "search_id": job.search_id, "round": r.round,
                "asked": plan.registries.iter().map(|reg| &*reg.name).collect::<Vec<_>>() });
            let record = Record {
                court: r.court.clone(),
                officer: String::new(),
                method: "Research".into(),
                case_number: r.case_number.clone(),
                debtors: job.debtors.iter().map(|(id, _)| id.clone()).collect(),
                detail,
                code: Some(tonic::Code::Ok),
                message: format!("re-search {} of {} after its termination (R30)", r.round, r.case_number),
            };
            self.trail.record(record).await?;
        }
        let (Opened::New(search_id) | Opened::Replayed(search_id)) = self.jobs.open(&job).await?;
        info!(case = %r.case_number, round = r.round, search = %search_id, "re-search started");
        Ok(search_id)
    }
}

impl Jobs {
    /// The legs of re-search jobs still waiting to ask their registry (for its rate, its breaker,
    /// or the poller), per registry, with the time the oldest's job opened.
    pub(super) async fn research_legs_waiting(
        &self,
    ) -> Result<std::collections::HashMap<String, (i64, Option<Time>)>, LedgerError> {
        let rows: Vec<(String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT l.registry, COUNT(*), MIN(j.submitted_at) FROM search_legs l \
             JOIN search_jobs j ON j.search_id = l.search_id \
             WHERE l.state = 'asking' AND j.research_round IS NOT NULL GROUP BY l.registry",
        )
        .fetch_all(self.store.pool())
        .await?;
        Ok(rows.into_iter().map(|(registry, n, at)| (registry, (n, at.map(crate::core::clock::from_micros)))).collect())
    }

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
        for asset in found.iter().filter(|a| !seen.contains(*a)) {
            sqlx::query("INSERT INTO research_new (search_id, asset) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(search_id)
                .bind(asset)
                .execute(&mut *conn)
                .await?;
        }
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

/// Says that `r` was not started and why; it is claimed again after its lease.
fn warn_not_started(r: &DueResearch, e: &ResearchError) {
    warn!(error = %e, case = %r.case_number, round = r.round, "a due re-search was not started; claimed again after its lease");
}

/// An asset's identity across searches: its kind and its identity within the kind.
pub fn identity(kind: i64, id: &str) -> String {
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
