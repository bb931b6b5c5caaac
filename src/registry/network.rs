//! The registries of the network as one thing: the clients, the answer cache
//! they share, and the two ways of asking them — a search plan fanned out to
//! every registry, or one asset looked up for a control order.

use std::{
    sync::Arc,
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
    ops::{config::Config, metrics::Metrics},
    registry::{
        cache::Cache,
        call::{Checked, Inquiry},
        client::{Registry, SetupError},
        fanout::{self, Leg, Plan},
        tier::Tier,
    },
};

/// Every configured registry, with the cache of their answers.
pub struct Network {
    registries: Vec<Arc<Registry>>,
    cache: Cache,
    deadline: Duration,
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
    /// A client for every configured registry (connected lazily), and the
    /// cache of their answers in front of the replicas' shared `tier`, if any.
    pub fn new(config: &Config, metrics: &Metrics, clock: SharedClock, tier: Option<Tier>) -> Result<Self, SetupError> {
        let registries = config
            .registries
            .iter()
            .map(|r| Registry::new(r, config, metrics.clone()).map(Arc::new))
            .collect::<Result<_, _>>()?;
        let cache = Cache::new(config.cache.max_entries, clock, tier);
        Ok(Self { registries, cache, deadline: config.search.deadline })
    }

    /// The registries.
    pub fn registries(&self) -> &[Arc<Registry>] {
        &self.registries
    }

    /// The registry named `name`.
    pub fn registry(&self, name: &str) -> Option<Arc<Registry>> {
        self.registries.iter().find(|r| &*r.name == name).cloned()
    }

    /// Caches an answer `registry` gave later (by ticket) for `debtor`, as if it had answered at once.
    pub async fn remember(&self, registry: &Registry, debtor: &DebtorId, answer: Checked, fetched_at: SystemTime) {
        let key = (registry.name.clone(), debtor.as_str().to_string());
        self.cache.put(key, registry.cache_ttl, answer, fetched_at).await;
    }

    /// The registries that report any of `kinds` (all when empty).
    pub fn serving(&self, kinds: &[AssetKind]) -> Vec<Arc<Registry>> {
        self.registries.iter().filter(|r| r.serves(kinds)).cloned().collect()
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
