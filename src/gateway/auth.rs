//! Who is calling and what they may do. The court comes from its client
//! certificate (see [`crate::ops::pki`]), the acting officer from the
//! `x-officer-id` metadata; a court acts only for its own enforcement cases,
//! or for a case designated to it, and never for a case designated away from
//! it (R15, R10, R12). Each court has its own request rate and daily search
//! quota. [`Gate::handle`] runs every court-facing call through identity,
//! rate limit, the handler and the audit trail, in that order.

use std::{
    collections::HashMap,
    future::Future,
    num::NonZeroU32,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use governor::{Quota, RateLimiter, clock::Clock as _, clock::DefaultClock, state::InMemoryState, state::NotKeyed};
use serde_json::Value;
use tonic::{Code, Request, Response, Status, metadata::MetadataMap};

use crate::{
    core::{
        clock::{SharedClock, beijing_date, beijing_midnight},
        error::{Error, MESSAGE_CHARS, QUOTE_CHARS, bounded},
        identifiers::{self, CaseNumber, DebtorId},
    },
    gateway::audit::{AuditError, Record, Trail},
    ledger::{
        model::Model,
        rules::{self, Action},
        store::Store,
    },
    ops::{
        config::LimitsConfig,
        metrics::Metrics,
        net::Peer,
        pki::Role,
        shared::{Shared, SharedError},
    },
};

/// Metadata naming the acting enforcement officer.
pub const OFFICER_HEADER: &str = "x-officer-id";
/// Metadata naming the court (UTF-8, binary metadata since court codes are
/// not ASCII), honoured only by a gateway running plaintext.
pub const COURT_HEADER: &str = "x-court-code-bin";

/// An authenticated caller.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// Court code, e.g. `京0105`.
    pub court: String,
    /// The acting officer's id.
    pub officer: String,
}

/// What the handler learnt that the audit record needs.
#[derive(Clone, Default)]
pub struct Note(Arc<Mutex<Facts>>);

#[derive(Default)]
struct Facts {
    case: String,
    debtors: Vec<DebtorId>,
    detail: Value,
    request_id: String,
}

impl Note {
    fn with(&self, f: impl FnOnce(&mut Facts)) {
        if let Ok(mut facts) = self.0.lock() {
            f(&mut facts);
        }
    }

    /// The case the request names (normal form when it parsed).
    pub fn case(&self, case: impl Into<String>) {
        // Kept for years: a bad case number is recorded in part, as the reply quotes it.
        let case = bounded(&case.into(), 2 * QUOTE_CHARS);
        self.with(|f| f.case = case);
    }

    /// The debtors the request names.
    pub fn debtors(&self, debtors: impl IntoIterator<Item = DebtorId>) {
        let debtors = debtors.into_iter().collect();
        self.with(|f| f.debtors = debtors);
    }

    /// A control step's request id, kept in the record's detail.
    pub fn request_id(&self, id: &str) {
        let id = id.chars().take(128).collect();
        self.with(|f| f.request_id = id);
    }

    /// Registries asked and outcomes, or an order's target.
    pub fn detail(&self, mut detail: Value) {
        bound_strings(&mut detail);
        self.with(|f| f.detail = detail);
    }

    /// The audit record of a call that ended with `result`.
    pub fn record(&self, caller: &Caller, method: &str, result: Result<(), &Error>) -> Record {
        let mut facts = self.0.lock().map(|mut f| std::mem::take(&mut *f)).unwrap_or_default();
        if !facts.request_id.is_empty() {
            if !facts.detail.is_object() {
                facts.detail = Value::Object(Default::default());
            }
            facts.detail["request_id"] = Value::String(facts.request_id);
        }
        Record {
            court: caller.court.clone(),
            officer: caller.officer.clone(),
            method: method.into(),
            case_number: facts.case,
            debtors: facts.debtors,
            detail: facts.detail,
            code: Some(result.map_or_else(Error::code, |()| Code::Ok)),
            message: result.err().map(|e| bounded(&e.to_string(), MESSAGE_CHARS)).unwrap_or_default(),
        }
    }
}

