//! Connections to the registries, opened on demand: a registry's channel is
//! made on its first call, closed after it has been idle for a while, and at
//! most `network.max_connections` are kept (the least recently used is closed
//! first). At the network's width (thousands of banks) most registries are
//! idle most of the time, and a connection each would cost memory and
//! keepalive pings. A call in flight holds its channel, so closing one never
//! cuts a call short.
//!
//! Every connection shares one TLS client configuration (the gateway's
//! certificate, the CA, a session cache for resuming): a configuration per
//! registry, as tonic builds one per endpoint, cost each connection its own
//! parsed key, root store and session cache, and made a 4,000-wide first
//! search spend its time building them.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::future::BoxFuture;
use hyper_util::rt::TokioIo;
use moka::{policy::EvictionPolicy, sync::Cache};
use prometheus::IntGauge;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::ops::{
    config::Config,
    metrics::Metrics,
    pki::{PkiError, TlsFiles},
};

/// How to reach one registry: where, and the TLS name (and trust) it must prove.
#[derive(Debug, Clone)]
pub struct Dial {
    /// The registry's name: the pool's key and the name its certificate must carry.
    pub name: Arc<str>,
    /// Its endpoint, as `http://` (the pool adds TLS itself).
    pub endpoint: Endpoint,
    /// A TLS configuration of its own (it trusts another CA), instead of the pool's.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// The open connections, by registry.
#[derive(Clone)]
pub struct Pool {
    open: Cache<Arc<str>, Channel>,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Connections open (`assetgw_registry_connections`): the one metric it keeps, so that cloning
    /// the pool (with every search call's attempt) costs no clone of every metric.
    connections: IntGauge,
    // The sweeper stops when the last clone of the pool is gone.
    alive: Arc<()>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("open", &self.open.entry_count()).finish()
    }
}

impl Pool {
    /// An empty pool with `config`'s TLS material and bounds.
    pub fn new(config: &Config, metrics: &Metrics) -> Result<Self, PkiError> {
        let tls = match config.tls.plaintext {
            true => None,
            false => Some(Self::tls(config, &config.tls.files())?),
        };
        let gauge = metrics.registry_connections.clone();
        let open = Cache::<Arc<str>, Channel>::builder()
            .max_capacity(config.network.max_connections.max(1) as u64)
            .time_to_idle(config.network.idle_close)
            .eviction_policy(EvictionPolicy::lru())
            .eviction_listener(move |name: Arc<Arc<str>>, _, cause| {
                tracing::debug!(registry = %name, ?cause, "registry connection closed");
                gauge.dec();
            })
            .build();
        let pool = Self { open, tls, connections: metrics.registry_connections.clone(), alive: Arc::new(()) };
        pool.sweep_every(config.network.idle_close / 4);
        Ok(pool)
    }

    /// The TLS client configuration for `files` (the gateway's certificate, and a CA).
    pub fn tls(config: &Config, files: &TlsFiles) -> Result<Arc<rustls::ClientConfig>, PkiError> {
        files.client_config(config.network.max_connections)
    }

    /// The channel to `dial`'s registry, opened (lazily: it connects on its first call) if none is.
    pub fn channel(&self, dial: &Dial) -> Channel {
        self.open.get_with_by_ref(&dial.name, || {
            self.connections.inc();
            match dial.tls.as_ref().or(self.tls.as_ref()) {
                None => dial.endpoint.connect_lazy(),
                Some(tls) => {
                    // A registry name that is no DNS name fails validation before it gets here; should
                    // one slip through, its handshakes fail and it is reported unavailable.
                    let name = ServerName::try_from(dial.name.to_string()).ok();
                    dial.endpoint.connect_with_connector_lazy(Handshake { tls: TlsConnector::from(tls.clone()), name })
                }
            }
        })
    }

    /// Closes `name`'s connection (its address or trust changed); the next call opens a new one.
    pub fn close(&self, name: &str) {
        self.open.invalidate(name);
    }

    /// Connections open now, after closing those idle too long or over the bound.
    pub fn open(&self) -> u64 {
        self.open.run_pending_tasks();
        self.open.entry_count()
    }

    /// Closes idle connections every `every` while the pool exists, even when nothing calls.
    fn sweep_every(&self, every: Duration) {
        let (open, alive) = (self.open.clone(), Arc::downgrade(&self.alive));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
                while alive.strong_count() > 0 {
                    tick.tick().await;
                    open.run_pending_tasks();
                }
            });
        }
    }
}

/// Opens one connection: TCP to the endpoint, then TLS, where the registry must prove `name`.
#[derive(Clone)]
struct Handshake {
    tls: TlsConnector,
    name: Option<ServerName<'static>>,
}

impl tower::Service<Uri> for Handshake {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (tls, name) = (self.tls.clone(), self.name.clone());
        Box::pin(async move {
            let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_string());
            let name = name.ok_or_else(|| invalid("the registry's name is not a DNS name"))?;
            let host = uri.host().ok_or_else(|| invalid("the endpoint has no host"))?;
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port)).await?;
            tcp.set_nodelay(true)?;
            Ok(TokioIo::new(tls.connect(name, tcp).await?))
        })
    }
}
