//! The cache of registry answers, keyed by (registry, debtor), with single
//! flight. Entries live for their registry's TTL and the cache is bounded by
//! entry count (moka evicts the least used). Concurrent misses for one key make
//! exactly one registry call: the call runs in its own task, so it completes
//! and fills the cache even if every caller that wanted it has gone.
//! Failures are handed to the callers waiting at the time and never stored.
//! With replicas sharing Redis, a miss asks their shared tier
//! ([`crate::registry::tier`]) before the registry.
//!
//! A registry that answers later gives a ticket; until its window ends (or
//! the answer comes) a search of the same debtor joins that ticket instead of
//! opening another.
//!
//! Freshness is judged with tokio's clock, so tests can pause and advance time.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};

use crate::{
    core::{clock::SharedClock, merge::Reported},
    registry::{
        call::{Checked, Failure, Ticket},
        tier::Tier,
    },
};

/// The cache key: registry name and normalised debtor identifier.
pub type CacheKey = (Arc<str>, String);

/// What a caller takes from the cache.
#[derive(Debug, Clone, Copy)]
pub struct Want {
    /// The registry's answer lifetime.
    pub ttl: Duration,
    /// The oldest answer the caller takes (`None`: the TTL's).
    pub max_age: Option<Duration>,
    /// The registry's timeout: the most a call may take.
    pub timeout: Duration,
    /// Whether the caller takes a ticket (a search job) instead of an answer now.
    pub tickets: bool,
}

/// One registry answer as cached.
#[derive(Debug)]
pub struct Entry {
    /// The assets.
    pub assets: Arc<[Reported]>,
    /// Why some of the registry's records were dropped, if any were.
    pub dropped: Option<Arc<str>>,
    /// Wall-clock time of the fetch, reported to courts.
    pub fetched_at: SystemTime,
    /// What is left of the registry's TTL when cached: how long the cache keeps it in memory.
    ttl: Duration,
    from_tier: bool,
}

impl Entry {
    /// An answer fetched at `fetched_at`, cached at `now` for what is left of `ttl`: an answer
    /// fetched earlier (by another replica, or late by ticket) is as old here as there.
    fn new(checked: Checked, fetched_at: SystemTime, now: SystemTime, ttl: Duration, from_tier: bool) -> Arc<Entry> {
        let age = now.duration_since(fetched_at).unwrap_or_default();
        let (assets, dropped) = (checked.assets.into(), checked.dropped.map(Arc::from));
        Arc::new(Entry { assets, dropped, fetched_at, ttl: ttl.saturating_sub(age), from_tier })
    }
}

/// How an answer was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// From the cache, no registry call.
    Hit,
    /// This caller started the registry call.
    Miss,
    /// Joined a registry call another caller had started.
    Coalesced,
    /// From the replicas' shared tier: another replica asked the registry.
    Shared,
}

impl Lookup {
    /// The name in metrics: `hit`, `miss` or `coalesced`.
    pub fn name(self) -> &'static str {
        match self {
            Lookup::Hit => "hit",
            Lookup::Miss => "miss",
            Lookup::Coalesced => "coalesced",
            Lookup::Shared => "shared",
        }
    }

    /// Whether no registry was asked for this caller's answer.
    pub fn cached(self) -> bool {
        matches!(self, Lookup::Hit | Lookup::Shared)
    }
}

type Flight = Shared<BoxFuture<'static, Result<Arc<Entry>, Failure>>>;

/// The answer cache.
#[derive(Clone)]
pub struct Cache {
    entries: moka::future::Cache<CacheKey, Arc<Entry>>,
    /// Open tickets, until their window ends.
    tickets: moka::sync::Cache<CacheKey, Ticket>,
    flights: Arc<Mutex<HashMap<CacheKey, Flight>>>,
    clock: SharedClock,
    tier: Option<Arc<Tier>>,
}

struct EntryTtl;

impl moka::Expiry<CacheKey, Arc<Entry>> for EntryTtl {
    fn expire_after_create(&self, _: &CacheKey, entry: &Arc<Entry>, _: std::time::Instant) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// A ticket is joined until its window ends, by the gateway's clock.
struct TicketWindow(SharedClock);

impl moka::Expiry<CacheKey, Ticket> for TicketWindow {
    fn expire_after_create(&self, _: &CacheKey, t: &Ticket, _: std::time::Instant) -> Option<Duration> {
        Some((t.answer_by - self.0.now()).to_std().unwrap_or_default())
    }
}

impl Cache {
    /// A cache holding at most `max_entries` answers, stamped with `clock`'s
    /// time, in front of the replicas' shared `tier` if there is one.
    pub fn new(max_entries: u64, clock: SharedClock, tier: Option<Tier>) -> Self {
        Self {
            entries: moka::future::Cache::builder().max_capacity(max_entries).expire_after(EntryTtl).build(),
            tickets: moka::sync::Cache::builder()
                .max_capacity(max_entries)
                .expire_after(TicketWindow(clock.clone()))
                .build(),
            flights: Arc::default(),
            clock,
            tier: tier.map(Arc::new),
        }
    }

