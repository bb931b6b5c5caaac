//! Search jobs: a search whose registries have not all answered within the
//! court's call is kept in the ledger's database until every registry has
//! settled (answered, failed, or its answer window ended), so that late
//! answers reach the court across restarts and replicas.
//!
//! - [`store`]: the rows (jobs, their debtors, one leg per registry and debtor).
//! - [`poll`]: the worker that asks registries again when a leg is due,
//!   scheduled from the database (no timer or task per pending ticket);
//!   replicas share the legs through leases.
//! - [`research`]: the worker that opens the jobs of terminated cases'
//!   re-searches as they fall due (R30).
//!
//! A debtor is kept as the audit trail keeps it (masked, and a keyed hash);
//! the identifier itself only sealed (ChaCha20-Poly1305 under a key derived
//! from the audit key), and only until the search settles: a leg whose call
//! was cut short by a crash must be asked again.

pub mod poll;
pub mod research;
mod store;

use std::{sync::Arc, time::SystemTime};

use prost::Message;
use tokio::sync::broadcast;

use crate::{
    core::{
        clock::Time,
        identifiers::DebtorId,
        merge::{Answer, Reported},
        proto::{AssetKind, Debtor, RegistryOutcome, RegistryStatus, ts},
    },
    gateway::audit::Key,
    ledger::store::Store,
    ops::seal::Sealer,
    registry::{
        call::{self, Failure, Ticket},
        fanout::Leg,
    },
};

pub use store::{Claimed, Head, JobView, Summary, Update};

/// Settled searches' ids kept for slow watchers; one that falls further behind reads again.
const CHANGES: usize = 4096;

/// The least time between two asks of one ticket, whatever its registry says (the floor
/// `docs/PARTNERS.md` promises).
pub const MIN_GAP: std::time::Duration = std::time::Duration::from_millis(250);

/// `d` after `t`.
pub fn after(t: Time, d: std::time::Duration) -> Time {
    t + chrono::Duration::from_std(d).unwrap_or_default()
}

/// Where a leg stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegState {
    /// A call is under way (held by a lease).
    Asking,
    /// The registry gave a ticket; asked again at `next_ask`.
    Pending,
    /// The registry answered.
    Answered,
    /// The registry's part ended without an answer.
    Failed,
    /// The answer window ended first.
    Expired,
}

impl LegState {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LegState::Asking => "asking",
            LegState::Pending => "pending",
            LegState::Answered => "answered",
            LegState::Failed => "failed",
            LegState::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Option<LegState> {
        Some(match s {
            "asking" => LegState::Asking,
            "pending" => LegState::Pending,
            "answered" => LegState::Answered,
            "failed" => LegState::Failed,
            "expired" => LegState::Expired,
            _ => return None,
        })
    }

    /// Whether the leg is over.
    pub fn settled(self) -> bool {
        !matches!(self, LegState::Asking | LegState::Pending)
    }
}

/// One registry's part for one debtor, as stored.
#[derive(Debug, Clone)]
pub struct LegRow {
    /// The debtor's position in the query.
    pub debtor_index: usize,
    /// The registry's name.
    pub registry: String,
    /// Its kind (`RegistryKind`).
    pub kind: i32,
    /// Where it stands.
    pub state: LegState,
    /// The registry's ticket, while pending.
    pub ticket: Option<String>,
    /// When to ask next (pending), or when the current call's lease ends (asking).
    pub next_ask: Time,
    /// The end of the registry's answer window, once it gave a ticket.
    pub answer_by: Option<Time>,
    /// The reported status once settled (`RegistryStatus`).
    pub status: i32,
    /// Why, when not OK.
    pub message: String,
    /// The checked answer ([`call::encode`]), once answered.
    pub answer: Option<Vec<u8>>,
    /// Its place in the order the search's legs settled.
    pub seq: Option<i64>,
    /// The end of the answer window as the registry stated it with its ticket.
    pub stated_by: Option<Time>,
}

impl LegRow {
    /// A leg whose call is under way until `until`.
    pub fn asking(debtor_index: usize, registry: &str, kind: i32, until: Time) -> LegRow {
        LegRow {
            debtor_index,
            registry: registry.to_string(),
            kind,
            state: LegState::Asking,
            ticket: None,
            next_ask: until,
            answer_by: None,
            status: RegistryStatus::Pending as i32,
            message: String::new(),
            answer: None,
            seq: None,
            stated_by: None,
        }
    }

    /// How a finished fan-out leg stands at `now`.
    pub fn of(leg: &Leg, now: Time) -> LegRow {
        let mut row = LegRow::asking(leg.debtor_index, &leg.registry.name, leg.registry.kind as i32, now);
        row.settle(leg.result.as_ref().map(|e| (&*e.assets, e.dropped.as_deref(), e.fetched_at)), now);
        row
    }

    /// Records the outcome of a call made at `now`: an answer (its records, why any were dropped,
    /// when fetched), a ticket, or why there is none.
    pub fn settle(&mut self, result: Result<(&[Reported], Option<&str>, SystemTime), &Failure>, now: Time) {
        match result {
            Ok((assets, dropped, fetched_at)) => {
                self.state = LegState::Answered;
                self.answer = Some(call::encode(assets, dropped, fetched_at));
                self.status = match dropped {
                    Some(_) => RegistryStatus::InvalidResponse as i32,
                    None => RegistryStatus::Ok as i32,
                };
                self.message = dropped.map(str::to_string).unwrap_or_default();
            }
            Err(Failure::Deferred(t)) => self.defer(t, now),
            Err(failure) => self.fail(failure.status(), failure.to_string()),
        }
        self.ticket = self.ticket.take().filter(|_| self.state == LegState::Pending);
    }

