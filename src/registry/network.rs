//! The registries of the network as one thing: the directory of them (kept
//! current from its file), their clients and connections, the answer cache
//! they share, and the two ways of asking them — a search plan fanned out to
//! every registry, or one asset looked up for a control order.

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock},
    time::{Duration, SystemTime},
};

use futures::{Stream, StreamExt};

use crate::{
    core::{
        clock::{SharedClock, Time},
        error::Error,
        identifiers::DebtorId,
        merge,
        proto::{AssetKind, Debtor},
    },
    ops::{
        config::{Config, RegistryConfig, directory},
        metrics::Metrics,
        shared::Shared,
    },
    registry::{
        cache::Cache,
        call::{Checked, Inquiry},
        client::{Registry, SetupError},
        fanout::{self, Leg, Plan},
        pool::Pool,
        tier::Tier,
    },
};

/// Every registry of the directory, with the connections to them and the cache of their answers.
pub struct Network {
    roster: RwLock<Arc<Roster>>,
    pool: Pool,
    config: Config,
    metrics: Metrics,
    cache: Cache,
    deadline: Duration,
    /// The gateway's clock, for the windows of registries' tickets and their rates.
    clock: SharedClock,
    /// The replicas' shared state, where their scheduled searches keep each registry's rate together.
    shared: Option<Shared>,
}

/// The enabled registries as the directory lists them now, in its order.
#[derive(Default)]
struct Roster {
    registries: Vec<Arc<Registry>>,
    by_name: HashMap<Arc<str>, (RegistryConfig, Arc<Registry>)>,
}

/// What applying a directory changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectoryChange {
    /// Registries new to the gateway (or enabled again).
    pub added: usize,
    /// Registries no longer listed, or disabled.
    pub removed: usize,
    /// Registries whose entry changed (endpoint, CA, settings): their connection is made anew.
    pub changed: usize,
    /// Enabled registries now.
    pub registries: usize,
}

/// An asset found for a control order, and the registry that reported it.
#[derive(Debug, Clone)]
pub struct Found {
    /// The asset.
    pub asset: merge::Reported,
    /// The registry to send orders to.
    pub registry: Arc<str>,
    /// When the registry reported it (the cached answer's time).
    pub reported_at: Time,
}

impl Network {
    /// A client for every registry of the configuration and its directory file (each connected on
    /// first use), and the cache of their answers in front of the replicas' shared `tier`, if any.
    pub fn new(config: &Config, metrics: &Metrics, clock: SharedClock, tier: Option<Tier>) -> Result<Self, SetupError> {
        let registries = directory::registries(config)?;
        let network = Self {
            roster: RwLock::default(),
            pool: Pool::new(config, metrics)?,
            config: config.clone(),
            metrics: metrics.clone(),
            shared: tier.as_ref().map(|t| t.shared().clone()),
            cache: Cache::new(config.cache.max_entries, clock.clone(), tier),
            clock,
            deadline: config.search.deadline,
        };
        network.apply(&registries)?;
        Ok(network)
    }

    /// Makes `registries` the network: new ones join, those gone or disabled leave, changed
    /// ones are made anew (a new connection on their next call); the unchanged keep their
    /// breaker and latency history. A search under way keeps the registries it started with.
    pub fn apply(&self, registries: &[RegistryConfig]) -> Result<DirectoryChange, SetupError> {
        let old = self.roster();
        let mut next = Roster::default();
        let mut change = DirectoryChange::default();
        for cfg in registries.iter().filter(|r| !r.disabled) {
            let registry = match old.by_name.get(cfg.name.as_str()) {
                Some((was, registry)) if was == cfg => registry.clone(),
                found => {
                    match found {
                        Some(_) => {
                            change.changed += 1;
                            self.pool.close(&cfg.name);
                        }
                        None => change.added += 1,
                    }
                    let (clock, shared) = (self.clock.clone(), self.shared.clone());
                    Arc::new(Registry::new(cfg, &self.config, &self.pool, self.metrics.clone(), (clock, shared))?)
                }
            };
            next.registries.push(registry.clone());
            next.by_name.insert(registry.name.clone(), (cfg.clone(), registry));
        }
        for name in old.by_name.keys().filter(|n| !next.by_name.contains_key(*n)) {
            change.removed += 1;
            self.pool.close(name);
        }
        change.registries = next.registries.len();
        self.metrics.directory_registries.set(i64::try_from(change.registries).unwrap_or(i64::MAX));
        *self.roster.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        Ok(change)
    }

