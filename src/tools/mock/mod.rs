//! Mock registries: real gRPC servers implementing the registry contract with
//! deterministic synthetic data ([`data`]) and injectable latency, errors and
//! downtime, so the gateway can be exercised and load-tested without partners.

pub mod data;
mod deferred;
mod faults;
pub mod fleet;
mod settings;
mod state;

pub use deferred::Deferral;
pub use settings::{FaultCode, Latency, MockConfig};

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::Future;
use prost::Message;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status, service::interceptor::InterceptedService};
use tracing::{Instrument, info, info_span};

use crate::{
    core::clock::{Clock, SystemClock},
    core::identifiers::{self, DebtorId},
    core::proto::{
        self, AssetKind, ControlOrder, DeductRequest, DeductResponse, DescribeRequest, DescribeResponse,
        GetAnswerRequest, GetAnswerResponse, ItemError, RegistryKind, ReleaseRequest, ReleaseResponse, RenewRequest,
        RenewResponse, SearchAssetsBatchItem, SearchAssetsBatchRequest, SearchAssetsBatchResponse, SearchAssetsRequest,
        SearchAssetsResponse, SeizeRequest, SeizeResponse, debtor,
        mock::{
            Faults, GetFaultsRequest, GetFaultsResponse, SetFaultsRequest, SetFaultsResponse,
            mock_admin_service_server::{MockAdminService, MockAdminServiceServer},
        },
        registry_service_server::{RegistryService, RegistryServiceServer},
        search_assets_batch_item as batch_item,
    },
    gateway::{auth, server::StartError},
    ops::{
        net::{BindError, ConnectionLimits, admit, bind},
        pki::TlsFiles,
    },
};

/// The most searches a mock takes in one batch; more is `RESOURCE_EXHAUSTED`.
pub const MAX_BATCH: usize = 1000;

/// One mock registry.
#[derive(Clone)]
pub struct MockRegistry {
    name: String,
    kind: RegistryKind,
    faults: Arc<RwLock<MockConfig>>,
    demo: Arc<[data::DemoDebtor]>,
    calls: Arc<AtomicU64>,
    /// `SearchAssetsBatch` calls received.
    batches: Arc<AtomicU64>,
    /// The W3C `traceparent` of the latest search that carried one.
    traceparent: Arc<Mutex<Option<String>>>,
    control: Arc<Mutex<Control>>,
    tickets: Arc<deferred::Tickets>,
    /// Where its state is kept across restarts, if anywhere.
    kept: Option<Arc<std::path::Path>>,
}

/// The mock's own record of control orders: answers by idempotency key, and
/// the seizures it holds by reference.
#[derive(Default)]
struct Control {
    answers: HashMap<String, Vec<u8>>,
    held: HashMap<String, Held>,
    effects: u64,
}

struct Held {
    start: Option<prost_types::Timestamp>,
    end: Option<prost_types::Timestamp>,
    amount: i64,
    released: bool,
}

fn held<'a>(control: &'a mut Control, reference: &str) -> Result<&'a mut Held, Status> {
    match control.held.get_mut(reference) {
        Some(h) if !h.released => Ok(h),
        Some(_) => Err(Status::failed_precondition(format!("seizure {reference} has been released"))),
        None => Err(Status::not_found(format!("no seizure with reference {reference}"))),
    }
}

fn now() -> Option<prost_types::Timestamp> {
    Some(proto::ts(SystemClock.now()))
}

impl MockRegistry {
    /// A mock named `name` of `kind`, behaving as `settings` say.
    pub fn new(name: &str, kind: RegistryKind, settings: MockConfig) -> Result<Self, toml::de::Error> {
        Ok(Self {
            name: name.to_string(),
            kind,
            demo: data::demo_debtors()?.into(),
            calls: Arc::default(),
            batches: Arc::default(),
            traceparent: Arc::default(),
            control: Arc::default(),
            tickets: Arc::default(),
            faults: Arc::new(RwLock::new(settings)),
            kept: None,
        })
    }

