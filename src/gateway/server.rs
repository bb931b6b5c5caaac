//! Running the gateway: the court-facing search and seizure services with
//! health and reflection, over mutual TLS, on a listener the caller binds,
//! until a shutdown future completes; in-flight requests are drained before
//! `run` returns.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::{net::TcpListener, sync::watch, task::JoinSet};
use tonic::{Status, codegen::http, transport::Server};

use crate::{
    core::{
        clock::{SharedClock, SystemClock},
        proto::{
            FILE_DESCRIPTOR_SET, asset_search_service_server::AssetSearchServiceServer,
            debtor_service_server::DebtorServiceServer, distribution_service_server::DistributionServiceServer,
            seizure_service_server::SeizureServiceServer,
        },
    },
    gateway::{
        acting::Acting,
        admission::AdmissionLayer,
        audit::{self, AuditError, Key, Trail, recorder::Recorder},
        auth::{Authority, Identity},
        debtor::DebtorApi,
        distribution::DistributionApi,
        jobs::{self, Jobs},
        limits::Limits,
        outbox,
        search::{SearchApi, SearchParts},
        seizure::SeizureApi,
        spine::spine,
    },
    ledger::{health, model::Model, store::Store, sweep},
    ops::{
        config::Config,
        metrics::Metrics,
        net::{BindError, admit, bind},
        shared::{Shared, SharedError},
    },
    registry::{client::SetupError, network::Network, tier::Tier},
};

