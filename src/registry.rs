//! Registry clients: one per configured registry, calling the registry
//! contract over gRPC and checking every answer against it. A call never
//! fails the search; it ends in a [`Failure`] that becomes the registry's status.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;
use tonic::{Code, transport::Channel};
use tower::retry::budget::{Budget, TpsBudget};

use crate::{
    breaker::Breaker,
    config::{Config, RegistryConfig},
    error::StartError,
    ledger::store::{Ack, PendingOrder},
    merge::{self, Reported},
    metrics::Metrics,
    proto::{
        AssetKind, ControlOrder, Debtor, DeductRequest, RegistryKind, RegistryStatus, ReleaseRequest, RenewRequest,
        SearchAssetsRequest, SeizeRequest, registry_service_client::RegistryServiceClient,
    },
};

/// Largest registry answer accepted (a debtor with many thousands of assets).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Writes trace-context headers into gRPC metadata.
struct Metadata<'a>(&'a mut tonic::metadata::MetadataMap);

impl opentelemetry::propagation::Injector for Metadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (key.parse::<tonic::metadata::AsciiMetadataKey>(), value.parse()) {
            self.0.insert(key, value);
        }
    }
}

/// How far back the retry and hedge budgets look.
const BUDGET_WINDOW: Duration = Duration::from_secs(10);
/// Successful calls remembered for the hedging delay.
const LATENCY_WINDOW: usize = 256;
/// Calls seen before hedging starts; too few to know what slow is.
const LATENCY_MIN_SAMPLES: usize = 20;

/// Recent call latencies of one registry, and the hedging delay they give.
#[derive(Debug)]
struct Latencies {
    percentile: f64,
    inner: Mutex<(VecDeque<Duration>, Option<Duration>, u32)>,
}

impl Latencies {
    fn new(percentile: f64) -> Self {
        Self { percentile, inner: Mutex::new((VecDeque::with_capacity(LATENCY_WINDOW), None, 0)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (VecDeque<Duration>, Option<Duration>, u32)> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add(&self, latency: Duration) {
        let mut inner = self.lock();
        if inner.0.len() == LATENCY_WINDOW {
            inner.0.pop_front();
        }
        inner.0.push_back(latency);
        inner.2 += 1;
    }

    /// The configured percentile of recent latencies (recomputed every 16 calls); `None` until enough calls or when off.
    fn hedge_after(&self) -> Option<Duration> {
        if self.percentile <= 0.0 {
            return None;
        }
        let mut inner = self.lock();
        if inner.0.len() < LATENCY_MIN_SAMPLES {
            return None;
        }
        if inner.1.is_none() || inner.2 >= 16 {
            let mut sorted: Vec<Duration> = inner.0.iter().copied().collect();
            sorted.sort_unstable();
            let at = ((sorted.len() as f64 * self.percentile) as usize).min(sorted.len() - 1);
            inner.1 = Some(sorted[at]);
            inner.2 = 0;
        }
        inner.1
    }
}

/// Why a registry's part of a search produced no assets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// No answer within the registry's timeout.
    #[error("no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// Not reachable, or it said it is unavailable.
    #[error("unavailable")]
    Unavailable,
    /// It answered with an error status.
    #[error("answered {0:?}")]
    Error(Code),
    /// Its answer broke the contract.
    #[error("invalid response: {0}")]
    InvalidResponse(String),
    /// Not asked: its circuit breaker is open after repeated failures.
    #[error("not asked: circuit open after repeated failures, next probe in {}", humantime::format_duration(*.0))]
    CircuitOpen(Duration),
}

impl Failure {
    /// The status reported to the court.
    pub fn status(&self) -> RegistryStatus {
        match self {
            Failure::Timeout(_) => RegistryStatus::Timeout,
            Failure::Unavailable | Failure::CircuitOpen(_) => RegistryStatus::Unavailable,
            Failure::Error(_) => RegistryStatus::Error,
            Failure::InvalidResponse(_) => RegistryStatus::InvalidResponse,
        }
    }

    /// Its name in the `outcome` label of registry-call metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Failure::Timeout(_) => "timeout",
            Failure::Unavailable => "unavailable",
            Failure::Error(_) => "error",
            Failure::InvalidResponse(_) => "invalid_response",
            Failure::CircuitOpen(_) => "circuit_open",
        }
    }

    /// Whether it says the registry is unhealthy (counts toward opening its
    /// breaker), rather than that one request was refused.
    pub fn is_unhealthy(&self) -> bool {
        match self {
            Failure::Timeout(_) | Failure::Unavailable | Failure::InvalidResponse(_) => true,
            Failure::Error(code) => {
                matches!(
                    code,
                    Code::Internal | Code::Unknown | Code::ResourceExhausted | Code::DataLoss | Code::Aborted
                )
            }
            Failure::CircuitOpen(_) => false,
        }
    }
}

