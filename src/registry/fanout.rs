//! Fan-out: one leg per (debtor, registry), all started at once and yielded
//! in the order they finish. A leg never fails the search: it ends with the
//! registry's answer or the reason there is none.

use std::{sync::Arc, time::Duration};

use futures::{Stream, stream::FuturesUnordered};
use tokio::time::Instant;
use tracing::{Instrument, Span, info_span};

use crate::{
    core::identifiers::DebtorId,
    core::proto::{AssetKind, Debtor},
    ops::telemetry::spans,
    registry::cache::{Cache, Entry, Lookup, Want},
    registry::{
        call::{Failure, Inquiry},
        client::Registry,
    },
};

/// A validated search, ready to fan out.
#[derive(Debug)]
pub struct Plan {
    /// The debtors, validated, in request order.
    pub debtors: Vec<(DebtorId, Debtor)>,
    /// The registries to ask.
    pub registries: Vec<Arc<Registry>>,
    /// The asset kinds asked for (empty: all).
    pub kinds: Vec<AssetKind>,
    /// Who asks, for the registries.
    pub caller: Arc<Inquiry>,
    /// The oldest acceptable cached answer (`None`: each registry's TTL).
    pub max_age: Option<Duration>,
}

/// How one leg ended.
#[derive(Debug)]
pub struct Leg {
    /// Index of the debtor in the plan.
    pub debtor_index: usize,
    /// The registry asked.
    pub registry: Arc<Registry>,
    /// Its answer, or why there is none.
    pub result: Result<Arc<Entry>, Failure>,
    /// Cache hit, miss or coalesced.
    pub lookup: Lookup,
    /// Time this leg took within the search.
    pub latency: Duration,
}

/// Starts every leg of `plan`; the stream yields each as it finishes.
pub fn fan_out(cache: &Cache, plan: &Arc<Plan>) -> impl Stream<Item = Leg> + Send + 'static {
    let legs = FuturesUnordered::new();
    for debtor_index in 0..plan.debtors.len() {
        for registry in &plan.registries {
            legs.push(leg(cache.clone(), plan.clone(), debtor_index, registry.clone()));
        }
    }
    legs
}

async fn leg(cache: Cache, plan: Arc<Plan>, debtor_index: usize, registry: Arc<Registry>) -> Leg {
    let (id, debtor) = &plan.debtors[debtor_index];
    let span = info_span!(
        spans::REGISTRY_LEG,
        registry = %registry.name,
        registry.kind = registry.kind.short_name(),
        debtor = %id.masked(),
        cache = tracing::field::Empty,
        status = tracing::field::Empty,
        assets = tracing::field::Empty,
    );
    async {
        let started = Instant::now();
        let key = (registry.name.clone(), id.as_str().to_string());
        let tickets = plan.caller.accept_deferred;
        let want = Want { ttl: registry.cache_ttl, max_age: plan.max_age, timeout: registry.timeout, tickets };
        let (result, lookup) = cache
            .get_or_fetch(key, want, || {
                let (registry, debtor, caller) = (registry.clone(), debtor.clone(), plan.caller.clone());
                // The call may outlive this leg (single flight), so it carries the span itself.
                async move { registry.search(debtor, caller).await }.instrument(Span::current())
            })
            .await;
        let latency = started.elapsed();
        let span = Span::current();
        span.record("cache", lookup.name());
        registry.metrics.cache_lookups.with_label_values(&[lookup.name()]).inc();
        match &result {
            Ok(entry) => {
                span.record("status", "ok");
                span.record("assets", entry.assets.len());
            }
            Err(failure) => {
                span.record("status", tracing::field::display(failure));
            }
        }
        tracing::debug!(latency_ms = latency.as_secs_f64() * 1e3, "registry leg done");
        Leg { debtor_index, registry: registry.clone(), result, lookup, latency }
    }
    .instrument(span)
    .await
}