/// One open WatchEvents stream of a court; dropping it frees the slot.
pub struct StreamSlot {
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

/// Cuts every string in an audit detail to what a reply would quote of it.
fn bound_strings(v: &mut Value) {
    match v {
        // Bytes first: a string no longer in bytes than the bound is within it in characters.
        Value::String(s) if s.len() > 4 * QUOTE_CHARS && s.chars().count() > 4 * QUOTE_CHARS => {
            *s = bounded(s, 4 * QUOTE_CHARS)
        }
        Value::Array(items) => items.iter_mut().for_each(bound_strings),
        Value::Object(fields) => fields.values_mut().for_each(bound_strings),
        _ => {}
    }
}

type Bucket = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

/// Identity, authorization, limits and the audit trail around every call.
pub struct Gate {
    plaintext: bool,
    limits: LimitsConfig,
    buckets: RwLock<HashMap<String, Arc<Bucket>>>,
    /// Per court: (China Standard Time day, searches that day).
    searches: Mutex<HashMap<String, (chrono::NaiveDate, u64)>>,
    /// Per court: watch streams (WatchEvents, WatchSearch) open on this replica.
    streams: Arc<Mutex<HashMap<String, usize>>>,
    trail: Trail,
    ledger: Store,
    clock: SharedClock,
    metrics: Metrics,
    /// Rates and quotas every replica shares; when unset or unreachable, this replica's own.
    shared: Option<Shared>,
    /// The ledger in memory, for what a search reads.
    model: Arc<Model>,
}

impl Gate {
    /// The gate; `plaintext` takes court identities on trust from metadata.
    pub fn new(
        plaintext: bool,
        limits: LimitsConfig,
        trail: Trail,
        ledger: Store,
        metrics: Metrics,
        shared: Option<Shared>,
        model: Arc<Model>,
    ) -> Self {
        let clock = ledger.clock();
        Self {
            plaintext,
            limits,
            buckets: RwLock::default(),
            searches: Mutex::default(),
            streams: Arc::default(),
            trail,
            ledger,
            clock,
            metrics,
            shared,
            model,
        }
    }

    /// The ledger in memory, as searches read it.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Redis failed: this replica goes on alone, and says so.
    fn alone(&self, what: &'static str, e: &SharedError) {
        tracing::warn!(error = %e, what, "shared state unreachable; this replica counts on its own");
        self.metrics.shared_fallbacks.with_label_values(&[what]).inc();
    }

    /// The gateway's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The audit trail.
    pub fn trail(&self) -> &Trail {
        &self.trail
    }

    /// Runs one court-facing call: identify → rate limit → `body` → audit
    /// record → reply. The record is committed before the reply leaves;
    /// if it cannot be, the call fails with `UNAVAILABLE`.
    pub async fn handle<Req, T, F, Fut>(
        &self,
        method: &'static str,
        request: Request<Req>,
        body: F,
    ) -> Result<Response<T>, Status>
    where
        F: FnOnce(Caller, MetadataMap, Req, Note) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let started = tokio::time::Instant::now();
        let court = self.court(&request);
        let named = court.as_ref().map(Clone::clone).unwrap_or_default();
        let identified = court.and_then(|court| Self::officer_of(court, request.metadata()));
        let (metadata, _, message) = request.into_parts();
        let note = Note::default();
        let (caller, result) = match identified {
            Ok(caller) => {
                let result = match self.throttle(&caller.court).await {
                    Ok(()) => body(caller.clone(), metadata, message, note.clone()).await,
                    Err(e) => Err(e),
                };
                (caller, result)
            }
            // The court, when its certificate named one, is logged and recorded even so.
            Err(e) => (Caller { court: named, officer: officer(&metadata).unwrap_or_default() }, Err(e)),
        };
        if let Err(e) = &result {
            tracing::info!(method, court = %caller.court, code = ?e.code(), "refused: {e}");
        }
        let recorded =
            self.trail.record(note.record(&caller, method, result.as_ref().map(|_| ()))).await.map_err(Error::from);
        let result = recorded.and(result);
        self.metrics.request(method, result.as_ref().map_or_else(Error::code, |_| Code::Ok), started.elapsed());
        result.map(Response::new).map_err(Status::from)
    }

    /// The caller's court: from its certificate (from metadata on a plaintext gateway).
    fn court<T>(&self, request: &Request<T>) -> Result<String, Error> {
        Ok(if self.plaintext {
            tracing::warn!("plaintext gateway: the court identity below is taken on trust from metadata");
            let code = request.metadata().get_bin(COURT_HEADER).and_then(|v| v.to_bytes().ok()).ok_or_else(|| {
                Error::Unauthenticated(format!("this plaintext gateway needs the court code in `{COURT_HEADER}`"))
            })?;
            identifiers::parse_court_code(&String::from_utf8_lossy(&code)).map_err(Error::Unauthenticated)?
        } else {
            let holder = Peer::holder(request).ok_or_else(|| {
                Error::Unauthenticated("no client certificate; connect over mutual TLS with the court's".into())
            })?;
            match holder.as_ref().clone().map_err(Error::Unauthenticated)? {
                Role::Court(code) => code,
                other => {
                    return Err(Error::PermissionDenied(format!(
                        "the certificate is the {other}'s; only courts call this service (R15)"
                    )));
                }
            }
        })
    }

    /// The court's caller: the acting officer named in metadata.
    fn officer_of(court: String, metadata: &MetadataMap) -> Result<Caller, Error> {
        let officer = officer(metadata).ok_or_else(|| {
            Error::Unauthenticated(format!(
                "name the acting enforcement officer in `{OFFICER_HEADER}` metadata (1 to 64 letters, digits, `-` or `_`)"
            ))
        })?;
        Ok(Caller { court, officer })
    }

