//! A fleet of mock bank registries behind one port, as the network's
//! thousands of banks: each bank has its own name, certificate (the TLS
//! server name a caller asks for picks it) and deterministic data, and most
//! banks hold nothing for a given debtor. Settings are the fleet's, except
//! that a drawn share of the banks answer later.

use std::{collections::HashMap, future::Future, sync::Arc};

use rand::Rng;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status, service::interceptor::InterceptedService};
use tracing::info;

use super::{MockConfig, MockRegistry, data};
use crate::{
    core::proto::{
        DeductRequest, DeductResponse, DescribeRequest, DescribeResponse, GetAnswerRequest, GetAnswerResponse,
        RegistryKind, ReleaseRequest, ReleaseResponse, RenewRequest, RenewResponse, SearchAssetsBatchRequest,
        SearchAssetsBatchResponse, SearchAssetsRequest, SearchAssetsResponse, SeizeRequest, SeizeResponse,
        registry_service_server::{RegistryService, RegistryServiceServer},
    },
    gateway::{auth, server::StartError},
    ops::{
        config::RegistryConfig,
        net::{ConnectionLimits, Peer, admit},
        pki,
    },
};

/// The name of the fleet's `n`-th bank, from 1.
pub fn bank_name(n: usize) -> String {
    format!("bank-{n:04}")
}

/// The fleet's banks as registries of a gateway: one endpoint, each bank by its name.
pub fn registries(banks: usize, listen: std::net::SocketAddr) -> Vec<RegistryConfig> {
    (1..=banks).map(|n| RegistryConfig::new(bank_name(n), RegistryKind::Bank, format!("https://{listen}"))).collect()
}

/// How the fleet's banks behave.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Banks in the fleet.
    pub banks: usize,
    /// Every bank's latency and faults; its deferral applies to `deferred_share` of the banks.
    pub settings: MockConfig,
    /// Share of banks, 0.0 to 1.0, that answer later (with the settings' deferral).
    pub deferred_share: f64,
}

/// The banks, by name.
#[derive(Clone)]
pub struct Fleet(Arc<HashMap<String, MockRegistry>>);

impl Fleet {
    /// Every bank of `config`; which ones defer is drawn from their names, the same every time.
    pub fn new(config: &FleetConfig) -> Result<Self, toml::de::Error> {
        let mut banks = HashMap::with_capacity(config.banks);
        for name in (1..=config.banks).map(bank_name) {
            let defers = data::seeded(&["defers", &name]).random_bool(config.deferred_share.clamp(0.0, 1.0));
            let settings =
                MockConfig { deferred: config.settings.deferred.filter(|_| defers), ..config.settings.clone() };
            banks.insert(name.clone(), MockRegistry::new(&name, RegistryKind::Bank, settings)?);
        }
        Ok(Self(Arc::new(banks)))
    }

    /// Searches the banks received (each call, each item of a batch), and `SearchAssetsBatch` calls.
    pub fn counts(&self) -> (u64, u64) {
        let load = |c: Arc<std::sync::atomic::AtomicU64>| c.load(std::sync::atomic::Ordering::Relaxed);
        self.0
            .values()
            .fold((0, 0), |(searches, batches), bank| (searches + load(bank.calls()), batches + load(bank.batches())))
    }

    /// The bank the caller named in its TLS handshake.
    fn bank<T>(&self, request: &Request<T>) -> Result<&MockRegistry, Status> {
        let name = Peer::server_name(request)
            .ok_or_else(|| Status::invalid_argument("name the bank as the TLS server name (SNI)"))?;
        self.0.get(&*name).ok_or_else(|| Status::not_found(format!("no bank {name} in this fleet")))
    }

    /// Serves every bank on `listener`, each with its certificate from the PKI in `dir`, until `shutdown`.
    pub async fn serve(
        self,
        listener: TcpListener,
        dir: &std::path::Path,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let names: Vec<String> = self.0.keys().cloned().collect();
        pki::ensure_dev(dir, &names.iter().map(String::as_str).collect::<Vec<_>>())?;
        let tls = pki::sni_server(dir, &names)?;
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<RegistryServiceServer<Fleet>>().await;
        info!(banks = names.len(), addr = ?listener.local_addr().ok(), "mock fleet listening");
        // The gateway holds a connection per bank, all from one address.
        let most = names.len().saturating_mul(4).max(ConnectionLimits::default().max_connections);
        let limits = ConnectionLimits { max_connections: most, max_per_address: most, ..ConnectionLimits::default() };
        let incoming = admit(listener, Some(tls), limits, None);
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(InterceptedService::new(RegistryServiceServer::new(self), auth::gateway_only))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await?;
        Ok(())
    }
}

/// Each call goes to the bank the caller named.
#[tonic::async_trait]
impl RegistryService for Fleet {
    async fn describe(&self, request: Request<DescribeRequest>) -> Result<Response<DescribeResponse>, Status> {
        self.bank(&request)?.describe(request).await
    }

    async fn search_assets(
        &self,
        request: Request<SearchAssetsRequest>,
    ) -> Result<Response<SearchAssetsResponse>, Status> {
        self.bank(&request)?.search_assets(request).await
    }

    async fn search_assets_batch(
        &self,
        request: Request<SearchAssetsBatchRequest>,
    ) -> Result<Response<SearchAssetsBatchResponse>, Status> {
        self.bank(&request)?.search_assets_batch(request).await
    }

    async fn seize(&self, request: Request<SeizeRequest>) -> Result<Response<SeizeResponse>, Status> {
        self.bank(&request)?.seize(request).await
    }

    async fn renew(&self, request: Request<RenewRequest>) -> Result<Response<RenewResponse>, Status> {
        self.bank(&request)?.renew(request).await
    }

    async fn release(&self, request: Request<ReleaseRequest>) -> Result<Response<ReleaseResponse>, Status> {
        self.bank(&request)?.release(request).await
    }

    async fn deduct(&self, request: Request<DeductRequest>) -> Result<Response<DeductResponse>, Status> {
        self.bank(&request)?.deduct(request).await
    }

    async fn get_answer(&self, request: Request<GetAnswerRequest>) -> Result<Response<GetAnswerResponse>, Status> {
        self.bank(&request)?.get_answer(request).await
    }
}
