//! Starts mock registries and a gateway on loopback, over mutual TLS with a
//! test PKI, and hands out clients that call as the court of each case.

use std::{
    collections::HashMap,
    io::Write,
    net::SocketAddr,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use assetgw::{
    core::proto::{
        Debtor, RegistryKind, RegistryOutcome, RegistryStatus, SearchQuery, SearchRequest, SearchResponse,
        asset_search_service_client::AssetSearchServiceClient, debtor,
    },
    core::{
        clock::{Clock, ManualClock, SharedClock, SystemClock},
        identifiers::CaseNumber,
    },
    gateway::server,
    gateway::server::StartError,
    ops::config::{CallsConfig, Config, RegistryConfig, TlsConfig},
    ops::pki::{self, Ca, Role, TlsFiles, Validity},
    tools::mock::{self, Latency, MockConfig, MockRegistry},
};
use futures::future::BoxFuture;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tonic::codegen::http;
use tonic::transport::{Channel, Endpoint};
use tower::ServiceExt;

pub use crate::spawned::{Process, Redis};

pub const CASE: &str = "（2024）京0105执1234号";
/// Demo debtor with many assets, including fund units reported by a bank and the depository.
pub const RICH: &str = "110105199001011232";
/// Demo debtor with nothing anywhere.
pub const NOBODY: &str = "360426199101010071";
pub const COMPANY: &str = "91110000600037341L";

/// The test run's PKI: a CA, the gateway's certificate, the demo courts'.
pub fn test_pki() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch().join("pki");
        pki::ensure_dev(&dir, &[]).unwrap();
        dir
    })
}

/// The TLS files of `role` in the test PKI, issued on first use.
pub fn tls_of(role: Role) -> TlsFiles {
    static ISSUING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = ISSUING.lock().unwrap();
    let dir = test_pki();
    let files = TlsFiles::of(dir, &role);
    if !files.cert.exists() {
        let hosts = ["localhost".to_string(), "127.0.0.1".to_string()];
        Ca::load(dir).unwrap().issue_into(dir, &role, &hosts, Validity::days(30)).unwrap();
    }
    files
}

/// A fleet of `banks` mock banks (`bank-0001`…) with `settings`, each with its certificate
/// in the test PKI, serving on a free loopback port; its address.
pub async fn serve_fleet(banks: usize, settings: assetgw::tools::mock::MockConfig) -> String {
    serve_counted_fleet(banks, settings).await.0
}

