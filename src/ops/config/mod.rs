//! Gateway configuration: strict TOML with documented defaults
//! (`config/assetgw.toml`), environment overrides, and validation that reports
//! every problem at once with the key it concerns.
//!
//! Environment overrides name a key path with double underscores under the
//! `ASSETGW__` prefix, e.g. `ASSETGW__SEARCH__DEADLINE=5s` or
//! `ASSETGW__REGISTRIES__0__CALLS__TIMEOUT=1s`. A value that parses as TOML (a
//! number, a boolean) is taken as such, anything else as a string.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use crate::{
    core::proto::{AssetKind, RegistryKind},
    ops::{net::ConnectionLimits, pki::TlsFiles},
};

mod check;
pub mod directory;
mod ledger;
mod limits;
#[cfg(test)]
mod tests;

pub use check::{Problem, Problems, problem};
pub use ledger::{LedgerConfig, Lifting, PromotionTerm, Terms};
pub use limits::{Allowance, CourtLimits, LimitsConfig};

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "ASSETGW__";

/// The whole gateway configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    /// The gateway's own server.
    pub server: ServerConfig,
    /// How searches run.
    pub search: SearchConfig,
    /// How every registry is called; a registry's own `calls` table overrides any key.
    pub calls: CallsConfig,
    /// The registry answer cache.
    pub cache: CacheConfig,
    /// Logging.
    pub log: LogConfig,
    /// The seizure ledger.
    pub ledger: LedgerConfig,
    /// Mutual TLS towards courts and registries.
    pub tls: TlsConfig,
    /// Per-court request rates and daily search quotas.
    pub limits: LimitsConfig,
    /// The audit trail (R16).
    pub audit: AuditConfig,
    /// State shared by the replicas (Redis); unset on one machine.
    pub shared: SharedConfig,
    /// How the registries are found and connected to.
    pub network: NetworkConfig,
    /// The registries searched. Any number of any kind; at the network's width they are
    /// kept in the directory file instead (`network.directory`).
    pub registries: Vec<RegistryConfig>,
}

/// Where the registries beyond this file are listed, and how connections to them are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct NetworkConfig {
    /// A TOML file of `[[registries]]` tables (as in this file) that the
    /// gateway reads at start and again whenever it changes: registries are
    /// added, disabled (`disabled = true`) and re-keyed (`ca`) there without a
    /// restart. A file with any problem is refused whole, the last good one stays.
    pub directory: Option<PathBuf>,
    /// How often the directory file is looked at for a change.
    #[serde(with = "humantime_serde")]
    pub reload_every: Duration,
    /// Connections to registries kept open at most; the least recently used is closed first.
    pub max_connections: usize,
    /// A registry's connection is closed after this long without a call; the next call opens it again.
    #[serde(with = "humantime_serde")]
    pub idle_close: Duration,
    /// The searches per second a registry takes when neither it (`Describe`) nor its directory
    /// entry (`search_rate`) says: the gateway's scheduled searches stay within it.
    pub search_rate: u32,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            directory: None,
            reload_every: Duration::from_secs(2),
            max_connections: 4096,
            idle_close: Duration::from_secs(120),
            search_rate: 50,
        }
    }
}

/// State the replicas share: per-court rates, daily quotas and the second
/// tier of the answer cache, in Redis. Without it each replica keeps its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SharedConfig {
    /// `redis://[:password@]host:port[/db]`; unset: nothing is shared.
    pub redis: Option<String>,
    /// Longest wait for one Redis operation; past it the replica goes on with its own state.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for SharedConfig {
    fn default() -> Self {
        Self { redis: None, timeout: Duration::from_millis(50) }
    }
}

