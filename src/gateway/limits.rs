//! What each court may spend: a request rate, watch-stream slots and a daily
//! search quota, shared by every replica through Redis when they share it and
//! this replica's own otherwise (or while Redis cannot be reached). The rate
//! and the slots are the spine's limits step ([`Limits`] as a
//! [`Step`]); the quota is counted by the search path once a search is valid.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    pin::Pin,
    sync::{Arc, Mutex, RwLock},
    task::{Context, Poll},
    time::Duration,
};

use futures::future::BoxFuture;
use governor::{Quota, RateLimiter, clock::Clock as _, clock::DefaultClock, state::InMemoryState, state::NotKeyed};
use tonic::body::Body;

use crate::{
    core::{
        clock::{SharedClock, Time, beijing_date, beijing_midnight},
        error::Error,
        method::Method,
    },
    gateway::{
        audit::{AuditError, Trail},
        call::{Caller, HttpRequest, HttpResponse, Next, Step, refuse},
    },
    ops::{
        config::{Allowance, LimitsConfig},
        metrics::Metrics,
        shared::{Shared, SharedError},
    },
};

type Bucket = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

/// Every court's rate, stream slots and daily searches.
pub struct Limits {
    limits: LimitsConfig,
    buckets: RwLock<HashMap<String, Arc<Bucket>>>,
    /// Per court: (China Standard Time day, searches that day).
    searches: Mutex<HashMap<String, (chrono::NaiveDate, u64)>>,
    /// Per court: watch streams (WatchEvents, WatchSearch) open on this replica.
    streams: Arc<Mutex<HashMap<String, usize>>>,
    /// Where searches are recorded: what a day's count starts from.
    trail: Trail,
    clock: SharedClock,
    metrics: Metrics,
    /// Rates and quotas every replica shares; when unset or unreachable, this replica's own.
    shared: Option<Shared>,
}

impl Step for Arc<Limits> {
    fn around(&self, method: Method, request: HttpRequest, next: Next) -> BoxFuture<'static, HttpResponse> {
        let limits = self.clone();
        Box::pin(async move {
            let Some(caller) = request.extensions().get::<Caller>().cloned() else { return next(request).await };
            if let Err(e) = limits.throttle(&caller.court).await {
                return refuse(e);
            }
            if !method.is_watch() {
                return next(request).await;
            }
            let slot = match limits.stream_slot(&caller) {
                Ok(slot) => slot,
                Err(e) => return refuse(e),
            };
            // The slot is the stream's as long as its body is being sent.
            next(request).await.map(|body| Body::new(Holding { body, _slot: slot }))
        })
    }
}

impl Limits {
    /// The limits `limits`, counted with `shared` when set.
    pub fn new(
        limits: LimitsConfig,
        trail: Trail,
        clock: SharedClock,
        metrics: Metrics,
        shared: Option<Shared>,
    ) -> Self {
        Self {
            limits,
            buckets: RwLock::default(),
            searches: Mutex::default(),
            streams: Arc::default(),
            trail,
            clock,
            metrics,
            shared,
        }
    }

    /// Redis failed: this replica goes on alone, and says so.
    fn alone(&self, what: &'static str, e: &SharedError) {
        tracing::warn!(error = %e, what, "shared state unreachable; this replica counts on its own");
        self.metrics.shared_fallbacks.with_label_values(&[what]).inc();
    }

    /// One request of the court's rate: shared by every replica when they
    /// share Redis, else this replica's token bucket.
    async fn throttle(&self, court: &str) -> Result<(), Error> {
        let allowance = self.limits.of(court);
        if let Some(shared) = &self.shared {
            match shared.admit(court, allowance.rate, allowance.burst).await {
                Ok(None) => return Ok(()),
                Ok(Some(wait)) => return Err(over_rate(court, allowance, wait)),
                Err(e) => self.alone("rate", &e),
            }
        }
        let existing = self.buckets.read().ok().and_then(|b| b.get(court).cloned());
        let bucket = match existing {
            Some(b) => b,
            None => {
                let quota = Quota::per_second(NonZeroU32::new(allowance.rate).unwrap_or(NonZeroU32::MIN))
                    .allow_burst(NonZeroU32::new(allowance.burst).unwrap_or(NonZeroU32::MIN));
                let mut buckets = self.buckets.write().map_err(|_| Error::Internal("rate lock poisoned".into()))?;
                buckets.entry(court.to_string()).or_insert_with(|| Arc::new(RateLimiter::direct(quota))).clone()
            }
        };
        bucket
            .check()
            .map_err(|not_until| over_rate(court, allowance, not_until.wait_time_from(DefaultClock::default().now())))
    }