    /// May `caller` act on `case` (R15, R10, R12)? The gate gathers the facts; the rule decides.
    /// A look is decided from the read model; a step from the database (which its transaction checks again).
    pub async fn authorize(&self, caller: &Caller, case: &CaseNumber, action: Action) -> Result<(), Error> {
        let designated = match action {
            Action::Query => self.model.designated_to(&case.to_string()),
            Action::Control => self.ledger.designated_to(&case.to_string()).await?,
        };
        rules::authority(&caller.court, case, designated.as_deref(), action)
            .map_err(|e| Error::PermissionDenied(e.to_string()))
    }

    /// Takes one of the court's WatchEvents stream slots, held until the
    /// returned guard drops (the stream ends); RESOURCE_EXHAUSTED when all
    /// are taken.
    pub fn stream_slot(&self, caller: &Caller) -> Result<StreamSlot, Error> {
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
        let (_, _, quota) = self.limits.of(&caller.court);
        if quota == 0 {
            return Ok(());
        }
        let now = self.clock.now();
        let today = beijing_date(now);
        if let Some(shared) = &self.shared {
            let key = format!("searches:{}:{today}", caller.court);
            // Two days: the key outlives its day in every time zone, then goes.
            let seed = async || self.searches_today(caller, today).await.map_err(|e| SharedError(e.to_string()));
            let counted = match shared.count(&key, quota, Duration::from_secs(2 * 86_400), seed).await {
                Ok(counted) => counted,
                Err(e) => {
                    self.alone("daily_searches", &e);
                    let day = (today, beijing_midnight(today));
                    let counted = self.trail.count_search(&caller.court, day, quota).await;
                    counted.map_err(|e| Self::quota_unreadable(&caller.court, &e))?
                }
            };
            return if counted { Ok(()) } else { Err(Self::quota_used(&caller.court, quota, today, now)) };
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
            return Err(Self::quota_used(&caller.court, quota, today, now));
        }
        entry.1 += 1;
        Ok(())
    }

    /// The court's searches recorded today by every replica (the audit trail).
    async fn searches_today(&self, caller: &Caller, today: chrono::NaiveDate) -> Result<u64, Error> {
        let recorded = self.trail.searches_since(&caller.court, beijing_midnight(today)).await;
        recorded.map_err(|e| Self::quota_unreadable(&caller.court, &e))
    }

    fn quota_unreadable(court: &str, e: &AuditError) -> Error {
        tracing::error!(error = %e, court, "daily search quota unreadable");
        Error::Unavailable("the daily search quota cannot be checked right now; retry shortly".into())
    }

    fn quota_used(court: &str, quota: u64, today: chrono::NaiveDate, now: crate::core::clock::Time) -> Error {
        let renews = beijing_midnight(today + chrono::Days::new(1));
        Error::ResourceExhausted {
            message: format!(
                "court {court} has used its {quota} searches for today; the quota renews at midnight China Standard Time"
            ),
            retry_after: (renews - now).to_std().unwrap_or_default(),
        }
    }

    /// One request of the court's rate: shared by every replica when they
    /// share Redis, else this replica's token bucket.
    async fn throttle(&self, court: &str) -> Result<(), Error> {
        if let Some(shared) = &self.shared {
            let (rate, burst, _) = self.limits.of(court);
            match shared.admit(court, rate, burst).await {
                Ok(None) => return Ok(()),
                Ok(Some(wait)) => return Err(Self::over_rate(court, rate, burst, wait)),
                Err(e) => self.alone("rate", &e),
            }
        }
        let existing = self.buckets.read().ok().and_then(|b| b.get(court).cloned());
        let bucket = match existing {
            Some(b) => b,
            None => {
                let (rate, burst, _) = self.limits.of(court);
                let quota = Quota::per_second(NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN))
                    .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
                let mut buckets = self.buckets.write().map_err(|_| Error::Internal("rate lock poisoned".into()))?;
                buckets.entry(court.to_string()).or_insert_with(|| Arc::new(RateLimiter::direct(quota))).clone()
            }
        };
        bucket.check().map_err(|not_until| {
            let (rate, burst, _) = self.limits.of(court);
            Self::over_rate(court, rate, burst, not_until.wait_time_from(DefaultClock::default().now()))
        })
    }

    fn over_rate(court: &str, rate: u32, burst: u32, retry_after: Duration) -> Error {
        Error::ResourceExhausted {
            message: format!("court {court} exceeds its rate of {rate} requests/s (burst {burst}); slow down"),
            retry_after,
        }
    }
}

/// A registry's interceptor: over mutual TLS only the gateway may call it
/// (a court's certificate is from the same CA, but courts go through the gateway).
pub fn gateway_only(request: Request<()>) -> Result<Request<()>, Status> {
    let Some(holder) = Peer::holder(&request) else { return Ok(request) };
    match holder.as_ref() {
        Ok(Role::Gateway) => Ok(request),
        Ok(other) => Err(Status::permission_denied(format!("this registry answers only the gateway, not the {other}"))),
        Err(e) => Err(Status::unauthenticated(e.clone())),
    }
}

/// The officer id from metadata, if well formed.
fn officer(metadata: &MetadataMap) -> Option<String> {
    let v = metadata.get(OFFICER_HEADER)?.to_str().ok()?.trim();
    let ok = (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| v.to_string())
}
