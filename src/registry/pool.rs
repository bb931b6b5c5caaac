//! Connections to the registries, opened on demand: a registry's channel is
//! made on its first call, closed after it has been idle for a while, and at
//! most `network.max_connections` are kept (the least recently used is closed first).
//! At the network's width (thousands of banks) most registries are idle most
//! of the time, and a connection each would cost memory and keepalive pings.
//! A call in flight holds its channel, so closing one never cuts a call short.

use std::{sync::Arc, time::Duration};

use moka::{policy::EvictionPolicy, sync::Cache};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::ops::{config::Config, metrics::Metrics, pki::PkiError};

/// How to reach one registry: where, and the TLS name (and trust) it must prove.
#[derive(Debug, Clone)]
pub struct Dial {
    /// The registry's name: the pool's key and the name its certificate must carry.
    pub name: Arc<str>,
    /// Its endpoint, without TLS (added when a connection is opened).
    pub endpoint: Endpoint,
    /// The CA its certificate must chain to, when not the network's.
    pub ca: Option<Certificate>,
}

/// The gateway's TLS material for calling registries, loaded once.
#[derive(Clone)]
struct ClientTls {
    ca: Certificate,
    identity: Identity,
}

/// The open connections, by registry.
#[derive(Clone)]
pub struct Pool {
    open: Cache<Arc<str>, Channel>,
    tls: Option<ClientTls>,
    metrics: Metrics,
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
            false => {
                let files = config.tls.files();
                Some(ClientTls { ca: files.ca()?, identity: files.identity()? })
            }
        };
        let gauge = metrics.clone();
        let open = Cache::<Arc<str>, Channel>::builder()
            .max_capacity(config.network.max_connections.max(1) as u64)
            .time_to_idle(config.network.idle_close)
            .eviction_policy(EvictionPolicy::lru())
            .eviction_listener(move |name: Arc<Arc<str>>, _, cause| {
                tracing::debug!(registry = %name, ?cause, "registry connection closed");
                gauge.registry_connections.dec();
            })
            .build();
        let pool = Self { open, tls, metrics: metrics.clone(), alive: Arc::new(()) };
        pool.sweep_every(config.network.idle_close / 4);
        Ok(pool)
    }

    /// The channel to `dial`'s registry, opened (lazily: it connects on its first call) if none is.
    pub fn channel(&self, dial: &Dial) -> Result<Channel, Arc<tonic::transport::Error>> {
        self.open.try_get_with_by_ref(&dial.name, || {
            let mut endpoint = dial.endpoint.clone();
            if let Some(tls) = &self.tls {
                let ca = dial.ca.clone().unwrap_or_else(|| tls.ca.clone());
                let config = ClientTlsConfig::new().ca_certificate(ca).identity(tls.identity.clone());
                // The registry must present a certificate for its name: an impostor is refused.
                endpoint = endpoint.tls_config(config.domain_name(&*dial.name))?;
            }
            self.metrics.registry_connections.inc();
            Ok(endpoint.connect_lazy())
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
