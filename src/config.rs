//! Gateway configuration: strict TOML with documented defaults
//! (`config/assetgw.toml`), environment overrides, and validation that reports
//! every problem at once with the key it concerns.
//!
//! Environment overrides name a key path with double underscores under the
//! `ASSETGW__` prefix, e.g. `ASSETGW__SEARCH__DEADLINE=5s` or
//! `ASSETGW__REGISTRIES__0__CALLS__TIMEOUT=1s`. A value that parses as TOML (a
//! number, a boolean) is taken as such, anything else as a string.

use std::{
    collections::{BTreeMap, HashSet},
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use crate::{
    breaker::BreakerConfig,
    identifiers,
    ledger::rules::Terms,
    mock::Latency,
    pki::TlsFiles,
    proto::{AssetKind, RegistryKind},
};

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
    /// The registries searched. Any number of any kind.
    pub registries: Vec<RegistryConfig>,
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            health_listen: None,
            metrics_listen: None,
            max_in_flight: 1024,
            keepalive: Duration::from_secs(30),
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
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self { deadline: Duration::from_secs(10), max_debtors: 10 }
    }
}

/// How the gateway calls a registry's search. `[calls]` sets it for every
/// registry and a registry's own `calls` table overrides any key; what
/// neither sets is [`CallPolicy::default`].
#[derive(Debug, Clone, Default, Deserialize)]
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
        }
    }

    /// Problems with the keys set here; `at` is where they are, e.g. `registries[0].calls`.
    fn problems(&self, at: &str, deadline: Duration) -> Vec<Problem> {
        let mut out = Vec::new();
        let key = |field: &str| format!("{at}.{field}");
        for (field, t) in [("timeout", self.timeout), ("attempt_timeout", self.attempt_timeout)] {
            if t.is_some_and(|t| t.is_zero()) {
                out.push(problem(key(field), "must be longer than zero"));
            }
        }
        if let Some(t) = self.timeout.filter(|t| *t > deadline) {
            out.push(problem(
                key("timeout"),
                format!(
                    "({}) is longer than search.deadline ({}); a registry could never time out on its own",
                    human(t),
                    human(deadline)
                ),
            ));
        }
        if self.concurrency == Some(0) {
            out.push(problem(key("concurrency"), "must be at least 1"));
        }
        if let Some(b) = self.breaker {
            if b.failures == 0 {
                out.push(problem(key("breaker.failures"), "must be at least 1"));
            }
            if b.cool_down.is_zero() {
                out.push(problem(key("breaker.cool_down"), "must be longer than zero"));
            }
        }
        for (field, share) in [("retry_budget", self.retry_budget), ("hedge_budget", self.hedge_budget)] {
            if let Some(share) = share.filter(|s| !(0.0..=1.0).contains(s)) {
                out.push(problem(key(field), format!("{share} is not a share between 0.0 and 1.0")));
            }
        }
        if self.hedge_percentile.is_some_and(|p| !(0.0..1.0).contains(&p)) {
            out.push(problem(key("hedge_percentile"), "must be at least 0.0 (off) and below 1.0, e.g. 0.95"));
        }
        out
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

/// The seizure ledger's storage and legal terms.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LedgerConfig {
    /// `sqlite://data/ledger.db` (embedded; the directory is created) or
    /// `postgres://user@host/db` (shared by many gateway replicas).
    pub url: String,
    /// How often lapsed seizures are swept into events (reads apply lapses anyway).
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// Maximum terms in months by asset class (R5) and the promotion convention (R3).
    pub terms: Terms,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self { url: "sqlite://data/ledger.db".into(), sweep_interval: Duration::from_secs(60), terms: Terms::default() }
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

/// How much each court may ask. Each court has its own budget, so one
/// court's burst never slows another.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// Requests per second a court may sustain (every method).
    pub rate: u32,
    /// Requests a court may send at once above its rate.
    pub burst: u32,
    /// Searches a court may make per day (days in China Standard Time); 0 for no limit.
    pub daily_searches: u64,
    /// Per-court overrides, keyed by court code: `[limits.courts."京0105"]`.
    pub courts: BTreeMap<String, CourtLimits>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self { rate: 50, burst: 100, daily_searches: 20_000, courts: BTreeMap::new() }
    }
}