    /// The mock, remembering its tickets, answers and references in `dir` across restarts (and
    /// taking up what it kept there before).
    pub fn kept_in(mut self, dir: &std::path::Path) -> Self {
        let path = state::path(dir, &self.name);
        let saved = state::load(&path);
        let held = saved
            .held
            .into_iter()
            .map(|h| (h.reference, Held { start: h.start, end: h.end, amount: h.amount, released: h.released }));
        let control = Control {
            answers: saved.answers.into_iter().map(|a| (a.key, a.answer)).collect(),
            held: held.collect(),
            effects: saved.effects,
        };
        self.control = Arc::new(Mutex::new(control));
        self.tickets = Arc::new(deferred::Tickets::restored(saved.tickets, saved.issued));
        self.kept = Some(path.into());
        self
    }

    /// Keeps the state where [`MockRegistry::kept_in`] said, after a change.
    async fn keep(&self) {
        let Some(path) = &self.kept else { return };
        let (tickets, issued) = self.tickets.saved();
        let saved = {
            let c = self.lock();
            state::Saved {
                answers: c
                    .answers
                    .iter()
                    .map(|(key, answer)| state::SavedAnswer { key: key.clone(), answer: answer.clone() })
                    .collect(),
                held: c
                    .held
                    .iter()
                    .map(|(reference, h)| state::SavedHeld {
                        reference: reference.clone(),
                        start: h.start,
                        end: h.end,
                        amount: h.amount,
                        released: h.released,
                    })
                    .collect(),
                effects: c.effects,
                tickets,
                issued,
            }
        };
        state::store(path, saved).await;
    }

    /// Takes the registry down (every call `UNAVAILABLE`) or brings it back, at run time.
    pub fn set_down(&self, down: bool) {
        self.faults.write().unwrap_or_else(PoisonError::into_inner).down = down;
    }

    /// Makes every call hang (searches and control orders alike), or lets them through again.
    pub fn set_hang(&self, hang: bool) {
        self.faults.write().unwrap_or_else(PoisonError::into_inner).hang = hang;
    }