    /// Takes one of the court's watch-stream slots, held until the returned
    /// guard drops (the stream ends); RESOURCE_EXHAUSTED when all are taken.
    fn stream_slot(&self, caller: &Caller) -> Result<StreamSlot, Error> {
        let mut open = self.streams.lock().map_err(|_| Error::Internal("stream count lock poisoned".into()))?;
        let n = open.entry(caller.court.clone()).or_insert(0);
        if *n >= self.limits.watch_streams {
            return Err(Error::ResourceExhausted {
                message: format!(
                    "court {} already holds {} watch streams (WatchEvents, WatchSearch) open here; close one \
                     before opening another",
                    caller.court, self.limits.watch_streams
                ),
                retry_after: Duration::from_secs(1),
            });
        }
        *n += 1;
        Ok(StreamSlot { streams: self.streams.clone(), court: caller.court.clone() })
    }

    /// Counts one search against the court's daily quota: exactly across
    /// replicas when they share Redis (seeded from the audit trail, so a Redis
    /// that lost its data undercounts nothing), and while Redis cannot be
    /// reached exactly across replicas in the database; without Redis, on
    /// this replica (seeded from the audit trail).
    pub async fn count_search(&self, caller: &Caller) -> Result<(), Error> {
        self.counted(caller).await?;
        self.metrics.searches.with_label_values(&[&caller.court]).inc();
        Ok(())
    }

    async fn counted(&self, caller: &Caller) -> Result<(), Error> {
        let quota = self.limits.of(&caller.court).daily_searches;
        if quota == 0 {
            return Ok(());
        }
        let now = self.clock.now();
        let today = beijing_date(now);
        if let Some(shared) = &self.shared {
            let key = format!("searches:{}:{today}", caller.court);
            // Two days: the key outlives its day in every time zone, then goes.
            let seed = async || self.searches_today(caller, today).await.map_err(SharedError::seed);
            let counted = match shared.count(&key, quota, Duration::from_secs(2 * 86_400), seed).await {
                Ok(counted) => counted,
                Err(e) => {
                    self.alone("daily_searches", &e);
                    let day = (today, beijing_midnight(today));
                    let counted = self.trail.count_search(&caller.court, day, quota).await;
                    counted.map_err(|e| quota_unreadable(&caller.court, &e))?
                }
            };
            return if counted { Ok(()) } else { Err(quota_used(&caller.court, quota, today, now)) };
        }
        let known = self.searches.lock().ok().and_then(|m| m.get(&caller.court).copied()).filter(|(d, _)| *d == today);
        if known.is_none() {
            // First search today on this replica: start from what every replica has recorded.
            let done = self.searches_today(caller, today).await?;
            if let Ok(mut m) = self.searches.lock() {
                let entry = m.entry(caller.court.clone()).or_insert((today, 0));
                *entry = (today, if entry.0 == today { entry.1.max(done) } else { done });
            }
        }
        let mut m = self.searches.lock().map_err(|_| Error::Internal("search quota lock poisoned".into()))?;
        let entry = m.entry(caller.court.clone()).or_insert((today, 0));
        if entry.1 >= quota {
            return Err(quota_used(&caller.court, quota, today, now));
        }
        entry.1 += 1;
        Ok(())
    }

    /// The court's searches recorded today by every replica (the audit trail).
    async fn searches_today(&self, caller: &Caller, today: chrono::NaiveDate) -> Result<u64, Error> {
        let recorded = self.trail.searches_since(&caller.court, beijing_midnight(today)).await;
        recorded.map_err(|e| quota_unreadable(&caller.court, &e))
    }
}

fn quota_unreadable(court: &str, e: &AuditError) -> Error {
    tracing::error!(error = %e, court, "daily search quota unreadable");
    Error::Unavailable("the daily search quota cannot be checked right now; retry shortly".into())
}

fn quota_used(court: &str, quota: u64, today: chrono::NaiveDate, now: Time) -> Error {
    let renews = beijing_midnight(today + chrono::Days::new(1));
    Error::ResourceExhausted {
        message: format!(
            "court {court} has used its {quota} searches for today; the quota renews at midnight China Standard Time"
        ),
        retry_after: (renews - now).to_std().unwrap_or_default(),
    }
}

fn over_rate(court: &str, allowance: Allowance, retry_after: Duration) -> Error {
    let Allowance { rate, burst, .. } = allowance;
    Error::ResourceExhausted {
        message: format!("court {court} exceeds its rate of {rate} requests/s (burst {burst}); slow down"),
        retry_after,
    }
}

/// One open watch stream of a court; dropping it frees the slot.
struct StreamSlot {
    streams: Arc<Mutex<HashMap<String, usize>>>,
    court: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.streams.lock() {
            if let Some(n) = open.get_mut(&self.court) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

/// A stream's body holding its court's slot until the server drops it.
struct Holding {
    body: Body,
    _slot: StreamSlot,
}

impl http_body::Body for Holding {
    type Data = <Body as http_body::Body>::Data;
    type Error = <Body as http_body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