/// One court's limits; unset keys take the general value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CourtLimits {
    /// Requests per second.
    pub rate: Option<u32>,
    /// Burst above the rate.
    pub burst: Option<u32>,
    /// Searches per day.
    pub daily_searches: Option<u64>,
}

impl LimitsConfig {
    /// The limits of `court`: (rate, burst, daily searches).
    pub fn of(&self, court: &str) -> (u32, u32, u64) {
        let o = self.courts.get(court).cloned().unwrap_or_default();
        (o.rate.unwrap_or(self.rate), o.burst.unwrap_or(self.burst), o.daily_searches.unwrap_or(self.daily_searches))
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
#[derive(Debug, Clone, Deserialize)]
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
    /// When set, `assetgw dev` runs a mock of this registry at `endpoint`.
    #[serde(default)]
    pub mock: Option<MockConfig>,
}

impl RegistryConfig {
    /// The effective cache lifetime.
    pub fn cache_ttl(&self, cache: &CacheConfig) -> Duration {
        self.cache_ttl.unwrap_or_else(|| cache.ttl.for_kind(self.kind))
    }

    /// The effective asset kinds.
    pub fn asset_kinds(&self) -> Vec<AssetKind> {
        self.asset_kinds.clone().unwrap_or_else(|| self.kind.default_asset_kinds())
    }
}

/// Behaviour of a mock registry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MockConfig {
    /// Answer latency: `fixed:5ms`, `uniform:2ms..20ms` or `longtail:10ms..200ms` (median..p99).
    pub latency: Latency,
    /// Share of calls, 0.0 to 1.0, that take `spike` longer.
    pub spike_rate: f64,
    /// Extra latency of a tail spike.
    #[serde(with = "humantime_serde")]
    pub spike: Duration,
    /// Share of calls answered with an injected error, 0.0 to 1.0.
    pub error_rate: f64,
    /// The gRPC code of injected errors.
    pub error_code: FaultCode,
    /// Never answer.
    pub hang: bool,
    /// Answer every call with `UNAVAILABLE`, as a registry down for maintenance.
    pub down: bool,
}

/// gRPC codes a mock can inject.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FaultCode {
    /// `UNAVAILABLE`: the registry is overloaded or restarting.
    #[default]
    Unavailable,
    /// `INTERNAL`: the registry has a bug.
    Internal,
    /// `RESOURCE_EXHAUSTED`: the registry sheds load.
    ResourceExhausted,
    /// `INVALID_ARGUMENT`: the registry rejects the request.
    InvalidArgument,
}

impl FaultCode {
    /// The name in configuration and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultCode::Unavailable => "unavailable",
            FaultCode::Internal => "internal",
            FaultCode::ResourceExhausted => "resource_exhausted",
            FaultCode::InvalidArgument => "invalid_argument",
        }
    }
}

impl std::str::FromStr for FaultCode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [FaultCode::Unavailable, FaultCode::Internal, FaultCode::ResourceExhausted, FaultCode::InvalidArgument]
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not one of unavailable, internal, resource_exhausted, invalid_argument"))
    }
}

impl From<FaultCode> for tonic::Code {
    fn from(code: FaultCode) -> Self {
        match code {
            FaultCode::Unavailable => tonic::Code::Unavailable,
            FaultCode::Internal => tonic::Code::Internal,
            FaultCode::ResourceExhausted => tonic::Code::ResourceExhausted,
            FaultCode::InvalidArgument => tonic::Code::InvalidArgument,
        }
    }
}

/// One problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key concerned, e.g. `registries[1].timeout`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} configuration problem(s):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  {}: {}", p.key, p.message)?;
        }
        Ok(())
    }
}

fn problem(key: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem { key: key.into(), message: message.into() }
}

impl Config {
    /// How `registry` is called: its own `calls`, then `[calls]`, then the defaults.
    pub fn policy(&self, registry: &RegistryConfig) -> CallPolicy {
        registry.calls.over(self.calls.over(CallPolicy::default()))
    }