/// Why the gateway (or a mock registry's server) could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration has problems (all listed).
    #[error("{0}")]
    Config(#[from] crate::ops::config::Problems),
    /// A registry client could not be made.
    #[error(transparent)]
    Registry(#[from] SetupError),
    /// A socket could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The seizure ledger could not be opened or migrated.
    #[error("seizure ledger: {0}")]
    Ledger(#[from] crate::ledger::LedgerError),
    /// The reflection service could not load the descriptors.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// A certificate or key of the configured TLS files is missing or bad.
    #[error("TLS: {0}")]
    Tls(#[from] crate::ops::pki::PkiError),
    /// The audit trail's key could not be read or created.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The metrics could not be set up.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The shared-state URL is unusable.
    #[error(transparent)]
    Shared(#[from] SharedError),
}

/// Largest court request accepted; a search names at most a few debtors.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Server reflection (v1 and v1alpha, for older tools) over our protos and health.
pub fn reflection_services() -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection>,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    StartError,
> {
    // The descriptor set also holds the registry contract and the mocks' admin API, which
    // this port does not serve: only what it serves is advertised.
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(crate::core::proto::asset_search_service_server::SERVICE_NAME)
            .with_service_name(crate::core::proto::seizure_service_server::SERVICE_NAME)
            .with_service_name(crate::core::proto::debtor_service_server::SERVICE_NAME)
            .with_service_name(tonic_health::pb::health_server::SERVICE_NAME)
            .with_service_name(tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME)
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}

/// Serves the gateway on `listener` until `shutdown` completes, then drains.
pub async fn run(
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    run_with_clock(config, Arc::new(SystemClock), listener, shutdown).await
}

/// [`run`] with the ledger's clock given (tests jump years ahead).
pub async fn run_with_clock(
    config: &Config,
    clock: SharedClock,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let server = Server::builder()
        .http2_keepalive_interval(Some(config.server.keepalive))
        .http2_keepalive_timeout(Some(config.server.keepalive / 3));
    let metrics = Metrics::new()?;
    let tls = if config.tls.plaintext {
        tracing::warn!("PLAINTEXT: courts are not authenticated; court codes are taken on trust from metadata");
        None
    } else {
        let files = config.tls.files();
        // Read once: a rotation restarts the gateway (deploy/RUNBOOK.md), which reads them again.
        for (certificate, expires) in files.expiries()? {
            metrics.certificate_expiry.with_label_values(&[certificate]).set(expires as f64);
        }
        Some(files.server()?)
    };
    let store = Store::open(&config.ledger.url, clock, config.ledger.terms.clone()).await?;
    let key = Key::load_or_create(&config.audit.key_file)?;
    let trail = Trail::start(&store, key.clone());
    let shared = config.shared.redis.as_deref().map(|url| Shared::new(url, config.shared.timeout)).transpose()?;
    let model = Model::load(store.clone()).await?;
    let limits =
        Arc::new(Limits::new(config.limits.clone(), trail.clone(), store.clock(), metrics.clone(), shared.clone()));
    let authority = Authority::new(model.clone(), store.clone());
    let tier = shared.map(|s| {
        let (seal, names) = (key.derive("answer cache seal"), key.derive("answer cache names"));
        Tier::new(s, seal, names, metrics.shared_fallbacks.clone())
    });
    let network = Arc::new(Network::new(config, &metrics, store.clock(), tier)?);
    let jobs = Jobs::new(store.clone(), key.clone());
    let search = SearchParts {
        network: network.clone(),
        authority: authority.clone(),
        quota: limits.clone(),
        model: model.clone(),
        jobs: jobs.clone(),
        trail: trail.clone(),
        enterprise_prefixes: config.ledger.enterprise_prefixes.clone(),
    };
    let search = SearchApi::new(search, config.search.clone(), store.clock());
    let acting = Acting::new(store.clone(), model.clone(), authority);
    let seizure = SeizureApi::new(acting.clone(), key.clone(), network.clone());
    let researches = jobs::research::Researches::new(&key);
    let distribution = DistributionApi::new(acting.clone(), key.clone(), &config.ledger);
    let debtor = DebtorApi::new(acting, (key.clone(), researches.clone()), &config.ledger);
    let spine = spine(
        Recorder::new(trail.clone(), store.clone(), metrics.clone()),
        Identity::new(config.tls.plaintext),
        limits,
    );
    let (stop, stopped) = watch::channel(());
    let until_stopped = |mut rx: watch::Receiver<()>| async move {
        let _ = rx.changed().await;
    };
    // The gateway's own work beside the calls: each stops when told and is waited for at shutdown.
    let mut background = JoinSet::new();
    background.spawn(model.follow(config.ledger.url.clone(), until_stopped(stopped.clone())));
    background.spawn(outbox::run(store.clone(), network.clone(), metrics.clone(), until_stopped(stopped.clone())));
    let directory = network.clone();
    let until = until_stopped(stopped.clone());
    background.spawn(async move { directory.follow_directory(until).await });
    let (every, window) = (config.ledger.sweep_interval, config.ledger.request_window);
    let holidays = config.ledger.holidays();
    background.spawn(sweep::sweep(store.clone(), (every, window), holidays, until_stopped(stopped.clone())));
    background.spawn(audit::recover(store.clone(), trail.clone(), until_stopped(stopped.clone())));
    let watched = (config.ledger.sweep_interval, config.ledger.verify_interval);
    background.spawn(health::watch(store.clone(), metrics.clone(), watched, until_stopped(stopped.clone())));
    // A claimed leg is this replica's for twice the slowest registry's timeout (none exceeds the deadline).
    let times = (config.search.deadline * 2 + Duration::from_secs(5), config.search.job_retention);
    let late = (trail.clone(), metrics.clone());
    // Due re-searches are looked for as often as lapses are swept.
    let cadence = jobs::research::Cadence {
        every: config.ledger.sweep_interval,
        window: config.ledger.research_window,
        deadline: config.search.deadline,
        lease: times.0,
        allowance: config.ledger.research_allowance,
        hours: config.ledger.research_hours,
    };
    background.spawn(jobs::research::run(
        (store.clone(), jobs.clone()),
        (network.clone(), trail.clone(), metrics.clone()),
        researches,
        cadence,
        until_stopped(stopped.clone()),
    ));
    background.spawn(jobs::poll::run(jobs, network.clone(), late, times, until_stopped(stopped.clone())));
    background.spawn(audit::retain(trail, config.audit.retention, until_stopped(stopped.clone())));
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AssetSearchServiceServer<SearchApi>>().await;
    health.set_serving::<SeizureServiceServer<SeizureApi>>().await;
    health.set_serving::<DebtorServiceServer<DebtorApi>>().await;
    health.set_serving::<DistributionServiceServer<DistributionApi>>().await;
    let (reflection, reflection_alpha) = reflection_services()?;
    if let Some(addr) = config.server.metrics_listen {
        metrics.clone().serve(addr, until_stopped(stopped.clone())).await?;
    }
    if let Some(addr) = config.server.health_listen {
        let probes = Server::builder().add_service(health_service.clone());
        let incoming = admit(bind(addr).await?, None, config.server.connections.clone(), None);
        let until = until_stopped(stopped.clone());
        background.spawn(async move {
            if let Err(e) = probes.serve_with_incoming_shutdown(incoming, until).await {
                tracing::warn!(error = %e, "health probes stopped");
            }
        });
        tracing::info!(%addr, "health probes (plaintext, grpc.health.v1 only) listening");
    }
    tracing::info!(addr = ?listener.local_addr().ok(), registries = network.registries().len(), "gateway listening");
    let incoming = admit(listener, tls, config.server.connections.clone(), Some(metrics.connections_refused.clone()));
    let draining = async move {
        shutdown.await;
        // Load balancers stop sending before the drain begins.
        health.set_not_serving::<AssetSearchServiceServer<SearchApi>>().await;
        health.set_not_serving::<SeizureServiceServer<SeizureApi>>().await;
        health.set_not_serving::<DebtorServiceServer<DebtorApi>>().await;
        health.set_not_serving::<DistributionServiceServer<DistributionApi>>().await;
        tracing::info!("shutting down: draining in-flight requests");
    };
    server
        .layer(AdmissionLayer::new(config.server.max_in_flight, metrics.shed.clone()))
        .layer(spine)
        .layer(tower::util::MapResponseLayer::new(oversized_is_resource_exhausted))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(AssetSearchServiceServer::new(search).max_decoding_message_size(MAX_REQUEST_BYTES))
        .add_service(SeizureServiceServer::new(seizure).max_decoding_message_size(MAX_REQUEST_BYTES))
        .add_service(DebtorServiceServer::new(debtor).max_decoding_message_size(MAX_REQUEST_BYTES))
        .add_service(DistributionServiceServer::new(distribution).max_decoding_message_size(MAX_REQUEST_BYTES))
        .serve_with_incoming_shutdown(incoming, draining)
        .await?;
    drop(stop);
    if tokio::time::timeout(BACKGROUND_STOP, background.join_all()).await.is_err() {
        tracing::warn!(within = ?BACKGROUND_STOP, "background work did not stop in time; left to the process's end");
    }
    if let Err(e) = store.checkpoint().await {
        tracing::warn!(error = %e, "the ledger's write-ahead log was not folded in; it is replayed on the next start");
    }
    Ok(())
}

/// How long the background work has to finish what it is doing once the server has drained.
const BACKGROUND_STOP: Duration = Duration::from_secs(5);

/// tonic refuses a request over [`MAX_REQUEST_BYTES`] with OUT_OF_RANGE before
/// any handler runs (our handlers never answer OUT_OF_RANGE); gRPC's code for
/// a message over the limit is RESOURCE_EXHAUSTED.
fn oversized_is_resource_exhausted(response: http::Response<tonic::body::Body>) -> http::Response<tonic::body::Body> {
    if response.headers().get("grpc-status").is_some_and(|code| code == "11") {
        let limit = MAX_REQUEST_BYTES / 1024;
        let status = Status::resource_exhausted(format!("the request is larger than the gateway's {limit} KiB limit"));
        return status.into_http();
    }
    response
}