/// One registry of the network and how to reach it.
#[derive(Debug)]
pub struct Registry {
    /// Unique name.
    pub name: Arc<str>,
    /// Kind of institution.
    pub kind: RegistryKind,
    /// Asset kinds it may report.
    pub asset_kinds: Vec<AssetKind>,
    /// Timeout of one call.
    pub timeout: Duration,
    /// Lifetime of its cached answers.
    pub cache_ttl: Duration,
    breaker: Breaker,
    retries: TpsBudget,
    hedges: TpsBudget,
    latencies: Latencies,
    /// The gateway's metrics.
    pub metrics: Metrics,
    client: RegistryServiceClient<Channel>,
}

/// What the registry is told about the caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The enforcement case number.
    pub case_number: String,
    /// The asking court's code.
    pub court_code: String,
    /// This search's id.
    pub request_id: String,
}

impl Registry {
    /// A client for `cfg`. Connects lazily, so a registry that is down at
    /// start-up is reported per search instead of stopping the gateway.
    pub fn new(cfg: &RegistryConfig, config: &Config, metrics: Metrics) -> Result<Self, StartError> {
        let timeout = cfg.timeout(&config.search);
        let mut channel = Channel::from_shared(cfg.endpoint.clone())
            .map_err(|source| StartError::Endpoint { registry: cfg.name.clone(), source })?
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(config.server.keepalive)
            .keep_alive_timeout(config.server.keepalive / 3);
        if !config.tls.plaintext {
            // The registry must present a certificate for its configured name: an impostor is refused.
            channel = channel.tls_config(config.tls.files().client(&cfg.name)?)?;
        }
        Ok(Self {
            name: cfg.name.as_str().into(),
            kind: cfg.kind,
            asset_kinds: cfg.asset_kinds(),
            timeout,
            cache_ttl: cfg.cache_ttl(&config.cache),
            breaker: Breaker::new(cfg.breaker(&config.search)),
            retries: TpsBudget::new(BUDGET_WINDOW, 1, config.search.retry_budget),
            // No minimum: hedges are pure extra load, only ever a share of the calls.
            hedges: TpsBudget::new(BUDGET_WINDOW, 0, config.search.hedge_budget),
            latencies: Latencies::new(config.search.hedge_percentile),
            metrics,
            client: RegistryServiceClient::new(channel.connect_lazy()).max_decoding_message_size(MAX_ANSWER_BYTES),
        })
    }

    /// Whether it reports any of `kinds` (all kinds when empty).
    pub fn serves(&self, kinds: &[AssetKind]) -> bool {
        kinds.is_empty() || kinds.iter().any(|k| self.asset_kinds.contains(k))
    }

    /// Asks for a debtor's assets through the circuit breaker and checks the answer against the contract.
    pub async fn search(&self, debtor: Debtor, caller: &Caller) -> Result<Vec<Reported>, Failure> {
        let name = &*self.name;
        if let Err(open) = self.breaker.admit() {
            let refused = Failure::CircuitOpen(open.retry_in);
            self.metrics.registry_calls.with_label_values(&[name, refused.name()]).inc();
            return Err(refused);
        }
        let started = Instant::now();
        let deadline = started + self.timeout;
        self.retries.deposit();
        self.hedges.deposit();
        let mut result = self.hedged(&debtor, caller, deadline).await;
        // Searches change nothing, so an unreachable registry is asked once more if time and the budget allow.
        if matches!(result, Err(Failure::Unavailable)) && Instant::now() < deadline && self.retries.withdraw() {
            self.metrics.retries.with_label_values(&[name]).inc();
            result = self.hedged(&debtor, caller, deadline).await;
        }
        self.metrics.registry_seconds.with_label_values(&[name]).observe(started.elapsed().as_secs_f64());
        let outcome = result.as_ref().map_or_else(Failure::name, |_| "ok");
        self.metrics.registry_calls.with_label_values(&[name, outcome]).inc();
        if let Some(state) = self.breaker.record(result.as_ref().map_or_else(|f| !f.is_unhealthy(), |_| true)) {
            tracing::warn!(registry = %self.name, ?state, "circuit breaker changed state");
            self.metrics.breaker_changes.with_label_values(&[name, state.name()]).inc();
        }
        result
    }

    /// One plain attempt within the registry's timeout: no breaker, retry or
    /// hedge. The load generator's baseline of what a search costs.
    pub async fn search_once(&self, debtor: Debtor, caller: &Caller) -> Result<Vec<Reported>, Failure> {
        self.ask(debtor, caller, Instant::now() + self.timeout).await
    }

    /// One attempt, or two when the first is slower than this registry
    /// usually is (and the hedge budget allows): the first success wins.
    async fn hedged(&self, debtor: &Debtor, caller: &Caller, deadline: Instant) -> Result<Vec<Reported>, Failure> {
        let first = self.ask(debtor.clone(), caller, deadline);
        let Some(after) = self.latencies.hedge_after() else { return first.await };
        tokio::pin!(first);
        tokio::select! {
            biased;
            result = &mut first => return result,
            _ = tokio::time::sleep(after) => {}
        }
        if !self.hedges.withdraw() {
            return first.await;
        }
        self.metrics.hedges.with_label_values(&[&self.name]).inc();
        let second = self.ask(debtor.clone(), caller, deadline);
        tokio::pin!(second);
        tokio::select! {
            result = &mut first => match result {
                Ok(assets) => Ok(assets),
                Err(_) => second.await,
            },
            result = &mut second => match result {
                Ok(assets) => Ok(assets),
                Err(_) => first.await,
            },
        }
    }