/// The gateway's listening sockets.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// Address the court-facing gRPC server listens on.
    pub listen: SocketAddr,
    /// A plaintext port serving only `grpc.health.v1`, for probes that cannot
    /// present a client certificate (Kubernetes' gRPC probes). Off when unset.
    pub health_listen: Option<SocketAddr>,
    /// A plaintext HTTP port serving Prometheus metrics at `/metrics`. Off when unset.
    pub metrics_listen: Option<SocketAddr>,
    /// Calls in flight at once; the next is refused with `RESOURCE_EXHAUSTED` rather than queued.
    pub max_in_flight: usize,
    /// HTTP/2 keepalive pings on idle connections (courts and registries), so dead peers are noticed.
    #[serde(with = "humantime_serde")]
    pub keepalive: Duration,
    /// What a connection must do, and how many may be open, before it is served.
    pub connections: ConnectionLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            health_listen: None,
            metrics_listen: None,
            max_in_flight: 1024,
            keepalive: Duration::from_secs(30),
            connections: ConnectionLimits::default(),
        }
    }
}

/// Deadlines and limits of a search.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SearchConfig {
    /// Overall deadline of a search; a client's shorter `grpc-timeout` wins.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// Most debtors one search may name.
    pub max_debtors: usize,
    /// Bound on one reply (a unary result, a stream's summary): registries'
    /// answers that do not fit are reported `OMITTED`. Under the 4 MiB most
    /// gRPC clients accept by default.
    pub max_reply_bytes: usize,
    /// Most registries a result lists per debtor; in a wider search only those
    /// with assets or a failure are listed, the quiet rest counted.
    pub list_registries: usize,
    /// How long a search whose registries have all settled is kept (GetSearch,
    /// WatchSearch) before it is purged with its late answers.
    #[serde(with = "humantime_serde")]
    pub job_retention: Duration,
    /// The longest a registry's ticket may keep a search open, whatever window the registry
    /// states (a shorter window it declares in `Describe` also holds).
    #[serde(with = "humantime_serde")]
    pub max_answer_window: Duration,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(10),
            max_debtors: 10,
            max_reply_bytes: 3 * 1024 * 1024,
            list_registries: 64,
            job_retention: Duration::from_secs(30 * 24 * 3600),
            max_answer_window: Duration::from_secs(72 * 3600),
        }
    }
}

/// How the gateway calls a registry's search. `[calls]` sets it for every
/// registry and a registry's own `calls` table overrides any key; what
/// neither sets is [`CallPolicy::default`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct CallsConfig {
    /// Time for the registry's whole part of a search, every attempt included.
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Time for one attempt (at most `timeout`).
    #[serde(with = "humantime_serde")]
    pub attempt_timeout: Option<Duration>,
    /// Searches in flight to the registry at once (the bulkhead); more are not queued.
    pub concurrency: Option<usize>,
    /// The circuit breaker.
    pub breaker: Option<BreakerConfig>,
    /// Retries, as a share of the registry's calls (over 10 s; at least one a second).
    pub retry_budget: Option<f32>,
    /// Hedged second attempts, as a share of the registry's calls (over 10 s).
    pub hedge_budget: Option<f32>,
    /// An attempt still unanswered after this percentile of the registry's recent latencies is hedged; 0 is off.
    pub hedge_percentile: Option<f64>,
    /// Largest search answer taken from the registry, in bytes; a larger one is refused as an invalid response.
    pub max_answer_bytes: Option<usize>,
    /// How its searches are batched (`SearchAssetsBatch`).
    pub batch: Option<BatchConfig>,
}

/// How a registry's searches are batched (`SearchAssetsBatch`): the searches of concurrent court
/// searches bound for it go together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct BatchConfig {
    /// How long the first search of a batch waits for others; `0s`: one search a call.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Most searches in one batch.
    pub max_items: usize,
    /// Most bytes of searches in one batch (the batch closes once past it).
    pub max_bytes: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self { window: Duration::from_millis(2), max_items: 256, max_bytes: 1024 * 1024 }
    }
}