    /// Loads a file (or the defaults when `path` is `None`), applies environment
    /// overrides and validates the result.
    pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, Problems> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| Problems(vec![problem(p.display().to_string(), format!("cannot read: {e}"))]))?,
            None => String::new(),
        };
        Self::parse(&text, env)
    }

    /// Parses configuration text, applies environment overrides and validates.
    pub fn parse(text: &str, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, Problems> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            Problems(vec![problem("(file)", e.message().to_string() + &at_span(text, e.span()))])
        })?;
        let mut problems = Vec::new();
        for (name, value) in env {
            if let Some(path) = name.strip_prefix(ENV_PREFIX) {
                if let Err(p) = apply_override(&mut table, path, &value) {
                    problems.push(problem(name, p));
                }
            }
        }
        let mut unknown = Vec::new();
        let mut record = |path: serde_ignored::Path<'_>| unknown.push(bracket_indices(&path.to_string()));
        let de = serde_ignored::Deserializer::new(toml::Value::Table(table), &mut record);
        let parsed: Result<Config, _> = serde_path_to_error::deserialize(de);
        problems.extend(
            unknown.into_iter().map(|k| problem(k, "unknown key; check its spelling against config/assetgw.toml")),
        );
        match parsed {
            Ok(config) => {
                problems.extend(config.validate());
                if problems.is_empty() { Ok(config) } else { Err(Problems(problems)) }
            }
            Err(e) => {
                problems.push(problem(e.path().to_string(), e.inner().to_string()));
                Err(Problems(problems))
            }
        }
    }

    /// Cross-field checks, all of them, so an operator fixes everything in one go.
    fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let s = &self.search;
        if s.deadline.is_zero() {
            out.push(problem("search.deadline", "must be longer than zero"));
        }
        out.extend(self.calls.problems("calls", s.deadline));
        let default = CallPolicy::default().timeout;
        if self.calls.timeout.is_none() && default > s.deadline {
            out.push(problem(
                "calls.timeout",
                format!(
                    "({}, the default) is longer than search.deadline ({}); set a shorter one",
                    human(default),
                    human(s.deadline)
                ),
            ));
        }
        if self.server.max_in_flight == 0 {
            out.push(problem("server.max_in_flight", "must be at least 1"));
        }
        if self.server.keepalive.is_zero() {
            out.push(problem("server.keepalive", "must be longer than zero"));
        }
        if s.max_debtors == 0 {
            out.push(problem("search.max_debtors", "must be at least 1"));
        }
        if self.cache.max_entries == 0 {
            out.push(problem(
                "cache.max_entries",
                "must be at least 1; use max_age = 0 in requests to bypass the cache",
            ));
        }
        if !(self.ledger.url.starts_with("sqlite:") || self.ledger.url.starts_with("postgres")) {
            out.push(problem("ledger.url", "must be sqlite://PATH or postgres://USER@HOST/DB"));
        }
        let t = &self.ledger.terms;
        for (key, months) in [
            ("deposit", t.deposit),
            ("aircraft", t.aircraft),
            ("real_estate", t.real_estate),
            ("ip", t.ip),
            ("securities", t.securities),
        ] {
            if months == 0 || months > 120 {
                out.push(problem(
                    format!("ledger.terms.{key}"),
                    format!("{months} months; a term is 1 to 120 months (R5)"),
                ));
            }
        }
        if self.ledger.sweep_interval.is_zero() {
            out.push(problem("ledger.sweep_interval", "must be longer than zero"));
        }
        for (code, o) in &self.limits.courts {
            if let Err(e) = identifiers::parse_court_code(code) {
                out.push(problem(format!("limits.courts.{code}"), e));
            }
            if o.rate == Some(0) {
                out.push(problem(format!("limits.courts.{code}.rate"), "must be at least 1"));
            }
        }
        if self.limits.rate == 0 {
            out.push(problem("limits.rate", "must be at least 1 request per second"));
        }
        if self.audit.retention < Duration::from_secs(86_400) {
            out.push(problem("audit.retention", "must be at least a day; supervisors read the trail afterwards"));
        }
        if self.registries.is_empty() {
            out.push(problem("registries", "no registry configured; add at least one [[registries]] table"));
        }
        let mut names = HashSet::new();
        for (i, r) in self.registries.iter().enumerate() {
            let key = |field: &str| format!("registries[{i}].{field}");
            if r.name.trim().is_empty() {
                out.push(problem(key("name"), "must not be empty"));
            } else if !names.insert(r.name.as_str()) {
                out.push(problem(
                    key("name"),
                    format!("`{}` is used by an earlier registry; names must be unique", r.name),
                ));
            }
            let scheme = if self.tls.plaintext { "http" } else { "https" };
            match r.endpoint.parse::<tonic::transport::Uri>() {
                Ok(uri) if uri.scheme_str() == Some(scheme) && uri.port_u16().is_some() => {}
                Ok(uri) if uri.scheme_str() == Some("http") => out.push(problem(
                    key("endpoint"),
                    format!("`{}` is plaintext; registries are called over mutual TLS (https://)", r.endpoint),
                )),
                _ => out.push(problem(
                    key("endpoint"),
                    format!("`{}` is not a URL like {scheme}://127.0.0.1:50061", r.endpoint),
                )),
            }
            out.extend(r.calls.problems(&key("calls"), s.deadline));
            if r.asset_kinds.as_ref().is_some_and(Vec::is_empty) {
                out.push(problem(key("asset_kinds"), "is empty; leave it out to use the kind's defaults"));
            }
            if let Some(m) = &r.mock {
                for (field, rate) in [("mock.error_rate", m.error_rate), ("mock.spike_rate", m.spike_rate)] {
                    if !(0.0..=1.0).contains(&rate) {
                        out.push(problem(key(field), format!("{rate} is not between 0.0 and 1.0")));
                    }
                }
            }
        }
        out
    }
}

