//! The ledger as searches read it, in memory: the ledger of every asset with a
//! live seizure and every case's designation, kept current from the gap-free
//! event stream, so that a search authorizes (R12, R15) and shows seizures
//! without a database read. An asset whose seizures have all ended shows as
//! one never seized, so it is not kept: the model grows with what is seized
//! now, not with the ledger's history. Decisions that change the ledger still
//! read and lock the database.
//!
//! A refresh reads the events after the last one applied and reloads the
//! ledgers they touched (all of them after a bankruptcy decision), and the
//! designations when one was added. It runs on this
//! replica's own commits before they are acknowledged (so a court's next
//! search sees its own step), on every other replica's commits (PostgreSQL
//! `LISTEN assetgw_ledger`; a reconnect catches up by sequence), and once a
//! second regardless. Lapses due since are applied when a ledger is read (R6).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use tokio::sync::Mutex;

use crate::ledger::{
    LedgerError, asset_key,
    rules::Ledger,
    store::{Backend, CHANNEL, Store},
};

/// Events read per round of a refresh.
const ROUND: i64 = 1000;

#[derive(Default)]
struct Snapshot {
    /// The last event applied.
    seq: i64,
    /// Assets with a live seizure (as stored; lapses due are applied on reading).
    ledgers: HashMap<String, Ledger>,
    /// Designated case → the court it was designated to.
    designations: HashMap<String, String>,
}

impl Snapshot {
    /// The designations' count as loaded (they are only ever added).
    fn designations_known(&self) -> i64 {
        i64::try_from(self.designations.len()).unwrap_or(i64::MAX)
    }
}

/// The read model; cheap to share.
pub struct Model {
    store: Store,
    state: RwLock<Snapshot>,
    refreshing: Mutex<()>,
}

impl Model {
    /// Loads every asset's ledger and every designation.
    pub async fn load(store: Store) -> Result<Arc<Self>, LedgerError> {
        let seq = store.last_event().await?;
        // Only what is seized now: start-up does not read the ledger's history.
        let keys = store.live_asset_keys().await?;
        let ledgers = store.ledgers(&keys).await?;
        let ledgers = keys.into_iter().zip(ledgers).collect();
        let designations = store.designations().await?;
        let state = Snapshot { seq, ledgers, designations };
        Ok(Arc::new(Self { store, state: RwLock::new(state), refreshing: Mutex::new(()) }))
    }

    /// Applies every change committed before this call: the events after the
    /// last applied (their assets' ledgers are reloaded) and the designations.
    pub async fn refresh(&self) -> Result<(), LedgerError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let mut seq = self.read(|s| s.seq);
        let (mut keys, mut decided) = (Vec::new(), false);
        loop {
            let events = self.store.events_after(seq, ROUND).await?;
            let Some(last) = events.last() else { break };
            seq = last.sequence;
            keys.extend(events.iter().filter_map(|e| e.asset.as_ref().map(|a| asset_key(a.kind(), &a.asset_id))));
            decided |= events.iter().any(|e| !e.decision_reference.is_empty());
            if (events.len() as i64) < ROUND {
                break;
            }
        }
        if decided {
            // A decision on a debtor's bankruptcy changes how its assets' ledgers settle (R25) without
            // an event of its own on them: every ledger held is read again (decisions are rare).
            keys.extend(self.read(|s| s.ledgers.keys().cloned().collect::<Vec<_>>()));
        }
        keys.sort();
        keys.dedup();
        let ledgers = self.store.ledgers(&keys).await?;
        // Designations are only added: reloaded only when there are more than were loaded.
        let designations = match self.store.designation_count().await? == self.read(Snapshot::designations_known) {
            true => None,
            false => Some(self.store.designations().await?),
        };
        let mut state = self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (key, ledger) in keys.into_iter().zip(ledgers) {
            match live(&ledger) {
                true => state.ledgers.insert(key, ledger),
                false => state.ledgers.remove(&key),
            };
        }
        if let Some(designations) = designations {
            state.designations = designations;
        }
        state.seq = seq;
        Ok(())
    }

    /// How many assets' ledgers the model holds (those with a live seizure).
    pub fn assets_held(&self) -> usize {
        self.read(|s| s.ledgers.len())
    }

    /// The court `case` was designated to, if it was (R10, R12).
    pub fn designated_to(&self, case: &str) -> Option<String> {
        self.read(|s| s.designations.get(case).cloned())
    }

    /// The ledger of each of `keys` with a live seizure, as of now (lapses due applied, R6).
    pub fn ledgers(&self, keys: &[String]) -> Vec<Option<Ledger>> {
        let mut found: Vec<Option<Ledger>> = self.read(|s| keys.iter().map(|k| s.ledgers.get(k).cloned()).collect());
        if found.iter().any(Option::is_some) {
            let (now, terms) = (self.store.now(), self.store.terms());
            for ledger in found.iter_mut().flatten() {
                ledger.settle(now, &terms);
            }
        }
        found
    }

    fn read<T>(&self, f: impl FnOnce(&Snapshot) -> T) -> T {
        f(&self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Keeps the model current until `stop` completes: on this replica's
    /// commits, on every replica's (PostgreSQL), and once a second.
    pub async fn follow(self: Arc<Self>, url: String, stop: impl Future<Output = ()>) {
        let committed = self.store.committed();
        let mut listener = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tokio::pin!(stop);
        loop {
            if self.store.backend() == Backend::Postgres && listener.is_none() {
                listener = listen(&url).await;
            }
            let heard = async {
                match listener.as_mut() {
                    Some(l) => l.recv().await.is_ok(),
                    None => futures::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut stop => return,
                () = committed.notified() => {}
                ok = heard => if !ok {
                    // The next round listens again; the refresh catches up on what was missed.
                    listener = None;
                },
                _ = tick.tick() => {}
            }
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "the read model could not be refreshed; searches see it as it was");
            }
        }
    }
}

async fn listen(url: &str) -> Option<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await.ok()?;
    listener.listen(CHANNEL).await.ok()?;
    Some(listener)
}

/// Whether a ledger has a seizure that is still live as stored.
fn live(ledger: &Ledger) -> bool {
    ledger.queue().next().is_some()
}