    async fn ask(&self, debtor: Debtor, caller: &Caller, deadline: Instant) -> Result<Vec<Reported>, Failure> {
        let started = Instant::now();
        let left = deadline.saturating_duration_since(started);
        let mut request = tonic::Request::new(SearchAssetsRequest {
            debtor: Some(debtor),
            case_number: caller.case_number.clone(),
            court_code: caller.court_code.clone(),
            request_id: caller.request_id.clone(),
        });
        // The registry learns the deadline through grpc-timeout; we enforce it ourselves too,
        // because a registry that ignores the header must not hold the search.
        request.set_timeout(left);
        // The search's trace continues at the registry (a no-op unless trace export is configured).
        let context = tracing_opentelemetry::OpenTelemetrySpanExt::context(&tracing::Span::current());
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&context, &mut Metadata(request.metadata_mut()))
        });
        let mut client = self.client.clone();
        let answer = match tokio::time::timeout_at(deadline, client.search_assets(request)).await {
            Err(_) => return Err(Failure::Timeout(self.timeout)),
            Ok(Err(status)) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "registry answered with an error");
                return Err(match status.code() {
                    Code::Unavailable => Failure::Unavailable,
                    // tonic servers answer CANCELLED when the grpc-timeout we sent expires.
                    Code::DeadlineExceeded | Code::Cancelled => Failure::Timeout(self.timeout),
                    code => Failure::Error(code),
                });
            }
            Ok(Ok(response)) => response.into_inner(),
        };
        self.latencies.add(started.elapsed());
        self.check(answer.assets)
    }

    /// Delivers one outbox order; the idempotency key makes redelivery harmless.
    pub async fn deliver(&self, order: &PendingOrder) -> Result<Ack, String> {
        let control = ControlOrder {
            idempotency_key: format!("{}:{}:{}", order.seizure_id, order.kind, order.id),
            court_code: order.court.clone(),
            case_number: order.case_number.clone(),
            asset_kind: order.asset_kind as i32,
            asset_id: order.asset_id.clone(),
            seizure_id: order.seizure_id.clone(),
        };
        let reference = order.registry_ref.clone().unwrap_or_default();
        let end = order.end.map(crate::proto::ts);
        let mut client = self.client.clone();
        let call = async {
            let ack =
                |reference: String, start: Option<prost_types::Timestamp>, end: Option<prost_types::Timestamp>| Ack {
                    reference,
                    start: start.as_ref().map(crate::proto::time_of),
                    end: end.as_ref().map(crate::proto::time_of),
                };
            Ok::<_, tonic::Status>(match order.kind.as_str() {
                "seize" => {
                    let r = client
                        .seize(SeizeRequest { order: Some(control), amount: order.amount, end_time: end })
                        .await?;
                    let r = r.into_inner();
                    ack(r.registry_reference, r.start_time, r.end_time)
                }
                "renew" => {
                    let r = client
                        .renew(RenewRequest { order: Some(control), registry_reference: reference, end_time: end })
                        .await?;
                    let r = r.into_inner();
                    ack(r.registry_reference, r.start_time, r.end_time)
                }
                "release" => {
                    let r =
                        client.release(ReleaseRequest { order: Some(control), registry_reference: reference }).await?;
                    ack(r.into_inner().registry_reference, None, None)
                }
                _ => {
                    let r = client
                        .deduct(DeductRequest {
                            order: Some(control),
                            registry_reference: reference,
                            amount: order.amount,
                        })
                        .await?;
                    ack(r.into_inner().registry_reference, None, None)
                }
            })
        };
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(format!("no answer within {}", humantime::format_duration(self.timeout))),
            Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
            Ok(Ok(ack)) => Ok(ack),
        }
    }

    fn check(&self, assets: Vec<crate::proto::Asset>) -> Result<Vec<Reported>, Failure> {
        assets
            .into_iter()
            .map(|asset| {
                let reported = merge::identify(asset).map_err(Failure::InvalidResponse)?;
                if !self.asset_kinds.contains(&reported.kind) {
                    return Err(Failure::InvalidResponse(format!(
                        "reported a {} asset, which this registry does not declare",
                        reported.kind.short_name()
                    )));
                }
                Ok(reported)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hedging_waits_for_enough_calls_then_uses_the_percentile() {
        let l = Latencies::new(0.9);
        for ms in 1..LATENCY_MIN_SAMPLES as u64 {
            l.add(Duration::from_millis(ms));
        }
        assert_eq!(l.hedge_after(), None, "too few calls to know what slow is");
        for ms in LATENCY_MIN_SAMPLES as u64..=100 {
            l.add(Duration::from_millis(ms));
        }
        assert_eq!(l.hedge_after(), Some(Duration::from_millis(91)));
        assert_eq!(Latencies::new(0.0).hedge_after(), None, "0 turns hedging off");
    }
}