    /// The cached answer for `key` if it is younger than both `ttl` and
    /// `max_age`, or (when the caller takes `tickets`) an open ticket for it;
    /// otherwise the answer of one shared call of `fetch` (which takes at most
    /// `timeout`), cached for `ttl` when it succeeds.
    pub async fn get_or_fetch<F>(
        &self,
        key: CacheKey,
        Want { ttl, max_age, timeout, tickets }: Want,
        fetch: impl FnOnce() -> F,
    ) -> (Result<Arc<Entry>, Failure>, Lookup)
    where
        F: Future<Output = Result<Checked, Failure>> + Send + 'static,
    {
        let limit = max_age.map_or(ttl, |m| m.min(ttl));
        if !limit.is_zero() {
            if let Some(entry) = self.entries.get(&key).await {
                // Fresh by the gateway's clock, like everything else it times; the cache's own
                // eviction (the TTL, on its clock) only bounds how long an entry is kept.
                let age = SystemTime::from(self.clock.now()).duration_since(entry.fetched_at).unwrap_or_default();
                if age <= limit {
                    return (Ok(entry), Lookup::Hit);
                }
            }
        }
        if !limit.is_zero() && tickets {
            if let Some(ticket) = self.tickets.get(&key).filter(|t| t.answer_by > self.clock.now()) {
                return (Err(Failure::Deferred(ticket)), Lookup::Coalesced);
            }
        }
        let (flight, lookup) = {
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            match flights.get(&key) {
                Some(flight) => (flight.clone(), Lookup::Coalesced),
                None => {
                    let flight = self.start(key.clone(), (ttl, limit, timeout), fetch());
                    flights.insert(key, flight.clone());
                    (flight, Lookup::Miss)
                }
            }
        };
        let result = flight.await;
        let shared = lookup == Lookup::Miss && result.as_ref().is_ok_and(|e| e.from_tier);
        (result, if shared { Lookup::Shared } else { lookup })
    }

    /// Caches an answer obtained outside a search (a late answer, by ticket), fetched at `fetched_at`.
    pub async fn put(&self, key: CacheKey, ttl: Duration, answer: Checked, fetched_at: SystemTime) {
        let now = SystemTime::from(self.clock.now());
        self.tickets.invalidate(&key);
        self.entries.insert(key, Entry::new(answer, fetched_at, now, ttl, false)).await;
    }

    /// Forgets `key`'s ticket: its search settled without an answer (failed, or its window ended).
    pub fn forget_ticket(&self, key: &CacheKey) {
        self.tickets.invalidate(key);
    }