    /// Reads the directory file (`network.directory`) every `network.reload_every` and applies
    /// it when it changed, until `shutdown`. A file with problems is refused whole, logged with
    /// every problem, and the registries stay as they were.
    pub async fn follow_directory(&self, shutdown: impl Future<Output = ()>) {
        let Some(path) = self.config.network.directory.clone() else { return shutdown.await };
        let mut seen = tokio::fs::read(&path).await.ok();
        let mut tick = tokio::time::interval(self.config.network.reload_every);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tick.tick() => {}
            }
            let now = tokio::fs::read(&path).await.ok();
            if now == seen {
                continue;
            }
            seen = now;
            let applied = directory::registries(&self.config).map_err(SetupError::from).and_then(|r| self.apply(&r));
            let result = if applied.is_ok() { "applied" } else { "refused" };
            self.metrics.directory_reloads.with_label_values(&[result]).inc();
            match applied {
                Ok(c) => tracing::info!(
                    file = %path.display(), added = c.added, removed = c.removed, changed = c.changed,
                    registries = c.registries, "registry directory applied"
                ),
                Err(e) => {
                    tracing::error!(file = %path.display(), "registry directory refused, the last good one stays: {e}")
                }
            }
        }
    }

    fn roster(&self) -> Arc<Roster> {
        self.roster.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The registries now.
    pub fn registries(&self) -> Vec<Arc<Registry>> {
        self.roster().registries.clone()
    }

    /// The registry named `name`, if it is enabled now.
    pub fn registry(&self, name: &str) -> Option<Arc<Registry>> {
        self.roster().by_name.get(name).map(|(_, r)| r.clone())
    }

    /// Connections to registries open now.
    pub fn open_connections(&self) -> u64 {
        self.pool.open()
    }

    /// Caches an answer `registry` gave later (by ticket) for `debtor`, as if it had answered at once.
    pub async fn remember(&self, registry: &Registry, debtor: &DebtorId, answer: Checked, fetched_at: SystemTime) {
        let key = (registry.name.clone(), debtor.as_str().to_string());
        self.cache.put(key, registry.cache_ttl, answer, fetched_at).await;
    }

    /// Forgets `registry`'s ticket for `debtor`: the search settled without an answer, so a later
    /// search asks it again instead of joining the ticket.
    pub fn forget_ticket(&self, registry: &str, debtor: &DebtorId) {
        self.cache.forget_ticket(&(registry.into(), debtor.as_str().to_string()));
    }

    /// The registries that report any of `kinds` (all when empty).
    pub fn serving(&self, kinds: &[AssetKind]) -> Vec<Arc<Registry>> {
        self.roster().registries.iter().filter(|r| r.serves(kinds)).cloned().collect()
    }

    /// Starts every leg of `plan` through the cache; yields each as it finishes.
    pub fn fan_out(&self, plan: &Arc<Plan>) -> impl Stream<Item = Leg> + Send + 'static {
        fanout::fan_out(&self.cache, plan)
    }

    /// Finds one asset of a debtor at the registries that report its kind
    /// (through the cache), for a control order: what is seized must be what a
    /// registry reports. Prefers the registry of the asset's own kind (the
    /// depository over a bank for fund units).
    pub async fn find(
        &self,
        inquiry: Inquiry,
        debtor: &(DebtorId, Debtor),
        kind: AssetKind,
        asset_id: &str,
        registry: &str,
    ) -> Result<Found, Error> {
        let mut registries = self.serving(&[kind]);
        registries.retain(|r| registry.is_empty() || &*r.name == registry);
        if registries.is_empty() {
            return Err(Error::NotFound(format!(
                "no registry {registry} of this gateway reports {} assets",
                kind.short_name()
            )));
        }
        let plan = Arc::new(Plan {
            debtors: vec![debtor.clone()],
            registries,
            kinds: vec![kind],
            caller: Arc::new(inquiry),
            max_age: None,
        });
        let mut legs: Vec<Leg> = tokio::time::timeout(self.deadline, fanout::fan_out(&self.cache, &plan).collect())
            .await
            .map_err(|_| Error::DeadlineExceeded(self.deadline, None))?;
        let home = |r: &Registry| r.kind.default_asset_kinds().first().is_none_or(|k| *k != kind);
        legs.sort_by(|a, b| (home(&a.registry), &a.registry.name).cmp(&(home(&b.registry), &b.registry.name)));
        let wanted = merge::normalise(asset_id);
        for leg in &legs {
            if let Ok(entry) = &leg.result {
                if let Some(asset) = entry.assets.iter().find(|a| a.kind == kind && a.id == wanted) {
                    let reported_at = Time::from(entry.fetched_at);
                    return Ok(Found { asset: asset.clone(), registry: leg.registry.name.clone(), reported_at });
                }
            }
        }
        let unreachable: Vec<_> =
            legs.iter().filter(|l| l.result.is_err()).map(|l| l.registry.name.to_string()).collect();
        if unreachable.is_empty() {
            Err(Error::NotFound(format!(
                "no registry reports {} asset {wanted} for this debtor; search the debtor again for current assets",
                kind.short_name()
            )))
        } else {
            Err(Error::Unavailable(format!(
                "{} could not be asked about {} asset {wanted}; retry shortly",
                unreachable.join(", "),
                kind.short_name()
            )))
        }
    }
}