/// The settings one registry is called with, every key resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallPolicy {
    /// Time for the registry's whole part of a search.
    pub timeout: Duration,
    /// Time for one attempt.
    pub attempt_timeout: Duration,
    /// Searches in flight at once.
    pub concurrency: usize,
    /// The circuit breaker.
    pub breaker: BreakerConfig,
    /// Retry budget share.
    pub retry_budget: f32,
    /// Hedge budget share.
    pub hedge_budget: f32,
    /// Hedging percentile (0: off).
    pub hedge_percentile: f64,
    /// Largest search answer taken, in bytes.
    pub max_answer_bytes: usize,
    /// Batching of its searches.
    pub batch: BatchConfig,
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(3),
            concurrency: 256,
            breaker: BreakerConfig::default(),
            retry_budget: 0.1,
            hedge_budget: 0.05,
            hedge_percentile: 0.95,
            // Well under a court client's 4 MiB default, with room for other registries in one reply.
            max_answer_bytes: 512 * 1024,
            batch: BatchConfig::default(),
        }
    }
}

impl CallsConfig {
    /// `base` with the keys set here replacing its own.
    pub fn over(&self, base: CallPolicy) -> CallPolicy {
        let timeout = self.timeout.unwrap_or(base.timeout);
        CallPolicy {
            timeout,
            attempt_timeout: self.attempt_timeout.unwrap_or(base.attempt_timeout).min(timeout),
            concurrency: self.concurrency.unwrap_or(base.concurrency),
            breaker: self.breaker.unwrap_or(base.breaker),
            retry_budget: self.retry_budget.unwrap_or(base.retry_budget),
            hedge_budget: self.hedge_budget.unwrap_or(base.hedge_budget),
            hedge_percentile: self.hedge_percentile.unwrap_or(base.hedge_percentile),
            max_answer_bytes: self.max_answer_bytes.unwrap_or(base.max_answer_bytes),
            batch: self.batch.unwrap_or(base.batch),
        }
    }
}

/// The cache of registry answers, per (registry, debtor).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CacheConfig {
    /// Most cached answers kept; the least recently used go first.
    pub max_entries: u64,
    /// Lifetime of a cached answer by registry kind, unless the registry sets its own.
    pub ttl: KindTtl,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { max_entries: 100_000, ttl: KindTtl::default() }
    }
}

/// Cache lifetimes per registry kind: balances move by the minute, land titles by the month.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct KindTtl {
    /// Banks.
    #[serde(with = "humantime_serde")]
    pub bank: Duration,
    /// Real-estate registries.
    #[serde(with = "humantime_serde")]
    pub real_estate: Duration,
    /// The IP office.
    #[serde(with = "humantime_serde")]
    pub ip: Duration,
    /// The aircraft registry.
    #[serde(with = "humantime_serde")]
    pub aviation: Duration,
    /// The securities depository.
    #[serde(with = "humantime_serde")]
    pub securities: Duration,
}

impl Default for KindTtl {
    fn default() -> Self {
        Self {
            bank: Duration::from_secs(30),
            real_estate: Duration::from_secs(3600),
            ip: Duration::from_secs(6 * 3600),
            aviation: Duration::from_secs(6 * 3600),
            securities: Duration::from_secs(300),
        }
    }
}

impl KindTtl {
    /// The lifetime for a registry kind.
    pub fn for_kind(&self, kind: RegistryKind) -> Duration {
        match kind {
            RegistryKind::Bank => self.bank,
            RegistryKind::RealEstate => self.real_estate,
            RegistryKind::Ip => self.ip,
            RegistryKind::Aviation => self.aviation,
            RegistryKind::Securities | RegistryKind::Unspecified => self.securities,
        }
    }
}

/// When a breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct BreakerConfig {
    /// Consecutive unhealthy outcomes that open the breaker.
    pub failures: u32,
    /// How long it stays open before one probe call is let through.
    #[serde(with = "humantime_serde")]
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { failures: 5, cool_down: Duration::from_secs(2) }
    }
}

/// Mutual TLS: courts present certificates to the gateway, the gateway
/// presents its own to registries; all are signed by the network CA.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    /// Serve courts and call registries without TLS. Only for a closed test
    /// network: a court's identity is then taken on trust from request
    /// metadata, and a warning is logged at start-up and on every request.
    pub plaintext: bool,
    /// The network CA certificate (PEM) that signed every party's certificate.
    pub ca: PathBuf,
    /// The gateway's certificate (PEM): served to courts, presented to registries.
    pub cert: PathBuf,
    /// The gateway's private key (PEM).
    pub key: PathBuf,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            plaintext: false,
            ca: "data/pki/ca.pem".into(),
            cert: "data/pki/gateway.pem".into(),
            key: "data/pki/gateway.key".into(),
        }
    }
}

