//! The command line's grammar (clap): every subcommand and flag of the
//! `assetgw` binary, which only dispatches them to [`super::commands`] and
//! the other tools.

// clap turns doc comments into help text: the flattened argument groups and
// subcommand fields below have none on purpose (their own items say it).
#![allow(missing_docs)]

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};

use crate::{
    core::{
        clock::BeijingHours,
        proto::{AssetKind, RegistryKind},
    },
    ledger::rules::Lifting,
    tools::{
        client::ConnectArgs,
        debtor_cli::DebtorCommand,
        distribution_cli::DistributionCommand,
        loadgen,
        mock::{Deferral, FaultCode, Latency, MockConfig},
    },
};

#[derive(Parser)]
#[command(name = "assetgw", version, about = "Debtor asset-search federation gateway (查人找物)")]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: CliCommand,
}

#[derive(Subcommand)]
pub enum CliCommand {
    /// Run the whole stack on loopback: every mock registry of the config and the gateway.
    Dev {
        /// Configuration file.
        #[arg(long, env = "ASSETGW_CONFIG", default_value = "config/assetgw.toml")]
        config: PathBuf,
        /// Add a fleet of this many mock banks (bank-0001…) as registries, served on 127.0.0.1:50170;
        /// each holds accounts for 2 % of debtors.
        #[arg(long)]
        fleet: Option<usize>,
        /// Where the fleet listens.
        #[arg(long, default_value = "127.0.0.1:50170", requires = "fleet")]
        fleet_listen: SocketAddr,
    },
    /// Run the gateway against the configured registries.
    Serve {
        /// Configuration file.
        #[arg(long, env = "ASSETGW_CONFIG", default_value = "config/assetgw.toml")]
        config: PathBuf,
    },
    /// Run one mock registry, over mutual TLS with its certificate from the PKI directory.
    MockRegistry {
        /// Registry name, e.g. bank-icbc.
        #[arg(long)]
        name: String,
        /// Kind: bank, real_estate, ip, aviation or securities.
        #[arg(long, value_parser = parse_registry_kind)]
        kind: RegistryKind,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:50061")]
        listen: SocketAddr,
        /// PKI directory: `ca.pem` and `registries/<name>.pem`.
        #[arg(long, default_value = "data/pki")]
        pki: PathBuf,
        /// Serve without TLS (a closed test network only).
        #[arg(long)]
        plaintext: bool,
        #[command(flatten)]
        faults: FaultArgs,
    },
    /// Run a fleet of mock banks behind one port, `bank-0001`…: each with its certificate (chosen by the TLS
    /// server name the caller asks for) and its own data; most hold nothing for a given debtor.
    MockFleet {
        /// Banks in the fleet.
        #[arg(long, default_value_t = 100)]
        banks: usize,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:50170")]
        listen: SocketAddr,
        /// PKI directory: its CA issues any bank certificate that is missing (`registries/bank-NNNN.pem`).
        #[arg(long, default_value = "data/pki")]
        pki: PathBuf,
        /// Share of debtors (0.0 to 1.0) each bank holds accounts for.
        #[arg(long, default_value_t = 0.02)]
        holders: f64,
        /// Share of banks (0.0 to 1.0) that answer later, with --deferred.
        #[arg(long, default_value_t = 0.0, requires = "deferred")]
        deferred_share: f64,
        /// Write a registry directory listing the fleet's banks here, for a gateway's `network.directory`.
        #[arg(long)]
        directory: Option<PathBuf>,
        #[command(flatten)]
        faults: FaultArgs,
    },
    /// Change a running mock registry's faults: only those named change (`--reset` restores the ones it
    /// started with); prints them all. Connects with the gateway's certificate.
    MockFaults {
        /// The mock's URL (`http://` for a plaintext mock).
        #[arg(long, default_value = "https://127.0.0.1:50061")]
        target: String,
        /// The mock's registry name (its certificate's name).
        #[arg(long, default_value = "bank-icbc")]
        name: String,
        /// PKI directory: `ca.pem` and `gateway.pem`.
        #[arg(long, env = "ASSETGW_PKI", default_value = "data/pki")]
        pki: PathBuf,
        /// Restore the faults the mock started with (its configuration), then apply any named here.
        #[arg(long)]
        reset: bool,
        #[command(flatten)]
        faults: FaultArgs,
    },
    /// Load-test a gateway (or, with `--scenario direct`, the registries themselves) and report latency and rate.
    Loadgen {
        #[command(flatten)]
        connection: ConnectArgs,
        /// miss, hit, stream, seizure, echo (a health check: the gateway's floor), or direct (no gateway: the registries of --config, asked as the gateway would).
        #[arg(long, value_enum, default_value = "miss")]
        scenario: loadgen::Scenario,
        /// Closed loop: callers sending back to back.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Open loop: calls per second on a fixed schedule (overrides --concurrency).
        #[arg(long)]
        rate: Option<f64>,
        /// Measured time.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
        duration: Duration,
        /// Unmeasured warm-up first.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
        warmup: Duration,
        /// HTTP/2 connections to the gateway.
        #[arg(long, default_value_t = 1)]
        connections: usize,
        /// Deadline of each call.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
        timeout: Duration,
        /// Configuration whose registries `--scenario direct` asks.
        #[arg(long, env = "ASSETGW_CONFIG", default_value = "config/assetgw.toml")]
        config: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// `miss`: draw debtors from this many fixed ones (the same in every run) instead of a new one per call.
        #[arg(long)]
        debtors: Option<usize>,
    },
    /// Check a registry implementation against the registry contract; exit 1 on any failure.
    Conformance {
        /// The registry, `host:port`.
        #[arg(long)]
        target: String,
        /// The registry's name, as its certificate carries it.
        #[arg(long)]
        name: Option<String>,
        /// PKI directory: `ca.pem` and the gateway's certificate, presented to the registry.
        #[arg(long, env = "ASSETGW_PKI", default_value = "data/pki")]
        pki: PathBuf,
        /// Client certificate (PEM) instead of the gateway's in the PKI directory.
        #[arg(long, requires = "key")]
        cert: Option<PathBuf>,
        /// Its private key (PEM).
        #[arg(long, requires = "cert")]
        key: Option<PathBuf>,
        /// Talk plaintext (a registry on a closed test network).
        #[arg(long, conflicts_with = "name")]
        plaintext: bool,
        /// A certificate of the same CA that is not the gateway's, which the registry
        /// must refuse (default: court 京0105's in the PKI directory, if there).
        #[arg(long, requires = "outsider_key")]
        outsider_cert: Option<PathBuf>,
        /// Its private key (PEM).
        #[arg(long, requires = "outsider_cert")]
        outsider_key: Option<PathBuf>,
        /// A debtor the registry holds at least one asset for.
        #[arg(long, default_value = crate::tools::conformance::KNOWN_DEBTOR)]
        debtor: String,
        /// Deadline sent with each call.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
        deadline: Duration,
        /// How long to wait for a deferred answer to become ready (a later one is checked up to its ticket).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
        deferred_wait: Duration,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Issue certificates from the network CA.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Read and check the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Search a debtor's assets through a gateway.
    Search {
        #[command(flatten)]
        connection: ConnectArgs,
        /// Enforcement case number, e.g. （2024）京0105执1234号.
        #[arg(long = "case", required_unless_present = "follow")]
        case_number: Option<String>,
        /// Debtor resident ID or credit code; repeat for the guarantors of the case.
        #[arg(long = "debtor", required_unless_present = "follow")]
        debtors: Vec<String>,
        /// Asset kinds wanted (repeatable; default all): deposit, real_estate, patent, trademark, aircraft, securities.
        #[arg(long = "kind", value_parser = parse_asset_kind)]
        kinds: Vec<AssetKind>,
        /// Accept cached answers no older than this, e.g. 30s.
        #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "fresh")]
        max_age: Option<Duration>,
        /// Bypass the cache: ask every registry afresh.
        #[arg(long)]
        fresh: bool,
        /// Search a credit code that fails its checksum (a genuine early code).
        #[arg(long)]
        accept_unchecked_credit_code: bool,
        /// Overall deadline.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
        timeout: Duration,
        /// Print canonical proto JSON.
        #[arg(long)]
        json: bool,
        /// Stream: show each registry's answer as it arrives.
        #[arg(long, conflicts_with_all = ["submit", "follow"])]
        stream: bool,
        /// Submit the search and print its id at once; registries answer into it.
        #[arg(long, conflicts_with = "follow")]
        submit: bool,
        /// The court's id of the submission, so that a retry submits nothing new (default: a fresh one).
        #[arg(long, requires = "submit")]
        request_id: Option<String>,
        /// Follow search ID: print each registry's answer as it arrives, then the result.
        #[arg(long, value_name = "ID")]
        follow: Option<String>,
        /// With --follow: only answers after this sequence number (resume where a follow stopped).
        #[arg(long, default_value_t = 0, requires = "follow")]
        after: i64,
    },
    /// Benchmark search jobs: open many searches whose registries answer later, at a rate, through a
    /// gateway; follow every k-th and measure the time from an answer's readiness to the watch stream.
    BenchJobs {
        #[command(flatten)]
        connection: ConnectArgs,
        /// Searches to open (one debtor each).
        #[arg(long, default_value_t = 1000)]
        searches: usize,
        /// Searches opened per second.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Follow every this-many-th search with WatchSearch.
        #[arg(long, default_value_t = 100)]
        watch_every: usize,
        /// How long to wait for the followed searches after the last is opened.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
        settle: Duration,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the court's searches (those started with --submit, and those with answers pending).
    Searches {
        #[command(flatten)]
        connection: ConnectArgs,
        /// A case of the court, to name the court (or use --court).
        #[arg(long = "case")]
        case_number: Option<String>,
        /// Only searches with registries still pending.
        #[arg(long)]
        open: bool,
        /// Print only the searches' ids, newest first (for scripts).
        #[arg(long)]
        ids: bool,
    },
    /// Call any gateway method with a JSON request, e.g.
    /// `assetgw call SeizureService/GetSeizureQueue '{"assetKind":"ASSET_KIND_REAL_ESTATE","assetId":"…"}'`.
    Call {
        #[command(flatten)]
        connection: ConnectArgs,
        /// `Service/Method`, e.g. `SeizureService/PlaceSeizure`.
        method: String,
        /// The request in proto3 JSON.
        #[arg(default_value = "{}")]
        request: String,
        /// Deadline of a unary call.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
        timeout: Duration,
        /// Print only this field of each answer, by dotted path (`result.message`,
        /// `seizures.0.seizureId`); repeat for more, printed tab-separated.
        #[arg(long = "field")]
        fields: Vec<String>,
    },
    /// The debtor as a whole: its picture, cases, series designation and bankruptcy decisions.
    Debtor {
        #[command(subcommand)]
        command: DebtorCommand,
    },
    /// What rank is for: proceeds, secured claims, participation, distribution plans and their
    /// objections, a case's funds (R28–R29).
    Distribution {
        #[command(subcommand)]
        command: DistributionCommand,
    },
    /// Seizure-ledger maintenance.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Check a configuration file and report every problem at once.
    CheckConfig {
        /// Configuration file.
        #[arg(long, env = "ASSETGW_CONFIG", default_value = "config/assetgw.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum PkiCommand {
    /// Create a CA in DIR (`ca.pem`, `ca.key`) unless one exists.
    Init {
        /// PKI directory.
        #[arg(long, default_value = "data/pki")]
        dir: PathBuf,
    },
    /// Issue a certificate: `court 京0105`, `registry bank-icbc --host registry.bank.example`, `gateway --host gw.example`.
    Issue {
        /// PKI directory holding the CA; the certificate and key are written under it.
        #[arg(long, default_value = "data/pki")]
        dir: PathBuf,
        /// court, registry or gateway.
        role: String,
        /// Court code or registry name (not for the gateway).
        name: Option<String>,
        /// DNS names or IP addresses a server is reached at (repeatable).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Days of validity.
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// Replace an identity already issued under this name (its certificate and key).
        #[arg(long)]
        force: bool,
    },
    /// Issue the certificates a mock fleet's banks (`bank-0001`…) lack, with the development CA
    /// (created if missing), the gateway's and the demo courts'.
    Fleet {
        /// PKI directory.
        #[arg(long, default_value = "data/pki")]
        dir: PathBuf,
        /// Banks in the fleet.
        #[arg(long)]
        banks: usize,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check every chain; exit 1 naming the first altered, deleted, inserted or reordered record.
    Verify {
        /// Configuration file (its `ledger.url` and `audit.key_file`).
        #[arg(long, env = "ASSETGW_CONFIG", default_value = "config/assetgw.toml")]
        config: PathBuf,
    },
    /// Print what was done under a case or for a debtor, oldest first, one JSON record per line.
    Export {
        /// Configuration file.
        #[arg(long, env = "ASSETGW_CONFIG", default_value = "config/assetgw.toml")]
        config: PathBuf,
        /// An enforcement case number.
        #[arg(long = "case", conflicts_with = "debtor", required_unless_present = "debtor")]
        case_number: Option<String>,
        /// A debtor's resident ID or credit code (found by keyed hash; never stored in clear).
        #[arg(long)]
        debtor: Option<String>,
    },
}

/// How a mock registry misbehaves. A flag left out is the mock's default (`mock-registry`,
/// `mock-fleet`) or, for `mock-faults`, what the running mock has now.
#[derive(clap::Args)]
pub struct FaultArgs {
    /// Latency: fixed:5ms, uniform:2ms..20ms or longtail:10ms..200ms.
    #[arg(long)]
    latency: Option<Latency>,
    /// Share of calls (0.0 to 1.0) that take --spike longer.
    #[arg(long)]
    spike_rate: Option<f64>,
    /// Extra latency of a tail spike.
    #[arg(long, value_parser = humantime::parse_duration)]
    spike: Option<Duration>,
    /// Share of calls answered with an injected error (0.0 to 1.0).
    #[arg(long)]
    error_rate: Option<f64>,
    /// The gRPC code of injected errors.
    #[arg(long, value_enum)]
    error_code: Option<FaultCode>,
    /// Never answer (`--hang false` answers again).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    hang: Option<bool>,
    /// Answer every call UNAVAILABLE (`--down false` brings it back).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    down: Option<bool>,
    /// Answer searches that accept it later, with a ticket: 30s..2h, or `next 06:00` (the next day's
    /// batch); `--deferred now` answers at once again.
    #[arg(long, value_parser = parse_deferral)]
    deferred: Option<Later>,
    /// How far the registry's clock runs behind the real one (its tickets' times are read off it).
    #[arg(long, value_parser = humantime::parse_duration)]
    clock_behind: Option<Duration>,
    /// Pad every answer to about this many bytes more (an answer larger than the gateway takes).
    #[arg(long)]
    answer_bytes: Option<u64>,
}

/// When a mock answers: later as a [`Deferral`] says, or (`None`) at once.
#[derive(Clone, Copy)]
struct Later(Option<Deferral>);

fn parse_deferral(s: &str) -> Result<Later, String> {
    if s == "now" { Ok(Later(None)) } else { s.parse().map(|d| Later(Some(d))) }
}

impl FaultArgs {
    /// The mock settings the flags give, the rest at their defaults.
    pub fn config(&self) -> MockConfig {
        self.applied_to(MockConfig::default())
    }

    /// `current` with what the flags name changed, and nothing else.
    pub fn applied_to(&self, current: MockConfig) -> MockConfig {
        MockConfig {
            latency: self.latency.clone().unwrap_or(current.latency),
            spike_rate: self.spike_rate.unwrap_or(current.spike_rate),
            spike: self.spike.unwrap_or(current.spike),
            error_rate: self.error_rate.unwrap_or(current.error_rate),
            error_code: self.error_code.unwrap_or(current.error_code),
            hang: self.hang.unwrap_or(current.hang),
            down: self.down.unwrap_or(current.down),
            deferred: self.deferred.map_or(current.deferred, |later| later.0),
            holders: current.holders,
            clock_behind: self.clock_behind.unwrap_or(current.clock_behind),
            answer_bytes: self.answer_bytes.unwrap_or(current.answer_bytes),
            search_rate: current.search_rate,
            unbatched: current.unbatched,
        }
    }
}

#[derive(Subcommand)]
pub enum LedgerCommand {
    /// Check the ledger's invariants on the live database; exit 1 naming every violation.
    Verify {
        /// Configuration file (its `ledger.url` is checked).
        #[arg(long, env = "ASSETGW_CONFIG", default_value = "config/assetgw.toml")]
        config: PathBuf,
    },
    /// Measure how fast the outbox drains a backlog to six mock registries (and, with --hung, how long
    /// the others' orders wait while one registry hangs).
    BenchOutbox {
        /// The database: `sqlite://PATH` or `postgres://USER@HOST/DB` (use a scratch database).
        #[arg(long)]
        url: String,
        /// Orders in the backlog.
        #[arg(long, default_value_t = 10_000)]
        orders: u64,
        /// Sets of lanes, each with its own connections, as replicas would run them.
        #[arg(long, default_value_t = 1)]
        replicas: usize,
        /// The IP office never answers; a tenth of the orders are a backlog, the rest arrive at 200/s.
        #[arg(long)]
        hung: bool,
    },
    /// Measure one bankruptcy acceptance (R25) on a company holding many seizures across many courts.
    BenchBankruptcy {
        /// The database: `sqlite://PATH` or `postgres://USER@HOST/DB` (use a scratch database).
        #[arg(long)]
        url: String,
        /// Seizures on the company's assets.
        #[arg(long, default_value_t = 50_000)]
        seizures: u64,
        /// Courts holding them, one case each.
        #[arg(long, default_value_t = 500)]
        courts: u64,
        /// Seizures per asset: one first, the rest waiting.
        #[arg(long, default_value_t = 5)]
        per_asset: u64,
        /// Who lifts: `at_once` (the acceptance, with a release order each) or `holding_courts`.
        #[arg(long, default_value = "at_once", value_parser = parse_lifting)]
        lifting: Lifting,
    },
    /// Simulate the re-searches of terminated cases (R30) at scale, months in minutes on a simulated
    /// clock: registry calls per re-search with and without one question per debtor, the busiest
    /// registry against its rate, and what is still waiting at each day's end.
    BenchResearch {
        /// The database: `sqlite://PATH` or `postgres://USER@HOST/DB` (use a scratch database).
        #[arg(long)]
        url: String,
        /// Terminated cases.
        #[arg(long, default_value_t = 1_000_000)]
        cases: u64,
        /// Share of the debtors with more than one case (two to four, ended within three weeks).
        #[arg(long, default_value_t = 0.3)]
        shared: f64,
        /// Registries asked for each debtor.
        #[arg(long, default_value_t = 100)]
        registries: u32,
        /// Searches per second each registry declares.
        #[arg(long, default_value_t = 50)]
        rate: u32,
        /// Days simulated.
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// The Beijing hours the re-searches are spread over, e.g. `22:00-06:00` (default: any hour).
        #[arg(long)]
        hours: Option<BeijingHours>,
    },
    /// Measure placements per second against a ledger database, beside the disk's fsync rate.
    Bench {
        /// The database: `sqlite://PATH` or `postgres://USER@HOST/DB` (use a scratch database).
        #[arg(long)]
        url: String,
        /// Concurrent writers, e.g. `1,64`.
        #[arg(long, value_delimiter = ',', default_value = "1,64")]
        concurrency: Vec<usize>,
        /// Placements per run.
        #[arg(long, default_value_t = 2000)]
        ops: u64,
        /// Directory on the disk to measure fsync on.
        #[arg(long, default_value = "data")]
        fsync_dir: PathBuf,
    },
}

pub fn parse_lifting(s: &str) -> Result<Lifting, String> {
    match s {
        "at_once" => Ok(Lifting::AtOnce),
        "holding_courts" => Ok(Lifting::HoldingCourts),
        other => Err(format!("`{other}` is not a lifting mode: at_once or holding_courts")),
    }
}

pub fn parse_registry_kind(s: &str) -> Result<RegistryKind, String> {
    RegistryKind::from_short_name(s).ok_or_else(|| {
        let kinds: Vec<&str> = RegistryKind::ALL.iter().map(|k| k.short_name()).collect();
        format!("unknown registry kind `{s}`; one of {}", kinds.join(", "))
    })
}

pub fn parse_asset_kind(s: &str) -> Result<AssetKind, String> {
    AssetKind::from_short_name(s).ok_or_else(|| {
        let kinds: Vec<&str> = AssetKind::ALL.iter().map(|k| k.short_name()).collect();
        format!("unknown asset kind `{s}`; one of {}", kinds.join(", "))
    })
}