/// `registries.0.colour` → `registries[0].colour`, as the other problems spell keys.
fn bracket_indices(path: &str) -> String {
    path.split('.').fold(String::new(), |mut out, seg| {
        if seg.bytes().all(|b| b.is_ascii_digit()) && !out.is_empty() {
            out += &format!("[{seg}]");
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out += seg;
        }
        out
    })
}

fn human(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(d)
}

fn at_span(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    span.map(|s| format!(" (line {})", text[..s.start.min(text.len())].lines().count().max(1))).unwrap_or_default()
}

/// Sets `path` (segments joined by `__`, lower-cased; numbers index arrays) to `value`.
fn apply_override(table: &mut toml::Table, path: &str, value: &str) -> Result<(), String> {
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let mut root = toml::Value::Table(std::mem::take(table));
    let result = set_path(&mut root, &path.to_ascii_lowercase(), parsed);
    if let toml::Value::Table(t) = root {
        *table = t;
    }
    result
}

fn set_path(root: &mut toml::Value, path: &str, value: toml::Value) -> Result<(), String> {
    let mut node = root;
    for seg in path.split("__") {
        node = match node {
            toml::Value::Table(t) => t.entry(seg).or_insert_with(|| toml::Value::Table(toml::Table::new())),
            toml::Value::Array(items) => {
                let len = items.len();
                seg.parse::<usize>()
                    .ok()
                    .and_then(|i| items.get_mut(i))
                    .ok_or_else(|| format!("`{seg}` is not an index of this list of {len}"))?
            }
            _ => return Err(format!("`{seg}` is below a key that is not a table")),
        };
    }
    *node = value;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_REGISTRY: &str = r#"
        [[registries]]
        name = "bank-a"
        kind = "bank"
        endpoint = "https://127.0.0.1:50061"
    "#;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn keys(p: Problems) -> Vec<String> {
        p.0.into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn the_shipped_config_is_valid() {
        let c = Config::parse(include_str!("../config/assetgw.toml"), []).unwrap();
        assert_eq!(c.registries.len(), 6);
        assert_eq!(c.registries[0].cache_ttl(&c.cache), Duration::from_secs(30));
        assert_eq!(c.registries[2].cache_ttl(&c.cache), Duration::from_secs(3600));
        assert_eq!(c.policy(&c.registries[0]).timeout, Duration::from_secs(2));
        assert_eq!(c.policy(&c.registries[3]).timeout, Duration::from_secs(3));
        assert_eq!(c.policy(&c.registries[3]), CallPolicy::default(), "the file shows every default");
    }

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let c = Config::parse(ONE_REGISTRY, []).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:50051".parse().unwrap());
        assert_eq!(c.search.deadline, Duration::from_secs(10));
        assert_eq!(c.registries[0].asset_kinds(), [AssetKind::Deposit, AssetKind::Securities]);
    }

    #[test]
    fn a_registry_overrides_calls_key_by_key() {
        let text = format!(
            "[calls]\nattempt_timeout = \"1s\"\nhedge_budget = 0.2\n{ONE_REGISTRY}calls = {{ timeout = \"500ms\", concurrency = 8 }}\n"
        );
        let c = Config::parse(&text, []).unwrap();
        let p = c.policy(&c.registries[0]);
        let d = CallPolicy::default();
        assert_eq!((p.timeout, p.concurrency), (Duration::from_millis(500), 8), "its own keys");
        assert_eq!(p.hedge_budget, 0.2, "[calls] where it sets none");
        assert_eq!(p.attempt_timeout, Duration::from_millis(500), "an attempt never outlasts the timeout");
        assert_eq!((p.breaker, p.retry_budget, p.hedge_percentile), (d.breaker, d.retry_budget, d.hedge_percentile));
    }

    #[test]
    fn every_unknown_key_is_reported_at_once() {
        let text = format!("[serch]\ndeadline = \"1s\"\n[cache]\nmax_entrys = 5\n{ONE_REGISTRY}colour = \"red\"\n");
        assert_eq!(keys(Config::parse(&text, []).unwrap_err()), ["cache.max_entrys", "registries[0].colour", "serch"]);
    }

    #[test]
    fn every_cross_field_problem_is_reported_with_its_key() {
        let text = r#"
            [search]
            deadline = "2s"
            max_debtors = 0
            [calls]
            timeout = "3s"
            [[registries]]
            name = "a"
            kind = "bank"
            endpoint = "127.0.0.1:1"
            calls = { timeout = "5s", concurrency = 0, hedge_percentile = 1.0, breaker = { failures = 0 } }
            [[registries]]
            name = "a"
            kind = "ip"
            endpoint = "https://127.0.0.1:2"
            asset_kinds = []
            [registries.mock]
            error_rate = 2.0
        "#;
        let problems = Config::parse(text, []).unwrap_err();
        assert_eq!(
            keys(problems.clone()),
            [
                "calls.timeout",
                "search.max_debtors",
                "registries[0].endpoint",
                "registries[0].calls.timeout",
                "registries[0].calls.concurrency",
                "registries[0].calls.breaker.failures",
                "registries[0].calls.hedge_percentile",
                "registries[1].name",
                "registries[1].asset_kinds",
                "registries[1].mock.error_rate",
            ]
        );
        let shown = problems.to_string();
        assert!(shown.starts_with("10 configuration problem(s):"), "{shown}");
        assert!(shown.contains("registries[0].calls.timeout: (5s) is longer than search.deadline (2s)"), "{shown}");
    }

    #[test]
    fn type_errors_name_their_key() {
        let p = Config::parse(&format!("[search]\ndeadline = \"soon\"\n{ONE_REGISTRY}"), []).unwrap_err();
        assert_eq!(keys(p), ["search.deadline"]);
        let p = Config::parse(&ONE_REGISTRY.replace("bank\"", "piggybank\""), []).unwrap_err();
        assert!(p.0[0].message.contains("unknown registry kind `piggybank`"), "{p}");
        let p = Config::parse("this is not toml", []).unwrap_err();
        assert_eq!(keys(p), ["(file)"]);
    }

    #[test]
    fn environment_overrides_keys_and_list_entries() {
        let c = Config::parse(
            ONE_REGISTRY,
            env(&[
                ("ASSETGW__SEARCH__DEADLINE", "5s"),
                ("ASSETGW__SEARCH__MAX_DEBTORS", "3"),
                ("ASSETGW__REGISTRIES__0__CALLS__TIMEOUT", "1s"),
                ("OTHER", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(c.search.deadline, Duration::from_secs(5));
        assert_eq!(c.search.max_debtors, 3);
        assert_eq!(c.registries[0].calls.timeout, Some(Duration::from_secs(1)));
        let p = Config::parse(ONE_REGISTRY, env(&[("ASSETGW__REGISTRIES__4__CALLS__TIMEOUT", "1s")])).unwrap_err();
        assert_eq!(keys(p), ["ASSETGW__REGISTRIES__4__CALLS__TIMEOUT"]);
        let p = Config::parse(ONE_REGISTRY, env(&[("ASSETGW__SEARCH__DEADLINE", "60s")])).unwrap();
        assert_eq!(p.search.deadline, Duration::from_secs(60));
    }

    #[test]
    fn no_registries_is_a_problem() {
        assert_eq!(keys(Config::parse("", []).unwrap_err()), ["registries"]);
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_parsed_or_refused_with_problems_never_a_panic(text in "\\PC{0,200}", key in "[a-z_]{1,12}") {
            let _ = Config::parse(&text, []);
            let _ = Config::parse(&format!("[{key}]\n{key} = {text:?}\n"), [(format!("{ENV_PREFIX}{key}"), text.clone())]);
        }
    }
}