    /// A ticket: asked again at its `ask_after`, never sooner than [`MIN_GAP`] from `now` (a
    /// registry's clock may run behind ours, or it may send no time at all) and never after its
    /// window's end, where the leg expires. A pending reply to a poll keeps the window the
    /// first ticket set: the contract fixes it.
    pub fn defer(&mut self, t: &Ticket, now: Time) {
        let answer_by = self.answer_by.filter(|_| self.state == LegState::Pending).unwrap_or(t.answer_by);
        self.state = LegState::Pending;
        self.ticket = Some(t.ticket.clone());
        self.next_ask = t.ask_after.max(after(now, MIN_GAP)).min(answer_by.max(now));
        self.answer_by = Some(answer_by);
        self.stated_by = self.stated_by.or(Some(t.stated_by));
        self.status = RegistryStatus::Pending as i32;
        self.message = format!("answers later; asked again after {}", self.next_ask.format("%Y-%m-%d %H:%M:%S UTC"));
    }

    /// Why a pending reply to a poll breaks the contract: it names another ticket, or moves the
    /// end of the window the first ticket stated.
    pub fn breach(&self, t: &Ticket) -> Option<String> {
        if self.ticket.as_deref() != Some(t.ticket.as_str()) {
            return Some("its pending reply named another ticket; the contract keeps one ticket per search".into());
        }
        let stated = self.stated_by?;
        (t.stated_by != stated).then(|| {
            format!(
                "its pending reply moved the end of the answer window from {} to {}; the contract fixes it",
                stated.format("%Y-%m-%d %H:%M:%S UTC"),
                t.stated_by.format("%Y-%m-%d %H:%M:%S UTC")
            )
        })
    }

    /// The registry's part ended without an answer.
    pub fn fail(&mut self, status: RegistryStatus, message: String) {
        self.state = LegState::Failed;
        self.status = status as i32;
        self.message = message;
    }

    /// The window ended without an answer.
    pub fn expire(&mut self) {
        self.state = LegState::Expired;
        self.ticket = None;
        self.status = RegistryStatus::Expired as i32;
        self.message = "its answer window ended without an answer".into();
    }

    /// The registry's outcome as the court sees it, and its answer narrowed to `kinds`.
    pub fn outcome(&self, kinds: &[AssetKind]) -> (RegistryOutcome, Option<Answer>) {
        let answer = self.answer.as_deref().and_then(call::decode).map(|(checked, fetched_at)| Answer {
            registry: self.registry.as_str().into(),
            fetched_at,
            assets: checked.assets.into_iter().filter(|r| kinds.is_empty() || kinds.contains(&r.kind)).collect(),
        });
        let pending = self.state == LegState::Pending;
        let outcome = RegistryOutcome {
            registry: self.registry.clone(),
            kind: self.kind,
            status: self.status,
            message: self.message.clone(),
            latency: None,
            asset_count: answer.as_ref().map_or(0, |a| u32::try_from(a.assets.len()).unwrap_or(u32::MAX)),
            from_cache: false,
            fetched_at: answer.as_ref().map(|a| a.fetched_at.into()),
            next_ask: pending.then(|| ts(self.next_ask)),
            answer_by: self.answer_by.filter(|_| pending).map(ts),
        };
        (outcome, answer)
    }
}

/// A search to keep.
#[derive(Debug)]
pub struct NewJob {
    /// Its id.
    pub search_id: String,
    /// The court that owns it.
    pub court: String,
    /// The court's id of the submission ('' for a Search call).
    pub request_id: String,
    /// Hash of the query, so that a reused request id must repeat it.
    pub digest: String,
    /// The case, normalised.
    pub case_number: String,
    /// The asked asset kinds (empty: all).
    pub kinds: Vec<AssetKind>,
    /// The debtors, in query order.
    pub debtors: Vec<(DebtorId, Debtor)>,
    /// Every leg.
    pub legs: Vec<LegRow>,
    /// When it was submitted.
    pub now: Time,
    /// The round of the terminated case's re-search it carries out (R30), if it does.
    pub research_round: Option<i64>,
}

/// What opening a job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// Stored anew.
    New(String),
    /// The court's request id had already opened this search.
    Replayed(String),
}

/// The jobs, over the ledger's database.
#[derive(Clone)]
pub struct Jobs {
    store: Store,
    seal: Arc<Sealer>,
    key: Key,
    changed: broadcast::Sender<Arc<str>>,
}

impl Jobs {
    /// The jobs in `store`'s database; debtors sealed and hashed under `key`.
    pub fn new(store: Store, key: Key) -> Jobs {
        let seal = Sealer::new(key.derive("search job seal"));
        let (changed, _) = broadcast::channel(CHANGES);
        Jobs { store, seal: Arc::new(seal), key, changed }
    }

    /// The database's clock.
    pub fn now(&self) -> Time {
        self.store.now()
    }

    /// The ids of searches whose legs this replica settles, as it settles them (other replicas'
    /// are found by reading again now and then).
    pub fn changes(&self) -> broadcast::Receiver<Arc<str>> {
        self.changed.subscribe()
    }

    /// Debtor `index` of search `search_id`, sealed for that place (hex).
    fn sealed(&self, search_id: &str, index: usize, debtor: &Debtor) -> Option<String> {
        let place = format!("{search_id}\n{index}");
        self.seal.seal(place.as_bytes(), &debtor.encode_to_vec()).map(hex::encode)
    }

    fn unsealed(&self, search_id: &str, index: usize, sealed: &str) -> Option<Debtor> {
        let place = format!("{search_id}\n{index}");
        let plain = self.seal.open(place.as_bytes(), &hex::decode(sealed).ok()?)?;
        Debtor::decode(plain.as_slice()).ok()
    }
}