    fn current(&self) -> MockConfig {
        self.faults.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Control orders that took effect (repeats of an idempotency key do not count).
    pub fn effects(&self) -> u64 {
        self.lock().effects
    }

    /// The term this registry holds for `reference`: start and end, unset while it waits.
    pub fn term(&self, reference: &str) -> Option<(Option<prost_types::Timestamp>, Option<prost_types::Timestamp>)> {
        self.lock().held.get(reference).map(|h| (h.start, h.end))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What this registry holds for `debtor`, now by its clock, as `settings` shape it (the share of
    /// debtors it holds anything for, padding that makes the answer oversized).
    fn answer(&self, debtor: &str, settings: &MockConfig) -> SearchAssetsResponse {
        let profile = match settings.holders {
            Some(share) if !data::holds(&self.name, debtor, share) => data::Profile::None,
            _ => data::profile_of(debtor, &self.demo),
        };
        let mut assets = data::assets(&self.name, self.kind, debtor, profile);
        if let Some(first) = assets.first_mut().filter(|_| settings.answer_bytes > 0) {
            first.description = "x".repeat(usize::try_from(settings.answer_bytes).unwrap_or(usize::MAX));
        }
        SearchAssetsResponse { assets, as_of: Some(proto::ts(Self::now_by(settings))), deferred: None }
    }

    /// The time by this mock's clock, `clock_behind` behind the real one.
    fn now_by(settings: &MockConfig) -> crate::core::clock::Time {
        SystemClock.now() - chrono::Duration::from_std(settings.clock_behind).unwrap_or_default()
    }

    /// Runs a control order once per idempotency key; a repeat gets the first answer.
    async fn once<T: Message + Default>(
        &self,
        order: Option<&ControlOrder>,
        act: impl FnOnce(&mut Control) -> Result<T, Status>,
    ) -> Result<Response<T>, Status> {
        let order = order.ok_or_else(|| Status::invalid_argument("order is required"))?;
        if order.idempotency_key.is_empty() || order.asset_id.is_empty() {
            return Err(Status::invalid_argument("order.idempotency_key and order.asset_id are required"));
        }
        self.faults().await?;
        let answer = {
            let mut control = self.lock();
            if let Some(answer) = control.answers.get(&order.idempotency_key) {
                return T::decode(answer.as_slice())
                    .map(Response::new)
                    .map_err(|_| Status::invalid_argument("idempotency key reused for a different kind of order"));
            }
            let answer = act(&mut control)?;
            control.answers.insert(order.idempotency_key.clone(), answer.encode_to_vec());
            control.effects += 1;
            answer
        };
        self.keep().await;
        Ok(Response::new(answer))
    }

    /// The trace context of the latest search that carried one (the caller's span, W3C `traceparent`).
    pub fn traceparent(&self) -> Option<String> {
        self.traceparent.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// A counter of searches received (each `SearchAssets` call, each item of a batch), for tests
    /// and reports.
    pub fn calls(&self) -> Arc<AtomicU64> {
        self.calls.clone()
    }

    /// Keeps the W3C `traceparent` a search carried.
    fn note_trace(&self, metadata: &tonic::metadata::MetadataMap) {
        if let Some(parent) = metadata.get("traceparent").and_then(|v| v.to_str().ok()) {
            *self.traceparent.lock().unwrap_or_else(PoisonError::into_inner) = Some(parent.to_string());
        }
    }

    /// A counter of `SearchAssetsBatch` calls received.
    pub fn batches(&self) -> Arc<AtomicU64> {
        self.batches.clone()
    }

    /// One search, as `SearchAssets` and each item of a batch answer it, once its call has waited
    /// with `settings`.
    async fn search(
        &self,
        request: SearchAssetsRequest,
        settings: &MockConfig,
    ) -> Result<SearchAssetsResponse, Status> {
        let debtor = Self::debtor_id(request.debtor.as_ref())?;
        let span = info_span!("mock_search", registry = %self.name, debtor = %debtor.masked());
        async {
            self.failure(settings)?;
            if let (true, Some(deferral)) = (request.accept_deferred, settings.deferred) {
                let deferred = self.tickets.issue(&self.name, debtor.as_str(), deferral, Self::now_by(settings));
                self.keep().await;
                return Ok(SearchAssetsResponse { deferred: Some(deferred), ..Default::default() });
            }
            Ok(self.answer(debtor.as_str(), settings))
        }
        .instrument(span)
        .await
    }

    /// Serves the registry contract, health and reflection on `listener` until
    /// `shutdown` completes; over mutual TLS with `tls`, answering only the gateway.
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: Option<TlsFiles>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let addr = listener.local_addr().ok();
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<RegistryServiceServer<MockRegistry>>().await;
        let (reflection, reflection_alpha) = crate::gateway::server::reflection_services()?;
        let f = self.current();
        info!(registry = %self.name, kind = self.kind.short_name(), ?addr, latency = %f.latency,
              error_rate = f.error_rate, down = f.down, tls = tls.is_some(), "mock registry listening");
        let admin = MockAdminServiceServer::new(Admin { faults: self.faults.clone(), started: self.current() });
        let tls = tls.as_ref().map(TlsFiles::server).transpose()?;
        let incoming = admit(listener, tls, ConnectionLimits::default(), None);
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(InterceptedService::new(admin, auth::gateway_only))
            .add_service(InterceptedService::new(RegistryServiceServer::new(self), auth::gateway_only))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await?;
        Ok(())
    }

    fn debtor_id(debtor: Option<&proto::Debtor>) -> Result<DebtorId, Status> {
        let debtor = debtor.ok_or_else(|| Status::invalid_argument("debtor is required"))?;
        let result = match &debtor.id {
            Some(debtor::Id::ResidentId(id)) => identifiers::parse_resident_id(id),
            Some(debtor::Id::CreditCode(code)) => {
                identifiers::parse_credit_code(code, debtor.accept_unchecked_credit_code)
            }
            None => Err("is required: set resident_id or credit_code".to_string()),
        };
        result.map_err(|e| Status::invalid_argument(format!("debtor identifier {e}")))
    }
}

#[tonic::async_trait]
impl RegistryService for MockRegistry {
    async fn describe(&self, _: Request<DescribeRequest>) -> Result<Response<DescribeResponse>, Status> {
        Ok(Response::new(DescribeResponse {
            name: self.name.clone(),
            kind: self.kind as i32,
            asset_kinds: self.kind.default_asset_kinds().into_iter().map(|k: AssetKind| k as i32).collect(),
            display_name: format!("Mock {} registry {}", self.kind.short_name(), self.name),
            answer_window: self.current().deferred.and_then(|d| prost_types::Duration::try_from(d.window()).ok()),
            search_rate: self.current().search_rate,
        }))
    }

    async fn search_assets(
        &self,
        request: Request<SearchAssetsRequest>,
    ) -> Result<Response<SearchAssetsResponse>, Status> {
        self.note_trace(request.metadata());
        // Counted as it comes, before its wait: a test sees a call under way.
        self.calls.fetch_add(1, Ordering::Relaxed);
        let settings = self.wait().await;
        self.search(request.into_inner(), &settings).await.map(Response::new)
    }

    async fn search_assets_batch(
        &self,
        request: Request<SearchAssetsBatchRequest>,
    ) -> Result<Response<SearchAssetsBatchResponse>, Status> {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.note_trace(request.metadata());
        if self.current().unbatched {
            return Err(Status::unimplemented("this registry takes one search a call (SearchAssets)"));
        }
        let items = request.into_inner().items;
        if items.is_empty() || items.len() > MAX_BATCH {
            let why = format!("a batch holds 1 to {MAX_BATCH} searches, not {}", items.len());
            return Err(if items.is_empty() { Status::invalid_argument(why) } else { Status::resource_exhausted(why) });
        }
        self.calls.fetch_add(items.len() as u64, Ordering::Relaxed);
        let settings = self.wait().await;
        let answers = futures::future::join_all(items.into_iter().map(|item| self.search(item, &settings))).await;
        let items = answers
            .into_iter()
            .map(|answer| SearchAssetsBatchItem {
                outcome: Some(match answer {
                    Ok(answer) => batch_item::Outcome::Answer(answer),
                    Err(status) => batch_item::Outcome::Error(ItemError {
                        code: status.code() as i32,
                        message: status.message().to_string(),
                    }),
                }),
            })
            .collect();
        Ok(Response::new(SearchAssetsBatchResponse { items }))
    }

    async fn get_answer(&self, request: Request<GetAnswerRequest>) -> Result<Response<GetAnswerResponse>, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let ticket = request.into_inner().ticket;
        if ticket.is_empty() {
            return Err(Status::invalid_argument("ticket is empty; pass the one SearchAssets returned"));
        }
        let settings = self.faults().await?;
        let now = Self::now_by(&settings);
        let answer = self.tickets.ask(&ticket, now, |debtor| self.answer(debtor, &settings))?;
        // The first answer behind a ticket is final: kept, so a restart gives the same one.
        if matches!(answer.state, Some(proto::get_answer_response::State::Answer(_))) {
            self.keep().await;
        }
        Ok(Response::new(answer))
    }

    async fn seize(&self, request: Request<SeizeRequest>) -> Result<Response<SeizeResponse>, Status> {
        let r = request.into_inner();
        let name = self.name.clone();
        self.once(r.order.as_ref(), |c| {
            if !r.registry_reference.is_empty() {
                // A seizure that waited takes effect: its term starts now, by this registry's clock.
                let h = held(c, &r.registry_reference)?;
                h.start = h.start.or_else(now);
                h.end = r.end_time;
                h.amount = r.amount;
                let reference = r.registry_reference.clone();
                return Ok(SeizeResponse { registry_reference: reference, start_time: h.start, end_time: h.end });
            }
            let reference = format!("{name}-{:06}", c.held.len() + 1);
            // A waiting seizure has no term here either; an effective one ends when the order says.
            let start = r.end_time.is_some().then(now).flatten();
            c.held.insert(reference.clone(), Held { start, end: r.end_time, amount: r.amount, released: false });
            Ok(SeizeResponse { registry_reference: reference, start_time: start, end_time: r.end_time })
        })
        .await
    }

    async fn renew(&self, request: Request<RenewRequest>) -> Result<Response<RenewResponse>, Status> {
        let r = request.into_inner();
        self.once(r.order.as_ref(), |c| {
            let h = held(c, &r.registry_reference)?;
            h.end = r.end_time;
            h.start = h.start.or_else(now);
            Ok(RenewResponse { registry_reference: r.registry_reference.clone(), start_time: h.start, end_time: h.end })
        })
        .await
    }

    async fn release(&self, request: Request<ReleaseRequest>) -> Result<Response<ReleaseResponse>, Status> {
        let r = request.into_inner();
        self.once(r.order.as_ref(), |c| {
            held(c, &r.registry_reference)?.released = true;
            tracing::info!(reference = %r.registry_reference, reason = %r.reason, "released");
            Ok(ReleaseResponse { registry_reference: r.registry_reference.clone(), released_at: now() })
        })
        .await
    }

    async fn deduct(&self, request: Request<DeductRequest>) -> Result<Response<DeductResponse>, Status> {
        let r = request.into_inner();
        self.once(r.order.as_ref(), |c| {
            let h = held(c, &r.registry_reference)?;
            if r.amount <= 0 || r.amount > h.amount {
                return Err(Status::failed_precondition(format!("cannot deduct {} of {} frozen", r.amount, h.amount)));
            }
            h.amount -= r.amount;
            Ok(DeductResponse {
                registry_reference: r.registry_reference.clone(),
                deducted_at: now(),
                remaining: h.amount,
            })
        })
        .await
    }
}

/// The run-time fault switch of one mock.
/// The admin service: the mock's faults, and those it started with.
struct Admin {
    faults: Arc<RwLock<MockConfig>>,
    started: MockConfig,
}

/// The faults as the admin API shows them.
pub fn faults_proto(f: &MockConfig) -> Faults {
    Faults {
        latency: f.latency.to_string(),
        spike_rate: f.spike_rate,
        spike: prost_types::Duration::try_from(f.spike).ok(),
        error_rate: f.error_rate,
        error_code: f.error_code.as_str().into(),
        hang: f.hang,
        down: f.down,
        deferred: f.deferred.map(|d| d.to_string()).unwrap_or_default(),
        clock_behind: prost_types::Duration::try_from(f.clock_behind).ok(),
        answer_bytes: f.answer_bytes,
    }
}

/// Faults from the admin API, every bad field named.
pub fn faults_from(f: &Faults) -> Result<MockConfig, Status> {
    let mut bad = Vec::new();
    let latency = if f.latency.is_empty() { Ok(Latency::default()) } else { f.latency.parse::<Latency>() };
    let latency = latency.map_err(|e| bad.push(format!("latency: {e}"))).unwrap_or_default();
    let error_code = if f.error_code.is_empty() { Ok(FaultCode::default()) } else { f.error_code.parse::<FaultCode>() };
    let error_code = error_code.map_err(|e| bad.push(format!("error_code: {e}"))).unwrap_or_default();
    let deferred = match f.deferred.as_str() {
        "" => None,
        text => text.parse::<Deferral>().map_err(|e| bad.push(format!("deferred: {e}"))).ok(),
    };
    for (field, rate) in [("spike_rate", f.spike_rate), ("error_rate", f.error_rate)] {
        if !(0.0..=1.0).contains(&rate) {
            bad.push(format!("{field}: {rate} is not between 0.0 and 1.0"));
        }
    }
    let mut duration = |field: &str, d: Option<prost_types::Duration>| match d.map(Duration::try_from) {
        None => Duration::ZERO,
        Some(Ok(d)) => d,
        Some(Err(_)) => {
            bad.push(format!("{field}: must not be negative"));
            Duration::ZERO
        }
    };
    let (spike, clock_behind) = (duration("spike", f.spike), duration("clock_behind", f.clock_behind));
    if !bad.is_empty() {
        return Err(Status::invalid_argument(bad.join("; ")));
    }
    Ok(MockConfig {
        latency,
        spike_rate: f.spike_rate,
        spike,
        error_rate: f.error_rate,
        error_code,
        hang: f.hang,
        down: f.down,
        deferred,
        holders: None,
        clock_behind,
        answer_bytes: f.answer_bytes,
        search_rate: 0,
        unbatched: false,
    })
}

#[tonic::async_trait]
impl MockAdminService for Admin {
    async fn set_faults(&self, request: Request<SetFaultsRequest>) -> Result<Response<SetFaultsResponse>, Status> {
        let request = request.into_inner();
        let mut new = match request.reset {
            true => self.started.clone(),
            false => faults_from(&request.faults.unwrap_or_default())?,
        };
        // Which debtors the registry holds, the rate it declares and whether it takes batches are its
        // data, not faults: they stay.
        let kept = self.faults.read().unwrap_or_else(PoisonError::into_inner).clone();
        (new.holders, new.search_rate, new.unbatched) = (kept.holders, kept.search_rate, kept.unbatched);
        info!(faults = %new, "mock faults changed");
        let faults = faults_proto(&new);
        *self.faults.write().unwrap_or_else(PoisonError::into_inner) = new;
        Ok(Response::new(SetFaultsResponse { faults: Some(faults) }))
    }

    async fn get_faults(&self, _: Request<GetFaultsRequest>) -> Result<Response<GetFaultsResponse>, Status> {
        let f = faults_proto(&self.faults.read().unwrap_or_else(PoisonError::into_inner));
        Ok(Response::new(GetFaultsResponse { faults: Some(f) }))
    }
}

/// Starts `mock` on `addr` in the background; returns the bound address.
pub async fn spawn(
    mock: MockRegistry,
    addr: SocketAddr,
    tls: Option<TlsFiles>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, tokio::task::JoinHandle<Result<(), StartError>>), StartError> {
    let listener = bind(addr).await?;
    let local = listener.local_addr().map_err(|source| BindError { addr, source })?;
    Ok((local, tokio::spawn(mock.serve(listener, tls, shutdown))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_parses_every_form_and_rejects_nonsense() {
        assert_eq!("fixed:5ms".parse::<Latency>().unwrap(), Latency::Fixed(Duration::from_millis(5)));
        assert_eq!(
            "uniform:2ms..20ms".parse::<Latency>().unwrap(),
            Latency::Uniform(Duration::from_millis(2), Duration::from_millis(20))
        );
        assert!(matches!("longtail:10ms..200ms".parse::<Latency>().unwrap(), Latency::LongTail { .. }));
        for bad in ["5ms", "fixed:fast", "uniform:20ms..2ms", "longtail:200ms..10ms", "gauss:1ms"] {
            assert!(bad.parse::<Latency>().is_err(), "{bad}");
        }
    }

    #[test]
    fn long_tail_has_its_median_and_tail() {
        let l: Latency = "longtail:10ms..200ms".parse().unwrap();
        let mut rng = rand::rng();
        let mut v: Vec<Duration> = (0..20_000).map(|_| l.sample(&mut rng)).collect();
        v.sort();
        let (p50, p99) = (v[10_000].as_secs_f64(), v[19_800].as_secs_f64());
        assert!((0.008..0.012).contains(&p50), "p50 {p50}");
        assert!((0.15..0.27).contains(&p99), "p99 {p99}");
    }
}
