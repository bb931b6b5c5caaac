//! Mock registries: real gRPC servers implementing the registry contract with
//! deterministic synthetic data ([`data`]) and injectable latency, errors and
//! downtime, so the gateway can be exercised and load-tested without partners.

pub mod data;

use std::{
    fmt,
    net::SocketAddr,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::Future;
use rand::Rng;
use rand_distr::{Distribution, LogNormal};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};
use tracing::{Instrument, info, info_span};

use crate::{
    config::MockConfig,
    error::StartError,
    identifiers::{self, DebtorId},
    proto::{
        self, AssetKind, DescribeRequest, DescribeResponse, RegistryKind, SearchAssetsRequest, SearchAssetsResponse,
        debtor,
        registry_service_server::{RegistryService, RegistryServiceServer},
    },
};

/// How long a mock takes to answer.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum Latency {
    /// Always the same.
    Fixed(Duration),
    /// Uniform between two bounds.
    Uniform(Duration, Duration),
    /// Log-normal with this median and 99th percentile: most calls are quick, a few very slow.
    LongTail {
        /// Median latency.
        median: Duration,
        /// 99th-percentile latency.
        p99: Duration,
    },
}

impl Default for Latency {
    fn default() -> Self {
        Latency::Fixed(Duration::ZERO)
    }
}

impl Latency {
    /// Draws one latency.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        match *self {
            Latency::Fixed(d) => d,
            Latency::Uniform(lo, hi) => rng.random_range(lo..=hi),
            Latency::LongTail { median, p99 } => {
                // z(0.99) ≈ 2.326 standard deviations separate the median from p99.
                let sigma = (p99.as_secs_f64() / median.as_secs_f64()).ln() / 2.326;
                LogNormal::new(median.as_secs_f64().ln(), sigma)
                    .map(|d| Duration::from_secs_f64(d.sample(rng).min(3600.0)))
                    .unwrap_or(median)
            }
        }
    }
}

impl FromStr for Latency {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let dur = |v: &str| humantime::parse_duration(v.trim()).map_err(|e| format!("`{v}`: {e}"));
        let range = |v: &str| {
            let (a, b) = v.split_once("..").ok_or_else(|| format!("`{v}` is not a range like 2ms..20ms"))?;
            let (a, b) = (dur(a)?, dur(b)?);
            if a > b { Err(format!("`{v}`: the lower bound is above the upper")) } else { Ok((a, b)) }
        };
        match s.split_once(':') {
            Some(("fixed", v)) => Ok(Latency::Fixed(dur(v)?)),
            Some(("uniform", v)) => range(v).map(|(a, b)| Latency::Uniform(a, b)),
            Some(("longtail", v)) => match range(v)? {
                (m, p) if !m.is_zero() && p > m => Ok(Latency::LongTail { median: m, p99: p }),
                _ => Err(format!("`{v}`: a long tail needs 0 < median < p99")),
            },
            _ => Err(format!("`{s}` is not a latency; use fixed:5ms, uniform:2ms..20ms or longtail:10ms..200ms")),
        }
    }
}

impl TryFrom<String> for Latency {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = humantime::format_duration;
        match *self {
            Latency::Fixed(d) => write!(f, "fixed:{}", h(d)),
            Latency::Uniform(a, b) => write!(f, "uniform:{}..{}", h(a), h(b)),
            Latency::LongTail { median, p99 } => write!(f, "longtail:{}..{}", h(median), h(p99)),
        }
    }
}

/// One mock registry.
#[derive(Clone)]
pub struct MockRegistry {
    name: String,
    kind: RegistryKind,
    settings: MockConfig,
    demo: Arc<[data::DemoDebtor]>,
    calls: Arc<AtomicU64>,
}

impl MockRegistry {
    /// A mock named `name` of `kind`, behaving as `settings` say.
    pub fn new(name: &str, kind: RegistryKind, settings: MockConfig) -> Result<Self, StartError> {
        Ok(Self { name: name.to_string(), kind, settings, demo: data::demo_debtors()?.into(), calls: Arc::default() })
    }

    /// A counter of `SearchAssets` calls received, for tests and reports.
    pub fn calls(&self) -> Arc<AtomicU64> {
        self.calls.clone()
    }

    /// Serves the registry contract, health and reflection on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let addr = listener.local_addr().ok();
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<RegistryServiceServer<MockRegistry>>().await;
        let (reflection, reflection_alpha) = crate::server::reflection_services()?;
        info!(registry = %self.name, kind = self.kind.short_name(), ?addr, latency = %self.settings.latency,
              error_rate = self.settings.error_rate, down = self.settings.down, "mock registry listening");
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(RegistryServiceServer::new(self))
            .serve_with_incoming_shutdown(crate::server::incoming(listener), shutdown)
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
        }))
    }

    async fn search_assets(
        &self,
        request: Request<SearchAssetsRequest>,
    ) -> Result<Response<SearchAssetsResponse>, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let request = request.into_inner();
        let debtor = Self::debtor_id(request.debtor.as_ref())?;
        let span = info_span!("mock_search", registry = %self.name, debtor = %debtor.masked());
        async {
            let (delay, fail) = {
                let mut rng = rand::rng();
                (self.settings.latency.sample(&mut rng), rng.random_bool(self.settings.error_rate.clamp(0.0, 1.0)))
            };
            tokio::time::sleep(delay).await;
            if self.settings.down {
                return Err(Status::unavailable(format!("{} is down for maintenance", self.name)));
            }
            if fail {
                return Err(Status::new(self.settings.error_code.into(), format!("{} injected fault", self.name)));
            }
            let profile = data::profile_of(debtor.as_str(), &self.demo);
            let assets = data::assets(&self.name, self.kind, debtor.as_str(), profile);
            Ok(Response::new(SearchAssetsResponse { assets, as_of: Some(std::time::SystemTime::now().into()) }))
        }
        .instrument(span)
        .await
    }
}

/// Starts `mock` on `addr` in the background; returns the bound address.
pub async fn spawn(
    mock: MockRegistry,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, tokio::task::JoinHandle<Result<(), StartError>>), StartError> {
    let listener = crate::server::bind(addr).await?;
    let local = listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
    Ok((local, tokio::spawn(mock.serve(listener, shutdown))))
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