impl TlsConfig {
    /// The gateway's TLS files.
    pub fn files(&self) -> TlsFiles {
        TlsFiles { ca: self.ca.clone(), cert: self.cert.clone(), key: self.key.clone() }
    }

    /// The PKI directory (the CA's), where `assetgw dev` keeps every certificate.
    pub fn pki_dir(&self) -> PathBuf {
        self.ca.parent().map(Path::to_path_buf).unwrap_or_default()
    }
}

/// The audit trail of every query and control order (R16).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AuditConfig {
    /// Secret key (64 hex characters) that seals the hash chains and makes the
    /// debtor hashes unguessable. Created with a random key if missing; every
    /// replica sharing a database needs the same file.
    pub key_file: PathBuf,
    /// How long records are kept; older ones are purged (the purge is itself recorded).
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { key_file: "data/audit.key".into(), retention: Duration::from_secs(10 * 365 * 86_400) }
    }
}

/// Log output.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `text` for people, `json` for collectors.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `assetgw=debug`; `RUST_LOG` wins when set.
    pub filter: String,
    /// Also export spans over OTLP/gRPC to this collector, e.g. `http://127.0.0.1:4317`. Off when unset.
    pub otlp_endpoint: Option<String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, filter: "info".into(), otlp_endpoint: None }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// One registry of the network.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RegistryConfig {
    /// Unique name, shown to courts, e.g. `bank-icbc`.
    pub name: String,
    /// The kind of institution.
    pub kind: RegistryKind,
    /// The registry's gRPC endpoint, e.g. `https://127.0.0.1:50061`.
    pub endpoint: String,
    /// Cache lifetime of its answers; default `cache.ttl.<kind>`.
    #[serde(default, with = "humantime_serde")]
    pub cache_ttl: Option<Duration>,
    /// Asset kinds it reports; default by kind (banks: deposit and securities).
    #[serde(default)]
    pub asset_kinds: Option<Vec<AssetKind>>,
    /// How it is called, overriding `[calls]` key by key.
    #[serde(default)]
    pub calls: CallsConfig,
    /// The CA (PEM) its certificate must chain to, when not the network's (`tls.ca`).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Its certificate (PEM) as the operator received it: checked, when the
    /// directory is loaded, to name this registry and chain to its CA.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// The searches per second it takes when it declares none (`Describe`); default
    /// `network.search_rate`. The gateway's scheduled searches stay within it.
    #[serde(default)]
    pub search_rate: Option<u32>,
    /// Listed but not searched or connected to (its control orders wait).
    #[serde(default)]
    pub disabled: bool,
    /// When set, `assetgw dev` runs a mock of this registry at `endpoint` with
    /// these settings. The gateway does not read them; the mock checks them
    /// (`tools::mock::MockConfig`).
    #[serde(default)]
    pub mock: Option<toml::Table>,
}

impl RegistryConfig {
    /// A registry with every optional key unset.
    pub fn new(name: impl Into<String>, kind: RegistryKind, endpoint: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind,
            endpoint: endpoint.into(),
            cache_ttl: None,
            search_rate: None,
            asset_kinds: None,
            calls: CallsConfig::default(),
            ca: None,
            certificate: None,
            disabled: false,
            mock: None,
        }
    }

    /// The effective cache lifetime.
    pub fn cache_ttl(&self, cache: &CacheConfig) -> Duration {
        self.cache_ttl.unwrap_or_else(|| cache.ttl.for_kind(self.kind))
    }

    /// The effective asset kinds.
    pub fn asset_kinds(&self) -> Vec<AssetKind> {
        self.asset_kinds.clone().unwrap_or_else(|| self.kind.default_asset_kinds())
    }
}