    fn start<F>(&self, key: CacheKey, (ttl, limit, timeout): (Duration, Duration, Duration), fetch: F) -> Flight
    where
        F: Future<Output = Result<Checked, Failure>> + Send + 'static,
    {
        let this = self.clone();
        let task = tokio::spawn(async move {
            let _landing = Landing { flights: this.flights.clone(), key: key.clone() };
            let now = SystemTime::from(this.clock.now());
            let result = match &this.tier {
                Some(tier) => tier.through((&key.0, &key.1), (ttl, limit, timeout), now, fetch).await,
                None => fetch.await.map(|checked| ((checked, now), false)),
            };
            let result =
                result.map(|((checked, fetched_at), from_tier)| Entry::new(checked, fetched_at, now, ttl, from_tier));
            match &result {
                Ok(entry) => this.entries.insert(key.clone(), entry.clone()).await,
                Err(Failure::Deferred(ticket)) => this.tickets.insert(key.clone(), ticket.clone()),
                Err(_) => {}
            }
            result
        });
        // A panicking fetch is reported like a registry error rather than poisoning the waiters.
        task.map(|joined| joined.unwrap_or(Err(Failure::Error(tonic::Code::Internal)))).boxed().shared()
    }
}

/// Takes a flight off the map when its task ends, however it ends: a fetch that panics too, so
/// that the next caller asks the registry again instead of being handed that panic for ever.
struct Landing {
    flights: Arc<Mutex<HashMap<CacheKey, Flight>>>,
    key: CacheKey,
}

impl Drop for Landing {
    fn drop(&mut self) {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn want(ttl: Duration, max_age: Option<Duration>) -> Want {
        Want { ttl, max_age, timeout: Duration::from_secs(3), tickets: false }
    }

    fn key() -> CacheKey {
        ("bank".into(), "110105199001011232".into())
    }

    fn counting(
        calls: &Arc<AtomicUsize>,
        result: Result<Checked, Failure>,
    ) -> impl FnOnce() -> BoxFuture<'static, Result<Checked, Failure>> {
        let calls = calls.clone();
        move || {
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                result
            }
            .boxed()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_misses_make_one_call_and_later_ones_hit() {
        let cache = Cache::new(100, Arc::new(crate::core::clock::SystemClock), None);
        let calls = Arc::new(AtomicUsize::new(0));
        let ttl = Duration::from_secs(30);
        let lookups = futures::future::join_all(
            (0..100).map(|_| cache.get_or_fetch(key(), want(ttl, None), counting(&calls, Ok(Checked::default())))),
        )
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(lookups.iter().filter(|(_, l)| *l == Lookup::Miss).count(), 1);
        assert_eq!(lookups.iter().filter(|(_, l)| *l == Lookup::Coalesced).count(), 99);
        let (_, l) = cache.get_or_fetch(key(), want(ttl, None), counting(&calls, Ok(Checked::default()))).await;
        assert_eq!(l, Lookup::Hit);
    }

    #[tokio::test]
    async fn entries_expire_after_their_ttl_and_max_age_forces_a_fetch() {
        use crate::core::clock::{Clock, ManualClock, SystemClock};
        let clock = Arc::new(ManualClock::new(SystemClock.now()));
        let cache = Cache::new(100, clock.clone(), None);
        let calls = Arc::new(AtomicUsize::new(0));
        let ttl = Duration::from_secs(30);
        cache.get_or_fetch(key(), want(ttl, None), counting(&calls, Ok(Checked::default()))).await.0.unwrap();
        clock.advance(chrono::Duration::seconds(10));
        assert_eq!(
            cache.get_or_fetch(key(), want(ttl, None), counting(&calls, Ok(Checked::default()))).await.1,
            Lookup::Hit
        );
        let fresh = cache
            .get_or_fetch(key(), want(ttl, Some(Duration::from_secs(5))), counting(&calls, Ok(Checked::default())))
            .await;
        assert_eq!(fresh.1, Lookup::Miss);
        assert_eq!(
            cache
                .get_or_fetch(key(), want(ttl, Some(Duration::ZERO)), counting(&calls, Ok(Checked::default())))
                .await
                .1,
            Lookup::Miss
        );
        clock.advance(chrono::Duration::seconds(31));
        assert_eq!(
            cache.get_or_fetch(key(), want(ttl, None), counting(&calls, Ok(Checked::default()))).await.1,
            Lookup::Miss
        );
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    fn defect() -> Result<Checked, Failure> {
        panic!("a defect in a registry client")
    }

    #[tokio::test(start_paused = true)]
    async fn a_fetch_that_panics_fails_its_callers_and_the_next_caller_asks_again() {
        let cache = Cache::new(100, Arc::new(crate::core::clock::SystemClock), None);
        let calls = Arc::new(AtomicUsize::new(0));
        let ttl = Duration::from_secs(30);
        let panicking = {
            let calls = calls.clone();
            move || {
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    defect()
                }
                .boxed()
            }
        };
        let (r, _) = cache.get_or_fetch(key(), want(ttl, None), panicking).await;
        assert_eq!(r.unwrap_err(), Failure::Error(tonic::Code::Internal));
        let (r, l) = cache.get_or_fetch(key(), want(ttl, None), counting(&calls, Ok(Checked::default()))).await;
        assert!(r.is_ok(), "{r:?}");
        assert_eq!((l, calls.load(Ordering::SeqCst)), (Lookup::Miss, 2), "the registry is asked again");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_never_cached() {
        let cache = Cache::new(100, Arc::new(crate::core::clock::SystemClock), None);
        let calls = Arc::new(AtomicUsize::new(0));
        let ttl = Duration::from_secs(30);
        for _ in 0..3 {
            let (r, l) = cache.get_or_fetch(key(), want(ttl, None), counting(&calls, Err(Failure::Unavailable))).await;
            assert_eq!((r.unwrap_err(), l), (Failure::Unavailable, Lookup::Miss));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_fetch_completes_and_fills_the_cache_when_its_caller_leaves() {
        let cache = Cache::new(100, Arc::new(crate::core::clock::SystemClock), None);
        let calls = Arc::new(AtomicUsize::new(0));
        let ttl = Duration::from_secs(30);
        let first = cache.get_or_fetch(key(), want(ttl, None), counting(&calls, Ok(Checked::default())));
        // The caller gives up long before the registry answers.
        assert!(tokio::time::timeout(Duration::from_millis(1), first).await.is_err());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (r, l) = cache.get_or_fetch(key(), want(ttl, None), counting(&calls, Ok(Checked::default()))).await;
        assert!(r.is_ok());
        assert_eq!((l, calls.load(Ordering::SeqCst)), (Lookup::Hit, 1));
    }
}