/// A fleet as [`serve_fleet`] serves it, and the fleet, to count what its banks received.
pub async fn serve_counted_fleet(
    banks: usize,
    settings: assetgw::tools::mock::MockConfig,
) -> (String, assetgw::tools::mock::fleet::Fleet) {
    use assetgw::tools::mock::fleet::{Fleet, FleetConfig, bank_name};
    for n in 1..=banks {
        tls_of(Role::Registry(bank_name(n)));
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let fleet = Fleet::new(&FleetConfig { banks, settings, deferred_share: 0.0 }).unwrap();
    let served = fleet.clone();
    tokio::spawn(async move { served.serve(listener, test_pki(), std::future::pending()).await });
    (address, fleet)
}

/// The gateway's TLS configuration in the test PKI.
pub fn gateway_tls() -> TlsConfig {
    let f = tls_of(Role::Gateway);
    TlsConfig { plaintext: false, ca: f.ca, cert: f.cert, key: f.key }
}

/// A channel to a registry, presenting the gateway's certificate (as the gateway and admin tools do).
pub fn registry_channel(endpoint: &str, name: &str) -> Channel {
    let tls = tls_of(Role::Gateway).client(name).unwrap();
    Endpoint::from_shared(endpoint.to_string()).unwrap().tls_config(tls).unwrap().connect_lazy()
}

/// Which court a request is sent as (see [`as_court`]).
#[derive(Clone)]
struct AsCourt(String);

/// `message`, sent as the court of `case` (the default court if it has none).
pub fn as_court<T>(case: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(case) = CaseNumber::parse(case) {
        request.extensions_mut().insert(AsCourt(case.court_code));
    }
    request
}

/// A client transport that calls the gateway as a court: each court over
/// its own mutual-TLS connection with its own certificate; 京0105 unless a
/// request says otherwise ([`as_court`]). Adds the officer header when missing.
#[derive(Clone)]
pub struct Courts {
    url: String,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Courts {
    pub fn new(url: &str) -> Self {
        Self { url: url.into(), channels: Arc::default() }
    }

    fn channel(&self, court: &str) -> Channel {
        let mut channels = self.channels.lock().unwrap();
        channels
            .entry(court.to_string())
            .or_insert_with(|| {
                let endpoint = Endpoint::from_shared(self.url.clone()).unwrap();
                if self.url.starts_with("http:") {
                    return endpoint.connect_lazy();
                }
                let tls = tls_of(Role::Court(court.to_string())).client("localhost").unwrap();
                endpoint.tls_config(tls).unwrap().connect_lazy()
            })
            .clone()
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Courts {
    type Response = http::Response<tonic::body::Body>;
    type Error = tonic::transport::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        let court = request.extensions().get::<AsCourt>().map_or("京0105".to_string(), |c| c.0.clone());
        if !request.headers().contains_key(assetgw::gateway::auth::OFFICER_HEADER) {
            request
                .headers_mut()
                .insert(assetgw::gateway::auth::OFFICER_HEADER, http::HeaderValue::from_static("officer-7"));
        }
        if self.url.starts_with("http:") {
            // A plaintext gateway takes the court from metadata.
            let mut metadata = tonic::metadata::MetadataMap::new();
            metadata.insert_bin(
                assetgw::gateway::auth::COURT_HEADER,
                tonic::metadata::MetadataValue::from_bytes(court.as_bytes()),
            );
            request.headers_mut().extend(metadata.into_headers());
        }
        let channel = self.channel(&court);
        Box::pin(async move { channel.oneshot(request).await })
    }
}

/// One registry of a test stack.
#[derive(Clone)]
pub struct Reg {
    pub name: &'static str,
    pub kind: RegistryKind,
    pub mock: MockConfig,
    /// `false`: configured at an address where nothing listens.
    pub up: bool,
    pub timeout: Option<Duration>,
    pub cache_ttl: Option<Duration>,
    /// Configure the gateway with this kind instead of the mock's (to provoke contract breaches).
    pub declared: Option<RegistryKind>,
    /// Serve the mock with this other registry's certificate (an impostor).
    pub cert_of: Option<&'static str>,
}

impl Reg {
    pub fn new(name: &'static str, kind: RegistryKind) -> Self {
        Self {
            name,
            kind,
            mock: MockConfig::default(),
            up: true,
            timeout: None,
            cache_ttl: None,
            declared: None,
            cert_of: None,
        }
    }
    pub fn latency(mut self, l: &str) -> Self {
        self.mock.latency = l.parse::<Latency>().unwrap();
        self
    }
    pub fn down(mut self) -> Self {
        self.mock.down = true;
        self
    }
    pub fn deferred(mut self, d: &str) -> Self {
        self.mock.deferred = Some(d.parse().unwrap());
        self
    }
    pub fn dead(mut self) -> Self {
        self.up = false;
        self
    }
    pub fn timeout(mut self, ms: u64) -> Self {
        self.timeout = Some(Duration::from_millis(ms));
        self
    }
    pub fn ttl(mut self, ms: u64) -> Self {
        self.cache_ttl = Some(Duration::from_millis(ms));
        self
    }
}

/// A port nobody listens on now.
pub async fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port()
}

/// The dev stack's six registries, answering at once.
pub fn standard() -> Vec<Reg> {
    vec![
        Reg::new("bank-a", RegistryKind::Bank),
        Reg::new("bank-b", RegistryKind::Bank),
        Reg::new("realestate", RegistryKind::RealEstate),
        Reg::new("ip", RegistryKind::Ip),
        Reg::new("aviation", RegistryKind::Aviation),
        Reg::new("securities", RegistryKind::Securities),
    ]
}

pub struct Stack {
    pub url: String,
    /// The ledger's clock: tests move it forward.
    pub clock: Arc<ManualClock>,
    mocks: HashMap<&'static str, MockRegistry>,
    /// The registries as the gateway is configured with them.
    pub registries: Vec<RegistryConfig>,
    /// The ledger (and audit trail) database.
    pub ledger_url: String,
    /// The gateway's configuration.
    pub config: Config,
    calls: HashMap<&'static str, Arc<AtomicU64>>,
    stop: Option<watch::Sender<()>>,
    gateway: Option<JoinHandle<Result<(), StartError>>>,
}

async fn stopped(mut rx: watch::Receiver<()>) {
    let _ = rx.changed().await;
}

impl Stack {
    pub async fn start(regs: Vec<Reg>) -> Stack {
        Self::with(regs, |_| {}).await
    }

    /// The standard stack, with at most `max_debtors` debtors per search.
    pub async fn start_limited(max_debtors: usize) -> Stack {
        Self::with(standard(), |c| c.search.max_debtors = max_debtors).await
    }

    /// The standard registries over a ledger on `db`; `None` when PostgreSQL is
    /// not reachable outside CI (in CI that is a failure, not a skip).
    pub async fn on(db: Db, regs: Vec<Reg>) -> Option<Stack> {
        let url = ledger_url(db).await?;
        Some(Self::with(regs, |c| c.ledger.url = url).await)
    }

    pub async fn with(regs: Vec<Reg>, tweak: impl FnOnce(&mut Config)) -> Stack {
        capture_logs();
        let (stop, rx) = watch::channel(());
        let mut calls = HashMap::new();
        let mut mocks = HashMap::new();
        let mut registries = Vec::new();
        for r in regs {
            let addr = if r.up {
                let m = MockRegistry::new(r.name, r.kind, r.mock.clone()).unwrap();
                calls.insert(r.name, m.calls());
                mocks.insert(r.name, m.clone());
                let tls = tls_of(Role::Registry(r.cert_of.unwrap_or(r.name).into()));
                mock::spawn(m, "127.0.0.1:0".parse().unwrap(), Some(tls), stopped(rx.clone())).await.unwrap().0
            } else {
                dead_addr().await
            };
            registries.push(RegistryConfig {
                cache_ttl: r.cache_ttl,
                calls: CallsConfig { timeout: r.timeout, ..CallsConfig::default() },
                ..RegistryConfig::new(r.name, r.declared.unwrap_or(r.kind), format!("https://{addr}"))
            });
        }
        let mut config = Config { registries: registries.clone(), tls: gateway_tls(), ..Config::default() };
        config.ledger.url = format!("sqlite://{}", scratch().join("ledger.db").display());
        config.audit.key_file = test_pki().join("audit.key");
        // Tests are bursts; the limit tests set their own.
        (config.limits.rate, config.limits.burst) = (100_000, 100_000);
        tweak(&mut config);
        let (ledger_url, kept) = (config.ledger.url.clone(), config.clone());
        let clock = Arc::new(ManualClock::new(SystemClock.now()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if config.tls.plaintext { "http" } else { "https" };
        let url = format!("{scheme}://{}", listener.local_addr().unwrap());
        let ledger_clock: SharedClock = clock.clone();
        let gateway =
            tokio::spawn(async move { server::run_with_clock(&config, ledger_clock, listener, stopped(rx)).await });
        let mut stack = Stack {
            url,
            clock,
            mocks,
            calls,
            registries,
            ledger_url,
            config: kept,
            stop: Some(stop),
            gateway: Some(gateway),
        };
        stack.wait_until_serving().await;
        stack
    }

    /// Waits for the gateway's health check (it opens and migrates its ledger first); a gateway
    /// that stopped instead says why.
    async fn wait_until_serving(&mut self) {
        let mut health = tonic_health::pb::health_client::HealthClient::new(self.channel());
        for _ in 0..200 {
            let check = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await;
            if check.is_ok() {
                return;
            }
            if let Some(gateway) = self.gateway.take_if(|g| g.is_finished()) {
                panic!("the gateway stopped before serving: {:?}", gateway.await);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the gateway did not start in 5 s");
    }

    pub async fn client(&self) -> AssetSearchServiceClient<Courts> {
        AssetSearchServiceClient::new(self.channel())
    }

    pub fn channel(&self) -> Courts {
        Courts::new(&self.url)
    }

    /// A mock registry, to inspect its control state.
    pub fn mock(&self, name: &str) -> &MockRegistry {
        &self.mocks[name]
    }

    /// SearchAssets calls a mock has received.
    pub fn calls(&self, name: &str) -> u64 {
        self.calls[name].load(Ordering::SeqCst)
    }

    pub async fn search(&self, query: SearchQuery) -> Result<SearchResponse, tonic::Status> {
        let request = as_court(&query.case_number.clone(), SearchRequest { query: Some(query) });
        self.client().await.search(request).await.map(|r| r.into_inner())
    }

    /// Stops mocks and gateway and waits for the gateway to drain.
    pub async fn stop(mut self) -> Result<(), StartError> {
        self.stop.take();
        match self.gateway.take() {
            Some(task) => task.await.unwrap(),
            None => Ok(()),
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop.take();
    }
}

/// Which ledger database a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the tests use.
pub fn pg_base() -> String {
    std::env::var("ASSETGW_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh ledger database: a SQLite file, or a new schema on the PostgreSQL server.
pub async fn ledger_url(db: Db) -> Option<String> {
    match db {
        Db::Sqlite => Some(format!("sqlite://{}", scratch().join("ledger.db").display())),
        Db::Postgres => {
            use sqlx::Connection;
            let mut conn = match sqlx::PgConnection::connect(&pg_base()).await {
                Ok(c) => c,
                Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("PostgreSQL is required in CI: {e}"),
                Err(e) => {
                    eprintln!("skipped: PostgreSQL not reachable at {} ({e})", pg_base());
                    return None;
                }
            };
            // Schemas of earlier runs go first, once per run.
            static CLEANED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
            CLEANED
                .get_or_init(|| async {
                    let mut conn = sqlx::PgConnection::connect(&pg_base()).await.unwrap();
                    let old: Vec<(String,)> = sqlx::query_as(
                        "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name LIKE 'it\\_%'",
                    )
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                    for (schema,) in old {
                        let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&mut conn).await;
                    }
                })
                .await;
            static N: AtomicU64 = AtomicU64::new(0);
            let schema = format!("it_{}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst), rand_suffix());
            sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut conn).await.unwrap();
            Some(format!("{}?options=-c%20search_path%3D{schema}", pg_base()))
        }
    }
}

fn rand_suffix() -> u64 {
    u64::from(SystemClock.now().timestamp_subsec_nanos())
}

/// Runs an async scenario on both ledger backends as two tests.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::harness::Db::Sqlite).await
                }
                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::harness::Db::Postgres).await
                }
            }
        )*
    };
}

/// A fresh directory for one test's files.
pub fn scratch() -> std::path::PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir =
        std::env::temp_dir().join(format!("assetgw-it-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An address where nothing listens: bound, then released.
async fn dead_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap()
}

pub fn debtor(id: &str) -> Debtor {
    let id = if assetgw::core::identifiers::looks_like_resident_id(id) {
        debtor::Id::ResidentId(id.into())
    } else {
        debtor::Id::CreditCode(id.into())
    };
    Debtor { id: Some(id), ..Default::default() }
}

pub fn query(debtors: &[&str]) -> SearchQuery {
    SearchQuery { case_number: CASE.into(), debtors: debtors.iter().map(|d| debtor(d)).collect(), ..Default::default() }
}

pub fn outcome<'a>(r: &'a SearchResponse, debtor: usize, registry: &str) -> &'a RegistryOutcome {
    r.debtors[debtor].registries.iter().find(|o| o.registry == registry).unwrap()
}

pub fn status(o: &RegistryOutcome) -> RegistryStatus {
    RegistryStatus::try_from(o.status).unwrap()
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Every log line of the test binary, at debug level for assetgw.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static LOGS: OnceLock<Captured> = OnceLock::new();

fn capture_logs() -> &'static Captured {
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_env_filter("assetgw=trace,warn")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        captured
    })
}

/// What has been logged so far.
pub fn logs() -> String {
    String::from_utf8_lossy(&capture_logs().0.lock().unwrap()).into_owned()
}

/// A SQLite ledger with the database's own invariant checks removed, as an
/// old binary or a hand edit would leave it: for tests of what the gateway
/// does with damaged data.
pub async fn unguarded_sqlite(url: &str) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    let triggers: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'invariant%'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(triggers.len() >= 8, "the ledger's invariant triggers: {triggers:?}");
    for t in triggers {
        sqlx::query(&format!("DROP TRIGGER {t}")).execute(&mut conn).await.unwrap();
    }
    conn
}
